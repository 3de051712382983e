/*
 * server/cache_policy.c — the caching rules of RFC 9111 (and Fastly's Surrogate-Control,
 * RFC 9213's CDN-Cache-Control) as pure functions over header bytes: the decision whether
 * and for how long to store a response (policy_decide), the current age, and the request
 * side's Accept-Encoding and Range. The other pieces of the module (server/cache_policy.h):
 * cache_control.c reads the directives (and says the latitude taken there), sf_dict.c the
 * RFC 8941 syntax of CDN-Cache-Control, http_date.c the dates.
 *
 * What it owns: nothing. Every function here reads the caller's buffers and writes the
 * caller's structs; there is no allocation, no global state and no lock, so any worker
 * thread may call anything here at any time. All input is untrusted origin bytes: it is
 * validated, never asserted on; asserts only guard our own arithmetic.
 *
 * Choices where RFC 9111 leaves latitude (the report and the tests pin each one):
 *
 *  - must-understand (5.2.2.3): the no-store in the same field is ignored when we
 *    understand the status (a registered final status other than 206 and 304); with any
 *    other status the response is not stored.
 *  - CDN-Cache-Control (RFC 9213): its lines are joined with ", " (empty lines skipped) and
 *    read by policy_cdn_cc_parse (an RFC 8941 Dictionary whose directives must have the
 *    types RFC 9213 2.1 infers: server/cache_control.c). A field that is empty, longer than
 *    CDN_FIELD_MAX, or refused there is ignored as a whole: Cache-Control, Expires and the
 *    heuristic apply as if it were absent. A valid, non-empty one (even "none", 9213 3.1)
 *    replaces Cache-Control and Expires for this cache (9213 2.2), its private, no-cache
 *    and public included.
 *  - Surrogate-Control: its max-age overrides every other source; no-store,
 *    no-store-remote, private, no-cache and must-revalidate in it are honoured. When it
 *    gives a max-age, the revalidation directives of plain Cache-Control (no-cache,
 *    must-revalidate, proxy-revalidate, the proxy-revalidate implied by s-maxage) are taken
 *    to be for downstream caches and not applied here — Fastly's documented use of
 *    "Cache-Control: no-cache" + "Surrogate-Control: max-age=N". Cache-Control no-store
 *    and private still prevent storing (Fastly passes those too). How its directives are
 *    read (targeted ones skipped, max-age=N+M): server/cache_control.c.
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
#include "server/cache_policy_int.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- the decision */

/* RFC 9110 15.1: statuses cacheable by default (heuristic freshness allowed) */
static int status_heuristically_cacheable(int status)
{
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501: return 1;
    default: return 0;
    }
}

/* the final statuses whose caching requirements we implement (for must-understand) */
static int status_understood(int status)
{
    switch (status) {
    case 200:
    case 201:
    case 202:
    case 203:
    case 204:
    case 205:
    case 300:
    case 301:
    case 302:
    case 303:
    case 307:
    case 308:
    case 400:
    case 401:
    case 402:
    case 403:
    case 404:
    case 405:
    case 406:
    case 407:
    case 408:
    case 409:
    case 410:
    case 411:
    case 412:
    case 413:
    case 414:
    case 415:
    case 416:
    case 417:
    case 421:
    case 422:
    case 426:
    case 500:
    case 501:
    case 502:
    case 503:
    case 504:
    case 505: return 1;
    default: return 0;
    }
}

static int64_t clamp_delta(int64_t v)
{
    if (v < 0)
        return 0;
    return v > (int64_t)POLICY_DELTA_SECONDS_CAP ? (int64_t)POLICY_DELTA_SECONDS_CAP : v;
}

/* does a Vary value contain the member "*"? */
static int vary_has_star(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (policy_is_ows((unsigned char)v[i]) || v[i] == ','))
            i++;
        size_t start = i;
        while (i < len && v[i] != ',')
            i++;
        size_t end = i;
        while (end > start && policy_is_ows((unsigned char)v[end - 1]))
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
    while (i < len && policy_is_ows((unsigned char)v[i]))
        i++;
    end = i;
    while (end < len && v[end] != ',')
        end++;
    while (end > i && policy_is_ows((unsigned char)v[end - 1]))
        end--;
    return policy_parse_digits(v + i, end - i, out);
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
    while (len > 0 && policy_is_ows((unsigned char)v[0])) {
        v++;
        len--;
    }
    while (len > 0 && policy_is_ows((unsigned char)v[len - 1]))
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
        if (policy_eq_ci(h->name, h->name_len, "cache-control")) {
            policy_cc_parse_field(&cc, v, vlen, 0);
        } else if (policy_eq_ci(h->name, h->name_len, "cdn-cache-control")) {
            cdn_field_append(&cdn_field, v, vlen);
        } else if (policy_eq_ci(h->name, h->name_len, "surrogate-control")) {
            policy_cc_parse_field(&sc, v, vlen, 1);
        } else if (policy_eq_ci(h->name, h->name_len, "expires")) {
            int ok = policy_parse_http_date_at(v, vlen, req->response_time, &t) == 0;
            if (expires_count++ == 0) {
                expires_ok = ok;
                expires_value = t;
            } else if (!ok || !expires_ok || t != expires_value) {
                expires_conflict = 1;
            }
        } else if (policy_eq_ci(h->name, h->name_len, "date")) {
            if (!date_seen++)
                date_ok = policy_parse_http_date_at(v, vlen, req->response_time, &date_value) == 0;
        } else if (policy_eq_ci(h->name, h->name_len, "age")) {
            if (!age_seen++)
                age_ok = parse_age(v, vlen, &age_value) == 0;
        } else if (policy_eq_ci(h->name, h->name_len, "last-modified")) {
            if (!lm_seen++)
                lm_ok = policy_parse_http_date_at(v, vlen, req->response_time, &lm_value) == 0;
        } else if (policy_eq_ci(h->name, h->name_len, "set-cookie")) {
            has_set_cookie = 1;
        } else if (policy_eq_ci(h->name, h->name_len, "vary")) {
            vary_star |= vary_has_star(v, vlen);
        }
    }
    /* our own clock, but keep the arithmetic below far from int64 overflow whatever it says */
    int64_t response_time = policy_clamp_time(req->response_time), request_time = policy_clamp_time(req->request_time);
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
    if (req->has_authorization && !(eff->public_ || eff->s_maxage != POLICY_UNSET || eff->must_revalidate)) {
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
    int explicit_revalidate = sc.must_revalidate || sc.proxy_revalidate ||
                              (rv != NULL && (rv->must_revalidate || rv->proxy_revalidate));
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
        else if ((clen == 4 && strncasecmp(v + start, "gzip", 4) == 0) ||
                 (clen == 6 && strncasecmp(v + start, "x-gzip", 6) == 0))
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
