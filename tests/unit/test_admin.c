/* tests/unit/test_admin.c — admin/ against a real SQLite store in a fresh
 * temporary directory: object round trips and their error codes, one
 * admin.change event per committed change (none for a failed or empty one),
 * the hash chain those events form, `apply` (summary, idempotence,
 * all-or-nothing, prune, line numbers), the signing key lifecycle, and the
 * snapshot swapped in after each change. Client secrets cost one PBKDF2 each,
 * so few clients here have one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin/admin.h"
#include "config/yaml.h"
#include "jose/crypto.h"

static const unsigned char KEK[32] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6,
                                      7, 8, 9, 0, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};

static const struct audit_origin O = {
    .request_id = "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f",
    .endpoint = "admin",
    .client_ip = "127.0.0.1",
    .user_agent = "cmocka",
    .actor = "admin-token",
};

struct fx {
    char dir[256];
    struct store *st;
    struct kek *kek;
    struct policy_holder *h;
    struct admin *a;
};

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/test_admin.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    char url[300];
    snprintf(url, sizeof(url), "sqlite:%s/t.db", f->dir);
    struct err_detail d = {{0}};
    if (store_open(url, &f->st, &d) != 0)
        fail_msg("store_open: %s", d.msg);
    assert_int_equal(kek_from_bytes(KEK, &f->kek), 0);
    f->h = policy_holder_new(NULL);
    assert_non_null(f->h);
    struct admin_config cfg = {.store = f->st, .kek = f->kek, .policy = f->h, .node = "node-a"};
    assert_int_equal(admin_new(&cfg, &f->a), 0);
    assert_int_equal(admin_reload(f->a, &d), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    admin_free(f->a);
    policy_holder_free(f->h);
    store_close(f->st);
    kek_free(f->kek);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- helpers ---- */

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
        char *g = got ? json_dumps(got, JSON_SORT_KEYS | JSON_ENCODE_ANY) : NULL;
        char *w = json_dumps(want, JSON_SORT_KEYS | JSON_ENCODE_ANY);
        fail_msg("got  %s\nwant %s", g ? g : "(null)", w);
    }
    json_decref(want);
}

static const char *str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static int64_t n_events(struct fx *f)
{
    int64_t n = -1;
    assert_int_equal(store_events_count(f->st, &n), 0);
    return n;
}

static int collect(const char *doc, int64_t seq, void *arg)
{
    json_t *ev = json_loads(doc, 0, NULL);
    if (!ev || json_integer_value(json_object_get(ev, "seq")) != seq)
        return -1000;
    json_array_append_new(arg, ev);
    return 0;
}

/* Every stored event, parsed, in seq order. */
static json_t *events(struct fx *f)
{
    json_t *all = json_array();
    assert_int_equal(store_events_scan(f->st, 0, 100000, collect, all), 0);
    return all;
}

static json_t *last_event(struct fx *f)
{
    json_t *all = events(f);
    assert_true(json_array_size(all) > 0);
    json_t *ev = json_incref(json_array_get(all, json_array_size(all) - 1));
    json_decref(all);
    return ev;
}

/* The snapshot now in the holder; checks it is the one of the last change. */
static struct policy_snapshot *snap(struct fx *f)
{
    struct policy_snapshot *s = policy_holder_get(f->h);
    assert_non_null(s);
    assert_int_equal(s->version, admin_version(f->a));
    return s;
}

static json_t *create_ok(struct fx *f, enum store_kind kind, const char *text)
{
    json_t *body = J(text), *ret = NULL;
    struct err_detail d = {{0}};
    int r = admin_create(f->a, &O, kind, body, &ret, &d);
    if (r != 0)
        fail_msg("create %s: %d %s", text, r, d.msg);
    json_decref(body);
    assert_non_null(ret);
    return ret;
}

/* A failing create: the code, a message containing needle, and no event. */
static void create_fails(struct fx *f, enum store_kind kind, const char *text, int err,
                         const char *needle)
{
    int64_t before = n_events(f);
    uint64_t v = admin_version(f->a);
    json_t *body = J(text), *ret = (json_t *)0x1;
    struct err_detail d = {{0}};
    int r = admin_create(f->a, &O, kind, body, &ret, &d);
    if (r != err || !strstr(d.msg, needle))
        fail_msg("create %s: got %d '%s', want %d with '%s'", text, r, d.msg, err, needle);
    assert_ptr_equal(ret, (json_t *)0x1);
    json_decref(body);
    assert_int_equal(n_events(f), before);
    assert_int_equal(admin_version(f->a), v);
}

static void assert_admin_event(const json_t *ev, const char *action, const char *object)
{
    assert_string_equal(str(ev, "type"), "admin.change");
    assert_string_equal(str(ev, "outcome"), "success");
    assert_string_equal(str(ev, "severity"), "info");
    assert_string_equal(str(ev, "actor"), "admin-token");
    assert_string_equal(str(ev, "action"), action);
    assert_string_equal(str(ev, "object"), object);
    assert_string_equal(str(ev, "node"), "node-a");
    const json_t *req = json_object_get(ev, "request");
    assert_string_equal(str(req, "id"), O.request_id);
    assert_string_equal(str(req, "endpoint"), "admin");
    assert_string_equal(str(req, "client_ip"), "127.0.0.1");
    /* every common field is present, null when it does not apply */
    static const char *const nulls[] = {"reason", "user",   "groups", "client",
                                        "system", "scopes", "token",  "access_policy"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        const json_t *v = json_object_get(ev, nulls[i]);
        if (!v || !json_is_null(v))
            fail_msg("event member %s: not null", nulls[i]);
    }
    assert_non_null(str(ev, "id"));
    assert_non_null(str(ev, "time"));
    assert_non_null(str(ev, "hash"));
    assert_true(json_is_object(json_object_get(ev, "changes")));
}

#define GITHUB                                                                                     \
    "{\"id\": \"github\", \"audience\": \"https://auth.github.example/\", \"resource_urls\": "     \
    "[\"https://mcp.github.example/mcp\"], \"scopes\": [\"repo:read\"]}"

