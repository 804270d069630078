// Synthetic cell layout and the per-class protein localisation patterns (clean signals before the camera model).
#include <math.h>
#include <string.h>

#include "pl_synth_priv.h"

#define PI 3.14159265358979323846

// ---- primitives -------------------------------------------------------------------------------------------------

// Value noise with smooth interpolation on a lattice of spacing `cell_px`, added as amp * [-1, 1] into buf (S, S).
static void value_noise(PlSynthWork *w, float *buf, int S, double cell_px, double amp, PlRng *rng) {
    if (cell_px < 1.0) cell_px = 1.0;
    int G = (int)(S / cell_px) + 3;
    if (G * G > w->lattice_cap) {   // coarser lattice rather than overflow (cell_px >= 1 keeps this rare)
        G = (int)sqrt((double)w->lattice_cap);
        cell_px = (double)S / (G - 3);
    }
    float *lat = w->lattice;
    for (int i = 0; i < G * G; i++) lat[i] = (float)(2.0 * pl_rng_uniform_open(rng) - 1.0);
    double inv = 1.0 / cell_px;
    for (int y = 0; y < S; y++) {
        double gy = y * inv;
        int iy = (int)gy;
        double ty = gy - iy;
        ty = ty * ty * (3 - 2 * ty);
        float *row = buf + (size_t)y * S;
        for (int x = 0; x < S; x++) {
            double gx = x * inv;
            int ix = (int)gx;
            double tx = gx - ix;
            tx = tx * tx * (3 - 2 * tx);
            const float *a = lat + (size_t)iy * G + ix;
            double top = a[0] + (a[1] - a[0]) * tx, bot = a[G] + (a[G + 1] - a[G]) * tx;
            row[x] += (float)(amp * (top + (bot - top) * ty));
        }
    }
}

enum { REGION_ANY = 0, REGION_CYTO = 1, REGION_NUCLEUS = 2, REGION_CELL = 3 };

// Add amp * exp(-d²/2σ²) around (y, x), restricted to a region of cell `id` (1-based) unless REGION_ANY.
static void add_spot(const PlSynthField *f, float *buf, double y, double x, double sigma, double amp, int id,
                     int region) {
    const PlSynthWork *w = f->work;
    int S = f->size;
    int r = (int)ceil(3 * sigma);
    int y0 = (int)floor(y) - r, y1 = (int)floor(y) + r + 1, x0 = (int)floor(x) - r, x1 = (int)floor(x) + r + 1;
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    if (y1 > S) y1 = S;
    if (x1 > S) x1 = S;
    double k = -0.5 / (sigma * sigma);
    for (int yy = y0; yy < y1; yy++)
        for (int xx = x0; xx < x1; xx++) {
            size_t p = (size_t)yy * S + xx;
            if (region == REGION_CYTO && (f->cells[p] != id || w->nr[p] < 1.0f)) continue;
            if (region == REGION_NUCLEUS && (f->nuclei[p] != id || w->nr[p] >= 1.0f)) continue;
            if (region == REGION_CELL && f->cells[p] != id) continue;
            double dy = yy - y, dx = xx - x;
            buf[p] += (float)(amp * exp(k * (dy * dy + dx * dx)));
        }
}

// A curvy filament: spots every sigma/2 along a random walk of direction `ang`.
static void add_stroke(const PlSynthField *f, float *buf, double y, double x, double ang, double len, double sigma,
                       double amp, double curl, int id, int region, PlRng *rng) {
    double step = 0.5 * sigma;
    int n = (int)(len / step) + 1;
    for (int i = 0; i < n; i++) {
        add_spot(f, buf, y, x, sigma, amp, id, region);
        ang += curl * pl_rng_normal(rng);
        y += step * sin(ang);
        x += step * cos(ang);
    }
}

static double cell_mean_radius(const PlSynthCell *c) { return sqrt((double)c->na * c->nb); }

