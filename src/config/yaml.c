/* config/yaml.c — libyaml events folded into a jansson tree, plus two side tables
 * of lines: json_t* -> line for every node that has an identity of its own, and
 * (object, key) -> line for every member. Operators' files and admin uploads come
 * through here, so the input is treated as hostile: the byte, depth and node caps
 * are checked as events arrive (before anything is allocated for the node that
 * would break them), and every failure frees the partial tree. Invariant during a
 * parse: every node built so far is reachable from the root, so one json_decref
 * releases it all; a mapping key waiting for its value is owned by its frame. */
#include "config/yaml.h"
#include "core/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 200000

/* One slot of a line table. In the node table `key` is NULL; in the key table
 * `node` is the object and `key` an owned copy of the member name. */
struct line_slot {
    const json_t *node; /* NULL = empty slot */
    char *key;
    uint64_t hash;
    int line;
};

/* Open addressing, linear probing, load factor <= 1/2; never shrinks, never deletes. */
struct line_map {
    struct line_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t len;
};

struct config_doc {
    json_t *root;
    struct line_map nodes;
    struct line_map keys;
};

struct frame {
    json_t *node; /* borrowed: owned by the tree */
    char *key;    /* mapping only: the key waiting for its value, owned */
    int key_line;
};

struct state {
    yaml_parser_t parser;
    struct config_doc *doc;
    struct frame stack[MAX_DEPTH];
    int depth;
    size_t nodes;
    int documents;
    locale_t c_locale; /* created on the first float, for strtod_l */
    struct err_detail *d;
};

static uint64_t hash_ptr(const void *p)
{
    uint64_t h = (uint64_t)(uintptr_t)p;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_key(const void *obj, const char *key)
{
    uint64_t h = 1469598103934665603ULL;
    for (const unsigned char *s = (const unsigned char *)key; *s; s++) {
        h ^= *s;
        h *= 1099511628211ULL;
    }
    return h ^ hash_ptr(obj);
}

static int slot_matches(const struct line_slot *s, uint64_t h, const json_t *node, const char *key)
{
    if (s->hash != h || s->node != node)
        return 0;
    return key ? strcmp(s->key, key) == 0 : 1;
}

static void line_map_done(struct line_map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    m->slots = NULL;
    m->cap = m->len = 0;
}

static int line_map_grow(struct line_map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    struct line_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].node)
            continue;
        size_t j = m->slots[i].hash & (ncap - 1);
        while (ns[j].node)
            j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

/* Records `line` for `node` (and `key`, whose ownership passes to the map on
 * success only). A second record of the same entry keeps the first line. */
