/* cli/client.h — the small HTTP client behind the client subcommands: one
 * request at a time to the admin API of a running server, authenticated with
 * the admin token as a Bearer credential. The token never leaves this module
 * except in the Authorization header, and is wiped before it is freed. Every
 * request has a 10 s deadline and an answer is capped at 64 MiB, so a broken
 * or hostile server can neither hang nor exhaust the CLI. Private to cli/;
 * not thread-safe (one client per thread). */
#pragma once
#include <stddef.h>

#define CLIENT_DEFAULT_ADDR "http://127.0.0.1:8080"
#define CLIENT_TOKEN_FILE   "var/admin.token"
#define CLIENT_TIMEOUT_S    10L
#define CLIENT_MAX_RESPONSE (64u * 1024 * 1024)

struct client;

/* An HTTP answer. `body` is owned, NUL-terminated (not counted in len) and
 * never NULL after a successful client_request(). */
struct client_response {
    long status;
    char *body;
    size_t len;
};

/* Reads the address from MCPAUTH_ADDR (default CLIENT_DEFAULT_ADDR, trailing
 * slashes dropped) and the admin token from MCPAUTH_TOKEN or else from
 * ./CLIENT_TOKEN_FILE, trimmed of surrounding whitespace. Returns 0 and an
 * owned *ret, or ERR_UNAUTH when there is no token, ERR_INVAL when the token
 * holds characters that cannot go into an HTTP header, ERR_IO (errno set)
 * when the token file exists but cannot be read, ERR_TOOBIG when it is larger
 * than a token can be, ERR_INTERNAL when libcurl cannot start, or ERR_NOMEM;
 * *ret is untouched on failure. */
int client_new(struct client **ret);
struct client *client_free(struct client *c); /* NULL-safe; returns NULL */

/* The server address in use (for messages). Borrowed from `c`. */
const char *client_addr(const struct client *c);

/* Sends `method` to the server's `path` (starting with "/", already escaped)
 * with `body` (may be NULL when body_len is 0) under `content_type` (may be
 * NULL: no Content-Type). Redirects are not followed, so the token only ever
 * goes to the configured address. Any HTTP status counts as an answer: returns
 * 0 and fills *ret (free with client_response_done). Returns ERR_IO when the
 * server could not be reached or did not answer in time (client_error() says
 * why), ERR_TOOBIG when the answer is larger than CLIENT_MAX_RESPONSE,
 * ERR_NOMEM; *ret is untouched on failure. */
int client_request(struct client *c, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, struct client_response *ret);
void client_response_done(struct client_response *r); /* NULL-safe, idempotent */

/* libcurl's description of the last transport failure ("" if none). Borrowed. */
const char *client_error(const struct client *c);

/* Percent-escapes `s` for use as one path segment (curl_easy_escape: every
 * byte but ALPHA / DIGIT / "-._~"). Returns an owned string (free with free())
 * or NULL when out of memory. */
char *client_escape(struct client *c, const char *s);
