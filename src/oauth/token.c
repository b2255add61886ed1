/* oauth/token.c — POST /oauth/token: steps 1 to 4 here, 5 to 10 in
 * policy_decide, then signing and the one audit event of the request.
 *
 * Invariant: every path through oauth_token() leaves exactly one event in
 * out->event, granted or denied, whatever went wrong; the token itself is
 * only in out->body, which the HTTP layer sends after the event committed. */
#include "oauth/oauth_priv.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct treq {
    struct oauth *o;
    struct oauth_in *in;
    const struct policy_snapshot *snap;
    struct form form;
    const char *grant_type;
    enum policy_grant_type gt;
    const struct policy_client *client;
    const char *presented_client;
    int basic;
    const char *requested_token_type;
    const char *audience, *resource;
    char *scope_copy;
    const char *scopes[DECIDE_MAX_SCOPES];
    size_t n_scopes;
    char *asserted_copy;
    const char *asserted[DECIDE_MAX_SCOPES];
    size_t n_asserted;
    int has_subject;
    struct subject subject;
    struct authz_code *code; /* authorization_code: what the code stands for */
    struct replay_note replay;
    struct decision d;
    enum policy_token_type issued_type;
    /* the issued token's metadata (for the event) */
    char jti[UUID_STR_LEN];
    int64_t iat, exp;
    const char *token_aud;
};

static void deny(struct treq *t, enum policy_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void oauth_deny_v(struct decision *d, enum policy_reason r, const char *fmt, va_list ap)
{
    char what[400];
    vsnprintf(what, sizeof(what), fmt, ap);
    /* the workloads matched so far stay on the decision: the event and trace name them */
    const struct policy_system *sys = d->system;
    const struct policy_access *acc = d->access;
    policy_deny_early(d, r, what);
    d->system = sys;
    d->access = acc;
}

static void deny(struct treq *t, enum policy_reason r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    oauth_deny_v(&t->d, r, fmt, ap);
    va_end(ap);
}

int oauth_split_scopes(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *p = s; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        char *start = p;
        while (*p && *p != ' ') {
            unsigned char c = (unsigned char)*p;
            if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e)
                return -1;
            p++;
        }
        if (*p)
            *p++ = '\0';
        if (*n >= DECIDE_MAX_SCOPES)
            return -2;
        out[(*n)++] = start;
    }
    return 0;
}

static int media_is_form(const char *ct)
{
    if (!ct)
        return 0;
    static const char want[] = "application/x-www-form-urlencoded";
    size_t n = strcspn(ct, "; ");
    return n == sizeof(want) - 1 && strncasecmp(ct, want, n) == 0;
}

