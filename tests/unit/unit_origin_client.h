/*
 * tests/unit/unit_origin_client.h — what the origin client's suites
 * (test_origin_client_framing.c, test_origin_client_conn.c) share: a real h2o event loop in
 * the test process and a scripted origin, a thread on 127.0.0.1:<ephemeral> that accepts
 * connections one at a time and plays a script per connection: for each request it reads
 * the request head, writes canned response bytes (in pieces, with delays), then keeps the
 * connection, closes it, resets it or holds it until the client closes. Accepts are counted
 * to check keep-alive reuse. The client side records every callback in a result_t. Every wait
 * is bounded; env_teardown disposes everything so the ASan build also checks for leaks.
 * Header-only: static inline functions and the suite's one environment E, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_ORIGIN_CLIENT_H
#define EDGECACHE_UNIT_ORIGIN_CLIENT_H

#include "server/origin_client.h"
#include "server/origin_idle.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- the scripted origin */

enum after { AFTER_KEEP, AFTER_CLOSE, AFTER_HOLD, AFTER_RST, AFTER_CLOSE_WHEN_TOLD, AFTER_STRAY_WHEN_TOLD };

typedef struct exchange {
    const char *pieces[10]; /* written in order; NULL ends the list */
    size_t lens[10];        /* 0: strlen */
    int delay_ms;           /* before each piece (each slice when split) */
    size_t split;           /* >0: write each piece in slices of this many bytes */
    int no_response;        /* read the request, write nothing */
    enum after after;
} exchange_t;

typedef struct conn_script {
    exchange_t ex[3];
    size_t n;
} conn_script_t;

#define MAX_SCRIPTS 16

typedef struct origin {
    int listen_fd;
    uint16_t port;
    pthread_t thread;
    int running;
    atomic_int accepts, requests, client_closed, stop;
    atomic_int close_now; /* AFTER_CLOSE_WHEN_TOLD, AFTER_STRAY_WHEN_TOLD: the test says when */
    atomic_int responses; /* exchanges whose response was written whole */
    conn_script_t scripts[MAX_SCRIPTS];
    size_t nscripts;
    char last_request[4096];
} origin_t;

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* reads one request head; 0, or -1 when the peer closed / timed out / stop */
static inline int origin_read_request(origin_t *o, int fd)
{
    char buf[4096];
    size_t len = 0;
    int64_t deadline = now_ms() + 5000;
    while (now_ms() < deadline && !atomic_load(&o->stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0) {
            atomic_fetch_add(&o->client_closed, 1);
            return -1;
        }
        len += (size_t)n;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL) {
            memcpy(o->last_request, buf, len + 1);
            atomic_fetch_add(&o->requests, 1);
            return 0;
        }
        if (len == sizeof(buf) - 1)
            return -1;
    }
    return -1;
}

/* waits until the client closes (or stop, or 10 s) */
static inline void origin_wait_close(origin_t *o, int fd)
{
    char buf[4096];
    int64_t deadline = now_ms() + 10000;
    while (now_ms() < deadline && !atomic_load(&o->stop)) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            atomic_fetch_add(&o->client_closed, 1);
            return;
        }
    }
}

