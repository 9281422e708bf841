"""Tests of dmlkeras.datasets.

Most tests write tiny fixtures in the real file formats to a temporary folder
and serve downloads from a local ``http.server``: nothing here reaches the
network. Tests on the real files run when ``DMLKERAS_DATA_DIR`` is set (CI sets
it to the shared data folder).
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import shutil
import socket
import stat
import tarfile
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import fetch_lfw_pairs, fetch_lfw_people
from sklearn.datasets._lfw import _load_imgs

from dmlkeras import datasets
from dmlkeras.datasets import DatasetIntegrityError, DatasetNotFoundError

REAL_DATA = os.environ.get("DMLKERAS_DATA_DIR")
real_data_only = pytest.mark.skipif(
    not REAL_DATA, reason="DMLKERAS_DATA_DIR is not set (the real data sets are absent)"
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_UNREACHABLE = f"http://127.0.0.1:{_closed_port()}"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No DMLKERAS_DATA_DIR, a fresh HOME and cache, no repository data/, no internet."""
    monkeypatch.delenv("DMLKERAS_DATA_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "_PROJECT_DATA_DIR", tmp_path / "no-project-data")
    for key, remote in list(datasets._REMOTES.items()):
        monkeypatch.setitem(
            datasets._REMOTES, key, dataclasses.replace(remote, url=f"{_UNREACHABLE}/{key}")
        )
    return tmp_path


# ---------------------------------------------------------------------------
# Fixture writers (real formats, tiny sizes)
# ---------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def register(monkeypatch: pytest.MonkeyPatch, root: Path, *rels: str) -> None:
    """Make the size/sha256 table accept the fixture versions of ``rels``."""
    for rel in rels:
        data = (root / rel).read_bytes()
        monkeypatch.setitem(datasets._FILES, rel, ((len(data), _sha(data)),))


def write(root: Path, rel: str, data: bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mnist_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        x_train=rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        y_train=np.arange(6, dtype=np.uint8),
        x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        y_test=np.arange(3, dtype=np.uint8),
    )
    return buf.getvalue()


def write_mnist(root: Path, monkeypatch: pytest.MonkeyPatch, seed: int = 0) -> Path:
    path = write(root, "mnist.npz", mnist_bytes(seed))
    register(monkeypatch, root, "mnist.npz")
    return path


LFW_PEOPLE = {"Alice_Alpha": 3, "Bob_Beta": 2, "Carl_Gamma": 1, "Dana_Delta": 4}
LFW_PAIRS = {
    "pairsDevTrain.txt": "2\nAlice_Alpha\t1\t2\nDana_Delta\t1\t4\n"
    "Alice_Alpha\t3\tBob_Beta\t1\nCarl_Gamma\t1\tDana_Delta\t2\n",
    "pairsDevTest.txt": "1\nBob_Beta\t1\t2\nAlice_Alpha\t1\tCarl_Gamma\t1\n",
    "pairs.txt": "2\t1\nDana_Delta\t2\t3\nBob_Beta\t2\tDana_Delta\t1\n"
    "Alice_Alpha\t2\t3\nCarl_Gamma\t1\tAlice_Alpha\t2\n",
}


def write_lfw(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A mini lfw_home in scikit-learn's layout: 10 RGB JPEGs of 4 people + pairs files."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:250, 0:250]
    for person, n in LFW_PEOPLE.items():
        for k in range(1, n + 1):
            base = (xx * rng.uniform(0.3, 1.0) + yy * rng.uniform(0.3, 1.0)) % 256
            rgb = np.stack([base, 255 - base, (base * 3) % 256], axis=-1)
            rgb = np.clip(rgb + rng.normal(0, 20, rgb.shape), 0, 255).astype(np.uint8)
            path = root / "lfw_home" / "lfw_funneled" / person / f"{person}_{k:04d}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb).save(path, quality=90)
    for name, text in LFW_PAIRS.items():
        write(root, f"lfw_home/{name}", text.encode())
    register(monkeypatch, root, *(f"lfw_home/{name}" for name in LFW_PAIRS))
    return root / "lfw_home"


GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
ML_FILES = ["ml-100k/u.data", "ml-100k/u.item", "ml-100k/u.user", "ml-100k/u.genre"]


def write_ml100k(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(root, "ml-100k/u.data", b"1\t1\t5\t874965758\n2\t1\t3\t876893171\n1\t2\t4\t878542960\n")
    flags1 = "|".join("1" if g in ("Animation", "Comedy") else "0" for g in GENRES)
    flags2 = "|".join("1" if g == "Drama" else "0" for g in GENRES)
    item = (
        f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/x|{flags1}\n"
        f'2|Café "Noir" (1996)|||http://us.imdb.com/M/y|{flags2}\n'
    )
    write(root, "ml-100k/u.item", item.encode("latin-1"))
    write(root, "ml-100k/u.user", b"1|24|M|technician|85711\n2|53|F|other|T8H1N\n")
    genre = "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n"
    write(root, "ml-100k/u.genre", genre.encode())
    register(monkeypatch, root, *ML_FILES)


STS_FILES = [f"text/stsbenchmark/sts-{s}.csv" for s in ("train", "dev", "test")]


def write_sts(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        root,
        STS_FILES[0],
        b"main-captions\tMSRvid\t2012test\t0001\t5.000\tA plane is taking off.\tAn air plane.\n"
        b'main-news\theadlines\t2013\t0002\t1.500\tHe said "hi.\tShe left.\n'
        b"main-forum\tdeft-forum\t2014\t0003\t0.000\tNA\tnull\tsrc a\tsrc b\n",
    )
    write(root, STS_FILES[1], b"main-news\theadlines\t2015\t0010\t2.500\tOne.\tTwo.\n")
    write(root, STS_FILES[2], b"main-forums\tanswers\t2016\t0020\t4.000\tThree.\tFour.\n")
    register(monkeypatch, root, *STS_FILES)


SICK_HEADER = (
    "pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\t"
    "entailment_BA\tsentence_A_original\tsentence_B_original\tsentence_A_dataset\t"
    "sentence_B_dataset\tSemEval_set"
)


def write_sick(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fields = [
        ["1", "A kid plays", 'A "child" plays', "ENTAILMENT", "4.5", "A_entails_B",
         "B_entails_A", "a", "b", "FLICKR", "FLICKR", "TRAIN"],
        ["2", "A man runs", "Nobody runs", "CONTRADICTION", "3.2", "A_contradicts_B",
         "B_contradicts_A", "c", "d", "SEMEVAL", "SEMEVAL", "TRIAL"],
        ["4", "A dog barks", "A cat sleeps", "NEUTRAL", "1.1", "A_neutral_B",
         "B_neutral_A", "e", "f", "FLICKR", "FLICKR", "TEST"],
    ]  # fmt: skip
    rows = [SICK_HEADER, *("\t".join(f) for f in fields)]
    write(root, "text/sick/SICK.txt", "\r\n".join(rows).encode())  # CRLF, no final newline
    register(monkeypatch, root, "text/sick/SICK.txt")


SO_FILES = [
    "text/stackoverflow/title_StackOverflow.txt",
    "text/stackoverflow/label_StackOverflow.txt",
]


def write_stackoverflow(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    titles = "How to use wp_query?\nOracle\u2028PL/SQL \x0c cursor\nHaskell monads\n"
    write(root, SO_FILES[0], titles.encode())
    write(root, SO_FILES[1], b"1\n2\n19\n")
    register(monkeypatch, root, *SO_FILES)


def write_ag_news(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        root,
        "text/ag_news/test.csv",
        b'"3","Fears for T N pension","Unions say they are \'disappointed\', after talks."\n'
        b'"4","Space race","A second\\team of rocketeers"\n'
        b'"2","Sports #39;s day","NA"\n'
        b'"1","World","null"\n',
    )
    register(monkeypatch, root, "text/ag_news/test.csv")


def write_all(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(root, monkeypatch)
    write_lfw(root, monkeypatch)
    write_ml100k(root, monkeypatch)
    write_sts(root, monkeypatch)
    write_sick(root, monkeypatch)
    write_stackoverflow(root, monkeypatch)
    write_ag_news(root, monkeypatch)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def leftovers(root: Path) -> list[Path]:
    """Temporary files or folders (downloads, staged members) under ``root``."""
    return [p for p in root.rglob(".*") if p.name != ".gitignore"]


def set_read_only(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


def set_writable(root: Path) -> None:
    for p in [root, *root.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


# ---------------------------------------------------------------------------
# Local HTTP server
# ---------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        route = self.server.routes.get(self.path)  # type: ignore[attr-defined]
        if route is None:
            self.send_error(404)
            return
        body, truncate = route
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if truncate else body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[dict, str]]:
    """A local server: ``routes[path] = (body, truncate)``; yields (routes, base_url)."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.routes = {}  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd.routes, f"http://127.0.0.1:{httpd.server_address[1]}"  # type: ignore[attr-defined]
    httpd.shutdown()
    httpd.server_close()


def serve_remote(
    monkeypatch: pytest.MonkeyPatch,
    server: tuple[dict, str],
    key: str,
    body: bytes,
    truncate: bool = False,
    **changes: object,
) -> None:
    routes, base = server
    routes[f"/{key}"] = (body, truncate)
    remote = dataclasses.replace(datasets._REMOTES[key], url=f"{base}/{key}", **changes)
    monkeypatch.setitem(datasets._REMOTES, key, remote)


def archive(kind: str, members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Search order, cache folder, writability
# ---------------------------------------------------------------------------


def test_data_home_order(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = isolated / "home" / ".dmlkeras" / "datasets"
    assert datasets.data_home() == [home]
    project = isolated / "project" / "data"
    project.mkdir(parents=True)
    monkeypatch.setattr(datasets, "_PROJECT_DATA_DIR", project)
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
        datasets._FILES,
        "mnist.npz",
        tuple((len(b), _sha(b)) for b in (mnist_bytes(s) for s in range(4))),
    )
    monkeypatch.setattr(datasets, "_PROJECT_DATA_DIR", roots["project"])
    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(roots["env"]))

    def first_image(**kwargs: object) -> np.ndarray:
        return datasets.load_mnist(download=False, **kwargs)[0][0][0]

    expected = [np.load(io.BytesIO(mnist_bytes(s)))["x_train"][0] for s in range(4)]
    np.testing.assert_array_equal(first_image(data_dir=roots["arg"]), expected[0])
    np.testing.assert_array_equal(first_image(), expected[1])
    monkeypatch.delenv("DMLKERAS_DATA_DIR")
    np.testing.assert_array_equal(first_image(), expected[2])
    monkeypatch.setattr(datasets, "_PROJECT_DATA_DIR", isolated / "absent")
    np.testing.assert_array_equal(first_image(), expected[3])


def test_cache_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert datasets.cache_dir() == isolated / "cache"
    monkeypatch.delenv("DMLKERAS_CACHE_DIR")
    assert datasets.cache_dir() == isolated / "home" / ".cache" / "dmlkeras"


def test_is_writable(isolated: Path) -> None:
    ro = isolated / "ro"
    ro.mkdir()
    assert datasets._is_writable(isolated / "new" / "deeper")
    ro.chmod(0o555)
    try:
        assert not datasets._is_writable(ro)  # even for root, who could write there
        assert not datasets._is_writable(ro / "child")
    finally:
        ro.chmod(0o755)


# ---------------------------------------------------------------------------
# Loaders on fixtures
# ---------------------------------------------------------------------------


def test_load_digits() -> None:
    x, y = datasets.load_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.dtype == np.int64 and set(y.tolist()) == set(range(10))
    flat, _ = datasets.load_digits(as_images=False)
    np.testing.assert_array_equal(flat, x.reshape(1797, 64))


def test_load_mnist_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_mnist(isolated / "d", monkeypatch)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(isolated / "d", verify=True)
    assert x_train.shape == (6, 28, 28) and x_train.dtype == np.uint8
    assert x_test.shape == (3, 28, 28)
    np.testing.assert_array_equal(y_train, np.arange(6))
    assert y_test.dtype == np.uint8


def test_load_movielens_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ml100k(isolated / "d", monkeypatch)
    ml = datasets.load_movielens_100k(isolated / "d", verify=True)
    assert list(ml.ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ml.ratings["rating"].tolist() == [5, 3, 4]
    assert ml.genres == GENRES
    movies = ml.movies
    assert list(movies.columns[:4]) == ["item_id", "title", "release_date", "imdb_url"]
    assert list(movies.columns[4:]) == GENRES
    assert movies["title"].tolist() == ["Toy Story (1995)", 'Café "Noir" (1996)']  # latin-1
    assert str(movies["release_date"][0].date()) == "1995-01-01"
    assert movies["release_date"].isna().tolist() == [False, True]
    assert movies.loc[0, ["Animation", "Comedy", "Drama"]].tolist() == [1, 1, 0]
    assert ml.users["zip_code"].tolist() == ["85711", "T8H1N"]
    assert list(ml.users.columns) == ["user_id", "age", "gender", "occupation", "zip_code"]


def test_load_sts_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sts(isolated / "d", monkeypatch)
    train = datasets.load_sts_benchmark("train", data_dir=isolated / "d")
    assert list(train.columns) == [
        "genre", "file", "year", "id", "score", "sentence1", "sentence2",
    ]  # fmt: skip
    assert len(train) == 3  # the unbalanced quote does not merge rows
    assert train["sentence1"].tolist() == ["A plane is taking off.", 'He said "hi.', "NA"]
    assert train["sentence2"][2] == "null"  # not parsed as missing
    assert train["id"][0] == "0001" and train["score"].dtype == np.float64
    every = datasets.load_sts_benchmark(data_dir=isolated / "d")
    assert every["split"].tolist() == ["train"] * 3 + ["dev", "test"]
    with pytest.raises(ValueError, match="split"):
        datasets.load_sts_benchmark("validation", data_dir=isolated / "d")


def test_load_sick_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_sick(isolated / "d", monkeypatch)
    sick = datasets.load_sick(data_dir=isolated / "d", verify=True)
    assert list(sick.columns) == SICK_HEADER.split("\t")
    assert sick.shape == (3, 12)
    assert sick["SemEval_set"].tolist() == ["TRAIN", "TRIAL", "TEST"]  # no stray "\r"
    assert sick["sentence_B"][0] == 'A "child" plays'
    trial = datasets.load_sick("trial", data_dir=isolated / "d")
    assert trial["pair_ID"].tolist() == [2]
    with pytest.raises(ValueError, match="split"):
        datasets.load_sick("dev", data_dir=isolated / "d")


def test_load_stackoverflow_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stackoverflow(isolated / "d", monkeypatch)
    so = datasets.load_stackoverflow_titles(isolated / "d")
    assert so.titles[1] == "Oracle\u2028PL/SQL \x0c cursor"  # split on "\n" only
    assert len(so.titles) == 3
    np.testing.assert_array_equal(so.target, [0, 1, 18])
    assert [so.target_names[t] for t in so.target] == ["wordpress", "oracle", "haskell"]
    assert len(so.target_names) == 20


def test_stackoverflow_length_mismatch(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_stackoverflow(isolated / "d", monkeypatch)
    write(isolated / "d", SO_FILES[1], b"1\n2\n")
    register(monkeypatch, isolated / "d", SO_FILES[1])
    with pytest.raises(DatasetIntegrityError, match="3 titles but 2 labels"):
        datasets.load_stackoverflow_titles(isolated / "d")


def test_load_ag_news_fixture(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ag_news(isolated / "d", monkeypatch)
    news = datasets.load_ag_news_test(isolated / "d")
    assert list(news.columns) == ["label", "title", "description"]
    assert news["label"].tolist() == [2, 3, 1, 0]
    assert [datasets.AG_NEWS_CLASSES[i] for i in news["label"]][:2] == ["Business", "Sci/Tech"]
    assert news["description"][0] == "Unions say they are 'disappointed', after talks."
    assert news["description"][2:].tolist() == ["NA", "null"]


# ---------------------------------------------------------------------------
# LFW against scikit-learn
# ---------------------------------------------------------------------------


@pytest.fixture
def lfw(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(our data folder, a copy for scikit-learn, which writes a joblib cache into it)."""
    write_lfw(isolated / "d", monkeypatch)
    shutil.copytree(isolated / "d", isolated / "sk")
    return isolated / "d", isolated / "sk"


@pytest.mark.parametrize(("resize", "color"), [(0.5, False), (None, True), (0.3, True)])
def test_lfw_people_matches_sklearn(lfw: tuple[Path, Path], resize, color) -> None:
    ours_dir, sk_dir = lfw
    for min_faces in (0, 2):
        ours = datasets.load_lfw_people(min_faces, resize, color, data_dir=ours_dir)
        sk = fetch_lfw_people(
            data_home=sk_dir,
            min_faces_per_person=min_faces,
            resize=resize,
            color=color,
            download_if_missing=False,
        )
        np.testing.assert_array_equal(ours.images, sk.images)
        np.testing.assert_array_equal(ours.target, sk.target)
        np.testing.assert_array_equal(ours.target_names, sk.target_names)
        assert ours.images.dtype == np.float32


@pytest.mark.parametrize("subset", ["train", "test", "10_folds"])
def test_lfw_pairs_matches_sklearn(lfw: tuple[Path, Path], subset: str) -> None:
    ours_dir, sk_dir = lfw
    ours = datasets.load_lfw_pairs(subset, data_dir=ours_dir, verify=False)
    sk = fetch_lfw_pairs(subset=subset, data_home=sk_dir, download_if_missing=False)
    np.testing.assert_array_equal(ours.pairs, sk.pairs)
    np.testing.assert_array_equal(ours.target, sk.target)
    np.testing.assert_array_equal(ours.target_names, sk.target_names)
    assert ours.pairs.shape[1:] == (2, 62, 47)
    assert ours.names.shape == (len(ours.target), 2)
    same = ours.names[:, 0] == ours.names[:, 1]
    np.testing.assert_array_equal(same, ours.target == 1)


def test_lfw_pairs_names_and_folds(lfw: tuple[Path, Path]) -> None:
    folds = datasets.load_lfw_pairs("10_folds", data_dir=lfw[0])
    assert folds.folds.tolist() == [0, 0, 1, 1]
    assert folds.target.tolist() == [1, 0, 1, 0]
    assert folds.names.tolist()[1] == ["Bob Beta", "Dana Delta"]
    train = datasets.load_lfw_pairs("train", data_dir=lfw[0], color=True, resize=None)
    assert train.pairs.shape == (4, 2, 125, 94, 3)
    assert train.folds.tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match="subset"):
        datasets.load_lfw_pairs("dev", data_dir=lfw[0])
    with pytest.raises(ValueError, match="resize"):
        datasets.load_lfw_pairs("train", resize=0, data_dir=lfw[0])


def test_lfw_pair_people_and_people_filter(lfw: tuple[Path, Path]) -> None:
    train_people = datasets.lfw_pair_people("train", data_dir=lfw[0])
    assert train_people == {"Alice Alpha", "Bob Beta", "Carl Gamma", "Dana Delta"}
    assert datasets.lfw_pair_people("test", data_dir=lfw[0]) == {
        "Alice Alpha", "Bob Beta", "Carl Gamma",
    }  # fmt: skip
    subset = datasets.load_lfw_people(people=["Bob Beta", "Dana_Delta"], data_dir=lfw[0])
    assert subset.target_names.tolist() == ["Bob Beta", "Dana Delta"]
    assert np.bincount(subset.target).tolist() == [2, 4]
    everyone = datasets.load_lfw_people(data_dir=lfw[0])
    keep = np.isin(everyone.target_names[everyone.target], ["Bob Beta", "Dana Delta"])
    assert sorted(map(bytes, subset.images)) == sorted(map(bytes, everyone.images[keep]))
    with pytest.raises(ValueError, match="Not in LFW"):
        datasets.load_lfw_people(people=["Nobody Here"], data_dir=lfw[0])
    with pytest.raises(ValueError, match="min_faces_per_person"):
        datasets.load_lfw_people(min_faces_per_person=5, data_dir=lfw[0])


def test_lfw_cache(lfw: tuple[Path, Path], isolated: Path, monkeypatch) -> None:
    first = datasets.load_lfw_pairs("train", data_dir=lfw[0])
    people = datasets.load_lfw_people(data_dir=lfw[0])
    cached = sorted(p.name for p in (isolated / "cache" / "lfw").iterdir())
    assert len(cached) == 2 and all(name.endswith(".npz") for name in cached)

    def no_decoding(*args: object) -> None:
        raise AssertionError("decoded again instead of reading the cache")

    monkeypatch.setattr(datasets, "_load_faces", no_decoding)
    np.testing.assert_array_equal(
        datasets.load_lfw_pairs("train", data_dir=lfw[0]).pairs, first.pairs
    )
    np.testing.assert_array_equal(datasets.load_lfw_people(data_dir=lfw[0]).images, people.images)
    with pytest.raises(AssertionError, match="decoded again"):  # other arguments: other key
        datasets.load_lfw_people(resize=0.25, data_dir=lfw[0])


def test_lfw_cache_off_and_unwritable(lfw: tuple[Path, Path], isolated: Path, monkeypatch) -> None:
    datasets.load_lfw_pairs("test", data_dir=lfw[0], cache=False)
    assert not (isolated / "cache").exists()
    blocked = isolated / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(blocked))
    with pytest.warns(UserWarning, match="Cannot write the LFW cache"):
        pairs = datasets.load_lfw_pairs("test", data_dir=lfw[0])
    assert pairs.pairs.shape == (2, 2, 62, 47)


def test_lfw_verify_counts_images(lfw: tuple[Path, Path]) -> None:
    with pytest.raises(DatasetIntegrityError, match="holds 10 images, expected the 13233"):
        datasets.load_lfw_people(data_dir=lfw[0], verify=True)


# ---------------------------------------------------------------------------
# Read-only data folder, integrity checks, missing data
# ---------------------------------------------------------------------------


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


def test_size_checked_always_sha_with_verify(isolated: Path, monkeypatch) -> None:
    root = isolated / "d"
    write_ag_news(root, monkeypatch)
    path = root / "text/ag_news/test.csv"
    data = bytearray(path.read_bytes())
    data[5] ^= 1  # same size, other content
    path.write_bytes(bytes(data))
    assert len(datasets.load_ag_news_test(root)) == 4  # cheap check: size only
    with pytest.raises(DatasetIntegrityError, match=f"has sha256 {_sha(bytes(data))}, expected"):
        datasets.load_ag_news_test(root, verify=True)
    path.write_bytes(bytes(data[:-10]))
    with pytest.raises(DatasetIntegrityError, match="truncated"):
        datasets.load_ag_news_test(root)


def test_real_mnist_hashes_accepted() -> None:
    accepted = {h for _, h in datasets._FILES["mnist.npz"]}
    assert accepted == {
        "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",  # Keras
        "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64",  # shared copy
    }


def test_tables_are_consistent() -> None:
    provided = [rel for r in datasets._REMOTES.values() for rel in r.provides]
    assert len(provided) == len(set(provided))
    assert set(datasets._FILES) <= set(provided)
    for remote in datasets._REMOTES.values():
        for rel in remote.provides:
            assert rel in datasets._FILES or remote.sha256 is not None, rel
        assert remote.archive in (None, "zip", "tar")
        assert remote.archive is not None or len(remote.provides) == 1
    for versions in datasets._FILES.values():
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
    assert datasets._REMOTES["ml-100k"].url in text
    assert "download=False" in text
    assert "DMLKERAS_DATA_DIR" in text and "data_dir=" in text
    assert err.missing == ML_FILES and err.urls == [datasets._REMOTES["ml-100k"].url]


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


# ---------------------------------------------------------------------------
# Downloads from a local server
# ---------------------------------------------------------------------------


def test_download_good_file(isolated: Path, server, monkeypatch, capsys) -> None:
    body = mnist_bytes(7)
    monkeypatch.setitem(datasets._FILES, "mnist.npz", ((len(body), _sha(body)),))
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
    monkeypatch.setitem(datasets._FILES, "mnist.npz", ((len(good), _sha(good)),))
    serve_remote(monkeypatch, server, "mnist", bad)
    target = isolated / "d"
    with pytest.raises(DatasetIntegrityError) as info:
        datasets.load_mnist(target)
    assert f"expected sha256 {_sha(good)}, got {_sha(bad)}" in str(info.value)
    assert list(target.iterdir()) == []


def test_download_interrupted(isolated: Path, server, monkeypatch) -> None:
    body = mnist_bytes(7)
    monkeypatch.setitem(datasets._FILES, "mnist.npz", ((len(body), _sha(body)),))
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


@pytest.mark.parametrize("good_hash", [True, False])
def test_download_lfw(
    lfw: tuple[Path, Path], isolated: Path, server, monkeypatch, good_hash
) -> None:
    home = lfw[0] / "lfw_home"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(home / "lfw_funneled", arcname="lfw_funneled")
    body = buf.getvalue()
    serve_remote(
        monkeypatch, server, "lfw-funneled", body, sha256=_sha(body) if good_hash else "0" * 64
    )
    for key, name in [("lfw-pairsDevTest", "pairsDevTest.txt"), ("lfw-pairs", "pairs.txt")]:
        serve_remote(monkeypatch, server, key, (home / name).read_bytes())
    target = isolated / "downloaded"
    if not good_hash:
        with pytest.raises(DatasetIntegrityError, match=r"expected sha256 0{64}"):
            datasets.load_lfw_pairs("test", data_dir=target)
        assert not (target / "lfw_home" / "lfw_funneled").exists()
        assert leftovers(target) == []
        return
    got = datasets.load_lfw_pairs("test", data_dir=target, cache=False)
    want = datasets.load_lfw_pairs("test", data_dir=lfw[0], cache=False)
    np.testing.assert_array_equal(got.pairs, want.pairs)
    assert datasets.lfw_pair_people("10_folds", data_dir=target) == {
        "Alice Alpha", "Bob Beta", "Carl Gamma", "Dana Delta",
    }  # fmt: skip
    assert sorted(p.name for p in (target / "lfw_home").iterdir()) == [
        "lfw_funneled", "pairs.txt", "pairsDevTest.txt",
    ]  # fmt: skip
    umask = os.umask(0)
    os.umask(umask)
    mode = (target / "lfw_home" / "lfw_funneled").stat().st_mode
    assert stat.S_IMODE(mode) == 0o777 & ~umask  # not mkdtemp's 0700
    assert leftovers(target) == []


# ---------------------------------------------------------------------------
# Real data (DMLKERAS_DATA_DIR)
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch, real_cache: Path) -> Path:
    """Point the loaders at the real data through the environment, as CI does."""
    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(REAL_DATA))
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(real_cache))
    return Path(str(REAL_DATA))


@real_data_only
def test_real_mnist(real: Path) -> None:
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(download=False, verify=True)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949,
    ]  # fmt: skip
    assert np.bincount(y_test).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@real_data_only
def test_real_lfw_protocol_files(real: Path) -> None:
    counts = {}
    for subset, rel in datasets._LFW_PAIRS_FILES.items():
        datasets._fetch([rel], None, False, True)  # sha256 of the pairs file
        specs, target, folds = datasets._read_pairs(real / rel)
        counts[subset] = (len(specs), int(target.sum()))
    assert counts == {"train": (2200, 1100), "test": (1000, 500), "10_folds": (6000, 3000)}
    _, target, folds = datasets._read_pairs(real / "lfw_home/pairs.txt")
    assert np.bincount(folds).tolist() == [600] * 10
    expected = np.tile(np.repeat([1, 0], 300), 10)
    np.testing.assert_array_equal(target, expected)
    train, test = datasets.lfw_pair_people("train"), datasets.lfw_pair_people("test")
    assert (len(train), len(test)) == (2132, 963) and train.isdisjoint(test)


@real_data_only
def test_real_lfw_people_listing(real: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All 13,233 images of 5,749 people, labelled as scikit-learn does (decoding skipped)."""
    monkeypatch.setattr(
        datasets, "_load_faces", lambda paths, shape: np.zeros((len(paths), 1), np.float32)
    )
    people = datasets.load_lfw_people(download=False, verify=True, cache=False)
    assert people.images.shape[0] == 13233 and len(people.target_names) == 5749
    names = (real / "lfw_home/lfw-names.txt").read_text().split()
    counts = dict(zip(names[::2], map(int, names[1::2]), strict=True))
    assert people.target_names.tolist() == sorted(n.replace("_", " ") for n in counts)
    got = np.bincount(people.target, minlength=5749)
    assert got.tolist() == [counts[n.replace(" ", "_")] for n in people.target_names]
    many = datasets.load_lfw_people(min_faces_per_person=2, download=False, cache=False)
    assert (many.images.shape[0], len(many.target_names)) == (9164, 1680)


@real_data_only
def test_real_lfw_pairs_test_and_cache(real: Path, real_cache: Path) -> None:
    start = time.perf_counter()
    test = datasets.load_lfw_pairs("test", download=False)
    first = time.perf_counter() - start
    assert test.pairs.shape == (1000, 2, 62, 47) and test.pairs.dtype == np.float32
    assert test.pairs.min() >= 0.0 and test.pairs.max() <= 1.0
    assert int(test.target.sum()) == 500 and test.target[:500].all()
    assert test.names[0].tolist() == ["Abdullah Gul", "Abdullah Gul"]
    start = time.perf_counter()
    again = datasets.load_lfw_pairs("test", download=False)
    assert time.perf_counter() - start < first / 3  # read from the cache
    np.testing.assert_array_equal(again.pairs, test.pairs)
    assert len(list((real_cache / "lfw").glob("pairs-*.npz"))) == 1
    # pixels equal scikit-learn's decoder on real JPEGs (a few pairs; no joblib cache)
    specs, _, _ = datasets._read_pairs(real / "lfw_home/pairsDevTest.txt")
    folder = real / "lfw_home/lfw_funneled"
    paths = []
    for a, i, b, j in specs[495:505]:
        paths += [folder / a / f"{a}_{i:04d}.jpg", folder / b / f"{b}_{j:04d}.jpg"]
    sk = _load_imgs([str(p) for p in paths], (slice(70, 195), slice(78, 172)), False, 0.5)
    np.testing.assert_array_equal(test.pairs[495:505].reshape(-1, 62, 47), sk)


@real_data_only
def test_real_movielens(real: Path) -> None:
    ml = datasets.load_movielens_100k(download=False, verify=True)
    assert len(ml.ratings) == 100000
    assert ml.ratings["user_id"].nunique() == 943 and ml.ratings["item_id"].nunique() == 1682
    assert (len(ml.users), len(ml.movies), len(ml.genres)) == (943, 1682, 19)
    counts = ml.ratings["rating"].value_counts().sort_index().tolist()
    assert counts == [6110, 11370, 27145, 34174, 21201]
    assert ml.movies["release_date"].isna().sum() == 1
    assert not ml.movies["title"].str.contains("\ufffd").any()


@real_data_only
def test_real_sts(real: Path) -> None:
    sts = datasets.load_sts_benchmark(download=False, verify=True)
    assert sts["split"].value_counts().to_dict() == {"train": 5749, "dev": 1500, "test": 1379}
    train = datasets.load_sts_benchmark("train", download=False)
    assert train["genre"].value_counts().to_dict() == {
        "main-news": 3299, "main-captions": 2000, "main-forum": 450,
    }  # fmt: skip
    assert train["score"].between(0, 5).all() and (train["sentence1"] != "").all()


@real_data_only
def test_real_sick(real: Path) -> None:
    sick = datasets.load_sick(download=False, verify=True)
    assert sick.shape == (9840, 12)
    assert sick["SemEval_set"].value_counts().to_dict() == {
        "TEST": 4906, "TRAIN": 4439, "TRIAL": 495,
    }  # fmt: skip
    assert sick["entailment_label"].value_counts().to_dict() == {
        "NEUTRAL": 5595, "ENTAILMENT": 2821, "CONTRADICTION": 1424,
    }  # fmt: skip
    assert len(datasets.load_sick("train", download=False)) == 4439


@real_data_only
def test_real_stackoverflow_and_ag_news(real: Path) -> None:
    so = datasets.load_stackoverflow_titles(download=False, verify=True)
    assert len(so.titles) == 20000
    assert np.bincount(so.target).tolist() == [1000] * 20
    assert so.target_names[so.target[0]] == "linq"  # "... from a LINQ query resultset ?"
    news = datasets.load_ag_news_test(download=False, verify=True)
    assert news.shape == (7600, 3)
    assert news["label"].value_counts().sort_index().tolist() == [1900] * 4
