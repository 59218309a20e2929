"""The Gymnasium environments (recarena.gym) and the policy arm that brings a policy back."""

from __future__ import annotations

import copy

import gymnasium
import numpy as np
import polars as pl
import pytest
from gymnasium.utils.env_checker import check_env

import recarena.gym  # noqa: F401  (registers the environment ids)
from recarena.gym import RecarenaEnv, RecarenaVectorEnv
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.conftest import TINY

SMALL = {
    "name": "gym_small",
    "seed": 5,
    "horizon": {"days": 2, "tick_seconds": 120},
    "catalog": {"initial_items": 200, "topics": 8},
    "population": {"users": 300},
    "creators": {"count": 5},
    "surface": {"k": 5},
    "arms": [{"name": "env", "recommender": {"type": "random"}}],
}
CAROUSEL = copy.deepcopy(SMALL) | {
    "surface": {"type": "carousel", "cols": 3, "rows": [{"theme": "personalized"}] * 2}
}


def _first_items(obs: dict, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """A fixed, simple policy: random distinct items per env."""
    batch = obs["user_id"].shape[0]
    return np.stack([rng.choice(n, k, replace=False) for _ in range(batch)])


def _rollout(env: RecarenaVectorEnv, seed: int, steps: int) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(0)
    out = []
    for _ in range(steps):
        action = _first_items(obs, 5, env.driver.n_items, rng)
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs["user_id"].copy(), reward.copy(), terminated.copy(), info["utility"]))
    return out


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scenario": SMALL},
        {"scenario": SMALL, "mode": "lifetime", "reward": "return", "lifetime_days": 3},
        {"scenario": CAROUSEL, "reward": "value"},
    ],
)
def test_check_env_passes(kwargs):
    env = RecarenaEnv(**copy.deepcopy(kwargs))
    check_env(env, skip_render_check=True)
    assert env.action_space.shape == env.driver.slate_shape


def test_registered_ids_make_single_and_vector_envs():
    env = gymnasium.make("recarena/Session-v0", scenario=SMALL)
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    vec = gymnasium.make_vec(
        "recarena/Lifetime-v0", num_envs=4, vectorization_mode="vector_entry_point", scenario=SMALL
    )
    obs, _ = vec.reset(seed=1)
    assert vec.observation_space.contains(obs)
    assert len(set(obs["user_id"].tolist())) == 4  # one user per env in a batch


def test_same_seed_same_trajectory_and_other_seed_differs():
    a = _rollout(RecarenaVectorEnv(8, SMALL), seed=3, steps=25)
    b = _rollout(RecarenaVectorEnv(8, SMALL), seed=3, steps=25)
    c = _rollout(RecarenaVectorEnv(8, SMALL), seed=4, steps=25)
    for left, right in zip(a, b, strict=True):
        for x, y in zip(left, right, strict=True):
            np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_reseeding_replays_after_the_world_changed():
    env = RecarenaVectorEnv(8, SMALL)
    first = _rollout(env, seed=3, steps=10)
    again = _rollout(env, seed=3, steps=10)  # same env object: reset(seed) restores the world
    for left, right in zip(first, again, strict=True):
        np.testing.assert_array_equal(left[1], right[1])


def test_two_policies_meet_the_same_users_and_noise():
    """Common random numbers: the first episode of each env serves the same user, and a page
    whose slate is identical gets identical noise, whatever the policy did elsewhere."""
    env_a, env_b = RecarenaVectorEnv(6, SMALL), RecarenaVectorEnv(6, SMALL)
    obs_a, _ = env_a.reset(seed=9)
    obs_b, _ = env_b.reset(seed=9)
    np.testing.assert_array_equal(obs_a["user_id"], obs_b["user_id"])
    slate = np.tile(np.arange(5), (6, 1))
    _, r_a, *_ = env_a.step(slate)
    _, r_b, *_ = env_b.step(slate)
    np.testing.assert_array_equal(r_a, r_b)


