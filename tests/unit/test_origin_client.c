/*
 * tests/unit/test_origin_client.c — server/origin_client.c against a scripted origin.
 *
 * Each test runs a real h2o event loop in the test process and an origin thread on
 * 127.0.0.1:<ephemeral> that accepts connections one at a time and plays a script per
 * connection: for each request it reads the request head, writes canned response bytes
 * (in pieces, with delays), then keeps the connection, closes it, resets it or holds it
 * until the client closes. Accepts are counted to check keep-alive reuse. Every wait is
 * bounded; teardown disposes everything so the ASan build also checks for leaks.
 */
#include "server/origin_client.h"

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

enum after { AFTER_KEEP, AFTER_CLOSE, AFTER_HOLD, AFTER_RST };

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
    conn_script_t scripts[MAX_SCRIPTS];
    size_t nscripts;
    char last_request[4096];
} origin_t;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* reads one request head; 0, or -1 when the peer closed / timed out / stop */
static int origin_read_request(origin_t *o, int fd)
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
static void origin_wait_close(origin_t *o, int fd)
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

static void origin_send(int fd, const char *data, size_t len)
{
    while (len != 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return;
        data += n;
        len -= (size_t)n;
    }
}

static void origin_serve(origin_t *o, int fd, unsigned index)
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
        switch (ex->after) {
        case AFTER_KEEP: continue;
        case AFTER_CLOSE: return;
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

static void *origin_main(void *arg)
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

static int listen_loopback(int backlog, uint16_t *port)
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

static void env_setup(void)
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

static void set_timeouts(uint64_t connect, uint64_t first, uint64_t between)
{
    E.t_connect.timeout = connect;
    E.t_first.timeout = first;
    E.t_between.timeout = between;
}

static void pool_init_port(uint16_t port)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    h2o_socketpool_init_by_address(&E.pool, (struct sockaddr *)&sin, sizeof(sin), 0, 64);
    h2o_socketpool_set_timeout(&E.pool, E.loop, 5000); /* h2o 2.2 needs one before the first connect */
    E.pool_ready = 1;
}

/* starts the origin with the scripts already in E.origin */
static void origin_start(void)
{
    E.origin.listen_fd = listen_loopback(16, &E.origin.port);
    ck_assert_int_eq(pthread_create(&E.origin.thread, NULL, origin_main, &E.origin), 0);
    E.origin.running = 1;
    pool_init_port(E.origin.port);
}

static void run_loop_ms(int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        h2o_evloop_run(E.loop, 5);
}

static void env_teardown(void)
{
    run_loop_ms(20);
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
    h2o_evloop_destroy(E.loop);
}

static int on_body(origin_client_t *client, const char *errstr)
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

