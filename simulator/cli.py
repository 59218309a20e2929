"""The ``recarena`` command line (typer).

User mistakes (bad YAML, unknown names, missing paths) raise RecarenaError and are printed as a
single ``error: ...`` line on stderr with exit code 2 — never a traceback, and validation happens
before any run directory is created.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from time import monotonic
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from recarena.simulator.core.errors import RecarenaError, first_line

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Simulate recommender systems against simulated users and compare arms with CIs.",
)
out = Console()
err = Console(stderr=True)


class PlainProgress:
    """Progress as plain lines, for a stderr that is not a terminal (a log file, CI, nohup).

    rich redraws its bars in place only on a terminal; elsewhere it prints them once, when the
    work is over, so a ten-minute ``fidelity`` piped to a file said nothing for ten minutes.
    Here a task's next tenth is printed when at least ``interval`` seconds have passed since
    the last line (many cells never flood a log), and every task says when it is done; work
    shorter than ``interval`` prints nothing, so a quick run's stderr holds only what matters.
    """

    def __init__(
        self, console: Console, interval: float = 5.0, clock: Callable[[], float] = monotonic
    ) -> None:
        self.console, self.interval, self.clock = console, interval, clock
        self.started = self.last_line = clock()
        self.tasks: dict[TaskID, list[Any]] = {}  # id -> [description, total, tenth, done]

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, description: str, total: float = 1.0) -> TaskID:
        task = TaskID(len(self.tasks))
        self.tasks[task] = [description, total, 0, False]
        return task

    def update(
        self, task: TaskID, *, completed: float = 0.0, description: str | None = None
    ) -> None:
        state = self.tasks[task]
        if description is not None:
            state[0] = description
        if state[3]:
            return
        share = completed / state[1] if state[1] else 1.0
        now = self.clock()
        if share >= 1.0:
            state[3] = True
            if now - self.started >= self.interval:  # short work needs no sign of life
                self._line(now, f"{state[0]}: done")
        elif int(share * 10) > state[2] and now - self.last_line >= self.interval:
            state[2] = int(share * 10)
            self._line(now, f"{state[0]}: {int(share * 100)}%")

    def _line(self, now: float, text: str) -> None:
        self.last_line = now
        elapsed = int(now - self.started)
        self.console.print(
            f"[{elapsed // 60}:{elapsed % 60:02d}] {text}", soft_wrap=True, markup=False
        )


def _progress_bars(quiet: bool) -> Progress | PlainProgress:
    """One bar per task on stderr (stdout stays for tables and paths); none with --quiet; plain
    lines (:class:`PlainProgress`) when stderr is not a terminal."""
    if not quiet and not err.is_terminal:
        return PlainProgress(err)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet,
    )


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"recarena {version('recarena')}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of any error (for bug reports).")
    ] = False,
) -> None:
    # --debug is read by main() (it decides how errors are printed, outside the command)
    return None


def _input_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the user's file is not what it should be" (not a bug)."""
    import json

    import polars as pl
    import pyarrow as pa

    return (OSError, json.JSONDecodeError, UnicodeDecodeError, pl.exceptions.PolarsError,
            pa.ArrowException)  # fmt: skip


FORMAT_HELP = "auto, movielens, movielens-dat, movielens-100k, recbole or csv."


def _check_format(fmt: str) -> None:
    """``--format`` is one of the dataset loaders' names (simulator/data/datasets.py)."""
    from recarena.simulator.data.datasets import FORMATS

    if fmt not in FORMATS:
        raise RecarenaError(f"--format: unknown {fmt!r}; known: {', '.join(FORMATS)}")