static int line_map_put(struct line_map *m, const json_t *node, char *key, int line)
{
    if ((m->len + 1) * 2 > m->cap) {
        int r = line_map_grow(m);
        if (r < 0)
            return r;
    }
    uint64_t h = key ? hash_key(node, key) : hash_ptr(node);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].node) {
        if (slot_matches(&m->slots[j], h, node, key)) {
            free(key);
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (struct line_slot){node, key, h, line};
    m->len++;
    return 0;
}

static int line_map_get(const struct line_map *m, const json_t *node, const char *key)
{
    if (!m->cap || !node)
        return 0;
    uint64_t h = key ? hash_key(node, key) : hash_ptr(node);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].node) {
        if (slot_matches(&m->slots[j], h, node, key))
            return m->slots[j].line;
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

/* True for the shared singletons, whose pointer says nothing about where they came from. */
static int is_singleton(const json_t *v)
{
    return json_is_null(v) || json_is_boolean(v);
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF, no NUL
 * (object keys are C strings, and a NUL in a value is never what an operator meant). */
static int utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < k)
            return 0;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* A key as it may appear in a message: at most 60 bytes cut on a character
 * boundary, control characters replaced, so the message stays valid UTF-8 on one line. */
static const char *key_for_msg(const char *key, char out[72])
{
    size_t n = 0, i = 0;
    for (; key[i] && n < 60; i++) {
        unsigned char c = (unsigned char)key[i];
        out[n++] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
    }
    if (key[i]) {
        if (((unsigned char)key[i] & 0xc0) == 0x80) {
            /* the cut fell inside a character: drop the part of it already copied */
            while (n > 0 && ((unsigned char)out[n - 1] & 0xc0) == 0x80)
                n--;
            if (n > 0)
                n--;
        }
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static int fail_at(struct state *st, int err, const yaml_mark_t *m, const char *what)
{
    return err_set(st->d, err, "line %zu, column %zu: %s", m->line + 1, m->column + 1, what);
}

/* Line and column (1-based) of a byte offset, for reader errors, which carry no mark. */
static void offset_position(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static int parser_error(struct state *st, const char *text, size_t len)
{
    const yaml_parser_t *p = &st->parser;
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return err_set(st->d, ERR_NOMEM, "out of memory while parsing YAML");
    if (p->error == YAML_READER_ERROR) {
        size_t line, col;
        offset_position(text, len, p->problem_offset, &line, &col);
        return err_set(st->d, ERR_INVAL, "line %zu, column %zu: %s", line, col, problem);
    }
    if (p->context)
        return err_set(st->d, ERR_INVAL, "line %zu, column %zu: %s (%s at line %zu)",
                       p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                       p->context_mark.line + 1);
    return err_set(st->d, ERR_INVAL, "line %zu, column %zu: %s", p->problem_mark.line + 1,
                   p->problem_mark.column + 1, problem);
}

static int eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static int all_digits(const char *s, size_t n, int base)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int ok = base == 16
                     ? (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
                     : c >= '0' && c < '0' + base;
        if (!ok)
            return 0;
    }
    return 1;
}

static size_t count_digits(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* YAML 1.2 core float: [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE][-+]?[0-9]+ )? */
static int is_float(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+'))
        i++;
    size_t intd = count_digits(s + i, n - i);
    i += intd;
    if (i < n && s[i] == '.') {
        i++;
        size_t frac = count_digits(s + i, n - i);
        if (intd == 0 && frac == 0)
            return 0;
        i += frac;
    } else if (intd == 0) {
        return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+'))
            i++;
        size_t e = count_digits(s + i, n - i);
        if (e == 0)
            return 0;
        i += e;
    }
    return i == n;
}

static int is_inf_or_nan(const char *s, size_t n)
{
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        s++;
        n--;
    } else if (eq(s, n, ".nan") || eq(s, n, ".NaN") || eq(s, n, ".NAN")) {
        return 1;
    }
    return eq(s, n, ".inf") || eq(s, n, ".Inf") || eq(s, n, ".INF");
}

/* Resolves a plain scalar (NUL-terminated, `n` bytes) by the YAML 1.2 core schema. */
static int plain_scalar(struct state *st, const char *s, size_t n, const yaml_mark_t *m,
                        json_t **ret)
{
    json_t *v;
    if (n == 0 || eq(s, n, "~") || eq(s, n, "null") || eq(s, n, "Null") || eq(s, n, "NULL")) {
        v = json_null();
    } else if (eq(s, n, "true") || eq(s, n, "True") || eq(s, n, "TRUE")) {
        v = json_true();
    } else if (eq(s, n, "false") || eq(s, n, "False") || eq(s, n, "FALSE")) {
        v = json_false();
    } else if (is_inf_or_nan(s, n)) {
        return fail_at(st, ERR_INVAL, m, "infinite and NaN numbers are not supported");
    } else {
        int base = 0;
        const char *digits = s;
        if (n > 2 && s[0] == '0' && s[1] == 'x' && all_digits(s + 2, n - 2, 16))
            base = 16, digits = s + 2;
        else if (n > 2 && s[0] == '0' && s[1] == 'o' && all_digits(s + 2, n - 2, 8))
            base = 8, digits = s + 2;
        else if (all_digits(s + (s[0] == '-' || s[0] == '+'), n - (s[0] == '-' || s[0] == '+'), 10))
            base = 10;
        if (base) {
            char *end;
            errno = 0;
            long long x = strtoll(digits, &end, base);
            if (errno == ERANGE || *end)
                return fail_at(st, ERR_INVAL, m, "integer out of range");
            v = json_integer((json_int_t)x);
        } else if (is_float(s, n)) {
            if (!st->c_locale) {
                st->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
                if (!st->c_locale)
                    return err_set(st->d, ERR_NOMEM, "out of memory");
            }
            char *end;
            double x = strtod_l(s, &end, st->c_locale);
            if (*end || !isfinite(x))
                return fail_at(st, ERR_INVAL, m, "number out of range");
            v = json_real(x);
        } else {
            v = json_stringn_nocheck(s, n);
        }
    }
    if (!v)
        return err_set(st->d, ERR_NOMEM, "out of memory");
    *ret = v;
    return 0;
}

/* Attaches `v` (ownership passes in, even on failure) where the stack says it goes,
 * and records its line. */
static int attach(struct state *st, json_t *v, const yaml_mark_t *m)
{
    int line = (int)m->line + 1;
    if (st->depth == 0) {
        st->doc->root = v;
    } else {
        struct frame *f = &st->stack[st->depth - 1];
        if (json_is_array(f->node)) {
            if (json_array_append_new(f->node, v) < 0)
                return err_set(st->d, ERR_NOMEM, "out of memory");
        } else {
            /* on_scalar() already refused a duplicate when the key arrived */
            char *key = f->key;
            line = f->key_line;
            f->key = NULL;
            if (json_object_set_new_nocheck(f->node, key, v) < 0) {
                free(key);
                return err_set(st->d, ERR_NOMEM, "out of memory");
            }
            if (line_map_put(&st->doc->keys, f->node, key, line) < 0) {
                free(key);
                return err_set(st->d, ERR_NOMEM, "out of memory");
            }
        }
    }
    if (!is_singleton(v) && line_map_put(&st->doc->nodes, v, NULL, line) < 0)
        return err_set(st->d, ERR_NOMEM, "out of memory");
    return 0;
}

/* Checks what every node event must satisfy before anything is built for it. */
static int node_start(struct state *st, const yaml_char_t *anchor, const yaml_char_t *tag,
                      const yaml_mark_t *m)
{
    if (anchor)
        return fail_at(st, ERR_INVAL, m, "anchors and aliases are not supported");
    if (tag)
        return fail_at(st, ERR_INVAL, m, "tags are not supported");
    if (++st->nodes > MAX_NODES)
        return fail_at(st, ERR_TOOBIG, m, "more than 200000 nodes");
    return 0;
}

static int on_scalar(struct state *st, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    int r = node_start(st, ev->data.scalar.anchor, ev->data.scalar.tag, m);
    if (r < 0)
        return r;
    if (!utf8_ok((const unsigned char *)s, n))
        return fail_at(st, ERR_INVAL, m, "strings must be UTF-8 without NUL characters");

    struct frame *f = st->depth ? &st->stack[st->depth - 1] : NULL;
    if (f && json_is_object(f->node) && !f->key) {
        /* a key: its text as written, whatever it would resolve to as a value */
        f->key = strdup(s);
        if (!f->key)
            return err_set(st->d, ERR_NOMEM, "out of memory");
        f->key_line = (int)m->line + 1;
        char kbuf[72];
        if (json_object_get(f->node, f->key))
            return err_set(st->d, ERR_INVAL, "line %zu, column %zu: duplicate key '%s'",
                           m->line + 1, m->column + 1, key_for_msg(f->key, kbuf));
        return 0;
    }

    json_t *v = NULL;
    if (!f && plain && n == 0)
        v = json_object(); /* "---" and nothing else: an empty document */
    else if (!plain)
        v = json_stringn_nocheck(s, n);
    else if ((r = plain_scalar(st, s, n, m, &v)) < 0)
        return r;
    if (!v)
        return err_set(st->d, ERR_NOMEM, "out of memory");
    return attach(st, v, m);
}

static int on_collection_start(struct state *st, const yaml_event_t *ev)
{
    const yaml_mark_t *m = &ev->start_mark;
    int is_map = ev->type == YAML_MAPPING_START_EVENT;
    int r = is_map ? node_start(st, ev->data.mapping_start.anchor, ev->data.mapping_start.tag, m)
                   : node_start(st, ev->data.sequence_start.anchor, ev->data.sequence_start.tag, m);
    if (r < 0)
        return r;
    if (st->depth > 0) {
        const struct frame *f = &st->stack[st->depth - 1];
        if (json_is_object(f->node) && !f->key)
            return fail_at(st, ERR_INVAL, m, "mapping keys must be scalars");
    }
    if (st->depth == MAX_DEPTH)
        return fail_at(st, ERR_TOOBIG, m, "nesting deeper than 64 levels");
    json_t *v = is_map ? json_object() : json_array();
    if (!v)
        return err_set(st->d, ERR_NOMEM, "out of memory");
    r = attach(st, v, m);
    if (r < 0)
        return r;
    st->stack[st->depth++] = (struct frame){v, NULL, 0};
    return 0;
}

static void state_done(struct state *st)
{
    for (int i = 0; i < st->depth; i++)
        free(st->stack[i].key);
    st->depth = 0;
    if (st->c_locale)
        freelocale(st->c_locale);
    st->c_locale = (locale_t)0;
    yaml_parser_delete(&st->parser);
}

/* Feeds every event to the tree builder; returns when the stream ends or on the first error. */
static int run(struct state *st, const char *text, size_t len)
{
    for (;;) {
        yaml_event_t ev;
        int r = 0, end = 0;
        if (!yaml_parser_parse(&st->parser, &ev))
            return parser_error(st, text, len);
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            end = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++st->documents > 1)
                r = fail_at(st, ERR_INVAL, &ev.start_mark,
                            "more than one document (only one is allowed)");
            break;
        case YAML_ALIAS_EVENT:
            r = fail_at(st, ERR_INVAL, &ev.start_mark, "anchors and aliases are not supported");
            break;
        case YAML_SCALAR_EVENT:
            r = on_scalar(st, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            r = on_collection_start(st, &ev);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (st->depth > 0) {
                st->depth--;
                free(st->stack[st->depth].key); /* libyaml pairs keys; kept for safety */
                st->stack[st->depth].key = NULL;
            }
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (r < 0)
            return r;
        if (end)
            return 0;
    }
}

int config_doc_parse(const char *text, size_t len, struct config_doc **ret, struct err_detail *d)
{
    if (len > CONFIG_MAX_BYTES)
        return err_set(d, ERR_TOOBIG, "input is larger than %u bytes", CONFIG_MAX_BYTES);
    if (len == 0)
        text = "";

    struct state st = {.d = d};
    st.doc = calloc(1, sizeof(*st.doc));
    if (!st.doc)
        return err_set(d, ERR_NOMEM, "out of memory");
    if (!yaml_parser_initialize(&st.parser)) {
        free(st.doc);
        return err_set(d, ERR_NOMEM, "out of memory");
    }
    yaml_parser_set_input_string(&st.parser, (const unsigned char *)text, len);

    int r = run(&st, text, len);
    state_done(&st);
    if (r < 0)
        goto fail;
    if (!st.doc->root) {
        st.doc->root = json_object(); /* no document at all, or only comments */
        if (!st.doc->root) {
            r = err_set(d, ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    *ret = st.doc;
    return 0;

fail:
    config_doc_free(st.doc);
    return r;
}

int config_doc_load(const char *path, struct config_doc **ret, struct err_detail *d)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return err_set(d, ERR_NOTFOUND, "%s: no such file", path);
        return err_set(d, ERR_IO, "%s: %s", path, strerror(errno));
    }

    struct buf b;
    buf_init(&b, CONFIG_MAX_BYTES);
    char chunk[16384];
    int r = 0;
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = err_set(d, ERR_IO, "%s: %s", path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        r = buf_append(&b, chunk, (size_t)n);
        if (r == ERR_TOOBIG) {
            r = err_set(d, r, "%s: larger than %u bytes", path, CONFIG_MAX_BYTES);
            goto out;
        }
        if (r < 0) {
            r = err_set(d, r, "%s: out of memory", path);
            goto out;
        }
    }

    struct err_detail pd = {{0}};
    r = config_doc_parse(b.data, b.len, ret, &pd);
    if (r < 0)
        err_set(d, r, "%s: %s", path, pd.msg);

out:
    buf_done(&b);
    close(fd);
    return r;
}

json_t *config_doc_root(const struct config_doc *doc)
{
    return doc ? doc->root : NULL;
}

int config_doc_line(const struct config_doc *doc, const json_t *node)
{
    if (!doc || !node || is_singleton(node))
        return 0;
    return line_map_get(&doc->nodes, node, NULL);
}

int config_doc_key_line(const struct config_doc *doc, const json_t *object, const char *key)
{
    if (!doc || !object || !key)
        return 0;
    return line_map_get(&doc->keys, object, key);
}

struct config_doc *config_doc_free(struct config_doc *doc)
{
    if (!doc)
        return NULL;
    json_decref(doc->root);
    line_map_done(&doc->nodes);
    line_map_done(&doc->keys);
    free(doc);
    return NULL;
}