/* ---- objects ---- */

static void test_crud(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    assert_int_equal(n_events(f), 0);
    uint64_t v0 = admin_version(f->a);

    /* create */
    json_t *ret = create_ok(f, STORE_SYSTEMS, GITHUB);
    assert_json_equal(ret, "{\"id\": \"github\", \"name\": \"github\", \"audience\": "
                           "\"https://auth.github.example/\", \"resource_urls\": "
                           "[\"https://mcp.github.example/mcp\"], \"scopes\": [{\"name\": "
                           "\"repo:read\", \"enabled\": true}], \"paused\": false, "
                           "\"signing_alg\": \"inherit\", \"token_type\": \"id-jag\"}");
    assert_int_equal(n_events(f), 1);
    json_t *ev = last_event(f);
    assert_admin_event(ev, "create", "system:github");
    assert_int_equal(json_integer_value(json_object_get(ev, "seq")), 1);
    assert_true(json_is_null(json_object_get(json_object_get(ev, "changes"), "before")));
    assert_true(json_equal(json_object_get(json_object_get(ev, "changes"), "after"), ret));
    json_decref(ev);
    json_decref(ret);
    assert_int_equal(admin_version(f->a), v0 + 1);

    /* the snapshot was swapped */
    struct policy_snapshot *s = snap(f);
    assert_non_null(policy_system_by_id(s, "github"));
    assert_false(policy_system_by_id(s, "github")->paused);
    policy_snapshot_unref(s);

    /* create again, invalid bodies: refused, nothing recorded */
    create_fails(f, STORE_SYSTEMS, GITHUB, ERR_EXISTS, "system:github already exists");
    create_fails(f, STORE_SYSTEMS,
                 "{\"id\": \"x\", \"audience\": \"https://x.example\", \"nmae\": \"X\"}", ERR_INVAL,
                 "nmae: unknown field");
    create_fails(f, STORE_SYSTEMS, "{\"id\": \"x\", \"audience\": \"x.example\"}", ERR_INVAL,
                 "audience: expected an absolute http(s) URL");
    create_fails(f, STORE_SYSTEMS, "[1]", ERR_INVAL, "expected an object");

    /* get, list */
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), 0);
    assert_string_equal(str(ret, "audience"), "https://auth.github.example/");
    json_decref(ret);
    ret = (json_t *)0x1;
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "nope", &ret, &d), ERR_NOTFOUND);
    assert_string_equal(d.msg, "system:nope does not exist");
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_int_equal(admin_get(f->a, STORE_CLIENTS, "github", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_list(f->a, STORE_SYSTEMS, &ret), 0);
    assert_int_equal(json_array_size(ret), 1);
    assert_string_equal(str(json_array_get(ret, 0), "id"), "github");
    json_decref(ret);
    assert_int_equal(admin_list(f->a, STORE_CLIENTS, &ret), 0);
    assert_int_equal(json_array_size(ret), 0);
    json_decref(ret);

    /* replace: one update event with the changed members only */
    json_t *body = J("{\"id\": \"github\", \"name\": \"GitHub MCP\", \"audience\": "
                     "\"https://auth.github.example/\", \"resource_urls\": "
                     "[\"https://mcp.github.example/mcp\"], \"scopes\": [\"repo:read\"]}");
    assert_int_equal(admin_replace(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), 0);
    assert_string_equal(str(ret, "name"), "GitHub MCP");
    json_decref(ret);
    assert_int_equal(n_events(f), 2);
    ev = last_event(f);
    assert_admin_event(ev, "update", "system:github");
    assert_json_equal(
        json_object_get(ev, "changes"),
        "{\"before\": {\"name\": \"github\"}, \"after\": {\"name\": \"GitHub MCP\"}}");
    json_decref(ev);

    /* the same replace again changes nothing and records nothing */
    assert_int_equal(admin_replace(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), 0);
    json_decref(ret);
    assert_int_equal(n_events(f), 2);
    json_decref(body);

    /* replace errors */
    ret = (json_t *)0x1;
    body = J("{\"id\": \"other\", \"audience\": \"https://auth.github.example/\"}");
    assert_int_equal(admin_replace(f->a, &O, STORE_SYSTEMS, "other", body, &ret, &d), ERR_NOTFOUND);
    assert_string_equal(d.msg, "system:other does not exist");
    json_decref(body);
    body = J("{\"id\": \"github\", \"audience\": 5}");
    assert_int_equal(admin_replace(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "audience"));
    json_decref(body);
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_int_equal(n_events(f), 2);

    /* patch */
    body = J("{\"paused\": true, \"max_lifetime\": \"2m\"}");
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), 0);
    json_decref(body);
    assert_true(json_is_true(json_object_get(ret, "paused")));
    assert_string_equal(str(ret, "max_lifetime"), "120s");
    assert_string_equal(str(ret, "name"), "GitHub MCP"); /* untouched members stay */
    json_decref(ret);
    assert_int_equal(n_events(f), 3);
    ev = last_event(f);
    assert_admin_event(ev, "update", "system:github");
    assert_json_equal(json_object_get(ev, "changes"),
                      "{\"before\": {\"paused\": false}, \"after\": {\"paused\": true, "
                      "\"max_lifetime\": \"120s\"}}");
    json_decref(ev);
    s = snap(f);
    assert_true(policy_system_by_id(s, "github")->paused);
    assert_int_equal(policy_system_by_id(s, "github")->max_lifetime, 120);
    policy_snapshot_unref(s);

    /* null in a merge patch removes the member (the default comes back) */
    body = J("{\"name\": null, \"max_lifetime\": null}");
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), 0);
    json_decref(body);
    assert_string_equal(str(ret, "name"), "github");
    assert_null(json_object_get(ret, "max_lifetime"));
    json_decref(ret);
    assert_int_equal(n_events(f), 4);

    /* patch errors */
    body = J("{\"paused\": \"yes\"}");
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "paused: expected true or false"));
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "nope", body, &ret, &d), ERR_NOTFOUND);
    json_decref(body);
    body = J("[]");
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), ERR_INVAL);
    json_decref(body);
    assert_int_equal(n_events(f), 4);

    /* delete */
    uint64_t v = admin_version(f->a);
    assert_int_equal(admin_delete(f->a, &O, STORE_SYSTEMS, "github", &d), 0);
    assert_int_equal(n_events(f), 5);
    assert_int_equal(admin_version(f->a), v + 1);
    ev = last_event(f);
    assert_admin_event(ev, "delete", "system:github");
    assert_string_equal(str(json_object_get(json_object_get(ev, "changes"), "before"), "id"),
                        "github");
    assert_true(json_is_null(json_object_get(json_object_get(ev, "changes"), "after")));
    json_decref(ev);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), ERR_NOTFOUND);
    s = snap(f);
    assert_null(policy_system_by_id(s, "github"));
    assert_int_equal(s->n_systems, 0);
    policy_snapshot_unref(s);
    assert_int_equal(admin_delete(f->a, &O, STORE_SYSTEMS, "github", &d), ERR_NOTFOUND);
    assert_string_equal(d.msg, "system:github does not exist");
    assert_int_equal(admin_delete(f->a, &O, STORE_SETTINGS, "settings", &d), ERR_METHOD);
    assert_int_equal(n_events(f), 5);
}

