// `protloc run --cell-labels`: the table of hand-labelled cells (item id, mask label, class) that score in knn/probe.
//
// Format (docs/manifests.md "Cell labels"): a TSV whose header names the columns `id`, `mask_label` and `label`
// (other columns are ignored); '#' lines are comments, blank lines are skipped. `id` must be a manifest item,
// `mask_label` the cell's label in that item's label image (an integer in 1..16777215), `label` a non-empty class
// name of at most PL_FEATURES_MAX_LABEL bytes; an (id, mask_label) pair appears once. Every error names
// file:line:column.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pl_features.h"
#include "pl_fs.h"
#include "pl_run_priv.h"
#include "pl_utf8.h"

typedef struct CellRow {
    long item;
    RunCellLabel cell;
} CellRow;

static int cells_cmp_row(const void *a, const void *b) {
    const CellRow *x = a, *y = b;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return (x->cell.mask_label > y->cell.mask_label) - (x->cell.mask_label < y->cell.mask_label);
}

// Column index of `name` in the header fields, or -1.
static int cells_column(char **fields, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(fields[i], name)) return i;
    return -1;
}

// Split a line at tabs in place; fields[i] and the 1-based column where it starts.
static int cells_split(char *line, char **fields, int *columns, int max) {
    int n = 0;
    for (char *p = line;; p++) {
        if (n < max) {
            fields[n] = p;
            columns[n] = (int)(p - line) + 1;
        }
        n++;
        char *t = strchr(p, '\t');
        if (!t) break;
        *t = '\0';
        p = t;
    }
    return n;
}

// Parse the table into rows (unsorted); *n_rows set.
static PlStatus cells_parse(const char *path, char *text, const PlManifest *m, CellRow **rows_out, size_t *n_rows) {
    enum { MAXF = 64 };
    char *fields[MAXF];
    int columns[MAXF];
    int col_id = -1, col_mask = -1, col_label = -1, ncols = 0, lineno = 0;
    size_t cap = 0, n = 0;
    CellRow *rows = NULL;
    PlStatus st = PL_OK;
    for (char *line = text, *next; line && *line && st == PL_OK; line = next) {
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl) *nl = '\0';
        lineno++;
        size_t len = strlen(line);
        if (len && line[len - 1] == '\r') line[--len] = '\0';
        if (line[0] == '#' || len == 0) continue;
        int nf = cells_split(line, fields, columns, MAXF);
        if (nf > MAXF) { st = PL_FAIL(PL_ERR_FORMAT, "%s:%d: more than %d columns", path, lineno, MAXF); break; }
        if (ncols == 0) {
            ncols = nf;
            col_id = cells_column(fields, nf, "id");
            col_mask = cells_column(fields, nf, "mask_label");
            col_label = cells_column(fields, nf, "label");
            if (col_id < 0 || col_mask < 0 || col_label < 0)
                st = PL_FAIL(PL_ERR_FORMAT, "%s:%d: the header must name the columns id, mask_label and label", path,
                             lineno);
            continue;
        }
        if (nf != ncols) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path, lineno, nf, ncols);
            break;
        }
        long item = pl_manifest_find(m, fields[col_id]);
        if (item < 0) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d:%d: item '%s' is not in the manifest %s", path, lineno, columns[col_id],
                         fields[col_id], m->path);
            break;
        }
        char *end = NULL;
        errno = 0;
        long mask = strtol(fields[col_mask], &end, 10);
        if (!fields[col_mask][0] || *end || errno || mask < 1 || mask > 16777215) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d:%d: mask_label '%s' is not an integer in 1..16777215", path, lineno,
                         columns[col_mask], fields[col_mask]);
            break;
        }
        size_t ll = strlen(fields[col_label]), bad = 0;
        if (!pl_utf8_valid(fields[col_label], ll, &bad)) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d:%d: the label is not valid UTF-8 (byte 0x%02x)", path, lineno,
                         columns[col_label] + (int)bad, (unsigned char)fields[col_label][bad]);
            break;
        }
        if (ll == 0 || ll > PL_FEATURES_MAX_LABEL || strchr(fields[col_label], ';')) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d:%d: the label must be one class name of 1..%d bytes (got %zu bytes%s)",
                         path, lineno, columns[col_label], PL_FEATURES_MAX_LABEL, ll,
                         strchr(fields[col_label], ';') ? " with ';'" : "");
            break;
        }
        if (n == cap && pl_grow((void **)&rows, &cap, cap ? 2 * cap : 256, sizeof *rows) != PL_OK) {
            st = pl_error_wrap("%s", path);
            break;
        }
        rows[n++] = (CellRow){item, {(int32_t)mask, fields[col_label], lineno}};
    }
    if (st == PL_OK && ncols == 0) st = PL_FAIL(PL_ERR_FORMAT, "%s: no header line (the file is empty)", path);
    if (st != PL_OK) {
        free(rows);
        return st;
    }
    *rows_out = rows;
    *n_rows = n;
    return PL_OK;
}

