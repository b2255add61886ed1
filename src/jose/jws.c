/* jose/jws.c — compact JWS on OpenSSL 3: signing with mcpauth's keys, strict
 * parsing of untrusted tokens, public JWK import and verification.
 *
 * The workload is one sign per issued token and one parse + verify per
 * introspection, token exchange or client assertion, so nothing here re-parses
 * a key: a struct jose_key or jose_pubkey holds a ready EVP_PKEY, and a call
 * costs one EVP_MD_CTX and a few small buffers (JSON is serialised with
 * json_dumpb into the stack when it fits). jose_pubkey_from_key shares the
 * signing key's EVP_PKEY by reference rather than exporting its public half,
 * because introspection asks for it on every request; only verification is
 * ever done with it.
 *
 * Invariants: a struct jose_pubkey's `kind` is the type of its EVP_PKEY, fixed
 * at import (EC points are checked to lie on the curve, RSA moduli have >= 2048
 * bits), so verification only compares enums; a struct jws that jws_parse
 * filled has an accepted alg, object header and payload, and for ECDSA and
 * EdDSA a signature of exactly the size the alg produces. Failed OpenSSL calls
 * leave nothing on the thread's error queue. */
#include "jose/jws.h"
#include "core/b64.h"
#include "jose/keys_priv.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#define RSA_MIN_BITS    2048
#define RSA_MAX_BYTES   2048 /* 16384 bits, OpenSSL's own limit for RSA */
#define RSA_MAX_E_BYTES 8
#define EC_MAX_LEN      48 /* P-384 coordinate, and half an ES384 signature */
#define ED25519_LEN     32
#define ED25519_SIG_LEN 64
/* DER ECDSA-Sig-Value of P-384: SEQUENCE { INTEGER r, INTEGER s }, each at most
 * 1 + 48 bytes (a 0x00 before a set top bit); every length fits the short form. */
#define EC_MAX_DER (2 + 2 * (2 + 1 + EC_MAX_LEN))
#define JSON_STACK 1024 /* header/payload JSON kept on the stack up to this size */

enum key_kind { KIND_P256, KIND_P384, KIND_RSA, KIND_ED25519 };

struct jose_pubkey {
    EVP_PKEY *pkey;
    enum key_kind kind;
    int alg;   /* enum jose_alg the JWK named, or -1 */
    char *kid; /* owned; NULL when the JWK had none */
};

static const char *const kind_names[] = {
    [KIND_P256] = "EC P-256",
    [KIND_P384] = "EC P-384",
    [KIND_RSA] = "RSA",
    [KIND_ED25519] = "OKP Ed25519",
};

static enum key_kind alg_kind(enum jose_alg alg)
{
    switch (alg) {
    case JOSE_ES256:
        return KIND_P256;
    case JOSE_ES384:
        return KIND_P384;
    case JOSE_RS256:
    case JOSE_PS256:
        return KIND_RSA;
    default:
        return KIND_ED25519;
    }
}

/* Size of R (and of S) in an ECDSA signature, 0 for other algs. */
static size_t ec_len(enum jose_alg alg)
{
    return alg == JOSE_ES256 ? 32 : alg == JOSE_ES384 ? 48 : 0;
}

/* The digest name EVP_DigestSignInit_ex wants; NULL for EdDSA (one-shot, no digest). */
static const char *md_name(enum jose_alg alg)
{
    return alg == JOSE_ES384 ? "SHA384" : alg == JOSE_EDDSA ? NULL : "SHA256";
}

/* Sets PS256's parameters (RFC 7518 §3.5: MGF1 with SHA-256, salt of the hash
 * length). RSA_PSS_SALTLEN_DIGEST makes verification insist on exactly that salt. */
static int set_pss(EVP_PKEY_CTX *pctx)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx, "SHA256", NULL) == 1;
}

/* ---- signing ---- */

/* DER ECDSA-Sig-Value (from OpenSSL) to the fixed-size R||S of RFC 7518 §3.4. */
static int ecdsa_der_to_raw(const unsigned char *der, size_t der_len, size_t n, unsigned char *out)
{
    const unsigned char *p = der;
    const BIGNUM *r, *s;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    int ok = 0;
    if (!es)
        return ERR_CRYPTO;
    ECDSA_SIG_get0(es, &r, &s);
    ok = BN_bn2binpad(r, out, (int)n) == (int)n && BN_bn2binpad(s, out + n, (int)n) == (int)n;
    ECDSA_SIG_free(es);
    return ok ? 0 : ERR_CRYPTO;
}

