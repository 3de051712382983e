/*
 * tests/fuzz/fuzz_origin_tls_fields.c — Fastly's TLS fields of a backend as the admin API and
 * the config file hand them over (origin_tls_conf_apply_field), the whole-configuration check
 * that parses their PEM with OpenSSL (origin_tls_conf_check), and their JSON form.
 *
 * Input: byte 0 picks the field, byte 1 the JSON type of the value (string, boolean, integer,
 * null), the rest is the string's bytes (NUL bytes included) or, for an integer, its digits.
 * A second field may follow after a 0xff byte, so that a key meets its certificate.
 *
 * Invariants: a refused value changes nothing and says why, naming the field; every string
 * kept is NUL-terminated inside its buffer with no NUL inside the value; the JSON form read
 * back gives the same configuration; the check returns 0 or -1 with a reason.
 */
#include <string.h>
#include "server/origin_tls.h"
#include "tests/fuzz/fuzz.h"

static const char *const fields[] = {"use_ssl",      "ssl_check_cert",  "ssl_cert_hostname", "ssl_sni_hostname",
                                     "ssl_hostname", "min_tls_version", "max_tls_version",   "ssl_ciphers",
                                     "ssl_ca_cert",  "ssl_client_cert", "ssl_client_key"};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static void apply_one(origin_tls_conf_t *c, const uint8_t *p, size_t n)
{
    if (n < 2)
        return;
    const char *key = fields[p[0] % NFIELDS];
    json_t *v;
    switch (p[1] % 4) {
    case 0: v = json_stringn((const char *)p + 2, n - 2); break; /* NULL when not UTF-8 */
    case 1: v = json_boolean(n > 2 && p[2] & 1); break;
    case 2: v = json_integer(n > 2 ? (json_int_t)p[2] - 2 : 0); break;
    default: v = json_null(); break;
    }
    if (v == NULL)
        return;
    static origin_tls_conf_t before;
    char detail[256] = "";
    int rc = 0;
    before = *c;
    FUZZ_CHECK(origin_tls_conf_apply_field(c, key, v, &rc, detail, sizeof(detail)) == 1);
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc != 0) {
        FUZZ_CHECK(memcmp(&before, c, sizeof(before)) == 0);
        FUZZ_CHECK(detail[0] != '\0' && strstr(detail, key) != NULL);
    }
    json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static origin_tls_conf_t c, back; /* ~50 KB each: off the stack */
    origin_tls_conf_defaults(&c);
    const uint8_t *sep = memchr(data, 0xff, size);
    if (sep != NULL) {
        apply_one(&c, data, (size_t)(sep - data));
        apply_one(&c, sep + 1, size - (size_t)(sep - data) - 1);
    } else {
        apply_one(&c, data, size);
    }
    FUZZ_CHECK(strnlen(c.ssl_cert_hostname, sizeof(c.ssl_cert_hostname)) < sizeof(c.ssl_cert_hostname));
    FUZZ_CHECK(strnlen(c.ssl_sni_hostname, sizeof(c.ssl_sni_hostname)) < sizeof(c.ssl_sni_hostname));
    FUZZ_CHECK(strnlen(c.ssl_ciphers, sizeof(c.ssl_ciphers)) < sizeof(c.ssl_ciphers));
    /* the PEM fields are malloc'd (NULL = not set) and bounded */
    FUZZ_CHECK(c.ssl_ca_cert == NULL || strlen(c.ssl_ca_cert) <= ORIGIN_TLS_PEM_MAX);
    FUZZ_CHECK(c.ssl_client_cert == NULL || strlen(c.ssl_client_cert) <= ORIGIN_TLS_PEM_MAX);
    FUZZ_CHECK(c.ssl_client_key == NULL || strlen(c.ssl_client_key) <= ORIGIN_TLS_KEY_MAX);

    /* the JSON form (with the key) read back is the same configuration */
    json_t *o = json_object();
    origin_tls_conf_to_json(&c, o, 1);
    origin_tls_conf_defaults(&back);
    const char *k;
    json_t *v;
    json_object_foreach (o, k, v) {
        int rc = 0;
        char detail[256];
        FUZZ_CHECK(origin_tls_conf_apply_field(&back, k, v, &rc, detail, sizeof(detail)) == 1 && rc == 0);
    }
    json_decref(o);
    FUZZ_CHECK(origin_tls_conf_equal(&c, &back));

    char detail[256] = "";
    int rc = origin_tls_conf_check(&c, detail, sizeof(detail));
    FUZZ_CHECK(rc == 0 || (rc == -1 && detail[0] != '\0'));
    origin_tls_conf_release(&c);
    origin_tls_conf_release(&back);
    return 0;
}
