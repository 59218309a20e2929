"""``recarena fidelity``: run the three checks on one dataset and write the report.

One function, :func:`run_fidelity`, does the work and returns a plain dict (what
``fidelity.json`` holds); :func:`write_report` publishes it. The three files are written whole
under hidden names in ``OUT_DIR`` and published together (simulator/core/publish.py), so an
interrupted or failed run leaves the previous report or the new one, never a half-written file
nor a mix of the two (was: each file moved into place on its own, so a stop or an error between
two moves left this run's ``fidelity.json`` beside the last run's ``fidelity.md``). Trained
models and the engine run of check 3 live in a scratch directory beside ``OUT_DIR`` and are
removed at the end (they are reproducible from the config).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from recarena.agents.users.calibration import CalibrationConfig, calibrate
from recarena.analysis.fidelity.checks import (
    LIKED,
    Split,
    align,
    no_liked_line,
    nothing_unseen,
    rating_distribution,
    split_by_time,
    taste_discrimination,
)
from recarena.analysis.fidelity.config import FidelityConfig
from recarena.analysis.fidelity.llm import panel_endpoint, taste_on_endpoint
from recarena.analysis.fidelity.llm_sim import llm_panel_simulation
from recarena.analysis.fidelity.ranking import DEFAULT_ARMS, ArmSpec, Progress, ranking_agreement
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.names import comma_names
from recarena.simulator.core.paths import check_creatable
from recarena.simulator.core.publish import discard, new_token, publish, staging_name
from recarena.simulator.data.datasets import InteractionData, dataset_notes, load_dataset
from recarena.simulator.data.sampling import subsample_users

REFERENCES: dict[str, list[dict[str, Any]]] = {
    "taste_1to1_accuracy": [
        {"source": "Agent4Rec (Zhang et al., SIGIR 2024), published", "value": 0.69},
        {"source": "SimUSER (Bougie & Watanabe, 2025), published", "value": 0.79},
    ],
}


def select_arms(names: str | None) -> tuple[ArmSpec, ...]:
    """The default arms named in a comma-separated list (None: all of them)."""
    if names is None:
        return DEFAULT_ARMS
    known = {a.name: a for a in DEFAULT_ARMS}
    try:  # was: dropped unsaid, so 'random,,mf' compared the two named
        wanted = comma_names(names, "--arms")
    except RecarenaError as exc:
        raise RecarenaError(f"{exc}; known: {', '.join(known)}") from None
    unknown = [n for n in wanted if n not in known]
    twice = [n for k, n in enumerate(wanted) if n in wanted[:k]]
    if twice and not unknown:  # was '<scenario>: arms: duplicate arm names' after calibrating
        raise RecarenaError(f"--arms: {twice[0]!r} is named twice; name each arm once")
    if unknown or len(wanted) < 2:
        raise RecarenaError(
            f"--arms: {'unknown ' + repr(unknown[0]) if unknown else 'name at least two'}; "
            f"known: {', '.join(known)}"
        )
    return tuple(known[n] for n in wanted)


@contextmanager
def _in_the_sample(full: InteractionData, data: InteractionData) -> Iterator[None]:
    """A dataset refused for what it lacks, when --users or --max-ratings kept part of it, says
    so: 'too small to calibrate: 1 users' read as if the dataset itself held one user."""
    try:
        yield
    except RecarenaError as exc:
        if data.n_interactions >= full.n_interactions:
            raise
        raise RecarenaError(
            f"{exc} (in the sample of {data.n_users:,} of {full.n_users:,} users, "
            f"{data.n_interactions:,} of {full.n_interactions:,} ratings, that --users or "
            "--max-ratings kept; 0 keeps all)"
        ) from None


def _users_note(users: int | None, full: InteractionData) -> list[str]:
    """--users past the dataset's users keeps them all, said in a note (was said nowhere: a
    report asked for 1,000 users came from 30, and its config recorded 1,000)."""
    if users is None or users <= full.n_users:
        return []
    return [f"--users {users:,}: the dataset has {full.n_users:,} users, and all of them are used"]


def _no_ratings_note(data: InteractionData, split: Split) -> list[str]:
    """Data without ratings (a generic log of views or clicks) leaves check 2 out, said in a
    note (was said nowhere: the report of two checks read as the whole report of three)."""
    if split.test_rating is not None and split.train_rating is not None:
        return []
    return [
        f"check 2 (rating distribution) is left out: dataset {data.name!r} has no ratings, and "
        "check 1 counts every held-out interaction as liked"
    ]


def _repeats_note(split: Split) -> list[str]:
    """Held-out interactions with a movie the user consumed in training (a log of re-watches
    or plays) are said in a note: check 3's recommenders never show a user a movie they
    consumed, so such rows are misses of every arm alike (was said nowhere: on a log where
    everything is a repeat the real NDCG@10 of every arm is 0 and the ordering is noise)."""
    if split.test_user.size == 0:
        return []
    width = max(int(split.train_item.max(initial=0)), int(split.test_item.max(initial=0))) + 1
    seen = np.unique(split.train_user * width + split.train_item)
    again = int(np.isin(split.test_user * width + split.test_item, seen).sum())
    if again == 0:
        return []
    return [
        f"{again:,} of the {split.test_user.size:,} held-out interactions are of a movie the "
        "same user consumed in training (a repeat); check 3's recommenders never show a user "
        "a movie they consumed, so those are misses of every recommender alike"
    ]


@contextmanager
def _in_the_training_split(data: InteractionData, train: InteractionData) -> Iterator[None]:
    """A dataset refused by the calibration fidelity fits on its training split says the
    figures are the split's: 'two-movies is too small: 39 users, 1 items, 39 consumptions'
    named a dataset of 2 movies and 78 ratings."""
    try:
        yield
    except RecarenaError as exc:
        raise RecarenaError(
            f"{exc} (in its training split of {train.n_users:,} users, {train.n_items:,} items "
            f"and {train.n_interactions:,} of its {data.n_interactions:,} ratings: fidelity "
            "calibrates on each user's earlier ratings and holds their last ones out)"
        ) from None


def run_fidelity(
    cfg: FidelityConfig,
    work_dir: Path,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict:
    """Split, calibrate on the training part, run checks 1-3; returns the report dict.
    ``workers``: processes for check 3's arms (default: the usable CPUs, at most 4); the
    figures do not depend on it."""
    report = progress or (lambda _d, _f: None)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    full = load_dataset(cfg.dataset, cfg.format)  # type: ignore[arg-type]
    data = subsample_users(full, cfg.users, cfg.seed, cfg.max_ratings)
    sample = {
        "users": data.n_users,
        "of_users": full.n_users,
        "ratings": data.n_interactions,
        "of_ratings": full.n_interactions,
    }
    if data.n_interactions < full.n_interactions:
        report(
            f"sample {data.n_users:,} of {full.n_users:,} users "
            f"({data.n_interactions:,} of {full.n_interactions:,} ratings)",
            1.0,
        )
    with _in_the_sample(full, data):  # a sample too small to fit says it is a sample
        train, test = split_by_time(data, cfg.holdout)
        if test["rating"] is not None and not (test["rating"] >= LIKED).any():
            raise RecarenaError(no_liked_line(data.name))  # was refused after the calibration
        unseen = nothing_unseen(train, test)
        if unseen is not None:  # was refused by check 1, after the calibration
            raise RecarenaError(unseen)
        timings["load+split"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        report("calibrate (training split)", 0.0)
        batch = cfg.calibration_batch_size  # None: the calibration's own rule (factor_batch_size)
        calibration = CalibrationConfig(
            topics=cfg.topics,
            epochs=cfg.calibration_epochs,
            batch_size=batch,
            holdout=cfg.holdout,
            seed=cfg.seed,
        )
        with _in_the_training_split(data, train):
            pop = calibrate(train, calibration, visits=False)  # the simulation sets its visits
        split = align(pop, train, test)
        if split.test_user.size == 0:
            raise RecarenaError(  # was 'no held-out rows left after the split', saying not why
                f"dataset {data.name!r}: each of its {len(test['item']):,} held-out ratings (each "
                "user's last ones) is of a movie no user rated earlier, which the calibration "
                "never saw and no check can score; the checks need held-out ratings of movies "
                "that were also rated before"
            )
        report("calibrate (training split)", 1.0)
        timings["calibrate"] = round(time.perf_counter() - started, 2)

        started = time.perf_counter()
        report("check 1: would you watch this?", 0.0)
        taste = taste_discrimination(pop, split, cfg.ratios, cfg.seed, cfg.n_boot, cfg.per_user)
        report("check 1: would you watch this?", 1.0)
        timings["check 1"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    ranking = ranking_agreement(
        pop,
        split,
        work_dir / "ranking",
        cfg.arms,
        cfg.seed,
        cfg.simulation_days,
        cfg.simulation_visits_per_day,
        cfg.n_boot,
        progress,
        workers,
    )
    timings["check 3"] = round(time.perf_counter() - started, 2)

    started = time.perf_counter()
    report("check 2: rating distribution", 0.0)
    ratings = (
        rating_distribution(pop, split, cfg.seed, cfg.n_boot, ranking.simulated_ratings)
        if split.test_rating is not None
        else []
    )
    timings["check 2"] = round(time.perf_counter() - started, 2)
    report("check 2: rating distribution", 1.0)

    result: dict[str, Any] = {
        "dataset": {
            "name": data.name,
            "users": data.n_users,
            "items": pop.n_items,
            "interactions": data.n_interactions,
            "train_rows": int(split.train_user.size),
            "test_rows": int(split.test_user.size),
            "licence": data.licence,
            "sample": sample,
            "notes": [
                *dataset_notes(full),
                *_users_note(cfg.users, full),
                *_no_ratings_note(data, split),
                *_repeats_note(split),
            ],
        },
        "calibration": {
            **{k: pop.scalars[k] for k in ("temperature", "no_click_utility", "mf_final_loss")},
            "memory_choice": pop.scalars.get("memory_choice"),
            "taste_regularisation": pop.scalars.get("taste_regularisation"),
            "rating_thresholds": pop.scalars.get("rating_thresholds"),
            "watch_rule": pop.scalars.get("watch_rule"),
            "user_model": pop.scalars.get("interest"),
            "batch_size": pop.scalars.get("factor_batch_size", batch),
        },
        "taste_discrimination": [
            {
                "m": t.ratio,
                "users": t.users,
                "items": t.items,
                **{name: e.as_dict() for name, e in t.scores.items()},
                "auc": t.auc.as_dict(),
                **(
                    {"popularity_auc": t.popularity_auc.as_dict()}
                    if t.popularity_auc is not None
                    else {}
                ),
                **(
                    {"best_threshold_accuracy": t.best_threshold_accuracy}
                    if t.best_threshold_accuracy is not None
                    else {}
                ),
                **(
                    {"per_user": {name: e.as_dict() for name, e in t.per_user.items()}}
                    if t.per_user is not None
                    else {}
                ),
            }
            for t in taste
        ],
        "rating_distribution": [
            {
                "variant": r.name,
                "description": r.description,
                "tv_distance": r.tv.as_dict(),
                "simulated": r.simulated,
                "real": r.real,
            }
            for r in ratings
        ],
        "ranking_agreement": {
            "users": ranking.users,
            "arms": [
                {
                    "name": name,
                    "ndcg@10": ranking.ndcg[name].as_dict(),
                    "recall@10": ranking.recall[name].as_dict(),
                    "simulated_ctr": ranking.ctr[name].as_dict(),
                }
                for name in ranking.arms
            ],
            "kendall_tau_ndcg": ranking.tau_ndcg.as_dict(),
            "kendall_tau_recall": ranking.tau_recall.as_dict(),
            "spearman_ndcg": ranking.spearman_ndcg.as_dict(),
            "spearman_recall": ranking.spearman_recall.as_dict(),
            **(
                {"kendall_tau_real_ndcg_recall": ranking.tau_real.as_dict()}
                if ranking.tau_real is not None
                else {}
            ),
            "tuned": ranking.tuned,
            "simulation": ranking.simulation,
        },
        "references": REFERENCES,
        "seconds": {**timings, **ranking.seconds},
    }
    if cfg.llm is not None:
        started = time.perf_counter()
        with panel_endpoint(dict(cfg.llm)) as (base_url, local):  # one server for both parts
            panel = taste_on_endpoint(pop, split, cfg, base_url, local, work_dir, progress)
            result["seconds"]["llm panel"] = round(time.perf_counter() - started, 2)
            simulated = llm_panel_simulation(
                pop, split, cfg, ranking, base_url, local, work_dir / "llm_panel", progress
            )
        result["seconds"]["llm simulation"] = simulated.pop("seconds")
        result["llm_panel"] = {
            **panel,
            "rating_distribution": simulated.pop("rating_distribution", []),
            "ranking_agreement": simulated.pop("ranking_agreement"),
            "simulation": {**simulated.pop("simulation"), **simulated},
        }
    return result


def config_dict(cfg: FidelityConfig) -> dict[str, Any]:
    doc = asdict(cfg)
    doc["ratios"] = list(cfg.ratios)
    doc["arms"] = [asdict(a) for a in cfg.arms]
    return doc


REPORT_FILES = ("fidelity.json", "fidelity.md", "fidelity.config.yaml")
"""What :func:`write_report` publishes into its folder (the CLI's closing line names them)."""


def write_report(
    out_dir: Path,
    cfg: FidelityConfig,
    progress: Progress | None = None,
    workers: int | None = None,
) -> dict:
    """Run everything in a scratch directory beside ``out_dir``, then publish the three files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RecarenaError(f"--output: {out_dir} exists and is not a directory")
    check_creatable(out_dir, "--output")  # under a file: was 'cannot create ... (File exists)'
    for name in REPORT_FILES:  # was found only when publishing, after the run's minutes
        target = out_dir / name
        if target.exists() and not target.is_file():
            kind = "a directory" if target.is_dir() else "not a regular file"
            raise RecarenaError(f"--output {out_dir}: {target} is {kind}")
    parent = out_dir.resolve().parent
    # the folders made for the scratch directory, deepest first: removed again (when empty)
    # if nothing is published. Was: `recarena fidelity --dataset <missing>` left runs/ behind
    made_parents = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    except OSError as exc:  # /proc, a read-only mount: was the scratch folder's name, not -o's
        reason = exc.strerror or type(exc).__name__
        raise RecarenaError(
            f"--output {out_dir}: cannot create a folder in {parent} ({reason})"
        ) from None
    token = new_token()
    staged = {out_dir / name: staging_name(out_dir / name, token) for name in REPORT_FILES}
    created = not out_dir.exists()
    published = False
    try:
        result = run_fidelity(cfg, scratch, progress, workers)
        result["config"] = config_dict(cfg)
        files = dict(
            zip(
                REPORT_FILES,
                (
                    fidelity_json(result),
                    markdown(result),
                    yaml.safe_dump(config_dict(cfg), sort_keys=False),
                ),
                strict=True,
            )
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            staged[out_dir / name].write_text(text, encoding="utf-8")
        publish(staged, f"--output {out_dir}")  # all three files, or the old ones
        published = True
        return result
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if not published:
            discard(staged)
            if created:  # a folder this run made for files it never published
                with contextlib.suppress(OSError):
                    out_dir.rmdir()
            for folder in made_parents:  # deepest first; one that is not empty stays
                with contextlib.suppress(OSError):
                    folder.rmdir()


def fidelity_json(result: dict) -> str:
    """The text of fidelity.json: standard JSON, in which a figure that is not a number (a
    rank correlation of arms whose CTRs tie, a measure over no users) is null, as the table's
    'n/a'. Was: NaN, which Python reads but JSON itself has not (JavaScript's JSON.parse and
    most other languages' parsers refuse the file)."""
    return json.dumps(_finite(result), indent=2, default=_plain, allow_nan=False) + "\n"


def _finite(value: Any) -> Any:
    """``value`` with every float that is not finite (NumPy's too) as None."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [
            _finite(item) for item in (value.tolist() if isinstance(value, np.ndarray) else value)
        ]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ------------------------------------------------------------------------------ presentation
def _fmt(e: dict[str, float | None], digits: int = 3) -> str:
    if e["value"] is None or (isinstance(e["value"], float) and np.isnan(e["value"])):
        return "n/a"
    if e["low"] is None or e["high"] is None:
        return f"{e['value']:.{digits}f}"
    return f"{e['value']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def table_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """(check, measure, value [95% CI], reference) rows shared by the terminal and markdown."""
    rows: list[tuple[str, str, str, str]] = []
    refs = ", ".join(
        f"{r['value']:.2f} ({r['source'].split(' (')[0]})"
        for r in REFERENCES["taste_1to1_accuracy"]
    )
    for panel, entries in [("rule", result["taste_discrimination"])] + (
        [("LLM", result["llm_panel"]["taste_discrimination"])] if "llm_panel" in result else []
    ):
        for t in entries:
            for name in [n for n in ("accuracy", "precision", "recall", "f1", "auc") if n in t]:
                reference = refs if (t["m"] == 1 and name == "accuracy") else ""
                rows.append(
                    (
                        f"1 taste {panel} 1:{t['m']}",
                        name,
                        _fmt(t[name]),
                        reference,
                    )
                )
            for name, value in t.get("per_user", {}).items():
                rows.append((f"1 taste {panel} 1:{t['m']}", f"{name} (per user)", _fmt(value), ""))
            if "popularity_auc" in t:
                rows.append(
                    (
                        f"1 taste {panel} 1:{t['m']}",
                        "auc, popularity alone",
                        _fmt(t["popularity_auc"]),
                        "reference",
                    )
                )
            if "best_threshold_accuracy" in t:
                rows.append(
                    (
                        f"1 taste {panel} 1:{t['m']}",
                        "accuracy, best threshold on the test answers",
                        f"{t['best_threshold_accuracy']:.3f}",
                        "oracle, reference",
                    )
                )
    for r in result["rating_distribution"]:
        rows.append(("2 rating TV", r["variant"], _fmt(r["tv_distance"]), "0 = same"))
    llm = result.get("llm_panel")
    for r in llm.get("rating_distribution", []) if llm else []:
        rows.append(("2 rating TV LLM", r["variant"], _fmt(r["tv_distance"]), "0 = same"))
    ranking = result["ranking_agreement"]
    for arm in sorted(ranking["arms"], key=lambda a: -a["ndcg@10"]["value"]):
        rows.append(
            (
                "3 ranking",
                f"{arm['name']} NDCG@10 / sim CTR",
                f"{_fmt(arm['ndcg@10'])} / {_fmt(arm['simulated_ctr'], 4)}",
                "",
            )
        )
    rows.append(
        (
            "3 ranking",
            "tau: NDCG@10 vs CTR",
            _fmt(ranking["kendall_tau_ndcg"]),
            "1 = same",
        )
    )
    rows.append(
        (
            "3 ranking",
            "tau: Recall@10 vs CTR",
            _fmt(ranking["kendall_tau_recall"]),
            "1 = same",
        )
    )
    for key, label in (("spearman_ndcg", "NDCG@10"), ("spearman_recall", "Recall@10")):
        if key in ranking:
            rows.append(("3 ranking", f"Spearman: {label} vs CTR", _fmt(ranking[key]), "1 = same"))
    if "kendall_tau_real_ndcg_recall" in ranking:
        rows.append(
            (
                "3 ranking",
                "tau: real NDCG@10 vs real Recall@10",
                _fmt(ranking["kendall_tau_real_ndcg_recall"]),
                "reference",
            )
        )
    if llm and "ranking_agreement" in llm:
        agreement = llm["ranking_agreement"]
        for arm in agreement["arms"]:
            rows.append(
                ("3 ranking LLM", f"{arm['name']} sim CTR", _fmt(arm["simulated_ctr"], 4), "")
            )
        for key, label in (("kendall_tau_ndcg", "NDCG@10"), ("kendall_tau_recall", "Recall@10")):
            rows.append(("3 ranking LLM", f"tau: {label} vs CTR", _fmt(agreement[key]), "1 = same"))
    if llm:
        sim = llm.get("simulation", {})
        calls = llm["calls"] + sim.get("calls", 0)
        cached = llm["cached_calls"] + sim.get("cached_calls", 0)
        rows.append(
            (
                "LLM panel",
                "calls (cached): check 1 + simulation",
                f"{calls} ({cached}): {llm['calls']} + {sim.get('calls', 0)}; "
                f"{len(sim.get('visited_users', []))} of {len(sim.get('panel_users', []))} "
                "simulated users visited",
                llm["model"],
            )
        )
    return rows


def side_by_side(result: dict) -> list[str]:
    """Check 3's three orderings of the recommenders, best first, one line per rank."""
    arms = result["ranking_agreement"]["arms"]

    def order(key: str) -> list[str]:
        return [a["name"] for a in sorted(arms, key=lambda a: -(a[key]["value"] or 0.0))]

    columns = [order("ndcg@10"), order("recall@10"), order("simulated_ctr")]
    lines = [f"{'rank':<6}{'real NDCG@10':<16}{'real Recall@10':<16}{'simulated CTR':<16}"]
    for r, names in enumerate(zip(*columns, strict=True), start=1):
        lines.append(f"{r:<6}" + "".join(f"{n:<16}" for n in names))
    return lines


def sampled_note(dataset: dict) -> str:
    """ " A sample of …" when the run kept only some users (``--users``, ``--max-ratings``)."""
    sample = dataset.get("sample") or {}
    if not sample or sample["ratings"] >= sample["of_ratings"]:
        return ""
    return (
        f" A seeded sample of {sample['users']:,} of {sample['of_users']:,} users "
        f"({sample['ratings']:,} of {sample['of_ratings']:,} interactions)."
    )


def markdown(result: dict) -> str:
    d = result["dataset"]
    lines = [
        f"# Fidelity report: {d['name']}",
        "",
        f"{d['users']} users, {d['items']} items, {d['interactions']} interactions; per-user "
        f"time split: {d['train_rows']} training rows (calibration and recommender training), "
        f"{d['test_rows']} held-out rows (every check). 95 % CIs: percentile bootstrap over "
        "users." + sampled_note(d),
        *[f"\nNote: {note}." for note in d.get("notes", [])],
        "",
        "| check | measure | value [95% CI] | reference |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {a} | {b} | {c} | {r} |" for a, b, c, r in table_rows(result)]
    lines += ["", "Check 3, the orderings side by side (best first):", "", "```"]
    lines += side_by_side(result) + ["```"]
    lines += [
        "",
        "References are published figures from the cited papers (their own datasets and "
        "setups), printed for orientation, not re-measured here.",
        "",
        "Seconds per step: " + ", ".join(f"{k} {v:g}" for k, v in result["seconds"].items()),
        "",
    ]
    return "\n".join(lines)
