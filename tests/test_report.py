"""``recarena report``: the numbers behind the figures, the HTML, the CLI, and a real browser.

One tiny run (2 arms x 2 replicates, 2 days, a list arm and a carousel arm, a 3-user LLM panel
answered by a scripted fake endpoint) feeds every test here.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from recarena import analysis
from recarena.analysis.metrics import gini
from recarena.analysis.report import ab_note, ab_rows, build_report, render_html, write_report
from recarena.analysis.report_data import daily_series, lorenz_curve, padded_gini
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.cli_subprocess import recarena
from tests.fake_openai import FakeOpenAI

# a copy outside pytest's tmp dir to look at; not the README picture (that one is of a quickstart)
SCREENSHOT_COPY = Path("/tmp/report_screenshot_tiny.png")

RUN = {
    "name": "tiny-report",
    "seed": 11,
    "replicates": 2,
    "horizon": {"days": 2, "tick_seconds": 180},
    "catalog": {"initial_items": 150, "topics": 6},
    "population": {
        "users": 120,
        "model": "mixed",
        "max_pages": 4,
        "llm_panel": {"users": 2, "reflect_every_sessions": 0},
    },
    "creators": {"count": 4, "uploads_per_day": 3.0},
    "surface": {"k": 4},
    "llm": {"provider": "openai", "model": "fake", "timeout_seconds": 2, "max_retries": 0},
    "arms": [
        {"name": "random", "recommender": {"type": "random"}},
        {
            "name": "pop_rows",
            "recommender": {"type": "popularity"},
            "surface": {
                "type": "carousel",
                "cols": 3,
                "rows": [{"theme": "personalized"}, {"theme": "new"}],
            },
        },
    ],
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    doc = copy.deepcopy(RUN)
    doc["llm"]["cache"] = {"path": str(tmp / "cache.sqlite"), "mode": "auto"}
    with FakeOpenAI(["ok"]) as fake:
        doc["llm"]["base_url"] = fake.base_url
        os.environ.setdefault("OPENAI_API_KEY", "sk-fake")
        return run_experiment(parse_scenario(doc), tmp / "run", executor="local").run_dir


@pytest.fixture(scope="module")
def html(run_dir) -> str:
    return write_report(run_dir).read_text(encoding="utf-8")


# --- the numbers -------------------------------------------------------------------------------


def test_lorenz_curve_by_hand():
    x, y = lorenz_curve(np.array([4, 0, 0, 0]), points=9)  # x = 0, 1/8, ..., 1
    # three of four units hold nothing, the last holds everything: flat to 3/4, then up to 1
    np.testing.assert_allclose(y, [0, 0, 0, 0, 0, 0, 0, 0.5, 1])
    np.testing.assert_allclose(x, np.linspace(0, 1, 9))
    _, y_equal = lorenz_curve(np.array([2, 2, 2, 2]), points=5)
    np.testing.assert_allclose(y_equal, [0, 0.25, 0.5, 0.75, 1])
    _, y_none = lorenz_curve(np.zeros(3), points=3)
    np.testing.assert_allclose(y_none, [0, 0.5, 1])


def test_padded_gini_counts_the_unexposed():
    assert padded_gini(np.array([4.0]), 4) == pytest.approx(0.75)  # one of four holds all
    assert padded_gini(np.array([1.0, 1.0]), 2) == 0.0
    assert padded_gini(np.array([1.0, 3.0]), 4) == pytest.approx(gini(np.array([0, 0, 1, 3])))


def test_daily_series_matches_the_raw_logs(run_dir):
    series = daily_series(analysis.load(run_dir))
    assert series.height == 2 * 2 * 2  # arms x reps x days
    cell = run_dir / "arm=pop_rows" / "rep=1"
    exposures = pl.read_parquet(cell / "exposures.parquet").filter(pl.col("day") == 1)
    items = pl.read_parquet(cell / "items.parquet")
    published = items.filter(pl.col("created_at") < 2 * 86_400.0)  # by the end of day 1
    counts = exposures.group_by("item_id").len()["len"].to_numpy()
    expected_gini = gini(np.concatenate([counts, np.zeros(published.height - len(counts))]))
    row = series.filter((pl.col("arm") == "pop_rows") & (pl.col("rep") == 1) & (pl.col("day") == 1))
    assert row["ctr"][0] == pytest.approx(exposures["clicked"].mean())
    assert row["coverage"][0] == pytest.approx(len(counts) / published.height)
    assert row["item_gini"][0] == pytest.approx(expected_gini)
    creators = exposures["creator_id"].n_unique() / 4
    assert row["creators_exposed"][0] == pytest.approx(creators)


def test_ab_rows_format_deltas_relative_to_the_baseline():
    frame = pl.DataFrame(
        {
            "metric": ["ctr", "ctr", "item_gini", "item_gini"],
            "arm": ["base", "new", "base", "new"],
            "n_reps": [3, 3, 3, 3],
            "mean": [0.1, 0.12, 0.5, 0.6],
            "ci_low": [None] * 4,
            "ci_high": [None] * 4,
            "delta": [None, 0.02, None, 0.1],
            "delta_ci_low": [None, 0.01, None, 0.05],
            "delta_ci_high": [None, 0.03, None, 0.15],
            "rel_delta": [None, 0.2, None, 0.2],
            "significant": [False, True, False, True],
        }
    )
    rows = ab_rows(frame)
    assert [(r.metric, r.arm, r.first) for r in rows] == [
        ("ctr", "base", True),
        ("ctr", "new", False),
        ("item_gini", "base", True),
        ("item_gini", "new", False),
    ]
    assert (rows[1].delta, rows[1].interval, rows[1].verdict) == (
        "+20.0%*",
        "[+10.0%, +30.0%]",
        "better",
    )
    # a higher Gini is worse
    assert (rows[3].delta, rows[3].interval, rows[3].verdict) == (
        "+20.0%*",
        "[+10.0%, +30.0%]",
        "worse",
    )
    assert rows[0].delta == rows[0].interval == ""
    assert ab_note(frame).endswith(
        "* = the CI excludes 0. Green/red = better/worse for that metric."
    )
    assert "percentile bootstrap over the 3 replicates" in ab_note(frame)
    # compare() may say what each CI is over and give Holm-adjusted p-values
    frame = frame.with_columns(
        ci_over=pl.Series(["users", "users", "replicates", "replicates"]),
        p_adjusted=pl.Series([None, 0.01, None, 0.2]),
    )
    note = ab_note(frame)
    assert "CIs over users (ctr): a cluster bootstrap" in note
    assert "CIs over replicates (item_gini)" in note
    assert "Holm correction over the 2 deltas" in note
    assert [(r.ci_over, r.p_adjusted) for r in ab_rows(frame)][1::2] == [
        ("users", "0.010"),
        ("replicates", "0.200"),
    ]


# --- the HTML ----------------------------------------------------------------------------------


def test_report_has_every_section_and_no_external_reference(run_dir, html):
    for section in ["scenario", "ab-table", "time-series", "lorenz", "position-heatmap", "llm"]:
        assert f'<section id="{section}">' in html, section
    assert "A/B comparison vs baseline 'random'" in html
    assert "paired difference" in html and "over the 2 replicates" in html
    for fact in [
        "tiny-report",
        "<td>random</td>",
        "popularity",
        "carousel 2×3 (personalized, new)",
    ]:
        assert fact in html, fact
    # a list heatmap (random) and a row x col grid (the carousel arm), time series, Lorenz
    assert html.count("<svg") == 4
    assert "CTR by list position" in html and "CTR by carousel slot: pop_rows" in html
    assert not re.search(r"<script|<link|<iframe|<object|<embed|@import", html, re.I)
    # every reference stays inside the file: #fragment ids and data: URIs only
    refs = re.findall(r'(?:href|src)\s*=\s*"([^"]*)"|url\(([^)]*)\)', html, re.I)
    assert refs and all(r.startswith(("#", "data:")) for pair in refs for r in pair if r)
    assert not re.search(r"https?://", html)
    assert len(html.encode()) < 1_000_000
    assert not list(run_dir.glob(".report.html.*"))  # the temporary file was renamed away


def test_llm_accounting_matches_the_call_logs(run_dir, html):
    calls = pl.concat([pl.read_parquet(p) for p in run_dir.glob("arm=*/rep=*/llm_calls.parquet")])
    assert calls.height > 0
    assert f"<tr><th>calls</th><td>{calls.height}</td></tr>" in html
    assert "LLM panel" in html and "rule-based" in html


def test_runs_without_llm_users_have_no_llm_section(run_dir, tmp_path):
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    manifest = json.loads((copy_dir / "manifest.json").read_text())
    manifest.pop("llm")
    (copy_dir / "manifest.json").write_text(json.dumps(manifest))
    assert '<section id="llm">' not in render_html(build_report(copy_dir))


def test_unfinished_cells_are_left_out_with_a_visible_note(run_dir, tmp_path):
    copy_dir = tmp_path / "run"
    shutil.copytree(run_dir, copy_dir)
    (copy_dir / "arm=pop_rows" / "rep=1" / "_INCOMPLETE").touch()
    report = build_report(copy_dir)
    assert report.notes == [
        "1 unfinished cell(s) left out of every table and figure: arm=pop_rows/rep=1."
    ]
    assert "1 replicate" in report.ab_note
    assert 'class="note"' in render_html(report)


def test_baseline_option_and_errors(run_dir, tmp_path):
    report = build_report(run_dir, baseline="pop_rows")
    assert report.baseline == "pop_rows"
    assert [r.arm for r in report.ab_rows if r.delta == ""] == ["pop_rows"] * len(
        {r.metric for r in report.ab_rows}
    )
    with pytest.raises(RecarenaError, match="--baseline: unknown arm 'nope'"):
        build_report(run_dir, baseline="nope")
    with pytest.raises(RecarenaError, match=f"run directory not found: {tmp_path / 'missing'}"):
        write_report(tmp_path / "missing")
    with pytest.raises(RecarenaError, match=f"not a recarena run directory: {tmp_path}"):
        write_report(tmp_path)


def test_cli_writes_the_report_and_prints_its_path(run_dir, html, tmp_path):
    target = tmp_path / "out.html"
    done = recarena("report", str(run_dir), "--output", str(target))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(target)
    # same run, same bytes: figures have fixed ids and no timestamp
    assert target.read_text(encoding="utf-8") == html
    missing = tmp_path / "no-such-run"
    done = recarena("report", str(missing))
    assert done.returncode == 2
    assert done.stderr.strip() == f"error: run directory not found: {missing}"


def test_cli_refuses_to_write_over_a_file_that_is_not_a_web_page(run_dir, tmp_path):
    """Was: ``report RUN -o scenario.yaml`` replaced the scenario by the report (exit 0). An
    existing .html file is still replaced (a report written again), a new name of any kind is
    written."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("name: kept\n", encoding="utf-8")
    done = recarena("report", str(run_dir), "-o", str(scenario))
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"error: --output: {scenario} exists and is not an HTML file; the report would replace "
        f"it: give an .html name (default {run_dir / 'report.html'})"
    )
    assert scenario.read_text(encoding="utf-8") == "name: kept\n"
    old = tmp_path / "old.html"
    old.write_text("<p>last week</p>", encoding="utf-8")
    assert recarena("report", str(run_dir), "-o", str(old)).returncode == 0
    assert old.read_text(encoding="utf-8").startswith("<!")
    fresh = tmp_path / "summary"
    assert recarena("report", str(run_dir), "-o", str(fresh)).returncode == 0
    assert fresh.is_file()


