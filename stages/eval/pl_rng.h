// Small deterministic random numbers for evaluation (splitmix64 seeding + xoshiro256**), identical on every platform.
#ifndef PL_RNG_H
#define PL_RNG_H

#include <stdint.h>

typedef struct PlRng {
    uint64_t s[4];
} PlRng;

static inline uint64_t pl_rng_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static inline void pl_rng_seed(PlRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = pl_rng_splitmix(&seed);
}
static inline uint64_t pl_rng_next(PlRng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5;
    uint64_t out = ((x << 7) | (x >> 57)) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return out;
}
// Uniform in [0, 1).
static inline double pl_rng_uniform(PlRng *r) { return (double)(pl_rng_next(r) >> 11) * 0x1.0p-53; }
// Uniform integer in [0, n) (n > 0; bias below 2^-32 for protloc's sizes).
static inline int64_t pl_rng_below(PlRng *r, int64_t n) { return (int64_t)(pl_rng_uniform(r) * (double)n); }
// Fisher-Yates shuffle of n int64 values.
static inline void pl_rng_shuffle_i64(PlRng *r, int64_t *v, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = pl_rng_below(r, i + 1);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

#endif