// A random point in the cytoplasm (or, inside=1, the nucleus) of cell i; returns 0 when none was found.
static int sample_point(const PlSynthField *f, int i, int inside, double rmin_frac, double rmax_frac,
                        PlRng *rng, double *py, double *px) {
    const PlSynthWork *w = f->work;
    const PlSynthCell *c = &w->cell[i];
    int S = f->size;
    for (int t = 0; t < 40; t++) {
        double ang = pl_rng_range(rng, 0, 2 * PI), y, x;
        if (inside) {
            double r = sqrt(pl_rng_uniform_open(rng)) * rmax_frac;
            double u = r * c->na * cos(ang), v = r * c->nb * sin(ang);
            y = c->cy + u * c->sa + v * c->ca;
            x = c->cx + u * c->ca - v * c->sa;
        } else {
            double rm = cell_mean_radius(c);
            double r = pl_rng_range(rng, rm * rmin_frac, c->R * rmax_frac);
            y = c->cy + r * sin(ang);
            x = c->cx + r * cos(ang);
        }
        int yi = (int)floor(y), xi = (int)floor(x);
        if (yi < 0 || xi < 0 || yi >= S || xi >= S) continue;
        size_t p = (size_t)yi * S + xi;
        int ok = inside ? (f->nuclei[p] == i + 1 && w->nr[p] < 0.95f)
                        : (f->cells[p] == i + 1 && w->nr[p] >= 1.05f && w->d1[p] < 0.97f);
        if (ok) {
            *py = y;
            *px = x;
            return 1;
        }
    }
    return 0;
}

// ---- layout -----------------------------------------------------------------------------------------------------

