/* http/ui.c — GET /ui/ and /ui/<file>: the web console's static files,
 * embedded in the binary (http/ui_assets.h). Only assets are public: the
 * console holds no data and reads everything through the admin API with the
 * admin token in an Authorization header. Every answer here carries a strict
 * Content-Security-Policy (same-origin scripts, styles and connections, no
 * inline code, no framing), so text that reaches the page from the log can
 * never run as script even if it slipped into markup. */
#include "http/http_priv.h"
#include "http/ui_assets.h"

#include <stdlib.h>
#include <string.h>

#define UI_CSP                                                                                     \
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; "             \
    "script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

static void security_headers(struct http_response *res)
{
    res_header(res, "Content-Security-Policy", UI_CSP);
    res_header(res, "Referrer-Policy", "no-referrer");
    res_header(res, "X-Frame-Options", "DENY");
    /* Cache-Control: no-store and nosniff come with every answer (server.c) */
}

static const struct ui_asset *asset_find(const char *name)
{
    for (const struct ui_asset *a = ui_assets; a->path; a++)
        if (strcmp(a->path, name) == 0)
            return a;
    return NULL;
}

int route_ui(struct http_request *req, struct http_response *res)
{
    const char *u = req->url;
    security_headers(res);
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0)
        return method_not_allowed(res, "GET");
    if (strcmp(u, "/ui") == 0) {
        res_header(res, "Location", "/ui/");
        return res_text(res, 308, "text/plain; charset=utf-8", strdup("/ui/\n"), 5);
    }
    const char *name = u + 4; /* after "/ui/" */
    const struct ui_asset *a = asset_find(*name ? name : "index.html");
    if (!a)
        return res_error(res, ERR_NOTFOUND, "No such file in the web console");
    char *body = malloc(a->len ? a->len : 1);
    if (!body)
        return res_error(res, ERR_NOMEM, NULL);
    memcpy(body, a->data, a->len);
    return res_text(res, 200, a->content_type, body, a->len);
}
