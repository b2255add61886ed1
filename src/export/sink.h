/* export/sink.h — one delivery target of an exporter (DESIGN.md rule 3).
 *
 * The runner (export/runner.c) reads events from the audit log by seq, encodes
 * each one in the exporter's format (audit/encode.h) and hands a batch to the
 * exporter's sink. A sink only moves bytes: it knows nothing of cursors,
 * retries or backoff. Contract of send():
 *
 *   - 0: every record of the batch was acknowledged by the receiver, or
 *     permanently refused by it (then rejected[i] = 1 and `error` says why; the
 *     runner parks those in the dead-letter table and moves on);
 *   - ERR_IO (transient: connection refused, timeout, 5xx, broker down): the
 *     first res->acked records were acknowledged (or refused, marked as above),
 *     the rest were not and will be sent again in a later call. A sink that
 *     cannot tell which records made it leaves acked at 0: delivery is at least
 *     once and receivers deduplicate by event id;
 *   - ERR_INVAL: the whole batch is refused permanently (as if every record had
 *     rejected[i] = 1); used only when the receiver says so for the batch.
 *
 * A sink is used by one thread at a time (its exporter's worker) and may keep a
 * connection open between calls; it reconnects by itself on the next send after
 * a failure. Every blocking operation is bounded by cfg->timeout_ms, so a
 * receiver that accepts and never reads cannot hang the worker forever.
 * No secret (auth token, HMAC secret, password) ever goes into `error`. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "audit/encode.h"
#include "core/err.h"
#include "export/exporter.h"

struct export_record {
    int64_t seq;
    const char *id;   /* the event's UUID: the receiver's dedup key */
    const char *time; /* RFC 3339, the event's time */
    const char *type; /* "token.request", ... */
    const char *severity; /* "info", "warning", "error" */
    const json_t *ev; /* the event as stored, "hash" included */
    const char *data; /* the event encoded in cfg->format, no terminator */
    size_t len;
};

struct export_batch {
    const struct export_record *rec;
    size_t n;
};

struct sink_result {
    size_t acked;            /* records [0, acked) are settled (delivered or rejected) */
    unsigned char *rejected; /* n entries, zeroed by the caller */
    char error[256];         /* the last error, for status and the log; "" if none */
};

struct sink;

struct sink_ops {
    const char *type; /* "syslog", "http", "kafka", "nats", "file" */
    /* Checks what the config can tell without the network (URL scheme, profile,
     * format allowed for this sink, files readable) and prepares the sink; no
     * connection is made here (the receiver may be down at start). */
    int (*open)(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d);
    int (*send)(struct sink *s, const struct export_batch *b, struct sink_result *res);
    void (*close)(struct sink *s); /* NULL-safe */
};

extern const struct sink_ops sink_syslog_ops;
extern const struct sink_ops sink_http_ops;
extern const struct sink_ops sink_kafka_ops;
extern const struct sink_ops sink_nats_ops;
extern const struct sink_ops sink_file_ops;

/* The ops for cfg->type, or NULL. */
const struct sink_ops *sink_ops_for(const char *type);
