/*
 * server/http_fields.c — combining repeated field lines and recognising per-hop fields.
 *
 * Why combining matters to a cache: a field sent on two lines ("Accept-Encoding: gzip",
 * "Accept-Encoding: br") is one field whose value is both lines joined by commas
 * (RFC 9110 5.3). Code that reads only the first line (h2o_find_header) while the origin
 * gets every line keys a response on a value that is not the one it was made for: a br
 * body stored under the gzip variant. The proxy therefore combines every repeated request
 * field once, before anything reads one, and forwards the combined line: the key and the
 * origin see the same bytes.
 *
 * Invariant of http_fields_combine: afterwards no two lines share a name (compared
 * case-insensitively), and the line of each name holds the values of all its former lines
 * in their order. Pure functions; any thread.
 */
#include <stdlib.h>
#include <string.h>
#include "server/http_fields.h"

typedef struct line_ref {
    const char *name;
    size_t name_len;
    size_t index;
} line_ref_t;

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i != n; ++i) {
        unsigned char x = lower((unsigned char)a[i]), y = lower((unsigned char)b[i]);
        if (x != y)
            return x < y ? -1 : 1;
    }
    return (alen > blen) - (alen < blen);
}

/* by name, then by position: a group of equal names comes out in its original order */
static int line_ref_cmp(const void *pa, const void *pb)
{
    const line_ref_t *a = pa, *b = pb;
    int c = name_cmp(a->name, a->name_len, b->name, b->name_len);
    return c != 0 ? c : (a->index > b->index) - (a->index < b->index);
}

static inline int name_eq(const char *a, size_t alen, const char *lit)
{
    size_t n = strlen(lit);
    return alen == n && name_cmp(a, alen, lit, n) == 0;
}

void http_fields_combine(h2o_mem_pool_t *pool, h2o_headers_t *headers)
{
    size_t n = headers->size;
    if (n < 2)
        return;
    line_ref_t *refs = h2o_mem_alloc_pool(pool, sizeof(*refs) * n);
    char *drop = h2o_mem_alloc_pool(pool, n);
    for (size_t i = 0; i != n; ++i) {
        refs[i] = (line_ref_t){headers->entries[i].name->base, headers->entries[i].name->len, i};
        drop[i] = 0;
    }
    qsort(refs, n, sizeof(*refs), line_ref_cmp);

    int any = 0;
    for (size_t g = 0; g != n;) {
        size_t end = g + 1;
        while (end != n && name_cmp(refs[g].name, refs[g].name_len, refs[end].name, refs[end].name_len) == 0)
            ++end;
        if (end - g > 1) {
            const char *sep = name_eq(refs[g].name, refs[g].name_len, "cookie") ? "; " : ", ";
            size_t total = 2 * (end - g - 1);
            for (size_t k = g; k != end; ++k)
                total += headers->entries[refs[k].index].value.len;
            char *joined = h2o_mem_alloc_pool(pool, total + 1), *p = joined;
            for (size_t k = g; k != end; ++k) {
                const h2o_iovec_t *v = &headers->entries[refs[k].index].value;
                if (k != g) {
                    memcpy(p, sep, 2);
                    p += 2;
                }
                if (v->len != 0)
                    memcpy(p, v->base, v->len);
                p += v->len;
                if (k != g)
                    drop[refs[k].index] = 1;
            }
            *p = '\0';
            headers->entries[refs[g].index].value = h2o_iovec_init(joined, total);
            any = 1;
        }
        g = end;
    }
    if (!any)
        return;
    size_t kept = 0;
    for (size_t i = 0; i != n; ++i)
        if (!drop[i])
            headers->entries[kept++] = headers->entries[i];
    headers->size = kept;
}

int http_fields_all_named(const h2o_headers_t *headers)
{
    for (size_t i = 0; i != headers->size; ++i)
        if (headers->entries[i].name->len == 0)
            return 0;
    return 1;
}

int http_fields_is_hop_by_hop(const char *name, size_t len)
{
    /* by length first: every stored header of every hit comes through here (proxy_is_not_delivered),
     * and the table walk it replaced cost a hit 600 instructions in bench/hitcost */
    switch (len) {
    case 2: return name_eq(name, len, "te");
    case 7: return name_eq(name, len, "trailer") || name_eq(name, len, "upgrade");
    case 10: return name_eq(name, len, "connection") || name_eq(name, len, "keep-alive");
    case 16: return name_eq(name, len, "proxy-connection");
    case 17: return name_eq(name, len, "transfer-encoding");
    case 18: return name_eq(name, len, "proxy-authenticate");
    case 19: return name_eq(name, len, "proxy-authorization");
    default: return 0;
    }
}

int http_fields_connection_names(const char *value, size_t value_len, const char *name, size_t name_len)
{
    size_t i = 0;
    while (i < value_len) {
        while (i < value_len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            ++i;
        size_t start = i;
        while (i < value_len && value[i] != ',')
            ++i;
        size_t len = i - start;
        while (len != 0 && (value[start + len - 1] == ' ' || value[start + len - 1] == '\t'))
            --len;
        if (len != 0 && name_cmp(value + start, len, name, name_len) == 0)
            return 1;
    }
    return 0;
}

int http_fields_listed_in_connection(const h2o_header_t *headers, size_t num_headers, const char *name, size_t name_len)
{
    for (size_t i = 0; i != num_headers; ++i)
        if (name_eq(headers[i].name->base, headers[i].name->len, "connection") &&
            http_fields_connection_names(headers[i].value.base, headers[i].value.len, name, name_len))
            return 1;
    return 0;
}

void http_fields_remove_connection_listed(h2o_headers_t *headers)
{
    int has_connection = 0;
    for (size_t i = 0; i != headers->size && !has_connection; ++i)
        has_connection = name_eq(headers->entries[i].name->base, headers->entries[i].name->len, "connection");
    if (!has_connection)
        return;
    /* compacting while the Connection lines are still read is safe: they are always kept, so
     * every one of them stays in entries[0, size) (moved down, or not reached yet) */
    size_t kept = 0;
    for (size_t i = 0; i != headers->size; ++i) {
        const h2o_iovec_t *name = headers->entries[i].name;
        if (!name_eq(name->base, name->len, "connection") &&
            http_fields_listed_in_connection(headers->entries, headers->size, name->base, name->len))
            continue;
        headers->entries[kept++] = headers->entries[i];
    }
    headers->size = kept;
}

size_t http_fields_head_count(const char *head, size_t len, const char *lname, size_t lname_len)
{
    size_t count = 0, pos = 0, lineno = 0;
    while (pos < len) {
        const char *nl = memchr(head + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - head) : len, line_len = end - pos;
        if (line_len != 0 && head[end - 1] == '\r')
            line_len--;
        const char *line = head + pos;
        pos = nl != NULL ? end + 1 : len;
        if (line_len == 0) {
            if (lineno == 0)
                continue; /* before the request line */
            break;        /* the end of the head */
        }
        if (lineno++ == 0)
            continue; /* the request line */
        /* lname holds no ':', so a line whose first ':' ends lname's bytes is named lname */
        if (line_len > lname_len && line[lname_len] == ':' && name_cmp(line, lname_len, lname, lname_len) == 0)
            count++;
    }
    return count;
}
