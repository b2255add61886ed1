/* tests/unit/test_encode.c — audit/encode: every encoding of a granted (partial)
 * token request, a denied one and an admin.change, against outputs written by
 * hand from the standards (RFC 4180, CEF, RFC 5424, OCSF 1.3); hostile values
 * in each format's special characters (CEF header vs extension escaping, SD
 * PARAM-VALUE escaping, CSV quoting and formula injection); null and absent
 * fields; the format table; and a buffer cap that leaves the buffer as it was.
 * OCSF objects are large, so they are parsed back and compared field by field.
 * Pure functions: no files, no network. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "audit/encode.h"

#ifndef MCPAUTH_VERSION
#define MCPAUTH_VERSION "0.0.0"
#endif

/* 2026-11-22T09:14:03Z is 1795338843 s after the epoch (date -u -d ... +%s). */
#define T1    "2026-11-22T09:14:03.512384Z"
#define T1_MS "1795338843512"

static const char GRANTED[] =
    "{\"id\":\"019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f\",\"seq\":1042,\"time\":\"" T1 "\","
    "\"type\":\"token.request\",\"outcome\":\"granted\",\"severity\":\"info\",\"reason\":null,"
    "\"status_detail\":\"Scope not enabled: repo:write\",\"user\":\"alice@example.com\","
    "\"groups\":[\"engineering\",\"admins\"],\"client\":\"desktop-agent\",\"system\":\"github\","
    "\"audience\":\"https://auth.github.example/\",\"access_policy\":\"desktop-github\","
    "\"scopes\":[{\"name\":\"repo:read\",\"outcome\":\"granted\"},"
    "{\"name\":\"repo:write\",\"outcome\":\"denied\",\"reason\":\"scope_not_enabled\"}],"
    "\"token\":{\"id\":\"019a4f6e-2b1d-7aa0-b0c1-d2e3f4a5b6c7\",\"type\":\"id-jag\","
    "\"key_id\":\"es256-2026-11-22\",\"alg\":\"ES256\",\"lifetime\":300,"
    "\"expires_at\":\"2026-11-22T09:19:03Z\"},"
    "\"request\":{\"id\":\"019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e10\",\"endpoint\":\"token\","
    "\"grant_type\":\"urn:ietf:params:oauth:grant-type:token-exchange\","
    "\"requested_token_type\":\"urn:ietf:params:oauth:token-type:id-jag\","
    "\"target_url\":\"https://mcp.github.example/mcp\",\"client_ip\":\"127.0.0.1\","
    "\"user_agent\":\"node\",\"subject_token_sha256\":\"9f2c\","
    "\"subject_issuer\":\"https://idp.example.com\"},"
    "\"node\":\"host-a\",\"prev_hash\":\"PREVHASH\",\"hash\":\"THISHASH\"}";

/* Client credentials (no user), no access policy: every token field null. */
static const char DENIED[] =
    "{\"id\":\"019a4f6e-3000-7000-8000-000000000007\",\"seq\":7,\"time\":\"" T1 "\","
    "\"type\":\"token.request\",\"outcome\":\"denied\",\"severity\":\"warning\","
    "\"reason\":\"no_access_policy\","
    "\"status_detail\":\"No active access policy connects desktop-agent and github\","
    "\"user\":null,\"groups\":null,\"client\":\"desktop-agent\",\"system\":\"github\","
    "\"audience\":\"https://auth.github.example/\",\"access_policy\":null,"
    "\"scopes\":[{\"name\":\"repo:read\",\"outcome\":\"denied\",\"reason\":\"no_access_policy\"}],"
    "\"token\":null,"
    "\"request\":{\"id\":\"019a4f6e-3000-7000-8000-0000000000r7\",\"endpoint\":\"token\","
    "\"grant_type\":\"client_credentials\",\"target_url\":\"https://mcp.github.example/mcp\","
    "\"client_ip\":\"10.0.0.7\",\"user_agent\":\"curl/8.5.0\"},"
    "\"node\":null,\"prev_hash\":\"P6\",\"hash\":\"H7\"}";

/* 2026-11-22T10:00:00Z is 1795341600 s after the epoch. */
static const char ADMIN[] =
    "{\"id\":\"019a4f70-0000-7000-8000-000000000001\",\"seq\":12,"
    "\"time\":\"2026-11-22T10:00:00.000001Z\",\"type\":\"admin.change\",\"outcome\":\"success\","
    "\"severity\":\"info\",\"reason\":null,\"status_detail\":null,\"user\":null,\"groups\":null,"
    "\"client\":null,\"system\":null,\"audience\":null,\"access_policy\":null,\"scopes\":null,"
    "\"token\":null,"
    "\"request\":{\"id\":\"019a4f70-0000-7000-8000-0000000000aa\",\"endpoint\":\"admin\","
    "\"client_ip\":\"192.0.2.10\",\"user_agent\":\"mcpauth-cli/0.1.0\"},"
    "\"actor\":\"admin-token\",\"action\":\"update\",\"object\":\"system:github\","
    "\"changes\":{\"paused\":{\"before\":false,\"after\":true}},"
    "\"node\":\"host-b\",\"prev_hash\":\"P11\",\"hash\":\"H12\"}";

