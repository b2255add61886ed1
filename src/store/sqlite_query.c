/* store/sqlite_query.c — audit-log searches on SQLite: a struct store_query
 * becomes one SELECT whose every value is a bound parameter. The attribute
 * table below is the only place that knows where an attribute lives (a column,
 * a JSON path into the stored document, or the scopes array). */
#include "store/sqlite_priv.h"
#include "core/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Indexed columns, else json_extract over the document. */
static const char *const attr_sql[ATTR_COUNT_] = {
    [ATTR_ID] = "id",
    [ATTR_SEQ] = "seq",
    [ATTR_TYPE] = "type",
    [ATTR_OUTCOME] = "outcome",
    [ATTR_SEVERITY] = "severity",
    [ATTR_REASON] = "reason",
    [ATTR_USER] = "user",
    [ATTR_CLIENT] = "client",
    [ATTR_SYSTEM] = "system",
    [ATTR_AUDIENCE] = "json_extract(doc, '$.audience')",
    [ATTR_ACCESS_POLICY] = "json_extract(doc, '$.access_policy')",
    [ATTR_TOKEN_ID] = "json_extract(doc, '$.token.id')",
    [ATTR_TOKEN_KEY_ID] = "json_extract(doc, '$.token.key_id')",
    [ATTR_TOKEN_ALG] = "json_extract(doc, '$.token.alg')",
    [ATTR_REQUEST_CLIENT_IP] = "json_extract(doc, '$.request.client_ip')",
    [ATTR_REQUEST_GRANT_TYPE] = "json_extract(doc, '$.request.grant_type')",
    [ATTR_SCOPES_NAME] = "json_extract(value, '$.name')", /* inside EXISTS over json_each */
};

#define MAX_BINDS 600

struct bind {
    int is_num;
    double num;
    char *str; /* owned */
};

struct compiler {
    struct buf sql;
    struct bind binds[MAX_BINDS];
    int n;
};

static int add_str(struct compiler *c, char *owned)
{
    if (!owned)
        return ERR_NOMEM;
    if (c->n == MAX_BINDS) {
        free(owned);
        return ERR_TOOBIG;
    }
    c->binds[c->n++] = (struct bind){0, 0, owned};
    return 0;
}

/* LIKE pattern: % and _ and \ escaped, wrapped as asked. */
static char *like_pattern(const char *v, int lead, int trail)
{
    size_t n = strlen(v);
    char *p = malloc(2 * n + 3), *o = p;
    if (!p)
        return NULL;
    if (lead)
        *o++ = '%';
    for (; *v; v++) {
        if (*v == '%' || *v == '_' || *v == '\\')
            *o++ = '\\';
        *o++ = *v;
    }
    if (trail)
        *o++ = '%';
    *o = '\0';
    return p;
}

static int compile(struct compiler *c, const struct store_filter *f, int depth)
{
    if (!f || depth > 64)
        return ERR_INVAL;
    struct buf *b = &c->sql;
    int r;
    switch (f->op) {
    case OP_AND:
    case OP_OR:
        if ((r = buf_puts(b, "(")) < 0 || (r = compile(c, f->left, depth + 1)) < 0 ||
            (r = buf_puts(b, f->op == OP_AND ? " AND " : " OR ")) < 0 ||
            (r = compile(c, f->right, depth + 1)) < 0)
            return r;
        return buf_puts(b, ")");
    case OP_NOT:
        /* coalesce: NOT over a comparison with NULL would drop the row */
        if ((r = buf_puts(b, "NOT coalesce((")) < 0 || (r = compile(c, f->left, depth + 1)) < 0)
            return r;
        return buf_puts(b, "), 0)");
    default:
        break;
    }
    if ((unsigned)f->attr >= ATTR_COUNT_)
        return ERR_INVAL;
    const char *col = attr_sql[f->attr];
    int scopes = f->attr == ATTR_SCOPES_NAME;
    if (scopes && (r = buf_puts(b, "EXISTS (SELECT 1 FROM json_each(audit_events.doc, "
                                   "'$.scopes') WHERE ")) < 0)
        return r;
    if (f->op == OP_PR) {
        r = buf_printf(b, "%s IS NOT NULL", col);
    } else if (f->vtype == VAL_NULL) {
        if (f->op != OP_EQ && f->op != OP_NE)
            return ERR_INVAL;
        r = buf_printf(b, "%s IS %sNULL", col, f->op == OP_NE ? "NOT " : "");
    } else if (f->vtype == VAL_NUMBER) {
        static const char *const ops[] = {[OP_EQ] = "=", [OP_NE] = "IS NOT", [OP_GT] = ">",
                                          [OP_GE] = ">=", [OP_LT] = "<", [OP_LE] = "<="};
        if (f->op > OP_LE || f->op == OP_CO || f->op == OP_SW || f->op == OP_EW)
            return ERR_INVAL;
        if (c->n == MAX_BINDS)
            return ERR_TOOBIG;
        c->binds[c->n++] = (struct bind){1, f->num, NULL};
        r = buf_printf(b, "%s %s ?%d", col, ops[f->op], c->n);
    } else if (f->vtype == VAL_STRING) {
        switch (f->op) {
        case OP_EQ:
        case OP_NE:
        case OP_GT:
        case OP_GE:
        case OP_LT:
        case OP_LE: {
            static const char *const ops[] = {[OP_EQ] = "=", [OP_NE] = "IS NOT", [OP_GT] = ">",
                                              [OP_GE] = ">=", [OP_LT] = "<", [OP_LE] = "<="};
            if ((r = add_str(c, strdup(f->str))) < 0)
                return r;
            r = buf_printf(b, "%s %s ?%d", col, ops[f->op], c->n);
            break;
        }
        case OP_CO:
        case OP_SW:
        case OP_EW:
            if ((r = add_str(c, like_pattern(f->str, f->op != OP_SW, f->op != OP_EW))) < 0)
                return r;
            r = buf_printf(b, "%s LIKE ?%d ESCAPE '\\'", col, c->n);
            break;
        default:
            return ERR_INVAL;
        }
    } else {
        return ERR_INVAL;
    }
    if (r == 0 && scopes)
        r = buf_puts(b, ")");
    return r;
}