/* Per-thread signing contexts, set up once per key and copied for each signature:
 * EVP_DigestSignInit_ex fetches the algorithm from the provider on every call (measured:
 * about 5 % of a client-credentials request's CPU). An entry holds a reference to its
 * key, so a key freed elsewhere can never be taken for a new one at the same address. */
#define SIGN_CACHE 4
struct sign_tmpl {
    EVP_PKEY *pkey;
    enum jose_alg alg;
    EVP_MD_CTX *ctx;
};
struct sign_cache {
    struct sign_tmpl t[SIGN_CACHE];
    unsigned next;
};
static pthread_key_t sign_key;
static pthread_once_t sign_once = PTHREAD_ONCE_INIT;

static void sign_cache_free(void *p)
{
    struct sign_cache *c = p;
    for (int i = 0; i < SIGN_CACHE; i++) {
        EVP_MD_CTX_free(c->t[i].ctx);
        EVP_PKEY_free(c->t[i].pkey);
    }
    free(c);
}

static void sign_key_init(void)
{
    if (pthread_key_create(&sign_key, sign_cache_free) != 0)
        abort(); /* only when the process is out of thread keys at start */
}

/* A fresh context initialised for signing with pkey/alg into *ret. */
static int sign_init(EVP_PKEY *pkey, enum jose_alg alg, EVP_MD_CTX **ret)
{
    EVP_PKEY_CTX *pctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return ERR_NOMEM;
    if (EVP_DigestSignInit_ex(ctx, &pctx, md_name(alg), NULL, NULL, pkey, NULL) != 1 ||
        (alg == JOSE_PS256 && !set_pss(pctx))) {
        EVP_MD_CTX_free(ctx);
        return ERR_CRYPTO;
    }
    *ret = ctx;
    return 0;
}

/* A context ready to sign with pkey/alg, copied from this thread's template. */
static int sign_ctx(EVP_PKEY *pkey, enum jose_alg alg, EVP_MD_CTX **ret)
{
    pthread_once(&sign_once, sign_key_init);
    struct sign_cache *c = pthread_getspecific(sign_key);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c || pthread_setspecific(sign_key, c) != 0) {
            free(c);
            return sign_init(pkey, alg, ret);
        }
    }
    struct sign_tmpl *t = NULL;
    for (int i = 0; i < SIGN_CACHE && !t; i++)
        if (c->t[i].pkey == pkey && c->t[i].alg == alg)
            t = &c->t[i];
    if (!t) {
        EVP_MD_CTX *tmpl;
        int r = sign_init(pkey, alg, &tmpl);
        if (r < 0)
            return r;
        t = &c->t[c->next++ % SIGN_CACHE];
        EVP_MD_CTX_free(t->ctx);
        EVP_PKEY_free(t->pkey);
        EVP_PKEY_up_ref(pkey);
        *t = (struct sign_tmpl){pkey, alg, tmpl};
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_MD_CTX_copy_ex(ctx, t->ctx) == 1) {
        *ret = ctx;
        return 0;
    }
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return sign_init(pkey, alg, ret); /* a context that cannot be copied */
}

/* Signs data into sig (room for EVP_PKEY_get_size(pkey) bytes, at least 2 * EC_MAX_LEN)
 * and sets *sig_len. */
static int sign_raw(EVP_PKEY *pkey, enum jose_alg alg, const char *data, size_t n,
                    unsigned char *sig, size_t *sig_len)
{
    unsigned char der[EC_MAX_DER + 16];
    size_t len = ec_len(alg) ? sizeof(der) : *sig_len;
    EVP_MD_CTX *ctx = NULL;
    int r = sign_ctx(pkey, alg, &ctx);
    if (r < 0) {
        ERR_clear_error();
        return r;
    }
    r = ERR_CRYPTO;
    if (EVP_DigestSign(ctx, ec_len(alg) ? der : sig, &len, (const unsigned char *)data, n) != 1)
        goto out;
    if (ec_len(alg)) {
        r = ecdsa_der_to_raw(der, len, ec_len(alg), sig);
        if (r < 0)
            goto out;
        len = 2 * ec_len(alg);
    }
    *sig_len = len;
    r = 0;
out:
    EVP_MD_CTX_free(ctx);
    if (r < 0)
        ERR_clear_error();
    return r;
}

