"""Mesa handles onto rows of the user arrays.

Handles are created on demand (``SimulationModel.user(i)`` or ``.users``): creating a Mesa agent
costs tens of microseconds, which for a million users would cost more than simulating their day.
The engine never iterates over agents; it works on whole arrays.
"""

from __future__ import annotations

import mesa
import numpy as np


class UserAgent(mesa.Agent):
    def __init__(self, model: mesa.Model, user_id: int) -> None:
        super().__init__(model)
        self.user_id = user_id

    @property
    def _state(self):
        return self.model.user_state

    @property
    def taste(self) -> np.ndarray:
        return self._state.taste[self.user_id]

    @property
    def activity(self) -> float:
        return float(self._state.activity[self.user_id])

    @property
    def satisfaction(self) -> float:
        return float(self._state.satisfaction[self.user_id])

    @property
    def satiation(self) -> np.ndarray:
        return self._state.satiation[self.user_id]

    @property
    def consumed(self) -> np.ndarray:
        memory = self.model.consumed
        return memory.matrix[self.user_id, : memory.count[self.user_id]].copy()
