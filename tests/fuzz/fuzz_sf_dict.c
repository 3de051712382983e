/*
 * tests/fuzz/fuzz_sf_dict.c — policy_sf_dict_parse (RFC 8941 Dictionary) and
 * policy_cdn_cc_parse (RFC 9213 CDN-Cache-Control on top of it).
 *
 * Input: a field value. It is parsed whole; then, split at '\n', its lines are given to
 * policy_decide as several CDN-Cache-Control lines (joined by the policy before parsing).
 *
 * Invariants:
 * - the result does not depend on whether members are asked for, and on_member is called
 *   exactly as many times as the result says (never for a field that does not parse);
 * - every member lies inside the input, has a valid key, and its item text agrees with its
 *   type and number (digits re-read here for Integer and Decimal, delimiters for the rest);
 * - round trip: the members written back as "key[=item]params" joined by ", " parse to the
 *   same members, byte for byte (only the whitespace between members may differ);
 * - policy_cdn_cc_parse accepts only what parses as a non-empty dictionary, and whatever it
 *   fills in is POLICY_UNSET or at most 2^31; the decision keeps its contract.
 */
#include <string.h>
#include "server/cache_policy.h"
#include "tests/fuzz/fuzz.h"

#define DELTA_CAP 2147483648u
#define SF_NUMBER_MAX 999999999999999LL

typedef struct members {
    policy_sf_member_t *m;
    size_t n, cap;
} members_t;

static void collect(const policy_sf_member_t *m, void *ctx)
{
    members_t *ms = ctx;
    if (ms->n == ms->cap) {
        ms->cap = ms->cap ? ms->cap * 2 : 16;
        ms->m = realloc(ms->m, ms->cap * sizeof(*ms->m));
        if (ms->m == NULL)
            abort();
    }
    ms->m[ms->n++] = *m;
}

