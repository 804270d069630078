// Model card JSON parsing/validation (jansson) and the weight file check. See pl_modelcard.h.
#include "pl_modelcard.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_digest.h"
#include "pl_fs.h"

static PlStatus card_string(const char *path, json_t *root, const char *key, int required, char **out) {
    *out = NULL;
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        if (required) return PL_FAIL(PL_ERR_FORMAT, "%s: model card lacks the required key \"%s\"", path, key);
        return PL_OK;
    }
    if (!json_is_string(v)) return PL_FAIL(PL_ERR_FORMAT, "%s: \"%s\" must be a string", path, key);
    *out = strdup(json_string_value(v));
    return *out ? PL_OK : PL_FAIL(PL_ERR_NOMEM, "out of memory");
}

static PlStatus card_int(const char *path, json_t *root, const char *key, int lo, int hi, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return PL_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return PL_FAIL(PL_ERR_FORMAT, "%s: \"%s\" must be an integer in [%d, %d]", path, key, lo, hi);
    *out = (int)json_integer_value(v);
    return PL_OK;
}

static PlStatus card_parse(const char *path, json_t *root, PlModelCard *c) {
    static const char *const known[] = {"name", "weights", "sha256", "checkpoint_key", "heads", "patch",
                                        "input_slots", "normalisation", "pixel_size_um", "input_mode", "output",
                                        "last_n", "description", "source", "license", "arch", "heads_note", "fill"};
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        int ok = 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            if (!strcmp(key, known[i])) ok = 1;
        if (!ok) return PL_FAIL(PL_ERR_FORMAT, "%s: unknown key \"%s\" in model card", path, key);
    }
    PL_TRY(card_string(path, root, "name", 1, &c->name));
    char *weights = NULL;
    PL_TRY(card_string(path, root, "weights", 1, &weights));
    if (weights[0] == '/') {
        c->weights = weights;
    } else {
        char *copy = strdup(path);
        const char *dir = copy ? dirname(copy) : ".";
        size_t n = strlen(dir) + strlen(weights) + 2;
        c->weights = malloc(n);
        if (c->weights) snprintf(c->weights, n, "%s/%s", dir, weights);
        free(copy);
        free(weights);
        if (!c->weights) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    }
    PL_TRY(card_string(path, root, "sha256", 0, &c->sha256));
    if (c->sha256) {
        int ok = strlen(c->sha256) == 64;
        for (char *p = c->sha256; ok && *p; p++) {
            *p = (char)tolower((unsigned char)*p);
            ok = isxdigit((unsigned char)*p) != 0;
        }
        if (!ok) return PL_FAIL(PL_ERR_FORMAT, "%s: \"sha256\" must be 64 hex digits", path);
    }
    PL_TRY(card_string(path, root, "checkpoint_key", 0, &c->checkpoint_key));
    PL_TRY(card_int(path, root, "heads", 0, 1024, &c->heads));
    PL_TRY(card_int(path, root, "patch", 0, 1024, &c->patch));
    c->last_n = 1;
    PL_TRY(card_int(path, root, "last_n", 1, 64, &c->last_n));
    json_t *slots = json_object_get(root, "input_slots");
    if (!json_is_array(slots) || json_array_size(slots) == 0 || json_array_size(slots) > PL_CARD_MAX_SLOTS)
        return PL_FAIL(PL_ERR_FORMAT, "%s: \"input_slots\" must be an array of 1 to %d role names", path,
                       PL_CARD_MAX_SLOTS);
    c->n_slots = (int)json_array_size(slots);
    int any = 0;
    for (int k = 0; k < c->n_slots; k++) {
        json_t *s = json_array_get(slots, (size_t)k);
        const char *name = json_is_null(s) ? "" : json_is_string(s) ? json_string_value(s) : NULL;
        if (!name) return PL_FAIL(PL_ERR_FORMAT, "%s: input_slots[%d] must be a role name, \"\" or null", path, k);
        if (name[0]) any = 1;
        for (const char *p = name; *p; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
                return PL_FAIL(PL_ERR_FORMAT, "%s: input_slots[%d] '%s' is not a valid role name", path, k, name);
        c->slots[k] = strdup(name);
        if (!c->slots[k]) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    }
    if (!any) return PL_FAIL(PL_ERR_FORMAT, "%s: every input slot is empty", path);
    json_t *norm = json_object_get(root, "normalisation");
    c->norm_mode = PL_CARD_NORM_SELF;
    if (norm && !json_is_null(norm)) {
        const char *mode = json_string_value(json_object_get(norm, "mode"));
        if (!json_is_object(norm) || !mode)
            return PL_FAIL(PL_ERR_FORMAT, "%s: \"normalisation\" must be {\"mode\": \"self\"|\"fixed\", ...}", path);
        if (!strcmp(mode, "self")) {
            c->norm_mode = PL_CARD_NORM_SELF;
        } else if (!strcmp(mode, "fixed")) {
            c->norm_mode = PL_CARD_NORM_FIXED;
            json_t *mean = json_object_get(norm, "mean"), *std = json_object_get(norm, "std");
            if (!json_is_array(mean) || !json_is_array(std) || (int)json_array_size(mean) != c->n_slots ||
                (int)json_array_size(std) != c->n_slots)
                return PL_FAIL(PL_ERR_FORMAT, "%s: fixed normalisation needs \"mean\" and \"std\" arrays of %d numbers "
                               "(one per input slot)", path, c->n_slots);
            for (int k = 0; k < c->n_slots; k++) {
                json_t *m = json_array_get(mean, (size_t)k), *s = json_array_get(std, (size_t)k);
                if (!json_is_number(m) || !json_is_number(s) || !(json_number_value(s) > 0))
                    return PL_FAIL(PL_ERR_FORMAT, "%s: normalisation mean[%d]/std[%d] must be numbers, std > 0", path,
                                   k, k);
                double mv = json_number_value(m), sv = json_number_value(s);
                // pixel values x in [0, 1] become (x - mean) / std: keep them far inside float32 (the ViT squares
                // and sums them), or every embedding would be NaN
                double reach = (fabs(mv) > fabs(1.0 - mv) ? fabs(mv) : fabs(1.0 - mv)) / sv;
                if (!isfinite(mv) || !isfinite(sv) || !(reach <= PL_CARD_MAX_NORMALISED))
                    return PL_FAIL(PL_ERR_FORMAT, "%s: normalisation mean[%d] = %g, std[%d] = %g map pixel values to "
                                   "+-%g, beyond +-%g: the model's arithmetic would overflow float32", path, k, mv, k, sv,
                                   reach, PL_CARD_MAX_NORMALISED);
                c->mean[k] = (float)mv;
                c->std[k] = (float)sv;
            }
        } else {
            return PL_FAIL(PL_ERR_FORMAT, "%s: unknown normalisation mode '%s' (self, fixed)", path, mode);
        }
    }
    json_t *px = json_object_get(root, "pixel_size_um");
    if (px && !json_is_null(px)) {
        if (!json_is_number(px) || !(json_number_value(px) >= 1e-4 && json_number_value(px) <= 1000))
            return PL_FAIL(PL_ERR_FORMAT, "%s: \"pixel_size_um\" must be a number of micrometres in 0.0001..1000", path);
        c->pixel_size_um = json_number_value(px);
    }
    const char *mode = json_string_value(json_object_get(root, "input_mode"));
    if (json_object_get(root, "input_mode") && !mode)
        return PL_FAIL(PL_ERR_FORMAT, "%s: \"input_mode\" must be a string", path);
    if (mode && !strcmp(mode, "replicate")) c->input_mode = PL_CARD_INPUT_REPLICATE;
    else if (mode && !strcmp(mode, "random")) c->input_mode = PL_CARD_INPUT_RANDOM;
    else if (mode && !strcmp(mode, "duplicate")) c->input_mode = PL_CARD_INPUT_DUPLICATE;
    else if (mode && strcmp(mode, "natural") != 0 && strcmp(mode, "map") != 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: unknown input_mode '%s' (natural, replicate, random, duplicate)", path,
                       mode);
    PL_TRY(card_string(path, root, "fill", 0, &c->fill));
    const char *output = json_string_value(json_object_get(root, "output"));
    if (json_object_get(root, "output") && !output)
        return PL_FAIL(PL_ERR_FORMAT, "%s: \"output\" must be a string", path);
    if (output && !strcmp(output, "avgpool")) c->avgpool = 1;
    else if (output && strcmp(output, "cls") != 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: unknown output '%s' (cls, avgpool)", path, output);
    if (c->avgpool && c->last_n > 1)   // checked here, not per item by the ViT
        return PL_FAIL(PL_ERR_FORMAT, "%s: \"last_n\" is %d with \"output\": \"avgpool\"; average pooling is defined "
                       "only over the last block (last_n 1)", path, c->last_n);
    c->json = json_dumps(root, JSON_SORT_KEYS | JSON_COMPACT);
    if (!c->json) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    return PL_OK;
}

PlStatus pl_modelcard_load(const char *path, PlModelCard *out) {
    memset(out, 0, sizeof *out);
    json_error_t err;
    char *text = NULL;
    size_t size = 0;
    if (pl_file_read_all(path, (size_t)16 << 20, &text, &size) != PL_OK) return pl_error_wrap("model card");
    json_t *root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
    free(text);
    if (!root) {
        if (err.line < 0) return PL_FAIL(PL_ERR_IO, "%s: cannot read model card: %s", path, err.text);
        return PL_FAIL(PL_ERR_FORMAT, "%s:%d:%d: invalid JSON: %s", path, err.line, err.column, err.text);
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return PL_FAIL(PL_ERR_FORMAT, "%s: a model card must be a JSON object", path);
    }
    out->path = strdup(path);
    PlStatus st = out->path ? card_parse(path, root, out) : PL_FAIL(PL_ERR_NOMEM, "out of memory");
    json_decref(root);
    if (st != PL_OK) pl_modelcard_free(out);
    return st;
}

PlStatus pl_modelcard_verify_weights(const PlModelCard *card, char actual_hex[65]) {
    PlStatus st = pl_sha256_file(card->weights, actual_hex);
    if (st != PL_OK) return pl_error_wrap("model card %s: weights", card->path);
    if (card->sha256 && strcmp(card->sha256, actual_hex) != 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s: weights %s have sha256 %s but the card says %s", card->path, card->weights,
                       actual_hex, card->sha256);
    return PL_OK;
}

void pl_modelcard_free(PlModelCard *c) {
    if (!c) return;
    free(c->path); free(c->name); free(c->weights); free(c->sha256); free(c->checkpoint_key); free(c->fill);
    for (int k = 0; k < PL_CARD_MAX_SLOTS; k++) free(c->slots[k]);
    free(c->json);
    memset(c, 0, sizeof *c);
}
