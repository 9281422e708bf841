"""The ``dmlkeras`` command: a real 1-epoch run on digits, and its errors."""

import csv
import json
import os
import subprocess
import sys

import pytest

from dmlkeras.cli import build_parser, main


def _run(*args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    return subprocess.run(
        [sys.executable, "-m", "dmlkeras", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "digits"
    result = _run("train", "--dataset", "digits", "--loss", "triplet-hard", "--epochs", "1", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return out, result


def test_train_writes_every_output(trained):
    out, result = trained
    for name in ("model.keras", "metrics.json", "history.csv", "tsne.png", "projector/vectors.tsv", "projector/metadata.tsv"):
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["precision_at_1"] <= 1.0 and metrics["loss"] == "triplet-hard"
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert len(rows) == 1 and float(rows[0]["loss"]) >= 0.0
    for column in ("val_precision_at_1", "distance_gap", "active_triplet_fraction"):
        assert column in rows[0], column
    assert len((out / "projector/vectors.tsv").read_text().splitlines()) == 540
    assert '"precision_at_1"' in result.stdout


def test_evaluate_and_embed_a_saved_model(trained, tmp_path):
    out, _ = trained
    result = _run("evaluate", "--model", str(out / "model.keras"), "--dataset", "digits")
    assert result.returncode == 0, result.stderr
    trained_metrics = json.loads((out / "metrics.json").read_text())
    assert json.loads(result.stdout)["precision_at_1"] == pytest.approx(trained_metrics["precision_at_1"])
    result = _run("embed", "--model", str(out / "model.keras"), "--output", str(tmp_path / "e.npz"))
    assert result.returncode == 0, result.stderr
    import numpy as np

    data = np.load(tmp_path / "e.npz")
    assert data["embeddings"].shape == (540, 64) and data["labels"].shape == (540,)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--loss", "nope"], "invalid choice: 'nope'"),
        (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
        (["train", "--epochs", "0"], "expected a positive integer, got 0"),
        (["train", "--epochs", "-3"], "expected a positive integer, got -3"),
        (["evaluate"], "the following arguments are required: --model"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unwritable_out_dir_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _run("train", "--epochs", "1", "--out", str(blocker / "sub"))
    assert result.returncode == 2
    assert "cannot write to --out" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_is_a_one_line_error(tmp_path):
    result = _run("evaluate", "--model", str(tmp_path / "none.keras"))
    assert result.returncode == 2 and "no model file" in result.stderr and "Traceback" not in result.stderr


def test_help_lists_the_losses():
    help_text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()
    for name in ("triplet-semihard", "triplet-hard", "triplet-all", "batch-contrastive"):
        assert name in help_text