/* Serialises j compactly into buf (n bytes) or, when it does not fit there, into a
 * new heap buffer left in *heap. Returns the length and sets *out; 0 on failure. */
static size_t dump(const json_t *j, char *buf, size_t n, char **out, char **heap)
{
    size_t len = json_dumpb(j, buf, n, JSON_COMPACT);
    if (len == 0 || len <= n) {
        *out = buf;
        return len;
    }
    char *h = malloc(len);
    if (!h || json_dumpb(j, h, len, JSON_COMPACT) != len) {
        free(h);
        return 0;
    }
    *heap = h;
    *out = h;
    return len;
}

int jws_sign(const struct jose_key *key, json_t *header, const json_t *payload, char **ret)
{
    assert(key && json_is_object(header) && json_is_object(payload) && ret);
    enum jose_alg alg = jose_key_alg(key);
    EVP_PKEY *pkey = jose_key_pkey_(key);
    char hbuf[JSON_STACK], pbuf[JSON_STACK];
    char *hjson = NULL, *pjson = NULL, *hheap = NULL, *pheap = NULL, *tok = NULL;
    int r = ERR_NOMEM;

    if (json_object_set_new(header, "alg", json_string(jose_alg_name(alg))) < 0 ||
        json_object_set_new(header, "kid", json_string(jose_key_kid(key))) < 0)
        return ERR_NOMEM;
    size_t hlen = dump(header, hbuf, sizeof(hbuf), &hjson, &hheap);
    size_t plen = dump(payload, pbuf, sizeof(pbuf), &pjson, &pheap);
    if (!hlen || !plen)
        goto out;

    /* One buffer: the signing input is encoded in place, the signature is written
     * raw behind the room its base64url will take, then encoded into that room. */
    size_t sig_max = (size_t)EVP_PKEY_get_size(pkey);
    if (sig_max < 2 * EC_MAX_LEN)
        sig_max = 2 * EC_MAX_LEN;
    size_t hb = b64url_len(hlen), pb = b64url_len(plen), sb = b64url_len(sig_max);
    tok = malloc(hb + 1 + pb + 1 + sb + 1 + sig_max);
    if (!tok)
        goto out;
    b64url_encode(hjson, hlen, tok);
    tok[hb] = '.';
    b64url_encode(pjson, plen, tok + hb + 1);
    size_t si_len = hb + 1 + pb;
    unsigned char *sig = (unsigned char *)tok + si_len + 1 + sb + 1;
    size_t sig_len = sig_max;
    r = sign_raw(pkey, alg, tok, si_len, sig, &sig_len);
    if (r < 0)
        goto out;
    tok[si_len] = '.';
    b64url_encode(sig, sig_len, tok + si_len + 1);
    *ret = tok;
    tok = NULL;
out:
    free(tok);
    free(hheap);
    free(pheap);
    return r;
}

/* ---- parsing ---- */

