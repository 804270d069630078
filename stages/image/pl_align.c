// Channel alignment strategies map / replicate / random / duplicate (see pl_align.h).
#include "pl_align.h"

#include <stdio.h>
#include <string.h>

#include "pl_rng.h"

PlStatus pl_align_strategy_parse(const char *name, PlAlignStrategy *out) {
    static const char *names[] = {"map", "replicate", "random", "duplicate"};
    for (int i = 0; i < 4; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (PlAlignStrategy)i;
            return PL_OK;
        }
    return PL_FAIL(PL_ERR_ARG, "unknown channel strategy '%s' (map, replicate, random, duplicate)", name ? name : "");
}

const char *pl_align_strategy_name(PlAlignStrategy s) {
    switch (s) {
    case PL_ALIGN_MAP: return "map";
    case PL_ALIGN_REPLICATE: return "replicate";
    case PL_ALIGN_RANDOM: return "random";
    case PL_ALIGN_DUPLICATE: return "duplicate";
    }
    return "?";
}

// Copy the next comma-separated token of *s into out (trimmed); returns 0 at the end.
static int next_token(const char **s, char *out, size_t cap, int *too_long) {
    const char *p = *s;
    if (!p || !*p) return 0;
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    while (n && (*p == ' ' || *p == '\t')) p++, n--;
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    *too_long = n >= cap;
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
    *s = end ? end + 1 : p + strlen(p);
    return 1;
}

PlStatus pl_align_spec_init(PlAlignSpec *spec, PlAlignStrategy strategy, const char *slots_csv) {
    memset(spec, 0, sizeof *spec);
    spec->strategy = strategy;
    const char *s = slots_csv;
    char tok[PL_ALIGN_NAME_MAX];
    int too_long;
    while (next_token(&s, tok, sizeof tok, &too_long)) {
        if (too_long) return PL_FAIL(PL_ERR_ARG, "slot name '%s...' is too long", tok);
        if (!tok[0]) return PL_FAIL(PL_ERR_ARG, "empty slot name in '%s'", slots_csv);
        if (spec->n_slots == PL_ALIGN_MAX_SLOTS)
            return PL_FAIL(PL_ERR_ARG, "more than %d input slots in '%s'", PL_ALIGN_MAX_SLOTS, slots_csv);
        for (int i = 0; i < spec->n_slots; i++)
            if (strcmp(spec->slots[i], tok) == 0) return PL_FAIL(PL_ERR_ARG, "slot '%s' listed twice in '%s'", tok, slots_csv);
        snprintf(spec->slots[spec->n_slots++], PL_ALIGN_NAME_MAX, "%s", tok);
    }
    if (spec->n_slots == 0) return PL_FAIL(PL_ERR_ARG, "no model input slots given");
    return PL_OK;
}

static int slot_index(const PlAlignSpec *spec, const char *name) {
    for (int i = 0; i < spec->n_slots; i++)
        if (strcmp(spec->slots[i], name) == 0) return i;
    return -1;
}

// Parse "slot=role,..." into table[slot] (the slot "*" means every slot, when allow_star).
static PlStatus set_pairs(PlAlignSpec *spec, const char *pairs, char (*table)[PL_ALIGN_NAME_MAX], int allow_star,
                          const char *what) {
    const char *s = pairs;
    char tok[2 * PL_ALIGN_NAME_MAX + 2];
    int too_long;
    while (next_token(&s, tok, sizeof tok, &too_long)) {
        char *eq = strchr(tok, '=');
        if (too_long || !eq || eq == tok || !eq[1])
            return PL_FAIL(PL_ERR_ARG, "%s entry '%s' is not slot=role", what, tok);
        *eq = '\0';
        const char *slot = tok, *role = eq + 1;
        if (strlen(role) >= PL_ALIGN_NAME_MAX) return PL_FAIL(PL_ERR_ARG, "%s: role name '%s' is too long", what, role);
        if (allow_star && strcmp(slot, "*") == 0) {
            for (int i = 0; i < spec->n_slots; i++) snprintf(table[i], PL_ALIGN_NAME_MAX, "%s", role);
            continue;
        }
        int k = slot_index(spec, slot);
        if (k < 0) return PL_FAIL(PL_ERR_ARG, "%s names slot '%s', which is not one of the model's input slots", what, slot);
        snprintf(table[k], PL_ALIGN_NAME_MAX, "%s", role);
    }
    return PL_OK;
}

PlStatus pl_align_spec_set_mapping(PlAlignSpec *spec, const char *pairs_csv) {
    return set_pairs(spec, pairs_csv, spec->slot_source, 0, "channel mapping");
}

PlStatus pl_align_spec_set_fill(PlAlignSpec *spec, const char *pairs_csv) {
    return set_pairs(spec, pairs_csv, spec->fill, 1, "duplicate fill");
}

uint64_t pl_align_item_seed(uint64_t seed, const char *item_id) {
    uint64_t x = seed ^ pl_rng_hash_string(item_id);
    return pl_rng_splitmix(&x);
}

