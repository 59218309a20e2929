"""Hostile real-data inputs to ``calibrate``, ``fidelity`` and ``population.dataset``: each case
was a traceback, a wrong line number or a silent misreading before its fix."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from recarena.agents.users.calibration import CalibrationConfig, calibrate, creators_from_genres
from recarena.analysis.fidelity.common import tv_estimate, user_bootstrap
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.datasets import load_dataset
from tests.cli_in_process import assert_refused, cli


def _validate_calibrated_from(tmp_path: Path, dataset: Path, population: Path) -> tuple[int, str]:
    """`recarena validate` on a small scenario whose users are calibrated from ``dataset``
    into ``population``: what a run of it would read first."""
    doc = {
        "name": "calibrated",
        "horizon": {"days": 1, "tick_seconds": 600},
        "population": {"from": "calibrated", "path": str(population), "dataset": str(dataset)},
        "surface": {"k": 2},
        "arms": [
            {"name": "random", "recommender": {"type": "random"}},
            {"name": "popularity", "recommender": {"type": "popularity"}},
        ],
        "output": {"dir": str(tmp_path / "runs")},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return cli("validate", str(tmp_path / "s.yaml"))


def test_a_measure_over_no_users_is_not_a_figure() -> None:
    """`fidelity --users 2`: no sampled user clicked in the simulation, so check 2's
    'simulation' row had no user on either side; the bootstrap died in numpy's reshape
    ('cannot reshape array of size 0', an internal error, exit 1). A measure over no users is
    n/a (NaN, no interval): not 0, which would read as 'the same distribution'."""
    empty = np.zeros((0, 5))
    estimate = tv_estimate(empty, empty, np.random.default_rng(0), n_boot=50)
    assert math.isnan(estimate.value) and estimate.low is None and estimate.high is None
    rng = np.random.default_rng(0)
    estimate = user_bootstrap(np.zeros((0, 2, 3)), lambda s: s.sum(axis=(1, 2)), rng)
    assert math.isnan(estimate.value)
    one = user_bootstrap(np.ones((1, 2)), lambda s: s.sum(axis=1), rng)
    assert one.value == 2.0 and one.low is None  # one user: a figure without an interval


TWO_LINE_TITLES = 'movieId,title,genres\n1,"Toy\nStory (1995)",Comedy\n2,"A\r\nB (1995)",Drama\n'
RATING_BREAK = 'userId,movieId,rating,timestamp\n1,"1\n",4,100\n'
GENERIC_BREAK = 'user,item,timestamp,title,click\n1,10,100,"A\nB",1\n'
AFTER_A_BREAK = {  # file, its text, what the error line says
    "movie-id": ("movies.csv", TWO_LINE_TITLES + "xx,Heat,Drama\n", "line 6: movieId 'xx'"),
    "movie-twice": ("movies.csv", TWO_LINE_TITLES + "1,Heat,Drama\n", "line 6: movie 1 again"),
    "movie-fraction": ("movies.csv", TWO_LINE_TITLES + "3.5,Heat,Drama\n", "line 6: movieId 3.5"),
    "blank-line": ("movies.csv", TWO_LINE_TITLES + "\n3,Heat,Drama\n", "line 6: a blank line"),
    "rating": ("ratings.csv", RATING_BREAK + "1,2,9,100\n", "line 4: rating 9 is outside"),
    "rated-twice": ("ratings.csv", RATING_BREAK + "1,1,4,200\n", "line 4: user 1 rated movie 1"),
    "generic-number": ("i.csv", GENERIC_BREAK + "2,10,x,C,1\n", "line 4: timestamp 'x'"),
    "generic-empty": ("i.csv", GENERIC_BREAK + ",10,5,C,1\n", "line 4: user is empty"),
    "generic-click": ("i.csv", GENERIC_BREAK + "1,11,2,C,maybe\n", "line 4: click 'maybe'"),
}


@pytest.mark.parametrize("case", sorted(AFTER_A_BREAK))
def test_lines_after_a_quoted_line_break_are_named_by_their_own_line(tmp_path, case):
    """A quoted field holding a line break is one row over two lines (a movie title pasted with
    its break, which MovieLens CSVs may hold): every row after it was named by its row number,
    so an error pointed a line or more above the bad one (line 4 for a bad id on line 6)."""
    name, text, named = AFTER_A_BREAK[case]
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4,100\n2,2,3,200\n")
    (folder / name).write_bytes(text.encode())
    dataset = folder / name if name == "i.csv" else folder
    out = tmp_path / "pop.parquet"
    assert_refused(*cli("calibrate", str(dataset), "-o", str(out)), f"{name} {named}")
    assert not out.exists()


@pytest.mark.parametrize("release", ["csv", "dat"])
def test_empty_genre_names_and_titles_are_none(tmp_path, release):
    """'Comedy||Drama', a '|' at either end, ' Drama' and '(no genres listed)' name no genre,
    and a title that is only its year is no title, in every MovieLens movie list. Was (.csv):
    an empty genre kept, so the movie's creator (its first genre) was '' in the calibrated
    items; a ' Drama' apart from 'Drama'; and an empty title in prompts and reports."""
    folder = tmp_path / release
    folder.mkdir()
    rows = [(1, 1, 4, 100), (1, 2, 3, 200), (2, 1, 5, 300)]
    movies = [(1, "(1995)", "|Comedy||"), (2, "Heat (1995)", " Drama | (no genres listed)")]
    if release == "csv":
        lines = ["userId,movieId,rating,timestamp", *(",".join(map(str, r)) for r in rows)]
        (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
        (folder / "movies.csv").write_text(
            "movieId,title,genres\n" + "".join(f"{m},{t},{g}\n" for m, t, g in movies)
        )
    else:
        (folder / "ratings.dat").write_text("".join("::".join(map(str, r)) + "\n" for r in rows))
        (folder / "movies.dat").write_text("".join(f"{m}::{t}::{g}\n" for m, t, g in movies))
    items = load_dataset(folder).items.sort("item")
    assert items["genres"].to_list() == [["Comedy"], ["Drama"]]
    assert items["title"].to_list() == [None, "Heat"] and items["year"].to_list() == [1995] * 2
    assert creators_from_genres(items["genres"].to_list())[1] == ["Comedy", "Drama"]


@pytest.mark.parametrize("name", ["ratings.dat", "u.data"])
def test_a_binary_dat_file_is_named_before_it_is_read_whole(tmp_path, monkeypatch, name):
    """A ratings.dat (or u.data) that is binary or sparse, `truncate -s 30G ratings.dat`, was
    read whole before its first bytes were looked at: a 3 GB file of NULs took 48 s and 3 GB of
    memory to be named, and one larger than memory would not have been. Now its first bytes
    name it."""
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / name).write_bytes(b"\x00" * 10_000)

    def whole(self):
        raise AssertionError(f"{self} read whole")

    monkeypatch.setattr(Path, "read_bytes", whole)
    with pytest.raises(RecarenaError, match=f"{name} line 1: the file is UTF-16 or binary"):
        load_dataset(folder)


def _millisecond_log(tmp_path: Path, kind: str) -> Path:
    """A log of 30 users' viewing over a few months with its times in milliseconds."""
    rng = np.random.default_rng(0)
    rows = [
        (user, int(item), 1_500_000_000_000 + 86_400_000 * day + 60_000 * n)
        for user in range(1, 31)
        for day in range(6)
        for n, item in enumerate(rng.choice(40, size=3, replace=False))
    ]
    if kind == "parquet":
        path = tmp_path / "log.parquet"
        pl.DataFrame(rows, schema=["user", "item", "timestamp"], orient="row").write_parquet(path)
    elif kind == "csv":
        path = tmp_path / "log.csv"
        path.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    else:
        path = tmp_path / "log" / "log.inter"
        path.parent.mkdir()
        header = "user_id:token\titem_id:token\ttimestamp:float\n"
        path.write_text(header + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    return path


@pytest.mark.parametrize(
    ("kind", "where"), [("csv", "line 2"), ("parquet", "row 1"), ("recbole", "line 2")]
)
def test_millisecond_times_in_any_log_are_named(tmp_path, kind, where):
    """A generic or RecBole log's times are seconds since 1970 as a MovieLens release's are;
    one past the year 5000 is milliseconds. Was: calibrated without a word (the MovieLens
    loaders alone refused it), every visit rate 1000 times too low; and validate passed a
    scenario calibrating such a log."""
    path = _millisecond_log(tmp_path, kind)
    named = f"{path.name} {where}: timestamp 1500000000000 is after the year 5000"
    out = tmp_path / "pop.parquet"
    assert_refused(*cli("calibrate", str(path), "-o", str(out)), named)
    assert not out.exists()
    code, stderr = _validate_calibrated_from(tmp_path, path, out)
    assert_refused(code, stderr, named)
    assert f"population.dataset: {path}" in stderr


@pytest.mark.parametrize("arms", ["random,,mf", "random,popularity,", ",random,mf", "random, ,mf"])
def test_an_empty_name_in_fidelity_arms_is_refused(tmp_path, arms):
    """Was: an empty name between commas was dropped without a word, so 'random,,mf' (an arm
    left out) trained, simulated and reported the two arms named, exit 0."""
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(tmp_path / "none"), "-o", str(out), "--arms", arms
    )
    assert_refused(code, stderr, f"--arms: {arms!r} has an empty name")
    assert not out.exists()


