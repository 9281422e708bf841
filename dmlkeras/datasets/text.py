"""Text data sets: STS Benchmark and SICK (sentence similarity), StackOverflow titles and AG News (topics)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from dmlkeras.datasets._storage import (
    DatasetIntegrityError,
    PathLike,
    Remote,
    check_parsed_range,
    fetch,
    register,
)

__all__ = [
    "AG_NEWS_CLASSES",
    "load_ag_news_test",
    "load_sick",
    "load_stackoverflow_titles",
    "load_sts_benchmark",
]

_STACKOVERFLOW = "https://raw.githubusercontent.com/jacoxu/StackOverflow/master/rawText/"

register(
    files={
        "text/stsbenchmark/sts-train.csv": (
            (901177, "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82"),
        ),
        "text/stsbenchmark/sts-dev.csv": (
            (255680, "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234"),
        ),
        "text/stsbenchmark/sts-test.csv": (
            (282419, "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a"),
        ),
        "text/sick/SICK.txt": (
            (2432648, "1539c2d059809b5bd40694e26d8121cc85b6b496f91c7b40f2fc83bbd7dcd957"),
        ),
        "text/stackoverflow/title_StackOverflow.txt": (
            (1030059, "56fdb3932c6a2e35c1943b8a3d3c1cf51901fc1139e51b1587091898ffb22e86"),
        ),
        "text/stackoverflow/label_StackOverflow.txt": (
            (51000, "ac6b52afbf696611680f8ea944be682bcdf1979b62fde2b5fa2a9dcc6ab8d7d3"),
        ),
        "text/ag_news/test.csv": (
            (1857427, "521465c2428ed7f02f8d6db6ffdd4b5447c1c701962353eb2c40d548c3c85699"),
        ),
    },
    remotes={
        "stsbenchmark": Remote(
            "http://ixa2.si.ehu.eus/stswiki/images/4/48/Stsbenchmark.tar.gz",
            (
                "text/stsbenchmark/sts-train.csv",
                "text/stsbenchmark/sts-dev.csv",
                "text/stsbenchmark/sts-test.csv",
            ),
            archive="tar",
        ),
        "sick": Remote(
            "https://zenodo.org/record/2787612/files/SICK.zip",
            ("text/sick/SICK.txt",),
            archive="zip",
        ),
        "stackoverflow-titles": Remote(
            _STACKOVERFLOW + "title_StackOverflow.txt",
            ("text/stackoverflow/title_StackOverflow.txt",),
        ),
        "stackoverflow-labels": Remote(
            _STACKOVERFLOW + "label_StackOverflow.txt",
            ("text/stackoverflow/label_StackOverflow.txt",),
        ),
        "ag_news-test": Remote(
            "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/"
            "data/ag_news_csv/test.csv",
            ("text/ag_news/test.csv",),
        ),
    },
)

#: Class names of AG News, indexed by the 0-based ``label`` of :func:`load_ag_news_test`.
AG_NEWS_CLASSES: tuple[str, ...] = ("World", "Sports", "Business", "Sci/Tech")

_STACKOVERFLOW_TAGS: tuple[str, ...] = (
    "wordpress", "oracle", "svn", "apache", "excel", "matlab", "visual-studio",
    "cocoa", "osx", "bash", "spring", "hibernate", "scala", "sharepoint", "ajax",
    "qt", "drupal", "linq", "haskell", "magento",
)  # fmt: skip


def _check_split(split: str | None, choices: Sequence[str]) -> None:
    if split is not None and split not in choices:
        raise ValueError(f"split must be None or one of {list(choices)}, got {split!r}.")


def load_sts_benchmark(
    split: str | None = None,
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load the STS Benchmark sentence pairs with similarity scores.

    Parameters
    ----------
    split : {"train", "dev", "test"} or None, default=None
        One split (5,749 / 1,500 / 1,379 pairs), or all of them.
    data_dir : str or path-like, optional
        Folder searched first for ``text/stsbenchmark/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``Stsbenchmark.tar.gz`` when files are missing.
    verify : bool, default=False
        Check the SHA-256 of the local files.

    Returns
    -------
    pandas.DataFrame
        Columns [genre, file, year, id, score, sentence1, sentence2]; score
        is a float in [0, 5], the other columns are strings, as in the file.
        With ``split=None`` a last column ``split`` names each row's split.

    Notes
    -----
    The files are read with quoting off (sentences hold unbalanced ``"``).
    The optional licence-note fields some rows have are dropped.

    Examples
    --------
    >>> from dmlkeras.datasets import load_sts_benchmark
    >>> sts = load_sts_benchmark("train")  # doctest: +SKIP
    >>> sts.shape  # doctest: +SKIP
    (5749, 7)
    """
    choices = ["train", "dev", "test"]
    _check_split(split, choices)
    wanted = choices if split is None else [split]
    rels = {s: f"text/stsbenchmark/sts-{s}.csv" for s in wanted}
    paths = fetch(list(rels.values()), data_dir, download, verify)
    columns = ["genre", "file", "year", "id", "score", "sentence1", "sentence2"]
    frames = []
    for s, rel in rels.items():
        frame = pd.read_csv(
            paths[rel],
            sep="\t",
            header=None,
            names=[*columns, "note1", "note2"],
            quoting=csv.QUOTE_NONE,
            encoding="utf-8",
            keep_default_na=False,
            dtype=str,
        )[columns].astype({"score": float})
        if split is None:
            frame["split"] = s
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def load_sick(
    split: str | None = None,
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load SICK (Sentences Involving Compositional Knowledge), full release.

    Parameters
    ----------
    split : {"train", "trial", "test"} or None, default=None
        Keep the rows of one SemEval-2014 split (4,439 / 495 / 4,906), or all 9,840.
    data_dir : str or path-like, optional
        Folder searched first for ``text/sick/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``SICK.zip`` from Zenodo when the file is missing.
    verify : bool, default=False
        Check the SHA-256 of the local file.

    Returns
    -------
    pandas.DataFrame
        The 12 columns of ``SICK.txt``: pair_ID, sentence_A, sentence_B,
        entailment_label, relatedness_score (1 to 5), entailment_AB,
        entailment_BA, sentence_A_original, sentence_B_original,
        sentence_A_dataset, sentence_B_dataset, SemEval_set.

    Notes
    -----
    Licence CC BY-NC-SA 3.0 (non-commercial).

    Examples
    --------
    >>> from dmlkeras.datasets import load_sick
    >>> load_sick("trial").shape  # doctest: +SKIP
    (495, 12)
    """
    _check_split(split, ["train", "trial", "test"])
    rel = "text/sick/SICK.txt"
    frame = pd.read_csv(
        fetch([rel], data_dir, download, verify)[rel],
        sep="\t",
        quoting=csv.QUOTE_NONE,
        keep_default_na=False,
    )
    if split is not None:
        frame = frame[frame["SemEval_set"] == split.upper()].reset_index(drop=True)
    return frame


def _read_lines(path: Path) -> list[str]:
    """Lines of a UTF-8 file, split on newlines only (not on other Unicode breaks)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def load_stackoverflow_titles(
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> Bunch:
    """Load 20,000 StackOverflow question titles labelled with one of 20 tags.

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``text/stackoverflow/`` (see :func:`data_home`).
    download : bool, default=True
        Download the files from GitHub ``jacoxu/StackOverflow`` when missing.
    verify : bool, default=False
        Check the SHA-256 of the local files.

    Returns
    -------
    sklearn.utils.Bunch
        ``titles``: list of 20,000 str;
        ``target``: int64 array of **0-based** labels 0..19 (the file's 1..20 minus 1);
        ``target_names``: the 20 tags, ``target_names[target[i]]`` is title i's tag.

    Examples
    --------
    >>> from dmlkeras.datasets import load_stackoverflow_titles
    >>> so = load_stackoverflow_titles()  # doctest: +SKIP
    >>> len(so.titles), so.target_names[0]  # doctest: +SKIP
    (20000, 'wordpress')
    """
    title_rel = "text/stackoverflow/title_StackOverflow.txt"
    label_rel = "text/stackoverflow/label_StackOverflow.txt"
    paths = fetch([title_rel, label_rel], data_dir, download, verify)
    titles = _read_lines(paths[title_rel])
    labels = _read_lines(paths[label_rel])
    for k, value in enumerate(labels):
        if not value.strip().isdigit():
            raise ValueError(f"{paths[label_rel]}: line {k + 1}: expected an integer label 1..20; got {value!r}.")
    target = np.array([int(v) for v in labels], dtype=np.int64)
    check_parsed_range(target, 1, len(_STACKOVERFLOW_TAGS), paths[label_rel], "label")
    target -= 1
    if len(titles) != len(target):
        raise DatasetIntegrityError(
            f"{len(titles)} titles but {len(target)} labels in {paths[title_rel].parent}."
        )
    return Bunch(titles=titles, target=target, target_names=list(_STACKOVERFLOW_TAGS))


def load_ag_news_test(
    data_dir: PathLike | None = None,
    download: bool = True,
    verify: bool = False,
) -> pd.DataFrame:
    """Load the AG News test split (7,600 news, 1,900 per class).

    Parameters
    ----------
    data_dir : str or path-like, optional
        Folder searched first for ``text/ag_news/`` (see :func:`data_home`).
    download : bool, default=True
        Download ``test.csv`` (the copy torchtext uses) when missing.
    verify : bool, default=False
        Check the SHA-256 of the local file.

    Returns
    -------
    pandas.DataFrame
        Columns [label, title, description]; label is **0-based** (0..3),
        ``AG_NEWS_CLASSES[label]`` is its class name. Text is kept as is
        (HTML-entity remnants such as `` #39;`` included).

    Examples
    --------
    >>> from dmlkeras.datasets import AG_NEWS_CLASSES, load_ag_news_test
    >>> news = load_ag_news_test()  # doctest: +SKIP
    >>> news.shape, AG_NEWS_CLASSES[news.label[0]]  # doctest: +SKIP
    ((7600, 3), 'Business')
    """
    rel = "text/ag_news/test.csv"
    path = fetch([rel], data_dir, download, verify)[rel]
    frame = pd.read_csv(
        path,
        header=None,
        names=["label", "title", "description"],
        keep_default_na=False,
        dtype={"label": "int64", "title": str, "description": str},
    )
    check_parsed_range(frame["label"].to_numpy(), 1, len(AG_NEWS_CLASSES), path, "label")
    frame["label"] -= 1
    return frame
