/*
 * server/cache_policy.c — the caching rules of RFC 9111 (and Fastly's Surrogate-Control,
 * RFC 9213's CDN-Cache-Control) as pure functions over header bytes.
 *
 * What it owns: nothing. Every function here reads the caller's buffers and writes the
 * caller's structs; there is no allocation, no global state and no lock, so any worker
 * thread may call anything here at any time. All input is untrusted origin bytes: it is
 * validated, never asserted on; asserts only guard our own arithmetic.
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
 *  - must-understand (5.2.2.3): the no-store in the same field is ignored when we
 *    understand the status (a registered final status other than 206 and 304); with any
 *    other status the response is not stored.
 *  - CDN-Cache-Control (RFC 9213): its lines are joined with ", " (empty lines skipped) and
 *    parsed as an RFC 8941 Dictionary by policy_sf_dict_parse, a strict transcription of
 *    RFC 8941 4.2 (so "Max-Age=60", "max-age=60, ," or an unterminated string make the
 *    whole field unparseable). A repeated key keeps its last value (8941 4.2.2), parameters
 *    are ignored (9213 2.1). The directives we read must have the type 9213 2.1 infers:
 *    a non-negative Integer for max-age, s-maxage, stale-while-revalidate and stale-if-error;
 *    the Boolean true for no-store, must-revalidate, proxy-revalidate, public, immutable,
 *    no-transform, must-understand; true or a String for no-cache and private. A field that
 *    is empty, longer than CDN_FIELD_MAX, does not parse, or holds one of those directives
 *    with another type (max-age="60", max-age=-1, max-age=1.5, no-store=?0) is ignored as a
 *    whole: Cache-Control, Expires and the heuristic apply as if it were absent. A valid,
 *    non-empty one (even "none", 9213 3.1) replaces Cache-Control and Expires for this cache
 *    (9213 2.2), its private, no-cache and public included.
 *  - Surrogate-Control: its max-age overrides every other source; no-store,
 *    no-store-remote, private, no-cache and must-revalidate in it are honoured. When it
 *    gives a max-age, the revalidation directives of plain Cache-Control (no-cache,
 *    must-revalidate, proxy-revalidate, the proxy-revalidate implied by s-maxage) are taken
 *    to be for downstream caches and not applied here — Fastly's documented use of
 *    "Cache-Control: no-cache" + "Surrogate-Control: max-age=N". Cache-Control no-store
 *    and private still prevent storing (Fastly passes those too). Directives targeted at a
 *    named surrogate ("max-age=60;edge1") are not for us and are skipped; "max-age=N+M"
 *    (Edge Architecture 1.0) is read as max-age=N.
 *  - Expires: unparseable (including "0") means already expired: stored with ttl 0 so
 *    that it is revalidated (RFC 9111 5.3). Several Expires lines with different dates:
 *    stale. Date absent or invalid: response_time is used instead.
 *  - Age: the first member of the first Age line; if that member is not 1*DIGIT the
 *    field is ignored (RFC 9111 5.1), capped at 2^31.
 *  - Freshness lasts: a final status with explicit freshness (any source above, valid or
 *    not) is storable; without it, only heuristically cacheable statuses (RFC 9110 15.1)
 *    or responses marked public get the Last-Modified heuristic (10% of Date -
 *    Last-Modified, capped at max_heuristic_ttl; a Last-Modified after Date is ignored) or
 *    else settings->default_ttl. Anything else (a 500 with no freshness) is not stored.
 *  - Negative caching: a 4xx/5xx without explicit freshness and not marked public (a 404,
 *    405, 410, 414 or 501 that would get the heuristic) lives settings->negative_ttl at
 *    most, the Last-Modified heuristic included (frameworks send Last-Modified on error
 *    pages too), and is not stored when negative_ttl is 0: a client that makes the origin
 *    fail with a header the key ignores must not replace the URL for everyone (CPDoS). An
 *    error with explicit freshness, or public, is the origin's choice and keeps its lifetime.
 *  - Stale windows: explicit must-revalidate / proxy-revalidate / no-cache forbid serving
 *    stale: both windows are 0. The proxy-revalidate implied by s-maxage keeps explicit
 *    stale-while-revalidate / stale-if-error (the origin opted in; the common
 *    "s-maxage=1, stale-while-revalidate=59" pattern) but suppresses default_grace.
 */
#include "server/cache_policy.h"

#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define DELTA_SECONDS_CAP 2147483648u /* RFC 9111 1.2.2 */

/* ---------------------------------------------------------------- small lexers */

static int is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ows(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* case-insensitive comparison of s[0..len) with a lower-case literal */
static int eq_ci(const char *s, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    if (n != len)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ascii_lower((unsigned char)s[i]) != (unsigned char)lit[i])
            return 0;
    return 1;
}

/* 1*DIGIT delta-seconds from s[0..len), capped at 2^31. Returns 0 or -1. */
static int parse_digits(const char *s, size_t len, uint32_t *out)
{
    uint64_t acc = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < '0' || c > '9')
            return -1;
        if (acc < DELTA_SECONDS_CAP)
            acc = acc * 10 + (uint64_t)(c - '0');
    }
    *out = acc > DELTA_SECONDS_CAP ? DELTA_SECONDS_CAP : (uint32_t)acc;
    return 0;
}

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
            if (parse_digits(arg->p + i + 1, arg->len - i - 1, &ignored) != 0)
                return -1;
            break;
        }
        if (c < '0' || c > '9')
            return -1;
        if (acc < DELTA_SECONDS_CAP)
            acc = acc * 10 + (uint64_t)(c - '0');
        ndigits++;
    }
    if (ndigits == 0)
        return -1;
    *out = acc > DELTA_SECONDS_CAP ? DELTA_SECONDS_CAP : (uint32_t)acc;
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

