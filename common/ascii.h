/*
 * common/ascii.h — ASCII case without the locale (HTTP names and tokens are ASCII).
 */
#ifndef COMMON_ASCII_H
#define COMMON_ASCII_H

/** A-Z to a-z; every other byte unchanged. */
static inline char ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

#endif
