"""``calibrate`` and ``fidelity``: the commands that read real interaction data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import TaskID
from rich.table import Table

from recarena.simulator.cli.app import app, err, new_path, out
from recarena.simulator.cli.guards import FORMAT_HELP, check_format, reading, stoppable
from recarena.simulator.cli.progress import progress_bars
from recarena.simulator.core.errors import RecarenaError

SEED_MAX = 2**64 - 1
"""The largest seed a calibration takes: ``SEED_MAX`` of agents/users/calibration.py (torch's
generator holds 64 bits), not imported here, where every command would load it."""


@app.command()
def calibrate(
    dataset: Annotated[
        str,
        typer.Argument(
            metavar="DATASET",
            help="ml-100k (inside RecBole), or a dataset folder, file or MovieLens .zip.",
        ),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Population parquet to write.", parser=new_path),
    ],
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    topics: Annotated[int, typer.Option(min=1, max=1024, help="Latent topics.")] = 16,
    seed: Annotated[int, typer.Option(min=0, max=SEED_MAX)] = 0,
    max_ratings: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Keep whole users (drawn with --seed) while their ratings fit this budget "
            "(0: all; default 1,100,000: calibration peaks at about 1 KB a rating).",
        ),
    ] = None,
) -> None:
    """Fit users, items, activity and the choice model to real data (docs/guide/real-data.md)."""
    import time

    from recarena.agents.users.calibration import CalibratedPopulation, CalibrationConfig
    from recarena.agents.users.calibration import calibrate as fit
    from recarena.simulator.data.datasets import dataset_notes, load_dataset
    from recarena.simulator.data.sampling import (
        DEFAULT_MAX_RATINGS,
        sampled_line,
        subsample_users,
    )

    check_format(fmt)
    _check_population_output(output, CalibratedPopulation, dataset)
    started = time.perf_counter()
    with stoppable(f"nothing written to {output}"), reading(f"dataset {dataset}"):
        full = load_dataset(dataset, fmt)  # type: ignore[arg-type]
        budget = DEFAULT_MAX_RATINGS if max_ratings is None else max_ratings
        data = subsample_users(full, None, seed, budget or None)
        sampled = sampled_line(full, data, budget)
        try:
            population = fit(data, CalibrationConfig(topics=topics, seed=seed))
        except RecarenaError as exc:  # a sample too small to fit: one line that says it is one
            if not sampled:
                raise
            raise RecarenaError(f"{exc} ({sampled}; --max-ratings 0 keeps all)") from None
        if sampled:  # after the fit, as the notes below: a refused dataset is one error line
            err.print(f"note: {sampled}; --max-ratings 0 keeps all", soft_wrap=True, markup=False)
        for note in dataset_notes(full):
            err.print(f"note: {note}", soft_wrap=True, markup=False)
        with reading(f"--output {output}"):
            written = _save_population(population, output)
    s = population.scalars
    print(
        f"{data.name}: {population.n_users} users, {population.n_items} items, "
        f"{data.n_interactions} interactions; temperature {s['temperature']:.3f}, no-click "
        f"utility {s['no_click_utility']:.3f}, mean activity {s['mean_activity']:.3f} "
        f"sessions/day; {time.perf_counter() - started:.1f} s\n"
        f"wrote {', '.join(map(str, written))}"
    )


def _save_population(population: Any, output: Path) -> list[Path]:
    """Save the population (its files published together: a stop or an error leaves the
    previous population as it was) and return the files written."""
    population.save(output)
    written = list(population.paths(output))
    if population.interest is not None:  # the short-term interest model a run reads too
        written.append(population.interest_path(output))
    return written


def _same_file(path: Path, other: Path) -> bool:
    """Whether two paths name one existing file (False for a path the OS cannot look up: the
    dataset's loader names that one)."""
    try:
        return path.is_file() and other.is_file() and path.samefile(other)
    except (OSError, ValueError):
        return False


def _check_population_output(output: Path, population: Any, dataset: str) -> None:
    """Before any work: every file ``calibrate -o`` writes (the users file and its siblings)
    can be created, and none of them is something other than a regular file, nor the dataset
    file itself. Was: ``-o /dev/null`` fitted for minutes, then created
    /dev/null.items.parquet beside the device; ``-o pop.json`` wrote the population and then
    its JSON sidecar over it; ``calibrate log.parquet -o log.parquet`` (a generic Parquet log,
    which the check against writing over a dataset let pass) wrote it over the log."""
    from recarena.simulator.core.paths import check_creatable, check_file_creatable
    from recarena.simulator.runner.calibrated_check import (
        overwrite_problem,
        population_name_problem,
    )

    files = [*population.paths(output), population.interest_path(output)]
    read = Path(dataset)
    for path in files:
        check_creatable(path, "--output", directory=False)
        if _same_file(path, read):
            raise RecarenaError(
                f"--output {output}: {path} is the dataset being calibrated; name a new "
                ".parquet file"
            )
        if path.exists() and not path.is_file():
            kind = "a directory" if path.is_dir() else "not a regular file"
            raise RecarenaError(f"--output {output}: {path} is {kind}")
    check_file_creatable(output, "--output")  # /proc, a read-only mount: before the fit
    for path in files[:2]:  # the users and items Parquet files
        problem = overwrite_problem(path)
        if problem is not None:
            raise RecarenaError(f"--output {output}: {problem}")
    problem = population_name_problem(output)
    if problem is not None:
        raise RecarenaError(f"--output {output}: {problem}")


def _fidelity_panel(
    llm: bool,
    users: int | None,
    base_url: str | None,
    model: str | None,
    api_key_env: str | None,
    decision: str | None,
    cache: Path | None,
    output: Path,
) -> dict[str, object] | None:
    """The LLM panel's settings for ``recarena fidelity``, checked in one line each; None
    without --llm. --llm-base-url, --llm-model and --llm-cache ask for the panel by themselves
    (they name where its answers come from or go); --llm-users, --llm-decision and
    --llm-api-key-env only shape a panel, so given alone they are refused rather than ignored:
    a user who typed them expected a panel."""
    if decision not in (None, "score", "generate"):  # without --llm too: a typo is not ignored
        raise RecarenaError(f"--llm-decision: unknown {decision!r}; known: score, generate")
    given = base_url is not None or model is not None or cache is not None
    if not (llm or given):
        shaping = {
            "--llm-users": users,
            "--llm-decision": decision,
            "--llm-api-key-env": api_key_env,
        }
        for option, value in shaping.items():
            if value is not None:
                raise RecarenaError(f"{option}: only with --llm (no LLM panel was asked for)")
        return None
    if cache is not None:  # a folder, or under a file: was an internal error after the checks
        from recarena.simulator.runner.preflight import check_cache_file

        check_cache_file(cache, "--llm-cache")
    panel: dict[str, object] = {
        "users": 10 if users is None else users,
        "decision": decision or "score",
        "cache": str(cache if cache is not None else output / "llm_cache.sqlite"),
    }
    if base_url is None:
        if model is not None:
            raise RecarenaError("--llm-model: only with --llm-base-url (the local server has one)")
        if api_key_env is not None:
            raise RecarenaError(
                "--llm-api-key-env: only with --llm-base-url (the local server needs no key)"
            )
        return panel
    if not base_url.startswith(("http://", "https://")) or len(base_url.split("://", 1)[1]) == 0:
        raise RecarenaError(f"--llm-base-url: {base_url!r} is not an http(s) URL")
    if not model:
        raise RecarenaError("--llm-model: needed with --llm-base-url (the model to ask)")
    from recarena.agents.llm.endpoint import unreachable
    from recarena.simulator.core.paths import url_problem
    from recarena.simulator.core.scenario import env_name_problem, model_name_problem
    from recarena.simulator.runner.preflight import key_variable_problem

    # checked as a scenario's llm section and the run's preflight check them; the panel's own
    # scenario found them only after the ranking's work (a port of 99999, a space, a call's
    # path or a password in the URL: minutes of training and simulating, then one line)
    problems = {
        "--llm-base-url": url_problem(base_url),
        "--llm-model": model_name_problem(model),
        "--llm-api-key-env": None
        if api_key_env is None
        else env_name_problem(api_key_env) or key_variable_problem(api_key_env),
    }
    for option, problem in problems.items():
        if problem is not None:
            raise RecarenaError(f"{option}: {problem}")
    down = unreachable(base_url)
    if down is not None:  # as a run's preflight: every panel answer would fall back
        raise RecarenaError(
            f"--llm-base-url {base_url}: nothing answers ({down}); start the endpoint first"
        )
    return panel | {
        "provider": "openai",
        "base_url": base_url.rstrip("/"),
        "model": model,
        "api_key_env": api_key_env or "OPENAI_API_KEY",
    }


ONE_PANEL_USER = (
    "--llm-users 1: every LLM figure (check 1's scores, checks 2 and 3 in simulation) is one "
    "user's answers to a few movies, with no CI (a CI resamples users: it needs 2 or more); "
    "the default panel is 10"
)
"""Said, not refused: one user is the cheapest smoke test of an endpoint, but its check-1
accuracy (the answers to at most 8 movies) read as a measure of the model."""


@app.command()
def fidelity(
    dataset: Annotated[
        str, typer.Option(help="ml-100k (inside RecBole) or a dataset path, as for calibrate.")
    ] = "ml-100k",
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Directory for fidelity.json, fidelity.md and fidelity.config.yaml.",
            parser=new_path,
        ),
    ] = Path("runs/fidelity"),
    fmt: Annotated[str, typer.Option("--format", help=FORMAT_HELP)] = "auto",
    seed: Annotated[int, typer.Option("--seed", "-s", min=0, max=SEED_MAX)] = 0,
    users: Annotated[
        int | None, typer.Option(min=2, help="Keep this many users (drawn with --seed).")
    ] = None,
    topics: Annotated[int, typer.Option(min=1, max=1024, help="Latent topics.")] = 16,
    llm: Annotated[
        bool, typer.Option("--llm", help="Also run checks 1-3 for an LLM panel (local SmolLM2).")
    ] = False,
    llm_users: Annotated[
        int | None, typer.Option(min=1, help="LLM panel size with --llm (default 10).")
    ] = None,
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
        str | None,
        typer.Option(
            help="With --llm-base-url: the environment variable holding the API key "
            "(default OPENAI_API_KEY)."
        ),
    ] = None,
    llm_decision: Annotated[
        str | None,
        typer.Option(
            help="With --llm: score (one forward pass, read from logprobs; JSON where the "
            "endpoint has none; the default) or generate (JSON answers)."
        ),
    ] = None,
    llm_cache: Annotated[
        Path | None,
        typer.Option(
            help="With --llm: the LLM call cache (default: OUTPUT/llm_cache.sqlite).",
            parser=new_path,
        ),
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
        REPORT_FILES,
        FidelityConfig,
        sampled_note,
        select_arms,
        side_by_side,
        table_rows,
        write_report,
    )

    check_format(fmt)
    panel = _fidelity_panel(
        llm, llm_users, llm_base_url, llm_model, llm_api_key_env, llm_decision, llm_cache, output
    )
    if panel is not None and panel["users"] == 1:  # before the minutes of work, not after
        err.print(f"warning: {ONE_PANEL_USER}", soft_wrap=True, markup=False)
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
    progress = progress_bars(quiet)
    tasks: dict[str, TaskID] = {}

    def on_progress(description: str, fraction: float) -> None:
        step = description.split(" ")[0]  # one bar per step kind: train, simulate, ...
        if step not in tasks:
            tasks[step] = progress.add_task(description, total=1.0)
        progress.update(tasks[step], description=description, completed=fraction)

    started = time.perf_counter()
    stopped = f"nothing written to {output} (its files appear only when the run ends)"
    with stoppable(stopped), progress, reading(f"fidelity on {dataset}"):
        result = write_report(output, cfg, on_progress, workers)
    table = Table(title=f"fidelity: {result['dataset']['name']} (95% CI over users)")
    if note := sampled_note(result["dataset"]):
        out.print(note.strip(), highlight=False)
    for note in result["dataset"].get("notes", []):
        err.print(f"note: {note}", soft_wrap=True, markup=False)
    for column in ("check", "measure", "value [95% CI]", "reference"):
        table.add_column(column)
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    out.print("\n".join(side_by_side(result)), highlight=False)
    written = ", ".join(str(output / name) for name in REPORT_FILES)
    done = f"{time.perf_counter() - started:.1f} s; wrote {written}"
    out.print(done, highlight=False, soft_wrap=True)
