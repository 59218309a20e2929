"""``recarena report``: one self-contained HTML file summarising a run.

The file has no JavaScript and no external references (figures are inline SVG, styles inline),
so it opens offline, can be mailed or attached to a ticket, and renders the same everywhere.
Everything in it is read from the run directory: the manifest, the resolved scenario and the
logs of the finished cells. Unfinished cells are left out and listed in a visible note.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from recarena.analysis.compare import baseline_of, ci_units, compare, format_mean, relative_bounds
from recarena.analysis.grid import by_col, by_slot
from recarena.analysis.load import RunLogs, load_one_world
from recarena.analysis.metrics import METRICS, run_metrics
from recarena.analysis.report_data import (
    SERIES_COLUMNS,
    daily_series,
    exposure_lorenz,
    mean_over_reps,
    surface_kinds,
)
from recarena.analysis.report_plots import (
    arm_colors,
    carousel_heatmap,
    list_heatmap,
    lorenz_figure,
    time_series_figure,
    to_svg,
)
from recarena.analysis.scalars import as_int
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.paths import check_file_creatable
from recarena.simulator.runner.fallback import shares_by_arm
from recarena.simulator.runner.llm_accounting import summarize_llm_calls
from recarena.simulator.runner.resolve import parse_scenario

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class AbRow:
    """One formatted line of the A/B table."""

    metric: str
    arm: str
    mean: str
    delta: str
    interval: str
    verdict: str  # "better", "worse", "significant" (no direction known) or ""
    first: bool
    ci_over: str = ""  # what the CI resamples: "replicates" or "users" (when compare says)
    p_adjusted: str = ""


@dataclass
class Report:
    """Everything the template shows, already formatted."""

    title: str
    summary: list[tuple[str, str]]
    arms: list[dict[str, str]]
    notes: list[str]
    baseline: str
    ab_rows: list[AbRow]
    ab_note: str
    ab_extra: bool  # the table has CI-over and adjusted-p columns
    figures: dict[str, Markup] = field(default_factory=dict)
    heatmaps: list[Markup] = field(default_factory=list)
    figure_notes: dict[str, str] = field(default_factory=dict)
    """Why a section has no figure ("series", "lorenz", "heatmap"), shown in its place."""
    llm: dict[str, Any] | None = None


def _pct(x: float) -> str:
    x = 0.0 if abs(x) < 0.05 else x  # never "-0.0%"
    return f"{x:+.1f}%" if abs(x) < 100 else f"{x:+.0f}%"


def ab_rows(frame: pl.DataFrame) -> list[AbRow]:
    """The compare() frame as table rows: relative Δ and its CI in % of the baseline mean.

    Significance is compare()'s own decision (the ``significant`` column); ``ci_over`` and
    ``p_adjusted`` are shown when compare() provides them.
    """
    rows = []
    baseline = baseline_of(frame)
    for metric in dict.fromkeys(frame["metric"].to_list()):
        higher = METRICS[metric].higher_is_better if metric in METRICS else None
        for i, row in enumerate(frame.filter(pl.col("metric") == metric).iter_rows(named=True)):
            delta = interval = verdict = p_adj = ""
            if row["delta"] is None and row["arm"] != baseline:
                delta = "n/a"  # the baseline has no value to pair with; a note says so
            elif row["delta"] is not None:
                base_mean = row["mean"] - row["delta"]
                low, high = row["delta_ci_low"], row["delta_ci_high"]
                if base_mean > 0:  # a % of a negative mean would flip the sign
                    delta = _pct(100 * row["delta"] / base_mean)
                    bounds = relative_bounds(row, base_mean)
                    if bounds is not None:
                        interval = f"[{_pct(bounds[0])}, {_pct(bounds[1])}]"
                else:
                    delta = f"{row['delta']:+.3g}"
                    if low is not None:
                        interval = f"[{low:+.3g}, {high:+.3g}]"
                if row["significant"]:
                    delta += "*"
                    if higher is None:
                        verdict = "significant"
                    else:
                        verdict = "better" if (row["delta"] > 0) == higher else "worse"
                if row.get("p_adjusted") is not None:
                    p_adj = f"{row['p_adjusted']:.3f}"
            rows.append(
                AbRow(
                    metric,
                    row["arm"],
                    format_mean(row["mean"]),
                    delta,
                    interval,
                    verdict,
                    i == 0,
                    row.get("ci_over") or "",
                    p_adj,
                )
            )
    return rows


def ab_note(frame: pl.DataFrame) -> str:
    """What each CI is over and what the star means, in words, for the table's caption."""
    n_reps, by_users, by_reps = ci_units(frame)

    def which(group: list[str]) -> str:
        return "" if len(group) == len(by_users) + len(by_reps) else f" ({', '.join(group)})"

    parts = ["Δ is relative to the baseline mean (absolute where that mean is ≤ 0)."]
    if by_users:
        parts.append(
            f"CIs over users{which(by_users)}: a cluster bootstrap of users (the same users "
            f"drawn for every arm) within the {n_reps} replicate(s). They measure the "
            "uncertainty from which users were simulated, with each replicate's catalog and "
            "creators held fixed."
        )
    if by_reps and n_reps >= 2:
        parts.append(
            f"CIs over replicates{which(by_reps)}: a percentile bootstrap over the {n_reps} "
            "replicates of the mean paired difference (arm − baseline in the same replicate, "
            "common random numbers). They measure how much the difference varies between "
            "independently simulated worlds. With few replicates this bootstrap is coarse."
        )
    elif by_reps:
        parts.append(
            f"No CI{which(by_reps)}: 1 replicate. Run with --replicates 2 or more to get them."
        )
    if "p_adjusted" in frame.columns:
        tests = int(frame["p_adjusted"].is_not_null().sum())
        parts.append(
            f"* = significant after a Holm correction over the {tests} deltas of this table "
            "(adjusted bootstrap p < 0.05)."
        )
    else:
        parts.append("* = the CI excludes 0.")
    parts.append("Green/red = better/worse for that metric.")
    return " ".join(parts)


