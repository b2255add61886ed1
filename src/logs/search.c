/* logs/search.c — GET /api/v1/logs parameters to a store_query, and cursors.
 * Every bound is checked here so store/ only ever sees well-formed queries. */
#include "logs/logs.h"
#include "core/b64.h"
#include "core/buf.h"
#include "core/timeutil.h"
#include "jose/crypto.h"
#include "logs/scim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "-15m", "-2h", "-7d", "-30s" relative to now, or RFC 3339. */
static int parse_time(const char *s, int64_t now_us, char out[40])
{
    int64_t us;
    if (s[0] == '-') {
        int64_t secs;
        if (duration_parse(s + 1, &secs) < 0)
            return -1;
        us = now_us - secs * 1000000;
    } else if (time_parse_rfc3339(s, &us) < 0) {
        return -1;
    }
    char t[TIME_STR_LEN];
    time_format_us(us, t);
    snprintf(out, 40, "%s", t);
    return 0;
}

static void canon(struct logs_request *r, const struct logs_params *p)
{
    struct buf b;
    buf_init(&b, 0);
    buf_printf(&b, "f=%s\n", p->filter ? p->filter : "");
    buf_printf(&b, "q=%s\n", p->q ? p->q : "");
    buf_printf(&b, "s=%s\nu=%s\no=%d\n", r->since, r->until, r->q.descending);
    crypto_sha256_hex(b.data ? b.data : "", b.len, r->canon_hash);
    buf_done(&b);
}

static void mac(const struct logs_request *r, int64_t seq, char out[32])
{
    char msg[128];
    int n = snprintf(msg, sizeof(msg), "%lld\n%s", (long long)seq, r->canon_hash);
    unsigned char d[SHA256_LEN];
    crypto_hmac_sha256(r->key, sizeof(r->key), msg, (size_t)n, d);
    b64url_encode(d, 16, out);
}

void logs_cursor(const struct logs_request *r, int64_t seq, char out[64])
{
    char m[32];
    mac(r, seq, m);
    snprintf(out, 64, "%lld.%s", (long long)seq, m);
}

