/* tests/unit/test_jose.c — jose/crypto and jose/keys. Public JWKs are checked
 * against the sealed private key itself (opened here with the test KEK and
 * rebuilt from the JWK members), so a JWK that merely round-trips but names
 * another key fails. RSA generation is slow: exactly one key per RSA alg. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "core/b64.h"
#include "jose/crypto.h"
#include "jose/keys.h"

static const unsigned char KEY1[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,
                                       12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
                                       23, 24, 25, 26, 27, 28, 29, 30, 31};
static const unsigned char KEY2[32] = {0xff};

/* ---- helpers ---- */

/* Decodes jwk[name] (base64url) into out (size >= 600); returns the length, or -1. */
static long member_bytes(const json_t *jwk, const char *name, unsigned char *out)
{
    const char *s = json_string_value(json_object_get(jwk, name));
    size_t len;
    if (!s || strlen(s) > 780 || b64url_decode(s, strlen(s), out, &len) < 0)
        return -1;
    return (long)len;
}

/* The public key the JWK describes, built independently of jose/keys.c. */
static EVP_PKEY *pkey_from_jwk(const json_t *jwk)
{
    unsigned char a[600], b[600];
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    EVP_PKEY *pkey = NULL;
    assert_non_null(kty);

    if (strcmp(kty, "OKP") == 0) {
        long n = member_bytes(jwk, "x", a);
        assert_int_equal(n, 32);
        return EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, a, (size_t)n);
    }

    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = NULL, *e = NULL;
    unsigned char point[1 + 2 * 48];
    assert_non_null(bld);
    if (strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(jwk, "crv"));
        long xl = member_bytes(jwk, "x", a), yl = member_bytes(jwk, "y", b);
        assert_non_null(crv);
        assert_true(xl > 0 && xl == yl && xl <= 48);
        point[0] = 4; /* uncompressed */
        memcpy(point + 1, a, (size_t)xl);
        memcpy(point + 1 + xl, b, (size_t)yl);
        assert_true(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0));
        assert_true(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                                     1 + 2 * (size_t)xl));
    } else {
        assert_string_equal(kty, "RSA");
        long nl = member_bytes(jwk, "n", a), el = member_bytes(jwk, "e", b);
        assert_true(nl > 0 && el > 0);
        n = BN_bin2bn(a, (int)nl, NULL);
        e = BN_bin2bn(b, (int)el, NULL);
        assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n));
        assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
    }
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, strcmp(kty, "EC") ? "RSA" : "EC", NULL);
    assert_non_null(params);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params), 1);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return pkey;
}

/* Opens `sealed` with the raw KEK API, checks it is PKCS#8 DER and that its key
 * is the one `jwk` describes. */
static void assert_sealed_matches_jwk(const struct kek *kek, const char *kid, const char *sealed,
                                      const json_t *jwk)
{
    unsigned char *der;
    size_t der_len;
    assert_int_equal(kek_open(kek, kid, sealed, &der, &der_len), 0);

    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der_len);
    assert_non_null(p8);
    assert_ptr_equal(p, der + der_len);
    PKCS8_PRIV_KEY_INFO_free(p8);

    p = der;
    EVP_PKEY *priv = d2i_AutoPrivateKey(NULL, &p, (long)der_len);
    EVP_PKEY *pub = pkey_from_jwk(jwk);
    assert_non_null(priv);
    assert_non_null(pub);
    assert_int_equal(EVP_PKEY_eq(priv, pub), 1);
    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
    crypto_wipe(der, der_len);
    free(der);
}

static void assert_str_member(const json_t *jwk, const char *name, const char *want)
{
    const char *got = json_string_value(json_object_get(jwk, name));
    assert_non_null(got);
    assert_string_equal(got, want);
}

static int same_family(enum jose_alg a, enum jose_alg b)
{
    int ra = a == JOSE_RS256 || a == JOSE_PS256, rb = b == JOSE_RS256 || b == JOSE_PS256;
    return a == b || (ra && rb);
}

/* Everything one key of `alg` must do: JWK shape, seal/open round trip, and every
 * way opening must fail. */
