"""Evaluate checkpoints on the paper's benchmarks: n samples per problem, Pass@1, pass@k, JSONL of every sample.

    python scripts/evaluate.py --model outputs/DeepSeek-R1-Distill-Qwen-1.5B/real_deepscaler/checkpoint-1400 \
        --benchmarks all --output-dir eval/real
    python scripts/evaluate.py --model REAL=outputs/real/checkpoint-1400 \
        --model base=deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B \
        --backend vllm --tensor-parallel-size 1 --data-parallel-size 8 --output-dir eval

With several models each gets its own folder under --output-dir, plus a combined results.md there.
Re-running the same command resumes: finished benchmarks are read back, not regenerated.
"""

import argparse
import sys
from pathlib import Path

from real_trl.evaluation import PAPER_PROTOCOL, Protocol, evaluate_model
from real_trl.tables import results_table


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", action="append", required=True, help="checkpoint dir or Hub id, optionally LABEL=...; repeatable"
    )
    parser.add_argument(
        "--benchmarks",
        nargs="+",
        default=["all"],
        help="aime24 aime25 math500 amc23 minerva olympiad_bench, 'all', or NAME=local/file",
    )
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--n", type=int, default=PAPER_PROTOCOL.n, help="samples per problem (paper: 16)")
    parser.add_argument("--temperature", type=float, default=PAPER_PROTOCOL.temperature)
    parser.add_argument("--top-p", type=float, default=PAPER_PROTOCOL.top_p)
    parser.add_argument("--max-new-tokens", type=int, default=PAPER_PROTOCOL.max_new_tokens)
    parser.add_argument("--backend", choices=["vllm", "transformers"], default="vllm")
    parser.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm: GPUs per replica")
    parser.add_argument("--data-parallel-size", type=int, default=1, help="vllm: number of replicas")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm")
    parser.add_argument("--max-model-len", type=int, default=None, help="vllm: defaults to the model's")
    parser.add_argument("--batch-size", type=int, default=16, help="transformers: sequences per generate call")
    parser.add_argument("--dtype", default="auto", help="auto, bfloat16, float16, float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="regenerate benchmarks that are already finished")
    args = parser.parse_args()

    protocol = Protocol(n=args.n, temperature=args.temperature, top_p=args.top_p, max_new_tokens=args.max_new_tokens)
    if args.backend == "vllm":
        options = dict(
            tensor_parallel_size=args.tensor_parallel_size,
            data_parallel_size=args.data_parallel_size,
            gpu_memory_utilization=args.gpu_memory_utilization,
            max_model_len=args.max_model_len,
            dtype=args.dtype,
            seed=args.seed,
        )
    else:
        options = dict(batch_size=args.batch_size, dtype=args.dtype, seed=args.seed)

    models = [spec.split("=", 1) if "=" in spec else [Path(spec.rstrip("/")).name, spec] for spec in args.model]
    summaries = {}
    for label, model in models:
        out_dir = Path(args.output_dir) / label if len(models) > 1 else Path(args.output_dir)
        summaries[label] = evaluate_model(
            model,
            args.benchmarks,
            out_dir,
            protocol,
            backend=args.backend,
            backend_options=options,
            label=label,
            overwrite=args.overwrite,
        )
    table = results_table(summaries)
    if len(models) > 1:
        (Path(args.output_dir) / "results.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, FileNotFoundError) as error:  # bad input: the message names the fix
        sys.exit(f"error: {error}")
