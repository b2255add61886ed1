/* store/store.h — every byte mcpauth keeps on disk goes through here: policy
 * objects, signing keys (sealed), audit events and exporter cursors. Nothing
 * above store/ knows which engine is underneath (SQLite now, PostgreSQL later).
 *
 * Concurrency: a store is one connection guarded by one recursive mutex.
 * store_begin() takes the mutex and opens a write transaction (BEGIN
 * IMMEDIATE); store_commit()/store_rollback() end it and release the mutex.
 * Calls made between them by the same thread run inside the transaction;
 * calls made outside any transaction each run as their own statement. Other
 * threads block until the transaction ends. More connections to the same
 * database (a second store_open) are allowed: SQLite WAL lets readers run
 * beside the one writer, and busy_timeout waits out the writer.
 *
 * Policy objects are JSON objects kept whole (compact, sorted keys), keyed by
 * kind and id; validation is policy/'s job, not the store's. */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/query.h"

struct store;

enum store_kind {
    STORE_SETTINGS,        /* one object, id "settings" */
    STORE_SYSTEMS,
    STORE_CLIENTS,
    STORE_ACCESS_POLICIES,
    STORE_GRANTS,
    STORE_TRUSTED_ISSUERS,
    STORE_EXPORTERS,
    STORE_KIND_COUNT
};

/* Opens (creating if needed) the database named by `url` ("sqlite:PATH" or a bare
 * path), sets WAL, foreign keys and busy_timeout, and applies every pending migration
 * in one transaction. Returns 0 and an owned *ret, or ERR_IO / ERR_CORRUPT with the
 * reason in d (a database newer than this binary is ERR_CORRUPT: "schema version N is
 * newer than this mcpauth (M)"). */
int store_open(const char *url, struct store **ret, struct err_detail *d);
struct store *store_close(struct store *s); /* NULL-safe */
/* Durability of commits. STORE_SYNC_POWER (the default of store_open): the WAL is
 * fsynced at every commit, so a commit survives power loss. STORE_SYNC_PROCESS: a
 * commit is in the WAL (the OS page cache) when store_commit returns, so it survives
 * a crash or kill of the process but the last commits may be lost on power loss;
 * the WAL is fsynced at checkpoints. */
enum store_sync { STORE_SYNC_POWER, STORE_SYNC_PROCESS };
int store_set_sync(struct store *s, enum store_sync mode);
/* Copies what it can of the WAL back into the database without blocking writers (a
 * passive checkpoint), or, with `restart`, all of it, waiting for the writer between two
 * transactions. The audit writer runs passive ones from a connection of their own, so
 * its commits find the WAL already copied back and reset it cheaply.
 * *ret_frames (may be NULL) receives the WAL's length in frames. 0 or ERR_IO. */
int store_checkpoint(struct store *s, int restart, int *ret_frames);
/* Takes this connection's commits off the checkpoint path: no automatic checkpoint
 * after a commit (another connection runs them), and a WAL that grew past `limit_bytes`
 * is truncated back to it when it is next reset. 0 or ERR_IO. */
int store_set_manual_checkpoints(struct store *s, int64_t limit_bytes);
/* Flushes the database file (not the WAL) to disk: the checkpointer calls it before it
 * asks the writer to pause, so the pause's own sync has little left to write. 0 or ERR_IO. */
int store_sync_db(struct store *s);
/* The schema version after migrations. */
int store_schema_version(struct store *s);

int store_begin(struct store *s);   /* 0 or ERR_IO */
int store_commit(struct store *s);  /* 0 or ERR_IO (transaction rolled back then) */
void store_rollback(struct store *s);
/* 0 when the database accepts a write right now (used by /readyz). */
int store_ping(struct store *s);

/* ---- policy objects ---- */
/* ERR_NOTFOUND when absent; *ret a new reference. */
int store_object_get(struct store *s, enum store_kind kind, const char *id, json_t **ret);
/* A new array of every object of `kind`, ordered by id. */
int store_object_list(struct store *s, enum store_kind kind, json_t **ret);
/* Inserts or replaces the object `id`. */
int store_object_put(struct store *s, enum store_kind kind, const char *id, const json_t *doc);
/* ERR_NOTFOUND when absent. */
int store_object_delete(struct store *s, enum store_kind kind, const char *id);

/* ---- signing keys ---- */
struct store_key {
    char *kid;
    char *alg;
    char *status;      /* "active", "published", "retired" */
    int64_t created;   /* unix seconds */
    int64_t updated;
    char *public_jwk;  /* JSON text */
    char *sealed;      /* private key sealed under the KEK (jose_key_seal) */
};
/* Inserts a new key (ERR_EXISTS if the kid is taken). */
int store_key_insert(struct store *s, const struct store_key *k);
/* Sets status and updated; ERR_NOTFOUND. */
int store_key_set_status(struct store *s, const char *kid, const char *status, int64_t updated);
/* Every key, ordered by created then kid. *ret is an owned array; free with store_keys_free. */
int store_key_list(struct store *s, struct store_key **ret, size_t *ret_n);
void store_keys_free(struct store_key *keys, size_t n); /* NULL-safe */

