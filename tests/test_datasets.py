"""Loaders: every format on small files the tests write, ML-100K from RecBole, the real
latest-small copy when present, and one clear error for a missing path."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.datasets import (
    MOVIELENS_PAGE,
    Columns,
    load_dataset,
    load_interactions,
    load_ml100k,
    load_movielens,
    load_movielens_100k,
    load_recbole,
    recbole_ml100k_dir,
)

LATEST_SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ml-latest-small"


def write_movielens(directory: Path) -> Path:
    directory.mkdir()
    (directory / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,10,4.0,100\n1,20,3.5,50\n2,10,5.0,70\n",
        encoding="utf-8",
    )
    (directory / "movies.csv").write_text(
        'movieId,title,genres\n10,"Heat (1995)",Action|Crime|Thriller\n'
        '20,"Shorts, The (2001)",(no genres listed)\n30,Untitled,Drama\n',
        encoding="utf-8",
    )
    return directory


def test_movielens_csv(tmp_path: Path) -> None:
    data = load_dataset(write_movielens(tmp_path / "ml-tiny"))
    assert data.name == "ml-tiny"
    assert data.user.tolist() == [1, 1, 2]
    assert data.item.tolist() == [10, 20, 10]
    assert data.rating.tolist() == [4.0, 3.5, 5.0]
    assert data.timestamp.tolist() == [100.0, 50.0, 70.0]
    assert data.click is None and data.consumed().all()
    assert data.items["title"].to_list() == ["Heat", "Shorts, The", "Untitled"]
    assert data.items["genres"].to_list() == [["Action", "Crime", "Thriller"], [], ["Drama"]]
    assert data.items["year"].to_list() == [1995, 2001, None]
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 3, 3)
    assert "grouplens" in data.licence


def test_recbole_atomic(tmp_path: Path) -> None:
    directory = tmp_path / "toy"
    directory.mkdir()
    (directory / "toy.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "u1\t7\t2\t10\nu2\t8\t5\t20\nu1\t8\t4\t30\n",
        encoding="utf-8",
    )
    (directory / "toy.item").write_text(
        "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n"
        "7\tThe Thing\t1982\tHorror Sci-Fi\n8\tBrazil\t\tComedy\n",
        encoding="utf-8",
    )
    for path in (directory, directory / "toy.inter"):
        data = load_dataset(path)
        assert data.name == "toy"
        assert data.user.tolist() == ["u1", "u2", "u1"]  # non-integer tokens stay strings
        assert data.item.tolist() == [7, 8, 8]
        assert data.rating.tolist() == [2.0, 5.0, 4.0]
        assert data.items["title"].to_list() == ["The Thing", "Brazil"]
        assert data.items["genres"].to_list() == [["Horror", "Sci-Fi"], ["Comedy"]]
        assert data.items["year"].to_list() == [1982, None]


def test_recbole_header_without_types_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.inter"
    path.write_text("user_id\titem_id\n1\t2\n", encoding="utf-8")
    with pytest.raises(RecarenaError, match="has no ':type'"):
        load_recbole(path)


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_generic_interactions(tmp_path: Path, suffix: str) -> None:
    frame = pl.DataFrame(
        {
            "uid": [5, 5, 6, 6],
            "iid": ["a", "b", "a", "c"],
            "shown_at": [1.0, 2.0, 3.0, 4.0],
            "clicked": [1, 0, 1, 1],
            "name": ["Alpha", "Beta", "Alpha", "Gamma"],
            "tags": ["x|y", "", "x|y", "z"],
        }
    )
    path = tmp_path / f"log.{suffix}"
    frame.write_csv(path) if suffix == "csv" else frame.write_parquet(path)
    cols = Columns(
        user="uid", item="iid", timestamp="shown_at", click="clicked", title="name", genres="tags"
    )
    data = load_interactions(path, cols)
    assert data.user.tolist() == [5, 5, 6, 6]
    assert data.item.tolist() == ["a", "b", "a", "c"]
    assert data.rating is None
    assert data.consumed().tolist() == [True, False, True, True]
    assert data.items["item"].to_list() == ["a", "b", "c"]
    assert data.items["title"].to_list() == ["Alpha", "Beta", "Gamma"]
    assert data.items["genres"].to_list() == [["x", "y"], [], ["z"]]


def test_generic_missing_column_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item\n1,2\n", encoding="utf-8")
    with pytest.raises(RecarenaError, match="log.csv line 1: header has no timestamp column 'ti"):
        load_interactions(path)


def test_missing_paths_name_the_path_and_the_download_page(tmp_path: Path) -> None:
    missing = tmp_path / "ml-25m"
    with pytest.raises(RecarenaError) as info:
        load_movielens(missing)
    assert str(missing) in str(info.value) and MOVIELENS_PAGE in str(info.value)
    with pytest.raises(RecarenaError) as info:
        load_dataset(missing)
    assert str(missing) in str(info.value) and MOVIELENS_PAGE in str(info.value)
    with pytest.raises(RecarenaError, match="interactions file not found"):
        load_dataset(tmp_path / "nope.csv", "csv")


def test_ambiguous_path_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("x", encoding="utf-8")
    formats = "--format movielens\\|movielens-dat\\|movielens-100k\\|recbole\\|csv"
    with pytest.raises(RecarenaError, match=formats):
        load_dataset(path)


def test_ml100k_from_recbole_package() -> None:
    data = load_ml100k()
    assert (data.n_users, data.n_items, data.n_interactions) == (943, 1682, 100_000)
    assert data.items.height == 1682
    first = data.items.filter(pl.col("item") == 1).row(0, named=True)
    assert first["title"] == "Toy Story" and first["year"] == 1995
    assert first["genres"] == ["Animation", "Children's", "Comedy"]
    assert set(np.unique(data.rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    # read in place from the installed package, never from a copy in the repo
    assert recbole_ml100k_dir().parent.parent.name == "recbole"


@pytest.mark.skipif(not LATEST_SMALL.exists(), reason="ml-latest-small copy not present")
def test_ml_latest_small_copy() -> None:
    data = load_dataset(LATEST_SMALL)
    assert (data.n_users, data.n_interactions) == (610, 100_836)
    assert data.items.height == 9742
    toy = data.items.filter(pl.col("item") == 1).row(0, named=True)
    assert toy["title"] == "Toy Story" and toy["year"] == 1995


# ------------------------------------------------------------ MovieLens-100K as GroupLens ships it
def write_ml100k_release(directory: Path, rows: int = 3000) -> Path:
    """The release's own files (u.data, u.item, u.genre, u.user) rebuilt from RecBole's copy."""
    source = recbole_ml100k_dir()
    directory.mkdir()
    inter = pl.read_csv(source / "ml-100k.inter", separator="\t", n_rows=rows)
    lines = ["\t".join(str(int(v)) for v in row) for row in inter.iter_rows()]
    (directory / "u.data").write_text("\n".join(lines) + "\n", encoding="latin-1")
    genres = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime"]
    genres += ["Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery"]
    genres += ["Romance", "Sci-Fi", "Thriller", "War", "Western"]
    (directory / "u.genre").write_text("".join(f"{g}|{i}\n" for i, g in enumerate(genres)))
    items = pl.read_csv(
        source / "ml-100k.item", separator="\t", quote_char=None, infer_schema=False
    )
    out = []
    for item, title, year, kinds in items.iter_rows():
        flags = "|".join("1" if g in str(kinds).split(" ") else "0" for g in genres)
        out.append(f"{item}|{title} ({year})|01-Jan-{year}||http://example.org/{item}|{flags}")
    (directory / "u.item").write_bytes(("\n".join(out) + "\n").encode("latin-1"))
    users = pl.read_csv(source / "ml-100k.user", separator="\t", infer_schema=False)
    rows_u = ["|".join(str(v) for v in row) for row in users.iter_rows()]
    (directory / "u.user").write_text("\n".join(rows_u) + "\n", encoding="latin-1")
    return directory


def test_movielens_100k_release_reads_like_the_recbole_copy(tmp_path: Path) -> None:
    folder = write_ml100k_release(tmp_path / "ml-100k")
    data = load_dataset(folder)  # detected from u.data
    recbole = load_ml100k()
    assert data.n_interactions == 3000
    assert np.array_equal(data.user, recbole.user[:3000])
    assert np.array_equal(data.item, recbole.item[:3000])
    assert np.array_equal(data.rating, recbole.rating[:3000])
    assert np.array_equal(data.timestamp, recbole.timestamp[:3000])
    toy = data.items.filter(pl.col("item") == 1).row(0, named=True)
    assert toy["title"] == "Toy Story" and toy["year"] == 1995
    assert toy["genres"] == ["Animation", "Children's", "Comedy"]
    assert data.items.height == 1682
    assert data.users is not None and data.users["persona"][0] == "a man aged 24, technician"
    # the same folder through --format movielens, and u.data named directly
    assert load_dataset(folder, "movielens").n_interactions == 3000
    assert load_movielens_100k(folder / "u.data").n_interactions == 3000


def test_a_bad_u_data_line_is_named(tmp_path: Path) -> None:
    folder = write_ml100k_release(tmp_path / "ml-100k", rows=10)
    (folder / "u.data").write_text("1\t2\t3\t4\n5,6,7,8\n", encoding="latin-1")
    with pytest.raises(RecarenaError, match=r"u.data line 2: expected 4 fields separated by '\\t'"):
        load_dataset(folder)


# ------------------------------------------------------------------- MovieLens .dat releases
def write_dat_release(directory: Path) -> Path:
    """A tiny ML-1M-style folder: '::' separators, latin-1 bytes, a title with a comma."""
    directory.mkdir()
    (directory / "ratings.dat").write_bytes(b"1::10::4::100\n1::20::3::50\n2::10::5::70\n")
    (directory / "movies.dat").write_bytes(
        "10::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
        "20::Heat (1995)::Action|Crime|Thriller\n".encode("latin-1")
    )
    (directory / "users.dat").write_bytes(b"1::F::25::12::55455\n2::M::56::13::10001\n")
    return directory


def test_movielens_dat_folder_loads(tmp_path: Path) -> None:
    folder = write_dat_release(tmp_path / "ml-1m")
    data = load_dataset(folder)  # detected from the folder's files
    assert data.name == "ml-1m"
    assert data.user.tolist() == [1, 1, 2] and data.item.tolist() == [10, 20, 10]
    assert data.rating.tolist() == [4.0, 3.0, 5.0]
    assert data.timestamp.tolist() == [100.0, 50.0, 70.0]
    assert data.items["title"].to_list() == ["Cité des enfants perdus, La", "Heat"]
    assert data.items["genres"].to_list() == [
        ["Adventure", "Sci-Fi"],
        ["Action", "Crime", "Thriller"],
    ]
    assert data.items["year"].to_list() == [1995, 1995]
    assert data.users is not None
    assert data.users["persona"].to_list() == [
        "a woman aged 25-34, programmer",
        "a man aged 56+, retired",
    ]
    # --format movielens on a .dat folder reads it too (it is MovieLens)
    assert load_dataset(folder, "movielens").n_interactions == 3


def test_dat_personas_reach_the_calibrated_population(tmp_path: Path) -> None:
    from recarena.agents.users.calibration import (
        CalibratedPopulation,
        CalibrationConfig,
        calibrate,
    )

    folder = write_dat_release(tmp_path / "ml-1m")
    rows = [
        f"{u}::{i}::{1 + (u + i) % 5}::{1000 * u + 3600 * i}"
        for u in (1, 2)
        for i in range(10, 30)
        if (u + i) % 7  # not every movie: calibration contrasts chosen with unchosen ones
    ]
    (folder / "ratings.dat").write_text("\n".join(rows) + "\n", encoding="latin-1")
    pop = calibrate(load_dataset(folder), CalibrationConfig(topics=2, epochs=1, batch_size=8))
    assert pop.persona == ["a woman aged 25-34, programmer", "a man aged 56+, retired"]
    pop.save(tmp_path / "pop.parquet")
    assert CalibratedPopulation.load(tmp_path / "pop.parquet").persona == pop.persona


def _bad_release(tmp_path: Path, case: str) -> Path:
    folder = tmp_path / case
    folder.mkdir()
    if case == "wrong-separator":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\n1,20,3,50\n")
    elif case == "non-numeric-id":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\n1::20::3::50\nu7::10::5::70\n")
    elif case == "empty":
        (folder / "ratings.dat").write_bytes(b"")
    elif case == "latin-1-csv":
        (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,1\n")
        (folder / "movies.csv").write_bytes(
            "movieId,title,genres\n10,Heat (1995),Action\n20,Café (2001),Drama\n".encode("latin-1")
        )
    elif case == "missing-file":
        (folder / "movies.dat").write_bytes(b"10::Heat (1995)::Action\n")
    elif case == "fractional-id-csv":  # was: cast to 3, merged with user 3
        (folder / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp\n3,10,4,1\n3.5,20,3,2\n"
        )
    elif case == "inf-timestamp-csv":  # was: every visit rate NaN, the run's cells failed
        (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,inf\n")
    elif case == "nan-rating-dat":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\n1::20::nan::50\n")
    elif case == "huge-id-dat":  # was: an int64 overflow to a wrong id
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\n10000000000000000000000::2::3::5\n")
    elif case == "blank-line-dat":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\n\n1::20::3::50\n")
    elif case == "blank-line-csv":  # was: "userId None is not a number"
        (folder / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp\n1,10,4,1\n\n2,10,3,2\n"
        )
    elif case in RATINGS_CSV:  # one bad row in an otherwise fine ratings.csv
        rows = ["userId,movieId,rating,timestamp", "1,10,4,964982703", RATINGS_CSV[case]]
        (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    elif case == "repeated-column-csv":  # was: the first 'rating' column won without a word
        (folder / "ratings.csv").write_text(
            "userId,movieId,rating,rating,timestamp\n1,10,4,1,100\n2,10,3,5,200\n"
        )
    elif case == "repeated-unused-column-csv":  # was: read, the second 'source' dropped
        (folder / "ratings.csv").write_text(
            "userId,movieId,rating,timestamp,source,source\n1,10,4,100,a,b\n"
        )
    elif case == "headerless-csv":  # was: "header has no column 'userId'; found ['1', '10', ..."
        (folder / "ratings.csv").write_text("1,10,4.0,964982703\n1,20,3.5,964982800\n")
    elif case == "old-mac-csv":  # was: one header of thousands of names, all of them printed
        rows = [f"{u},{m},4,{100 + m}" for u in range(1, 40) for m in range(1, 40)]
        (folder / "ratings.csv").write_text("\r".join(["userId,movieId,rating,timestamp", *rows]))
    elif case == "header-again-csv":  # two ratings.csv files joined with cat
        part = "userId,movieId,rating,timestamp\n1,10,4,100\n1,20,3,200\n"
        (folder / "ratings.csv").write_text(part + part.replace("1,", "2,"))
    elif case in ("stray-quote-csv", "unclosed-quote-csv"):  # was 'movies.csv unreadable'
        (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,1\n")
        title = 'He"at (1995)' if case == "stray-quote-csv" else '"Heat, The (1995)'
        (folder / "movies.csv").write_text(
            f'movieId,title,genres\n5,"Toy\nStory (1995)",Comedy\n10,{title},Action\n'
            '20,"Shorts, The (2001)",Drama\n'
        )
    elif case == "tabs-dat":  # was: 'a .csv release? name it ratings.csv', which reads ','
        (folder / "ratings.dat").write_bytes(b"1\t10\t4\t100\n")
    elif case == "commas-dat":  # a ratings.csv named that way then wants a header line
        (folder / "ratings.dat").write_bytes(b"1,10,4,100\n")
    elif case == "old-mac-dat":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100\r1::20::3::50\r")
    elif case == "short-line-csv":  # a file cut short: was "rating None is not a number"
        (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,100\n1,20")
    elif case == "gzip-suffix":  # was: 'not found ...; download MovieLens' for a release at hand
        (folder / "ratings.csv.gz").write_bytes(b"")
        (folder / "movies.csv").write_text("movieId,title,genres\n10,Heat (1995),Action\n")
    elif case == "utf-16-csv":  # was: "header has no column 'userId'; found ['\xff\xfeu\x00..."
        (folder / "ratings.csv").write_bytes(
            "userId,movieId,rating,timestamp\n1,10,4,1\n".encode("utf-16")
        )
    elif case == "utf-16-dat":
        (folder / "ratings.dat").write_bytes("1::10::4::100\n".encode("utf-16"))
    elif case == "trailing-separator-dat":
        (folder / "ratings.dat").write_bytes(b"1::10::4::100::\n")
    elif case == "spaces-u-data":
        (folder / "u.data").write_bytes(b"1 10 4 100\n")
    elif case == "directory-ratings":  # was: IsADirectoryError
        (folder / "ratings.csv").mkdir()
    elif case == "link-loop":  # was: "cannot tell the format of" the folder
        (folder / "ratings.csv").symlink_to(folder / "ratings.csv")
    return folder


RATINGS_CSV = {
    # each was calibrated as if right: milliseconds as seconds, 10 stars clipped to 5, ...
    "millisecond-timestamp": "2,20,3,964982703000",
    "negative-timestamp": "2,20,3,-5",
    "ten-stars": "2,20,10,964982703",
    "zero-stars": "2,20,0,964982703",
    "negative-rating": "2,20,-3,964982703",
    "duplicate-pair": "1,10,5,964982800",
}
BAD = {
    "millisecond-timestamp": ("ratings.csv line 3", "timestamp 964982703000", "milliseconds"),
    "negative-timestamp": ("ratings.csv line 3", "timestamp -5 is negative"),
    "ten-stars": ("ratings.csv line 3", "rating 10 is outside", "0.5-5"),
    "zero-stars": ("ratings.csv line 3", "rating 0 is outside"),
    "negative-rating": ("ratings.csv line 3", "rating -3 is outside"),
    "duplicate-pair": ("ratings.csv line 3", "user 1 rated movie 10 again (first on line 2)"),
    "utf-16-csv": ("ratings.csv line 1", "UTF-16"),
    "utf-16-dat": ("ratings.dat line 1", "UTF-16"),
    "spaces-u-data": ("u.data line 1", "uses spaces"),
    "trailing-separator-dat": ("ratings.dat line 1", "found 5 (the line ends with '::')"),
    "directory-ratings": ("ratings.csv", "not a file"),
    "link-loop": ("ratings.csv", "symbolic link that leads to no file"),
    "wrong-separator": ("ratings.dat line 2", "'::'"),
    "non-numeric-id": ("ratings.dat line 3", "'u7' is not a number"),
    "empty": ("ratings.dat", "empty"),
    "latin-1-csv": ("movies.csv line 3", "UTF-8"),
    "missing-file": ("ratings file not found", "ratings.dat"),
    "fractional-id-csv": ("ratings.csv line 3", "userId 3.5 is not an integer"),
    "inf-timestamp-csv": ("ratings.csv line 2", "timestamp 'inf' is not a finite number"),
    "nan-rating-dat": ("ratings.dat line 2", "rating 'nan' is not a finite number"),
    "huge-id-dat": ("ratings.dat line 2", "is too large for an id"),
    "blank-line-dat": ("ratings.dat line 2", "found 1"),
    "blank-line-csv": ("ratings.csv line 3", "a blank line between rows"),
    "repeated-column-csv": ("ratings.csv line 1", "names column 'rating' twice"),
    "repeated-unused-column-csv": ("ratings.csv line 1", "names column 'source' twice"),
    "headerless-csv": ("ratings.csv line 1: no header line", "'userId,movieId,rating,timestamp'"),
    "old-mac-csv": ("ratings.csv line 1", "bare carriage return (old Mac line endings)"),
    "header-again-csv": ("ratings.csv line 4: userId 'userId' is not a number (the header li",),
    "stray-quote-csv": ("movies.csv line 4: a double quote inside a field that is not quoted",),
    "unclosed-quote-csv": ("movies.csv line 4 (closing on line 5): a quoted field goes on af",),
    "tabs-dat": ("ratings.dat line 1", "uses tabs: MovieLens-100K's u.data layout? name it u"),
    "commas-dat": ("ratings.dat line 1", "name it ratings.csv and give it the header userId,m"),
    "old-mac-dat": ("ratings.dat line 1", "a bare carriage return (old Mac line endings?)"),
    "short-line-csv": ("ratings.csv line 3: rating is empty",),
    "gzip-suffix": ("no ratings.csv", "it holds ratings.csv.gz: name it ratings.csv"),
}


@pytest.mark.parametrize("layout", ["dat", "csv"])
def test_a_byte_order_mark_and_blank_lines_at_the_end_are_not_rows(tmp_path: Path, layout) -> None:
    """What an editor adds on saving (a UTF-8 BOM, an empty last line or two) is read past;
    was: the BOM glued to the first user id ("'\u00ef\u00bb\u00bf1' is not a number"), and a
    trailing blank line was a bad row."""
    folder = tmp_path / layout
    folder.mkdir()
    if layout == "dat":
        (folder / "ratings.dat").write_bytes(
            b"\xef\xbb\xbf1::10::4::100\r\n2::20::3::50\r\n\r\n \n"
        )
    else:
        (folder / "ratings.csv").write_bytes(
            b"\xef\xbb\xbfuserId,movieId,rating,timestamp\n1,10,4,100\n2,20,3,50\n\n\n"
        )
    data = load_dataset(folder)
    assert data.user.tolist() == [1, 2] and data.item.tolist() == [10, 20]
    assert data.rating.tolist() == [4.0, 3.0] and data.timestamp.tolist() == [100.0, 50.0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_dataset_is_one_line_naming_file_and_line(tmp_path: Path, case: str, capsys) -> None:
    from recarena.simulator.cli import main

    folder = _bad_release(tmp_path, case)
    with pytest.raises(RecarenaError) as raised:
        load_dataset(folder, "movielens")
    assert "\n" not in str(raised.value)
    with pytest.raises(SystemExit) as exited:
        main(["calibrate", str(folder), "-o", str(tmp_path / "pop.parquet")])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in BAD[case]:
        assert fragment in lines[0], lines[0]
    assert not (tmp_path / "pop.parquet").exists()


def test_movies_csv_with_a_multiline_title_an_empty_genre_field_and_crlf(tmp_path: Path) -> None:
    """A quoted title holding a line break stays one line of text (was: 'Toy\\nStory' in the
    items table and the prompts made from it); an empty genres field is no genres (was: a null
    list among the lists); CRLF line endings read like LF."""
    (tmp_path / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n1,1,4,100\r\n1,2,3,200\r\n"
    )
    (tmp_path / "movies.csv").write_bytes(
        b'movieId,title,genres\r\n1,"Toy\r\nStory (1995)",Animation|Comedy\r\n2,Heat (1995),\r\n'
    )
    items = load_dataset(tmp_path).items
    assert items["title"].to_list() == ["Toy Story", "Heat"]
    assert items["genres"].to_list() == [["Animation", "Comedy"], []]
    assert items["year"].to_list() == [1995, 1995]


@pytest.mark.parametrize("name", ["interactions.csv", "data/data.inter"])
def test_generic_and_recbole_files_in_utf16_are_named(tmp_path: Path, name: str) -> None:
    """Was: "no user column 'user'; found ['\\xff\\xfeu\\x00s\\x00...']"."""
    path = tmp_path / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes("user_id:token\titem_id:token\n1\t2\n".encode("utf-16"))
    with pytest.raises(RecarenaError, match=r"line 1: the file is UTF-16, not UTF-8 text"):
        load_dataset(path.parent if name.endswith(".inter") else path)


@pytest.mark.parametrize("name", ["ratings.csv", "ratings.dat"])
def test_gzip_compressed_ratings_under_their_plain_name(tmp_path: Path, name: str) -> None:
    """A gzip-compressed ratings file named .csv or .dat is read (the .dat one was 'expected 4
    fields, found 1'); one cut short is named as such (was: 'not valid UTF-8 (byte 0x8b)')."""
    import gzip

    sep = "," if name.endswith(".csv") else "::"
    rows = ["1,10,4,100", "1,20,3,200", "2,10,5,300"]
    header = ["userId,movieId,rating,timestamp"] if sep == "," else []
    packed = gzip.compress(
        ("\n".join(header + [r.replace(",", sep) for r in rows]) + "\n").encode()
    )
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    (whole / name).write_bytes(packed)
    (cut / name).write_bytes(packed[: len(packed) // 2])
    assert load_dataset(whole).user.tolist() == [1, 1, 2]
    with pytest.raises(RecarenaError, match=f"{name}.*gzip-compressed file that cannot be read"):
        load_dataset(cut)


@pytest.mark.parametrize(
    ("release", "file", "line", "message"),
    [
        ("csv", "movies.csv", 3, "movies.csv line 3: movie 10 again (first on line 2)"),
        ("dat", "movies.dat", 2, "movies.dat line 2: movie 10 again (first on line 1)"),
        ("dat", "users.dat", 2, "users.dat line 2: user 1 again (first on line 1)"),
        ("100k", "u.item", 3, "u.item line 3: movie 1 again (first on line 1)"),
        ("100k", "u.user", 2, "u.user line 2: user 1 again (first on line 1)"),
    ],
)
def test_a_movie_or_user_listed_twice_is_named(tmp_path, release, file, line, message):
    """Two movies files pasted together (or a row copied) gave the first title and genres
    without a word, and a repeated users.dat id the last persona; each is now the file, the
    line and the line it repeats."""
    if release == "csv":
        folder = tmp_path / "ml"
        folder.mkdir()
        (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,10,4,1\n")
        (folder / "movies.csv").write_text(
            "movieId,title,genres\n10,Heat (1995),Action\n10,Heat again (1995),Drama\n"
        )
    elif release == "dat":
        folder = write_dat_release(tmp_path / "ml-1m")
    else:
        folder = write_ml100k_release(tmp_path / "ml-100k", rows=10)
    lines = (folder / file).read_bytes().splitlines(keepends=True)
    if release != "csv":  # the line the repeat copies, with its own id, in place of `line`
        lines[line - 1] = lines[0]
        (folder / file).write_bytes(b"".join(lines))
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(folder)


def test_a_release_unpacked_one_level_down_is_read(tmp_path: Path) -> None:
    """The folder a release's zip was unpacked into (the release one folder down) is read as
    the release: it was refused with the path to give, the only one it can mean. Several
    releases inside are named; an empty folder keeps the format line."""
    (tmp_path / "download").mkdir()
    folder = write_dat_release(tmp_path / "download" / "ml-1m")
    data = load_dataset(tmp_path / "download")
    assert data.name == "ml-1m" and data.source == str(folder / "ratings.dat")
    assert data.user.tolist() == load_dataset(folder).user.tolist()
    assert load_dataset(tmp_path / "download", "movielens-dat").name == "ml-1m"
    write_movielens(tmp_path / "download" / "ml-latest-small")
    with pytest.raises(
        RecarenaError,
        match=re.escape("but several releases' folders do (ml-1m, ml-latest-small): give one"),
    ):
        load_dataset(tmp_path / "download")
    (tmp_path / "empty").mkdir()  # nothing to point to: the format line as before
    with pytest.raises(RecarenaError, match=r"cannot tell the format of .*empty"):
        load_dataset(tmp_path / "empty")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,2,100,4,1\n,3,200,5,1\n", "x.csv line 3: user is empty"),
        ("1,2,100,4,1\n2,,200,5,1\n", "x.csv line 3: item is empty"),
        ("1,2,,4,1\n", "x.csv line 2: timestamp is empty"),
        ("1,2,100,4,1\n2,3,abc,5,1\n", "x.csv line 3: timestamp 'abc' is not a number"),
        ("1,2,100,four,1\n", "x.csv line 2: rating 'four' is not a number"),
        ("1,2,100,4,1\n2,3,200,5,yes\n", "x.csv line 3: click 'yes' is not a click (1/0 or true"),
        ("1,2,100,4,2\n", "x.csv line 2: click '2' is not a click"),
        # was: read as they are; a NaN timestamp or rating ended in NaN fits
        ("1,2,100,4,1\n2,3,nan,5,1\n", "x.csv line 3: timestamp 'nan' is not a finite number"),
        ("1,2,inf,4,1\n", "x.csv line 2: timestamp 'inf' is not a finite number"),
        ("1,2,100,-inf,1\n", "x.csv line 2: rating '-inf' is not a finite number"),
        ("1,2,100, NaN,1\n", "x.csv line 2: rating ' NaN' is not a finite number"),
        ("1,2,100,1e999,1\n", "x.csv line 2: rating '1e999' is not a finite number"),
        ("1,2,100,4,1\nnan,3,200,5,1\n", "x.csv line 3: user 'nan' is not a finite number"),
        ("1,inf,100,4,1\n", "x.csv line 2: item 'inf' is not a finite number"),
        ("1,2, ,4,1\n", "x.csv line 2: timestamp is empty"),
    ],
)
def test_a_bad_cell_of_a_generic_interactions_file_is_named(tmp_path, rows, message):
    """Was: polars' casting error naming no line ("casting from Utf8View to Boolean not
    supported", "conversion from `str` to `f64` failed"), or an empty user id read as one more
    user; a click of 2 was a click."""
    path = tmp_path / "x.csv"
    path.write_text("user,item,timestamp,rating,click\n" + rows)
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"user,item,timestamp\n1,2,100\n1,3,200,5\n", "x.csv line 3: 4 fields, the header has 3"),
        (b'user,item,timestamp,title\n1,2,100,He"at\n', "x.csv line 2: a double quote inside a"),
        (b"user,item,timestamp,title\n1,2,100,Caf\xe9\n", "x.csv line 2: not valid UTF-8 (byte"),
        (b"", "x.csv: the file is empty"),
    ],
)
def test_a_generic_csv_that_polars_cannot_read_is_named_by_line(tmp_path, text, message):
    """Was polars' own message naming no line ('CSV malformed: expected 0 rows, actual 2 rows',
    'found more fields than defined in Schema'), some of them several lines long."""
    (tmp_path / "x.csv").write_bytes(text)
    with pytest.raises(RecarenaError, match=re.escape(message)) as raised:
        load_dataset(tmp_path / "x.csv")
    assert "\n" not in str(raised.value)


