"""Item text for a calibrated catalog: the dataset's real titles and genres.

The first ``n`` catalog items are the dataset's items (agents/users/calibrated.py puts them there in
the file's order); items uploaded during the run have no real text and fall back to the
synthetic provider, so an LLM user still sees every slot described.
"""

from __future__ import annotations

import numpy as np

from recarena.agents.llm.item_text import SyntheticItemText, slate_lines
from recarena.agents.users.calibration import CalibratedPopulation


class CalibratedItemText:
    """Real titles and genres (e.g. MovieLens), with the fitted quality shown as stars."""

    def __init__(self, titles: list[str], genres: list[list[str]], catalog, n_topics: int) -> None:
        self._titles = titles
        self._genres = genres
        self.catalog = catalog
        self._fallback = SyntheticItemText(catalog, n_topics)

    def _split(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        items = np.asarray(items, np.int64)
        return items, items < len(self._titles)

    def titles(self, items: np.ndarray) -> list[str]:
        items, real = self._split(items)
        synthetic = iter(self._fallback.titles(items[~real]))
        return [self._titles[i] if r else next(synthetic) for i, r in zip(items, real, strict=True)]

    def genres(self, items: np.ndarray) -> list[list[str]]:
        items, real = self._split(items)
        synthetic = iter(self._fallback.genres(items[~real]))
        return [
            (self._genres[i] or ["Unknown"]) if r else next(synthetic)
            for i, r in zip(items, real, strict=True)
        ]

    def lines(self, items: np.ndarray) -> list[str]:
        return slate_lines(self, self.catalog.quality, items)


def calibrated_item_text(path, catalog) -> CalibratedItemText:
    """The text provider for the calibrated population file at ``path``."""

    calibrated = CalibratedPopulation.load(path)
    return CalibratedItemText(calibrated.title, calibrated.genres, catalog, catalog.n_topics)
