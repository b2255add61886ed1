/* core/uuid.h — UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random
 * bits, with a per-process monotonic counter so ids made in the same
 * millisecond still sort in creation order. Thread-safe. */
#pragma once
#include <stdint.h>

#define UUID_STR_LEN 37 /* 36 chars + NUL */

/* Writes a new lowercase UUIDv7 string into out. */
void uuid7_new(char out[UUID_STR_LEN]);
/* Fills buf with n cryptographically secure random bytes (getrandom); aborts
 * the process if the kernel cannot supply them, as nothing safe can follow. */
void core_random(void *buf, uint64_t n);
