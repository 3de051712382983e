/*
 * server/proxy_revalidate.c — revalidation and grace: what a stale copy is still good for.
 *
 *   - Revalidation. A fetch for a URL with a stale copy that has validators asks the origin
 *     conditionally (proxy_build_origin_request adds If-None-Match / If-Modified-Since). A 304
 *     refreshes the stored copy (RFC 9111 4.3.4): the stored headers with those the 304
 *     carries replacing them, freshness decided again from the merged headers as if the full
 *     response had come again, the body kept; the client gets it as REVALIDATED.
 *   - Stale-if-error. When the origin fails before a usable head (unreachable, timed out,
 *     malformed, no healthy backend) or answers 5xx, a stale copy within
 *     max(its stale-if-error, default_grace) past its TTL is served instead, unless it is
 *     must-revalidate or no-cache; otherwise 502, 503 (no backend) or 504 (timeout).
 *   - Stale-while-revalidate (serving at once and refreshing in the background) is decided at
 *     lookup, in proxy_serve_cacheable.
 *
 * Worker threads only.
 */
#include <stdatomic.h>
#include <string.h>
#include <h2o.h>
#include "common/now.h"
#include "server/cache_policy.h"
#include "server/header_rules.h"
#include "server/proxy_int.h"

/* how long past its TTL a stale copy may stand in for an origin error */
static uint32_t stale_if_error_window(const cache_obj_t *obj)
{
    proxy_settings_t s;
    proxy_current_settings(&s);
    return obj->meta.stale_if_error > s.policy.default_grace ? obj->meta.stale_if_error : s.policy.default_grace;
}

/* may this stale copy stand in for an origin failure now? */
int proxy_stale_usable_on_error(const cache_obj_t *stale, int64_t now_ms, uint32_t *age_out)
{
    /* must-revalidate and no-cache (RFC 9111 5.2.2.2, 5.2.2.4): never without successful validation */
    if (stale == NULL || (atomic_load(&stale->flags) & (OBJ_F_MUST_REVALIDATE | OBJ_F_NO_CACHE)))
        return 0;
    uint32_t age = policy_current_age(stale->meta.initial_age, stale->meta.response_time_ms, now_ms);
    *age_out = age;
    return (uint64_t)age < (uint64_t)stale->meta.ttl + stale_if_error_window(stale);
}

const char proxy_no_backend_error[] = "no healthy backend";

/* the origin exchange failed before a usable response head (or no backend could take it):
 * stale copy, or an error */
void proxy_fetch_fail_before_head(fetch_t *f, const char *errstr)
{
    worker_t *w = f->w;
    fetch_link_t *link = f->link;
    uint32_t age = 0;
    int status = errstr == proxy_no_backend_error ? 503 : errstr != NULL && strstr(errstr, "timeout") != NULL ? 504 : 502;
    int use_stale = f->mode == FETCH_CACHE && proxy_stale_usable_on_error(f->stale, now_wall_ms(), &age);

    if (use_stale)
        proxy_fetch_wake_waiters(f, WAKE_OBJECT, f->stale, 0);
    else
        proxy_fetch_wake_waiters(f, WAKE_ERROR, NULL, status);
    if (link == NULL || link->final_sent)
        return;
    h2o_req_t *req = link->req;
    link->fetch = NULL;
    f->link = NULL;
    link->final_sent = 1;
    if (use_stale) {
        /* stale-if-error: the copy we have beats an error */
        atomic_fetch_add_explicit(&w->counters.stale_served, 1, memory_order_relaxed);
        proxy_send_object(req, obj_ref(f->stale), age, "HIT");
    } else if (status == 504) {
        proxy_send_error(req, 504, "origin timed out\n");
    } else if (status == 503) {
        proxy_send_error(req, 503, "no origin available\n");
    } else {
        proxy_send_error(req, 502, "origin unreachable or invalid response\n");
    }
}

/* 304 to our conditional request: refresh the stored copy's headers and TTL, keep its body */
void proxy_fetch_on_revalidated(fetch_t *f, const h2o_header_t *headers, size_t num_headers, int64_t response_time_ms)
{
    cache_obj_t *stale = f->stale;
    hr_list_t updates = {0}, merged = {0};

    /* RFC 9111 4.3.4: the stored headers, with those the 304 carries replacing them */
    proxy_origin_headers_to_list(f, headers, num_headers, &updates);
    for (uint32_t i = 0; i != stale->num_headers; ++i) {
        const obj_header_t *h = &stale->headers[i];
        int replaced = 0;
        for (size_t j = 0; j != updates.size && !replaced; ++j)
            replaced = updates.entries[j].name_len == h->name_len && memcmp(updates.entries[j].name, h->name, h->name_len) == 0;
        if (!replaced)
            hr_list_push(&merged, h->name, h->name_len, h->value, h->value_len);
    }
    for (size_t j = 0; j != updates.size; ++j)
        hr_list_push(&merged, updates.entries[j].name, updates.entries[j].name_len, updates.entries[j].value,
                     updates.entries[j].value_len);
    if (f->settings.cookie_policy_strip)
        hr_list_unset(&merged, H2O_STRLIT("set-cookie"));

    /* freshness from the merged headers and the stored status, as if the full response had come again */
    policy_decision_t dec;
    proxy_fetch_decide(f, stale->meta.status, &merged, headers, num_headers, response_time_ms, &dec);
    obj_meta_t meta = proxy_meta_from_decision(f, stale->meta.status, &dec, response_time_ms);
    cache_obj_t *fresh = obj_rebuild(stale, &meta, merged.entries, merged.size);
    hr_list_dispose(&updates);
    hr_list_dispose(&merged);

    atomic_fetch_add_explicit(&f->w->counters.revalidated_304, 1, memory_order_relaxed);
    /* not storable (the 304 sets a cookie, says no-store, or answers this request's Authorization):
     * it is this request's answer, not the waiters', who fetch for themselves */
    if (dec.storable)
        proxy_publish_object(f, fresh);
    proxy_fetch_wake_waiters(f, dec.storable ? WAKE_OBJECT : WAKE_MISS, dec.storable ? fresh : NULL, 0);
    if (f->link != NULL && !f->link->final_sent) {
        fetch_link_t *link = f->link;
        link->fetch = NULL;
        f->link = NULL;
        link->final_sent = 1;
        atomic_fetch_add_explicit(&f->w->counters.hits, 1, memory_order_relaxed);
        /* the stored body, but only after the origin confirmed it: not a plain HIT (nginx's label) */
        proxy_send_object(link->req, obj_ref(fresh), dec.initial_age, "REVALIDATED");
    }
    obj_unref(&fresh);
}
