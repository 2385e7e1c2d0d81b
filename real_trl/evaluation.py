"""Evaluation as in the paper: n samples per problem, scored by the training reward, Pass@1 averaged.

    summary = evaluate_model("path/to/checkpoint", ["aime24", "math500"], "out/real")

For every benchmark this writes `<bench>.jsonl` (one row per sample: completion, extracted answer,
score, length) and `<bench>.json` (its metrics); a benchmark whose `.json` exists is not generated
again, and a half-written `.jsonl` is resumed problem by problem. At the end `summary.json`,
`results.csv` and `results.md` (the paper's table layout) describe the whole run.

Two generation backends share one interface, `generate(prompt_token_ids, protocol) ->
[[Completion] * n]`: vLLM for GPUs (tensor parallel inside a replica, data parallel across replicas)
and transformers, which also runs on CPU. Prompts are rendered once, here, with the model's chat
template, and passed as token ids so that neither backend adds a second BOS token.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

__all__ = [
    "Protocol",
    "PAPER_PROTOCOL",
    "Completion",
    "TransformersBackend",
    "VLLMBackend",
    "build_backend",
    "pass_at_k",
    "pass_at_k_values",
    "benchmark_metrics",
    "average_over_benchmarks",
    "render_prompts",
    "resolve_benchmarks",
    "evaluate_benchmark",
    "evaluate_model",
    "write_summary_files",
]


@dataclass(frozen=True)
class Protocol:
    """What makes two evaluations comparable. The defaults are the paper's (DESIGN.md section 2)."""

    n: int = 16
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 8192

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"n (samples per problem) must be >= 1, got {self.n}.")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}.")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}.")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Protocol:
        return cls(**{key: data[key] for key in ("n", "temperature", "top_p", "max_new_tokens")})

    def describe(self) -> str:
        return f"n={self.n}, temperature={self.temperature}, top_p={self.top_p}, max_new_tokens={self.max_new_tokens}"


PAPER_PROTOCOL = Protocol()


@dataclass
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # stopped by max_new_tokens rather than by an end-of-sequence token


