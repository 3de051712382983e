/*
 * tests/unit/test_tls.c — server/tls_ticket.c's key rotation, on a clock the test gives:
 * new tickets always get the current key; a ticket under the previous key is still taken
 * (and renewed) for one more period; an older one is refused (a full handshake).
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include "server/tls_int.h"

#define HOUR_MS (3600 * 1000LL)

START_TEST(ticket_keys_rotate)
{
    unsigned char a[16], b[16], c[16], got[16];
    int64_t t0 = 10 * HOUR_MS; /* any monotonic time */
    ck_assert_int_eq(tls_ticket_key_at(NULL, t0, a), 1);
    /* the same key for the whole hour */
    ck_assert_int_eq(tls_ticket_key_at(NULL, t0 + HOUR_MS - 1, got), 1);
    ck_assert(memcmp(got, a, 16) == 0);
    ck_assert_int_eq(tls_ticket_key_at(a, t0 + HOUR_MS - 1, got), 1);
    /* an hour on: a new key for new tickets; the old one still opens tickets, which are renewed */
    ck_assert_int_eq(tls_ticket_key_at(NULL, t0 + HOUR_MS, b), 1);
    ck_assert(memcmp(a, b, 16) != 0);
    ck_assert_int_eq(tls_ticket_key_at(a, t0 + HOUR_MS + 1, got), 2);
    ck_assert_int_eq(tls_ticket_key_at(b, t0 + HOUR_MS + 1, got), 1);
    /* another hour: the first key is gone */
    ck_assert_int_eq(tls_ticket_key_at(NULL, t0 + 2 * HOUR_MS, c), 1);
    ck_assert(memcmp(c, b, 16) != 0 && memcmp(c, a, 16) != 0);
    ck_assert_int_eq(tls_ticket_key_at(a, t0 + 2 * HOUR_MS, got), 0);
    ck_assert_int_eq(tls_ticket_key_at(b, t0 + 2 * HOUR_MS, got), 2);
    /* a name nobody made */
    unsigned char zero[16] = {0};
    ck_assert_int_eq(tls_ticket_key_at(zero, t0 + 2 * HOUR_MS, got), 0);
    tls_ticket_shutdown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tls");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, ticket_keys_rotate);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
