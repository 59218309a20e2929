"""Preflight: everything a run would trip over, found before any output directory exists.

The schema (simulator/core/scenario.py) checks each value on its own. A scenario can still be
valid value by value and impossible as a whole: a population file that is missing or is not a
calibrated population, a persona CSV whose ratings are text, 10^12 users that need terabytes, a
grid of 810,000 sweep points, a carousel with more slots than the catalog has items. Found at
run time, each of these is a traceback minutes in, with a half-written run directory.
``recarena validate`` and ``recarena run`` both call :func:`preflight` after the schema and
registry checks and before anything is created, so "validate says ok" means "run will start".

Files are read with the project's own loaders (the ones the engine uses) and their errors
turned into one line naming the file. The resource estimate is deliberately rough (an upper
bound of the big arrays, not a profile); its job is to refuse what cannot fit, with the figure,
unless the user passes ``--force``. Plug-in recommenders are built once, as the cells build
them (simulator/runner/build_check.py), so a constructor that raises is found here too.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recarena.agents.llm.cache import table_problem
from recarena.agents.llm.choices import MAX_OPTIONS
from recarena.agents.llm.endpoint import unreachable
from recarena.agents.llm.gguf_check import kv_cache_bytes
from recarena.agents.llm.server import check_local_llm, local_model_path
from recarena.agents.users import calibration
from recarena.agents.users.calibrated_population import CalibratedPopulation
from recarena.agents.users.daily_rhythm import pooled_profile_from_csv
from recarena.agents.users.personas import data_traits
from recarena.recommenders.mf import SCORE_BLOCK_CELLS
from recarena.recommenders.registry import recommender_tree
from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.machine import usable_cpus
from recarena.simulator.core.paths import check_creatable, check_file_creatable, url_problem
from recarena.simulator.core.scenario import (
    DEFAULT_KEY_VARIABLE,
    CarouselSurface,
    ConversationSurface,
    ListSurface,
    Scenario,
)
from recarena.simulator.data.archives import is_zip
from recarena.simulator.data.datasets import (
    check_link,
    check_narrow_text,
    detect_format,
    load_dataset,
    recbole_ml100k_dir,
    release_folder,
)
from recarena.simulator.data.sampling import DEFAULT_MAX_RATINGS, subsample_users
from recarena.simulator.engine.waves import MAX_WINDOW_ROWS, MAX_WINDOW_SESSIONS
from recarena.simulator.runner.build_check import Built, cell_topics, check_builds
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
from recarena.simulator.runner.llm_cells import check_replay_cells
from recarena.simulator.runner.sweep import check_grid_size, expand_sweep

DAY_SECONDS = 86_400.0
SMALL_FILE_BYTES = 64 * 2**20
"""Data files up to this size are also parsed in full by the engine's own loader."""
WORKER_BASE_BYTES = 300 * 2**20
"""A worker process before its cell allocates anything (Python, numpy, torch, polars)."""
CREATOR_BYTES = 4096
"""A creator: its Mesa agent, its SimPy upload process and its state. Measured ~3.9 KB each at
10^5 and 2 x 10^5 creators (the estimate used to count 64 bytes, so 10^7 creators passed as
~4 GB and needed ~40)."""


@dataclass(frozen=True)
class Limits:
    """What preflight refuses without ``--force``."""

    memory_fraction: float = 0.8
    """Refuse when the estimate exceeds this share of the machine's physical memory."""
    max_cells: int = 100_000
    max_llm_calls: int = 1_000_000
    max_ticks: int = 10_000_000
    """Page-loop ticks of one cell (days x 86,400 / tick_seconds)."""
    max_periodic: int = 1_000_000
    """Refits (days / retrain every_days), creator reviews (days / period_days), uploads or
    joining creators of one cell."""


@dataclass(frozen=True)
class Estimate:
    """Rough size of a run: what :func:`preflight` compares with the machine and the limits."""

    users: int
    items: int
    """Items at the end of the horizon (initial catalog plus expected uploads)."""
    cells: int
    points: int
    workers: int
    bytes_per_cell: float
    llm_calls: float
    """Upper bound: LLM users x visits x pages, over every cell."""
    ticks: float
    creators: int = 0
    """Creators at the end of the horizon (initial plus expected joins)."""
    uploads: float = 0.0
    """Expected uploads of one cell, each an event of the clock and an item appended."""
    largest: str = ""
    """What most of a cell's bytes are for, when it is not the users, items or creators the
    refusal already counts (``output.flush_rows``, a wide ``dim``, page scores)."""
    shards: int = 1
    """``--shards``: the workers are one cell's shards, each building the cell's whole world."""

    @property
    def bytes_total(self) -> float:
        return self.workers * (WORKER_BASE_BYTES + self.bytes_per_cell)

    def summary(self) -> str:
        text = f"~{human_bytes(self.bytes_total)} memory with {self.workers} worker(s)"
        if self.llm_calls:
            text += f", up to {self.llm_calls:,.0f} LLM calls"
        return text


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000:
            return f"{n:.1f} {unit}" if unit not in ("B", "KB") else f"{n:.0f} {unit}"
        n /= 1024
    return f"{n:.3g} EB"  # {:.1f} of an absurd estimate printed hundreds of digits


def human_count(n: float) -> str:
    """``10^12`` for big round numbers (how people write them in a scenario), ``1.21e+18``
    past a quadrillion (a tiny period or rate otherwise prints a hundred digits), else
    ``12,345``."""
    if n >= 10**6:
        exponent = round(math.log10(n))
        if 10**exponent == n and (isinstance(n, int) or n < 1e15):
            return f"10^{exponent}"
        if n >= 1e15:
            return f"{n:.3g}"
    return f"{n:,.0f}"