@contextmanager
def _stoppable(nothing_written: str) -> Iterator[None]:
    """A stop signal (SIGINT, SIGTERM, SIGHUP) during long work that publishes its files only
    at the end: one line saying so, exit 130. Without this, SIGTERM (what ``kill`` and job
    schedulers send) killed the process where it stood: no line, training workers left running
    until they hit a closed pipe, their tracebacks on stderr, a scratch directory left behind."""
    from recarena.simulator.runner.stopping import Interrupted, StopSignals

    try:
        with StopSignals():
            yield
    except (Interrupted, KeyboardInterrupt) as stopped:
        err.print(
            f"interrupted ({stopped or 'SIGINT'}): {nothing_written}", soft_wrap=True, markup=False
        )
        raise typer.Exit(130) from None


@contextmanager
def _reading(what: str, run_dir: Path | None = None) -> Iterator[None]:
    """Turn a known input error while reading ``what`` into one RecarenaError line; reading a
    run, the line names the damaged table file (simulator/runner/rundir.py)."""
    try:
        yield
    except RecarenaError:
        raise
    except _input_errors() as exc:
        text = first_line(exc)
        if isinstance(exc, OSError) and exc.strerror:
            text = f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        from recarena.simulator.runner.rundir import unreadable_table

        damaged = unreadable_table(run_dir) if run_dir is not None else None
        raise RecarenaError(f"{what}: {damaged or ' '.join(text.split())}") from None


def _load_checked(
    path: Path,
    *,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    workers: int | None = None,
    llm_cache_mode: str | None = None,
    llm_cache: Path | None = None,
    probe_llm: bool = True,
):
    """Everything run would refuse: schema, registries, metric names, referenced files, page
    shapes, sweep size, the resource estimate and an LLM endpoint that does not answer
    (simulator/runner/preflight.py)."""
    from recarena.analysis.metrics import check_metrics
    from recarena.simulator.runner.preflight import EdgeReader, preflight, uses_edge_list
    from recarena.simulator.runner.resolve import load_scenario, parse_scenario

    scenario = load_scenario(path)
    check_metrics(scenario, str(path))
    if overrides:
        scenario = parse_scenario(scenario.model_dump(mode="json") | overrides, str(path))
    read_edges: EdgeReader | None = None
    if uses_edge_list(scenario):  # the engine's reader (networkx, scipy) only when needed
        from recarena.agents.users.social import read_edge_list as read_edges
    estimate = preflight(
        scenario,
        str(path),
        force=force,
        workers=workers,
        llm_cache_mode=llm_cache_mode,
        llm_cache_path=llm_cache,
        read_edge_list=read_edges,
        probe_llm=probe_llm,
    )
    return scenario, estimate


FORCE_HELP = "Run even when the resource estimate exceeds this machine or the limits."


