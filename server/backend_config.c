/*
 * server/backend_config.c — the backend configuration as values: Fastly's fields for
 * backends and health checks, read from JSON or form-encoded admin requests, checked, and
 * written back as JSON; the persisted document (the store's `config` db, key "backends");
 * the seed from --backend (and the config file's backend objects) and the --shield backend.
 * The TLS fields (use_ssl, ssl_*, min/max_tls_version) are read, checked and written by
 * server/origin_tls.c; this file hands them over and applies Fastly's port/use_ssl coupling.
 *
 * What it owns: nothing. Every function here reads and writes the caller's backend_config_t
 * / backend_conf_t and JSON values; the live configuration and the sets built from it are
 * server/backend.c's. All input is untrusted (admin bodies, a document read back from the
 * store): it is validated, never asserted on.
 *
 * Invariants.
 *   - All or nothing: an apply that fails leaves the target unchanged, with a detail that
 *     names the field ("<field>: why"); a detail quotes client bytes only through text_escape.
 *   - Whole buffers are cleared before a string is copied in: configurations are compared
 *     with memcmp (server/backend.c keeps a backend whose configuration did not change), all
 *     but the TLS PEM fields, which are malloc'd and compared by content (backend_conf_equal).
 *   - Ownership: a backend_conf_t owns its PEM strings; copies are made with backend_conf_copy
 *     and dropped with backend_conf_release; a backend_config_t owns those of the entries in
 *     use (num_backends), and is dropped with backend_config_free.
 *   - backend_config_validate is the one check of a whole configuration (unique names,
 *     health check references, ranges): a commit, a stored document and the seed all pass it.
 *
 * Threads. Pure functions over their arguments: the admin thread (API requests, commits)
 * and the main thread (backend_module_init) call them.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <jansson.h>
#include "common/ascii.h"
#include "common/alloc.h"
#include "server/backend.h"
#include "server/backend_int.h"
#include "server/text.h"

#define SHIELD_NAME "shield"

/* ================================================================ configuration: values */

void backend_conf_copy(backend_conf_t *dst, const backend_conf_t *src)
{
    *dst = *src;
    origin_tls_conf_copy(&dst->tls, &src->tls);
}

void backend_conf_release(backend_conf_t *c)
{
    origin_tls_conf_release(&c->tls);
}

int backend_conf_equal(const backend_conf_t *a, const backend_conf_t *b)
{
    return memcmp(a, b, offsetof(backend_conf_t, tls)) == 0 && origin_tls_conf_equal(&a->tls, &b->tls);
}

void backend_conf_defaults(backend_conf_t *c)
{
    memset(c, 0, sizeof(*c));
    c->port = 80;
    c->weight = 100;
    c->connect_timeout = 1000;
    c->first_byte_timeout = 15000;
    c->between_bytes_timeout = 10000;
    c->max_conn = 200;
    origin_tls_conf_defaults(&c->tls);
}

void backend_healthcheck_defaults(backend_healthcheck_conf_t *h)
{
    memset(h, 0, sizeof(*h));
    strcpy(h->path, "/");
    strcpy(h->method, "HEAD");
    h->expected_response = 200;
    h->check_interval = 5000;
    h->timeout = 500;
    h->window = 5;
    h->threshold = 3;
    h->initial = 2;
}

int backend_lb_parse(const char *s, backend_lb_t *out)
{
    if (strcmp(s, "round_robin") == 0)
        *out = BACKEND_LB_ROUND_ROBIN;
    else if (strcmp(s, "hash") == 0)
        *out = BACKEND_LB_HASH;
    else if (strcmp(s, "first") == 0)
        *out = BACKEND_LB_FIRST;
    else
        return BACKEND_EINVAL;
    return 0;
}

const char *backend_lb_name(backend_lb_t lb)
{
    switch (lb) {
    case BACKEND_LB_ROUND_ROBIN: return "round_robin";
    case BACKEND_LB_HASH: return "hash";
    case BACKEND_LB_FIRST: return "first";
    }
    return "round_robin";
}

/* a name: printable ASCII, no '/' (it is a path segment), no spaces at the ends */
static int name_ok(const char *s, size_t len)
{
    if (len == 0 || len > BACKEND_NAME_MAX || s[0] == ' ' || s[len - 1] == ' ')
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '/')
            return 0;
    return 1;
}

