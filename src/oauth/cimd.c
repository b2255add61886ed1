/* oauth/cimd.c — client ID metadata documents (draft-ietf-oauth-client-id-
 * metadata-document, MCP 2025-11-25): a client_id that is a URL is fetched, and
 * the JSON document there (whose client_id must be that very URL) gives the
 * client's redirect URIs. Such a client is public (auth none, authorization_code).
 *
 * The fetch is the one place where a stranger picks a URL mcpauth connects to,
 * so it is guarded (SSRF):
 *  - https:// only; http:// only to a loopback address, and only in --dev;
 *  - the host is resolved here, and every address it resolves to must be public
 *    (not loopback — except in --dev —, private, link-local, multicast,
 *    unspecified or reserved, IPv4-mapped and NAT64 forms included);
 *  - libcurl connects to the address checked (CURLOPT_RESOLVE pins it), so a
 *    second DNS answer (rebinding) cannot redirect the connection, and no proxy
 *    is used (a proxy would resolve the name again);
 *  - no redirects, CIMD_TIMEOUT_MS, at most CIMD_MAX_BYTES.
 * Documents are cached CIMD_TTL seconds, failures CIMD_FAIL_TTL seconds (so a
 * flood of authorize requests naming one URL costs one fetch), at most
 * CIMD_MAX_ENTRIES URLs (least recently fetched evicted). */
#include "oauth/oauth_priv.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#ifndef MCPAUTH_VERSION
#define MCPAUTH_VERSION "unknown"
#endif

#define CIMD_FAIL_TTL 30
#define CIMD_MAX_ENTRIES 256
#define CIMD_MAX_URL 2048

struct cimd_entry {
    char *url;
    json_t *doc; /* NULL when the fetch failed */
    char why[300];
    int64_t fetched;
    struct cimd_entry *next;
};

struct cimd_cache {
    pthread_mutex_t mu;
    struct cimd_entry *head;
    size_t n;
};

static int64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

int cimd_cache_new(struct cimd_cache **ret)
{
    struct cimd_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    pthread_mutex_init(&c->mu, NULL);
    *ret = c;
    return 0;
}

static void entry_free(struct cimd_entry *e)
{
    if (!e)
        return;
    free(e->url);
    json_decref(e->doc);
    free(e);
}

