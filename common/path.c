/*
 * common/path.c — joining a directory and a file name, as the store's state files and its
 * offline check name the files of the data directory.
 *
 * Never fails (out of memory is fatal). Pure; any thread.
 */
#include "common/path.h"
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"

char *path_join(const char *dir, const char *name, const char *what)
{
    size_t dlen = strlen(dir), nlen = strlen(name);
    char *p = malloc(dlen + nlen + 2);
    if (p == NULL)
        alloc_die(what, 0);
    memcpy(p, dir, dlen);
    p[dlen] = '/';
    memcpy(p + dlen + 1, name, nlen + 1);
    return p;
}
