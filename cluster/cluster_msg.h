/*
 * cluster/cluster_msg.h — one purge on the cluster bus: its bytes in a purge stream message.
 *
 * A message is the whole of one purge job (cluster/cluster.h publishes one per job, with the
 * first item's purge id as its NATS message id). Every byte of a message read from the bus is
 * untrusted: anyone who can publish to the stream's subject can write one, so decoding checks
 * every length and every byte that is echoed later (ids appear in JSON answers unescaped).
 *
 * Encoding (all integers big-endian):
 *   "ECP1"  u8 kind (1 key, 2 keys, 3 url, 4 all)  u8 flags (bit 0: soft)  u16 items (1..CLUSTER_MSG_MAX_ITEMS)
 *   per item: u8 id length (1..PURGE_ID_CAP-1)  id bytes ([A-Za-z0-9._-])  u32 key length  key bytes
 * key: 1..CLUSTER_MSG_MAX_KEY bytes (any bytes), none for "all". "key", "url" and "all" carry
 * exactly one item. Nothing may follow the last item.
 */
#ifndef EDGECACHE_CLUSTER_MSG_H
#define EDGECACHE_CLUSTER_MSG_H

#include <stddef.h>
#include <stdint.h>
#include "server/purge.h"

#define CLUSTER_MSG_MAX_ITEMS 4096
#define CLUSTER_MSG_MAX_KEY 65536

/** One decoded item: both point into the message's bytes (valid while they are). */
typedef struct cluster_msg_item {
    const char *id;
    size_t id_len;
    const char *key;
    size_t key_len;
} cluster_msg_item_t;

/** A decoded message; items is malloc'd (cluster_msg_free). */
typedef struct cluster_msg {
    purge_kind_t kind;
    int soft;
    size_t num_items;
    cluster_msg_item_t *items;
} cluster_msg_t;

/**
 * Encode a purge (its kind, softness and items with their ids) into a new buffer (*out,
 * malloc'd, the caller frees; *out_len). Returns 0, or -1 when the purge cannot be carried
 * (too many items, an id or a key out of bounds): nothing allocated. Dies on out-of-memory.
 */
int cluster_msg_encode(purge_kind_t kind, int soft, const purge_item_t *items, size_t num_items, char **out, size_t *out_len);

/**
 * Decode and validate buf[0..len) (untrusted). Returns 0 with *msg filled (free with
 * cluster_msg_free; its items borrow buf), or -1 (nothing to free) when the bytes are not a
 * well-formed message. Never reads outside buf.
 */
int cluster_msg_decode(const void *buf, size_t len, cluster_msg_t *msg);

/** Free what cluster_msg_decode allocated. */
void cluster_msg_free(cluster_msg_t *msg);

/** 1 when id[0..len) may be a purge id on the bus: 1..PURGE_ID_CAP-1 bytes of [A-Za-z0-9._-]. */
int cluster_msg_id_ok(const char *id, size_t len);

#endif
