/*
 * tests/unit/test_admin_settings.c — the admin API's runtime settings (admin-api/settings.c)
 * without a listener: applying a JSON subset, the semantics fields, rejections that name the
 * field and never half-apply, the JSON round trip and what a complete stored document is, the
 * seqlock that workers read while the admin writes (never a torn read), and seeding from the
 * configuration (clamped to the API's range).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_int.h"

/* ---- settings ---- */

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    ck_assert_msg(j != NULL, "bad test JSON %s", s);
    return j;
}

static admin_settings_t base_settings(void)
{
    admin_settings_t s = {.default_ttl = 120, .default_grace = 0, .max_heuristic_ttl = 86400, .purge_requires_auth = 1};
    return s; /* cookie policy "pass", no obey_client_no_cache, no keep_surrogate_headers */
}

START_TEST(settings_apply_subset)
{
    admin_settings_t s = base_settings();
    char detail[200];
    json_t *j = parse("{\"default_ttl\":5,\"purge_requires_auth\":false}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_uint_eq(s.default_ttl, 5);
    ck_assert_uint_eq(s.max_heuristic_ttl, 86400);
    ck_assert_int_eq(s.purge_requires_auth, 0);

    j = parse("{\"default_grace\":31536000,\"max_heuristic_ttl\":0}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_uint_eq(s.default_grace, 31536000);
    ck_assert_uint_eq(s.max_heuristic_ttl, 0);
    ck_assert_uint_eq(s.negative_ttl, 0); /* not named: unchanged */

    j = parse("{\"negative_ttl\":30}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_uint_eq(s.negative_ttl, 30);
    ck_assert_uint_eq(s.default_grace, 31536000);
    j = parse("{\"negative_ttl\":31536000}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_uint_eq(s.negative_ttl, 31536000);
}
END_TEST

START_TEST(settings_apply_semantics_fields)
{
    admin_settings_t s = base_settings();
    char detail[320];
    json_t *j = parse("{\"cookie_policy\":\"strip\",\"obey_client_no_cache\":true}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_int_eq(s.cookie_policy_strip, 1);
    ck_assert_int_eq(s.obey_client_no_cache, 1);
    ck_assert_int_eq(s.keep_surrogate_headers, 0); /* not named: unchanged */
    ck_assert_uint_eq(s.default_ttl, 120);

    j = parse("{\"cookie_policy\":\"pass\",\"keep_surrogate_headers\":true,\"obey_client_no_cache\":false}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert_int_eq(s.cookie_policy_strip, 0);
    ck_assert_int_eq(s.obey_client_no_cache, 0);
    ck_assert_int_eq(s.keep_surrogate_headers, 1);
}
END_TEST

static void expect_rejected(const char *body, const char *detail_prefix)
{
    admin_settings_t s = base_settings(), before = s;
    char detail[320] = "";
    json_t *j = parse(body);
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), ADMIN_EINVAL);
    json_decref(j);
    ck_assert_msg(strncmp(detail, detail_prefix, strlen(detail_prefix)) == 0, "%s -> detail '%s'", body, detail);
    ck_assert_msg(memcmp(&s, &before, sizeof(s)) == 0, "%s was half-applied", body);
}

START_TEST(settings_reject_and_never_half_apply)
{
    expect_rejected("{\"default_ttl\":10,\"bogus\":1}", "bogus: unknown field");
    expect_rejected("{\"default_ttl\":\"10\"}", "default_ttl: must be an integer");
    expect_rejected("{\"default_ttl\":1.5}", "default_ttl: must be an integer");
    expect_rejected("{\"default_ttl\":true}", "default_ttl: must be an integer");
    expect_rejected("{\"default_ttl\":10,\"default_grace\":-1}", "default_grace: must be between 0 and 31536000");
    expect_rejected("{\"max_heuristic_ttl\":31536001}", "max_heuristic_ttl: must be between");
    expect_rejected("{\"max_heuristic_ttl\":99999999999999}", "max_heuristic_ttl: must be between");
    expect_rejected("{\"negative_ttl\":-1}", "negative_ttl: must be between 0 and 31536000");
    expect_rejected("{\"default_ttl\":10,\"negative_ttl\":31536001}", "negative_ttl: must be between");
    expect_rejected("{\"negative_ttl\":\"60\"}", "negative_ttl: must be an integer");
    expect_rejected("{\"negative_ttl\":1.5}", "negative_ttl: must be an integer");
    expect_rejected("{\"negative_ttl\":null}", "negative_ttl: must be an integer");
    expect_rejected("{\"purge_requires_auth\":1}", "purge_requires_auth: must be true or false");
    expect_rejected("[1]", "body: must be a JSON object");
    /* the caching-semantics fields: wrong type or unknown value, and nothing half-applied */
    expect_rejected("{\"cookie_policy\":\"eat\"}", "cookie_policy: must be \"pass\" or \"strip\"");
    expect_rejected("{\"cookie_policy\":\"STRIP\"}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":\"strip \"}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":\"\"}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":1}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":true}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":null}", "cookie_policy: must be");
    expect_rejected("{\"cookie_policy\":\"strip\",\"obey_client_no_cache\":\"yes\"}",
                    "obey_client_no_cache: must be true or false");
    expect_rejected("{\"obey_client_no_cache\":1}", "obey_client_no_cache: must be true or false");
    expect_rejected("{\"keep_surrogate_headers\":true,\"default_ttl\":7,\"keep_surrogate_headers_\":1}",
                    "keep_surrogate_headers_: unknown field");
    expect_rejected("{\"keep_surrogate_headers\":[true]}", "keep_surrogate_headers: must be true or false");
    expect_rejected("{\"default_ttl\":5,\"keep_surrogate_headers\":0}", "keep_surrogate_headers: must be true or false");
}
END_TEST

START_TEST(settings_unknown_field_detail_names_the_new_fields)
{
    admin_settings_t s = base_settings();
    char detail[320] = "";
    json_t *j = parse("{\"cookies\":\"strip\"}");
    ck_assert_int_eq(admin_settings_apply_json(&s, j, detail, sizeof(detail)), ADMIN_EINVAL);
    json_decref(j);
    ck_assert_msg(strstr(detail, "cookie_policy") != NULL && strstr(detail, "obey_client_no_cache") != NULL &&
                      strstr(detail, "negative_ttl") != NULL && strstr(detail, "keep_surrogate_headers)") != NULL,
                  "detail lists the known fields, untruncated: %s", detail);
}
END_TEST

START_TEST(settings_json_round_trip)
{
    /* every field away from base_settings(), so a field the JSON forgets cannot pass */
    admin_settings_t s = {.default_ttl = 7,
                          .default_grace = 8,
                          .max_heuristic_ttl = 9,
                          .negative_ttl = 10,
                          .purge_requires_auth = 0,
                          .cookie_policy_strip = 1,
                          .obey_client_no_cache = 1,
                          .keep_surrogate_headers = 1};
    admin_settings_t back = base_settings();
    char detail[320];
    json_t *j = admin_settings_to_json(&s);
    ck_assert_str_eq(json_string_value(json_object_get(j, "cookie_policy")), "strip");
    ck_assert(json_is_true(json_object_get(j, "obey_client_no_cache")));
    ck_assert(json_is_true(json_object_get(j, "keep_surrogate_headers")));
    ck_assert_int_eq(json_integer_value(json_object_get(j, "negative_ttl")), 10);
    ck_assert_int_eq(json_object_size(j), 8);
    ck_assert(admin_settings_json_is_complete(j));
    ck_assert_int_eq(admin_settings_apply_json(&back, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert(memcmp(&s, &back, sizeof(s)) == 0);

    /* and the defaults the other way */
    s = base_settings();
    back.default_ttl = 1;
    j = admin_settings_to_json(&s);
    ck_assert_str_eq(json_string_value(json_object_get(j, "cookie_policy")), "pass");
    ck_assert(json_is_false(json_object_get(j, "obey_client_no_cache")));
    ck_assert(json_is_false(json_object_get(j, "keep_surrogate_headers")));
    ck_assert_int_eq(admin_settings_apply_json(&back, j, detail, sizeof(detail)), 0);
    json_decref(j);
    ck_assert(memcmp(&s, &back, sizeof(s)) == 0);
}
END_TEST

START_TEST(settings_json_completeness)
{
    json_t *j = parse("{\"default_ttl\":1,\"default_grace\":2,\"max_heuristic_ttl\":3,\"purge_requires_auth\":true}");
    ck_assert(!admin_settings_json_is_complete(j)); /* what the first version stored */
    json_object_set_new(j, "cookie_policy", json_string("pass"));
    json_object_set_new(j, "obey_client_no_cache", json_false());
    ck_assert(!admin_settings_json_is_complete(j));
    json_object_set_new(j, "keep_surrogate_headers", json_false());
    ck_assert(!admin_settings_json_is_complete(j)); /* what the second version stored */
    json_object_set_new(j, "negative_ttl", json_integer(0));
    ck_assert(admin_settings_json_is_complete(j));
    json_decref(j);
    j = parse("[1]");
    ck_assert(!admin_settings_json_is_complete(j));
    json_decref(j);
}
END_TEST

static admin_settings_cell_t cell;
static atomic_int cell_stop;

static void *cell_writer(void *arg)
{
    (void)arg;
    for (uint32_t i = 1; !atomic_load(&cell_stop); i++) {
        /* every published value has all its fields derived from the same i */
        admin_settings_t s = {.default_ttl = i,
                              .default_grace = i * 2,
                              .max_heuristic_ttl = i * 3,
                              .negative_ttl = i * 5,
                              .purge_requires_auth = (int)(i & 1),
                              .cookie_policy_strip = (int)((i >> 1) & 1),
                              .obey_client_no_cache = (int)((i >> 2) & 1),
                              .keep_surrogate_headers = (int)(~i & 1)};
        admin_settings_cell_set(&cell, &s);
    }
    return NULL;
}

START_TEST(settings_seqlock_never_torn)
{
    admin_settings_t init = {.keep_surrogate_headers = 1}, got;
    pthread_t w;
    admin_settings_cell_init(&cell, &init);
    atomic_store(&cell_stop, 0);
    pthread_create(&w, NULL, cell_writer, NULL);
    for (int n = 0; n < 300000; n++) {
        admin_settings_cell_get(&cell, &got);
        uint32_t i = got.default_ttl;
        ck_assert_uint_eq(got.default_grace, i * 2);
        ck_assert_uint_eq(got.max_heuristic_ttl, i * 3);
        ck_assert_uint_eq(got.negative_ttl, i * 5);
        ck_assert_int_eq(got.purge_requires_auth, (int)(i & 1));
        ck_assert_int_eq(got.cookie_policy_strip, (int)((i >> 1) & 1));
        ck_assert_int_eq(got.obey_client_no_cache, (int)((i >> 2) & 1));
        ck_assert_int_eq(got.keep_surrogate_headers, (int)(~i & 1));
    }
    atomic_store(&cell_stop, 1);
    pthread_join(w, NULL);
    admin_settings_cell_dispose(&cell);
}
END_TEST

START_TEST(settings_seed_from_config)
{
    config_t cfg;
    admin_settings_t s;
    memset(&cfg, 0, sizeof(cfg));
    cfg.default_ttl = 300;
    cfg.default_grace = 60;
    cfg.max_heuristic_ttl = 4000000000u; /* clamped to the API's range */
    cfg.negative_ttl = 45;
    admin_settings_from_config(&s, &cfg);
    ck_assert_uint_eq(s.negative_ttl, 45);
    ck_assert_uint_eq(s.default_ttl, 300);
    ck_assert_uint_eq(s.default_grace, 60);
    ck_assert_uint_eq(s.max_heuristic_ttl, ADMIN_SETTINGS_MAX_SECONDS);
    ck_assert_int_eq(s.purge_requires_auth, 1);
    ck_assert_int_eq(s.cookie_policy_strip, 0);
    ck_assert_int_eq(s.obey_client_no_cache, 0);
    ck_assert_int_eq(s.keep_surrogate_headers, 0);

    cfg.cookie_policy_strip = 1;
    cfg.obey_client_no_cache = 1;
    cfg.keep_surrogate_headers = 7; /* any true value becomes 1 */
    cfg.negative_ttl = 4000000000u; /* clamped to the API's range */
    admin_settings_from_config(&s, &cfg);
    ck_assert_uint_eq(s.negative_ttl, ADMIN_SETTINGS_MAX_SECONDS);
    ck_assert_int_eq(s.cookie_policy_strip, 1);
    ck_assert_int_eq(s.obey_client_no_cache, 1);
    ck_assert_int_eq(s.keep_surrogate_headers, 1);
}
END_TEST

static Suite *admin_settings_suite(void)
{
    Suite *s = suite_create("admin_settings");
    TCase *t = tcase_create("settings");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, settings_apply_subset);
    tcase_add_test(t, settings_apply_semantics_fields);
    tcase_add_test(t, settings_reject_and_never_half_apply);
    tcase_add_test(t, settings_unknown_field_detail_names_the_new_fields);
    tcase_add_test(t, settings_json_round_trip);
    tcase_add_test(t, settings_json_completeness);
    tcase_add_test(t, settings_seqlock_never_torn);
    tcase_add_test(t, settings_seed_from_config);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admin_settings_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
