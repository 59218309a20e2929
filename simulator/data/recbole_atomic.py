"""Any RecBole atomic dataset: ``<name>.inter`` with typed headers, optional ``<name>.item``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.data.file_checks import beside, check_narrow_text, require
from recarena.simulator.data.interactions import InteractionData, empty_items
from recarena.simulator.data.parsing import check_seconds, checked_columns, ids, without_blank_lines


def _read_atomic(path: Path) -> pl.DataFrame:
    """A RecBole atomic file: tab-separated, header ``name:type`` (token, float, token_seq...)."""
    if path.exists() and not path.is_file():  # a pipe: polars would block, deaf to signals
        raise RecarenaError(f"{path}: not a file (a directory, a pipe or a device)")
    if path.is_file():
        with path.open("rb") as stream:
            check_narrow_text(path, stream.read(4096))
    try:
        frame = pl.read_csv(
            path,
            separator="\t",
            infer_schema=False,
            quote_char=None,
            truncate_ragged_lines=True,
            glob=False,
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecarenaError(f"{path}: not a RecBole atomic file ({exc})") from None
    renamed: dict[str, str] = {}
    for column in frame.columns:
        name, _, kind = column.partition(":")
        if not kind:
            raise RecarenaError(f"{path}: header column {column!r} has no ':type' (RecBole format)")
        if name in renamed.values():  # was: "column 'rating' is duplicate", naming no file
            raise RecarenaError(
                f"{path} line 1: the header names column {name!r} twice (which one is meant?)"
            )
        renamed[column] = name
    return frame.rename(renamed)


def load_recbole(path: str | Path, name: str | None = None) -> InteractionData:
    """A RecBole atomic dataset: ``path`` is the ``.inter`` file or the dataset directory."""
    path = Path(path)
    if path.suffix == ".inter":
        inter_path, name = path, name or path.stem
    else:
        name = name or path.name
        inter_path = path / f"{name}.inter"
    require(inter_path.parent, "RecBole dataset directory")
    require(inter_path, "RecBole interactions file")
    frame = _read_atomic(inter_path)
    for needed in ("user_id", "item_id"):
        if needed not in frame.columns:
            raise RecarenaError(f"{inter_path}: no '{needed}' column; found {frame.columns}")
    frame = without_blank_lines(frame, inter_path)
    timed = ("timestamp",) if "timestamp" in frame.columns else ()
    numbers = (*timed, *(("rating",) if "rating" in frame.columns else ()))
    rated = "rating" if "rating" in frame.columns else None
    frame = checked_columns(
        frame, inter_path, ("user_id", "item_id", *timed), numbers, rating=rated
    )
    if timed:
        check_seconds(frame, "timestamp", inter_path)
    timestamp = (
        frame["timestamp"].cast(pl.Float64).to_numpy()
        if "timestamp" in frame.columns
        else np.arange(frame.height, dtype=np.float64)
    )
    rating = frame["rating"].cast(pl.Float32).to_numpy() if "rating" in frame.columns else None
    item_ids = ids(frame["item_id"])
    items = empty_items()
    item_path = inter_path.with_suffix(".item")
    if beside(item_path):
        table = without_blank_lines(_read_atomic(item_path), item_path)
        title = next((c for c in ("movie_title", "title", "name") if c in table.columns), None)
        genres = next((c for c in ("class", "genre", "genres") if c in table.columns), None)
        year = next((c for c in ("release_year", "year") if c in table.columns), None)
        items = pl.DataFrame(
            {
                "item": ids(table["item_id"]),
                "title": table[title] if title else table["item_id"],
                "genres": (
                    table[genres].fill_null("").str.split(" ").list.filter(pl.element() != "")
                    if genres
                    else [[] for _ in range(table.height)]
                ),
                "year": (
                    table[year].cast(pl.Int32, strict=False)
                    if year
                    else pl.Series([None] * table.height, dtype=pl.Int32)
                ),
            },
            schema_overrides={"genres": pl.List(pl.String), "year": pl.Int32},
        )
        if items["item"].dtype != pl.Int64 and item_ids.dtype.kind == "i":
            item_ids = item_ids.astype(str)
    return InteractionData(
        name=name,
        user=ids(frame["user_id"]),
        item=item_ids,
        timestamp=timestamp,
        rating=rating,
        items=items,
        licence="see the dataset's own licence",
        source=str(inter_path),
    )
