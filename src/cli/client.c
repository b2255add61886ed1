/* cli/client.c — libcurl client of the admin API. One easy handle per client,
 * reset before each request so that no option of an earlier request leaks into
 * the next while the connection is reused. The admin token exists in three
 * places only — `token`, the Authorization header string and libcurl's copy
 * in the header list — and all three are wiped before they are freed. Answers
 * are collected into a buffer capped at CLIENT_MAX_RESPONSE; going over aborts
 * the transfer rather than growing. A stream hands a 2xx body to its callback
 * instead and keeps only an error body. client_fetch() uses a handle of its
 * own, so nothing of the admin requests (token, address) can reach the URL it
 * is given. */
#include "cli/client.h"
#include "core/buf.h"
#include "core/err.h"

#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TOKEN_FILE_MAX 4096

struct client {
    CURL *curl;
    char *addr;
    char *token;
    char errbuf[CURL_ERROR_SIZE];
};

/* What the write callback saw: the answer so far and why it stopped, if it
 * did. With `on_chunk`, a 2xx body goes there instead of into `body`. */
struct sink {
    struct buf body;
    int err;
    CURL *curl;
    client_chunk_fn on_chunk;
    void *userdata;
    int state;     /* streaming: 0 status not seen yet, 1 a 2xx, -1 anything else */
    int truncated; /* streaming: an error body reached its cap */
};

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static void free_secret(char *s)
{
    if (s)
        wipe(s, strlen(s));
    free(s);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Copies s[0..n) without surrounding whitespace. Returns an owned string
 * ("" when all blank) or NULL when out of memory. */
static char *dup_trimmed(const char *s, size_t n)
{
    while (n && is_space(*s)) {
        s++;
        n--;
    }
    while (n && is_space(s[n - 1]))
        n--;
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Reads ./CLIENT_TOKEN_FILE into an owned, trimmed string. ERR_UNAUTH when it
 * does not exist or is empty, ERR_IO when it cannot be read, ERR_TOOBIG. */
static int read_token_file(char **ret)
{
    struct buf b;
    char chunk[512];
    int saved_errno = 0;
    int r = 0;

    buf_init(&b, TOKEN_FILE_MAX);
    FILE *f = fopen(CLIENT_TOKEN_FILE, "re");
    if (!f)
        return errno == ENOENT || errno == ENOTDIR ? ERR_UNAUTH : ERR_IO;
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        r = buf_append(&b, chunk, n);
        if (r < 0)
            goto out;
    }
    if (ferror(f)) {
        saved_errno = errno;
        r = ERR_IO;
        goto out;
    }
    char *tok = dup_trimmed(b.data ? b.data : "", b.len);
    if (!tok) {
        r = ERR_NOMEM;
        goto out;
    }
    if (!*tok) {
        free(tok);
        r = ERR_UNAUTH;
        goto out;
    }
    *ret = tok;
out:
    wipe(chunk, sizeof chunk);
    buf_wipe_done(&b);
    fclose(f);
    if (saved_errno)
        errno = saved_errno; /* for the caller's message */
    return r;
}

/* MCPAUTH_TOKEN if set and not blank, else the token file. */
static int load_token(char **ret)
{
    const char *env = getenv("MCPAUTH_TOKEN");
    if (env) {
        char *tok = dup_trimmed(env, strlen(env));
        if (!tok)
            return ERR_NOMEM;
        if (*tok) {
            *ret = tok;
            return 0;
        }
        free(tok);
    }
    return read_token_file(ret);
}

/* A token goes verbatim into a header line: visible ASCII only (RFC 6750's
 * b64token is narrower still, but the server is the judge of that). */
static int token_valid(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t <= 0x20 || (unsigned char)*t >= 0x7f)
            return 0;
    return 1;
}

