/*
 * tests/unit/test_origin_tls.c — the TLS fields of a backend (server/origin_tls.c through
 * backend_conf_apply_json): defaults, booleans and versions in JSON and form shapes, Fastly's
 * port/use_ssl coupling, PEM that does not parse, a key that does not match its certificate,
 * an encrypted key, cipher lists OpenSSL refuses, the client key never shown, and a context
 * built for a name. Keys and certificates are made here with OpenSSL's API, fresh per run.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include "server/backend.h"
#include "server/backend_int.h"
#include "server/origin_tls.h"

/* ---------------------------------------------------------------- helpers */

static json_t *js(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    ck_assert_msg(v != NULL, "bad test JSON: %s", text);
    return v;
}

static EVP_PKEY *new_key(void)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    ck_assert_ptr_nonnull(k);
    return k;
}

/* a self-signed certificate for key, as PEM (malloc'd) */
static char *cert_pem(EVP_PKEY *key, const char *cn)
{
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, n);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)len);
    BIO_free(b);
    X509_free(x);
    return out;
}

static char *key_pem(EVP_PKEY *key, int encrypted)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (encrypted)
        PEM_write_bio_PrivateKey(b, key, EVP_aes_128_cbc(), (unsigned char *)"secret", 6, NULL, NULL);
    else
        PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    char *data;
    long len = BIO_get_mem_data(b, &data);
    char *out = strndup(data, (size_t)len);
    BIO_free(b);
    return out;
}

/* apply {"field": value} (value: a JSON text) to *c; returns the result, detail in d */
static int apply1(backend_conf_t *c, const char *field, json_t *value, char *d, size_t dl)
{
    json_t *o = json_object();
    json_object_set_new(o, field, value);
    int rc = backend_conf_apply_json(c, o, d, dl);
    json_decref(o);
    return rc;
}

static backend_conf_t *fresh(void)
{
    backend_conf_t *c = calloc(1, sizeof(*c));
    backend_conf_defaults(c);
    strcpy(c->name, "b");
    strcpy(c->address, "127.0.0.1");
    return c;
}

/* ---------------------------------------------------------------- tests */

START_TEST(defaults_and_shown_fields)
{
    backend_conf_t *c = fresh();
    ck_assert_int_eq(c->tls.use_ssl, 0);
    ck_assert_int_eq(c->tls.ssl_check_cert, 1);
    json_t *o = backend_conf_to_json(c);
    ck_assert(json_is_false(json_object_get(o, "use_ssl")));
    ck_assert(json_is_true(json_object_get(o, "ssl_check_cert")));
    const char *nulls[] = {"ssl_cert_hostname", "ssl_sni_hostname", "ssl_ca_cert",     "ssl_client_cert",
                           "ssl_client_key",    "min_tls_version",  "max_tls_version", "ssl_ciphers"};
    for (size_t i = 0; i != sizeof(nulls) / sizeof(nulls[0]); ++i)
        ck_assert_msg(json_is_null(json_object_get(o, nulls[i])), "%s", nulls[i]);
    json_decref(o);
    free(c);
}
END_TEST

