/* oauth/subject.c — step 4: the subject token of a token exchange (an ID token
 * from a trusted issuer) and the assertion of a JWT bearer grant (an ID-JAG
 * from a trusted issuer or from mcpauth itself). Every check of
 * spec/http-api.md and the reference checklist; each failure says which. */
#include "oauth/oauth_priv.h"
#include "jose/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t oauth_now(void)
{
    return (int64_t)time(NULL);
}

void subject_done(struct subject *s)
{
    free(s->user);
    for (size_t i = 0; i < s->n_groups; i++)
        free(s->groups[i]);
    free(s->issuer);
    free(s->resource);
    free(s->scope);
    free(s->jti);
    memset(s, 0, sizeof(*s));
}

int replay_use(struct oauth *o, struct replay_note *rn, const char *key, int64_t exp)
{
    int r = jti_set_add(o->replay, key, exp, oauth_now());
    if (r == 0 && rn) {
        int k = rn->keys[0] ? 1 : 0;
        if (!rn->keys[k]) {
            rn->keys[k] = strdup(key);
            rn->exps[k] = exp;
        }
    }
    return r;
}

int typ_is(const char *typ, const char *want)
{
    if (!typ)
        return 0;
    if (strncasecmp(typ, "application/", 12) == 0)
        typ += 12;
    return strcasecmp(typ, want) == 0;
}

int same_audience(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '/')
        la--;
    if (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && memcmp(a, b, la) == 0;
}

int aud_matches(const json_t *aud, const char *want, int single)
{
    if (json_is_string(aud))
        return same_audience(json_string_value(aud), want);
    if (!json_is_array(aud) || (single && json_array_size(aud) != 1))
        return 0;
    size_t i;
    const json_t *v;
    json_array_foreach(aud, i, v) if (json_is_string(v) &&
                                      same_audience(json_string_value(v), want)) return 1;
    return 0;
}

int own_key(const struct policy_snapshot *snap, const struct jws *jws, struct jose_pubkey **ret)
{
    for (size_t i = 0; i < snap->n_keys; i++) {
        const struct policy_key *k = &snap->keys[i];
        if (!k->key || k->alg != jws->alg || strcmp(k->status, "retired") == 0)
            continue;
        if (jws->kid && strcmp(jws->kid, k->kid) != 0)
            continue;
        return jose_pubkey_from_key(k->key, ret);
    }
    return ERR_NOTFOUND;
}

static const struct policy_issuer *trusted(const struct policy_snapshot *snap, const char *iss)
{
    return strmap_get(&snap->issuer_by_issuer, iss);
}

int subject_key(struct oauth *o, const struct policy_snapshot *snap, const struct jws *jws,
                const char *iss, struct jose_pubkey **ret, char *why, size_t n)
{
    if (same_audience(iss, o->issuer)) {
        if (own_key(snap, jws, ret) < 0) {
            snprintf(why, n, "no key of this issuer has kid %s", jws->kid ? jws->kid : "(none)");
            return ERR_NOTFOUND;
        }
        return 0;
    }
    const struct policy_issuer *t = trusted(snap, iss);
    if (!t) {
        snprintf(why, n, "issuer %.200s is not trusted", iss);
        return ERR_NOTFOUND;
    }
    if (!(t->algorithms & (1u << jws->alg))) {
        snprintf(why, n, "algorithm %s is not allowed for issuer %.200s", jose_alg_name(jws->alg),
                 iss);
        return ERR_INVAL;
    }
    struct err_detail d = {{0}};
    json_t *fetched = NULL;
    const json_t *set = t->jwks;
    if (!set) {
        if (jwks_cache_get(o->jwks, t->jwks_uri, jws->kid, &fetched, &d) < 0) {
            snprintf(why, n, "keys of issuer %.200s unavailable: %s", iss, d.msg);
            return ERR_IO;
        }
        set = fetched;
    }
    int r = jose_jwks_select(set, jws, ret, &d);
    json_decref(fetched);
    if (r < 0)
        snprintf(why, n, "unknown kid %s for issuer %.200s", jws->kid ? jws->kid : "(none)", iss);
    return r;
}

