/* tests/unit/test_store.c — the SQLite store against its contract in
 * store/store.h. Each test gets a fresh temporary directory; a second
 * connection (a second store_open, or raw sqlite3 for what the store must
 * refuse to do itself) checks what actually reached the file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

struct fx {
    char dir[256];
    char path[320]; /* DIR/db/mcpauth.db */
    char url[340];  /* sqlite:PATH */
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
    snprintf(f->dir, sizeof(f->dir), "%s/test_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/db/mcpauth.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static struct store *open_ok(const char *url)
{
    struct store *s = NULL;
    struct err_detail d = {{0}};
    int r = store_open(url, &s, &d);
    if (r != 0)
        fail_msg("store_open(%s) = %d: %s", url, r, d.msg);
    assert_non_null(s);
    return s;
}

/* ---- raw sqlite3 access, bypassing the store ---- */

static int raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
    assert_int_equal(rc, SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    sqlite3_close(db);
    return rc;
}

/* The first column of the first row as text ("" for NULL, "<none>" for no row). */
static void raw_text(const char *path, const char *sql, char *out, size_t size)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", v ? v : "");
    } else {
        assert_int_equal(rc, SQLITE_DONE);
        snprintf(out, size, "<none>");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void assert_raw(const char *path, const char *sql, const char *want)
{
    char got[512];
    raw_text(path, sql, got, sizeof(got));
    assert_string_equal(got, want);
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_mode & 07777;
}

/* ---- open and migrations ---- */

static void test_open_creates_schema(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    assert_int_equal(store_schema_version(s), 6);
    assert_int_equal(access(f->path, F_OK), 0);

    char wal[400];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    assert_int_equal(access(wal, F_OK), 0);
    assert_raw(f->path, "PRAGMA journal_mode", "wal");
    assert_raw(f->path, "SELECT max(version) FROM schema_migrations", "6");
    assert_raw(f->path,
               "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN"
               " ('settings','systems','clients','access_policies','grants','trusted_issuers',"
               "'exporters','signing_keys','audit_events','exporter_cursors')",
               "10");
    assert_raw(f->path,
               "SELECT count(*) FROM sqlite_schema WHERE type = 'index'"
               " AND tbl_name = 'audit_events' AND name LIKE 'audit_events_%'",
               "6"); /* 6 of migration 1, + 3 (attribute, time) of 3, - 3 single-column of 5 */
    assert_raw(f->path, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'", "2");
    assert_int_equal(store_ping(s), 0);
    store_close(s);
}

static void test_file_modes(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    char p[400];
    assert_int_equal(mode_of(f->path), 0600);
    snprintf(p, sizeof(p), "%s-wal", f->path);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s-shm", f->path);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/db", f->dir);
    assert_int_equal(mode_of(p), 0700);
    store_close(s);

    /* Several missing levels, and a bare path without the scheme. */
    snprintf(p, sizeof(p), "%s/a/b/c/x.db", f->dir);
    s = open_ok(p);
    assert_int_equal(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/a/b", f->dir);
    assert_int_equal(mode_of(p), 0700);
    store_close(s);
}

static void test_reopen_idempotent(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    json_t *doc = json_pack("{s:s}", "id", "github");
    assert_int_equal(store_object_put(s, STORE_SYSTEMS, "github", doc), 0);
    json_decref(doc);
    store_close(s);

    for (int i = 0; i < 2; i++) {
        s = open_ok(f->url);
        assert_int_equal(store_schema_version(s), 6);
        json_t *got = NULL;
        assert_int_equal(store_object_get(s, STORE_SYSTEMS, "github", &got), 0);
        json_decref(got);
        store_close(s);
    }
    assert_raw(f->path, "SELECT count(*) FROM schema_migrations", "6");
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    store_close(open_ok(f->url));
    assert_int_equal(
        raw_exec(f->path, "INSERT INTO schema_migrations(version, applied_at) VALUES(999, 'x')"),
        SQLITE_OK);

    struct store *sentinel = (struct store *)&f;
    struct store *s = sentinel;
    struct err_detail d = {{0}};
    assert_int_equal(store_open(f->url, &s, &d), ERR_CORRUPT);
    assert_string_equal(d.msg, "schema version 999 is newer than this mcpauth (6)");
    assert_ptr_equal(s, sentinel);
}

static void test_open_errors(void **state)
{
    struct fx *f = *state;
    struct store *s = NULL;
    struct err_detail d = {{0}};

    char p[400];
    snprintf(p, sizeof(p), "%s/garbage.db", f->dir);
    FILE *fp = fopen(p, "w");
    assert_non_null(fp);
    for (int i = 0; i < 200; i++)
        fputs("this is not an sqlite database, just text\n", fp);
    fclose(fp);
    assert_int_equal(store_open(p, &s, &d), ERR_CORRUPT);
    assert_null(s);

    /* A file where the parent directory should be. */
    snprintf(p, sizeof(p), "%s/garbage.db/x.db", f->dir);
    assert_int_equal(store_open(p, &s, &d), ERR_IO);
    assert_non_null(strstr(d.msg, "garbage.db"));

    assert_int_equal(store_open("sqlite:", &s, &d), ERR_INVAL);
    assert_int_equal(store_open("", &s, &d), ERR_INVAL);
    assert_int_equal(store_open("postgres://db/mcpauth", &s, &d), ERR_UNSUPPORTED);
    assert_null(s);
    assert_null(store_close(NULL));
}

/* ---- policy objects ---- */

static void test_objects_round_trip(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    static const char *const ids[] = {"c", "a", "b"};

    for (int k = 0; k < STORE_KIND_COUNT; k++) {
        for (size_t i = 0; i < 3; i++) {
            json_t *doc = json_pack("{s:s, s:i, s:[i,i]}", "id", ids[i], "kind", k, "z", 1, 2);
            assert_int_equal(store_object_put(s, (enum store_kind)k, ids[i], doc), 0);
            json_decref(doc);
        }
    }
    for (int k = 0; k < STORE_KIND_COUNT; k++) {
        enum store_kind kind = (enum store_kind)k;
        json_t *got = NULL;
        assert_int_equal(store_object_get(s, kind, "a", &got), 0);
        json_t *want = json_pack("{s:s, s:i, s:[i,i]}", "id", "a", "kind", k, "z", 1, 2);
        assert_true(json_equal(got, want));
        json_decref(want);
        json_decref(got);

        json_t *list = NULL;
        assert_int_equal(store_object_list(s, kind, &list), 0);
        assert_int_equal(json_array_size(list), 3);
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 0), "id")), "a");
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 1), "id")), "b");
        assert_string_equal(json_string_value(json_object_get(json_array_get(list, 2), "id")), "c");
        for (size_t i = 0; i < 3; i++)
            assert_int_equal(json_integer_value(json_object_get(json_array_get(list, i), "kind")),
                             k);
        json_decref(list);

        /* Replace. */
        json_t *doc = json_pack("{s:s, s:b}", "id", "a", "replaced", 1);
        assert_int_equal(store_object_put(s, kind, "a", doc), 0);
        json_decref(doc);
        assert_int_equal(store_object_get(s, kind, "a", &got), 0);
        assert_true(json_is_true(json_object_get(got, "replaced")));
        assert_null(json_object_get(got, "kind"));
        json_decref(got);

        /* Delete, then it is gone. */
        assert_int_equal(store_object_delete(s, kind, "b"), 0);
        got = (json_t *)s;
        assert_int_equal(store_object_get(s, kind, "b", &got), ERR_NOTFOUND);
        assert_ptr_equal(got, (json_t *)s);
        assert_int_equal(store_object_delete(s, kind, "b"), ERR_NOTFOUND);
        assert_int_equal(store_object_get(s, kind, "missing", &got), ERR_NOTFOUND);
        assert_int_equal(store_object_list(s, kind, &list), 0);
        assert_int_equal(json_array_size(list), 2);
        json_decref(list);
    }

    /* Compact, sorted keys on disk. */
    json_t *doc = json_pack("{s:i, s:i, s:s}", "zeta", 1, "alpha", 2, "mid", "x y");
    assert_int_equal(store_object_put(s, STORE_SETTINGS, "settings", doc), 0);
    json_decref(doc);
    assert_raw(f->path, "SELECT doc FROM settings WHERE id = 'settings'",
               "{\"alpha\":2,\"mid\":\"x y\",\"zeta\":1}");
    assert_raw(f->path, "SELECT min(updated_at LIKE '____-__-__T__:__:__.______Z') FROM settings",
               "1");

    /* An empty kind lists as an empty array; a non-object is refused. */
    assert_int_equal(store_object_delete(s, STORE_SETTINGS, "settings"), 0);
    assert_int_equal(store_object_delete(s, STORE_SETTINGS, "a"), 0);
    assert_int_equal(store_object_delete(s, STORE_SETTINGS, "c"), 0);
    json_t *list = NULL;
    assert_int_equal(store_object_list(s, STORE_SETTINGS, &list), 0);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    json_t *arr = json_array();
    assert_int_equal(store_object_put(s, STORE_SYSTEMS, "x", arr), ERR_INVAL);
    json_decref(arr);
    store_close(s);
}

