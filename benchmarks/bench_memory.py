"""Memory and time of large batches: blocked vs unblocked losses, and cross-batch memory.

(a) ``--part blocks``: for each batch size n (d = 128, P x K labels with K = 4)
one compiled forward + backward pass of a loss, unblocked and with
``block_size=--block-size``: XLA's planned peak memory (arguments + outputs +
temporaries, ``compiled.memory_analysis()``) and the median time, with the
time per element of the n x n matrix. A step whose planned peak exceeds
``--max-gb`` is compiled (to report its plan) but not run.

(b) ``--part memory``: a ``dmlkeras.models.CrossBatchMemory`` train step
(``train_on_batch``, a Dense tower 128 -> 128, batch ``--batch``) for each
memory size, its time and the planned peak of the loss + gradient against
the memory, with the ratio to the plain loss (memory size 0) in the same run.

JAX only (the memory plan is XLA's). Usage::

    KERAS_BACKEND=jax python benchmarks/bench_memory.py --part blocks --sizes 4096 16384 32768
    KERAS_BACKEND=jax python benchmarks/bench_memory.py --part memory --memory-sizes 0 1024 4096 16384
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the dmlkeras of this checkout

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dmlkeras import losses  # noqa: E402
from dmlkeras.models import CrossBatchMemory  # noqa: E402

D = 128


def batch(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype("float32")
    y = rng.permutation(np.repeat(np.arange(n // 4), 4)).astype("int32")
    return x, y


def compiled(function, *args):
    """The jitted function and its planned peak memory in bytes."""
    import jax

    step = jax.jit(function)
    analysis = step.lower(*args).compile().memory_analysis()
    peak = analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
    return step, peak


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up (compilation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def blocks_part(args) -> None:
    import jax

    print(f"(a) blocked vs unblocked: backend=jax keras={keras.__version__} d={D} block={args.block_size}")
    print(f"{'loss':<18}{'n':>7}{'block':>7}{'peak GB':>9}{'s':>9}{'ns/elem':>9}  note")
    for n in args.sizes:
        x, y = batch(n)
        for name in args.losses:
            per_element = {}
            for block_size in (None, args.block_size):
                loss = losses.get(name, block_size=block_size)
                step, peak = compiled(jax.value_and_grad(lambda v, labels, loss=loss: loss(labels, v)), x, y)
                label = "-" if block_size is None else str(block_size)
                if peak > args.max_gb * 2**30:
                    print(f"{name:<18}{n:>7}{label:>7}{peak / 2**30:>9.2f}{'':>9}{'':>9}  not run: over --max-gb {args.max_gb}")
                    continue
                seconds = median_seconds(lambda: jax.block_until_ready(step(x, y)), args.repeats)
                per_element[label] = seconds / n**2 * 1e9
                ratio = ""
                if block_size is not None and "-" in per_element:
                    ratio = f"{per_element[label] / per_element['-']:.2f}x unblocked"
                print(f"{name:<18}{n:>7}{label:>7}{peak / 2**30:>9.2f}{seconds:>9.2f}{per_element[label]:>9.2f}  {ratio}", flush=True)


def memory_part(args) -> None:
    import jax

    print(f"(b) cross-batch memory: backend=jax d={D} batch={args.batch} loss={args.memory_loss} block={args.memory_block}")
    print(f"{'memory':>8}{'step ms':>10}{'x plain':>9}{'loss peak MB':>14}{'x plain':>9}")
    x, y = batch(args.batch * 8, seed=1)
    plain_ms = plain_mb = None
    for size in args.memory_sizes:
        keras.utils.set_random_seed(0)
        tower = keras.Sequential([keras.Input((D,)), keras.layers.Dense(D)])
        loss = losses.get(args.memory_loss, block_size=args.memory_block)
        model = CrossBatchMemory(tower, loss, memory_size=size)
        model.compile(keras.optimizers.SGD(0.01))
        chunks = [(x[i : i + args.batch], y[i : i + args.batch]) for i in range(0, len(x), args.batch)]
        state = {"i": 0}

        def one_step():
            xb, yb = chunks[state["i"] % len(chunks)]
            state["i"] += 1
            model.train_on_batch(xb, yb)

        for _ in range(len(chunks)):  # compile, and fill the memory as far as these batches go
            one_step()
        ms = median_seconds(one_step, args.repeats) * 1e3
        xb, yb = chunks[0]
        if size:
            reference, ref_labels = batch(size, seed=2)
            self_index = np.arange(args.batch, dtype="int32")

            def value_and_grad(v, labels, reference, ref_labels):
                return loss(labels, v, ref_labels=ref_labels, ref_embeddings=reference, self_index=self_index)

            _, peak = compiled(jax.value_and_grad(value_and_grad), xb, yb, reference, ref_labels)
        else:
            _, peak = compiled(jax.value_and_grad(lambda v, labels: loss(labels, v)), xb, yb)
        mb = peak / 2**20
        if size == 0:
            plain_ms, plain_mb = ms, mb
        ratios = ("", "") if plain_ms is None else (f"{ms / plain_ms:.2f}", f"{mb / plain_mb:.1f}")
        print(f"{size:>8}{ms:>10.2f}{ratios[0]:>9}{mb:>14.1f}{ratios[1]:>9}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("blocks", "memory", "both"), default="both")
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 16384, 32768])
    parser.add_argument("--losses", nargs="+", default=["triplet-semihard", "multi-similarity"])
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--max-gb", type=float, default=6.0, help="do not run steps planned above this peak")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--memory-sizes", type=int, nargs="+", default=[0, 1024, 4096, 16384])
    parser.add_argument("--memory-loss", default="triplet-semihard")
    parser.add_argument("--memory-block", type=int, default=None)
    args = parser.parse_args()
    if keras.backend.backend() != "jax":
        raise SystemExit("bench_memory.py reads XLA's memory plan: run it with KERAS_BACKEND=jax.")
    if args.part in ("blocks", "both"):
        blocks_part(args)
    if args.part in ("memory", "both"):
        memory_part(args)


if __name__ == "__main__":
    main()
