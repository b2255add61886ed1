/* config/config.c — `mcpauth serve` settings: built-in defaults, then the
 * file's keys, then command-line overrides, then derived values. Every key of the
 * file is checked for its type and range and every unknown key is refused with its
 * line, because a misspelt key silently ignored is a setting the operator believes
 * is in force. Invariant: a failed load or set leaves the config exactly as it was
 * (the file is applied to a copy that replaces the original only on success). */
#include "config/config.h"
#include "config/yaml.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BODY_MIN 1024
#define BODY_MAX 67108864

/* The owned string members, for copying and freeing them all alike. */
#define STRING_MEMBERS(X)                                                                          \
    X(listen_host)                                                                                 \
    X(issuer) X(data_dir) X(database) X(admin_token_file) X(kek_file) X(policy_file) X(node)

int config_set_str(char **field, const char *value)
{
    char *s = NULL;
    if (value) {
        s = strdup(value);
        if (!s)
            return ERR_NOMEM;
    }
    free(*field);
    *field = s;
    return 0;
}

/* strdup failing here would leave a member NULL; config_serve_finish() then
 * reports ERR_NOMEM rather than the server starting half-configured. */
void config_serve_defaults(struct serve_config *c)
{
    *c = (struct serve_config){
        .listen_host = strdup("127.0.0.1"),
        .listen_port = 8080,
        .data_dir = strdup("./var"),
        .threads = 4,
        .log_level = LOG_INFO,
        .oauth_body_max = 65536,
        .admin_body_max = 1048576,
    };
}

void config_serve_done(struct serve_config *c)
{
    if (!c)
        return;
#define FREE_MEMBER_(m) free(c->m);
    STRING_MEMBERS(FREE_MEMBER_)
#undef FREE_MEMBER_
    json_decref(c->exporters);
    *c = (struct serve_config){0};
}

static int serve_config_copy(struct serve_config *dst, const struct serve_config *src)
{
    struct serve_config t = *src;
#define NULL_MEMBER_(m) t.m = NULL;
    STRING_MEMBERS(NULL_MEMBER_)
#undef NULL_MEMBER_
#define COPY_MEMBER_(m)                                                                            \
    if (config_set_str(&t.m, src->m) < 0)                                                          \
        goto oom;
    STRING_MEMBERS(COPY_MEMBER_)
#undef COPY_MEMBER_
    json_incref(t.exporters);
    *dst = t;
    return 0;
oom:
    config_serve_done(&t);
    return ERR_NOMEM;
}

static int host_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '.' || ch == '_';
}

static int v6_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || (ch >= '0' && ch <= '9') ||
           ch == ':' || ch == '.';
}

/* "HOST:PORT" or "[V6]:PORT" into an owned host (brackets removed) and a port. */
static int parse_hostport(const char *s, char **ret_host, int *ret_port)
{
    const char *host = s, *colon;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return ERR_INVAL;
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
        if (!memchr(host, ':', hlen))
            return ERR_INVAL;
        for (size_t i = 0; i < hlen; i++)
            if (!v6_char((unsigned char)host[i]))
                return ERR_INVAL;
    } else {
        colon = strchr(s, ':');
        if (!colon || strchr(colon + 1, ':'))
            return ERR_INVAL; /* none, or an unbracketed IPv6 address */
        hlen = (size_t)(colon - host);
        for (size_t i = 0; i < hlen; i++)
            if (!host_char((unsigned char)host[i]))
                return ERR_INVAL;
    }
    if (hlen == 0 || hlen > 253)
        return ERR_INVAL;

    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen > 5 || strspn(p, "0123456789") != plen)
        return ERR_INVAL;
    int port = atoi(p);
    if (port < 1 || port > 65535)
        return ERR_INVAL;

    char *h = strndup(host, hlen);
    if (!h)
        return ERR_NOMEM;
    *ret_host = h;
    *ret_port = port;
    return 0;
}

static const char listen_expect[] = "expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535";

int config_serve_set_listen(struct serve_config *c, const char *hostport, struct err_detail *d)
{
    char *host;
    int port;
    int r = parse_hostport(hostport, &host, &port);
    if (r == ERR_NOMEM)
        return err_set(d, r, "out of memory");
    if (r < 0)
        return err_set(d, r, "listen: %s", listen_expect);
    free(c->listen_host);
    c->listen_host = host;
    c->listen_port = port;
    return 0;
}

/* Text for messages about an unknown key: short, one line, valid UTF-8 (the key
 * itself is valid UTF-8; the cut backs off to a character boundary). */
