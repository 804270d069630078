// Unit tests for the TIFF/PNG decoders and writers: every layout, python fixtures, real samples, bad-file corpus.
#include "pl_testutil.h"

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include "pl_decode.h"
#include "pl_error.h"
#include "pl_image.h"
#include "pl_image_write.h"

// The closed-form patterns of tests/fixtures/images/make_image_fixtures.py.
static double pattern(const char *kind, int c, int y, int x) {
    if (strcmp(kind, "u8") == 0) return (double)((c * 97 + y * 31 + x * 7) % 256);
    if (strcmp(kind, "u16") == 0) return (double)((c * 9973 + y * 1031 + x * 257) % 65536);
    if (strcmp(kind, "u32") == 0)
        return (double)(float)(((uint64_t)c * 100003u + (uint64_t)y * 65537u + (uint64_t)x * 4099u) % 4294967296u);
    return (c + 1) * 0.5 + y * 0.25 - x * 0.125;
}

static void expect_pattern(const PlImage *img, const char *kind, int c_img, int c_pat, int H, int W) {
    assert_int_equal(img->height, H);
    assert_int_equal(img->width, W);
    const float *p = pl_image_channel(img, c_img);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if ((double)p[y * W + x] != pattern(kind, c_pat, y, x)) {
                print_error("%s channel %d at (%d,%d): got %f want %f\n", kind, c_img, y, x, (double)p[y * W + x],
                            pattern(kind, c_pat, y, x));
                fail();
            }
}

static const char *fixture(const char *name, char *buf, size_t n) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/images/%s", name);
    return pl_test_source_path(rel, buf, n);
}

// ---- fixtures written by python tifffile / a hand PNG encoder ----
static void test_tifffile_fixtures(void **state) {
    (void)state;
    static const struct { const char *file; const char *kind; int channels, bits, is_float; } cases[] = {
        {"opencell_like_2page.tif", "u16", 2, 16, 0}, {"planar_rgb8.tif", "u8", 3, 8, 0},
        {"contig_rgb16.tif", "u16", 3, 16, 0},        {"tiled_deflate_u16.tif", "u16", 1, 16, 0},
        {"tiled_planar_u8.tif", "u8", 2, 8, 0},       {"bigtiff_u16.tif", "u16", 2, 16, 0},
        {"deflate_predictor_u8.tif", "u8", 1, 8, 0},  {"float32.tif", "f32", 1, 32, 1},
        {"uint32.tif", "u32", 1, 32, 0},              {"grey8.png", "u8", 1, 8, 0},
        {"bigendian_u16.tif", "u16", 2, 16, 0},
        {"grey16.png", "u16", 1, 16, 0},              {"grey_alpha8.png", "u8", 2, 8, 0},
        {"rgb8.png", "u8", 3, 8, 0},                  {"rgb16.png", "u16", 3, 16, 0},
        {"rgba16.png", "u16", 4, 16, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1024], ref[1100];
        fixture(cases[i].file, path, sizeof path);
        PlImageInfo info;
        PL_ASSERT_OK(pl_image_probe(path, NULL, &info));
        assert_int_equal(info.channels, cases[i].channels);
        assert_int_equal(info.bits, cases[i].bits);
        assert_int_equal(info.height, 40);
        assert_int_equal(info.width, 48);
        PlImage all;
        PL_ASSERT_OK(pl_image_read_all(path, NULL, &all));
        assert_int_equal(all.channels, cases[i].channels);
        assert_int_equal(all.bits, cases[i].bits);
        assert_int_equal(all.is_float, cases[i].is_float);
        for (int c = 0; c < cases[i].channels; c++) {
            expect_pattern(&all, cases[i].kind, c, c, 40, 48);
            PlImage one;
            snprintf(ref, sizeof ref, "%s#%d", path, c);
            assert_int_equal(pl_image_read(ref, NULL, &one), PL_OK);
            assert_int_equal(one.channels, 1);
            expect_pattern(&one, cases[i].kind, 0, c, 40, 48);
            pl_image_free(&one);
        }
        pl_image_free(&all);
        // one past the last channel is a clear error naming the file
        PlImage bad;
        snprintf(ref, sizeof ref, "%s#%d", path, cases[i].channels);
        assert_int_equal(pl_image_read(ref, NULL, &bad), PL_ERR_ARG);
        assert_non_null(strstr(pl_error_message(), cases[i].file));
        assert_non_null(strstr(pl_error_message(), "channel"));
    }
}

