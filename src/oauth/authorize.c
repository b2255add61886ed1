/* oauth/authorize.c — GET /oauth/authorize, the sign-in leg (the enterprise
 * IdP's GET /oauth/callback, or the --dev sign-in page's POST /oauth/sign-in)
 * and the redemption of the codes they issue (for token.c).
 *
 * Invariants:
 *  - the browser is redirected only to a redirect URI registered for the client
 *    (RFC 6749 §4.1.2.1): before the client and its redirect URI are known good,
 *    every error is an HTML page, never a redirect;
 *  - every authorization response carries `iss` (RFC 9207) and the client's
 *    `state`;
 *  - a code is 256 random bits, lives AUTHZ_CODE_LIFETIME seconds, is bound to
 *    the client, the redirect URI, the PKCE challenge (S256 only) and the resource,
 *    and is taken once;
 *  - every request yields one authorize.request event, and none of the code, our
 *    state at the IdP, a PKCE verifier or the ID token is ever in it. */
#include "oauth/oauth_priv.h"
#include "core/b64.h"
#include "core/timeutil.h"
#include "core/uuid.h"
#include "jose/crypto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A sign-in in progress: what the client asked for, until the IdP (or the dev page)
 * sends the browser back. Keyed by our own `state` at the IdP. */
struct authz_pending {
    char *client_id, *redirect_uri, *state, *challenge, *resource, *scope;
    char *idp_id; /* NULL: the development sign-in page */
    char nonce[44];
    char verifier[44]; /* our PKCE verifier toward the IdP */
};

void authz_pending_free(void *p)
{
    struct authz_pending *a = p;
    if (!a)
        return;
    free(a->client_id);
    free(a->redirect_uri);
    free(a->state);
    free(a->challenge);
    free(a->resource);
    free(a->scope);
    free(a->idp_id);
    crypto_wipe(a, sizeof(*a));
    free(a);
}

void authz_code_free(void *p)
{
    struct authz_code *c = p;
    if (!c)
        return;
    free(c->client_id);
    free(c->redirect_uri);
    free(c->challenge);
    free(c->resource);
    free(c->scope);
    free(c->user);
    free(c->idp_issuer);
    for (size_t i = 0; i < c->n_groups; i++)
        free(c->groups[i]);
    free(c);
}

/* The state of one request at the front door. */
struct areq {
    struct oauth *o;
    const struct oauth_front_in *in;
    const struct policy_snapshot *snap;
    const char *phase; /* "request", "callback", "sign_in" */
    const char *client_id;
    const struct policy_client *client;
    struct policy_client cimd;
    const char *cimd_uris[CIMD_MAX_REDIRECT_URIS];
    json_t *cimd_doc;
    int client_known; /* a client workload of the policy (for the trace) */
    const char *redirect_uri;
    int redirect_ok;
    const char *response_type, *state, *challenge, *method, *resource, *scope;
    const char *sign_in; /* the IdP's issuer, or "development" */
    struct subject subject;
    int has_user;
    char *scope_copy;
    const char *scopes[DECIDE_MAX_SCOPES];
    size_t n_scopes;
    struct decision d;
};

