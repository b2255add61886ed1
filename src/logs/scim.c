/* logs/scim.c — SCIM filter parser (RFC 7644 §3.4.2.2, the subset in scim.h):
 * a tokenizer that scans one token ahead and a recursive descent over it.
 *
 * The input is an untrusted query parameter, so everything is bounded before it
 * costs anything: the length is checked first; every node is counted when its
 * token is seen (a comparison at its attribute, and/or/not at the keyword);
 * recursion happens only at '(' and only while the parenthesis nesting is within
 * SCIM_MAX_DEPTH; and a tree is never handed back taller than SCIM_MAX_DEPTH
 * (a lone comparison has depth 1), so whoever walks it recursively may trust
 * that. Chains of one operator ("a or b or c ...") are built as balanced trees
 * (and/or are associative), so a long list of alternatives stays shallow; up to
 * three operands the result is the usual left-associative tree.
 *
 * String values are decoded as JSON strings into exact UTF-8 bytes (no NUL, no
 * raw control characters, no invalid UTF-8); they never leave their token, so
 * nothing inside quotes can change the shape of the tree. Errors name the
 * 1-based byte column of the offending token (the offending byte inside a
 * string), what was expected there and what was found. A found-description
 * echoes only printable ASCII, so a message is always valid UTF-8. */
#include "logs/scim.h"

#include <assert.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum tok_type { T_END, T_LPAREN, T_RPAREN, T_WORD, T_STRING, T_NUMBER, T_BAD };

struct token {
    enum tok_type type;
    size_t pos, len; /* the lexeme in the input */
    char *str;       /* T_STRING: decoded, owned until a node takes it */
    double num;      /* T_NUMBER */
};

/* One operand of an and/or chain being collected; `join` is the and/or node
 * allocated at the keyword before this operand (NULL for the first). */
struct operand {
    struct store_filter *node, *join;
    int depth;
    size_t join_pos;
};

struct parser {
    const char *s;
    size_t len, pos;  /* pos: where the tokenizer resumes */
    size_t prev_end;  /* end of the last token: where "end of input" is reported */
    struct token tok; /* the current (lookahead) token */
    int nodes;
    size_t too_deep_pos; /* 1-based column of a node found too deep while building, 0: none */
    struct err_detail *d;
    /* Operands of every chain under construction; each holds >= 1 counted node,
     * so there are never more than SCIM_MAX_NODES. */
    struct operand stack[SCIM_MAX_NODES];
    int top;
};

#define COMPOPS "(eq, ne, co, sw, ew, pr, gt, ge, lt, le)"
#define VALUES  "(a \"string\", a number, true, false or null)"

static const struct {
    char name[3];
    enum store_op op;
} compops[] = {
    {"eq", OP_EQ}, {"ne", OP_NE}, {"co", OP_CO}, {"sw", OP_SW}, {"ew", OP_EW},
    {"pr", OP_PR}, {"gt", OP_GT}, {"ge", OP_GE}, {"lt", OP_LT}, {"le", OP_LE},
};

