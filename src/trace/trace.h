/* trace/trace.h — live tracing of inbound authorization requests (DESIGN.md
 * rule 4; spec/audit-event.md "Trace entry"; spec/http-api.md "Live trace").
 *
 * A hub is a bounded ring of entries, each already rendered as its SSE frame.
 * Publishing is O(1) for the request thread whatever the number of
 * subscribers: render, take the lock, overwrite the oldest slot, bump the
 * sequence, signal the hub's own thread, which wakes the subscribers that
 * wait. A subscriber reads from its own position; one that falls more than
 * the ring's size behind gets a `dropped` frame with the count and goes on
 * from the oldest entry still there. Nothing is retained beyond the ring and
 * nothing is ever written to disk. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct trace_hub;
struct trace_sub;

/* What the handler knows beyond the audit event: whether the client id it was presented
 * names a client workload. The server workload matched iff the event has a "system". */
struct trace_match {
    int client_matched;
};

enum trace_severity { TRACE_INFO, TRACE_WARNING, TRACE_ERROR };

struct trace_filter {
    enum trace_severity min_severity;
    const char *client_ip; /* exact, NULL = any */
    const char *client;    /* client workload or presented client id, NULL = any */
    const char *system;    /* server workload, NULL = any */
};

/* wake(arg) is called on the hub's thread for a subscriber that read nothing and is
 * waiting, once new entries or a keep-alive are due; it must only resume the reader. */
typedef void (*trace_wake_fn)(void *arg);

/* ring: entries kept (rounded up to a power of two, at least 64). */
int trace_hub_new(size_t ring, struct trace_hub **ret);
/* Wakes every subscriber one last time (their reads then end the stream), stops the hub's
 * thread and frees. Subscribers must all be gone before the hub is freed: call
 * trace_hub_close first, let the HTTP server finish, then trace_hub_free. NULL-safe. */
void trace_hub_close(struct trace_hub *h);
struct trace_hub *trace_hub_free(struct trace_hub *h);

/* Publishes the trace entry of an authorization request from its audit event (types
 * token.request, authorize.request, client.register; others are ignored). Never blocks
 * on subscribers. NULL hub: nothing. */
void trace_publish_event(struct trace_hub *h, const json_t *ev, const struct trace_match *m);

/* The entry object of spec/audit-event.md for `ev` (new reference), for tests and tools. */
json_t *trace_entry_from_event(const json_t *ev, const struct trace_match *m);

/* Subscribes from now on (an entry published before is never seen). The filter's strings
 * are copied. */
int trace_subscribe(struct trace_hub *h, const struct trace_filter *f, trace_wake_fn wake,
                    void *wake_arg, struct trace_sub **ret);
/* Appends SSE frames to `out` (at most about `max` bytes): a `dropped` frame first when
 * entries were lost, then matching entries, or a keep-alive comment when 15 s passed
 * without output. Returns the bytes appended (> 0), 0 when there is nothing: the
 * subscriber is then marked waiting and `wake` will be called — the caller must suspend
 * its connection *inside* `hold` (called under the hub's lock, so a wake cannot overtake
 * the suspend). Returns ERR_IO once the hub is closed and nothing is left. */
int trace_sub_read(struct trace_sub *s, struct buf *out, size_t max, void (*hold)(void *arg),
                   void *hold_arg);
void trace_unsubscribe(struct trace_sub *s); /* NULL-safe */

struct trace_stats {
    uint64_t published, subscribers, dropped;
};
void trace_hub_stats(struct trace_hub *h, struct trace_stats *ret);
