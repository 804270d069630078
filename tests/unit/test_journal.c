// Unit tests of the per-rank journals: round trip of every record kind, torn tails cut at every byte,
// corrupted checksums, truncate-and-append after a crash, settings file and folder removal.
#include "pl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pl_journal.h"

#define D 5

static void append_item(PlJournalWriter *w, const char *id, int n_tiles, int n_cells, float base) {
    float fov[D], temb[3 * D], cemb[2 * D], cyx[4];
    int32_t yx[6];
    int64_t area[2];
    int32_t label[2] = {17, 4242};
    for (int i = 0; i < D; i++) fov[i] = base + (float)i;
    for (int i = 0; i < 3 * D; i++) temb[i] = base * 2 + (float)i;
    for (int i = 0; i < 2 * D; i++) cemb[i] = -base - (float)i;
    for (int i = 0; i < 6; i++) yx[i] = i * 16;
    for (int i = 0; i < 4; i++) cyx[i] = 1.5f * (float)i;
    area[0] = 100;
    area[1] = 200;
    PlJournalRecord r = {.id = id, .digest = "s:abc", .dim = D, .has_fov = 1, .fov = fov, .n_tiles = n_tiles,
                         .tile_yx = yx, .tile_emb = temb, .n_cells = n_cells, .cell_cyx = cyx, .cell_area = area,
                         .cell_label = label, .cell_emb = cemb};
    assert_int_equal(pl_journal_append(w, &r), PL_OK);
}

static void test_round_trip(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char jdir[4096];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    PlJournalWriter w;
    assert_int_equal(pl_journal_open(&w, jdir, 3, 0), PL_OK);
    append_item(&w, "item-a", 3, 2, 1.0f);
    PlJournalRecord f = {.id = "item-b", .digest = "s:def", .failed = 1, .fail_stage = "decode",
                         .fail_message = "x.tif: truncated"};
    assert_int_equal(pl_journal_append(&w, &f), PL_OK);
    append_item(&w, "item-c", 0, 0, 7.0f);
    assert_int_equal(pl_journal_close(&w), PL_OK);

    PlJournalIndex idx;
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
    assert_int_equal(idx.n_files, 1);
    assert_int_equal(idx.file_rank[0], 3);
    assert_int_equal(idx.count, 3);
    assert_int_equal(idx.torn, 0);
    assert_string_equal(idx.entries[1].id, "item-b");
    assert_true(idx.entries[1].failed);
    assert_int_equal(idx.entries[0].n_tiles, 3);
    assert_int_equal(idx.entries[0].n_cells, 2);
    PlJournalItem it;
    memset(&it, 0, sizeof it);
    assert_int_equal(pl_journal_read(&idx, 0, &it), PL_OK);
    assert_string_equal(it.id, "item-a");
    assert_string_equal(it.digest, "s:abc");
    assert_true(it.has_fov);
    assert_true(it.fov[4] == 5.0f);
    assert_true(it.tile_emb[3 * D - 1] == 2.0f + 3 * D - 1);
    assert_int_equal(it.tile_yx[5], 80);
    assert_true(it.cell_emb[2 * D - 1] == -1.0f - (2 * D - 1));
    assert_true(it.cell_cyx[3] == 4.5f);
    assert_int_equal(it.cell_area[1], 200);
    assert_int_equal(it.cell_label[0], 17);
    assert_int_equal(it.cell_label[1], 4242);
    assert_int_equal(pl_journal_read(&idx, 1, &it), PL_OK);
    assert_true(it.failed);
    assert_string_equal(it.fail_stage, "decode");
    assert_string_equal(it.fail_message, "x.tif: truncated");
    assert_int_equal(pl_journal_read(&idx, 2, &it), PL_OK);
    assert_true(it.fov[0] == 7.0f);
    assert_int_equal(it.n_tiles, 0);
    pl_journal_item_free(&it);
    pl_journal_index_free(&idx);
    pl_test_rmtree(dir);
    free(dir);
}

// One record with many rows of a small dim, then one with few rows of a large dim, then the first again: every
// array of the reused PlJournalItem has its own capacity, so each read fits (clean under AddressSanitizer).
static void write_shaped(PlJournalWriter *w, const char *id, int dim, int n_tiles, int n_cells) {
    size_t nt = (size_t)n_tiles, nc = (size_t)n_cells, d = (size_t)dim;
    float *fov = calloc(d, sizeof *fov), *temb = calloc(nt * d + 1, sizeof *temb), *cemb = calloc(nc * d + 1, sizeof *cemb);
    float *cyx = calloc(nc * 2 + 1, sizeof *cyx);
    int32_t *yx = calloc(nt * 2 + 1, sizeof *yx), *lab = calloc(nc + 1, sizeof *lab);
    int64_t *area = calloc(nc + 1, sizeof *area);
    for (size_t i = 0; i < nt * d; i++) temb[i] = (float)i;
    for (size_t i = 0; i < nc * d; i++) cemb[i] = -(float)i;
    for (size_t i = 0; i < nc; i++) lab[i] = (int32_t)(i + 1), area[i] = (int64_t)i;
    PlJournalRecord r = {.id = id, .digest = "s:x", .dim = dim, .has_fov = 1, .fov = fov, .n_tiles = n_tiles,
                         .tile_yx = yx, .tile_emb = temb, .n_cells = n_cells, .cell_cyx = cyx, .cell_area = area,
                         .cell_label = lab, .cell_emb = cemb};
    assert_int_equal(pl_journal_append(w, &r), PL_OK);
    free(fov); free(temb); free(cemb); free(cyx); free(yx); free(lab); free(area);
}

