/* policy/policy.h — the policy model of spec/policy.md: validation and
 * normalisation of each object kind, and the immutable in-memory snapshot the
 * decision runs on.
 *
 * Objects travel as JSON (the admin API, the policy file, the store). Before
 * anything is stored, policy_normalize() checks a candidate object field by
 * field (unknown fields are errors), fills defaults and writes the canonical
 * form (durations "300s", secrets replaced by their salted hash). Cross-object
 * rules (a grant on an unknown system, two systems registering one target URL)
 * are checked by policy_snapshot_build() over the whole candidate state, so an
 * admin change or an apply is stored only if the policy it leaves is valid.
 *
 * A snapshot is immutable and reference counted; struct policy_holder swaps
 * the current one atomically so a change applies to the next request. */
#pragma once
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/strmap.h"
#include "jose/keys.h"
#include "store/store.h"

/* ---- kinds ---- */
struct policy_kind_info {
    enum store_kind kind;
    const char *path;     /* URL segment and CLI kind: "access-policies" */
    const char *section;  /* policy file section: "access_policies" */
    const char *singular; /* object reference prefix: "access_policy" */
};
/* The info of a kind; NULL for kinds without one (never for valid kinds). */
const struct policy_kind_info *policy_kind_info(enum store_kind kind);
/* Looks a kind up by URL segment ("systems") or file section ("access_policies"). */
const struct policy_kind_info *policy_kind_by_path(const char *path);
const struct policy_kind_info *policy_kind_by_section(const char *section);

/* Where a validation error is. `node` (borrowed, may be NULL) is the offending JSON
 * node or the object holding the offending key, so a caller that parsed YAML can
 * turn it into a line number; `key` is that key when the error is about a member. */
struct policy_error {
    char msg[512];      /* "systems[0].scopes[1].enabled: expected true or false" */
    const json_t *node;
    const char *key;
};

/* Validates `in` as an object of `kind` and returns its canonical form.
 * `where` prefixes messages ("systems[0]"; may be ""). `existing` is the stored
 * object with the same id, or NULL: a client's secret that matches the existing
 * hash keeps that hash, so re-applying a file changes nothing.
 * Returns 0, a new *ret and an owned *ret_id (free()), or ERR_INVAL with e filled.
 * For grants the id is "SYSTEM:SUBJECT" unless the object names one. */
int policy_normalize(enum store_kind kind, const json_t *in, const json_t *existing,
                     const char *where, json_t **ret, char **ret_id, struct policy_error *e);

/* The object as the admin API shows it: a copy without write-only members
 * (a client's secret_hash becomes "secret_set": true). New reference. */
json_t *policy_public_view(enum store_kind kind, const json_t *doc);
/* The key-encryption key that seals exporter credentials ("auth" -> "auth_sealed", bound
 * to "exporter:ID"). Set once by the server before the admin API serves; without it an
 * exporter with credentials is refused. */
void policy_set_kek(const struct kek *k);
/* Opens a value sealed under the KEK set with policy_set_kek (a trusted issuer's
 * client_secret_sealed, aad "trusted_issuer:ID"). Returns 0 and an owned NUL-terminated
 * *ret (wipe before free), ERR_NOTFOUND without a KEK or value, ERR_CRYPTO/ERR_INVAL
 * when it does not open. */
int policy_unseal(const char *aad, const char *sealed, char **ret);
/* Same members masked as "***" for audit events (spec: secrets masked). New reference. */
json_t *policy_masked_view(enum store_kind kind, const json_t *doc);

/* ---- snapshot ---- */
enum policy_token_type { POLICY_TOKEN_ID_JAG, POLICY_TOKEN_ACCESS };
enum policy_client_auth {
    POLICY_AUTH_NONE,
    POLICY_AUTH_SECRET_BASIC,
    POLICY_AUTH_SECRET_POST,
    POLICY_AUTH_PRIVATE_KEY_JWT
};
enum policy_grant_type {
    POLICY_GT_TOKEN_EXCHANGE = 1 << 0,
    POLICY_GT_JWT_BEARER = 1 << 1,
    POLICY_GT_CLIENT_CREDENTIALS = 1 << 2,
    POLICY_GT_AUTHORIZATION_CODE = 1 << 3,
    POLICY_GT_REFRESH_TOKEN = 1 << 4,
};

/* Every string below is borrowed from the JSON documents the snapshot holds. */
struct policy_scope {
    const char *name;
    bool enabled;
    const char *classification; /* may be NULL */
};

struct policy_system {
    const char *id, *name, *audience;
    const char **resource_urls;
    size_t n_resource_urls;
    struct policy_scope *scopes;
    size_t n_scopes;
    bool paused;
    bool inherit_alg;
    enum jose_alg signing_alg; /* when !inherit_alg */
    int64_t max_lifetime;      /* seconds; 0 = the default lifetime */
    enum policy_token_type token_type;
};