static void test_object_corrupt(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    json_t *doc = json_pack("{s:s}", "id", "github");
    assert_int_equal(store_object_put(s, STORE_SYSTEMS, "github", doc), 0);
    json_decref(doc);
    assert_int_equal(raw_exec(f->path, "UPDATE systems SET doc = '{not json'"), SQLITE_OK);

    json_t *got = NULL;
    assert_int_equal(store_object_get(s, STORE_SYSTEMS, "github", &got), ERR_CORRUPT);
    assert_null(got);
    assert_int_equal(store_object_list(s, STORE_SYSTEMS, &got), ERR_CORRUPT);
    assert_null(got);
    assert_int_equal(raw_exec(f->path, "UPDATE systems SET doc = '[1,2]'"), SQLITE_OK);
    assert_int_equal(store_object_get(s, STORE_SYSTEMS, "github", &got), ERR_CORRUPT);
    store_close(s);
}

/* ---- transactions ---- */

static void test_transactions(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    struct store *other = open_ok(f->url);
    json_t *doc = json_pack("{s:s}", "id", "x");
    json_t *got = NULL;

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_object_put(s, STORE_CLIENTS, "x", doc), 0);
    /* Inside: visible to this connection, not to another. */
    assert_int_equal(store_object_get(s, STORE_CLIENTS, "x", &got), 0);
    json_decref(got);
    assert_int_equal(store_object_get(other, STORE_CLIENTS, "x", &got), ERR_NOTFOUND);
    assert_int_equal(store_ping(s), 0);
    store_rollback(s);
    assert_int_equal(store_object_get(s, STORE_CLIENTS, "x", &got), ERR_NOTFOUND);
    assert_int_equal(store_object_get(other, STORE_CLIENTS, "x", &got), ERR_NOTFOUND);

    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_object_put(s, STORE_CLIENTS, "x", doc), 0);
    assert_int_equal(store_object_put(s, STORE_CLIENTS, "y", doc), 0);
    assert_int_equal(store_object_delete(s, STORE_CLIENTS, "y"), 0);
    assert_int_equal(store_commit(s), 0);
    assert_int_equal(store_object_get(other, STORE_CLIENTS, "x", &got), 0);
    json_decref(got);
    assert_int_equal(store_object_get(other, STORE_CLIENTS, "y", &got), ERR_NOTFOUND);

    /* The store works normally after both endings. */
    assert_int_equal(store_ping(s), 0);
    assert_int_equal(store_ping(other), 0);
    json_decref(doc);
    store_close(other);
    store_close(s);

    /* And the committed row survived a reopen. */
    s = open_ok(f->url);
    assert_int_equal(store_object_get(s, STORE_CLIENTS, "x", &got), 0);
    json_decref(got);
    store_close(s);
}

