/*
 * tests/fuzz/replay_main.c — run a fuzz target over files without libFuzzer.
 *
 *     replay_<name> DIR_OR_FILE...
 *
 * Every regular file (directories are read one level deep, in name order) is passed to
 * LLVMFuzzerTestOneInput in a buffer of exactly its size (so ASan catches one-byte
 * over-reads), and then every proper prefix of it is passed too: truncated input is the
 * commonest way parsers go wrong and costs nothing to try on a small seed corpus.
 * Built with gcc -fsanitize=address,undefined -fno-sanitize-recover=all by fuzz.mk, this
 * is what `make test` runs; a sanitizer report or a FUZZ_CHECK aborts the process.
 *
 * Prints "replay <prog>: N files, M inputs" and exits 0, or 1 when an argument cannot be
 * read or holds no file at all (an empty corpus is a packaging mistake, not a pass).
 * Single-threaded.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "tests/fuzz/fuzz.h"

#define REPLAY_MAX_FILE (1u << 20) /* seeds are small; a bigger file is a mistake */
#define REPLAY_PREFIX_MAX 4096     /* prefixes of longer files: only the first this many */

static size_t g_files, g_inputs;

static void run_one(const uint8_t *data, size_t len)
{
    /* an exact-size heap copy: reading past `len` is an ASan report, not silent */
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        abort();
    }
    if (len)
        memcpy(copy, data, len);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    g_inputs++;
}

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    uint8_t *buf = malloc(REPLAY_MAX_FILE + 1);
    if (buf == NULL) {
        fprintf(stderr, "replay: out of memory\n");
        abort();
    }
    size_t len = fread(buf, 1, REPLAY_MAX_FILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || len > REPLAY_MAX_FILE) {
        fprintf(stderr, "replay: %s: %s\n", path, bad ? "read error" : "larger than 1 MiB");
        free(buf);
        return -1;
    }
    run_one(buf, len);
    size_t max_prefix = len < REPLAY_PREFIX_MAX ? len : REPLAY_PREFIX_MAX;
    for (size_t n = 0; n < max_prefix; n++)
        run_one(buf, n);
    free(buf);
    g_files++;
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = realloc(names, cap * sizeof(*names));
            if (names == NULL)
                abort();
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (names[n] == NULL)
            abort();
        snprintf(names[n], len, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 0)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode) && replay_file(names[i]) != 0)
            rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
            rc = 1;
        } else if (S_ISDIR(st.st_mode) ? replay_dir(argv[i]) != 0 : replay_file(argv[i]) != 0) {
            rc = 1;
        }
    }
    const char *prog = strrchr(argv[0], '/');
    printf("replay %s: %zu files, %zu inputs\n", prog ? prog + 1 : argv[0], g_files, g_inputs);
    if (g_files == 0) {
        fprintf(stderr, "replay: no input files\n");
        rc = 1;
    }
    return rc;
}
