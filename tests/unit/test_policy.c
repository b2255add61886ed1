/* tests/unit/test_policy.c — policy/: per-kind normalisation (defaults, the
 * canonical form, every refusal and the message that names the field), the
 * public and masked views, and the snapshot (lookups, the cross-object rules,
 * settings, signing keys, and the holder's reference counting). No store: the
 * snapshot is built from arrays of documents made here by policy_normalize.
 * Client secrets cost one PBKDF2 (~0.1 s) each, so only a few tests make one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jose/crypto.h"
#include "jose/keys.h"
#include "policy/policy.h"

#define TX "urn:ietf:params:oauth:grant-type:token-exchange"

static const unsigned char KEK1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                       23, 24, 25, 26, 27, 28, 29, 30, 31};
static const unsigned char KEK2[32] = {0xee};

static json_t *J(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    if (!v)
        fail_msg("bad JSON in test: %s: %s", text, je.text);
    return v;
}

static void assert_json_equal(const json_t *got, const char *want_text)
{
    json_t *want = J(want_text);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("got  %s\nwant %s", g ? g : "(null)", w ? w : "(null)");
    }
    json_decref(want);
}

/* Normalises `text` as `kind` (with `existing`); fails the test on error. */
static json_t *norm_ok_with(enum store_kind kind, const char *text, const json_t *existing,
                            char **ret_id)
{
    json_t *in = J(text), *out = NULL;
    char *id = NULL;
    struct policy_error e = {{0}, NULL, NULL};
    int r = policy_normalize(kind, in, existing, "", &out, &id, &e);
    if (r != 0)
        fail_msg("normalize %s: %d %s", text, r, e.msg);
    json_decref(in);
    assert_non_null(out);
    assert_non_null(id);
    if (ret_id)
        *ret_id = id;
    else
        free(id);
    return out;
}

static json_t *norm_ok(enum store_kind kind, const char *text)
{
    return norm_ok_with(kind, text, NULL, NULL);
}

/* Expects ERR_INVAL and a message containing `needle`; outputs untouched. */
static void norm_fails_with(enum store_kind kind, const char *text, const json_t *existing,
                            const char *where, const char *needle)
{
    json_t *in = J(text);
    json_t *out = (json_t *)0x1;
    char *id = (char *)0x1;
    struct policy_error e = {{0}, NULL, NULL};
    int r = policy_normalize(kind, in, existing, where, &out, &id, &e);
    if (r != ERR_INVAL || !strstr(e.msg, needle))
        fail_msg("%s: got %d '%s', want ERR_INVAL with '%s'", text, r, e.msg, needle);
    assert_ptr_equal(out, (json_t *)0x1);
    assert_ptr_equal(id, (char *)0x1);
    json_decref(in);
}

static void norm_fails(enum store_kind kind, const char *text, const char *needle)
{
    norm_fails_with(kind, text, NULL, "", needle);
}

/* ---- kinds ---- */

static void test_kinds(void **state)
{
    (void)state;
    assert_int_equal(policy_kind_by_path("access-policies")->kind, STORE_ACCESS_POLICIES);
    assert_int_equal(policy_kind_by_path("trusted-issuers")->kind, STORE_TRUSTED_ISSUERS);
    assert_int_equal(policy_kind_by_section("access_policies")->kind, STORE_ACCESS_POLICIES);
    assert_int_equal(policy_kind_by_section("trusted_issuers")->kind, STORE_TRUSTED_ISSUERS);
    assert_null(policy_kind_by_path("access_policies"));
    assert_null(policy_kind_by_section("access-policies"));
    assert_null(policy_kind_by_path("nope"));
    assert_string_equal(policy_kind_info(STORE_SYSTEMS)->singular, "system");
    assert_string_equal(policy_kind_info(STORE_GRANTS)->path, "grants");
    assert_null(policy_kind_info(STORE_KIND_COUNT));
}

/* ---- normalisation: defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    char *id = NULL;
    json_t *o = norm_ok_with(STORE_SYSTEMS,
                             "{\"id\": \"github\", \"audience\": \"https://auth.github.example/\"}",
                             NULL, &id);
    assert_string_equal(id, "github");
    assert_json_equal(o, "{\"id\": \"github\", \"name\": \"github\","
                         " \"audience\": \"https://auth.github.example/\","
                         " \"resource_urls\": [], \"scopes\": [], \"paused\": false,"
                         " \"signing_alg\": \"inherit\", \"token_type\": \"id-jag\"}");
    free(id);
    json_decref(o);

    o = norm_ok_with(STORE_CLIENTS, "{\"id\": \"cli\", \"auth\": \"none\"}", NULL, &id);
    assert_string_equal(id, "cli");
    assert_json_equal(o, "{\"id\": \"cli\", \"name\": \"cli\", \"auth\": \"none\","
                         " \"redirect_uris\": [], \"grant_types\": [\"" TX "\"]}");
    free(id);
    json_decref(o);

    o = norm_ok_with(STORE_ACCESS_POLICIES,
                     "{\"id\": \"ap\", \"client\": \"c\", \"system\": \"s\"}", NULL, &id);
    assert_string_equal(id, "ap");
    assert_json_equal(o,
                      "{\"id\": \"ap\", \"client\": \"c\", \"system\": \"s\", \"active\": true}");
    free(id);
    json_decref(o);

    o = norm_ok_with(STORE_TRUSTED_ISSUERS,
                     "{\"issuer\": \"https://idp.example.com\", \"audience\": \"mcpauth\","
                     " \"jwks_uri\": \"https://idp.example.com/jwks\"}",
                     NULL, &id);
    assert_string_equal(id, "https://idp.example.com");
    assert_json_equal(o, "{\"id\": \"https://idp.example.com\","
                         " \"issuer\": \"https://idp.example.com\", \"audience\": \"mcpauth\","
                         " \"jwks_uri\": \"https://idp.example.com/jwks\","
                         " \"algorithms\": [\"RS256\", \"ES256\"], \"user_claim\": \"sub\","
                         " \"groups_claim\": \"groups\"}");
    free(id);
    json_decref(o);

    o = norm_ok_with(STORE_GRANTS,
                     "{\"subject\": \"user:alice@example.com\", \"system\": \"github\","
                     " \"scopes\": [\"repo:read\"]}",
                     NULL, &id);
    assert_string_equal(id, "github:user:alice@example.com");
    assert_json_equal(o, "{\"id\": \"github:user:alice@example.com\","
                         " \"subject\": \"user:alice@example.com\", \"system\": \"github\","
                         " \"scopes\": [\"repo:read\"]}");
    free(id);
    json_decref(o);

    /* a grant's id is derived: naming the same one is fine, naming another is refused
     * (changing subject or system makes another grant, not an update) */
    o = norm_ok_with(STORE_GRANTS,
                     "{\"id\": \"s:group:eng\", \"subject\": \"group:eng\", \"system\": \"s\","
                     " \"scopes\": []}",
                     NULL, &id);
    assert_string_equal(id, "s:group:eng");
    free(id);
    json_decref(o);
    {
        json_t *in = json_loads("{\"id\": \"g1\", \"subject\": \"group:eng\", \"system\": \"s\","
                                " \"scopes\": []}",
                                0, NULL);
        json_t *out = NULL;
        char *gid = NULL;
        struct policy_error e;
        assert_int_equal(policy_normalize(STORE_GRANTS, in, NULL, "", &out, &gid, &e), ERR_INVAL);
        assert_non_null(strstr(e.msg, "SYSTEM:SUBJECT"));
        json_decref(in);
    }

    o = norm_ok_with(STORE_SETTINGS, "{}", NULL, &id);
    assert_string_equal(id, "settings");
    assert_json_equal(o, "{\"default_signing_alg\": \"ES256\", \"maintained_algs\": [\"ES256\"],"
                         " \"default_lifetime\": \"300s\"}");
    free(id);
    json_decref(o);

    /* null means "not given": the default applies */
    o = norm_ok(STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\","
                               " \"paused\": null, \"name\": null, \"token_type\": null}");
    assert_true(json_is_false(json_object_get(o, "paused")));
    assert_string_equal(json_string_value(json_object_get(o, "name")), "s");
    assert_string_equal(json_string_value(json_object_get(o, "token_type")), "id-jag");
    json_decref(o);

    /* given values are kept */
    o = norm_ok(STORE_SYSTEMS, "{\"id\": \"s\", \"name\": \"My system\", \"audience\":"
                               " \"http://a.example:8080/x?y=1\", \"paused\": true,"
                               " \"signing_alg\": \"EdDSA\", \"token_type\": \"access_token\"}");
    assert_json_equal(o, "{\"id\": \"s\", \"name\": \"My system\", \"audience\":"
                         " \"http://a.example:8080/x?y=1\", \"paused\": true,"
                         " \"signing_alg\": \"EdDSA\", \"token_type\": \"access_token\","
                         " \"resource_urls\": [], \"scopes\": []}");
    json_decref(o);
}

