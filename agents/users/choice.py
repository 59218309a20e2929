"""Attention and choice: pure, vectorised functions so they can be checked by hand.

* Attention is position-based: slot ``j`` is examined with probability ``1/(1+j)**decay``
  (a power-law fall-off, as eye-tracking and click models of ranked lists report).
* Choice is a multinomial logit over the examined items plus a no-click option with utility
  ``u0``: ``P(j) = exp(U_j/T) / (exp(u0/T) + sum_{i examined} exp(U_i/T))``.
"""

from __future__ import annotations

import numpy as np


def examination_probabilities(k: int, decay: float) -> np.ndarray:
    """[k] probability that each slot of a list is looked at."""
    return (1.0 / np.power(np.arange(1, k + 1, dtype=np.float64), decay)).astype(np.float64)


def mnl_probabilities(
    utility: np.ndarray, examined: np.ndarray, no_click_utility: float, temperature: float
) -> np.ndarray:
    """[B, k+1] choice probabilities; column 0 is "no click", column j+1 is slot j.

    Unexamined slots get probability 0. Computed with a max shift for numerical stability.
    """
    scaled = np.where(examined, utility / temperature, -np.inf)
    # one [B, k+1] buffer worked in place: at a few sessions a tick the cost is the number of
    # numpy calls and temporaries, not the arithmetic (same values as concatenating)
    logits = np.empty(
        (utility.shape[0], utility.shape[1] + 1), np.promote_types(scaled.dtype, np.float64)
    )
    logits[:, 0] = no_click_utility / temperature
    logits[:, 1:] = scaled
    logits -= np.maximum.reduce(logits, axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= np.add.reduce(logits, axis=1, keepdims=True)
    return logits


def sample_choice(probabilities: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw per row: -1 for no click, else the chosen slot. ``uniform`` is [B]."""
    cdf = np.add.accumulate(probabilities, axis=1)
    cdf[:, -1] = 1.0  # guard against rounding leaving the last bucket short of 1
    choice = np.add.reduce(cdf <= uniform[:, None], axis=1, dtype=np.int64)
    choice -= 1
    return choice