def test_a_generic_file_reads_empty_ratings_and_any_click_spelling(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user,item,timestamp,rating,click\n1,2,100,,0\n1,3,200,4, TRUE\n2,3,9,5,1.0\n")
    data = load_dataset(path)
    assert data.click is not None and data.click.tolist() == [False, True, True]
    assert data.rating is not None and np.isnan(data.rating[0]) and data.rating[1] == 4
    assert data.timestamp.tolist() == [100.0, 200.0, 9.0]
    frame = pl.DataFrame(
        {"user": [1, 2], "item": [3, 4], "timestamp": [5, 6], "click": [True, False]}
    )
    frame.write_parquet(tmp_path / "x.parquet")
    parquet = load_dataset(tmp_path / "x.parquet")
    assert parquet.click is not None and parquet.click.tolist() == [True, False]
    frame.with_columns(pl.Series("user", [1, None])).write_parquet(tmp_path / "y.parquet")
    with pytest.raises(RecarenaError, match=re.escape("y.parquet row 2: user is empty")):
        load_dataset(tmp_path / "y.parquet")


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("timestamp", [5.0, float("nan")], "x.parquet row 2: timestamp 'NaN' is not a finite"),
        ("timestamp", [float("inf"), 6.0], "x.parquet row 1: timestamp 'inf' is not a finite"),
        ("rating", [4.0, float("-inf")], "x.parquet row 2: rating '-inf' is not a finite number"),
        ("rating", [float("nan"), 3.0], "x.parquet row 1: rating 'NaN' is not a finite number"),
        ("user", [1.0, float("nan")], "x.parquet row 2: user 'NaN' is not a finite number"),
        ("item", [float("inf"), 2.0], "x.parquet row 1: item 'inf' is not a finite number"),
    ],
)
def test_a_non_finite_number_in_a_parquet_file_is_named(tmp_path, column, values, message):
    """A Parquet float column holds NaN and inf as they are: a NaN timestamp or rating was read
    as it was (calibration's fits turned NaN), and a NaN id was one more user or item."""
    frame = pl.DataFrame(
        {"user": [1.0, 2.0], "item": [3.0, 4.0], "timestamp": [5.0, 6.0], "rating": [4.0, 3.0]}
    )
    frame.with_columns(pl.Series(column, values)).write_parquet(tmp_path / "x.parquet")
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(tmp_path / "x.parquet")
    # a null rating, as a CSV file's empty cell, is an exposure's (click 0) and only that
    unrated = frame.with_columns(pl.Series("rating", [None, 3.0]))
    unrated.write_parquet(tmp_path / "y.parquet")
    with pytest.raises(RecarenaError, match=re.escape("y.parquet row 1: rating is empty;")):
        load_dataset(tmp_path / "y.parquet")
    unrated.with_columns(click=pl.Series([0, 1])).write_parquet(tmp_path / "y.parquet")
    assert np.isnan(load_dataset(tmp_path / "y.parquet").rating[0])


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1\t2\t4\tinf\n", "rb.inter line 2: timestamp 'inf' is not a finite number"),
        ("1\t2\tnan\t100\n", "rb.inter line 2: rating 'nan' is not a finite number"),
        ("1\t2\t4\tabc\n", "rb.inter line 2: timestamp 'abc' is not a number"),
        ("1\t2\tfour\t100\n", "rb.inter line 2: rating 'four' is not a number"),
        ("1\t2\t4\t100\n\t3\t5\t200\n", "rb.inter line 3: user_id is empty"),
    ],
)
def test_a_bad_cell_of_a_recbole_file_is_named(tmp_path, rows, message):
    """Was: "conversion from `str` to `f64` failed in column 'timestamp'" naming no line, and an
    empty user_id read as one more user."""
    folder = tmp_path / "rb"
    folder.mkdir()
    header = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    (folder / "rb.inter").write_text(header + rows)
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(folder)


