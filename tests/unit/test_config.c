/* tests/unit/test_config.c — config/: YAML and JSON into jansson trees (scalar
 * typing, lines, the refusals and caps that keep hostile input harmless) and the
 * `serve` settings (defaults, file keys, errors that name key and line, derived
 * values). Files live in a fresh mkdtemp directory removed at the end. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "config/yaml.h"
#include "core/buf.h"

static char tmpdir[64];

static struct config_doc *parse_ok(const char *text)
{
    struct config_doc *doc = NULL;
    struct err_detail d = {{0}};
    int r = config_doc_parse(text, strlen(text), &doc, &d);
    if (r != 0)
        fail_msg("parse of <<%s>> failed: %d %s", text, r, d.msg);
    assert_non_null(doc);
    return doc;
}

/* Parses `text`, expects `err` and a message containing `needle`. */
static void parse_fails(const char *text, int err, const char *needle)
{
    struct config_doc *doc = (struct config_doc *)0x1;
    struct err_detail d = {{0}};
    int r = config_doc_parse(text, strlen(text), &doc, &d);
    if (r != err || !strstr(d.msg, needle))
        fail_msg("<<%s>>: got %d '%s', want %d with '%s'", text, r, d.msg, err, needle);
    assert_ptr_equal(doc, (struct config_doc *)0x1); /* untouched on failure */
}

static void write_file(const char *name, const char *text, char *path, size_t size)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static void test_scalar_typing(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *json;
    } cases[] = {
        {"null", "null"},
        {"Null", "null"},
        {"NULL", "null"},
        {"~", "null"},
        {"", "null"},
        {"true", "true"},
        {"True", "true"},
        {"TRUE", "true"},
        {"false", "false"},
        {"False", "false"},
        {"FALSE", "false"},
        {"\"true\"", "\"true\""},
        {"'false'", "\"false\""},
        {"\"null\"", "\"null\""},
        {"'~'", "\"~\""},
        {"yes", "\"yes\""},
        {"no", "\"no\""},
        {"on", "\"on\""},
        {"tRUE", "\"tRUE\""},
        {"0", "0"},
        {"42", "42"},
        {"-17", "-17"},
        {"+3", "3"},
        {"0123", "123"},
        {"0x1F", "31"},
        {"0o17", "15"},
        {"0o8", "\"0o8\""},
        {"\"42\"", "\"42\""},
        {"'42'", "\"42\""},
        {"1.5", "1.5"},
        {"-.5", "-0.5"},
        {"1.", "1.0"},
        {"1e3", "1000.0"},
        {"2.5E-1", "0.25"},
        {"1_000", "\"1_000\""},
        {"300s", "\"300s\""},
        {"12:30", "\"12:30\""},
        {"1.2.3", "\"1.2.3\""},
        {"-.nan", "\"-.nan\""},
        {"hello world", "\"hello world\""},
        {"\"\"", "\"\""},
        {"'it''s'", "\"it's\""},
        {"\"a\\tb\"", "\"a\\tb\""},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"https://a.example/x", "\"https://a.example/x\""},
        {"|\n  true\n", "\"true\\n\""},
        {">-\n  1\n  2\n", "\"1 2\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[128];
        snprintf(text, sizeof(text), "v: %s\n", cases[i].yaml);
        struct config_doc *doc = parse_ok(text);
        json_t *want = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
        assert_non_null(want);
        json_t *got = json_object_get(config_doc_root(doc), "v");
        if (!got || !json_equal(got, want) || json_typeof(got) != json_typeof(want)) {
            char *s = got ? json_dumps(got, JSON_ENCODE_ANY) : NULL;
            fail_msg("v: %s -> %s, want %s", cases[i].yaml, s ? s : "(none)", cases[i].json);
        }
        json_decref(want);
        config_doc_free(doc);
    }
}