static void test_id_mismatch(void **state)
{
    struct fx *f = *state;
    /* regression test: this was a bug, fixed with the test */
    struct err_detail d = {{0}};
    json_decref(create_ok(f, STORE_SYSTEMS, GITHUB));
    json_t *ret = (json_t *)0x1;
    json_t *body = J("{\"id\": \"other\", \"audience\": \"https://auth.github.example/\"}");
    assert_int_equal(admin_replace(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "id: \"other\" in the body does not match \"github\""));
    json_decref(body);
    body = J("{\"id\": \"renamed\"}");
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "does not match"));
    json_decref(body);
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_int_equal(n_events(f), 1);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), 0);
    json_decref(ret);
}

static void test_references(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    json_decref(create_ok(f, STORE_SYSTEMS, GITHUB));
    json_decref(create_ok(f, STORE_CLIENTS, "{\"id\": \"desktop\", \"auth\": \"none\"}"));
    assert_int_equal(n_events(f), 2);

    /* cross-object rules are checked on the whole candidate state */
    create_fails(f, STORE_ACCESS_POLICIES,
                 "{\"id\": \"ap\", \"client\": \"ghost\", \"system\": \"github\"}", ERR_INVAL,
                 "access policy \"ap\": client \"ghost\" does not exist");
    create_fails(f, STORE_ACCESS_POLICIES,
                 "{\"id\": \"ap\", \"client\": \"desktop\", \"system\": \"nowhere\"}", ERR_INVAL,
                 "system \"nowhere\" does not exist");
    create_fails(f, STORE_GRANTS,
                 "{\"subject\": \"client:unknown\", \"system\": \"github\", \"scopes\": [\"a\"]}",
                 ERR_INVAL, "client \"unknown\" does not exist");
    create_fails(f, STORE_SYSTEMS,
                 "{\"id\": \"copy\", \"audience\": \"https://c.example\", \"resource_urls\": "
                 "[\"https://mcp.github.example/mcp\"]}",
                 ERR_INVAL, "target URL https://mcp.github.example/mcp is already registered");
    /* none of those reached the store */
    json_t *ret = NULL;
    assert_int_equal(admin_get(f->a, STORE_ACCESS_POLICIES, "ap", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "copy", &ret, &d), ERR_NOTFOUND);

    json_decref(create_ok(f, STORE_ACCESS_POLICIES,
                          "{\"id\": \"ap\", \"client\": \"desktop\", \"system\": \"github\"}"));
    ret = create_ok(f, STORE_GRANTS,
                    "{\"subject\": \"group:eng\", \"system\": \"github\", \"scopes\": [\"a\"]}");
    assert_string_equal(str(ret, "id"), "github:group:eng");
    json_decref(ret);
    assert_int_equal(n_events(f), 4);
    json_t *ev = last_event(f);
    assert_admin_event(ev, "create", "grant:github:group:eng");
    json_decref(ev);
    create_fails(f, STORE_ACCESS_POLICIES,
                 "{\"id\": \"ap2\", \"client\": \"desktop\", \"system\": \"github\"}", ERR_INVAL,
                 "already connected");

    /* deleting what others use is a conflict, and changes nothing */
    assert_int_equal(admin_delete(f->a, &O, STORE_SYSTEMS, "github", &d), ERR_CONFLICT);
    assert_non_null(strstr(d.msg, "system \"github\" does not exist"));
    assert_int_equal(admin_delete(f->a, &O, STORE_CLIENTS, "desktop", &d), ERR_CONFLICT);
    assert_non_null(strstr(d.msg, "access policy \"ap\""));
    assert_int_equal(n_events(f), 4);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), 0);
    json_decref(ret);
    struct policy_snapshot *s = snap(f);
    assert_non_null(policy_system_by_id(s, "github"));
    assert_non_null(strmap_get(&s->access_by_pair, "desktop\ngithub"));
    policy_snapshot_unref(s);

    /* in the right order it works */
    assert_int_equal(admin_delete(f->a, &O, STORE_GRANTS, "github:group:eng", &d), 0);
    assert_int_equal(admin_delete(f->a, &O, STORE_ACCESS_POLICIES, "ap", &d), 0);
    assert_int_equal(admin_delete(f->a, &O, STORE_SYSTEMS, "github", &d), 0);
    assert_int_equal(n_events(f), 7);
}

