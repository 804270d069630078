// Unit tests for the synthetic data generator: determinism, every class renders, segmentation finds the known nuclei,
// dataset files are byte-identical per seed and the manifest is valid with leakage-free group splits.
#include "pl_testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_manifest.h"
#include "pl_segment.h"
#include "pl_synth.h"

static void test_render_deterministic_and_varied(void **state) {
    (void)state;
    PlSynthField a, b;
    assert_int_equal(pl_synth_field_alloc(&a, PL_SYNTH_OPENCELL, 256), PL_OK);
    assert_int_equal(pl_synth_field_alloc(&b, PL_SYNTH_OPENCELL, 256), PL_OK);
    size_t n = (size_t)2 * 256 * 256;
    assert_int_equal(pl_synth_render(&a, 4, 11, 12), PL_OK);
    assert_int_equal(pl_synth_render(&b, 4, 11, 12), PL_OK);
    assert_memory_equal(a.data, b.data, n * sizeof(float));
    assert_memory_equal(a.cells, b.cells, (size_t)256 * 256 * sizeof(int32_t));
    assert_int_equal(a.n_cells, b.n_cells);
    // another field of the same protein differs (different cells), as does the same field of another class
    assert_int_equal(pl_synth_render(&b, 4, 11, 13), PL_OK);
    assert_true(memcmp(a.data, b.data, n * sizeof(float)) != 0);
    assert_int_equal(pl_synth_render(&b, 5, 11, 12), PL_OK);
    assert_true(memcmp(a.data + n / 2, b.data + n / 2, n / 2 * sizeof(float)) != 0);
    assert_int_equal(pl_synth_render(&b, 17, 11, 12), PL_ERR_ARG);
    pl_synth_field_free(&a);
    pl_synth_field_free(&b);
}

// Mean protein signal inside nuclei vs in the cytoplasm: nuclear classes are nuclear, cytoplasmic ones are not.
static void test_every_class_renders_its_compartment(void **state) {
    (void)state;
    PlSynthKind kinds[2] = {PL_SYNTH_OPENCELL, PL_SYNTH_HPA};
    for (int kk = 0; kk < 2; kk++) {
        PlSynthField f;
        int S = 192;
        assert_int_equal(pl_synth_field_alloc(&f, kinds[kk], S), PL_OK);
        size_t N = (size_t)S * S;
        int pc = 1;   // the protein channel is channel 1 in both layouts
        double maxval = kinds[kk] == PL_SYNTH_HPA ? 255 : 65535;
        for (int k = 0; k < PL_SYNTH_MAX_CLASSES; k++) {
            assert_non_null(pl_synth_class_name(k));
            assert_int_equal(pl_synth_render(&f, k, 100 + k, 7), PL_OK);
            assert_true(f.n_cells > 0);
            double nuc = 0, cyto = 0, bg = 0;
            size_t nn = 0, nc = 0, nb = 0;
            for (size_t p = 0; p < (size_t)f.channels * N; p++) {
                float v = f.data[p];
                assert_true(v >= 0 && v <= maxval && v == floorf(v));
            }
            const float *prot = f.data + (size_t)pc * N;
            for (size_t p = 0; p < N; p++) {
                if (f.nuclei[p]) { nuc += prot[p]; nn++; }
                else if (f.cells[p]) { cyto += prot[p]; nc++; }
                else { bg += prot[p]; nb++; }
            }
            if (!nn || !nc) continue;
            nuc /= nn;
            cyto /= nc;
            const char *name = pl_synth_class_name(k);
            if (!strcmp(name, "nucleoplasm") || !strcmp(name, "chromatin"))
                assert_true(nuc > 2 * cyto);
            if (!strcmp(name, "cytoplasmic") || !strcmp(name, "er") || !strcmp(name, "mitochondria"))
                assert_true(cyto > 1.5 * nuc);
        }
        pl_synth_field_free(&f);
    }
}

// Segmentation of the synthetic nucleus channel finds the nuclei the generator placed.
static void test_segmentation_counts_synthetic_nuclei(void **state) {
    (void)state;
    int sanitize = getenv("PROTLOC_SANITIZE") && !strcmp(getenv("PROTLOC_SANITIZE"), "1");
    PlSynthKind kinds[2] = {PL_SYNTH_OPENCELL, PL_SYNTH_HPA};
    for (int kk = 0; kk < 2; kk++) {
        int S = sanitize ? 384 : 512;
        PlSynthField f;
        assert_int_equal(pl_synth_field_alloc(&f, kinds[kk], S), PL_OK);
        int32_t *lab = malloc((size_t)S * S * sizeof(int32_t));
        PlSegmentParams p;
        pl_segment_params_default(&p);
        p.pixel_size_um = pl_synth_pixel_size_um(kinds[kk]);
        int nucleus_channel = kinds[kk] == PL_SYNTH_HPA ? 2 : 0;
        int total_truth = 0, total_found = 0;
        for (int seed = 1; seed <= 4; seed++) {
            assert_int_equal(pl_synth_render(&f, seed % PL_SYNTH_MAX_CLASSES, 5, (uint64_t)seed), PL_OK);
            PlSegmentStats st;
            assert_int_equal(pl_segment_nuclei(f.data + (size_t)nucleus_channel * S * S, S, S, &p, lab, &st), PL_OK);
            print_message("%s seed %d: %d nuclei inside, %d segmented\n", pl_synth_kind_name(kinds[kk]), seed,
                          f.n_nuclei_inside, st.count);
            assert_true(fabs((double)st.count - f.n_nuclei_inside) <= 0.25 * f.n_nuclei_inside + 2);
            total_truth += f.n_nuclei_inside;
            total_found += st.count;
        }
        assert_true(fabs((double)total_found - total_truth) <= 0.15 * total_truth + 2);
        free(lab);
        pl_synth_field_free(&f);
    }
}

