"""``run`` and ``validate``: the two commands that read a scenario file.

``validate`` refuses exactly what ``run`` would refuse, because both go through
:func:`load_checked` before anything is created.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from recarena.simulator.cli.app import app, err, new_path, nonempty_path, out
from recarena.simulator.cli.comparison import print_comparison
from recarena.simulator.cli.guards import reading
from recarena.simulator.cli.progress import progress_bars
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import REPLICATES_MAX, SEED_MAX


def load_checked(
    path: Path,
    *,
    force: bool = False,
    overrides: dict[str, Any] | None = None,
    workers: int | None = None,
    llm_cache_mode: str | None = None,
    llm_cache: Path | None = None,
    probe_llm: bool = True,
    shards: int = 1,
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
        # what the file wrote plus the options, as if written: a dump with every default in it
        # read back as all written, and a calibrated population then kept the schema's
        # temperature, no-click utility and rule user instead of its fitted ones
        written = scenario.model_dump(mode="json", exclude_unset=True)
        scenario = parse_scenario(written | overrides, str(path))
        refuse_swept_overrides(scenario, overrides)
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
        shards=shards,
    )
    return scenario, estimate


def refuse_swept_overrides(scenario: Any, overrides: dict[str, Any]) -> None:
    """An option that sets what the sweep sets at every point (``--seed`` with ``sweep: {seed:
    [1, 2]}``) is refused: each point overrode it, and the manifest recorded the option's value
    for cells that never ran with it."""
    from recarena.simulator.runner.sweep import parse_path

    for swept in scenario.sweep or {}:
        try:
            head = parse_path(swept)[0]
        except RecarenaError:
            continue  # named, with the file, by the sweep's own checks
        if head in overrides:
            raise RecarenaError(
                f"--{head} {overrides[head]}: the scenario sweeps {head} (sweep.{swept}), "
                f"which sets it at every point; drop --{head} or that sweep"
            )


CACHE_MODES = ("auto", "record", "replay", "off")

LLM_CACHE_MODE_HELP = "Override llm.cache.mode: auto, record, replay (no endpoint calls) or off."
LLM_CACHE_HELP = "Override llm.cache.path (SQLite file of LLM calls)."


def check_llm_cache_options(mode: str | None, cache: Path | None) -> None:
    """``--llm-cache-mode`` and ``--llm-cache`` as given, before the scenario is read (run and
    validate); the file itself is checked with the scenario's settings by the preflight."""
    if mode not in (None, *CACHE_MODES):
        raise RecarenaError(f"--llm-cache-mode: unknown {mode!r}; known: {', '.join(CACHE_MODES)}")
    if mode == "off" and cache is not None:  # was: the file silently unused
        raise RecarenaError(
            "--llm-cache: --llm-cache-mode off reads and writes no cache file; leave one out"
        )


def note_unused_llm_options(scenario: Any, options: dict[str, object]) -> None:
    """LLM options given for a scenario that makes no LLM calls: said on stderr, not refused
    (the run is still what was asked)."""
    unused = [name for name, value in options.items() if value is not None]
    if unused and not scenario.uses_llm:
        err.print(
            f"note: {', '.join(unused)}: ignored, this scenario makes no LLM calls",
            soft_wrap=True,
            markup=False,
        )


def note_unused_llm_section(scenario: Any) -> None:
    """An ``llm:`` section in a scenario that makes no LLM calls: said on stderr, not refused
    (the run is still what the rest of the file asks for), since an llm section alone adds no
    LLM user. A sweep point cannot use an LLM the scenario itself does not (the sweep checks
    refuse it), so the scenario answers for every point. The section a resolved scenario
    writes (every field, at its default) is not one the user wrote, and is not named."""
    if "llm" not in scenario.model_fields_set or scenario.uses_llm:
        return
    llm = scenario.llm
    fields = set(type(llm).model_fields)
    if llm.model_fields_set == fields and llm.model_dump() == type(llm)().model_dump():
        return
    err.print(
        "note: llm: read by nothing, no user, creator or recommender of this scenario is "
        "LLM-driven (population.model: mixed with an llm_panel, or llm, makes LLM users)",
        soft_wrap=True,
        markup=False,
    )


