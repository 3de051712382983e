/*
 * tests/unit/test_admin_request.c — what the admin API makes of a request before it acts
 * (admin-api/auth.c, admin-api/paths.c): scope lists parsed and round-tripped, which peers
 * count as this machine, token hashing and generation, token records and names, the
 * credentials a request carries, the per-address failure budget (and its bound under many
 * addresses), and the request-path parsers: percent-decoding, surrogate keys and purge URL
 * targets. Pure functions: no store, no socket. (Purge ids and soft purges are the purge
 * module's: tests/unit/test_purge.c.)
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include "admin-api/admin_int.h"

/* ---- scopes ---- */

START_TEST(scopes_parse_comma_and_space)
{
    unsigned m = 0;
    char err[160];
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT("purge_select,global:read"), &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m, ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_GLOBAL_READ);
    /* repeated calls accumulate, spaces separate too */
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT(" purge_all  global "), &m, err, sizeof(err)), 0);
    ck_assert_uint_eq(m, ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_GLOBAL_READ | ADMIN_SCOPE_PURGE_ALL | ADMIN_SCOPE_GLOBAL);
}
END_TEST

START_TEST(scopes_parse_rejects)
{
    unsigned m = ADMIN_SCOPE_PURGE_ALL;
    char err[160];
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT("purge_select,globl"), &m, err, sizeof(err)), ADMIN_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "globl"));
    ck_assert_uint_eq(m, ADMIN_SCOPE_PURGE_ALL); /* untouched on error */
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT(""), &m, err, sizeof(err)), ADMIN_EINVAL);
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT(" , "), &m, err, sizeof(err)), ADMIN_EINVAL);
    /* "global" is not a prefix match for "global:read" and vice versa */
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT("global:"), &m, err, sizeof(err)), ADMIN_EINVAL);
    ck_assert_int_eq(admin_scopes_parse(H2O_STRLIT("GLOBAL"), &m, err, sizeof(err)), ADMIN_EINVAL);
}
END_TEST

START_TEST(scopes_json_round_trip)
{
    unsigned all = ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_PURGE_ALL | ADMIN_SCOPE_GLOBAL_READ | ADMIN_SCOPE_GLOBAL, m = 0;
    json_t *arr = admin_scopes_to_json(all);
    ck_assert_uint_eq(json_array_size(arr), 4);
    ck_assert_int_eq(admin_scopes_from_json(arr, &m), 0);
    ck_assert_uint_eq(m, all);
    json_decref(arr);

    /* unknown names in a stored record are ignored, non-strings are an error */
    json_t *odd = json_pack("[s,s]", "purge_all", "future_scope");
    ck_assert_int_eq(admin_scopes_from_json(odd, &m), 0);
    ck_assert_uint_eq(m, ADMIN_SCOPE_PURGE_ALL);
    json_decref(odd);
    json_t *bad = json_pack("[i]", 3);
    ck_assert_int_eq(admin_scopes_from_json(bad, &m), ADMIN_EINVAL);
    json_decref(bad);
    json_t *notarr = json_string("global");
    ck_assert_int_eq(admin_scopes_from_json(notarr, &m), ADMIN_EINVAL);
    json_decref(notarr);
}
END_TEST

/* ---- tokens ---- */

