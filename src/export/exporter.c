/* export/exporter.c — stored exporter object -> struct exporter_config. The
 * object was validated by policy/model.c; this is still defensive, because a
 * database can be edited behind our back. */
#include "export/exporter.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static int64_t ms_of(const json_t *o, const char *key, int64_t def)
{
    const json_t *v = json_object_get(o, key);
    int64_t ms = 0;
    if (json_is_string(v) && duration_parse_ms(json_string_value(v), &ms) == 0)
        return ms;
    if (json_is_integer(v) && json_integer_value(v) > 0)
        return json_integer_value(v) * 1000;
    return def;
}

/* scheme://authority/path: host (brackets kept off an IPv6 literal), port, path. */
static int split_url(struct exporter_config *c, struct err_detail *d)
{
    const char *u = c->url;
    const char *sep = strstr(u, "://");
    if (!sep || sep == u)
        return err_set(d, ERR_INVAL, "url: expected SCHEME://...");
    c->scheme = strndup(u, (size_t)(sep - u));
    const char *auth = sep + 3;
    size_t alen = strcspn(auth, "/?#");
    const char *rest = auth + alen;
    if (strcmp(c->scheme, "file") == 0) {
        if (alen != 0 || *rest != '/')
            return err_set(d, ERR_INVAL, "url: a file URL is file:///ABSOLUTE/PATH");
        c->path = strdup(rest);
        return c->path ? 0 : ERR_NOMEM;
    }
    if (alen == 0)
        return err_set(d, ERR_INVAL, "url: no host");
    if (strcmp(c->scheme, "kafka") == 0) {
        c->host = strndup(auth, alen); /* the broker list stays whole */
    } else {
        const char *colon = NULL;
        if (auth[0] == '[') {
            const char *close = memchr(auth, ']', alen);
            if (!close)
                return err_set(d, ERR_INVAL, "url: unterminated IPv6 literal");
            c->host = strndup(auth + 1, (size_t)(close - auth - 1));
            if (close + 1 < rest && close[1] == ':')
                colon = close + 1;
        } else {
            colon = memchr(auth, ':', alen);
            c->host = strndup(auth, colon ? (size_t)(colon - auth) : alen);
        }
        if (colon) {
            char *end = NULL;
            long p = strtol(colon + 1, &end, 10);
            if (end != rest || p < 1 || p > 65535)
                return err_set(d, ERR_INVAL, "url: bad port");
            c->port = (int)p;
        }
    }
    if (*rest == '/' && rest[1])
        c->path = strdup(strcmp(c->scheme, "kafka") == 0 || strcmp(c->scheme, "nats") == 0
                             ? rest + 1
                             : rest);
    else if (*rest == '?')
        c->path = strdup(rest);
    return c->host ? 0 : ERR_NOMEM;
}

static int unseal_auth(struct exporter_config *c, const json_t *doc, const struct kek *kek,
                       struct err_detail *d)
{
    const char *sealed = json_string_value(json_object_get(doc, "auth_sealed"));
    if (!sealed)
        return 0;
    if (!kek)
        return err_set(d, ERR_INVAL, "auth: sealed, and no key-encryption key to open it");
    char aad[200];
    exporter_auth_aad(c->id, aad, sizeof(aad));
    unsigned char *pt = NULL;
    size_t n = 0;
    if (kek_open(kek, aad, sealed, &pt, &n) < 0)
        return err_set(d, ERR_INVAL, "auth: cannot be opened with this key-encryption key");
    json_t *a = json_loadb((const char *)pt, n, 0, NULL);
    crypto_wipe(pt, n);
    free(pt);
    if (!json_is_object(a)) {
        json_decref(a);
        return err_set(d, ERR_INVAL, "auth: sealed content is not an object");
    }
    c->auth.token = dup_str(a, "token");
    c->auth.hmac_secret = dup_str(a, "hmac_secret");
    c->auth.username = dup_str(a, "username");
    c->auth.password = dup_str(a, "password");
    json_decref(a);
    return 0;
}

void exporter_auth_aad(const char *id, char *out, size_t n)
{
    snprintf(out, n, "exporter:%s", id ? id : "");
}

int exporter_config_from_json(const json_t *doc, const struct kek *kek,
                              struct exporter_config *ret, struct err_detail *d)
{
    struct exporter_config c = {0};
    c.id = dup_str(doc, "id");
    c.type = dup_str(doc, "type");
    c.url = dup_str(doc, "url");
    c.profile = dup_str(doc, "profile");
    c.filter = dup_str(doc, "filter");
    c.index = dup_str(doc, "index");
    int r = 0;
    if (!c.id || !c.type || !c.url) {
        r = err_set(d, ERR_INVAL, "an exporter needs id, type and url");
        goto fail;
    }
    if ((r = split_url(&c, d)) < 0)
        goto fail;
    const char *fmt = json_string_value(json_object_get(doc, "format"));
    if (fmt && audit_format_parse(fmt, &c.format) < 0) {
        r = err_set(d, ERR_INVAL, "format: unknown \"%s\"", fmt);
        goto fail;
    }
    const char *start = json_string_value(json_object_get(doc, "start"));
    c.start_beginning = start && strcmp(start, "beginning") == 0;
    c.paused = json_is_true(json_object_get(doc, "paused"));
    const json_t *batch = json_object_get(doc, "batch");
    json_int_t me = json_integer_value(json_object_get(batch, "max_events"));
    c.max_events = me >= 1 && me <= 10000 ? (size_t)me : 500;
    c.max_wait_ms = ms_of(batch, "max_wait", 1000);
    c.timeout_ms = ms_of(doc, "timeout", 10000);
    const json_t *tls = json_object_get(doc, "tls");
    c.tls.ca_file = dup_str(tls, "ca_file");
    c.tls.cert_file = dup_str(tls, "cert_file");
    c.tls.key_file = dup_str(tls, "key_file");
    c.tls.server_name = dup_str(tls, "server_name");
    c.tls.verify = !json_is_false(json_object_get(tls, "verify"));
    const json_t *labels = json_object_get(doc, "labels");
    c.labels = json_is_object(labels) ? json_deep_copy(labels) : NULL;
    json_int_t mb = json_integer_value(json_object_get(doc, "max_bytes"));
    c.max_bytes = mb > 0 ? mb : 100 * 1024 * 1024;
    json_int_t mf = json_integer_value(json_object_get(doc, "max_files"));
    c.max_files = mf > 0 && mf <= 1000 ? (int)mf : 5;
    if ((r = unseal_auth(&c, doc, kek, d)) < 0)
        goto fail;
    *ret = c;
    return 0;
fail:
    exporter_config_done(&c);
    return r;
}

static void free_secret(char *s)
{
    if (s) {
        crypto_wipe(s, strlen(s));
        free(s);
    }
}

void exporter_config_done(struct exporter_config *c)
{
    if (!c)
        return;
    free(c->id);
    free(c->type);
    free(c->url);
    free(c->profile);
    free(c->scheme);
    free(c->host);
    free(c->path);
    free(c->filter);
    free(c->tls.ca_file);
    free(c->tls.cert_file);
    free(c->tls.key_file);
    free(c->tls.server_name);
    free_secret(c->auth.token);
    free_secret(c->auth.hmac_secret);
    free_secret(c->auth.username);
    free_secret(c->auth.password);
    free(c->index);
    json_decref(c->labels);
    *c = (struct exporter_config){0};
}
