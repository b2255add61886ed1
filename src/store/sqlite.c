/* store/sqlite.c — the SQLite engine behind store.h: one connection per store,
 * opened without SQLite's own mutex (SQLITE_OPEN_NOMUTEX) because every use of
 * the connection, its cached statements and its error message happens under
 * the store's recursive mutex. store_begin() keeps that mutex until
 * store_commit()/store_rollback(), so a transaction belongs to one thread and
 * the calls it makes in between nest inside it.
 *
 * Statements are prepared on first use and cached for the life of the
 * connection; each call resets its statement and clears its bindings before it
 * releases the mutex, so no statement stays active between calls (an active
 * statement would pin the WAL and make COMMIT fail).
 *
 * Durability: WAL with synchronous=FULL by default, so the WAL is fsynced at
 * every commit; store_set_sync(STORE_SYNC_PROCESS) selects NORMAL, where a
 * commit is in the WAL when it returns (safe against a crash of the process,
 * not against power loss). The audit writer's group commit pays one commit per
 * batch either way. */
#include "store/store.h"
#include "core/timeutil.h"
#include "store/sqlite_priv.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 5000

/* Table of each policy kind, indexed by enum store_kind. */
static const char *const kind_tables[STORE_KIND_COUNT] = {
    [STORE_SETTINGS] = "settings",   [STORE_SYSTEMS] = "systems",
    [STORE_CLIENTS] = "clients",     [STORE_ACCESS_POLICIES] = "access_policies",
    [STORE_GRANTS] = "grants",       [STORE_TRUSTED_ISSUERS] = "trusted_issuers",
    [STORE_EXPORTERS] = "exporters",
};

enum stmt_id {
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_KEY_INSERT,
    ST_KEY_STATUS,
    ST_KEY_LIST,
    ST_EV_LAST,
    ST_EV_INSERT,
    ST_EV_SCAN,
    ST_EV_COUNT,
    ST_CUR_GET,
    ST_CUR_SET,
    ST_CUR_DEL,
    ST_DL_DEL,
    ST_DL_ADD,
    ST_DL_COUNT,
    ST_DL_LIST,
    ST_REV_ADD,
    ST_REV_SCAN,
    ST_REV_PURGE,
    ST_JTI_ADD,
    ST_JTI_SCAN,
    ST_JTI_PURGE,
    ST_FIXED_COUNT_
};

static const char *const fixed_sql[ST_FIXED_COUNT_] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_KEY_INSERT] = "INSERT INTO signing_keys(kid, alg, status, created, updated, public_jwk,"
                      " sealed) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_KEY_STATUS] = "UPDATE signing_keys SET status = ?2, updated = ?3 WHERE kid = ?1",
    [ST_KEY_LIST] = "SELECT kid, alg, status, created, updated, public_jwk, sealed"
                    " FROM signing_keys ORDER BY created, kid",
    [ST_EV_LAST] = "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
    /* The seq check and the insert are one statement, so they cannot be split by
     * another connection's write even outside a transaction. */
    /* A plain INSERT: an INSERT ... SELECT needs a statement journal, a temp file that
     * cost ~20 writes per event. The "seq = last + 1" check is a separate read under the
     * same lock, race-free inside the write transaction callers hold. */
    [ST_EV_INSERT] = "INSERT INTO audit_events(seq, id, time, type, outcome, severity, reason,"
                     " user, client, system, doc, hash)"
                     " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_EV_SCAN] = "SELECT seq, doc FROM audit_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [ST_EV_COUNT] = "SELECT count(*) FROM audit_events",
    [ST_CUR_GET] = "SELECT seq FROM exporter_cursors WHERE exporter_id = ?1",
    [ST_CUR_DEL] = "DELETE FROM exporter_cursors WHERE exporter_id = ?1",
    [ST_DL_DEL] = "DELETE FROM exporter_dead_letters WHERE exporter_id = ?1",
    [ST_DL_ADD] = "INSERT OR IGNORE INTO exporter_dead_letters(exporter_id, seq, event_id, error,"
                  " time) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_DL_COUNT] = "SELECT count(*) FROM exporter_dead_letters WHERE exporter_id = ?1",
    [ST_DL_LIST] = "SELECT seq, event_id, error, time FROM exporter_dead_letters"
                   " WHERE exporter_id = ?1 ORDER BY seq DESC LIMIT ?2",
    [ST_CUR_SET] = "INSERT INTO exporter_cursors(exporter_id, seq, updated_at) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(exporter_id) DO UPDATE SET seq = excluded.seq,"
                   " updated_at = excluded.updated_at",
    [ST_REV_ADD] = "INSERT INTO revoked_tokens(jti, exp, revoked_at) VALUES(?1, ?2, ?3)"
                   " ON CONFLICT(jti) DO NOTHING",
    [ST_REV_SCAN] = "SELECT jti, exp FROM revoked_tokens WHERE exp > ?1",
    [ST_REV_PURGE] = "DELETE FROM revoked_tokens WHERE exp <= ?1",
    [ST_JTI_ADD] = "INSERT INTO seen_jtis(key, exp) VALUES(?1, ?2) ON CONFLICT(key) DO NOTHING",
    [ST_JTI_SCAN] = "SELECT key, exp FROM seen_jtis WHERE exp > ?1",
    [ST_JTI_PURGE] = "DELETE FROM seen_jtis WHERE exp <= ?1",
};