def test_the_csv_format_given_a_folder_says_it_reads_one_file(tmp_path: Path) -> None:
    """Was: polars read the folder's files as one glob ('schema names differ: got 10::Cité ...')."""
    folder = write_dat_release(tmp_path / "ml-1m")
    with pytest.raises(RecarenaError, match=r"ml-1m is a folder; the csv format reads one inter"):
        load_dataset(folder, "csv")


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="needs named pipes")
def test_a_named_pipe_for_a_generic_or_recbole_file_is_refused(tmp_path: Path) -> None:
    """calibrate pipe.csv (or a RecBole .inter that is a pipe) blocked in polars' reader with
    no writer on the other end, and SIGTERM did not stop it (Rust code does not see Python's
    signal handlers): the process had to be killed."""
    import os

    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(RecarenaError, match=r"pipe.csv: not a file \(a pipe or a device\)"):
        load_dataset(tmp_path / "pipe.csv")
    (tmp_path / "rb").mkdir()
    os.mkfifo(tmp_path / "rb" / "rb.inter")
    with pytest.raises(RecarenaError, match=r"rb.inter: not a file \(a directory, a pipe or a"):
        load_dataset(tmp_path / "rb")


@pytest.mark.parametrize("dataset", ["", "  "])
def test_an_empty_dataset_path_is_refused(dataset: str) -> None:
    """Path('') is the working directory: calibrate '' read it ('. holds no ratings.csv ...')."""
    with pytest.raises(RecarenaError, match=r"^dataset: an empty path"):
        load_dataset(dataset)


