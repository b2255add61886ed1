/* export/sink_http.c — the http sink: one POST per batch to a webhook, a Splunk
 * HTTP Event Collector, Loki's push API or Elasticsearch's _bulk API.
 *
 * Workload: one exporter worker calls send() with batches of up to 10,000 encoded
 * events. One libcurl easy handle lives as long as the sink, so the connection (and
 * its TLS session) is reused between batches; libcurl reconnects by itself after a
 * failure. Every transfer is bounded by cfg->timeout_ms, redirects are never
 * followed and at most 64 KiB of a response is read.
 *
 * The invariant: a record counts as settled only when the receiver said so. A 2xx
 * settles the batch (for Elasticsearch, each item's own status does); 408, 429,
 * 5xx, a redirect, 401/403/404/405/407 (the receiver or our credentials are
 * misconfigured, not the record) and every connection failure settle nothing and
 * return ERR_IO. Any other 4xx is taken to be about the content: the batch is
 * sent again one record at a time inside the same call, so a single poison record
 * goes to the dead-letter table (rejected[i] = 1) without holding back the others.
 *
 * Loki streams carry only the configured labels (default {"job":"mcpauth"}): no
 * per-record label is added, so the stream count never grows with event types;
 * the type is in the line (LogQL `| json | type="token.request"`). Entries are
 * sent in timestamp order, as Loki wants within a stream.
 *
 * Secrets (token, HMAC secret, password) are kept in memory wiped on close, never
 * copied into res->error; a response body quoted in an error is dropped if it
 * contains one of them. */
#include "export/sink.h"
#include "core/buf.h"
#include "core/timeutil.h"
#include "jose/crypto.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RESP_MAX              (64 * 1024)
#define ELASTIC_DEFAULT_INDEX "mcpauth-audit"
/* Keep the _bulk answer small: per item only what settles it (RESP_MAX caps it). */
#define ELASTIC_FILTER "filter_path=errors,items.*.status,items.*.error.type,items.*.error.reason"

enum profile { P_WEBHOOK, P_SPLUNK_HEC, P_LOKI, P_ELASTIC };

/* What one request said about the records it carried. */
enum verdict {
    V_OK,     /* all delivered */
    V_RETRY,  /* none settled; try later (error set) */
    V_REJECT, /* refused for its content (error set) */
    V_SPLIT,  /* elastic: a per-item answer we could not read; try one by one */
    V_ITEMS,  /* elastic: per-item statuses in s->items */
};