static inline void origin_send(int fd, const char *data, size_t len)
{
    while (len != 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static inline void origin_serve(origin_t *o, int fd, unsigned index)
{
    if (index >= o->nscripts)
        return;
    conn_script_t *s = &o->scripts[index];
    for (size_t i = 0; i != s->n; ++i) {
        exchange_t *ex = &s->ex[i];
        if (origin_read_request(o, fd) != 0)
            return;
        for (size_t k = 0; !ex->no_response && ex->pieces[k] != NULL; ++k) {
            size_t len = ex->lens[k] != 0 ? ex->lens[k] : strlen(ex->pieces[k]);
            size_t step = ex->split != 0 ? ex->split : len;
            for (size_t off = 0; off < len; off += step) {
                if (ex->delay_ms != 0)
                    sleep_ms(ex->delay_ms);
                origin_send(fd, ex->pieces[k] + off, len - off < step ? len - off : step);
            }
        }
        if (!ex->no_response)
            atomic_fetch_add(&o->responses, 1);
        switch (ex->after) {
        case AFTER_KEEP: continue;
        case AFTER_CLOSE: return;
        case AFTER_CLOSE_WHEN_TOLD:
        case AFTER_STRAY_WHEN_TOLD: /* bytes no request asked for, then the connection stays open */
            while (!atomic_load(&o->close_now) && !atomic_load(&o->stop))
                sleep_ms(1);
            if (ex->after == AFTER_CLOSE_WHEN_TOLD)
                return;
            origin_send(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray", 43);
            origin_wait_close(o, fd);
            return;
        case AFTER_HOLD: origin_wait_close(o, fd); return;
        case AFTER_RST: {
            struct linger l = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
            return;
        }
        }
    }
    origin_wait_close(o, fd); /* idle keep-alive connection */
}

static inline void *origin_main(void *arg)
{
    origin_t *o = arg;
    while (!atomic_load(&o->stop)) {
        struct pollfd p = {o->listen_fd, POLLIN, 0};
        if (poll(&p, 1, 20) <= 0)
            continue;
        int fd = accept(o->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        unsigned index = (unsigned)atomic_fetch_add(&o->accepts, 1);
        origin_serve(o, fd, index);
        close(fd);
    }
    return NULL;
}

static inline int listen_loopback(int backlog, uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = 0};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, backlog), 0);
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
    *port = ntohs(sin.sin_port);
    return fd;
}

/* ---------------------------------------------------------------- the client side */

static struct {
    h2o_evloop_t *loop;
    h2o_timeout_t t_connect, t_first, t_between;
    origin_client_timeouts_t timeouts;
    h2o_socketpool_t pool;
    int pool_ready;
    int kept; /* finished connections wait on the loop (server/origin_idle.c), as in a proxy worker */
    origin_t origin;
} E;

typedef struct result {
    origin_client_t *client;
    h2o_iovec_t req;
    int method_is_head;
    /* behaviour */
    size_t cancel_after; /* cancel from the body callback once this many bytes arrived */
    int keep_unconsumed; /* consume only at the end */
    int stop_body;       /* return non-zero from the first body call */
    int connect_returns_null, cancel_in_connect, cancel_in_head;
    /* what happened */
    int connect_calls, head_calls, body_calls, calls_after_end;
    const char *connect_err, *head_err, *body_err;
    int head_eos, status, minor;
    char msg[64];
    char headers[8192];
    size_t num_headers;
    int content_type_is_token;
    size_t content_length;
    size_t max_buffered;
    char *body;
    size_t body_len;
    int done;
} result_t;

static inline void env_setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&E, 0, sizeof(E));
    E.loop = h2o_evloop_create();
    h2o_timeout_init(E.loop, &E.t_connect, 2000);
    h2o_timeout_init(E.loop, &E.t_first, 2000);
    h2o_timeout_init(E.loop, &E.t_between, 2000);
    E.timeouts = (origin_client_timeouts_t){&E.t_connect, &E.t_first, &E.t_between};
    E.origin.listen_fd = -1;
}

/* env_setup, and finished connections kept on the loop as the proxy's workers keep them */
static inline void env_setup_kept(void)
{
    env_setup();
    origin_idle_thread_init(E.loop, 2000);
    E.kept = 1;
}

static inline void set_timeouts(uint64_t connect, uint64_t first, uint64_t between)
{
    E.t_connect.timeout = connect;
    E.t_first.timeout = first;
    E.t_between.timeout = between;
}

static inline void pool_init_port(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    h2o_socketpool_init_by_address(&E.pool, (struct sockaddr *)&sin, sizeof(sin), 0, 64);
    h2o_socketpool_set_timeout(&E.pool, E.loop, 5000); /* h2o 2.2 needs one before the first connect */
    E.pool_ready = 1;
}

/* starts the origin with the scripts already in E.origin */
static inline void origin_start(void)
{
    E.origin.listen_fd = listen_loopback(16, &E.origin.port);
    ck_assert_int_eq(pthread_create(&E.origin.thread, NULL, origin_main, &E.origin), 0);
    E.origin.running = 1;
    pool_init_port(E.origin.port);
}

static inline void run_loop_ms(int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        h2o_evloop_run(E.loop, 5);
}

static inline void env_teardown(void)
{
    run_loop_ms(20);
    if (E.kept && E.pool_ready)
        origin_idle_forget_pool(&E.pool);
    if (E.pool_ready)
        h2o_socketpool_dispose(&E.pool);
    run_loop_ms(20);
    if (E.origin.running) {
        atomic_store(&E.origin.stop, 1);
        pthread_join(E.origin.thread, NULL);
    }
    if (E.origin.listen_fd >= 0)
        close(E.origin.listen_fd);
    h2o_timeout_dispose(E.loop, &E.t_connect);
    h2o_timeout_dispose(E.loop, &E.t_first);
    h2o_timeout_dispose(E.loop, &E.t_between);
    if (E.kept)
        origin_idle_thread_dispose();
    h2o_evloop_destroy(E.loop);
}

static inline int on_body(origin_client_t *client, const char *errstr)
{
    result_t *r = origin_client_data(client);
    if (r->done) {
        ++r->calls_after_end;
        return -1;
    }
    ++r->body_calls;
    h2o_buffer_t **buf = origin_client_body_buffer(client);
    if ((*buf)->size > r->max_buffered)
        r->max_buffered = (*buf)->size;
    if (!r->keep_unconsumed || errstr != NULL) {
        r->body = realloc(r->body, r->body_len + (*buf)->size + 1);
        if ((*buf)->size != 0) /* an empty h2o buffer has bytes == NULL */
            memcpy(r->body + r->body_len, (*buf)->bytes, (*buf)->size);
        r->body_len += (*buf)->size;
        r->body[r->body_len] = '\0';
        h2o_buffer_consume(buf, (*buf)->size);
    }
    if (errstr != NULL) {
        r->body_err = errstr;
        r->done = 1;
        return 0;
    }
    if (r->cancel_after != 0 && r->body_len >= r->cancel_after) {
        origin_client_cancel(client);
        r->done = 1;
        return 0;
    }
    if (r->stop_body) {
        r->done = 1;
        return -1;
    }
    return 0;
}

