/*
 * server/cache_control.c — the directives of Cache-Control, Surrogate-Control and
 * CDN-Cache-Control read into a policy_cc_t. What they mean for storing and freshness is
 * decided in server/cache_policy.c; the RFC 8941 syntax of CDN-Cache-Control is
 * server/sf_dict.c's. Part of the cache policy module (server/cache_policy.h, prefix policy_).
 *
 * What it owns: nothing. Every function here reads the caller's buffers and writes the
 * caller's struct; no allocation, no global state, no lock: any worker thread may call
 * anything here at any time. All input is untrusted origin bytes: it is validated, never
 * asserted on.
 *
 * Choices where RFC 9111 leaves latitude (the report and the tests pin each one):
 *
 *  - Cache-Control lists: OWS is also accepted around "=" ("max-age = 10"). Arguments may
 *    be tokens or quoted-strings for every directive (RFC 9111 5.2: recipients ought to
 *    accept both), so max-age="10" is 10. A delta-seconds value that is missing, empty,
 *    not 1*DIGIT, or followed by junk makes the directive present-but-invalid; for max-age
 *    and s-maxage that means stale (ttl 0), as RFC 9111 4.2.1 encourages. A max-age (or
 *    s-maxage) repeated with a different value is invalid too (4.2.1 "considered stale");
 *    the same value repeated is fine. Values too large for us are capped at 2^31 (1.2.2).
 *    Duplicate stale-while-revalidate / stale-if-error keep the smaller value; invalid
 *    ones are ignored (absent means: do not serve stale).
 *  - Qualified no-cache="Set-Cookie" and private="..." are treated as unqualified: the
 *    whole response is revalidated / not stored (RFC 9111 5.2.2.4 and 5.2.2.7 allow a cache
 *    to do so). Restrictive directives (no-store, no-cache, private, must-revalidate,
 *    proxy-revalidate) are honoured even when malformed ("no-store junk"); permissive ones
 *    (public, immutable, must-understand) only when well formed. A quoted-string that is
 *    never closed (or holds a control byte) leaves the rest of the field ambiguous: it is
 *    read again with "," as the only separator and each element taken as malformed, so a
 *    no-store or private there still counts and a max-age there makes max-age invalid.
 *  - Surrogate-Control: no-store-remote counts as no-store (we are a remote surrogate).
 *    Directives targeted at a named surrogate ("max-age=60;edge1") are not for us and are
 *    skipped; "max-age=N+M" (Edge Architecture 1.0) is read as max-age=N.
 *  - CDN-Cache-Control (RFC 9213) is an RFC 8941 Dictionary: a repeated key keeps its last
 *    value (8941 4.2.2), parameters are ignored (9213 2.1). The directives we read must have
 *    the type 9213 2.1 infers: a non-negative Integer for max-age, s-maxage,
 *    stale-while-revalidate and stale-if-error; the Boolean true for no-store,
 *    must-revalidate, proxy-revalidate, public, immutable, no-transform, must-understand;
 *    true or a String for no-cache and private. A field that is empty, does not parse, or
 *    holds one of those directives with another type (max-age="60", max-age=-1,
 *    max-age=1.5, no-store=?0) is refused as a whole (policy_cdn_cc_parse returns -1).
 */
#include <assert.h>
#include <string.h>
#include "server/cache_policy.h"
#include "server/cache_policy_int.h"

/* ---------------------------------------------------------------- Cache-Control */

/* The argument of one directive, as it appeared: a token, or the inside of a quoted-string
 * (escapes still in place). */
typedef struct cc_arg {
    const char *p;
    size_t len;
    int present;
    int quoted;
} cc_arg_t;

/* delta-seconds from an argument; quoted-pairs are unescaped as we go */
static int arg_delta(const cc_arg_t *arg, int surrogate, uint32_t *out)
{
    uint64_t acc = 0;
    size_t ndigits = 0;
    if (!arg->present)
        return -1;
    for (size_t i = 0; i < arg->len; i++) {
        char c = arg->p[i];
        if (arg->quoted && c == '\\' && i + 1 < arg->len)
            c = arg->p[++i];
        if (surrogate && !arg->quoted && c == '+' && ndigits > 0) {
            /* Edge Architecture "max-age=N+M": N is the lifetime; M must be digits too */
            uint32_t ignored;
            if (policy_parse_digits(arg->p + i + 1, arg->len - i - 1, &ignored) != 0)
                return -1;
            break;
        }
        if (c < '0' || c > '9')
            return -1;
        if (acc < POLICY_DELTA_SECONDS_CAP)
            acc = acc * 10 + (uint64_t)(c - '0');
        ndigits++;
    }
    if (ndigits == 0)
        return -1;
    *out = acc > POLICY_DELTA_SECONDS_CAP ? POLICY_DELTA_SECONDS_CAP : (uint32_t)acc;
    return 0;
}

