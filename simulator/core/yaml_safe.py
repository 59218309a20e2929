"""Reading a scenario file that may be hostile: bounded in size, aliases and nesting.

``yaml.safe_load`` is safe against code execution, not against resource exhaustion or silent
surprises:

* an alias bomb ("billion laughs") composes into a tiny graph of shared nodes, but anything that
  walks the document (pydantic, ``copy.deepcopy`` in a sweep) expands it, which takes minutes and
  gigabytes. The expanded size is computed on the composed *node graph* (shared nodes counted
  once per reference, memoised) and refused before any Python object is built;
* a key written twice silently keeps the last value; here it is an error naming both lines;
* ``.nan`` / ``.inf`` pass every ``gt``/``le`` bound pydantic checks (comparisons with NaN are
  false) and then poison a simulation; they are refused with their path wherever they appear,
  including free-form recommender params and sweep lists;
* plain values are typed by the YAML 1.2 core schema, not PyYAML's YAML 1.1 one: ``no``, ``on``,
  ``yes``, ``off`` are text (a recommender or persona trait named ``no`` stays ``"no"``), as are
  ``1:20`` (1.1: 80), ``2024-01-01`` (1.1: a date) and ``0b101``; ``0o17`` and ``1e3`` are
  numbers. An integer written with a leading zero (``062``: 50 in YAML 1.1, 62 in 1.2) is
  refused with its path, since the two readings differ and neither is clearly meant.

Every failure is one :class:`RecarenaError` line naming the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

from recarena.simulator.core.errors import RecarenaError, first_line
from recarena.simulator.core.machine import env_limit
from recarena.simulator.core.paths import path_problem

MAX_FILE_BYTES = 1_000_000
"""A scenario is a few kilobytes; a megabyte leaves room for long persona lists
(``RECARENA_MAX_SCENARIO_BYTES`` changes it)."""
MAX_ALIASES = 1_000
"""Alias references (``*name``) in one file; real scenarios use a handful."""
MAX_NODES = 200_000
"""Nodes of the document once every alias is expanded (what pydantic would walk)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")

# The YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution), plus the merge
# key `<<`, which scenarios use to share a section. Anything else written plainly is text.
_CORE_12: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    (_INT_TAG, re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+.0123456789",
    ),
    (_MERGE_TAG, re.compile(r"^<<$"), "<"),
]


def _core_resolvers() -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    """PyYAML's table of implicit resolvers (first character -> candidates) for ``_CORE_12``."""
    table: dict[str, list[tuple[str, re.Pattern[str]]]] = {"": [_CORE_12[0][:2]]}
    for tag, pattern, first in _CORE_12:
        for char in first:
            table.setdefault(char, []).append((tag, pattern))
    return table


def _construct_int(loader: yaml.SafeLoader, node: Node) -> int:
    text = _core_text(loader, node, _INT_TAG)
    if text.startswith(("0o", "0x")):
        return int(text[2:], 8 if text[1] == "o" else 16)
    return int(text)


_CORE_PATTERNS = {tag: pattern for tag, pattern, _ in _CORE_12}
_TAG_NAMES = {
    "tag:yaml.org,2002:null": "!!null takes null, ~ or nothing",
    "tag:yaml.org,2002:bool": "!!bool takes true or false",
    _INT_TAG: "!!int takes a whole number (0o17 and 0x1F too)",
    "tag:yaml.org,2002:float": "!!float takes a number (.inf and .nan too)",
}


def _core_text(loader: yaml.SafeLoader, node: Node, tag: str) -> str:
    """A scalar's text, checked against the YAML 1.2 core form of ``tag``. A plain value only
    gets the tag when it has that form; one written with the tag (``!!bool maybe``, ``!!float
    ''``) reached PyYAML's YAML 1.1 constructors, which raised KeyError, IndexError or
    AttributeError (an internal error) or read ``!!int 1_000`` and ``!!float 1:30`` by 1.1."""
    text = str(loader.construct_scalar(node))  # type: ignore[arg-type]
    if not _CORE_PATTERNS[tag].fullmatch(text):
        raise yaml.constructor.ConstructorError(
            None, None, f"{_TAG_NAMES[tag]} (got {_short(text)})", node.start_mark
        )
    return text


def _construct_null(loader: yaml.SafeLoader, node: Node) -> None:
    _core_text(loader, node, "tag:yaml.org,2002:null")


def _construct_bool(loader: yaml.SafeLoader, node: Node) -> bool:
    return _core_text(loader, node, "tag:yaml.org,2002:bool").lower() == "true"


