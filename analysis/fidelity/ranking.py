"""Check 3 of the fidelity report: do recommenders rank the same in simulation and on real data?

Each recommender (popularity, item-kNN, MF, SASRec by default) is trained **once** on the
training part of the time split. Then it is scored two ways:

* **real**: NDCG@10 and Recall@10 of its top 10 (training items excluded) against each test
  user's held-out items, the standard offline protocol on the same time split;
* **simulated**: the *same fitted model* is deployed as an arm of an engine run on the
  calibrated population (``run_experiment``, one replicate, so all arms share the users'
  common random numbers), and its engagement is the click-through rate of its impressions.

The deployed model is not retrained during the simulation (the retrain period is longer than
the horizon) and never recommends a movie the user rated in training (:class:`Pretrained` adds
those to ``exclude``), so both sides judge one model on the same users' unseen movies. Visit
rates are set equal for every user in the simulation copy of the population: ML-100K's fitted
rates (≈0.02 sessions/day) would need months of simulated time to see each test user once, and
offline accuracy averages over users equally, so equal visits make the two sides weigh users
alike. Kendall's tau between the two orderings gets a bootstrap CI over users.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch
from pydantic import BaseModel, ConfigDict

from recarena.agents.users.calibration import CalibratedPopulation, temporal_split
from recarena.analysis.fidelity.checks import Split
from recarena.analysis.fidelity.common import (
    Estimate,
    ndcg_recall_at_k,
    tau_estimate,
    user_bootstrap,
)
from recarena.analysis.load import load
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.registry import build
from recarena.simulator.core.machine import usable_cpus
from recarena.simulator.core.types import (
    PAD_ITEM,
    CatalogView,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from recarena.simulator.runner.task_pool import map_in_processes

K = 10
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ArmSpec:
    name: str
    type: str
    params: dict = field(default_factory=dict)
    grid: tuple[dict, ...] = ()
    """Candidate overrides of ``params``; the one with the best NDCG@10 on a validation split
    carved from the *training* split (each user's latest training rows) is refitted on the
    whole training split. Empty = ``params`` as they are."""


EPOCH_SAMPLES = 100_000
"""Examples per training epoch of the learned arms (a fresh random sample each epoch). ML-100K
and ml-latest-small have fewer training examples, so every epoch sees all of them; on a
1M-rating release an epoch is a tenth of the data, which keeps the seven arms' training (the
tuned ones three times each) within minutes instead of an hour. LightGCN propagates over the
whole graph at every step, so its cost grows with the ratings even at a fixed number of
examples: it takes steps of 4,096 and at most 20 epochs (on a 1M-rating stand-in, batches of
2,048 and up to 30 epochs took 644 of the run's 1,373 seconds)."""

# Seven families: no model, a count, item-to-item, a latent factor model, two sequence models and
# a graph model. Small grids (hyperparameters are chosen per dataset on the validation split,
# never on test) keep `recarena fidelity` on ML-100K within minutes on one core.
DEFAULT_ARMS = (
    ArmSpec("random", "random"),
    ArmSpec("popularity", "popularity"),
    ArmSpec("itemknn", "itemknn", {"neighbours": 50}, ({"neighbours": 20}, {"neighbours": 100})),
    ArmSpec(
        "mf",
        "mf",
        {"dim": 64, "epochs": 40, "lr": 0.01, "epoch_samples": EPOCH_SAMPLES},
        ({"dim": 32, "epochs": 20}, {"dim": 64, "epochs": 40}),
    ),
    ArmSpec(
        "sasrec",
        "sasrec_native",
        {"dim": 32, "epochs": 5, "max_len": 20, "epoch_samples": EPOCH_SAMPLES},
        ({"epochs": 3}, {"epochs": 8}),
    ),
    ArmSpec(
        "gru4rec",
        "recarena.recommenders.native_gru4rec:NativeGRU4Rec",
        {"dim": 32, "epochs": 5, "max_len": 20, "epoch_samples": EPOCH_SAMPLES},
        ({"epochs": 3}, {"epochs": 8}),
    ),
    ArmSpec(
        "lightgcn",
        "recarena.recommenders.native_lightgcn:NativeLightGCN",
        {"dim": 32, "layers": 2, "epochs": 20, "batch_size": 4096, "epoch_samples": EPOCH_SAMPLES},
        ({"epochs": 10}, {"epochs": 20}),
    ),
)


# ----------------------------------------------------------------- a fitted model as an arm
class PretrainedParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    """Pickle written by :func:`ranking_agreement` (a fitted recommender and the [U, H] matrix
    of each user's training items): produced and read by the same process, never shipped."""


class Pretrained:
    """A recommender fitted on real training data, deployed unchanged in a simulation.

    ``fit`` is a no-op (the model was trained offline); ``update`` is passed through so
    sequential models still see the session's clicks; every request also excludes the user's
    real training items, which a real service would not show again.
    """

    Params = PretrainedParams
    surfaces = frozenset({"list"})

    def __init__(self, params: PretrainedParams, ctx: RecommenderContext) -> None:
        del ctx
        with open(params.model, "rb") as handle:
            saved = pickle.load(handle)  # noqa: S301 - our own file from this run
        self.base = saved["recommender"]
        self.seen: np.ndarray = saved["seen"]
        self.name = f"pretrained:{self.base.name}"

    def fit(self, history: Interactions) -> None:
        del history

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        exclude = np.concatenate([requests.exclude, self.seen[requests.user]], axis=1)
        return self.base.recommend(replace(requests, exclude=exclude))

    def update(self, feedback: FeedbackBatch) -> None:
        self.base.update(feedback)


# ---------------------------------------------------------------------------------- helpers
def seen_matrix(user: np.ndarray, item: np.ndarray, n_users: int) -> np.ndarray:
    """[U, H] each user's distinct items, padded with PAD_ITEM (H = most items of a user)."""
    pairs = np.unique(user * (int(item.max(initial=0)) + 1) + item)
    width = int(item.max(initial=0)) + 1
    users, items = pairs // width, pairs % width
    counts = np.bincount(users, minlength=n_users)
    out = np.full((n_users, max(int(counts.max(initial=0)), 1)), PAD_ITEM, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out[users, np.arange(users.size) - starts[users]] = items
    return out


def catalog_view(pop: CalibratedPopulation) -> CatalogView:
    return CatalogView(
        n_items=pop.n_items,
        topics=pop.topics,
        quality=pop.quality,
        creator=pop.creator,
        created_at=np.zeros(pop.n_items),
    )


def top_k(rec, users: np.ndarray, seen: np.ndarray, catalog: CatalogView, chunk: int = 256):
    """[len(users), K] the recommender's top K for each user, training items excluded."""
    rows = []
    for start in range(0, users.size, chunk):
        batch = users[start : start + chunk]
        request = RequestBatch(
            time=0.0,
            user=batch,
            session=np.zeros(batch.size, np.int64),
            page=np.zeros(batch.size, np.int32),
            k=K,
            catalog=catalog,
            exclude=seen[batch],
        )
        rows.append(rec.recommend(request).items)
    return np.concatenate(rows) if rows else np.zeros((0, K), np.int64)


def relevant_lists(user: np.ndarray, item: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The distinct users and, for each, the items they have in (user, item) rows."""
    users = np.unique(user)
    order = np.argsort(user, kind="stable")
    cuts = np.searchsorted(user[order], users)
    return users, np.split(item[order], cuts[1:])


def subset(history: Interactions, rows: np.ndarray) -> Interactions:
    return Interactions(
        user=history.user[rows],
        item=history.item[rows],
        time=history.time[rows],
        rating=history.rating[rows],
    )


def tune(
    spec: ArmSpec,
    history: Interactions,
    n_users: int,
    n_topics: int,
    catalog: CatalogView,
    seed: int,
    holdout: float = 0.2,
) -> tuple[dict, list[dict]]:
    """``spec.params`` updated with the grid candidate whose NDCG@10 is best on a validation
    split of the *training* history (each user's latest ``holdout`` share); the test split is
    never looked at. Returns the chosen params and every candidate's validation score."""
    if not spec.grid:
        return dict(spec.params), []
    order = np.lexsort((history.time, history.user))
    held = temporal_split(history.user[order], holdout)
    fit = subset(history, order[~held])
    users, relevant = relevant_lists(history.user[order[held]], history.item[order[held]])
    seen = seen_matrix(fit.user, fit.item, n_users)
    scores: list[dict] = []
    candidates_params = [{**spec.params, **candidate} for candidate in spec.grid]
    for c, params in enumerate(candidates_params):
        ctx = RecommenderContext(
            rng=np.random.default_rng([seed, 400, c]), n_users=n_users, n_topics=n_topics
        )
        rec = build(spec.type, params, ctx)
        rec.fit(fit)
        ndcg, _ = ndcg_recall_at_k(top_k(rec, users, seen, catalog), relevant, K)
        scores.append({"params": params, "validation_ndcg@10": float(ndcg.mean())})
    validation = [float(s["validation_ndcg@10"]) for s in scores]
    best = int(np.argmax(validation))  # the first of equals wins
    return dict(candidates_params[best]), scores


# ------------------------------------------------------------------------- training the arms
@dataclass(frozen=True)
class TrainJob:
    """What one arm's tuning, fit and real-data scoring need (picklable: a worker runs it)."""

    spec: ArmSpec
    index: int
    seed: int
    history: Interactions
    n_users: int
    n_topics: int
    catalog: CatalogView
    test_users: np.ndarray
    seen: np.ndarray
    relevant: list[np.ndarray]
    work_dir: Path


@dataclass(frozen=True)
class TrainedArm:
    name: str
    params: dict
    candidates: list[dict]
    ndcg: np.ndarray  # [len(test_users)] per-user NDCG@10 on the test split
    recall: np.ndarray
    path: str  # the pickled fitted model, for the simulation
    seconds: float


def default_workers() -> int:
    """The CPUs this process may use, at most 4 (each worker holds the training split)."""

    return min(4, usable_cpus())


def train_arm(job: TrainJob) -> TrainedArm:
    """Tune one arm on the validation slice of training, refit it on all of training, score
    its top 10 against the test split and pickle it; seeded by ``(seed, index)`` alone, so the
    process that runs it does not change a figure."""
    import time

    started = time.perf_counter()
    torch.set_num_threads(1)  # one summation order, whichever process trains
    spec, a = job.spec, job.index
    params, candidates = tune(
        spec, job.history, job.n_users, job.n_topics, job.catalog, job.seed + 1000 * a
    )
    ctx = RecommenderContext(
        rng=np.random.default_rng([job.seed, 300 + a]), n_users=job.n_users, n_topics=job.n_topics
    )
    rec = build(spec.type, params, ctx)
    rec.fit(job.history)
    ranked = top_k(rec, job.test_users, job.seen, job.catalog)
    ndcg, recall = ndcg_recall_at_k(ranked, job.relevant, K)
    path = job.work_dir / f"{spec.name}.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"recommender": rec, "seen": job.seen}, handle)
    seconds = round(time.perf_counter() - started, 2)
    return TrainedArm(spec.name, params, candidates, ndcg, recall, str(path), seconds)


def train_arms(jobs: list[TrainJob], workers: int, report: Progress) -> list[TrainedArm]:
    """Every arm's :func:`train_arm`, in job order, on ``workers`` spawned processes.

    The arms are independent and each trains on one thread, so on two cores two of them at a
    time halve the stage (on a 1M-rating release it is most of the run). They start from the
    last: DEFAULT_ARMS runs from the cheapest family to the costliest, and the costliest first
    keeps one worker from finishing alone. A stop signal or a failed arm terminates the
    workers at once rather than waiting for the others to finish, and a worker that dies (the
    OOM killer) is one error naming its arm (simulator/runner/task_pool.py says why not
    ``multiprocessing.Pool``: with it SIGTERM went unanswered until training ended).
    """
    names = [job.spec.name for job in jobs]
    if workers <= 1:
        out = []
        for i, job in enumerate(jobs):
            report(f"train: {job.spec.name} (tuning on validation)", i / len(jobs))
            out.append(train_arm(job))
        report(f"train: {len(jobs)} arms trained", 1.0)
        return out
    report(f"train: {len(jobs)} arms on {workers} processes", 0.0)
    finished: list[str] = []

    def on_result(_index: int, arm: TrainedArm) -> None:
        finished.append(arm.name)
        report(f"train: {arm.name} done ({len(finished)}/{len(jobs)})", len(finished) / len(jobs))

    trained = map_in_processes(
        train_arm, jobs[::-1], workers, lambda job: f"arm {job.spec.name}", on_result
    )
    done = {arm.name: arm for arm in trained}
    return [done[name] for name in names]


# --------------------------------------------------------------------------------- the check
@dataclass(frozen=True)
class RankingResult:
    arms: list[str]
    users: int
    ndcg: dict[str, Estimate]
    recall: dict[str, Estimate]
    ctr: dict[str, Estimate]
    tau_ndcg: Estimate
    tau_recall: Estimate
    spearman_ndcg: Estimate
    spearman_recall: Estimate
    simulated_ratings: tuple[np.ndarray, np.ndarray]  # (user, rating) of simulated clicks
    seconds: dict[str, float]
    simulation: dict
    test_users: np.ndarray  # [U] dense ids of the users scored on both sides
    real_ndcg: np.ndarray  # [U, A] per-user NDCG@10 of each arm
    real_recall: np.ndarray  # [U, A]
    model_paths: dict[str, str]  # arm -> pickle of the fitted model (for a second simulation)
    tuned: dict[str, dict] = field(default_factory=dict)  # arm -> chosen params, candidates
    tau_real: Estimate | None = None
    """Reference: Kendall tau between the two real orderings (NDCG@10 and Recall@10). Where
    the real metrics disagree, no simulated ordering can match both closely: with d swapped
    pairs between them, the two taus against CTR cannot both exceed 1 - d / pairs."""


def ranking_agreement(
    pop: CalibratedPopulation,
    split: Split,
    work_dir: Path,
    arms: tuple[ArmSpec, ...] = DEFAULT_ARMS,
    seed: int = 0,
    days: float = 3.0,
    visits_per_day: float = 1.0,
    n_boot: int = 1000,
    progress: Progress | None = None,
    workers: int | None = None,
) -> RankingResult:
    """Train, score on real held-out data, simulate, and compare the two rankings.

    The arms train in ``workers`` processes (default: the CPUs this process may use, at most
    4) and their simulation cells run in as many; every arm seeds itself from ``seed`` and its
    index, and the executor never changes the logs, so the figures do not depend on it."""
    import time

    report = progress or (lambda _d, _f: None)
    workers = max(1, min(workers or default_workers(), len(arms)))
    seconds: dict[str, float] = {}
    test_users, relevant = relevant_lists(split.test_user, split.test_item)
    seen = seen_matrix(split.train_user, split.train_item, pop.n_users)
    history = Interactions(
        user=split.train_user,
        item=split.train_item,
        time=split.train_time,
        rating=(
            split.train_rating.astype(np.float32)
            if split.train_rating is not None
            else np.full(split.train_user.shape[0], np.nan, np.float32)
        ),
    )
    catalog = catalog_view(pop)
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs = [
        TrainJob(spec, a, seed, history, pop.n_users, pop.n_topics, catalog, test_users, seen,
                 relevant, work_dir)
        for a, spec in enumerate(arms)
    ]  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one summation order, and the CPU is shared with other cells
    try:
        trained = train_arms(jobs, workers, report)
        seconds.update({f"train+score {arm.name}": arm.seconds for arm in trained})
        ndcg_cols = [arm.ndcg for arm in trained]
        recall_cols = [arm.recall for arm in trained]
        model_paths = {arm.name: arm.path for arm in trained}
        chosen = {arm.name: {"params": arm.params, "candidates": arm.candidates} for arm in trained}

        started = time.perf_counter()
        pop_path = work_dir / "population.parquet"
        replace_activity(pop, visits_per_day).save(pop_path)
        doc = simulation_doc("fidelity-ranking", seed, days, pop_path, arms, model_paths, work_dir)
        run_dir = work_dir / "simulation"
        names = [spec.name for spec in arms]

        shares = dict.fromkeys(names, 0.0)

        def on_progress(cell, fraction: float) -> None:  # cells run side by side
            shares[cell.arm] = fraction
            report(f"simulate {cell.arm}", sum(shares.values()) / len(names))

        run_experiment(
            parse_scenario(doc),
            run_dir,
            executor="process" if workers > 1 else "local",
            workers=workers,
            on_progress=on_progress,
        )
        seconds["simulate"] = round(time.perf_counter() - started, 2)
    finally:
        torch.set_num_threads(threads)

    logs = load(run_dir)
    clicks, views = engagement(logs.exposures, test_users, names)
    real_ndcg, real_recall = np.stack(ndcg_cols, axis=1), np.stack(recall_cols, axis=1)
    rng = np.random.default_rng([seed, 301])
    inter = logs.interactions.select("user_id", "rating").collect()
    sessions = logs.sessions.group_by("arm").agg(pl.len()).collect()

    def mean_estimate(values: np.ndarray) -> Estimate:
        stacked = np.stack([values, np.ones_like(values)], axis=1)
        return user_bootstrap(stacked, lambda s: s[:, 0] / s[:, 1], rng, n_boot)

    def ctr_estimate(a: int) -> Estimate:
        stacked = np.stack([clicks[:, a], views[:, a]], axis=1)
        return user_bootstrap(stacked, lambda s: s[:, 0] / s[:, 1], rng, n_boot)

    return RankingResult(
        arms=names,
        users=int(test_users.size),
        ndcg={n: mean_estimate(real_ndcg[:, a]) for a, n in enumerate(names)},
        recall={n: mean_estimate(real_recall[:, a]) for a, n in enumerate(names)},
        ctr={n: ctr_estimate(a) for a, n in enumerate(names)},
        tau_ndcg=tau_estimate(real_ndcg, clicks, views, rng, n_boot),
        tau_recall=tau_estimate(real_recall, clicks, views, rng, n_boot),
        spearman_ndcg=tau_estimate(real_ndcg, clicks, views, rng, n_boot, "spearman"),
        spearman_recall=tau_estimate(real_recall, clicks, views, rng, n_boot, "spearman"),
        tuned=chosen,
        tau_real=tau_estimate(  # real NDCG against real Recall (as clicks over one view each)
            real_ndcg,
            real_recall,
            np.ones_like(real_recall),
            np.random.default_rng([seed, 302]),
            n_boot,
        ),
        simulated_ratings=(inter["user_id"].to_numpy(), inter["rating"].to_numpy()),
        seconds=seconds,
        test_users=test_users,
        real_ndcg=real_ndcg,
        real_recall=real_recall,
        model_paths=model_paths,
        simulation={
            "days": days,
            "visits_per_day": visits_per_day,
            "sessions": {n: dict(sessions.iter_rows()).get(n, 0) for n in names},  # arm order
            "impressions": int(views.sum()),
        },
    )


def simulation_doc(
    name: str,
    seed: int,
    days: float,
    pop_path: Path,
    arms: tuple[ArmSpec, ...],
    model_paths: dict[str, str],
    work_dir: Path,
) -> dict:
    """The scenario that deploys the fitted models as arms of one run on ``pop_path``."""
    return {
        "name": name,
        "seed": seed,
        "replicates": 1,
        "horizon": {"days": days, "tick_seconds": 60},
        "population": {"from": "calibrated", "path": str(pop_path)},
        "creators": {"uploads_per_day": 0.0},
        "surface": {"type": "list", "k": K},
        "retrain": {"every_days": days * 2},  # fitted offline: no refit in the horizon
        "arms": [
            {
                "name": spec.name,
                "recommender": {
                    "type": f"{__name__}:Pretrained",
                    "params": {"model": model_paths[spec.name]},
                },
            }
            for spec in arms
        ],
        "metrics": ["ctr"],
        "output": {"dir": str(work_dir)},
    }


def engagement(
    exposures: pl.LazyFrame, users: np.ndarray, names: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``[len(users), A]`` clicks and impressions of each of ``users`` under each arm."""
    per_user = (
        exposures.group_by("arm", "user_id")
        .agg(pl.len().alias("views"), pl.col("clicked").sum().alias("clicks"))
        .collect()
    )
    position = {u: i for i, u in enumerate(users.tolist())}
    views = np.zeros((users.size, len(names)))
    clicks = np.zeros((users.size, len(names)))
    for arm, user, n_views, n_clicks in per_user.iter_rows():
        if user in position:
            views[position[user], names.index(arm)] = n_views
            clicks[position[user], names.index(arm)] = n_clicks
    return clicks, views


def replace_activity(pop: CalibratedPopulation, visits_per_day: float) -> CalibratedPopulation:
    """The population with every user visiting ``visits_per_day`` (see the module docstring)."""
    return replace(pop, activity=np.full(pop.n_users, float(visits_per_day)))
