/* store/query.h — a search over the audit log, independent of the engine:
 * a filter tree (parsed from SCIM by logs/scim.c), keywords, a time window,
 * a position and an order. store/ turns it into its own SQL, with every value
 * a bound parameter: nothing from a query is ever spliced into SQL text. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* The attributes a filter may name (spec/http-api.md, System log API). */
enum store_attr {
    ATTR_ID,
    ATTR_SEQ,
    ATTR_TYPE,
    ATTR_OUTCOME,
    ATTR_SEVERITY,
    ATTR_REASON,
    ATTR_USER,
    ATTR_CLIENT,
    ATTR_SYSTEM,
    ATTR_AUDIENCE,
    ATTR_ACCESS_POLICY,
    ATTR_TOKEN_ID,
    ATTR_TOKEN_KEY_ID,
    ATTR_TOKEN_ALG,
    ATTR_REQUEST_CLIENT_IP,
    ATTR_REQUEST_GRANT_TYPE,
    ATTR_SCOPES_NAME,
    ATTR_COUNT_
};

/* Attribute names as written in filters ("token.key_id"); index = enum store_attr. */
extern const char *const store_attr_names[ATTR_COUNT_];

enum store_op {
    OP_EQ,
    OP_NE,
    OP_CO,
    OP_SW,
    OP_EW,
    OP_PR,
    OP_GT,
    OP_GE,
    OP_LT,
    OP_LE,
    OP_AND,
    OP_OR,
    OP_NOT,
};

enum store_value_type { VAL_NONE, VAL_STRING, VAL_NUMBER, VAL_BOOL, VAL_NULL };

/* One node. Comparisons (OP_EQ..OP_LE) use attr and value; OP_PR uses attr only;
 * OP_AND/OP_OR use left and right; OP_NOT uses left. String comparisons are exact and
 * case-sensitive except co/sw/ew, which are case-insensitive (SCIM's caseExact=false
 * default for our string attributes would make eq insensitive too; we keep eq exact so
 * that "user eq" can use an index — documented in docs/system-log.md). */
struct store_filter {
    enum store_op op;
    enum store_attr attr;
    enum store_value_type vtype;
    char *str;    /* VAL_STRING, owned */
    double num;   /* VAL_NUMBER */
    int boolean;  /* VAL_BOOL */
    struct store_filter *left, *right;
};

struct store_filter *store_filter_free(struct store_filter *f); /* recursive, NULL-safe */

#define STORE_QUERY_MAX_KEYWORDS 10

struct store_query {
    const struct store_filter *filter;   /* NULL: every event */
    const char *keywords[STORE_QUERY_MAX_KEYWORDS]; /* each must occur, case-insensitive */
    size_t n_keywords;
    const char *since;  /* RFC 3339 UTC as stored ("2026-11-22T09:14:03.512384Z") or NULL */
    const char *until;  /* exclusive upper bound, or NULL */
    int64_t after_seq;  /* ascending: seq > after_seq; descending: seq < after_seq (0 = none) */
    int descending;
    size_t limit;       /* rows at most */
};