static const char *key_for_msg(const char *key, char out[72])
{
    size_t n = 0, i = 0;
    for (; key[i] && n < 60; i++) {
        unsigned char ch = (unsigned char)key[i];
        out[n++] = (char)((ch < 0x20 || ch == 0x7f) ? '?' : ch);
    }
    if (key[i]) {
        if (((unsigned char)key[i] & 0xc0) == 0x80) {
            while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
                n--;
            if (n > 0)
                n--;
        }
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

struct loader {
    const char *path;
    const struct config_doc *doc;
    struct err_detail *d;
};

static int fail(const struct loader *l, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ERR_INVAL with "PATH: line L: what" (or "PATH: what" when the line is unknown). */
static int fail(const struct loader *l, int line, const char *fmt, ...)
{
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (line > 0)
        return err_set(l->d, ERR_INVAL, "%s: line %d: %s", l->path, line, what);
    return err_set(l->d, ERR_INVAL, "%s: %s", l->path, what);
}

static int type_error(const struct loader *l, int line, const char *name, const char *expect)
{
    return fail(l, line, "%s: %s", name, expect);
}

/* A string member; `nullable` members accept null as "back to the default". */
static int set_string(const struct loader *l, int line, const char *name, const json_t *v,
                      char **field, int nullable)
{
    if (nullable && json_is_null(v))
        return config_set_str(field, NULL);
    if (!json_is_string(v) || json_string_length(v) == 0)
        return type_error(l, line, name, "expected a non-empty string");
    return config_set_str(field, json_string_value(v));
}

static int get_int(const json_t *v, json_int_t lo, json_int_t hi, json_int_t *ret)
{
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return ERR_INVAL;
    *ret = json_integer_value(v);
    return 0;
}

static int load_limits(const struct loader *l, const json_t *obj, int line, struct serve_config *c)
{
    if (!json_is_object(obj))
        return type_error(l, line, "limits", "expected a mapping (oauth_body, admin_body)");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        int kl = config_doc_key_line(l->doc, obj, key);
        json_int_t x;
        char kbuf[72];
        size_t *field;
        if (strcmp(key, "oauth_body") == 0)
            field = &c->oauth_body_max;
        else if (strcmp(key, "admin_body") == 0)
            field = &c->admin_body_max;
        else
            return fail(l, kl, "unknown key 'limits.%s'", key_for_msg(key, kbuf));
        if (get_int(v, BODY_MIN, BODY_MAX, &x) < 0)
            return fail(l, kl, "limits.%s: expected an integer from %d to %d (bytes)", key,
                        BODY_MIN, BODY_MAX);
        *field = (size_t)x;
    }
    return 0;
}

static int load_key(const struct loader *l, const char *key, const json_t *v, int line,
                    struct serve_config *c)
{
    char kbuf[72];
    json_int_t x;
    int r;
    if (strcmp(key, "listen") == 0) {
        if (!json_is_string(v))
            return type_error(l, line, key, listen_expect);
        char *host;
        int port;
        r = parse_hostport(json_string_value(v), &host, &port);
        if (r == ERR_NOMEM)
            return r;
        if (r < 0)
            return type_error(l, line, key, listen_expect);
        free(c->listen_host);
        c->listen_host = host;
        c->listen_port = port;
        return 0;
    }
    if (strcmp(key, "issuer") == 0) {
        if (json_is_string(v)) {
            const char *s = json_string_value(v);
            size_t skip = strncmp(s, "https://", 8) == 0  ? 8
                          : strncmp(s, "http://", 7) == 0 ? 7
                                                          : 0;
            if (!skip || !s[skip] || strpbrk(s, "?# \t\r\n"))
                return type_error(l, line, key,
                                  "expected an https:// or http:// URL without query or fragment");
        }
        return set_string(l, line, key, v, &c->issuer, 1);
    }
    if (strcmp(key, "data_dir") == 0)
        return set_string(l, line, key, v, &c->data_dir, 0);
    if (strcmp(key, "database") == 0) {
        if (json_is_string(v) &&
            (strncmp(json_string_value(v), "sqlite:", 7) != 0 || !json_string_value(v)[7]))
            return type_error(l, line, key, "expected sqlite:PATH");
        return set_string(l, line, key, v, &c->database, 1);
    }
    if (strcmp(key, "admin_token_file") == 0)
        return set_string(l, line, key, v, &c->admin_token_file, 1);
    if (strcmp(key, "kek_file") == 0)
        return set_string(l, line, key, v, &c->kek_file, 1);
    if (strcmp(key, "policy_file") == 0)
        return set_string(l, line, key, v, &c->policy_file, 1);
    if (strcmp(key, "node") == 0)
        return set_string(l, line, key, v, &c->node, 1);
    if (strcmp(key, "dev") == 0) {
        if (!json_is_boolean(v))
            return type_error(l, line, key, "expected true or false");
        c->dev = json_is_true(v);
        return 0;
    }
    if (strcmp(key, "threads") == 0) {
        if (get_int(v, 1, 256, &x) < 0)
            return type_error(l, line, key, "expected an integer from 1 to 256");
        c->threads = (int)x;
        return 0;
    }
    if (strcmp(key, "log_level") == 0) {
        enum log_level lvl;
        if (!json_is_string(v) || log_level_parse(json_string_value(v), &lvl) < 0)
            return type_error(l, line, key, "expected one of debug, info, warn, error");
        c->log_level = lvl;
        return 0;
    }
    if (strcmp(key, "durability") == 0) {
        const char *m = json_string_value(v);
        if (!m || (strcmp(m, "process") && strcmp(m, "power")))
            return type_error(l, line, key, "expected process or power");
        c->durability_power = strcmp(m, "power") == 0;
        return 0;
    }
    if (strcmp(key, "limits") == 0)
        return load_limits(l, v, line, c);
    if (strcmp(key, "exporters") == 0) {
        size_t i;
        json_t *e;
        if (!json_is_array(v))
            return type_error(l, line, key, "expected a list of exporter objects");
        json_array_foreach(v, i, e) if (!json_is_object(e) ||
                                         !json_is_string(json_object_get(e, "id"))) return
            type_error(l, line, key, "each exporter is a mapping with an id");
        json_decref(c->exporters);
        c->exporters = json_deep_copy(v);
        return c->exporters ? 0 : ERR_NOMEM;
    }
    return fail(l, line, "unknown key '%s'", key_for_msg(key, kbuf));
}

int config_serve_load(const char *path, struct serve_config *c, struct err_detail *d)
{
    struct config_doc *doc = NULL;
    struct serve_config t;
    int r = config_doc_load(path, &doc, d);
    if (r < 0)
        return r;
    r = serve_config_copy(&t, c);
    if (r < 0) {
        config_doc_free(doc);
        return err_set(d, r, "%s: out of memory", path);
    }

    struct loader l = {path, doc, d};
    json_t *root = config_doc_root(doc);
    const char *key;
    json_t *v;
    if (!json_is_object(root)) {
        r = fail(&l, config_doc_line(doc, root), "expected a mapping of settings at the top level");
        goto out;
    }
    json_object_foreach(root, key, v)
    {
        r = load_key(&l, key, v, config_doc_key_line(doc, root, key), &t);
        if (r == ERR_NOMEM)
            r = err_set(d, r, "%s: out of memory", path);
        if (r < 0)
            goto out;
    }
    config_serve_done(c);
    *c = t;
    config_doc_free(doc);
    return 0;

out:
    config_serve_done(&t);
    config_doc_free(doc);
    return r;
}

/* DIR "/" NAME with one slash between; `prefix` goes in front ("sqlite:"). */
static char *join(const char *prefix, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    const char *sep = n > 0 && dir[n - 1] == '/' ? "" : "/";
    size_t len = strlen(prefix) + n + strlen(sep) + strlen(name) + 1;
    char *s = malloc(len);
    if (s)
        (void)snprintf(s, len, "%s%s%s%s", prefix, dir, sep, name);
    return s;
}

/* The node name when none is configured: the host name, or "localhost" when the
 * system has none to give. */
static char *default_node(void)
{
    char name[HOST_NAME_MAX + 1];
    if (gethostname(name, sizeof(name)) < 0 || !name[0])
        return strdup("localhost");
    name[sizeof(name) - 1] = '\0';
    return strdup(name);
}

int config_serve_finish(struct serve_config *c)
{
    if (!c->listen_host || !c->data_dir)
        return ERR_NOMEM; /* config_serve_defaults() could not allocate them */

    char *issuer = NULL, *database = NULL, *token = NULL, *kek = NULL, *node = NULL;
    if (!c->issuer) {
        int v6 = strchr(c->listen_host, ':') != NULL;
        size_t len = strlen(c->listen_host) + 32;
        issuer = malloc(len);
        if (!issuer)
            goto oom;
        (void)snprintf(issuer, len, v6 ? "http://[%s]:%d" : "http://%s:%d", c->listen_host,
                       c->listen_port);
    }
    if (!c->database && !(database = join("sqlite:", c->data_dir, "mcpauth.db")))
        goto oom;
    if (!c->admin_token_file && !(token = join("", c->data_dir, "admin.token")))
        goto oom;
    if (!c->kek_file && !(kek = join("", c->data_dir, "kek")))
        goto oom;
    if (!c->node && !(node = default_node()))
        goto oom;

    if (issuer)
        c->issuer = issuer;
    if (database)
        c->database = database;
    if (token)
        c->admin_token_file = token;
    if (kek)
        c->kek_file = kek;
    if (node)
        c->node = node;
    return 0;

oom:
    free(issuer);
    free(database);
    free(token);
    free(kek);
    free(node);
    return ERR_NOMEM;
}
