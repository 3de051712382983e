/*
 * common/alloc.h — allocation that never returns NULL: out of memory is fatal in edgecache.
 */
#ifndef COMMON_ALLOC_H
#define COMMON_ALLOC_H

#include <stddef.h>

/** Print one line on stderr and abort: "edgecache: out of memory (WHAT, N bytes)", without
 *  ", N bytes" when n is 0; with what NULL, "edgecache: out of memory allocating N bytes". */
__attribute__((noreturn)) void alloc_die(const char *what, size_t n);

/** malloc, calloc and realloc that die (alloc_die(what, ...)) instead of returning NULL; a
 *  size of 0 allocates 1 byte, so the result is never NULL. */
void *alloc_xmalloc(size_t n, const char *what);
void *alloc_xcalloc(size_t n, size_t size, const char *what);
void *alloc_xrealloc(void *p, size_t n, const char *what);

/** A copy of src[0..len), NUL-terminated when nul is set. */
void *alloc_xmemdup(const void *src, size_t len, int nul, const char *what);

#endif
