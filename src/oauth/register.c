/* oauth/register.c — POST /oauth/register, RFC 7591 dynamic client
 * registration for the authorization-code clients of MCP.
 *
 * The body is untrusted JSON of at most REGISTER_BODY_MAX bytes; what it may
 * register is narrow: redirect URIs that are https:// or http:// to a loopback
 * host, the authorization_code grant (refresh_token is accepted and recorded,
 * and no refresh token is issued), token_endpoint_auth_method none (a public
 * client) or client_secret_basic/post (a confidential client, whose secret is
 * generated here and shown once). Metadata we do not use is ignored, as RFC 7591
 * §2 asks. The client is created through the admin layer (an admin.change by
 * the actor "registration"), and every attempt, success or not, is one
 * client.register event. A token bucket per client IP bounds the rate.
 *
 * A registered client can do nothing until an administrator connects it to a
 * system with an access policy: default deny holds for registered clients too. */
#include "oauth/oauth_priv.h"
#include "core/b64.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_REDIRECT_URIS 20

static int in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return 1;
    return 0;
}

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

static int reg_fail(const char **ret_error, const char *error, char *why, size_t n,
                    const char *msg, const char *arg)
{
    *ret_error = error;
    snprintf(why, n, msg, arg ? arg : "");
    return ERR_INVAL;
}

int register_validate(const char *body, size_t len, json_t **ret_client, json_t **ret_meta,
                      const char **ret_error, char *why, size_t n)
{
    static const char *const methods[] = {"none", "client_secret_basic", "client_secret_post",
                                          NULL};
    static const char *const grants[] = {"authorization_code", "refresh_token", NULL};
    const char *meta_err = "invalid_client_metadata";
    if (len > REGISTER_BODY_MAX)
        return reg_fail(ret_error, meta_err, why, n, "the metadata is larger than 16 KiB%s", NULL);
    json_error_t je;
    json_t *in = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
    if (!in || !json_is_object(in)) {
        json_decref(in);
        return reg_fail(ret_error, meta_err, why, n, "the body must be a JSON object%s", NULL);
    }
    int r = ERR_INVAL;
    json_t *client = json_object(), *meta = json_object();
    json_t *uris = json_array(), *gts = json_array();
    if (!client || !meta || !uris || !gts) {
        r = ERR_NOMEM;
        goto out;
    }

    const json_t *v = json_object_get(in, "token_endpoint_auth_method");
    const char *method = "client_secret_basic"; /* RFC 7591 §2's default */
    if (v && !json_is_null(v)) {
        method = json_string_value(v);
        if (!method || !in_list(method, methods)) {
            reg_fail(ret_error, meta_err, why, n,
                     "token_endpoint_auth_method must be none, client_secret_basic or "
                     "client_secret_post%s",
                     NULL);
            goto out;
        }
    }

    v = json_object_get(in, "grant_types");
    if (v && !json_is_null(v)) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 8) {
            reg_fail(ret_error, meta_err, why, n, "grant_types must be a non-empty list%s", NULL);
            goto out;
        }
        size_t i;
        const json_t *g;
        json_array_foreach(v, i, g)
        {
            const char *s = json_string_value(g);
            if (!s || !in_list(s, grants)) {
                reg_fail(ret_error, meta_err, why, n,
                         "grant_types: %.100s is not supported here (authorization_code, "
                         "refresh_token)",
                         s ? s : "a non-string");
                goto out;
            }
            int dup = 0;
            size_t j;
            const json_t *o;
            json_array_foreach(gts, j, o) dup |= strcmp(json_string_value(o), s) == 0;
            if (!dup)
                json_array_append_new(gts, json_string(s));
        }
    } else {
        json_array_append_new(gts, json_string("authorization_code"));
    }
    int has_code = 0;
    size_t gi;
    const json_t *g;
    json_array_foreach(gts, gi, g) has_code |= strcmp(json_string_value(g), "authorization_code") == 0;
    if (!has_code) {
        reg_fail(ret_error, meta_err, why, n, "grant_types must include authorization_code%s",
                 NULL);
        goto out;
    }

    v = json_object_get(in, "response_types");
    if (v && !json_is_null(v)) {
        size_t i;
        const json_t *t;
        int bad = !json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > 8;
        json_array_foreach(v, i, t) bad |= !json_is_string(t) || strcmp(json_string_value(t), "code");
        if (bad) {
            reg_fail(ret_error, meta_err, why, n, "response_types must be [\"code\"]%s", NULL);
            goto out;
        }
    }

    v = json_object_get(in, "redirect_uris");
    if (!json_is_array(v) || json_array_size(v) == 0) {
        reg_fail(ret_error, "invalid_redirect_uri", why, n,
                 "redirect_uris is required for the authorization_code grant%s", NULL);
        goto out;
    }
    if (json_array_size(v) > MAX_REDIRECT_URIS) {
        reg_fail(ret_error, "invalid_redirect_uri", why, n, "at most 20 redirect_uris%s", NULL);
        goto out;
    }
    size_t i;
    const json_t *u;
    json_array_foreach(v, i, u)
    {
        const char *s = json_string_value(u);
        if (!s || !redirect_uri_allowed(s)) {
            reg_fail(ret_error, "invalid_redirect_uri", why, n,
                     "redirect_uris: %.200s is not allowed (https://, or http:// to 127.0.0.1, "
                     "[::1] or localhost; no fragment)",
                     s ? s : "a non-string");
            goto out;
        }
        int dup = 0;
        size_t j;
        const json_t *o;
        json_array_foreach(uris, j, o) dup |= strcmp(json_string_value(o), s) == 0;
        if (!dup)
            json_array_append_new(uris, json_string(s));
    }

    v = json_object_get(in, "client_name");
    const char *name = NULL;
    if (v && !json_is_null(v)) {
        name = json_string_value(v);
        if (!name || !*name || strlen(name) > 200 || !printable(name)) {
            reg_fail(ret_error, meta_err, why, n,
                     "client_name must be a string of 1 to 200 printable bytes%s", NULL);
            goto out;
        }
    }

    json_object_set_new(client, "auth", json_string(method));
    json_object_set_new(client, "redirect_uris", json_deep_copy(uris));
    json_object_set_new(client, "grant_types", json_deep_copy(gts));
    json_object_set_new(client, "description",
                        json_string("Registered by RFC 7591 dynamic client registration"));
    if (name)
        json_object_set_new(client, "name", json_string(name));
    json_object_set_new(meta, "redirect_uris", uris);
    json_object_set_new(meta, "grant_types", gts);
    json_object_set_new(meta, "response_types", json_pack("[s]", "code"));
    json_object_set_new(meta, "token_endpoint_auth_method", json_string(method));
    if (name)
        json_object_set_new(meta, "client_name", json_string(name));
    uris = gts = NULL;
    *ret_client = client;
    *ret_meta = meta;
    client = meta = NULL;
    r = 0;