void pl_synth_layout(PlSynthField *f, PlRng *rng, double px) {
    PlSynthWork *w = f->work;
    int S = f->size;
    size_t N = (size_t)S * S;
    double field_um = S * px;
    double density = pl_rng_range(rng, 0.3, 0.8);
    int target = (int)(field_um * field_um / 250.0 * density + 0.5);
    if (target < 1) target = 1;
    if (target > w->max_cells) target = w->max_cells;
    int n = 0;
    for (int attempt = 0; n < target && attempt < target * 60; attempt++) {
        PlSynthCell c;
        memset(&c, 0, sizeof c);
        double r_um = 5.3 + 0.8 * pl_rng_normal(rng);
        r_um = r_um < 3.8 ? 3.8 : (r_um > 7.5 ? 7.5 : r_um);
        double ar = pl_rng_range(rng, 1.0, 1.5);
        c.na = (float)(r_um * sqrt(ar) / px);
        c.nb = (float)(r_um / sqrt(ar) / px);
        double orient = pl_rng_range(rng, 0, PI);
        c.ca = (float)cos(orient);
        c.sa = (float)sin(orient);
        double rm = r_um / px;
        if (n > 0 && pl_rng_uniform_open(rng) < 0.7) {   // grow a colony next to an existing cell
            const PlSynthCell *o = &w->cell[pl_rng_int(rng, 0, n - 1)];
            double ang = pl_rng_range(rng, 0, 2 * PI);
            double dist = (cell_mean_radius(o) + rm) * pl_rng_range(rng, 1.0, 1.7);
            c.cy = (float)(o->cy + dist * sin(ang));
            c.cx = (float)(o->cx + dist * cos(ang));
        } else {
            c.cy = (float)pl_rng_range(rng, -0.05 * S, 1.05 * S);
            c.cx = (float)pl_rng_range(rng, -0.05 * S, 1.05 * S);
        }
        if (c.cy < -0.5 * rm || c.cx < -0.5 * rm || c.cy > S + 0.5 * rm || c.cx > S + 0.5 * rm) continue;
        int clash = 0;
        for (int k = 0; k < n && !clash; k++) {
            double dy = c.cy - w->cell[k].cy, dx = c.cx - w->cell[k].cx;
            double need = 0.97 * (rm + cell_mean_radius(&w->cell[k])) + 0.3 * fabs(c.na - c.nb);
            clash = dy * dy + dx * dx < need * need;
        }
        if (clash) continue;
        c.wob[0] = (float)pl_rng_range(rng, 0.0, 0.06);
        c.wob[1] = (float)pl_rng_range(rng, 0.0, 0.04);
        c.wob[2] = (float)pl_rng_range(rng, 0, 2 * PI);
        c.wob[3] = (float)pl_rng_range(rng, 0, 2 * PI);
        double phases[4] = {c.wob[2], c.wob[3], c.wob[3] + 1.3, c.wob[2] + 2.1};   // nucleus 2θ, 3θ; cell 2θ, 3θ
        for (int q = 0; q < 4; q++) {
            c.wob_cs[2 * q] = (float)cos(phases[q]);
            c.wob_cs[2 * q + 1] = (float)sin(phases[q]);
        }
        c.R = (float)(rm * pl_rng_range(rng, 1.8, 2.4));
        c.hoechst = (float)exp(0.22 * pl_rng_normal(rng));
        c.expression = (float)exp(0.35 * pl_rng_normal(rng));
        c.theta = (float)pl_rng_range(rng, 0, 2 * PI);
        c.n_nucleoli = pl_rng_int(rng, 1, PL_SYNTH_MAX_NUCLEOLI);
        for (int k = 0; k < c.n_nucleoli; k++) {
            double a = pl_rng_range(rng, 0, 2 * PI), r = sqrt(pl_rng_uniform_open(rng)) * 0.45;
            double u = r * c.na * cos(a), v = r * c.nb * sin(a);
            c.nucleoli[k][0] = (float)(c.cy + u * c.sa + v * c.ca);
            c.nucleoli[k][1] = (float)(c.cx + u * c.ca - v * c.sa);
            c.nucleoli[k][2] = (float)(pl_rng_range(rng, 0.5, 1.0) / px);
        }
        w->cell[n++] = c;
    }
    f->n_cells = n;
    // distance maps: nearest / second nearest weighted cell distance, nearest nucleus (normalised radius)
    for (size_t p = 0; p < N; p++) {
        w->d1[p] = w->d2[p] = 1e9f;
        w->nr[p] = 1e9f;
        f->cells[p] = 0;
        f->nuclei[p] = 0;
    }
    for (int i = 0; i < n; i++) {
        const PlSynthCell *c = &w->cell[i];
        int reach = (int)ceil(c->R * 1.15) + 1;
        int y0 = (int)c->cy - reach, y1 = (int)c->cy + reach, x0 = (int)c->cx - reach, x1 = (int)c->cx + reach;
        if (y0 < 0) y0 = 0;
        if (x0 < 0) x0 = 0;
        if (y1 > S) y1 = S;
        if (x1 > S) x1 = S;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++) {
                size_t p = (size_t)y * S + x;
                double dy = y + 0.5 - c->cy, dx = x + 0.5 - c->cx;
                double dist = sqrt(dy * dy + dx * dx);
                // harmonics of the polar angle without trigonometric calls: cos/sin of θ, 2θ, 3θ
                double c1 = dist > 0 ? dx / dist : 1, s1 = dist > 0 ? dy / dist : 0;
                double c2 = c1 * c1 - s1 * s1, s2 = 2 * s1 * c1;
                double c3 = c1 * (4 * c1 * c1 - 3), s3 = s1 * (3 - 4 * s1 * s1);
                const float *k = c->wob_cs;   // sin(nθ + φ) = sin nθ cos φ + cos nθ sin φ
                double wob = 1 + c->wob[0] * (s2 * k[0] + c2 * k[1]) + c->wob[1] * (s3 * k[2] + c3 * k[3]);
                double cwob = 1 + 1.5 * c->wob[0] * (s2 * k[4] + c2 * k[5]) + 2 * c->wob[1] * (s3 * k[6] + c3 * k[7]);
                float dc = (float)(dist / (c->R * cwob));
                if (dc < w->d1[p]) {
                    w->d2[p] = w->d1[p];
                    w->d1[p] = dc;
                    f->cells[p] = i + 1;
                } else if (dc < w->d2[p]) {
                    w->d2[p] = dc;
                }
                double u = dx * c->ca + dy * c->sa, v = -dx * c->sa + dy * c->ca;
                float e = (float)(sqrt((u / c->na) * (u / c->na) + (v / c->nb) * (v / c->nb)) / wob);
                if (e < w->nr[p]) {
                    w->nr[p] = e;
                    f->nuclei[p] = i + 1;   // nearest nucleus for now; pl_synth_paint keeps only nr < 1
                }
            }
    }
    for (size_t p = 0; p < N; p++) {
        if (w->nr[p] < 1.0f) f->cells[p] = f->nuclei[p];   // a nucleus always lies in its own cell
        else if (w->d1[p] >= 1.0f) f->cells[p] = 0;
    }
}

// ---- painting ---------------------------------------------------------------------------------------------------

static double smoothstep(double e0, double e1, double x) {
    double t = (x - e0) / (e1 - e0);
    t = t < 0 ? 0 : (t > 1 ? 1 : t);
    return t * t * (3 - 2 * t);
}

