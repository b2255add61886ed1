/* logs/logs.h — the system log API's request model (GET /api/v1/logs and
 * /export): query parameters checked and turned into a store_query, the opaque
 * `after` cursor, and chain verification.
 *
 * Cursors: "SEQ.MAC" where MAC = HMAC-SHA256(key, SEQ || the canonical query)
 * truncated to 128 bits. A cursor is valid only for the query that produced it
 * (same filter, q, since, until, sortOrder), so a forged or reused one is a 400,
 * never a way to read around a filter. The key is derived from the KEK, so
 * cursors survive restarts (a client tailing the log resumes where it was). */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

#define LOGS_MAX_LIMIT 1000
#define LOGS_DEFAULT_LIMIT 100

/* Raw query parameters as received (any may be NULL). */
struct logs_params {
    const char *since, *until, *filter, *q, *limit, *after, *sort_order;
};

struct logs_request {
    struct store_query q;   /* ready to run; borrows from this struct */
    struct store_filter *filter;
    char since[40], until[40]; /* resolved UTC bounds ("" = none) */
    char *q_copy;
    int polling;            /* ascending without until: the next link never ends */
    size_t limit;
    unsigned char key[32];
    char canon_hash[65];    /* binds cursors to this query */
};

/* Checks every parameter (400-worthy problems are ERR_INVAL with a message naming the
 * parameter and, for filters, the column) and resolves relative times against `now_us`.
 * `max_seq` is the log's current end (stale-cursor check). `limit_max` caps limit
 * (LOGS_MAX_LIMIT for pages; SIZE_MAX for exports). */
int logs_request_parse(const struct logs_params *p, const unsigned char key[32], int64_t now_us,
                       int64_t max_seq, size_t limit_max, struct logs_request *ret,
                       struct err_detail *d);
void logs_request_done(struct logs_request *r);
/* The cursor for a page that ended at `seq`. out: at least 64 bytes. */
void logs_cursor(const struct logs_request *r, int64_t seq, char out[64]);
/* The query string of the next page ("since=...&filter=...&after=..."), percent-encoded,
 * without the leading '?'. Owned (free()). */
char *logs_next_query(const struct logs_request *r, const struct logs_params *p, int64_t seq);

/* Recomputes the hash chain from seq `from` (>= 1) to `to` (0 = the end). *ret:
 * {"ok": true, "verified": N, "first_seq", "last_seq"} or {"ok": false, "broken_seq": S,
 * "reason": "...", "verified": N}. */
int logs_verify(struct store *s, int64_t from, int64_t to, json_t **ret, struct err_detail *d);
