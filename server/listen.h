/*
 * server/listen.h — the listening sockets of the proxy (--listen), admin
 * (--admin-listen) and metrics (--metrics-listen) addresses.
 */
#ifndef EDGECACHE_LISTEN_H
#define EDGECACHE_LISTEN_H

#include <stddef.h>
#include <stdint.h>
#include "server/config.h"

typedef enum listen_mode {
    LISTEN_ALONE,       /* the only socket on the address */
    LISTEN_GROUP_FIRST, /* the first of a SO_REUSEPORT group shared by one process's threads */
    LISTEN_GROUP_JOIN,  /* a later one of that group, on the port the first one got */
} listen_mode_t;

/**
 * Open a listening TCP socket (close-on-exec, blocking) on a->host (empty: every
 * address) and `port` (it overrides a->port; 0 picks an ephemeral port). Returns 0
 * with the socket in *fd_out and the port it is bound to in *port_out, or -1 with
 * "<flag> host:port: reason" in err.
 *
 * LISTEN_GROUP_FIRST first binds a plain socket (SO_REUSEADDR only) to the address and
 * closes it, and fails with EADDRINUSE if anyone listens there: SO_REUSEPORT would
 * otherwise let a second edgecache started on the same address join the group and
 * silently take a share of the connections. For port 0 that also picks the port the
 * group then binds.
 */
int listen_open(const config_addr_t *a, const char *flag, uint16_t port, listen_mode_t mode, int *fd_out, uint16_t *port_out,
                char *err, size_t errlen);

#endif
