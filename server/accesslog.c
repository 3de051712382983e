/*
 * server/accesslog.c — the access log (format: see accesslog.h).
 *
 * What it owns: the log file descriptor (or standard output), one buffer slot per worker
 * thread, the writer thread, its queue of full buffers and a free list of empty ones.
 *
 * Threads and invariants:
 *  - slot[i] (the buffer being filled) belongs to worker thread i: only it appends to it or
 *    hands it over (accesslog_write_request, accesslog_flush), except after the workers have
 *    stopped, when accesslog_close takes every slot from the main thread.
 *  - A buffer handed over goes into the queue under `lock`; that is the only lock a worker
 *    takes, once per full (64 KB) buffer or per second, never per line. If ACCESSLOG_MAX_QUEUED
 *    buffers are already waiting (the disk is stuck), the buffer is dropped and its lines
 *    counted in `dropped`: a worker never waits for the disk.
 *  - Only the writer thread touches `fd` (write, reopen, close) while it runs; reopen is a
 *    request flag it acts on between writes, so no line is ever written half to the old
 *    file and half to the new one.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "common/alloc.h"
#include "server/accesslog.h"

#define MAX_PATH_OUT 4096   /* escaped bytes of the request target kept in a line */
#define MAX_HEADER_OUT 1024 /* of the referer and of the user agent */
#define MAX_BACKEND_OUT 256

typedef struct accesslog_buf {
    struct accesslog_buf *next;
    size_t len;
    size_t lines;
    char data[ACCESSLOG_BUF_SIZE];
} accesslog_buf_t;

typedef struct accesslog_slot {
    _Alignas(64) accesslog_buf_t *cur;
    time_t date_sec;   /* the second date_str shows */
    char date_str[32]; /* "22/Nov/2025:06:21:00 +0000" */
} accesslog_slot_t;

static struct {
    atomic_int enabled;
    char *path; /* NULL for standard output */
    int fd;
    unsigned nslots;
    accesslog_slot_t *slots;
    _Atomic uint64_t dropped;

    pthread_t writer;
    pthread_mutex_t lock; /* queue, free list, stopping, reopen */
    pthread_cond_t cond;
    accesslog_buf_t *queue_head, *queue_tail;
    size_t queued;
    accesslog_buf_t *free_list;
    int stopping, reopen;
} g = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---------------------------------------------------------------- formatting */

typedef struct out {
    char *buf;
    size_t cap; /* bytes usable for the line proper (one more is kept for the newline) */
    size_t len;
} out_t;

static void out_raw(out_t *o, const char *s, size_t n)
{
    if (n > o->cap - o->len)
        n = o->cap - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void out_str(out_t *o, const char *s)
{
    out_raw(o, s, strlen(s));
}

/* untrusted bytes: printable ASCII as is, '"', '\' and everything else as \xHH; at most max output bytes */
static void out_escaped(out_t *o, const char *s, size_t n, size_t max)
{
    static const char hex[] = "0123456789abcdef";
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (written + 1 > max)
                break;
            out_raw(o, (const char *)&c, 1);
            written += 1;
        } else {
            if (written + 4 > max)
                break;
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            out_raw(o, esc, 4);
            written += 4;
        }
    }
}

static void out_seconds(out_t *o, int64_t us)
{
    char tmp[32];
    if (us < 0) {
        out_str(o, "-");
        return;
    }
    int n = snprintf(tmp, sizeof(tmp), "%lld.%06lld", (long long)(us / 1000000), (long long)(us % 1000000));
    out_raw(o, tmp, (size_t)n);
}

