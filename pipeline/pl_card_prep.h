// The preprocessing a model card implies, written once for every command that feeds a model from a manifest
// (`run`, `finetune`): the manifest roles it reads, the alignment strategy over the card's input slots,
// normalisation and the model's pixel size.
#ifndef PL_CARD_PREP_H
#define PL_CARD_PREP_H

#include <stddef.h>
#include <stdint.h>

#include "pl_error.h"
#include "pl_manifest.h"
#include "pl_modelcard.h"
#include "pl_prep.h"

// cfg = pl_prep_config_default over the card's n_slots slots (an empty slot is named "emptyK" so that no role feeds
// it), the alignment strategy `strategy` (NULL = the card's input mode; "natural" means map) with `fill` (NULL = the
// card's) and `seed`, the card's normalisation and pixel size. Geometry stays the default (whole FOV). The slot list
// is also written to slots (comma-separated). Errors name the card.
PlStatus pl_card_prep_config(const PlModelCard *card, int n_slots, const char *strategy, const char *fill,
                             uint64_t seed, PlPrepConfig *cfg, PlAlignStrategy *strategy_out, char *slots,
                             size_t slots_size);

// Checks of a card made once at load, so that no run computes every item before failing each the same way:
// pl_card_check_depth: the card's "last_n" is within 1..depth, the number of blocks of its weights;
// pl_card_check_fill: under alignment 'duplicate' (`align` from pl_card_prep_config), every fill role that some item
// of `m` needs (the slot's own role is missing for it) is held by at least one item. `fill` is the --fill option
// (NULL: the card's "fill"), named in the message with the slot, the role and the roles the manifest has.
PlStatus pl_card_check_depth(const PlModelCard *card, int depth);
PlStatus pl_card_check_fill(const PlModelCard *card, const PlAlignSpec *align, const char *fill, const PlManifest *m);

// The manifest role columns a command feeding this card accepts: the default roles, then every role the card's slots
// name that is not among them. roles must hold PL_CARD_MAX_ROLES entries (borrowed strings); returns the count.
#define PL_CARD_MAX_ROLES (PL_MANIFEST_MAX_ROLES + PL_CARD_MAX_SLOTS)
int pl_card_manifest_roles(const PlModelCard *card, const char **roles);

#endif
