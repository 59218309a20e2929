"""Real interaction data: which loader reads a dataset, and one place to import them from.

:func:`load_dataset` tells a path's format (:func:`detect_format`) and hands it to its loader,
each in a module of its own beside this one:

* ``ml-100k``: MovieLens-100K read *in place* from the RecBole package, and the 100K release as
  GroupLens ships it (movielens_100k.py);
* MovieLens CSV releases (``ratings.csv`` + ``movies.csv``: latest-small, latest, 20M, 25M, 32M;
  movielens_csv.py);
* MovieLens ``.dat`` releases (``ratings.dat`` + ``movies.dat`` [+ ``users.dat``]: 1M, 10M;
  movielens_dat.py);
* any RecBole atomic dataset (``<name>.inter`` with typed headers, optional ``<name>.item``;
  recbole_atomic.py);
* a generic interactions CSV or Parquet file with configurable column names (event_table.py).

Every loader returns an :class:`InteractionData` (interactions.py); the file checks and the one
rule for numbers they share are file_checks.py and parsing.py. The names other code imports
from this module are re-exported here (``__all__``).
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import replace
from pathlib import Path

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.archives import RATINGS_FILES, is_zip, unpacked_release
from recarena.simulator.data.event_table import Columns, load_interactions
from recarena.simulator.data.file_checks import check_link, check_narrow_text, renamed_ratings
from recarena.simulator.data.interactions import (
    FORMATS,
    MOVIELENS_LICENCE,
    MOVIELENS_PAGE,
    NO_GENRES,
    Format,
    InteractionData,
    dataset_notes,
    one_rating_line,
    untitled_line,
)
from recarena.simulator.data.movielens_100k import (
    ML100K_GENRES,
    load_ml100k,
    load_movielens_100k,
    recbole_ml100k_dir,
)
from recarena.simulator.data.movielens_csv import load_movielens
from recarena.simulator.data.movielens_dat import DAT_SEPARATOR, load_movielens_dat, persona_line
from recarena.simulator.data.parsing import Lines
from recarena.simulator.data.recbole_atomic import load_recbole

__all__ = [  # what this module offered before the loaders moved out; other code imports it
    "DAT_SEPARATOR",
    "FORMATS",
    "ML100K_GENRES",
    "MOVIELENS_LICENCE",
    "MOVIELENS_PAGE",
    "NO_GENRES",
    "Columns",
    "Format",
    "InteractionData",
    "Lines",
    "check_link",
    "check_narrow_text",
    "dataset_notes",
    "detect_format",
    "load_dataset",
    "load_interactions",
    "load_ml100k",
    "load_movielens",
    "load_movielens_100k",
    "load_movielens_dat",
    "load_recbole",
    "one_rating_line",
    "persona_line",
    "recbole_ml100k_dir",
    "release_folder",
    "releases_inside",
    "untitled_line",
]


_RELEASE_FILES = {
    "movies.csv": "movie list",
    "movies.dat": "movie list",
    "u.item": "movie list",
    "users.dat": "user list",
    "u.user": "user list",
    "tags.csv": "tags",
    "tags.dat": "tags",
    "links.csv": "links to IMDb and TMDB",
    "genome-scores.csv": "tag genome",
    "genome-tags.csv": "tag genome",
    "u.genre": "genre list",
}
"""Files of a MovieLens release that are not its ratings, by name, and what they hold."""

_MOVIELENS_HEADER = ("userid", "movieid", "rating", "timestamp")


def _movielens_header(path: Path) -> bool:
    """Whether a .csv file's first line is a MovieLens ratings header (userId, movieId, rating,
    timestamp, in any letters, with spaces, gzip-compressed or not): such a file given alone
    (no movies.csv beside it) was read as a generic file, 'has no user column user'."""
    try:
        with path.open("rb") as stream:
            head = stream.read(4096)
        if head.startswith(b"\x1f\x8b"):
            with gzip.open(path, "rb") as packed:
                head = packed.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    first = head.removeprefix(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("latin-1")
    names = {name.strip().strip('"').lower() for name in first.split(",")}
    return set(_MOVIELENS_HEADER) <= names


def _not_the_ratings(path: Path) -> None:
    """A release's other file (movies.csv, users.dat, ...) given as the dataset is named as
    what it is (it was read as ratings: 'expected 4 fields')."""
    what = _RELEASE_FILES.get(path.name)
    if what is not None and path.is_file():
        raise RecarenaError(
            f"{path} is a MovieLens release's {what}, not its ratings; give the release's "
            f"folder ({path.parent}) or its ratings file"
        )


_FORMAT_FILE = {
    "movielens": ("a ratings.csv", lambda path: path.suffix == ".csv"),
    "movielens-dat": ("a ratings.dat", lambda path: path.suffix == ".dat"),
    "movielens-100k": ("a u.data", lambda path: path.name == "u.data"),
    "recbole": ("a <name>.inter", lambda path: path.suffix == ".inter"),
}
"""The file each release format reads when it is given a file rather than a folder."""


def _check_file_fits(path: Path, fmt: Format) -> None:
    """A file given with a format that reads another kind of file, or a folder, is named with
    the format it reads as. Was: its loader took the file for a folder ('not found:
    ratings.csv/ratings.dat; download MovieLens', of a release at hand), or read a movie list
    as ratings. A generic file (format csv) may have any name."""
    if fmt not in _FORMAT_FILE:
        return
    if fmt != "recbole":
        _not_the_ratings(path)
    wanted, fits = _FORMAT_FILE[fmt]
    if fits(path):
        return
    try:
        other: str | None = detect_format(path)
    except RecarenaError:
        other = None
    hint = f"; it reads as format {other!r}: leave --format out, or give that one" if other else ""
    raise RecarenaError(
        f"{path}: format {fmt!r} reads {wanted} file or a release's folder, not this file{hint}"
    )


def _check_readable(path: Path) -> None:
    """A dataset file the user may not read is named as such before its format is guessed from
    its first bytes or name. Was: an unreadable release .zip 'cannot tell the format ... (no
    ratings.csv ...); pass --format', which no format fixes."""
    if not path.is_file():
        return
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise RecarenaError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def detect_format(path: Path) -> Format:
    """Guess a path's format; ambiguous paths need ``--format``."""
    _check_readable(path)
    _not_the_ratings(path)
    if path.is_dir():
        for name in ("ratings.csv", "movies.csv", "ratings.dat", "movies.dat", "u.data"):
            check_link(path / name, "dataset file")
    if path.suffix == ".inter" or (path.is_dir() and (path / f"{path.name}.inter").exists()):
        return "recbole"
    if path.is_dir() and (path / "ratings.csv").exists():
        return "movielens"
    if path.is_dir() and any((path / f).exists() for f in ("ratings.dat", "movies.dat")):
        return "movielens-dat"
    if path.is_dir() and (path / "movies.csv").exists():
        return "movielens"
    if path.name == "u.data" or (path.is_dir() and (path / "u.data").exists()):
        return "movielens-100k"
    if path.suffix == ".dat":
        return "movielens-dat"
    if path.name == "ratings.csv" and (path.parent / "movies.csv").exists():
        return "movielens"
    if path.suffix == ".csv" and path.is_file() and _movielens_header(path):
        return "movielens"
    if path.suffix in (".csv", ".parquet"):
        return "csv"
    _where_the_release_is(path)
    inside = (
        f"no ratings.csv, ratings.dat, u.data or <name>.inter in it{renamed_ratings(path)}"
        if path.is_dir()  # a file was said to hold none of them, as if it were a folder
        else "a file, not named *.csv, *.parquet, *.dat, *.inter, u.data or *.zip"
    )
    raise RecarenaError(
        f"cannot tell the format of {path} ({inside}); pass "
        "--format movielens|movielens-dat|movielens-100k|recbole|csv "
        f"(MovieLens releases: {MOVIELENS_PAGE})"
    )


