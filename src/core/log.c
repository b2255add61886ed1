/* core/log.c — stderr diagnostics: "TIME LEVEL message\n".
 *
 * Unbuffered by default: one write(2) per line. The server switches to buffered
 * mode (log_buffered_start): under load it logs a line per request, and a write
 * per line was a syscall per request on the HTTP threads (about 4 % of their CPU on
 * PVM). Lines are then appended to a buffer and a flusher thread writes them at
 * most FLUSH_US after the first line of a batch, like nginx's access_log
 * buffer=...flush=... but with a 1 ms bound. Warnings and errors, and a line that
 * does not fit, are written at once by the caller, after every line before them:
 * the order of lines is always the order of log_msg calls. A process killed with
 * SIGKILL can lose the last millisecond of info lines (never an audit event: those
 * are in the store). */
#include "core/log.h"
#include "core/err.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static _Atomic int level = LOG_INFO;

#define LOG_BUF  (64 * 1024) /* a batch; a line is at most 2 KiB */
#define FLUSH_US 1000

/* Buffered mode. Lock order: out_mu, then mu. `front` takes lines under mu; whoever
 * writes holds out_mu, swaps the buffers under mu and writes `back` outside it, so
 * appenders never wait for a write(2) and batches go out in the order they filled. */
static struct {
    pthread_mutex_t mu, out_mu;
    pthread_cond_t cv;
    char bufs[2][LOG_BUF];
    char *front, *back;
    size_t len;
    bool stopping;
    pthread_t thread;
} lb = {.mu = PTHREAD_MUTEX_INITIALIZER,
        .out_mu = PTHREAD_MUTEX_INITIALIZER,
        .cv = PTHREAD_COND_INITIALIZER};
static _Atomic bool buffered;

static void write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w <= 0)
            return; /* EINTR aside, nothing to do about a broken stderr */
        p += w;
        n -= (size_t)w;
    }
}

/* With out_mu held: writes what `front` holds (plus `line`, appended first if given). */
static void flush_locked(const char *line, size_t n)
{
    pthread_mutex_lock(&lb.mu);
    char *full = lb.front;
    size_t len = lb.len;
    lb.front = lb.back;
    lb.back = full;
    lb.len = 0;
    pthread_mutex_unlock(&lb.mu);
    write_all(full, len);
    if (line)
        write_all(line, n);
}

static void *flusher(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&lb.mu);
        while (!lb.len && !lb.stopping)
            pthread_cond_wait(&lb.cv, &lb.mu);
        bool stop = lb.stopping;
        pthread_mutex_unlock(&lb.mu);
        if (stop)
            return NULL;
        /* let the batch fill: one write for every line of the next millisecond */
        struct timespec t = {0, FLUSH_US * 1000L};
        nanosleep(&t, NULL);
        pthread_mutex_lock(&lb.out_mu);
        flush_locked(NULL, 0);
        pthread_mutex_unlock(&lb.out_mu);
    }
}

int log_buffered_start(void)
{
    if (atomic_load(&buffered))
        return 0;
    lb.front = lb.bufs[0];
    lb.back = lb.bufs[1];
    lb.len = 0;
    lb.stopping = false;
    if (pthread_create(&lb.thread, NULL, flusher, NULL) != 0)
        return ERR_INTERNAL;
    atomic_store(&buffered, true);
    return 0;
}

void log_buffered_stop(void)
{
    if (!atomic_exchange(&buffered, false))
        return;
    pthread_mutex_lock(&lb.mu);
    lb.stopping = true;
    pthread_cond_signal(&lb.cv);
    pthread_mutex_unlock(&lb.mu);
    pthread_join(lb.thread, NULL);
    /* a log_msg that saw buffered mode before the exchange either appended before
     * `stopping` was set (written here) or sees it and writes its line itself */
    pthread_mutex_lock(&lb.out_mu);
    flush_locked(NULL, 0);
    pthread_mutex_unlock(&lb.out_mu);
}

static void emit(enum log_level lvl, const char *line, size_t len)
{
    if (!atomic_load(&buffered)) {
        write_all(line, len);
        return;
    }
    if (lvl < LOG_WARN) {
        pthread_mutex_lock(&lb.mu);
        if (!lb.stopping && lb.len + len <= LOG_BUF) {
            memcpy(lb.front + lb.len, line, len);
            bool first = lb.len == 0;
            lb.len += len;
            if (first)
                pthread_cond_signal(&lb.cv);
            pthread_mutex_unlock(&lb.mu);
            return;
        }
        pthread_mutex_unlock(&lb.mu);
    }
    /* a warning or an error goes out now; so does a line the buffer cannot take, and
     * any line once stopping */
    pthread_mutex_lock(&lb.out_mu);
    flush_locked(line, len);
    pthread_mutex_unlock(&lb.out_mu);
}

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
    emit(lvl, line, len);
}