struct policy_client {
    const char *id, *name;
    enum policy_client_auth auth;
    const char *secret_hash; /* NULL for none / private_key_jwt */
    const json_t *jwks;      /* may be NULL */
    const char *jwks_uri;    /* may be NULL */
    const char **redirect_uris;
    size_t n_redirect_uris;
    unsigned grant_types; /* enum policy_grant_type bits */
    /* a client ID metadata document's client (id = its URL), named by an access policy:
     * public, authorization_code only; its redirect URIs come from the document */
    bool metadata_document;
};

struct policy_access {
    const char *id;
    const struct policy_client *client;
    const struct policy_system *system;
    bool active;
    const char *client_id_at_system; /* never NULL: defaults to the client's id */
};

struct policy_grant {
    const char *id, *subject;
    const struct policy_system *system;
    const char **scopes;
    size_t n_scopes;
};

struct policy_issuer {
    const char *id, *issuer, *jwks_uri, *audience, *user_claim, *groups_claim;
    const json_t *jwks;
    unsigned algorithms; /* 1 << enum jose_alg */
    /* sign-in for /oauth/authorize (all NULL unless authorization_endpoint is set) */
    const char *authorization_endpoint, *token_endpoint, *client_id;
    const char *client_secret_sealed; /* policy_unseal(aad "trusted_issuer:ID") */
    const char *sign_in_scope;        /* default "openid" */
    bool secret_post;                 /* token_endpoint_auth_method client_secret_post */
};

struct policy_settings {
    enum jose_alg default_signing_alg;
    unsigned maintained_algs; /* 1 << enum jose_alg */
    int64_t default_lifetime;
};

/* A signing key as the snapshot holds it (opened, ready to sign). */
struct policy_key {
    const char *kid;
    enum jose_alg alg;
    const char *status; /* active | published | retired */
    int64_t created;
    struct jose_key *key; /* NULL for retired keys (never opened) */
};

struct policy_snapshot {
    uint64_t version;
    struct policy_settings settings;
    struct policy_system *systems;
    size_t n_systems;
    struct policy_client *clients;
    size_t n_clients;
    struct policy_access *access;
    size_t n_access;
    struct policy_grant *grants;
    size_t n_grants;
    struct policy_issuer *issuers;
    size_t n_issuers;
    struct policy_key *keys;
    size_t n_keys;
    const struct policy_key *active_key[JOSE_ALG_COUNT]; /* newest active key per alg */
    char *jwks_json; /* {"keys":[...]} of active and published keys */

    struct strmap system_by_id, system_by_resource, client_by_id, access_by_pair,
        issuer_by_issuer;
    /* private */
    json_t *docs_[STORE_KIND_COUNT];
    void *arena_;
    int refs_;
};

/* Input of a build: per kind, the array of canonical objects (as stored), and the
 * signing keys with the KEK to open them (keys may be NULL/0 for tests). */
struct policy_input {
    json_t *lists[STORE_KIND_COUNT]; /* borrowed; NULL means empty */
    const struct store_key *keys;
    size_t n_keys;
    const struct kek *kek;
    uint64_t version;
};

/* Builds a snapshot and checks every cross-object rule. Returns 0 and a snapshot with
 * one reference, or ERR_INVAL (e says which object and why), ERR_CORRUPT (a stored key
 * does not open), ERR_NOMEM. */
int policy_snapshot_build(const struct policy_input *in, struct policy_snapshot **ret,
                          struct policy_error *e);
/* Reads every kind and key from `s` (inside or outside a transaction) and builds. */
int policy_snapshot_load(struct store *s, const struct kek *kek, uint64_t version,
                         struct policy_snapshot **ret, struct policy_error *e);
struct policy_snapshot *policy_snapshot_ref(struct policy_snapshot *snap);
struct policy_snapshot *policy_snapshot_unref(struct policy_snapshot *snap); /* NULL-safe */

const struct policy_system *policy_system_by_id(const struct policy_snapshot *s, const char *id);
const struct policy_client *policy_client_by_id(const struct policy_snapshot *s, const char *id);

/* The current snapshot, swapped atomically. policy_holder_get() returns a new
 * reference (the only lock is a few instructions long); the holder owns one reference of
 * what was set. Thread-safe. */
struct policy_holder;
struct policy_holder *policy_holder_new(struct policy_snapshot *initial_take);
struct policy_holder *policy_holder_free(struct policy_holder *h);
struct policy_snapshot *policy_holder_get(struct policy_holder *h);
void policy_holder_set_take(struct policy_holder *h, struct policy_snapshot *snap);