out:
    json_decref(in);
    json_decref(client);
    json_decref(meta);
    json_decref(uris);
    json_decref(gts);
    return r;
}

static json_t *reg_event(struct oauth *o, const struct oauth_front_in *in, int ok,
                         const char *severity, const char *reason, const char *detail,
                         const char *client_id)
{
    json_t *ev = audit_event_new("client.register", ok ? "success" : "failure",
                                 ok ? "info" : severity, o->cfg.node);
    if (!ev)
        return NULL;
    if (in->received_us) {
        char ts[TIME_STR_LEN];
        time_format_us(in->received_us, ts);
        json_object_set_new(ev, "time", json_string(ts));
    }
    if (reason)
        json_object_set_new(ev, "reason", json_string(reason));
    if (detail && *detail)
        json_object_set_new(ev, "status_detail", json_string(detail));
    if (client_id)
        json_object_set_new(ev, "client", json_string(client_id));
    json_object_set_new(ev, "request",
                        json_pack("{s:s?, s:s, s:s?, s:s?}", "id", in->request_id, "endpoint",
                                  "register", "client_ip", in->client_ip, "user_agent",
                                  in->user_agent));
    return ev;
}

static void reg_error(struct oauth *o, const struct oauth_front_in *in,
                      struct oauth_front_reply *out, int status, const char *error,
                      const char *reason, const char *severity, const char *detail)
{
    out->status = status;
    out->body = json_pack("{s:s, s:s}", "error", error, "error_description", detail);
    out->event = reg_event(o, in, 0, severity, reason, detail, NULL);
}

