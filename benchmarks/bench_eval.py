"""Benchmark dmlkeras.evaluation.retrieval_metrics: numpy vs faiss backend.

Leave-one-out retrieval metrics (Precision@1, Recall@{1,5,10}, R-Precision,
MAP@R; no KMeans) on random clustered embeddings (d=128, 100 classes of
equal size, so R = n/100 - 1 neighbours per query are ranked for MAP@R).

Each (size, backend) runs in a fresh Python process so that its memory
figures are its own. Two memory columns are printed:

* ``tracemalloc MiB``: peak of the allocations traced by :mod:`tracemalloc`
  during the call. NumPy reports its array buffers to tracemalloc, so for
  the numpy backend this is the peak of the working arrays (distance
  blocks, neighbour lists); faiss allocates in C++ without telling
  tracemalloc, so for faiss it only counts the NumPy side.
* ``maxrss delta MiB``: growth of the process's peak resident set size
  (``resource.getrusage(RUSAGE_SELF).ru_maxrss``) across the call, measured
  after the data were made and every library imported: it includes every
  allocator (faiss, BLAS buffers) but is page-granular and only moves when
  the previous peak is exceeded.

Usage::

    python benchmarks/bench_eval.py            # n = 10,000 and 60,000
    python benchmarks/bench_eval.py --quick    # n = 2,000 and 10,000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def make_data(n: int, dim: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Clustered float32 embeddings: class centres plus isotropic noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, dim)).astype(np.float32)
    labels = np.arange(n) % n_classes
    emb = centers[labels] + 1.6 * rng.normal(size=(n, dim)).astype(np.float32)
    return emb, labels


def _maxrss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024  # bytes on macOS, KiB on Linux


def worker(n: int, backend: str, dim: int, n_classes: int) -> dict:
    from dmlkeras.evaluation import retrieval_metrics  # noqa: PLC0415

    if backend == "faiss":
        import faiss  # noqa: F401, PLC0415

    emb, labels = make_data(n, dim, n_classes)
    rss_before = _maxrss_mib()
    tracemalloc.start()
    t0 = time.perf_counter()
    m = retrieval_metrics(emb, labels, k=(1, 5, 10), clustering=False, backend=backend)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "n": n,
        "backend": backend,
        "seconds": elapsed,
        "tracemalloc_mib": peak / 2**20,
        "maxrss_delta_mib": _maxrss_mib() - rss_before,
        "metrics": {key: m[key] for key in ("precision_at_1", "recall_at_10", "r_precision", "map_at_r")},
    }


def run_one(n: int, backend: str, dim: int, n_classes: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n), backend, "--dim", str(dim), "--classes", str(n_classes)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (2,000 and 10,000)")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of embeddings (default 10000 60000)")
    parser.add_argument("--backends", nargs="+", default=["numpy", "faiss"], choices=["numpy", "faiss"])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--worker", nargs=2, metavar=("N", "BACKEND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.dim, args.classes)))
        return

    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 60_000])
    print(
        f"retrieval_metrics (leave-one-out, k=(1, 5, 10), no clustering), d={args.dim}, "
        f"{args.classes} classes, float32"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"load average at start: {load}"
    )
    header = f"{'n':>7} {'backend':>7} {'time s':>8} {'tracemalloc MiB':>15} {'maxrss delta MiB':>16} {'P@1':>6} {'MAP@R':>6}"
    print(header)
    print("-" * len(header))
    for n in sizes:
        results = []
        for backend in args.backends:
            r = run_one(n, backend, args.dim, args.classes)
            results.append(r)
            print(
                f"{n:>7} {backend:>7} {r['seconds']:>8.2f} {r['tracemalloc_mib']:>15.1f} "
                f"{r['maxrss_delta_mib']:>16.1f} {r['metrics']['precision_at_1']:>6.3f} {r['metrics']['map_at_r']:>6.3f}",
                flush=True,
            )
        if len(results) > 1:
            diff = max(abs(results[0]["metrics"][key] - r["metrics"][key]) for r in results[1:] for key in r["metrics"])
            print(f"{'':>7} max |metric difference| between backends: {diff:.2e}")


if __name__ == "__main__":
    main()
