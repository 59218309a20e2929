"""Bad scenarios, generated: validate refuses each with one line, and run creates nothing.

Every category the hostile review found (absurd sizes, non-finite numbers, alias bombs,
duplicate keys, unsafe names, missing/corrupt/non-numeric data files, huge sweeps, bad
recommender import paths, carousels larger than the catalog, absurd ticks, a mixed population
without its panel) is generated with hypothesis and run through the real CLI entry point
(``main([...])``, in-process: exit code, stderr, no directory). A handful of representatives also
go through a subprocess, as a user runs it.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.preflight import preflight
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_in_process import assert_refused, cli, cli_out
from tests.cli_subprocess import recarena

SETTINGS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def base_doc() -> dict:
    return {
        "name": "hostile",
        "replicates": 1,
        "horizon": {"days": 1, "tick_seconds": 300},
        "catalog": {"initial_items": 40, "topics": 4},
        "population": {"users": 30},
        "creators": {"count": 2},
        "arms": [
            {"name": "random", "recommender": {"type": "random"}},
            {"name": "popularity", "recommender": {"type": "popularity"}},
        ],
        "output": {"dir": "{dir}/runs"},
    }


@dataclass
class Case:
    """A scenario file's text (``{dir}`` is the case's own directory) and files beside it."""

    text: str
    files: dict[str, bytes] = field(default_factory=dict)
    fragment: str = ""
    """Text the error line must contain."""
    raw: bytes | None = None
    """The file's bytes, when they are not text."""


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


# ------------------------------------------------------------------------------ categories
@st.composite
def absurd_sizes(draw) -> Case:
    doc = base_doc()
    where = draw(st.sampled_from(["users", "items", "creators"]))
    big = draw(st.integers(10, 15))
    if where == "users":
        doc["population"]["users"] = 10**big
    elif where == "items":
        doc["catalog"]["initial_items"] = 10**big
    else:
        doc["creators"]["count"] = 10**big
    return Case(dump(doc), fragment="this machine has")


MARKER = "__VALUE__"
PARAM_OWNER = {"epsilon": "epsilon_greedy", "half_life_days": "popularity"}
"""Which recommender has the parameter a case writes at arms[1].recommender.params.<name>."""


def with_raw_value(where: str, value: str) -> str:
    """base_doc() as YAML with the token ``value`` written verbatim at ``where`` (a field, a
    section.field, arms[1].recommender.params.<name>, or sweep.<field> as a sweep's second
    value): a marker is dumped and swapped afterwards, so ``.nan`` or ``yes`` reach the parser
    exactly as a user types them."""
    doc = base_doc()
    if where.startswith("arms[1].recommender.params."):
        param = where.rsplit(".", 1)[1]
        doc["arms"][1]["recommender"] = {"type": PARAM_OWNER[param], "params": {param: MARKER}}
    elif where.startswith("sweep."):
        doc["sweep"] = {where.removeprefix("sweep."): [0.1, MARKER]}
    elif "." in where:
        section, key = where.split(".")
        doc.setdefault(section, {})[key] = MARKER
    else:
        doc[where] = MARKER
    return dump(doc).replace(f"'{MARKER}'", MARKER).replace(MARKER, value)


NON_FINITE = [".nan", ".NaN", ".inf", "-.inf", ".Inf", "-.INF", "'nan'", "'-inf'"]


@st.composite
def non_finite(draw) -> Case:
    value = draw(st.sampled_from(NON_FINITE))
    where = draw(
        st.sampled_from(
            [
                "population.temperature",
                "population.no_click_utility",
                "catalog.quality_sd",
                "horizon.days",
                "creators.uploads_per_day",
                "arms[1].recommender.params.epsilon",
                "arms[1].recommender.params.half_life_days",
                "sweep.population.explore_prob",
            ]
        )
    )
    text = with_raw_value(where, value)
    return Case(text, fragment="sweep" if where.startswith("sweep") else where)


@st.composite
def alias_bombs(draw) -> Case:
    fanout = draw(st.integers(8, 15))
    depth = draw(st.integers(6, 9))
    return alias_bomb(fanout, depth, draw(st.sampled_from(["sweep", "params", "description"])))


