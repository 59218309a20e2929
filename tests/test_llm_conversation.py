"""LLM conversational users and the LLM CRS against a scripted fake endpoint.

Unit tests build DialogueState/TurnBatch objects by hand on a six-item catalog with two facets,
so every expected move can be worked out on paper.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import numpy as np
import polars as pl
import pytest

from recarena.agents.llm.client import LLMClient
from recarena.agents.llm.item_text import SyntheticItemText
from recarena.agents.users.llm_conversation_user import (
    LLMConversationUser,
    QuestionAnswer,
    RecommendationAnswer,
    map_recommendation,
    question_schema,
    recommendation_schema,
)
from recarena.agents.users.llm_user import LLMUsers
from recarena.agents.users.personas import Persona
from recarena.recommenders.base import RecommenderContext
from recarena.recommenders.llm_crs import LLMCRS, CRSAnswer, TurnView, crs_check, crs_schema
from recarena.recommenders.registry import get_entry
from recarena.simulator.core.dialogue import (
    ACCEPT,
    ASK,
    CRITIQUE,
    INFORM,
    QUIT,
    RECOMMEND,
    REJECT,
    UNKNOWN,
    DialogueState,
    Facets,
    SystemActs,
    TurnBatch,
    UserActs,
)
from recarena.simulator.core.errors import RecarenaError
from recarena.simulator.core.scenario import ConversationUsers, LLMPanel
from recarena.simulator.core.types import (
    PAD_ITEM,
    CatalogView,
    Interactions,
    RequestBatch,
    SlateBatch,
)
from recarena.simulator.runner.experiment import run_experiment
from recarena.simulator.runner.resolve import parse_scenario
from tests.catalog_view import topics_catalog
from tests.fake_openai import FakeOpenAI, cell_table, fake_client

# items 0..5: genre Comedy/Horror/Drama, era 1980s/1990s
FACETS = Facets(
    names=("genre", "era"),
    values=(("Comedy", "Horror", "Drama"), ("1980s", "1990s")),
    codes=np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]], np.int16),
)
N_ITEMS = 6


class ScriptedFake(FakeOpenAI):
    """The fake endpoint, answering CRS and user prompts with the given JSON objects."""

    def __init__(self, crs=None, user=None, script=("ok",)) -> None:
        super().__init__(script)
        self.crs, self.user = crs, user

    def _completion(self, body, behaviour):
        response = super()._completion(body, behaviour)
        if behaviour == "ok":
            is_crs = "film recommender" in body["messages"][0]["content"]
            answer = self.crs if is_crs else self.user
            if callable(answer):  # answers that depend on the prompt
                answer = answer(body["messages"][1]["content"])
            response["choices"][0]["message"]["content"] = json.dumps(answer)
        return response


def _client(tmp_path, base_url, mode="auto", decision="generate") -> LLMClient:
    return fake_client(tmp_path, base_url, mode, decision)


def _catalog() -> CatalogView:
    return topics_catalog(np.eye(3, dtype=np.float32)[FACETS.codes[:, 0]])


def _state(turn=0, asked=None, preferred=None, avoided=None, shown=None, k=2) -> DialogueState:
    batch = 2
    requests = RequestBatch(
        time=60.0,
        user=np.array([0, 1], np.int64),
        session=np.array([10, 11], np.int64),
        page=np.full(batch, turn, np.int32),
        k=k,
        catalog=_catalog(),
        exclude=np.full((batch, 1), PAD_ITEM, np.int64),
    )
    return DialogueState(
        requests=requests,
        facets=FACETS,
        max_turns=4,
        asked=np.zeros((batch, 2), bool) if asked is None else asked,
        preferred=np.full((batch, 2), UNKNOWN, np.int16) if preferred is None else preferred,
        avoided=np.zeros((batch, 2, 3), bool) if avoided is None else avoided,
        shown=np.full((batch, 1), PAD_ITEM, np.int64) if shown is None else shown,
        transcript=((), ("system: which genre would you like?", "user: Drama")),
    )


def _crs(client, **params) -> LLMCRS:
    entry = get_entry("llm_crs")
    ctx = RecommenderContext(np.random.default_rng(0), 2, 3, llm_client=client)
    crs = entry.factory(entry.params.model_validate(params), ctx)
    # popularity ranks 5, 4, 3, 2, 1, 0 (clicks 5..0): a base order worked out by hand
    item = np.repeat(np.arange(N_ITEMS), np.arange(N_ITEMS))
    crs.fit(Interactions(item * 0, item, np.zeros(item.size), np.full(item.size, 4, np.float32)))
    return crs


# ----------------------------------------------------------------------------- schemas
def test_crs_schema_allows_exactly_the_possible_moves():
    view = TurnView(["era"], np.array([5, 4, 3]), can_ask=True)
    schema = crs_schema(view, k=2)
    ok = {"move": "ask era", "items": []}
    jsonschema.validate(ok, schema)
    assert crs_check(view)(CRSAnswer.model_validate(ok)) is None
    for bad in (
        {**ok, "move": "ask genre"},  # already asked: not in the enum
        {**ok, "move": "recommend", "items": [4]},  # only 3 candidates
        {**ok, "move": "recommend", "items": [1, 2, 3]},  # more than k
        {"move": "recommend"},  # items are required
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    last = crs_schema(TurnView(["era"], np.array([5]), can_ask=False), k=2)
    assert last["properties"]["move"]["enum"] == ["recommend"]
    # endpoints that only treat the schema as a hint are still checked
    hint = CRSAnswer(move="ask genre")
    assert "not one of ['ask era', 'recommend']" in crs_check(view)(hint)
    assert "candidate numbers" in crs_check(view)(CRSAnswer(move="recommend", items=[7]))


def test_user_schemas_enumerate_options_and_shown_values():
    question = question_schema(FACETS, 1)
    assert question["properties"]["answer"]["enum"] == ["1980s", "1990s", "any", "quit"]
    jsonschema.validate({"answer": "1990s", "say": "90s please"}, question)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"answer": "Comedy", "say": ""}, question)
    rec = recommendation_schema(FACETS, np.array([2, 5]))
    props = rec["properties"]
    assert props["act"]["enum"] == ["accept 1", "accept 2", "critique", "reject", "quit"]
    assert props["want"]["enum"][:3] == ["genre=Comedy", "genre=Horror", "genre=Drama"]
    assert len(props["want"]["enum"]) == 3 + 2 + 1
    # only values on the shown items can be avoided: Horror (2), Drama (5), 1980s, 1990s
    assert props["avoid"]["enum"] == [
        "genre=Horror", "genre=Drama", "era=1980s", "era=1990s", "none"
    ]  # fmt: skip
    answer = {"act": "critique", "want": "genre=Comedy", "avoid": "genre=Horror", "rating": 3,
              "say": "something lighter"}  # fmt: skip
    jsonschema.validate(answer, rec)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**answer, "act": "accept 3"}, rec)  # only two films shown
    QuestionAnswer.model_validate({"answer": "quit"})
    RecommendationAnswer.model_validate(answer)


def test_critiques_map_onto_the_contract():
    items = np.array([2, 5])  # Horror/1980s, Drama/1990s
    crit = RecommendationAnswer(act="critique", want="genre=Comedy", avoid="genre=Drama")
    act = map_recommendation(crit, FACETS, items)
    assert (act.act, act.facet, act.value, act.avoided_value) == (CRITIQUE, 0, 0, 2)
    # want only: "not that" avoids the first shown item's value of the facet (Horror)
    act = map_recommendation(RecommendationAnswer(act="critique", want="genre=Comedy"), FACETS,
                             items)  # fmt: skip
    assert (act.facet, act.value, act.avoided_value) == (0, 0, 1)
    # avoid only, on another facet
    act = map_recommendation(RecommendationAnswer(act="critique", avoid="era=1980s"), FACETS, items)
    assert (act.act, act.facet, act.value, act.avoided_value) == (CRITIQUE, 1, UNKNOWN, 0)
    # want and avoid on different facets: want wins, avoid derived from the first item (1980s)
    crit = RecommendationAnswer(act="critique", want="era=1990s", avoid="genre=Drama")
    act = map_recommendation(crit, FACETS, items)
    assert (act.facet, act.value, act.avoided_value) == (1, 1, 0)
    assert map_recommendation(RecommendationAnswer(act="critique"), FACETS, items).act == REJECT
    act = map_recommendation(RecommendationAnswer(act="accept 2", rating=5), FACETS, items)
    assert (act.act, act.accepted, act.rating) == (ACCEPT, 5, 5.0)


# ----------------------------------------------------------------------------- LLM CRS
def test_llm_crs_recommends_the_llm_picks_then_fills_from_the_shortlist(tmp_path):
    answer = {"move": "recommend", "items": [3, 1, 3]}
    with ScriptedFake(crs=answer) as fake:
        client = _client(tmp_path, fake.base_url)
        crs = _crs(client, shortlist=4)
        preferred = np.array([[UNKNOWN, UNKNOWN], [2, UNKNOWN]], np.int16)  # row 1 wants Drama
        acts = crs.act(_state(preferred=preferred, k=3))
        prompts = [b["messages"][1]["content"] for b in fake.requests]
        records = client.drain_records()
        client.close()
    # row 0: shortlist = base order 5,4,3,2 -> picks #3 (3), #1 (5), then 4
    # row 1: Drama first (5, 4), then 3, 2 -> picks #3 (3), #1 (5), then 4
    assert acts.act.tolist() == [RECOMMEND, RECOMMEND]
    assert acts.facet.tolist() == [UNKNOWN, UNKNOWN]
    assert acts.slates.items.tolist() == [[3, 5, 4], [3, 5, 4]]
    assert acts.text == ("", "")  # the loop renders the move
    assert (acts.slates.propensity == 1).all()
    assert len(records) == 2 and all(r.valid and not r.fallback for r in records)
    assert [r.context.purpose for r in records] == ["crs", "crs"]
    first, second = sorted(prompts, key=lambda p: "user: Drama" in p)  # calls run concurrently
    assert '"move" (one of: "ask genre", "ask era", "recommend")' in first
    assert "conversation starts now" in first
    assert "wants genre: Drama" in second and '(one of: "ask era", "recommend")' in second
    assert "1. The Secret Carnival #5 (genre: Drama, era: 1990s)" in first


def test_llm_crs_asks_what_the_llm_asks(tmp_path):
    answer = {"move": "ask era", "items": []}
    asked = np.array([[True, False], [True, False]])
    with ScriptedFake(crs=answer) as fake:
        client = _client(tmp_path, fake.base_url)
        acts = _crs(client).act(_state(asked=asked))
        schemas = [b["response_format"]["schema"] for b in fake.requests]
        client.close()
    assert acts.act.tolist() == [ASK, ASK] and acts.facet.tolist() == [1, 1]
    assert (acts.slates.items == PAD_ITEM).all() and (acts.slates.propensity == 0).all()
    assert schemas[0]["properties"]["move"]["enum"] == ["ask era", "recommend"]  # json_object


def test_invalid_answers_fall_back_to_the_rule_and_are_logged(tmp_path):
    with ScriptedFake(script=["malformed"]) as fake:
        client = _client(tmp_path, fake.base_url)
        crs = _crs(client, shortlist=4)
        asked = np.array([[False, False], [True, False]])
        acts = crs.act(_state(asked=asked))
        records = client.drain_records()
        client.close()
    # the rule is info_gain: candidates 5..0 weigh 1/log2(r + 2); the top 2 hold 0.49 < 0.5 of
    # the weight, so it asks: genre (3 values, spread) in row 0, era (genre asked) in row 1
    assert acts.act.tolist() == [ASK, ASK] and acts.facet.tolist() == [0, 1]
    assert [r.context.purpose for r in records] == ["crs", "repair:crs"] * 2
    assert [r.fallback for r in records] == [False, True] * 2
    assert all("not JSON" in r.error for r in records)
    assert crs.fallbacks == 2
    # the last turn cannot ask: the rule recommends the shortlist's top k
    with ScriptedFake(script=["500"]) as fake:
        client = _client(tmp_path, fake.base_url)
        acts = _crs(client, shortlist=4).act(_state(turn=3))
        client.close()
    assert acts.act.tolist() == [RECOMMEND] * 2 and acts.slates.items.tolist() == [[5, 4]] * 2


def test_llm_crs_without_a_client_is_the_info_gain_policy():
    # without a client it is info_gain: top 2 of 5..0 hold 0.49 of the weight, of 4..0 (item 5
    # was shown) 0.55; both clear confidence 0.45, so both recommend
    crs = _crs(None, confidence=0.45)
    acts = crs.act(_state(shown=np.array([[5], [PAD_ITEM]], np.int64)))
    assert acts.act.tolist() == [RECOMMEND] * 2
    assert acts.slates.items.tolist() == [[4, 3], [5, 4]]  # shown items are never repeated


# ----------------------------------------------------------------------------- LLM user
class RuleStub:
    """A stand-in agenda user: target Drama/1990s for everyone, always rejects."""

    cfg = ConversationUsers(turn_cost=1.0, rejection_cost=0.5)

    def targets(self, users, session_ids, facets):
        return np.tile(np.array([2, 1], np.int16), (len(users), 1))

    def respond(self, turn: TurnBatch) -> UserActs:
        batch, k = turn.system.slates.items.shape
        return UserActs(
            act=np.full(batch, REJECT, np.int8),
            facet=np.full(batch, UNKNOWN, np.int16),
            value=np.full(batch, UNKNOWN, np.int16),
            avoided_value=np.full(batch, UNKNOWN, np.int16),
            accepted=np.full(batch, PAD_ITEM, np.int64),
            utility=np.zeros((batch, k), np.float32),
            rating=np.full(batch, np.nan, np.float32),
            patience=turn.patience - 1.5,
            text=("",) * batch,
        )


def _user(client) -> LLMConversationUser:
    personas = [Persona(1, "yaml", "Ada. Loves serious dramas.", {})]
    llm = LLMUsers(LLMPanel(users=1), personas, SyntheticItemText(_catalog(), 3), client)
    return LLMConversationUser(RuleStub(), llm, n_users=2)


def _turn(system_act, facet, items) -> TurnBatch:
    state = _state(k=2)
    k = 2
    slates = SlateBatch(
        np.array(items, np.int64), np.zeros((2, k), np.float32), np.ones((2, k), np.float32)
    )
    system = SystemActs(
        np.full(2, system_act, np.int8), np.full(2, facet, np.int16), slates, ("", "")
    )
    target = RuleStub().targets(state.requests.user, state.requests.session, FACETS)
    return TurnBatch(
        state, system, target, np.array([5.0, 5.0], np.float32), np.zeros(2, np.uint64),
        np.array([[True, True], [True, False]]),
    )  # fmt: skip


def test_llm_user_answers_for_panel_users_only(tmp_path):
    user_answer = {"act": "accept 1", "want": "none", "avoid": "none", "rating": 5,
                   "say": "Perfect"}  # fmt: skip
    with ScriptedFake(user=user_answer) as fake:
        client = _client(tmp_path, fake.base_url)
        user = _user(client)
        user.llm.memory[1].add_interaction("watched The Iron Road #3 (Drama), rated 5/5", 0.0)
        turn = _turn(RECOMMEND, UNKNOWN, [[2, 5], [5, 2]])
        acts = user.respond(turn)
        prompts = [b["messages"][1]["content"] for b in fake.requests]
        client.close()
    assert len(prompts) == 1  # only user 1 (row 1) is on the panel
    assert acts.act.tolist() == [REJECT, ACCEPT]
    assert acts.accepted.tolist() == [PAD_ITEM, 5] and acts.rating[1] == 5.0
    # patience 5: the stub's reject costs 1 + 0.5; the LLM's accept only the turn (1)
    assert acts.text == ("", "Perfect") and acts.patience.tolist() == [3.5, 4.0]
    assert "looking for a film with genre: Drama, era: 1990s" in prompts[0]
    assert "1. The" in prompts[0] and "2. " not in prompts[0]  # only the examined slot
    assert user.targets(np.array([0]), np.array([3]), FACETS).tolist() == [[2, 1]]
    assert "You remember:\n- watched The Iron Road #3 (Drama), rated 5/5" in prompts[0]


def test_llm_user_informs_and_falls_back_on_failure(tmp_path):
    with ScriptedFake(user={"answer": "1990s", "say": "the 90s"}) as fake:
        client = _client(tmp_path, fake.base_url)
        acts = _user(client).respond(_turn(ASK, 1, [[PAD_ITEM] * 2] * 2))
        prompt = fake.requests[0]["messages"][1]["content"]
        client.close()
    assert acts.act.tolist() == [REJECT, INFORM]
    assert (acts.facet[1], acts.value[1]) == (1, 1)
    assert acts.patience.tolist() == [3.5, 4.0]  # a question costs only the turn
    assert "which era would you like? Options: 1980s, 1990s." in prompt
    with ScriptedFake(script=["malformed"]) as fake:
        client = _client(tmp_path, fake.base_url, mode="record")
        acts = _user(client).respond(_turn(ASK, 1, [[PAD_ITEM] * 2] * 2))
        records = client.drain_records()
        client.close()
    assert acts.act.tolist() == [REJECT, REJECT]  # the rule's answer stands
    assert [r.fallback for r in records] == [False, True]
    assert [r.context.purpose for r in records] == ["turn", "repair:turn"]


def test_turns_replay_identically_from_the_cache(tmp_path):
    crs_answer = {"move": "recommend", "items": [2]}
    user_answer = {"act": "quit", "want": "none", "avoid": "none", "rating": 1, "say": "bye"}
    with ScriptedFake(crs=crs_answer, user=user_answer) as fake:
        client = _client(tmp_path, fake.base_url, mode="record")
        recorded = (_crs(client).act(_state()), _user(client).respond(_turn(RECOMMEND, -1,
                    [[2, 5], [5, 2]])))  # fmt: skip
        client.close()
    client = _client(tmp_path, "http://127.0.0.1:9/v1", mode="replay")  # nothing listens
    replayed = (_crs(client).act(_state()), _user(client).respond(_turn(RECOMMEND, -1,
                [[2, 5], [5, 2]])))  # fmt: skip
    records = client.drain_records()
    client.close()
    assert all(r.cached for r in records) and len(records) == 3
    assert recorded[0].slates.items.tolist() == replayed[0].slates.items.tolist() == [[4, 5]] * 2
    assert recorded[0].text == replayed[0].text
    assert recorded[1].act.tolist() == replayed[1].act.tolist() == [REJECT, QUIT]
    assert recorded[1].text == replayed[1].text


# ----------------------------------------------------------------------------- end to end
CONVERSATION = {
    "name": "conv-llm",
    "seed": 4,
    "replicates": 1,
    "horizon": {"days": 1, "tick_seconds": 600},
    "catalog": {"initial_items": 150, "topics": 6},
    "population": {
        "users": 24,
        "model": "mixed",
        "llm_panel": {"users": 3, "reflect_every_sessions": 0},
        "conversation": {"target_facets": ["genre", "era"], "patience": 3},
    },
    "creators": {"count": 4},
    "surface": {"type": "conversation", "k": 2, "max_turns": 3},
    "llm": {
        "provider": "openai",
        "model": "fake",
        "max_retries": 0,
        "backoff_seconds": 0.0,
        "decision": "generate",
    },
    "arms": [
        {"name": "info_gain", "recommender": {"type": "info_gain"}},
        {"name": "llm_crs", "recommender": {"type": "llm_crs", "params": {"shortlist": 4}}},
    ],
    "metrics": ["conv_success_rate"],
}
CRS_SAYS = {"move": "recommend", "items": [1]}


def user_says(prompt: str) -> dict:
    if "The assistant asks" in prompt:
        return {"answer": "any", "say": "anything"}
    return {"act": "accept 1", "want": "none", "avoid": "none", "rating": 4, "say": "great"}


def _run_conversation(tmp: Path, base_url: str, mode: str, name: str, arms=None):
    doc = copy.deepcopy(CONVERSATION)
    doc["llm"] |= {"base_url": base_url, "cache": {"path": str(tmp / "cache.sqlite"), "mode": mode}}
    if arms is not None:
        doc["arms"] = arms
    return run_experiment(parse_scenario(doc), tmp / name, executor="local").run_dir


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conversation")
    with ScriptedFake(crs=CRS_SAYS, user=user_says) as fake:
        run_dir = _run_conversation(tmp, fake.base_url, "record", "recorded")
    return tmp, run_dir


def test_llm_conversations_run_one_call_per_conversation_and_turn(recorded):
    _, run_dir = recorded
    turns = cell_table(run_dir, "llm_crs", "turns")
    sessions = cell_table(run_dir, "llm_crs", "sessions")
    calls = cell_table(run_dir, "llm_crs", "llm_calls")
    assert calls["valid"].all() and not calls["fallback"].any()
    system = turns.filter(pl.col("speaker") == "system")
    assert system.height > 0 and (system["act"] == "recommend").all()
    assert (system["text"] == "").all()  # the LLM CRS moves; the loop renders its words
    # exactly one CRS call per conversation and turn
    crs = calls.filter(pl.col("purpose") == "crs").select("session_id", turn=pl.col("page"))
    assert crs.sort(pl.all()).equals(system.select("session_id", "turn").sort(pl.all()))
    # the panel's users accept the first item at once; everyone else is an agenda user
    panel = sessions.filter(pl.col("llm_user"))
    assert panel.height > 0 and (panel["exit_reason"] == "accepted").all()
    users = turns.filter(pl.col("speaker") == "user")
    answers = users.join(panel.select("session_id"), on="session_id", how="semi")
    assert (answers["act"] == "accept").all() and (answers["text"] == "great").all()
    assert (answers["turn"] == 0).all()
    others = users.join(panel.select("session_id"), on="session_id", how="anti")
    assert others.height > 0 and (others["text"] == "").all()
    turn_calls = calls.filter(pl.col("purpose") == "turn")
    assert turn_calls.height == answers.height
    first = system.join(panel.select("session_id"), on="session_id", how="semi")
    accepted = answers.select("session_id", "accepted_item").join(
        first.select("session_id", "items"), on="session_id"
    )
    assert accepted["accepted_item"].to_list() == [x[0] for x in accepted["items"].to_list()]
    interactions = cell_table(run_dir, "llm_crs", "interactions").join(
        panel.select("session_id"), on="session_id", how="semi"
    )
    assert interactions.height == panel.height and (interactions["rating"] == 4).all()
    # under the rule CRS the panel answers questions through the LLM too ("any" = no value)
    rule_turns = cell_table(run_dir, "info_gain", "turns")
    rule_panel = cell_table(run_dir, "info_gain", "sessions").filter(pl.col("llm_user"))
    informs = rule_turns.join(rule_panel.select("session_id"), on="session_id", how="semi").filter(
        pl.col("act") == "inform"
    )
    assert informs.height > 0 and informs["value"].is_null().all()
    assert (informs["text"] == "anything").all()


def test_llm_conversations_replay_identically_without_an_endpoint(recorded):
    tmp, run_dir = recorded
    replayed = _run_conversation(tmp, "http://127.0.0.1:9/v1", "replay", "replayed")
    for arm in ("info_gain", "llm_crs"):
        for table in ("turns", "exposures", "interactions", "sessions"):
            same = cell_table(run_dir, arm, table).equals(cell_table(replayed, arm, table))
            assert same, (arm, table)
        calls = cell_table(replayed, arm, "llm_calls")
        assert calls["cached"].all()
        # live calls are logged in the order they complete, replayed ones in call order
        keep = ["purpose", "session_id", "page", "prompt_tokens", "valid", "fallback"]
        live = cell_table(run_dir, arm, "llm_calls").select(keep).sort(keep)
        assert live.equals(calls.select(keep).sort(keep))


def test_a_failing_endpoint_makes_llm_crs_the_info_gain_policy(tmp_path):
    # same arm name, so the base recommender draws the same random numbers in both runs
    with ScriptedFake(script=["500"]) as fake:
        llm = _run_conversation(tmp_path, fake.base_url, "auto", "llm",
                                [{"name": "x", "recommender": {"type": "llm_crs"}}])  # fmt: skip
    rule = _run_conversation(tmp_path, fake.base_url, "auto", "rule",
                             [{"name": "x", "recommender": {"type": "info_gain"}}])  # fmt: skip
    calls = cell_table(llm, "x", "llm_calls")
    assert calls.height > 0 and calls["fallback"].all() and (calls["error"] == "HTTP 500").all()
    for table in ("turns", "exposures", "interactions", "sessions"):
        assert cell_table(llm, "x", table).equals(cell_table(rule, "x", table)), table


def test_an_llm_crs_arm_makes_the_run_use_the_llm():
    doc = copy.deepcopy(CONVERSATION)
    doc["population"] = {"users": 24}  # rule users only: the CRS alone needs the endpoint
    assert parse_scenario(doc).uses_llm
    doc["arms"] = [doc["arms"][0]]
    assert not parse_scenario(doc).uses_llm
    doc["arms"] = [
        {"name": "x", "recommender": {"type": "llm_crs", "params": {"base": "info_gain"}}}
    ]
    with pytest.raises(RecarenaError, match=r"arms\[0\]\.recommender\.params\.base: .*not a list"):
        parse_scenario(doc)
