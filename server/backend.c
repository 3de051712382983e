/*
 * server/backend.c — origin servers: the live set of backends, built from the configuration,
 * persisted and published; the module's start and stop; the figures for /stats. Beside it:
 * backend_config.c (the configuration as values: Fastly's fields from JSON and forms,
 * validation, the persisted document), backend_pick.c (each worker's instances of the set
 * and the choice of a backend for a fetch) and backend_prober.c (the prober thread: health
 * checks and purge forwarding to the shield). backend_int.h holds what they share.
 *
 * What it owns.
 *   - The live configuration (backend_config_t, what the admin API edits and the store's
 *     `config` db holds under "backends") and, built from it, an immutable, refcounted
 *     backend_set_t: one backend_t per configured backend. A change builds a new set and
 *     swaps it in under backend_g.lock, bumping backend_g.gen; nobody ever modifies a
 *     published set.
 *   - backend_t: one version of one backend (its settings, resolved address, and with use_ssl
 *     its TLS context, server/origin_tls.h, built with it: a new version whose TLS settings and
 *     names did not change shares the previous one's). A backend whose settings did not change
 *     is carried into the next set as the same object ("did not change": backend_conf_equal,
 *     the TLS PEM fields compared by content). Each backend_t owns its copy of the settings
 *     (backend_conf_copy; released when its last reference goes).
 *     Every version of a backend name shares one backend_state_t: counters, the health
 *     window and the prober's schedule, so an edit of the weight keeps the health state.
 *   - The shield's admin API (--shield-admin): its address, and with --shield-admin-tls the TLS
 *     context purges are forwarded with, made once at init and dropped at stop.
 *
 * Invariants.
 *   - Readers take the set cheaply: a worker (or the prober) compares backend_g.gen (one
 *     atomic load) with the generation it holds and only on a change takes backend_g.lock
 *     (backend_set_acquire) to swap its reference.
 *   - Health: `healthy` is an atomic flag read by workers; the window behind it is changed
 *     under state->lock by the prober (a probe result) and by a commit (a reset when the
 *     address or health check changed; health_gen then moves so that a probe started
 *     before the reset is ignored).
 *
 * Threads. backend_module_init / _stop: main thread. backend_config_commit: the admin thread
 * (serialised by backend_g.commit_lock). backend_stats_snapshot and backend_config_get: any
 * thread.
 */
#include <assert.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "common/alloc.h"
#include "server/backend.h"
#include "server/backend_int.h"

/* ================================================================ small helpers */

/* ================================================================ runtime objects */

static void state_unref(backend_state_t *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) == 1) {
        pthread_mutex_destroy(&st->lock);
        free(st);
    }
}

backend_t *backend_ref(backend_t *b)
{
    assert(b->magic == BACKEND_MAGIC);
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void backend_unref(backend_t *b)
{
    assert(b->magic == BACKEND_MAGIC);
    if (atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) == 1) {
        state_unref(b->state);
        origin_tls_unref(&b->tls);
        backend_conf_release(&b->conf);
        b->magic = 0;
        free(b);
    }
}

int backend_usable(const backend_t *b)
{
    return b->resolved && (!b->has_hc || atomic_load_explicit(&b->state->healthy, memory_order_relaxed));
}

void backend_set_unref(backend_set_t *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        for (size_t i = 0; i != s->n; ++i)
            backend_unref(s->b[i]);
        free(s);
    }
}

/* ================================================================ module state */

backend_module_state_t backend_g = {.lock = PTHREAD_MUTEX_INITIALIZER, .commit_lock = PTHREAD_MUTEX_INITIALIZER};

/* a new reference to the current set (NULL before init) */
backend_set_t *backend_set_acquire(uint64_t *gen)
{
    pthread_mutex_lock(&backend_g.lock);
    backend_set_t *s = backend_g.current;
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    *gen = atomic_load(&backend_g.gen);
    pthread_mutex_unlock(&backend_g.lock);
    return s;
}