def releases_inside(path: Path) -> list[Path]:
    """The child folders of ``path`` that hold a release's ratings file, when ``path`` holds
    none itself (the folder a release's zip was unpacked into: ``data/ml-1m/ml-1m``)."""
    if not path.is_dir() or any((path / name).exists() for name in RATINGS_FILES):
        return []
    try:
        children = sorted(path.iterdir())
    except OSError:
        return []
    return [
        child
        for child in children
        if child.is_dir() and any((child / name).exists() for name in RATINGS_FILES)
    ]


def release_folder(path: Path) -> Path:
    """``path``, or the one release folder inside it: a release unpacked one level down is read
    as it is (it was refused with the path to give, which is the only one it can mean)."""
    inside = releases_inside(path)
    return inside[0] if len(inside) == 1 else path


def _where_the_release_is(path: Path) -> None:
    """A folder holding several releases' folders and none itself: which ones (it was 'cannot
    tell the format ... pass --format', which no format fixes). One release inside is read
    (:func:`release_folder`), and so is a release's zip (simulator/data/archives.py)."""
    inside = releases_inside(path)
    if len(inside) > 1:
        shown = ", ".join(child.name for child in inside[:4])
        raise RecarenaError(
            f"{path} holds no ratings.csv, ratings.dat or u.data, but several releases' "
            f"folders do ({shown}): give one of them"
        )


