// Unit tests of the manifest parser and model cards: path resolution and normalisation, pages, optional
// columns, error collection with line:column, CRLF and comments; model card validation and sha256 checks.
#include "pl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_manifest.h"
#include "pl_modelcard.h"

static char *write_file(const char *dir, const char *name, const char *text) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(pl_file_write_atomic(path, text, strlen(text)), PL_OK);
    return path;
}

static void test_parse_valid(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    const char *p = write_file(dir, "m.tsv",
                               "# c\r\nid\tdataset\tlabel\tsplit\tgroup\tprotein\tnucleus\tmask\tpixel_size_um\tsha256\r\n"
                               "a\tds\tx;y\ttrain\tG\tsub/./a.tif#1\t/abs/n.tif\tm.png#0\t0.08\t\r\n"
                               "\n"
                               "b\tds\t\t4\tG\tsub/../b.tif\t\t\t\t" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n");
    PlManifest m;
    PlManifestOptions o = {.allow_outside_root = 1};
    assert_int_equal(pl_manifest_load(p, &o, &m), PL_OK);
    assert_int_equal(m.count, 2);
    assert_int_equal(m.n_roles, 2);
    assert_string_equal(m.roles[0], "protein");
    assert_int_equal(pl_manifest_role_index(&m, "nucleus"), 1);
    char want[4200];
    snprintf(want, sizeof want, "%s/sub/a.tif", dir);
    assert_string_equal(m.items[0].channels[0].path, want);
    assert_int_equal(m.items[0].channels[0].page, 1);
    assert_string_equal(m.items[0].channels[1].path, "/abs/n.tif");
    assert_string_equal(m.items[0].label, "x;y");
    assert_true(m.items[0].pixel_size_um == 0.08);
    assert_non_null(m.items[0].mask.path);
    assert_int_equal(m.items[0].line, 3);
    assert_int_equal(m.items[1].line, 5);
    snprintf(want, sizeof want, "%s/b.tif", dir);
    assert_string_equal(m.items[1].channels[0].path, want);
    assert_null(m.items[1].channels[1].path);
    assert_string_equal(m.items[1].split, "4");
    assert_non_null(m.items[1].sha256);
    assert_int_equal(pl_manifest_find(&m, "b"), 1);
    assert_int_equal(pl_manifest_find(&m, "zz"), -1);
    pl_manifest_free(&m);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_errors(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    const char *p = write_file(dir, "bad.tsv",
                               "id\tdataset\tlabel\tsplit\tgroup\tprotein\n"
                               "a\td\t\ttrain\tg\t/abs/x.tif\n"      // outside the root
                               "b\td\t\tTRAIN\tg\tx.tif#-1\n"        // bad split, bad page
                               "c\td\t\ttrain\tg\t\n"                // no channel
                               "c\td\t\ttrain\tg\tx.tif\n");         // duplicate id
    PlManifest m;
    assert_int_equal(pl_manifest_load(p, NULL, &m), PL_ERR_FORMAT);
    assert_int_equal(m.n_errors, 5);
    assert_non_null(strstr(m.errors[0], "bad.tsv:2:14: protein: path '/abs/x.tif' escapes the root"));
    assert_non_null(strstr(m.errors[1], "bad.tsv:3:6: bad split 'TRAIN'"));
    assert_non_null(strstr(m.errors[2], "bad.tsv:3:14: protein: bad page '-1'"));
    assert_non_null(strstr(m.errors[3], "bad.tsv:4:1: item 'c' has no channel file"));
    assert_non_null(strstr(m.errors[4], "bad.tsv:5:1: duplicate id 'c' (first on line 4)"));
    assert_non_null(strstr(pl_error_message(), "and 4 more problems"));
    pl_manifest_free(&m);
    // max_errors caps the list but counts everything
    PlManifestOptions o = {.max_errors = 2};
    assert_int_equal(pl_manifest_load(p, &o, &m), PL_ERR_FORMAT);
    assert_int_equal(m.n_errors, 2);
    assert_int_equal(m.n_errors_total, 5);
    pl_manifest_free(&m);
    p = write_file(dir, "empty.tsv", "# only a comment\n");
    assert_int_equal(pl_manifest_load(p, NULL, &m), PL_ERR_FORMAT);
    assert_non_null(strstr(m.errors[0], "no header line"));
    pl_manifest_free(&m);
    assert_int_equal(pl_manifest_load("/nonexistent/m.tsv", NULL, &m), PL_ERR_IO);
    pl_manifest_free(&m);
    assert_true(pl_manifest_split_valid("val"));
    assert_true(pl_manifest_split_valid(""));
    assert_false(pl_manifest_split_valid("-1"));
    pl_test_rmtree(dir);
    free(dir);
}

static void test_modelcard(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    write_file(dir, "w.bin", "abc");
    const char *p = write_file(dir, "card.json",
                               "{\"name\": \"n\", \"weights\": \"w.bin\", \"sha256\": "
                               "\"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD\", \"heads\": 6, "
                               "\"input_slots\": [\"protein\", null, \"nucleus\"], \"normalisation\": {\"mode\": \"fixed\", "
                               "\"mean\": [0.485, 0.456, 0.406], \"std\": [0.229, 0.224, 0.225]}, \"input_mode\": \"replicate\"}");
    PlModelCard c;
    assert_int_equal(pl_modelcard_load(p, &c), PL_OK);
    assert_int_equal(c.n_slots, 3);
    assert_string_equal(c.slots[1], "");
    assert_int_equal(c.norm_mode, PL_CARD_NORM_FIXED);
    assert_true(c.std[2] > 0.2249f && c.std[2] < 0.2251f);
    assert_int_equal(c.input_mode, PL_CARD_INPUT_REPLICATE);
    assert_int_equal(c.heads, 6);
    char hex[65];
    assert_int_equal(pl_modelcard_verify_weights(&c, hex), PL_OK);   // sha256("abc"), case-insensitive
    pl_modelcard_free(&c);
    static const char *const bad[] = {
        "{\"weights\": \"w.bin\", \"input_slots\": [\"protein\"]}",                          // no name
        "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": []}",                    // no slots
        "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": [\"protein\"], \"colour\": 1}",   // unknown key
        "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": [\"protein\"], \"normalisation\": {\"mode\": \"fixed\"}}",
        "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": [\"a b\"]}",
        "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": [\"protein\"], \"sha256\": \"xyz\"}",
        "{\"name\": \"n\", ",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p = write_file(dir, "bad.json", bad[i]);
        assert_int_not_equal(pl_modelcard_load(p, &c), PL_OK);
        assert_non_null(strstr(pl_error_message(), "bad.json"));
    }
    p = write_file(dir, "mismatch.json",
                   "{\"name\": \"n\", \"weights\": \"w.bin\", \"input_slots\": [\"protein\"], \"sha256\": "
                   "\"0000000000000000000000000000000000000000000000000000000000000000\"}");
    assert_int_equal(pl_modelcard_load(p, &c), PL_OK);
    assert_int_equal(pl_modelcard_verify_weights(&c, hex), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "ba7816bf"));
    pl_modelcard_free(&c);
    pl_test_rmtree(dir);
    free(dir);
}

// The example cards shipped in manifests/models/ parse and say what docs/manifests.md says.
static void test_example_cards(void **state) {
    (void)state;
    char path[4096];
    PlModelCard c;
    assert_int_equal(pl_modelcard_load(pl_test_source_path("manifests/models/dino_vits16_imagenet.json", path,
                                                           sizeof path), &c), PL_OK);
    assert_int_equal(c.n_slots, 3);
    assert_string_equal(c.slots[0], "");
    assert_string_equal(c.slots[1], "protein");
    assert_string_equal(c.slots[2], "nucleus");
    assert_int_equal(c.norm_mode, PL_CARD_NORM_FIXED);
    pl_modelcard_free(&c);
    assert_int_equal(pl_modelcard_load(pl_test_source_path("manifests/models/dino4cells_hpa_fov.json", path,
                                                           sizeof path), &c), PL_OK);
    assert_int_equal(c.n_slots, 4);
    assert_string_equal(c.slots[1], "protein");
    assert_true(c.pixel_size_um == 0.08);
    pl_modelcard_free(&c);
    assert_int_equal(pl_modelcard_load(pl_test_source_path("manifests/models/demo_vit4.json", path, sizeof path), &c),
                     PL_OK);
    assert_int_equal(c.heads, 2);
    pl_modelcard_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_valid), cmocka_unit_test(test_errors),
                                       cmocka_unit_test(test_modelcard), cmocka_unit_test(test_example_cards)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
