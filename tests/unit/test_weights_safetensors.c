// Unit tests for the safetensors reader/writer: golden file, F16/BF16 conversion, round trip, malformed headers.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_dtype.h"
#include "pl_fs.h"
#include "pl_safetensors.h"
#include "pl_weights.h"

// Build a safetensors file in memory from a JSON header and raw data.
static unsigned char *make_st(const char *json, const void *data, size_t dsize, size_t *out_size) {
    size_t hl = strlen(json);
    unsigned char *b = malloc(8 + hl + dsize);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, json, hl);
    if (dsize) memcpy(b + 8 + hl, data, dsize);
    *out_size = 8 + hl + dsize;
    return b;
}

static void expect_load_error(const char *json, const void *data, size_t dsize, PlStatus code, const char *needle) {
    size_t n;
    unsigned char *b = make_st(json, data, dsize, &n);
    PlWeights w;
    PlStatus st = pl_weights_load_memory(b, n, "bad.safetensors", NULL, &w);
    if (st != code || !strstr(pl_error_message(), needle))
        print_message("got status %d message: %s (wanted %d, '%s')\n", st, pl_error_message(), code, needle);
    assert_int_equal(st, code);
    assert_non_null(strstr(pl_error_message(), needle));
    assert_non_null(strstr(pl_error_message(), "bad.safetensors"));
    assert_int_equal(w.count, 0);
    assert_null(w.tensors);
    free(b);
}

static void test_golden_safetensors_loads(void **state) {
    (void)state;
    char path[4096];
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/model.safetensors", path);
    PlWeights w;
    assert_int_equal(pl_weights_load(path, NULL, &w), PL_OK);
    assert_string_equal(w.format, "safetensors");
    assert_int_equal(w.count, 30);   // 2 blocks x 12 + cls, pos, patch w/b, norm w/b
    const PlWeightTensor *pos = pl_weights_find(&w, "pos_embed");
    assert_non_null(pos);
    assert_int_equal(pos->ndim, 3);
    assert_int_equal(pos->shape[1], 197);
    assert_int_equal(pos->shape[2], 96);
    assert_string_equal(pos->dtype, "F32");
    const PlWeightTensor *pw = pl_weights_find(&w, "patch_embed.proj.weight");
    assert_non_null(pw);
    assert_int_equal(pw->ndim, 4);
    assert_int_equal(pw->shape[0], 96);
    assert_int_equal(pw->shape[1], 4);
    assert_int_equal(pw->shape[2], 16);
    assert_non_null(w.args_text);
    assert_non_null(strstr(w.args_text, "format=pt"));
    pl_weights_free(&w);
}

static void test_f16_bf16_conversion(void **state) {
    (void)state;
    assert_true(pl_half_to_float(0x3c00) == 1.0f);
    assert_true(pl_half_to_float(0xc000) == -2.0f);
    assert_true(pl_half_to_float(0x7bff) == 65504.0f);
    assert_true(pl_half_to_float(0x0001) == ldexpf(1.0f, -24));        // smallest subnormal
    assert_true(pl_half_to_float(0x03ff) == 1023.0f * ldexpf(1.0f, -24));
    assert_true(isinf(pl_half_to_float(0x7c00)));
    assert_true(isnan(pl_half_to_float(0x7e00)));
    assert_true(signbit(pl_half_to_float(0x8000)));
    assert_true(pl_bfloat16_to_float(0x3f80) == 1.0f);
    assert_true(pl_bfloat16_to_float(0xc040) == -3.0f);
    // a file mixing F32, F16 and BF16 tensors
    unsigned char data[4 + 4 + 4];
    float one = 1.5f;
    uint16_t h[2] = {0x3c00, 0xb800};   // 1.0, -0.5
    uint16_t b[2] = {0x4040, 0x3e80};   // 3.0, 0.25
    memcpy(data, &one, 4);
    memcpy(data + 4, h, 4);
    memcpy(data + 8, b, 4);
    size_t n;
    unsigned char *file = make_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
                                  "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[4,8]},"
                                  "\"module.backbone.b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
                                  "\"head.last_layer.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[12,12]},"
                                  "\"__metadata__\":{\"heads\":\"3\",\"arch\":\"vit_tiny\",\"patch_size\":\"8\"}}",
                                  data, sizeof data, &n);
    PlWeights w;
    assert_int_equal(pl_weights_load_memory(file, n, "mixed", NULL, &w), PL_OK);
    assert_int_equal(w.count, 3);   // head.* dropped
    assert_int_equal(w.args_heads, 3);
    assert_int_equal(w.args_patch_size, 8);
    assert_string_equal(w.args_arch, "vit_tiny");
    assert_true(pl_weights_find(&w, "a")->data[0] == 1.5f);
    assert_int_equal(pl_weights_find(&w, "a")->ndim, 0);
    const PlWeightTensor *th = pl_weights_find(&w, "h");
    assert_string_equal(th->dtype, "F16");
    assert_true(th->data[0] == 1.0f && th->data[1] == -0.5f);
    const PlWeightTensor *tb = pl_weights_find(&w, "b");   // prefixes stripped
    assert_non_null(tb);
    assert_string_equal(tb->dtype, "BF16");
    assert_true(tb->data[0] == 3.0f && tb->data[1] == 0.25f);
    pl_weights_free(&w);
    free(file);
}

