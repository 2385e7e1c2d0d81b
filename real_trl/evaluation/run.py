"""An evaluation run: benchmarks in, scored samples and metrics out, resumable.

For every benchmark this writes `<bench>.jsonl` (one row per sample: completion, extracted answer,
score, length) and `<bench>.json` (its metrics, protocol, grader and the benchmark's content
fingerprint); a benchmark whose `.json` matches the run is not generated again, and a half-written
`.jsonl` is resumed problem by problem. At the end `summary.json`, `results.csv` and `results.md`
(the paper's table layout) describe the whole run.
"""

from __future__ import annotations

import csv
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from real_trl.cli import UsageError
from real_trl.data import (
    BENCHMARK_DIR,
    DATASET_NAMES,
    EVAL_BENCHMARKS,
    HUB_SUFFIX,
    REGISTRY,
    benchmark_name,
    content_fingerprint,
    load_named_dataset,
)
from real_trl.evaluation import tables
from real_trl.evaluation.backends import build_backend, check_model, choose_backend, render_prompts
from real_trl.evaluation.protocol import (
    DEFAULT_GRADER,
    GRADERS,
    PAPER_PROTOCOL,
    Protocol,
    average_over_benchmarks,
    benchmark_metrics,
)
from real_trl.rewards import build_rewards


@dataclass(frozen=True)
class Benchmark:
    """One benchmark of a run: its name in output files and tables, and the data set it is read from."""

    name: str  # "aime24" for aime24, aime24_hub and aime24=PATH alike: they fill the same table column
    dataset: str  # a load_named_dataset name
    path: str | None = None

    @property
    def source(self) -> str:
        """Where the rows come from, as recorded in the outputs."""
        if self.path is not None:
            return self.path
        if self.dataset in EVAL_BENCHMARKS:
            return f"shipped: {BENCHMARK_DIR.name}/{self.dataset}.parquet"
        return f"hub: {REGISTRY[self.dataset.removesuffix(HUB_SUFFIX)].hub_id}"

    def load(self):
        """The benchmark's prompt/answer rows."""
        return load_named_dataset(self.dataset, self.path)


def resolve_benchmarks(specs: Iterable[str]) -> list[Benchmark]:
    """Benchmark specs -> benchmarks.

    A spec is a paper benchmark ("aime24": the shipped file), its Hub copy ("aime24_hub"), "all" (the
    paper's six), "NAME=PATH" (a local file or folder under that name; a paper benchmark's name keeps its
    column in the paper's table), or the path of a local file (named after the file).
    """
    resolved = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if spec == "all":
            resolved += [Benchmark(name, name) for name in EVAL_BENCHMARKS]
        elif sep:
            if not Path(path).exists():
                raise UsageError(f"benchmark file {path!r} (for {name}) does not exist")
            if not re.fullmatch(r"[\w.-]+", name):
                raise UsageError(f"benchmark name {name!r} must be letters, digits, '.', '-' or '_' (it names files)")
            resolved.append(Benchmark(benchmark_name(name), name, path))
        elif Path(spec).is_file():
            resolved.append(Benchmark(Path(spec).stem, Path(spec).stem, spec))
        elif spec in DATASET_NAMES and benchmark_name(spec) in EVAL_BENCHMARKS:
            resolved.append(Benchmark(benchmark_name(spec), spec))
        else:
            hub = [n + HUB_SUFFIX for n in EVAL_BENCHMARKS]
            raise UsageError(
                f"unknown benchmark {spec!r}: choose from {', '.join(EVAL_BENCHMARKS)}, 'all', their Hub copies "
                f"({', '.join(hub)}), or give a local file as PATH or NAME=PATH"
            )
    names = [b.name for b in resolved]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"benchmark {', '.join(repeated)} is asked for twice (its outputs share one file name)")
    return resolved


def _check_grader(grader: str) -> None:
    if grader not in GRADERS:
        raise UsageError(f"unknown grader {grader!r}: choose one of {', '.join(GRADERS)}")


def load_grader(grader: str):
    """The reward function that scores samples for a --grader choice; it has `.extract(text)`."""
    _check_grader(grader)
    return build_rewards([GRADERS[grader]])[0]


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


