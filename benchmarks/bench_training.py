"""Training throughput: semi-hard triplet loss versus softmax cross-entropy.

One run, one machine: the same small CNN tower (``build_embedding_model``,
64-d) is trained for one epoch on MNIST with (a) ``TripletLoss(mining=
"semi-hard")`` on class-balanced 10 x 8 batches and (b) a softmax head with
cross-entropy on batches of the same size; the script prints images per
second of each (after a warm-up epoch that pays for compilation) and the
ratio. Target: the triplet loss costs at most 1.25x the softmax step.

Usage::

    python benchmarks/bench_training.py            # 60,000 images
    python benchmarks/bench_training.py --images 12000
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from dmlkeras.data import ClassBalancedBatches  # noqa: E402
from dmlkeras.datasets import load_mnist  # noqa: E402
from dmlkeras.losses import TripletLoss  # noqa: E402
from dmlkeras.models import build_embedding_model  # noqa: E402


def images_per_second(model: keras.Model, dataset, n_images: int) -> float:
    model.fit(dataset, epochs=1, verbose=0)  # warm-up: compilation
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0)
    return n_images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=60000)
    args = parser.parse_args()
    (x, y), _ = load_mnist()
    x, y = x[: args.images].astype("float32") / 255.0, y[: args.images]
    batch = 80

    keras.utils.set_random_seed(0)
    tower = build_embedding_model((28, 28), embedding_dim=64)
    tower.compile(optimizer="adam", loss=TripletLoss(margin=0.5, mining="semi-hard"))
    batches = ClassBalancedBatches(x, y, classes_per_batch=10, samples_per_class=8)
    triplet = images_per_second(tower, batches, len(batches) * batch)

    keras.utils.set_random_seed(0)
    tower = build_embedding_model((28, 28), embedding_dim=64)
    classifier = keras.Sequential([tower, keras.layers.Dense(10)])
    classifier.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    softmax = images_per_second(classifier, _Batches(x, y, batch), len(x) // batch * batch)

    print(f"backend={keras.backend.backend()} images={args.images} batch={batch}")
    print(f"{'objective':<28}{'images/s':>10}")
    print(f"{'softmax cross-entropy':<28}{softmax:>10.0f}")
    print(f"{'triplet semi-hard (10x8)':<28}{triplet:>10.0f}")
    print(f"triplet time per image / softmax time per image: {softmax / triplet:.2f}x (target <= 1.25)")


class _Batches(keras.utils.PyDataset):
    """Plain shuffled batches of the same size, for the softmax baseline."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch: int) -> None:
        super().__init__()
        self.x, self.y, self.batch = x, y, batch
        self.order = np.random.default_rng(0).permutation(len(x))

    def __len__(self) -> int:
        return len(self.x) // self.batch

    def __getitem__(self, index: int):
        rows = self.order[index * self.batch : (index + 1) * self.batch]
        return self.x[rows], self.y[rows]


if __name__ == "__main__":
    main()
