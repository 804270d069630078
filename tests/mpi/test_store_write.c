// MPI test (2 and 3 ranks): collective store writes where some ranks hold no rows, a dataset written in rounds
// (ranks with fewer rounds take part with empty writes), then variable-length UTF-8 strings and root attributes added
// by rank 0 through the serial writer (a 60 KB value does not inflate the other rows); read back and compared.
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
    float emb[3] = {(float)rank, (float)rank + 0.5f, -(float)rank};
    int64_t item = rank * 10;
    PlStoreWriter w;
    assert_int_equal(pl_store_create(&w, path, MPI_COMM_WORLD), PL_OK);
    assert_int_equal(pl_store_write_f32(&w, "/fov/embedding", total, 3, rank, n, emb), PL_OK);
    assert_int_equal(pl_store_write_i64(&w, "/cells/item", total, 0, rank, n, &item), PL_OK);
    // rounds: rank r writes r + 1 rows of /tiles/y one per round, at rows r(r+1)/2 ...; the others write nothing
    PlStoreDataset d;
    int64_t tiles = (int64_t)size * (size + 1) / 2;
    assert_int_equal(pl_store_dataset_create(&w, "/tiles/y", PL_STORE_I32, tiles, 0, &d), PL_OK);
    for (int round = 0; round < size; round++) {
        int32_t v = rank * 100 + round;
        int mine = round <= rank;
        assert_int_equal(pl_store_dataset_write(&w, &d, mine ? (int64_t)rank * (rank + 1) / 2 + round : 0, mine, &v), PL_OK);
    }
    assert_int_equal(pl_store_dataset_close(&w, &d), PL_OK);
    assert_int_equal(pl_store_dataset_create(&w, "/x/s", PL_STORE_STRING, 1, 0, &d), PL_ERR_INTERNAL);   // parallel: no strings
    assert_int_equal(pl_store_close(&w), PL_OK);
    if (rank == 0) {   // strings and attributes: one process, variable-length
        char *ids[8], *big = malloc(60001);
        memset(big, 'x', 60000);
        big[60000] = '\0';
        for (int r = 0; r < total; r++) {
            ids[r] = malloc(64);
            snprintf(ids[r], 64, "item-%0*d", r + 1, r);
        }
        const char *labels[8] = {big, "a", "b", "c", "d", "e", "f", "g"};
        assert_int_equal(pl_store_open_serial(&w, path), PL_OK);
        assert_int_equal(pl_store_write_strings(&w, "/items/id", total, 0, total, (const char *const *)ids), PL_OK);
        assert_int_equal(pl_store_write_strings(&w, "/items/label", total, 0, total, labels), PL_OK);
        assert_int_equal(pl_store_write_strings(&w, "/failures/id", 0, 0, 0, NULL), PL_OK);   // empty
        assert_int_equal(pl_store_attr_string(&w, "model_card", "{\"name\": \"x\"}"), PL_OK);
        assert_int_equal(pl_store_attr_i64(&w, "embedding_dim", 3), PL_OK);
        assert_int_equal(pl_store_close(&w), PL_OK);
        for (int r = 0; r < total; r++) free(ids[r]);
        free(big);
    }
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
        int32_t ty[64];
        assert_int_equal(pl_store_read_i32(f, "/tiles/y", 0, (int64_t)size * (size + 1) / 2, ty), PL_OK);
        for (int r = 0, k = 0; r < size; r++)
            for (int round = 0; round <= r; round++) assert_int_equal(ty[k++], r * 100 + round);
        char **labels = NULL;
        assert_int_equal(pl_store_read_strings(f, "/items/label", &count, &labels), PL_OK);
        assert_int_equal((int)strlen(labels[0]), 60000);
        if (total > 1) assert_string_equal(labels[1], "a");
        pl_store_free_strings(labels, count);
        hid_t ds = H5Dopen2(f, "/items/label", H5P_DEFAULT);
        assert_true(H5Dget_storage_size(ds) < 1000);   // variable-length: the rows hold references, not 60 KB each
        H5Dclose(ds);
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
