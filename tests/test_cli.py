"""The ``dmlkeras`` command: a real 1-epoch run on digits, and its errors."""

import csv
import dataclasses
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


# ---------------------------------------------------------------- issue 21: every bad input is one line and exit 2
def _exit_code(argv):
    """``main(argv)`` in-process: its return value, or the code of the SystemExit argparse raises."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return exit_info.code


def _assert_one_line_exit_2(argv, capsys, *needles):
    assert _exit_code(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Small untrained models saved as .keras files: one for digits, one for 28 x 28 input, a Siamese one."""
    from dmlkeras.models import build_embedding_model, build_siamese_model

    folder = tmp_path_factory.mktemp("models")
    tower = build_embedding_model((8, 8), embedding_dim=4, backbone="mlp")
    tower.save(folder / "digits.keras")
    build_embedding_model((28, 28), embedding_dim=4, backbone="mlp").save(folder / "mnist.keras")
    build_siamese_model(tower).save(folder / "siamese.keras")
    (folder / "corrupt.keras").write_bytes(b"not a zip file" * 64)
    return folder


@pytest.mark.parametrize("command", ["evaluate", "embed"])
def test_corrupt_model_file_is_one_line(models, tmp_path, command, capsys):
    argv = [command, "--model", str(models / "corrupt.keras")]
    if command == "embed":
        argv += ["--output", str(tmp_path / "e.npz")]
    _assert_one_line_exit_2(argv, capsys, "cannot load", "corrupt.keras", ".keras file written by model.save")
    assert not list(tmp_path.iterdir())


def test_model_input_that_does_not_match_the_dataset_is_one_line(models, capsys):
    argv = ["evaluate", "--model", str(models / "mnist.keras"), "--dataset", "digits"]
    _assert_one_line_exit_2(argv, capsys, "expects inputs of shape (n, 28, 28)", "--dataset digits has shape (n, 8, 8)")


def test_two_input_siamese_model_is_one_line_naming_get_embedding_model(models, tmp_path, capsys):
    argv = ["embed", "--model", str(models / "siamese.keras"), "--output", str(tmp_path / "e")]
    _assert_one_line_exit_2(argv, capsys, "has 2 inputs", "get_embedding_model")
    assert not list(tmp_path.iterdir())


def test_unwritable_output_is_one_line(models, tmp_path, capsys):
    argv = ["embed", "--model", str(models / "digits.keras"), "--output", str(tmp_path / "missing" / "e.npz")]
    _assert_one_line_exit_2(argv, capsys, "cannot write --output", "no folder")
    blocker = tmp_path / "file"
    blocker.write_text("")
    argv = ["embed", "--model", str(models / "digits.keras"), "--output", str(blocker / "e.npz")]
    _assert_one_line_exit_2(argv, capsys, "cannot write --output")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_output_folder_is_one_line(models, tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        argv = ["embed", "--model", str(models / "digits.keras"), "--output", str(folder / "e.npz")]
        _assert_one_line_exit_2(argv, capsys, "cannot write --output", "ermission denied")
    finally:
        folder.chmod(0o700)


def test_embed_prints_the_path_it_really_wrote(models, tmp_path, capsys):
    import numpy as np

    assert _exit_code(["embed", "--model", str(models / "digits.keras"), "--output", str(tmp_path / "emb")]) == 0
    written = tmp_path / "emb.npz"
    assert capsys.readouterr().out.strip() == f"wrote {written}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npz"]
    with np.load(written) as data:
        assert data["embeddings"].shape == (540, 4) and data["labels"].shape == (540,)


def test_embed_into_an_existing_folder_writes_inside_it(models, tmp_path, capsys):
    folder = tmp_path / "out"
    folder.mkdir()
    assert _exit_code(["embed", "--model", str(models / "digits.keras"), "--output", str(folder)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {folder / 'embeddings.npz'}"
    assert [p.name for p in folder.iterdir()] == ["embeddings.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["--classes-per-batch", "11"], ("--classes-per-batch 11 exceeds the 10 classes",)),
        (["--classes-per-batch", "10", "--samples-per-class", "200"], ("10 x 200 = 2000 samples exceeds the 1257",)),
        (["--learning-rate", "inf"], ("--learning-rate", "expected a finite positive number, got inf")),
        (["--learning-rate", "nan"], ("--learning-rate", "expected a finite positive number, got nan")),
        (["--seed", "-1"], ("--seed", "expected a non-negative integer, got -1")),
    ],
)
def test_bad_training_arguments_are_one_line(argv, needles, tmp_path, capsys):
    out = tmp_path / "run"
    _assert_one_line_exit_2(["train", "--epochs", "1", "--out", str(out), *argv], capsys, *needles)
    assert not (out / "model.keras").exists()


def test_corrupt_model_in_a_subprocess_is_one_line_and_exit_2(models):
    result = _run("evaluate", "--model", str(models / "corrupt.keras"))
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("dmlkeras: error: cannot load") and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_dataset_is_one_line(tmp_path, monkeypatch, capsys):
    # No data anywhere and downloads impossible: the loader's several-line message becomes one line.
    from dmlkeras.datasets import _storage

    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(tmp_path / "nothing"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(_storage, "PROJECT_DATA_DIR", tmp_path / "no-project-data")
    for key, remote in list(_storage.REMOTES.items()):
        monkeypatch.setitem(_storage.REMOTES, key, dataclasses.replace(remote, url="http://127.0.0.1:9/none"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home").chmod(0o500)
    (tmp_path / "nothing").mkdir()
    (tmp_path / "nothing").chmod(0o500)
    try:
        argv = ["train", "--dataset", "mnist", "--epochs", "1", "--out", str(tmp_path / "run")]
        _assert_one_line_exit_2(argv, capsys, "cannot load --dataset mnist", "Missing data: 'mnist.npz'")
    finally:
        (tmp_path / "home").chmod(0o700)
        (tmp_path / "nothing").chmod(0o700)
