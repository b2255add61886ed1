/* oauth/client_auth.c — who is calling: client_secret_basic, client_secret_post,
 * private_key_jwt (RFC 7523 §2.2, aud = the issuer) or none for public clients.
 * Exactly one method per request (RFC 6749 §2.3); a secret-based client may
 * present its secret either way; failures are indistinguishable to the caller
 * ("Client authentication failed") and precise in the audit event. */
#include "oauth/oauth_priv.h"
#include "core/b64.h"
#include "jose/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CRED 512

static enum policy_reason fail(char *why, size_t n, enum policy_reason r, const char *msg)
{
    snprintf(why, n, "%s", msg);
    return r;
}

/* Decodes "Basic base64(urlencode(id):urlencode(secret))" (RFC 6749 §2.3.1). */
static int parse_basic(const char *h, char *id, char *secret, char *raw_secret)
{
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ')
        n--;
    unsigned char raw[MAX_CRED * 3 + 4];
    size_t len = 0;
    if (n == 0 || n > sizeof(raw) / 3 * 4 - 4 || b64std_decode(h, n, raw, &len) < 0)
        return -1;
    unsigned char *colon = memchr(raw, ':', len);
    if (!colon)
        return -1;
    size_t il = (size_t)(colon - raw), sl = len - il - 1;
    if (il >= MAX_CRED || sl >= MAX_CRED)
        return -1;
    long a = form_unescape((const char *)raw, il, id, 1);
    long b = form_unescape((const char *)colon + 1, sl, secret, 1);
    memcpy(raw_secret, colon + 1, sl); /* some clients (the MCP SDK) do not form-encode */
    raw_secret[sl] = '\0';
    crypto_wipe(raw, sizeof(raw));
    if (b < 0) /* not form-encoded after all: the secret as sent */
        memcpy(secret, raw_secret, sl + 1);
    return a > 0 ? 0 : -1;
}

static enum policy_reason verify_client_assertion(struct oauth *o,
                                                  const struct policy_snapshot *snap,
                                                  const struct policy_client *c,
                                                  const char *assertion, struct replay_note *rn,
                                                  char *why, size_t n)
{
    struct jws jws;
    struct err_detail d = {{0}};
    enum policy_reason bad = REASON_INVALID_CLIENT;
    if (jws_parse(assertion, strlen(assertion), &jws, &d) < 0) {
        snprintf(why, n, "client assertion: %s", d.msg);
        return bad;
    }
    enum policy_reason r = bad;
    struct jose_pubkey *key = NULL;
    json_t *jwks = NULL;
    const json_t *p = jws.payload;
    const char *iss = json_string_value(json_object_get(p, "iss"));
    const char *sub = json_string_value(json_object_get(p, "sub"));
    const char *jti = json_string_value(json_object_get(p, "jti"));
    const json_t *exp = json_object_get(p, "exp");
    int64_t now = oauth_now();
    if (!iss || !sub || strcmp(iss, c->id) || strcmp(sub, c->id)) {
        snprintf(why, n, "client assertion: iss and sub must be the client id");
        goto out;
    }
    const json_t *aud = json_object_get(p, "aud");
    /* rfc7523bis: the issuer identifier alone (no token endpoint URL: audience confusion) */
    if (!aud_matches(aud, o->issuer, 1)) {
        snprintf(why, n, "client assertion: aud must be the issuer %s", o->issuer);
        goto out;
    }
    if (!json_is_integer(exp) || json_integer_value(exp) <= now - CLOCK_SKEW) {
        snprintf(why, n, "client assertion: %s", json_is_integer(exp) ? "expired" : "exp missing");
        goto out;
    }
    if (json_integer_value(exp) > now + ASSERTION_MAX_LIFETIME) {
        snprintf(why, n, "client assertion: exp is more than an hour away");
        goto out;
    }
    if (!jti || !*jti) {
        snprintf(why, n, "client assertion: jti missing");
        goto out;
    }
    if (c->jwks) {
        if (jose_jwks_select(c->jwks, &jws, &key, &d) < 0) {
            snprintf(why, n, "client assertion: %s", d.msg[0] ? d.msg : "no key of the client fits");
            goto out;
        }
    } else if (c->jwks_uri) {
        if (jwks_cache_get(o->jwks, c->jwks_uri, jws.kid, &jwks, &d) < 0 ||
            jose_jwks_select(jwks, &jws, &key, &d) < 0) {
            snprintf(why, n, "client assertion: %s", d.msg[0] ? d.msg : "no key of the client fits");
            goto out;
        }
    } else {
        snprintf(why, n, "client assertion: the client has no keys");
        goto out;
    }
    if (jws_verify(&jws, key) < 0) {
        snprintf(why, n, "client assertion: signature invalid");
        goto out;
    }
    char scoped[700];
    snprintf(scoped, sizeof(scoped), "client-assertion\n%s\n%s", c->id, jti);
    int rr = replay_use(o, rn, scoped, json_integer_value(exp) + CLOCK_SKEW);
    if (rr == ERR_EXISTS) {
        snprintf(why, n, "client assertion: jti has been used before");
        goto out;
    }
    if (rr < 0) {
        snprintf(why, n, "client assertion: replay store full");
        goto out;
    }
    r = REASON_NONE;
out:
    jose_pubkey_free(key);
    json_decref(jwks);
    jws_done(&jws);
    return r;
}

