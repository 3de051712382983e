/*
 * server/h1park.c — keep a waiting HTTP/1 request's connection registered with epoll (see h1park.h).
 */
#include "server/h1park.h"

/* The parked socket is readable: nothing was read; put it back as h2o left it, for h2o. */
static void on_parked_readable(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_socket_dont_read(sock, 0);
    h2o_socket_read_stop(sock);
}

int h1park_is_parked(const h2o_socket_t *sock)
{
    return sock->_cb.read == on_parked_readable;
}

static h2o_socket_t *http1_socket(h2o_req_t *req)
{
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return NULL;
    return req->conn->callbacks->get_socket(req->conn);
}

static void h1park_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot);

/* 1 when req's pathconf has the filter that unparks (a handler on another pathconf must not park) */
static int h1park_filtered(h2o_req_t *req)
{
    if (req->pathconf == NULL)
        return 0;
    for (size_t i = 0; i < req->pathconf->filters.size; i++)
        if (req->pathconf->filters.entries[i]->on_setup_ostream == h1park_on_setup_ostream)
            return 1;
    return 0;
}

void h1park_begin(h2o_req_t *req)
{
    /* its response started already (h2o_start_response ran the filters: h2o's reset_response zeroes the
     * index, each filter run advances it): the filter that unparks has run, so it may not park */
    if (req->_next_filter_index != 0)
        return;
    h2o_socket_t *sock = http1_socket(req);
    /* h2o stopped reading before the handler; a socket still reading is parked already, or not one we know */
    if (sock == NULL || h2o_socket_is_reading(sock) || !h1park_filtered(req))
        return;
    h2o_socket_dont_read(sock, 1);
    h2o_socket_read_start(sock, on_parked_readable);
}

/* Unpark req's connection, if parked: the filter, whenever a response starts. */
static void h1park_end(h2o_req_t *req)
{
    h2o_socket_t *sock = http1_socket(req);
    if (sock == NULL || !h1park_is_parked(sock))
        return;
    h2o_socket_dont_read(sock, 0);
    h2o_socket_read_stop(sock);
}

static void h1park_on_setup_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    h1park_end(req);
    h2o_setup_next_ostream(req, slot);
}

void h1park_register(h2o_pathconf_t *pathconf)
{
    h2o_filter_t *filter = h2o_create_filter(pathconf, sizeof(*filter));
    filter->on_setup_ostream = h1park_on_setup_ostream;
}