// ---- files written by libtiff directly in the test: every layout and codec ----
typedef struct TiffSpec { int spp, planar_separate, tiled, bigtiff, bits, is_float; uint16_t codec; } TiffSpec;

static double test_value(const TiffSpec *s, int c, int y, int x) {
    if (s->is_float) return pattern("f32", c, y, x);
    return pattern(s->bits == 8 ? "u8" : s->bits == 16 ? "u16" : "u32", c, y, x);
}

static void put_sample(unsigned char *p, const TiffSpec *s, double v) {
    if (s->is_float) *(float *)(void *)p = (float)v;
    else if (s->bits == 8) *p = (uint8_t)v;
    else if (s->bits == 16) *(uint16_t *)(void *)p = (uint16_t)v;
    else *(uint32_t *)(void *)p = (uint32_t)v;
}

static void write_libtiff(const char *path, const TiffSpec *s, int pages, int H, int W) {
    TIFF *t = TIFFOpen(path, s->bigtiff ? "w8" : "w");
    assert_non_null(t);
    size_t bps = (size_t)s->bits / 8;
    for (int pg = 0; pg < pages; pg++) {
        TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)W);
        TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)H);
        TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)s->spp);
        TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)s->bits);
        TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, (uint16_t)(s->is_float ? SAMPLEFORMAT_IEEEFP : SAMPLEFORMAT_UINT));
        TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)PHOTOMETRIC_MINISBLACK);
        TIFFSetField(t, TIFFTAG_PLANARCONFIG, (uint16_t)(s->planar_separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG));
        TIFFSetField(t, TIFFTAG_COMPRESSION, s->codec);
        if (s->codec == COMPRESSION_LZW || s->codec == COMPRESSION_ADOBE_DEFLATE || s->codec == COMPRESSION_ZSTD)
            TIFFSetField(t, TIFFTAG_PREDICTOR, (uint16_t)(s->is_float ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL));
        if (s->spp > 1) {
            uint16_t extra[8] = {0};
            TIFFSetField(t, TIFFTAG_EXTRASAMPLES, (uint16_t)(s->spp - 1), extra);
        }
        int nplanes = s->planar_separate ? s->spp : 1, per = s->planar_separate ? 1 : s->spp;
        if (s->tiled) {
            const int tw = 16, th = 16;
            TIFFSetField(t, TIFFTAG_TILEWIDTH, (uint32_t)tw);
            TIFFSetField(t, TIFFTAG_TILELENGTH, (uint32_t)th);
            unsigned char *tile = calloc((size_t)tw * th * per, bps);
            for (int pl = 0; pl < nplanes; pl++)
                for (int ty = 0; ty < H; ty += th)
                    for (int tx = 0; tx < W; tx += tw) {
                        memset(tile, 0, (size_t)tw * th * per * bps);
                        for (int r = 0; r < th && ty + r < H; r++)
                            for (int q = 0; q < tw && tx + q < W; q++)
                                for (int k = 0; k < per; k++) {
                                    int ch = pg * s->spp + (s->planar_separate ? pl : k);
                                    put_sample(tile + ((size_t)(r * tw + q) * per + k) * bps, s,
                                               test_value(s, ch, ty + r, tx + q));
                                }
                        assert_true(TIFFWriteTile(t, tile, (uint32_t)tx, (uint32_t)ty, 0, (uint16_t)pl) >= 0);
                    }
            free(tile);
        } else {
            TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, (uint32_t)5);
            unsigned char *row = calloc((size_t)W * per, bps);
            for (int pl = 0; pl < nplanes; pl++)
                for (int y = 0; y < H; y++) {
                    for (int x = 0; x < W; x++)
                        for (int k = 0; k < per; k++) {
                            int ch = pg * s->spp + (s->planar_separate ? pl : k);
                            put_sample(row + ((size_t)x * per + k) * bps, s, test_value(s, ch, y, x));
                        }
                    assert_true(TIFFWriteScanline(t, row, (uint32_t)y, (uint16_t)pl) >= 0);
                }
            free(row);
        }
        assert_true(TIFFWriteDirectory(t));
    }
    TIFFClose(t);
}

