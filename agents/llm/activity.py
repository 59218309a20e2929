"""A live line per cell while LLM calls run: calls done and expected, cache hits, tokens, rate, ETA.

LLM cells are slow enough that a silent terminal looks like a hang. The line is plain text on
stderr, written at most every ``every_seconds`` of wall time, so it works the same whether stderr
is a terminal, a pipe or a CI log (a progress bar redrawn in place shows nothing in a log file).

"Expected" extrapolates the calls so far over the simulated horizon: calls / (simulated time
done / horizon). It is rough on the first simulated hours (arrivals follow a daily rhythm) and
settles as the day goes on; the ETA uses the same fraction.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class CallStats:
    """What a client has done so far in this cell (every call, cache hits included)."""

    calls: int = 0
    cached: int = 0
    fallbacks: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    sim_time: float = 0.0  # simulated seconds of the latest call

    def add(self, cached: bool, fallback: bool, prompt: int, completion: int, at: float) -> None:
        self.calls += 1
        self.cached += cached
        self.fallbacks += fallback
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.sim_time = max(self.sim_time, at)


def _rate(per_second: float) -> str:
    return f"{per_second:.1f}" if per_second >= 1 else f"{per_second:.2g}"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@dataclass
class LiveLine:
    label: str  # e.g. "arm=mf rep=0"
    horizon_seconds: float
    every_seconds: float = 10.0
    stream: TextIO | None = None
    started: float = field(default_factory=time.monotonic)
    _last: float = field(default_factory=time.monotonic)

    def line(self, stats: CallStats, now: float | None = None) -> str:
        """The status text (pure; tested without a clock)."""
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        done = min(stats.sim_time / self.horizon_seconds, 1.0) if self.horizon_seconds else 0.0
        expected = f"~{round(stats.calls / done):,}" if done > 0.02 else "?"
        eta = _duration(elapsed * (1 - done) / done) if done > 0.02 else "?"
        return (
            f"LLM {self.label}: {stats.calls:,}/{expected} calls, {stats.cached:,} cached, "
            f"{stats.fallbacks:,} fallbacks, {stats.prompt_tokens + stats.completion_tokens:,} "
            f"tokens, {_rate(stats.calls / elapsed)} calls/s, sim {done:.0%}, ETA {eta}"
        )

    def maybe_print(self, stats: CallStats) -> None:
        now = time.monotonic()
        if now - self._last < self.every_seconds:
            return
        self._last = now
        stream = self.stream or sys.stderr
        print(self.line(stats, now), file=stream, flush=True)
