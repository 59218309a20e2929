"""The Gymnasium environments (recarena.gym) under a careless or hostile RL user: gymnasium's
own vector wrappers, masked sampling, and arrays handed back to the caller."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import polars as pl
import pytest

import recarena.gym  # noqa: F401  (registers the environment ids)
from recarena.gym import RecarenaEnv, RecarenaVectorEnv
from recarena.gym.driver import SessionDriver
from recarena.gym.spaces import SlateSpace
from recarena.simulator.core.errors import RecarenaError
from tests.test_gym import CAROUSEL, SMALL


def _no_repeats(slates: np.ndarray, k: int) -> bool:
    flat = np.sort(slates.reshape(-1, k), axis=1)
    return not bool((flat[:, 1:] == flat[:, :-1]).any())


def test_gymnasiums_own_vector_env_samples_slates_without_repeats():
    """Was: gymnasium's batch_space made the single slate space a Box of item ids, so a
    SyncVectorEnv's (or AsyncVectorEnv's) action_space.sample() repeated items within a slate
    and the first step raised 'item 13 appears twice in the slate'."""
    for scenario, k in ((SMALL, 5), (CAROUSEL, 6)):
        vec = gymnasium.make_vec(
            "recarena/Session-v0", num_envs=2, vectorization_mode="sync", scenario=scenario
        )
        assert isinstance(vec.action_space, SlateSpace)
        assert vec.action_space.shape == (2, *vec.single_action_space.shape)
        vec.reset(seed=0)
        vec.action_space.seed(0)
        for _ in range(30):
            action = vec.action_space.sample()
            assert _no_repeats(action, k) and vec.action_space.contains(action)
            vec.step(action)
        vec.close()


def _vector_rollout(scribble: bool) -> list[np.ndarray]:
    env = RecarenaVectorEnv(8, SMALL)
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(150):
        if scribble:  # what an in-place normaliser or a careless replay buffer does
            for value in obs.values():
                value[...] = 0
        action = np.stack([rng.choice(200, 5, replace=False) for _ in range(8)])
        obs, reward, terminated, _, info = env.step(action)
        out += [reward, terminated, obs["user_id"].copy()]
        if scribble:
            for name in ("explore", "session_id", "fatigue", "utility", "examined"):
                info[name][...] = 0
    return out


def test_writing_into_returned_arrays_does_not_change_the_simulation():
    """Was: the vector env's obs["user_id"] and info["explore"], info["session_id"] and
    info["fatigue"] were the engine's own arrays, so writing into them moved sessions to other
    users, changed their novelty intent, noise keys and fatigue without a word."""
    for left, right in zip(_vector_rollout(False), _vector_rollout(True), strict=True):
        np.testing.assert_array_equal(left, right)


def test_masked_samples_are_slates_too():
    """Was: sample(mask=...) and sample(probability=...) went to MultiDiscrete's per-slot draw,
    which repeated items (a slate outside the space, refused by step) and, with the usual
    valid_items() mask, could show a consumed item twice."""
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    space = env.action_space
    space.seed(0)
    valid = env.valid_items()
    valid[:150] = False  # 50 items left: repeats are likely in a per-slot draw
    mask = tuple([valid.astype(np.int8)] * 5)
    probability = tuple([valid / valid.sum()] * 5)
    for _ in range(200):
        for action in (space.sample(mask=mask), space.sample(probability=probability)):
            assert space.contains(action) and valid[action].all()
    env.step(space.sample(mask=mask))
    carousel = RecarenaEnv(CAROUSEL).action_space
    carousel.seed(0)
    rows = tuple(tuple([np.ones(200, np.int8)] * 3) for _ in range(2))
    for _ in range(200):
        assert carousel.contains(carousel.sample(mask=rows))


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (tuple([np.ones(200, np.int8)] * 4), r"^mask: expected 5 per-slot arrays, got 4"),
        (tuple([np.ones(199, np.int8)] * 5), r"^mask\[0\]: shape \(199,\), expected \(200,\)"),
        (tuple([np.ones(200)] * 5), r"^mask\[0\]: expected dtype int8 of 0s and 1s, got float64"),
        (
            tuple([np.eye(200, dtype=np.int8)[0]] * 5),
            r"^mask: slot \[1\] has no allowed item left that is not already in the slate",
        ),
    ],
)
def test_a_mask_that_cannot_give_a_slate_is_named(mask, message):
    space = RecarenaEnv(SMALL).action_space
    with pytest.raises(ValueError, match=message):
        space.sample(mask=mask)


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ("0 1\nfoo bar\n", r"line 2: 'foo' is not an integer user id"),
        ("0 1\n5 999\n", r"user ids must be in \[0, 299\]"),
    ],
)
def test_a_bad_edge_list_is_refused_as_validate_refuses_it(tmp_path, edges, message):
    """Was the graph builder's error, naming the file but not the field validate and run name
    (population.social.graph.path)."""
    (tmp_path / "edges.txt").write_text(edges)
    doc = copy.deepcopy(SMALL)
    doc["population"]["social"] = {
        "graph": {"type": "edge_list", "path": str(tmp_path / "edges.txt")}
    }
    field = r"^scenario: population\.social\.graph\.path: .*edges\.txt: "
    with pytest.raises(RecarenaError, match=field + message):
        RecarenaEnv(doc)


def test_two_environments_never_share_a_log_dir(tmp_path):
    """Was: each env of a SyncVectorEnv given one log_dir wrote the same table files and the last
    to close replaced the others' rows (110 exposures of 450, exit 0); a second env on a folder
    of finished logs replaced them the same way."""
    logs = tmp_path / "logs"
    with pytest.raises(RecarenaError, match=r"^log_dir: .*logs is being written by another"):
        gymnasium.make_vec(
            "recarena/Session-v0",
            num_envs=2,
            vectorization_mode="sync",
            scenario=SMALL,
            log_dir=logs,
        )
    (logs / "_ENV_WRITING").unlink()  # the first sub-env was never closed
    env = RecarenaVectorEnv(2, SMALL, log_dir=logs)
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()
    assert sorted(p.name for p in logs.iterdir() if not p.name.endswith(".parquet")) == []
    with pytest.raises(RecarenaError, match=r"^log_dir: .*logs already holds logs \(creator"):
        RecarenaEnv(SMALL, log_dir=logs)
    assert pl.read_parquet(logs / "exposures.parquet").height == 10


def test_a_failed_build_leaves_its_log_dir_free(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RecarenaError("catalog: broken")

    monkeypatch.setattr(SessionDriver, "_build", broken)
    with pytest.raises(RecarenaError, match=r"^catalog: broken"):
        RecarenaEnv(SMALL, log_dir=tmp_path)
    monkeypatch.undo()
    RecarenaEnv(SMALL, log_dir=tmp_path).close()  # not "being written by another environment"


def test_render_mode_none_is_taken_and_a_mode_is_refused_by_name():
    """Was: gymnasium.make(id, render_mode=None), gymnasium's documented "no rendering" that
    training libraries pass, raised TypeError 'unexpected keyword argument render_mode' with
    the whole scenario in the message; a mode was the same TypeError."""
    env = gymnasium.make("recarena/Session-v0", scenario=SMALL, render_mode=None)
    assert env.render_mode is None
    env.reset(seed=0)
    vec = gymnasium.make_vec(
        "recarena/Session-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        scenario=SMALL,
        render_mode=None,
    )
    assert vec.render_mode is None
    for make in (RecarenaEnv, lambda **kw: RecarenaVectorEnv(2, **kw)):
        with pytest.raises(RecarenaError, match=r"^render_mode: 'human' is not a render mode"):
            make(scenario=SMALL, render_mode="human")


def test_a_masked_action_is_refused_not_unmasked():
    """Was: np.asarray dropped a masked array's mask, so the items under masked slots (meant as
    'nothing here') were shown to the user without a word."""
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    masked = np.ma.masked_array([0, 1, 2, 3, 4], mask=[0, 0, 1, 0, 0])
    with pytest.raises(RecarenaError, match=r"^action: a masked array \(slot \[2\] is masked\)"):
        env.step(masked)
    vec = RecarenaVectorEnv(2, SMALL)
    vec.reset(seed=0)
    rows = np.ma.masked_array(np.arange(10).reshape(2, 5), mask=np.eye(2, 5, 3, dtype=bool))
    with pytest.raises(
        RecarenaError, match=r"^action: a masked array \(env 0 slot \[3\] is masked"
    ):
        vec.step(rows)
    env.step(np.ma.masked_array([0, 1, 2, 3, 4]))  # nothing masked: plain item ids


def test_durations_are_not_item_ids():
    """Was: numpy counts timedelta64 as an integer dtype, so durations were taken as item ids
    (datetime64 was already refused)."""
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    with pytest.raises(RecarenaError, match=r"^action: item ids must be integers, got dtype timed"):
        env.step(np.arange(5).astype("m8[s]"))


def test_a_sweep_is_refused_not_dropped():
    """Was: the environment built the base scenario of a sweep, a world none of its cells runs
    (scenarios/sweep.yaml: population.explore_prob at its default, not 0.1 or 0.4)."""
    doc = copy.deepcopy(SMALL) | {"sweep": {"population.explore_prob": [0.1, 0.4]}}
    message = r"^sweep: the Gym environments build one world, not a sweep over population\.explor"
    with pytest.raises(RecarenaError, match=message):
        RecarenaEnv(doc)
    with pytest.raises(RecarenaError, match=r"^sweep: "):
        gymnasium.make("recarena/Session-v0", scenario="scenarios/sweep.yaml")


def test_observed_histories_past_the_maximum_of_a_batch_are_refused():
    """Was numpy's MemoryError ('Unable to allocate 224. GiB') at construction: history was
    bounded per env, but the batch observes num_envs histories of that length at once."""
    doc = copy.deepcopy(SMALL)
    doc["population"]["users"] = 300_000
    message = r"^history: 100,000 items observed by each of 300,000 envs \(3e\+10 in all\) exceed"
    with pytest.raises(RecarenaError, match=message):
        RecarenaVectorEnv(300_000, doc, history=100_000)
    RecarenaVectorEnv(1_000, SMALL | {"population": {"users": 1_000}}, history=1_000).close()


def test_sampling_a_large_batch_over_a_large_catalog_fits_in_memory():
    """Was numpy's MemoryError ('Unable to allocate 29.8 GiB'): a sample drew a float key per
    item of the catalog for every env, so a 20,000-env batch over 200,000 items asked for
    rows x items floats at each action_space.sample()."""
    space = SlateSpace(200_000, (10,), (20_000,))
    space.seed(0)
    action = space.sample()
    assert action.shape == (20_000, 10) and space.contains(action)


def test_samples_stay_uniform_over_items_and_slots():
    space = SlateSpace(50, (5,), (40_000,))
    space.seed(1)
    action = space.sample()
    assert space.contains(action)
    per_item = np.bincount(action.ravel(), minlength=50)  # 4,000 expected, sd ~60
    assert per_item.min() > 3_700 and per_item.max() < 4_300
    first = np.bincount(action[:, 0], minlength=50)  # 800 expected, sd ~28
    assert first.min() > 650 and first.max() < 950


@pytest.mark.parametrize("make", [lambda: RecarenaEnv(SMALL), lambda: RecarenaVectorEnv(2, SMALL)])
def test_valid_items_after_close_is_named(make):
    """Was: a mask of the closed world's last users, as if the environment were still open
    (step and reset after close already raise)."""
    env = make()
    env.reset(seed=0)
    env.close()
    with pytest.raises(RecarenaError, match=r"^valid_items: the environment is closed"):
        env.valid_items()