static const char *op_name(enum store_op op)
{
    for (size_t i = 0; i < sizeof(compops) / sizeof(compops[0]); i++)
        if (compops[i].op == op)
            return compops[i].name;
    return "?";
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* ---- describing what was found ---- */

#define ECHO_MAX 32

/* "'xyz'", "a string", "end of input", "byte 0x0a": printable ASCII only. */
static const char *describe(const struct parser *p, char buf[static ECHO_MAX + 16])
{
    const struct token *t = &p->tok;
    unsigned char c;
    switch (t->type) {
    case T_END:
        return "end of input";
    case T_STRING:
        return "a string";
    case T_LPAREN:
        return "'('";
    case T_RPAREN:
        return "')'";
    case T_WORD:
    case T_NUMBER: /* both are [A-Za-z0-9_.+-] only */
        snprintf(buf, ECHO_MAX + 16, "'%.*s%s'", (int)(t->len > ECHO_MAX ? ECHO_MAX : t->len),
                 p->s + t->pos, t->len > ECHO_MAX ? "..." : "");
        return buf;
    case T_BAD:
    default:
        c = (unsigned char)p->s[t->pos];
        if (c == '\'')
            return "\"'\" (strings take double quotes)";
        if (c > 0x20 && c < 0x7f)
            snprintf(buf, ECHO_MAX + 16, "'%c'", c);
        else
            snprintf(buf, ECHO_MAX + 16, "byte 0x%02x", c);
        return buf;
    }
}

static size_t col(size_t pos)
{
    return pos + 1;
}

static int nomem(struct parser *p)
{
    return err_set(p->d, ERR_NOMEM, "out of memory");
}

/* ---- tokenizer ---- */

/* Length of the well-formed UTF-8 sequence at s (n > 0 bytes left), or 0: no
 * overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k;
    uint32_t cp, min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        k = 2, cp = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        k = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        k = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < k)
        return 0;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return k;
}

static size_t utf8_put(char *o, uint32_t cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* The 4 hex digits of a \u escape whose 'u' is at i; -1 if they are not there. */
static long hex4(const struct parser *p, size_t i)
{
    if (p->len - i < 5)
        return -1;
    long v = 0;
    for (size_t k = 1; k <= 4; k++) {
        int c = (unsigned char)p->s[i + k], h;
        if (is_digit(c))
            h = c - '0';
        else if (c >= 'a' && c <= 'f')
            h = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            h = c - 'A' + 10;
        else
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* A JSON string starting at the '"' at p->pos. Decoded output is never longer
 * than the lexeme, so one allocation of the remaining length suffices. */
static int lex_string(struct parser *p)
{
    const unsigned char *s = (const unsigned char *)p->s;
    size_t start = p->pos, i = start + 1;
    char *out = malloc(p->len - start), *o = out;
    if (!out)
        return nomem(p);
    int r;
    for (;;) {
        if (i == p->len) {
            r = err_set(p->d, ERR_INVAL, "column %zu: unterminated string", col(start));
            goto fail;
        }
        unsigned c = s[i];
        if (c == '"')
            break;
        if (c < 0x20) {
            r = err_set(p->d, ERR_INVAL,
                        "column %zu: control character 0x%02x in a string (escape it, e.g. \\n)",
                        col(i), c);
            goto fail;
        }
        if (c >= 0x80) {
            size_t k = utf8_len(s + i, p->len - i);
            if (!k) {
                r = err_set(p->d, ERR_INVAL, "column %zu: invalid UTF-8 in a string", col(i));
                goto fail;
            }
            memcpy(o, s + i, k);
            o += k, i += k;
            continue;
        }
        if (c != '\\') {
            *o++ = (char)c;
            i++;
            continue;
        }
        if (i + 1 == p->len) {
            r = err_set(p->d, ERR_INVAL, "column %zu: unterminated string", col(start));
            goto fail;
        }
        unsigned e = s[i + 1];
        switch (e) {
        case '"':
        case '\\':
        case '/':
            *o++ = (char)e;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            long cp = hex4(p, i + 1);
            if (cp < 0) {
                r = err_set(p->d, ERR_INVAL,
                            "column %zu: invalid \\u escape in a string (expected 4 hex digits)",
                            col(i));
                goto fail;
            }
            if (cp == 0) {
                r = err_set(p->d, ERR_INVAL, "column %zu: \\u0000 is not allowed in a string",
                            col(i));
                goto fail;
            }
            if (cp >= 0xdc00 && cp <= 0xdfff) {
                r = err_set(p->d, ERR_INVAL, "column %zu: unpaired surrogate in a string", col(i));
                goto fail;
            }
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo =
                    p->len - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u' ? hex4(p, i + 7) : -1;
                if (lo < 0xdc00 || lo > 0xdfff) {
                    r = err_set(p->d, ERR_INVAL, "column %zu: unpaired surrogate in a string",
                                col(i));
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            o += utf8_put(o, (uint32_t)cp);
            i += 4;
            break;
        }
        default:
            if (e > 0x20 && e < 0x7f)
                r = err_set(p->d, ERR_INVAL, "column %zu: invalid escape '\\%c' in a string",
                            col(i), (char)e);
            else
                r = err_set(p->d, ERR_INVAL, "column %zu: invalid escape in a string", col(i));
            goto fail;
        }
        i += 2;
    }
    *o = '\0';
    p->tok.type = T_STRING;
    p->tok.len = i + 1 - start;
    p->tok.str = out;
    p->pos = i + 1;
    return 0;
fail:
    free(out);
    return r;
}

/* JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int json_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0') {
        i++;
    } else if (i < n && s[i] >= '1' && s[i] <= '9') {
        while (i < n && is_digit(s[i]))
            i++;
    } else {
        return 0;
    }
    if (i < n && s[i] == '.') {
        if (++i == n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        if (++i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i == n || !is_digit(s[i]))
            return 0;
        while (i < n && is_digit(s[i]))
            i++;
    }
    return i == n;
}

/* A number starting at p->pos. The lexeme runs over every character a number
 * or a word could continue with, so "12abc" is one bad number, not two tokens. */
static int lex_number(struct parser *p)
{
    size_t start = p->pos, i = start + 1;
    while (i < p->len) {
        char c = p->s[i];
        if (!(is_alpha(c) || is_digit(c) || c == '_' || c == '.' || c == '+' || c == '-'))
            break;
        i++;
    }
    p->tok.type = T_NUMBER;
    p->tok.len = i - start;
    char buf[ECHO_MAX + 16];
    if (!json_number(p->s + start, i - start))
        return err_set(p->d, ERR_INVAL, "column %zu: invalid number %s", col(start),
                       describe(p, buf));
    char *copy = strndup(p->s + start, i - start);
    /* strtod_l: the decimal point must not depend on the process locale */
    locale_t c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (!copy || !c_locale) {
        free(copy);
        if (c_locale)
            freelocale(c_locale);
        return nomem(p);
    }
    double v = strtod_l(copy, NULL, c_locale);
    freelocale(c_locale);
    free(copy);
    if (!isfinite(v))
        return err_set(p->d, ERR_INVAL, "column %zu: number out of range %s", col(start),
                       describe(p, buf));
    p->tok.num = v;
    p->pos = i;
    return 0;
}

/* Scans the next token into p->tok (dropping the current one's string). */
static int lex(struct parser *p)
{
    free(p->tok.str);
    p->tok = (struct token){.type = T_END};
    while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t'))
        p->pos++;
    p->tok.pos = p->pos;
    if (p->pos == p->len) {
        p->tok.pos = p->prev_end;
        return 0;
    }
    int r = 0;
    char c = p->s[p->pos];
    if (c == '(' || c == ')') {
        p->tok.type = c == '(' ? T_LPAREN : T_RPAREN;
        p->tok.len = 1;
        p->pos++;
    } else if (is_alpha(c)) {
        size_t i = p->pos + 1;
        while (i < p->len &&
               (is_alpha(p->s[i]) || is_digit(p->s[i]) || p->s[i] == '_' || p->s[i] == '.'))
            i++;
        p->tok.type = T_WORD;
        p->tok.len = i - p->pos;
        p->pos = i;
    } else if (c == '"') {
        r = lex_string(p);
    } else if (is_digit(c) || (c == '-' && p->pos + 1 < p->len && is_digit(p->s[p->pos + 1]))) {
        r = lex_number(p);
    } else {
        p->tok.type = T_BAD;
        p->tok.len = 1;
        p->pos++;
    }
    p->prev_end = p->pos;
    return r;
}

static int is_word(const struct parser *p, const char *kw)
{
    size_t n = strlen(kw);
    return p->tok.type == T_WORD && p->tok.len == n && !strncasecmp(p->s + p->tok.pos, kw, n);
}

/* ---- parser ---- */

/* A keyword where an attribute should be is "expected an attribute", not an
 * unknown attribute: "user pr and or ..." */
static int is_reserved(const struct parser *p)
{
    static const char *const words[] = {"and", "or", "true", "false", "null"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (is_word(p, words[i]))
            return 1;
    for (size_t i = 0; i < sizeof(compops) / sizeof(compops[0]); i++)
        if (is_word(p, compops[i].name))
            return 1;
    return 0;
}

static int count_node(struct parser *p, size_t pos)
{
    if (++p->nodes > SCIM_MAX_NODES)
        return err_set(p->d, ERR_TOOBIG, "column %zu: filter too complex (more than %d nodes)",
                       col(pos), SCIM_MAX_NODES);
    return 0;
}

static int too_deep(struct parser *p, size_t column)
{
    return err_set(p->d, ERR_TOOBIG, "column %zu: filter nested deeper than %d levels", column,
                   SCIM_MAX_DEPTH);
}

static int parse_chain(struct parser *p, int nest, enum store_op op, struct operand *ret);

static int parse_comparison(struct parser *p, struct operand *ret)
{
    char buf[ECHO_MAX + 16];
    const struct token *t = &p->tok;
    int attr = -1;
    for (int a = 0; a < ATTR_COUNT_; a++) {
        if (strlen(store_attr_names[a]) == t->len &&
            !strncasecmp(store_attr_names[a], p->s + t->pos, t->len)) {
            attr = a;
            break;
        }
    }
    if (attr < 0) {
        char known[400];
        size_t k = 0;
        for (int a = 0; a < ATTR_COUNT_; a++)
            k += (size_t)snprintf(known + k, sizeof(known) - k, "%s%s", a ? ", " : "",
                                  store_attr_names[a]);
        return err_set(p->d, ERR_INVAL, "column %zu: unknown attribute %s (known: %s)", col(t->pos),
                       describe(p, buf), known);
    }
    size_t attr_pos = t->pos;
    int r = count_node(p, attr_pos);
    if (r < 0 || (r = lex(p)) < 0)
        return r;

    int op = -1;
    for (size_t i = 0; i < sizeof(compops) / sizeof(compops[0]); i++) {
        if (is_word(p, compops[i].name)) {
            op = (int)compops[i].op;
            break;
        }
    }
    if (op < 0)
        return err_set(p->d, ERR_INVAL,
                       "column %zu: expected a comparison operator " COMPOPS ", found %s",
                       col(t->pos), describe(p, buf));
    size_t op_pos = t->pos;
    if ((r = lex(p)) < 0)
        return r;

    const char *aname = store_attr_names[attr];
    enum store_value_type vt = VAL_NONE;
    if (op != OP_PR) {
        if (attr == ATTR_SEQ && (op == OP_CO || op == OP_SW || op == OP_EW))
            return err_set(p->d, ERR_INVAL, "column %zu: %s needs a string attribute", col(op_pos),
                           op_name(op));
        if (t->type == T_STRING)
            vt = VAL_STRING;
        else if (t->type == T_NUMBER)
            vt = VAL_NUMBER;
        else if (is_word(p, "true") || is_word(p, "false"))
            vt = VAL_BOOL;
        else if (is_word(p, "null"))
            vt = VAL_NULL;
        else
            return err_set(p->d, ERR_INVAL, "column %zu: expected a value " VALUES ", found %s",
                           col(t->pos), describe(p, buf));
        /* No attribute is boolean; only seq is a number; null means "absent",
         * which only eq/ne can ask about. */
        if (attr == ATTR_SEQ && vt != VAL_NUMBER)
            return err_set(p->d, ERR_INVAL, "column %zu: expected a number after '%s %s', found %s",
                           col(t->pos), aname, op_name(op), describe(p, buf));
        if (attr != ATTR_SEQ && (op == OP_EQ || op == OP_NE) && vt != VAL_STRING && vt != VAL_NULL)
            return err_set(p->d, ERR_INVAL,
                           "column %zu: expected a \"string\" or null after '%s %s', found %s",
                           col(t->pos), aname, op_name(op), describe(p, buf));
        if (attr != ATTR_SEQ && op != OP_EQ && op != OP_NE && vt != VAL_STRING)
            return err_set(p->d, ERR_INVAL,
                           "column %zu: expected a \"string\" after '%s %s', found %s", col(t->pos),
                           aname, op_name(op), describe(p, buf));
    }

    struct store_filter *n = calloc(1, sizeof(*n));
    if (!n)
        return nomem(p);
    n->op = (enum store_op)op;
    n->attr = (enum store_attr)attr;
    n->vtype = vt;
    if (vt == VAL_STRING) {
        n->str = p->tok.str;
        p->tok.str = NULL;
    } else if (vt == VAL_NUMBER) {
        n->num = p->tok.num;
    }
    if (vt != VAL_NONE && (r = lex(p)) < 0) {
        store_filter_free(n);
        return r;
    }
    *ret = (struct operand){.node = n, .depth = 1};
    return 0;
}

/* unary = "not" "(" filter ")" | "(" filter ")" | comparison */
static int parse_unary(struct parser *p, int nest, struct operand *ret)
{
    char buf[ECHO_MAX + 16];
    const struct token *t = &p->tok;
    struct store_filter *neg = NULL;
    size_t not_pos = 0;
    struct operand in;
    int r;
    if (is_word(p, "not")) {
        not_pos = t->pos;
        if ((r = count_node(p, not_pos)) < 0)
            return r;
        if (!(neg = calloc(1, sizeof(*neg))))
            return nomem(p);
        neg->op = OP_NOT;
        if ((r = lex(p)) < 0)
            goto fail;
        if (t->type != T_LPAREN) {
            r = err_set(p->d, ERR_INVAL, "column %zu: expected '(' after 'not', found %s",
                        col(t->pos), describe(p, buf));
            goto fail;
        }
    } else if (t->type == T_WORD && !is_reserved(p)) {
        return parse_comparison(p, ret);
    } else if (t->type != T_LPAREN) {
        return err_set(p->d, ERR_INVAL, "column %zu: expected an attribute, found %s", col(t->pos),
                       describe(p, buf));
    }
    if (nest >= SCIM_MAX_DEPTH) {
        r = too_deep(p, col(t->pos));
        goto fail;
    }
    if ((r = lex(p)) < 0 || (r = parse_chain(p, nest + 1, OP_OR, &in)) < 0)
        goto fail;
    if (t->type != T_RPAREN) {
        store_filter_free(in.node);
        r = err_set(p->d, ERR_INVAL, "column %zu: expected 'and', 'or' or ')', found %s",
                    col(t->pos), describe(p, buf));
        goto fail;
    }
    if ((r = lex(p)) < 0) {
        store_filter_free(in.node);
        goto fail;
    }
    if (neg) {
        neg->left = in.node;
        if (++in.depth > SCIM_MAX_DEPTH) {
            store_filter_free(neg);
            return too_deep(p, col(not_pos));
        }
        in.node = neg;
    }
    *ret = in;
    return 0;
fail:
    store_filter_free(neg);
    return r;
}

/* Links stack[lo, hi) into a balanced tree (left-leaning: 3 operands give
 * ((a, b), c)). Cannot fail: the join nodes were allocated at their keywords.
 * Depth is checked by the caller through p->too_deep_pos. */
static struct operand build(struct parser *p, int lo, int hi)
{
    if (hi - lo == 1) {
        struct operand o = p->stack[lo];
        p->stack[lo].node = NULL;
        return o;
    }
    int mid = lo + (hi - lo + 1) / 2;
    struct store_filter *j = p->stack[mid].join;
    size_t j_pos = p->stack[mid].join_pos;
    p->stack[mid].join = NULL;
    struct operand l = build(p, lo, mid), r = build(p, mid, hi);
    j->left = l.node;
    j->right = r.node;
    int depth = 1 + (l.depth > r.depth ? l.depth : r.depth);
    if (depth > SCIM_MAX_DEPTH && !p->too_deep_pos)
        p->too_deep_pos = col(j_pos);
    return (struct operand){.node = j, .depth = depth};
}

static int parse_operand(struct parser *p, int nest, enum store_op op, struct operand *ret)
{
    return op == OP_OR ? parse_chain(p, nest, OP_AND, ret) : parse_unary(p, nest, ret);
}

/* or = and *("or" and); and = unary *("and" unary). The operands wait on
 * p->stack until the chain ends, then become one balanced tree. */
static int parse_chain(struct parser *p, int nest, enum store_op op, struct operand *ret)
{
    const char *kw = op == OP_OR ? "or" : "and";
    int base = p->top, r;
    struct operand o;
    if ((r = parse_operand(p, nest, op, &o)) < 0)
        return r;
    assert(p->top < SCIM_MAX_NODES); /* every slot holds a counted node */
    p->stack[p->top++] = o;
    while (is_word(p, kw)) {
        size_t pos = p->tok.pos;
        struct store_filter *j;
        if ((r = count_node(p, pos)) < 0)
            goto fail;
        if (!(j = calloc(1, sizeof(*j)))) {
            r = nomem(p);
            goto fail;
        }
        j->op = op;
        /* the slot is taken before the operand is parsed, so that an error
         * inside it still frees the join */
        assert(p->top < SCIM_MAX_NODES);
        int slot = p->top++;
        p->stack[slot] = (struct operand){.join = j, .join_pos = pos};
        if ((r = lex(p)) < 0 || (r = parse_operand(p, nest, op, &o)) < 0)
            goto fail;
        p->stack[slot].node = o.node;
        p->stack[slot].depth = o.depth;
    }
    struct operand t = build(p, base, p->top);
    p->top = base;
    if (p->too_deep_pos) {
        store_filter_free(t.node);
        return too_deep(p, p->too_deep_pos);
    }
    *ret = t;
    return 0;
fail:
    while (p->top > base) {
        p->top--;
        store_filter_free(p->stack[p->top].node);
        store_filter_free(p->stack[p->top].join);
    }
    return r;
}

int scim_parse(const char *text, size_t len, struct store_filter **ret, struct err_detail *d)
{
    assert(ret);
    if (len > SCIM_MAX_LEN)
        return err_set(d, ERR_TOOBIG, "column %d: filter longer than %d bytes", SCIM_MAX_LEN + 1,
                       SCIM_MAX_LEN);
    if (!text && len)
        return err_set(d, ERR_INVAL, "column 1: no filter text");
    struct parser *p = calloc(1, sizeof(*p));
    if (!p)
        return err_set(d, ERR_NOMEM, "out of memory");
    p->s = text ? text : "";
    p->len = len;
    p->d = d;
    struct operand o;
    char buf[ECHO_MAX + 16];
    int r = lex(p);
    if (r == 0)
        r = parse_chain(p, 0, OP_OR, &o);
    if (r == 0 && p->tok.type != T_END) {
        store_filter_free(o.node);
        r = err_set(d, ERR_INVAL, "column %zu: expected 'and', 'or' or end of input, found %s",
                    col(p->tok.pos), describe(p, buf));
    }
    free(p->tok.str);
    free(p);
    if (r == 0)
        *ret = o.node;
    return r;
}
