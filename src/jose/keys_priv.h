/* jose/keys_priv.h — for jose/ only: the OpenSSL key inside a struct jose_key,
 * so jws.c signs with it (and shares it for verification) without re-parsing
 * or copying the key. Other folders never include this header: OpenSSL stays
 * inside jose/. */
#pragma once
#include <openssl/evp.h>

#include "jose/keys.h"

/* Borrowed: lives as long as `key`. Callers may use it for signing and may take a
 * reference (EVP_PKEY_up_ref), but never change it; a struct jose_key is shared by
 * threads. */
EVP_PKEY *jose_key_pkey_(const struct jose_key *key);