def alias_bomb(fanout: int, depth: int, target: str) -> Case:
    """fanout^depth values from depth small lines (billion laughs) placed at ``target``."""
    lines = [f"l0: &l0 [{', '.join(['1'] * fanout)}]"]
    for level in range(1, depth):
        refs = ", ".join([f"*l{level - 1}"] * fanout)
        lines.append(f"l{level}: &l{level} [{refs}]")
    top = f"*l{depth - 1}"
    bomb = "\n".join("  " + line for line in lines)
    doc = dump(base_doc())
    if target == "sweep":
        text = f"x-bomb:\n{bomb}\n" + doc + f"sweep:\n  population.explore_prob: {top}\n"
    elif target == "params":
        text = f"x-bomb:\n{bomb}\n" + doc.replace(
            "type: popularity", f"type: popularity\n    params: {{weights: {top}}}"
        )
    else:
        text = f"x-bomb:\n{bomb}\n" + doc + f"description: {top}\n"
    return Case(text, fragment="alias")


@st.composite
def hostile_text(draw) -> Case:
    """Files that are not a small YAML mapping: huge, deeply nested, binary, huge integers."""
    kind = draw(st.sampled_from(["huge", "deep", "binary", "digits", "not_a_mapping"]))
    if kind == "huge":
        return Case("description: " + "a" * draw(st.integers(1_000_001, 1_500_000)) + "\n")
    if kind == "deep":
        depth = draw(st.integers(2_000, 60_000))
        return Case("name: " + "[" * depth + "]" * depth + "\n", fragment="nested")
    if kind == "binary":
        return Case("", raw=b"\xff" + draw(st.binary(max_size=300)), fragment="UTF-8")
    if kind == "digits":
        digits = draw(st.integers(4_400, 50_000))
        return Case(dump(base_doc()) + "seed: " + "7" * digits + "\n", fragment="digits")
    return Case(draw(st.sampled_from(["[1, 2]\n", "just text\n", "42\n"])), fragment="mapping")


@st.composite
def duplicate_keys(draw) -> Case:
    doc = dump(base_doc())
    choice = draw(st.sampled_from(["replicates", "name", "horizon", "population.users"]))
    if choice == "population.users":
        text = doc.replace("  users: 30\n", "  users: 30\n  users: 31\n")
    else:
        line = next(line for line in doc.splitlines() if line.startswith(f"{choice}:"))
        text = doc + line + "\n"
    return Case(text, fragment="duplicate key")


UNSAFE_NAMES = st.one_of(
    st.sampled_from([".", "..", "../up", "a/b", "/abs", ".hidden", "a..b", "end.", "", "sp ace"]),
    st.text(alphabet="abc", min_size=65, max_size=6000),
    st.text(alphabet='/\\:*?"<>| \t\n\x00é', min_size=1, max_size=8),
)


@st.composite
def bad_names(draw) -> Case:
    doc = base_doc()
    name = draw(UNSAFE_NAMES)
    if draw(st.booleans()):
        doc["arms"][0]["name"] = name
        fragment = "arms[0].name"
    else:
        doc["name"] = name
        fragment = "name"
    return Case(dump(doc), fragment=fragment)


@st.composite
def bad_data_files(draw) -> Case:
    doc = base_doc()
    kind = draw(st.sampled_from(["population", "personas", "edges"]))
    problem = draw(st.sampled_from(["missing", "garbage", "text", "columns"]))
    garbage = b"\xff" + draw(st.binary(max_size=200))  # never a valid CSV/Parquet/edge list
    files: dict[str, bytes] = {}
    if kind == "population":
        doc["population"] = {"from": "calibrated", "path": "{dir}/pop.parquet"}
        if problem != "missing":
            files["pop.parquet"] = garbage if problem == "garbage" else b"user_id,taste\n1,a\n"
            files["pop.items.parquet"] = garbage
    elif kind == "personas":
        doc["population"] = {
            "users": 30,
            "model": "mixed",
            "llm_panel": {"users": 2, "personas": {"source": "data", "path": "{dir}/ratings.csv"}},
        }
        files["movies.csv"] = b"movieId,title,genres\n1,A (1999),Drama\n2,B (2001),Comedy\n"
        if problem == "garbage":
            files["ratings.csv"] = garbage
        elif problem == "text":
            files["ratings.csv"] = b"userId,movieId,rating\n1,1,4.0\n1,2,lots\n2,1,3.5\n"
        elif problem == "columns":
            files["ratings.csv"] = b"user,item,stars\n1,1,4\n"
    else:
        doc["population"]["social"] = {"graph": {"type": "edge_list", "path": "{dir}/edges.txt"}}
        content = {"garbage": garbage, "text": b"0 1\n1 two\n", "columns": b"0 1\n5 999\n"}
        if problem != "missing":
            files["edges.txt"] = content[problem]
    return Case(dump(doc), files)