def test_a_header_with_spaces_or_other_letters_reads_as_its_names(tmp_path: Path) -> None:
    """'userId, movieId, ...' and ML-1M's README spelling 'UserID,MovieID,...' were 'header has
    no column'; the values after ', ' were already read past their spaces. Generic files too."""
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "UserID, MovieID, Rating, Timestamp\n1, 10, 4.5, 100\n2, 20, 3, 50\n"
    )
    (folder / "movies.csv").write_text('MovieId,Title,Genres\n10,"Heat, The (1995)",Action\n')
    data = load_dataset(folder)
    assert data.user.tolist() == [1, 2] and data.item.tolist() == [10, 20]
    assert data.rating.tolist() == [4.5, 3.0] and data.timestamp.tolist() == [100.0, 50.0]
    assert data.items["title"].to_list() == ["Heat, The"]
    (tmp_path / "x.csv").write_text("user, item, timestamp\n1, 2, 100\n1, 3, 200\n")
    generic = load_dataset(tmp_path / "x.csv")
    assert generic.user.tolist() == [1, 1] and generic.item.tolist() == [2, 3]
    (tmp_path / "y.csv").write_text("user,item,timestamp,user\n1,2,100,5\n")
    with pytest.raises(RecarenaError, match=r"y.csv line 1: the header names column 'user' twi"):
        load_dataset(tmp_path / "y.csv")


