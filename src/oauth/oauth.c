/* oauth/oauth.c — lifecycle of the OAuth module, RFC 8414 metadata,
 * `explain` (steps 3 to 10 on a hypothetical request, recording nothing) and
 * the development IdP's ID tokens. */
#include "oauth/oauth_priv.h"
#include "core/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load_revoked(const char *jti, int64_t exp, void *arg)
{
    return jti_set_add(arg, jti, exp, oauth_now()) == ERR_IO ? ERR_IO : 0;
}

int oauth_new(const struct oauth_config *cfg, struct oauth **ret, struct err_detail *d)
{
    struct oauth *o = calloc(1, sizeof(*o));
    if (!o)
        return ERR_NOMEM;
    o->cfg = *cfg;
    o->issuer = strdup(cfg->issuer);
    o->dev_idp_issuer = cfg->dev_idp_issuer ? strdup(cfg->dev_idp_issuer) : NULL;
    int r = o->issuer ? 0 : ERR_NOMEM;
    if (r == 0)
        r = secret_cache_new(4096, &o->secrets);
    if (r == 0)
        r = jti_set_new(2000000, &o->replay);
    if (r == 0)
        r = jti_set_new(2000000, &o->revoked);
    if (r == 0)
        r = jwks_cache_new(&o->jwks);
    if (r == 0)
        r = ticket_store_new(AUTHZ_CODES_MAX, authz_code_free, &o->codes);
    if (r == 0)
        r = ticket_store_new(AUTHZ_PENDING_MAX, authz_pending_free, &o->pending);
    if (r == 0)
        r = rate_limiter_new(REGISTER_RATE_PER_MIN, REGISTER_BURST, &o->register_rl);
    if (r == 0)
        r = cimd_cache_new(&o->cimd);
    if (r == 0 && cfg->store) {
        r = store_revoked_scan(cfg->store, oauth_now(), load_revoked, o->revoked);
        if (r == 0)
            r = store_jti_scan(cfg->store, oauth_now(), load_revoked, o->replay);
        if (r < 0)
            err_set(d, r, "loading revoked tokens and used assertion ids failed");
    }
    if (r < 0) {
        oauth_free(o);
        return r;
    }
    *ret = o;
    return 0;
}

struct oauth *oauth_free(struct oauth *o)
{
    if (!o)
        return NULL;
    secret_cache_free(o->secrets);
    jti_set_free(o->replay);
    jti_set_free(o->revoked);
    jwks_cache_free(o->jwks);
    ticket_store_free(o->codes);
    ticket_store_free(o->pending);
    rate_limiter_free(o->register_rl);
    cimd_cache_free(o->cimd);
    free(o->issuer);
    free(o->dev_idp_issuer);
    free(o);
    return NULL;
}

json_t *oauth_metadata(struct oauth *o)
{
    static const struct {
        const char *name, *path;
    } endpoints[] = {
        {"token_endpoint", "/oauth/token"},
        {"jwks_uri", "/oauth/jwks"},
        {"authorization_endpoint", "/oauth/authorize"},
        {"introspection_endpoint", "/oauth/introspect"},
        {"revocation_endpoint", "/oauth/revoke"},
        {"registration_endpoint", "/oauth/register"},
    };
    json_t *m = json_pack("{s:s}", "issuer", o->issuer);
    if (!m)
        return NULL;
    for (size_t i = 0; i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        char url[700];
        snprintf(url, sizeof(url), "%s%s", o->issuer, endpoints[i].path);
        json_object_set_new(m, endpoints[i].name, json_string(url));
    }
    json_t *auth = json_pack("[s, s, s, s]", "client_secret_basic", "client_secret_post",
                             "private_key_jwt", "none");
    json_t *algs = json_pack("[s, s, s, s, s]", "ES256", "ES384", "RS256", "PS256", "EdDSA");
    /* as spec/http-api.md lists them; the authorization-code front door is
     * oauth/authorize.c (PKCE S256 only, iss in every authorization response, client ID
     * metadata documents as client_id) */
    json_object_set_new(m, "grant_types_supported",
                        json_pack("[s, s, s, s]", GT_TOKEN_EXCHANGE, GT_JWT_BEARER,
                                  GT_CLIENT_CREDENTIALS, "authorization_code"));
    json_object_set_new(m, "response_types_supported", json_pack("[s]", "code"));
    json_object_set_new(m, "code_challenge_methods_supported", json_pack("[s]", "S256"));
    json_object_set_new(m, "authorization_response_iss_parameter_supported", json_true());
    json_object_set_new(m, "client_id_metadata_document_supported", json_true());
    json_object_set_new(m, "response_modes_supported", json_pack("[s]", "query"));
    json_object_set_new(m, "authorization_grant_profiles_supported",
                        json_pack("[s]", "urn:ietf:params:oauth:grant-profile:id-jag"));
    json_object_set_new(m, "identity_chaining_requested_token_types_supported",
                        json_pack("[s, s]", TT_ID_JAG, TT_ACCESS_TOKEN));
    json_object_set_new(m, "token_endpoint_auth_methods_supported", json_incref(auth));
    json_object_set_new(m, "token_endpoint_auth_signing_alg_values_supported", json_incref(algs));
    json_object_set_new(m, "introspection_endpoint_auth_methods_supported",
                        json_pack("[s, s, s]", "client_secret_basic", "client_secret_post",
                                  "private_key_jwt"));
    json_object_set_new(m, "revocation_endpoint_auth_methods_supported", auth);
    json_object_set_new(m, "id_token_signing_alg_values_supported", algs);
    return m;
}