static void test_mixed_dims_reuse_item(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char jdir[4096];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    PlJournalWriter w;
    assert_int_equal(pl_journal_open(&w, jdir, 0, 0), PL_OK);
    write_shaped(&w, "many-small", 1, 100, 100);
    write_shaped(&w, "few-large", 200, 1, 1);
    write_shaped(&w, "cells-only", 3, 0, 300);
    write_shaped(&w, "tiles-only", 7, 250, 0);
    assert_int_equal(pl_journal_close(&w), PL_OK);
    PlJournalIndex idx;
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
    assert_int_equal(idx.count, 4);
    PlJournalItem it;
    memset(&it, 0, sizeof it);
    static const int dims[4] = {1, 200, 3, 7}, tiles[4] = {100, 1, 0, 250}, cells[4] = {100, 1, 300, 0};
    for (int pass = 0; pass < 2; pass++)
        for (size_t e = 0; e < idx.count; e++) {
            assert_int_equal(pl_journal_read(&idx, e, &it), PL_OK);
            assert_int_equal(it.dim, dims[e]);
            assert_int_equal(it.n_tiles, tiles[e]);
            assert_int_equal(it.n_cells, cells[e]);
            size_t nt = (size_t)it.n_tiles * (size_t)it.dim, nc = (size_t)it.n_cells * (size_t)it.dim;
            if (nt) assert_true(it.tile_emb[nt - 1] == (float)(nt - 1));
            if (nc) assert_true(it.cell_emb[nc - 1] == -(float)(nc - 1));
            if (it.n_cells) assert_int_equal(it.cell_label[it.n_cells - 1], it.n_cells);
        }
    pl_journal_item_free(&it);
    pl_journal_index_free(&idx);
    pl_test_rmtree(dir);
    free(dir);
}

// Cut the file after every possible byte count: the scan keeps exactly the records that are whole.
static void test_torn_tails(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char jdir[4096], path[4200];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    PlJournalWriter w;
    assert_int_equal(pl_journal_open(&w, jdir, 0, 0), PL_OK);
    append_item(&w, "one", 1, 1, 1.0f);
    append_item(&w, "two", 2, 0, 2.0f);
    assert_int_equal(pl_journal_close(&w), PL_OK);
    snprintf(path, sizeof path, "%s/rank-00000.jnl", jdir);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    PlJournalIndex idx;
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
    int64_t first_len = idx.entries[0].length, total = (int64_t)sb.st_size;
    pl_journal_index_free(&idx);
    FILE *fp = fopen(path, "rb");
    unsigned char *all = malloc((size_t)total);
    assert_int_equal(fread(all, 1, (size_t)total, fp), (size_t)total);
    fclose(fp);
    for (int64_t cut = 0; cut <= total; cut++) {
        fp = fopen(path, "wb");
        fwrite(all, 1, (size_t)cut, fp);
        fclose(fp);
        assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
        size_t want = cut >= total ? 2 : cut >= first_len ? 1 : 0;
        assert_int_equal(idx.count, want);
        assert_int_equal(idx.valid_length[0], want == 2 ? total : want == 1 ? first_len : 0);
        assert_int_equal(idx.torn, (cut == 0 || cut == first_len || cut == total) ? 0 : 1);
        pl_journal_index_free(&idx);
    }
    // a flipped byte inside the second record's payload: the checksum drops it
    all[total - 3] ^= 0x55;
    fp = fopen(path, "wb");
    fwrite(all, 1, (size_t)total, fp);
    fclose(fp);
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
    assert_int_equal(idx.count, 1);
    assert_int_equal(idx.torn, 1);
    // reopening for append truncates to the valid length, then new records follow cleanly
    assert_int_equal(pl_journal_open(&w, jdir, 0, pl_journal_valid_length(&idx, 0)), PL_OK);
    pl_journal_index_free(&idx);
    append_item(&w, "three", 0, 1, 3.0f);
    assert_int_equal(pl_journal_close(&w), PL_OK);
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);
    assert_int_equal(idx.count, 2);
    assert_int_equal(idx.torn, 0);
    assert_string_equal(idx.entries[1].id, "three");
    pl_journal_index_free(&idx);
    free(all);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_settings_and_remove(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char jdir[4096];
    snprintf(jdir, sizeof jdir, "%s/j", dir);
    char key[128];
    int present = 1;
    assert_int_equal(pl_journal_settings_read(jdir, key, &present), PL_OK);
    assert_false(present);
    PlJournalIndex idx;
    assert_int_equal(pl_journal_scan(jdir, &idx), PL_OK);   // missing folder = empty
    assert_int_equal(idx.count, 0);
    assert_int_equal(pl_journal_settings_write(jdir, "abc123"), PL_OK);
    assert_int_equal(pl_journal_settings_read(jdir, key, &present), PL_OK);
    assert_true(present);
    assert_string_equal(key, "abc123");
    PlJournalWriter w;
    assert_int_equal(pl_journal_open(&w, jdir, 1, 0), PL_OK);
    append_item(&w, "x", 0, 0, 0.0f);
    assert_int_equal(pl_journal_close(&w), PL_OK);
    assert_int_equal(pl_journal_remove(jdir), PL_OK);
    struct stat sb;
    assert_int_not_equal(stat(jdir, &sb), 0);
    // bad records are refused before anything is written
    assert_int_equal(pl_journal_open(&w, jdir, 0, 0), PL_OK);
    PlJournalRecord r = {.id = "", .digest = "d"};
    assert_int_equal(pl_journal_append(&w, &r), PL_ERR_ARG);
    assert_int_equal(pl_journal_close(&w), PL_OK);
    pl_test_rmtree(dir);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip), cmocka_unit_test(test_mixed_dims_reuse_item),
                                       cmocka_unit_test(test_torn_tails),
                                       cmocka_unit_test(test_settings_and_remove)};
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