struct sink {
    enum profile profile;
    enum audit_format format;
    CURL *h;
    struct curl_slist *connect_to; /* tls.server_name: connect to the URL's host */
    char *auth_header;             /* "Authorization: Bearer|Splunk TOKEN", wiped */
    const char *token;             /* inside auth_header */
    char *username, *password;     /* basic auth when no token, wiped */
    char *hmac_secret;             /* webhook signature key, wiped */
    char hostname[256];            /* splunk_hec "host" */
    char *index;                   /* splunk_hec / elastic */
    char *labels;                  /* loki: the stream's labels as compact JSON */
    struct buf body;
    struct buf resp;
    int resp_truncated;
    json_t *items; /* elastic: the parsed response, owned while V_ITEMS is handled */
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result = CURLE_FAILED_INIT;

/* The program initialises libcurl at start; this guards embedders and tests. Never
 * undone: curl_global_cleanup belongs to whoever owns the process. */
static void init_curl(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_secret(char *s)
{
    if (s) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

static void slist_wipe_free(struct curl_slist *l)
{
    for (struct curl_slist *p = l; p; p = p->next)
        if (p->data)
            crypto_wipe(p->data, strlen(p->data));
    curl_slist_free_all(l);
}

static void close_(struct sink *s)
{
    if (!s)
        return;
    if (s->h)
        curl_easy_cleanup(s->h);
    curl_slist_free_all(s->connect_to);
    free_secret(s->auth_header);
    free_secret(s->username);
    free_secret(s->password);
    free_secret(s->hmac_secret);
    free(s->index);
    free(s->labels);
    buf_done(&s->body);
    buf_done(&s->resp);
    json_decref(s->items);
    free(s);
}

/* ---- JSON text helpers (the bodies are assembled as text: the records already are) ---- */

static int put_json_str(struct buf *b, const char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int r = buf_append(b, "\"", 1);
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; r == 0 && i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        r = buf_append(b, p + run, i - run);
        run = i + 1;
        if (r < 0)
            break;
        char esc[7] = {'\\', (char)c, 0};
        if (c == '\n')
            esc[1] = 'n';
        else if (c == '\r')
            esc[1] = 'r';
        else if (c == '\t')
            esc[1] = 't';
        else if (c < 0x20)
            snprintf(esc, sizeof(esc), "\\u00%c%c", hex[c >> 4], hex[c & 15]);
        r = buf_puts(b, esc);
    }
    if (r == 0)
        r = buf_append(b, p + run, n - run);
    return r ? r : buf_append(b, "\"", 1);
}

static int put_json_cstr(struct buf *b, const char *s)
{
    return put_json_str(b, s, strlen(s));
}

static int64_t record_us(const struct export_record *rec)
{
    int64_t us = 0;
    if (rec->time && time_parse_rfc3339(rec->time, &us) == 0 && us >= 0)
        return us;
    return time_now_us();
}

static int is_json_format(enum audit_format f)
{
    return f == AUDIT_FMT_JSON || f == AUDIT_FMT_OCSF;
}

/* ---- bodies ---- */

static int body_webhook(struct sink *s, const struct export_record *rec, size_t n)
{
    const char *term = audit_format_terminator(s->format);
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++)
        if ((r = buf_append(&s->body, rec[i].data, rec[i].len)) == 0)
            r = buf_puts(&s->body, term ? term : "\n");
    return r;
}

static int body_hec(struct sink *s, const struct export_record *rec, size_t n)
{
    struct buf *b = &s->body;
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        int64_t us = record_us(&rec[i]);
        r = buf_printf(b, "{\"time\":%lld.%03d,\"host\":", (long long)(us / 1000000),
                       (int)(us % 1000000 / 1000));
        if (r == 0)
            r = put_json_cstr(b, s->hostname);
        if (r == 0)
            r = buf_puts(b, ",\"source\":\"mcpauth\",\"sourcetype\":\"mcpauth:audit\"");
        if (r == 0 && s->index && (r = buf_puts(b, ",\"index\":")) == 0)
            r = put_json_cstr(b, s->index);
        if (r == 0)
            r = buf_puts(b, ",\"fields\":{\"event_id\":");
        if (r == 0)
            r = put_json_cstr(b, rec[i].id ? rec[i].id : "");
        if (r == 0)
            r = buf_puts(b, "},\"event\":");
        /* json/ocsf records are one JSON object each (audit/encode.c): embedded as is */
        if (r == 0) {
            if (is_json_format(s->format) && rec[i].len && rec[i].data[0] == '{')
                r = buf_append(b, rec[i].data, rec[i].len);
            else
                r = put_json_str(b, rec[i].data, rec[i].len);
        }
        if (r == 0)
            r = buf_puts(b, "}\n");
    }
    return r;
}

struct stamped {
    int64_t ns;
    size_t i;
};

static int by_time(const void *a, const void *b)
{
    const struct stamped *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: seq order among equals */
}

static int body_loki(struct sink *s, const struct export_record *rec, size_t n)
{
    struct stamped *order = calloc(n, sizeof(*order));
    if (!order)
        return ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        order[i] = (struct stamped){record_us(&rec[i]) * 1000, i};
    qsort(order, n, sizeof(*order), by_time);
    struct buf *b = &s->body;
    int r = buf_printf(b, "{\"streams\":[{\"stream\":%s,\"values\":[", s->labels);
    for (size_t k = 0; r == 0 && k < n; k++) {
        const struct export_record *x = &rec[order[k].i];
        r = buf_printf(b, "%s[\"%lld\",", k ? "," : "", (long long)order[k].ns);
        if (r == 0)
            r = put_json_str(b, x->data, x->len);
        if (r == 0)
            r = buf_puts(b, "]");
    }
    if (r == 0)
        r = buf_puts(b, "]}]}");
    free(order);
    return r;
}

