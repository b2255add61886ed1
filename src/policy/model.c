/* policy/model.c — per-kind validation and canonical form of policy objects.
 *
 * Each kind is a table of fields; normalisation walks the input once, rejects
 * members the table does not name, type-checks and canonicalises each value,
 * then fills defaults. The canonical form is what the store keeps and what a
 * later apply is compared with, so it must be a pure function of the input
 * (and, for a client secret, of the stored hash it may keep). */
#include "policy/policy.h"
#include "core/timeutil.h"
#include "jose/crypto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct policy_kind_info kinds[] = {
    {STORE_SETTINGS, "settings", "settings", "settings"},
    {STORE_SYSTEMS, "systems", "systems", "system"},
    {STORE_CLIENTS, "clients", "clients", "client"},
    {STORE_ACCESS_POLICIES, "access-policies", "access_policies", "access_policy"},
    {STORE_GRANTS, "grants", "grants", "grant"},
    {STORE_TRUSTED_ISSUERS, "trusted-issuers", "trusted_issuers", "trusted_issuer"},
    {STORE_EXPORTERS, "exporters", "exporters", "exporter"},
};

const struct policy_kind_info *policy_kind_info(enum store_kind kind)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].kind == kind)
            return &kinds[i];
    return NULL;
}

const struct policy_kind_info *policy_kind_by_path(const char *path)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].path, path) == 0)
            return &kinds[i];
    return NULL;
}

const struct policy_kind_info *policy_kind_by_section(const char *section)
{
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].section, section) == 0)
            return &kinds[i];
    return NULL;
}

enum ftype {
    F_ID,       /* [A-Za-z0-9][A-Za-z0-9._-]{0,127} */
    F_STR,      /* 1..1024 bytes, no control characters */
    F_URL,      /* http(s)://host..., no fragment, <= 2048 */
    F_BOOL,
    F_DURATION, /* "300s" | 300 -> "300s" */
    F_ENUM,
    F_ENUMLIST,
    F_URLLIST,
    F_SCOPELIST, /* scope tokens (RFC 6749 §3.3) */
    F_SCOPES,    /* system scopes: objects or bare names */
    F_ALG,
    F_ALG_INHERIT,
    F_ALGLIST,
    F_SUBJECT, /* user:ID | group:NAME | client:ID */
    F_JWKS,    /* {"keys": [ {...}, ... ]} */
    F_SECRET,  /* write-only, becomes secret_hash */
    F_SECRET_HASH,
    F_OBJECT,   /* a nested object whose members are the `sub` table */
    F_INT,      /* an integer in [imin, imax] */
    F_MS,       /* "250ms" | a duration | seconds -> "250ms" or "2s"; 1 ms .. 1 h */
    F_LABELS,   /* {"name": "value"}: Prometheus-style label names, at most 16 */
    F_CREDENTIAL, /* write-only string, 1..4096 bytes: sealed under the KEK, never shown */
    F_SEALED,   /* a sealed blob made by mcpauth: accepted only as stored */
    F_TEXT,     /* 0..4096 bytes, no control characters (filters) */
    F_CLIENT_REF, /* a client id, or the http(s) URL of a client ID metadata document */
};

struct field {
    const char *name;
    enum ftype type;
    int required;
    const char *def; /* default as JSON text, NULL = absent */
    const char *const *enums;
    const struct field *sub; /* F_OBJECT */
    long long imin, imax;    /* F_INT */
};

static const char *const token_types[] = {"id-jag", "access_token", NULL};
static const char *const auth_methods[] = {"none", "client_secret_basic", "client_secret_post",
                                           "private_key_jwt", NULL};
static const char *const grant_types[] = {"urn:ietf:params:oauth:grant-type:token-exchange",
                                          "urn:ietf:params:oauth:grant-type:jwt-bearer",
                                          "client_credentials", "authorization_code",
                                          "refresh_token", NULL};

