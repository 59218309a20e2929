"""The calibrated user model: static taste plus what real viewing has that recommenders exploit.

A calibrated user's utility for item *i* is the rule user's (agents/users/rule_user.py) plus two
terms fitted on the *training* part of real data:

    U(u, i) = w_mf·(taste_u · x_i + q_i) + w_pop·log pop_i + w_recent·log recent_i      (static)
              + w_seq · log(ε + Σ_l d_l · T[r_ul, i])                       (short-term interest)
              + w_conf · c_u · z(log pop_i)                                         (conformity)

* ``T`` is a directed item-to-item **transition** matrix: row *a* is the share of times *b*
  followed *a* within the next ``window`` consumptions of the same user, smoothed towards zero
  for rare items. ``r_u1..r_uL`` are the user's last ``L`` consumptions, most recent weighted
  most (``d_l ∝ decay^l``). It gives histories an order that sequential recommenders can learn,
  and it moves with every click inside a simulation.
* ``pop`` counts consumptions over the fitting period and ``recent`` over its last
  ``recent_share`` of time (trends): **popularity and recency** are weighted by data, not
  assumed; ``c_u`` (conformity) is how much more popular than average the user's own choices
  were (shrunk towards 0), so popularity matters more to some users than to others.
* The weights ``w`` are a **multinomial (conditional) logit**, on a **held-out slice of the
  training split**, of "this item was consumed next" against unseen items drawn from a known
  proposal ``q`` (half uniform, half by popularity), each item's logit corrected by
  ``− log q``. The correction matters: without it the fit learns ``log p − log q`` and
  subtracts popularity from the utility by exactly how the contrasts were drawn. Every
  feature is computed from the earlier part of training only. Static terms fold into the
  population's taste and quality, so the engine's matrices keep their meaning; only the last
  two terms are added at serving time (agents/users/calibrated_policy.py).
* **Ratings** of consumed items follow an ordered-probit model, also fitted on the held-out
  slice: stars = 1 + #{k : θ_k ≤ a·(U_static − u0) + b·β_u + ε}, ε ~ N(0, 1), with ``β_u`` the
  user's shrunk mean rating offset and ``U_static`` the utility without the short-term
  interest and conformity terms (those say what is watched *next*, not how much it is liked;
  a user steered by them to a strong recommender's list would otherwise rate it up).
  ``1/a`` is the fitted noise scale in utility units; because it is fitted on held-out pairs,
  utility predicts stars only as well as it really does, so the simulated histogram stays
  close to the real one even though simulated users choose the items their utility ranks
  high.
* **For "would you watch this?" only** (the watch rule, ``fit_watch_rule`` in
  agents/users/watch_rule.py): each item's shrunk mean rating, each user's genre affinity
  (log of the user's genre shares over all users', shrunk) and genre rating affinity (how much
  above their own mean the user rates each genre, shrunk), recent popularity on its own, and
  each item's popularity around the user's own time (:func:`popularity_timeline`), the user's
  activity, and how far the movie's release year is from the years the user watches
  (:func:`era_profile`); a simulated choice does not read them.

Why not one of the judged arms fitted differently: item-kNN scores cosine co-occurrence over a
whole profile, SASRec/GRU4Rec learn sequence encoders end-to-end for next-item ranking, MF/BPR
and LightGCN learn unconstrained embeddings; the user model is a logit over a few interpretable
features (a simplex-topic MF, counts, a first-order windowed Markov chain) fitted on a slice
that no arm uses for selection. The risk that remains is that arms whose inductive bias is
close to a feature (popularity, item-to-item models) are favoured if that feature's weight is
too high; the weights are reported so that it can be seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr, ndtri

FEATURES = ("mf", "log_pop", "log_recent", "sequence", "conformity")


@dataclass(frozen=True)
class InterestConfig:
    recent_items: int = 5
    """L: how many last consumptions drive short-term interest (replaced by the chosen
    candidate of ``memories`` when that is not empty)."""
    decay: float = 0.7
    """Weight of the l-th most recent item ∝ decay**l (chosen with ``recent_items``)."""
    memories: tuple[tuple[int, float], ...] = ((5, 0.7), (10, 0.8), (20, 0.9), (50, 0.95))
    """Candidate (recent_items, decay) pairs: how far back short-term interest reaches. The
    one whose weighted model predicts the held-out slice best (out-of-sample log-loss,
    :func:`choose_memory`) is kept; how long a memory real users have is a property of the
    data, not something to assume. Empty = ``recent_items`` and ``decay`` as they are."""
    window: int = 3
    """A transition a → b counts when b is among the next ``window`` consumptions after a
    (replaced by the chosen candidate of ``windows`` when that is not empty)."""
    windows: tuple[int, ...] = (3, 10, 30)
    """Candidate windows, chosen on the held-out slice with ``memories`` (:func:`choose_memory`)."""
    smoothing: float = 5.0
    """Transition rows are counts / (row total + smoothing): rare items say little."""
    recent_share: float = 0.1
    """'Recent' popularity: the last share of the fitting period's time span."""
    negatives: int = 4
    """Unseen items drawn per held-out consumption for the weight fit."""
    popular_negatives: float = 0.5
    """Share of those drawn in proportion to popularity (the rest uniformly). A simulated user
    chooses among what recommenders show, which is mostly popular; contrasting only with
    uniform draws (mostly obscure items) would overstate how much popularity decides."""
    shrink: float = 10.0
    """Pseudo-count pulling per-user conformity and rating bias towards 0."""


