"""Gymnasium environments over recarena's simulated users (docs/rl.md).

Importing this package registers the environment ids:

* ``recarena/Session-v0``: one session per episode (RecSim convention), reward = clicks;
* ``recarena/Lifetime-v0``: one user's sessions over ``lifetime_days`` per episode, reward =
  return within ``return_days`` (a retention signal).

Both have a natively batched vector form: ``gymnasium.make_vec(id, num_envs=B,
vectorization_mode="vector_entry_point")`` steps B episodes as one engine batch.
"""

from __future__ import annotations

import gymnasium

from recarena.gym.env import RecarenaEnv
from recarena.gym.vector import RecarenaVectorEnv

__all__ = ["RecarenaEnv", "RecarenaVectorEnv"]

_IDS = {
    "recarena/Session-v0": {"mode": "session", "reward": "clicks"},
    "recarena/Lifetime-v0": {"mode": "lifetime", "reward": "return"},
}

for _id, _kwargs in _IDS.items():
    if _id not in gymnasium.registry:
        gymnasium.register(
            id=_id,
            entry_point="recarena.gym.env:RecarenaEnv",
            vector_entry_point="recarena.gym.vector:RecarenaVectorEnv",
            kwargs=dict(_kwargs),
        )
