// Label tables for `protloc manifest scan` (see pl_scan_labels.h): CSV parsing, grade-3 reduction, sorted lookup.
#include "pl_scan_labels.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pl_fs.h"
#include "pl_manifest.h"
#include "pl_utf8.h"

#define LABELS_MAX_FILE ((size_t)1 << 30)
#define LABELS_MAX_FIELDS 64

// Split one CSV line in place into fields (double quotes group commas; "" inside quotes is a quote).
// Returns the field count, or -1 when there are more than `max` fields or a quote is unterminated.
static int labels_split_csv(char *line, char **fields, int max) {
    int n = 0;
    char *r = line;
    for (;;) {
        if (n >= max) return -1;
        char *w = r;
        fields[n++] = w;
        if (*r == '"') {
            r++;
            for (;;) {
                if (!*r) return -1;
                if (*r == '"' && r[1] == '"') { *w++ = '"'; r += 2; continue; }
                if (*r == '"') { r++; break; }
                *w++ = *r++;
            }
            if (*r && *r != ',') return -1;
        } else {
            while (*r && *r != ',') *w++ = *r++;
        }
        int more = *r == ',';
        *w = '\0';
        if (!more) break;
        r++;
    }
    // trim surrounding blanks
    for (int i = 0; i < n; i++) {
        char *f = fields[i];
        while (*f == ' ' || *f == '\t') f++;
        size_t l = strlen(f);
        while (l && (f[l - 1] == ' ' || f[l - 1] == '\t')) f[--l] = '\0';
        fields[i] = f;
    }
    return n;
}

static int labels_entry_cmp(const void *a, const void *b) {
    return strcmp(((const PlLabelEntry *)a)->key, ((const PlLabelEntry *)b)->key);
}

static PlStatus labels_push(PlLabelTable *t, size_t *cap, const char *key, const char *label, const char *group,
                            const char *split) {
    if (t->count == *cap) {
        size_t nc = *cap ? *cap * 2 : 256;
        PlLabelEntry *grown = realloc(t->entries, nc * sizeof *grown);
        if (!grown) return PL_FAIL(PL_ERR_NOMEM, "out of memory reading labels");
        t->entries = grown;
        *cap = nc;
    }
    PlLabelEntry *e = &t->entries[t->count];
    memset(e, 0, sizeof *e);
    e->key = pl_strdup(key);
    e->label = pl_strdup(label);
    e->group = group ? pl_strdup(group) : NULL;
    e->split = split ? pl_strdup(split) : NULL;
    t->count++;
    if (!e->key || !e->label || (group && !e->group) || (split && !e->split)) return PL_ERR_NOMEM;
    return PL_OK;
}

typedef struct LabelsAnno { const char *ensg, *target, *cls; int grade; int line; } LabelsAnno;

static int labels_anno_cmp(const void *a, const void *b) {
    const LabelsAnno *x = a, *y = b;
    int c = strcmp(x->target, y->target);
    if (c) return c;
    c = strcmp(x->cls, y->cls);
    if (c) return c;
    return x->line - y->line;
}

