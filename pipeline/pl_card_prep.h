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

// The manifest role columns a command feeding this card accepts: the default roles, then every role the card's slots
// name that is not among them. roles must hold PL_CARD_MAX_ROLES entries (borrowed strings); returns the count.
#define PL_CARD_MAX_ROLES (PL_MANIFEST_MAX_ROLES + PL_CARD_MAX_SLOTS)
int pl_card_manifest_roles(const PlModelCard *card, const char **roles);

#endif
