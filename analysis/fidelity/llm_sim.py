"""Checks 2 and 3 for an LLM panel: the fitted recommenders deployed to LLM-driven users.

Check 3's rule-user simulation (analysis/fidelity/ranking.py) is left exactly as it is. The
panel gets a **second, small** engine run: the same fitted models (the same pickles) as the
arms, the same calibrated population file with ``population.model: mixed`` and
``llm_panel.users`` = ``--llm-users``, and every user *off* the panel given a visit rate of 0,
so the only sessions are the panel's and every page is an LLM call. The panel is drawn by the
engine (``recarena.agents.users.llm_panel.panel_users``) with the seed, identically under every
arm, so the
arms share their users and arrivals (common random numbers); it is not the check-1 panel.

From that run:

* **check 3**: each arm's click-through rate over the panel users' impressions ranks the
  recommenders; Kendall's tau against the real held-out NDCG@10 / Recall@10 of the *same*
  users, with the user bootstrap of :func:`recarena.analysis.fidelity.common.tau_estimate`;
* **check 2**: the TV distance between the ratings the LLM gave to what it clicked (all
  arms pooled) and the same users' real held-out ratings
  (:func:`recarena.analysis.fidelity.common.tv_estimate`).

Pages whose call failed after retries and the repair fall back to the rule policy
(agents/users/llm_user.py); they are the rule user's answer, not the LLM's, so they are dropped from
both checks and counted. Cost is bounded by design: with the defaults (1 day, one visit a day
on average, at most 2 pages a session, no reflections) the panel makes at most about
4 arms × sessions × 2 calls plus repairs (55 for 10 users on ML-100K, where 5 of them
visited); the call count is reported. Calls go through the same SQLite cache as check 1, so a
rerun with the same seed replays them and reproduces the figures.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import torch

from recarena.agents.llm.client import LOCAL_MODEL
from recarena.agents.users.calibrated import resolve_calibrated
from recarena.agents.users.calibration import CalibratedPopulation
from recarena.agents.users.llm_panel import panel_users
from recarena.analysis.fidelity.checks import Split, rating_histogram_from_counts
from recarena.analysis.fidelity.common import (
    per_user_histograms,
    renamed_options,
    tau_estimate,
    tv_estimate,
    user_bootstrap,
)
from recarena.analysis.fidelity.ranking import (
    RankingResult,
    engagement,
    replace_activity,
    simulation_doc,
)
from recarena.analysis.load import load
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import EndpointRefusedRun, run_experiment
from recarena.simulator.runner.resolve import parse_scenario

if TYPE_CHECKING:
    from recarena.analysis.fidelity.config import FidelityConfig

PANEL_DAYS = 1.0
PANEL_MAX_PAGES = 2
PANEL_MAX_TOKENS = 96


def panel_scenario(
    pop: CalibratedPopulation,
    cfg: FidelityConfig,
    ranking: RankingResult,
    base_url: str,
    local: bool,
    work_dir: Path,
) -> tuple[dict[str, Any], np.ndarray]:
    """The panel run's scenario document and its panel users (dense ids, sorted).

    The population file is written twice: first with everyone visiting, to let the engine
    resolve the scenario and draw its panel, then with only the panel visiting.
    """

    llm = dict(cfg.llm or {})
    users = min(int(llm.get("users", 10)), pop.n_users)
    days = float(llm.get("days", PANEL_DAYS))
    visits = cfg.simulation_visits_per_day
    work_dir.mkdir(parents=True, exist_ok=True)
    pop_path = work_dir / "population.parquet"
    replace_activity(pop, visits).save(pop_path)
    arms = cfg.arms
    doc = simulation_doc(
        "fidelity-llm-panel", cfg.seed, days, pop_path, arms, ranking.model_paths, work_dir
    )
    doc["population"].update(
        {
            "users": pop.n_users,
            "model": "mixed",
            "max_pages": int(llm.get("max_pages", PANEL_MAX_PAGES)),
            "llm_panel": {"users": users, "reflect_every_sessions": 0},
        }
    )
    doc["llm"] = {
        "provider": "openai",  # the endpoint is already up (panel_endpoint): never a 2nd server
        "base_url": base_url,
        "model": llm.get("model", LOCAL_MODEL),
        "api_key_env": llm.get("api_key_env", "OPENAI_API_KEY"),
        "response_format": "json_object_schema" if local else "json_schema",
        "max_tokens": int(llm.get("max_tokens", PANEL_MAX_TOKENS)),
        "concurrency": 2,
        "decision": llm.get("decision", "score"),  # score: logprobs, the engine's default
    }
    panel = panel_users(resolve_calibrated(parse_scenario(doc)), 0)
    activity = np.zeros(pop.n_users)
    activity[panel] = visits
    replace(pop, activity=activity).save(pop_path)
    return doc, panel


def llm_panel_simulation(
    pop: CalibratedPopulation,
    split: Split,
    cfg: FidelityConfig,
    ranking: RankingResult,
    base_url: str,
    local: bool,
    work_dir: Path,
    progress=None,
) -> dict[str, Any]:
    """Run the panel's simulation and score checks 2 and 3 on it; returns the report section."""

    report = progress or (lambda _d, _f: None)
    llm = dict(cfg.llm or {})
    cache_path = Path(llm.get("cache", "runs/fidelity_llm_cache.sqlite"))
    started = time.perf_counter()
    doc, panel = panel_scenario(pop, cfg, ranking, base_url, local, work_dir)
    names = [spec.name for spec in cfg.arms]
    run_dir = work_dir / "simulation"

    def on_progress(cell, fraction: float) -> None:
        report(f"llm simulate {cell.arm}", (names.index(cell.arm) + fraction) / len(names))

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as for the rule run: one summation order
    try:
        run_experiment(
            parse_scenario(doc),
            run_dir,
            executor="local",
            on_progress=on_progress,
            llm_cache_mode="auto",
            llm_cache_path=cache_path,
        )
    except EndpointRefusedRun as exc:  # its run is the report's scratch: nothing to resume
        raise RecarenaError(renamed_options(exc.reason)) from None
    finally:
        torch.set_num_threads(threads)
    seconds = round(time.perf_counter() - started, 2)
    scores = score_panel_run(load(run_dir), panel, split, ranking, names, cfg.seed, cfg.n_boot)
    scores["visited_user_ids"] = [str(u) for u in pop.user_id[scores["visited_users"]]]
    return {
        **scores,
        "simulation": {
            "days": doc["horizon"]["days"],
            "visits_per_day": cfg.simulation_visits_per_day,
            "max_pages": doc["population"]["max_pages"],
            "panel_users": panel.tolist(),
        },
        "seconds": seconds,
    }