struct cimd_cache *cimd_cache_free(struct cimd_cache *c)
{
    if (!c)
        return NULL;
    for (struct cimd_entry *e = c->head, *n; e; e = n) {
        n = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    (void)size;
    return buf_append(arg, p, n) < 0 ? 0 : n;
}

/* The document's checks: a JSON object, client_id = the URL, redirect URIs allowed,
 * a public client of the authorization_code grant. */
static int validate(const char *url, json_t *doc, char *why, size_t n)
{
    if (!json_is_object(doc)) {
        snprintf(why, n, "the client metadata document is not a JSON object");
        return ERR_INVAL;
    }
    const char *cid = json_string_value(json_object_get(doc, "client_id"));
    if (!cid || strcmp(cid, url) != 0) {
        snprintf(why, n, "the client metadata document's client_id is not its URL");
        return ERR_INVAL;
    }
    const json_t *uris = json_object_get(doc, "redirect_uris");
    if (!json_is_array(uris) || json_array_size(uris) == 0 ||
        json_array_size(uris) > CIMD_MAX_REDIRECT_URIS) {
        snprintf(why, n, "the client metadata document needs 1 to %d redirect_uris",
                 CIMD_MAX_REDIRECT_URIS);
        return ERR_INVAL;
    }
    size_t i;
    const json_t *u;
    json_array_foreach(uris, i, u)
    {
        if (!redirect_uri_allowed(json_string_value(u))) {
            snprintf(why, n, "the client metadata document's redirect_uris[%zu] is not allowed "
                             "(https://, or http:// to a loopback host)",
                     i);
            return ERR_INVAL;
        }
    }
    const char *m = json_string_value(json_object_get(doc, "token_endpoint_auth_method"));
    if (json_object_get(doc, "token_endpoint_auth_method") && (!m || strcmp(m, "none") != 0)) {
        snprintf(why, n, "only public clients (token_endpoint_auth_method none) may use a "
                         "client metadata document here");
        return ERR_INVAL;
    }
    const json_t *gts = json_object_get(doc, "grant_types");
    if (gts) {
        int has = 0;
        json_array_foreach(gts, i, u) has |= json_is_string(u) &&
                                             strcmp(json_string_value(u), "authorization_code") == 0;
        if (!has) {
            snprintf(why, n, "the client metadata document's grant_types lack authorization_code");
            return ERR_INVAL;
        }
    }
    const json_t *name = json_object_get(doc, "client_name");
    if (name && (!json_is_string(name) || json_string_length(name) > 1024)) {
        snprintf(why, n, "the client metadata document's client_name is not a short string");
        return ERR_INVAL;
    }
    return 0;
}

/* Resolves host:port and checks every address; writes the first into `pin` as
 * CURLOPT_RESOLVE wants it ("host:port:addr"). */
static int resolve_checked(const char *host, const char *port, int allow_loopback,
                           int loopback_only, char *pin, size_t pin_len, char *why, size_t n)
{
    char bare[300];
    size_t hl = strlen(host);
    if (hl >= sizeof(bare)) {
        snprintf(why, n, "host name too long");
        return ERR_INVAL;
    }
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = '\0';
    } else {
        memcpy(bare, host, hl + 1);
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int g = getaddrinfo(bare, port, &hints, &ai);
    if (g != 0) {
        snprintf(why, n, "host %.200s does not resolve: %s", bare, gai_strerror(g));
        return ERR_IO;
    }
    int r = ERR_INVAL;
    char first[INET6_ADDRSTRLEN] = "";
    int first_v6 = 0;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        enum net_class c = net_classify(a->ai_addr);
        char text[INET6_ADDRSTRLEN] = "?";
        const void *src = a->ai_family == AF_INET
                              ? (const void *)&((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr
                              : (const void *)&((struct sockaddr_in6 *)(void *)a->ai_addr)->sin6_addr;
        inet_ntop(a->ai_family, src, text, sizeof(text));
        if (loopback_only && c != NET_LOOPBACK) {
            snprintf(why, n, "client_id URL: http:// is allowed only to a loopback host (%.200s "
                             "resolves to %s)",
                     bare, text);
            r = ERR_INVAL;
            goto out;
        }
        if (!(c == NET_PUBLIC || (c == NET_LOOPBACK && allow_loopback))) {
            snprintf(why, n, "host %.200s resolves to %s, a %s address: refused (SSRF guard)",
                     bare, text, net_class_name(c));
            r = ERR_INVAL;
            goto out;
        }
        if (!first[0]) {
            memcpy(first, text, sizeof(first));
            first_v6 = a->ai_family == AF_INET6;
        }
    }
    if (!first[0]) {
        snprintf(why, n, "host %.200s has no IPv4 or IPv6 address", bare);
        r = ERR_IO;
        goto out;
    }
    snprintf(pin, pin_len, "%s:%s:%s%s%s", bare, port, first_v6 ? "[" : "", first,
             first_v6 ? "]" : "");
    r = 0;
out:
    freeaddrinfo(ai);
    return r;
}

static int fetch(const char *url, int dev, json_t **ret, char *why, size_t n)
{
    CURLU *u = curl_url();
    CURL *h = NULL;
    struct curl_slist *resolve = NULL, *headers = NULL;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *user = NULL, *frag = NULL;
    struct buf body;
    buf_init(&body, CIMD_MAX_BYTES);
    int r = ERR_INVAL;
    if (!u || strlen(url) > CIMD_MAX_URL ||
        curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        snprintf(why, n, "client_id is not a valid URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
        snprintf(why, n, "client_id URL must have no user name and no fragment");
        goto out;
    }
    if (strcmp(path, "/") == 0) {
        snprintf(why, n, "client_id URL must have a path");
        goto out;
    }
    int is_https = strcmp(scheme, "https") == 0;
    if (!is_https && !(strcmp(scheme, "http") == 0 && dev)) {
        snprintf(why, n, "client_id URL must be https://%s",
                 dev ? " (http:// only to loopback)" : "");
        goto out;
    }
    char pin[400];
    r = resolve_checked(host, port, dev, !is_https, pin, sizeof(pin), why, n);
    if (r < 0)
        goto out;
    r = ERR_NOMEM;
    resolve = curl_slist_append(NULL, pin);
    headers = curl_slist_append(NULL, "Accept: application/json");
    h = curl_easy_init();
    if (!resolve || !headers || !h) {
        snprintf(why, n, "out of memory");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_CURLU, u);
    curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, is_https ? "https" : "http");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)CIMD_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CIMD_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)CIMD_MAX_BYTES);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    CURLcode cr = curl_easy_perform(h);
    if (cr == CURLE_WRITE_ERROR || cr == CURLE_FILESIZE_EXCEEDED) {
        snprintf(why, n, "the client metadata document is larger than %d bytes", CIMD_MAX_BYTES);
        r = ERR_TOOBIG;
        goto out;
    }
    if (cr != CURLE_OK) {
        snprintf(why, n, "fetching the client metadata document failed: %s",
                 errbuf[0] ? errbuf : curl_easy_strerror(cr));
        r = ERR_IO;
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        snprintf(why, n, "the client metadata document answered HTTP %ld%s", status,
                 status >= 300 && status < 400 ? " (redirects are not followed)" : "");
        r = ERR_IO;
        goto out;
    }
    json_t *doc = json_loadb(body.data ? body.data : "", body.len, JSON_REJECT_DUPLICATES, NULL);
    if (!doc) {
        snprintf(why, n, "the client metadata document is not valid JSON");
        r = ERR_INVAL;
        goto out;
    }
    r = validate(url, doc, why, n);
    if (r < 0) {
        json_decref(doc);
        goto out;
    }
    *ret = doc;
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(resolve);
    curl_slist_free_all(headers);
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(user);
    curl_free(frag);
    curl_url_cleanup(u);
    buf_done(&body);
    return r;
}