def test_a_recbole_header_naming_a_column_twice_is_named(tmp_path: Path) -> None:
    """Was: "dataset ...: column 'rating' is duplicate", naming no file."""
    (tmp_path / "rb").mkdir()
    (tmp_path / "rb" / "rb.inter").write_text(
        "user_id:token\titem_id:token\trating:float\trating:token\n1\t2\t3\t4\n"
    )
    with pytest.raises(RecarenaError, match=r"rb.inter line 1: the header names column 'rating'"):
        load_dataset(tmp_path / "rb")


def test_movies_dat_in_utf8_with_separators_and_cp1252_bytes_in_titles(tmp_path: Path) -> None:
    """A movies.dat saved as UTF-8 (as a copy of ML-10M's may be) was read as latin-1:
    'CitÃ©'. A title holding '::' was 'expected 3 fields, found 4'. A latin-1 byte 0x85
    (cp1252's ellipsis) was a line break to str.splitlines: one title cut into two lines."""
    folder = write_dat_release(tmp_path / "ml-10m")
    (folder / "movies.dat").write_bytes(
        "10::Cité des enfants perdus, La (1995)::Adventure|Sci-Fi\n"
        "20::Heat:: Part 2 (1995)::Action|Crime\n".encode()
    )
    data = load_dataset(folder)
    assert data.items["title"].to_list() == ["Cité des enfants perdus, La", "Heat:: Part 2"]
    assert data.items["genres"].to_list() == [["Adventure", "Sci-Fi"], ["Action", "Crime"]]
    (folder / "movies.dat").write_bytes(
        b"10::Cit\xe9 des enfants perdus, La (1995)::Adventure\n20::And then\x85 (1995)::Drama\n"
    )
    data = load_dataset(folder)  # the title ends at the (whitespace) byte, not the line
    assert data.items["title"].to_list() == ["Cité des enfants perdus, La", "And then"]
    assert data.items["genres"].to_list() == [["Adventure"], ["Drama"]]
    assert data.items["year"].to_list() == [1995, 1995]
    (folder / "movies.dat").write_bytes(b"10::Heat (1995)::Action::\n")  # not a title's '::'
    with pytest.raises(RecarenaError, match=r"movies.dat line 1: expected 3 fields .* found 4"):
        load_dataset(folder)


