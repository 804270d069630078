// Unit tests of the flash-attention kernels (pl_flash_attention.h): forward and backward against a double-precision
// softmax attention, a scalar model of the exact FP32 and BF16 forward arithmetic (bit for bit), every dispatch level
// the CPU has against the baseline (bit for bit, both precisions, forward and backward), odd sizes and strides, and
// the output stride / lse = NULL independence of o.
#include "pl_testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl_bf16.h"
#include "pl_dispatch.h"
#include "pl_flash_attention.h"

static const int sizes_t[] = {1, 7, 197, 300};
static const int sizes_hd[] = {16, 24, 64};
#define NT (int)(sizeof sizes_t / sizeof sizes_t[0])
#define NHD (int)(sizeof sizes_hd / sizeof sizes_hd[0])

static uint64_t rng = 0x2545f4914f6cdd1dULL;   // the test data stream (pl_test_urand)
static float urand(void) { return pl_test_urand(&rng); }

// One attention problem: q, k, v slices of (T, 3 * hd + 5) rows (ld > 3 hd), o and dout with ldo = hd + 3.
typedef struct Prob {
    int T, hd, ld, ldo;
    float scale;
    float *qkv, *q, *k, *v, *dout;
    void *scratch;
} Prob;

static void prob_make(Prob *p, int T, int hd, float qamp) {
    p->T = T, p->hd = hd, p->ld = 3 * hd + 5, p->ldo = hd + 3;
    p->scale = 1.0f / sqrtf((float)hd);
    p->qkv = malloc(sizeof(float) * (size_t)T * p->ld);
    p->dout = malloc(sizeof(float) * (size_t)T * p->ldo);
    assert_non_null(p->qkv);
    assert_non_null(p->dout);
    for (size_t i = 0; i < (size_t)T * p->ld; i++) p->qkv[i] = 2.0f * urand();
    for (int i = 0; i < T; i++)
        for (int d = 0; d < hd; d++) p->qkv[(size_t)i * p->ld + d] *= qamp;   // sharper softmax: more rescaling
    for (size_t i = 0; i < (size_t)T * p->ldo; i++) p->dout[i] = urand();
    p->q = p->qkv, p->k = p->qkv + hd, p->v = p->qkv + 2 * hd;
    size_t n = pl_flash_attention_scratch_bytes(T, hd, PL_PRECISION_FP32);
    size_t nb = pl_flash_attention_scratch_bytes(T, hd, PL_PRECISION_BF16);
    p->scratch = aligned_alloc(64, ((n > nb ? n : nb) + 63) / 64 * 64);
    assert_non_null(p->scratch);
}

static void prob_free(Prob *p) {
    free(p->qkv);
    free(p->dout);
    free(p->scratch);
}