/* One occurrence of max-age or s-maxage: a second, different value, or an invalid one,
 * makes the directive invalid for good (RFC 9111 4.2.1). */
static void merge_strict(uint32_t *slot, int *invalid, int ok, uint32_t value)
{
    if (*invalid)
        return;
    if (!ok) {
        *invalid = 1;
        *slot = POLICY_UNSET;
    } else if (*slot == POLICY_UNSET) {
        *slot = value;
    } else if (*slot != value) {
        *invalid = 1;
        *slot = POLICY_UNSET;
    }
}

/* stale-while-revalidate / stale-if-error: invalid ignored, duplicates keep the minimum */
static void merge_min(uint32_t *slot, int ok, uint32_t value)
{
    if (ok && (*slot == POLICY_UNSET || value < *slot))
        *slot = value;
}

static void cc_apply(policy_cc_t *cc, const char *name, size_t name_len, const cc_arg_t *arg, int well_formed, int surrogate)
{
    uint32_t v = 0;
    int ok = well_formed && arg_delta(arg, surrogate, &v) == 0;
    int invalid;

    if (policy_eq_ci(name, name_len, "max-age")) {
        invalid = cc->max_age_invalid;
        merge_strict(&cc->max_age, &invalid, ok, v);
        cc->max_age_invalid = invalid ? 1 : 0;
    } else if (policy_eq_ci(name, name_len, "s-maxage")) {
        invalid = cc->s_maxage_invalid;
        merge_strict(&cc->s_maxage, &invalid, ok, v);
        cc->s_maxage_invalid = invalid ? 1 : 0;
    } else if (policy_eq_ci(name, name_len, "stale-while-revalidate")) {
        merge_min(&cc->stale_while_revalidate, ok, v);
    } else if (policy_eq_ci(name, name_len, "stale-if-error")) {
        merge_min(&cc->stale_if_error, ok, v);
    } else if (policy_eq_ci(name, name_len, "no-store")) {
        cc->no_store = 1;
    } else if (surrogate && policy_eq_ci(name, name_len, "no-store-remote")) {
        cc->no_store = 1; /* we are a remote surrogate */
    } else if (policy_eq_ci(name, name_len, "no-cache")) {
        cc->no_cache = 1; /* qualified or not: revalidate the whole response */
    } else if (policy_eq_ci(name, name_len, "private")) {
        cc->private_ = 1; /* qualified or not: do not store */
    } else if (policy_eq_ci(name, name_len, "must-revalidate")) {
        cc->must_revalidate = 1;
    } else if (policy_eq_ci(name, name_len, "proxy-revalidate")) {
        cc->proxy_revalidate = 1;
    } else if (policy_eq_ci(name, name_len, "no-transform")) {
        cc->no_transform = 1;
    } else if (policy_eq_ci(name, name_len, "only-if-cached")) {
        cc->only_if_cached = 1;
    } else if (well_formed && policy_eq_ci(name, name_len, "public")) {
        cc->public_ = 1;
    } else if (well_formed && policy_eq_ci(name, name_len, "immutable")) {
        cc->immutable = 1;
    } else if (well_formed && policy_eq_ci(name, name_len, "must-understand")) {
        cc->must_understand = 1;
    }
    /* anything else: an extension we do not implement, ignored (RFC 9111 5.2.3) */
}

/* index of the next top-level ',' at or after i (quoted-strings skipped), or len; when the
 * field ends inside a quoted-string, *open_quote is set to the index of its opening quote */
static size_t skip_to_comma(const char *v, size_t len, size_t i, size_t *open_quote)
{
    int in_quotes = 0;
    size_t quote = 0;
    for (; i < len; i++) {
        char c = v[i];
        if (in_quotes) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_quotes = 0;
        } else if (c == '"') {
            in_quotes = 1;
            quote = i;
        } else if (c == ',') {
            return i;
        }
    }
    if (in_quotes)
        *open_quote = quote;
    return len;
}

/* What follows an unterminated quoted-string (from v[0], just after its opening quote): nobody
 * can tell where the origin meant the string to end, so "," is taken as the only separator and
 * every element counts as a malformed directive. cc_apply then honours the restrictive ones
 * (no-store, private, no-cache, must-revalidate, ...) and makes a max-age / s-maxage there
 * invalid (stale), while permissive ones are not applied: whichever way the field was meant,
 * that is the safe reading. One pass, no quote handling, so it is linear whatever the bytes. */
