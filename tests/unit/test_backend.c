/*
 * tests/unit/test_backend.c — the backend module (server/backend*.c): the health window,
 * weighted round robin, rendezvous hashing, validation of backend and health-check objects
 * (JSON and form bodies), the persisted document, and the module itself against a real
 * store: seeding, reloading, commits that swap the set under a worker, picks with exclusion
 * and shield tiers, the prober against a scripted loopback server, and purge forwarding to a
 * shield's admin API.
 * Network: 127.0.0.1 and ephemeral ports only; every wait is bounded.
 */
#include <arpa/inet.h>
#include <check.h>
#include <fcntl.h>
#include <math.h>
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

/* ---------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void key_hash(unsigned i, uint8_t out[CACHE_HASH_LEN])
{
    char key[64];
    int n = snprintf(key, sizeof(key), "www.example.com/object/%u", i);
    obj_key_hash(key, (size_t)n, out);
}

static json_t *js(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", text, err.text);
    return v;
}

/* ---------------------------------------------------------------- health window */

START_TEST(window_threshold_math)
{
    backend_window_t w;
    /* Varnish/Fastly defaults: window 5, threshold 3, initial 2: sick until one good probe */
    backend_window_init(&w, 5, 3, 2);
    ck_assert_uint_eq(backend_window_successes(&w), 2);
    ck_assert_int_eq(backend_window_healthy(&w), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    ck_assert_uint_eq(backend_window_successes(&w), 3);
    /* all good, then failing: healthy until fewer than 3 of the last 5 are good */
    for (int i = 0; i < 5; ++i)
        backend_window_record(&w, 1);
    ck_assert_uint_eq(backend_window_successes(&w), 5);
    ck_assert_int_eq(backend_window_record(&w, 0), 1); /* 4 of 5 */
    ck_assert_int_eq(backend_window_record(&w, 0), 1); /* 3 of 5 */
    ck_assert_int_eq(backend_window_record(&w, 0), 0); /* 2 of 5: window - threshold + 1 = 3 failures */
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_uint_eq(backend_window_successes(&w), 0);
    /* recovery takes `threshold` good probes */
    ck_assert_int_eq(backend_window_record(&w, 1), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    /* the oldest result leaves the window: alternating results keep a steady count */
    backend_window_init(&w, 4, 2, 0);
    for (int i = 0; i < 20; ++i)
        backend_window_record(&w, i % 2);
    ck_assert_uint_eq(backend_window_successes(&w), 2);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
}
END_TEST

START_TEST(window_edges)
{
    backend_window_t w;
    backend_window_init(&w, 64, 64, 64);
    ck_assert_uint_eq(backend_window_successes(&w), 64);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_uint_eq(backend_window_successes(&w), 63);
    backend_window_init(&w, 1, 1, 1);
    ck_assert_int_eq(backend_window_healthy(&w), 1);
    ck_assert_int_eq(backend_window_record(&w, 0), 0);
    ck_assert_int_eq(backend_window_record(&w, 1), 1);
    /* initial larger than what fits is clipped to the window */
    backend_window_init(&w, 3, 3, 10);
    ck_assert_uint_eq(backend_window_successes(&w), 3);
}
END_TEST

/* ---------------------------------------------------------------- weighted round robin */

START_TEST(wrr_follows_weights_exactly)
{
    uint32_t weights[3] = {100, 200, 300};
    unsigned char eligible[3] = {1, 1, 1};
    int64_t cur[3] = {0};
    unsigned counts[3] = {0};
    for (int i = 0; i < 600; ++i) {
        size_t k = backend_wrr_pick(cur, weights, eligible, 3);
        ck_assert_uint_lt(k, 3);
        counts[k]++;
    }
    ck_assert_uint_eq(counts[0], 100);
    ck_assert_uint_eq(counts[1], 200);
    ck_assert_uint_eq(counts[2], 300);
}
END_TEST

START_TEST(wrr_is_smooth)
{
    /* smooth: with weights 5,1,1 the heavy one never takes more than 5 turns in a row, and the
     * light ones appear in every window of 7 */
    uint32_t weights[3] = {5, 1, 1};
    unsigned char eligible[3] = {1, 1, 1};
    int64_t cur[3] = {0};
    size_t seq[70];
    for (int i = 0; i < 70; ++i)
        seq[i] = backend_wrr_pick(cur, weights, eligible, 3);
    for (int start = 0; start + 7 <= 70; start += 7) {
        unsigned c[3] = {0};
        for (int i = start; i < start + 7; ++i)
            c[seq[i]]++;
        ck_assert_uint_eq(c[0], 5);
        ck_assert_uint_eq(c[1], 1);
        ck_assert_uint_eq(c[2], 1);
    }
    int run = 0, max_run = 0;
    for (int i = 0; i < 70; ++i) {
        run = seq[i] == 0 ? run + 1 : 0;
        max_run = run > max_run ? run : max_run;
    }
    ck_assert_int_le(max_run, 5);
    ck_assert_int_ge(max_run, 2);
}
END_TEST

START_TEST(wrr_eligibility_and_zero_weights)
{
    uint32_t weights[4] = {10, 0, 10, 10};
    unsigned char eligible[4] = {1, 1, 0, 1};
    int64_t cur[4] = {0};
    unsigned counts[4] = {0};
    for (int i = 0; i < 100; ++i)
        counts[backend_wrr_pick(cur, weights, eligible, 4)]++;
    ck_assert_uint_eq(counts[0], 50);
    ck_assert_uint_eq(counts[1], 0); /* weight 0: no traffic while another can take it */
    ck_assert_uint_eq(counts[2], 0); /* not eligible (unhealthy) */
    ck_assert_uint_eq(counts[3], 50);
    /* only zero weights left: they share equally */
    unsigned char only_zero[4] = {0, 1, 0, 0};
    ck_assert_uint_eq(backend_wrr_pick(cur, weights, only_zero, 4), 1);
    uint32_t zeros[2] = {0, 0};
    unsigned char both[2] = {1, 1};
    int64_t c2[2] = {0};
    unsigned zc[2] = {0};
    for (int i = 0; i < 10; ++i)
        zc[backend_wrr_pick(c2, zeros, both, 2)]++;
    ck_assert_uint_eq(zc[0], 5);
    ck_assert_uint_eq(zc[1], 5);
    /* nothing eligible */
    unsigned char none[4] = {0, 0, 0, 0};
    ck_assert_uint_eq(backend_wrr_pick(cur, weights, none, 4), SIZE_MAX);
}
END_TEST

/* ---------------------------------------------------------------- rendezvous hashing */

START_TEST(hash_is_stable_and_moves_little)
{
    enum { N = 4, KEYS = 4000 };
    const char *names[N] = {"a", "b", "c", "d"};
    uint64_t nh[N];
    uint32_t weights[N] = {100, 100, 100, 100};
    unsigned char all[N] = {1, 1, 1, 1}, without_c[N] = {1, 1, 0, 1};
    static size_t before[KEYS];
    unsigned counts[N] = {0};

    for (int i = 0; i < N; ++i)
        nh[i] = backend_name_hash(names[i], strlen(names[i]));
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        before[k] = backend_rendezvous_pick(h, nh, weights, all, N);
        ck_assert_uint_lt(before[k], N);
        ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, all, N), before[k]); /* deterministic */
        counts[before[k]]++;
    }
    for (int i = 0; i < N; ++i) /* roughly even: 1000 each, allow +-20% */
        ck_assert_msg(counts[i] > 800 && counts[i] < 1200, "backend %d got %u of %d keys", i, counts[i], KEYS);
    /* one goes away: only its keys move, and they spread over the others */
    unsigned moved = 0, moved_to[N] = {0};
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        size_t after = backend_rendezvous_pick(h, nh, weights, without_c, N);
        ck_assert_uint_ne(after, 2);
        if (before[k] != 2) {
            ck_assert_uint_eq(after, before[k]);
        } else {
            moved++;
            moved_to[after]++;
        }
    }
    ck_assert_uint_eq(moved, counts[2]);
    ck_assert_uint_gt(moved_to[0], moved / 5);
    ck_assert_uint_gt(moved_to[1], moved / 5);
    ck_assert_uint_gt(moved_to[3], moved / 5);
    /* and coming back restores the original mapping */
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, all, N), before[k]);
    }
}
END_TEST

