"""REAL (Rewards as Labels) on Hugging Face TRL.

`REALConfig` and `REALTrainer` load on first use, so that scripts answer `--help` before torch loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["REAL_LOSS_TYPES", "REALConfig", "REALTrainer"]
__version__ = "0.1.0"

if TYPE_CHECKING:
    from real_trl.config import REALConfig
    from real_trl.losses import REAL_LOSS_TYPES
    from real_trl.trainer import REALTrainer


def __getattr__(name: str):
    if name == "REALConfig":
        from real_trl.config import REALConfig

        return REALConfig
    if name == "REAL_LOSS_TYPES":
        from real_trl.losses import REAL_LOSS_TYPES

        return REAL_LOSS_TYPES
    if name == "REALTrainer":
        from real_trl.trainer import REALTrainer

        return REALTrainer
    raise AttributeError(f"module 'real_trl' has no attribute {name!r}")