static const struct field settings_fields[] = {
    {"default_signing_alg", F_ALG, 0, "\"ES256\"", NULL, NULL, 0, 0},
    {"maintained_algs", F_ALGLIST, 0, "[\"ES256\"]", NULL, NULL, 0, 0},
    {"default_lifetime", F_DURATION, 0, "\"300s\"", NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field system_fields[] = {
    {"id", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"name", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"description", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"audience", F_URL, 1, NULL, NULL, NULL, 0, 0},
    {"resource_urls", F_URLLIST, 0, "[]", NULL, NULL, 0, 0},
    {"scopes", F_SCOPES, 0, "[]", NULL, NULL, 0, 0},
    {"paused", F_BOOL, 0, "false", NULL, NULL, 0, 0},
    {"signing_alg", F_ALG_INHERIT, 0, "\"inherit\"", NULL, NULL, 0, 0},
    {"max_lifetime", F_DURATION, 0, NULL, NULL, NULL, 0, 0},
    {"token_type", F_ENUM, 0, "\"id-jag\"", token_types, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field client_fields[] = {
    {"id", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"name", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"description", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"auth", F_ENUM, 0, "\"client_secret_basic\"", auth_methods, NULL, 0, 0},
    {"secret", F_SECRET, 0, NULL, NULL, NULL, 0, 0},
    {"secret_hash", F_SECRET_HASH, 0, NULL, NULL, NULL, 0, 0},
    {"jwks", F_JWKS, 0, NULL, NULL, NULL, 0, 0},
    {"jwks_uri", F_URL, 0, NULL, NULL, NULL, 0, 0},
    {"redirect_uris", F_URLLIST, 0, "[]", NULL, NULL, 0, 0},
    {"grant_types", F_ENUMLIST, 0, "[\"urn:ietf:params:oauth:grant-type:token-exchange\"]",
     grant_types, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field access_fields[] = {
    {"id", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"description", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"client", F_CLIENT_REF, 1, NULL, NULL, NULL, 0, 0},
    {"system", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"active", F_BOOL, 0, "true", NULL, NULL, 0, 0},
    {"client_id_at_system", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field grant_fields[] = {
    {"id", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"subject", F_SUBJECT, 1, NULL, NULL, NULL, 0, 0},
    {"system", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"scopes", F_SCOPELIST, 1, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const char *const idp_auth_methods[] = {"client_secret_basic", "client_secret_post",
                                               NULL};

static const struct field issuer_fields[] = {
    {"id", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"issuer", F_URL, 1, NULL, NULL, NULL, 0, 0},
    {"jwks_uri", F_URL, 0, NULL, NULL, NULL, 0, 0},
    {"jwks", F_JWKS, 0, NULL, NULL, NULL, 0, 0},
    {"audience", F_STR, 1, NULL, NULL, NULL, 0, 0},
    {"algorithms", F_ALGLIST, 0, "[\"RS256\", \"ES256\"]", NULL, NULL, 0, 0},
    {"user_claim", F_STR, 0, "\"sub\"", NULL, NULL, 0, 0},
    {"groups_claim", F_STR, 0, "\"groups\"", NULL, NULL, 0, 0},
    /* sign-in at this IdP for /oauth/authorize (docs/authorization-code.md): mcpauth is its client */
    {"authorization_endpoint", F_URL, 0, NULL, NULL, NULL, 0, 0},
    {"token_endpoint", F_URL, 0, NULL, NULL, NULL, 0, 0},
    {"client_id", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"client_secret", F_CREDENTIAL, 0, NULL, NULL, NULL, 0, 0},
    {"client_secret_sealed", F_SEALED, 0, NULL, NULL, NULL, 0, 0},
    {"token_endpoint_auth_method", F_ENUM, 0, NULL, idp_auth_methods, NULL, 0, 0},
    {"sign_in_scope", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const char *const exporter_types[] = {"syslog", "http", "kafka", "nats", "file", NULL};
static const char *const exporter_profiles[] = {"webhook", "splunk_hec", "loki", "elastic", NULL};
static const char *const exporter_formats[] = {"json", "ocsf", "cef", "rfc5424", NULL};
static const char *const exporter_starts[] = {"now", "beginning", NULL};

static const struct field exporter_batch_fields[] = {
    {"max_events", F_INT, 0, NULL, NULL, NULL, 1, 10000},
    {"max_wait", F_MS, 0, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field exporter_tls_fields[] = {
    {"ca_file", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"cert_file", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"key_file", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"server_name", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"verify", F_BOOL, 0, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field exporter_auth_fields[] = {
    {"token", F_CREDENTIAL, 0, NULL, NULL, NULL, 0, 0},
    {"hmac_secret", F_CREDENTIAL, 0, NULL, NULL, NULL, 0, 0},
    {"username", F_CREDENTIAL, 0, NULL, NULL, NULL, 0, 0},
    {"password", F_CREDENTIAL, 0, NULL, NULL, NULL, 0, 0},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field exporter_fields[] = {
    {"id", F_ID, 1, NULL, NULL, NULL, 0, 0},
    {"name", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"description", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"type", F_ENUM, 1, NULL, exporter_types, NULL, 0, 0},
    {"url", F_STR, 1, NULL, NULL, NULL, 0, 0},
    {"profile", F_ENUM, 0, NULL, exporter_profiles, NULL, 0, 0},
    {"format", F_ENUM, 0, "\"json\"", exporter_formats, NULL, 0, 0},
    {"filter", F_TEXT, 0, NULL, NULL, NULL, 0, 0},
    {"start", F_ENUM, 0, "\"now\"", exporter_starts, NULL, 0, 0},
    {"paused", F_BOOL, 0, "false", NULL, NULL, 0, 0},
    {"batch", F_OBJECT, 0, NULL, NULL, exporter_batch_fields, 0, 0},
    {"timeout", F_MS, 0, NULL, NULL, NULL, 0, 0},
    {"tls", F_OBJECT, 0, NULL, NULL, exporter_tls_fields, 0, 0},
    {"auth", F_OBJECT, 0, NULL, NULL, exporter_auth_fields, 0, 0},
    {"auth_sealed", F_SEALED, 0, NULL, NULL, NULL, 0, 0},
    {"index", F_STR, 0, NULL, NULL, NULL, 0, 0},
    {"labels", F_LABELS, 0, NULL, NULL, NULL, 0, 0},
    {"max_bytes", F_INT, 0, NULL, NULL, NULL, 4096, 1LL << 40},
    {"max_files", F_INT, 0, NULL, NULL, NULL, 1, 1000},
    {NULL, 0, 0, NULL, NULL, NULL, 0, 0},
};

static const struct field *fields_of(enum store_kind kind)
{
    switch (kind) {
    case STORE_SETTINGS:
        return settings_fields;
    case STORE_SYSTEMS:
        return system_fields;
    case STORE_CLIENTS:
        return client_fields;
    case STORE_ACCESS_POLICIES:
        return access_fields;
    case STORE_GRANTS:
        return grant_fields;
    case STORE_TRUSTED_ISSUERS:
        return issuer_fields;
    case STORE_EXPORTERS:
        return exporter_fields;
    default:
        return NULL;
    }
}

__attribute__((format(printf, 5, 6))) static int fail(struct policy_error *e, const json_t *node,
                                                      const char *key, const char *where,
                                                      const char *fmt, ...)
{
    if (!e)
        return ERR_INVAL;
    char what[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    snprintf(e->msg, sizeof(e->msg), "%s%s%s%s%s", where, *where && key ? "." : "", key ? key : "",
             *where || key ? ": " : "", what);
    e->node = node;
    e->key = key;
    return ERR_INVAL;
}

static int has_ctl(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int valid_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 128)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return 0;
    }
    return 1;
}

/* An absolute http(s) URL with a host, no fragment, no whitespace. */
static int valid_url(const char *s)
{
    size_t n = strlen(s);
    if (n > 2048 || has_ctl(s) || strchr(s, ' ') || strchr(s, '#'))
        return 0;
    const char *host;
    if (strncmp(s, "https://", 8) == 0)
        host = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        host = s + 7;
    else
        return 0;
    return *host && *host != '/' && *host != ':' && *host != '?';
}

/* RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ) */
static int valid_scope(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 256)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e)
            return 0;
    }
    return 1;
}

static int in_enum(const char *s, const char *const *enums)
{
    for (; *enums; enums++)
        if (strcmp(s, *enums) == 0)
            return 1;
    return 0;
}

static char *join_enum(const char *const *enums, char *out, size_t n)
{
    out[0] = '\0';
    for (const char *const *p = enums; *p; p++) {
        if (p != enums)
            strncat(out, ", ", n - strlen(out) - 1);
        strncat(out, *p, n - strlen(out) - 1);
    }
    return out;
}

#define MAX_LIST 1000

/* Validates one string array with `check`; returns a new canonical array (duplicates
 * removed, order kept) or NULL with e filled. */
static json_t *string_list(const json_t *v, const char *where, const char *key,
                           int (*check)(const char *), const char *what, struct policy_error *e)
{
    if (!json_is_array(v)) {
        fail(e, v, key, where, "expected a list of %s", what);
        return NULL;
    }
    if (json_array_size(v) > MAX_LIST) {
        fail(e, v, key, where, "at most %d entries", MAX_LIST);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    const json_t *it;
    json_array_foreach(v, i, it)
    {
        const char *s = json_string_value(it);
        if (!s || !check(s)) {
            char k[64];
            snprintf(k, sizeof(k), "%s[%zu]", key, i);
            fail(e, it, key, where, "entry %zu: expected %s", i, what);
            json_decref(out);
            return NULL;
        }
        int dup = 0;
        size_t j;
        const json_t *o;
        json_array_foreach(out, j, o) dup |= strcmp(json_string_value(o), s) == 0;
        if (!dup)
            json_array_append_new(out, json_string(s));
    }
    return out;
}

static int alg_ok(const char *s)
{
    enum jose_alg a;
    return jose_alg_parse(s, &a) == 0;
}

static int subject_ok(const char *s)
{
    const char *rest;
    if (strncmp(s, "user:", 5) == 0)
        rest = s + 5;
    else if (strncmp(s, "group:", 6) == 0)
        rest = s + 6;
    else if (strncmp(s, "client:", 7) == 0)
        return valid_id(s + 7);
    else
        return 0;
    return *rest && strlen(rest) <= 256 && !has_ctl(rest);
}

static _Thread_local const char *const *tl_enums;
static int enum_ok(const char *s)
{
    return in_enum(s, tl_enums);
}

static int jwks_check(const json_t *v, const char *where, const char *key, struct policy_error *e)
{
    const json_t *keys = json_object_get(v, "keys");
    if (!json_is_object(v) || !json_is_array(keys) || json_array_size(keys) == 0)
        return fail(e, v, key, where, "expected a JWK set: {\"keys\": [ ... ]}");
    if (json_array_size(keys) > 100)
        return fail(e, v, key, where, "at most 100 keys");
    size_t i;
    const json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!json_is_object(k) || !json_is_string(json_object_get(k, "kty")))
            return fail(e, k, key, where, "keys[%zu]: expected a JWK with \"kty\"", i);
        if (json_object_get(k, "d") || json_object_get(k, "k"))
            return fail(e, k, key, where, "keys[%zu]: must be a public key", i);
        const char *alg = json_string_value(json_object_get(k, "alg"));
        if (alg && !alg_ok(alg))
            return fail(e, k, key, where, "keys[%zu]: algorithm \"%s\" is not accepted", i, alg);
    }
    return 0;
}

static int scopes_check(const json_t *v, const char *where, const char *key, json_t **ret,
                        struct policy_error *e)
{
    if (!json_is_array(v))
        return fail(e, v, key, where, "expected a list of scopes");
    if (json_array_size(v) > MAX_LIST)
        return fail(e, v, key, where, "at most %d scopes", MAX_LIST);
    json_t *out = json_array();
    size_t i;
    const json_t *it;
    json_array_foreach(v, i, it)
    {
        char w[160];
        snprintf(w, sizeof(w), "%s%s%s[%zu]", where, *where ? "." : "", key, i);
        json_t *sc;
        if (json_is_string(it)) {
            sc = json_pack("{s:s, s:b}", "name", json_string_value(it), "enabled", 1);
        } else if (json_is_object(it)) {
            const char *k;
            const json_t *m;
            json_object_foreach((json_t *)it, k, m)
            {
                if (strcmp(k, "name") && strcmp(k, "enabled") && strcmp(k, "classification") &&
                    strcmp(k, "description")) {
                    json_decref(out);
                    return fail(e, it, k, w, "unknown field");
                }
            }
            const json_t *name = json_object_get(it, "name");
            const json_t *en = json_object_get(it, "enabled");
            const json_t *cl = json_object_get(it, "classification");
            const json_t *de = json_object_get(it, "description");
            if (!json_is_string(name)) {
                json_decref(out);
                return fail(e, name ? name : it, "name", w, "required, a scope name");
            }
            if (en && !json_is_boolean(en)) {
                json_decref(out);
                return fail(e, en, "enabled", w, "expected true or false");
            }
            if ((cl && !json_is_string(cl)) || (de && !json_is_string(de))) {
                json_decref(out);
                return fail(e, cl && !json_is_string(cl) ? cl : de,
                            cl && !json_is_string(cl) ? "classification" : "description", w,
                            "expected a string");
            }
            sc = json_pack("{s:s, s:b}", "name", json_string_value(name), "enabled",
                           en ? json_is_true(en) : 1);
            if (cl)
                json_object_set(sc, "classification", (json_t *)cl);
            if (de)
                json_object_set(sc, "description", (json_t *)de);
        } else {
            json_decref(out);
            return fail(e, it, key, where, "entry %zu: expected a scope name or {name, enabled}",
                        i);
        }
        const char *nm = json_string_value(json_object_get(sc, "name"));
        int bad = !valid_scope(nm);
        size_t j;
        const json_t *o;
        json_array_foreach(out, j, o) if (!bad && strcmp(json_string_value(json_object_get(o, "name")),
                                                         nm) == 0) bad = 2;
        if (bad) {
            /* the message is made before sc (which owns nm) is released */
            int r = bad == 1 ? fail(e, it, "name", w,
                                    "\"%.100s\" is not a valid scope name (RFC 6749 §3.3)", nm)
                             : fail(e, it, "name", w, "duplicate scope \"%.100s\"", nm);
            json_decref(sc);
            json_decref(out);
            return r;
        }
        json_array_append_new(out, sc);
    }
    *ret = out;
    return 0;
}

static int members(const struct field *fields, const json_t *in, const char *where, json_t **ret,
                   struct policy_error *e);

static int label_name_ok(const char *s)
{
    if (!*s || strlen(s) > 64 || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
              *p == '_'))
            return 0;
    return 1;
}

/* Checks and canonicalises one member value; *ret is a new reference. */
static int check_value(const struct field *f, const json_t *v, const char *where,
                       json_t **ret, struct policy_error *e)
{
    const char *s = json_string_value(v);
    char buf[256];
    switch (f->type) {
    case F_ID:
        if (!s || !valid_id(s))
            return fail(e, v, f->name, where,
                        "expected an identifier (letters, digits, '.', '_', '-'; at most 128)");
        break;
    case F_STR:
        if (!s || !*s || strlen(s) > 1024 || has_ctl(s))
            return fail(e, v, f->name, where, "expected a non-empty string (at most 1024 bytes)");
        break;
    case F_URL:
        if (!s || !valid_url(s))
            return fail(e, v, f->name, where, "expected an absolute http(s) URL without fragment");
        break;
    case F_BOOL:
        if (!json_is_boolean(v))
            return fail(e, v, f->name, where, "expected true or false");
        break;
    case F_DURATION: {
        int64_t secs;
        if (json_is_integer(v) && json_integer_value(v) > 0 &&
            json_integer_value(v) <= 10LL * 366 * 86400)
            secs = json_integer_value(v);
        else if (!s || duration_parse(s, &secs) < 0)
            return fail(e, v, f->name, where, "expected a duration such as 300s, 5m or 1h");
        char out[TIME_STR_LEN];
        duration_format(secs, out);
        *ret = json_string(out);
        return 0;
    }
    case F_ENUM:
        if (!s || !in_enum(s, f->enums))
            return fail(e, v, f->name, where, "expected one of: %s",
                        join_enum(f->enums, buf, sizeof(buf)));
        break;
    case F_ENUMLIST:
        tl_enums = f->enums;
        *ret = string_list(v, where, f->name, enum_ok, join_enum(f->enums, buf, sizeof(buf)), e);
        return *ret ? 0 : ERR_INVAL;
    case F_URLLIST:
        *ret = string_list(v, where, f->name, valid_url, "absolute http(s) URLs", e);
        return *ret ? 0 : ERR_INVAL;
    case F_SCOPELIST:
        *ret = string_list(v, where, f->name, valid_scope, "scope names", e);
        return *ret ? 0 : ERR_INVAL;
    case F_SCOPES:
        return scopes_check(v, where, f->name, ret, e);
    case F_ALG:
        if (!s || !alg_ok(s))
            return fail(e, v, f->name, where, "expected one of: ES256, ES384, RS256, PS256, EdDSA");
        break;
    case F_ALG_INHERIT:
        if (!s || (strcmp(s, "inherit") && !alg_ok(s)))
            return fail(e, v, f->name, where,
                        "expected inherit or one of: ES256, ES384, RS256, PS256, EdDSA");
        break;
    case F_ALGLIST:
        *ret = string_list(v, where, f->name, alg_ok, "algorithms (ES256, ES384, RS256, PS256, EdDSA)",
                           e);
        if (*ret && json_array_size(*ret) == 0) {
            json_decref(*ret);
            return fail(e, v, f->name, where, "at least one algorithm");
        }
        return *ret ? 0 : ERR_INVAL;
    case F_SUBJECT:
        if (!s || !subject_ok(s))
            return fail(e, v, f->name, where,
                        "expected user:ID, group:NAME or client:ID");
        break;
    case F_JWKS: {
        int r = jwks_check(v, where, f->name, e);
        if (r < 0)
            return r;
        break;
    }
    case F_SECRET:
        if (!s || strlen(s) < 8 || strlen(s) > 512)
            return fail(e, v, f->name, where, "expected a string of 8 to 512 bytes");
        break;
    case F_SECRET_HASH:
        if (!s || !secret_hash_valid(s))
            return fail(e, v, f->name, where,
                        "expected a hash made by mcpauth ($pbkdf2-sha512$...)");
        break;
    case F_OBJECT: {
        char sub[200];
        snprintf(sub, sizeof(sub), "%s%s%s", where, *where ? "." : "", f->name);
        return members(f->sub, v, sub, ret, e);
    }
    case F_INT:
        if (!json_is_integer(v) || json_integer_value(v) < f->imin ||
            json_integer_value(v) > f->imax)
            return fail(e, v, f->name, where, "expected a whole number from %lld to %lld",
                        f->imin, f->imax);
        break;
    case F_MS: {
        int64_t ms = 0;
        if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) <= 3600)
            ms = json_integer_value(v) * 1000;
        else if (!s || duration_parse_ms(s, &ms) < 0 || ms > 3600 * 1000)
            return fail(e, v, f->name, where,
                        "expected a duration from 1ms to 1h, such as 250ms, 1s or 2m");
        char out[TIME_STR_LEN];
        if (ms % 1000 == 0)
            duration_format(ms / 1000, out);
        else
            snprintf(out, sizeof(out), "%lldms", (long long)ms);
        *ret = json_string(out);
        return 0;
    }
    case F_LABELS: {
        if (!json_is_object(v) || json_object_size(v) > 16)
            return fail(e, v, f->name, where, "expected an object of at most 16 labels");
        const char *lk;
        json_t *lv;
        json_object_foreach((json_t *)v, lk, lv)
        {
            const char *ls = json_string_value(lv);
            if (!label_name_ok(lk) || !ls || !*ls || strlen(ls) > 256 || has_ctl(ls))
                return fail(e, v, f->name, where,
                            "label \"%.64s\": names are [A-Za-z_][A-Za-z0-9_]*, values "
                            "non-empty strings of at most 256 bytes",
                            lk);
        }
        break;
    }
    case F_CREDENTIAL:
        if (!s || !*s || strlen(s) > 4096)
            return fail(e, v, f->name, where, "expected a string of 1 to 4096 bytes");
        break;
    case F_SEALED:
        if (!s || strlen(s) > 16384)
            return fail(e, v, f->name, where, "expected a value sealed by mcpauth");
        break;
    case F_CLIENT_REF:
        if (!s || (!valid_id(s) && !valid_url(s)))
            return fail(e, v, f->name, where,
                        "expected an identifier (letters, digits, '.', '_', '-'; at most 128) "
                        "or the URL of a client ID metadata document");
        break;
    case F_TEXT:
        if (!s || strlen(s) > 4096 || has_ctl(s))
            return fail(e, v, f->name, where,
                        "expected a string of at most 4096 bytes without control characters");
        break;
    }
    *ret = json_incref((json_t *)v);
    return 0;
}

static int client_rules(json_t *out, const json_t *in, const json_t *existing, const char *where,
                        struct policy_error *e)
{
    const char *auth = json_string_value(json_object_get(out, "auth"));
    const json_t *secret = json_object_get(in, "secret");
    if (json_is_null(secret))
        secret = NULL; /* null means "not given", as for every optional field */
    int wants_secret = strncmp(auth, "client_secret_", 14) == 0;
    if (secret && !wants_secret)
        return fail(e, secret, "secret", where, "only clients with auth client_secret_basic or "
                                                "client_secret_post have a secret");
    if (secret && json_string_value(json_object_get(in, "secret_hash")))
        return fail(e, secret, "secret", where, "give secret or secret_hash, not both");
    if (secret) {
        const char *old = json_string_value(json_object_get(existing, "secret_hash"));
        const char *clear = json_string_value(secret);
        if (old && secret_verify(clear, old) == 0) {
            json_object_set_new(out, "secret_hash", json_string(old));
        } else {
            char *h = NULL;
            int r = secret_hash(clear, &h);
            if (r < 0)
                return r;
            json_object_set_new(out, "secret_hash", json_string(h));
            free(h);
        }
        json_object_del(out, "secret");
    }
    if (wants_secret && !json_object_get(out, "secret_hash")) {
        const char *old = json_string_value(json_object_get(existing, "secret_hash"));
        if (!old)
            return fail(e, in, "secret", where, "required for auth %s", auth);
        json_object_set_new(out, "secret_hash", json_string(old));
    }
    if (!wants_secret)
        json_object_del(out, "secret_hash");
    int has_keys = json_object_get(out, "jwks") || json_object_get(out, "jwks_uri");
    if (strcmp(auth, "private_key_jwt") == 0 && !has_keys)
        return fail(e, in, "jwks", where, "private_key_jwt needs jwks or jwks_uri");
    if (json_object_get(out, "jwks") && json_object_get(out, "jwks_uri"))
        return fail(e, in, "jwks_uri", where, "give jwks or jwks_uri, not both");
    return 0;
}

/* The key that seals exporter credentials (policy_set_kek); NULL until the server sets it. */
static const struct kek *seal_kek;

void policy_set_kek(const struct kek *k)
{
    __atomic_store_n(&seal_kek, k, __ATOMIC_RELEASE);
}

static int url_scheme_is(const char *url, const char *const *schemes)
{
    for (; *schemes; schemes++) {
        size_t n = strlen(*schemes);
        if (strncmp(url, *schemes, n) == 0 && strncmp(url + n, "://", 3) == 0)
            return 1;
    }
    return 0;
}

/* Cross-field rules of an exporter; seals "auth" into "auth_sealed" (kept from `existing`
 * when the credentials did not change, so re-applying the same object is not a change). */
static int exporter_rules(json_t *out, const json_t *in, const json_t *existing, const char *where,
                          struct policy_error *e)
{
    static const char *const syslog_s[] = {"udp", "tcp", "tls", "relp", NULL};
    static const char *const http_s[] = {"http", "https", NULL};
    static const char *const kafka_s[] = {"kafka", NULL};
    static const char *const nats_s[] = {"nats", NULL};
    static const char *const file_s[] = {"file", NULL};
    static const struct {
        const char *type;
        const char *const *schemes;
        const char *expect;
    } rules[] = {
        {"syslog", syslog_s, "udp://, tcp://, tls:// or relp://HOST:PORT"},
        {"http", http_s, "http(s)://HOST[:PORT]/PATH"},
        {"kafka", kafka_s, "kafka://BROKER[,BROKER...]/TOPIC"},
        {"nats", nats_s, "nats://HOST:PORT/SUBJECT"},
        {"file", file_s, "file:///ABSOLUTE/PATH"},
    };
    const char *type = json_string_value(json_object_get(out, "type"));
    const char *url = json_string_value(json_object_get(out, "url"));
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        if (strcmp(rules[i].type, type) != 0)
            continue;
        if (strlen(url) > 2048 || has_ctl(url) || !url_scheme_is(url, rules[i].schemes))
            return fail(e, in, "url", where, "a %s exporter's url is %s", type, rules[i].expect);
    }
    if (strcmp(type, "syslog") == 0) {
        const char *auth = strstr(url, "://") + 3;
        if (auth[strcspn(auth, "/?#")])
            return fail(e, in, "url", where, "a syslog url is SCHEME://HOST:PORT, with no path");
        if (json_object_get(out, "tls") && strncmp(url, "tls://", 6) != 0)
            return fail(e, in, "tls", where, "tls settings apply only to a tls:// url");
    }
    const char *profile = json_string_value(json_object_get(out, "profile"));
    if (strcmp(type, "http") == 0 && !profile)
        return fail(e, in, "profile", where,
                    "an http exporter needs a profile: webhook, splunk_hec, loki or elastic");
    if (strcmp(type, "http") != 0 && profile)
        return fail(e, in, "profile", where, "only http exporters have a profile");
    const char *format = json_string_value(json_object_get(out, "format"));
    if (profile && strcmp(profile, "elastic") == 0 && strcmp(format, "json") &&
        strcmp(format, "ocsf"))
        return fail(e, in, "format", where, "the elastic profile sends json or ocsf documents");

    json_t *auth = json_object_get(out, "auth");
    const char *id = json_string_value(json_object_get(out, "id"));
    char aad[200];
    snprintf(aad, sizeof(aad), "exporter:%s", id);
    const struct kek *k = __atomic_load_n(&seal_kek, __ATOMIC_ACQUIRE);
    const char *old = json_string_value(json_object_get(existing, "auth_sealed"));
    const char *given = json_string_value(json_object_get(out, "auth_sealed"));
    if (given && !auth && (!old || strcmp(given, old) != 0))
        return fail(e, in, "auth_sealed", where,
                    "set credentials with \"auth\"; auth_sealed is kept by mcpauth");
    if (!auth)
        return 0;
    if (json_object_size(auth) == 0) { /* "auth": {} removes the credentials */
        json_object_del(out, "auth");
        json_object_del(out, "auth_sealed");
        return 0;
    }
    if (!k)
        return fail(e, in, "auth", where, "credentials cannot be sealed: no key-encryption key");
    char *text = json_dumps(auth, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return ERR_NOMEM;
    int r = 0;
    unsigned char *pt = NULL;
    size_t n = 0;
    if (old && kek_open(k, aad, old, &pt, &n) == 0 && n == strlen(text) &&
        memcmp(pt, text, n) == 0) {
        json_object_set_new(out, "auth_sealed", json_string(old));
    } else {
        char *sealed = NULL;
        r = kek_seal(k, aad, text, strlen(text), &sealed);
        if (r == 0)
            json_object_set_new(out, "auth_sealed", json_string(sealed));
        free(sealed);
    }
    if (pt) {
        crypto_wipe(pt, n);
        free(pt);
    }
    crypto_wipe(text, strlen(text));
    free(text);
    json_object_del(out, "auth");
    return r;
}

/* Cross-field rules of a trusted issuer's sign-in settings; seals "client_secret" into
 * "client_secret_sealed" under the KEK (bound to "trusted_issuer:ID"), kept from
 * `existing` when the secret did not change, as exporter credentials are. */
static int issuer_rules(json_t *out, const json_t *in, const json_t *existing, const char *where,
                        struct policy_error *e)
{
    int has_authz = json_object_get(out, "authorization_endpoint") != NULL;
    if (has_authz && (!json_object_get(out, "token_endpoint") || !json_object_get(out, "client_id")))
        return fail(e, in, json_object_get(out, "token_endpoint") ? "client_id" : "token_endpoint",
                    where, "required with authorization_endpoint (mcpauth signs users in there)");
    const char *id = json_string_value(json_object_get(out, "id"));
    char aad[1200];
    snprintf(aad, sizeof(aad), "trusted_issuer:%s", id);
    const char *old = json_string_value(json_object_get(existing, "client_secret_sealed"));
    const char *given = json_string_value(json_object_get(out, "client_secret_sealed"));
    const char *secret = json_string_value(json_object_get(out, "client_secret"));
    if (given && !secret && (!old || strcmp(given, old) != 0))
        return fail(e, in, "client_secret_sealed", where,
                    "set the secret with \"client_secret\"; client_secret_sealed is kept by mcpauth");
    if (!secret)
        return 0;
    const struct kek *k = __atomic_load_n(&seal_kek, __ATOMIC_ACQUIRE);
    if (!k)
        return fail(e, in, "client_secret", where,
                    "the secret cannot be sealed: no key-encryption key");
    int r = 0;
    unsigned char *pt = NULL;
    size_t n = 0;
    if (old && kek_open(k, aad, old, &pt, &n) == 0 && n == strlen(secret) &&
        memcmp(pt, secret, n) == 0) {
        json_object_set_new(out, "client_secret_sealed", json_string(old));
    } else {
        char *sealed = NULL;
        r = kek_seal(k, aad, secret, strlen(secret), &sealed);
        if (r == 0)
            json_object_set_new(out, "client_secret_sealed", json_string(sealed));
        free(sealed);
    }
    if (pt) {
        crypto_wipe(pt, n);
        free(pt);
    }
    json_object_del(out, "client_secret");
    return r;
}

int policy_unseal(const char *aad, const char *sealed, char **ret)
{
    const struct kek *k = __atomic_load_n(&seal_kek, __ATOMIC_ACQUIRE);
    if (!k || !sealed)
        return ERR_NOTFOUND;
    unsigned char *pt = NULL;
    size_t n = 0;
    int r = kek_open(k, aad, sealed, &pt, &n);
    if (r < 0)
        return r;
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, pt, n);
        s[n] = '\0';
    }
    crypto_wipe(pt, n);
    free(pt);
    if (!s)
        return ERR_NOMEM;
    *ret = s;
    return 0;
}

/* Walks the members of `in` against `fields` into the new object *ret: unknown members
 * refused, each value checked and canonicalised, then defaults and required ones. */
static int members(const struct field *fields, const json_t *in, const char *where, json_t **ret,
                   struct policy_error *e)
{
    if (!json_is_object(in))
        return fail(e, in, NULL, where, "expected an object");
    json_t *out = json_object();
    if (!out)
        return ERR_NOMEM;
    int r = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)in, k, v)
    {
        const struct field *f = fields;
        while (f->name && strcmp(f->name, k) != 0)
            f++;
        if (!f->name) {
            r = fail(e, in, k, where, "unknown field");
            goto fail;
        }
        if (json_is_null(v) && !f->required)
            continue; /* null = not given: the default applies */
        json_t *c = NULL;
        r = check_value(f, v, where, &c, e);
        if (r < 0) {
            /* a scalar has no line of its own (jansson shares true/false/null): point at
             * the member's key in its object instead */
            if (e && (!e->node || (!json_is_object(e->node) && !json_is_array(e->node)))) {
                e->node = in;
                e->key = f->name;
            }
            goto fail;
        }
        json_object_set_new(out, k, c);
    }
    for (const struct field *f = fields; f->name; f++) {
        if (json_object_get(out, f->name))
            continue;
        if (f->required) {
            r = fail(e, in, f->name, where, "required");
            goto fail;
        }
        if (f->def)
            json_object_set_new(out, f->name, json_loads(f->def, JSON_DECODE_ANY, NULL));
    }
    *ret = out;
    return 0;
fail:
    json_decref(out);
    return r;
}

int policy_normalize(enum store_kind kind, const json_t *in, const json_t *existing,
                     const char *where, json_t **ret, char **ret_id, struct policy_error *e)
{
    const struct field *fields = fields_of(kind);
    if (!fields)
        return fail(e, in, NULL, where, "this kind is not managed here");
    json_t *out = NULL;
    int r = members(fields, in, where, &out, e);
    if (r < 0)
        return r;

    char *id = NULL;
    switch (kind) {
    case STORE_SETTINGS:
        id = strdup("settings");
        break;
    case STORE_SYSTEMS:
        if (!json_object_get(out, "name"))
            json_object_set(out, "name", json_object_get(out, "id"));
        id = strdup(json_string_value(json_object_get(out, "id")));
        break;
    case STORE_CLIENTS:
        r = client_rules(out, in, existing, where, e);
        if (r < 0)
            goto fail;
        if (!json_object_get(out, "name"))
            json_object_set(out, "name", json_object_get(out, "id"));
        id = strdup(json_string_value(json_object_get(out, "id")));
        break;
    case STORE_ACCESS_POLICIES:
        id = strdup(json_string_value(json_object_get(out, "id")));
        break;
    case STORE_GRANTS: {
        const char *sys = json_string_value(json_object_get(out, "system"));
        const char *sub = json_string_value(json_object_get(out, "subject"));
        /* a grant is identified by its system and subject: the id is derived, never
         * chosen, so changing either is a different grant, not an update */
        const char *given = json_string_value(json_object_get(out, "id"));
        size_t n = strlen(sys) + strlen(sub) + 2;
        id = malloc(n);
        if (id)
            snprintf(id, n, "%s:%s", sys, sub);
        if (id && given && strcmp(given, id) != 0) {
            r = fail(e, json_object_get(in, "id") ? in : out, "id", where,
                     "\"%.200s\" is not \"SYSTEM:SUBJECT\" (%.200s): subject and system identify "
                     "a grant; delete it and create a new one to change them",
                     given, id);
            free(id);
            goto fail;
        }
        json_object_set_new(out, "id", json_string(id ? id : ""));
        break;
    }
    case STORE_EXPORTERS:
        r = exporter_rules(out, in, existing, where, e);
        if (r < 0)
            goto fail;
        id = strdup(json_string_value(json_object_get(out, "id")));
        break;
    case STORE_TRUSTED_ISSUERS:
        if (!json_object_get(out, "jwks") == !json_object_get(out, "jwks_uri")) {
            r = fail(e, in, "jwks_uri", where, "give jwks_uri or an inline jwks (one of them)");
            goto fail;
        }
        if (!json_object_get(out, "id"))
            json_object_set(out, "id", json_object_get(out, "issuer"));
        r = issuer_rules(out, in, existing, where, e);
        if (r < 0)
            goto fail;
        id = strdup(json_string_value(json_object_get(out, "id")));
        break;
    default:
        break;
    }
    if (!id) {
        r = ERR_NOMEM;
        goto fail;
    }
    *ret = out;
    *ret_id = id;
    return 0;
fail:
    json_decref(out);
    return r;
}

static json_t *view(enum store_kind kind, const json_t *doc, int masked)
{
    json_t *c = json_deep_copy(doc);
    if (kind == STORE_EXPORTERS && c && json_object_get(c, "auth_sealed")) {
        json_object_del(c, "auth_sealed");
        json_object_set_new(c, masked ? "auth_sealed" : "auth_set",
                            masked ? json_string("***") : json_true());
    }
    if (kind == STORE_TRUSTED_ISSUERS && c && json_object_get(c, "client_secret_sealed")) {
        json_object_del(c, "client_secret_sealed");
        json_object_set_new(c, masked ? "client_secret_sealed" : "client_secret_set",
                            masked ? json_string("***") : json_true());
    }
    if (kind == STORE_CLIENTS && c && json_object_get(c, "secret_hash")) {
        json_object_del(c, "secret_hash");
        if (masked)
            json_object_set_new(c, "secret_hash", json_string("***"));
        else
            json_object_set_new(c, "secret_set", json_true());
    }
    return c;
}

json_t *policy_public_view(enum store_kind kind, const json_t *doc)
{
    return view(kind, doc, 0);
}

json_t *policy_masked_view(enum store_kind kind, const json_t *doc)
{
    return view(kind, doc, 1);
}
