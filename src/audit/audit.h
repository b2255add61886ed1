/* audit/audit.h — the audit event of spec/audit-event.md: building one with
 * every common field present (null where it does not apply), sealing it into
 * the hash chain and appending it to the store.
 *
 * Chain: hash = base64url(SHA-256(prev_hash || canonical JSON of the event
 * without "hash")), where canonical JSON is jansson's compact output with
 * sorted keys and prev_hash is "" for the first event. Appending must happen
 * inside a store transaction so the chain and seq cannot interleave. */
#pragma once
#include <jansson.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

/* Where a request came from, copied into request.* of the events it causes. */
struct audit_origin {
    const char *request_id; /* UUIDv7 of the HTTP request */
    const char *endpoint;   /* "admin", "token", ... */
    const char *client_ip;
    const char *user_agent;
    const char *actor;      /* admin.change: who ("admin-token", "config") */
};

/* A new event object with a fresh UUIDv7 id, the time now, `type`, `outcome`,
 * `severity`, `node`, and every other common field null. NULL on ENOMEM. */
json_t *audit_event_new(const char *type, const char *outcome, const char *severity,
                        const char *node);
/* Sets request.* (id, endpoint, client_ip, user_agent) from `o`. */
void audit_event_set_origin(json_t *ev, const struct audit_origin *o);
/* An admin.change (or key.rotate) event: actor, action ("create", "update",
 * "delete", "activate", "retire"), object ("system:github") and changes (taken). */
json_t *audit_admin_event_new(const char *type, const struct audit_origin *o, const char *action,
                              const char *object, json_t *changes_take, const char *node);

/* Computes the chain hash of `ev` (its "hash" member ignored) after `prev_hash`. */
int audit_event_hash(const json_t *ev, const char *prev_hash, char out[44]);
/* Appends `ev` to the store, sealed into the chain. Must be called inside a store
 * transaction. Returns 0 or ERR_IO/ERR_NOMEM/ERR_CONFLICT. */
int audit_append(struct store *s, json_t *ev);

/* An event serialised ahead of its seq: the canonical JSON with null placeholders for
 * seq and prev_hash, and the copies of the indexed columns. Made on the request's
 * thread (audit_prepare), sealed on the writer's (audit_append_prepared), so the
 * single writer thread does no JSON work. */
struct audit_prepared {
    char *canon;
    size_t len, prev_at, seq_at; /* offsets of the two placeholders' "null" */
    char *cols[9];               /* id time type outcome severity reason user client system */
};
int audit_prepare(json_t *ev, struct audit_prepared **ret);
struct audit_prepared *audit_prepared_free(struct audit_prepared *p); /* NULL-safe */
/* Appends n prepared events in order, reading the chain's end once. In a transaction. */
int audit_append_prepared(struct store *s, struct audit_prepared *const *ps, size_t n);