/* Steps 1 to 4. Returns 0 to go on to the policy decision. */
static int early_steps(struct treq *t)
{
    struct oauth_in *in = t->in;
    struct err_detail d = {{0}};
    if (!media_is_form(in->content_type)) {
        deny(t, REASON_INVALID_REQUEST, "Content-Type must be application/x-www-form-urlencoded");
        return -1;
    }
    if (form_parse(in->body, in->len, &t->form, &d) < 0) {
        deny(t, REASON_INVALID_REQUEST, "%s", d.msg);
        return -1;
    }
    const struct form *f = &t->form;
    t->grant_type = form_get(f, "grant_type");
    t->resource = form_get(f, "resource");
    t->audience = form_get(f, "audience");
    t->requested_token_type = form_get(f, "requested_token_type");
    if (!t->grant_type || !*t->grant_type) {
        deny(t, REASON_INVALID_REQUEST, "grant_type is required");
        return -1;
    }
    if (strcmp(t->grant_type, GT_TOKEN_EXCHANGE) == 0)
        t->gt = POLICY_GT_TOKEN_EXCHANGE;
    else if (strcmp(t->grant_type, GT_JWT_BEARER) == 0)
        t->gt = POLICY_GT_JWT_BEARER;
    else if (strcmp(t->grant_type, GT_CLIENT_CREDENTIALS) == 0)
        t->gt = POLICY_GT_CLIENT_CREDENTIALS;
    else if (strcmp(t->grant_type, GT_AUTHORIZATION_CODE) == 0)
        t->gt = POLICY_GT_AUTHORIZATION_CODE;
    else {
        deny(t, REASON_UNSUPPORTED_GRANT, "%.200s", t->grant_type);
        return -1;
    }
    const char *scope = form_get(f, "scope");
    if (scope) {
        t->scope_copy = strdup(scope);
        int sr = t->scope_copy ? oauth_split_scopes(t->scope_copy, t->scopes, &t->n_scopes) : -1;
        if (sr < 0) {
            deny(t, REASON_INVALID_REQUEST, sr == -2 ? "scope: at most %d scopes"
                                                     : "scope: not a list of scope tokens%.0d",
                 DECIDE_MAX_SCOPES);
            return -1;
        }
    }
    if (t->gt == POLICY_GT_TOKEN_EXCHANGE) {
        const char *st = form_get(f, "subject_token"), *stt = form_get(f, "subject_token_type");
        if (!st || !*st || !stt) {
            deny(t, REASON_INVALID_REQUEST, "subject_token and subject_token_type are required");
            return -1;
        }
        if (strcmp(stt, TT_ID_TOKEN) != 0) {
            deny(t, REASON_INVALID_REQUEST, "subject_token_type must be %s", TT_ID_TOKEN);
            return -1;
        }
        if (t->requested_token_type && strcmp(t->requested_token_type, TT_ID_JAG) &&
            strcmp(t->requested_token_type, TT_ACCESS_TOKEN)) {
            deny(t, REASON_INVALID_REQUEST, "requested_token_type must be %s or %s", TT_ID_JAG,
                 TT_ACCESS_TOKEN);
            return -1;
        }
        if (form_get(f, "actor_token")) {
            deny(t, REASON_INVALID_REQUEST, "actor_token is not supported");
            return -1;
        }
    } else if (t->gt == POLICY_GT_JWT_BEARER) {
        const char *a = form_get(f, "assertion");
        if (!a || !*a) {
            deny(t, REASON_INVALID_REQUEST, "assertion is required");
            return -1;
        }
    } else if (t->gt == POLICY_GT_AUTHORIZATION_CODE) {
        if (!form_get(f, "code") || !form_get(f, "redirect_uri") ||
            !form_get(f, "code_verifier")) {
            deny(t, REASON_INVALID_REQUEST, "code, redirect_uri and code_verifier are required");
            return -1;
        }
    }

    char why[300] = "";
    /* a client ID metadata document's client is in the snapshot once an access policy
     * names its URL (a public client): no document is needed to redeem its code */
    enum policy_reason cr = client_authenticate(t->o, t->snap, f, in, &t->client,
                                                &t->presented_client, &t->basic, &t->replay, why,
                                                sizeof(why));
    if (cr != REASON_NONE) {
        deny(t, cr, "%s", why);
        return -1;
    }
    /* after client authentication: an unauthenticated caller learns nothing more */
    if (t->resource && (strncmp(t->resource, "https://", 8) && strncmp(t->resource, "http://", 7))) {
        deny(t, REASON_UNKNOWN_SYSTEM, "resource %.200s is not an absolute URI (RFC 8707)",
             t->resource);
        return -1;
    }
    if (!(t->client->grant_types & t->gt)) {
        deny(t, REASON_UNAUTHORIZED_CLIENT, "%s", t->grant_type);
        return -1;
    }
    if (t->gt == POLICY_GT_TOKEN_EXCHANGE) {
        t->has_subject = 1;
        if (subject_verify_id_token(t->o, t->snap, form_get(f, "subject_token"), &t->subject, why,
                                    sizeof(why)) < 0) {
            deny(t, REASON_INVALID_SUBJECT, "%s", why);
            return -1;
        }
    } else if (t->gt == POLICY_GT_AUTHORIZATION_CODE) {
        enum policy_reason rr =
            authz_code_redeem(t->o, form_get(f, "code"), t->client->id, form_get(f, "redirect_uri"),
                              form_get(f, "code_verifier"), t->resource, &t->code, why,
                              sizeof(why));
        if (rr != REASON_NONE) {
            deny(t, rr, "%s", why);
            return -1;
        }
        /* the identity and the scopes decided at sign-in; decided again below, so a policy
         * change between the two takes effect */
        t->subject.user = strdup(t->code->user);
        t->subject.issuer = t->code->idp_issuer ? strdup(t->code->idp_issuer) : NULL;
        for (size_t i = 0; i < t->code->n_groups; i++)
            if ((t->subject.groups[t->subject.n_groups] = strdup(t->code->groups[i])))
                t->subject.n_groups++;
        if (!t->resource)
            t->resource = t->code->resource;
        /* RFC 6749 §4.1.3 has no scope: the code carries what was granted */
        free(t->scope_copy);
        t->n_scopes = 0;
        t->scope_copy = strdup(t->code->scope);
        if (!t->subject.user || !t->scope_copy ||
            oauth_split_scopes(t->scope_copy, t->scopes, &t->n_scopes) < 0) {
            deny(t, REASON_INVALID_REQUEST, "out of memory");
            return -1;
        }
    } else if (t->gt == POLICY_GT_JWT_BEARER) {
        t->has_subject = 1;
        if (subject_verify_assertion(t->o, t->snap, form_get(f, "assertion"), t->client,
                                     &t->replay, &t->subject, why, sizeof(why)) < 0) {
            deny(t, REASON_INVALID_SUBJECT, "%s", why);
            return -1;
        }
        if (t->resource && t->subject.resource && strcmp(t->resource, t->subject.resource)) {
            deny(t, REASON_INVALID_SUBJECT, "resource %s is not the assertion's resource",
                 t->resource);
            return -1;
        }
        if (!t->resource)
            t->resource = t->subject.resource;
        if (t->subject.scope) {
            t->asserted_copy = strdup(t->subject.scope);
            if (!t->asserted_copy ||
                oauth_split_scopes(t->asserted_copy, t->asserted, &t->n_asserted) < 0) {
                deny(t, REASON_INVALID_SUBJECT, "scope claim is not a list of scope tokens");
                return -1;
            }
        }
    }
    return 0;
}

