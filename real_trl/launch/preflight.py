"""Checks a launch can pass before anything heavy loads: optional engines are installed, a GPU is visible, the
vLLM settings fit the machine and the lengths.

Each check returns a one-line problem (or None), so the launcher can report all of them together, in
seconds. Finding the model is `real_trl.models.model_problem`, which evaluation shares.
"""

from __future__ import annotations

import importlib.util

from real_trl.vllm_cpu import cpu_refusals


def vllm_problem(use_vllm: bool) -> str | None:
    """use_vllm needs the vllm package, which the project installs only as an extra."""
    if use_vllm and importlib.util.find_spec("vllm") is None:
        return "use_vllm is true but vLLM is not installed: pip install 'real-trl[vllm]', or set use_vllm false"
    return None


def vllm_length_problem(settings: dict) -> str | None:
    """vLLM stops a sequence at vllm_max_model_length without a word: it must hold the longest prompt the data
    loader keeps (max_prompt_length) plus the whole completion, or completions are cut short silently."""
    limit, prompt = settings.get("vllm_max_model_length"), settings.get("max_prompt_length")
    if not settings.get("use_vllm") or limit is None or prompt is None:
        return None
    needed = prompt + settings.get("max_completion_length", 256)  # GRPOConfig's default completion length
    if limit >= needed:
        return None
    return (
        f"vllm_max_model_length {limit} is shorter than max_prompt_length {prompt} + max_completion_length "
        f"{needed - prompt} = {needed}, so vLLM would cut completions short: raise it to {needed} or more"
    )


def vllm_cpu_problems(settings: dict) -> list[str]:
    """With no GPU visible vLLM runs on CPU (the vllm-cpu build): the settings it cannot honour there."""
    if not settings.get("use_vllm") or _gpu_visible():
        return []
    return cpu_refusals(True, settings.get("vllm_mode"), settings.get("vllm_enable_sleep_mode", False))


def _gpu_visible() -> bool:
    import torch  # the launcher has it loaded already; a bare `import real_trl.launch.preflight` stays light

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


def gpu_problem(use_cpu: bool) -> str | None:
    """A recipe that does not set use_cpu trains on GPUs; say when none is visible (dry runs list it)."""
    if use_cpu or _gpu_visible():
        return None
    return "no GPU visible and use_cpu is false: the recipe trains on GPUs"
