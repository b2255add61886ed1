/* export/runner.h — the exporter runner (DESIGN.md rule 3): one worker thread
 * per exporter, each reading the audit log by seq from its own cursor kept in
 * the store, batching (max_events / max_wait), handing batches to its sink,
 * retrying with capped exponential backoff and full jitter, and advancing the
 * cursor only after the sink acknowledged. Events a sink refuses for good are
 * parked in the dead-letter table, never block the rest.
 *
 * Issuance never waits for an exporter: workers read committed events from a
 * store connection of their own; an outage only grows the lag, kept in the
 * store (the log), never in memory (a worker holds one batch at most). */
#pragma once
#include <jansson.h>

#include "core/buf.h"
#include "core/err.h"
#include "jose/crypto.h"

struct export_manager;

struct export_manager_config {
    const char *store_url;  /* each worker opens its own connection */
    const struct kek *kek;  /* borrowed: opens sealed credentials */
    const char *node;       /* this node's name, in test events */
};

int export_manager_new(const struct export_manager_config *cfg, struct export_manager **ret,
                       struct err_detail *d);
/* Stops every worker (each finishes or abandons its batch within its sink's timeout;
 * an unacknowledged batch is sent again after a restart). NULL-safe. */
struct export_manager *export_manager_free(struct export_manager *m);

/* Makes the running workers match `exporters` (an array of stored exporter objects):
 * starts new ones, restarts changed ones, stops removed or paused ones; the cursor and
 * dead letters of an exporter no longer in the list are forgotten. Thread-safe. */
int export_manager_sync(struct export_manager *m, const json_t *exporters);

/* New events were committed: wakes workers waiting for them. Cheap, thread-safe. */
void export_manager_notify(struct export_manager *m);

/* {"id", "type", "state", "cursor", "last_seq", "lag_events", "lag_seconds", "delivered",
 *  "retries", "failures", "dead_letters", "last_error", "last_error_at",
 *  "last_delivery_at", "recent_dead_letters": [...]}. ERR_NOTFOUND for an unknown id. */
int export_manager_status(struct export_manager *m, const char *id, json_t **ret,
                          struct err_detail *d);

/* Sends one "exporter.test" event (not written to the log) through a fresh sink built from
 * the stored exporter object `doc`, now. *ret: {"delivered": true|false, "event_id",
 * "error"}. Blocks up to the exporter's timeout. */
int export_manager_test(struct export_manager *m, const json_t *doc, json_t **ret,
                        struct err_detail *d);

/* Appends the exporters' Prometheus lines (lag, delivered, retries, failures, dead
 * letters, up) to `out`. */
int export_manager_metrics(struct export_manager *m, struct buf *out);
