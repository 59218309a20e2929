"""Entry point of the embedded llama.cpp server: llama-cpp-python's own, with lean logprobs.

Why this exists: scoring mode asks for the logprobs of two answer tokens, and
llama-cpp-python 0.3 computes them by taking the log-softmax of *every* row of logits it holds
(the whole prompt plus the answer; about 1.8 s for a 420-token prompt with SmolLM2's 49,152-word
vocabulary on 2 cores) before keeping the answer's rows, then sorts each kept row as numpy
scalars in Python (about 0.1 s a row). On this machine that was more than the forward pass
itself. :func:`install_row_wise_logprobs` makes the whole-matrix call lazy: the log-softmax is
computed only for the rows that are read, with the same float32 arithmetic, and handed over as
Python floats, which sort several times faster. Answers are the same numbers (a test compares
both servers' JSON); only the work not needed for them is skipped. 1-D calls (the streaming
path) are untouched.

Second, :func:`install_answer_rows_eval`: with ``logits_all`` (which llama-cpp-python demands
before it returns any logprobs) every prompt token's logits are computed through the output
layer (49,152 x 576 for SmolLM2, a fifth of the model's work per token) and copied into a
numpy matrix, although a completion without ``echo`` reads only the last prompt row and the
answer's rows. The patched ``eval`` asks llama.cpp for the last row of each batch only and
stores just that row, so the answers are the same numbers (a test compares both on the real
model) and ``echo`` with logprobs, which would read the prompt rows, is refused.

The server is started as ``python -m recarena.agents.llm.llama_main <llama_cpp.server args>``
(agents/llm/server.py); everything else is llama_cpp.server's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

LogSoftmax = Callable[..., Any]


class RowLogprobs:
    """Log-softmax of a matrix of logits, computed for a row slice only when it is read."""

    def __init__(self, logits: np.ndarray, exact: LogSoftmax, axis: int) -> None:
        self._logits = logits
        self._exact = exact
        self._axis = axis

    def __len__(self) -> int:
        return len(self._logits)

    def __getitem__(self, rows: Any) -> Any:
        return self._exact(self._logits[rows], axis=self._axis).tolist()

    def __iter__(self) -> Any:
        return iter(self[:])


def install_row_wise_logprobs(llama_class: Any) -> bool:
    """Make ``llama_class.logits_to_logprobs`` lazy for matrices; False if it has none."""
    exact = getattr(llama_class, "logits_to_logprobs", None)
    if exact is None or getattr(exact, "row_wise", False):
        return exact is not None

    def logits_to_logprobs(logits: Any, axis: int = -1) -> Any:
        if isinstance(logits, np.ndarray) and logits.ndim == 2 and axis in (-1, 1):
            return RowLogprobs(logits, exact, axis)
        return exact(logits, axis=axis)

    logits_to_logprobs.row_wise = True  # type: ignore[attr-defined]
    llama_class.logits_to_logprobs = staticmethod(logits_to_logprobs)
    return True


def install_answer_rows_eval(llama_class: Any) -> bool:
    """Make ``llama_class.eval`` compute and keep only each batch's last row of logits (the
    rows a completion without ``echo`` reads); False, and nothing changed, if the class does
    not look like the llama-cpp-python 0.3 it was written against."""
    eval_method = getattr(llama_class, "eval", None)
    if getattr(eval_method, "answer_rows", False):
        return True
    if eval_method is None or not callable(getattr(llama_class, "create_completion", None)):
        return False

    def eval(self: Any, tokens: Any) -> None:  # noqa: A001 (llama_cpp's name)
        self._ctx.kv_cache_seq_rm(-1, self.n_tokens, -1)
        for start in range(0, len(tokens), self.n_batch):
            batch = tokens[start : min(len(tokens), start + self.n_batch)]
            n_past, n = self.n_tokens, len(batch)
            self._batch.set_batch(batch=batch, n_past=n_past, logits_all=False)  # last row
            self._ctx.decode(self._batch)
            self.input_ids[n_past : n_past + n] = batch
            if self._logits_all:  # keep the one row computed where llama_cpp reads it
                row = np.ctypeslib.as_array(self._ctx.get_logits(), shape=(self._n_vocab,))
                self.scores[n_past + n - 1, :] = row
            self.n_tokens += n
            self._requires_eval = False

    create_completion = llama_class.create_completion

    def create_completion_without_prompt_rows(self: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("echo") and kwargs.get("logprobs") is not None:
            raise ValueError(
                "echo with logprobs is not served here: the prompt's logits are not kept"
            )
        return create_completion(self, *args, **kwargs)

    eval.answer_rows = True  # type: ignore[attr-defined]
    llama_class.eval = eval
    llama_class.create_completion = create_completion_without_prompt_rows
    return True


PARENT_ENV = "RECARENA_SERVER_PARENT"
"""The PID of the process that started this server (agents/llm/server.py sets it)."""


def exit_with_parent(every: float = 1.0) -> threading.Thread | None:
    """End this server when the process that started it is gone.

    The server runs in a session of its own, so that a run's Ctrl-C reaches the run first and
    the run stops the server itself. But a run killed outright (kill -9, the OOM killer, a
    timeout that kills one process) cannot stop anything: its servers lived on, each holding
    its model (~300 MB for SmolLM2) and a port, until the machine restarted. A thread checks
    once a second that the parent named in ``RECARENA_SERVER_PARENT`` is still this process's
    parent, and exits the process when it is not. Without the variable (the server started by
    hand) nothing is watched."""
    expected = os.environ.get(PARENT_ENV, "")
    if not expected.isdigit():
        return None
    parent = int(expected)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every)
        os._exit(0)  # uvicorn's loop holds the main thread: no clean shutdown to wait for

    thread = threading.Thread(target=watch, name="recarena-parent-watch", daemon=True)
    thread.start()
    return thread


def main() -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as serve

    exit_with_parent()
    install_row_wise_logprobs(llama_cpp.Llama)
    if getattr(llama_cpp, "__version__", "").startswith("0.3."):  # the internals it replaces
        install_answer_rows_eval(llama_cpp.Llama)
    serve()


if __name__ == "__main__":
    main()