@app.command()
def run(
    scenario_file: Annotated[Path, typer.Argument(metavar="FILE", help="Scenario YAML.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Run directory to create (empty or new).")
    ] = None,
    replicates: Annotated[
        int | None, typer.Option("--replicates", "-r", min=1, help="Override replicates.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", "-s", min=0, help="Override seed.")] = None,
    executor: Annotated[
        str,
        typer.Option(help="local (in-process), process (one process per core) or ray (tasks)."),
    ] = "process",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Processes for --executor process; CPUs of a local Ray."),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster for --executor ray: auto or ray://host:port."),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(metavar="RUN_DIR", help="Finish an interrupted run: rerun unfinished cells."),
    ] = None,
    shards: Annotated[
        int,
        typer.Option(
            min=1, help="Split each cell's users over N Ray workers (--executor ray; same logs)."
        ),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    llm_cache_mode: Annotated[
        str | None,
        typer.Option(help="Override llm.cache.mode: auto, record or replay (no endpoint calls)."),
    ] = None,
    llm_cache: Annotated[
        Path | None, typer.Option(help="Override llm.cache.path (SQLite file of LLM calls).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    max_fallback: Annotated[
        float | None,
        typer.Option(
            min=0.0, max=1.0, help="Override llm.max_fallback_share (default 0.2); above: exit 3."
        ),
    ] = None,
    allow_fallback: Annotated[
        bool,
        typer.Option("--allow-fallback", help="Accept a run whose LLM decisions fell back."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the expected LLM calls, tokens and cost; call nothing."
        ),
    ] = False,
) -> None:
    """Simulate every arm x replicate, write Parquet logs and print the A/B table.

    Exit codes: 0 ok, 1 unexpected error or failed cells, 2 user error, 3 too many LLM
    decisions fell back to the rule policy, 130 interrupted (docs/runs.md)."""
    from recarena.simulator.runner.executors import EXECUTORS
    from recarena.simulator.runner.experiment import (
        CellsFailed,
        Interrupted,
        check_run_output,
        new_run_dir,
        plan_cells,
        resumable_manifest,
        run_experiment,
    )

    if executor not in EXECUTORS.names():
        known = ", ".join(EXECUTORS.names())
        raise RecarenaError(f"--executor: unknown {executor!r}; known: {known}")
    if address is not None and executor != "ray":
        raise RecarenaError("--address: only for --executor ray")
    if shards > 1 and executor != "ray":
        raise RecarenaError(f"--shards {shards}: needs --executor ray")
    if executor == "ray":
        from recarena.simulator.runner.ray_executor import check_reachable

        check_reachable(address)  # before the estimate and the bars: nothing has started
    if resume is not None and output is not None:
        raise RecarenaError("--resume: the run directory to resume is the output; drop --output")
    if llm_cache_mode not in (None, "auto", "record", "replay", "off"):
        raise RecarenaError(
            f"--llm-cache-mode: unknown {llm_cache_mode!r}; known: auto, record, replay, off"
        )
    overrides: dict[str, Any] = {}
    if replicates is not None:
        overrides["replicates"] = replicates
    if seed is not None:
        overrides["seed"] = seed
    scenario, _ = _load_checked(
        scenario_file,
        force=force,
        overrides=overrides,
        workers=1 if executor == "local" else workers,
        llm_cache_mode=llm_cache_mode,
        llm_cache=llm_cache,
        # a dry run calls nothing; a run that accepts every decision falling back may start
        # without its endpoint
        probe_llm=not (
            dry_run or allow_fallback or (max_fallback is not None and max_fallback >= 1)
        ),
    )
    from recarena.agents.users.calibrated import resolve_calibrated
    from recarena.simulator.runner.preflight import preflight

    if scenario.population.source == "calibrated":
        with _reading(f"population.path {scenario.population.path}"):
            scenario = resolve_calibrated(scenario)  # calibrates on the fly if the file is missing
        # the estimate again with the file's sizes (it may have just been made)
        preflight(scenario, str(scenario_file), force=force, workers=workers, probe_llm=False)
    if dry_run:  # nothing is created and no endpoint is called
        from recarena.simulator.runner.llm_estimate import estimate_llm_calls, format_estimate

        if not scenario.uses_llm:
            out.print("dry run: this scenario makes no LLM calls")
            return
        calls = estimate_llm_calls(scenario, len(plan_cells(scenario)))
        out.print(format_estimate(calls), soft_wrap=True, markup=False)
        return
    run_dir = resume if resume is not None else new_run_dir(scenario, output)
    cells = plan_cells(scenario)
    if resume is not None:
        resumable_manifest(resume, scenario)  # a mismatch is one error line, before any bars
    named = None if resume is not None or output is not None else "output.dir"
    estimate = check_run_output(scenario, run_dir, cells, resume is not None, named)  # before work
    if not quiet:
        err.print(f"note: {estimate}", soft_wrap=True, markup=False)

    progress = _progress_bars(quiet)
    tasks = {
        c.index: progress.add_task(
            ("" if c.point is None else f"point={c.point} ") + f"arm={c.arm:<14} rep={c.rep}",
            total=1.0,
        )
        for c in cells
    }

    def on_progress(cell, fraction: float) -> None:
        progress.update(tasks[cell.index], completed=fraction)

    try:
        with progress:
            result = run_experiment(
                scenario,
                run_dir,
                executor,  # type: ignore[arg-type]
                workers,
                on_progress,
                cells,
                llm_cache_mode=llm_cache_mode,
                llm_cache_path=llm_cache,
                address=address,
                resume=resume is not None,
                on_note=lambda text: err.print(f"note: {text}", soft_wrap=True, markup=False),
                max_fallback=max_fallback,
                shards=shards,
            )
    except Interrupted as stopped:
        err.print(
            f"interrupted ({stopped}): finished cells are readable in {run_dir}; unfinished ones "
            f"are marked _INCOMPLETE; finish them with: recarena run {scenario_file} --resume "
            f"{run_dir}",
            soft_wrap=True,
            markup=False,
        )
        raise typer.Exit(130) from None
    except CellsFailed as failed:
        if isinstance(failed, RecarenaError):
            raise  # every failure was the user's: one line, exit 2
        print(f"error: {failed}", file=sys.stderr)
        raise typer.Exit(1) from None
    wall = result.manifest["wall_seconds"]
    _print_comparison(run_dir, None, scenario.metrics)
    if "llm" in result.manifest:
        from recarena.simulator.runner.llm_accounting import format_accounting

        out.print(format_accounting(result.manifest["llm"]["accounting"]), soft_wrap=True)
    if resume is not None:
        out.print(f"resumed: {result.manifest['resumed_cells']} of {len(cells)} cells were rerun")
    out.print(f"{len(cells)} cells in {wall:.1f} s")
    out.print(f"run directory: {run_dir}")
    if result.fallback is not None and result.fallback.exceeded:
        print(f"warning: {result.fallback.warning()}", file=sys.stderr)
        if not allow_fallback:
            raise typer.Exit(3)


@app.command()
def calibrate(
    dataset: Annotated[str, typer.Argument(help="ml-100k (inside RecBole) or a dataset path.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Population parquet to write.")],
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    topics: Annotated[int, typer.Option(min=1, max=1024, help="Latent topics.")] = 16,
    seed: Annotated[int, typer.Option(min=0)] = 0,
) -> None:
    """Fit users, items, activity and the choice model to real data (see calibration.py)."""
    import time

    from recarena.agents.users.calibration import CalibratedPopulation, CalibrationConfig
    from recarena.agents.users.calibration import calibrate as fit
    from recarena.simulator.data.datasets import load_dataset

    _check_format(fmt)
    _check_population_output(output, CalibratedPopulation)
    started = time.perf_counter()
    with _stoppable(f"nothing written to {output}"), _reading(f"dataset {dataset}"):
        data = load_dataset(dataset, fmt)  # type: ignore[arg-type]
        population = fit(data, CalibrationConfig(topics=topics, seed=seed))
    with _reading(f"--output {output}"):
        population.save(output)
    s = population.scalars
    users_path, items_path, json_path = CalibratedPopulation.paths(output)
    print(
        f"{data.name}: {population.n_users} users, {population.n_items} items, "
        f"{data.n_interactions} interactions; temperature {s['temperature']:.3f}, no-click "
        f"utility {s['no_click_utility']:.3f}, mean activity {s['mean_activity']:.3f} "
        f"sessions/day; {time.perf_counter() - started:.1f} s\n"
        f"wrote {users_path}, {items_path}, {json_path}"
    )


def _check_population_output(output: Path, population: Any) -> None:
    """Before any work: every file ``calibrate -o`` writes (the users file and its siblings)
    can be created, and none of them is something other than a regular file. Was: ``-o
    /dev/null`` fitted for minutes, then created /dev/null.items.parquet beside the device."""
    from recarena.simulator.core.paths import check_creatable

    files = [*population.paths(output), population.interest_path(output)]
    for path in files:
        check_creatable(path, "--output", directory=False)
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise RecarenaError(f"--output {output}: {path} is {kind}")


def _fidelity_panel(
    llm: bool,
    users: int,
    base_url: str | None,
    model: str | None,
    api_key_env: str,
    decision: str,
    cache: Path | None,
    output: Path,
) -> dict[str, object] | None:
    """The LLM panel's settings for ``recarena fidelity``, checked in one line each; None
    without --llm. Any --llm-* option but --llm-users asks for the panel by itself."""
    given = base_url is not None or model is not None or cache is not None
    if not (llm or given):
        return None
    if decision not in ("score", "generate"):
        raise RecarenaError(f"--llm-decision: unknown {decision!r}; known: score, generate")
    panel: dict[str, object] = {
        "users": users,
        "decision": decision,
        "cache": str(cache if cache is not None else output / "llm_cache.sqlite"),
    }
    if base_url is None:
        if model is not None:
            raise RecarenaError("--llm-model: only with --llm-base-url (the local server has one)")
        return panel
    if not base_url.startswith(("http://", "https://")) or len(base_url.split("://", 1)[1]) == 0:
        raise RecarenaError(f"--llm-base-url: {base_url!r} is not an http(s) URL")
    if not model:
        raise RecarenaError("--llm-model: needed with --llm-base-url (the model to ask)")
    return panel | {
        "provider": "openai",
        "base_url": base_url.rstrip("/"),
        "model": model,
        "api_key_env": api_key_env,
    }


@app.command()
def fidelity(
    dataset: Annotated[
        str, typer.Option(help="ml-100k (inside RecBole) or a dataset path, as for calibrate.")
    ] = "ml-100k",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Directory for fidelity.json / fidelity.md.")
    ] = Path("runs/fidelity"),
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    seed: Annotated[int, typer.Option("--seed", "-s", min=0)] = 0,
    users: Annotated[
        int | None, typer.Option(min=2, help="Keep this many users (drawn with --seed).")
    ] = None,
    topics: Annotated[int, typer.Option(min=1, max=1024, help="Latent topics.")] = 16,
    llm: Annotated[
        bool, typer.Option("--llm", help="Also run checks 1-3 for an LLM panel (local SmolLM2).")
    ] = False,
    llm_users: Annotated[int, typer.Option(min=1, help="LLM panel size with --llm.")] = 10,
    llm_base_url: Annotated[
        str | None,
        typer.Option(
            help="With --llm: an OpenAI-compatible endpoint (e.g. http://127.0.0.1:11434/v1 for "
            "Ollama) instead of the local SmolLM2 server."
        ),
    ] = None,
    llm_model: Annotated[
        str | None, typer.Option(help="With --llm-base-url: the model name the endpoint serves.")
    ] = None,
    llm_api_key_env: Annotated[
        str,
        typer.Option(help="With --llm-base-url: the environment variable holding the API key."),
    ] = "OPENAI_API_KEY",
    llm_decision: Annotated[
        str,
        typer.Option(
            help="With --llm: score (one forward pass, read from logprobs; JSON where the "
            "endpoint has none) or generate (JSON answers)."
        ),
    ] = "score",
    llm_cache: Annotated[
        Path | None,
        typer.Option(help="With --llm: the LLM call cache (default: OUTPUT/llm_cache.sqlite)."),
    ] = None,
    per_user: Annotated[
        bool, typer.Option("--per-user", help="Check 1: also average scores per user.")
    ] = False,
    arms: Annotated[
        str | None,
        typer.Option(help="Check 3: comma-separated subset of the default arms (all seven)."),
    ] = None,
    max_ratings: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Sample whole users while their interactions fit this budget (0: all; "
            "default 1,100,000, about a 15-minute run on two cores).",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Processes that train and simulate check 3's arms (default: the usable CPUs, "
            "at most 4). The figures do not depend on it.",
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Fidelity of a calibrated population to real held-out data: three checks with CIs."""
    import time

    from recarena.analysis.fidelity.report import (
        FidelityConfig,
        sampled_note,
        select_arms,
        side_by_side,
        table_rows,
        write_report,
    )

    _check_format(fmt)
    panel = _fidelity_panel(
        llm, llm_users, llm_base_url, llm_model, llm_api_key_env, llm_decision, llm_cache, output
    )
    cfg = FidelityConfig(
        dataset=dataset,
        format=fmt,
        seed=seed,
        users=users,
        topics=topics,
        llm=panel,
        per_user=per_user,
        arms=select_arms(arms),
    )
    if max_ratings is not None:
        cfg = replace(cfg, max_ratings=max_ratings or None)
    progress = _progress_bars(quiet)
    tasks: dict[str, TaskID] = {}

    def on_progress(description: str, fraction: float) -> None:
        step = description.split(" ")[0]  # one bar per step kind: train, simulate, ...
        if step not in tasks:
            tasks[step] = progress.add_task(description, total=1.0)
        progress.update(tasks[step], description=description, completed=fraction)

    started = time.perf_counter()
    stopped = f"nothing written to {output} (its files appear only when the run ends)"
    with _stoppable(stopped), progress, _reading(f"fidelity on {dataset}"):
        result = write_report(output, cfg, on_progress, workers)
    table = Table(title=f"fidelity: {result['dataset']['name']} (95% CI over users)")
    if note := sampled_note(result["dataset"]):
        out.print(note.strip(), highlight=False)
    for column in ("check", "measure", "value [95% CI]", "reference"):
        table.add_column(column)
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    out.print("\n".join(side_by_side(result)), highlight=False)
    out.print(f"{time.perf_counter() - started:.1f} s; wrote {output}/fidelity.json, fidelity.md")


@app.command()
def validate(
    scenario_file: Annotated[Path, typer.Argument(metavar="FILE")],
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
) -> None:
    """Check a scenario file without running it: everything run would refuse (docs/scenarios.md)."""
    from recarena.simulator.runner.output_check import check_output, estimate_logs
    from recarena.simulator.runner.plan import plan_cells

    scenario, estimate = _load_checked(scenario_file, force=force)
    try:  # where `run` without -o puts the logs: writable, with room for them
        check_output(Path(scenario.output.dir), estimate_logs(scenario).bytes, "output.dir")
    except RecarenaError as exc:
        raise RecarenaError(f"{scenario_file}: {exc}") from None
    arms = ", ".join(f"{a.name} ({a.recommender.type})" for a in scenario.arms)
    print(
        f"ok: {scenario_file}: {len(plan_cells(scenario))} cells — arms {arms}; "
        f"{scenario.replicates} replicates; "
        + (
            f"{scenario.population.users} users; "
            if scenario.population.source == "generated"
            else f"users calibrated from {scenario.population.path}; "
        )
        + f"{scenario.horizon.days:g} days; {estimate.summary()}"
    )


CI_OVER_HELP = (
    "What the CIs resample: auto (users for per-user metrics below 5 replicates, else "
    "replicates), users, or replicates (needs 2+ replicates)."
)


@app.command()
def compare(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")],
    baseline: Annotated[str | None, typer.Option(help="Arm to compare against.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", "-m", help="Metric (repeatable).")
    ] = None,
    ci_over: Annotated[str, typer.Option(help=CI_OVER_HELP)] = "auto",
) -> None:
    """Per-arm means and deltas vs the baseline with paired bootstrap 95% CIs."""
    with _reading(str(run_dir), run_dir):
        _print_comparison(run_dir, baseline, metric, ci_over)


def _print_comparison(
    run_dir: Path, baseline: str | None, metrics: list[str] | None, ci_over: str = "auto"
) -> None:
    from recarena.analysis.compare import compare as compare_arms
    from recarena.analysis.compare import format_table
    from recarena.analysis.load import load
    from recarena.analysis.metrics import get_metric, run_metrics

    for name in metrics or []:
        try:
            get_metric(name)
        except LookupError as exc:
            raise RecarenaError(f"--metric: {str(exc).strip(chr(34) + chr(39))}") from None
    from recarena.simulator.runner.fallback import shares_by_arm

    with _warnings_as_lines():  # unfinished/damaged cells, a reconciled manifest: one line each
        whole = logs = load(run_dir)
        points: list[dict[str, Any] | None] = [*logs.points] or [None]
        for point in points:  # a sweep compares the arms within each point
            if point is not None:
                values = ", ".join(f"{k}={v}" for k, v in point["params"].items())
                out.print(f"point {point['point']}: {values}", soft_wrap=True, markup=False)
                logs = load(run_dir, point=point["point"])
            chosen = metrics or run_metrics(logs)
            frame = compare_arms(logs, baseline=baseline, metrics=chosen, ci_over=ci_over)
            higher = {name: get_metric(name).higher_is_better for name in frame["metric"].unique()}
            out.print(format_table(frame, higher))
    shares = shares_by_arm(whole.llm_calls)
    if shares.height:
        per_arm = ", ".join(
            f"{r['arm']} {r['share']:.1%} ({r['fallbacks']}/{r['decisions']})"
            for r in shares.iter_rows(named=True)
        )
        out.print(f"LLM fallback share (decisions answered by the rule policy): {per_arm}")


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """Print each distinct warning raised inside as one ``warning: ...`` line on stderr."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:  # also before the error line of a failing command
            seen: set[str] = set()
            for item in caught:
                text = " ".join(str(item.message).split())
                if text not in seen:
                    seen.add(text)
                    print(f"warning: {text}", file=sys.stderr)


@app.command()
def ope(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")],
    target: Annotated[str, typer.Option(help="Arm whose CTR is estimated.")],
    logging: Annotated[
        str | None, typer.Option(help="Arm whose log is used (default: the baseline).")
    ] = None,
    estimators: Annotated[
        str, typer.Option(help="Comma-separated: ips, snips, dr, naive.")
    ] = "ips,snips,dr",
    all_pages: Annotated[
        bool, typer.Option("--all-pages", help="Use every page, not only page 0.")
    ] = False,
    seed: Annotated[int, typer.Option(min=0, help="Bootstrap seed.")] = 0,
    point: Annotated[int | None, typer.Option(min=0, help="Sweep point (sweep runs).")] = None,
) -> None:
    """Off-policy estimates of a target arm's CTR from another arm's log, vs its true CTR."""
    from recarena.analysis.load import load_one_world
    from recarena.analysis.ope import format_ope_table, off_policy_evaluation

    names = [e.strip() for e in estimators.split(",") if e.strip()]
    with _warnings_as_lines(), _reading(str(run_dir), run_dir):  # unfinished cells: one line each
        frame = off_policy_evaluation(
            load_one_world(run_dir, point),
            target,
            logging,
            names,
            page=None if all_pages else 0,
            seed=seed,
        )
    out.print(format_ope_table(frame))


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html)."),
    ] = None,
    baseline: Annotated[str | None, typer.Option(help="Arm to compare against.")] = None,
    point: Annotated[int | None, typer.Option(min=0, help="Sweep point (sweep runs).")] = None,
    ci_over: Annotated[str, typer.Option(help=CI_OVER_HELP)] = "auto",
) -> None:
    """Write a self-contained HTML report (A/B table, charts; opens offline) and print its path."""
    from recarena.analysis.load import load
    from recarena.analysis.report import write_report

    with _warnings_as_lines():  # a reconciled manifest, damaged or unfinished cells: one line
        load(run_dir, point)
    with _reading(f"report of {run_dir}", run_dir):
        path = write_report(run_dir, output, baseline, point, ci_over)
    print(path)