static int is_b64url(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Decodes one segment (already known to be base64url characters) and loads it as a
 * JSON object. `what` names it in messages. */
static int load_segment(const char *seg, size_t n, unsigned char *buf, const char *what,
                        json_t **ret, struct err_detail *d)
{
    size_t len;
    json_error_t jerr;
    if (b64url_decode(seg, n, buf, &len) < 0)
        return err_set(d, ERR_INVAL, "%s is not valid base64url", what);
    json_t *j = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        return err_set(d, ERR_INVAL, "%s is not valid JSON: %.100s", what, jerr.text);
    if (!json_is_object(j)) {
        json_decref(j);
        return err_set(d, ERR_INVAL, "%s is not a JSON object", what);
    }
    *ret = j;
    return 0;
}

/* The header's "alg": accepted, or refused with the reason callers show. */
static int header_alg(const json_t *h, enum jose_alg *ret, struct err_detail *d)
{
    const json_t *v = json_object_get(h, "alg");
    const char *name = json_string_value(v);
    if (!v)
        return err_set(d, ERR_INVAL, "alg missing");
    if (!name)
        return err_set(d, ERR_INVAL, "alg is not a string");
    if (jose_alg_parse(name, ret) == 0)
        return 0;
    if (strcmp(name, "none") == 0)
        return err_set(d, ERR_INVAL, "alg none is not accepted");
    if (strcmp(name, "HS256") == 0 || strcmp(name, "HS384") == 0 || strcmp(name, "HS512") == 0)
        return err_set(d, ERR_INVAL, "HMAC algorithms are not accepted");
    return err_set(d, ERR_INVAL, "unsupported alg %.40s", name);
}

/* Optional string member: 0 and *ret (NULL when absent), or ERR_INVAL. */
static int opt_string(const json_t *obj, const char *name, const char **ret, struct err_detail *d)
{
    const json_t *v = json_object_get(obj, name);
    if (v && !json_is_string(v))
        return err_set(d, ERR_INVAL, "%s is not a string", name);
    *ret = json_string_value(v);
    return 0;
}

static int check_sig_len(enum jose_alg alg, size_t n, struct err_detail *d)
{
    size_t want = ec_len(alg) ? 2 * ec_len(alg) : alg == JOSE_EDDSA ? ED25519_SIG_LEN : 0;
    if (want && n != want)
        return err_set(d, ERR_INVAL, "signature of %zu bytes does not fit %s", n,
                       jose_alg_name(alg));
    if (!want && (n < RSA_MIN_BITS / 8 || n > RSA_MAX_BYTES))
        return err_set(d, ERR_INVAL, "signature of %zu bytes does not fit %s", n,
                       jose_alg_name(alg));
    return 0;
}

int jws_parse(const char *token, size_t len, struct jws *ret, struct err_detail *d)
{
    assert(ret && (token || len == 0));
    if (len > JWS_MAX_TOKEN)
        return err_set(d, ERR_TOOBIG, "token longer than %d bytes", JWS_MAX_TOKEN);

    size_t dot[2] = {0, 0};
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c == '.') {
            if (dots == 2)
                return err_set(d, ERR_INVAL, "not a JWT: expected three segments");
            dot[dots++] = i;
        } else if (!is_b64url(c)) {
            return err_set(d, ERR_INVAL, "not a JWT: invalid character at offset %zu", i);
        }
    }
    if (dots != 2)
        return err_set(d, ERR_INVAL, "not a JWT: expected three segments");
    const char *hseg = token, *pseg = token + dot[0] + 1, *sseg = token + dot[1] + 1;
    size_t hn = dot[0], pn = dot[1] - dot[0] - 1, sn = len - dot[1] - 1;
    if (!hn || !pn || !sn) {
        const char *which = !hn ? "header" : !pn ? "payload" : "signature";
        return err_set(d, ERR_INVAL, "not a JWT: empty %s segment", which);
    }

    json_t *header = NULL, *payload = NULL;
    const char *kid = NULL, *typ = NULL;
    enum jose_alg alg;
    unsigned char *sig = NULL;
    size_t sig_len;
    char *si = NULL;
    int r = ERR_NOMEM;
    /* scratch for the decoded header and payload, in turn; b64url_decode's bound */
    unsigned char *buf = malloc((hn > pn ? hn : pn) / 4 * 3 + 3);
    if (!buf)
        goto out;

    r = load_segment(hseg, hn, buf, "header", &header, d);
    if (r < 0)
        goto out;
    r = header_alg(header, &alg, d);
    if (r < 0)
        goto out;
    r = ERR_INVAL;
    if (json_object_get(header, "crit")) {
        err_set(d, r, "crit is not supported");
        goto out;
    }
    if (opt_string(header, "kid", &kid, d) < 0 || opt_string(header, "typ", &typ, d) < 0)
        goto out;
    r = load_segment(pseg, pn, buf, "payload", &payload, d);
    if (r < 0)
        goto out;

    r = ERR_NOMEM;
    sig = malloc(sn / 4 * 3 + 3);
    si = malloc(dot[1] + 1);
    if (!sig || !si)
        goto out;
    r = ERR_INVAL;
    if (b64url_decode(sseg, sn, sig, &sig_len) < 0) {
        err_set(d, r, "signature is not valid base64url");
        goto out;
    }
    r = check_sig_len(alg, sig_len, d);
    if (r < 0)
        goto out;
    memcpy(si, token, dot[1]);
    si[dot[1]] = '\0';

    *ret = (struct jws){
        .header = header,
        .payload = payload,
        .alg = alg,
        .kid = kid,
        .typ = typ,
        .signing_input = si,
        .signing_input_len = dot[1],
        .sig = sig,
        .sig_len = sig_len,
    };
    header = payload = NULL;
    si = NULL;
    sig = NULL;
    r = 0;