PlStatus run_cell_labels_load(const char *path, const PlManifest *m, RunCellLabels *t) {
    memset(t, 0, sizeof *t);
    size_t size = 0;
    t->path = pl_strdup(path);
    if (!t->path) return PL_ERR_NOMEM;
    PlStatus st = pl_file_read_all(path, (size_t)1 << 31, &t->text, &size);
    if (st != PL_OK) {
        run_cell_labels_free(t);
        return pl_error_wrap("--cell-labels");
    }
    CellRow *rows = NULL;
    size_t n = 0;
    st = cells_parse(path, t->text, m, &rows, &n);
    if (st == PL_OK) qsort(rows, n, sizeof *rows, cells_cmp_row);
    for (size_t i = 1; i < n && st == PL_OK; i++)
        if (rows[i].item == rows[i - 1].item && rows[i].cell.mask_label == rows[i - 1].cell.mask_label)
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%d: item '%s' mask_label %d is labelled twice (first on line %d)", path,
                         rows[i].cell.line > rows[i - 1].cell.line ? rows[i].cell.line : rows[i - 1].cell.line,
                         m->items[rows[i].item].id, rows[i].cell.mask_label,
                         rows[i].cell.line < rows[i - 1].cell.line ? rows[i].cell.line : rows[i - 1].cell.line);
    if (st == PL_OK) {
        t->rows = pl_malloc((n ? n : 1) * sizeof *t->rows);
        t->item_first = pl_calloc(m->count ? m->count : 1, sizeof *t->item_first);
        t->item_count = pl_calloc(m->count ? m->count : 1, sizeof *t->item_count);
        if (!t->rows || !t->item_first || !t->item_count) st = PL_ERR_NOMEM;
    }
    for (size_t i = 0; i < n && st == PL_OK; i++) {
        t->rows[i] = rows[i].cell;
        if (t->item_count[rows[i].item]++ == 0) t->item_first[rows[i].item] = (long)i;
    }
    t->n = n;
    free(rows);
    if (st != PL_OK) run_cell_labels_free(t);
    return st;
}

const char *run_cell_labels_find(const RunCellLabels *t, long item, int32_t mask_label) {
    if (!t->n) return "";
    long lo = t->item_first[item], hi = lo + t->item_count[item] - 1;
    while (lo <= hi) {   // rows of one item are sorted by mask label
        long mid = lo + (hi - lo) / 2;
        if (t->rows[mid].mask_label == mask_label) return t->rows[mid].label;
        if (t->rows[mid].mask_label < mask_label) lo = mid + 1;
        else hi = mid - 1;
    }
    return "";
}

void run_cell_labels_free(RunCellLabels *t) {
    free(t->path);
    free(t->text);
    free(t->rows);
    free(t->item_first);
    free(t->item_count);
    memset(t, 0, sizeof *t);
}
