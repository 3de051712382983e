/*
 * server/http_date.c — HTTP dates (RFC 9110 5.6.7): the three formats a recipient must
 * accept (IMF-fixdate, the obsolete RFC 850 form with its two-digit year, asctime) parsed
 * to unix seconds, and IMF-fixdate formatted. Part of the cache policy module
 * (server/cache_policy.h, prefix policy_).
 *
 * What it owns: nothing. Pure functions over the caller's bytes (untrusted: validated,
 * never asserted on); any thread. The calendar is the proleptic Gregorian one; times are
 * clamped to the years 1..9999 (policy_clamp_time) so that the arithmetic stays far from
 * overflow and a formatted date is always 29 bytes. Parsing follows the grammar exactly
 * (single SPs, "GMT", a day that exists in its month) but tolerates whitespace around the
 * value; an RFC 850 year is read relative to the caller's "now".
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "server/cache_policy.h"
#include "server/cache_policy_int.h"

/* ---------------------------------------------------------------- HTTP dates */

static const char *const month_names[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                            "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names_short[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
static const char *const day_names_long[7] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};

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
        if (policy_eq_ci(c->s + start, c->i - start, table[k]))
            return (int)k;
    return -1;
}

/* time-of-day = hour ":" minute ":" second */
static int cur_time(date_cur_t *c, unsigned *h, unsigned *mi, unsigned *sec)
{
    return cur_digits(c, 2, h) && cur_char(c, ':') && cur_digits(c, 2, mi) && cur_char(c, ':') && cur_digits(c, 2, sec) &&
           *h <= 23 && *mi <= 59 && *sec <= 60;
}

static int cur_gmt(date_cur_t *c)
{
    if (c->len - c->i < 3 || !policy_eq_ci(c->s + c->i, 3, "gmt"))
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
    while (c.len > 0 && policy_is_ows((unsigned char)s[c.len - 1]))
        c.len--;
    while (c.i < c.len && policy_is_ows((unsigned char)s[c.i]))
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
            civil_from_days(floor_days(policy_clamp_time(now)), &now_year, &now_m, &now_d);
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
        if (!cur_char(&c, ' ') || !cur_time(&c, &hour, &minute, &second) || !cur_char(&c, ' ') || !cur_digits(&c, 4, &y))
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
    static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    static const char *const wdays[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    int64_t y;
    unsigned m, d;

    t = policy_clamp_time(t); /* keep the year at four digits so the result is always 29 bytes */
    int64_t days = floor_days(t);
    int64_t secs = t - days * 86400;
    civil_from_days(days, &y, &m, &d);
    int64_t wd = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    if (wd < 0)
        wd += 7;
    assert(secs >= 0 && secs < 86400 && y >= 1 && y <= 9999);
    /* by hand, not snprintf: every hit formats its Date (a third of a hit's instructions) */
    unsigned hh = (unsigned)(secs / 3600), mm = (unsigned)(secs / 60 % 60), ss = (unsigned)(secs % 60), yy = (unsigned)y;
    char *p = buf;
    memcpy(p, wdays[wd], 3), p += 3;
    *p++ = ',', *p++ = ' ';
    *p++ = (char)('0' + d / 10), *p++ = (char)('0' + d % 10), *p++ = ' ';
    memcpy(p, mon[m - 1], 3), p += 3;
    *p++ = ' ';
    *p++ = (char)('0' + yy / 1000), *p++ = (char)('0' + yy / 100 % 10), *p++ = (char)('0' + yy / 10 % 10),
    *p++ = (char)('0' + yy % 10), *p++ = ' ';
    *p++ = (char)('0' + hh / 10), *p++ = (char)('0' + hh % 10), *p++ = ':';
    *p++ = (char)('0' + mm / 10), *p++ = (char)('0' + mm % 10), *p++ = ':';
    *p++ = (char)('0' + ss / 10), *p++ = (char)('0' + ss % 10);
    memcpy(p, " GMT", 5), p += 4;
    assert(p - buf == 29);
    return 29;
}

/*
 * Every hit sends its stored Date, so the same field is read again and again: each thread
 * keeps the last IMF-fixdate it read and its result. Only that form (four-digit year) is
 * kept, because only its reading does not depend on the clock (RFC 850's two-digit year does).
 */
int policy_http_date_fixdate(const char *s, size_t len, char out[30])
{
    static __thread char last_in[29], last_out[30];
    static __thread int have_last;
    int64_t t;

    int cacheable = len == 29 && s[3] == ',' && s[12] >= '0' && s[12] <= '9' && s[13] >= '0' && s[13] <= '9' && s[14] >= '0' &&
                    s[14] <= '9' && s[15] >= '0' && s[15] <= '9';
    if (cacheable && have_last && memcmp(s, last_in, 29) == 0) {
        memcpy(out, last_out, 30);
        return 0;
    }
    if (policy_parse_http_date(s, len, &t) != 0)
        return -1;
    policy_format_http_date(t, out);
    if (cacheable) {
        memcpy(last_in, s, 29);
        memcpy(last_out, out, 30);
        have_last = 1;
    }
    return 0;
}
