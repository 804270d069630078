// Manifest TSV parser and validator (see pl_manifest.h, docs/manifests.md).
#include "pl_manifest.h"

#include <ctype.h>
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pl_fs.h"
#include "pl_utf8.h"

static const char *const manifest_default_roles[] = {"nucleus", "protein", "microtubules", "er"};

const char *const *pl_manifest_default_roles(int *count) {
    if (count) *count = 4;
    return manifest_default_roles;
}

enum { COL_ID, COL_DATASET, COL_LABEL, COL_SPLIT, COL_GROUP, COL_PIXEL, COL_MASK, COL_SHA, COL_ROLE };
static const char *const manifest_fixed_names[] = {"id", "dataset", "label", "split", "group",
                                                   "pixel_size_um", "mask", "sha256"};
#define MANIFEST_N_FIXED 8
#define MANIFEST_N_REQUIRED 5
#define MANIFEST_MAX_COLS 64

typedef struct ManifestParse {
    PlManifest *m;
    size_t max_errors;
    const PlManifestOptions *opt;
    char *root_norm;          // normalised root, no trailing slash (except "/")
    char *root_real;          // the root with symbolic links resolved (NULL when it does not exist)
} ManifestParse;

static void manifest_error(ManifestParse *p, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void manifest_error(ManifestParse *p, int line, int column, const char *fmt, ...) {
    PlManifest *m = p->m;
    m->n_errors_total++;
    if (m->n_errors >= p->max_errors) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char full[1400];
    snprintf(full, sizeof full, "%s:%d:%d: %s", m->path, line, column > 0 ? column : 1, msg);
    char **grown = realloc(m->errors, (m->n_errors + 1) * sizeof *grown);
    if (!grown) return;
    m->errors = grown;
    m->errors[m->n_errors] = strdup(full);
    if (m->errors[m->n_errors]) m->n_errors++;
}

int pl_manifest_split_valid(const char *split) {
    if (!split[0]) return 1;
    if (!strcmp(split, "train") || !strcmp(split, "val") || !strcmp(split, "test")) return 1;
    for (const char *c = split; *c; c++)
        if (!isdigit((unsigned char)*c)) return 0;
    return strlen(split) <= 9;
}

// Lexically normalise an absolute or relative path: collapse "//", ".", and "..". Leading ".." of a relative
// path are kept. Returns a malloc'd string.
static char *manifest_normalise(const char *path) {
    size_t n = strlen(path);
    char *out = malloc(n + 2);
    char *work = strdup(path);
    const char **parts = malloc((n / 2 + 2) * sizeof *parts);
    if (!out || !work || !parts) {
        free(out); free(work); free(parts);
        return NULL;
    }
    int absolute = path[0] == '/';
    size_t np = 0;
    char *save = NULL;
    for (char *tok = strtok_r(work, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        if (!strcmp(tok, ".")) continue;
        if (!strcmp(tok, "..")) {
            if (np > 0 && strcmp(parts[np - 1], "..") != 0) { np--; continue; }
            if (absolute) continue;   // "/.." is "/"
        }
        parts[np++] = tok;
    }
    size_t used = 0;
    if (absolute) out[used++] = '/';
    for (size_t i = 0; i < np; i++) {
        size_t l = strlen(parts[i]);
        if (i) out[used++] = '/';
        memcpy(out + used, parts[i], l);
        used += l;
    }
    if (used == 0) out[used++] = '.';
    out[used] = '\0';
    free(work);
    free(parts);
    return out;
}

// Is normalised `path` inside normalised folder `root`?
static int manifest_inside(const char *root, const char *path) {
    if (!strcmp(root, ".")) return path[0] != '/' && strcmp(path, "..") != 0 && strncmp(path, "../", 3) != 0;
    if (!strcmp(root, "/")) return path[0] == '/';
    size_t n = strlen(root);
    return strncmp(root, path, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

// Parse "path[#page]" at (line, column) into ch. Empty text → ch->path NULL. Returns 0 on error (recorded).
static int manifest_parse_channel(ManifestParse *p, const char *text, int line, int column, const char *role,
                                  PlManifestChannel *ch) {
    ch->raw = strdup(text);
    ch->page = 0;
    ch->path = NULL;
    if (!ch->raw) return 0;
    if (!text[0]) return 1;
    char *copy = strdup(text);
    if (!copy) return 0;
    char *hash = strrchr(copy, '#');
    if (hash) {
        *hash = '\0';
        const char *num = hash + 1;
        char *end = NULL;
        errno = 0;
        long page = strtol(num, &end, 10);
        if (!num[0] || *end || errno || page < 0 || page > 1000000 || !isdigit((unsigned char)num[0])) {
            manifest_error(p, line, column, "%s: bad page '%s' after '#' in '%s' (want a non-negative integer)", role,
                           num, text);
            free(copy);
            return 0;
        }
        ch->page = (int)page;
    }
    if (!copy[0]) {
        manifest_error(p, line, column, "%s: empty path before '#' in '%s'", role, text);
        free(copy);
        return 0;
    }
    char *joined;
    if (copy[0] == '/') {
        joined = strdup(copy);
    } else {
        size_t n = strlen(p->root_norm) + strlen(copy) + 2;
        joined = malloc(n);
        if (joined) snprintf(joined, n, "%s/%s", p->root_norm, copy);
    }
    free(copy);
    if (!joined) return 0;
    ch->path = manifest_normalise(joined);
    free(joined);
    if (!ch->path) return 0;
    if (!p->opt->allow_outside_root && !manifest_inside(p->root_norm, ch->path)) {
        manifest_error(p, line, column, "%s: path '%s' escapes the root folder '%s' (use --allow-outside-root)",
                       role, text, p->root_norm);
        return 0;
    }
    if (!p->opt->allow_outside_root && p->root_real) {   // symbolic links inside the root must stay inside it
        char *real = realpath(ch->path, NULL);
        int inside = !real || manifest_inside(p->root_real, real);   // missing files are reported where they are read
        if (!inside)
            manifest_error(p, line, column, "%s: path '%s' resolves to '%s', outside the root folder '%s' (a symbolic "
                           "link; use --allow-outside-root)", role, text, real, p->root_real);
        free(real);
        if (!inside) return 0;
    }
    if (p->opt->check_files) {
        struct stat st;
        if (stat(ch->path, &st) != 0) {
            manifest_error(p, line, column, "%s: missing file '%s' (%s)", role, ch->path, strerror(errno));
            return 0;
        }
        if (!S_ISREG(st.st_mode)) {
            manifest_error(p, line, column, "%s: '%s' is not a regular file", role, ch->path);
            return 0;
        }
    }
    return 1;
}

// Split a line on tabs in place; records each field start and its 1-based column. Returns the field count.
static int manifest_split(char *line, char **fields, int *columns, int max) {
    int n = 0;
    char *start = line;
    for (char *c = line;; c++) {
        if (*c == '\t' || *c == '\0') {
            int end = *c == '\0';
            if (n < max) {
                fields[n] = start;
                columns[n] = (int)(start - line) + 1;
            }
            n++;
            *c = '\0';
            if (end) break;
            start = c + 1;
        }
    }
    return n;
}

static int manifest_role_allowed(const PlManifestOptions *opt, const char *name) {
    int n = 0;
    const char *const *roles = opt->roles ? opt->roles : pl_manifest_default_roles(&n);
    if (opt->roles) n = opt->n_roles;
    for (int i = 0; i < n; i++)
        if (!strcmp(roles[i], name)) return 1;
    return 0;
}

static char *manifest_allowed_list(const PlManifestOptions *opt) {
    static _Thread_local char buf[512];
    int n = 0;
    const char *const *roles = opt->roles ? opt->roles : pl_manifest_default_roles(&n);
    if (opt->roles) n = opt->n_roles;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i) strncat(buf, ", ", sizeof buf - strlen(buf) - 1);
        strncat(buf, roles[i], sizeof buf - strlen(buf) - 1);
    }
    return buf;
}

// Column layout of a manifest, from its header.
typedef struct ManifestColumns {
    int ncols;
    int col_of[MANIFEST_N_FIXED];           // column of each fixed field, or -1
    int role_of_col[MANIFEST_MAX_COLS];     // role index of each column, or -1
} ManifestColumns;

// The header line: fixed columns, role columns (allowed names, no duplicates). PL_ERR_FORMAT when unusable.
static PlStatus manifest_parse_header(ManifestParse *p, int lineno, char **fields, const int *columns, int n,
                                      ManifestColumns *mc) {
    PlManifest *m = p->m;
    if (n > MANIFEST_MAX_COLS) {
        manifest_error(p, lineno, 0, "header has %d columns (at most %d)", n, MANIFEST_MAX_COLS);
        return PL_ERR_FORMAT;
    }
    mc->ncols = n;
    for (int c = 0; c < n; c++) {
        mc->role_of_col[c] = -1;
        const char *name = fields[c];
        int fixed = -1;
        for (int f = 0; f < MANIFEST_N_FIXED; f++)
            if (!strcmp(name, manifest_fixed_names[f])) fixed = f;
        if (fixed >= 0) {
            if (mc->col_of[fixed] >= 0) manifest_error(p, lineno, columns[c], "duplicate column '%s'", name);
            mc->col_of[fixed] = c;
            continue;
        }
        if (!name[0]) {
            manifest_error(p, lineno, columns[c], "empty column name in header");
            continue;
        }
        if (!manifest_role_allowed(p->opt, name)) {
            manifest_error(p, lineno, columns[c], "unknown role or column '%s' (roles: %s)", name,
                           manifest_allowed_list(p->opt));
            continue;
        }
        int dup = 0;
        for (int r = 0; r < m->n_roles; r++)
            if (!strcmp(m->roles[r], name)) dup = 1;
        if (dup) {
            manifest_error(p, lineno, columns[c], "duplicate column '%s'", name);
            continue;
        }
        if (m->n_roles >= PL_MANIFEST_MAX_ROLES) {
            manifest_error(p, lineno, columns[c], "too many channel roles (at most %d)", PL_MANIFEST_MAX_ROLES);
            continue;
        }
        m->roles[m->n_roles] = strdup(name);
        if (!m->roles[m->n_roles]) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
        mc->role_of_col[c] = m->n_roles++;
    }
    for (int f = 0; f < MANIFEST_N_REQUIRED; f++)
        if (mc->col_of[f] < 0)
            manifest_error(p, lineno, 0, "header lacks the required column '%s'", manifest_fixed_names[f]);
    if (m->n_roles == 0) manifest_error(p, lineno, 0, "header has no channel role column (e.g. protein)");
    return m->n_errors_total ? PL_ERR_FORMAT : PL_OK;
}

// A text field that goes into stores and reports: valid UTF-8 and at most `max` bytes. Records the error.
static int manifest_check_text(ManifestParse *p, int lineno, int column, const char *what, const char *text,
                               size_t max) {
    size_t n = strlen(text), bad = 0;
    if (!pl_utf8_valid(text, n, &bad)) {
        manifest_error(p, lineno, column + (int)bad, "%s is not valid UTF-8 (byte 0x%02x at offset %zu)", what,
                       (unsigned char)text[bad], bad);
        return 0;
    }
    if (n > max) {
        manifest_error(p, lineno, column, "%s is %zu bytes long (at most %zu)", what, n, max);
        return 0;
    }
    return 1;
}

// The optional columns of a row: pixel size and content hash.
static void manifest_parse_optional(ManifestParse *p, int lineno, char **fields, const int *columns,
                                    const ManifestColumns *mc, PlManifestItem *it) {
    int cp = mc->col_of[COL_PIXEL], cs = mc->col_of[COL_SHA];
    if (cp >= 0 && fields[cp][0]) {
        char *end = NULL;
        errno = 0;
        double v = strtod(fields[cp], &end);
        if (*end || errno || !(v > 0) || v > 1000)
            manifest_error(p, lineno, columns[cp], "bad pixel_size_um '%s' (want a positive number of micrometres)",
                           fields[cp]);
        else
            it->pixel_size_um = v;
    }
    if (cs >= 0 && fields[cs][0]) {
        const char *s = fields[cs];
        int ok = strlen(s) == 64;
        for (const char *c = s; ok && *c; c++) ok = isxdigit((unsigned char)*c) != 0;
        if (!ok) manifest_error(p, lineno, columns[cs], "bad sha256 '%s' (want 64 hex digits)", s);
        else it->sha256 = strdup(s);
    }
}

// One item row (the item is appended even when it has errors, so every problem of the file is reported).
static PlStatus manifest_parse_row(ManifestParse *p, int lineno, char **fields, const int *columns,
                                   const ManifestColumns *mc, size_t *cap) {
    PlManifest *m = p->m;
    const int *col_of = mc->col_of;
    if (m->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
        PlManifestItem *grown = realloc(m->items, ncap * sizeof *grown);
        if (!grown) return PL_FAIL(PL_ERR_NOMEM, "out of memory reading %s", m->path);
        m->items = grown;
        *cap = ncap;
    }
    PlManifestItem *it = &m->items[m->count];
    memset(it, 0, sizeof *it);
    m->count++;
    it->line = lineno;
    it->id = strdup(fields[col_of[COL_ID]]);
    it->dataset = strdup(fields[col_of[COL_DATASET]]);
    it->label = strdup(fields[col_of[COL_LABEL]]);
    it->split = strdup(fields[col_of[COL_SPLIT]]);
    it->group = strdup(fields[col_of[COL_GROUP]]);
    if (!it->id || !it->dataset || !it->label || !it->split || !it->group) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    int id_ok = manifest_check_text(p, lineno, columns[col_of[COL_ID]], "id", it->id, PL_MANIFEST_MAX_ID);
    if (!it->id[0]) manifest_error(p, lineno, columns[col_of[COL_ID]], "empty id");
    for (const char *c = it->id; *c; c++)
        if (isspace((unsigned char)*c) || (unsigned char)*c < 32) {
            manifest_error(p, lineno, columns[col_of[COL_ID]], "id '%s' contains whitespace", it->id);
            break;
        }
    static const char *const texts[] = {"dataset", "label", "split", "group"};
    const char *values[] = {it->dataset, it->label, it->split, it->group};
    for (int k = 0; k < 4; k++)
        manifest_check_text(p, lineno, columns[col_of[COL_DATASET + k]], texts[k], values[k], PL_MANIFEST_MAX_TEXT);
    if (!pl_manifest_split_valid(it->split))
        manifest_error(p, lineno, columns[col_of[COL_SPLIT]],
                       "bad split '%s' (want train, val, test, a fold number, or empty)", it->split);
    for (int c = 0; c < mc->ncols; c++) {
        if (mc->role_of_col[c] < 0) continue;
        const char *role = m->roles[mc->role_of_col[c]];
        if (manifest_check_text(p, lineno, columns[c], role, fields[c], PL_MANIFEST_MAX_TEXT))
            manifest_parse_channel(p, fields[c], lineno, columns[c], role, &it->channels[mc->role_of_col[c]]);
    }
    int any_channel = 0;
    for (int r = 0; r < m->n_roles; r++)
        if (it->channels[r].raw && it->channels[r].raw[0]) any_channel = 1;
    if (!any_channel) manifest_error(p, lineno, 0, "item '%s' has no channel file", it->id);
    int cm = col_of[COL_MASK];
    if (cm >= 0 && manifest_check_text(p, lineno, columns[cm], "mask", fields[cm], PL_MANIFEST_MAX_TEXT))
        manifest_parse_channel(p, fields[cm], lineno, columns[cm], "mask", &it->mask);
    manifest_parse_optional(p, lineno, fields, columns, mc, it);
    if (it->id[0] && id_ok) {   // duplicate ids: the index keeps the first
        int64_t first = -1;
        if (pl_idindex_add(&m->index, it->id, (int64_t)(m->count - 1), &first) != PL_OK)
            return pl_error_wrap("reading %s", m->path);
        if (first >= 0)
            manifest_error(p, lineno, columns[col_of[COL_ID]], "duplicate id '%s' (first on line %d)", it->id,
                           m->items[first].line);
    }
    return PL_OK;
}

static PlStatus manifest_parse_text(ManifestParse *p, char *text, size_t size) {
    PlManifest *m = p->m;
    ManifestColumns mc = {.ncols = -1};
    for (int i = 0; i < MANIFEST_N_FIXED; i++) mc.col_of[i] = -1;
    size_t cap = 0;
    char *fields[MANIFEST_MAX_COLS];
    int columns[MANIFEST_MAX_COLS];
    int lineno = 0;
    char *cursor = text;
    char *end_text = text + size;
    while (cursor < end_text) {
        char *nl = memchr(cursor, '\n', (size_t)(end_text - cursor));
        char *line = cursor;
        char *line_end = nl ? nl : end_text;
        cursor = nl ? nl + 1 : end_text;
        *line_end = '\0';
        lineno++;
        if (memchr(line, '\0', (size_t)(line_end - line))) {
            manifest_error(p, lineno, 1, "NUL byte in line (not a text file?)");
            continue;
        }
        if (line_end > line && line_end[-1] == '\r') *--line_end = '\0';
        if (line[0] == '#') continue;
        int blank = 1;
        for (char *c = line; *c; c++)
            if (!isspace((unsigned char)*c)) { blank = 0; break; }
        if (blank) continue;
        if ((size_t)(line_end - line) > PL_MANIFEST_MAX_LINE) {
            manifest_error(p, lineno, 0, "line longer than %d bytes", PL_MANIFEST_MAX_LINE);
            continue;
        }
        int n = manifest_split(line, fields, columns, MANIFEST_MAX_COLS);
        if (mc.ncols < 0) {
            PL_TRY(manifest_parse_header(p, lineno, fields, columns, n, &mc));
            continue;
        }
        if (n != mc.ncols) {
            manifest_error(p, lineno, 0, "wrong column count: %d fields, the header has %d", n, mc.ncols);
            continue;
        }
        PL_TRY(manifest_parse_row(p, lineno, fields, columns, &mc, &cap));
    }
    if (mc.ncols < 0) manifest_error(p, lineno > 0 ? lineno : 1, 0, "no header line (the file is empty)");
    return m->n_errors_total ? PL_ERR_FORMAT : PL_OK;
}

PlStatus pl_manifest_load(const char *path, const PlManifestOptions *options, PlManifest *out) {
    memset(out, 0, sizeof *out);
    PlManifestOptions defaults;
    memset(&defaults, 0, sizeof defaults);
    const PlManifestOptions *opt = options ? options : &defaults;
    out->path = strdup(path);
    if (!out->path) return PL_FAIL(PL_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t size = 0;
    PlStatus st = pl_file_read_all(path, (size_t)1 << 31, &text, &size);
    if (st != PL_OK) return pl_error_wrap("reading manifest");
    ManifestParse p = {.m = out, .max_errors = opt->max_errors ? opt->max_errors : 100, .opt = opt};
    if (opt->root) {
        out->root = strdup(opt->root);
    } else {
        char *copy = strdup(path);
        if (copy) out->root = strdup(dirname(copy));
        free(copy);
    }
    if (!out->root) { free(text); return PL_FAIL(PL_ERR_NOMEM, "out of memory"); }
    p.root_norm = manifest_normalise(out->root);
    if (!p.root_norm) { free(text); return PL_FAIL(PL_ERR_NOMEM, "out of memory"); }
    p.root_real = realpath(p.root_norm, NULL);
    st = manifest_parse_text(&p, text, size);
    free(text);
    free(p.root_norm);
    free(p.root_real);
    if (st == PL_ERR_FORMAT || (st == PL_OK && out->n_errors_total)) {
        if (out->n_errors_total > 1)
            return PL_FAIL(PL_ERR_FORMAT, "%s (and %zu more problem%s)", out->n_errors ? out->errors[0] : "invalid manifest",
                           out->n_errors_total - 1, out->n_errors_total > 2 ? "s" : "");
        return PL_FAIL(PL_ERR_FORMAT, "%s", out->n_errors ? out->errors[0] : "invalid manifest");
    }
    return st;
}

int pl_manifest_role_index(const PlManifest *m, const char *role) {
    for (int r = 0; r < m->n_roles; r++)
        if (!strcmp(m->roles[r], role)) return r;
    return -1;
}

long pl_manifest_find(const PlManifest *m, const char *id) { return (long)pl_idindex_find(&m->index, id); }

static void manifest_free_channel(PlManifestChannel *c) {
    free(c->path);
    free(c->raw);
}

PlStatus pl_manifest_channel_ref(const PlManifestChannel *ch, char *ref, size_t size) {
    int n = snprintf(ref, size, "%s#%d", ch->path, ch->page);
    if (n >= 0 && (size_t)n < size) return PL_OK;
    return PL_FAIL(PL_ERR_LIMIT, "path of %d bytes is too long for a file name: %.80s...", n, ch->path);
}

void pl_manifest_free(PlManifest *m) {
    if (!m) return;
    for (size_t i = 0; i < m->count; i++) {
        PlManifestItem *it = &m->items[i];
        free(it->id); free(it->dataset); free(it->label); free(it->split); free(it->group); free(it->sha256);
        for (int r = 0; r < PL_MANIFEST_MAX_ROLES; r++) manifest_free_channel(&it->channels[r]);
        manifest_free_channel(&it->mask);
    }
    free(m->items);
    for (int r = 0; r < m->n_roles; r++) free(m->roles[r]);
    for (size_t i = 0; i < m->n_errors; i++) free(m->errors[i]);
    free(m->errors);
    free(m->path);
    free(m->root);
    pl_idindex_free(&m->index);
    memset(m, 0, sizeof *m);
}
