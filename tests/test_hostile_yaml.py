"""The scenario file as text and as YAML: what a user can write wrongly in it, refused by
validate and run alike in one line naming the field (see also test_hostile_scenarios.py)."""

from __future__ import annotations

import pytest
import yaml

from recarena.simulator.core.yaml_safe import read_yaml_file
from tests.cli_in_process import assert_refused, cli
from tests.test_hostile_inputs import LLM_USERS, PATH_FIELDS, _set_path
from tests.test_validate_gate import base_doc, refused_everywhere

# ------------------------------------------------------------- paths that are not what was meant
WRITTEN_PATHS = [
    (" ", "an empty path"),
    ("\t", "an empty path"),
    ("{tmp}/runs\n", r"a path cannot contain a control character ('\n' at character"),
    ("{tmp}/a\rb", r"a path cannot contain a control character ('\r' at character"),
    (" {tmp}/a", "begins or ends with whitespace"),
    ("{tmp}/a ", "begins or ends with whitespace"),
    ("{tmp}/a\u00a0", "begins or ends with whitespace"),
]


@pytest.mark.parametrize("field", PATH_FIELDS)
@pytest.mark.parametrize(
    ("value", "fragment"),
    WRITTEN_PATHS,
    ids=["space", "tab", "newline", "carriage_return", "leading", "trailing", "nbsp"],
)
def test_a_path_written_blank_padded_or_with_a_control_character(tmp_path, field, value, fragment):
    """Was: output.dir ' ', a tab, '<dir>/runs\\n' (a `|` block scalar) or ' <dir>' passed
    validate and run made a folder of that name, the newline shown as a space in its messages;
    a file path like that was 'file not found: ' followed by nothing to see."""
    doc = base_doc(tmp_path)
    _set_path(doc, field, value.format(tmp=tmp_path))
    refused_everywhere(tmp_path, doc, fragment)
    assert_refused(*cli("validate", str(tmp_path / "s.yaml")), f"s.yaml: {field}: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]


@pytest.mark.parametrize("field", ["population.path", "llm.model_path"])
def test_an_empty_path_is_not_taken_for_no_path(tmp_path, field):
    """Was: population.path '' under a generated population passed (a path there is refused:
    "set 'calibrated' to use path/dataset"), and llm.model_path '' passed and the run started
    the default model, as if the key were absent."""
    doc = base_doc(tmp_path)
    _set_path(doc, field, "")
    if field == "population.path":
        doc["population"] = {"users": 20, "path": ""}
    refused_everywhere(tmp_path, doc, f"{field}: an empty path")


# ------------------------------------------------------------------------- the LLM endpoint
@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("model", "", "llm.model: an empty model name"),
        ("model", " ", "llm.model: an empty model name"),
        ("model", "m\n", r"llm.model: 'm\n' holds whitespace at an end or a control character"),
        ("model", " m", "llm.model: ' m' holds whitespace at an end"),
        ("api_key_env", "", "llm.api_key_env: must be the name of an environment variable"),
        ("api_key_env", "sk-proj-0123456789", "llm.api_key_env: must be the name of"),
        ("api_key_env", "$OPENAI_API_KEY", "llm.api_key_env: must be the name of"),
        ("api_key_env", "1KEY", "llm.api_key_env: must be the name of"),
    ],
    ids=["model_empty", "model_blank", "model_newline", "model_padded"]
    + ["key_empty", "key_itself", "key_dollar", "key_digit"],
)
def test_llm_model_and_key_variable_that_name_nothing(tmp_path, key, value, fragment):
    """Was: llm.model '' passed as no model (a local run served the default one instead);
    llm.api_key_env '' or a pasted key passed, was looked up, found unset and the endpoint
    called with no key. A key pasted there is not repeated in the error line."""
    doc = base_doc(tmp_path)
    doc["population"]["model"] = "llm"
    doc["llm"] = {**LLM_USERS, "model": "some-model", key: value}
    refused_everywhere(tmp_path, doc, fragment)
    if key == "api_key_env" and value:
        code, stderr = cli("validate", str(tmp_path / "s.yaml"))
        assert value not in stderr


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--llm-api-key-env", "", "--llm-api-key-env: must be the name of an environment"),
        ("--llm-api-key-env", "sk-proj-0123456789", "--llm-api-key-env: must be the name of"),
        ("--llm-model", " m", "--llm-model: ' m' holds whitespace at an end"),
    ],
    ids=["key_empty", "key_itself", "model_padded"],
)
def test_fidelity_llm_options_checked_as_the_scenario_section_is(tmp_path, option, value, fragment):
    """fidelity's panel is a scenario's llm section: its options get the same checks, before
    any work (--llm-api-key-env '' was taken as OPENAI_API_KEY)."""
    args = ["--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m", option, value]
    out = tmp_path / "fid"
    assert_refused(*cli("fidelity", "-o", str(out), "--llm", *args), fragment)
    assert not out.exists()