def ci_unit(frame: pl.DataFrame, ci_over: str) -> str:
    """One line for the summary: the unit the CIs resample and how it was chosen."""
    units = list(dict.fromkeys(frame["ci_over"].drop_nulls().to_list())) if frame.height else []
    n_reps = as_int(frame["n_reps"].min()) if frame.height else 0
    chosen = "chosen automatically" if ci_over == "auto" else f"--ci-over {ci_over}"
    text = " and ".join(units) if units else "replicates"
    return f"{text} ({chosen}; {n_reps} replicate{'s' if n_reps != 1 else ''} per arm)"


def _count(value: Any) -> str:
    """Thousands separators for numbers; anything else (a missing value) as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def _surface_text(surface: dict[str, Any] | None) -> str:
    if not surface:
        return ""
    if surface.get("type") == "carousel":
        themes = ", ".join(r["theme"] for r in surface.get("rows", []))
        return f"carousel {len(surface.get('rows', []))}×{surface.get('cols')} ({themes})"
    if surface.get("type") == "conversation":  # added by 5a
        return f"conversation of ≤ {surface.get('max_turns')} turns, {surface.get('k')} items"
    if surface.get("type", "list") != "list":  # a plug-in surface was "list of None"
        params = ", ".join(f"{k}={v}" for k, v in (surface.get("params") or {}).items())
        return f"plug-in {surface['type']}" + (f" ({params})" if params else "")
    return f"list of {surface.get('k')}"


def _point_text(logs: RunLogs) -> str:
    """'1: population.users=30' for the logs of one sweep point, '' otherwise."""
    entry = next((p for p in logs.points if p["point"] == logs.point), None)
    if entry is None:
        return ""
    return f"{logs.point}: " + ", ".join(f"{k}={v}" for k, v in entry["params"].items())


def _summary(logs: RunLogs) -> tuple[list[tuple[str, str]], list[dict[str, str]]]:
    manifest, scenario = logs.manifest, logs.scenario  # a sweep point's own values
    population = scenario.get("population", {})
    users = _count(population.get("users", "?"))
    if population.get("model", "rule") != "rule":
        panel = (population.get("llm_panel") or {}).get("users")
        users += f" (model {population['model']}" + (f", LLM panel {panel}" if panel else "") + ")"
    catalog = scenario.get("catalog", {})
    creators = scenario.get("creators", {})
    summary = [
        ("scenario", manifest.get("name", "?")),
        ("description", scenario.get("description") or ""),
        ("status", manifest.get("status", "?")),
        ("seed", str(manifest.get("seed", scenario.get("seed", "?")))),
        ("replicates", str(manifest.get("replicates", scenario.get("replicates", "?")))),
        ("days", _count(scenario.get("horizon", {}).get("days", "?"))),
        ("users", users),
        ("initial items", _count(catalog.get("initial_items", "?"))),
        ("creators", str(creators.get("count", "?"))),
        ("surface", _surface_text(scenario.get("surface"))),
        ("baseline", manifest.get("baseline") or ""),
        ("started", manifest.get("started_at", "")),
        ("wall time", f"{manifest['wall_seconds']:.1f} s" if "wall_seconds" in manifest else ""),
        ("git commit", (manifest.get("git_commit") or "")[:12]),
        ("run directory", str(logs.run_dir)),
        ("sweep point", _point_text(logs)),
    ]
    arms = []
    for arm in scenario.get("arms", []):
        rec = arm.get("recommender", {})
        params = ", ".join(f"{k}={v}" for k, v in (rec.get("params") or {}).items())
        arms.append(
            {
                "name": arm["name"],
                "recommender": rec.get("type", "?"),
                "params": params,
                "surface": _surface_text(arm.get("surface")) or "scenario's",
            }
        )
    return [(k, v) for k, v in summary if v], arms


def _llm_section(logs: RunLogs) -> dict[str, Any] | None:
    if "llm" not in logs.manifest:
        return None
    accounting = logs.manifest["llm"].get("accounting")
    if accounting is None:  # an interrupted run: recompute from the logs that exist
        scenario = parse_scenario(logs.manifest["scenario"], str(logs.run_dir / "manifest.json"))
        accounting = summarize_llm_calls(logs.run_dir, scenario)
    per_arm = (
        logs.sessions.group_by("arm", "llm_user")
        .agg(
            pl.len().alias("sessions"),
            pl.col("pages").mean().alias("pages_per_session"),
            pl.col("clicks").mean().alias("clicks_per_session"),
        )
        .sort("arm", "llm_user")
        .collect()
    )
    users = [
        {
            "arm": r["arm"],
            "who": "LLM panel" if r["llm_user"] else "rule-based",
            "sessions": f"{r['sessions']:,}",
            "pages": f"{r['pages_per_session']:.2f}",
            "clicks": f"{r['clicks_per_session']:.2f}",
        }
        for r in per_arm.iter_rows(named=True)
    ]
    shown = {k: v for k, v in accounting.items() if k != "by_purpose"}
    purposes = ", ".join(f"{k} {v:,}" for k, v in (accounting.get("by_purpose") or {}).items())
    if purposes:
        shown["calls by purpose"] = purposes
    shown["cache mode"] = logs.manifest["llm"].get("cache_mode", "")
    fallback = [
        {
            "arm": r["arm"],
            "share": f"{r['share']:.1%}",
            "fallbacks": f"{r['fallbacks']:,}",
            "decisions": f"{r['decisions']:,}",
        }
        for r in shares_by_arm(logs.llm_calls).iter_rows(named=True)
    ]
    return {
        "accounting": [(k.replace("_", " "), str(v)) for k, v in shown.items()],
        "users": users,
        "fallback": fallback,
    }


def _fallback_note(logs: RunLogs) -> str | None:
    """A loud note when more LLM decisions fell back than the run's threshold allows."""
    checked = (logs.manifest.get("llm") or {}).get("fallback")
    if not checked or not checked.get("exceeded"):
        return None
    return (
        f"{checked['share']:.0%} of LLM decisions ({checked['fallbacks']} of "
        f"{checked['decisions']}) fell back to the rule policy, above the "
        f"{checked['threshold']:.0%} threshold: the LLM users' results here are mostly "
        "rule-user results."
    )