def _params_text(entry_object: object) -> str:
    """``name=default`` for each field of a plug-in's pydantic Params model (empty if none)."""
    params = getattr(entry_object, "Params", None)
    fields = getattr(params, "model_fields", None)
    if not fields:
        return ""
    shown = []
    for name, field in fields.items():
        default = "required" if field.is_required() else repr(field.get_default())
        shown.append(f"{name}={default}")
    return ", ".join(shown)


@app.command("list")
def list_components(
    params: Annotated[
        bool, typer.Option("--params", help="Also show each plug-in's params and defaults.")
    ] = False,
) -> None:
    """Every registered plug-in, built-in and installed: recommenders, user policies, surfaces,
    creator strategies, metrics and OPE estimators."""
    from recarena.agents.creators.strategies import REGISTRY as STRATEGIES
    from recarena.agents.users.policies import REGISTRY as USER_POLICIES
    from recarena.analysis.metrics import REGISTRY as METRICS
    from recarena.analysis.ope import REGISTRY as ESTIMATORS
    from recarena.recommenders.registry import REGISTRY as RECOMMENDERS
    from recarena.simulator.engine.surfaces import REGISTRY as SURFACES

    table = Table(title="recarena components", show_lines=False)
    for column in ("kind", "name", "what it is", "source") + (("params",) if params else ()):
        table.add_column(column)
    for registry in (RECOMMENDERS, USER_POLICIES, SURFACES, STRATEGIES, METRICS, ESTIMATORS):
        for name, entry in registry.entries().items():
            row = [registry.label, name, entry.description, entry.source]
            if params:
                try:
                    row.append(_params_text(entry.load()))
                except LookupError as exc:
                    row.append(f"(cannot load: {exc})")
            table.add_row(*row)
    table.add_row("user model", "mixed", "rule users plus an LLM panel (population.llm_panel)", "")
    table.add_row("user model", "llm", "every user answers each page through the LLM", "")
    table.add_row("conversational user", "agenda", "rule user with a hidden target", "")
    table.add_row("llm provider", "local", "llama.cpp on 127.0.0.1 (any GGUF model)", "")
    table.add_row("llm provider", "openai", "any OpenAI-compatible endpoint (llm.base_url)", "")
    out.print(table)
    out.print(
        "Plug-ins: write `package.module:Class` where a name goes, or install a package with "
        "entry points in recarena.recommenders, recarena.user_policies, recarena.surfaces, "
        "recarena.creator_strategies, recarena.metrics or recarena.ope_estimators."
    )