static void cc_apply(policy_cc_t *cc, const char *name, size_t name_len, const cc_arg_t *arg, int well_formed,
                     int surrogate)
{
    uint32_t v = 0;
    int ok = well_formed && arg_delta(arg, surrogate, &v) == 0;
    int invalid;

    if (eq_ci(name, name_len, "max-age")) {
        invalid = cc->max_age_invalid;
        merge_strict(&cc->max_age, &invalid, ok, v);
        cc->max_age_invalid = invalid ? 1 : 0;
    } else if (eq_ci(name, name_len, "s-maxage")) {
        invalid = cc->s_maxage_invalid;
        merge_strict(&cc->s_maxage, &invalid, ok, v);
        cc->s_maxage_invalid = invalid ? 1 : 0;
    } else if (eq_ci(name, name_len, "stale-while-revalidate")) {
        merge_min(&cc->stale_while_revalidate, ok, v);
    } else if (eq_ci(name, name_len, "stale-if-error")) {
        merge_min(&cc->stale_if_error, ok, v);
    } else if (eq_ci(name, name_len, "no-store")) {
        cc->no_store = 1;
    } else if (surrogate && eq_ci(name, name_len, "no-store-remote")) {
        cc->no_store = 1; /* we are a remote surrogate */
    } else if (eq_ci(name, name_len, "no-cache")) {
        cc->no_cache = 1; /* qualified or not: revalidate the whole response */
    } else if (eq_ci(name, name_len, "private")) {
        cc->private_ = 1; /* qualified or not: do not store */
    } else if (eq_ci(name, name_len, "must-revalidate")) {
        cc->must_revalidate = 1;
    } else if (eq_ci(name, name_len, "proxy-revalidate")) {
        cc->proxy_revalidate = 1;
    } else if (eq_ci(name, name_len, "no-transform")) {
        cc->no_transform = 1;
    } else if (eq_ci(name, name_len, "only-if-cached")) {
        cc->only_if_cached = 1;
    } else if (well_formed && eq_ci(name, name_len, "public")) {
        cc->public_ = 1;
    } else if (well_formed && eq_ci(name, name_len, "immutable")) {
        cc->immutable = 1;
    } else if (well_formed && eq_ci(name, name_len, "must-understand")) {
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
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == ','))
            i++;
        size_t name_start = i;
        while (i < len && is_tchar((unsigned char)v[i]))
            i++;
        if (i > name_start)
            cc_apply(cc, v + name_start, i - name_start, &no_arg, 0, surrogate);
        while (i < len && v[i] != ',')
            i++;
    }
}

/* Parse one field line into cc. surrogate: Surrogate-Control rules (targeted directives
 * skipped, no-store-remote, max-age=N+M). Returns the number of well-formed directives. */
static int cc_parse_field(policy_cc_t *cc, const char *v, size_t len, int surrogate)
{
    size_t i = 0, open_quote = SIZE_MAX; /* set when the field ends inside a quoted-string */
    int seen = 0;

    if (v == NULL)
        return 0;
    while (i < len) {
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == ','))
            i++; /* empty list elements are allowed */
        if (i >= len)
            break;

        size_t name_start = i;
        while (i < len && is_tchar((unsigned char)v[i]))
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
        while (j < len && is_ows((unsigned char)v[j]))
            j++;
        if (j < len && v[j] == '=') {
            j++;
            while (j < len && is_ows((unsigned char)v[j]))
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
                while (j < len && is_tchar((unsigned char)v[j]))
                    j++;
                arg.len = (size_t)(v + j - arg.p);
            }
            i = j;
        }

        j = i;
        while (j < len && is_ows((unsigned char)v[j]))
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
    (void)cc_parse_field(cc, value, len, 0);
}

/* ---------------------------------------------------------------- RFC 8941 Dictionary */

/*
 * A straight transcription of RFC 8941 section 4.2's algorithms over a cursor. Every
 * function either consumes a well-formed construct and returns 0, or returns -1; the
 * cursor never moves past len. Only the SP / OWS that the algorithm discards is skipped.
 */
typedef struct sf_cur {
    const char *s;
    size_t len, i;
} sf_cur_t;

static int sf_peek(const sf_cur_t *c)
{
    return c->i < c->len ? (unsigned char)c->s[c->i] : -1;
}

static int sf_is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static int sf_is_alpha(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static int sf_is_lcalpha(int ch)
{
    return ch >= 'a' && ch <= 'z';
}

static void sf_skip_sp(sf_cur_t *c)
{
    while (sf_peek(c) == ' ')
        c->i++;
}

static void sf_skip_ows(sf_cur_t *c)
{
    while (sf_peek(c) == ' ' || sf_peek(c) == '\t')
        c->i++;
}

/* 4.2.3.3 key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static int sf_parse_key(sf_cur_t *c)
{
    int ch = sf_peek(c);
    if (!sf_is_lcalpha(ch) && ch != '*')
        return -1;
    c->i++;
    /* no strchr here: it would find a NUL byte of the field in its literal's terminator */
    for (ch = sf_peek(c); sf_is_lcalpha(ch) || sf_is_digit(ch) || ch == '_' || ch == '-' || ch == '.' || ch == '*';
         ch = sf_peek(c))
        c->i++;
    return 0;
}

