// Unit tests of the ops manifest tools: label CSV parsing (BOM, CRLF, quotes, separators, grade-3 reduction,
// duplicates), scan naming rules (OpenCell targets, HPA groups and masks, splits, folds), and manifest diff.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_testutil.h"
#include "pl_fs.h"
#include "pl_manifest_diff.h"
#include "pl_manifest_scan.h"
#include "pl_scan_labels.h"

static char *tmp_file(const char *dir, const char *name, const char *text) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    assert_non_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    assert_int_equal(pl_mkdir_p(p), PL_OK);
    *slash = '/';
    FILE *fp = fopen(p, "wb");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return p;
}

static void test_labels_opencell(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    // BOM + CRLF; AAMP single grade 3 (listed twice), ACTB two grade-3 classes, X no grade 3
    char *p = tmp_file(dir, "ann.csv",
                       "\xEF\xBB\xBF" "ensg_id,target_name,annotation_name,annotation_grade\r\n"
                       "ENSG1,AAMP,cytoplasmic,3\r\nENSG1,AAMP,cytoplasmic,3\r\nENSG1,AAMP,nucleoplasm,1\r\n"
                       "ENSG2,ACTB,cytoskeleton,3\r\nENSG2,ACTB,membrane,3\r\nENSG3,X,er,2\r\n");
    PlLabelTable t;
    assert_int_equal(pl_label_table_load(p, &t), PL_OK);
    assert_int_equal(t.format, PL_LABELS_OPENCELL);
    assert_int_equal(t.n_targets, 3);
    assert_int_equal(t.n_single_grade3, 1);
    assert_int_equal(t.n_multi_grade3, 1);
    assert_int_equal(t.n_no_grade3, 1);
    const PlLabelEntry *e = pl_label_table_find(&t, "ENSG1");
    assert_non_null(e);
    assert_string_equal(e->label, "cytoplasmic");
    assert_string_equal(e->group, "AAMP");
    e = pl_label_table_find(&t, "AAMP");
    assert_non_null(e);
    assert_string_equal(e->label, "cytoplasmic");
    e = pl_label_table_find(&t, "ACTB");
    assert_non_null(e);
    assert_string_equal(e->label, "");
    assert_null(pl_label_table_find(&t, "nope"));
    pl_label_table_free(&t);
    free(p);
    // bad grade → file:line:column
    p = tmp_file(dir, "bad.csv", "ensg_id,target_name,annotation_name,annotation_grade\nE,A,er,x\n");
    assert_int_equal(pl_label_table_load(p, &t), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "bad.csv:2:4"));
    free(p);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_labels_id_table(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char *p = tmp_file(dir, "l.csv", "Id,Target,split\n\"a,1\",16 0,test\nb,\"x|y; z\",\nc,,train\n");
    PlLabelTable t;
    assert_int_equal(pl_label_table_load(p, &t), PL_OK);
    assert_int_equal(t.format, PL_LABELS_ID);
    const PlLabelEntry *e = pl_label_table_find(&t, "a,1");
    assert_non_null(e);
    assert_string_equal(e->label, "16;0");
    assert_string_equal(e->split, "test");
    e = pl_label_table_find(&t, "b");
    assert_non_null(e);
    assert_string_equal(e->label, "x;y;z");
    assert_null(e->group);
    pl_label_table_free(&t);
    free(p);
    p = tmp_file(dir, "dup.csv", "id,labels\na,x\na,y\n");
    assert_int_equal(pl_label_table_load(p, &t), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "'a' appears more than once"));
    free(p);
    p = tmp_file(dir, "cols.csv", "id,labels\na,x,extra\n");
    assert_int_equal(pl_label_table_load(p, &t), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "cols.csv:2"));
    free(p);
    p = tmp_file(dir, "quote.csv", "id,labels\n\"a,x\n");
    assert_int_equal(pl_label_table_load(p, &t), PL_ERR_FORMAT);
    free(p);
    pl_test_rmtree(dir);
    free(dir);
}

