/* tests/unit/test_scim.c — logs/scim.c, the system log's filter parser: every
 * operator and attribute to its tree, precedence, not, parentheses, keyword
 * case, JSON string decoding to exact bytes, numbers, the type rules, every
 * error with its exact message and column, hostile input staying inside string
 * values, and the length/depth/node caps. Trees are compared through a small
 * S-expression printer so an expected shape reads at a glance. Pure functions
 * only; a few milliseconds. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/scim.h"

/* ---- helpers ---- */

static const char *const opnames[] = {
    [OP_EQ] = "eq",   [OP_NE] = "ne", [OP_CO] = "co",   [OP_SW] = "sw", [OP_EW] = "ew",
    [OP_PR] = "pr",   [OP_GT] = "gt", [OP_GE] = "ge",   [OP_LT] = "lt", [OP_LE] = "le",
    [OP_AND] = "and", [OP_OR] = "or", [OP_NOT] = "not",
};

/* (or (eq user "1") (and (pr client) (gt seq 5))) */
static void sexp(const struct store_filter *f, char *out, size_t cap)
{
    size_t n = strlen(out);
    switch (f->op) {
    case OP_AND:
    case OP_OR:
        snprintf(out + n, cap - n, "(%s ", opnames[f->op]);
        sexp(f->left, out, cap);
        n = strlen(out);
        snprintf(out + n, cap - n, " ");
        sexp(f->right, out, cap);
        n = strlen(out);
        snprintf(out + n, cap - n, ")");
        return;
    case OP_NOT:
        snprintf(out + n, cap - n, "(not ");
        sexp(f->left, out, cap);
        n = strlen(out);
        snprintf(out + n, cap - n, ")");
        return;
    default:
        break;
    }
    switch (f->vtype) {
    case VAL_NONE:
        snprintf(out + n, cap - n, "(%s %s)", opnames[f->op], store_attr_names[f->attr]);
        break;
    case VAL_STRING:
        snprintf(out + n, cap - n, "(%s %s \"%s\")", opnames[f->op], store_attr_names[f->attr],
                 f->str);
        break;
    case VAL_NUMBER:
        snprintf(out + n, cap - n, "(%s %s %g)", opnames[f->op], store_attr_names[f->attr], f->num);
        break;
    case VAL_NULL:
        snprintf(out + n, cap - n, "(%s %s null)", opnames[f->op], store_attr_names[f->attr]);
        break;
    case VAL_BOOL:
        snprintf(out + n, cap - n, "(%s %s %s)", opnames[f->op], store_attr_names[f->attr],
                 f->boolean ? "true" : "false");
        break;
    }
}

static struct store_filter *parse_len(const char *s, size_t len)
{
    struct store_filter *f = NULL;
    struct err_detail d = {{0}};
    int r = scim_parse(s, len, &f, &d);
    if (r != 0)
        print_error("unexpected error %d for '%s': %s\n", r, s, d.msg);
    assert_int_equal(r, 0);
    assert_non_null(f);
    return f;
}

static struct store_filter *parse(const char *s)
{
    return parse_len(s, strlen(s));
}

static void expect_tree(const char *filter, const char *want)
{
    struct store_filter *f = parse(filter);
    char got[4096] = "";
    sexp(f, got, sizeof(got));
    if (strcmp(got, want))
        print_error("filter: %s\n", filter);
    assert_string_equal(got, want);
    assert_null(store_filter_free(f));
}

static void expect_err_len(const char *filter, size_t len, int err, const char *msg)
{
    static struct store_filter sentinel;
    struct store_filter *f = &sentinel;
    struct err_detail d = {{0}};
    int r = scim_parse(filter, len, &f, &d);
    if (r != err || strcmp(d.msg, msg))
        print_error("filter: %.*s\n", (int)(len > 200 ? 200 : len), filter);
    assert_int_equal(r, err);
    assert_string_equal(d.msg, msg);
    assert_ptr_equal(f, &sentinel); /* out-parameter untouched on failure */
}

