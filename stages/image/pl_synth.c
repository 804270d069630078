// Synthetic OpenCell/HPA datasets: field allocation, camera model, and the writer of images, masks and manifest.
#include "pl_synth.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_image.h"
#include "pl_image_write.h"
#include "pl_log.h"
#include "pl_synth_priv.h"

static const char *const synth_classes[PL_SYNTH_MAX_CLASSES] = {
    "nucleoplasm", "cytoplasmic", "nucleolus_gc", "membrane", "vesicles", "er", "golgi", "mitochondria",
    "centrosome", "nuclear_membrane", "nuclear_punctae", "cytoskeleton", "big_aggregates", "chromatin",
    "nucleolus_fc_dfc", "focal_adhesions", "cell_contact"};

const char *pl_synth_class_name(int k) { return k >= 0 && k < PL_SYNTH_MAX_CLASSES ? synth_classes[k] : NULL; }

PlStatus pl_synth_kind_parse(const char *name, PlSynthKind *out) {
    if (!strcmp(name, "opencell")) *out = PL_SYNTH_OPENCELL;
    else if (!strcmp(name, "hpa")) *out = PL_SYNTH_HPA;
    else return PL_FAIL(PL_ERR_ARG, "unknown synthetic kind '%s' (expected opencell or hpa)", name);
    return PL_OK;
}

const char *pl_synth_kind_name(PlSynthKind kind) { return kind == PL_SYNTH_HPA ? "hpa" : "opencell"; }
double pl_synth_pixel_size_um(PlSynthKind kind) { return kind == PL_SYNTH_HPA ? 0.32 : 0.206; }
int pl_synth_default_size(PlSynthKind kind) { return kind == PL_SYNTH_HPA ? 512 : 1024; }
int pl_synth_channels(PlSynthKind kind) { return kind == PL_SYNTH_HPA ? 4 : 2; }

PlStatus pl_synth_field_alloc(PlSynthField *f, PlSynthKind kind, int size) {
    memset(f, 0, sizeof *f);
    if (size < 16 || size > 8192) return PL_FAIL(PL_ERR_ARG, "synthetic field size %d outside 16..8192 px", size);
    double px = pl_synth_pixel_size_um(kind);
    double field_um = size * px;
    int max_cells = (int)(field_um * field_um / 250.0) + 8;
    size_t N = (size_t)size * size;
    int channels = pl_synth_channels(kind);
    int lattice_cap = (int)((size + 8) * (size + 8));
    // one slab: data (C,N) | nuclei (N) | cells (N) | d1 d2 nr tex net hoe prot mt er (N each) | lattice | cells
    size_t bytes = (size_t)channels * N * 4 + 2 * N * 4 + 9 * N * 4 + (size_t)lattice_cap * 4 +
                   (size_t)max_cells * sizeof(PlSynthCell) + sizeof(PlSynthWork) + 64;
    char *slab = pl_calloc(1, bytes);
    if (!slab) return PL_ERR_NOMEM;
    f->slab = slab;
    PlSynthWork *w = (PlSynthWork *)slab;
    slab += (sizeof(PlSynthWork) + 15) & ~(size_t)15;
    w->cell = (PlSynthCell *)slab; slab += ((size_t)max_cells * sizeof(PlSynthCell) + 15) & ~(size_t)15;
    f->data = (float *)slab; slab += (size_t)channels * N * 4;
    f->nuclei = (int32_t *)slab; slab += N * 4;
    f->cells = (int32_t *)slab; slab += N * 4;
    float **planes[9] = {&w->d1, &w->d2, &w->nr, &w->tex, &w->net, &w->hoe, &w->prot, &w->mt, &w->er};
    for (int i = 0; i < 9; i++) {
        *planes[i] = (float *)slab;
        slab += N * 4;
    }
    w->lattice = (float *)slab;
    w->lattice_cap = lattice_cap;
    w->max_cells = max_cells;
    f->work = w;
    f->kind = kind;
    f->channels = channels;
    f->size = size;
    return PL_OK;
}

void pl_synth_field_free(PlSynthField *f) {
    free(f->slab);
    memset(f, 0, sizeof *f);
}

