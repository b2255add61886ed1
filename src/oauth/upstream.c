/* oauth/upstream.c — the back channel of a sign-in at the enterprise IdP: the
 * authorization code the IdP sent through the browser is redeemed at its token
 * endpoint (RFC 6749 §4.1.3, with our PKCE verifier) for the ID token.
 *
 * Bounded like every outbound call here: UPSTREAM_TIMEOUT_MS per call, at most
 * UPSTREAM_MAX_BYTES of answer, no redirects, http:// only to a loopback host.
 * mcpauth's secret at the IdP is opened from its sealed form only for the call
 * and wiped after; neither it nor the code nor the tokens appear in a message. */
#include "oauth/oauth_priv.h"
#include "jose/crypto.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MCPAUTH_VERSION
#define MCPAUTH_VERSION "unknown"
#endif

#define UPSTREAM_TIMEOUT_MS 10000
#define UPSTREAM_CONNECT_TIMEOUT_MS 3000
#define UPSTREAM_MAX_BYTES (64 * 1024)

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    (void)size;
    return buf_append(arg, p, n) < 0 ? 0 : n;
}

/* https://, or http:// to 127.0.0.0/8, [::1] or localhost. */
static int endpoint_ok(const char *url)
{
    if (strncmp(url, "https://", 8) == 0)
        return 1;
    return redirect_uri_is_loopback(url);
}

int upstream_redeem(const struct policy_issuer *idp, const char *code, const char *redirect_uri,
                    const char *verifier, char **ret_id_token, char *why, size_t n)
{
    if (!idp->token_endpoint || !idp->client_id) {
        snprintf(why, n, "identity provider %.200s has no token_endpoint or client_id",
                 idp->issuer);
        return ERR_INVAL;
    }
    if (!endpoint_ok(idp->token_endpoint)) {
        snprintf(why, n, "token_endpoint of %.200s must be https:// (http:// only to loopback)",
                 idp->issuer);
        return ERR_INVAL;
    }
    char *secret = NULL;
    if (idp->client_secret_sealed) {
        char aad[1200];
        snprintf(aad, sizeof(aad), "trusted_issuer:%s", idp->id);
        if (policy_unseal(aad, idp->client_secret_sealed, &secret) < 0) {
            snprintf(why, n, "the client secret of %.200s does not open with this KEK",
                     idp->issuer);
            return ERR_CRYPTO;
        }
    }
    struct buf form, answer;
    buf_init(&form, 64 * 1024);
    buf_init(&answer, UPSTREAM_MAX_BYTES);
    int r = buf_puts(&form, "grant_type=authorization_code&code=");
    if (r == 0)
        r = buf_put_urlenc(&form, code);
    if (r == 0)
        r = buf_puts(&form, "&redirect_uri=");
    if (r == 0)
        r = buf_put_urlenc(&form, redirect_uri);
    if (r == 0)
        r = buf_puts(&form, "&code_verifier=");
    if (r == 0)
        r = buf_put_urlenc(&form, verifier);
    /* client_secret_basic (the default) puts id and secret in the header, form-encoded
     * first (RFC 6749 §2.3.1); a public registration at the IdP sends client_id alone */
    int basic = secret && !idp->secret_post;
    if (r == 0 && !basic) {
        r = buf_puts(&form, "&client_id=");
        if (r == 0)
            r = buf_put_urlenc(&form, idp->client_id);
        if (r == 0 && secret) {
            r = buf_puts(&form, "&client_secret=");
            if (r == 0)
                r = buf_put_urlenc(&form, secret);
        }
    }
    struct buf user;
    buf_init(&user, 8192);
    if (r == 0 && basic) {
        r = buf_put_urlenc(&user, idp->client_id);
        if (r == 0)
            r = buf_puts(&user, ":");
        if (r == 0)
            r = buf_put_urlenc(&user, secret);
    }
    if (secret) {
        crypto_wipe(secret, strlen(secret));
        free(secret);
    }
    CURL *h = NULL;
    struct curl_slist *headers = NULL;
    if (r < 0) {
        snprintf(why, n, "the token request to %.200s is too large", idp->issuer);
        goto out;
    }
    h = curl_easy_init();
    headers = curl_slist_append(NULL, "Accept: application/json");
    if (!h || !headers) {
        r = ERR_NOMEM;
        snprintf(why, n, "out of memory");
        goto out;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, idp->token_endpoint);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)UPSTREAM_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)UPSTREAM_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)UPSTREAM_MAX_BYTES);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mcpauth/" MCPAUTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, form.data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)form.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    if (basic) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERPWD, user.data);
    }
    if (strncmp(idp->token_endpoint, "http://", 7) == 0)
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    CURLcode cr = curl_easy_perform(h);
    if (cr == CURLE_WRITE_ERROR || cr == CURLE_FILESIZE_EXCEEDED) {
        r = ERR_TOOBIG;
        snprintf(why, n, "token endpoint of %.200s: answer larger than %d bytes", idp->issuer,
                 UPSTREAM_MAX_BYTES);
        goto out;
    }
    if (cr != CURLE_OK) {
        r = ERR_IO;
        snprintf(why, n, "token endpoint of %.200s: %s", idp->issuer,
                 errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    json_t *j = json_loadb(answer.data ? answer.data : "", answer.len, 0, NULL);
    if (status != 200) {
        const char *err = json_string_value(json_object_get(j, "error"));
        const char *desc = json_string_value(json_object_get(j, "error_description"));
        snprintf(why, n, "token endpoint of %.200s answered HTTP %ld%s%.100s%s%.200s",
                 idp->issuer, status, err ? " " : "", err ? err : "", desc ? ": " : "",
                 desc ? desc : "");
        json_decref(j);
        r = ERR_IO;
        goto out;
    }
    const char *idt = json_string_value(json_object_get(j, "id_token"));
    if (!idt) {
        snprintf(why, n, "token endpoint of %.200s returned no id_token (is \"openid\" in "
                         "sign_in_scope?)",
                 idp->issuer);
        json_decref(j);
        r = ERR_INVAL;
        goto out;
    }
    *ret_id_token = strdup(idt);
    json_decref(j);
    r = *ret_id_token ? 0 : ERR_NOMEM;
out:
    curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    buf_wipe_done(&form);
    buf_wipe_done(&answer);
    buf_wipe_done(&user);
    return r;
}