/* Object statements follow the fixed ones, OBJ_OP_COUNT_ per kind; their SQL is
 * the template with the kind's table name put in (never user input). */
enum obj_op { OBJ_GET, OBJ_LIST, OBJ_PUT, OBJ_DELETE, OBJ_OP_COUNT_ };

static const char *const obj_sql[OBJ_OP_COUNT_] = {
    [OBJ_GET] = "SELECT doc FROM %s WHERE id = ?1",
    [OBJ_LIST] = "SELECT doc FROM %s ORDER BY id",
    [OBJ_PUT] = "INSERT INTO %s(id, doc, updated_at) VALUES(?1, ?2, ?3)"
                " ON CONFLICT(id) DO UPDATE SET doc = excluded.doc,"
                " updated_at = excluded.updated_at",
    [OBJ_DELETE] = "DELETE FROM %s WHERE id = ?1",
};

#define ST_COUNT_ (ST_FIXED_COUNT_ + STORE_KIND_COUNT * OBJ_OP_COUNT_)

struct store {
    sqlite3 *db;
    pthread_mutex_t mu; /* recursive; guards db and stmts */
    int version;
    sqlite3_stmt *stmts[ST_COUNT_];
};

int store_sqlite_err(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PROTOCOL:
        return ERR_IO;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return ERR_CORRUPT;
    case SQLITE_NOMEM:
        return ERR_NOMEM;
    default:
        return ERR_INTERNAL;
    }
}

void store_lock_(struct store *s)
{
    pthread_mutex_lock(&s->mu);
}

void store_unlock_(struct store *s)
{
    pthread_mutex_unlock(&s->mu);
}

sqlite3 *store_db(struct store *s)
{
    return s->db;
}

static int obj_stmt_id(enum store_kind kind, enum obj_op op)
{
    return ST_FIXED_COUNT_ + (int)kind * OBJ_OP_COUNT_ + (int)op;
}

/* The cached statement `id`, prepared on first use. Caller holds the mutex. */
static int stmt_get(struct store *s, int id, sqlite3_stmt **ret)
{
    if (!s->stmts[id]) {
        char buf[256];
        const char *sql = NULL;
        if (id < ST_FIXED_COUNT_) {
            sql = fixed_sql[id];
        } else {
            int k = (id - ST_FIXED_COUNT_) / OBJ_OP_COUNT_;
            int op = (id - ST_FIXED_COUNT_) % OBJ_OP_COUNT_;
            snprintf(buf, sizeof(buf), obj_sql[op], kind_tables[k]);
            sql = buf;
        }
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmts[id], NULL);
        if (rc != SQLITE_OK) {
            s->stmts[id] = NULL;
            return store_sqlite_err(rc);
        }
    }
    /* A statement still stepping here means a scan callback re-entered the store
     * with the same statement: a programming error. */
    assert(!sqlite3_stmt_busy(s->stmts[id]));
    *ret = s->stmts[id];
    return 0;
}

