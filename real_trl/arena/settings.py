"""What an arena run depends on: the methods compared and `ArenaConfig`. No torch here, so the
scripts can build their command lines from these defaults before anything heavy loads."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from pathlib import Path

# Every method runs through REALTrainer; TRL's losses fall through to GRPOTrainer unchanged. The
# baselines take the clip / KL settings of their recipes in recipes/ (the paper's; see docs/method.md).
METHODS: dict[str, dict] = {
    "real": {"loss_type": "real"},
    "bce": {"loss_type": "bce"},
    "real_product": {"loss_type": "real_product"},
    "grpo": {"loss_type": "grpo", "epsilon": 0.2, "beta": 0.001},
    "dapo": {"loss_type": "dapo", "epsilon": 0.2, "epsilon_high": 0.28},
    "gspo": {"loss_type": "grpo", "importance_sampling_level": "sequence", "epsilon": 3e-4, "epsilon_high": 4e-4},
}

# The fields the supervised warm start depends on: changing any of them trains a new one.
_WARM_START_FIELDS = (
    "task_seed", "num_train", "num_heldout", "hidden_size", "num_layers", "num_heads", "model_seed",
    "sft_steps", "sft_batch_size", "sft_lr", "sft_unboxed", "sft_off_by_one",
)  # fmt: skip


@dataclass
class ArenaConfig:
    """Everything a run depends on. The warm start is cached under a hash of the task, model and SFT fields."""

    # task
    task_seed: int = 0
    num_train: int = 4000  # supervised warm-start problems
    num_rl_train: int = 20000  # RL prompts, drawn after the warm-start ones (mostly questions SFT never saw)
    num_heldout: int = 250  # 50 per level
    # model (real_trl.tiny)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    model_seed: int = 0
    # supervised warm start: tuned so RL starts from held-out greedy accuracy ~0.4, sampled Pass@1 ~0.2
    sft_steps: int = 500
    sft_batch_size: int = 64
    sft_lr: float = 2e-3
    # imperfect habits the warm start learns on purpose (see `real_trl.arena.sft.warm_start_target`)
    sft_unboxed: float = 0.3
    sft_off_by_one: float = 0.2
    # RL, identical for every method
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: tuple[int, ...] = (0, 1, 2)
    learning_rates: tuple[float, ...] = (3e-5, 1e-4)
    max_steps: int = 200
    prompts_per_step: int = 8
    num_generations: int = 8
    steps_per_generation: int = 4  # optimizer steps per generation batch, as in the paper
    temperature: float = 1.0
    max_completion_length: int = 12  # "\boxed{-12}" plus end of turn is 11 tokens
    tau: float = 0.5
    # evaluation
    eval_every: int = 25
    eval_samples: int = 4  # sampled completions per held-out problem for sampled Pass@1
    threshold_gain: float = 0.05  # "steps to threshold" = first eval with sampled Pass@1 >= start + this
    num_threads: int = 1  # one thread per run: steadier than two on a shared 2-core machine

    def cache_key(self) -> str:
        """A short hash of the warm-start fields: the name of the warm start's cache entry."""
        # version 2: the cached evaluation of the warm start records its habit shares
        payload = json.dumps({"version": 2, **{f: getattr(self, f) for f in _WARM_START_FIELDS}}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def demo_config(**overrides) -> ArenaConfig:
    """The `make demo` run: REAL alone, one seed, one learning rate."""
    return replace(ArenaConfig(methods=("real",), seeds=(0,), learning_rates=(3e-5,)), **overrides)


def default_cache_dir() -> Path:
    """Where warm starts are cached: `$REAL_TRL_CACHE/arena`, else `~/.cache/real-trl/arena`."""
    return Path(os.environ.get("REAL_TRL_CACHE", Path.home() / ".cache" / "real-trl")) / "arena"
