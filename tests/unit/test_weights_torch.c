// Unit tests for PyTorch zip checkpoints: golden files in all three formats load to identical tensors,
// F16/BF16/strided/offset storages, DINO training checkpoints (keys, prefixes, args), the malformed corpus.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_fs.h"
#include "pl_npy.h"
#include "pl_unpickle.h"
#include "pl_weights.h"
#include "pl_zip.h"

static const char *fixture(const char *rel, char *buf, size_t n) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "tests/fixtures/checkpoints/%s", rel);
    return pl_test_source_path(tmp, buf, n);
}

static void load_ok(const char *path, const char *key, PlWeights *w) {
    PlWeightsOptions opt = {.checkpoint_key = key};
    PlStatus st = pl_weights_load(path, &opt, w);
    if (st != PL_OK) print_message("loading %s: %s\n", path, pl_error_message());
    assert_int_equal(st, PL_OK);
}

static void assert_same_weights(const PlWeights *a, const PlWeights *b, float add) {
    assert_int_equal(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        const PlWeightTensor *x = &a->tensors[i], *y = pl_weights_find(b, x->name);
        if (!y) print_message("missing %s\n", x->name);
        assert_non_null(y);
        assert_int_equal(x->ndim, y->ndim);
        assert_memory_equal(x->shape, y->shape, sizeof(int64_t) * (size_t)x->ndim);
        int64_t n = pl_weight_tensor_numel(x);
        for (int64_t k = 0; k < n; k++) assert_true(x->data[k] + add == y->data[k]);
    }
}

// Compare every tensor, concatenated in file order, with a float32 reference .npy.
static void assert_matches_reference(const PlWeights *w, const char *ref_rel) {
    char path[4096];
    PlNpyArray ref;
    assert_int_equal(pl_npy_read_f32(fixture(ref_rel, path, sizeof path), 1, &ref), PL_OK);
    const float *r = ref.data;
    int64_t at = 0;
    for (size_t i = 0; i < w->count; i++) {
        int64_t n = pl_weight_tensor_numel(&w->tensors[i]);
        assert_true(at + n <= ref.shape[0]);
        for (int64_t k = 0; k < n; k++) {
            if (memcmp(&w->tensors[i].data[k], &r[at + k], 4) != 0)
                print_message("%s[%lld]: %g vs %g\n", w->tensors[i].name, (long long)k, w->tensors[i].data[k],
                              r[at + k]);
            assert_memory_equal(&w->tensors[i].data[k], &r[at + k], 4);
        }
        at += n;
    }
    assert_int_equal(at, ref.shape[0]);
    pl_npy_free(&ref);
}

static void test_golden_three_formats_identical(void **state) {
    (void)state;
    char p1[4096], p2[4096], p3[4096];
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/model.safetensors", p1);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/model_state.pth", p2);
    PL_TEST_REQUIRE_SHARED("golden/vit4_d96_L2_p16/model_dino_ckpt.pth", p3);
    PlWeights a, b, c;
    load_ok(p1, NULL, &a);
    load_ok(p2, NULL, &b);
    load_ok(p3, NULL, &c);
    assert_string_equal(b.format, "pytorch-zip");
    assert_int_equal(a.count, 30);
    assert_same_weights(&a, &b, 0.0f);
    assert_same_weights(&a, &c, 0.0f);   // teacher, "backbone." stripped, head.* dropped
    assert_int_equal(c.args_patch_size, 16);
    assert_string_equal(c.args_arch, "vit_custom");
    assert_non_null(strstr(c.args_text, "lr=0.0005\n"));
    assert_non_null(strstr(c.args_text, "global_crops_scale=(0.4, 1.0)\n"));
    assert_null(b.args_text);
    pl_weights_free(&a);
    pl_weights_free(&b);
    pl_weights_free(&c);
}

