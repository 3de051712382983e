/*
 * server/inflow.h — what each client connection of the proxy listener has sent that no
 * handler has taken yet, and the budget that bounds it.
 *
 * h2o 2.2.5 reads a request's whole body into memory before the handler runs, and an
 * HTTP/2 connection carries 100 streams: bodies being received were held with no bound but
 * --max-request-body each (two h2c connections sending 100 unfinished 4 MB bodies took the
 * process from 7 MB to 812 MB). This module counts those bytes per connection as they are
 * read, takes them off when the request reaches the handler, and closes a connection that
 * would take them past --request-body-memory or that holds more than INFLOW_CONN_BODIES
 * request bodies' worth. Apart from them, the bodies the proxy holds while origins answer
 * are bounded by the same figure (inflow_body_hold: 503 beyond it): at most twice it in all.
 * See server/inflow.c for how.
 *
 * Threads: each function runs on the worker thread whose loop owns the connection, but for
 * inflow_arriving_bytes (any thread).
 */
#ifndef EDGECACHE_INFLOW_H
#define EDGECACHE_INFLOW_H

#include <stdint.h>
#include <h2o.h>

struct worker;

/* What one connection may hold before it counts against the budget: a request's head and
 * what h2o's own buffers hold anyway, so GETs never touch the shared counter. */
#define INFLOW_ALLOWANCE (16 * 1024)
/* A connection is closed once it holds this many bodies of --max-request-body (HTTP/2
 * uploads in parallel), whatever the budget says. */
#define INFLOW_CONN_BODIES 4

/** Set the limits (before the workers start): one body's limit, and the budget of the bodies
 * arriving and, apart, of those the proxy holds. `closed` is called when a counted connection closes, with its worker. */
void inflow_configure(uint64_t max_request_body, uint64_t budget, void (*closed)(struct worker *w));

/** Set up w's lists and learn h2o's read callbacks (its thread, before it accepts, once
 * w->loop and w->accept_ctx are ready). */
void inflow_worker_init(struct worker *w);

/** Hand sock, just accepted by w, to h2o_accept(accept_ctx, sock), counted: its on_close is
 * this module's (it calls `closed`, also for a close inside h2o_accept). Allocates the
 * connection's record, freed at its close. */
void inflow_accept(struct worker *w, h2o_accept_ctx_t *accept_ctx, h2o_socket_t *sock);

/** After each turn of w's loop (now_ms: the monotonic clock): put the counting back on the
 * connections h2o started reading with its own callback since (see server/inflow.c). */
void inflow_turn(struct worker *w, int64_t now_ms);

typedef struct inflow_conn inflow_conn_t;

/** req reached the handler: its bytes are the handler's from now on, and its body counts as
 * held until req is disposed, whatever its answer. Call first thing in the handler, for every
 * request (one not of a counted connection is only held). Returns the
 * record of an HTTP/1 request's connection, to be given to inflow_request_done when req is
 * disposed (h2o disposes a request before it closes its connection), or NULL. */
inflow_conn_t *inflow_request_taken(h2o_req_t *req);

/** The HTTP/1 request that inflow_request_taken returned c for is being disposed. */
void inflow_request_done(inflow_conn_t *c);

/** 1 when the bodies the handler holds (inflow_request_taken) are past the budget: a request
 * with a body is then answered 503 (its body still counts until it is gone). */
int inflow_bodies_over_budget(void);

/** Bytes of request bodies counted against the budget: still arriving (beyond each
 * connection's allowance), and held by the handler. Relaxed reads; any thread. */
uint64_t inflow_arriving_bytes(void);
uint64_t inflow_held_bytes(void);

/** --request-body-memory, as inflow_configure was given it. */
uint64_t inflow_budget(void);

#endif