/* exp/iat/nbf: exp required and in the future; iat and nbf not in the future. */
static int check_times(const json_t *p, int64_t now, char *why, size_t n)
{
    const json_t *exp = json_object_get(p, "exp"), *iat = json_object_get(p, "iat"),
                 *nbf = json_object_get(p, "nbf");
    if (!json_is_number(exp)) {
        snprintf(why, n, "exp missing");
        return -1;
    }
    if (json_number_value(exp) <= (double)(now - CLOCK_SKEW)) {
        snprintf(why, n, "expired");
        return -1;
    }
    if (iat && (!json_is_number(iat) || json_number_value(iat) > (double)(now + CLOCK_SKEW))) {
        snprintf(why, n, "iat is in the future");
        return -1;
    }
    if (nbf && (!json_is_number(nbf) || json_number_value(nbf) > (double)(now + CLOCK_SKEW))) {
        snprintf(why, n, "not valid yet (nbf)");
        return -1;
    }
    return 0;
}

static char *dup_claim(const json_t *p, const char *name, size_t max)
{
    const char *s = json_string_value(json_object_get(p, name));
    if (!s || !*s || strlen(s) > max)
        return NULL;
    return strdup(s);
}

/* Parses and verifies signature + iss for either kind of token. */
static int verify_common(struct oauth *o, const struct policy_snapshot *snap, const char *token,
                         struct jws *jws, char *why, size_t n)
{
    struct err_detail d = {{0}};
    int r = jws_parse(token, strlen(token), jws, &d);
    if (r < 0) {
        snprintf(why, n, "%s", d.msg[0] ? d.msg : "not a JWT");
        return r;
    }
    const char *iss = json_string_value(json_object_get(jws->payload, "iss"));
    if (!iss) {
        snprintf(why, n, "iss missing");
        jws_done(jws);
        return ERR_INVAL;
    }
    struct jose_pubkey *key = NULL;
    r = subject_key(o, snap, jws, iss, &key, why, n);
    if (r == 0) {
        r = jws_verify(jws, key);
        if (r < 0)
            snprintf(why, n, "signature invalid");
    }
    jose_pubkey_free(key);
    if (r < 0)
        jws_done(jws);
    return r;
}

/* An ID token from a trusted issuer. `idp` (sign-in) pins the issuer and expects
 * aud = its client_id and the nonce we sent; without it the issuer's `audience`. */
static int verify_id_token(struct oauth *o, const struct policy_snapshot *snap,
                           const struct policy_issuer *idp, const char *token, const char *nonce,
                           struct subject *ret, char *why, size_t n)
{
    struct jws jws;
    memset(ret, 0, sizeof(*ret));
    crypto_sha256_hex(token, strlen(token), ret->sha256);
    int r = verify_common(o, snap, token, &jws, why, n);
    if (r < 0)
        return r;
    r = ERR_INVAL;
    const json_t *p = jws.payload;
    const char *iss = json_string_value(json_object_get(p, "iss"));
    ret->issuer = strdup(iss);
    const struct policy_issuer *t = trusted(snap, iss);
    if (!t) { /* mcpauth's own tokens are not ID tokens */
        snprintf(why, n, "issuer %.200s is not a trusted identity provider", iss);
        goto out;
    }
    if (idp && t != idp) {
        snprintf(why, n, "issuer %.200s is not the identity provider signed in at (%.200s)", iss,
                 idp->issuer);
        goto out;
    }
    if (typ_is(jws.typ, TYP_ID_JAG) || typ_is(jws.typ, TYP_AT)) {
        snprintf(why, n, "typ %s is not an ID token", jws.typ);
        goto out;
    }
    const char *want_aud = idp ? idp->client_id : t->audience;
    if (!aud_matches(json_object_get(p, "aud"), want_aud, 0)) {
        snprintf(why, n, "aud does not contain %.200s", want_aud);
        goto out;
    }
    if (check_times(p, oauth_now(), why, n) < 0)
        goto out;
    if (nonce) {
        const char *got = json_string_value(json_object_get(p, "nonce"));
        if (!got || !crypto_streq(got, nonce)) {
            snprintf(why, n, "nonce %s", got ? "does not match the sign-in request" : "missing");
            goto out;
        }
    }
    ret->user = dup_claim(p, t->user_claim, 256);
    if (!ret->user) {
        snprintf(why, n, "claim %s (the user) missing", t->user_claim);
        goto out;
    }
    const json_t *g = json_object_get(p, t->groups_claim);
    if (json_is_string(g) && json_string_length(g) <= 256) {
        ret->groups[ret->n_groups++] = strdup(json_string_value(g));
    } else if (json_is_array(g)) {
        size_t i;
        const json_t *v;
        json_array_foreach(g, i, v)
        {
            if (ret->n_groups >= DECIDE_MAX_GROUPS)
                break;
            if (json_is_string(v) && json_string_length(v) <= 256)
                ret->groups[ret->n_groups++] = strdup(json_string_value(v));
        }
    }
    r = 0;
out:
    jws_done(&jws);
    return r;
}

