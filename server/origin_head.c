/*
 * server/origin_head.c — the pure parts of reading an origin's response head for
 * server/origin_client.c: where the head ends, the status line, and what the framing headers
 * (Connection, Transfer-Encoding, Content-Length) say. Every byte is the origin's: nothing is
 * asserted on, a malformed input is a result. No state; any thread.
 */
#include <stdint.h>
#include <string.h>
#include <h2o.h>
#include "server/origin_head.h"

/* end offset of the head (just past its empty line) in buf, or 0 when it is not complete yet */
size_t origin_head_find_end(const char *buf, size_t len, size_t *scan)
{
    size_t i = *scan;
    while (i < len) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (lf == NULL) {
            i = len;
            break;
        }
        i = (size_t)(lf - buf);
        if (i + 1 == len)
            break;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r') {
            if (i + 2 == len)
                break;
            if (buf[i + 2] == '\n')
                return i + 3;
        }
        ++i;
    }
    *scan = i; /* resume at the last LF seen near the end, or at the end */
    return 0;
}

/* "HTTP/1.x SP 3DIGIT [SP reason] (CR)LF"; the reason may be missing, as some servers do.
 * Returns the line's length with its line end, or 0 when malformed. */
size_t origin_head_status_line(const char *buf, size_t len, int *minor_version, int *status, h2o_iovec_t *msg)
{
    if (len < 13 || memcmp(buf, "HTTP/1.", 7) != 0 || buf[7] < '0' || buf[7] > '9' || buf[8] != ' ')
        return 0;
    int code = 0;
    for (size_t i = 9; i != 12; ++i) {
        if (buf[i] < '0' || buf[i] > '9')
            return 0;
        code = code * 10 + (buf[i] - '0');
    }
    size_t i = 12;
    *msg = h2o_iovec_init(buf + i, 0);
    if (buf[i] == ' ') {
        size_t start = ++i;
        for (; i < len; ++i) {
            unsigned char ch = (unsigned char)buf[i];
            if (ch == '\r' || ch == '\n')
                break;
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                return 0;
        }
        size_t end = i;
        while (end > start && (buf[end - 1] == ' ' || buf[end - 1] == '\t'))
            --end;
        *msg = h2o_iovec_init(buf + start, end - start);
    }
    if (i < len && buf[i] == '\r')
        ++i;
    if (i >= len || buf[i] != '\n')
        return 0;
    *minor_version = buf[7] - '0';
    *status = code;
    return i + 1;
}

/* next element of a comma-separated list, whitespace around it removed; 0 at the end */
static int list_next(const char **pos, const char *end, h2o_iovec_t *element)
{
    const char *p = *pos;
    if (p == NULL)
        return 0;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *elem_end = comma != NULL ? comma : end;
    while (p < elem_end && (*p == ' ' || *p == '\t'))
        ++p;
    const char *q = elem_end;
    while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
        --q;
    *element = h2o_iovec_init(p, (size_t)(q - p));
    *pos = comma != NULL ? comma + 1 : NULL;
    return 1;
}

/* 1*DIGIT without overflow; -1 otherwise */
static int parse_decimal(h2o_iovec_t s, uint64_t *out)
{
    uint64_t v = 0;
    if (s.len == 0)
        return -1;
    for (size_t i = 0; i != s.len; ++i) {
        if (s.base[i] < '0' || s.base[i] > '9')
            return -1;
        unsigned digit = (unsigned)(s.base[i] - '0');
        if (v > (UINT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

void origin_head_framing(const h2o_header_t *headers, size_t num_headers, int minor_version, origin_head_framing_t *fi)
{
    int conn_close = 0, conn_keepalive = 0, cl_present = 0, te_codings = 0, te_chunked_last = 0;
    *fi = (origin_head_framing_t){0};
    for (size_t i = 0; i != num_headers; ++i) {
        const h2o_iovec_t *name = headers[i].name;
        const char *pos = headers[i].value.base, *end = pos + headers[i].value.len;
        h2o_iovec_t el;
        if (name == &H2O_TOKEN_CONNECTION->buf) {
            while (list_next(&pos, end, &el)) {
                if (h2o_lcstris(el.base, el.len, H2O_STRLIT("close")))
                    conn_close = 1;
                else if (h2o_lcstris(el.base, el.len, H2O_STRLIT("keep-alive")))
                    conn_keepalive = 1;
            }
        } else if (name == &H2O_TOKEN_TRANSFER_ENCODING->buf) {
            fi->has_te = 1;
            while (list_next(&pos, end, &el)) {
                if (el.len == 0 || h2o_lcstris(el.base, el.len, H2O_STRLIT("identity")))
                    continue; /* empty list element; RFC 2616's no-op coding */
                ++te_codings;
                te_chunked_last = h2o_lcstris(el.base, el.len, H2O_STRLIT("chunked"));
            }
        } else if (name == &H2O_TOKEN_CONTENT_LENGTH->buf) {
            cl_present = 1;
            while (list_next(&pos, end, &el)) {
                uint64_t v;
                if (parse_decimal(el, &v) != 0 || v >= SIZE_MAX || (fi->has_cl && v != fi->content_length)) {
                    fi->errstr = "invalid content-length";
                    break;
                }
                fi->has_cl = 1;
                fi->content_length = v;
            }
        }
    }
    if (fi->errstr != NULL)
        fi->has_cl = 0;
    if (te_codings != 0) {
        /* Transfer-Encoding decides the framing whatever Content-Length says (RFC 9112 6.3); we
         * decode chunked only, and chunked must be the one and final coding */
        fi->te_chunked = te_codings == 1 && te_chunked_last;
        fi->errstr = fi->te_chunked ? NULL : "unsupported transfer-encoding";
    }
    fi->keepalive = !conn_close && (minor_version >= 1 || conn_keepalive);
    /* a message framed two ways, TE in HTTP/1.0 (RFC 9112 6.1), or only legacy identity codings:
     * we can read it, but must not trust the connection afterwards */
    if (fi->has_te && (cl_present || minor_version == 0 || !fi->te_chunked))
        fi->keepalive = 0;
}
