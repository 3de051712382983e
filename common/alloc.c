/*
 * common/alloc.c — allocation that dies instead of failing.
 *
 * Owns the one out-of-memory path of the process: no module continues without memory, so
 * none checks for NULL after these. The message names what ran out (the caller's WHAT:
 * "store", "store check", ...) in one line an operator can grep. Any thread; no state.
 */
#include "common/alloc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Noreturn void alloc_die(const char *what, size_t n)
{
    if (what == NULL)
        fprintf(stderr, "edgecache: out of memory allocating %zu bytes\n", n);
    else if (n == 0)
        fprintf(stderr, "edgecache: out of memory (%s)\n", what);
    else
        fprintf(stderr, "edgecache: out of memory (%s, %zu bytes)\n", what, n);
    abort();
}

void *alloc_xmalloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL)
        alloc_die(what, n);
    return p;
}

void *alloc_xcalloc(size_t n, size_t size, const char *what)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL)
        alloc_die(what, n * size);
    return p;
}

void *alloc_xrealloc(void *p, size_t n, const char *what)
{
    void *q = realloc(p, n ? n : 1);
    if (q == NULL)
        alloc_die(what, n);
    return q;
}

void *alloc_xmemdup(const void *src, size_t len, int nul, const char *what)
{
    char *p = alloc_xrealloc(NULL, len + (nul ? 1 : 0), what);
    if (len)
        memcpy(p, src, len);
    if (nul)
        p[len] = '\0';
    return p;
}
