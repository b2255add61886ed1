/* oauth/oauth.h — the OAuth endpoints of spec/http-api.md: token (four grants,
 * decided by policy/decide), metadata, introspection, revocation, explain, and
 * the development IdP. Handlers parse and format; the decision is policy's,
 * signing is jose's, durability is the audit writer's.
 *
 * A token request produces a reply and exactly one audit event. The caller
 * (http/) must have the event committed (audit_writer_submit) before it sends
 * the reply; if the commit fails it sends oauth_reply_unavailable() instead,
 * so no token leaves the server unrecorded. No token, secret or subject token
 * is ever put in the event: only its jti or a SHA-256 fingerprint. */
#pragma once
#include <jansson.h>
#include <stdbool.h>

#include "audit/audit.h"
#include "core/err.h"
#include "policy/decide.h"
#include "policy/policy.h"
#include "store/store.h"
#include "trace/trace.h"

struct oauth;

struct oauth_config {
    const char *issuer;           /* exactly as published in metadata */
    struct policy_holder *policy; /* borrowed */
    struct store *store;          /* borrowed: revocations are written here */
    const char *node;
    bool dev;                     /* enables the development IdP */
    const char *dev_idp_issuer;   /* dev: issuer of the development IdP */
    const struct jose_key *dev_idp_key; /* dev: its signing key (borrowed) */
};

int oauth_new(const struct oauth_config *cfg, struct oauth **ret, struct err_detail *d);
struct oauth *oauth_free(struct oauth *o);

/* What the HTTP layer hands over: the raw request. */
struct oauth_in {
    char *body;   /* writable, NUL-terminated; decoded in place */
    size_t len;
    const char *content_type;
    const char *authorization; /* the Authorization header or NULL */
    const char *client_ip;
    const char *user_agent;
    const char *request_id;
    int64_t received_us; /* when the request arrived (the event's time); 0 = now */
};

struct oauth_reply {
    int status;
    json_t *body;                 /* owned */
    const char *www_authenticate; /* static string or NULL */
    json_t *event;                /* owned: commit before sending (token endpoint) */
    struct trace_match trace;     /* published with the event (trace/trace.h) */
    /* assertion ids this request used up, to be recorded with the event (owned or NULL) */
    char *jti_keys[2];
    int64_t jti_exps[2];
};

void oauth_reply_done(struct oauth_reply *r);
/* Replaces the reply with 503 temporarily_unavailable (the event could not be stored). */
void oauth_reply_unavailable(struct oauth_reply *r);

void oauth_token(struct oauth *o, struct oauth_in *in, struct oauth_reply *out);
/* A token request refused before its body could be read (413): the reply with
 * `status` and its one event, like any other token request. */
void oauth_token_refused(struct oauth *o, const struct oauth_in *in, int status, const char *what,
                         struct oauth_reply *out);
void oauth_introspect(struct oauth *o, struct oauth_in *in, struct oauth_reply *out);
void oauth_revoke(struct oauth *o, struct oauth_in *in, struct oauth_reply *out);
/* RFC 8414 metadata (new reference). */
json_t *oauth_metadata(struct oauth *o);

/* RFC 9728 metadata of the gateway's resource ISSUER/mcp/SYSTEM (NULL when no such
 * system): its authorization server is the system's audience. New reference. */
json_t *oauth_protected_resource(struct oauth *o, const char *system_id);

/* POST /api/v1/explain: {"user","groups","client","audience","resource","scope",
 * "grant_type"?} → every step's result. Records nothing. ERR_INVAL with d for bad input. */
int oauth_explain(struct oauth *o, const json_t *req, json_t **ret, struct err_detail *d);

/* Dev mode only: an ID token from the development IdP for `user` in `groups`
 * (array of strings, may be NULL), valid `ttl` seconds. ERR_UNSUPPORTED outside dev. */
int oauth_dev_id_token(struct oauth *o, const char *user, const json_t *groups, int64_t ttl,
                       char **ret, struct err_detail *d);

/* The token reply could not be recorded (503): count it as such, not as what it was. */
void oauth_note_unavailable(struct oauth *o, int was_granted);

struct oauth_stats {
    uint64_t granted, denied, by_reason[REASON_COUNT_];
};
void oauth_stats(struct oauth *o, struct oauth_stats *ret);
