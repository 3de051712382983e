/*
 * server/config_file.c — the JSON config file: every key of the option table
 * (server/config.c) by its file name, plus the caching semantics that have no flag
 * (cookie policy, cache-key rules, header rules...).
 *
 * Values go through the same validators as the flags (config_apply_value); a key of the
 * wrong JSON type, an unknown key or a bad value is one line naming the key. Runs once, on
 * the main thread, before any worker exists.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/errbuf.h"
#include "server/backend.h"
#include "server/config_int.h"
#include "server/header_rules.h"

/* ---------------------------------------------------------------- the JSON file */

static const char *json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number with a fraction";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "something else";
}

/* what each key wants, for the wrong-type message */
static const char *json_expected(opt_id_t id)
{
    switch (id) {
    case OPT_BACKEND: return "an array of \"HOST:PORT\" strings or backend objects";
    case OPT_TLS_CERT: return "an array of \"HOST=CERT,KEY\" strings or {\"host\", \"cert\", \"key\"} objects";
    case OPT_MEMORY_SIZE:
    case OPT_DISK_SIZE:
    case OPT_DISK_PUT_BACKLOG:
    case OPT_MAX_REQUEST_BODY:
    case OPT_REQUEST_BODY_MEMORY: return "a number of bytes or a size string like \"256M\"";
    case OPT_THREADS:
    case OPT_ADMIN_THREADS:
    case OPT_ACCEPT_SPREAD:
    case OPT_DEFAULT_TTL:
    case OPT_DEFAULT_GRACE:
    case OPT_MAX_HEURISTIC_TTL:
    case OPT_NEGATIVE_TTL:
    case OPT_ORIGIN_TIMEOUT:
    case OPT_SHUTDOWN_TIMEOUT:
    case OPT_STATS_SAMPLE_INTERVAL:
    case OPT_STATS_RETENTION_DAYS:
    case OPT_STATS_MINUTE_SECONDS: return "an integer";
    case OPT_SLA_DEGRADED_PERCENT: return "a number";
    default: return "a string";
    }
}

/* a tls_certs element {"host": ..., "cert": ..., "key": ...} as the flag's text, or NULL */
static const char *tls_cert_object_text(json_t *obj, char *buf, size_t cap)
{
    json_t *host = json_object_get(obj, "host"), *cert = json_object_get(obj, "cert"), *key = json_object_get(obj, "key");
    if (json_object_size(obj) != 3 || !json_is_string(host) || !json_is_string(cert) || !json_is_string(key))
        return NULL;
    int n = snprintf(buf, cap, "%s=%s,%s", json_string_value(host), json_string_value(cert), json_string_value(key));
    return n > 0 && (size_t)n < cap ? buf : NULL;
}

