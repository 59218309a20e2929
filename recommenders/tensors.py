"""The engine's read-only arrays as torch tensors, without a copy.

The engine hands recommenders read-only views of its state (``read_only`` in
simulator/core/types.py), so a plug-in cannot rewrite the clicks or the catalog by mistake.
``torch.from_numpy`` accepts such a view but warns, once per process, that torch has no
read-only tensors. The recommenders here only read these tensors, so the warning is silenced at
this one place instead of reaching a user's terminal from every worker.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

_NOT_WRITABLE = "The given NumPy array is not writable"

MAX_STEP = 1e3
"""Largest learning rate and regularisation weight a torch model's params accept. Far past any
useful setting, and far below float32's range: lr or reg 1e300 passed validate, then every fit
raised "value cannot be converted to type float without overflow" and every cell failed."""


def reading_tensor(array: np.ndarray) -> Any:
    """``torch.from_numpy(array)`` for an array the caller will only read (no copy)."""
    import torch  # lazily: listing and validating never load torch

    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_NOT_WRITABLE, category=UserWarning)
        return torch.from_numpy(array)