static void test_scalar_refusals(void **state)
{
    (void)state;
    parse_fails("v: .inf\n", ERR_INVAL, "line 1, column 4: infinite and NaN");
    parse_fails("v: -.Inf\n", ERR_INVAL, "infinite and NaN");
    parse_fails("v: .NaN\n", ERR_INVAL, "infinite and NaN");
    parse_fails("v: 1e999\n", ERR_INVAL, "number out of range");
    parse_fails("a: 1\nv: 9223372036854775808\n", ERR_INVAL, "line 2, column 4: integer out");
    parse_fails("v: 0xFFFFFFFFFFFFFFFFF\n", ERR_INVAL, "integer out of range");
    parse_fails("v: \"a\\0b\"\n", ERR_INVAL, "line 1, column 4: strings must be UTF-8");
    parse_fails("\"k\\0\": 1\n", ERR_INVAL, "without NUL");
    parse_fails("v: \xff\n", ERR_INVAL, "line 1, column 4: invalid leading UTF-8 octet");
    parse_fails("v: !!str 1\n", ERR_INVAL, "line 1, column 4: tags are not supported");
    parse_fails("v: !custom {}\n", ERR_INVAL, "tags are not supported");
}

static void test_nested(void **state)
{
    (void)state;
    struct config_doc *doc = parse_ok("settings:\n"
                                      "  default_lifetime: 300s\n"
                                      "systems:\n"
                                      "  - id: github\n"
                                      "    scopes:\n"
                                      "      - {name: repo:read, enabled: true}\n"
                                      "      - name: repo:write\n"
                                      "        enabled: false\n"
                                      "    resource_urls: [https://mcp.example/mcp]\n"
                                      "empty_map: {}\n"
                                      "empty_seq: []\n");
    json_t *want = json_loads("{\"settings\": {\"default_lifetime\": \"300s\"},"
                              " \"systems\": [{\"id\": \"github\", \"scopes\": ["
                              "  {\"name\": \"repo:read\", \"enabled\": true},"
                              "  {\"name\": \"repo:write\", \"enabled\": false}],"
                              " \"resource_urls\": [\"https://mcp.example/mcp\"]}],"
                              " \"empty_map\": {}, \"empty_seq\": []}",
                              0, NULL);
    assert_non_null(want);
    assert_true(json_equal(config_doc_root(doc), want));
    json_decref(want);
    config_doc_free(doc);
}

static void test_json_input(void **state)
{
    (void)state;
    struct config_doc *doc = parse_ok("{\"a\": [1, 2, {\"b\": null}], \"c\": \"true\", "
                                      "\"d\": 1.5, \"e\": false, \"f\": -3}");
    json_t *want = json_loads("{\"a\": [1, 2, {\"b\": null}], \"c\": \"true\", \"d\": 1.5, "
                              "\"e\": false, \"f\": -3}",
                              0, NULL);
    assert_true(json_equal(config_doc_root(doc), want));
    json_decref(want);
    config_doc_free(doc);

    doc = parse_ok("{\"compact\":[1,\"x\"],\"n\":{}}");
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(config_doc_root(doc), "compact"), 0)), 1);
    config_doc_free(doc);
}

