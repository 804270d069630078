// pl_card_prep_config: a model card's alignment, normalisation and pixel size as a pl_prep configuration, the
// geometry of the levels over it, the manifest columns an item is read from, and the checks of a card against its
// weights and manifest made once at load.
#include "pl_card_prep.h"

#include <stdio.h>
#include <string.h>

_Static_assert((int)PL_CARD_INPUT_NATURAL == (int)PL_ALIGN_MAP && (int)PL_CARD_INPUT_REPLICATE == (int)PL_ALIGN_REPLICATE &&
                   (int)PL_CARD_INPUT_RANDOM == (int)PL_ALIGN_RANDOM && (int)PL_CARD_INPUT_DUPLICATE == (int)PL_ALIGN_DUPLICATE,
               "model card input modes name the alignment strategies");

// The card's first n_slots slots, comma-separated; an empty slot is named "emptyK" so that no role feeds it.
static PlStatus card_slots_csv(const PlModelCard *card, int n_slots, char *slots, size_t slots_size) {
    size_t used = 0;
    slots[0] = '\0';
    for (int k = 0; k < n_slots; k++) {
        int w = card->slots[k][0] ? snprintf(slots + used, slots_size - used, "%s%s", k ? "," : "", card->slots[k])
                                  : snprintf(slots + used, slots_size - used, "%sempty%d", k ? "," : "", k);
        if (w < 0 || (size_t)w >= slots_size - used) return PL_FAIL(PL_ERR_LIMIT, "model card %s: input_slots too long", card->path);
        used += (size_t)w;
    }
    return PL_OK;
}

PlStatus pl_card_prep_config(const PlModelCard *card, int n_slots, const char *strategy, const char *fill,
                             uint64_t seed, PlPrepConfig *cfg, PlAlignStrategy *strategy_out, char *slots,
                             size_t slots_size) {
    const char *name = strategy ? strategy : pl_align_strategy_name((PlAlignStrategy)card->input_mode);
    if (strcmp(name, "natural") == 0) name = "map";
    PlAlignStrategy st;
    if (pl_align_strategy_parse(name, &st) != PL_OK) return pl_error_wrap("--align");
    PL_TRY(card_slots_csv(card, n_slots, slots, slots_size));
    if (pl_prep_config_default(cfg, slots) != PL_OK) return pl_error_wrap("model card %s: input_slots", card->path);
    PL_TRY(pl_align_spec_init(&cfg->align, st, slots));
    const char *f = fill ? fill : card->fill;
    if (st == PL_ALIGN_DUPLICATE) {
        if (!f) return PL_FAIL(PL_ERR_ARG, "alignment 'duplicate' needs fills (--fill '*=nucleus' or the card's \"fill\")");
        PL_TRY(pl_align_spec_set_fill(&cfg->align, f));
    }
    cfg->align.seed = seed;
    pl_norm_spec_default(&cfg->norm, card->norm_mode == PL_CARD_NORM_FIXED ? PL_NORM_FIXED : PL_NORM_SELF);
    if (card->norm_mode == PL_CARD_NORM_FIXED) {
        cfg->norm.n_stats = card->n_slots;
        for (int k = 0; k < card->n_slots; k++) {
            cfg->norm.mean[k] = card->mean[k];
            cfg->norm.std[k] = card->std[k];
        }
    }
    cfg->model_pixel_um = card->pixel_size_um;
    cfg->scale = 0;
    if (strategy_out) *strategy_out = st;
    return PL_OK;
}

void pl_card_levels_default(PlCardLevels *g) {
    memset(g, 0, sizeof *g);
    g->patch = 16;
    g->tile = PL_PREP_TILE_DEFAULT;
    g->crop = PL_PREP_CROP_DEFAULT;
    g->cell_border = PL_CELL_BORDER_SHIFT;
    g->min_cell_area = PL_PREP_MIN_CELL_AREA_DEFAULT;
}

PlStatus pl_card_prep_levels(const PlPrepConfig *base, const PlCardLevels *g, PlPrepConfig cfg[PL_STORE_N_LEVELS]) {
    PlPrepConfig *fov = &cfg[PL_STORE_FOV], *tiles = &cfg[PL_STORE_TILES], *cells = &cfg[PL_STORE_CELLS];
    *fov = *base;
    *tiles = *base;
    if (g->fov_size > 0) {
        fov->fov.mode = PL_FOV_CENTER;
        fov->fov.size = g->fov_size;
    } else {
        fov->fov.mode = PL_FOV_WHOLE;
    }
    fov->fov.patch = g->patch;
    PlFovSpec *t = &tiles->fov;
    t->mode = PL_FOV_TILES;
    t->size = g->tile;
    t->stride = g->tile_stride > 0 ? g->tile_stride : g->tile;
    t->border = PL_BORDER_DROP;
    t->patch = g->patch;
    *cells = *fov;   // cells: the same alignment, normalisation and rescaling
    PlCellSpec *c = &cells->cells;
    c->crop_px = g->crop > 0 ? g->crop : g->crop_um > 0 ? 0 : PL_PREP_CROP_DEFAULT;
    c->crop_um = g->crop > 0 ? 0 : g->crop_um;
    c->border = g->cell_border;
    c->min_area = g->min_cell_area;
    for (int l = 0; l < PL_STORE_N_LEVELS; l++) PL_TRY(pl_prep_config_validate(&cfg[l]));
    return PL_OK;
}

