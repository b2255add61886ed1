/* http/routes.c — the router: paths of spec/http-api.md to handlers.
 * Everything under /api/v1/ is closed without the admin bearer token (401 and
 * nothing else, even for paths that do not exist, so the API's shape is not
 * disclosed). The token is compared as SHA-256 digests in constant time. */
#include "http/http_priv.h"
#include "core/timeutil.h"
#include "export/runner.h"
#include "jose/crypto.h"
#include "logs/scim.h"
#include "oauth/authorize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum route_id routes_route_of(const char *url)
{
    if (strcmp(url, "/oauth/token") == 0)
        return ROUTE_TOKEN;
    if (strcmp(url, "/oauth/introspect") == 0)
        return ROUTE_INTROSPECT;
    if (strcmp(url, "/oauth/revoke") == 0)
        return ROUTE_REVOKE;
    if (strcmp(url, "/api/v1/apply") == 0)
        return ROUTE_ADMIN_APPLY;
    if (strncmp(url, "/api/v1/", 8) == 0)
        return ROUTE_ADMIN_OBJECTS;
    return ROUTE_NOT_FOUND;
}

size_t routes_body_max(const struct http_server *srv, const char *url)
{
    return strncmp(url, "/oauth/", 7) == 0 ? srv->cfg.oauth_body_max : srv->cfg.admin_body_max;
}

static int is(const struct http_request *req, const char *m)
{
    return strcmp(req->method, m) == 0;
}

int method_not_allowed(struct http_response *res, const char *allow)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "Method not allowed (allowed: %s)", allow);
    res_error(res, ERR_METHOD, msg);
    res_header(res, "Allow", allow);
    return 0;
}

int routes_admin_authorized(const struct http_request *req)
{
    const char *h = req_header(req, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return 0;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    unsigned char digest[SHA256_LEN];
    crypto_sha256(tok, strlen(tok), digest);
    return crypto_memeq(digest, req->srv->cfg.admin_token_sha256, SHA256_LEN);
}

static int media_is(const char *ct, const char *const *allowed)
{
    if (!ct)
        return 1; /* a body without Content-Type is taken at its word */
    size_t n = strcspn(ct, ";");
    while (n && ct[n - 1] == ' ')
        n--;
    for (; *allowed; allowed++)
        if (strlen(*allowed) == n && strncasecmp(ct, *allowed, n) == 0)
            return 1;
    return 0;
}

static const char *const json_types[] = {"application/json", "application/merge-patch+json",
                                         NULL};

/* Parses the body as one JSON value; on failure answers and returns NULL. */
static json_t *json_body(struct http_request *req, struct http_response *res)
{
    if (!media_is(req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE), json_types)) {
        res_error(res, ERR_MEDIA, "Content-Type must be application/json");
        return NULL;
    }
    if (!req->body.len) {
        res_error(res, ERR_INVAL, "body: a JSON object is required");
        return NULL;
    }
    json_error_t je;
    json_t *j = json_loadb(req->body.data, req->body.len, JSON_REJECT_DUPLICATES, &je);
    if (!j) {
        char msg[320];
        snprintf(msg, sizeof(msg), "body: invalid JSON at line %d, column %d: %s", je.line,
                 je.column, je.text);
        res_error(res, ERR_INVAL, msg);
    }
    return j;
}

static int answer(struct http_response *res, int r, const struct err_detail *d, int ok_status,
                   json_t *take)
{
    if (r < 0) {
        json_decref(take);
        res_error(res, r, d->msg[0] ? d->msg : NULL);
    } else if (ok_status == 204) {
        json_decref(take);
        res_text(res, 204, "application/json", NULL, 0);
    } else {
        res_json(res, ok_status, take);
    }
    return 0;
}

