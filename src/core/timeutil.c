/* core/timeutil.c — time formatting and the policy duration syntax. */
#include "core/timeutil.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t time_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void time_format_us(int64_t us, char out[TIME_STR_LEN])
{
    int64_t frac = us % 1000000;
    time_t s = (time_t)(us / 1000000);
    if (frac < 0) { /* floor, not truncation, before 1970 */
        frac += 1000000;
        s--;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    char tmp[96]; /* room for any int, so the compiler can prove no truncation */
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
             (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100,
             tm.tm_min % 100, tm.tm_sec % 100, (int)frac);
    snprintf(out, TIME_STR_LEN, "%.31s", tmp);
}

void time_format_s(int64_t sec, char out[TIME_STR_LEN])
{
    time_t s = (time_t)sec;
    struct tm tm;
    gmtime_r(&s, &tm);
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02dZ", (tm.tm_year + 1900) % 10000,
             (tm.tm_mon + 1) % 100, tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100,
             tm.tm_sec % 100);
    snprintf(out, TIME_STR_LEN, "%.31s", tmp);
}

int duration_parse(const char *s, int64_t *ret_seconds)
{
    static const struct {
        char c;
        int64_t mul;
    } units[] = {{'d', 86400}, {'h', 3600}, {'m', 60}, {'s', 1}};
    const int64_t limit = 10LL * 366 * 86400;
    if (!s || !*s)
        return ERR_INVAL;
    int64_t total = 0;
    size_t next_unit = 0;
    const char *p = s;
    while (*p) {
        if (*p < '0' || *p > '9')
            return ERR_INVAL;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
            v = v * 10 + (*p++ - '0');
            if (v > limit)
                return ERR_INVAL;
        }
        int64_t mul = 0;
        if (!*p) {
            if (p != s && total == 0 && next_unit == 0)
                mul = 1; /* bare integer: seconds */
            else
                return ERR_INVAL;
        } else {
            size_t u = next_unit;
            while (u < 4 && units[u].c != *p)
                u++;
            if (u == 4)
                return ERR_INVAL;
            mul = units[u].mul;
            next_unit = u + 1;
            p++;
        }
        total += v * mul;
        if (total > limit)
            return ERR_INVAL;
    }
    if (total <= 0)
        return ERR_INVAL;
    *ret_seconds = total;
    return 0;
}

void duration_format(int64_t seconds, char out[TIME_STR_LEN])
{
    snprintf(out, TIME_STR_LEN, "%llds", (long long)seconds);
}

static int digits(const char *s, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

int time_parse_rfc3339(const char *s, int64_t *ret_us)
{
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return ERR_INVAL;
    static const int mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
        sec > 60)
        return ERR_INVAL;
    const char *p = s + 19;
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int n = 0;
        int64_t scale = 100000;
        while (*p >= '0' && *p <= '9') {
            if (n < 6) {
                frac += (*p - '0') * scale;
                scale /= 10;
            }
            if (++n > 9)
                return ERR_INVAL;
            p++;
        }
        if (n == 0)
            return ERR_INVAL;
    }
    int offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return ERR_INVAL;
        offset = (oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return ERR_INVAL;
    }
    if (*p)
        return ERR_INVAL;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = sec > 59 ? 59 : sec};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ERR_INVAL;
    *ret_us = ((int64_t)t - offset) * 1000000 + frac;
    return 0;
}

int duration_parse_ms(const char *s, int64_t *ret_ms)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 2 && n < 12 && strcmp(s + n - 2, "ms") == 0) {
        int64_t v = 0;
        for (size_t i = 0; i < n - 2; i++) {
            if (s[i] < '0' || s[i] > '9')
                return ERR_INVAL;
            v = v * 10 + (s[i] - '0');
        }
        if (v <= 0)
            return ERR_INVAL;
        *ret_ms = v;
        return 0;
    }
    int64_t secs = 0;
    if (duration_parse(s, &secs) < 0)
        return ERR_INVAL;
    *ret_ms = secs * 1000;
    return 0;
}