/* the caching-semantics keys: 1 handled, 0 not one of them, -1 error (message in err) */
static int load_semantics_key(config_t *cfg, const char *path, const char *key, json_t *val, char *err, size_t errlen)
{
    if (strcmp(key, "cookie_policy") == 0) {
        const char *v = json_is_string(val) ? json_string_value(val) : NULL;
        if (v == NULL || (strcmp(v, "pass") != 0 && strcmp(v, "strip") != 0)) {
            errbuf_printf(err, errlen, "%s: key 'cookie_policy': expected \"pass\" or \"strip\"", path);
            return -1;
        }
        cfg->cookie_policy_strip = strcmp(v, "strip") == 0;
        return 1;
    }
    if (strcmp(key, "obey_client_no_cache") == 0 || strcmp(key, "keep_surrogate_headers") == 0) {
        if (!json_is_boolean(val)) {
            errbuf_printf(err, errlen, "%s: key '%s': expected true or false, got %s", path, key, json_type_name(val));
            return -1;
        }
        *(strcmp(key, "obey_client_no_cache") == 0 ? &cfg->obey_client_no_cache
                                                   : &cfg->keep_surrogate_headers) = json_is_true(val);
        return 1;
    }
    if (strcmp(key, "cache_key") == 0) {
        const char *k;
        json_t *v;
        if (!json_is_object(val)) {
            errbuf_printf(err, errlen, "%s: key 'cache_key': expected an object, got %s", path, json_type_name(val));
            return -1;
        }
        json_object_foreach (val, k, v) {
            if (strcmp(k, "include_scheme") == 0) {
                if (!json_is_boolean(v)) {
                    errbuf_printf(err, errlen, "%s: key 'cache_key.include_scheme': expected true or false, got %s", path,
                                  json_type_name(v));
                    return -1;
                }
                cfg->cache_key_include_scheme = json_is_true(v);
            } else if (strcmp(k, "include_host") == 0 || strcmp(k, "sort_query") == 0) {
                if (!json_is_boolean(v)) {
                    errbuf_printf(err, errlen, "%s: key 'cache_key.%s': expected true or false, got %s", path, k,
                                  json_type_name(v));
                    return -1;
                }
                *(strcmp(k, "include_host") == 0 ? &cfg->cache_key_include_host : &cfg->cache_key_sort_query) = json_is_true(v);
            } else if (strcmp(k, "ignore_query_params") == 0) {
                size_t i;
                json_t *item;
                if (!json_is_array(v) || json_array_size(v) > CONFIG_MAX_IGNORED_PARAMS) {
                    errbuf_printf(err, errlen, "%s: key 'cache_key.ignore_query_params': expected an array of at most %d names",
                                  path, CONFIG_MAX_IGNORED_PARAMS);
                    return -1;
                }
                cfg->num_cache_key_ignore_params = 0;
                json_array_foreach (v, i, item) {
                    const char *name = json_is_string(item) ? json_string_value(item) : NULL;
                    if (name == NULL || name[0] == '\0' || strlen(name) >= sizeof(cfg->cache_key_ignore_params[0]) ||
                        strpbrk(name, "&=") != NULL) {
                        errbuf_printf(err, errlen,
                                      "%s: key 'cache_key.ignore_query_params': element %zu: expected a parameter name", path,
                                      i);
                        return -1;
                    }
                    strcpy(cfg->cache_key_ignore_params[cfg->num_cache_key_ignore_params++], name);
                }
            } else {
                errbuf_printf(err, errlen, "%s: key 'cache_key': unknown field '%.64s'", path, k);
                return -1;
            }
        }
        return 1;
    }
    if (strcmp(key, "header_rules") == 0) {
        header_rules_t *rules = NULL;
        char msg[256];
        if (header_rules_parse(val, &rules, msg, sizeof(msg)) != 0) {
            errbuf_printf(err, errlen, "%s: key %s", path, msg);
            return -1;
        }
        header_rules_free(&rules);
        free(cfg->header_rules_json);
        cfg->header_rules_json = json_dumps(val, JSON_COMPACT);
        if (cfg->header_rules_json == NULL)
            abort();
        return 1;
    }
    return 0;
}