static void test_libtiff_layouts(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    const uint16_t codecs[] = {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE, COMPRESSION_ZSTD,
                               COMPRESSION_PACKBITS};
    const int H = 37, W = 41;
    int n = 0;
    for (size_t ci = 0; ci < sizeof codecs / sizeof codecs[0]; ci++)
        for (int layout = 0; layout < 12; layout++) {
            TiffSpec s = {.spp = (layout % 3 == 0) ? 1 : 3, .planar_separate = (layout % 3) == 2,
                          .tiled = (layout / 3) % 2, .bigtiff = layout >= 6, .codec = codecs[ci]};
            int depth = (layout + (int)ci) % 4;   // rotate depths through the layouts
            s.bits = depth == 0 ? 8 : depth == 1 ? 16 : 32;
            s.is_float = depth == 3;
            int pages = 1 + layout % 2;
            char path[1200];
            snprintf(path, sizeof path, "%s/l%zu_%d.tif", dir, ci, layout);
            write_libtiff(path, &s, pages, H, W);
            PlImage all;
            PL_ASSERT_OK(pl_image_read_all(path, NULL, &all));
            assert_int_equal(all.channels, pages * s.spp);
            assert_int_equal(all.bits, s.bits);
            for (int c = 0; c < all.channels; c++) {
                const float *p = pl_image_channel(&all, c);
                for (int y = 0; y < H; y++)
                    for (int x = 0; x < W; x++) {
                        double want = (double)(float)test_value(&s, c, y, x);
                        if ((double)p[y * W + x] != want) {
                            print_error("%s: ch %d (%d,%d) got %f want %f\n", path, c, y, x, (double)p[y * W + x], want);
                            fail();
                        }
                    }
                char ref[1300];
                snprintf(ref, sizeof ref, "%s#%d", path, c);
                PlImage one = {0};
                assert_int_equal(pl_image_read_reuse(ref, NULL, &one), PL_OK);
                assert_memory_equal(one.data, p, (size_t)H * W * sizeof(float));
                pl_image_free(&one);
            }
            pl_image_free(&all);
            n++;
        }
    assert_int_equal(n, 60);
    pl_test_rmtree(dir);
    free(dir);
}

