"""The base of every scenario section: one place for what all of them must refuse.

Unknown keys are errors (a typo never passes silently), defaults are validated too, "nan" and
"inf" never slip past a bound, and each field's docstring becomes its description in the JSON
Schema (`recarena schema`, docs/reference/scenario.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, use_attribute_docstrings=True
    )