out:
    free(buf);
    free(sig);
    free(si);
    json_decref(header);
    json_decref(payload);
    return r;
}

void jws_done(struct jws *jws)
{
    if (!jws)
        return;
    json_decref(jws->header);
    json_decref(jws->payload);
    free(jws->signing_input);
    free(jws->sig);
    *jws = (struct jws){.header = NULL};
}

/* ---- public keys ---- */

/* Takes pkey (freed on failure too); copies kid. */
static int pubkey_new(EVP_PKEY *pkey, enum key_kind kind, int alg, const char *kid,
                      struct jose_pubkey **ret)
{
    struct jose_pubkey *k = malloc(sizeof(*k));
    char *kid_copy = kid ? strdup(kid) : NULL;
    if (!k || (kid && !kid_copy)) {
        free(k);
        free(kid_copy);
        EVP_PKEY_free(pkey);
        return ERR_NOMEM;
    }
    *k = (struct jose_pubkey){.pkey = pkey, .kind = kind, .alg = alg, .kid = kid_copy};
    *ret = k;
    return 0;
}

/* Decodes the base64url string member `name` into out (room for max + 3 bytes);
 * *ret_len is its length, at most max. */
static int b64_member(const json_t *jwk, const char *name, unsigned char *out, size_t max,
                      size_t *ret_len, struct err_detail *d)
{
    const json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return err_set(d, ERR_INVAL, "JWK member %s missing or not a string", name);
    size_t n = json_string_length(v);
    if (n > b64url_len(max))
        return err_set(d, ERR_INVAL, "JWK member %s is too long", name);
    if (b64url_decode(json_string_value(v), n, out, ret_len) < 0)
        return err_set(d, ERR_INVAL, "JWK member %s is not valid base64url", name);
    return 0;
}

/* EVP_PKEY_fromdata with the parameters bld holds; the builder is freed. */
static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = bld ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    EVP_PKEY *pkey = NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    return pkey;
}

static int ec_import(const json_t *jwk, EVP_PKEY **ret, enum key_kind *ret_kind,
                     struct err_detail *d)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    size_t n, xl, yl;
    enum key_kind kind;
    if (crv && strcmp(crv, "P-256") == 0) {
        n = 32;
        kind = KIND_P256;
    } else if (crv && strcmp(crv, "P-384") == 0) {
        n = 48;
        kind = KIND_P384;
    } else {
        return err_set(d, ERR_INVAL, "unsupported EC crv %.40s", crv ? crv : "(missing)");
    }
    /* uncompressed point 0x04 || x || y; each coordinate decoded with b64url's slack */
    unsigned char point[1 + 2 * EC_MAX_LEN + 3], y[EC_MAX_LEN + 3];
    int r = b64_member(jwk, "x", point + 1, EC_MAX_LEN, &xl, d);
    if (r < 0)
        return r;
    r = b64_member(jwk, "y", y, EC_MAX_LEN, &yl, d);
    if (r < 0)
        return r;
    if (xl != n || yl != n)
        return err_set(d, ERR_INVAL, "%s coordinates must be %zu bytes", crv, n);
    point[0] = 0x04;
    memcpy(point + 1 + n, y, n);

    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, crv, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * n)) {
        OSSL_PARAM_BLD_free(bld);
        return ERR_NOMEM;
    }
    /* fromdata already refuses a point off the curve; the explicit check keeps that
     * from resting on a provider detail. P-256 and P-384 have cofactor 1, so the quick
     * check (on the curve, coordinates in range, not infinity) is the full one. */
    EVP_PKEY *pkey = from_params("EC", bld);
    EVP_PKEY_CTX *check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    int ok = check && EVP_PKEY_public_check_quick(check) == 1;
    EVP_PKEY_CTX_free(check);
    if (!ok) {
        EVP_PKEY_free(pkey);
        return err_set(d, ERR_INVAL, "the EC point is not on curve %s", crv);
    }
    *ret = pkey;
    *ret_kind = kind;
    return 0;
}