/* a host name or numeric address (IPv6 without brackets) */
static int address_ok(const char *s, size_t len)
{
    if (len == 0 || len > BACKEND_HOST_MAX)
        return 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
              c == ':'))
            return 0;
    }
    return 1;
}

/* visible ASCII, no spaces */
static int visible_ascii(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* a value for a Host header: visible ASCII, no spaces */
static int host_header_ok(const char *s, size_t len)
{
    return len <= BACKEND_HOST_MAX && visible_ascii(s, len);
}

/* printable text (spaces allowed) */
static int text_ok(const char *s, size_t len, size_t max)
{
    if (len > max)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* a request path for a probe: starts with '/', visible ASCII, up to BACKEND_PATH_MAX (it was
 * also held to the 255 bytes of a host name, which contradicted the limit the API names) */
static int probe_path_ok(const char *s, size_t len)
{
    return len >= 1 && s[0] == '/' && len <= BACKEND_PATH_MAX && visible_ascii(s, len);
}

/* an HTTP method token */
static int method_ok(const char *s, size_t len)
{
    if (len == 0 || len > 15)
        return 0;
    for (size_t i = 0; i != len; ++i)
        if (!(s[i] >= 'A' && s[i] <= 'Z'))
            return 0;
    return 1;
}

/* an integer field: a JSON integer or a string of decimal digits (form bodies) */
static int get_uint(const json_t *v, const char *field, uint64_t min, uint64_t max, uint64_t *out, char *detail,
                    size_t detail_len)
{
    uint64_t n = 0;
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
            goto bad;
        n = (uint64_t)i;
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 0 || len > 12)
            goto bad;
        for (size_t i = 0; i != len; ++i) {
            if (s[i] < '0' || s[i] > '9')
                goto bad;
            n = n * 10 + (uint64_t)(s[i] - '0');
        }
        if (n < min || n > max)
            goto bad;
    } else {
        goto bad;
    }
    *out = n;
    return 0;
bad:
    errbuf_printf(detail, detail_len, "%s: must be an integer %llu-%llu", field, (unsigned long long)min,
                  (unsigned long long)max);
    return BACKEND_EINVAL;
}

/* a string field; nullable: null (or "") means none. `ok` validates a non-empty value. */
static int get_str(const json_t *v, const char *field, int nullable, int (*ok)(const char *, size_t), const char *what,
                   char *out, size_t cap, char *detail, size_t detail_len)
{
    /* whole buffers are cleared: configurations are compared with memcmp */
    if (json_is_null(v) && nullable) {
        memset(out, 0, cap);
        return 0;
    }
    if (!json_is_string(v)) {
        errbuf_printf(detail, detail_len, "%s: must be a string%s", field, nullable ? " or null" : "");
        return BACKEND_EINVAL;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 0 && nullable) {
        memset(out, 0, cap);
        return 0;
    }
    if (strlen(s) != len || len >= cap || !ok(s, len)) {
        errbuf_printf(detail, detail_len, "%s: must be %s", field, what);
        return BACKEND_EINVAL;
    }
    memset(out, 0, cap);
    memcpy(out, s, len);
    return 0;
}

static int comment_ok(const char *s, size_t len)
{
    return text_ok(s, len, BACKEND_COMMENT_MAX);
}

static int ignored_field(const char *key)
{
    /* read-only fields Fastly echoes; a client may send an object back as it got it */
    return strcmp(key, "service_id") == 0 || strcmp(key, "version") == 0;
}

#define NAME_WHAT "1-128 printable characters without '/'"
#define HOST_WHAT "a host name without spaces (at most 255 characters)"