static void check_alg(enum jose_alg alg)
{
    unsigned char buf[600];
    struct jose_key *key, *back;
    struct kek *kek, *other;
    char *sealed;

    assert_int_equal(kek_from_bytes(KEY1, &kek), 0);
    assert_int_equal(kek_from_bytes(KEY2, &other), 0);
    assert_int_equal(jose_key_generate(alg, "kid-1", &key), 0);
    assert_string_equal(jose_key_kid(key), "kid-1");
    assert_int_equal(jose_key_alg(key), alg);

    json_t *jwk = jose_key_public_jwk(key);
    assert_non_null(jwk);
    assert_str_member(jwk, "kid", "kid-1");
    assert_str_member(jwk, "alg", jose_alg_name(alg));
    assert_str_member(jwk, "use", "sig");
    assert_null(json_object_get(jwk, "d"));
    switch (alg) {
    case JOSE_ES256:
    case JOSE_ES384: {
        long len = alg == JOSE_ES256 ? 32 : 48;
        assert_str_member(jwk, "kty", "EC");
        assert_str_member(jwk, "crv", alg == JOSE_ES256 ? "P-256" : "P-384");
        assert_int_equal(member_bytes(jwk, "x", buf), len);
        assert_int_equal(member_bytes(jwk, "y", buf), len);
        assert_int_equal(json_object_size(jwk), 7);
        break;
    }
    case JOSE_RS256:
    case JOSE_PS256:
        assert_str_member(jwk, "kty", "RSA");
        assert_str_member(jwk, "e", "AQAB");
        assert_int_equal(member_bytes(jwk, "n", buf), 384);
        assert_true(buf[0] & 0x80); /* 3072 bits exactly, no leading zero byte */
        assert_int_equal(json_object_size(jwk), 6);
        break;
    case JOSE_EDDSA:
        assert_str_member(jwk, "kty", "OKP");
        assert_str_member(jwk, "crv", "Ed25519");
        assert_int_equal(member_bytes(jwk, "x", buf), 32);
        assert_int_equal(json_object_size(jwk), 6);
        break;
    default:
        fail();
    }

    assert_int_equal(jose_key_seal(key, kek, &sealed), 0);
    assert_true(strncmp(sealed, "v1.", 3) == 0);
    assert_sealed_matches_jwk(kek, "kid-1", sealed, jwk);

    /* round trip */
    assert_int_equal(jose_key_open(alg, "kid-1", sealed, kek, &back), 0);
    assert_string_equal(jose_key_kid(back), "kid-1");
    assert_int_equal(jose_key_alg(back), alg);
    json_t *jwk2 = jose_key_public_jwk(back);
    assert_true(json_equal(jwk, jwk2));
    json_decref(jwk2);
    back = jose_key_free(back);
    assert_null(back);

    /* another row, another KEK */
    back = NULL;
    assert_int_equal(jose_key_open(alg, "kid-2", sealed, kek, &back), ERR_CORRUPT);
    assert_int_equal(jose_key_open(alg, "", sealed, kek, &back), ERR_CORRUPT);
    assert_int_equal(jose_key_open(alg, "kid-1", sealed, other, &back), ERR_CORRUPT);
    assert_null(back);

    /* another alg: only RS256 <-> PS256 share a key type */
    for (int a = 0; a < JOSE_ALG_COUNT; a++) {
        int r = jose_key_open((enum jose_alg)a, "kid-1", sealed, kek, &back);
        if (same_family(alg, (enum jose_alg)a)) {
            assert_int_equal(r, 0);
            assert_int_equal(jose_key_alg(back), a);
            back = jose_key_free(back);
        } else {
            assert_int_equal(r, ERR_CORRUPT);
            assert_null(back);
        }
    }

    /* tampering anywhere: nonce, ciphertext, tag */
    size_t len = strlen(sealed);
    size_t at[] = {3, 4, len / 2, len - 2, len - 1};
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        char saved = sealed[at[i]];
        sealed[at[i]] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(jose_key_open(alg, "kid-1", sealed, kek, &back), ERR_CORRUPT);
        sealed[at[i]] = saved;
    }
    sealed[len - 1] = '\0'; /* truncated */
    assert_int_equal(jose_key_open(alg, "kid-1", sealed, kek, &back), ERR_CORRUPT);
    assert_null(back);

    free(sealed);
    json_decref(jwk);
    assert_null(jose_key_free(key));
    kek_free(kek);
    kek_free(other);
}

/* ---- tests ---- */

