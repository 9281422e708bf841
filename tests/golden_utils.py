"""Reading the golden reference files in tests/golden (see its README)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN = Path(__file__).parent / "golden"


def golden_cases(name: str) -> list[dict]:
    """Every case of ``tests/golden/<name>.npz`` as a dict (params parsed from JSON)."""
    with np.load(GOLDEN / f"{name}.npz") as data:
        meta = json.loads(str(data["meta"]))
        cases = []
        for i in range(meta["cases"]):
            prefix = f"case{i}_"
            case = {key[len(prefix):]: data[key] for key in data.files if key.startswith(prefix)}
            case["params"] = json.loads(str(case["params"]))
            case["id"] = f"{name}-{i}"
            cases.append(case)
    return cases