static int route_objects(struct http_request *req, struct http_response *res, enum store_kind kind,
                          const char *id, const struct audit_origin *o)
{
    struct admin *a = req->srv->cfg.admin;
    struct err_detail d = {{0}};
    json_t *out = NULL, *body = NULL;
    int r;
    if (!id) {
        if (is(req, "GET")) {
            r = admin_list(a, kind, &out);
            return answer(res, r, &d, 200, out);
        }
        if (is(req, "POST")) {
            if (!(body = json_body(req, res)))
                return 0;
            r = admin_create(a, o, kind, body, &out, &d);
            json_decref(body);
            return answer(res, r, &d, 201, out);
        }
        return method_not_allowed(res, "GET, POST");
    }
    if (is(req, "GET")) {
        r = admin_get(a, kind, id, &out, &d);
        return answer(res, r, &d, 200, out);
    }
    if (is(req, "PUT") || is(req, "PATCH")) {
        if (!(body = json_body(req, res)))
            return 0;
        r = is(req, "PUT") ? admin_replace(a, o, kind, id, body, &out, &d)
                           : admin_patch(a, o, kind, id, body, &out, &d);
        json_decref(body);
        return answer(res, r, &d, 200, out);
    }
    if (is(req, "DELETE")) {
        r = admin_delete(a, o, kind, id, &d);
        return answer(res, r, &d, 204, NULL);
    }
    method_not_allowed(res, "GET, PUT, PATCH, DELETE");
    return 0;
}

/* After any change to exporters: the runner follows the store. */
static void exporters_sync(struct http_request *req)
{
    json_t *list = NULL;
    if (req->srv->cfg.exporters &&
        store_object_list(req->srv->cfg.store, STORE_EXPORTERS, &list) == 0)
        export_manager_sync(req->srv->cfg.exporters, list);
    json_decref(list);
}

/* A filter the runner could not parse is refused here, with the column, not stored. */
static int exporter_filter_ok(const json_t *body, struct err_detail *d)
{
    const char *f = json_string_value(json_object_get(body, "filter"));
    struct store_filter *tree = NULL;
    if (!f)
        return 0;
    int r = scim_parse(f, strlen(f), &tree, d);
    store_filter_free(tree);
    if (r < 0) {
        char why[sizeof(d->msg)];
        snprintf(why, sizeof(why), "%s", d->msg);
        return err_set(d, ERR_INVAL, "filter: %.400s", why);
    }
    return 0;
}

/* /api/v1/exporters[/{id}[/status|/test]] */
static int route_exporters(struct http_request *req, struct http_response *res, const char *rest,
                           const struct audit_origin *o)
{
    struct err_detail d = {{0}};
    json_t *out = NULL;
    const char *slash = strchr(rest, '/');
    if (slash && slash[1]) {
        char id[130];
        size_t n = (size_t)(slash - rest);
        if (n == 0 || n >= sizeof(id)) {
            res_error(res, ERR_NOTFOUND, "No such exporter");
            return 0;
        }
        memcpy(id, rest, n);
        id[n] = '\0';
        const char *what = slash + 1;
        struct export_manager *m = req->srv->cfg.exporters;
        if (strcmp(what, "status") == 0) {
            if (!is(req, "GET"))
                return method_not_allowed(res, "GET");
            int r = m ? export_manager_status(m, id, &out, &d)
                      : err_set(&d, ERR_NOTFOUND, "exporter:%s does not exist", id);
            return answer(res, r, &d, 200, out);
        }
        if (strcmp(what, "test") == 0) {
            if (!is(req, "POST"))
                return method_not_allowed(res, "POST");
            json_t *doc = NULL;
            int r = store_object_get(req->srv->cfg.store, STORE_EXPORTERS, id, &doc);
            if (r == ERR_NOTFOUND)
                r = err_set(&d, r, "exporter:%s does not exist", id);
            else if (r == 0 && !m)
                r = err_set(&d, ERR_IO, "the exporter runner is not running");
            if (r == 0)
                r = export_manager_test(m, doc, &out, &d);
            json_decref(doc);
            return answer(res, r, &d, 200, out);
        }
        res_error(res, ERR_NOTFOUND, "No such exporter operation (status, test)");
        return 0;
    }
    const char *id = *rest && (!slash || slash[1]) ? rest : NULL;
    char idbuf[130];
    if (id && slash) { /* "ID/" */
        snprintf(idbuf, sizeof(idbuf), "%.*s", (int)(slash - rest), rest);
        id = idbuf;
    }
    if (is(req, "POST") || is(req, "PUT") || is(req, "PATCH")) {
        json_t *body = json_body(req, res);
        if (!body)
            return 0;
        int r = exporter_filter_ok(body, &d);
        json_decref(body);
        if (r < 0)
            return answer(res, r, &d, 200, NULL);
    }
    int r = route_objects(req, res, STORE_EXPORTERS, id, o);
    if (!is(req, "GET") && res->status >= 200 && res->status < 300)
        exporters_sync(req);
    return r;
}

