// One manifest item through a card's preparation (pl_card_prep.h): its sources (which columns feed its channels),
// its source pixel size, and one level's stage composition; `run` and `finetune` prepare every item through here.
#include "pl_card_prep.h"

PlStatus pl_card_item_sources(const PlManifest *m, const PlManifestItem *it, const int *plane_role, int n_planes,
                              int every_plane, PlChannelSource *src, char (*refs)[PL_CARD_REF_MAX], int *n_src,
                              const char **stage) {
    int n = 0;
    *n_src = 0;
    for (int q = 0; q < n_planes; q++) {
        const PlManifestChannel *ch = &it->channels[plane_role[q]];
        if (!ch->path) {
            if (!every_plane) continue;
            *stage = "align";
            return PL_FAIL(PL_ERR_FORMAT, "replicate needs every channel, and the %s channel is empty",
                           m->roles[plane_role[q]]);
        }
        *stage = "input";
        PL_TRY(pl_manifest_channel_ref(ch, refs[n], PL_CARD_REF_MAX));
        src[n].role = m->roles[plane_role[q]];
        src[n].ref = refs[n];
        n++;
    }
    *stage = "input";
    if (n == 0) return PL_FAIL(PL_ERR_ARG, "the item has none of the channels the model reads");
    *n_src = n;
    return PL_OK;
}

double pl_card_item_pixel_size(const PlModelCard *card, const PlManifestItem *it, double fallback_um) {
    if (it->pixel_size_um > 0) return it->pixel_size_um;
    if (fallback_um > 0) return fallback_um;
    return card->pixel_size_um > 0 ? card->pixel_size_um : 0.0;
}

PlStatus pl_card_prep_item(const PlPrepConfig *cfg, PlStoreLevel level, const PlManifest *m, const PlManifestItem *it,
                           double pixel_size_um, const PlChannelSource *src, int n_src, int nucleus_role,
                           PlSegmenter **segmenter, PlPrepResult *r, const char **stage) {
    PlStatus st;
    if (level == PL_STORE_CELLS) {
        char mask_ref[PL_CARD_REF_MAX], nuc_ref[PL_CARD_REF_MAX];
        const char *mask = NULL;
        PlChannelSource nucleus = {0};
        const PlChannelSource *segment_from = NULL;
        *stage = "input";
        if (it->mask.path) {
            PL_TRY(pl_manifest_channel_ref(&it->mask, mask_ref, PL_CARD_REF_MAX));
            mask = mask_ref;
        } else if (nucleus_role >= 0 && it->channels[nucleus_role].path) {
            PL_TRY(pl_manifest_channel_ref(&it->channels[nucleus_role], nuc_ref, PL_CARD_REF_MAX));
            nucleus.role = m->roles[nucleus_role];
            nucleus.ref = nuc_ref;
            segment_from = &nucleus;
        }
        st = pl_prep_cells(cfg, it->id, pixel_size_um, src, n_src, mask, segment_from, segmenter, r);
    } else {
        st = pl_prep_fov(cfg, it->id, pixel_size_um, src, n_src, r);
    }
    if (st != PL_OK) *stage = r->failed_step ? r->failed_step : pl_store_level_name(level);
    return st;
}
