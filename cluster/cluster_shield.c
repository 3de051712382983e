/*
 * cluster/cluster_shield.c — shields are cluster nodes: every response a cluster node serves
 * says how far it has applied the purge stream (Edgecache-Purge-Seq), and a node does not
 * store what it fetched from a peer (its shield) whose sequence is below its own at the
 * time of the request: that peer may not yet have applied a purge this node has, so its
 * copy may be one the purge removed. The response is still served, once; it is counted.
 *
 * The header a peer sends is untrusted: only a well-formed decimal below our sequence stops
 * a store (an origin that sends one can only keep its own responses out of the cache). What
 * a fetch got from upstream is never passed on: each node sends its own.
 * Any thread (atomics only).
 */
#include "cluster/cluster.h"
#include "cluster/cluster_int.h"

#include <stdio.h>
#include <string.h>

uint64_t cluster_applied_seq(void)
{
    return cl.on ? atomic_load_explicit(&cl.applied_seq, memory_order_acquire) : 0;
}

size_t cluster_seq_header_value(char *buf, size_t cap)
{
    if (!cl.on || cap < 21)
        return 0;
    int n = snprintf(buf, cap, "%llu", (unsigned long long)cluster_applied_seq());
    return n > 0 ? (size_t)n : 0;
}

int cluster_peer_copy_is_stale(const char *value, size_t len, uint64_t since)
{
    if (!cl.on || value == NULL || len == 0 || len > 20)
        return 0;
    uint64_t seq = 0;
    for (size_t i = 0; i < len; i++) {
        if (value[i] < '0' || value[i] > '9' || seq > (UINT64_MAX - 9) / 10)
            return 0;
        seq = seq * 10 + (uint64_t)(value[i] - '0');
    }
    if (seq >= since)
        return 0;
    atomic_fetch_add(&cl.n_stale_peer, 1);
    return 1;
}