int backend_conf_apply_json(backend_conf_t *c, const json_t *obj, char *detail, size_t detail_len)
{
    backend_conf_t next;
    const char *key;
    json_t *v;
    uint64_t n;
    int rc, port_given = 0;

    if (!json_is_object(obj)) {
        errbuf_printf(detail, detail_len, "body: must be an object");
        return BACKEND_EINVAL;
    }
    backend_conf_copy(&next, c); /* its own PEM strings: changed there, and *c's freed only on success */
    json_object_foreach ((json_t *)obj, key, v) {
        if (origin_tls_conf_apply_field(&next.tls, key, v, &rc, detail, detail_len)) {
            rc = rc != 0 ? BACKEND_EINVAL : 0;
        } else if (strcmp(key, "name") == 0) {
            rc = get_str(v, key, 0, name_ok, NAME_WHAT, next.name, sizeof(next.name), detail, detail_len);
        } else if (strcmp(key, "address") == 0 || strcmp(key, "hostname") == 0 || strcmp(key, "ipv4") == 0) {
            rc = get_str(v, key, 0, address_ok, "a host name or IP address", next.address, sizeof(next.address), detail,
                         detail_len);
        } else if (strcmp(key, "port") == 0) {
            if ((rc = get_uint(v, key, 1, 65535, &n, detail, detail_len)) == 0)
                next.port = (uint16_t)n;
            port_given = 1;
        } else if (strcmp(key, "weight") == 0) {
            if ((rc = get_uint(v, key, 0, 100000, &n, detail, detail_len)) == 0)
                next.weight = (uint32_t)n;
        } else if (strcmp(key, "connect_timeout") == 0 || strcmp(key, "first_byte_timeout") == 0 ||
                   strcmp(key, "between_bytes_timeout") == 0) {
            if ((rc = get_uint(v, key, 1, 3600000, &n, detail, detail_len)) == 0)
                *(key[0] == 'c'   ? &next.connect_timeout
                  : key[0] == 'f' ? &next.first_byte_timeout
                                  : &next.between_bytes_timeout) = (uint32_t)n;
        } else if (strcmp(key, "max_conn") == 0) {
            if ((rc = get_uint(v, key, 1, 100000, &n, detail, detail_len)) == 0)
                next.max_conn = (uint32_t)n;
        } else if (strcmp(key, "override_host") == 0) {
            rc = get_str(v, key, 1, host_header_ok, HOST_WHAT, next.override_host, sizeof(next.override_host), detail,
                         detail_len);
        } else if (strcmp(key, "healthcheck") == 0) {
            rc = get_str(v, key, 1, name_ok, NAME_WHAT, next.healthcheck, sizeof(next.healthcheck), detail, detail_len);
        } else if (strcmp(key, "shield") == 0) {
            if (json_is_boolean(v)) {
                memset(next.shield, 0, sizeof(next.shield));
                if (json_is_true(v))
                    memcpy(next.shield, SHIELD_NAME, strlen(SHIELD_NAME));
                rc = 0;
            } else {
                rc = get_str(v, key, 1, name_ok, NAME_WHAT " (or true/false/null)", next.shield, sizeof(next.shield), detail,
                             detail_len);
            }
        } else if (strcmp(key, "comment") == 0) {
            rc = get_str(v, key, 1, comment_ok, "printable text of at most 255 characters", next.comment, sizeof(next.comment),
                         detail, detail_len);
        } else if (ignored_field(key)) {
            rc = 0;
        } else {
            char shown[72]; /* a bounded prefix of the untrusted name, cut between characters */
            errbuf_printf(detail, detail_len,
                          "%s: unknown field (known: name, address, port, weight, connect_timeout, first_byte_timeout, "
                          "between_bytes_timeout, max_conn, override_host, healthcheck, shield, comment, use_ssl, "
                          "ssl_check_cert, ssl_cert_hostname, ssl_sni_hostname, ssl_ca_cert, ssl_client_cert, "
                          "ssl_client_key, min_tls_version, max_tls_version, ssl_ciphers)",
                          text_escape(shown, sizeof(shown), key, strlen(key)));
            rc = BACKEND_EINVAL;
        }
        if (rc != 0)
            goto fail;
    }
    /* Fastly's coupling of port and use_ssl: port 443 or 80 alone sets use_ssl, and use_ssl
     * alone moves a default port (80 <-> 443); given together, each is as given */
    int use_ssl_given = json_object_get(obj, "use_ssl") != NULL;
    if (port_given && !use_ssl_given && (next.port == 443 || next.port == 80))
        next.tls.use_ssl = next.port == 443;
    else if (use_ssl_given && !port_given && next.port == (next.tls.use_ssl ? 80 : 443))
        next.port = next.tls.use_ssl ? 443 : 80;
    if (origin_tls_conf_check(&next.tls, detail, detail_len) != 0) {
        rc = BACKEND_EINVAL;
        goto fail;
    }
    backend_conf_release(c);
    *c = next; /* next's PEM strings move to *c */
    return 0;
fail:
    backend_conf_release(&next);
    return rc;
}

