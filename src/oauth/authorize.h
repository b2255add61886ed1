/* oauth/authorize.h — the authorization-code front door (spec/http-api.md:
 * GET /oauth/authorize, POST /oauth/register) and the sign-in leg behind it
 * (the enterprise IdP's callback, or in --dev a sign-in page of our own), plus
 * the small pure helpers it is built from, exposed here for the unit tests:
 * PKCE S256, redirect URI matching, the SSRF address classification, a store
 * of single-use tickets (authorization codes, pending sign-ins) and a per-IP
 * token bucket.
 *
 * Like the token endpoint, every request here yields exactly one audit event
 * (authorize.request or client.register) in the reply; the HTTP layer commits
 * it before it sends the reply, so no code leaves the server unrecorded. No
 * authorization code, state secret, PKCE verifier or ID token is ever put in
 * an event or a log line.
 *
 * Codes and pending sign-ins live in this process's memory: a code must be
 * redeemed on the node that issued it (see docs/authorization-code.md). */
#pragma once
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/err.h"
#include "oauth/form.h"

struct oauth;

#define AUTHZ_CODE_LIFETIME    60     /* seconds an authorization code is valid */
#define AUTHZ_CODES_MAX        100000 /* codes held at once (fail closed beyond) */
#define AUTHZ_PENDING_LIFETIME 600    /* seconds between authorize and the callback */
#define AUTHZ_PENDING_MAX      10000  /* sign-ins in progress at once */
#define REGISTER_BODY_MAX      (16 * 1024)
#define REGISTER_RATE_PER_MIN  10 /* registrations per client IP per minute ... */
#define REGISTER_BURST         10 /* ... with a burst of this many */
#define CIMD_MAX_BYTES         (16 * 1024)
#define CIMD_TIMEOUT_MS        5000
#define CIMD_TTL               300
#define CIMD_MAX_REDIRECT_URIS 20

/* ---- the endpoints ---- */

/* What the HTTP layer hands over. `params` are the query parameters (GET) or the
 * decoded form (POST sign-in), borrowed for the call; `params_err` is non-NULL when
 * they could not be collected (a repeated parameter, too many): the reason. */
struct oauth_front_in {
    const struct form *params;
    const char *params_err;
    char *body; /* POST: writable, NUL-terminated (register: JSON) */
    size_t len;
    const char *content_type;
    const char *client_ip;
    const char *user_agent;
    const char *request_id;
    int64_t received_us;
};

/* Exactly one of location (a 302/303 redirect), html or body is set. */
struct oauth_front_reply {
    int status;
    char *location;      /* owned */
    char *html;          /* owned: text/html; charset=utf-8 */
    json_t *body;        /* owned: application/json */
    const char *retry_after; /* static or NULL (429) */
    json_t *event;       /* owned: commit before sending */
    int client_matched;  /* for the trace entry: a client workload matched */
};
void oauth_front_reply_done(struct oauth_front_reply *r);

/* GET /oauth/authorize. */
void oauth_authorize(struct oauth *o, const struct oauth_front_in *in,
                     struct oauth_front_reply *out);
/* GET /oauth/callback: the enterprise IdP sends the browser back here. */
void oauth_authorize_callback(struct oauth *o, const struct oauth_front_in *in,
                              struct oauth_front_reply *out);
/* POST /oauth/sign-in: the development sign-in page's form (--dev only; 404 otherwise). */
void oauth_authorize_dev_sign_in(struct oauth *o, struct oauth_front_in *in,
                                 struct oauth_front_reply *out);

/* Registration creates the client through the admin layer, which the oauth module
 * does not link: the HTTP layer passes this. It returns 0, or a negative ERR_* with a
 * message in `why` (ERR_INVAL: the model refused the client). */
typedef int (*oauth_create_client_fn)(void *arg, const json_t *client, char *why, size_t n);
/* POST /oauth/register (RFC 7591). `create` is called once the metadata is valid. */
void oauth_register(struct oauth *o, struct oauth_front_in *in, oauth_create_client_fn create,
                    void *create_arg, struct oauth_front_reply *out);
/* A registration refused before its body could be read (413): reply and event. */
void oauth_register_refused(struct oauth *o, const struct oauth_front_in *in, int status,
                            const char *what, struct oauth_front_reply *out);

/* ---- helpers (pure unless said otherwise) ---- */

