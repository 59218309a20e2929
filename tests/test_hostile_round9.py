"""Round nine of the hostile user: scenarios written from the reference pages one feature at a
time, with the mistakes of a new user (units confused, a horizon shrunk below the schedules it
runs, features the docs describe apart combined) and every command with hostile options.

Each case is one line, exit code 2, naming the field, and validate says it before run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_in_process import cli
from tests.test_hostile_inputs import calibrated_files  # noqa: F401 - used by population
from tests.test_validate_gate import base_doc as gate_doc
from tests.test_validate_gate import refused_everywhere, write_scenario


def base_doc(tmp_path: Path) -> dict:
    return gate_doc(tmp_path, name="round9", days=1)


# ------------------------------------------- creator settings over a horizon with no review
@pytest.mark.parametrize(
    ("creators", "named"),
    [
        (
            {"strategy": {"type": "exposure_chasing"}},
            "creators.strategy: creators review every 7 days (creators.period_days) and "
            "horizon.days is 1, so no review comes before the horizon: creators change their "
            "topic mix only at a review, so none would adapt",
        ),
        (
            {"join_rate_per_period": 2},
            "creators.join_rate_per_period: creators review every 7 days",
        ),
        (
            {"min_exposure": 5, "leave_after_periods": 1, "period_days": 1},
            "creators.leave_after_periods: creators review every 1 days (creators.period_days) "
            "and horizon.days is 1, so no review comes before the horizon: creators leave only "
            "at a review, so none would leave",
        ),
        (
            {"ai": {"initial_share": 0, "base_rate": 0.5}},
            "creators.ai: creators review every 7 days (creators.period_days) and horizon.days "
            "is 1, so no review comes before the horizon: no creator is on AI at the start and "
            "creators adopt AI only at a review, so none would ever be on AI",
        ),
    ],
    ids=["strategy", "joining", "leaving", "ai_adoption"],
)
def test_a_creator_setting_with_no_review_before_the_horizon_is_refused(tmp_path, creators, named):
    """Was: validate ok and a run as if the setting were absent. Reviews come every
    creators.period_days (7 by default) and the horizon's closing review applies nothing, so
    over a 1-day horizon no creator adapted, joined, left or adopted AI (creator_periods held
    the closing rows alone); a short trial run of scenarios/creators.yaml is this case."""
    doc = base_doc(tmp_path)
    doc["creators"] |= creators
    refused_everywhere(tmp_path, doc, named)


@pytest.mark.parametrize(
    "change",
    [
        {"creators": {"count": 2, "period_days": 0.5, "join_rate_per_period": 2}},
        {"creators": {"count": 2, "ai": {"initial_share": 0.5}}},  # AI from the start
        {
            "creators": {"count": 2, "strategy": {"type": "exposure_chasing"}},
            "sweep": {"horizon.days": [1, 8]},  # a point with a review
        },
    ],
    ids=["shorter_period", "ai_at_start", "sweep_point_with_a_review"],
)
def test_a_creator_setting_with_a_review_still_passes(tmp_path, change):
    doc = base_doc(tmp_path)
    for key, value in change.items():
        doc[key] = doc.get(key, {}) | value if key == "creators" else value
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------------- creators' reviews between ticks
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"creators": {"period_days": 0.002, "min_exposure": 1, "leave_after_periods": 2}},
            "creators.period_days: a review every 0.002 days (172.8 s) is more often than a "
            "tick (horizon.tick_seconds 600), and impressions are counted only at ticks",
        ),
        (
            {
                "creators": {"period_days": 0.01},
                "sweep": {"horizon.tick_seconds": [600, 1200]},
            },
            "sweep point 1 (horizon.tick_seconds=1200): creators.period_days: a review every "
            "0.01 days (864 s) is more often than a tick",
        ),
    ],
    ids=["leaving", "sweep_point"],
)
def test_creator_reviews_more_often_than_a_tick_are_refused(tmp_path, change, named):
    """Was: validate ok and every creator retired before a user saw a page. With 10-minute
    ticks and a review every 0.002 days the first periods ended before the first page, so each
    read as a period without exposure, and leave_after_periods: 2 with min_exposure 1 made every
    creator leave on day 0.004; a refit more often than a tick was already refused."""
    doc = base_doc(tmp_path)
    for key, value in change.items():
        doc[key] = doc[key] | value if key == "creators" else value
    refused_everywhere(tmp_path, doc, named)


def test_creator_reviews_a_tick_apart_still_pass(tmp_path):
    doc = base_doc(tmp_path)
    doc["creators"] |= {"period_days": 600 / 86400, "min_exposure": 1, "leave_after_periods": 2}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------- a learner whose first refit is after the horizon
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"retrain": {"every_days": 7}},
            "retrain.every_days: a refit every 7 days and horizon.days is 1, so arms[1] "
            "('popularity') would fit its popularity once, at the start, before any click, and "
            "serve that untrained ranking all run",
        ),
        (
            {"arm": {"retrain_every_days": 24}},  # hours, written where days are meant
            "arms[1].retrain_every_days: a refit every 24 days and horizon.days is 1",
        ),
        (
            {
                "arm": {
                    "name": "mmr",
                    "recommender": {"type": "mmr", "params": {"base": "mf"}},
                    "retrain_every_days": 2,
                }
            },
            "arms[1].retrain_every_days: a refit every 2 days and horizon.days is 1, so "
            "arms[1] ('mmr') would fit its mf once",
        ),
        (
            {"retrain": {"every_days": 0.5}, "sweep": {"horizon.days": [1, 0.5]}},
            "sweep point 1 (horizon.days=0.5): retrain.every_days: a refit every 0.5 days",
        ),
    ],
    ids=["weekly", "hours_for_days", "wrapper_base", "sweep_point"],
)
def test_a_learner_with_no_refit_before_the_horizon_is_refused(tmp_path, change, named):
    """Was: validate ok and an arm that never learnt: refits come every retrain.every_days from
    the start, and the one at the start sees no click. popularity with a refit every 24 days
    over one day served one fixed random order to every user (the same item in slot 0 of 100
    of 105 pages, every score 0), read as 'popularity loses to random'."""
    doc = base_doc(tmp_path)
    doc["arms"][1] |= change.pop("arm", {})
    doc |= change
    refused_everywhere(tmp_path, doc, named)


@pytest.mark.parametrize(
    "change",
    [
        {"retrain": {"every_days": 0.5}},  # a refit at half a day
        {"retrain": {"every_days": 7}, "arms": [{"name": "r", "recommender": {"type": "random"}}]},
        {  # bandits learn online, without a refit
            "retrain": {"every_days": 7},
            "arms": [{"name": "ts", "recommender": {"type": "thompson_beta"}}],
        },
        {  # a plug-in may be fitted offline and ignore its refits (fidelity's arms are)
            "retrain": {"every_days": 7},
            "arms": [{"name": "p", "recommender": {"type": "tests.plugins:PacedPopularity"}}],
        },
    ],
    ids=["refit_within", "random", "online_learner", "plugin"],
)
def test_a_schedule_that_refits_or_a_recommender_that_needs_none_still_passes(tmp_path, change):
    doc = base_doc(tmp_path) | change
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------ instructions where no page is served
CONVERSATION_ARMS = [
    {"name": "info_gain", "recommender": {"type": "info_gain"}},
    {"name": "recommend_only", "recommender": {"type": "recommend_only"}},
]


def test_instructions_with_every_arm_in_conversation_are_refused(tmp_path):
    """Was: validate ok and an instructions table empty in every cell: users speak up in the
    page step alone, and a conversation's turns never reach it, so population.instructions was
    read by nothing (a list arm of the same scenario logged its instructions)."""
    doc = base_doc(tmp_path)
    doc["population"]["instructions"] = {"threshold": 0.4}
    doc["surface"] = {"type": "conversation"}
    doc["arms"] = CONVERSATION_ARMS
    refused_everywhere(
        tmp_path,
        doc,
        "population.instructions: every arm is on a conversation surface, and users give "
        "instructions only on pages (lists, carousels), so these settings would be read by "
        "nothing",
    )


def test_an_instructable_arm_in_conversation_is_refused(tmp_path):
    """Was: validate ok and an instructable arm that served its base unchanged: on its own
    conversation surface its users gave no instruction (0 rows) while the list arm beside it
    logged theirs."""
    doc = base_doc(tmp_path)
    doc["population"]["instructions"] = {"threshold": 0.4}
    doc["arms"][1] = {
        "name": "instructable",
        "recommender": {"type": "instructable", "params": {"base": "popularity"}},
        "surface": {"type": "conversation"},
    }
    refused_everywhere(
        tmp_path,
        doc,
        "arms[1].recommender.type: instructable would serve its base unchanged: arms[1] is on "
        "a conversation surface, and users give instructions only on pages",
    )


def test_instructions_with_an_arm_on_pages_still_pass(tmp_path):
    doc = base_doc(tmp_path)
    doc["population"]["instructions"] = {"threshold": 0.4}
    doc["arms"] = [
        {**CONVERSATION_ARMS[0], "surface": {"type": "conversation"}},
        {"name": "instructable", "recommender": {"type": "instructable"}},
    ]
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------- sizes and draws a calibrated population replaces
@pytest.fixture
def population(calibrated_files: Path) -> Path:  # noqa: F811
    """A tiny calibrated population (40 users, 30 items), calibrated once per module."""
    return calibrated_files


def _calibrated(tmp_path: Path, files: Path, **population) -> dict:
    doc = base_doc(tmp_path)
    doc.pop("catalog")
    doc.pop("creators")  # the calibrated population's own, as the catalog
    doc["population"] = {"from": "calibrated", "path": str(files / "pop.parquet"), **population}
    doc["surface"] = {"k": 2}
    return doc


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            {"population": {"users": 20}},
            "population.users: 20 would be replaced by the calibrated population's 40 users "
            "(population.path sets them); leave it out",
        ),
        (
            {"catalog": {"initial_items": 300}},
            "catalog.initial_items: 300 would be replaced by the calibrated population's 30 items",
        ),
        (
            {"population": {"visits_per_day": 5.0}},
            "population.visits_per_day: read by nothing with from: calibrated (its users' "
            "tastes and visit rates are fitted, in population.path)",
        ),
        (
            {"population": {"taste_scale": 2.0}},
            "population.taste_scale: read by nothing with from: calibrated",
        ),
        (
            {"sweep": {"population.activity_sd": [0.5, 1.0]}},
            "population.activity_sd: read by nothing with from: calibrated",
        ),
    ],
    ids=["users", "initial_items", "visits_per_day", "taste_scale", "swept_activity_sd"],
)
def test_a_setting_a_calibrated_population_replaces_is_refused(population, tmp_path, change, named):
    """Was: validate ok and a run of the file's own population: `users: 20` beside
    `from: calibrated` (a smaller trial) simulated the file's 40 users, its items replaced
    initial_items, and the draws of generated users (taste_scale, visits_per_day, activity_sd)
    were read by nothing, while the estimate counted the written visit rate."""
    doc = _calibrated(tmp_path, population)
    for key, value in change.items():
        doc[key] = doc.get(key, {}) | value if key == "population" else value
    refused_everywhere(tmp_path, doc, named)


def test_a_calibrated_population_with_its_own_sizes_or_overrides_still_passes(population, tmp_path):
    """What a resolved scenario writes (the file's sizes, the defaults) and what the YAML may
    override (temperature, no-click utility) pass."""
    doc = _calibrated(tmp_path, population, users=40, temperature=0.7)
    doc["catalog"] = {"initial_items": 30}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------------- a carousel whose rows all skip
CAROUSEL = {"type": "carousel", "cols": 3, "rows": [{"theme": "trending"}, {"theme": "new"}]}


@pytest.mark.parametrize("where", ["surface", "arm"])
def test_a_carousel_whose_every_row_is_skipped_is_refused(tmp_path, where):
    """Was: validate ok and a run in which no user examined a single item: a row is skipped
    outright with probability skip, and skip 1 on every row (1 written for 1%) skipped them
    all, so every arm had a CTR of 0 and the A/B table compared two empty surfaces."""
    doc = base_doc(tmp_path)
    surface = {**CAROUSEL, "rows": [{"theme": "trending", "skip": 1}, {"theme": "new", "skip": 1}]}
    if where == "surface":
        doc["surface"], field = surface, "surface.rows"
    else:
        doc["arms"][1]["surface"], field = surface, "arms[1].surface.rows"
    refused_everywhere(
        tmp_path,
        doc,
        f"{field}: every row has skip 1, so every user would skip every row and no item would "
        "ever be examined; skip is a probability (0.3 for 30%)",
    )


def test_a_carousel_with_a_row_someone_reads_still_passes(tmp_path):
    doc = base_doc(tmp_path)
    doc["surface"] = {**CAROUSEL, "rows": [{"theme": "trending", "skip": 1}, {"theme": "new"}]}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------- an edge list of self-loops alone
def test_an_edge_list_of_self_loops_alone_is_refused(tmp_path):
    """Was: validate ok and a run without a single friendship: the graph drops 'u u' lines,
    so a file of them alone built an empty graph, and influence, word of mouth and talk were
    read by nothing (an empty file was already refused as holding no edges)."""
    edges = tmp_path / "edges.txt"
    edges.write_text("# everyone their own friend\n0 0\n1 1\n", encoding="utf-8")
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": "edge_list", "path": str(edges)}}
    refused_everywhere(
        tmp_path,
        doc,
        f"population.social.graph.path: {edges}: holds no edges between two users, only "
        "self-loops ('u u' lines, which are dropped)",
    )
    edges.write_text("0 0\n0 1\n", encoding="utf-8")  # one real friendship: fine
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ---------------------------------------------------------- a social graph nothing reads
GRAPH = {"type": "barabasi_albert", "m": 2}


def test_a_social_graph_nothing_reads_is_refused(tmp_path):
    """Was: validate ok and a run with the same logs as without population.social (as
    test_social's inert case shows): influence 0 and word_of_mouth 0, no talk and no carousel
    'friends' row, so the graph was built in every cell and read by nothing."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": GRAPH, "influence": 0, "word_of_mouth": 0}
    refused_everywhere(
        tmp_path,
        doc,
        "population.social: influence and word_of_mouth are both 0, users do not talk (no "
        "talk) and no arm has a carousel row of theme 'friends', so the graph would be read by "
        "nothing",
    )


@pytest.mark.parametrize(
    "change",
    [
        {"social": {"influence": 0.1}},
        {"social": {"talk": {}}},
        {"surface": {"type": "carousel", "cols": 3, "rows": [{"theme": "friends"}]}},
        {"sweep": {"population.social.word_of_mouth": [0, 0.2]}},
    ],
    ids=["influence", "talk", "friends_row", "sweep_point"],
)
def test_a_social_graph_something_reads_still_passes(tmp_path, change):
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": GRAPH, "influence": 0, "word_of_mouth": 0}
    doc["population"]["social"] |= change.pop("social", {})
    doc |= change
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


# ------------------------------------------------------ llm.ratings where nothing reads it
def test_llm_ratings_under_generated_answers_is_refused(tmp_path):
    """Was: validate ok and a run whose LLM users' ratings came from their JSON answers:
    llm.ratings chooses how scoring mode rates a click, so 'ratings: rule' (the rule model
    rates what the LLM chose) under 'decision: generate' was read by nothing."""
    doc = base_doc(tmp_path)
    doc["llm"] = {"decision": "generate", "ratings": "rule"}
    refused_everywhere(
        tmp_path,
        doc,
        "llm.ratings: 'rule' is read only with decision: score (a generated answer rates the "
        "item itself); remove it, or set decision: score",
    )
    doc["llm"] = {"decision": "score", "ratings": "rule"}
    code, stderr = cli("validate", str(write_scenario(tmp_path, doc)))
    assert code == 0, stderr


def test_option_bounds_are_named_by_the_option(tmp_path):
    """``run -r 100000`` was refused as ``replicates:`` of the scenario file, though the file
    said 3; ``ope --seed 2^64`` was taken where ``run --seed`` refuses it. Both options now
    carry the scenario's bounds, so the refusal names the option and nothing is written."""
    from tests.cli_in_process import assert_refused

    path = write_scenario(tmp_path, gate_doc(tmp_path))
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "-r", "100000", "-o", str(out)), "'--replicates'")
    assert not out.exists()
    assert_refused(*cli("ope", str(tmp_path), "--seed", str(2**64)), "'--seed'")


def test_a_learner_fitted_only_at_the_start_is_noted(tmp_path):
    """The default daily refit over a horizon of a day or less passes (smoke tests run so), but
    popularity then serves one untrained order all run; validate and run say which arm, in one
    note line, and say nothing of an arm that needs no refit."""
    doc = gate_doc(tmp_path, days=0.5)
    doc["arms"] = [
        {"name": "pop", "recommender": {"type": "popularity"}},
        {"name": "rnd", "recommender": {"type": "random"}},
    ]
    doc.pop("retrain", None)
    path = write_scenario(tmp_path, doc)
    code, stderr = cli("validate", str(path))[:2]
    notes = [line for line in stderr.splitlines() if "fitted once" in line]
    assert code == 0 and len(notes) == 1, stderr
    assert notes[0].startswith("note: arms[0] ('pop', popularity): fitted once"), notes
    assert "rnd" not in notes[0]
    doc["retrain"] = {"every_days": 0.25}  # refits within the horizon: nothing to say
    path = write_scenario(tmp_path, doc)
    code, stderr = cli("validate", str(path))[:2]
    assert code == 0 and "fitted once" not in stderr, stderr