static void expect_err(const char *filter, const char *msg)
{
    expect_err_len(filter, strlen(filter), ERR_INVAL, msg);
}

/* A value's exact bytes. */
static void expect_string_value(const char *filter, const char *bytes)
{
    struct store_filter *f = parse(filter);
    assert_int_equal(f->op, OP_EQ);
    assert_int_equal(f->vtype, VAL_STRING);
    assert_string_equal(f->str, bytes);
    store_filter_free(f);
}

static int depth(const struct store_filter *f)
{
    if (!f)
        return 0;
    int l = depth(f->left), r = depth(f->right);
    return 1 + (l > r ? l : r);
}

static int count(const struct store_filter *f)
{
    return f ? 1 + count(f->left) + count(f->right) : 0;
}

#define VALUE_ERR "expected a value (a \"string\", a number, true, false or null)"
#define OP_ERR    "expected a comparison operator (eq, ne, co, sw, ew, pr, gt, ge, lt, le)"

/* ---- trees ---- */

static void test_operators(void **state)
{
    (void)state;
    expect_tree("user eq \"alice\"", "(eq user \"alice\")");
    expect_tree("user ne \"alice\"", "(ne user \"alice\")");
    expect_tree("user co \"lic\"", "(co user \"lic\")");
    expect_tree("user sw \"al\"", "(sw user \"al\")");
    expect_tree("user ew \"ce\"", "(ew user \"ce\")");
    expect_tree("user pr", "(pr user)");
    expect_tree("user gt \"a\"", "(gt user \"a\")");
    expect_tree("user ge \"a\"", "(ge user \"a\")");
    expect_tree("user lt \"a\"", "(lt user \"a\")");
    expect_tree("user le \"a\"", "(le user \"a\")");
    expect_tree("seq eq 5", "(eq seq 5)");
    expect_tree("seq ne 5", "(ne seq 5)");
    expect_tree("seq gt 5", "(gt seq 5)");
    expect_tree("seq ge 5", "(ge seq 5)");
    expect_tree("seq lt 5", "(lt seq 5)");
    expect_tree("seq le 5", "(le seq 5)");
    expect_tree("seq pr", "(pr seq)");
    expect_tree("reason eq null", "(eq reason null)");
    expect_tree("reason ne null", "(ne reason null)");
    expect_tree("user eq \"\"", "(eq user \"\")");

    /* the node itself, field by field */
    struct store_filter *f = parse("token.key_id sw \"k1\"");
    assert_int_equal(f->op, OP_SW);
    assert_int_equal(f->attr, ATTR_TOKEN_KEY_ID);
    assert_int_equal(f->vtype, VAL_STRING);
    assert_string_equal(f->str, "k1");
    assert_null(f->left);
    assert_null(f->right);
    store_filter_free(f);
    f = parse("seq ge 42");
    assert_int_equal(f->vtype, VAL_NUMBER);
    assert_true(f->num == 42.0);
    assert_null(f->str);
    store_filter_free(f);
    f = parse("audience pr");
    assert_int_equal(f->op, OP_PR);
    assert_int_equal(f->attr, ATTR_AUDIENCE);
    assert_int_equal(f->vtype, VAL_NONE);
    assert_null(f->str);
    store_filter_free(f);
}

