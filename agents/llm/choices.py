"""Single-token answer labels and the uniforms that draw a scored decision.

Scoring mode reads a decision from the logprobs of the answer's first token, so every option a
prompt offers needs a label that is one token for any tokenizer: the digits, then capital
letters. The draw uses the engine's counter-based uniform for the decision's key (a session and
page or turn) and a purpose constant, so the same question under two arms gets the same answer.
Users, creators and the LLM conversational recommender share these, which is why they live with
the client rather than with any one caller.
"""

from __future__ import annotations

import numpy as np

from recarena.simulator.core.rng import combine, uniforms

NONE_LABEL = "0"
"""The label of "none of them" (no click, no preference) wherever a prompt offers it."""

STARS = ("1", "2", "3", "4", "5")
"""Rating labels; a rating is the value of the drawn label."""

_LABELS = [str(i) for i in range(1, 10)] + [chr(ord("A") + i) for i in range(26)]
MAX_OPTIONS = len(_LABELS)
"""The most options one scored decision can offer (1-9, then A-Z)."""


def slot_labels(k: int) -> list[str]:
    """One single-token label per option: 1-9, then A-Z (0 is kept for "none")."""
    if k > len(_LABELS):
        raise ValueError(f"scoring mode offers at most {len(_LABELS)} options, got {k}")
    return _LABELS[:k]


def arm_salt(rng: np.random.Generator) -> np.uint64:
    """A per-arm constant from the arm's seed sequence, read without advancing ``rng``, so a
    recommender's own draws stay what they are whether or not it has an LLM client."""
    seeds = rng.bit_generator.seed_seq  # type: ignore[attr-defined]
    return np.uint64(seeds.generate_state(1, np.uint64)[0])


def step_key(salt: np.uint64, session: int, step: int) -> int:
    """The decision key of a recommender's (session, page or turn) under its arm's ``salt``."""
    return int(combine(combine(salt, np.array([session])), step)[0])


def key_uniform(noise_key: int, purpose: int) -> float:
    """The counter-based uniform of one decision: ``noise_key`` names the (session, page or
    turn), ``purpose`` the kind of decision, so no two decisions share a stream."""
    return float(uniforms(combine(np.array([noise_key], np.uint64), purpose))[0])


def key_gumbels(noise_key: int, purpose: int, n: int) -> np.ndarray:
    """[n] standard Gumbel noise of one decision, one per option, from its counter-based
    uniforms (clipped to 1e-12, so within [-3.4, 27.7]): the noise of :func:`gumbel_index`."""
    u = uniforms(combine(combine(np.array([noise_key], np.uint64), purpose), np.arange(n)))
    return -np.log(-np.log(np.clip(u, 1e-12, 1.0 - 1e-12)))


def gumbel_index(probs: np.ndarray, noise: np.ndarray) -> int:
    """The option maximising log p + Gumbel noise: a draw from ``probs`` (the Gumbel-max
    trick). Unlike an inverse-CDF draw, the noise is fixed before the distribution is known,
    so the endpoint can be steered to generate the same option (a logit bias of the same
    noise) and a second answer position is then conditioned on the option actually drawn."""
    with np.errstate(divide="ignore"):
        scores = np.where(probs > 0, np.log(probs) + noise, -np.inf)
    return int(np.argmax(scores))
