"""Benchmark dmlkeras.index.Index: exact vs approximate FAISS indexes.

For each data set, every index is built from the same vectors and asked the
same 1,000 queries (one batch, k = 10). Reported per index:

* ``build s``: ``Index.add`` (including FAISS training for IVF / PQ);
* ``queries/s``: query throughput of the batch;
* ``MiB``: size of what the index holds (the float32 vectors for exact
  indexes, ``faiss.serialize_index`` for approximate ones);
* ``recall@10``: the fraction of the exact 10 nearest neighbours (numpy
  exact search) that the index returns.

Data sets (d = 64, euclidean):

* ``synthetic``: 2,000 Gaussian clusters (centres N(0, 1), spread 0.35),
  queries drawn from the same mixture; 100,000 and 1,000,000 vectors.
* ``mnist``: PCA-64 of the MNIST training pixels (all 60,000 images: MNIST
  has no more), queries are 1,000 test images projected by the same PCA.
  Needs ``mnist.npz`` under ``$DMLKERAS_DATA_DIR`` (skipped otherwise).

The approximate indexes: ``HNSW32`` (efSearch 64), ``IVF{L},Flat`` and
``IVF{L},PQ16`` (nprobe 16) with L = 256 lists up to 100k vectors and 1024
above.

Usage::

    python benchmarks/bench_index.py            # 100k and 1M synthetic, MNIST (a few minutes)
    python benchmarks/bench_index.py --quick    # 20k synthetic, MNIST subset of 20k
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DIM = 64
K = 10
N_QUERIES = 1_000


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2_000, DIM)).astype(np.float32)

    def draw(m: int) -> np.ndarray:
        out = np.empty((m, DIM), dtype=np.float32)
        for start in range(0, m, 200_000):
            stop = min(m, start + 200_000)
            labels = rng.integers(0, len(centres), stop - start)
            out[start:stop] = centres[labels] + 0.35 * rng.normal(size=(stop - start, DIM)).astype(np.float32)
        return out

    return draw(n), draw(N_QUERIES)


def mnist_pca(limit: int | None) -> tuple[np.ndarray, np.ndarray] | None:
    data_dir = os.environ.get("DMLKERAS_DATA_DIR")
    path = Path(data_dir) / "mnist.npz" if data_dir else None
    if path is None or not path.is_file():
        return None
    from sklearn.decomposition import PCA  # noqa: PLC0415

    with np.load(path) as f:
        x_train = f["x_train"].reshape(len(f["x_train"]), -1).astype(np.float32) / 255.0
        x_test = f["x_test"][:N_QUERIES].reshape(N_QUERIES, -1).astype(np.float32) / 255.0
    if limit is not None:
        x_train = x_train[:limit]
    pca = PCA(n_components=DIM, random_state=0).fit(x_train)
    return pca.transform(x_train).astype(np.float32), pca.transform(x_test).astype(np.float32)


def configurations(n: int) -> list[tuple[str, str, str, dict]]:
    lists = 256 if n <= 100_000 else 1024
    return [
        ("exact numpy", "numpy", "Flat", {}),
        ("exact faiss", "faiss", "Flat", {}),
        ("HNSW32 ef=64", "faiss", "HNSW32", {"ef_search": 64}),
        (f"IVF{lists},Flat np=16", "faiss", f"IVF{lists},Flat", {"nprobe": 16}),
        (f"IVF{lists},PQ16 np=16", "faiss", f"IVF{lists},PQ16", {"nprobe": 16}),
    ]


def index_mib(index) -> float:
    if index.exact:
        return len(index) * DIM * 4 / 2**20
    import faiss  # noqa: PLC0415

    return faiss.serialize_index(index._faiss).size / 2**20


def run(name: str, x: np.ndarray, q: np.ndarray) -> None:
    from dmlkeras.index import Index  # noqa: PLC0415

    truth = None
    print(f"\n{name}: {len(x):,} vectors, d={x.shape[1]}, {len(q):,} queries, k={K}", flush=True)
    header = f"{'index':>22} {'build s':>8} {'queries/s':>10} {'MiB':>8} {'recall@10':>9}"
    print(header)
    print("-" * len(header))
    for label, backend, factory, params in configurations(len(x)):
        t0 = time.perf_counter()
        index = Index(backend=backend, factory=factory, **params).add(x)
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        found = index.search(q, k=K)
        qps = len(q) / (time.perf_counter() - t0)
        if truth is None:
            truth = found.indices  # the exact numpy search comes first
        hits = sum(len(set(a) & set(b)) for a, b in zip(found.indices.tolist(), truth.tolist()))
        recall = hits / truth.size
        print(f"{label:>22} {build:>8.2f} {qps:>10.0f} {index_mib(index):>8.1f} {recall:>9.3f}", flush=True)
        del index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 synthetic vectors and 20,000 MNIST images")
    parser.add_argument("--sizes", type=int, nargs="+", help="synthetic sizes (default 100000 1000000)")
    parser.add_argument("--no-mnist", action="store_true")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([20_000] if args.quick else [100_000, 1_000_000])
    import faiss  # noqa: PLC0415

    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"faiss {faiss.__version__}, numpy {np.__version__}, load average at start: {load}"
    )
    for n in sizes:
        x, q = synthetic(n)
        run("synthetic clusters", x, q)
        del x
    if not args.no_mnist:
        data = mnist_pca(20_000 if args.quick else None)
        if data is None:
            print("\nMNIST skipped: set DMLKERAS_DATA_DIR to a folder holding mnist.npz.")
        else:
            run("MNIST train, PCA-64 of the pixels", *data)


if __name__ == "__main__":
    main()