static void test_every_attribute(void **state)
{
    (void)state;
    static const char *const names[ATTR_COUNT_] = {
        "id",
        "seq",
        "type",
        "outcome",
        "severity",
        "reason",
        "user",
        "client",
        "system",
        "audience",
        "access_policy",
        "token.id",
        "token.key_id",
        "token.alg",
        "request.client_ip",
        "request.grant_type",
        "scopes.name",
    };
    for (int a = 0; a < ATTR_COUNT_; a++) {
        assert_string_equal(store_attr_names[a], names[a]);
        char filter[128];
        if (a == ATTR_SEQ)
            snprintf(filter, sizeof(filter), "%s eq 1", names[a]);
        else
            snprintf(filter, sizeof(filter), "%s eq \"v\"", names[a]);
        struct store_filter *f = parse(filter);
        assert_int_equal(f->attr, a);
        store_filter_free(f);
        snprintf(filter, sizeof(filter), "%s pr", names[a]);
        f = parse(filter);
        assert_int_equal(f->attr, a);
        assert_int_equal(f->op, OP_PR);
        store_filter_free(f);
    }
}

static void test_spec_example(void **state)
{
    (void)state;
    expect_tree("outcome eq \"denied\" and reason eq \"no_grant\" and user sw \"alice\"",
                "(and (and (eq outcome \"denied\") (eq reason \"no_grant\")) "
                "(sw user \"alice\"))");
}

static void test_precedence(void **state)
{
    (void)state;
    expect_tree("user eq \"1\" or client eq \"2\" and type eq \"3\"",
                "(or (eq user \"1\") (and (eq client \"2\") (eq type \"3\")))");
    expect_tree("user eq \"1\" and client eq \"2\" or type eq \"3\"",
                "(or (and (eq user \"1\") (eq client \"2\")) (eq type \"3\"))");
    expect_tree("user pr or client pr and type pr or system pr",
                "(or (or (pr user) (and (pr client) (pr type))) (pr system))");
    /* not binds tighter than and */
    expect_tree("not (user pr) and client pr", "(and (not (pr user)) (pr client))");
}

static void test_parentheses(void **state)
{
    (void)state;
    expect_tree("(user eq \"1\" or client eq \"2\") and type eq \"3\"",
                "(and (or (eq user \"1\") (eq client \"2\")) (eq type \"3\"))");
    expect_tree("user eq \"1\" and (client eq \"2\" or type eq \"3\")",
                "(and (eq user \"1\") (or (eq client \"2\") (eq type \"3\")))");
    expect_tree("((((user pr))))", "(pr user)");
    expect_tree("(user pr)and(client pr)", "(and (pr user) (pr client))");
    expect_tree("\t ( user pr ) \t", "(pr user)");
}

static void test_not(void **state)
{
    (void)state;
    expect_tree("not (user eq \"x\")", "(not (eq user \"x\"))");
    expect_tree("not(user pr or client pr)", "(not (or (pr user) (pr client)))");
    expect_tree("not (not (user pr))", "(not (not (pr user)))");
    expect_tree("user pr and not (client pr)", "(and (pr user) (not (pr client)))");
    struct store_filter *f = parse("not (user pr)");
    assert_int_equal(f->op, OP_NOT);
    assert_non_null(f->left);
    assert_null(f->right);
    store_filter_free(f);
}

static void test_chains_are_balanced(void **state)
{
    (void)state;
    expect_tree("user pr and client pr and type pr", "(and (and (pr user) (pr client)) (pr type))");
    expect_tree("id pr or seq pr or type pr or user pr",
                "(or (or (pr id) (pr seq)) (or (pr type) (pr user)))");
    /* 100 alternatives: shallow, in order */
    char filter[2048] = "";
    for (int i = 0; i < 100; i++) {
        size_t n = strlen(filter);
        snprintf(filter + n, sizeof(filter) - n, "%suser eq \"u%d\"", i ? " or " : "", i);
    }
    struct store_filter *f = parse(filter);
    assert_int_equal(count(f), 199);
    assert_true(depth(f) <= 8);
    /* leftmost leaf first, rightmost last */
    const struct store_filter *l = f, *r = f;
    while (l->left)
        l = l->left;
    while (r->right)
        r = r->right;
    assert_string_equal(l->str, "u0");
    assert_string_equal(r->str, "u99");
    store_filter_free(f);
}

