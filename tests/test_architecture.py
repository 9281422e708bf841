"""The layering of docs/architecture.md, checked on the source: imports, private names, backends.

Every module of ``dmlkeras`` is parsed (``ast``, nothing is imported) and
its imports of other dmlkeras modules are checked against :data:`LAYERS`:

* a module imports only from its own layer or the layers above it (lower
  numbers), and the array-only modules of layer 5 (index, evaluation, viz,
  metrics, callbacks) never import the losses, heads or model layers (3, 4);
* no module imports a private name (``_x``) of another module, nor reads one
  as an attribute (``evaluation._eer``); ``dmlkeras._validation`` and
  ``dmlkeras.datasets._storage`` are private *modules* whose public names
  are meant to be shared;
* the array-only modules define no Keras callback (callbacks take models);
* no module imports a backend (TensorFlow, JAX, torch) directly.

Keep :data:`LAYERS` and the list in docs/architecture.md in agreement; a new
module must be placed in a layer before this test passes.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dmlkeras"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"

#: Layer of every module or package of dmlkeras (a package covers its modules).
LAYERS: dict[str, int] = {
    "dmlkeras._validation": 0,
    "dmlkeras.distances": 1,
    "dmlkeras.mining": 2,
    "dmlkeras.reducers": 2,
    "dmlkeras.losses": 3,
    "dmlkeras.heads": 3,  # a package: base, centers, proxies, margins
    "dmlkeras.distributed": 3,
    "dmlkeras.models": 4,
    "dmlkeras.text": 4,
    "dmlkeras.data": 4,
    "dmlkeras.datasets": 4,
    "dmlkeras.index": 5,
    "dmlkeras.evaluation": 5,
    "dmlkeras.viz": 5,
    "dmlkeras.metrics": 5,
    "dmlkeras.callbacks": 5,
    "dmlkeras.recsys": 6,
    "dmlkeras.serving": 6,
    "dmlkeras.cli": 6,
    "dmlkeras.__main__": 6,
    "dmlkeras": 6,  # the package's __init__ re-exports everything
}

#: Layer-5 modules take arrays: they may use layers 0-2 and each other, never 3 or 4.
ARRAY_ONLY = {"dmlkeras.index", "dmlkeras.evaluation", "dmlkeras.viz", "dmlkeras.metrics", "dmlkeras.callbacks"}
FORBIDDEN_FOR_ARRAY_ONLY = {3, 4}

#: Private modules whose (public) names other modules may import.
SHARED_PRIVATE_MODULES = {"dmlkeras._validation", "dmlkeras.datasets._storage"}

BACKENDS = {"tensorflow", "jax", "jaxlib", "torch"}
# The places allowed to use them: cross-replica gathering, and serving, whose
# formats (SavedModel, TFLite) are TensorFlow's whatever the Keras backend.
BACKEND_MODULES = {"dmlkeras.distributed", "dmlkeras.serving"}

#: Violations known when this test was written, in files other helpers were
#: rewriting at the time (issue 19). Each entry is (kind, module, detail).
#: The lead empties this list once those branches are merged: an entry that no
#: longer occurs makes ``test_known_violations_still_occur`` fail, so stale
#: entries cannot hide new problems.
KNOWN_VIOLATIONS: set[tuple[str, str, str]] = set()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int | None:
    """The layer of ``module``: its own entry, else that of the closest package above it."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS and (name != "dmlkeras" or module in ("dmlkeras", "dmlkeras.__main__")):
            return LAYERS[name]
    return None


def _top_level(module: str) -> str:
    """The entry of LAYERS a module belongs to (``dmlkeras.models.towers`` -> ``dmlkeras.models``)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LAYERS and name != "dmlkeras":
            return name
    return module


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> list[tuple[str, str | None, int]]:
    """``(imported module, imported name or None, line)`` of every import in ``module``, functions included."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            source = _resolve(module, path.name == "__init__.py", node)
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in MODULES:  # "from dmlkeras import losses" imports a module
                    found.append((submodule, None, node.lineno))
                else:
                    found.append((source, alias.name, node.lineno))
    return found


