// MPI test (2 and 3 ranks): collective store writes where some ranks hold no rows, fixed-length UTF-8 strings of
// different lengths per rank, numeric blocks, root attributes; read back serially and compared with the plan.
#include "pl_testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_mpi.h"
#include "pl_store.h"

static void test_collective_rows(void **state) {
    (void)state;
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    char path[4096] = "";
    char *dir = NULL;
    if (rank == 0) {
        dir = pl_test_tmpdir();
        snprintf(path, sizeof path, "%s/s.h5", dir);
    }
    MPI_Bcast(path, sizeof path, MPI_CHAR, 0, MPI_COMM_WORLD);
    // total rows = size - 1: the last rank writes nothing; rank r writes row r
    int64_t total = size - 1, n = rank < size - 1 ? 1 : 0;
    char id[64];
    snprintf(id, sizeof id, "item-%0*d", rank + 1, rank);   // widths differ per rank
    const char *ids[1] = {id};
    float emb[3] = {(float)rank, (float)rank + 0.5f, -(float)rank};
    int64_t item = rank * 10;
    PlStoreWriter w;
    assert_int_equal(pl_store_create(&w, path, MPI_COMM_WORLD), PL_OK);
    assert_int_equal(pl_store_write_strings(&w, "/items/id", total, rank, n, ids), PL_OK);
    assert_int_equal(pl_store_write_f32(&w, "/fov/embedding", total, 3, rank, n, emb), PL_OK);
    assert_int_equal(pl_store_write_i64(&w, "/cells/item", total, 0, rank, n, &item), PL_OK);
    assert_int_equal(pl_store_write_strings(&w, "/failures/id", 0, 0, 0, ids), PL_OK);   // empty everywhere
    assert_int_equal(pl_store_attr_string(&w, "model_card", "{\"name\": \"x\"}"), PL_OK);
    assert_int_equal(pl_store_attr_i64(&w, "embedding_dim", 3), PL_OK);
    assert_int_equal(pl_store_close(&w), PL_OK);
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank == 0) {
        hid_t f;
        assert_int_equal(pl_store_open_read(path, &f), PL_OK);
        int64_t count = 0, rows = 0, cols = 0;
        char **got = NULL;
        assert_int_equal(pl_store_read_strings(f, "/items/id", &count, &got), PL_OK);
        assert_int_equal(count, total);
        for (int r = 0; r < total; r++) {
            char want[64];
            snprintf(want, sizeof want, "item-%0*d", r + 1, r);
            assert_string_equal(got[r], want);
        }
        pl_store_free_strings(got, count);
        assert_int_equal(pl_store_shape(f, "/fov/embedding", &rows, &cols), PL_OK);
        assert_int_equal(rows, total);
        assert_int_equal(cols, 3);
        float all[3 * 8];
        assert_int_equal(pl_store_read_f32(f, "/fov/embedding", 0, rows, all), PL_OK);
        for (int r = 0; r < total; r++) assert_true(all[3 * r + 1] == (float)r + 0.5f);
        int64_t items[8];
        assert_int_equal(pl_store_read_i64(f, "/cells/item", 0, rows, items), PL_OK);
        for (int r = 0; r < total; r++) assert_int_equal(items[r], r * 10);
        assert_true(pl_store_has(f, "/failures/id"));
        assert_false(pl_store_has(f, "/tiles/item"));
        char *card = NULL;
        int present = 0;
        assert_int_equal(pl_store_read_attr_string(f, "model_card", &card, &present), PL_OK);
        assert_true(present);
        assert_string_equal(card, "{\"name\": \"x\"}");
        free(card);
        assert_int_equal(pl_store_read_f32(f, "/fov/embedding", rows, 1, all), PL_ERR_FORMAT);   // out of range
        pl_store_close_read(f);
        pl_test_rmtree(dir);
        free(dir);
    }
}

int main(int argc, char **argv) {
    int rank, size;
    if (pl_mpi_start(&argc, &argv, &rank, &size) != PL_OK) return 1;
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_collective_rows)};
    return pl_test_mpi_finish(cmocka_run_group_tests(tests, NULL, NULL));
}