@st.composite
def huge_sweeps(draw) -> Case:
    doc = base_doc()
    lengths = draw(st.lists(st.integers(10, 60), min_size=3, max_size=4))
    paths = [
        "population.explore_prob",
        "population.temperature",
        "population.taste_scale",
        "population.novelty_weight",
    ]
    doc["sweep"] = {
        path: [round(0.01 * (i + 1), 3) for i in range(n)]
        for path, n in zip(paths, lengths, strict=False)
    }
    size = 1
    for n in lengths:
        size *= n
    if size <= 10_000:
        doc["sweep"]["population.explore_prob"] = [round(0.001 * i, 4) for i in range(1000)]
    return Case(dump(doc), fragment="points exceeds")


@st.composite
def bad_recommender_paths(draw) -> Case:
    doc = base_doc()
    target = draw(
        st.sampled_from(
            [
                ".foo:Bar",
                "..x:Y",
                "foo:",
                ":Bar",
                "a b:C",
                "no_such_module_xyz:Thing",
                "tests.slate_plugins:Missing",
                "tests.slate_plugins:",
                "json:loads",
            ]
        )
    )
    doc["arms"][1]["recommender"]["type"] = target
    return Case(dump(doc), fragment="arms[1].recommender.type")


@st.composite
def oversized_pages(draw) -> Case:
    doc = base_doc()
    items = draw(st.integers(1, 30))
    doc["catalog"]["initial_items"] = items
    if draw(st.booleans()):
        rows = draw(st.integers(1, 50))
        cols = draw(st.integers(items // rows + 1, 100))
        doc["surface"] = {"type": "carousel", "rows": [{"theme": "personalized"}] * rows}
        doc["surface"]["cols"] = cols
    else:
        doc["surface"] = {"k": draw(st.integers(items + 1, 200))}
    return Case(dump(doc), fragment="initial items")


@st.composite
def absurd_clock(draw) -> Case:
    doc = base_doc()
    doc["horizon"] = {
        "days": draw(st.integers(120, 3650)),
        "tick_seconds": draw(st.floats(1e-6, 0.5, allow_nan=False)),
    }
    return Case(dump(doc), fragment="ticks")


@st.composite
def panel_without_spec(draw) -> Case:
    doc = base_doc()
    doc["population"]["model"] = "mixed"
    doc["population"]["users"] = draw(st.integers(1, 5000))
    return Case(dump(doc), fragment="llm_panel")


YES_NO = ["true", "false", "yes", "no", "on", "off", "True", "NO"]


@st.composite
def yes_no_numbers(draw) -> Case:
    """YAML booleans where a number belongs (lax validation used to read them as 1 or 0)."""
    value = draw(st.sampled_from(YES_NO))
    where = draw(
        st.sampled_from(
            ["seed", "replicates", "population.users", "catalog.topics", "horizon.days"]
            + ["population.temperature", "arms[1].recommender.params.half_life_days"]
        )
    )
    text = with_raw_value(where, value)
    # false reads as 0, which a lower bound may refuse first; either way the field is named
    return Case(text, fragment=where)


@st.composite
def absurd_magnitudes(draw) -> Case:
    """Finite but absurd rates, scales and exponents, and temperatures that overflow a softmax."""
    where, value = draw(
        st.sampled_from(
            [
                ("population.visits_per_day", 1e300),
                ("population.taste_scale", 1e12),
                ("population.no_click_utility", -1e200),
                ("population.temperature", 1e-300),
                ("population.position_decay", 1e6),
                ("catalog.topic_skew", 1e6),
                ("catalog.quality_sd", 1e300),
                ("creators.uploads_per_day", 1e300),
            ]
        )
    )
    doc = base_doc()
    section, key = where.split(".")
    doc[section][key] = value
    return Case(dump(doc), fragment=where)


@st.composite
def lone_surrogates(draw) -> Case:
    """Text with a lone surrogate (YAML's "\\uD800" escape): not Unicode, so a run wrote it
    into its manifest and resolved scenario and `report` failed on it (an internal error)."""
    value = draw(st.sampled_from(['"a\\uD800b"', '"\\uDC80"', '"runs/x\\uDFFF"']))
    where = draw(st.sampled_from(["description", "output.dir", "population.policy", "llm.model"]))
    return Case(with_raw_value(where, value), fragment=f"{where}: not Unicode text")


CATEGORIES = {
    "absurd_sizes": absurd_sizes(),
    "non_finite": non_finite(),
    "alias_bombs": alias_bombs(),
    "duplicate_keys": duplicate_keys(),
    "hostile_text": hostile_text(),
    "bad_names": bad_names(),
    "bad_data_files": bad_data_files(),
    "huge_sweeps": huge_sweeps(),
    "bad_recommender_paths": bad_recommender_paths(),
    "oversized_pages": oversized_pages(),
    "absurd_clock": absurd_clock(),
    "panel_without_spec": panel_without_spec(),
    "yes_no_numbers": yes_no_numbers(),
    "absurd_magnitudes": absurd_magnitudes(),
    "lone_surrogates": lone_surrogates(),
}


# ------------------------------------------------------------------------------- checks
def write_case(case: Case, directory: Path) -> Path:
    for name, content in case.files.items():
        (directory / name).write_bytes(content)
    path = directory / "scenario.yaml"
    if case.raw is not None:
        path.write_bytes(case.raw)
    else:
        path.write_text(case.text.replace("{dir}", str(directory)), encoding="utf-8")
    return path


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_validate_refuses_and_run_creates_nothing(category):
    @SETTINGS
    @given(case=CATEGORIES[category])
    def check(case: Case) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            path = write_case(case, directory)
            before = sorted(p.name for p in directory.iterdir())
            assert_refused(*cli("validate", str(path)), case.fragment)
            out = directory / "out"
            assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)))
            assert sorted(p.name for p in directory.iterdir()) == before  # no runs/, no out/

    check()