def test_one_rating_value_is_noted_only_among_rated_consumptions(tmp_path: Path) -> None:
    """The note reads the ratings that calibration fits: an exposure's rating (often 0) or
    empty rating does not make ratings differ, and a dataset with two values has no note."""
    from recarena.simulator.data.datasets import dataset_notes

    path = tmp_path / "x.csv"
    path.write_text(
        "user,item,timestamp,rating,click\n1,2,100,5,1\n1,3,200,0,0\n2,3,9,,0\n2,4,9,5,1\n"
    )
    (line,) = dataset_notes(load_dataset(path))
    assert line.startswith(f"every one of the 2 ratings in {path} is 5: the rating model")
    path.write_text("user,item,timestamp,rating\n1,2,100,5\n1,3,200,4.5\n")
    assert dataset_notes(load_dataset(path)) == []
    path.write_text("user,item,timestamp\n1,2,100\n1,3,200\n")
    assert dataset_notes(load_dataset(path)) == []


def test_a_release_file_given_alone_is_read_or_pointed_to(tmp_path: Path) -> None:
    """A MovieLens ratings.csv with no movies.csv beside it was read as a generic file ('has no
    user column user'); movies.csv, movies.dat, users.dat or tags.csv given in place of the
    release were read as ratings ('expected 4 fields ..., found 3', 'no user column')."""
    folder = write_movielens(tmp_path / "ml")
    (folder / "movies.csv").rename(tmp_path / "movies.csv")
    data = load_dataset(folder / "ratings.csv")
    assert data.user.tolist() == [1, 1, 2] and data.rating.tolist() == [4.0, 3.5, 5.0]
    assert data.licence.startswith("MovieLens")
    dat = write_dat_release(tmp_path / "ml-1m")
    for given in (tmp_path / "movies.csv", dat / "movies.dat", dat / "users.dat"):
        with pytest.raises(RecarenaError, match=rf"{given.name} is a MovieLens release's \w+ l"):
            load_dataset(given)


