"""Check that the notebooks' committed outputs back what the README claims.

Run by ``make test`` (``make check-claims``). It fails when:

- a committed notebook has a code cell that was not executed, an error in its
  outputs, or no figure at all (a kernel that inherited ``MPLBACKEND=Agg``
  draws none: ``tools/run_notebooks.py`` gives its kernels the inline backend);
- a notebook's kernelspec is not the one ``ipykernel install`` registers
  (JupyterLab would mark the notebook modified on opening and autosave it);
- a decimal number in a README result row (the notebook gallery between
  ``<!-- gallery -->`` and ``<!-- /gallery -->``, and every table between
  ``<!-- results: NOTEBOOK -->`` and ``<!-- /results -->``) appears in no text
  output of the notebook that row names, at the precision the README prints
  (a number typed by hand that no output shows).

Usage::

    python tools/check_claims.py            # README.md against notebooks/*.ipynb
    python tools/check_claims.py --verbose  # also list every checked number
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NUMBER = re.compile(r"(?<![\w.])-?\d+\.\d+(?![\w.])")
NOTEBOOK_LINK = re.compile(r"notebooks/(\d\d_[\w-]+\.ipynb)")


def notebook_problems(path: Path) -> list[str]:
    """Execution, error, figure and kernelspec problems of one committed notebook."""
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    problems = []
    if not code:
        problems.append("has no code cell")
    unexecuted = sum(1 for c in code if not c.get("execution_count"))
    if unexecuted:
        problems.append(f"{unexecuted} code cell(s) never executed")
    if any(o.get("output_type") == "error" for c in code for o in c.get("outputs", [])):
        problems.append("an error is among its outputs")
    if not any("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])):
        problems.append("has no figure in its outputs (was it run with MPLBACKEND=Agg?)")
    spec = nb.get("metadata", {}).get("kernelspec", {})
    if {k: spec.get(k) for k in KERNELSPEC} != KERNELSPEC:
        problems.append(f"kernelspec {spec} is not {KERNELSPEC}")
    return [f"{path.name}: {p}" for p in problems]


def output_text(path: Path) -> str:
    """Every text output of a notebook (streams, text/plain, text/markdown, text/html)."""
    nb = json.loads(path.read_text())
    parts = []
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            if "text" in out:
                parts.append("".join(out["text"]))
            for kind in ("text/plain", "text/markdown", "text/html"):
                if kind in out.get("data", {}):
                    parts.append("".join(out["data"][kind]))
    return "\n".join(parts)


def shown(claim: str, numbers: list[str]) -> bool:
    """Whether an output number, rounded to the claim's decimals, prints as the claim."""
    places = Decimal(1).scaleb(-len(claim.split(".")[1]))
    target = Decimal(claim)
    for text in numbers:
        value = Decimal(text)
        if any(value.quantize(places, rounding=r) == target for r in (ROUND_HALF_UP, ROUND_HALF_EVEN)):
            return True
    return False


def claim_blocks(readme: str) -> list[tuple[str, str]]:
    """``(notebook file name, line)`` for every README result line to check."""
    blocks = []
    gallery = re.search(r"<!-- gallery -->(.*?)<!-- /gallery -->", readme, re.S)
    if gallery is None:
        raise SystemExit("README.md has no <!-- gallery --> ... <!-- /gallery --> block.")
    for line in gallery.group(1).splitlines():
        link = NOTEBOOK_LINK.search(line)
        if link:
            # The headline column only: the first cells are the title and the lesson.
            blocks.append((link.group(1), line.split("|")[-2]))
    for match in re.finditer(r"<!-- results: (\S+\.ipynb) -->(.*?)<!-- /results -->", readme, re.S):
        blocks.extend((match.group(1), line) for line in match.group(2).splitlines() if line.startswith("|"))
    return blocks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)

    problems: list[str] = []
    notebooks = sorted(args.notebooks.glob("*.ipynb"))
    for path in notebooks:
        problems.extend(notebook_problems(path))
    numbers = {path.name: NUMBER.findall(output_text(path)) for path in notebooks}
    checked = 0
    for name, line in claim_blocks(args.readme.read_text()):
        if name not in numbers:
            problems.append(f"README names {name}, which is not in {args.notebooks}")
            continue
        for claim in NUMBER.findall(line):
            checked += 1
            ok = shown(claim, numbers[name])
            if args.verbose:
                print(f"{'ok ' if ok else 'MISSING'} {name}: {claim}")
            if not ok:
                problems.append(f"README claims {claim} for {name}, but no output of that notebook shows it")
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"check_claims: {len(notebooks)} notebooks, {checked} README numbers checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
