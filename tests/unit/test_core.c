/* tests/unit/test_core.c — core/: the error table, the capped buffer, base64
 * (RFC 4648 vectors and the strict decoder's refusals), UUIDv7 ordering, time
 * formatting and the policy duration syntax, and the string map. Pure
 * functions only: no files, no network, a few milliseconds in all. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/b64.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/strmap.h"
#include "core/timeutil.h"
#include "core/uuid.h"

/* ---- err ---- */

static void test_err_table(void **state)
{
    (void)state;
    static const struct {
        int err;
        const char *code;
        int http;
        const char *oauth;
        const char *msg;
    } rows[] = {
        {ERR_INVAL, "invalid_request", 400, "invalid_request", "Invalid request"},
        {ERR_NOMEM, "internal", 500, "server_error", "Out of memory"},
        {ERR_IO, "unavailable", 503, "temporarily_unavailable", "Storage unavailable"},
        {ERR_NOTFOUND, "not_found", 404, "invalid_request", "Not found"},
        {ERR_EXISTS, "conflict", 409, "invalid_request", "Already exists"},
        {ERR_CONFLICT, "conflict", 409, "invalid_request", "Conflict"},
        {ERR_TOOBIG, "payload_too_large", 413, "invalid_request", "Request body too large"},
        {ERR_UNAUTH, "unauthorized", 401, "invalid_client", "Unauthorized"},
        {ERR_METHOD, "method_not_allowed", 405, "invalid_request", "Method not allowed"},
        {ERR_MEDIA, "unsupported_media_type", 415, "invalid_request", "Unsupported media type"},
        {ERR_CRYPTO, "internal", 500, "server_error", "Cryptographic failure"},
        {ERR_INTERNAL, "internal", 500, "server_error", "Internal error"},
        {ERR_UNSUPPORTED, "unsupported", 400, "invalid_request", "Not supported"},
        {ERR_CORRUPT, "internal", 500, "server_error", "Stored data is corrupt"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_true(rows[i].err < 0);
        assert_string_equal(err_code(rows[i].err), rows[i].code);
        assert_int_equal(err_http_status(rows[i].err), rows[i].http);
        assert_string_equal(err_oauth(rows[i].err), rows[i].oauth);
        assert_string_equal(err_message(rows[i].err), rows[i].msg);
        for (size_t j = 0; j < i; j++)
            assert_int_not_equal(rows[i].err, rows[j].err);
    }
    /* codes are stable: outside tools log the numbers */
    assert_int_equal(ERR_INVAL, -1);
    assert_int_equal(ERR_CORRUPT, -14);
    assert_int_equal(ERR_COUNT_, 15);

    /* anything outside the table is an internal error */
    static const int unknown[] = {1, 42, -ERR_COUNT_, ERR_CORRUPT - 1, -1000, -2147483647};
    for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
        assert_string_equal(err_code(unknown[i]), "internal");
        assert_int_equal(err_http_status(unknown[i]), 500);
        assert_string_equal(err_oauth(unknown[i]), "server_error");
        assert_string_equal(err_message(unknown[i]), "Internal error");
    }
}

static void test_err_int_min(void **state)
{
    (void)state;
    /* regression test: this was a bug, fixed with the test */
    assert_string_equal(err_code(-2147483647 - 1), "internal");
    assert_int_equal(err_http_status(-2147483647 - 1), 500);
}

static void test_err_set(void **state)
{
    (void)state;
    struct err_detail d = {{0}};
    assert_int_equal(err_set(&d, ERR_NOTFOUND, "system:%s does not exist", "github"), ERR_NOTFOUND);
    assert_string_equal(d.msg, "system:github does not exist");
    assert_int_equal(err_set(NULL, ERR_INVAL, "ignored %d", 1), ERR_INVAL);

    /* a long message is truncated, still NUL-terminated */
    char big[1024];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(err_set(&d, ERR_INVAL, "%s", big), ERR_INVAL);
    assert_int_equal(strlen(d.msg), sizeof(d.msg) - 1);
}

/* ---- buf ---- */