static int inside(const char *p, size_t len, const char *base, size_t size)
{
    return p >= base && (size_t)(p - base) <= size && len <= size - (size_t)(p - base);
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* the item text re-read independently: [-]digits[.digits] */
static void check_number(const policy_sf_member_t *m)
{
    const char *p = m->item, *end = m->item + m->item_len;
    int64_t sign = 1, integer = 0, fraction = 0;
    size_t int_digits = 0, frac_digits = 0;
    int dot = 0;
    if (p < end && *p == '-') {
        sign = -1;
        p++;
    }
    for (; p < end; p++) {
        if (*p == '.') {
            FUZZ_CHECK(!dot);
            dot = 1;
        } else {
            FUZZ_CHECK(is_digit(*p));
            if (dot) {
                fraction = fraction * 10 + (*p - '0');
                frac_digits++;
            } else {
                integer = integer * 10 + (*p - '0');
                int_digits++;
            }
            FUZZ_CHECK(int_digits <= 15 && frac_digits <= 3);
        }
    }
    FUZZ_CHECK(int_digits >= 1);
    if (m->type == POLICY_SF_INTEGER) {
        FUZZ_CHECK(!dot && m->number == sign * integer);
    } else {
        FUZZ_CHECK(dot && int_digits <= 12 && frac_digits >= 1);
        for (size_t k = frac_digits; k < 3; k++)
            fraction *= 10;
        FUZZ_CHECK(m->number == sign * (integer * 1000 + fraction));
    }
    FUZZ_CHECK(m->number >= -SF_NUMBER_MAX && m->number <= SF_NUMBER_MAX);
}

static void check_member(const policy_sf_member_t *m, const char *base, size_t size)
{
    FUZZ_CHECK(inside(m->key, m->key_len, base, size) && m->key_len >= 1);
    FUZZ_CHECK(inside(m->item, m->item_len, base, size));
    FUZZ_CHECK(inside(m->params, m->params_len, base, size));
    FUZZ_CHECK((m->key[0] >= 'a' && m->key[0] <= 'z') || m->key[0] == '*');
    for (size_t k = 0; k < m->key_len; k++) {
        char c = m->key[k];
        FUZZ_CHECK((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '-' || c == '.' || c == '*');
    }
    FUZZ_CHECK(m->params_len == 0 || m->params[0] == ';');
    const char *it = m->item;
    size_t n = m->item_len;
    switch (m->type) {
    case POLICY_SF_INTEGER:
    case POLICY_SF_DECIMAL: check_number(m); break;
    case POLICY_SF_STRING:
        FUZZ_CHECK(n >= 2 && it[0] == '"' && it[n - 1] == '"');
        for (size_t k = 1; k + 1 < n; k++)
            FUZZ_CHECK(it[k] >= 0x20 && it[k] <= 0x7e);
        break;
    case POLICY_SF_TOKEN:
        FUZZ_CHECK(n >= 1 && (it[0] == '*' || (it[0] >= 'a' && it[0] <= 'z') || (it[0] >= 'A' && it[0] <= 'Z')));
        break;
    case POLICY_SF_BYTES: FUZZ_CHECK(n >= 2 && it[0] == ':' && it[n - 1] == ':' && memchr(it + 1, ':', n - 2) == NULL); break;
    case POLICY_SF_BOOLEAN:
        FUZZ_CHECK(m->number == 0 || m->number == 1);
        if (n == 0)
            FUZZ_CHECK(m->number == 1); /* a key without "=" */
        else
            FUZZ_CHECK(n == 2 && it[0] == '?' && it[1] == (m->number ? '1' : '0'));
        break;
    case POLICY_SF_INNER_LIST:
        FUZZ_CHECK(n >= 2 && it[0] == '(' && it[n - 1] == ')' && m->number >= 0 && (size_t)m->number <= n);
        break;
    default: FUZZ_CHECK(0);
    }
}

static int same_span(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void round_trip(const members_t *ms)
{
    size_t cap = 0;
    for (size_t i = 0; i < ms->n; i++)
        cap += ms->m[i].key_len + 1 + ms->m[i].item_len + ms->m[i].params_len + 2;
    char *out = malloc(cap + 1);
    if (out == NULL)
        abort();
    size_t len = 0;
    for (size_t i = 0; i < ms->n; i++) {
        const policy_sf_member_t *m = &ms->m[i];
        if (i > 0) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        memcpy(out + len, m->key, m->key_len);
        len += m->key_len;
        if (m->item_len > 0) {
            out[len++] = '=';
            memcpy(out + len, m->item, m->item_len);
            len += m->item_len;
        }
        memcpy(out + len, m->params, m->params_len);
        len += m->params_len;
    }
    members_t again = {0};
    int n = policy_sf_dict_parse(out, len, collect, &again);
    FUZZ_CHECK(n >= 0 && (size_t)n == ms->n && again.n == ms->n);
    for (size_t i = 0; i < ms->n; i++) {
        const policy_sf_member_t *a = &ms->m[i], *b = &again.m[i];
        FUZZ_CHECK(same_span(a->key, a->key_len, b->key, b->key_len));
        FUZZ_CHECK(a->type == b->type && a->number == b->number);
        FUZZ_CHECK(same_span(a->item, a->item_len, b->item, b->item_len));
        FUZZ_CHECK(same_span(a->params, a->params_len, b->params, b->params_len));
    }
    free(again.m);
    free(out);
}

static void check_delta(uint32_t v)
{
    FUZZ_CHECK(v == POLICY_UNSET || v <= DELTA_CAP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    members_t ms = {0};

    int validated = policy_sf_dict_parse(s, size, NULL, NULL);
    int n = policy_sf_dict_parse(s, size, collect, &ms);
    FUZZ_CHECK(n == validated && n >= -1);
    FUZZ_CHECK(n == -1 ? ms.n == 0 : (size_t)n == ms.n);
    for (size_t i = 0; i < ms.n; i++)
        check_member(&ms.m[i], s, size);
    if (n > 0)
        round_trip(&ms);
    free(ms.m);

    policy_cc_t cc;
    if (policy_cdn_cc_parse(s, size, &cc) == 0) {
        FUZZ_CHECK(n > 0);
        FUZZ_CHECK(!cc.max_age_invalid && !cc.s_maxage_invalid);
    }
    check_delta(cc.max_age);
    check_delta(cc.s_maxage);
    check_delta(cc.stale_while_revalidate);
    check_delta(cc.stale_if_error);

    /* the same bytes as CDN-Cache-Control lines of one response */
    policy_header_t h[64];
    size_t nh = 0, start = 0;
    for (size_t i = 0; i <= size && nh < 63; i++) {
        if (i == size || s[i] == '\n') {
            h[nh++] = (policy_header_t){"cdn-cache-control", 17, s + start, i - start};
            start = i + 1;
        }
    }
    h[nh++] = (policy_header_t){"cache-control", 13, "no-store", 8};
    policy_request_info_t req = {.method_is_get_or_head = 1, .request_time = 1700000000, .response_time = 1700000001};
    policy_settings_t settings = {.default_ttl = 120, .max_heuristic_ttl = 86400, .default_grace = 30, .negative_ttl = 0};
    policy_decision_t d;
    policy_decide(200, h, nh, &req, &settings, &d);
    FUZZ_CHECK(d.ttl <= DELTA_CAP && d.stale_while_revalidate <= DELTA_CAP && d.stale_if_error <= DELTA_CAP);
    if (!d.storable)
        FUZZ_CHECK(d.not_stored_reason != NULL && d.ttl == 0);
    /* one line: stored exactly when the field is a valid CDN-Cache-Control without no-store /
     * private / a must-understand we refuse (Cache-Control says no-store otherwise) */
    if (nh == 2 && d.storable) {
        size_t b = 0, e = size; /* the policy trims OWS off each line before joining */
        while (b < e && (s[b] == ' ' || s[b] == '\t'))
            b++;
        while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
            e--;
        FUZZ_CHECK(policy_cdn_cc_parse(s + b, e - b, &cc) == 0);
    }
    return 0;
}