# ----------------------------------------------------------------------------------------------
# Metrics


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Written as 1 - prod_{i=n-c+1..n} (1 - k/i), which never forms the (huge) binomials.
    """
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def pass_at_k_values(n: int) -> list[int]:
    """The k reported for n samples: powers of two up to n, and n itself."""
    ks = [2**i for i in range(int(math.log2(n)) + 1)]
    return ks if ks[-1] == n else ks + [n]


def benchmark_metrics(rows: list[dict], n: int) -> dict:
    """Metrics of one benchmark from its sample rows (each with problem_index, score, num_tokens, truncated).

    Pass@1 is the mean score over all samples (the paper's definition); pass@k is the unbiased
    estimator averaged over problems. Every problem must have exactly n samples.
    """
    by_problem: dict[int, list[dict]] = {}
    for row in rows:
        by_problem.setdefault(row["problem_index"], []).append(row)
    wrong = {p: len(r) for p, r in by_problem.items() if len(r) != n}
    if not by_problem or wrong:
        raise ValueError(f"every problem needs {n} samples; got {len(by_problem)} problems, counts off for {wrong}")
    scores = [float(row["score"]) for row in rows]
    correct = [sum(float(r["score"]) >= 0.5 for r in group) for group in by_problem.values()]
    metrics = {"num_problems": len(by_problem), "num_samples": len(rows), "pass@1": sum(scores) / len(scores)}
    for k in pass_at_k_values(n)[1:]:
        metrics[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in correct) / len(correct)
    metrics["mean_completion_tokens"] = sum(row["num_tokens"] for row in rows) / len(rows)
    metrics["truncated_share"] = sum(bool(row["truncated"]) for row in rows) / len(rows)
    return metrics


def average_over_benchmarks(per_benchmark: dict[str, dict]) -> dict:
    """Unweighted mean of every metric over benchmarks, as the paper's Avg column (not weighted by size)."""
    if not per_benchmark:
        return {}
    keys = set.intersection(*(set(m) for m in per_benchmark.values()))
    keys -= {"num_problems", "num_samples"}
    average = {key: sum(m[key] for m in per_benchmark.values()) / len(per_benchmark) for key in sorted(keys)}
    average["benchmarks"] = list(per_benchmark)
    return average


# ----------------------------------------------------------------------------------------------
# Backends


def _check_model_path(model: str) -> None:
    """A local-looking path that does not exist is a typo, not a Hub id: say so before loading anything."""
    if os.path.exists(model):
        return
    looks_local = model.startswith((".", "/", "~")) or model.count("/") > 1 or model.endswith(os.sep)
    if looks_local:
        raise FileNotFoundError(
            f"Model path {model!r} does not exist. Pass a checkpoint directory (e.g. outputs/real/checkpoint-1400) "
            "or a Hugging Face Hub id (e.g. deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B)."
        )


def load_tokenizer(model: str):
    from transformers import AutoTokenizer

    _check_model_path(model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model)
    except OSError as error:
        raise ValueError(
            f"Could not load a tokenizer from {model!r} ({error}). Pass a checkpoint directory that holds the "
            "tokenizer files, or a Hub id reachable from this machine."
        ) from error
    if tokenizer.chat_template is None:
        raise ValueError(f"{model!r} has no chat template; evaluation uses the model's template as training does.")
    return tokenizer


def render_prompts(tokenizer, prompts: list[list[dict]]) -> list[list[int]]:
    """Chat messages -> token ids of the model's chat template with the generation prompt, as in training.

    Tokenising the rendered text without special tokens keeps the template's own BOS the only one.
    """
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


class TransformersBackend:
    """Batched `model.generate` with left padding; the fallback that runs anywhere, CPU included."""

    name = "transformers"

    def __init__(
        self, model: str, *, batch_size: int = 16, device: str | None = None, dtype: str = "auto", seed: int = 0
    ):
        import torch
        from transformers import AutoModelForCausalLM

        self.tokenizer = load_tokenizer(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        torch_dtype = getattr(torch, dtype) if dtype != "auto" else "auto"
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype).to(self.device).eval()
        self.batch_size = batch_size
        torch.manual_seed(seed)
        eos = self.model.generation_config.eos_token_id
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos])
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else min(self.eos_ids)

    def problems_per_call(self, protocol: Protocol) -> int:
        # One call fills one or more generate batches; results are saved after each call.
        return max(1, self.batch_size // protocol.n)

    def generate(self, prompt_ids: list[list[int]], protocol: Protocol) -> list[list[Completion]]:
        import torch

        flat = [ids for ids in prompt_ids for _ in range(protocol.n)]
        results: list[Completion] = []
        for start in range(0, len(flat), self.batch_size):
            results += self._generate_batch(flat[start : start + self.batch_size], protocol, torch)
        return [results[i * protocol.n : (i + 1) * protocol.n] for i in range(len(prompt_ids))]

    def _generate_batch(self, batch: list[list[int]], protocol: Protocol, torch) -> list[Completion]:
        width = max(len(ids) for ids in batch)
        input_ids = torch.tensor([[self.pad_id] * (width - len(ids)) + ids for ids in batch], device=self.device)
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=self.device)
        sampling = protocol.temperature > 0
        with torch.no_grad():
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=protocol.max_new_tokens,
                do_sample=sampling,
                # top_k=0 switches off transformers' default top-k of 50: the protocol is top-p only, as in vLLM.
                **({"temperature": protocol.temperature, "top_p": protocol.top_p, "top_k": 0} if sampling else {}),
                pad_token_id=self.pad_id,
                eos_token_id=sorted(self.eos_ids),
            )
        completions = []
        for row in output[:, width:].tolist():
            # Count up to and including the first EOS: padding after it (often the same id) is not output.
            stop = next((i for i, token in enumerate(row) if token in self.eos_ids), None)
            length = len(row) if stop is None else stop + 1
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            completions.append(Completion(text=text, num_tokens=length, truncated=stop is None))
        return completions

    def close(self) -> None:
        pass


def _visible_gpus() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def gpu_groups(data_parallel_size: int, tensor_parallel_size: int, gpus: list[str]) -> list[str]:
    """CUDA_VISIBLE_DEVICES for each data-parallel replica: consecutive blocks of tensor_parallel_size GPUs."""
    needed = data_parallel_size * tensor_parallel_size
    if needed > len(gpus):
        raise ValueError(
            f"data_parallel_size={data_parallel_size} x tensor_parallel_size={tensor_parallel_size} needs {needed} "
            f"GPUs but {len(gpus)} are visible ({','.join(gpus) or 'none'}). Lower one of them."
        )
    return [
        ",".join(gpus[r * tensor_parallel_size : (r + 1) * tensor_parallel_size]) for r in range(data_parallel_size)
    ]


