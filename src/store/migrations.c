/* store/migrations.c — the SQLite schema, one migration per released change.
 * The array index + 1 is the schema version; schema_migrations records which
 * versions a database has, so max(version) is its schema. Every pending
 * migration runs in the same BEGIN IMMEDIATE transaction as the version check,
 * so two processes opening one new database never both apply it, and a crash
 * mid-way leaves the previous version intact. A database newer than this
 * binary is refused rather than written with an older idea of its shape. */
#include "store/migrations.h"
#include "core/timeutil.h"

#include <stddef.h>
#include <stdio.h>

/* Version 1. Policy objects: one table per kind, the JSON document kept whole.
 * Audit events: the document plus the columns a log search filters on; rows
 * are append-only, enforced by triggers, so an UPDATE or DELETE through any
 * connection that has not dropped them fails. */
static const char migration_1[] =
    "CREATE TABLE settings(id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL);\n"
    "CREATE TABLE systems(id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL);\n"
    "CREATE TABLE clients(id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL);\n"
    "CREATE TABLE access_policies(id TEXT PRIMARY KEY, doc TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);\n"
    "CREATE TABLE grants(id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL);\n"
    "CREATE TABLE trusted_issuers(id TEXT PRIMARY KEY, doc TEXT NOT NULL,"
    " updated_at TEXT NOT NULL);\n"
    "CREATE TABLE exporters(id TEXT PRIMARY KEY, doc TEXT NOT NULL, updated_at TEXT NOT NULL);\n"
    "CREATE TABLE signing_keys(\n"
    "  kid TEXT PRIMARY KEY,\n"
    "  alg TEXT NOT NULL,\n"
    "  status TEXT NOT NULL CHECK(status IN ('active','published','retired')),\n"
    "  created INTEGER NOT NULL,\n"
    "  updated INTEGER NOT NULL,\n"
    "  public_jwk TEXT NOT NULL,\n"
    "  sealed TEXT NOT NULL);\n"
    "CREATE TABLE audit_events(\n"
    "  seq INTEGER PRIMARY KEY,\n"
    "  id TEXT NOT NULL UNIQUE,\n"
    "  time TEXT NOT NULL,\n"
    "  type TEXT NOT NULL,\n"
    "  outcome TEXT,\n"
    "  severity TEXT,\n"
    "  reason TEXT,\n"
    "  user TEXT,\n"
    "  client TEXT,\n"
    "  system TEXT,\n"
    "  doc TEXT NOT NULL,\n"
    "  hash TEXT NOT NULL);\n"
    "CREATE INDEX audit_events_time ON audit_events(time);\n"
    "CREATE INDEX audit_events_type ON audit_events(type);\n"
    "CREATE INDEX audit_events_user ON audit_events(user);\n"
    "CREATE INDEX audit_events_client ON audit_events(client);\n"
    "CREATE INDEX audit_events_system ON audit_events(system);\n"
    "CREATE INDEX audit_events_outcome_reason ON audit_events(outcome, reason);\n"
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events\n"
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;\n"
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events\n"
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;\n"
    "CREATE TABLE exporter_cursors(exporter_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,"
    " updated_at TEXT NOT NULL);\n";

/* Version 2. Revoked token ids (RFC 7009), kept until the token would have
 * expired anyway; loaded into memory at start. */
static const char migration_2[] =
    "CREATE TABLE revoked_tokens(jti TEXT PRIMARY KEY, exp INTEGER NOT NULL,"
    " revoked_at TEXT NOT NULL);\n"
    "CREATE INDEX revoked_tokens_exp ON revoked_tokens(exp);\n";

/* Version 3. Log searches: an attribute plus a time window, ordered by seq. */
static const char migration_3[] =
    "CREATE INDEX audit_events_user_time ON audit_events(user, time);\n"
    "CREATE INDEX audit_events_client_time ON audit_events(client, time);\n"
    "CREATE INDEX audit_events_system_time ON audit_events(system, time);\n";

