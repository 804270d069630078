// `protloc manifest scan` library part (see pl_manifest_scan.h): folder walk, file-name rules, labels, splits, TSV.
#include "pl_manifest_scan.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_fs.h"
#include "pl_scan_labels.h"

#define SCAN_MAX_DEPTH 32

typedef struct ScanFiles { char **rel; size_t count, cap; } ScanFiles;

static PlStatus scan_push(ScanFiles *f, const char *rel) {
    if (f->count == f->cap) {
        size_t nc = f->cap ? f->cap * 2 : 256;
        char **g = realloc(f->rel, nc * sizeof *g);
        if (!g) return PL_FAIL(PL_ERR_NOMEM, "out of memory listing files");
        f->rel = g;
        f->cap = nc;
    }
    f->rel[f->count] = pl_strdup(rel);
    if (!f->rel[f->count]) return PL_ERR_NOMEM;
    f->count++;
    return PL_OK;
}

// Collect regular files below root/rel (relative names; hidden entries and symlinked folders skipped).
static PlStatus scan_walk(const char *root, const char *rel, int depth, ScanFiles *f) {
    if (depth > SCAN_MAX_DEPTH) return PL_FAIL(PL_ERR_LIMIT, "%s/%s: folders nested deeper than %d", root, rel, SCAN_MAX_DEPTH);
    char dir[PATH_MAX];
    if ((size_t)snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel) >= sizeof dir)
        return PL_FAIL(PL_ERR_LIMIT, "%s/%s: path too long", root, rel);
    DIR *d = opendir(dir);
    if (!d) return PL_FAIL(PL_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
    PlStatus st = PL_OK;
    struct dirent *e;
    while (st == PL_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char child_rel[PATH_MAX], child[PATH_MAX];
        if ((size_t)snprintf(child_rel, sizeof child_rel, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >=
                sizeof child_rel ||
            (size_t)snprintf(child, sizeof child, "%s/%s", root, child_rel) >= sizeof child) {
            st = PL_FAIL(PL_ERR_LIMIT, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat lsb, sb;
        if (lstat(child, &lsb) != 0) continue;   // vanished while listing
        if (S_ISDIR(lsb.st_mode)) {
            st = scan_walk(root, child_rel, depth + 1, f);
        } else if (stat(child, &sb) == 0 && S_ISREG(sb.st_mode)) {
            st = scan_push(f, child_rel);
        }
    }
    closedir(d);
    return st;
}

static int scan_str_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int scan_ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static uint64_t scan_fnv1a(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

// The path as written in the manifest: relative to `base` when inside it, else absolute; "#page" when asked or
// when the name itself contains '#'.
static char *scan_format_path(const char *abs_dir, const char *rel, const char *base, int page, int with_page) {
    char full[PATH_MAX * 2];
    snprintf(full, sizeof full, "%s/%s", abs_dir, rel);
    const char *shown = full;
    size_t bl = base ? strlen(base) : 0;
    if (base && !strcmp(base, "/")) shown = full + 1;
    else if (base && strncmp(full, base, bl) == 0 && full[bl] == '/') shown = full + bl + 1;
    char out[PATH_MAX * 2 + 32];
    if (with_page || strchr(shown, '#')) snprintf(out, sizeof out, "%s#%d", shown, page);
    else snprintf(out, sizeof out, "%s", shown);
    return pl_strdup(out);
}

static int scan_is_ensg(const char *t) {
    if (strncmp(t, "ENSG", 4) != 0 || !t[4]) return 0;
    for (const char *c = t + 4; *c; c++)
        if (!isdigit((unsigned char)*c)) return 0;
    return 1;
}

// OpenCell target from a file stem: see the header for the rule. Writes the token into `out`.
static const PlLabelEntry *scan_opencell_target(const char *stem, const PlLabelTable *labels, char *out, size_t cap) {
    const char *base = strrchr(stem, '/');
    base = base ? base + 1 : stem;
    char *copy = pl_strdup(base);
    if (!copy) { snprintf(out, cap, "%s", base); return NULL; }
    char *tokens[64];
    int nt = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, "_", &save); t && nt < 64; t = strtok_r(NULL, "_", &save)) tokens[nt++] = t;
    const PlLabelEntry *hit = NULL;
    if (labels && labels->format == PL_LABELS_OPENCELL) {
        for (int i = 0; i < nt && !hit; i++) hit = pl_label_table_find(labels, tokens[i]);
    }
    if (hit) snprintf(out, cap, "%s", hit->group ? hit->group : hit->key);
    else {
        int pick = -1;
        for (int i = 0; i < nt && pick < 0; i++)
            if (scan_is_ensg(tokens[i])) pick = i;
        if (pick < 0 && nt >= 2 && !strcmp(tokens[0], "OC-FOV")) pick = 1;
        if (pick < 0) pick = 0;
        snprintf(out, cap, "%s", nt ? tokens[pick] : base);
    }
    free(copy);
    return hit;
}

// HPA group: "{plate}_{well}" for "{plate}_{well}_{field}" ids, else the id.
static void scan_hpa_group(const char *id, char *out, size_t cap) {
    const char *base = strrchr(id, '/');
    base = base ? base + 1 : id;
    const char *u1 = strchr(base, '_');
    const char *u2 = u1 ? strchr(u1 + 1, '_') : NULL;
    int ok = u1 && u2 && !strchr(u2 + 1, '_') && u1 > base && u2[1];
    for (const char *c = base; ok && c < u1; c++) ok = isdigit((unsigned char)*c);
    for (const char *c = u2 + 1; ok && *c; c++) ok = isdigit((unsigned char)*c);
    if (ok) snprintf(out, cap, "%.*s", (int)(u2 - base), base);
    else snprintf(out, cap, "%s", base);
}

static const char *scan_split_for(const PlScanOptions *opt, const char *group, char *buf, size_t cap) {
    uint64_t h = scan_fnv1a(group);
    if (opt->folds > 0) {
        snprintf(buf, cap, "%d", (int)(h % (uint64_t)opt->folds));
        return buf;
    }
    double u = (double)(h >> 11) / 9007199254740992.0;   // 53 bits → [0, 1)
    if (u < opt->test_fraction) return "test";
    if (u < opt->test_fraction + opt->val_fraction) return "val";
    return "train";
}

static PlStatus scan_add_skip(PlScanResult *r, const char *msg) {
    char **g = realloc(r->skipped, (r->n_skipped + 1) * sizeof *g);
    if (!g) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    r->skipped = g;
    r->skipped[r->n_skipped] = pl_strdup(msg);
    if (!r->skipped[r->n_skipped]) return PL_ERR_NOMEM;
    r->n_skipped++;
    return PL_OK;
}

static PlScanItem *scan_new_item(PlScanResult *r, size_t *cap) {
    if (r->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 128;
        PlScanItem *g = realloc(r->items, nc * sizeof *g);
        if (!g) { PL_FAIL(PL_ERR_NOMEM, "out of memory"); return NULL; }
        r->items = g;
        *cap = nc;
    }
    PlScanItem *it = &r->items[r->count++];
    memset(it, 0, sizeof *it);
    return it;
}

// Fill label, group and split of `it` (id, channels already set); `target` = derived group.
static PlStatus scan_finish_item(PlScanResult *r, const PlScanOptions *opt, const PlLabelTable *labels,
                                 PlScanItem *it, const char *target, const PlLabelEntry *hit) {
    const char *label = "", *group = target, *split = NULL;
    if (labels && labels->format == PL_LABELS_ID) hit = pl_label_table_find(labels, it->id);
    if (hit) {
        label = hit->label;
        if (hit->group && hit->group[0]) group = hit->group;
        if (hit->split && hit->split[0]) split = hit->split;
    }
    char buf[32];
    if (!split) split = scan_split_for(opt, group, buf, sizeof buf);
    it->label = pl_strdup(label);
    it->group = pl_strdup(group);
    it->split = pl_strdup(split);
    if (!it->label || !it->group || !it->split) return PL_ERR_NOMEM;
    if (!label[0]) r->n_unlabelled++;
    return PL_OK;
}

static PlStatus scan_opencell(const char *abs_dir, const PlScanOptions *opt, const PlLabelTable *labels,
                              const ScanFiles *files, PlScanResult *r) {
    size_t cap = 0;
    for (size_t i = 0; i < files->count; i++) {
        const char *rel = files->rel[i];
        size_t sl = scan_ends_with(rel, "_proj.tif") ? 9 : scan_ends_with(rel, "_proj.tiff") ? 10 : 0;
        if (!sl) continue;
        if (strpbrk(rel, "\t\n\r")) {
            char msg[PATH_MAX + 64];
            snprintf(msg, sizeof msg, "%s: tab or newline in the file name (cannot go in a TSV)", rel);
            PL_TRY(scan_add_skip(r, msg));
            continue;
        }
        r->n_files++;
        PlScanItem *it = scan_new_item(r, &cap);
        if (!it) return PL_ERR_NOMEM;
        it->id = pl_strdup(rel);
        if (!it->id) return PL_ERR_NOMEM;
        it->id[strlen(rel) - sl] = '\0';
        it->channels[0] = scan_format_path(abs_dir, rel, opt->paths_relative_to, 0, 1);
        it->channels[1] = scan_format_path(abs_dir, rel, opt->paths_relative_to, 1, 1);
        if (!it->channels[0] || !it->channels[1]) return PL_ERR_NOMEM;
        char target[512];
        const PlLabelEntry *hit = scan_opencell_target(it->id, labels, target, sizeof target);
        PL_TRY(scan_finish_item(r, opt, labels, it, target, hit));
    }
    return PL_OK;
}

static const char *const scan_hpa_colors[4] = {"red", "green", "blue", "yellow"};   // → roles below
static const char *const scan_hpa_roles[4] = {"microtubules", "protein", "nucleus", "er"};

// Split an HPA file name into id and color index (0..3), or color 4 for "{id}_cellmask.png"; -1 = no match.
static int scan_hpa_parse(const char *rel, char *id, size_t cap) {
    const char *dot = strrchr(rel, '.');
    const char *slash = strrchr(rel, '/');
    if (!dot || (slash && dot < slash)) return -1;
    if (strcmp(dot, ".png") && strcmp(dot, ".tif") && strcmp(dot, ".tiff")) return -1;
    const char *us = NULL;
    for (const char *c = rel; c < dot; c++)
        if (*c == '_') us = c;
    if (!us || us == rel || (slash && us < slash)) return -1;
    size_t cl = (size_t)(dot - us - 1);
    int color = -1;
    for (int k = 0; k < 4; k++)
        if (strlen(scan_hpa_colors[k]) == cl && !strncmp(us + 1, scan_hpa_colors[k], cl)) color = k;
    if (color < 0 && cl == 8 && !strncmp(us + 1, "cellmask", 8) && !strcmp(dot, ".png")) color = 4;
    if (color < 0 || (size_t)(us - rel) >= cap) return -1;
    snprintf(id, cap, "%.*s", (int)(us - rel), rel);
    return color;
}

typedef struct ScanHpaFile { char id[PATH_MAX]; int color; const char *rel; } ScanHpaFile;

static int scan_hpa_cmp(const void *a, const void *b) {
    const ScanHpaFile *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    if (c) return c;
    if (x->color != y->color) return x->color - y->color;
    return strcmp(x->rel, y->rel);
}

static PlStatus scan_hpa(const char *abs_dir, const PlScanOptions *opt, const PlLabelTable *labels,
                         const ScanFiles *files, PlScanResult *r) {
    ScanHpaFile *hf = calloc(files->count ? files->count : 1, sizeof *hf);
    if (!hf) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    size_t n = 0;
    PlStatus st = PL_OK;
    for (size_t i = 0; i < files->count; i++) {
        int color = scan_hpa_parse(files->rel[i], hf[n].id, sizeof hf[n].id);
        if (color < 0) continue;
        if (strpbrk(files->rel[i], "\t\n\r")) continue;
        hf[n].color = color;
        hf[n].rel = files->rel[i];
        n++;
    }
    qsort(hf, n, sizeof *hf, scan_hpa_cmp);
    size_t cap = 0;
    for (size_t a = 0; a < n && st == PL_OK;) {
        size_t b = a;
        const char *have[5] = {0};
        while (b < n && !strcmp(hf[b].id, hf[a].id)) {
            if (have[hf[b].color]) {
                st = PL_FAIL(PL_ERR_FORMAT, "%s: item '%s' has two %s files: %s and %s", abs_dir, hf[a].id,
                             hf[b].color < 4 ? scan_hpa_colors[hf[b].color] : "cellmask", have[hf[b].color], hf[b].rel);
                break;
            }
            have[hf[b].color] = hf[b].rel;
            b++;
        }
        if (st != PL_OK) break;
        char missing[64] = "";
        for (int k = 0; k < 4; k++)
            if (!have[k]) snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                                   missing[0] ? ", " : "", scan_hpa_colors[k]);
        if (missing[0]) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof msg, "%s: missing %s channel file(s) ({id}_{red,green,blue,yellow}.png)", hf[a].id,
                     missing);
            st = scan_add_skip(r, msg);
            a = b;
            continue;
        }
        r->n_files += 4;
        PlScanItem *it = scan_new_item(r, &cap);
        if (!it) { st = PL_ERR_NOMEM; break; }
        it->id = pl_strdup(hf[a].id);
        if (!it->id) { st = PL_ERR_NOMEM; break; }
        for (int k = 0; k < 4; k++) {
            it->channels[k] = scan_format_path(abs_dir, have[k], opt->paths_relative_to, 0, 0);
            if (!it->channels[k]) st = PL_ERR_NOMEM;
        }
        if (have[4]) {
            it->mask = scan_format_path(abs_dir, have[4], opt->paths_relative_to, 0, 0);
            r->has_mask = 1;
            if (!it->mask) st = PL_ERR_NOMEM;
        }
        char group[PATH_MAX];
        scan_hpa_group(it->id, group, sizeof group);
        if (st == PL_OK) st = scan_finish_item(r, opt, labels, it, group, NULL);
        a = b;
    }
    free(hf);
    return st;
}