int subject_verify_id_token(struct oauth *o, const struct policy_snapshot *snap, const char *token,
                            struct subject *ret, char *why, size_t n)
{
    return verify_id_token(o, snap, NULL, token, NULL, ret, why, n);
}

int subject_verify_sign_in(struct oauth *o, const struct policy_snapshot *snap,
                           const struct policy_issuer *idp, const char *token, const char *nonce,
                           struct subject *ret, char *why, size_t n)
{
    return verify_id_token(o, snap, idp, token, nonce, ret, why, n);
}

int subject_verify_assertion(struct oauth *o, const struct policy_snapshot *snap,
                             const char *token, const struct policy_client *client,
                             struct replay_note *rn, struct subject *ret, char *why, size_t n)
{
    struct jws jws;
    memset(ret, 0, sizeof(*ret));
    crypto_sha256_hex(token, strlen(token), ret->sha256);
    int r = verify_common(o, snap, token, &jws, why, n);
    if (r < 0)
        return r;
    r = ERR_INVAL;
    const json_t *p = jws.payload;
    ret->issuer = strdup(json_string_value(json_object_get(p, "iss")));
    int64_t now = oauth_now();
    if (!typ_is(jws.typ, TYP_ID_JAG)) {
        snprintf(why, n, "typ must be %s", TYP_ID_JAG);
        goto out;
    }
    if (!aud_matches(json_object_get(p, "aud"), o->issuer, 1)) {
        snprintf(why, n, "aud must be this issuer %s", o->issuer);
        goto out;
    }
    const char *cid = json_string_value(json_object_get(p, "client_id"));
    if (!cid || strcmp(cid, client->id) != 0) {
        snprintf(why, n, "client_id %.100s is not the authenticated client", cid ? cid : "(missing)");
        goto out;
    }
    if (check_times(p, now, why, n) < 0)
        goto out;
    ret->user = dup_claim(p, "sub", 256);
    ret->jti = dup_claim(p, "jti", 256);
    if (!ret->user || !ret->jti) {
        snprintf(why, n, "%s missing", ret->user ? "jti" : "sub");
        goto out;
    }
    const json_t *res = json_object_get(p, "resource");
    if (json_is_array(res) && json_array_size(res) == 1)
        res = json_array_get(res, 0);
    if (res && !json_is_string(res)) {
        snprintf(why, n, "resource must name one target URL");
        goto out;
    }
    if (res)
        ret->resource = strdup(json_string_value(res));
    const json_t *sc = json_object_get(p, "scope");
    if (sc && !json_is_string(sc)) {
        snprintf(why, n, "scope must be a string");
        goto out;
    }
    if (sc)
        ret->scope = strdup(json_string_value(sc));
    char scoped[600];
    snprintf(scoped, sizeof(scoped), "id-jag\n%s\n%s", ret->issuer, ret->jti);
    int64_t exp = (int64_t)json_number_value(json_object_get(p, "exp"));
    if (exp > now + ASSERTION_MAX_LIFETIME) {
        snprintf(why, n, "exp is more than an hour away (an ID-JAG lives minutes)");
        goto out;
    }
    if (same_audience(ret->issuer, o->issuer) && jti_set_has(o->revoked, ret->jti, now)) {
        snprintf(why, n, "the assertion was revoked");
        goto out;
    }
    int rr = replay_use(o, rn, scoped, exp + CLOCK_SKEW);
    if (rr == ERR_EXISTS) {
        snprintf(why, n, "jti has been used before (replay)");
        goto out;
    }
    if (rr < 0) {
        snprintf(why, n, "replay store full");
        goto out;
    }
    r = 0;
out:
    jws_done(&jws);
    return r;
}