/* The value of a big-endian unsigned integer without its leading zero bytes. */
static const unsigned char *strip_zeros(const unsigned char *p, size_t *n)
{
    while (*n && !p[0]) {
        p++;
        (*n)--;
    }
    return p;
}

static int rsa_import(const json_t *jwk, EVP_PKEY **ret, struct err_detail *d)
{
    unsigned char nbuf[RSA_MAX_BYTES + 3], ebuf[RSA_MAX_E_BYTES + 3];
    size_t nl, el;
    int r = b64_member(jwk, "n", nbuf, RSA_MAX_BYTES, &nl, d);
    if (r < 0)
        return r;
    r = b64_member(jwk, "e", ebuf, RSA_MAX_E_BYTES, &el, d);
    if (r < 0)
        return r;
    /* Base64urlUInt is minimal, but some JWKs carry a leading zero octet; the value
     * is what counts. */
    const unsigned char *n = strip_zeros(nbuf, &nl), *e = strip_zeros(ebuf, &el);
    if (nl < RSA_MIN_BITS / 8 || !(n[nl - 1] & 1))
        return err_set(d, ERR_INVAL, "RSA modulus must be odd and at least %d bits", RSA_MIN_BITS);
    if (el == 0 || !(e[el - 1] & 1) || (el == 1 && e[0] == 1))
        return err_set(d, ERR_INVAL, "RSA exponent must be odd and greater than 1");

    BIGNUM *bn_n = BN_bin2bn(n, (int)nl, NULL), *bn_e = BN_bin2bn(e, (int)el, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    r = ERR_NOMEM;
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
        OSSL_PARAM_BLD_free(bld);
        goto out;
    }
    pkey = from_params("RSA", bld);
    if (!pkey || EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS) {
        EVP_PKEY_free(pkey);
        r = err_set(d, ERR_INVAL, "the RSA key does not import");
        goto out;
    }
    *ret = pkey;
    r = 0;
out:
    BN_free(bn_n);
    BN_free(bn_e);
    return r;
}

static int okp_import(const json_t *jwk, EVP_PKEY **ret, struct err_detail *d)
{
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    unsigned char x[ED25519_LEN + 3];
    size_t xl;
    if (!crv || strcmp(crv, "Ed25519") != 0)
        return err_set(d, ERR_INVAL, "unsupported OKP crv %.40s", crv ? crv : "(missing)");
    int r = b64_member(jwk, "x", x, ED25519_LEN, &xl, d);
    if (r < 0)
        return r;
    if (xl != ED25519_LEN)
        return err_set(d, ERR_INVAL, "Ed25519 x must be %d bytes", ED25519_LEN);
    EVP_PKEY *pkey = EVP_PKEY_new_raw_public_key_ex(NULL, "ED25519", NULL, x, xl);
    if (!pkey)
        return err_set(d, ERR_INVAL, "the Ed25519 key does not import");
    *ret = pkey;
    return 0;
}

/* "use" and "key_ops", when present, must allow verifying signatures (RFC 7517 §4.2-3). */
static int check_usage(const json_t *jwk, struct err_detail *d)
{
    const json_t *use = json_object_get(jwk, "use"), *ops = json_object_get(jwk, "key_ops");
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
        return err_set(d, ERR_INVAL, "JWK use is not sig");
    if (ops) {
        size_t i;
        const json_t *op;
        if (!json_is_array(ops))
            return err_set(d, ERR_INVAL, "JWK key_ops is not an array");
        json_array_foreach(ops, i, op)
        {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify") == 0)
                return 0;
        }
        return err_set(d, ERR_INVAL, "JWK key_ops does not allow verify");
    }
    return 0;
}