/* Returns the statement to its cache: reset and bindings cleared. NULL-safe. */
static void stmt_done(sqlite3_stmt *st)
{
    if (!st)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Binds a borrowed string (NULL binds SQL NULL); it must outlive stmt_done(). */
static int bind_str(sqlite3_stmt *st, int i, const char *v)
{
    int rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
}

static int bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
    int rc = sqlite3_bind_int64(st, i, v);
    return rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
}

/* Steps a statement that returns no row: 0, or the mapped error. A UNIQUE or
 * PRIMARY KEY violation is ERR_EXISTS. */
static int step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return ERR_EXISTS;
    return store_sqlite_err(rc);
}

/* A new copy of a TEXT column; SQL NULL where NOT NULL is promised is corruption. */
static int column_dup(struct store *s, sqlite3_stmt *st, int col, char **ret)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    if (!v)
        return sqlite3_errcode(s->db) == SQLITE_NOMEM ? ERR_NOMEM : ERR_CORRUPT;
    char *c = strdup((const char *)v);
    if (!c)
        return ERR_NOMEM;
    *ret = c;
    return 0;
}

static bool valid_status(const char *status)
{
    return status && (strcmp(status, "active") == 0 || strcmp(status, "published") == 0 ||
                      strcmp(status, "retired") == 0);
}

/* ---- open / close ---- */

/* mkdir -p of the directory part of `path`, each new directory 0700. */
static int make_parents(const char *path, struct err_detail *d)
{
    char *dir = strdup(path);
    if (!dir)
        return err_set(d, ERR_NOMEM, "out of memory");
    int err = 0;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        goto out;
    *slash = '\0';
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
            char msg[128];
            err = err_set(d, ERR_IO, "cannot create directory %s: %s", dir,
                          strerror_r(errno, msg, sizeof(msg)));
            goto out;
        }
        if (c == '\0')
            break;
        *p = c;
    }
out:
    free(dir);
    return err;
}

/* Creates the database file 0600 if it does not exist, so that SQLite (which
 * gives its -wal and -shm files the database's mode) never creates it with the
 * process umask. An existing file keeps its mode. */
/* Creates a new database file with mode 0600 (SQLite then gives -wal and -shm the same
 * mode). An existing file is never opened here: closing any descriptor of a file drops
 * every POSIX lock this process holds on it, including those of SQLite connections
 * already open, and a process without its locks can have its WAL deleted under it by
 * another process that believes itself the last user. */
static int create_file(const char *path, struct err_detail *d)
{
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return 0;
    if (fd < 0) {
        char msg[128];
        return err_set(d, ERR_IO, "cannot open %s: %s", path, strerror_r(errno, msg, sizeof(msg)));
    }
    close(fd);
    return 0;
}

static int setup_connection(struct store *s, const char *path, bool memory, struct err_detail *d)
{
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);

    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err =
            err_set(d, store_sqlite_err(rc), "cannot open %s: %s", path, sqlite3_errmsg(s->db));
        sqlite3_finalize(st);
        return err;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool wal = mode && strcasecmp(mode, "wal") == 0;
    sqlite3_finalize(st);
    if (!wal && !memory)
        return err_set(d, ERR_IO, "cannot open %s: WAL journal mode not available", path);

    rc = sqlite3_exec(s->db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA temp_store=MEMORY",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return err_set(d, store_sqlite_err(rc), "cannot open %s: %s", path, sqlite3_errmsg(s->db));
    return 0;
}

