"""The resource estimate: how big a run is, and what preflight refuses without ``--force``.

The estimate is deliberately rough (an upper bound of the big arrays, not a profile); its job is
to refuse what cannot fit, with the figure, unless the user passes ``--force``: 10^12 users that
need terabytes, a grid of 810,000 sweep points, ticks, refits, uploads or creator reviews past
what a cell can get through. It reads the scenario only (and the population's sizes, when a
file sets them), so it imports no other check of preflight's (simulator/runner/preflight.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from recarena.recommenders.mf import SCORE_BLOCK_CELLS
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.machine import usable_cpus
from recarena.simulator.core.scenario import ListSurface, Scenario
from recarena.simulator.core.types import DAY
from recarena.simulator.engine.waves import MAX_WINDOW_ROWS, MAX_WINDOW_SESSIONS

WORKER_BASE_BYTES = 300 * 2**20
"""A worker process before its cell allocates anything (Python, numpy, torch, polars)."""
CREATOR_BYTES = 4096
"""A creator: its Mesa agent, its SimPy upload process and its state. Measured ~3.9 KB each at
10^5 and 2 x 10^5 creators (the estimate used to count 64 bytes, so 10^7 creators passed as
~4 GB and needed ~40)."""


@dataclass(frozen=True)
class Limits:
    """What preflight refuses without ``--force``."""

    memory_fraction: float = 0.8
    """Refuse when the estimate exceeds this share of the machine's physical memory."""
    max_cells: int = 100_000
    max_llm_calls: int = 1_000_000
    max_ticks: int = 10_000_000
    """Page-loop ticks of one cell (days x 86,400 / tick_seconds)."""
    max_periodic: int = 1_000_000
    """Refits (days / retrain every_days), creator reviews (days / period_days), uploads or
    joining creators of one cell."""


@dataclass(frozen=True)
class Estimate:
    """Rough size of a run: what :func:`preflight` compares with the machine and the limits."""

    users: int
    items: int
    """Items at the end of the horizon (initial catalog plus expected uploads)."""
    cells: int
    points: int
    workers: int
    bytes_per_cell: float
    llm_calls: float
    """Upper bound: LLM users x visits x pages, over every cell."""
    ticks: float
    creators: int = 0
    """Creators at the end of the horizon (initial plus expected joins)."""
    uploads: float = 0.0
    """Expected uploads of one cell, each an event of the clock and an item appended."""
    largest: str = ""
    """What most of a cell's bytes are for, when it is not the users, items or creators the
    refusal already counts (``output.flush_rows``, a wide ``dim``, page scores)."""
    shards: int = 1
    """``--shards``: the workers are one cell's shards, each building the cell's whole world."""

    @property
    def bytes_total(self) -> float:
        return self.workers * (WORKER_BASE_BYTES + self.bytes_per_cell)

    def summary(self) -> str:
        text = f"~{human_bytes(self.bytes_total)} memory with {self.workers} worker(s)"
        if self.llm_calls:
            text += f", up to {self.llm_calls:,.0f} LLM calls"
        return text


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000:
            return f"{n:.1f} {unit}" if unit not in ("B", "KB") else f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.3g} EB"  # {:.1f} of an absurd estimate printed hundreds of digits


def human_count(n: float) -> str:
    """``10^12`` for big round numbers (how people write them in a scenario), ``1.21e+18``
    past a quadrillion (a tiny period or rate otherwise prints a hundred digits), else
    ``12,345``."""
    if n >= 10**6:
        exponent = round(math.log10(n))
        if 10**exponent == n and (isinstance(n, int) or n < 1e15):
            return f"10^{exponent}"
        if n >= 1e15:
            return f"{n:.3g}"
    return f"{n:,.0f}"


def machine_memory() -> int:
    """Physical memory in bytes (psutil when installed, else sysconf)."""
    try:
        import psutil
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return int(psutil.virtual_memory().total)


@dataclass(frozen=True)
class Sizes:
    users: int
    items: int
    topics: int | None = None
    """A calibrated population's topics (catalog.topics becomes it); None = the scenario's."""
    creators: int | None = None
    """Its creators, one per first genre (creators.count becomes it); None = the scenario's."""