static void test_client_secret(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};

    /* no secret given: one is generated and returned once */
    json_t *ret = create_ok(f, STORE_CLIENTS, "{\"id\": \"agent\"}");
    const char *secret = str(ret, "secret");
    assert_non_null(secret);
    assert_true(strlen(secret) >= 43);
    assert_true(json_is_true(json_object_get(ret, "secret_set")));
    assert_null(json_object_get(ret, "secret_hash"));
    json_t *stored = NULL;
    assert_int_equal(store_object_get(f->st, STORE_CLIENTS, "agent", &stored), 0);
    assert_null(json_object_get(stored, "secret"));
    assert_int_equal(secret_verify(secret, str(stored, "secret_hash")), 0);
    json_decref(stored);

    /* the event masks it, and nothing in the log holds the secret or its hash */
    json_t *ev = last_event(f);
    assert_admin_event(ev, "create", "client:agent");
    const json_t *after = json_object_get(json_object_get(ev, "changes"), "after");
    assert_string_equal(str(after, "secret_hash"), "***");
    char *text = json_dumps(ev, 0);
    assert_null(strstr(text, secret));
    assert_null(strstr(text, "pbkdf2"));
    free(text);
    json_decref(ev);
    json_decref(ret);

    /* get and list never show it */
    assert_int_equal(admin_get(f->a, STORE_CLIENTS, "agent", &ret, &d), 0);
    assert_null(json_object_get(ret, "secret_hash"));
    assert_null(json_object_get(ret, "secret"));
    assert_true(json_is_true(json_object_get(ret, "secret_set")));
    json_decref(ret);

    /* a new secret by patch: an update whose change says the secret changed */
    json_t *body = J("{\"secret\": \"a-brand-new-secret\"}");
    assert_int_equal(admin_patch(f->a, &O, STORE_CLIENTS, "agent", body, &ret, &d), 0);
    json_decref(body);
    assert_null(json_object_get(ret, "secret"));
    json_decref(ret);
    assert_int_equal(n_events(f), 2);
    ev = last_event(f);
    assert_admin_event(ev, "update", "client:agent");
    assert_json_equal(json_object_get(ev, "changes"),
                      "{\"before\": {\"secret_hash\": \"***\"}, \"after\": {\"secret_hash\": "
                      "\"*** (changed)\"}}");
    json_decref(ev);
    assert_int_equal(store_object_get(f->st, STORE_CLIENTS, "agent", &stored), 0);
    assert_int_equal(secret_verify("a-brand-new-secret", str(stored, "secret_hash")), 0);
    json_decref(stored);

    /* replace without a secret keeps the stored hash */
    body = J("{\"id\": \"agent\", \"name\": \"Agent\"}");
    assert_int_equal(admin_replace(f->a, &O, STORE_CLIENTS, "agent", body, &ret, &d), 0);
    json_decref(body);
    json_decref(ret);
    assert_int_equal(store_object_get(f->st, STORE_CLIENTS, "agent", &stored), 0);
    assert_non_null(str(stored, "secret_hash"));
    assert_string_equal(str(stored, "name"), "Agent");
    json_decref(stored);
    assert_int_equal(n_events(f), 3);

    /* a client without a secret gets none */
    ret = create_ok(f, STORE_CLIENTS, "{\"id\": \"public\", \"auth\": \"none\"}");
    assert_null(json_object_get(ret, "secret"));
    assert_null(json_object_get(ret, "secret_set"));
    json_decref(ret);
    create_fails(f, STORE_CLIENTS, "{\"id\": \"pk\", \"auth\": \"private_key_jwt\"}", ERR_INVAL,
                 "jwks: private_key_jwt needs jwks or jwks_uri");
}

static void test_settings(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    json_t *ret = NULL;
    assert_int_equal(admin_settings_get(f->a, &ret), 0);
    assert_json_equal(ret, "{\"default_signing_alg\": \"ES256\", \"maintained_algs\": "
                           "[\"ES256\"], \"default_lifetime\": \"300s\"}");
    json_decref(ret);

    json_t *body = J("{\"default_lifetime\": \"10m\"}");
    assert_int_equal(admin_patch(f->a, &O, STORE_SETTINGS, "settings", body, &ret, &d), 0);
    json_decref(body);
    assert_string_equal(str(ret, "default_lifetime"), "600s");
    json_decref(ret);
    assert_int_equal(n_events(f), 1);
    json_t *ev = last_event(f);
    assert_admin_event(ev, "create", "settings");
    json_decref(ev);
    struct policy_snapshot *s = snap(f);
    assert_int_equal(s->settings.default_lifetime, 600);
    policy_snapshot_unref(s);

    body = J("{\"default_signing_alg\": \"none\"}");
    assert_int_equal(admin_replace(f->a, &O, STORE_SETTINGS, "settings", body, &ret, &d),
                     ERR_INVAL);
    json_decref(body);
    assert_int_equal(n_events(f), 1);
    assert_int_equal(admin_settings_get(f->a, &ret), 0);
    assert_string_equal(str(ret, "default_lifetime"), "600s");
    json_decref(ret);
}

/* ---- the audit chain ---- */

static void test_hash_chain(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    json_decref(create_ok(f, STORE_SYSTEMS, GITHUB));
    json_decref(create_ok(f, STORE_CLIENTS, "{\"id\": \"c1\", \"auth\": \"none\"}"));
    json_t *body = J("{\"paused\": true}");
    json_t *ret = NULL;
    assert_int_equal(admin_patch(f->a, &O, STORE_SYSTEMS, "github", body, &ret, &d), 0);
    json_decref(ret);
    json_decref(body);
    assert_int_equal(admin_delete(f->a, &O, STORE_CLIENTS, "c1", &d), 0);
    assert_int_equal(admin_keys_ensure(f->a, &O, &d), 1);

    json_t *all = events(f);
    assert_int_equal(json_array_size(all), 5);
    assert_int_equal(n_events(f), 5);
    const char *prev = NULL;
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), (json_int_t)i + 1);
        if (i == 0)
            assert_true(json_is_null(json_object_get(ev, "prev_hash")));
        else
            assert_string_equal(str(ev, "prev_hash"), prev);
        char h[44];
        assert_int_equal(audit_event_hash(ev, prev ? prev : "", h), 0);
        assert_string_equal(h, str(ev, "hash"));
        prev = str(ev, "hash");
    }
    assert_string_equal(str(json_array_get(all, 4), "type"), "key.rotate");

    /* tampering with a stored field breaks the recomputed hash */
    ev = json_deep_copy(json_array_get(all, 1));
    json_object_set_new(ev, "actor", json_string("someone-else"));
    char h[44];
    assert_int_equal(audit_event_hash(ev, str(json_array_get(all, 0), "hash"), h), 0);
    assert_string_not_equal(h, str(ev, "hash"));
    json_decref(ev);
    json_decref(all);
}

