"""The embedded server's lean logprobs give llama-cpp-python's numbers, computing only read rows."""

from __future__ import annotations

import numpy as np
import pytest

from recarena.agents.llm.llama_main import (
    RowLogprobs,
    install_answer_rows_eval,
    install_row_wise_logprobs,
)
from tests.local_llm import requires_local_llm


def _log_softmax(logits, axis=-1):
    shifted = np.subtract(logits, np.amax(logits, axis=axis, keepdims=True), dtype=np.single)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


class _Counting:
    """A stand-in for llama_cpp.Llama: its log-softmax counts the rows it is given."""

    rows_seen = 0

    @staticmethod
    def logits_to_logprobs(logits, axis=-1):
        _Counting.rows_seen += 1 if np.ndim(logits) == 1 else len(logits)
        return _log_softmax(logits, axis=axis)


def test_only_the_rows_read_are_computed_and_they_are_the_same_numbers():
    logits = np.random.default_rng(0).normal(size=(300, 1000)).astype(np.single) * 4
    assert install_row_wise_logprobs(_Counting)
    assert install_row_wise_logprobs(_Counting)  # a second install does not wrap twice
    lazy = _Counting.logits_to_logprobs(logits)
    assert isinstance(lazy, RowLogprobs) and len(lazy) == 300
    assert _Counting.rows_seen == 0
    tail = lazy[298:]
    assert _Counting.rows_seen == 2
    assert np.array_equal(np.asarray(tail, dtype=np.single), _log_softmax(logits)[298:])
    row = _Counting.logits_to_logprobs(logits[5])  # the streaming path: one row, an array
    assert isinstance(row, np.ndarray) and np.array_equal(row, _log_softmax(logits[5]))


def test_a_class_without_the_method_is_left_alone():
    class Bare:
        pass

    assert not install_row_wise_logprobs(Bare)
    assert not hasattr(Bare, "logits_to_logprobs")


def _local_model(llama_cpp, **options):
    """The embedded server's model in llama-cpp-python, every row's logits kept."""
    from recarena.agents.llm.server import local_model_path

    return llama_cpp.Llama(
        model_path=str(local_model_path()), n_ctx=256, logits_all=True, verbose=False, **options
    )


def _greedy_logprobs(llm, messages, max_tokens):
    """A greedy chat answer from a fresh context: each token with its logprob and top 5."""
    llm.reset()
    reply = llm.create_chat_completion(
        messages=messages, max_tokens=max_tokens, logprobs=True, top_logprobs=5, temperature=0
    )
    return reply["choices"][0]["logprobs"]["content"]


def _assert_same_logprobs(a, b):
    """The same tokens with the same logprobs and the same top alternatives, bit for bit."""
    assert [(p["token"], float(p["logprob"])) for p in a] == [
        (p["token"], float(p["logprob"])) for p in b
    ]
    for x, y in zip(a, b, strict=True):
        assert [(t["token"], float(t["logprob"])) for t in x["top_logprobs"]] == [
            (t["token"], float(t["logprob"])) for t in y["top_logprobs"]
        ]


@requires_local_llm
def test_the_real_model_answers_with_the_same_logprobs_patched_or_not(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    messages = [
        {"role": "system", "content": "Answer with one digit."},
        {"role": "user", "content": "Slots: 1. Heat (1995) 2. Fargo (1996). Which slot, 0-2?"},
    ]
    llm = _local_model(llama_cpp)
    plain = _greedy_logprobs(llm, messages, max_tokens=2)
    # llama-cpp-python calls the method through its own class name: patch that class, for
    # this test only, and count the lazy reads to know the lean path answered.
    original = llama_cpp.Llama.__dict__["logits_to_logprobs"]
    monkeypatch.setattr(llama_cpp.Llama, "logits_to_logprobs", original)
    reads = []
    exact_read = RowLogprobs.__getitem__
    monkeypatch.setattr(
        RowLogprobs, "__getitem__", lambda self, rows: reads.append(rows) or exact_read(self, rows)
    )
    assert install_row_wise_logprobs(llama_cpp.Llama)
    lean = _greedy_logprobs(llm, messages, max_tokens=2)
    assert reads, "the completion did not go through the lean logprobs"
    _assert_same_logprobs(plain, lean)


def test_answer_rows_eval_leaves_an_unknown_class_alone():
    class Bare:
        pass

    assert not install_answer_rows_eval(Bare)
    assert not hasattr(Bare, "eval")


@requires_local_llm
def test_the_real_model_answers_the_same_when_only_answer_rows_are_computed(monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")
    messages = [
        {"role": "system", "content": "Answer with one digit, then a rating 1-5."},
        {"role": "user", "content": "Slots: 1. Heat (1995) 2. Fargo (1996). Which slot, 0-2?"},
    ]
    # n_batch 8: the prompt is evaluated in several batches, as long prompts are
    llm = _local_model(llama_cpp, n_batch=8)
    full = _greedy_logprobs(llm, messages, max_tokens=3)
    computed = llm.scores[: llm.n_tokens].copy()
    monkeypatch.setattr(llama_cpp.Llama, "eval", llama_cpp.Llama.__dict__["eval"])
    monkeypatch.setattr(
        llama_cpp.Llama, "create_completion", llama_cpp.Llama.__dict__["create_completion"]
    )
    assert install_answer_rows_eval(llama_cpp.Llama)
    assert install_answer_rows_eval(llama_cpp.Llama)  # a second install does not wrap twice
    llm.scores[:] = 0.0  # so the rows the lean eval writes can be told from the others
    lean = _greedy_logprobs(llm, messages, max_tokens=3)
    _assert_same_logprobs(full, lean)
    # only each batch's last row was computed, and those rows are the same numbers
    n = llm.n_tokens
    written = np.flatnonzero(np.any(llm.scores[:n] != 0.0, axis=1))
    assert set(range(n - len(lean), n)) <= set(written.tolist())  # the rows answers read
    assert len(written) < n // 2
    assert np.array_equal(llm.scores[written], computed[written])
    with pytest.raises(ValueError, match="echo with logprobs"):
        llm.create_completion("Say 1.", max_tokens=1, logprobs=1, echo=True)