// ---- our writers round-trip exactly through our readers ----
static void test_writers_round_trip(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    PlImage img;
    assert_int_equal(pl_image_alloc(&img, 3, 33, 70), PL_OK);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 33 * 70; i++) pl_image_channel(&img, c)[i] = (float)((c * 131 + i * 17) % 256);
    const char *names[] = {"none", "lzw", "deflate", "zstd", "packbits"};
    for (int k = 0; k < 5; k++)
        for (int bits = 8; bits <= 32; bits *= 2) {
            PlTiffCompression comp;
            assert_int_equal(pl_tiff_compression_parse(names[k], &comp), PL_OK);
            char path[1200];
            snprintf(path, sizeof path, "%s/w_%s_%d.tif", dir, names[k], bits);
            PL_ASSERT_OK(pl_tiff_write(path, &img, bits, comp));
            PlImage back;
            assert_int_equal(pl_image_read_all(path, NULL, &back), PL_OK);
            assert_int_equal(back.channels, 3);
            assert_int_equal(back.bits, bits);
            assert_memory_equal(back.data, img.data, 3 * 33 * 70 * sizeof(float));
            pl_image_free(&back);
        }
    // 16-bit labels and PNG channels
    for (int i = 0; i < 33 * 70; i++) img.data[i] = (float)(i * 29 % 65536);
    char path[1200];
    snprintf(path, sizeof path, "%s/labels.png", dir);
    assert_int_equal(pl_png_write(path, &img, 0, 16), PL_OK);
    PlImage back;
    assert_int_equal(pl_image_read(path, NULL, &back), PL_OK);
    assert_int_equal(back.bits, 16);
    assert_memory_equal(back.data, img.data, 33 * 70 * sizeof(float));
    pl_image_free(&back);
    snprintf(path, sizeof path, "%s/rgb.png", dir);
    for (int i = 0; i < 33 * 70; i++) img.data[i] = (float)(i % 256);
    assert_int_equal(pl_png_write_color(path, &img, 0, 3, 8), PL_OK);
    assert_int_equal(pl_image_read_all(path, NULL, &back), PL_OK);
    assert_int_equal(back.channels, 3);
    assert_memory_equal(back.data, img.data, 3 * 33 * 70 * sizeof(float));
    pl_image_free(&back);
    // clamping and rounding: -5 → 0, 300.4 → 255, 2.5 → 3, NaN → 0
    img.data[0] = -5.0f, img.data[1] = 300.4f, img.data[2] = 2.5f, img.data[3] = NAN;
    snprintf(path, sizeof path, "%s/clamp.png", dir);
    assert_int_equal(pl_png_write(path, &img, 0, 8), PL_OK);
    assert_int_equal(pl_image_read(path, NULL, &back), PL_OK);
    assert_true(back.data[0] == 0.0f && back.data[1] == 255.0f && back.data[2] == 3.0f && back.data[3] == 0.0f);
    pl_image_free(&back);
    // bad arguments leave nothing behind
    snprintf(path, sizeof path, "%s/bad.tif", dir);
    assert_int_equal(pl_tiff_write(path, &img, 12, PL_TIFF_NONE), PL_ERR_ARG);
    assert_int_equal(pl_png_write(path, &img, 5, 8), PL_ERR_ARG);
    snprintf(path, sizeof path, "%s/no/such/dir/x.tif", dir);
    assert_int_not_equal(pl_tiff_write(path, &img, 8, PL_TIFF_NONE), PL_OK);
    assert_non_null(strstr(pl_error_message(), "x.tif"));
    struct stat sb;
    assert_int_not_equal(stat(path, &sb), 0);
    PlTiffCompression comp;
    assert_int_equal(pl_tiff_compression_parse("jpeg", &comp), PL_ERR_ARG);
    pl_image_free(&img);
    pl_test_rmtree(dir);
    free(dir);
}

static void test_ref_parse(void **state) {
    (void)state;
    char *p;
    int c;
    assert_int_equal(pl_image_ref_parse("a/b.tif#12", &p, &c), PL_OK);
    assert_string_equal(p, "a/b.tif");
    assert_int_equal(c, 12);
    free(p);
    assert_int_equal(pl_image_ref_parse("a/b#x.tif", &p, &c), PL_OK);
    assert_string_equal(p, "a/b#x.tif");
    assert_int_equal(c, 0);
    free(p);
    assert_int_equal(pl_image_ref_parse("img.png", &p, &c), PL_OK);
    assert_int_equal(c, 0);
    free(p);
    assert_int_equal(pl_image_ref_parse("#3", &p, &c), PL_ERR_ARG);
    assert_int_equal(pl_image_ref_parse("", &p, &c), PL_ERR_ARG);
}

