// The flash-attention kernels written once over the 16-lane primitives of pl_flash_attention_simd.h:
// pl_flash_attention.c includes this file once per CPU level (after the primitives, with FA_BR query/key rows per
// register block and FA_VMAX 16-lane vectors per pass defined). Private to it.
//
// Register blocking (FA_BR, FA_VMAX) differs between levels, the arithmetic does not: every output element is one
// fixed chain of fused multiply-adds (over d ascending, or over BF16 pairs ascending), every tile product starts
// from zero and is folded into its running sum with one fma (out = out * alpha + tile), and the key blocks of 64
// (FA_BC) at which the online softmax rescales are the same everywhere. So all levels are bit-identical.
#define FA_AI static inline __attribute__((always_inline))
_Static_assert(FA_BR <= FA_BR_MAX && FA_BC % (16 * FA_VMAX) == 0, "register block larger than the scratch tiles");

// out (FA_BR, 16 * nk from column j0; row stride 64) = scale * a b: a row r is arow[r] (hd), b packed as (hd, 64)
// (column j of a key / query block). acc = fma(a[d], b[d][j], acc) for d ascending.
PL_FATTR FA_AI void PL_FA(dot_f32)(const float *const *arow, const float *bp, int hd, int j0, int nk, float *out,
                                   float scale) {
    FV acc[FA_BR][FA_VMAX];
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nk; c++) acc[r][c] = PL_FA(set1)(0.0f);
    for (int d = 0; d < hd; d++) {
        FV b[FA_VMAX];
        for (int c = 0; c < nk; c++) b[c] = PL_FA(ld)(bp + (size_t)d * FA_BC + j0 + 16 * c);
        for (int r = 0; r < FA_BR; r++) {
            FV a = PL_FA(set1)(arow[r][d]);
            for (int c = 0; c < nk; c++) acc[r][c] = PL_FA(fma)(a, b[c], acc[r][c]);
        }
    }
    FV s = PL_FA(set1)(scale);
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nk; c++) PL_FA(st)(out + (size_t)r * FA_BC + j0 + 16 * c, PL_FA(mul)(acc[r][c], s));
}

// The same with BF16 pairs: arow[r] (np pairs of a row), bp (np, 64) pairs.
PL_FATTR FA_AI void PL_FA(dot_bf16)(const uint32_t *const *arow, const uint32_t *bp, int np, int j0, int nk,
                                    float *out, float scale) {
    FV acc[FA_BR][FA_VMAX];
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nk; c++) acc[r][c] = PL_FA(set1)(0.0f);
    for (int p = 0; p < np; p++) {
        FA_BW b[FA_VMAX];
        for (int c = 0; c < nk; c++) b[c] = PL_FA(bw_ld)(bp + (size_t)p * FA_BC + j0 + 16 * c);
        for (int r = 0; r < FA_BR; r++) {
            FA_AW a = PL_FA(aw_set)(arow[r][p]);
            for (int c = 0; c < nk; c++) acc[r][c] = PL_FA(dp)(acc[r][c], a, b[c]);
        }
    }
    FV s = PL_FA(set1)(scale);
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nk; c++) PL_FA(st)(out + (size_t)r * FA_BC + j0 + 16 * c, PL_FA(mul)(acc[r][c], s));
}

