"""Users who talk: posts to all friends and one-to-one messages about what they consumed.

RecAgent's users do more than browse: they chat with friends and broadcast on a social network,
and what they hear changes what they look for. This is the rule-based, vectorised version.

* **Who talks, and how much.** After consuming an item, user u posts about it with probability
  ``min(1, post_rate · e_u · exp(w · s_u))`` and messages one friend about it with probability
  ``min(1, message_rate · e_u · exp(w · s_u))``: ``e_u`` is a fixed extraversion trait
  (log-normal with mean 1), ``s_u`` the user's current satisfaction, ``w`` =
  ``satisfaction_weight``. Happy, outgoing users talk more.
* **What they say.** A mention of the consumed item with the sign of (rating − 3): a liked item
  is recommended to friends, a disliked one warned against.
* **Who hears it.** A post reaches each friend independently with probability ``reach``; a
  message reaches one friend drawn uniformly among the sender's friends.
* **What hearing does.** For ``memory_days`` days the hearer's utility of that item moves by
  ``sentiment · mention_boost`` (the latest mention of an item replaces an earlier one), so a
  mentioned item that a recommender shows is more (or less) likely to be chosen. A consumption of
  an item the user had heard of is logged in ``social_clicks``; if that user then talks about
  it, the new post or message records the mention it heard as ``parent_id``, so chains of
  mentions (cascades) can be rebuilt from the logs.

Every draw is counter-based, keyed by the page request that led to the consumption and by the
friend, so it is the same under every arm for the same page (common random numbers); only the
extraversion trait is drawn once, from the arm-independent ``social`` stream.

Heard mentions are kept as a sorted array of ``user · 2³² + item`` keys, so the per-page lookup
for a [B, k] slate is one ``searchsorted``; the store never grows with users × items.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recarena.simulator.core.rng import combine, uniforms
from recarena.simulator.core.scenario_features import Talk

_POST, _MESSAGE, _REACH, _FRIEND = 11, 12, 13, 14
_ITEM_BITS = np.int64(1) << np.int64(32)


class TableSink(Protocol):
    """Where talk events go (the engine's EventLog)."""

    def append(self, table: str, columns: dict) -> None: ...


def talk_probability(
    rate: float, extraversion: np.ndarray, satisfaction: np.ndarray, weight: float
) -> np.ndarray:
    """[B] chance of one post (or message): min(1, rate · e · exp(weight · s)). A boost that
    overflows is capped at 1 like any large one; a zero rate or extraversion is never, whatever
    the boost (0 · inf was NaN and printed a warning mid-run)."""
    with np.errstate(over="ignore", invalid="ignore"):
        chance = rate * extraversion * np.exp(weight * satisfaction)
    return np.minimum(1.0, np.nan_to_num(chance, nan=0.0))


def sentiment(rating: np.ndarray) -> np.ndarray:
    """[B] int8 +1 for ratings >= 4, -1 for <= 2, 0 otherwise (and for a missing rating)."""
    rating = np.nan_to_num(np.asarray(rating, np.float64), nan=3.0)
    return np.where(rating >= 4, 1, np.where(rating <= 2, -1, 0)).astype(np.int8)


def draw_extraversion(n_users: int, sd: float, rng: np.random.Generator) -> np.ndarray:
    """[U] log-normal traits with mean 1 (sd 0 = everybody 1)."""
    return rng.lognormal(-(sd**2) / 2.0, sd, n_users)


class Mentions:
    """Which items each user has heard about, with the sentiment, the event and the expiry day."""

    def __init__(self) -> None:
        self.key = np.zeros(0, np.int64)
        self.sentiment = np.zeros(0, np.int8)
        self.via = np.zeros(0, np.int64)
        self.expires = np.zeros(0, np.int32)

    def __len__(self) -> int:
        return int(self.key.shape[0])

    def add(
        self,
        user: np.ndarray,
        item: np.ndarray,
        sign: np.ndarray,
        via: np.ndarray,
        expires: np.ndarray | int,
    ) -> None:
        """Store mentions; for a (user, item) heard again, the latest (highest ``via``) wins."""
        if user.size == 0:
            return
        key = np.concatenate([self.key, user.astype(np.int64) * _ITEM_BITS + item])
        via_all = np.concatenate([self.via, via.astype(np.int64)])
        order = np.lexsort((via_all, key))  # by key, then by event id
        key = key[order]
        last = np.ones(key.shape[0], bool)
        last[:-1] = key[1:] != key[:-1]
        keep = order[last]
        self.key = key[last]
        self.via = via_all[keep]
        self.sentiment = np.concatenate([self.sentiment, sign.astype(np.int8)])[keep]
        expires = np.broadcast_to(np.asarray(expires, np.int32), user.shape)
        self.expires = np.concatenate([self.expires, expires])[keep]

    def find(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Index of each (user, item) mention, -1 where there is none (any shape)."""
        query = user.astype(np.int64) * _ITEM_BITS + item.astype(np.int64)
        if self.key.size == 0:
            return np.full(query.shape, -1, np.int64)
        index = np.searchsorted(self.key, query)
        index = np.minimum(index, self.key.shape[0] - 1)
        return np.where(self.key[index] == query, index, -1)

    def gather(self, values: np.ndarray, index: np.ndarray, missing: int) -> np.ndarray:
        """``values[index]`` where a mention was found, ``missing`` where ``index`` is -1."""
        if values.size == 0:
            return np.full(index.shape, missing, values.dtype)
        return np.where(index >= 0, values[np.maximum(index, 0)], missing).astype(values.dtype)

    def expire(self, day: int) -> None:
        """Forget mentions whose memory ran out by the start of ``day``."""
        keep = self.expires > day
        if not keep.all():
            self.key, self.sentiment = self.key[keep], self.sentiment[keep]
            self.via, self.expires = self.via[keep], self.expires[keep]


def friends_of(adjacency: sp.csr_matrix, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, friend): every friend of every user, row = the user's position in ``users``."""
    start, end = adjacency.indptr[users], adjacency.indptr[users + 1]
    degree = end - start
    row = np.repeat(np.arange(users.shape[0]), degree)
    offset = np.arange(row.shape[0]) - np.repeat(np.cumsum(degree) - degree, degree)
    return row, adjacency.indices[np.repeat(start, degree) + offset].astype(np.int64)


class TalkState:
    """Decides, logs and remembers the posts and messages of one cell."""

    def __init__(
        self,
        cfg: Talk,
        adjacency: sp.csr_matrix,
        extraversion: np.ndarray,
        satisfaction: np.ndarray,
        hash_base: np.uint64,
        log: TableSink,
    ) -> None:
        self.cfg = cfg
        self.adjacency = adjacency
        self.extraversion = extraversion
        self.satisfaction = satisfaction
        """The users' satisfaction array (shared with UserState, read at each consumption)."""
        self.hash_base = np.asarray(hash_base, np.uint64)
        self.log = log
        self.mentions = Mentions()
        self.next_id = 0
        self.day = 0
        self.speaker: Any = None
        """The LLM panel's talk (agents/users/llm_talk.py :class:`LLMTalk`), or None: it decides
        for panel users what the rule model decides for everyone else, and lets them remember
        what they hear."""

    def boost(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """[B, k] utility change of ``items`` [B, k] for ``users`` [B]: the mentions heard."""
        index = self.mentions.find(np.broadcast_to(users[:, None], items.shape), items)
        heard = self.mentions.gather(self.mentions.sentiment, index, 0)
        return (np.float32(self.cfg.mention_boost) * heard).astype(np.float32)

    def after_consume(
        self,
        now: float | np.ndarray,
        day: int | np.ndarray,
        request_id: np.ndarray,
        users: np.ndarray,
        items: np.ndarray,
        rating: np.ndarray,
    ) -> None:
        """Users (unique) consumed ``items`` on pages ``request_id``: log, then talk about them.

        ``now`` and ``day`` are the batch's (scalars) or each row's own (arrays).
        """
        cfg = self.cfg
        now = np.broadcast_to(np.asarray(now, np.float64), users.shape)
        day = np.broadcast_to(np.asarray(day, np.int32), users.shape)
        heard = self.mentions.find(users, items)
        was_heard = heard >= 0
        parent = self.mentions.gather(self.mentions.via, heard, -1)
        if was_heard.any():
            rows = np.flatnonzero(was_heard)
            self.log.append(
                "social_clicks",
                {
                    "time": now[rows],
                    "day": day[rows],
                    "user_id": users[rows].astype(np.int64),
                    "item_id": items[rows].astype(np.int64),
                    "via_id": parent[rows],
                    "sentiment": self.mentions.sentiment[heard[rows]],
                },
            )
        key = combine(self.hash_base, request_id.astype(np.uint64))
        trait = self.extraversion[users]
        mood = self.satisfaction[users]
        sign = sentiment(rating)
        weight = cfg.satisfaction_weight
        degree = np.diff(self.adjacency.indptr)[users]
        posts = uniforms(combine(key, _POST)) < talk_probability(cfg.post_rate, trait, mood, weight)
        sends = uniforms(combine(key, _MESSAGE)) < talk_probability(
            cfg.message_rate, trait, mood, weight
        )
        if self.speaker is not None:  # LLM users decide for themselves; failures keep the rule's
            rows, choices = self.speaker.decide(now, key, users, items, rating)
            for row, choice in zip(rows.tolist(), choices, strict=True):
                if choice is not None:
                    posts[row], sends[row], sign[row] = choice.post, choice.send, choice.sign
        sends &= degree > 0
        expires = day + cfg.memory_days
        self._post(now, day, key, np.flatnonzero(posts), users, items, sign, parent, expires)
        self._message(now, day, key, np.flatnonzero(sends), users, items, sign, parent, expires)

    def _ids(self, count: int) -> np.ndarray:
        ids = np.arange(self.next_id, self.next_id + count, dtype=np.int64)
        self.next_id += count
        return ids

    def _post(self, now, day, key, rows, users, items, sign, parent, expires) -> None:
        if rows.size == 0:
            return
        ids = self._ids(rows.size)
        row, friend = friends_of(self.adjacency, users[rows])
        hit = uniforms(combine(combine(key[rows][row], _REACH), friend)) < self.cfg.reach
        row, friend = row[hit], friend[hit]
        self.mentions.add(friend, items[rows][row], sign[rows][row], ids[row], expires[rows][row])
        if self.speaker is not None:
            self.speaker.heard(friend, items[rows][row], sign[rows][row], "post", now[rows][row])
        self.log.append(
            "posts",
            {
                "post_id": ids,
                "time": now[rows],
                "day": day[rows],
                "user_id": users[rows].astype(np.int64),
                "item_id": items[rows].astype(np.int64),
                "sentiment": sign[rows],
                "reached": np.bincount(row, minlength=rows.size).astype(np.int32),
                "parent_id": parent[rows],
            },
        )

    def _message(self, now, day, key, rows, users, items, sign, parent, expires) -> None:
        if rows.size == 0:
            return
        ids = self._ids(rows.size)
        senders = users[rows]
        start = self.adjacency.indptr[senders]
        degree = self.adjacency.indptr[senders + 1] - start
        pick = np.floor(uniforms(combine(key[rows], _FRIEND)) * degree).astype(np.int64)
        receiver = self.adjacency.indices[start + pick].astype(np.int64)
        self.mentions.add(receiver, items[rows], sign[rows], ids, expires[rows])
        if self.speaker is not None:
            self.speaker.heard(receiver, items[rows], sign[rows], "message", now[rows])
        self.log.append(
            "messages",
            {
                "message_id": ids,
                "time": now[rows],
                "day": day[rows],
                "sender_id": senders.astype(np.int64),
                "receiver_id": receiver,
                "item_id": items[rows].astype(np.int64),
                "sentiment": sign[rows],
                "parent_id": parent[rows],
            },
        )

    def feed(self, users: np.ndarray, count: int) -> np.ndarray:
        """[B, count] items each user heard friends recommend (positive mentions still
        remembered), most recent first; PAD (-1) where there are fewer.

        What a platform's social feed would show: the posts and messages of one's friends. The
        user's range of the sorted key array is found by two ``searchsorted`` calls; the ranges
        are expanded with ``np.repeat``, so there is no loop per user.
        """
        out = np.full((users.shape[0], count), -1, np.int64)
        m = self.mentions
        if len(m) == 0 or count == 0:
            return out
        base = users.astype(np.int64) * _ITEM_BITS
        start = np.searchsorted(m.key, base)
        end = np.searchsorted(m.key, base + _ITEM_BITS)
        size = end - start
        row = np.repeat(np.arange(users.shape[0]), size)
        index = np.repeat(start, size) + (
            np.arange(row.shape[0]) - np.repeat(np.cumsum(size) - size, size)
        )
        keep = m.sentiment[index] > 0
        row, index = row[keep], index[keep]
        order = np.lexsort((-m.via[index], row))  # by user, then newest first
        row, index = row[order], index[order]
        first = np.searchsorted(row, np.arange(users.shape[0]))
        rank = np.arange(row.shape[0]) - first[row]
        take = rank < count
        out[row[take], rank[take]] = m.key[index[take]] % _ITEM_BITS
        return out

    def end_of_day(self) -> None:
        """Close a day: mentions whose memory ran out by the next day are forgotten."""
        self.day += 1
        self.mentions.expire(self.day)
