// Private to the synthetic-data generator (pl_synth.c, pl_synth_patterns.c): RNG, cell table, work buffers.
#ifndef PL_SYNTH_PRIV_H
#define PL_SYNTH_PRIV_H

#include <math.h>
#include <stdint.h>
#include "pl_rng.h"
#include "pl_synth.h"

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
void pl_synth_layout(PlSynthField *f, PlRng *rng, double px_um);
void pl_synth_paint(PlSynthField *f, int class_id, PlRng *style, PlRng *rng, double px_um);

#endif