/* ---- audit events ---- */
/* The columns a log search filters on are copied out of the JSON document; the
 * document itself is the event as written (spec/audit-event.md). */
struct store_event {
    int64_t seq;
    const char *id;      /* UUIDv7 */
    const char *time;    /* RFC 3339 */
    const char *type;
    const char *outcome;
    const char *severity;
    const char *reason;  /* may be NULL, like every field below */
    const char *user;
    const char *client;
    const char *system;
    const char *doc;     /* canonical JSON of the whole event, hash included */
    const char *hash;    /* base64url SHA-256 */
};
/* The last event's seq and hash (0 and "" when the log is empty). `hash` holds 64 bytes. */
int store_events_last(struct store *s, int64_t *ret_seq, char ret_hash[64]);
/* Appends one event; ev->seq must be last seq + 1 (ERR_CONFLICT otherwise). Call inside
 * a transaction together with whatever the event records. */
int store_events_insert(struct store *s, const struct store_event *ev);
/* The same without the read of the log's end, for a caller that holds the write
 * transaction and got `ev->seq` from store_events_last itself (the audit writer's batch:
 * one read per batch, not per event). A taken seq is still ERR_CONFLICT. */
int store_events_insert_next(struct store *s, const struct store_event *ev);
/* Reads up to `limit` events with seq > after_seq in order, calling fn(doc, seq, arg) for
 * each; stops early if fn returns non-zero (that value is returned). */
int store_events_scan(struct store *s, int64_t after_seq, size_t limit,
                      int (*fn)(const char *doc, int64_t seq, void *arg), void *arg);
int store_events_count(struct store *s, int64_t *ret);

/* ---- exporter cursors ---- */
/* The seq last acknowledged by exporter `id`; ERR_NOTFOUND when it has none yet (its
 * start point, "now" or "beginning", decides the first one). */
int store_cursor_get(struct store *s, const char *id, int64_t *ret);
int store_cursor_set(struct store *s, const char *id, int64_t seq);
/* Forgets the cursor and the dead letters of a removed exporter. */
int store_cursor_delete(struct store *s, const char *id);
/* Parks event `seq` (id `event_id`) that exporter `id`'s sink refused for good, with the
 * receiver's reason. Adding it twice is not an error. */
int store_dead_letter_add(struct store *s, const char *id, int64_t seq, const char *event_id,
                          const char *error);
/* How many events exporter `id` parked (*ret_count), and fn for the newest `limit` of them,
 * newest first (fn may be NULL). */
int store_dead_letters(struct store *s, const char *id, size_t limit, int64_t *ret_count,
                       int (*fn)(int64_t seq, const char *event_id, const char *error,
                                 const char *time, void *arg),
                       void *arg);

/* ---- revoked tokens (RFC 7009) ---- */
/* Remembers jti as revoked until exp (unix seconds); adding it twice is not an error. */
int store_revoked_add(struct store *s, const char *jti, int64_t exp);
/* Deletes the expired ones, then calls fn for every jti still to be refused. */
int store_revoked_scan(struct store *s, int64_t now,
                       int (*fn)(const char *jti, int64_t exp, void *arg), void *arg);

/* ---- used assertion ids (replay protection across restarts) ---- */
int store_jti_add(struct store *s, const char *key, int64_t exp);
int store_jti_scan(struct store *s, int64_t now,
                   int (*fn)(const char *key, int64_t exp, void *arg), void *arg);

/* ---- audit log search ---- */
/* Runs `q` and calls fn(doc, seq, arg) for each matching event in order, at most
 * q->limit; stops early when fn returns non-zero (returned). ERR_INVAL when the filter
 * is malformed (a programming error: logs/ builds only valid trees). */
int store_events_query(struct store *s, const struct store_query *q,
                       int (*fn)(const char *doc, int64_t seq, void *arg), void *arg);
/* The same, handing each match's indexed columns too (seq, doc, id, time, type, severity;
 * the other members NULL), so a reader that needs only those need not parse the document.
 * Pointers are valid during the call. */
int store_events_query_rows(struct store *s, const struct store_query *q,
                            int (*fn)(const struct store_event *ev, void *arg), void *arg);
/* The highest seq (0 when empty). */
int store_events_max_seq(struct store *s, int64_t *ret);
/* Reads events with seq in [from, to] (to 0 = the end) in order, with their stored hash,
 * for chain verification: fn(doc, seq, hash, arg). */
int store_events_chain(struct store *s, int64_t from, int64_t to,
                       int (*fn)(const char *doc, int64_t seq, const char *hash, void *arg),
                       void *arg);
