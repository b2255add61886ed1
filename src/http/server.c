/* http/server.c — the libmicrohttpd glue: one access handler that caps and
 * collects the body, calls the router once the request is complete, and
 * queues its response; one completion hook that logs and counts.
 *
 * Body caps: a Content-Length over the route's cap is answered 413 at once,
 * before a byte of the body is read. A chunked body that grows past the cap is
 * read and discarded (up to 4 times the cap, then the connection is dropped)
 * and answered 413, because libmicrohttpd cannot queue a response mid-upload. */
#include "http/http_priv.h"
#include "core/log.h"
#include "core/timeutil.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int res_header(struct http_response *res, const char *name, const char *value)
{
    if (res->n_headers >= HTTP_MAX_HEADERS)
        return 0;
    res->header_names[res->n_headers] = name;
    res->header_values[res->n_headers] = strdup(value);
    res->n_headers++;
    return 0;
}

int res_text(struct http_response *res, int status, const char *ctype, char *take, size_t len)
{
    free(res->body);
    res->status = status;
    res->content_type = ctype;
    res->body = take;
    res->len = take ? len : 0;
    return 0;
}

int res_json(struct http_response *res, int status, json_t *take)
{
    char *s = take ? json_dumps(take, JSON_COMPACT) : NULL;
    json_decref(take);
    if (!s) {
        res_text(res, 500, "application/json",
                 strdup("{\"error\":{\"code\":\"internal\",\"message\":\"Out of memory\"}}"), 0);
        res->len = res->body ? strlen(res->body) : 0;
        return 0;
    }
    res_text(res, status, "application/json", s, strlen(s));
    return 0;
}

int res_error_oauth(struct http_response *res, int status, const char *error, const char *desc)
{
    json_t *j = json_pack("{s:s, s:s}", "error", error, "error_description", desc);
    res_json(res, status, j);
    return 0;
}

int res_error(struct http_response *res, int err, const char *msg)
{
    json_t *j = json_pack("{s:{s:s, s:s}}", "error", "code", err_code(err), "message",
                          msg && *msg ? msg : err_message(err));
    res_json(res, err_http_status(err), j);
    return 0;
}

const char *req_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *req_query(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* Headers every answer carries, then the handler's own; queues `r` (consumed). */
static enum MHD_Result queue(struct http_request *req, struct http_response *res,
                             struct MHD_Response *r)
{
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                            res->content_type ? res->content_type : "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Request-Id", req->id);
    for (int i = 0; i < res->n_headers; i++) {
        if (res->header_values[i])
            MHD_add_response_header(r, res->header_names[i], res->header_values[i]);
        free(res->header_values[i]);
        res->header_values[i] = NULL;
    }
    res->n_headers = 0;
    req->status = res->status;
    enum MHD_Result ok = MHD_queue_response(req->conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_response(struct http_request *req, struct http_response *res)
{
    struct MHD_Response *r;
    if (res->stream) {
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, res->stream,
                                              res->stream_ctx, res->stream_free);
        if (!r)
            res->stream_free(res->stream_ctx);
        res->stream = NULL; /* MHD owns the context now (or it was freed) */
    } else {
        if (!res->body) {
            res->body = strdup("");
            res->len = 0;
        }
        r = MHD_create_response_from_buffer(res->len, res->body, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(res->body);
        res->body = NULL; /* owned by MHD now (or freed) */
    }
    return r ? queue(req, res, r) : MHD_NO;
}

static void res_free(struct http_response *res)
{
    free(res->body);
    for (int i = 0; i < res->n_headers; i++)
        free(res->header_values[i]);
    json_decref(res->event);
    res->event = NULL;
    free(res->jti_keys[0]);
    free(res->jti_keys[1]);
    res->jti_keys[0] = res->jti_keys[1] = NULL;
    if (res->stream && res->stream_free)
        res->stream_free(res->stream_ctx);
    res->stream = NULL;
}

int req_take_over(struct http_request *req, int *ret_fd)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || ci->connect_fd == MHD_INVALID_SOCKET)
        return ERR_INTERNAL;
    int fd = ci->connect_fd, off = 0, on = 1;
    /* frames go out as they are written: no corking, no Nagle delay */
    setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    MHD_suspend_connection(req->conn);
    req->taken_over = 1;
    req->status = 200; /* logged and counted as such when the connection closes */
    *ret_fd = fd;
    return 0;
}