// Poisson-like counts: exact (inversion) below 30, normal approximation above.
static double synth_poisson(PlRng *r, double lambda) {
    if (lambda <= 0) return 0;
    if (lambda < 30) {
        double l = exp(-lambda), p = 1.0;
        int k = 0;
        do {
            k++;
            p *= pl_rng_uniform_open(r);
        } while (p > l && k < 200);
        return k - 1;
    }
    double v = lambda + sqrt(lambda) * pl_rng_normal(r);
    return v < 0 ? 0 : v;
}

// Camera: offset + gain * Poisson(signal / gain) + read noise, rounded and clamped to [0, maxval].
static void synth_camera(const float *clean, float *out, size_t n, double peak, double offset, double gain,
                         double read, double maxval, PlRng *rng) {
    for (size_t p = 0; p < n; p++) {
        double s = clean[p] > 0 ? clean[p] * peak : 0;
        double v = offset + gain * synth_poisson(rng, s / gain) + read * pl_rng_normal(rng);
        v = floor(v + 0.5);
        out[p] = (float)(v < 0 ? 0 : (v > maxval ? maxval : v));
    }
}

PlStatus pl_synth_render(PlSynthField *f, int class_id, uint64_t protein_seed, uint64_t field_seed) {
    if (class_id < 0 || class_id >= PL_SYNTH_MAX_CLASSES)
        return PL_FAIL(PL_ERR_ARG, "synthetic class %d outside 0..%d", class_id, PL_SYNTH_MAX_CLASSES - 1);
    PlSynthWork *w = f->work;
    PlRng style, rng;
    pl_rng_seed(&style, protein_seed);
    pl_rng_seed(&rng, field_seed);
    double px = pl_synth_pixel_size_um(f->kind);
    double protein_level = exp(0.4 * pl_rng_normal(&style));
    pl_synth_layout(f, &rng, px);
    pl_synth_paint(f, class_id, &style, &rng, px);
    int S = f->size;
    size_t N = (size_t)S * S;
    // cell autofluorescence in the protein channel
    for (size_t p = 0; p < N; p++)
        if (f->cells[p]) w->prot[p] += 0.02f;
    // peak / offset per channel drawn one statement at a time (argument evaluation order is unspecified in C)
    double peak[4], offset[4];
    for (int c = 0; c < f->channels; c++) {
        peak[c] = pl_rng_uniform_open(&rng);
        offset[c] = pl_rng_uniform_open(&rng);
    }
    if (f->kind == PL_SYNTH_OPENCELL) {   // page 0 nucleus, page 1 protein; uint16
        synth_camera(w->hoe, f->data, N, 1800 + 1400 * peak[0], 380 + 80 * offset[0], 1.5, 12, 65535, &rng);
        synth_camera(w->prot, f->data + N, N, (700 + 1500 * peak[1]) * protein_level, 340 + 80 * offset[1], 1.5, 12,
                     65535, &rng);
    } else {   // microtubules, protein, nucleus, er; uint8
        const float *clean[4] = {w->mt, w->prot, w->hoe, w->er};
        static const double lo[4] = {110, 80, 140, 90}, span[4] = {60, 80, 60, 60};
        for (int c = 0; c < 4; c++)
            synth_camera(clean[c], f->data + (size_t)c * N, N, (lo[c] + span[c] * peak[c]) * (c == 1 ? protein_level : 1),
                         2 + 4 * offset[c], 0.25, 1.5, 255, &rng);
    }
    // nuclei entirely inside the field (ground truth for segmentation tests); the lattice scratch is free now
    // and holds far more than 2 * (n_cells + 1) bytes
    unsigned char *touch = (unsigned char *)w->lattice, *present = touch + f->n_cells + 1;
    memset(touch, 0, 2 * ((size_t)f->n_cells + 1));
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            int32_t l = f->nuclei[(size_t)y * S + x];
            if (!l) continue;
            present[l] = 1;
            if (y == 0 || x == 0 || y == S - 1 || x == S - 1) touch[l] = 1;
        }
    int inside = 0;
    for (int l = 1; l <= f->n_cells; l++) inside += present[l] && !touch[l];
    f->n_nuclei_inside = inside;
    return PL_OK;
}

void pl_synth_params_default(PlSynthParams *p) {
    memset(p, 0, sizeof *p);
    p->kind = PL_SYNTH_OPENCELL;
    p->classes = 4;
    p->per_class = 6;
    p->fovs_per_protein = 2;
    p->seed = 1;
}

