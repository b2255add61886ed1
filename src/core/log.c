/* core/log.c — stderr diagnostics: "TIME LEVEL message\n" in one write. */
#include "core/log.h"
#include "core/err.h"
#include "core/timeutil.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int level = LOG_INFO;

void log_set_level(enum log_level lvl)
{
    atomic_store(&level, (int)lvl);
}

int log_level_parse(const char *s, enum log_level *ret)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *ret = (enum log_level)i;
            return 0;
        }
    return ERR_INVAL;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
    static const char *tag[] = {"debug", "info", "warn", "error"};
    if ((int)lvl < atomic_load(&level))
        return;
    char line[2048];
    char ts[TIME_STR_LEN];
    time_format_us(time_now_us(), ts);
    int n = snprintf(line, sizeof(line), "%s %-5s ", ts, tag[lvl]);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