static void deny(struct areq *a, enum policy_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void deny(struct areq *a, enum policy_reason r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    oauth_deny_v(&a->d, r, fmt, ap);
    va_end(ap);
}

static json_t *build_event(struct areq *a, int granted)
{
    const char *sev = granted ? "info" : policy_reason_severity(a->d.reason);
    json_t *ev = audit_event_new("authorize.request", granted ? "granted" : "denied", sev,
                                 a->o->cfg.node);
    if (!ev)
        return NULL;
    if (a->in->received_us) {
        char ts[TIME_STR_LEN];
        time_format_us(a->in->received_us, ts);
        json_object_set_new(ev, "time", json_string(ts));
    }
    if (!granted)
        json_object_set_new(ev, "reason", json_string(policy_reason_code(a->d.reason)));
    if (a->d.detail[0])
        json_object_set_new(ev, "status_detail", json_string(a->d.detail));
    if (a->has_user && a->subject.user) {
        json_object_set_new(ev, "user", json_string(a->subject.user));
        json_t *g = json_array();
        for (size_t i = 0; i < a->subject.n_groups; i++)
            json_array_append_new(g, json_string(a->subject.groups[i]));
        json_object_set_new(ev, "groups", g);
    }
    const char *client = a->client ? a->client->id : a->client_id;
    if (client)
        json_object_set_new(ev, "client", json_string(client));
    if (a->d.system)
        json_object_set_new(ev, "system", json_string(a->d.system->id));
    if (granted && a->d.system && a->resource) /* the aud of the token the code will give */
        json_object_set_new(ev, "audience", json_string(a->resource));
    if (a->d.access)
        json_object_set_new(ev, "access_policy", json_string(a->d.access->id));
    if (a->d.n_scopes)
        json_object_set_new(ev, "scopes", oauth_scopes_json(&a->d));
    json_t *req = json_pack(
        "{s:s?, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "id", a->in->request_id,
        "endpoint", "authorize", "phase", a->phase, "client_ip", a->in->client_ip, "user_agent",
        a->in->user_agent, "redirect_uri", a->redirect_uri, "target_url", a->resource,
        "response_type", a->response_type, "code_challenge_method", a->method, "sign_in",
        a->sign_in);
    if (req && a->scope)
        json_object_set_new(req, "scope", json_string(a->scope));
    json_object_set_new(ev, "request", req);
    return ev;
}

/* ---- HTML ---- */

static int put_html(struct buf *b, const char *s)
{
    for (; s && *s; s++) {
        const char *e = NULL;
        switch (*s) {
        case '&': e = "&amp;"; break;
        case '<': e = "&lt;"; break;
        case '>': e = "&gt;"; break;
        case '"': e = "&quot;"; break;
        case '\'': e = "&#39;"; break;
        default: break;
        }
        int r = e ? buf_puts(b, e) : buf_append(b, s, 1);
        if (r < 0)
            return r;
    }
    return 0;
}

static const char page_head[] =
    "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<meta name=\"referrer\" content=\"no-referrer\"><title>";
static const char page_style[] =
    "</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;"
    "padding:0 1rem;color:#222}code{background:#f3f3f3;padding:0 .2rem}"
    ".dev{background:#b00020;color:#fff;padding:.8rem 1rem;font-weight:bold}"
    "label{display:block;margin:1rem 0 .3rem}input[type=text]{width:100%;padding:.4rem}"
    "button{margin-top:1.2rem;padding:.5rem 1.2rem}</style></head><body>\n";

static char *error_html(const char *title, const char *detail)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, page_head);
    put_html(&b, title);
    buf_puts(&b, page_style);
    buf_puts(&b, "<h1>");
    put_html(&b, title);
    buf_puts(&b, "</h1>\n<p>");
    put_html(&b, detail);
    buf_puts(&b, "</p>\n<p>The application that sent you here is misconfigured; you were not "
                 "sent back to it. Tell its developer, or your administrator, what this page "
                 "says.</p>\n</body></html>\n");
    return buf_take(&b, NULL);
}

/* An error the browser must not be redirected with: an HTML page (400). */
static void error_page(struct areq *a, struct oauth_front_reply *out, enum policy_reason r,
                       const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void error_page(struct areq *a, struct oauth_front_reply *out, enum policy_reason r,
                       const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    deny(a, r, "%s", what);
    out->status = 400;
    out->html = error_html("Authorization request refused", a->d.detail);
    out->event = build_event(a, 0);
}

/* Appends name=value (percent-encoded) to a redirect; `first` tells the separator. */
static void add_param(struct buf *b, int *first, const char *name, const char *value)
{
    if (!value)
        return;
    buf_puts(b, *first ? "" : "&");
    *first = 0;
    buf_puts(b, name);
    buf_puts(b, "=");
    buf_put_urlenc(b, value);
}

/* The authorization error at the authorization endpoint: reasons map to the errors
 * RFC 6749 §4.1.2.1 (and RFC 8707) allow there. */
static const char *authz_error(enum policy_reason r)
{
    switch (r) {
    case REASON_INVALID_SUBJECT:
        return "access_denied";
    case REASON_UNSUPPORTED_GRANT:
        return "unsupported_response_type";
    default:
        return policy_reason_oauth(r);
    }
}

static void finish_redirect(struct areq *a, struct oauth_front_reply *out, const char *code,
                            const char *error)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, a->redirect_uri);
    buf_puts(&b, strchr(a->redirect_uri, '?') ? "&" : "?");
    int first = 1;
    if (code) {
        add_param(&b, &first, "code", code);
    } else {
        add_param(&b, &first, "error", error);
        add_param(&b, &first, "error_description", a->d.detail);
    }
    add_param(&b, &first, "state", a->state);
    add_param(&b, &first, "iss", a->o->issuer);
    out->status = 302;
    out->location = buf_take(&b, NULL);
}