def estimate(
    scenario: Scenario, sizes: Sizes | None = None, workers: int | None = None, shards: int = 1
) -> Estimate:
    """Upper-bound sizes of the big arrays of one cell, and how many cells run at once (with
    ``shards`` > 1, cells run one after another over that many workers, each of which builds
    the whole world: ``--shards 64`` on a small machine was 64 worlds nobody had estimated).

    Per user: taste, satiation and familiarity ([T] float32 each) and a dozen scalars; the
    consumed-items matrix (int32 while ids fit, as wide as the heaviest user's history, counted
    twice: its doubling briefly holds both tables); per item: topic mix
    and scalars; per creator: topic mix, its agent and upload process; one page batch of scores
    over the catalog; an embedding per user and item for learned recommenders (64 wide, or the
    widest ``dim`` an arm asks for, with its optimiser's moments);
    the log buffers.
    """
    pop, catalog, horizon, creators = (
        scenario.population,
        scenario.catalog,
        scenario.horizon,
        scenario.creators,
    )
    users = sizes.users if sizes else pop.users
    initial = sizes.items if sizes else catalog.initial_items
    topics = sizes.topics if sizes and sizes.topics else catalog.topics
    count = sizes.creators if sizes and sizes.creators else creators.count
    # an AI creator uploads `speedup` times as often, and at worst every creator adopts AI
    rate = creators.uploads_per_day * (creators.ai.speedup if creators.ai is not None else 1.0)
    uploads = count * rate * horizon.days
    joins = creators.join_rate_per_period * horizon.days / creators.period_days
    items = initial + uploads + joins * rate * horizon.days
    visits = pop.visits_per_day * pop.max_rate_factor
    history = min(items, 8 + 2 * visits * horizon.days * 3)  # ~3 clicks a session, heavy user
    per_tick = visits * horizon.tick_seconds / DAY * pop.max_pages
    batch = min(users, max(1.0, users * per_tick))
    degree = _graph_degree(scenario, users)
    blocks = _sbm_blocks(scenario, users)
    # learned embeddings: a generic 64 wide, or the widest ``dim`` an arm asks for, with the
    # optimiser's two moments (Adam) beside the weights
    width = _widest_dim(scenario)
    per_user_emb = max(2 * 64, 3 * width) * 4
    per_item_emb = max(64, 3 * width) * 4
    flush = scenario.output.flush_rows
    embeddings = users * per_user_emb + items * per_item_emb
    terms = {
        "": users * (3 * topics * 4 + 96 + history * 8)
        + items * (topics * 4 + 64)
        + (count + joins) * (topics * 4 + CREATOR_BYTES)
        + (0 if width else embeddings),  # the generic 64 wide grows with users and items
        f"embeddings {width} wide (an arm's params.dim)": embeddings if width else 0,
        "one page batch of scores over the catalog": _score_cells(scenario, batch, items) * 24,
        f"the social graph (~{degree:,.0f} friends a user)": users * degree * NEIGHBOUR_BYTES,
        f"the sbm graph's {blocks:,} x {blocks:,} block pairs": blocks**2 * SBM_PAIR_BYTES,
        f"output.flush_rows: {flush:,} log rows held before each write": flush * 200,
        "the rows of a page-wave window": _window_rows(scenario, users) * WAVE_ROW_BYTES,
    }
    per_cell = sum(terms.values())
    largest = max(terms, key=lambda name: terms[name])
    points = max(1, _grid(scenario))
    cells = len(scenario.arms) * scenario.replicates * points
    running = shards if shards > 1 else max(1, min(workers or usable_cpus(), cells))
    ticks = horizon.days * DAY / horizon.tick_seconds
    # the most a panel can browse: its heaviest visit rate, every session at max_pages
    llm_pages = pop.llm_users * visits * horizon.days * pop.max_pages
    if pop.social is not None and pop.social.talk is not None:
        llm_pages *= 2  # talk: at most one call per consumption, so one per page
    return Estimate(
        users=users,
        items=int(items),
        creators=int(count + joins),
        uploads=float(items - initial),
        cells=cells,
        points=points,
        workers=running,
        bytes_per_cell=float(per_cell),
        llm_calls=float(llm_pages * cells),
        ticks=ticks,
        largest=largest if terms[largest] > per_cell / 2 else "",
        shards=shards,
    )


NEIGHBOUR_BYTES = 144
"""A friend of a user in a drawn social graph at its peak: networkx holds each edge in both
ends' adjacency dicts (~130-140 bytes an end, measured for all three generators at 2,000 users
and 500-1,000 friends each), before the graph becomes a CSR matrix. Was 32, and counted for sbm's
mean_degree alone: barabasi_albert with m 2,000 over 4,000 users was estimated at ~550 MB and
peaked at 1.5 GB (40,000 users and m 20,000, ~200 GB, passed validate)."""


def _graph_degree(scenario: Scenario, users: float) -> float:
    """Expected friends of a user in the scenario's social graph (0 without one): 2m(n-m)/n for
    barabasi_albert (each of the n-m users after the first m attaches m edges), k for
    watts_strogatz, mean_degree for sbm (and for an edge list, whose size the file sets), at
    most every other user."""
    social = scenario.population.social
    if social is None:
        return 0.0
    graph = social.graph
    if graph.type == "barabasi_albert":
        m = min(graph.m, users - 1)
        degree = 2 * m * (users - m) / max(users, 1)
    elif graph.type == "watts_strogatz":
        degree = graph.k
    else:
        degree = graph.mean_degree
    return float(max(0.0, min(degree, users - 1)))


