/*
 * common/ascii.h — ASCII case, hex digits and decimal numbers without the locale (HTTP
 * names, tokens and percent-encoding are ASCII) and without snprintf's format machinery
 * (where a number is written on every request).
 */
#ifndef COMMON_ASCII_H
#define COMMON_ASCII_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/** A-Z to a-z; every other byte unchanged. */
static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/** Is c a token character (RFC 9110 5.6.2: methods, field names)? */
static inline int ascii_is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && memchr("!#$%&'*+-.^_`|~", c, 15) != NULL;
}

/** The value of a hex digit (either case), or -1 when c is not one. */
static inline int ascii_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/** v in decimal at buf, which has room for 20 digits (10 when v fits 32 bits); returns the length (no NUL). */
static inline size_t ascii_decimal(char *buf, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i != n; ++i)
        buf[i] = tmp[n - 1 - i];
    return n;
}

#endif