int store_open(const char *url, struct store **ret, struct err_detail *d)
{
    if (!url)
        return err_set(d, ERR_INVAL, "no database given");
    const char *path = url;
    if (strncmp(url, "sqlite:", 7) == 0)
        path = url + 7;
    else if (strncmp(url, "postgres:", 9) == 0 || strncmp(url, "postgresql:", 11) == 0)
        return err_set(d, ERR_UNSUPPORTED, "PostgreSQL store is not available in this build");
    if (!*path)
        return err_set(d, ERR_INVAL, "empty database path in \"%s\"", url);

    bool memory = strcmp(path, ":memory:") == 0;
    int err = 0;
    if (!memory) {
        if ((err = make_parents(path, d)) < 0)
            return err;
        if ((err = create_file(path, d)) < 0)
            return err;
    }

    struct store *s = calloc(1, sizeof(*s));
    if (!s)
        return err_set(d, ERR_NOMEM, "out of memory");
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&s->mu, &attr);
    pthread_mutexattr_destroy(&attr);

    int rc = sqlite3_open_v2(
        path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err =
            err_set(d, store_sqlite_err(rc) == ERR_NOMEM ? ERR_NOMEM : ERR_IO, "cannot open %s: %s",
                    path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if ((err = setup_connection(s, path, memory, d)) < 0)
        goto fail;
    if ((err = migrations_apply(s->db, &s->version, d)) < 0)
        goto fail;
    *ret = s;
    return 0;

fail:
    store_close(s);
    return err;
}

struct store *store_close(struct store *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < ST_COUNT_; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close(s->db); /* NULL-safe; rolls back a transaction left open */
    pthread_mutex_destroy(&s->mu);
    free(s);
    return NULL;
}

int store_schema_version(struct store *s)
{
    return s->version;
}

/* ---- transactions ---- */

/* Runs one of BEGIN / COMMIT / ROLLBACK. Caller holds the mutex. */
static int run_fixed(struct store *s, int id)
{
    sqlite3_stmt *st = NULL;
    int err = stmt_get(s, id, &st);
    if (err == 0)
        err = step_done(st);
    stmt_done(st);
    return err;
}

int store_begin(struct store *s)
{
    lock(s);
    if (run_fixed(s, ST_BEGIN) < 0) {
        unlock(s);
        return ERR_IO;
    }
    return 0; /* the mutex stays held until commit or rollback */
}

int store_commit(struct store *s)
{
    int err = 0;
    if (run_fixed(s, ST_COMMIT) < 0) {
        /* A failed COMMIT may leave the transaction open (busy) or already
         * rolled back (I/O error); either way it must not survive. */
        if (!sqlite3_get_autocommit(s->db))
            run_fixed(s, ST_ROLLBACK);
        err = ERR_IO;
    }
    unlock(s);
    return err;
}

void store_rollback(struct store *s)
{
    /* SQLite may already have rolled back after an I/O error; nothing to undo then. */
    if (!sqlite3_get_autocommit(s->db))
        run_fixed(s, ST_ROLLBACK);
    unlock(s);
}

int store_ping(struct store *s)
{
    lock(s);
    int err = 0;
    /* Inside our own transaction the write lock is already ours. */
    if (sqlite3_get_autocommit(s->db)) {
        if (run_fixed(s, ST_BEGIN) < 0)
            err = ERR_IO;
        else
            run_fixed(s, ST_ROLLBACK);
    }
    unlock(s);
    return err;
}

/* ---- policy objects ---- */

/* Parses a stored document; anything but a JSON object is corruption. */
static int parse_doc(sqlite3_stmt *st, int col, json_t **ret)
{
    const char *text = (const char *)sqlite3_column_text(st, col);
    if (!text)
        return ERR_CORRUPT;
    json_t *doc = json_loads(text, 0, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return ERR_CORRUPT;
    }
    *ret = doc;
    return 0;
}

int store_object_get(struct store *s, enum store_kind kind, const char *id, json_t **ret)
{
    if ((unsigned)kind >= STORE_KIND_COUNT || !id)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, obj_stmt_id(kind, OBJ_GET), &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        err = ERR_NOTFOUND;
    else if (rc != SQLITE_ROW)
        err = store_sqlite_err(rc);
    else
        err = parse_doc(st, 0, ret);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_object_list(struct store *s, enum store_kind kind, json_t **ret)
{
    if ((unsigned)kind >= STORE_KIND_COUNT)
        return ERR_INVAL;
    json_t *arr = json_array();
    if (!arr)
        return ERR_NOMEM;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, obj_stmt_id(kind, OBJ_LIST), &st);
    if (err < 0)
        goto out;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        json_t *doc = NULL;
        if ((err = parse_doc(st, 0, &doc)) < 0)
            goto out;
        if (json_array_append_new(arr, doc) < 0) {
            err = ERR_NOMEM;
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    if (err < 0) {
        json_decref(arr);
        return err;
    }
    *ret = arr;
    return 0;
}

int store_object_put(struct store *s, enum store_kind kind, const char *id, const json_t *doc)
{
    if ((unsigned)kind >= STORE_KIND_COUNT || !id || !json_is_object(doc))
        return ERR_INVAL;
    char *text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        return ERR_NOMEM;
    char now[TIME_STR_LEN];
    time_format_us(time_now_us(), now);

    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, obj_stmt_id(kind, OBJ_PUT), &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0 || (err = bind_str(st, 2, text)) < 0 ||
        (err = bind_str(st, 3, now)) < 0)
        goto out;
    err = step_done(st);
out:
    stmt_done(st);
    unlock(s);
    free(text);
    return err;
}

int store_object_delete(struct store *s, enum store_kind kind, const char *id)
{
    if ((unsigned)kind >= STORE_KIND_COUNT || !id)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, obj_stmt_id(kind, OBJ_DELETE), &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0)
        goto out;
    if ((err = step_done(st)) < 0)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        err = ERR_NOTFOUND;
out:
    stmt_done(st);
    unlock(s);
    return err;
}