/* The document for `url`: from the cache while fresh, else fetched (outside the lock;
 * two concurrent first requests may both fetch, which the failure TTL keeps rare). */
static int get_doc(struct oauth *o, const char *url, json_t **ret, char *why, size_t n)
{
    struct cimd_cache *c = o->cimd;
    int64_t now = mono_now();
    pthread_mutex_lock(&c->mu);
    for (struct cimd_entry *e = c->head; e; e = e->next) {
        if (strcmp(e->url, url) != 0)
            continue;
        if (now - e->fetched < (e->doc ? CIMD_TTL : CIMD_FAIL_TTL)) {
            int r = 0;
            if (e->doc)
                *ret = json_incref(e->doc);
            else {
                snprintf(why, n, "%s", e->why);
                r = ERR_INVAL;
            }
            pthread_mutex_unlock(&c->mu);
            return r;
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);

    json_t *doc = NULL;
    int r = fetch(url, o->cfg.dev, &doc, why, n);
    struct cimd_entry *ne = calloc(1, sizeof(*ne));
    if (ne && !(ne->url = strdup(url))) {
        free(ne);
        ne = NULL;
    }
    if (ne) {
        ne->doc = doc ? json_incref(doc) : NULL;
        ne->fetched = now;
        snprintf(ne->why, sizeof(ne->why), "%s", r < 0 ? why : "");
        pthread_mutex_lock(&c->mu);
        /* drop the old entry for this URL, and the oldest when full */
        struct cimd_entry **pp = &c->head;
        while (*pp) {
            if (strcmp((*pp)->url, url) == 0) {
                struct cimd_entry *old = *pp;
                *pp = old->next;
                entry_free(old);
                c->n--;
                continue;
            }
            pp = &(*pp)->next;
        }
        if (c->n >= CIMD_MAX_ENTRIES) {
            struct cimd_entry **oldest = &c->head;
            for (pp = &c->head; *pp; pp = &(*pp)->next)
                if ((*pp)->fetched < (*oldest)->fetched)
                    oldest = pp;
            struct cimd_entry *old = *oldest;
            *oldest = old->next;
            entry_free(old);
            c->n--;
        }
        ne->next = c->head;
        c->head = ne;
        c->n++;
        pthread_mutex_unlock(&c->mu);
    }
    if (r < 0)
        return r;
    *ret = doc;
    return 0;
}

int cimd_client(struct oauth *o, const char *url, struct policy_client *ret,
                const char **uris, json_t **ret_doc, char *why, size_t n)
{
    json_t *doc = NULL;
    int r = get_doc(o, url, &doc, why, n);
    if (r < 0)
        return r;
    memset(ret, 0, sizeof(*ret));
    ret->id = json_string_value(json_object_get(doc, "client_id"));
    ret->name = json_string_value(json_object_get(doc, "client_name"));
    if (!ret->name)
        ret->name = ret->id;
    ret->auth = POLICY_AUTH_NONE;
    ret->grant_types = POLICY_GT_AUTHORIZATION_CODE;
    ret->metadata_document = true;
    size_t i;
    const json_t *u;
    json_array_foreach(json_object_get(doc, "redirect_uris"), i, u)
    {
        if (i >= CIMD_MAX_REDIRECT_URIS)
            break;
        uris[i] = json_string_value(u);
        ret->n_redirect_uris = i + 1;
    }
    ret->redirect_uris = uris;
    *ret_doc = doc;
    return 0;
}
