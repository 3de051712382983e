/*
 * server/http_fields.h — what a proxy must do to header fields before it keys on them or
 * forwards them: combine repeated field lines (RFC 9110 5.3) and drop the per-hop fields,
 * the fixed list and those a Connection field names (RFC 9110 7.6.1).
 *
 * Pure functions over h2o header lists and byte strings; any thread.
 */
#ifndef EDGECACHE_HTTP_FIELDS_H
#define EDGECACHE_HTTP_FIELDS_H

#include <stddef.h>
#include <h2o.h>

/**
 * Combine the repeated lines of every field name in `headers` into one line, in place:
 * the first line of a name gets the values of all its lines in their order, joined by
 * ", " (by "; " for Cookie, RFC 9113 8.2.3), and the later lines are removed; the order of
 * the remaining lines is kept. Names are compared case-insensitively. New values are
 * allocated in `pool` and live as long as it. Runs in O(n log n) for n lines.
 */
void http_fields_combine(h2o_mem_pool_t *pool, h2o_headers_t *headers);

/**
 * 0 when a line of `headers` has an empty name, else 1. h2o 2.2.5 (picohttpparser) hands an
 * obs-fold continuation line ("X-A: 1", "  more") over as a line without a name; forwarded, it
 * becomes ": more", and which field it continued cannot be known (h2o keeps Host, Content-Length
 * and a few others out of the list), so a proxy must refuse it (RFC 9112 5.2).
 */
int http_fields_all_named(const h2o_headers_t *headers);

/** 1 when `name` (lower-case) is one of the fixed hop-by-hop fields (Connection, TE, Upgrade...). */
int http_fields_is_hop_by_hop(const char *name, size_t name_len);

/**
 * 1 when the Connection field value `value` (a comma-separated list) names the field `name`
 * (compared case-insensitively, list elements trimmed of whitespace). Bytes are borrowed.
 */
int http_fields_connection_names(const char *value, size_t value_len, const char *name, size_t name_len);

/**
 * 1 when any Connection line of `headers` names `name` (see http_fields_connection_names):
 * such a field belongs to one hop and must not cross the proxy in either direction.
 */
int http_fields_listed_in_connection(const h2o_header_t *headers, size_t num_headers, const char *name, size_t name_len);

/**
 * Remove from `headers`, in place, every field a Connection line names (the Connection
 * lines themselves stay: they are dropped with the other hop-by-hop fields when forwarding).
 */
void http_fields_remove_connection_listed(h2o_headers_t *headers);

/**
 * The number of field lines named `lname` (lower-case; names compared case-insensitively)
 * in the HTTP/1 request head at the start of `head` (`len` bytes): the request line, the
 * field lines, up to the first empty line (what follows, a body or the next request, is not
 * looked at). Lines end in LF, CR LF or not at all (the end of `head`); empty lines before
 * the request line are skipped (picohttpparser allows one). A line's name is everything
 * before its first ':'. For what h2o 2.2.5 does not show: it hands over the last Host line
 * only (RFC 9112 3.2 wants a 400 for more than one). Never reads past `len`.
 */
size_t http_fields_head_count(const char *head, size_t len, const char *lname, size_t lname_len);

#endif