FILE_AND_FORMAT = {  # the file given, --format, what the error line says
    "csv-as-dat": ("ratings.csv", "movielens-dat", "reads a ratings.dat file or a release's"),
    "dat-as-csv": ("ratings.dat", "movielens", "it reads as format 'movielens-dat': leave"),
    "dat-as-100k": ("ratings.dat", "movielens-100k", "format 'movielens-100k' reads a u.data"),
    "csv-as-recbole": ("ratings.csv", "recbole", "reads a <name>.inter file"),
    "movies-as-ratings": ("movies.dat", "movielens-dat", "is a MovieLens release's movie list"),
    "users-as-ratings": ("users.dat", "movielens-dat", "is a MovieLens release's user list"),
}


@pytest.mark.parametrize("case", sorted(FILE_AND_FORMAT))
def test_a_file_given_with_a_format_that_reads_another_is_named(tmp_path, case):
    """Was: the loader of a release format took any file for the release's folder ('MovieLens
    ratings file not found: .../ratings.csv/ratings.dat; download MovieLens from ...', of a
    release at hand), or read users.dat or movies.dat as ratings ('expected 4 fields')."""
    name, fmt, named = FILE_AND_FORMAT[case]
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,100\n")
    (folder / "ratings.dat").write_text("1::10::4::100\n")
    (folder / "movies.dat").write_text("10::Heat (1995)::Action\n")
    (folder / "users.dat").write_text("1::F::25::12::55455\n")
    out = tmp_path / "pop.parquet"
    code, stderr = cli("calibrate", str(folder / name), "--format", fmt, "-o", str(out))
    assert_refused(code, stderr, named)
    assert "not found" not in stderr and "download" not in stderr
    assert not out.exists()


