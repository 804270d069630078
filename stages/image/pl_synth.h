// Synthetic OpenCell/HPA-like microscopy: fields of cells with per-class protein localisation patterns, plus a
// dataset writer (images, label masks, manifest.tsv) used by the demo and the integration tests.
//
// A field is rendered in physical units (µm) at a fixed pixel size per kind: OpenCell 0.206 µm/px (two channels:
// nucleus, protein; uint16 range), HPA 0.32 µm/px (a 2048² 0.08 µm field binned to Kaggle's 512²; four channels in
// file order microtubules, protein, nucleus, er; uint8 range). `size` changes the field extent, not the scale.
// Cells: clustered nuclei (textured ellipses with nucleoli and a wobbly outline) inside weighted-Voronoi cell
// bodies; the protein channel follows one of the 17 OpenCell annotation classes (pl_synth_class_name); camera model
// = background offset + Poisson-like shot noise + Gaussian read noise, varying cell count and intensity per field.
// Determinism: everything derives from (seed, field index) through a private xoshiro256** generator, so the same
// seed gives byte-identical files on the same build.
//
// Ownership: PlSynthField owns one slab (pl_synth_field_free). Not thread-safe per field; separate fields may be
// rendered concurrently.
#ifndef PL_SYNTH_H
#define PL_SYNTH_H

#include <stdint.h>
#include "pl_error.h"

typedef enum PlSynthKind { PL_SYNTH_OPENCELL = 0, PL_SYNTH_HPA = 1 } PlSynthKind;

#define PL_SYNTH_MAX_CLASSES 17

// "opencell" | "hpa" → enum; anything else → PL_ERR_ARG.
PlStatus pl_synth_kind_parse(const char *name, PlSynthKind *out);
const char *pl_synth_kind_name(PlSynthKind kind);
// Class k (0..16) as an OpenCell annotation name: nucleoplasm, cytoplasmic, nucleolus_gc, membrane, vesicles,
// er, golgi, mitochondria, centrosome, nuclear_membrane, nuclear_punctae, cytoskeleton, big_aggregates,
// chromatin, nucleolus_fc_dfc, focal_adhesions, cell_contact (the first N are used for --classes N).
const char *pl_synth_class_name(int k);
double pl_synth_pixel_size_um(PlSynthKind kind);
int pl_synth_default_size(PlSynthKind kind);
int pl_synth_channels(PlSynthKind kind);   // 2 (OpenCell) or 4 (HPA)

typedef struct PlSynthField {
    PlSynthKind kind;
    int channels;       // pl_synth_channels(kind)
    int size;           // H = W
    float *data;        // (channels, size, size) integer-valued samples: uint16 range (OpenCell), uint8 (HPA)
    int32_t *nuclei;    // (size, size) ground-truth nucleus labels (0 = background), ids = cell ids
    int32_t *cells;     // (size, size) ground-truth cell labels (0 = background)
    int n_cells;        // cells placed (ids 1..n_cells)
    int n_nuclei_inside;// nuclei not touching the field border
    void *work;         // private scratch (distance maps, noise fields, cell table)
    void *slab;
} PlSynthField;

// Allocate a field of size x size (16..8192).
PlStatus pl_synth_field_alloc(PlSynthField *f, PlSynthKind kind, int size);
// Render class `class_id` with the look of synthetic protein `protein_seed` (shared by the FOVs of one
// protein: expression level and pattern details) and field randomness `field_seed`.
PlStatus pl_synth_render(PlSynthField *f, int class_id, uint64_t protein_seed, uint64_t field_seed);
void pl_synth_field_free(PlSynthField *f);

typedef struct PlSynthParams {
    PlSynthKind kind;
    int classes;            // 1..17
    int per_class;          // fields per class (>= 1)
    int fovs_per_protein;   // fields per synthetic protein / group (default 2)
    uint64_t seed;
    int size;               // 0 = pl_synth_default_size(kind)
    int masks;              // also write a 16-bit cell label mask per field (manifest column `mask`)
} PlSynthParams;

void pl_synth_params_default(PlSynthParams *p);
// Write the dataset into out_dir (created if needed): OpenCell `{id}_proj.tif` (2-page uint16: nucleus, protein)
// or HPA `{id}_{red,green,blue,yellow}.png` (8-bit: microtubules, protein, nucleus, er), optional
// `{id}_cellmask.tif|png`, then `manifest.tsv` (written last, atomically) and `synth.json` (parameters).
// Splits are by group: per class, ~20% of proteins test, ~20% val (when >= 5 proteins), the rest train; with
// 2+ proteins a class always has train and test. Returns the number of fields written in *n_written.
PlStatus pl_synth_write_dataset(const PlSynthParams *p, const char *out_dir, int *n_written);

#endif