static int body_elastic(struct sink *s, const struct export_record *rec, size_t n)
{
    struct buf *b = &s->body;
    int r = 0;
    for (size_t i = 0; r == 0 && i < n; i++) {
        r = buf_puts(b, "{\"create\":{\"_index\":");
        if (r == 0)
            r = put_json_cstr(b, s->index);
        if (r == 0)
            r = buf_puts(b, ",\"_id\":");
        if (r == 0)
            r = put_json_cstr(b, rec[i].id ? rec[i].id : "");
        if (r == 0)
            r = buf_puts(b, "}}\n");
        if (r == 0)
            r = buf_append(b, rec[i].data, rec[i].len);
        if (r == 0)
            r = buf_puts(b, "\n");
    }
    return r;
}

static const char *content_type(const struct sink *s)
{
    if (s->profile == P_WEBHOOK) {
        const char *ct = audit_format_content_type(s->format);
        return ct ? ct : "application/octet-stream";
    }
    if (s->profile == P_ELASTIC)
        return "application/x-ndjson";
    return "application/json";
}

/* ---- one request ---- */

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (buf_append(&s->resp, p, n) == 0)
        return n;
    (void)buf_append(&s->resp, p, s->resp.max - s->resp.len);
    s->resp_truncated = 1;
    return 0; /* stop reading: libcurl aborts the transfer with CURLE_WRITE_ERROR */
}

/* Up to ~100 printable bytes of the response for an error message, or "" when
 * the response quotes one of our secrets. */
static void snippet(const struct sink *s, char *out, size_t n)
{
    out[0] = '\0';
    const char *d = s->resp.data;
    if (!d || !s->resp.len)
        return;
    const char *secrets[] = {s->token, s->password, s->hmac_secret};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (secrets[i] && secrets[i][0] && strstr(d, secrets[i]))
            return;
    size_t k = 0, max = n - 1 < 100 ? n - 1 : 100;
    for (size_t i = 0; i < s->resp.len && k < max; i++) {
        unsigned char c = (unsigned char)d[i];
        out[k++] = c >= 0x20 && c < 0x7f ? d[i] : ' ';
    }
    while (k && out[k - 1] == ' ')
        k--;
    out[k] = '\0';
}

static void status_error(struct sink *s, long status, struct sink_result *res)
{
    char snip[104];
    snippet(s, snip, sizeof(snip));
    snprintf(res->error, sizeof(res->error), "http %ld%s%s%s", status,
             status >= 300 && status < 400 ? " (redirects are not followed)" : "",
             snip[0] ? ": " : "", snip);
}

/* 408, 429, 5xx and the statuses that speak of the receiver's setup or our
 * credentials rather than of the records are worth retrying; other 4xx are not. */
static enum verdict classify(long st)
{
    if (st >= 200 && st < 300)
        return V_OK;
    if (st >= 400 && st < 500 && st != 401 && st != 403 && st != 404 && st != 405 && st != 407 &&
        st != 408 && st != 429)
        return V_REJECT;
    return V_RETRY;
}

/* Splunk answers 400 for some errors of its own setup: incorrect index (7), data
 * channel missing or invalid (10, 11), ACK disabled (14), query string auth (16).
 * Refusing the records for those would dead-letter everything. */
static int hec_setup_error(const struct sink *s)
{
    json_t *j = s->resp.data ? json_loadb(s->resp.data, s->resp.len, 0, NULL) : NULL;
    json_int_t code = json_integer_value(json_object_get(j, "code"));
    json_decref(j);
    return code == 7 || code == 10 || code == 11 || code == 14 || code == 16;
}

/* The status of an Elasticsearch _bulk item ({"create": {"status": 201, ...}}). */
static const json_t *bulk_item(const json_t *item)
{
    void *it = json_object_iter((json_t *)item);
    return it ? json_object_iter_value(it) : NULL;
}