def test_a_generic_log_may_have_any_name(tmp_path):
    """--format csv reads the user's own log, whatever its name (a log of tagging events in a
    tags.csv is not MovieLens's tags file)."""
    path = tmp_path / "tags.csv"
    path.write_text("user,item,timestamp\n1,10,100\n2,10,200\n")
    data = load_dataset(path, "csv")
    assert data.user.tolist() == [1, 2] and data.item.tolist() == [10, 10]


@pytest.mark.parametrize("fmt", ["movielens-100k", "movielens-dat", "csv"])
def test_ml100k_by_name_with_another_format_is_named(tmp_path, monkeypatch, fmt):
    """Was: 'MovieLens-100K directory not found: ml-100k; download MovieLens from ...' (or
    'interactions file not found'), sending the user to download the copy they have; and
    --format recbole, the copy's own format, said 'RecBole dataset directory not found'."""
    monkeypatch.chdir(tmp_path)
    assert load_dataset("ml-100k", "recbole").n_interactions == 100_000
    out = tmp_path / "pop.parquet"
    code, stderr = cli("calibrate", "ml-100k", "--format", fmt, "-o", str(out))
    assert_refused(code, stderr, f"'ml-100k' names the copy inside RecBole, which --format {fmt}")
    assert not out.exists()