static int route_settings(struct http_request *req, struct http_response *res,
                           const struct audit_origin *o)
{
    struct admin *a = req->srv->cfg.admin;
    struct err_detail d = {{0}};
    json_t *out = NULL, *body = NULL;
    int r;
    if (is(req, "GET")) {
        r = admin_settings_get(a, &out);
        return answer(res, r, &d, 200, out);
    }
    if (is(req, "PATCH") || is(req, "PUT")) {
        if (!(body = json_body(req, res)))
            return 0;
        r = is(req, "PUT") ? admin_replace(a, o, STORE_SETTINGS, "settings", body, &out, &d)
                           : admin_patch(a, o, STORE_SETTINGS, "settings", body, &out, &d);
        json_decref(body);
        if (r == 0) /* a new default or maintained algorithm gets its key now */
            r = admin_keys_ensure(a, o, &d) < 0 ? ERR_IO : 0;
        return answer(res, r, &d, 200, out);
    }
    method_not_allowed(res, "GET, PUT, PATCH");
    return 0;
}

static int route_keys(struct http_request *req, struct http_response *res, const char *rest,
                       const struct audit_origin *o)
{
    struct admin *a = req->srv->cfg.admin;
    struct err_detail d = {{0}};
    json_t *out = NULL;
    int r;
    if (!*rest) {
        if (is(req, "GET")) {
            r = admin_keys_list(a, &out);
            return answer(res, r, &d, 200, out);
        }
        if (is(req, "POST")) {
            json_t *body = json_body(req, res);
            if (!body)
                return 0;
            const json_t *alg = json_object_get(body, "alg");
            if (!json_is_object(body) || json_object_size(body) != 1 || !json_is_string(alg)) {
                json_decref(body);
                return res_error(res, ERR_INVAL, "body: expected {\"alg\": \"ES256\"}");
            }
            r = admin_key_create(a, o, json_string_value(alg), &out, &d);
            json_decref(body);
            return answer(res, r, &d, 201, out);
        }
        return method_not_allowed(res, "GET, POST");
    }
    char kid[160];
    const char *slash = strchr(rest, '/');
    size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n >= sizeof(kid))
        return res_error(res, ERR_NOTFOUND, "No such key");
    memcpy(kid, rest, n);
    kid[n] = '\0';
    if (!slash) {
        if (!is(req, "GET"))
            return method_not_allowed(res, "GET");
        r = admin_key_get(a, kid, &out, &d);
        return answer(res, r, &d, 200, out);
    }
    int activate = strcmp(slash, "/activate") == 0, retire = strcmp(slash, "/retire") == 0;
    if (!activate && !retire)
        return res_error(res, ERR_NOTFOUND, "No such key action (activate, retire)");
    if (!is(req, "POST"))
        return method_not_allowed(res, "POST");
    r = activate ? admin_key_activate(a, o, kid, &out, &d) : admin_key_retire(a, o, kid, &out, &d);
    answer(res, r, &d, 200, out);
    return 0;
}

static const char *const policy_types[] = {"application/yaml", "application/x-yaml", "text/yaml",
                                           "text/x-yaml", "application/json", "text/plain", NULL};