static void test_keywords_case_insensitive(void **state)
{
    (void)state;
    expect_tree("user EQ \"x\" AND type Eq \"y\"", "(and (eq user \"x\") (eq type \"y\"))");
    expect_tree("user Pr OR client pR", "(or (pr user) (pr client))");
    expect_tree("NOT (seq Gt 1) aNd seq lE 9", "(and (not (gt seq 1)) (le seq 9))");
    expect_tree("reason EQ NULL", "(eq reason null)");
    expect_tree("user CO \"a\" or user SW \"b\" or user EW \"c\"",
                "(or (or (co user \"a\") (sw user \"b\")) (ew user \"c\"))");
    /* attribute names are case-insensitive too (RFC 7644 §3.4.2.2) */
    expect_tree("User eq \"x\"", "(eq user \"x\")");
    expect_tree("TOKEN.Key_ID pr", "(pr token.key_id)");
}

/* ---- values ---- */

static void test_string_escapes(void **state)
{
    (void)state;
    expect_string_value("user eq \"a\\\"b\"", "a\"b");
    expect_string_value("user eq \"a\\\\b\"", "a\\b");
    expect_string_value("user eq \"a\\/b\"", "a/b");
    expect_string_value("user eq \"\\b\\f\\n\\r\\t\"", "\b\f\n\r\t");
    expect_string_value("user eq \"caf\\u00e9\"", "caf\xc3\xa9");
    expect_string_value("user eq \"\\u00E9\\u20ac\"", "\xc3\xa9\xe2\x82\xac");
    expect_string_value("user eq \"\\u0041\\u007f\"", "A\x7f");
    expect_string_value("user eq \"\\u07ff\\u0800\\uffff\"", "\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf");
    expect_string_value("user eq \"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80");
    expect_string_value("user eq \"\\uD800\\uDC00\\uDBFF\\uDFFF\"",
                        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
    /* raw UTF-8 is kept as is */
    expect_string_value("user eq \"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    /* quotes, parentheses and keywords inside a string are only bytes */
    expect_string_value("user eq \"(a) and not (b) or \\\"c\\\"\"", "(a) and not (b) or \"c\"");
}

static void test_numbers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double v;
    } ok[] = {
        {"0", 0},
        {"-0", -0.0},
        {"7", 7},
        {"-1", -1},
        {"1.5", 1.5},
        {"1e3", 1000},
        {"1E+3", 1000},
        {"25e-1", 2.5},
        {"0.125", 0.125},
        {"-2.5E-3", -0.0025},
        {"9007199254740993", 9007199254740992.0},
        {"1e308", 1e308},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char filter[64];
        snprintf(filter, sizeof(filter), "seq gt %s", ok[i].text);
        struct store_filter *f = parse(filter);
        assert_int_equal(f->vtype, VAL_NUMBER);
        assert_true(f->num == ok[i].v);
        store_filter_free(f);
    }
    /* a number ends where a parenthesis starts */
    expect_tree("(seq gt 5)and(seq lt 9)", "(and (gt seq 5) (lt seq 9))");
}

/* ---- errors ---- */