def test_huge_population_refused_before_allocating():
    doc = base_doc()
    doc["population"]["users"] = 10**12
    scenario = parse_scenario(doc)
    with pytest.raises(RecarenaError) as caught:
        preflight(scenario, "s.yaml")
    message = str(caught.value)
    assert "needs ~" in message and "10^12 users" in message and "this machine has" in message
    estimate = preflight(scenario, "s.yaml", force=True)  # --force lifts the resource limit
    assert estimate.users == 10**12


def test_a_large_catalog_is_not_refused_for_scores_its_arms_never_hold():
    """Was: every arm counted as holding a [page batch, catalog] score matrix, so 200,000 users
    and 200,000 items with random, popularity and mf (which rank once, hash, or score in
    blocks) were refused as needing ~114 GB; such a cell runs in about 1 GB. An arm that does
    score the whole catalog per page (SASRec here) still counts it."""
    from recarena.simulator.runner.preflight import estimate

    doc = base_doc()
    doc["population"]["users"] = doc["catalog"]["initial_items"] = 200_000
    doc["arms"].append({"name": "mf", "recommender": {"type": "mf"}})
    light = estimate(parse_scenario(doc), None, 1)
    assert light.bytes_per_cell < 2e9
    preflight(parse_scenario(doc), "s.yaml")  # fits this machine
    doc["arms"].append({"name": "sasrec", "recommender": {"type": "sasrec_native"}})
    dense = estimate(parse_scenario(doc), None, 1)
    assert dense.bytes_per_cell > light.bytes_per_cell + 8 * 3 * 200_000 * 100


def test_legitimate_neighbours_still_pass(tmp_path):
    """The limits sit above real scenarios: anchors, dotted names, a carousel that fits, a sweep."""
    text = (
        dump(base_doc()).replace("{dir}", str(tmp_path)).replace("name: random", "name: eps_0.1")
        + "surface: &s {type: carousel, rows: [{theme: personalized}, {theme: new}], cols: 5}\n"
        + "sweep: {population.explore_prob: [0.1, 0.2], population.temperature: [0.5, 1.0]}\n"
    )
    text = text.replace("  - name: popularity", "  - name: popularity\n    surface: *s")
    path = tmp_path / "ok.yaml"
    path.write_text(text, encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr


U = "tests.unbuildable_plugins"


@pytest.mark.parametrize(
    ("where", "value", "fragment"),
    [
        ("population.policy", f"{U}:PolicyRaisesInInit", "cannot be built: ValueError: no policy"),
        ("population.policy", f"{U}:PolicyExitsInInit", "cannot be built: SystemExit: 0"),
        ("creators.strategy", {"type": f"{U}:StrategyExitsInInit"}, "cannot be built: SystemExit"),
        ("surface", {"type": f"{U}:surface_that_exits"}, "cannot be built from them: SystemExit"),
        (
            "population.policy",
            "recarena.agents.users.calibrated_policy:CalibratedUserPolicy",
            "population.policy: the calibrated policy needs a calibrated population",
        ),
    ],
    ids=["policy_raises", "policy_exits", "strategy_exits", "surface_exits", "calibrated_policy"],
)
def test_plugins_whose_construction_fails(tmp_path, where, value, fragment):
    """Was: a user policy whose constructor raised passed validate and failed every cell after
    the run directory was written (exit 1, later 2), among them the calibrated user policy over
    a generated population; a strategy or surface calling sys.exit(0) when built ended validate
    and run with exit 0 and no word. Each is built by validate as a
    cell builds it: one line naming the field, exit 2, nothing written."""
    doc = base_doc()
    section, _, key = where.partition(".")
    (doc[section] if key else doc).__setitem__(key or section, value)
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), f"{where}")
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "recommender",
    [
        {"type": "thompson_beta", "params": {"prior_skips": 1e-300}},
        {"type": "mmr", "params": {"lambda_": 0.0}},
        {"type": "mmr", "params": {"lambda_": 1.0}},
        {"type": "novelty_aware", "params": {"prior_strength": 1e-300}},
    ],
    ids=["thompson_tiny_prior", "mmr_lambda_0", "mmr_lambda_1", "novelty_tiny_prior"],
)
def test_extreme_params_validate_accepts_also_run(tmp_path, recommender):
    """Was: validate passed each, and then a Thompson arm with a tiny prior failed its cell
    (prior + shows - clicks rounded the prior away: ValueError b <= 0, exit 1), and MMR at
    lambda 0 or 1, and novelty_aware with a tiny prior_strength (a novelty weight of 1), printed
    a RuntimeWarning (0 x inf) in the middle of the run's output."""
    doc = base_doc()
    doc["arms"][1] = {"name": "extreme", "recommender": recommender}
    path = write_case(Case(dump(doc)), tmp_path)
    assert cli("validate", str(path))[0] == 0
    code, stderr = cli("run", str(path), "--executor", "local", "-q", "-o", str(tmp_path / "o"))
    assert code == 0, stderr
    assert "Warning" not in stderr and "error" not in stderr, stderr