static void test_canonical_values(void **state)
{
    (void)state;
    /* scopes: bare names become {name, enabled: true}; objects keep what they give */
    json_t *o = norm_ok(STORE_SYSTEMS,
                        "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": ["
                        " \"repo:read\","
                        " {\"name\": \"repo:write\", \"enabled\": false, \"classification\": "
                        "\"write\"},"
                        " {\"name\": \"admin\", \"description\": \"all of it\"}]}");
    assert_json_equal(json_object_get(o, "scopes"),
                      "[{\"name\": \"repo:read\", \"enabled\": true},"
                      " {\"name\": \"repo:write\", \"enabled\": false, \"classification\": "
                      "\"write\"},"
                      " {\"name\": \"admin\", \"enabled\": true, \"description\": \"all of it\"}]");
    json_decref(o);

    /* durations are written back as seconds */
    static const struct {
        const char *in, *want;
    } durations[] = {{"\"5m\"", "300s"},   {"\"1h30m\"", "5400s"}, {"300", "300s"},
                     {"\"300s\"", "300s"}, {"\"1d\"", "86400s"},   {"\"300\"", "300s"}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        char text[200];
        snprintf(text, sizeof(text),
                 "{\"id\": \"s\", \"audience\": \"https://a.example\", \"max_lifetime\": %s}",
                 durations[i].in);
        o = norm_ok(STORE_SYSTEMS, text);
        assert_string_equal(json_string_value(json_object_get(o, "max_lifetime")),
                            durations[i].want);
        json_decref(o);
    }
    o = norm_ok(STORE_SETTINGS,
                "{\"default_lifetime\": \"1h\", \"default_signing_alg\": "
                "\"RS256\", \"maintained_algs\": [\"ES256\", \"EdDSA\", \"ES256\"]}");
    assert_json_equal(o, "{\"default_lifetime\": \"3600s\", \"default_signing_alg\": \"RS256\","
                         " \"maintained_algs\": [\"ES256\", \"EdDSA\"]}");
    json_decref(o);

    /* lists lose duplicates, keep order */
    o = norm_ok(STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\","
                               " \"resource_urls\": [\"https://b.example/mcp\","
                               " \"https://a.example/mcp\", \"https://b.example/mcp\"]}");
    assert_json_equal(json_object_get(o, "resource_urls"),
                      "[\"https://b.example/mcp\", \"https://a.example/mcp\"]");
    json_decref(o);

    /* the canonical form is a fixed point */
    o = norm_ok(STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\","
                               " \"scopes\": [\"x\"], \"max_lifetime\": \"2m\"}");
    char *text = json_dumps(o, 0);
    json_t *again = norm_ok(STORE_SYSTEMS, text);
    assert_true(json_equal(o, again));
    free(text);
    json_decref(again);
    json_decref(o);
}

/* ---- normalisation: refusals ---- */

static void test_unknown_field(void **state)
{
    (void)state;
    json_t *in = J("{\"id\": \"github\", \"audience\": \"https://a.example\", \"nmae\": \"x\"}");
    json_t *out = NULL;
    char *id = NULL;
    struct policy_error e = {{0}, NULL, NULL};
    assert_int_equal(policy_normalize(STORE_SYSTEMS, in, NULL, "systems[0]", &out, &id, &e),
                     ERR_INVAL);
    assert_string_equal(e.msg, "systems[0].nmae: unknown field");
    assert_non_null(e.key);
    assert_string_equal(e.key, "nmae");
    assert_ptr_equal(e.node, in); /* the object holding the key: YAML callers find its line */
    assert_null(out);
    assert_null(id);

    memset(&e, 0, sizeof(e));
    assert_int_equal(policy_normalize(STORE_SYSTEMS, in, NULL, "", &out, &id, &e), ERR_INVAL);
    assert_string_equal(e.msg, "nmae: unknown field");
    json_decref(in);

    /* unknown members of a scope object too */
    norm_fails_with(STORE_SYSTEMS,
                    "{\"id\": \"s\", \"audience\": \"https://a.example\","
                    " \"scopes\": [\"a\", {\"name\": \"b\", \"enabeld\": true}]}",
                    NULL, "systems[2]", "systems[2].scopes[1].enabeld: unknown field");
    /* the secret of the stored form is not a field of other kinds */
    norm_fails(STORE_SYSTEMS,
               "{\"id\": \"s\", \"audience\": \"https://a.example\", \"secret\": "
               "\"xxxxxxxxxx\"}",
               "secret: unknown field");
    norm_fails(STORE_SETTINGS, "{\"lifetime\": \"5m\"}", "lifetime: unknown field");
}

static void test_wrong_types(void **state)
{
    (void)state;
    static const struct {
        enum store_kind kind;
        const char *text, *needle;
    } cases[] = {
        /* required and shape */
        {STORE_SYSTEMS, "[]", "expected an object"},
        {STORE_SYSTEMS, "{\"id\": \"s\"}", "audience: required"},
        {STORE_SYSTEMS, "{\"audience\": \"https://a.example\"}", "id: required"},
        {STORE_SYSTEMS, "{\"id\": null, \"audience\": \"https://a.example\"}",
         "id: expected an "
         "identifier"},
        {STORE_EXPORTERS, "{\"id\": \"x\"}", "type: required"},
        {STORE_EXPORTERS, "{\"id\": \"x\", \"type\": \"syslog\", \"url\": \"http://h:514\"}",
         "url: a syslog exporter's url is udp://, tcp://, tls:// or relp://HOST:PORT"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"syslog\", \"url\": \"tcp://h:514/x\"}",
         "url: a syslog url is SCHEME://HOST:PORT, with no path"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"syslog\", \"url\": \"tcp://h:514\", \"tls\": {}}",
         "tls: tls settings apply only to a tls:// url"},
        {STORE_EXPORTERS, "{\"id\": \"x\", \"type\": \"http\", \"url\": \"https://h/x\"}",
         "profile: an http exporter needs a profile"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"http\", \"profile\": \"elastic\", \"format\": \"cef\","
         " \"url\": \"https://h\"}",
         "format: the elastic profile sends json or ocsf documents"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"file\", \"url\": \"file:///tmp/a\", \"batch\": "
         "{\"max_events\": 0}}",
         "batch.max_events: expected a whole number from 1 to 10000"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"file\", \"url\": \"file:///tmp/a\", \"batch\": "
         "{\"max_wait\": \"2h\"}}",
         "batch.max_wait: expected a duration from 1ms to 1h"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"file\", \"url\": \"file:///tmp/a\", \"auth\": "
         "{\"token\": \"t\"}}",
         "auth: credentials cannot be sealed: no key-encryption key"},
        {STORE_EXPORTERS,
         "{\"id\": \"x\", \"type\": \"file\", \"url\": \"file:///tmp/a\", \"labels\": "
         "{\"9x\": \"v\"}}",
         "labels: label \"9x\""},
        /* identifier pattern */
        {STORE_SYSTEMS, "{\"id\": \"-s\", \"audience\": \"https://a.example\"}",
         "id: expected an "
         "identifier"},
        {STORE_SYSTEMS, "{\"id\": \"a b\", \"audience\": \"https://a.example\"}", "id: expected"},
        {STORE_SYSTEMS, "{\"id\": \"a/b\", \"audience\": \"https://a.example\"}", "id: expected"},
        {STORE_SYSTEMS, "{\"id\": \"\", \"audience\": \"https://a.example\"}", "id: expected"},
        {STORE_SYSTEMS, "{\"id\": 5, \"audience\": \"https://a.example\"}", "id: expected"},
        {STORE_ACCESS_POLICIES, "{\"id\": \"ap\", \"client\": \"c:d\", \"system\": \"s\"}",
         "client: expected an identifier"},
        /* strings */
        {STORE_SYSTEMS, "{\"id\": \"s\", \"name\": \"\", \"audience\": \"https://a.example\"}",
         "name: expected a non-empty string"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"name\": \"a\\nb\", \"audience\": \"https://a.example\"}",
         "name: expected a non-empty string"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"name\": 7, \"audience\": \"https://a.example\"}",
         "name: expected a non-empty string"},
        /* URLs */
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"auth.example.com\"}",
         "audience: expected an absolute http(s) URL without fragment"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example/#frag\"}",
         "audience: expected an absolute"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"ftp://a.example/\"}",
         "audience: expected"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://\"}", "audience: expected"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https:///path\"}", "audience: expected"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a b/\"}", "audience: expected"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"resource_urls\": "
         "[\"https://a.example/mcp\", \"/mcp\"]}",
         "resource_urls: entry 1: expected absolute http(s) URLs"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"resource_urls\": "
         "\"https://a.example/mcp\"}",
         "resource_urls: expected a list of absolute http(s) URLs"},
        /* booleans */
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"paused\": "
         "\"false\"}",
         "paused: expected true or false"},
        {STORE_ACCESS_POLICIES,
         "{\"id\": \"ap\", \"client\": \"c\", \"system\": \"s\", \"active\": 1}",
         "active: expected true or false"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [{\"name\": \"x\", "
         "\"enabled\": \"yes\"}]}",
         "scopes[0].enabled: expected true or false"},
        /* durations */
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"max_lifetime\": "
         "\"5x\"}",
         "max_lifetime: expected a duration such as 300s, 5m or 1h"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\", \"max_lifetime\": 0}",
         "max_lifetime: expected a duration"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"max_lifetime\": "
         "-5}",
         "max_lifetime: expected a duration"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"max_lifetime\": "
         "1.5}",
         "max_lifetime: expected a duration"},
        {STORE_SETTINGS, "{\"default_lifetime\": \"0s\"}", "default_lifetime: expected a duration"},
        /* enums */
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"token_type\": "
         "\"jwt\"}",
         "token_type: expected one of: id-jag, access_token"},
        {STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"basic\"}",
         "auth: expected one of: none, client_secret_basic, client_secret_post, "
         "private_key_jwt"},
        {STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"none\", \"grant_types\": [\"password\"]}",
         "grant_types: entry 0: expected " TX},
        /* algorithms: never none, never HMAC */
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"signing_alg\": "
         "\"none\"}",
         "signing_alg: expected inherit or one of"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"signing_alg\": "
         "\"HS256\"}",
         "signing_alg: expected inherit or one of"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"signing_alg\": "
         "\"es256\"}",
         "signing_alg: expected"},
        {STORE_SETTINGS, "{\"default_signing_alg\": \"none\"}",
         "default_signing_alg: expected one "
         "of"},
        {STORE_SETTINGS, "{\"default_signing_alg\": \"HS256\"}", "default_signing_alg: expected"},
        {STORE_SETTINGS, "{\"default_signing_alg\": \"inherit\"}", "default_signing_alg: expected"},
        {STORE_SETTINGS, "{\"maintained_algs\": [\"ES256\", \"HS256\"]}",
         "maintained_algs: entry 1: expected algorithms"},
        {STORE_SETTINGS, "{\"maintained_algs\": []}", "maintained_algs: at least one algorithm"},
        {STORE_TRUSTED_ISSUERS,
         "{\"issuer\": \"https://i.example\", \"audience\": \"a\", \"jwks_uri\": "
         "\"https://i.example/k\", \"algorithms\": [\"none\"]}",
         "algorithms: entry 0: expected algorithms"},
        {STORE_TRUSTED_ISSUERS,
         "{\"issuer\": \"https://i.example\", \"audience\": \"a\", \"jwks_uri\": "
         "\"https://i.example/k\", \"algorithms\": [\"HS256\"]}",
         "algorithms: entry 0"},
        {STORE_TRUSTED_ISSUERS, "{\"issuer\": \"https://i.example\", \"audience\": \"a\"}",
         "jwks_uri: give jwks_uri or an inline jwks"},
        /* subjects */
        {STORE_GRANTS, "{\"subject\": \"bob\", \"system\": \"s\", \"scopes\": []}",
         "subject: expected user:ID, group:NAME or client:ID"},
        {STORE_GRANTS, "{\"subject\": \"user:\", \"system\": \"s\", \"scopes\": []}",
         "subject: expected"},
        {STORE_GRANTS, "{\"subject\": \"client:a b\", \"system\": \"s\", \"scopes\": []}",
         "subject: expected"},
        {STORE_GRANTS, "{\"subject\": \"User:bob\", \"system\": \"s\", \"scopes\": []}",
         "subject: expected"},
        {STORE_GRANTS, "{\"subject\": \"user:bob\", \"system\": \"s\"}", "scopes: required"},
        /* scope names (RFC 6749 §3.3) */
        {STORE_GRANTS,
         "{\"subject\": \"user:bob\", \"system\": \"s\", \"scopes\": [\"repo read\"]}",
         "scopes: entry 0: expected scope names"},
        {STORE_GRANTS, "{\"subject\": \"user:bob\", \"system\": \"s\", \"scopes\": [\"a\\\"b\"]}",
         "scopes: entry 0: expected scope names"},
        {STORE_GRANTS, "{\"subject\": \"user:bob\", \"system\": \"s\", \"scopes\": [\"a\\\\b\"]}",
         "scopes: entry 0"},
        {STORE_GRANTS, "{\"subject\": \"user:bob\", \"system\": \"s\", \"scopes\": [\"\"]}",
         "scopes: entry 0"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [{\"enabled\": true}]}",
         "scopes[0].name: required"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [5]}",
         "scopes: entry 0: expected a scope name"},
        {STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": \"x\"}",
         "scopes: expected a list of scopes"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        norm_fails(cases[i].kind, cases[i].text, cases[i].needle);
}

static void test_scope_name_errors(void **state)
{
    (void)state;
    /* regression test: this was a bug, fixed with the test */
    static const struct {
        enum store_kind kind;
        const char *text, *needle;
    } cases[] = {
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [\"a b\"]}",
         "scopes[0].name: \"a b\" is not a valid scope name"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [{\"name\": "
         "\"a\\\"b\"}]}",
         "is not a valid scope name"},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [\"x\", \"y\", \"x\"]}",
         "scopes[2].name: duplicate scope \"x\""},
        {STORE_SYSTEMS,
         "{\"id\": \"s\", \"audience\": \"https://a.example\", \"scopes\": [{\"name\": \"x\"}, "
         "\"x\"]}",
         "duplicate scope \"x\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        norm_fails(cases[i].kind, cases[i].text, cases[i].needle);
}

/* ---- clients: secrets and keys ---- */

static void test_client_secret(void **state)
{
    (void)state;
    json_t *c1 = norm_ok(STORE_CLIENTS, "{\"id\": \"desktop\", \"secret\": \"dev-only-secret\"}");
    const char *h1 = json_string_value(json_object_get(c1, "secret_hash"));
    assert_non_null(h1);
    assert_true(strncmp(h1, "$pbkdf2-sha512$i=", 17) == 0);
    assert_true(secret_hash_valid(h1));
    assert_null(json_object_get(c1, "secret")); /* never stored in clear */
    assert_string_equal(json_string_value(json_object_get(c1, "auth")), "client_secret_basic");
    char *dump = json_dumps(c1, 0);
    assert_null(strstr(dump, "dev-only-secret"));
    free(dump);

    /* the same secret again, with the stored object: the identical hash (apply is a no-op).
     * This also proves h1 verifies the secret: otherwise a new, differently salted hash. */
    json_t *c2 = norm_ok_with(STORE_CLIENTS,
                              "{\"id\": \"desktop\", \"secret\": \"dev-only-secret\"}", c1, NULL);
    assert_true(json_equal(c1, c2));
    json_decref(c2);

    /* no secret given, one stored: kept (a replace that does not touch the secret) */
    c2 = norm_ok_with(STORE_CLIENTS, "{\"id\": \"desktop\", \"name\": \"Desktop\"}", c1, NULL);
    assert_string_equal(json_string_value(json_object_get(c2, "secret_hash")), h1);
    json_decref(c2);

    /* a different secret: a new hash that verifies the new secret only */
    c2 = norm_ok_with(STORE_CLIENTS,
                      "{\"id\": \"desktop\", \"auth\": \"client_secret_post\", \"secret\": "
                      "\"another-secret\"}",
                      c1, NULL);
    const char *h2 = json_string_value(json_object_get(c2, "secret_hash"));
    assert_string_not_equal(h2, h1);
    assert_int_equal(secret_verify("another-secret", h2), 0);
    json_decref(c2);

    /* the stored form (with secret_hash) normalises to itself */
    char *text = json_dumps(c1, 0);
    c2 = norm_ok(STORE_CLIENTS, text);
    assert_true(json_equal(c1, c2));
    json_decref(c2);

    /* secret and secret_hash together */
    json_t *both = J(text);
    json_object_set_new(both, "secret", json_string("dev-only-secret"));
    char *both_text = json_dumps(both, 0);
    norm_fails(STORE_CLIENTS, both_text, "secret: give secret or secret_hash, not both");
    free(both_text);
    json_decref(both);
    free(text);

    /* switching to auth none drops the stored hash */
    c2 = norm_ok_with(STORE_CLIENTS, "{\"id\": \"desktop\", \"auth\": \"none\"}", c1, NULL);
    assert_null(json_object_get(c2, "secret_hash"));
    json_decref(c2);

    /* views: the public one hides the hash, the audit one masks it */
    json_t *pub = policy_public_view(STORE_CLIENTS, c1);
    assert_null(json_object_get(pub, "secret_hash"));
    assert_true(json_is_true(json_object_get(pub, "secret_set")));
    assert_string_equal(json_string_value(json_object_get(pub, "id")), "desktop");
    json_decref(pub);
    json_t *masked = policy_masked_view(STORE_CLIENTS, c1);
    assert_string_equal(json_string_value(json_object_get(masked, "secret_hash")), "***");
    assert_null(json_object_get(masked, "secret_set"));
    json_decref(masked);
    /* the input is not modified */
    assert_string_equal(json_string_value(json_object_get(c1, "secret_hash")), h1);
    json_decref(c1);
}

static void test_client_rules(void **state)
{
    (void)state;
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\"}", "secret: required for auth client_secret_basic");
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"client_secret_post\"}",
               "secret: required for auth client_secret_post");
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"none\", \"secret\": \"0123456789\"}",
               "secret: only clients with auth client_secret_basic or client_secret_post");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"secret\": \"0123456789\"}",
               "secret: only clients");
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"secret\": \"short\"}",
               "secret: expected a string of 8 to 512 bytes");
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"secret_hash\": \"$pbkdf2-sha512$i=1$x$y\"}",
               "secret_hash: expected a hash made by mcpauth");
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"private_key_jwt\"}",
               "jwks: private_key_jwt needs jwks or jwks_uri");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks_uri\": \"https://c/k\","
               " \"jwks\": {\"keys\": [{\"kty\": \"EC\"}]}}",
               "jwks_uri: give jwks or jwks_uri, not both");
    /* JWK sets: public keys only, accepted algorithms only */
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": [{\"kty\": "
               "\"EC\", \"crv\": \"P-256\", \"x\": \"AA\", \"y\": \"AA\", \"d\": \"AA\"}]}}",
               "jwks: keys[0]: must be a public key");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": ["
               "{\"kty\": \"EC\"}, {\"kty\": \"oct\", \"k\": \"AA\"}]}}",
               "jwks: keys[1]: must be a public key");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": [{\"kty\": "
               "\"RSA\", \"alg\": \"HS256\"}]}}",
               "jwks: keys[0]: algorithm \"HS256\" is not accepted");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": []}}",
               "jwks: expected a JWK set");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": [{\"kty\": \"EC\"}]}",
               "jwks: expected a JWK set");
    norm_fails(STORE_CLIENTS,
               "{\"id\": \"c\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": [{\"x\": "
               "\"AA\"}]}}",
               "jwks: keys[0]: expected a JWK with \"kty\"");
    norm_fails(STORE_TRUSTED_ISSUERS,
               "{\"issuer\": \"https://i.example\", \"audience\": \"a\", \"jwks\": {\"keys\": "
               "[{\"kty\": \"RSA\", \"n\": \"AA\", \"e\": \"AQAB\", \"d\": \"AA\"}]}}",
               "jwks: keys[0]: must be a public key");

    /* what is accepted */
    json_t *o = norm_ok(STORE_CLIENTS,
                        "{\"id\": \"ci\", \"auth\": \"private_key_jwt\", \"jwks\": {\"keys\": "
                        "[{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"AA\", \"y\": \"AA\", "
                        "\"alg\": \"ES256\"}]}, \"grant_types\": [\"client_credentials\"]}");
    assert_null(json_object_get(o, "secret_hash"));
    assert_json_equal(json_object_get(o, "grant_types"), "[\"client_credentials\"]");
    /* views of an object without secrets are plain copies */
    json_t *pub = policy_public_view(STORE_CLIENTS, o);
    assert_true(json_equal(pub, o));
    assert_ptr_not_equal(pub, o);
    json_decref(pub);
    json_decref(o);
    o = norm_ok(STORE_CLIENTS, "{\"id\": \"ci\", \"auth\": \"private_key_jwt\", \"jwks_uri\": "
                               "\"https://ci.example/jwks\"}");
    json_decref(o);
}

/* Exporter credentials are sealed under the KEK, bound to the exporter's id, kept
 * byte-identical when re-applied unchanged, and never shown by the public view. */
static void test_exporter_auth_sealed(void **state)
{
    (void)state;
    unsigned char raw[32] = {7};
    struct kek *k = NULL;
    assert_int_equal(kek_from_bytes(raw, &k), 0);
    policy_set_kek(k);
    json_t *in = json_loads("{\"id\": \"hec\", \"type\": \"http\", \"profile\": \"splunk_hec\","
                            " \"url\": \"https://splunk.example:8088/services/collector/event\","
                            " \"auth\": {\"token\": \"hec-token-123\"}}",
                            0, NULL);
    json_t *out = NULL, *again = NULL;
    char *id = NULL;
    struct policy_error e = {0};
    assert_int_equal(policy_normalize(STORE_EXPORTERS, in, NULL, "", &out, &id, &e), 0);
    free(id);
    assert_null(json_object_get(out, "auth"));
    const char *sealed = json_string_value(json_object_get(out, "auth_sealed"));
    assert_non_null(sealed);
    assert_null(strstr(sealed, "hec-token-123"));
    unsigned char *pt = NULL;
    size_t n = 0;
    assert_int_equal(kek_open(k, "exporter:hec", sealed, &pt, &n), 0);
    assert_memory_equal(pt, "{\"token\":\"hec-token-123\"}", n);
    free(pt);
    assert_int_not_equal(kek_open(k, "exporter:other", sealed, &pt, &n), 0);
    /* unchanged credentials: the same sealed blob, so json_equal sees no change */
    assert_int_equal(policy_normalize(STORE_EXPORTERS, in, out, "", &again, &id, &e), 0);
    free(id);
    assert_true(json_equal(out, again));
    json_t *pub = policy_public_view(STORE_EXPORTERS, out);
    char *dump = json_dumps(pub, 0);
    assert_null(strstr(dump, "auth_sealed"));
    assert_true(json_is_true(json_object_get(pub, "auth_set")));
    free(dump);
    json_decref(pub);
    /* a forged auth_sealed is refused */
    json_t *forged = json_deep_copy(out);
    json_object_set_new(forged, "auth_sealed", json_string("v1.forged"));
    json_decref(again);
    again = NULL;
    assert_int_equal(policy_normalize(STORE_EXPORTERS, forged, out, "", &again, &id, &e),
                     ERR_INVAL);
    json_decref(forged);
    json_decref(in);
    json_decref(out);
    policy_set_kek(NULL);
    kek_free(k);
}

static void test_client_secret_null(void **state)
{
    (void)state;
    /* regression test: this was a bug, fixed with the test */
    norm_fails(STORE_CLIENTS, "{\"id\": \"c\", \"secret\": null}", "secret: required");
    json_t *o = norm_ok(STORE_CLIENTS, "{\"id\": \"c\", \"auth\": \"none\", \"secret\": null}");
    assert_null(json_object_get(o, "secret_hash"));
    json_decref(o);
}

/* ---- snapshot ---- */

struct lists {
    json_t *l[STORE_KIND_COUNT];
};

static void lists_init(struct lists *ls)
{
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        ls->l[k] = json_array();
}

static void lists_done(struct lists *ls)
{
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        json_decref(ls->l[k]);
}

static void add(struct lists *ls, enum store_kind kind, const char *text)
{
    json_array_append_new(ls->l[kind], norm_ok(kind, text));
}

static int build(struct lists *ls, uint64_t version, struct policy_snapshot **ret,
                 struct policy_error *e)
{
    struct policy_input in = {.version = version};
    for (int k = 0; k < STORE_KIND_COUNT; k++)
        in.lists[k] = ls->l[k];
    return policy_snapshot_build(&in, ret, e);
}

static struct policy_snapshot *build_ok(struct lists *ls, uint64_t version)
{
    struct policy_snapshot *s = NULL;
    struct policy_error e = {{0}, NULL, NULL};
    int r = build(ls, version, &s, &e);
    if (r != 0)
        fail_msg("snapshot build: %d %s", r, e.msg);
    assert_non_null(s);
    return s;
}

/* Expects ERR_INVAL with a message containing both needles, and *ret untouched. */
static void build_fails(struct lists *ls, const char *needle1, const char *needle2)
{
    struct policy_snapshot *s = (struct policy_snapshot *)0x1;
    struct policy_error e = {{0}, NULL, NULL};
    int r = build(ls, 1, &s, &e);
    if (r != ERR_INVAL || !strstr(e.msg, needle1) || !strstr(e.msg, needle2))
        fail_msg("build: got %d '%s', want ERR_INVAL with '%s' and '%s'", r, e.msg, needle1,
                 needle2);
    assert_ptr_equal(s, (struct policy_snapshot *)0x1);
    assert_non_null(e.node);
}

static void add_base(struct lists *ls)
{
    add(ls, STORE_SYSTEMS,
        "{\"id\": \"github\", \"name\": \"GitHub MCP\", \"audience\": "
        "\"https://auth.github.example/\", \"resource_urls\": [\"https://mcp.github.example/mcp\","
        " \"https://mcp.github.example/sse\"], \"scopes\": [\"repo:read\", {\"name\": "
        "\"repo:write\", \"enabled\": false, \"classification\": \"write\"}], \"max_lifetime\": "
        "\"5m\"}");
    add(ls, STORE_SYSTEMS,
        "{\"id\": \"slack\", \"audience\": \"https://slack.example/\", \"resource_urls\": "
        "[\"https://mcp.slack.example/\"], \"paused\": true, \"signing_alg\": \"EdDSA\", "
        "\"token_type\": \"access_token\"}");
    add(ls, STORE_CLIENTS,
        "{\"id\": \"desktop-agent\", \"name\": \"Desktop agent\", \"auth\": \"none\","
        " \"redirect_uris\": [\"http://127.0.0.1/callback\"]}");
    add(ls, STORE_CLIENTS,
        "{\"id\": \"ci\", \"auth\": \"private_key_jwt\", \"jwks_uri\": \"https://ci.example/jwks\","
        " \"grant_types\": [\"client_credentials\", "
        "\"urn:ietf:params:oauth:grant-type:jwt-bearer\"]}");
    add(ls, STORE_ACCESS_POLICIES,
        "{\"id\": \"desktop-github\", \"client\": \"desktop-agent\", \"system\": \"github\"}");
    add(ls, STORE_ACCESS_POLICIES,
        "{\"id\": \"ci-slack\", \"client\": \"ci\", \"system\": \"slack\", \"active\": false,"
        " \"client_id_at_system\": \"ci-at-slack\"}");
    add(ls, STORE_GRANTS,
        "{\"subject\": \"user:alice@example.com\", \"system\": \"github\", \"scopes\": "
        "[\"repo:read\", \"repo:write\"]}");
    add(ls, STORE_GRANTS,
        "{\"subject\": \"client:ci\", \"system\": \"slack\", \"scopes\": [\"chat:write\"]}");
    add(ls, STORE_TRUSTED_ISSUERS,
        "{\"issuer\": \"https://idp.example.com\", \"audience\": \"mcpauth\", \"jwks_uri\": "
        "\"https://idp.example.com/jwks\", \"algorithms\": [\"ES256\"], \"groups_claim\": "
        "\"roles\"}");
}

static void test_snapshot_lookups(void **state)
{
    (void)state;
    struct lists ls;
    lists_init(&ls);
    add_base(&ls);
    struct policy_snapshot *s = build_ok(&ls, 7);
    assert_int_equal(s->version, 7);
    assert_int_equal(s->n_systems, 2);
    assert_int_equal(s->n_clients, 2);
    assert_int_equal(s->n_access, 2);
    assert_int_equal(s->n_grants, 2);
    assert_int_equal(s->n_issuers, 1);

    const struct policy_system *gh = policy_system_by_id(s, "github");
    assert_non_null(gh);
    assert_string_equal(gh->id, "github");
    assert_string_equal(gh->name, "GitHub MCP");
    assert_string_equal(gh->audience, "https://auth.github.example/");
    assert_int_equal(gh->n_resource_urls, 2);
    assert_string_equal(gh->resource_urls[1], "https://mcp.github.example/sse");
    assert_int_equal(gh->n_scopes, 2);
    assert_string_equal(gh->scopes[0].name, "repo:read");
    assert_true(gh->scopes[0].enabled);
    assert_null(gh->scopes[0].classification);
    assert_false(gh->scopes[1].enabled);
    assert_string_equal(gh->scopes[1].classification, "write");
    assert_false(gh->paused);
    assert_true(gh->inherit_alg);
    assert_int_equal(gh->max_lifetime, 300);
    assert_int_equal(gh->token_type, POLICY_TOKEN_ID_JAG);

    const struct policy_system *sl = policy_system_by_id(s, "slack");
    assert_non_null(sl);
    assert_string_equal(sl->name, "slack");
    assert_true(sl->paused);
    assert_false(sl->inherit_alg);
    assert_int_equal(sl->signing_alg, JOSE_EDDSA);
    assert_int_equal(sl->max_lifetime, 0);
    assert_int_equal(sl->token_type, POLICY_TOKEN_ACCESS);
    assert_null(policy_system_by_id(s, "nope"));
    assert_null(policy_system_by_id(s, "GitHub"));

    /* by target URL */
    assert_ptr_equal(strmap_get(&s->system_by_resource, "https://mcp.github.example/mcp"), gh);
    assert_ptr_equal(strmap_get(&s->system_by_resource, "https://mcp.github.example/sse"), gh);
    assert_ptr_equal(strmap_get(&s->system_by_resource, "https://mcp.slack.example/"), sl);
    assert_null(strmap_get(&s->system_by_resource, "https://mcp.github.example/"));

    const struct policy_client *da = policy_client_by_id(s, "desktop-agent");
    assert_non_null(da);
    assert_string_equal(da->name, "Desktop agent");
    assert_int_equal(da->auth, POLICY_AUTH_NONE);
    assert_null(da->secret_hash);
    assert_int_equal(da->n_redirect_uris, 1);
    assert_string_equal(da->redirect_uris[0], "http://127.0.0.1/callback");
    assert_int_equal(da->grant_types, POLICY_GT_TOKEN_EXCHANGE);
    const struct policy_client *ci = policy_client_by_id(s, "ci");
    assert_int_equal(ci->auth, POLICY_AUTH_PRIVATE_KEY_JWT);
    assert_string_equal(ci->jwks_uri, "https://ci.example/jwks");
    assert_null(ci->jwks);
    assert_int_equal(ci->grant_types, POLICY_GT_CLIENT_CREDENTIALS | POLICY_GT_JWT_BEARER);
    assert_null(policy_client_by_id(s, "github"));

    /* access policies by "client\nsystem" */
    const struct policy_access *a = strmap_get(&s->access_by_pair, "desktop-agent\ngithub");
    assert_non_null(a);
    assert_string_equal(a->id, "desktop-github");
    assert_ptr_equal(a->client, da);
    assert_ptr_equal(a->system, gh);
    assert_true(a->active);
    assert_string_equal(a->client_id_at_system, "desktop-agent");
    a = strmap_get(&s->access_by_pair, "ci\nslack");
    assert_non_null(a);
    assert_false(a->active);
    assert_string_equal(a->client_id_at_system, "ci-at-slack");
    assert_null(strmap_get(&s->access_by_pair, "desktop-agent\nslack"));
    assert_null(strmap_get(&s->access_by_pair, "github\ndesktop-agent"));

    /* grants resolve their system */
    int seen = 0;
    for (size_t i = 0; i < s->n_grants; i++) {
        const struct policy_grant *g = &s->grants[i];
        if (strcmp(g->subject, "user:alice@example.com") == 0) {
            assert_string_equal(g->id, "github:user:alice@example.com");
            assert_ptr_equal(g->system, gh);
            assert_int_equal(g->n_scopes, 2);
            assert_string_equal(g->scopes[1], "repo:write");
            seen |= 1;
        } else {
            assert_string_equal(g->subject, "client:ci");
            assert_ptr_equal(g->system, sl);
            seen |= 2;
        }
    }
    assert_int_equal(seen, 3);

    const struct policy_issuer *t = strmap_get(&s->issuer_by_issuer, "https://idp.example.com");
    assert_non_null(t);
    assert_string_equal(t->id, "https://idp.example.com");
    assert_string_equal(t->audience, "mcpauth");
    assert_string_equal(t->user_claim, "sub");
    assert_string_equal(t->groups_claim, "roles");
    assert_int_equal(t->algorithms, 1u << JOSE_ES256);

    /* no settings document: the defaults */
    assert_int_equal(s->settings.default_signing_alg, JOSE_ES256);
    assert_int_equal(s->settings.default_lifetime, 300);
    assert_int_equal(s->settings.maintained_algs, 1u << JOSE_ES256);
    /* no keys */
    assert_int_equal(s->n_keys, 0);
    for (int i = 0; i < JOSE_ALG_COUNT; i++)
        assert_null(s->active_key[i]);
    json_t *jwks = J(s->jwks_json);
    assert_json_equal(jwks, "{\"keys\": []}");
    json_decref(jwks);

    /* the snapshot holds its own references: the caller's lists may go */
    lists_done(&ls);
    assert_string_equal(policy_system_by_id(s, "github")->audience, "https://auth.github.example/");
    assert_null(policy_snapshot_unref(s));

    /* settings from a document */
    lists_init(&ls);
    add(&ls, STORE_SETTINGS,
        "{\"default_signing_alg\": \"RS256\", \"default_lifetime\": \"10m\","
        " \"maintained_algs\": [\"ES256\", \"EdDSA\"]}");
    s = build_ok(&ls, 1);
    assert_int_equal(s->settings.default_signing_alg, JOSE_RS256);
    assert_int_equal(s->settings.default_lifetime, 600);
    assert_int_equal(s->settings.maintained_algs, (1u << JOSE_ES256) | (1u << JOSE_EDDSA));
    assert_int_equal(s->n_systems, 0);
    policy_snapshot_unref(s);
    lists_done(&ls);

    /* an input without any list is an empty policy */
    struct policy_input empty = {.version = 3};
    struct policy_error e = {{0}, NULL, NULL};
    assert_int_equal(policy_snapshot_build(&empty, &s, &e), 0);
    assert_int_equal(s->n_systems + s->n_clients + s->n_access + s->n_grants + s->n_issuers, 0);
    assert_int_equal(s->settings.default_lifetime, 300);
    policy_snapshot_unref(s);
}

static void test_snapshot_xref(void **state)
{
    (void)state;
    struct lists ls;

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_ACCESS_POLICIES,
        "{\"id\": \"ap-x\", \"client\": \"ghost\", \"system\": "
        "\"github\"}");
    build_fails(&ls, "access policy \"ap-x\"", "client \"ghost\" does not exist");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_ACCESS_POLICIES,
        "{\"id\": \"ap-y\", \"client\": \"ci\", \"system\": "
        "\"nowhere\"}");
    build_fails(&ls, "access policy \"ap-y\"", "system \"nowhere\" does not exist");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_GRANTS,
        "{\"subject\": \"group:eng\", \"system\": \"nowhere\", \"scopes\": "
        "[\"a\"]}");
    build_fails(&ls, "grant \"nowhere:group:eng\"", "system \"nowhere\" does not exist");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_GRANTS,
        "{\"subject\": \"client:unknown\", \"system\": \"github\", "
        "\"scopes\": [\"a\"]}");
    build_fails(&ls, "grant \"github:client:unknown\"", "client \"unknown\" does not exist");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_SYSTEMS,
        "{\"id\": \"zz-copy\", \"audience\": \"https://z.example/\", "
        "\"resource_urls\": [\"https://mcp.github.example/sse\"]}");
    build_fails(&ls, "system \"zz-copy\": target URL https://mcp.github.example/sse",
                "already registered on system \"github\"");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_ACCESS_POLICIES,
        "{\"id\": \"second\", \"client\": \"desktop-agent\", "
        "\"system\": \"github\", \"active\": false}");
    build_fails(&ls, "access policy \"second\"",
                "client \"desktop-agent\" and system \"github\" are already connected");
    lists_done(&ls);

    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_TRUSTED_ISSUERS,
        "{\"id\": \"idp-2\", \"issuer\": \"https://idp.example.com\", \"audience\": \"other\", "
        "\"jwks_uri\": \"https://idp.example.com/jwks2\"}");
    build_fails(&ls, "trusted issuer \"idp-2\"",
                "issuer https://idp.example.com is already trusted as "
                "\"https://idp.example.com\"");
    lists_done(&ls);

    /* the same checks pass when the objects are consistent again */
    lists_init(&ls);
    add_base(&ls);
    add(&ls, STORE_GRANTS,
        "{\"subject\": \"client:desktop-agent\", \"system\": \"github\", "
        "\"scopes\": [\"repo:read\"]}");
    policy_snapshot_unref(build_ok(&ls, 1));
    lists_done(&ls);
}