static void cc_apply_rest_malformed(policy_cc_t *cc, const char *v, size_t len, int surrogate)
{
    static const cc_arg_t no_arg = {NULL, 0, 0, 0};
    size_t i = 0;
    while (i < len) {
        while (i < len && (policy_is_ows((unsigned char)v[i]) || v[i] == ','))
            i++;
        size_t name_start = i;
        while (i < len && policy_is_tchar((unsigned char)v[i]))
            i++;
        if (i > name_start)
            cc_apply(cc, v + name_start, i - name_start, &no_arg, 0, surrogate);
        while (i < len && v[i] != ',')
            i++;
    }
}

/* Parse one field line into cc. surrogate: Surrogate-Control rules (targeted directives
 * skipped, no-store-remote, max-age=N+M). Returns the number of well-formed directives. */
int policy_cc_parse_field(policy_cc_t *cc, const char *v, size_t len, int surrogate)
{
    size_t i = 0, open_quote = SIZE_MAX; /* set when the field ends inside a quoted-string */
    int seen = 0;

    if (v == NULL)
        return 0;
    while (i < len) {
        while (i < len && (policy_is_ows((unsigned char)v[i]) || v[i] == ','))
            i++; /* empty list elements are allowed */
        if (i >= len)
            break;

        size_t name_start = i;
        while (i < len && policy_is_tchar((unsigned char)v[i]))
            i++;
        size_t name_len = i - name_start;
        if (name_len == 0) { /* not a directive at all */
            i = skip_to_comma(v, len, i, &open_quote);
            if (open_quote != SIZE_MAX)
                break;
            continue;
        }

        cc_arg_t arg = {NULL, 0, 0, 0};
        int well_formed = 1;
        size_t j = i;
        while (j < len && policy_is_ows((unsigned char)v[j]))
            j++;
        if (j < len && v[j] == '=') {
            j++;
            while (j < len && policy_is_ows((unsigned char)v[j]))
                j++;
            arg.present = 1;
            if (j < len && v[j] == '"') {
                int closed = 0;
                arg.quoted = 1;
                arg.p = v + ++j;
                while (j < len) {
                    unsigned char c = (unsigned char)v[j];
                    if (c == '\\' && j + 1 < len) {
                        j += 2;
                        continue;
                    }
                    if (c == '"') {
                        closed = 1;
                        break;
                    }
                    if ((c < 0x20 && c != '\t') || c == 0x7f)
                        break;
                    j++;
                }
                if (!closed) {
                    cc_apply(cc, v + name_start, name_len, &arg, 0, surrogate);
                    open_quote = (size_t)(arg.p - v) - 1;
                    break;
                }
                arg.len = (size_t)(v + j - arg.p);
                j++; /* closing quote */
            } else {
                arg.p = v + j;
                while (j < len && policy_is_tchar((unsigned char)v[j]))
                    j++;
                arg.len = (size_t)(v + j - arg.p);
            }
            i = j;
        }

        j = i;
        while (j < len && policy_is_ows((unsigned char)v[j]))
            j++;
        if (surrogate && j < len && v[j] == ';') {
            /* "max-age=60;edge1": targeted at a named surrogate, which we are not */
            i = skip_to_comma(v, len, j, &open_quote);
            if (open_quote != SIZE_MAX)
                break;
            continue;
        }
        if (j < len && v[j] != ',') {
            well_formed = 0;
            i = skip_to_comma(v, len, j, &open_quote);
        } else {
            i = j;
        }
        if (well_formed)
            seen++;
        cc_apply(cc, v + name_start, name_len, &arg, well_formed, surrogate);
        if (open_quote != SIZE_MAX)
            break;
    }
    if (open_quote != SIZE_MAX)
        cc_apply_rest_malformed(cc, v + open_quote + 1, len - open_quote - 1, surrogate);
    return seen;
}

void policy_cc_init(policy_cc_t *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = POLICY_UNSET;
    cc->s_maxage = POLICY_UNSET;
    cc->stale_while_revalidate = POLICY_UNSET;
    cc->stale_if_error = POLICY_UNSET;
}

void policy_cc_parse(policy_cc_t *cc, const char *value, size_t len)
{
    (void)policy_cc_parse_field(cc, value, len, 0);
}

/* ---------------------------------------------------------------- CDN-Cache-Control */

/* the directives RFC 9213 2.1 lets us read from a Dictionary (in cdn_directives[] order) */
enum {
    CDN_MAX_AGE,
    CDN_S_MAXAGE,
    CDN_SWR,
    CDN_SIE,
    CDN_NO_STORE,
    CDN_MUST_REVALIDATE,
    CDN_PROXY_REVALIDATE,
    CDN_PUBLIC,
    CDN_IMMUTABLE,
    CDN_NO_TRANSFORM,
    CDN_MUST_UNDERSTAND,
    CDN_NO_CACHE,
    CDN_PRIVATE,
    CDN_NUM_DIRECTIVES
};

