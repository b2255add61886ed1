/* core/log.h — the diagnostics log (stderr, one line per record, logfmt-ish).
 * Only the program's edges log (main, serve, the HTTP boundary once per
 * request); library folders return errors instead. Never pass a token or a
 * secret. Thread-safe; a line is written whole and lines keep their order. */
#pragma once

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
int log_level_parse(const char *s, enum log_level *ret);
/* Buffered mode for the server: info and debug lines are written in batches by a
 * thread of their own, at most 1 ms late; warnings and errors at once. Stop before
 * exit: it writes what is left. Both are idempotent. */
int log_buffered_start(void);
void log_buffered_stop(void);
void log_msg(enum log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
