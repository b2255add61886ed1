/* jose/keys.c — signing keys on OpenSSL 3 EVP_PKEYs. A struct jose_key is
 * filled once by generate or open and never changed, so it can be shared by
 * threads. Invariant: the EVP_PKEY always has the type the alg needs (P-256,
 * P-384, RSA >= 2048 bits, Ed25519); generate makes it so and open checks it,
 * so signing code never has to. At rest the private key is PKCS#8 DER sealed
 * under the KEK with the kid as aad; the DER is wiped as soon as it is used. */
#include "jose/keys.h"
#include "core/b64.h"
#include "jose/keys_priv.h"

#include <assert.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#define RSA_GEN_BITS 3072
#define RSA_MIN_BITS 2048

/* b64url_len() as a constant expression, for array sizes. */
#define B64URL_LEN(n) ((n) / 3 * 4 + ((n) % 3 ? (n) % 3 + 1 : 0))

struct jose_key {
    enum jose_alg alg;
    char *kid;
    EVP_PKEY *pkey;
};

static const char *const alg_names[JOSE_ALG_COUNT] = {
    [JOSE_ES256] = "ES256", [JOSE_ES384] = "ES384", [JOSE_RS256] = "RS256",
    [JOSE_PS256] = "PS256", [JOSE_EDDSA] = "EdDSA",
};

int jose_alg_parse(const char *name, enum jose_alg *ret)
{
    assert(ret);
    if (!name)
        return ERR_UNSUPPORTED;
    for (int i = 0; i < JOSE_ALG_COUNT; i++) {
        if (strcmp(name, alg_names[i]) == 0) {
            *ret = (enum jose_alg)i;
            return 0;
        }
    }
    return ERR_UNSUPPORTED;
}

const char *jose_alg_name(enum jose_alg alg)
{
    assert((unsigned)alg < JOSE_ALG_COUNT);
    return (unsigned)alg < JOSE_ALG_COUNT ? alg_names[alg] : NULL;
}

/* EC field size in bytes (JWK coordinates are padded to it), 0 for other algs. */
static size_t ec_field_len(enum jose_alg alg)
{
    return alg == JOSE_ES256 ? 32 : alg == JOSE_ES384 ? 48 : 0;
}

static int ec_curve_nid(enum jose_alg alg)
{
    return alg == JOSE_ES256 ? NID_X9_62_prime256v1 : NID_secp384r1;
}

/* Whether pkey is of the type `alg` signs with. */
static int pkey_fits(const EVP_PKEY *pkey, enum jose_alg alg)
{
    switch (alg) {
    case JOSE_ES256:
    case JOSE_ES384: {
        char group[64];
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            !EVP_PKEY_get_group_name(pkey, group, sizeof(group), NULL))
            return 0;
        int nid = OBJ_sn2nid(group);
        if (nid == NID_undef)
            nid = EC_curve_nist2nid(group);
        return nid == ec_curve_nid(alg);
    }
    case JOSE_RS256:
    case JOSE_PS256:
        return EVP_PKEY_is_a(pkey, "RSA") && EVP_PKEY_get_bits(pkey) >= RSA_MIN_BITS;
    case JOSE_EDDSA:
        return EVP_PKEY_is_a(pkey, "ED25519");
    default:
        return 0;
    }
}

/* Takes pkey (freed on failure too). */
static int key_new(enum jose_alg alg, const char *kid, EVP_PKEY *pkey, struct jose_key **ret)
{
    struct jose_key *k = malloc(sizeof(*k));
    char *kid_copy = strdup(kid);
    if (!k || !kid_copy) {
        free(k);
        free(kid_copy);
        EVP_PKEY_free(pkey);
        return ERR_NOMEM;
    }
    *k = (struct jose_key){.alg = alg, .kid = kid_copy, .pkey = pkey};
    *ret = k;
    return 0;
}

int jose_key_generate(enum jose_alg alg, const char *kid, struct jose_key **ret)
{
    assert(kid && ret);
    EVP_PKEY *pkey = NULL;
    switch (alg) {
    case JOSE_ES256:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        break;
    case JOSE_ES384:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        break;
    case JOSE_RS256:
    case JOSE_PS256:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)RSA_GEN_BITS);
        break;
    case JOSE_EDDSA:
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        break;
    default:
        return ERR_UNSUPPORTED;
    }
    if (!pkey)
        return ERR_CRYPTO;
    return key_new(alg, kid, pkey, ret);
}

int jose_key_seal(const struct jose_key *key, const struct kek *kek, char **ret)
{
    assert(key && kek && ret);
    unsigned char *der = NULL;
    size_t der_len = 0;
    int r = ERR_CRYPTO;

    OSSL_ENCODER_CTX *ectx =
        OSSL_ENCODER_CTX_new_for_pkey(key->pkey, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);
    if (!ectx)
        return ERR_NOMEM;
    if (OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0 || !OSSL_ENCODER_to_data(ectx, &der, &der_len))
        goto out;
    r = kek_seal(kek, key->kid, der, der_len, ret);
out:
    OPENSSL_clear_free(der, der_len);
    OSSL_ENCODER_CTX_free(ectx);
    return r;
}