def machine_memory() -> int:
    """Physical memory in bytes (psutil when installed, else sysconf)."""
    try:
        import psutil
    except ImportError:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return int(psutil.virtual_memory().total)


# ------------------------------------------------------------------------------------- files
def _readable(path: Path, what: str) -> Path:
    check_link(path, what)  # a dangling link or a loop is not 'not found'
    if not path.exists():
        raise RecarenaError(f"{what}: file not found: {path}")
    if not path.is_file():
        raise RecarenaError(f"{what}: not a file: {path}")
    try:
        with path.open("rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise RecarenaError(f"{what}: cannot read {path}: {exc.strerror or exc}") from None
    return path


@dataclass(frozen=True)
class Sizes:
    users: int
    items: int


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
                f"population.path: {missing} not found and population.dataset is not set; "
                f"make it with `recarena calibrate DATASET -o {users_path}`"
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
    return Sizes(rows[users_path], rows[items_path])


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
                    raise RecarenaError(f"dataset not found: {path} (or use 'ml-100k')")
                if not (path.is_file() or path.is_dir()):  # a pipe or a device: may block
                    raise RecarenaError(f"{path} is not a file or a directory of a dataset")
                if not is_zip(path):  # a release's zip: load_dataset unpacks it
                    detect_format(release_folder(path))
            data = subsample_users(load_dataset(dataset), None, 0, DEFAULT_MAX_RATINGS)
            calibration.check_interactions(data)
            indexed = calibration.index(data)
    except RecarenaError as exc:
        raise RecarenaError(f"{what}: {exc}") from None
    return Sizes(int(indexed.user_ids.shape[0]), int(indexed.item_ids.shape[0]))


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


_SQLITE_HEADER = b"SQLite format 3\x00"


def _check_llm_cache(scenario: Scenario, mode: str | None, path: Path | None) -> None:
    if not scenario.uses_llm:
        return
    mode = mode or scenario.llm.cache.mode
    what = "--llm-cache" if path is not None else "llm.cache.path"
    cache = path or (Path(scenario.llm.cache.path) if scenario.llm.cache.path else None)
    if mode == "replay":
        if cache is None:  # was: validate looked in output.dir, the run in its new directory
            raise RecarenaError(
                "llm.cache.path: replay needs the cache of a recorded run; give its path in "
                "llm.cache.path or with --llm-cache OLD_RUN/llm_cache.sqlite (the default, "
                "the run directory's own llm_cache.sqlite, holds nothing to replay)"
            )
        check_creatable(cache, what, directory=False)
        if not cache.exists():  # a directory is named as one below
            raise RecarenaError(
                f"{what}: replay needs the cache of a recorded run, {cache} not found"
            )
    if cache is None or mode == "off":
        return  # the default cache is made inside the new run directory
    check_cache_file(cache, what, replay=mode == "replay")


def check_cache_file(cache: Path, what: str, replay: bool = False) -> None:
    """An LLM call cache that can be opened: new, or an SQLite cache of calls (one line naming
    ``what`` otherwise); ``recarena fidelity --llm-cache`` checks its path the same way."""
    # an over-long name, a symlink loop or a file where its directory belongs: the run's open
    # of the cache failed (an internal error, or every cell failing after the run dir was made)
    check_creatable(cache, what, directory=False)
    if not cache.exists():
        return
    if not cache.is_file():
        raise RecarenaError(f"{what}: {cache} is not a file (an SQLite cache of LLM calls)")
    try:
        with cache.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise RecarenaError(f"{what}: cannot read {cache}: {exc.strerror or exc}") from None
    if head and head != _SQLITE_HEADER:  # an empty file is a new cache
        raise RecarenaError(f"{what}: {cache} is not an SQLite file (a cache of LLM calls)")
    if not head and replay:
        raise RecarenaError(f"{what}: {cache} is empty; replay needs the cache of a recorded run")
    problem = table_problem(cache, replay=replay) if head else None
    if problem is not None:
        raise RecarenaError(f"{what}: {problem}")


def _check_llm_endpoint(scenario: Scenario, mode: str | None) -> None:
    """provider openai: an endpoint to call, from llm.base_url or OPENAI_BASE_URL (was: every
    cell failed with "no endpoint to call" after the run directory was made)."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "openai" or (mode or llm.cache.mode) == "replay":
        return
    problem = key_variable_problem(llm.api_key_env)
    if problem is not None:
        raise RecarenaError(f"llm.api_key_env: {problem}")
    if llm.base_url is not None:
        return  # checked by the schema
    url = os.environ.get("OPENAI_BASE_URL", "")
    if not url:
        raise RecarenaError(
            "llm.base_url: provider openai needs an endpoint to call (set llm.base_url or the "
            "OPENAI_BASE_URL environment variable)"
        )
    problem = url_problem(url)
    if problem is not None:
        raise RecarenaError(f"environment variable OPENAI_BASE_URL (llm.base_url): {problem}")


def key_variable_problem(name: str) -> str | None:
    """Why the API key variable ``name`` a user chose holds no key (None when it does, or when
    it is the default OPENAI_API_KEY, which an endpoint without keys lets be unset). Was: an
    unset variable sent the key 'not-needed', every call was refused (401) and fell back, and
    the run ended with exit 3."""
    if name == DEFAULT_KEY_VARIABLE or os.environ.get(name, "").strip():
        return None
    state = "is empty" if name in os.environ else "is not set"
    return (
        f"the environment variable {name} {state}; export the endpoint's key in it, or leave "
        f"the setting out for an endpoint that needs no key"
    )


def _check_llm_reachable(scenario: Scenario, mode: str | None) -> None:
    """provider openai: the endpoint accepts a connection. Without one every LLM decision falls
    back to the rule policy, each after its retries (minutes, or hours when the host drops
    packets), and the run ends with exit 3: a run of rule users. ``--allow-fallback`` (or
    ``--max-fallback 1``) accepts that and skips this check; a replay calls nothing."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "openai" or (mode or llm.cache.mode) == "replay":
        return
    url = llm.base_url or os.environ.get("OPENAI_BASE_URL", "")
    problem = unreachable(url)
    if problem is not None:
        raise RecarenaError(
            f"llm.base_url {url}: nothing answers ({problem}); every LLM decision would fall "
            "back to the rule policy. Start the endpoint, replay a recorded cache with "
            "--llm-cache-mode replay, or pass --allow-fallback to run anyway"
        )


def _check_llm_model(scenario: Scenario, mode: str | None) -> None:
    """provider local: the server's package and a GGUF model file (the run's own check)."""
    llm = scenario.llm
    if not scenario.uses_llm or llm.provider != "local" or (mode or llm.cache.mode) == "replay":
        return
    check_local_llm(llm.model_path)
    # llama.cpp allocates the whole cache of keys and values for llm.context_tokens when the
    # server starts, inside the run: past the machine's memory the server died there with a
    # fragment of its traceback
    path = Path(llm.model_path) if llm.model_path else local_model_path()
    cache = kv_cache_bytes(path, llm.context_tokens)
    memory = machine_memory()
    if cache is not None and cache[0] > memory:
        raise RecarenaError(
            f"llm.context_tokens: {llm.context_tokens:,} tokens need a ~{human_bytes(cache[0])} "
            f"cache of keys and values over the model's {cache[1]} layers; this machine has "
            f"{human_bytes(memory)}"
        )
    _check_panel_prompt_fits(scenario)


CHARS_PER_TOKEN = 4
"""The rule of thumb ``llm_panel.memory_tokens`` is counted with (about 4 characters a token)."""


def _check_panel_prompt_fits(scenario: Scenario) -> None:
    """provider local: what every page prompt of a panel user holds at least (the persona, the
    memories' budget, the answer) fits the server's context. Was: a persona of 42,000
    characters (about 12,000 tokens) passed validate, and llama.cpp refused every call of the
    run (HTTP 400, 'maximum context length is 2048 tokens'), which fell back to the rule
    policy: a run of rule users, ending with exit 3."""
    llm, panel = scenario.llm, scenario.population.llm_panel
    if panel is None:
        return
    texts = [str(item.get("text", "")) for item in panel.personas.items] or [""]
    longest = max(range(len(texts)), key=lambda i: len(texts[i]))
    persona = -(-len(texts[longest]) // CHARS_PER_TOKEN)
    answer = llm.max_tokens if llm.decision == "generate" else 2
    needed = persona + panel.memory_tokens + answer
    if needed < llm.context_tokens:
        return
    parts = [f"memories' budget {panel.memory_tokens:,} (population.llm_panel.memory_tokens)"]
    if persona:
        parts.insert(
            0,
            f"persona items[{longest}] about {persona:,} ({len(texts[longest]):,} "
            f"characters at about {CHARS_PER_TOKEN} a token)",
        )
    parts.append(f"answer {answer:,}")
    where = (
        f"population.llm_panel.personas.items[{longest}].text"
        if persona >= panel.memory_tokens
        else "population.llm_panel.memory_tokens"
    )
    raise RecarenaError(
        f"{where}: a page prompt would need at least {needed:,} tokens ({'; '.join(parts)}) "
        f"of the {llm.context_tokens:,} the local server holds (llm.context_tokens), leaving "
        "nothing for the page; llama.cpp would refuse those calls (HTTP 400) and every one "
        "would fall back to the rule policy. Shorten it, or raise llm.context_tokens"
    )


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
        finite = (
            pl.scan_csv(path, infer_schema=False, glob=False)
            .select(stamps.is_finite().fill_null(False).all())
            .collect(engine="streaming")
            .item()
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise RecarenaError(f"{what}: {path}: {first_line(exc)[:200]}") from None
    if not finite:
        raise RecarenaError(f"{what}: {path}: every timestamp must be a finite number")


# -------------------------------------------------------------------------------- shapes
def _check_pages(scenario: Scenario, items: int) -> None:
    """A page cannot show more distinct items than the catalog starts with, nor, to LLM users
    reading their decision from one token's logprobs, more than that token can name."""
    scored = scenario.population.llm_users > 0 and scenario.llm.decision == "score"
    for index, arm in enumerate(scenario.arms):
        surface = scenario.surface_for(arm)
        where = f"arms[{index}].surface" if arm.surface is not None else "surface"
        if isinstance(surface, CarouselSurface):
            slots = len(surface.rows) * surface.cols
            if slots > items:
                raise RecarenaError(
                    f"{where}: a carousel of {len(surface.rows)} rows x {surface.cols} columns "
                    f"= {slots} slots exceeds the catalog's {items} initial items"
                )
        else:
            k = getattr(surface, "k", None)  # a plug-in surface may have no k
            if isinstance(k, int) and k > items:
                raise RecarenaError(
                    f"{where}.k: {k} slots exceed the catalog's {items} initial items"
                )
            slots = k if isinstance(k, int) else 0
        if scored and slots > MAX_OPTIONS:
            # was: validate passed and every cell failed on its first LLM page (exit 1)
            field = where if isinstance(surface, CarouselSurface) else f"{where}.k"
            raise RecarenaError(
                f"{field}: {slots} slots on a page, but LLM users in scoring mode "
                f"(llm.decision: score) name each slot by one token, 1-9 then A-Z: at most "
                f"{MAX_OPTIONS}; show fewer, or set llm.decision: generate"
            )


def _check_retrain(scenario: Scenario) -> None:
    """A refit more often than a tick sees no click the last one did not: clicks are logged
    only at ticks, so the extra refits only cost time (mf every minute on 5-minute ticks fitted
    five times per tick's worth of data). Refused with the smallest useful value, one tick, so
    every refit that is run sees a tick more; a scenario still accepted runs as before."""
    tick = scenario.horizon.tick_seconds
    one_tick = tick / DAY_SECONDS
    step = 10.0 ** (math.floor(math.log10(one_tick)) - 5)
    smallest = math.ceil(one_tick / step) * step  # one tick in days, six digits, rounded up
    for index, arm in enumerate(scenario.arms):
        every = scenario.retrain_days(arm)
        if every * DAY_SECONDS < tick * (1 - 1e-9):
            field = (
                f"arms[{index}].retrain_every_days"
                if arm.retrain_every_days
                else "retrain.every_days"
            )
            raise RecarenaError(
                f"{field}: a refit every {every:g} days ({every * DAY_SECONDS:g} s) is more "
                f"often than a tick (horizon.tick_seconds {tick:g}), and clicks arrive only at "
                f"ticks, so most refits would see nothing new; the smallest useful value is "
                f"{smallest:g} days (one tick)"
            )


def _check_graph(scenario: Scenario, sizes: Sizes | None) -> None:
    """A drawn social graph's neighbours (watts_strogatz's k) or attachments (barabasi_albert's
    m) must be fewer than the users: the graph builder cut them to users - 1 without a word, so a
    scenario asked for one graph and ran another (on a calibrated population, whose file sets
    the users, as on a generated one). sbm's ``blocks`` may be at most the users."""
    social = scenario.population.social
    if social is None or social.graph.type == "edge_list":
        return
    graph = social.graph
    if sizes is not None:
        users, whose = sizes.users, "the calibrated population (population.path) has {}"
    else:
        users, whose = scenario.population.users, "population.users is {}"
    if graph.type == "sbm":
        # more blocks than users leaves blocks empty, which the builder drops: another graph
        # than asked for; and it counted users per block over every block id, so 2^62 blocks
        # failed every cell ("array is too big")
        if graph.blocks is not None and graph.blocks > users:
            raise RecarenaError(
                f"population.social.graph.blocks: {graph.blocks} blocks (sbm) need at least "
                f"{graph.blocks} users; {whose.format(users)}"
            )
        return
    name, value, what = (
        ("k", graph.k, "neighbours per user")
        if graph.type == "watts_strogatz"
        else ("m", graph.m, "edges per new user")
    )
    if value >= users:
        raise RecarenaError(
            f"population.social.graph.{name}: {value} {what} ({graph.type}) need more than "
            f"{value} users; {whose.format(users)}"
        )


# ------------------------------------------------------------------------------ estimate
def estimate(
    scenario: Scenario, sizes: Sizes | None = None, workers: int | None = None, shards: int = 1
) -> Estimate:
    """Upper-bound sizes of the big arrays of one cell, and how many cells run at once (with
    ``shards`` > 1, cells run one after another over that many workers, each of which builds
    the whole world: ``--shards 64`` on a small machine was 64 worlds nobody had estimated).

    Per user: taste, satiation and familiarity ([T] float32 each) and a dozen scalars; the
    consumed-items matrix (int32 while ids fit, as wide as the heaviest user's history, counted
    twice: its doubling briefly holds both tables); per item: topic mix
    and scalars; per creator: topic mix, its agent and upload process; one page batch of scores
    over the catalog; an embedding per user and item for learned recommenders (64 wide, or the
    widest ``dim`` an arm asks for, with its optimiser's moments);
    the log buffers.
    """
    pop, catalog, horizon, creators = (
        scenario.population,
        scenario.catalog,
        scenario.horizon,
        scenario.creators,
    )
    users = sizes.users if sizes else pop.users
    initial = sizes.items if sizes else catalog.initial_items
    topics = catalog.topics
    # an AI creator uploads `speedup` times as often, and at worst every creator adopts AI
    rate = creators.uploads_per_day * (creators.ai.speedup if creators.ai is not None else 1.0)
    uploads = creators.count * rate * horizon.days
    joins = creators.join_rate_per_period * horizon.days / creators.period_days
    items = initial + uploads + joins * rate * horizon.days
    visits = pop.visits_per_day * pop.max_rate_factor
    history = min(items, 8 + 2 * visits * horizon.days * 3)  # ~3 clicks a session, heavy user
    per_tick = visits * horizon.tick_seconds / 86_400 * pop.max_pages
    batch = min(users, max(1.0, users * per_tick))
    degree = _graph_degree(scenario, users)
    blocks = _sbm_blocks(scenario, users)
    # learned embeddings: a generic 64 wide, or the widest ``dim`` an arm asks for, with the
    # optimiser's two moments (Adam) beside the weights
    width = _widest_dim(scenario)
    per_user_emb = max(2 * 64, 3 * width) * 4
    per_item_emb = max(64, 3 * width) * 4
    flush = scenario.output.flush_rows
    embeddings = users * per_user_emb + items * per_item_emb
    terms = {
        "": users * (3 * topics * 4 + 96 + history * 8)
        + items * (topics * 4 + 64)
        + (creators.count + joins) * (topics * 4 + CREATOR_BYTES)
        + (0 if width else embeddings),  # the generic 64 wide grows with users and items
        f"embeddings {width} wide (an arm's params.dim)": embeddings if width else 0,
        "one page batch of scores over the catalog": _score_cells(scenario, batch, items) * 24,
        f"the social graph (~{degree:,.0f} friends a user)": users * degree * NEIGHBOUR_BYTES,
        f"the sbm graph's {blocks:,} x {blocks:,} block pairs": blocks**2 * SBM_PAIR_BYTES,
        f"output.flush_rows: {flush:,} log rows held before each write": flush * 200,
        "the rows of a page-wave window": _window_rows(scenario, users) * WAVE_ROW_BYTES,
    }
    per_cell = sum(terms.values())
    largest = max(terms, key=lambda name: terms[name])
    points = max(1, _grid(scenario))
    cells = len(scenario.arms) * scenario.replicates * points
    running = shards if shards > 1 else max(1, min(workers or usable_cpus(), cells))
    ticks = horizon.days * 86_400 / horizon.tick_seconds
    # the most a panel can browse: its heaviest visit rate, every session at max_pages
    llm_pages = pop.llm_users * visits * horizon.days * pop.max_pages
    if pop.social is not None and pop.social.talk is not None:
        llm_pages *= 2  # talk: at most one call per consumption, so one per page
    return Estimate(
        users=users,
        items=int(items),
        creators=int(creators.count + joins),
        uploads=float(items - initial),
        cells=cells,
        points=points,
        workers=running,
        bytes_per_cell=float(per_cell),
        llm_calls=float(llm_pages * cells),
        ticks=ticks,
        largest=largest if terms[largest] > per_cell / 2 else "",
        shards=shards,
    )


NEIGHBOUR_BYTES = 144
"""A friend of a user in a drawn social graph at its peak: networkx holds each edge in both
ends' adjacency dicts (~130-140 bytes an end, measured for all three generators at 2,000 users
and 500-1,000 friends each), before the graph becomes a CSR matrix. Was 32, and counted for sbm's
mean_degree alone: barabasi_albert with m 2,000 over 4,000 users was estimated at ~550 MB and
peaked at 1.5 GB (40,000 users and m 20,000, ~200 GB, passed validate)."""


def _graph_degree(scenario: Scenario, users: float) -> float:
    """Expected friends of a user in the scenario's social graph (0 without one): 2m(n-m)/n for
    barabasi_albert (each of the n-m users after the first m attaches m edges), k for
    watts_strogatz, mean_degree for sbm (and for an edge list, whose size the file sets), at
    most every other user."""
    social = scenario.population.social
    if social is None:
        return 0.0
    graph = social.graph
    if graph.type == "barabasi_albert":
        m = min(graph.m, users - 1)
        degree = 2 * m * (users - m) / max(users, 1)
    elif graph.type == "watts_strogatz":
        degree = graph.k
    else:
        degree = graph.mean_degree
    return float(max(0.0, min(degree, users - 1)))


SBM_PAIR_BYTES = 64
"""A pair of blocks of an sbm graph: its probability in our [B, B] table and in the nested
lists networkx takes (~50 bytes a pair measured at 3,000 blocks). 20,000 blocks over 20,000
users held ~25 GB that the estimate did not count."""


def _sbm_blocks(scenario: Scenario, users: float) -> int:
    """Blocks of an sbm graph with ``blocks`` set (at most one a user: empty ones are dropped);
    0 otherwise (without it the blocks are the topics, at most 1,024)."""
    social = scenario.population.social
    if social is None or social.graph.type != "sbm" or social.graph.blocks is None:
        return 0
    return int(min(social.graph.blocks, users))


WAVE_ROW_BYTES = 128
"""A page wave's window holds its exposure rows until it ends (simulator/engine/waves.py), at
most MAX_WINDOW_ROWS of them: ~8 columns of 8 bytes, and their gather into the log's order."""


def _window_rows(scenario: Scenario, users: float) -> float:
    """The most exposure rows a page-wave window can hold: its sessions (at most every user,
    at most MAX_WINDOW_SESSIONS) browsing to ``max_pages`` of a list's ``k`` slots, within
    MAX_WINDOW_ROWS. Waves serve plain lists only."""
    surface = scenario.surface
    if not isinstance(surface, ListSurface):
        return 0.0
    sessions = min(users, MAX_WINDOW_SESSIONS)
    return min(MAX_WINDOW_ROWS, sessions * scenario.population.max_pages * surface.k)


BOUNDED_SCORERS = {"random": 0, "popularity": 0, "mf": SCORE_BLOCK_CELLS}
"""Built-in recommenders that never hold a [page batch, catalog] score matrix, and the most
scores they hold at once: random hashes each slot, popularity ranks once per fit, mf scores in
row blocks (recommenders/mf.py). Any other arm (a wrapper, a sequential model, a plug-in) is
counted as scoring the whole catalog for every page of a batch."""


def _score_cells(scenario: Scenario, batch: float, items: float) -> float:
    """Scores held at once by the arm that holds the most. Was: always batch x catalog, so the
    quickstart at 200,000 users and 200,000 items (random, popularity, mf) was refused as
    needing ~114 GB; its arms hold a few million scores at most."""
    dense = batch * items
    return max(
        (
            min(dense, BOUNDED_SCORERS[arm.recommender.type])
            if arm.recommender.type in BOUNDED_SCORERS
            else dense
        )
        for arm in scenario.arms
    )


def _widest_dim(scenario: Scenario) -> int:
    """The largest embedding ``dim`` in any arm's params (a wrapper's base's included), 0 if
    none. Was: every learned recommender was counted 64 wide, so mf with ``dim: 1024`` at a
    million users (12 GB of weights and Adam moments) passed as ~15 GB and ran out of memory."""
    widest = 0
    stack: list[Any] = [arm.recommender.params for arm in scenario.arms]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            dim = node.get("dim")
            if isinstance(dim, int) and not isinstance(dim, bool):
                widest = max(widest, dim)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return widest


def _grid(scenario: Scenario) -> int:
    return math.prod(len(v) for v in scenario.sweep.values()) if scenario.sweep else 1


def _check_estimate(
    est: Estimate, scenario: Scenario, limits: Limits, force: bool, memory: int | None = None
) -> None:
    """``memory``: the machine's, when the caller already asked (a sweep asks once, not once
    per point)."""
    problems = []
    memory = machine_memory() if memory is None else memory
    if est.bytes_total > limits.memory_fraction * memory:
        who = f"{human_count(est.users)} users"
        if est.items > est.users:
            who += f" and {human_count(est.items)} items"
        if est.creators > est.users:
            who += f" and {human_count(est.creators)} creators"
        mostly = f", most of it for {est.largest}" if est.largest else ""
        at_once = (
            f"--shards {est.shards}: {est.shards} workers each building the world"
            if est.shards > 1
            else f"{est.workers} cell(s) at once"
        )
        problems.append(
            f"needs ~{human_bytes(est.bytes_total)} for {who} "
            f"({at_once}{mostly}); this machine has {human_bytes(memory)}"
        )
    if est.cells > limits.max_cells:
        problems.append(f"{est.cells:,} cells exceed the maximum of {limits.max_cells:,}")
    if est.llm_calls > limits.max_llm_calls:
        problems.append(
            f"up to {est.llm_calls:,.0f} LLM calls exceed the maximum of {limits.max_llm_calls:,}"
        )
    if est.ticks > limits.max_ticks:
        problems.append(
            f"horizon.tick_seconds: {scenario.horizon.days:g} days of "
            f"{scenario.horizon.tick_seconds:g} s ticks = {human_count(est.ticks)} ticks per "
            f"cell exceed the maximum of {limits.max_ticks:,}"
        )
    days = scenario.horizon.days
    for index, arm in enumerate(scenario.arms):
        every = scenario.retrain_days(arm)
        if days / every > limits.max_periodic:
            field = (
                f"arms[{index}].retrain_every_days"
                if arm.retrain_every_days
                else "retrain.every_days"
            )
            problems.append(
                f"{field}: {days:g} days with a refit every {every:g} days = "
                f"{human_count(days / every)} refits per cell exceed the maximum of "
                f"{limits.max_periodic:,}"
            )
            break
    if est.uploads > limits.max_periodic:
        problems.append(_uploads_problem(est, scenario, limits))
    joins = est.creators - scenario.creators.count
    if joins > limits.max_periodic:  # each a creator agent with its own upload process
        problems.append(
            f"creators.join_rate_per_period: ~{human_count(joins)} creators joining per cell "
            f"exceed the maximum of {limits.max_periodic:,}"
        )
    reviews = creator_reviews(days, scenario.creators.period_days)
    if reviews > limits.max_periodic:
        problems.append(
            f"creators.period_days: {days:g} days with a review every "
            f"{scenario.creators.period_days:g} days = {human_count(reviews)} creator reviews "
            f"per cell exceed the maximum of {limits.max_periodic:,}"
        )
    elif (rows := _creator_periods(est, scenario)) > limits.max_periodic:
        problems.append(_creator_periods_problem(rows, reviews, est, scenario, limits))
    if problems and not force:
        raise RecarenaError(f"{'; '.join(problems)} (pass --force to run anyway)")


def creator_reviews(days: float, period_days: float) -> int:
    """Creator reviews in a cell: one every ``period_days`` before the horizon, and the final
    one at the horizon that logs the last period (so never 0: the estimate used to say '0
    creator reviews' of a short horizon whose final review still walks every creator)."""
    return max(math.ceil(days / period_days), 1)


def _creator_periods(est: Estimate, scenario: Scenario) -> float:
    """Expected rows of creator_periods in one cell: every review walks and logs every creator
    there is then (the starting ones plus, on average, half of those joining)."""
    creators = scenario.creators
    reviews = creator_reviews(scenario.horizon.days, creators.period_days)
    return reviews * (creators.count + (est.creators - creators.count) / 2)


def _creator_periods_problem(
    rows: float, reviews: float, est: Estimate, scenario: Scenario, limits: Limits
) -> str:
    """A review is a step of every creator and a row of creator_periods for each: 30 creators
    with 50 joining at each of 1,000 reviews a day (~25M creator-periods) passed, since neither
    the reviews nor the joins alone reached the limit, and one day of 60 users ran for minutes."""
    fields = ["creators.count"] + (["creators.period_days"] if reviews > 1 else [])
    if scenario.creators.join_rate_per_period > 0:
        fields.append("creators.join_rate_per_period")
    return (
        f"{', '.join(fields)}: {human_count(reviews)} creator review"
        f"{'' if reviews == 1 else 's'} of up to "
        f"{human_count(est.creators)} creators = ~{human_count(rows)} creator-periods per cell "
        f"(each a step of the creator and a row of creator_periods) exceed the maximum of "
        f"{limits.max_periodic:,}"
    )


def _uploads_problem(est: Estimate, scenario: Scenario, limits: Limits) -> str:
    """Uploads are one event each: 2 creators at 10^6 uploads a day passed the memory
    estimate and ran past two minutes on a one-day horizon of 50 users."""
    creators = scenario.creators
    fields = ["creators.count", "creators.uploads_per_day"]
    if creators.ai is not None and creators.ai.speedup > 1:
        fields.append("creators.ai.speedup")
    if creators.join_rate_per_period > 0:
        fields.append("creators.join_rate_per_period")
    return (
        f"{', '.join(fields)}: ~{human_count(est.uploads)} uploads per cell over "
        f"{scenario.horizon.days:g} days exceed the maximum of {limits.max_periodic:,}"
    )


def _fits(est: Estimate, limits: Limits, memory: int) -> bool:
    """The estimate is within this machine's memory: only then are plug-ins built here (their
    per-user arrays under ``--force`` past the limit failed validate itself, out of memory)."""
    return est.bytes_total <= limits.memory_fraction * memory


FileCheck = Callable[[Scenario], Sizes | None]
"""The file checks of one scenario (preflight binds the CLI's cache and edge-list options)."""


def _check_points(
    scenario: Scenario,
    sizes: Sizes | None,
    workers: int | None,
    limits: Limits,
    force: bool,
    files: FileCheck,
    built: Built,
    shards: int = 1,
) -> None:
    """A sweep's points: each point's page shapes and resource limits, as for a plain scenario
    (a swept ``retrain.every_days`` or ``surface.k`` is refused like a written one), the
    files a point reads when they differ from the base's (a swept edge list or persona file;
    a calibrated population cannot be swept, simulator/runner/sweep.py), and its
    plug-in recommenders built once per distinct params (a swept plug-in param)."""
    if not scenario.sweep:
        return
    checked = {_file_inputs(scenario): sizes}
    memory = machine_memory()
    for point in expand_sweep(scenario):
        world = point.scenario
        values = ", ".join(f"{k}={v!r}" for k, v in point.params.items())
        try:
            key = _file_inputs(world)
            if key not in checked:
                checked[key] = files(world)
            point_sizes = checked[key]
            _check_pages(world, point_sizes.items if point_sizes else world.catalog.initial_items)
            _check_graph(world, point_sizes)
            point_estimate = estimate(world, point_sizes, workers, shards)
            _check_estimate(point_estimate, world, limits, force, memory)
            _check_retrain(world)
            if _fits(point_estimate, limits, memory):
                check_builds(world, point_estimate.users, built)
        except RecarenaError as exc:
            raise RecarenaError(f"sweep point {point.index} ({values}): {exc}") from None


def _file_inputs(scenario: Scenario) -> tuple[Any, ...]:
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


def _check_files(
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
    _check_llm_cache(scenario, llm_cache_mode, llm_cache_path)
    _check_llm_model(scenario, llm_cache_mode)
    _check_llm_endpoint(scenario, llm_cache_mode)
    _check_start_hours(scenario)
    if policies(scenario):  # the cells' topics: a calibrated population's file is read for it
        check_checkpoints(scenario, cell_topics(scenario))
    return sizes


# -------------------------------------------------------------------------------- entry
def preflight(
    scenario: Scenario,
    source: str = "<scenario>",
    *,
    force: bool = False,
    workers: int | None = None,
    limits: Limits | None = None,
    llm_cache_mode: str | None = None,
    llm_cache_path: Path | None = None,
    read_edge_list: EdgeReader | None = None,
    probe_llm: bool = True,
    shards: int = 1,
) -> Estimate:
    """Check referenced files, page shapes, the sweep grid, the resource estimate and, last
    (it waits on the network), that an OpenAI-compatible endpoint accepts a connection.

    Raises RecarenaError (one line, prefixed with ``source``); returns the estimate otherwise.
    ``--force`` lifts the resource limits only, never a missing or broken file. An edge list is
    parsed only when ``read_edge_list`` is given (the CLI passes the engine's reader).
    ``probe_llm=False`` skips the endpoint (a dry run, or a run that accepts fallbacks).
    ``shards`` (``run --shards``) counts one cell's shard workers as what runs at once.
    """
    try:
        check_grid_size(scenario)
        _check_conversation_is_read(scenario)
        _check_rhythm_is_read(scenario)
        _check_leaving_can_happen(scenario)
        _check_wrapper_is_fed(scenario)

        def files(world: Scenario) -> Sizes | None:
            return _check_files(world, llm_cache_mode, llm_cache_path, read_edge_list)

        sizes = files(scenario)
        _check_pages(scenario, sizes.items if sizes else scenario.catalog.initial_items)
        _check_graph(scenario, sizes)
        est = estimate(scenario, sizes, workers, shards)
        _check_estimate(est, scenario, limits or Limits(), force)
        _check_retrain(scenario)  # after the limits: a count past them is the clearer line
        built: Built = set()
        # with a sweep, its points are what the cells build
        if not scenario.sweep and _fits(est, limits or Limits(), machine_memory()):
            check_builds(scenario, est.users, built)
        _check_points(scenario, sizes, workers, limits or Limits(), force, files, built, shards)
        check_replay_cells(scenario, llm_cache_mode, llm_cache_path)
        if probe_llm:
            _check_llm_reachable(scenario, llm_cache_mode)
    except RecarenaError as exc:
        raise RecarenaError(f"{source}: {exc}") from None
    return est


def _worlds(scenario: Scenario) -> list[Scenario]:
    """The scenarios its cells run: each sweep point's, or the scenario itself."""
    return [point.scenario for point in expand_sweep(scenario)] or [scenario]


def _check_conversation_is_read(scenario: Scenario) -> None:
    """population.conversation is read only by the dialogue loop of an arm on a conversation
    surface; with none it was ignored without a word. Refused, as a personas path that no source
    reads is, unless some sweep point sets it and has such an arm (a sweep over surfaces). After
    the resolve step, so a conversational recommender on a list is named first."""
    worlds = _worlds(scenario)
    settings = [world for world in worlds if world.population.conversation is not None]
    if settings and not any(
        isinstance(world.surface_for(arm), ConversationSurface)
        for world in settings
        for arm in world.arms
    ):
        raise RecarenaError(
            "population.conversation: no arm has a conversation surface, so these settings "
            "would be read by nothing; remove them or give an arm surface: {type: conversation}"
        )


_RHYTHM_READERS: tuple[tuple[tuple[str, ...], Callable[[Any], bool], str], ...] = (
    (("utc_offset_hours",), lambda r: r.start_hours_from is not None,
     "it shifts start_hours_from's timestamps, and none is given"),
    (("peak_hours", "peak_weights", "spread_hours"), lambda r: r.start_hours_from is None,
     "start_hours_from's profile replaces the peaks"),
    (("topic_width_hours", "topic_jitter_hours"), lambda r: r.topic_amplitude > 0,
     "topic_amplitude is 0, so there is no topic clock"),
)  # fmt: skip
"""Settings of population.daily_rhythm, what reads them (agents/users/daily_rhythm.py), and
why it does not."""


def _check_rhythm_is_read(scenario: Scenario) -> None:
    """A daily_rhythm setting nothing reads was ignored without a word (utc_offset_hours with
    no start_hours_from, the peaks beside one, the topic clock's shape with topic_amplitude 0):
    refused unless some sweep point that sets it reads it (an ablation that turns the topic
    clock off at one point still runs). Only a value other than the default counts as set
    (a resolved scenario writes every default), as for the social graph's parameters."""
    worlds = _worlds(scenario)
    rhythms = [w.population.daily_rhythm for w in worlds if w.population.daily_rhythm]
    if not rhythms:
        return
    fields = type(rhythms[0]).model_fields
    for names, reads, why in _RHYTHM_READERS:
        for name in names:
            setting = [r for r in rhythms if getattr(r, name) != fields[name].default]
            if setting and not any(reads(r) for r in setting):
                raise RecarenaError(
                    f"population.daily_rhythm.{name}: read by nothing ({why}); leave it out"
                )


def _check_leaving_can_happen(scenario: Scenario) -> None:
    """``creators.leave_after_periods`` with ``min_exposure`` 0 (the default): a period is low
    when a creator's exposure is below min_exposure, never below 0, so no creator ever left and
    the setting was read by nothing. Refused unless some sweep point that sets it has a
    min_exposure above 0."""
    worlds = _worlds(scenario)
    leaving = [w.creators for w in worlds if w.creators.leave_after_periods is not None]
    if leaving and not any(creators.min_exposure > 0 for creators in leaving):
        raise RecarenaError(
            f"creators.leave_after_periods: {leaving[0].leave_after_periods} low periods, but "
            "with creators.min_exposure 0 no period is low (exposure is never below 0), so no "
            "creator would leave; set min_exposure, the impressions a period needs"
        )


_FED_BY: dict[str, tuple[str, str, Callable[[Scenario], bool], str]] = {
    "social_feed": ("slots", "population.social.talk", lambda w: bool(
        w.population.social and w.population.social.talk), "users do not talk, so no friend "
        "recommends anything"),
    "instructable": ("strength", "population.instructions",
                     lambda w: w.population.instructions is not None, "users give no "
                     "instructions"),
    "llm_instructable": ("strength", "population.instructions",
                         lambda w: w.population.instructions is not None, "users give no "
                         "instructions"),
}  # fmt: skip
"""Wrappers that act only on what a scenario feature makes (recommenders/social_feed.py,
instructable.py): their knob, the feature, whether a scenario has it, and why it matters."""


def _check_wrapper_is_fed(scenario: Scenario) -> None:
    """A social_feed arm without talking users, or an instructable one without instructions,
    served its base unchanged: an A/B of two identical arms, read as "no effect". Refused unless
    its knob is 0 (the ablation that asks for the base) or some sweep point has the feature."""
    worlds = _worlds(scenario)
    for index, arm in enumerate(scenario.arms):
        where = f"arms[{index}].recommender"
        for node in recommender_tree(where, arm.recommender.type, arm.recommender.params):
            fed = _FED_BY.get(node.type_name)
            if fed is None:
                continue
            knob, feature, has, why = fed
            if node.params.get(knob) == 0 or any(has(world) for world in worlds):
                continue
            field = f"{where}.type" if node.type_field == where else node.type_field
            raise RecarenaError(
                f"{field}: {node.type_name} would serve its base unchanged: "
                f"{feature} is not set ({why}); set it, or compare the base itself"
            )


def describe(est: Estimate) -> dict[str, Any]:
    """The estimate as plain data (for a manifest or a test)."""
    return {
        "users": est.users,
        "items": est.items,
        "cells": est.cells,
        "workers": est.workers,
        "bytes_total": est.bytes_total,
        "llm_calls": est.llm_calls,
        "ticks": est.ticks,
    }
