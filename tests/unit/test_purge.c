/*
 * tests/unit/test_purge.c — the purge module's pure parts: purge ids and the node name,
 * the Fastly-Soft-Purge value, and the one answer a purge gets (each kind, each failure,
 * the batch answer), plus a job run against a real store without any
 * HTTP request (as the cluster bus will submit one).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "server/backend.h"
#include "server/purge.h"
#include "tests/unit/unit_tmp.h"

/* ---- ids ---- */

START_TEST(id_format)
{
    char buf[PURGE_ID_CAP], node[64];
    ck_assert_int_eq(purge_format_id(buf, sizeof(buf), "edge1", 1700000000, 42), 19);
    ck_assert_str_eq(buf, "edge1-1700000000-42");
    ck_assert_int_eq(purge_format_id(buf, 10, "edge1", 1700000000, 42), -1);
    ck_assert_int_eq(purge_format_id(buf, 20, "edge1", 1700000000, 42), 19); /* just fits, with its NUL */
    ck_assert_int_eq(purge_format_id(buf, 19, "edge1", 1700000000, 42), -1);
    ck_assert_int_eq(purge_format_id(buf, sizeof(buf), "n", 0, 0), 5);
    ck_assert_str_eq(buf, "n-0-0");
    ck_assert_int_eq(purge_format_id(buf, sizeof(buf), "n", -5, UINT64_MAX), 25);
    ck_assert_str_eq(buf, "n--5-18446744073709551615");
    ck_assert_int_gt(purge_format_id(buf, sizeof(buf), "n", INT64_MIN, 1), 0);
    ck_assert_str_eq(buf, "n--9223372036854775808-1");

    purge_node_name(node, sizeof(node));
    ck_assert_uint_gt(strlen(node), 0);
    ck_assert_uint_le(strlen(node), 63);
    ck_assert_ptr_null(strchr(node, '-')); /* '-' separates the id's fields */
    /* an id splits back into exactly three fields: node, time, sequence */
    ck_assert_int_gt(purge_format_id(buf, sizeof(buf), node, 1700000000, 7), 0);
    char *d1 = strchr(buf, '-'), *d2 = d1 ? strchr(d1 + 1, '-') : NULL;
    ck_assert_ptr_nonnull(d2);
    ck_assert_ptr_null(strchr(d2 + 1, '-'));
    ck_assert_str_eq(d2 + 1, "7");
}
END_TEST

/* ---- soft purges ---- */

static void fake_req(h2o_req_t *req, const char **hv)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    for (; hv[0] != NULL; hv += 2)
        h2o_add_header_by_str(&req->pool, &req->headers, hv[0], strlen(hv[0]), 0, NULL, hv[1], strlen(hv[1]));
}

START_TEST(soft_purge_header)
{
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT("1")), 1);
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT(" 1 ")), 1);
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT("true")), 1);
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT("0")), 0);
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT("\t0 ")), 0);
    ck_assert_int_eq(purge_soft_value(H2O_STRLIT("False")), 0);

    h2o_req_t req;
    const char *soft[] = {"fastly-soft-purge", "1", NULL};
    fake_req(&req, soft);
    ck_assert_int_eq(purge_request_wants_soft(&req), 1);
    h2o_mem_clear_pool(&req.pool);
    const char *off[] = {"Fastly-Soft-Purge", "0", NULL};
    fake_req(&req, off);
    ck_assert_int_eq(purge_request_wants_soft(&req), 0);
    h2o_mem_clear_pool(&req.pool);
    const char *none[] = {"surrogate-key", "a", NULL};
    fake_req(&req, none);
    ck_assert_int_eq(purge_request_wants_soft(&req), 0);
    h2o_mem_clear_pool(&req.pool);
}
END_TEST

/* ---- the answer ---- */

static purge_item_t item(const char *id, const char *key)
{
    purge_item_t it;
    memset(&it, 0, sizeof(it));
    snprintf(it.id, sizeof(it.id), "%s", id);
    it.key = (char *)key;
    it.key_len = strlen(key);
    return it;
}

static void expect_answer(const purge_result_t *res, int status, const char *reason, const char *body)
{
    purge_answer_t a;
    purge_answer_build(res, &a);
    ck_assert_int_eq(a.status, status);
    ck_assert_str_eq(a.reason, reason);
    ck_assert_uint_eq(a.body_len, strlen(a.body));
    ck_assert_str_eq(a.body, body);
    purge_answer_free(&a);
    ck_assert_ptr_null(a.body);
}