static int route_apply(struct http_request *req, struct http_response *res,
                        const struct audit_origin *o)
{
    if (!is(req, "POST"))
        return method_not_allowed(res, "POST");
    if (!media_is(req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE), policy_types))
        return res_error(res, ERR_MEDIA, "Content-Type must be application/yaml or application/json");
    const char *prune = req_query(req, "prune");
    if (prune && strcmp(prune, "true") && strcmp(prune, "false"))
        return res_error(res, ERR_INVAL, "prune: expected true or false");
    struct err_detail d = {{0}};
    struct config_doc *doc = NULL;
    int r = config_doc_parse(req->body.data ? req->body.data : "", req->body.len, &doc, &d);
    if (r < 0)
        return res_error(res, r == ERR_TOOBIG ? ERR_TOOBIG : ERR_INVAL, d.msg);
    json_t *out = NULL;
    r = admin_apply(req->srv->cfg.admin, o, doc, prune && strcmp(prune, "true") == 0, &out, &d);
    config_doc_free(doc);
    if (r == 0)
        r = admin_keys_ensure(req->srv->cfg.admin, o, &d) < 0 ? ERR_IO : 0;
    answer(res, r, &d, 200, out);
    return 0;
}

/* POST /oauth/token, /oauth/introspect, /oauth/revoke: the oauth/ handlers decide;
 * a token reply carries its event, which server.c commits before sending. */
static int route_oauth(struct http_request *req, struct http_response *res,
                       void (*fn)(struct oauth *, struct oauth_in *, struct oauth_reply *))
{
    char empty[1] = "";
    if (!is(req, "POST")) {
        res_header(res, "Allow", "POST");
        if (fn != oauth_token)
            return res_error_oauth(res, 405, "invalid_request",
                                   "Malformed request: use POST (RFC 6749 §3.2)");
        struct oauth_in in = {.client_ip = req->ip,
                              .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
                              .request_id = req->id,
                              .received_us = req->start_us};
        struct oauth_reply r;
        char what[64];
        snprintf(what, sizeof(what), "method %.16s is not allowed; use POST", req->method);
        oauth_token_refused(req->srv->cfg.oauth, &in, 405, what, &r);
        res_json(res, r.status, r.body);
        r.body = NULL;
        res->event = r.event; /* every call to the token endpoint is one event */
        res->trace = r.trace;
        r.event = NULL;
        oauth_reply_done(&r);
        return 0;
    }
    struct oauth_in in = {
        .body = req->body.data ? req->body.data : empty,
        .len = req->body.len,
        .content_type = req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE),
        .authorization = req_header(req, MHD_HTTP_HEADER_AUTHORIZATION),
        .client_ip = req->ip,
        .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
        .request_id = req->id,
        .received_us = req->start_us,
    };
    struct oauth_reply r;
    fn(req->srv->cfg.oauth, &in, &r);
    res_json(res, r.status, r.body);
    r.body = NULL;
    res_header(res, "Pragma", "no-cache");
    if (r.www_authenticate)
        res_header(res, "WWW-Authenticate", r.www_authenticate);
    res->event = r.event;
    res->trace = r.trace;
    r.event = NULL;
    for (int k = 0; k < 2; k++) {
        res->jti_keys[k] = r.jti_keys[k];
        res->jti_exps[k] = r.jti_exps[k];
        r.jti_keys[k] = NULL;
    }
    oauth_reply_done(&r);
    return 0;
}

/* ---- the authorization-code front door (oauth/authorize.h) ---- */

struct query_collect {
    struct form *f;
    char err[160];
};

static enum MHD_Result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct query_collect *q = cls;
    (void)kind;
    for (size_t i = 0; i < q->f->n; i++) {
        if (strcmp(q->f->name[i], key) == 0) { /* RFC 6749 §3.1 */
            snprintf(q->err, sizeof(q->err), "parameter '%.64s' is repeated", key);
            return MHD_NO;
        }
    }
    if (q->f->n >= FORM_MAX_PARAMS) {
        snprintf(q->err, sizeof(q->err), "more than %d parameters", FORM_MAX_PARAMS);
        return MHD_NO;
    }
    q->f->name[q->f->n] = key;
    q->f->value[q->f->n] = value ? value : "";
    q->f->n++;
    return MHD_YES;
}

