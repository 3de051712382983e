/*
 * common/ascii.h — ASCII case and hex digits without the locale (HTTP names, tokens and
 * percent-encoding are ASCII).
 */
#ifndef COMMON_ASCII_H
#define COMMON_ASCII_H

/** A-Z to a-z; every other byte unchanged. */
static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
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

#endif
