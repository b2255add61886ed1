/* http/http.h — mcpauth's HTTP server: libmicrohttpd (epoll, a thread pool)
 * with request-body caps, one router and the handlers' glue. libmicrohttpd is
 * touched only in this folder.
 *
 * Every response is JSON (or Prometheus text for /metrics), carries
 * Cache-Control: no-store, and each request is logged once when it completes
 * (method, path without query, status, duration; never a header or body). */
#pragma once
#include <stddef.h>

#include "admin/admin.h"
#include "audit/writer.h"
#include "oauth/oauth.h"
#include "core/err.h"
#include "policy/policy.h"
#include "store/store.h"

struct http_server_config {
    const char *host;
    int port;
    int threads;
    size_t oauth_body_max; /* bytes; larger bodies get 413 */
    size_t admin_body_max;
    const char *issuer;
    struct admin *admin;          /* borrowed */
    struct policy_holder *policy; /* borrowed */
    struct store *store;          /* borrowed (readiness) */
    struct oauth *oauth;          /* borrowed */
    struct audit_writer *writer;  /* borrowed: token events are committed through it */
    struct store *logs_store;     /* borrowed: a connection of its own for log reads */
    struct export_manager *exporters; /* borrowed: the exporter runner (may be NULL) */
    struct trace_hub *trace;          /* borrowed: live trace (may be NULL) */
    unsigned char logs_key[32];   /* MAC key of log cursors */
    int dev;
    unsigned char admin_token_sha256[32];
};

struct http_server;

/* Binds and starts serving. ERR_IO with the reason (address in use, ...) in d. */
int http_server_start(const struct http_server_config *cfg, struct http_server **ret,
                      struct err_detail *d);
/* Stops accepting new connections; requests in flight go on. */
void http_server_quiesce(struct http_server *srv);
/* Stops accepting, finishes in-flight requests, frees. NULL-safe. Call only once no
 * request waits for the audit writer (stop the writer first: it drains its queue). Closes
 * the live trace hub first (its streams hold their connections suspended). */
struct http_server *http_server_stop(struct http_server *srv);