/* ---- signing keys ---- */

int store_key_insert(struct store *s, const struct store_key *k)
{
    if (!k || !k->kid || !k->alg || !valid_status(k->status) || !k->public_jwk || !k->sealed)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_KEY_INSERT, &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, k->kid)) < 0 || (err = bind_str(st, 2, k->alg)) < 0 ||
        (err = bind_str(st, 3, k->status)) < 0 || (err = bind_i64(st, 4, k->created)) < 0 ||
        (err = bind_i64(st, 5, k->updated)) < 0 || (err = bind_str(st, 6, k->public_jwk)) < 0 ||
        (err = bind_str(st, 7, k->sealed)) < 0)
        goto out;
    err = step_done(st);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_key_set_status(struct store *s, const char *kid, const char *status, int64_t updated)
{
    if (!kid || !valid_status(status))
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_KEY_STATUS, &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, kid)) < 0 || (err = bind_str(st, 2, status)) < 0 ||
        (err = bind_i64(st, 3, updated)) < 0)
        goto out;
    if ((err = step_done(st)) < 0)
        goto out;
    if (sqlite3_changes(s->db) == 0)
        err = ERR_NOTFOUND;
out:
    stmt_done(st);
    unlock(s);
    return err;
}

static void key_clear(struct store_key *k)
{
    free(k->kid);
    free(k->alg);
    free(k->status);
    free(k->public_jwk);
    if (k->sealed) {
        /* Sealed under the KEK, but no reason to leave it lying in the heap. */
        explicit_bzero(k->sealed, strlen(k->sealed));
        free(k->sealed);
    }
}

void store_keys_free(struct store_key *keys, size_t n)
{
    if (!keys)
        return;
    for (size_t i = 0; i < n; i++)
        key_clear(&keys[i]);
    free(keys);
}

