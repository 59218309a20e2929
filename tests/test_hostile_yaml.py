"""The scenario file as text and as YAML: what a user can write wrongly in it, refused by
validate and run alike in one line naming the field (see also test_hostile_scenarios.py)."""

from __future__ import annotations

import pytest

from tests.cli_in_process import assert_refused, cli
from tests.test_hostile_inputs import PATH_FIELDS, _set_path
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
