// Channel alignment: which source role (nucleus, protein, ...) feeds which model input slot, per strategy.
//
// A model lists its input slots in checkpoint order (model card "input_slots", e.g. HPA
// [protein, nucleus, microtubules, er] or ImageNet [red, green, blue]). A source item offers roles
// (manifest channel columns, e.g. nucleus + protein for OpenCell). Alignment produces a PLAN: V views,
// each an array of n_slots role indices (-1 = empty slot). Applying a plan copies role planes into
// (V, n_slots, H, W); empty slots are ZERO AFTER NORMALISATION (pl_prep fuses both steps).
//
// Strategies (docs/stages.md has a picture of each):
//   map        natural mapping: slot s takes the role named slot_source[s] (default: the slot's own name,
//              so "protein" feeds "protein"; ImageNet needs a declared mapping such as green=protein,
//              blue=nucleus). 1 view. Roles no slot asks for are ignored.
//   replicate  each role copied into EVERY slot and embedded on its own: V = n_roles views, in role order
//              (the order of the sources given); embeddings are later concatenated in that order.
//   random     the study's control: the roles are assigned to distinct slots by a seeded shuffle that is
//              deterministic per (seed, item id); other slots empty. 1 view.
//   duplicate  map, then each still-empty slot s with fill[s] set takes that named role
//              (e.g. microtubules=nucleus, er=nucleus; "*=nucleus" fills every empty slot). 1 view.
// Ownership: plain value structs, nothing allocated.
#ifndef PL_ALIGN_H
#define PL_ALIGN_H

#include <stddef.h>
#include <stdint.h>
#include "pl_error.h"

#define PL_ALIGN_MAX_SLOTS 16
#define PL_ALIGN_MAX_ROLES 16
#define PL_ALIGN_NAME_MAX 32

typedef enum PlAlignStrategy {
    PL_ALIGN_MAP = 0,
    PL_ALIGN_REPLICATE = 1,
    PL_ALIGN_RANDOM = 2,
    PL_ALIGN_DUPLICATE = 3
} PlAlignStrategy;

typedef struct PlAlignSpec {
    PlAlignStrategy strategy;
    int n_slots;
    char slots[PL_ALIGN_MAX_SLOTS][PL_ALIGN_NAME_MAX];        // model input slots, model order
    char slot_source[PL_ALIGN_MAX_SLOTS][PL_ALIGN_NAME_MAX];  // map: role feeding slot s ("" = slot's own name)
    char fill[PL_ALIGN_MAX_SLOTS][PL_ALIGN_NAME_MAX];         // duplicate: role for empty slot s ("" = stays empty)
    uint64_t seed;                                            // random
} PlAlignSpec;

typedef struct PlAlignPlan {
    int n_views;
    int n_slots;
    int src[PL_ALIGN_MAX_ROLES][PL_ALIGN_MAX_SLOTS];   // [view][slot] → role index, -1 = empty (zero)
} PlAlignPlan;

// "map" | "replicate" | "random" | "duplicate".
PlStatus pl_align_strategy_parse(const char *name, PlAlignStrategy *out);
const char *pl_align_strategy_name(PlAlignStrategy s);

// Start a spec: strategy + comma-separated slot list ("protein,nucleus,microtubules,er"); seed 0.
PlStatus pl_align_spec_init(PlAlignSpec *spec, PlAlignStrategy strategy, const char *slots_csv);
// Declare sources for slots: "green=protein,blue=nucleus" (slot=role). Unknown slot → PL_ERR_ARG.
PlStatus pl_align_spec_set_mapping(PlAlignSpec *spec, const char *pairs_csv);
// Duplicate fills: "microtubules=nucleus,er=nucleus" or "*=nucleus" (slot=role).
PlStatus pl_align_spec_set_fill(PlAlignSpec *spec, const char *pairs_csv);

// Build the plan for an item offering `roles` (n_roles names, in the order their planes will be given).
// `item_id` seeds `random` (with spec->seed); may be NULL for other strategies. Errors name the roles/slots:
// duplicate role names, a map under which no slot gets any role, a fill role that is absent.
PlStatus pl_align_plan(const PlAlignSpec *spec, const char *const *roles, int n_roles, const char *item_id,
                       PlAlignPlan *plan);

// Copy planes: src (n_roles, plane) → dst (n_views, n_slots, plane); empty slots are set to 0.
void pl_align_apply(const PlAlignPlan *plan, const float *src, size_t plane, float *dst);

// Deterministic 64-bit seed for (seed, item id) (splitmix64 of seed ^ FNV-1a(id)); exposed for tests.
uint64_t pl_align_item_seed(uint64_t seed, const char *item_id);

#endif