/* ---- holder ---- */

static struct policy_snapshot *small_snapshot(uint64_t version)
{
    struct lists ls;
    lists_init(&ls);
    add(&ls, STORE_SYSTEMS, "{\"id\": \"s\", \"audience\": \"https://a.example\"}");
    struct policy_snapshot *s = build_ok(&ls, version);
    lists_done(&ls);
    return s;
}

struct reader {
    struct policy_holder *h;
    int iterations;
    int bad;
};

static void *reader_main(void *arg)
{
    struct reader *rd = arg;
    for (int i = 0; i < rd->iterations; i++) {
        struct policy_snapshot *s = policy_holder_get(rd->h);
        if (!s || !policy_system_by_id(s, "s"))
            rd->bad++;
        policy_snapshot_unref(s);
    }
    return NULL;
}

static void test_holder(void **state)
{
    (void)state;
    struct policy_snapshot *s1 = small_snapshot(1), *s2 = small_snapshot(2);
    assert_int_equal(s1->refs_, 1);
    struct policy_holder *h = policy_holder_new(s1); /* takes our reference */
    assert_non_null(h);

    struct policy_snapshot *g = policy_holder_get(h);
    assert_ptr_equal(g, s1);
    assert_int_equal(s1->refs_, 2);
    assert_ptr_equal(policy_snapshot_ref(g), s1);
    assert_int_equal(s1->refs_, 3);
    assert_null(policy_snapshot_unref(g));
    assert_int_equal(s1->refs_, 2);

    /* the swap drops the holder's reference to the old one, not ours */
    policy_holder_set_take(h, s2);
    assert_int_equal(s1->refs_, 1);
    assert_int_equal(g->version, 1); /* still readable */
    struct policy_snapshot *g2 = policy_holder_get(h);
    assert_ptr_equal(g2, s2);
    assert_int_equal(g2->version, 2);
    assert_int_equal(s2->refs_, 2);
    policy_snapshot_unref(g);  /* frees s1: a leak here fails under ASan */
    policy_snapshot_unref(g2); /* s2 stays, the holder has it */
    assert_int_equal(s2->refs_, 1);
    assert_null(policy_snapshot_unref(NULL)); /* NULL-safe */

    /* readers on other threads while the snapshot is swapped under them */
    struct reader rd[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        rd[i] = (struct reader){h, 20000, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rd[i]), 0);
    }
    for (uint64_t v = 3; v < 200; v++)
        policy_holder_set_take(h, small_snapshot(v));
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(rd[i].bad, 0);
    }
    g = policy_holder_get(h);
    assert_int_equal(g->version, 199);
    assert_int_equal(g->refs_, 2);
    policy_snapshot_unref(g);
    assert_null(policy_holder_free(h)); /* frees the last snapshot */
    assert_null(policy_holder_free(NULL));

    /* a holder may start empty */
    h = policy_holder_new(NULL);
    assert_null(policy_holder_get(h));
    policy_holder_set_take(h, small_snapshot(9));
    g = policy_holder_get(h);
    assert_int_equal(g->version, 9);
    policy_snapshot_unref(g);
    policy_holder_free(h);
}

