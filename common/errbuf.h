/*
 * common/errbuf.h — the (errbuf, errlen) convention of functions that fail with a message.
 */
#ifndef COMMON_ERRBUF_H
#define COMMON_ERRBUF_H

#include <stddef.h>

/** printf into errbuf[0..errlen), truncating; nothing when errbuf is NULL or errlen is 0. */
void errbuf_printf(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
