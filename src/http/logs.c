/* http/logs.c — the system log API: a page of events with a next link, a
 * streamed download in any encoding, and chain verification. Reads go through
 * their own store connection, so a long download never holds the connection
 * that admin changes use; a download reads in batches and holds one batch of
 * encoded bytes at a time, whatever the size of the selection. */
#include "http/http_priv.h"
#include "audit/encode.h"
#include "core/timeutil.h"
#include "logs/logs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT_BATCH 1000

static struct logs_params params_of(const struct http_request *req)
{
    return (struct logs_params){
        .since = req_query(req, "since"),
        .until = req_query(req, "until"),
        .filter = req_query(req, "filter"),
        .q = req_query(req, "q"),
        .limit = req_query(req, "limit"),
        .after = req_query(req, "after"),
        .sort_order = req_query(req, "sortOrder"),
    };
}

struct page {
    struct buf out;
    size_t n;
    int64_t last;
};

static int add_doc(const char *doc, int64_t seq, void *arg)
{
    struct page *p = arg;
    int r = buf_puts(&p->out, p->n ? "," : "[");
    if (r == 0)
        r = buf_puts(&p->out, doc);
    p->n++;
    p->last = seq;
    return r;
}

static int page(struct http_request *req, struct http_response *res)
{
    struct http_server *srv = req->srv;
    struct logs_params p = params_of(req);
    struct logs_request lr;
    struct err_detail d = {{0}};
    int64_t max_seq = 0;
    int r = store_events_max_seq(srv->cfg.logs_store, &max_seq);
    if (r == 0)
        r = logs_request_parse(&p, srv->cfg.logs_key, time_now_us(), max_seq, LOGS_MAX_LIMIT, &lr,
                               &d);
    if (r < 0)
        return res_error(res, r, d.msg[0] ? d.msg : NULL);
    struct page pg = {.last = lr.q.after_seq};
    buf_init(&pg.out, 0);
    r = store_events_query(srv->cfg.logs_store, &lr.q, add_doc, &pg);
    if (r == 0)
        r = buf_puts(&pg.out, pg.n ? "]" : "[]");
    if (r < 0) {
        buf_done(&pg.out);
        logs_request_done(&lr);
        return res_error(res, r, "reading the log failed");
    }
    /* A page that is not full saw every event up to max_seq (read before the query), so
     * a tailing client's cursor moves past them even when the filter matched none: the
     * next poll starts there instead of rescanning the log. */
    int64_t next = pg.last;
    if (lr.polling && pg.n < lr.limit && max_seq > next)
        next = max_seq;
    if (lr.polling || pg.n == lr.limit) {
        char *qs = logs_next_query(&lr, &p, next);
        if (qs) {
            size_t n = strlen(srv->cfg.issuer) + strlen(qs) + 64;
            char *link = malloc(n);
            if (link) {
                snprintf(link, n, "<%s/api/v1/logs?%s>; rel=\"next\"", srv->cfg.issuer, qs);
                res_header(res, "Link", link);
                free(link);
            }
            free(qs);
        }
    }
    size_t len = 0;
    char *body = buf_take(&pg.out, &len);
    res_text(res, 200, "application/json", body, len);
    logs_request_done(&lr);
    return 0;
}

struct export_ctx {
    struct store *store;
    struct logs_request lr;
    enum audit_format fmt;
    struct buf buf;
    size_t pos;
    size_t remaining;
    int header_done, done, failed;
};

static int encode_one(const char *doc, int64_t seq, void *arg)
{
    struct export_ctx *x = arg;
    int r;
    if (x->fmt == AUDIT_FMT_JSON) { /* stored documents are already canonical JSON */
        r = buf_puts(&x->buf, doc);
    } else {
        json_t *ev = json_loads(doc, 0, NULL);
        r = ev ? audit_encode(x->fmt, ev, &x->buf) : ERR_CORRUPT;
        json_decref(ev);
    }
    if (r == 0)
        r = buf_puts(&x->buf, audit_format_terminator(x->fmt));
    x->lr.q.after_seq = seq;
    x->remaining--;
    return r;
}

static ssize_t export_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct export_ctx *x = cls;
    (void)pos;
    while (x->pos == x->buf.len) {
        if (x->failed)
            return MHD_CONTENT_READER_END_WITH_ERROR; /* the client sees a truncated download */
        if (x->done)
            return MHD_CONTENT_READER_END_OF_STREAM;
        buf_reset(&x->buf);
        x->pos = 0;
        if (!x->header_done) {
            x->header_done = 1;
            if (audit_encode_header(x->fmt, &x->buf) < 0)
                x->failed = 1;
        }
        size_t want = x->remaining < EXPORT_BATCH ? x->remaining : EXPORT_BATCH;
        if (want == 0) {
            x->done = 1;
            continue;
        }
        x->lr.q.limit = want;
        size_t before = x->remaining;
        if (store_events_query(x->store, &x->lr.q, encode_one, x) < 0)
            x->failed = 1;
        if (before - x->remaining < want)
            x->done = 1;
    }
    size_t n = x->buf.len - x->pos;
    if (n > max)
        n = max;
    memcpy(out, x->buf.data + x->pos, n);
    x->pos += n;
    return (ssize_t)n;
}

