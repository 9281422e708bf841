"""Models saved by the layout before issue 19 still load and predict the same.

The ``.keras`` files in ``tests/fixtures/`` were written by
``tests/fixtures/make_legacy_models.py`` with the single-module
``models.py`` / ``recsys.py`` (commit f4d8d5f), together with the inputs they
were given and the outputs they predicted (``legacy_models.npz``). Loading
them needs only ``import dmlkeras`` (which registers every layer), no
``custom_objects``.
"""

from pathlib import Path

import keras
import numpy as np
import pytest

import dmlkeras  # noqa: F401  (registers the custom layers)

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = dict(np.load(FIXTURES / "legacy_models.npz"))
NAMES = sorted({key.split("/")[0] for key in EXPECTED})


def _inputs(name):
    found = {key.split("/")[2]: value for key, value in EXPECTED.items() if key.startswith(f"{name}/input/")}
    if list(found) == ["0"]:
        return found["0"]
    if all(key.isdigit() for key in found):
        return [found[str(i)] for i in range(len(found))]
    return found


def test_every_fixture_is_checked():
    saved = sorted(path.stem for path in FIXTURES.glob("*.keras"))
    assert saved == NAMES
    assert {"embedding", "siamese", "triplet", "quadruplet", "text_bag", "cml"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_legacy_model_loads_and_predicts_the_same(name):
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")
    outputs = model.predict(_inputs(name), verbose=0)
    np.testing.assert_allclose(outputs, EXPECTED[f"{name}/output"], rtol=1e-5, atol=1e-6)


def test_legacy_tuple_model_still_yields_its_tower():
    from dmlkeras.models import get_embedding_model

    triplet = keras.saving.load_model(FIXTURES / "triplet.keras")
    tower = get_embedding_model(triplet)
    np.testing.assert_allclose(
        tower.predict(EXPECTED["embedding/input/0"], verbose=0), EXPECTED["embedding/output"], rtol=1e-5, atol=1e-6
    )
