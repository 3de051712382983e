/*
 * common/errbuf.c — the error-message formatter the store, its check, its state files and
 * the migrations each had a copy of.
 *
 * A function that fails with a message takes (errbuf, errlen) and may be given NULL: this is
 * the one place that checks. Pure; any thread.
 */
#include "common/errbuf.h"
#include <stdarg.h>
#include <stdio.h>

void errbuf_printf(char *errbuf, size_t errlen, const char *fmt, ...)
{
    if (errbuf == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, errlen, fmt, ap);
    va_end(ap);
}
