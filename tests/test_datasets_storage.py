"""Tests of dmlkeras.datasets._storage: search order, cache folder, checks, downloads (from a local server), archives.

Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets it to the
shared data folder).
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from dmlkeras import datasets
from dmlkeras.datasets import DatasetIntegrityError, DatasetNotFoundError, _storage
from tests.datasets_helpers import (  # noqa: F401  (isolated: autouse fixture)
    GENRES,
    ML_FILES,
    STS_FILES,
    _sha,
    archive,
    isolated,
    leftovers,
    mnist_bytes,
    serve_remote,
    server,
    set_read_only,
    set_writable,
    snapshot,
    write,
    write_ag_news,
    write_all,
    write_ml100k,
    write_sick,
    write_sts,
)


def test_data_home_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = isolated / "home" / ".dmlkeras" / "datasets"
    assert datasets.data_home() == [home]
    project = isolated / "project" / "data"
    project.mkdir(parents=True)
    monkeypatch.setattr(_storage, "PROJECT_DATA_DIR", project)
    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(isolated / "env"))
    assert datasets.data_home(isolated / "arg") == [
        isolated / "arg",
        isolated / "env",
        project,
        home,
    ]
    # duplicates are dropped, relative paths made absolute, "~" expanded
    monkeypatch.chdir(isolated)
    assert datasets.data_home("env") == [isolated / "env", project, home]
    assert datasets.data_home("~/.dmlkeras/datasets") == [home, isolated / "env", project]


def test_loader_follows_search_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    roots = {name: isolated / name for name in ("arg", "env", "project")}
    roots["home"] = isolated / "home" / ".dmlkeras" / "datasets"
    for seed, root in enumerate(roots.values()):
        write(root, "mnist.npz", mnist_bytes(seed))
    monkeypatch.setitem(
        _storage.FILES,
        "mnist.npz",
        tuple((len(b), _sha(b)) for b in (mnist_bytes(s) for s in range(4))),
    )
    monkeypatch.setattr(_storage, "PROJECT_DATA_DIR", roots["project"])
    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(roots["env"]))

    def first_image(**kwargs: object) -> np.ndarray:
        return datasets.load_mnist(download=False, **kwargs)[0][0][0]

    expected = [np.load(io.BytesIO(mnist_bytes(s)))["x_train"][0] for s in range(4)]
    np.testing.assert_array_equal(first_image(data_dir=roots["arg"]), expected[0])
    np.testing.assert_array_equal(first_image(), expected[1])
    monkeypatch.delenv("DMLKERAS_DATA_DIR")
    np.testing.assert_array_equal(first_image(), expected[2])
    monkeypatch.setattr(_storage, "PROJECT_DATA_DIR", isolated / "absent")
    np.testing.assert_array_equal(first_image(), expected[3])


def test_cache_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert datasets.cache_dir() == isolated / "cache"
    monkeypatch.delenv("DMLKERAS_CACHE_DIR")
    assert datasets.cache_dir() == isolated / "home" / ".cache" / "dmlkeras"


def test_is_writable(isolated: Path) -> None:
    ro = isolated / "ro"
    ro.mkdir()
    assert _storage.is_writable(isolated / "new" / "deeper")
    ro.chmod(0o555)
    try:
        assert not _storage.is_writable(ro)  # even for root, who could write there
        assert not _storage.is_writable(ro / "child")
    finally:
        ro.chmod(0o755)


def test_read_only_data_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = isolated / "ro"
    write_all(root, monkeypatch)
    set_read_only(root)
    before = snapshot(root)
    try:
        datasets.load_mnist(root, verify=True)
        datasets.load_lfw_people(data_dir=root)
        for subset in ("train", "test", "10_folds"):
            datasets.load_lfw_pairs(subset, data_dir=root)
            datasets.lfw_pair_people(subset, data_dir=root)
        datasets.load_movielens_100k(root, verify=True)
        datasets.load_sts_benchmark(data_dir=root, verify=True)
        datasets.load_sick(data_dir=root, verify=True)
        datasets.load_stackoverflow_titles(root, verify=True)
        datasets.load_ag_news_test(root, verify=True)
        assert snapshot(root) == before  # nothing written beside the data
        assert len(list((isolated / "cache" / "lfw").iterdir())) == 4  # caches went here
    finally:
        set_writable(root)


def test_size_and_sha_checked_by_default(isolated: Path, monkeypatch) -> None:
    # Issue 21: a same-size edit used to pass unless verify=True.
    root = isolated / "d"
    write_ag_news(root, monkeypatch)
    path = root / "text/ag_news/test.csv"
    assert len(datasets.load_ag_news_test(root)) == 4
    data = bytearray(path.read_bytes())
    data[5] ^= 1  # same size, other content
    path.write_bytes(bytes(data))
    for verify in (False, True):
        with pytest.raises(DatasetIntegrityError, match=f"{path} has sha256 {_sha(bytes(data))}, expected"):
            datasets.load_ag_news_test(root, verify=verify)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(DatasetIntegrityError, match="truncated"):
        datasets.load_ag_news_test(root)


def test_tables_are_consistent() -> None:
    provided = [rel for r in _storage.REMOTES.values() for rel in r.provides]
    assert len(provided) == len(set(provided))
    assert set(_storage.FILES) <= set(provided)
    for remote in _storage.REMOTES.values():
        for rel in remote.provides:
            assert rel in _storage.FILES or remote.sha256 is not None, rel
        assert remote.archive in (None, "zip", "tar")
        assert remote.archive is not None or len(remote.provides) == 1
    for versions in _storage.FILES.values():
        for size, sha in versions:
            assert size > 0 and len(sha) == 64 and int(sha, 16) >= 0


def test_not_found_error_message(isolated: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        datasets.load_movielens_100k(isolated / "mine", download=False)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    text = str(err)
    for rel in ML_FILES:
        assert rel in text
        for root in datasets.data_home(isolated / "mine"):
            assert str(root / rel) in text
    assert _storage.REMOTES["ml-100k"].url in text
    assert "download=False" in text
    assert "DMLKERAS_DATA_DIR" in text and "data_dir=" in text
    assert err.missing == ML_FILES and err.urls == [_storage.REMOTES["ml-100k"].url]


def test_offline_download_fails_cleanly(isolated: Path) -> None:
    target = isolated / "d"
    with pytest.raises(DatasetNotFoundError, match=r"Downloading .* failed") as info:
        datasets.load_mnist(target)
    assert "mnist.npz" in str(info.value)
    assert not (target / "mnist.npz").exists() and leftovers(target) == []


def test_no_writable_folder(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ro = isolated / "ro"
    ro.mkdir()
    monkeypatch.setenv("HOME", str(ro))
    ro.chmod(0o555)
    try:
        with pytest.raises(DatasetNotFoundError, match="writable"):
            datasets.load_sick(data_dir=ro)
    finally:
        ro.chmod(0o755)


def test_download_good_file(isolated: Path, server, monkeypatch, capsys) -> None:
    body = mnist_bytes(7)
    monkeypatch.setitem(_storage.FILES, "mnist.npz", ((len(body), _sha(body)),))
    serve_remote(monkeypatch, server, "mnist", body)
    ro = isolated / "ro"
    ro.mkdir()
    ro.chmod(0o555)  # read-only data_dir: the download goes to the next folder, ~/.dmlkeras
    try:
        (x, _), _ = datasets.load_mnist(ro)
    finally:
        ro.chmod(0o755)
    home = isolated / "home" / ".dmlkeras" / "datasets"
    assert (home / "mnist.npz").read_bytes() == body
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((home / "mnist.npz").stat().st_mode) == 0o666 & ~umask  # not 0600
    assert list(ro.iterdir()) == [] and leftovers(home) == []
    assert "mnist" in capsys.readouterr().err  # tqdm progress bar
    server[0].clear()  # the local copy is used from now on
    np.testing.assert_array_equal(datasets.load_mnist(ro, verify=True)[0][0], x)


def test_download_corrupted_file(isolated: Path, server, monkeypatch) -> None:
    good, bad = mnist_bytes(7), mnist_bytes(8)
    monkeypatch.setitem(_storage.FILES, "mnist.npz", ((len(good), _sha(good)),))
    serve_remote(monkeypatch, server, "mnist", bad)
    target = isolated / "d"
    with pytest.raises(DatasetIntegrityError) as info:
        datasets.load_mnist(target)
    assert f"expected sha256 {_sha(good)}, got {_sha(bad)}" in str(info.value)
    assert list(target.iterdir()) == []


def test_download_interrupted(isolated: Path, server, monkeypatch) -> None:
    body = mnist_bytes(7)
    monkeypatch.setitem(_storage.FILES, "mnist.npz", ((len(body), _sha(body)),))
    serve_remote(monkeypatch, server, "mnist", body, truncate=True)
    target = isolated / "d"
    with pytest.raises(DatasetIntegrityError, match=f"incomplete: received {len(body) // 2} of"):
        datasets.load_mnist(target)
    assert list(target.iterdir()) == []
    server[0]["/mnist"] = (body, False)  # a later call downloads it afresh
    assert datasets.load_mnist(target)[0][0].shape == (6, 28, 28)
    assert leftovers(target) == []


def test_download_404(isolated: Path, server, monkeypatch) -> None:
    serve_remote(monkeypatch, server, "sick", b"")
    server[0].clear()
    with pytest.raises(DatasetNotFoundError, match="404"):
        datasets.load_sick(data_dir=isolated / "d")
    assert leftovers(isolated / "d") == []


@pytest.mark.parametrize("corrupt", [False, True])
def test_download_zip_archive(isolated: Path, server, monkeypatch, corrupt: bool) -> None:
    src = isolated / "src"
    write_ml100k(src, monkeypatch)
    members = {rel: (src / rel).read_bytes() for rel in ML_FILES}
    members["ml-100k/README"] = b"not extracted"
    members["__MACOSX/ml-100k/._u.data"] = b"resource fork"
    if corrupt:
        members["ml-100k/u.item"] += b"x"
    serve_remote(monkeypatch, server, "ml-100k", archive("zip", members))
    target = isolated / "d"
    if corrupt:
        with pytest.raises(DatasetIntegrityError, match=r"'ml-100k/u\.item'.*expected sha256"):
            datasets.load_movielens_100k(target)
        assert [p for p in target.rglob("*") if p.is_file()] == []  # no member kept
        return
    ml = datasets.load_movielens_100k(target, verify=True)
    assert len(ml.ratings) == 3
    assert sorted(p.name for p in (target / "ml-100k").iterdir()) == [
        "u.data", "u.genre", "u.item", "u.user",
    ]  # fmt: skip


def test_download_tar_archive_and_partial_local(isolated: Path, server, monkeypatch) -> None:
    src = isolated / "src"
    write_sts(src, monkeypatch)
    members = {f"stsbenchmark/{Path(rel).name}": (src / rel).read_bytes() for rel in STS_FILES}
    members["stsbenchmark/readme.txt"] = b"readme"
    serve_remote(monkeypatch, server, "stsbenchmark", archive("tar", members))
    target = isolated / "d"
    assert len(datasets.load_sts_benchmark("dev", data_dir=target)) == 1
    assert sorted(p.name for p in (target / "text/stsbenchmark").iterdir()) == [
        "sts-dev.csv", "sts-test.csv", "sts-train.csv",
    ]  # fmt: skip
    assert leftovers(target) == []


def test_download_archive_missing_member(isolated: Path, server, monkeypatch) -> None:
    src = isolated / "src"
    write_sick(src, monkeypatch)
    serve_remote(monkeypatch, server, "sick", archive("zip", {"readme.txt": b"no data"}))
    with pytest.raises(DatasetIntegrityError, match="lacks"):
        datasets.load_sick(data_dir=isolated / "d")
    assert leftovers(isolated / "d") == []


def test_download_invalid_archive(isolated: Path, server, monkeypatch) -> None:
    write_sick(isolated / "src", monkeypatch)
    serve_remote(monkeypatch, server, "sick", b"<html>Service unavailable</html>")
    with pytest.raises(DatasetIntegrityError, match="not a valid zip archive"):
        datasets.load_sick(data_dir=isolated / "d")
    assert leftovers(isolated / "d") == []


def test_project_data_dir_only_in_a_source_checkout() -> None:
    # This test runs from a checkout: its data/ folder is searched (a wheel has none; the
    # wheel check of the Makefile asserts PROJECT_DATA_DIR is None there).
    import dmlkeras

    checkout = Path(dmlkeras.__file__).resolve().parents[1]
    assert (checkout / "pyproject.toml").is_file()
    assert _storage.source_checkout_data_dir() == checkout / "data"


def test_register_refuses_a_second_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match=r"Already registered: \['mnist.npz'\]"):
        _storage.register(files={"mnist.npz": ((1, "0" * 64),)})
    monkeypatch.setattr(_storage, "FOLDERS", {})
    _storage.register(folders={"new/folder": ("*.txt", 2, "text files")})
    assert _storage.FOLDERS == {"new/folder": ("*.txt", 2, "text files")}


def test_folder_check_counts_files(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(_storage.FOLDERS, "notes", ("*.txt", 2, "notes"))
    write(isolated / "d", "notes/a.txt", b"a")
    assert _storage.fetch(["notes"], isolated / "d", download=False) == {"notes": isolated / "d" / "notes"}
    with pytest.raises(DatasetIntegrityError, match="holds 1 files matching '\\*.txt', expected the 2 notes"):
        _storage.fetch(["notes"], isolated / "d", download=False, verify=True)


# ---------------------------------------------------------------- issue 21: cheap default checksums, orphans, partial fetches
def test_checksum_is_computed_once_per_file_version(isolated: Path, monkeypatch) -> None:
    root = isolated / "d"
    write_ag_news(root, monkeypatch)
    path = root / "text/ag_news/test.csv"
    hashed = []
    real_sha = _storage.sha256_file
    monkeypatch.setattr(_storage, "sha256_file", lambda p: hashed.append(Path(p)) or real_sha(p))
    for _ in range(3):
        datasets.load_ag_news_test(root)
    assert hashed == [path]  # hashed once, then remembered (size + mtime)
    assert (isolated / "cache" / "verified-sha256.json").is_file()
    datasets.load_ag_news_test(root, verify=True)
    assert hashed == [path, path]  # verify=True hashes again
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))  # touched: a new version
    datasets.load_ag_news_test(root)
    assert hashed == [path, path, path]


def test_checksum_memo_in_a_read_only_cache_still_checks(isolated: Path, monkeypatch) -> None:
    root = isolated / "d"
    write_ag_news(root, monkeypatch)
    blocked = isolated / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(blocked))
    assert len(datasets.load_ag_news_test(root)) == 4
    path = root / "text/ag_news/test.csv"
    data = bytearray(path.read_bytes())
    data[5] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(DatasetIntegrityError, match="has sha256"):
        datasets.load_ag_news_test(root)


def test_orphan_part_files_are_removed_by_the_next_download(isolated: Path, server, monkeypatch) -> None:
    body = mnist_bytes(3)
    monkeypatch.setitem(_storage.FILES, "mnist.npz", ((len(body), _sha(body)),))
    serve_remote(monkeypatch, server, "mnist", body)
    target = isolated / "d"
    orphan = write(target, ".download-killed.part", b"half a download")
    os.utime(orphan, (0, 0))  # a kill long ago
    live = write(target, ".download-live.part", b"another process, still downloading")
    datasets.load_mnist(target)
    assert not orphan.exists() and live.exists()
    assert sorted(p.name for p in target.iterdir()) == [".download-live.part", "mnist.npz"]


def test_orphan_part_files_are_removed_by_the_next_cache_write(isolated: Path) -> None:
    folder = isolated / "cache" / "demo"
    orphan = write(folder, ".ones-killed.part", b"half a cache")
    os.utime(orphan, (0, 0))
    _storage.cached_arrays("demo", "ones", lambda: {"x": np.ones(2)})
    assert sorted(p.name for p in folder.iterdir()) == ["ones.npz"]


def test_fetch_of_one_missing_member_leaves_the_other_local_files_alone(isolated: Path, server, monkeypatch) -> None:
    root = isolated / "d"
    write_ml100k(root, monkeypatch)
    (root / "ml-100k/u.genre").unlink()
    before = {rel: (root / rel).stat() for rel in ML_FILES if rel != "ml-100k/u.genre"}
    members = {rel: (root / rel).read_bytes() for rel in before}
    members["ml-100k/u.genre"] = b"".join(f"{g}|{i}\n".encode() for i, g in enumerate(GENRES)) + b"\n"
    serve_remote(monkeypatch, server, "ml-100k", archive("zip", members))
    ml = datasets.load_movielens_100k(root)
    assert len(ml.genres) == 19
    for rel, stat_before in before.items():
        after = (root / rel).stat()
        assert (after.st_ino, after.st_mtime_ns) == (stat_before.st_ino, stat_before.st_mtime_ns), rel
    assert leftovers(root) == []
