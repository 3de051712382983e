/*
 * server/date_header.c — an h2o filter that sends the Date the handler chose (see
 * date_header.h).
 *
 * How h2o 2.2 writes Date: when it flattens a response head (lib/http1.c flatten_headers,
 * lib/http2 send_headers), it asks h2o_get_timestamp() for the context's cached timestamp
 * strings and writes their rfc1123 form. That happens synchronously inside the first send
 * that reaches the final output stream. So this filter, for a response that carries a `date`
 * header, removes the header and puts an output stream in front of the final one; on the
 * send that carries the head, it points the context's timestamp cache at a copy holding the
 * wanted date (the log form stays the current time), passes the send on, and puts the cache
 * back before returning.
 *
 * Invariants. The swap lasts exactly one synchronous call on the context's own thread (one
 * context per worker loop), so nothing else can see it. h2o_get_timestamp() is called first
 * so that the cache is current for this loop turn: h2o only refreshes it when the loop's
 * clock moved, which cannot happen inside the call, so it will not free or replace our copy.
 * The copy is a shared allocation of the request's pool: h2o may link it into another pool
 * (h2o_get_timestamp does, e.g. for the next request on the connection), and reference
 * counting keeps it alive; we hold a reference of our own while it is installed.
 *
 * An empty in-progress send does not reach the final stream (h2o defers it), so the head goes
 * out with a later send; the swap waits for that one.
 *
 * date_header_add hands a checked date to the filter directly (the proxy's every response):
 * the header's value points into the shared timestamp block the filter would otherwise parse
 * the value into. A thread-local reference to the last such block, until the filter takes it
 * (or the next one replaces it), keeps its address from being reused, so a pointer comparison
 * is proof the value is that block's.
 */
#include <string.h>
#include "server/cache_policy.h"
#include "server/date_header.h"

typedef struct date_ostream {
    h2o_ostream_t super;
    h2o_timestamp_string_t *date; /* in the request pool (shared); NULL once the head is out */
} date_ostream_t;

static void date_on_send(h2o_ostream_t *ostr, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt, h2o_send_state_t state)
{
    date_ostream_t *self = (void *)ostr;
    h2o_timestamp_string_t *date = self->date;
    if (date == NULL || (h2o_send_state_is_in_progress(state) && bufcnt == 0)) {
        h2o_ostream_send_next(ostr, req, bufs, bufcnt, state);
        return;
    }
    self->date = NULL; /* the request may be gone when the send returns */
    h2o_context_t *ctx = req->conn->ctx;
    h2o_get_timestamp(ctx, NULL, NULL);
    h2o_timestamp_string_t *now = ctx->_timestamp_cache.value;
    memcpy(date->log, now->log, sizeof(date->log));
    h2o_mem_addref_shared(date);
    ctx->_timestamp_cache.value = date;
    h2o_ostream_send_next(ostr, req, bufs, bufcnt, state);
    ctx->_timestamp_cache.value = now;
    h2o_mem_release_shared(date);
}

/*
 * The last date date_header_add made on this thread, with a reference of ours: while we hold
 * it its bytes cannot be reused, so a Date header whose value points at them is that one.
 */
static _Thread_local h2o_timestamp_string_t *added;

void date_header_add(h2o_req_t *req, const char fixdate[29])
{
    h2o_timestamp_string_t *date = h2o_mem_alloc_shared(&req->pool, sizeof(*date), NULL);
    memcpy(date->rfc1123, fixdate, 29);
    date->rfc1123[29] = '\0';
    if (added != NULL)
        h2o_mem_release_shared(added);
    h2o_mem_addref_shared(date);
    added = date;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_DATE, NULL, date->rfc1123, 29);
}

void date_header_thread_done(void)
{
    if (added != NULL)
        h2o_mem_release_shared(added);
    added = NULL;
}

static void date_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    h2o_timestamp_string_t *date = NULL;
    ssize_t i;
    while ((i = h2o_find_header(&req->res.headers, H2O_TOKEN_DATE, -1)) != -1) {
        const h2o_iovec_t *v = &req->res.headers.entries[i].value;
        char fixdate[30];
        if (date == NULL && added != NULL && v->base == added->rfc1123 && v->len == 29) {
            date = added; /* date_header_add's, checked when it was made: no second parse */
            added = NULL;
            h2o_mem_release_shared(date); /* ours; the pool's reference keeps it */
        } else if (date == NULL && policy_http_date_fixdate(v->base, v->len, fixdate) == 0) {
            date = h2o_mem_alloc_shared(&req->pool, sizeof(*date), NULL);
            memset(date, 0, sizeof(*date));
            memcpy(date->rfc1123, fixdate, sizeof(date->rfc1123)); /* IMF-fixdate: the 29 bytes h2o writes */
        }
        h2o_delete_header(&req->res.headers, i);
    }
    if (date != NULL) {
        date_ostream_t *ostr = (void *)h2o_add_ostream(req, sizeof(*ostr), slot);
        ostr->super.do_send = date_on_send;
        ostr->date = date;
        slot = &ostr->super.next;
    }
    h2o_setup_next_ostream(req, slot);
}

void date_header_register(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = date_on_setup_ostream;
}
