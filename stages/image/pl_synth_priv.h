// Private to the synthetic-data generator (pl_synth.c, pl_synth_patterns.c): RNG, cell table, work buffers.
#ifndef PL_SYNTH_PRIV_H
#define PL_SYNTH_PRIV_H

#include <math.h>
#include <stdint.h>
#include "pl_synth.h"

// xoshiro256** (Blackman & Vigna), seeded through splitmix64: fast, portable, reproducible.
typedef struct PlSynthRng {
    uint64_t s[4];
    double spare;      // second normal deviate of the last Box-Muller pair
    int has_spare;
} PlSynthRng;

static inline uint64_t pl_synth_splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline void pl_synth_rng_seed(PlSynthRng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = pl_synth_splitmix(&seed);
    r->spare = 0;
    r->has_spare = 0;
}
static inline uint64_t pl_synth_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
static inline uint64_t pl_synth_next(PlSynthRng *r) {
    uint64_t *s = r->s;
    uint64_t result = pl_synth_rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = pl_synth_rotl(s[3], 45);
    return result;
}
// Uniform in (0, 1).
static inline double pl_synth_uniform(PlSynthRng *r) { return ((pl_synth_next(r) >> 11) + 0.5) * 0x1.0p-53; }
static inline double pl_synth_range(PlSynthRng *r, double lo, double hi) { return lo + (hi - lo) * pl_synth_uniform(r); }
static inline int pl_synth_int(PlSynthRng *r, int lo, int hi_inclusive) {
    return lo + (int)(pl_synth_uniform(r) * (hi_inclusive - lo + 1));
}
static inline double pl_synth_normal(PlSynthRng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u = pl_synth_uniform(r), v = pl_synth_uniform(r);
    double m = sqrt(-2.0 * log(u));
    r->spare = m * sin(6.283185307179586 * v);
    r->has_spare = 1;
    return m * cos(6.283185307179586 * v);
}
// Mix two 64-bit values into a seed (for per-field / per-protein streams).
static inline uint64_t pl_synth_mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xD1B54A32D192ED03ull);
    return pl_synth_splitmix(&x);
}

#define PL_SYNTH_MAX_NUCLEOLI 4

typedef struct PlSynthCell {
    float cy, cx;            // nucleus centre (px)
    float na, nb;            // nucleus semi-axes (px)
    float ca, sa;            // cos/sin of the nucleus orientation
    float wob[4];            // outline wobble: amplitudes of the 2nd and 3rd harmonics, then their phases
    float wob_cs[8];         // cos/sin of the nucleus phases (wob[2], wob[3]) and of the cell-outline phases
    float R;                 // cell radius (px), weighted-Voronoi weight
    float hoechst;           // nucleus brightness
    float expression;        // protein expression multiplier
    float theta;             // polarity direction (Golgi, centrosome side)
    int n_nucleoli;
    float nucleoli[PL_SYNTH_MAX_NUCLEOLI][3];   // y, x, radius (px)
} PlSynthCell;

typedef struct PlSynthWork {
    int max_cells;
    PlSynthCell *cell;       // (max_cells)
    float *d1, *d2;          // (N) weighted distance to the nearest and second nearest cell centre (1 = edge)
    float *nr;               // (N) normalised radius within the nearest nucleus (< 1 inside)
    float *tex, *net;        // (N) fine texture, band-pass network noise, both ~[-1, 1]
    float *hoe, *prot, *mt, *er;   // (N) clean signals per channel
    float *lattice;          // value-noise lattice scratch
    int lattice_cap;
} PlSynthWork;

// pl_synth_patterns.c: lay out cells and render the clean signals into w->hoe/prot/mt/er and the label images.
void pl_synth_layout(PlSynthField *f, PlSynthRng *rng, double px_um);
void pl_synth_paint(PlSynthField *f, int class_id, PlSynthRng *style, PlSynthRng *rng, double px_um);

#endif