// Compare every regular file of two folders byte for byte; returns the number of files compared (-1 on mismatch).
static int compare_dirs(const char *a, const char *b) {
    DIR *d = opendir(a);
    if (!d) return -1;
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char pa[4096], pb[4096];
        snprintf(pa, sizeof pa, "%s/%s", a, e->d_name);
        snprintf(pb, sizeof pb, "%s/%s", b, e->d_name);
        char *da = NULL, *db = NULL;
        size_t sa = 0, sb = 0;
        int ok = pl_file_read_all(pa, 1 << 26, &da, &sa) == PL_OK && pl_file_read_all(pb, 1 << 26, &db, &sb) == PL_OK &&
                 sa == sb && memcmp(da, db, sa) == 0;
        free(da);
        free(db);
        if (!ok) {
            closedir(d);
            return -1;
        }
        n++;
    }
    closedir(d);
    return n;
}

static void test_dataset_manifest_and_byte_identical(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char d1[4096], d2[4096], d3[4096], path[4096];
    snprintf(d1, sizeof d1, "%s/a", dir);
    snprintf(d2, sizeof d2, "%s/b", dir);
    snprintf(d3, sizeof d3, "%s/c", dir);
    PlSynthKind kinds[2] = {PL_SYNTH_OPENCELL, PL_SYNTH_HPA};
    for (int kk = 0; kk < 2; kk++) {
        PlSynthParams p;
        pl_synth_params_default(&p);
        p.kind = kinds[kk];
        p.classes = 3;
        p.per_class = 7;   // 4 proteins per class (2 + 2 + 2 + 1 fields)
        p.seed = 42;
        p.size = 64;
        p.masks = 1;
        int n = 0;
        assert_int_equal(pl_synth_write_dataset(&p, d1, &n), PL_OK);
        assert_int_equal(n, 21);
        assert_int_equal(pl_synth_write_dataset(&p, d2, &n), PL_OK);
        int files = compare_dirs(d1, d2);
        int per_field = kinds[kk] == PL_SYNTH_HPA ? 5 : 2;
        assert_int_equal(files, 21 * per_field + 2);   // + manifest.tsv + synth.json
        p.seed = 43;
        assert_int_equal(pl_synth_write_dataset(&p, d3, &n), PL_OK);
        assert_int_equal(compare_dirs(d1, d3), -1);
        // the manifest is valid (files exist) and splits never share a group
        snprintf(path, sizeof path, "%s/manifest.tsv", d1);
        PlManifestOptions opt;
        memset(&opt, 0, sizeof opt);
        opt.check_files = 1;
        PlManifest m;
        PL_ASSERT_OK(pl_manifest_load(path, &opt, &m));
        assert_int_equal(m.count, 21);
        assert_true(pl_manifest_role_index(&m, "nucleus") >= 0 && pl_manifest_role_index(&m, "protein") >= 0);
        if (kinds[kk] == PL_SYNTH_HPA) assert_true(pl_manifest_role_index(&m, "er") >= 0);
        int train[3] = {0}, test[3] = {0};
        for (size_t i = 0; i < m.count; i++) {
            assert_non_null(m.items[i].mask.path);
            assert_true(fabs(m.items[i].pixel_size_um - pl_synth_pixel_size_um(kinds[kk])) < 1e-9);
            for (size_t j = 0; j < m.count; j++)
                if (!strcmp(m.items[i].group, m.items[j].group)) assert_string_equal(m.items[i].split, m.items[j].split);
            for (int k = 0; k < 3; k++)
                if (!strcmp(m.items[i].label, pl_synth_class_name(k))) {
                    train[k] += !strcmp(m.items[i].split, "train");
                    test[k] += !strcmp(m.items[i].split, "test");
                }
        }
        for (int k = 0; k < 3; k++) assert_true(train[k] > 0 && test[k] > 0);
        pl_manifest_free(&m);
        pl_test_rmtree(d1);
        pl_test_rmtree(d2);
        pl_test_rmtree(d3);
    }
    PlSynthParams bad;
    pl_synth_params_default(&bad);
    bad.classes = 18;
    assert_int_equal(pl_synth_write_dataset(&bad, d1, NULL), PL_ERR_ARG);
    bad.classes = 2;
    bad.size = 8;
    assert_int_equal(pl_synth_write_dataset(&bad, d1, NULL), PL_ERR_ARG);
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_deterministic_and_varied),
        cmocka_unit_test(test_every_class_renders_its_compartment),
        cmocka_unit_test(test_segmentation_counts_synthetic_nuclei),
        cmocka_unit_test(test_dataset_manifest_and_byte_identical),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
