# The Python peers' kNN vote for tests/bench/knn_vs_python.py and knn_whole_peer.py: DINO eval_knn's weighted vote
# (exp(sim / T), relative to the best neighbour's weight, which leaves argmax unchanged) for every k = 1..K
# cumulatively, and sklearn's macro F1 per k (classes with no support and no prediction left out), vectorised.
import numpy as np


def score_all_k(sim, idx, ref_labels, query_labels, T, K, C):
    """sim, idx (queries, K): each query's neighbours best first; returns the macro F1 at k = 1..K."""
    nq = sim.shape[0]
    w = np.exp((sim - sim[:, :1]) / T)
    lab = ref_labels[idx]
    scores = np.zeros((nq, C))
    rows = np.arange(nq)
    f1 = np.empty(K)
    for k in range(K):
        scores[rows, lab[:, k]] += w[:, k]
        pred = scores.argmax(axis=1)
        tp = np.bincount(query_labels[pred == query_labels], minlength=C)
        fp = np.bincount(pred[pred != query_labels], minlength=C)
        fn = np.bincount(query_labels[pred != query_labels], minlength=C)
        den = 2 * tp + fp + fn
        present = den > 0
        f1[k] = np.mean(2 * tp[present] / den[present])
    return f1
