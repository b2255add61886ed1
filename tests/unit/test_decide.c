/* tests/unit/test_decide.c — every step of the decision of spec/policy.md and
 * every denial reason, with its code, status text, OAuth error and status. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "policy/decide.h"

#define ISSUER "http://127.0.0.1:8080"

struct fx {
    struct policy_snapshot *snap;
    struct kek *kek;
    struct store_key key;
};

static json_t *norm(enum store_kind kind, const char *text)
{
    json_t *in = json_loads(text, 0, NULL);
    assert_non_null(in);
    json_t *out = NULL;
    char *id = NULL;
    struct policy_error e;
    if (policy_normalize(kind, in, NULL, "", &out, &id, &e) != 0)
        fail_msg("normalize: %s", e.msg);
    free(id);
    json_decref(in);
    return out;
}

static int build(void **state, int paused, int with_key, const char *alg)
{
    struct fx *f = calloc(1, sizeof(*f));
    unsigned char kb[32] = {1, 2, 3};
    assert_int_equal(kek_from_bytes(kb, &f->kek), 0);
    struct policy_input in = {.kek = f->kek, .version = 1};
    in.lists[STORE_SYSTEMS] = json_array();
    char sys[1024];
    snprintf(sys, sizeof(sys),
             "{\"id\":\"github\",\"audience\":\"https://auth.github.example/\","
             "\"resource_urls\":[\"https://mcp.github.example/mcp\"],"
             "\"scopes\":[{\"name\":\"repo:read\",\"enabled\":true},"
             "{\"name\":\"repo:write\",\"enabled\":false},\"admin\"],"
             "\"paused\":%s, \"signing_alg\":\"%s\"}",
             paused ? "true" : "false", alg);
    json_array_append_new(in.lists[STORE_SYSTEMS], norm(STORE_SYSTEMS, sys));
    json_array_append_new(in.lists[STORE_SYSTEMS],
                          norm(STORE_SYSTEMS, "{\"id\":\"docs\",\"audience\":\"" ISSUER "\","
                                              "\"resource_urls\":[\"" ISSUER "/mcp/docs\"],"
                                              "\"scopes\":[\"docs:read\"]}"));
    json_array_append_new(in.lists[STORE_SYSTEMS],
                          norm(STORE_SYSTEMS, "{\"id\":\"wiki\",\"audience\":\"" ISSUER "\","
                                              "\"resource_urls\":[\"" ISSUER "/mcp/wiki\"],"
                                              "\"scopes\":[\"wiki:read\"]}"));
    in.lists[STORE_CLIENTS] = json_array();
    json_array_append_new(in.lists[STORE_CLIENTS],
                          norm(STORE_CLIENTS, "{\"id\":\"agent\",\"auth\":\"none\"}"));
    json_array_append_new(in.lists[STORE_CLIENTS],
                          norm(STORE_CLIENTS, "{\"id\":\"other\",\"auth\":\"none\"}"));
    in.lists[STORE_ACCESS_POLICIES] = json_array();
    json_array_append_new(in.lists[STORE_ACCESS_POLICIES],
                          norm(STORE_ACCESS_POLICIES,
                               "{\"id\":\"ag\",\"client\":\"agent\",\"system\":\"github\"}"));
    json_array_append_new(in.lists[STORE_ACCESS_POLICIES],
                          norm(STORE_ACCESS_POLICIES, "{\"id\":\"ad\",\"client\":\"agent\","
                                                      "\"system\":\"docs\",\"active\":false}"));
    json_array_append_new(in.lists[STORE_ACCESS_POLICIES],
                          norm(STORE_ACCESS_POLICIES,
                               "{\"id\":\"aw\",\"client\":\"agent\",\"system\":\"wiki\"}"));
    in.lists[STORE_GRANTS] = json_array();
    json_array_append_new(in.lists[STORE_GRANTS],
                          norm(STORE_GRANTS, "{\"subject\":\"user:alice\",\"system\":\"github\","
                                             "\"scopes\":[\"repo:read\",\"repo:write\"]}"));
    json_array_append_new(in.lists[STORE_GRANTS],
                          norm(STORE_GRANTS, "{\"subject\":\"group:eng\",\"system\":\"github\","
                                             "\"scopes\":[\"admin\"]}"));
    json_array_append_new(in.lists[STORE_GRANTS],
                          norm(STORE_GRANTS, "{\"subject\":\"client:agent\",\"system\":\"wiki\","
                                             "\"scopes\":[\"wiki:read\"]}"));
    struct jose_key *k = NULL;
    if (with_key) {
        assert_int_equal(jose_key_generate(JOSE_ES256, "k1", &k), 0);
        char *sealed = NULL;
        assert_int_equal(jose_key_seal(k, f->kek, &sealed), 0);
        json_t *jwk = jose_key_public_jwk(k);
        f->key = (struct store_key){strdup("k1"), strdup("ES256"), strdup("active"), 1, 1,
                                    json_dumps(jwk, 0), sealed};
        json_decref(jwk);
        jose_key_free(k);
        in.keys = &f->key;
        in.n_keys = 1;
    }
    struct policy_error e;
    if (policy_snapshot_build(&in, &f->snap, &e) != 0)
        fail_msg("build: %s", e.msg);
    for (int i = 0; i < STORE_KIND_COUNT; i++)
        json_decref(in.lists[i]);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return build(state, 0, 1, "inherit");
}

static int setup_paused(void **state)
{
    return build(state, 1, 1, "inherit");
}

static int setup_nokey(void **state)
{
    return build(state, 0, 0, "inherit");
}

static int setup_rs256(void **state)
{
    return build(state, 0, 1, "RS256");
}

static int teardown(void **state)
{
    struct fx *f = *state;
    policy_snapshot_unref(f->snap);
    kek_free(f->kek);
    if (f->key.kid) {
        free(f->key.kid);
        free(f->key.alg);
        free(f->key.status);
        free(f->key.public_jwk);
        free(f->key.sealed);
    }
    free(f);
    return 0;
}

static struct decide_request te(const struct fx *f, const char *client, const char *aud,
                                const char *res, const char *const *scopes, size_t n)
{
    static const char *groups[] = {"eng"};
    return (struct decide_request){
        .client = policy_client_by_id(f->snap, client),
        .grant_type = POLICY_GT_TOKEN_EXCHANGE,
        .audience = aud,
        .resource = res,
        .scopes = scopes,
        .n_scopes = n,
        .user = "alice",
        .groups = groups,
        .n_groups = 1,
        .issuer = ISSUER,
    };
}

static void reason_table(void **state)
{
    (void)state;
    struct {
        enum policy_reason r;
        const char *code, *text, *oauth;
        int http, step;
        const char *sev;
    } rows[] = {
        {REASON_INVALID_REQUEST, "invalid_request", "Malformed request", "invalid_request", 400,
         1, "error"},
        {REASON_UNSUPPORTED_GRANT, "unsupported_grant_type", "Unsupported grant type",
         "unsupported_grant_type", 400, 1, "error"},
        {REASON_INVALID_CLIENT, "invalid_client", "Client authentication failed",
         "invalid_client", 401, 2, "error"},
        {REASON_UNAUTHORIZED_CLIENT, "unauthorized_client",
         "Grant type not allowed for the client", "unauthorized_client", 400, 3, "error"},
        {REASON_INVALID_SUBJECT, "invalid_subject_token", "Subject token rejected",
         "invalid_grant", 400, 4, "warning"},
        {REASON_UNKNOWN_SYSTEM, "unknown_system", "No server workload matched", "invalid_target",
         400, 5, "error"},
        {REASON_NO_ACCESS_POLICY, "no_access_policy", "No active access policy",
         "unauthorized_client", 400, 6, "warning"},
        {REASON_SERVER_PAUSED, "server_paused", "Server paused", "invalid_target", 400, 7,
         "warning"},
        {REASON_TARGET_NOT_REGISTERED, "target_url_not_registered", "Target URL not registered",
         "invalid_target", 400, 8, "warning"},
        {REASON_SCOPE_NOT_ENABLED, "scope_not_enabled", "Scope not enabled", "invalid_scope", 400,
         9, "warning"},
        {REASON_NO_GRANT, "no_grant", "No grant for the scope", "invalid_scope", 400, 9,
         "warning"},
        {REASON_NO_SIGNING_KEY, "no_signing_key", "No signing key for the algorithm",
         "server_error", 500, 10, "error"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_string_equal(policy_reason_code(rows[i].r), rows[i].code);
        assert_string_equal(policy_reason_text(rows[i].r), rows[i].text);
        assert_string_equal(policy_reason_oauth(rows[i].r), rows[i].oauth);
        assert_int_equal(policy_reason_http(rows[i].r), rows[i].http);
        assert_int_equal(policy_reason_step(rows[i].r), rows[i].step);
        assert_string_equal(policy_reason_severity(rows[i].r), rows[i].sev);
    }
}

static void granted_full(void **state)
{
    struct fx *f = *state;
    const char *sc[] = {"repo:read"};
    struct decide_request r = te(f, "agent", "https://auth.github.example/",
                                 "https://mcp.github.example/mcp", sc, 1);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_string_equal(d.system->id, "github");
    assert_string_equal(d.access->id, "ag");
    assert_int_equal(d.n_granted, 1);
    assert_string_equal(d.detail, "");
    assert_int_equal(d.alg, JOSE_ES256);
    assert_non_null(d.key);
    assert_string_equal(d.key->kid, "k1");
    assert_int_equal(d.lifetime, 300);
}

static void audience_trailing_slash(void **state)
{
    struct fx *f = *state;
    const char *sc[] = {"repo:read"};
    struct decide_request r = te(f, "agent", "https://auth.github.example", NULL, sc, 1);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_string_equal(d.system->id, "github");
}

static void partial_grant(void **state)
{
    struct fx *f = *state;
    const char *sc[] = {"repo:read", "repo:write", "nope"};
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, sc, 3);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_int_equal(d.n_scopes, 3);
    assert_int_equal(d.n_granted, 1);
    assert_true(d.scopes[0].granted);
    assert_false(d.scopes[1].granted);
    assert_int_equal(d.scopes[1].reason, REASON_SCOPE_NOT_ENABLED);
    assert_int_equal(d.scopes[2].reason, REASON_SCOPE_NOT_ENABLED); /* undefined = not enabled */
    assert_string_equal(d.detail, "Scope not enabled: repo:write; Scope not enabled: nope");
    char out[128];
    decision_granted_scopes(&d, out, sizeof(out));
    assert_string_equal(out, "repo:read");
}

