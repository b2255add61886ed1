/* tests/unit/test_authorize.c — the pure pieces of the authorization-code front
 * door (oauth/authorize.h): PKCE S256 (RFC 7636 appendix B's vector), redirect
 * URI rules and matching (exact, loopback on any port per RFC 8252 §7.3), the
 * SSRF address classification (IPv4, IPv6, IPv4-mapped), the ticket store's
 * single use and expiry (the code lifecycle), the registration bucket, and the
 * RFC 7591 metadata validation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "oauth/authorize.h"
#include "policy/policy.h"

static void test_pkce(void **state)
{
    (void)state;
    /* RFC 7636 appendix B */
    const char *v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const char *c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    assert_true(pkce_verifier_valid(v));
    assert_true(pkce_challenge_valid(c));
    assert_true(pkce_s256_matches(v, c));
    assert_false(pkce_s256_matches("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl", c));
    assert_false(pkce_s256_matches(v, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cN"));
    /* plain (challenge = verifier) never matches under S256 */
    assert_false(pkce_s256_matches(v, v));
    /* verifier: 43..128 unreserved characters */
    assert_false(pkce_verifier_valid("short"));
    char longv[130];
    memset(longv, 'a', 129);
    longv[129] = '\0';
    assert_false(pkce_verifier_valid(longv));
    longv[128] = '\0';
    assert_true(pkce_verifier_valid(longv));
    assert_false(pkce_verifier_valid("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjX+"));
    assert_false(pkce_verifier_valid(NULL));
    /* challenge: exactly 43 base64url characters */
    assert_false(pkce_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c"));
    assert_false(pkce_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c="));
    assert_false(pkce_challenge_valid("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
    assert_false(pkce_s256_matches(NULL, c));
}

static void test_redirect_rules(void **state)
{
    (void)state;
    assert_true(redirect_uri_allowed("https://app.example/cb"));
    assert_true(redirect_uri_allowed("https://app.example:8443/cb?x=1"));
    assert_true(redirect_uri_allowed("http://127.0.0.1/cb"));
    assert_true(redirect_uri_allowed("http://127.0.0.1:5000/cb"));
    assert_true(redirect_uri_allowed("http://[::1]:5000/cb"));
    assert_true(redirect_uri_allowed("http://localhost:5000/cb"));
    assert_false(redirect_uri_allowed("http://app.example/cb"));
    assert_false(redirect_uri_allowed("http://127.0.0.1.evil.example/cb"));
    assert_false(redirect_uri_allowed("http://127.0.0.1@evil.example/cb"));
    assert_false(redirect_uri_allowed("https://app.example/cb#frag"));
    assert_false(redirect_uri_allowed("https://app.example/c b"));
    assert_false(redirect_uri_allowed("javascript:alert(1)"));
    assert_false(redirect_uri_allowed("https:///cb"));
    assert_false(redirect_uri_allowed("https://user@app.example/cb"));
    assert_false(redirect_uri_allowed(""));
    assert_false(redirect_uri_allowed(NULL));
    assert_true(redirect_uri_is_loopback("http://127.0.0.1:1/x"));
    assert_true(redirect_uri_is_loopback("http://[::1]/x"));
    assert_false(redirect_uri_is_loopback("https://127.0.0.1/x"));
    assert_false(redirect_uri_is_loopback("http://127.0.0.2/x"));
}

static void test_redirect_matching(void **state)
{
    (void)state;
    /* exact for anything but loopback */
    assert_true(redirect_uri_matches("https://app.example/cb", "https://app.example/cb"));
    assert_false(redirect_uri_matches("https://app.example/cb", "https://app.example/cb/"));
    assert_false(redirect_uri_matches("https://app.example/cb", "https://app.example:443/cb"));
    assert_false(redirect_uri_matches("https://app.example/cb", "https://APP.example/cb"));
    assert_false(redirect_uri_matches("https://app.example/cb", "https://app.example/cb?x=1"));
    assert_false(redirect_uri_matches("https://app.example:8443/cb", "https://app.example:9443/cb"));
    /* loopback: any port, same host spelling, same path and query */
    assert_true(redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb"));
    assert_true(redirect_uri_matches("http://127.0.0.1:8080/cb", "http://127.0.0.1:51234/cb"));
    assert_true(redirect_uri_matches("http://127.0.0.1:8080/cb", "http://127.0.0.1/cb"));
    assert_true(redirect_uri_matches("http://[::1]:1/cb?a=b", "http://[::1]:2/cb?a=b"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb2"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "http://[::1]:51234/cb"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "http://localhost:51234/cb"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "https://127.0.0.1:51234/cb"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb?x"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", "http://127.0.0.1:abc/cb"));
    assert_false(redirect_uri_matches("http://127.0.0.1/cb", NULL));
}

static enum net_class cls(const char *ip)
{
    enum net_class c;
    assert_int_equal(net_classify_str(ip, &c), 0);
    return c;
}

static void test_net_classify(void **state)
{
    (void)state;
    assert_int_equal(cls("8.8.8.8"), NET_PUBLIC);
    assert_int_equal(cls("1.1.1.1"), NET_PUBLIC);
    assert_int_equal(cls("127.0.0.1"), NET_LOOPBACK);
    assert_int_equal(cls("127.255.0.9"), NET_LOOPBACK);
    assert_int_equal(cls("10.0.0.1"), NET_PRIVATE);
    assert_int_equal(cls("172.16.0.1"), NET_PRIVATE);
    assert_int_equal(cls("172.31.255.255"), NET_PRIVATE);
    assert_int_equal(cls("172.32.0.1"), NET_PUBLIC);
    assert_int_equal(cls("192.168.1.1"), NET_PRIVATE);
    assert_int_equal(cls("100.64.0.1"), NET_PRIVATE);
    assert_int_equal(cls("169.254.169.254"), NET_LINK_LOCAL);
    assert_int_equal(cls("224.0.0.1"), NET_MULTICAST);
    assert_int_equal(cls("0.0.0.0"), NET_UNSPECIFIED);
    assert_int_equal(cls("0.1.2.3"), NET_UNSPECIFIED);
    assert_int_equal(cls("255.255.255.255"), NET_RESERVED);
    assert_int_equal(cls("240.0.0.1"), NET_RESERVED);
    assert_int_equal(cls("192.0.2.1"), NET_RESERVED);
    assert_int_equal(cls("198.18.0.1"), NET_RESERVED);
    /* IPv6 */
    assert_int_equal(cls("2606:4700:4700::1111"), NET_PUBLIC);
    assert_int_equal(cls("::1"), NET_LOOPBACK);
    assert_int_equal(cls("::"), NET_UNSPECIFIED);
    assert_int_equal(cls("fe80::1"), NET_LINK_LOCAL);
    assert_int_equal(cls("fc00::1"), NET_PRIVATE);
    assert_int_equal(cls("fd12:3456::1"), NET_PRIVATE);
    assert_int_equal(cls("fec0::1"), NET_PRIVATE);
    assert_int_equal(cls("ff02::1"), NET_MULTICAST);
    assert_int_equal(cls("2001:db8::1"), NET_RESERVED);
    /* IPv4 inside IPv6 is judged by the IPv4 address */
    assert_int_equal(cls("::ffff:127.0.0.1"), NET_LOOPBACK);
    assert_int_equal(cls("::ffff:10.0.0.1"), NET_PRIVATE);
    assert_int_equal(cls("::ffff:169.254.169.254"), NET_LINK_LOCAL);
    assert_int_equal(cls("::ffff:8.8.8.8"), NET_PUBLIC);
    assert_int_equal(cls("64:ff9b::a00:1"), NET_PRIVATE); /* NAT64 of 10.0.0.1 */
    assert_int_equal(cls("::127.0.0.1"), NET_LOOPBACK);   /* IPv4-compatible */
    enum net_class c;
    assert_int_equal(net_classify_str("example.com", &c), ERR_INVAL);
    assert_int_equal(net_classify_str("010.0.0.1", &c), ERR_INVAL);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "192.168.0.1", &sin.sin_addr);
    assert_int_equal(net_classify((struct sockaddr *)&sin), NET_PRIVATE);
    assert_string_equal(net_class_name(NET_LINK_LOCAL), "link-local");
}

static int freed;
static void count_free(void *p)
{
    freed++;
    free(p);
}

static void test_code_lifecycle(void **state)
{
    (void)state;
    struct ticket_store *s = NULL;
    assert_int_equal(ticket_store_new(3, count_free, &s), 0);
    freed = 0;
    char k1[44], k2[44];
    int64_t now = 1000;
    assert_int_equal(ticket_put(s, strdup("one"), now + 60, now, k1), 0);
    assert_int_equal(strlen(k1), 43);
    assert_int_equal(ticket_put(s, strdup("two"), now + 60, now, k2), 0);
    assert_string_not_equal(k1, k2);
    void *d = NULL;
    /* taken once */
    assert_int_equal(ticket_take(s, k1, now + 1, &d), 0);
    assert_string_equal(d, "one");
    free(d);
    /* a second time: "used before", not "unknown" */
    assert_int_equal(ticket_take(s, k1, now + 2, &d), ERR_EXISTS);
    /* unknown and malformed keys */
    char other[44];
    memcpy(other, k2, 44);
    other[0] = other[0] == 'A' ? 'B' : 'A';
    assert_int_equal(ticket_take(s, other, now, &d), ERR_NOTFOUND);
    assert_int_equal(ticket_take(s, "short", now, &d), ERR_NOTFOUND);
    assert_int_equal(ticket_take(s, NULL, now, &d), ERR_NOTFOUND);
    /* expired: unknown, at exp exactly */
    assert_int_equal(ticket_take(s, k2, now + 60, &d), ERR_NOTFOUND);
    /* full of live tickets: refused (fail closed); the data is freed */
    char k3[44], k4[44], k5[44];
    assert_int_equal(ticket_put(s, strdup("3"), now + 600, now, k3), 0);
    assert_int_equal(ticket_put(s, strdup("4"), now + 600, now, k4), ERR_IO);
    assert_int_equal(freed, 1);
    /* once the others expire, a sweep makes room */
    assert_int_equal(ticket_put(s, strdup("5"), now + 700, now + 100, k5), 0);
    assert_int_equal(ticket_count(s), 2);
    assert_int_equal(freed, 2); /* "two" expired unused and was swept */
    ticket_store_free(s);
    assert_int_equal(freed, 4);
    assert_null(ticket_store_free(NULL));
}

static void test_rate_limiter(void **state)
{
    (void)state;
    struct rate_limiter *l = NULL;
    assert_int_equal(rate_limiter_new(10, 10, &l), 0);
    int64_t t = 1000000;
    for (int i = 0; i < 10; i++)
        assert_true(rate_limiter_take(l, "192.0.2.1", t));
    assert_false(rate_limiter_take(l, "192.0.2.1", t));
    assert_true(rate_limiter_take(l, "192.0.2.2", t)); /* another address has its own */
    assert_false(rate_limiter_take(l, "192.0.2.1", t + 5000));
    assert_true(rate_limiter_take(l, "192.0.2.1", t + 6000)); /* one token per 6 s */
    assert_false(rate_limiter_take(l, "192.0.2.1", t + 6001));
    assert_true(rate_limiter_take(l, "192.0.2.1", t + 600000));
    rate_limiter_free(l);
}

static void test_register_validate(void **state)
{
    (void)state;
    json_t *client = NULL, *meta = NULL;
    const char *err = NULL;
    char why[400];
    const char *ok = "{\"redirect_uris\":[\"http://127.0.0.1:9/cb\",\"http://127.0.0.1:9/cb\"],"
                     "\"token_endpoint_auth_method\":\"none\",\"client_name\":\"CLI\","
                     "\"grant_types\":[\"authorization_code\",\"refresh_token\"],\"logo_uri\":1}";
    assert_int_equal(register_validate(ok, strlen(ok), &client, &meta, &err, why, sizeof(why)), 0);
    assert_string_equal(json_string_value(json_object_get(client, "auth")), "none");
    assert_int_equal(json_array_size(json_object_get(client, "redirect_uris")), 1);
    assert_string_equal(json_string_value(json_object_get(client, "name")), "CLI");
    assert_null(json_object_get(client, "id"));
    assert_string_equal(json_string_value(json_object_get(meta, "client_name")), "CLI");
    json_decref(client);
    json_decref(meta);
    const char *dflt = "{\"redirect_uris\":[\"https://a.example/cb\"]}";
    assert_int_equal(register_validate(dflt, strlen(dflt), &client, &meta, &err, why, sizeof(why)),
                     0);
    assert_string_equal(json_string_value(json_object_get(client, "auth")), "client_secret_basic");
    json_decref(client);
    json_decref(meta);
    static const struct {
        const char *body, *error;
    } bad[] = {
        {"{}", "invalid_redirect_uri"},
        {"[]", "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"http://a.example/cb\"]}", "invalid_redirect_uri"},
        {"{\"redirect_uris\":[1]}", "invalid_redirect_uri"},
        {"{\"redirect_uris\":\"https://a.example/cb\"}", "invalid_redirect_uri"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"implicit\"]}",
         "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"grant_types\":[\"refresh_token\"]}",
         "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"token_endpoint_auth_method\":"
         "\"private_key_jwt\"}",
         "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"response_types\":[\"code\",\"token\"]}",
         "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":\"\"}",
         "invalid_client_metadata"},
        {"{\"redirect_uris\":[\"https://a.example/cb\"],\"client_name\":\"a\\nb\"}",
         "invalid_client_metadata"},
        {"{\"a\":1,\"a\":2}", "invalid_client_metadata"},
        {"nul", "invalid_client_metadata"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err = NULL;
        assert_int_equal(register_validate(bad[i].body, strlen(bad[i].body), &client, &meta, &err,
                                           why, sizeof(why)),
                         ERR_INVAL);
        assert_string_equal(err, bad[i].error);
    }
    char *big = malloc(REGISTER_BODY_MAX + 2);
    memset(big, ' ', REGISTER_BODY_MAX + 1);
    big[REGISTER_BODY_MAX + 1] = '\0';
    assert_int_equal(
        register_validate(big, REGISTER_BODY_MAX + 1, &client, &meta, &err, why, sizeof(why)),
        ERR_INVAL);
    free(big);
}

/* An access policy may name a client ID metadata document's URL: the snapshot then knows
 * a public authorization_code client by that URL. */
static void test_metadata_document_client(void **state)
{
    (void)state;
    const char *url = "https://app.example/client.json";
    json_t *ap = json_pack("{s:s, s:s, s:s}", "id", "ap", "client", url, "system", "docs");
    json_t *out = NULL;
    char *id = NULL;
    struct policy_error e;
    memset(&e, 0, sizeof(e));
    assert_int_equal(policy_normalize(STORE_ACCESS_POLICIES, ap, NULL, "", &out, &id, &e), 0);
    free(id);
    json_t *bad = json_pack("{s:s, s:s, s:s}", "id", "ap2", "client", "ftp://x/y", "system", "docs");
    json_t *out2 = NULL;
    assert_int_equal(policy_normalize(STORE_ACCESS_POLICIES, bad, NULL, "", &out2, &id, &e),
                     ERR_INVAL);
    json_t *sys = json_pack("{s:s, s:s, s:[s], s:s}", "id", "docs", "audience",
                            "https://as.example", "resource_urls", "https://as.example/mcp",
                            "token_type", "access_token");
    json_t *sys_n = NULL;
    assert_int_equal(policy_normalize(STORE_SYSTEMS, sys, NULL, "", &sys_n, &id, &e), 0);
    free(id);
    struct policy_input in = {0};
    in.lists[STORE_SYSTEMS] = json_pack("[o]", sys_n);
    in.lists[STORE_ACCESS_POLICIES] = json_pack("[O]", out);
    struct policy_snapshot *snap = NULL;
    assert_int_equal(policy_snapshot_build(&in, &snap, &e), 0);
    const struct policy_client *c = policy_client_by_id(snap, url);
    assert_non_null(c);
    assert_true(c->metadata_document);
    assert_int_equal(c->auth, POLICY_AUTH_NONE);
    assert_int_equal(c->grant_types, POLICY_GT_AUTHORIZATION_CODE);
    assert_int_equal(snap->n_access, 1);
    assert_ptr_equal(snap->access[0].client, c);
    policy_snapshot_unref(snap);
    json_decref(in.lists[STORE_SYSTEMS]);
    json_decref(in.lists[STORE_ACCESS_POLICIES]);
    json_decref(out);
    json_decref(ap);
    json_decref(bad);
    json_decref(sys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pkce),
        cmocka_unit_test(test_redirect_rules),
        cmocka_unit_test(test_redirect_matching),
        cmocka_unit_test(test_net_classify),
        cmocka_unit_test(test_code_lifecycle),
        cmocka_unit_test(test_rate_limiter),
        cmocka_unit_test(test_register_validate),
        cmocka_unit_test(test_metadata_document_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
