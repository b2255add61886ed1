/* oauth/introspect.c — RFC 7662 introspection and RFC 7009 revocation of the
 * tokens mcpauth issued. Both require client authentication as at the token
 * endpoint. A token mcpauth did not issue, one that does not verify, has
 * expired or was revoked is simply inactive; revocation answers 200 even for
 * unknown tokens and remembers a revoked jti (durably) until its expiry. */
#include "oauth/oauth_priv.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int oauth_error(struct oauth_reply *out, int status, const char *err, const char *desc)
{
    out->status = status;
    out->body = json_pack("{s:s, s:s}", "error", err, "error_description", desc);
    return -1;
}

/* Parses the form and authenticates the caller; on failure fills out. */
static int prologue(struct oauth *o, const struct policy_snapshot *snap, struct oauth_in *in,
                    struct form *f, const struct policy_client **client, int require_confidential,
                    struct oauth_reply *out)
{
    struct err_detail d = {{0}};
    const char *ct = in->content_type;
    if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
        return oauth_error(out, 400, "invalid_request",
                           "Malformed request: Content-Type must be "
                           "application/x-www-form-urlencoded");
    if (form_parse(in->body, in->len, f, &d) < 0) {
        char msg[600];
        snprintf(msg, sizeof(msg), "Malformed request: %s", d.msg);
        return oauth_error(out, 400, "invalid_request", msg);
    }
    char why[300];
    const char *presented = NULL;
    int basic = 0;
    enum policy_reason r = client_authenticate(o, snap, f, in, client, &presented, &basic, NULL,
                                               why, sizeof(why));
    if (r != REASON_NONE) {
        char msg[400];
        if (r == REASON_INVALID_CLIENT)
            snprintf(msg, sizeof(msg), "%s", policy_reason_text(r)); /* as at the token endpoint */
        else
            snprintf(msg, sizeof(msg), "%s: %s", policy_reason_text(r), why);
        oauth_error(out, policy_reason_http(r), policy_reason_oauth(r), msg);
        if (basic && r == REASON_INVALID_CLIENT)
            out->www_authenticate = "Basic realm=\"mcpauth\"";
        return -1;
    }
    if ((*client)->auth == POLICY_AUTH_NONE && require_confidential) {
        /* RFC 7662 §2.1: the endpoint must not be a token-scanning oracle for anyone */
        oauth_error(out, 401, "invalid_client", "Client authentication failed");
        return -1;
    }
    if (!form_get(f, "token") || !*form_get(f, "token"))
        return oauth_error(out, 400, "invalid_request", "Malformed request: token is required");
    return 0;
}

/* Verifies a token mcpauth issued. 0 and the parsed jws when it is one, else -1. */
static int own_token(struct oauth *o, const struct policy_snapshot *snap, const char *token,
                     struct jws *jws)
{
    struct err_detail d;
    if (jws_parse(token, strlen(token), jws, &d) < 0)
        return -1;
    struct jose_pubkey *key = NULL;
    const char *iss = json_string_value(json_object_get(jws->payload, "iss"));
    int ok = iss && strcmp(iss, o->issuer) == 0 &&
             (typ_is(jws->typ, TYP_AT) || typ_is(jws->typ, TYP_ID_JAG)) &&
             own_key(snap, jws, &key) == 0 && jws_verify(jws, key) == 0;
    jose_pubkey_free(key);
    if (!ok) {
        jws_done(jws);
        return -1;
    }
    return 0;
}

void oauth_introspect(struct oauth *o, struct oauth_in *in, struct oauth_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    struct form f;
    const struct policy_client *client = NULL;
    if (prologue(o, snap, in, &f, &client, 1, out) < 0)
        goto done;
    out->status = 200;
    struct jws jws;
    if (own_token(o, snap, form_get(&f, "token"), &jws) < 0) {
        out->body = json_pack("{s:b}", "active", 0);
        goto done;
    }
    const json_t *p = jws.payload;
    const char *jti = json_string_value(json_object_get(p, "jti"));
    json_int_t exp = json_integer_value(json_object_get(p, "exp"));
    int64_t now = oauth_now();
    if (!jti || exp <= now || jti_set_has(o->revoked, jti, now)) {
        out->body = json_pack("{s:b}", "active", 0);
    } else {
        out->body = json_deep_copy(p);
        json_object_set_new(out->body, "active", json_true());
        json_object_set_new(out->body, "token_type",
                            json_string(typ_is(jws.typ, TYP_AT) ? "Bearer" : "N_A"));
    }
    jws_done(&jws);
done:
    policy_snapshot_unref(snap);
}

void oauth_revoke(struct oauth *o, struct oauth_in *in, struct oauth_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    struct form f;
    const struct policy_client *client = NULL;
    if (prologue(o, snap, in, &f, &client, 0, out) < 0)
        goto done;
    const char *hint = form_get(&f, "token_type_hint");
    if (hint && strcmp(hint, "access_token") && strcmp(hint, "refresh_token")) {
        oauth_error(out, 400, "unsupported_token_type", "token_type_hint is not supported");
        goto done;
    }
    struct jws jws;
    if (own_token(o, snap, form_get(&f, "token"), &jws) < 0) {
        out->status = 200; /* RFC 7009 §2.2: invalid tokens are not an error */
        out->body = json_object();
        goto done;
    }
    const json_t *p = jws.payload;
    const char *cid = json_string_value(json_object_get(p, "client_id"));
    const char *jti = json_string_value(json_object_get(p, "jti"));
    json_int_t exp = json_integer_value(json_object_get(p, "exp"));
    if (!cid || strcmp(cid, client->id) != 0) {
        oauth_error(out, 400, "unauthorized_client",
                    "the token was not issued to this client (RFC 7009 §2.1)");
    } else if (jti && exp > oauth_now()) {
        int r = o->cfg.store ? store_revoked_add(o->cfg.store, jti, exp) : 0;
        if (r < 0) {
            oauth_error(out, 503, "temporarily_unavailable",
                        "the revocation could not be stored; try again");
        } else {
            jti_set_add(o->revoked, jti, exp, oauth_now());
            out->status = 200;
            out->body = json_object();
        }
    } else {
        out->status = 200;
        out->body = json_object();
    }
    jws_done(&jws);
done:
    policy_snapshot_unref(snap);
}