static float *fbuf(size_t n) {
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

static float bf(float x) {   // the kernel's BF16 operand rounding: flush |x| < 2^-56, round to nearest even
    if (fabsf(x) < 0x1p-56f) x = copysignf(0.0f, x);
    return pl_bf16_to_f32(pl_bf16_from_f32(x));
}

// Double reference: probabilities P (T, T), o (T, hd), lse (T). bf16 != 0 rounds q, k, v first.
static void ref_forward(const Prob *p, int bf16, double *P, double *o, double *lse) {
    const int T = p->T, hd = p->hd;
    for (int i = 0; i < T; i++) {
        double m = -INFINITY, *row = P + (size_t)i * T;
        for (int j = 0; j < T; j++) {
            double s = 0.0;
            for (int d = 0; d < hd; d++) {
                float a = p->q[(size_t)i * p->ld + d], b = p->k[(size_t)j * p->ld + d];
                s += bf16 ? (double)bf(a) * bf(b) : (double)a * b;
            }
            row[j] = s * p->scale;
            m = row[j] > m ? row[j] : m;
        }
        double l = 0.0;
        for (int j = 0; j < T; j++) l += exp(row[j] - m);
        lse[i] = m + log(l);
        for (int j = 0; j < T; j++) row[j] = exp(row[j] - m) / l;
        for (int d = 0; d < hd; d++) {
            double acc = 0.0;
            for (int j = 0; j < T; j++) {
                float vv = p->v[(size_t)j * p->ld + d];
                acc += row[j] * (bf16 ? bf(vv) : vv);
            }
            o[(size_t)i * hd + d] = acc;
        }
    }
}

// Scalar model of the kernel's forward arithmetic (pl_flash_attention_body.h) for one query row: key blocks of 64,
// scores as one fma chain (FP32: over d; BF16: over pairs, odd element first), 16 lane partial sums of p, P rounded
// to BF16 for the PV product, each block's PV sum started from zero and folded in as fma(O, alpha, sum).
static void model_row(const Prob *p, int bf16, int i, float *o, float *lse) {
    const int T = p->T, hd = p->hd;
    float m = -INFINITY, lanes[16] = {0}, O[256] = {0};
    for (int k0 = 0; k0 < T; k0 += 64) {
        int nk = T - k0 < 64 ? T - k0 : 64;
        float s[64], pr[64];
        for (int j = 0; j < nk; j++) {
            const float *qr = p->q + (size_t)i * p->ld, *kr = p->k + (size_t)(k0 + j) * p->ld;
            float acc = 0.0f;
            for (int d = 0; d < hd; d += bf16 ? 2 : 1) {
                if (!bf16) {
                    acc = fmaf(qr[d], kr[d], acc);
                    continue;
                }
                float qo = d + 1 < hd ? bf(qr[d + 1]) : 0.0f, ko = d + 1 < hd ? bf(kr[d + 1]) : 0.0f;
                acc = fmaf(qo, ko, acc);
                acc = fmaf(bf(qr[d]), bf(kr[d]), acc);
            }
            s[j] = acc * p->scale;
        }
        float bm = -INFINITY;
        for (int j = 0; j < nk; j++) bm = s[j] > bm ? s[j] : bm;
        float mn = m > bm ? m : bm, alpha = pl_flash_attention_exp(m - mn);
        for (int l = 0; l < 16; l++) lanes[l] *= alpha;
        for (int j = 0; j < 64; j++) {
            pr[j] = j < nk ? pl_flash_attention_exp(s[j] - mn) : 0.0f;
            lanes[j % 16] += pr[j];
            if (bf16) pr[j] = bf(pr[j]);
        }
        for (int d = 0; d < hd; d++) {
            float acc = 0.0f;
            for (int j = 0; j < nk; j += bf16 ? 2 : 1) {
                float vo = k0 + j + 1 < T ? bf(p->v[(size_t)(k0 + j + 1) * p->ld + d]) : 0.0f;
                if (!bf16) {
                    acc = fmaf(pr[j], p->v[(size_t)(k0 + j) * p->ld + d], acc);
                    continue;
                }
                acc = fmaf(pr[j + 1], vo, acc);
                acc = fmaf(pr[j], bf(p->v[(size_t)(k0 + j) * p->ld + d]), acc);
            }
            O[d] = fmaf(O[d], alpha, acc);
        }
        m = mn;
    }
    float l = 0.0f;
    for (int j = 0; j < 16; j++) l += lanes[j];
    for (int d = 0; d < hd; d++) o[d] = O[d] / l;
    *lse = m + (float)log((double)l);
}

static void run_forward(const Prob *p, PlPrecision prec, float *o, float *lse) {
    pl_flash_attention_forward(p->T, p->hd, p->scale, p->q, p->k, p->v, p->ld, o, p->ldo, lse, prec, p->scratch);
}

static void use_best(void) {   // back to the best level this CPU runs
    for (int lv = PL_CPU_AVX512_BF16; lv >= PL_CPU_BASELINE; lv--)
        if (pl_flash_attention_use((PlCpuLevel)lv) == PL_OK) return;
}

// Each level's forward and backward against the baseline's, bit for bit; returns the baseline's outputs. The levels
// checked are those the CPU has (pl_flash_attention_best_level); a level the CPU has but the kernels refuse fails, and so does
// one the CPU lacks but the kernels accept.
static void check_levels(const Prob *p, PlPrecision prec, float *o, float *lse, float *dqkv) {
    const int T = p->T;
    const size_t no = (size_t)T * p->ldo, ng = (size_t)T * p->ld;
    float *o2 = fbuf(no), *lse2 = fbuf((size_t)T), *g2 = fbuf(ng);
    PL_ASSERT_OK(pl_flash_attention_use(PL_CPU_BASELINE));
    run_forward(p, prec, o, lse);
    pl_flash_attention_backward(T, p->hd, p->scale, p->q, p->k, p->v, p->ld, o, p->dout, p->ldo, lse, dqkv,
                                dqkv + p->hd, dqkv + 2 * p->hd, prec, p->scratch);
    const PlCpuLevel best = pl_flash_attention_best_level();
    for (int lv = PL_CPU_AVX2; lv <= PL_CPU_AVX512_BF16; lv++) {
        PlStatus st = pl_flash_attention_use((PlCpuLevel)lv);
        if (lv > (int)best) {   // not this CPU's level: it must be refused, and is not checked here
            if (st != PL_ERR_UNSUPPORTED)
                fail_msg("level %s accepted (%s) on a CPU whose best is %s", pl_cpu_level_name((PlCpuLevel)lv),
                         pl_status_name(st), pl_cpu_level_name(best));
            continue;
        }
        if (st != PL_OK)
            fail_msg("level %s refused on a CPU that runs it (%s): %s", pl_cpu_level_name((PlCpuLevel)lv),
                     pl_status_name(st), pl_error_message());
        memcpy(o2, o, no * sizeof(float));   // same padding columns, so whole buffers compare
        memcpy(g2, dqkv, ng * sizeof(float));
        run_forward(p, prec, o2, lse2);
        pl_flash_attention_backward(T, p->hd, p->scale, p->q, p->k, p->v, p->ld, o2, p->dout, p->ldo, lse2, g2,
                                    g2 + p->hd, g2 + 2 * p->hd, prec, p->scratch);
        if (memcmp(o, o2, no * sizeof(float)) || memcmp(lse, lse2, (size_t)T * sizeof(float)) ||
            memcmp(dqkv, g2, ng * sizeof(float)))
            fail_msg("level %s differs from baseline (T %d, hd %d, %s)", pl_cpu_level_name((PlCpuLevel)lv), T, p->hd,
                     pl_precision_name(prec));
    }
    use_best();
    free(o2);
    free(lse2);
    free(g2);
}


// max |a - b| over (T, hd) with a of row stride lda, relative to max(floor, max |b|).
static double rel_err(const float *a, int lda, const double *b, int T, int hd, double floor) {
    double e = 0.0, mx = floor;
    for (int i = 0; i < T; i++)
        for (int d = 0; d < hd; d++) {
            double diff = fabs((double)a[(size_t)i * lda + d] - b[(size_t)i * hd + d]);
            e = diff > e ? diff : e;
            mx = fabs(b[(size_t)i * hd + d]) > mx ? fabs(b[(size_t)i * hd + d]) : mx;
        }
    return e / mx;
}

// FP32 and BF16 forward against the double reference (BF16: on BF16-rounded q, k, v). FP32 tolerance 2e-6 * amp of
// the largest output: a few float ulps of accumulated rounding, plus the float rounding of the scores (|s| grows
// with amp) that exp turns into a relative error of P. BF16 tolerance 6e-3: the only rounding left against the
// rounded-input reference is P's (relative <= 2^-9 per probability, so |sum (P' - P) v| <= 2^-9 max|v| ~ 2e-3 max|v|,
// and max|o| is a fair fraction of max|v| here), plus FP32 noise; a wrong pairing or a lost rescale is off by O(1).
static void test_forward_reference(void **state) {
    (void)state;
    for (int a = 0; a < NT; a++)
        for (int b = 0; b < NHD; b++)
            for (int amp = 1; amp <= 4; amp += 3) {
                Prob p;
                prob_make(&p, sizes_t[a], sizes_hd[b], (float)amp);
                const int T = p.T, hd = p.hd;
                double *P = malloc(sizeof(double) * (size_t)T * T), *ro = malloc(sizeof(double) * (size_t)T * hd);
                double *rl = malloc(sizeof(double) * (size_t)T);
                float *o = fbuf((size_t)T * p.ldo), *lse = fbuf((size_t)T);
                for (int bf16 = 0; bf16 <= 1; bf16++) {
                    ref_forward(&p, bf16, P, ro, rl);
                    run_forward(&p, bf16 ? PL_PRECISION_BF16 : PL_PRECISION_FP32, o, lse);
                    double e = rel_err(o, p.ldo, ro, T, hd, 1e-30), el = 0.0, tol = bf16 ? 6e-3 : 2e-6 * amp;
                    for (int i = 0; i < T; i++) el = fmax(el, fabs(lse[i] - rl[i]) / fmax(1.0, fabs(rl[i])));
                    if (e > tol || el > (bf16 ? 1e-5 : 1e-6))
                        fail_msg("T %d hd %d amp %d %s: o rel err %.3g (tol %.1g), lse rel err %.3g", T, hd, amp,
                                 bf16 ? "bf16" : "fp32", e, tol, el);
                }
                free(P), free(ro), free(rl), free(o), free(lse);
                prob_free(&p);
            }
}

// The kernel (at the best level) equals the scalar model of its arithmetic bit for bit, FP32 and BF16.
static void test_forward_model_bits(void **state) {
    (void)state;
    for (int a = 0; a < NT; a++)
        for (int b = 0; b < NHD; b++) {
            Prob p;
            prob_make(&p, sizes_t[a], sizes_hd[b], 3.0f);
            float *o = fbuf((size_t)p.T * p.ldo), *lse = fbuf((size_t)p.T), mo[256], ml;
            for (int bf16 = 0; bf16 <= 1; bf16++) {
                run_forward(&p, bf16 ? PL_PRECISION_BF16 : PL_PRECISION_FP32, o, lse);
                for (int i = 0; i < p.T; i++) {
                    model_row(&p, bf16, i, mo, &ml);
                    if (memcmp(mo, o + (size_t)i * p.ldo, sizeof(float) * p.hd) || memcmp(&ml, &lse[i], sizeof ml))
                        fail_msg("T %d hd %d %s row %d: kernel %.9g lse %.9g, model %.9g lse %.9g", p.T, p.hd,
                                 bf16 ? "bf16" : "fp32", i, o[(size_t)i * p.ldo], lse[i], mo[0], ml);
                }
            }
            free(o), free(lse);
            prob_free(&p);
        }
}

// Standard softmax-attention gradient in double from the reference P: dv = P^T dO, dP = dO V^T,
// dS = P (dP - rowsum(P dP)), dq = scale dS K, dk = scale dS^T Q. g (T, 3 hd) = [dq | dk | dv].
static void ref_backward(const Prob *p, const double *P, double *g) {
    const int T = p->T, hd = p->hd;
    double *dS = malloc(sizeof(double) * (size_t)T * T);
    assert_non_null(dS);
    memset(g, 0, sizeof(double) * (size_t)T * 3 * hd);
    for (int i = 0; i < T; i++) {
        double Di = 0.0;
        for (int j = 0; j < T; j++) {
            double dp = 0.0;
            for (int d = 0; d < hd; d++) dp += (double)p->dout[(size_t)i * p->ldo + d] * p->v[(size_t)j * p->ld + d];
            dS[(size_t)i * T + j] = dp;
            Di += dp * P[(size_t)i * T + j];
        }
        for (int j = 0; j < T; j++) dS[(size_t)i * T + j] = P[(size_t)i * T + j] * (dS[(size_t)i * T + j] - Di);
    }
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) {
            double ds = dS[(size_t)i * T + j] * p->scale, pij = P[(size_t)i * T + j];
            for (int d = 0; d < hd; d++) {
                g[(size_t)i * 3 * hd + d] += ds * p->k[(size_t)j * p->ld + d];
                g[(size_t)j * 3 * hd + hd + d] += ds * p->q[(size_t)i * p->ld + d];
                g[(size_t)j * 3 * hd + 2 * hd + d] += pij * p->dout[(size_t)i * p->ldo + d];
            }
        }
    free(dS);
}