static void test_errors_structure(void **state)
{
    (void)state;
    expect_err("", "column 1: expected an attribute, found end of input");
    expect_err("   \t ", "column 1: expected an attribute, found end of input");
    expect_err_len(NULL, 0, ERR_INVAL, "column 1: expected an attribute, found end of input");
    expect_err("user", "column 5: " OP_ERR ", found end of input");
    expect_err("user equals \"x\"", "column 6: " OP_ERR ", found 'equals'");
    expect_err("user = \"x\"", "column 6: " OP_ERR ", found '='");
    expect_err("user eq", "column 8: " VALUE_ERR ", found end of input");
    expect_err("user eq  ", "column 8: " VALUE_ERR ", found end of input");
    expect_err("user eq alice", "column 9: " VALUE_ERR ", found 'alice'");
    expect_err("user eq 'x'", "column 9: " VALUE_ERR ", found \"'\" (strings take double quotes)");
    expect_err("user eq )", "column 9: " VALUE_ERR ", found ')'");
    expect_err("user eq \"x\" and", "column 16: expected an attribute, found end of input");
    expect_err("user eq \"x\" and or", "column 17: expected an attribute, found 'or'");
    expect_err("and user pr", "column 1: expected an attribute, found 'and'");
    expect_err("EQ \"x\"", "column 1: expected an attribute, found 'EQ'");
    expect_err("user eq \"x\" or null", "column 16: expected an attribute, found 'null'");
    expect_err("foo eq \"x\"",
               "column 1: unknown attribute 'foo' (known: id, seq, type, outcome, severity, "
               "reason, user, client, system, audience, access_policy, token.id, token.key_id, "
               "token.alg, request.client_ip, request.grant_type, scopes.name)");
    expect_err("user pr and token.kid eq \"x\"",
               "column 13: unknown attribute 'token.kid' (known: id, seq, type, outcome, "
               "severity, reason, user, client, system, audience, access_policy, token.id, "
               "token.key_id, token.alg, request.client_ip, request.grant_type, scopes.name)");
    expect_err("\"x\" eq user", "column 1: expected an attribute, found a string");
    expect_err("42 eq user", "column 1: expected an attribute, found '42'");
    expect_err(")", "column 1: expected an attribute, found ')'");
    expect_err("()", "column 2: expected an attribute, found ')'");
    expect_err("(user eq \"x\"", "column 13: expected 'and', 'or' or ')', found end of input");
    expect_err("(user eq \"x\" or type pr xyz)",
               "column 25: expected 'and', 'or' or ')', found 'xyz'");
    expect_err("user eq \"x\")", "column 12: expected 'and', 'or' or end of input, found ')'");
    expect_err("user eq \"x\" xyz", "column 13: expected 'and', 'or' or end of input, found 'xyz'");
    expect_err("user pr user pr", "column 9: expected 'and', 'or' or end of input, found 'user'");
    expect_err("user pr \"x\"", "column 9: expected 'and', 'or' or end of input, found a string");
    expect_err("not user eq \"x\"", "column 5: expected '(' after 'not', found 'user'");
    expect_err("not", "column 4: expected '(' after 'not', found end of input");
    expect_err("not ()", "column 6: expected an attribute, found ')'");
    expect_err("user eq \"x\"\n",
               "column 12: expected 'and', 'or' or end of input, found byte 0x0a");
    expect_err("user eq \"x\" \xc3\xa9",
               "column 13: expected 'and', 'or' or end of input, found byte 0xc3");
    expect_err("user eq (", "column 9: " VALUE_ERR ", found '('");
    expect_err_len(NULL, 5, ERR_INVAL, "column 1: no filter text");
    /* a bad token right after a complete value, 'not' or ')' */
    expect_err("user eq \"x\"\"abc", "column 12: unterminated string");
    expect_err("not \"abc", "column 5: unterminated string");
    expect_err("(user pr)\"abc", "column 10: unterminated string");
    expect_err("(user pr) and 1x", "column 15: invalid number '1x'");
    expect_err("user[type eq \"x\"]", "column 5: " OP_ERR ", found '['");
    /* long words are cut in messages */
    expect_err("user eq \"x\" aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
               "column 13: expected 'and', 'or' or end of input, found "
               "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'");
}