int logs_request_parse(const struct logs_params *p, const unsigned char key[32], int64_t now_us,
                       int64_t max_seq, size_t limit_max, struct logs_request *ret,
                       struct err_detail *d)
{
    struct logs_request r;
    memset(&r, 0, sizeof(r));
    memcpy(r.key, key, 32);
    int e = 0;
    if (p->since && parse_time(p->since, now_us, r.since) < 0)
        return err_set(d, ERR_INVAL,
                       "since: expected an RFC 3339 date-time (2026-11-22T09:14:03Z) or a "
                       "relative time such as -15m, -1h, -7d");
    if (p->until && parse_time(p->until, now_us, r.until) < 0)
        return err_set(d, ERR_INVAL,
                       "until: expected an RFC 3339 date-time (2026-11-22T09:14:03Z) or a "
                       "relative time such as -15m, -1h, -7d");
    if (r.since[0] && r.until[0] && strcmp(r.since, r.until) > 0)
        return err_set(d, ERR_INVAL, "since is after until");
    if (p->sort_order) {
        if (strcmp(p->sort_order, "ASCENDING") == 0)
            r.q.descending = 0;
        else if (strcmp(p->sort_order, "DESCENDING") == 0)
            r.q.descending = 1;
        else
            return err_set(d, ERR_INVAL, "sortOrder: expected ASCENDING or DESCENDING");
    }
    r.limit = LOGS_DEFAULT_LIMIT;
    if (p->limit) {
        char *end = NULL;
        long long v = strtoll(p->limit, &end, 10);
        if (!*p->limit || *end || v < 1 || (unsigned long long)v > limit_max)
            return limit_max == SIZE_MAX
                       ? err_set(d, ERR_INVAL, "limit: expected a positive integer")
                       : err_set(d, ERR_INVAL, "limit: expected an integer from 1 to %zu",
                                 limit_max);
        r.limit = (size_t)v;
    } else if (limit_max > LOGS_MAX_LIMIT) {
        r.limit = limit_max; /* exports: everything selected */
    }
    if (p->q) {
        size_t n = strlen(p->q);
        if (n > 400)
            return err_set(d, ERR_INVAL, "q: at most 400 bytes");
        r.q_copy = strdup(p->q);
        if (!r.q_copy)
            return ERR_NOMEM;
        for (char *save = NULL, *t = strtok_r(r.q_copy, " ", &save); t;
             t = strtok_r(NULL, " ", &save)) {
            if (r.q.n_keywords == STORE_QUERY_MAX_KEYWORDS) {
                e = err_set(d, ERR_INVAL, "q: at most %d keywords", STORE_QUERY_MAX_KEYWORDS);
                goto fail;
            }
            if (strlen(t) > 40) {
                e = err_set(d, ERR_INVAL, "q: a keyword has at most 40 characters");
                goto fail;
            }
            r.q.keywords[r.q.n_keywords++] = t;
        }
    }
    if (p->filter && *p->filter) {
        struct err_detail fd = {{0}};
        e = scim_parse(p->filter, strlen(p->filter), &r.filter, &fd);
        if (e < 0) {
            /* a query parameter: too complex is a bad request, not a 413 */
            e = e == ERR_NOMEM ? e : ERR_INVAL;
            err_set(d, e, "filter: %s", fd.msg);
            goto fail;
        }
    }
    canon(&r, p);
    if (p->after) {
        const char *dot = strchr(p->after, '.');
        char *end = NULL;
        long long seq = strtoll(p->after, &end, 10);
        char want[32];
        if (!dot || end != dot || seq < 0) {
            e = err_set(d, ERR_INVAL, "after: not a cursor (use the Link rel=\"next\" URL)");
            goto fail;
        }
        mac(&r, seq, want);
        if (!crypto_streq(dot + 1, want)) {
            e = err_set(d, ERR_INVAL, "after: this cursor was not issued for this query (use the "
                                      "Link rel=\"next\" URL as given)");
            goto fail;
        }
        if (seq > max_seq) {
            e = err_set(d, ERR_INVAL, "after: stale cursor: the log ends at seq %lld",
                        (long long)max_seq);
            goto fail;
        }
        r.q.after_seq = seq;
        if (r.q.descending && seq == 0) {
            e = err_set(d, ERR_INVAL, "after: nothing comes after the start");
            goto fail;
        }
    }
    r.polling = !r.until[0] && !r.q.descending;
    *ret = r;
    ret->q.filter = ret->filter;
    ret->q.since = ret->since[0] ? ret->since : NULL;
    ret->q.until = ret->until[0] ? ret->until : NULL;
    ret->q.limit = ret->limit;
    /* keywords point into q_copy, which moved with the struct copy: re-point them */
    for (size_t i = 0; i < ret->q.n_keywords; i++)
        ret->q.keywords[i] = ret->q_copy + (r.q.keywords[i] - r.q_copy);
    return 0;
fail:
    free(r.q_copy);
    store_filter_free(r.filter);
    return e;
}

void logs_request_done(struct logs_request *r)
{
    free(r->q_copy);
    store_filter_free(r->filter);
    memset(r, 0, sizeof(*r));
}

static int put_param(struct buf *b, const char *name, const char *value)
{
    if (!value || !*value)
        return 0;
    static const char hex[] = "0123456789ABCDEF";
    int r = buf_printf(b, "%s%s=", b->len ? "&" : "", name);
    for (const unsigned char *v = (const unsigned char *)value; r == 0 && *v; v++) {
        if (isalnum(*v) || *v == '-' || *v == '.' || *v == '_' || *v == '~') {
            r = buf_append(b, v, 1);
        } else {
            char e[3] = {'%', hex[*v >> 4], hex[*v & 15]};
            r = buf_append(b, e, 3);
        }
    }
    return r;
}

char *logs_next_query(const struct logs_request *r, const struct logs_params *p, int64_t seq)
{
    struct buf b;
    buf_init(&b, 0);
    char cur[64], lim[24];
    logs_cursor(r, seq, cur);
    snprintf(lim, sizeof(lim), "%zu", r->limit);
    put_param(&b, "since", r->since);
    put_param(&b, "until", r->until);
    put_param(&b, "filter", p->filter);
    put_param(&b, "q", p->q);
    put_param(&b, "limit", lim);
    put_param(&b, "sortOrder", r->q.descending ? "DESCENDING" : NULL);
    put_param(&b, "after", cur);
    return buf_take(&b, NULL);
}