START_TEST(hash_follows_weights)
{
    enum { KEYS = 6000 };
    uint64_t nh[2] = {backend_name_hash(H2O_STRLIT("light")), backend_name_hash(H2O_STRLIT("heavy"))};
    uint32_t weights[2] = {100, 200};
    unsigned char all[2] = {1, 1};
    unsigned counts[2] = {0};
    for (unsigned k = 0; k < KEYS; ++k) {
        uint8_t h[CACHE_HASH_LEN];
        key_hash(k, h);
        counts[backend_rendezvous_pick(h, nh, weights, all, 2)]++;
    }
    ck_assert_msg(counts[1] > 3600 && counts[1] < 4400, "weight 2/3 got %u of %d", counts[1], KEYS);
    unsigned char none[2] = {0, 0};
    uint8_t h[CACHE_HASH_LEN] = {0};
    ck_assert_uint_eq(backend_rendezvous_pick(h, nh, weights, none, 2), SIZE_MAX);
}
END_TEST

/* ---------------------------------------------------------------- validation */

START_TEST(backend_json_defaults_and_fields)
{
    backend_conf_t c;
    char detail[300];
    backend_conf_defaults(&c);
    ck_assert_uint_eq(c.port, 80);
    ck_assert_uint_eq(c.weight, 100);
    ck_assert_uint_eq(c.connect_timeout, 1000);
    ck_assert_uint_eq(c.first_byte_timeout, 15000);
    ck_assert_uint_eq(c.between_bytes_timeout, 10000);
    ck_assert_uint_eq(c.max_conn, 200);

    json_t *o = js("{\"name\":\"origin-1\",\"address\":\"127.0.0.1\",\"port\":8080,\"weight\":\"50\","
                   "\"override_host\":\"www.example.com\",\"healthcheck\":null,\"shield\":true,"
                   "\"first_byte_timeout\":2000,\"service_id\":\"x\",\"version\":3}");
    ck_assert_int_eq(backend_conf_apply_json(&c, o, detail, sizeof(detail)), 0);
    json_decref(o);
    ck_assert_str_eq(c.name, "origin-1");
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_uint_eq(c.weight, 50);
    ck_assert_str_eq(c.override_host, "www.example.com");
    ck_assert_str_eq(c.shield, "shield");
    ck_assert_uint_eq(c.first_byte_timeout, 2000);

    json_t *out = backend_conf_to_json(&c);
    ck_assert_int_eq(json_integer_value(json_object_get(out, "port")), 8080);
    ck_assert(json_is_null(json_object_get(out, "healthcheck")));
    ck_assert_str_eq(json_string_value(json_object_get(out, "shield")), "shield");
    ck_assert_int_eq(json_integer_value(json_object_get(out, "max_conn")), 200);
    json_decref(out);
}
END_TEST

