/* export/exporter.h — an exporter's configuration, parsed from its stored
 * object (spec/http-api.md, "An exporter object"; validated by policy/model.c)
 * into plain C for the runner and the sinks. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/encode.h"
#include "core/err.h"
#include "jose/crypto.h"

struct exporter_config {
    char *id;
    char *type;    /* "syslog", "http", "kafka", "nats", "file" */
    char *url;     /* as given */
    char *profile; /* http: "webhook", "splunk_hec", "loki", "elastic"; NULL otherwise */

    /* the URL taken apart */
    char *scheme; /* "udp", "tcp", "tls", "relp", "http", "https", "kafka", "nats", "file" */
    char *host;   /* kafka: the broker list "h1:9092,h2:9092"; file: NULL */
    int port;     /* 0 when the URL names none */
    char *path;   /* file: the file; kafka: the topic; nats: the subject;
                   * http: path and query ("/services/collector/event"); syslog: NULL */

    enum audit_format format; /* AUDIT_FMT_JSON (default), OCSF, CEF, RFC5424 */
    char *filter;             /* SCIM filter, NULL = every event */
    int start_beginning;      /* start: "beginning" (1) or "now" (0, default) */
    int paused;

    size_t max_events;   /* batch.max_events, default 500, 1..10000 */
    int64_t max_wait_ms; /* batch.max_wait, default 1000 */
    int64_t timeout_ms;  /* timeout, default 10000: every network operation is bounded */

    struct {
        char *ca_file, *cert_file, *key_file; /* PEM files, NULL = system CAs / no client cert */
        char *server_name;                    /* SNI and name checked; NULL = the URL's host */
        int verify;                           /* default 1 */
    } tls;
    struct {
        char *token;       /* http splunk_hec: "Splunk TOKEN"; other http: "Bearer TOKEN" */
        char *hmac_secret; /* http webhook: X-Mcpauth-Signature: sha256=HEX(HMAC(body)) */
        char *username, *password; /* http basic auth, kafka SASL/PLAIN, nats user */
    } auth; /* plaintext, in memory only; sealed under the KEK in the store */

    char *index;    /* elastic: the index (default "mcpauth-audit"); splunk_hec: the index */
    json_t *labels; /* loki: stream labels, an object of strings (default {"job":"mcpauth"}) */
    int64_t max_bytes; /* file: rotate when the file would pass this (default 100 MiB) */
    int max_files;     /* file: rotated files kept (default 5) */
};

/* Fills *ret from a stored exporter object, unsealing auth with `kek` (may be NULL when
 * the object has no auth). ERR_INVAL with the reason in d. */
int exporter_config_from_json(const json_t *doc, const struct kek *kek,
                              struct exporter_config *ret, struct err_detail *d);
void exporter_config_done(struct exporter_config *c); /* NULL-safe, wipes secrets */
/* The additional data auth is sealed with ("exporter:ID"), so a sealed blob cannot be
 * moved to another exporter. */
void exporter_auth_aad(const char *id, char *out, size_t n);
