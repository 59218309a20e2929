"""A trained policy as an arm: ``type: policy`` scores items from the Gym observation.

A policy trained in recarena.gym (docs/rl.md) is A/B-tested like any recommender: the arm
rebuilds, from what a recommender sees (requests and feedback), the observation the
environment gave the policy during training, asks the policy for one score per item, and fills
the slate with the best-scored items the user has not consumed.

``checkpoint`` is either a torch file (TorchScript saved with ``torch.jit.save``, or a whole
module saved with ``torch.save``) or ``"package.module:attr"`` naming any callable. Both receive
the batched observation dict (torch tensors for torch modules, numpy arrays otherwise) and
return ``[B, n]`` scores, n the number of items the policy knows; items published after
training (ids >= n) are never recommended by it.

Observation keys are those of the environment (recarena/gym/spaces.py). Two differ by nature
in an ordinary run: ``slate``, ``clicks`` and ``ratings`` are flat ``[B, k]`` on every surface,
and ``session`` holds zeros for the episode features when ``episode: session`` (as in the
environment's session mode) or, for ``episode: lifetime``, the user's session count and days
since this arm first served the user.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.slates import top_k_from_scores
from recarena.simulator.core.errors import RecarenaError, exception_line
from recarena.simulator.core.paths import path_problem
from recarena.simulator.core.types import (
    DAY,
    PAD_ITEM,
    FeedbackBatch,
    Interactions,
    RequestBatch,
    SlateBatch,
)


class PolicyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    checkpoint: str = Field(min_length=1)
    """A torch file or ``package.module:attr`` (any callable: observation dict -> [B, n])."""
    history: int = Field(10, ge=0, le=1000)
    """Consumed items in the observation's ``history`` window (as the environment's)."""
    episode: Literal["session", "lifetime"] = "session"
    """Which environment mode the policy was trained in (sets the ``session`` features)."""

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_exists(cls, spec: str) -> str:
        """What validate can tell without loading torch: the file exists and looks like a torch
        file, or the callable imports. (Was: only the cell's load_policy looked, so a missing
        checkpoint passed validate and failed the arm's cells after the run was written.)"""
        problem = path_problem(spec)
        if problem is not None:
            raise ValueError(problem)
        path = Path(spec)
        if ":" in spec and not path.exists():
            _import_callable(spec)
            return spec
        if not path.is_file():  # a directory, a pipe or a device is there, but no checkpoint
            raise ValueError(f"{'not a file' if path.exists() else 'file not found'}: {spec}")
        try:
            with path.open("rb") as handle:
                head = handle.read(4)
        except OSError as exc:
            raise ValueError(f"cannot read {spec}: {exc.strerror or exc}") from None
        if not head.startswith(_TORCH_MAGIC):
            raise ValueError(
                f"{spec} is not a torch file (torch.jit.save or torch.save writes a zip archive, "
                "older torch a pickle)"
            )
        return spec


_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")
"""The first bytes of a file torch can load: a zip archive (torch >= 1.6, TorchScript) or a
pickle (legacy torch.save)."""


def _import_callable(spec: str) -> Any:
    """``package.module:attr`` imported, or ValueError saying why not (validate and the cell
    ask the same question)."""
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # noqa: BLE001 - the user's module: any failure is theirs
        raise ValueError(f"cannot load {spec!r}: {type(exc).__name__}: {exc}") from None
    if not callable(obj):
        raise ValueError(f"{spec!r} is not callable")
    return obj


def load_policy(spec: str) -> tuple[Callable[[dict[str, Any]], Any], bool]:
    """The policy and whether it is a torch module (its inputs are then tensors)."""
    path = Path(spec)
    if ":" in spec and not path.exists():
        try:
            obj = _import_callable(spec)
        except ValueError as exc:
            raise RecarenaError(f"recommender.params.checkpoint: {exc}") from None
        return obj, _is_torch_module(obj)
    if not path.is_file():
        problem = "not a file" if path.exists() else "file not found"
        raise RecarenaError(f"recommender.params.checkpoint: {problem}: {spec}")
    import torch  # lazily: only a policy arm with a checkpoint file loads torch (validate too)

    try:
        module = torch.jit.load(str(path), map_location="cpu")
    except RuntimeError:  # not TorchScript: a pickled module
        try:
            module = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - any unpickling failure is the file's fault
            raise RecarenaError(
                f"recommender.params.checkpoint: {spec} is not a torch module: {exc}"
            ) from None
    if not callable(module):
        raise RecarenaError(f"recommender.params.checkpoint: {spec} holds no callable module")
    if hasattr(module, "eval"):
        module.eval()
    return module, True


def _is_torch_module(obj: Any) -> bool:
    return type(obj).__module__.startswith("torch") or any(
        cls.__module__.startswith("torch.nn") for cls in type(obj).__mro__
    )


def policy_scores(
    policy: Callable[[dict[str, Any]], Any], is_torch: bool, obs: dict[str, np.ndarray]
) -> np.ndarray:
    """[B, n] the policy's scores (float64) for a batch of observations; a policy that fails on
    them, or answers with anything but numbers of shape [B, n], is one RecarenaError naming the
    checkpoint (validate asks each policy about a first page, as its arm's cells will)."""
    batch = len(obs["user_id"])
    try:
        if is_torch:
            import torch

            with torch.no_grad():
                out = policy({name: torch.as_tensor(value) for name, value in obs.items()})
            scores = np.asarray(out.detach().cpu().numpy(), np.float64)
        else:
            scores = np.asarray(policy(obs), np.float64)
    except Exception as exc:  # noqa: BLE001 - the user's policy: any failure is one line
        raise RecarenaError(
            "recommender.params.checkpoint: the policy cannot score an observation (a dict of "
            f"{', '.join(obs)}): {exception_line(exc)}"
        ) from None
    if scores.ndim != 2 or scores.shape[0] != batch:
        raise RecarenaError(
            f"recommender.params.checkpoint: the policy returned shape {scores.shape}, "
            f"expected [{batch}, n_items]"
        )
    return scores


def first_page(n_topics: int, history: int, k: int) -> dict[str, np.ndarray]:
    """The observation of one user's first page (nothing consumed, no previous slate): what
    :meth:`PolicyRecommender.observe` gives for it, and the first question every policy arm is
    asked."""
    return {
        "user_id": np.zeros(1, np.int64),
        "topic_mix": np.zeros((1, n_topics), np.float32),
        "history": np.full((1, history), PAD_ITEM, np.int64),
        "slate": np.full((1, k), PAD_ITEM, np.int64),
        "clicks": np.zeros((1, k), np.int8),
        "ratings": np.zeros((1, k), np.float32),
        "session": np.zeros((1, 4), np.float32),
    }


class PolicyRecommender:
    """Ranks items by a trained policy's scores over the environment's observation."""

    Params = PolicyParams
    surfaces = frozenset({"list"})

    def __init__(self, params: PolicyParams, ctx: RecommenderContext) -> None:
        self.name = "policy"
        self.params = params
        self.policy, self.is_torch = load_policy(params.checkpoint)
        n = ctx.n_users
        self.k = 0
        self.last_slate = np.zeros((n, 0), np.int64)
        self.last_clicks = np.zeros((n, 0), np.int8)
        self.last_ratings = np.zeros((n, 0), np.float32)
        self.session_clicks = np.zeros(n, np.float32)
        self.sessions = np.zeros(n, np.float32)
        self.first_seen = np.full(n, np.nan)

    def fit(self, history: Interactions) -> None:
        return None

    # ------------------------------------------------------------------ observation
    def observe(self, requests: RequestBatch) -> dict[str, np.ndarray]:
        """The environment's observation of each request, from what a recommender sees."""
        users, catalog = requests.user, requests.catalog
        exclude = requests.exclude
        valid = exclude != PAD_ITEM
        topics = catalog.topics[np.where(valid, exclude, 0)] * valid[:, :, None]
        mix = topics.sum(axis=1)
        mix = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)
        h = self.params.history
        count = valid.sum(axis=1)
        offsets = np.arange(-h, 0)[None, :] + count[:, None]
        width = max(exclude.shape[1], 1)
        padded = exclude if exclude.shape[1] else np.full((len(requests), 1), PAD_ITEM)
        history = np.where(
            offsets >= 0, np.take_along_axis(padded, np.clip(offsets, 0, width - 1), 1), PAD_ITEM
        )
        fresh = requests.page == 0
        first = np.isnan(self.first_seen[users])
        self.first_seen[users[first]] = requests.time
        if self.k == 0:  # the first batch: a list's slate size (feedback resizes carousels)
            self._resize(requests.k)
        slate = np.where(fresh[:, None], PAD_ITEM, self.last_slate[users])
        clicks = np.where(fresh[:, None], 0, self.last_clicks[users]).astype(np.int8)
        ratings = np.where(fresh[:, None], 0.0, self.last_ratings[users]).astype(np.float32)
        session = np.zeros((len(requests), 4), np.float32)
        session[:, 0] = requests.page
        session[:, 1] = np.where(fresh, 0.0, self.session_clicks[users])
        if self.params.episode == "lifetime":
            session[:, 2] = self.sessions[users]
            session[:, 3] = (requests.time - self.first_seen[users]) / DAY
        return {
            "user_id": users.astype(np.int64),
            "topic_mix": mix.astype(np.float32),
            "history": history.astype(np.int64),
            "slate": slate,
            "clicks": clicks,
            "ratings": ratings,
            "session": session,
        }

    def scores(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        """[B, n] the policy's scores (float64)."""
        return policy_scores(self.policy, self.is_torch, obs)

    def recommend(self, requests: RequestBatch) -> SlateBatch:
        batch, n_items = len(requests), requests.catalog.n_items
        scores = self.scores(self.observe(requests))
        full = np.full((batch, n_items), -np.inf)
        known = min(n_items, scores.shape[1])
        full[:, :known] = scores[:, :known]
        items, top = top_k_from_scores(full, requests.exclude, requests.k)
        return SlateBatch(items, top, np.ones(items.shape, np.float32))

    def _resize(self, k: int) -> None:
        n = self.last_slate.shape[0]
        self.k = k
        self.last_slate = np.full((n, k), PAD_ITEM, np.int64)
        self.last_clicks = np.zeros((n, k), np.int8)
        self.last_ratings = np.zeros((n, k), np.float32)

    def update(self, feedback: FeedbackBatch) -> None:
        """Keep each user's last page (the next observation's slate, clicks and ratings)."""
        users = feedback.requests.user
        items = feedback.slates.items
        k = items.shape[1]
        if k != self.k:
            self._resize(k)
        clicked = feedback.clicked
        rating = feedback.rating if feedback.rating is not None else np.full(len(users), np.nan)
        self.last_slate[users] = items
        self.last_clicks[users] = clicked
        self.last_ratings[users] = np.where(clicked, np.nan_to_num(rating)[:, None], 0.0)
        fresh = feedback.requests.page == 0
        self.session_clicks[users] = np.where(fresh, 0.0, self.session_clicks[users])
        self.session_clicks[users] += clicked.any(axis=1)
        if feedback.session_end is not None:
            self.sessions[users] += feedback.session_end