/* Only what every event has: no seq yet, no request, no token, nothing else. */
static const char MINIMAL[] = "{\"id\":\"m1\",\"time\":\"" T1 "\",\"type\":\"token.request\","
                              "\"outcome\":\"denied\",\"severity\":\"error\"}";

#define CEF_HEAD "CEF:0|mcpauth|mcpauth|" MCPAUTH_VERSION "|"

/* ---- helpers ---- */

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v)
        fail_msg("bad fixture: %s (col %d)", e.text, e.column);
    return v;
}

/* The one record for `text` in format f, NUL-terminated; caller frees. */
static char *enc(enum audit_format f, const char *text)
{
    json_t *ev = load(text);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(audit_encode(f, ev, &b), 0);
    json_decref(ev);
    char *s = buf_take(&b, NULL);
    assert_non_null(s);
    return s;
}

static void expect(enum audit_format f, const char *event, const char *want)
{
    char *got = enc(f, event);
    int same = strcmp(got, want) == 0;
    if (!same)
        print_error("got  %s\nwant %s\n", got, want);
    free(got); /* before failing, so a mismatch is not also reported as a leak */
    assert_true(same);
}

/* v at a dotted path; a numeric segment indexes an array. */
static const json_t *at(const json_t *v, const char *path)
{
    char seg[64];
    while (v && *path) {
        size_t n = strcspn(path, ".");
        assert_true(n < sizeof(seg));
        memcpy(seg, path, n);
        seg[n] = '\0';
        v = json_is_array(v) ? json_array_get(v, strtoul(seg, NULL, 10)) : json_object_get(v, seg);
        path += n + (path[n] == '.');
    }
    return v;
}

static void expect_str(const json_t *o, const char *path, const char *want)
{
    const json_t *v = at(o, path);
    if (!json_is_string(v))
        fail_msg("%s: not a string", path);
    assert_string_equal(json_string_value(v), want);
}

static void expect_int(const json_t *o, const char *path, json_int_t want)
{
    const json_t *v = at(o, path);
    if (!json_is_integer(v))
        fail_msg("%s: not an integer", path);
    assert_int_equal(json_integer_value(v), want);
}

static void expect_null(const json_t *o, const char *path)
{
    if (!json_is_null(at(o, path)))
        fail_msg("%s: not null", path);
}

static void expect_absent(const json_t *o, const char *path)
{
    if (at(o, path))
        fail_msg("%s: present", path);
}

/* OCSF output parsed back; also checks it is one line. */
static json_t *ocsf(const char *event)
{
    char *s = enc(AUDIT_FMT_OCSF, event);
    assert_null(strchr(s, '\n'));
    json_t *o = load(s);
    free(s);
    return o;
}

/* ---- format table ---- */

static void test_format_table(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        enum audit_format f;
        const char *canonical, *content_type, *ext, *term;
    } rows[] = {
        {"jsonl", AUDIT_FMT_JSON, "jsonl", "application/x-ndjson", "jsonl", "\n"},
        {"json", AUDIT_FMT_JSON, "jsonl", "application/x-ndjson", "jsonl", "\n"},
        {"csv", AUDIT_FMT_CSV, "csv", "text/csv; charset=utf-8", "csv", "\r\n"},
        {"cef", AUDIT_FMT_CEF, "cef", "text/plain; charset=utf-8", "cef", "\n"},
        {"ocsf", AUDIT_FMT_OCSF, "ocsf", "application/x-ndjson", "ocsf.jsonl", "\n"},
        {"rfc5424", AUDIT_FMT_RFC5424, "rfc5424", "text/plain; charset=utf-8", "log", "\n"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        enum audit_format f = (enum audit_format) - 1;
        assert_int_equal(audit_format_parse(rows[i].name, &f), 0);
        assert_int_equal(f, rows[i].f);
        assert_string_equal(audit_format_name(f), rows[i].canonical);
        assert_string_equal(audit_format_content_type(f), rows[i].content_type);
        assert_string_equal(audit_format_extension(f), rows[i].ext);
        assert_string_equal(audit_format_terminator(f), rows[i].term);
    }
    static const char *const bad[] = {"", "JSON", "xml", "syslog", "csv ", "ocsf.jsonl"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum audit_format f = AUDIT_FMT_CEF;
        assert_int_equal(audit_format_parse(bad[i], &f), ERR_INVAL);
        assert_int_equal(f, AUDIT_FMT_CEF); /* untouched */
    }
    enum audit_format f = AUDIT_FMT_CEF;
    assert_int_equal(audit_format_parse(NULL, &f), ERR_INVAL);
}