static enum verdict elastic_answer(struct sink *s, size_t count, struct sink_result *res)
{
    if (!s->resp_truncated) {
        json_t *j = json_loadb(s->resp.data ? s->resp.data : "", s->resp.len, 0, NULL);
        if (json_is_false(json_object_get(j, "errors"))) {
            json_decref(j);
            return V_OK;
        }
        const json_t *items = json_object_get(j, "items");
        if (json_is_true(json_object_get(j, "errors")) && json_array_size(items) == count) {
            size_t i;
            const json_t *item;
            int ok = 1;
            json_array_foreach(items, i, item)
            {
                ok &= json_is_integer(json_object_get(bulk_item(item), "status"));
            }
            if (ok) {
                json_decref(s->items);
                s->items = j;
                return V_ITEMS;
            }
        }
        json_decref(j);
    } else if (s->resp.data && (strstr(s->resp.data, "\"errors\":false") ||
                                strstr(s->resp.data, "\"errors\": false"))) {
        return V_OK;
    }
    if (count > 1)
        return V_SPLIT;
    snprintf(res->error, sizeof(res->error), "elastic: an answer without per-item results");
    return V_RETRY;
}

/* Sends records [from, from + count) in one request and says what became of them. */
static enum verdict exchange(struct sink *s, const struct export_batch *b, size_t from,
                             size_t count, struct sink_result *res)
{
    const struct export_record *rec = b->rec + from;
    buf_reset(&s->body);
    buf_reset(&s->resp);
    s->resp_truncated = 0;
    int r = s->profile == P_WEBHOOK      ? body_webhook(s, rec, count)
            : s->profile == P_SPLUNK_HEC ? body_hec(s, rec, count)
            : s->profile == P_LOKI       ? body_loki(s, rec, count)
                                         : body_elastic(s, rec, count);
    if (r < 0) {
        snprintf(res->error, sizeof(res->error), "http: %s", err_message(r));
        return V_RETRY;
    }

    struct curl_slist *hdr = NULL, *l;
    char line[128];
    int ok = 1;
    snprintf(line, sizeof(line), "Content-Type: %s", content_type(s));
    ok &= (l = curl_slist_append(hdr, line)) != NULL;
    hdr = l ? l : hdr;
    ok &= (l = curl_slist_append(hdr, "Expect:")) != NULL; /* no 100-continue round trip */
    hdr = l ? l : hdr;
    if (s->auth_header) {
        ok &= (l = curl_slist_append(hdr, s->auth_header)) != NULL;
        hdr = l ? l : hdr;
    }
    if (s->hmac_secret) {
        unsigned char mac[SHA256_LEN];
        char sig[40 + 2 * SHA256_LEN] = "X-Mcpauth-Signature: sha256=";
        size_t k = strlen(sig);
        crypto_hmac_sha256(s->hmac_secret, strlen(s->hmac_secret), s->body.data, s->body.len, mac);
        for (size_t i = 0; i < SHA256_LEN; i++, k += 2)
            snprintf(sig + k, 3, "%02x", mac[i]);
        ok &= (l = curl_slist_append(hdr, sig)) != NULL;
        hdr = l ? l : hdr;
    }
    if (!ok) {
        slist_wipe_free(hdr);
        snprintf(res->error, sizeof(res->error), "http: %s", err_message(ERR_NOMEM));
        return V_RETRY;
    }

    s->errbuf[0] = '\0';
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body.data);
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->body.len);
    CURLcode cr = curl_easy_perform(s->h);
    curl_easy_setopt(s->h, CURLOPT_HTTPHEADER, NULL);
    slist_wipe_free(hdr);

    long st = 0;
    curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &st);
    if (cr != CURLE_OK && !(cr == CURLE_WRITE_ERROR && s->resp_truncated && st)) {
        snprintf(res->error, sizeof(res->error), "http: %.240s",
                 s->errbuf[0] ? s->errbuf : curl_easy_strerror(cr));
        return V_RETRY;
    }
    enum verdict v = classify(st);
    if (v == V_OK)
        return s->profile == P_ELASTIC ? elastic_answer(s, count, res) : V_OK;
    status_error(s, st, res);
    if (v == V_REJECT && s->profile == P_SPLUNK_HEC && hec_setup_error(s))
        v = V_RETRY;
    return v;
}