static void test_alg_parse(void **state)
{
    (void)state;
    static const char *const good[] = {"ES256", "ES384", "RS256", "PS256", "EdDSA"};
    static const char *const bad[] = {"none",  "HS256", "",      "es256",  "ES256 ", "eddsa",
                                      "RS384", "ES512", "Ed448", "ES2560", "HS384"};
    enum jose_alg alg;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(jose_alg_parse(good[i], &alg), 0);
        assert_int_equal(alg, (enum jose_alg)i);
        assert_string_equal(jose_alg_name(alg), good[i]);
    }
    alg = JOSE_ES384;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(jose_alg_parse(bad[i], &alg), ERR_UNSUPPORTED);
    assert_int_equal(jose_alg_parse(NULL, &alg), ERR_UNSUPPORTED);
    assert_int_equal(alg, JOSE_ES384); /* untouched on failure */
}

static void test_es256(void **state)
{
    (void)state;
    check_alg(JOSE_ES256);
}

static void test_es384(void **state)
{
    (void)state;
    check_alg(JOSE_ES384);
}

static void test_rs256(void **state)
{
    (void)state;
    check_alg(JOSE_RS256);
}

static void test_ps256(void **state)
{
    (void)state;
    check_alg(JOSE_PS256);
}

static void test_eddsa(void **state)
{
    (void)state;
    check_alg(JOSE_EDDSA);
}

/* One coordinate in 256 has a leading zero byte; the JWK must still carry 32
 * bytes, and they must still name the right point. Runs until both x and y have
 * been seen with a leading zero (about 500 keys; 8192 misses happen with p < e^-31). */
static void test_ec_coordinate_padding(void **state)
{
    (void)state;
    unsigned char x[600], y[600];
    struct kek *kek;
    int seen_x = 0, seen_y = 0;
    assert_int_equal(kek_from_bytes(KEY1, &kek), 0);
    for (int i = 0; i < 8192 && !(seen_x && seen_y); i++) {
        struct jose_key *key;
        assert_int_equal(jose_key_generate(JOSE_ES256, "pad", &key), 0);
        json_t *jwk = jose_key_public_jwk(key);
        assert_non_null(jwk);
        assert_int_equal(member_bytes(jwk, "x", x), 32);
        assert_int_equal(member_bytes(jwk, "y", y), 32);
        if ((x[0] == 0 && !seen_x) || (y[0] == 0 && !seen_y)) {
            char *sealed;
            assert_int_equal(jose_key_seal(key, kek, &sealed), 0);
            assert_sealed_matches_jwk(kek, "pad", sealed, jwk);
            free(sealed);
            seen_x |= x[0] == 0;
            seen_y |= y[0] == 0;
        }
        json_decref(jwk);
        jose_key_free(key);
    }
    assert_true(seen_x && seen_y);
    kek_free(kek);
}