/* each bad object leaves the conf untouched and names the field */
START_TEST(backend_json_errors_name_the_field)
{
    static const struct {
        const char *json, *field;
    } cases[] = {
        {"{\"port\":0}", "port:"},
        {"{\"port\":70000}", "port:"},
        {"{\"port\":\"80a\"}", "port:"},
        {"{\"weight\":-1}", "weight:"},
        {"{\"weight\":\"-1\"}", "weight:"},
        {"{\"weight\":1.5}", "weight:"},
        {"{\"name\":\"a/b\"}", "name:"},
        {"{\"name\":\"\"}", "name:"},
        {"{\"address\":\"bad host\"}", "address:"},
        {"{\"connect_timeout\":0}", "connect_timeout:"},
        {"{\"max_conn\":true}", "max_conn:"},
        {"{\"override_host\":\"a b\"}", "override_host:"},
        {"{\"healthcheck\":7}", "healthcheck:"},
        {"{\"colour\":\"red\"}", "colour: unknown field"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        backend_conf_t c, before;
        char detail[300] = "";
        backend_conf_defaults(&c);
        strcpy(c.name, "keep");
        before = c;
        json_t *o = js(cases[i].json);
        /* a good field first, so that a half-applied change would show */
        json_object_set_new(o, "comment", json_string("changed"));
        ck_assert_int_eq(backend_conf_apply_json(&c, o, detail, sizeof(detail)), BACKEND_EINVAL);
        json_decref(o);
        ck_assert_msg(strncmp(detail, cases[i].field, strlen(cases[i].field)) == 0, "%s: detail '%s'", cases[i].json, detail);
        ck_assert_msg(memcmp(&c, &before, sizeof(c)) == 0, "%s: half applied", cases[i].json);
    }
}
END_TEST

START_TEST(healthcheck_json)
{
    backend_healthcheck_conf_t h;
    char detail[300];
    backend_healthcheck_defaults(&h);
    ck_assert_str_eq(h.method, "HEAD");
    ck_assert_str_eq(h.path, "/");
    ck_assert_uint_eq(h.expected_response, 200);
    ck_assert_uint_eq(h.check_interval, 5000);
    ck_assert_uint_eq(h.timeout, 500);
    ck_assert_uint_eq(h.window, 5);
    ck_assert_uint_eq(h.threshold, 3);
    ck_assert_uint_eq(h.initial, 2);

    json_t *o = js("{\"name\":\"hc\",\"path\":\"/health?x=1\",\"method\":\"GET\",\"window\":\"10\",\"threshold\":7,"
                   "\"host\":\"www.example.com\",\"check_interval\":250}");
    ck_assert_int_eq(backend_healthcheck_apply_json(&h, o, detail, sizeof(detail)), 0);
    json_decref(o);
    ck_assert_str_eq(h.path, "/health?x=1");
    ck_assert_uint_eq(h.window, 10);
    ck_assert_uint_eq(h.threshold, 7);

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"threshold\":11}", "threshold:"}, /* exceeds window 10 */
        {"{\"initial\":11}", "initial:"},
        {"{\"window\":0}", "window:"},
        {"{\"window\":65}", "window:"},
        {"{\"path\":\"health\"}", "path:"},
        {"{\"method\":\"get\"}", "method:"},
        {"{\"expected_response\":99}", "expected_response:"},
        {"{\"check_interval\":5}", "check_interval:"},
        {"{\"interval\":5}", "interval: unknown field"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        backend_healthcheck_conf_t before = h;
        o = js(bad[i].json);
        ck_assert_int_eq(backend_healthcheck_apply_json(&h, o, detail, sizeof(detail)), BACKEND_EINVAL);
        json_decref(o);
        ck_assert_msg(strncmp(detail, bad[i].field, strlen(bad[i].field)) == 0, "%s: detail '%s'", bad[i].json, detail);
        ck_assert(memcmp(&h, &before, sizeof(h)) == 0);
    }
}
END_TEST

