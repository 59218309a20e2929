"""The base of every scenario section: one place for what all of them must refuse.

Unknown keys are errors (a typo never passes silently), defaults are validated too, "nan" and
"inf" never slip past a bound, and each field's docstring becomes its description in the JSON
Schema (`recarena schema`, docs/reference/scenario.md).
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


INT64_MAX = 2**63 - 1
"""The largest count the engine holds (numpy int64): larger whole numbers passed the schema and
failed a cell (``sbm`` blocks of 10^30: 'high is out of bounds for int64')."""


@cache
def _int_ceilings(section: type[BaseModel]) -> dict[str, float]:
    """Each field's own upper bound from the JSON Schema (``maximum``, also inside ``anyOf``),
    where it has one: such a field (``seed``, up to 2^64-1) is bounded by it, not by int64."""
    ceilings: dict[str, float] = {}
    for name, prop in section.model_json_schema().get("properties", {}).items():
        bounds = [part.get("maximum") for part in (prop, *prop.get("anyOf", ()))]
        found = [b for b in bounds if isinstance(b, int | float)]
        if found:
            ceilings[name] = max(found)
    return ceilings


class Section(BaseModel):
    model_config = ConfigDict(
        extra="forbid", validate_default=True, allow_inf_nan=False, use_attribute_docstrings=True
    )

    @model_validator(mode="after")
    def _whole_numbers_fit_64_bits(self) -> Any:
        """A whole number with no bound of its own is refused past the int64 range."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if type(value) is int and abs(value) > INT64_MAX:
                if name in _int_ceilings(type(self)):
                    continue
                raise ValueError(
                    f"@{name}: {value:.3g} is past the largest whole number the simulation "
                    f"holds ({INT64_MAX:,}, 2^63-1)"
                )
        return self
