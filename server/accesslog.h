/*
 * server/accesslog.h — the access log: one line per proxy request, written off the hot path.
 *
 * Format (one line, fields separated by single spaces): the Apache/nginx "combined" format
 * followed by four fields of ours:
 *
 *   CLIENT - - [22/Nov/2025:06:21:00 +0000] "GET /path?q HTTP/1.1" 200 1234 "REFERER" "USER-AGENT"
 *       CACHE BACKEND TTFB TOTAL
 *
 *   CLIENT   the peer address
 *   [...]    when the request began, UTC
 *   "..."    method, path as received, protocol; bytes outside printable ASCII, '"' and '\'
 *            are written as \xHH (also in referer and user agent)
 *   200      the status (0 when no response was started)
 *   1234     body bytes sent ("-" for none)
 *   CACHE    HIT, REVALIDATED, MISS or PASS (the X-Cache header), or "-" (e.g. PURGE)
 *   BACKEND  the backend that served the request, or "-"
 *   TTFB     seconds from the start of the request to the start of the response ("-" if none)
 *   TOTAL    seconds from the start of the request to its end
 *
 * Each worker thread appends to its own buffer (no lock); a full buffer, or one older than
 * a second (a 1 s timer on the worker's loop), is handed to the log's writer thread, which
 * owns the file and does every write(2). If the writer falls behind by more than
 * ACCESSLOG_MAX_QUEUED buffers, further buffers are dropped and counted, never waited for.
 * accesslog_reopen (SIGHUP) makes the writer reopen the path, for log rotation.
 */
#ifndef EDGECACHE_ACCESSLOG_H
#define EDGECACHE_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <h2o.h>

#define ACCESSLOG_BUF_SIZE (64 * 1024)
#define ACCESSLOG_MAX_QUEUED 64
#define ACCESSLOG_MAX_LINE 8192 /* longer lines are cut (the fields are truncated, the line stays one line) */

/**
 * Open the log: path "-" is standard output, NULL or "" leaves the log off. num_workers
 * buffers are allocated (one per worker thread) and the writer thread started. Call once,
 * from the main thread, before the workers start. Returns 0, or -1 with a message naming
 * --access-log.
 */
int accesslog_open(const char *path, unsigned num_workers, char *err, size_t errlen);

/** 1 when the log is open. Any thread. */
int accesslog_enabled(void);

/** The fields of one line that are not in the request itself. */
typedef struct accesslog_entry {
    const char *cache_status; /* "HIT", "REVALIDATED", "MISS", "PASS" or NULL */
    const char *backend;      /* NULL for none */
    size_t backend_len;
    int64_t ttfb_us; /* -1 when no response was started */
    int64_t total_us;
} accesslog_entry_t;

/**
 * Append the line for req to worker `worker_index`'s buffer. Worker thread `worker_index`
 * only. req is borrowed for the call. No-op when the log is off.
 */
void accesslog_write_request(unsigned worker_index, h2o_req_t *req, const accesslog_entry_t *e);

/**
 * Format the line into buf (cap bytes, at least 256), newline included, no NUL. Returns the
 * length. Pure apart from reading req; for the writer above and the unit tests.
 */
size_t accesslog_format(char *buf, size_t cap, h2o_req_t *req, const accesslog_entry_t *e);

/** Hand worker `worker_index`'s buffered lines to the writer (its own thread, or any thread
 * once the workers have stopped). No-op when empty or when the log is off. */
void accesslog_flush(unsigned worker_index);

/** Ask the writer to reopen the path (log rotation; SIGHUP). Any thread; returns at once. */
void accesslog_reopen(void);

/** Lines dropped because the writer fell behind or a write failed. */
uint64_t accesslog_dropped_lines(void);

/**
 * Flush every worker's buffer, let the writer write everything, stop it and close the file.
 * Main thread, after the workers have stopped.
 */
void accesslog_close(void);

#endif