def _check_format_fits(directory: Path, fmt: Format) -> None:
    """A folder given with a format whose file it lacks, while it reads as another format, is
    named with the format it reads as (was: '... ratings.dat not found; download MovieLens'
    for ML-25M's folder given --format movielens-dat, a release the user has)."""
    needed = {"movielens-dat": "ratings.dat", "movielens-100k": "u.data"}.get(fmt)
    if fmt == "recbole":
        needed = f"{directory.name}.inter"
    if needed is None or (directory / needed).exists():
        return
    try:
        other = detect_format(directory)
    except RecarenaError:
        return
    if other != fmt:
        raise RecarenaError(
            f"{directory} holds no {needed} for format {fmt!r}, but reads as format {other!r}: "
            "leave --format out, or give that one"
        )


def load_dataset(
    dataset: str | Path, fmt: Format = "auto", columns: Columns | None = None
) -> InteractionData:
    """``ml-100k`` (from the RecBole package) or a path in one of the supported formats."""
    if str(dataset) == "ml-100k" and fmt in ("auto", "movielens", "recbole"):
        return load_ml100k()  # RecBole's copy is a RecBole atomic dataset
    if str(dataset) == "ml-100k" and not Path(dataset).exists():  # was: 'not found: ml-100k;
        # download MovieLens', for the copy that is installed
        raise RecarenaError(
            f"dataset 'ml-100k' names the copy inside RecBole, which --format {fmt} does not "
            "read; leave --format out (or give a folder of the release)"
        )
    if not str(dataset).strip():  # Path("") is the working directory
        raise RecarenaError(
            "dataset: an empty path; give a dataset folder or file, or 'ml-100k' for the copy "
            "inside RecBole"
        )
    path = Path(dataset)
    check_link(path, "dataset")
    _check_readable(path)
    if is_zip(path) and fmt == "csv":  # was: 'ml.zip is a folder', of its unpacked release
        raise RecarenaError(
            f"{path} is a zip archive; the csv format reads one interactions file (.csv or "
            ".parquet): unpack it and give the file, or leave --format out for a MovieLens zip"
        )
    if is_zip(path):  # the archive GroupLens ships: its release, unpacked for the loader
        with unpacked_release(path) as release:
            data = load_dataset(release.folder, fmt, columns)
            return replace(data, source=release.named(data.source))
    if fmt in ("auto", "movielens", "movielens-dat", "movielens-100k"):
        path = release_folder(path)
    if fmt == "auto":
        if not path.exists():
            raise RecarenaError(
                f"dataset not found: {path} (use 'ml-100k' for the copy inside RecBole, or "
                f"download MovieLens from {MOVIELENS_PAGE})"
            )
        fmt = detect_format(path)
    elif path.is_dir():
        _check_format_fits(path, fmt)
    elif path.is_file():
        _check_file_fits(path, fmt)
    if fmt == "movielens":
        return load_movielens(path)
    if fmt == "movielens-dat":
        return load_movielens_dat(path)
    if fmt == "movielens-100k":
        return load_movielens_100k(path)
    if fmt == "recbole":
        return load_recbole(path)
    return load_interactions(path, columns)