static void group_grant_and_all_scopes(void **state)
{
    struct fx *f = *state;
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    /* no scope asked: every enabled scope held: repo:read (user), admin (group eng) */
    char out[128];
    decision_granted_scopes(&d, out, sizeof(out));
    assert_string_equal(out, "repo:read admin");
}

static void unknown_system(void **state)
{
    struct fx *f = *state;
    struct decide_request r = te(f, "agent", "https://nowhere.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_UNKNOWN_SYSTEM);
    assert_null(d.system);
    assert_string_equal(d.detail, "No server workload matched: audience https://nowhere.example/");
    r = te(f, "agent", NULL, NULL, NULL, 0);
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_UNKNOWN_SYSTEM);
}

static void no_access_policy(void **state)
{
    struct fx *f = *state;
    struct decide_request r = te(f, "other", "https://auth.github.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_ACCESS_POLICY);
    assert_string_equal(d.system->id, "github");
    assert_null(d.access);
    assert_string_equal(d.detail, "No active access policy: client other, system github");
    /* an inactive policy is no policy */
    r = te(f, "agent", ISSUER, ISSUER "/mcp/docs", NULL, 0);
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_ACCESS_POLICY);
    assert_string_equal(d.access->id, "ad");
    assert_false(d.access->active);
}

static void server_paused(void **state)
{
    struct fx *f = *state;
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_SERVER_PAUSED);
    assert_string_equal(d.detail, "Server paused: github");
}