int backend_healthcheck_apply_json(backend_healthcheck_conf_t *h, const json_t *obj, char *detail, size_t detail_len)
{
    backend_healthcheck_conf_t next = *h;
    const char *key;
    json_t *v;
    uint64_t n;
    int rc;

    if (!json_is_object(obj)) {
        errbuf_printf(detail, detail_len, "body: must be an object");
        return BACKEND_EINVAL;
    }
    json_object_foreach ((json_t *)obj, key, v) {
        if (strcmp(key, "name") == 0) {
            rc = get_str(v, key, 0, name_ok, NAME_WHAT, next.name, sizeof(next.name), detail, detail_len);
        } else if (strcmp(key, "path") == 0) {
            rc = get_str(v, key, 0, probe_path_ok, "a path starting with '/' without spaces (at most 1024 characters)",
                         next.path, sizeof(next.path), detail, detail_len);
        } else if (strcmp(key, "host") == 0) {
            rc = get_str(v, key, 1, host_header_ok, HOST_WHAT, next.host, sizeof(next.host), detail, detail_len);
        } else if (strcmp(key, "method") == 0) {
            rc = get_str(v, key, 0, method_ok, "an HTTP method in capitals, e.g. HEAD or GET", next.method,
                         sizeof(next.method), detail, detail_len);
        } else if (strcmp(key, "expected_response") == 0) {
            if ((rc = get_uint(v, key, 100, 599, &n, detail, detail_len)) == 0)
                next.expected_response = (uint32_t)n;
        } else if (strcmp(key, "check_interval") == 0) {
            if ((rc = get_uint(v, key, 10, 86400000, &n, detail, detail_len)) == 0)
                next.check_interval = (uint32_t)n;
        } else if (strcmp(key, "timeout") == 0) {
            if ((rc = get_uint(v, key, 1, 3600000, &n, detail, detail_len)) == 0)
                next.timeout = (uint32_t)n;
        } else if (strcmp(key, "window") == 0) {
            if ((rc = get_uint(v, key, 1, BACKEND_WINDOW_MAX, &n, detail, detail_len)) == 0)
                next.window = (uint32_t)n;
        } else if (strcmp(key, "threshold") == 0) {
            if ((rc = get_uint(v, key, 1, BACKEND_WINDOW_MAX, &n, detail, detail_len)) == 0)
                next.threshold = (uint32_t)n;
        } else if (strcmp(key, "initial") == 0) {
            if ((rc = get_uint(v, key, 0, BACKEND_WINDOW_MAX, &n, detail, detail_len)) == 0)
                next.initial = (uint32_t)n;
        } else if (strcmp(key, "comment") == 0) {
            rc = get_str(v, key, 1, comment_ok, "printable text of at most 255 characters", next.comment, sizeof(next.comment),
                         detail, detail_len);
        } else if (ignored_field(key)) {
            rc = 0;
        } else {
            char shown[72];
            errbuf_printf(detail, detail_len,
                          "%s: unknown field (known: name, path, host, method, expected_response, check_interval, timeout, "
                          "window, threshold, initial, comment)",
                          text_escape(shown, sizeof(shown), key, strlen(key)));
            rc = BACKEND_EINVAL;
        }
        if (rc != 0)
            return rc;
    }
    if (next.threshold > next.window) {
        errbuf_printf(detail, detail_len, "threshold: must not exceed window (%u)", next.window);
        return BACKEND_EINVAL;
    }
    if (next.initial > next.window) {
        errbuf_printf(detail, detail_len, "initial: must not exceed window (%u)", next.window);
        return BACKEND_EINVAL;
    }
    *h = next;
    return 0;
}

