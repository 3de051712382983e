/*
 * server/cache_policy.h — HTTP caching decisions (RFC 9111 and Fastly's
 * surrogate headers): header parsers and the store/freshness decision for a
 * response. Pure functions, no I/O, no allocation beyond the caller's buffers:
 * every parser takes untrusted bytes and never asserts on them.
 *
 * Implemented by server/cache_control.c (Cache-Control, Surrogate-Control and
 * CDN-Cache-Control directives), sf_dict.c (RFC 8941 Dictionaries), http_date.c (HTTP
 * dates) and cache_policy.c (the decision, the current age, Accept-Encoding and Range).
 */
#ifndef EDGECACHE_CACHE_POLICY_H
#define EDGECACHE_CACHE_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define POLICY_UNSET UINT32_MAX /* a delta-seconds directive that was absent or invalid */

/* parsed Cache-Control (or CDN-Cache-Control / Surrogate-Control) directives */
typedef struct policy_cc {
    uint32_t max_age;                /* POLICY_UNSET if absent */
    uint32_t s_maxage;               /* POLICY_UNSET if absent */
    uint32_t stale_while_revalidate; /* POLICY_UNSET if absent */
    uint32_t stale_if_error;         /* POLICY_UNSET if absent */
    unsigned no_store : 1, no_cache : 1, private_ : 1, public_ : 1, must_revalidate : 1, proxy_revalidate : 1,
        no_transform : 1, immutable : 1, only_if_cached : 1;
    unsigned max_age_invalid : 1;  /* max-age present but malformed or duplicated with different values */
    unsigned s_maxage_invalid : 1; /* the same for s-maxage (s_maxage is then POLICY_UNSET) */
    unsigned must_understand : 1;  /* RFC 9111 5.2.2.3: no-store may be ignored for understood statuses */
} policy_cc_t;

/**
 * Parse a Cache-Control-style field value (comma separated directives, quoted strings,
 * case-insensitive names). Call repeatedly to merge several header lines into one
 * struct (initialise it with policy_cc_init first). Malformed directives are skipped;
 * a malformed delta-seconds value makes the directive count as present-but-invalid,
 * which for max-age means "stale" (RFC 9111 4.2.1, 5.2.2.1).
 */
void policy_cc_init(policy_cc_t *cc);
void policy_cc_parse(policy_cc_t *cc, const char *value, size_t len);

/* RFC 8941 value types, as policy_sf_dict_parse reports a member's value */
typedef enum policy_sf_type {
    POLICY_SF_INTEGER = 1, /* -999,999,999,999,999 .. 999,999,999,999,999 */
    POLICY_SF_DECIMAL,     /* up to 12 integer and 3 fractional digits */
    POLICY_SF_STRING,
    POLICY_SF_TOKEN,
    POLICY_SF_BYTES,      /* :base64: */
    POLICY_SF_BOOLEAN,    /* ?0 / ?1, and a key without "=" (true) */
    POLICY_SF_INNER_LIST, /* ( item item ... ) */
} policy_sf_type_t;

/* One member of a Dictionary. Every pointer points into the parsed value (borrowed). */
typedef struct policy_sf_member {
    const char *key; /* lcalpha / "*" then lcalpha, DIGIT, "_", "-", ".", "*" */
    size_t key_len;
    policy_sf_type_t type;
    int64_t number;   /* INTEGER: the value; DECIMAL: the value in thousandths; BOOLEAN: 0 or 1;
                         INNER_LIST: the number of items; otherwise 0 */
    const char *item; /* the value as written: a bare item (a string with its quotes and escapes)
                         or "( ... )"; empty for a key without "=" */
    size_t item_len;
    const char *params; /* the member's parameters as written (";a=1;b"), possibly empty;
                           parameters carry no meaning for the policy and are only validated */
    size_t params_len;
} policy_sf_member_t;

/** Called once per member, in field order (a repeated key once per occurrence). */
typedef void (*policy_sf_member_cb)(const policy_sf_member_t *member, void *ctx);

/**
 * Parse value[0..len) as an RFC 8941 Dictionary (3.2; the algorithm of 4.2 and 4.2.2, with
 * every item type, parameters and inner lists). Several field lines must be joined with ","
 * first (RFC 8941 4.2). When the whole value parses, calls on_member(member, ctx) for each
 * member (on_member may be NULL) and returns the number of members (0: an empty
 * dictionary); when it does not, calls nothing and returns -1, so a caller never acts on
 * part of a malformed field. A key repeated overwrites the earlier value (RFC 8941 4.2.2):
 * the caller keeps the last one. Pure and bounded: no allocation, no recursion (inner lists
 * do not nest), two passes of O(len). Members borrow value and are valid while it is.
 */
int policy_sf_dict_parse(const char *value, size_t len, policy_sf_member_cb on_member, void *ctx);

/**
 * CDN-Cache-Control (RFC 9213) from its field value (several lines joined with ","). Returns
 * 0 and fills *cc (initialised here) when the value is a non-empty Dictionary whose known
 * directives have the types RFC 9213 2.1 infers for them: max-age, s-maxage,
 * stale-while-revalidate, stale-if-error a non-negative Integer; no-store, must-revalidate,
 * proxy-revalidate, public, immutable, no-transform, must-understand the Boolean true;
 * no-cache, private true or a String. Returns -1 when the field is to be ignored as a whole
 * (RFC 9213 2.1: empty, does not parse, or a known directive of the wrong type, e.g.
 * max-age=1.5, max-age="60", max-age=-1) and the caller falls back to Cache-Control.
 * Unknown directives (any type) and parameters are ignored.
 */
