/*
 * cluster/cluster_msg.c — the bytes of a purge on the bus (the format is in cluster_msg.h).
 *
 * Pure: no I/O, no globals, any thread. Decoding never trusts a length before checking it
 * against what is left of the buffer, and refuses anything it would not have written itself,
 * so that what reaches the purge module is what some node's purge module made.
 */
#include "cluster/cluster_msg.h"

#include <stdlib.h>
#include <string.h>
#include "common/alloc.h"

#define MSG_MAGIC "ECP1"
#define MSG_HEAD 8 /* magic, kind, flags, item count */

static int kind_code(purge_kind_t kind)
{
    switch (kind) {
    case PURGE_KEY: return 1;
    case PURGE_KEYS: return 2;
    case PURGE_URL: return 3;
    case PURGE_ALL: return 4;
    }
    return 0;
}

int cluster_msg_id_ok(const char *id, size_t len)
{
    if (len == 0 || len >= PURGE_ID_CAP)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* the rules both sides share: how many items a kind carries and how long their keys are */
static int shape_ok(purge_kind_t kind, size_t num_items)
{
    if (num_items == 0 || num_items > CLUSTER_MSG_MAX_ITEMS)
        return 0;
    return kind == PURGE_KEYS || num_items == 1;
}

static int key_ok(purge_kind_t kind, size_t key_len)
{
    return kind == PURGE_ALL ? key_len == 0 : key_len >= 1 && key_len <= CLUSTER_MSG_MAX_KEY;
}

int cluster_msg_encode(purge_kind_t kind, int soft, const purge_item_t *items, size_t num_items, char **out, size_t *out_len)
{
    int code = kind_code(kind);
    if (code == 0 || !shape_ok(kind, num_items))
        return -1;
    size_t len = MSG_HEAD;
    for (size_t i = 0; i < num_items; i++) {
        size_t id_len = strlen(items[i].id);
        size_t key_len = kind == PURGE_ALL ? 0 : items[i].key_len;
        if (!cluster_msg_id_ok(items[i].id, id_len) || !key_ok(kind, key_len))
            return -1;
        len += 1 + id_len + 4 + key_len;
    }
    unsigned char *p = alloc_xmalloc(len, "cluster message");
    size_t o = 0;
    memcpy(p, MSG_MAGIC, 4);
    p[4] = (unsigned char)code;
    p[5] = soft && kind != PURGE_ALL ? 1 : 0;
    p[6] = (unsigned char)(num_items >> 8);
    p[7] = (unsigned char)num_items;
    o = MSG_HEAD;
    for (size_t i = 0; i < num_items; i++) {
        size_t id_len = strlen(items[i].id);
        uint32_t key_len = kind == PURGE_ALL ? 0 : (uint32_t)items[i].key_len;
        p[o++] = (unsigned char)id_len;
        memcpy(p + o, items[i].id, id_len);
        o += id_len;
        p[o++] = (unsigned char)(key_len >> 24);
        p[o++] = (unsigned char)(key_len >> 16);
        p[o++] = (unsigned char)(key_len >> 8);
        p[o++] = (unsigned char)key_len;
        if (key_len != 0)
            memcpy(p + o, items[i].key, key_len);
        o += key_len;
    }
    *out = (char *)p;
    *out_len = o;
    return 0;
}

int cluster_msg_decode(const void *buf, size_t len, cluster_msg_t *msg)
{
    const unsigned char *p = buf;
    memset(msg, 0, sizeof(*msg));
    if (p == NULL || len < MSG_HEAD || memcmp(p, MSG_MAGIC, 4) != 0)
        return -1;
    switch (p[4]) {
    case 1: msg->kind = PURGE_KEY; break;
    case 2: msg->kind = PURGE_KEYS; break;
    case 3: msg->kind = PURGE_URL; break;
    case 4: msg->kind = PURGE_ALL; break;
    default: return -1;
    }
    if ((p[5] & ~1u) != 0 || (msg->kind == PURGE_ALL && p[5] != 0))
        return -1;
    msg->soft = p[5] & 1;
    size_t n = ((size_t)p[6] << 8) | p[7];
    if (!shape_ok(msg->kind, n))
        return -1;
    cluster_msg_item_t *items = alloc_xcalloc(n, sizeof(*items), "cluster message");
    size_t o = MSG_HEAD;
    for (size_t i = 0; i < n; i++) {
        if (len - o < 1)
            goto bad;
        size_t id_len = p[o++];
        if (len - o < id_len || !cluster_msg_id_ok((const char *)p + o, id_len))
            goto bad;
        items[i].id = (const char *)p + o;
        items[i].id_len = id_len;
        o += id_len;
        if (len - o < 4)
            goto bad;
        size_t key_len = ((size_t)p[o] << 24) | ((size_t)p[o + 1] << 16) | ((size_t)p[o + 2] << 8) | p[o + 3];
        o += 4;
        if (!key_ok(msg->kind, key_len) || len - o < key_len)
            goto bad;
        items[i].key = (const char *)p + o;
        items[i].key_len = key_len;
        o += key_len;
    }
    if (o != len)
        goto bad;
    msg->num_items = n;
    msg->items = items;
    return 0;
bad:
    free(items);
    memset(msg, 0, sizeof(*msg));
    return -1;
}

void cluster_msg_free(cluster_msg_t *msg)
{
    free(msg->items);
    msg->items = NULL;
    msg->num_items = 0;
}
