/* oauth/oauth_priv.h — what the oauth/ files share. */
#pragma once
#include "oauth/authorize.h"
#include "oauth/form.h"
#include "oauth/jwks_fetch.h"
#include "oauth/oauth.h"
#include "oauth/state.h"
#include "jose/jws.h"
#include "core/buf.h"

#include <stdarg.h>
#include <stdint.h>

#define GT_TOKEN_EXCHANGE "urn:ietf:params:oauth:grant-type:token-exchange"
#define GT_JWT_BEARER "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GT_CLIENT_CREDENTIALS "client_credentials"
#define GT_AUTHORIZATION_CODE "authorization_code"
#define TT_ID_JAG "urn:ietf:params:oauth:token-type:id-jag"
#define TT_ACCESS_TOKEN "urn:ietf:params:oauth:token-type:access_token"
#define TT_ID_TOKEN "urn:ietf:params:oauth:token-type:id_token"
#define CLIENT_ASSERTION_TYPE "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#define TYP_ID_JAG "oauth-id-jag+jwt"
#define TYP_AT "at+jwt"
#define CLOCK_SKEW 60
/* Assertions (ID-JAG, client assertions) must expire within this many seconds: it
 * bounds how long their jti must be remembered. */
#define ASSERTION_MAX_LIFETIME 3600

struct oauth {
    struct oauth_config cfg;
    char *issuer;
    char *dev_idp_issuer;
    struct secret_cache *secrets;
    struct jti_set *replay;  /* assertion and client-assertion jtis */
    struct jti_set *revoked; /* revoked token jtis */
    struct jwks_cache *jwks;
    uint64_t granted, denied, by_reason[REASON_COUNT_]; /* atomics */
    /* the authorization-code front door (authorize.c, register.c, cimd.c) */
    struct ticket_store *codes;   /* struct authz_code, keyed by the code */
    struct ticket_store *pending; /* struct authz_pending, keyed by our state at the IdP */
    struct rate_limiter *register_rl;
    struct cimd_cache *cimd;
};

/* What an authorization code stands for (authorize.c makes it, token.c redeems it). */
struct authz_code {
    char *client_id, *redirect_uri, *challenge, *resource, *scope;
    char *user, *idp_issuer;
    char *groups[DECIDE_MAX_GROUPS];
    size_t n_groups;
};
void authz_code_free(void *p);
void authz_pending_free(void *p);
/* token.c's authorization_code grant: takes the code, checks its bindings (client,
 * redirect_uri, PKCE verifier, resource). 0 and *ret (owned), or REASON_INVALID_SUBJECT
 * (→ invalid_grant) / REASON_INVALID_REQUEST with `why`. */
int authz_code_redeem(struct oauth *o, const char *code, const char *client_id,
                      const char *redirect_uri, const char *verifier, const char *resource,
                      struct authz_code **ret, char *why, size_t why_len);

/* authz_util.c: appends `s` percent-encoded (RFC 3986 unreserved kept). */
int buf_put_urlenc(struct buf *b, const char *s);

/* upstream.c: redeems the IdP's code at its token endpoint (libcurl, bounded) and returns
 * the ID token (owned). ERR_IO / ERR_INVAL / ERR_TOOBIG with `why` (no secret in it). */
int upstream_redeem(const struct policy_issuer *idp, const char *code, const char *redirect_uri,
                    const char *verifier, char **ret_id_token, char *why, size_t why_len);

/* cimd.c: client ID metadata documents (an http(s) URL as client_id). */
struct cimd_cache;
int cimd_cache_new(struct cimd_cache **ret);
struct cimd_cache *cimd_cache_free(struct cimd_cache *c);
/* The client the document at `url` describes, fetched or from the cache: a public client
 * (auth none, grant authorization_code) whose strings live as long as *ret_doc (a new
 * reference the caller releases after using *ret); its redirect URIs are put in `uris`
 * (CIMD_MAX_REDIRECT_URIS slots). ERR_* with `why`. */
int cimd_client(struct oauth *o, const char *url, struct policy_client *ret, const char **uris,
                json_t **ret_doc, char *why, size_t why_len);