static int query_run(struct store *s, const struct store_query *q,
                     int (*fn)(const char *doc, int64_t seq, void *arg),
                     int (*row_fn)(const struct store_event *ev, void *arg), void *arg)
{
    if (!q || (!fn && !row_fn))
        return ERR_INVAL;
    struct compiler *c = calloc(1, sizeof(*c));
    if (!c)
        return ERR_NOMEM;
    buf_init(&c->sql, 64 * 1024);
    int r = buf_puts(&c->sql, row_fn ? "SELECT seq, doc, id, time, type, severity"
                                       " FROM audit_events WHERE 1"
                                     : "SELECT seq, doc FROM audit_events WHERE 1");
    if (r == 0 && q->filter) {
        r = buf_puts(&c->sql, " AND (");
        if (r == 0)
            r = compile(c, q->filter, 0);
        if (r == 0)
            r = buf_puts(&c->sql, ")");
    }
    for (size_t i = 0; r == 0 && i < q->n_keywords; i++) {
        r = add_str(c, like_pattern(q->keywords[i], 1, 1));
        if (r == 0)
            r = buf_printf(&c->sql, " AND doc LIKE ?%d ESCAPE '\\'", c->n);
    }
    if (r == 0 && q->since && (r = add_str(c, strdup(q->since))) == 0)
        r = buf_printf(&c->sql, " AND time >= ?%d", c->n);
    if (r == 0 && q->until && (r = add_str(c, strdup(q->until))) == 0)
        r = buf_printf(&c->sql, " AND time < ?%d", c->n);
    if (r == 0 && q->after_seq)
        r = buf_printf(&c->sql, " AND seq %s %lld", q->descending ? "<" : ">",
                       (long long)q->after_seq);
    if (r == 0)
        r = buf_printf(&c->sql, " ORDER BY seq %s LIMIT %zu", q->descending ? "DESC" : "ASC",
                       q->limit ? q->limit : 100);
    sqlite3_stmt *st = NULL;
    if (r == 0) {
        lock(s);
        int rc = sqlite3_prepare_v2(store_db(s), c->sql.data, -1, &st, NULL);
        if (rc != SQLITE_OK) {
            r = store_sqlite_err(rc);
            unlock(s);
        }
    }
    if (r == 0) {
        for (int i = 0; i < c->n && r == 0; i++) {
            int rc = c->binds[i].is_num
                         ? sqlite3_bind_double(st, i + 1, c->binds[i].num)
                         : sqlite3_bind_text(st, i + 1, c->binds[i].str, -1, SQLITE_STATIC);
            if (rc != SQLITE_OK)
                r = store_sqlite_err(rc);
        }
        int rc;
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *doc = (const char *)sqlite3_column_text(st, 1);
            if (!doc) {
                r = ERR_CORRUPT;
                break;
            }
            if (row_fn) {
                struct store_event ev = {
                    .seq = sqlite3_column_int64(st, 0),
                    .doc = doc,
                    .id = (const char *)sqlite3_column_text(st, 2),
                    .time = (const char *)sqlite3_column_text(st, 3),
                    .type = (const char *)sqlite3_column_text(st, 4),
                    .severity = (const char *)sqlite3_column_text(st, 5),
                };
                r = row_fn(&ev, arg);
            } else {
                r = fn(doc, sqlite3_column_int64(st, 0), arg);
            }
        }
        if (r == 0 && rc != SQLITE_DONE)
            r = store_sqlite_err(rc);
        sqlite3_finalize(st);
        unlock(s);
    }
    for (int i = 0; i < c->n; i++)
        free(c->binds[i].str);
    buf_done(&c->sql);
    free(c);
    return r;
}

int store_events_query(struct store *s, const struct store_query *q,
                       int (*fn)(const char *doc, int64_t seq, void *arg), void *arg)
{
    return query_run(s, q, fn, NULL, arg);
}

int store_events_query_rows(struct store *s, const struct store_query *q,
                            int (*fn)(const struct store_event *ev, void *arg), void *arg)
{
    return query_run(s, q, NULL, fn, arg);
}

int store_events_max_seq(struct store *s, int64_t *ret)
{
    char hash[64];
    return store_events_last(s, ret, hash);
}

int store_events_chain(struct store *s, int64_t from, int64_t to,
                       int (*fn)(const char *doc, int64_t seq, const char *hash, void *arg),
                       void *arg)
{
    sqlite3_stmt *st = NULL;
    lock(s);
    int rc = sqlite3_prepare_v2(store_db(s),
                                "SELECT seq, doc, hash FROM audit_events WHERE seq >= ?1 AND "
                                "(?2 = 0 OR seq <= ?2) ORDER BY seq",
                                -1, &st, NULL);
    int r = rc == SQLITE_OK ? 0 : store_sqlite_err(rc);
    if (r == 0) {
        sqlite3_bind_int64(st, 1, from);
        sqlite3_bind_int64(st, 2, to);
        while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
            r = fn((const char *)sqlite3_column_text(st, 1), sqlite3_column_int64(st, 0),
                   (const char *)sqlite3_column_text(st, 2), arg);
        if (r == 0 && rc != SQLITE_DONE)
            r = store_sqlite_err(rc);
    }
    sqlite3_finalize(st);
    unlock(s);
    return r;
}
