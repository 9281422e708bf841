"""Tests of dmlkeras.distributed: mining across devices equals one device.

The multi-device checks run in subprocesses, because the devices must be
configured before the backend starts: 4 and 8 virtual CPU devices for JAX
(``XLA_FLAGS=--xla_force_host_platform_device_count=8``), 2 and 4 logical
CPU devices for TensorFlow (``tf.config.set_logical_device_configuration``).
Each subprocess chooses its own backend, so this file runs once (in
``make test-tf``), whatever ``KERAS_BACKEND`` the test run has; it is not in
the Makefile's BACKEND_TESTS. The in-process tests check the wrapper's
identity, errors and serialisation on the current backend.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from dmlkeras import losses
from dmlkeras.distributed import CrossReplicaLoss, cross_replica, replica_context
from tests.data_helpers import REPO

#: The losses the issue names, and the rest of the registry (lifted goes the whole-batch way).
NAMED = ["triplet-semihard", "triplet-hard", "triplet-all", "multi-similarity", "supcon"]
OTHERS = [name for name in losses.names() if name not in NAMED]

#: Shared by the subprocesses: a small tower and a global batch whose classes straddle the replicas.
COMMON = """
import json, os, sys
import numpy as np

def tower(keras, d=6):
    keras.utils.set_random_seed(1)
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(4)])

def batch(n, d=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = rng.permutation(np.repeat(np.arange(classes), n // classes)).astype("int32")
    w = rng.uniform(0.5, 2.0, size=n).astype("float32")
    return x, y, w

def max_error(a, b):
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b))
"""


def needs(backend: str):
    """Skip a subprocess test when its backend is not installed."""
    return pytest.mark.skipif(importlib.util.find_spec(backend) is None, reason=f"needs {backend}")


def run_script(body: str, env: dict[str, str], timeout: int = 240) -> dict:
    """Run ``COMMON + body`` in a fresh Python and return the JSON it prints last."""
    script = COMMON + textwrap.dedent(body)
    full_env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "OMP_NUM_THREADS": "1",
        **env,
    }
    done = subprocess.run(
        [sys.executable, "-c", script], env=full_env, cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- TensorFlow

TF_SCRIPT = """
R = int(os.environ["REPLICAS"])
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * R)
import keras
from dmlkeras import losses
from dmlkeras.data import ClassBalancedBatches
from dmlkeras.distributed import cross_replica

# One strategy per process: TensorFlow's collective keys clash between strategies.
strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(R)])
N = 16
x, y, w = batch(N)