def _construct_float(loader: yaml.SafeLoader, node: Node) -> float:
    text = _core_text(loader, node, "tag:yaml.org,2002:float").lower()
    if text.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    return math.nan if text == ".nan" else float(text)


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases while composing, refuses duplicate mapping keys and types
    plain values by the YAML 1.2 core schema."""

    yaml_implicit_resolvers = _core_resolvers()

    def __init__(self, stream: str, source: str) -> None:
        super().__init__(stream)
        self.source = source
        self.aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise RecarenaError(
                    f"{self.source}: more than {MAX_ALIASES} YAML aliases (line "
                    f"{mark.line + 1}); refusing a possible alias bomb"
                )
        return super().compose_node(parent, index)  # type: ignore[misc]

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:  # type: ignore[override]
        if isinstance(node, MappingNode):
            first_line: dict[Any, str] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *base` then overriding a merged key is intended
                key = self.construct_object(key_node, deep=True)
                mark = key_node.start_mark
                try:
                    earlier = first_line.get(key)
                except TypeError:  # unhashable key: the base constructor reports it
                    continue
                if earlier is not None:
                    here = f"line {mark.line + 1}"
                    if earlier.startswith(f"{here},"):  # both in one flow mapping: add columns
                        here += f", column {mark.column + 1}"
                    else:
                        earlier = earlier.split(",")[0]
                    raise RecarenaError(
                        f"{self.source}: duplicate key {_short(key)} at {here} "
                        f"(first at {earlier}); write each key once"
                    )
                first_line[key] = f"line {mark.line + 1}, column {mark.column + 1}"
        return super().construct_mapping(node, deep)  # type: ignore[arg-type]


# A scenario is JSON-shaped: mappings, sequences, text, numbers, yes/no and null. The other
# types PyYAML builds (!!binary bytes, !!timestamp dates, !!set, !!omap, !!pairs) are refused as
# unknown tags (!!binary bytes passed as text where a name or path belongs; !!timestamp abc was
# an internal AttributeError).
_BoundedLoader.yaml_constructors = {
    tag: constructor
    for tag, constructor in yaml.SafeLoader.yaml_constructors.items()
    if tag is None
    or tag.removeprefix("tag:yaml.org,2002:") in ("str", "seq", "map", "null", "bool", "int")
    or tag == "tag:yaml.org,2002:float"
}
_BoundedLoader.add_constructor("tag:yaml.org,2002:null", _construct_null)
_BoundedLoader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)
_BoundedLoader.add_constructor(_INT_TAG, _construct_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _construct_float)


class _PortableDumper(yaml.SafeDumper):
    """SafeDumper that quotes a string any YAML reader could take for something else: those the
    YAML 1.1 schema types (``no``, ``062``, PyYAML's own reading) and those the 1.2 core schema
    types (``0o17``, ``1e3``, this loader's reading)."""


for _tag, _pattern, _first in _CORE_12:
    _PortableDumper.add_implicit_resolver(_tag, _pattern, list(_first))  # type: ignore[no-untyped-call]


def dump_yaml(data: Any) -> str:
    """``data`` as block YAML, keys in their order, read back the same by this loader."""
    return yaml.dump(data, Dumper=_PortableDumper, sort_keys=False)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def expanded_size(root: Node, limit: int = MAX_NODES) -> int:
    """Nodes of the document with every alias expanded, capped at ``limit + 1``.

    Iterative (deep nesting must not hit Python's recursion limit) and memoised by node, so a
    bomb of 10 levels x 10 references costs 10 visits, not 10^10. A node that contains itself
    (``&a [*a]``) is infinite and refused.
    """
    memo: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            total = 1 + sum(memo[id(child)] for child in _children(node))
            memo[key] = min(total, limit + 1)
            open_nodes.discard(key)
            continue
        if key in memo:
            continue
        if key in open_nodes:
            raise RecursionError("a YAML node contains itself through an alias")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node))
    return memo[id(root)]


def leading_zero_path(root: Node) -> tuple[str, str] | None:
    """The YAML path and text of the first plain integer written with a leading zero (``062``),
    keys included; each node is visited once, however many aliases refer to it."""
    seen: set[int] = set()
    stack: list[tuple[str, Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, SequenceNode):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(node.value)]))
        elif isinstance(node, MappingNode):
            pairs: list[tuple[str, Node]] = []
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else "<key>"
                inner = f"{path}.{name}" if path else str(name)
                pairs += [(f"{path}.<key>" if path else "<key>", key), (inner, value)]
            stack.extend(reversed(pairs))
        elif (
            node.tag == _INT_TAG
            and isinstance(node, yaml.ScalarNode)
            and node.style is None
            and _LEADING_ZERO.fullmatch(node.value)
        ):
            return path or "<document>", node.value
    return None


