"""REAL (Rewards as Labels) on Hugging Face TRL."""

from real_trl.config import REAL_LOSS_TYPES, REALConfig
from real_trl.trainer import REALTrainer

__all__ = ["REALConfig", "REALTrainer", "REAL_LOSS_TYPES"]
__version__ = "0.1.0"
