/* http/http_priv.h — what server.c, routes.c and metrics.c share. */
#pragma once
#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/uuid.h"
#include "http/http.h"
#include "trace/trace.h"

enum route_id {
    ROUTE_NOT_FOUND,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
    ROUTE_JWKS,
    ROUTE_ADMIN_OBJECTS,
    ROUTE_ADMIN_SETTINGS,
    ROUTE_ADMIN_KEYS,
    ROUTE_ADMIN_APPLY,
    ROUTE_ADMIN_EXPLAIN,
    ROUTE_DEV,
    ROUTE_TOKEN,
    ROUTE_INTROSPECT,
    ROUTE_REVOKE,
    ROUTE_METADATA,
    ROUTE_LOGS,
    ROUTE_TRACE,
    ROUTE_UI,
    ROUTE_COUNT
};

struct http_server {
    struct http_server_config cfg;
    struct MHD_Daemon *daemon;
    int listen_fd; /* ours: the acceptor hands connections to MHD's workers in turn */
    int stop_fd;   /* eventfd: the acceptor stops accepting */
    pthread_t acceptor;
    bool accepting;
};

struct http_request {
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method; /* borrowed from MHD for the request's life */
    const char *url;    /* path, percent-decoded, no query */
    struct buf body;
    size_t body_max;
    int too_big;
    size_t discarded;
    char ip[48];
    char id[UUID_STR_LEN];
    int64_t start_us;
    int status; /* once answered */
    enum route_id route;
    /* group commit: the response waits here while its event is being committed */
    struct http_response *pending;
    int committed; /* atomic: set by the writer thread */
    int commit_err;
    int submit_failed; /* the writer's queue refused the event (counted here, not there) */
    /* the live trace took the socket over (req_take_over): no response is ever queued, and
     * once the connection is given back the handler refuses it so MHD closes it */
    int taken_over;
};

#define HTTP_MAX_HEADERS 6

struct http_response {
    int status;
    const char *content_type;
    char *body; /* owned (malloc) */
    size_t len;
    const char *header_names[HTTP_MAX_HEADERS];
    char *header_values[HTTP_MAX_HEADERS]; /* owned */
    int n_headers;
    json_t *event;            /* owned: to be committed before the response is sent */
    struct trace_match trace; /* with the event: its live trace entry */
    char *jti_keys[2];        /* owned: used assertion ids recorded with the event */
    int64_t jti_exps[2];
    /* streamed body (downloads): when set, `body` is unused */
    MHD_ContentReaderCallback stream;
    void *stream_ctx;
    MHD_ContentReaderFreeCallback stream_free;
};

/* logs.c: GET /api/v1/logs, /logs/export, /logs/verify */
int route_logs(struct http_request *req, struct http_response *res, const char *rest);

/* trace.c: GET /api/v1/trace (SSE) */
int route_trace(struct http_request *req, struct http_response *res);

/* ui.c: GET /ui, /ui/, /ui/<file> (the web console's embedded files) */
int route_ui(struct http_request *req, struct http_response *res);

/* routes.c */
int routes_dispatch(struct http_request *req, struct http_response *res);
/* 1 when the request carries the admin bearer token (constant-time comparison). */
int routes_admin_authorized(const struct http_request *req);
/* The metrics label of a path, for answers given before routing (413). */
enum route_id routes_route_of(const char *url);
/* Sizes the body cap of a request from its path. */
size_t routes_body_max(const struct http_server *srv, const char *url);

/* response helpers (server.c) */
int res_json(struct http_response *res, int status, json_t *take);
int res_text(struct http_response *res, int status, const char *ctype, char *take, size_t len);
/* {"error": {"code": err_code(err), "message": msg or err_message(err)}} with err's status */
int res_error(struct http_response *res, int err, const char *msg);
int method_not_allowed(struct http_response *res, const char *allow);
int res_header(struct http_response *res, const char *name, const char *value);
/* RFC 6749 §5.2 error body {"error", "error_description"} with `status`. */
int res_error_oauth(struct http_response *res, int status, const char *error, const char *desc);
const char *req_header(const struct http_request *req, const char *name);
/* Takes the connection's socket away from libmicrohttpd (the live trace): suspends the
 * connection, so MHD neither polls, touches nor times out the socket, marks the request
 * taken over (status 200) and returns the fd, set to send at once (TCP_NODELAY). Call from
 * a route, then queue nothing. The new owner writes the whole answer, never closes the fd,
 * and calls req_give_back(req) once done with it (from any thread); MHD then closes it. */
int req_take_over(struct http_request *req, int *ret_fd);
void req_give_back(void *req);
const char *req_query(const struct http_request *req, const char *name);

/* metrics.c */
void metrics_observe(enum route_id route, int status, int64_t duration_us);
void metrics_audit_failure(void);
/* Prometheus text exposition of every counter, plus the snapshot's gauges. */
char *metrics_render(const struct http_server *srv, const struct policy_snapshot *snap,
                     size_t *ret_len);