enum policy_reason client_authenticate(struct oauth *o, const struct policy_snapshot *snap,
                                       const struct form *f, const struct oauth_in *in,
                                       const struct policy_client **ret, const char **ret_presented,
                                       int *ret_basic, struct replay_note *rn, char *why,
                                       size_t why_len)
{
    static _Thread_local char basic_id[MAX_CRED];
    char basic_secret[MAX_CRED], raw_secret[MAX_CRED];
    raw_secret[0] = '\0';
    const char *form_id = form_get(f, "client_id");
    const char *form_secret = form_get(f, "client_secret");
    const char *assertion = form_get(f, "client_assertion");
    const char *assertion_type = form_get(f, "client_assertion_type");
    int basic = in->authorization && strncasecmp(in->authorization, "Basic ", 6) == 0;
    *ret_basic = basic;
    *ret_presented = form_id;
    int methods = basic + (form_secret != NULL) + (assertion != NULL);
    if (methods > 1)
        return fail(why, why_len, REASON_INVALID_REQUEST,
                    "more than one client authentication method");
    if (in->authorization && !basic && strncasecmp(in->authorization, "Bearer ", 7) != 0)
        return fail(why, why_len, REASON_INVALID_CLIENT, "unsupported Authorization scheme");

    const char *id = form_id, *secret = form_secret;
    if (basic) {
        if (parse_basic(in->authorization + 6, basic_id, basic_secret, raw_secret) < 0)
            return fail(why, why_len, REASON_INVALID_CLIENT, "malformed Basic credentials");
        if (form_id && strcmp(form_id, basic_id) != 0) {
            crypto_wipe(basic_secret, sizeof(basic_secret));
            return fail(why, why_len, REASON_INVALID_REQUEST,
                        "client_id differs from the Basic credentials");
        }
        id = basic_id;
        secret = basic_secret;
        *ret_presented = basic_id;
    }
    if (assertion && !id) {
        /* private_key_jwt without client_id: the assertion's iss names the client */
        struct jws jws;
        struct err_detail d;
        if (jws_parse(assertion, strlen(assertion), &jws, &d) == 0) {
            const char *iss = json_string_value(json_object_get(jws.payload, "iss"));
            if (iss && strlen(iss) < sizeof(basic_id)) {
                strcpy(basic_id, iss);
                id = basic_id;
                *ret_presented = basic_id;
            }
            jws_done(&jws);
        }
    }
    enum policy_reason r = REASON_INVALID_CLIENT;
    if (!id) {
        fail(why, why_len, r, "no client credentials");
        goto out;
    }
    const struct policy_client *c = policy_client_by_id(snap, id);
    if (!c) {
        fail(why, why_len, r, "unknown client");
        goto out;
    }
    switch (c->auth) {
    case POLICY_AUTH_SECRET_BASIC:
    case POLICY_AUTH_SECRET_POST:
        /* the registered method only: a secret sent another way is refused (as Okta's
         * token_endpoint_auth_method does) */
        if (secret && basic != (c->auth == POLICY_AUTH_SECRET_BASIC)) {
            fail(why, why_len, r,
                 c->auth == POLICY_AUTH_SECRET_BASIC
                     ? "the client is registered for client_secret_basic, not client_secret_post"
                     : "the client is registered for client_secret_post, not client_secret_basic");
            goto out;
        }
        if (!secret) {
            fail(why, why_len, r, assertion ? "the client authenticates with a secret, not a JWT"
                                            : "client secret missing");
            goto out;
        }
        /* RFC 6749 §2.3.1 form-encodes Basic credentials; clients that do not are common,
         * so a secret with '%' or '+' is also tried as sent */
        if (!c->secret_hash ||
            (secret_cache_verify(o->secrets, c->id, c->secret_hash, secret) != 0 &&
             !(basic && strcmp(raw_secret, secret) != 0 &&
               secret_cache_verify(o->secrets, c->id, c->secret_hash, raw_secret) == 0))) {
            fail(why, why_len, r, "client secret does not match");
            goto out;
        }
        break;
    case POLICY_AUTH_PRIVATE_KEY_JWT:
        if (!assertion) {
            fail(why, why_len, r, "the client authenticates with private_key_jwt");
            goto out;
        }
        if (!assertion_type || strcmp(assertion_type, CLIENT_ASSERTION_TYPE) != 0) {
            fail(why, why_len, REASON_INVALID_REQUEST,
                 "client_assertion_type must be " CLIENT_ASSERTION_TYPE);
            r = REASON_INVALID_REQUEST;
            goto out;
        }
        if (verify_client_assertion(o, snap, c, assertion, rn, why, why_len) != REASON_NONE)
            goto out;
        break;
    case POLICY_AUTH_NONE:
        if (secret || assertion) {
            fail(why, why_len, r, "a public client presents no credentials");
            goto out;
        }
        break;
    }
    *ret = c;
    r = REASON_NONE;
out:
    crypto_wipe(basic_secret, sizeof(basic_secret));
    crypto_wipe(raw_secret, sizeof(raw_secret));
    return r;
}
