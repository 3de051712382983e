/*
 * tests/unit/test_backend_module.c — the backend module itself against a real store
 * (server/backend*.c): seeding, persisting and reloading the set, commits that are all or
 * nothing, picks with exclusion, "first", shield tiers, hashing, override_host and max_conn,
 * a set swapped under a worker holding a pick, the health prober against a scripted
 * loopback server, and purge forwarding to a shield's admin API.
 * Network: 127.0.0.1 and ephemeral ports only; every wait is bounded. Every test works in
 * its own directory under the suite's /tmp base.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
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
#include <h2o.h>
#include "server/backend.h"
#include "server/backend_int.h"
#include "server/worker.h"
#include "storage/store.h"
#include "tests/unit/unit_tmp.h"
#include "tests/unit/unit_backend.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- the module with a store */

typedef struct env {
    char dir[128];
    store_t *store;
    config_t cfg;
    worker_t w;
    int worker_ready;
} env_t;

static void env_open(env_t *e, int num_backends)
{
    char err[300];
    memset(e, 0, sizeof(*e));
    snprintf(e->dir, sizeof(e->dir), "%s/t-XXXXXX", unit_tmp_base);
    ck_assert_ptr_nonnull(mkdtemp(e->dir));
    store_options_t opt = {.dir = e->dir, .map_size = 16 << 20};
    ck_assert_int_eq(store_open(&e->store, &opt, err, sizeof(err)), 0);
    config_defaults(&e->cfg);
    e->cfg.threads = 1;
    for (int i = 0; i < num_backends; ++i) {
        strcpy(e->cfg.backends[i].host, "127.0.0.1");
        e->cfg.backends[i].port = (uint16_t)(9101 + i);
    }
    e->cfg.num_backends = (size_t)num_backends;
}

static void env_init_module(env_t *e)
{
    char err[300];
    int rc = backend_module_init(&e->cfg, e->store, err, sizeof(err));
    ck_assert_msg(rc == 0, "backend_module_init: %s", err);
    e->w.magic = WORKER_MAGIC;
    e->w.index = 0;
    e->w.loop = h2o_evloop_create();
    backend_worker_init(&e->w);
    e->worker_ready = 1;
}

static void run_loop(env_t *e, int ms)
{
    int64_t end = now_ms() + ms;
    while (now_ms() < end)
        h2o_evloop_run(e->w.loop, 5);
}

static void env_stop_module(env_t *e)
{
    if (e->worker_ready) {
        backend_worker_dispose(&e->w);
        h2o_evloop_run(e->w.loop, 0);
        h2o_evloop_destroy(e->w.loop);
        e->worker_ready = 0;
    }
    backend_module_stop();
}

static void env_close(env_t *e)
{
    env_stop_module(e);
    store_close(&e->store);
    unit_rm_tree(e->dir);
}

/* pick n times (releasing each), counting by backend name */
static void pick_counts(env_t *e, int n, const char **names, unsigned *counts, size_t num)
{
    memset(counts, 0, num * sizeof(*counts));
    for (int i = 0; i < n; ++i) {
        backend_pick_t p;
        ck_assert_int_eq(backend_pick(&e->w, NULL, NULL, &p), 0);
        ck_assert_ptr_nonnull(p.pool);
        ck_assert_ptr_nonnull(p.timeouts);
        size_t k;
        for (k = 0; k < num; ++k)
            if (strcmp(backend_name(p.backend), names[k]) == 0)
                break;
        ck_assert_msg(k < num, "unexpected backend %s", backend_name(p.backend));
        counts[k]++;
        backend_release(&p.backend);
        ck_assert_ptr_null(p.backend);
    }
}