@pytest.mark.parametrize("kind", ["thompson_linear", "linucb"])
def test_a_ridge_too_small_to_invert_is_refused(tmp_path, kind):
    """Was: ridge 1e-300 (or anything below about 1e-12) passed validate; A = ridge I + sum x x'
    is then singular in float64 and a linear Thompson arm failed every cell (LinAlgError)."""
    doc = base_doc()
    doc["arms"][1] = {"name": "lin", "recommender": {"type": kind, "params": {"ridge": 1e-300}}}
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), "arms[1].recommender.params.ridge: ")
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)))
    assert not out.exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("sweep", "fragment"),
    [
        ({"population.temperature": [0.5, 1.0, 0.5]}, "sweep.population.temperature: 0.5 written"),
        ({"population.users": [10, 10.0]}, "sweep.population.users: 10.0 written more than once"),
        ({"surface": [{"k": 5}, {"k": 5}]}, "sweep.surface: {'k': 5} written more than once"),
        # two spellings the schema reads as one value: were two points of one setting
        ({"population.users": [10, "10"]}, "sweep.population.users: '10' is the same setting"),
        (
            {"surface": [{"k": 5}, {"type": "list", "k": 5}]},
            "sweep.surface: {'type': 'list', 'k': 5} is the same setting as {'k': 5}",
        ),
    ],
    ids=["float", "int_and_float", "section", "int_and_text", "section_with_its_default"],
)
def test_a_sweep_value_written_twice_is_refused(tmp_path, sweep, fragment):
    """Was: each repeated value ran its points again under new point numbers, as if it were
    another setting (two identical rows in every per-point comparison)."""
    doc = base_doc()
    doc["sweep"] = sweep
    path = write_case(Case(dump(doc)), tmp_path)
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)), fragment)
    assert not out.exists() and not (tmp_path / "runs").exists()


# ------------------------------------------------------------------- as a user runs it
@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: alias_bomb(10, 9, "sweep"), "alias"),
        (lambda: Case(dump({**base_doc(), "population": {"users": 10**12}})), "10^12 users"),
        (lambda: Case(dump(base_doc()).replace("name: random", "name: '..'")), "arms[0].name"),
    ],
    ids=["alias_bomb", "huge_population", "dotdot_arm"],
)
def test_representatives_through_the_real_command(tmp_path, make, fragment):
    path = write_case(make(), tmp_path)
    for args in (("validate", str(path)), ("run", str(path), "-o", str(tmp_path / "out"))):
        done = recarena(*args, timeout=120)
        assert_refused(done.returncode, done.stderr, fragment)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("run",), "Missing argument 'FILE'"),
        (("run", "scenarios/quickstart.yaml", "--no-such-option"), "No such option"),
        (("run", "scenarios/quickstart.yaml", "-r", "0"), "--replicates"),
        (("rnu",), "No such command 'rnu'"),
        # was: calibrate's internal error "PosixPath('.') has an empty name" (exit 1), and
        # fidelity wrote fidelity.json, .md and .config.yaml into the working directory
        (("calibrate", "ml-100k", "-o", ""), "'--output' / '-o': an empty path"),
        (("fidelity", "-o", ""), "'--output' / '-o': an empty path"),
        (("fidelity", "-o", "x", "--llm", "--llm-cache", ""), "'--llm-cache': an empty path"),
    ],
)
def test_usage_errors_are_one_line(args, fragment):
    assert_refused(*cli(*args), fragment)