int backend_conf_check_object(const json_t *obj, char *host, size_t cap, uint16_t *port, char *detail, size_t detail_len)
{
    backend_conf_t *c = alloc_xcalloc(1, sizeof(*c), "backend");
    backend_conf_defaults(c);
    int rc = backend_conf_apply_json(c, obj, detail, detail_len);
    if (rc == 0 && c->address[0] == '\0') {
        errbuf_printf(detail, detail_len, "address: required");
        rc = BACKEND_EINVAL;
    }
    if (rc == 0) {
        snprintf(host, cap, "%s", c->address);
        *port = c->port;
    }
    backend_conf_release(c);
    free(c);
    return rc;
}

static json_t *str_or_null(const char *s)
{
    return s[0] != '\0' ? json_string(s) : json_null();
}

static json_t *conf_to_json(const backend_conf_t *c, int with_key)
{
    json_t *o = json_object();
    if (o == NULL)
        alloc_die("backend", 0);
    json_object_set_new(o, "name", json_string(c->name));
    json_object_set_new(o, "address", json_string(c->address));
    json_object_set_new(o, "port", json_integer(c->port));
    json_object_set_new(o, "weight", json_integer(c->weight));
    json_object_set_new(o, "connect_timeout", json_integer(c->connect_timeout));
    json_object_set_new(o, "first_byte_timeout", json_integer(c->first_byte_timeout));
    json_object_set_new(o, "between_bytes_timeout", json_integer(c->between_bytes_timeout));
    json_object_set_new(o, "max_conn", json_integer(c->max_conn));
    json_object_set_new(o, "override_host", str_or_null(c->override_host));
    json_object_set_new(o, "healthcheck", str_or_null(c->healthcheck));
    json_object_set_new(o, "shield", str_or_null(c->shield));
    json_object_set_new(o, "comment", json_string(c->comment));
    origin_tls_conf_to_json(&c->tls, o, with_key);
    return o;
}

json_t *backend_conf_to_json(const backend_conf_t *c)
{
    return conf_to_json(c, 0);
}

json_t *backend_healthcheck_to_json(const backend_healthcheck_conf_t *h)
{
    json_t *o = json_object();
    if (o == NULL)
        alloc_die("backend", 0);
    json_object_set_new(o, "name", json_string(h->name));
    json_object_set_new(o, "path", json_string(h->path));
    json_object_set_new(o, "host", str_or_null(h->host));
    json_object_set_new(o, "method", json_string(h->method));
    json_object_set_new(o, "expected_response", json_integer(h->expected_response));
    json_object_set_new(o, "check_interval", json_integer(h->check_interval));
    json_object_set_new(o, "timeout", json_integer(h->timeout));
    json_object_set_new(o, "window", json_integer(h->window));
    json_object_set_new(o, "threshold", json_integer(h->threshold));
    json_object_set_new(o, "initial", json_integer(h->initial));
    json_object_set_new(o, "comment", json_string(h->comment));
    return o;
}

/* decode one form component ('+' is a space); returns the length or -1 */
static ssize_t form_decode(const char *s, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i != len; ++i) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= len)
                return -1;
            if ((hi = ascii_hexval(s[i + 1])) < 0 || (lo = ascii_hexval(s[i + 2])) < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return -1;
        out[n++] = c;
    }
    out[n] = '\0';
    return (ssize_t)n;
}

