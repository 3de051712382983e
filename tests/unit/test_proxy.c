/*
 * tests/unit/test_proxy.c — the proxy's pure parts, reached without an h2o loop: the Vary
 * secondary key over header lists and the variant match of a collapsed waiter, one field
 * from its many lines, client conditionals (If-None-Match's weak comparison,
 * If-Modified-Since) against a stored object, the busy object's body-state transitions, and
 * what publishing a fetched object does when the store refuses its put.
 * Requests are h2o_req_t with only their pool and headers set: all these functions read.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <h2o.h>
#include "server/proxy_int.h"
#include "storage/object.h"
#include "storage/store.h"
#include "tests/unit/unit_store.h"
#include "tests/unit/unit_tmp.h"

/* ---- a request copy (what a fetch keeps) over name/value pairs, names lower-case */

static obj_header_t hdrs[8];

static req_copy_t copy_of(const char *const *pairs)
{
    req_copy_t rc = {0};
    for (size_t i = 0; pairs[i] != NULL; i += 2) {
        hdrs[rc.num_headers] = (obj_header_t){pairs[i], (uint32_t)strlen(pairs[i]), pairs[i + 1],
                                              (uint32_t)strlen(pairs[i + 1])};
        ++rc.num_headers;
    }
    rc.headers = hdrs;
    return rc;
}

/* the Vary key of `names` for a request with these headers, as a C string ("" for SIZE_MAX: see fits) */
static char keybuf[VARY_KEY_MAX + 1];

static size_t vary_of(const char *names, const char *const *pairs, size_t cap)
{
    req_copy_t rc = copy_of(pairs);
    size_t n = proxy_vary_key(names, strlen(names), proxy_lookup_in_copy, &rc, keybuf, cap);
    if (n != SIZE_MAX)
        keybuf[n] = '\0';
    return n;
}