static void target_not_registered(void **state)
{
    struct fx *f = *state;
    struct decide_request r =
        te(f, "agent", "https://auth.github.example/", "https://evil.example/mcp", NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_TARGET_NOT_REGISTERED);
    assert_string_equal(d.detail, "Target URL not registered: https://evil.example/mcp");
}

static void scope_not_enabled_only(void **state)
{
    struct fx *f = *state;
    const char *sc[] = {"repo:write"};
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, sc, 1);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_SCOPE_NOT_ENABLED);
    assert_string_equal(d.detail, "Scope not enabled: repo:write");
    assert_null(d.key);
}

static void no_grant(void **state)
{
    struct fx *f = *state;
    const char *sc[] = {"admin"};
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, sc, 1);
    r.n_groups = 0; /* alice without group eng: no grant for admin */
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_GRANT);
    assert_string_equal(d.detail, "No grant for the scope: admin");
}

static void client_grant_for_client_credentials(void **state)
{
    struct fx *f = *state;
    struct decide_request r = {
        .client = policy_client_by_id(f->snap, "agent"),
        .grant_type = POLICY_GT_CLIENT_CREDENTIALS,
        .resource = ISSUER "/mcp/wiki",
        .issuer = ISSUER,
    };
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_string_equal(d.system->id, "wiki");
    /* a user grant does not apply without a user */
    r.resource = NULL;
    r.audience = "https://auth.github.example/";
    const char *sc[] = {"repo:read"};
    r.scopes = sc;
    r.n_scopes = 1;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_GRANT);
}

