"""Speed and memory of every in-batch loss and head, against a matmul floor.

For each batch size n (d = 128 embeddings, P x K labels with K = 4) the
script times one forward + backward pass of each loss (compiled with
``jax.jit`` or ``tf.function``; eager autograd on torch, as Keras trains
there by default), the median (or ``--statistic min``) of ``--repeats`` runs
after a warm-up, and prints it beside the *floor* measured in the same run:
the cheapest thing any in-batch loss must do, one (n, d) x (d, n) matmul and
its gradient. The
machine may be shared, so the floor is measured again right before each loss
and "x floor" is the ratio to that measurement (the first one is the floor
row). The load average is printed at the start and the end. On the
JAX backend it also prints the peak memory XLA plans for the compiled step
(arguments + outputs + temporaries, from ``compiled.memory_analysis()``).

Usage::

    KERAS_BACKEND=jax python benchmarks/bench_losses.py            # full table
    KERAS_BACKEND=jax python benchmarks/bench_losses.py --sizes 256 1024 --repeats 20
    KERAS_BACKEND=torch python benchmarks/bench_losses.py --sizes 1024 --losses triplet-semihard triplet-all
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Time the dmlkeras of this checkout, not whichever one the environment installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import dmlkeras.losses as L  # noqa: E402
from dmlkeras import heads  # noqa: E402

D = 128


def candidate_losses() -> dict[str, keras.losses.Loss]:
    """Every registered in-batch loss (:func:`dmlkeras.losses.names`) and the heads' losses."""
    losses = {name: L.get(name) for name in L.names()}

    def soft_triple_loss(y, x, w):  # K = 10 centres per class (the default), from the (C, d) weights
        return heads.soft_triple_loss(y, x, keras.ops.stack([w * (1.0 + 0.1 * k) for k in range(10)], axis=1))

    def subcenter_arcface_loss(y, x, w):  # k = 3 sub-centres per class (the default)
        return heads.subcenter_arcface_loss(y, x, keras.ops.stack([w, -w, keras.ops.flip(w, axis=1)], axis=1))

    for label, function in {
        "head: center": heads.center_loss,
        "head: triplet-center": heads.triplet_center_loss,
        "head: proxy-anchor": heads.proxy_anchor_loss,
        "head: proxy-nca": heads.proxy_nca_loss,
        "head: soft-triple": soft_triple_loss,
        "head: arcface": heads.arcface_loss,
        "head: cosface": heads.cosface_loss,
        "head: normalized-softmax": heads.normalized_softmax_loss,
        "head: subcenter-arcface": subcenter_arcface_loss,
    }.items():
        losses[label] = HeadLoss(function)
    return losses


class HeadLoss(keras.losses.Loss):
    """A head's loss function with fixed class weights (one per class of the batch).

    The heads own their weights in training; here the weights are a constant
    so that the timing covers the loss and the embedding gradient alone.
    """

    def __init__(self, function):
        super().__init__(name=function.__name__)
        self.function = function

    def call(self, y_true, y_pred):
        num_classes = y_pred.shape[0] // 4
        weights = keras.random.normal((num_classes, y_pred.shape[1]), seed=0)
        return self.function(keras.ops.cast(y_true, "int32"), y_pred, weights)  # (labels, embeddings, ...)


class Floor(keras.losses.Loss):
    """One (n, d) x (d, n) matmul reduced to a scalar: the cost floor."""

    def call(self, y_true, y_pred):
        return keras.ops.mean(keras.ops.matmul(y_pred, keras.ops.transpose(y_pred)))


def compile_step(loss):
    """A compiled function (labels, embeddings) -> (loss, gradient)."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(jax.value_and_grad(lambda x, y: loss(y, x)))
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=False, reduce_retracing=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                tape.watch(x)
                value = loss(y, x)
            return value, tape.gradient(value, x)

        return step
    if backend == "torch":
        import torch

        def step(x, y):
            x = x.detach().requires_grad_(True)
            value = loss(y, x)
            (grad,) = torch.autograd.grad(value, x)
            return value.detach(), grad

        return step
    raise SystemExit(f"Benchmark supports the jax, tensorflow and torch backends, not {backend}.")


def block(result):
    value, grad = result
    return float(keras.ops.convert_to_numpy(value)), keras.ops.convert_to_numpy(grad)


def peak_memory_mb(step, x, y) -> float | None:
    """XLA's planned peak memory of the compiled step (JAX only)."""
    if keras.backend.backend() != "jax":
        return None
    analysis = step.lower(x, y).compile().memory_analysis()
    if analysis is None:
        return None
    total = analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
    return total / 2**20


def time_ms(step, x, y, repeats: int, statistic: str = "median") -> float:
    block(step(x, y))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(step(x, y))
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times) if statistic == "median" else min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--losses", nargs="*", help="subset of loss names to run")
    parser.add_argument(
        "--statistic",
        choices=("median", "min"),
        default="median",
        help="of the repeats; the minimum is the steadier on a shared machine",
    )
    args = parser.parse_args()

    losses = candidate_losses()
    if args.losses:
        losses = {k: v for k, v in losses.items() if k in args.losses}
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(
        f"backend={keras.backend.backend()} keras={keras.__version__} d={D} repeats={args.repeats} "
        f"({args.statistic}) load average: {load}"
    )
    print(f"{'loss':<24}{'n':>6}{'ms':>10}{'x floor':>9}{'peak MB':>9}")
    for n in args.sizes:
        rng = np.random.default_rng(0)
        x = keras.ops.convert_to_tensor(rng.normal(size=(n, D)).astype("float32"))
        y = keras.ops.convert_to_tensor(rng.permutation(np.repeat(np.arange(n // 4), 4)).astype("int32"))
        floor_step = compile_step(Floor())
        floor = time_ms(floor_step, x, y, args.repeats, args.statistic)
        memory = peak_memory_mb(floor_step, x, y)
        print(f"{'floor (matmul + grad)':<24}{n:>6}{floor:>10.2f}{1.0:>9.1f}{memory or float('nan'):>9.1f}")
        for name, loss in losses.items():
            step = compile_step(loss)
            floor = time_ms(floor_step, x, y, args.repeats, args.statistic)  # the floor of this moment
            ms = time_ms(step, x, y, args.repeats, args.statistic)
            memory = peak_memory_mb(step, x, y)
            print(f"{name:<24}{n:>6}{ms:>10.2f}{ms / floor:>9.1f}{memory or float('nan'):>9.1f}", flush=True)
    print("load average at the end: " + ", ".join(f"{v:.1f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
