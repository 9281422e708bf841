"""tools/check_claims.py: README numbers must be shown by the committed notebook outputs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nbformat
import pytest

SPEC = importlib.util.spec_from_file_location(
    "check_claims", Path(__file__).resolve().parents[1] / "tools" / "check_claims.py"
)
check_claims = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(check_claims)

PNG = "iVBORw0KGgo="


def _notebook(path: Path, text: str, figure: bool = True, display_name: str = "Python 3 (ipykernel)") -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(...)", execution_count=1)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=text)]
    if figure:
        cell.outputs.append(nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"}))
    nb.cells = [cell]
    nb.metadata.kernelspec = {"display_name": display_name, "language": "python", "name": "python3"}
    nbformat.write(nb, path)


def _readme(path: Path, headline: str, table: str = "") -> None:
    path.write_text(
        "# x\n<!-- gallery -->\n| notebook | lesson | headline |\n| --- | --- | --- |\n"
        f"| [01 A](notebooks/01_a.ipynb) | distances 0.5 | {headline} |\n<!-- /gallery -->\n"
        + (f"<!-- results: 01_a.ipynb -->\n{table}\n<!-- /results -->\n" if table else "")
    )


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "notebooks").mkdir()
    return tmp_path


def _run(tree: Path) -> int:
    return check_claims.main(["--readme", str(tree / "README.md"), "--notebooks", str(tree / "notebooks")])


def test_numbers_shown_at_the_printed_precision_pass(tree: Path) -> None:
    _notebook(tree / "notebooks" / "01_a.ipynb", "precision@1 0.98349, MAP@R 0.9405\n")
    _readme(tree / "README.md", "P@1 **0.983**, MAP@R 0.941", table="| m | 0.98 |")
    assert _run(tree) == 0


def test_a_number_no_output_shows_fails(tree: Path, capsys: pytest.CaptureFixture) -> None:
    _notebook(tree / "notebooks" / "01_a.ipynb", "precision@1 0.98349\n")
    _readme(tree / "README.md", "P@1 **0.985**")
    assert _run(tree) == 1
    assert "0.985" in capsys.readouterr().err


def test_a_number_in_a_results_table_is_checked(tree: Path, capsys: pytest.CaptureFixture) -> None:
    _notebook(tree / "notebooks" / "01_a.ipynb", "accuracy 0.811\n")
    _readme(tree / "README.md", "accuracy 0.811", table="| ArcFace | 0.811 | 0.889 |")
    assert _run(tree) == 1
    assert "0.889" in capsys.readouterr().err


def test_the_lesson_column_is_not_a_claim(tree: Path) -> None:
    # "distances 0.5" sits in the lesson column of the row: only the headline column is checked.
    _notebook(tree / "notebooks" / "01_a.ipynb", "accuracy 0.811\n")
    _readme(tree / "README.md", "accuracy 0.811")
    assert _run(tree) == 0


def test_a_notebook_without_figures_fails(tree: Path, capsys: pytest.CaptureFixture) -> None:
    _notebook(tree / "notebooks" / "01_a.ipynb", "accuracy 0.811\n", figure=False)
    _readme(tree / "README.md", "accuracy 0.811")
    assert _run(tree) == 1
    assert "no figure" in capsys.readouterr().err


def test_a_kernelspec_jupyterlab_would_rewrite_fails(tree: Path, capsys: pytest.CaptureFixture) -> None:
    _notebook(tree / "notebooks" / "01_a.ipynb", "accuracy 0.811\n", display_name="Python 3")
    _readme(tree / "README.md", "accuracy 0.811")
    assert _run(tree) == 1
    assert "kernelspec" in capsys.readouterr().err


def test_the_committed_readme_and_notebooks_agree() -> None:
    assert check_claims.main([]) == 0
