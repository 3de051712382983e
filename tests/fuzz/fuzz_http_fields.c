/*
 * tests/fuzz/fuzz_http_fields.c — combining repeated request field lines and removing the
 * fields a Connection line names (server/http_fields.c), as the proxy does before it keys a
 * request or forwards it.
 *
 * Input: header lines separated by '\n', each "name:value" (split at the first ':'; a line
 * without one is a name with an empty value; names lower-cased as h2o does).
 *
 * Invariants of http_fields_combine: no two lines share a name afterwards; the lines left are
 * the first line of each name, in their original order; each holds the values of all lines of
 * its name in order, joined by ", " ("; " for cookie); combining again changes nothing. Of
 * http_fields_remove_connection_listed: no line left (but Connection) is named by a Connection
 * line, every line removed was, and the order of the rest is kept. Of http_fields_head_count:
 * it reads the raw input without going past it, and on a request head made of the same lines
 * (a request line, "name:value" CR LF each, an empty line, then a Host line that is not part
 * of the head) it counts exactly the lines named host.
 */
#include <ctype.h>
#include <string.h>
#include <h2o.h>
#include "server/http_fields.h"
#include "tests/fuzz/fuzz.h"

#define MAX_LINES 256

typedef struct line {
    char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} line_t;

/* byte by byte: strncasecmp would stop at a NUL the names may hold */
static int same_name(const line_t *a, const char *name, size_t len)
{
    if (a->name_len != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (tolower((unsigned char)a->name[i]) != tolower((unsigned char)name[i]))
            return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_headers_t headers = {NULL, 0, 0};
    line_t lines[MAX_LINES];
    size_t n = 0;
    (void)http_fields_head_count((const char *)data, size, "host", 4); /* hostile bytes: in bounds (ASan) */
    char *copy = h2o_mem_alloc_pool(&pool, size + 1);
    memcpy(copy, data, size);
    for (size_t i = 0; i < size && n < MAX_LINES;) {
        const char *end = memchr(copy + i, '\n', size - i);
        size_t len = end != NULL ? (size_t)(end - (copy + i)) : size - i;
        char *l = copy + i, *colon = memchr(l, ':', len);
        size_t name_len = colon != NULL ? (size_t)(colon - l) : len;
        if (name_len != 0) {
            for (size_t k = 0; k < name_len; k++)
                l[k] = (char)tolower((unsigned char)l[k]);
            lines[n] = (line_t){l, name_len, colon != NULL ? colon + 1 : l + len, colon != NULL ? len - name_len - 1 : 0};
            h2o_add_header_by_str(&pool, &headers, lines[n].name, name_len, 1, NULL, lines[n].value, lines[n].value_len);
            n++;
        }
        i += len + 1;
    }

    /* the same lines as a request head */
    static const char reqline[] = "GET / HTTP/1.1\r\n", tail[] = "\r\nHost: after.example\r\n";
    size_t head_cap = sizeof(reqline) + sizeof(tail), hosts = 0;
    for (size_t i = 0; i < n; i++)
        head_cap += lines[i].name_len + lines[i].value_len + 3;
    char *head = h2o_mem_alloc_pool(&pool, head_cap), *hp = head;
    memcpy(hp, reqline, sizeof(reqline) - 1);
    hp += sizeof(reqline) - 1;
    for (size_t i = 0; i < n; i++) {
        memcpy(hp, lines[i].name, lines[i].name_len);
        hp += lines[i].name_len;
        *hp++ = ':';
        memcpy(hp, lines[i].value, lines[i].value_len);
        hp += lines[i].value_len;
        *hp++ = '\r';
        *hp++ = '\n';
        hosts += same_name(&lines[i], "host", 4);
    }
    memcpy(hp, tail, sizeof(tail) - 1);
    hp += sizeof(tail) - 1;
    FUZZ_CHECK(http_fields_head_count(head, (size_t)(hp - head), "host", 4) == hosts);

    http_fields_combine(&pool, &headers);

    /* the expected result, from the lines as they came */
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        int first = 1;
        for (size_t j = 0; j < i && first; j++)
            first = !same_name(&lines[j], lines[i].name, lines[i].name_len);
        if (!first)
            continue;
        FUZZ_CHECK(out < headers.size);
        const h2o_header_t *h = &headers.entries[out++];
        FUZZ_CHECK(same_name(&lines[i], h->name->base, h->name->len));
        const char *sep = lines[i].name_len == 6 && memcmp(lines[i].name, "cookie", 6) == 0 ? "; " : ", ";
        size_t pos = 0, count = 0;
        for (size_t j = i; j < n; j++) {
            if (!same_name(&lines[j], lines[i].name, lines[i].name_len))
                continue;
            if (count++ != 0) {
                FUZZ_CHECK(pos + 2 <= h->value.len && memcmp(h->value.base + pos, sep, 2) == 0);
                pos += 2;
            }
            FUZZ_CHECK(pos + lines[j].value_len <= h->value.len);
            FUZZ_CHECK(lines[j].value_len == 0 || memcmp(h->value.base + pos, lines[j].value, lines[j].value_len) == 0);
            pos += lines[j].value_len;
        }
        FUZZ_CHECK(pos == h->value.len);
    }
    FUZZ_CHECK(out == headers.size);

    /* idempotent */
    size_t before = headers.size;
    h2o_header_t *snapshot = h2o_mem_alloc_pool(&pool, sizeof(*snapshot) * (before + 1));
    if (before != 0)
        memcpy(snapshot, headers.entries, sizeof(*snapshot) * before);
    http_fields_combine(&pool, &headers);
    FUZZ_CHECK(headers.size == before);
    for (size_t i = 0; i < before; i++)
        FUZZ_CHECK(headers.entries[i].value.base == snapshot[i].value.base &&
                   headers.entries[i].value.len == snapshot[i].value.len);

    /* Connection-listed fields */
    http_fields_remove_connection_listed(&headers);
    size_t k = 0;
    for (size_t i = 0; i < before; i++) {
        const h2o_iovec_t *name = snapshot[i].name;
        int is_conn = name->len == 10 && memcmp(name->base, "connection", 10) == 0;
        int listed = http_fields_listed_in_connection(snapshot, before, name->base, name->len);
        if (!is_conn && listed)
            continue; /* must be gone */
        FUZZ_CHECK(k < headers.size && headers.entries[k].name == snapshot[i].name &&
                   headers.entries[k].value.base == snapshot[i].value.base);
        k++;
    }
    FUZZ_CHECK(k == headers.size);
    for (size_t i = 0; i < headers.size; i++) {
        const h2o_iovec_t *name = headers.entries[i].name;
        FUZZ_CHECK((name->len == 10 && memcmp(name->base, "connection", 10) == 0) ||
                   !http_fields_listed_in_connection(headers.entries, headers.size, name->base, name->len));
    }
    h2o_mem_clear_pool(&pool);
    return 0;
}
