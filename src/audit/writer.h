/* audit/writer.h — group commit. One writer thread owns a store connection and
 * turns whatever events are queued into one transaction: many requests share
 * one fsync. A request thread submits its event with a completion callback and
 * suspends its connection; the writer calls the callback after the commit (or
 * with the error, so the request answers 503 and no token leaves the server).
 *
 * Bounded: at most AUDIT_QUEUE_MAX events wait; submit fails with ERR_IO
 * beyond that (back-pressure as 503, never unbounded memory). */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "store/store.h"

#define AUDIT_QUEUE_MAX 65536
#define AUDIT_BATCH_MAX 2048

struct audit_writer;

/* Called on the writer thread once the event is durable (err 0) or could not be
 * written (err < 0). Must not block. */
typedef void (*audit_done_fn)(void *arg, int err);

/* Opens its own connection to `store_url` and starts the thread. */
int audit_writer_start(const char *store_url, enum store_sync sync, struct audit_writer **ret,
                       struct err_detail *d);
/* Drains the queue, stops the thread, closes the connection. NULL-safe. */
struct audit_writer *audit_writer_stop(struct audit_writer *w);
/* Queues `ev` (taken, in all cases). `done` may be NULL (fire and forget).
 * Returns 0, or ERR_IO when the queue is full or the writer stopped (done not called). */
int audit_writer_submit(struct audit_writer *w, json_t *ev, audit_done_fn done, void *arg);

/* Like audit_writer_submit, and also records up to two used token ids (jti keys, taken,
 * NULL when absent) with their expiry in the same transaction as the event, so replay
 * protection survives a restart exactly for the requests that were recorded. */
int audit_writer_submit_jtis(struct audit_writer *w, json_t *ev, char *jti_keys[2],
                             const int64_t jti_exps[2], audit_done_fn done, void *arg);

/* Like audit_writer_submit_jtis, and when ret_doc is not NULL also hands back a copy of
 * the event as serialised for the store (malloc'd, *ret_len bytes, NUL-terminated; the
 * live trace renders its entry from it on another thread). *ret_doc is NULL when the
 * event could not be serialised or memory is short. */
int audit_writer_submit_doc(struct audit_writer *w, json_t *ev, char *jti_keys[2],
                            const int64_t jti_exps[2], audit_done_fn done, void *arg,
                            char **ret_doc, size_t *ret_len);

struct audit_writer_stats {
    uint64_t events, batches, failures, queue_len, max_batch;
    uint64_t batch_hist[8]; /* batches of size <=1, <=4, <=16, <=64, <=256, <=1024, <=4096, more */
};
void audit_writer_stats(struct audit_writer *w, struct audit_writer_stats *ret);

/* fn(arg) runs on the writer thread after every committed batch (the exporters' wake-up).
 * It must be quick and must not submit events. Set it before events flow. */
void audit_writer_on_commit(struct audit_writer *w, void (*fn)(void *arg), void *arg);
