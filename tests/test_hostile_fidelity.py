"""A careless user's MovieLens-like folder or generic log given to ``calibrate`` and
``fidelity``: each case was a second line on a refusal or a silent gap in the report before its
fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from recarena.simulator.core.errors import RecarenaError
from tests.cli_in_process import assert_refused, cli


def _release(folder: Path, users: int, per_user: int = 15) -> Path:
    """A MovieLens CSV release of ``users`` users, each rating ``per_user`` of 50 movies an
    hour apart, one user a day."""
    folder.mkdir(parents=True)
    rows = [
        f"{u},{(u * 7 + j * 3) % 50 + 1},{(u + j) % 5 + 1},{1_000_000_000 + 86_400 * u + 3600 * j}"
        for u in range(1, users + 1)
        for j in range(per_user)
    ]
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    return folder


def test_calibrate_refusing_a_budget_sample_is_one_line(tmp_path):
    """Was: '--max-ratings 14' kept one user of 60, printed 'note: sampled 1 of 60 users ...'
    and then 'error: ... too small to calibrate: 1 users': two lines for one refusal. The sample
    is now said inside the error line (as fidelity says it), and the note comes only after a fit."""
    release = _release(tmp_path / "ml", users=60)
    out = tmp_path / "pop.parquet"
    code, stderr = cli("calibrate", str(release), "-o", str(out), "--max-ratings", "14")
    assert_refused(code, stderr, "too small to calibrate: 1 users")
    assert (
        "(sampled 1 of 60 users (15 of 900 ratings): no user's ratings fit the budget of 14 "
        "ratings, so the first user drawn is kept whole" in stderr
    )  # was '... to fit the budget of 14 ratings', of a sample of 15
    assert not out.exists()


def test_fidelity_on_data_without_ratings_says_check_2_is_left_out(tmp_path):
    """Was: a generic log of views with no rating column ran checks 1 and 3 and wrote a report
    with no check 2 rows and not a word about it, on stderr or in fidelity.md: a report of two
    checks read as the whole report. A note now says check 2 is left out, and why."""
    from recarena.analysis.fidelity.ranking import ArmSpec
    from recarena.analysis.fidelity.report import FidelityConfig, write_report

    rows = [
        f"{u},{(u * 7 + j * 3) % 50},{1_000_000_000 + 86_400 * u + 3600 * j}"
        for u in range(60)
        for j in range(15)
    ]
    log = tmp_path / "views.csv"
    log.write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    cfg = FidelityConfig(
        dataset=str(log),
        format="csv",
        topics=1,
        n_boot=20,
        calibration_epochs=2,
        arms=(ArmSpec("random", "random"), ArmSpec("popularity", "popularity")),
        simulation_days=0.5,
    )
    result = write_report(tmp_path / "report", cfg, workers=1)
    note = "check 2 (rating distribution) is left out: dataset 'views' has no ratings"
    assert result["rating_distribution"] == []
    assert any(n.startswith(note) for n in result["dataset"]["notes"])
    assert f"Note: {note}" in (tmp_path / "report" / "fidelity.md").read_text()


def test_fidelity_refuses_data_with_no_liked_held_out_rating_before_calibrating(
    tmp_path, monkeypatch
):
    """Every rating 1-3 stars: check 1 asks about liked (4 stars or more) held-out movies, and
    there are none. Was: refused only after the calibration had run (minutes on a large
    release); the split says it now, and the calibration never starts."""
    import recarena.analysis.fidelity.report as report

    def never(*args, **kwargs):
        raise AssertionError("calibrated a dataset the checks cannot score")

    monkeypatch.setattr(report, "calibrate", never)
    release = tmp_path / "low"
    release.mkdir()
    rows = [
        f"{u},{(u * 7 + j * 3) % 50 + 1},{(u + j) % 3 + 1},{1_000_000_000 + 86_400 * u + 3600 * j}"
        for u in range(1, 61)
        for j in range(15)
    ]
    (release / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(release), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(code, stderr, "dataset 'low': no held-out interaction is liked")
    assert not out.exists()


def test_fidelity_on_a_log_without_clicks_names_the_clicks(tmp_path):
    """A generic log whose click column is 0 on every row (exposures, no consumption) was
    refused with 'no user has two or more interactions', of users with 15 interactions each:
    only clicks are split, and the line now says so."""
    rows = [
        f"{u},{(u * 7 + j * 3) % 50},{1_000_000_000 + 86_400 * u + 3600 * j},0"
        for u in range(60)
        for j in range(15)
    ]
    log = tmp_path / "shown.csv"
    log.write_text("user,item,timestamp,click\n" + "\n".join(rows) + "\n")
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(log), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(
        code, stderr, "no user has two or more consumptions (0 of its 900 interactions are clicks)"
    )
    assert not out.exists()


def test_fidelity_refuses_data_with_nothing_unseen_before_calibrating(tmp_path, monkeypatch):
    """Every user rated every one of the 15 movies: check 1 mixes liked held-out movies with
    movies the user never rated, and there are none. Was: refused by check 1 only after the
    calibration had run (minutes on a large release); the split says it now."""
    import recarena.analysis.fidelity.report as report

    def never(*args, **kwargs):
        raise AssertionError("calibrated a dataset the checks cannot score")

    monkeypatch.setattr(report, "calibrate", never)
    release = tmp_path / "full"
    release.mkdir()
    rows = [
        f"{u},{(j * 7 + u) % 15 + 1},{(u + j) % 5 + 1},{1_000_000_000 + 86_400 * u + 3600 * j}"
        for u in range(1, 61)
        for j in range(15)
    ]
    (release / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + "\n".join(rows))
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(release), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(
        code,
        stderr,
        "dataset 'full': every user with a liked held-out movie has rated all 15 movies, so "
        "check 1 has no unseen movie to ask about",
    )
    assert not out.exists()


def test_an_empty_rating_on_a_consumption_is_refused_with_its_line(tmp_path):
    """A generic log's rating cell left empty on a consumption (no click column, or click 1) was
    read as NaN, which check 1 counted as 'not liked' and check 2 left out, without a word.
    Only an exposure (click 0) may be without a rating, as docs/guide/real-data.md says; any
    other empty rating is one line naming the file, the line and the column."""
    rows = [
        f"{u},{(u * 7 + j * 3) % 50},{1_000_000_000 + 86_400 * u + 3600 * j},{(u + j) % 5 + 1}"
        for u in range(60)
        for j in range(15)
    ]
    rows[6] = rows[6].rsplit(",", 1)[0] + ","  # line 8 of the file: the header is line 1
    log = tmp_path / "views.csv"
    log.write_text("user,item,timestamp,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(log), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(code, stderr, f"{log} line 8: rating is empty")
    assert not out.exists()
    clicked = tmp_path / "clicked.csv"
    clicked.write_text("user,item,timestamp,rating,click\n1,2,100,,0\n1,3,200,4,1\n2,3,9,,1\n")
    code, stderr = cli("calibrate", str(clicked), "-o", str(tmp_path / "pop.parquet"))
    assert_refused(code, stderr, f"{clicked} line 4: rating is empty on a click (click 1)")
    inter = tmp_path / "rb"
    inter.mkdir()
    (inter / "rb.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n1\t2\t4\t100\n1\t3\t\t200\n"
    )
    code, stderr = cli("calibrate", str(inter), "-o", str(tmp_path / "pop.parquet"))
    assert_refused(code, stderr, f"{inter / 'rb.inter'} line 3: rating is empty")
    assert not (tmp_path / "pop.parquet").exists()


def _old_report(folder: Path) -> dict[str, str]:
    """A previous run's three report files in ``folder``, each holding 'old <name>'."""
    folder.mkdir(parents=True, exist_ok=True)
    old = {
        name: f"old {name}\n" for name in ("fidelity.json", "fidelity.md", "fidelity.config.yaml")
    }
    for name, text in old.items():
        (folder / name).write_text(text)
    return old