static void test_headers(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(audit_encode_header(AUDIT_FMT_CSV, &b), 0);
    assert_string_equal(
        b.data, "id,seq,time,type,outcome,severity,reason,status_detail,user,groups,client,"
                "system,audience,access_policy,scopes,token.id,token.type,token.key_id,token.alg,"
                "token.lifetime,token.expires_at,request.id,request.endpoint,request.grant_type,"
                "request.requested_token_type,request.target_url,request.client_ip,"
                "request.user_agent,request.subject_token_sha256,request.subject_issuer,node,"
                "actor,action,object,prev_hash,hash\r\n");
    size_t len = b.len;
    assert_int_equal(audit_encode_header(AUDIT_FMT_JSON, &b), 0);
    assert_int_equal(audit_encode_header(AUDIT_FMT_CEF, &b), 0);
    assert_int_equal(audit_encode_header(AUDIT_FMT_OCSF, &b), 0);
    assert_int_equal(audit_encode_header(AUDIT_FMT_RFC5424, &b), 0);
    assert_int_equal(b.len, len);
    buf_done(&b);
}

/* ---- JSON ---- */

static void test_json(void **state)
{
    (void)state;
    const char *const events[] = {GRANTED, DENIED, ADMIN, MINIMAL};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        char *s = enc(AUDIT_FMT_JSON, events[i]);
        assert_null(strchr(s, '\n'));
        json_t *back = load(s), *orig = load(events[i]);
        assert_true(json_equal(back, orig));
        json_decref(back);
        json_decref(orig);
        free(s);
    }
    /* compact, keys sorted */
    expect(AUDIT_FMT_JSON, MINIMAL,
           "{\"id\":\"m1\",\"outcome\":\"denied\",\"severity\":\"error\",\"time\":\"" T1
           "\",\"type\":\"token.request\"}");
}

/* ---- CSV ---- */

static void test_csv(void **state)
{
    (void)state;
    expect(AUDIT_FMT_CSV, GRANTED,
           "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f,1042," T1 ",token.request,granted,info,,"
           "Scope not enabled: repo:write,alice@example.com,engineering;admins,desktop-agent,"
           "github,https://auth.github.example/,desktop-github,"
           "repo:read=granted;repo:write=denied:scope_not_enabled,"
           "019a4f6e-2b1d-7aa0-b0c1-d2e3f4a5b6c7,id-jag,es256-2026-11-22,ES256,300,"
           "2026-11-22T09:19:03Z,019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e10,token,"
           "urn:ietf:params:oauth:grant-type:token-exchange,"
           "urn:ietf:params:oauth:token-type:id-jag,https://mcp.github.example/mcp,127.0.0.1,"
           "node,9f2c,https://idp.example.com,host-a,,,,PREVHASH,THISHASH");
    expect(AUDIT_FMT_CSV, DENIED,
           "019a4f6e-3000-7000-8000-000000000007,7," T1 ",token.request,denied,warning,"
           "no_access_policy,No active access policy connects desktop-agent and github,,,"
           "desktop-agent,github,https://auth.github.example/,,repo:read=denied:no_access_policy,"
           ",,,,,,019a4f6e-3000-7000-8000-0000000000r7,token,client_credentials,,"
           "https://mcp.github.example/mcp,10.0.0.7,curl/8.5.0,,,,,,,P6,H7");
    /* changes is not a column */
    expect(AUDIT_FMT_CSV, ADMIN,
           "019a4f70-0000-7000-8000-000000000001,12,2026-11-22T10:00:00.000001Z,admin.change,"
           "success,info,,,,,,,,,,,,,,,,019a4f70-0000-7000-8000-0000000000aa,admin,,,,"
           "192.0.2.10,mcpauth-cli/0.1.0,,,host-b,admin-token,update,system:github,P11,H12");
    expect(AUDIT_FMT_CSV, MINIMAL,
           "m1,," T1 ",token.request,denied,error,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,");
}

