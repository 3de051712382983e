/*
 * tests/fuzz/fuzz_cluster_msg.c — cluster_msg_decode: a purge read from the cluster bus,
 * which anyone who can publish to the stream's subject can write.
 *
 * Input: the message's bytes. Invariants: decoding never reads outside the input; what it
 * accepts has the shape the purge module takes (a kind, 1..max items, "key"/"url"/"all"
 * with exactly one, ids of [A-Za-z0-9._-] that fit a purge id, keys inside the input and
 * within bounds, none for "all"); and encoding what was decoded gives back the same bytes.
 */
#include <stdlib.h>
#include <string.h>
#include "cluster/cluster_msg.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a copy of exactly `size` bytes on the heap, so that ASan sees any read past it */
    uint8_t *buf = malloc(size != 0 ? size : 1);
    if (size != 0)
        memcpy(buf, data, size);
    cluster_msg_t m;
    if (cluster_msg_decode(buf, size, &m) != 0) {
        FUZZ_CHECK(m.items == NULL && m.num_items == 0);
        free(buf);
        return 0;
    }
    FUZZ_CHECK(m.num_items >= 1 && m.num_items <= CLUSTER_MSG_MAX_ITEMS);
    FUZZ_CHECK(m.kind == PURGE_KEYS || m.num_items == 1);
    purge_item_t *items = calloc(m.num_items, sizeof(*items));
    for (size_t i = 0; i < m.num_items; i++) {
        const cluster_msg_item_t *it = &m.items[i];
        FUZZ_CHECK(cluster_msg_id_ok(it->id, it->id_len));
        FUZZ_CHECK((const uint8_t *)it->id >= buf && (const uint8_t *)it->id + it->id_len <= buf + size);
        FUZZ_CHECK(m.kind == PURGE_ALL ? it->key_len == 0 : it->key_len >= 1 && it->key_len <= CLUSTER_MSG_MAX_KEY);
        if (it->key_len > 0)
            FUZZ_CHECK((const uint8_t *)it->key >= buf && (const uint8_t *)it->key + it->key_len <= buf + size);
        memcpy(items[i].id, it->id, it->id_len);
        items[i].key = (char *)it->key;
        items[i].key_len = it->key_len;
    }
    char *out = NULL;
    size_t out_len = 0;
    FUZZ_CHECK(cluster_msg_encode(m.kind, m.soft, items, m.num_items, &out, &out_len) == 0);
    FUZZ_CHECK(out_len == size && memcmp(out, buf, size) == 0);
    free(out);
    free(items);
    cluster_msg_free(&m);
    free(buf);
    return 0;
}