def test_version_and_debug():
    code, _ = cli("--version")
    assert code == 0
    code, stderr = cli("--debug", "validate", "/nonexistent/s.yaml")
    assert (
        code == 2
        and "Traceback" in stderr
        and stderr.strip().splitlines()[-1].startswith("error: scenario file not found")
    )


def test_absurd_periods_are_refused_in_a_short_line():
    """A tiny period used to print its count of refits with a hundred digits."""
    doc = base_doc()
    doc["retrain"] = {"every_days": 1e-300}
    doc["creators"]["period_days"] = 1e-300
    with pytest.raises(RecarenaError) as caught:
        preflight(parse_scenario(doc), "s.yaml")
    message = str(caught.value)
    assert "retrain.every_days" in message and "1e+300 refits" in message
    assert "creators.period_days" in message and len(message) < 400


@pytest.mark.parametrize(
    ("days", "tick_seconds", "sweep"),
    [
        (1e-9, 60, None),  # a fraction of a second
        (30 / 86_400, 60, None),  # half a tick
        (60 / 86_400, 60, None),  # exactly one tick: only tick 0, before any visit starts
        (0.01, 3600, None),  # 864 s of hour-long ticks
        (1, 300, {"horizon.days": [1, 1e-6]}),  # one sweep point
    ],
)
def test_a_horizon_that_ends_before_the_second_tick_is_refused(tmp_path, days, tick_seconds, sweep):
    """Pages are served at ticks 0, tick, 2 tick, ...; a visit starts after 0, so a horizon no
    longer than one tick served no page. It ran, logged no exposure and printed an A/B table
    without its ctr rows."""
    doc = base_doc()
    doc["horizon"] = {"days": days, "tick_seconds": tick_seconds}
    doc["output"]["dir"] = str(tmp_path / "runs")
    if sweep:
        doc["sweep"] = sweep
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc), encoding="utf-8")
    assert_refused(*cli("validate", str(path)), "horizon.days")
    assert_refused(*cli("run", str(path), "-o", str(tmp_path / "out")), "second tick")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_a_horizon_just_past_one_tick_serves_pages(tmp_path):
    doc = base_doc()
    doc["horizon"] = {"days": 61 / 86_400, "tick_seconds": 60}
    doc["population"] = {"users": 500, "visits_per_day": 50}
    doc["arms"] = doc["arms"][:1]
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc).replace("{dir}", str(tmp_path)), encoding="utf-8")
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "-o", str(out), "-q")
    assert code == 0, stderr
    manifest = json.loads((out / "arm=random" / "rep=0" / "manifest.json").read_text())
    assert manifest["rows"]["exposures"] > 0


@pytest.mark.parametrize(
    ("creators", "fragment"),
    [
        ({"count": 2, "uploads_per_day": 1e6}, "~2,000,000 uploads per cell"),
        (
            {"count": 2, "uploads_per_day": 10, "ai": {"initial_share": 0.5, "speedup": 1e6}},
            "creators.ai.speedup: ~20,000,000 uploads",
        ),
        (
            {"count": 2, "join_rate_per_period": 1e6, "period_days": 0.5},
            "~2,000,000 creators joining per cell",
        ),
    ],
)
def test_uploads_or_joins_past_the_limit_are_refused(tmp_path, creators, fragment):
    """Each upload is an event of the clock and each joining creator an agent with its own
    upload process; both passed the memory estimate and a one-day cell of 50 users ran past
    two minutes. Now refused like too many refits, and --force lifts it."""
    doc = base_doc()
    doc["creators"] = creators
    doc["output"]["dir"] = str(tmp_path / "runs")
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc), encoding="utf-8")
    assert_refused(*cli("validate", str(path)), fragment)
    assert not (tmp_path / "runs").exists()
    estimate = preflight(parse_scenario(doc), "s.yaml", force=True)
    assert estimate.uploads > 1_000_000 or estimate.creators > 1_000_000
    doc["creators"] = {"count": 20, "uploads_per_day": 1000}  # 20,000 uploads a day: runs
    preflight(parse_scenario(doc), "s.yaml")


