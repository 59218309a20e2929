"""A social graph between users, and what it does: influence on utility and word of mouth.

The graph is made once per cell from the arm-independent ``social`` stream (or read from an
edge-list file), so every arm of a replicate has the same friendships. It is turned into a
scipy CSR adjacency once; everything per tick is a sparse row slice times a dense matrix.

* **Influence.** ``recent[u, t]`` counts the items of dominant topic t user u consumed in the
  last ``window_days`` days (today included). The share of u's neighbours with
  ``recent[·, t] > 0`` is ``S[u, t] = (D⁻¹ A (recent > 0))[u, t]``; utility gains
  ``influence · S_u · x_i``. The term is linear in the item's topic mix, so the rule policy adds
  ``influence · S_u`` to its per-topic weights and the item utilities follow from the same
  einsum. Topic level rather than item level because a [users × items] recency matrix grows
  with the catalog while [users × topics] does not.
* **Word of mouth.** A user's visit rate is multiplied by ``1 + word_of_mouth × c_u``, where
  ``c_u`` is the mean number of clicks per neighbour yesterday, then capped at the thinning
  ceiling so arrivals keep their common random numbers.
"""

from __future__ import annotations

import warnings
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp

from recarena.agents.users.talk import TalkState
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Social, SocialGraphSpec


def sbm_probabilities(
    sizes: np.ndarray, mean_degree: float, homophily: float
) -> tuple[float, float]:
    """(p_in, p_out) so that E[degree] = mean_degree and E[in-block edge share] = homophily.

    With E = n·d/2 expected edges, W = Σ_b C(n_b, 2) within-block pairs and B = C(n, 2) − W
    between-block pairs: p_in = h·E / W and p_out = (1 − h)·E / B (each capped at 1).
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    n = sizes.sum()
    edges = n * mean_degree / 2.0
    within = float((sizes * (sizes - 1) / 2.0).sum())
    between = n * (n - 1) / 2.0 - within
    p_in = min(1.0, homophily * edges / within) if within > 0 else 0.0
    p_out = min(1.0, (1.0 - homophily) * edges / between) if between > 0 else 0.0
    return p_in, p_out


def user_blocks(spec: SocialGraphSpec, taste: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Block of each user: its dominant taste topic, or a random one of ``spec.blocks``."""
    if spec.blocks is None:
        return np.asarray(taste.argmax(axis=1), dtype=np.int64)
    return np.asarray(rng.integers(0, spec.blocks, taste.shape[0]), dtype=np.int64)