int backend_form_to_json(const char *body, size_t len, json_t **out, char *detail, size_t detail_len)
{
    json_t *o = json_object();
    char *buf = malloc(len + 1), *val = malloc(len + 1);
    const char *p = body, *end = body + len;
    int rc = BACKEND_EINVAL;

    if (o == NULL || buf == NULL || val == NULL)
        alloc_die("backend", 0);
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *field_end = amp != NULL ? amp : end;
        if (field_end == p) { /* "a=1&&b=2" */
            p = field_end + 1;
            continue;
        }
        /* every byte here is the client's: what a detail quotes goes through text_escape
         * (jansson refuses text that is not UTF-8, and the detail becomes JSON) */
        char shown[72];
        const char *eq = memchr(p, '=', (size_t)(field_end - p));
        if (eq == NULL || eq == p) {
            errbuf_printf(detail, detail_len, "body: malformed form field '%s'",
                          text_escape(shown, sizeof(shown), p, (size_t)(field_end - p)));
            goto done;
        }
        ssize_t kn = form_decode(p, (size_t)(eq - p), buf);
        ssize_t vn = kn < 0 ? -1 : form_decode(eq + 1, (size_t)(field_end - eq - 1), val);
        if (kn <= 0 || vn < 0) {
            errbuf_printf(detail, detail_len, "body: malformed escape in form field '%s'",
                          text_escape(shown, sizeof(shown), p, (size_t)(eq - p)));
            goto done;
        }
        text_escape(shown, sizeof(shown), buf, (size_t)kn);
        if (!text_utf8_valid(buf, (size_t)kn)) { /* a JSON object cannot hold the name */
            errbuf_printf(detail, detail_len, "%s: field name not valid UTF-8", shown);
            goto done;
        }
        if (json_object_get(o, buf) != NULL) {
            errbuf_printf(detail, detail_len, "%s: given twice", shown);
            goto done;
        }
        json_t *s = json_stringn(val, (size_t)vn);
        if (s == NULL) {
            errbuf_printf(detail, detail_len, "%s: not valid UTF-8", shown);
            goto done;
        }
        if (json_object_set_new(o, buf, s) != 0) {
            errbuf_printf(detail, detail_len, "%s: could not be read", shown);
            goto done;
        }
        p = field_end + (amp != NULL ? 1 : 0);
    }
    rc = 0;
done:
    free(buf);
    free(val);
    if (rc != 0)
        json_decref(o);
    else
        *out = o;
    return rc;
}

/* ================================================================ configuration: documents */

/*
 * A backend_config_t has room for BACKEND_MAX entries; a configuration uses a few. Clearing
 * or copying all of it wrote every page (~2.8 MiB when the PEM fields were inline, ~230 KB
 * now), anonymous memory for the process's life: only the entries in use are.
 */
void backend_config_clear(backend_config_t *c)
{
    for (size_t i = 0; i != c->num_backends; ++i)
        backend_conf_release(&c->backends[i]);
    c->load_balancing = BACKEND_LB_ROUND_ROBIN;
    c->load_balancing_stored = 0;
    c->num_backends = 0;
    c->num_healthchecks = 0;
}

void backend_config_copy(backend_config_t *dst, const backend_config_t *src)
{
    backend_config_clear(dst);
    dst->load_balancing = src->load_balancing;
    dst->load_balancing_stored = src->load_balancing_stored;
    dst->num_backends = src->num_backends;
    for (size_t i = 0; i != src->num_backends; ++i)
        backend_conf_copy(&dst->backends[i], &src->backends[i]);
    dst->num_healthchecks = src->num_healthchecks;
    memcpy(dst->healthchecks, src->healthchecks, src->num_healthchecks * sizeof(src->healthchecks[0]));
}

void backend_config_free(backend_config_t *c)
{
    if (c == NULL)
        return;
    backend_config_clear(c);
    free(c);
}

const backend_healthcheck_conf_t *backend_config_find_healthcheck(const backend_config_t *c, const char *name)
{
    for (size_t i = 0; i != c->num_healthchecks; ++i)
        if (strcmp(c->healthchecks[i].name, name) == 0)
            return &c->healthchecks[i];
    return NULL;
}

