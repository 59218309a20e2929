"""Hostile real-data inputs to ``calibrate``, ``fidelity`` and ``population.dataset``: each case
was a traceback, a wrong line number or a silent misreading before its fix."""

from __future__ import annotations

import math

import numpy as np

from recarena.analysis.fidelity.common import tv_estimate, user_bootstrap


def test_a_measure_over_no_users_is_not_a_figure() -> None:
    """`fidelity --users 2`: no sampled user clicked in the simulation, so check 2's
    'simulation' row had no user on either side; the bootstrap died in numpy's reshape
    ('cannot reshape array of size 0', an internal error, exit 1). A measure over no users is
    n/a (NaN, no interval): not 0, which would read as 'the same distribution'."""
    empty = np.zeros((0, 5))
    estimate = tv_estimate(empty, empty, np.random.default_rng(0), n_boot=50)
    assert math.isnan(estimate.value) and estimate.low is None and estimate.high is None
    rng = np.random.default_rng(0)
    estimate = user_bootstrap(np.zeros((0, 2, 3)), lambda s: s.sum(axis=(1, 2)), rng)
    assert math.isnan(estimate.value)
    one = user_bootstrap(np.ones((1, 2)), lambda s: s.sum(axis=1), rng)
    assert one.value == 2.0 and one.low is None  # one user: a figure without an interval