/* ---- signing keys ---- */

/* Generates a key, seals it under kek and fills a store_key row (owned strings). */
static void make_key(struct store_key *k, enum jose_alg alg, const char *kid, const char *status,
                     int64_t created, const struct kek *kek)
{
    struct jose_key *key = NULL;
    assert_int_equal(jose_key_generate(alg, kid, &key), 0);
    json_t *jwk = jose_key_public_jwk(key);
    assert_non_null(jwk);
    k->kid = strdup(kid);
    k->alg = strdup(jose_alg_name(alg));
    k->status = strdup(status);
    k->created = k->updated = created;
    k->public_jwk = json_dumps(jwk, JSON_COMPACT | JSON_SORT_KEYS);
    assert_int_equal(jose_key_seal(key, kek, &k->sealed), 0);
    json_decref(jwk);
    jose_key_free(key);
}

static int jwks_has(const char *jwks_json, const char *kid)
{
    json_t *j = J(jwks_json);
    size_t i;
    json_t *k;
    int found = 0;
    json_array_foreach(json_object_get(j, "keys"), i, k) found |=
        strcmp(json_string_value(json_object_get(k, "kid")), kid) == 0;
    json_decref(j);
    return found;
}

static void test_snapshot_keys(void **state)
{
    (void)state;
    struct kek *kek = NULL, *other = NULL;
    assert_int_equal(kek_from_bytes(KEK1, &kek), 0);
    assert_int_equal(kek_from_bytes(KEK2, &other), 0);
    struct store_key keys[5];
    make_key(&keys[0], JOSE_ES256, "es-old", "active", 100, kek);
    make_key(&keys[1], JOSE_ES256, "es-new", "active", 200, kek);
    make_key(&keys[2], JOSE_ES256, "es-next", "published", 300, kek);
    make_key(&keys[3], JOSE_ES256, "es-gone", "retired", 400, kek);
    make_key(&keys[4], JOSE_EDDSA, "ed-1", "active", 50, kek);

    struct policy_input in = {.keys = keys, .n_keys = 5, .kek = kek, .version = 1};
    struct policy_snapshot *s = NULL;
    struct policy_error e = {{0}, NULL, NULL};
    assert_int_equal(policy_snapshot_build(&in, &s, &e), 0);
    assert_int_equal(s->n_keys, 5);

    /* the newest active key signs; published and retired never do */
    assert_non_null(s->active_key[JOSE_ES256]);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, "es-new");
    assert_non_null(s->active_key[JOSE_ES256]->key);
    assert_string_equal(jose_key_kid(s->active_key[JOSE_ES256]->key), "es-new");
    assert_non_null(s->active_key[JOSE_EDDSA]);
    assert_string_equal(s->active_key[JOSE_EDDSA]->kid, "ed-1");
    assert_int_equal(jose_key_alg(s->active_key[JOSE_EDDSA]->key), JOSE_EDDSA);
    assert_null(s->active_key[JOSE_RS256]);
    assert_null(s->active_key[JOSE_ES384]);

    for (size_t i = 0; i < s->n_keys; i++) {
        const struct policy_key *p = &s->keys[i];
        assert_string_equal(p->kid, keys[i].kid);
        assert_string_equal(p->status, keys[i].status);
        assert_int_equal(p->created, keys[i].created);
        if (strcmp(p->status, "retired") == 0)
            assert_null(p->key); /* never opened */
        else
            assert_non_null(p->key);
    }

    /* JWKS: active and published keys, not retired ones, and no private members */
    assert_true(jwks_has(s->jwks_json, "es-old"));
    assert_true(jwks_has(s->jwks_json, "es-new"));
    assert_true(jwks_has(s->jwks_json, "es-next"));
    assert_true(jwks_has(s->jwks_json, "ed-1"));
    assert_false(jwks_has(s->jwks_json, "es-gone"));
    json_t *jwks = J(s->jwks_json);
    assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 4);
    assert_null(strstr(s->jwks_json, "\"d\""));
    json_decref(jwks);
    policy_snapshot_unref(s);

    /* input order does not matter: newest by created wins */
    struct store_key rev[2] = {keys[1], keys[0]};
    in = (struct policy_input){.keys = rev, .n_keys = 2, .kek = kek, .version = 2};
    assert_int_equal(policy_snapshot_build(&in, &s, &e), 0);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, "es-new");
    policy_snapshot_unref(s);

    /* another KEK: the keys do not open */
    in = (struct policy_input){.keys = keys, .n_keys = 5, .kek = other, .version = 3};
    s = (struct policy_snapshot *)0x1;
    assert_int_equal(policy_snapshot_build(&in, &s, &e), ERR_CORRUPT);
    assert_ptr_equal(s, (struct policy_snapshot *)0x1);
    assert_non_null(strstr(e.msg, "does not open"));

    /* a key moved to another kid (the kid is the aad) does not open either */
    struct store_key moved = keys[1];
    moved.kid = "es-moved";
    in = (struct policy_input){.keys = &moved, .n_keys = 1, .kek = kek, .version = 4};
    assert_int_equal(policy_snapshot_build(&in, &s, &e), ERR_CORRUPT);

    /* a stored algorithm name that is not one */
    struct store_key odd = keys[0];
    odd.alg = "HS256";
    in = (struct policy_input){.keys = &odd, .n_keys = 1, .kek = kek, .version = 5};
    assert_int_equal(policy_snapshot_build(&in, &s, &e), ERR_CORRUPT);

    /* without a KEK (tests, tools) keys are listed but not opened */
    in = (struct policy_input){.keys = keys, .n_keys = 5, .kek = NULL, .version = 6};
    assert_int_equal(policy_snapshot_build(&in, &s, &e), 0);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, "es-new");
    assert_null(s->active_key[JOSE_ES256]->key);
    policy_snapshot_unref(s);

    for (int i = 0; i < 5; i++) {
        free(keys[i].kid);
        free(keys[i].alg);
        free(keys[i].status);
        free(keys[i].public_jwk);
        free(keys[i].sealed);
    }
    kek_free(kek);
    kek_free(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_canonical_values),
        cmocka_unit_test(test_unknown_field),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_scope_name_errors),
        cmocka_unit_test(test_client_secret),
        cmocka_unit_test(test_exporter_auth_sealed),
        cmocka_unit_test(test_client_rules),
        cmocka_unit_test(test_client_secret_null),
        cmocka_unit_test(test_snapshot_lookups),
        cmocka_unit_test(test_snapshot_xref),
        cmocka_unit_test(test_holder),
        cmocka_unit_test(test_snapshot_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