def test_rewards_equal_the_logs_of_the_same_run(tmp_path):
    env = RecarenaVectorEnv(10, SMALL, reward="value", log_dir=tmp_path)
    obs, _ = env.reset(seed=2)
    rng = np.random.default_rng(1)
    total_value, clicks, steps = 0.0, 0, 0
    for _ in range(60):
        action = _first_items(obs, 5, env.driver.n_items, rng)
        obs, reward, _, _, info = env.step(action)
        total_value += float(reward.sum())
        clicks += int((reward != 0).sum())
        steps += 10
    env.close()
    interactions = pl.read_parquet(tmp_path / "interactions.parquet")
    sessions = pl.read_parquet(tmp_path / "sessions.parquet")
    exposures = pl.read_parquet(tmp_path / "exposures.parquet")
    u0 = SMALL.get("population", {}).get("no_click_utility", 1.0)
    logged_value = float((interactions["true_utility"] - u0).sum())
    assert interactions.height == clicks
    assert logged_value == pytest.approx(total_value, rel=1e-5)
    assert int(sessions["pages"].sum()) == steps
    assert exposures["request_id"].n_unique() == steps


def test_bad_actions_name_the_action():
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    with pytest.raises(RecarenaError, match=r"^action: shape \(4,\), expected \(5,\)"):
        env.step(np.arange(4))
    with pytest.raises(RecarenaError, match=r"^action: item id 200 at slot \[2\] is not an item"):
        env.step(np.array([0, 1, 200, 3, 4]))
    with pytest.raises(RecarenaError, match=r"^action: item 7 appears twice"):
        env.step(np.array([7, 1, 2, 7, 4]))
    vec = RecarenaVectorEnv(3, SMALL)
    vec.reset(seed=0)
    bad = np.tile(np.arange(5), (3, 1))
    bad[1, 4] = -1
    with pytest.raises(RecarenaError, match=r"^action: item id -1 at env 1 slot \[4\]"):
        vec.step(bad)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ([[0], [1, 2]], r"^action: not an array of item ids"),
        (np.array([0, 1, 2, 3, np.inf]), r"^action: item ids must be integers, got dtype float64"),
        (np.array([0, 1, 2, 3, np.nan]), r"^action: item ids must be integers, got dtype float64"),
        (np.array([0, 1, 2, 3, 1e30], np.float32), r"^action: item id 1e\+30 at slot \[4\]"),
        (np.array([0, 1, 2, 3, 2**64 - 1], np.uint64), r"^action: item id 18446744073709551615 "),
        (np.ones(5, bool), r"^action: item ids must be integers, got dtype bool"),
    ],
)
def test_actions_of_another_kind_name_the_action(action, message):
    """Values are named as given: casting first showed 2**64 - 1 as -1 and 1e30 as -2**63, and
    a ragged list raised numpy's ValueError."""
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    with pytest.raises(RecarenaError, match=message):
        env.step(action)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scenario": 5}, r"^scenario: expected a YAML file path, .* got int"),
        ({"arm": 0.5}, r"^arm: expected an arm's index or name, got 0.5"),
        ({"arm": None}, r"^arm: expected an arm's index or name, got None"),
        ({"replicate": -1}, r"^replicate: -1 is negative"),
        ({"history": 2.5}, r"^history: expected an integer, got 2.5"),
        ({"history": -3}, r"^history: -3 is negative"),
        ({"return_days": -1}, r"^return_days: expected a positive finite number of days, got -1"),
        ({"return_days": "7"}, r"^return_days: expected a positive finite number of days"),
        ({"mode": "lifetime", "lifetime_days": 0}, r"^lifetime_days: expected a positive finite"),
        ({"mode": "lifetime", "lifetime_days": float("inf")}, r"^lifetime_days: .* got inf"),
        ({"log_dir": "FILE"}, r"^log_dir: .*FILE exists and is not a directory"),
        ({"arm": 3}, r"^arm: index 3 out of range \(the scenario has 1 arm\)$"),  # was '1 arms'
    ],
)
def test_bad_environment_arguments_are_named(tmp_path, kwargs, message):
    """Each was a TypeError or numpy error naming nothing, or (negative or infinite days) an
    environment built without complaint."""
    kwargs = {"scenario": SMALL} | kwargs
    if kwargs.get("log_dir") == "FILE":
        (tmp_path / "FILE").write_text("")
        kwargs["log_dir"] = tmp_path / "FILE"
    with pytest.raises(RecarenaError, match=message):
        gymnasium.make("recarena/Session-v0", **kwargs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # was numpy's "kth(=149) out of bounds (100)" at the first step
        (
            {"catalog": {"initial_items": 100, "topics": 8}, "surface": {"k": 150}},
            r"^scenario: surface\.k: 150 slots exceed the catalog's 100 initial items",
        ),
        # was a MemoryError while the world was built
        ({"population": {"users": 10**10}}, r"^scenario: needs ~.* for 10\^10 users"),
    ],
)
def test_a_world_validate_would_refuse_is_refused_before_it_is_built(change, message):
    with pytest.raises(RecarenaError, match=message):
        RecarenaEnv(SMALL | change)
    with pytest.raises(RecarenaError, match=message):
        RecarenaVectorEnv(2, SMALL | change)