int backend_config_validate(const backend_config_t *c, char *detail, size_t detail_len)
{
    if (c->num_backends > BACKEND_MAX || c->num_healthchecks > BACKEND_MAX_HEALTHCHECKS) {
        errbuf_printf(detail, detail_len, "name: too many objects");
        return BACKEND_EINVAL;
    }
    for (size_t i = 0; i != c->num_healthchecks; ++i) {
        const backend_healthcheck_conf_t *h = &c->healthchecks[i];
        if (!name_ok(h->name, strlen(h->name))) {
            errbuf_printf(detail, detail_len, "name: required (" NAME_WHAT ")");
            return BACKEND_EINVAL;
        }
        for (size_t j = 0; j != i; ++j)
            if (strcmp(c->healthchecks[j].name, h->name) == 0) {
                errbuf_printf(detail, detail_len, "name: a health check named '%s' already exists", h->name);
                return BACKEND_EINVAL;
            }
        if (h->window < 1 || h->window > BACKEND_WINDOW_MAX || h->threshold < 1 || h->threshold > h->window ||
            h->initial > h->window || h->check_interval < 10 || h->timeout < 1 || !method_ok(h->method, strlen(h->method)) ||
            !probe_path_ok(h->path, strlen(h->path))) {
            errbuf_printf(detail, detail_len,
                          "healthcheck '%s': inconsistent values (window, threshold, initial, path, method)", h->name);
            return BACKEND_EINVAL;
        }
    }
    for (size_t i = 0; i != c->num_backends; ++i) {
        const backend_conf_t *b = &c->backends[i];
        if (!name_ok(b->name, strlen(b->name))) {
            errbuf_printf(detail, detail_len, "name: required (" NAME_WHAT ")");
            return BACKEND_EINVAL;
        }
        if (!address_ok(b->address, strlen(b->address))) {
            errbuf_printf(detail, detail_len, "address: required (a host name or IP address)");
            return BACKEND_EINVAL;
        }
        if (b->port == 0) {
            errbuf_printf(detail, detail_len, "port: must be an integer 1-65535");
            return BACKEND_EINVAL;
        }
        if (b->connect_timeout == 0 || b->first_byte_timeout == 0 || b->between_bytes_timeout == 0 || b->max_conn == 0) {
            errbuf_printf(detail, detail_len, "backend '%s': timeouts and max_conn must be positive", b->name);
            return BACKEND_EINVAL;
        }
        for (size_t j = 0; j != i; ++j)
            if (strcmp(c->backends[j].name, b->name) == 0) {
                errbuf_printf(detail, detail_len, "name: a backend named '%s' already exists", b->name);
                return BACKEND_EINVAL;
            }
        if (b->healthcheck[0] != '\0' && backend_config_find_healthcheck(c, b->healthcheck) == NULL) {
            errbuf_printf(detail, detail_len, "healthcheck: no health check named '%s'", b->healthcheck);
            return BACKEND_EINVAL;
        }
    }
    return 0;
}

json_t *backend_config_to_json(const backend_config_t *c)
{
    json_t *doc = json_object(), *bs = json_array(), *hs = json_array();
    if (doc == NULL || bs == NULL || hs == NULL)
        alloc_die("backend", 0);
    json_object_set_new(doc, "format", json_integer(1));
    if (c->load_balancing_stored)
        json_object_set_new(doc, "load_balancing", json_string(backend_lb_name(c->load_balancing)));
    for (size_t i = 0; i != c->num_backends; ++i)
        json_array_append_new(bs, conf_to_json(&c->backends[i], 1)); /* the store keeps the client key */
    for (size_t i = 0; i != c->num_healthchecks; ++i)
        json_array_append_new(hs, backend_healthcheck_to_json(&c->healthchecks[i]));
    json_object_set_new(doc, "backends", bs);
    json_object_set_new(doc, "healthchecks", hs);
    return doc;
}

int backend_config_from_json(backend_config_t *c, const json_t *doc, char *detail, size_t detail_len)
{
    json_t *bs, *hs, *lb, *fmt, *item;
    size_t i;
    char sub[256];

    backend_config_clear(c);
    if (!json_is_object(doc) || (fmt = json_object_get(doc, "format")) == NULL || !json_is_integer(fmt) ||
        json_integer_value(fmt) != 1) {
        errbuf_printf(detail, detail_len, "not a format-1 backend document");
        return BACKEND_EINVAL;
    }
    bs = json_object_get(doc, "backends");
    hs = json_object_get(doc, "healthchecks");
    if (!json_is_array(bs) || !json_is_array(hs) || json_array_size(bs) > BACKEND_MAX ||
        json_array_size(hs) > BACKEND_MAX_HEALTHCHECKS) {
        errbuf_printf(detail, detail_len, "backends/healthchecks: must be arrays of at most %d", BACKEND_MAX);
        return BACKEND_EINVAL;
    }
    if ((lb = json_object_get(doc, "load_balancing")) != NULL) {
        if (!json_is_string(lb) || backend_lb_parse(json_string_value(lb), &c->load_balancing) != 0) {
            errbuf_printf(detail, detail_len, "load_balancing: unknown mode");
            return BACKEND_EINVAL;
        }
        c->load_balancing_stored = 1;
    }
    json_array_foreach (hs, i, item) {
        backend_healthcheck_conf_t *h = &c->healthchecks[c->num_healthchecks++];
        backend_healthcheck_defaults(h);
        if (backend_healthcheck_apply_json(h, item, sub, sizeof(sub)) != 0) {
            errbuf_printf(detail, detail_len, "healthchecks[%zu]: %s", i, sub);
            return BACKEND_EINVAL;
        }
    }
    json_array_foreach (bs, i, item) {
        backend_conf_t *b = &c->backends[c->num_backends++];
        backend_conf_defaults(b);
        if (backend_conf_apply_json(b, item, sub, sizeof(sub)) != 0) {
            errbuf_printf(detail, detail_len, "backends[%zu]: %s", i, sub);
            return BACKEND_EINVAL;
        }
        if (json_object_get(item, "use_ssl") == NULL) /* stored before TLS: port 443 there was cleartext */
            b->tls.use_ssl = 0;
    }
    return backend_config_validate(c, detail, detail_len);
}

