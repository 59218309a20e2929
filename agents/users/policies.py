"""User policies by name: ``population.policy`` picks the base policy every user answers with.

The built-in ``rule`` policy is the vectorised choice model (agents/users/rule_user.py). A
plug-in policy (an installed ``recarena.user_policies`` entry point, or
``package.module:Class``) is built exactly like it, as
``Class(population_cfg, user_state, catalog, topic_successor, social=social)``, and must honour
:class:`recarena.simulator.core.contracts.UserPolicy`. LLM panels (``population.model: mixed``
or ``llm``) wrap whichever base policy is chosen, as they wrap the rule policy.
"""

from __future__ import annotations

from typing import Any

from recarena.simulator.core.registry import Registry, check_buildable, check_synchronous


def _check_user_policy(cls: Any, name: str) -> None:
    for method in ("respond", "utility"):
        if not callable(getattr(cls, method, None)):
            raise LookupError(f"{name!r} is not a user policy: it has no {method}() method")
    check_buildable(
        cls,
        name,
        "user policy",
        "Class(population_cfg, user_state, catalog, topic_successor, social=...)",
        4,
        ("social",),
    )
    check_synchronous(cls, name, "user policy", ("respond", "utility"))


REGISTRY = Registry(
    "user_policy",
    {
        "rule": (
            "recarena.agents.users.rule_user:RuleUserPolicy",
            "vectorised choice model: position-based attention, MNL with a no-click option",
        ),
    },
    _check_user_policy,
)