static void format_date(time_t sec, char *buf, size_t cap)
{
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    gmtime_r(&sec, &tm);
    snprintf(buf, cap, "%02d/%s/%04d:%02d:%02d:%02d +0000", tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
}

static size_t format_line(char *buf, size_t cap, h2o_req_t *req, const accesslog_entry_t *e, const char *date)
{
    out_t o = {.buf = buf, .cap = cap - 1, .len = 0};
    char tmp[64];
    int n;
    assert(cap >= 256);

    /* client */
    struct sockaddr_storage ss;
    socklen_t sl = 0;
    char host[NI_MAXHOST];
    if (req->conn != NULL && req->conn->callbacks != NULL && req->conn->callbacks->get_peername != NULL)
        sl = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (sl != 0 && h2o_socket_getnumerichost((struct sockaddr *)&ss, sl, host) != SIZE_MAX)
        out_escaped(&o, host, strlen(host), 64);
    else
        out_str(&o, "-");

    /* identity, user, time */
    out_str(&o, " - - [");
    out_str(&o, date);
    out_str(&o, "] \"");

    /* request line */
    out_escaped(&o, req->input.method.base, req->input.method.len, 32);
    out_str(&o, " ");
    out_escaped(&o, req->input.path.base, req->input.path.len, MAX_PATH_OUT);
    if (req->version >= 0x200)
        out_str(&o, " HTTP/2\" ");
    else
        out_str(&o, req->version == 0x100 ? " HTTP/1.0\" " : " HTTP/1.1\" ");

    /* status and body bytes */
    if (req->bytes_sent != 0)
        n = snprintf(tmp, sizeof(tmp), "%d %zu \"", req->res.status, req->bytes_sent);
    else
        n = snprintf(tmp, sizeof(tmp), "%d - \"", req->res.status);
    out_raw(&o, tmp, (size_t)n);

    /* referer, user agent */
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_REFERER, -1);
    if (i != -1)
        out_escaped(&o, req->headers.entries[i].value.base, req->headers.entries[i].value.len, MAX_HEADER_OUT);
    else
        out_str(&o, "-");
    out_str(&o, "\" \"");
    i = h2o_find_header(&req->headers, H2O_TOKEN_USER_AGENT, -1);
    if (i != -1)
        out_escaped(&o, req->headers.entries[i].value.base, req->headers.entries[i].value.len, MAX_HEADER_OUT);
    else
        out_str(&o, "-");
    out_str(&o, "\" ");

    /* ours: cache status, backend, time to first byte, total time */
    out_str(&o, e != NULL && e->cache_status != NULL ? e->cache_status : "-");
    out_str(&o, " ");
    if (e != NULL && e->backend != NULL && e->backend_len != 0)
        out_escaped(&o, e->backend, e->backend_len, MAX_BACKEND_OUT);
    else
        out_str(&o, "-");
    out_str(&o, " ");
    out_seconds(&o, e != NULL ? e->ttfb_us : -1);
    out_str(&o, " ");
    out_seconds(&o, e != NULL ? e->total_us : 0);

    buf[o.len++] = '\n';
    return o.len;
}

size_t accesslog_format(char *buf, size_t cap, h2o_req_t *req, const accesslog_entry_t *e)
{
    char date[32];
    time_t sec = h2o_timeval_is_null(&req->timestamps.request_begin_at) ? time(NULL) : req->timestamps.request_begin_at.tv_sec;
    format_date(sec, date, sizeof(date));
    return format_line(buf, cap, req, e, date);
}

/* ---------------------------------------------------------------- buffers and the queue */

static accesslog_buf_t *buf_get(void)
{
    accesslog_buf_t *b;
    pthread_mutex_lock(&g.lock);
    b = g.free_list;
    if (b != NULL)
        g.free_list = b->next;
    pthread_mutex_unlock(&g.lock);
    if (b == NULL)
        b = alloc_xmalloc(sizeof(*b), "access log");
    b->next = NULL;
    b->len = 0;
    b->lines = 0;
    return b;
}

/* hand a filled buffer to the writer; force: never drop (shutdown) */
static void buf_submit(accesslog_buf_t *b, int force)
{
    pthread_mutex_lock(&g.lock);
    if (!force && g.queued >= ACCESSLOG_MAX_QUEUED) {
        atomic_fetch_add_explicit(&g.dropped, b->lines, memory_order_relaxed);
        b->next = g.free_list;
        g.free_list = b;
    } else {
        b->next = NULL;
        if (g.queue_tail != NULL)
            g.queue_tail->next = b;
        else
            g.queue_head = b;
        g.queue_tail = b;
        g.queued++;
        pthread_cond_signal(&g.cond);
    }
    pthread_mutex_unlock(&g.lock);
}