static void test_tiny_formats_match_torch(void **state) {
    (void)state;
    static const char *cases[][2] = {
        {"valid/tiny_state.pth", "valid/tiny_ref.npy"},      {"valid/tiny.safetensors", "valid/tiny_ref.npy"},
        {"valid/tiny_f16.pth", "valid/tiny_f16_ref.npy"},    {"valid/tiny_f16.safetensors", "valid/tiny_f16_ref.npy"},
        {"valid/tiny_bf16.pth", "valid/tiny_bf16_ref.npy"},  {"valid/tiny_bf16.safetensors", "valid/tiny_bf16_ref.npy"},
        {"valid/views.pth", "valid/views_ref.npy"},          {"valid/tiny_zip64.pth", "valid/tiny_ref.npy"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        PlWeights w;
        print_message("checking %s\n", cases[i][0]);
        load_ok(fixture(cases[i][0], path, sizeof path), NULL, &w);
        assert_matches_reference(&w, cases[i][1]);
        if (strstr(cases[i][0], "bf16")) assert_string_equal(w.tensors[0].dtype, "BF16");
        else if (strstr(cases[i][0], "f16")) assert_string_equal(w.tensors[0].dtype, "F16");
        pl_weights_free(&w);
    }
    char path[4096];
    PlWeights w;
    load_ok(fixture("valid/tiny.safetensors", path, sizeof path), NULL, &w);
    assert_int_equal(w.args_heads, 2);
    pl_weights_free(&w);
    // shapes of the strided views
    load_ok(fixture("valid/views.pth", path, sizeof path), NULL, &w);
    const PlWeightTensor *t = pl_weights_find(&w, "permuted");
    assert_int_equal(t->ndim, 4);
    assert_int_equal(t->shape[0], 7);
    assert_int_equal(t->shape[3], 5);
    assert_int_equal(pl_weights_find(&w, "scalar")->ndim, 0);
    assert_string_equal(pl_weights_find(&w, "half_view")->dtype, "F16");
    pl_weights_free(&w);
}

static void test_training_checkpoint_keys(void **state) {
    (void)state;
    char path[4096], ref[4096];
    PlWeights t, s, flat;
    fixture("valid/tiny_dino_ckpt.pth", path, sizeof path);
    load_ok(path, NULL, &t);            // default: teacher
    load_ok(path, "student", &s);       // "module.backbone." stripped
    load_ok(fixture("valid/tiny_state.pth", ref, sizeof ref), "student", &flat);   // key ignored: flat dict
    assert_null(pl_weights_find(&t, "head.mlp.0.weight"));
    assert_null(pl_weights_find(&t, "mlp.0.weight"));
    assert_same_weights(&flat, &t, 0.0f);
    assert_same_weights(&flat, &s, 1.0f);   // the fixture's student = teacher + 1
    assert_string_equal(t.state_dict_key, "teacher");
    assert_string_equal(s.state_dict_key, "student");
    assert_string_equal(flat.state_dict_key, "");
    assert_int_equal(t.args_patch_size, 4);
    assert_string_equal(t.args_arch, "vit_tiny");
    assert_non_null(strstr(t.args_text, "data_path=/data/hpa\n"));
    assert_non_null(strstr(t.args_text, "use_fp16=False\n"));
    pl_weights_free(&t);
    pl_weights_free(&s);
    pl_weights_free(&flat);
    PlWeightsOptions opt = {.checkpoint_key = "ema"};
    PlWeights w;
    assert_int_equal(pl_weights_load(path, &opt, &w), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "no \"ema\" state dict; available keys: student, teacher, optimizer, "
                                               "epoch, args, dino_loss, fp16_scaler"));
    opt.checkpoint_key = "optimizer";
    assert_int_equal(pl_weights_load(path, &opt, &w), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "holds no backbone tensors"));
}