// orow[r][0 .. 16 nv) = fma(orow[r], alpha[r], sum_t w(r, t) b[t]) with w(r, t) = wrow[r][t * wts] and b rows of
// stride ldb; the sum is a fresh fma chain over t ascending.
PL_FATTR FA_AI void PL_FA(axpy_f32)(const float *const *wrow, size_t wts, int nt, const float *b, size_t ldb, int nv,
                                    float *const *orow, const float *alpha) {
    FV acc[FA_BR][FA_VMAX];
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nv; c++) acc[r][c] = PL_FA(set1)(0.0f);
    for (int t = 0; t < nt; t++) {
        FV bv[FA_VMAX];
        for (int c = 0; c < nv; c++) bv[c] = PL_FA(ld)(b + (size_t)t * ldb + 16 * c);
        for (int r = 0; r < FA_BR; r++) {
            FV a = PL_FA(set1)(wrow[r][(size_t)t * wts]);
            for (int c = 0; c < nv; c++) acc[r][c] = PL_FA(fma)(a, bv[c], acc[r][c]);
        }
    }
    for (int r = 0; r < FA_BR; r++) {
        FV al = PL_FA(set1)(alpha[r]);
        for (int c = 0; c < nv; c++)
            PL_FA(st)(orow[r] + 16 * c, PL_FA(fma)(PL_FA(ld)(orow[r] + 16 * c), al, acc[r][c]));
    }
}

// The same with BF16 pairs: w(r, t) = wrow[r][t * wts] (a pair), b rows of pairs.
PL_FATTR FA_AI void PL_FA(axpy_bf16)(const uint32_t *const *wrow, size_t wts, int nt, const uint32_t *b, size_t ldb,
                                     int nv, float *const *orow, const float *alpha) {
    FV acc[FA_BR][FA_VMAX];
    for (int r = 0; r < FA_BR; r++)
        for (int c = 0; c < nv; c++) acc[r][c] = PL_FA(set1)(0.0f);
    for (int t = 0; t < nt; t++) {
        FA_BW bv[FA_VMAX];
        for (int c = 0; c < nv; c++) bv[c] = PL_FA(bw_ld)(b + (size_t)t * ldb + 16 * c);
        for (int r = 0; r < FA_BR; r++) {
            FA_AW a = PL_FA(aw_set)(wrow[r][(size_t)t * wts]);
            for (int c = 0; c < nv; c++) acc[r][c] = PL_FA(dp)(acc[r][c], a, bv[c]);
        }
    }
    for (int r = 0; r < FA_BR; r++) {
        FV al = PL_FA(set1)(alpha[r]);
        for (int c = 0; c < nv; c++)
            PL_FA(st)(orow[r] + 16 * c, PL_FA(fma)(PL_FA(ld)(orow[r] + 16 * c), al, acc[r][c]));
    }
}

// axpy over `cols` output columns (a multiple of 16) in passes of FA_VMAX vectors; orow0[r] is row r's column 0.
// bf16: w, b are uint32_t pairs; else floats.
PL_FATTR static void PL_FA(axpy)(int bf16, const void *const *wrow, size_t wts, int nt, const void *b, size_t ldb,
                                 int cols, float *const *orow0, const float *alpha) {
    for (int c0 = 0; c0 < cols; c0 += 16 * FA_VMAX) {
        float *orow[FA_BR];
        for (int r = 0; r < FA_BR; r++) orow[r] = orow0[r] + c0;
        int nv = (cols - c0) / 16 < FA_VMAX ? (cols - c0) / 16 : FA_VMAX;
        if (bf16) {
            const uint32_t *bb = (const uint32_t *)b + c0;
            const uint32_t *const *w = (const uint32_t *const *)wrow;
            switch (nv) {
            case 1: PL_FA(axpy_bf16)(w, wts, nt, bb, ldb, 1, orow, alpha); break;
#if FA_VMAX > 2
            case 3: PL_FA(axpy_bf16)(w, wts, nt, bb, ldb, 3, orow, alpha); break;
            case 4: PL_FA(axpy_bf16)(w, wts, nt, bb, ldb, 4, orow, alpha); break;
#endif
            default: PL_FA(axpy_bf16)(w, wts, nt, bb, ldb, 2, orow, alpha); break;
            }
        } else {
            const float *bb = (const float *)b + c0;
            const float *const *w = (const float *const *)wrow;
            switch (nv) {
            case 1: PL_FA(axpy_f32)(w, wts, nt, bb, ldb, 1, orow, alpha); break;
#if FA_VMAX > 2
            case 3: PL_FA(axpy_f32)(w, wts, nt, bb, ldb, 3, orow, alpha); break;
            case 4: PL_FA(axpy_f32)(w, wts, nt, bb, ldb, 4, orow, alpha); break;
#endif
            default: PL_FA(axpy_f32)(w, wts, nt, bb, ldb, 2, orow, alpha); break;
            }
        }
    }
}

