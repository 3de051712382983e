/*
 * server/proxy_settings.c — the proxy's process-wide state and the settings a request sees.
 *
 * Owns proxy_globals (set by proxy_init on the main thread before the workers start, read-only
 * after it), the settings snapshot and the live header rules.
 *
 *   - A request, or a fetch at its start, takes one snapshot of the semantics settings
 *     (proxy_current_settings): the config's values, overridden by the live ones that the
 *     live_settings callback main wires reads (the admin API's, a seqlock snapshot there). A
 *     fetch keeps its snapshot for its life.
 *   - The header rules are swapped whole (an atomic pointer) by the admin API's thread; a
 *     replaced set is retired, never freed before exit, so a pointer a worker read once stays
 *     valid for the request that read it.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"
#include "server/header_rules.h"
#include "server/proxy.h"
#include "server/proxy_int.h"

proxy_globals_t proxy_globals;

/* the live header rules: swapped whole by the admin API; replaced sets are retired, not freed */
static _Atomic(header_rules_t *) g_rules;
static header_rules_t **g_retired_rules;
static size_t g_num_retired_rules;
static pthread_mutex_t g_rules_lock = PTHREAD_MUTEX_INITIALIZER;

const header_rules_t *proxy_live_rules(void)
{
    return atomic_load_explicit(&g_rules, memory_order_acquire);
}

/* ---------------------------------------------------------------- settings */

/* the live settings: the admin API may change them at any time (seqlock snapshot) */
void proxy_current_settings(proxy_settings_t *out)
{
    out->policy = proxy_globals.policy;
    out->cookie_policy_strip = proxy_globals.cfg->cookie_policy_strip;
    out->obey_client_no_cache = proxy_globals.cfg->obey_client_no_cache;
    out->keep_surrogate_headers = proxy_globals.cfg->keep_surrogate_headers;
    proxy_live_settings_t s;
    if (proxy_globals.live_settings != NULL && proxy_globals.live_settings(proxy_globals.live_settings_arg, &s) == 0) {
        out->policy.default_ttl = s.default_ttl;
        out->policy.default_grace = s.default_grace;
        out->policy.max_heuristic_ttl = s.max_heuristic_ttl;
        out->policy.negative_ttl = s.negative_ttl;
        out->cookie_policy_strip = s.cookie_policy_strip;
        out->obey_client_no_cache = s.obey_client_no_cache;
        out->keep_surrogate_headers = s.keep_surrogate_headers;
    }
}

/* ---------------------------------------------------------------- set-up */

int proxy_init(const config_t *cfg, store_t *store, mem_tier_t *mem, proxy_live_settings_fn live_settings,
               void *live_settings_arg, char *err, size_t errlen)
{
    proxy_globals.cfg = cfg;
    proxy_globals.store = store;
    proxy_globals.mem = mem;
    proxy_globals.live_settings = live_settings;
    proxy_globals.live_settings_arg = live_settings_arg;
    proxy_globals.policy.default_ttl = cfg->default_ttl;
    proxy_globals.policy.negative_ttl = cfg->negative_ttl;
    proxy_globals.policy.max_heuristic_ttl = cfg->max_heuristic_ttl;
    proxy_globals.policy.default_grace = cfg->default_grace;
    for (size_t i = 0; i != cfg->num_cache_key_ignore_params; ++i)
        proxy_globals.key_ignore_params[i] = cfg->cache_key_ignore_params[i];
    proxy_globals.key_rules = (cache_key_rules_t){.include_host = cfg->cache_key_include_host,
                                                  .include_scheme = cfg->cache_key_include_scheme,
                                                  .sort_query = cfg->cache_key_sort_query,
                                                  .ignore_params = proxy_globals.key_ignore_params,
                                                  .num_ignore_params = cfg->num_cache_key_ignore_params};
    /* an object must fit the memory tier's admission limit and a small share of the disk */
    proxy_globals.max_object_size = cfg->memory_size / 4 < cfg->disk_size / 8 ? cfg->memory_size / 4 : cfg->disk_size / 8;
    proxy_inflight_init();
    /* header rules: the store's copy (changed over the admin API) wins; the config file seeds a fresh store */
    {
        char *text = NULL;
        size_t text_len = 0;
        header_rules_t *rules = NULL;
        if (store_kv_get(store, "config", "header_rules", &text, &text_len) == 0) {
            /* a rule an older version stored and this one refuses is skipped (a line on stderr), not
             * fatal; the stored copy keeps it until the list is next changed over the admin API */
            if (header_rules_parse_stored(text, stderr, NULL, &rules, err, errlen) != 0) {
                free(text);
                return -1;
            }
            free(text);
        } else if (cfg->header_rules_json != NULL) {
            if (header_rules_parse_text(cfg->header_rules_json, &rules, err, errlen) != 0)
                return -1;
            if (store_kv_put_sync(store, "config", "header_rules", cfg->header_rules_json, strlen(cfg->header_rules_json)) != 0) {
                snprintf(err, errlen, "cannot store the header rules");
                header_rules_free(&rules);
                return -1;
            }
        }
        atomic_store(&g_rules, rules);
    }

    return 0;
}

const struct header_rules *proxy_header_rules(void)
{
    return proxy_live_rules();
}

void proxy_header_rules_replace(struct header_rules *rules)
{
    pthread_mutex_lock(&g_rules_lock);
    header_rules_t *old = atomic_exchange_explicit(&g_rules, rules, memory_order_acq_rel);
    if (old != NULL) {
        header_rules_t **grown = alloc_xrealloc(g_retired_rules, (g_num_retired_rules + 1) * sizeof(*grown), "proxy");
        g_retired_rules = grown;
        g_retired_rules[g_num_retired_rules++] = old;
    }
    pthread_mutex_unlock(&g_rules_lock);
}
