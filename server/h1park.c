/*
 * server/h1park.c — keep a waiting HTTP/1 request's connection registered with epoll (see h1park.h).
 */
#include "server/h1park.h"

/* The parked socket is readable: nothing was read; leave it to h2o, and stop being told. */
static void on_parked_readable(h2o_socket_t *sock, const char *err)
{
    (void)err;
    h2o_socket_read_stop(sock);
}

void h1park_begin(h1park_t *p, h2o_req_t *req)
{
    p->sock = NULL;
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    /* h2o stopped reading before the handler; a socket still reading is not one we know */
    if (sock == NULL || h2o_socket_is_reading(sock))
        return;
    p->sock = sock;
    h2o_socket_dont_read(sock, 1);
    h2o_socket_read_start(sock, on_parked_readable);
}

void h1park_end(h1park_t *p)
{
    if (p->sock == NULL)
        return;
    h2o_socket_dont_read(p->sock, 0);
    h2o_socket_read_stop(p->sock);
    p->sock = NULL;
}