START_TEST(module_seeds_persists_and_reloads)
{
    env_t e;
    env_open(&e, 2);
    env_init_module(&e);
    backend_config_t *c = backend_config_get();
    ck_assert_ptr_nonnull(c);
    ck_assert_uint_eq(c->num_backends, 2);
    ck_assert_str_eq(c->backends[1].name, "backend2");
    /* an API-style change: weights and a third backend */
    c->backends[0].weight = 1;
    c->backends[1].weight = 3;
    c->backends[c->num_backends] = c->backends[0];
    strcpy(c->backends[c->num_backends].name, "extra");
    c->backends[c->num_backends].weight = 0;
    c->num_backends++;
    char detail[300];
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    backend_config_free(c);
    env_stop_module(&e);

    /* a restart with other --backend flags: the store wins */
    e.cfg.backends[0].port = 1;
    e.cfg.num_backends = 1;
    env_init_module(&e);
    c = backend_config_get();
    ck_assert_uint_eq(c->num_backends, 3);
    ck_assert_uint_eq(c->backends[0].port, 9101);
    ck_assert_uint_eq(c->backends[1].weight, 3);
    ck_assert_str_eq(c->backends[2].name, "extra");
    backend_config_free(c);
    const char *names[3] = {"backend1", "backend2", "extra"};
    unsigned counts[3];
    pick_counts(&e, 400, names, counts, 3);
    ck_assert_uint_eq(counts[0], 100);
    ck_assert_uint_eq(counts[1], 300);
    ck_assert_uint_eq(counts[2], 0);
    backend_stat_t st[4];
    ck_assert_uint_eq(backend_stats_snapshot(st, 4), 3);
    ck_assert_uint_eq(st[1].requests, 300);
    ck_assert_str_eq(st[1].address, "127.0.0.1:9102");
    ck_assert_int_eq(st[0].healthy, 1);
    env_close(&e);
}
END_TEST

START_TEST(module_commit_is_all_or_nothing)
{
    env_t e;
    char detail[300];
    env_open(&e, 1);
    env_init_module(&e);
    backend_config_t *c = backend_config_get();
    strcpy(c->backends[0].healthcheck, "missing");
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_str_eq(detail, "healthcheck: no health check named 'missing'");
    c->backends[0].healthcheck[0] = '\0';
    strcpy(c->backends[0].address, "no-such-host.invalid");
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_msg(strncmp(detail, "address:", 8) == 0, "%s", detail);
    backend_config_free(c);
    c = backend_config_get();
    ck_assert_str_eq(c->backends[0].address, "127.0.0.1"); /* nothing half-applied */
    backend_config_free(c);
    /* and nothing reached the store: a reload sees the seeded configuration */
    env_stop_module(&e);
    env_init_module(&e);
    c = backend_config_get();
    ck_assert_str_eq(c->backends[0].address, "127.0.0.1");
    ck_assert_str_eq(c->backends[0].healthcheck, "");
    backend_config_free(c);
    env_close(&e);
}
END_TEST

