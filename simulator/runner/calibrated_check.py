"""A calibrated population's files checked against each other and against what the engine does
with them, before any run directory exists.

``CalibratedPopulation.load`` (agents/users/calibrated_population.py) reads whatever its files
hold, and ``resolve_calibrated`` copies the fitted scalars into the scenario without validating
them. So a users file and an items file from two populations (taste 16 topics wide, topics 32), a
negative or absurd visit rate, an interest sidecar (``<stem>.interest.npz``) that is missing, cut
short or from another population, or cut points out of order all passed validate, and every cell
of the run then failed (a numpy broadcast error, ``lam < 0``) after the run directory was made; a
zero-byte sidecar even read as a Ctrl-D ("aborted", exit 130). Each is one line here, naming the
file. The files stay the calibration's own format: this module only reads them.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from recarena.simulator.core.scenario import Population
from recarena.simulator.core.section import MAX_MAGNITUDE

USER_COLUMNS = ("user_id", "taste", "activity", "session_length")
ITEM_COLUMNS = ("item_id", "title", "genres", "topics", "quality", "creator", "creator_name")
_PER_USER = (
    "recent",
    "conformity",
    "rating_bias",
    "genre_affinity",
    "genre_rating",
    "user_window",
    "user_activity",
    "user_era",
)
_PER_ITEM = ("log_pop", "item_rating", "item_genres", "log_recent")


def population_name_problem(path: Path) -> str | None:
    """Why ``path`` cannot name a population to calibrate into (None when it ends in .parquet):
    ``-o pop.json`` wrote the population and then its JSON sidecar over it (the same name), and
    ``-o pop.csv`` wrote Parquet under a CSV name. ``calibrate -o`` and a scenario's
    population.path share this rule."""
    if path.name.endswith(".items.parquet"):
        # the item table of the population <stem>.parquet: calibrating wrote its users over it
        # (and a population of its own beside), so that population read users as items
        owner = path.with_name(path.name.removesuffix(".items.parquet") + ".parquet")
        return (
            f"a name ending in .items.parquet is the item table of the population {owner}; "
            "give the population's own name (its items go beside it)"
        )
    if path.suffix == ".parquet":
        return None
    return (
        "the population is written there as Parquet; give a name ending in .parquet (its "
        "items, JSON and interest files go beside it)"
    )


def overwrite_problem(path: Path) -> str | None:
    """Why calibrating into ``path`` would destroy a file that is not a population (None when
    ``path`` is new, empty or Parquet): ``calibrate DATA -o DATA/ratings.csv``, or a scenario
    whose population.path names its dataset's ratings file, wrote the population's Parquet over
    the user's ratings without a word."""
    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError:
        return None  # the caller's readability check names it
    if head == b"PAR1":
        return None
    return (
        f"{path} exists and is not a Parquet file (a dataset?); calibrating would write the "
        "population over it: name a new .parquet file"
    )


def column_problem(schema: Any, path: Path) -> str | None:
    """Why a column's Arrow type is not the one ``recarena calibrate`` writes (None when every
    one is): list elements that are text, a creator index that is a float or text (both were
    cast without a word: 2.5 became creator 2), genres that are one string."""
    import pyarrow as pa

    def element(name: str) -> Any:
        kind = schema.field(name).type
        return kind.value_type if pa.types.is_list(kind) else pa.null()

    wanted = {
        "taste": ("a list of floats", lambda: pa.types.is_floating(element("taste"))),
        "topics": ("a list of floats", lambda: pa.types.is_floating(element("topics"))),
        "creator": ("an integer index", lambda: pa.types.is_integer(schema.field("creator").type)),
        "genres": ("a list of strings", lambda: pa.types.is_string(element("genres"))),
    }
    for name, (kind, fits) in wanted.items():
        if name in schema.names and not fits():
            return f"{path}: column {name!r} must be {kind}, got {schema.field(name).type}"
    return None