/* ---- apply ---- */

static int apply_text(struct fx *f, const char *text, int prune, json_t **ret, struct err_detail *d)
{
    struct config_doc *doc = NULL;
    int r = config_doc_parse(text, strlen(text), &doc, d);
    if (r != 0)
        fail_msg("parse: %s", d->msg);
    r = admin_apply(f->a, &O, doc, prune, ret, d);
    config_doc_free(doc);
    return r;
}

static json_t *apply_ok(struct fx *f, const char *text, int prune)
{
    json_t *ret = NULL;
    struct err_detail d = {{0}};
    int r = apply_text(f, text, prune, &ret, &d);
    if (r != 0)
        fail_msg("apply: %d %s", r, d.msg);
    return ret;
}

static void apply_fails(struct fx *f, const char *text, const char *needle1, const char *needle2)
{
    int64_t before = n_events(f);
    json_t *ret = (json_t *)0x1;
    struct err_detail d = {{0}};
    int r = apply_text(f, text, 0, &ret, &d);
    if (r != ERR_INVAL || !strstr(d.msg, needle1) || !strstr(d.msg, needle2))
        fail_msg("apply: got %d '%s', want ERR_INVAL with '%s' and '%s'", r, d.msg, needle1,
                 needle2);
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_int_equal(n_events(f), before);
}

static void assert_summary(const json_t *s, int created, int updated, int deleted, int unchanged)
{
    char want[200];
    snprintf(want, sizeof(want), "c%d u%d d%d n%d", created, updated, deleted, unchanged);
    char got[200];
    snprintf(got, sizeof(got), "c%d u%d d%d n%d",
             (int)json_integer_value(json_object_get(s, "created")),
             (int)json_integer_value(json_object_get(s, "updated")),
             (int)json_integer_value(json_object_get(s, "deleted")),
             (int)json_integer_value(json_object_get(s, "unchanged")));
    assert_string_equal(got, want);
    assert_int_equal(json_array_size(json_object_get(s, "changes")), created + updated + deleted);
}

static const char POLICY[] =
    "settings:\n"
    "  default_signing_alg: ES256\n"
    "  default_lifetime: 300s\n"
    "systems:\n"
    "  - id: github\n"
    "    name: GitHub MCP\n"
    "    audience: https://auth.github.example/\n"
    "    resource_urls: [https://mcp.github.example/mcp]\n"
    "    scopes:\n"
    "      - {name: repo:read, enabled: true, classification: read}\n"
    "      - {name: repo:write, enabled: false, classification: write}\n"
    "    max_lifetime: 5m\n"
    "  - id: slack\n"
    "    audience: https://slack.example/\n"
    "    scopes: [chat:write]\n"
    "clients:\n"
    "  - id: desktop-agent\n"
    "    name: Desktop agent\n"
    "    auth: client_secret_basic\n"
    "    secret: dev-only-secret\n"
    "    redirect_uris: [http://127.0.0.1/callback]\n"
    "access_policies:\n"
    "  - {id: desktop-github, client: desktop-agent, system: github, active: true}\n"
    "grants:\n"
    "  - {subject: user:alice@example.com, system: github, scopes: [repo:read, repo:write]}\n"
    "  - {subject: group:engineering, system: github, scopes: [repo:read]}\n"
    "trusted_issuers:\n"
    "  - issuer: https://idp.example.com\n"
    "    jwks_uri: https://idp.example.com/.well-known/jwks.json\n"
    "    audience: mcpauth\n"
    "    algorithms: [RS256, ES256]\n";