int config_load_file(config_t *cfg, const char *path, char *err, size_t errlen)
{
    json_error_t jerr;
    json_t *root = NULL;
    const char *key;
    json_t *val;
    char who[512], num[32];

    root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        if (jerr.line > 0)
            errbuf_printf(err, errlen, "%s:%d:%d: %s", path, jerr.line, jerr.column, jerr.text);
        else
            errbuf_printf(err, errlen, "%s: %s", path, jerr.text);
        goto fail;
    }
    if (!json_is_object(root)) {
        errbuf_printf(err, errlen, "%s: expected a JSON object at the top level, got %s", path, json_type_name(root));
        goto fail;
    }

    json_object_foreach (root, key, val) {
        const opt_def_t *o = NULL;
        int handled = load_semantics_key(cfg, path, key, val, err, errlen);
        if (handled < 0)
            goto fail;
        if (handled > 0)
            continue;
        for (size_t k = 0; k < config_num_opts; k++)
            if (config_opt_defs[k].file_key != NULL && strcmp(config_opt_defs[k].file_key, key) == 0)
                o = &config_opt_defs[k];
        if (o == NULL) {
            errbuf_printf(err, errlen, "%s: unknown key '%.64s'", path, key);
            goto fail;
        }
        snprintf(who, sizeof(who), "%s: key '%s'", path, key);

        if (o->id == OPT_BACKEND || o->id == OPT_TLS_CERT || (o->id == OPT_TLS_LISTEN && json_is_array(val))) {
            size_t i;
            json_t *item;
            if (!json_is_array(val)) {
                errbuf_printf(err, errlen, "%s: expected %s, got %s", who, json_expected(o->id), json_type_name(val));
                goto fail;
            }
            if (o->id == OPT_BACKEND) {
                cfg->num_backends = 0;
                free(cfg->backends_json);
                cfg->backends_json = NULL;
            } else if (o->id == OPT_TLS_CERT)
                cfg->num_tls_certs = 0;
            else
                cfg->num_tls_listen = 0;
            json_array_foreach (val, i, item) {
                char certbuf[2400];
                const char *text = json_is_string(item) ? json_string_value(item) : NULL;
                if (o->id == OPT_BACKEND && json_is_object(item)) {
                    /* Fastly's backend fields, checked now (the backend module seeds a fresh store with them) */
                    char detail[400];
                    config_addr_t addr = {0};
                    if (cfg->num_backends >= CONFIG_MAX_BACKENDS) {
                        errbuf_printf(err, errlen, "%s: too many backends (at most %d)", who, CONFIG_MAX_BACKENDS);
                        goto fail;
                    }
                    if (backend_conf_check_object(item, addr.host, sizeof(addr.host), &addr.port, detail, sizeof(detail)) != 0) {
                        errbuf_printf(err, errlen, "%s: element %zu: %s", who, i, detail);
                        goto fail;
                    }
                    cfg->backends[cfg->num_backends++] = addr;
                    if (cfg->backends_json == NULL && (cfg->backends_json = json_dumps(val, JSON_COMPACT)) == NULL)
                        abort();
                    continue;
                }
                if (o->id == OPT_TLS_CERT && json_is_object(item)) {
                    text = tls_cert_object_text(item, certbuf, sizeof(certbuf));
                    if (text == NULL) {
                        errbuf_printf(err, errlen, "%s: element %zu: expected {\"host\", \"cert\", \"key\"} strings", who, i);
                        goto fail;
                    }
                }
                if (text == NULL) {
                    errbuf_printf(err, errlen, "%s: element %zu: expected a %s string, got %s", who, i,
                                  o->id == OPT_TLS_CERT ? "\"HOST=CERT,KEY\"" : "\"HOST:PORT\"", json_type_name(item));
                    goto fail;
                }
                if (config_apply_value(cfg, o, who, text, err, errlen) != 0)
                    goto fail;
            }
            continue;
        }

        const char *text;
        int is_number_key = o->id == OPT_THREADS || o->id == OPT_ADMIN_THREADS || o->id == OPT_ACCEPT_SPREAD ||
                            o->id == OPT_DEFAULT_TTL || o->id == OPT_DEFAULT_GRACE || o->id == OPT_NEGATIVE_TTL ||
                            o->id == OPT_MAX_HEURISTIC_TTL || o->id == OPT_ORIGIN_TIMEOUT || o->id == OPT_SHUTDOWN_TIMEOUT ||
                            o->id == OPT_STATS_SAMPLE_INTERVAL || o->id == OPT_STATS_RETENTION_DAYS ||
                            o->id == OPT_STATS_MINUTE_SECONDS || o->id == OPT_SLA_DEGRADED_PERCENT;
        int is_size_key = o->id == OPT_MEMORY_SIZE || o->id == OPT_DISK_SIZE || o->id == OPT_DISK_PUT_BACKLOG ||
                          o->id == OPT_MAX_REQUEST_BODY || o->id == OPT_REQUEST_BODY_MEMORY;
        if (json_is_integer(val) && (is_number_key || is_size_key)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(val));
            text = num;
        } else if (json_is_real(val) && o->id == OPT_SLA_DEGRADED_PERCENT) {
            snprintf(num, sizeof(num), "%.4f", json_real_value(val));
            text = num;
        } else if (json_is_string(val) && !is_number_key) {
            text = json_string_value(val);
            if (strlen(text) != json_string_length(val)) {
                errbuf_printf(err, errlen, "%s: the string contains a NUL byte", who);
                goto fail;
            }
        } else {
            errbuf_printf(err, errlen, "%s: expected %s, got %s", who, json_expected(o->id), json_type_name(val));
            goto fail;
        }
        if (config_apply_value(cfg, o, who, text, err, errlen) != 0)
            goto fail;
    }
    json_decref(root);
    return 0;

fail:
    if (root != NULL)
        json_decref(root);
    return -1;
}