void oauth_register_refused(struct oauth *o, const struct oauth_front_in *in, int status,
                            const char *what, struct oauth_front_reply *out)
{
    memset(out, 0, sizeof(*out));
    reg_error(o, in, out, status, "invalid_client_metadata", "invalid_request", "error", what);
}

static int media_is_json(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = ct ? strcspn(ct, "; ") : 0;
    return n == sizeof(want) - 1 && strncasecmp(ct, want, n) == 0;
}

void oauth_register(struct oauth *o, struct oauth_front_in *in, oauth_create_client_fn create,
                    void *create_arg, struct oauth_front_reply *out)
{
    memset(out, 0, sizeof(*out));
    int64_t now_ms = time_now_us() / 1000;
    if (!rate_limiter_take(o->register_rl, in->client_ip, now_ms)) {
        reg_error(o, in, out, 429, "invalid_request", "rate_limited", "warning",
                  "too many registrations from this address; try again in a minute");
        out->retry_after = "6";
        return;
    }
    if (in->len > REGISTER_BODY_MAX) {
        oauth_register_refused(o, in, 413, "the client metadata is larger than 16 KiB", out);
        return;
    }
    if (!media_is_json(in->content_type)) {
        reg_error(o, in, out, 400, "invalid_client_metadata", "invalid_client_metadata", "error",
                  "Content-Type must be application/json");
        return;
    }
    json_t *client = NULL, *meta = NULL;
    const char *error = "invalid_client_metadata";
    char why[400] = "";
    int r = register_validate(in->body, in->len, &client, &meta, &error, why, sizeof(why));
    if (r < 0) {
        reg_error(o, in, out, r == ERR_NOMEM ? 500 : 400, r == ERR_NOMEM ? "server_error" : error,
                  r == ERR_NOMEM ? "server_error" : error, "error",
                  r == ERR_NOMEM ? "out of memory" : why);
        return;
    }
    /* "dcr-" + 128 random bits: a valid model id (starts alphanumeric; base64url's - and _
     * are allowed after the first character) */
    unsigned char raw[32];
    char id[4 + 23] = "dcr-", secret[44] = "";
    core_random(raw, 16);
    b64url_encode(raw, 16, id + 4);
    const char *method = json_string_value(json_object_get(meta, "token_endpoint_auth_method"));
    int confidential = strcmp(method, "none") != 0;
    if (confidential) {
        core_random(raw, sizeof(raw));
        b64url_encode(raw, sizeof(raw), secret);
        json_object_set_new(client, "secret", json_string(secret));
    }
    crypto_wipe(raw, sizeof(raw));
    json_object_set_new(client, "id", json_string(id));
    if (!json_object_get(client, "name"))
        json_object_set_new(client, "name", json_string(id));
    why[0] = '\0';
    r = create(create_arg, client, why, sizeof(why));
    json_t *sec = json_object_get(client, "secret");
    if (sec) /* the clear secret must not outlive this call in our memory */
        crypto_wipe((char *)json_string_value(sec), strlen(json_string_value(sec)));
    json_decref(client);
    if (r < 0) {
        json_decref(meta);
        int status = r == ERR_INVAL ? 400 : r == ERR_NOMEM ? 500 : 503;
        reg_error(o, in, out, status, status == 400 ? "invalid_client_metadata" : "server_error",
                  status == 400 ? "invalid_client_metadata" : "server_error", "error",
                  why[0] ? why : "the client could not be stored");
        crypto_wipe(secret, sizeof(secret));
        return;
    }
    json_object_set_new(meta, "client_id", json_string(id));
    json_object_set_new(meta, "client_id_issued_at", json_integer(oauth_now()));
    if (confidential) {
        json_object_set_new(meta, "client_secret", json_string(secret));
        json_object_set_new(meta, "client_secret_expires_at", json_integer(0));
    }
    crypto_wipe(secret, sizeof(secret));
    out->status = 201;
    out->body = meta;
    out->client_matched = 1;
    out->event = reg_event(o, in, 1, "info", NULL, NULL, id);
}