# ------------------------------------------------------------------ whole numbers past 64 bits
@pytest.mark.parametrize(
    ("section", "value", "field"),
    [
        ("social", {"graph": {"type": "sbm", "blocks": 10**30}}, "social.graph.blocks"),
        ("social", {"graph": {"type": "sbm", "blocks": 2**63}}, "social.graph.blocks"),
    ],
    ids=["blocks_1e30", "blocks_2_63"],
)
def test_a_whole_number_past_64_bits_is_refused(tmp_path, section, value, field):
    """Was: validate passed sbm blocks of 10^30 and the run failed its cell ('ValueError: high
    is out of bounds for int64', exit 1): a field with no upper bound of its own took any
    integer YAML can write."""
    doc = base_doc(tmp_path)
    doc["population"][section] = value
    refused_everywhere(tmp_path, doc, f"population.{field}: ")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert "past the largest whole number the simulation holds" in stderr


def test_a_whole_number_with_a_bound_of_its_own_keeps_it(tmp_path):
    """seed has its own bound (2^64-1, past int64) and keeps it; 2^63-1 passes elsewhere."""
    doc = base_doc(tmp_path)
    doc["seed"] = 2**64 - 1
    # a creator leaves after 2^63-1 low periods: legal, if never reached (sbm blocks were the
    # example here until more blocks than users was refused)
    doc.setdefault("creators", {}).update(
        min_exposure=1, leave_after_periods=2**63 - 1, period_days=0.1
    )
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert code == 0, stderr


# ------------------------------------------------------------ settings their type never reads
@pytest.mark.parametrize(
    ("graph", "fragment"),
    [
        ({"type": "sbm", "m": 5}, "graph.m: type 'sbm' does not read it (only barabasi_albert)"),
        ({"type": "barabasi_albert", "homophily": 0.5}, "graph.homophily: type 'barabasi_albert'"),
        ({"type": "watts_strogatz", "blocks": 4}, "graph.blocks: type 'watts_strogatz'"),
        ({"type": "sbm", "k": 4, "p": 0.3}, "graph.k: type 'sbm' does not read it"),
    ],
    ids=["m_under_sbm", "homophily_under_ba", "blocks_under_ws", "k_under_sbm"],
)
def test_a_graph_parameter_its_type_does_not_read_is_refused(tmp_path, graph, fragment):
    """Was: passed, and the graph was drawn as if the parameter were not there (as the path of
    a drawn graph was before it was refused)."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": graph}
    refused_everywhere(tmp_path, doc, f"population.social.{fragment}")


def test_a_graph_parameter_at_its_default_is_what_a_resolved_scenario_writes(tmp_path):
    """A run's resolved scenario writes every field, so defaults under another type pass: it
    is read back by --resume and by a sweep's points."""
    doc = base_doc(tmp_path)
    doc["population"]["social"] = {"graph": {"type": "sbm", "m": 3, "k": 6, "p": 0.1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    code, stderr = cli("validate", str(tmp_path / "s.yaml"))
    assert code == 0, stderr


@pytest.mark.parametrize("source", [None, "template", "data"])
def test_personas_written_under_a_source_that_does_not_read_them(tmp_path, source):
    """Was: personas written as items without `source: yaml` (the default is template) passed
    validate and the panel used template personas instead, without a word."""
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating\n1,1,4.0\n", encoding="utf-8")
    personas: dict = {"items": [{"text": "a grumpy film critic"}]}
    if source is not None:
        personas["source"] = source
    if source == "data":
        personas["path"] = str(tmp_path / "ratings.csv")
    doc = base_doc(tmp_path)
    doc["population"].update(model="mixed", llm_panel={"users": 2, "personas": personas})
    doc["llm"] = LLM_USERS
    refused_everywhere(
        tmp_path,
        doc,
        f"population.llm_panel.personas.items: only source 'yaml' reads items; source "
        f"'{source or 'template'}' makes its own personas",
    )


# --------------------------------------------------------------------------------- YAML tags
def _with_users(tmp_path, written: str):
    doc = base_doc(tmp_path)
    doc["population"]["users"] = 30
    text = yaml.safe_dump(doc, sort_keys=False).replace("users: 30", f"users: {written}")
    (tmp_path / "s.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "s.yaml"


@pytest.mark.parametrize(
    ("written", "fragment"),
    [
        ("!!bool maybe", "!!bool takes true or false (got 'maybe')"),
        ("!!bool 2", "!!bool takes true or false (got '2')"),
        ("!!float ''", "!!float takes a number (.inf and .nan too) (got '')"),
        ("!!float 1:30.5", "!!float takes a number"),
        ("!!int 1_000", "!!int takes a whole number"),
        ("!!null x", "!!null takes null"),
        ("!!timestamp abc", "tag 'tag:yaml.org,2002:timestamp'"),
        ("!!binary MzA=", "tag 'tag:yaml.org,2002:binary'"),
        ("!!set {a: null}", "tag 'tag:yaml.org,2002:set'"),
        ("!!omap [a: 1]", "tag 'tag:yaml.org,2002:omap'"),
        ("!!pairs [a: 1]", "tag 'tag:yaml.org,2002:pairs'"),
    ],
)
def test_a_yaml_tag_that_does_not_fit_its_value_or_a_scenario(tmp_path, written, fragment):
    """Was: !!bool maybe, !!float '' and !!timestamp abc were internal errors (KeyError,
    IndexError, AttributeError; exit 1); !!int 1_000 and !!float 1:30.5 were read by YAML 1.1
    (1000, 90.5) where a plain value is read by 1.2; !!binary bytes passed as text."""
    path = _with_users(tmp_path, written)
    assert_refused(*cli("validate", str(path)), "s.yaml: invalid YAML at line")
    assert_refused(*cli("validate", str(path)), fragment)
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out), "-q"), fragment)
    assert not out.exists()