def split(a, cuts=None):
    cuts = list(range(0, len(a) + 1, len(a) // R)) if cuts is None else cuts
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: a[cuts[ctx.replica_id_in_sync_group] : cuts[ctx.replica_id_in_sync_group + 1]]
    )

def single(cases):
    # (value, gradients) of each (loss, weighted) case on one device.
    model = tower(keras)
    results = []
    for loss, weighted in cases:
        with tf.GradientTape() as tape:
            value = loss(y, model(x), sample_weight=w if weighted else None)
        results.append((float(value), tape.gradient(value, model.trainable_weights)))
    return results

def replicated(cases, cuts=None):
    # Each replica's values and the summed gradients of every case, in one traced step:
    # what Keras' train step does per replica (Keras sums the replicas' gradients).
    with strategy.scope():
        model = tower(keras)

    @tf.function
    def step(xs, ys, ws):
        results = []
        for loss, weighted in cases:
            with tf.GradientTape() as tape:
                value = loss(ys, model(xs), sample_weight=ws if weighted else None)
            results.append((value, tape.gradient(value, model.trainable_weights)))
        return results

    local = strategy.experimental_local_results
    results = strategy.run(step, args=(split(x, cuts), split(y, cuts), split(w, cuts)))
    return [
        ([float(v) for v in local(values)], [sum(np.asarray(g) for g in local(v)) for v in grads])
        for values, grads in results
    ]

def compare(key, one, many):
    (value, grads), (values, dist_grads) = one, many
    out["losses"][key] = {
        "single": value,
        "replicas": [v * R for v in values],  # Keras reports R * value, averaged over replicas
        "grad_error": max_error(grads, dist_grads),
        "grad_scale": max(float(np.max(np.abs(g))) for g in grads),
    }

out = {"losses": {}}
names = os.environ["LOSSES"].split(",")
cases = [(name, False) for name in names] + ([("triplet-all", True)] if os.environ.get("WEIGHTS") else [])
ones = single([(losses.get(name), weighted) for name, weighted in cases])
manys = replicated([(cross_replica(name), weighted) for name, weighted in cases])
for (name, weighted), one, many in zip(cases, ones, manys):
    compare(name + ("+weights" if weighted else ""), one, many)
if R == 2:  # an epoch's last batch may split unevenly: 9 and 7 rows
    many = replicated([(cross_replica("triplet-semihard"), False)], cuts=[0, 9, N])[0]
    compare("triplet-semihard+uneven", ones[names.index("triplet-semihard")], many)
# Without the wrapper: each replica mines its slice alone.
(value, grads), = single([(losses.get("triplet-semihard"), False)])
(values, plain_grads), = replicated([(losses.get("triplet-semihard"), False)])
# Each replica's plain loss is its slice's mean divided by R (as keras.losses.Loss scales it), so Keras
# reports the mean of the slices' losses and sums the gradients of their mean.
plain = losses.get("triplet-semihard")
model = tower(keras)
slices = np.split(np.arange(N), R)
with tf.GradientTape() as tape:
    local = [plain(y[s], model(x[s])) for s in slices]
    mean_of_slices = sum(local) / R
out["plain"] = {"single": value, "replicas": values, "grad_error": max_error(grads, plain_grads),
                "mean_of_slices": float(mean_of_slices), "reported": float(sum(values)),
                "slice_grad_error": max_error(tape.gradient(mean_of_slices, model.trainable_weights), plain_grads)}

# ClassBalancedBatches(num_replicas=R): tf.distribute hands each replica whole classes.
xs, ys = np.random.default_rng(1).normal(size=(64, 6)).astype("float32"), np.repeat(np.arange(8), 8).astype("int32")
ds = ClassBalancedBatches(xs, ys, classes_per_batch=4, samples_per_class=4, num_replicas=R, seed=3)
xb, yb = ds[0]
dataset = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((xb, yb)))
parts = [np.asarray(part) for part in strategy.experimental_local_results(next(iter(dataset))[1])]
out["slices_are_contiguous"] = all(np.array_equal(p, q) for p, q in zip(parts, np.split(yb, R)))
out["classes_per_replica"] = [sorted(set(p.tolist())) for p in parts]

# One epoch of fit: SGD steps on ClassBalancedBatches, under the strategy and on one device.
def fit(distributed):
    ds = ClassBalancedBatches(xs, ys, 4, 4, steps_per_epoch=2, num_replicas=R, seed=3)
    if distributed:
        with strategy.scope():
            model = tower(keras)
            model.compile(keras.optimizers.SGD(0.5), loss=cross_replica("triplet-semihard"))
    else:
        model = tower(keras)
        model.compile(keras.optimizers.SGD(0.5), loss=losses.get("triplet-semihard"))
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)  # the same batch order in both runs
    return model.get_weights(), history.history["loss"][0]