/* RFC 4180 quoting and the OWASP formula-injection prefix. */
static void test_csv_hostile(void **state)
{
    (void)state;
    expect(AUDIT_FMT_CSV,
           "{\"id\":\"h3\",\"seq\":null,\"time\":\"" T1 "\",\"type\":\"token.request\","
           "\"outcome\":\"denied\",\"severity\":\"warning\",\"reason\":\"\\tt\","
           "\"status_detail\":\"l1\\r\\nl2\",\"user\":\"a,b\",\"groups\":[\"-x\",\"y\"],"
           "\"client\":\"say \\\"hi\\\"\",\"system\":\"=cmd|' /C calc'!A0\","
           "\"audience\":\"+1\",\"access_policy\":\"@SUM(1)\",\"token\":{\"lifetime\":-5},"
           "\"node\":\"\\rn\"}",
           "h3,," T1 ",token.request,denied,warning,'\tt,\"l1\r\nl2\",\"a,b\",'-x;y,"
           "\"say \"\"hi\"\"\",'=cmd|' /C calc'!A0,'+1,'@SUM(1),,,,,,-5,,,,,,,,,,,\"'\rn\",,,,,");
    /* a lone quote, a value that is only a quote, an embedded LF */
    expect(AUDIT_FMT_CSV,
           "{\"id\":\"\\\"\",\"time\":\"a\\nb\",\"type\":\"x\\\"y\\\"\",\"outcome\":\"\","
           "\"severity\":\"i\"}",
           "\"\"\"\",,\"a\nb\",\"x\"\"y\"\"\",,i,,,,,,,,,,,,,,,,,,,,,,,,,,,,,,");
}

/* A field of an unexpected JSON type is rendered, not refused: numbers in decimal,
 * booleans as words, arrays and objects as compact JSON with sorted keys. */
static void test_unexpected_types(void **state)
{
    (void)state;
    static const char ev[] =
        "{\"id\":1,\"time\":\"" T1 "\",\"type\":\"token.request\",\"outcome\":true,"
        "\"severity\":\"info\",\"user\":{\"b\":1,\"a\":[2,\"x=y\"]},\"client\":2.5,"
        "\"groups\":[\"g\",3,null],\"token\":\"not-an-object\",\"seq\":false}";
    expect(AUDIT_FMT_CSV, ev,
           "1,false," T1 ",token.request,true,info,,,\"{\"\"a\"\":[2,\"\"x=y\"\"],\"\"b\"\":1}\","
           "g;3;,2.5,,,,,,,,,,,,,,,,,,,,,,,,,");
    expect(AUDIT_FMT_CEF, ev,
           CEF_HEAD "token.request|Token request|3|rt=" T1_MS
                    " externalId=1 cat=token.request outcome=true"
                    " suser={\"a\":[2,\"x\\=y\"],\"b\":1} app=2.5 cs6Label=seq cs6=false");
}

/* ---- CEF ---- */

static void test_cef(void **state)
{
    (void)state;
    expect(AUDIT_FMT_CEF, GRANTED,
           CEF_HEAD "token.request|Token request|3|rt=" T1_MS
                    " externalId=019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f cat=token.request"
                    " outcome=granted suser=alice@example.com app=desktop-agent dhost=github"
                    " request=https://auth.github.example/ msg=Scope not enabled: repo:write"
                    " src=127.0.0.1 requestClientApplication=node"
                    " cs1Label=scopesGranted cs1=repo:read cs2Label=scopesDenied cs2=repo:write"
                    " cs3Label=tokenId cs3=019a4f6e-2b1d-7aa0-b0c1-d2e3f4a5b6c7"
                    " cs4Label=keyId cs4=es256-2026-11-22 cs5Label=alg cs5=ES256"
                    " cn1Label=lifetime cn1=300 cs6Label=seq cs6=1042");
    expect(AUDIT_FMT_CEF, DENIED,
           CEF_HEAD "token.request|Token request|6|rt=" T1_MS
                    " externalId=019a4f6e-3000-7000-8000-000000000007 cat=token.request"
                    " outcome=denied reason=no_access_policy app=desktop-agent dhost=github"
                    " request=https://auth.github.example/"
                    " msg=No active access policy connects desktop-agent and github"
                    " src=10.0.0.7 requestClientApplication=curl/8.5.0"
                    " cs2Label=scopesDenied cs2=repo:read cs6Label=seq cs6=7");
    expect(AUDIT_FMT_CEF, ADMIN,
           CEF_HEAD "admin.change|Admin change|3|rt=1795341600000"
                    " externalId=019a4f70-0000-7000-8000-000000000001 cat=admin.change"
                    " outcome=success suser=admin-token src=192.0.2.10"
                    " requestClientApplication=mcpauth-cli/0.1.0 act=update"
                    " cs1Label=object cs1=system:github cs6Label=seq cs6=12");
    expect(AUDIT_FMT_CEF, MINIMAL,
           CEF_HEAD "token.request|Token request|8|rt=" T1_MS
                    " externalId=m1 cat=token.request outcome=denied");
    /* key.rotate has its name; an unparsable time drops rt; an unknown type is its own name */
    expect(AUDIT_FMT_CEF,
           "{\"id\":\"k\",\"time\":\"" T1 "\",\"type\":\"key.rotate\",\"outcome\":\"success\","
           "\"severity\":\"info\",\"actor\":\"config\",\"action\":\"activate\","
           "\"object\":\"key:es256-1\"}",
           CEF_HEAD "key.rotate|Key rotation|3|rt=" T1_MS " externalId=k cat=key.rotate"
                    " outcome=success suser=config act=activate cs1Label=object cs1=key:es256-1");
    expect(AUDIT_FMT_CEF,
           "{\"id\":\"x\",\"time\":\"yesterday\",\"type\":\"gateway.call\","
           "\"outcome\":\"failure\",\"severity\":\"error\",\"user\":\"bob\",\"client\":\"c\"}",
           CEF_HEAD "gateway.call|gateway.call|8|externalId=x cat=gateway.call outcome=failure"
                    " suser=bob app=c");
}

