"""The rule-based agenda user of a conversation: a hidden target, answered with numpy.

Each conversation starts with a hidden target (:meth:`AgendaUser.targets`):

* the target genre is drawn with probability ∝ exp(taste_u[g] / target_temperature) among the
  genres that have items, so users look for what they like;
* every other facet in ``target_facets`` gets a value drawn among the items that match the
  target so far (in proportion to how many items have it), so a target always has items;
  facets outside ``target_facets`` stay ``UNKNOWN`` (the user does not care).

On each turn (:meth:`AgendaUser.respond`):

* asked about a facet, the user informs: the target value with probability 1 − answer_noise,
  else one of the other values uniformly; "no preference" (``UNKNOWN``) for a facet it does not
  care about;
* shown items, the user accepts the examined item of highest true utility among those that
  match the target on every target facet and whose utility (the rule users' utility,
  agents/users/rule_user.py) is at least ``accept_threshold``; otherwise, with probability
  ``critique_prob`` and if its best examined item misses the target on some facet, it critiques
  that item (the first missing facet, the value it wants instead, noisy as answers are), else
  it rejects;
* patience drops by ``turn_cost`` every turn and by ``rejection_cost`` more after a
  recommendation with nothing acceptable; at zero the user quits.

All noise is counter-based (recarena.simulator.core.rng) keyed by session and turn, so arms
share it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recarena.simulator.core.dialogue import (
    ACCEPT,
    ASK,
    CRITIQUE,
    INFORM,
    QUIT,
    RECOMMEND,
    REJECT,
    UNKNOWN,
    Facets,
    TurnBatch,
    UserActs,
)
from recarena.simulator.core.rng import combine, uniforms
from recarena.simulator.core.scenario import ConversationUsers
from recarena.simulator.core.types import PAD_ITEM, RequestBatch

# salts of the counter-based uniforms (distinct from the page user's 2, 3 and surfaces' 11-13)
_TARGET, _NOISE, _WRONG, _CRITIQUE = 31, 32, 33, 34

Truth = Callable[[RequestBatch, np.ndarray], np.ndarray]
"""``truth(requests, items [B, k]) -> [B, k]`` true utility of items for the batch's users."""