static void test_lines_block(void **state)
{
    (void)state;
    struct config_doc *doc = parse_ok("# comment\n"   /* 1 */
                                      "a: 1\n"        /* 2 */
                                      "b:\n"          /* 3 */
                                      "  c: hello\n"  /* 4 */
                                      "\n"            /* 5 */
                                      "  d: true\n"   /* 6 */
                                      "list:\n"       /* 7 */
                                      "  - x\n"       /* 8 */
                                      "  - k: ~\n"    /* 9 */
                                      "    m: [1,\n"  /* 10 */
                                      "        2]\n"  /* 11 */
                                      "text: |\n"     /* 12 */
                                      "  one\n"       /* 13 */
                                      "  two\n"       /* 14 */
                                      "last: 'q'\n"); /* 15 */
    json_t *root = config_doc_root(doc);
    json_t *b = json_object_get(root, "b");
    json_t *list = json_object_get(root, "list");
    json_t *item = json_array_get(list, 1);
    json_t *m = json_object_get(item, "m");

    assert_int_equal(config_doc_line(doc, root), 2);
    assert_int_equal(config_doc_key_line(doc, root, "a"), 2);
    assert_int_equal(config_doc_line(doc, json_object_get(root, "a")), 2);
    assert_int_equal(config_doc_key_line(doc, root, "b"), 3);
    assert_int_equal(config_doc_line(doc, b), 3); /* a member's value: its key's line */
    assert_int_equal(config_doc_key_line(doc, b, "c"), 4);
    assert_int_equal(config_doc_line(doc, json_object_get(b, "c")), 4);
    assert_int_equal(config_doc_key_line(doc, b, "d"), 6);
    assert_int_equal(config_doc_line(doc, json_object_get(b, "d")), 0); /* shared true */
    assert_int_equal(config_doc_key_line(doc, root, "list"), 7);
    assert_int_equal(config_doc_line(doc, json_array_get(list, 0)), 8);
    assert_int_equal(config_doc_line(doc, item), 9);
    assert_int_equal(config_doc_key_line(doc, item, "k"), 9);
    assert_int_equal(config_doc_key_line(doc, item, "m"), 10);
    assert_int_equal(config_doc_line(doc, json_array_get(m, 0)), 10);
    assert_int_equal(config_doc_line(doc, json_array_get(m, 1)), 11);
    assert_int_equal(config_doc_key_line(doc, root, "text"), 12);
    assert_int_equal(config_doc_key_line(doc, root, "last"), 15);

    assert_int_equal(config_doc_key_line(doc, root, "nope"), 0);
    assert_int_equal(config_doc_key_line(doc, b, "a"), 0); /* keys belong to their object */
    assert_int_equal(config_doc_line(doc, NULL), 0);
    assert_int_equal(config_doc_key_line(NULL, root, "a"), 0);
    config_doc_free(doc);
}

static void test_lines_flow(void **state)
{
    (void)state;
    struct config_doc *doc = parse_ok("{\n"                       /* 1 */
                                      "  \"a\": 1,\n"             /* 2 */
                                      "  \"b\": {\"c\": [\n"      /* 3 */
                                      "     true,\n"              /* 4 */
                                      "     \"s\"], \"d\": 2},\n" /* 5 */
                                      "  e: {f: null,\n"          /* 6 */
                                      "      g: x}\n"             /* 7 */
                                      "}\n");
    json_t *root = config_doc_root(doc);
    json_t *b = json_object_get(root, "b");
    json_t *e = json_object_get(root, "e");
    assert_int_equal(config_doc_line(doc, root), 1);
    assert_int_equal(config_doc_key_line(doc, root, "a"), 2);
    assert_int_equal(config_doc_key_line(doc, root, "b"), 3);
    assert_int_equal(config_doc_key_line(doc, b, "c"), 3);
    assert_int_equal(config_doc_line(doc, json_array_get(json_object_get(b, "c"), 1)), 5);
    assert_int_equal(config_doc_key_line(doc, b, "d"), 5);
    assert_int_equal(config_doc_key_line(doc, root, "e"), 6);
    assert_int_equal(config_doc_key_line(doc, e, "f"), 6);
    assert_int_equal(config_doc_key_line(doc, e, "g"), 7);
    assert_int_equal(config_doc_line(doc, json_object_get(e, "g")), 7);
    config_doc_free(doc);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    parse_fails("a: 1\nb:\n  c: 1\n  c: 2\n", ERR_INVAL, "line 4, column 3: duplicate key 'c'");
    parse_fails("{\"x\": 1,\n \"x\": 2}", ERR_INVAL, "line 2, column 2: duplicate key 'x'");
    parse_fails("a: 1\n'a': 2\n", ERR_INVAL, "line 2, column 1: duplicate key 'a'");
    /* the same key in different objects is fine */
    config_doc_free(parse_ok("a: {k: 1}\nb: {k: 2}\n"));
    /* a long key is cut in the message, never the message itself */
    char key[251], text[600];
    memset(key, 'k', 250);
    key[250] = '\0';
    snprintf(text, sizeof(text), "%s: 1\n%s: 2\n", key, key);
    parse_fails(text, ERR_INVAL, "duplicate key 'kkkkkkkkkk");
    parse_fails(text, ERR_INVAL, "kkk...'");
    /* cut inside a multi-byte character: the whole character goes */
    snprintf(text, sizeof(text), "%.59s\xc3\xa9xx: 1\n%.59s\xc3\xa9xx: 2\n", key, key);
    parse_fails(text, ERR_INVAL, "kkk...'");
}