# --- a real browser ----------------------------------------------------------------------------


def _chromium() -> tuple[str, str] | None:
    """(browser, chromedriver) paths, or None. Debian: apt-get install chromium chromium-driver."""
    driver = shutil.which("chromedriver")
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if driver and (path := shutil.which(name)):
            return path, driver
    return None


@pytest.fixture(scope="module")
def browser():
    found = _chromium()
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        found = None
    if found is None:
        if os.environ.get("RECARENA_REQUIRE_BROWSER") == "1":
            pytest.fail("RECARENA_REQUIRE_BROWSER=1 but no chromium + chromedriver (or selenium)")
        pytest.skip("no chromium + chromedriver found (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]:
        options.add_argument(arg)
    options.add_argument("--window-size=1200,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(found[1]))
    yield driver
    driver.quit()


def _open(driver, path: Path) -> list[dict]:
    """Load a file and return the console messages of level SEVERE (console.error, JS errors)."""
    driver.get_log("browser")  # drop anything left from a previous page
    driver.get(path.as_uri())
    return [m for m in driver.get_log("browser") if m["level"] == "SEVERE"]


def test_report_renders_in_chromium_without_errors(run_dir, html, browser, tmp_path):
    report = run_dir / "report.html"
    assert _open(browser, report) == []
    assert browser.title == "recarena report: tiny-report"
    # nothing was fetched: no scripts, styles, fonts or images from anywhere
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    widths = browser.execute_script(
        "return [...document.querySelectorAll('svg')].map(s => s.getBoundingClientRect().width)"
    )
    assert len(widths) == 4 and min(widths) > 200  # every figure was laid out at a real size
    height = browser.execute_script("return document.documentElement.scrollHeight")
    metrics = {"width": 1200, "height": height, "deviceScaleFactor": 1, "mobile": False}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)  # the whole page
    shot = tmp_path / "report.png"
    assert browser.save_screenshot(str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shutil.copyfile(shot, SCREENSHOT_COPY)


def test_console_errors_are_detected(browser, tmp_path):
    """The check above can fail: a page that logs an error is caught."""
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>console.error('boom')</script></body></html>")
    severe = _open(browser, broken)
    assert len(severe) == 1 and "boom" in severe[0]["message"]