static const PlScanItem *find_item(const PlScanResult *r, const char *id) {
    for (size_t i = 0; i < r->count; i++)
        if (!strcmp(r->items[i].id, id)) return &r->items[i];
    return NULL;
}

static void test_scan_hpa_rules(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    const char *colors[] = {"red", "green", "blue", "yellow"};
    char name[256];
    for (int c = 0; c < 4; c++) {
        snprintf(name, sizeof name, "d/1000_A12_2_%s.png", colors[c]);
        free(tmp_file(dir, name, ""));
        snprintf(name, sizeof name, "d/00070df0-bbc3-11e8-b2bc-ac1f6b6435d0_%s.png", colors[c]);
        free(tmp_file(dir, name, ""));
        snprintf(name, sizeof name, "d/sub/7_B1_10_%s.tif", colors[c]);
        free(tmp_file(dir, name, ""));
    }
    free(tmp_file(dir, "d/1000_A12_2_cellmask.png", ""));
    free(tmp_file(dir, "d/9_C1_1_green.png", ""));
    free(tmp_file(dir, "d/.hidden_red.png", ""));
    free(tmp_file(dir, "d/notes.txt", ""));
    char d[1024];
    snprintf(d, sizeof d, "%s/d", dir);
    PlScanOptions opt = {.layout = PL_SCAN_HPA, .test_fraction = 0.5, .paths_relative_to = d};
    PlScanResult r;
    assert_int_equal(pl_manifest_scan(d, &opt, &r), PL_OK);
    assert_int_equal(r.count, 3);
    assert_int_equal(r.n_roles, 4);
    assert_string_equal(r.roles[0], "microtubules");
    assert_string_equal(r.roles[3], "er");
    assert_true(r.has_mask);
    const PlScanItem *it = find_item(&r, "1000_A12_2");
    assert_non_null(it);
    assert_string_equal(it->group, "1000_A12");
    assert_string_equal(it->channels[1], "1000_A12_2_green.png");
    assert_string_equal(it->mask, "1000_A12_2_cellmask.png");
    it = find_item(&r, "00070df0-bbc3-11e8-b2bc-ac1f6b6435d0");
    assert_non_null(it);
    assert_string_equal(it->group, "00070df0-bbc3-11e8-b2bc-ac1f6b6435d0");
    assert_null(it->mask);
    it = find_item(&r, "sub/7_B1_10");
    assert_non_null(it);
    assert_string_equal(it->group, "7_B1");
    assert_string_equal(it->channels[2], "sub/7_B1_10_blue.tif");
    assert_true(!strcmp(it->split, "train") || !strcmp(it->split, "test"));
    assert_int_equal(r.n_skipped, 1);
    assert_non_null(strstr(r.skipped[0], "9_C1_1: missing red, blue, yellow"));
    pl_manifest_scan_free(&r);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_scan_opencell_rules(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    free(tmp_file(dir, "oc/OC-FOV_HLA-A_ENSG00000206503_CID1_FID1_proj.tif", ""));
    free(tmp_file(dir, "oc/OC-FOV_POLR2A_x_proj.tiff", ""));
    free(tmp_file(dir, "oc/plateA/mystery_proj.tif", ""));
    free(tmp_file(dir, "oc/ignored.tif", ""));
    char d[1024];
    snprintf(d, sizeof d, "%s/oc", dir);
    PlScanOptions opt = {.layout = PL_SCAN_OPENCELL, .folds = 4};
    PlScanResult r;
    assert_int_equal(pl_manifest_scan(d, &opt, &r), PL_OK);
    assert_int_equal(r.count, 3);
    assert_true(r.pixel_size_um == 0.206);
    const PlScanItem *it = find_item(&r, "OC-FOV_HLA-A_ENSG00000206503_CID1_FID1");
    assert_non_null(it);
    assert_string_equal(it->group, "ENSG00000206503");   // no CSV: the ENSG token
    int fold = atoi(it->split);
    assert_true(fold >= 0 && fold < 4);
    assert_string_equal(it->channels[0] + strlen(it->channels[0]) - 11, "_proj.tif#0");
    assert_int_equal(it->channels[0][0], '/');            // no base folder: absolute
    it = find_item(&r, "OC-FOV_POLR2A_x");
    assert_non_null(it);
    assert_string_equal(it->group, "POLR2A");             // the token after OC-FOV
    it = find_item(&r, "plateA/mystery");
    assert_non_null(it);
    assert_string_equal(it->group, "mystery");            // the first token
    pl_manifest_scan_free(&r);
    // with the annotation CSV the target name is found even without an ENSG token
    char *ann = tmp_file(dir, "ann.csv", "ensg_id,target_name,annotation_name,annotation_grade\nENSG9,POLR2A,nucleoplasm,3\n");
    opt.labels_csv = ann;
    opt.labelled_only = 1;
    assert_int_equal(pl_manifest_scan(d, &opt, &r), PL_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.n_dropped, 2);
    assert_string_equal(r.items[0].label, "nucleoplasm");
    assert_string_equal(r.items[0].group, "POLR2A");
    pl_manifest_scan_free(&r);
    // the same id twice (.tif and .tiff) is an error naming both files
    free(tmp_file(dir, "oc/OC-FOV_POLR2A_x_proj.tif", ""));
    opt.labels_csv = NULL;
    opt.labelled_only = 0;
    assert_int_equal(pl_manifest_scan(d, &opt, &r), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "same id 'OC-FOV_POLR2A_x'"));
    free(ann);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_diff_roles_and_fields(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char *a = tmp_file(dir, "a.tsv",
                       "# old\nid\tdataset\tlabel\tsplit\tgroup\tprotein\tnucleus\n"
                       "x\td\tl1\ttrain\tg\tx.tif#1\tx.tif#0\ny\td\tl2\ttest\tg2\ty.tif#1\ty.tif#0\n"
                       "z\td\tl2\ttest\tg2\tz.tif#1\tz.tif#0\n");
    char *b = tmp_file(dir, "sub/b.tsv",
                       "id\tdataset\tlabel\tsplit\tgroup\tprotein\tnucleus\tcustom_role\n"
                       "x\td\tl1\ttrain\tg\t../x.tif#1\t../x.tif#0\t\n"
                       "y\td\tl9\ttest\tg2\t../y.tif#1\t../y.tif#2\t\n"
                       "w\td\tl1\ttrain\tg\t../w.tif#1\t../w.tif#0\tw.png\n");
    PlManifest ma, mb;
    assert_int_equal(pl_manifest_load_any_roles(a, &ma), PL_OK);
    assert_int_equal(pl_manifest_load_any_roles(b, &mb), PL_OK);
    PlManifestDiff d;
    assert_int_equal(pl_manifest_diff(&ma, &mb, &d), PL_OK);
    assert_int_equal(d.n_added, 1);
    assert_int_equal(d.n_changed, 1);
    assert_int_equal(d.n_removed, 1);
    assert_int_equal(d.n_unchanged, 1);   // x: same files through a different relative path
    assert_int_equal(d.count, 3);
    assert_int_equal(d.entries[0].kind, PL_DIFF_CHANGED);
    assert_string_equal(d.entries[0].id, "y");
    assert_string_equal(d.entries[0].fields, "label,nucleus");
    assert_int_equal(d.entries[1].kind, PL_DIFF_ADDED);
    assert_string_equal(d.entries[1].id, "w");
    assert_int_equal(d.entries[2].kind, PL_DIFF_REMOVED);
    assert_string_equal(d.entries[2].id, "z");
    pl_manifest_diff_free(&d);
    pl_manifest_free(&ma);
    pl_manifest_free(&mb);
    free(a);
    free(b);
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_opencell),       cmocka_unit_test(test_labels_id_table),
        cmocka_unit_test(test_scan_hpa_rules),        cmocka_unit_test(test_scan_opencell_rules),
        cmocka_unit_test(test_diff_roles_and_fields),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
