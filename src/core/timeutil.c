/* core/timeutil.c — time formatting and the policy duration syntax. */
#include "core/timeutil.h"
#include "core/err.h"

#include <stdio.h>
#include <time.h>

int64_t time_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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
