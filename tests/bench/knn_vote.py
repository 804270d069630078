# What the Python kNN peers of tests/bench/knn_vs_python.py and knn_whole_peer.py share: the numpy search (exact
# top-K by matrix product + argpartition, in chunks of 1000 queries) and DINO eval_knn's weighted vote (exp(sim / T),
# relative to the best neighbour's weight, which leaves argmax unchanged) for every k = 1..K cumulatively, with
# sklearn's macro F1 per k (classes with no support and no prediction left out), vectorised.
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


def search_numpy(Q, R, K):
    """Top-K inner products of the rows of Q among the rows of R, best first: (sims, idxs), each (queries, K)."""
    sims, idxs = [], []
    for q0 in range(0, len(Q), 1000):
        s = Q[q0:q0 + 1000] @ R.T
        part = np.argpartition(-s, K - 1, axis=1)[:, :K]
        ps = np.take_along_axis(s, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        idxs.append(np.take_along_axis(part, order, axis=1))
        sims.append(np.take_along_axis(ps, order, axis=1))
    return np.vstack(sims), np.vstack(idxs)
