#!/usr/bin/python3
# Python baselines for tests/bench/knn_vs_python.sh: exact top-K cosine neighbours + macro F1 for every
# k = 1..K (DINO weighted vote), with numpy, scikit-learn, PyTorch mm+topk (as DINO's eval_knn) and faiss; each
# method's neighbour lists are compared with protloc's (DATA_DIR/protloc_neighbours.npy, written by bench_knn).
#   /usr/bin/python3 knn_vs_python.py DATA_DIR K THREADS
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import knn_vote  # noqa: E402  (the vote every peer uses)

data, K, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
R = np.load(f"{data}/refs.npy"); Q = np.load(f"{data}/queries.npy")
rl = np.load(f"{data}/ref_labels.npy").astype(np.int64); ql = np.load(f"{data}/query_labels.npy").astype(np.int64)
C = int(max(rl.max(), ql.max())) + 1
PROTLOC = np.load(f"{data}/protloc_neighbours.npy") if os.path.exists(f"{data}/protloc_neighbours.npy") else None
T = 0.07


def score_all_k(sim, idx):
    return knn_vote.score_all_k(sim, idx, rl, ql, T, K, C)


def run_numpy():
    return knn_vote.search_numpy(Q, R, K)


def run_sklearn():
    from sklearn.neighbors import NearestNeighbors
    nn = NearestNeighbors(n_neighbors=K, algorithm="brute", metric="cosine", n_jobs=threads).fit(R)
    d, i = nn.kneighbors(Q)
    return 1.0 - d, i


def run_torch():
    import torch
    torch.set_num_threads(threads)
    tr = torch.from_numpy(R); te = torch.from_numpy(Q)
    sims, idxs = [], []
    chunk = max(1, len(Q) // 100)                     # DINO eval_knn: num_chunks = 100
    with torch.no_grad():
        for q0 in range(0, len(Q), chunk):
            s = torch.mm(te[q0:q0 + chunk], tr.T)
            d, i = s.topk(K, largest=True, sorted=True)
            sims.append(d); idxs.append(i)
    return torch.cat(sims).numpy(), torch.cat(idxs).numpy()


def run_faiss():
    import faiss
    faiss.omp_set_num_threads(threads)
    index = faiss.IndexFlatIP(R.shape[1])
    index.add(R)
    d, i = index.search(Q, K)
    return d, i


results = {}
for name, fn in (("pytorch_mm_topk", run_torch), ("faiss_IndexFlatIP", run_faiss), ("numpy", run_numpy),
                 ("sklearn_brute", run_sklearn)):
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        sim, idx = fn()
        t1 = time.perf_counter()
        f1 = score_all_k(np.asarray(sim, dtype=np.float64), np.asarray(idx))
        t2, c2 = time.perf_counter(), time.process_time()
        results[name] = (t1 - t0, t2 - t1)
        same = ""
        if PROTLOC is not None and PROTLOC.shape == np.asarray(idx).shape:
            idx = np.asarray(idx, dtype=np.int64)
            lists = np.mean(np.all(idx == PROTLOC, axis=1))
            sets = np.mean(np.all(np.sort(idx, axis=1) == np.sort(PROTLOC, axis=1), axis=1))
            same = f"  same lists as protloc {100 * lists:.2f}% of queries (same sets {100 * sets:.2f}%)"
        print(f"{name:20s} search {t1 - t0:7.3f} s  scoring {t2 - t1:6.3f} s  total {t2 - t0:7.3f} s wall, "
              f"{c2 - c0:7.3f} s CPU  macro_f1@1 {f1[0]:.4f} @10 {f1[min(9, K - 1)]:.4f} @{K} {f1[-1]:.4f}{same}",
              flush=True)
    except Exception as e:  # a missing package is reported, not fatal
        print(f"{name:20s} unavailable: {e}", flush=True)
