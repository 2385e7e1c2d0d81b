"""The reward registry: the names recipes write in `reward_funcs`, and the functions they build."""

from __future__ import annotations

from collections.abc import Callable

from real_trl.rewards.functions import digit_reward, make_math_reward, make_paper_math_reward, think_then_boxed_reward

_BUILDERS: dict[str, Callable[[bool], Callable]] = {
    "math_reward": lambda require_think: make_math_reward(require_think=require_think),
    "paper_math_reward": lambda require_think: make_paper_math_reward(require_think=require_think),
    "think_then_boxed_reward": lambda require_think: think_then_boxed_reward,
    "digit_reward": lambda require_think: digit_reward,
}
REWARD_NAMES: tuple[str, ...] = tuple(_BUILDERS)


def build_rewards(names: list[str], *, require_think: bool = True) -> list[Callable]:
    """The reward functions named in `names`, in order; `require_think` applies to the math rewards.

    Raises ValueError naming the unknown names and the registered ones."""
    unknown = [name for name in names if name not in _BUILDERS]
    if unknown:
        raise ValueError(f"unknown reward function(s) {', '.join(unknown)}: choose from {', '.join(REWARD_NAMES)}")
    return [_BUILDERS[name](require_think) for name in names]
