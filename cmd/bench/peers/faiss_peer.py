#!/usr/bin/python3
"""faiss peer for `go run ./cmd/bench scale`: the same vectors, the same queries, the
same measurements, with IndexFlatIP (exact) and IndexHNSWFlat (inner product).

Reads from --dir (written by bench scale):
  refs.f32     n x dim float32, little-endian, row-major
  queries.f32  nq x dim float32
  gt.i32       nq x ktop int32, the Go exact index's top-ktop positions
  meta.json    {"n", "nq", "dim", "k", "ktop", "m", "efc", "efs": [...],
                "lat_queries", "threads"}
Prints one JSON object on stdout; progress goes to stderr.
Run with Debian's python3 (python3-faiss, python3-numpy).
"""
import argparse
import json
import os
import sys
import time

import faiss
import numpy as np


def rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def log(*a):
    print("faiss_peer:", *a, file=sys.stderr, flush=True)


def latencies(index, qs, k):
    """One query at a time; returns per-query seconds."""
    out = np.empty(len(qs))
    for i in range(len(qs)):
        t = time.perf_counter()
        index.search(qs[i : i + 1], k)
        out[i] = time.perf_counter() - t
    return out


def lat_stats(lat):
    return {
        "qps": float(len(lat) / lat.sum()),
        "ms_per_query": float(1000 * lat.mean()),
        "p50_ms": float(1000 * np.percentile(lat, 50)),
        "p99_ms": float(1000 * np.percentile(lat, 99)),
    }


def batch(index, qs, k):
    t = time.perf_counter()
    _, ids = index.search(qs, k)
    dt = time.perf_counter() - t
    return ids, {"qps": float(len(qs) / dt), "ms_per_query": float(1000 * dt / len(qs))}


def recall(ids, gt, k):
    hits = 0
    for row, want in zip(ids[:, :k], gt[:, :k]):
        hits += len(np.intersect1d(row, want, assume_unique=False))
    return hits / (len(gt) * k)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    args = ap.parse_args()
    meta = json.load(open(os.path.join(args.dir, "meta.json")))
    n, nq, d = meta["n"], meta["nq"], meta["dim"]
    k, ktop = meta["k"], meta["ktop"]
    threads = meta.get("threads") or os.cpu_count()
    nlat = meta["lat_queries"]

    base = rss_bytes()
    xb = np.fromfile(os.path.join(args.dir, "refs.f32"), dtype="<f4").reshape(n, d)
    xq = np.fromfile(os.path.join(args.dir, "queries.f32"), dtype="<f4").reshape(nq, d)
    gt = np.fromfile(os.path.join(args.dir, "gt.i32"), dtype="<i4").reshape(nq, ktop)
    data_bytes = rss_bytes() - base
    res = {"faiss_version": faiss.__version__, "threads": threads}

    # Exact.
    before = rss_bytes()
    t = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(xb)
    fl = {"build_s": time.perf_counter() - t, "mem_bytes": rss_bytes() - before}
    lq = xq[:nlat]
    faiss.omp_set_num_threads(1)
    fl["one_thread"] = lat_stats(latencies(flat, lq, ktop))
    _, fl["one_thread_batch"] = batch(flat, xq, ktop)
    faiss.omp_set_num_threads(threads)
    fl["all_cores"] = lat_stats(latencies(flat, lq, ktop))
    ids, fl["all_cores_batch"] = batch(flat, xq, ktop)
    fl["recall_vs_go_exact@%d" % ktop] = recall(ids, gt, ktop)
    res["flat"] = fl
    log("flat", json.dumps(fl))
    del flat

    # HNSW.
    before = rss_bytes()
    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, meta["m"], faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = meta["efc"]
    hnsw.add(xb)
    hn = {"build_s": time.perf_counter() - t, "mem_bytes": rss_bytes() - before, "m": meta["m"], "efc": meta["efc"]}
    log("hnsw build %.1fs" % hn["build_s"])
    sweep = []
    for ef in meta["efs"]:
        hnsw.hnsw.efSearch = ef
        faiss.omp_set_num_threads(1)
        one = lat_stats(latencies(hnsw, xq, k))
        faiss.omp_set_num_threads(threads)
        ids, allc = batch(hnsw, xq, k)
        row = {"ef": ef, "recall@10": recall(ids, gt, k), "one_thread": one, "all_cores_batch": allc}
        sweep.append(row)
        log("hnsw", json.dumps(row))
    hn["sweep"] = sweep
    res["hnsw"] = hn
    res["data_bytes"] = data_bytes
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