/* An error once the redirect URI is known good: back to the client with it. */
static void redirect_error(struct areq *a, struct oauth_front_reply *out, enum policy_reason r,
                           const char *error, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void redirect_error(struct areq *a, struct oauth_front_reply *out, enum policy_reason r,
                           const char *error, const char *fmt, ...)
{
    if (fmt) {
        char what[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        deny(a, r, "%s", what);
    }
    finish_redirect(a, out, NULL, error ? error : authz_error(a->d.reason));
    out->event = build_event(a, 0);
}

/* The client by id: a policy client, or the document behind a URL client_id (known to
 * the policy when an access policy names the URL, else a stranger the decision will
 * refuse with no_access_policy — after its document was checked). */
static int find_client(struct areq *a, char *why, size_t n)
{
    a->client = policy_client_by_id(a->snap, a->client_id);
    a->client_known = a->client != NULL;
    if (a->client && !a->client->metadata_document)
        return 0;
    if (cimd_client_id_is_url(a->client_id)) {
        if (cimd_client(a->o, a->client_id, &a->cimd, a->cimd_uris, &a->cimd_doc, why, n) < 0) {
            a->client = NULL;
            return -1;
        }
        a->client = &a->cimd;
        return 0;
    }
    snprintf(why, n, "unknown client %.200s", a->client_id);
    return -1;
}

static int redirect_registered(const struct policy_client *c, const char *uri)
{
    for (size_t i = 0; i < c->n_redirect_uris; i++)
        if (redirect_uri_matches(c->redirect_uris[i], uri))
            return 1;
    return 0;
}

static const struct policy_issuer *idp_by_id(const struct policy_snapshot *snap, const char *id)
{
    for (size_t i = 0; i < snap->n_issuers; i++)
        if (snap->issuers[i].authorization_endpoint && strcmp(snap->issuers[i].id, id) == 0)
            return &snap->issuers[i];
    return NULL;
}

/* Steps 5 to 10 for the signed-in user (or, before sign-in, 5 to 8 with no user), plus
 * the rule that codes give access tokens only for systems whose audience is us. */
static void decide(struct areq *a)
{
    struct decide_request r = {
        .client = a->client,
        .grant_type = POLICY_GT_AUTHORIZATION_CODE,
        .resource = a->resource,
        .scopes = a->scopes,
        .n_scopes = a->n_scopes,
        .user = a->has_user ? a->subject.user : NULL,
        .groups = (const char *const *)a->subject.groups,
        .n_groups = a->subject.n_groups,
        .issuer = a->o->issuer,
    };
    policy_decide(a->snap, &r, &a->d);
    if (a->d.system && (a->d.reason == REASON_NONE || policy_reason_step(a->d.reason) >= 9) &&
        !same_audience(a->d.system->audience, a->o->issuer))
        deny(a, REASON_UNKNOWN_SYSTEM,
             "access tokens are issued only for systems whose audience is this issuer (%s); "
             "system %s answers to %s",
             a->o->issuer, a->d.system->id, a->d.system->audience);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* ---- the development sign-in page ---- */

static char *sign_in_html(struct areq *a, const char *ticket)
{
    struct buf b;
    buf_init(&b, 0);
    buf_puts(&b, page_head);
    buf_puts(&b, "Sign in (development)");
    buf_puts(&b, page_style);
    buf_puts(&b, "<div class=\"dev\">DEVELOPMENT ONLY &mdash; mcpauth runs with --dev: anyone "
                 "can sign in here as anyone. Never use this in production.</div>\n"
                 "<h1>Sign in</h1>\n<p>Client <code>");
    put_html(&b, a->client->id);
    buf_puts(&b, "</code> asks for access to <code>");
    put_html(&b, a->resource);
    buf_puts(&b, "</code>");
    if (a->scope) {
        buf_puts(&b, " with scopes <code>");
        put_html(&b, a->scope);
        buf_puts(&b, "</code>");
    }
    buf_puts(&b, ".</p>\n<form method=\"post\" action=\"");
    put_html(&b, a->o->issuer);
    buf_puts(&b, "/oauth/sign-in\">\n<input type=\"hidden\" name=\"ticket\" value=\"");
    put_html(&b, ticket);
    buf_puts(&b, "\">\n<label for=\"user\">User</label>"
                 "<input type=\"text\" id=\"user\" name=\"user\" required autofocus "
                 "placeholder=\"alice@example.com\">\n"
                 "<label for=\"groups\">Groups (comma-separated)</label>"
                 "<input type=\"text\" id=\"groups\" name=\"groups\" placeholder=\"engineering\">\n"
                 "<button type=\"submit\">Sign in</button>\n</form>\n</body></html>\n");
    return buf_take(&b, NULL);
}

/* ---- GET /oauth/authorize ---- */

static void start_sign_in(struct areq *a, struct oauth_front_reply *out, const char *idp_param)
{
    const struct policy_issuer *idp = NULL;
    if (idp_param) {
        idp = idp_by_id(a->snap, idp_param);
        if (!idp) {
            redirect_error(a, out, REASON_INVALID_REQUEST, NULL,
                           "idp %.200s names no trusted issuer with an authorization_endpoint",
                           idp_param);
            return;
        }
    } else {
        for (size_t i = 0; i < a->snap->n_issuers && !idp; i++)
            if (a->snap->issuers[i].authorization_endpoint)
                idp = &a->snap->issuers[i];
    }
    if (!idp && !a->o->cfg.dev) {
        redirect_error(a, out, REASON_INVALID_REQUEST, "server_error",
                       "no sign-in: no trusted issuer has an authorization_endpoint");
        return;
    }
    struct authz_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        redirect_error(a, out, REASON_INVALID_REQUEST, "server_error", "out of memory");
        return;
    }
    p->client_id = strdup(a->client_id);
    p->redirect_uri = strdup(a->redirect_uri);
    p->state = dup_or_null(a->state);
    p->challenge = strdup(a->challenge);
    p->resource = strdup(a->resource);
    p->scope = dup_or_null(a->scope);
    p->idp_id = idp ? strdup(idp->id) : NULL;
    unsigned char raw[32];
    core_random(raw, sizeof(raw));
    b64url_encode(raw, sizeof(raw), p->nonce);
    core_random(raw, sizeof(raw));
    b64url_encode(raw, sizeof(raw), p->verifier);
    crypto_wipe(raw, sizeof(raw));
    char challenge[44];
    crypto_sha256_b64url(p->verifier, strlen(p->verifier), challenge);
    char nonce[44];
    memcpy(nonce, p->nonce, sizeof(nonce));
    if (!p->client_id || !p->redirect_uri || !p->challenge || !p->resource ||
        (a->state && !p->state) || (a->scope && !p->scope) || (idp && !p->idp_id)) {
        authz_pending_free(p);
        redirect_error(a, out, REASON_INVALID_REQUEST, "server_error", "out of memory");
        return;
    }
    int64_t now = oauth_now();
    char key[44];
    if (ticket_put(a->o->pending, p, now + AUTHZ_PENDING_LIFETIME, now, key) < 0) {
        redirect_error(a, out, REASON_INVALID_REQUEST, "temporarily_unavailable",
                       "too many sign-ins in progress; try again later");
        return;
    }
    if (!idp) {
        a->sign_in = "development";
        out->status = 200;
        out->html = sign_in_html(a, key);
    } else {
        a->sign_in = idp->issuer;
        struct buf b;
        buf_init(&b, 0);
        buf_puts(&b, idp->authorization_endpoint);
        buf_puts(&b, strchr(idp->authorization_endpoint, '?') ? "&" : "?");
        int first = 1;
        char cb[700];
        snprintf(cb, sizeof(cb), "%s/oauth/callback", a->o->issuer);
        add_param(&b, &first, "response_type", "code");
        add_param(&b, &first, "client_id", idp->client_id);
        add_param(&b, &first, "redirect_uri", cb);
        add_param(&b, &first, "scope", idp->sign_in_scope);
        add_param(&b, &first, "state", key);
        add_param(&b, &first, "nonce", nonce);
        add_param(&b, &first, "code_challenge", challenge);
        add_param(&b, &first, "code_challenge_method", "S256");
        out->status = 302;
        out->location = buf_take(&b, NULL);
    }
    crypto_wipe(key, sizeof(key));
    crypto_wipe(nonce, sizeof(nonce));
    /* the request passed every check it can before sign-in: the user is not known yet */
    memset(&a->d.scopes, 0, sizeof(a->d.scopes));
    a->d.n_scopes = 0;
    a->d.detail[0] = '\0';
    a->d.reason = REASON_NONE;
    out->event = build_event(a, 1);
}

static void areq_done(struct areq *a)
{
    subject_done(&a->subject);
    free(a->scope_copy);
    json_decref(a->cimd_doc);
}

void oauth_authorize(struct oauth *o, const struct oauth_front_in *in,
                     struct oauth_front_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    struct areq a = {.o = o, .in = in, .snap = snap, .phase = "request"};
    const struct form *f = in->params;
    char why[400] = "";
    if (in->params_err) {
        error_page(&a, out, REASON_INVALID_REQUEST, "%s", in->params_err);
        goto done;
    }
    a.client_id = form_get(f, "client_id");
    a.redirect_uri = form_get(f, "redirect_uri");
    a.response_type = form_get(f, "response_type");
    a.state = form_get(f, "state");
    a.challenge = form_get(f, "code_challenge");
    a.method = form_get(f, "code_challenge_method");
    a.resource = form_get(f, "resource");
    a.scope = form_get(f, "scope");
    if (!a.client_id || !*a.client_id) {
        error_page(&a, out, REASON_INVALID_REQUEST, "client_id is required");
        goto done;
    }
    if (find_client(&a, why, sizeof(why)) < 0) {
        error_page(&a, out, REASON_INVALID_CLIENT, "%s", why);
        goto done;
    }
    out->client_matched = a.client_known;
    if (!a.redirect_uri) {
        /* RFC 6749 §3.1.2.3: optional when exactly one is registered (not a loopback one,
         * whose port varies) */
        if (a.client->n_redirect_uris == 1 && !redirect_uri_is_loopback(a.client->redirect_uris[0])) {
            a.redirect_uri = a.client->redirect_uris[0];
        } else {
            error_page(&a, out, REASON_INVALID_REQUEST, "redirect_uri is required");
            goto done;
        }
    } else if (!redirect_registered(a.client, a.redirect_uri)) {
        error_page(&a, out, REASON_INVALID_REQUEST,
                   "redirect_uri %.200s is not registered for client %.200s", a.redirect_uri,
                   a.client->id);
        goto done;
    }
    a.redirect_ok = 1;
    /* from here on every error goes back to the client */
    if (!a.response_type || strcmp(a.response_type, "code") != 0) {
        redirect_error(&a, out, REASON_INVALID_REQUEST, "unsupported_response_type",
                       "response_type must be code");
        goto done;
    }
    if (a.state && strlen(a.state) > 1024) {
        a.state = NULL;
        redirect_error(&a, out, REASON_INVALID_REQUEST, NULL, "state is longer than 1024 bytes");
        goto done;
    }
    if (!a.challenge) {
        redirect_error(&a, out, REASON_INVALID_REQUEST, NULL,
                       "code_challenge is required (PKCE with S256)");
        goto done;
    }
    if (!a.method || strcmp(a.method, "S256") != 0) {
        redirect_error(&a, out, REASON_INVALID_REQUEST, NULL,
                       "code_challenge_method must be S256 (plain is not accepted)");
        goto done;
    }
    if (!pkce_challenge_valid(a.challenge)) {
        redirect_error(&a, out, REASON_INVALID_REQUEST, NULL,
                       "code_challenge is not a base64url SHA-256 (43 characters)");
        goto done;
    }
    if (!(a.client->grant_types & POLICY_GT_AUTHORIZATION_CODE)) {
        redirect_error(&a, out, REASON_UNAUTHORIZED_CLIENT, NULL, "authorization_code");
        goto done;
    }
    if (!a.resource || !*a.resource) {
        redirect_error(&a, out, REASON_INVALID_REQUEST, NULL,
                       "resource is required (RFC 8707): the MCP server's URL");
        goto done;
    }
    if (a.scope) {
        a.scope_copy = strdup(a.scope);
        if (!a.scope_copy || oauth_split_scopes(a.scope_copy, a.scopes, &a.n_scopes) < 0) {
            redirect_error(&a, out, REASON_INVALID_REQUEST, "invalid_scope",
                           "scope: not a list of at most %d scope tokens", DECIDE_MAX_SCOPES);
            goto done;
        }
    }
    /* steps 5 to 8 now (no user yet): a request that cannot succeed fails before sign-in */
    decide(&a);
    int step = policy_reason_step(a.d.reason);
    if (a.d.reason != REASON_NONE && step >= 5 && step <= 8) {
        redirect_error(&a, out, a.d.reason, NULL, NULL);
        goto done;
    }
    start_sign_in(&a, out, form_get(f, "idp"));
done:
    areq_done(&a);
    policy_snapshot_unref(snap);
}

/* ---- after sign-in ---- */

/* The user is known: decide, and send the browser back with a code or an error. */
static void complete(struct areq *a, struct oauth_front_reply *out)
{
    decide(a);
    if (a->d.reason != REASON_NONE) {
        redirect_error(a, out, a->d.reason, NULL, NULL);
        return;
    }
    struct authz_code *c = calloc(1, sizeof(*c));
    char scope[1024];
    decision_granted_scopes(&a->d, scope, sizeof(scope));
    if (c) {
        c->client_id = strdup(a->client->id);
        c->redirect_uri = strdup(a->redirect_uri);
        c->challenge = strdup(a->challenge);
        c->resource = strdup(a->resource);
        c->scope = strdup(scope);
        c->user = strdup(a->subject.user);
        c->idp_issuer = dup_or_null(a->subject.issuer);
        for (size_t i = 0; i < a->subject.n_groups; i++)
            if ((c->groups[c->n_groups] = strdup(a->subject.groups[i])))
                c->n_groups++;
    }
    if (!c || !c->client_id || !c->redirect_uri || !c->challenge || !c->resource || !c->scope ||
        !c->user) {
        authz_code_free(c);
        redirect_error(a, out, REASON_INVALID_REQUEST, "server_error", "out of memory");
        return;
    }
    int64_t now = oauth_now();
    char code[44];
    if (ticket_put(a->o->codes, c, now + AUTHZ_CODE_LIFETIME, now, code) < 0) {
        redirect_error(a, out, REASON_INVALID_REQUEST, "temporarily_unavailable",
                       "too many authorization codes outstanding; try again later");
        return;
    }
    finish_redirect(a, out, code, NULL);
    crypto_wipe(code, sizeof(code));
    out->event = build_event(a, 1);
}

/* Restores the request a pending sign-in stands for; 0, or -1 with the reply made. */
static int resume(struct areq *a, struct authz_pending *p, struct oauth_front_reply *out)
{
    a->client_id = p->client_id;
    a->redirect_uri = p->redirect_uri;
    a->state = p->state;
    a->challenge = p->challenge;
    a->method = "S256";
    a->response_type = "code";
    a->resource = p->resource;
    a->scope = p->scope;
    char why[400] = "";
    if (find_client(a, why, sizeof(why)) < 0) {
        error_page(a, out, REASON_INVALID_CLIENT, "%s", why);
        return -1;
    }
    out->client_matched = a->client_known;
    if (!redirect_registered(a->client, a->redirect_uri)) { /* changed meanwhile */
        error_page(a, out, REASON_INVALID_REQUEST,
                   "redirect_uri %.200s is no longer registered for client %.200s",
                   a->redirect_uri, a->client->id);
        return -1;
    }
    a->redirect_ok = 1;
    if (a->scope) {
        a->scope_copy = strdup(a->scope);
        if (!a->scope_copy || oauth_split_scopes(a->scope_copy, a->scopes, &a->n_scopes) < 0) {
            redirect_error(a, out, REASON_INVALID_REQUEST, "server_error", "out of memory");
            return -1;
        }
    }
    return 0;
}

void oauth_authorize_callback(struct oauth *o, const struct oauth_front_in *in,
                              struct oauth_front_reply *out)
{
    memset(out, 0, sizeof(*out));
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    struct areq a = {.o = o, .in = in, .snap = snap, .phase = "callback"};
    struct authz_pending *p = NULL;
    char *id_token = NULL;
    if (in->params_err) {
        error_page(&a, out, REASON_INVALID_REQUEST, "%s", in->params_err);
        goto done;
    }
    const struct form *f = in->params;
    const char *our_state = form_get(f, "state");
    int r = our_state ? ticket_take(o->pending, our_state, oauth_now(), (void **)&p)
                      : ERR_NOTFOUND;
    if (r < 0 || !p->idp_id) {
        error_page(&a, out, REASON_INVALID_REQUEST,
                   r == ERR_EXISTS ? "this sign-in was completed already (state used twice)"
                   : r == 0        ? "this sign-in was not started at an identity provider"
                                   : "unknown or expired sign-in (state); start again from the "
                                     "application");
        goto done;
    }
    if (resume(&a, p, out) < 0)
        goto done;
    const struct policy_issuer *idp = idp_by_id(snap, p->idp_id);
    if (!idp) {
        redirect_error(&a, out, REASON_INVALID_SUBJECT, NULL,
                       "the identity provider %.200s is no longer configured for sign-in",
                       p->idp_id);
        goto done;
    }
    a.sign_in = idp->issuer;
    const char *err = form_get(f, "error");
    if (err) {
        const char *desc = form_get(f, "error_description");
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied",
                       "sign-in at %.200s failed: %.60s%s%.200s", idp->issuer, err,
                       desc ? ": " : "", desc ? desc : "");
        goto done;
    }
    const char *iss = form_get(f, "iss");
    if (iss && strcmp(iss, idp->issuer) != 0) { /* RFC 9207: a mix-up attack */
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied",
                       "the sign-in answer names issuer %.200s, not %.200s", iss, idp->issuer);
        goto done;
    }
    const char *code = form_get(f, "code");
    if (!code || !*code) {
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied",
                       "the identity provider sent no code");
        goto done;
    }
    char cb[700], why[400] = "";
    snprintf(cb, sizeof(cb), "%s/oauth/callback", o->issuer);
    if (upstream_redeem(idp, code, cb, p->verifier, &id_token, why, sizeof(why)) < 0) {
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied", "%s", why);
        goto done;
    }
    if (subject_verify_sign_in(o, snap, idp, id_token, p->nonce, &a.subject, why, sizeof(why)) <
        0) {
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied", "ID token: %s", why);
        goto done;
    }
    a.has_user = 1;
    complete(&a, out);