static int open_path(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n != 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *writer_main(void *arg)
{
    (void)arg;
    int reported = 0;
    pthread_setname_np(pthread_self(), "ec-accesslog"); /* shown by top -H, ps -L, perf */
    pthread_mutex_lock(&g.lock);
    for (;;) {
        while (g.queue_head == NULL && !g.stopping && !g.reopen)
            pthread_cond_wait(&g.cond, &g.lock);
        if (g.reopen) {
            g.reopen = 0;
            pthread_mutex_unlock(&g.lock);
            if (g.path != NULL) {
                int fd = open_path(g.path);
                if (fd >= 0) {
                    close(g.fd);
                    g.fd = fd;
                } else {
                    fprintf(stderr, "edgecache: --access-log: cannot reopen %s: %s; still writing to the old file\n", g.path,
                            strerror(errno));
                }
            }
            pthread_mutex_lock(&g.lock);
            continue;
        }
        if (g.queue_head == NULL && g.stopping)
            break;
        accesslog_buf_t *list = g.queue_head;
        g.queue_head = g.queue_tail = NULL;
        g.queued = 0;
        pthread_mutex_unlock(&g.lock);

        accesslog_buf_t *last = NULL;
        for (accesslog_buf_t *b = list; b != NULL; b = b->next) {
            if (write_all(g.fd, b->data, b->len) != 0) {
                atomic_fetch_add_explicit(&g.dropped, b->lines, memory_order_relaxed);
                if (!reported) {
                    fprintf(stderr, "edgecache: --access-log: write failed: %s; lines are being dropped\n", strerror(errno));
                    reported = 1;
                }
            }
            last = b;
        }
        pthread_mutex_lock(&g.lock);
        if (last != NULL) {
            last->next = g.free_list;
            g.free_list = list;
        }
    }
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

/* ---------------------------------------------------------------- the API */

int accesslog_open(const char *path, unsigned num_workers, char *err, size_t errlen)
{
    assert(!atomic_load(&g.enabled));
    if (path == NULL || path[0] == '\0')
        return 0;
    if (strcmp(path, "-") == 0) {
        g.path = NULL;
        g.fd = STDOUT_FILENO;
    } else {
        g.fd = open_path(path);
        if (g.fd < 0) {
            snprintf(err, errlen, "--access-log: cannot open %s: %s", path, strerror(errno));
            return -1;
        }
        g.path = strdup(path);
        if (g.path == NULL)
            abort();
    }
    g.nslots = num_workers != 0 ? num_workers : 1;
    g.slots = aligned_alloc(64, sizeof(*g.slots) * g.nslots);
    if (g.slots == NULL)
        abort();
    memset(g.slots, 0, sizeof(*g.slots) * g.nslots);
    atomic_store(&g.dropped, 0);
    g.stopping = 0;
    g.reopen = 0;
    int rc = pthread_create(&g.writer, NULL, writer_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "--access-log: cannot start the writer thread: %s", strerror(rc));
        if (g.path != NULL)
            close(g.fd);
        free(g.path);
        g.path = NULL;
        free(g.slots);
        g.slots = NULL;
        g.fd = -1;
        return -1;
    }
    atomic_store(&g.enabled, 1);
    return 0;
}

int accesslog_enabled(void)
{
    return atomic_load_explicit(&g.enabled, memory_order_relaxed);
}

void accesslog_write_request(unsigned worker_index, h2o_req_t *req, const accesslog_entry_t *e)
{
    if (!accesslog_enabled())
        return;
    assert(worker_index < g.nslots);
    accesslog_slot_t *s = &g.slots[worker_index];
    time_t sec = h2o_timeval_is_null(&req->timestamps.request_begin_at) ? time(NULL) : req->timestamps.request_begin_at.tv_sec;
    if (sec != s->date_sec || s->date_str[0] == '\0') {
        format_date(sec, s->date_str, sizeof(s->date_str));
        s->date_sec = sec;
    }
    if (s->cur == NULL)
        s->cur = buf_get();
    if (ACCESSLOG_BUF_SIZE - s->cur->len < ACCESSLOG_MAX_LINE) {
        buf_submit(s->cur, 0);
        s->cur = buf_get();
    }
    s->cur->len += format_line(s->cur->data + s->cur->len, ACCESSLOG_MAX_LINE, req, e, s->date_str);
    s->cur->lines++;
}

void accesslog_flush(unsigned worker_index)
{
    if (!accesslog_enabled())
        return;
    assert(worker_index < g.nslots);
    accesslog_slot_t *s = &g.slots[worker_index];
    if (s->cur == NULL || s->cur->len == 0)
        return;
    buf_submit(s->cur, 0);
    s->cur = NULL;
}

void accesslog_reopen(void)
{
    if (!accesslog_enabled())
        return;
    pthread_mutex_lock(&g.lock);
    g.reopen = 1;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
}

uint64_t accesslog_dropped_lines(void)
{
    return atomic_load_explicit(&g.dropped, memory_order_relaxed);
}

void accesslog_close(void)
{
    if (!accesslog_enabled())
        return;
    for (unsigned i = 0; i < g.nslots; i++) {
        accesslog_slot_t *s = &g.slots[i];
        if (s->cur != NULL && s->cur->len != 0)
            buf_submit(s->cur, 1);
        else
            free(s->cur);
        s->cur = NULL;
    }
    pthread_mutex_lock(&g.lock);
    g.stopping = 1;
    pthread_cond_signal(&g.cond);
    pthread_mutex_unlock(&g.lock);
    pthread_join(g.writer, NULL);
    atomic_store(&g.enabled, 0);
    if (g.path != NULL)
        close(g.fd);
    g.fd = -1;
    free(g.path);
    g.path = NULL;
    while (g.free_list != NULL) {
        accesslog_buf_t *b = g.free_list;
        g.free_list = b->next;
        free(b);
    }
    free(g.slots);
    g.slots = NULL;
    g.nslots = 0;
}