/* Version 4. Assertion and client-assertion jtis already used (replay protection
 * that survives a restart), written in the same transaction as the request's event. */
static const char migration_4[] =
    "CREATE TABLE seen_jtis(key TEXT PRIMARY KEY, exp INTEGER NOT NULL);\n"
    "CREATE INDEX seen_jtis_exp ON seen_jtis(exp);\n";

/* Version 5. The single-column user/client/system indexes are prefixes of the
 * (attribute, time) ones of version 3: every event paid for both. */
static const char migration_5[] = "DROP INDEX audit_events_user;\n"
                                  "DROP INDEX audit_events_client;\n"
                                  "DROP INDEX audit_events_system;\n";

/* Version 6. Events an exporter's sink refused for good (a 4xx on that event alone):
 * parked here, counted and shown, so one poison event never blocks the rest. */
static const char migration_6[] =
    "CREATE TABLE exporter_dead_letters(exporter_id TEXT NOT NULL, seq INTEGER NOT NULL,"
    " event_id TEXT NOT NULL, error TEXT NOT NULL, time TEXT NOT NULL,"
    " PRIMARY KEY(exporter_id, seq));\n";

static const char *const migrations[] = {
    migration_1,
    migration_2,
    migration_3,
    migration_4,
    migration_5,
    migration_6,
};

#define MIGRATION_COUNT ((int)(sizeof(migrations) / sizeof(migrations[0])))

int migrations_latest(void)
{
    return MIGRATION_COUNT;
}

/* Runs one statement that returns at most one integer; *ret is 0 for no row or NULL. */
static int query_int(sqlite3 *db, const char *sql, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    int64_t v = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return rc;
    *ret = v;
    return SQLITE_OK;
}

static int record_version(sqlite3 *db, int version)
{
    sqlite3_stmt *st = NULL;
    char now[TIME_STR_LEN];
    time_format_us(time_now_us(), now);
    int rc = sqlite3_prepare_v2(
        db, "INSERT INTO schema_migrations(version, applied_at) VALUES(?1, ?2)", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_bind_int(st, 1, version);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 2, now, -1, SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static int fail(sqlite3 *db, int rc, struct err_detail *d, const char *what)
{
    return err_set(d, store_sqlite_err(rc), "%s: %s", what, sqlite3_errmsg(db));
}

int migrations_apply(sqlite3 *db, int *ret_version, struct err_detail *d)
{
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return fail(db, rc, d, "cannot start the schema transaction");

    int err = 0;
    rc = sqlite3_exec(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations("
                      "version INTEGER PRIMARY KEY, applied_at TEXT)",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = fail(db, rc, d, "cannot create schema_migrations");
        goto rollback;
    }
    int64_t have = 0;
    rc = query_int(db, "SELECT max(version) FROM schema_migrations", &have);
    if (rc != SQLITE_OK) {
        err = fail(db, rc, d, "cannot read the schema version");
        goto rollback;
    }
    if (have > MIGRATION_COUNT) {
        err = err_set(d, ERR_CORRUPT, "schema version %lld is newer than this mcpauth (%d)",
                      (long long)have, MIGRATION_COUNT);
        goto rollback;
    }
    if (have < 0) {
        err = err_set(d, ERR_CORRUPT, "schema version %lld is invalid", (long long)have);
        goto rollback;
    }
    for (int v = (int)have + 1; v <= MIGRATION_COUNT; v++) {
        rc = sqlite3_exec(db, migrations[v - 1], NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = record_version(db, v);
        if (rc != SQLITE_OK) {
            char what[64];
            snprintf(what, sizeof(what), "migration %d failed", v);
            err = fail(db, rc, d, what);
            goto rollback;
        }
    }
    rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        err = fail(db, rc, d, "cannot commit the schema");
        goto rollback;
    }
    *ret_version = MIGRATION_COUNT;
    return 0;

rollback:
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}
