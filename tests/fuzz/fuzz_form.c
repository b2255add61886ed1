/* tests/fuzz/fuzz_form.c — the OAuth form parser and Basic credentials on
 * hostile bytes: form_parse must return 0 or ERR_INVAL, never read or write
 * outside the buffer, and every value it returns must be a NUL-terminated
 * string inside the buffer. */
#include "oauth/form.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536)
        return 0;
    char *body = malloc(size + 1);
    if (!body)
        return 0;
    memcpy(body, data, size);
    body[size] = '\0';
    struct form f;
    struct err_detail d;
    if (form_parse(body, size, &f, &d) == 0) {
        for (size_t i = 0; i < f.n; i++) {
            if (f.name[i] < body || f.name[i] > body + size || f.value[i] < body ||
                f.value[i] > body + size)
                abort();
            (void)strlen(f.name[i]);
            (void)strlen(f.value[i]);
            if (form_get(&f, f.name[i]) != f.value[i])
                abort(); /* names are unique */
        }
    }
    free(body);
    return 0;
}