static void test_malformed_corpus(void **state) {
    (void)state;
    static const char *cases[][2] = {
        {"malformed/truncated_zip.pth", "no zip end-of-central-directory record"},
        {"malformed/wrong_magic.pth", "not a model checkpoint"},
        {"malformed/absurd_header.safetensors", "absurd safetensors header length 1152921504606846976"},
        {"malformed/truncated.safetensors", "outside the"},
        {"malformed/os_system.pth", "references posix.system, which could execute code"},
        {"malformed/builtins_eval.pth", "builtin__.eval, which could execute code"},
        {"malformed/posix_system_proto4.pth", "references posix.system"},
        {"malformed/inst_opcode.pth", "forbidden or unsupported pickle opcode 0x69 ('i', INST"},
        {"malformed/unknown_opcode.pth", "opcode 0xff"},
        {"malformed/crc_mismatch.pth", "is corrupt (CRC-32"},
        {"malformed/no_teacher_key.pth", "available keys: model_ema, epoch"},
        {"malformed/view_out_of_range.pth", "tensor a: view (offset 0) reaches element 8 of a 6-element storage"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[4096];
        PlWeights w;
        fixture(cases[i][0], path, sizeof path);
        PlStatus st = pl_weights_load(path, NULL, &w);
        print_message("%s -> %s\n", cases[i][0], pl_error_message());
        assert_int_not_equal(st, PL_OK);
        assert_non_null(strstr(pl_error_message(), cases[i][1]));
        assert_non_null(strstr(pl_error_message(), cases[i][0]));   // names the file
        assert_int_equal(w.count, 0);
    }
    // every prefix of a valid .pth fails cleanly (no crash, no partial result)
    char path[4096];
    char *data;
    size_t size;
    assert_int_equal(pl_file_read_all(fixture("valid/tiny_dino_ckpt.pth", path, sizeof path), 1 << 20, &data, &size),
                     PL_OK);
    for (size_t cut = 0; cut < size; cut += (cut < 64 ? 1 : 97)) {
        PlWeights w;
        assert_int_not_equal(pl_weights_load_memory(data, cut, "cut.pth", NULL, &w), PL_OK);
        assert_int_equal(w.count, 0);
    }
    // single flipped bytes never crash (most are caught by the CRC or the parsers)
    const char *san = getenv("PROTLOC_SANITIZE");
    size_t step = san && strcmp(san, "1") == 0 ? 41 : 13;   // sanitizer builds run ~20x slower
    for (size_t at = 0; at < size; at += step) {
        data[at] ^= 0x5a;
        PlWeights w;
        if (pl_weights_load_memory(data, size, "flip.pth", NULL, &w) == PL_OK) pl_weights_free(&w);
        data[at] ^= 0x5a;
    }
    free(data);
}

static void test_unpickler_values(void **state) {
    (void)state;
    // {'a': [1, -2, 3.5, None, True], 'b': ('x', b'\x00\x01'), 'big': 2**70} in protocol 4 (made by python)
    static const unsigned char pk[] = {
        0x80, 0x04, 0x95, 0x3b, 0, 0, 0, 0, 0, 0, 0, '}', 0x94, '(', 0x8c, 0x01, 'a', 0x94, ']', 0x94, '(', 'K',
        0x01, 'J', 0xfe, 0xff, 0xff, 0xff, 'G', 0x40, 0x0c, 0, 0, 0, 0, 0, 0, 'N', 0x88, 'e', 0x8c, 0x01, 'b',
        0x94, 0x8c, 0x01, 'x', 0x94, 'C', 0x02, 0x00, 0x01, 0x94, 0x86, 0x94, 0x8c, 0x03, 'b', 'i', 'g', 0x94,
        0x8a, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 'u', '.'};
    PlPickle p;
    assert_int_equal(pl_unpickle(pk, sizeof pk, "t", &p), PL_OK);
    const PlPyValue *a = pl_py_dict_get(p.root, "a"), *b = pl_py_dict_get(p.root, "b");
    assert_int_equal(a->kind, PL_PY_LIST);
    assert_int_equal(a->n, 5);
    assert_int_equal(a->items[1]->i, -2);
    assert_true(a->items[2]->f == 3.5);
    char buf[256];
    pl_py_format(a, buf, sizeof buf);
    assert_string_equal(buf, "[1, -2, 3.5, None, True]");
    pl_py_format(b, buf, sizeof buf);
    assert_string_equal(buf, "('x', <2 bytes>)");
    assert_true(pl_py_dict_get(p.root, "big")->f == ldexp(1.0, 70));
    pl_pickle_free(&p);
    // stack underflow, missing STOP, bad memo index
    assert_int_equal(pl_unpickle((const unsigned char *)"\x80\x02t.", 4, "t", &p), PL_ERR_FORMAT);
    assert_int_equal(pl_unpickle((const unsigned char *)"\x80\x02K\x01", 4, "t", &p), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "truncated pickle"));
    assert_int_equal(pl_unpickle((const unsigned char *)"\x80\x02h\x07.", 5, "t", &p), PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "memo index 7 was never stored"));
    assert_int_equal(pl_unpickle((const unsigned char *)"\x80\x02" "csubprocess\nPopen\n.", 22, "t", &p),
                     PL_ERR_FORMAT);
    assert_non_null(strstr(pl_error_message(), "subprocess.Popen"));
    // an unknown class becomes an inert record with its BUILD state readable
    static const char rec[] = "\x80\x02" "cargparse\nNamespace\n)\x81}X\x01\x00\x00\x00kK\x05sb.";
    assert_int_equal(pl_unpickle((const unsigned char *)rec, sizeof rec - 1, "t", &p), PL_OK);
    assert_int_equal(p.root->kind, PL_PY_RECORD);
    assert_string_equal(p.root->type->s, "argparse.Namespace");
    assert_int_equal(pl_py_dict_get(p.root->state, "k")->i, 5);
    pl_pickle_free(&p);
    // a self-referencing list (cycle) is built and freed without recursion
    PlStatus cyc = pl_unpickle((const unsigned char *)"\x80\x02]q\x00h\x00" "a.", 9, "t", &p);
    if (cyc) print_message("%s\n", pl_error_message());
    assert_int_equal(cyc, PL_OK);
    pl_py_format(p.root, buf, sizeof buf);
    pl_pickle_free(&p);
    assert_int_equal(pl_crc32(0, "123456789", 9), 0xcbf43926u);
    // bombs: a stack of 5 million DUPs of one value, 5 million Nones
    size_t n = 5000000;
    unsigned char *bomb = malloc(n + 4);
    memcpy(bomb, "\x80\x02N", 3);
    memset(bomb + 3, '2', n - 4);
    bomb[n - 1] = '.';
    assert_int_equal(pl_unpickle(bomb, n, "bomb", &p), PL_ERR_LIMIT);
    assert_non_null(strstr(pl_error_message(), "pickle stack deeper than"));
    // 4 million live values before the limit: under ASan + UBSan with ctest's LSAN_OPTIONS (fast_unwind_on_malloc=0)
    // that takes 77 s and 1.1 GB (measured; 0.6 s for the rest of this program), so the sanitizer build reports this
    // part skipped (exit 77) instead of passing without it; the Release build runs it
    const char *san = getenv("PROTLOC_SANITIZE");
    if (san && strcmp(san, "1") == 0) {
        pl_test_skip_part("the 4-million-value pickle bomb: too slow under the sanitizers (77 s); the Release build "
                          "checks it");
    } else {
        memset(bomb + 2, 'N', n - 3);
        assert_int_equal(pl_unpickle(bomb, n, "bomb", &p), PL_ERR_LIMIT);
        assert_non_null(strstr(pl_error_message(), "values: refusing to build more"));
    }
    free(bomb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_three_formats_identical),
        cmocka_unit_test(test_tiny_formats_match_torch),
        cmocka_unit_test(test_training_checkpoint_keys),
        cmocka_unit_test(test_malformed_corpus),
        cmocka_unit_test(test_unpickler_values),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