static void test_buf_cap(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 8);
    assert_null(b.data);
    assert_int_equal(buf_puts(&b, "12345"), 0);
    assert_int_equal(b.len, 5);

    /* 5 + 4 > 8: refused, nothing written */
    assert_int_equal(buf_append(&b, "6789", 4), ERR_TOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");
    assert_int_equal(buf_printf(&b, "%d", 1234), ERR_TOOBIG);
    assert_int_equal(b.len, 5);
    assert_string_equal(b.data, "12345");

    /* exactly up to the cap is fine, one byte more is not */
    assert_int_equal(buf_printf(&b, "%s", "678"), 0);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(buf_append(&b, "", 0), 0);
    assert_int_equal(buf_puts(&b, "9"), ERR_TOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");

    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_int_equal(buf_puts(&b, "abcdefgh"), 0);
    assert_string_equal(b.data, "abcdefgh");
    buf_wipe_done(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_buf_growth_take(void **state)
{
    (void)state;
    struct buf b;
    buf_init(&b, 0); /* no cap */
    char want[8192];
    size_t wl = 0;
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(buf_printf(&b, "%d,", i), 0);
        wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%d,", i);
        assert_int_equal(b.len, wl);
        assert_true(b.cap > b.len); /* room for the NUL */
        assert_int_equal(b.data[b.len], '\0');
    }
    assert_string_equal(b.data, want);

    /* binary bytes, NULs included */
    assert_int_equal(buf_append(&b, "\0x\0", 3), 0);
    assert_int_equal(b.len, wl + 3);
    assert_memory_equal(b.data + wl, "\0x\0", 4);

    size_t len = 0;
    char *p = buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, wl + 3);
    assert_memory_equal(p, want, wl);
    free(p);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);

    /* the buffer is reusable after take, and take of an empty buffer is "" */
    p = buf_take(&b, &len);
    assert_non_null(p);
    assert_int_equal(len, 0);
    assert_string_equal(p, "");
    free(p);
    assert_int_equal(buf_puts(&b, "again"), 0);
    p = buf_take(&b, NULL);
    assert_string_equal(p, "again");
    free(p);
    buf_done(&b);
}

/* ---- base64 ---- */