/* a purge without a token, while none exists, is for this machine only: which peers count */
START_TEST(loopback_peers_only)
{
    uint8_t a[16] = {0};
    ck_assert_int_eq(admin_addr_is_loopback(a), 0); /* unknown peer */
    a[10] = a[11] = 0xff;
    a[12] = 127, a[13] = 0, a[14] = 0, a[15] = 1;
    ck_assert_int_eq(admin_addr_is_loopback(a), 1);
    a[12] = 127, a[13] = 45, a[14] = 6, a[15] = 200;
    ck_assert_int_eq(admin_addr_is_loopback(a), 1);
    a[12] = 10, a[13] = 0, a[14] = 0, a[15] = 1;
    ck_assert_int_eq(admin_addr_is_loopback(a), 0);
    a[12] = 128, a[13] = 0, a[14] = 0, a[15] = 1;
    ck_assert_int_eq(admin_addr_is_loopback(a), 0);
    memset(a, 0, sizeof(a));
    a[15] = 1; /* ::1 */
    ck_assert_int_eq(admin_addr_is_loopback(a), 1);
    a[0] = 0x20, a[1] = 0x01; /* 2001::1 */
    ck_assert_int_eq(admin_addr_is_loopback(a), 0);
    memset(a, 0, sizeof(a));
    a[11] = 0xff, a[12] = 127; /* not a v4-mapped prefix: 0:...:ff7f:... */
    ck_assert_int_eq(admin_addr_is_loopback(a), 0);
}
END_TEST

START_TEST(token_hash_is_blake2b_256_hex)
{
    char hex[ADMIN_TOKEN_HASH_HEX];
    admin_token_hash_hex(H2O_STRLIT("abc"), hex);
    /* BLAKE2b-256("abc"), RFC 7693 test vectors (unkeyed, 32-byte output) */
    ck_assert_str_eq(hex, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
    char hex2[ADMIN_TOKEN_HASH_HEX];
    admin_token_hash_hex(H2O_STRLIT("abd"), hex2);
    ck_assert_str_ne(hex, hex2);
}
END_TEST

START_TEST(token_generate_format)
{
    char t1[ADMIN_TOKEN_STR_CAP], t2[ADMIN_TOKEN_STR_CAP], id1[ADMIN_TOKEN_ID_HEX], id2[ADMIN_TOKEN_ID_HEX];
    admin_token_generate(t1, id1);
    admin_token_generate(t2, id2);
    ck_assert_uint_eq(strlen(t1), 43); /* 32 bytes, base64url without padding */
    ck_assert_uint_eq(strlen(id1), 16);
    for (const char *p = t1; *p; p++)
        ck_assert(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p) != NULL);
    for (const char *p = id1; *p; p++)
        ck_assert(strchr("0123456789abcdef", *p) != NULL);
    ck_assert_str_ne(t1, t2);
    ck_assert_str_ne(id1, id2);
    /* never a leading '-' (CLIs would take `--token -x...` for a missing value): 1 in 64 would be */
    for (int i = 0; i < 2000; i++) {
        admin_token_generate(t1, id1);
        ck_assert_msg(t1[0] != '-', "token begins with '-': %s", t1);
    }
}
END_TEST

START_TEST(token_record_round_trip)
{
    admin_token_rec_t rec, back;
    memset(&rec, 0, sizeof(rec));
    strcpy(rec.id, "0123456789abcdef");
    strcpy(rec.name, "deploy \"bot\"");
    rec.scopes = ADMIN_SCOPE_PURGE_SELECT | ADMIN_SCOPE_PURGE_ALL;
    rec.created = 1700000000;
    char *s = admin_token_rec_dump(&rec);
    ck_assert_ptr_null(strstr(s, "hash"));
    ck_assert_int_eq(admin_token_rec_parse(s, strlen(s), &back), 0);
    ck_assert_str_eq(back.id, rec.id);
    ck_assert_str_eq(back.name, rec.name);
    ck_assert_uint_eq(back.scopes, rec.scopes);
    ck_assert_int_eq(back.created, rec.created);
    free(s);

    json_t *o = admin_token_rec_to_json(&rec);
    ck_assert_str_eq(json_string_value(json_object_get(o, "created_at")), "2023-11-14T22:13:20Z");
    ck_assert_ptr_null(json_object_get(o, "access_token"));
    json_decref(o);
}
END_TEST