// Uniform integer in [0, n) (rejection sampling, no modulo bias).
static int rand_below(uint64_t *state, int n) {
    uint64_t lim = UINT64_MAX - UINT64_MAX % (uint64_t)n;
    uint64_t r;
    do r = pl_rng_splitmix(state);
    while (r >= lim);
    return (int)(r % (uint64_t)n);
}

static int role_index(const char *const *roles, int n_roles, const char *name) {
    for (int r = 0; r < n_roles; r++)
        if (strcmp(roles[r], name) == 0) return r;
    return -1;
}

static void roles_list(const char *const *roles, int n, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", i ? "," : "", roles[i]);
    }
}

PlStatus pl_align_plan(const PlAlignSpec *spec, const char *const *roles, int n_roles, const char *item_id,
                       PlAlignPlan *plan) {
    memset(plan, 0, sizeof *plan);
    const int S = spec->n_slots;
    if (S <= 0 || S > PL_ALIGN_MAX_SLOTS) return PL_FAIL(PL_ERR_ARG, "alignment has %d model slots", S);
    if (n_roles <= 0) return PL_FAIL(PL_ERR_ARG, "no source channels to align");
    if (n_roles > PL_ALIGN_MAX_ROLES) return PL_FAIL(PL_ERR_ARG, "%d source channels exceed the maximum of %d", n_roles, PL_ALIGN_MAX_ROLES);
    for (int r = 0; r < n_roles; r++)
        for (int q = 0; q < r; q++)
            if (strcmp(roles[r], roles[q]) == 0) return PL_FAIL(PL_ERR_ARG, "source role '%s' given twice", roles[r]);
    plan->n_slots = S;
    for (int v = 0; v < PL_ALIGN_MAX_ROLES; v++)
        for (int s = 0; s < PL_ALIGN_MAX_SLOTS; s++) plan->src[v][s] = -1;
    char have[512], want[512];
    switch (spec->strategy) {
    case PL_ALIGN_MAP:
    case PL_ALIGN_DUPLICATE: {
        plan->n_views = 1;
        int used = 0;
        for (int s = 0; s < S; s++) {
            const char *name = spec->slot_source[s][0] ? spec->slot_source[s] : spec->slots[s];
            plan->src[0][s] = role_index(roles, n_roles, name);
            used += plan->src[0][s] >= 0;
        }
        if (spec->strategy == PL_ALIGN_DUPLICATE) {
            for (int s = 0; s < S; s++) {
                if (plan->src[0][s] >= 0 || !spec->fill[s][0]) continue;
                int r = role_index(roles, n_roles, spec->fill[s]);
                roles_list(roles, n_roles, have, sizeof have);
                if (r < 0)
                    return PL_FAIL(PL_ERR_ARG, "duplicate: slot '%s' should be filled with role '%s', which this item lacks (it has %s)",
                                   spec->slots[s], spec->fill[s], have);
                plan->src[0][s] = r;
                used++;
            }
        }
        if (used == 0) {
            roles_list(roles, n_roles, have, sizeof have);
            const char *slot_names[PL_ALIGN_MAX_SLOTS];
            for (int s = 0; s < S; s++) slot_names[s] = spec->slots[s];
            roles_list(slot_names, S, want, sizeof want);
            return PL_FAIL(PL_ERR_ARG, "channel mapping: none of the source roles (%s) feeds any model slot (%s); declare a mapping such as green=protein",
                           have, want);
        }
        break;
    }
    case PL_ALIGN_REPLICATE:
        plan->n_views = n_roles;
        for (int v = 0; v < n_roles; v++)
            for (int s = 0; s < S; s++) plan->src[v][s] = v;
        break;
    case PL_ALIGN_RANDOM: {
        plan->n_views = 1;
        uint64_t st = pl_align_item_seed(spec->seed, item_id);
        int role_order[PL_ALIGN_MAX_ROLES], slot_order[PL_ALIGN_MAX_SLOTS];
        for (int r = 0; r < n_roles; r++) role_order[r] = r;
        for (int s = 0; s < S; s++) slot_order[s] = s;
        for (int i = n_roles - 1; i > 0; i--) {
            int j = rand_below(&st, i + 1), t = role_order[i];
            role_order[i] = role_order[j], role_order[j] = t;
        }
        for (int i = S - 1; i > 0; i--) {
            int j = rand_below(&st, i + 1), t = slot_order[i];
            slot_order[i] = slot_order[j], slot_order[j] = t;
        }
        int n = n_roles < S ? n_roles : S;
        for (int i = 0; i < n; i++) plan->src[0][slot_order[i]] = role_order[i];
        break;
    }
    default:
        return PL_FAIL(PL_ERR_ARG, "unknown alignment strategy %d", (int)spec->strategy);
    }
    return PL_OK;
}

void pl_align_apply(const PlAlignPlan *plan, const float *src, size_t plane, float *dst) {
    for (int v = 0; v < plan->n_views; v++)
        for (int s = 0; s < plan->n_slots; s++) {
            float *d = dst + ((size_t)v * (size_t)plan->n_slots + (size_t)s) * plane;
            int r = plan->src[v][s];
            if (r < 0)
                memset(d, 0, plane * sizeof(float));
            else
                memcpy(d, src + (size_t)r * plane, plane * sizeof(float));
        }
}