int jose_pubkey_from_jwk(const json_t *jwk, struct jose_pubkey **ret, struct err_detail *d)
{
    static const char *const private_members[] = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"};
    assert(ret);
    if (!json_is_object(jwk))
        return err_set(d, ERR_INVAL, "JWK is not a JSON object");
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    if (!kty)
        return err_set(d, ERR_INVAL, "JWK kty missing or not a string");
    if (strcmp(kty, "oct") == 0)
        return err_set(d, ERR_INVAL, "symmetric JWKs (kty oct) are not accepted");
    for (size_t i = 0; i < sizeof(private_members) / sizeof(private_members[0]); i++) {
        if (json_object_get(jwk, private_members[i]))
            return err_set(d, ERR_INVAL, "JWK has the private member %s", private_members[i]);
    }
    int r = check_usage(jwk, d);
    if (r < 0)
        return r;
    const char *kid = NULL, *alg_name = NULL;
    if (opt_string(jwk, "kid", &kid, d) < 0 || opt_string(jwk, "alg", &alg_name, d) < 0)
        return ERR_INVAL;
    enum jose_alg alg = JOSE_ALG_COUNT;
    if (alg_name && jose_alg_parse(alg_name, &alg) < 0)
        return err_set(d, ERR_INVAL, "JWK alg %.40s is not supported", alg_name);

    EVP_PKEY *pkey = NULL;
    enum key_kind kind = KIND_RSA;
    if (strcmp(kty, "EC") == 0) {
        r = ec_import(jwk, &pkey, &kind, d);
    } else if (strcmp(kty, "RSA") == 0) {
        r = rsa_import(jwk, &pkey, d);
    } else if (strcmp(kty, "OKP") == 0) {
        kind = KIND_ED25519;
        r = okp_import(jwk, &pkey, d);
    } else {
        r = err_set(d, ERR_INVAL, "unsupported kty %.40s", kty);
    }
    ERR_clear_error();
    if (r < 0)
        return r;
    if (alg_name && alg_kind(alg) != kind) {
        EVP_PKEY_free(pkey);
        return err_set(d, ERR_INVAL, "JWK alg %s does not fit a %s key", alg_name,
                       kind_names[kind]);
    }
    return pubkey_new(pkey, kind, alg_name ? (int)alg : -1, kid, ret);
}

int jose_pubkey_from_key(const struct jose_key *key, struct jose_pubkey **ret)
{
    assert(key && ret);
    EVP_PKEY *pkey = jose_key_pkey_(key);
    enum jose_alg alg = jose_key_alg(key);
    if (EVP_PKEY_up_ref(pkey) != 1)
        return ERR_CRYPTO;
    return pubkey_new(pkey, alg_kind(alg), (int)alg, jose_key_kid(key), ret);
}

struct jose_pubkey *jose_pubkey_free(struct jose_pubkey *k)
{
    if (k) {
        EVP_PKEY_free(k->pkey);
        free(k->kid);
        free(k);
    }
    return NULL;
}

const char *jose_pubkey_kid(const struct jose_pubkey *k)
{
    assert(k);
    return k->kid;
}

int jose_pubkey_alg(const struct jose_pubkey *k)
{
    assert(k);
    return k->alg;
}

/* ---- verification ---- */

/* A DER INTEGER of the n-byte big-endian unsigned v: minimal, with a 0x00 before a
 * set top bit. Writes at most 3 + n bytes. */
static size_t der_uint(const unsigned char *v, size_t n, unsigned char *out)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    size_t pad = v[0] & 0x80 ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    out[2] = 0x00;
    memcpy(out + 2 + pad, v, n);
    return 2 + pad + n;
}

/* R||S (n bytes each, n <= EC_MAX_LEN) to the DER ECDSA-Sig-Value OpenSSL verifies;
 * out has EC_MAX_DER bytes. Encoded by hand: it is short-form DER throughout, and
 * this saves three allocations per verification. */
static size_t ecdsa_raw_to_der(const unsigned char *rs, size_t n, unsigned char *out)
{
    size_t len = der_uint(rs, n, out + 2);
    len += der_uint(rs + n, n, out + 2 + len);
    out[0] = 0x30;
    out[1] = (unsigned char)len;
    return 2 + len;
}