/* The reply (consumed) as the response, its event to be committed before it is sent. */
static int front_answer(struct http_response *res, struct oauth_front_reply *r)
{
    static const char html[] = "text/html; charset=utf-8";
    if (r->location) {
        res_text(res, r->status, html, NULL, 0);
        res_header(res, "Location", r->location);
    } else if (r->html) {
        res_text(res, r->status, html, r->html, strlen(r->html));
        r->html = NULL;
        res_header(res, "Content-Security-Policy",
                   "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'");
        res_header(res, "X-Frame-Options", "DENY");
    } else {
        res_json(res, r->status, r->body);
        r->body = NULL;
    }
    res_header(res, "Referrer-Policy", "no-referrer");
    if (r->retry_after)
        res_header(res, "Retry-After", r->retry_after);
    res->event = r->event;
    r->event = NULL;
    res->trace.client_matched = r->client_matched;
    oauth_front_reply_done(r);
    return 0;
}

/* POST /oauth/register creates the client through the admin layer (an admin.change
 * whose actor is "registration"). */
static int create_registered_client(void *arg, const json_t *client, char *why, size_t n)
{
    struct http_request *req = arg;
    struct audit_origin o = {.request_id = req->id, .endpoint = "register", .client_ip = req->ip,
                             .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
                             .actor = "registration"};
    struct err_detail d = {{0}};
    json_t *out = NULL;
    int r = admin_create(req->srv->cfg.admin, &o, STORE_CLIENTS, client, &out, &d);
    json_decref(out);
    if (r < 0)
        snprintf(why, n, "%s", d.msg);
    return r;
}

static int route_front(struct http_request *req, struct http_response *res)
{
    const char *u = req->url;
    struct oauth *o = req->srv->cfg.oauth;
    char empty[1] = "";
    struct form params = {0};
    struct query_collect q = {.f = &params};
    struct oauth_front_in in = {
        .params = &params,
        .body = req->body.data ? req->body.data : empty,
        .len = req->body.len,
        .content_type = req_header(req, MHD_HTTP_HEADER_CONTENT_TYPE),
        .client_ip = req->ip,
        .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
        .request_id = req->id,
        .received_us = req->start_us,
    };
    struct oauth_front_reply r;
    int post = strcmp(u, "/oauth/register") == 0 || strcmp(u, "/oauth/sign-in") == 0;
    if (post ? !is(req, "POST") : !is(req, "GET"))
        return method_not_allowed(res, post ? "POST" : "GET");
    if (!post) {
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
        if (q.err[0])
            in.params_err = q.err;
    }
    if (strcmp(u, "/oauth/authorize") == 0)
        oauth_authorize(o, &in, &r);
    else if (strcmp(u, "/oauth/callback") == 0)
        oauth_authorize_callback(o, &in, &r);
    else if (strcmp(u, "/oauth/sign-in") == 0)
        oauth_authorize_dev_sign_in(o, &in, &r);
    else
        oauth_register(o, &in, create_registered_client, req, &r);
    return front_answer(res, &r);
}

static int route_explain(struct http_request *req, struct http_response *res)
{
    if (!is(req, "POST"))
        return method_not_allowed(res, "POST");
    json_t *body = json_body(req, res);
    if (!body)
        return 0;
    struct err_detail d = {{0}};
    json_t *out = NULL;
    int r = oauth_explain(req->srv->cfg.oauth, body, &out, &d);
    json_decref(body);
    return answer(res, r, &d, 200, out);
}