/* Settles the elastic items of the request that carried [from, from + count):
 * created or already there (409: a resend) is delivered; 408/429/5xx and setup
 * errors stop here (acked = that record); other statuses refuse the record. */
static int settle_items(struct sink *s, size_t from, struct sink_result *res)
{
    size_t j;
    const json_t *item;
    int r = 0;
    json_array_foreach(json_object_get(s->items, "items"), j, item)
    {
        const json_t *o = bulk_item(item);
        long st = (long)json_integer_value(json_object_get(o, "status"));
        enum verdict v = st == 409 ? V_OK : classify(st);
        if (v == V_OK)
            continue;
        const json_t *e = json_object_get(o, "error");
        const char *type = json_string_value(json_object_get(e, "type"));
        const char *why = json_string_value(json_object_get(e, "reason"));
        snprintf(res->error, sizeof(res->error), "elastic: item %zu: %ld %s%s%s", from + j, st,
                 type ? type : "", why ? ": " : "", why ? why : "");
        if (v == V_RETRY) {
            res->acked = from + j;
            r = ERR_IO;
            break;
        }
        res->rejected[from + j] = 1;
    }
    json_decref(s->items);
    s->items = NULL;
    return r;
}

static int send_(struct sink *s, const struct export_batch *b, struct sink_result *res)
{
    res->acked = 0;
    res->error[0] = '\0';
    if (!b->n)
        return 0;
    enum verdict v = exchange(s, b, 0, b->n, res);
    if (v == V_OK) {
        res->acked = b->n;
        return 0;
    }
    if (v == V_RETRY)
        return ERR_IO;
    if (v == V_ITEMS) {
        int r = settle_items(s, 0, res);
        if (r == 0)
            res->acked = b->n;
        return r;
    }
    if (b->n == 1) { /* V_REJECT: a poison record */
        res->rejected[0] = 1;
        res->acked = 1;
        return 0;
    }
    /* Some record of the batch is refused: find which, one at a time. Receivers
     * deduplicate by event id, so the records that made it the first time are harmless. */
    char why[sizeof(res->error)] = "";
    for (size_t i = 0; i < b->n; i++) {
        res->error[0] = '\0';
        v = exchange(s, b, i, 1, res);
        if (v == V_ITEMS) {
            int r = settle_items(s, i, res);
            if (r < 0)
                return r;
        } else if (v == V_REJECT) {
            res->rejected[i] = 1;
        } else if (v != V_OK) {
            res->acked = i;
            return ERR_IO;
        }
        if (res->error[0]) /* the reason of the last refusal */
            snprintf(why, sizeof(why), "%s", res->error);
    }
    snprintf(res->error, sizeof(res->error), "%s", why);
    res->acked = b->n;
    return 0;
}

/* ---- open ---- */

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

/* The URL requests go to: as given, with the API path added for elastic (when the
 * path does not end in _bulk) and for splunk_hec and loki (when there is no path). */
static int build_url(struct sink *s, const struct exporter_config *cfg, CURLU *u,
                     struct err_detail *d)
{
    char *path = NULL, *host = NULL;
    int r = 0;
    if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        r = err_set(d, ERR_INVAL, "url: cannot be parsed");
        goto out;
    }
    const char *add = NULL;
    int bare = strcmp(path, "/") == 0 || path[0] == '\0';
    if (s->profile == P_ELASTIC && !ends_with(path, "/_bulk"))
        add = "_bulk";
    else if (s->profile == P_SPLUNK_HEC && bare)
        add = "services/collector/event";
    else if (s->profile == P_LOKI && bare)
        add = "loki/api/v1/push";
    if (add) {
        size_t n = strlen(path);
        char *np = malloc(n + strlen(add) + 2);
        if (!np) {
            r = ERR_NOMEM;
            goto out;
        }
        snprintf(np, n + strlen(add) + 2, "%s%s%s", path, n && path[n - 1] == '/' ? "" : "/", add);
        CURLUcode uc = curl_url_set(u, CURLUPART_PATH, np, 0);
        free(np);
        if (uc != CURLUE_OK) {
            r = err_set(d, ERR_INVAL, "url: %s", curl_url_strerror(uc));
            goto out;
        }
    }
    if (s->profile == P_ELASTIC &&
        curl_url_set(u, CURLUPART_QUERY, ELASTIC_FILTER, CURLU_APPENDQUERY) != CURLUE_OK) {
        r = ERR_NOMEM;
        goto out;
    }
    if (cfg->tls.server_name && cfg->tls.server_name[0] &&
        strcmp(cfg->tls.server_name, host) != 0) {
        /* Name the server in the URL (SNI, certificate check, Host) and connect to the
         * URL's host: libcurl's --connect-to. */
        char ct[600];
        snprintf(ct, sizeof(ct), "::%s:", host);
        s->connect_to = curl_slist_append(NULL, ct);
        if (!s->connect_to) {
            r = ERR_NOMEM;
            goto out;
        }
        if (curl_url_set(u, CURLUPART_HOST, cfg->tls.server_name, 0) != CURLUE_OK) {
            r = err_set(d, ERR_INVAL, "tls.server_name: not a host name");
            goto out;
        }
    }