void backend_config_seed(backend_config_t *c, const config_t *cfg)
{
    json_t *objects = cfg->backends_json != NULL ? json_loads(cfg->backends_json, 0, NULL) : NULL;
    backend_config_clear(c);
    c->load_balancing = (backend_lb_t)cfg->load_balancing;
    for (size_t i = 0; i != cfg->num_backends && i != BACKEND_MAX; ++i) {
        backend_conf_t *b = &c->backends[c->num_backends++];
        backend_conf_defaults(b);
        snprintf(b->name, sizeof(b->name), "backend%zu", i + 1);
        snprintf(b->address, sizeof(b->address), "%s", cfg->backends[i].host);
        b->port = cfg->backends[i].port;
        /* --origin-timeout (before per-backend timeouts existed) bounds the seeded ones */
        b->first_byte_timeout = cfg->origin_timeout_ms;
        if (cfg->origin_timeout_ms < b->between_bytes_timeout || cfg->origin_timeout_ms != 15000)
            b->between_bytes_timeout = cfg->origin_timeout_ms;
        if (cfg->origin_timeout_ms < b->connect_timeout)
            b->connect_timeout = cfg->origin_timeout_ms;
        /* an object of the config file: its fields over those (checked when the file was read) */
        const json_t *o = json_array_get(objects, i);
        char detail[300];
        if (json_is_object(o) && backend_conf_apply_json(b, o, detail, sizeof(detail)) != 0)
            fprintf(stderr, "edgecache: backends[%zu]: %s\n", i, detail); /* cannot happen: config_load_file checked it */
    }
    json_decref(objects);
}

static int shield_tls_equal(const origin_tls_conf_t *t, const char *ca)
{
    return t->use_ssl && t->ssl_check_cert && strcmp(t->ssl_ca_cert != NULL ? t->ssl_ca_cert : "", ca) == 0;
}

int backend_config_force_shield(backend_config_t *c, const config_addr_t *shield, const char *tls_ca)
{
    backend_conf_t *b = NULL;
    for (size_t i = 0; i != c->num_backends; ++i)
        if (strcmp(c->backends[i].name, SHIELD_NAME) == 0)
            b = &c->backends[i];
    if (b == NULL) {
        if (c->num_backends == BACKEND_MAX)
            return -1;
        b = &c->backends[c->num_backends++];
        backend_conf_defaults(b);
        snprintf(b->name, sizeof(b->name), "%s", SHIELD_NAME);
    } else if (strcmp(b->address, shield->host) == 0 && b->port == shield->port && b->shield[0] != '\0' &&
               (tls_ca == NULL || shield_tls_equal(&b->tls, tls_ca))) {
        return 0;
    }
    memset(b->address, 0, sizeof(b->address));
    snprintf(b->address, sizeof(b->address), "%s", shield->host);
    b->port = shield->port;
    if (b->shield[0] == '\0')
        snprintf(b->shield, sizeof(b->shield), "%s", SHIELD_NAME);
    if (tls_ca != NULL) { /* --shield-tls: TLS, checked, with that CA ("" = the system's store) */
        b->tls.use_ssl = 1;
        b->tls.ssl_check_cert = 1;
        origin_tls_conf_set_pem(&b->tls.ssl_ca_cert, tls_ca, strlen(tls_ca));
    }
    return 1;
}
