/*
 * tests/unit/test_cluster_msg.c — a purge's bytes on the cluster bus (cluster/cluster_msg.h):
 * what a node encodes decodes to the same purge on every other node, and what no node would
 * encode (hostile or damaged bytes from the network) is refused, never read past.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "cluster/cluster_msg.h"

static purge_item_t item(const char *id, const char *key, size_t key_len)
{
    purge_item_t it;
    memset(&it, 0, sizeof(it));
    strcpy(it.id, id);
    it.key = (char *)key;
    it.key_len = key_len;
    return it;
}

START_TEST(round_trip_of_each_kind)
{
    static const char bin[] = {'a', 0, (char)0xff, ' ', 'b'};
    purge_item_t keys[] = {item("n1-1700000000-1", "one", 3), item("n1-1700000000-2", bin, sizeof(bin))};
    struct {
        purge_kind_t kind;
        int soft;
        purge_item_t *items;
        size_t n;
    } cases[] = {
        {PURGE_KEY, 0, keys, 1},
        {PURGE_KEY, 1, keys, 1},
        {PURGE_KEYS, 1, keys, 2},
        {PURGE_URL, 0, keys + 1, 1},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char *buf;
        size_t len;
        cluster_msg_t m;
        ck_assert_int_eq(cluster_msg_encode(cases[c].kind, cases[c].soft, cases[c].items, cases[c].n, &buf, &len), 0);
        ck_assert_int_eq(cluster_msg_decode(buf, len, &m), 0);
        ck_assert_int_eq(m.kind, cases[c].kind);
        ck_assert_int_eq(m.soft, cases[c].soft);
        ck_assert_uint_eq(m.num_items, cases[c].n);
        for (size_t i = 0; i < m.num_items; i++) {
            ck_assert_uint_eq(m.items[i].id_len, strlen(cases[c].items[i].id));
            ck_assert(memcmp(m.items[i].id, cases[c].items[i].id, m.items[i].id_len) == 0);
            ck_assert_uint_eq(m.items[i].key_len, cases[c].items[i].key_len);
            ck_assert(memcmp(m.items[i].key, cases[c].items[i].key, m.items[i].key_len) == 0);
        }
        /* every shorter prefix is refused: a truncated message is not a smaller purge */
        for (size_t cut = 0; cut < len; cut++) {
            char *p = malloc(cut + 1);
            memcpy(p, buf, cut);
            cluster_msg_t t;
            ck_assert_int_eq(cluster_msg_decode(p, cut, &t), -1);
            free(p);
        }
        cluster_msg_free(&m);
        free(buf);
    }
    /* purge-all carries an id and no key; it is never soft */
    purge_item_t all = item("n2-1-7", "", 0);
    char *buf;
    size_t len;
    cluster_msg_t m;
    ck_assert_int_eq(cluster_msg_encode(PURGE_ALL, 1, &all, 1, &buf, &len), 0);
    ck_assert_int_eq(cluster_msg_decode(buf, len, &m), 0);
    ck_assert_int_eq(m.kind, PURGE_ALL);
    ck_assert_int_eq(m.soft, 0);
    ck_assert_uint_eq(m.items[0].key_len, 0);
    cluster_msg_free(&m);
    free(buf);
}
END_TEST

START_TEST(what_no_node_would_send_is_refused)
{
    cluster_msg_t m;
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},
        {"ECP2\x01\x00\x00\x01\x05"
         "a-1-1\x00\x00\x00\x01k",
         19}, /* magic */
        {"ECP1\x09\x00\x00\x01\x05"
         "a-1-1\x00\x00\x00\x01k",
         19}, /* kind */
        {"ECP1\x01\x02\x00\x01\x05"
         "a-1-1\x00\x00\x00\x01k",
         19}, /* flags */
        {"ECP1\x01\x00\x00\x02\x05"
         "a-1-1\x00\x00\x00\x01k",
         19},                        /* two items for "key" */
        {"ECP1\x01\x00\x00\x00", 8}, /* no item */
        {"ECP1\x01\x00\x00\x01\x05"
         "a 1-1\x00\x00\x00\x01k",
         19},                                              /* id byte (echoed in JSON) */
        {"ECP1\x01\x00\x00\x01\x00\x00\x00\x00\x01k", 14}, /* empty id */
        {"ECP1\x01\x00\x00\x01\x05"
         "a-1-1\x00\x00\x00\x00",
         18}, /* empty key */
        {"ECP1\x01\x00\x00\x01\x05"
         "a-1-1\xff\xff\xff\xffk",
         19}, /* key length past the end */
        {"ECP1\x04\x00\x00\x01\x05"
         "a-1-1\x00\x00\x00\x01k",
         19}, /* "all" with a key */
        {"ECP1\x04\x01\x00\x01\x05"
         "a-1-1\x00\x00\x00\x00",
         18}, /* soft "all" */
        {"ECP1\x01\x00\x00\x01\x05"
         "a-1-1\x00\x00\x00\x01kX",
         20}, /* trailing bytes */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *p = malloc(bad[i].len + 1);
        memcpy(p, bad[i].bytes, bad[i].len);
        ck_assert_msg(cluster_msg_decode(p, bad[i].len, &m) == -1, "case %zu accepted", i);
        ck_assert_ptr_null(m.items);
        free(p);
    }
    ck_assert_int_eq(cluster_msg_decode("ECP1\x01\x00\x00\x01\x05"
                                        "a-1-1\x00\x00\x00\x01k",
                                        19, &m),
                     0);
    cluster_msg_free(&m);
}
END_TEST

START_TEST(what_cannot_be_carried_is_not_encoded)
{
    char *buf = NULL;
    size_t len;
    purge_item_t bad_id = item("no spaces", "k", 1), empty = item("a-1-1", "", 0), ok = item("a-1-1", "k", 1);
    ck_assert_int_eq(cluster_msg_encode(PURGE_KEY, 0, &bad_id, 1, &buf, &len), -1);
    ck_assert_int_eq(cluster_msg_encode(PURGE_KEY, 0, &empty, 1, &buf, &len), -1);
    ck_assert_int_eq(cluster_msg_encode(PURGE_KEY, 0, &ok, 0, &buf, &len), -1);
    purge_item_t two[] = {ok, ok};
    ck_assert_int_eq(cluster_msg_encode(PURGE_URL, 0, two, 2, &buf, &len), -1);
    ck_assert_ptr_null(buf);
    ck_assert(cluster_msg_id_ok("edge_1.x-1700000000-12", 22));
    ck_assert(!cluster_msg_id_ok("a\"b", 3));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cluster_msg");
    TCase *t = tcase_create("pure");
    tcase_add_test(t, round_trip_of_each_kind);
    tcase_add_test(t, what_no_node_would_send_is_refused);
    tcase_add_test(t, what_cannot_be_carried_is_not_encoded);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
