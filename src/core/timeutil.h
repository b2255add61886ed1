/* core/timeutil.h — wall-clock time in the forms mcpauth writes: RFC 3339 UTC
 * with microseconds for events, whole seconds for token expiry, and the
 * duration syntax of policy files ("300s", "5m", "1h", "1h30m"). */
#pragma once
#include <stdint.h>

#define TIME_STR_LEN 32

/* Microseconds since the Unix epoch, CLOCK_REALTIME. */
int64_t time_now_us(void);
/* Milliseconds of CLOCK_MONOTONIC, for timeouts and intervals (never goes back). */
int64_t time_mono_ms(void);
/* "2026-11-22T09:14:03.512384Z" */
void time_format_us(int64_t us, char out[TIME_STR_LEN]);
/* "2026-11-22T09:19:03Z" */
void time_format_s(int64_t s, char out[TIME_STR_LEN]);
/* Parses an RFC 3339 date-time ("2026-11-22T09:14:03Z", "...03.5+01:00"; 'T'/'t'/' ' and
 * 'Z'/'z' accepted, fraction up to 9 digits, kept to microseconds) into microseconds since
 * the epoch. Returns 0 or ERR_INVAL. */
int time_parse_rfc3339(const char *s, int64_t *ret_us);
/* Parses a duration: digits followed by a unit (ms is rejected; s, m, h, d), units may
 * repeat in decreasing order ("1h30m"); a bare integer means seconds. Result in seconds,
 * 0 < result <= 10 years. Returns 0 or ERR_INVAL. */
int duration_parse(const char *s, int64_t *ret_seconds);
/* "250ms", or a duration as duration_parse() takes it, in milliseconds (> 0).
 * Returns 0 or ERR_INVAL. */
int duration_parse_ms(const char *s, int64_t *ret_ms);
/* Canonical form written back: "300s". */
void duration_format(int64_t seconds, char out[TIME_STR_LEN]);
