/* core/uuid.c — UUIDv7 with a 12-bit sub-millisecond counter in rand_a
 * (RFC 9562 §6.2 method 1) guarded by a mutex; random bits from getrandom. */
#include "core/uuid.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Small requests (ids, nonces) are served from a per-thread buffer filled 512 bytes at
 * a time: one getrandom(2) for ~40 UUIDs instead of one each. Large ones go straight to
 * the kernel. The buffer is wiped as it is handed out. */
static _Thread_local unsigned char pool[512];
static _Thread_local size_t pool_left;

static void kernel_random(void *buf, uint64_t n);

void core_random(void *buf, uint64_t n)
{
    if (n > 64) {
        kernel_random(buf, n);
        return;
    }
    if (pool_left < n) {
        kernel_random(pool, sizeof(pool));
        pool_left = sizeof(pool);
    }
    unsigned char *src = pool + sizeof(pool) - pool_left;
    memcpy(buf, src, n);
    memset(src, 0, n);
    pool_left -= n;
}

static void kernel_random(void *buf, uint64_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n > 256 ? 256 : n, 0);
        if (r < 0) {
            perror("getrandom");
            abort();
        }
        p += r;
        n -= (uint64_t)r;
    }
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t last_ms;
static unsigned counter;

void uuid7_new(char out[UUID_STR_LEN])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    unsigned char b[16];
    core_random(b, sizeof(b));

    pthread_mutex_lock(&lock);
    if (ms <= last_ms) {
        ms = last_ms;
        if (++counter > 0xfff) { /* counter exhausted: borrow the next millisecond */
            ms++;
            counter = 0;
        }
    } else {
        counter = ((unsigned)b[6] << 8 | b[7]) & 0x1ff; /* random start, room to grow */
    }
    last_ms = ms;
    unsigned c = counter;
    pthread_mutex_unlock(&lock);

    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (c >> 8 & 0x0f));
    b[7] = (unsigned char)(c & 0xff);
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    snprintf(out, UUID_STR_LEN,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}
