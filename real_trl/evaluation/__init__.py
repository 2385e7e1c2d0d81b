"""Evaluation as in the paper: n samples per problem, scored by a grader, Pass@1 averaged.

    summary = evaluate_model("path/to/checkpoint", ["aime24", "math500"], "outputs/eval/real")

Three modules, one concern each: `protocol` (what makes two evaluations comparable, the graders, and
the metrics; pure), `backends` (generation with transformers or vLLM) and `run` (benchmarks,
resumption, output files). See docs/evaluation.md.
"""

from real_trl.evaluation.backends import (
    BACKEND_CHOICES,
    TINY_MODEL,
    Completion,
    TransformersBackend,
    VLLMBackend,
    build_backend,
    check_model,
    choose_backend,
    gpu_groups,
    render_prompts,
)
from real_trl.evaluation.protocol import (
    DEFAULT_GRADER,
    GRADERS,
    PAPER_GRADER,
    PAPER_PROTOCOL,
    PROTOCOL_KEYS,
    Protocol,
    average_over_benchmarks,
    benchmark_metrics,
    pass_at_k,
    pass_at_k_values,
)
from real_trl.evaluation.run import (
    Benchmark,
    evaluate_benchmark,
    evaluate_model,
    load_grader,
    resolve_benchmarks,
    write_summary_files,
)

__all__ = [
    "BACKEND_CHOICES",
    "DEFAULT_GRADER",
    "GRADERS",
    "PAPER_GRADER",
    "PAPER_PROTOCOL",
    "PROTOCOL_KEYS",
    "TINY_MODEL",
    "Benchmark",
    "Completion",
    "Protocol",
    "TransformersBackend",
    "VLLMBackend",
    "average_over_benchmarks",
    "benchmark_metrics",
    "build_backend",
    "check_model",
    "choose_backend",
    "evaluate_benchmark",
    "evaluate_model",
    "gpu_groups",
    "load_grader",
    "pass_at_k",
    "pass_at_k_values",
    "render_prompts",
    "resolve_benchmarks",
    "write_summary_files",
]