static origin_client_body_cb on_head(origin_client_t *client, const char *errstr, int minor_version, int status,
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

static origin_client_head_cb on_connect(origin_client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                        int *method_is_head)
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

static result_t *new_result(const char *req)
{
    result_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->req = h2o_iovec_init(req, strlen(req));
    r->content_length = 12345;
    return r;
}

static void start(result_t *r)
{
    /* timers count from the loop's cached clock: refresh it after the test's own blocking work */
    h2o_evloop_run(E.loop, 0);
    origin_client_connect(&r->client, r, E.loop, &E.pool, &E.timeouts, NULL, on_connect);
}

/* runs the loop until the result is final (bounded), then a little more to catch stray callbacks */
static void wait_done(result_t *r)
{
    int64_t deadline = now_ms() + 8000;
    while (!r->done && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_msg(r->done, "the exchange did not finish");
    run_loop_ms(30);
    ck_assert_int_eq(r->calls_after_end, 0);
}

static result_t *request(const char *req, int is_head)
{
    result_t *r = new_result(req);
    r->method_is_head = is_head;
    start(r);
    wait_done(r);
    return r;
}

static void free_result(result_t *r)
{
    free(r->body);
    free(r);
}

static void wait_client_closed(int n)
{
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&E.origin.client_closed) < n && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_int_ge(atomic_load(&E.origin.client_closed), n);
}

/* a script of one exchange on one connection */
static void script1(size_t conn, const char *response, enum after after)
{
    conn_script_t *s = &E.origin.scripts[conn];
    memset(s, 0, sizeof(*s));
    s->n = 1;
    s->ex[0].pieces[0] = response;
    s->ex[0].after = after;
    if (conn + 1 > E.origin.nscripts)
        E.origin.nscripts = conn + 1;
}

static void assert_ok(const result_t *r, int status, const char *body)
{
    ck_assert_ptr_null(r->connect_err);
    ck_assert_msg(r->head_err == NULL, "head error: %s", r->head_err);
    ck_assert_int_eq(r->status, status);
    ck_assert_msg(r->body_err == origin_client_error_is_eos, "body end: %s", r->body_err ? r->body_err : "(none)");
    ck_assert_uint_eq(r->body_len, strlen(body));
    ck_assert_str_eq(r->body, body);
}

/* ---------------------------------------------------------------- framing */

START_TEST(test_content_length_body)
{
    script1(0, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Custom:  v v  \r\n\r\nhello", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    ck_assert_int_eq(r->minor, 1);
    ck_assert_str_eq(r->msg, "OK");
    ck_assert_int_eq(r->content_type_is_token, 1);
    ck_assert_ptr_nonnull(strstr(r->headers, "content-type: text/plain\n"));
    ck_assert_ptr_nonnull(strstr(r->headers, "x-custom: v v\n"));
    ck_assert_uint_eq(r->content_length, 5);
    ck_assert_int_eq(r->connect_calls, 1);
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_str_eq(E.origin.last_request, GET_REQ);
    free_result(r);
}
END_TEST

START_TEST(test_chunked_awkward_splits)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    /* pieces cut inside the header name, the size line, the data, the CRLFs and the trailer */
    const char *p[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chu", "nked\r\n\r\n5", "\r\nhel", "lo\r", "\n6;ext=1\r\n world\r\n1",
        "0\r\n0123456789abcdef\r\n0\r\nTrai",        "ler: x\r\n\r",  "\n",      NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 5;
    s->ex[0].after = AFTER_KEEP;
    /* the same connection again, one byte at a time */
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\ntransfer-encoding: CHUNKED\r\n\r\n3\r\nabc\r\nA\r\n0123456789\r\n0\r\n\r\n";
    s->ex[1].split = 1;
    s->ex[1].delay_ms = 1;
    s->ex[1].after = AFTER_KEEP;
    origin_start();

    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello world0123456789abcdef");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc0123456789");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
}
END_TEST

START_TEST(test_body_left_unconsumed_accumulates)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    const char *p[] = {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                       "4\r\naaaa\r\n",
                       "4\r\nbbbb\r\n",
                       "4\r\ncccc\r\n",
                       "0\r\n\r\n",
                       NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 10;
    origin_start();
    result_t *r = new_result(GET_REQ);
    r->keep_unconsumed = 1;
    start(r);
    wait_done(r);
    assert_ok(r, 200, "aaaabbbbcccc");
    ck_assert_uint_eq(r->max_buffered, 12);
    ck_assert_int_ge(r->body_calls, 2);
    free_result(r);
}
END_TEST

START_TEST(test_until_close_body)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nabc";
    s->ex[0].pieces[1] = "def";
    s->ex[0].delay_ms = 10;
    s->ex[0].after = AFTER_CLOSE;
    script1(1, "HTTP/1.0 200 OK\r\n\r\nold style", AFTER_CLOSE);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "abcdef");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "old style");
    ck_assert_int_eq(r->minor, 0);
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
}
END_TEST