static void test_anchors_tags_documents(void **state)
{
    (void)state;
    parse_fails("a: &x 1\nb: *x\n", ERR_INVAL,
                "line 1, column 4: anchors and aliases are not supported");
    parse_fails("a: *x\n", ERR_INVAL, "anchors and aliases are not supported");
    parse_fails("base: &b {k: 1}\nother:\n  <<: *b\n", ERR_INVAL, "anchors and aliases");
    parse_fails("a: 1\n---\nb: 2\n", ERR_INVAL, "line 2, column 1: more than one document");
    parse_fails("? [a, b]\n: 1\n", ERR_INVAL, "mapping keys must be scalars");
    parse_fails("{{a: 1}: 2}", ERR_INVAL, "mapping keys must be scalars");
    /* one explicit document, with its end marker, is fine */
    config_doc_free(parse_ok("%YAML 1.2\n---\na: 1\n...\n"));
}

static void test_syntax_errors(void **state)
{
    (void)state;
    parse_fails("a: 1\nb:\n\tc: 2\n", ERR_INVAL, "line 3, column 1: found character that cannot");
    parse_fails("a:\n  b: 1\n c: 2\n", ERR_INVAL, "line 3, column 2:");
    parse_fails("a: [1, 2\nb: 3\n", ERR_INVAL, "line ");
    parse_fails("a: b: c\n", ERR_INVAL, "line 1, column 5: mapping values are not allowed");
    parse_fails("a: \"unterminated\n", ERR_INVAL, "line ");
    parse_fails("a: 1\n\x01\n", ERR_INVAL, "line 2, column 1: control characters");
}

static void test_empty_and_other_roots(void **state)
{
    (void)state;
    static const char *empties[] = {"", "\n", "# nothing here\n", "---\n", "---\n...\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        struct config_doc *doc = parse_ok(empties[i]);
        assert_true(json_is_object(config_doc_root(doc)));
        assert_int_equal(json_object_size(config_doc_root(doc)), 0);
        config_doc_free(doc);
    }
    struct config_doc *doc = NULL;
    assert_int_equal(config_doc_parse(NULL, 0, &doc, NULL), 0);
    assert_true(json_is_object(config_doc_root(doc)));
    config_doc_free(doc);

    doc = parse_ok("- a\n- 2\n");
    assert_true(json_is_array(config_doc_root(doc)));
    config_doc_free(doc);
    doc = parse_ok("just text");
    assert_string_equal(json_string_value(config_doc_root(doc)), "just text");
    config_doc_free(doc);
    doc = parse_ok("~");
    assert_true(json_is_null(config_doc_root(doc)));
    config_doc_free(doc);
    assert_null(config_doc_free(NULL));
    assert_null(config_doc_root(NULL));
}

static char *nested(int depth, const char *open, const char *close)
{
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < depth; i++)
        assert_int_equal(buf_puts(&b, open), 0);
    for (int i = 0; i < depth; i++)
        assert_int_equal(buf_puts(&b, close), 0);
    return buf_take(&b, NULL);
}

