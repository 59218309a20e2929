"""The base of every scenario section: one place for what all of them must refuse.

Unknown keys are errors (a typo never passes silently), defaults are validated too, "nan" and
"inf" never slip past a bound, and each field's docstring becomes its description in the JSON
Schema (`recarena schema`, docs/reference/scenario.md).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

MAX_MAGNITUDE = 1e6
"""No rate, scale, weight or cost of a scenario is meaningful beyond this: a value of 1e300
passed the schema and ended in overflow warnings and NaN choice probabilities mid-run."""
PositiveFloat = Annotated[float, Field(gt=0, le=MAX_MAGNITUDE)]
NonNegFloat = Annotated[float, Field(ge=0, le=MAX_MAGNITUDE)]
SignedFloat = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
Probability = Annotated[float, Field(ge=0, le=1)]
Temperature = Annotated[float, Field(ge=1e-3, le=MAX_MAGNITUDE)]
"""A softmax temperature: utilities are divided by it, so below ~1e-3 the division overflows
and choice probabilities become NaN."""
Exponent = Annotated[float, Field(ge=0, le=50)]
"""A power-law exponent over ranks (k ≤ 1,024): beyond ~50, rank**exponent overflows."""


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, use_attribute_docstrings=True
    )