static void test_errors_types(void **state)
{
    (void)state;
    expect_err("seq co \"1\"", "column 5: co needs a string attribute");
    expect_err("seq sw 1", "column 5: sw needs a string attribute");
    expect_err("seq EW 1", "column 5: ew needs a string attribute");
    expect_err("seq eq \"1\"", "column 8: expected a number after 'seq eq', found a string");
    expect_err("seq gt null", "column 8: expected a number after 'seq gt', found 'null'");
    expect_err("seq eq true", "column 8: expected a number after 'seq eq', found 'true'");
    expect_err("user eq 42", "column 9: expected a \"string\" or null after 'user eq', found '42'");
    expect_err("user ne false",
               "column 9: expected a \"string\" or null after 'user ne', found 'false'");
    expect_err("user eq TRUE",
               "column 9: expected a \"string\" or null after 'user eq', found 'TRUE'");
    expect_err("user gt null", "column 9: expected a \"string\" after 'user gt', found 'null'");
    expect_err("user co null", "column 9: expected a \"string\" after 'user co', found 'null'");
    expect_err("user lt 3", "column 9: expected a \"string\" after 'user lt', found '3'");
}

static void test_errors_numbers(void **state)
{
    (void)state;
    expect_err("seq eq 01", "column 8: invalid number '01'");
    expect_err("seq eq 1.", "column 8: invalid number '1.'");
    expect_err("seq eq 1e", "column 8: invalid number '1e'");
    expect_err("seq eq 1e+", "column 8: invalid number '1e+'");
    expect_err("seq eq 0x10", "column 8: invalid number '0x10'");
    expect_err("seq eq 12abc", "column 8: invalid number '12abc'");
    expect_err("seq eq -1-1", "column 8: invalid number '-1-1'");
    expect_err("seq eq .5", "column 8: " VALUE_ERR ", found '.'");
    expect_err("seq eq +1", "column 8: " VALUE_ERR ", found '+'");
    expect_err("seq eq -", "column 8: " VALUE_ERR ", found '-'");
    expect_err("seq eq 1e999", "column 8: number out of range '1e999'");
    expect_err("seq eq -1e309", "column 8: number out of range '-1e309'");
    char big[512] = "seq eq ";
    memset(big + 7, '9', 400);
    expect_err(big, "column 8: number out of range '99999999999999999999999999999999...'");
}