// OpenCell annotations: reduce rows to one entry per target (keyed twice: ENSG id and target name).
static PlStatus labels_load_opencell(const char *path, char **lines, size_t n_lines, PlLabelTable *t) {
    LabelsAnno *rows = calloc(n_lines ? n_lines : 1, sizeof *rows);
    if (!rows) return PL_FAIL(PL_ERR_NOMEM, "out of memory reading %s", path);
    size_t n = 0;
    PlStatus st = PL_OK;
    for (size_t i = 1; i < n_lines && st == PL_OK; i++) {
        if (!lines[i][0]) continue;
        char *f[LABELS_MAX_FIELDS];
        int nf = labels_split_csv(lines[i], f, LABELS_MAX_FIELDS);
        if (nf != 4) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%zu: expected 4 fields (ensg_id,target_name,annotation_name,"
                         "annotation_grade), found %d", path, i + 1, nf < 0 ? 0 : nf);
            break;
        }
        char *end = NULL;
        long grade = strtol(f[3], &end, 10);
        if (!f[3][0] || *end || grade < 1 || grade > 3) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%zu:4: annotation_grade '%s' is not 1, 2 or 3", path, i + 1, f[3]);
            break;
        }
        if (!f[1][0] || !f[2][0]) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%zu: empty %s", path, i + 1, !f[1][0] ? "target_name" : "annotation_name");
            break;
        }
        rows[n++] = (LabelsAnno){f[0], f[1], f[2], (int)grade, (int)i + 1};
    }
    if (st != PL_OK) { free(rows); return st; }
    qsort(rows, n, sizeof *rows, labels_anno_cmp);
    size_t cap = 0;
    for (size_t a = 0; a < n && st == PL_OK;) {
        size_t b = a;
        int n3 = 0;
        const char *cls3 = NULL;
        while (b < n && !strcmp(rows[b].target, rows[a].target)) {
            if (rows[b].grade == 3 && (!cls3 || strcmp(cls3, rows[b].cls) != 0)) { n3++; cls3 = rows[b].cls; }
            b++;
        }
        t->n_targets++;
        if (n3 == 1) t->n_single_grade3++;
        else if (n3 > 1) t->n_multi_grade3++;
        else t->n_no_grade3++;
        const char *label = n3 == 1 ? cls3 : "";
        st = labels_push(t, &cap, rows[a].target, label, rows[a].target, NULL);
        if (st == PL_OK && rows[a].ensg[0]) st = labels_push(t, &cap, rows[a].ensg, label, rows[a].target, NULL);
        a = b;
    }
    free(rows);
    return st;
}

// Normalise a label list: separators ' ', ';', '|' → ';', no empty parts. Writes into `s` in place.
static void labels_normalise(char *s) {
    char *w = s;
    int pending = 0;
    for (char *r = s; *r; r++) {
        if (*r == ' ' || *r == ';' || *r == '|') { pending = w != s; continue; }
        if (pending) { *w++ = ';'; pending = 0; }
        *w++ = *r;
    }
    *w = '\0';
}

static PlStatus labels_load_id(const char *path, char **lines, size_t n_lines, char **hdr, int nh, PlLabelTable *t) {
    int c_id = -1, c_lab = -1, c_group = -1, c_split = -1;
    for (int i = 0; i < nh; i++) {
        if (!strcasecmp(hdr[i], "id")) c_id = i;
        else if (!strcasecmp(hdr[i], "labels") || !strcasecmp(hdr[i], "label") || !strcasecmp(hdr[i], "target"))
            c_lab = i;
        else if (!strcasecmp(hdr[i], "group")) c_group = i;
        else if (!strcasecmp(hdr[i], "split")) c_split = i;
    }
    if (c_id < 0 || c_lab < 0)
        return PL_FAIL(PL_ERR_FORMAT, "%s:1: unrecognised labels header: want 'ensg_id,target_name,annotation_name,"
                       "annotation_grade' (OpenCell) or 'id,labels[,group][,split]' (HPA style)", path);
    size_t cap = 0;
    for (size_t i = 1; i < n_lines; i++) {
        if (!lines[i][0]) continue;
        char *f[LABELS_MAX_FIELDS];
        int nf = labels_split_csv(lines[i], f, LABELS_MAX_FIELDS);
        if (nf != nh)
            return PL_FAIL(PL_ERR_FORMAT, "%s:%zu: expected %d fields like the header, found %d", path, i + 1, nh,
                           nf < 0 ? 0 : nf);
        if (!f[c_id][0]) return PL_FAIL(PL_ERR_FORMAT, "%s:%zu:%d: empty id", path, i + 1, c_id + 1);
        if (strchr(f[c_lab], '\t') || strchr(f[c_id], '\t'))
            return PL_FAIL(PL_ERR_FORMAT, "%s:%zu: tab characters are not allowed in ids or labels", path, i + 1);
        if (strlen(f[c_id]) > PL_MANIFEST_MAX_ID)
            return PL_FAIL(PL_ERR_FORMAT, "%s:%zu:%d: id of %zu bytes, more than %d", path, i + 1, c_id + 1,
                           strlen(f[c_id]), PL_MANIFEST_MAX_ID);
        if (strlen(f[c_lab]) > PL_MANIFEST_MAX_TEXT)
            return PL_FAIL(PL_ERR_FORMAT, "%s:%zu:%d: labels of %zu bytes, more than %d", path, i + 1, c_lab + 1,
                           strlen(f[c_lab]), PL_MANIFEST_MAX_TEXT);
        labels_normalise(f[c_lab]);
        PL_TRY(labels_push(t, &cap, f[c_id], f[c_lab], c_group >= 0 ? f[c_group] : NULL,
                           c_split >= 0 ? f[c_split] : NULL));
        t->n_targets++;
    }
    return PL_OK;
}

