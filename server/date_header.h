/*
 * server/date_header.h — send the response's own Date instead of h2o's clock.
 *
 * h2o 2.2 writes "Date: <now>" into every response head itself and has no setting to give
 * another value, while a cache must not replace the origin's Date on what it serves
 * (RFC 9110 6.6.1: a hit carries the Date the origin sent, and Age says how old it is).
 * This h2o filter takes a `date` header the handler put in req->res.headers out of the list
 * and makes h2o write that date in its place.
 */
#ifndef EDGECACHE_DATE_HEADER_H
#define EDGECACHE_DATE_HEADER_H

#include <h2o.h>

/**
 * Register the filter on `pathconf` (at start-up, before any request). From then on, a
 * response whose res.headers hold a `date` header (at h2o_start_response time) goes out with
 * that date, in IMF-fixdate, as its only Date; the header entry is removed. A value that does
 * not parse as an HTTP-date is dropped, and so is every `date` entry after the first. A
 * response without one keeps h2o's Date (now).
 */
void date_header_register(h2o_pathconf_t *pathconf);

/**
 * Give the response the Date `fixdate` (29 bytes, an IMF-fixdate the caller has checked, e.g.
 * with policy_http_date_fixdate) for the filter to send without parsing it again. The header
 * and the block its value points into belong to req's pool. Worker threads (any h2o loop).
 */
void date_header_add(h2o_req_t *req, const char fixdate[29]);

/** Drop this thread's reference to the last date date_header_add made (a worker's tear-down). */
void date_header_thread_done(void);

#endif