def note_rhythm_before_peaks(scenario: Any) -> None:
    """A daily rhythm over a horizon that ends before its peaks (a trial of a few hours from
    midnight, peaks in the evening): the run simulates the sessions users' hours put before
    the horizon, a small share of a day's; said on stderr, not refused."""
    from recarena.simulator.runner.scenario_checks import rhythm_note

    line = rhythm_note(scenario)
    if line is not None:
        err.print(f"note: {line}", soft_wrap=True, markup=False)


def note_untrained_arms(scenario: Any) -> None:
    """Arms whose learner is fitted only at the start (the default daily refit over a horizon
    of a day or less): said on stderr, not refused, since smoke tests run that way."""
    from recarena.simulator.runner.scenario_checks import untrained_arms

    arms = untrained_arms(scenario)
    if arms:
        days = scenario.horizon.days
        err.print(
            f"note: {', '.join(arms)}: fitted once, at the start, before any click (a daily "
            f"refit and horizon.days {days:g}), so "
            f"{'it serves' if len(arms) == 1 else 'they serve'} an untrained ranking all run; "
            "set retrain.every_days below the horizon for a learner that learns",
            soft_wrap=True,
            markup=False,
        )


def share(value: str) -> float:
    """``--max-fallback``: a number from 0 to 1. Was: 'nan' was refused as 'Input should be
    less than or equal to 1', naming a bound it does not pass."""
    try:
        number = float(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a number; give a share from 0 to 1") from None
    if not 0.0 <= number <= 1.0:  # NaN fails both comparisons
        raise typer.BadParameter(f"{value} is not a share from 0 to 1")
    return number


def note_llm_threads(scenario: Any, mode: str | None) -> None:
    """``llm.threads`` past the CPUs this process may use: said on stderr, not refused (nor
    for a replay, which starts no server). The
    embedded server's threads meet at a barrier after every operation, so the extra ones only
    wait: 64 threads on this project's 2-CPU machine answered about 4x slower than 1."""
    from recarena.simulator.core import machine

    replay = (mode or scenario.llm.cache.mode) == "replay"
    threads = scenario.llm.threads if scenario.uses_llm and not replay else None
    cpus = machine.usable_cpus()
    if scenario.llm.provider == "local" and threads is not None and threads > cpus:
        err.print(
            f"note: llm.threads {threads} is more than the {cpus} CPUs this process may use: "
            "llama.cpp's extra threads only wait for the others, and the server answers slower "
            f"than with {cpus}",
            soft_wrap=True,
            markup=False,
        )


RENAMES = 100
"""How many times a run named by output.dir takes the next free name when other runs of the
scenario, started in the same second, take its name first."""


MAX_BARS = 12
"""Runs of more cells show one bar for all cells and one per running cell: rich redraws every
bar ten times a second, and 2,000 bars took 1.2 s a redraw (20,000: 10 s), starving the run."""


class CellBars:
    """The run's progress callback: a bar per cell for a run of up to MAX_BARS cells, else a
    bar for all cells and one for each cell while it runs."""

    def __init__(self, progress: Any, cells: list[Any]) -> None:
        self.progress = progress
        self.tasks: dict[int, Any] = {}
        self.done: set[int] = set()
        self.overall = None
        if len(cells) <= MAX_BARS:
            self.tasks = {c.index: progress.add_task(self.label(c), total=1.0) for c in cells}
        else:
            self.overall = progress.add_task(f"{len(cells):,} cells", total=len(cells))

    @staticmethod
    def label(cell: Any) -> str:
        point = "" if cell.point is None else f"point={cell.point} "
        return f"{point}arm={cell.arm:<14} rep={cell.rep}"

    def __call__(self, cell: Any, fraction: float) -> None:
        if self.overall is None:
            self.progress.update(self.tasks[cell.index], completed=fraction)
            return
        if cell.index in self.done:
            return
        task = self.tasks.get(cell.index)
        if fraction >= 1.0:
            self.done.add(cell.index)
            if task is not None:
                self.progress.remove_task(self.tasks.pop(cell.index))
            self.progress.update(self.overall, completed=len(self.done))
            return
        if task is None:
            task = self.tasks[cell.index] = self.progress.add_task(self.label(cell), total=1.0)
        self.progress.update(task, completed=fraction)


FORCE_HELP = "Run even when the resource estimate exceeds this machine or the limits."


@app.command()
def run(
    scenario_file: Annotated[
        Path, typer.Argument(metavar="FILE", help="Scenario YAML.", parser=nonempty_path)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Run directory to create (empty or new).", parser=new_path
        ),
    ] = None,
    replicates: Annotated[
        int | None,
        typer.Option("--replicates", "-r", min=1, max=REPLICATES_MAX, help="Override replicates."),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option("--seed", "-s", min=0, max=SEED_MAX, help="Override seed (0 to 2^64-1)."),
    ] = None,
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
        typer.Option(
            metavar="RUN_DIR",
            help="Finish an interrupted run: rerun unfinished cells.",
            parser=nonempty_path,
        ),
    ] = None,
    shards: Annotated[
        int,
        typer.Option(
            min=1, help="Split each cell's users over N Ray workers (--executor ray; same logs)."
        ),
    ] = 1,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    llm_cache_mode: Annotated[str | None, typer.Option(help=LLM_CACHE_MODE_HELP)] = None,
    llm_cache: Annotated[Path | None, typer.Option(help=LLM_CACHE_HELP, parser=new_path)] = None,
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    max_fallback: Annotated[
        float | None,
        typer.Option(
            help="Override llm.max_fallback_share (default 0.2); above: exit 3.", parser=share
        ),
    ] = None,
    allow_fallback: Annotated[
        bool,
        typer.Option("--allow-fallback", help="Accept a run whose LLM decisions fell back."),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print what the run would be (cells, memory, logs) and its expected LLM "
            "calls, tokens and cost; create and call nothing.",
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
        RunDirTaken,
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
    check_llm_cache_options(llm_cache_mode, llm_cache)
    overrides: dict[str, Any] = {}
    if replicates is not None:
        overrides["replicates"] = replicates
    if seed is not None:
        overrides["seed"] = seed
    scenario, estimate = load_checked(
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
        shards=shards,
    )
    from recarena.agents.users.calibrated import is_calibrated, resolve_calibrated
    from recarena.simulator.runner.preflight import preflight

    # a dry run creates nothing, so it does not calibrate a missing population file: it says
    # that the run would, and estimates from the scenario as validate does (was: the dry run
    # calibrated, ~30 s for ml-100k, and wrote the population file)
    uncalibrated = (
        dry_run
        and scenario.population.source == "calibrated"
        and not is_calibrated(Path(str(scenario.population.path)))
    )
    if scenario.population.source == "calibrated" and not uncalibrated:
        with reading(f"population.path {scenario.population.path}"):
            scenario = resolve_calibrated(scenario)  # calibrates on the fly if the file is missing
        # the estimate again with the file's sizes (it may have just been made)
        estimate = preflight(
            scenario,
            str(scenario_file),
            force=force,
            workers=workers,
            probe_llm=False,
            shards=shards,
        )
    if shards > 1:  # every cell of every point splits, before the estimate line and the bars
        from recarena.simulator.runner.sharding import check_shards
        from recarena.simulator.runner.sweep import expand_sweep

        check_shards(scenario, expand_sweep(scenario), shards)
    if dry_run:  # nothing is created and no endpoint is called
        from recarena.simulator.runner.llm_estimate import estimate_llm_calls, format_estimate
        from recarena.simulator.runner.output_check import estimate_logs

        out.print(
            f"dry run: {scenario_file}: {plan_line(scenario, estimate, estimate_logs(scenario))}",
            soft_wrap=True,
            markup=False,
        )
        if uncalibrated:
            out.print(
                f"population.path {scenario.population.path} does not exist yet: the run "
                f"would first calibrate population.dataset {scenario.population.dataset} into "
                "it, and the figures above would follow the fitted population",
                soft_wrap=True,
                markup=False,
            )
        note_rhythm_before_peaks(scenario)
        if not scenario.uses_llm:
            out.print("this scenario makes no LLM calls")
            note_unused_llm_section(scenario)
            return
        if uncalibrated:  # the LLM bill is counted on a rule-only run of the fitted users
            out.print("the LLM calls are estimated once the population file exists")
            return
        calls = estimate_llm_calls(scenario, len(plan_cells(scenario)))
        out.print(format_estimate(calls), soft_wrap=True, markup=False)
        return
    run_dir = resume if resume is not None else new_run_dir(scenario, output)
    cells = plan_cells(scenario)
    if resume is not None:
        resumable_manifest(resume, scenario)  # a mismatch is one error line, before any bars
    named = None if resume is not None or output is not None else "output.dir"

    renames = 0

    def renamed(taken: RunDirTaken) -> Path:
        """A name of ours that another run took first (two runs of one scenario started in
        the same second): the next free one. A directory the user named stays refused."""
        nonlocal renames
        renames += 1
        if named is None or renames > RENAMES:
            raise taken
        return new_run_dir(scenario, None)

    while True:
        try:
            estimate = check_run_output(scenario, run_dir, cells, resume is not None, named)
            break  # before any work
        except RunDirTaken as taken:
            run_dir = renamed(taken)
    if not quiet:
        err.print(f"note: {estimate}", soft_wrap=True, markup=False)
    note_llm_threads(scenario, llm_cache_mode)
    llm_only: dict[str, object] = {"--llm-cache-mode": llm_cache_mode, "--llm-cache": llm_cache}
    llm_only |= {"--max-fallback": max_fallback, "--allow-fallback": allow_fallback or None}
    note_unused_llm_options(scenario, llm_only)
    why_not = None  # --workers where nothing reads it: said, as the LLM options above are
    if executor == "local":
        why_not = "--executor local runs one cell after another in this process"
    elif address is not None:
        why_not = "the Ray cluster at --address has its own CPUs"
    elif shards > 1:
        why_not = f"each cell runs on its {shards} shard workers, one cell after another"
    if workers is not None and why_not is not None:
        err.print(f"note: --workers {workers}: ignored, {why_not}", soft_wrap=True, markup=False)

    on_progress = CellBars(progress_bars(quiet), cells)
    progress = on_progress.progress

    try:
        with progress:
            while True:
                try:
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
                        on_note=lambda text: err.print(
                            f"note: {text}", soft_wrap=True, markup=False
                        ),
                        max_fallback=max_fallback,
                        shards=shards,
                    )
                    break
                except RunDirTaken as taken:  # nothing of this run was written
                    run_dir = renamed(taken)
    except Interrupted as stopped:
        if not (run_dir / "manifest.json").is_file():  # stopped before the run existed
            line = f"the run had not started; nothing was left in {run_dir}"
        else:
            line = (
                f"finished cells are readable in {run_dir}; unfinished ones are marked "
                f"_INCOMPLETE; finish them with: recarena run {scenario_file} --resume {run_dir}"
            )
        err.print(f"interrupted ({stopped}): {line}", soft_wrap=True, markup=False)
        raise typer.Exit(130) from None
    except CellsFailed as failed:
        if isinstance(failed, RecarenaError):
            raise  # every failure was the user's: one line, exit 2
        print(f"error: {failed}", file=sys.stderr)
        raise typer.Exit(1) from None
    wall = result.manifest["wall_seconds"]
    print_comparison(run_dir, None, scenario.metrics)
    if "llm" in result.manifest:
        from recarena.simulator.runner.llm_accounting import format_accounting

        out.print(format_accounting(result.manifest["llm"]["accounting"]), soft_wrap=True)
    if resume is not None:
        out.print(f"resumed: {result.manifest['resumed_cells']} of {len(cells)} cells were rerun")
    out.print(f"{len(cells)} cells in {wall:.1f} s")
    out.print(f"run directory: {run_dir}")
    note_untrained_arms(scenario)  # after the results, which it qualifies
    note_unused_llm_section(scenario)
    note_rhythm_before_peaks(scenario)
    if result.fallback is not None and result.fallback.exceeded:
        print(f"warning: {result.fallback.warning()}", file=sys.stderr)
        if not allow_fallback:
            raise typer.Exit(3)


