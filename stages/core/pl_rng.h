// protloc's one random number generator: splitmix64 (seeding and hashing seeds) and xoshiro256** (streams).
//
// Every random choice in protloc goes through this header (synthetic data, weight initialisation, channel
// shuffles, evaluation subsets and folds), so results are identical on every platform for a given seed.
// Header-only, no global state: a PlRng is a plain value owned by whoever declares it.
#ifndef PL_RNG_H
#define PL_RNG_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

typedef struct PlRng {
    uint64_t s[4];
    double spare;      // second normal deviate of the last Box-Muller pair
    int has_spare;
} PlRng;

// splitmix64 (Steele, Lea, Flood): advances *x and returns a well-mixed 64-bit value.
static inline uint64_t pl_rng_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
// Mix two 64-bit values into one seed (per-item / per-field streams).
static inline uint64_t pl_rng_mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xd1b54a32d192ed03ULL);
    return pl_rng_splitmix(&x);
}
#define PL_RNG_FNV_OFFSET 0xcbf29ce484222325ULL
// FNV-1a of a NUL-terminated string (NULL hashes like "").
static inline uint64_t pl_rng_hash_string(const char *s) {
    uint64_t h = PL_RNG_FNV_OFFSET;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}
// FNV-1a of n bytes, continuing from h (PL_RNG_FNV_OFFSET to start): fingerprints of arrays.
static inline uint64_t pl_rng_hash_bytes(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}
static inline void pl_rng_seed(PlRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = pl_rng_splitmix(&seed);
    r->spare = 0;
    r->has_spare = 0;
}
// xoshiro256** (Blackman & Vigna).
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
// Uniform in (0, 1): never 0, so log() of it is finite.
static inline double pl_rng_uniform_open(PlRng *r) { return ((double)(pl_rng_next(r) >> 11) + 0.5) * 0x1.0p-53; }
static inline double pl_rng_range(PlRng *r, double lo, double hi) { return lo + (hi - lo) * pl_rng_uniform_open(r); }
// Uniform integer in [lo, hi_inclusive] from an open uniform.
static inline int pl_rng_int(PlRng *r, int lo, int hi_inclusive) {
    return lo + (int)(pl_rng_uniform_open(r) * (hi_inclusive - lo + 1));
}
// Uniform integer in [0, n) (n > 0; bias below 2^-32 for protloc's sizes).
static inline int64_t pl_rng_below(PlRng *r, int64_t n) { return (int64_t)(pl_rng_uniform(r) * (double)n); }
// Standard normal deviate (Box-Muller; the second deviate of each pair is kept for the next call).
static inline double pl_rng_normal(PlRng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u = pl_rng_uniform_open(r), v = pl_rng_uniform_open(r);
    double m = sqrt(-2.0 * log(u));
    r->spare = m * sin(6.283185307179586 * v);
    r->has_spare = 1;
    return m * cos(6.283185307179586 * v);
}
// Fisher-Yates shuffle of n int64 values.
static inline void pl_rng_shuffle_i64(PlRng *r, int64_t *v, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = pl_rng_below(r, i + 1);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

// The same shuffle of n int32 values: the same draws, so the same order as pl_rng_shuffle_i64 of the same values.
static inline void pl_rng_shuffle_i32(PlRng *r, int32_t *v, int64_t n) {
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = pl_rng_below(r, i + 1);
        int32_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

#endif