static int scan_item_cmp(const void *a, const void *b) {
    return strcmp(((const PlScanItem *)a)->id, ((const PlScanItem *)b)->id);
}

static void scan_item_free(PlScanItem *it) {
    free(it->id); free(it->label); free(it->split); free(it->group); free(it->mask);
    for (int k = 0; k < PL_SCAN_MAX_ROLES; k++) free(it->channels[k]);
}

PlStatus pl_manifest_scan(const char *dir, const PlScanOptions *opt, PlScanResult *r) {
    memset(r, 0, sizeof *r);
    if (opt->layout != PL_SCAN_OPENCELL && opt->layout != PL_SCAN_HPA)
        return PL_FAIL(PL_ERR_ARG, "unknown layout (want opencell or hpa)");
    if (opt->test_fraction < 0 || opt->val_fraction < 0 || opt->test_fraction + opt->val_fraction > 1)
        return PL_FAIL(PL_ERR_ARG, "test and val fractions must be >= 0 and sum to at most 1");
    char abs_dir[PATH_MAX];
    if (!realpath(dir, abs_dir)) return PL_FAIL(PL_ERR_IO, "cannot open folder %s: %s", dir, strerror(errno));
    struct stat sb;
    if (stat(abs_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)) return PL_FAIL(PL_ERR_ARG, "%s is not a folder", dir);
    char base_buf[PATH_MAX];
    PlScanOptions o = *opt;
    if (opt->paths_relative_to) {
        if (!realpath(opt->paths_relative_to, base_buf))
            return PL_FAIL(PL_ERR_IO, "cannot resolve folder %s: %s", opt->paths_relative_to, strerror(errno));
        o.paths_relative_to = base_buf;
    }
    PlLabelTable labels;
    memset(&labels, 0, sizeof labels);
    if (opt->labels_csv) PL_TRY(pl_label_table_load(opt->labels_csv, &labels));
    ScanFiles files = {0};
    PlStatus st = scan_walk(abs_dir, "", 0, &files);
    if (st == PL_OK && files.count > 1) qsort(files.rel, files.count, sizeof *files.rel, scan_str_cmp);
    r->dataset = opt->dataset ? opt->dataset : opt->layout == PL_SCAN_OPENCELL ? "opencell" : "hpa";
    if (opt->layout == PL_SCAN_OPENCELL) {
        r->n_roles = 2;
        r->roles[0] = "nucleus";
        r->roles[1] = "protein";
        r->pixel_size_um = opt->pixel_size_um > 0 ? opt->pixel_size_um : 0.206;
        if (st == PL_OK) st = scan_opencell(abs_dir, &o, opt->labels_csv ? &labels : NULL, &files, r);
    } else {
        r->n_roles = 4;
        for (int k = 0; k < 4; k++) r->roles[k] = scan_hpa_roles[k];
        r->pixel_size_um = opt->pixel_size_um > 0 ? opt->pixel_size_um : 0;
        if (st == PL_OK) st = scan_hpa(abs_dir, &o, opt->labels_csv ? &labels : NULL, &files, r);
    }
    for (size_t i = 0; i < files.count; i++) free(files.rel[i]);
    free(files.rel);
    pl_label_table_free(&labels);
    if (st == PL_OK) {
        if (r->count > 1) qsort(r->items, r->count, sizeof *r->items, scan_item_cmp);
        for (size_t i = 1; i < r->count; i++)
            if (!strcmp(r->items[i].id, r->items[i - 1].id)) {
                st = PL_FAIL(PL_ERR_FORMAT, "%s: two files give the same id '%s' (%s and %s)", dir, r->items[i].id,
                             r->items[i - 1].channels[0], r->items[i].channels[0]);
                break;
            }
    }
    if (st == PL_OK && opt->labelled_only) {
        size_t w = 0;
        for (size_t i = 0; i < r->count; i++) {
            if (r->items[i].label[0]) r->items[w++] = r->items[i];
            else { scan_item_free(&r->items[i]); r->n_dropped++; }
        }
        r->count = w;
    }
    if (st != PL_OK) pl_manifest_scan_free(r);
    return st;
}