// Per-pixel base of the protein pattern for class k at pixel p (before per-cell primitives).
static double protein_base(int k, const PlSynthField *f, size_t p, double rim_px, double contact_px,
                           double style_bg) {
    const PlSynthWork *w = f->work;
    int id = f->cells[p];
    if (!id) return 0;
    double nr = w->nr[p], d1 = w->d1[p], d2 = w->d2[p], t = w->tex[p];
    int in_nuc = nr < 1.0;
    double edge = 1 - smoothstep(0.85, 1.0, nr);           // soft nucleus edge
    double cyto_fall = 1 - smoothstep(0.8, 1.0, d1);        // soft cell edge
    const PlSynthCell *c = &w->cell[id - 1];
    double R = c->R, rm = cell_mean_radius(c);
    double outer = exp(-pow((1 - d1) * R / rim_px, 2));                     // free cell edge
    double contact = d2 < 1.0 ? exp(-pow((d2 - d1) * R * 0.5 / contact_px, 2)) : 0;  // edge shared with a neighbour
    double nrim = exp(-pow((nr - 1) * rm / rim_px, 2));                      // nuclear envelope
    double cyto = in_nuc ? 0 : cyto_fall;
    double nuc = in_nuc ? edge : 0;
    double low = 0.04 * style_bg * (cyto + nuc);
    switch (k) {
    case 0: return nuc * (0.85 + 0.15 * t) + 0.03 * cyto;                       // nucleoplasm
    case 1: return cyto * (0.75 + 0.2 * t) * (0.7 + 0.3 * d1) + 0.06 * nuc;       // cytoplasmic
    case 2: return low + 0.1 * nuc;                                             // nucleolus_gc (+ blobs)
    case 3: return 0.9 * (outer + contact > 1 ? 1 : outer + contact) + low;      // membrane
    case 4: return low;                                                          // vesicles (+ puncta)
    case 5: {                                                                    // er: network, denser near nucleus
        double net = exp(-pow(w->net[p] / 0.14, 2));
        return cyto * (0.15 + 0.75 * net) * (1.15 - 0.6 * d1) + 0.45 * nrim * (in_nuc ? 0.3 : 1);
    }
    case 6: return low;                                                          // golgi (+ perinuclear blobs)
    case 7: return low + 0.04 * cyto;                                            // mitochondria (+ filaments)
    case 8: return 0.08 * cyto + 0.03 * nuc;                                     // centrosome (+ dots)
    case 9: return 0.95 * nrim + 0.06 * nuc;                                     // nuclear_membrane
    case 10: return 0.15 * nuc + 0.02 * cyto;                                    // nuclear_punctae (+ spots)
    case 11: return 0.08 * cyto;                                                 // cytoskeleton (+ fibres)
    case 12: return 0.12 * cyto + 0.02 * nuc;                                    // big_aggregates (+ blobs)
    case 13: {                                                                   // chromatin: follows DNA texture
        double dna = 0.5 + 0.5 * t;
        return nuc * (0.1 + 0.9 * dna * dna);
    }
    case 14: return 0.08 * nuc + 0.02 * cyto;                                    // nucleolus_fc_dfc (+ foci)
    case 15: return 0.06 * cyto;                                                 // focal_adhesions (+ streaks)
    case 16: return 0.9 * contact + 0.03 * cyto;                                 // cell_contact
    }
    return 0;
}

