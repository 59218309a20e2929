"""``recarena/Session-v0`` and ``recarena/Lifetime-v0``: one episode at a time (gymnasium.Env).

A thin view of a one-slot :class:`SessionDriver`; the batched environment
(recarena.gym.vector) is the same driver with B slots. See docs/rl.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from recarena.gym.driver import SessionDriver, check_render_mode, check_reset_options
from recarena.gym.scenarios import as_scenario
from recarena.gym.spaces import action_space, observation_space
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import Scenario

ScenarioLike = str | Path | dict[str, Any] | Scenario | None


class RecarenaEnv(gymnasium.Env):
    """One user's session (``mode="session"``) or lifetime (``mode="lifetime"``) per episode.

    Action: the slate, item ids (MultiDiscrete, ``[k]`` or ``[rows, cols]``). Items the user
    already consumed are shown as empty slots. Reward: ``clicks``, ``value``, ``rating``,
    ``pages`` or ``return`` (1 on a session's last page if the user comes back within
    ``return_days``). ``terminated``: the user left; ``truncated``: ``max_pages`` or, in lifetime
    mode, the end of ``lifetime_days``.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
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
            1,
            arm=arm,
            replicate=replicate,
            mode=mode,
            reward=reward,
            return_days=return_days,
            lifetime_days=lifetime_days,
            history=history,
            log_dir=log_dir,
        )
        self.action_space = action_space(self.driver)
        self.observation_space = observation_space(self.driver)
        self._next_obs: dict[str, np.ndarray] | None = None
        self._started = False
        self._closed = False
        self._ended = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """A seed rebuilds the world as it was built and replays the same users and noise;
        without one the next episode starts in the world as the previous ones left it."""
        check_reset_options(options)
        if self._closed:
            raise RecarenaError("reset: the environment is closed; make a new one")
        super().reset(seed=seed)
        if seed is not None or not self._started:
            start = seed if seed is not None else int(self.np_random.integers(2**63))
            batched = self.driver.reset(start)
            self._started = True
        elif self._next_obs is None:  # mid-episode: abandon it and start the next one
            batched = self.driver.restart()
        else:
            batched = self._next_obs
        self._next_obs = None
        self._ended = False
        return _row(batched), {}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        # each was: a step that ran anyway, on a session whose observation the agent never saw
        # (before reset, after the episode ended), or numpy's broadcast error (after close)
        if self._closed:
            raise RecarenaError("step: the environment is closed; make a new one")
        if not self._started:
            raise RecarenaError("step: call reset() first")
        if self._ended:
            raise RecarenaError(
                "step: the episode has ended (terminated or truncated); call reset()"
            )
        try:
            shape = np.shape(action)
        except ValueError as exc:  # ragged nested lists
            raise RecarenaError(f"action: not an array of item ids ({exc})") from None
        if shape != self.driver.slate_shape:
            raise RecarenaError(
                f"action: shape {shape}, expected {self.driver.slate_shape} (item ids)"
            )
        result = self.driver.step(np.asanyarray(action)[None])  # keeps a mask to refuse
        terminated, truncated = bool(result.terminated[0]), bool(result.truncated[0])
        self._ended = terminated or truncated
        info = {name: value[0] for name, value in result.truth.items()}
        if (terminated or truncated) and result.final_obs is not None:
            obs = _row(result.final_obs)
            self._next_obs = self.driver.observe()
        else:
            obs = _row(self.driver.observe())
        return obs, float(result.reward[0]), terminated, truncated, info

    def valid_items(self) -> np.ndarray:
        """[n_items] bool: items the current user has not consumed (for masking a policy)."""
        if self._closed:  # was: a mask of the closed world's last user
            raise RecarenaError("valid_items: the environment is closed; make a new one")
        return self.driver.valid_items()[0]

    def close(self) -> None:
        if not self._closed:
            self.driver.close()
        self._closed = True
        super().close()


def _row(batched: dict[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {name: value[0] for name, value in batched.items()}
    out["user_id"] = np.int64(out["user_id"])
    return out