int policy_cdn_cc_parse(const char *value, size_t len, policy_cc_t *cc);

/** Parse an IMF-fixdate / RFC 850 / asctime HTTP date. Returns 0 and unix seconds, or -1. */
int policy_parse_http_date(const char *s, size_t len, int64_t *out);

/**
 * policy_parse_http_date with an explicit "now" (unix seconds) for the RFC 850 two-digit
 * year rule (RFC 9110 5.6.7: a year more than 50 years after now's year means the previous
 * century). policy_parse_http_date uses time(NULL); policy_decide passes response_time.
 */
int policy_parse_http_date_at(const char *s, size_t len, int64_t now, int64_t *out);

/** Format unix seconds as IMF-fixdate into buf (at least 30 bytes). Returns the length (29). */
size_t policy_format_http_date(int64_t t, char *buf);

/**
 * An HTTP-date field in IMF-fixdate form: 0 and the 29 bytes plus a NUL in out, or -1 when
 * the field is not an HTTP-date. The same result as policy_format_http_date of
 * policy_parse_http_date; each thread remembers the last IMF-fixdate it read, so a hit that
 * sends the same stored Date again costs a comparison.
 */
int policy_http_date_fixdate(const char *s, size_t len, char out[30]);

/** A response header as the policy sees it (name lower-case). */
typedef struct policy_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} policy_header_t;

typedef struct policy_settings {
    uint32_t default_ttl;       /* used when nothing else gives a lifetime */
    uint32_t max_heuristic_ttl; /* cap of the Last-Modified heuristic */
    uint32_t default_grace;     /* stale-if-error when the response gives none */
    uint32_t negative_ttl;      /* lifetime (and heuristic cap) of a 4xx/5xx without explicit freshness or
                                   public; 0: such a response is not stored */
} policy_settings_t;

typedef struct policy_request_info {
    int method_is_get_or_head;
    int has_authorization;
    int64_t request_time;  /* unix seconds when the request to the origin was sent */
    int64_t response_time; /* unix seconds when the response head arrived */
} policy_request_info_t;

typedef struct policy_decision {
    int storable;                  /* 1: store it; 0: pass it on without storing */
    const char *not_stored_reason; /* static string when !storable, e.g. "no-store" */
    int not_stored_by_request;     /* !storable because of this request ("method", "authorization", a 206 or
                                  304, which answer a range or conditional request), not of the response:
                                  says nothing about other requests for the URL */
    uint32_t ttl;                  /* freshness lifetime, seconds */
    uint32_t initial_age;          /* corrected_initial_age, seconds (RFC 9111 4.2.3) */
    uint32_t stale_while_revalidate;
    uint32_t stale_if_error;
    int no_cache;        /* store, but revalidate before each use */
    int must_revalidate; /* never serve stale */
} policy_decision_t;

/*
 * How to read a decision (details and the RFC latitude taken: the essays atop cache_policy.c and
 * cache_control.c):
 * - storable == 0: pass the response through; not_stored_reason is one of "method", "status",
 *   "partial", "no-store", "private", "set-cookie", "vary", "authorization". "method",
 *   "authorization", "partial" (a 206) and "status" for a 304 come from the request and set
 *   not_stored_by_request: the same URL asked another way may be storable, so nothing may be
 *   remembered about the URL (hit-for-pass) because of them; every other reason comes from the
 *   response.
 * - ttl may be 0 (max-age=0, invalid max-age/Expires, ...): store, but the object is stale at once.
 * - stale_while_revalidate / stale_if_error are the windows the proxy may serve stale in; they
 *   are already 0 when a directive forbids stale (no-cache, must-revalidate, proxy-revalidate),
 *   and stale_if_error falls back to settings->default_grace only when nothing forbids it.
 *   must_revalidate == 1 means: beyond those windows, never serve stale (no extra grace).
 */

/**
 * Decide whether and for how long to store a response (status + headers, names lower-case).
 * Freshness precedence: Surrogate-Control max-age > CDN-Cache-Control > Cache-Control
 * s-maxage > max-age > Expires - Date > heuristic (10% of Date - Last-Modified, capped,
 * heuristically cacheable statuses only) > settings->default_ttl. A 4xx/5xx that has no
 * explicit freshness and is not public gets settings->negative_ttl instead of default_ttl,
 * its heuristic is capped at negative_ttl too, and it is not stored (reason "status") when
 * negative_ttl is 0.
 */
void policy_decide(int status, const policy_header_t *headers, size_t num_headers, const policy_request_info_t *req,
                   const policy_settings_t *settings, policy_decision_t *out);

/**
 * Current age in seconds of a stored response (RFC 9111 4.2.3):
 * corrected_initial_age + (now - response_time).
 */
uint32_t policy_current_age(uint32_t initial_age, int64_t response_time_ms, int64_t now_ms);

/**
 * Fold an Accept-Encoding field value to what the cache keys variants on: "br" when br is
 * acceptable, else "gzip" when gzip (or x-gzip) is, else "" (identity). Codings compare
 * without their parameters; q=0 makes a coding unacceptable. Returns a static string.
 */
const char *policy_normalize_accept_encoding(const char *value, size_t len);

/**
 * A Range field value against a body of `len` bytes (RFC 9110 14.1.2, single byte range).
 * Returns 1 with [*first, *last] for a satisfiable range, 0 when the header is to be
 * ignored (malformed, several ranges, not bytes: serve the full response), -1 when
 * unsatisfiable (416).
 */
int policy_parse_range(const char *value, size_t vlen, uint64_t len, uint64_t *first, uint64_t *last);

#endif
