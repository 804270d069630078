#!/usr/bin/env python3
"""HDF5's deflate (h5py, with and without HDF5's shuffle filter) against zstd on a training cache's real samples.

Reads every sample of one or more training caches (`protloc cache build --cache DIR`; shard format in docs/formats.md
"Training cache", version 2: one zstd frame of plain float32 (C, S, S) per sample), then compresses the same float32
samples, one sample per independent unit, single thread:

- zstd levels 1, 3 (what the shards use) and 9: `zstd -q -b<L> -i<SECONDS> -B<C*S*S*4> --single-thread RAW`, i.e.
  zstd's in-memory benchmark on the concatenated raw samples cut into independent blocks of one sample each
  (each block is compressed as its own frame; best of the timed loops; MB = 10^6 bytes of raw float32, for both
  compression and decompression). zstd's bench frames carry no content checksum (the shards' do: +4 B per frame).
- HDF5 deflate via h5py: a dataset (N, C, S, S) float32 with chunks (1, C, S, S), compression="gzip" at levels 1, 4
  (h5py's default) and 6, without and with shuffle=True; ratio = raw bytes / the dataset's storage size (chunks only;
  the file size goes to stderr); write = create the file, write the N samples one by one, close; read = open, read
  every sample back one by one (into one preallocated buffer); best of --repeats rounds or more, until the rounds
  took --seconds; the files live in --tmp
  (page cache, no fsync), so the times are the codec's CPU plus HDF5's and h5py's per-chunk overhead.
- "zstd 3 + byte shuffle": as zstd 3 on the byte-shuffled samples (the shards' format version 1; the shuffle itself
  not timed), to set against HDF5's shuffle filter.
- "deflate 4 alone": zlib.compress / zlib.decompress of each sample in Python (the same zlib, without HDF5's
  chunk I/O), to tell the codec from HDF5's overhead.
- "shards (on disk)": the cache's own level-3 frames (with checksum): ratio only.

Prints a Markdown table (rows: codecs; columns: caches) with the CPU model, load averages, zstd and HDF5 versions.
The samples are decompressed with the zstd CLI (one `zstd -dc` per shard: the frames are back to back, so the
frames from byte 64 to the table give the concatenated samples).

usage: tests/bench/cache_codecs.py [--seconds 2] [--repeats 3] [--tmp DIR] [--label NAME ...] CACHE_DIR [...]
  e.g. KEEP_DIR=/tmp/cc CACHES_ONLY=1 tests/bench/bench_cache_reader.sh build
       /usr/bin/python3 tests/bench/cache_codecs.py /tmp/cc/a224 /tmp/cc/b512 /tmp/cc/hpa224 /tmp/cc/hpa512
"""
import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib

import h5py
import numpy as np

HEADER = struct.Struct("<8sIIIIQQQQQ")          # 64 bytes
assert HEADER.size == 64


def zstd_dc(data):
    r = subprocess.run(["zstd", "-dc", "-q"], input=data, stdout=subprocess.PIPE, check=True)
    return r.stdout


def read_cache(d):
    """All samples of cache d as float32 (N, C, S, S), and the shards' frame bytes (level 3, on disk)."""
    idx = json.load(open(os.path.join(d, "cache.json")))
    names = idx.get("shards") or sorted(os.listdir(os.path.join(d, "shards")))
    parts, C0, S0, on_disk = [], None, None, 0
    for name in names:
        buf = open(os.path.join(d, "shards", name), "rb").read()
        magic, ver, C, S, dtype, n_items, n, toff, tbytes, traw = HEADER.unpack_from(buf, 0)
        if magic != b"PLCSHRD1" or ver != 2 or dtype != 1:
            sys.exit(f"{name}: not a version-2 float32 shard (magic {magic!r}, version {ver}, dtype {dtype})")
        if (C0, S0) != (None, None) and (C, S) != (C0, S0):
            sys.exit(f"{name}: shape {C}x{S} differs from {C0}x{S0}")
        C0, S0 = C, S
        table = zstd_dc(buf[toff:toff + tbytes])
        if len(table) != traw or len(table) < 12 * n:
            sys.exit(f"{name}: table of {len(table)} bytes, expected {traw}")
        ent = np.frombuffer(table[len(table) - 12 * n:], dtype=np.dtype([("off", "<u8"), ("bytes", "<u4")]))
        # frames back to back from 64 to the table: one zstd -dc gives the samples in order
        ends = ent["off"].astype(np.int64) + ent["bytes"].astype(np.int64)
        if n and (ent["off"][0] != 64 or ends[-1] != toff or np.any(ent["off"][1:].astype(np.int64) != ends[:-1])):
            sys.exit(f"{name}: frames not back to back from byte 64 to the table")
        raw = zstd_dc(buf[64:toff]) if n else b""
        if len(raw) != n * C * S * S * 4:
            sys.exit(f"{name}: {len(raw)} bytes of samples, expected {n * C * S * S * 4}")
        parts.append(np.frombuffer(raw, dtype="<f4").reshape(n, C, S, S))
        on_disk += toff - 64
    x = np.ascontiguousarray(np.concatenate(parts)) if parts else np.zeros((0, 1, 1, 1), np.float32)
    return x, on_disk