def _sampling_kwargs(protocol: Protocol) -> dict:
    return {
        "n": protocol.n,
        "temperature": protocol.temperature,
        "top_p": protocol.top_p,
        "max_tokens": protocol.max_new_tokens,
    }


def _vllm_generate(llm, prompt_ids: list[list[int]], sampling_kwargs: dict) -> list[list[tuple]]:
    from vllm import SamplingParams

    outputs = llm.generate(
        [{"prompt_token_ids": ids} for ids in prompt_ids], SamplingParams(**sampling_kwargs), use_tqdm=True
    )
    return [[(o.text, len(o.token_ids), o.finish_reason == "length") for o in out.outputs] for out in outputs]


def _vllm_worker(connection, gpus: str, llm_kwargs: dict) -> None:
    """One data-parallel replica: its own process and GPUs, answering generate requests until told to stop."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    from vllm import LLM

    llm = LLM(**llm_kwargs)
    connection.send("ready")
    while (request := connection.recv()) is not None:
        connection.send(_vllm_generate(llm, *request))


class VLLMBackend:
    """vLLM generation: one engine with tensor_parallel_size GPUs, or data_parallel_size such engines
    in separate processes (independent replicas, each taking an equal share of the problems)."""

    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        data_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        dtype: str = "auto",
        seed: int = 0,
        enforce_eager: bool = False,
    ):
        try:
            import vllm  # noqa: F401
        except ImportError as error:
            raise ImportError(
                "The vLLM backend needs vllm: pip install 'real-trl[vllm]', or use --backend transformers."
            ) from error
        self.tokenizer = load_tokenizer(model)
        self.data_parallel_size = data_parallel_size
        self.llm_kwargs = dict(
            model=model,
            tensor_parallel_size=tensor_parallel_size,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
            enforce_eager=enforce_eager,
        )
        if max_model_len is not None:
            self.llm_kwargs["max_model_len"] = max_model_len
        self._llm = None
        self._workers: list[tuple[Any, Any]] = []
        if data_parallel_size > 1:
            self._groups = gpu_groups(data_parallel_size, tensor_parallel_size, _visible_gpus())

    def problems_per_call(self, protocol: Protocol) -> int:
        # vLLM schedules its own batches; large calls keep it busy, and results are still saved per call.
        return 256 * self.data_parallel_size

    def _start_workers(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # CUDA cannot be forked
        for rank, gpus in enumerate(self._groups):
            parent, child = context.Pipe()
            kwargs = dict(self.llm_kwargs, seed=self.llm_kwargs["seed"] + rank)  # replicas must not repeat samples
            process = context.Process(target=_vllm_worker, args=(child, gpus, kwargs), daemon=True)
            process.start()
            self._workers.append((process, parent))
        for rank in range(len(self._workers)):
            self._receive(rank)

    def _receive(self, rank: int):
        try:
            return self._workers[rank][1].recv()
        except EOFError:
            raise RuntimeError(
                f"vLLM replica {rank} (GPUs {self._groups[rank]}) died; its error is in the log above."
            ) from None

    def generate(self, prompt_ids: list[list[int]], protocol: Protocol) -> list[list[Completion]]:
        sampling_kwargs = _sampling_kwargs(protocol)
        if self.data_parallel_size == 1:
            if self._llm is None:
                from vllm import LLM

                self._llm = LLM(**self.llm_kwargs)
            raw = _vllm_generate(self._llm, prompt_ids, sampling_kwargs)
        else:
            if not self._workers:
                self._start_workers()
            shards = [prompt_ids[rank :: self.data_parallel_size] for rank in range(self.data_parallel_size)]
            for (_, connection), shard in zip(self._workers, shards):
                connection.send((shard, sampling_kwargs))
            answers = [self._receive(rank) for rank in range(self.data_parallel_size)]
            raw = [None] * len(prompt_ids)
            for rank, answer in enumerate(answers):
                raw[rank :: self.data_parallel_size] = answer
        return [[Completion(text=t, num_tokens=n, truncated=cut) for t, n, cut in samples] for samples in raw]

    def close(self) -> None:
        for process, connection in self._workers:
            connection.send(None)
            process.join(timeout=60)
        self._workers = []


BACKENDS = {"transformers": TransformersBackend, "vllm": VLLMBackend}


def build_backend(name: str, model: str, **options):
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")
    return BACKENDS[name](model, **options)


# ----------------------------------------------------------------------------------------------
# Running an evaluation


def resolve_benchmarks(specs: Iterable[str]) -> list[tuple[str, str | None]]:
    """Benchmark specs -> (name, local path or None).

    A spec is a registry name ("aime24", loaded from the Hub), "all" (the paper's six), "NAME=PATH"
    (a local file or folder under that name; a registry name keeps its place in the paper's table),
    or the path of a local file (named after the file).
    """
    from real_trl.data import EVAL_BENCHMARKS

    resolved = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep and Path(spec).is_file():
            name, path = Path(spec).stem, spec
        if spec == "all":
            resolved += [(name, None) for name in EVAL_BENCHMARKS]
        elif path:
            if not Path(path).exists():
                raise FileNotFoundError(f"Benchmark file {path!r} (for {name}) does not exist.")
            if not re.fullmatch(r"[\w.-]+", name):
                raise ValueError(f"Benchmark name {name!r} must be letters, digits, '.', '-' or '_' (it names files).")
            resolved.append((name, path))
        elif name in EVAL_BENCHMARKS:
            resolved.append((name, None))
        else:
            raise ValueError(
                f"Unknown benchmark {name!r}. Choose from {', '.join(EVAL_BENCHMARKS)} or 'all', or give a local "
                "file as PATH or NAME=PATH."
            )
    return resolved


def _load_benchmark(name: str, path: str | None):
    from real_trl.data import load_named_dataset

    return load_named_dataset(name, path)


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    with path.open() as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by an interrupted run; everything after it is regenerated
    return rows


def _default_reward():
    from real_trl.rewards import extract_answer, make_math_reward

    return make_math_reward(), extract_answer


def evaluate_benchmark(
    backend,
    name: str,
    dataset,
    protocol: Protocol,
    out_dir: str | Path,
    *,
    reward_fn=None,
    extract_fn=None,
    overwrite: bool = False,
) -> dict:
    """Generate, score and save one benchmark; returns its metrics. Skips a finished one, resumes a partial one."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path, metrics_path = out_dir / f"{name}.jsonl", out_dir / f"{name}.json"
    if overwrite:
        samples_path.unlink(missing_ok=True)
        metrics_path.unlink(missing_ok=True)
    if metrics_path.exists():
        saved = json.loads(metrics_path.read_text())
        if saved["protocol"] != protocol.to_dict():
            raise ValueError(
                f"{metrics_path} was evaluated with {Protocol.from_dict(saved['protocol']).describe()}, but this run "
                f"asks for {protocol.describe()}. Use another output directory, or pass --overwrite to redo it."
            )
        return saved["metrics"]

    if reward_fn is None or extract_fn is None:
        default_reward, default_extract = _default_reward()
        reward_fn, extract_fn = reward_fn or default_reward, extract_fn or default_extract

    # Keep only problems whose n samples all reached the file (they are written together).
    rows = _read_rows(samples_path)
    other = next((r["protocol"] for r in rows if r.get("protocol") != protocol.to_dict()), None)
    if other is not None:
        raise ValueError(
            f"{samples_path} holds samples generated with {other}, but this run asks for {protocol.describe()}. "
            "Use another output directory, or pass --overwrite to redo it."
        )
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["problem_index"]] = counts.get(row["problem_index"], 0) + 1
    done = {p for p, c in counts.items() if c == protocol.n}
    rows = [r for r in rows if r["problem_index"] in done]
    with samples_path.open("w") as f:  # rewrite without any half-written tail
        f.writelines(json.dumps(r) + "\n" for r in rows)

    todo = [i for i in range(len(dataset)) if i not in done]
    prompt_ids = render_prompts(backend.tokenizer, [dataset[i]["prompt"] for i in todo]) if todo else []
    step = backend.problems_per_call(protocol)
    with tqdm(total=len(dataset), initial=len(done), desc=f"{name} ({backend.name})", unit="problem") as bar:
        for start in range(0, len(todo), step):
            indices = todo[start : start + step]
            samples = backend.generate(prompt_ids[start : start + step], protocol)
            new_rows = _score(name, dataset, indices, samples, reward_fn, extract_fn, backend.tokenizer, protocol)
            with samples_path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new_rows)
            rows += new_rows
            bar.update(len(indices))

    metrics = benchmark_metrics(rows, protocol.n)
    metrics_path.write_text(
        json.dumps({"benchmark": name, "protocol": protocol.to_dict(), "metrics": metrics}, indent=2)
    )
    return metrics


