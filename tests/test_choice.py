"""The rule user's attention and choice model, checked against hand computations."""

import math

import numpy as np

from recarena.agents.users.choice import examination_probabilities, mnl_probabilities, sample_choice


def test_examination_follows_power_law():
    p = examination_probabilities(4, 1.0)
    assert np.allclose(p, [1.0, 1 / 2, 1 / 3, 1 / 4])
    assert np.allclose(examination_probabilities(3, 0.0), 1.0)


def test_mnl_matches_hand_computation():
    utility = np.array([[1.0, 2.0, 0.5]])
    examined = np.array([[True, True, False]])
    probs = mnl_probabilities(utility, examined, no_click_utility=1.5, temperature=0.5)
    # by hand: weights exp(u/T) for no-click (1.5), slot0 (1.0), slot1 (2.0); slot2 unexamined
    w = [math.exp(3.0), math.exp(2.0), math.exp(4.0)]
    expected = [w[0] / sum(w), w[1] / sum(w), w[2] / sum(w), 0.0]
    assert np.allclose(probs[0], expected)
    assert np.isclose(probs.sum(), 1.0)


def test_mnl_nothing_examined_means_no_click():
    probs = mnl_probabilities(np.ones((2, 3)), np.zeros((2, 3), bool), 0.0, 1.0)
    assert np.allclose(probs[:, 0], 1.0)


def test_sample_choice_inverse_cdf():
    probs = np.array([[0.2, 0.5, 0.3]] * 3)
    choice = sample_choice(probs, np.array([0.1, 0.6, 0.95]))
    assert choice.tolist() == [-1, 0, 1]


def test_sample_choice_frequencies():
    rng = np.random.default_rng(0)
    probs = np.tile([0.5, 0.3, 0.2], (200_000, 1))
    choice = sample_choice(probs, rng.random(200_000))
    freq = np.bincount(choice + 1, minlength=3) / choice.size
    assert np.allclose(freq, [0.5, 0.3, 0.2], atol=0.005)