done:
    if (id_token) {
        crypto_wipe(id_token, strlen(id_token));
        free(id_token);
    }
    areq_done(&a);
    authz_pending_free(p);
    policy_snapshot_unref(snap);
}

static int media_is_form(const char *ct)
{
    static const char want[] = "application/x-www-form-urlencoded";
    size_t n = ct ? strcspn(ct, "; ") : 0;
    return n == sizeof(want) - 1 && strncasecmp(ct, want, n) == 0;
}

/* "eng, ops" or "eng ops" → groups */
static void parse_groups(const char *s, struct subject *sub)
{
    while (s && *s && sub->n_groups < DECIDE_MAX_GROUPS) {
        s += strspn(s, ", \t");
        size_t n = strcspn(s, ", \t");
        if (n == 0)
            break;
        if (n <= 256) {
            char *g = strndup(s, n);
            if (g)
                sub->groups[sub->n_groups++] = g;
        }
        s += n;
    }
}

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 0;
    return 1;
}

void oauth_authorize_dev_sign_in(struct oauth *o, struct oauth_front_in *in,
                                 struct oauth_front_reply *out)
{
    memset(out, 0, sizeof(*out));
    if (!o->cfg.dev) {
        out->status = 404;
        out->html = error_html("Not found", "The development sign-in exists only in --dev mode.");
        return;
    }
    struct policy_snapshot *snap = policy_holder_get(o->cfg.policy);
    struct areq a = {.o = o, .in = in, .snap = snap, .phase = "sign_in", .sign_in = "development"};
    struct authz_pending *p = NULL;
    struct form f;
    struct err_detail d = {{0}};
    if (!media_is_form(in->content_type)) {
        error_page(&a, out, REASON_INVALID_REQUEST,
                   "the sign-in form must be application/x-www-form-urlencoded");
        goto done;
    }
    if (form_parse(in->body, in->len, &f, &d) < 0) {
        error_page(&a, out, REASON_INVALID_REQUEST, "%s", d.msg);
        goto done;
    }
    const char *ticket = form_get(&f, "ticket");
    int r = ticket ? ticket_take(o->pending, ticket, oauth_now(), (void **)&p) : ERR_NOTFOUND;
    if (r < 0 || p->idp_id) {
        error_page(&a, out, REASON_INVALID_REQUEST,
                   r == ERR_EXISTS ? "this sign-in was completed already"
                   : r == 0        ? "this sign-in belongs to an identity provider"
                                   : "unknown or expired sign-in; start again from the application");
        goto done;
    }
    if (resume(&a, p, out) < 0)
        goto done;
    const char *user = form_get(&f, "user");
    if (!user || !*user || strlen(user) > 256 || !printable(user)) {
        redirect_error(&a, out, REASON_INVALID_SUBJECT, "access_denied",
                       "user: required, at most 256 printable bytes");
        goto done;
    }
    a.subject.user = strdup(user);
    parse_groups(form_get(&f, "groups"), &a.subject);
    a.has_user = a.subject.user != NULL;
    complete(&a, out);
done:
    areq_done(&a);
    authz_pending_free(p);
    policy_snapshot_unref(snap);
}