def test_a_stop_while_fidelity_publishes_leaves_no_mix_of_reports(tmp_path, monkeypatch):
    """Was: the three files were moved into place one at a time, so a Ctrl-C (or SIGTERM)
    between two moves left this run's fidelity.json beside the last run's fidelity.md. The
    stop is now held for the microseconds of the renames: the report is the old one or the
    new one, whole."""
    import contextlib
    import os
    import signal

    from recarena.analysis.fidelity.ranking import ArmSpec
    from recarena.analysis.fidelity.report import FidelityConfig, write_report

    release = _release(tmp_path / "ml", users=60)
    out = tmp_path / "report"
    old = _old_report(out)
    real = {"rename": os.rename, "replace": os.replace}

    def stopping(kind):
        def move(src, dst, *args, **kwargs):
            if Path(dst) == out / "fidelity.md":
                signal.raise_signal(signal.SIGINT)  # as Ctrl-C between two files
            return real[kind](src, dst, *args, **kwargs)

        return move

    monkeypatch.setattr(os, "rename", stopping("rename"))
    monkeypatch.setattr(os, "replace", stopping("replace"))
    cfg = FidelityConfig(
        dataset=str(release),
        topics=1,
        n_boot=20,
        calibration_epochs=2,
        arms=(ArmSpec("random", "random"), ArmSpec("popularity", "popularity")),
        simulation_days=0.5,
    )
    with contextlib.suppress(KeyboardInterrupt):  # the old code's stop, between two files
        write_report(out, cfg, workers=1)
    now = {name: (out / name).read_text() for name in old}
    assert now == old or not any(now[name] == old[name] for name in old), now
    assert sorted(p.name for p in out.iterdir()) == sorted(old)  # no staged file left