out:
    curl_free(path);
    curl_free(host);
    return r;
}

static int parse_profile(const char *p, enum profile *ret)
{
    static const char *const names[] = {"webhook", "splunk_hec", "loki", "elastic"};
    for (size_t i = 0; p && i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(p, names[i]) == 0) {
            *ret = (enum profile)i;
            return 0;
        }
    return ERR_INVAL;
}

static int check_config(const struct exporter_config *cfg, enum profile *ret, struct err_detail *d)
{
    if (!cfg->scheme || (strcmp(cfg->scheme, "http") != 0 && strcmp(cfg->scheme, "https") != 0))
        return err_set(d, ERR_INVAL, "url: the http sink takes http:// or https://");
    if (parse_profile(cfg->profile, ret) < 0)
        return err_set(d, ERR_INVAL, "profile: expected webhook, splunk_hec, loki or elastic");
    enum audit_format f = cfg->format;
    if (*ret == P_SPLUNK_HEC && f != AUDIT_FMT_JSON && f != AUDIT_FMT_OCSF && f != AUDIT_FMT_CEF &&
        f != AUDIT_FMT_RFC5424)
        return err_set(d, ERR_INVAL, "format: splunk_hec takes json, ocsf, cef or rfc5424");
    if (*ret == P_ELASTIC && !is_json_format(f))
        return err_set(d, ERR_INVAL, "format: elastic takes json or ocsf");
    if (*ret == P_SPLUNK_HEC && !(cfg->auth.token && cfg->auth.token[0]))
        return err_set(d, ERR_INVAL, "auth.token: splunk_hec needs the HEC token");
    if (cfg->timeout_ms <= 0)
        return err_set(d, ERR_INVAL, "timeout: must be positive");
    if (*ret == P_LOKI && cfg->labels) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)cfg->labels, k, v)
        {
            if (!json_is_string(v))
                return err_set(d, ERR_INVAL, "labels.%s: expected a string", k);
        }
    }
    return 0;
}

