// The flash-attention backward (FlashAttention-2 order: key blocks outside, query blocks inside), written once over
// the primitives and micro-kernels of pl_flash_attention_body.h, which includes it once per CPU level. Private.
//
// Per (key block, query block) tile everything is kept transposed (rows = 64 keys, columns = 64 queries), so each
// product is a dot form or an axpy form without transposing anything:
//   S^T = K Q^T * scale,  P^T = exp(S^T - lse),  dP^T = V dO^T,  dS^T = P^T (dP^T - D)  with D = rowsum(dO o),
//   dV += P^T dO,  dK += dS^T Q,  dQ^T += K^T dS^T;  dq and dk are scaled by `scale` when written.
// Each tile product starts from zero and is added to its running sum (over query blocks for dK, dV, over key blocks
// for dQ) in block order, so the result does not depend on the level.

// S^T, dP^T, then P^T and dS^T of tile (kb, qb): nk keys, nq queries.
PL_FATTR static void PL_FA(bwd_probs)(const FaCtx *c, int kb, int nk, int qb, int nq) {
    const int T = c->T, bf16 = c->prec == PL_PRECISION_BF16;
    const void *bq = bf16 ? (const void *)(c->qt2 + (size_t)qb * c->dpairs * FA_BC)
                          : (const void *)(c->qt + (size_t)qb * c->hd * FA_BC);
    const void *bo = bf16 ? (const void *)(c->dot2 + (size_t)qb * c->dpairs * FA_BC)
                          : (const void *)(c->dot + (size_t)qb * c->hd * FA_BC);
    for (int j0 = 0; j0 < nk; j0 += FA_BR) {
        const void *ak[FA_BR], *av[FA_BR];
        for (int r = 0; r < FA_BR; r++) {
            size_t j = (size_t)(kb * FA_BC + j0 + r < T ? kb * FA_BC + j0 + r : T - 1);
            ak[r] = bf16 ? (const void *)(c->k2d + j * c->dpairs) : (const void *)(c->k + j * c->ld);
            av[r] = bf16 ? (const void *)(c->v2d + j * c->dpairs) : (const void *)(c->v + j * c->ld);
        }
        PL_FA(dot)(bf16, ak, bq, c->hd, (nq + 15) / 16, c->st + (size_t)j0 * FA_BC, c->scale);
        PL_FA(dot)(bf16, av, bo, c->hd, (nq + 15) / 16, c->dpt + (size_t)j0 * FA_BC, 1.0f);
    }
    const float *lse = c->lsep + (size_t)qb * FA_BC, *dd = c->dd + (size_t)qb * FA_BC;
    const int rows = bf16 ? (nk + 1) & ~1 : nk;
    for (int j = 0; j < rows; j++) {
        float *s = c->st + (size_t)j * FA_BC, *g = c->dpt + (size_t)j * FA_BC;
        for (int q = 0; q < 4; q++) {
            FV p = PL_FA(set1)(0.0f), ds = p;
            if (j < nk && 16 * q < nq) {   // columns past the computed vectors are never read
                p = PL_FA(exp)(PL_FA(sub)(PL_FA(ld)(s + 16 * q), PL_FA(ld)(lse + 16 * q)));
                p = PL_FA(keep_lt)(p, nq - 16 * q, 0.0f);
                ds = PL_FA(mul)(p, PL_FA(sub)(PL_FA(ld)(g + 16 * q), PL_FA(ld)(dd + 16 * q)));
            }
            PL_FA(st)(s + 16 * q, p);
            PL_FA(st)(g + 16 * q, ds);
            if (bf16) {
                PL_FA(cvt16)(c->pt16 + (size_t)j * FA_BC / 2 + 8 * q, p);
                PL_FA(cvt16)(c->dst16 + (size_t)j * FA_BC / 2 + 8 * q, ds);
            }
        }
    }
    if (bf16)
        for (int jp = 0; jp < rows / 2; jp++)
            for (int q = 0; q < 4; q++)
                PL_FA(cvt_pair)(c->dsp + (size_t)jp * FA_BC + 16 * q,
                                PL_FA(ld)(c->dpt + (size_t)(2 * jp) * FA_BC + 16 * q),
                                PL_FA(ld)(c->dpt + (size_t)(2 * jp + 1) * FA_BC + 16 * q));
}