def test_fidelity_refuses_a_report_file_that_is_a_folder_before_calibrating(tmp_path, monkeypatch):
    """Was: -o DIR whose fidelity.md is a folder ran every check, replaced fidelity.json and
    then failed on fidelity.md ('Is a directory'): minutes of work, and a new fidelity.json
    beside an old report. Now refused before anything runs, the old files untouched."""
    import recarena.analysis.fidelity.report as report

    def never(*args, **kwargs):
        raise AssertionError("calibrated for a report that cannot be written")

    monkeypatch.setattr(report, "calibrate", never)
    release = _release(tmp_path / "ml", users=60)
    out = tmp_path / "report"
    old = _old_report(out)
    (out / "fidelity.md").unlink()
    (out / "fidelity.md").mkdir()
    code, stderr = cli(
        "fidelity", "--dataset", str(release), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(code, stderr, f"--output {out}: {out / 'fidelity.md'} is a directory")
    assert (out / "fidelity.json").read_text() == old["fidelity.json"]


def test_publish_puts_the_old_files_back_when_a_rename_fails(tmp_path, monkeypatch):
    """An error among the renames (a disk gone read-only) restores every old file and removes
    the staged ones: one error line, the folder as it was."""
    import os

    from recarena.simulator.core.publish import publish, staging_name

    targets = [tmp_path / "a.json", tmp_path / "b.md", tmp_path / "c.npz"]
    for path in targets[:2]:
        path.write_text(f"old {path.name}")
    staged = {t: staging_name(t, "x") for t in targets[:2]}
    for target, path in staged.items():
        path.write_text(f"new {target.name}")
    real = os.rename

    def failing(src, dst):
        if Path(dst) == targets[1] and Path(src) == staged[targets[1]]:
            raise OSError(30, "Read-only file system", str(dst))
        return real(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    files = {**staged, targets[2]: None}
    with pytest.raises(RecarenaError, match="cannot write .*b.md \\(Read-only file system\\)"):
        publish(files, "--output x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.md"]
    assert [t.read_text() for t in targets[:2]] == ["old a.json", "old b.md"]


def test_a_stop_while_calibrate_writes_leaves_the_old_population(tmp_path, monkeypatch):
    """Was: calibrate -o wrote its Parquet files in place, one after the other, so a stop while
    the items file was written left this fit's users beside the last fit's items (and the
    save ran outside the stop guard: no 'nothing written' line). Now the files are written
    under a hidden folder and published together: the old population stays as it was."""
    import pyarrow.parquet as pq

    from recarena.simulator.runner.stopping import Interrupted

    release = _release(tmp_path / "ml", users=60)
    out = tmp_path / "pop.parquet"
    old = {
        out: b"PAR1 old users",
        tmp_path / "pop.items.parquet": b"PAR1 old items",
        tmp_path / "pop.json": b"{}",
    }
    for path, data in old.items():
        path.write_bytes(data)
    real = pq.write_table
    calls = []

    def stopped_on_the_second(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise Interrupted("SIGTERM")
        return real(*args, **kwargs)

    monkeypatch.setattr(pq, "write_table", stopped_on_the_second)
    code, stderr = cli("calibrate", str(release), "-o", str(out), "--topics", "2")
    assert code == 130, stderr
    assert stderr.strip().splitlines()[-1].startswith("interrupted (SIGTERM): nothing written")
    assert {path: path.read_bytes() for path in old} == old
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ml",
        "pop.items.parquet",
        "pop.json",
        "pop.parquet",
    ]


def test_a_generic_log_reads_1_and_1_0_as_one_user(tmp_path):
    """A generic log exported by a tool that wrote some ids as floats ('1.0' beside '1') read
    them as two users (text ids), splitting one user's history in two without a word; ids that
    are all whole numbers are now read as numbers, as a MovieLens release's are."""
    from recarena.simulator.data.datasets import load_dataset

    log = tmp_path / "mixed.csv"
    log.write_text("user,item,timestamp\n1,5,100\n1.0,6,200\n2,5.0,300\n1e1,5,400\n")
    data = load_dataset(log, "csv")
    assert data.user.tolist() == [1, 1, 2, 10] and data.item.tolist() == [5, 6, 5, 5]
    log.write_text("user,item,timestamp\nu1,5,100\n1.0,6,200\n1.5,6,200\n")  # text ids stay text
    assert load_dataset(log, "csv").user.tolist() == ["u1", "1.0", "1.5"]


def test_a_rating_off_the_star_scale_in_a_generic_log_is_named_by_its_line(tmp_path):
    """A generic log's rating of 10 stars was refused by the calibration as 'interaction 402'
    of fidelity's training split (the file's line 502), and one among the held-out rows was
    never refused at all (check 1 counted it as liked). The reader now names the file and the
    line, as it does a MovieLens release's; an exposure's rating (click 0) is never read."""
    from recarena.simulator.data.datasets import load_dataset

    rows = [
        f"{u},{(u * 7 + j * 3) % 50 + 1},{1_000_000_000 + 86_400 * u + 3600 * j},{(u + j) % 5 + 1}"
        for u in range(1, 61)
        for j in range(15)
    ]
    rows[500] = rows[500].rsplit(",", 1)[0] + ",10"
    log = tmp_path / "ten.csv"
    log.write_text("user,item,timestamp,rating\n" + "\n".join(rows) + "\n")
    out = tmp_path / "report"
    code, stderr = cli(
        "fidelity", "--dataset", str(log), "-o", str(out), "-q", "--arms", "random,popularity"
    )
    assert_refused(
        code, stderr, f"{log} line 502: rating 10 is outside the 0.5-5 star scale the calibration"
    )
    assert not out.exists()
    shown = tmp_path / "shown.csv"
    shown.write_text("user,item,timestamp,rating,click\n1,2,100,0,0\n1,3,200,4,1\n2,3,9,0,1\n")
    with pytest.raises(RecarenaError, match=re.escape(f"{shown} line 4: rating 0 is outside")):
        load_dataset(shown)


def test_a_generic_log_with_an_event_written_twice_is_refused(tmp_path):
    """A log appended to itself (every consumption twice, same user, item and second) ran
    fidelity to its end without a word: each held-out movie was also a training one, so every
    recommender, which never shows a user what they consumed, scored as if blind (random came
    first by real NDCG@10). The same consumption at the same second is now refused with both
    lines, as a MovieLens release's repeated rating is; a re-watch at another time, or an
    exposure beside its click, is read."""
    from recarena.simulator.data.datasets import load_dataset

    rows = [f"{u},{(u * 7 + j * 3) % 50 + 1},{1_000_000_000 + 3600 * j},4" for u in range(1, 4)
            for j in range(5)]  # fmt: skip
    log = tmp_path / "twice.csv"
    log.write_text("user,item,timestamp,rating\n" + "\n".join(rows + rows) + "\n")
    with pytest.raises(
        RecarenaError,
        match=re.escape(f"{log} line 17: user 1 consumed item 8 at 1000000000 again (first on "
                        "line 2)"),
    ):  # fmt: skip
        load_dataset(log)
    log.write_text(
        "user,item,timestamp,rating,click\n1,2,100,0,0\n1,2,100,4,1\n1,2,500,4,1\n2,2,100,4,1\n"
    )
    assert load_dataset(log).n_interactions == 4


def test_calibrate_refuses_to_write_over_the_parquet_log_it_reads(tmp_path):
    """Was: 'calibrate log.parquet -o log.parquet' fitted, then wrote the population over the
    user's own log (a Parquet file, so the check against writing over a dataset let it pass).
    Refused now before the fit, the log untouched."""
    import polars as pl

    rows = [(u, (u * 7 + j * 3) % 50 + 1, 1_000_000_000 + 86_400 * u + 3600 * j, 4)
            for u in range(1, 61) for j in range(15)]  # fmt: skip
    log = tmp_path / "log.parquet"
    pl.DataFrame(rows, schema=["user", "item", "timestamp", "rating"], orient="row").write_parquet(
        log
    )
    before = log.read_bytes()
    code, stderr = cli("calibrate", str(log), "-o", str(log))
    assert_refused(code, stderr, f"--output {log}: {log} is the dataset being calibrated")
    assert log.read_bytes() == before
    items = tmp_path / "x.items.parquet"
    log.rename(items)  # the items file beside -o x.parquet
    code, stderr = cli("calibrate", str(items), "-o", str(tmp_path / "x.parquet"))
    assert_refused(code, stderr, f"{items} is the dataset being calibrated")
    assert items.read_bytes() == before
    code, stderr = cli("calibrate", "d" * 300, "-o", str(tmp_path / "x.parquet"))
    assert_refused(code, stderr, "dataset ddd")  # a name the OS cannot look up: the loader's line


def test_held_out_repeats_of_training_movies_are_noted():
    """A log of re-watches (a held-out movie the user consumed in training too) ran check 3
    without a word, though no recommender can show a user what they consumed: every such row
    is a miss of every arm. A note now counts them."""
    import numpy as np

    from recarena.analysis.fidelity.checks import Split
    from recarena.analysis.fidelity.report import _repeats_note

    def split(test_item):
        return Split(
            train=None,  # type: ignore[arg-type]
            train_user=np.array([0, 0, 1]),
            train_item=np.array([3, 4, 3]),
            train_time=np.zeros(3),
            train_rating=None,
            test_user=np.array([0, 1, 1]),
            test_item=np.array(test_item),
            test_rating=None,
        )

    assert _repeats_note(split([5, 4, 6])) == []
    (note,) = _repeats_note(split([3, 3, 6]))
    assert note.startswith("2 of the 3 held-out interactions are of a movie the same user")


def test_a_file_of_no_known_kind_is_named_as_a_file(tmp_path):
    """A report or a JSON file given as the dataset was 'cannot tell the format of
    fidelity.json (no ratings.csv, ratings.dat, u.data or <name>.inter in it)', as if it were a
    folder; the line now says which file names are read."""
    given = tmp_path / "fidelity.json"
    given.write_text("{}")
    code, stderr = cli("fidelity", "--dataset", str(given), "-o", str(tmp_path / "out"), "-q")
    assert_refused(
        code,
        stderr,
        f"cannot tell the format of {given} (a file, not named *.csv, *.parquet, *.dat, "
        "*.inter, u.data or *.zip)",
    )


def test_a_generic_log_named_ratings_csv_is_pointed_to_the_csv_format(tmp_path):
    """A generic log saved as ratings.csv in a folder was read as a MovieLens release and
    refused with "header has no column 'userId'; found ['user', 'item', ...]", which did not
    say how to read it: the line now says to give the file with --format csv."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "ratings.csv").write_text("user,item,timestamp,rating\n1,2,3,4\n")
    code, stderr = cli("calibrate", str(folder), "-o", str(tmp_path / "pop.parquet"))
    assert_refused(
        code, stderr, f"found ['user', 'item', 'timestamp', 'rating'] (a generic log? give "
        f"{folder / 'ratings.csv'} with --format csv)"
    )  # fmt: skip


def test_a_release_file_that_is_a_pipe_or_a_folder_is_named_as_such(tmp_path):
    """A release's ratings.csv that is a named pipe was 'not a file (a directory or a
    device)'; the line now says which of the three it is."""
    import os

    release = tmp_path / "ml"
    release.mkdir()
    os.mkfifo(release / "ratings.csv")
    code, stderr = cli("calibrate", str(release), "-o", str(tmp_path / "pop.parquet"))
    assert_refused(code, stderr, f"{release / 'ratings.csv'}: not a file (a named pipe)")
    dat = tmp_path / "ml-1m"
    (dat / "ratings.dat").mkdir(parents=True)
    code, stderr = cli("calibrate", str(dat), "-o", str(tmp_path / "pop.parquet"))
    assert_refused(code, stderr, f"{dat / 'ratings.dat'}: not a file (a directory)")
