"""Evaluate checkpoints on the paper's benchmarks (see docs/evaluation.md).

    python scripts/evaluate.py \
        --model_name_or_path outputs/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler/checkpoint-5600
    python scripts/evaluate.py --model_name_or_path REAL=outputs/real/checkpoint-5600 \
        base=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --data_parallel_size 8 --grader paper --output_dir outputs/eval
    python scripts/evaluate.py --model_name_or_path real_trl.tiny --benchmarks aime24 --n 2 \
        --max_new_tokens 32 --limit 4
    # every saved checkpoint of a training run, each into OUTPUT_DIR/checkpoint-N, resumable
    python scripts/evaluate.py --run_dir outputs/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler \
        --grader paper --data_parallel_size 8 --output_dir outputs/eval/1.5b/REAL
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path

from real_trl.cli import fail, parse
from real_trl.evaluation import (
    BACKEND_CHOICES,
    GRADERS,
    PAPER_PROTOCOL,
    Protocol,
    check_model,
    choose_backend,
    evaluate_model,
    resolve_benchmarks,
)
from real_trl.evaluation.checkpoints import (
    CHECKPOINT_CHOICES,
    DEFAULT_VALIDATION_METRIC,
    evaluate_run,
    saved_checkpoints,
)
from real_trl.evaluation.tables import results_table

DESCRIPTION = """\
Sample n completions per problem of the paper's benchmarks (the files shipped in real_trl/benchmarks/,
read with no network), score them with a grader, and write every sample (<bench>.jsonl), each benchmark's
metrics (<bench>.json: Pass@1, pass@k, lengths, the grader and the benchmark's content fingerprint), a
summary.json and the paper's table layout (results.md) into --output_dir, one folder per model when
several are given. The defaults are the paper's protocol. Running the same command again resumes:
finished benchmarks are read back, half-finished ones continue where they stopped. --run_dir evaluates the
saved checkpoints of a training run instead, each into --output_dir/checkpoint-N, and writes
run_evaluation.json: the final checkpoint and the best by the validation logged in training, the two rows
scripts/reproduce_tables.py shows."""


@dataclass
class EvaluateArguments:
    model_name_or_path: list[str] = field(
        default_factory=list,
        metadata={
            "help": "checkpoint folders, Hub ids or real_trl.tiny, each optionally LABEL=...; several values "
            "evaluate several models (or give --run_dir)"
        },
    )
    run_dir: str | None = field(
        default=None,
        metadata={
            "help": "a training run's output_dir: evaluate its saved checkpoint-N folders, each into "
            "output_dir/checkpoint-N, and write output_dir/run_evaluation.json (final and best-by-validation)"
        },
    )
    checkpoints: str = field(
        default="all",
        metadata={
            "choices": list(CHECKPOINT_CHOICES),
            "help": "with --run_dir: every saved checkpoint, or only the final one and the best by validation",
        },
    )
    validation_metric: str = field(
        default=DEFAULT_VALIDATION_METRIC,
        metadata={"help": "with --run_dir: the logged validation score that picks the best checkpoint"},
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "folder for the results"})
    benchmarks: list[str] = field(
        default_factory=lambda: ["all"],
        metadata={
            "help": "aime24 aime25 math500 amc23 minerva olympiad_bench (shipped files), 'all', a Hub copy "
            "(aime24_hub, ...), or a local file as PATH or NAME=PATH"
        },
    )
    grader: str = field(
        default="math_verify",
        metadata={"choices": list(GRADERS), "help": "math_verify (the training reward) or paper (the official rules)"},
    )
    limit: int | None = field(default=None, metadata={"help": "evaluate only the first N problems of each benchmark"})
    n: int = field(default=PAPER_PROTOCOL.n, metadata={"help": "samples per problem"})
    temperature: float = field(default=PAPER_PROTOCOL.temperature, metadata={"help": "sampling temperature"})
    top_p: float = field(default=PAPER_PROTOCOL.top_p, metadata={"help": "nucleus sampling"})
    max_new_tokens: int = field(default=PAPER_PROTOCOL.max_new_tokens, metadata={"help": "completion budget"})
    backend: str = field(
        default="auto",
        metadata={"choices": list(BACKEND_CHOICES), "help": "auto: vllm when installed and a GPU is visible"},
    )
    tensor_parallel_size: int = field(default=1, metadata={"help": "vllm: GPUs per replica"})
    data_parallel_size: int = field(default=1, metadata={"help": "vllm: number of replicas"})
    gpu_memory_utilization: float = field(default=0.9, metadata={"help": "vllm"})
    max_model_len: int | None = field(default=None, metadata={"help": "vllm: defaults to the model's"})
    batch_size: int = field(default=16, metadata={"help": "transformers: sequences per generate call"})
    dtype: str = field(default="auto", metadata={"help": "auto, bfloat16, float16, float32"})
    seed: int = field(default=0, metadata={"help": "sampling seed (and real_trl.tiny's initialisation)"})
    overwrite: bool = field(default=False, metadata={"help": "regenerate benchmarks that are already finished"})

    def __post_init__(self):
        if bool(self.model_name_or_path) == (self.run_dir is not None):
            raise ValueError("give either --model_name_or_path or --run_dir (a training run's output_dir)")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be >= 1, got {self.limit}")
        self.protocol = Protocol(self.n, self.temperature, self.top_p, self.max_new_tokens)


def backend_options(args: EvaluateArguments, backend: str) -> dict:
    """The chosen backend's own options from the command line."""
    if backend == "vllm":
        return {
            "tensor_parallel_size": args.tensor_parallel_size,
            "data_parallel_size": args.data_parallel_size,
            "gpu_memory_utilization": args.gpu_memory_utilization,
            "max_model_len": args.max_model_len,
            "dtype": args.dtype,
            "seed": args.seed,
        }
    return {"batch_size": args.batch_size, "dtype": args.dtype, "seed": args.seed}


def run(args: EvaluateArguments) -> str:
    """Evaluate every model given, or every checkpoint of --run_dir, and return the combined table."""
    if args.run_dir is not None:
        return evaluate_checkpoints(args)
    models = [
        spec.split("=", 1) if "=" in spec else [Path(spec.rstrip("/")).name, spec] for spec in args.model_name_or_path
    ]
    for _, model in models:  # every mistake before any work
        check_model(model)
    resolve_benchmarks(args.benchmarks)
    summaries = {}
    for label, model in models:
        backend, reason = choose_backend(args.backend, model)
        print(f"{label}: {backend} backend ({reason})", file=sys.stderr, flush=True)
        out_dir = Path(args.output_dir) / label if len(models) > 1 else Path(args.output_dir)
        summaries[label] = evaluate_model(
            model,
            args.benchmarks,
            out_dir,
            args.protocol,
            grader=args.grader,
            limit=args.limit,
            backend=backend,
            backend_options=backend_options(args, backend),
            label=label,
            overwrite=args.overwrite,
        )
    table = results_table(summaries)
    if len(models) > 1:
        (Path(args.output_dir) / "results.md").write_text(table + "\n")
    return table


def evaluate_checkpoints(args: EvaluateArguments) -> str:
    """--run_dir: the run's checkpoints, evaluated; the table of them (also in output_dir/results.md)."""
    resolve_benchmarks(args.benchmarks)
    first = next(iter(saved_checkpoints(args.run_dir).values()), None) if Path(args.run_dir).is_dir() else None
    backend, reason = choose_backend(args.backend, str(first or args.run_dir))
    print(f"{args.run_dir}: {backend} backend ({reason})", file=sys.stderr, flush=True)
    record = evaluate_run(
        args.run_dir,
        args.output_dir,
        args.benchmarks,
        args.protocol,
        which=args.checkpoints,
        validation_metric=args.validation_metric,
        grader=args.grader,
        limit=args.limit,
        backend=backend,
        backend_options=backend_options(args, backend),
        overwrite=args.overwrite,
    )
    print(f"final: {record['final']}; best by validation: {record['best_validation']}", file=sys.stderr, flush=True)
    return (Path(args.output_dir) / "results.md").read_text().rstrip()


def main(argv: list[str] | None = None) -> None:
    (args,) = parse([EvaluateArguments], DESCRIPTION, argv)
    try:
        print(run(args))
    except (ValueError, FileNotFoundError) as error:  # a user's mistake: the message names the fix
        fail(" ".join(str(error).split()))


if __name__ == "__main__":
    main()
