"""Checks a launch can pass before anything heavy loads: optional engines are installed, a GPU is visible.

Each check returns a one-line problem (or None), so the launcher can report all of them together, in
seconds. Finding the model is `real_trl.models.model_problem`, which evaluation shares.
"""

from __future__ import annotations

import importlib.util


def vllm_problem(use_vllm: bool) -> str | None:
    """use_vllm needs the vllm package, which the project installs only as an extra."""
    if use_vllm and importlib.util.find_spec("vllm") is None:
        return "use_vllm is true but vLLM is not installed: pip install 'real-trl[vllm]', or set use_vllm false"
    return None


def gpu_problem(use_cpu: bool) -> str | None:
    """A recipe that does not set use_cpu trains on GPUs; say when none is visible (dry runs list it)."""
    if use_cpu:
        return None
    import torch  # the launcher has it loaded already; a bare `import real_trl.launch.preflight` stays light

    if torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()):
        return None
    return "no GPU visible and use_cpu is false: the recipe trains on GPUs"
