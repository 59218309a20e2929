"""Page waves: the pages of many ticks served as one batch, when nothing couples the sessions.

At small populations a tick holds a few pages, and a tick's cost is mostly per-call overhead
(a recommender call, a guard check, the users' answer, the log writes), paid whatever the batch
size: at 2,000 users that was ~250 µs a tick for ~4 pages. Yet between two events of the clock
(a retrain, an upload, a day's end, a review, the hourly topic clock...) the sessions of
different users do not meet, *if* the recommender answers each request from that request and
its fitted state alone, the user policy answers each page from that page and its user's state
alone, and the surface needs no shared state (a plain list). Then a session's pages depend only
on its own earlier pages and its user's earlier sessions, so the window's pages can be served in
*waves*: every live session's next page in one batch, whatever tick each page belongs to, until
every session has reached the window's end.

Everything else is what the tick loop does, row for row:

* noise is counter-based per (session, page), so a page draws the same uniforms in a wave;
* admission follows the tick loop's rule: an arrival starts a session at the first tick at or
  after its start time if its user is not browsing then, and only the first of a user's
  arrivals at one tick counts; a user's next session waits for the current one to end;
* the rows each wave logs (exposures, clicks, session ends) and the clicks kept for the next fit
  are put back in the tick loop's order, (tick, order of admission), and handed to the event log
  in per-tick chunks wherever a chunk could end a Parquet row group, so the files are the same
  bytes (tests/test_waves.py; ``benchmarks/log_digest.py`` over every scenario).

Plug-ins take part only if their class says so, in its own body (a subclass does not inherit
it): ``rows_independent = True`` on the recommender and on the user policy. Anything else in
the cell (online learning, conversations, carousels, LLM users, social graphs, instructions,
creators adopting AI, sharded cells) keeps the tick loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from recarena.simulator.core.types import PAD_ITEM
from recarena.simulator.engine import pages
from recarena.simulator.engine.arrivals import Arrivals
from recarena.simulator.engine.sessions import ActiveSessions
from recarena.simulator.engine.surfaces import ListView

if TYPE_CHECKING:
    from recarena.simulator.engine.model import SimulationModel

MAX_WINDOW_TICKS = 1440
"""A window spans at most a day of one-minute ticks (the clock's events usually end it sooner)."""

MAX_WINDOW_SESSIONS = 4096
"""...and at most this many arriving sessions, so its pages stay a few megabytes of log rows.
Past a few thousand pages a tick's batch is already large, and waves would gain nothing."""

MAX_WINDOW_ROWS = 2_000_000
"""...and at most this many exposure rows in the worst case (every session browsing to
``max_pages`` or the window's end): a window's rows are held until it ends, so long sessions
(``max_pages`` up to 1,000, wide pages) get shorter windows instead of gigabytes of rows."""

WAVE_TABLES = ("exposures", "interactions", "sessions")


def rows_independent(component: object) -> bool:
    """Whether ``component``'s class declares, in its own body, that it answers each row of a
    batch from that row and per-user state alone (``rows_independent = True``)."""
    return bool(type(component).__dict__.get("rows_independent", False))


def waves_apply(model: SimulationModel) -> bool:
    """Whether this cell's sessions can be served in waves (see the module docstring)."""
    world = model.world
    return (
        model.dialogue is None
        and type(world.surface) is ListView
        and not model._learns_online
        and rows_independent(world.recommender)
        and rows_independent(world.policy)
        and world.panel is None
        and world.social is None
        and world.recommender_llm is None
        and world.creator_dynamics.ai is None
        and model.user_shard is None
        and model.fit_override is None
    )


class _Recorder:
    """Stands in for the event log during a wave: keeps each table's rows with their order keys
    (tick, order of admission) until the window is written in the tick loop's order."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]]] = {
            table: [] for table in WAVE_TABLES
        }
        self._pending: dict[str, dict[str, np.ndarray]] = {}

    def append(self, table: str, columns: dict[str, Any]) -> None:
        if table not in self.parts:
            raise RuntimeError(f"a page wave cannot log table {table!r}")
        self._pending[table] = columns

    def keyed(self, table: str, tick: np.ndarray, seq: np.ndarray) -> None:
        """The last append to ``table`` (if there was one) has these rows' keys. A scalar
        column (the event log broadcasts it over the batch) is broadcast here."""
        columns = self._pending.pop(table, None)
        if columns is None:
            return
        n = tick.shape[0]
        arrays = dict(columns)
        for name, value in columns.items():
            # an array column is kept as it is (no np.ndim call: ~5,000 a cell at 1k users)
            if not (type(value) is np.ndarray and value.ndim) and np.ndim(value) == 0:
                arrays[name] = np.broadcast_to(np.asarray(value), (n,))
        self.parts[table].append((arrays, tick, seq))


class PageWaves:
    """Serves a window of ticks in waves for one :class:`SimulationModel`."""

    def __init__(self, model: SimulationModel) -> None:
        self.model = model
        self.tick = float(model.scenario.horizon.tick_seconds)
        self.horizon_ticks = math.ceil(model.horizon_seconds / self.tick)
        while self.horizon_ticks > 0 and (self.horizon_ticks - 1) * self.tick >= (
            model.horizon_seconds
        ):
            self.horizon_ticks -= 1
        while self.horizon_ticks * self.tick < model.horizon_seconds:
            self.horizon_ticks += 1

    # ------------------------------------------------------------------- the window
    def window_end(self, first: int) -> int:
        """The tick after the window that starts at tick ``first``: before the clock's next
        event (at its time the event runs first, as in the tick loop), within the horizon,
        :data:`MAX_WINDOW_TICKS`, :data:`MAX_WINDOW_SESSIONS` and :data:`MAX_WINDOW_ROWS`."""
        model = self.model
        tick = self.tick
        stop = min(first + MAX_WINDOW_TICKS, self.horizon_ticks)
        next_event = model.env.peek()
        if math.isfinite(next_event):
            bound = max(math.ceil(next_event / tick), first)
            while bound > first and (bound - 1) * tick >= next_event:
                bound -= 1
            while bound * tick < next_event:
                bound += 1
            stop = min(stop, bound)
        pending, head = model.pending, model._next_arrival
        cap = head + max(MAX_WINDOW_SESSIONS - len(model.active), 0)
        if cap < len(pending):  # more arrivals than the cap: end before the first one past it
            last_tick = math.ceil(float(pending.start[cap]) / tick)
            while last_tick > first and (last_tick - 1) * tick >= pending.start[cap]:
                last_tick -= 1
            stop = min(stop, last_tick)
        slots = model.world.surface.slots
        max_pages = model.scenario.population.max_pages
        while stop - first > 1:  # halve until the worst case fits (window bounds move no byte)
            times_end = (stop - 1) * tick
            sessions = (
                len(model.active) + int(pending.start.searchsorted(times_end, "right")) - head
            )
            if sessions * min(stop - first, max_pages) * slots <= MAX_WINDOW_ROWS:
                break
            stop = first + (stop - first) // 2
        return stop

    def has_work(self, first: int, stop: int) -> bool:
        model = self.model
        if len(model.active):
            return True
        head = model._next_arrival
        return head < len(model.pending) and model.pending.start[head] <= (stop - 1) * self.tick

    # --------------------------------------------------------------------- serving
    def serve(self, first: int, stop: int) -> None:
        """Serve ticks ``first`` .. ``stop - 1`` (admissions included), log them in tick order
        and leave the model as the tick loop would after tick ``stop - 1``."""
        model = self.model
        outcomes = model.outcomes
        tick = self.tick
        times = np.arange(first, stop, dtype=np.float64) * tick

        # arrivals of the window, with their admission ticks (first tick at or after start)
        pending, head = model.pending, model._next_arrival
        end = int(pending.start.searchsorted(times[-1], "right"))
        arrival_user = pending.user[head:end]
        arrival_tick = first + np.searchsorted(times, pending.start[head:end], "left")
        by_user = np.lexsort((np.arange(end - head), arrival_user))  # user, then pending order
        sorted_user = arrival_user[by_user]
        span = np.int64(stop - first + 2)
        sorted_key = sorted_user * span + (arrival_tick[by_user] - first)

        def next_arrivals(users: np.ndarray, free_from: np.ndarray) -> tuple[np.ndarray, ...]:
            """For each user, their first window arrival at or after tick ``free_from``:
            (users who have one, index into the window's arrivals)."""
            at = np.searchsorted(sorted_key, users * span + (free_from - first), "left")
            found = at < sorted_key.shape[0]
            found[found] = sorted_user[at[found]] == users[found]
            return users[found], by_user[at[found]]

        # the sessions browsing at the window's start keep their order, ahead of newcomers
        carried = model.active
        live = ActiveSessions()
        live.add_sessions(carried)
        n_carried = len(carried)
        live_tick = np.full(n_carried, first, np.int64)
        live_seq = np.arange(n_carried, dtype=np.int64)
        is_active = outcomes.is_active
        newcomers = np.unique(arrival_user)
        newcomers = newcomers[~is_active[newcomers]]
        admit_users, admit_index = next_arrivals(newcomers, np.full(newcomers.shape, first))

        parked: list[tuple[ActiveSessions, np.ndarray]] = []
        recorder = _Recorder()
        history_mark = len(outcomes._history)
        history_keys: list[tuple[np.ndarray, np.ndarray]] = []
        real_log, real_active = outcomes.log, outcomes.active
        outcomes.log = recorder  # type: ignore[assignment]
        outcomes.active = live
        try:
            while True:
                if admit_index.size:
                    admit_index = np.sort(admit_index)  # in pending order, as admitted
                    self._admit(live, head + admit_index)
                    live_tick = np.concatenate([live_tick, arrival_tick[admit_index]])
                    live_seq = np.concatenate([live_seq, n_carried + admit_index])
                if len(live) == 0:
                    break
                ended = self._wave(live, live_tick, live_seq, recorder, history_keys)
                if ended is not None:  # the wave dropped them from `live`; their users may return
                    ending, ended_user = ended
                    ended_tick = live_tick[ending]
                    live_tick, live_seq = live_tick[~ending], live_seq[~ending]
                    _, admit_index = next_arrivals(ended_user, ended_tick + 1)
                else:
                    admit_index = np.empty(0, np.int64)
                live_tick = live_tick + 1
                done = live_tick >= stop
                if done.any():  # browsing past the window: the next one goes on with them
                    parked.append((live.taken(done), live_seq[done]))
                    live.keep(~done)
                    live_tick, live_seq = live_tick[~done], live_seq[~done]
        finally:
            outcomes.log, outcomes.active = real_log, real_active
        model._next_arrival = end
        self._carry_out(parked)
        self._write(recorder)
        self._merge_history(history_mark, history_keys)

    def _admit(self, live: ActiveSessions, rows: np.ndarray) -> None:
        """Start the sessions of the pending arrivals ``rows``."""
        model = self.model
        pending = model.pending
        users = pending.user[rows]
        model.outcomes.is_active[users] = True
        live.add(
            Arrivals(users, pending.start[rows], pending.explore[rows], pending.session_id[rows])
        )
        model.outcomes.day_counts["sessions"] += int(rows.size)

    def _wave(
        self,
        live: ActiveSessions,
        live_tick: np.ndarray,
        live_seq: np.ndarray,
        recorder: _Recorder,
        history_keys: list[tuple[np.ndarray, np.ndarray]],
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """One page for every live session, each at its own tick. Sessions that end are dropped
        from ``live``; returns their mask over the wave's rows and their users, or None."""
        model = self.model
        world, outcomes = model.world, model.outcomes
        surface = world.surface
        now = live_tick.astype(np.float64) * self.tick
        # a recommender that reads the request time sees the wave's earliest (none that takes
        # part in waves reads it; the Gym environments do the same with their per-row clocks)
        requests = pages.requests_for(world, live, float(now.min()), surface.slots)
        started = time.perf_counter()
        slates = surface.layout(model.recommender, requests, None)
        after_recommend = time.perf_counter()
        shown = pages.show(world, live, requests, slates)
        after_respond = time.perf_counter()
        clicked = shown.response.clicked.any(axis=1)
        ending = shown.ending
        ended_user = live.user[ending]

        def exposures(*args: Any) -> None:
            grid = outcomes.exposure_grid(*args)
            if grid is not None:
                recorder.append("exposures", grid)
                recorder.keyed("exposures", live_tick, live_seq)

        pages.close(world, live, outcomes, now, shown, log_exposures=exposures)
        if clicked.any():
            recorder.keyed("interactions", live_tick[clicked], live_seq[clicked])
            history_keys.append((live_tick[clicked], live_seq[clicked]))
        if ending.any():
            recorder.keyed("sessions", live_tick[ending], live_seq[ending])
        model.clock_timings.split_batch(started, after_recommend, after_respond, after_respond)
        return (ending, ended_user) if ending.any() else None

    # ------------------------------------------------------------------ the aftermath
    def _carry_out(self, parked: list[tuple[ActiveSessions, np.ndarray]]) -> None:
        """The sessions still browsing at the window's end become the model's active sessions,
        in order of admission (the order the tick loop keeps them in)."""
        active = self.model.active
        merged = ActiveSessions()
        seqs = [seq for _, seq in parked]
        for sessions, _ in parked:
            merged.add_sessions(sessions)
        order = np.argsort(np.concatenate(seqs), kind="stable") if seqs else np.empty(0, np.int64)
        merged.keep(order)
        active.replace_with(merged)

    def _write(self, recorder: _Recorder) -> None:
        """Hand each table's rows to the event log in the tick loop's order and in chunks that
        end where a tick's append could have ended a row group."""
        for table, parts in recorder.parts.items():
            if not parts:
                continue
            tick = np.concatenate([p[1] for p in parts])
            seq = np.concatenate([p[2] for p in parts])
            order = np.lexsort((seq, tick))
            names = list(parts[0][0])
            tick = tick[order]
            if table == "exposures":  # [pages, k] grids: the filled slots, page by page
                # one gather per column, straight from the concatenated grids into the log's
                # buffers: the flat positions of the filled slots, pages in the tick loop's order
                items = np.concatenate([p[0]["item_id"] for p in parts])
                k = items.shape[1]
                valid = (items != PAD_ITEM)[order]
                flat = (order[:, None] * k + np.arange(k))[valid]
                grids = {
                    name: (
                        items if name == "item_id" else np.concatenate([p[0][name] for p in parts])
                    ).reshape(-1)
                    for name in names
                }
                self._take_by_tick(table, grids, flat, np.repeat(tick, valid.sum(axis=1)))
                continue
            columns = {name: np.concatenate([p[0][name] for p in parts])[order] for name in names}
            self._append_by_tick(table, columns, tick)

    def _append_by_tick(self, table: str, columns: dict[str, np.ndarray], tick: np.ndarray) -> None:
        log = self.model.log
        for start, stop in self._chunks(table, tick):
            log.append(table, {name: column[start:stop] for name, column in columns.items()})

    def _take_by_tick(
        self, table: str, sources: dict[str, np.ndarray], rows: np.ndarray, tick: np.ndarray
    ) -> None:
        """Like :meth:`_append_by_tick` with ``{name: source[rows]}``, gathered straight into
        the log's buffers (``sources`` have the table's column types): no gathered copy."""
        log = self.model.log
        for start, stop in self._chunks(table, tick):
            out = log.columns(table, stop - start)
            for name, source in sources.items():
                np.take(source, rows[start:stop], out=out[name], mode="clip")  # in range
            log.commit(table, stop - start)

    def _chunks(self, table: str, tick: np.ndarray) -> Iterator[tuple[int, int]]:
        """Where the rows of ``table`` (sorted by ``tick``) go to the log in separate calls (the
        caller logs each before the next is asked): at the end of the tick whose rows fill the
        log's buffer, where the tick loop's append flushed a row group."""
        log = self.model.log
        rows = tick.shape[0]
        if rows and rows <= log.rows_until_flush(table):  # the usual window: one call
            yield 0, rows
            return
        # where each tick's rows end: the tick loop appended each tick's rows in one call
        ends = np.flatnonzero(np.append(tick[1:] != tick[:-1], True)) + 1
        start = 0
        while start < rows:
            room = log.rows_until_flush(table)
            # the first tick whose rows fill the buffer ends the chunk (the loop flushed there)
            cut = int(np.searchsorted(ends, start + room, "left"))
            stop = int(ends[cut]) if cut < ends.shape[0] else rows
            yield start, stop
            start = stop

    def _merge_history(self, mark: int, keys: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """The window's clicks, kept for the next fit, in the tick loop's order (one chunk)."""
        outcomes = self.model.outcomes
        chunks = outcomes._history[mark:]
        if not chunks:
            return
        del outcomes._history[mark:]
        tick = np.concatenate([k[0] for k in keys])
        seq = np.concatenate([k[1] for k in keys])
        order = np.lexsort((seq, tick))
        merged = tuple(np.concatenate(part)[order] for part in zip(*chunks, strict=True))
        outcomes._history.append(merged)
