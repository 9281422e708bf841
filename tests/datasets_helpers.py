"""Fixtures shared by the tests of dmlkeras.datasets: tiny files in the real formats, a local HTTP server.

Nothing here reaches the network. ``isolated`` is autouse in every module that
imports it: no DMLKERAS_DATA_DIR, a fresh HOME and cache, no repository data/,
and every remote pointed at a closed port. ``real`` points the loaders at the
real data (``DMLKERAS_DATA_DIR``) as CI does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dmlkeras.datasets import _storage

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
    monkeypatch.setattr(_storage, "PROJECT_DATA_DIR", tmp_path / "no-project-data")
    for key, remote in list(_storage.REMOTES.items()):
        monkeypatch.setitem(
            _storage.REMOTES, key, dataclasses.replace(remote, url=f"{_UNREACHABLE}/{key}")
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
        monkeypatch.setitem(_storage.FILES, rel, ((len(data), _sha(data)),))


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
    remote = dataclasses.replace(_storage.REMOTES[key], url=f"{base}/{key}", **changes)
    monkeypatch.setitem(_storage.REMOTES, key, remote)


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


@pytest.fixture(scope="session")
def real_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("real-cache")


@pytest.fixture
def real(monkeypatch: pytest.MonkeyPatch, real_cache: Path) -> Path:
    """Point the loaders at the real data through the environment, as CI does."""
    monkeypatch.setenv("DMLKERAS_DATA_DIR", str(REAL_DATA))
    monkeypatch.setenv("DMLKERAS_CACHE_DIR", str(real_cache))
    return Path(str(REAL_DATA))