def test_fidelity_json_is_standard_json() -> None:
    """A figure that is not a number (a rank correlation of tied arms, a measure over no users)
    was written as NaN, which JSON has not: JavaScript's JSON.parse and most other parsers
    refused fidelity.json. It is null now, as the table's 'n/a'."""
    from recarena.analysis.fidelity.report import fidelity_json

    def strict(name: str) -> None:
        raise ValueError(f"not JSON: {name}")

    result = {
        "tau": {"value": float("nan"), "low": None, "high": None},
        "rows": [np.float64("nan"), np.float32(0.5), np.inf, (1, -np.inf)],
        "counts": np.array([1.0, np.nan]),
        "n": np.int64(3),
    }
    text = fidelity_json(result)
    assert json.loads(text, parse_constant=strict) == {
        "tau": {"value": None, "low": None, "high": None},
        "rows": [None, 0.5, None, [1, None]],
        "counts": [1.0, None],
        "n": 3,
    }


@pytest.mark.parametrize("name", ["ml-1m.zip", "ratings.csv", "log.csv"])
def test_a_dataset_file_that_cannot_be_read_is_named(tmp_path, monkeypatch, name):
    """Was (a release .zip the user may not read): 'cannot tell the format of ml-1m.zip (no
    ratings.csv, ratings.dat ...); pass --format', which no format fixes; validate said the
    same of a population.dataset. (Tests run as root read any file: the refusal is made by
    patching open, as a mode 000 file does for anyone else.)"""
    path = tmp_path / name
    path.write_bytes(b"PK\x03\x04" if name.endswith(".zip") else b"user,item,timestamp\n1,2,3\n")
    real_open = Path.open

    def refused(self, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refused)
    out = tmp_path / "pop.parquet"
    assert_refused(*cli("calibrate", str(path), "-o", str(out)), f"{path}: cannot read it (Per")
    code, stderr = _validate_calibrated_from(tmp_path, path, out)
    assert_refused(code, stderr, f"population.dataset: {path}: cannot read it (Permission denied)")