def null_problem(path: Path, columns: tuple[str, ...]) -> str | None:
    """The first of ``columns`` with a missing value (a null creator was cast to a garbage index
    with a numpy warning on stderr, a null taste row failed the load), or a negative creator
    index (the loader indexes its list of names with it: "list assignment index out of
    range", naming neither the column nor the items file)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=[c for c in columns if c not in ("title", "genres")])
    for name in table.column_names:
        column = table[name]
        nulls = column.null_count
        if hasattr(column.type, "value_type"):
            nulls += sum(chunk.flatten().null_count for chunk in column.chunks)
        if nulls:
            return f"{path}: column {name!r} has {nulls} missing value(s)"
    if "creator" in table.column_names and table.num_rows:
        lowest = pc.min(table["creator"]).as_py()
        if lowest is not None and lowest < 0:
            return f"{path}: creator index {lowest} is negative"
    return None


def loaded_problem(population: Any, path: Path) -> str | None:
    """Why a loaded ``CalibratedPopulation`` cannot run (None when it can): its users and items
    disagree, a user's visit rate is negative or beyond the schema's 10^6, a creator index is
    negative or past the items, or its short-term interest model does not fit its sizes."""
    users, items = population.n_users, population.n_items
    if users == 0 or items == 0:
        return f"{path}: {users} users and {items} items; a population needs at least one of each"
    if population.taste.shape[1] != population.topics.shape[1]:
        return (
            f"{path}: users have {population.taste.shape[1]} taste topics but its items "
            f"{population.topics.shape[1]} (<stem>.items.parquet of another population?)"
        )
    if population.taste.shape[1] == 0:
        return f"{path}: taste and topics are empty lists"
    for name in ("activity", "session_length"):
        values = getattr(population, name)
        if values.min() < 0 or values.max() > MAX_MAGNITUDE:
            bad = values[(values < 0) | (values > MAX_MAGNITUDE)][0]
            return f"{path}: {name} {bad:g} is outside 0..{MAX_MAGNITUDE:g} (per day)"
    if population.topics.min() < 0:
        return f"{path}: item topic mixes must not be negative (got {population.topics.min():g})"
    if population.creator.min() < 0 or population.creator.max() >= items:
        bad = population.creator[(population.creator < 0) | (population.creator >= items)][0]
        return f"{path}: creator index {bad} is outside 0..{items - 1} (one per item at most)"
    if population.interest is not None:
        return interest_problem(population.interest, users, items, path)
    return None


def interest_problem(interest: Any, users: int, items: int, path: Path) -> str | None:
    """The interest sidecar's arrays against the population's sizes (a sidecar from another
    population loaded, and the run indexed past its arrays or read another's histories)."""
    where = path.with_suffix(".interest.npz")
    if interest.transitions.shape != (items, items):
        return f"{where}: transitions are {interest.transitions.shape}, not {items} x {items} items"
    for names, expected, what in ((_PER_USER, users, "users"), (_PER_ITEM, items, "items")):
        for name in names:
            array = getattr(interest, name)
            if array is not None and (array.ndim == 0 or array.shape[0] != expected):
                return f"{where}: {name} has {array.shape} rows, not {expected} {what}"
            if array is not None and array.dtype.kind == "f" and not np.isfinite(array).all():
                return f"{where}: {name} has values that are not finite numbers"
    year = interest.item_year  # NaN marks a movie without a year
    if year is not None and (year.ndim != 1 or year.shape[0] != items):
        return f"{where}: item_year has {year.shape} rows, not {items} items"
    if year is not None and np.isinf(year).any():
        return f"{where}: item_year has values that are infinite"
    era = interest.user_era
    if era is not None and (era.ndim != 2 or era.shape[1] != 2 or not (era[:, 1] > 0).all()):
        return f"{where}: user_era is not one (mean, positive spread) pair per user"
    local = interest.local_popularity
    if local is not None and (local.ndim != 2 or local.shape[1] != items):
        return f"{where}: local_popularity has shape {local.shape}, not (windows, {items})"
    recent = interest.recent
    if recent.size and (recent.min() < -1 or recent.max() >= items):
        return f"{where}: recent holds item indices outside -1..{items - 1}"
    if not np.isfinite(interest.transitions.data).all():
        return f"{where}: transitions have values that are not finite numbers"
    return None


def sidecar_problem(users_path: Path, scalars: dict[str, Any]) -> str | None:
    """``<stem>.interest.npz`` must be there when the calibration fitted one (was: left out
    without a word, and the run used the plain rule user instead of the fitted model);
    ``<stem>.json``, when there, must say what the Parquet's calibration says: it is a copy
    for people to read, never read by a run, so an edit to it (or a copy from another
    population) would otherwise be ignored silently."""
    interest = users_path.with_suffix(".interest.npz")
    if "interest" in scalars and not interest.is_file():
        return (
            f"{interest} not found; the calibration in {users_path.name} fitted a short-term "
            "interest model that lives there (calibrate again, or copy it beside the file)"
        )
    sidecar = users_path.with_suffix(".json")
    if not sidecar.exists():
        return None
    try:
        written = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"{sidecar}: not readable JSON ({exc}); delete it or calibrate again"
    if written != scalars:
        differs = sorted(
            key
            for key in set(written) | set(scalars)
            if not isinstance(written, dict) or written.get(key) != scalars.get(key)
        )
        return (
            f"{sidecar} does not match the calibration inside {users_path.name} (differs at "
            f"{', '.join(differs[:3]) or 'the top level'}); the Parquet's is what runs, so an "
            "edit here would be ignored: delete it, or calibrate again"
        )
    return None


def scalars_problem(scalars: Any) -> str | None:
    """The calibration metadata must be a JSON object whose fitted scalars the scenario's own
    schema accepts (a temperature of 0, cut points out of order or not four of them failed
    every cell, since they are copied into the scenario unvalidated)."""
    if not isinstance(scalars, dict):
        return f"its calibration metadata is a JSON {type(scalars).__name__}, not an object"
    fitted = {k: scalars[k] for k in ("temperature", "no_click_utility") if k in scalars}
    if scalars.get("rating_thresholds") is not None:
        fitted["rating_thresholds"] = scalars["rating_thresholds"]
    for value in fitted.values():
        if isinstance(value, float) and not math.isfinite(value):
            return None  # named by the loader's own check, with its hint
    try:
        Population.model_validate(fitted)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        message = error["msg"].removeprefix("Value error, ")
        if message.startswith("@"):  # a model validator names its field itself
            field, _, message = message[1:].partition(": ")
        return f"fitted {field} {fitted.get(field)!r}: {message}"
    return None
