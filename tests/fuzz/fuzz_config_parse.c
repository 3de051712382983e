/*
 * tests/fuzz/fuzz_config_parse.c — config_parse_size and config_parse_addr.
 *
 * Input: the string (made NUL-terminated; an embedded NUL simply ends it, as it would on
 * a command line). Both parsers see every input.
 *
 * Invariants: an accepted size made only of digits is that number; an accepted address
 * has a non-empty, NUL-terminated host shorter than the buffer, no bare ':' outside
 * brackets, and the port is exactly the digits after the last ':'.
 */
#include <string.h>
#include "server/config.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';

    uint64_t bytes = 0;
    if (config_parse_size(s, &bytes) == 0) {
        size_t digits = strspn(s, "0123456789");
        FUZZ_CHECK(digits > 0);
        if (s[digits] == '\0' && digits < 20)
            FUZZ_CHECK(bytes == strtoull(s, NULL, 10));
    }

    config_addr_t addr;
    memset(&addr, 0x5a, sizeof(addr));
    if (config_parse_addr(s, &addr) == 0) {
        size_t host_len = strnlen(addr.host, sizeof(addr.host));
        FUZZ_CHECK(host_len > 0 && host_len < sizeof(addr.host));
        const char *colon = strrchr(s, ':');
        FUZZ_CHECK(colon != NULL);
        FUZZ_CHECK((unsigned long)addr.port == strtoul(colon + 1, NULL, 10));
        if (s[0] != '[')
            FUZZ_CHECK(strchr(addr.host, ':') == NULL);
    }
    free(s);
    return 0;
}
