/*
 * tests/fuzz/fuzz_lmdb_meta.c — the LMDB meta-page validator (store_check_meta), which
 * reads the first bytes of a data.mdb that may be truncated or overwritten.
 *
 * Input: u64 LE file size (taken modulo 2^40), then the head of the file (both meta
 * pages when it is long enough). The head is passed in a buffer of exactly its size, so a
 * read past it is an ASan report.
 *
 * Invariants for a head that passes: the page size is a power of two in LMDB's range and
 * divides the file size; the last page is at least 1 and its offset cannot overflow; both
 * tree roots are empty or pages inside the file and at most last_pg. A refusal has a
 * one-line message.
 */
#include <string.h>
#include "storage/store_check.h"
#include "storage/le.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t file_size = le_get_u64(data) & (((uint64_t)1 << 40) - 1);
    size_t head_len = size - 8;
    uint8_t *head = malloc(head_len ? head_len : 1);
    if (head == NULL)
        abort();
    memcpy(head, data + 8, head_len);
    store_check_meta_t m;
    char err[256] = "";
    int rc = store_check_meta(head, head_len, file_size, &m, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == STORE_CHECK_EDAMAGED);
    if (rc == 0) {
        FUZZ_CHECK(m.psize >= 512 && m.psize <= 32768 && (m.psize & (m.psize - 1)) == 0);
        FUZZ_CHECK(file_size % m.psize == 0);
        FUZZ_CHECK(m.last_pg >= 1 && m.last_pg <= (UINT64_MAX / 2) / m.psize);
        FUZZ_CHECK(m.main_root == UINT64_MAX ||
                   (m.main_root >= 2 && m.main_root <= m.last_pg && m.main_root < file_size / m.psize));
        FUZZ_CHECK(m.free_root == UINT64_MAX ||
                   (m.free_root >= 2 && m.free_root <= m.last_pg && m.free_root < file_size / m.psize));
        FUZZ_CHECK(m.newest == 0 || m.newest == 1);
    } else {
        FUZZ_CHECK(err[0] != '\0' && strchr(err, '\n') == NULL);
    }
    free(head);
    return 0;
}