/* Validates an RFC 7591 registration body (untrusted JSON, at most REGISTER_BODY_MAX
 * bytes). On success returns 0, *ret_client (the client object to create, without id
 * or secret) and *ret_meta (the registered metadata to answer with), new references.
 * On failure ERR_INVAL with *ret_error the RFC 7591 error code (invalid_redirect_uri,
 * invalid_client_metadata) and `why`; ERR_NOMEM. */
int register_validate(const char *body, size_t len, json_t **ret_client, json_t **ret_meta,
                      const char **ret_error, char *why, size_t why_len);

/* RFC 7636: a challenge is 43 base64url characters (S256); a verifier 43 to 128
 * characters of [A-Za-z0-9-._~]. 1 when valid. */
int pkce_challenge_valid(const char *c);
int pkce_verifier_valid(const char *v);
/* 1 when BASE64URL(SHA256(verifier)) equals challenge (constant time). */
int pkce_s256_matches(const char *verifier, const char *challenge);

/* 1 for http://127.0.0.1[:port]/..., http://[::1][:port]/... and http://localhost... */
int redirect_uri_is_loopback(const char *uri);
/* A redirect URI a client may register: https://host/..., or http:// to a loopback
 * host; absolute, no fragment, no whitespace, at most 2048 bytes. 1 when allowed. */
int redirect_uri_allowed(const char *uri);
/* `presented` matches `registered`: byte for byte, except that for a loopback
 * registration the port is ignored (RFC 8252 §7.3: native apps listen on an
 * ephemeral port). 1 when it matches. */
int redirect_uri_matches(const char *registered, const char *presented);

/* Where an address points, for the SSRF guard of client metadata fetches. */
enum net_class {
    NET_PUBLIC,
    NET_LOOPBACK,
    NET_PRIVATE,     /* RFC 1918, 100.64/10 (CGNAT), fc00::/7, fec0::/10 */
    NET_LINK_LOCAL,  /* 169.254/16, fe80::/10 */
    NET_MULTICAST,   /* 224/4, ff00::/8 */
    NET_UNSPECIFIED, /* 0.0.0.0/8, :: */
    NET_RESERVED,    /* documentation, benchmarking, 240/4, broadcast, 192.0.0/24, ... */
};
/* IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible and NAT64 (64:ff9b::/96) IPv6
 * addresses are classified by the IPv4 address they embed. */
enum net_class net_classify(const struct sockaddr *sa);
/* The same for a numeric address string; ERR_INVAL when it is not one. */
int net_classify_str(const char *ip, enum net_class *ret);
const char *net_class_name(enum net_class c);

/* A store of single-use tickets: an opaque 256-bit random key (43 base64url
 * characters) handed to the caller, the data kept here until it expires. Only a
 * SHA-256 of the key is held. Thread-safe; at most `max` live tickets. */
struct ticket_store;
int ticket_store_new(size_t max, void (*free_data)(void *), struct ticket_store **ret);
struct ticket_store *ticket_store_free(struct ticket_store *s); /* NULL-safe */
/* Stores `data` (taken, also on failure) until `exp`; writes the key into ret_key.
 * ERR_IO when the store is full of live tickets. */
int ticket_put(struct ticket_store *s, void *data, int64_t exp, int64_t now, char ret_key[44]);
/* Takes the ticket: 0 and its data (the caller owns it; the key is spent), ERR_EXISTS
 * when it was taken before (until it would have expired), ERR_NOTFOUND when unknown
 * or expired. */
int ticket_take(struct ticket_store *s, const char *key, int64_t now, void **ret_data);
size_t ticket_count(struct ticket_store *s);

/* A token bucket per client address: `rate` per minute, `burst` at most.
 * Thread-safe, bounded (a fixed table; a collision resets the older bucket). */
struct rate_limiter;
int rate_limiter_new(unsigned rate_per_min, unsigned burst, struct rate_limiter **ret);
struct rate_limiter *rate_limiter_free(struct rate_limiter *l);
/* 1 when a request from `key` may go ahead now (and takes a token), 0 when not. */
int rate_limiter_take(struct rate_limiter *l, const char *key, int64_t now_ms);

/* ---- client ID metadata documents ---- */

/* A client_id that is a URL names a client ID metadata document (oauth/cimd.c):
 * fetched (https://; http:// to loopback in --dev only), validated, cached; a public
 * client. 1 for an http(s):// client_id. */
int cimd_client_id_is_url(const char *client_id);
