/*
 * server/proxy_purge.c — PURGE on the proxy listener.
 *
 * Authorised by the admin module, purged through the store's writer; the answer is sent
 * when the purge is durable (a message from the writer) and, when there is a shield, once
 * the shield applied it too (a second message, from the backend prober's thread). The
 * purge record is refcounted by the request's pool and the pending message, both released
 * on the worker's thread; a client that goes away only clears the request pointer.
 *
 * Kept apart as it was in server/proxy.c: the purge module (issue 20) replaces it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "admin-api/admin.h"
#include "server/backend.h"
#include "server/proxy_int.h"
#include "server/stats.h"

/* ---------------------------------------------------------------- PURGE on the proxy listener */

typedef struct proxy_purge {
    h2o_multithread_message_t super;
    worker_t *w;
    h2o_req_t *req; /* NULL once the client went away */
    int refs;       /* 2: the request's pool and the pending message; both on the worker thread */
    store_purge_result_t res;
    int soft;
    int forwarding;     /* the local purge is done; the message comes back once the shield answered */
    char *forward_path; /* "/purge/http://<host><path>" for the shield's admin API (malloc'd) */
    size_t forward_path_len;
} proxy_purge_t;

static void proxy_purge_unref(proxy_purge_t *pp)
{
    if (--pp->refs == 0) {
        free(pp->forward_path);
        free(pp);
    }
}

static void proxy_purge_dispose(void *p)
{
    proxy_purge_t **slot = p;
    (*slot)->req = NULL;
    proxy_purge_unref(*slot);
}

/* writer thread (or the backend prober, for the shield's answer): hand the result to the worker's loop */
static void proxy_purge_done(void *arg, const store_purge_result_t *res)
{
    proxy_purge_t *pp = arg;
    pp->res = *res;
    h2o_multithread_send_message(&pp->w->purge_receiver, &pp->super);
}

void proxy_on_purge_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        proxy_purge_t *pp = H2O_STRUCT_FROM_MEMBER(proxy_purge_t, super.link, messages->next);
        h2o_linklist_unlink(&pp->super.link);
        if (!pp->forwarding && pp->res.err == 0) {
            /* applied here: now on the shield (when there is one) before we acknowledge */
            pp->forwarding = 1;
            int rc = backend_forward_purge(pp->forward_path, pp->forward_path_len, NULL, 0, NULL, 0, pp->soft,
                                           proxy_purge_done, pp);
            if (rc == 0)
                continue; /* the message (and its reference) comes back with the shield's answer */
            if (rc < 0)
                pp->res.err = rc;
        }
        if (pp->req != NULL) {
            h2o_req_t *req = pp->req;
            if (pp->res.err == BACKEND_EFORWARD || pp->res.err == BACKEND_EINVAL) {
                admin_send_json_error(req, 502, "Purge failed", "shield: the purge could not be applied on the shield node");
            } else if (pp->res.err != 0) {
                admin_send_json_error(req, 503, "Purge failed", "the store could not commit the purge");
            } else {
                char id[96], body[160];
                admin_next_purge_id(proxy_globals.admin, id, sizeof(id));
                stats_note_purge_req(admin_request_wants_soft_purge(req) ? STATS_PURGE_SOFT : STATS_PURGE_URL, req, 1);
                int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"id\":\"%s\"}", id);
                admin_send_json(req, 200, body, (size_t)n);
            }
        }
        proxy_purge_unref(pp);
    }
}

void proxy_handle_purge(h2o_req_t *req, const char *key, size_t key_len)
{
    worker_t *w = worker_of_req(req);
    if (proxy_globals.admin != NULL && admin_authorize_proxy_purge_or_respond(proxy_globals.admin, req) != 0)
        return;
    int soft = admin_request_wants_soft_purge(req);
    proxy_purge_t *pp = calloc(1, sizeof(*pp));
    if (pp == NULL)
        abort();
    pp->w = w;
    pp->req = req;
    pp->refs = 2;
    pp->soft = soft;
    /* the scheme is spelled out: the shield reads a leading "http:/" or "http%3a%2f%2f" as one,
     * so a Host of "http:" with a path of "/victim.example/x" would purge another URL there */
    static const char prefix[] = "/purge/http://";
    size_t plen = sizeof(prefix) - 1;
    pp->forward_path_len = plen + req->authority.len + req->path.len;
    pp->forward_path = malloc(pp->forward_path_len + 1);
    if (pp->forward_path == NULL)
        abort();
    memcpy(pp->forward_path, prefix, plen);
    memcpy(pp->forward_path + plen, req->authority.base, req->authority.len);
    memcpy(pp->forward_path + plen + req->authority.len, req->path.base, req->path.len);
    pp->forward_path[pp->forward_path_len] = '\0';
    proxy_purge_t **slot = h2o_mem_alloc_shared(&req->pool, sizeof(*slot), proxy_purge_dispose);
    *slot = pp;
    atomic_fetch_add_explicit(&w->counters.purges, 1, memory_order_relaxed);
    store_purge_key_url(proxy_globals.store, key, key_len, soft, proxy_purge_done, pp);
}
