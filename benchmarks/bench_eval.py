"""Benchmark dmlkeras.evaluation.retrieval_metrics against its matmul floor.

Leave-one-out retrieval metrics (Precision@1, Recall@{1,5,10}, R-Precision,
MAP@R; no KMeans) on random clustered float32 embeddings (d=128; by default
10 classes of equal size, like MNIST, so each query ranks R = n/10 - 1
neighbours for MAP@R).

The floor is the matrix product the exact search cannot avoid,
(n x d) x (d x n), computed in the same blocks of rows as the search and
written into one reused buffer (the full n x n product would not fit in
memory at n = 60,000). It is timed in the same process right before and
right after the metrics (the machine may be shared: the ratio to their mean
is the number to read; "load" is the 1-minute load average before and
after the measurement). "cpu s" and "x cpu" are the same in CPU seconds of
the process (all its threads): a second view on a shared machine, where a
two-thread BLAS product waits for its slower thread and the wall-clock
floor, and so "x matmul", swings from run to run. On an idle machine, with
every thread busy, the two ratios agree.

Each (size, method) runs in a fresh Python process, so that its memory
figure (growth of the peak resident set size across the call) is its own:

* ``numpy``: ``retrieval_metrics(..., backend="numpy")`` (the default:
  one search thread per core, each with one BLAS thread).
* ``numpy1``: the same with ``n_jobs=1`` (one search thread; BLAS uses
  every core for the products), to show what the threads bring.
* ``faiss``: ``retrieval_metrics(..., backend="faiss")``.
* ``previous``: the implementation before the speed-up (kept in
  ``tests/test_evaluation.py`` as ``old_retrieval_metrics``), to check that
  the values agree and to measure the gain.
* ``pml``: pytorch-metric-learning's ``AccuracyCalculator`` (exact faiss
  k-NN with ``k="max_bin_count"``), when it is importable. It needs CPU
  PyTorch: ``pip install torch --index-url https://download.pytorch.org/whl/cpu``
  then ``pip install --no-deps pytorch-metric-learning==2.9.0``. It is
  only run up to ``--pml-max`` embeddings (its memory grows as n x R).

Usage::

    python benchmarks/bench_eval.py                    # n = 10,000, 30,000 and 60,000
    python benchmarks/bench_eval.py --quick            # n = 2,000 and 10,000
    python benchmarks/bench_eval.py --sizes 60000 --methods numpy previous
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
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("numpy", "numpy1", "faiss", "previous", "pml")
KEYS = ("precision_at_1", "recall_at_10", "r_precision", "map_at_r")


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


def matmul_floor(emb: np.ndarray) -> tuple[float, float]:
    """Wall and CPU seconds of the blocked (n x d) x (d x n) float32 product, as in the search."""
    n = emb.shape[0]
    block = max(1, (1 << 24) // n)  # the query block of NearestNeighbors
    gallery_t = emb.T
    out = np.empty((block, n), dtype=np.float32)
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, n, block):
        rows = emb[start : start + block]
        np.matmul(rows, gallery_t, out=out[: rows.shape[0]])
    return time.perf_counter() - t0, time.process_time() - c0


def _pml(emb: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    import torch  # noqa: PLC0415
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator  # noqa: PLC0415

    calc = AccuracyCalculator(
        include=("precision_at_1", "r_precision", "mean_average_precision_at_r"),
        k="max_bin_count",
        device=torch.device("cpu"),
    )
    m = calc.get_accuracy(torch.from_numpy(emb), torch.from_numpy(labels))
    return {
        "precision_at_1": m["precision_at_1"],
        "r_precision": m["r_precision"],
        "map_at_r": m["mean_average_precision_at_r"],
    }


def worker(n: int, method: str, dim: int, n_classes: int) -> dict:
    from dmlkeras.evaluation import retrieval_metrics  # noqa: PLC0415

    if method == "faiss":
        import faiss  # noqa: F401, PLC0415
    if method == "previous":
        from tests.test_evaluation import old_retrieval_metrics  # noqa: PLC0415
    if method == "pml":
        import pytorch_metric_learning  # noqa: F401, PLC0415

    emb, labels = make_data(n, dim, n_classes)
    load_before = os.getloadavg()[0]
    floor_before = matmul_floor(emb)
    rss_before = _maxrss_mib()
    t0, c0 = time.perf_counter(), time.process_time()
    if method in ("numpy", "faiss"):
        m = retrieval_metrics(emb, labels, k=(1, 5, 10), clustering=False, backend=method)
    elif method == "numpy1":
        m = retrieval_metrics(emb, labels, k=(1, 5, 10), clustering=False, n_jobs=1)
    elif method == "previous":
        m = old_retrieval_metrics(emb, labels, ks=(1, 5, 10))
    else:
        m = _pml(emb, labels)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    rss = _maxrss_mib() - rss_before
    floor_after = matmul_floor(emb)
    return {
        "n": n,
        "method": method,
        "seconds": elapsed,
        "floor_seconds": (floor_before[0] + floor_after[0]) / 2,
        "cpu_seconds": cpu,
        "floor_cpu_seconds": (floor_before[1] + floor_after[1]) / 2,
        "maxrss_delta_mib": rss,
        "load": (load_before, os.getloadavg()[0]),
        "metrics": {key: float(m[key]) for key in KEYS if key in m},
    }


def run_one(n: int, method: str, dim: int, n_classes: int) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", str(n), method, "--dim", str(dim), "--classes", str(n_classes)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        tail = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
        print(f"{n:>7} {method:>8}  failed (exit {out.returncode}): {tail}", flush=True)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _importable(name: str) -> bool:
    probe = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True)
    return probe.returncode == 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (2,000 and 10,000)")
    parser.add_argument("--sizes", type=int, nargs="+", help="numbers of embeddings (default 10000 30000 60000)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--pml-max", type=int, default=10_000, help="largest n for pytorch-metric-learning")
    parser.add_argument("--previous-max", type=int, default=60_000, help="largest n for the previous implementation")
    parser.add_argument("--faiss-max", type=int, default=60_000, help="largest n for the faiss backend")
    parser.add_argument("--worker", nargs=2, metavar=("N", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.dim, args.classes)))
        return

    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 30_000, 60_000])
    methods = [m for m in args.methods if m != "pml" or _importable("pytorch_metric_learning")]
    if "pml" in args.methods and "pml" not in methods:
        print("pytorch-metric-learning is not importable: its column is skipped (see the docstring to install it).")
    print(
        f"retrieval_metrics (leave-one-out, k=(1, 5, 10), no clustering), d={args.dim}, "
        f"{args.classes} classes, float32"
    )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average at start: {load}"
    )
    header = (
        f"{'n':>7} {'method':>8} {'time s':>8} {'matmul s':>9} {'x matmul':>8} {'maxrss MiB':>10} "
        f"{'P@1':>7} {'R-prec':>7} {'MAP@R':>7} {'load':>9} {'cpu s':>7} {'x cpu':>6}"
    )
    print(header)
    print("-" * len(header))
    for n in sizes:
        results = []
        for method in methods:
            limit = {"pml": args.pml_max, "previous": args.previous_max, "faiss": args.faiss_max}.get(method)
            if limit is not None and n > limit:
                continue
            r = run_one(n, method, args.dim, args.classes)
            if r is None:
                continue
            results.append(r)
            m = r["metrics"]
            print(
                f"{n:>7} {method:>8} {r['seconds']:>8.2f} {r['floor_seconds']:>9.2f} "
                f"{r['seconds'] / r['floor_seconds']:>8.2f} {r['maxrss_delta_mib']:>10.1f} "
                f"{m['precision_at_1']:>7.4f} {m['r_precision']:>7.4f} {m['map_at_r']:>7.4f} "
                f"{r['load'][0]:>4.1f}/{r['load'][1]:<4.1f} {r['cpu_seconds']:>7.2f} "
                f"{r['cpu_seconds'] / r['floor_cpu_seconds']:>6.2f}",
                flush=True,
            )
        base = next((r for r in results if r["method"] == "numpy"), None)
        for r in results:
            if base is None or r is base:
                continue
            diff = max(abs(base["metrics"][key] - value) for key, value in r["metrics"].items())
            print(f"{'':>7} max |metric difference| numpy vs {r['method']}: {diff:.2e}")


if __name__ == "__main__":
    main()