def load_yaml(text: str, source: str) -> Any:
    """Parse one YAML document with the limits above; errors are one line naming ``source``."""
    loader = _BoundedLoader(text, source)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise RecarenaError(f"{source}: YAML nested too deeply") from None
        if node is None:
            return None
        try:
            size = expanded_size(node)
        except RecursionError:
            raise RecarenaError(
                f"{source}: a YAML anchor refers to itself (recursive alias)"
            ) from None
        if size > MAX_NODES:
            raise RecarenaError(
                f"{source}: YAML expands to more than {MAX_NODES:,} values through aliases "
                f"({loader.aliases} aliases); refusing a possible alias bomb"
            )
        octal = leading_zero_path(node)
        if octal is not None:
            path, written = octal
            digits = written.lstrip("+-")
            sign = "-" if written.startswith("-") else ""
            octal_form = "" if written[0] in "+-" else f", 0o{digits.lstrip('0') or '0'} for octal"
            raise RecarenaError(
                f"{source}: {path}: {written} has a leading zero, which YAML 1.1 reads as octal "
                f"and YAML 1.2 as decimal; write {sign}{int(digits)}{octal_form} (or quote it "
                "for text)"
            )
        try:
            data = loader.construct_document(node)
        except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
            message = first_line(exc)
            if "int_max_str_digits" in message:
                message = "an integer with more than 4,300 digits"
            raise RecarenaError(f"{source}: invalid YAML value: {message}") from None
    finally:
        loader.dispose()
    return data


def _hint(problem: str) -> str:
    """What usually causes a parser's problem, in a newcomer's words (the parser speaks of
    block ends and tokens)."""
    if "'\\t'" in problem:  # the parser names a tab as '\t'
        return " (indent with spaces; YAML does not allow tabs)"
    if "block end" in problem or "block mapping" in problem or "mapping values" in problem:
        return (
            " (check the indentation of this line and the one above: the keys of one section "
            "line up; a value holding ': ' needs quotes)"
        )
    for closing in "]}":
        if f"expected ',' or '{closing}'" in problem:
            return f" (a '{'[' if closing == ']' else '{'}' above is not closed)"
    return ""