def build_report(
    run_dir: str | Path,
    baseline: str | None = None,
    point: int | None = None,
    ci_over: str = "auto",
) -> Report:
    """Read a run directory and compute everything the HTML shows.

    ``ci_over`` is compare()'s choice of what the CIs resample (auto, users or replicates); the
    summary and the table's caption say which unit each CI is over.
    """
    run_dir = Path(run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unfinished cells are shown as a note instead
        logs = load_one_world(run_dir, point)
    notes = []
    if logs.incomplete:
        cells = ", ".join(f"arm={c.arm}/rep={c.rep}" for c in logs.incomplete)
        notes.append(
            f"{len(logs.incomplete)} unfinished cell(s) left out of every table and figure: "
            f"{cells}."
        )
    fallback_note = _fallback_note(logs)
    if fallback_note:
        notes.append(fallback_note)
    if logs.manifest.get("status") not in (None, "complete"):
        notes.append(f"The run's status is '{logs.manifest['status']}', not 'complete'.")
    if baseline is None and logs.baseline not in logs.arms:
        notes.append(
            f"The baseline arm '{logs.baseline}' has no finished cells; comparing against "
            f"'{logs.arms[0]}' instead."
        )
        baseline = logs.arms[0]
    with warnings.catch_warnings(record=True) as caught:  # metrics no cell has a value for
        warnings.simplefilter("always")
        # report has no --metric (compare's remedy): it sent the user to an option it lacks
        chosen = run_metrics(
            logs,
            "make it importable to report the run (install its package, or set "
            "PYTHONPATH as for the run)",
        )
        frame = compare(logs, baseline=baseline, metrics=chosen, ci_over=ci_over)
    notes.extend(f"{caught_warning.message}." for caught_warning in caught)
    baseline = baseline_of(frame) or baseline or logs.baseline
    summary, arms = _summary(logs)
    summary.append(("CIs over", ci_unit(frame, ci_over)))
    report = Report(
        title=f"recarena report: {logs.manifest.get('name', run_dir.name)}"
        + (f" (sweep point {logs.point})" if logs.point is not None and logs.points else ""),
        summary=summary,
        arms=arms,
        notes=notes,
        baseline=baseline,
        ab_rows=ab_rows(frame),
        ab_note=ab_note(frame),
        ab_extra="p_adjusted" in frame.columns,
        llm=_llm_section(logs),
    )
    colors = arm_colors(logs.arms)
    if not as_int(logs.exposures.select(pl.len()).collect().item()):
        # empty axes, Lorenz diagonals labelled "Gini 0.000" and a heading over nothing were
        # drawn for a run whose users never arrived
        nothing = "No exposures were logged in any finished cell"
        report.figure_notes = {
            "series": f"{nothing}: no daily CTR, coverage or Gini to draw.",
            "lorenz": f"{nothing}: exposure is not concentrated or spread, it is absent.",
            "heatmap": f"{nothing}: no CTR by position.",
        }
        return report
    means = mean_over_reps(daily_series(logs), SERIES_COLUMNS)
    report.figures["series"] = _svg(time_series_figure(means, colors), "series")
    lorenz = lorenz_figure(
        exposure_lorenz(logs, "item_id"), exposure_lorenz(logs, "creator_id"), colors
    )
    report.figures["lorenz"] = _svg(lorenz, "lorenz")
    kinds = surface_kinds(logs)
    list_arms = [a for a in logs.arms if kinds[a] == "list"]
    if list_arms:
        cols = by_col(logs).filter(pl.col("arm").is_in(list_arms))
        if cols.height:
            report.heatmaps.append(_svg(list_heatmap(cols, list_arms), "heat-list"))
    carousel_arms = [a for a in logs.arms if kinds[a] == "carousel"]
    if carousel_arms:
        slots = by_slot(logs)
        for i, arm in enumerate(carousel_arms):
            if slots.filter(pl.col("arm") == arm).height:
                report.heatmaps.append(_svg(carousel_heatmap(slots, arm), f"heat-{i}"))
    if not report.heatmaps and (list_arms or carousel_arms):
        report.figure_notes["heatmap"] = (
            "No list or carousel arm logged an exposure: no CTR by position to draw "
            "(conversation arms are not drawn here)."
        )
    elif not report.heatmaps:  # was "no list or carousel arm logged an exposure" for arms
        # of a plug-in surface that had logged plenty
        shown = ", ".join(f"{arm} ({kinds[arm]})" for arm in logs.arms)
        report.figure_notes["heatmap"] = (
            f"CTR by position is drawn for list and carousel arms; this run has none: {shown}."
        )
    return report


def _svg(fig, salt: str) -> Markup:
    return Markup(to_svg(fig, salt))  # noqa: S704 - our own matplotlib output, not user input


def render_html(report: Report) -> str:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["j2", "html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(r=report)


def write_report(
    run_dir: str | Path,
    output: str | Path | None = None,
    baseline: str | None = None,
    point: int | None = None,
    ci_over: str = "auto",
) -> Path:
    """Write the HTML report atomically (temporary file, then rename) and return its path."""
    run_dir = Path(run_dir)
    # each --point its own file: the report of point 1 replaced point 0's without a word
    default = "report.html" if point is None else f"report-point{point}.html"
    target = Path(output) if output is not None else run_dir / default
    if output is not None:  # an over-long name, a symlink loop, a file where a directory is,
        # a folder that takes no new file (/proc, a read-only mount: was "No such file or
        # directory: /proc/.r.html.<pid>.tmp", naming neither the option nor the path given)
        check_file_creatable(target, "--output")
    if target.is_symlink():  # the rename below would replace the link, not write where it points
        target = target.resolve()
    if target.exists() and not (target.is_file() or target.is_dir()):
        # a device (/dev/null), a pipe or a socket: renaming the new file over it replaced it
        # (as root, /dev/null became a regular file)
        raise RecarenaError(
            f"--output: {target} is not a regular file (a device, pipe or socket); "
            "give the path of an HTML file"
        )
    if target.is_dir():
        raise RecarenaError(f"--output: {target} is a directory; give a file name")
    web_page = target.suffix.lower() in (".html", ".htm")
    if not web_page and run_dir.is_dir() and target.resolve().is_relative_to(run_dir.resolve()):
        # -o RUN/manifest.json replaced the run's manifest by the report (exit 0), and compare,
        # report and --resume could no longer read the run; -o RUN/arm=a/rep=0/_INCOMPLETE
        # (a name of the run's format that was not there) marked a finished cell unfinished
        own = target.resolve().relative_to(run_dir.resolve())
        what = "is the run's own" if target.is_file() else "would be a file of the run named"
        raise RecarenaError(
            f"--output: {target} {what} {own}; inside the run directory the report must have "
            f"an .html name (default {run_dir / 'report.html'})"
        )
    if target.is_file() and not web_page and run_dir.is_dir():
        # -o scenario.yaml (any file that is not a web page) was replaced by the report, exit 0
        raise RecarenaError(
            f"--output: {target} exists and is not an HTML file; the report would replace it: "
            f"give an .html name (default {run_dir / 'report.html'})"
        )
    if not target.parent.is_dir() and run_dir.is_dir():  # a missing run_dir is load()'s error
        raise RecarenaError(f"--output: directory not found: {target.parent}")
    html = render_html(build_report(run_dir, baseline, point, ci_over))
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