// Levels bit-identical (forward and backward, both precisions), and the backward against the double gradient:
// FP32 within 1e-5 of max(0.5, each gradient's largest entry) (float rounding of the recomputed P and of T-long
// sums; the floor, about |dout| |v|, because dq = dk = 0 exactly at T = 1, where only rounding is left);
// BF16 within 3e-2 (every operand of five products rounded to 2^-9 relative, against the FP32-input reference).
static void test_levels_and_backward(void **state) {
    (void)state;
    for (int a = 0; a < NT; a++)
        for (int b = 0; b < NHD; b++) {
            Prob p;
            prob_make(&p, sizes_t[a], sizes_hd[b], 2.0f);
            const int T = p.T, hd = p.hd;
            double *P = malloc(sizeof(double) * (size_t)T * T), *ro = malloc(sizeof(double) * (size_t)T * hd);
            double *rl = malloc(sizeof(double) * (size_t)T), *rg = malloc(sizeof(double) * (size_t)T * 3 * hd);
            double *part = malloc(sizeof(double) * (size_t)T * hd);
            float *o = fbuf((size_t)T * p.ldo), *lse = fbuf((size_t)T), *g = fbuf((size_t)T * p.ld);
            ref_forward(&p, 0, P, ro, rl);
            ref_backward(&p, P, rg);
            for (int bf16 = 0; bf16 <= 1; bf16++) {
                check_levels(&p, bf16 ? PL_PRECISION_BF16 : PL_PRECISION_FP32, o, lse, g);
                for (int w = 0; w < 3; w++) {
                    for (int i = 0; i < T; i++)
                        for (int d = 0; d < hd; d++) part[(size_t)i * hd + d] = rg[(size_t)i * 3 * hd + w * hd + d];
                    double e = rel_err(g + w * hd, p.ld, part, T, hd, 0.5), tol = bf16 ? 3e-2 : 1e-5;
                    if (e > tol)
                        fail_msg("T %d hd %d %s: d%c rel err %.3g (tol %.1g)", T, hd, bf16 ? "bf16" : "fp32",
                                 "qkv"[w], e, tol);
                }
            }
            free(P), free(ro), free(rl), free(rg), free(part), free(o), free(lse), free(g);
            prob_free(&p);
        }
}