static void test_writer_round_trip(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char path[4096];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    PlWeights w = {0};
    float *d;
    int64_t s1[2] = {3, 5}, s2[1] = {7};
    assert_int_equal(pl_weights_add(&w, "x.weight", 2, s1, &d), PL_OK);
    for (int i = 0; i < 15; i++) d[i] = (float)i * 0.25f - 1.0f;
    assert_int_equal(pl_weights_add(&w, "x.bias", 1, s2, &d), PL_OK);
    for (int i = 0; i < 7; i++) d[i] = (float)-i;
    assert_int_not_equal(pl_weights_add(&w, "x.bias", 1, s2, &d), PL_OK);   // duplicate refused
    const char *meta[] = {"heads", "5", "arch", "vit_test", NULL};
    assert_int_equal(pl_safetensors_write(path, &w, meta), PL_OK);
    PlWeights r;
    assert_int_equal(pl_weights_load(path, NULL, &r), PL_OK);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.args_heads, 5);
    assert_string_equal(r.args_arch, "vit_test");
    for (size_t i = 0; i < w.count; i++) {
        const PlWeightTensor *a = &w.tensors[i], *b = pl_weights_find(&r, a->name);
        assert_non_null(b);
        assert_int_equal(a->ndim, b->ndim);
        assert_memory_equal(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim);
        assert_memory_equal(a->data, b->data, sizeof(float) * (size_t)pl_weight_tensor_numel(a));
    }
    // data section is 8-byte aligned (header padded)
    char *raw;
    size_t rawn;
    assert_int_equal(pl_file_read_all(path, 1 << 20, &raw, &rawn), PL_OK);
    uint64_t hl;
    memcpy(&hl, raw, 8);
    assert_int_equal(hl % 8, 0);
    assert_int_equal(rawn, 8 + hl + (15 + 7) * 4);
    free(raw);
    pl_weights_free(&r);
    pl_weights_free(&w);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_malformed_headers(void **state) {
    (void)state;
    float f[4] = {0};
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", f, 16, PL_ERR_FORMAT,
                      "tensor a: shape x dtype size is 8 bytes but data_offsets span 12");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,32]}}", f, 16, PL_ERR_FORMAT,
                      "outside the 16-byte data section");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                      "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", f, 16, PL_ERR_FORMAT,
                      "overlap");
    expect_load_error("{\"a\":{\"dtype\":\"Q7\",\"shape\":[2],\"data_offsets\":[0,8]}}", f, 16, PL_ERR_FORMAT,
                      "unknown dtype \"Q7\"");
    expect_load_error("{\"a\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", f, 16, PL_ERR_UNSUPPORTED,
                      "tensor a has dtype I64");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", f, 16, PL_ERR_FORMAT,
                      "non-negative");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", f, 16, PL_ERR_FORMAT,
                      "data_offsets [8, 0]");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", f, 16, PL_ERR_FORMAT, "data_offsets");
    expect_load_error("{\"a\":1,\"a\":2}", f, 16, PL_ERR_FORMAT, "not valid JSON");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", f, 16,
                      PL_ERR_UNSUPPORTED, "9 dimensions");
    expect_load_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4611686018427387904],"
                      "\"data_offsets\":[0,4]}}", f, 16, PL_ERR_FORMAT, "absurdly large");
    expect_load_error("{\"__metadata__\":{\"heads\":\"six\"}}", f, 0, PL_ERR_FORMAT, "heads=\"six\"");
    expect_load_error("{}", f, 0, PL_ERR_FORMAT, "holds no tensors");
    expect_load_error("{ }", f, 0, PL_ERR_FORMAT, "holds no tensors");
    expect_load_error("{\"x\":[1]}", f, 0, PL_ERR_FORMAT, "header entry is not an object");
    // absurd header length: the 8-byte length claims far more than the file holds
    unsigned char absurd[32] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, '{', '}'};
    PlWeights w;
    assert_int_equal(pl_weights_load_memory(absurd, sizeof absurd, "absurd.safetensors", NULL, &w), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "absurd safetensors header length"));
    // wrong magic / too short
    assert_int_equal(pl_weights_load_memory("hello world, not a model", 24, "text.bin", NULL, &w), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "text.bin: not a model checkpoint"));
    assert_int_equal(pl_weights_load_memory("", 0, "empty.bin", NULL, &w), PL_ERR_FORMAT);
    // truncated data: every prefix of a valid file fails cleanly
    size_t n;
    unsigned char *good = make_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", f, 16, &n);
    for (size_t cut = 0; cut < n; cut++) {
        assert_int_not_equal(pl_weights_load_memory(good, cut, "cut.safetensors", NULL, &w), PL_OK);
        assert_int_equal(w.count, 0);
    }
    assert_int_equal(pl_weights_load_memory(good, n, "ok.safetensors", NULL, &w), PL_OK);
    pl_weights_free(&w);
    free(good);
    // a missing file names the path
    assert_int_equal(pl_weights_load("/nonexistent/model.safetensors", NULL, &w), PL_ERR_IO);
    assert_non_null(strstr(pl_error_message(), "/nonexistent/model.safetensors"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_safetensors_loads),
        cmocka_unit_test(test_f16_bf16_conversion),
        cmocka_unit_test(test_writer_round_trip),
        cmocka_unit_test(test_malformed_headers),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