static void test_caps(void **state)
{
    (void)state;
    char *ok = nested(64, "[", "]");
    char *deep = nested(65, "[", "]");
    char *deep_map = nested(65, "{a: ", "}");
    config_doc_free(parse_ok(ok));
    parse_fails(deep, ERR_TOOBIG, "line 1, column 65: nesting deeper than 64 levels");
    parse_fails(deep_map, ERR_TOOBIG, "nesting deeper than 64");
    free(ok);
    free(deep);
    free(deep_map);

    /* block nesting reports the line where the 65th level starts */
    struct buf b;
    buf_init(&b, 0);
    for (int i = 0; i < 65; i++)
        assert_int_equal(buf_printf(&b, "%*sk:\n", i, ""), 0);
    assert_int_equal(buf_printf(&b, "%*sv\n", 65, ""), 0);
    char *text = buf_take(&b, NULL);
    parse_fails(text, ERR_TOOBIG, "line 65, column 65: nesting deeper");
    free(text);

    /* 200000 nodes in all pass, one more does not */
    buf_init(&b, 0);
    assert_int_equal(buf_puts(&b, "["), 0);
    for (int i = 0; i < 199999; i++)
        assert_int_equal(buf_puts(&b, i ? ",0" : "0"), 0);
    assert_int_equal(buf_puts(&b, "]"), 0);
    text = buf_take(&b, NULL);
    struct config_doc *doc = parse_ok(text);
    assert_int_equal(json_array_size(config_doc_root(doc)), 199999);
    config_doc_free(doc);
    size_t n = strlen(text);
    char *more = realloc(text, n + 3);
    assert_non_null(more);
    text = more;
    memcpy(text + n - 1, ",0]", 4); /* one more element: 200001 nodes with the array */
    parse_fails(text, ERR_TOOBIG, "more than 200000 nodes");
    free(text);

    /* bytes: refused before any parsing */
    size_t big = CONFIG_MAX_BYTES + 1;
    char *huge = malloc(big);
    assert_non_null(huge);
    memset(huge, ' ', big);
    doc = NULL;
    struct err_detail d;
    assert_int_equal(config_doc_parse(huge, big, &doc, &d), ERR_TOOBIG);
    assert_null(doc);
    assert_int_equal(config_doc_parse(huge, CONFIG_MAX_BYTES, &doc, &d), 0);
    config_doc_free(doc);
    free(huge);
}

static void test_doc_load(void **state)
{
    (void)state;
    char path[256];
    struct config_doc *doc = NULL;
    struct err_detail d;

    snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
    assert_int_equal(config_doc_load(path, &doc, &d), ERR_NOTFOUND);
    assert_non_null(strstr(d.msg, "missing.yaml: no such file"));
    assert_null(doc);

    assert_int_equal(config_doc_load(tmpdir, &doc, &d), ERR_IO); /* a directory */
    assert_non_null(strstr(d.msg, tmpdir));

    write_file("bad.yaml", "a: 1\na: 2\n", path, sizeof(path));
    assert_int_equal(config_doc_load(path, &doc, &d), ERR_INVAL);
    char want[400];
    snprintf(want, sizeof(want), "%s: line 2, column 1: duplicate key 'a'", path);
    assert_string_equal(d.msg, want);

    write_file("good.json", "{\"a\": [1, 2, {\"b\": null}]}\n", path, sizeof(path));
    assert_int_equal(config_doc_load(path, &doc, &d), 0);
    assert_int_equal(json_array_size(json_object_get(config_doc_root(doc), "a")), 3);
    config_doc_free(doc);

    snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fseek(f, CONFIG_MAX_BYTES, SEEK_SET), 0);
    assert_int_equal(fputc('\n', f), '\n');
    assert_int_equal(fclose(f), 0);
    doc = NULL;
    assert_int_equal(config_doc_load(path, &doc, &d), ERR_TOOBIG);
    assert_null(doc);
}

