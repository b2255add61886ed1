/* tests/fuzz/fuzz_register.c — RFC 7591 registration metadata (oauth/register.c) on
 * hostile bytes: register_validate must return 0 with two objects whose redirect URIs
 * all pass redirect_uri_allowed, or ERR_INVAL with an RFC 7591 error code, and never
 * read outside the buffer or leak. */
#include "oauth/authorize.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > REGISTER_BODY_MAX + 16)
        return 0;
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    json_t *client = NULL, *meta = NULL;
    const char *error = NULL;
    char why[400];
    int r = register_validate(body, size, &client, &meta, &error, why, sizeof(why));
    if (r == 0) {
        size_t i;
        json_t *u;
        json_array_foreach(json_object_get(client, "redirect_uris"), i, u)
        {
            if (!redirect_uri_allowed(json_string_value(u)))
                abort();
        }
        if (!json_is_string(json_object_get(client, "auth")))
            abort();
    } else if (r == ERR_INVAL) {
        if (!error || (strcmp(error, "invalid_redirect_uri") && strcmp(error, "invalid_client_metadata")))
            abort();
    }
    json_decref(client);
    json_decref(meta);
    free(body);
    return 0;
}