static void test_apply(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};

    json_t *sum = apply_ok(f, POLICY, 0);
    assert_summary(sum, 8, 0, 0, 0);
    json_t *c0 = json_array_get(json_object_get(sum, "changes"), 0);
    assert_string_equal(str(c0, "action"), "create");
    assert_string_equal(str(c0, "object"), "settings");
    char *text = json_dumps(sum, 0);
    assert_non_null(strstr(text, "\"system:github\""));
    assert_non_null(strstr(text, "\"grant:github:user:alice@example.com\""));
    assert_non_null(strstr(text, "\"trusted_issuer:https://idp.example.com\""));
    free(text);
    json_decref(sum);
    assert_int_equal(n_events(f), 8);
    json_t *all = events(f);
    size_t i;
    json_t *ev;
    json_array_foreach(all, i, ev)
    {
        assert_admin_event(ev, "create", str(ev, "object"));
        /* the client's secret is masked in its event */
        if (strcmp(str(ev, "object"), "client:desktop-agent") == 0)
            assert_string_equal(
                str(json_object_get(json_object_get(ev, "changes"), "after"), "secret_hash"),
                "***");
    }
    json_decref(all);

    struct policy_snapshot *s = snap(f);
    uint64_t v = s->version;
    assert_int_equal(s->n_systems, 2);
    assert_int_equal(s->n_clients, 1);
    assert_int_equal(s->n_access, 1);
    assert_int_equal(s->n_grants, 2);
    assert_int_equal(s->n_issuers, 1);
    assert_int_equal(policy_system_by_id(s, "github")->max_lifetime, 300);
    assert_non_null(strmap_get(&s->access_by_pair, "desktop-agent\ngithub"));
    assert_non_null(policy_client_by_id(s, "desktop-agent")->secret_hash);
    policy_snapshot_unref(s);

    /* again: every object unchanged (the secret keeps its hash), no event */
    sum = apply_ok(f, POLICY, 0);
    assert_summary(sum, 0, 0, 0, 8);
    json_decref(sum);
    assert_int_equal(n_events(f), 8);
    s = snap(f);
    assert_true(s->version >= v);
    assert_int_equal(s->n_systems, 2);
    policy_snapshot_unref(s);

    /* one change among unchanged ones */
    static const char one_change[] = "systems:\n"
                                     "  - id: slack\n"
                                     "    audience: https://slack.example/\n"
                                     "    scopes: [chat:write]\n"
                                     "    paused: true\n";
    sum = apply_ok(f, one_change, 0);
    assert_summary(sum, 0, 1, 0, 0);
    assert_string_equal(str(json_array_get(json_object_get(sum, "changes"), 0), "object"),
                        "system:slack");
    json_decref(sum);
    assert_int_equal(n_events(f), 9);
    ev = last_event(f);
    assert_admin_event(ev, "update", "system:slack");
    json_decref(ev);

    /* an error in a later object: nothing of the document is stored */
    static const char later_error[] = "systems:\n"      /* 1 */
                                      "  - id: fresh\n" /* 2 */
                                      "    audience: https://f.example/\n"
                                      "grants:\n"              /* 4 */
                                      "  - subject: group:x\n" /* 5 */
                                      "    system: fresh\n"    /* 6 */
                                      "    scopez: [a]\n";     /* 7 */
    apply_fails(f, later_error, "line 7", "grants[0].scopez: unknown field");
    json_t *ret = NULL;
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "fresh", &ret, &d), ERR_NOTFOUND);

    static const char later_type[] = "systems:\n"
                                     "  - id: fresh\n"
                                     "    audience: https://f.example/\n"
                                     "  - id: fresh2\n"
                                     "    audience: https://g.example/\n"
                                     "    max_lifetime: 5x\n";
    apply_fails(f, later_type, "line 6", "systems[1].max_lifetime: expected a duration");
    static const char missing[] = "systems:\n"
                                  "  - id: fresh\n"
                                  "    audience: https://f.example/\n"
                                  "  - id: fresh2\n"
                                  "    name: No audience\n";
    apply_fails(f, missing, "line 4", "systems[1].audience: required");

    /* cross-object errors also leave everything as it was */
    static const char xref[] = "systems:\n"
                               "  - id: fresh\n"
                               "    audience: https://f.example/\n"
                               "grants:\n"
                               "  - {subject: user:bob, system: nowhere, scopes: [a]}\n";
    apply_fails(f, xref, "grant \"nowhere:user:bob\"", "does not exist");
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "fresh", &ret, &d), ERR_NOTFOUND);

    /* the same id twice in one document */
    static const char dup[] = "systems:\n"
                              "  - id: fresh\n"
                              "    audience: https://f.example/\n"
                              "  - id: fresh\n"
                              "    audience: https://g.example/\n";
    apply_fails(f, dup, "line 4", "systems[1]: duplicate id \"fresh\" (first named at systems[0])");
    static const char dup_grant[] = "grants:\n"
                                    "  - {subject: user:bob, system: github, scopes: [a]}\n"
                                    "  - {subject: user:bob, system: github, scopes: [b]}\n";
    apply_fails(f, dup_grant, "duplicate id \"github:user:bob\"", "grants[0]");

    /* document shape */
    apply_fails(f, "sytems: []\n", "line 1", "sytems: unknown section");
    apply_fails(f, "systems: {id: x}\n", "line 1", "systems: expected a list");
    apply_fails(f, "exporters: []\n", "exporters", "unknown section");
    apply_fails(f, "- a\n- b\n", "a policy document is a mapping", "");
    assert_int_equal(n_events(f), 9);

    /* an empty document changes nothing */
    sum = apply_ok(f, "", 0);
    assert_summary(sum, 0, 0, 0, 0);
    json_decref(sum);
    assert_int_equal(n_events(f), 9);
}

/* Pieces of a policy without client secrets (no PBKDF2), for the prune test. */
#define P_GITHUB                                                                                   \
    "  - id: github\n"                                                                             \
    "    audience: https://auth.github.example/\n"                                                 \
    "    resource_urls: [https://mcp.github.example/mcp]\n"                                        \
    "    scopes: [repo:read, repo:write]\n"
#define P_SLACK                                                                                    \
    "  - id: slack\n"                                                                              \
    "    audience: https://slack.example/\n"
#define P_CLIENT "clients:\n  - {id: desktop-agent, auth: none}\n"
#define P_ACCESS                                                                                   \
    "access_policies:\n  - {id: desktop-github, client: desktop-agent, system: github}\n"
#define P_ALICE "  - {subject: user:alice@example.com, system: github, scopes: [repo:read]}\n"
#define P_ENG   "  - {subject: group:engineering, system: github, scopes: [repo:read]}\n"
#define P_ISSUER                                                                                   \
    "trusted_issuers:\n"                                                                           \
    "  - {issuer: https://idp.example.com, jwks_uri: https://idp.example.com/jwks, audience: a}\n"