def draw_categorical(probabilities: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """[B] inverse-CDF draw per row of [B, V] probabilities (rows need not be normalised)."""
    cdf = np.cumsum(probabilities, axis=1)
    cdf /= cdf[:, -1:]
    cdf[:, -1] = 1.0
    return (cdf <= uniform[:, None]).sum(axis=1)


def noisy_value(
    truth: np.ndarray, n_values: np.ndarray, noise: float, u_noise: np.ndarray, u_wrong: np.ndarray
) -> np.ndarray:
    """The true value with probability 1 − noise, else another value uniformly; UNKNOWN stays."""
    others = np.maximum(n_values - 1, 1)
    wrong = np.minimum((u_wrong * others).astype(np.int64), others - 1)
    wrong += wrong >= truth  # skip the true value
    noisy = (u_noise < noise) & (n_values > 1)
    value = np.where(noisy, wrong, truth)
    return np.where(truth == UNKNOWN, UNKNOWN, value).astype(np.int16)


class AgendaUser:
    """Rule-based conversational user (see the module docstring)."""

    needs_transcript = False

    def __init__(
        self,
        cfg: ConversationUsers,
        taste: np.ndarray,
        truth: Truth,
        key: np.uint64,
        no_click_utility: float,
    ) -> None:
        self.cfg = cfg
        self.taste = taste  # [U, T] the live taste array (it may drift)
        self.truth = truth
        self.key = np.uint64(key)
        self.threshold = (
            no_click_utility if cfg.accept_threshold is None else float(cfg.accept_threshold)
        )
        self.no_click_utility = no_click_utility

    # ------------------------------------------------------------------ targets
    def targets(self, users: np.ndarray, session_ids: np.ndarray, facets: Facets) -> np.ndarray:
        batch, n_facets = users.shape[0], len(facets.names)
        target = np.full((batch, n_facets), UNKNOWN, np.int16)
        if batch == 0:
            return target
        key = combine(combine(self.key, session_ids.astype(np.uint64)), _TARGET)
        codes = facets.codes.astype(np.int64)
        genre = facets.index("genre")
        n_genres = len(facets.values[genre])
        # items per combination of facet values ([V_0, ..., V_F-1], a few hundred cells): a
        # target's matching items are counted from it, not by scanning the catalog per user
        dims = tuple(len(v) for v in facets.values)
        joint = np.bincount(
            np.ravel_multi_index(tuple(codes.T), dims), minlength=int(np.prod(dims))
        ).reshape(dims)
        has_items = joint.sum(axis=tuple(f for f in range(n_facets) if f != genre)) > 0
        logits = self.taste[users][:, :n_genres].astype(np.float64) / self.cfg.target_temperature
        # the max over genres that have items: at a low temperature a user whose favourite
        # genre had none got exp(-huge) = 0 for every other genre, and a NaN target
        logits = np.where(has_items, logits, -np.inf)
        weights = np.exp(logits - logits.max(axis=1, keepdims=True))
        chosen = draw_categorical(weights, uniforms(combine(key, genre)))
        # matching[b] = joint counts restricted to the values drawn so far: [B, V_0, ...]
        matching = np.moveaxis(joint, genre, 0)[chosen]  # [B, remaining facets...]
        remaining = [f for f in range(n_facets) if f != genre]
        if "genre" in self.cfg.target_facets:
            target[:, genre] = chosen
        for name in self.cfg.target_facets:
            f = facets.index(name)
            if f == genre:
                continue
            axis = 1 + remaining.index(f)
            others = tuple(a for a in range(1, matching.ndim) if a != axis)
            counts = matching.sum(axis=others).astype(np.float64)  # [B, V] matching items
            value = draw_categorical(counts, uniforms(combine(key, f)))
            target[:, f] = value
            matching = np.take_along_axis(
                matching, value.reshape((-1,) + (1,) * (matching.ndim - 1)), axis=axis
            )
            matching = np.squeeze(matching, axis=axis)
            remaining.remove(f)
        return target

    # ------------------------------------------------------------------ turns
    def respond(self, turn: TurnBatch) -> UserActs:
        cfg = self.cfg
        state, system = turn.state, turn.system
        facets = state.facets
        items = system.slates.items
        batch, k = items.shape
        rows = np.arange(batch)
        n_values = np.array([len(v) for v in facets.values])
        asks = system.act == ASK
        recommends = system.act == RECOMMEND
        u_noise = uniforms(combine(turn.noise_key, _NOISE))
        u_wrong = uniforms(combine(turn.noise_key, _WRONG))
        u_critique = uniforms(combine(turn.noise_key, _CRITIQUE))
        target = turn.target.astype(np.int64)
        care = target != UNKNOWN

        # answers to questions
        asked_facet = np.where(asks, system.facet, 0).astype(np.int64)
        answer = noisy_value(
            target[rows, asked_facet], n_values[asked_facet], cfg.answer_noise, u_noise, u_wrong
        )

        # reactions to recommendations
        valid = items != PAD_ITEM
        utility = self.truth(state.requests, items).astype(np.float32)
        codes = facets.codes[np.where(valid, items, 0)].astype(np.int64)  # [B, k, F]
        on_target = ((codes == target[:, None, :]) | ~care[:, None, :]).all(axis=2) & valid
        examined = turn.examined & valid & recommends[:, None]
        acceptable = examined & on_target & (utility >= self.threshold)
        best = np.where(acceptable, utility, -np.inf).argmax(axis=1)
        accept = acceptable.any(axis=1)
        anchor = np.where(examined, utility, -np.inf).argmax(axis=1)
        anchor_codes = codes[rows, anchor]  # [B, F]
        missing = care & (anchor_codes != target)
        missed_facet = missing.argmax(axis=1)
        critique = (
            recommends
            & ~accept
            & examined.any(axis=1)
            & missing.any(axis=1)
            & (u_critique < cfg.critique_prob)
        )
        wanted = noisy_value(
            target[rows, missed_facet], n_values[missed_facet], cfg.answer_noise, u_noise, u_wrong
        )

        patience = turn.patience - np.float32(cfg.turn_cost)
        patience -= np.where(recommends & ~accept, cfg.rejection_cost, 0.0).astype(np.float32)
        quits = (patience <= 0) & ~accept

        act = np.where(asks, INFORM, np.where(accept, ACCEPT, np.where(critique, CRITIQUE, REJECT)))
        act = np.where(quits, QUIT, act).astype(np.int8)
        facet = np.full(batch, UNKNOWN, np.int16)
        value = np.full(batch, UNKNOWN, np.int16)
        avoided = np.full(batch, UNKNOWN, np.int16)
        informs = act == INFORM
        facet[informs] = asked_facet[informs]
        value[informs] = answer[informs]
        critiques = act == CRITIQUE
        facet[critiques] = missed_facet[critiques]
        value[critiques] = wanted[critiques]
        avoided[critiques] = anchor_codes[critiques, missed_facet[critiques]]
        accepted = np.where(act == ACCEPT, items[rows, best], PAD_ITEM).astype(np.int64)
        chosen = np.where(act == ACCEPT, utility[rows, best], np.nan)
        rating = np.clip(np.rint(3.0 + 1.5 * (chosen - self.no_click_utility)), 1, 5)
        return UserActs(
            act=act,
            facet=facet,
            value=value,
            avoided_value=avoided,
            accepted=accepted,
            utility=np.where(recommends[:, None], utility, np.nan).astype(np.float32),
            rating=rating.astype(np.float32),
            patience=patience.astype(np.float32),
            text=("",) * batch,
        )