SHOWN_ARMS = 20
"""Arms that validate's ok line names; the rest are counted."""


def plan_line(scenario: Any, estimate: Any, logs: Any) -> str:
    """What a run of ``scenario`` would be: its cells, arms, replicates, users and days, the
    memory estimate and the logs expected. ``validate`` prints it after "ok:", and
    ``run --dry-run`` after "dry run:", so a dry run says what the run would do and not only
    what it would cost in LLM calls."""
    from recarena.simulator.runner.plan import plan_cells
    from recarena.simulator.runner.preflight import human_bytes

    shown = [f"{a.name} ({a.recommender.type})" for a in scenario.arms[:SHOWN_ARMS]]
    more = len(scenario.arms) - len(shown)  # a generated 20,000-arm file made a 400 kB line
    arms = ", ".join(shown) + (f" and {more:,} more" if more else "")

    def count(n: float, word: str) -> str:  # "1 day", "0.5 days", "2000 users"
        shown = str(n) if isinstance(n, int) else f"{n:g}"
        return f"{shown} {word}" if n == 1 else f"{shown} {word}s"

    return (
        f"{count(len(plan_cells(scenario)), 'cell')} — arms {arms}; "
        f"{count(scenario.replicates, 'replicate')}; "
        + (
            f"{count(scenario.population.users, 'user')}; "
            if scenario.population.source == "generated"
            else f"users calibrated from {scenario.population.path}; "
        )
        + f"{count(scenario.horizon.days, 'day')}; {estimate.summary()}; "
        f"~{logs.impressions:,.0f} impressions expected, {human_bytes(logs.bytes)} of disk "
        "asked for the logs"
    )