// Tile (FA_BR rows from row 0 of `out`, the first 16 * nvec of 64 columns, stride 64) = scale * rows . packed block.
PL_FATTR static void PL_FA(dot)(int bf16, const void *const *arow, const void *bp, int hd, int nvec, float *out,
                                float scale) {
    const uint32_t *const *a2 = (const uint32_t *const *)arow;
    const float *const *a1 = (const float *const *)arow;
    const int np = (hd + 1) / 2;
    for (int j0 = 0; j0 < 16 * nvec; j0 += 16 * FA_VMAX) {
        int nv = nvec - j0 / 16 < FA_VMAX ? nvec - j0 / 16 : FA_VMAX;
#define FA_DOT_CASE(n)                                                                            \
    case n:                                                                                       \
        if (bf16)                                                                                 \
            PL_FA(dot_bf16)(a2, (const uint32_t *)bp, np, j0, n, out, scale);                     \
        else                                                                                      \
            PL_FA(dot_f32)(a1, (const float *)bp, hd, j0, n, out, scale);                         \
        break
        switch (nv) {
            FA_DOT_CASE(1);
#if FA_VMAX > 2
            FA_DOT_CASE(3);
            FA_DOT_CASE(4);
#endif
        default:
            FA_DOT_CASE(2);
        }
#undef FA_DOT_CASE
    }
}

// Online softmax step of one query row over one key block: s (64) scaled scores of which the first nk are keys;
// m, lsum (16 partial sums, lane j gets keys j, j+16, ...) the running max and sum. Writes p = exp(s - m_new)
// (0 beyond nk) as FP32 (p32) or BF16 (p16, when not NULL) and alpha = exp(m_old - m_new).
PL_FATTR static inline void PL_FA(online_row)(const float *s, int nk, float *m, FV *lsum, float *alpha, float *p32,
                                              void *p16) {
    const int nv = (nk + 15) / 16;
    FV v[4], mx = PL_FA(set1)(-INFINITY), zero = PL_FA(set1)(0.0f);
    for (int c = 0; c < nv; c++) {
        v[c] = PL_FA(ld)(s + 16 * c);
        if (nk < 16 * c + 16) v[c] = PL_FA(keep_lt)(v[c], nk - 16 * c, -INFINITY);
        mx = PL_FA(max)(mx, v[c]);
    }
    float bm = PL_FA(hmax)(mx);
    float mn = *m > bm ? *m : bm;
    float a = fa_exp1(*m - mn);
    FV mv = PL_FA(set1)(mn), l = PL_FA(mul)(*lsum, PL_FA(set1)(a));
    for (int c = 0; c < 4; c++) {
        FV p = zero;
        if (c < nv) {
            p = PL_FA(exp)(PL_FA(sub)(v[c], mv));
            if (nk < 16 * c + 16) p = PL_FA(keep_lt)(p, nk - 16 * c, 0.0f);
            l = PL_FA(add)(l, p);
        }
        if (p16)
            PL_FA(cvt16)((uint16_t *)p16 + 16 * c, p);
        else
            PL_FA(st)(p32 + 16 * c, p);
    }
    *lsum = l;
    *m = mn;
    *alpha = a;
}

// ---- packing (pl_flash_attention.c's FaCtx layouts), with this level's BF16 conversion ----

// dst (as BF16) = x (n), plus a zero when n is odd: ceil(n / 2) pairs.
PL_FATTR static void PL_FA(cvt_row)(void *dst, const float *x, int n) {
    int d = 0;
    for (; d + 16 <= n; d += 16) PL_FA(cvt16)((uint16_t *)dst + d, PL_FA(ld)(x + d));
    if (d < n) {
        uint16_t t[16] = {0};
        for (int i = 0; i < n - d; i++) t[i] = fa_bf16(x[d + i]);
        memcpy((uint16_t *)dst + d, t, sizeof(uint16_t) * (size_t)((n - d + 1) & ~1));
    }
}

