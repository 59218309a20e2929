"""Everything recarena does to make RecBole 1.2.1 work on numpy 2 / torch 2.13. Nothing else in
the project patches RecBole; import it only through :func:`import_recbole`.

Why each workaround exists:

* **numpy aliases.** numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_`` and
  ``np.bool8``; RecBole (and its dependencies) still reference them at import time. They are
  restored as aliases of their numpy 2 names before RecBole is imported.
* **scipy dok_matrix._update.** LightGCN, NGCF, GCMC, NCL and SpectralCF build their adjacency
  with the private ``dok_matrix._update(dict)``, which recent scipy removed. It is restored as a
  bulk update of the matrix's internal dict (entries are coordinates → values, as before).
* **pandas < 3** (pinned in pyproject): under pandas 3 RecBole's
  ``feat[field].fillna(..., inplace=True)`` silently does nothing (copy-on-write), leaving NaNs.
* **setuptools < 81** (pinned in pyproject): RecBole's ray 2.6.3 imports ``pkg_resources``.
* **checkpoints.** torch 2.6+ loads with ``weights_only=True``; RecBole's checkpoints hold more
  than weights. The adapter trains in memory and never saves; if a checkpoint is ever loaded,
  it must be one we wrote, with ``weights_only=False``.
* **working directory.** RecBole writes ``log/``, ``log_tensorboard/`` and ``saved/`` into the
  current directory, so training runs inside a temporary directory (:func:`scratch_cwd`); the
  trainer's TensorBoard writer is closed before leaving it, as its thread writes relative paths.
  ``os.chdir`` is process-wide; that is safe because each simulation cell owns its process.
* **global seeds.** RecBole's ``init_seed`` seeds Python, numpy and torch globally. The adapter
  passes a seed drawn from the arm's generator, so runs stay reproducible.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np

_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "bool8": np.bool_,
}


def import_recbole() -> SimpleNamespace:
    """Restore the numpy aliases, then import the RecBole pieces the adapter uses."""
    for name, alias in _NUMPY_ALIASES.items():
        if name not in np.__dict__:
            setattr(np, name, alias)
    _restore_dok_update()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from recbole.config import Config
        from recbole.data import create_dataset, data_preparation
        from recbole.data.interaction import Interaction
        from recbole.utils import ModelType, get_model, get_trainer, init_seed

    return SimpleNamespace(
        Config=Config,
        create_dataset=create_dataset,
        data_preparation=data_preparation,
        Interaction=Interaction,
        ModelType=ModelType,
        get_model=get_model,
        get_trainer=get_trainer,
        init_seed=init_seed,
    )


def _restore_dok_update() -> None:
    from scipy.sparse import dok_matrix

    if not hasattr(dok_matrix, "_update"):

        def _update(self, data: dict) -> None:
            self._dict.update(data)

        dok_matrix._update = _update


@contextlib.contextmanager
def scratch_cwd() -> Iterator[str]:
    """Run RecBole in a throw-away working directory, quietly, and come back."""
    previous = os.getcwd()
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory(prefix="recarena-recbole-") as tmp:
        os.chdir(tmp)
        root.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield tmp
        finally:
            os.chdir(previous)
            root.setLevel(level)
