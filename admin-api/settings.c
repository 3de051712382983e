/*
 * admin-api/settings.c — the live settings (default TTL, grace, heuristic cap, the TTL of an
 * error without freshness, whether a PURGE on the proxy needs a token, and the
 * caching-semantics switches: cookie policy, obeying a client's no-cache, keeping surrogate
 * headers downstream): their validation, their JSON form and the seqlock that publishes
 * them to every thread.
 *
 * Invariants: the cell always holds a complete, validated settings value. There is one
 * writer at a time (wlock; in practice the admin thread, or admin_start before the thread
 * exists); readers (proxy workers, many times per second) never lock: they retry while
 * the sequence number is odd or changed under them. Every field is an atomic so that
 * the racing reads are defined behaviour; the sequence number makes the set consistent.
 *
 * Validation is all or nothing: admin_settings_apply_json works on a copy and only
 * copies it back when every field passed, so a PUT is never half-applied.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin_int.h"
#include "server/text.h"

void admin_settings_cell_init(admin_settings_cell_t *c, const admin_settings_t *s)
{
    pthread_mutex_init(&c->wlock, NULL);
    atomic_init(&c->seq, 0);
    atomic_init(&c->default_ttl, s->default_ttl);
    atomic_init(&c->default_grace, s->default_grace);
    atomic_init(&c->max_heuristic_ttl, s->max_heuristic_ttl);
    atomic_init(&c->negative_ttl, s->negative_ttl);
    atomic_init(&c->purge_requires_auth, s->purge_requires_auth ? 1u : 0u);
    atomic_init(&c->cookie_policy_strip, s->cookie_policy_strip ? 1u : 0u);
    atomic_init(&c->obey_client_no_cache, s->obey_client_no_cache ? 1u : 0u);
    atomic_init(&c->keep_surrogate_headers, s->keep_surrogate_headers ? 1u : 0u);
}

void admin_settings_cell_dispose(admin_settings_cell_t *c)
{
    pthread_mutex_destroy(&c->wlock);
}

void admin_settings_cell_set(admin_settings_cell_t *c, const admin_settings_t *s)
{
    pthread_mutex_lock(&c->wlock);
    unsigned seq = atomic_load_explicit(&c->seq, memory_order_relaxed);
    assert((seq & 1) == 0);
    atomic_store_explicit(&c->seq, seq + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&c->default_ttl, s->default_ttl, memory_order_relaxed);
    atomic_store_explicit(&c->default_grace, s->default_grace, memory_order_relaxed);
    atomic_store_explicit(&c->max_heuristic_ttl, s->max_heuristic_ttl, memory_order_relaxed);
    atomic_store_explicit(&c->negative_ttl, s->negative_ttl, memory_order_relaxed);
    atomic_store_explicit(&c->purge_requires_auth, s->purge_requires_auth ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&c->cookie_policy_strip, s->cookie_policy_strip ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&c->obey_client_no_cache, s->obey_client_no_cache ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&c->keep_surrogate_headers, s->keep_surrogate_headers ? 1u : 0u, memory_order_relaxed);
    atomic_store_explicit(&c->seq, seq + 2, memory_order_release);
    pthread_mutex_unlock(&c->wlock);
}

void admin_settings_cell_get(admin_settings_cell_t *c, admin_settings_t *out)
{
    unsigned s1, s2;
    do {
        s1 = atomic_load_explicit(&c->seq, memory_order_acquire);
        out->default_ttl = atomic_load_explicit(&c->default_ttl, memory_order_relaxed);
        out->default_grace = atomic_load_explicit(&c->default_grace, memory_order_relaxed);
        out->max_heuristic_ttl = atomic_load_explicit(&c->max_heuristic_ttl, memory_order_relaxed);
        out->negative_ttl = atomic_load_explicit(&c->negative_ttl, memory_order_relaxed);
        out->purge_requires_auth = (int)atomic_load_explicit(&c->purge_requires_auth, memory_order_relaxed);
        out->cookie_policy_strip = (int)atomic_load_explicit(&c->cookie_policy_strip, memory_order_relaxed);
        out->obey_client_no_cache = (int)atomic_load_explicit(&c->obey_client_no_cache, memory_order_relaxed);
        out->keep_surrogate_headers = (int)atomic_load_explicit(&c->keep_surrogate_headers, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        s2 = atomic_load_explicit(&c->seq, memory_order_relaxed);
    } while ((s1 & 1) != 0 || s1 != s2);
}

void admin_settings_snapshot(admin_t *admin, admin_settings_t *out)
{
    assert(admin != NULL && admin->magic == ADMIN_MAGIC);
    admin_settings_cell_get(&admin->settings, out);
}

void admin_settings_from_config(admin_settings_t *s, const config_t *cfg)
{
    memset(s, 0, sizeof(*s));
    s->default_ttl = cfg->default_ttl > ADMIN_SETTINGS_MAX_SECONDS ? ADMIN_SETTINGS_MAX_SECONDS : cfg->default_ttl;
    s->default_grace = cfg->default_grace > ADMIN_SETTINGS_MAX_SECONDS ? ADMIN_SETTINGS_MAX_SECONDS : cfg->default_grace;
    s->max_heuristic_ttl = cfg->max_heuristic_ttl > ADMIN_SETTINGS_MAX_SECONDS ? ADMIN_SETTINGS_MAX_SECONDS
                                                                               : cfg->max_heuristic_ttl;
    s->negative_ttl = cfg->negative_ttl > ADMIN_SETTINGS_MAX_SECONDS ? ADMIN_SETTINGS_MAX_SECONDS : cfg->negative_ttl;
    s->purge_requires_auth = 1;
    s->cookie_policy_strip = cfg->cookie_policy_strip ? 1 : 0;
    s->obey_client_no_cache = cfg->obey_client_no_cache ? 1 : 0;
    s->keep_surrogate_headers = cfg->keep_surrogate_headers ? 1 : 0;
}

static int seconds_field(const char *name, const json_t *v, uint32_t *out, char *detail, size_t detail_len)
{
    if (!json_is_integer(v)) {
        snprintf(detail, detail_len, "%s: must be an integer number of seconds", name);
        return ADMIN_EINVAL;
    }
    json_int_t i = json_integer_value(v);
    if (i < 0 || i > (json_int_t)ADMIN_SETTINGS_MAX_SECONDS) {
        snprintf(detail, detail_len, "%s: must be between 0 and %u", name, ADMIN_SETTINGS_MAX_SECONDS);
        return ADMIN_EINVAL;
    }
    *out = (uint32_t)i;
    return 0;
}

static int bool_field(const char *name, const json_t *v, int *out, char *detail, size_t detail_len)
{
    if (!json_is_boolean(v)) {
        snprintf(detail, detail_len, "%s: must be true or false", name);
        return ADMIN_EINVAL;
    }
    *out = json_is_true(v) ? 1 : 0;
    return 0;
}

static int cookie_policy_field(const char *name, const json_t *v, int *strip, char *detail, size_t detail_len)
{
    if (json_is_string(v)) {
        const char *p = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 4 && memcmp(p, "pass", 4) == 0) {
            *strip = 0;
            return 0;
        }
        if (len == 5 && memcmp(p, "strip", 5) == 0) {
            *strip = 1;
            return 0;
        }
    }
    snprintf(detail, detail_len, "%s: must be \"pass\" or \"strip\"", name);
    return ADMIN_EINVAL;
}

/* every field admin_settings_to_json writes, in its order */
static const char *const setting_names[] = {"default_ttl",          "default_grace",         "max_heuristic_ttl",
                                            "negative_ttl",         "purge_requires_auth",   "cookie_policy",
                                            "obey_client_no_cache", "keep_surrogate_headers"};