START_TEST(token_record_rejects_corrupt)
{
    admin_token_rec_t rec;
    static const char *bad[] = {
        "",
        "{",
        "[]",
        "{\"id\":\"0123456789abcdef\",\"name\":\"x\",\"scopes\":[\"global\"]}",                     /* no created */
        "{\"id\":\"0123\",\"name\":\"x\",\"scopes\":[\"global\"],\"created\":1}",                   /* short id */
        "{\"id\":\"0123456789abcdef\",\"name\":5,\"scopes\":[\"global\"],\"created\":1}",           /* name type */
        "{\"id\":\"0123456789abcdef\",\"name\":\"x\",\"scopes\":\"global\",\"created\":1}",         /* scopes type */
        "{\"id\":\"0123456789abcdef\",\"name\":\"x\",\"scopes\":[\"global\"],\"created\":\"now\"}", /* created type */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(admin_token_rec_parse(bad[i], strlen(bad[i]), &rec) == ADMIN_EINVAL, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(token_name_validation)
{
    ck_assert_int_eq(admin_token_name_validate(H2O_STRLIT("ci deploy")), 0);
    ck_assert_int_eq(admin_token_name_validate(H2O_STRLIT("")), ADMIN_EINVAL);
    ck_assert_int_eq(admin_token_name_validate(H2O_STRLIT(" lead")), ADMIN_EINVAL);
    ck_assert_int_eq(admin_token_name_validate(H2O_STRLIT("tab\there")), ADMIN_EINVAL);
    ck_assert_int_eq(admin_token_name_validate(H2O_STRLIT("caf\xc3\xa9")), ADMIN_EINVAL);
    char longname[ADMIN_MAX_NAME_LEN + 2];
    memset(longname, 'a', sizeof(longname));
    ck_assert_int_eq(admin_token_name_validate(longname, ADMIN_MAX_NAME_LEN), 0);
    ck_assert_int_eq(admin_token_name_validate(longname, ADMIN_MAX_NAME_LEN + 1), ADMIN_EINVAL);
}
END_TEST

/* a request with the given headers (name, value pairs; NULL-terminated) */
static void fake_req(h2o_req_t *req, const char **hv)
{
    memset(req, 0, sizeof(*req));
    h2o_mem_init_pool(&req->pool);
    for (; hv[0] != NULL; hv += 2)
        h2o_add_header_by_str(&req->pool, &req->headers, hv[0], strlen(hv[0]), 0, NULL, hv[1], strlen(hv[1]));
}

static int token_of(const char **hv, char *out, size_t cap)
{
    h2o_req_t req;
    const char *t;
    size_t len;
    fake_req(&req, hv);
    int r = admin_request_token(&req, &t, &len);
    if (r) {
        ck_assert_uint_lt(len, cap);
        memcpy(out, t, len);
        out[len] = '\0';
    }
    h2o_mem_clear_pool(&req.pool);
    return r;
}

START_TEST(request_credentials)
{
    char tok[64];
    const char *a[] = {"fastly-key", " abc ", NULL};
    ck_assert_int_eq(token_of(a, tok, sizeof(tok)), 1);
    ck_assert_str_eq(tok, "abc");
    const char *b[] = {"authorization", "Bearer xyz", NULL};
    ck_assert_int_eq(token_of(b, tok, sizeof(tok)), 1);
    ck_assert_str_eq(tok, "xyz");
    const char *c[] = {"Authorization", "bearer   k2", NULL}; /* names and the scheme are case-insensitive */
    ck_assert_int_eq(token_of(c, tok, sizeof(tok)), 1);
    ck_assert_str_eq(tok, "k2");
    const char *d[] = {"authorization", "Basic dXNlcjpwdw==", NULL};
    ck_assert_int_eq(token_of(d, tok, sizeof(tok)), 0);
    const char *e[] = {"authorization", "Bearer other", "fastly-key", "wins", NULL};
    ck_assert_int_eq(token_of(e, tok, sizeof(tok)), 1);
    ck_assert_str_eq(tok, "wins");
    const char *f[] = {"x-other", "1", NULL};
    ck_assert_int_eq(token_of(f, tok, sizeof(tok)), 0);
}
END_TEST

/* ---- failure budget ---- */

static void addr_of(uint8_t a[16], unsigned n)
{
    memset(a, 0, 16);
    a[10] = a[11] = 0xff;
    a[12] = 10, a[13] = (uint8_t)(n >> 16), a[14] = (uint8_t)(n >> 8), a[15] = (uint8_t)n;
}

START_TEST(budget_slows_after_limit_then_resets)
{
    admin_budget_t b;
    uint8_t a[16], other[16];
    admin_budget_init(&b);
    addr_of(a, 1);
    addr_of(other, 2);
    for (int i = 0; i < ADMIN_BUDGET_FAILURES; i++)
        ck_assert_int_eq(admin_budget_fail(&b, a, 1000 + i), 0);
    ck_assert_int_eq(admin_budget_fail(&b, a, 1020), 1);
    ck_assert_int_eq(admin_budget_fail(&b, a, 1030), 1);
    /* another address has its own budget */
    ck_assert_int_eq(admin_budget_fail(&b, other, 1030), 0);
    /* a new window starts fresh */
    ck_assert_int_eq(admin_budget_fail(&b, a, 1000 + ADMIN_BUDGET_WINDOW_S + 1), 0);
    admin_budget_dispose(&b);
}
END_TEST

START_TEST(budget_is_bounded_under_many_addresses)
{
    admin_budget_t b;
    uint8_t a[16], victim[16];
    admin_budget_init(&b);
    addr_of(victim, 999999);
    for (int i = 0; i < ADMIN_BUDGET_FAILURES + 1; i++)
        admin_budget_fail(&b, victim, 5000);
    /* thousands of other addresses: the table stays the same size and keeps working */
    for (unsigned n = 0; n < 20000; n++) {
        addr_of(a, n);
        ck_assert_int_eq(admin_budget_fail(&b, a, 5001), 0);
    }
    size_t used = 0;
    for (size_t i = 0; i < ADMIN_BUDGET_SLOTS; i++)
        used += b.slots[i].used != 0;
    ck_assert_uint_le(used, ADMIN_BUDGET_SLOTS);
    /* one address hammering is still caught after the churn */
    addr_of(a, 7);
    int over = 0;
    for (int i = 0; i < ADMIN_BUDGET_FAILURES + 5; i++)
        over |= admin_budget_fail(&b, a, 5002);
    ck_assert_int_eq(over, 1);
    admin_budget_dispose(&b);
}
END_TEST

/* ---- request paths ---- */

START_TEST(percent_decoding)
{
    char out[32];
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("a%2Fb%20c"), out, sizeof(out)), 5);
    ck_assert(memcmp(out, "a/b c", 5) == 0);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("%zz"), out, sizeof(out)), -1);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("ab%4"), out, sizeof(out)), -1);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("ab%"), out, sizeof(out)), -1);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("%00"), out, sizeof(out)), -1);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT("abcdef"), out, 3), -1);
    ck_assert_int_eq(admin_percent_decode(H2O_STRLIT(""), out, sizeof(out)), 0);
}
END_TEST