PlStatus pl_card_plane_roles(const PlModelCard *card, int n_slots, PlAlignStrategy strategy, const char *fill,
                             const PlManifest *m, int *plane_role, int *n_planes) {
    int n = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < (pass == 0 ? n_slots : m->n_roles); k++) {
            int r = pass == 0 ? pl_manifest_role_index(m, card->slots[k]) : k;
            if (r < 0 || (pass == 1 && !(fill && strategy == PL_ALIGN_DUPLICATE && strstr(fill, m->roles[r])))) continue;
            int dup = 0;
            for (int q = 0; q < n; q++) dup |= plane_role[q] == r;
            if (!dup && n < PL_CARD_MAX_SLOTS) plane_role[n++] = r;
        }
    *n_planes = n;
    if (n > 0) return PL_OK;
    char slots[PL_CARD_MAX_SLOTS * 40];
    PL_TRY(card_slots_csv(card, n_slots, slots, sizeof slots));
    return PL_FAIL(PL_ERR_FORMAT, "%s: none of the model's input slots (%s) is a column of %s", card->path, slots,
                   m->path);
}

int pl_card_manifest_roles(const PlModelCard *card, const char **roles) {
    int n_default = 0, n = 0;
    const char *const *def = pl_manifest_default_roles(&n_default);
    for (int i = 0; i < n_default; i++) roles[n++] = def[i];
    for (int k = 0; k < card->n_slots; k++) {
        int dup = !card->slots[k][0];
        for (int i = 0; i < n; i++) dup |= !strcmp(roles[i], card->slots[k]);
        if (!dup) roles[n++] = card->slots[k];
    }
    return n;
}

PlStatus pl_card_check_depth(const PlModelCard *card, int depth) {
    if (card->last_n > depth)
        return PL_FAIL(PL_ERR_FORMAT, "model card %s: \"last_n\" is %d, out of range for its weights %s: 1..%d (the "
                       "model has %d blocks)", card->path, card->last_n, card->weights, depth, depth);
    return PL_OK;
}

// The manifest's roles that at least one item has a file for, comma-separated ("none" when there is none).
static void card_roles_held(const PlManifest *m, char *buf, size_t size) {
    size_t used = 0;
    buf[0] = '\0';
    for (int r = 0; r < m->n_roles; r++) {
        size_t i = 0;
        while (i < m->count && !m->items[i].channels[r].path) i++;
        if (i == m->count) continue;
        int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", m->roles[r]);
        if (w < 0 || (size_t)w >= size - used) break;
        used += (size_t)w;
    }
    if (!used) snprintf(buf, size, "none");
}

PlStatus pl_card_check_fill(const PlModelCard *card, const PlAlignSpec *align, const char *fill, const PlManifest *m) {
    if (align->strategy != PL_ALIGN_DUPLICATE) return PL_OK;
    for (int s = 0; s < align->n_slots && s < card->n_slots; s++) {
        if (!align->fill[s][0]) continue;
        int own = card->slots[s][0] ? pl_manifest_role_index(m, card->slots[s]) : -1;
        int role = pl_manifest_role_index(m, align->fill[s]);
        size_t need = 0, held = 0;
        for (size_t i = 0; i < m->count; i++) {
            need += own < 0 || !m->items[i].channels[own].path;
            held += role >= 0 && m->items[i].channels[role].path;
        }
        if (need == 0 || held > 0) continue;
        char roles[1024];
        card_roles_held(m, roles, sizeof roles);
        const char *slot = card->slots[s][0] ? card->slots[s] : align->slots[s];
        if (fill)
            return PL_FAIL(PL_ERR_ARG, "--fill '%s' fills slot '%s' with role '%s', which no item of %s has (its roles: "
                           "%s); %zu item%s leave slot '%s' empty", fill, slot, align->fill[s], m->path, roles, need,
                           need > 1 ? "s" : "", slot);
        return PL_FAIL(PL_ERR_FORMAT, "model card %s: \"fill\" '%s' fills slot '%s' with role '%s', which no item of %s "
                       "has (its roles: %s); %zu item%s leave slot '%s' empty", card->path, card->fill, slot,
                       align->fill[s], m->path, roles, need, need > 1 ? "s" : "", slot);
    }
    return PL_OK;
}