/* 4.2.4 Integer or Decimal; *number is the integer, or the decimal in thousandths */
static int sf_parse_number(sf_cur_t *c, policy_sf_type_t *type, int64_t *number)
{
    int64_t sign = 1, integer = 0, fraction = 0;
    size_t chars = 0, fraction_digits = 0; /* chars: input_number's length, "." included */
    int decimal = 0;

    if (sf_peek(c) == '-') {
        c->i++;
        sign = -1;
    }
    if (!sf_is_digit(sf_peek(c)))
        return -1;
    for (int ch = sf_peek(c); ch != -1; ch = sf_peek(c)) {
        if (sf_is_digit(ch)) {
            if (decimal) {
                fraction = fraction * 10 + (ch - '0');
                fraction_digits++;
            } else {
                integer = integer * 10 + (ch - '0');
            }
        } else if (!decimal && ch == '.') {
            if (chars > 12)
                return -1;
            decimal = 1;
        } else {
            break;
        }
        c->i++;
        chars++;
        /* checked after every character, so integer stays below 10^16 and fraction below 10^4 */
        if ((!decimal && chars > 15) || (decimal && chars > 16) || fraction_digits > 3)
            return -1;
    }
    if (decimal) {
        if (fraction_digits == 0)
            return -1; /* "1." */
        for (size_t k = fraction_digits; k < 3; k++)
            fraction *= 10;
        *type = POLICY_SF_DECIMAL;
        *number = sign * (integer * 1000 + fraction);
    } else {
        *type = POLICY_SF_INTEGER;
        *number = sign * integer;
    }
    return 0;
}

/* 4.2.5 String: printable ASCII, with \" and \\ the only escapes */
static int sf_parse_string(sf_cur_t *c)
{
    c->i++; /* DQUOTE */
    while (c->i < c->len) {
        unsigned char ch = (unsigned char)c->s[c->i++];
        if (ch == '\\') {
            int next = sf_peek(c);
            if (next != '"' && next != '\\')
                return -1;
            c->i++;
        } else if (ch == '"') {
            return 0;
        } else if (ch < 0x20 || ch > 0x7e) {
            return -1;
        }
    }
    return -1; /* unterminated */
}

/* 4.2.6 Token: ( ALPHA / "*" ) *( tchar / ":" / "/" ) */
static int sf_parse_token(sf_cur_t *c)
{
    int ch = sf_peek(c);
    if (!sf_is_alpha(ch) && ch != '*')
        return -1;
    c->i++;
    for (ch = sf_peek(c); ch != -1 && (is_tchar((unsigned char)ch) || ch == ':' || ch == '/'); ch = sf_peek(c))
        c->i++;
    return 0;
}

/* 4.2.7 Byte Sequence: ":" base64 ":". Padding may be absent (SHOULD NOT fail), but what is
 * there must be base64 that decodes: "=" only at the end, at most two, and no length that
 * leaves a lone sextet. */
static int sf_parse_bytes(sf_cur_t *c)
{
    size_t start = ++c->i, end, pad = 0;
    const char *colon = memchr(c->s + start, ':', c->len - start);
    if (colon == NULL)
        return -1;
    end = (size_t)(colon - c->s);
    for (size_t k = start; k < end; k++) {
        int ch = (unsigned char)c->s[k];
        if (ch == '=') {
            pad++;
        } else if (sf_is_alpha(ch) || sf_is_digit(ch) || ch == '+' || ch == '/') {
            if (pad > 0)
                return -1; /* data after padding */
        } else {
            return -1;
        }
    }
    size_t data = end - start - pad;
    if (pad > 2 || data % 4 == 1 || (pad > 0 && (end - start) % 4 != 0))
        return -1;
    c->i = end + 1;
    return 0;
}

/* 4.2.8 Boolean: "?0" / "?1" */
static int sf_parse_boolean(sf_cur_t *c, int64_t *number)
{
    c->i++;
    int ch = sf_peek(c);
    if (ch != '0' && ch != '1')
        return -1;
    c->i++;
    *number = ch == '1';
    return 0;
}

/* 4.2.3.1 Bare Item */
static int sf_parse_bare_item(sf_cur_t *c, policy_sf_type_t *type, int64_t *number)
{
    int ch = sf_peek(c);
    *number = 0;
    if (ch == '-' || sf_is_digit(ch))
        return sf_parse_number(c, type, number);
    if (ch == '"') {
        *type = POLICY_SF_STRING;
        return sf_parse_string(c);
    }
    if (sf_is_alpha(ch) || ch == '*') {
        *type = POLICY_SF_TOKEN;
        return sf_parse_token(c);
    }
    if (ch == ':') {
        *type = POLICY_SF_BYTES;
        return sf_parse_bytes(c);
    }
    if (ch == '?') {
        *type = POLICY_SF_BOOLEAN;
        return sf_parse_boolean(c, number);
    }
    return -1;
}

/* 4.2.3.2 Parameters: *( ";" *SP key [ "=" bare-item ] ); values are validated, not kept */
static int sf_parse_parameters(sf_cur_t *c)
{
    while (sf_peek(c) == ';') {
        c->i++;
        sf_skip_sp(c);
        if (sf_parse_key(c) != 0)
            return -1;
        if (sf_peek(c) == '=') {
            policy_sf_type_t type;
            int64_t number;
            c->i++;
            if (sf_parse_bare_item(c, &type, &number) != 0)
                return -1;
        }
    }
    return 0;
}