int store_key_list(struct store *s, struct store_key **ret, size_t *ret_n)
{
    struct store_key *keys = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_KEY_LIST, &st);
    if (err < 0)
        goto out;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            struct store_key *nk = realloc(keys, ncap * sizeof(*keys));
            if (!nk) {
                err = ERR_NOMEM;
                goto out;
            }
            keys = nk;
            cap = ncap;
        }
        struct store_key *k = &keys[n];
        memset(k, 0, sizeof(*k));
        n++; /* counted before filling, so a partial key is freed with the rest */
        if ((err = column_dup(s, st, 0, &k->kid)) < 0 ||
            (err = column_dup(s, st, 1, &k->alg)) < 0 ||
            (err = column_dup(s, st, 2, &k->status)) < 0 ||
            (err = column_dup(s, st, 5, &k->public_jwk)) < 0 ||
            (err = column_dup(s, st, 6, &k->sealed)) < 0)
            goto out;
        k->created = sqlite3_column_int64(st, 3);
        k->updated = sqlite3_column_int64(st, 4);
    }
    if (rc != SQLITE_DONE)
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    if (err < 0) {
        store_keys_free(keys, n);
        return err;
    }
    *ret = keys;
    *ret_n = n;
    return 0;
}

/* ---- audit events ---- */

