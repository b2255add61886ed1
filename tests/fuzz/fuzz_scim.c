/* tests/fuzz/fuzz_scim.c — the SCIM filter parser on hostile bytes. scim_parse
 * must either refuse with ERR_INVAL/ERR_TOOBIG and a printable "column N: ..."
 * message (N within the input, *ret untouched), or return a tree that keeps
 * store/query.h's promises: comparisons carry a value of their attribute's type
 * (seq: a finite number; others: a string, or null for eq/ne), pr carries none,
 * and/or have both children, not has one, depth <= SCIM_MAX_DEPTH, at most
 * SCIM_MAX_NODES nodes, every string valid UTF-8. An accepted tree is then
 * printed back as a fully parenthesized filter, which must parse to the same
 * tree: nothing the input said was lost, and nothing inside a string leaked
 * into the structure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/scim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int valid_utf8(const unsigned char *s)
{
    while (*s) {
        unsigned c = *s;
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            s++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 2, cp = c & 0x1f, min = 0x80;
        else if (c >= 0xe0 && c <= 0xef)
            k = 3, cp = c & 0x0f, min = 0x800;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 4, cp = c & 0x07, min = 0x10000;
        else
            return 0;
        for (size_t i = 1; i < k; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        s += k;
    }
    return 1;
}

/* Checks one node and below; returns the depth (a leaf is 1). */
static int check(const struct store_filter *f, int level, int *nodes)
{
    if (!f || level > SCIM_MAX_DEPTH || ++*nodes > SCIM_MAX_NODES)
        abort();
    switch (f->op) {
    case OP_AND:
    case OP_OR: {
        if (!f->left || !f->right || f->vtype != VAL_NONE || f->str)
            abort();
        int l = check(f->left, level + 1, nodes), r = check(f->right, level + 1, nodes);
        return 1 + (l > r ? l : r);
    }
    case OP_NOT:
        if (!f->left || f->right || f->vtype != VAL_NONE || f->str)
            abort();
        return 1 + check(f->left, level + 1, nodes);
    case OP_PR:
        if (f->left || f->right || f->vtype != VAL_NONE || f->str || f->attr >= ATTR_COUNT_)
            abort();
        return 1;
    case OP_EQ:
    case OP_NE:
    case OP_CO:
    case OP_SW:
    case OP_EW:
    case OP_GT:
    case OP_GE:
    case OP_LT:
    case OP_LE:
        if (f->left || f->right || f->attr >= ATTR_COUNT_)
            abort();
        if (f->attr == ATTR_SEQ) {
            if (f->vtype != VAL_NUMBER || !isfinite(f->num) || f->str || f->op == OP_CO ||
                f->op == OP_SW || f->op == OP_EW)
                abort();
        } else if (f->vtype == VAL_STRING) {
            if (!f->str || !valid_utf8((const unsigned char *)f->str))
                abort();
        } else if (f->vtype != VAL_NULL || f->str || (f->op != OP_EQ && f->op != OP_NE)) {
            abort();
        }
        return 1;
    default:
        abort();
    }
}

struct out {
    char *p;
    size_t n, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->n + n + 1 > o->cap) {
        size_t cap = (o->n + n + 1) * 2;
        char *p = realloc(o->p, cap);
        if (!p)
            abort();
        o->p = p, o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
}

static void puts_(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static const char *const opnames[] = {
    [OP_EQ] = "eq", [OP_NE] = "ne", [OP_CO] = "co", [OP_SW] = "sw", [OP_EW] = "ew",
    [OP_PR] = "pr", [OP_GT] = "gt", [OP_GE] = "ge", [OP_LT] = "lt", [OP_LE] = "le"};

/* Depth is bounded by check() before this runs. */
static void format(struct out *o, const struct store_filter *f)
{
    char num[64];
    switch (f->op) {
    case OP_AND:
    case OP_OR:
        for (int side = 0; side < 2; side++) {
            const struct store_filter *c = side ? f->right : f->left;
            int wrap = c->op == OP_AND || c->op == OP_OR;
            if (side)
                puts_(o, f->op == OP_AND ? " and " : " or ");
            if (wrap)
                puts_(o, "(");
            format(o, c);
            if (wrap)
                puts_(o, ")");
        }
        return;
    case OP_NOT:
        puts_(o, "not (");
        format(o, f->left);
        puts_(o, ")");
        return;
    default:
        break;
    }
    puts_(o, store_attr_names[f->attr]);
    puts_(o, " ");
    puts_(o, opnames[f->op]);
    if (f->op == OP_PR)
        return;
    puts_(o, " ");
    if (f->vtype == VAL_NUMBER) {
        snprintf(num, sizeof(num), "%.17g", f->num);
        puts_(o, num);
    } else if (f->vtype == VAL_NULL) {
        puts_(o, "null");
    } else {
        puts_(o, "\"");
        for (const unsigned char *s = (const unsigned char *)f->str; *s; s++) {
            if (*s == '"' || *s == '\\') {
                char e[2] = {'\\', (char)*s};
                put(o, e, 2);
            } else if (*s < 0x20) {
                snprintf(num, sizeof(num), "\\u%04x", *s);
                puts_(o, num);
            } else {
                put(o, (const char *)s, 1);
            }
        }
        puts_(o, "\"");
    }
}

static int same(const struct store_filter *a, const struct store_filter *b)
{
    if (!a || !b)
        return a == b;
    if (a->op != b->op || a->vtype != b->vtype)
        return 0;
    if (a->op <= OP_LE && a->attr != b->attr)
        return 0;
    if (a->vtype == VAL_STRING && strcmp(a->str, b->str))
        return 0;
    if (a->vtype == VAL_NUMBER && a->num != b->num)
        return 0;
    return same(a->left, b->left) && same(a->right, b->right);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct store_filter sentinel;
    struct store_filter *f = &sentinel;
    struct err_detail d = {{0}};
    int r = scim_parse((const char *)data, size, &f, &d);
    if (r < 0) {
        unsigned long column;
        int used = 0;
        if (f != &sentinel || (r != ERR_INVAL && r != ERR_TOOBIG && r != ERR_NOMEM))
            abort();
        if (r == ERR_NOMEM)
            return 0;
        if (sscanf(d.msg, "column %lu: %n", &column, &used) != 1 || used == 0 || column < 1 ||
            column > (size > SCIM_MAX_LEN ? SCIM_MAX_LEN : size) + 1)
            abort();
        for (const char *m = d.msg; *m; m++)
            if (*m < 0x20 || *m > 0x7e)
                abort();
        return 0;
    }
    if (r != 0 || f == &sentinel || size > SCIM_MAX_LEN)
        abort();
    int nodes = 0;
    if (check(f, 1, &nodes) > SCIM_MAX_DEPTH)
        abort();

    struct out o = {0};
    format(&o, f);
    if (o.n <= SCIM_MAX_LEN) {
        struct store_filter *g = NULL;
        if (scim_parse(o.p, o.n, &g, &d) != 0 || !same(f, g))
            abort();
        store_filter_free(g);
    }
    free(o.p);
    store_filter_free(f);
    return 0;
}