static const struct {
    const char *plain, *url, *std;
} rfc4648[] = {
    {"", "", ""},
    {"f", "Zg", "Zg=="},
    {"fo", "Zm8", "Zm8="},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg", "Zm9vYg=="},
    {"fooba", "Zm9vYmE", "Zm9vYmE="},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void test_b64_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const char *p = rfc4648[i].plain;
        size_t n = strlen(p);
        char enc[32];
        unsigned char dec[32];
        size_t dl = 99;

        assert_int_equal(b64url_len(n), strlen(rfc4648[i].url));
        b64url_encode(p, n, enc);
        assert_string_equal(enc, rfc4648[i].url);
        assert_int_equal(b64url_decode(enc, strlen(enc), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, p, n);

        assert_int_equal(b64std_len(n), strlen(rfc4648[i].std));
        b64std_encode(p, n, enc);
        assert_string_equal(enc, rfc4648[i].std);
        dl = 99;
        assert_int_equal(b64std_decode(enc, strlen(enc), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, p, n);
    }

    /* the two alphabets differ in 62 and 63 */
    const unsigned char hi[] = {0xfb, 0xff, 0xbf};
    char enc[8];
    b64url_encode(hi, sizeof(hi), enc);
    assert_string_equal(enc, "-_-_");
    b64std_encode(hi, sizeof(hi), enc);
    assert_string_equal(enc, "+/+/");

    /* every byte value and every length round-trips */
    unsigned char all[256], dec[256];
    char text[400];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t n = 0; n <= 256; n += 1 + n / 8) {
        size_t dl = 0;
        b64url_encode(all + 256 - n, n, text);
        assert_int_equal(strlen(text), b64url_len(n));
        assert_int_equal(b64url_decode(text, strlen(text), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, all + 256 - n, n);
        b64std_encode(all + 256 - n, n, text);
        assert_int_equal(strlen(text), b64std_len(n));
        assert_int_equal(b64std_decode(text, strlen(text), dec, &dl), 0);
        assert_int_equal(dl, n);
        assert_memory_equal(dec, all + 256 - n, n);
    }
}

static void test_b64_refusals(void **state)
{
    (void)state;
    static const char *const bad_url[] = {
        "Zg==",    /* padding is not base64url */
        "Zm8=",    /* idem */
        "+/+/",    /* standard alphabet */
        "Zm9v+A",  /* idem, in the tail */
        "Zm9vY",   /* length 1 mod 4 */
        "Z",       /* idem */
        "Zh",      /* 'f' is Zg: non-zero trailing bits */
        "Zm9",     /* "fo" is Zm8 */
        "Zm9vYmF", /* "fooba" is Zm9vYmE */
        "Zm 9v",   /* whitespace */
        "Zm9v\n",  /* idem */
        "Zm9v.A",  /* outside the alphabet */
        "Zm\x80v", /* non-ASCII */
    };
    for (size_t i = 0; i < sizeof(bad_url) / sizeof(bad_url[0]); i++) {
        unsigned char out[16];
        size_t len = 777;
        if (b64url_decode(bad_url[i], strlen(bad_url[i]), out, &len) != ERR_INVAL)
            fail_msg("b64url_decode accepted \"%s\"", bad_url[i]);
        assert_int_equal(len, 777); /* untouched on failure */
    }
    /* a NUL inside the counted length is a bad character, not an end */
    unsigned char out[16];
    size_t len = 0;
    assert_int_equal(b64url_decode("Zm\0v", 4, out, &len), ERR_INVAL);

    static const char *const bad_std[] = {
        "Zg",       /* padding required */
        "Zm8",      /* idem */
        "Zg=",      /* length */
        "Zh==",     /* non-zero trailing bits */
        "Zm9=",     /* idem */
        "Z===",     /* three pads */
        "====",     /* only pads */
        "Zg==Zg==", /* padding in the middle */
        "Zm=v",     /* idem */
        "-_-_",     /* URL alphabet */
        "Zm9vY",    /* length */
        "Zm9v ",    /* whitespace */
    };
    for (size_t i = 0; i < sizeof(bad_std) / sizeof(bad_std[0]); i++) {
        len = 777;
        if (b64std_decode(bad_std[i], strlen(bad_std[i]), out, &len) != ERR_INVAL)
            fail_msg("b64std_decode accepted \"%s\"", bad_std[i]);
        assert_int_equal(len, 777);
    }
}

/* ---- uuid ---- */

static int is_hex_lower(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static void check_uuid_format(const char *u)
{
    assert_int_equal(strlen(u), 36);
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            assert_int_equal(u[i], '-');
        } else if (!is_hex_lower(u[i])) {
            fail_msg("%s: character %d is not lowercase hex", u, i);
        }
    }
    assert_int_equal(u[14], '7');           /* version 7 */
    assert_non_null(strchr("89ab", u[19])); /* variant 10 */
}

#define N_UUIDS 10000

static void test_uuid7(void **state)
{
    (void)state;
    char(*ids)[UUID_STR_LEN] = calloc(N_UUIDS, UUID_STR_LEN);
    assert_non_null(ids);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t before = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    for (int i = 0; i < N_UUIDS; i++)
        uuid7_new(ids[i]);
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t after = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;

    for (int i = 0; i < N_UUIDS; i++) {
        check_uuid_format(ids[i]);
        /* strictly increasing as strings, hence also unique */
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("uuid %d not after %d: %s <= %s", i, i - 1, ids[i], ids[i - 1]);
    }
    /* the first 48 bits are the Unix time in milliseconds; the counter may borrow a few
     * milliseconds ahead when many ids are made at once */
    char ms_hex[13];
    memcpy(ms_hex, ids[0], 8);
    memcpy(ms_hex + 8, ids[0] + 9, 4);
    ms_hex[12] = '\0';
    uint64_t ms0 = strtoull(ms_hex, NULL, 16);
    assert_true(ms0 >= before && ms0 <= after + 100);
    memcpy(ms_hex, ids[N_UUIDS - 1], 8);
    memcpy(ms_hex + 8, ids[N_UUIDS - 1] + 9, 4);
    uint64_t ms1 = strtoull(ms_hex, NULL, 16);
    assert_true(ms1 >= ms0 && ms1 <= after + 100);
    free(ids);
}