static void shared_audience_picks_by_resource(void **state)
{
    struct fx *f = *state;
    struct decide_request r = {
        .client = policy_client_by_id(f->snap, "agent"),
        .grant_type = POLICY_GT_CLIENT_CREDENTIALS,
        .audience = ISSUER,
        .resource = ISSUER "/mcp/wiki",
        .issuer = ISSUER,
    };
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_string_equal(d.system->id, "wiki");
    /* without a resource, the system with an active policy wins (docs' policy is inactive) */
    r.resource = NULL;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    assert_string_equal(d.system->id, "wiki");
}

static void jwt_bearer_intersection(void **state)
{
    struct fx *f = *state;
    const char *asserted[] = {"repo:read", "admin"};
    const char *sc[] = {"repo:read", "repo:write"};
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, sc, 2);
    r.grant_type = POLICY_GT_JWT_BEARER;
    r.n_groups = 0;
    r.asserted_scopes = asserted;
    r.n_asserted_scopes = 2;
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    char out[128];
    decision_granted_scopes(&d, out, sizeof(out));
    assert_string_equal(out, "repo:read");
    /* nothing requested: everything asserted and enabled ("admin" held by no-one, but
     * asserted by the issuer of the ID-JAG) */
    r.n_scopes = 0;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NONE);
    decision_granted_scopes(&d, out, sizeof(out));
    assert_string_equal(out, "repo:read admin");
}

static void no_signing_key(void **state)
{
    struct fx *f = *state;
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_SIGNING_KEY);
    assert_string_equal(d.detail, "No signing key for the algorithm: ES256");
}

static void no_key_for_system_alg(void **state)
{
    struct fx *f = *state; /* github signs with RS256; only an ES256 key exists */
    struct decide_request r = te(f, "agent", "https://auth.github.example/", NULL, NULL, 0);
    struct decision d;
    assert_int_equal(policy_decide(f->snap, &r, &d), REASON_NO_SIGNING_KEY);
    assert_string_equal(d.detail, "No signing key for the algorithm: RS256");
    assert_int_equal(d.alg, JOSE_RS256);
}

static void early_denial(void **state)
{
    (void)state;
    struct decision d;
    policy_deny_early(&d, REASON_INVALID_REQUEST, "grant_type is required");
    assert_int_equal(d.reason, REASON_INVALID_REQUEST);
    assert_string_equal(d.detail, "Malformed request: grant_type is required");
    policy_deny_early(&d, REASON_UNSUPPORTED_GRANT, "password");
    assert_string_equal(d.detail, "Unsupported grant type: password");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reason_table),
        cmocka_unit_test(early_denial),
        cmocka_unit_test_setup_teardown(granted_full, setup, teardown),
        cmocka_unit_test_setup_teardown(audience_trailing_slash, setup, teardown),
        cmocka_unit_test_setup_teardown(partial_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(group_grant_and_all_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_system, setup, teardown),
        cmocka_unit_test_setup_teardown(no_access_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(server_paused, setup_paused, teardown),
        cmocka_unit_test_setup_teardown(target_not_registered, setup, teardown),
        cmocka_unit_test_setup_teardown(scope_not_enabled_only, setup, teardown),
        cmocka_unit_test_setup_teardown(no_grant, setup, teardown),
        cmocka_unit_test_setup_teardown(client_grant_for_client_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(shared_audience_picks_by_resource, setup, teardown),
        cmocka_unit_test_setup_teardown(jwt_bearer_intersection, setup, teardown),
        cmocka_unit_test_setup_teardown(no_signing_key, setup_nokey, teardown),
        cmocka_unit_test_setup_teardown(no_key_for_system_alg, setup_rs256, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