static PlStatus scan_write_fp(const PlScanResult *r, FILE *fp) {
    fprintf(fp, "# protloc manifest scan: %zu items, dataset %s\n", r->count, r->dataset);
    fprintf(fp, "id\tdataset\tlabel\tsplit\tgroup");
    if (r->pixel_size_um > 0) fprintf(fp, "\tpixel_size_um");
    for (int k = 0; k < r->n_roles; k++) fprintf(fp, "\t%s", r->roles[k]);
    if (r->has_mask) fprintf(fp, "\tmask");
    fputc('\n', fp);
    for (size_t i = 0; i < r->count; i++) {
        const PlScanItem *it = &r->items[i];
        fprintf(fp, "%s\t%s\t%s\t%s\t%s", it->id, r->dataset, it->label, it->split, it->group);
        if (r->pixel_size_um > 0) fprintf(fp, "\t%g", r->pixel_size_um);
        for (int k = 0; k < r->n_roles; k++) fprintf(fp, "\t%s", it->channels[k] ? it->channels[k] : "");
        if (r->has_mask) fprintf(fp, "\t%s", it->mask ? it->mask : "");
        fputc('\n', fp);
    }
    return ferror(fp) ? PL_FAIL(PL_ERR_IO, "write error") : PL_OK;
}

PlStatus pl_manifest_scan_write(const PlScanResult *r, const char *path, FILE *fp) {
    if (!path) {
        PlStatus st = scan_write_fp(r, fp);
        if (st == PL_OK && fflush(fp) != 0) st = PL_FAIL(PL_ERR_IO, "cannot write the manifest: %s", strerror(errno));
        return st;
    }
    PlAtomicFile af;
    PL_TRY(pl_atomic_open(&af, path));
    PlStatus st = scan_write_fp(r, af.fp);
    if (st != PL_OK) {
        pl_atomic_abort(&af);
        return pl_error_wrap("writing %s", path);
    }
    return pl_atomic_commit(&af);
}

void pl_manifest_scan_free(PlScanResult *r) {
    if (!r) return;
    for (size_t i = 0; i < r->count; i++) scan_item_free(&r->items[i]);
    free(r->items);
    for (size_t i = 0; i < r->n_skipped; i++) free(r->skipped[i]);
    free(r->skipped);
    memset(r, 0, sizeof *r);
}