LOOKUPS_PER_CHUNK = 1 << 21
"""Transition-matrix lookups per chunk of :meth:`SequentialInterest.user_sequence_affinity`: the
row, column and value arrays of a chunk take ~50 MB, whatever the batch (a 1M-rating
calibration asks for ~4·10^8 lookups at once, which took 16 GB in one piece)."""
DENSE_BYTES = 1 << 29
"""The transition matrix is read from a dense copy when that takes at most 512 MB (catalogues
up to ~11,500 items), else by binary search in its sorted (row, column) keys."""
TIMELINE_BINS = 20
"""The fitting rows in time order are cut into this many slices of equal size (5 % of the
consumptions each) for the watch rule's popularity around a user's time."""
TIMELINE_SLICES = 6
"""How many consecutive slices (30 % of the consumptions) make the window around a user's
time: wide enough that a 1,000-rating catalogue's counts are not noise, narrow enough that on
a dataset spanning decades it says what was being watched then."""


class TransitionReader:
    """Reads ``T[rows, cols]`` of a CSR transition matrix, the same float32 values, fast.

    SciPy's fancy indexing scans a row linearly when a call asks for fewer values than a tenth
    of the matrix's nonzeros: that is every per-page call of the engine, and rows of a 30-item
    window hold thousands of nonzeros, so it took 63% of a 1M-rating fidelity simulation. A
    dense copy is a gather (~200x faster than that scan on a 3,650-item catalogue); above
    ``DENSE_BYTES`` a binary search in the sorted keys ``row * n + column`` (~4x faster).
    """

    def __init__(self, matrix: sp.csr_matrix) -> None:
        n_rows, self.n_cols = matrix.shape
        self.dense: np.ndarray | None = None
        if n_rows * self.n_cols * matrix.dtype.itemsize <= DENSE_BYTES:
            self.dense = matrix.toarray()
            return
        canonical = matrix.copy()
        canonical.sum_duplicates()  # sorted column indices in every row, no repeats
        row = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(canonical.indptr))
        self.keys = row * self.n_cols + canonical.indices
        self.data = canonical.data

    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if self.dense is not None:
            return self.dense[rows, cols]
        if self.keys.size == 0:
            return np.zeros(rows.shape, self.data.dtype)
        wanted = rows.astype(np.int64) * self.n_cols + cols
        at = np.minimum(np.searchsorted(self.keys, wanted), self.keys.size - 1)
        return np.where(self.keys[at] == wanted, self.data[at], self.data.dtype.type(0))