def test_a_metric_no_cell_has_a_value_for_is_named_not_dropped(tmp_path):
    """Users who almost never visit: no exposure, so ctr has no value in any cell. compare left
    its rows out without a word (with --metric ctr it printed an empty table titled "baseline
    ''"), and report failed on the empty table."""
    doc = base_doc()
    doc["population"] = {"users": 30, "visits_per_day": 1e-9}
    doc["metrics"] = ["ctr"]
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc).replace("{dir}", str(tmp_path)), encoding="utf-8")
    out = tmp_path / "out"
    code, stderr = cli("run", str(path), "-o", str(out), "-q")
    assert code == 0, stderr
    assert "warning: ctr: no finished cell has a value" in stderr
    code, stderr = cli("compare", str(out), "-m", "ctr", "-m", "coverage")
    assert code == 0 and stderr.count("warning: ctr: no finished cell has a value") == 1, stderr
    code, stderr = cli("report", str(out), "-o", str(tmp_path / "r.html"))
    assert code == 0, stderr
    assert "ctr: no finished cell has a value" in (tmp_path / "r.html").read_text()
    # every metric asked for without a value: compare printed the warning over no table and
    # exited 0, as if it had compared something
    code, stdout, stderr = cli_out("compare", str(out), "-m", "ctr")
    assert_refused(
        code,
        stderr,
        f"--metric ctr: no finished cell of {out} has a value (undefined in every cell: "
        "nothing logged to divide by",
    )
    assert stdout == ""
    # the reason the scenario gives, for each metric
    code, stdout, stderr = cli_out(
        "compare", str(out), "-m", "conv_success_rate", "-m", "retention_d7"
    )
    assert_refused(
        code,
        stderr,
        "--metric conv_success_rate, retention_d7: no finished cell of "
        f"{out} has a value for any of them (conv_success_rate measures conversations, and no "
        "arm has a conversation surface",
    )
    assert "retention_d7 needs day 7 to be simulated" in stderr and stdout == ""


@pytest.mark.parametrize(
    ("where", "written", "fragment"),
    [
        ("population.users", "062", "population.users: 062 has a leading zero"),
        (
            "seed",
            "-007",
            "seed: -007 has a leading zero, which YAML 1.1 reads as octal and YAML 1.2 as "
            "decimal; write -7 (or quote",
        ),
        ("arms[1].recommender.params.half_life_days", "010", "params.half_life_days: 010"),
        ("sweep.population.users", "030", "sweep.population.users[1]: 030"),
    ],
)
def test_an_integer_with_a_leading_zero_is_refused(tmp_path, where, written, fragment):
    """YAML 1.1 (PyYAML's default) read `users: 062` as octal 50 without a word; YAML 1.2 reads
    62. Neither is clearly meant, so the field is named with the two ways to write it."""
    text = with_raw_value(where, written).replace("{dir}", str(tmp_path))
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    assert_refused(*cli("validate", str(path)), fragment)
    assert_refused(*cli("run", str(path), "-o", str(tmp_path / "out")), fragment)
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_plain_values_are_typed_by_yaml_1_2(tmp_path):
    """`no`, `on`, `1:20` and `2024-01-01` are text (YAML 1.1 made them False, True, 80 and a
    date: an arm named `no` was refused as "Input should be a valid string (got False)" and
    `users: 1:20` ran 80 users); `0o17` is octal, `0x1F` hex, `1e3` a number. The resolved
    scenario saved beside the logs quotes such text, so it reads back the same."""
    from recarena.simulator.core.yaml_safe import dump_yaml, load_yaml

    text = (
        "a: no\nb: on\nc: 1:20\nd: 2024-01-01\ne: 0o17\nf: 0x1F\ng: 1e3\nh: Off\n"
        "i: true\nj: ~\nk: 0\nl: -5\nm: .5\nn: yes\n"
    )
    data = load_yaml(text, "t.yaml")
    assert data == {
        "a": "no", "b": "on", "c": "1:20", "d": "2024-01-01", "e": 15, "f": 31, "g": 1000.0,
        "h": "Off", "i": True, "j": None, "k": 0, "l": -5, "m": 0.5, "n": "yes",
    }  # fmt: skip
    assert load_yaml(dump_yaml(data), "again") == data
    assert yaml.safe_load(dump_yaml(data)) == data  # and a YAML 1.1 reader agrees
    doc = base_doc()
    doc["output"]["dir"] = str(tmp_path / "runs")
    text = dump(doc).replace("name: random", "name: no") + "baseline: no\n"
    path = tmp_path / "s.yaml"
    path.write_text(text, encoding="utf-8")
    code, stderr = cli("validate", str(path))
    assert code == 0, stderr
    scenario = parse_scenario(load_yaml(text, "s.yaml"))
    assert scenario.arms[0].name == "no" and scenario.baseline == "no"
    text = with_raw_value("population.users", "1:20").replace("{dir}", str(tmp_path))
    path.write_text(text, encoding="utf-8")
    assert_refused(*cli("validate", str(path)), "population.users: Input should be a valid integer")