START_TEST(test_head_request_has_no_body)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    origin_start();
    result_t *r = request("HEAD / HTTP/1.1\r\nHost: origin\r\n\r\n", 1);
    ck_assert_ptr_null(r->head_err);
    ck_assert_int_eq(r->head_eos, 1);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->body_calls, 0);
    ck_assert_ptr_nonnull(strstr(r->headers, "content-length: 100\n"));
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1); /* reused */
}
END_TEST

START_TEST(test_304_204_and_empty_length)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 3;
    s->ex[0].pieces[0] = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 10\r\n\r\n";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    s->ex[2].pieces[0] = "HTTP/1.1 204 No Content\r\n\r\nJUNK"; /* bytes after a bodyless response */
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    static const int statuses[] = {304, 200, 204};
    for (int i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_null(r->head_err);
        ck_assert_int_eq(r->head_eos, 1);
        ck_assert_int_eq(r->status, statuses[i]);
        ck_assert_int_eq(r->body_calls, 0);
        free_result(r);
    }
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
    result_t *r = request(GET_REQ, 0); /* the 204's connection had junk: a new one */
    assert_ok(r, 200, "ok");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
}
END_TEST

START_TEST(test_1xx_skipped)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 100 Continue\r\n\r\n";
    s->ex[0].pieces[1] = "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    s->ex[0].delay_ms = 10;
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_ptr_null(strstr(r->headers, "link"));
    free_result(r);
}
END_TEST

/* each response on its own connection; returns the head error (or NULL) */
static void expect_head_errors(const char *const *responses, size_t n, const char *expected)
{
    for (size_t i = 0; i != n; ++i)
        script1(i, responses[i], AFTER_HOLD);
    origin_start();
    for (size_t i = 0; i != n; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_msg(r->head_err != NULL && strcmp(r->head_err, expected) == 0, "response %zu: got %s, want %s", i,
                      r->head_err ? r->head_err : "(none)", expected);
        ck_assert_int_eq(r->body_calls, 0);
        free_result(r);
        wait_client_closed((int)i + 1); /* never pooled */
    }
}

START_TEST(test_invalid_content_length)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 5 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nContent-Length: 5,\r\n\r\nhello",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "invalid content-length");
}
END_TEST

START_TEST(test_conflicting_content_lengths)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello!",
    };
    expect_head_errors(responses, 2, "invalid content-length");
}
END_TEST

START_TEST(test_identical_content_lengths_accepted)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc";
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "abc");
    ck_assert_uint_eq(r->content_length, 3);
    free_result(r);
}
END_TEST

START_TEST(test_unknown_transfer_encoding)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nxxxx",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\nContent-Length: 2\r\n\r\nok",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "unsupported transfer-encoding");
}
END_TEST

START_TEST(test_te_wins_over_content_length)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    s->ex[0].after = AFTER_KEEP;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    ck_assert_uint_eq(r->content_length, SIZE_MAX);
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 2); /* the doubly framed connection was not reused */
}
END_TEST

START_TEST(test_truncated_bodies)
{
    static const char *const responses[] = {
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", /* no last chunk */
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
    };
    static const char *const bodies[] = {"hello", "hello", "hel"};
    for (size_t i = 0; i != 3; ++i)
        script1(i, responses[i], AFTER_CLOSE);
    origin_start();
    for (size_t i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_null(r->head_err);
        ck_assert_int_eq(r->status, 200);
        ck_assert_msg(r->body_err != NULL && strcmp(r->body_err, "truncated body") == 0, "%zu: %s", i,
                      r->body_err ? r->body_err : "(none)");
        ck_assert_str_eq(r->body, bodies[i]);
        free_result(r);
    }
}
END_TEST

START_TEST(test_invalid_chunked_encoding)
{
    script1(0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n", AFTER_HOLD);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_ptr_nonnull(r->body_err);
    ck_assert_str_eq(r->body_err, "invalid chunked encoding");
    free_result(r);
    wait_client_closed(1);
}
END_TEST

START_TEST(test_extra_bytes_dropped_not_reused)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 3;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
    s->ex[0].after = AFTER_KEEP;
    script1(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\nGARBAGE", AFTER_KEEP);
    script1(2, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "hello");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    free_result(r);
    r = request(GET_REQ, 0);
    assert_ok(r, 200, "yes");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 3);
}
END_TEST

