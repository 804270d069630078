// Evaluation inputs (store levels through pl_store_table, .npy + TSV metadata pairs) and the label encoder.
#include "pl_features.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_npy.h"

static void features_free_strings(char **v, int64_t n) {
    if (!v) return;
    for (int64_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void pl_features_free(PlFeatureSet *fs) {
    free(fs->x);
    features_free_strings(fs->id, fs->n);
    features_free_strings(fs->label, fs->n);
    features_free_strings(fs->split, fs->n);
    features_free_strings(fs->group, fs->n);
    free(fs->item);
    memset(fs, 0, sizeof *fs);
}

static PlStatus features_alloc_meta(PlFeatureSet *fs, int64_t n) {
    fs->id = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->label = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->split = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->group = pl_calloc((size_t)n + 1, sizeof(char *));
    fs->item = pl_calloc((size_t)n + 1, sizeof(int64_t));
    if (!fs->id || !fs->label || !fs->split || !fs->group || !fs->item) return PL_ERR_NOMEM;
    return PL_OK;
}

// ---------------------------------------------------------------- store level

PlStatus pl_features_read_store(const char *path, PlStoreLevel level, PlFeatureSet *fs) {
    memset(fs, 0, sizeof *fs);
    PlStoreTable t;
    PL_TRY(pl_store_table_load(path, level, &t));
    PlStatus st = features_alloc_meta(fs, t.n);
    int dim = (int)t.d;
    fs->dim = dim;
    fs->x = t.x;   // rows are compacted in place below
    t.x = NULL;
    static const char *suffix[PL_STORE_N_LEVELS] = {"", "tile", "cell"};
    int64_t kept = 0;
    for (int64_t r = 0; r < t.n && st == PL_OK; r++) {
        const float *src = fs->x + (size_t)r * dim;
        int finite = 1;
        for (int d = 0; d < dim; d++) finite &= isfinite(src[d]) != 0;
        if (!finite) {
            fs->n_skipped++;
            continue;
        }
        int64_t it = t.item[r];
        if (kept != r) memmove(fs->x + (size_t)kept * dim, src, (size_t)dim * sizeof(float));
        const char *item_id = t.meta[0][it];
        if (level == PL_STORE_FOV) {
            fs->id[kept] = pl_strdup(item_id);
        } else {
            size_t n = strlen(item_id) + 32;
            fs->id[kept] = pl_malloc(n);
            if (fs->id[kept]) snprintf(fs->id[kept], n, "%s/%s%lld", item_id, suffix[level], (long long)r);
        }
        fs->label[kept] = pl_strdup(pl_store_table_label(&t, r));
        fs->split[kept] = pl_strdup(t.meta[3][it]);
        fs->group[kept] = pl_strdup(t.meta[4][it]);
        fs->item[kept] = it;
        fs->n = kept + 1;   // so pl_features_free releases what exists
        if (!fs->id[kept] || !fs->label[kept] || !fs->split[kept] || !fs->group[kept]) st = PL_ERR_NOMEM;
        kept++;
    }
    if (st == PL_OK) fs->n = kept;
    pl_store_table_free(&t);
    if (st != PL_OK) pl_features_free(fs);
    return st;
}

// ---------------------------------------------------------------- .npy + TSV

// Split a line at tabs in place (no quoting in protloc TSVs); returns field count.
static int features_split_tabs(char *line, char **fields, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n < max) fields[n] = p;
        n++;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

PlStatus pl_features_read_npy_tsv(const char *npy_path, const char *tsv_path, PlFeatureSet *fs) {
    memset(fs, 0, sizeof *fs);
    PlNpyArray a;
    PL_TRY(pl_npy_read_f32(npy_path, 2, &a));
    int64_t rows = a.shape[0];
    if (a.shape[1] < 1) {
        pl_npy_free(&a);
        return PL_FAIL(PL_ERR_FORMAT, "%s: features have no columns", npy_path);
    }
    char *text = NULL;
    size_t size = 0;
    PlStatus st = pl_file_read_all(tsv_path, (size_t)1 << 32, &text, &size);
    if (st != PL_OK) {
        pl_npy_free(&a);
        return st;
    }
    st = features_alloc_meta(fs, rows);
    fs->x = a.data;
    fs->dim = (int)a.shape[1];
    a.data = NULL;
    int col[4] = {-1, -1, -1, -1};
    static const char *names[4] = {"id", "label", "split", "group"};
    int header_seen = 0, ncols = 0;
    int64_t row = 0, lineno = 0;
    char *save = text;
    enum { MAXF = 256 };
    char *f[MAXF];
    while (st == PL_OK && save && *save) {
        char *line = save;
        char *nl = strchr(line, '\n');
        if (nl) { *nl = 0; save = nl + 1; } else save = NULL;
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = 0;
        if (line[0] == '#' || (len == 0 && !header_seen)) continue;
        if (len == 0 && !save) break;
        int nf = features_split_tabs(line, f, MAXF);
        if (nf > MAXF) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: more than %d columns", tsv_path, (long long)lineno, MAXF); break; }
        if (!header_seen) {
            header_seen = 1;
            ncols = nf;
            for (int i = 0; i < nf; i++)
                for (int c = 0; c < 4; c++)
                    if (strcmp(f[i], names[c]) == 0) col[c] = i;
            if (col[0] < 0 || col[1] < 0)
                st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: header must name the columns 'id' and 'label' (and may name 'split', 'group')",
                             tsv_path, (long long)lineno);
            continue;
        }
        if (nf != ncols) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: %d fields, the header has %d", tsv_path, (long long)lineno, nf, ncols); break; }
        if (row >= rows) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%lld: more data lines than the %lld rows of %s", tsv_path, (long long)lineno, (long long)rows, npy_path); break; }
        fs->id[row] = pl_strdup(f[col[0]]);
        fs->label[row] = pl_strdup(f[col[1]]);
        fs->split[row] = pl_strdup(col[2] >= 0 ? f[col[2]] : "");
        fs->group[row] = pl_strdup(col[3] >= 0 ? f[col[3]] : "");
        fs->item[row] = row;
        fs->n = row + 1;
        if (!fs->id[row] || !fs->label[row] || !fs->split[row] || !fs->group[row]) st = PL_ERR_NOMEM;
        row++;
    }
    if (st == PL_OK && !header_seen) st = PL_FAIL(PL_ERR_FORMAT, "%s: no header line", tsv_path);
    if (st == PL_OK && row != rows)
        st = PL_FAIL(PL_ERR_FORMAT, "%s: %lld data lines but %s has %lld rows", tsv_path, (long long)row, npy_path, (long long)rows);
    for (int64_t r = 0; st == PL_OK && r < rows; r++)
        for (int d = 0; d < fs->dim; d++)
            if (!isfinite(fs->x[(size_t)r * fs->dim + d])) {
                st = PL_FAIL(PL_ERR_NUMERIC, "%s: row %lld (id %s) column %d is not finite", npy_path, (long long)r, fs->id[r], d);
                break;
            }
    free(text);
    if (st != PL_OK) {
        fs->n = fs->n > 0 ? fs->n : 0;
        pl_features_free(fs);
    }
    return st;
}

// ---------------------------------------------------------------- labels → classes

typedef struct FeaturesLabelRef {
    const char *text;   // the usable label (not NUL-terminated at len when cut at ';')
    size_t len;
    int64_t row;
} FeaturesLabelRef;

static int features_cmp_label(const void *a, const void *b) {
    const FeaturesLabelRef *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

void pl_label_coding_free(PlLabelCoding *c) {
    if (c->classes)
        for (int i = 0; i < c->n_classes; i++) free(c->classes[i]);
    free(c->classes);
    free(c->cls);
    memset(c, 0, sizeof *c);
}

PlStatus pl_features_encode_labels(const PlFeatureSet *fs, PlMultilabel multilabel, int max_classes, PlLabelCoding *out) {
    memset(out, 0, sizeof *out);
    out->cls = pl_malloc(((size_t)fs->n + 1) * sizeof *out->cls);
    FeaturesLabelRef *refs = pl_malloc(((size_t)fs->n + 1) * sizeof *refs);
    if (!out->cls || !refs) {
        free(refs);
        pl_label_coding_free(out);
        return PL_ERR_NOMEM;
    }
    PlStatus st = PL_OK;
    int64_t m = 0;
    for (int64_t i = 0; i < fs->n && st == PL_OK; i++) {
        const char *l = fs->label[i];
        const char *semi = strchr(l, ';');
        size_t len = semi ? (size_t)(semi - l) : strlen(l);
        if (semi && multilabel == PL_MULTILABEL_SKIP) {
            out->cls[i] = -2;
            out->n_multilabel_skipped++;
        } else if (len == 0) {
            out->cls[i] = -1;
            out->n_unlabelled++;
        } else if (len > PL_FEATURES_MAX_LABEL) {
            st = PL_FAIL(PL_ERR_LIMIT, "row %lld (id %s): label of %zu bytes exceeds the limit of %d bytes (is the label "
                         "column right?)", (long long)i, fs->id[i], len, PL_FEATURES_MAX_LABEL);
        } else {
            refs[m++] = (FeaturesLabelRef){l, len, i};
        }
    }
    if (st == PL_OK) qsort(refs, (size_t)m, sizeof *refs, features_cmp_label);
    int64_t n_classes = 0;
    for (int64_t j = 0; j < m && st == PL_OK; j++)
        if (j == 0 || refs[j].len != refs[j - 1].len || memcmp(refs[j].text, refs[j - 1].text, refs[j].len) != 0)
            n_classes++;
    if (st == PL_OK && n_classes > max_classes)
        st = PL_FAIL(PL_ERR_LIMIT, "%lld distinct labels, more than the %d this evaluation supports: is the label column "
                     "right?", (long long)n_classes, max_classes);
    if (st == PL_OK) {
        out->classes = pl_calloc((size_t)n_classes + 1, sizeof *out->classes);
        if (!out->classes) st = PL_ERR_NOMEM;
    }
    for (int64_t j = 0, c = -1; j < m && st == PL_OK; j++) {
        if (j == 0 || refs[j].len != refs[j - 1].len || memcmp(refs[j].text, refs[j - 1].text, refs[j].len) != 0) {
            char *name = pl_malloc(refs[j].len + 1);
            if (!name) { st = PL_ERR_NOMEM; break; }
            memcpy(name, refs[j].text, refs[j].len);
            name[refs[j].len] = '\0';
            out->classes[++c] = name;
            out->n_classes = (int)(c + 1);
        }
        out->cls[refs[j].row] = (int32_t)c;
    }
    free(refs);
    if (st != PL_OK) pl_label_coding_free(out);
    return st;
}