START_TEST(answer_single_key_and_url)
{
    purge_item_t it = item("edge1-1700000000-1", "tag-a");
    purge_result_t r = {.kind = PURGE_KEY, .items = &it, .num_items = 1};
    expect_answer(&r, 200, "OK", "{\"status\":\"ok\",\"id\":\"edge1-1700000000-1\"}");
    r.kind = PURGE_URL;
    r.soft = 1;
    expect_answer(&r, 200, "OK", "{\"status\":\"ok\",\"id\":\"edge1-1700000000-1\"}");
}
END_TEST

START_TEST(answer_purge_all)
{
    purge_item_t it = item("edge1-1700000000-9", "");
    purge_result_t r = {.kind = PURGE_ALL, .items = &it, .num_items = 1};
    expect_answer(&r, 200, "OK", "{\"status\":\"ok\"}");
}
END_TEST

START_TEST(answer_batch_maps_each_key_to_its_id)
{
    purge_item_t its[3] = {item("n-1-1", "a"), item("n-1-2", "b\"q"), item("n-1-3", "caf\xc3\xa9")};
    purge_result_t r = {.kind = PURGE_KEYS, .items = its, .num_items = 3};
    purge_answer_t a;
    purge_answer_build(&r, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.reason, "OK");
    json_error_t jerr;
    json_t *o = json_loadb(a.body, a.body_len, 0, &jerr);
    ck_assert_msg(o != NULL && json_is_object(o), "not a JSON object: %s", a.body);
    ck_assert_uint_eq(json_object_size(o), 3);
    ck_assert_str_eq(json_string_value(json_object_get(o, "a")), "n-1-1");
    ck_assert_str_eq(json_string_value(json_object_get(o, "b\"q")), "n-1-2"); /* escaped, not cut */
    ck_assert_str_eq(json_string_value(json_object_get(o, "caf\xc3\xa9")), "n-1-3");
    json_decref(o);
    purge_answer_free(&a);
    /* the shape is fixed: keys in the order they were given, compact */
    purge_result_t one = {.kind = PURGE_KEYS, .items = its, .num_items = 1};
    expect_answer(&one, 200, "OK", "{\"a\":\"n-1-1\"}");
}
END_TEST

START_TEST(answer_store_failure_is_503)
{
    purge_item_t its[2] = {item("n-1-1", "a"), item("n-1-2", "b")};
    purge_result_t r = {.kind = PURGE_KEYS, .items = its, .num_items = 2, .store_err = STORE_EFULL};
    expect_answer(&r, 503, "Service Unavailable",
                  "{\"msg\":\"Purge failed\",\"detail\":\"store: full (the purge was not acknowledged)\"}");
    r.store_err = STORE_EIO;
    expect_answer(&r, 503, "Service Unavailable",
                  "{\"msg\":\"Purge failed\",\"detail\":\"store: I/O error (the purge was not acknowledged)\"}");
    /* a store failure wins over a shield failure: nothing local was made durable */
    r.kind = PURGE_URL;
    r.num_items = 1;
    r.shield_err = BACKEND_EFORWARD;
    r.store_err = STORE_ECORRUPT;
    expect_answer(&r, 503, "Service Unavailable", "{\"msg\":\"Purge failed\",\"detail\":\"store: corrupt record\"}");
    r.store_err = -1;
    expect_answer(&r, 503, "Service Unavailable", "{\"msg\":\"Purge failed\",\"detail\":\"store: purge failed\"}");
}
END_TEST

START_TEST(answer_shield_failure_is_502_bad_gateway)
{
    purge_item_t it = item("n-1-1", "example.com\n/x");
    purge_result_t r = {.kind = PURGE_URL, .items = &it, .num_items = 1, .shield_err = BACKEND_EFORWARD};
    const char *body = "{\"msg\":\"Purge failed\",\"detail\":\"shield: the purge could not be applied on the shield node\"}";
    expect_answer(&r, 502, "Bad Gateway", body);
    r.shield_err = BACKEND_EINVAL;
    expect_answer(&r, 502, "Bad Gateway", body);
    r.kind = PURGE_ALL;
    expect_answer(&r, 502, "Bad Gateway", body);
}
END_TEST