static void test_apply_prune(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    static const char full[] =
        "settings: {default_lifetime: 5m}\n"
        "systems:\n" P_GITHUB P_SLACK P_CLIENT P_ACCESS "grants:\n" P_ALICE P_ENG P_ISSUER;
    json_t *sum = apply_ok(f, full, 0);
    assert_summary(sum, 8, 0, 0, 0);
    json_decref(sum);
    assert_int_equal(n_events(f), 8);

    /* keeps github, desktop-agent, the access policy and alice's grant */
    static const char subset[] = "systems:\n" P_GITHUB P_CLIENT P_ACCESS "grants:\n" P_ALICE;

    /* without prune nothing is deleted */
    sum = apply_ok(f, subset, 0);
    assert_summary(sum, 0, 0, 0, 4);
    json_decref(sum);
    assert_int_equal(n_events(f), 8);

    sum = apply_ok(f, subset, 1);
    assert_summary(sum, 0, 0, 3, 4);
    char *text = json_dumps(json_object_get(sum, "changes"), JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(strstr(text, "{\"action\":\"delete\",\"object\":\"system:slack\"}"));
    assert_non_null(strstr(text, "\"grant:github:group:engineering\""));
    assert_non_null(strstr(text, "\"trusted_issuer:https://idp.example.com\""));
    free(text);
    json_decref(sum);
    assert_int_equal(n_events(f), 11);
    json_t *ev = last_event(f);
    assert_string_equal(str(ev, "action"), "delete");
    json_decref(ev);

    json_t *ret = NULL;
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "slack", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_get(f->a, STORE_GRANTS, "github:group:engineering", &ret, &d),
                     ERR_NOTFOUND);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), 0);
    json_decref(ret);
    /* settings are not pruned */
    assert_int_equal(store_object_get(f->st, STORE_SETTINGS, "settings", &ret), 0);
    json_decref(ret);
    struct policy_snapshot *s = snap(f);
    assert_int_equal(s->n_systems, 1);
    assert_int_equal(s->n_grants, 1);
    assert_int_equal(s->n_issuers, 0);
    policy_snapshot_unref(s);

    /* a prune that would leave a grant on a deleted system is refused as a whole */
    static const char dangling[] = "grants:\n" P_ALICE;
    json_t *out = (json_t *)0x1;
    assert_int_equal(apply_text(f, dangling, 1, &out, &d), ERR_INVAL);
    assert_non_null(strstr(d.msg, "system \"github\" does not exist"));
    assert_ptr_equal(out, (json_t *)0x1);
    assert_int_equal(n_events(f), 11);
    assert_int_equal(admin_get(f->a, STORE_SYSTEMS, "github", &ret, &d), 0);
    json_decref(ret);

    /* dependent objects pruned together are fine */
    static const char only_system[] = "systems:\n"
                                      "  - id: other\n"
                                      "    audience: https://o.example/\n";
    sum = apply_ok(f, only_system, 1);
    assert_summary(sum, 1, 0, 4, 0);
    json_decref(sum);
    assert_int_equal(n_events(f), 16);
    s = snap(f);
    assert_int_equal(s->n_systems, 1);
    assert_int_equal(s->n_clients + s->n_access + s->n_grants, 0);
    policy_snapshot_unref(s);
}

static void test_apply_line_for_boolean_value(void **state)
{
    struct fx *f = *state;
    /* regression test: this was a bug, fixed with the test */
    static const char text[] = "systems:\n"
                               "  - id: github\n"
                               "    audience: true\n";
    apply_fails(f, text, "line 3", "systems[0].audience: expected an absolute");
}

/* ---- signing keys ---- */

static char *key_status(struct fx *f, const char *kid)
{
    json_t *k = NULL;
    struct err_detail d = {{0}};
    assert_int_equal(admin_key_get(f->a, kid, &k, &d), 0);
    char *s = strdup(str(k, "status"));
    json_decref(k);
    return s;
}

static void assert_status(struct fx *f, const char *kid, const char *want)
{
    char *s = key_status(f, kid);
    assert_string_equal(s, want);
    free(s);
}