@pytest.mark.parametrize(
    ("written", "users"), [("!!int '30'", 30), ("!!float 30", 30), ("!!int 0x1E", 30)]
)
def test_a_yaml_tag_that_fits_its_value_is_read(tmp_path, written, users):
    assert read_yaml_file(_with_users(tmp_path, written))["population"]["users"] == users


# -------------------------------------------------------------------------------- sweeps
def test_a_sweep_over_what_nothing_simulates_is_refused(tmp_path):
    """Was: sweep: {description: [a, b]} passed and ran every cell twice under two point
    numbers, the same simulation each time."""
    doc = base_doc(tmp_path)
    doc["sweep"] = {"description": ["first", "second"]}
    refused_everywhere(tmp_path, doc, "sweep.description: 'description' changes nothing")


# ------------------------------------------------------------------------ the file's encoding
@pytest.mark.parametrize(
    ("encode", "fragment"),
    [
        (lambda text: text.encode("utf-16"), "the file is UTF-16, not UTF-8 text"),
        (lambda text: text.encode("utf-32"), "the file is UTF-32, not UTF-8 text"),
        (lambda text: text.encode("utf-16-le"), "the file is UTF-16 or binary"),
        (
            lambda text: text.replace("name: gate", "name: gate\ndescription: a\x07b").encode(),
            "invalid YAML at line 2, column 15: the control character '\\x07' is not allowed",
        ),
        (
            lambda text: text.replace("name: gate", "name: gate\ndescription: a\x00b").encode(),
            "invalid YAML at line 2, column 15: the control character '\\x00' is not allowed",
        ),
    ],
    ids=["utf16_bom", "utf32_bom", "utf16_no_bom", "bell", "nul"],
)
def test_a_scenario_file_in_another_encoding_or_with_a_control_character(
    tmp_path, encode, fragment
):
    """Was: 'not UTF-8 text (byte 0)' for UTF-16 and UTF-32, and for a control character (or
    UTF-16 without its mark) 'unacceptable character #x0007: special characters are not
    allowed in "<unicode string>", position 305', counted in characters from the start."""
    text = yaml.safe_dump(base_doc(tmp_path), sort_keys=False)
    assert text.startswith("name: gate\n")
    path = tmp_path / "s.yaml"
    path.write_bytes(encode(text))
    assert_refused(*cli("validate", str(path)), f"s.yaml: {fragment}")
    out = tmp_path / "out"
    assert_refused(*cli("run", str(path), "--executor", "local", "-o", str(out)), fragment)
    assert not out.exists()
