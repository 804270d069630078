// kNN vote for every neighbourhood size k = 1..K in one pass over each query's best-first neighbour list.
#include <math.h>
#include <string.h>

#include "pl_knn.h"

void pl_knn_vote_all_k(const int32_t *nb_label, const float *nb_score, const int *nb_count, int64_t n_queries,
                       int K, int n_classes, PlKnnVote vote, float temperature, double *scratch, int32_t *pred) {
    for (int64_t q = 0; q < n_queries; q++) {
        const int32_t *lab = nb_label + (size_t)q * K;
        const float *sc = nb_score + (size_t)q * K;
        int32_t *out = pred + (size_t)q * K;
        memset(scratch, 0, (size_t)n_classes * sizeof(double));
        int best = -1;
        int n = nb_count[q] < K ? nb_count[q] : K;
        float top = n > 0 ? sc[0] : 0.0f;
        for (int k = 0; k < K; k++) {
            if (k < n && lab[k] >= 0) {
                int c = lab[k];
                double w = vote == PL_KNN_VOTE_MAJORITY ? 1.0 : exp(((double)sc[k] - top) / temperature);
                scratch[c] += w;
                // only class c changed: the argmax moves to c when it now beats (or ties a larger index)
                if (best < 0 || scratch[c] > scratch[best] || (scratch[c] == scratch[best] && c < best)) best = c;
            }
            out[k] = best;
        }
    }
}