def _score(name, dataset, indices, samples, reward_fn, extract_fn, tokenizer, protocol) -> list[dict]:
    examples = [dataset[i] for i in indices]
    texts = [c.text for completions in samples for c in completions]
    # The reward sees what TRL gives it in training: conversational completions and the answer column.
    # One call for the whole chunk, so that its verifier processes work in parallel.
    rewards = reward_fn(
        completions=[[{"role": "assistant", "content": t}] for t in texts],
        answer=[ex["answer"] for ex, completions in zip(examples, samples) for _ in completions],
    )
    rows, flat = [], 0
    for index, example, completions in zip(indices, examples, samples):
        prompt = tokenizer.apply_chat_template(example["prompt"], tokenize=False, add_generation_prompt=True)
        for sample_index, completion in enumerate(completions):
            reward = rewards[flat]
            flat += 1
            rows.append(
                {
                    "benchmark": name,
                    "problem_index": index,
                    "sample_index": sample_index,
                    "prompt": prompt,
                    "answer": example["answer"],
                    "completion": completion.text,
                    "extracted_answer": extract_fn(completion.text),
                    # None means the reference could not be parsed: counted as wrong, kept visible here.
                    "score": 0.0 if reward is None else float(reward),
                    "scorable": reward is not None,
                    "num_tokens": completion.num_tokens,
                    "truncated": completion.truncated,
                    "protocol": protocol.to_dict(),
                }
            )
    return rows