int jws_verify(const struct jws *jws, const struct jose_pubkey *key)
{
    assert(jws && key);
    enum jose_alg alg = jws->alg;
    if ((unsigned)alg >= JOSE_ALG_COUNT || alg_kind(alg) != key->kind ||
        (key->alg >= 0 && key->alg != (int)alg))
        return ERR_INVAL;

    const unsigned char *sig = jws->sig;
    size_t sig_len = jws->sig_len, n = ec_len(alg);
    unsigned char der[EC_MAX_DER];
    if (n) {
        if (sig_len != 2 * n)
            return ERR_UNAUTH;
        sig_len = ecdsa_raw_to_der(sig, n, der);
        sig = der;
    } else if (alg == JOSE_EDDSA && sig_len != ED25519_SIG_LEN) {
        return ERR_UNAUTH;
    }

    EVP_PKEY_CTX *pctx = NULL;
    int r = ERR_CRYPTO;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return ERR_NOMEM;
    if (EVP_DigestVerifyInit_ex(ctx, &pctx, md_name(alg), NULL, NULL, key->pkey, NULL) != 1)
        goto out;
    if (alg == JOSE_PS256 && !set_pss(pctx))
        goto out;
    r = EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)jws->signing_input,
                         jws->signing_input_len) == 1
            ? 0
            : ERR_UNAUTH;
out:
    EVP_MD_CTX_free(ctx);
    if (r < 0)
        ERR_clear_error();
    return r;
}

/* ---- JWK Sets ---- */

/* Whether the JWK's kty/crv (and "alg", when it names one) fit alg, from its JSON
 * alone: keys of another type are passed over without importing them. */
static int jwk_fits(const json_t *jwk, enum jose_alg alg)
{
    const char *kty = json_string_value(json_object_get(jwk, "kty"));
    const char *crv = json_string_value(json_object_get(jwk, "crv"));
    const char *name = json_string_value(json_object_get(jwk, "alg"));
    if (!kty || (name && strcmp(name, jose_alg_name(alg)) != 0))
        return 0;
    switch (alg_kind(alg)) {
    case KIND_P256:
        return strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-256") == 0;
    case KIND_P384:
        return strcmp(kty, "EC") == 0 && crv && strcmp(crv, "P-384") == 0;
    case KIND_RSA:
        return strcmp(kty, "RSA") == 0;
    default:
        return strcmp(kty, "OKP") == 0 && crv && strcmp(crv, "Ed25519") == 0;
    }
}

int jose_jwks_select(const json_t *jwks, const struct jws *jws, struct jose_pubkey **ret,
                     struct err_detail *d)
{
    assert(jws && ret);
    const json_t *keys = json_object_get(jwks, "keys");
    const json_t *jwk;
    struct jose_pubkey *found = NULL;
    const char *alg = jose_alg_name(jws->alg);
    size_t i;
    if (!json_is_array(keys))
        return err_set(d, ERR_INVAL, "not a JWK Set: keys missing or not an array");

    json_array_foreach(keys, i, jwk)
    {
        if (!json_is_object(jwk) || !jwk_fits(jwk, jws->alg))
            continue;
        const char *kid = json_string_value(json_object_get(jwk, "kid"));
        if (jws->kid && (!kid || strcmp(kid, jws->kid) != 0))
            continue;
        struct jose_pubkey *k;
        struct err_detail why = {{0}};
        int r = jose_pubkey_from_jwk(jwk, &k, &why);
        if (r < 0 && jws->kid) /* the key the token names is broken: say so */
            return err_set(d, r == ERR_NOMEM ? r : ERR_INVAL, "key %.100s: %s", jws->kid, why.msg);
        if (r < 0) /* without a kid, broken keys are only noise */
            continue;
        if (jws->kid) {
            *ret = k;
            return 0;
        }
        if (found) {
            jose_pubkey_free(found);
            jose_pubkey_free(k);
            return err_set(d, ERR_NOTFOUND, "the token has no kid and several keys fit %s", alg);
        }
        found = k;
    }
    if (!found) {
        if (jws->kid)
            return err_set(d, ERR_NOTFOUND, "no key with kid %.100s fits %s", jws->kid, alg);
        return err_set(d, ERR_NOTFOUND, "no key fits %s", alg);
    }
    *ret = found;
    return 0;
}