void req_give_back(void *arg)
{
    struct http_request *req = arg;
    MHD_resume_connection(req->conn); /* the handler runs again and refuses it */
}

/* Writer thread: the event of a suspended request is durable (or failed). */
static void on_commit(void *arg, int err)
{
    struct http_request *req = arg;
    req->commit_err = err;
    __atomic_store_n(&req->committed, 1, __ATOMIC_RELEASE);
    MHD_resume_connection(req->conn);
}

static const char *route_endpoint(enum route_id r)
{
    return r == ROUTE_TOKEN ? "token" : "authorize";
}

/* Answers once the event is committed; 503 (and never the token) if it was not. */
static enum MHD_Result send_after_commit(struct http_request *req)
{
    struct http_response *res = req->pending;
    req->pending = NULL;
    if (req->commit_err < 0) {
        free(res->body);
        res->body = NULL;
        for (int i = 0; i < res->n_headers; i++)
            free(res->header_values[i]);
        res->n_headers = 0;
        int was_granted = res->status == 200;
        res->status = 503;
        res_error_oauth(res, 503, "temporarily_unavailable",
                        "Audit log unavailable: the request could not be recorded, so no token "
                        "was issued");
        res_header(res, "Retry-After", "1");
        /* the trace showed the decision; say that it did not stand (policy.md step 11) */
        json_t *ev =
            json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "type", "token.request", "outcome",
                      "denied", "severity", "error", "status_detail",
                      "Audit log unavailable: the request could not be recorded, so no "
                      "token was issued (503)",
                      "request", "endpoint", route_endpoint(req->route), "client_ip", req->ip);
        struct trace_match none = {0};
        trace_publish_event(req->srv->cfg.trace, ev, &none);
        json_decref(ev);
        if (req->submit_failed)
            metrics_audit_failure();
        if (req->route == ROUTE_TOKEN && req->srv->cfg.oauth)
            oauth_note_unavailable(req->srv->cfg.oauth, was_granted);
    }
    enum MHD_Result ok = send_response(req, res);
    res_free(res);
    free(res);
    return ok;
}

static void client_ip(struct MHD_Connection *conn, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = '\0';
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)n);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)n);
}

/* Hands `ev` (taken) to the audit writer (if any), then to the live trace. While someone
 * listens, the trace gets a copy of the text the writer serialised the event to (no
 * second serialisation on this thread; the sender parses and renders it at low
 * priority). Returns what the writer's submit returned (ERR_IO without a writer). */
static int submit_and_publish(struct http_request *req, json_t *ev, const struct trace_match *m,
                              char *jti_keys[2], const int64_t jti_exps[2], audit_done_fn done,
                              void *arg)
{
    struct audit_writer *w = req->srv->cfg.writer;
    char *none[2] = {NULL, NULL};
    const int64_t zero[2] = {0, 0};
    struct trace_match match = *m; /* `done` may free what m points into once submitted */
    struct trace_hub *h = req->srv->cfg.trace;
    char *doc = NULL;
    size_t len = 0;
    int r = ERR_IO;
    if (w) /* the writer takes a reference of its own, we keep ours for the trace */
        r = audit_writer_submit_doc(w, json_incref(ev), jti_keys ? jti_keys : none,
                                    jti_exps ? jti_exps : zero, done, arg,
                                    trace_listening(h) ? &doc : NULL, &len);
    if (doc) /* live, before durable */
        trace_publish_text(h, doc, len, &match);
    else
        trace_publish_event(h, ev, &match);
    json_decref(ev);
    return r;
}

/* 413. A token request still leaves its one audit event (submitted without waiting:
 * the answer carries no token, and the body was never read). */