@pytest.mark.parametrize(
    ("where", "written", "fragment"),
    [
        ("output.dir", "~/runs", "output.dir: '~/runs' starts with '~', which a scenario does"),
        ("output.dir", "$HOME/runs", "output.dir: '$HOME/runs' holds $HOME, which a scenario"),
        ("population.path", "~", "population.path: '~' starts with '~'"),
        ("output.dir", "runs/${RUN}/x", "output.dir: 'runs/${RUN}/x' holds ${RUN}"),
    ],
)
def test_a_shell_shorthand_in_a_path_is_refused(tmp_path, monkeypatch, where, written, fragment):
    """Nothing expands `~` or `$VAR` in a scenario: `output.dir: ~/runs` made a folder named
    '~' under the working directory. The line names the field and the path meant."""
    monkeypatch.chdir(tmp_path)
    doc = base_doc()
    section, key = where.split(".")
    doc[section][key] = written
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc), encoding="utf-8")
    assert_refused(*cli("validate", str(path)), fragment)
    assert_refused(*cli("run", str(path), "-q"), fragment)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no '~', no '$HOME'


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"output": {"flush_rows": 10**11}}, "most of it for output.flush_rows: 100,000,000,000"),
        (
            {
                "population": {"users": 3_000_000},
                "arms": [{"name": "mf", "recommender": {"type": "mf", "params": {"dim": 1024}}}],
            },  # noqa: E501
            "most of it for embeddings 1024 wide (an arm's params.dim)",
        ),
    ],
)
def test_a_memory_refusal_names_what_most_of_it_is_for(tmp_path, change, fragment):
    """flush_rows: 10^11 was refused as "needs ~36 TB for 20 users and 41 items": the line
    named the population, not the field to change."""
    doc = base_doc() | change
    doc["output"] = {"dir": str(tmp_path / "runs"), **change.get("output", {})}
    path = tmp_path / "s.yaml"
    path.write_text(dump(doc), encoding="utf-8")
    assert_refused(*cli("validate", str(path)), fragment)
    assert not (tmp_path / "runs").exists()
    doc["output"]["flush_rows"] = 500_000
    doc["population"] = {"users": 20}
    path.write_text(dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(path))  # the named field was the whole problem
    assert code == 0, stderr


@pytest.mark.parametrize("target", ["loop.yaml", "missing.yaml"])
def test_a_scenario_link_to_nothing_is_named_as_a_link(tmp_path, target):
    """A link loop or a dangling link was 'scenario file not found', though the file is there."""
    link = tmp_path / "loop.yaml"
    link.symlink_to(tmp_path / target)
    for command in ("validate", "run"):
        assert_refused(*cli(command, str(link)), "a symbolic link that leads to no file")


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("1: 2\n", 's.yaml: <document>: key 1 is not text; quote it ("1": ...)'),
        ("~: 2\n", "s.yaml: <document>: a key that is empty or null (~, null)"),
        ("sweep: {null: [1, 2]}\n", "s.yaml: sweep: a key that is empty or null"),
        ("x: 1\n", "s.yaml: x: unknown key"),  # a text key: the schema's own line
        # an empty text key was "s.yaml: unknown key" and "population.: unknown key"
        ('"": 2\n', "s.yaml: <document>: a key that is empty or null (~, null)"),
        ("retrain: {every_days: 1, '': 1}\n", "s.yaml: retrain: a key that is empty or null"),
    ],
)
def test_a_key_that_is_not_text_is_named_with_its_mapping(tmp_path, extra, fragment):
    """Was "[1]: Keys should be strings (got 1)" (a path read as a list index) and
    "None: Keys should be strings"."""
    path = tmp_path / "s.yaml"
    path.write_text(dump(base_doc()).replace("{dir}", str(tmp_path)) + extra, encoding="utf-8")
    assert_refused(*cli("validate", str(path)), fragment)
    doc = base_doc()
    doc["arms"][1]["recommender"]["params"] = {7: 1}
    with pytest.raises(RecarenaError, match=r"arms\[1\]\.recommender\.params: key 7 is not text"):
        parse_scenario(doc)