static void test_random(void **state)
{
    (void)state;
    unsigned char a[1000] = {0}, b[1000] = {0};
    core_random(a, sizeof(a));
    core_random(b, sizeof(b));
    assert_memory_not_equal(a, b, sizeof(a));
    core_random(a, 0); /* no-op */
}

/* ---- timeutil ---- */

static void test_time_format(void **state)
{
    (void)state;
    static const struct {
        int64_t us;
        const char *want_us, *want_s;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000000Z", "1970-01-01T00:00:00Z"},
        {1795338843512384LL, "2026-11-22T09:14:03.512384Z", "2026-11-22T09:14:03Z"},
        {951868799000001LL, "2000-02-29T23:59:59.000001Z", "2000-02-29T23:59:59Z"},
        {946684799999999LL, "1999-12-31T23:59:59.999999Z", "1999-12-31T23:59:59Z"},
        {2147483648000000LL, "2038-01-19T03:14:08.000000Z", "2038-01-19T03:14:08Z"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[TIME_STR_LEN];
        time_format_us(cases[i].us, out);
        assert_string_equal(out, cases[i].want_us);
        time_format_s(cases[i].us / 1000000, out);
        assert_string_equal(out, cases[i].want_s);
    }

    int64_t now = time_now_us();
    int64_t wall = (int64_t)time(NULL);
    assert_true(now / 1000000 >= wall - 1 && now / 1000000 <= wall + 1);
}

static void test_time_format_before_epoch(void **state)
{
    (void)state;
    /* regression test: this was a bug, fixed with the test */
    char out[TIME_STR_LEN];
    time_format_us(-1, out);
    assert_string_equal(out, "1969-12-31T23:59:59.999999Z");
    time_format_us(-1500000, out);
    assert_string_equal(out, "1969-12-31T23:59:58.500000Z");
}

static void test_duration_parse(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int64_t want;
    } ok[] = {
        {"300s", 300},
        {"5m", 300},
        {"1h", 3600},
        {"1h30m", 5400},
        {"1d", 86400},
        {"300", 300},
        {"1", 1},
        {"05m", 300},
        {"0h5m", 300},
        {"1d2h3m4s", 93784},
        {"90m", 5400},
        {"1h0m", 3600},
        {"3650d", 3650LL * 86400},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        int64_t got = -1;
        int r = duration_parse(ok[i].in, &got);
        if (r != 0 || got != ok[i].want)
            fail_msg("duration_parse(\"%s\") = %d, %lld; want %lld", ok[i].in, r, (long long)got,
                     (long long)ok[i].want);
    }
    static const char *const bad[] = {
        "",
        "0s",
        "0",
        "0h0m",
        "5x",
        "m",
        "s",
        "1m1h",
        "1s1m",
        "1h1h",
        "-5s",
        "+5s",
        "1.5h",
        "1ms",
        "5 s",
        " 5s",
        "5s ",
        "1h30",
        "h1",
        "5S",
        "5M",
        "3661d",
        "99999999999999999999s",
        "9223372036854775807",
        "87840h1s",
        "1e3s",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t got = -7;
        if (duration_parse(bad[i], &got) != ERR_INVAL)
            fail_msg("duration_parse(\"%s\") accepted: %lld", bad[i], (long long)got);
        assert_int_equal(got, -7); /* untouched on failure */
    }
    int64_t got = -7;
    assert_int_equal(duration_parse(NULL, &got), ERR_INVAL);
}