static void test_serve_defaults(void **state)
{
    (void)state;
    struct serve_config c;
    config_serve_defaults(&c);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.listen_port, 8080);
    assert_string_equal(c.data_dir, "./var");
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_int_equal(c.oauth_body_max, 65536);
    assert_int_equal(c.admin_body_max, 1048576);
    assert_int_equal(c.dev, 0);
    assert_null(c.issuer);
    assert_null(c.database);
    assert_null(c.admin_token_file);
    assert_null(c.kek_file);
    assert_null(c.policy_file);
    assert_null(c.node);
    config_serve_done(&c);
    assert_null(c.listen_host);
    config_serve_done(&c); /* twice is harmless */
}

static void test_serve_file(void **state)
{
    (void)state;
    char path[256];
    struct err_detail d;
    struct serve_config c;
    config_serve_defaults(&c);
    write_file("serve.yaml",
               "# mcpauth serve\n"
               "listen: \"[::1]:9443\"\n"
               "issuer: https://auth.example.com\n"
               "data_dir: /srv/mcpauth\n"
               "policy_file: policy.yaml\n"
               "dev: true\n"
               "threads: 16\n"
               "log_level: debug\n"
               "node: node-a\n"
               "limits: {oauth_body: 2048, admin_body: 4194304}\n",
               path, sizeof(path));
    assert_int_equal(config_serve_load(path, &c, &d), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 9443);
    assert_string_equal(c.issuer, "https://auth.example.com");
    assert_string_equal(c.data_dir, "/srv/mcpauth");
    assert_string_equal(c.policy_file, "policy.yaml");
    assert_int_equal(c.dev, 1);
    assert_int_equal(c.threads, 16);
    assert_int_equal(c.log_level, LOG_DEBUG);
    assert_string_equal(c.node, "node-a");
    assert_int_equal(c.oauth_body_max, 2048);
    assert_int_equal(c.admin_body_max, 4194304);

    /* a second file goes over the first; keys it does not name stay */
    write_file("over.json", "{\"threads\": 2, \"issuer\": null, \"listen\": \"0.0.0.0:80\"}", path,
               sizeof(path));
    assert_int_equal(config_serve_load(path, &c, &d), 0);
    assert_int_equal(c.threads, 2);
    assert_null(c.issuer);
    assert_string_equal(c.listen_host, "0.0.0.0");
    assert_int_equal(c.listen_port, 80);
    assert_string_equal(c.data_dir, "/srv/mcpauth");

    /* an empty file changes nothing */
    write_file("empty.yaml", "", path, sizeof(path));
    assert_int_equal(config_serve_load(path, &c, &d), 0);
    assert_int_equal(c.threads, 2);
    config_serve_done(&c);
}

/* Loads `text` as a serve config over the defaults and expects ERR_INVAL with
 * exactly "PATH: `want`"; the config must come back unchanged. */
static void serve_fails(const char *text, const char *want)
{
    char path[256], full[600];
    struct err_detail d = {{0}};
    struct serve_config c;
    config_serve_defaults(&c);
    write_file("fail.yaml", text, path, sizeof(path));
    int r = config_serve_load(path, &c, &d);
    snprintf(full, sizeof(full), "%s: %s", path, want);
    if (r != ERR_INVAL || strcmp(d.msg, full) != 0)
        fail_msg("<<%s>>: got %d '%s', want '%s'", text, r, d.msg, full);
    assert_string_equal(c.listen_host, "127.0.0.1");
    assert_int_equal(c.threads, 4);
    assert_int_equal(c.listen_port, 8080);
    config_serve_done(&c);
}

