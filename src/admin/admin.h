/* admin/admin.h — the admin operations behind /api/v1 and `mcpauth apply`:
 * list, get, create, replace, patch and delete policy objects, apply a whole
 * policy document, and manage signing keys.
 *
 * Every mutation is one store transaction that (1) writes the objects,
 * (2) rebuilds the policy snapshot from the store inside the transaction,
 * which checks every cross-object rule, (3) appends one audit event per
 * changed object, and (4) commits; only then is the new snapshot swapped in.
 * A failure at any step rolls everything back: nothing is half-applied and
 * no event is written for a change that did not happen.
 * All functions are thread-safe (the store transaction serialises them). */
#pragma once
#include <jansson.h>

#include "audit/audit.h"
#include "config/yaml.h"
#include "core/err.h"
#include "jose/crypto.h"
#include "policy/policy.h"
#include "store/store.h"

struct admin;

struct admin_config {
    struct store *store;          /* borrowed */
    const struct kek *kek;        /* borrowed */
    struct policy_holder *policy; /* borrowed; receives each new snapshot */
    const char *node;             /* this node's name in events */
};

int admin_new(const struct admin_config *cfg, struct admin **ret);
struct admin *admin_free(struct admin *a); /* NULL-safe */

/* Rebuilds the snapshot from the store and swaps it in (start-up). */
int admin_reload(struct admin *a, struct err_detail *d);

/* Objects. Results are new references in the public view (no secrets). Errors:
 * ERR_NOTFOUND, ERR_EXISTS (create of an existing id), ERR_INVAL (validation; d names
 * the field), ERR_CONFLICT (the change would leave the policy inconsistent, such as
 * deleting a system a grant uses), ERR_IO. */
int admin_list(struct admin *a, enum store_kind kind, json_t **ret);
int admin_get(struct admin *a, enum store_kind kind, const char *id, json_t **ret,
              struct err_detail *d);
/* On create of a client_secret_* client without a secret, one is generated and
 * returned once as "secret" in *ret. */
int admin_create(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                 const json_t *body, json_t **ret, struct err_detail *d);
int admin_replace(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                  const char *id, const json_t *body, json_t **ret, struct err_detail *d);
/* RFC 7396 JSON merge patch. */
int admin_patch(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                const char *id, const json_t *patch, json_t **ret, struct err_detail *d);
int admin_delete(struct admin *a, const struct audit_origin *o, enum store_kind kind,
                 const char *id, struct err_detail *d);

/* Settings: the stored object, or the defaults when none was ever set. Change them with
 * admin_patch(..., STORE_SETTINGS, "settings", ...) or admin_replace. */
int admin_settings_get(struct admin *a, json_t **ret);

/* Applies a policy document (spec/policy.md, "Policy file"). *ret summarises:
 * {"created": N, "updated": N, "deleted": N, "unchanged": N,
 *  "changes": [{"action": "create", "object": "system:github"}, ...]}.
 * Errors name the line when the document came from YAML/JSON text. */
int admin_apply(struct admin *a, const struct audit_origin *o, const struct config_doc *doc,
                int prune, json_t **ret, struct err_detail *d);

/* Signing keys (admin/keys.c). Key objects: {"kid", "alg", "status", "created",
 * "public_jwk"}; the private key never leaves the store except sealed. */
int admin_keys_list(struct admin *a, json_t **ret);
int admin_key_get(struct admin *a, const char *kid, json_t **ret, struct err_detail *d);
/* A new key: "active" when the algorithm has no active key yet, else "published". */
int admin_key_create(struct admin *a, const struct audit_origin *o, const char *alg,
                     json_t **ret, struct err_detail *d);
/* Activates (demoting the algorithm's other active keys to published) or retires a key.
 * Retiring the last active key of the default or a maintained algorithm is ERR_CONFLICT. */
int admin_key_activate(struct admin *a, const struct audit_origin *o, const char *kid,
                       json_t **ret, struct err_detail *d);
int admin_key_retire(struct admin *a, const struct audit_origin *o, const char *kid,
                     json_t **ret, struct err_detail *d);
/* Creates an active key for the default and every maintained algorithm that has none.
 * Returns the number created (>= 0) or a negative error. */
int admin_keys_ensure(struct admin *a, const struct audit_origin *o, struct err_detail *d);

/* The current snapshot version (incremented by every committed change). */
uint64_t admin_version(struct admin *a);
