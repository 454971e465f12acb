/* A growable byte buffer: the blob writer and the image encoder both build
 * their output in memory before one atomic write. */
#ifndef REAGE_BYTES_H
#define REAGE_BYTES_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int failed;      /* an allocation failed: later appends do nothing */
} Bytes;

static inline void bytes_append(Bytes *b, const void *p, size_t n) {
    if (b->failed) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1 << 16;
        while (cap < b->len + n) cap *= 2;
        uint8_t *nb = realloc(b->buf, cap);
        if (!nb) { b->failed = 1; return; }
        b->buf = nb;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}
#endif
