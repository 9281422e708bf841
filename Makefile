# dmlkeras: `make demo` and `make test` work on a fresh clone (Python 3.11).
PYTHON_BOOT ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export TF_ENABLE_ONEDNN_OPTS ?= 0
export MPLBACKEND ?= Agg

# Tests that exercise keras.ops code paths: they run on every backend (test-tf runs them too).
BACKEND_TESTS := $(wildcard tests/test_distances.py tests/test_mining.py tests/test_losses*.py tests/test_golden*.py \
	tests/test_heads*.py tests/test_metrics.py tests/test_callbacks.py tests/test_models*.py tests/test_text.py \
	tests/test_recsys*.py tests/test_reliability.py tests/test_contract.py tests/test_reducers.py \
	tests/test_backends.py tests/test_mixed_precision.py tests/test_ssl*.py tests/test_memory.py tests/test_blocking.py)

.PHONY: install test test-tf test-jax test-notebooks test-wheel check-claims demo notebooks bench clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

test: check-claims test-tf test-jax test-torch test-notebooks test-notebooks-backends test-wheel

# The README's result numbers must be shown by the committed notebook outputs (tools/check_claims.py).
check-claims: $(STAMP)
	$(PY) tools/check_claims.py

test-tf: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m pytest -q --doctest-modules dmlkeras tests

test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest -q $(BACKEND_TESTS)

# The package installs and runs from a wheel outside the source tree (about 15 s).
test-wheel: $(STAMP)
	KERAS_BACKEND=tensorflow .ci/check_wheel $(PY)

.PHONY: test-torch test-notebooks-backends

# Torch's OpenMP threads spin-wait: on a busy 2-core machine one thread is up to 20x faster.
TORCH_THREADS ?= 1
test-torch: $(STAMP)
	OMP_NUM_THREADS=$(TORCH_THREADS) KERAS_BACKEND=torch $(PY) -m pytest -q $(BACKEND_TESTS)

test-notebooks: $(STAMP)
	DMLKERAS_QUICK=1 KERAS_BACKEND=tensorflow $(PY) -m pytest -q --nbval-lax notebooks/

# Notebook 01 on the two non-default backends: user-facing code, not only unit tests.
BACKEND_NOTEBOOK := notebooks/01_distances_and_losses.ipynb
test-notebooks-backends: $(STAMP)
	DMLKERAS_QUICK=1 KERAS_BACKEND=jax $(PY) -m pytest -q --nbval-lax $(BACKEND_NOTEBOOK)
	OMP_NUM_THREADS=$(TORCH_THREADS) DMLKERAS_QUICK=1 KERAS_BACKEND=torch $(PY) -m pytest -q --nbval-lax $(BACKEND_NOTEBOOK)

demo: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) -m dmlkeras train --dataset digits --loss triplet-semihard --out runs/demo

notebooks: $(STAMP)
	KERAS_BACKEND=tensorflow $(PY) tools/run_notebooks.py notebooks/*.ipynb

bench: $(STAMP)
	KERAS_BACKEND=jax $(PY) benchmarks/bench_losses.py
	$(PY) benchmarks/bench_eval.py --quick

clean:
	rm -rf $(VENV) .cache runs
