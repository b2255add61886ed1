/* store/sqlite_priv.h — what the SQLite store's files share; not a public header. */
#pragma once
#include <sqlite3.h>

#include "store/migrations.h"
#include "store/store.h"

/* The connection's mutex (recursive) and handle; hold the mutex while using the handle. */
void store_lock_(struct store *s);
void store_unlock_(struct store *s);
sqlite3 *store_db(struct store *s);

#define lock(s) store_lock_(s)
#define unlock(s) store_unlock_(s)
