"""A natively batched vector environment: B episodes stepped as ONE engine page batch.

Not B Python environments: one :class:`SessionDriver` holds B slots, and every ``step`` is one
``show`` and one ``close`` of the engine's page step over all of them, so the cost per step is a
few dozen numpy calls whatever B is.

Autoreset is ``SAME_STEP``: a slot whose episode ended returns the first observation of its next
episode at once; the ended episode's last observation is in ``info["final_obs"]`` (an object
array of per-env dicts, masked by ``info["_final_obs"]``), as gymnasium's vector API specifies.
``info`` also carries the simulator's truth per env (utilities, examination, fatigue, intent,
satisfaction, days until the user returns) for analysis only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from recarena.gym.driver import SessionDriver, check_render_mode, check_reset_options
from recarena.gym.env import ScenarioLike
from recarena.gym.scenarios import as_scenario
from recarena.gym.spaces import action_space, observation_space
from recarena.simulator.core.errors import RecarenaError


class RecarenaVectorEnv(VectorEnv):
    """B sessions (or lifetimes) of distinct users, one engine batch per step."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        scenario: ScenarioLike = None,
        *,
        arm: int | str = 0,
        replicate: int = 0,
        mode: str = "session",
        reward: str = "clicks",
        return_days: float = 7.0,
        lifetime_days: float | None = None,
        history: int = 10,
        log_dir: str | Path | None = None,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode)
        self.render_mode = render_mode
        self.driver = SessionDriver(
            as_scenario(scenario),
            num_envs,
            arm=arm,
            replicate=replicate,
            mode=mode,
            reward=reward,
            return_days=return_days,
            lifetime_days=lifetime_days,
            history=history,
            log_dir=log_dir,
        )
        self.num_envs = num_envs
        self.single_action_space = action_space(self.driver)
        self.single_observation_space = observation_space(self.driver)
        self.action_space = action_space(self.driver, (num_envs,))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self._started = False

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """A seed rebuilds the world as built and replays the same users and noise; without one,
        every env abandons its episode and starts the next in the world as it is."""
        check_reset_options(options)
        if self.closed:  # as the single environment: was a reset of a closed driver
            raise RecarenaError("reset: the environment is closed; make a new one")
        if isinstance(seed, list):  # one seed drives the whole batch (common random numbers)
            if not seed or any(s != seed[0] for s in seed):
                raise RecarenaError(
                    "seed: the batched environment takes one seed for all envs, got a list"
                )
            seed = seed[0]
        super().reset(seed=seed)
        if seed is not None or not self._started:
            start = seed if seed is not None else int(self.np_random.integers(2**63))
            self._started = True
            return self.driver.reset(start), {}
        return self.driver.restart(), {}

    def step(
        self, actions: Any
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        # as the single environment; each was a step that ran anyway (before reset, on users
        # whose observation the agent never saw) or numpy's broadcast error (after close)
        if self.closed:
            raise RecarenaError("step: the environment is closed; make a new one")
        if not self._started:
            raise RecarenaError("step: call reset() first")
        result = self.driver.step(actions)
        info: dict[str, Any] = dict(result.truth)
        done = result.terminated | result.truncated
        if result.final_obs is not None:
            names = list(result.final_obs)
            per_row = zip(*(list(result.final_obs[name]) for name in names), strict=True)
            final = np.full(self.num_envs, None, dtype=object)
            final[done] = [dict(zip(names, values, strict=True)) for values in per_row]
            info["final_obs"], info["_final_obs"] = final, done
        return self.driver.observe(), result.reward, result.terminated, result.truncated, info

    def valid_items(self) -> np.ndarray:
        """[B, n_items] bool: items each env's user has not consumed (for masking a policy)."""
        if self.closed:  # was: a mask of the closed world's last users
            raise RecarenaError("valid_items: the environment is closed; make a new one")
        return self.driver.valid_items()

    def close_extras(self, **kwargs: Any) -> None:
        self.driver.close()