/* POST /api/v1/dev/id-token {"user", "groups", "ttl"}: --dev only. */
static int route_dev_id_token(struct http_request *req, struct http_response *res)
{
    if (!is(req, "POST"))
        return method_not_allowed(res, "POST");
    json_t *body = json_body(req, res);
    if (!body)
        return 0;
    struct err_detail d = {{0}};
    const json_t *ttl = json_object_get(body, "ttl");
    const json_t *groups = json_object_get(body, "groups");
    int64_t secs = 600;
    int r = 0;
    if (json_is_integer(ttl))
        secs = json_integer_value(ttl);
    else if (ttl && (!json_is_string(ttl) || duration_parse(json_string_value(ttl), &secs) < 0))
        r = err_set(&d, ERR_INVAL, "ttl: expected a duration such as 10m");
    if (r == 0 && groups && !json_is_array(groups))
        r = err_set(&d, ERR_INVAL, "groups: expected a list of strings");
    char *tok = NULL;
    if (r == 0)
        r = oauth_dev_id_token(req->srv->cfg.oauth,
                               json_string_value(json_object_get(body, "user")), groups, secs,
                               &tok, &d);
    json_decref(body);
    json_t *out = r == 0 ? json_pack("{s:s, s:I}", "id_token", tok, "expires_in",
                                     (json_int_t)secs)
                         : NULL;
    free(tok);
    return answer(res, r, &d, 200, out);
}

static int route_readyz(struct http_request *req, struct http_response *res)
{
    struct policy_snapshot *snap = policy_holder_get(req->srv->cfg.policy);
    int store_ok = store_ping(req->srv->cfg.store) == 0;
    int keys_ok = snap && snap->active_key[snap->settings.default_signing_alg];
    policy_snapshot_unref(snap);
    json_t *j = json_pack("{s:s, s:{s:b, s:b}}", "status", store_ok && keys_ok ? "ready" : "not ready",
                          "checks", "store_writable", store_ok, "signing_key", keys_ok);
    res_json(res, store_ok && keys_ok ? 200 : 503, j);
    return 0;
}