static int configure(struct sink *s, const struct exporter_config *cfg, struct err_detail *d)
{
    const struct exporter_config *c = cfg;
    if (c->auth.token && c->auth.token[0]) {
        const char *scheme = s->profile == P_SPLUNK_HEC ? "Splunk" : "Bearer";
        size_t n = strlen("Authorization: ") + strlen(scheme) + 1 + strlen(c->auth.token) + 1;
        if (!(s->auth_header = malloc(n)))
            return ERR_NOMEM;
        snprintf(s->auth_header, n, "Authorization: %s %s", scheme, c->auth.token);
        s->token = s->auth_header + n - 1 - strlen(c->auth.token);
    } else if (c->auth.username) {
        if (!(s->username = strdup(c->auth.username)) ||
            !(s->password = strdup(c->auth.password ? c->auth.password : "")))
            return ERR_NOMEM;
    }
    if (s->profile == P_WEBHOOK && c->auth.hmac_secret && c->auth.hmac_secret[0] &&
        !(s->hmac_secret = strdup(c->auth.hmac_secret)))
        return ERR_NOMEM;
    if (s->profile == P_ELASTIC || (s->profile == P_SPLUNK_HEC && c->index && c->index[0])) {
        const char *ix = c->index && c->index[0] ? c->index : ELASTIC_DEFAULT_INDEX;
        if (!(s->index = strdup(ix)))
            return ERR_NOMEM;
    }
    if (s->profile == P_LOKI) {
        json_t *def = c->labels ? NULL : json_pack("{s:s}", "job", "mcpauth");
        const json_t *l = c->labels ? c->labels : def;
        s->labels = l ? json_dumps(l, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        json_decref(def);
        if (!s->labels)
            return ERR_NOMEM;
    }
    if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0 || !s->hostname[0])
        snprintf(s->hostname, sizeof(s->hostname), "localhost");

    CURLU *u = curl_url();
    if (!u)
        return ERR_NOMEM;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, c->url, 0);
    if (uc != CURLUE_OK) {
        curl_url_cleanup(u);
        return err_set(d, ERR_INVAL, "url: %s", curl_url_strerror(uc));
    }
    int r = build_url(s, c, u, d);
    if (r < 0) {
        curl_url_cleanup(u);
        return r;
    }
    char *url = NULL;
    uc = curl_url_get(u, CURLUPART_URL, &url, 0);
    curl_url_cleanup(u);
    if (uc != CURLUE_OK)
        return err_set(d, ERR_INVAL, "url: %s", curl_url_strerror(uc));

    if (!(s->h = curl_easy_init())) {
        curl_free(url);
        return ERR_NOMEM;
    }
    CURL *h = s->h;
    CURLcode cr = curl_easy_setopt(h, CURLOPT_URL, url); /* libcurl keeps a copy */
    curl_free(url);
    if (cr != CURLE_OK)
        return ERR_NOMEM;
    long ms = c->timeout_ms > 0x7fffffff ? 0x7fffffff : (long)c->timeout_ms;
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, c->tls.verify ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, c->tls.verify ? 2L : 0L);
    if (s->connect_to)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, s->connect_to);
    if (c->tls.ca_file && curl_easy_setopt(h, CURLOPT_CAINFO, c->tls.ca_file) != CURLE_OK)
        return err_set(d, ERR_INVAL, "tls.ca_file: not supported by this libcurl");
    if (c->tls.cert_file && curl_easy_setopt(h, CURLOPT_SSLCERT, c->tls.cert_file) != CURLE_OK)
        return err_set(d, ERR_INVAL, "tls.cert_file: not supported by this libcurl");
    if (c->tls.key_file && curl_easy_setopt(h, CURLOPT_SSLKEY, c->tls.key_file) != CURLE_OK)
        return err_set(d, ERR_INVAL, "tls.key_file: not supported by this libcurl");
    if (s->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, s->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password);
    }
    return 0;
}

static int open_(const struct exporter_config *cfg, struct sink **ret, struct err_detail *d)
{
    enum profile p = P_WEBHOOK;
    int r = check_config(cfg, &p, d);
    if (r < 0)
        return r;
    const char *files[] = {cfg->tls.ca_file, cfg->tls.cert_file, cfg->tls.key_file};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
        if (files[i] && access(files[i], R_OK) != 0)
            return err_set(d, ERR_INVAL, "tls: %s is not readable", files[i]);
    pthread_once(&curl_once, init_curl);
    if (curl_init_result != CURLE_OK)
        return err_set(d, ERR_INTERNAL, "libcurl cannot be initialised");
    struct sink *s = calloc(1, sizeof(*s));
    if (!s)
        return ERR_NOMEM;
    s->profile = p;
    s->format = cfg->format;
    buf_init(&s->body, 0);
    buf_init(&s->resp, RESP_MAX);
    if ((r = configure(s, cfg, d)) < 0) {
        close_(s);
        return r == ERR_NOMEM ? err_set(d, r, "out of memory") : r;
    }
    *ret = s;
    return 0;
}

const struct sink_ops sink_http_ops = {"http", open_, send_, close_};
