#!/usr/bin/python3
# One Python peer of `protloc knn` as a whole process, for tests/bench/knn_vs_python.sh: import, read the same
# features.npy + meta.tsv (id, label, split), L2-normalise, exact top-K cosine neighbours of the test rows among the
# train rows, DINO weighted vote and macro F1 for every k = 1..K, write the neighbour lists (feature rows, int64, as
# protloc's --neighbours) and F1 per k. Timed from outside (/usr/bin/time -v: wall from exec to exit, peak RSS).
#   /usr/bin/python3 knn_whole_peer.py METHOD DATA_DIR K THREADS OUT_DIR     METHOD: torch, faiss or numpy
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import knn_vote  # noqa: E402  (the vote every peer uses)

method, data, K, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
T = 0.07

X = np.load(f"{data}/features.npy")
with open(f"{data}/meta.tsv") as f:
    header = f.readline().rstrip("\n").split("\t")
    cols = [line.rstrip("\n").split("\t") for line in f if line.strip() and not line.startswith("#")]
ci, cs = header.index("label"), header.index("split")
labels = np.array([c[ci] for c in cols])
split = np.array([c[cs] for c in cols])
classes, y = np.unique(labels, return_inverse=True)
train, test = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
R = X[train]
Q = X[test]
R /= np.linalg.norm(R, axis=1, keepdims=True)
Q /= np.linalg.norm(Q, axis=1, keepdims=True)
rl, ql, C = y[train], y[test], len(classes)


def search_torch():
    import torch
    torch.set_num_threads(threads)
    tr, te = torch.from_numpy(R), torch.from_numpy(Q)
    sims, idxs = [], []
    chunk = max(1, len(Q) // 100)   # DINO eval_knn: num_chunks = 100
    with torch.no_grad():
        for q0 in range(0, len(Q), chunk):
            d, i = torch.mm(te[q0:q0 + chunk], tr.T).topk(K, largest=True, sorted=True)
            sims.append(d)
            idxs.append(i)
    return torch.cat(sims).numpy(), torch.cat(idxs).numpy()


def search_faiss():
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(R.shape[1])
    index.add(R)
    return index.search(Q, K)


def search_numpy():
    return knn_vote.search_numpy(Q, R, K)


sim, idx = {"torch": search_torch, "faiss": search_faiss, "numpy": search_numpy}[method]()
sim, idx = np.asarray(sim, dtype=np.float64), np.asarray(idx, dtype=np.int64)
f1 = knn_vote.score_all_k(sim, idx, rl, ql, T, K, C)   # weighted vote and macro F1 for every k
np.save(f"{out}/nb_{method}.npy", train[idx])
np.savetxt(f"{out}/f1_{method}.txt", f1, fmt="%.12f")
print(f"{method}: macro_f1@1 {f1[0]:.4f} @10 {f1[min(9, K - 1)]:.4f} @{K} {f1[-1]:.4f}")