def test_an_observed_history_past_the_maximum_is_refused():
    """Was a MemoryError for history=10**9 (an int64 per item and env slot)."""
    with pytest.raises(RecarenaError, match=r"^history: 1,000,000,000 items observed exceed"):
        RecarenaEnv(SMALL, history=10**9)
    RecarenaEnv(SMALL, history=1_000).close()  # long histories stay possible


def test_reset_options_are_refused_not_ignored():
    """Was: reset(options={"user": 3}) started an episode of some other user without a word."""
    env = RecarenaEnv(SMALL)
    with pytest.raises(RecarenaError, match=r"^options: the recarena environments take no"):
        env.reset(seed=0, options={"user": 3})
    vec = RecarenaVectorEnv(2, SMALL)
    with pytest.raises(RecarenaError, match=r"^options: "):
        vec.reset(seed=0, options={"user": 3})
    with pytest.raises(RecarenaError, match=r"^seed: the batched environment takes one seed"):
        vec.reset(seed=[])  # was: IndexError
    env.reset(seed=0, options={})  # an empty mapping is no option


def test_vector_env_count_must_be_an_integer():
    with pytest.raises(RecarenaError, match=r"^num_envs: expected an integer, got 1.5"):
        RecarenaVectorEnv(1.5, SMALL)  # type: ignore[arg-type]


def test_consumed_items_are_shown_as_empty_slots():
    env = RecarenaEnv(SMALL)
    env.reset(seed=0)
    for _ in range(40):  # until the user consumed something
        _, _, done, trunc, info = env.step(np.arange(5))
        if info["blanked"] or done or trunc:
            break
    mask = env.valid_items()
    assert mask.shape == (env.driver.n_items,) and mask.dtype == bool


# ---------------------------------------------------------------------- the policy arm
def lowest_ids_first(obs: dict) -> np.ndarray:
    """A callable policy for the arm test: prefers low item ids, whatever the user."""
    batch = obs["user_id"].shape[0]
    return np.tile(-np.arange(300, dtype=np.float64), (batch, 1))


def test_policy_arm_runs_a_callable_and_a_torch_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.linspace(1.0, 0.0, 300))

        def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
            batch = obs["topic_mix"].shape[0]
            return self.bias.unsqueeze(0).expand(batch, -1) + 0.0 * obs["topic_mix"].sum()

    path = tmp_path / "policy.pt"
    torch.jit.script(Scorer()).save(str(path))
    doc = copy.deepcopy(TINY) | {"replicates": 1}
    doc["arms"] = [
        {"name": "random", "recommender": {"type": "random"}},
        {
            "name": "callable",
            "recommender": {
                "type": "policy",
                "params": {"checkpoint": "tests.test_gym:lowest_ids_first"},
            },
        },
        {"name": "torch", "recommender": {"type": "policy", "params": {"checkpoint": str(path)}}},
    ]
    run = tmp_path / "run"
    run_experiment(parse_scenario(doc), run, executor="local")
    for arm in ("callable", "torch"):
        exposures = pl.read_parquet(next((run / f"arm={arm}").rglob("exposures.parquet")))
        first = exposures.filter(pl.col("page") == 0).group_by("request_id").agg(pl.col("item_id"))
        assert exposures.height > 0
        # low ids first: the first page of a fresh user shows items 0..4
        assert any(sorted(items) == [0, 1, 2, 3, 4] for items in first["item_id"].to_list())