#define NUM_SETTINGS (sizeof(setting_names) / sizeof(setting_names[0]))

int admin_settings_json_is_complete(const json_t *obj)
{
    if (!json_is_object(obj))
        return 0;
    for (size_t i = 0; i < NUM_SETTINGS; i++)
        if (json_object_get(obj, setting_names[i]) == NULL)
            return 0;
    return 1;
}

int admin_settings_apply_json(admin_settings_t *s, const json_t *obj, char *detail, size_t detail_len)
{
    admin_settings_t next = *s;
    const char *key;
    json_t *v;

    if (!json_is_object(obj)) {
        snprintf(detail, detail_len, "body: must be a JSON object");
        return ADMIN_EINVAL;
    }
    json_object_foreach ((json_t *)obj, key, v) {
        if (strcmp(key, "default_ttl") == 0) {
            if (seconds_field(key, v, &next.default_ttl, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "default_grace") == 0) {
            if (seconds_field(key, v, &next.default_grace, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "max_heuristic_ttl") == 0) {
            if (seconds_field(key, v, &next.max_heuristic_ttl, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "negative_ttl") == 0) {
            if (seconds_field(key, v, &next.negative_ttl, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "purge_requires_auth") == 0) {
            if (bool_field(key, v, &next.purge_requires_auth, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "cookie_policy") == 0) {
            if (cookie_policy_field(key, v, &next.cookie_policy_strip, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "obey_client_no_cache") == 0) {
            if (bool_field(key, v, &next.obey_client_no_cache, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else if (strcmp(key, "keep_surrogate_headers") == 0) {
            if (bool_field(key, v, &next.keep_surrogate_headers, detail, detail_len) != 0)
                return ADMIN_EINVAL;
        } else {
            /* the name is untrusted: print only a bounded, printable prefix */
            char shown[72];
            text_escape(shown, sizeof(shown), key, strlen(key));
            snprintf(detail, detail_len,
                     "%s: unknown field (known: default_ttl, default_grace, max_heuristic_ttl, negative_ttl, "
                     "purge_requires_auth, cookie_policy, obey_client_no_cache, keep_surrogate_headers)",
                     shown);
            return ADMIN_EINVAL;
        }
    }
    *s = next;
    return 0;
}

json_t *admin_settings_to_json(const admin_settings_t *s)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:b, s:s, s:b, s:b}", "default_ttl", (json_int_t)s->default_ttl,
                          "default_grace", (json_int_t)s->default_grace, "max_heuristic_ttl", (json_int_t)s->max_heuristic_ttl,
                          "negative_ttl", (json_int_t)s->negative_ttl, "purge_requires_auth", s->purge_requires_auth ? 1 : 0,
                          "cookie_policy", s->cookie_policy_strip ? "strip" : "pass", "obey_client_no_cache",
                          s->obey_client_no_cache ? 1 : 0, "keep_surrogate_headers", s->keep_surrogate_headers ? 1 : 0);
    if (o == NULL)
        abort();
    return o;
}