static void test_serve_errors(void **state)
{
    (void)state;
    serve_fails("threads: 8\nlisten: 127.0.0.1:9000\n\nlistne: x\n",
                "line 4: unknown key 'listne'");
    serve_fails("threads: 8\nthreads: 9\n", "line 2, column 1: duplicate key 'threads'");
    serve_fails("threads: 0\n", "line 1: threads: expected an integer from 1 to 256");
    serve_fails("a_comment_line: 1\n", "line 1: unknown key 'a_comment_line'");
    serve_fails("\nthreads: 257\n", "line 2: threads: expected an integer from 1 to 256");
    serve_fails("threads: \"4\"\n", "line 1: threads: expected an integer from 1 to 256");
    serve_fails("threads: 4.0\n", "line 1: threads: expected an integer from 1 to 256");
    serve_fails("threads: 8\nlisten: localhost\n",
                "line 2: listen: expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535");
    serve_fails("listen: 127.0.0.1:0\n", "line 1: listen: expected HOST:PORT or [IPV6]:PORT "
                                         "with a port from 1 to 65535");
    serve_fails("listen: 127.0.0.1:65536\n", "line 1: listen: expected HOST:PORT or "
                                             "[IPV6]:PORT with a port from 1 to 65535");
    serve_fails("listen: ::1:8080\n", "line 1: listen: expected HOST:PORT or [IPV6]:PORT "
                                      "with a port from 1 to 65535");
    serve_fails("listen: 8080\n", "line 1: listen: expected HOST:PORT or [IPV6]:PORT with a "
                                  "port from 1 to 65535");
    serve_fails("issuer: auth.example.com\n",
                "line 1: issuer: expected an https:// or http:// URL without query or fragment");
    serve_fails("log_level: verbose\n",
                "line 1: log_level: expected one of debug, info, warn, error");
    serve_fails("dev: yes\n", "line 1: dev: expected true or false");
    serve_fails("data_dir: ~\n", "line 1: data_dir: expected a non-empty string");
    serve_fails("database: postgres://x\n", "line 1: database: expected sqlite:PATH");
    serve_fails("limits:\n  oauth_body: 1023\n",
                "line 2: limits.oauth_body: expected an integer from 1024 to 67108864 (bytes)");
    serve_fails("limits:\n  admin_body: 1\n  other: 2\n",
                "line 2: limits.admin_body: expected an integer from 1024 to 67108864 (bytes)");
    serve_fails("limits: {oauth_body: 2048,\n  other: 2}\n", "line 2: unknown key 'limits.other'");
    serve_fails("limits: 5\n", "line 1: limits: expected a mapping (oauth_body, admin_body)");
    serve_fails("- listen\n", "line 1: expected a mapping of settings at the top level");
    serve_fails("a:\n\tb: 1\n", "line 2, column 1: found character that cannot start any token "
                                "(while scanning for the next token at line 2)");

    struct serve_config c;
    struct err_detail d;
    config_serve_defaults(&c);
    assert_int_equal(config_serve_load("/nonexistent/mcpauth.yaml", &c, &d), ERR_NOTFOUND);
    assert_string_equal(d.msg, "/nonexistent/mcpauth.yaml: no such file");
    config_serve_done(&c);
}

static void test_serve_set(void **state)
{
    (void)state;
    struct serve_config c;
    struct err_detail d;
    config_serve_defaults(&c);
    assert_int_equal(config_serve_set_listen(&c, "[::1]:8443", &d), 0);
    assert_string_equal(c.listen_host, "::1");
    assert_int_equal(c.listen_port, 8443);
    assert_int_equal(config_serve_set_listen(&c, "localhost:1", &d), 0);
    assert_string_equal(c.listen_host, "localhost");
    assert_int_equal(c.listen_port, 1);
    static const char *bad[] = {
        "",          ":80",      "host:",        "host:x",    "host:-1", "host:123456",
        "[::1]8080", "[::1]:",   "[]:80",        "[x]:80",    "a b:80",  "1.2.3.4:80:1",
        "[::1:8080", "host:+80", "[1.2.3.4]:80", "host:0080x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (config_serve_set_listen(&c, bad[i], &d) != ERR_INVAL)
            fail_msg("listen '%s' accepted", bad[i]);
        assert_string_equal(c.listen_host, "localhost"); /* untouched */
        assert_int_equal(c.listen_port, 1);
    }
    assert_non_null(strstr(d.msg, "listen: expected HOST:PORT"));

    assert_int_equal(config_set_str(&c.data_dir, "/tmp/x"), 0);
    assert_string_equal(c.data_dir, "/tmp/x");
    assert_int_equal(config_set_str(&c.policy_file, NULL), 0);
    assert_null(c.policy_file);
    config_serve_done(&c);
}