def read_edge_list(path: str | Path, n_users: int) -> np.ndarray:
    """[E, 2] int64 edges from a 'u v' text file; a missing or bad file is a RecarenaError."""
    path = Path(path)
    if not path.is_file():
        raise RecarenaError(f"population.social.graph.path: edge-list file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # numpy's "input contained no data"
            # utf-8-sig: a byte-order mark (Notepad's "UTF-8 with BOM") is not part of an id
            edges = np.loadtxt(path, dtype=np.int64, comments="#", ndmin=2, encoding="utf-8-sig")
    except UserWarning:
        raise RecarenaError(
            f"{path}: holds no edges (for no social graph, leave out population.social)"
        ) from None
    except ValueError:  # numpy counts rows from 0 past comments: name the file's own line
        raise RecarenaError(f"{path}: {_first_bad_line(path)}") from None
    if edges.shape[1] != 2:  # a third column (a weight) was read as nothing, silently
        raise RecarenaError(f"{path}: {_first_bad_line(path)}")
    if edges.size and (edges.min() < 0 or edges.max() >= n_users):
        raise RecarenaError(
            f"{path}: user ids must be in [0, {n_users - 1}] (population.users = {n_users})"
        )
    if edges.size and not (edges[:, 0] != edges[:, 1]).any():
        # was: a graph of self-loops alone passed and ran without a friend (adjacency drops
        # them), so influence, word of mouth and talk were read by nothing
        raise RecarenaError(
            f"{path}: holds no edges between two users, only self-loops ('u u' lines, which "
            "are dropped); for no social graph, leave out population.social"
        )
    return edges.reshape(-1, 2)


def _first_bad_line(path: Path) -> str:
    """Why an edge list is not 'u v' integer lines, naming its first bad line (1-based)."""
    try:
        with path.open(encoding="utf-8-sig") as lines:
            for number, line in enumerate(lines, 1):
                fields = line.split("#", 1)[0].split()
                if fields and len(fields) != 2:
                    return (
                        f"line {number}: expected two user ids 'u v', got {len(fields)} "
                        f"field{'s' if len(fields) > 1 else ''}: {line.strip()[:60]!r}"
                    )
                for field in fields:
                    if not (field.isascii() and field.lstrip("+-").isdigit()):
                        return f"line {number}: {field[:40]!r} is not an integer user id"
    except UnicodeDecodeError:
        return "not UTF-8 text (an edge list is 'u v' integer lines)"
    return "not an edge list of 'u v' integer lines"


def generate_edges(
    spec: SocialGraphSpec, taste: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """[E, 2] undirected edges (user ids) of the graph ``spec`` describes."""
    n = taste.shape[0]
    if spec.type == "edge_list":
        assert spec.path is not None  # checked by the scenario schema
        return read_edge_list(spec.path, n)
    if n < 2:
        return np.empty((0, 2), np.int64)
    seed = int(rng.integers(0, 2**31 - 1))  # networkx wants an int; it comes from our stream
    if spec.type == "barabasi_albert":
        graph = nx.barabasi_albert_graph(n, min(spec.m, max(n - 1, 1)), seed=seed)
        return np.asarray(graph.edges(), dtype=np.int64).reshape(-1, 2)
    if spec.type == "watts_strogatz":
        graph = nx.watts_strogatz_graph(n, min(spec.k, n - 1), spec.p, seed=seed)
        return np.asarray(graph.edges(), dtype=np.int64).reshape(-1, 2)
    # sbm: networkx numbers nodes block by block, so map node j to the j-th user in block order
    blocks = user_blocks(spec, taste, rng)
    order = np.argsort(blocks, kind="stable")
    sizes = np.bincount(blocks)
    sizes = sizes[sizes > 0]
    p_in, p_out = sbm_probabilities(sizes, spec.mean_degree, spec.homophily)
    probs = np.full((sizes.size, sizes.size), p_out)
    np.fill_diagonal(probs, p_in)
    graph = nx.stochastic_block_model(sizes.tolist(), probs.tolist(), seed=seed, sparse=True)
    nodes = np.asarray(graph.edges(), dtype=np.int64).reshape(-1, 2)
    return order[nodes]


def adjacency(edges: np.ndarray, n_users: int) -> sp.csr_matrix:
    """Symmetric 0/1 CSR adjacency without self-loops or duplicate edges."""
    edges = edges[edges[:, 0] != edges[:, 1]]
    rows = np.concatenate([edges[:, 0], edges[:, 1]])
    cols = np.concatenate([edges[:, 1], edges[:, 0]])
    matrix = sp.csr_matrix(
        (np.ones(rows.shape[0], np.float32), (rows, cols)), shape=(n_users, n_users)
    )
    matrix.data[:] = 1.0  # duplicates were summed: back to 0/1
    matrix.sort_indices()
    return matrix


def row_normalised(matrix: sp.csr_matrix) -> sp.csr_matrix:
    """D⁻¹A: each row sums to 1 (isolated users keep an empty row)."""
    degree = np.asarray(matrix.sum(axis=1)).ravel()
    inverse = np.where(degree > 0, 1.0 / np.maximum(degree, 1.0), 0.0).astype(np.float32)
    return sp.csr_matrix(sp.diags(inverse) @ matrix)


@dataclass
class SocialState:
    """The graph plus the recent-consumption signal the influence and word of mouth read."""

    cfg: Social
    adjacency: sp.csr_matrix  # [U, U] 0/1
    share: sp.csr_matrix  # [U, U] row-normalised
    window: deque  # per finished day, [U, T] float32 counts (at most window_days − 1 kept)
    recent: np.ndarray  # [U, T] float32 counts over the window, today included
    consumed: np.ndarray  # [U, T] float32 1 where recent > 0 (kept in step, not recomputed)
    today: np.ndarray  # [U, T] float32 counts today
    clicks_yesterday: np.ndarray  # [U] float64
    talk: TalkState | None = None
    """Posts and messages between friends (agents/users/talk.py); None = users do not talk."""

    @staticmethod
    def build(
        cfg: Social, taste: np.ndarray, n_topics: int, rng: np.random.Generator
    ) -> SocialState:
        n = taste.shape[0]
        matrix = adjacency(generate_edges(cfg.graph, taste, rng), n)
        return SocialState(
            cfg=cfg,
            adjacency=matrix,
            share=row_normalised(matrix),
            window=deque(),
            recent=np.zeros((n, n_topics), np.float32),
            consumed=np.zeros((n, n_topics), np.float32),
            today=np.zeros((n, n_topics), np.float32),
            clicks_yesterday=np.zeros(n, np.float64),
        )

    def record(self, users: np.ndarray, topics: np.ndarray) -> None:
        """Users (unique within the call) consumed items with topic mixes ``topics`` [B, T]."""
        main = topics.argmax(axis=1)
        self.today[users, main] += 1.0
        self.recent[users, main] += 1.0
        self.consumed[users, main] = 1.0

    def neighbour_share(self, users: np.ndarray) -> np.ndarray:
        """[B, T] share of each user's neighbours who consumed topic t recently."""
        return np.asarray(self.share[users] @ self.consumed, dtype=np.float32)

    def topic_signal(self, users: np.ndarray) -> np.ndarray:
        """[B, T] influence × :meth:`neighbour_share` (the utility term's per-topic weights)."""
        return np.float32(self.cfg.influence) * self.neighbour_share(users)

    def visit_boost(self) -> np.ndarray:
        """[U] factor on each user's visit rate: 1 + word_of_mouth × neighbours' mean clicks."""
        return 1.0 + self.cfg.word_of_mouth * np.asarray(self.share @ self.clicks_yesterday)

    def end_of_day(self) -> None:
        """Close the day: yesterday's clicks for word of mouth; the window slides by one day."""
        self.clicks_yesterday = self.today.sum(axis=1).astype(np.float64)
        self.window.append(self.today)
        if len(self.window) >= self.cfg.window_days:
            self.recent -= self.window.popleft()
            np.maximum(self.recent, 0.0, out=self.recent)  # float rounding never goes below 0
            self.consumed = (self.recent > 0).astype(np.float32)
        self.today = np.zeros_like(self.today)
        if self.talk is not None:
            self.talk.end_of_day()