def zstd_bench(raw_path, level, block, seconds):
    """(ratio, compress MB/s, decompress MB/s) from zstd's benchmark mode, one-sample independent blocks."""
    r = subprocess.run(["zstd", "-q", f"-b{level}", f"-i{seconds}", f"-B{block}", "--single-thread", raw_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=True)
    # "-3      4000207 (1.000) 5218.48 MB/s 40800.9 MB/s  name"
    m = re.search(rf"^\s*-{level}\s+(\d+)\s+\(\s*([\d.]+)\)\s+([\d.]+)\s+MB/s\s+([\d.]+)\s+MB/s", r.stdout, re.M)
    if not m:
        sys.exit(f"cannot parse zstd -b output:\n{r.stdout}")
    return int(m.group(1)), float(m.group(3)), float(m.group(4))


def zlib_bench(x, level, repeats, seconds):
    """(compressed bytes, compress MB/s, decompress MB/s) of zlib.compress per sample: deflate without HDF5."""
    mb, cbest, dbest, rounds, start = x.nbytes / 1e6, float("inf"), float("inf"), 0, time.perf_counter()
    while rounds < repeats or time.perf_counter() - start < seconds:
        rounds += 1
        t0 = time.perf_counter()
        z = [zlib.compress(x[i], level) for i in range(x.shape[0])]
        t1 = time.perf_counter()
        for b in z:
            zlib.decompress(b)
        t2 = time.perf_counter()
        cbest, dbest = min(cbest, t1 - t0), min(dbest, t2 - t1)
    return sum(map(len, z)), mb / cbest, mb / dbest


def h5_bench(x, path, level, shuffle, repeats, seconds):
    """(stored bytes, file bytes, write MB/s, read MB/s) of deflate `level` (+ shuffle) with one-sample chunks:
    best write and best read of at least `repeats` rounds, more until the rounds took `seconds`."""
    n = x.shape[0]
    mb = x.nbytes / 1e6
    wbest = rbest = float("inf")
    out = np.empty(x.shape[1:], np.float32)
    rounds, start = 0, time.perf_counter()
    while rounds < repeats or time.perf_counter() - start < seconds:
        rounds += 1
        if os.path.exists(path):
            os.remove(path)
        t0 = time.perf_counter()
        with h5py.File(path, "w") as f:
            ds = f.create_dataset("x", shape=x.shape, dtype="<f4", chunks=(1,) + x.shape[1:],
                                  compression="gzip", compression_opts=level, shuffle=shuffle)
            for i in range(n):
                ds[i] = x[i]
        t1 = time.perf_counter()
        with h5py.File(path, "r") as f:
            ds = f["x"]
            stored = ds.id.get_storage_size()
            t2 = time.perf_counter()
            for i in range(n):
                ds.read_direct(out, np.s_[i])
            t3 = time.perf_counter()
        if not np.array_equal(out, x[n - 1]):
            sys.exit("HDF5 read back differs")
        wbest, rbest = min(wbest, t1 - t0), min(rbest, t3 - t2)
    size = os.path.getsize(path)
    os.remove(path)
    return stored, size, mb / wbest, mb / rbest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("caches", nargs="+")
    ap.add_argument("--label", action="append", default=[], help="column name per cache (default: folder name)")
    ap.add_argument("--seconds", type=int, default=2, help="zstd -i: minimum seconds per benchmark")
    ap.add_argument("--repeats", type=int, default=3, help="HDF5 timings: best of")
    ap.add_argument("--tmp", default=None, help="folder for the raw sample file and the HDF5 files")
    a = ap.parse_args()
    labels = a.label + [os.path.basename(os.path.normpath(c)) for c in a.caches[len(a.label):]]
    load0 = open("/proc/loadavg").read().split()[:3]
    cpu = re.search(r"^Model name:\s*(.*)$", subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout,
                    re.M)
    zver = re.search(r"v(\d+\.\d+\.\d+)", subprocess.run(["zstd", "-V"], stdout=subprocess.PIPE, text=True).stdout)
    lscpu = subprocess.run(["lscpu"], stdout=subprocess.PIPE, text=True).stdout
    fam = re.search(r"^CPU family:\s*(\S+)", lscpu, re.M)
    mod = re.search(r"^Model:\s*(\S+)", lscpu, re.M)
    tmp = tempfile.mkdtemp(prefix="protloc-codecs-", dir=a.tmp)
    rows = {}            # codec -> [cell per cache]
    order = ["shards (on disk, zstd 3 + checksum)"] + [f"zstd {l}" for l in (1, 3, 9)] + \
            ["zstd 3 + byte shuffle", "deflate 4 alone (Python zlib)"] + [f"HDF5 deflate {l}{' + shuffle' if s else ''}" for s in (False, True) for l in (1, 4, 6)]
    heads = []
    try:
        for c, lab in zip(a.caches, labels):
            x, on_disk = read_cache(c)
            N, C, S, _ = x.shape
            raw = x.nbytes
            heads.append(f"{lab}: {N} × {C}×{S}² ({raw / 2**20:.2f} MiB)")
            print(f"# {lab} ({c}): {N} samples of {C} x {S} x {S} float32, {raw} bytes", file=sys.stderr, flush=True)
            rows.setdefault(order[0], []).append(f"{raw / on_disk:.3f}, —")
            rp = os.path.join(tmp, "raw.f32")
            x.tofile(rp)
            for l in (1, 3, 9):
                comp, cs, ds = zstd_bench(rp, l, C * S * S * 4, a.seconds)
                rows.setdefault(f"zstd {l}", []).append(f"{raw / comp:.3f}, {cs:.0f} / {ds:.0f}")
            # the shards' former byte shuffle (plane b = byte b of every float), per sample; the shuffle is not timed
            x.view(np.uint8).reshape(N, -1, 4).transpose(0, 2, 1).tofile(rp)
            comp, cs, ds = zstd_bench(rp, 3, C * S * S * 4, a.seconds)
            rows.setdefault("zstd 3 + byte shuffle", []).append(f"{raw / comp:.3f}, {cs:.0f} / {ds:.0f}")
            os.remove(rp)
            comp, cs, ds = zlib_bench(x, 4, a.repeats, a.seconds)
            rows.setdefault("deflate 4 alone (Python zlib)", []).append(f"{raw / comp:.3f}, {cs:.0f} / {ds:.0f}")
            for s in (False, True):
                for l in (1, 4, 6):
                    stored, size, w, r = h5_bench(x, os.path.join(tmp, "x.h5"), l, s, a.repeats, a.seconds)
                    rows.setdefault(f"HDF5 deflate {l}{' + shuffle' if s else ''}", []).append(
                        f"{raw / stored:.3f}, {w:.0f} / {r:.0f}")
                    print(f"#   deflate {l} shuffle {s}: file {size} bytes, chunks {stored}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load1 = open("/proc/loadavg").read().split()[:3]
    print(f"# cache_codecs.py, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# cpu: {cpu.group(1) if cpu else '?'} (family {fam.group(1) if fam else '?'} model "
          f"{mod.group(1) if mod else '?'}), {os.cpu_count()} cores; load average before {' '.join(load0)}, "
          f"after {' '.join(load1)}")
    print(f"# zstd {zver.group(1) if zver else '?'} (CLI); HDF5 {h5py.version.hdf5_version} (h5py {h5py.version.version}, zlib deflate); one thread")
    print(f"# cells: ratio (raw float32 / compressed), compress / decompress MB/s of raw float32 (10^6 B); "
          f"zstd: zstd -q -b<L> -i{a.seconds} -B<sample bytes> --single-thread; HDF5: write / read, best of "
          f">= {a.repeats} rounds (>= {a.seconds} s), chunks (1, C, S, S), files in {a.tmp or tempfile.gettempdir()}")
    print()
    print("| codec | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(heads))
    for k in order:
        print(f"| {k} | " + " | ".join(rows[k]) + " |")


if __name__ == "__main__":
    main()