START_TEST(test_vary_key_names_in_order_lower_case)
{
    const char *const req[] = {"accept-language", "en", "x-tenant", "a", NULL};
    ck_assert_uint_ne(vary_of("X-Tenant, Accept-Language", req, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "x-tenant:a\naccept-language:en\n");
    /* separators: commas, spaces and tabs, repeated or leading */
    ck_assert_uint_ne(vary_of(" ,x-tenant\t,,accept-language ", req, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "x-tenant:a\naccept-language:en\n");
}
END_TEST

START_TEST(test_vary_key_absent_differs_from_empty)
{
    const char *const absent[] = {NULL};
    const char *const empty[] = {"x-tenant", "", NULL};
    ck_assert_uint_ne(vary_of("x-tenant", absent, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "x-tenant!\n");
    ck_assert_uint_ne(vary_of("x-tenant", empty, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "x-tenant:\n");
}
END_TEST

START_TEST(test_vary_key_trims_values)
{
    const char *const req[] = {"x-tenant", " \t a b \t", NULL};
    ck_assert_uint_ne(vary_of("x-tenant", req, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "x-tenant:a b\n");
}
END_TEST

START_TEST(test_vary_key_folds_accept_encoding)
{
    const char *const br[] = {"accept-encoding", "gzip, deflate, br", NULL};
    const char *const gzip[] = {"accept-encoding", "deflate, gzip;q=0.5, br;q=0", NULL};
    const char *const none[] = {"accept-encoding", "identity", NULL};
    const char *const absent[] = {NULL};
    ck_assert_uint_ne(vary_of("Accept-Encoding", br, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "accept-encoding:br\n");
    ck_assert_uint_ne(vary_of("Accept-Encoding", gzip, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "accept-encoding:gzip\n");
    ck_assert_uint_ne(vary_of("Accept-Encoding", none, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "accept-encoding:\n");
    /* absent and nothing acceptable are one variant, for Accept-Encoding only */
    ck_assert_uint_ne(vary_of("Accept-Encoding", absent, VARY_KEY_MAX), SIZE_MAX);
    ck_assert_str_eq(keybuf, "accept-encoding:\n");
}
END_TEST

START_TEST(test_vary_key_too_long_is_refused)
{
    const char *const req[] = {"x-tenant", "abcdef", NULL};
    /* "x-tenant:abcdef\n" is 16 bytes, and the builder keeps one spare: fits in 17, not in 16 */
    ck_assert_uint_eq(vary_of("x-tenant", req, 17), 16);
    ck_assert_uint_eq(vary_of("x-tenant", req, 16), SIZE_MAX);
    /* a header name of 128 bytes or more is never keyed */
    char names[200];
    memset(names, 'n', 128);
    names[128] = '\0';
    ck_assert_uint_eq(vary_of(names, req, VARY_KEY_MAX), SIZE_MAX);
    names[127] = '\0';
    ck_assert_uint_ne(vary_of(names, req, VARY_KEY_MAX), SIZE_MAX);
}
END_TEST

START_TEST(test_vary_key_of_names_alone)
{
    char buf[64];
    size_t n = proxy_vary_key("A, B", 4, proxy_lookup_none, NULL, buf, sizeof(buf));
    ck_assert_uint_eq(n, 6);
    ck_assert_int_eq(memcmp(buf, "a!\nb!\n", 6), 0);
}
END_TEST

START_TEST(test_join_field_lines)
{
    const char *const lines[] = {"vary", "accept-encoding", "x", "1", "vary", "", "vary", "x-tenant", NULL};
    req_copy_t rc = copy_of(lines);
    size_t len;
    char *v = proxy_join_field_lines(rc.headers, rc.num_headers, "vary", ',', &len);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(v, "accept-encoding,x-tenant"); /* the empty line counts for nothing */
    ck_assert_uint_eq(len, strlen(v));
    free(v);
    ck_assert_ptr_null(proxy_join_field_lines(rc.headers, rc.num_headers, "surrogate-key", ' ', &len));
    ck_assert_uint_eq(len, 0);
}
END_TEST

/* ---- live requests and stored objects */

static h2o_mem_pool_t pool;
static h2o_req_t req;

static void setup(void)
{
    h2o_mem_init_pool(&pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
}

static void teardown(void)
{
    h2o_mem_clear_pool(&req.pool);
    h2o_mem_clear_pool(&pool);
}

static void req_add(const char *name, const char *value)
{
    h2o_add_header_by_str(&req.pool, &req.headers, name, strlen(name), 1, NULL, value, strlen(value));
}

/* a stored object with these response headers and (for a varied response) this Vary key */
static cache_obj_t *object(int status, const char *const *pairs, const char *vary_key)
{
    obj_header_t h[8];
    size_t n = 0;
    for (size_t i = 0; pairs[i] != NULL; i += 2, ++n)
        h[n] = (obj_header_t){pairs[i], (uint32_t)strlen(pairs[i]), pairs[i + 1], (uint32_t)strlen(pairs[i + 1])};
    obj_meta_t meta = {.status = (uint16_t)status, .ttl = 60};
    obj_builder_t *b = obj_builder_begin(&meta, "example.com\n/", 13, NULL, 0, vary_key != NULL ? vary_key : "",
                                         vary_key != NULL ? strlen(vary_key) : 0, h, n, 4);
    obj_builder_append(b, "body", 4);
    return obj_builder_finish(b);
}

START_TEST(test_variant_fits_request)
{
    /* the variant a fetch stored for a request asking br; a waiter asking "br, gzip" shares it */
    const char *const fetched[] = {"accept-encoding", "br", "x-tenant", "a", NULL};
    ck_assert_uint_ne(vary_of("Accept-Encoding, X-Tenant", fetched, VARY_KEY_MAX), SIZE_MAX);
    const char *const resp[] = {"vary", "Accept-Encoding", "vary", "X-Tenant", NULL};
    cache_obj_t *obj = object(200, resp, keybuf);

    req_add("accept-encoding", "br, gzip");
    req_add("x-tenant", "a");
    ck_assert_int_eq(proxy_object_fits_request(&req, obj), 1);

    /* another tenant is another variant */
    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("accept-encoding", "br");
    req_add("x-tenant", "b");
    ck_assert_int_eq(proxy_object_fits_request(&req, obj), 0);

    /* and so is no tenant at all */
    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("accept-encoding", "br");
    ck_assert_int_eq(proxy_object_fits_request(&req, obj), 0);
    obj_unref(&obj);

    /* a response that does not vary fits every request */
    const char *const plain[] = {"content-type", "text/plain", NULL};
    obj = object(200, plain, NULL);
    ck_assert_int_eq(proxy_object_fits_request(&req, obj), 1);
    obj_unref(&obj);
}
END_TEST

/* an object stored under an older version's header rule may hold framing lines: never delivered */
START_TEST(test_stored_framing_is_not_delivered)
{
    static const char *const dropped[] = {"content-length", "transfer-encoding", "connection", "keep-alive", "te",
                                          "trailer",        "upgrade",           "date",       "age"};
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        ck_assert_msg(proxy_is_not_delivered(dropped[i], strlen(dropped[i]), 1), "%s", dropped[i]);
    static const char *const kept[] = {"content-type", "content-encoding", "etag", "x-foo", "surrogate-key"};
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        ck_assert_msg(!proxy_is_not_delivered(kept[i], strlen(kept[i]), 1), "%s", kept[i]);
}
END_TEST

START_TEST(test_etag_matches_weak_comparison)
{
#define M(list, etag) proxy_etag_matches(list, strlen(list), etag, strlen(etag))
    ck_assert_int_eq(M("\"a\"", "\"a\""), 1);
    ck_assert_int_eq(M("W/\"a\"", "\"a\""), 1); /* weak comparison: W/ on either side */
    ck_assert_int_eq(M("\"a\"", "W/\"a\""), 1);
    ck_assert_int_eq(M("\"b\", W/\"a\"", "\"a\""), 1);
    ck_assert_int_eq(M(" \"x\" ,\t\"a\"", "\"a\""), 1);
    ck_assert_int_eq(M("*", "\"anything\""), 1);
    ck_assert_int_eq(M("\"b\"", "\"a\""), 0);
    ck_assert_int_eq(M("\"a", "\"a\""), 0); /* unterminated */
    ck_assert_int_eq(M("", "\"a\""), 0);
    ck_assert_int_eq(M("\"a,b\"", "\"a,b\""), 1); /* a comma inside the quotes is part of the tag */
#undef M
}
END_TEST

START_TEST(test_client_conditionals)
{
    const char *const resp[] = {"etag", "\"v1\"", "last-modified", "Tue, 01 Jan 2030 00:00:00 GMT", NULL};
    cache_obj_t *obj = object(200, resp, NULL);

    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0); /* no conditional */
    req_add("if-none-match", "\"v0\", \"v1\"");
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 1);

    /* If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2) */
    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("if-none-match", "\"v0\"");
    req_add("if-modified-since", "Wed, 02 Jan 2030 00:00:00 GMT");
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0);

    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("if-modified-since", "Tue, 01 Jan 2030 00:00:00 GMT"); /* not modified since: equal */
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 1);

    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("if-modified-since", "Mon, 31 Dec 2029 23:59:59 GMT"); /* modified after it */
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0);

    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("if-modified-since", "not a date");
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0);
    obj_unref(&obj);

    /* only a stored 200 is ever answered 304 */
    obj = object(404, resp, NULL);
    h2o_mem_clear_pool(&req.pool);
    memset(&req, 0, sizeof(req));
    h2o_mem_init_pool(&req.pool);
    req_add("if-none-match", "\"v1\"");
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0);
    obj_unref(&obj);

    /* a validator the object does not have never matches */
    const char *const bare[] = {"content-type", "text/plain", NULL};
    obj = object(200, bare, NULL);
    ck_assert_int_eq(proxy_client_conditional_matches(&req, obj), 0);
    obj_unref(&obj);
}
END_TEST

/* ---- the busy object: a body is received, then ends once */

START_TEST(test_upstream_transitions)
{
    const fetch_upstream_t all[] = {FETCH_UPSTREAM_RECEIVING, FETCH_UPSTREAM_COMPLETE, FETCH_UPSTREAM_FAILED};
    for (size_t i = 0; i != 3; ++i) {
        for (size_t j = 0; j != 3; ++j) {
            int legal = all[i] == FETCH_UPSTREAM_RECEIVING && all[j] != FETCH_UPSTREAM_RECEIVING;
            ck_assert_msg(proxy_fetch_upstream_transition_ok(all[i], all[j]) == legal, "%zu -> %zu", i, j);
        }
    }
    /* a fresh link or stream (calloc'd, zeroed) is receiving */
    ck_assert_int_eq(FETCH_UPSTREAM_RECEIVING, 0);
}
END_TEST

START_TEST(test_stream_ends_once)
{
    /* the fetch's side of a shared stream without readers: bytes, an end, and a late failure that
     * must not undo the end (proxy_fetch_free publishes FAILED whatever happened before) */
    hr_list_t list = {0};
    hr_list_push(&list, H2O_STRLIT("content-type"), H2O_STRLIT("text/plain"));
    fetch_stream_t *st = proxy_stream_create(200, h2o_iovec_init(H2O_STRLIT("OK")), &list, 0, 4, 0, 0);
    hr_list_dispose(&list);
    proxy_stream_publish(st, "bo", 2, FETCH_UPSTREAM_RECEIVING);
    proxy_stream_publish(st, "dy", 2, FETCH_UPSTREAM_COMPLETE);
    proxy_stream_publish(st, NULL, 0, FETCH_UPSTREAM_FAILED); /* a no-op once ended (else COMPLETE -> FAILED aborts) */
    proxy_stream_publish(st, "x", 1, FETCH_UPSTREAM_RECEIVING);
    proxy_stream_unref(st);
}
END_TEST

/* a fetch as proxy_publish_object reads it: its key, and the store's epoch and generation when it began */
static fetch_t *fetch_for(const char *key)
{
    fetch_t *f = calloc(1, sizeof(*f));
    f->key = strdup(key);
    f->key_len = strlen(key);
    f->epoch = store_purge_epoch(proxy_globals.store);
    f->generation = store_generation(proxy_globals.store);
    return f;
}

static void fetch_done(fetch_t *f)
{
    free(f->key);
    free(f);
}

/* a put the store refuses (its queue for disk is full) leaves no copy in the memory tier */
START_TEST(test_publish_refused_put_is_not_kept_in_memory)
{
    char *dir = tmpdir_new();
    mem_tier_t *mem = mem_create(64 << 20, 0);
    store_options_t opt = {.dir = dir, .map_size = 64 << 20, .mem = mem, .put_backlog = 64 << 10};
    char err[256];
    store_t *s = NULL;
    ck_assert_int_eq(store_open(&s, &opt, err, sizeof(err)), 0);
    proxy_globals.store = s;
    proxy_globals.mem = mem;

    /* hold the store's thread in a purge's callback: the puts behind it stay queued */
    cache_obj_t *held = make_obj("example.com/held", "kheld", "", 10, 'h', store_generation(s));
    ck_assert_int_eq(store_put(s, held), 0);
    ck_assert_int_eq(store_flush(s), 0);
    gate_t g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    store_purge_surrogate_key(s, "kheld", 5, 0, on_purge_hold, &g);
    gate_wait_entered(&g);

    fetch_t *fa = fetch_for("example.com/a"), *fb = fetch_for("example.com/b");
    cache_obj_t *a = make_obj("example.com/a", "", "", 48 << 10, 'a', store_generation(s));
    cache_obj_t *b = make_obj("example.com/b", "", "", 48 << 10, 'b', store_generation(s));
    ck_assert_int_eq(proxy_publish_object(fa, a), 1); /* alone in the queue: taken */
    ck_assert_int_eq(proxy_publish_object(fb, b), 0); /* 96 KiB > 64 KiB: refused */
    cache_obj_t *in_mem = mem_lookup(mem, a->hash);
    ck_assert_ptr_eq(in_mem, a);
    obj_unref(&in_mem);
    ck_assert_ptr_null(mem_lookup(mem, b->hash));

    gate_open(&g);
    ck_assert_int_eq(store_flush(s), 0);
    ck_assert(present(s, a));
    ck_assert(!present(s, b));
    store_stats_t st;
    store_get_stats(s, &st);
    ck_assert_uint_eq(st.puts_refused_backlog, 1);

    store_close(&s);
    proxy_globals.store = NULL;
    proxy_globals.mem = NULL;
    mem_destroy(&mem);
    fetch_done(fa);
    fetch_done(fb);
    obj_unref(&a);
    obj_unref(&b);
    obj_unref(&held);
    tmpdir_free(dir);
}
END_TEST

static Suite *proxy_suite(void)
{
    Suite *s = suite_create("proxy");
    TCase *vary = tcase_create("vary");
    tcase_add_test(vary, test_vary_key_names_in_order_lower_case);
    tcase_add_test(vary, test_vary_key_absent_differs_from_empty);
    tcase_add_test(vary, test_vary_key_trims_values);
    tcase_add_test(vary, test_vary_key_folds_accept_encoding);
    tcase_add_test(vary, test_vary_key_too_long_is_refused);
    tcase_add_test(vary, test_vary_key_of_names_alone);
    tcase_add_test(vary, test_join_field_lines);
    suite_add_tcase(s, vary);
    TCase *deliver = tcase_create("requests");
    tcase_add_checked_fixture(deliver, setup, teardown);
    tcase_add_test(deliver, test_variant_fits_request);
    tcase_add_test(deliver, test_stored_framing_is_not_delivered);
    tcase_add_test(deliver, test_etag_matches_weak_comparison);
    tcase_add_test(deliver, test_client_conditionals);
    suite_add_tcase(s, deliver);
    TCase *busy = tcase_create("busy");
    tcase_add_test(busy, test_upstream_transitions);
    tcase_add_test(busy, test_stream_ends_once);
    suite_add_tcase(s, busy);
    TCase *publish = tcase_create("publish");
    tcase_set_timeout(publish, 60);
    tcase_add_test(publish, test_publish_refused_put_is_not_kept_in_memory);
    suite_add_tcase(s, publish);
    return s;
}

int main(void)
{
    if (unit_tmp_base_make("proxy") != 0)
        return 1;
    SRunner *sr = srunner_create(proxy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    unit_rm_tree(unit_tmp_base);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