// o does not depend on its row stride or on whether lse is asked for.
static void test_stride_and_lse_null(void **state) {
    (void)state;
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        Prob p;
        prob_make(&p, 197, 24, 2.0f);
        PlPrecision prec = bf16 ? PL_PRECISION_BF16 : PL_PRECISION_FP32;
        const int T = p.T, hd = p.hd;
        float *o1 = fbuf((size_t)T * hd), *o2 = fbuf((size_t)T * (hd + 9)), *lse = fbuf((size_t)T);
        pl_flash_attention_forward(T, hd, p.scale, p.q, p.k, p.v, p.ld, o1, hd, lse, prec, p.scratch);
        pl_flash_attention_forward(T, hd, p.scale, p.q, p.k, p.v, p.ld, o2, hd + 9, NULL, prec, p.scratch);
        for (int i = 0; i < T; i++) {
            assert_memory_equal(o1 + (size_t)i * hd, o2 + (size_t)i * (hd + 9), sizeof(float) * hd);
            for (int d = hd; d < hd + 9; d++) assert_true(isnan(o2[(size_t)i * (hd + 9) + d]));   // untouched
        }
        free(o1), free(o2), free(lse);
        prob_free(&p);
    }
}

int main(void) {
    printf("flash attention: best level %s\n", pl_cpu_level_name(pl_flash_attention_level()));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_reference),
        cmocka_unit_test(test_forward_model_bits),
        cmocka_unit_test(test_levels_and_backward),
        cmocka_unit_test(test_stride_and_lse_null),
    };
    return pl_test_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