START_TEST(answer_of_the_cluster_bus)
{
    purge_item_t it = item("edge1-1-1", "k");
    purge_result_t r = {.kind = PURGE_KEY, .items = &it, .num_items = 1, .bus_err = PURGE_BUS_EUNAVAILABLE};
    expect_answer(&r, 503, "Service Unavailable",
                  "{\"msg\":\"Purge failed\",\"detail\":\"cluster: the purge stream did not store the purge (no quorum or "
                  "no connection); nothing was acknowledged\"}");
    r.bus_err = PURGE_BUS_ENOTAPPLIED;
    expect_answer(
        &r, 503, "Service Unavailable",
        "{\"msg\":\"Purge failed\",\"detail\":\"cluster: stored in the purge stream, not yet applied on this node\"}");
    r.bus_err = 0;
    r.bus_flags = PURGE_BUS_F_LOCAL_ONLY;
    expect_answer(&r, 200, "OK",
                  "{\"status\":\"ok\",\"id\":\"edge1-1-1\",\"cluster\":\"applied on this node only; publish queued\"}");
    purge_answer_t a;
    purge_answer_build(&r, &a);
    ck_assert_int_eq(a.local_only, 1);
    ck_assert_int_eq(a.waited, 0);
    purge_answer_free(&a);
    r.bus_flags = PURGE_BUS_F_WAIT_TIMEOUT;
    r.bus_note = "not yet applied on: edge3";
    expect_answer(&r, 200, "OK", "{\"status\":\"ok\",\"id\":\"edge1-1-1\",\"cluster\":\"not yet applied on: edge3\"}");
    purge_answer_build(&r, &a);
    ck_assert_int_eq(a.waited, 2);
    ck_assert_int_eq(a.local_only, 0);
    purge_answer_free(&a);
    /* a note is cut at 1,000 bytes */
    char note[1500], want[1100];
    memset(note, 'x', sizeof(note) - 1);
    note[sizeof(note) - 1] = '\0';
    r.bus_note = note;
    snprintf(want, sizeof(want), "{\"status\":\"ok\",\"id\":\"edge1-1-1\",\"cluster\":\"%.1000s\"}", note);
    expect_answer(&r, 200, "OK", want);
    r.kind = PURGE_ALL;
    r.bus_flags = PURGE_BUS_F_LOCAL_ONLY;
    r.bus_note = NULL;
    expect_answer(&r, 200, "OK", "{\"status\":\"ok\",\"cluster\":\"applied on this node only; publish queued\"}");
}
END_TEST

/* ---- a job without a loop or a request (the cluster bus's way) ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, store_err, shield_err, soft;
    purge_kind_t kind;
    size_t n;
    char ids[3][PURGE_ID_CAP];
    char keys[3][32];
} waiter_t;

static void on_done(void *arg, const purge_result_t *res)
{
    waiter_t *w = arg;
    pthread_mutex_lock(&w->lock);
    w->store_err = res->store_err;
    w->shield_err = res->shield_err;
    w->kind = res->kind;
    w->soft = res->soft;
    w->n = res->num_items;
    for (size_t i = 0; i < res->num_items && i < 3; i++) {
        snprintf(w->ids[i], sizeof(w->ids[i]), "%s", res->items[i].id);
        snprintf(w->keys[i], sizeof(w->keys[i]), "%.*s", (int)res->items[i].key_len, res->items[i].key);
    }
    w->done++;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

static void wait_done(waiter_t *w)
{
    pthread_mutex_lock(&w->lock);
    while (w->done == 0)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

START_TEST(job_without_a_loop_completes_once_with_its_ids)
{
    char *dir = tmpdir_new(), err[256];
    store_options_t so = {.dir = dir, .map_size = 64u << 20};
    store_t *store = NULL;
    ck_assert_msg(store_open(&store, &so, err, sizeof(err)) == 0, "store_open: %s", err);
    purge_module_init(store, NULL, NULL);

    waiter_t w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    purge_job_t *job = purge_job_new(PURGE_KEYS, 1, PURGE_FROM_BUS);
    purge_job_add_key(job, H2O_STRLIT("k1"));
    purge_job_add_key(job, H2O_STRLIT("k2"));
    purge_job_add_key(job, H2O_STRLIT("k3"));
    purge_job_submit(job, NULL, on_done, &w);
    wait_done(&w);
    ck_assert_int_eq(w.done, 1);
    ck_assert_int_eq(w.store_err, 0);
    ck_assert_int_eq(w.shield_err, 0); /* no shield: nothing forwarded */
    ck_assert_int_eq(w.kind, PURGE_KEYS);
    ck_assert_int_eq(w.soft, 1);
    ck_assert_uint_eq(w.n, 3);
    ck_assert_str_eq(w.keys[2], "k3");
    /* one id each, all different, from one counter: the sequences follow each other */
    ck_assert_str_ne(w.ids[0], w.ids[1]);
    ck_assert_str_ne(w.ids[1], w.ids[2]);
    unsigned long long s0 = strtoull(strrchr(w.ids[0], '-') + 1, NULL, 10);
    unsigned long long s2 = strtoull(strrchr(w.ids[2], '-') + 1, NULL, 10);
    ck_assert_uint_eq(s2, s0 + 2);

    /* purge_all is never soft, and names nothing */
    waiter_t w2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    purge_job_submit(purge_job_new(PURGE_ALL, 1, PURGE_FROM_BUS), NULL, on_done, &w2);
    wait_done(&w2);
    ck_assert_int_eq(w2.store_err, 0);
    ck_assert_int_eq(w2.soft, 0);
    ck_assert_uint_eq(w2.n, 1);

    store_close(&store);
    tmpdir_free(dir);
}
END_TEST