def score_panel_run(
    logs,
    panel: np.ndarray,
    split: Split,
    ranking: RankingResult,
    names: list[str],
    seed: int,
    n_boot: int,
) -> dict[str, Any]:
    """Checks 2 and 3 from the panel run's logs (fallback pages dropped), plus call accounting."""
    calls = logs.llm_calls.collect()
    fallback = (
        calls.filter(pl.col("fallback") & pl.col("purpose").str.contains("page"))
        .select("arm", "session_id", "page")
        .unique()
    )
    panel_sessions = logs.sessions.filter(pl.col("llm_user")).select("arm", "session_id")
    exposures = (
        logs.exposures.join(panel_sessions.lazy(), on=["arm", "session_id"], how="semi")
        .join(fallback.lazy(), on=["arm", "session_id", "page"], how="anti")
        .select("arm", "user_id", "clicked")
    )
    request_page = (pl.col("request_id") % 1024).cast(pl.Int16).alias("page")
    interactions = (
        logs.interactions.join(panel_sessions.lazy(), on=["arm", "session_id"], how="semi")
        .with_columns(request_page)
        .join(fallback.lazy(), on=["arm", "session_id", "page"], how="anti")
        .select("user_id", "rating")
        .collect()
    )
    # the users scored on both sides: panel users who visited and have real held-out rows (a
    # panel user without a session in the horizon says nothing about the arms)
    visited = exposures.select("user_id").unique().collect()["user_id"].to_numpy()
    scored = np.intersect1d(np.intersect1d(panel, visited), ranking.test_users)
    rows = np.searchsorted(ranking.test_users, scored)
    clicks, views = engagement(exposures, scored, names)
    rng = np.random.default_rng([seed, 501])

    def ctr(a: int) -> dict:
        stacked = np.stack([clicks[:, a], views[:, a]], axis=1)
        return user_bootstrap(stacked, lambda s: s[:, 0] / s[:, 1], rng, n_boot).as_dict()

    section: dict[str, Any] = {
        "calls": calls.height,
        "cached_calls": int(calls["cached"].sum()),
        "page_calls": int(calls.filter(pl.col("purpose") == "page").height),
        "repairs": int(calls.filter(pl.col("purpose").str.starts_with("repair")).height),
        "fallback_pages": fallback.height,
        "visited_users": scored.tolist(),
        "ranking_agreement": {
            "users": int(scored.size),
            "impressions": int(views.sum()),
            "clicks": int(clicks.sum()),
            "arms": [{"name": n, "simulated_ctr": ctr(a)} for a, n in enumerate(names)],
            "kendall_tau_ndcg": tau_estimate(
                ranking.real_ndcg[rows], clicks, views, rng, n_boot
            ).as_dict(),
            "kendall_tau_recall": tau_estimate(
                ranking.real_recall[rows], clicks, views, rng, n_boot
            ).as_dict(),
        },
    }
    if split.test_rating is not None:
        n = int(max(split.test_user.max(initial=0), panel.max(initial=0))) + 1
        sim = per_user_histograms(
            interactions["user_id"].to_numpy(), interactions["rating"].to_numpy(), n
        )
        real = per_user_histograms(split.test_user, split.test_rating, n)
        both = (sim.sum(axis=1) > 0) & (real.sum(axis=1) > 0)
        tv = (
            tv_estimate(sim[both], real[both], rng, n_boot).as_dict()
            if both.any()
            else {"value": None, "low": None, "high": None}  # the panel rated nothing
        )
        section["rating_distribution"] = [
            {
                "variant": "simulation",
                "description": "ratings the LLM panel gave to what it clicked (all arms pooled)",
                "users": int(both.sum()),
                "ratings": int(sim[both].sum()),
                "tv_distance": tv,
                "simulated": rating_histogram_from_counts(sim[both].sum(axis=0)),
                "real": rating_histogram_from_counts(real[both].sum(axis=0)),
            }
        ]
    return section
