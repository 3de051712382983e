/*
 * server/sf_dict.c — RFC 8941 Structured Field Dictionaries (policy_sf_dict_parse): the
 * syntax of CDN-Cache-Control (RFC 9213). Part of the cache policy module
 * (server/cache_policy.h, prefix policy_).
 *
 * What it owns: nothing. No allocation, no global state, no lock and no recursion (inner
 * lists do not nest), so any thread may call it at any time; a parse is two passes of
 * O(len). The input is untrusted origin bytes: validated, never asserted on.
 *
 * Invariant: a caller never acts on part of a malformed field. The parser is a strict
 * transcription of RFC 8941 4.2 (so "Max-Age=60", "max-age=60, ," or an unterminated
 * string make the whole field unparseable); a first pass only validates, and members are
 * reported only when the whole value parses. A repeated key is reported at each occurrence
 * and the caller keeps the last (8941 4.2.2); parameters are validated and handed over as
 * written, their meaning left to the caller.
 */
#include <limits.h>
#include <string.h>
#include "server/cache_policy.h"
#include "server/cache_policy_int.h"

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
    for (ch = sf_peek(c); ch != -1 && (policy_is_tchar((unsigned char)ch) || ch == ':' || ch == '/'); ch = sf_peek(c))
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