static void test_key_open_rejects(void **state)
{
    (void)state;
    struct kek *kek;
    struct jose_key *key = NULL;
    char *sealed;
    assert_int_equal(kek_from_bytes(KEY1, &kek), 0);

    /* authentic blobs that hold no usable key */
    assert_int_equal(kek_seal(kek, "k", "not DER", 7, &sealed), 0);
    assert_int_equal(jose_key_open(JOSE_ES256, "k", sealed, kek, &key), ERR_CORRUPT);
    free(sealed);
    assert_int_equal(kek_seal(kek, "k", "", 0, &sealed), 0);
    assert_int_equal(jose_key_open(JOSE_EDDSA, "k", sealed, kek, &key), ERR_CORRUPT);
    free(sealed);

    /* an RSA key too short to sign with */
    EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    unsigned char *der = NULL;
    int der_len = i2d_PrivateKey(weak, &der);
    assert_true(der_len > 0);
    assert_int_equal(kek_seal(kek, "k", der, (size_t)der_len, &sealed), 0);
    assert_int_equal(jose_key_open(JOSE_RS256, "k", sealed, kek, &key), ERR_CORRUPT);
    assert_int_equal(jose_key_open(JOSE_PS256, "k", sealed, kek, &key), ERR_CORRUPT);
    free(sealed);
    OPENSSL_clear_free(der, (size_t)der_len);
    EVP_PKEY_free(weak);

    /* malformed blobs */
    static const char *const bad[] = {"",
                                      "v1.",
                                      "v1",
                                      "v2.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                      "v1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                                      "v1.AAAA+AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(jose_key_open(JOSE_ES256, "k", bad[i], kek, &key), ERR_CORRUPT);
    assert_null(key);
    kek_free(kek);
}

static void test_kek_seal_open(void **state)
{
    (void)state;
    struct kek *kek, *other;
    char *s1, *s2;
    unsigned char *pt;
    size_t n;
    assert_int_equal(kek_from_bytes(KEY1, &kek), 0);
    assert_int_equal(kek_from_bytes(KEY2, &other), 0);

    assert_int_equal(kek_seal(kek, "aad", "hello", 5, &s1), 0);
    assert_int_equal(kek_seal(kek, "aad", "hello", 5, &s2), 0);
    assert_string_not_equal(s1, s2); /* fresh nonce each time */
    assert_int_equal(strlen(s1), 3 + b64url_len(12 + 5 + 16));

    assert_int_equal(kek_open(kek, "aad", s2, &pt, &n), 0);
    assert_int_equal(n, 5);
    assert_memory_equal(pt, "hello", 5);
    free(pt);

    pt = NULL;
    n = 99;
    assert_int_equal(kek_open(kek, "aae", s1, &pt, &n), ERR_CORRUPT);
    assert_int_equal(kek_open(kek, "", s1, &pt, &n), ERR_CORRUPT);
    assert_int_equal(kek_open(other, "aad", s1, &pt, &n), ERR_CORRUPT);
    assert_int_equal(kek_open(kek, "aad", NULL, &pt, &n), ERR_CORRUPT);
    assert_null(pt);
    assert_int_equal(n, 99);
    free(s1);
    free(s2);

    /* empty plaintext and empty aad */
    assert_int_equal(kek_seal(kek, "", NULL, 0, &s1), 0);
    assert_int_equal(kek_open(kek, "", s1, &pt, &n), 0);
    assert_int_equal(n, 0);
    free(pt);
    free(s1);

    kek_free(kek);
    kek_free(other);
    assert_null(kek_free(NULL));
}

/* "$pbkdf2-sha512$i=<iter>$<salt>$<PBKDF2(secret, salt, iter)>" built here, independently. */
static char *make_hash(const char *secret, const char *iter_text, int iter)
{
    unsigned char salt[16], out[64];
    char salt64[23], out64[87], *s;
    for (int i = 0; i < 16; i++)
        salt[i] = (unsigned char)(i * 7);
    assert_int_equal(
        PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), salt, 16, iter, EVP_sha512(), 64, out), 1);
    b64url_encode(salt, 16, salt64);
    b64url_encode(out, 64, out64);
    assert_true(asprintf(&s, "$pbkdf2-sha512$i=%s$%s$%s", iter_text, salt64, out64) > 0);
    return s;
}

static void test_secret_hash(void **state)
{
    (void)state;
    char *h1, *h2;
    assert_int_equal(secret_hash("s3cret", &h1), 0);
    assert_int_equal(secret_hash("s3cret", &h2), 0);
    assert_string_not_equal(h1, h2); /* salted */
    assert_true(strncmp(h1, "$pbkdf2-sha512$i=210000$", 24) == 0);
    assert_int_equal(strlen(h1), 24 + 22 + 1 + 86);
    assert_true(secret_hash_valid(h1));
    assert_int_equal(secret_verify("s3cret", h1), 0);
    assert_int_equal(secret_verify("s3cret!", h2), ERR_UNAUTH);
    free(h1);
    free(h2);

    /* the iteration count comes from the string */
    char *h = make_hash("pw", "1000", 1000);
    assert_true(secret_hash_valid(h));
    assert_int_equal(secret_verify("pw", h), 0);
    assert_int_equal(secret_verify("", h), ERR_UNAUTH);
    assert_int_equal(secret_verify("pW", h), ERR_UNAUTH);
    free(h);
    h = make_hash("", "1001", 1001);
    assert_int_equal(secret_verify("", h), 0);
    assert_int_equal(secret_verify("x", h), ERR_UNAUTH);
    free(h);
    /* the same bytes under a count they were not made with */
    h = make_hash("pw", "1001", 1000);
    assert_int_equal(secret_verify("pw", h), ERR_UNAUTH);
    free(h);
}