START_TEST(test_garbage_heads)
{
    static const char *const responses[] = {
        "FOO BAR\r\n\r\n",
        "HTTP/1.1 2x0 OK\r\n\r\n",
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 999 Nine\r\n\r\n",
        "HTTP/1.1 099 Low\r\n\r\n",
        "HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "\x01\x02\x03\xff\r\n\r\n",
        "\r\n\r\n",
    };
    expect_head_errors(responses, sizeof(responses) / sizeof(responses[0]), "invalid response head");
}
END_TEST

START_TEST(test_obs_fold_and_101_refused)
{
    script1(0, "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 0\r\n\r\n", AFTER_HOLD);
    script1(1, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", AFTER_HOLD);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_str_eq(r->head_err, "invalid response head (obsolete line folding)");
    free_result(r);
    r = request(GET_REQ, 0);
    ck_assert_str_eq(r->head_err, "unexpected 101 response");
    free_result(r);
}
END_TEST

START_TEST(test_status_line_without_reason)
{
    script1(0, "HTTP/1.1 200\r\nContent-Length: 2\n\nok", AFTER_KEEP); /* bare LFs too */
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "ok");
    ck_assert_str_eq(r->msg, "");
    free_result(r);
}
END_TEST

START_TEST(test_huge_heads)
{
    static char big_value[70000 + 200], many[101 * 16 + 100], exactly100[100 * 16 + 100], endless[70000];
    int n = snprintf(big_value, sizeof(big_value), "HTTP/1.1 200 OK\r\nX-Big: ");
    memset(big_value + n, 'a', 70000);
    strcpy(big_value + n + 70000, "\r\nContent-Length: 0\r\n\r\n");
    n = snprintf(many, sizeof(many), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i != 100; ++i)
        n += snprintf(many + n, sizeof(many) - (size_t)n, "X-H%03d: v\r\n", i);
    snprintf(many + n, sizeof(many) - (size_t)n, "Content-Length: 0\r\n\r\n"); /* the 101st */
    n = snprintf(exactly100, sizeof(exactly100), "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i != 99; ++i)
        n += snprintf(exactly100 + n, sizeof(exactly100) - (size_t)n, "X-H%03d: v\r\n", i);
    snprintf(exactly100 + n, sizeof(exactly100) - (size_t)n, "Content-Length: 0\r\n\r\n");
    memset(endless, 'x', sizeof(endless) - 1);
    memcpy(endless, "HTTP/1.1 200 OK\r\nX: ", 20);

    script1(0, big_value, AFTER_HOLD);
    script1(1, many, AFTER_HOLD);
    script1(2, endless, AFTER_HOLD);
    script1(3, exactly100, AFTER_KEEP);
    origin_start();
    for (int i = 0; i != 3; ++i) {
        result_t *r = request(GET_REQ, 0);
        ck_assert_msg(r->head_err != NULL && strcmp(r->head_err, "response head too large") == 0, "%d: %s", i,
                      r->head_err ? r->head_err : "(none)");
        free_result(r);
    }
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_int_eq(r->head_eos, 1);
    ck_assert_uint_eq(r->num_headers, 100);
    free_result(r);
}
END_TEST

/* ---------------------------------------------------------------- connections and timeouts */

START_TEST(test_connect_refused)
{
    uint16_t port;
    int fd = listen_loopback(1, &port);
    close(fd); /* nothing listens there any more */
    pool_init_port(port);
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_nonnull(r->connect_err);
    ck_assert_ptr_null(strstr(r->connect_err, "timeout"));
    ck_assert_int_eq(r->connect_calls, 1);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
}
END_TEST

START_TEST(test_connect_timeout)
{
    /* a listener that never accepts, with its queue full: further SYNs are dropped */
    uint16_t port;
    int lfd = listen_loopback(0, &port);
    int fillers[8], nfill = 0, queue_full = 0;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    while (nfill < 8 && !queue_full) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        fillers[nfill++] = fd;
        connect(fd, (struct sockaddr *)&sin, sizeof(sin));
        struct pollfd p = {fd, POLLOUT, 0};
        if (poll(&p, 1, 200) == 0)
            queue_full = 1;
    }
    if (!queue_full) {
        fprintf(stderr, "test_connect_timeout: SKIPPED (loopback never dropped a SYN)\n");
    } else {
        set_timeouts(200, 2000, 2000);
        pool_init_port(port);
        int64_t t0 = now_ms();
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_nonnull(r->connect_err);
        ck_assert_str_eq(r->connect_err, "connect timeout");
        ck_assert_int_ge(now_ms() - t0, 150);
        ck_assert_int_lt(now_ms() - t0, 3000);
        free_result(r);
    }
    for (int i = 0; i != nfill; ++i)
        close(fillers[i]);
    close(lfd);
}
END_TEST

