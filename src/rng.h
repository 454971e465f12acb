/* Deterministic random numbers (xorshift64*): the same seed gives the same
 * weights, batches and augmentations on every build. */
#ifndef REAGE_RNG_H
#define REAGE_RNG_H
#include <math.h>
#include <stdint.h>

typedef struct { uint64_t s; } Rng;

static inline void rng_seed(Rng *r, uint64_t seed) {
    /* splitmix64 scrambles small seeds into a well-mixed non-zero state */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    r->s = (z ^ (z >> 31)) | 1;
}
static inline uint32_t rng_u32(Rng *r) {
    r->s ^= r->s >> 12; r->s ^= r->s << 25; r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}
/* uniform in [0, 1) */
static inline float rng_uniform(Rng *r) { return (rng_u32(r) >> 8) * (1.0f / 16777216.0f); }
/* uniform integer in [0, n) */
static inline int rng_int(Rng *r, int n) { return (int)(((uint64_t)rng_u32(r) * (uint64_t)n) >> 32); }
static inline float rng_normal(Rng *r) {
    float u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-7f) u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}
#endif