/* Steps 5 to 10, plus the token type the grant may issue. */
static void decide(struct treq *t)
{
    struct decide_request r = {
        .client = t->client,
        .grant_type = t->gt,
        .resource = t->resource,
        .scopes = t->scopes,
        .n_scopes = t->n_scopes,
        .issuer = t->o->issuer,
    };
    if (t->gt == POLICY_GT_TOKEN_EXCHANGE || t->gt == POLICY_GT_AUTHORIZATION_CODE) {
        r.audience = t->gt == POLICY_GT_TOKEN_EXCHANGE ? t->audience : NULL;
        r.user = t->subject.user;
        r.groups = (const char *const *)t->subject.groups;
        r.n_groups = t->subject.n_groups;
    } else if (t->gt == POLICY_GT_JWT_BEARER) {
        r.audience = t->o->issuer;
        r.user = t->subject.user;
        if (t->subject.scope) {
            r.asserted_scopes = t->asserted;
            r.n_asserted_scopes = t->n_asserted;
        }
    } else {
        r.audience = t->audience;
    }
    policy_decide(t->snap, &r, &t->d);
    if (t->d.reason != REASON_NONE)
        return;
    const struct policy_system *sys = t->d.system;
    int own = same_audience(sys->audience, t->o->issuer);
    if (t->gt == POLICY_GT_TOKEN_EXCHANGE) {
        const char *rt = t->requested_token_type;
        t->issued_type = rt ? (strcmp(rt, TT_ACCESS_TOKEN) == 0 ? POLICY_TOKEN_ACCESS
                                                                : POLICY_TOKEN_ID_JAG)
                            : sys->token_type;
    } else {
        t->issued_type = POLICY_TOKEN_ACCESS;
    }
    if (t->issued_type == POLICY_TOKEN_ACCESS && !own)
        deny(t, REASON_UNKNOWN_SYSTEM,
             "access tokens are issued only for systems whose audience is this issuer (%s); "
             "system %s answers to %s",
             t->o->issuer, sys->id, sys->audience);
}

static char *sign_token(struct treq *t)
{
    const struct policy_system *sys = t->d.system;
    char scope[1024];
    decision_granted_scopes(&t->d, scope, sizeof(scope));
    uuid7_new(t->jti);
    t->iat = oauth_now();
    t->exp = t->iat + t->d.lifetime;
    json_t *h, *p;
    if (t->issued_type == POLICY_TOKEN_ID_JAG) {
        t->token_aud = sys->audience;
        h = json_pack("{s:s}", "typ", TYP_ID_JAG);
        p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", t->o->issuer, "sub",
                      t->subject.user, "aud", sys->audience, "client_id",
                      t->d.access->client_id_at_system, "jti", t->jti, "iat", (json_int_t)t->iat,
                      "exp", (json_int_t)t->exp);
        if (p && t->resource)
            json_object_set_new(p, "resource", json_string(t->resource));
    } else {
        /* RFC 9068: aud is the resource; without one, the system's first target URL */
        t->token_aud = t->resource ? t->resource
                       : sys->n_resource_urls ? sys->resource_urls[0]
                                              : sys->audience;
        const char *sub = t->gt == POLICY_GT_CLIENT_CREDENTIALS ? t->client->id : t->subject.user;
        h = json_pack("{s:s}", "typ", TYP_AT);
        p = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "iss", t->o->issuer, "sub", sub,
                      "aud", t->token_aud, "client_id", t->client->id, "jti", t->jti, "iat",
                      (json_int_t)t->iat, "exp", (json_int_t)t->exp);
    }
    if (p)
        json_object_set_new(p, "scope", json_string(scope));
    char *tok = NULL;
    if (!h || !p || jws_sign(t->d.key->key, h, p, &tok) < 0)
        tok = NULL;
    json_decref(h);
    json_decref(p);
    return tok;
}