static void test_errors_strings(void **state)
{
    (void)state;
    expect_err("user eq \"abc", "column 9: unterminated string");
    expect_err("user eq \"abc\\", "column 9: unterminated string");
    expect_err("user eq \"abc\\\"", "column 9: unterminated string");
    expect_err("user eq \"a\\x\"", "column 11: invalid escape '\\x' in a string");
    expect_err("user eq \"a\\'\"", "column 11: invalid escape '\\'' in a string");
    expect_err("user eq \"a\\ \"", "column 11: invalid escape in a string");
    expect_err("user eq \"\\u12\"",
               "column 10: invalid \\u escape in a string (expected 4 hex digits)");
    expect_err("user eq \"\\u12g4\"",
               "column 10: invalid \\u escape in a string (expected 4 hex digits)");
    expect_err("user eq \"\\u",
               "column 10: invalid \\u escape in a string (expected 4 hex digits)");
    expect_err("user eq \"\\u0000\"", "column 10: \\u0000 is not allowed in a string");
    expect_err("user eq \"\\ud83d\"", "column 10: unpaired surrogate in a string");
    expect_err("user eq \"\\ud83dx\"", "column 10: unpaired surrogate in a string");
    expect_err("user eq \"\\ud83d\\u0041\"", "column 10: unpaired surrogate in a string");
    expect_err("user eq \"\\ud83d\\ud83d\"", "column 10: unpaired surrogate in a string");
    expect_err("user eq \"\\ude00\"", "column 10: unpaired surrogate in a string");
    expect_err("user eq \"a\tb\"",
               "column 11: control character 0x09 in a string (escape it, e.g. \\n)");
    expect_err("user eq \"a\nb\"",
               "column 11: control character 0x0a in a string (escape it, e.g. \\n)");
    expect_err_len("user eq \"a\0b\"", 13, ERR_INVAL,
                   "column 11: control character 0x00 in a string (escape it, e.g. \\n)");
    expect_err_len("user eq \"a\"\0", 12, ERR_INVAL,
                   "column 12: expected 'and', 'or' or end of input, found byte 0x00");
    /* invalid UTF-8: stray continuation, truncated, overlong, surrogate, > U+10FFFF */
    expect_err("user eq \"\x80\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"a\xc3(\"", "column 11: invalid UTF-8 in a string");
    expect_err("user eq \"\xc0\xaf\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"\xe0\x80\xaf\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"\xed\xa0\x80\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"\xf4\x90\x80\x80\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"\xff\"", "column 10: invalid UTF-8 in a string");
    expect_err("user eq \"\xe2\x82", "column 10: invalid UTF-8 in a string");
}

/* ---- hostile input ---- */

static void test_injection_stays_in_strings(void **state)
{
    (void)state;
    expect_string_value("user eq \"x\\\" or 1=1 --\"", "x\" or 1=1 --");
    expect_string_value("user eq \"a'; DROP TABLE audit_events; --\"",
                        "a'; DROP TABLE audit_events; --");
    expect_string_value("user eq \"%_\\\\\"", "%_\\");
    struct store_filter *f = parse("user eq \"x\\\" or user pr or \\\"\"");
    assert_int_equal(count(f), 1);
    store_filter_free(f);

    expect_err("user eq \"x\" or 1=1", "column 16: expected an attribute, found '1'");
    expect_err("user eq \"a\"; DROP TABLE",
               "column 12: expected 'and', 'or' or end of input, found ';'");
    expect_err("user eq \"a\" --", "column 13: expected 'and', 'or' or end of input, found '-'");
    expect_err("user eq \"a\" /* x */",
               "column 13: expected 'and', 'or' or end of input, found '/'");
    expect_err("user eq \"a\" or \"1\"=\"1\"", "column 16: expected an attribute, found a string");
    expect_err("user eq \"\" or \"\"=\"", "column 15: expected an attribute, found a string");
}

/* ---- caps ---- */

static void test_length_cap(void **state)
{
    (void)state;
    char *s = malloc(SCIM_MAX_LEN + 2);
    assert_non_null(s);
    memcpy(s, "user eq \"", 9);
    memset(s + 9, 'a', SCIM_MAX_LEN - 10);
    s[SCIM_MAX_LEN - 1] = '"';
    struct store_filter *f = parse_len(s, SCIM_MAX_LEN);
    assert_int_equal(strlen(f->str), SCIM_MAX_LEN - 10);
    store_filter_free(f);
    s[SCIM_MAX_LEN - 1] = 'a';
    s[SCIM_MAX_LEN] = '"';
    expect_err_len(s, SCIM_MAX_LEN + 1, ERR_TOOBIG, "column 4097: filter longer than 4096 bytes");
    free(s);
}

static void test_depth_cap(void **state)
{
    (void)state;
    char s[512];
    /* 32 parentheses deep is fine */
    snprintf(s, sizeof(s), "%.*suser pr%.*s", 32, "((((((((((((((((((((((((((((((((((((((((", 32,
             "))))))))))))))))))))))))))))))))))))))))");
    struct store_filter *f = parse(s);
    assert_int_equal(f->op, OP_PR);
    store_filter_free(f);
    /* the 33rd is refused at its column */
    snprintf(s, sizeof(s), "%.*suser pr%.*s", 33, "((((((((((((((((((((((((((((((((((((((((", 33,
             "))))))))))))))))))))))))))))))))))))))))");
    expect_err_len(s, strlen(s), ERR_TOOBIG, "column 33: filter nested deeper than 32 levels");
    /* without closing parentheses: still the cap, not "unbalanced", comes first */
    expect_err_len("((((((((((((((((((((((((((((((((((((((((", 40, ERR_TOOBIG,
                   "column 33: filter nested deeper than 32 levels");

    /* depth counts tree levels: 31 nots over a comparison are 32 levels */
    s[0] = '\0';
    for (int i = 0; i < 31; i++)
        strcat(s, "not(");
    strcat(s, "user pr");
    for (int i = 0; i < 31; i++)
        strcat(s, ")");
    f = parse(s);
    assert_int_equal(depth(f), SCIM_MAX_DEPTH);
    store_filter_free(f);
    s[0] = '\0';
    for (int i = 0; i < 32; i++)
        strcat(s, "not(");
    strcat(s, "user pr");
    for (int i = 0; i < 32; i++)
        strcat(s, ")");
    expect_err_len(s, strlen(s), ERR_TOOBIG, "column 1: filter nested deeper than 32 levels");

    /* ... and an and over 31 levels of not is 33, refused at the 'and' */
    s[0] = '\0';
    for (int i = 0; i < 31; i++)
        strcat(s, "not(");
    strcat(s, "user pr");
    for (int i = 0; i < 31; i++)
        strcat(s, ")");
    strcat(s, " and type pr");
    expect_err_len(s, strlen(s), ERR_TOOBIG, "column 164: filter nested deeper than 32 levels");

    /* a long and/or chain is not deep */
    char chain[4096] = "";
    for (int i = 0; i < 120; i++)
        strcat(chain, i ? " and user pr" : "user pr");
    f = parse(chain);
    assert_true(depth(f) <= 8);
    store_filter_free(f);
}

static void test_node_cap(void **state)
{
    (void)state;
    char s[4096] = "";
    /* 128 comparisons and 127 ors: 255 nodes; one not more: 256 */
    for (int i = 0; i < 128; i++)
        strcat(s, i ? " or id pr" : "id pr");
    struct store_filter *f = parse(s);
    assert_int_equal(count(f), 255);
    store_filter_free(f);
    char t[4096];
    snprintf(t, sizeof(t), "not (%s)", s);
    f = parse(t);
    assert_int_equal(count(f), SCIM_MAX_NODES);
    store_filter_free(f);
    /* the 257th node is the 129th comparison, at column 1+128*9 */
    strcat(s, " or id pr");
    expect_err_len(s, strlen(s), ERR_TOOBIG,
                   "column 1153: filter too complex (more than 256 nodes)");
    /* or the 128th 'or' after a not */
    snprintf(t, sizeof(t), "not (id pr) or %s", s);
    expect_err_len(t, strlen(t), ERR_TOOBIG,
                   "column 1156: filter too complex (more than 256 nodes)");
}

/* ---- store/query.c ---- */

static void test_filter_free(void **state)
{
    (void)state;
    assert_null(store_filter_free(NULL));
    /* a degenerate tree far deeper than any parse: freed without recursion */
    struct store_filter *f = NULL;
    for (int i = 0; i < 200000; i++) {
        struct store_filter *n = calloc(1, sizeof(*n));
        assert_non_null(n);
        n->op = i % 2 ? OP_NOT : OP_AND;
        n->left = f;
        if (n->op == OP_AND) {
            n->right = calloc(1, sizeof(*n));
            assert_non_null(n->right);
            n->right->vtype = VAL_STRING;
            n->right->str = strdup("x");
        }
        f = n;
    }
    assert_null(store_filter_free(f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_operators),
        cmocka_unit_test(test_every_attribute),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_parentheses),
        cmocka_unit_test(test_not),
        cmocka_unit_test(test_chains_are_balanced),
        cmocka_unit_test(test_keywords_case_insensitive),
        cmocka_unit_test(test_string_escapes),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_errors_structure),
        cmocka_unit_test(test_errors_types),
        cmocka_unit_test(test_errors_numbers),
        cmocka_unit_test(test_errors_strings),
        cmocka_unit_test(test_injection_stays_in_strings),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_depth_cap),
        cmocka_unit_test(test_node_cap),
        cmocka_unit_test(test_filter_free),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
