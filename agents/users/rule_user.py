"""The rule-based user policy: answers a whole page batch with numpy.

Utility of item i for user u in a session with novelty intent e (0 or 1):

    U = taste_u · x_i + quality_i − satiation_u · x_i + e · w · (1 − familiarity_u · x_i)
        + sequel_weight · x_i[succ(last topic consumed by u)]
        + influence · S_u · x_i        (only with a social graph: agents/users/social.py)

where x_i is the item's topic mix and familiarity_u the user's normalised consumed topic mix.
The sequel term gives histories an order that sequential recommenders can learn.
The surface decides which slots are examined (simulator/engine/surfaces.py); one item (or
nothing) is chosen by multinomial logit among the examined ones, and fatigue decides whether
the session continues.
All noise is counter-based (recarena.simulator.core.rng), keyed by session and page, so it is
shared by arms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recarena.agents.users.choice import mnl_probabilities, sample_choice
from recarena.agents.users.population import UserState
from recarena.agents.users.social import SocialState
from recarena.simulator.core.catalog import Catalog
from recarena.simulator.core.rng import _GOLDEN, _INV_2_53_0D, _S11_0D, _mix64_owned, operand
from recarena.simulator.core.scenario import Population
from recarena.simulator.core.types import PAD_ITEM, PageBatch, ResponseBatch

_CHOOSE, _LEAVE = 2, 3
_PURPOSES = np.array([_CHOOSE, _LEAVE], np.uint64)
_PURPOSE_OFFSETS = (_PURPOSES * _GOLDEN + _GOLDEN)[None, :]
"""``combine(key, purpose)`` is ``mix64(key + purpose·G + G)`` (wrapping): the constant part of
both purposes, added to the page keys in one pass."""
_ZERO_F32, _ONE_F32 = operand(0.0, np.float32), operand(1.0, np.float32)
_RATING_SLOPE, _RATING_MID, _RATING_MAX = (operand(v, np.float32) for v in (1.5, 3.0, 5.0))
"""The rating rule's constants as float32 0-d operands (see ``operand``): the float32 that a
Python scalar would be converted to at every call, converted once."""


@dataclass(frozen=True)
class _PageConstants:
    """The population's per-page constants as float32 0-d operands, made once per config:
    the float32 each Python scalar was converted to at every page batch."""

    cfg: Population
    no_click: np.ndarray
    fatigue_per_page: np.ndarray
    fatigue_no_click: np.ndarray

    @staticmethod
    def of(cfg: Population) -> _PageConstants:
        return _PageConstants(
            cfg,
            operand(cfg.no_click_utility, np.float32),
            operand(cfg.fatigue_per_page, np.float32),
            operand(cfg.fatigue_no_click, np.float32),
        )


class RuleUserPolicy:
    rows_independent = True
    """Each page is answered from its own row and its user's state (simulator/engine/waves.py)."""

    def __init__(
        self,
        cfg: Population,
        users: UserState,
        catalog: Catalog,
        topic_successor: np.ndarray | None = None,
        social: SocialState | None = None,
    ) -> None:
        self.cfg = cfg
        self._constants = _PageConstants.of(cfg)
        self.social = social
        self.users = users
        self.catalog = catalog
        n_topics = catalog.n_topics
        self.topic_successor = (
            np.arange(n_topics) if topic_successor is None else np.asarray(topic_successor)
        )

    def utility(self, users: np.ndarray, items: np.ndarray, explore: np.ndarray) -> np.ndarray:
        """[B, k] true utility of ``items`` for ``users`` at this moment (PAD slots: -inf)."""
        return self._utility(users, items, explore, items != PAD_ITEM)

    def _utility(
        self, users: np.ndarray, items: np.ndarray, explore: np.ndarray, valid: np.ndarray
    ) -> np.ndarray:
        """:meth:`utility` given ``valid = items != PAD_ITEM``. A page batch is a few sessions
        at small populations, where each numpy call costs more than its arithmetic: full
        slates (the common case) skip the PAD masking, and reductions call the ufunc."""
        state = self.users
        all_valid = bool(valid.all())
        safe_items = items if all_valid else np.where(valid, items, 0)
        familiarity = state.familiarity[users]
        familiarity /= np.maximum(np.add.reduce(familiarity, axis=1, keepdims=True), 1.0)
        novelty = np.float32(self.cfg.novelty_weight) * explore.astype(np.float32)
        weights = state.taste[users] - state.satiation[users] - novelty[:, None] * familiarity
        if self.cfg.sequel_weight:
            last = state.last_topic[users]
            has_last = (last >= 0).nonzero()[0]
            weights[has_last, self.topic_successor[last[has_last]]] += self.cfg.sequel_weight
        if self.social is not None:  # neighbours' recent topics, linear in x_i like taste
            weights += self.social.topic_signal(users)
        topics = self.catalog.topics[safe_items]  # [B, k, T]
        utility = np.einsum("bkt,bt->bk", topics, weights)
        utility += self.catalog.quality[safe_items] + novelty[:, None]
        if self.social is not None and self.social.talk is not None:  # mentions heard
            utility += self.social.talk.boost(users, safe_items)
        if all_valid and utility.dtype == np.float32:
            return utility
        return np.where(valid, utility, -np.inf).astype(np.float32)

    def respond(self, pages: PageBatch) -> ResponseBatch:
        cfg = self.cfg
        if self._constants.cfg is not cfg:  # the config was replaced after construction
            self._constants = _PageConstants.of(cfg)
        constants = self._constants
        items = pages.slates.items
        valid = items != PAD_ITEM
        # through utility(), so a subclass overriding it or its _utility hook is what users
        # choose by (the calibrated policy adds its terms in _utility)
        utility = self.utility(pages.requests.user, items, pages.explore)

        examined = pages.examined & valid

        probs = mnl_probabilities(utility, examined, cfg.no_click_utility, cfg.temperature)
        # both per-page uniforms (choice, leaving) in one hash pass: [B, 2], the bits of
        # uniforms(combine(noise_key, purpose)) computed in place in one buffer
        bits = np.asarray(pages.noise_key, np.uint64)[:, None] + _PURPOSE_OFFSETS
        _mix64_owned(_mix64_owned(bits))
        bits >>= _S11_0D
        noise = bits.astype(np.float64)
        noise *= _INV_2_53_0D
        choice = sample_choice(probs, noise[:, 0])
        clicked = choice[:, None] == np.arange(items.shape[1])  # no click (-1) matches no slot
        has_click = choice >= 0

        chosen_utility = np.empty(items.shape[0], np.float32)
        chosen_utility.fill(np.nan)
        chosen_utility[has_click] = utility[clicked]  # one clicked slot per clicking row
        surplus = chosen_utility - constants.no_click
        if cfg.rating_thresholds is None:
            rating = _RATING_SLOPE * surplus
            rating += _RATING_MID
            np.rint(rating, out=rating)
            np.maximum(rating, _ONE_F32, out=rating)  # np.clip(rating, 1, 5), no wrappers
            np.minimum(rating, _RATING_MAX, out=rating)
        else:  # calibrated cut points on the surplus (agents/users/calibration_choice.py)
            stars = 1.0 + np.searchsorted(cfg.rating_thresholds, surplus, side="right")
            rating = np.where(has_click, stars, np.nan)

        fatigue = pages.fatigue + constants.fatigue_per_page
        fatigue += np.where(has_click, _ZERO_F32, constants.fatigue_no_click)
        leave_p = _ONE_F32 - np.exp(-fatigue)
        leave = noise[:, 1] < leave_p
        return ResponseBatch(
            examined=examined,
            clicked=clicked,
            utility=utility,
            rating=np.asarray(rating, np.float32),
            leave=leave,
            fatigue=np.asarray(fatigue, np.float32),
            extra={"value": np.where(has_click, surplus, _ZERO_F32)},
        )