START_TEST(surrogate_key_validation)
{
    ck_assert_int_eq(admin_skey_valid(H2O_STRLIT("product/42")), 1);
    ck_assert_int_eq(admin_skey_valid(H2O_STRLIT("")), 0);
    ck_assert_int_eq(admin_skey_valid(H2O_STRLIT("a b")), 0);
    ck_assert_int_eq(admin_skey_valid(H2O_STRLIT("a\nb")), 0);
    char big[ADMIN_MAX_SKEY_LEN + 1];
    memset(big, 'k', sizeof(big));
    ck_assert_int_eq(admin_skey_valid(big, ADMIN_MAX_SKEY_LEN), 1);
    ck_assert_int_eq(admin_skey_valid(big, ADMIN_MAX_SKEY_LEN + 1), 0);
}
END_TEST

static void expect_target(const char *target, const char *want_host, const char *want_path)
{
    const char *host;
    size_t host_len, path_len;
    char path[256], detail[160];
    int r = admin_parse_url_target(target, strlen(target), &host, &host_len, path, sizeof(path), &path_len, detail,
                                   sizeof(detail));
    ck_assert_msg(r == 0, "%s: %s", target, detail);
    ck_assert_msg(host_len == strlen(want_host) && memcmp(host, want_host, host_len) == 0, "%s: host %.*s", target,
                  (int)host_len, host);
    ck_assert_msg(path_len == strlen(want_path) && memcmp(path, want_path, path_len) == 0, "%s: path %.*s", target,
                  (int)path_len, path);
}