START_TEST(booleans_versions_names)
{
    char d[300];
    backend_conf_t *c = fresh();
    /* JSON booleans, form strings, 0/1 */
    ck_assert_int_eq(apply1(c, "ssl_check_cert", json_string("false"), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.ssl_check_cert, 0);
    ck_assert_int_eq(apply1(c, "ssl_check_cert", json_integer(1), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.ssl_check_cert, 1);
    ck_assert_int_eq(apply1(c, "ssl_check_cert", json_string("yes"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_str_eq(d, "ssl_check_cert: must be true or false");
    ck_assert_int_eq(apply1(c, "use_ssl", json_integer(2), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_int_eq(c->tls.use_ssl, 0);
    /* versions: Fastly's strings */
    ck_assert_int_eq(apply1(c, "min_tls_version", json_string("1.3"), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.min_tls_version, ORIGIN_TLS_V13);
    ck_assert_int_eq(apply1(c, "max_tls_version", json_string("1.2"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_str_eq(d, "min_tls_version: must not be above max_tls_version");
    ck_assert_int_eq(c->tls.max_tls_version, 0); /* all or nothing */
    ck_assert_int_eq(apply1(c, "min_tls_version", json_string("1.1"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "min_tls_version: TLS 1.1 is not supported", 41) == 0);
    ck_assert_int_eq(apply1(c, "max_tls_version", json_real(1.3), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_int_eq(apply1(c, "min_tls_version", json_null(), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.min_tls_version, 0);
    /* names */
    ck_assert_int_eq(apply1(c, "ssl_cert_hostname", json_string("origin.example"), d, sizeof(d)), 0);
    ck_assert_str_eq(c->tls.ssl_cert_hostname, "origin.example");
    ck_assert_int_eq(apply1(c, "ssl_sni_hostname", json_string("a b"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_sni_hostname: ", 18) == 0);
    ck_assert_int_eq(apply1(c, "ssl_hostname", json_string("both.example"), d, sizeof(d)), 0);
    ck_assert_str_eq(c->tls.ssl_cert_hostname, "both.example");
    ck_assert_str_eq(c->tls.ssl_sni_hostname, "both.example");
    ck_assert_int_eq(apply1(c, "ssl_hostname", json_null(), d, sizeof(d)), 0); /* as Fastly echoes it: no change */
    ck_assert_str_eq(c->tls.ssl_sni_hostname, "both.example");
    ck_assert_int_eq(apply1(c, "ssl_cert_hostname", json_string(""), d, sizeof(d)), 0);
    ck_assert_str_eq(c->tls.ssl_cert_hostname, "");
    /* ciphers OpenSSL refuses */
    ck_assert_int_eq(apply1(c, "ssl_ciphers", json_string("NOT-A-CIPHER"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_ciphers: ", 13) == 0);
    ck_assert_int_eq(apply1(c, "ssl_ciphers", json_string("ECDHE+AESGCM:!aNULL"), d, sizeof(d)), 0);
    free(c);
}
END_TEST

START_TEST(port_and_use_ssl_coupling)
{
    char d[300];
    backend_conf_t *c = fresh();
    ck_assert_int_eq(apply1(c, "use_ssl", json_true(), d, sizeof(d)), 0);
    ck_assert_int_eq(c->port, 443); /* default port follows use_ssl */
    ck_assert_int_eq(apply1(c, "use_ssl", json_false(), d, sizeof(d)), 0);
    ck_assert_int_eq(c->port, 80);
    ck_assert_int_eq(apply1(c, "port", json_integer(443), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.use_ssl, 1); /* port 443 alone sets use_ssl */
    ck_assert_int_eq(apply1(c, "port", json_integer(8443), d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.use_ssl, 1); /* other ports leave it */
    json_t *o = js("{\"port\": 443, \"use_ssl\": false}");
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), 0); /* both given: as given */
    ck_assert_int_eq(c->port, 443);
    ck_assert_int_eq(c->tls.use_ssl, 0);
    json_decref(o);
    o = js("{\"port\": 8443, \"use_ssl\": true}");
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), 0);
    ck_assert_int_eq(c->port, 8443);
    json_decref(o);
    free(c);
}
END_TEST

/* the PEM fields are malloc'd and owned by their backend_conf_t: a copy is its own, and
 * configurations compare by content (a backend whose settings did not change is kept) */
START_TEST(pem_fields_copy_compare_release)
{
    char d[300];
    backend_conf_t *c = fresh(), *copy = calloc(1, sizeof(*copy)), *other = fresh();
    EVP_PKEY *k1 = new_key(), *k2 = new_key();
    char *cert1 = cert_pem(k1, "ca1"), *cert2 = cert_pem(k2, "ca2");

    ck_assert_ptr_null(c->tls.ssl_ca_cert);
    ck_assert_int_eq(apply1(c, "ssl_ca_cert", json_string(cert1), d, sizeof(d)), 0);
    ck_assert_int_eq(apply1(other, "ssl_ca_cert", json_string(cert1), d, sizeof(d)), 0);
    ck_assert_ptr_ne(c->tls.ssl_ca_cert, other->tls.ssl_ca_cert);
    ck_assert(backend_conf_equal(c, other)); /* the same text in two places */
    backend_conf_copy(copy, c);
    ck_assert_ptr_ne(copy->tls.ssl_ca_cert, c->tls.ssl_ca_cert);
    ck_assert(backend_conf_equal(copy, c));
    ck_assert_int_eq(apply1(other, "ssl_ca_cert", json_string(cert2), d, sizeof(d)), 0);
    ck_assert(!backend_conf_equal(c, other)); /* another certificate */
    ck_assert_int_eq(apply1(other, "ssl_ca_cert", json_null(), d, sizeof(d)), 0);
    ck_assert_ptr_null(other->tls.ssl_ca_cert);
    ck_assert(!backend_conf_equal(c, other)); /* none against one */
    /* an apply that fails leaves the field as it was (and frees what it made) */
    ck_assert_int_eq(apply1(c, "ssl_ca_cert", json_string("not pem"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_str_eq(c->tls.ssl_ca_cert, cert1);
    /* released, the original leaves the copy whole (ASan: no use after free, no leak) */
    backend_conf_release(c);
    ck_assert_ptr_null(c->tls.ssl_ca_cert);
    ck_assert_str_eq(copy->tls.ssl_ca_cert, cert1);
    backend_conf_release(copy);
    backend_conf_release(other);
    free(c);
    free(copy);
    free(other);
    free(cert1);
    free(cert2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}
END_TEST

START_TEST(pem_fields)
{
    char d[300];
    backend_conf_t *c = fresh();
    EVP_PKEY *k1 = new_key(), *k2 = new_key();
    char *cert1 = cert_pem(k1, "client"), *key1 = key_pem(k1, 0), *key2 = key_pem(k2, 0), *enc1 = key_pem(k1, 1);

    ck_assert_int_eq(apply1(c, "ssl_ca_cert", json_string("hello"), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_ca_cert: must be PEM", 24) == 0);
    ck_assert_int_eq(
        apply1(c, "ssl_ca_cert", json_string("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), d, sizeof(d)),
        BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_ca_cert: not PEM certificates", 33) == 0);
    ck_assert_int_eq(apply1(c, "ssl_ca_cert", json_string(cert1), d, sizeof(d)), 0);
    ck_assert_str_eq(c->tls.ssl_ca_cert, cert1);

    /* a certificate without its key, a key that is not its own, an encrypted key */
    ck_assert_int_eq(apply1(c, "ssl_client_cert", json_string(cert1), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_str_eq(d, "ssl_client_key: required with ssl_client_cert");
    json_t *o = json_pack("{s:s, s:s}", "ssl_client_cert", cert1, "ssl_client_key", key2);
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), BACKEND_EINVAL);
    ck_assert_str_eq(d, "ssl_client_key: does not match ssl_client_cert");
    json_decref(o);
    o = json_pack("{s:s, s:s}", "ssl_client_cert", cert1, "ssl_client_key", enc1);
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_client_key: not an unencrypted PEM private key", 50) == 0);
    json_decref(o);
    ck_assert_ptr_null(c->tls.ssl_client_cert); /* all or nothing: not half applied */
    o = json_pack("{s:s, s:s}", "ssl_client_cert", cert1, "ssl_client_key", key1);
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), 0);
    json_decref(o);

    /* shown redacted; the redacted value sent back keeps the key; the store's document has it */
    o = backend_conf_to_json(c);
    ck_assert_str_eq(json_string_value(json_object_get(o, "ssl_client_key")), ORIGIN_TLS_KEY_REDACTED);
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), 0);
    ck_assert_str_eq(c->tls.ssl_client_key, key1);
    json_decref(o);
    backend_config_t *cfg = calloc(1, sizeof(*cfg));
    backend_conf_copy(&cfg->backends[0], c);
    cfg->num_backends = 1;
    o = backend_config_to_json(cfg);
    char *text = json_dumps(o, 0);
    ck_assert_ptr_nonnull(strstr(text, "PRIVATE KEY"));
    free(text);
    json_decref(o);
    backend_config_free(cfg);
    /* with no key set, the redacted value is an error */
    ck_assert_int_eq(apply1(c, "ssl_client_key", json_null(), d, sizeof(d)), BACKEND_EINVAL); /* cert left alone */
    backend_conf_t *e = fresh();
    ck_assert_int_eq(apply1(e, "ssl_client_key", json_string(ORIGIN_TLS_KEY_REDACTED), d, sizeof(d)), BACKEND_EINVAL);
    ck_assert(strncmp(d, "ssl_client_key: no key is set", 29) == 0);

    /* a context for a name and for an IP address */
    origin_tls_t *t = NULL;
    c->tls.use_ssl = 1;
    ck_assert_int_eq(origin_tls_new(&c->tls, "b", "127.0.0.1:443", "origin.example", &t, d, sizeof(d)), 0);
    origin_tls_t *t2 = origin_tls_ref(t);
    origin_tls_unref(&t);
    ck_assert_ptr_null(t);
    origin_tls_unref(&t2);
    ck_assert_int_eq(origin_tls_new(&c->tls, "b", "127.0.0.1:443", "::1", &t, d, sizeof(d)), 0);
    origin_tls_unref(&t);
    /* no name at all (an override_host of "[]"): refused, never a context that checks no name */
    ck_assert_int_eq(origin_tls_new(&c->tls, "b", "127.0.0.1:443", "", &t, d, sizeof(d)), -1);
    ck_assert_ptr_null(t);
    ck_assert(strncmp(d, "ssl_cert_hostname: required", 27) == 0);

    free(e);
    backend_conf_release(c);
    free(c);
    free(cert1);
    free(key1);
    free(key2);
    free(enc1);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
}
END_TEST

START_TEST(form_body_fields)
{
    char d[300];
    backend_conf_t *c = fresh();
    json_t *o = NULL;
    const char *body = "use_ssl=1&ssl_check_cert=false&min_tls_version=1.2&ssl_sni_hostname=sni.example";
    ck_assert_int_eq(backend_form_to_json(body, strlen(body), &o, d, sizeof(d)), 0);
    ck_assert_int_eq(backend_conf_apply_json(c, o, d, sizeof(d)), 0);
    ck_assert_int_eq(c->tls.use_ssl, 1);
    ck_assert_int_eq(c->port, 443);
    ck_assert_int_eq(c->tls.ssl_check_cert, 0);
    ck_assert_int_eq(c->tls.min_tls_version, ORIGIN_TLS_V12);
    ck_assert_str_eq(c->tls.ssl_sni_hostname, "sni.example");
    json_decref(o);
    free(c);
}
END_TEST

static Suite *origin_tls_suite(void)
{
    Suite *s = suite_create("origin_tls");
    TCase *tc = tcase_create("fields");
    tcase_add_test(tc, defaults_and_shown_fields);
    tcase_add_test(tc, booleans_versions_names);
    tcase_add_test(tc, port_and_use_ssl_coupling);
    tcase_add_test(tc, pem_fields);
    tcase_add_test(tc, pem_fields_copy_compare_release);
    tcase_add_test(tc, form_body_fields);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(origin_tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