static inline origin_client_body_cb on_head(origin_client_t *client, const char *errstr, int minor_version, int status,
                                            h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers)
{
    result_t *r = origin_client_data(client);
    ++r->head_calls;
    if (r->done) {
        ++r->calls_after_end;
        return NULL;
    }
    if (errstr != NULL && errstr != origin_client_error_is_eos) {
        ck_assert_ptr_null(headers);
        r->head_err = errstr;
        r->done = 1;
        return NULL;
    }
    r->status = status;
    r->minor = minor_version;
    snprintf(r->msg, sizeof(r->msg), "%.*s", (int)msg.len, msg.base);
    r->num_headers = num_headers;
    size_t off = 0;
    for (size_t i = 0; i != num_headers; ++i) {
        ck_assert_ptr_null(headers[i].orig_name);
        if (headers[i].name == &H2O_TOKEN_CONTENT_TYPE->buf)
            r->content_type_is_token = 1;
        off += (size_t)snprintf(r->headers + off, sizeof(r->headers) - off, "%.*s: %.*s\n", (int)headers[i].name->len,
                                headers[i].name->base, (int)headers[i].value.len, headers[i].value.base);
        if (off >= sizeof(r->headers))
            off = sizeof(r->headers) - 1;
    }
    r->content_length = origin_client_content_length(client);
    if (r->cancel_in_head) {
        origin_client_cancel(client);
        r->done = 1;
        return on_body; /* ignored after a cancel */
    }
    if (errstr == origin_client_error_is_eos) {
        r->head_eos = 1;
        r->done = 1;
        return NULL;
    }
    return on_body;
}

static inline origin_client_head_cb on_connect(origin_client_t *client, const char *errstr, h2o_iovec_t **reqbufs,
                                               size_t *reqbufcnt, int *method_is_head)
{
    result_t *r = origin_client_data(client);
    ++r->connect_calls;
    if (r->done) {
        ++r->calls_after_end;
        return NULL;
    }
    if (errstr != NULL) {
        ck_assert_ptr_null(reqbufs);
        r->connect_err = errstr;
        r->done = 1;
        return NULL;
    }
    *reqbufs = &r->req;
    *reqbufcnt = 1;
    *method_is_head = r->method_is_head;
    if (r->connect_returns_null) {
        r->done = 1;
        return NULL;
    }
    if (r->cancel_in_connect) {
        origin_client_cancel(client);
        r->done = 1;
    }
    return on_head;
}

static const char GET_REQ[] = "GET / HTTP/1.1\r\nHost: origin\r\n\r\n";

static inline result_t *new_result(const char *req)
{
    result_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->req = h2o_iovec_init(req, strlen(req));
    r->content_length = 12345;
    return r;
}

static inline void start(result_t *r)
{
    /* timers count from the loop's cached clock: refresh it after the test's own blocking work */
    h2o_evloop_run(E.loop, 0);
    origin_client_connect(&r->client, r, E.loop, &E.pool, &E.timeouts, NULL, on_connect);
}

/* runs the loop until the result is final (bounded), then a little more to catch stray callbacks */
static inline void wait_done(result_t *r)
{
    int64_t deadline = now_ms() + 8000;
    while (!r->done && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_msg(r->done, "the exchange did not finish");
    run_loop_ms(30);
    ck_assert_int_eq(r->calls_after_end, 0);
}

static inline result_t *request(const char *req, int is_head)
{
    result_t *r = new_result(req);
    r->method_is_head = is_head;
    start(r);
    wait_done(r);
    return r;
}

static inline void free_result(result_t *r)
{
    free(r->body);
    free(r);
}

static inline void wait_client_closed(int n)
{
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&E.origin.client_closed) < n && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_int_ge(atomic_load(&E.origin.client_closed), n);
}

/* a script of one exchange on one connection */
static inline void script1(size_t conn, const char *response, enum after after)
{
    conn_script_t *s = &E.origin.scripts[conn];
    memset(s, 0, sizeof(*s));
    s->n = 1;
    s->ex[0].pieces[0] = response;
    s->ex[0].after = after;
    if (conn + 1 > E.origin.nscripts)
        E.origin.nscripts = conn + 1;
}

static inline void assert_ok(const result_t *r, int status, const char *body)
{
    ck_assert_ptr_null(r->connect_err);
    ck_assert_msg(r->head_err == NULL, "head error: %s", r->head_err);
    ck_assert_int_eq(r->status, status);
    ck_assert_msg(r->body_err == origin_client_error_is_eos, "body end: %s", r->body_err ? r->body_err : "(none)");
    ck_assert_uint_eq(r->body_len, strlen(body));
    ck_assert_str_eq(r->body, body);
}

#endif