START_TEST(test_first_byte_timeout)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].no_response = 1;
    s->ex[0].after = AFTER_HOLD;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Le", AFTER_HOLD); /* a head that stops half way */
    origin_start();
    set_timeouts(2000, 200, 2000);
    for (int i = 0; i != 2; ++i) {
        int64_t t0 = now_ms();
        result_t *r = request(GET_REQ, 0);
        ck_assert_ptr_nonnull(r->head_err);
        ck_assert_str_eq(r->head_err, "first byte timeout");
        ck_assert_int_ge(now_ms() - t0, 150);
        free_result(r);
        wait_client_closed(i + 1);
    }
}
END_TEST

START_TEST(test_between_bytes_timeout)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    /* slow but steady: every gap is shorter than the timeout, the whole body longer */
    const char *p[] = {"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n", "a", "b", "c", "d", "e", "f", NULL};
    memcpy(s->ex[0].pieces, p, sizeof(p));
    s->ex[0].delay_ms = 100;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", AFTER_HOLD);
    origin_start();
    set_timeouts(2000, 2000, 400);
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "abcdef");
    free_result(r);

    /* the connection is pooled: the next one runs on a new connection only because the origin's
     * script for connection 0 ends; make the pool forget it */
    h2o_socketpool_dispose(&E.pool);
    pool_init_port(E.origin.port);
    r = request(GET_REQ, 0);
    ck_assert_ptr_null(r->head_err);
    ck_assert_ptr_nonnull(r->body_err);
    ck_assert_str_eq(r->body_err, "between bytes timeout");
    ck_assert_str_eq(r->body, "hello");
    free_result(r);
}
END_TEST

START_TEST(test_keepalive_reuse_and_close)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 3;
    s->n = 3;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
    s->ex[1].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo";
    s->ex[2].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nthree";
    s = &E.origin.scripts[1];
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 4\r\n\r\nfour";
    s->ex[1].pieces[0] = "HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nfive";
    script1(2, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nsix", AFTER_KEEP);
    origin_start();
    static const char *const bodies[] = {"one", "two", "three", "four", "five", "six"};
    static const int accepts[] = {1, 1, 1, 2, 2, 3};
    for (int i = 0; i != 6; ++i) {
        result_t *r = request(GET_REQ, 0);
        assert_ok(r, 200, bodies[i]);
        free_result(r);
        ck_assert_int_eq(atomic_load(&E.origin.accepts), accepts[i]);
    }
    ck_assert_int_eq(atomic_load(&E.origin.requests), 6);
}
END_TEST

