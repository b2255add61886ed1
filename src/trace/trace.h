/* trace/trace.h — live tracing of inbound authorization requests (DESIGN.md
 * rule 4; spec/audit-event.md "Trace entry"; spec/http-api.md "Live trace").
 *
 * A hub is a bounded ring of published audit events and one sender thread,
 * running at the lowest CPU priority within a CPU budget (the machine's idle
 * time), that owns every subscriber's socket. Publishing costs the request
 * thread O(1) whatever the number of subscribers, takes no lock and renders
 * nothing: number the entry with an atomic add, swap its text into the ring,
 * and signal the sender if it is idle. The sender renders an entry lazily,
 * once, the first time a subscriber needs it, applies each subscriber's filters
 * and writes batches of SSE frames straight to the sockets. A subscriber that
 * falls more than the ring's size behind (a stalled reader, or a sender held
 * back because issuance uses the CPU) gets a `dropped` frame with the count and
 * goes on from the oldest entry still there. Nothing is retained beyond the
 * ring and nothing is ever written to disk. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct trace_hub;

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

/* ring: entries kept (rounded up to a power of two, at least 64). keepalive_ms: a
 * comment goes to a subscriber that got nothing for that long (0: 15 s). Starts the
 * sender thread. ERR_NOMEM, or ERR_INTERNAL when the thread cannot start. */
int trace_hub_new(size_t ring, unsigned keepalive_ms, struct trace_hub **ret);
/* The same with a CPU budget for the sender (what the server runs): it may use half of
 * the CPU the machine leaves idle beyond 10 % of all CPUs, read from cpu_stat
 * (/proc/stat; a test passes a file of its own) every 100 ms, plus 1 % of one core;
 * with the budget spent it skips passes, and entries the ring laps meanwhile reach
 * subscribers as `dropped` counts. cpu_stat NULL or unreadable: no budget (as
 * trace_hub_new). */
int trace_hub_new_budgeted(size_t ring, unsigned keepalive_ms, const char *cpu_stat,
                           struct trace_hub **ret);
/* Ends every stream (each subscriber's release is called on the sender thread) and stops
 * the sender; when it returns no subscriber socket is touched again, and a later attach
 * is released at once. Idempotent, NULL-safe. */
void trace_hub_close(struct trace_hub *h);
/* Closes, then frees. NULL-safe. */
struct trace_hub *trace_hub_free(struct trace_hub *h);

/* Whether anyone subscribes (one atomic read; NULL hub: no). */
bool trace_listening(struct trace_hub *h);
/* Publishes the audit event of an authorization request (types token.request,
 * authorize.request, client.register; others are ignored) from its JSON text `doc`
 * (malloc'd, taken in all cases), with a copy of *m. The text is parsed and rendered
 * later on the sender thread. Never blocks on subscribers; with none, frees doc after
 * one atomic read. NULL hub: frees doc. */
void trace_publish_text(struct trace_hub *h, char *doc, size_t len, const struct trace_match *m);
/* The same from an event object: serialises it first (only while someone listens). */
void trace_publish_event(struct trace_hub *h, const json_t *ev, const struct trace_match *m);

/* The entry object of spec/audit-event.md for `ev` (new reference), for tests and tools. */
json_t *trace_entry_from_event(const json_t *ev, const struct trace_match *m);

/* Called once when the hub stops using a subscriber's socket for good; the socket is
 * then the caller's again (the hub never closes it). */
typedef void (*trace_release_fn)(void *arg);

/* Subscribes the connected stream socket `fd` from now on (an entry published before is
 * never seen). The sender makes it non-blocking, writes `head` (copied: the response
 * head and a first comment) and then the frames that pass the filter (its strings are
 * copied). When the peer closes or sends an error, a write fails, or the hub closes,
 * the sender removes fd from its epoll set, never touches it again, and calls
 * release(arg) on its thread. release is called exactly once whatever happens: on the
 * calling thread, before this returns, when the hub is closed (ERR_IO) or memory is
 * short (ERR_NOMEM); otherwise 0. */
int trace_attach(struct trace_hub *h, int fd, const struct trace_filter *f, const char *head,
                 size_t head_len, trace_release_fn release, void *arg);

struct trace_stats {
    uint64_t published;   /* entries published (only while someone subscribes) */
    uint64_t subscribers; /* attached and not yet released */
    uint64_t dropped;     /* entries subscribers missed, counted when the sender skips them */
    uint64_t rendered;    /* entries rendered (each at most once) */
    uint64_t blocked;     /* subscribers whose socket is full: the sender waits to write */
    uint64_t throttled;   /* sender passes skipped: its CPU budget was spent */
    int priority_err;     /* 0, or -errno when the sender could not lower its priority */
};
void trace_hub_stats(struct trace_hub *h, struct trace_stats *ret);