// Per-cell primitives of class k for cell i (0-based) into buf.
static void protein_cell(int k, const PlSynthField *f, int i, float *buf, double px, const double *style,
                         PlRng *rng) {
    const PlSynthCell *c = &((const PlSynthWork *)f->work)->cell[i];
    int id = i + 1;
    double e = c->expression, sz = style[0], cnt = style[1], y, x;
    double um = 1.0 / px;   // pixels per µm
    double rm = cell_mean_radius(c);
    switch (k) {
    case 2:   // nucleolus_gc: bright round nucleoli
        for (int j = 0; j < c->n_nucleoli; j++)
            add_spot(f, buf, c->nucleoli[j][0], c->nucleoli[j][1], c->nucleoli[j][2] * 0.9 * sz, e * 1.4, id,
                     REGION_NUCLEUS);
        break;
    case 4: {   // vesicles: many small puncta through the cytoplasm
        int m = (int)(pl_rng_range(rng, 25, 60) * cnt);
        for (int j = 0; j < m; j++)
            if (sample_point(f, i, 0, 1.1, 0.95, rng, &y, &x))
                add_spot(f, buf, y, x, 0.22 * um * sz, e * pl_rng_range(rng, 0.6, 1.3), id, REGION_CELL);
        break;
    }
    case 6: {   // golgi: a perinuclear cluster on one side
        int m = (int)(pl_rng_range(rng, 10, 20) * cnt);
        for (int j = 0; j < m; j++) {
            double a = c->theta + 0.55 * pl_rng_normal(rng);
            double r = rm * pl_rng_range(rng, 1.05, 1.45);
            double sigma = pl_rng_range(rng, 0.3, 0.6) * um * sz;   // one RNG draw per statement:
            double amp = e * pl_rng_range(rng, 0.5, 1.0);           // argument order is unspecified in C
            add_spot(f, buf, c->cy + r * sin(a), c->cx + r * cos(a), sigma, amp, id, REGION_CYTO);
        }
        break;
    }
    case 7: {   // mitochondria: short curvy filaments
        int m = (int)(pl_rng_range(rng, 20, 40) * cnt);
        for (int j = 0; j < m; j++)
            if (sample_point(f, i, 0, 1.1, 0.9, rng, &y, &x)) {
                double ang = pl_rng_range(rng, 0, 2 * PI);
                double len = pl_rng_range(rng, 1.0, 3.0) * um;
                add_stroke(f, buf, y, x, ang, len, 0.2 * um * sz, e * 0.55, 0.25, id, REGION_CYTO, rng);
            }
        break;
    }
    case 8: {   // centrosome: one or two bright dots beside the nucleus
        int m = pl_rng_uniform_open(rng) < 0.6 ? 1 : 2;
        double r = rm * 1.2;
        for (int j = 0; j < m; j++) {
            double a = c->theta + 0.25 * j;
            add_spot(f, buf, c->cy + r * sin(a), c->cx + r * cos(a), 0.3 * um * sz, e * 2.5, id, REGION_ANY);
        }
        break;
    }
    case 10: {  // nuclear_punctae: small nuclear speckles
        int m = (int)(pl_rng_range(rng, 8, 25) * cnt);
        for (int j = 0; j < m; j++)
            if (sample_point(f, i, 1, 0, 0.85, rng, &y, &x))
                add_spot(f, buf, y, x, 0.3 * um * sz, e * pl_rng_range(rng, 0.6, 1.2), id, REGION_NUCLEUS);
        break;
    }
    case 11: {  // cytoskeleton: long, nearly straight fibres
        int m = (int)(pl_rng_range(rng, 8, 16) * cnt);
        for (int j = 0; j < m; j++)
            if (sample_point(f, i, 0, 1.0, 0.9, rng, &y, &x)) {
                double ang = pl_rng_range(rng, 0, 2 * PI);
                double len = c->R * pl_rng_range(rng, 0.8, 1.6);
                add_stroke(f, buf, y, x, ang, len, 0.18 * um, e * 0.35, 0.03, id, REGION_CYTO, rng);
            }
        break;
    }
    case 12: {  // big_aggregates: one to three large bright blobs
        int m = pl_rng_int(rng, 1, 3);
        for (int j = 0; j < m; j++)
            if (sample_point(f, i, 0, 1.2, 0.8, rng, &y, &x))
                add_spot(f, buf, y, x, pl_rng_range(rng, 0.9, 1.5) * um * sz, e * 2.0, id, REGION_CELL);
        break;
    }
    case 14:    // nucleolus_fc_dfc: clusters of tiny foci inside each nucleolus
        for (int j = 0; j < c->n_nucleoli; j++) {
            int m = pl_rng_int(rng, 4, 8);
            for (int q = 0; q < m; q++) {
                double a = pl_rng_range(rng, 0, 2 * PI), r = c->nucleoli[j][2] * sqrt(pl_rng_uniform_open(rng));
                add_spot(f, buf, c->nucleoli[j][0] + r * sin(a), c->nucleoli[j][1] + r * cos(a), 0.18 * um, e * 1.6,
                         id, REGION_NUCLEUS);
            }
        }
        break;
    case 15: {  // focal_adhesions: radial streaks near the cell edge
        int m = (int)(pl_rng_range(rng, 8, 18) * cnt);
        for (int j = 0; j < m; j++) {
            double a = pl_rng_range(rng, 0, 2 * PI), r = c->R * pl_rng_range(rng, 0.72, 0.92);
            double len = pl_rng_range(rng, 1.0, 2.2) * um;
            add_stroke(f, buf, c->cy + r * sin(a), c->cx + r * cos(a), a, len, 0.22 * um, e, 0.02, id, REGION_CELL,
                       rng);
        }
        break;
    }
    default: break;
    }
}