int store_events_last(struct store *s, int64_t *ret_seq, char ret_hash[64])
{
    sqlite3_stmt *st = NULL;
    int64_t seq = 0;
    const char *hash = "";
    size_t len = 0;
    lock(s);
    int err = stmt_get(s, ST_EV_LAST, &st);
    if (err < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        seq = sqlite3_column_int64(st, 0);
        hash = (const char *)sqlite3_column_text(st, 1);
        if (!hash) {
            err = sqlite3_errcode(s->db) == SQLITE_NOMEM ? ERR_NOMEM : ERR_CORRUPT;
            goto out;
        }
        len = strlen(hash);
        if (len >= 64) {
            err = ERR_CORRUPT;
            goto out;
        }
    } else if (rc != SQLITE_DONE) {
        err = store_sqlite_err(rc);
        goto out;
    }
    *ret_seq = seq;
    memcpy(ret_hash, hash, len + 1);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_events_insert(struct store *s, const struct store_event *ev)
{
    if (!ev || ev->seq < 1 || !ev->id || !ev->time || !ev->type || !ev->doc || !ev->hash)
        return ERR_INVAL;
    lock(s);
    int64_t last = 0;
    char last_hash[64];
    int err = store_events_last(s, &last, last_hash);
    if (err == 0 && ev->seq != last + 1)
        err = ERR_CONFLICT; /* seq was not last + 1 */
    if (err == 0)
        err = store_events_insert_next(s, ev);
    unlock(s);
    return err;
}

int store_events_insert_next(struct store *s, const struct store_event *ev)
{
    if (!ev || ev->seq < 1 || !ev->id || !ev->time || !ev->type || !ev->doc || !ev->hash)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_EV_INSERT, &st);
    if (err < 0)
        goto out;
    if ((err = bind_i64(st, 1, ev->seq)) < 0 || (err = bind_str(st, 2, ev->id)) < 0 ||
        (err = bind_str(st, 3, ev->time)) < 0 || (err = bind_str(st, 4, ev->type)) < 0 ||
        (err = bind_str(st, 5, ev->outcome)) < 0 || (err = bind_str(st, 6, ev->severity)) < 0 ||
        (err = bind_str(st, 7, ev->reason)) < 0 || (err = bind_str(st, 8, ev->user)) < 0 ||
        (err = bind_str(st, 9, ev->client)) < 0 || (err = bind_str(st, 10, ev->system)) < 0 ||
        (err = bind_str(st, 11, ev->doc)) < 0 || (err = bind_str(st, 12, ev->hash)) < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        err = 0;
    else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        err = ERR_CONFLICT; /* seq taken */
    else if (rc == SQLITE_CONSTRAINT_UNIQUE)
        err = ERR_EXISTS; /* event id already logged */
    else
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_events_scan(struct store *s, int64_t after_seq, size_t limit,
                      int (*fn)(const char *doc, int64_t seq, void *arg), void *arg)
{
    if (!fn)
        return ERR_INVAL;
    if (limit == 0)
        return 0;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_EV_SCAN, &st);
    if (err < 0)
        goto out;
    if ((err = bind_i64(st, 1, after_seq)) < 0 ||
        (err = bind_i64(st, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit)) < 0)
        goto out;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t seq = sqlite3_column_int64(st, 0);
        const char *doc = (const char *)sqlite3_column_text(st, 1);
        if (!doc) {
            err = sqlite3_errcode(s->db) == SQLITE_NOMEM ? ERR_NOMEM : ERR_CORRUPT;
            goto out;
        }
        int r = fn(doc, seq, arg);
        if (r != 0) {
            err = r;
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_events_count(struct store *s, int64_t *ret)
{
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_EV_COUNT, &st);
    if (err < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

/* ---- exporter cursors ---- */

int store_cursor_get(struct store *s, const char *id, int64_t *ret)
{
    if (!id)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_CUR_GET, &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *ret = sqlite3_column_int64(st, 0);
    else if (rc == SQLITE_DONE)
        err = ERR_NOTFOUND;
    else
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

/* runs one fixed statement binding ?1 = id and, when n_ > 1, ?2..?5 */
static int exec_id(struct store *s, enum stmt_id which, const char *id, int64_t seq,
                   const char *a, const char *b, const char *c)
{
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, which, &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0)
        goto out;
    if (which == ST_DL_ADD &&
        ((err = bind_i64(st, 2, seq)) < 0 || (err = bind_str(st, 3, a)) < 0 ||
         (err = bind_str(st, 4, b)) < 0 || (err = bind_str(st, 5, c)) < 0))
        goto out;
    err = step_done(st);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_cursor_delete(struct store *s, const char *id)
{
    if (!id)
        return ERR_INVAL;
    int r = exec_id(s, ST_CUR_DEL, id, 0, NULL, NULL, NULL);
    return r < 0 ? r : exec_id(s, ST_DL_DEL, id, 0, NULL, NULL, NULL);
}

int store_dead_letter_add(struct store *s, const char *id, int64_t seq, const char *event_id,
                          const char *error)
{
    if (!id || !event_id || !error)
        return ERR_INVAL;
    char now[TIME_STR_LEN];
    time_format_us(time_now_us(), now);
    return exec_id(s, ST_DL_ADD, id, seq, event_id, error, now);
}

int store_dead_letters(struct store *s, const char *id, size_t limit, int64_t *ret_count,
                       int (*fn)(int64_t seq, const char *event_id, const char *error,
                                 const char *time, void *arg),
                       void *arg)
{
    if (!id)
        return ERR_INVAL;
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_DL_COUNT, &st);
    if (err < 0 || (err = bind_str(st, 1, id)) < 0)
        goto out;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        err = store_sqlite_err(rc);
        goto out;
    }
    *ret_count = sqlite3_column_int64(st, 0);
    stmt_done(st);
    st = NULL;
    if (!fn || !limit)
        goto out;
    if ((err = stmt_get(s, ST_DL_LIST, &st)) < 0 || (err = bind_str(st, 1, id)) < 0 ||
        (err = bind_i64(st, 2, (int64_t)limit)) < 0)
        goto out;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int stop = fn(sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1),
                      (const char *)sqlite3_column_text(st, 2),
                      (const char *)sqlite3_column_text(st, 3), arg);
        if (stop) {
            err = stop;
            goto out;
        }
    }
    if (rc != SQLITE_DONE)
        err = store_sqlite_err(rc);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

int store_cursor_set(struct store *s, const char *id, int64_t seq)
{
    if (!id || seq < 0)
        return ERR_INVAL;
    char now[TIME_STR_LEN];
    time_format_us(time_now_us(), now);
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, ST_CUR_SET, &st);
    if (err < 0)
        goto out;
    if ((err = bind_str(st, 1, id)) < 0 || (err = bind_i64(st, 2, seq)) < 0 ||
        (err = bind_str(st, 3, now)) < 0)
        goto out;
    err = step_done(st);
out:
    stmt_done(st);
    unlock(s);
    return err;
}

static int expiring_add(struct store *s, int st_id, const char *key, int64_t exp, int with_time)
{
    if (!key)
        return ERR_INVAL;
    char now[TIME_STR_LEN];
    time_format_us(time_now_us(), now);
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, st_id, &st);
    if (err == 0 && (err = bind_str(st, 1, key)) == 0 && (err = bind_i64(st, 2, exp)) == 0 &&
        (!with_time || (err = bind_str(st, 3, now)) == 0))
        err = step_done(st);
    stmt_done(st);
    unlock(s);
    return err;
}