// dst (T, np): each row's BF16 pairs over d.
PL_FATTR static void PL_FA(pack_rows_pairs)(uint32_t *dst, const float *src, int ld, int T, int hd) {
    const int np = (hd + 1) / 2;
    for (int t = 0; t < T; t++) PL_FA(cvt_row)(dst + (size_t)t * np, src + (size_t)t * ld, hd);
}

// dst (nkb, np, 64): dst[b][p][j] = pair p of token b * 64 + j (0 past T).
PL_FATTR static void PL_FA(pack_blocks_bf16)(uint32_t *dst, const float *src, int ld, int T, int hd, int nkb) {
    const int np = (hd + 1) / 2;
    for (int b = 0; b < nkb; b++)
        for (int j = 0; j < FA_BC; j++) {
            const int t = b * FA_BC + j;
            uint32_t *col = dst + (size_t)b * np * FA_BC + j;
            for (int p0 = 0; p0 < np; p0 += 16) {
                uint32_t tmp[16] = {0};
                int n = hd - 2 * p0 < 32 ? hd - 2 * p0 : 32;
                if (t < T) PL_FA(cvt_row)(tmp, src + (size_t)t * ld + 2 * p0, n);
                for (int i = 0; i < (n + 1) / 2; i++) col[(size_t)(p0 + i) * FA_BC] = tmp[i];
            }
        }
}

// dst (pairs, hdp): dst[t][d] = bf16(src[2t][d]) | bf16(src[2t + 1][d]) << 16 (0 past T and hd).
PL_FATTR static void PL_FA(pack_token_pairs)(uint32_t *dst, const float *src, int ld, int T, int hd, int hdp,
                                             int pairs) {
    for (int t = 0; t < pairs; t++) {
        const float *r0 = 2 * t < T ? src + (size_t)(2 * t) * ld : NULL;
        const float *r1 = 2 * t + 1 < T ? src + (size_t)(2 * t + 1) * ld : NULL;
        uint32_t *o = dst + (size_t)t * hdp;
        int d = 0;
        if (r1)
            for (; d + 16 <= hd; d += 16) PL_FA(cvt_pair)(o + d, PL_FA(ld)(r0 + d), PL_FA(ld)(r1 + d));
        for (; d < hdp; d++)
            o[d] = (uint32_t)(r0 && d < hd ? fa_bf16(r0[d]) : 0) | (uint32_t)(r1 && d < hd ? fa_bf16(r1[d]) : 0) << 16;
    }
}

// dst (nkb, hd, 64): dst[b][d][j] = src[b * 64 + j][d] (0 past T).
PL_FATTR static void PL_FA(pack_blocks_f32)(float *dst, const float *src, int ld, int T, int hd, int nkb) {
    for (int b = 0; b < nkb; b++)
        for (int j = 0; j < FA_BC; j++) {
            const int t = b * FA_BC + j;
            float *col = dst + (size_t)b * hd * FA_BC + j;
            for (int d = 0; d < hd; d++) col[(size_t)d * FA_BC] = t < T ? src[(size_t)t * ld + d] : 0.0f;
        }
}

// dst (rows, hdp) = src (T, hd) rows, 0 past T and hd.
static void PL_FA(pack_rows_f32)(float *dst, const float *src, int ld, int T, int hd, int hdp, int rows) {
    memset(dst, 0, sizeof(float) * (size_t)rows * hdp);
    for (int t = 0; t < T; t++) memcpy(dst + (size_t)t * hdp, src + (size_t)t * ld, sizeof(float) * (size_t)hd);
}