static void too_big(struct http_request *req, struct http_response *res)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "request body too large (at most %zu bytes)", req->body_max);
    if (req->route != ROUTE_TOKEN || !req->srv->cfg.oauth) {
        msg[0] = 'R';
        res_error(res, ERR_TOOBIG, msg);
        return;
    }
    struct oauth_in in = {
        .client_ip = req->ip,
        .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
        .request_id = req->id,
        .received_us = req->start_us,
    };
    struct oauth_reply r;
    oauth_token_refused(req->srv->cfg.oauth, &in, 413, msg, &r);
    res_json(res, r.status, r.body);
    r.body = NULL;
    submit_and_publish(req, r.event, &r.trace, NULL, NULL, NULL, NULL);
    r.event = NULL;
    oauth_reply_done(&r);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof(*req));
        if (!req)
            return MHD_NO;
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->url = url;
        req->start_us = time_now_us();
        req->body_max = routes_body_max(srv, url);
        buf_init(&req->body, req->body_max);
        uuid7_new(req->id);
        client_ip(conn, req->ip, sizeof(req->ip));
        *con_cls = req;
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (strncmp(url, "/api/v1/", 8) == 0 && !routes_admin_authorized(req)) {
            /* the admin API says nothing, not even "too large", without the token */
            struct http_response res = {0};
            routes_dispatch(req, &res);
            enum MHD_Result ok = send_response(req, &res);
            res_free(&res);
            return ok;
        }
        if (cl && strtoull(cl, NULL, 10) > req->body_max) {
            req->route = routes_route_of(url);
            struct http_response res = {0};
            too_big(req, &res);
            enum MHD_Result ok = send_response(req, &res);
            res_free(&res);
            return ok;
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_big && buf_append(&req->body, upload, *upload_size) < 0) {
            req->too_big = 1;
            buf_done(&req->body);
        }
        if (req->too_big) {
            req->discarded += *upload_size;
            if (req->discarded > 4 * req->body_max)
                return MHD_NO;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->taken_over) /* the live trace gave its socket back: MHD closes it */
        return MHD_NO;
    if (req->pending) {
        if (!__atomic_load_n(&req->committed, __ATOMIC_ACQUIRE))
            return MHD_YES; /* spurious wake-up: still waiting for the writer */
        return send_after_commit(req);
    }
    if (req->status) /* already answered (early 413) */
        return MHD_YES;
    struct http_response res = {0};
    if (req->too_big) {
        req->route = routes_route_of(req->url);
        too_big(req, &res);
    } else {
        routes_dispatch(req, &res);
    }
    if (req->taken_over) { /* the live trace writes its own answer on the socket */
        res_free(&res);
        return MHD_YES;
    }
    if (res.event) {
        /* group commit: park the response, suspend, and let the writer resume us */
        struct http_response *park = malloc(sizeof(*park));
        if (!park) {
            res_free(&res);
            return MHD_NO;
        }
        *park = res;
        json_t *ev = park->event;
        char *keys[2] = {park->jti_keys[0], park->jti_keys[1]};
        park->event = NULL;
        park->jti_keys[0] = park->jti_keys[1] = NULL;
        req->pending = park;
        MHD_suspend_connection(conn);
        if (submit_and_publish(req, ev, &park->trace, keys, park->jti_exps, on_commit, req) < 0) {
            req->submit_failed = 1;
            req->commit_err = ERR_IO;
            __atomic_store_n(&req->committed, 1, __ATOMIC_RELEASE);
            MHD_resume_connection(conn);
        }
        return MHD_YES;
    }
    enum MHD_Result ok = send_response(req, &res);
    res_free(&res);
    (void)version;
    return ok;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    struct http_request *req = *con_cls;
    (void)cls;
    (void)conn;
    if (!req)
        return;
    int64_t dur = time_now_us() - req->start_us;
    metrics_observe(req->route, req->status ? req->status : 499, dur);
    log_info("%s %s %d %.3fms ip=%s id=%s%s", req->method, req->url, req->status,
             (double)dur / 1000.0, req->ip, req->id,
             toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted");
    buf_wipe_done(&req->body); /* bodies may hold secrets */
    free(req);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_debug("libmicrohttpd: %s", line);
}