static void dead_pooled_connection(enum after how, const char *second_request, int expect_retry)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 2;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    /* the origin drops the idle connection just as the next request arrives on it */
    s->ex[1].no_response = 1;
    s->ex[1].after = how;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    assert_ok(r, 200, "first");
    free_result(r);
    r = request(second_request, 0);
    ck_assert_int_eq(r->connect_calls, 1);
    if (expect_retry) {
        assert_ok(r, 200, "second");
        ck_assert_int_eq(r->head_calls, 1);
        ck_assert_int_eq(atomic_load(&E.origin.accepts), 2);
        ck_assert_int_eq(atomic_load(&E.origin.requests), 3);
    } else {
        ck_assert_ptr_nonnull(r->head_err);
        ck_assert_ptr_null(strstr(r->head_err, "timeout"));
        ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
    }
    free_result(r);
}

START_TEST(test_dead_pooled_connection_closed_retried)
{
    dead_pooled_connection(AFTER_CLOSE, GET_REQ, 1);
}
END_TEST

START_TEST(test_dead_pooled_connection_reset_retried)
{
    dead_pooled_connection(AFTER_RST, GET_REQ, 1);
}
END_TEST

START_TEST(test_dead_pooled_connection_post_not_retried)
{
    dead_pooled_connection(AFTER_CLOSE, "POST /form HTTP/1.1\r\nHost: origin\r\nContent-Length: 0\r\n\r\n", 0);
}
END_TEST

START_TEST(test_fresh_connection_closed_not_retried)
{
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 2;
    s->n = 1;
    s->ex[0].no_response = 1;
    s->ex[0].after = AFTER_CLOSE;
    script1(1, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", AFTER_KEEP);
    origin_start();
    result_t *r = request(GET_REQ, 0);
    ck_assert_ptr_nonnull(r->head_err);
    ck_assert_str_eq(r->head_err, "connection closed before the response");
    free_result(r);
    ck_assert_int_eq(atomic_load(&E.origin.accepts), 1);
}
END_TEST

/* ---------------------------------------------------------------- cancel and early stops */

START_TEST(test_cancel_mid_body)
{
    static char big[65536];
    memset(big, 'z', sizeof(big));
    conn_script_t *s = &E.origin.scripts[0];
    E.origin.nscripts = 1;
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    s->ex[0].pieces[1] = big;
    s->ex[0].lens[1] = sizeof(big);
    s->ex[0].after = AFTER_HOLD;
    origin_start();
    result_t *r = new_result(GET_REQ);
    r->cancel_after = 1;
    start(r);
    wait_done(r);
    ck_assert_ptr_null(r->body_err);
    ck_assert_int_ge(r->body_len, 1);
    run_loop_ms(100);
    ck_assert_int_eq(r->calls_after_end, 0);
    wait_client_closed(1);
    free_result(r);
}
END_TEST

START_TEST(test_cancel_while_connecting)
{
    /* a listener nobody accepts on: the connection is still pending when it is cancelled */
    uint16_t port;
    int lfd = listen_loopback(16, &port);
    pool_init_port(port);
    result_t *r = new_result(GET_REQ);
    start(r);
    origin_client_cancel(r->client);
    run_loop_ms(100);
    ck_assert_int_eq(r->connect_calls + r->head_calls + r->body_calls, 0);
    free_result(r);
    close(lfd);
}
END_TEST

START_TEST(test_cancel_from_outside_and_in_callbacks)
{
    for (int i = 0; i != 3; ++i) {
        conn_script_t *s = &E.origin.scripts[i];
        s->n = 1;
        s->ex[0].no_response = i == 0;
        s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello";
        s->ex[0].after = AFTER_HOLD;
    }
    E.origin.nscripts = 3;
    origin_start();

    /* while waiting for the head (connection 0 never answers): no callback after the cancel */
    result_t *r = new_result(GET_REQ);
    start(r);
    int64_t deadline = now_ms() + 3000;
    while (atomic_load(&E.origin.requests) < 1 && now_ms() < deadline)
        h2o_evloop_run(E.loop, 10);
    ck_assert_int_eq(r->connect_calls, 1);
    origin_client_cancel(r->client);
    run_loop_ms(100);
    ck_assert_int_eq(r->head_calls + r->body_calls, 0);
    free_result(r);
    wait_client_closed(1);

    /* from inside the connect callback: the request is never sent */
    r = new_result(GET_REQ);
    r->cancel_in_connect = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
    wait_client_closed(2);
    ck_assert_int_eq(atomic_load(&E.origin.requests), 1);

    /* from inside the head callback: no body callback */
    r = new_result(GET_REQ);
    r->cancel_in_head = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 1);
    ck_assert_int_eq(r->status, 200);
    ck_assert_int_eq(r->body_calls, 0);
    free_result(r);
    wait_client_closed(3);
}
END_TEST