// Forward of query rows i0 .. i0 + FA_BR (rows past T repeat row T - 1 and are not written).
PL_FATTR static void PL_FA(fwd_rows)(const FaCtx *c, int i0) {
    const int T = c->T, hdp = c->hdp, bf16 = c->prec == PL_PRECISION_BF16;
    float m[FA_BR], alpha[FA_BR];
    FV lsum[FA_BR];
    const void *arow[FA_BR], *wrow[FA_BR];
    float *orow[FA_BR];
    for (int r = 0; r < FA_BR; r++) {
        int i = i0 + r < T ? i0 + r : T - 1;
        arow[r] = bf16 ? (const void *)(c->q2 + (size_t)i * c->dpairs) : (const void *)(c->q + (size_t)i * c->ld);
        wrow[r] = bf16 ? (const void *)(c->p2 + (size_t)r * FA_BC / 2) : (const void *)(c->pb + (size_t)r * FA_BC);
        orow[r] = c->oacc + (size_t)r * hdp;
        m[r] = -INFINITY;
        lsum[r] = PL_FA(set1)(0.0f);
    }
    memset(c->oacc, 0, sizeof(float) * FA_BR * (size_t)hdp);
    for (int kb = 0; kb < c->nkb; kb++) {
        const int nk = T - kb * FA_BC < FA_BC ? T - kb * FA_BC : FA_BC;
        const void *bp = bf16 ? (const void *)(c->kt2 + (size_t)kb * c->dpairs * FA_BC)
                              : (const void *)(c->kt + (size_t)kb * c->hd * FA_BC);
        PL_FA(dot)(bf16, arow, bp, c->hd, (nk + 15) / 16, c->sb, c->scale);
        for (int r = 0; r < FA_BR; r++)
            PL_FA(online_row)(c->sb + (size_t)r * FA_BC, nk, &m[r], &lsum[r], &alpha[r], c->pb + (size_t)r * FA_BC,
                              bf16 ? (void *)(c->p2 + (size_t)r * FA_BC / 2) : NULL);
        if (bf16)
            PL_FA(axpy)(1, wrow, 1, (nk + 1) / 2, c->v2 + (size_t)kb * FA_BC / 2 * hdp, (size_t)hdp, hdp, orow, alpha);
        else
            PL_FA(axpy)(0, wrow, 1, nk, c->vr + (size_t)kb * FA_BC * hdp, (size_t)hdp, hdp, orow, alpha);
    }
    for (int r = 0; r < FA_BR && i0 + r < T; r++) {
        float lanes[16], l = 0.0f;
        PL_FA(st)(lanes, lsum[r]);
        for (int j = 0; j < 16; j++) l += lanes[j];
        float *o = c->out + (size_t)(i0 + r) * c->ldo;
        for (int d = 0; d < c->hd; d++) o[d] = orow[r][d] / l;
        if (c->lse) c->lse[i0 + r] = m[r] + (float)log((double)l);
    }
}

PL_FATTR static void PL_FA(forward)(const FaCtx *c) {
    const int T = c->T, hd = c->hd;
    if (c->prec == PL_PRECISION_BF16) {
        PL_FA(pack_rows_pairs)(c->q2, c->q, c->ld, T, hd);
        PL_FA(pack_blocks_bf16)(c->kt2, c->k, c->ld, T, hd, c->nkb);
        PL_FA(pack_token_pairs)(c->v2, c->v, c->ld, T, hd, c->hdp, c->nkb * FA_BC / 2);
    } else {
        PL_FA(pack_blocks_f32)(c->kt, c->k, c->ld, T, hd, c->nkb);
        PL_FA(pack_rows_f32)(c->vr, c->v, c->ld, T, hd, c->hdp, c->nkb * FA_BC);
    }
    for (int i0 = 0; i0 < T; i0 += FA_BR) PL_FA(fwd_rows)(c, i0);
}

#include "pl_flash_attention_bwd.h"

#undef FA_AI
#undef FV
#undef FA_AW
#undef FA_BW
#undef FA_EXP_CONSTS