/* the cluster bus takes every job of a door (not those from the bus) once its ids are given */
static purge_job_t *bus_taken;

static void take_job(void *arg, purge_job_t *job)
{
    (void)arg;
    bus_taken = job;
}

START_TEST(jobs_go_to_the_bus_when_there_is_one)
{
    char *dir = tmpdir_new(), err[256];
    store_options_t so = {.dir = dir, .map_size = 64u << 20};
    store_t *store = NULL;
    ck_assert_msg(store_open(&store, &so, err, sizeof(err)) == 0, "store_open: %s", err);
    purge_module_init(store, NULL, NULL);
    purge_module_set_node("edge7");
    purge_module_set_bus(take_job, NULL);

    waiter_t w = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    purge_job_t *job = purge_job_new(PURGE_KEYS, 0, PURGE_FROM_ADMIN);
    purge_job_add_key(job, H2O_STRLIT("a"));
    purge_job_add_key(job, H2O_STRLIT("b"));
    purge_job_submit(job, NULL, on_done, &w);
    ck_assert_ptr_eq(bus_taken, job);
    ck_assert_int_eq(w.done, 0); /* nothing applied or answered until the bus says so */
    size_t n;
    const purge_item_t *items = purge_job_items(job, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(strncmp(items[0].id, "edge7-", 6), 0);
    /* the counter starts from the start's clock: a restart within the second gives other ids */
    ck_assert_uint_gt(strtoull(strrchr(items[0].id, '-') + 1, NULL, 10), 1000000);
    ck_assert_str_ne(items[0].id, items[1].id);
    ck_assert_int_eq(purge_job_kind(job), PURGE_KEYS);
    ck_assert_int_eq(purge_job_wants_wait_all(job), 0);
    purge_job_bus_done(job, PURGE_BUS_EUNAVAILABLE, 0, NULL);
    wait_done(&w);
    ck_assert_int_eq(w.done, 1);

    /* a job from the bus is applied here, keeping the id its node gave it */
    bus_taken = NULL;
    waiter_t w2 = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    purge_job_t *bus_job = purge_job_new(PURGE_KEY, 0, PURGE_FROM_BUS);
    purge_job_add_key_with_id(bus_job, H2O_STRLIT("k"), H2O_STRLIT("other-1-9"));
    purge_job_submit(bus_job, NULL, on_done, &w2);
    wait_done(&w2);
    ck_assert_ptr_null(bus_taken);
    ck_assert_int_eq(w2.store_err, 0);
    ck_assert_str_eq(w2.ids[0], "other-1-9");

    purge_module_set_bus(NULL, NULL);
    store_close(&store);
    tmpdir_free(dir);
}
END_TEST

static Suite *purge_suite(void)
{
    Suite *s = suite_create("purge");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, id_format);
    tcase_add_test(t, soft_purge_header);
    tcase_add_test(t, answer_single_key_and_url);
    tcase_add_test(t, answer_purge_all);
    tcase_add_test(t, answer_batch_maps_each_key_to_its_id);
    tcase_add_test(t, answer_store_failure_is_503);
    tcase_add_test(t, answer_shield_failure_is_502_bad_gateway);
    tcase_add_test(t, answer_of_the_cluster_bus);
    suite_add_tcase(s, t);
    TCase *j = tcase_create("jobs");
    tcase_add_test(j, job_without_a_loop_completes_once_with_its_ids);
    tcase_add_test(j, jobs_go_to_the_bus_when_there_is_one);
    suite_add_tcase(s, j);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("purge") != 0)
        return 1;
    SRunner *sr = srunner_create(purge_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? 0 : 1;
}