/* Header: `\` and `|` escaped, line breaks become spaces. Extension: `\`, `=`, CR, LF
 * escaped, `|` left alone. */
static void test_cef_hostile(void **state)
{
    (void)state;
    expect(AUDIT_FMT_CEF,
           "{\"id\":\"h1\",\"time\":\"" T1 "\",\"type\":\"x|y\\\\z\\nw\",\"outcome\":\"granted\","
           "\"severity\":\"info\",\"user\":\"a|b\\\\c=d\",\"status_detail\":\"line1\\nline2\\r\","
           "\"client\":\"k=v \\\\n\"}",
           CEF_HEAD "x\\|y\\\\z w|x\\|y\\\\z w|3|rt=" T1_MS
                    " externalId=h1 cat=x|y\\\\z\\nw outcome=granted suser=a|b\\\\c\\=d"
                    " app=k\\=v \\\\n msg=line1\\nline2\\r");
}

/* ---- RFC 5424 ---- */

static void test_rfc5424(void **state)
{
    (void)state;
    static const struct {
        const char *event, *prefix;
    } rows[] = {
        {GRANTED, "<86>1 " T1 " host-a mcpauth - token.request [mcpauth@32473"
                  " id=\"019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f\" seq=\"1042\" outcome=\"granted\""
                  " user=\"alice@example.com\" client=\"desktop-agent\" system=\"github\"] "},
        {DENIED, "<84>1 " T1 " - mcpauth - token.request [mcpauth@32473"
                 " id=\"019a4f6e-3000-7000-8000-000000000007\" seq=\"7\" outcome=\"denied\""
                 " client=\"desktop-agent\" system=\"github\" reason=\"no_access_policy\"] "},
        {ADMIN, "<86>1 2026-11-22T10:00:00.000001Z host-b mcpauth - admin.change [mcpauth@32473"
                " id=\"019a4f70-0000-7000-8000-000000000001\" seq=\"12\" outcome=\"success\"] "},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *s = enc(AUDIT_FMT_RFC5424, rows[i].event);
        size_t n = strlen(rows[i].prefix);
        assert_true(strlen(s) > n);
        assert_memory_equal(s, rows[i].prefix, n);
        /* MSG: the JSON encoding, no BOM */
        char *json = enc(AUDIT_FMT_JSON, rows[i].event);
        assert_string_equal(s + n, json);
        assert_null(strchr(s, '\n'));
        free(json);
        free(s);
    }
    expect(AUDIT_FMT_RFC5424, MINIMAL,
           "<83>1 " T1 " - mcpauth - token.request [mcpauth@32473 id=\"m1\" outcome=\"denied\"] "
           "{\"id\":\"m1\",\"outcome\":\"denied\",\"severity\":\"error\",\"time\":\"" T1
           "\",\"type\":\"token.request\"}");
    /* no usable time: NILVALUE; unknown severity: informational */
    expect(
        AUDIT_FMT_RFC5424,
        "{\"id\":\"x\",\"time\":\"yesterday\",\"type\":\"gateway.call\",\"severity\":\"debug\"}",
        "<86>1 - - mcpauth - gateway.call [mcpauth@32473 id=\"x\"] "
        "{\"id\":\"x\",\"severity\":\"debug\",\"time\":\"yesterday\",\"type\":\"gateway.call\"}");
}

/* PARAM-VALUE escapes `"`, `\` and `]`; UTF-8 is kept; HOSTNAME and MSGID are reduced to
 * PRINTUSASCII and cut to 255 and 32 octets. */
