// DINO's loss, its gradient, the teacher center statistic and update, the teacher temperature (pl_dino_loss.h).
#include "pl_dino_loss.h"

#include <float.h>
#include <math.h>

#include "pl_optim.h"

enum { SUM_BLOCK = 256 };   // columns of the center statistic summed at once (double accumulators on the stack)

PlStatus pl_dino_loss_check(int views, int K, double student_temp, double warmup_teacher_temp, double teacher_temp,
                            int64_t warmup_epochs, int64_t nepochs) {
    if (views < 2) return PL_FAIL(PL_ERR_ARG, "DINO loss: %d views (need the 2 global views at least)", views);
    if (K < 1) return PL_FAIL(PL_ERR_ARG, "DINO loss: output dimension %d", K);
    if (!(student_temp > 0.0 && student_temp <= DBL_MAX))
        return PL_FAIL(PL_ERR_ARG, "DINO loss: student temperature %g (need > 0)", student_temp);
    if (!(warmup_teacher_temp > 0.0 && warmup_teacher_temp <= DBL_MAX) ||
        !(teacher_temp > 0.0 && teacher_temp <= DBL_MAX))
        return PL_FAIL(PL_ERR_ARG, "DINO loss: teacher temperatures %g -> %g (need > 0)", warmup_teacher_temp,
                       teacher_temp);
    if (warmup_epochs < 0 || nepochs < 0 || warmup_epochs > nepochs)
        return PL_FAIL(PL_ERR_ARG, "DINO loss: %lld teacher temperature warm-up epochs of %lld epochs",
                       (long long)warmup_epochs, (long long)nepochs);
    return PL_OK;
}

int pl_dino_loss_terms(int views) { return 2 * views - 2; }

size_t pl_dino_loss_scratch_floats(int K) { return 2 * (size_t)K; }

// q (K) = softmax((t - center) / tau_t): t - center and the scaling in double, the exponentials in float32, the
// normaliser summed in double.
static void teacher_softmax(float *q, const float *t, const float *center, int K, double teacher_temp) {
    double m = -INFINITY;
    for (int k = 0; k < K; k++) {
        double d = (double)t[k] - (double)center[k];
        if (d > m) m = d;
    }
    double S = 0.0;
    for (int k = 0; k < K; k++) {
        float e = expf((float)(((double)t[k] - (double)center[k] - m) / teacher_temp));
        q[k] = e;
        S += e;
    }
    double inv = 1.0 / S;
    for (int k = 0; k < K; k++) q[k] = (float)(q[k] * inv);
}

// The weights of student view v: w_k = sum over teacher views i != v of q_i[k].
static inline double view_weight(const float *q0, const float *q1, int v, int k) {
    return v == 0 ? (double)q1[k] : v == 1 ? (double)q0[k] : (double)q0[k] + (double)q1[k];
}

double pl_dino_loss(float *dstudent, const float *student, const float *teacher, const float *center, int n, int V,
                    int K, double student_temp, double teacher_temp, float scale, float *scratch) {
    const int terms = pl_dino_loss_terms(V);
    const double f = (double)scale / ((double)terms * student_temp);   // d/ds = f (W p - w)
    float *q0 = scratch, *q1 = scratch + K;
    double total = 0.0;
    for (int b = 0; b < n; b++) {
        const float *t = teacher + (size_t)b * 2 * (size_t)K;
        teacher_softmax(q0, t, center, K, teacher_temp);
        teacher_softmax(q1, t + K, center, K, teacher_temp);
        double loss_b = 0.0;
        for (int v = 0; v < V; v++) {
            size_t row = ((size_t)b * (size_t)V + (size_t)v) * (size_t)K;
            const float *s = student + row;
            float *ds = dstudent ? dstudent + row : NULL;
            // z_k - max z = (s_k - max s) / tau_s (tau_s > 0 keeps the order); -w . log_softmax(z) =
            // W log(S) - w . (z - max z), S = sum exp(z - max z).
            float smax = s[0];
            for (int k = 1; k < K; k++)
                if (s[k] > smax) smax = s[k];
            double S = 0.0, W = 0.0, wz = 0.0;
            for (int k = 0; k < K; k++) {
                double z = ((double)s[k] - (double)smax) / student_temp, w = view_weight(q0, q1, v, k);
                float e = expf((float)z);
                if (ds) ds[k] = e;   // exp(z - max z), normalised below
                S += e;
                W += w;
                wz += w * z;
            }
            loss_b += W * log(S) - wz;
            if (ds) {
                double inv = 1.0 / S;
                for (int k = 0; k < K; k++)
                    ds[k] = (float)(f * (W * ((double)ds[k] * inv) - view_weight(q0, q1, v, k)));
            }
        }
        total += loss_b / (double)terms;
    }
    return total;
}

void pl_dino_teacher_sum(float *sum, const float *teacher, int n, int K) {
    for (int k0 = 0; k0 < K; k0 += SUM_BLOCK) {
        int kn = K - k0 < SUM_BLOCK ? K - k0 : SUM_BLOCK;
        double acc[SUM_BLOCK] = {0};
        for (size_t r = 0; r < 2 * (size_t)n; r++) {
            const float *t = teacher + r * (size_t)K + k0;
            for (int k = 0; k < kn; k++) acc[k] += t[k];
        }
        for (int k = 0; k < kn; k++) sum[k0 + k] = (float)acc[k];
    }
}

void pl_dino_center_update(float *center, const float *sum, int64_t count, double momentum, int K) {
    const float m = (float)momentum, one_minus_m = (float)(1.0 - momentum), c = (float)count;
    for (int k = 0; k < K; k++) {
        float batch_center = sum[k] / c;                               // sum / (len * world)
        float a = center[k] * m, b = batch_center * one_minus_m;        // center * m, batch_center * (1 - m)
        center[k] = a + b;
    }
}

double pl_dino_teacher_temp(int64_t epoch, double warmup_teacher_temp, double teacher_temp, int64_t warmup_epochs,
                            int64_t nepochs) {
    (void)nepochs;
    if (epoch < warmup_epochs)   // np.linspace(warmup_teacher_temp, teacher_temp, warmup_epochs)[epoch]
        return pl_cosine_schedule_at(epoch, warmup_epochs, warmup_epochs, teacher_temp, teacher_temp,
                                     warmup_teacher_temp);
    return teacher_temp;   // np.ones(nepochs - warmup_epochs) * teacher_temp: 1.0 * teacher_temp
}