def test_dates_in_a_generic_file(tmp_path: Path) -> None:
    """A Parquet file's date or datetime timestamps are seconds since 1970 (were 'timestamp
    '2000-01-02 00:00:00.000000' is not a number'); a CSV's date text is refused as a date."""
    import datetime as dt

    when = [dt.datetime(2000, 1, 2), dt.datetime(2000, 1, 3, 0, 0, 30)]
    for column in (pl.Series("timestamp", when), pl.Series("timestamp", [w.date() for w in when])):
        frame = pl.DataFrame({"user": [1, 1], "item": [2, 3]}).with_columns(column)
        frame.write_parquet(tmp_path / "x.parquet")
        seconds = load_dataset(tmp_path / "x.parquet").timestamp.tolist()
        assert seconds[0] == 946_771_200.0 and seconds[1] in (946_857_600.0, 946_857_630.0)
    (tmp_path / "x.csv").write_text("user,item,timestamp\n1,2,2000-01-02 10:00\n")
    with pytest.raises(RecarenaError, match=r"x.csv line 2: timestamp '2000-01-02 10:00' is not "):
        load_dataset(tmp_path / "x.csv")
    with pytest.raises(RecarenaError, match=r"a number \(a date: timestamps are seconds since 1"):
        load_dataset(tmp_path / "x.csv")


def test_a_release_without_its_movie_list_is_noted(tmp_path: Path) -> None:
    """A MovieLens copy without movies.csv (or movies.dat, u.item) calibrated without a word,
    every title an id and no genres; a generic file without titles has nothing to note."""
    from recarena.simulator.data.datasets import dataset_notes

    folder = write_movielens(tmp_path / "ml")
    assert dataset_notes(load_dataset(folder)) == []
    (folder / "movies.csv").unlink()
    assert dataset_notes(load_dataset(folder)) == [
        "'ml' has no movie list beside its ratings (movies.csv, movies.dat or u.item): the "
        "titles of its movies are their ids and they have no genres"
    ]
    dat = write_dat_release(tmp_path / "ml-1m")
    (dat / "movies.dat").unlink()
    assert "'ml-1m' has no movie list" in dataset_notes(load_dataset(dat))[0]
    (tmp_path / "x.csv").write_text("user,item,timestamp,rating\n1,2,100,5\n1,3,200,4\n")
    assert dataset_notes(load_dataset(tmp_path / "x.csv")) == []


@pytest.mark.parametrize(
    ("name", "pack", "what"),
    [
        ("ratings.csv", "bz2", "bzip2-compressed"),
        ("ratings.csv", "xz", "xz-compressed"),
        ("ratings.csv", "zip", "a zip archive"),
        ("ratings.dat", "zstd", "zstd-compressed"),
    ],
)
def test_a_ratings_file_packed_under_its_plain_name_is_named(tmp_path, name, pack, what):
    """Was: 'the file is UTF-16 or binary (it holds NUL bytes)', or for a .dat file a field
    count; only gzip is read as it is (and zstd by the CSV reader)."""
    import bz2
    import lzma
    import zipfile

    text = b"userId,movieId,rating,timestamp\n1,10,4,100\n"
    folder = tmp_path / "ml"
    folder.mkdir()
    if pack == "zip":
        with zipfile.ZipFile(folder / name, "w") as archive:
            archive.writestr(name, text)
    elif pack == "zstd":  # one raw block: magic, frame header (single segment), block header
        size = len(text)
        frame = bytes([0x20, size]) + ((size << 3) | 1).to_bytes(3, "little")
        (folder / name).write_bytes(b"\x28\xb5\x2f\xfd" + frame + text)
    else:
        (folder / name).write_bytes((bz2 if pack == "bz2" else lzma).compress(text))
    with pytest.raises(RecarenaError, match=rf"{name}: the file is {what}; unpack it"):
        load_dataset(folder)


@pytest.mark.parametrize("name", ["ratings.csv", "ratings.dat", "u.data"])
def test_ratings_parsed_by_the_reader_or_as_text_are_the_same(
    tmp_path: Path, name: str, monkeypatch
) -> None:
    """Ratings files whose every cell is a finite number are parsed by the CSV reader (a text
    copy of ML-32M's ratings took 11 GB), CRLF endings, spaces, other header letters and
    blank lines at the end included; a file with a cell to name is read as text. Both give
    the same arrays."""
    from recarena.simulator.data import movielens_csv, movielens_dat

    sep = {"ratings.csv": ", ", "ratings.dat": "::", "u.data": "\t"}[name]
    rows = [(1, 10, 4.5, 964982703), (1, 20, 3.0, 964982800.5), (7, 10, 0.5, 5), (2, 30, 5, 6)]
    lines = [sep.join(str(v) for v in row) for row in rows]
    header = ["UserID,movieId, Rating,timestamp"] if name.endswith(".csv") else []
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / name).write_text("\r\n".join(header + lines) + "\r\n\r\n")
    fields = ("userId", "movieId", "rating", "timestamp") if header else ("a", "b", "c", "d")
    if header:
        assert movielens_csv._typed_csv(folder / name, fields, ",") is not None
    else:
        assert movielens_dat._typed_dat((folder / name).read_bytes(), fields, sep) is not None
    typed = load_dataset(folder)
    monkeypatch.setattr(movielens_csv, "_typed_csv", lambda *_: None)
    monkeypatch.setattr(movielens_dat, "_typed_dat", lambda *_: None)
    text = load_dataset(folder)
    for column in ("user", "item", "timestamp", "rating"):
        assert getattr(typed, column).tolist() == getattr(text, column).tolist()
        assert getattr(typed, column).dtype == getattr(text, column).dtype
    assert typed.timestamp.tolist() == [964982703.0, 964982800.5, 5.0, 6.0]