def evaluate_model(
    model: str,
    benchmarks: Iterable[str],
    out_dir: str | Path,
    protocol: Protocol = PAPER_PROTOCOL,
    *,
    backend: str = "transformers",
    backend_options: dict | None = None,
    label: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Evaluate one model on benchmark specs (see `resolve_benchmarks`); writes and returns the summary."""
    out_dir = Path(out_dir)
    resolved = resolve_benchmarks(benchmarks)
    _check_model_path(model)
    datasets = {name: _load_benchmark(name, path) for name, path in resolved}
    finished = {name: out_dir / f"{name}.json" for name in datasets}
    engine = None
    per_benchmark = {}
    try:
        for name, dataset in datasets.items():
            if engine is None and (overwrite or not finished[name].exists()):
                engine = build_backend(backend, model, **(backend_options or {}))
            per_benchmark[name] = evaluate_benchmark(
                engine or _NoGeneration(), name, dataset, protocol, out_dir, overwrite=overwrite
            )
    finally:
        if engine is not None:
            engine.close()
    summary = {
        "label": label or Path(model.rstrip("/")).name,
        "model": model,
        "backend": backend,
        "backend_options": backend_options or {},
        "protocol": protocol.to_dict(),
        "benchmarks": per_benchmark,
        "average": average_over_benchmarks(per_benchmark),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_summary_files(summary, out_dir)
    return summary


class _NoGeneration:
    """Stands in for a backend when every benchmark is already finished, so no model is loaded."""

    name = "cached"
    tokenizer = None

    def problems_per_call(self, protocol):
        return 1

    def generate(self, *args):
        raise RuntimeError("finished benchmarks are not regenerated")


def write_summary_files(summary: dict, out_dir: str | Path) -> None:
    """summary.json, results.csv (one row per benchmark plus the average) and results.md (paper layout)."""
    from real_trl.tables import results_table

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    rows = [{"benchmark": name, **metrics} for name, metrics in summary["benchmarks"].items()]
    average = {k: v for k, v in summary["average"].items() if k != "benchmarks"}
    rows.append({"benchmark": "average", **average})
    columns = ["benchmark"] + sorted({key for row in rows for key in row} - {"benchmark"}, key=_column_order)
    with (out_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "results.md").write_text(results_table({summary["label"]: summary}) + "\n")


def _column_order(key: str):
    if key.startswith("pass@"):
        return (1, int(key[5:]), key)
    return (0 if key.startswith("num_") else 2, 0, key)