START_TEST(module_pick_exclude_shield_first_and_swap)
{
    env_t e;
    char detail[300];
    env_open(&e, 3);
    env_init_module(&e);
    backend_pick_t p, q;

    /* exclude: a retry never lands on the backend that just failed */
    for (int i = 0; i < 30; ++i) {
        ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
        ck_assert_int_eq(backend_pick(&e.w, NULL, p.backend, &q), 0);
        ck_assert_str_ne(backend_name(q.backend), backend_name(p.backend));
        backend_report(p.backend, 0);
        backend_release(&p.backend);
        backend_release(&q.backend);
    }

    /* "first": the first backend wins every time */
    backend_config_t *c = backend_config_get();
    c->load_balancing = BACKEND_LB_FIRST;
    c->load_balancing_stored = 1;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    for (int i = 0; i < 10; ++i) {
        ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
        ck_assert_str_eq(backend_name(p.backend), "backend1");
        /* ... and the retry after it failed goes to the next one */
        ck_assert_int_eq(backend_pick(&e.w, NULL, p.backend, &q), 0);
        ck_assert_str_eq(backend_name(q.backend), "backend2");
        backend_release(&q.backend);
        backend_release(&p.backend);
    }

    /* a commit that changes nothing keeps the very same backend objects (and their pools) */
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    const backend_t *before = p.backend;
    h2o_socketpool_t *before_pool = p.pool;
    backend_release(&p.backend);
    backend_config_t *same = backend_config_get();
    json_t *addr = json_pack("{s:s}", "address", "127.0.0.100");
    ck_assert_int_eq(backend_conf_apply_json(&same->backends[0], addr, detail, sizeof(detail)), 0);
    json_decref(addr);
    addr = json_pack("{s:s}", "address", "127.0.0.1"); /* shorter again: no stale bytes may count */
    ck_assert_int_eq(backend_conf_apply_json(&same->backends[0], addr, detail, sizeof(detail)), 0);
    json_decref(addr);
    ck_assert_int_eq(backend_config_commit(same, detail, sizeof(detail)), 0);
    backend_config_free(same);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    ck_assert_ptr_eq(p.backend, before);
    ck_assert_ptr_eq(p.pool, before_pool);
    backend_release(&p.backend);

    /* hold a pick across a change that removes its backend: the reference (and pool) stay valid */
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    h2o_socketpool_t *held_pool = p.pool;
    memmove(&c->backends[0], &c->backends[1], 2 * sizeof(c->backends[0]));
    c->num_backends = 2;
    /* and make backend3 a shield: it takes all traffic while it is usable */
    strcpy(c->backends[1].shield, "shield");
    c->load_balancing = BACKEND_LB_ROUND_ROBIN;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    run_loop(&e, 1100); /* a tick: the old instance must survive, it has a user */
    ck_assert_str_eq(backend_name(p.backend), "backend1");
    ck_assert_uint_eq(held_pool->capacity, 200);
    for (int i = 0; i < 10; ++i) {
        ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &q), 0);
        ck_assert_str_eq(backend_name(q.backend), "backend3");
        backend_release(&q.backend);
    }
    /* excluding the only shield falls back to the origins */
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &q), 0);
    backend_pick_t r;
    ck_assert_int_eq(backend_pick(&e.w, NULL, q.backend, &r), 0);
    ck_assert_str_eq(backend_name(r.backend), "backend2");
    backend_release(&q.backend);
    backend_release(&r.backend);
    backend_release(&p.backend);
    run_loop(&e, 1100); /* now the old one goes */

    /* hash mode: each key always to the same backend */
    c->backends[1].shield[0] = '\0';
    c->load_balancing = BACKEND_LB_HASH;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    for (unsigned k = 0; k < 50; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        ck_assert_int_eq(backend_pick(&e.w, h, NULL, &p), 0);
        for (int again = 0; again < 3; ++again) {
            ck_assert_int_eq(backend_pick(&e.w, h, NULL, &q), 0);
            ck_assert_ptr_eq(q.backend, p.backend);
            backend_release(&q.backend);
        }
        backend_release(&p.backend);
    }

    /* override_host is handed to the proxy */
    strcpy(c->backends[0].override_host, "origin.example.com");
    c->num_backends = 1;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    ck_assert_uint_eq(p.host_header_len, strlen("origin.example.com"));
    ck_assert(memcmp(p.host_header, "origin.example.com", p.host_header_len) == 0);
    backend_release(&p.backend);

    /* max_conn: a backend with that many fetches in flight is skipped */
    c->backends[0].max_conn = 2;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &q), 0);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &r), -1);
    backend_stat_t st;
    ck_assert_uint_eq(backend_stats_snapshot(&st, 1), 1);
    ck_assert_uint_eq(st.inflight, 2);
    backend_release(&q.backend);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &r), 0);
    backend_release(&r.backend);
    backend_release(&p.backend);
    ck_assert_uint_eq(backend_stats_snapshot(&st, 1), 1);
    ck_assert_uint_eq(st.inflight, 0);

    /* no backends: -1 */
    c->num_backends = 0;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), -1);
    backend_config_free(c);
    env_close(&e);
}
END_TEST

/* ---------------------------------------------------------------- a scripted loopback server */

typedef struct tiny_server {
    int fd;
    uint16_t port;
    pthread_t thread;
    atomic_int stop, serving; /* serving 0: accept and close at once (a dead origin) */
    atomic_int requests;
    int status;
    char last_request[4096];
    pthread_mutex_t lock;
} tiny_server_t;

static void *tiny_main(void *arg)
{
    tiny_server_t *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
        if (poll(&pfd, 1, 20) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        if (!atomic_load(&s->serving)) {
            close(c);
            continue;
        }
        char buf[4096];
        size_t len = 0;
        int64_t deadline = now_ms() + 2000;
        while (len < sizeof(buf) - 1 && now_ms() < deadline) {
            struct pollfd cp = {.fd = c, .events = POLLIN};
            if (poll(&cp, 1, 50) <= 0)
                continue;
            ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            char *end = strstr(buf, "\r\n\r\n");
            if (end != NULL) {
                const char *cl = strcasestr(buf, "content-length: ");
                size_t body = cl != NULL ? strtoul(cl + 16, NULL, 10) : 0;
                if (len >= (size_t)(end + 4 - buf) + body)
                    break;
            }
        }
        buf[len] = '\0';
        pthread_mutex_lock(&s->lock);
        memcpy(s->last_request, buf, len + 1);
        pthread_mutex_unlock(&s->lock);
        atomic_fetch_add(&s->requests, 1);
        char resp[200];
        int n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok", s->status);
        if (write(c, resp, (size_t)n) < 0) {
            /* the client went away: fine */
        }
        close(c);
    }
    return NULL;
}