SBM_PAIR_BYTES = 64
"""A pair of blocks of an sbm graph: its probability in our [B, B] table and in the nested
lists networkx takes (~50 bytes a pair measured at 3,000 blocks). 20,000 blocks over 20,000
users held ~25 GB that the estimate did not count."""


def _sbm_blocks(scenario: Scenario, users: float) -> int:
    """Blocks of an sbm graph with ``blocks`` set (at most one a user: empty ones are dropped);
    0 otherwise (without it the blocks are the topics, at most 1,024)."""
    social = scenario.population.social
    if social is None or social.graph.type != "sbm" or social.graph.blocks is None:
        return 0
    return int(min(social.graph.blocks, users))


WAVE_ROW_BYTES = 128
"""A page wave's window holds its exposure rows until it ends (simulator/engine/waves.py), at
most MAX_WINDOW_ROWS of them: ~8 columns of 8 bytes, and their gather into the log's order."""


def _window_rows(scenario: Scenario, users: float) -> float:
    """The most exposure rows a page-wave window can hold: its sessions (at most every user,
    at most MAX_WINDOW_SESSIONS) browsing to ``max_pages`` of a list's ``k`` slots, within
    MAX_WINDOW_ROWS. Waves serve plain lists only."""
    surface = scenario.surface
    if not isinstance(surface, ListSurface):
        return 0.0
    sessions = min(users, MAX_WINDOW_SESSIONS)
    return min(MAX_WINDOW_ROWS, sessions * scenario.population.max_pages * surface.k)


BOUNDED_SCORERS = {"random": 0, "popularity": 0, "mf": SCORE_BLOCK_CELLS}
"""Built-in recommenders that never hold a [page batch, catalog] score matrix, and the most
scores they hold at once: random hashes each slot, popularity ranks once per fit, mf scores in
row blocks (recommenders/mf.py). Any other arm (a wrapper, a sequential model, a plug-in) is
counted as scoring the whole catalog for every page of a batch."""


def _score_cells(scenario: Scenario, batch: float, items: float) -> float:
    """Scores held at once by the arm that holds the most. Was: always batch x catalog, so the
    quickstart at 200,000 users and 200,000 items (random, popularity, mf) was refused as
    needing ~114 GB; its arms hold a few million scores at most."""
    dense = batch * items
    return max(
        (
            min(dense, BOUNDED_SCORERS[arm.recommender.type])
            if arm.recommender.type in BOUNDED_SCORERS
            else dense
        )
        for arm in scenario.arms
    )


def _widest_dim(scenario: Scenario) -> int:
    """The largest embedding ``dim`` in any arm's params (a wrapper's base's included), 0 if
    none. Was: every learned recommender was counted 64 wide, so mf with ``dim: 1024`` at a
    million users (12 GB of weights and Adam moments) passed as ~15 GB and ran out of memory."""
    widest = 0
    stack: list[Any] = [arm.recommender.params for arm in scenario.arms]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            dim = node.get("dim")
            if isinstance(dim, int) and not isinstance(dim, bool):
                widest = max(widest, dim)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return widest


def _grid(scenario: Scenario) -> int:
    return math.prod(len(v) for v in scenario.sweep.values()) if scenario.sweep else 1


