/* http/trace.c — GET /api/v1/trace: the live trace as Server-Sent Events.
 *
 * The body is an endless MHD callback response. When the hub has nothing for
 * the subscriber, the callback suspends the connection (inside the hub's
 * lock, so the hub's wake-up cannot overtake the suspend) and returns 0; the
 * hub's thread resumes it when entries or a keep-alive are due. No HTTP
 * thread ever waits for a trace entry, and the request threads that publish
 * never touch a subscriber. */
#include "http/http_priv.h"

#include <stdlib.h>
#include <string.h>

#define FRAME_MAX (256 * 1024)

struct sse {
    struct MHD_Connection *conn;
    struct trace_sub *sub;
    struct buf pending; /* frames read from the hub and not yet handed to MHD */
    size_t off;
    int ended;
};

static void wake(void *arg)
{
    struct sse *s = arg;
    MHD_resume_connection(s->conn);
}

static void hold(void *arg)
{
    struct sse *s = arg;
    MHD_suspend_connection(s->conn);
}

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max)
{
    struct sse *s = cls;
    (void)pos;
    if (s->off == s->pending.len) {
        buf_reset(&s->pending);
        s->off = 0;
        if (s->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
        int r = trace_sub_read(s->sub, &s->pending, max, hold, s);
        if (r < 0)
            return MHD_CONTENT_READER_END_OF_STREAM; /* the hub closed: the server stops */
        if (r == 0)
            return 0; /* suspended; the hub resumes us */
    }
    size_t n = s->pending.len - s->off;
    if (n > max)
        n = max;
    memcpy(out, s->pending.data + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse *s = cls;
    trace_unsubscribe(s->sub);
    buf_done(&s->pending);
    free(s);
}

static int severity_of(const char *v, enum trace_severity *ret)
{
    if (!v || strcmp(v, "info") == 0)
        *ret = TRACE_INFO;
    else if (strcmp(v, "warning") == 0)
        *ret = TRACE_WARNING;
    else if (strcmp(v, "error") == 0)
        *ret = TRACE_ERROR;
    else
        return ERR_INVAL;
    return 0;
}

int route_trace(struct http_request *req, struct http_response *res)
{
    if (strcmp(req->method, "GET") != 0)
        return method_not_allowed(res, "GET");
    struct trace_hub *h = req->srv->cfg.trace;
    if (!h)
        return res_error(res, ERR_IO, "live tracing is not running");
    struct trace_filter f = {0};
    if (severity_of(req_query(req, "severity"), &f.min_severity) < 0)
        return res_error(res, ERR_INVAL, "severity: expected info, warning or error");
    f.client_ip = req_query(req, "client_ip");
    f.client = req_query(req, "client");
    f.system = req_query(req, "system");
    const char *params[] = {f.client_ip, f.client, f.system};
    for (size_t i = 0; i < 3; i++)
        if (params[i] && (!*params[i] || strlen(params[i]) > 256))
            return res_error(res, ERR_INVAL, "a trace filter is 1 to 256 bytes");
    struct sse *s = calloc(1, sizeof(*s));
    if (!s)
        return res_error(res, ERR_NOMEM, NULL);
    s->conn = req->conn;
    buf_init(&s->pending, FRAME_MAX);
    if (trace_subscribe(h, &f, wake, s, &s->sub) < 0) {
        free(s);
        return res_error(res, ERR_NOMEM, NULL);
    }
    /* the first bytes go out at once: a client sees the stream is open */
    buf_puts(&s->pending, ": mcpauth live trace; entries are not retained\n\n");
    res->status = 200;
    res->content_type = "text/event-stream";
    res_header(res, "X-Accel-Buffering", "no");
    res->stream = reader;
    res->stream_ctx = s;
    res->stream_free = sse_free;
    return 0;
}
