/*
 * common/path.h — file names under a directory.
 */
#ifndef COMMON_PATH_H
#define COMMON_PATH_H

/** A malloc'd "dir/name"; out of memory is fatal (alloc_die(what, 0): "... (WHAT)"). */
char *path_join(const char *dir, const char *name, const char *what);

#endif