@app.command()
def validate(
    scenario_file: Annotated[Path, typer.Argument(metavar="FILE", parser=nonempty_path)],
    force: Annotated[bool, typer.Option("--force", help=FORCE_HELP)] = False,
    llm_cache_mode: Annotated[str | None, typer.Option(help=LLM_CACHE_MODE_HELP)] = None,
    llm_cache: Annotated[Path | None, typer.Option(help=LLM_CACHE_HELP, parser=new_path)] = None,
) -> None:
    """Check a scenario file without running it: everything run would refuse.

    Give the run's --llm-cache-mode and --llm-cache to check its LLM cache too. What is
    checked: docs/guide/scenarios.md."""
    from recarena.simulator.runner.output_check import check_output, estimate_logs

    check_llm_cache_options(llm_cache_mode, llm_cache)
    scenario, estimate = load_checked(
        scenario_file, force=force, llm_cache_mode=llm_cache_mode, llm_cache=llm_cache
    )
    logs = estimate_logs(scenario)
    try:  # where `run` without -o puts the logs: writable, with room for them
        check_output(Path(scenario.output.dir), logs.bytes, "output.dir", parent=True)
    except RecarenaError as exc:
        raise RecarenaError(f"{scenario_file}: {exc}") from None
    note_unused_llm_options(
        scenario, {"--llm-cache-mode": llm_cache_mode, "--llm-cache": llm_cache}
    )
    note_llm_threads(scenario, llm_cache_mode)
    note_untrained_arms(scenario)  # after the last refusal: a refusal stays one line
    note_unused_llm_section(scenario)
    note_rhythm_before_peaks(scenario)
    print(f"ok: {scenario_file}: {plan_line(scenario, estimate, logs)}")