/* the type each must have: a non-negative Integer (delta-seconds), the Boolean true (a bare
 * key), or true / a String of field names (the qualified form) */
enum { CDN_INTEGER, CDN_TRUE, CDN_TRUE_OR_STRING };

static const struct cdn_directive {
    const char *name;
    int kind;
} cdn_directives[CDN_NUM_DIRECTIVES] = {
    {"max-age", CDN_INTEGER},        {"s-maxage", CDN_INTEGER},     {"stale-while-revalidate", CDN_INTEGER},
    {"stale-if-error", CDN_INTEGER}, {"no-store", CDN_TRUE},        {"must-revalidate", CDN_TRUE},
    {"proxy-revalidate", CDN_TRUE},  {"public", CDN_TRUE},          {"immutable", CDN_TRUE},
    {"no-transform", CDN_TRUE},      {"must-understand", CDN_TRUE}, {"no-cache", CDN_TRUE_OR_STRING},
    {"private", CDN_TRUE_OR_STRING},
};

/* the last value of every known directive (a Dictionary keeps the last of a repeated key) */
typedef struct cdn_fold {
    int present[CDN_NUM_DIRECTIVES];
    policy_sf_type_t type[CDN_NUM_DIRECTIVES];
    int64_t number[CDN_NUM_DIRECTIVES];
} cdn_fold_t;

static void cdn_fold_member(const policy_sf_member_t *m, void *ctx)
{
    cdn_fold_t *fold = ctx;
    /* keys compare character for character: SF keys are lower-case already */
    for (size_t k = 0; k < CDN_NUM_DIRECTIVES; k++) {
        if (strlen(cdn_directives[k].name) == m->key_len && memcmp(cdn_directives[k].name, m->key, m->key_len) == 0) {
            fold->present[k] = 1;
            fold->type[k] = m->type;
            fold->number[k] = m->number;
            return;
        }
    }
}

int policy_cdn_cc_parse(const char *value, size_t len, policy_cc_t *cc)
{
    cdn_fold_t fold;
    memset(&fold, 0, sizeof(fold));
    policy_cc_init(cc);
    /* RFC 9213 2.2: only a valid, non-empty field replaces Cache-Control */
    if (policy_sf_dict_parse(value, len, cdn_fold_member, &fold) <= 0)
        return -1;

    /* RFC 9213 2.1: values that break a directive's inferred type are not consumed, and the
     * issue's rule (and the safe reading) is that the field is then ignored as a whole */
    for (size_t k = 0; k < CDN_NUM_DIRECTIVES; k++) {
        if (!fold.present[k])
            continue;
        policy_sf_type_t t = fold.type[k];
        int64_t n = fold.number[k];
        switch (cdn_directives[k].kind) {
        case CDN_INTEGER:
            if (t != POLICY_SF_INTEGER || n < 0) /* delta-seconds: 1*DIGIT */
                goto ignored;
            break;
        case CDN_TRUE:
            if (t != POLICY_SF_BOOLEAN || n != 1)
                goto ignored;
            break;
        default:
            if (!(t == POLICY_SF_BOOLEAN && n == 1) && t != POLICY_SF_STRING)
                goto ignored;
            break;
        }
    }

    for (size_t k = 0; k < CDN_NUM_DIRECTIVES; k++) {
        if (!fold.present[k])
            continue;
        uint32_t delta = fold.number[k] > (int64_t)POLICY_DELTA_SECONDS_CAP ? POLICY_DELTA_SECONDS_CAP
                                                                            : (uint32_t)fold.number[k];
        switch (k) {
        case CDN_MAX_AGE: cc->max_age = delta; break;
        case CDN_S_MAXAGE: cc->s_maxage = delta; break;
        case CDN_SWR: cc->stale_while_revalidate = delta; break;
        case CDN_SIE: cc->stale_if_error = delta; break;
        case CDN_NO_STORE: cc->no_store = 1; break;
        case CDN_MUST_REVALIDATE: cc->must_revalidate = 1; break;
        case CDN_PROXY_REVALIDATE: cc->proxy_revalidate = 1; break;
        case CDN_PUBLIC: cc->public_ = 1; break;
        case CDN_IMMUTABLE: cc->immutable = 1; break;
        case CDN_NO_TRANSFORM: cc->no_transform = 1; break;
        case CDN_MUST_UNDERSTAND: cc->must_understand = 1; break;
        case CDN_NO_CACHE: cc->no_cache = 1; break; /* a String of field names too: the whole response */
        case CDN_PRIVATE: cc->private_ = 1; break;
        default: assert(0);
        }
    }
    return 0;

ignored:
    policy_cc_init(cc);
    return -1;
}