// dV += P^T dO, dK += dS^T Q, dQ^T += K^T dS^T for tile (kb, qb).
PL_FATTR static void PL_FA(bwd_grads)(const FaCtx *c, int kb, int nk, int qb, int nq) {
    const int hd = c->hd, hdp = c->hdp, bf16 = c->prec == PL_PRECISION_BF16;
    float ones[FA_BR];
    const void *wp[FA_BR], *ws[FA_BR];
    float *ov[FA_BR], *ok[FA_BR];
    for (int r = 0; r < FA_BR; r++) ones[r] = 1.0f;
    const int nqt = bf16 ? (nq + 1) / 2 : nq;
    const void *bdo = bf16 ? (const void *)(c->do2t + (size_t)qb * FA_BC / 2 * hdp)
                           : (const void *)(c->dor + (size_t)qb * FA_BC * hdp);
    const void *bq = bf16 ? (const void *)(c->q2t + (size_t)qb * FA_BC / 2 * hdp)
                          : (const void *)(c->qr + (size_t)qb * FA_BC * hdp);
    for (int j0 = 0; j0 < nk; j0 += FA_BR) {
        for (int r = 0; r < FA_BR; r++) {
            size_t j = (size_t)(j0 + r < nk ? j0 + r : nk - 1);
            wp[r] = bf16 ? (const void *)(c->pt16 + j * FA_BC / 2) : (const void *)(c->st + j * FA_BC);
            ws[r] = bf16 ? (const void *)(c->dst16 + j * FA_BC / 2) : (const void *)(c->dpt + j * FA_BC);
            ov[r] = j0 + r < nk ? c->dvb + (size_t)(j0 + r) * hdp : c->junk;
            ok[r] = j0 + r < nk ? c->dkb + (size_t)(j0 + r) * hdp : c->junk;
        }
        PL_FA(axpy)(bf16, wp, 1, nqt, bdo, (size_t)hdp, hdp, ov, ones);
        PL_FA(axpy)(bf16, ws, 1, nqt, bq, (size_t)hdp, hdp, ok, ones);
    }
    const int nkt = bf16 ? (nk + 1) / 2 : nk;
    const size_t wts = bf16 ? (size_t)hdp : (size_t)c->ld;
    const void *bds = bf16 ? (const void *)c->dsp : (const void *)c->dpt;
    for (int d0 = 0; d0 < hd; d0 += FA_BR) {
        for (int r = 0; r < FA_BR; r++) {
            size_t d = (size_t)(d0 + r < hd ? d0 + r : hd - 1);
            wp[r] = bf16 ? (const void *)(c->k2t + (size_t)kb * FA_BC / 2 * hdp + d)
                         : (const void *)(c->k + (size_t)kb * FA_BC * c->ld + d);
            ov[r] = d0 + r < hd ? c->dqt + ((size_t)qb * hd + d0 + r) * FA_BC : c->junk;
        }
        PL_FA(axpy)(bf16, wp, wts, nkt, bds, FA_BC, FA_BC, ov, ones);
    }
}

PL_FATTR static void PL_FA(backward)(const FaCtx *c) {
    const int T = c->T, hd = c->hd, hdp = c->hdp, tp = c->nkb * FA_BC;
    if (c->prec == PL_PRECISION_BF16) {
        PL_FA(pack_blocks_bf16)(c->qt2, c->q, c->ld, T, hd, c->nkb);
        PL_FA(pack_blocks_bf16)(c->dot2, c->dout, c->ldo, T, hd, c->nkb);
        PL_FA(pack_token_pairs)(c->q2t, c->q, c->ld, T, hd, hdp, tp / 2);
        PL_FA(pack_token_pairs)(c->do2t, c->dout, c->ldo, T, hd, hdp, tp / 2);
        PL_FA(pack_token_pairs)(c->k2t, c->k, c->ld, T, hd, hdp, tp / 2);
        PL_FA(pack_rows_pairs)(c->k2d, c->k, c->ld, T, hd);
        PL_FA(pack_rows_pairs)(c->v2d, c->v, c->ld, T, hd);
    } else {
        PL_FA(pack_blocks_f32)(c->qt, c->q, c->ld, T, hd, c->nkb);
        PL_FA(pack_blocks_f32)(c->dot, c->dout, c->ldo, T, hd, c->nkb);
        PL_FA(pack_rows_f32)(c->qr, c->q, c->ld, T, hd, hdp, tp);
        PL_FA(pack_rows_f32)(c->dor, c->dout, c->ldo, T, hd, hdp, tp);
    }
    memset(c->dqt, 0, sizeof(float) * (size_t)c->nkb * hd * FA_BC);
    for (int kb = 0; kb < c->nkb; kb++) {
        const int nk = T - kb * FA_BC < FA_BC ? T - kb * FA_BC : FA_BC;
        memset(c->dkb, 0, sizeof(float) * FA_BC * (size_t)hdp);
        memset(c->dvb, 0, sizeof(float) * FA_BC * (size_t)hdp);
        for (int qb = 0; qb < c->nkb; qb++) {
            const int nq = T - qb * FA_BC < FA_BC ? T - qb * FA_BC : FA_BC;
            PL_FA(bwd_probs)(c, kb, nk, qb, nq);
            PL_FA(bwd_grads)(c, kb, nk, qb, nq);
        }
        for (int j = 0; j < nk; j++) {
            float *dk = c->dk + (size_t)(kb * FA_BC + j) * c->ld, *dv = c->dv + (size_t)(kb * FA_BC + j) * c->ld;
            for (int d = 0; d < hd; d++) {
                dk[d] = c->dkb[(size_t)j * hdp + d] * c->scale;
                dv[d] = c->dvb[(size_t)j * hdp + d];
            }
        }
    }
    for (int i = 0; i < T; i++) {
        const float *src = c->dqt + (size_t)(i / FA_BC) * hd * FA_BC + i % FA_BC;
        for (int d = 0; d < hd; d++) c->dq[(size_t)i * c->ld + d] = src[(size_t)d * FA_BC] * c->scale;
    }
}