def check_estimate(
    est: Estimate, scenario: Scenario, limits: Limits, force: bool, memory: int
) -> None:
    """``memory``: the machine's (:func:`machine_memory`), read once by the caller for the
    scenario and all its sweep points."""
    problems = []
    if est.bytes_total > limits.memory_fraction * memory:
        who = f"{human_count(est.users)} users"
        if est.items > est.users:
            who += f" and {human_count(est.items)} items"
        if est.creators > est.users:
            who += f" and {human_count(est.creators)} creators"
        mostly = f", most of it for {est.largest}" if est.largest else ""
        at_once = (
            f"--shards {est.shards}: {est.shards} workers each building the world"
            if est.shards > 1
            else f"{est.workers} cell(s) at once"
        )
        problems.append(
            f"needs ~{human_bytes(est.bytes_total)} for {who} "
            f"({at_once}{mostly}); this machine has {human_bytes(memory)}"
        )
    if est.cells > limits.max_cells:
        problems.append(f"{est.cells:,} cells exceed the maximum of {limits.max_cells:,}")
    if est.llm_calls > limits.max_llm_calls:
        problems.append(
            f"up to {est.llm_calls:,.0f} LLM calls exceed the maximum of {limits.max_llm_calls:,}"
        )
    if est.ticks > limits.max_ticks:
        problems.append(
            f"horizon.tick_seconds: {scenario.horizon.days:g} days of "
            f"{scenario.horizon.tick_seconds:g} s ticks = {human_count(est.ticks)} ticks per "
            f"cell exceed the maximum of {limits.max_ticks:,}"
        )
    days = scenario.horizon.days
    for index, arm in enumerate(scenario.arms):
        every = scenario.retrain_days(arm)
        if days / every > limits.max_periodic:
            field = scenario.retrain_field(index)
            problems.append(
                f"{field}: {days:g} days with a refit every {every:g} days = "
                f"{human_count(days / every)} refits per cell exceed the maximum of "
                f"{limits.max_periodic:,}"
            )
            break
    if est.uploads > limits.max_periodic:
        problems.append(_uploads_problem(est, scenario, limits))
    joins = est.creators - scenario.creators.count
    if joins > limits.max_periodic:  # each a creator agent with its own upload process
        problems.append(
            f"creators.join_rate_per_period: ~{human_count(joins)} creators joining per cell "
            f"exceed the maximum of {limits.max_periodic:,}"
        )
    reviews = creator_reviews(days, scenario.creators.period_days)
    if reviews > limits.max_periodic:
        problems.append(
            f"creators.period_days: {days:g} days with a review every "
            f"{scenario.creators.period_days:g} days = {human_count(reviews)} creator reviews "
            f"per cell exceed the maximum of {limits.max_periodic:,}"
        )
    elif (rows := _creator_periods(est, scenario)) > limits.max_periodic:
        problems.append(_creator_periods_problem(rows, reviews, est, scenario, limits))
    if problems and not force:
        raise RecarenaError(f"{'; '.join(problems)} (pass --force to run anyway)")


def creator_reviews(days: float, period_days: float) -> int:
    """Creator reviews in a cell: one every ``period_days`` before the horizon, and the final
    one at the horizon that logs the last period (so never 0: the estimate used to say '0
    creator reviews' of a short horizon whose final review still walks every creator)."""
    return max(math.ceil(days / period_days), 1)


def _creator_periods(est: Estimate, scenario: Scenario) -> float:
    """Expected rows of creator_periods in one cell: every review walks and logs every creator
    there is then (the starting ones plus, on average, half of those joining)."""
    creators = scenario.creators
    reviews = creator_reviews(scenario.horizon.days, creators.period_days)
    return reviews * (creators.count + (est.creators - creators.count) / 2)


def _creator_periods_problem(
    rows: float, reviews: float, est: Estimate, scenario: Scenario, limits: Limits
) -> str:
    """A review is a step of every creator and a row of creator_periods for each: 30 creators
    with 50 joining at each of 1,000 reviews a day (~25M creator-periods) passed, since neither
    the reviews nor the joins alone reached the limit, and one day of 60 users ran for minutes."""
    fields = ["creators.count"] + (["creators.period_days"] if reviews > 1 else [])
    if scenario.creators.join_rate_per_period > 0:
        fields.append("creators.join_rate_per_period")
    return (
        f"{', '.join(fields)}: {human_count(reviews)} creator review"
        f"{'' if reviews == 1 else 's'} of up to "
        f"{human_count(est.creators)} creators = ~{human_count(rows)} creator-periods per cell "
        f"(each a step of the creator and a row of creator_periods) exceed the maximum of "
        f"{limits.max_periodic:,}"
    )


def _uploads_problem(est: Estimate, scenario: Scenario, limits: Limits) -> str:
    """Uploads are one event each: 2 creators at 10^6 uploads a day passed the memory
    estimate and ran past two minutes on a one-day horizon of 50 users."""
    creators = scenario.creators
    fields = ["creators.count", "creators.uploads_per_day"]
    if creators.ai is not None and creators.ai.speedup > 1:
        fields.append("creators.ai.speedup")
    if creators.join_rate_per_period > 0:
        fields.append("creators.join_rate_per_period")
    return (
        f"{', '.join(fields)}: ~{human_count(est.uploads)} uploads per cell over "
        f"{scenario.horizon.days:g} days exceed the maximum of {limits.max_periodic:,}"
    )


def fits(est: Estimate, limits: Limits, memory: int) -> bool:
    """The estimate is within this machine's memory: only then are plug-ins built here (their
    per-user arrays under ``--force`` past the limit failed validate itself, out of memory)."""
    return est.bytes_total <= limits.memory_fraction * memory


def describe(est: Estimate) -> dict[str, Any]:
    """The estimate as plain data (for a manifest or a test)."""
    return {
        "users": est.users,
        "items": est.items,
        "cells": est.cells,
        "workers": est.workers,
        "bytes_total": est.bytes_total,
        "llm_calls": est.llm_calls,
        "ticks": est.ticks,
    }