static void test_rfc5424_hostile(void **state)
{
    (void)state;
    expect(AUDIT_FMT_RFC5424,
           "{\"id\":\"h2\",\"time\":\"" T1 "\",\"type\":\"token.request\",\"outcome\":\"denied\","
           "\"severity\":\"error\",\"user\":\"a\\\"b\\\\c]d\",\"client\":\"j\\u00fcrgen\\nx\","
           "\"system\":\"s\",\"reason\":\"r\",\"node\":\"host a\\u00fc\"}",
           "<83>1 " T1 " host_a__ mcpauth - token.request [mcpauth@32473 id=\"h2\""
           " outcome=\"denied\" user=\"a\\\"b\\\\c\\]d\" client=\"j\xc3\xbcrgen x\" system=\"s\""
           " reason=\"r\"] "
           "{\"client\":\"j\xc3\xbcrgen\\nx\",\"id\":\"h2\",\"node\":\"host a\xc3\xbc\","
           "\"outcome\":\"denied\",\"reason\":\"r\",\"severity\":\"error\",\"system\":\"s\","
           "\"time\":\"" T1 "\",\"type\":\"token.request\",\"user\":\"a\\\"b\\\\c]d\"}");

    char node[400], ev[600], want[64];
    memset(node, 'n', sizeof(node) - 1);
    node[sizeof(node) - 1] = '\0';
    snprintf(ev, sizeof(ev),
             "{\"id\":\"l\",\"time\":\"" T1 "\",\"type\":\"%s\",\"severity\":\"info\","
             "\"node\":\"%s\"}",
             "abcdefghijklmnopqrstuvwxyz0123456789", node);
    char *s = enc(AUDIT_FMT_RFC5424, ev);
    const char *host = s + strlen("<86>1 " T1 " ");
    assert_int_equal(strcspn(host, " "), 255);
    snprintf(want, sizeof(want), " mcpauth - %s [", "abcdefghijklmnopqrstuvwxyz012345");
    assert_memory_equal(host + 255, want, strlen(want));
    free(s);
}

/* ---- OCSF ---- */

static void test_ocsf_granted(void **state)
{
    (void)state;
    json_t *o = ocsf(GRANTED), *ev = load(GRANTED);
    expect_int(o, "class_uid", 3003);
    expect_str(o, "class_name", "Authorize Session");
    expect_int(o, "category_uid", 3);
    expect_str(o, "category_name", "Identity & Access Management");
    expect_int(o, "activity_id", 1);
    expect_str(o, "activity_name", "Assign Privileges");
    expect_int(o, "type_uid", 300301);
    expect_int(o, "time", 1795338843512);
    expect_int(o, "severity_id", 1);
    expect_str(o, "severity", "Informational");
    expect_int(o, "status_id", 1);
    expect_str(o, "status", "Success");
    expect_null(o, "status_code");
    expect_str(o, "status_detail", "Scope not enabled: repo:write");
    expect_str(o, "metadata.version", "1.3.0");
    expect_str(o, "metadata.uid", "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e0f");
    expect_str(o, "metadata.product.name", "mcpauth");
    expect_str(o, "metadata.product.vendor_name", "mcpauth");
    expect_str(o, "metadata.product.version", MCPAUTH_VERSION);
    expect_int(o, "metadata.logged_time", 1795338843512);
    expect_int(o, "metadata.sequence", 1042);
    expect_str(o, "user.name", "alice@example.com");
    expect_str(o, "user.uid", "alice@example.com");
    expect_str(o, "user.groups.0.name", "engineering");
    expect_str(o, "user.groups.1.name", "admins");
    expect_absent(o, "user.type");
    assert_int_equal(json_array_size(at(o, "privileges")), 1);
    expect_str(o, "privileges.0", "repo:read");
    expect_str(o, "service.name", "github");
    expect_str(o, "service.uid", "https://auth.github.example/");
    expect_str(o, "src_endpoint.ip", "127.0.0.1");
    expect_str(o, "http_request.user_agent", "node");
    expect_str(o, "http_request.uid", "019a4f6e-2b1c-7d3e-8f40-5a6b7c8d9e10");
    expect_absent(o, "dst_endpoint");
    expect_str(o, "unmapped.client", "desktop-agent");
    expect_str(o, "unmapped.access_policy", "desktop-github");
    assert_true(json_equal(at(o, "unmapped.scopes"), at(ev, "scopes")));
    assert_true(json_equal(at(o, "unmapped.token"), at(ev, "token")));
    expect_str(o, "unmapped.request.grant_type", "urn:ietf:params:oauth:grant-type:token-exchange");
    expect_str(o, "unmapped.request.target_url", "https://mcp.github.example/mcp");
    expect_str(o, "unmapped.request.requested_token_type",
               "urn:ietf:params:oauth:token-type:id-jag");
    expect_str(o, "unmapped.request.subject_issuer", "https://idp.example.com");
    expect_str(o, "unmapped.request.subject_token_sha256", "9f2c");
    expect_absent(o, "unmapped.request.id");
    expect_null(o, "unmapped.reason");
    expect_str(o, "unmapped.prev_hash", "PREVHASH");
    expect_str(o, "unmapped.hash", "THISHASH");
    expect_str(o, "unmapped.node", "host-a");
    json_decref(ev);
    json_decref(o);
}