def _check_same_run(path: Path, saved: dict, key: dict) -> None:
    """Results on disk made under another protocol, grader or benchmark content are not mixed with this run's."""
    differences = [
        f"{field}={saved.get(field)} (asked: {value})" for field, value in key.items() if saved.get(field) != value
    ]
    if differences:
        raise UsageError(
            f"{path} holds results of another run: {'; '.join(differences)}; use another output_dir, or pass "
            "--overwrite to redo it"
        )


def _complete_rows(samples_path: Path, key: dict, n: int) -> list[dict]:
    """Rows of the problems whose n samples all reached the file (they are written together); the file is
    rewritten without any half-written tail."""
    rows = _read_rows(samples_path)
    for row in rows:
        _check_same_run(samples_path, row, key)
    counts: dict[int, int] = {}
    for row in rows:
        counts[row["problem_index"]] = counts.get(row["problem_index"], 0) + 1
    rows = [r for r in rows if counts[r["problem_index"]] == n]
    with samples_path.open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return rows


def evaluate_benchmark(
    backend,
    name: str,
    dataset,
    protocol: Protocol,
    out_dir: str | Path,
    *,
    grader: str = DEFAULT_GRADER,
    limit: int | None = None,
    source: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Generate, score and save one benchmark (its first `limit` problems when given); returns its record:
    protocol, grader, content (fingerprint and problem count of the whole benchmark, source) and metrics.
    Skips a finished benchmark, resumes a partial one, refuses results of another protocol, grader or content."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples_path, record_path = out_dir / f"{name}.jsonl", out_dir / f"{name}.json"
    if overwrite:
        samples_path.unlink(missing_ok=True)
        record_path.unlink(missing_ok=True)
    fingerprint = content_fingerprint(dataset)
    key = {"protocol": protocol.to_dict(), "grader": grader, "content_fingerprint": fingerprint}
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if record_path.exists():
        saved = json.loads(record_path.read_text())
        _check_same_run(record_path, {**saved, "content_fingerprint": saved.get("content", {}).get("fingerprint")}, key)
        if saved["metrics"]["num_problems"] == count:
            return saved

    rows = [r for r in _complete_rows(samples_path, key, protocol.n) if r["problem_index"] < count]
    done = {r["problem_index"] for r in rows}
    todo = [i for i in range(count) if i not in done]
    if todo:
        rows += _generate(backend, name, dataset, todo, protocol, load_grader(grader), key, samples_path)
    record = {
        "benchmark": name,
        "protocol": protocol.to_dict(),
        "grader": grader,
        "content": {"fingerprint": fingerprint, "problems": len(dataset), "source": source},
        "metrics": benchmark_metrics(rows, protocol.n),
    }
    record_path.write_text(json.dumps(record, indent=2))
    return record


def _generate(backend, name, dataset, todo, protocol, reward, key, samples_path) -> list[dict]:
    """Generate and score the problems `todo`, appending their rows to `samples_path` after each backend call."""
    prompt_ids = render_prompts(backend.tokenizer, [dataset[i]["prompt"] for i in todo])
    step = backend.problems_per_call(protocol)
    rows = []
    with tqdm(total=len(todo), desc=f"{name} ({backend.name})", unit="problem") as bar:
        for start in range(0, len(todo), step):
            indices = todo[start : start + step]
            samples = backend.generate(prompt_ids[start : start + step], protocol)
            new_rows = _score(name, dataset, indices, samples, reward, backend.tokenizer, key)
            with samples_path.open("a") as f:
                f.writelines(json.dumps(r) + "\n" for r in new_rows)
            rows += new_rows
            bar.update(len(indices))
    return rows


def _score(name, dataset, indices, samples, reward, tokenizer, key) -> list[dict]:
    examples = [dataset[i] for i in indices]
    texts = [c.text for completions in samples for c in completions]
    # The reward sees what TRL gives it in training: conversational completions and the answer column.
    # One call for the whole chunk, so that its verifier processes work in parallel.
    scores = reward(
        completions=[[{"role": "assistant", "content": t}] for t in texts],
        answer=[ex["answer"] for ex, completions in zip(examples, samples, strict=True) for _ in completions],
    )
    rows, flat = [], 0
    for index, example, completions in zip(indices, examples, samples, strict=True):
        prompt = tokenizer.apply_chat_template(example["prompt"], tokenize=False, add_generation_prompt=True)
        for sample_index, completion in enumerate(completions):
            score = scores[flat]
            flat += 1
            rows.append(
                {
                    "benchmark": name,
                    "problem_index": index,
                    "sample_index": sample_index,
                    "prompt": prompt,
                    "answer": example["answer"],
                    "completion": completion.text,
                    "extracted_answer": reward.extract(completion.text),
                    # None means the reference could not be parsed: counted as wrong, kept visible here.
                    "score": 0.0 if score is None else float(score),
                    "scorable": score is not None,
                    "num_tokens": completion.num_tokens,
                    "truncated": completion.truncated,
                    **key,
                }
            )
    return rows


def evaluate_model(
    model: str,
    benchmarks: Iterable[str],
    out_dir: str | Path,
    protocol: Protocol = PAPER_PROTOCOL,
    *,
    grader: str = DEFAULT_GRADER,
    limit: int | None = None,
    backend: str = "auto",
    backend_options: dict | None = None,
    label: str | None = None,
    overwrite: bool = False,
) -> dict:
    """Evaluate one model on benchmark specs (see `resolve_benchmarks`); writes and returns the summary.

    `backend` is "transformers", "vllm" or "auto" (see `choose_backend`); `limit` evaluates the first
    `limit` problems of each benchmark (the summary records how many, and the tables flag it)."""
    out_dir = Path(out_dir)
    check_model(model)
    _check_grader(grader)
    backend, _ = choose_backend(backend, model)
    loaded = [(benchmark, benchmark.load()) for benchmark in resolve_benchmarks(benchmarks)]
    generator, records = _LazyBackend(backend, model, backend_options or {}), {}
    try:
        for benchmark, dataset in loaded:
            records[benchmark.name] = evaluate_benchmark(
                generator,
                benchmark.name,
                dataset,
                protocol,
                out_dir,
                grader=grader,
                limit=limit,
                source=benchmark.source,
                overwrite=overwrite,
            )
    finally:
        generator.close()
    per_benchmark = {name: record["metrics"] for name, record in records.items()}
    summary = {
        "label": label or Path(model.rstrip("/")).name,
        "model": model,
        "backend": backend,
        "backend_options": backend_options or {},
        "protocol": protocol.to_dict(),
        "grader": grader,
        "limit": limit,
        "benchmarks": per_benchmark,
        "benchmark_content": {name: record["content"] for name, record in records.items()},
        "average": average_over_benchmarks(per_benchmark),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_summary_files(summary, out_dir)
    return summary


class _LazyBackend:
    """Builds the backend on first use, so that a run whose benchmarks are all finished loads no model."""

    def __init__(self, name: str, model: str, options: dict):
        self._arguments = (name, model, options)
        self._backend = None

    def __getattr__(self, attribute: str):
        if self._backend is None:
            name, model, options = self._arguments
            self._backend = build_backend(name, model, **options)
        return getattr(self._backend, attribute)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()


def write_summary_files(summary: dict, out_dir: str | Path) -> None:
    """summary.json, results.csv (one row per benchmark plus the average) and results.md (paper layout)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    rows = [{"benchmark": name, **metrics} for name, metrics in summary["benchmarks"].items()]
    average = {k: v for k, v in summary["average"].items() if k != "benchmarks"}
    rows.append({"benchmark": "average", **average})
    columns = ["benchmark", *sorted({key for row in rows for key in row} - {"benchmark"}, key=_column_order)]
    with (out_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    (out_dir / "results.md").write_text(tables.results_table({summary["label"]: summary}) + "\n")


def _column_order(key: str):
    if key.startswith("pass@"):
        return (1, int(key[5:]), key)
    return (0 if key.startswith("num_") else 2, 0, key)