/* ---- for token.c ---- */

int authz_code_redeem(struct oauth *o, const char *code, const char *client_id,
                      const char *redirect_uri, const char *verifier, const char *resource,
                      struct authz_code **ret, char *why, size_t n)
{
    struct authz_code *c = NULL;
    if (!code || !*code) {
        snprintf(why, n, "code is required");
        return REASON_INVALID_REQUEST;
    }
    if (!verifier) {
        snprintf(why, n, "code_verifier is required (PKCE)");
        return REASON_INVALID_REQUEST;
    }
    /* taken at once: a code presented with a wrong verifier or by the wrong client is
     * spent all the same (RFC 9700 §4.8: an intercepted code is worth one try) */
    int r = ticket_take(o->codes, code, oauth_now(), (void **)&c);
    if (r == ERR_EXISTS) {
        /* RFC 6749 §4.1.2 says the tokens issued from it SHOULD be revoked; they are
         * short-lived and not tracked per code here (docs/authorization-code.md) */
        snprintf(why, n, "the authorization code was used before");
        return REASON_INVALID_SUBJECT;
    }
    if (r < 0) {
        snprintf(why, n, "the authorization code is unknown or expired");
        return REASON_INVALID_SUBJECT;
    }
    enum policy_reason bad = REASON_INVALID_SUBJECT;
    if (strcmp(c->client_id, client_id) != 0)
        snprintf(why, n, "the authorization code was issued to another client");
    else if (!redirect_uri || strcmp(c->redirect_uri, redirect_uri) != 0)
        snprintf(why, n, "redirect_uri is not the one of the authorization request");
    else if (!pkce_s256_matches(verifier, c->challenge))
        snprintf(why, n, "code_verifier does not match the code_challenge");
    else if (resource && strcmp(resource, c->resource) != 0)
        snprintf(why, n, "resource %.200s is not the one of the authorization request", resource);
    else
        bad = REASON_NONE;
    if (bad != REASON_NONE) {
        authz_code_free(c);
        return bad;
    }
    *ret = c;
    return REASON_NONE;
}

void oauth_front_reply_done(struct oauth_front_reply *r)
{
    free(r->location);
    free(r->html);
    json_decref(r->body);
    json_decref(r->event);
    memset(r, 0, sizeof(*r));
}
