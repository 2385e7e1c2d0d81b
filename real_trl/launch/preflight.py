"""Checks a launch can pass before anything heavy loads: optional engines are installed.

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