/* Assertion ids a request used (ID-JAG, client assertion): remembered in memory at once
 * and, through the reply, durably with the request's audit event. */
struct replay_note {
    char *keys[2];
    int64_t exps[2];
};
/* Marks `key` used until exp: 0, ERR_EXISTS for a replay, ERR_IO when the set is full. */
int replay_use(struct oauth *o, struct replay_note *rn, const char *key, int64_t exp);

/* A verified identity from a subject token or an assertion. */
struct subject {
    char *user;               /* owned */
    char *groups[DECIDE_MAX_GROUPS];
    size_t n_groups;
    char *issuer;             /* owned: iss of the token */
    char sha256[65];          /* fingerprint of the token */
    char *resource;           /* assertion: its resource claim (owned) or NULL */
    char *scope;              /* assertion: its scope claim (owned) or NULL */
    char *jti;                /* assertion: its jti (owned) */
};
void subject_done(struct subject *s);

int64_t oauth_now(void);

/* client_auth.c: authenticates the caller of token/introspect/revoke. On failure
 * fills `why` and returns REASON_INVALID_REQUEST (two methods at once) or
 * REASON_INVALID_CLIENT; *ret_presented is the client id the caller claimed (may be
 * NULL), valid while `f` and `in` live. *ret_basic says whether Basic was used. */
enum policy_reason client_authenticate(struct oauth *o, const struct policy_snapshot *snap,
                                       const struct form *f, const struct oauth_in *in,
                                       const struct policy_client **ret, const char **ret_presented,
                                       int *ret_basic, struct replay_note *rn, char *why,
                                       size_t why_len);

/* subject.c */
/* Verifies an ID token from a trusted issuer (token exchange's subject_token). */
int subject_verify_id_token(struct oauth *o, const struct policy_snapshot *snap, const char *token,
                            struct subject *ret, char *why, size_t why_len);
/* Verifies the ID token of a sign-in at `idp`: its issuer, signature, aud = idp's
 * client_id, exp, and `nonce`. */
int subject_verify_sign_in(struct oauth *o, const struct policy_snapshot *snap,
                           const struct policy_issuer *idp, const char *token, const char *nonce,
                           struct subject *ret, char *why, size_t why_len);
/* Verifies an ID-JAG presented to the JWT bearer grant by `client`. */
int subject_verify_assertion(struct oauth *o, const struct policy_snapshot *snap,
                             const char *token, const struct policy_client *client,
                             struct replay_note *rn, struct subject *ret, char *why,
                             size_t why_len);
/* Looks up the verification key for a JWS issued by `iss`: mcpauth's own keys when
 * iss is the issuer, else the trusted issuer's (inline JWKS or jwks_uri). */
int subject_key(struct oauth *o, const struct policy_snapshot *snap, const struct jws *jws,
                const char *iss, struct jose_pubkey **ret, char *why, size_t why_len);
/* A key of mcpauth's own (active or published) by kid. */
int own_key(const struct policy_snapshot *snap, const struct jws *jws, struct jose_pubkey **ret);
/* aud claim equals `want` (string, or an array holding exactly that one value when
 * `single`, or holding it among others when !single). */
int aud_matches(const json_t *aud, const char *want, int single);
int same_audience(const char *a, const char *b);
/* RFC 7515 §4.1.9: media types compare case-insensitively and "application/" may be
 * left out. 1 when `typ` (may be NULL) names `want`. */
int typ_is(const char *typ, const char *want);

/* RFC 6749 §3.3: splits `s` in place into scope tokens (at most DECIDE_MAX_SCOPES) on
 * spaces. 0, -1 for a character a scope token cannot hold, -2 for too many (token.c). */
int oauth_split_scopes(char *s, const char **out, size_t *n);
/* Denies the decision with reason r and the formatted status detail, keeping the system
 * and access policy it had matched (the event and trace name them). */
void oauth_deny_v(struct decision *d, enum policy_reason r, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The event's "scopes": each requested scope with its outcome and, when denied, reason. */
json_t *oauth_scopes_json(const struct decision *d);