(w1, l1), (wr, lr) = fit(False), fit(True)
start = tower(keras).get_weights()
out["fit"] = {"single_loss": l1, "replica_loss": lr, "weight_error": max_error(w1, wr), "moved": max_error(w1, start)}
print(json.dumps(out))
"""


@needs("tensorflow")
@pytest.mark.parametrize(
    "replicas, names, weights",
    [(2, NAMED, ""), (4, NAMED + OTHERS, "1")],  # 4 replicas: every registered loss, and sample weights
)
def test_tensorflow_cross_replica_equals_one_device(replicas, names, weights):
    env = {"KERAS_BACKEND": "tensorflow", "REPLICAS": str(replicas), "LOSSES": ",".join(names), "WEIGHTS": weights}
    out = run_script(TF_SCRIPT, env)
    extra = {"triplet-all+weights"} if weights else set()
    extra |= {"triplet-semihard+uneven"} if replicas == 2 else set()
    assert set(out["losses"]) == set(names) | extra
    for name, result in out["losses"].items():
        np.testing.assert_allclose(result["replicas"], result["single"], rtol=1e-5, atol=1e-6, err_msg=name)
        assert result["grad_scale"] > 1e-4, name  # a gradient to compare
        assert result["grad_error"] <= 1e-5 * max(1.0, result["grad_scale"]), (name, result)
    # The test can fail: without the wrapper the replicas mine their slices apart.
    assert out["plain"]["grad_error"] > 1e-3
    # Without the wrapper a mean loss is still scaled as Keras' own losses are: no R-fold gradient.
    np.testing.assert_allclose(out["plain"]["reported"], out["plain"]["mean_of_slices"], rtol=1e-5)
    assert out["plain"]["slice_grad_error"] <= 1e-5
    assert out["slices_are_contiguous"]
    seen = [c for part in out["classes_per_replica"] for c in part]
    assert len(seen) == len(set(seen)) == 4  # whole classes: no class on two replicas
    fit = out["fit"]
    assert fit["moved"] > 1e-3  # the epoch changed the weights
    assert fit["weight_error"] <= 1e-5, fit
    np.testing.assert_allclose(fit["replica_loss"], fit["single_loss"], rtol=1e-5)


# ----------------------------------------------------------------------------- JAX

JAX_SCRIPT = """
import jax
import keras
from keras import distribution
from dmlkeras import losses
from dmlkeras.data import ClassBalancedBatches
from dmlkeras.distributed import cross_replica

N = 32
x, y, _ = batch(N)

def value_and_grads(name, shards=None):
    model = tower(keras)  # under a distribution: variables replicated on the mesh
    loss = losses.get(name)
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]

    def f(trainable, xb, yb):
        y_pred, _ = model.stateless_call(trainable, fixed, xb)
        return loss(yb, y_pred)

    xb, yb = x, y
    if shards is not None:
        xb = distribution.distribute_tensor(x, shards.get_data_layout(x.shape))
        yb = distribution.distribute_tensor(y, shards.get_data_layout(y.shape))
        assert len(xb.sharding.device_set) == len(shards.device_mesh.devices), xb.sharding
    value, grads = jax.jit(jax.value_and_grad(f))(trainable, xb, yb)
    return float(value), [np.asarray(g) for g in grads]

def fit(shards):
    distribution.set_distribution(shards)
    xs, ys = np.random.default_rng(1).normal(size=(128, 6)).astype("float32"), np.repeat(np.arange(8), 16)
    ds = ClassBalancedBatches(xs, ys, 8, 4, steps_per_epoch=2, num_replicas=8, seed=3)
    model = tower(keras)
    # cross_replica is the identity on JAX: the same script as on TensorFlow.
    loss = losses.get("triplet-semihard") if shards is None else cross_replica("triplet-semihard")
    model.compile(keras.optimizers.SGD(0.5), loss=loss)
    history = model.fit(ds, epochs=1, verbose=0, shuffle=False)  # the same batch order in both runs
    distribution.set_distribution(None)
    return [np.asarray(w) for w in model.get_weights()], history.history["loss"][0]

out = {"devices": len(jax.devices()), "losses": {}, "fit": {}}
names = ["triplet-semihard", "triplet-hard", "triplet-all", "multi-similarity", "supcon"]
single = {name: value_and_grads(name) for name in names}
w1, l1 = fit(None)
start = [np.asarray(w) for w in tower(keras).get_weights()]
for R in (4, 8):
    shards = distribution.DataParallel(devices=jax.devices()[:R])
    distribution.set_distribution(shards)
    for name in names:
        value, grads = value_and_grads(name, shards)
        out["losses"][f"{name}@{R}"] = {
            "single": single[name][0], "sharded": value, "grad_error": max_error(single[name][1], grads),
            "grad_scale": max(float(np.max(np.abs(g))) for g in single[name][1]),
        }
    distribution.set_distribution(None)
    # The mean of the shards' own losses is another number: the loss above did see the global batch.
    loss = losses.get("triplet-semihard")
    model = tower(keras)
    parts = [float(loss(yp, model(xp))) for xp, yp in zip(np.split(x, R), np.split(y, R))]
    out["losses"][f"triplet-semihard@{R}"]["mean_of_shards"] = float(np.mean(parts))
    wr, lr = fit(shards)
    out["fit"][str(R)] = {"single_loss": l1, "sharded_loss": lr, "weight_error": max_error(w1, wr),
                          "moved": max_error(w1, start)}