/* 4.2.1.2 Inner List: "(" *SP [ item *( 1*SP item ) *SP ] ")" parameters (the parameters are
 * left to the caller); *items counts the items */
static int sf_parse_inner_list(sf_cur_t *c, int64_t *items)
{
    c->i++; /* "(" */
    *items = 0;
    while (c->i < c->len) {
        sf_skip_sp(c);
        if (sf_peek(c) == ')') {
            c->i++;
            return 0;
        }
        policy_sf_type_t type;
        int64_t number;
        if (sf_parse_bare_item(c, &type, &number) != 0 || sf_parse_parameters(c) != 0)
            return -1;
        (*items)++;
        if (sf_peek(c) != ' ' && sf_peek(c) != ')')
            return -1;
    }
    return -1; /* no ")" */
}

/* 4.2 + 4.2.2: the whole field value as a Dictionary; on_member NULL only validates */
static int sf_dict_walk(const char *value, size_t len, policy_sf_member_cb on_member, void *ctx)
{
    sf_cur_t c = {value, len, 0};
    int members = 0;

    sf_skip_sp(&c);
    if (c.i == c.len)
        return 0; /* an empty dictionary (RFC 8941 4.2: empty field value) */
    for (;;) {
        policy_sf_member_t m = {0};
        size_t key_start = c.i;
        if (sf_parse_key(&c) != 0)
            return -1;
        m.key = value + key_start;
        m.key_len = c.i - key_start;
        if (sf_peek(&c) == '=') {
            c.i++;
            size_t item_start = c.i;
            if (sf_peek(&c) == '(') {
                m.type = POLICY_SF_INNER_LIST;
                if (sf_parse_inner_list(&c, &m.number) != 0)
                    return -1;
            } else if (sf_parse_bare_item(&c, &m.type, &m.number) != 0) {
                return -1;
            }
            m.item = value + item_start;
            m.item_len = c.i - item_start;
        } else {
            m.type = POLICY_SF_BOOLEAN;
            m.number = 1;
            m.item = value + c.i;
        }
        size_t params_start = c.i;
        if (sf_parse_parameters(&c) != 0)
            return -1;
        m.params = value + params_start;
        m.params_len = c.i - params_start;
        if (members == INT_MAX)
            return -1; /* the count is the return value; no real field gets near this */
        members++;
        if (on_member != NULL)
            on_member(&m, ctx);

        sf_skip_ows(&c);
        if (c.i == c.len)
            return members;
        if (value[c.i] != ',')
            return -1;
        c.i++;
        sf_skip_ows(&c);
        if (c.i == c.len)
            return -1; /* trailing comma */
    }
}

int policy_sf_dict_parse(const char *value, size_t len, policy_sf_member_cb on_member, void *ctx)
{
    if (value == NULL)
        return len == 0 ? 0 : -1;
    /* validate first, so that the caller only ever sees members of a field that parses */
    int n = sf_dict_walk(value, len, NULL, NULL);
    if (n <= 0 || on_member == NULL)
        return n;
    return sf_dict_walk(value, len, on_member, ctx);
}

/* ---------------------------------------------------------------- CDN-Cache-Control */

/* the directives RFC 9213 2.1 lets us read from a Dictionary (in cdn_directives[] order) */
enum {
    CDN_MAX_AGE, CDN_S_MAXAGE, CDN_SWR, CDN_SIE, CDN_NO_STORE, CDN_MUST_REVALIDATE, CDN_PROXY_REVALIDATE,
    CDN_PUBLIC, CDN_IMMUTABLE, CDN_NO_TRANSFORM, CDN_MUST_UNDERSTAND, CDN_NO_CACHE, CDN_PRIVATE,
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
        uint32_t delta = fold.number[k] > (int64_t)DELTA_SECONDS_CAP ? DELTA_SECONDS_CAP : (uint32_t)fold.number[k];
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

/* ---------------------------------------------------------------- HTTP dates */

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                             "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names_short[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const day_names_long[7] = {"sunday",   "monday", "tuesday", "wednesday",
                                              "thursday", "friday", "saturday"};

/* days since 1970-01-01 of a proleptic Gregorian date (the civil-from-days inverse) */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define TIME_MIN (-62135596800LL) /* 0001-01-01T00:00:00Z */
#define TIME_MAX 253402300799LL    /* 9999-12-31T23:59:59Z */

static int64_t clamp_time(int64_t t)
{
    return t < TIME_MIN ? TIME_MIN : t > TIME_MAX ? TIME_MAX : t;
}

