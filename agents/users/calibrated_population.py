"""The calibrated population: what ``calibrate`` (agents/users/calibration.py) returns, what a
calibrated scenario loads, and its files. It lives apart from the fit so that the engine, the
preflight checks and the analysis read a population without reaching the fitting code."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from recarena.agents.users.sequential_interest import SequentialInterest
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.publish import discard, new_token, publish, staging_name


@dataclass
class CalibratedPopulation:
    """Everything the engine needs to run on a calibrated population, plus its provenance."""

    user_id: np.ndarray  # [U] str: the dataset's ids, in the engine's user order
    taste: np.ndarray  # [U, T] float32
    activity: np.ndarray  # [U] float64 sessions per day
    session_length: np.ndarray  # [U] float64 mean consumptions per session
    item_id: np.ndarray  # [I] str
    topics: np.ndarray  # [I, T] float32, rows on the simplex
    quality: np.ndarray  # [I] float32
    creator: np.ndarray  # [I] int32: index into creator_names (first genre)
    creator_names: list[str]
    title: list[str]
    genres: list[list[str]]
    scalars: dict[str, Any] = field(default_factory=dict)
    interest: SequentialInterest | None = None
    """Short-term interest, conformity and ordinal ratings; None = the plain rule user."""
    persona: list[str] | None = None
    """[U] one line of demographics per user when the dataset has them (ML-1M users.dat)."""

    @property
    def n_users(self) -> int:
        return int(self.taste.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.topics.shape[0])

    @property
    def n_topics(self) -> int:
        return int(self.topics.shape[1])

    def non_finite(self) -> str | None:
        """The first fitted quantity the engine would choke on that is NaN or infinite (a
        visit rate of NaN, a temperature of NaN), named; None when every one is finite."""
        scalars = {name: self.scalars.get(name) for name in ("temperature", "no_click_utility")}
        for name, value in scalars.items():
            if not isinstance(value, int | float) or not math.isfinite(value):
                return f"{name} {value}"
        cuts = self.scalars.get("rating_thresholds")
        if cuts is not None and not all(isinstance(c, int | float) for c in cuts):
            return f"rating_thresholds {cuts}"
        arrays = {
            "rating_thresholds": np.asarray(cuts if cuts is not None else [], np.float64),
            "activity": self.activity,
            "session_length": self.session_length,
            "taste": self.taste,
            "topics": self.topics,
            "quality": self.quality,
        }
        for name, array in arrays.items():
            bad = ~np.isfinite(array)
            if bad.any():
                return f"{name} {array[bad].ravel()[0]} ({int(bad.sum())} value(s))"
        return None

    # ---------------------------------------------------------------- files
    @staticmethod
    def paths(path: str | Path) -> tuple[Path, Path, Path]:
        """Users file, items file beside it (``<stem>.items.parquet``) and the JSON sidecar."""
        path = Path(path)
        return path, path.with_suffix(".items.parquet"), path.with_suffix(".json")

    @staticmethod
    def interest_path(path: str | Path) -> Path:
        return Path(path).with_suffix(".interest.npz")

    def save(self, path: str | Path) -> None:
        """Write the users, items, JSON and interest files, then publish them together
        (simulator/core/publish.py): a stop or an error while writing leaves the population that
        was there as it was. Was: each written in place, so a stop while the items file was
        written left this fit's users beside a truncated or older items file."""
        users_path, items_path, json_path = self.paths(path)
        interest_path = self.interest_path(path)
        users_path.parent.mkdir(parents=True, exist_ok=True)
        token = new_token()
        new_users, new_items, new_json, new_interest = (
            staging_name(target, token)
            for target in (users_path, items_path, json_path, interest_path)
        )
        staged: dict[Path, Path | None] = {
            users_path: new_users,
            items_path: new_items,
            json_path: new_json,
            interest_path: new_interest if self.interest is not None else None,
        }
        try:
            meta = {b"recarena.calibration": json.dumps(self.scalars).encode()}
            columns = {
                "user_id": pa.array(self.user_id.astype(str)),
                "taste": pa.array(list(self.taste), pa.list_(pa.float32())),
                "activity": pa.array(self.activity, pa.float64()),
                "session_length": pa.array(self.session_length, pa.float64()),
            }
            if self.persona is not None:
                columns["persona"] = pa.array(self.persona, pa.string())
            users = pa.table(columns).replace_schema_metadata(meta)
            items = pa.table(
                {
                    "item_id": pa.array(self.item_id.astype(str)),
                    "title": pa.array(self.title, pa.string()),
                    "genres": pa.array(self.genres, pa.list_(pa.string())),
                    "topics": pa.array(list(self.topics), pa.list_(pa.float32())),
                    "quality": pa.array(self.quality, pa.float32()),
                    "creator": pa.array(self.creator, pa.int32()),
                    "creator_name": pa.array([self.creator_names[c] for c in self.creator]),
                }
            ).replace_schema_metadata(meta)
            pq.write_table(users, new_users)
            pq.write_table(items, new_items)
            if self.interest is not None:
                self.interest.save(new_interest)
            new_json.write_text(json.dumps(self.scalars, indent=2) + "\n", encoding="utf-8")
            publish(staged, str(path))  # an old interest file goes when this fit has none
        finally:
            discard(staged)

    @classmethod
    def load(cls, path: str | Path) -> CalibratedPopulation:
        users_path, items_path, _ = cls.paths(path)
        for p in (users_path, items_path):
            if not p.exists():
                raise RecarenaError(
                    f"calibrated population file not found: {p} (make it with "
                    "`recarena calibrate DATASET -o FILE`)"
                )
        try:
            users = pq.read_table(users_path)
            items = pq.read_table(items_path)
            scalars = json.loads(users.schema.metadata[b"recarena.calibration"])
        except (pa.ArrowException, OSError, KeyError, TypeError) as exc:
            raise RecarenaError(f"{users_path}: not a calibrated population ({exc})") from None
        creator = items["creator"].to_numpy().astype(np.int32)
        names = items["creator_name"].to_pylist()
        creator_names = [""] * (int(creator.max()) + 1 if creator.size else 0)
        for c, name in zip(creator.tolist(), names, strict=True):
            creator_names[c] = name
        interest_path = cls.interest_path(path)
        interest = (
            SequentialInterest.load(interest_path, scalars["interest"])
            if "interest" in scalars and interest_path.exists()
            else None
        )
        population = cls(
            user_id=np.asarray(users["user_id"].to_pylist()),
            taste=np.stack(users["taste"].to_numpy(zero_copy_only=False)).astype(np.float32),
            activity=users["activity"].to_numpy(),
            session_length=users["session_length"].to_numpy(),
            item_id=np.asarray(items["item_id"].to_pylist()),
            topics=np.stack(items["topics"].to_numpy(zero_copy_only=False)).astype(np.float32),
            quality=items["quality"].to_numpy().astype(np.float32),
            creator=creator,
            creator_names=creator_names,
            title=items["title"].to_pylist(),
            genres=items["genres"].to_pylist(),
            scalars=scalars,
            interest=interest,
            persona=users["persona"].to_pylist() if "persona" in users.column_names else None,
        )
        problem = population.non_finite()
        if problem is not None:
            raise RecarenaError(
                f"{users_path}: fitted {problem} is not a finite number; calibrate it again "
                "from a larger dataset"
            )
        return population


def population_frame(pop: CalibratedPopulation) -> pl.DataFrame:
    """Users as a polars frame (for quick looks and the fidelity report)."""
    return pl.DataFrame(
        {"user_id": pop.user_id, "activity": pop.activity, "session_length": pop.session_length}
    )