static void test_keys(void **state)
{
    struct fx *f = *state;
    struct err_detail d = {{0}};
    json_t *ret = NULL;

    /* ensure: one ES256 key (the default and only maintained algorithm), then nothing */
    assert_int_equal(admin_keys_ensure(f->a, &O, &d), 1);
    assert_int_equal(n_events(f), 1);
    assert_int_equal(admin_keys_ensure(f->a, &O, &d), 0);
    assert_int_equal(n_events(f), 1);
    assert_int_equal(admin_keys_list(f->a, &ret), 0);
    assert_int_equal(json_array_size(ret), 1);
    json_t *k1 = json_incref(json_array_get(ret, 0));
    json_decref(ret);
    assert_string_equal(str(k1, "alg"), "ES256");
    assert_string_equal(str(k1, "status"), "active");
    assert_string_equal(str(json_object_get(k1, "public_jwk"), "kty"), "EC");
    assert_null(json_object_get(json_object_get(k1, "public_jwk"), "d"));
    assert_null(json_object_get(k1, "sealed"));
    char *kid1 = strdup(str(k1, "kid"));
    assert_true(strncmp(kid1, "es256-", 6) == 0);
    json_decref(k1);
    json_t *ev = last_event(f);
    assert_string_equal(str(ev, "type"), "key.rotate");
    assert_string_equal(str(ev, "action"), "create");
    char obj[128];
    snprintf(obj, sizeof(obj), "key:%s", kid1);
    assert_string_equal(str(ev, "object"), obj);
    json_decref(ev);
    struct policy_snapshot *s = snap(f);
    assert_non_null(s->active_key[JOSE_ES256]);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, kid1);
    assert_non_null(s->active_key[JOSE_ES256]->key); /* opened with the KEK */
    assert_non_null(strstr(s->jwks_json, kid1));
    policy_snapshot_unref(s);

    /* a second ES256 key is published, not active */
    assert_int_equal(admin_key_create(f->a, &O, "ES256", &ret, &d), 0);
    assert_string_equal(str(ret, "status"), "published");
    char *kid2 = strdup(str(ret, "kid"));
    assert_string_not_equal(kid1, kid2);
    json_decref(ret);
    assert_int_equal(n_events(f), 2);
    s = snap(f);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, kid1);
    assert_non_null(strstr(s->jwks_json, kid2)); /* published keys are in the JWKS */
    policy_snapshot_unref(s);

    /* activate the second: the first is demoted to published */
    assert_int_equal(admin_key_activate(f->a, &O, kid2, &ret, &d), 0);
    assert_string_equal(str(ret, "status"), "active");
    json_decref(ret);
    assert_status(f, kid1, "published");
    assert_status(f, kid2, "active");
    assert_int_equal(n_events(f), 4); /* publish kid1 + activate kid2 */
    s = snap(f);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, kid2);
    assert_non_null(strstr(s->jwks_json, kid1));
    policy_snapshot_unref(s);

    /* activating the active key again records nothing */
    assert_int_equal(admin_key_activate(f->a, &O, kid2, &ret, &d), 0);
    json_decref(ret);
    assert_int_equal(n_events(f), 4);

    /* the only active key of the default algorithm cannot be retired */
    ret = (json_t *)0x1;
    assert_int_equal(admin_key_retire(f->a, &O, kid2, &ret, &d), ERR_CONFLICT);
    assert_non_null(strstr(d.msg, "only active ES256 key"));
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_status(f, kid2, "active");
    assert_int_equal(n_events(f), 4);

    /* a published one can; it leaves the JWKS and can never come back */
    assert_int_equal(admin_key_retire(f->a, &O, kid1, &ret, &d), 0);
    assert_string_equal(str(ret, "status"), "retired");
    json_decref(ret);
    assert_int_equal(n_events(f), 5);
    ev = last_event(f);
    assert_string_equal(str(ev, "action"), "retire");
    assert_json_equal(json_object_get(ev, "changes"),
                      "{\"before\": {\"alg\": \"ES256\", \"status\": \"published\"}, \"after\": "
                      "{\"alg\": \"ES256\", \"status\": \"retired\"}}");
    json_decref(ev);
    s = snap(f);
    assert_null(strstr(s->jwks_json, kid1));
    assert_non_null(strstr(s->jwks_json, kid2));
    policy_snapshot_unref(s);
    ret = (json_t *)0x1;
    assert_int_equal(admin_key_activate(f->a, &O, kid1, &ret, &d), ERR_CONFLICT);
    assert_non_null(strstr(d.msg, "retired"));
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_status(f, kid1, "retired");
    assert_int_equal(n_events(f), 5);

    /* unknown keys and algorithms */
    assert_int_equal(admin_key_activate(f->a, &O, "nope", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_key_retire(f->a, &O, "nope", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_key_get(f->a, "nope", &ret, &d), ERR_NOTFOUND);
    assert_int_equal(admin_key_create(f->a, &O, "HS256", &ret, &d), ERR_INVAL);
    assert_int_equal(admin_key_create(f->a, &O, "none", &ret, &d), ERR_INVAL);
    assert_int_equal(admin_key_create(f->a, &O, NULL, &ret, &d), ERR_INVAL);
    assert_ptr_equal(ret, (json_t *)0x1);
    assert_int_equal(n_events(f), 5);

    /* an algorithm nobody maintains: its only active key may be retired */
    assert_int_equal(admin_key_create(f->a, &O, "EdDSA", &ret, &d), 0);
    assert_string_equal(str(ret, "status"), "active");
    char *kid3 = strdup(str(ret, "kid"));
    json_decref(ret);
    assert_int_equal(admin_key_retire(f->a, &O, kid3, &ret, &d), 0);
    json_decref(ret);
    s = snap(f);
    assert_null(s->active_key[JOSE_EDDSA]);
    policy_snapshot_unref(s);
    assert_int_equal(n_events(f), 7);

    /* the store keeps only sealed private keys */
    struct store_key *keys = NULL;
    size_t n = 0;
    assert_int_equal(store_key_list(f->st, &keys, &n), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(strncmp(keys[i].sealed, "v1.", 3) == 0);
    store_keys_free(keys, n);

    /* a reload from the store gives the same keys */
    assert_int_equal(admin_reload(f->a, &d), 0);
    s = snap(f);
    assert_string_equal(s->active_key[JOSE_ES256]->kid, kid2);
    policy_snapshot_unref(s);
    free(kid1);
    free(kid2);
    free(kid3);
}

/* The writer seals events serialised ahead of time by filling the seq and prev_hash
 * placeholders; what it stores must be byte for byte what a fresh sorted dump of the
 * sealed event gives, or verification of the chain would fail. Hostile strings that
 * look like the placeholders must not be touched. */
static int grab(const char *doc, int64_t seq, void *arg)
{
    json_t **out = arg;
    json_array_append_new(*out, json_pack("{s:I, s:s}", "seq", (json_int_t)seq, "doc", doc));
    return 0;
}

static void test_prepared_is_canonical(void **state)
{
    struct fx *f = *state;
    json_t *evs[3];
    for (int i = 0; i < 3; i++) {
        evs[i] = audit_event_new("token.request", "denied", "warning", "node-a");
        json_object_set_new(evs[i], "user", json_string("\"seq\":null,\"prev_hash\":null"));
        json_object_set_new(evs[i], "request",
                            json_pack("{s:s, s:n}", "user_agent", ",\"seq\":null}", "seq"));
    }
    struct audit_prepared *p[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(audit_prepare(evs[i], &p[i]), 0);
    assert_int_equal(store_begin(f->st), 0);
    assert_int_equal(audit_append_prepared(f->st, p, 3), 0);
    assert_int_equal(store_commit(f->st), 0);
    json_t *rows = json_array();
    assert_int_equal(store_events_scan(f->st, 0, 1000, grab, &rows), 0);
    size_t n = json_array_size(rows);
    assert_true(n >= 3);
    char prev[64] = "";
    for (size_t i = 0; i < n; i++) {
        const char *doc = json_string_value(json_object_get(json_array_get(rows, i), "doc"));
        json_t *ev = json_loads(doc, 0, NULL);
        assert_non_null(ev);
        char want[44];
        assert_int_equal(audit_event_hash(ev, i ? prev : "", want), 0);
        assert_string_equal(json_string_value(json_object_get(ev, "hash")), want);
        assert_int_equal(json_integer_value(json_object_get(ev, "seq")), (json_int_t)(i + 1));
        snprintf(prev, sizeof(prev), "%s", want);
        if (i >= n - 3) { /* the hostile values came through untouched */
            assert_string_equal(json_string_value(json_object_get(ev, "user")),
                                "\"seq\":null,\"prev_hash\":null");
            assert_true(json_is_null(json_object_get(json_object_get(ev, "request"), "seq")));
        }
        json_decref(ev);
    }
    json_decref(rows);
    for (int i = 0; i < 3; i++) {
        audit_prepared_free(p[i]);
        json_decref(evs[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepared_is_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_id_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_references, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hash_chain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_prune, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_line_for_boolean_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
