"""Prompt templates live here as files (Jinja2), so they can be read and edited as text."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import jinja2

PROMPTS = Path(__file__).resolve().parent


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(template: str, **values) -> str:
    return _environment().get_template(template).render(**values)


def text(name: str) -> str:
    return (PROMPTS / name).read_text(encoding="utf-8").strip()