static void test_duration_format(void **state)
{
    (void)state;
    char out[TIME_STR_LEN];
    duration_format(300, out);
    assert_string_equal(out, "300s");
    duration_format(5400, out);
    assert_string_equal(out, "5400s");
    duration_format(1, out);
    assert_string_equal(out, "1s");
    /* the canonical form parses back to the same value */
    int64_t v = 0;
    duration_format(93784, out);
    assert_int_equal(duration_parse(out, &v), 0);
    assert_int_equal(v, 93784);
}

/* ---- strmap ---- */

#define N_KEYS 10000

static void test_strmap(void **state)
{
    (void)state;
    struct strmap m;
    strmap_init(&m);
    assert_null(strmap_get(&m, "missing")); /* empty map */
    assert_int_equal(strmap_len(&m), 0);

    int a = 1, b = 2, c = 3;
    void *old = &c;
    assert_int_equal(strmap_put(&m, "alpha", &a, &old), 0);
    assert_null(old); /* new key */
    assert_int_equal(strmap_put(&m, "beta", &b, NULL), 0);
    assert_ptr_equal(strmap_get(&m, "alpha"), &a);
    assert_ptr_equal(strmap_get(&m, "beta"), &b);
    assert_null(strmap_get(&m, "gamma"));
    assert_null(strmap_get(&m, "alph"));
    assert_null(strmap_get(&m, ""));
    assert_int_equal(strmap_len(&m), 2);

    /* replace: the old value comes back, the length stays */
    old = NULL;
    assert_int_equal(strmap_put(&m, "alpha", &c, &old), 0);
    assert_ptr_equal(old, &a);
    assert_ptr_equal(strmap_get(&m, "alpha"), &c);
    assert_int_equal(strmap_len(&m), 2);

    /* the empty string is a key like any other; keys are compared by value */
    char key[8] = "beta";
    assert_ptr_equal(strmap_get(&m, key), &b);
    assert_int_equal(strmap_put(&m, "", &a, NULL), 0);
    assert_ptr_equal(strmap_get(&m, ""), &a);
    strmap_done(&m);
    assert_int_equal(strmap_len(&m), 0);
    assert_null(strmap_get(&m, "alpha"));

    /* growth: 10000 keys, all found after many rehashes */
    char(*keys)[16] = calloc(N_KEYS, 16);
    assert_non_null(keys);
    strmap_init(&m);
    for (int i = 0; i < N_KEYS; i++) {
        snprintf(keys[i], 16, "key-%d", i);
        assert_int_equal(strmap_put(&m, keys[i], keys[i], NULL), 0);
    }
    assert_int_equal(strmap_len(&m), N_KEYS);
    for (int i = 0; i < N_KEYS; i++)
        assert_ptr_equal(strmap_get(&m, keys[i]), keys[i]);
    for (int i = 0; i < 100; i++) {
        char k[16];
        snprintf(k, sizeof(k), "key-%d", N_KEYS + i);
        assert_null(strmap_get(&m, k));
        snprintf(k, sizeof(k), "key-%d", i); /* an equal key in other storage */
        assert_ptr_equal(strmap_get(&m, k), keys[i]);
    }
    /* replacing every key keeps the length */
    for (int i = 0; i < N_KEYS; i += 7) {
        old = NULL;
        assert_int_equal(strmap_put(&m, keys[i], &a, &old), 0);
        assert_ptr_equal(old, keys[i]);
    }
    assert_int_equal(strmap_len(&m), N_KEYS);
    assert_ptr_equal(strmap_get(&m, keys[7]), &a);
    assert_ptr_equal(strmap_get(&m, keys[8]), keys[8]);
    strmap_done(&m);
    free(keys);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_err_table),
        cmocka_unit_test(test_err_int_min),
        cmocka_unit_test(test_err_set),
        cmocka_unit_test(test_buf_cap),
        cmocka_unit_test(test_buf_growth_take),
        cmocka_unit_test(test_b64_vectors),
        cmocka_unit_test(test_b64_refusals),
        cmocka_unit_test(test_uuid7),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_time_format),
        cmocka_unit_test(test_time_format_before_epoch),
        cmocka_unit_test(test_duration_parse),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_strmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