@app.command()
def schema() -> None:
    """Print the scenario file's JSON Schema (every field with its description).

    Editors that speak the YAML language server validate and complete scenarios with it: put
    ``# yaml-language-server: $schema=<path to the printed file>`` on a scenario's first line
    (the repository's copy is docs/reference/scenario.schema.json).
    """
    import json

    from recarena.simulator.core.scenario import Scenario

    document = Scenario.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "recarena scenario"
    print(json.dumps(document, indent=2))


def _one_line(text: object) -> str:
    """An error's text (a message or an exception) on one line."""
    return " ".join(str(text).split())


def _usage_error(exc: Exception) -> str:
    """A click/typer usage error as one line: where, what, and where to look."""
    ctx = getattr(exc, "ctx", None)
    command = getattr(ctx, "command_path", None) or "recarena"
    return f"error: {command}: {_one_line(exc.format_message())} (see '{command} --help')"  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every error is one line on stderr unless ``--debug`` asks for tracebacks.

    Exit codes: 2 for anything the user can fix (a scenario, a file, an option), 130 for an
    interrupt, 1 for a bug (with a hint to rerun with --debug).
    """
    import traceback

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = app(args=args, prog_name="recarena", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except RecarenaError as exc:
        if debug:
            traceback.print_exc()
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        # typer vendors its own click, so usage errors are recognised by their interface
        if callable(getattr(exc, "format_message", None)) and hasattr(exc, "exit_code"):
            if type(exc).__name__ == "NoArgsIsHelpError":  # bare `recarena`: help was printed
                sys.exit(0)
            if debug:
                traceback.print_exc()
            print(_usage_error(exc), file=sys.stderr)
            sys.exit(2)
        if debug:
            raise
        where = traceback.extract_tb(exc.__traceback__)[-1]
        print(
            f"error: internal error {type(exc).__name__}: {_one_line(exc)[:300]} "
            f"(at {Path(where.filename).name}:{where.lineno}; rerun with --debug for the "
            "traceback)",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