def test_policy_arm_names_a_missing_checkpoint(tmp_path):
    doc = copy.deepcopy(TINY) | {"replicates": 1}
    doc["arms"] = [
        {"name": "p", "recommender": {"type": "policy", "params": {"checkpoint": "nope.pt"}}}
    ]
    with pytest.raises(RecarenaError, match="checkpoint: file not found: nope.pt"):
        run_experiment(parse_scenario(doc), tmp_path / "run", executor="local")


def test_vector_autoreset_same_step_keeps_the_final_observation():
    env = RecarenaVectorEnv(4, SMALL, mode="lifetime", lifetime_days=1)
    obs, _ = env.reset(seed=1)
    slate = np.tile(np.arange(5), (4, 1))
    for _ in range(200):
        obs, _, terminated, truncated, info = env.step(slate)
        done = terminated | truncated
        if done.any():
            row = int(np.flatnonzero(done)[0])
            final = info["final_obs"][row]
            assert info["_final_obs"][row] and env.single_observation_space.contains(final)
            assert final["session"][0] >= 1  # the ended session's pages, not the next one's
            assert obs["session"][row][0] == 0  # already the next episode's first page
            assert not terminated.any()  # lifetimes end by time, users do not churn
            return
    pytest.fail("no lifetime ended in 200 steps")


def test_steps_out_of_order_are_named():
    """Each was accepted: a step before reset or after the episode ended acted on a session
    whose observation the agent never saw, and a step after close raised numpy's broadcast
    error (a reset after close rebuilt nothing and returned an observation)."""
    env = RecarenaEnv(SMALL)
    with pytest.raises(RecarenaError, match=r"^step: call reset\(\) first"):
        env.step(np.arange(5))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(10_000):
        valid = np.flatnonzero(env.valid_items())
        _, _, terminated, truncated, _ = env.step(rng.choice(valid, 5, replace=False))
        if terminated or truncated:
            break
    assert terminated or truncated
    with pytest.raises(RecarenaError, match=r"^step: the episode has ended"):
        env.step(np.arange(5))
    obs, _ = env.reset()  # the next episode: stepping works again
    env.step(np.flatnonzero(env.valid_items())[:5])
    env.close()
    env.close()  # closing twice is harmless
    with pytest.raises(RecarenaError, match=r"^step: the environment is closed"):
        env.step(np.arange(5))
    with pytest.raises(RecarenaError, match=r"^reset: the environment is closed"):
        env.reset(seed=0)


def test_vector_steps_out_of_order_are_named():
    """As the single environment. Was: a step before reset ran on users whose observation the
    agent never saw, a step after close was numpy's broadcast error and a reset after close
    returned an observation of a closed world."""
    env = RecarenaVectorEnv(3, SMALL)
    with pytest.raises(RecarenaError, match=r"^step: call reset\(\) first"):
        env.step(np.tile(np.arange(5), (3, 1)))
    env.reset(seed=0)
    env.step(np.tile(np.arange(5), (3, 1)))
    env.close()
    env.close()  # closing twice is harmless
    with pytest.raises(RecarenaError, match=r"^step: the environment is closed"):
        env.step(np.tile(np.arange(5), (3, 1)))
    with pytest.raises(RecarenaError, match=r"^reset: the environment is closed"):
        env.reset(seed=0)


@pytest.mark.parametrize("under", ["FILE/logs", "FILE/a/b"])
def test_log_dir_under_a_file_is_named(tmp_path, under):
    """Was NotADirectoryError from mkdir, naming no argument."""
    (tmp_path / "FILE").write_text("")
    with pytest.raises(RecarenaError, match=r"^log_dir .*: .*FILE is a file, not a directory"):
        RecarenaEnv(SMALL, log_dir=tmp_path / under)
    assert (tmp_path / "FILE").read_text() == ""


@pytest.mark.parametrize("make", [lambda: RecarenaEnv(SMALL), lambda: RecarenaVectorEnv(2, SMALL)])
def test_a_seed_past_64_bits_is_refused(make):
    """Was taken modulo 2^64: reset(seed=2**64) replayed seed 0's users and noise."""
    env = make()
    with pytest.raises(RecarenaError, match=r"^seed: 18446744073709551616 is past 2\^64-1"):
        env.reset(seed=2**64)
    env.reset(seed=2**64 - 1)  # the largest seed is taken
    env.close()
