// pl_card_prep_config: a model card's alignment, normalisation and pixel size as a pl_prep configuration.
#include "pl_card_prep.h"

#include <stdio.h>
#include <string.h>

_Static_assert((int)PL_CARD_INPUT_NATURAL == (int)PL_ALIGN_MAP && (int)PL_CARD_INPUT_REPLICATE == (int)PL_ALIGN_REPLICATE &&
                   (int)PL_CARD_INPUT_RANDOM == (int)PL_ALIGN_RANDOM && (int)PL_CARD_INPUT_DUPLICATE == (int)PL_ALIGN_DUPLICATE,
               "model card input modes name the alignment strategies");

PlStatus pl_card_prep_config(const PlModelCard *card, int n_slots, const char *strategy, const char *fill,
                             uint64_t seed, PlPrepConfig *cfg, PlAlignStrategy *strategy_out, char *slots,
                             size_t slots_size) {
    const char *name = strategy ? strategy : pl_align_strategy_name((PlAlignStrategy)card->input_mode);
    if (strcmp(name, "natural") == 0) name = "map";
    PlAlignStrategy st;
    if (pl_align_strategy_parse(name, &st) != PL_OK) return pl_error_wrap("--align");
    size_t used = 0;
    slots[0] = '\0';
    for (int k = 0; k < n_slots; k++) {
        int w = card->slots[k][0] ? snprintf(slots + used, slots_size - used, "%s%s", k ? "," : "", card->slots[k])
                                  : snprintf(slots + used, slots_size - used, "%sempty%d", k ? "," : "", k);
        if (w < 0 || (size_t)w >= slots_size - used) return PL_FAIL(PL_ERR_LIMIT, "model card %s: input_slots too long", card->path);
        used += (size_t)w;
    }
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
