/*
 * server/origin_head.h — the pure parts of reading an origin's response head (status line,
 * end of the head, framing headers), shared by server/origin_client.c and its tests. Not a
 * module interface of its own: origin_client.h is the client's.
 */
#ifndef EDGECACHE_ORIGIN_HEAD_H
#define EDGECACHE_ORIGIN_HEAD_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>

/**
 * End offset of the head (just past its empty line) in buf[0..len), or 0 when it is not
 * complete yet. *scan is where the search resumes (0 at first; updated), so bytes trickling
 * in cost linear time.
 */
size_t origin_head_find_end(const char *buf, size_t len, size_t *scan);

/**
 * "HTTP/1.x SP 3DIGIT [SP reason] (CR)LF" at the start of buf (the reason may be missing, as
 * some servers do). Returns the line's length with its line end and fills the outputs (msg
 * points into buf), or 0 when malformed.
 */
size_t origin_head_status_line(const char *buf, size_t len, int *minor_version, int *status, h2o_iovec_t *msg);

/* what the framing headers say; errstr set when they are unacceptable for a message with a body */
typedef struct origin_head_framing {
    int has_te, te_chunked, has_cl, keepalive;
    uint64_t content_length;
    const char *errstr;
} origin_head_framing_t;

/** Read the framing headers of a response (names as origin_client gives them: lower case, h2o tokens). */
void origin_head_framing(const h2o_header_t *headers, size_t num_headers, int minor_version, origin_head_framing_t *fi);

#endif
