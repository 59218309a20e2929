"""The files a scenario names, read before any output directory exists.

A population file that is missing or is not a calibrated population, a dataset to calibrate
from, a persona CSV whose ratings are text, an edge list, a CSV of session start hours, and the
LLM's cache and model (simulator/runner/llm_checks.py). Files are read with the project's own
loaders (the ones the engine uses) and their errors turned into one line naming the file. The
sizes a calibrated population or a dataset sets are returned for the page shapes and the
resource estimate (simulator/runner/resource_estimate.py).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from recarena.agents.users import calibration
from recarena.agents.users.calibrated_population import CalibratedPopulation
from recarena.agents.users.daily_rhythm import pooled_profile_from_csv
from recarena.agents.users.personas import data_traits
from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.paths import check_file_creatable, cwd_note
from recarena.simulator.core.scenario import Scenario
from recarena.simulator.data.archives import is_zip
from recarena.simulator.data.datasets import (
    check_link,
    check_narrow_text,
    detect_format,
    load_dataset,
    recbole_ml100k_dir,
    release_folder,
)
from recarena.simulator.data.parsing import LATEST_SECONDS, PAST_YEAR_5000, number
from recarena.simulator.data.sampling import DEFAULT_MAX_RATINGS, subsample_users
from recarena.simulator.runner.build_check import cell_topics
from recarena.simulator.runner.calibrated_check import (
    ITEM_COLUMNS,
    USER_COLUMNS,
    column_problem,
    loaded_problem,
    null_problem,
    overwrite_problem,
    population_name_problem,
    scalars_problem,
    sidecar_problem,
)
from recarena.simulator.runner.checkpoint_check import check_checkpoints, policies
from recarena.simulator.runner.llm_checks import (
    check_llm_cache,
    check_llm_endpoint,
    check_llm_model,
)
from recarena.simulator.runner.resource_estimate import Sizes

SMALL_FILE_BYTES = 64 * 2**20
"""Data files up to this size are also parsed in full by the engine's own loader."""