json_t *oauth_scopes_json(const struct decision *d)
{
    json_t *a = json_array();
    for (size_t i = 0; i < d->n_scopes; i++) {
        const struct decide_scope *s = &d->scopes[i];
        json_t *o = json_pack("{s:s, s:s}", "name", s->name, "outcome",
                              s->granted ? "granted" : "denied");
        if (o && !s->granted)
            json_object_set_new(o, "reason", json_string(policy_reason_code(s->reason)));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *build_event(struct treq *t, int granted)
{
    const char *sev = granted ? "info" : policy_reason_severity(t->d.reason);
    json_t *ev = audit_event_new("token.request", granted ? "granted" : "denied", sev,
                                 t->o->cfg.node);
    if (!ev)
        return NULL;
    if (t->in->received_us) { /* spec: the time the request was received */
        char ts[TIME_STR_LEN];
        time_format_us(t->in->received_us, ts);
        json_object_set_new(ev, "time", json_string(ts));
    }
    if (!granted)
        json_object_set_new(ev, "reason", json_string(policy_reason_code(t->d.reason)));
    if (t->d.detail[0])
        json_object_set_new(ev, "status_detail", json_string(t->d.detail));
    if (t->subject.user)
        json_object_set_new(ev, "user", json_string(t->subject.user));
    if (((t->gt == POLICY_GT_TOKEN_EXCHANGE && t->has_subject) ||
         t->gt == POLICY_GT_AUTHORIZATION_CODE) &&
        t->subject.user) {
        json_t *g = json_array();
        for (size_t i = 0; i < t->subject.n_groups; i++)
            json_array_append_new(g, json_string(t->subject.groups[i]));
        json_object_set_new(ev, "groups", g);
    }
    const char *client = t->client ? t->client->id : t->presented_client;
    if (client)
        json_object_set_new(ev, "client", json_string(client));
    if (t->d.system)
        json_object_set_new(ev, "system", json_string(t->d.system->id));
    const char *aud = granted ? t->token_aud : t->audience;
    if (aud)
        json_object_set_new(ev, "audience", json_string(aud));
    if (t->d.access)
        json_object_set_new(ev, "access_policy", json_string(t->d.access->id));
    if (t->d.n_scopes || t->n_scopes)
        json_object_set_new(ev, "scopes", oauth_scopes_json(&t->d));
    if (granted) {
        char exp[TIME_STR_LEN];
        time_format_s(t->exp, exp);
        json_object_set_new(
            ev, "token",
            json_pack("{s:s, s:s, s:s, s:s, s:I, s:s}", "id", t->jti, "type",
                      t->issued_type == POLICY_TOKEN_ID_JAG ? "id-jag" : "access_token", "key_id",
                      t->d.key->kid, "alg", jose_alg_name(t->d.alg), "lifetime",
                      (json_int_t)t->d.lifetime, "expires_at", exp));
    }
    const char *rtt = t->requested_token_type;
    json_t *req = json_pack("{s:s?, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "id",
                            t->in->request_id, "endpoint", "token", "grant_type", t->grant_type,
                            "requested_token_type", rtt, "target_url", t->resource, "client_ip",
                            t->in->client_ip, "user_agent", t->in->user_agent,
                            "subject_token_sha256", t->has_subject ? t->subject.sha256 : NULL,
                            "subject_issuer", t->subject.issuer);
    json_object_set_new(ev, "request", req);
    return ev;
}

void oauth_token(struct oauth *o, struct oauth_in *in, struct oauth_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct treq t = {.o = o, .in = in};
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    t.snap = snap;
    char *token = NULL;
    if (early_steps(&t) == 0)
        decide(&t);
    if (t.d.reason == REASON_NONE) {
        token = sign_token(&t);
        if (!token)
            deny(&t, REASON_NO_SIGNING_KEY, "signing with %s failed", jose_alg_name(t.d.alg));
    }
    int granted = t.d.reason == REASON_NONE;
    out->event = build_event(&t, granted);
    /* the trace's client workload: the client authenticated, or at least the id presented
     * names one (a wrong secret still says which workload was tried) */
    out->trace.client_matched =
        t.client != NULL ||
        (t.presented_client && snap && policy_client_by_id(snap, t.presented_client) != NULL);
    if (granted) {
        char scope[1024];
        decision_granted_scopes(&t.d, scope, sizeof(scope));
        if (t.gt == POLICY_GT_TOKEN_EXCHANGE)
            out->body = json_pack(
                "{s:s, s:s, s:s, s:I, s:s}", "access_token", token, "issued_token_type",
                t.issued_type == POLICY_TOKEN_ID_JAG ? TT_ID_JAG : TT_ACCESS_TOKEN, "token_type",
                t.issued_type == POLICY_TOKEN_ID_JAG ? "N_A" : "Bearer", "expires_in",
                (json_int_t)t.d.lifetime, "scope", scope);
        else
            out->body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", token, "token_type",
                                  "Bearer", "expires_in", (json_int_t)t.d.lifetime, "scope", scope);
        out->status = 200;
        __atomic_add_fetch(&o->granted, 1, __ATOMIC_RELAXED);
    } else {
        out->status = policy_reason_http(t.d.reason);
        /* invalid_client says no more than the status text: which of id, secret or method
         * was wrong would tell a caller whether a client exists (the event has it all) */
        out->body = json_pack("{s:s, s:s}", "error", policy_reason_oauth(t.d.reason),
                              "error_description",
                              t.d.reason == REASON_INVALID_CLIENT
                                  ? policy_reason_text(REASON_INVALID_CLIENT)
                                  : t.d.detail);
        if (t.d.reason == REASON_INVALID_CLIENT && t.basic)
            out->www_authenticate = "Basic realm=\"mcpauth\"";
        __atomic_add_fetch(&o->denied, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&o->by_reason[t.d.reason], 1, __ATOMIC_RELAXED);
    }
    if (token) {
        crypto_wipe(token, strlen(token));
        free(token);
    }
    for (int k = 0; k < 2; k++) { /* used ids go with the event, granted or not */
        out->jti_keys[k] = t.replay.keys[k];
        out->jti_exps[k] = t.replay.exps[k];
    }
    subject_done(&t.subject);
    authz_code_free(t.code);
    free(t.scope_copy);
    free(t.asserted_copy);
    policy_snapshot_unref(snap);
}

void oauth_token_refused(struct oauth *o, const struct oauth_in *in, int status, const char *what,
                         struct oauth_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct treq t = {.o = o, .in = (struct oauth_in *)in};
    deny(&t, REASON_INVALID_REQUEST, "%s", what);
    out->event = build_event(&t, 0);
    out->status = status;
    out->body = json_pack("{s:s, s:s}", "error", "invalid_request", "error_description", t.d.detail);
    __atomic_add_fetch(&o->denied, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&o->by_reason[REASON_INVALID_REQUEST], 1, __ATOMIC_RELAXED);
}

void oauth_reply_done(struct oauth_reply *r)
{
    json_decref(r->body);
    json_decref(r->event);
    free(r->jti_keys[0]);
    free(r->jti_keys[1]);
    memset(r, 0, sizeof(*r));
}

void oauth_reply_unavailable(struct oauth_reply *r)
{
    json_decref(r->body);
    r->status = 503;
    r->www_authenticate = NULL;
    r->body = json_pack("{s:s, s:s}", "error", "temporarily_unavailable", "error_description",
                        "Audit log unavailable: the request could not be recorded, so no token "
                        "was issued");
}

void oauth_note_unavailable(struct oauth *o, int was_granted)
{
    __atomic_sub_fetch(was_granted ? &o->granted : &o->denied, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&o->denied, 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&o->by_reason[REASON_UNAVAILABLE], 1, __ATOMIC_RELAXED);
}

void oauth_stats(struct oauth *o, struct oauth_stats *ret)
{
    ret->granted = __atomic_load_n(&o->granted, __ATOMIC_RELAXED);
    ret->denied = __atomic_load_n(&o->denied, __ATOMIC_RELAXED);
    for (int i = 0; i < REASON_COUNT_; i++)
        ret->by_reason[i] = __atomic_load_n(&o->by_reason[i], __ATOMIC_RELAXED);
}
