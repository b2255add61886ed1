/* store/migrations.h — private to store/: the SQLite schema as an ordered list
 * of migrations, and the one mapping from SQLite result codes to ERR_* that
 * both sqlite.c and migrations.c use. Migration N brings a database from
 * schema version N-1 to N; a version, once released, is never edited, only
 * followed by a new one. Not thread-safe: the caller owns the connection. */
#pragma once
#include <sqlite3.h>

#include "core/err.h"

/* The newest schema version this binary knows (the number of migrations). */
int migrations_latest(void);

/* Applies every pending migration to `db` inside one BEGIN IMMEDIATE
 * transaction, recording each in schema_migrations. Returns 0 and the schema
 * version now in force in *ret_version; ERR_CORRUPT if the database is newer
 * than this binary ("schema version N is newer than this mcpauth (M)") or is
 * not an SQLite database; ERR_IO or ERR_INTERNAL otherwise, the reason in d.
 * On failure nothing is applied. */
int migrations_apply(sqlite3 *db, int *ret_version, struct err_detail *d);

/* An SQLite (extended) result code as an ERR_*: busy, locked, I/O, full,
 * read-only and cannot-open are ERR_IO; corrupt and not-a-database
 * ERR_CORRUPT; out of memory ERR_NOMEM; everything else ERR_INTERNAL.
 * Constraint violations are the caller's to interpret (ERR_INTERNAL here). */
int store_sqlite_err(int rc);