static void test_serve_finish(void **state)
{
    (void)state;
    struct serve_config c;
    config_serve_defaults(&c);
    assert_int_equal(config_serve_finish(&c), 0);
    assert_string_equal(c.issuer, "http://127.0.0.1:8080");
    assert_string_equal(c.database, "sqlite:./var/mcpauth.db");
    assert_string_equal(c.admin_token_file, "./var/admin.token");
    assert_string_equal(c.kek_file, "./var/kek");
    assert_non_null(c.node);
    assert_true(strlen(c.node) > 0);
    assert_null(c.policy_file);
    config_serve_done(&c);

    /* from a file: IPv6 gets its brackets back, a trailing slash is not doubled */
    char path[256], data[256], want[300];
    struct err_detail d;
    snprintf(data, sizeof(data), "%s/data/", tmpdir);
    char text[512];
    snprintf(text, sizeof(text), "listen: '[::1]:9000'\ndata_dir: %s\nkek_file: /k\n", data);
    write_file("finish.yaml", text, path, sizeof(path));
    config_serve_defaults(&c);
    assert_int_equal(config_serve_load(path, &c, &d), 0);
    assert_int_equal(config_serve_finish(&c), 0);
    assert_string_equal(c.issuer, "http://[::1]:9000");
    snprintf(want, sizeof(want), "sqlite:%smcpauth.db", data);
    assert_string_equal(c.database, want);
    snprintf(want, sizeof(want), "%sadmin.token", data);
    assert_string_equal(c.admin_token_file, want);
    assert_string_equal(c.kek_file, "/k"); /* set values are kept */
    config_serve_done(&c);

    /* set values win over derived ones */
    config_serve_defaults(&c);
    assert_int_equal(config_set_str(&c.issuer, "https://auth.example.com"), 0);
    assert_int_equal(config_set_str(&c.database, "sqlite:/db"), 0);
    assert_int_equal(config_set_str(&c.node, "n1"), 0);
    assert_int_equal(config_serve_finish(&c), 0);
    assert_string_equal(c.issuer, "https://auth.example.com");
    assert_string_equal(c.database, "sqlite:/db");
    assert_string_equal(c.node, "n1");
    config_serve_done(&c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_config.XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *names[] = {"bad.yaml",  "good.json",  "big.yaml",  "serve.yaml",
                                  "over.json", "empty.yaml", "fail.yaml", "finish.yaml"};
    char path[256];
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    return rmdir(tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalar_typing),  cmocka_unit_test(test_scalar_refusals),
        cmocka_unit_test(test_nested),         cmocka_unit_test(test_json_input),
        cmocka_unit_test(test_lines_block),    cmocka_unit_test(test_lines_flow),
        cmocka_unit_test(test_duplicate_key),  cmocka_unit_test(test_anchors_tags_documents),
        cmocka_unit_test(test_syntax_errors),  cmocka_unit_test(test_empty_and_other_roots),
        cmocka_unit_test(test_caps),           cmocka_unit_test(test_doc_load),
        cmocka_unit_test(test_serve_defaults), cmocka_unit_test(test_serve_file),
        cmocka_unit_test(test_serve_errors),   cmocka_unit_test(test_serve_set),
        cmocka_unit_test(test_serve_finish),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