/* floor(t / 86400) without overflow */
static int64_t floor_days(int64_t t)
{
    return t / 86400 - (t % 86400 < 0);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* a cursor over the date string */
typedef struct date_cur {
    const char *s;
    size_t len, i;
} date_cur_t;

static int cur_char(date_cur_t *c, char ch)
{
    if (c->i < c->len && c->s[c->i] == ch) {
        c->i++;
        return 1;
    }
    return 0;
}

/* exactly n digits */
static int cur_digits(date_cur_t *c, size_t n, unsigned *out)
{
    unsigned v = 0;
    if (c->len - c->i < n)
        return 0;
    for (size_t k = 0; k < n; k++) {
        char ch = c->s[c->i + k];
        if (ch < '0' || ch > '9')
            return 0;
        v = v * 10 + (unsigned)(ch - '0');
    }
    c->i += n;
    *out = v;
    return 1;
}

/* a run of letters matched case-insensitively against a table; returns the index or -1 */
static int cur_word(date_cur_t *c, const char *const *table, size_t n)
{
    size_t start = c->i;
    while (c->i < c->len && ((c->s[c->i] >= 'a' && c->s[c->i] <= 'z') || (c->s[c->i] >= 'A' && c->s[c->i] <= 'Z')))
        c->i++;
    for (size_t k = 0; k < n; k++)
        if (eq_ci(c->s + start, c->i - start, table[k]))
            return (int)k;
    return -1;
}

/* time-of-day = hour ":" minute ":" second */
static int cur_time(date_cur_t *c, unsigned *h, unsigned *mi, unsigned *sec)
{
    return cur_digits(c, 2, h) && cur_char(c, ':') && cur_digits(c, 2, mi) && cur_char(c, ':') &&
           cur_digits(c, 2, sec) && *h <= 23 && *mi <= 59 && *sec <= 60;
}

static int cur_gmt(date_cur_t *c)
{
    if (c->len - c->i < 3 || !eq_ci(c->s + c->i, 3, "gmt"))
        return 0;
    c->i += 3;
    return 1;
}

int policy_parse_http_date_at(const char *s, size_t len, int64_t now, int64_t *out)
{
    date_cur_t c = {s, len, 0};
    unsigned day = 0, hour = 0, minute = 0, second = 0, y = 0;
    int64_t year;
    int month;

    if (s == NULL)
        return -1;
    /* tolerate surrounding whitespace; the grammar itself has single SPs */
    while (c.len > 0 && is_ows((unsigned char)s[c.len - 1]))
        c.len--;
    while (c.i < c.len && is_ows((unsigned char)s[c.i]))
        c.i++;

    size_t name_start = c.i;
    int wday = cur_word(&c, day_names_short, 7);
    if (wday < 0) {
        c.i = name_start;
        wday = cur_word(&c, day_names_long, 7);
    }
    if (wday < 0)
        return -1;

    if (cur_char(&c, ',')) {
        if (!cur_char(&c, ' ') || !cur_digits(&c, 2, &day))
            return -1;
        if (cur_char(&c, '-')) {
            /* rfc850-date: day-name-l "," SP 2DIGIT "-" month "-" 2DIGIT SP time SP GMT */
            if ((month = cur_word(&c, month_names, 12)) < 0 || !cur_char(&c, '-') || !cur_digits(&c, 2, &y))
                return -1;
            /* RFC 9110 5.6.7: a year more than 50 years ahead means the previous century */
            int64_t now_year;
            unsigned now_m, now_d;
            civil_from_days(floor_days(clamp_time(now)), &now_year, &now_m, &now_d);
            year = now_year - now_year % 100 + y;
            if (year > now_year + 50)
                year -= 100;
            else if (year <= now_year - 50)
                year += 100;
        } else {
            /* IMF-fixdate: day-name "," SP 2DIGIT SP month SP 4DIGIT SP time SP GMT */
            if (!cur_char(&c, ' ') || (month = cur_word(&c, month_names, 12)) < 0 || !cur_char(&c, ' ') ||
                !cur_digits(&c, 4, &y))
                return -1;
            year = y;
        }
        if (!cur_char(&c, ' ') || !cur_time(&c, &hour, &minute, &second) || !cur_char(&c, ' ') || !cur_gmt(&c))
            return -1;
    } else {
        /* asctime-date: day-name SP month SP ( 2DIGIT / ( SP DIGIT ) ) SP time SP 4DIGIT */
        if (!cur_char(&c, ' ') || (month = cur_word(&c, month_names, 12)) < 0 || !cur_char(&c, ' '))
            return -1;
        if (cur_char(&c, ' ')) {
            if (!cur_digits(&c, 1, &day))
                return -1;
        } else if (!cur_digits(&c, 2, &day)) {
            return -1;
        }
        if (!cur_char(&c, ' ') || !cur_time(&c, &hour, &minute, &second) || !cur_char(&c, ' ') ||
            !cur_digits(&c, 4, &y))
            return -1;
        year = y;
    }
    if (c.i != c.len)
        return -1;
    if (day < 1 || day > days_in_month(year, (unsigned)month + 1))
        return -1;

    int64_t days = days_from_civil(year, (unsigned)month + 1, day);
    *out = days * 86400 + (int64_t)hour * 3600 + (int64_t)minute * 60 + (int64_t)second;
    return 0;
}

int policy_parse_http_date(const char *s, size_t len, int64_t *out)
{
    return policy_parse_http_date_at(s, len, (int64_t)time(NULL), out);
}

size_t policy_format_http_date(int64_t t, char *buf)
{
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const wdays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    int64_t y;
    unsigned m, d;

    t = clamp_time(t); /* keep the year at four digits so the result is always 29 bytes */
    int64_t days = floor_days(t);
    int64_t secs = t - days * 86400;
    civil_from_days(days, &y, &m, &d);
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    if (wd < 0)
        wd += 7;
    assert(secs >= 0 && secs < 86400 && y >= 1 && y <= 9999);
    int n = snprintf(buf, 30, "%s, %02u %s %04d %02d:%02d:%02d GMT", wdays[wd], d, mon[m - 1], (int)y,
                     (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
    assert(n == 29);
    return (size_t)n;
}

/* ---------------------------------------------------------------- the decision */

/* RFC 9110 15.1: statuses cacheable by default (heuristic freshness allowed) */
static int status_heuristically_cacheable(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 501:
        return 1;
    default:
        return 0;
    }
}

/* the final statuses whose caching requirements we implement (for must-understand) */
static int status_understood(int status)
{
    switch (status) {
    case 200: case 201: case 202: case 203: case 204: case 205:
    case 300: case 301: case 302: case 303: case 307: case 308:
    case 400: case 401: case 402: case 403: case 404: case 405: case 406: case 407: case 408:
    case 409: case 410: case 411: case 412: case 413: case 414: case 415: case 416: case 417:
    case 421: case 422: case 426:
    case 500: case 501: case 502: case 503: case 504: case 505:
        return 1;
    default:
        return 0;
    }
}

static int64_t clamp_delta(int64_t v)
{
    if (v < 0)
        return 0;
    return v > (int64_t)DELTA_SECONDS_CAP ? (int64_t)DELTA_SECONDS_CAP : v;
}

/* does a Vary value contain the member "*"? */
static int vary_has_star(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ows((unsigned char)v[i]) || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && is_ows((unsigned char)v[end - 1]))
            end--;
        if (end - start == 1 && v[start] == '*')
            return 1;
    }
    return 0;
}

