"""Loaders for the data sets used by the dmlkeras tutorials.

Every loader reads local copies first and downloads what is missing.

Where data is looked for, in order (see :func:`data_home`):

1. the ``data_dir`` argument of the loader;
2. the folder named by the environment variable ``DMLKERAS_DATA_DIR``;
3. the ``data/`` folder of the dmlkeras repository, when the package runs
   from a source checkout (never from an installed wheel);
4. ``~/.dmlkeras/datasets``.

Inside each folder the layout is the same (the layout of scikit-learn's
``data_home`` for LFW)::

    mnist.npz
    lfw_home/lfw_funneled/<Person_Name>/<Person_Name>_NNNN.jpg
    lfw_home/pairsDevTrain.txt, pairsDevTest.txt, pairs.txt, peopleDevTrain.txt, peopleDevTest.txt
    ml-100k/u.data, u.item, u.user, u.genre
    text/stsbenchmark/sts-train.csv, sts-dev.csv, sts-test.csv
    text/sick/SICK.txt
    text/stackoverflow/title_StackOverflow.txt, label_StackOverflow.txt
    text/ag_news/test.csv

A missing file is downloaded (``download=True``) from its canonical source into
the first writable folder of that list. Downloads are streamed into a temporary
file next to their destination, checked against known SHA-256 values and only
then renamed into place, so an interrupted or corrupted download never leaves a
file that a later call would trust. Data folders are never written to
otherwise: they may be read-only. Decoded LFW arrays are cached in
:func:`cache_dir` (``$DMLKERAS_CACHE_DIR``, else ``~/.cache/dmlkeras``).

The package has one module per family of loaders (:mod:`~dmlkeras.datasets.images`,
:mod:`~dmlkeras.datasets.lfw`, :mod:`~dmlkeras.datasets.movielens`,
:mod:`~dmlkeras.datasets.text`) on one storage engine,
:mod:`dmlkeras.datasets._storage` (catalogue of files and downloads, search
order, checks, atomic downloads and caches). Every public name is
re-exported here.
"""


from dmlkeras.datasets._storage import DatasetIntegrityError, DatasetNotFoundError, cache_dir, data_home
from dmlkeras.datasets.images import load_digits, load_mnist
from dmlkeras.datasets.lfw import lfw_pair_people, lfw_people_subset, load_lfw_pairs, load_lfw_people
from dmlkeras.datasets.movielens import load_movielens_100k
from dmlkeras.datasets.text import (
    AG_NEWS_CLASSES,
    load_ag_news_test,
    load_sick,
    load_stackoverflow_titles,
    load_sts_benchmark,
)

__all__ = [
    "AG_NEWS_CLASSES",
    "DatasetIntegrityError",
    "DatasetNotFoundError",
    "cache_dir",
    "data_home",
    "lfw_pair_people",
    "lfw_people_subset",
    "load_ag_news_test",
    "load_digits",
    "load_lfw_pairs",
    "load_lfw_people",
    "load_mnist",
    "load_movielens_100k",
    "load_sick",
    "load_stackoverflow_titles",
    "load_sts_benchmark",
]