START_TEST(test_callbacks_stopping)
{
    static char big[65536];
    memset(big, 'q', sizeof(big));
    script1(0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", AFTER_HOLD);
    conn_script_t *s = &E.origin.scripts[1];
    s->n = 1;
    s->ex[0].pieces[0] = "HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n";
    s->ex[0].pieces[1] = big;
    s->ex[0].lens[1] = sizeof(big);
    s->ex[0].after = AFTER_HOLD;
    E.origin.nscripts = 2;
    origin_start();

    /* the connect callback returns NULL: the request is never sent, the connection closed */
    result_t *r = new_result(GET_REQ);
    r->connect_returns_null = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->head_calls, 0);
    free_result(r);
    wait_client_closed(1);
    ck_assert_int_eq(atomic_load(&E.origin.requests), 0);

    /* the body callback returns non-zero: nothing more, the connection closed */
    r = new_result(GET_REQ);
    r->stop_body = 1;
    start(r);
    wait_done(r);
    ck_assert_int_eq(r->body_calls, 1);
    ck_assert_ptr_null(r->body_err);
    free_result(r);
    wait_client_closed(2);
}
END_TEST

static Suite *origin_client_suite(void)
{
    Suite *s = suite_create("origin_client");
    TCase *tc = tcase_create("framing");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_content_length_body);
    tcase_add_test(tc, test_chunked_awkward_splits);
    tcase_add_test(tc, test_body_left_unconsumed_accumulates);
    tcase_add_test(tc, test_until_close_body);
    tcase_add_test(tc, test_head_request_has_no_body);
    tcase_add_test(tc, test_304_204_and_empty_length);
    tcase_add_test(tc, test_1xx_skipped);
    tcase_add_test(tc, test_invalid_content_length);
    tcase_add_test(tc, test_conflicting_content_lengths);
    tcase_add_test(tc, test_identical_content_lengths_accepted);
    tcase_add_test(tc, test_unknown_transfer_encoding);
    tcase_add_test(tc, test_te_wins_over_content_length);
    tcase_add_test(tc, test_truncated_bodies);
    tcase_add_test(tc, test_invalid_chunked_encoding);
    tcase_add_test(tc, test_extra_bytes_dropped_not_reused);
    tcase_add_test(tc, test_garbage_heads);
    tcase_add_test(tc, test_obs_fold_and_101_refused);
    tcase_add_test(tc, test_status_line_without_reason);
    tcase_add_test(tc, test_huge_heads);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, env_setup, env_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_connect_refused);
    tcase_add_test(tc, test_connect_timeout);
    tcase_add_test(tc, test_first_byte_timeout);
    tcase_add_test(tc, test_between_bytes_timeout);
    tcase_add_test(tc, test_keepalive_reuse_and_close);
    tcase_add_test(tc, test_dead_pooled_connection_closed_retried);
    tcase_add_test(tc, test_dead_pooled_connection_reset_retried);
    tcase_add_test(tc, test_dead_pooled_connection_post_not_retried);
    tcase_add_test(tc, test_fresh_connection_closed_not_retried);
    tcase_add_test(tc, test_cancel_mid_body);
    tcase_add_test(tc, test_cancel_while_connecting);
    tcase_add_test(tc, test_cancel_from_outside_and_in_callbacks);
    tcase_add_test(tc, test_callbacks_stopping);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(origin_client_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