/* Age: first member of the list; invalid → ignored (RFC 9111 5.1) */
static int parse_age(const char *v, size_t len, uint32_t *out)
{
    size_t i = 0, end;
    while (i < len && is_ows((unsigned char)v[i]))
        i++;
    end = i;
    while (end < len && v[end] != ',')
        end++;
    while (end > i && is_ows((unsigned char)v[end - 1]))
        end--;
    return parse_digits(v + i, end - i, out);
}

/* CDN-Cache-Control lines are joined before parsing (RFC 8941 4.2); a field longer than this
 * is ignored like any other one that cannot be read (a real one is a few dozen bytes) */
#define CDN_FIELD_MAX 4096

typedef struct cdn_field {
    char buf[CDN_FIELD_MAX];
    size_t len;
    int lines, too_long;
} cdn_field_t;

/* append one field line, ", "-separated; an empty line adds no member, so it adds nothing
 * (rather than a trailing comma that would make the whole field unparseable) */
static void cdn_field_append(cdn_field_t *f, const char *v, size_t len)
{
    while (len > 0 && is_ows((unsigned char)v[0])) {
        v++;
        len--;
    }
    while (len > 0 && is_ows((unsigned char)v[len - 1]))
        len--;
    if (len == 0)
        return;
    size_t need = len + (f->lines > 0 ? 2 : 0);
    if (f->too_long || need > sizeof(f->buf) - f->len) {
        f->too_long = 1;
        return;
    }
    if (f->lines++ > 0) {
        memcpy(f->buf + f->len, ", ", 2);
        f->len += 2;
    }
    memcpy(f->buf + f->len, v, len);
    f->len += len;
}