// An Adam7-interlaced 16-bit RGBA PNG written by libpng directly (exercises the interlaced read path).
static void write_interlaced_png(const char *path, int H, int W) {
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail();
    png_init_io(png, fp);
    png_set_IHDR(png, info, (png_uint_32)W, (png_uint_32)H, 16, PNG_COLOR_TYPE_RGB_ALPHA, PNG_INTERLACE_ADAM7,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_set_swap(png);
    uint16_t *rows = malloc((size_t)H * W * 4 * sizeof(uint16_t));
    png_bytep *ptrs = malloc((size_t)H * sizeof(png_bytep));
    for (int y = 0; y < H; y++) {
        for (int x = 0; x < W; x++)
            for (int c = 0; c < 4; c++) rows[((size_t)y * W + x) * 4 + c] = (uint16_t)pattern("u16", c, y, x);
        ptrs[y] = (png_bytep)(rows + (size_t)y * W * 4);
    }
    png_write_image(png, ptrs);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(fp);
    free(rows);
    free(ptrs);
}

static void test_png_interlaced_and_rgba16(void **state) {
    (void)state;
    char *dir = pl_test_tmpdir();
    char path[1200], ref[1300];
    snprintf(path, sizeof path, "%s/adam7.png", dir);
    write_interlaced_png(path, 37, 29);
    PlImage img;
    PL_ASSERT_OK(pl_image_read_all(path, NULL, &img));
    assert_int_equal(img.channels, 4);
    assert_int_equal(img.bits, 16);
    for (int c = 0; c < 4; c++) expect_pattern(&img, "u16", c, c, 37, 29);
    snprintf(ref, sizeof ref, "%s#3", path);
    PlImage one;
    assert_int_equal(pl_image_read(ref, NULL, &one), PL_OK);
    expect_pattern(&one, "u16", 0, 3, 37, 29);
    pl_image_free(&one);
    // our RGBA 16-bit writer round-trips through the reader
    snprintf(path, sizeof path, "%s/rgba16.png", dir);
    assert_int_equal(pl_png_write_color(path, &img, 0, 4, 16), PL_OK);
    PlImage back;
    assert_int_equal(pl_image_read_all(path, NULL, &back), PL_OK);
    assert_int_equal(back.channels, 4);
    assert_memory_equal(back.data, img.data, (size_t)4 * 37 * 29 * sizeof(float));
    pl_image_free(&back);
    pl_image_free(&img);
    pl_test_rmtree(dir);
    free(dir);
}

// ---- the real samples ----
static void test_real_samples(void **state) {
    (void)state;
    static const char *fovs[] = {"FOV_00007_RAW.tif", "FOV_00027_RAW.tif", "FOV_00061_RAW.tif", "FOV_00076_RAW.tif",
                                 "FOV_00156_RAW.tif", "FOV_01036_RAW.tif", "FOV_01176_RAW.tif"};
    char buf[1024];
    PlImage img = {0};
    for (size_t i = 0; i < 7; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "samples/opencell_hoechst_proj/%s", fovs[i]);
        PL_TEST_REQUIRE_SHARED(rel, buf);
        PL_ASSERT_OK(pl_image_read_reuse(buf, NULL, &img));
        assert_int_equal(img.channels, 1);
        assert_int_equal(img.height, 1024);
        assert_int_equal(img.width, 1024);
        assert_int_equal(img.bits, 16);
        float mx = 0;
        for (size_t k = 0; k < 1024 * 1024; k++) mx = img.data[k] > mx ? img.data[k] : mx;
        assert_true(mx > 255.0f && mx <= 65535.0f);   // real 16-bit content, not 8-bit data in a 16-bit file
    }
    pl_image_free(&img);
    PL_TEST_REQUIRE_SHARED("samples/hpa_1000_A12_2/1000_A12_2_green.png", buf);
    assert_int_equal(pl_image_read(buf, NULL, &img), PL_OK);
    assert_int_equal(img.height, 2048);
    assert_int_equal(img.width, 2048);
    assert_int_equal(img.bits, 16);
    pl_image_free(&img);
    PL_TEST_REQUIRE_SHARED("samples/hpa_1000_A12_2/1000_A12_2_nucleimask.png", buf);
    assert_int_equal(pl_image_read(buf, NULL, &img), PL_OK);
    assert_int_equal(img.height, 2048);
    float mx = 0;
    for (size_t k = 0; k < 2048u * 2048u; k++) mx = img.data[k] > mx ? img.data[k] : mx;
    assert_true(mx == 21.0f);   // 21 labelled nuclei, labels 1..21
    pl_image_free(&img);
}