/* The listening socket is ours, not MHD's. When MHD's workers accept for themselves,
 * whichever wakes first takes the connection: under a burst of connects (a load
 * balancer's pool, wrk) one worker took twice the connections of another and its
 * requests waited twice as long; that worker set the p99. MHD_add_connection spreads
 * connections over the workers by descriptor number, which for connections accepted
 * one after another is in turn. */
static int listen_on(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6) /* as MHD does without MHD_USE_DUAL_STACK */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *accept_loop(void *arg)
{
    struct http_server *srv = arg;
    struct pollfd pf[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                           {.fd = srv->stop_fd, .events = POLLIN}};
    bool told = false;
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents)
            break;
        for (;;) {
            struct sockaddr_storage sa;
            socklen_t len = sizeof(sa);
            int fd =
                accept4(srv->listen_fd, (struct sockaddr *)&sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                    if (!told)
                        log_warn("cannot accept connections: %s", strerror(errno));
                    told = true;
                    struct timespec t = {0, 10 * 1000000L}; /* until descriptors free up */
                    nanosleep(&t, NULL);
                }
                break; /* EAGAIN, or an error of that one connection */
            }
            told = false;
            /* on MHD_NO (the connection limit, out of memory) MHD has closed it */
            MHD_add_connection(srv->daemon, fd, (struct sockaddr *)&sa, len);
        }
    }
    return NULL;
}

/* Stops accepting; connections already handed over carry on. */
static void stop_accepting(struct http_server *srv)
{
    if (srv->accepting) {
        uint64_t one = 1;
        ssize_t w = write(srv->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(srv->acceptor, NULL);
        srv->accepting = false;
    }
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    srv->listen_fd = -1;
}

int http_server_start(const struct http_server_config *cfg, struct http_server **ret,
                      struct err_detail *d)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->port);
    int g = getaddrinfo(cfg->host, port, &hints, &ai);
    if (g != 0)
        return err_set(d, ERR_INVAL, "listen address %s: %s", cfg->host, gai_strerror(g));
    struct http_server *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        freeaddrinfo(ai);
        return ERR_NOMEM;
    }
    srv->cfg = *cfg;
    srv->listen_fd = listen_on(ai);
    srv->stop_fd = eventfd(0, EFD_CLOEXEC);
    bool v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);
    if (srv->listen_fd < 0 || srv->stop_fd < 0) {
        int e = errno;
        stop_accepting(srv);
        if (srv->stop_fd >= 0)
            close(srv->stop_fd);
        free(srv);
        return err_set(d, ERR_IO, "cannot listen on %s:%d: %s", cfg->host, cfg->port, strerror(e));
    }
    /* poll, not epoll: suspending and resuming a connection (every token request waits
     * for its group commit that way) cost two epoll_ctl calls, and edge-triggered reads
     * one more recv that ends in EAGAIN; poll over a worker's few connections costs less */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG;
    if (v6)
        flags |= MHD_USE_IPv6;
    srv->daemon =
        MHD_start_daemon(flags, 0, NULL, NULL, handler, srv, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)cfg->threads, MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)4096, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_END);
    if (srv->daemon && pthread_create(&srv->acceptor, NULL, accept_loop, srv) == 0)
        srv->accepting = true;
    if (!srv->accepting) {
        stop_accepting(srv);
        close(srv->stop_fd);
        if (srv->daemon)
            MHD_stop_daemon(srv->daemon);
        free(srv);
        return err_set(d, ERR_IO, "cannot start the HTTP server on %s:%d", cfg->host, cfg->port);
    }
    *ret = srv;
    return 0;
}

void http_server_quiesce(struct http_server *srv)
{
    if (srv)
        stop_accepting(srv);
}

struct http_server *http_server_stop(struct http_server *srv)
{
    if (!srv)
        return NULL;
    /* a trace stream holds its connection suspended, and MHD must not stop with one */
    trace_hub_close(srv->cfg.trace);
    stop_accepting(srv);
    MHD_stop_daemon(srv->daemon);
    close(srv->stop_fd);
    free(srv);
    return NULL;
}
