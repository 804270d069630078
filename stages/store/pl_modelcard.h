// Model cards (JSON, docs/manifests.md "Model cards"): which weights, how to load them, and how to feed them.
//
// {"name": "...", "weights": "file relative to the card", "sha256": "64 hex" (optional but checked when given),
//  "checkpoint_key": "teacher", "heads": 6 (0/absent = infer), "input_slots": ["protein","nucleus",...]
//  (model input channel k is fed from the manifest role input_slots[k]; "" or null = a zero channel),
//  "normalisation": {"mode":"self"} | {"mode":"fixed","mean":[...],"std":[...]} (per input slot),
//  "pixel_size_um": 0.08, "patch": 16 (optional, checked against the weights), "input_mode": "natural" |
//  "replicate" | "random" | "duplicate" (with "fill": "*=nucleus"), "output": "cls" | "avgpool", "last_n": 1, "description": "..."}
//
// Ownership: a PlModelCard owns every string; pl_modelcard_free releases them.
#ifndef PL_MODELCARD_H
#define PL_MODELCARD_H

#include "pl_error.h"

// Largest |(x - mean) / std| a fixed normalisation may produce for pixel values x in [0, 1].
#define PL_CARD_MAX_NORMALISED 1e6

#define PL_CARD_MAX_SLOTS 16

typedef enum PlCardNorm { PL_CARD_NORM_SELF = 0, PL_CARD_NORM_FIXED = 1 } PlCardNorm;
// Channel alignment strategy (pl_align.h): natural = map, replicate, random (control), duplicate (fills).
typedef enum PlCardInput {
    PL_CARD_INPUT_NATURAL = 0,
    PL_CARD_INPUT_REPLICATE = 1,
    PL_CARD_INPUT_RANDOM = 2,
    PL_CARD_INPUT_DUPLICATE = 3
} PlCardInput;

typedef struct PlModelCard {
    char *path;            // the card file
    char *name;
    char *weights;         // resolved against the card's folder
    char *sha256;          // expected hex digest of the weights file, or NULL
    char *checkpoint_key;  // NULL = loader default ("teacher")
    int heads;             // 0 = infer
    int patch;             // 0 = not stated
    int n_slots;
    char *slots[PL_CARD_MAX_SLOTS];   // role feeding each input channel; "" = zeros
    PlCardNorm norm_mode;
    float mean[PL_CARD_MAX_SLOTS], std[PL_CARD_MAX_SLOTS];   // PL_CARD_NORM_FIXED only, per slot
    double pixel_size_um;  // native pixel size of the training data, 0 = unknown
    PlCardInput input_mode;
    char *fill;            // duplicate: "slot=role,..." or "*=role" (NULL = none)
    int avgpool;           // "output": "avgpool"
    int last_n;            // CLS of the last n blocks (default 1)
    char *json;            // the card's canonical JSON text (stored in the HDF5 root attributes)
} PlModelCard;

// Parse and validate a card; errors name the card file and the offending key.
PlStatus pl_modelcard_load(const char *path, PlModelCard *out);
// Check the weights' sha256 when the card states one (error names both digests).
PlStatus pl_modelcard_verify_weights(const PlModelCard *card, char actual_hex[65]);
void pl_modelcard_free(PlModelCard *card);

#endif