// ---- bad-file corpus: clear per-file error, never a crash ----
static void test_bad_corpus(void **state) {
    (void)state;
    static const struct { const char *file; PlStatus code; const char *why; } cases[] = {
        {"zero_bytes.tif", PL_ERR_FORMAT, "empty file"},
        {"zero_bytes.png", PL_ERR_FORMAT, "empty file"},
        {"not_an_image.tif", PL_ERR_FORMAT, "not a TIFF or PNG"},
        {"truncated.tif", PL_ERR_FORMAT, "truncated"},
        {"truncated.png", PL_ERR_FORMAT, "truncated"},
        {"wrong_dims.tif", PL_ERR_FORMAT, "truncated or corrupt"},
        {"bilevel.tif", PL_ERR_UNSUPPORTED, "1-bit"},
        {"palette.tif", PL_ERR_UNSUPPORTED, "palette"},
        {"palette.png", PL_ERR_UNSUPPORTED, "palette"},
        {"nan_float.tif", PL_ERR_NUMERIC, "(NaN) at row 3, column 5"},
        {"huge_declared.tif", PL_ERR_LIMIT, "1000000 x 1000000"},
        {"huge_declared.png", PL_ERR_LIMIT, "1000000 x 1000000"},
        {"signed16.tif", PL_ERR_UNSUPPORTED, "signed integer"},
        {"does_not_exist.tif", PL_ERR_IO, "cannot open"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[256], path[1024];
        snprintf(rel, sizeof rel, "bad/%s", cases[i].file);
        fixture(rel, path, sizeof path);
        PlImage img = {0};
        PlStatus st = pl_image_read(path, NULL, &img);
        print_message("%-20s -> %s\n", cases[i].file, pl_error_message());
        assert_int_equal(st, cases[i].code);
        assert_null(img.data);
        assert_non_null(strstr(pl_error_message(), cases[i].file));
        assert_non_null(strstr(pl_error_message(), cases[i].why));
        st = pl_image_read_all(path, NULL, &img);
        assert_int_equal(st, cases[i].code);
        assert_null(img.data);
    }
    // NaN policy "zero" accepts the file and replaces the one bad sample
    char path[1024];
    fixture("bad/nan_float.tif", path, sizeof path);
    PlDecodeLimits lim;
    pl_decode_limits_default(&lim);
    lim.nan_policy = PL_NAN_ZERO;
    PlImage img;
    assert_int_equal(pl_image_read(path, &lim, &img), PL_OK);
    assert_true(img.data[3 * 48 + 5] == 0.0f);
    assert_true(img.data[3 * 48 + 6] == (float)pattern("f32", 0, 3, 6));
    pl_image_free(&img);
    // a smaller configured limit rejects a good file before decoding it
    fixture("grey16.png", path, sizeof path);
    lim.max_pixels = 1000;
    assert_int_equal(pl_image_read(path, &lim, &img), PL_ERR_LIMIT);
    assert_non_null(strstr(pl_error_message(), "limit"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_parse),        cmocka_unit_test(test_tifffile_fixtures),
        cmocka_unit_test(test_libtiff_layouts),  cmocka_unit_test(test_writers_round_trip),
        cmocka_unit_test(test_bad_corpus),       cmocka_unit_test(test_real_samples),
        cmocka_unit_test(test_png_interlaced_and_rgba16),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