int client_new(struct client **ret)
{
    struct client *c = NULL;
    char *token = NULL;
    int r = load_token(&token);
    if (r < 0)
        return r;
    if (!token_valid(token)) {
        r = ERR_INVAL;
        goto fail;
    }

    const char *addr = getenv("MCPAUTH_ADDR");
    if (!addr || !*addr)
        addr = CLIENT_DEFAULT_ADDR;
    c = calloc(1, sizeof *c);
    if (!c) {
        r = ERR_NOMEM;
        goto fail;
    }
    c->addr = strdup(addr);
    if (!c->addr) {
        r = ERR_NOMEM;
        goto fail;
    }
    for (size_t n = strlen(c->addr); n > 0 && c->addr[n - 1] == '/'; n--)
        c->addr[n - 1] = '\0';

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        r = ERR_INTERNAL;
        goto fail;
    }
    c->curl = curl_easy_init();
    if (!c->curl) {
        curl_global_cleanup();
        r = ERR_INTERNAL;
        goto fail;
    }
    c->token = token;
    *ret = c;
    return 0;

fail:
    free_secret(token);
    if (c)
        free(c->addr);
    free(c);
    return r;
}

struct client *client_free(struct client *c)
{
    if (!c)
        return NULL;
    curl_easy_cleanup(c->curl);
    curl_global_cleanup();
    free_secret(c->token);
    free(c->addr);
    free(c);
    return NULL;
}

const char *client_addr(const struct client *c)
{
    return c->addr;
}

const char *client_error(const struct client *c)
{
    return c->errbuf;
}

char *client_escape(struct client *c, const char *s)
{
    char *e = curl_easy_escape(c->curl, s, 0);
    if (!e)
        return NULL;
    char *d = strdup(e);
    curl_free(e);
    return d;
}

void client_response_done(struct client_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *userdata)
{
    struct sink *s = userdata;
    int r;

    if (s->on_chunk && s->state == 0) {
        long status = 0;
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
        s->state = status >= 200 && status <= 299 ? 1 : -1;
    }
    if (s->state == 1) {
        r = s->on_chunk(p, size * n, s->userdata);
        if (r < 0) {
            s->err = r;
            return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
        }
        return size * n;
    }
    r = buf_append(&s->body, p, size * n);
    if (r == ERR_TOOBIG && s->on_chunk) {
        s->truncated = 1; /* the start of an error body is enough for the message */
        return 0;
    }
    if (r < 0) {
        s->err = r;
        return 0;
    }
    return size * n;
}

/* Frees a header list, wiping each line first: one of them holds the token. */
static void free_headers(struct curl_slist *h)
{
    for (struct curl_slist *l = h; l; l = l->next)
        if (l->data)
            wipe(l->data, strlen(l->data));
    curl_slist_free_all(h);
}

static struct curl_slist *add_header(struct curl_slist *h, const char *line, int *r)
{
    if (*r < 0)
        return h;
    struct curl_slist *n = curl_slist_append(h, line);
    if (!n) {
        *r = ERR_NOMEM;
        return h;
    }
    return n;
}

static int build_headers(const struct client *c, const char *content_type, struct curl_slist **ret)
{
    struct curl_slist *h = NULL;
    struct buf line;
    int r = 0;

    buf_init(&line, 0);
    r = buf_printf(&line, "Authorization: Bearer %s", c->token);
    h = add_header(h, line.data, &r);
    buf_wipe_done(&line);

    h = add_header(h, "Accept: application/json", &r);
    /* Without a type, libcurl would label a POST body as a form. */
    buf_init(&line, 0);
    if (r == 0)
        r = content_type ? buf_printf(&line, "Content-Type: %s", content_type)
                         : buf_puts(&line, "Content-Type:");
    h = add_header(h, line.data, &r);
    buf_done(&line);
    /* Bodies are small; a 100-continue round trip would only add latency. */
    h = add_header(h, "Expect:", &r);
    if (r < 0) {
        free_headers(h);
        return r;
    }
    *ret = h;
    return 0;
}

/* Maps the outcome of curl_easy_perform; fills errbuf for transport failures. */
static int perform(CURL *h, struct sink *sink, char *errbuf)
{
    CURLcode cr = curl_easy_perform(h);
    if (cr == CURLE_WRITE_ERROR && sink->err < 0)
        return sink->err;
    if (cr == CURLE_WRITE_ERROR && sink->truncated)
        return 0;
    if (cr == CURLE_FILESIZE_EXCEEDED)
        return ERR_TOOBIG;
    if (cr == CURLE_OUT_OF_MEMORY)
        return ERR_NOMEM;
    if (cr != CURLE_OK) {
        if (!errbuf[0])
            snprintf(errbuf, CURL_ERROR_SIZE, "%s", curl_easy_strerror(cr));
        return ERR_IO;
    }
    return 0;
}

