/*
 * server/text.h — untrusted bytes made safe to show: UTF-8 validation and an escaper
 * for echoing request, header or body bytes into JSON answers and log lines.
 *
 * jansson refuses a string that is not well-formed UTF-8 (json_pack and json_string
 * return NULL), so any text built from request bytes must pass through here before it
 * is formatted into an answer: an answer that cannot be built must never end the process.
 * Pure functions, no state: any thread.
 */
#ifndef EDGECACHE_TEXT_H
#define EDGECACHE_TEXT_H

#include <stddef.h>

/**
 * The length (1..4) of the well-formed UTF-8 character at s[0..len), or 0 when s does not
 * start with one (RFC 3629, as jansson checks it: no overlong forms, no surrogates, nothing
 * above U+10FFFF, no sequence cut by the end of the buffer). len 0 gives 0.
 */
size_t text_utf8_char_len(const char *s, size_t len);

/** 1 when s[0..len) is well-formed UTF-8 throughout (an empty string is), else 0. */
int text_utf8_valid(const char *s, size_t len);

/**
 * Copy untrusted bytes in[0..len) into out (cap bytes) as printable, well-formed UTF-8 text:
 * each well-formed UTF-8 character other than a control is copied, every other byte (a byte
 * of no well-formed character, a C0 control, DEL) is written as the four characters "\xHH".
 * When it does not all fit, the copy stops before the first character or escape that would
 * not fit in cap - 4 bytes and "..." follows, so a cut never splits a character. out is
 * always NUL-terminated (cap >= 1); cap >= 8 is needed for "..." to fit. Returns out.
 * Borrows in; never fails.
 */
char *text_escape(char *out, size_t cap, const char *in, size_t len);

#endif