START_TEST(form_bodies)
{
    json_t *o = NULL;
    char detail[300];
    const char *body = "name=my+origin&address=10.0.0.1&port=8080&override_host=www.example.com&comment=a%2Fb%20c";
    ck_assert_int_eq(backend_form_to_json(body, strlen(body), &o, detail, sizeof(detail)), 0);
    ck_assert_str_eq(json_string_value(json_object_get(o, "name")), "my origin");
    ck_assert_str_eq(json_string_value(json_object_get(o, "port")), "8080");
    ck_assert_str_eq(json_string_value(json_object_get(o, "comment")), "a/b c");
    backend_conf_t c;
    backend_conf_defaults(&c);
    ck_assert_int_eq(backend_conf_apply_json(&c, o, detail, sizeof(detail)), 0);
    ck_assert_uint_eq(c.port, 8080);
    ck_assert_str_eq(c.name, "my origin");
    json_decref(o);

    /* empty segments are fine, an empty value clears a nullable field */
    body = "&override_host=&&weight=0&";
    ck_assert_int_eq(backend_form_to_json(body, strlen(body), &o, detail, sizeof(detail)), 0);
    ck_assert_int_eq(backend_conf_apply_json(&c, o, detail, sizeof(detail)), 0);
    ck_assert_str_eq(c.override_host, "");
    ck_assert_uint_eq(c.weight, 0);
    json_decref(o);

    static const char *bad[] = {"port", "=1", "a=%4", "a=%zz", "a=1&a=2", "a=%00"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        o = NULL;
        ck_assert_msg(backend_form_to_json(bad[i], strlen(bad[i]), &o, detail, sizeof(detail)) == BACKEND_EINVAL, "%s", bad[i]);
        ck_assert_ptr_null(o);
    }
    /* a numeric field from a form must still be a number */
    body = "weight=-5";
    ck_assert_int_eq(backend_form_to_json(body, strlen(body), &o, detail, sizeof(detail)), 0);
    ck_assert_int_eq(backend_conf_apply_json(&c, o, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_str_eq(detail, "weight: must be an integer 0-100000");
    json_decref(o);
}
END_TEST

static backend_config_t *config_with(size_t nb, size_t nh)
{
    backend_config_t *c = calloc(1, sizeof(*c));
    for (size_t i = 0; i < nh; ++i) {
        backend_healthcheck_defaults(&c->healthchecks[i]);
        snprintf(c->healthchecks[i].name, sizeof(c->healthchecks[i].name), "hc%zu", i + 1);
    }
    c->num_healthchecks = nh;
    for (size_t i = 0; i < nb; ++i) {
        backend_conf_defaults(&c->backends[i]);
        snprintf(c->backends[i].name, sizeof(c->backends[i].name), "b%zu", i + 1);
        strcpy(c->backends[i].address, "127.0.0.1");
        c->backends[i].port = (uint16_t)(9000 + i);
    }
    c->num_backends = nb;
    return c;
}

START_TEST(config_validate_and_round_trip)
{
    char detail[300];
    backend_config_t *c = config_with(3, 2), *d = calloc(1, sizeof(*d));
    strcpy(c->backends[1].healthcheck, "hc2");
    c->load_balancing = BACKEND_LB_HASH;
    c->load_balancing_stored = 1;
    ck_assert_int_eq(backend_config_validate(c, detail, sizeof(detail)), 0);

    json_t *doc = backend_config_to_json(c);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    doc = js(text);
    free(text);
    ck_assert_int_eq(backend_config_from_json(d, doc, detail, sizeof(detail)), 0);
    json_decref(doc);
    ck_assert_uint_eq(d->num_backends, 3);
    ck_assert_uint_eq(d->num_healthchecks, 2);
    ck_assert_int_eq(d->load_balancing, BACKEND_LB_HASH);
    ck_assert_int_eq(d->load_balancing_stored, 1);
    ck_assert(memcmp(&c->backends[1], &d->backends[1], sizeof(c->backends[1])) == 0);
    ck_assert(memcmp(&c->healthchecks[0], &d->healthchecks[0], sizeof(c->healthchecks[0])) == 0);

    /* references and duplicates */
    strcpy(c->backends[2].healthcheck, "nope");
    ck_assert_int_eq(backend_config_validate(c, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_str_eq(detail, "healthcheck: no health check named 'nope'");
    c->backends[2].healthcheck[0] = '\0';
    strcpy(c->backends[2].name, "b1");
    ck_assert_int_eq(backend_config_validate(c, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_str_eq(detail, "name: a backend named 'b1' already exists");
    strcpy(c->backends[2].name, "b3");
    strcpy(c->healthchecks[1].name, "hc1");
    ck_assert_int_eq(backend_config_validate(c, detail, sizeof(detail)), BACKEND_EINVAL);
    ck_assert_str_eq(detail, "name: a health check named 'hc1' already exists");

    /* stored garbage is refused, never trusted */
    static const char *bad_docs[] = {
        "[]",
        "{\"format\":2,\"backends\":[],\"healthchecks\":[]}",
        "{\"format\":1,\"backends\":{},\"healthchecks\":[]}",
        "{\"format\":1,\"backends\":[{\"name\":\"x\",\"address\":\"h\",\"port\":-4}],\"healthchecks\":[]}",
        "{\"format\":1,\"backends\":[{\"name\":\"x\"}],\"healthchecks\":[]}",
        "{\"format\":1,\"backends\":[],\"healthchecks\":[],\"load_balancing\":\"random\"}",
    };
    for (size_t i = 0; i < sizeof(bad_docs) / sizeof(bad_docs[0]); ++i) {
        doc = js(bad_docs[i]);
        ck_assert_msg(backend_config_from_json(d, doc, detail, sizeof(detail)) == BACKEND_EINVAL, "%s", bad_docs[i]);
        json_decref(doc);
    }
    backend_config_free(c);
    backend_config_free(d);
}
END_TEST

START_TEST(seed_and_force_shield)
{
    config_t cfg;
    config_defaults(&cfg);
    cfg.num_backends = 2;
    strcpy(cfg.backends[0].host, "127.0.0.1");
    cfg.backends[0].port = 8001;
    strcpy(cfg.backends[1].host, "localhost");
    cfg.backends[1].port = 8002;
    cfg.load_balancing = CONFIG_LB_FIRST;
    cfg.origin_timeout_ms = 700;
    backend_config_t *c = calloc(1, sizeof(*c));
    backend_config_seed(c, &cfg);
    ck_assert_uint_eq(c->num_backends, 2);
    ck_assert_str_eq(c->backends[0].name, "backend1");
    ck_assert_str_eq(c->backends[1].name, "backend2");
    ck_assert_str_eq(c->backends[1].address, "localhost");
    ck_assert_uint_eq(c->backends[1].port, 8002);
    ck_assert_int_eq(c->load_balancing, BACKEND_LB_FIRST);
    ck_assert_uint_eq(c->backends[0].first_byte_timeout, 700); /* --origin-timeout bounds the seeded timeouts */
    ck_assert_uint_eq(c->backends[0].connect_timeout, 700);

    config_addr_t sh = {.host = "127.0.0.9", .port = 9999};
    ck_assert_int_eq(backend_config_force_shield(c, &sh, NULL), 1);
    ck_assert_uint_eq(c->num_backends, 3);
    ck_assert_str_eq(c->backends[2].name, "shield");
    ck_assert_str_ne(c->backends[2].shield, "");
    ck_assert_int_eq(backend_config_force_shield(c, &sh, NULL), 0); /* already there */
    sh.port = 9998;
    ck_assert_int_eq(backend_config_force_shield(c, &sh, NULL), 1);
    ck_assert_uint_eq(c->backends[2].port, 9998);
    ck_assert_uint_eq(c->num_backends, 3);
    backend_config_free(c);
}
END_TEST

/* the flags and config-file keys this module added to server/config.c */
START_TEST(config_flags_and_keys)
{
    config_t cfg;
    char err[300];
    char *ok[] = {"edgecache",      "--load-balancing",          "hash",           "--shield",
                  "127.0.0.1:9001", "--shield-admin=[::1]:9002", "--shield-token", "t0k-en"};
    config_defaults(&cfg);
    ck_assert_int_eq(cfg.load_balancing, CONFIG_LB_ROUND_ROBIN);
    ck_assert_uint_eq(cfg.shield.port, 0);
    ck_assert_int_eq(config_parse_args(&cfg, 8, ok, 1, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.load_balancing, CONFIG_LB_HASH);
    ck_assert_str_eq(cfg.shield.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.shield.port, 9001);
    ck_assert_str_eq(cfg.shield_admin.host, "::1");
    ck_assert_uint_eq(cfg.shield_admin.port, 9002);
    ck_assert_str_eq(cfg.shield_token, "t0k-en");

    static const struct {
        const char *flag, *value, *want;
    } bad[] = {
        {"--load-balancing", "random", "--load-balancing: invalid mode 'random'"},
        {"--shield", "127.0.0.1", "--shield: invalid address"},
        {"--shield", "127.0.0.1:0", "--shield: invalid address"},
        {"--shield-admin", "h:99999", "--shield-admin: invalid address"},
        {"--shield-token", "a b", "--shield-token: invalid token"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        char *argv[] = {"edgecache", (char *)bad[i].flag, (char *)bad[i].value};
        config_defaults(&cfg);
        ck_assert_int_eq(config_parse_args(&cfg, 3, argv, 1, err, sizeof(err)), -1);
        ck_assert_msg(strncmp(err, bad[i].want, strlen(bad[i].want)) == 0, "%s %s: '%s'", bad[i].flag, bad[i].value, err);
        ck_assert_ptr_null(strstr(err, "a b")); /* a token is never echoed */
    }

    char path[] = "/tmp/ec-backend-cfg-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char *text = "{\"load_balancing\": \"first\", \"shield\": \"127.0.0.1:7000\", \"shield_token\": \"x\"}";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    config_defaults(&cfg);
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), 0);
    ck_assert_int_eq(cfg.load_balancing, CONFIG_LB_FIRST);
    ck_assert_uint_eq(cfg.shield.port, 7000);
    fd = open(path, O_WRONLY | O_TRUNC);
    text = "{\"load_balancing\": 1}";
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "load_balancing"));
    unlink(path);
}
END_TEST

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

/* ---------------------------------------------------------------- main */

static Suite *backend_suite(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, window_threshold_math);
    tcase_add_test(tc, window_edges);
    tcase_add_test(tc, wrr_follows_weights_exactly);
    tcase_add_test(tc, wrr_is_smooth);
    tcase_add_test(tc, wrr_eligibility_and_zero_weights);
    tcase_add_test(tc, hash_is_stable_and_moves_little);
    tcase_add_test(tc, hash_follows_weights);
    tcase_add_test(tc, backend_json_defaults_and_fields);
    tcase_add_test(tc, backend_json_errors_name_the_field);
    tcase_add_test(tc, healthcheck_json);
    tcase_add_test(tc, form_bodies);
    tcase_add_test(tc, config_validate_and_round_trip);
    tcase_add_test(tc, seed_and_force_shield);
    tcase_add_test(tc, config_flags_and_keys);
    suite_add_tcase(s, tc);
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
    if (unit_tmp_base_make("backend") != 0)
        return 1;
    SRunner *sr = srunner_create(backend_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}