static int resolve(const char *host, uint16_t port, struct sockaddr_storage *sa, socklen_t *salen, char *why, size_t why_len)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    int rc;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if ((rc = getaddrinfo(host, portstr, &hints, &res)) != 0) {
        errbuf_printf(why, why_len, "%s", gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int hc_equal(const backend_t *old, const backend_config_t *c, const backend_conf_t *bc)
{
    const backend_healthcheck_conf_t *h = bc->healthcheck[0] != '\0' ? backend_config_find_healthcheck(c, bc->healthcheck)
                                                                     : NULL;
    if ((h != NULL) != (old->has_hc != 0))
        return 0;
    return h == NULL || memcmp(h, &old->hc, sizeof(*h)) == 0;
}

/* the same TLS identity: settings, and the names the defaults come from (a pooled connection
 * verified for one name must not serve a backend that wants another) */
static int tls_equal(const backend_conf_t *a, const backend_conf_t *b)
{
    return origin_tls_conf_equal(&a->tls, &b->tls) &&
           (!a->tls.use_ssl || (strcmp(a->override_host, b->override_host) == 0 && strcmp(a->address, b->address) == 0));
}

/* b's TLS context: prev's when nothing about TLS changed, else a new one. Returns 0 or -1 (why set). */
static int tls_build(backend_t *b, const backend_t *prev, char *why, size_t why_len)
{
    const backend_conf_t *bc = &b->conf;
    if (!bc->tls.use_ssl)
        return 0;
    if (prev != NULL && prev->tls != NULL && tls_equal(&prev->conf, bc)) {
        b->tls = origin_tls_ref(prev->tls);
        return 0;
    }
    /* the default certificate name: override_host without its port, else the address */
    char name[BACKEND_HOST_MAX + 1], peer[BACKEND_HOST_MAX + 16];
    const char *src = bc->override_host[0] != '\0' ? bc->override_host : bc->address;
    snprintf(name, sizeof(name), "%s", src[0] == '[' ? src + 1 : src);
    char *end = src[0] == '[' ? strchr(name, ']') : bc->override_host[0] != '\0' ? strrchr(name, ':') : NULL;
    if (end != NULL)
        *end = '\0';
    snprintf(peer, sizeof(peer), strchr(bc->address, ':') != NULL ? "[%s]:%u" : "%s:%u", bc->address, (unsigned)bc->port);
    return origin_tls_new(&bc->tls, bc->name, peer, name, &b->tls, why, why_len);
}

static backend_t *find_in_set(backend_set_t *s, const char *name)
{
    for (size_t i = 0; s != NULL && i != s->n; ++i)
        if (strcmp(s->b[i]->conf.name, name) == 0)
            return s->b[i];
    return NULL;
}

/* the health state a (new) backend starts with; call with st->lock held or before publication */
static void state_reset_health(backend_state_t *st, const backend_t *b)
{
    if (b->has_hc) {
        backend_window_init(&st->window, b->hc.window, b->hc.threshold, b->hc.initial);
        atomic_store(&st->healthy, backend_window_healthy(&st->window));
    } else {
        atomic_store(&st->healthy, 1);
    }
    st->health_gen++;
    atomic_store(&st->next_probe_at, 0);
}

/*
 * Build the set for configuration c from the current one (old, may be NULL). strict: an
 * address that does not resolve is an error (detail "address: ..."); otherwise the backend
 * is kept but never used. *resets lists the new backends whose state needs a health reset
 * at publication. Called under commit_lock.
 */
static int set_build(const backend_config_t *c, backend_set_t *old, int strict, backend_set_t **out, backend_t **resets,
                     size_t *num_resets, char *detail, size_t detail_len)
{
    backend_set_t *s = alloc_xcalloc(1, sizeof(*s), "backend");
    atomic_init(&s->refs, 1);
    s->lb = c->load_balancing;
    *num_resets = 0;

    for (size_t i = 0; i != c->num_backends; ++i) {
        const backend_conf_t *bc = &c->backends[i];
        backend_t *prev = find_in_set(old, bc->name);
        if (prev != NULL && backend_conf_equal(&prev->conf, bc) && hc_equal(prev, c, bc) && prev->resolved) {
            s->b[s->n++] = backend_ref(prev); /* unchanged: the same object, pools and all */
            continue;
        }
        backend_t *b = alloc_xcalloc(1, sizeof(*b), "backend");
        b->magic = BACKEND_MAGIC;
        atomic_init(&b->refs, 1);
        b->id = ++backend_g.next_id;
        backend_conf_copy(&b->conf, bc); /* released with b (backend_unref) */
        b->name_hash = backend_name_hash(bc->name, strlen(bc->name));
        const backend_healthcheck_conf_t *h = bc->healthcheck[0] != '\0' ? backend_config_find_healthcheck(c, bc->healthcheck)
                                                                         : NULL;
        if (h != NULL) {
            b->has_hc = 1;
            b->hc = *h;
        }
        char why[300];
        if (resolve(bc->address, bc->port, &b->sa, &b->salen, why, sizeof(why)) == 0) {
            b->resolved = 1;
        } else if (strict) {
            errbuf_printf(detail, detail_len, "address: cannot resolve '%s': %s", bc->address, why);
            backend_conf_release(&b->conf);
            free(b);
            backend_set_unref(s);
            return BACKEND_EINVAL;
        } else {
            fprintf(stderr, "edgecache: backend '%s': cannot resolve '%s' (%s); it gets no traffic until updated\n", bc->name,
                    bc->address, why);
        }
        if (b->resolved && tls_build(b, prev, why, sizeof(why)) != 0) {
            if (strict) {
                errbuf_printf(detail, detail_len, "%s", why);
                backend_conf_release(&b->conf);
                free(b);
                backend_set_unref(s);
                return BACKEND_EINVAL;
            }
            fprintf(stderr, "edgecache: backend '%s': %s; it gets no traffic until updated\n", bc->name, why);
            b->resolved = 0;
        }
        int same_address = prev != NULL && strcmp(prev->conf.address, bc->address) == 0 && prev->conf.port == bc->port;
        /* pooled connections follow an edit only to the same peer with the same TLS identity */
        b->pool_key = same_address && prev->conf.max_conn == bc->max_conn && prev->resolved && tls_equal(&prev->conf, bc)
                          ? prev->pool_key
                          : b->id;
        if (prev != NULL) {
            b->state = prev->state;
            atomic_fetch_add_explicit(&b->state->refs, 1, memory_order_relaxed);
            if (!same_address || !hc_equal(prev, c, bc))
                resets[(*num_resets)++] = b;
        } else {
            backend_state_t *st = alloc_xcalloc(1, sizeof(*st), "backend");
            atomic_init(&st->refs, 1);
            pthread_mutex_init(&st->lock, NULL);
            snprintf(st->name, sizeof(st->name), "%s", bc->name);
            b->state = st;
            state_reset_health(st, b); /* not published yet */
        }
        s->b[s->n++] = b;
    }
    *out = s;
    return 0;
}

/* swap in s (takes the reference) and c (copied); called under commit_lock */
static void publish(backend_set_t *s, const backend_config_t *c, backend_t **resets, size_t num_resets)
{
    for (size_t i = 0; i != num_resets; ++i) {
        pthread_mutex_lock(&resets[i]->state->lock);
        state_reset_health(resets[i]->state, resets[i]);
        pthread_mutex_unlock(&resets[i]->state->lock);
    }
    pthread_mutex_lock(&backend_g.lock);
    backend_set_t *old = backend_g.current;
    s->gen = atomic_load(&backend_g.gen) + 1;
    backend_g.current = s;
    backend_config_copy(backend_g.config, c); /* the entries in use only: the rest stays untouched pages */
    atomic_store(&backend_g.gen, s->gen);
    pthread_mutex_unlock(&backend_g.lock);
    backend_set_unref(old);
}

static int persist(const backend_config_t *c)
{
    json_t *doc = backend_config_to_json(c);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (text == NULL)
        alloc_die("backend", 0);
    int rc = store_kv_put_sync(backend_g.store, "config", BACKEND_STORE_KEY, text, strlen(text));
    free(text);
    return rc == 0 ? 0 : BACKEND_EIO;
}

backend_config_t *backend_config_get(void)
{
    backend_config_t *c = alloc_xcalloc(1, sizeof(*c), "backend"); /* ~2.9 MB, mmap'd: only what is copied is touched */
    pthread_mutex_lock(&backend_g.lock);
    if (backend_g.config != NULL)
        backend_config_copy(c, backend_g.config);
    pthread_mutex_unlock(&backend_g.lock);
    if (!backend_g.initialised) {
        free(c);
        return NULL;
    }
    return c;
}

int backend_config_commit(const backend_config_t *next, char *detail, size_t detail_len)
{
    backend_set_t *s = NULL;
    backend_t *resets[BACKEND_MAX];
    size_t num_resets = 0;
    int rc;

    if (!backend_g.initialised) {
        errbuf_printf(detail, detail_len, "backends: not initialised");
        return BACKEND_EIO;
    }
    if ((rc = backend_config_validate(next, detail, detail_len)) != 0)
        return rc;
    pthread_mutex_lock(&backend_g.commit_lock);
    backend_set_t *old;
    uint64_t gen_unused;
    old = backend_set_acquire(&gen_unused);
    rc = set_build(next, old, 1, &s, resets, &num_resets, detail, detail_len);
    backend_set_unref(old);
    if (rc != 0)
        goto done;
    if ((rc = persist(next)) != 0) {
        errbuf_printf(detail, detail_len, "store: write failed; nothing was changed");
        backend_set_unref(s);
        goto done;
    }
    publish(s, next, resets, num_resets);
done:
    pthread_mutex_unlock(&backend_g.commit_lock);
    return rc;
}

/* ================================================================ module life */

/* one line when --backend flags name other backends than the store has: they only seed a fresh store */
static void warn_ignored_flags(const backend_config_t *c, const config_t *cfg)
{
    int differ = cfg->num_backends != 0 && cfg->num_backends > c->num_backends;
    for (size_t i = 0; !differ && i != cfg->num_backends; ++i)
        differ = strcmp(c->backends[i].address, cfg->backends[i].host) != 0 || c->backends[i].port != cfg->backends[i].port;
    if (differ)
        fprintf(stderr, "edgecache: note: the store already has a backend configuration; --backend/\"backends\" only seed a "
                        "fresh store (change backends with the admin API)\n");
}

/* --shield-admin's address, and with --shield-admin-tls the context its purges are forwarded with:
 * verified against that CA for the --shield-admin host, as --shield-tls does for the shield */
static int shield_admin_resolve(const config_t *cfg, char *err, size_t errlen)
{
    char why[400];
    if (cfg->shield_admin.port == 0)
        return 0;
    if (resolve(cfg->shield_admin.host, cfg->shield_admin.port, &backend_g.shield_admin_sa, &backend_g.shield_admin_salen, why,
                sizeof(why)) != 0) {
        errbuf_printf(err, errlen, "--shield-admin: cannot resolve '%s': %s", cfg->shield_admin.host, why);
        return -1;
    }
    if (cfg->shield_admin_tls) {
        origin_tls_conf_t *conf = alloc_xcalloc(1, sizeof(*conf), "backend");
        char peer[sizeof(cfg->shield_admin.host) + 16];
        origin_tls_conf_defaults(conf);
        conf->use_ssl = 1;
        if (cfg->shield_admin_tls_ca != NULL) /* else the system's trust store */
            origin_tls_conf_set_pem(&conf->ssl_ca_cert, cfg->shield_admin_tls_ca, strlen(cfg->shield_admin_tls_ca));
        snprintf(peer, sizeof(peer), strchr(cfg->shield_admin.host, ':') != NULL ? "[%s]:%u" : "%s:%u", cfg->shield_admin.host,
                 (unsigned)cfg->shield_admin.port);
        int rc = origin_tls_new(conf, "shield-admin", peer, cfg->shield_admin.host, &backend_g.shield_admin_tls, why,
                                sizeof(why));
        origin_tls_conf_release(conf);
        free(conf);
        if (rc != 0) {
            errbuf_printf(err, errlen, "--shield-admin-tls: %s", why);
            return -1;
        }
    }
    backend_g.have_shield_admin = 1;
    return 0;
}

int backend_module_init(const config_t *cfg, store_t *store, char *err, size_t errlen)
{
    backend_config_t *c = alloc_xcalloc(1, sizeof(*c), "backend");
    backend_set_t *s = NULL;
    backend_t *resets[BACKEND_MAX];
    size_t num_resets;
    char detail[400], *text = NULL;
    size_t len = 0;
    int dirty = 0, rc;

    assert(!backend_g.initialised);
    backend_g.cfg = cfg;
    backend_g.store = store;
    backend_g.have_shield_admin = 0;
    rc = store_kv_get(store, "config", BACKEND_STORE_KEY, &text, &len);
    if (rc == 0) {
        json_error_t jerr;
        json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        free(text);
        if (doc == NULL) {
            errbuf_printf(err, errlen, "the stored backend configuration is not JSON: %s", jerr.text);
            goto fail;
        }
        rc = backend_config_from_json(c, doc, detail, sizeof(detail));
        json_decref(doc);
        if (rc != 0) {
            errbuf_printf(err, errlen, "the stored backend configuration is invalid: %s", detail);
            goto fail;
        }
        warn_ignored_flags(c, cfg);
    } else if (rc == STORE_ENOTFOUND) {
        backend_config_seed(c, cfg); /* a fresh store: --backend flags / the config file */
        dirty = 1;
    } else {
        errbuf_printf(err, errlen, "cannot read the backend configuration from the store");
        goto fail;
    }
    if (!c->load_balancing_stored)
        c->load_balancing = (backend_lb_t)cfg->load_balancing;
    if (cfg->shield.port != 0) {
        const char *tls_ca = cfg->shield_tls ? (cfg->shield_tls_ca != NULL ? cfg->shield_tls_ca : "") : NULL;
        int forced = backend_config_force_shield(c, &cfg->shield, tls_ca);
        if (forced < 0) {
            errbuf_printf(err, errlen, "--shield: no room for one more backend (at most %d)", BACKEND_MAX);
            goto fail;
        }
        dirty |= forced;
    }
    if (backend_config_validate(c, detail, sizeof(detail)) != 0) {
        errbuf_printf(err, errlen, "--backend: %s", detail);
        goto fail;
    }
    if (shield_admin_resolve(cfg, err, errlen) != 0)
        goto fail;
    if (c->num_backends == 0)
        fprintf(stderr, "edgecache: warning: no backends configured; misses will get 503 (give --backend on a fresh store, "
                        "or add one with the admin API)\n");
    if (dirty && persist(c) != 0) {
        errbuf_printf(err, errlen, "cannot save the backend configuration in the store");
        goto fail;
    }
    pthread_mutex_lock(&backend_g.commit_lock);
    rc = set_build(c, NULL, 0, &s, resets, &num_resets, detail, sizeof(detail));
    assert(rc == 0); /* not strict: cannot fail */
    backend_g.config = alloc_xcalloc(1, sizeof(*backend_g.config), "backend");
    backend_workers_alloc(cfg->threads);
    publish(s, c, resets, num_resets);
    backend_g.initialised = 1;
    pthread_mutex_unlock(&backend_g.commit_lock);
    backend_config_free(c);
    return 0;

fail:
    backend_config_free(c);
    return -1;
}

void backend_module_stop(void)
{
    backend_prober_stop();
    origin_tls_unref(&backend_g.shield_admin_tls); /* the prober, its only user, has stopped (or a failed init made it) */
    if (!backend_g.initialised)
        return;
    /* the workers are gone: drop the module's own references */
    pthread_mutex_lock(&backend_g.commit_lock);
    pthread_mutex_lock(&backend_g.lock);
    backend_set_t *s = backend_g.current;
    backend_g.current = NULL;
    backend_config_free(backend_g.config);
    backend_g.config = NULL;
    backend_g.initialised = 0;
    pthread_mutex_unlock(&backend_g.lock);
    pthread_mutex_unlock(&backend_g.commit_lock);
    backend_set_unref(s);
    free(backend_g.workers);
    backend_g.workers = NULL;
    backend_g.num_workers = 0;
}

/* ================================================================ stats */

size_t backend_stats_snapshot(backend_stat_t *out, size_t max)
{
    uint64_t gen;
    backend_set_t *s = backend_set_acquire(&gen);
    if (s == NULL)
        return 0;
    for (size_t i = 0; i != s->n && i != max; ++i) {
        const backend_t *b = s->b[i];
        backend_state_t *st = b->state;
        backend_stat_t *o = &out[i];
        memset(o, 0, sizeof(*o));
        snprintf(o->name, sizeof(o->name), "%s", b->conf.name);
        snprintf(o->address, sizeof(o->address), strchr(b->conf.address, ':') != NULL ? "[%s]:%u" : "%s:%u", b->conf.address,
                 (unsigned)b->conf.port);
        o->requests = atomic_load_explicit(&st->requests, memory_order_relaxed);
        o->errors = atomic_load_explicit(&st->errors, memory_order_relaxed);
        o->inflight = atomic_load_explicit(&st->inflight, memory_order_relaxed);
        o->healthy = backend_usable(b);
        o->has_healthcheck = b->has_hc;
        o->shield = b->conf.shield[0] != '\0';
        o->last_probe_ms = atomic_load_explicit(&st->last_probe_ms, memory_order_relaxed);
        o->probe_latency_us = atomic_load_explicit(&st->probe_latency_us, memory_order_relaxed);
        o->probes = atomic_load_explicit(&st->probes, memory_order_relaxed);
        o->probe_failures = atomic_load_explicit(&st->probe_failures, memory_order_relaxed);
    }
    size_t n = s->n;
    backend_set_unref(s);
    return n;
}