int jose_key_open(enum jose_alg alg, const char *kid, const char *sealed, const struct kek *kek,
                  struct jose_key **ret)
{
    assert(kid && kek && ret);
    unsigned char *der;
    size_t der_len;
    if ((unsigned)alg >= JOSE_ALG_COUNT)
        return ERR_UNSUPPORTED;
    int r = kek_open(kek, kid, sealed, &der, &der_len);
    if (r < 0)
        return r;

    EVP_PKEY *pkey = NULL;
    const unsigned char *p = der;
    r = ERR_CORRUPT;
    if (der_len > LONG_MAX)
        goto out;
    pkey = d2i_AutoPrivateKey(NULL, &p, (long)der_len);
    if (!pkey || p != der + der_len || !pkey_fits(pkey, alg))
        goto out;
    r = key_new(alg, kid, pkey, ret);
    pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    OPENSSL_cleanse(der, der_len);
    free(der);
    return r;
}

/* Sets obj[name] to base64url(bn), big-endian, left-padded with zeros to `pad`
 * bytes, or minimal (no leading zeros) when pad is 0. */
static int set_bn(json_t *obj, const char *name, const BIGNUM *bn, size_t pad)
{
    size_t len = pad ? pad : (size_t)BN_num_bytes(bn);
    unsigned char *bin = malloc(len ? len : 1);
    char *b64 = malloc(b64url_len(len) + 1);
    int r = -1;
    if (!bin || !b64)
        goto out;
    if (BN_bn2binpad(bn, bin, (int)len) < 0)
        goto out;
    b64url_encode(bin, len, b64);
    r = json_object_set_new(obj, name, json_string(b64));
out:
    free(bin);
    free(b64);
    return r;
}

static int get_bn_member(json_t *obj, const char *name, const EVP_PKEY *pkey, const char *param,
                         size_t pad)
{
    BIGNUM *bn = NULL;
    if (!EVP_PKEY_get_bn_param(pkey, param, &bn))
        return -1;
    int r = set_bn(obj, name, bn, pad);
    BN_free(bn);
    return r;
}

json_t *jose_key_public_jwk(const struct jose_key *key)
{
    assert(key);
    json_t *jwk = json_object();
    int r = -1;
    if (!jwk)
        return NULL;

    switch (key->alg) {
    case JOSE_ES256:
    case JOSE_ES384:
        if (json_object_set_new(jwk, "kty", json_string("EC")) < 0 ||
            json_object_set_new(jwk, "crv",
                                json_string(key->alg == JOSE_ES256 ? "P-256" : "P-384")) < 0 ||
            get_bn_member(jwk, "x", key->pkey, OSSL_PKEY_PARAM_EC_PUB_X, ec_field_len(key->alg)) <
                0 ||
            get_bn_member(jwk, "y", key->pkey, OSSL_PKEY_PARAM_EC_PUB_Y, ec_field_len(key->alg)) <
                0)
            goto out;
        break;
    case JOSE_RS256:
    case JOSE_PS256:
        if (json_object_set_new(jwk, "kty", json_string("RSA")) < 0 ||
            get_bn_member(jwk, "n", key->pkey, OSSL_PKEY_PARAM_RSA_N, 0) < 0 ||
            get_bn_member(jwk, "e", key->pkey, OSSL_PKEY_PARAM_RSA_E, 0) < 0)
            goto out;
        break;
    case JOSE_EDDSA: {
        unsigned char pub[32];
        char x[B64URL_LEN(sizeof(pub)) + 1];
        size_t len = sizeof(pub);
        if (!EVP_PKEY_get_raw_public_key(key->pkey, pub, &len) || len != sizeof(pub))
            goto out;
        b64url_encode(pub, len, x);
        if (json_object_set_new(jwk, "kty", json_string("OKP")) < 0 ||
            json_object_set_new(jwk, "crv", json_string("Ed25519")) < 0 ||
            json_object_set_new(jwk, "x", json_string(x)) < 0)
            goto out;
        break;
    }
    default:
        goto out;
    }
    if (json_object_set_new(jwk, "kid", json_string(key->kid)) < 0 ||
        json_object_set_new(jwk, "alg", json_string(alg_names[key->alg])) < 0 ||
        json_object_set_new(jwk, "use", json_string("sig")) < 0)
        goto out;
    r = 0;
out:
    if (r < 0) {
        json_decref(jwk);
        return NULL;
    }
    return jwk;
}

const char *jose_key_kid(const struct jose_key *key)
{
    assert(key);
    return key->kid;
}

enum jose_alg jose_key_alg(const struct jose_key *key)
{
    assert(key);
    return key->alg;
}

EVP_PKEY *jose_key_pkey_(const struct jose_key *key)
{
    assert(key);
    return key->pkey;
}

struct jose_key *jose_key_free(struct jose_key *key)
{
    if (key) {
        EVP_PKEY_free(key->pkey);
        free(key->kid);
        free(key);
    }
    return NULL;
}