START_TEST(url_targets)
{
    expect_target("example.com/a/b?x=1", "example.com", "/a/b?x=1");
    expect_target("http://Example.com/x", "Example.com", "/x");
    expect_target("HTTPS://h.test:443/p", "h.test", "/p");
    expect_target("https://h.test:8443/p", "h.test:8443", "/p");
    expect_target("http://h.test:80/p", "h.test:80", "/p"); /* proxy_cache_key drops :80 */
    expect_target("h.test", "h.test", "/");
    expect_target("h.test?q=1", "h.test", "/?q=1");
    expect_target("http%3A%2F%2Fh.test/a", "h.test", "/a");
    expect_target("http:/h.test/a", "h.test", "/a");
    expect_target("[::1]:8080/z", "[::1]:8080", "/z");

    const char *host;
    size_t hl, pl;
    char path[8], detail[160];
    ck_assert_int_eq(admin_parse_url_target(H2O_STRLIT(""), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
                     ADMIN_EINVAL);
    ck_assert_int_eq(admin_parse_url_target(H2O_STRLIT("/x"), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
                     ADMIN_EINVAL);
    ck_assert_int_eq(admin_parse_url_target(H2O_STRLIT("http://"), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
                     ADMIN_EINVAL);
    ck_assert_int_eq(admin_parse_url_target(H2O_STRLIT("ho\"st/x"), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
                     ADMIN_EINVAL);
    ck_assert_int_eq(admin_parse_url_target(H2O_STRLIT("h/a b"), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
                     ADMIN_EINVAL);
    ck_assert_int_eq(
        admin_parse_url_target(H2O_STRLIT("h/longer-than-8"), &host, &hl, path, sizeof(path), &pl, detail, sizeof(detail)),
        ADMIN_EINVAL);
    ck_assert_ptr_nonnull(strstr(detail, "url:"));
}
END_TEST

static Suite *admin_request_suite(void)
{
    Suite *s = suite_create("admin_request");
    TCase *t = tcase_create("tokens");
    tcase_add_test(t, scopes_parse_comma_and_space);
    tcase_add_test(t, loopback_peers_only);
    tcase_add_test(t, scopes_parse_rejects);
    tcase_add_test(t, scopes_json_round_trip);
    tcase_add_test(t, token_hash_is_blake2b_256_hex);
    tcase_add_test(t, token_generate_format);
    tcase_add_test(t, token_record_round_trip);
    tcase_add_test(t, token_record_rejects_corrupt);
    tcase_add_test(t, token_name_validation);
    tcase_add_test(t, request_credentials);
    suite_add_tcase(s, t);

    t = tcase_create("budget");
    tcase_add_test(t, budget_slows_after_limit_then_resets);
    tcase_add_test(t, budget_is_bounded_under_many_addresses);
    suite_add_tcase(s, t);

    t = tcase_create("paths");
    tcase_add_test(t, percent_decoding);
    tcase_add_test(t, surrogate_key_validation);
    tcase_add_test(t, url_targets);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    SRunner *sr = srunner_create(admin_request_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