void policy_decide(int status, const policy_header_t *headers, size_t num_headers, const policy_request_info_t *req,
                   const policy_settings_t *settings, policy_decision_t *out)
{
    policy_cc_t cc, cdn, sc;
    cdn_field_t cdn_field;
    int has_set_cookie = 0, vary_star = 0;
    int date_seen = 0, date_ok = 0, age_seen = 0, age_ok = 0, lm_seen = 0, lm_ok = 0;
    int expires_count = 0, expires_ok = 0, expires_conflict = 0;
    int64_t date_value = 0, lm_value = 0, expires_value = 0;
    uint32_t age_value = 0;

    assert(req != NULL && settings != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    policy_cc_init(&cc);
    policy_cc_init(&cdn);
    policy_cc_init(&sc);
    cdn_field.len = 0;
    cdn_field.lines = 0;
    cdn_field.too_long = 0;

    for (size_t k = 0; k < num_headers; k++) {
        const policy_header_t *h = &headers[k];
        const char *v = h->value != NULL ? h->value : "";
        size_t vlen = h->value != NULL ? h->value_len : 0;
        int64_t t = 0;
        if (h->name == NULL)
            continue;
        if (eq_ci(h->name, h->name_len, "cache-control")) {
            cc_parse_field(&cc, v, vlen, 0);
        } else if (eq_ci(h->name, h->name_len, "cdn-cache-control")) {
            cdn_field_append(&cdn_field, v, vlen);
        } else if (eq_ci(h->name, h->name_len, "surrogate-control")) {
            cc_parse_field(&sc, v, vlen, 1);
        } else if (eq_ci(h->name, h->name_len, "expires")) {
            int ok = policy_parse_http_date_at(v, vlen, req->response_time, &t) == 0;
            if (expires_count++ == 0) {
                expires_ok = ok;
                expires_value = t;
            } else if (!ok || !expires_ok || t != expires_value) {
                expires_conflict = 1;
            }
        } else if (eq_ci(h->name, h->name_len, "date")) {
            if (!date_seen++)
                date_ok = policy_parse_http_date_at(v, vlen, req->response_time, &date_value) == 0;
        } else if (eq_ci(h->name, h->name_len, "age")) {
            if (!age_seen++)
                age_ok = parse_age(v, vlen, &age_value) == 0;
        } else if (eq_ci(h->name, h->name_len, "last-modified")) {
            if (!lm_seen++)
                lm_ok = policy_parse_http_date_at(v, vlen, req->response_time, &lm_value) == 0;
        } else if (eq_ci(h->name, h->name_len, "set-cookie")) {
            has_set_cookie = 1;
        } else if (eq_ci(h->name, h->name_len, "vary")) {
            vary_star |= vary_has_star(v, vlen);
        }
    }
    /* our own clock, but keep the arithmetic below far from int64 overflow whatever it says */
    int64_t response_time = clamp_time(req->response_time), request_time = clamp_time(req->request_time);
    if (!date_ok)
        date_value = response_time; /* RFC 9110 6.6.1: the receipt time stands in */

    /* RFC 9111 4.2.3 */
    {
        int64_t apparent_age = response_time - date_value;
        int64_t response_delay = response_time - request_time;
        if (apparent_age < 0)
            apparent_age = 0;
        if (response_delay < 0)
            response_delay = 0;
        int64_t corrected_age_value = (int64_t)(age_ok ? age_value : 0) + clamp_delta(response_delay);
        int64_t corrected_initial_age = apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
        out->initial_age = (uint32_t)clamp_delta(corrected_initial_age);
    }

    /* RFC 9213 2.2: a valid, non-empty CDN-Cache-Control replaces Cache-Control (and Expires)
     * for us; one that is empty, too long or does not parse is ignored as a whole */
    int cdn_valid = !cdn_field.too_long && policy_cdn_cc_parse(cdn_field.buf, cdn_field.len, &cdn) == 0;
    const policy_cc_t *eff = cdn_valid ? &cdn : &cc;
    int sc_fresh = sc.max_age != POLICY_UNSET || sc.max_age_invalid;

    /* --- storable? (RFC 9111 3) */
    if (!req->method_is_get_or_head) {
        out->not_stored_reason = "method";
        out->not_stored_by_request = 1;
        goto not_stored;
    }
    if (status < 200 || status > 599 || status == 304) {
        out->not_stored_reason = "status";
        out->not_stored_by_request = status == 304; /* the answer to a conditional request */
        goto not_stored;
    }
    if (status == 206) {
        out->not_stored_reason = "partial"; /* we fetch and store whole objects only */
        out->not_stored_by_request = 1;     /* the answer to a range request */
        goto not_stored;
    }
    if (eff->must_understand && !status_understood(status)) {
        out->not_stored_reason = "status";
        goto not_stored;
    }
    if ((eff->no_store && !eff->must_understand) || sc.no_store) {
        out->not_stored_reason = "no-store";
        goto not_stored;
    }
    if (eff->private_ || sc.private_) {
        out->not_stored_reason = "private";
        goto not_stored;
    }
    if (has_set_cookie) {
        out->not_stored_reason = "set-cookie";
        goto not_stored;
    }
    if (vary_star) {
        out->not_stored_reason = "vary";
        goto not_stored;
    }
    if (req->has_authorization &&
        !(eff->public_ || eff->s_maxage != POLICY_UNSET || eff->must_revalidate)) {
        out->not_stored_reason = "authorization"; /* RFC 9111 3.5 */
        out->not_stored_by_request = 1;
        goto not_stored;
    }

    /* --- freshness lifetime (RFC 9111 4.2.1, then Fastly's ordering for the surrogate fields) */
    int explicit_freshness = 1;
    int64_t ttl = 0;
    if (sc.max_age_invalid)
        ttl = 0;
    else if (sc.max_age != POLICY_UNSET)
        ttl = sc.max_age;
    else if (eff->s_maxage_invalid)
        ttl = 0;
    else if (eff->s_maxage != POLICY_UNSET)
        ttl = eff->s_maxage;
    else if (eff->max_age_invalid)
        ttl = 0;
    else if (eff->max_age != POLICY_UNSET)
        ttl = eff->max_age;
    else if (eff == &cc && expires_count > 0)
        ttl = (expires_ok && !expires_conflict) ? clamp_delta(expires_value - date_value) : 0;
    else
        explicit_freshness = 0;

    if (!explicit_freshness) {
        /* RFC 9111 4.2.2: heuristics only for heuristically cacheable statuses or "public" */
        int marked_public = eff->public_ || sc.public_;
        if (!status_heuristically_cacheable(status) && !marked_public) {
            out->not_stored_reason = "status";
            goto not_stored;
        }
        /* An error the origin did not mark cacheable may answer only this request (a header we do
         * not key on provoked it): it lives negative_ttl at most, and is not stored at 0 (CPDoS) */
        int negative = status >= 400 && !marked_public;
        if (negative && settings->negative_ttl == 0) {
            out->not_stored_reason = "status";
            goto not_stored;
        }
        if (lm_ok && lm_value <= date_value) {
            ttl = clamp_delta((date_value - lm_value) / 10);
            if (ttl > (int64_t)settings->max_heuristic_ttl)
                ttl = settings->max_heuristic_ttl;
        } else {
            ttl = negative ? settings->negative_ttl : settings->default_ttl;
        }
        if (negative && ttl > (int64_t)settings->negative_ttl)
            ttl = settings->negative_ttl;
    }
    out->storable = 1;
    out->ttl = (uint32_t)clamp_delta(ttl);

    /* --- revalidation and stale windows. When Surrogate-Control sets the lifetime, plain
     * Cache-Control's revalidation directives are for downstream caches. */
    const policy_cc_t *rv = cdn_valid ? &cdn : (sc_fresh ? NULL : &cc);
    int explicit_revalidate =
        sc.must_revalidate || sc.proxy_revalidate || (rv != NULL && (rv->must_revalidate || rv->proxy_revalidate));
    int smaxage_revalidate = rv != NULL && (rv->s_maxage != POLICY_UNSET || rv->s_maxage_invalid);
    out->no_cache = sc.no_cache || (rv != NULL && rv->no_cache);
    out->must_revalidate = explicit_revalidate || smaxage_revalidate;

    uint32_t swr = sc.stale_while_revalidate != POLICY_UNSET ? sc.stale_while_revalidate : eff->stale_while_revalidate;
    uint32_t sie = sc.stale_if_error != POLICY_UNSET ? sc.stale_if_error : eff->stale_if_error;
    if (explicit_revalidate || out->no_cache) {
        swr = 0;
        sie = 0;
    } else {
        if (swr == POLICY_UNSET)
            swr = 0;
        if (sie == POLICY_UNSET)
            sie = smaxage_revalidate ? 0 : settings->default_grace;
    }
    out->stale_while_revalidate = swr;
    out->stale_if_error = sie;
    return;

not_stored:
    out->storable = 0;
    out->ttl = 0;
    out->stale_while_revalidate = 0;
    out->stale_if_error = 0;
    out->no_cache = 0;
    out->must_revalidate = 0;
}

uint32_t policy_current_age(uint32_t initial_age, int64_t response_time_ms, int64_t now_ms)
{
    uint64_t resident = 0;
    if (now_ms > response_time_ms)
        resident = ((uint64_t)now_ms - (uint64_t)response_time_ms) / 1000;
    uint64_t age = (uint64_t)initial_age + resident;
    if (resident > (uint64_t)UINT32_MAX || age > (uint64_t)UINT32_MAX - 1)
        return UINT32_MAX - 1;
    return (uint32_t)age;
}

/*
 * Fold an Accept-Encoding value to what the cache keys on: "br" when br is acceptable,
 * else "gzip" when gzip (or x-gzip) is, else "" (identity). Codings are compared without
 * their parameters; a q of 0 makes a coding unacceptable (RFC 9110 12.5.3).
 */
const char *policy_normalize_accept_encoding(const char *v, size_t len)
{
    int br = 0, gzip = 0;
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && v[i] != ',')
            ++i;
        size_t end = i++;
        /* one element: coding [; params] */
        while (start < end && (v[start] == ' ' || v[start] == '\t'))
            ++start;
        size_t cend = start;
        while (cend < end && v[cend] != ';' && v[cend] != ' ' && v[cend] != '\t')
            ++cend;
        int acceptable = 1;
        const char *q = memchr(v + cend, ';', end - cend);
        while (q != NULL && q < v + end) {
            const char *p = q + 1;
            while (p < v + end && (*p == ' ' || *p == '\t'))
                ++p;
            if (v + end - p >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
                p += 2;
                acceptable = 0; /* q=0, q=0.0, q=0.000 */
                for (; p < v + end && *p != ';' && *p != ' '; ++p)
                    if (*p >= '1' && *p <= '9')
                        acceptable = 1;
            }
            q = memchr(p, ';', (size_t)(v + end - p));
        }
        size_t clen = cend - start;
        if (!acceptable)
            continue;
        if (clen == 2 && strncasecmp(v + start, "br", 2) == 0)
            br = 1;
        else if ((clen == 4 && strncasecmp(v + start, "gzip", 4) == 0) || (clen == 6 && strncasecmp(v + start, "x-gzip", 6) == 0))
            gzip = 1;
    }
    return br ? "br" : gzip ? "gzip" : "";
}

