/*
 * server/h1park.c — keep a waiting HTTP/1 request's connection polled for input (see h1park.h).
 */
#include "server/h1park.h"

#include <string.h>

/* A parked connection's read: keep what came (h2o's after the answer), up to a bound. */
static void on_parked_read(h2o_socket_t *sock, const char *err)
{
    if (err != NULL || sock->input->size >= H1PARK_MAX_INPUT)
        h2o_socket_read_stop(sock); /* h2o reads the rest, or meets the close again, once it reads */
}

void h1park_begin(h1park_t *p, h2o_req_t *req)
{
    p->sock = NULL;
    p->held = NULL;
    if (req->version >= 0x200 || req->conn->callbacks->get_socket == NULL)
        return;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    /* h2o stopped reading before the handler; a socket still reading is not one we know */
    if (sock == NULL || sock->ssl != NULL || h2o_socket_is_reading(sock) || sock->input->bytes == NULL)
        return;
    p->sock = sock;
    p->held = sock->input;
    h2o_buffer_init(&sock->input, p->held->_prototype);
    h2o_socket_read_start(sock, on_parked_read);
}

void h1park_end(h1park_t *p, h2o_req_t *req)
{
    if (p->sock == NULL)
        return;
    h2o_socket_t *sock = p->sock;
    h2o_buffer_t *came = sock->input, *held = p->held;
    p->sock = NULL;
    p->held = NULL;
    /* as h2o left it: not reading (stop and h2o's start after the answer fall in one loop turn: no syscall) */
    h2o_socket_read_stop(sock);
    sock->input = held;
    if (came->size != 0) {
        size_t room = held->capacity - (size_t)(held->bytes - held->_buf) - held->size;
        if (req != NULL && came->size <= room) {
            memcpy(held->bytes + held->size, came->bytes, came->size);
            held->size += came->size;
        } else if (req != NULL) {
            req->http1_is_persistent = 0; /* kept, they would move the request's bytes: close after the answer */
        }
    }
    h2o_buffer_dispose(&came);
}
