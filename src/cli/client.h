/* cli/client.h — the small HTTP client behind the client subcommands: one
 * request at a time to the admin API of a running server, authenticated with
 * the admin token as a Bearer credential. The token never leaves this module
 * except in the Authorization header, and is wiped before it is freed. Every
 * request has a 10 s deadline and an answer is capped at 64 MiB, so a broken
 * or hostile server can neither hang nor exhaust the CLI; a download
 * (client_stream) is instead handed over piece by piece and ends when it
 * stalls. Private to cli/; not thread-safe (one client per thread). */
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

/* client_request() that also reads one header of the answer: on success
 * *ret_header_value is an owned copy (free()) of the value of the header named
 * `want_header` (case-insensitive; the first one when repeated), or NULL when
 * the answer has none. Otherwise the same contract, *ret_header_value
 * included in what is untouched on failure. */
int client_request_h(struct client *c, const char *method, const char *path,
                     const char *content_type, const char *body, size_t body_len,
                     const char *want_header, char **ret_header_value, struct client_response *ret);

#define CLIENT_STALL_S        60L
#define CLIENT_MAX_ERROR_BODY (64u * 1024)

/* Receives the body of a 2xx answer piece by piece, as it arrives. Returns 0
 * to go on, or a negative ERR_* to stop the transfer (client_stream() then
 * returns that code). */
typedef int (*client_chunk_fn)(const char *data, size_t len, void *userdata);

/* GET `path` like client_request(), but the body of a 2xx answer goes to
 * `on_chunk` as it arrives instead of into memory, so a download of any size
 * takes constant memory. There is no overall deadline: connecting has
 * CLIENT_TIMEOUT_S, and the transfer fails after CLIENT_STALL_S without a
 * byte. For any other status on_chunk is never called and the body (its first
 * CLIENT_MAX_ERROR_BODY bytes) lands in ret->body for the message; on a 2xx
 * ret->body is "". Returns 0 and fills *ret, the code on_chunk returned,
 * ERR_IO (client_error() says why) or ERR_NOMEM; *ret is untouched on failure. */
int client_stream(struct client *c, const char *path, client_chunk_fn on_chunk, void *userdata,
                  struct client_response *ret);

/* Fetches a public document (such as a JWK Set) from `url`, http or https
 * only, with no credential: the admin token is never sent there. At most 3
 * redirects are followed, to http(s) only; `timeout_s` bounds the whole
 * transfer and `max` the answer. Needs no struct client. Any HTTP status counts
 * as an answer: returns 0 and fills *ret (free with client_response_done).
 * Returns ERR_INVAL when the URL is not http(s), ERR_TOOBIG past `max`, ERR_IO
 * with libcurl's reason copied into errbuf (errlen bytes; may be NULL),
 * ERR_INTERNAL or ERR_NOMEM; *ret is untouched on failure. */
int client_fetch(const char *url, long timeout_s, size_t max, struct client_response *ret,
                 char *errbuf, size_t errlen);

/* libcurl's description of the last transport failure ("" if none). Borrowed. */
const char *client_error(const struct client *c);

/* Percent-escapes `s` for use as one path segment (curl_easy_escape: every
 * byte but ALPHA / DIGIT / "-._~"). Returns an owned string (free with free())
 * or NULL when out of memory. */
char *client_escape(struct client *c, const char *s);