static void test_ocsf_denied(void **state)
{
    (void)state;
    json_t *o = ocsf(DENIED);
    expect_int(o, "class_uid", 3003);
    expect_int(o, "type_uid", 300301);
    expect_int(o, "severity_id", 3);
    expect_str(o, "severity", "Medium");
    expect_int(o, "status_id", 2);
    expect_str(o, "status", "Failure");
    expect_str(o, "status_code", "no_access_policy");
    expect_str(o, "status_detail", "No active access policy connects desktop-agent and github");
    /* OCSF requires a user: with client credentials it is the client */
    expect_int(o, "user.type_id", 3);
    expect_str(o, "user.type", "System");
    expect_str(o, "user.name", "desktop-agent");
    expect_str(o, "user.uid", "desktop-agent");
    expect_absent(o, "user.groups");
    assert_true(json_is_array(at(o, "privileges")));
    assert_int_equal(json_array_size(at(o, "privileges")), 0);
    expect_str(o, "src_endpoint.ip", "10.0.0.7");
    expect_null(o, "unmapped.token");
    expect_null(o, "unmapped.access_policy");
    expect_null(o, "unmapped.node");
    expect_str(o, "unmapped.reason", "no_access_policy");
    expect_str(o, "unmapped.request.grant_type", "client_credentials");
    expect_absent(o, "unmapped.request.requested_token_type");
    json_decref(o);
}

static void test_ocsf_admin(void **state)
{
    (void)state;
    json_t *o = ocsf(ADMIN), *ev = load(ADMIN);
    expect_int(o, "class_uid", 6003);
    expect_str(o, "class_name", "API Activity");
    expect_int(o, "category_uid", 6);
    expect_str(o, "category_name", "Application Activity");
    expect_int(o, "activity_id", 3);
    expect_str(o, "activity_name", "Update");
    expect_int(o, "type_uid", 600303);
    expect_int(o, "time", 1795341600000);
    expect_int(o, "status_id", 1);
    expect_str(o, "status", "Success");
    expect_null(o, "status_code");
    expect_null(o, "status_detail");
    expect_str(o, "metadata.uid", "019a4f70-0000-7000-8000-000000000001");
    expect_int(o, "metadata.sequence", 12);
    expect_str(o, "actor.user.name", "admin-token");
    expect_str(o, "api.operation", "update");
    expect_str(o, "api.service.name", "mcpauth");
    assert_int_equal(json_array_size(at(o, "resources")), 1);
    expect_str(o, "resources.0.uid", "system:github");
    expect_str(o, "resources.0.type", "system");
    expect_str(o, "src_endpoint.ip", "192.0.2.10");
    expect_str(o, "http_request.user_agent", "mcpauth-cli/0.1.0");
    expect_absent(o, "user");
    expect_absent(o, "privileges");
    assert_true(json_equal(at(o, "unmapped.changes"), at(ev, "changes")));
    expect_str(o, "unmapped.prev_hash", "P11");
    expect_str(o, "unmapped.hash", "H12");
    expect_str(o, "unmapped.node", "host-b");
    assert_int_equal(json_object_size(at(o, "unmapped")), 4); /* the nulls stay out */
    json_decref(ev);
    json_decref(o);

    static const struct {
        const char *action, *name;
        int id;
    } acts[] = {{"create", "Create", 1}, {"delete", "Delete", 4}, {"activate", "Other", 99}};
    for (size_t i = 0; i < sizeof(acts) / sizeof(acts[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text),
                 "{\"id\":\"a\",\"time\":\"" T1
                 "\",\"type\":\"key.rotate\",\"outcome\":\"success\","
                 "\"severity\":\"info\",\"actor\":null,\"action\":\"%s\",\"object\":\"nocolon\"}",
                 acts[i].action);
        o = ocsf(text);
        expect_int(o, "class_uid", 6003);
        expect_int(o, "activity_id", acts[i].id);
        expect_str(o, "activity_name", acts[i].name);
        expect_int(o, "type_uid", 600300 + acts[i].id);
        expect_str(o, "api.operation", acts[i].action);
        expect_str(o, "resources.0.uid", "nocolon");
        expect_absent(o, "resources.0.type");
        assert_true(json_is_object(at(o, "actor.user")));
        assert_true(json_is_object(at(o, "src_endpoint"))); /* required, even empty */
        json_decref(o);
    }
}