def _scalars(data: Any) -> Iterator[Any]:
    """Every scalar of a parsed document, keys included, with no path built. The walks below
    build a path string for every node, which made them most of a sweep's validation (~10k
    points, each walked several times); they now walk only a document this scan finds a
    suspect in."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value)
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)
        else:
            yield value


def non_finite_path(data: Any, prefix: str = "") -> tuple[str, float] | None:
    """The YAML path and value of the first NaN or infinity in a parsed document, if any."""
    if not any(isinstance(v, float) and not math.isfinite(v) for v in _scalars(data)):
        return None
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, float):
            if not math.isfinite(value):
                return path or "<document>", value
        elif isinstance(value, dict):
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None


def check_finite(data: Any, source: str = "", prefix: str = "") -> None:
    """Refuse NaN and infinities anywhere in ``data`` (found at YAML path ``prefix``)."""
    found = non_finite_path(data, prefix)
    if found is not None:
        path, value = found
        where = f"{source}: {path}" if source else path
        raise RecarenaError(f"{where}: must be a finite number (got {value})")


def surrogate_path(data: Any, prefix: str = "") -> tuple[str, str] | None:
    """The YAML path and text of the first string (value or key) holding a lone surrogate
    (U+D800-U+DFFF, which YAML's ``"\\uD800"`` escape makes): not Unicode text, so it cannot be
    written as UTF-8."""
    if all(not isinstance(v, str) or v.isascii() for v in _scalars(data)):
        return None
    stack: list[tuple[str, Any]] = [(prefix, data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not value.isascii() and any("\ud800" <= ch <= "\udfff" for ch in value):
                return path or "<document>", value
        elif isinstance(value, dict):
            for key in value:
                if isinstance(key, str):
                    stack.append((f"{path}.<key>" if path else "<key>", key))
            items = [(f"{path}.{k}" if path else str(k), v) for k, v in value.items()]
            stack.extend(reversed(items))
        elif isinstance(value, list | tuple):
            stack.extend(reversed([(f"{path}[{i}]", v) for i, v in enumerate(value)]))
    return None


def check_text(data: Any, source: str = "") -> None:
    """Refuse strings that are not Unicode text (see :func:`surrogate_path`). They passed
    validate and the run, and ``report`` then failed writing the page (an internal error)."""
    found = surrogate_path(data)
    if found is not None:
        path, value = found
        where = f"{source}: {path}" if source else path
        raise RecarenaError(
            f"{where}: not Unicode text (a lone surrogate escape such as \\uD800 in "
            f"'{value.encode('utf-8', 'backslashreplace').decode()[:40]}')"
        )


def bool_as_number_path(raw: Any, validated: Any, prefix: str = "") -> str | None:
    """The YAML path of the first yes/no value that validation turned into a number, if any.

    YAML reads ``true``/``false`` as booleans (and YAML 1.1 ``yes``/``on`` too, which this
    loader reads as text) and pydantic's lax mode reads those as 1 where an int or float is
    expected, so ``seed: true`` used to run as 1. ``raw`` is
    the document as parsed and ``validated`` the model's dump; only paths present in both count.
    """
    if not any(isinstance(v, bool) for v in _scalars(raw)):
        return None
    stack: list[tuple[str, Any, Any]] = [(prefix, raw, validated)]
    while stack:
        path, before, after = stack.pop()
        if isinstance(before, bool):
            if isinstance(after, int | float) and not isinstance(after, bool):
                return path or "<document>"
        elif isinstance(before, dict) and isinstance(after, dict):
            for key in reversed(list(before)):
                if key in after:
                    stack.append((f"{path}.{key}" if path else str(key), before[key], after[key]))
        elif isinstance(before, list | tuple) and isinstance(after, list | tuple):
            pairs = list(zip(before, after, strict=False))
            stack.extend(reversed([(f"{path}[{i}]", b, a) for i, (b, a) in enumerate(pairs)]))
    return None


def dump_by_name_and_alias(model: Any) -> dict[str, Any]:
    """A params model's values keyed both ways a YAML file may write them: by field name and
    by alias (mmr's ``lambda`` is the alias of its field ``lambda_``). :func:`bool_as_number_path`
    compares only keys present in both the document and this dump, so a dump keyed by field
    name alone let ``lambda: true`` run as 1.0."""
    return {**model.model_dump(), **model.model_dump(by_alias=True)}


def check_no_bool_numbers(raw: Any, validated: Any, source: str = "", prefix: str = "") -> None:
    """Refuse a yes/no value where a number is expected (see :func:`bool_as_number_path`)."""
    path = bool_as_number_path(raw, validated, prefix)
    if path is not None:
        where = f"{source}: {path}" if source else path
        raise RecarenaError(f"{where}: expected a number, got a yes/no value")


_WIDE_MARKS = [
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
]
"""Byte-order marks of the wide encodings some editors save 'Unicode text' in."""


def read_yaml_file(path: str | Path, max_bytes: int | None = None) -> Any:
    """Read and parse a YAML file no larger than ``max_bytes`` (default MAX_FILE_BYTES, or
    RECARENA_MAX_SCENARIO_BYTES)."""
    path = Path(path)
    cap = (
        env_limit("RECARENA_MAX_SCENARIO_BYTES", MAX_FILE_BYTES) if max_bytes is None else max_bytes
    )
    problem = path_problem(str(path))
    if problem is not None:  # exists() raises on an over-long name
        raise RecarenaError(f"scenario file {str(path)!r}: {problem}")
    if not path.exists():
        if path.is_symlink():  # exists() follows the link: a loop or a dangling target
            raise RecarenaError(
                f"scenario file {path}: a symbolic link that leads to no file (a loop, or its "
                "target is missing)"
            )
        raise RecarenaError(f"scenario file not found: {path}")
    if not path.is_file():
        raise RecarenaError(f"scenario path is not a file: {path}")
    try:
        with path.open("rb") as handle:
            raw = handle.read(cap + 1)
    except OSError as exc:
        raise RecarenaError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) > cap:
        raise RecarenaError(f"{path}: larger than {cap:,} bytes; a scenario is a small file")
    wide = next((name for mark, name in _WIDE_MARKS if raw.startswith(mark)), None)
    head = raw[:4096]
    if wide is None and head.count(0) * 4 >= len(head) > 0:  # one NUL is a control character
        wide = "UTF-16 or binary (it holds NUL bytes)"
    if wide is not None:  # was 'not UTF-8 text (byte 0)', or a NUL 'at position 1'
        raise RecarenaError(f"{path}: the file is {wide}, not UTF-8 text; save it as UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecarenaError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        return load_yaml(text, str(path))
    except yaml.reader.ReaderError as exc:  # a control character: was its offset in
        # "<unicode string>", counted in characters
        where = text[: exc.position]
        line, column = where.count("\n") + 1, len(where) - where.rfind("\n")
        raise RecarenaError(
            f"{path}: invalid YAML at line {line}, column {column}: the control character "
            f"{chr(exc.character)!r} is not allowed in YAML (write it as an escape inside "
            'double quotes, e.g. "\\t")'
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = " ".join(str(exc.problem).split())
        raise RecarenaError(f"{path}: invalid YAML at {where}: {problem}{_hint(problem)}") from None
    except yaml.YAMLError as exc:
        raise RecarenaError(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