def test_blank_lines_in_generic_and_recbole_files(tmp_path: Path) -> None:
    """Blank lines at the end (CRLF, after a byte-order mark) are read past as in MovieLens
    files, and one between rows is named as such; both were 'line 4: user is empty'."""
    (tmp_path / "x.csv").write_bytes(
        b"\xef\xbb\xbfuser,item,timestamp\r\n1,2,100\r\n1,3,200\r\n\r\n\r\n"
    )
    data = load_dataset(tmp_path / "x.csv")
    assert data.user.tolist() == [1, 1] and data.timestamp.tolist() == [100.0, 200.0]
    (tmp_path / "y.csv").write_text("user,item,timestamp\n1,2,100\n\n1,3,200\n")
    with pytest.raises(RecarenaError, match=r"y.csv line 3: a blank line between rows"):
        load_dataset(tmp_path / "y.csv")
    folder = tmp_path / "rb"
    folder.mkdir()
    (folder / "rb.inter").write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t100\n1\t3\t200\n\n"
    )
    (folder / "rb.item").write_text("item_id:token\ttitle:token_seq\n2\tHeat\n3\tJaws\n\n")
    data = load_dataset(folder)
    assert data.item.tolist() == [2, 3] and data.items["title"].to_list() == ["Heat", "Jaws"]
    (folder / "rb.inter").write_text("user_id:token\titem_id:token\n1\t2\n\n1\t3\n")
    with pytest.raises(RecarenaError, match=r"rb.inter line 3: a blank line between rows"):
        load_dataset(folder)


@pytest.mark.parametrize(
    ("fmt", "needed"),
    [("movielens-dat", "ratings.dat"), ("movielens-100k", "u.data"), ("recbole", "ml.inter")],
)
def test_a_format_the_folder_does_not_hold_names_the_one_it_does(tmp_path, fmt, needed) -> None:
    """Was: 'MovieLens ratings file not found: .../ratings.dat; download MovieLens' for a CSV
    release given --format movielens-dat: the release was there."""
    folder = write_movielens(tmp_path / "ml")
    message = f"ml holds no {needed} for format '{fmt}', but reads as format 'movielens': leave"
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(folder, fmt)
    assert load_dataset(folder, "movielens").n_interactions == 3


def zip_release(archive: Path, folder: Path, inside: str = "ml-1m", extra: dict | None = None):
    """``folder``'s files packed as GroupLens packs a release (``inside/<file>``), plus
    ``extra`` members (name -> bytes)."""
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for file in sorted(folder.iterdir()):
            packed.write(file, f"{inside}/{file.name}" if inside else file.name)
        for name, payload in (extra or {}).items():
            packed.writestr(name, payload)
    return archive


def test_a_release_zip_is_read_as_its_folder(tmp_path: Path) -> None:
    """``--dataset ml-1m.zip`` (the archive as downloaded) reads the release it holds, the same
    data as the unpacked folder; was refused with 'unpack it'. The tag genome and other files
    no loader reads stay packed, and nothing is left behind in the temporary folder."""
    import tempfile

    folder = write_dat_release(tmp_path / "ml-1m")
    archive = zip_release(
        tmp_path / "download.zip", folder, extra={"ml-1m/genome-scores.csv": b"x" * 1000}
    )
    before = set(Path(tempfile.gettempdir()).glob("recarena-release-*"))
    data, plain = load_dataset(archive), load_dataset(folder)
    assert data.name == "ml-1m"
    for name in ("user", "item", "timestamp", "rating"):
        assert np.array_equal(getattr(data, name), getattr(plain, name)), name
    assert data.items.equals(plain.items) and data.users is not None
    assert data.users.equals(plain.users)
    assert data.source == f"{archive}:ml-1m/ratings.dat"
    assert set(Path(tempfile.gettempdir()).glob("recarena-release-*")) == before
    flat = zip_release(tmp_path / "ml-flat.zip", folder, inside="")
    assert load_dataset(flat).name == "ml-flat"  # files at the root: named after the archive


def test_a_release_zip_error_names_the_member(tmp_path: Path) -> None:
    folder = write_dat_release(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_bytes(b"1::10::4::100\n1::20::x::50\n")
    archive = zip_release(tmp_path / "ml-1m.zip", folder)
    with pytest.raises(RecarenaError) as caught:
        load_dataset(archive)
    line = str(caught.value)
    assert f"{archive}:ml-1m/ratings.dat line 2" in line and "recarena-release-" not in line


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"readme.txt": b"hello"}, "a zip archive with no MovieLens release in it"),
        (
            {"a/ratings.csv": b"userId,movieId,rating,timestamp\n", "b/u.data": b"1\t2\t3\t4\n"},
            "the zip archive holds more than one release (a, b)",
        ),
    ],
)
def test_a_zip_without_one_release_is_one_line(tmp_path: Path, members, message) -> None:
    import zipfile

    archive = tmp_path / "odd.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for name, payload in members.items():
            packed.writestr(name, payload)
    with pytest.raises(RecarenaError, match=re.escape(message)):
        load_dataset(archive)


def test_a_damaged_zip_is_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    archive.write_bytes(b"PK\x03\x04" + b"\0" * 64)  # a zip's first bytes, nothing after
    with pytest.raises(RecarenaError, match="not a readable zip archive"):
        load_dataset(archive)


@pytest.mark.parametrize("inside", ["../", "ml/../"])
def test_a_release_zip_whose_members_climb_out_of_their_folder(tmp_path: Path, inside) -> None:
    """A member named ``../ratings.csv`` is read into the temporary folder, under the archive's
    name, never beside it; was 'File exists: /tmp/recarena-release-.../..'."""
    import zipfile

    folder = write_dat_release(tmp_path / "ml-1m")
    archive = tmp_path / "climb.zip"
    with zipfile.ZipFile(archive, "w") as packed:
        for file in folder.iterdir():
            packed.writestr(inside + file.name, file.read_bytes())
    data = load_dataset(archive)
    assert data.name == "climb"
    assert np.array_equal(data.rating, load_dataset(folder).rating)
    assert not (tmp_path / "ratings.dat").exists()


def test_an_encrypted_release_zip_is_one_line(tmp_path: Path) -> None:
    """A password-protected archive (zip's encryption flag) is named as such; was an internal
    RuntimeError from zipfile, exit 1."""
    folder = write_dat_release(tmp_path / "ml-1m")
    archive = zip_release(tmp_path / "ml-1m.zip", folder)
    packed = bytearray(archive.read_bytes())
    for header, flags in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central entries
        at = packed.find(header)
        while at >= 0:
            packed[at + flags] |= 1
            at = packed.find(header, at + 4)
    archive.write_bytes(bytes(packed))
    with pytest.raises(RecarenaError) as caught:
        load_dataset(archive)
    assert str(caught.value).startswith(f"{archive}:ml-1m/")
    assert "encrypted" in str(caught.value) and "\n" not in str(caught.value)


def test_a_release_zip_given_the_csv_format_is_named_as_a_zip(tmp_path: Path) -> None:
    """Was: 'ml-1m.zip is a folder; the csv format reads one file', of its unpacked release."""
    archive = zip_release(tmp_path / "ml-1m.zip", write_dat_release(tmp_path / "ml-1m"))
    with pytest.raises(RecarenaError) as caught:
        load_dataset(archive, "csv")
    assert str(caught.value).startswith(f"{archive} is a zip archive; the csv format reads one")
    assert "recarena-release-" not in str(caught.value)
