/*
 * server/origin_idle.c — a worker's idle keep-alive connections to origins, kept on its
 * own event loop (see origin_idle.h).
 *
 * What it owns, per thread: ORIGIN_IDLE_MAX slots, the kept ones on a list (most recent
 * first) and the rest on a free list, and one h2o_timeout_t of the pool's idle time. A
 * kept socket's `data` is its slot; it reads with on_idle_readable, and anything it reads
 * (bytes no request asked for, the origin's close, an error) closes it: no response can be
 * owed on a connection that carried a complete one; a notice with nothing read changes
 * nothing. The timeout closes one left unused.
 *
 * A kept socket is still counted as taken by its pool (h2o's pool counts what it lent
 * out), and closing it gives that back through the pool's on_close callback: so the pool
 * must outlive it (origin_idle_forget_pool).
 */
#include "server/origin_idle.h"

#include <assert.h>
#include <stdlib.h>
#include "common/alloc.h"

typedef struct idle_slot {
    h2o_linklist_t link; /* on kept (most recent first) or free */
    h2o_socketpool_t *pool;
    h2o_socket_t *sock;
    h2o_timeout_entry_t timer;
} idle_slot_t;

static _Thread_local struct {
    int ready;
    h2o_loop_t *loop;
    h2o_timeout_t timeout;
    h2o_linklist_t kept, free_slots;
    size_t count;
    idle_slot_t *slots;
} T;

/* the slot back to the free list; its socket, no longer kept, to the caller */
static h2o_socket_t *slot_release(idle_slot_t *s)
{
    h2o_socket_t *sock = s->sock;
    h2o_timeout_unlink(&s->timer);
    h2o_linklist_unlink(&s->link);
    s->sock = NULL;
    s->pool = NULL;
    h2o_linklist_insert(&T.free_slots, &s->link);
    T.count--;
    sock->data = NULL;
    return sock;
}

static void slot_close(idle_slot_t *s)
{
    h2o_socket_close(slot_release(s)); /* the pool's on_close gives its count back */
}

static void on_idle_readable(h2o_socket_t *sock, const char *err)
{
    /* h2o may notify without new bytes (read_on_ready): nothing happened */
    if (err == NULL && sock->input->size == 0)
        return;
    /* closed, reset, or bytes nobody asked for: either way the connection is done */
    slot_close(sock->data);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    slot_close(H2O_STRUCT_FROM_MEMBER(idle_slot_t, timer, entry));
}

void origin_idle_thread_init(h2o_loop_t *loop, uint32_t idle_ms)
{
    assert(!T.ready);
    T.loop = loop;
    h2o_timeout_init(loop, &T.timeout, idle_ms);
    h2o_linklist_init_anchor(&T.kept);
    h2o_linklist_init_anchor(&T.free_slots);
    T.slots = alloc_xcalloc(ORIGIN_IDLE_MAX, sizeof(*T.slots), "origin idle");
    for (size_t i = 0; i != ORIGIN_IDLE_MAX; ++i) {
        T.slots[i].timer.cb = on_idle_timeout;
        h2o_linklist_insert(&T.free_slots, &T.slots[i].link);
    }
    T.count = 0;
    T.ready = 1;
}

void origin_idle_thread_dispose(void)
{
    if (!T.ready)
        return;
    while (!h2o_linklist_is_empty(&T.kept))
        slot_close(H2O_STRUCT_FROM_MEMBER(idle_slot_t, link, T.kept.next));
    h2o_timeout_dispose(T.loop, &T.timeout);
    free(T.slots);
    T.slots = NULL;
    T.ready = 0;
}

int origin_idle_put(h2o_socketpool_t *pool, h2o_socket_t *sock)
{
    if (!T.ready || sock->ssl != NULL || h2o_linklist_is_empty(&T.free_slots))
        return -1;
    idle_slot_t *s = H2O_STRUCT_FROM_MEMBER(idle_slot_t, link, T.free_slots.next);
    h2o_linklist_unlink(&s->link);
    h2o_linklist_insert(T.kept.next, &s->link); /* at the front: taken first */
    s->pool = pool;
    s->sock = sock;
    T.count++;
    sock->data = s;
    h2o_socket_read_start(sock, on_idle_readable); /* reading already: epoll is not touched */
    h2o_timeout_link(T.loop, &T.timeout, &s->timer);
    return 0;
}

h2o_socket_t *origin_idle_take(h2o_socketpool_t *pool)
{
    if (!T.ready)
        return NULL;
    for (h2o_linklist_t *l = T.kept.next; l != &T.kept; l = l->next) {
        idle_slot_t *s = H2O_STRUCT_FROM_MEMBER(idle_slot_t, link, l);
        if (s->pool == pool)
            return slot_release(s);
    }
    return NULL;
}

void origin_idle_forget_pool(h2o_socketpool_t *pool)
{
    if (!T.ready)
        return;
    for (h2o_linklist_t *l = T.kept.next; l != &T.kept;) {
        idle_slot_t *s = H2O_STRUCT_FROM_MEMBER(idle_slot_t, link, l);
        l = l->next;
        if (s->pool == pool)
            slot_close(s);
    }
}

size_t origin_idle_count(void)
{
    return T.count;
}