static int expiring_scan(struct store *s, int purge_id, int scan_id, int64_t now,
                         int (*fn)(const char *key, int64_t exp, void *arg), void *arg)
{
    sqlite3_stmt *st = NULL;
    lock(s);
    int err = stmt_get(s, purge_id, &st);
    if (err == 0 && (err = bind_i64(st, 1, now)) == 0)
        err = step_done(st);
    stmt_done(st);
    st = NULL;
    if (err == 0)
        err = stmt_get(s, scan_id, &st);
    if (err == 0)
        err = bind_i64(st, 1, now);
    while (err == 0) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            break;
        if (rc != SQLITE_ROW) {
            err = store_sqlite_err(rc);
            break;
        }
        err = fn((const char *)sqlite3_column_text(st, 0), sqlite3_column_int64(st, 1), arg);
    }
    stmt_done(st);
    unlock(s);
    return err;
}

int store_revoked_add(struct store *s, const char *jti, int64_t exp)
{
    return expiring_add(s, ST_REV_ADD, jti, exp, 1);
}

int store_revoked_scan(struct store *s, int64_t now,
                       int (*fn)(const char *jti, int64_t exp, void *arg), void *arg)
{
    return expiring_scan(s, ST_REV_PURGE, ST_REV_SCAN, now, fn, arg);
}

int store_jti_add(struct store *s, const char *key, int64_t exp)
{
    return expiring_add(s, ST_JTI_ADD, key, exp, 0);
}

int store_jti_scan(struct store *s, int64_t now,
                   int (*fn)(const char *key, int64_t exp, void *arg), void *arg)
{
    return expiring_scan(s, ST_JTI_PURGE, ST_JTI_SCAN, now, fn, arg);
}

int store_set_sync(struct store *s, enum store_sync mode)
{
    lock(s);
    int rc = sqlite3_exec(s->db,
                          mode == STORE_SYNC_PROCESS ? "PRAGMA synchronous=NORMAL"
                                                     : "PRAGMA synchronous=FULL",
                          NULL, NULL, NULL);
    unlock(s);
    return rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
}

int store_set_manual_checkpoints(struct store *s, int64_t limit_bytes)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=0; PRAGMA journal_size_limit=%lld",
             (long long)limit_bytes);
    lock(s);
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    unlock(s);
    return rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
}

int store_sync_db(struct store *s)
{
    sqlite3_file *f = NULL;
    lock(s);
    int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f);
    if (rc == SQLITE_OK && f && f->pMethods)
        rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
    unlock(s);
    return rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
}

int store_checkpoint(struct store *s, int restart, int *ret_frames)
{
    int frames = 0;
    lock(s);
    int rc = sqlite3_wal_checkpoint_v2(
        s->db, NULL, restart ? SQLITE_CHECKPOINT_RESTART : SQLITE_CHECKPOINT_PASSIVE, &frames,
        NULL);
    unlock(s);
    if (ret_frames)
        *ret_frames = frames;
    return rc == SQLITE_OK || rc == SQLITE_BUSY ? 0 : store_sqlite_err(rc);
}