@dataclass
class SequentialInterest:
    """The fitted pieces the engine needs at serving time."""

    transitions: sp.csr_matrix  # [I, I] float32
    log_pop: np.ndarray  # [I] float32, standardised
    recent: np.ndarray  # [U, L] int64 last consumptions, oldest first, -1 = none
    conformity: np.ndarray  # [U] float32
    rating_bias: np.ndarray  # [U] float32
    weights: dict[str, float]
    ordinal: dict[str, object]  # {"slope", "bias_weight", "cuts"} or {} without ratings
    config: InterestConfig
    item_rating: np.ndarray | None = None
    """[I] float32 each item's mean rating minus the overall mean, shrunk towards 0 (None
    without ratings): how well liked a movie is, which the "would you watch this?" rule weighs."""
    genre_affinity: np.ndarray | None = None
    """[U, G] float32 log of how much more of each genre the user consumed than all users did,
    shrunk towards 0 (None without genres); read through ``item_genres``."""
    item_genres: np.ndarray | None = None
    """[I, G] float32 each item's genres as a row summing to 1 (0 for an item without genres)."""
    genre_rating: np.ndarray | None = None
    """[U, G] float32 how many stars above their own mean the user rates each genre, shrunk
    towards 0 (None without ratings or genres): what the user likes, where ``genre_affinity``
    says what they watch."""
    log_recent: np.ndarray | None = None
    """[I] float32 standardised log consumptions in the last ``recent_share`` of the fitting
    period (the choice model's recency term, folded into quality there)."""
    local_popularity: np.ndarray | None = None
    """[W, I] float32 standardised log consumptions of each item in each window of the fitting
    period (:func:`popularity_timeline`), read through ``user_window``."""
    user_window: np.ndarray | None = None
    """[U] int32 the window of ``local_popularity`` around each user's last fitting consumption."""
    user_activity: np.ndarray | None = None
    """[U] float32 standardised log(1 + consumptions) of each user in the fitting rows: a heavy
    user says yes to more movies than a light one shown the same ones (the watch rule's
    per-user term; standardised, so a refit on more rows keeps its scale)."""
    item_year: np.ndarray | None = None
    """[I] float32 each item's release year, NaN where unknown (None when no item has one)."""
    user_era: np.ndarray | None = None
    """[U, 2] float32 mean and spread of the release years of the user's fitting consumptions,
    shrunk towards everyone's (:func:`era_profile`): some users watch classics, others new
    releases, which neither popularity nor genres say."""
    _reader: TransitionReader | None = field(default=None, init=False, repr=False, compare=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_reader": None}  # rebuilt where it is read, not shipped

    def read_transitions(self) -> TransitionReader:
        """The reader of ``transitions``, built on first use and shared by :meth:`copy`."""
        if self._reader is None:
            self._reader = TransitionReader(self.transitions)
        return self._reader

    # ------------------------------------------------------------------ features
    def sequence_affinity(self, recent: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, k] log(ε + Σ_l d_l T[r_l, i]) of items for users whose recent items are [B, L],
        in one piece (:meth:`user_sequence_affinity` calls it a bounded chunk at a time)."""
        batch, k = items.shape
        n = self.transitions.shape[0]
        length = recent.shape[1]
        if batch * k * length == 0:
            return np.full((batch, k), np.log(1.0 / max(n, 1)), np.float32)
        decay = self.config.decay ** np.arange(length - 1, -1, -1, dtype=np.float64)
        have = recent >= 0
        weights = np.where(have, decay[None, :], 0.0)
        weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
        valid_items = (items >= 0) & (items < n)
        # an item uploaded during the run (id >= n) is in a user's recent items once consumed:
        # it keeps its weight and leads nowhere the fit saw (it indexed past the matrix)
        known = have & (recent < n)
        rows = np.broadcast_to(np.where(known, recent, 0)[:, :, None], (batch, length, k))
        cols = np.broadcast_to(np.where(valid_items, items, 0)[:, None, :], (batch, length, k))
        values = self.read_transitions()(rows.ravel(), cols.ravel()).reshape(batch, length, k)
        values = np.where(known[:, :, None], values, 0.0)
        mass = (values * weights[:, :, None]).sum(axis=1)
        mass = np.where(valid_items, mass, 0.0)
        return np.log(1.0 / n + mass).astype(np.float32)

    def user_sequence_affinity(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, k] :meth:`sequence_affinity` of ``items`` for ``users`` ([B]) from their own
        recent items, gathered a chunk at a time: a calibration scores ~10^7 (user, item)
        pairs, whose [B, L] recent items and weights would take gigabytes at once."""
        batch, k = items.shape
        length = max(self.recent.shape[1], 1)
        out = np.empty((batch, k), np.float32)
        step = max(1, LOOKUPS_PER_CHUNK // (length * max(k, 1)))
        for start in range(0, batch, step):
            stop = min(batch, start + step)
            out[start:stop] = self.sequence_affinity(
                self.recent[users[start:stop]], items[start:stop]
            )
        return out

    def popularity_of(self, items: np.ndarray) -> np.ndarray:
        """[B, k] standardised log popularity (items the fit never saw get the minimum)."""
        n = self.log_pop.shape[0]
        known = (items >= 0) & (items < n)
        return np.where(known, self.log_pop[np.where(known, items, 0)], self.log_pop.min())

    def dynamic_utility(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, k] the terms added at serving time (sequence and conformity)."""
        w = self.weights
        out = np.float32(w["sequence"]) * self.user_sequence_affinity(users, items)
        out += (
            np.float32(w["conformity"])
            * self.conformity[users, None]
            * self.popularity_of(items).astype(np.float32)
        )
        return out

    def watch_terms(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """[N] each term the "would you watch this?" rule weighs besides the static utility
        (``fit_watch_rule`` in agents/users/watch_rule.py), by name, for pairs ``users`` /
        ``items`` ([N]); terms without data (no ratings, no genres) are left out."""
        pop = self.popularity_of(items[:, None])[:, 0].astype(np.float64)
        out = {
            "sequence": self.user_sequence_affinity(users, items[:, None])[:, 0].astype(np.float64),
            "conformity": self.conformity[users].astype(np.float64) * pop,
            "log_pop": pop,
        }
        if self.item_rating is not None:
            out["item_rating"] = _per_item(self.item_rating, items)
        if self.item_genres is not None:
            n = self.item_genres.shape[0]
            known = (items >= 0) & (items < n)
            mix = self.item_genres[np.where(known, items, 0)] * known[:, None]
            if self.genre_affinity is not None:
                out["genre"] = (mix * self.genre_affinity[users]).sum(axis=1).astype(np.float64)
            if self.genre_rating is not None:
                liking = (mix * self.genre_rating[users]).sum(axis=1)
                out["genre_rating"] = liking.astype(np.float64)
        if self.log_recent is not None:
            out["log_recent"] = _per_item(self.log_recent, items)
        if self.local_popularity is not None and self.user_window is not None:
            n = self.local_popularity.shape[1]
            known = (items >= 0) & (items < n)
            table = self.local_popularity
            local = table[self.user_window[users], np.where(known, items, 0)]
            out["local_pop"] = np.where(known, local, table.min()).astype(np.float64)
        if self.user_activity is not None:
            out["activity"] = self.user_activity[users].astype(np.float64)
        if self.item_year is not None and self.user_era is not None:
            n = self.item_year.shape[0]
            inside = (items >= 0) & (items < n)
            year = np.where(inside, self.item_year[np.where(inside, items, 0)], np.nan)
            era = self.user_era[users].astype(np.float64)
            gap = (year - era[:, 0]) / era[:, 1]
            known = np.isfinite(gap)
            out["era_gap"] = np.where(known, gap * gap, 1.0)  # 1: a gap's expected square
        return out

    def push(self, users: np.ndarray, items: np.ndarray) -> None:
        """Append one consumption per (distinct) user to their recent items."""
        if users.size == 0:
            return
        self.recent[users, :-1] = self.recent[users, 1:]
        self.recent[users, -1] = items

    # ------------------------------------------------------------------- ratings
    def rating_probabilities(
        self,
        surplus: np.ndarray,
        users: np.ndarray,
        dynamic: np.ndarray | None = None,
    ) -> np.ndarray:
        """[N, 5] P(stars = 1..5) of the ordinal model. ``dynamic``: the part of each surplus
        that :meth:`dynamic_utility` contributed, which the model weighs apart (see
        ``fit_ordinal``'s use in agents/users/calibration.py)."""
        latent = self._latent(surplus, users, dynamic)
        cuts = np.asarray(self.ordinal["cuts"], np.float64)
        below = ndtr(cuts[None, :] - latent[:, None])  # P(stars ≤ k), k = 1..4
        cdf = np.concatenate([np.zeros((latent.size, 1)), below, np.ones((latent.size, 1))], 1)
        return np.diff(cdf, axis=1)

    def draw_ratings(
        self,
        surplus: np.ndarray,
        users: np.ndarray,
        u: np.ndarray,
        dynamic: np.ndarray | None = None,
    ) -> np.ndarray:
        """Stars for each (surplus, user) with the uniforms ``u`` as the noise."""
        noise = ndtri(np.clip(u, 1e-12, 1 - 1e-12))
        latent = self._latent(surplus, users, dynamic) + noise
        cuts = np.asarray(self.ordinal["cuts"], np.float64)
        return 1.0 + (latent[:, None] >= cuts[None, :]).sum(axis=1)

    def _latent(
        self,
        surplus: np.ndarray,
        users: np.ndarray,
        dynamic: np.ndarray | None,
    ) -> np.ndarray:
        slope = float(self.ordinal["slope"])  # type: ignore[arg-type]
        bias_weight = float(self.ordinal["bias_weight"])  # type: ignore[arg-type]
        latent = slope * np.asarray(surplus, np.float64) + bias_weight * self.rating_bias[users]
        if dynamic is not None and "dynamic_slope" in self.ordinal:
            dynamic_slope = float(self.ordinal["dynamic_slope"])  # type: ignore[arg-type]
            latent += (dynamic_slope - slope) * np.asarray(dynamic, np.float64)
        return latent

    # --------------------------------------------------------------------- files
    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {
            "data": self.transitions.data,
            "indices": self.transitions.indices,
            "indptr": self.transitions.indptr,
            "shape": np.asarray(self.transitions.shape),
            "log_pop": self.log_pop,
            "recent": self.recent,
            "conformity": self.conformity,
            "rating_bias": self.rating_bias,
        }
        optional = {
            "item_rating": self.item_rating,
            "genre_affinity": self.genre_affinity,
            "item_genres": self.item_genres,
            "genre_rating": self.genre_rating,
            "log_recent": self.log_recent,
            "local_popularity": self.local_popularity,
            "user_window": self.user_window,
            "user_activity": self.user_activity,
            "item_year": self.item_year,
            "user_era": self.user_era,
        }
        arrays.update({name: value for name, value in optional.items() if value is not None})
        np.savez_compressed(path, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path, scalars: dict) -> SequentialInterest:
        with np.load(path) as z:
            matrix = sp.csr_matrix(
                (z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"].tolist())
            )
            return cls(
                transitions=matrix,
                log_pop=z["log_pop"],
                recent=z["recent"].astype(np.int64),
                conformity=z["conformity"],
                rating_bias=z["rating_bias"],
                weights=dict(scalars["weights"]),
                ordinal=dict(scalars.get("ordinal") or {}),
                config=InterestConfig(**scalars["config"]),
                item_rating=z["item_rating"] if "item_rating" in z.files else None,
                genre_affinity=z["genre_affinity"] if "genre_affinity" in z.files else None,
                item_genres=z["item_genres"] if "item_genres" in z.files else None,
                genre_rating=z["genre_rating"] if "genre_rating" in z.files else None,
                log_recent=z["log_recent"] if "log_recent" in z.files else None,
                local_popularity=(z["local_popularity"] if "local_popularity" in z.files else None),
                user_window=z["user_window"] if "user_window" in z.files else None,
                user_activity=z["user_activity"] if "user_activity" in z.files else None,
                item_year=z["item_year"] if "item_year" in z.files else None,
                user_era=z["user_era"] if "user_era" in z.files else None,
            )

    def scalars(self) -> dict:
        return {"weights": self.weights, "ordinal": self.ordinal, "config": asdict(self.config)}

    def copy(self) -> SequentialInterest:
        """A copy whose recent items can move without touching this one (one per cell)."""
        twin = replace(self, recent=self.recent.copy())
        twin._reader = self._reader  # read-only: one dense copy serves every copy
        return twin


# ----------------------------------------------------------------------------------- fitting
def transition_matrix(
    user: np.ndarray, item: np.ndarray, n_items: int, window: int, smoothing: float
) -> sp.csr_matrix:
    """Row-normalised directed co-consumption within ``window`` next items (rows sorted by
    user, then time)."""
    rows, cols = [], []
    for step in range(1, window + 1):  # a few vectorised shifts, not a loop over users
        same = user[step:] == user[:-step]
        rows.append(item[:-step][same])
        cols.append(item[step:][same])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    c = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    keep = r != c
    counts = sp.csr_matrix(
        (np.ones(int(keep.sum()), np.float32), (r[keep], c[keep])), shape=(n_items, n_items)
    )
    counts.sum_duplicates()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = np.divide(1.0, totals + smoothing, out=np.zeros_like(totals), where=totals > 0)
    return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts, dtype=np.float32)


def _per_item(values: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``values[items]`` as float64, 0 for items outside the fitted catalogue."""
    known = (items >= 0) & (items < values.shape[0])
    return np.where(known, values[np.where(known, items, 0)], 0.0).astype(np.float64)


def genre_matrix(genres: list[list[str]]) -> np.ndarray | None:
    """[I, G] float32 each item's genres (sorted names) as a row summing to 1, 0 for an item
    without genres; None when no item has any."""
    names = sorted({g for item_genres in genres for g in item_genres})
    if not names:
        return None
    column = {name: g for g, name in enumerate(names)}
    out = np.zeros((len(genres), len(names)), np.float32)
    for i, item_genres in enumerate(genres):
        for g in set(item_genres):
            out[i, column[g]] = 1.0 / len(set(item_genres))
    return out


def genre_affinity(
    user: np.ndarray, item: np.ndarray, n_users: int, item_genres: np.ndarray, shrink: float
) -> np.ndarray:
    """[U, G] log(share of the user's consumptions in genre g / share of all consumptions), the
    user's shares shrunk towards the overall ones by ``shrink`` pseudo-consumptions (a user
    seen once says little); 0 for a genre nobody consumed."""
    n_items = item_genres.shape[0]
    counts = sp.csr_matrix(
        (np.ones(user.size), (user, item)), shape=(n_users, n_items), dtype=np.float64
    )
    profile = np.asarray(counts @ item_genres.astype(np.float64))
    overall = profile.sum(axis=0)
    overall = overall / max(float(overall.sum()), 1e-12)
    shares = (profile + shrink * overall) / (profile.sum(axis=1, keepdims=True) + shrink)
    lift = np.log(np.maximum(shares, 1e-12) / np.maximum(overall, 1e-12))
    return np.where(overall > 0, lift, 0.0).astype(np.float32)


def genre_rating_affinity(
    user: np.ndarray,
    item: np.ndarray,
    rating: np.ndarray,
    n_users: int,
    item_genres: np.ndarray,
    shrink: float,
) -> np.ndarray:
    """[U, G] the user's mean rating offset (stars minus the user's own mean) in each genre,
    each rated item counting by its genre share, shrunk towards 0 by ``shrink`` pseudo-items;
    unrated rows (NaN) are left out. Someone who watches many thrillers may still rate them
    below their comedies; the watch rule asks about watching *and* liking."""
    rated = np.isfinite(rating)
    u, i, r = user[rated], item[rated], rating[rated].astype(np.float64)
    n_rated = np.bincount(u, minlength=n_users)
    mean = np.bincount(u, weights=r, minlength=n_users) / np.maximum(n_rated, 1)
    offset = r - mean[u]
    n_items = item_genres.shape[0]
    weights = sp.csr_matrix((offset, (u, i)), shape=(n_users, n_items), dtype=np.float64)
    counts = sp.csr_matrix((np.ones(u.size), (u, i)), shape=(n_users, n_items), dtype=np.float64)
    genres = item_genres.astype(np.float64)
    total = np.asarray(weights @ genres)
    share = np.asarray(counts @ genres)
    return (total / (share + shrink)).astype(np.float32)


def popularity_timeline(
    user: np.ndarray,
    item: np.ndarray,
    time: np.ndarray,
    n_users: int,
    n_items: int,
    bins: int = TIMELINE_BINS,
    slices: int = TIMELINE_SLICES,
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's popularity around each user's time, for the watch rule.

    The fitting rows in time order are cut into ``bins`` slices of equal size; a window is
    ``slices`` consecutive ones. Returns ``table`` [W, I] float32, the log(1 + consumptions) of
    every item in every window, standardised over items within the window (so windows of
    different periods, and fits on more or fewer rows, share one scale), and ``window`` [U]
    int32, the window centred on the user's last fitting consumption (shifted inside the
    period at its ends; the last window for a user without rows).

    Why: popularity over the whole period is one number per movie, but a user answers at their
    own time. A movie released after it, or one everybody watched five years earlier, differs
    from what was being watched then; what a user watches next (the held-out or test rows) is
    at and after their last consumption, so the window looks both ways. Sizes are shares of
    the consumptions, not of calendar time, so a dataset of weeks and one of decades are read
    alike."""
    slices = max(1, min(slices, bins))
    n_rows = time.size
    if n_rows == 0:
        return np.zeros((bins - slices + 1, n_items), np.float32), np.zeros(n_users, np.int32)
    order = np.argsort(time, kind="stable")
    rank = np.empty(n_rows, np.int64)
    rank[order] = np.arange(n_rows)
    slice_of = np.minimum(rank * bins // n_rows, bins - 1)
    cell = slice_of * n_items + item
    counts = np.bincount(cell, minlength=bins * n_items).reshape(bins, n_items).astype(np.float64)
    cumulative = np.vstack([np.zeros((1, n_items)), np.cumsum(counts, axis=0)])
    table = np.log1p(cumulative[slices:] - cumulative[:-slices])  # [bins - slices + 1, I]
    mean, std = table.mean(axis=1, keepdims=True), table.std(axis=1, keepdims=True)
    table = (table - mean) / np.maximum(std, 1e-9)
    last = np.append(user[1:] != user[:-1], True)  # rows sorted by user, then time
    position = np.ones(n_users)  # share of the rows at or before the user's last one
    position[user[last]] = np.searchsorted(time[order], time[last], side="right") / n_rows
    start = np.rint(position * bins - slices / 2).astype(np.int64)
    window = np.clip(start, 0, bins - slices).astype(np.int32)
    return table.astype(np.float32), window


def era_profile(
    user: np.ndarray, item: np.ndarray, n_users: int, item_year: np.ndarray, shrink: float
) -> np.ndarray:
    """[U, 2] float32 mean and standard deviation of the release years of each user's fitting
    consumptions (items without a year skipped), each moment shrunk towards all rows' by
    ``shrink`` pseudo-consumptions, the spread floored at one year. A user with few dated
    consumptions is read as everyone."""
    year = item_year[item].astype(np.float64)
    known = np.isfinite(year)
    out = np.zeros((n_users, 2), np.float32)
    if not known.any():
        out[:, 1] = 1.0
        return out
    y, u = year[known], user[known]
    mean, second = float(y.mean()), float((y * y).mean())
    weight = np.bincount(u, minlength=n_users) + shrink
    weight = np.where(weight > 0, weight, 1.0)  # no dated rows, no shrinkage: everyone's
    m1 = (np.bincount(u, weights=y, minlength=n_users) + shrink * mean) / weight
    m2 = (np.bincount(u, weights=y * y, minlength=n_users) + shrink * second) / weight
    n = np.bincount(u, minlength=n_users)
    m1, m2 = np.where(n + shrink > 0, m1, mean), np.where(n + shrink > 0, m2, second)
    out[:, 0] = m1
    out[:, 1] = np.sqrt(np.maximum(m2 - m1 * m1, 1.0))
    return out


def last_items(user: np.ndarray, item: np.ndarray, n_users: int, length: int) -> np.ndarray:
    """[U, L] each user's last ``length`` items, oldest first, -1 padded (rows sorted)."""
    out = np.full((n_users, length), -1, np.int64)
    if user.size == 0:
        return out
    counts = np.bincount(user, minlength=n_users)
    ends = np.cumsum(counts)
    from_end = ends[user] - np.arange(user.size) - 1  # 0 for the latest
    use = from_end < length
    out[user[use], length - 1 - from_end[use]] = item[use]
    return out


def log_counts(item: np.ndarray, n_items: int) -> np.ndarray:
    return np.log1p(np.bincount(item, minlength=n_items).astype(np.float64))


def standardise(x: np.ndarray) -> np.ndarray:
    return ((x - x.mean()) / max(float(x.std()), 1e-9)).astype(np.float32)


@dataclass(frozen=True)
class Features:
    """Everything needed to compute the feature vector of any (user, item) pair."""

    mf_utility: object  # callable(user, item) -> [N]
    log_pop: np.ndarray  # [I] standardised
    log_recent: np.ndarray  # [I] standardised
    interest: SequentialInterest  # with zero weights: used for its feature functions
    item_counts: np.ndarray | None = None  # [I] consumptions in the fitting rows

    def matrix(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """[N, F] features of pairs, in the order of ``FEATURES``."""
        seq = self.interest.user_sequence_affinity(user, item[:, None])[:, 0]
        pop = self.log_pop[item]
        return np.stack(
            [
                self.mf_utility(user, item),  # type: ignore[operator]
                pop,
                self.log_recent[item],
                seq,
                self.interest.conformity[user] * pop,
            ],
            axis=1,
        ).astype(np.float64)


def fit_features(
    user: np.ndarray,
    item: np.ndarray,
    time: np.ndarray,
    rating: np.ndarray | None,
    n_users: int,
    n_items: int,
    mf_utility,
    cfg: InterestConfig,
    item_genres: np.ndarray | None = None,
    item_year: np.ndarray | None = None,
) -> Features:
    """Popularity, recency, transitions, per-user conformity/rating bias and, for the watch
    rule, each item's shrunk mean rating, each user's genre affinity and genre rating affinity
    (``item_genres``: :func:`genre_matrix`) and each item's popularity around each user's time
    (:func:`popularity_timeline`), from the fitting rows (sorted by user, then time)."""
    log_pop = standardise(log_counts(item, n_items))
    first, last = (float(time.min()), float(time.max())) if time.size else (0.0, 0.0)
    cutoff = last - cfg.recent_share * (last - first)
    log_recent = standardise(log_counts(item[time >= cutoff], n_items))
    n_user = np.bincount(user, minlength=n_users).astype(np.float64)
    conformity = np.bincount(user, weights=log_pop[item], minlength=n_users) / (n_user + cfg.shrink)
    if rating is not None and np.isfinite(rating).any():
        rated = np.isfinite(rating)
        offset = rating[rated] - rating[rated].mean()
        n_rated = np.bincount(user[rated], minlength=n_users)
        bias = np.bincount(user[rated], weights=offset, minlength=n_users) / (n_rated + cfg.shrink)
        on_item = np.bincount(item[rated], minlength=n_items)
        item_rating = np.bincount(item[rated], weights=offset, minlength=n_items) / (
            on_item + cfg.shrink
        )
    else:
        bias = np.zeros(n_users)
        item_rating = None
    liking = None
    if item_rating is not None and item_genres is not None and rating is not None:
        liking = genre_rating_affinity(user, item, rating, n_users, item_genres, cfg.shrink)
    local, window = popularity_timeline(user, item, time, n_users, n_items)
    interest = SequentialInterest(
        transitions=transition_matrix(user, item, n_items, cfg.window, cfg.smoothing),
        log_pop=log_pop,
        recent=last_items(user, item, n_users, cfg.recent_items),
        conformity=conformity.astype(np.float32),
        rating_bias=bias.astype(np.float32),
        weights=dict.fromkeys(FEATURES, 0.0),
        ordinal={},
        config=cfg,
        item_rating=None if item_rating is None else item_rating.astype(np.float32),
        genre_affinity=(
            None
            if item_genres is None
            else genre_affinity(user, item, n_users, item_genres, cfg.shrink)
        ),
        item_genres=item_genres,
        genre_rating=liking,
        log_recent=log_recent,
        local_popularity=local,
        user_window=window,
        user_activity=standardise(np.log1p(n_user)),
        item_year=item_year,
        user_era=None
        if item_year is None
        else era_profile(user, item, n_users, item_year, cfg.shrink),
    )
    counts = np.bincount(item, minlength=n_items).astype(np.float64)
    return Features(mf_utility, log_pop, log_recent, interest, counts)


@dataclass(frozen=True)
class ChoiceSample:
    """Choice sets of the weight fit: each held-out consumption (the chosen item) against
    unseen items drawn from a known proposal ``q``, as rows grouped by consumption."""

    user: np.ndarray  # [R] int64
    item: np.ndarray  # [R] int64
    group: np.ndarray  # [R] int64: which held-out consumption the row's choice set is
    chosen: np.ndarray  # [R] bool: the consumed item of its set
    log_q: np.ndarray  # [R] float64: log proposal probability of the row's item


def weight_sample(
    features: Features,
    held_user: np.ndarray,
    held_item: np.ndarray,
    seen: np.ndarray,
    n_items: int,
    cfg: InterestConfig,
    seed: int,
) -> ChoiceSample:
    """Every held-out consumption and ``cfg.negatives`` unseen items per consumption, drawn
    from ``q`` = a mix of uniform and popularity-proportional draws (``popular_negatives``);
    items the user has seen are dropped from their set."""
    rng = np.random.default_rng([seed, 17])
    neg_user = np.repeat(held_user, cfg.negatives)
    neg_group = np.repeat(np.arange(held_user.size), cfg.negatives)
    neg_item = rng.integers(0, n_items, neg_user.size)
    counts = features.item_counts
    q = np.full(n_items, 1.0 / max(n_items, 1))
    if cfg.popular_negatives > 0 and counts is not None and counts.sum() > 0:
        share = cfg.popular_negatives
        popular = rng.random(neg_user.size) < share
        neg_item[popular] = rng.choice(n_items, int(popular.sum()), p=counts / counts.sum())
        q = (1.0 - share) * q + share * counts / counts.sum()
    fresh = ~np.isin(neg_user * n_items + neg_item, seen)
    item = np.concatenate([held_item, neg_item[fresh]])
    return ChoiceSample(
        user=np.concatenate([held_user, neg_user[fresh]]),
        item=item,
        group=np.concatenate([np.arange(held_user.size), neg_group[fresh]]),
        chosen=np.concatenate([np.ones(held_user.size, bool), np.zeros(int(fresh.sum()), bool)]),
        log_q=np.log(np.maximum(q[item], 1e-300)),
    )


def fit_conditional_logit(
    x: np.ndarray, sample: ChoiceSample, l2: float = 1e-4
) -> tuple[np.ndarray, float]:
    """Weights ``w`` of a multinomial (conditional) logit ``P(chosen) ∝ exp(w·x − log q)``
    over each choice set, by L-BFGS; returns ``w`` and the mean negative log-likelihood per set.

    Why a choice model with ``− log q``, not a binary logistic regression of consumed against
    drawn items: the regression learns ``log p(i | u) − log q(i)`` (noise-contrastive
    estimation), so with popularity-drawn contrasts the weights subtract popularity from the
    utility, and the simulated user shown a top-10 list would undervalue popular items by
    exactly how the contrasts were drawn. Correcting each item by ``log q`` makes the sampled
    sets a consistent stand-in for a choice among the whole catalogue, which is the choice the
    engine's multinomial logit then makes among the items shown."""
    from scipy.optimize import minimize

    if not sample.chosen.any():
        return np.zeros(x.shape[1]), 0.0
    order, starts, sizes = _by_group(sample.group)
    x, offset, chosen = x[order], -sample.log_q[order], sample.chosen[order]
    groups = starts.size
    x_chosen = x[chosen].sum(axis=0)

    def nll(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = x @ w + offset
        lse = _log_sum_exp(logit, starts, sizes)
        p = np.exp(logit - np.repeat(lse, sizes))
        loss = -(logit[chosen].sum() - lse.sum())
        grad = -(x_chosen - p @ x)
        return loss / groups + 0.5 * l2 * w @ w, grad / groups + l2 * w

    fit = minimize(nll, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B")
    return fit.x, float(fit.fun)


def _by_group(group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows ordered by choice set, where each set starts and its size (for ``reduceat``)."""
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    starts = np.flatnonzero(np.r_[True, sorted_group[1:] != sorted_group[:-1]])
    return order, starts, np.diff(np.append(starts, group.size))


def _log_sum_exp(logit: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """log Σ exp over each set of rows sorted by set (``starts``/``sizes`` of each)."""
    top = np.maximum.reduceat(logit, starts)
    return top + np.log(np.add.reduceat(np.exp(logit - np.repeat(top, sizes)), starts))


def fit_weights(
    features: Features,
    held_user: np.ndarray,
    held_item: np.ndarray,
    seen: np.ndarray,
    n_items: int,
    cfg: InterestConfig,
    seed: int,
) -> dict[str, float]:
    """One weight per feature: the conditional logit (:func:`fit_conditional_logit`) of each
    held-out consumption against unseen items. ``seen`` holds the sorted keys
    ``user * n_items + item`` of every training pair."""
    sample = weight_sample(features, held_user, held_item, seen, n_items, cfg, seed)
    if sample.chosen.all():  # nothing unseen to contrast with: taste alone
        return {name: float(name == "mf") for name in FEATURES}
    w, _ = fit_conditional_logit(features.matrix(sample.user, sample.item), sample)
    return {name: float(v) for name, v in zip(FEATURES, w, strict=True)}


def with_memory(
    features: Features,
    user: np.ndarray,
    item: np.ndarray,
    n_users: int,
    length: int,
    decay: float,
    transitions: sp.csr_matrix | None = None,
    window: int | None = None,
) -> Features:
    """``features`` whose short-term interest reads the last ``length`` items of the fitting
    rows (``user``/``item``, sorted by user then time) with weights ∝ ``decay``**l, and, when
    given, the transition matrix counted over ``window`` next consumptions."""
    cfg = replace(features.interest.config, recent_items=length, decay=decay)
    interest = replace(features.interest, recent=last_items(user, item, n_users, length))
    if transitions is not None and window is not None:
        cfg = replace(cfg, window=window)
        interest = replace(interest, transitions=transitions)
    return replace(features, interest=replace(interest, config=cfg))


def choose_memory(
    features: Features,
    fit_user: np.ndarray,
    fit_item: np.ndarray,
    n_users: int,
    held_user: np.ndarray,
    held_item: np.ndarray,
    seen: np.ndarray,
    n_items: int,
    seed: int,
) -> tuple[Features, list[dict[str, float]]]:
    """How far short-term interest reaches, chosen by how well the weighted model predicts
    held-out consumptions: out-of-sample log-loss of the weight fit over two folds of users
    (each fold's weights fitted on the other). A coordinate search: the window of
    ``config.windows`` first (with the first memory), then the memory of ``config.memories``
    at that window. Returns the chosen features and every candidate's loss (the first of
    equals wins)."""
    cfg = features.interest.config
    if not cfg.memories and not cfg.windows:
        return features, []
    sample = weight_sample(features, held_user, held_item, seen, n_items, cfg, seed)
    memories = [(int(m[0]), float(m[1])) for m in cfg.memories] or [(cfg.recent_items, cfg.decay)]
    windows = [int(w) for w in cfg.windows] or [cfg.window]
    losses: list[dict[str, float]] = []
    scored: dict[tuple[int, int, float], tuple[float, Features]] = {}

    def score(window: int, length: int, decay: float, matrix: sp.csr_matrix) -> float:
        candidate = with_memory(
            features, fit_user, fit_item, n_users, length, decay, matrix, window
        )
        loss = held_out_log_loss(candidate.matrix(sample.user, sample.item), sample)
        scored[(window, length, decay)] = (loss, candidate)
        losses.append({"window": window, "recent_items": length, "decay": decay, "log_loss": loss})
        return loss

    matrices = {
        w: transition_matrix(fit_user, fit_item, n_items, w, cfg.smoothing) for w in windows
    }
    first = memories[0]
    window = windows[int(np.argmin([score(w, *first, matrices[w]) for w in windows]))]
    for length, decay in memories[1:]:
        score(window, length, decay, matrices[window])
    best = min(scored, key=lambda key: scored[key][0])  # dicts keep order: first of equals
    return scored[best][1], losses


def held_out_log_loss(x: np.ndarray, sample: ChoiceSample) -> float:
    """Mean negative log-likelihood per choice set of the conditional logit, each half of the
    users predicted with weights fitted on the other half."""
    fold = sample.user % 2 == 0
    loss = 0.0
    for train in (fold, ~fold):
        part, rest = _rows(sample, train), _rows(sample, ~train)
        if not part.chosen.any() or not rest.chosen.any():
            return 0.0
        w, _ = fit_conditional_logit(x[train], part)
        loss += conditional_nll(x[~train] @ w, rest) * rest.chosen.sum() / sample.chosen.sum()
    return float(loss)


def _rows(sample: ChoiceSample, rows: np.ndarray) -> ChoiceSample:
    """The choice sets of ``rows`` (whole sets: a fold splits by user), renumbered 0.."""
    _, group = np.unique(sample.group[rows], return_inverse=True)
    return ChoiceSample(
        sample.user[rows], sample.item[rows], group, sample.chosen[rows], sample.log_q[rows]
    )


def conditional_nll(score: np.ndarray, sample: ChoiceSample) -> float:
    """Mean negative log-likelihood per set of the chosen rows under ``score − log q``."""
    if not sample.chosen.any():
        return 0.0
    order, starts, sizes = _by_group(sample.group)
    logit = (score - sample.log_q)[order]
    lse = _log_sum_exp(logit, starts, sizes)
    return float(-(logit[sample.chosen[order]].sum() - lse.sum()) / starts.size)


def fit_ordinal(surplus: np.ndarray, bias: np.ndarray, ratings: np.ndarray) -> dict[str, object]:
    """Ordered probit of stars on (surplus, user bias): maximum likelihood of slope, bias
    weight and four increasing cut points (noise sd fixed at 1, so 1/slope is the noise scale
    in utility units)."""
    from scipy.optimize import minimize

    stars = np.clip(np.floor(np.asarray(ratings, np.float64) + 0.5), 1, 5).astype(np.int64)
    s, b = np.asarray(surplus, np.float64), np.asarray(bias, np.float64)
    share = np.cumsum(np.bincount(stars - 1, minlength=5))[:4] / stars.size
    start_cuts = ndtri(np.clip(share, 1e-4, 1 - 1e-4))
    x0 = np.concatenate([[0.1, 1.0, start_cuts[0]], np.log(np.maximum(np.diff(start_cuts), 1e-3))])

    def unpack(x: np.ndarray) -> tuple[float, float, np.ndarray]:
        return x[0], x[1], x[2] + np.concatenate([[0.0], np.cumsum(np.exp(x[3:]))])

    def nll(x: np.ndarray) -> float:
        slope, weight, cuts = unpack(x)
        latent = slope * s + weight * b
        edges = np.concatenate([[-np.inf], cuts, [np.inf]])
        p = ndtr(edges[stars] - latent) - ndtr(edges[stars - 1] - latent)
        return float(-np.log(np.maximum(p, 1e-12)).mean())

    fit = minimize(nll, x0, method="L-BFGS-B")
    slope, weight, cuts = unpack(fit.x)
    return {
        "slope": float(slope),
        "bias_weight": float(weight),
        "cuts": [float(c) for c in cuts],
        "noise_scale": float(1.0 / abs(slope)) if slope else float("inf"),
        "nll": float(fit.fun),
    }