def test_a_dataset_folder_that_cannot_be_searched_is_named_by_validate(tmp_path, monkeypatch):
    """A population.dataset folder the user may not search (mode 600, or 000): looking for its
    ratings file raised PermissionError, and validate died with an internal error, exit 1
    (calibrate named it). (Run as root, the refusal is made by patching the look-up.)"""
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,100\n")
    real_stat = Path.stat

    def refused(self, *args, **kwargs):
        if self.parent == folder:
            raise PermissionError(13, "Permission denied", str(self))
        return real_stat(self, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", refused)
    code, stderr = _validate_calibrated_from(tmp_path, folder, tmp_path / "pop.parquet")
    assert_refused(code, stderr, f"population.dataset: {folder}: Permission denied: {folder}/")


@pytest.mark.parametrize("movie", ["9007199254740993", "9007199254740992", "-9007199254740993"])
def test_an_id_of_2_to_the_53_or_more_is_refused(tmp_path, movie):
    """Ids are read as numbers first, and 2^53 + 1 reads as 2^53: the check refused ids above
    2^53 only, so movie 9007199254740993 was read as movie 9007199254740992, another id,
    without a word (the guide says ids must be below 2^53)."""
    folder = tmp_path / "release"
    folder.mkdir()
    rows = f"userId,movieId,rating,timestamp\n1,10,4,100\n1,{movie},3,200\n"
    (folder / "ratings.csv").write_text(rows)
    with pytest.raises(RecarenaError, match=r"ratings.csv line 3: movieId -?9\.0072e\+15 is too"):
        load_dataset(folder)
    (folder / "ratings.csv").write_text(rows.replace(movie, "9007199254740991"))
    assert load_dataset(folder).item.tolist() == [10, 9007199254740991]


BROKEN_LINK = {  # the ratings file and its text, the optional file made a link to nothing
    "users.dat": ("ratings.dat", "1::10::4::100\n"),
    "u.user": ("u.data", "1\t10\t4\t100\n"),
    "u.item": ("u.data", "1\t10\t4\t100\n"),
    "u.genre": ("u.data", "1\t10\t4\t100\n"),
    "movies.csv": ("ratings.csv", "userId,movieId,rating,timestamp\n1,10,4,100\n"),
    "release.item": (
        "release.inter",
        "user_id:token\titem_id:token\ttimestamp:float\n1\t10\t100\n",
    ),
}


@pytest.mark.parametrize("optional", sorted(BROKEN_LINK))
def test_an_optional_release_file_that_is_a_broken_link_is_named(tmp_path, optional):
    """A release's demographics, movie list or genre names behind a symbolic link to nothing
    (a copy made with links, whose targets moved) read as absent: the dataset calibrated
    without them, without a word. Only the ratings file's link was checked (movies.csv's too,
    when the format was guessed: not with --format movielens)."""
    folder = tmp_path / "release"
    folder.mkdir()
    ratings, text = BROKEN_LINK[optional]
    (folder / ratings).write_text(text)
    if optional == "u.genre":  # read for u.item's genre flags
        (folder / "u.item").write_text("10|Heat (1995)|01-Jan-1995||http://x|" + "0|" * 18 + "1\n")
    (folder / optional).symlink_to(tmp_path / "moved-away")
    fmt = "movielens" if optional == "movies.csv" else "auto"
    with pytest.raises(RecarenaError, match=f"{optional} is a symbolic link that leads to no file"):
        load_dataset(folder, fmt)  # type: ignore[arg-type]


def test_two_calibrations_of_one_dataset_are_the_same_files(tmp_path, monkeypatch):
    """The guide says a calibration's files are bit-identical across reruns; they were not:
    the fit's wall-clock seconds were written into the users and items files' metadata and the
    .json. (The clock is made to jump here, as a busy machine's does.)"""
    rng = np.random.default_rng(0)
    rows = [
        f"{user},{item},{rng.integers(1, 6)},{100_000 * (n // 3 + 1) + n}"
        for user in range(1, 21)
        for n, item in enumerate(rng.choice(np.arange(1, 31), size=9, replace=False))
    ]
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    clock = iter(np.cumsum(rng.uniform(0.0, 50.0, size=100_000)).tolist())
    monkeypatch.setattr("time.perf_counter", lambda: next(clock))
    config = CalibrationConfig(topics=2, epochs=1, batch_size=16)
    for name in ("a", "b"):
        calibrate(load_dataset(folder), config).save(tmp_path / name / "pop.parquet")
    for file in ("pop.parquet", "pop.items.parquet", "pop.json"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_fidelity_names_its_training_split_when_that_is_what_cannot_be_fitted(tmp_path):
    """fidelity calibrates on each user's earlier ratings: a release of 2 movies, each user
    rating both, was refused as 'dataset ... is too small to calibrate: 39 users, 1 items, 39
    consumptions', figures of no file the user has. The line says they are the split's."""
    folder = tmp_path / "two-movies"
    folder.mkdir()
    rows = [
        f"{u},{m},{(u + m) % 5 + 1},{1_000_000_000 + 100_000 * u + 3600 * m}"
        for u in range(1, 40)
        for m in (1, 2)
    ]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(folder), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(
        code, stderr, "(in its training split of 39 users, 1 items and 39 of its 78 ratings"
    )
    assert not out.exists()


def test_fidelity_says_why_no_held_out_rating_is_left(tmp_path):
    """Every user rated the same movies in the same order, so the held-out ratings (each
    user's last ones) are all of movies nobody rated earlier: fidelity said only 'no held-out
    rows left after the split'. The line says why, and what the checks need."""
    folder = tmp_path / "in-order"
    folder.mkdir()
    rows = [
        f"{u},{m},{(u + m) % 5 + 1},{1_000_000_000 + 100_000 * u + 3600 * m}"
        for u in range(1, 30)
        for m in range(1, 30)
        if (u + m) % 3
    ]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    out = tmp_path / "report"
    args = ("--dataset", str(folder), "-o", str(out), "-q", "--arms", "random,popularity")
    code, stderr = cli("fidelity", *args)
    assert_refused(code, stderr, "held-out ratings (each user's last ones) is of a movie no user")
    assert not out.exists()


def test_fidelity_users_past_the_dataset_are_noted(tmp_path):
    """--users 1000 on a dataset of 120 users used all 120 and said so nowhere (the saved
    config recorded 1000); a note now says it, on stderr and in fidelity.md."""
    from recarena.analysis.fidelity.ranking import ArmSpec
    from recarena.analysis.fidelity.report import FidelityConfig, write_report
    from tests.test_fidelity import _tiny_dataset

    cfg = FidelityConfig(
        dataset=str(_tiny_dataset(tmp_path / "inter.csv")),
        users=1000,
        topics=4,
        n_boot=20,
        calibration_epochs=2,
        arms=(ArmSpec("random", "random"), ArmSpec("popularity", "popularity")),
        simulation_days=0.5,
    )
    result = write_report(tmp_path / "report", cfg, workers=1)
    note = "--users 1,000: the dataset has 120 users, and all of them are used"
    assert result["dataset"]["users"] == 120 and note in result["dataset"]["notes"]
    assert f"Note: {note}." in (tmp_path / "report" / "fidelity.md").read_text()


@pytest.mark.parametrize("kind", ["csv-release", "generic-csv", "generic-parquet", "recbole"])
def test_a_dataset_under_a_name_like_a_pattern_is_read(tmp_path, kind):
    """'[1]', '*' or '?' in a folder or file name is part of the name: polars read the path as a
    glob pattern, matched nothing and failed with 'expanded paths were empty' (or read another
    file that the pattern matched)."""
    folder = tmp_path / "exp[1]*?"
    folder.mkdir()
    rows = [(1, 1, 4, 100), (1, 2, 3, 200), (2, 1, 5, 300)]
    if kind == "csv-release":
        lines = ["userId,movieId,rating,timestamp", *(",".join(map(str, r)) for r in rows)]
        (folder / "ratings.csv").write_text("\n".join(lines) + "\n")
        (folder / "movies.csv").write_text("movieId,title,genres\n1,Heat (1995),Drama\n")
        dataset, fmt = folder, "auto"
    elif kind == "recbole":
        (folder / "exp[1]*?.inter").write_text(
            "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
            + "".join("\t".join(map(str, r)) + "\n" for r in rows)
        )
        dataset, fmt = folder, "recbole"
    else:
        frame = pl.DataFrame(
            {
                "user": [r[0] for r in rows],
                "item": [r[1] for r in rows],
                "timestamp": [r[3] for r in rows],
            }
        )
        dataset = folder / ("i.parquet" if kind == "generic-parquet" else "i.csv")
        if kind == "generic-parquet":
            frame.write_parquet(dataset)
        else:
            frame.write_csv(dataset)
        fmt = "csv"
    data = load_dataset(str(dataset), fmt)
    assert data.n_interactions == 3 and data.n_users == 2