def _readable(path: Path, what: str) -> Path:
    check_link(path, what)  # a dangling link or a loop is not 'not found'
    if not path.exists():
        raise RecarenaError(f"{what}: file not found: {path}{cwd_note(path)}")
    if not path.is_file():
        raise RecarenaError(f"{what}: not a file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise RecarenaError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    return path


def _check_calibrated(scenario: Scenario) -> Sizes | None:
    """The calibrated population's files: present, Parquet, the columns the engine reads."""
    pop = scenario.population
    if pop.source != "calibrated" or pop.path is None:
        return None
    users_path, items_path, _ = CalibratedPopulation.paths(pop.path)
    for path in (users_path, items_path):  # a folder, a pipe or a device is no population
        if path.exists() and not path.is_file():
            raise RecarenaError(
                f"population.path: {path} is not a file (a calibrated population is a "
                "Parquet file, with <stem>.items.parquet beside it)"
            )
    if not users_path.exists() or not items_path.exists():
        for path in (users_path, items_path):  # run would calibrate into them
            problem = overwrite_problem(path)
            if problem is not None:
                raise RecarenaError(f"population.path: {problem}")
        named = population_name_problem(users_path) if pop.dataset is not None else None
        if named is not None:  # run would calibrate into it, as calibrate -o would
            raise RecarenaError(f"population.path {users_path}: {named}")
        if pop.dataset is None:
            missing = users_path if not users_path.exists() else items_path
            raise RecarenaError(
                f"population.path: {missing} not found{cwd_note(missing)} and "
                "population.dataset is not set; make it with "
                f"`recarena calibrate DATASET -o {users_path}`"
            )
        check_file_creatable(users_path, "population.path")  # run calibrates into it
        # the users and items the run will calibrate, so page shapes and the estimate see them
        return _check_dataset(pop.dataset, "population.dataset")
    import pyarrow as pa
    import pyarrow.parquet as pq

    wanted = {
        users_path: {"user_id", "taste", "activity", "session_length"},
        items_path: {"item_id", "title", "genres", "topics", "quality", "creator", "creator_name"},
    }
    rows, fitted = {}, {}
    for path, columns in wanted.items():
        _readable(path, "population.path")
        try:
            meta = pq.read_metadata(path)
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise RecarenaError(
                f"population.path: {path} is not a Parquet file ({first_line(exc)})"
            ) from None
        absent = sorted(columns - set(schema.names))
        if absent:
            raise RecarenaError(
                f"population.path: {path} is not a calibrated population (no column "
                f"{', '.join(absent)}; make it with `recarena calibrate`)"
            )
        for name in ("taste", "topics"):
            if name in columns and not pa.types.is_list(schema.field(name).type):
                raise RecarenaError(
                    f"population.path: {path}: column {name!r} must be a list of floats, "
                    f"got {schema.field(name).type}"
                )
        for name in ("activity", "session_length", "quality"):
            if name in columns and not pa.types.is_floating(schema.field(name).type):
                raise RecarenaError(
                    f"population.path: {path}: column {name!r} must be numeric, "
                    f"got {schema.field(name).type}"
                )
        problem = column_problem(schema, path)
        if problem is not None:
            raise RecarenaError(f"population.path: {problem}")
        metadata = schema.metadata or {}
        try:
            scalars = json.loads(metadata[b"recarena.calibration"])
        except (KeyError, ValueError) as exc:
            raise RecarenaError(
                f"population.path: {path} has no readable calibration metadata ({exc!r})"
            ) from None
        problem = scalars_problem(scalars)
        if problem is not None:
            raise RecarenaError(f"population.path: {path}: {problem}")
        rows[path], fitted[path] = meta.num_rows, scalars
    if fitted[items_path] != fitted[users_path]:  # both files are written with one calibration
        raise RecarenaError(
            f"population.path: {items_path} holds another calibration than {users_path.name} "
            "(the items of another population?); calibrate again"
        )
    problem = sidecar_problem(users_path, fitted[users_path])
    if problem is not None:
        raise RecarenaError(f"population.path: {problem}")
    if users_path.stat().st_size + items_path.stat().st_size <= SMALL_FILE_BYTES:
        for path, names in ((users_path, USER_COLUMNS), (items_path, ITEM_COLUMNS)):
            try:  # the data pages themselves: a footer can be intact over damaged pages
                problem = null_problem(path, names)
            except (pa.ArrowException, OSError) as exc:
                raise RecarenaError(
                    f"population.path: {path} cannot be read ({first_line(exc)})"
                ) from None
            if problem is not None:
                raise RecarenaError(f"population.path: {problem}")
        try:  # the engine's own loader, so anything it would refuse is refused now
            population = CalibratedPopulation.load(users_path)
        except RecarenaError as exc:
            raise RecarenaError(f"population.path: {exc}") from None
        except (ValueError, KeyError, TypeError, IndexError, OSError) as exc:
            raise RecarenaError(
                f"population.path: {users_path} cannot be loaded ({first_line(exc)})"
            ) from None
        except (zipfile.BadZipFile, EOFError) as exc:
            # the interest sidecar cut short or empty: an EOFError left to the CLI read as a
            # Ctrl-D at a prompt ("aborted", exit 130)
            raise RecarenaError(
                f"population.path: {users_path.with_suffix('.interest.npz')} is not a NumPy "
                f"archive ({first_line(exc)})"
            ) from None
        problem = loaded_problem(population, users_path)
        if problem is not None:
            raise RecarenaError(f"population.path: {problem}")
    return Sizes(rows[users_path], rows[items_path], *_topics_and_creators(items_path))


def _topics_and_creators(items_path: Path) -> tuple[int, int]:
    """The topics (the width of an item's topic mix) and creators (one past the largest creator
    index, as the loader counts them) of a calibrated population's items file: a resolve puts
    them in catalog.topics and creators.count. Reads one row of topics and the creator column,
    whatever the file's size."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(items_path)
        first = next(handle.iter_batches(batch_size=1, columns=["topics"]), None)
        mix = first.column(0)[0].as_py() if first is not None and first.num_rows else None
        largest = pc.max(pq.read_table(items_path, columns=["creator"]).column(0)).as_py()
    except (pa.ArrowException, OSError) as exc:
        raise RecarenaError(
            f"population.path: {items_path} cannot be read ({first_line(exc)})"
        ) from None
    return len(mix or []), 0 if largest is None else int(largest) + 1


def _check_dataset(dataset: str, what: str) -> Sizes:
    """A dataset to calibrate from: ``ml-100k`` inside RecBole, or a path of a known format,
    read as the run reads it before its first cell (the loader, then the same whole-user sample
    within the ratings budget, then the calibration's data checks), whatever its size: a check
    that skipped large files let a bad line, or a ``surface.k`` larger than the dataset's
    items, through to a run that refused it only after calibrating. The sizes returned are the
    users and items the calibrated population will have. The fit itself (seconds to minutes)
    is left to the run; reading is the run's own first step (measured: a 130 MB ratings.csv
    of 5M ratings, ~2 s and ~1.6 GB)."""
    try:
        with _dataset_errors(Path(dataset)):  # a folder the user may not search: was an
            if dataset == "ml-100k":  # internal PermissionError from guessing its format
                recbole_ml100k_dir()
            else:
                if not dataset.strip():  # Path("") is the working directory
                    raise RecarenaError(
                        "an empty path; give a dataset folder or file, or 'ml-100k'"
                    )
                path = Path(dataset)
                check_link(path, "dataset")  # a loop of links is not 'not found'
                if not path.exists():
                    raise RecarenaError(
                        f"dataset not found: {path}{cwd_note(path)} (or use 'ml-100k')"
                    )
                if not (path.is_file() or path.is_dir()):  # a pipe or a device: may block
                    raise RecarenaError(f"{path} is not a file or a directory of a dataset")
                if not is_zip(path):  # a release's zip: load_dataset unpacks it
                    detect_format(release_folder(path))
            data = subsample_users(load_dataset(dataset), None, 0, DEFAULT_MAX_RATINGS)
            calibration.check_interactions(data)
            indexed = calibration.index(data)
            _, genres, _ = calibration.item_text(data, indexed)
    except RecarenaError as exc:
        raise RecarenaError(f"{what}: {exc}") from None
    return Sizes(
        int(indexed.user_ids.shape[0]),
        int(indexed.item_ids.shape[0]),
        calibration.CalibrationConfig().topics,  # the run calibrates with the defaults
        len(calibration.creators_from_genres(genres)[1]),
    )


@contextmanager
def _dataset_errors(path: Path) -> Iterator[None]:
    """A dataset loader's non-RecarenaError failures (a generic CSV polars cannot cast, an
    unreadable file) as one line naming the dataset."""
    import polars as pl

    try:
        yield
    except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeDecodeError) as exc:
        text = first_line(exc)
        if isinstance(exc, OSError) and exc.strerror:  # as the CLI names one: no '[Errno 13]'
            text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        raise RecarenaError(f"{path}: {text}") from None


def _check_personas(scenario: Scenario) -> None:
    """``personas: {source: data}``: a MovieLens ratings.csv (and movies.csv) with numeric ids
    and ratings, parsed in full (streaming) so a bad row deep in the file is found now."""
    panel = scenario.population.llm_panel
    if panel is None or panel.personas.source != "data" or panel.personas.path is None:
        return
    import polars as pl

    what = "population.llm_panel.personas.path"
    ratings = _readable(Path(panel.personas.path), what)
    movies = _readable(ratings.with_name("movies.csv"), what)
    schemas: dict[Path, dict[str, Any]] = {
        ratings: {"userId": pl.Int64, "movieId": pl.Int64, "rating": pl.Float64},
        movies: {"movieId": pl.Int64, "genres": pl.String},
    }
    for path, schema in schemas.items():
        try:
            with path.open("rb") as handle:
                check_narrow_text(path, handle.read(4096))
        except RecarenaError as exc:
            raise RecarenaError(f"{what}: {exc}") from None
        try:
            header = pl.scan_csv(path, infer_schema=False, glob=False).collect_schema().names()
            missing = [c for c in schema if c not in header]
            if missing:
                raise RecarenaError(
                    f"{what}: {path} has no column {', '.join(missing)} "
                    f"(found {', '.join(header[:8])})"
                )
            frame = pl.scan_csv(path, schema_overrides=schema, glob=False).select(list(schema))
            rows = frame.select(pl.len()).collect().item()
            frame.select(pl.all().drop_nulls().len()).collect()  # forces every value to parse
            if path == ratings:  # the traits average stars: inf, nan or a 1-10 scale gave
                # NaN or skewed traits without a word (calibrate refuses the same values)
                stars = pl.col("rating")
                off = frame.filter(stars.is_nan() | ~stars.is_between(0.5, 5)).head(1).collect()
                if off.height:
                    raise RecarenaError(
                        f"{what}: {path}: rating {off['rating'][0]} (user {off['userId'][0]}, "
                        f"movie {off['movieId'][0]}) is outside the 0.5-5 star scale"
                    )
        except RecarenaError:
            raise
        except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as exc:
            raise RecarenaError(f"{what}: {path}: {first_line(exc)}") from None
        if rows == 0:
            raise RecarenaError(f"{what}: {path} has no rows")
    if ratings.stat().st_size <= SMALL_FILE_BYTES:
        try:
            data_traits(ratings)
        except RecarenaError as exc:
            raise RecarenaError(f"{what}: {exc}") from None
        except (pl.exceptions.PolarsError, ValueError, KeyError, TypeError) as exc:
            raise RecarenaError(f"{what}: {ratings}: {first_line(exc)}") from None


EdgeReader = Callable[[Path, int], Any]
"""agents.users.social.read_edge_list, passed in by the caller: importing it here would load
networkx and scipy into every ``validate``, though few scenarios read an edge list."""


def uses_edge_list(scenario: Scenario) -> bool:
    social = scenario.population.social
    return social is not None and social.graph.type == "edge_list" and bool(social.graph.path)


def _check_edge_list(scenario: Scenario, users: int, read_edge_list: EdgeReader | None) -> None:
    if not uses_edge_list(scenario):
        return
    what = "population.social.graph.path"
    assert scenario.population.social is not None
    path = _readable(Path(str(scenario.population.social.graph.path)), what)
    if read_edge_list is None or path.stat().st_size > SMALL_FILE_BYTES:
        return
    try:
        read_edge_list(path, users)
    except RecarenaError as exc:
        raise RecarenaError(f"{what}: {exc}") from None
    except (OSError, ValueError) as exc:
        raise RecarenaError(f"{what}: {path}: {first_line(exc)}") from None


def _check_start_hours(scenario: Scenario) -> None:
    """``daily_rhythm.start_hours_from``: read by the engine's own reader, which refuses a file
    without usable timestamps (a large file: its header here, then its timestamp column
    streamed)."""
    rhythm = scenario.population.daily_rhythm
    if rhythm is None or rhythm.start_hours_from is None:
        return
    what = "population.daily_rhythm.start_hours_from"
    path = _readable(Path(rhythm.start_hours_from), what)
    if path.stat().st_size <= SMALL_FILE_BYTES:
        pooled_profile_from_csv(str(path), rhythm.width_hours, rhythm.utc_offset_hours)
        return
    import pandas as pd  # only for this check: `run` and `validate` start without it

    try:
        header = pd.read_csv(path, nrows=0).columns
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise RecarenaError(f"{what}: {path}: {first_line(exc)}") from None
    if "timestamp" not in header:
        raise RecarenaError(f"{what}: {path}: no 'timestamp' column")
    # the column itself, streamed (a 77 MB file: ~1 s): a bad value deep in a large file passed
    # validate and failed every cell of the run (after two DtypeWarnings from its reader)
    import polars as pl

    stamps = pl.col("timestamp").str.strip_chars().cast(pl.Float64, strict=True)
    try:
        finite, latest = (
            pl.scan_csv(path, infer_schema=False, glob=False)
            .select(stamps.is_finite().fill_null(False).all().alias("finite"), stamps.max())
            .collect(engine="streaming")
            .row(0)
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecarenaError(f"{what}: {path}: {first_line(exc)[:200]}") from None
    if not finite:
        raise RecarenaError(f"{what}: {path}: every timestamp must be a finite number")
    if latest is not None and latest > LATEST_SECONDS:  # as the cell's reader refuses it
        raise RecarenaError(f"{what}: {path}: timestamp {number(latest)} {PAST_YEAR_5000}")


def file_inputs(scenario: Scenario) -> tuple[Any, ...]:
    """What the file checks read: two points with equal inputs need one check."""
    pop, llm = scenario.population, scenario.llm
    panel, rhythm, social = pop.llm_panel, pop.daily_rhythm, pop.social
    return (
        (pop.source, pop.path, pop.dataset),
        (panel.personas.source, panel.personas.path) if panel is not None else None,
        (social.graph.type, social.graph.path, pop.users) if social is not None else None,
        (scenario.uses_llm, llm.provider, llm.model_path, llm.cache.mode, llm.cache.path),
        llm.api_key_env,  # a swept key variable: each point's must be set
        scenario.output.dir if scenario.uses_llm else None,
        (rhythm.start_hours_from, rhythm.width_hours, rhythm.utc_offset_hours)
        if rhythm is not None
        else None,
        (scenario.catalog.topics, tuple(policies(scenario))),  # a swept history, k or topics
    )


def check_files(
    scenario: Scenario,
    llm_cache_mode: str | None,
    llm_cache_path: Path | None,
    read_edge_list: EdgeReader | None,
) -> Sizes | None:
    """Every file the scenario reads; the calibrated population's sizes when it has one."""
    sizes = _check_calibrated(scenario)
    users = sizes.users if sizes else scenario.population.users
    panel = scenario.population.llm_panel
    if sizes is not None and panel is not None and panel.users > users:
        # the schema compared the panel with population.users, which the calibrated file
        # replaces: every cell failed on it after the run directory was made
        raise RecarenaError(
            f"population.llm_panel.users: {panel.users} exceeds the calibrated population's "
            f"{users} users (population.path)"
        )
    _check_personas(scenario)
    _check_edge_list(scenario, users, read_edge_list)
    check_llm_cache(scenario, llm_cache_mode, llm_cache_path)
    check_llm_model(scenario, llm_cache_mode)
    check_llm_endpoint(scenario, llm_cache_mode)
    _check_start_hours(scenario)
    if policies(scenario):  # the cells' topics: a calibrated population's file is read for it
        check_checkpoints(scenario, cell_topics(scenario))
    return sizes