static void tiny_start(tiny_server_t *s, int status)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->status = status;
    atomic_store(&s->serving, 1);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sin);
    ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(s->fd, 64), 0);
    getsockname(s->fd, (struct sockaddr *)&sin, &sl);
    s->port = ntohs(sin.sin_port);
    ck_assert_int_eq(pthread_create(&s->thread, NULL, tiny_main, s), 0);
}

static void tiny_stop(tiny_server_t *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->fd);
    pthread_mutex_destroy(&s->lock);
}

static int stat_of(const char *name, backend_stat_t *out)
{
    backend_stat_t all[8];
    size_t n = backend_stats_snapshot(all, 8);
    for (size_t i = 0; i < n && i < 8; ++i)
        if (strcmp(all[i].name, name) == 0) {
            *out = all[i];
            return 0;
        }
    return -1;
}

/* wait (bounded) until the named backend's health is `want` */
static int wait_health(const char *name, int want, int timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    backend_stat_t st;
    while (now_ms() < end) {
        if (stat_of(name, &st) == 0 && st.healthy == want)
            return 1;
        usleep(10000);
    }
    return 0;
}

START_TEST(prober_marks_down_and_up)
{
    env_t e;
    tiny_server_t s;
    char detail[300], err[300];
    tiny_start(&s, 200);
    env_open(&e, 0);
    env_init_module(&e);
    ck_assert_int_eq(backend_module_start(err, sizeof(err)), 0);

    backend_config_t *c = config_with(1, 1);
    c->backends[0].port = s.port;
    strcpy(c->backends[0].healthcheck, "hc1");
    strcpy(c->healthchecks[0].path, "/ping");
    strcpy(c->healthchecks[0].host, "health.example.com");
    c->healthchecks[0].check_interval = 50;
    c->healthchecks[0].timeout = 300;
    c->healthchecks[0].window = 3;
    c->healthchecks[0].threshold = 2;
    c->healthchecks[0].initial = 1; /* starts sick: one good probe makes it healthy */
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    backend_pick_t p;
    ck_assert_int_eq(wait_health("b1", 1, 3000), 1);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    backend_release(&p.backend);
    pthread_mutex_lock(&s.lock);
    ck_assert_msg(strncmp(s.last_request, "HEAD /ping HTTP/1.1\r\n", 21) == 0, "%s", s.last_request);
    ck_assert_ptr_nonnull(strstr(s.last_request, "host: health.example.com\r\n"));
    pthread_mutex_unlock(&s.lock);
    backend_stat_t st;
    ck_assert_int_eq(stat_of("b1", &st), 0);
    ck_assert_int_eq(st.has_healthcheck, 1);
    ck_assert_uint_gt(st.probes, 0);
    ck_assert_int_gt(st.last_probe_ms, 0);
    ck_assert_uint_gt(st.probe_latency_us, 0);

    /* the origin dies: within `window` failed probes it is out */
    atomic_store(&s.serving, 0);
    ck_assert_int_eq(wait_health("b1", 0, 3000), 1);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), -1);
    /* a wrong status is a failure too */
    s.status = 500;
    atomic_store(&s.serving, 1);
    usleep(400000);
    ck_assert_int_eq(stat_of("b1", &st), 0);
    ck_assert_int_eq(st.healthy, 0);
    /* it recovers */
    s.status = 200;
    ck_assert_int_eq(wait_health("b1", 1, 3000), 1);
    ck_assert_int_eq(backend_pick(&e.w, NULL, NULL, &p), 0);
    backend_release(&p.backend);

    /* an edit that keeps the health check keeps the state (no reset to `initial`) */
    c->backends[0].weight = 7;
    ck_assert_int_eq(backend_config_commit(c, detail, sizeof(detail)), 0);
    ck_assert_int_eq(stat_of("b1", &st), 0);
    ck_assert_int_eq(st.healthy, 1);
    backend_config_free(c);
    env_close(&e);
    tiny_stop(&s);
}
END_TEST

typedef struct fwd_result {
    atomic_int calls;
    int err;
} fwd_result_t;

