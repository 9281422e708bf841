"""Re-execute notebooks in place in full mode (``make notebooks``).

For whoever updates the committed outputs: each notebook runs top to bottom
in a fresh kernel (nbclient), with ``DMLKERAS_QUICK`` unset, and is written
back with its outputs. The kernel always gets matplotlib's inline backend,
whatever ``MPLBACKEND`` says here (the Makefile and CI export ``Agg``, under
which ``plt.show()`` would put no figure into the notebook), and a run that
leaves a notebook without a figure fails. Pass ``--quick`` to run in quick mode instead (to try
a change; do not commit quick-mode outputs).

Usage::

    python tools/run_notebooks.py notebooks/*.ipynb
    python tools/run_notebooks.py --quick notebooks/02_mnist_siamese_contrastive.ipynb
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def run(path: Path, quick: bool, timeout: int) -> float:
    """Execute one notebook in place; return the seconds it took."""
    if quick:
        os.environ["DMLKERAS_QUICK"] = "1"
    else:
        os.environ.pop("DMLKERAS_QUICK", None)
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # the kernel inherits this environment
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    figures = sum(
        "image/png" in output.get("data", {}) for cell in notebook.cells for output in cell.get("outputs", [])
    )
    if not figures:
        raise SystemExit(f"{path}: the run produced no figure; not written back.")
    nbformat.write(notebook, path)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--quick", action="store_true", help="run with DMLKERAS_QUICK=1")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    for path in args.notebooks:
        print(f"{path}: {run(path, args.quick, args.timeout):.0f} s", flush=True)


if __name__ == "__main__":
    main()