def _private_attribute_reads(module: str) -> list[tuple[str, int]]:
    """``alias._name`` reads where ``alias`` is another dmlkeras module imported by ``module``."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(module, MODULES[module].name == "__init__.py", node)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in MODULES and alias.asname:
                    aliases[alias.asname] = alias.name
    reads = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            reads.append((f"{aliases[node.value.id]}.{node.attr}", node.lineno))
    return reads


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(PACKAGE.parent))
    except ValueError:
        return str(path)


def violations() -> list[tuple[tuple[str, str, str], str]]:
    """Every violation in the tree: ``((kind, module, detail), message)``."""
    found = []
    for module, path in MODULES.items():
        own = layer_of(module)
        for target, name, line in imports_of(module):
            root = target.split(".")[0]
            where = f"{_display(path)}:{line}"
            if root in BACKENDS and module not in BACKEND_MODULES:
                found.append((("backend", module, target), f"{where} imports the backend {target}"))
            if root != "dmlkeras" or (target == "dmlkeras" and name is None):
                continue
            their = layer_of(target)
            same_unit = _top_level(target) == _top_level(module)
            if their is not None and not same_unit:
                too_low = their > own
                array_only = _top_level(module) in ARRAY_ONLY and their in FORBIDDEN_FOR_ARRAY_ONLY
                if too_low or array_only:
                    found.append(
                        (("layer", module, target), f"{where}: {module} (layer {own}) imports {target} (layer {their})")
                    )
            private_module = any(part.startswith("_") and part != "__main__" for part in target.split(".")[1:])
            if private_module and target not in SHARED_PRIVATE_MODULES and not same_unit:
                found.append((("private", module, target), f"{where}: {module} imports the private module {target}"))
            if name is not None and name.startswith("_") and name != "__version__" and target != module:
                detail = f"{target}.{name}"
                found.append((("private", module, detail), f"{where}: {module} imports the private name {detail}"))
        for detail, line in _private_attribute_reads(module):
            if not detail.startswith(module + "."):
                found.append(
                    (("private", module, detail), f"{_display(path)}:{line}: {module} reads {detail}")
                )
        if _top_level(module) in ARRAY_ONLY - {"dmlkeras.callbacks", "dmlkeras.metrics"}:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef) and any("Callback" in ast.unparse(base) for base in node.bases):
                    found.append(
                        (("callback", module, node.name), f"{module} defines the Keras callback {node.name}")
                    )
    return found


def test_every_module_has_a_layer():
    unplaced = [module for module in MODULES if layer_of(module) is None]
    assert not unplaced, f"Place these modules in LAYERS (and in docs/architecture.md): {unplaced}"


def test_docs_name_every_layer_entry():
    text = DOCS.read_text(encoding="utf-8")
    missing = [
        name for name in LAYERS if name not in ("dmlkeras", "dmlkeras.__main__")
        and f"`{name.split('.', 1)[1]}" not in text
    ]
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_imports_follow_the_layers_and_keep_private_names_private():
    new = [message for key, message in violations() if key not in KNOWN_VIOLATIONS]
    assert not new, "Layering violations:\n" + "\n".join(new)


def test_known_violations_still_occur():
    current = {key for key, _ in violations()}
    fixed = sorted(KNOWN_VIOLATIONS - current)
    assert not fixed, f"Fixed: remove these entries from KNOWN_VIOLATIONS: {fixed}"


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from dmlkeras.models import build_embedding_model\n", ("layer", "dmlkeras.mining", "dmlkeras.models")),
        ("from dmlkeras.distances import _EPSILON\n", ("private", "dmlkeras.mining", "dmlkeras.distances._EPSILON")),
        ("from dmlkeras import distances\nx = distances._EPSILON\n", ("private", "dmlkeras.mining", "dmlkeras.distances._EPSILON")),
        ("import tensorflow as tf\n", ("backend", "dmlkeras.mining", "tensorflow")),
        ("from dmlkeras.data import _base\n", ("private", "dmlkeras.mining", "dmlkeras.data._base")),
    ],
)
def test_the_checks_catch_a_planted_violation(source, expected, monkeypatch, tmp_path):
    """Each rule fires on a module that breaks it (mining.py, layer 2, replaced by a planted file)."""
    planted = tmp_path / "mining.py"
    planted.write_text(source, encoding="utf-8")
    monkeypatch.setitem(MODULES, "dmlkeras.mining", planted)
    assert expected in {key for key, _ in violations()}