// A growing text buffer for the manifest.
typedef struct SynthText { char *buf; size_t len, cap; } SynthText;

static PlStatus text_appendf(SynthText *t, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return PL_FAIL(PL_ERR_INTERNAL, "manifest text formatting failed");
        if (t->buf && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return PL_OK;
        }
        size_t cap = t->cap ? t->cap * 2 : 4096;
        while (cap < t->len + (size_t)n + 1) cap *= 2;
        char *b = realloc(t->buf, cap);
        if (!b) return PL_FAIL(PL_ERR_NOMEM, "manifest text: cannot grow to %zu bytes", cap);
        t->buf = b;
        t->cap = cap;
    }
}

static PlStatus synth_write_field(const PlSynthParams *p, const PlSynthField *f, const char *dir, const char *id,
                                  PlImage *scratch) {
    char path[4096];
    int S = f->size;
    size_t N = (size_t)S * S;
    PlImage view = {.channels = f->channels, .height = S, .width = S, .bits = p->kind == PL_SYNTH_HPA ? 8 : 16,
                    .is_float = 0, .data = f->data, .capacity = (size_t)f->channels * N};
    if (p->kind == PL_SYNTH_OPENCELL) {
        snprintf(path, sizeof path, "%s/%s_proj.tif", dir, id);
        PL_TRY(pl_tiff_write(path, &view, 16, PL_TIFF_DEFLATE));
    } else {
        static const char *const suffix[4] = {"red", "green", "blue", "yellow"};
        for (int c = 0; c < 4; c++) {
            snprintf(path, sizeof path, "%s/%s_%s.png", dir, id, suffix[c]);
            PL_TRY(pl_png_write(path, &view, c, 8));
        }
    }
    if (p->masks) {
        if (f->n_cells > 65535) return PL_FAIL(PL_ERR_LIMIT, "%s: %d cells do not fit a 16-bit mask", id, f->n_cells);
        PL_TRY(pl_image_reshape(scratch, 1, S, S));
        scratch->bits = 16;
        scratch->is_float = 0;
        for (size_t i = 0; i < N; i++) scratch->data[i] = (float)f->cells[i];
        if (p->kind == PL_SYNTH_OPENCELL) {
            snprintf(path, sizeof path, "%s/%s_cellmask.tif", dir, id);
            PL_TRY(pl_tiff_write(path, scratch, 16, PL_TIFF_DEFLATE));
        } else {
            snprintf(path, sizeof path, "%s/%s_cellmask.png", dir, id);
            PL_TRY(pl_png_write(path, scratch, 0, 16));
        }
    }
    return PL_OK;
}

static PlStatus synth_write_json(const PlSynthParams *p, const char *dir, int size, int fields) {
    char path[4096];
    snprintf(path, sizeof path, "%s/synth.json", dir);
    json_t *classes = json_array();
    for (int k = 0; k < p->classes && classes; k++) json_array_append_new(classes, json_string(synth_classes[k]));
    json_t *root = json_pack("{s:s, s:o, s:i, s:i, s:I, s:i, s:f, s:b, s:i}", "kind", pl_synth_kind_name(p->kind),
                             "classes", classes, "per_class", p->per_class, "fovs_per_protein", p->fovs_per_protein,
                             "seed", (json_int_t)p->seed, "size", size, "pixel_size_um",
                             pl_synth_pixel_size_um(p->kind), "masks", p->masks, "fields", fields);
    if (!root) return PL_FAIL(PL_ERR_NOMEM, "%s: cannot build JSON", path);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) return PL_FAIL(PL_ERR_NOMEM, "%s: cannot serialise JSON", path);
    PlStatus st = pl_file_write_atomic(path, text, strlen(text));
    free(text);
    return st;
}

