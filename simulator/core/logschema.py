"""The one place where every log table's columns are defined and documented.

Each cell of a run writes one Parquet file per table under ``arm=<a>/rep=<r>/``. Columns marked
*truth* are known only because this is a simulation (a real platform log would not have them);
analysis keeps them apart from what a real log would show.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    truth: bool = False


def _schema(columns: list[Column]) -> pa.Schema:
    return pa.schema([pa.field(c.name, c.type, nullable=True) for c in columns])


LOG_FORMAT_VERSION = 2
"""Written into every run manifest (``log_format``). 2: llm_calls gained the scoring-mode
columns, opt-in features write their own tables, mf pads batches of 1-3 requests to 4 rows
(scores' last bits); every other table is byte-identical to version 1 (ARCHITECTURE.md)."""

EXPOSURES = [
    Column("request_id", pa.int64(), "page request id: session_id * 1024 + page"),
    Column("session_id", pa.int64(), "session id; the same id is the same arrival under every arm"),
    Column("user_id", pa.int64(), "user id"),
    Column("time", pa.float64(), "simulated seconds since the start of the run"),
    Column("day", pa.int32(), "simulated day (0-based)"),
    Column("page", pa.int16(), "page index within the session (0-based)"),
    Column("position", pa.int16(), "slot on the page (0-based, row-major for carousels)"),
    Column("row", pa.int16(), "carousel row (0 = top; always 0 for a list)"),
    Column("col", pa.int16(), "carousel column, or the list position"),
    Column("item_id", pa.int64(), "item shown"),
    Column("creator_id", pa.int32(), "creator of the item"),
    Column("score", pa.float32(), "recommender score (null when the policy has none)"),
    Column("propensity", pa.float32(), "probability the policy shows this item at this slot"),
    Column("clicked", pa.bool_(), "user clicked (and consumed) the item"),
    Column("examined", pa.bool_(), "user looked at the slot", truth=True),
    Column(
        "true_utility", pa.float32(), "utility of the item to the user at that moment", truth=True
    ),
]

INTERACTIONS = [
    Column("request_id", pa.int64(), "page request that led to the click"),
    Column("session_id", pa.int64(), "session id"),
    Column("user_id", pa.int64(), "user id"),
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("position", pa.int16(), "slot of the clicked item"),
    Column("item_id", pa.int64(), "item consumed"),
    Column("creator_id", pa.int32(), "creator of the item"),
    Column("rating", pa.float32(), "rating 1..5 the user gives after consuming"),
    Column("true_utility", pa.float32(), "utility of the item to the user", truth=True),
]

SESSIONS = [
    Column("session_id", pa.int64(), "session id"),
    Column("user_id", pa.int64(), "user id"),
    Column("day", pa.int32(), "simulated day the session started"),
    Column("start_time", pa.float64(), "simulated seconds"),
    Column("end_time", pa.float64(), "simulated seconds (time of the last page)"),
    Column("pages", pa.int32(), "pages served"),
    Column("clicks", pa.int32(), "items consumed"),
    Column(
        "exit_reason",
        pa.string(),
        "fatigue | max_pages | horizon; conversations: accepted | patience | quit | max_turns",
    ),
    Column("explore", pa.bool_(), "novelty-seeking intent of the session", truth=True),
    Column("satisfaction", pa.float32(), "user satisfaction after the session", truth=True),
    Column("llm_user", pa.bool_(), "the user is on the LLM panel (see personas, llm_calls)"),
]

ITEMS = [
    Column("item_id", pa.int64(), "item id"),
    Column("creator_id", pa.int32(), "creator"),
    Column("created_at", pa.float64(), "simulated seconds (0 for the initial catalog)"),
    Column("topic", pa.int16(), "dominant topic"),
    Column("quality", pa.float32(), "true quality", truth=True),
    Column("topics", pa.list_(pa.float32()), "topic mixture (sums to 1)"),
]

CREATORS = [
    Column("creator_id", pa.int32(), "creator id"),
    Column("topic", pa.int16(), "the creator's main topic"),
    Column("quality", pa.float32(), "mean quality of the creator's items", truth=True),
    Column("uploads_per_day", pa.float32(), "production rate"),
    Column("items", pa.int32(), "items published by the end of the run"),
]

CREATOR_PERIODS = [
    Column("period", pa.int32(), "review period (0-based; the last may be partial)"),
    Column("day", pa.float32(), "simulated day the period ended (its review)"),
    Column("creator_id", pa.int32(), "creator"),
    Column("exposure", pa.int64(), "impressions of the creator's items in the period"),
    Column("clicks", pa.int64(), "clicks on the creator's items in the period"),
    Column("items", pa.int32(), "items the creator had published by the end of the period"),
    Column("topic_mix", pa.list_(pa.float32()), "topic mix new uploads were drawn from"),
    Column("top_topic", pa.int16(), "largest entry of topic_mix"),
    Column("mix_entropy", pa.float32(), "entropy of topic_mix in nats (0: one topic)"),
    Column("active", pa.bool_(), "still uploading after this review"),
    Column("low_periods", pa.int16(), "consecutive periods below creators.min_exposure"),
    Column("joined_day", pa.float32(), "day the creator joined (0 for the initial creators)"),
    Column("left_day", pa.float32(), "day the creator left (null while active)"),
    Column("strategy", pa.string(), "creators.strategy.type"),
    Column("move", pa.string(), "strategy's action: stay, toward:<t>, pick:<t>, focus:<t>, ..."),
]

USERS_END = [
    Column("user_id", pa.int64(), "user id (written only when population.taste_drift > 0)"),
    Column("clicks", pa.int64(), "items the user consumed over the run"),
    Column("drift_distance", pa.float32(), "‖taste at the end − taste at the start‖₂", truth=True),
    Column("drift_cosine", pa.float32(), "cosine of taste at the start and at the end", truth=True),
    Column("start_topic", pa.int16(), "dominant taste topic at the start", truth=True),
    Column("end_topic", pa.int16(), "dominant taste topic at the end", truth=True),
]

DAILY = [
    Column("day", pa.int32(), "simulated day"),
    Column("sessions", pa.int64(), "sessions started that day"),
    Column("impressions", pa.int64(), "exposures that day"),
    Column("clicks", pa.int64(), "clicks that day"),
    Column("catalog_size", pa.int64(), "items published by the end of the day"),
    Column("mean_satisfaction", pa.float64(), "population mean satisfaction", truth=True),
]

LLM_CALLS = [
    Column("time", pa.float64(), "simulated seconds when the call was made"),
    Column("day", pa.int32(), "simulated day"),
    Column("user_id", pa.int64(), "user the call was for"),
    Column("session_id", pa.int64(), "session (-1 when not tied to one)"),
    Column("page", pa.int16(), "page within the session (-1 for reflections)"),
    Column("purpose", pa.string(), "page | reflection | repair:page | repair:reflection"),
    Column("model", pa.string(), "model name sent to the endpoint"),
    Column("prompt_tokens", pa.int32(), "prompt tokens (as recorded, also for cache hits)"),
    Column("completion_tokens", pa.int32(), "completion tokens (as recorded)"),
    Column("latency_s", pa.float32(), "wall seconds this call took here (tiny for cache hits)"),
    Column("attempts", pa.int8(), "endpoint attempts incl. retries (0 for cache hits)"),
    Column("cached", pa.bool_(), "answered from the cache"),
    Column("valid", pa.bool_(), "the answer parsed and passed validation"),
    Column("fallback", pa.bool_(), "the page (or reflection) fell back to the rule policy"),
    Column("error", pa.string(), "why the call failed or was invalid (empty when valid)"),
    Column("decision", pa.string(), "score (read from logprobs) | generate (a JSON answer)"),
    Column("options", pa.int16(), "score: options the answer token was read over; else 0"),
    Column("option_mass", pa.float32(), "score: probability the model put on those options"),
    Column("entropy", pa.float32(), "score: entropy (nats) of the renormalised distribution"),
    Column("choice", pa.int16(), "score: option drawn (0-based; for a page 0 = none); else -1"),
    Column("expected", pa.float32(), "score: expected rating 1-5 when a rating was read"),
]

PERSONAS = [
    Column("user_id", pa.int64(), "panel user"),
    Column("source", pa.string(), "template | yaml | data"),
    Column("text", pa.string(), "persona text as the LLM reads it"),
    Column("traits", pa.string(), "traits as JSON (activity, conformity, diversity, ...)"),
]

TURNS = [  # added by 5a: conversations (simulator/engine/dialogue_loop.py)
    Column("session_id", pa.int64(), "conversation (session) id"),
    Column("user_id", pa.int64(), "user id"),
    Column("turn", pa.int16(), "turn within the conversation (0-based; = exposures.page)"),
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("speaker", pa.string(), "system | user (each turn has a system row, then a user row)"),
    Column(
        "act",
        pa.string(),
        "system: ask | recommend; user: inform | critique | accept | reject | quit",
    ),
    Column(
        "facet",
        pa.string(),
        "facet asked (ask), answered (inform) or criticised (critique); null otherwise",
    ),
    Column(
        "value",
        pa.string(),
        "value the user wants (inform, critique); null for none or 'no preference'",
    ),
    Column("avoided_value", pa.string(), "critique: the value the user does not want; else null"),
    Column("items", pa.list_(pa.int64()), "items recommended (system recommend rows); else empty"),
    Column("accepted_item", pa.int64(), "item accepted (user accept rows); -1 otherwise"),
    Column("text", pa.string(), "the utterance; empty when the policy produces no text"),
    Column("patience", pa.float32(), "user rows: patience left after the turn", truth=True),
    Column("target", pa.string(), "hidden target, e.g. genre=Drama; era=1980s", truth=True),
    Column(
        "target_hits",
        pa.int16(),
        "recommend rows: items shown that match the target on every target facet; else 0",
        truth=True,
    ),
]

TABLES: dict[str, list[Column]] = {
    "exposures": EXPOSURES,
    "interactions": INTERACTIONS,
    "sessions": SESSIONS,
    "items": ITEMS,
    "creators": CREATORS,
    "creator_periods": CREATOR_PERIODS,
    "daily": DAILY,
    "users_end": USERS_END,
    "llm_calls": LLM_CALLS,
    "personas": PERSONAS,
    "turns": TURNS,
}

# ------------------------------------------------------------------ opt-in features
# Written (with rows) only when a scenario turns the feature on; otherwise schema-only files.
# Kept out of TABLES so the always-present tables and their README reference stay as they were.

POSTS = [  # users who talk (agents/users/talk.py)
    Column("post_id", pa.int64(), "talk event id (posts and messages share one id space)"),
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("user_id", pa.int64(), "author"),
    Column("item_id", pa.int64(), "item the post mentions (one the author just consumed)"),
    Column("sentiment", pa.int8(), "+1 liked (rating >= 4), -1 disliked (<= 2), 0 neutral"),
    Column("reached", pa.int32(), "friends the post reached"),
    Column("parent_id", pa.int64(), "talk event through which the author heard of the item; -1"),
]

MESSAGES = [
    Column("message_id", pa.int64(), "talk event id (shared with posts.post_id)"),
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("sender_id", pa.int64(), "user who wrote it"),
    Column("receiver_id", pa.int64(), "the one friend it was sent to"),
    Column("item_id", pa.int64(), "item it is about (one the sender just consumed)"),
    Column("sentiment", pa.int8(), "+1 liked, -1 disliked, 0 neutral"),
    Column("parent_id", pa.int64(), "talk event through which the sender heard of the item; -1"),
]

SOCIAL_CLICKS = [
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("user_id", pa.int64(), "user who consumed an item a friend had mentioned to them"),
    Column("item_id", pa.int64(), "item consumed"),
    Column("via_id", pa.int64(), "the latest talk event (post or message) that mentioned it"),
    Column("sentiment", pa.int8(), "sentiment of that mention"),
]

ITEM_SOURCES = [  # AI-generated content (agents/creators/ai_adoption.py)
    Column("item_id", pa.int64(), "item id"),
    Column("creator_id", pa.int32(), "creator"),
    Column("created_at", pa.float64(), "simulated seconds"),
    Column("source", pa.string(), "human | ai"),
]

SOURCE_PERIODS = [
    Column("period", pa.int32(), "creators' review period (as creator_periods.period)"),
    Column("day", pa.float32(), "simulated day of the review"),
    Column("active_creators", pa.int32(), "creators still uploading after the review"),
    Column("ai_creators", pa.int32(), "of them, creators on AI after the review"),
    Column("adopted", pa.int32(), "creators who switched to AI at this review"),
    Column("items", pa.int64(), "items published by the review"),
    Column("ai_items", pa.int64(), "of them, AI-generated"),
    Column("exposure", pa.int64(), "impressions in the period"),
    Column("ai_exposure", pa.int64(), "of them, of AI items"),
    Column("clicks", pa.int64(), "clicks in the period"),
    Column("ai_clicks", pa.int64(), "of them, on AI items"),
    Column("exposure_ratio", pa.float32(), "exposure per AI item / per human item (null: none)"),
]

INSTRUCTIONS = [  # users near leaving (agents/users/instructions.py)
    Column("request_id", pa.int64(), "page after which the user spoke (session_id * 1024 + page)"),
    Column("session_id", pa.int64(), "session id"),
    Column("user_id", pa.int64(), "user id"),
    Column("time", pa.float64(), "simulated seconds"),
    Column("day", pa.int32(), "simulated day"),
    Column("page", pa.int16(), "page after which the user spoke (0-based)"),
    Column(
        "kind",
        pa.string(),
        "more_novel | less_of_topic | more_of_topic | something_different",
    ),
    Column("topic", pa.int16(), "topic named by less_of_topic / more_of_topic; -1 otherwise"),
    Column(
        "leave_probability",
        pa.float32(),
        "the user's leave probability when it spoke",
        truth=True,
    ),
]

FEATURE_TABLES: dict[str, list[Column]] = {
    "instructions": INSTRUCTIONS,
    "posts": POSTS,
    "messages": MESSAGES,
    "social_clicks": SOCIAL_CLICKS,
    "item_sources": ITEM_SOURCES,
    "source_periods": SOURCE_PERIODS,
}

FEATURE_NOTES: dict[str, str] = {
    "instructions": "Rows when `population.instructions` is set (users who speak up).",
    "posts": "Rows when `population.social.talk` is set (users who talk).",
    "messages": "Rows when `population.social.talk` is set (users who talk).",
    "social_clicks": "Rows when `population.social.talk` is set (users who talk).",
    "item_sources": "Rows when `creators.ai` is set (AI-generated content).",
    "source_periods": "Rows when `creators.ai` is set (AI-generated content).",
}
"""Which scenario setting gives a feature table rows; without it the file is written with its
columns and no rows."""

NULL_FOR_NAN = frozenset(
    {"score", "left_day", "patience", "exposure_ratio", "option_mass", "entropy", "expected"}
)
"""Float columns where the engine's NaN means missing; written as null."""

SCHEMAS: dict[str, pa.Schema] = {
    name: _schema(cols) for name, cols in {**TABLES, **FEATURE_TABLES}.items()
}


def markdown_table(name: str) -> str:
    """Render a table's schema as Markdown (README keeps a copy of this)."""
    rows = [
        f"| `{c.name}` | {c.type} | {c.doc}{' *(truth)*' if c.truth else ''} |"
        for c in TABLES[name]
    ]
    return "\n".join(["| column | type | meaning |", "| --- | --- | --- |", *rows])


def _type_text(kind: pa.DataType) -> str:
    """A column's type as a reader of the files meets it: a list column reads back from
    Parquet as ``list<element: T>`` (Arrow's in-memory name for the values is ``item``), so
    the docs say ``list<T>`` rather than one of the two."""
    if pa.types.is_list(kind):
        return f"list<{kind.value_type}>"
    return str(kind)


def markdown_tables(heading: str = "##") -> str:
    """docs/reference/logs.md's column tables, generated from this module (a test keeps the
    two in step: docs/generate_reference.py rewrites them)."""
    parts = []
    for table, columns in {**TABLES, **FEATURE_TABLES}.items():  # every file a cell writes
        lines = [f"{heading} {table}", ""]
        if table in FEATURE_TABLES:
            lines += [FEATURE_NOTES[table], ""]
        lines += ["| column | type | meaning |", "| --- | --- | --- |"]
        for c in columns:
            doc = c.doc.replace("|", "\\|") + (" *(truth)*" if c.truth else "")
            lines.append(f"| `{c.name}` | {_type_text(c.type)} | {doc} |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
