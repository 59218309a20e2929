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

The server is started as ``python -m recarena.agents.llm.llama_main <llama_cpp.server args>``
(agents/llm/server.py); everything else is llama_cpp.server's.
"""

from __future__ import annotations

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


def main() -> None:
    import llama_cpp
    from llama_cpp.server.__main__ import main as serve

    install_row_wise_logprobs(llama_cpp.Llama)
    serve()


if __name__ == "__main__":
    main()
