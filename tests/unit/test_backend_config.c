/*
 * tests/unit/test_backend_config.c — what the backend module accepts as configuration
 * (server/backend_config.c and its flags in server/config.c): backend and health-check
 * objects from JSON and from form bodies (defaults, every field, errors that name the field
 * and leave the object untouched), whole configurations validated and round-tripped through
 * the persisted document, seeding from --backend flags and forcing a shield, and the
 * --load-balancing / --shield* flags and config-file keys.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "server/backend.h"
#include "server/backend_int.h"
#include "tests/unit/unit_backend.h"

static json_t *js(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, 0, &err);
    ck_assert_msg(v != NULL, "bad test JSON %s: %s", text, err.text);
    return v;
}

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

static Suite *backend_config_suite(void)
{
    Suite *s = suite_create("backend_config");
    TCase *tc = tcase_create("pure");
    tcase_add_test(tc, backend_json_defaults_and_fields);
    tcase_add_test(tc, backend_json_errors_name_the_field);
    tcase_add_test(tc, healthcheck_json);
    tcase_add_test(tc, form_bodies);
    tcase_add_test(tc, config_validate_and_round_trip);
    tcase_add_test(tc, seed_and_force_shield);
    tcase_add_test(tc, config_flags_and_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(backend_config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