PlStatus pl_label_table_load(const char *path, PlLabelTable *out) {
    memset(out, 0, sizeof *out);
    char *data = NULL;
    size_t size = 0;
    PlStatus st = pl_file_read_all(path, LABELS_MAX_FILE, &data, &size);
    if (st != PL_OK) return pl_error_wrap("reading labels");
    if (memchr(data, '\0', size)) {
        free(data);
        return PL_FAIL(PL_ERR_FORMAT, "%s: binary data (NUL byte) in a labels CSV", path);
    }
    size_t n_lines = 1;
    for (size_t i = 0; i < size; i++) n_lines += data[i] == '\n';
    char **lines = malloc(n_lines * sizeof *lines);
    if (!lines) { free(data); return PL_FAIL(PL_ERR_NOMEM, "out of memory reading %s", path); }
    size_t nl = 0;
    char *p = data;
    if (size >= 3 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB && (unsigned char)p[2] == 0xBF) p += 3;
    while (p && *p) {
        char *nlp = strchr(p, '\n');
        if (nlp) *nlp = '\0';
        size_t l = strlen(p);
        if (l && p[l - 1] == '\r') p[l - 1] = '\0';
        size_t bad = 0;   // every label ends up in a manifest, a store and .h5ad files: UTF-8 only
        if (st == PL_OK && !pl_utf8_valid(p, strlen(p), &bad))
            st = PL_FAIL(PL_ERR_FORMAT, "%s:%zu:%zu: invalid UTF-8 (byte 0x%02x); save the file as UTF-8", path, nl + 1,
                         bad + 1, (unsigned char)p[bad]);
        lines[nl++] = p;
        p = nlp ? nlp + 1 : NULL;
    }
    if (st != PL_OK) {
        free(lines); free(data);
        return st;
    }
    if (nl == 0) {
        free(lines); free(data);
        return PL_FAIL(PL_ERR_FORMAT, "%s: empty labels file (want a header line)", path);
    }
    char *hdr_copy = pl_strdup(lines[0]);
    char *hdr[LABELS_MAX_FIELDS];
    int nh = hdr_copy ? labels_split_csv(hdr_copy, hdr, LABELS_MAX_FIELDS) : -1;
    if (nh < 0) st = PL_FAIL(PL_ERR_FORMAT, "%s:1: cannot parse the header line", path);
    else if (nh == 4 && !strcmp(hdr[0], "ensg_id") && !strcmp(hdr[1], "target_name") &&
             !strcmp(hdr[2], "annotation_name") && !strcmp(hdr[3], "annotation_grade")) {
        out->format = PL_LABELS_OPENCELL;
        st = labels_load_opencell(path, lines, nl, out);
    } else {
        out->format = PL_LABELS_ID;
        st = labels_load_id(path, lines, nl, hdr, nh, out);
    }
    free(hdr_copy);
    free(lines);
    free(data);
    if (st != PL_OK) { pl_label_table_free(out); return st; }
    if (out->count > 1) qsort(out->entries, out->count, sizeof *out->entries, labels_entry_cmp);
    for (size_t i = 1; i < out->count; i++) {
        if (!strcmp(out->entries[i].key, out->entries[i - 1].key) && out->format == PL_LABELS_ID) {
            st = PL_FAIL(PL_ERR_FORMAT, "%s: id '%s' appears more than once", path, out->entries[i].key);
            pl_label_table_free(out);
            return st;
        }
    }
    return PL_OK;
}

const PlLabelEntry *pl_label_table_find(const PlLabelTable *t, const char *key) {
    if (!t || !t->count) return NULL;
    PlLabelEntry probe = {.key = (char *)key};
    return bsearch(&probe, t->entries, t->count, sizeof *t->entries, labels_entry_cmp);
}

void pl_label_table_free(PlLabelTable *t) {
    if (!t) return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->entries[i].key);
        free(t->entries[i].label);
        free(t->entries[i].group);
        free(t->entries[i].split);
    }
    free(t->entries);
    memset(t, 0, sizeof *t);
}
