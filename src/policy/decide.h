/* policy/decide.h — the decision of spec/policy.md ("The decision, in order"):
 * which system a request names, whether an active access policy connects the
 * client to it, whether the system is paused, whether the target URL is
 * registered, each scope's own outcome, and the signing key.
 *
 * policy_decide() is pure: it reads the snapshot and the request, does no
 * I/O, takes no lock and allocates nothing (the decision has fixed storage).
 * Steps 1 to 4 (well-formedness, client authentication, grant type, subject
 * token) are the caller's: it records their outcome with policy_deny_early().
 * The reason table is a contract: operators grep for these codes and texts. */
#pragma once
#include <stdbool.h>
#include <stddef.h>

#include "policy/policy.h"

/*  name                        code                          status detail                          oauth error               http severity */
#define POLICY_REASONS(X)                                                                                                           \
    X(REASON_NONE,              NULL,                         NULL,                                  NULL,                     200, "info")    \
    X(REASON_INVALID_REQUEST,   "invalid_request",            "Malformed request",                   "invalid_request",        400, "error")   \
    X(REASON_UNSUPPORTED_GRANT, "unsupported_grant_type",     "Unsupported grant type",              "unsupported_grant_type", 400, "error")   \
    X(REASON_INVALID_CLIENT,    "invalid_client",             "Client authentication failed",        "invalid_client",         401, "error")   \
    X(REASON_UNAUTHORIZED_CLIENT, "unauthorized_client",      "Grant type not allowed for the client", "unauthorized_client",  400, "error")   \
    X(REASON_INVALID_SUBJECT,   "invalid_subject_token",      "Subject token rejected",              "invalid_grant",          400, "warning") \
    X(REASON_UNKNOWN_SYSTEM,    "unknown_system",             "No server workload matched",          "invalid_target",         400, "error")   \
    X(REASON_NO_ACCESS_POLICY,  "no_access_policy",           "No active access policy",             "unauthorized_client",    400, "warning") \
    X(REASON_SERVER_PAUSED,     "server_paused",              "Server paused",                       "invalid_target",         400, "warning") \
    X(REASON_TARGET_NOT_REGISTERED, "target_url_not_registered", "Target URL not registered",        "invalid_target",         400, "warning") \
    X(REASON_SCOPE_NOT_ENABLED, "scope_not_enabled",          "Scope not enabled",                   "invalid_scope",          400, "warning") \
    X(REASON_NO_GRANT,          "no_grant",                   "No grant for the scope",              "invalid_scope",          400, "warning") \
    X(REASON_NO_SIGNING_KEY,    "no_signing_key",             "No signing key for the algorithm",    "server_error",           500, "error")   \
    X(REASON_UNAVAILABLE,       "audit_unavailable",          "Audit log unavailable",               "temporarily_unavailable", 503, "error")

enum policy_reason {
#define POLICY_REASON_ENUM_(name, code, text, oauth, http, sev) name,
    POLICY_REASONS(POLICY_REASON_ENUM_)
#undef POLICY_REASON_ENUM_
        REASON_COUNT_
};

const char *policy_reason_code(enum policy_reason r);   /* NULL for REASON_NONE */
const char *policy_reason_text(enum policy_reason r);   /* status detail prefix */
const char *policy_reason_oauth(enum policy_reason r);  /* RFC 6749 error */
int policy_reason_http(enum policy_reason r);
const char *policy_reason_severity(enum policy_reason r);
/* The decision step (1..11) a reason belongs to. */
int policy_reason_step(enum policy_reason r);

#define DECIDE_MAX_SCOPES 64
#define DECIDE_MAX_GROUPS 64

struct decide_request {
    const struct policy_client *client; /* authenticated (step 2 passed) */
    enum policy_grant_type grant_type;
    const char *audience;   /* token exchange: the system's audience; else NULL */
    const char *resource;   /* RFC 8707 target URL, or NULL */
    const char *const *scopes; /* requested scopes; n_scopes 0 = every enabled scope held */
    size_t n_scopes;
    const char *user;       /* NULL for client credentials */
    const char *const *groups;
    size_t n_groups;
    /* JWT bearer: the scopes the assertion carries; the grant is the intersection.
     * NULL when not a JWT bearer request. */
    const char *const *asserted_scopes;
    size_t n_asserted_scopes;
    const char *issuer; /* mcpauth's issuer, for systems whose audience is mcpauth */
};

struct decide_scope {
    const char *name; /* borrowed from the request or the snapshot */
    bool granted;
    enum policy_reason reason; /* REASON_NONE when granted */
};

struct decision {
    enum policy_reason reason; /* REASON_NONE: (at least partly) granted */
    const struct policy_system *system;   /* NULL before step 5 matched */
    const struct policy_access *access;   /* the policy found, active or not; NULL if none */
    struct decide_scope scopes[DECIDE_MAX_SCOPES];
    size_t n_scopes;
    size_t n_granted;
    enum jose_alg alg;
    const struct policy_key *key; /* NULL unless granted */
    int64_t lifetime;             /* seconds */
    /* "Scope not enabled: repo:write" — the status detail, also the error_description;
     * empty when fully granted. */
    char detail[512];
};

/* Runs steps 5 to 10 on `snap`. Always fills *d; returns d->reason. */
enum policy_reason policy_decide(const struct policy_snapshot *snap, const struct decide_request *req,
                                 struct decision *d);
/* Records an outcome decided before step 5 (steps 1-4): reason plus what follows the
 * status text ("Malformed request: " + `what`). */
void policy_deny_early(struct decision *d, enum policy_reason r, const char *what);
/* Space-separated list of the granted scopes into out (for the token's scope claim). */
void decision_granted_scopes(const struct decision *d, char *out, size_t n);