/*
 * A single byte range of a `len`-byte body (RFC 9110 14.1.2). Returns 1 with
 * [*first, *last] for a satisfiable single range, 0 when the header is to be ignored
 * (malformed, several ranges, not bytes), -1 when unsatisfiable (416).
 */
int policy_parse_range(const char *v, size_t vlen, uint64_t len, uint64_t *first, uint64_t *last)
{
    size_t i = 0;
    while (i < vlen && v[i] == ' ')
        ++i;
    if (vlen - i < 6 || strncasecmp(v + i, "bytes=", 6) != 0)
        return 0;
    i += 6;
    if (memchr(v + i, ',', vlen - i) != NULL)
        return 0; /* several ranges: the full response is a valid answer */
    while (i < vlen && v[i] == ' ')
        ++i;
    uint64_t a = 0, b = 0;
    int have_a = 0, have_b = 0;
    while (i < vlen && v[i] >= '0' && v[i] <= '9') {
        if (a > (UINT64_MAX - 9) / 10)
            return 0;
        a = a * 10 + (uint64_t)(v[i++] - '0');
        have_a = 1;
    }
    if (i >= vlen || v[i] != '-')
        return 0;
    ++i;
    while (i < vlen && v[i] >= '0' && v[i] <= '9') {
        if (b > (UINT64_MAX - 9) / 10)
            return 0;
        b = b * 10 + (uint64_t)(v[i++] - '0');
        have_b = 1;
    }
    while (i < vlen && v[i] == ' ')
        ++i;
    if (i != vlen || (!have_a && !have_b))
        return 0;
    if (!have_a) {
        /* suffix: the last b bytes */
        if (b == 0)
            return -1;
        *first = b >= len ? 0 : len - b;
        *last = len - 1;
        return len == 0 ? -1 : 1;
    }
    if (have_b && b < a)
        return 0;
    if (a >= len)
        return -1;
    *first = a;
    *last = !have_b || b >= len ? len - 1 : b;
    return 1;
}

