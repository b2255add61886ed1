/* tests/fuzz/fuzz_jwt.c — compact JWS parsing, JWK import and JWK Set
 * selection on hostile bytes. The input is tried as a token: jws_parse must
 * accept it or refuse with ERR_INVAL/ERR_TOOBIG and a reason, and a token it
 * accepts must keep the parser's promises (accepted alg, object header and
 * payload, signing input = the bytes before the second dot, a signature of the
 * alg's size whose canonical base64url is the third segment); it is then
 * verified against fixed keys of every type and matched in a fixed JWK Set.
 * The input is also tried as JSON: a JWK (imported, then used on fixed tokens
 * of every alg) and a JWK Set. Nothing may crash, leak or answer outside the
 * documented codes. The fixed set holds the public keys of the corpus' signers
 * (the corpus' .jwt tokens verify with them) and RFC 7515 A.3's key. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/b64.h"
#include "jose/jws.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* clang-format off */
static const char JWKS[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"eqTCldYqswS6ppeZhE38ohcbsc1fnXQqjnxHiSs0t38\",\"y\":\""
    "RfLvC-DjSBQZLp5hDBZ1SCf5YbpwX6J0kjcpRaJjdOY\",\"kid\":\"fz-es256\",\"alg\":\"ES256\",\"use\":\"sig\"},{"
    "\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"PH1R7rvF5guO-y9m3E4c0lT4BaFYGtZEEEHs8_SGki3as46fF7QNzxiZ781Q"
    "QW1f\",\"y\":\"TVsZCiZsW8_yMoEAxQ1q8P5kGeGDeNbp5-PYKN6cTcusFrORRhEx7jHaQ-kD0kqx\",\"kid\":\"fz-es3"
    "84\",\"alg\":\"ES384\",\"use\":\"sig\"},{\"kty\":\"RSA\",\"n\":\"yKjFMk0HrEjsjYkO2NPjOhuM9wPRJ74H4-jBaFY1H"
    "pBdjXBgPZT9ysz7zbJ2WK29goaEznA51ewx0xIrjzA3gV9FNQT_hayJu9e7R5Cw1-iYNBcJBycV_wWztqyupvgqDAj"
    "WdQ-Zr6fjxGPa4WOJ0HQJM_mAGVqa6FsZ20wwNGlF8po6vGpZPQu-QIX6sKNVMd_S4GhCBynbgNnqkhJRZ3_pE3qtv"
    "I4mQG12GrNQIEqnoMtWKgwh8xGjDVez52l4j-8OoEsI-A4NsFIAvfe13MCjOvaTxniGHSwIBk7_iPS_AIVOWw4epq1"
    "TIKp-jxJnPJnF_DEfvCL5l_fK8smtmo00LmvZcwIEexmVSk9a4I3WRZic2m6BdMJHE2DHogUUEdGlPxkAldil0AD4N"
    "aHWRu5vQQUtmkLvXeKwMvhv9cjkWrj11VYrJnJcf2-5_J-UJSpOMxXNQokMTuLYZGyvLdAtRXgoGCGJos2mtzuAh08"
    "LQHmJ-MwKDB4QX4ZvfEzj\",\"e\":\"AQAB\",\"kid\":\"fz-rsa\",\"use\":\"sig\"},{\"kty\":\"OKP\",\"crv\":\"Ed25519\""
    ",\"x\":\"nopMJAQn1rkbTzNlar28KqP7ZpCfRJElXyGHT5O1_Gw\",\"kid\":\"fz-ed\",\"alg\":\"EdDSA\",\"use\":\"sig\""
    "},{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":\"x_FEzRu"
    "9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\",\"kid\":\"rfc7515-a3\"}]}"
;

/* clang-format on */

#define MAX_KEYS 8

static json_t *jwks;
static struct jose_pubkey *keys[MAX_KEYS];
static size_t n_keys;
/* Tokens built by hand for the JSON path: every alg, with a signature of its size. */
static struct jws fixed[JOSE_ALG_COUNT];
static unsigned char fixed_sig[384];
static char fixed_si[] = "eyJhbGciOiJFUzI1NiJ9.e30";
static const char *const kids[] = {NULL, "fz-es256", "fz-rsa", "rfc7515-a3", "nobody"};

static void init(void)
{
    jwks = json_loads(JWKS, JSON_REJECT_DUPLICATES, NULL);
    const json_t *arr = json_object_get(jwks, "keys");
    if (!arr || json_array_size(arr) > MAX_KEYS)
        abort();
    for (size_t i = 0; i < json_array_size(arr); i++) {
        struct err_detail d;
        if (jose_pubkey_from_jwk(json_array_get(arr, i), &keys[n_keys++], &d) < 0)
            abort();
    }
    memset(fixed_sig, 0x5a, sizeof(fixed_sig));
    for (int a = 0; a < JOSE_ALG_COUNT; a++) {
        size_t len = a == JOSE_ES256 ? 64 : a == JOSE_ES384 ? 96 : a == JOSE_EDDSA ? 64 : 384;
        fixed[a] = (struct jws){.alg = (enum jose_alg)a,
                                .signing_input = fixed_si,
                                .signing_input_len = strlen(fixed_si),
                                .sig = fixed_sig,
                                .sig_len = len};
    }
}

static size_t sig_size_ok(enum jose_alg alg, size_t n)
{
    switch (alg) {
    case JOSE_ES256:
    case JOSE_EDDSA:
        return n == 64;
    case JOSE_ES384:
        return n == 96;
    default:
        return n >= 256 && n <= 2048;
    }
}

/* What jws_parse promises about a token it accepted. */
static void check_parsed(const struct jws *jws, const char *tok, size_t size)
{
    size_t si = jws->signing_input_len;
    if ((unsigned)jws->alg >= JOSE_ALG_COUNT || !json_is_object(jws->header) ||
        !json_is_object(jws->payload) || si >= size || tok[si] != '.' ||
        memcmp(jws->signing_input, tok, si) != 0 || jws->signing_input[si] != '\0' ||
        !sig_size_ok(jws->alg, jws->sig_len))
        abort();
    if (jws->kid != json_string_value(json_object_get(jws->header, "kid")) ||
        jws->typ != json_string_value(json_object_get(jws->header, "typ")))
        abort();
    char *enc = malloc(b64url_len(jws->sig_len) + 1);
    if (!enc)
        return;
    b64url_encode(jws->sig, jws->sig_len, enc);
    if (strlen(enc) != size - si - 1 || memcmp(enc, tok + si + 1, size - si - 1) != 0)
        abort(); /* one signature, one encoding */
    free(enc);
}

static void check_verify(const struct jws *jws, const struct jose_pubkey *k)
{
    int r = jws_verify(jws, k);
    if (r != 0 && r != ERR_UNAUTH && r != ERR_INVAL && r != ERR_NOMEM)
        abort();
}

static void try_select(const json_t *set, const struct jws *jws)
{
    struct jose_pubkey *k = NULL;
    struct err_detail d = {{0}};
    int r = jose_jwks_select(set, jws, &k, &d);
    if (r == 0) {
        if (!k)
            abort();
        check_verify(jws, k);
        jose_pubkey_free(k);
    } else if ((r != ERR_NOTFOUND && r != ERR_INVAL && r != ERR_NOMEM) || k || !d.msg[0]) {
        abort();
    }
}

static void as_token(const uint8_t *data, size_t size)
{
    struct jws jws;
    struct err_detail d = {{0}};
    int r = jws_parse((const char *)data, size, &jws, &d);
    if (r < 0) {
        if ((r != ERR_INVAL && r != ERR_TOOBIG) || !d.msg[0])
            abort();
        return;
    }
    check_parsed(&jws, (const char *)data, size);
    for (size_t i = 0; i < n_keys; i++)
        check_verify(&jws, keys[i]);
    try_select(jwks, &jws);
    jws_done(&jws);
}

static void as_json(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j)
        return;
    struct jose_pubkey *k = NULL;
    struct err_detail d = {{0}};
    int r = jose_pubkey_from_jwk(j, &k, &d);
    if (r == 0) {
        int alg = jose_pubkey_alg(k);
        const char *kid = jose_pubkey_kid(k);
        if (alg < -1 || alg >= JOSE_ALG_COUNT ||
            (kid && !json_is_string(json_object_get(j, "kid"))))
            abort();
        for (int a = 0; a < JOSE_ALG_COUNT; a++)
            check_verify(&fixed[a], k);
        jose_pubkey_free(k);
    } else if ((r != ERR_INVAL && r != ERR_NOMEM) || k || !d.msg[0]) {
        abort();
    }
    for (int a = 0; a < JOSE_ALG_COUNT; a++) {
        for (size_t i = 0; i < sizeof(kids) / sizeof(kids[0]); i++) {
            fixed[a].kid = kids[i];
            try_select(j, &fixed[a]);
        }
    }
    json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        init();
        ready = 1;
    }
    as_token(data, size);
    as_json(data, size);
    return 0;
}
