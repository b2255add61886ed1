/* core/err.h — the one table of error codes. Every function that can fail
 * returns 0 or a negative ERR_* from this table; the table also yields the
 * stable machine code used in admin API error bodies, the HTTP status and the
 * RFC 6749 error string. Codes are never renumbered (outside tools log them). */
#pragma once

/*  name            api code                 http  oauth error                message */
#define ERR_TABLE(X)                                                                          \
    X(ERR_INVAL,     "invalid_request",        400, "invalid_request",         "Invalid request") \
    X(ERR_NOMEM,     "internal",               500, "server_error",            "Out of memory") \
    X(ERR_IO,        "unavailable",            503, "temporarily_unavailable", "Storage unavailable") \
    X(ERR_NOTFOUND,  "not_found",              404, "invalid_request",         "Not found") \
    X(ERR_EXISTS,    "conflict",               409, "invalid_request",         "Already exists") \
    X(ERR_CONFLICT,  "conflict",               409, "invalid_request",         "Conflict") \
    X(ERR_TOOBIG,    "payload_too_large",      413, "invalid_request",         "Request body too large") \
    X(ERR_UNAUTH,    "unauthorized",           401, "invalid_client",          "Unauthorized") \
    X(ERR_METHOD,    "method_not_allowed",     405, "invalid_request",         "Method not allowed") \
    X(ERR_MEDIA,     "unsupported_media_type", 415, "invalid_request",         "Unsupported media type") \
    X(ERR_CRYPTO,    "internal",               500, "server_error",            "Cryptographic failure") \
    X(ERR_INTERNAL,  "internal",               500, "server_error",            "Internal error") \
    X(ERR_UNSUPPORTED, "unsupported",          400, "invalid_request",         "Not supported") \
    X(ERR_CORRUPT,   "internal",               500, "server_error",            "Stored data is corrupt")

enum {
    ERR_NONE_ = 0,
#define ERR_ENUM_(name, code, http, oauth, msg) name##_POS_,
    ERR_TABLE(ERR_ENUM_)
#undef ERR_ENUM_
    ERR_COUNT_
};

#define ERR_DEFINE_(name, code, http, oauth, msg) enum { name = -name##_POS_ };
ERR_TABLE(ERR_DEFINE_)
#undef ERR_DEFINE_

/* All return a static string / status for any int; unknown codes map to ERR_INTERNAL. */
const char *err_code(int err);    /* "invalid_request", ... */
const char *err_message(int err); /* "Invalid request", ... */
const char *err_oauth(int err);   /* RFC 6749 error string */
int err_http_status(int err);     /* 400, 404, ... */

/* A human-readable detail that travels with an error code out of a module
 * (for example "systems[0].scopes: expected an array (line 12)"). Callers own
 * the storage; modules fill it with err_detail_set() and never log. */
struct err_detail {
    char msg[512];
};

/* printf-style; always returns `err` so callers can write `return err_set(d, ERR_INVAL, ...)`.
 * `d` may be NULL. */
int err_set(struct err_detail *d, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