void pl_synth_paint(PlSynthField *f, int class_id, PlRng *style_rng, PlRng *rng, double px) {
    PlSynthWork *w = f->work;
    int S = f->size;
    size_t N = (size_t)S * S;
    double um = 1.0 / px;
    double style[3];   // spot size, count and diffuse-background multipliers of this protein
    style[0] = pl_rng_range(style_rng, 0.8, 1.25);
    style[1] = pl_rng_range(style_rng, 0.7, 1.4);
    style[2] = pl_rng_range(style_rng, 0.5, 1.5);
    memset(w->tex, 0, N * sizeof(float));
    memset(w->net, 0, N * sizeof(float));
    value_noise(w, w->tex, S, 0.9 * um, 0.7, rng);
    value_noise(w, w->tex, S, 0.4 * um, 0.3, rng);
    value_noise(w, w->net, S, 1.3 * um, 1.0, rng);
    double rim_px = 0.35 * um, contact_px = 0.35 * um;
    // clean signals per pixel
    for (size_t p = 0; p < N; p++) {
        int id = f->cells[p];
        const PlSynthCell *c = id ? &w->cell[id - 1] : NULL;
        double nr = w->nr[p];
        double hoe = 0;
        if (nr < 1.0) {
            const PlSynthCell *cn = &w->cell[f->nuclei[p] - 1];
            hoe = cn->hoechst * (0.72 + 0.28 * w->tex[p]) * (1 - smoothstep(0.8, 1.0, nr));
        }
        w->hoe[p] = (float)hoe;
        w->prot[p] = c ? (float)(c->expression * protein_base(class_id, f, p, rim_px, contact_px, style[2])) : 0;
        if (f->kind == PL_SYNTH_HPA) {
            double cyto = (c && nr >= 1.0) ? 1 - smoothstep(0.8, 1.0, w->d1[p]) : 0;
            double net = exp(-pow(w->net[p] / 0.14, 2));
            w->mt[p] = (float)(0.12 * cyto);
            w->er[p] = (float)(cyto * (0.2 + 0.7 * net) * (1.15 - 0.6 * w->d1[p]) +
                               (c ? 0.4 * exp(-pow((nr - 1) * cell_mean_radius(c) / rim_px, 2)) : 0));
        }
    }
    for (int i = 0; i < f->n_cells; i++) {
        const PlSynthCell *c = &w->cell[i];
        // Hoechst: darker nucleoli, a few bright chromocentres
        for (int j = 0; j < c->n_nucleoli; j++)
            add_spot(f, w->hoe, c->nucleoli[j][0], c->nucleoli[j][1], c->nucleoli[j][2], -0.35 * c->hoechst, i + 1,
                     REGION_NUCLEUS);
        int chromo = pl_rng_int(rng, 2, 8);
        double y, x;
        for (int j = 0; j < chromo; j++)
            if (sample_point(f, i, 1, 0, 0.8, rng, &y, &x))
                add_spot(f, w->hoe, y, x, 0.35 * um, 0.3 * c->hoechst, i + 1, REGION_NUCLEUS);
        // protein primitives, scaled by the cell's expression
        protein_cell(class_id, f, i, w->prot, px, style, rng);
        if (f->kind == PL_SYNTH_HPA) {   // microtubules radiate from the centrosome
            double cy = c->cy + cell_mean_radius(c) * 1.2 * sin(c->theta);
            double cx = c->cx + cell_mean_radius(c) * 1.2 * cos(c->theta);
            int m = pl_rng_int(rng, 10, 18);
            for (int j = 0; j < m; j++) {
                double ang = pl_rng_range(rng, 0, 2 * PI);
                double len = c->R * pl_rng_range(rng, 0.7, 1.4);
                add_stroke(f, w->mt, cy, cx, ang, len, 0.2 * um, 0.5, 0.06, i + 1, REGION_CYTO, rng);
            }
        }
    }
    // keep only real nucleus pixels in the nucleus label image
    for (size_t p = 0; p < N; p++)
        if (w->nr[p] >= 1.0f) f->nuclei[p] = 0;
}