/* Moves the collected answer into *ret. */
static int answer(CURL *h, struct sink *sink, struct client_response *ret)
{
    long status = 0;
    size_t len = 0;

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    char *data = buf_take(&sink->body, &len);
    if (!data)
        return ERR_NOMEM;
    ret->status = status;
    ret->body = data;
    ret->len = len;
    return 0;
}

/* One request to the admin API: options set on the reset handle, performed,
 * the answer (and the wanted header) handed over. `sink` decides where the
 * body goes and how large it may be. */
static int admin_request(struct client *c, const char *method, const char *path,
                         const char *content_type, const char *body, size_t body_len,
                         struct sink *sink, const char *want_header, char **ret_header_value,
                         struct client_response *ret)
{
    struct curl_slist *headers = NULL;
    struct buf url;
    CURL *h = c->curl;
    char *value = NULL;
    int r;

    buf_init(&url, 0);
    c->errbuf[0] = '\0';
    sink->curl = h;
    r = buf_printf(&url, "%s%s", c->addr, path);
    if (r < 0)
        goto out;
    r = build_headers(c, content_type, &headers);
    if (r < 0)
        goto out;

    curl_easy_reset(h);
    /* The return codes of setopt are not checked one by one: with valid
     * constants they can only fail for lack of memory, which perform reports. */
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (sink->on_chunk) {
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CLIENT_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, CLIENT_STALL_S);
    } else {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, CLIENT_TIMEOUT_S);
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CLIENT_MAX_RESPONSE);
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, sink);
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
            strcmp(method, "PATCH") == 0) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        }
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    }

    r = perform(h, sink, c->errbuf);
    if (r < 0)
        goto out;
    if (want_header) {
        struct curl_header *hdr = NULL;
        if (curl_easy_header(h, want_header, 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK) {
            value = strdup(hdr->value);
            if (!value) {
                r = ERR_NOMEM;
                goto out;
            }
        }
    }
    r = answer(h, sink, ret);
    if (r < 0)
        goto out;
    if (ret_header_value) {
        *ret_header_value = value;
        value = NULL;
    }
out:
    /* The handle keeps pointers to the list and the sink: drop them first. */
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    free_headers(headers);
    free(value);
    buf_done(&url);
    return r;
}

int client_request_h(struct client *c, const char *method, const char *path,
                     const char *content_type, const char *body, size_t body_len,
                     const char *want_header, char **ret_header_value, struct client_response *ret)
{
    struct sink sink = {.err = 0};

    assert(!want_header || ret_header_value);
    buf_init(&sink.body, CLIENT_MAX_RESPONSE);
    int r = admin_request(c, method, path, content_type, body, body_len, &sink, want_header,
                          ret_header_value, ret);
    buf_done(&sink.body);
    return r;
}

int client_request(struct client *c, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, struct client_response *ret)
{
    return client_request_h(c, method, path, content_type, body, body_len, NULL, NULL, ret);
}

int client_stream(struct client *c, const char *path, client_chunk_fn on_chunk, void *userdata,
                  struct client_response *ret)
{
    struct sink sink = {.on_chunk = on_chunk, .userdata = userdata};

    assert(on_chunk);
    buf_init(&sink.body, CLIENT_MAX_ERROR_BODY);
    int r = admin_request(c, "GET", path, NULL, NULL, 0, &sink, NULL, NULL, ret);
    buf_done(&sink.body);
    return r;
}

int client_fetch(const char *url, long timeout_s, size_t max, struct client_response *ret,
                 char *errbuf, size_t errlen)
{
    struct sink sink = {.err = 0};
    char cerr[CURL_ERROR_SIZE] = "";
    CURL *h = NULL;
    int r;

    if (errbuf && errlen)
        errbuf[0] = '\0';
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
        return ERR_INVAL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ERR_INTERNAL;
    h = curl_easy_init();
    if (!h) {
        curl_global_cleanup();
        return ERR_INTERNAL;
    }
    buf_init(&sink.body, max);
    sink.curl = h;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, 3L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    r = perform(h, &sink, cerr);
    if (r == 0)
        r = answer(h, &sink, ret);
    if (r == ERR_IO && errbuf && errlen)
        snprintf(errbuf, errlen, "%s", cerr);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    buf_done(&sink.body);
    return r;
}