print(json.dumps(out))
"""


@needs("jax")
def test_jax_data_parallel_sees_the_global_batch():
    out = run_script(
        JAX_SCRIPT, {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    )
    assert out["devices"] == 8
    assert set(out["losses"]) == {f"{name}@{r}" for name in NAMED for r in (4, 8)}
    for key, result in out["losses"].items():
        np.testing.assert_allclose(result["sharded"], result["single"], rtol=1e-5, atol=1e-6, err_msg=key)
        assert result["grad_scale"] > 1e-4, key
        assert result["grad_error"] <= 1e-5 * max(1.0, result["grad_scale"]), (key, result)
    for r in (4, 8):
        result = out["losses"][f"triplet-semihard@{r}"]
        assert abs(result["mean_of_shards"] - result["single"]) > 1e-3
    for r, fit in out["fit"].items():
        assert fit["moved"] > 1e-3
        assert fit["weight_error"] <= 1e-5, (r, fit)
        np.testing.assert_allclose(fit["sharded_loss"], fit["single_loss"], rtol=1e-5)


# ----------------------------------------------------------------------------- torch

TORCH_SCRIPT = """
import torch
import keras
from dmlkeras import losses
from dmlkeras.distributed import cross_replica

x, y, w = batch(16)
out = {}
for name in ["triplet-semihard", "supcon"]:
    results = []
    for loss in (losses.get(name), cross_replica(name)):
        model = tower(keras)
        model.zero_grad()
        value = loss(torch.tensor(y), model(torch.tensor(x)), sample_weight=torch.tensor(w))
        value.backward()
        results.append((float(value), [v.value.grad.numpy().copy() for v in model.trainable_variables]))
    out[name] = {"plain": results[0][0], "wrapped": results[1][0], "grad_error": max_error(results[0][1], results[1][1])}
print(json.dumps(out))
"""


@needs("torch")
def test_torch_single_process_is_the_identity():
    out = run_script(TORCH_SCRIPT, {"KERAS_BACKEND": "torch"})
    for name, result in out.items():
        assert result["plain"] > 0, name
        assert result["wrapped"] == result["plain"], name
        assert result["grad_error"] == 0.0, name


# ----------------------------------------------------------------------------- in process


def test_one_device_is_the_wrapped_loss():
    assert replica_context() is None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 5)).astype("float32")
    y = np.repeat(np.arange(3), 4)
    w = rng.uniform(size=12).astype("float32")
    for name in NAMED + OTHERS:
        expected = losses.get(name)(y, x, sample_weight=w)
        got = cross_replica(name)(y, x, sample_weight=w)
        assert float(got) == float(expected), name


def test_serialisation_round_trip_and_saved_model(tmp_path):
    loss = cross_replica(losses.TripletLoss(margin=0.3, mining="hard"))
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert isinstance(restored, CrossReplicaLoss)
    assert restored.loss.margin == 0.3 and restored.loss.mining == "hard"
    assert restored.name == loss.name == "cross_replica_triplet_loss"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("sgd", loss=loss)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    x, y = np.random.default_rng(0).normal(size=(8, 3)).astype("float32"), np.repeat(np.arange(2), 4)
    assert float(loaded.loss(y, loaded(x))) == pytest.approx(float(loss(y, model(x))))


def test_errors_name_what_is_expected():
    with pytest.raises(ValueError, match="InBatchLoss"):
        cross_replica(keras.losses.MeanSquaredError())
    with pytest.raises(ValueError, match="Unknown loss"):
        cross_replica("no-such-loss")
    with pytest.raises(ValueError, match="reduction"):
        cross_replica(losses.TripletLoss(reduction="none"))
    with pytest.raises(ValueError, match="relation"):
        cross_replica(losses.TripletLoss(label_format="relation"))