static void test_secret_malformed(void **state)
{
    (void)state;
    const char *salt = "AAECAwQFBgcICQoLDA0ODw";
    char hash[87];
    memset(hash, 'A', 86); /* 64 zero bytes */
    hash[86] = '\0';
    char ok[256];
    snprintf(ok, sizeof(ok), "$pbkdf2-sha512$i=1000$%s$%s", salt, hash);
    assert_true(secret_hash_valid(ok));
    assert_int_equal(secret_verify("x", ok), ERR_UNAUTH);

    static const char *const iters[] = {
        "999", "0999", "10000001", "-1000", "+1000",
        "",    "1e4",  "1000 ",    " 1000", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(iters) / sizeof(iters[0]); i++) {
        char s[256];
        snprintf(s, sizeof(s), "$pbkdf2-sha512$i=%s$%s$%s", iters[i], salt, hash);
        assert_false(secret_hash_valid(s));
        assert_int_equal(secret_verify("x", s), ERR_INVAL);
    }
    char s10m[256];
    snprintf(s10m, sizeof(s10m), "$pbkdf2-sha512$i=10000000$%s$%s", salt, hash);
    assert_true(secret_hash_valid(s10m));

    char bad[12][256];
    int nb = 0;
    snprintf(bad[nb++], 256, "$pbkdf2-sha256$i=1000$%s$%s", salt, hash);
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$n=1000$%s$%s", salt, hash);
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%.21s$%s", salt, hash);  /* short salt */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%sA$%s", salt, hash);    /* long salt */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%s$%.85s", salt, hash);  /* short hash */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%s$%sA", salt, hash);    /* long hash */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%s$%s$", salt, hash);    /* trailing */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%s$%s\n", salt, hash);   /* newline */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%.21s+$%s", salt, hash); /* alphabet */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%.21sx$%s", salt, hash); /* stray bits */
    snprintf(bad[nb++], 256, "$pbkdf2-sha512$i=1000$%s", hash);
    snprintf(bad[nb++], 256, "plain");
    for (int i = 0; i < nb; i++) {
        assert_false(secret_hash_valid(bad[i]));
        assert_int_equal(secret_verify("x", bad[i]), ERR_INVAL);
    }
    assert_false(secret_hash_valid(""));
    assert_false(secret_hash_valid(NULL));
    assert_int_equal(secret_verify("x", ""), ERR_INVAL);
    assert_int_equal(secret_verify("x", NULL), ERR_INVAL);
}

static void test_hashes_and_compare(void **state)
{
    (void)state;
    char hex[65], b64[44];
    crypto_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    crypto_sha256_b64url("abc", 3, b64);
    assert_string_equal(b64, "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0");
    crypto_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    assert_true(crypto_streq("token", "token"));
    assert_true(crypto_streq("", ""));
    assert_false(crypto_streq("token", "tokeN"));
    assert_false(crypto_streq("token", "token2"));
    assert_false(crypto_streq("tok", "token"));
    assert_false(crypto_streq("", "x"));

    assert_true(crypto_memeq("abc", "abc", 3));
    assert_false(crypto_memeq("abc", "abd", 3));
    assert_true(crypto_memeq("a", "b", 0));

    unsigned char w[8] = {1, 2, 3, 4, 5, 6, 7, 8}, zero[8] = {0};
    crypto_wipe(w, sizeof(w));
    assert_memory_equal(w, zero, sizeof(w));
    crypto_wipe(NULL, 0);
}

/* ---- KEK files ---- */

struct tmp {
    char dir[64];
    char path[128];
};

static int tmp_setup(void **state)
{
    struct tmp *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/test_jose.XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->path, sizeof(t->path), "%s/kek", t->dir);
    *state = t;
    return 0;
}

static int tmp_teardown(void **state)
{
    struct tmp *t = *state;
    char sub[160];
    unlink(t->path);
    snprintf(sub, sizeof(sub), "%s/sub", t->dir);
    rmdir(sub);
    int r = rmdir(t->dir);
    free(t);
    return r;
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
    unlink(path);
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, mode);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0); /* regardless of umask */
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    close(fd);
}