json_t *oauth_protected_resource(struct oauth *o, const char *system_id)
{
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    const struct policy_system *sys = policy_system_by_id(snap, system_id);
    json_t *m = NULL;
    if (sys) {
        char res[700];
        snprintf(res, sizeof(res), "%s/mcp/%s", o->issuer, sys->id);
        json_t *scopes = json_array();
        for (size_t i = 0; i < sys->n_scopes; i++)
            if (sys->scopes[i].enabled)
                json_array_append_new(scopes, json_string(sys->scopes[i].name));
        m = json_pack("{s:s, s:[s], s:o, s:[s], s:s}", "resource", res, "authorization_servers",
                      sys->audience, "scopes_supported", scopes, "bearer_methods_supported",
                      "header", "resource_name", sys->name);
    }
    policy_snapshot_unref(snap);
    return m;
}

static const char *step_name(int step)
{
    static const char *const names[] = {
        "", "request well formed", "client authenticates", "grant type allowed for the client",
        "subject token valid", "system matched", "active access policy", "system not paused",
        "target URL registered", "scopes", "signing key", "event durable"};
    return step >= 0 && step <= 11 ? names[step] : "";
}

int oauth_explain(struct oauth *o, const json_t *req, json_t **ret, struct err_detail *d)
{
    static const char *const known[] = {"user", "groups", "client", "audience", "resource",
                                        "scope", "grant_type", NULL};
    if (!json_is_object(req))
        return err_set(d, ERR_INVAL, "body: expected an object");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)req, k, v)
    {
        const char *const *p = known;
        while (*p && strcmp(*p, k))
            p++;
        if (!*p)
            return err_set(d, ERR_INVAL, "%s: unknown field", k);
        if (strcmp(k, "groups") && !json_is_string(v) && !json_is_null(v))
            return err_set(d, ERR_INVAL, "%s: expected a string", k);
    }
    const char *client_id = json_string_value(json_object_get(req, "client"));
    if (!client_id)
        return err_set(d, ERR_INVAL, "client: required");
    const json_t *groups = json_object_get(req, "groups");
    if (groups && !json_is_array(groups) && !json_is_null(groups))
        return err_set(d, ERR_INVAL, "groups: expected a list of strings");
    const char *gt_name = json_string_value(json_object_get(req, "grant_type"));
    const char *user = json_string_value(json_object_get(req, "user"));
    enum policy_grant_type gt = user ? POLICY_GT_TOKEN_EXCHANGE : POLICY_GT_CLIENT_CREDENTIALS;
    if (gt_name) {
        if (strcmp(gt_name, GT_TOKEN_EXCHANGE) == 0)
            gt = POLICY_GT_TOKEN_EXCHANGE;
        else if (strcmp(gt_name, GT_JWT_BEARER) == 0)
            gt = POLICY_GT_JWT_BEARER;
        else if (strcmp(gt_name, GT_CLIENT_CREDENTIALS) == 0)
            gt = POLICY_GT_CLIENT_CREDENTIALS;
        else
            return err_set(d, ERR_INVAL, "grant_type: unsupported");
    }
    const char *gnames[DECIDE_MAX_GROUPS];
    size_t ng = 0;
    size_t i;
    json_array_foreach(groups, i, v) if (json_is_string(v) && ng < DECIDE_MAX_GROUPS)
        gnames[ng++] = json_string_value(v);
    char *scope_copy = NULL;
    const char *scopes[DECIDE_MAX_SCOPES];
    size_t ns = 0;
    const char *scope = json_string_value(json_object_get(req, "scope"));
    if (scope) {
        scope_copy = strdup(scope);
        for (char *tok = strtok(scope_copy, " "); tok && ns < DECIDE_MAX_SCOPES;
             tok = strtok(NULL, " "))
            scopes[ns++] = tok;
    }

    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    json_t *steps = json_array();
    struct decision dec;
    memset(&dec, 0, sizeof(dec));
    const struct policy_client *c = policy_client_by_id(snap, client_id);
    int stop_step = 0;
    if (!c) {
        policy_deny_early(&dec, REASON_INVALID_CLIENT, "unknown client");
        stop_step = 2;
    } else if (!(c->grant_types & gt)) {
        policy_deny_early(&dec, REASON_UNAUTHORIZED_CLIENT, gt_name ? gt_name : "");
        stop_step = 3;
    } else {
        struct decide_request r = {
            .client = c,
            .grant_type = gt,
            .audience = gt == POLICY_GT_JWT_BEARER
                            ? o->issuer
                            : json_string_value(json_object_get(req, "audience")),
            .resource = json_string_value(json_object_get(req, "resource")),
            .scopes = scopes,
            .n_scopes = ns,
            .user = user,
            .groups = gnames,
            .n_groups = ng,
            .issuer = o->issuer,
        };
        policy_decide(snap, &r, &dec);
        stop_step = dec.reason == REASON_NONE ? 11 : policy_reason_step(dec.reason);
    }
    for (int s = 3; s <= 10; s++) {
        const char *result = s < stop_step || (s == stop_step && dec.reason == REASON_NONE)
                                 ? "pass"
                             : s == stop_step ? "fail"
                                              : "not reached";
        if (stop_step < 3 && s == 3)
            result = "not reached";
        if (s == 4 && stop_step > 4)
            result = "assumed"; /* a hypothetical request has no token to check */
        json_t *st = json_pack("{s:i, s:s, s:s}", "step", s, "check", step_name(s), "result",
                               result);
        if (s == stop_step && dec.reason != REASON_NONE) {
            json_object_set_new(st, "reason", json_string(policy_reason_code(dec.reason)));
            json_object_set_new(st, "status_detail", json_string(dec.detail));
        }
        json_array_append_new(steps, st);
    }
    json_t *sc = json_array();
    for (size_t j = 0; j < dec.n_scopes; j++) {
        json_t *so = json_pack("{s:s, s:s}", "name", dec.scopes[j].name, "outcome",
                               dec.scopes[j].granted ? "granted" : "denied");
        if (!dec.scopes[j].granted)
            json_object_set_new(so, "reason", json_string(policy_reason_code(dec.scopes[j].reason)));
        json_array_append_new(sc, so);
    }
    json_t *out = json_pack(
        "{s:s, s:o, s:s?, s:s?, s:s?, s:o, s:s?}", "outcome",
        dec.reason == REASON_NONE ? "granted" : "denied", "reason",
        dec.reason == REASON_NONE ? json_null() : json_string(policy_reason_code(dec.reason)),
        "status_detail", dec.detail[0] ? dec.detail : NULL, "system",
        dec.system ? dec.system->id : NULL, "access_policy", dec.access ? dec.access->id : NULL,
        "scopes", sc, "alg", dec.reason == REASON_NONE ? jose_alg_name(dec.alg) : NULL);
    if (out) {
        if (dec.key)
            json_object_set_new(out, "key_id", json_string(dec.key->kid));
        if (dec.reason == REASON_NONE)
            json_object_set_new(out, "lifetime", json_integer(dec.lifetime));
        json_object_set_new(out, "steps", steps);
    } else {
        json_decref(steps);
    }
    free(scope_copy);
    policy_snapshot_unref(snap);
    if (!out)
        return ERR_NOMEM;
    *ret = out;
    return 0;
}

int oauth_dev_id_token(struct oauth *o, const char *user, const json_t *groups, int64_t ttl,
                       char **ret, struct err_detail *d)
{
    if (!o->cfg.dev || !o->cfg.dev_idp_key)
        return err_set(d, ERR_UNSUPPORTED, "the development IdP exists only in --dev mode");
    if (!user || !*user || strlen(user) > 256)
        return err_set(d, ERR_INVAL, "user: required (at most 256 bytes)");
    if (ttl <= 0 || ttl > 86400)
        return err_set(d, ERR_INVAL, "ttl: between 1 second and 24 hours");
    char jti[UUID_STR_LEN];
    uuid7_new(jti);
    int64_t now = oauth_now();
    json_t *h = json_pack("{s:s}", "typ", "JWT");
    json_t *p = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:O?}", "iss", o->dev_idp_issuer, "sub",
                          user, "aud", o->issuer, "jti", jti, "iat", (json_int_t)now, "exp",
                          (json_int_t)(now + ttl), "groups", groups);
    int r = h && p ? jws_sign(o->cfg.dev_idp_key, h, p, ret) : ERR_NOMEM;
    json_decref(h);
    json_decref(p);
    return r;
}