/* ---- signing keys ---- */

static void test_keys(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    struct store_key *keys = NULL;
    size_t n = 99;

    assert_int_equal(store_key_list(s, &keys, &n), 0);
    assert_int_equal(n, 0);
    store_keys_free(keys, n);

    struct store_key k = {.kid = "b",
                          .alg = "ES256",
                          .status = "active",
                          .created = 200,
                          .updated = 200,
                          .public_jwk = "{\"kty\":\"EC\"}",
                          .sealed = "sealed-b"};
    assert_int_equal(store_key_insert(s, &k), 0);
    k.kid = "z";
    k.created = 100;
    k.status = "published";
    k.sealed = "sealed-z";
    assert_int_equal(store_key_insert(s, &k), 0);
    k.kid = "a";
    k.alg = "EdDSA";
    assert_int_equal(store_key_insert(s, &k), 0);
    assert_int_equal(store_key_insert(s, &k), ERR_EXISTS);
    k.kid = "c";
    k.status = "bogus";
    assert_int_equal(store_key_insert(s, &k), ERR_INVAL);

    assert_int_equal(store_key_set_status(s, "a", "retired", 300), 0);
    assert_int_equal(store_key_set_status(s, "missing", "retired", 300), ERR_NOTFOUND);
    assert_int_equal(store_key_set_status(s, "a", "gone", 300), ERR_INVAL);

    assert_int_equal(store_key_list(s, &keys, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(keys[0].kid, "a");
    assert_string_equal(keys[0].alg, "EdDSA");
    assert_string_equal(keys[0].status, "retired");
    assert_int_equal(keys[0].created, 100);
    assert_int_equal(keys[0].updated, 300);
    assert_string_equal(keys[1].kid, "z");
    assert_string_equal(keys[1].status, "published");
    assert_string_equal(keys[1].sealed, "sealed-z");
    assert_string_equal(keys[2].kid, "b");
    assert_string_equal(keys[2].alg, "ES256");
    assert_string_equal(keys[2].public_jwk, "{\"kty\":\"EC\"}");
    assert_int_equal(keys[2].created, 200);
    store_keys_free(keys, n);
    store_keys_free(NULL, 0);
    store_close(s);
}

/* ---- audit events ---- */

static struct store_event event(int64_t seq, const char *id, const char *hash)
{
    return (struct store_event){.seq = seq,
                                .id = id,
                                .time = "2026-11-22T09:14:03.512384Z",
                                .type = "token.request",
                                .outcome = "granted",
                                .severity = "info",
                                .user = "alice@example.com",
                                .client = "desktop-agent",
                                .system = "github",
                                .doc = "{\"id\":\"x\"}",
                                .hash = hash};
}

struct seen {
    int64_t seqs[16];
    size_t n;
    int64_t stop_at; /* return 7 after this seq; 0 never */
    struct store *s; /* if set, re-enter the store from the callback */
};

static int collect(const char *doc, int64_t seq, void *arg)
{
    struct seen *v = arg;
    assert_non_null(doc);
    assert_true(v->n < 16);
    v->seqs[v->n++] = seq;
    if (v->s) {
        int64_t count = 0;
        assert_int_equal(store_events_count(v->s, &count), 0);
        assert_int_equal(count, 5);
        assert_int_equal(store_cursor_set(v->s, "scan", seq), 0);
    }
    return seq == v->stop_at ? 7 : 0;
}

static void test_events(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    int64_t seq = -1, count = -1;
    char hash[64] = "untouched";

    assert_int_equal(store_events_last(s, &seq, hash), 0);
    assert_int_equal(seq, 0);
    assert_string_equal(hash, "");
    assert_int_equal(store_events_count(s, &count), 0);
    assert_int_equal(count, 0);

    struct store_event e1 = event(1, "019a4f6e-0001", "h1");
    assert_int_equal(store_events_insert(s, &e1), 0);
    struct store_event e2 = event(2, "019a4f6e-0002", "h2");
    e2.outcome = e2.severity = e2.reason = e2.user = e2.client = e2.system = NULL;
    assert_int_equal(store_begin(s), 0);
    assert_int_equal(store_events_insert(s, &e2), 0);
    assert_int_equal(store_commit(s), 0);

    struct store_event bad = event(5, "019a4f6e-0005", "h5");
    assert_int_equal(store_events_insert(s, &bad), ERR_CONFLICT);
    bad.seq = 2;
    assert_int_equal(store_events_insert(s, &bad), ERR_CONFLICT);
    bad.seq = 1;
    assert_int_equal(store_events_insert(s, &bad), ERR_CONFLICT);
    bad = event(3, "019a4f6e-0001", "h3"); /* id already logged */
    assert_int_equal(store_events_insert(s, &bad), ERR_EXISTS);

    assert_int_equal(store_events_last(s, &seq, hash), 0);
    assert_int_equal(seq, 2);
    assert_string_equal(hash, "h2");
    assert_raw(f->path,
               "SELECT (outcome IS NULL) + (severity IS NULL) + (reason IS NULL) + (user IS NULL)"
               " + (client IS NULL) + (system IS NULL) FROM audit_events WHERE seq = 2",
               "6");
    assert_raw(f->path,
               "SELECT user || '|' || client || '|' || system FROM audit_events"
               " WHERE seq = 1",
               "alice@example.com|desktop-agent|github");

    char id[32], h[8];
    for (int64_t i = 3; i <= 5; i++) {
        snprintf(id, sizeof(id), "019a4f6e-%04lld", (long long)i);
        snprintf(h, sizeof(h), "h%lld", (long long)i);
        struct store_event e = event(i, id, h);
        assert_int_equal(store_events_insert(s, &e), 0);
    }
    assert_int_equal(store_events_count(s, &count), 0);
    assert_int_equal(count, 5);

    struct seen v = {0};
    assert_int_equal(store_events_scan(s, 0, 100, collect, &v), 0);
    assert_int_equal(v.n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(v.seqs[i], (int64_t)i + 1);

    v = (struct seen){0};
    assert_int_equal(store_events_scan(s, 2, 2, collect, &v), 0);
    assert_int_equal(v.n, 2);
    assert_int_equal(v.seqs[0], 3);
    assert_int_equal(v.seqs[1], 4);

    v = (struct seen){.stop_at = 2};
    assert_int_equal(store_events_scan(s, 0, 100, collect, &v), 7);
    assert_int_equal(v.n, 2);

    v = (struct seen){0};
    assert_int_equal(store_events_scan(s, 5, 100, collect, &v), 0);
    assert_int_equal(store_events_scan(s, 0, 0, collect, &v), 0);
    assert_int_equal(v.n, 0);

    /* The store is usable from inside a scan callback with other statements. */
    v = (struct seen){.s = s};
    assert_int_equal(store_events_scan(s, 0, SIZE_MAX, collect, &v), 0);
    assert_int_equal(v.n, 5);
    int64_t cur = 0;
    assert_int_equal(store_cursor_get(s, "scan", &cur), 0);
    assert_int_equal(cur, 5);
    store_close(s);
}

static void test_events_append_only(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    struct store_event e = event(1, "019a4f6e-0001", "h1");
    assert_int_equal(store_events_insert(s, &e), 0);

    assert_int_not_equal(raw_exec(f->path, "UPDATE audit_events SET type = 'forged'"), SQLITE_OK);
    assert_int_not_equal(raw_exec(f->path, "DELETE FROM audit_events"), SQLITE_OK);
    assert_raw(f->path, "SELECT type FROM audit_events WHERE seq = 1", "token.request");

    int64_t count = 0;
    assert_int_equal(store_events_count(s, &count), 0);
    assert_int_equal(count, 1);
    store_close(s);
}

/* ---- exporter cursors ---- */

static int dl_first(int64_t seq, const char *event_id, const char *error, const char *time,
                    void *arg)
{
    (void)event_id;
    (void)error;
    (void)time;
    if (*(int64_t *)arg == -2)
        *(int64_t *)arg = seq; /* the first call is the newest */
    return 0;
}

static void test_cursors(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    int64_t seq = -1;
    assert_int_equal(store_cursor_get(s, "siem", &seq), ERR_NOTFOUND);
    assert_int_equal(seq, -1);
    assert_int_equal(store_cursor_set(s, "siem", 42), 0);
    assert_int_equal(store_cursor_get(s, "siem", &seq), 0);
    assert_int_equal(seq, 42);
    assert_int_equal(store_cursor_set(s, "siem", 43), 0);
    assert_int_equal(store_cursor_set(s, "kafka", 7), 0);
    store_close(s);

    s = open_ok(f->url);
    assert_int_equal(store_cursor_get(s, "siem", &seq), 0);
    assert_int_equal(seq, 43);
    assert_int_equal(store_cursor_get(s, "kafka", &seq), 0);
    assert_int_equal(seq, 7);
    assert_int_equal(store_cursor_get(s, "none", &seq), ERR_NOTFOUND);
    assert_int_equal(seq, 7);
    assert_int_equal(store_cursor_set(s, "siem", -1), ERR_INVAL);

    /* dead letters: counted, listed newest first, idempotent, forgotten with the cursor */
    int64_t n = -1;
    assert_int_equal(store_dead_letter_add(s, "siem", 5, "ev-5", "400 bad event"), 0);
    assert_int_equal(store_dead_letter_add(s, "siem", 9, "ev-9", "413 too large"), 0);
    assert_int_equal(store_dead_letter_add(s, "siem", 9, "ev-9", "again"), 0);
    assert_int_equal(store_dead_letter_add(s, "kafka", 1, "ev-1", "x"), 0);
    seq = -2;
    assert_int_equal(store_dead_letters(s, "siem", 10, &n, dl_first, &seq), 0);
    assert_int_equal(n, 2);
    assert_int_equal(seq, 9);
    assert_int_equal(store_cursor_delete(s, "siem"), 0);
    assert_int_equal(store_cursor_get(s, "siem", &seq), ERR_NOTFOUND);
    assert_int_equal(store_dead_letters(s, "siem", 10, &n, NULL, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(store_dead_letters(s, "kafka", 0, &n, NULL, NULL), 0);
    assert_int_equal(n, 1);
    store_close(s);
}

/* ---- threads ---- */

#define PER_THREAD 200

struct worker {
    struct store *s;
    int n;
    int failures;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    json_t *doc = json_pack("{s:i}", "worker", w->n);
    for (int i = 0; i < PER_THREAD; i++) {
        char id[32];
        snprintf(id, sizeof(id), "w%d-%03d", w->n, i);
        if (store_begin(w->s) < 0) {
            w->failures++;
            continue;
        }
        if (store_object_put(w->s, STORE_GRANTS, id, doc) < 0) {
            w->failures++;
            store_rollback(w->s);
            continue;
        }
        if (store_commit(w->s) < 0)
            w->failures++;
    }
    json_decref(doc);
    return NULL;
}

static void run_workers(struct store *a, struct store *b, int64_t want)
{
    struct worker w[2] = {{.s = a, .n = 0}, {.s = b, .n = 1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    assert_int_equal(w[0].failures, 0);
    assert_int_equal(w[1].failures, 0);
    json_t *list = NULL;
    assert_int_equal(store_object_list(a, STORE_GRANTS, &list), 0);
    assert_int_equal(json_array_size(list), want);
    json_decref(list);
}

static void test_concurrent_one_store(void **state)
{
    struct fx *f = *state;
    struct store *s = open_ok(f->url);
    run_workers(s, s, 2 * PER_THREAD);
    store_close(s);
}

/* Two connections to one file: BEGIN IMMEDIATE and busy_timeout serialise the writers. */
static void test_concurrent_two_stores(void **state)
{
    struct fx *f = *state;
    struct store *a = open_ok(f->url);
    struct store *b = open_ok(f->url);
    run_workers(a, b, 2 * PER_THREAD);
    store_close(b);
    store_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_modes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_objects_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_object_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_append_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_one_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_two_stores, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
