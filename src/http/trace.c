/* http/trace.c — GET /api/v1/trace: the live trace as Server-Sent Events.
 *
 * libmicrohttpd cannot run one connection at another priority, so a trace
 * stream leaves it: once the request is authorized and its filters parsed,
 * the connection is suspended (MHD then neither polls nor touches its socket,
 * nor times it out) and the socket is handed to the trace hub's sender, a
 * low-priority thread that writes the response head and then the entries
 * itself. The body is close-delimited. When the stream ends the sender gives
 * the connection back; the handler then refuses it and MHD closes the socket.
 * No HTTP thread ever waits for or writes a trace entry. */
#include "http/http_priv.h"

#include <stdio.h>
#include <string.h>

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
    /* the headers every answer carries (server.c), the stream's own, and a first comment
     * at once: a client sees the stream is open */
    char head[512];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\n"
                     "Content-Type: text/event-stream\r\n"
                     "Cache-Control: no-store\r\n"
                     "X-Content-Type-Options: nosniff\r\n"
                     "X-Request-Id: %s\r\n"
                     "X-Accel-Buffering: no\r\n"
                     "Connection: close\r\n"
                     "\r\n"
                     ": mcpauth live trace; entries are not retained\n\n",
                     req->id);
    int fd;
    if (req_take_over(req, &fd) < 0)
        return res_error(res, ERR_INTERNAL, "cannot take the connection over");
    /* from here the sender owns the socket; on failure the connection is given back (and
     * closed without an answer: that happens only at shutdown or out of memory) */
    trace_attach(h, fd, &f, head, (size_t)n, req_give_back, req);
    return 0;
}
