/*
 * tests/fuzz/gen_obj_seeds.c — writes the seed corpus of fuzz_obj_decode: real records
 * made with obj_builder_*, the way the proxy makes them. Not part of any build; rerun
 * it only when the record format changes (keeping the older version's seeds under a
 * prefix, v1-*, as long as that version is read):
 *
 *   gcc -std=c11 -D_GNU_SOURCE -I. tests/fuzz/gen_obj_seeds.c storage/object.c common/alloc.c \
 *       common/skey.c -lsodium -o /tmp/gen_obj_seeds && /tmp/gen_obj_seeds tests/fuzz/corpus/obj_decode
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "storage/object.h"

static void write_seed(const char *dir, const char *name, const cache_obj_t *o)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(o->rec, 1, o->rec_len, f) != o->rec_len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static cache_obj_t *make(const char *key, const char *skeys, const char *vary, const obj_header_t *h, size_t nh,
                         const char *body, size_t body_len, uint32_t flags)
{
    obj_meta_t meta = {.status = 200,
                       .flags = flags,
                       .generation = 3,
                       .request_time_ms = 1700000000000,
                       .response_time_ms = 1700000000123,
                       .initial_age = 5,
                       .ttl = 3600,
                       .stale_while_revalidate = 30,
                       .stale_if_error = 86400};
    obj_builder_t *b = obj_builder_begin(&meta, key, strlen(key), skeys, strlen(skeys), vary, strlen(vary), h, nh, body_len);
    obj_builder_append(b, body, body_len);
    return obj_builder_finish(b);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    obj_header_t h1[] = {
        {"content-type", 12, "text/html", 9}, {"etag", 4, "\"abc\"", 5}, {"cache-control", 13, "max-age=3600", 12}};
    obj_header_t h2[] = {{"surrogate-key", 13, "a b c", 5},
                         {"vary", 4, "accept-encoding", 15},
                         {"last-modified", 13, "Tue, 14 Nov 2023 22:13:20 GMT", 29},
                         {"x-empty", 7, "", 0}};
    char big[1500];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + i % 26);

    cache_obj_t *o;
    o = make("example.com/", "", "", NULL, 0, "", 0, 0);
    write_seed(dir, "empty-body", o);
    obj_unref(&o);
    o = make("example.com/a?x=1", "", "", h1, 3, "hello world\n", 12, 0);
    write_seed(dir, "three-headers", o);
    obj_unref(&o);
    o = make("www.example.test/k/1", "a b c", "gzip", h2, 4, big, 200, OBJ_F_NO_CACHE);
    write_seed(dir, "skeys-vary", o);
    obj_unref(&o);
    o = make("www.example.test/big", "key", "", h1, 1, big, sizeof(big), OBJ_F_MUST_REVALIDATE);
    write_seed(dir, "bigger-body", o);
    obj_unref(&o);
    o = make("", "", "", h2, 1, "\0\1\2", 3, OBJ_F_SOFT_PURGED);
    write_seed(dir, "empty-key", o);
    obj_unref(&o);
    return 0;
}
