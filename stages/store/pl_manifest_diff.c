// Manifest comparison by id (see pl_manifest_diff.h).
#include "pl_manifest_diff.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"

static const char *const diff_fixed[] = {"id", "dataset", "label", "split", "group", "pixel_size_um", "mask", "sha256"};

PlStatus pl_manifest_load_any_roles(const char *path, PlManifest *out) {
    memset(out, 0, sizeof *out);
    FILE *fp;
    PL_TRY(pl_fopen_regular(path, &fp));   // a FIFO or device is an error, never a hang
    char *line = malloc(PL_MANIFEST_MAX_LINE);
    if (!line) { fclose(fp); return PL_FAIL(PL_ERR_NOMEM, "out of memory"); }
    const char *roles[PL_MANIFEST_MAX_ROLES];
    char *names[PL_MANIFEST_MAX_ROLES];
    int n_roles = 0;
    while (fgets(line, PL_MANIFEST_MAX_LINE, fp)) {
        if (line[0] == '#' || line[0] == '\n' || (line[0] == '\r' && line[1] == '\n')) continue;
        line[strcspn(line, "\r\n")] = '\0';
        char *save = NULL;
        for (char *t = strtok_r(line, "\t", &save); t; t = strtok_r(NULL, "\t", &save)) {
            int fixed = 0;
            for (size_t k = 0; k < sizeof diff_fixed / sizeof *diff_fixed; k++) fixed |= !strcmp(t, diff_fixed[k]);
            if (!fixed && n_roles < PL_MANIFEST_MAX_ROLES) {
                names[n_roles] = pl_strdup(t);
                roles[n_roles] = names[n_roles];
                if (names[n_roles]) n_roles++;
            }
        }
        break;
    }
    fclose(fp);
    free(line);
    PlManifestOptions opt = {.allow_outside_root = 1, .check_files = 0};
    if (n_roles) {
        opt.roles = roles;
        opt.n_roles = n_roles;
    }
    PlStatus st = pl_manifest_load(path, &opt, out);
    for (int i = 0; i < n_roles; i++) free(names[i]);
    return st;
}

static int diff_str_eq(const char *a, const char *b) {
    return !strcmp(a ? a : "", b ? b : "");
}

static void diff_note(char *fields, size_t cap, const char *name) {
    size_t l = strlen(fields);
    if (l + strlen(name) + 2 >= cap) return;
    snprintf(fields + l, cap - l, "%s%s", l ? "," : "", name);
}

static int diff_channel_eq(const PlManifestChannel *a, const PlManifestChannel *b) {
    int ea = !a || !a->path, eb = !b || !b->path;
    if (ea || eb) return ea == eb;
    return !strcmp(a->path, b->path) && a->page == b->page;
}

// Compare two items; writes the differing field names into fields; returns 1 when they differ.
static int diff_items(const PlManifest *om, const PlManifestItem *o, const PlManifest *nm, const PlManifestItem *n,
                      char *fields, size_t cap) {
    fields[0] = '\0';
    if (!diff_str_eq(o->dataset, n->dataset)) diff_note(fields, cap, "dataset");
    if (!diff_str_eq(o->label, n->label)) diff_note(fields, cap, "label");
    if (!diff_str_eq(o->split, n->split)) diff_note(fields, cap, "split");
    if (!diff_str_eq(o->group, n->group)) diff_note(fields, cap, "group");
    if (o->pixel_size_um != n->pixel_size_um) diff_note(fields, cap, "pixel_size_um");
    if (!diff_str_eq(o->sha256, n->sha256)) diff_note(fields, cap, "sha256");
    if (!diff_channel_eq(&o->mask, &n->mask)) diff_note(fields, cap, "mask");
    for (int r = 0; r < nm->n_roles; r++) {
        int ro = pl_manifest_role_index(om, nm->roles[r]);
        if (!diff_channel_eq(ro >= 0 ? &o->channels[ro] : NULL, &n->channels[r])) diff_note(fields, cap, nm->roles[r]);
    }
    for (int r = 0; r < om->n_roles; r++) {
        if (pl_manifest_role_index(nm, om->roles[r]) >= 0) continue;
        if (!diff_channel_eq(&o->channels[r], NULL)) diff_note(fields, cap, om->roles[r]);
    }
    return fields[0] != '\0';
}

typedef struct DiffIndex { const char *id; size_t at; } DiffIndex;

static int diff_index_cmp(const void *a, const void *b) {
    return strcmp(((const DiffIndex *)a)->id, ((const DiffIndex *)b)->id);
}

static DiffIndex *diff_build_index(const PlManifest *m) {
    DiffIndex *ix = malloc((m->count ? m->count : 1) * sizeof *ix);
    if (!ix) return NULL;
    for (size_t i = 0; i < m->count; i++) ix[i] = (DiffIndex){m->items[i].id, i};
    qsort(ix, m->count, sizeof *ix, diff_index_cmp);
    return ix;
}

static const DiffIndex *diff_lookup(const DiffIndex *ix, size_t n, const char *id) {
    DiffIndex probe = {id, 0};
    return n ? bsearch(&probe, ix, n, sizeof *ix, diff_index_cmp) : NULL;
}

PlStatus pl_manifest_diff(const PlManifest *old_m, const PlManifest *new_m, PlManifestDiff *out) {
    memset(out, 0, sizeof *out);
    size_t cap = old_m->count + new_m->count;
    out->entries = calloc(cap ? cap : 1, sizeof *out->entries);
    DiffIndex *oi = diff_build_index(old_m), *ni = diff_build_index(new_m);
    if (!out->entries || !oi || !ni) {
        free(oi); free(ni); pl_manifest_diff_free(out);
        return PL_FAIL(PL_ERR_NOMEM, "out of memory comparing manifests");
    }
    for (size_t i = 0; i < new_m->count; i++) {
        const PlManifestItem *n = &new_m->items[i];
        const DiffIndex *hit = diff_lookup(oi, old_m->count, n->id);
        PlManifestDiffEntry *e = &out->entries[out->count];
        if (!hit) {
            e->kind = PL_DIFF_ADDED;
            e->id = n->id;
            out->count++;
            out->n_added++;
        } else if (diff_items(old_m, &old_m->items[hit->at], new_m, n, e->fields, sizeof e->fields)) {
            e->kind = PL_DIFF_CHANGED;
            e->id = n->id;
            out->count++;
            out->n_changed++;
        } else {
            out->n_unchanged++;
        }
    }
    for (size_t i = 0; i < old_m->count; i++) {
        if (diff_lookup(ni, new_m->count, old_m->items[i].id)) continue;
        PlManifestDiffEntry *e = &out->entries[out->count++];
        e->kind = PL_DIFF_REMOVED;
        e->id = old_m->items[i].id;
        e->fields[0] = '\0';
        out->n_removed++;
    }
    free(oi);
    free(ni);
    return PL_OK;
}

void pl_manifest_diff_free(PlManifestDiff *d) {
    if (!d) return;
    free(d->entries);
    memset(d, 0, sizeof *d);
}