PlStatus pl_synth_write_dataset(const PlSynthParams *p, const char *out_dir, int *n_written) {
    if (n_written) *n_written = 0;
    if (p->classes < 1 || p->classes > PL_SYNTH_MAX_CLASSES)
        return PL_FAIL(PL_ERR_ARG, "synth: --classes %d outside 1..%d", p->classes, PL_SYNTH_MAX_CLASSES);
    if (p->per_class < 1 || p->per_class > 100000)
        return PL_FAIL(PL_ERR_ARG, "synth: --per-class %d outside 1..100000", p->per_class);
    if (p->fovs_per_protein < 1)
        return PL_FAIL(PL_ERR_ARG, "synth: fields per protein %d must be >= 1", p->fovs_per_protein);
    int size = p->size ? p->size : pl_synth_default_size(p->kind);
    PL_TRY(pl_mkdir_p(out_dir));
    PlSynthField f;
    PL_TRY(pl_synth_field_alloc(&f, p->kind, size));
    PlImage scratch;
    memset(&scratch, 0, sizeof scratch);
    SynthText t = {0};
    PlStatus st = PL_OK;
    const char *dataset = p->kind == PL_SYNTH_HPA ? "synth-hpa" : "synth-opencell";
    double px = pl_synth_pixel_size_um(p->kind);
    st = text_appendf(&t, "# protloc synth --kind %s --classes %d --per-class %d --seed %llu --size %d%s\n",
                      pl_synth_kind_name(p->kind), p->classes, p->per_class, (unsigned long long)p->seed, size,
                      p->masks ? " --masks" : "");
    if (st == PL_OK)
        st = text_appendf(&t, p->kind == PL_SYNTH_HPA ? "id\tdataset\tlabel\tsplit\tgroup\tmicrotubules\tprotein\tnucleus\ter"
                                                     "\tpixel_size_um%s\n"
                                                   : "id\tdataset\tlabel\tsplit\tgroup\tnucleus\tprotein\tpixel_size_um%s\n",
                          p->masks ? "\tmask" : "");
    int written = 0;
    for (int k = 0; k < p->classes && st == PL_OK; k++) {
        int proteins = (p->per_class + p->fovs_per_protein - 1) / p->fovs_per_protein;
        int n_test = proteins >= 2 ? (int)fmax(1, floor(0.2 * proteins + 0.5)) : 0;
        int n_val = proteins >= 5 ? (int)fmax(1, floor(0.2 * proteins + 0.5)) : 0;
        int n_train = proteins - n_test - n_val;
        for (int j = 0; j < proteins && st == PL_OK; j++) {
            const char *split = j < n_train ? "train" : (j < n_train + n_val ? "val" : "test");
            uint64_t protein_seed = pl_rng_mix(p->seed, ((uint64_t)(k + 1) << 32) | (uint64_t)j);
            int fovs = p->per_class - j * p->fovs_per_protein;
            if (fovs > p->fovs_per_protein) fovs = p->fovs_per_protein;
            for (int v = 0; v < fovs && st == PL_OK; v++) {
                char id[128], group[96];
                snprintf(group, sizeof group, "%s_prot%02d", synth_classes[k], j);
                snprintf(id, sizeof id, "%s_f%02d", group, v);
                st = pl_synth_render(&f, k, protein_seed, pl_rng_mix(protein_seed, (uint64_t)v + 1));
                if (st == PL_OK) st = synth_write_field(p, &f, out_dir, id, &scratch);
                if (st != PL_OK) break;
                if (p->kind == PL_SYNTH_OPENCELL)
                    st = text_appendf(&t, "%s\t%s\t%s\t%s\t%s\t%s_proj.tif#0\t%s_proj.tif#1\t%.3f", id, dataset,
                                      synth_classes[k], split, group, id, id, px);
                else
                    st = text_appendf(&t, "%s\t%s\t%s\t%s\t%s\t%s_red.png\t%s_green.png\t%s_blue.png\t%s_yellow.png\t%.3f",
                                      id, dataset, synth_classes[k], split, group, id, id, id, id, px);
                if (st == PL_OK && p->masks)
                    st = text_appendf(&t, p->kind == PL_SYNTH_HPA ? "\t%s_cellmask.png" : "\t%s_cellmask.tif", id);
                if (st == PL_OK) st = text_appendf(&t, "\n");
                written++;
                pl_log_debug("synth: %s (%d cells)", id, f.n_cells);
            }
        }
    }
    if (st == PL_OK) st = synth_write_json(p, out_dir, size, written);
    if (st == PL_OK) {
        char path[4096];
        snprintf(path, sizeof path, "%s/manifest.tsv", out_dir);
        st = pl_file_write_atomic(path, t.buf, t.len);
    }
    if (st == PL_OK && n_written) *n_written = written;
    free(t.buf);
    pl_image_free(&scratch);
    pl_synth_field_free(&f);
    return st;
}