/* Types without a class of their own: API Activity "Other", their fields in unmapped. */
static void test_ocsf_other(void **state)
{
    (void)state;
    json_t *o = ocsf("{\"id\":\"x\",\"time\":\"yesterday\",\"type\":\"gateway.call\","
                     "\"outcome\":\"failure\",\"severity\":\"debug\",\"user\":\"bob\","
                     "\"client\":\"c\",\"system\":null}");
    expect_int(o, "class_uid", 6003);
    expect_int(o, "activity_id", 99);
    expect_int(o, "type_uid", 600399);
    expect_absent(o, "time");
    expect_absent(o, "metadata.logged_time");
    expect_int(o, "severity_id", 0);
    expect_str(o, "severity", "Unknown");
    expect_int(o, "status_id", 2);
    expect_str(o, "actor.user.name", "bob");
    expect_str(o, "api.operation", "gateway.call");
    expect_str(o, "unmapped.user", "bob");
    expect_str(o, "unmapped.client", "c");
    expect_absent(o, "unmapped.system");
    json_decref(o);
}

static void test_ocsf_minimal(void **state)
{
    (void)state;
    json_t *o = ocsf(MINIMAL);
    expect_int(o, "class_uid", 3003);
    expect_int(o, "time", 1795338843512);
    expect_int(o, "severity_id", 4);
    expect_str(o, "severity", "High");
    expect_str(o, "metadata.uid", "m1");
    expect_absent(o, "metadata.sequence");
    expect_str(o, "user.type", "System");
    expect_absent(o, "user.name");
    assert_int_equal(json_array_size(at(o, "privileges")), 0);
    expect_absent(o, "service");
    expect_absent(o, "src_endpoint");
    expect_absent(o, "http_request");
    expect_null(o, "status_code");
    assert_int_equal(json_object_size(at(o, "unmapped")), 0);
    json_decref(o);
}

/* ---- limits ---- */

/* Over the cap: ERR_TOOBIG and the buffer exactly as before, in every format. */
static void test_toobig_leaves_buffer(void **state)
{
    (void)state;
    json_t *ev = load(GRANTED);
    for (int f = AUDIT_FMT_JSON; f <= AUDIT_FMT_RFC5424; f++) {
        struct buf b;
        buf_init(&b, 100);
        assert_int_equal(buf_puts(&b, "kept"), 0);
        assert_int_equal(audit_encode((enum audit_format)f, ev, &b), ERR_TOOBIG);
        assert_int_equal(b.len, 4);
        assert_string_equal(b.data, "kept");
        buf_done(&b);
    }
    struct buf b;
    buf_init(&b, 10);
    assert_int_equal(audit_encode_header(AUDIT_FMT_CSV, &b), ERR_TOOBIG);
    assert_int_equal(b.len, 0);
    buf_done(&b);
    json_decref(ev);
}

/* Records append: two in a row are the two records, nothing between. */
static void test_appends(void **state)
{
    (void)state;
    json_t *ev = load(MINIMAL);
    struct buf b;
    buf_init(&b, 0);
    assert_int_equal(audit_encode(AUDIT_FMT_CEF, ev, &b), 0);
    size_t one = b.len;
    assert_int_equal(audit_encode(AUDIT_FMT_CEF, ev, &b), 0);
    assert_int_equal(b.len, 2 * one);
    assert_memory_equal(b.data, b.data + one, one);
    assert_int_equal(audit_encode((enum audit_format)42, ev, &b), ERR_INVAL);
    assert_int_equal(b.len, 2 * one);
    buf_done(&b);
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_table), cmocka_unit_test(test_headers),
        cmocka_unit_test(test_json),         cmocka_unit_test(test_csv),
        cmocka_unit_test(test_csv_hostile),  cmocka_unit_test(test_unexpected_types),
        cmocka_unit_test(test_cef),          cmocka_unit_test(test_cef_hostile),
        cmocka_unit_test(test_rfc5424),      cmocka_unit_test(test_rfc5424_hostile),
        cmocka_unit_test(test_ocsf_granted), cmocka_unit_test(test_ocsf_denied),
        cmocka_unit_test(test_ocsf_admin),   cmocka_unit_test(test_ocsf_other),
        cmocka_unit_test(test_ocsf_minimal), cmocka_unit_test(test_toobig_leaves_buffer),
        cmocka_unit_test(test_appends),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