static void on_forwarded(void *arg, const store_purge_result_t *res)
{
    fwd_result_t *r = arg;
    r->err = res->err;
    atomic_fetch_add(&r->calls, 1);
}

static int wait_calls(fwd_result_t *r, int n)
{
    int64_t end = now_ms() + 5000;
    while (now_ms() < end && atomic_load(&r->calls) < n)
        usleep(5000);
    return atomic_load(&r->calls);
}

START_TEST(purge_forwarding)
{
    env_t e;
    tiny_server_t s;
    char err[300];
    fwd_result_t r = {0};

    /* no --shield-admin: nothing to forward */
    env_open(&e, 1);
    env_init_module(&e);
    ck_assert_int_eq(backend_forward_purge(H2O_STRLIT("/purge/x/y"), NULL, 0, NULL, 0, 0, on_forwarded, &r), 1);
    env_stop_module(&e);

    tiny_start(&s, 200);
    snprintf(e.cfg.shield_admin.host, sizeof(e.cfg.shield_admin.host), "127.0.0.1");
    e.cfg.shield_admin.port = s.port;
    strcpy(e.cfg.shield_token, "tok-123");
    env_init_module(&e);
    ck_assert_int_eq(backend_module_start(err, sizeof(err)), 0);
    ck_assert_int_eq(
        backend_forward_purge(H2O_STRLIT("/service/sid/purge"), H2O_STRLIT("a b"), H2O_STRLIT("{}"), 1, on_forwarded, &r), 0);
    ck_assert_int_eq(wait_calls(&r, 1), 1);
    ck_assert_int_eq(r.err, 0);
    pthread_mutex_lock(&s.lock);
    ck_assert_msg(strncmp(s.last_request, "POST /service/sid/purge HTTP/1.1\r\n", 34) == 0, "%s", s.last_request);
    ck_assert_ptr_nonnull(strstr(s.last_request, "fastly-key: tok-123\r\n"));
    ck_assert_ptr_nonnull(strstr(s.last_request, "surrogate-key: a b\r\n"));
    ck_assert_ptr_nonnull(strstr(s.last_request, "fastly-soft-purge: 1\r\n"));
    ck_assert_ptr_nonnull(strstr(s.last_request, "\r\n\r\n{}"));
    pthread_mutex_unlock(&s.lock);

    /* the shield refuses: an error for the caller */
    s.status = 403;
    ck_assert_int_eq(backend_forward_purge(H2O_STRLIT("/purge/h/p"), NULL, 0, NULL, 0, 0, on_forwarded, &r), 0);
    ck_assert_int_eq(wait_calls(&r, 2), 2);
    ck_assert_int_eq(r.err, BACKEND_EFORWARD);
    /* the shield is unreachable */
    atomic_store(&s.serving, 0);
    ck_assert_int_eq(backend_forward_purge(H2O_STRLIT("/purge/h/p"), NULL, 0, NULL, 0, 0, on_forwarded, &r), 0);
    ck_assert_int_eq(wait_calls(&r, 3), 3);
    ck_assert_int_eq(r.err, BACKEND_EFORWARD);
    /* bytes that cannot go into a request head */
    ck_assert_int_eq(backend_forward_purge(H2O_STRLIT("/purge/a b"), NULL, 0, NULL, 0, 0, on_forwarded, &r), BACKEND_EINVAL);
    ck_assert_int_eq(backend_forward_purge(H2O_STRLIT("/p"), H2O_STRLIT("a\r\nx: y"), NULL, 0, 0, on_forwarded, &r),
                     BACKEND_EINVAL);
    env_close(&e);
    tiny_stop(&s);
    ck_assert_int_eq(atomic_load(&r.calls), 3); /* exactly once each */
}
END_TEST

static Suite *backend_module_suite(void)
{
    Suite *s = suite_create("backend_module");
    TCase *tm = tcase_create("module");
    tcase_set_timeout(tm, 30);
    tcase_add_test(tm, module_seeds_persists_and_reloads);
    tcase_add_test(tm, module_commit_is_all_or_nothing);
    tcase_add_test(tm, module_pick_exclude_shield_first_and_swap);
    tcase_add_test(tm, prober_marks_down_and_up);
    tcase_add_test(tm, purge_forwarding);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (unit_tmp_base_make("backend-module") != 0)
        return 1;
    SRunner *sr = srunner_create(backend_module_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}
