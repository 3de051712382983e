/*
 * server/text.c — UTF-8 validation and the escaper for echoed untrusted bytes
 * (see text.h). Invariant: whatever text_escape writes is well-formed UTF-8 without
 * control characters, whatever its input, and it never writes past cap.
 * Pure functions: any thread.
 */
#include "server/text.h"

#include <string.h>

size_t text_utf8_char_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (len == 0)
        return 0;
    unsigned char c = u[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* the allowed range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* overlong */
        else if (c == 0xed)
            hi = 0x9f; /* UTF-16 surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return 0; /* a continuation byte, an overlong lead (c0, c1) or f5..ff */
    }
    if (len < n || u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (u[i] < 0x80 || u[i] > 0xbf)
            return 0;
    return n;
}

int text_utf8_valid(const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t n = text_utf8_char_len(s + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

/* what the next piece of in[0..len) becomes: *in_n input bytes, *out_n output bytes */
static int text_piece(const char *in, size_t len, size_t *in_n, size_t *out_n)
{
    unsigned char c = (unsigned char)in[0];
    size_t n = text_utf8_char_len(in, len);
    int escape = n == 0 || c < 0x20 || c == 0x7f;
    *in_n = escape ? 1 : n;
    *out_n = escape ? 4 : n;
    return escape;
}

char *text_escape(char *out, size_t cap, const char *in, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i = 0, in_n, out_n, total = 0;

    if (cap == 0)
        return out;
    for (size_t k = 0; k < len; k += in_n) {
        text_piece(in + k, len - k, &in_n, &out_n);
        total += out_n;
    }
    /* all of it, or whole pieces up to cap - 4 and then "..." */
    size_t limit = total < cap ? cap - 1 : cap > 4 ? cap - 4 : 0;
    while (i < len) {
        int escape = text_piece(in + i, len - i, &in_n, &out_n);
        if (o + out_n > limit)
            break;
        if (escape) {
            unsigned char c = (unsigned char)in[i];
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        } else {
            memcpy(out + o, in + i, in_n);
            o += in_n;
        }
        i += in_n;
    }
    if (i < len && o + 3 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}