static void test_kek_load_create(void **state)
{
    struct tmp *t = *state;
    struct err_detail d = {{0}};
    struct kek *k1 = NULL, *k2 = NULL;
    struct stat st;

    assert_int_equal(kek_load(t->path, 0, &k1, &d), ERR_NOTFOUND);
    assert_null(k1);

    assert_int_equal(kek_load(t->path, 1, &k1, &d), 0);
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(st.st_size, 32);

    /* the second load reads the same key (with or without create) */
    assert_int_equal(kek_load(t->path, 0, &k2, &d), 0);
    char *sealed;
    unsigned char *pt;
    size_t n;
    assert_int_equal(kek_seal(k1, "kid", "key bytes", 9, &sealed), 0);
    assert_int_equal(kek_open(k2, "kid", sealed, &pt, &n), 0);
    assert_int_equal(n, 9);
    assert_memory_equal(pt, "key bytes", 9);
    free(pt);
    k2 = kek_free(k2);
    assert_int_equal(kek_load(t->path, 1, &k2, &d), 0);
    assert_int_equal(kek_open(k2, "kid", sealed, &pt, &n), 0);
    free(pt);
    free(sealed);
    kek_free(k1);
    kek_free(k2);

    /* creation needs the directory to exist */
    char missing[200];
    snprintf(missing, sizeof(missing), "%s/nope/kek", t->dir);
    k1 = NULL;
    d.msg[0] = '\0';
    assert_int_equal(kek_load(missing, 1, &k1, &d), ERR_IO);
    assert_non_null(strstr(d.msg, missing));
    assert_null(k1);
}

static void test_kek_load_refuses(void **state)
{
    struct tmp *t = *state;
    struct err_detail d = {{0}};
    struct kek *k = NULL;
    unsigned char bytes[33] = {7};
    char want[256];

    write_file(t->path, bytes, 32, 0644);
    assert_int_equal(kek_load(t->path, 1, &k, &d), ERR_INVAL);
    snprintf(want, sizeof(want), "KEK file %s must not be readable by group or others (chmod 600)",
             t->path);
    assert_string_equal(d.msg, want);
    assert_int_equal(chmod(t->path, 0640), 0);
    assert_int_equal(kek_load(t->path, 0, &k, &d), ERR_INVAL);
    assert_int_equal(chmod(t->path, 0602), 0);
    assert_int_equal(kek_load(t->path, 0, &k, &d), ERR_INVAL);
    assert_int_equal(chmod(t->path, 0400), 0);
    assert_int_equal(kek_load(t->path, 0, &k, &d), 0);
    k = kek_free(k);

    write_file(t->path, bytes, 31, 0600);
    d.msg[0] = '\0';
    assert_int_equal(kek_load(t->path, 1, &k, &d), ERR_CORRUPT);
    assert_non_null(strstr(d.msg, t->path));
    write_file(t->path, bytes, 33, 0600);
    assert_int_equal(kek_load(t->path, 0, &k, &d), ERR_CORRUPT);
    write_file(t->path, bytes, 0, 0600);
    assert_int_equal(kek_load(t->path, 1, &k, &d), ERR_CORRUPT);
    assert_null(k);

    /* a directory is not a key file */
    char sub[160];
    snprintf(sub, sizeof(sub), "%s/sub", t->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(kek_load(sub, 1, &k, &d), ERR_INVAL);
    assert_null(k);

    /* the given bytes are the key */
    struct kek *k2;
    char *sealed;
    unsigned char *pt;
    size_t n;
    write_file(t->path, KEY1, 32, 0600);
    assert_int_equal(kek_load(t->path, 0, &k, &d), 0);
    assert_int_equal(kek_from_bytes(KEY1, &k2), 0);
    assert_int_equal(kek_seal(k, "a", "x", 1, &sealed), 0);
    assert_int_equal(kek_open(k2, "a", sealed, &pt, &n), 0);
    free(pt);
    free(sealed);
    kek_free(k);
    kek_free(k2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alg_parse),
        cmocka_unit_test(test_es256),
        cmocka_unit_test(test_es384),
        cmocka_unit_test(test_rs256),
        cmocka_unit_test(test_ps256),
        cmocka_unit_test(test_eddsa),
        cmocka_unit_test(test_ec_coordinate_padding),
        cmocka_unit_test(test_key_open_rejects),
        cmocka_unit_test(test_kek_seal_open),
        cmocka_unit_test(test_secret_hash),
        cmocka_unit_test(test_secret_malformed),
        cmocka_unit_test(test_hashes_and_compare),
        cmocka_unit_test_setup_teardown(test_kek_load_create, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_kek_load_refuses, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