static void export_free(void *cls)
{
    struct export_ctx *x = cls;
    logs_request_done(&x->lr);
    buf_done(&x->buf);
    free(x);
}

static int export(struct http_request *req, struct http_response *res)
{
    struct http_server *srv = req->srv;
    const char *fname = req_query(req, "format");
    enum audit_format fmt = AUDIT_FMT_JSON;
    if (fname && audit_format_parse(fname, &fmt) < 0)
        return res_error(res, ERR_INVAL, "format: expected jsonl, csv, cef, ocsf or rfc5424");
    struct logs_params p = params_of(req);
    if (p.after)
        return res_error(res, ERR_INVAL, "after: an export takes no cursor; use since and until");
    struct export_ctx *x = calloc(1, sizeof(*x));
    if (!x)
        return res_error(res, ERR_NOMEM, NULL);
    struct err_detail d = {{0}};
    int r = logs_request_parse(&p, srv->cfg.logs_key, time_now_us(), 0, SIZE_MAX, &x->lr, &d);
    if (r < 0) {
        free(x);
        return res_error(res, r, d.msg[0] ? d.msg : NULL);
    }
    x->store = srv->cfg.logs_store;
    x->fmt = fmt;
    x->remaining = x->lr.limit;
    buf_init(&x->buf, 0);
    res->status = 200;
    res->content_type = audit_format_content_type(fmt);
    res->stream = export_read;
    res->stream_ctx = x;
    res->stream_free = export_free;
    char ts[TIME_STR_LEN], disp[128];
    time_format_s(time_now_us() / 1000000, ts);
    for (char *c = ts; *c; c++)
        if (*c == ':')
            *c = '-';
    snprintf(disp, sizeof(disp), "attachment; filename=\"mcpauth-log-%s.%s\"", ts,
             audit_format_extension(fmt));
    res_header(res, "Content-Disposition", disp);
    return 0;
}

static int first_seq(const char *doc, int64_t seq, void *arg)
{
    (void)doc;
    *(int64_t *)arg = seq;
    return 1;
}

static int verify(struct http_request *req, struct http_response *res)
{
    struct http_server *srv = req->srv;
    struct logs_params p = params_of(req);
    struct logs_params window = {.since = p.since, .until = p.until, .limit = "1"};
    struct logs_request lr;
    struct err_detail d = {{0}};
    int r = logs_request_parse(&window, srv->cfg.logs_key, time_now_us(), 0, 1, &lr, &d);
    if (r < 0)
        return res_error(res, r, d.msg[0] ? d.msg : NULL);
    int64_t from = 1, to = 0;
    if (lr.q.since) {
        from = 0;
        r = store_events_query(srv->cfg.logs_store, &lr.q, first_seq, &from);
        if (r == 0 && !from) /* nothing in the window */
            from = INT64_MAX;
    }
    if (r >= 0 && lr.q.until) {
        lr.q.descending = 1;
        r = store_events_query(srv->cfg.logs_store, &lr.q, first_seq, &to);
        if (r == 0 && !to)
            to = -1;
    }
    logs_request_done(&lr);
    if (r < 0 && r != 1) /* first_seq stops the scan with 1: not an error */
        return res_error(res, r, "reading the log failed");
    json_t *out = NULL;
    if (from == INT64_MAX || to == -1 || (to && to < from))
        out = json_pack("{s:b, s:i}", "ok", 1, "verified", 0);
    else if ((r = logs_verify(srv->cfg.logs_store, from, to, &out, &d)) < 0)
        return res_error(res, r, d.msg[0] ? d.msg : NULL);
    return res_json(res, 200, out);
}

int route_logs(struct http_request *req, struct http_response *res, const char *rest)
{
    if (!*rest || strcmp(rest, "/") == 0) {
        if (strcmp(req->method, "GET"))
            return method_not_allowed(res, "GET");
        return page(req, res);
    }
    if (strcmp(rest, "/export") == 0) {
        if (strcmp(req->method, "GET"))
            return method_not_allowed(res, "GET");
        return export(req, res);
    }
    if (strcmp(rest, "/verify") == 0) {
        if (strcmp(req->method, "GET"))
            return method_not_allowed(res, "GET");
        return verify(req, res);
    }
    return res_error(res, ERR_NOTFOUND, "No such log resource (logs, logs/export, logs/verify)");
}