int routes_dispatch(struct http_request *req, struct http_response *res)
{
    const char *u = req->url;
    if (strcmp(u, "/ui") == 0 || strncmp(u, "/ui/", 4) == 0) {
        req->route = ROUTE_UI; /* the console's files only: its data comes from /api/v1/ */
        return route_ui(req, res);
    }
    if (strcmp(u, "/healthz") == 0) {
        req->route = ROUTE_HEALTHZ;
        if (!is(req, "GET") && !is(req, "HEAD"))
            return method_not_allowed(res, "GET");
        return res_json(res, 200, json_pack("{s:s}", "status", "ok"));
    }
    if (strcmp(u, "/readyz") == 0) {
        req->route = ROUTE_READYZ;
        if (!is(req, "GET") && !is(req, "HEAD"))
            return method_not_allowed(res, "GET");
        return route_readyz(req, res);
    }
    if (strcmp(u, "/metrics") == 0) {
        req->route = ROUTE_METRICS;
        if (!is(req, "GET"))
            return method_not_allowed(res, "GET");
        struct policy_snapshot *snap = policy_holder_get(req->srv->cfg.policy);
        size_t len = 0;
        char *text = metrics_render(req->srv, snap, &len);
        policy_snapshot_unref(snap);
        return res_text(res, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    }
    if (strcmp(u, "/oauth/token") == 0) {
        req->route = ROUTE_TOKEN;
        return route_oauth(req, res, oauth_token);
    }
    if (strcmp(u, "/oauth/authorize") == 0 || strcmp(u, "/oauth/callback") == 0 ||
        strcmp(u, "/oauth/register") == 0 || strcmp(u, "/oauth/sign-in") == 0) {
        req->route = ROUTE_METADATA; /* TODO: a metrics label of its own */
        return route_front(req, res);
    }
    if (strcmp(u, "/oauth/introspect") == 0) {
        req->route = ROUTE_INTROSPECT;
        return route_oauth(req, res, oauth_introspect);
    }
    if (strcmp(u, "/oauth/revoke") == 0) {
        req->route = ROUTE_REVOKE;
        return route_oauth(req, res, oauth_revoke);
    }
    if (strcmp(u, "/.well-known/oauth-authorization-server") == 0 ||
        strcmp(u, "/.well-known/openid-configuration") == 0) {
        req->route = ROUTE_METADATA;
        if (!is(req, "GET"))
            return method_not_allowed(res, "GET");
        return res_json(res, 200, oauth_metadata(req->srv->cfg.oauth));
    }
    if (strncmp(u, "/.well-known/oauth-protected-resource/mcp/", 42) == 0) {
        req->route = ROUTE_METADATA;
        if (!is(req, "GET"))
            return method_not_allowed(res, "GET");
        json_t *m = oauth_protected_resource(req->srv->cfg.oauth, u + 42);
        if (!m)
            return res_error(res, ERR_NOTFOUND, "No such MCP server");
        return res_json(res, 200, m);
    }
    if (strcmp(u, "/oauth/jwks") == 0) {
        req->route = ROUTE_JWKS;
        if (!is(req, "GET"))
            return method_not_allowed(res, "GET");
        struct policy_snapshot *snap = policy_holder_get(req->srv->cfg.policy);
        char *jwks = strdup(snap && snap->jwks_json ? snap->jwks_json : "{\"keys\":[]}");
        policy_snapshot_unref(snap);
        return res_text(res, 200, "application/json", jwks, jwks ? strlen(jwks) : 0);
    }
    if (strncmp(u, "/api/v1/", 8) == 0) {
        if (!routes_admin_authorized(req)) {
            req->route = ROUTE_ADMIN_OBJECTS;
            res_error(res, ERR_UNAUTH, "A valid admin token is required");
            res_header(res, "WWW-Authenticate", "Bearer realm=\"mcpauth-admin\"");
            return 0;
        }
        struct audit_origin o = {.request_id = req->id, .endpoint = "admin",
                                 .client_ip = req->ip,
                                 .user_agent = req_header(req, MHD_HTTP_HEADER_USER_AGENT),
                                 .actor = "admin-token"};
        const char *rest = u + 8;
        if (strcmp(rest, "apply") == 0) {
            req->route = ROUTE_ADMIN_APPLY;
            return route_apply(req, res, &o);
        }
        if (strcmp(rest, "logs") == 0 || strncmp(rest, "logs/", 5) == 0) {
            req->route = ROUTE_LOGS;
            return route_logs(req, res, rest + 4);
        }
        if (strcmp(rest, "explain") == 0) {
            req->route = ROUTE_ADMIN_EXPLAIN;
            return route_explain(req, res);
        }
        if (strcmp(rest, "dev/id-token") == 0 && req->srv->cfg.dev) {
            req->route = ROUTE_DEV;
            return route_dev_id_token(req, res);
        }
        if (strcmp(rest, "settings") == 0) {
            req->route = ROUTE_ADMIN_SETTINGS;
            return route_settings(req, res, &o);
        }
        if (strcmp(rest, "keys") == 0 || strncmp(rest, "keys/", 5) == 0) {
            req->route = ROUTE_ADMIN_KEYS;
            return route_keys(req, res, rest[4] ? rest + 5 : "", &o);
        }
        if (strcmp(rest, "trace") == 0) {
            req->route = ROUTE_TRACE;
            return route_trace(req, res);
        }
        if (strcmp(rest, "exporters") == 0 || strncmp(rest, "exporters/", 10) == 0) {
            req->route = ROUTE_ADMIN_OBJECTS;
            return route_exporters(req, res, rest[9] ? rest + 10 : "", &o);
        }
        char seg[32];
        size_t n = strcspn(rest, "/");
        if (n < sizeof(seg)) {
            memcpy(seg, rest, n);
            seg[n] = '\0';
            const struct policy_kind_info *ki = policy_kind_by_path(seg);
            if (ki && ki->kind != STORE_SETTINGS && ki->kind != STORE_EXPORTERS) {
                req->route = ROUTE_ADMIN_OBJECTS;
                const char *id = rest[n] == '/' && rest[n + 1] ? rest + n + 1 : NULL;
                if (rest[n] == '/' && !rest[n + 1])
                    id = NULL;
                return route_objects(req, res, ki->kind, id, &o);
            }
        }
    }
    req->route = ROUTE_NOT_FOUND;
    char msg[300];
    snprintf(msg, sizeof(msg), "No route for %s %.200s", req->method, u);
    res_error(res, ERR_NOTFOUND, msg);
    return 0;
}
