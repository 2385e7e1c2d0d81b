"""Evaluation: metrics, protocol, backends (faked where they need a GPU), resumable runs, recorded grader and
benchmark content, --limit, backend choice, model checks and the evaluate.py command line."""

import importlib.machinery
import itertools
import json
import os
import subprocess
import sys
import types
from fractions import Fraction
from math import comb
from pathlib import Path
from typing import ClassVar

import pytest

from real_trl.cli import UsageError
from real_trl.data import EVAL_BENCHMARKS, load_named_dataset, shipped_benchmarks
from real_trl.evaluation import (
    Benchmark,
    Completion,
    Protocol,
    TransformersBackend,
    average_over_benchmarks,
    benchmark_metrics,
    build_backend,
    check_model,
    choose_backend,
    evaluate_benchmark,
    evaluate_model,
    gpu_groups,
    pass_at_k,
    pass_at_k_values,
    render_prompts,
    resolve_benchmarks,
)

ROOT = Path(__file__).resolve().parents[1]


def brute_force_pass_at_k(n, c, k):
    """Share of all k-subsets of n samples (the first c correct) that hold at least one correct sample."""
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(i < c for i in s) for s in subsets) / len(subsets)


def test_pass_at_k_matches_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    n, c, k = 1000, 3, 400  # the binomials have ~290 digits; compare with exact rational arithmetic
    exact = 1 - Fraction(comb(n - c, k), comb(n, k))
    assert pass_at_k(n, c, k) == pytest.approx(float(exact), rel=1e-12)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(4, 1, 5)


def test_reported_k():
    assert pass_at_k_values(16) == [1, 2, 4, 8, 16]
    assert pass_at_k_values(6) == [1, 2, 4, 6]
    assert pass_at_k_values(1) == [1]


def rows(scores_per_problem, tokens=10, truncated=False):
    return [
        {"problem_index": p, "score": s, "num_tokens": tokens, "truncated": truncated}
        for p, scores in enumerate(scores_per_problem)
        for s in scores
    ]


def test_benchmark_metrics():
    data = rows([[1, 0], [0, 0]])
    data[0]["num_tokens"], data[1]["truncated"] = 30, True
    metrics = benchmark_metrics(data, n=2)
    assert metrics["pass@1"] == 0.25
    assert metrics["pass@2"] == 0.5  # problem 0 solved by one of its two samples
    assert metrics["mean_completion_tokens"] == (30 + 10 + 10 + 10) / 4
    assert metrics["truncated_share"] == 0.25
    assert (metrics["num_problems"], metrics["num_samples"]) == (2, 4)
    with pytest.raises(ValueError, match="needs 2 samples"):
        benchmark_metrics(data[:-1], n=2)


def test_average_is_unweighted_over_benchmarks():
    small = benchmark_metrics(rows([[1]] * 10), n=1)
    large = benchmark_metrics(rows([[0]] * 1000), n=1)
    average = average_over_benchmarks({"aime24": small, "math500": large})
    assert average["pass@1"] == 0.5  # weighting by problems would give 10/1010
    assert average["benchmarks"] == ["aime24", "math500"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n", 0, r"n \(samples per problem\) must be >= 1, got 0"),
        ("max_new_tokens", 0, "max_new_tokens must be >= 1, got 0"),
        ("top_p", 0.0, r"top_p must be in \(0, 1\], got 0.0"),
        ("top_p", 1.5, r"top_p must be in \(0, 1\], got 1.5"),
        ("temperature", -0.1, "temperature must be >= 0, got -0.1"),
    ],
)
def test_protocol_validation(field, value, message):
    with pytest.raises(ValueError, match=message):
        Protocol(**{field: value})


def test_protocol_round_trip():
    assert Protocol().to_dict() == {"n": 16, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8192}
    assert Protocol.from_dict({**Protocol(n=4).to_dict(), "other": 1}) == Protocol(n=4)
    assert Protocol(n=2).describe() == "n=2, temperature=0.6, top_p=0.95, max_new_tokens=8192"


class FakeBackend:
    """Returns fixed completions and counts what it was asked to generate."""

    name = "fake"

    def __init__(self, texts):
        from real_trl.tiny import build_tiny_tokenizer

        self.tokenizer = build_tiny_tokenizer()
        self.texts = texts
        self.calls = []

    def problems_per_call(self, protocol):
        return 2

    def generate(self, prompt_ids, protocol):
        self.calls.append(len(prompt_ids))
        return [[Completion(t, len(t), i == 0) for i, t in enumerate(self.texts[: protocol.n])] for _ in prompt_ids]

    def close(self):
        pass


def toy_dataset(answers):
    from datasets import Dataset

    return Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {a}?"}], "answer": a} for a in answers])


ANSWER_FOUR = "<think>so</think> The answer is \\boxed{4}."


def test_scoring_with_the_training_reward_and_resume(tmp_path):
    protocol = Protocol(n=2, max_new_tokens=8)
    backend = FakeBackend([ANSWER_FOUR, "no answer"])
    dataset = toy_dataset(["4", "5", "4"])
    record = evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path)
    metrics = record["metrics"]
    assert backend.calls == [2, 1]  # problems_per_call=2: results saved after each call
    saved = [json.loads(line) for line in (tmp_path / "amc23.jsonl").read_text().splitlines()]
    assert [(r["problem_index"], r["sample_index"], r["extracted_answer"], r["score"]) for r in saved] == [
        (0, 0, "4", 1.0),
        (0, 1, None, 0.0),
        (1, 0, "4", 0.0),
        (1, 1, None, 0.0),
        (2, 0, "4", 1.0),
        (2, 1, None, 0.0),
    ]
    assert saved[0]["prompt"].startswith("<|im_start|>user\nWhat is 4?") and saved[0]["truncated"] is True
    assert metrics["pass@1"] == pytest.approx(2 / 6) and metrics["truncated_share"] == 0.5
    assert record["grader"] == saved[0]["grader"] == "math_verify"
    assert record["content"]["problems"] == 3

    # Finished: read back, nothing generated.
    assert evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path) == record
    assert backend.calls == [2, 1]

    # Interrupted mid-way (metrics not written, last problem's rows half there): only that problem is redone.
    (tmp_path / "amc23.json").unlink()
    lines = (tmp_path / "amc23.jsonl").read_text().splitlines()
    (tmp_path / "amc23.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    assert evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path)["metrics"] == metrics
    assert backend.calls == [2, 1, 1]
    assert len((tmp_path / "amc23.jsonl").read_text().splitlines()) == 6


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"protocol": Protocol(n=1, max_new_tokens=8)}, "protocol="),
        ({"grader": "paper"}, "grader=math_verify"),
        ({"dataset": toy_dataset(["4", "5", "6"])}, "content_fingerprint="),
    ],
)
@pytest.mark.parametrize("finished", [True, False])
def test_results_of_another_run_are_refused(tmp_path, change, message, finished):
    run = {"protocol": Protocol(n=2, max_new_tokens=8), "dataset": toy_dataset(["4", "5", "4"])}
    evaluate_benchmark(FakeBackend([ANSWER_FOUR, "x"]), "amc23", run["dataset"], run["protocol"], tmp_path)
    if not finished:  # only the samples file: the check must hold when resuming too
        (tmp_path / "amc23.json").unlink()
    run.update(change)
    grader = run.pop("grader", "math_verify")
    with pytest.raises(UsageError, match=f"{message}.*pass --overwrite"):
        evaluate_benchmark(FakeBackend([]), "amc23", run["dataset"], run["protocol"], tmp_path, grader=grader)
    redone = evaluate_benchmark(
        FakeBackend([ANSWER_FOUR] * 2),
        "amc23",
        run["dataset"],
        run["protocol"],
        tmp_path,
        grader=grader,
        overwrite=True,
    )
    assert redone["grader"] == grader


def test_limit_evaluates_the_first_problems_and_extends_later(tmp_path):
    protocol = Protocol(n=1, max_new_tokens=8)
    backend = FakeBackend([ANSWER_FOUR])
    dataset = toy_dataset(["4", "5", "4", "4", "1"])
    first = evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path, limit=3)
    assert first["metrics"]["num_problems"] == 3 and first["content"]["problems"] == 5
    assert first["metrics"]["pass@1"] == pytest.approx(2 / 3)
    assert backend.calls == [2, 1]
    full = evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path)
    assert backend.calls == [2, 1, 2]  # only problems 3 and 4 are new
    assert full["metrics"]["num_problems"] == 5 and full["metrics"]["pass@1"] == pytest.approx(3 / 5)
    assert full["content"]["fingerprint"] == first["content"]["fingerprint"]  # of the whole benchmark


def test_both_graders_score_and_extract(tmp_path):
    # The paper grader takes the answer after the first </think>; math_verify after the last one.
    texts = ["<think>a</think> \\boxed{4} </think> \\boxed{5}"]
    for grader, expected in (("math_verify", ("5", 0.0)), ("paper", ("4", 1.0))):
        record = evaluate_benchmark(
            FakeBackend(texts), "x", toy_dataset(["4"]), Protocol(n=1), tmp_path / grader, grader=grader
        )
        row = json.loads((tmp_path / grader / "x.jsonl").read_text())
        assert (row["extracted_answer"], row["score"]) == expected, grader
        assert record["grader"] == row["grader"] == grader


class FakeLLM:
    instances: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.requests = []
        FakeLLM.instances.append(self)

    def generate(self, prompts, params, use_tqdm=True):
        self.requests.append((prompts, params))
        output = types.SimpleNamespace
        return [
            output(
                outputs=[
                    output(text="x", token_ids=[1, 2, 3], finish_reason=r)
                    for r in ["stop", "length"][: params.kwargs["n"]]
                ]
            )
            for _ in prompts
        ]


class FakeSamplingParams:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def fake_vllm(monkeypatch, on_cpu: bool = False):
    """An importable `vllm` module with a fake LLM, so the backend's plumbing runs without a GPU; its platform is
    a GPU unless `on_cpu` (vLLM's CPU build)."""
    module = types.ModuleType("vllm")
    module.__spec__ = importlib.machinery.ModuleSpec("vllm", None)
    module.LLM, module.SamplingParams = FakeLLM, FakeSamplingParams
    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: on_cpu)
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.platforms", platforms)


def test_vllm_backend_plumbing(tiny_model_dir, monkeypatch):
    fake_vllm(monkeypatch)
    backend = build_backend(
        "vllm", str(tiny_model_dir), tensor_parallel_size=2, gpu_memory_utilization=0.5, max_model_len=4096, seed=7
    )
    samples = backend.generate([[5, 6], [7]], Protocol(n=2, temperature=0.6, top_p=0.95, max_new_tokens=100))
    llm = FakeLLM.instances[-1]
    assert llm.kwargs == {
        "model": str(tiny_model_dir),
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
        "dtype": "auto",
        "seed": 7,
        "enforce_eager": False,
        "max_model_len": 4096,
    }
    prompts, params = llm.requests[0]
    assert prompts == [{"prompt_token_ids": [5, 6]}, {"prompt_token_ids": [7]}]  # ids: no second BOS
    assert params.kwargs == {"n": 2, "temperature": 0.6, "top_p": 0.95, "max_tokens": 100}
    assert [(c.num_tokens, c.truncated) for c in samples[1]] == [(3, False), (3, True)]
    with pytest.raises(UsageError, match="use --backend transformers"):
        build_backend("vllm", "real_trl.tiny")


def test_vllm_backend_on_cpu_runs_one_eager_engine_in_process(tiny_model_dir, monkeypatch):
    fake_vllm(monkeypatch, on_cpu=True)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    backend = build_backend("vllm", str(tiny_model_dir), dtype="float32")
    backend.generate([[5, 6]], Protocol(n=1, temperature=0.0, top_p=1.0, max_new_tokens=4))
    kwargs = FakeLLM.instances[-1].kwargs
    assert (kwargs["enforce_eager"], kwargs["dtype"]) == (True, "float32")
    assert os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] == "0" and os.environ["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert backend.llm_kwargs["enforce_eager"] is False  # the GPU arguments themselves are left as they were


def test_data_parallel_gpu_assignment(tiny_model_dir, monkeypatch):
    assert gpu_groups(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_groups(4, 1, ["4", "5", "6", "7"]) == ["4", "5", "6", "7"]
    fake_vllm(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    with pytest.raises(UsageError, match="needs 4 GPUs but 3 are visible"):
        build_backend("vllm", str(tiny_model_dir), tensor_parallel_size=2, data_parallel_size=2)


def test_backend_choice(monkeypatch):
    import torch

    assert choose_backend("transformers", "m/x") == ("transformers", "as asked")
    assert choose_backend("auto", "real_trl.tiny")[0] == "transformers"
    monkeypatch.setitem(sys.modules, "vllm", None)  # not installed
    assert choose_backend("auto", "m/x") == ("transformers", "vLLM is not installed")
    fake_vllm(monkeypatch)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_backend("auto", "m/x") == ("transformers", "no GPU is visible")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_backend("auto", "m/x")[0] == "vllm"
    with pytest.raises(UsageError, match="unknown backend 'sglang'"):
        choose_backend("sglang", "m/x")
    with pytest.raises(UsageError, match="unknown backend"):
        build_backend("sglang", "x")


def test_transformers_backend_padding_and_lengths(tiny_model_dir, monkeypatch):
    import torch

    backend = build_backend("transformers", str(tiny_model_dir), batch_size=4)
    eos, pad = backend.tokenizer.eos_token_id, backend.tokenizer.pad_token_id
    seen = {}

    def fake_generate(input_ids, attention_mask, **kwargs):
        seen.update(input_ids=input_ids.tolist(), attention_mask=attention_mask.tolist(), **kwargs)
        new = torch.tensor([[40, eos, pad, pad], [41, 42, 43, 44]] * 2)[: input_ids.size(0)]
        return torch.cat([input_ids, new], dim=1)

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    samples = backend.generate([[10, 11, 12], [13]], Protocol(n=2, temperature=0.6, top_p=0.9, max_new_tokens=4))
    assert seen["input_ids"] == [[10, 11, 12]] * 2 + [[pad, pad, 13]] * 2  # left padding
    assert seen["attention_mask"][2] == [0, 0, 1]
    assert (seen["top_p"], seen["top_k"], seen["do_sample"], seen["max_new_tokens"]) == (0.9, 0, True, 4)
    assert [(c.num_tokens, c.truncated) for c in samples[0]] == [(2, False), (4, True)]
    assert samples[0][0].text == backend.tokenizer.decode([40])


def test_model_checks_fail_fast_with_one_line(tmp_path, tiny_model_dir):
    for missing in (str(tmp_path / "no-such-checkpoint"), "./ckpt", "a/b/c"):
        with pytest.raises(UsageError, match="does not exist"):
            check_model(missing)
    check_model("real_trl.tiny")
    check_model(str(tiny_model_dir))
    # The tests run with HF_HUB_OFFLINE=1 (conftest): a Hub id must be in the cache, and no request is made.
    with pytest.raises(UsageError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set"):
        check_model("nobody/no-such-model")


def test_bad_inputs(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        evaluate_model(str(tmp_path / "no-such-checkpoint"), ["aime24"], tmp_path / "out")
    with pytest.raises(UsageError, match="unknown grader 'deepscaler'"):
        evaluate_model("real_trl.tiny", ["aime24"], tmp_path / "out", grader="deepscaler")
    with pytest.raises(UsageError, match=r"unknown benchmark 'aime2024'.*aime24_hub"):
        resolve_benchmarks(["aime2024"])
    with pytest.raises(UsageError, match="does not exist"):
        resolve_benchmarks([f"aime24={tmp_path / 'missing.parquet'}"])
    with pytest.raises(UsageError, match="asked for twice"):
        resolve_benchmarks(["aime24", "aime24_hub"])


def write_local_benchmark(path):
    problems = [("What is 2+2?", "4"), ("What is 3*3?", "9"), ("What is 10-7?", "3")]
    with open(path, "w") as f:
        f.writelines(json.dumps({"problem": problem, "answer": answer}) + "\n" for problem, answer in problems)
    return path


def test_benchmark_specs(tmp_path):
    local = write_local_benchmark(tmp_path / "my-bench.jsonl")
    assert resolve_benchmarks(["all"]) == [Benchmark(name, name) for name in EVAL_BENCHMARKS]
    assert resolve_benchmarks(["math500", "aime24_hub", f"amc23={local}", str(local)]) == [
        Benchmark("math500", "math500"),
        Benchmark("aime24", "aime24_hub"),
        Benchmark("amc23", "amc23", str(local)),
        Benchmark("my-bench", "my-bench", str(local)),
    ]
    assert Benchmark("math500", "math500").source == "shipped: benchmarks/math500.parquet"
    assert Benchmark("aime24", "aime24_hub").source == "hub: HuggingFaceH4/aime_2024"


def test_end_to_end_on_cpu(tiny_model_dir, tmp_path, monkeypatch):
    bench = write_local_benchmark(tmp_path / "bench.jsonl")
    out = tmp_path / "eval"
    protocol = Protocol(n=2, max_new_tokens=16)
    options = {"batch_size": 4, "seed": 0}
    summary = evaluate_model(
        str(tiny_model_dir), [f"aime24={bench}"], out, protocol, backend="transformers", backend_options=options
    )

    saved = [json.loads(line) for line in (out / "aime24.jsonl").read_text().splitlines()]
    assert len(saved) == 6 and {r["problem_index"] for r in saved} == {0, 1, 2}
    for row in saved:
        assert set(row) >= {"completion", "extracted_answer", "score", "num_tokens", "truncated", "answer", "prompt"}
        assert 1 <= row["num_tokens"] <= 16
        assert row["num_tokens"] == 16 or not row["truncated"]
        assert "Let's think step by step" in row["prompt"]  # the training prompt, under the chat template
    assert summary["protocol"] == protocol.to_dict() and summary["grader"] == "math_verify"
    assert summary["benchmarks"]["aime24"]["num_samples"] == 6
    content = summary["benchmark_content"]["aime24"]
    assert content["source"] == str(bench) and content["problems"] == 3
    assert content["fingerprint"] != shipped_benchmarks()["benchmarks"]["aime24"]["content_fingerprint"]
    assert summary["average"]["pass@1"] == summary["benchmarks"]["aime24"]["pass@1"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "results.csv").read_text().splitlines()[0].startswith("benchmark,num_problems,num_samples")
    assert "| AIME24 |" in (out / "results.md").read_text()

    # Resuming a finished run neither loads the model nor generates.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished benchmark was regenerated")

    monkeypatch.setattr(TransformersBackend, "__init__", refuse)
    again = evaluate_model(
        str(tiny_model_dir), [f"aime24={bench}"], out, protocol, backend="transformers", backend_options=options
    )
    assert again["benchmarks"] == summary["benchmarks"]


def test_tiny_model_on_a_shipped_benchmark_offline(tmp_path, monkeypatch):
    import datasets

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked for data")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    summary = evaluate_model(
        "real_trl.tiny", ["math500"], tmp_path, Protocol(n=1, max_new_tokens=4), limit=2, grader="paper"
    )
    assert summary["backend"] == "transformers" and summary["limit"] == 2
    assert summary["benchmarks"]["math500"]["num_problems"] == 2
    paper = shipped_benchmarks()["benchmarks"]["math500"]
    assert summary["benchmark_content"]["math500"]["fingerprint"] == paper["content_fingerprint"]
    assert summary["benchmark_content"]["math500"]["problems"] == 500
    assert (
        "0.000 (2/500)" in (tmp_path / "results.md").read_text() or "(2/500)" in (tmp_path / "results.md").read_text()
    )


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model_name_or_path", "./no-such-checkpoint"], "model path ./no-such-checkpoint does not exist"),
        (["--model_name_or_path", "real_trl.tiny", "--n", "0"], "n (samples per problem) must be >= 1, got 0"),
        (["--model_name_or_path", "real_trl.tiny", "--benchmarks", "aime2024"], "unknown benchmark 'aime2024'"),
        (["--model_name_or_path", "real_trl.tiny", "--grader", "exact"], "invalid choice: 'exact'"),
    ],
)
def test_cli_mistakes_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = run_script(*args, "--output_dir", str(tmp_path))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_cli_help_builds_without_torch():
    code = (
        "import sys; sys.path.insert(0, 'scripts'); import evaluate; from real_trl.cli import make_parser; "
        "make_parser([evaluate.EvaluateArguments], evaluate.DESCRIPTION).format_help(); "
        "print(sorted(m for m in ('torch', 'vllm') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cli_runs_the_tiny_model(tmp_path):
    result = run_script(
        "--model_name_or_path",
        "real_trl.tiny",
        "--benchmarks",
        "aime24",
        "--n",
        "1",
        "--max_new_tokens",
        "4",
        "--limit",
        "2",
        "--output_dir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "real_trl.tiny: transformers backend (real_trl.tiny is built in memory)" in result.stderr
    assert "| real_trl.tiny | 0.000 (2/30) | – |" in result.stdout
    assert json.loads((tmp_path / "summary.json").read_text())["limit"] == 2


class Oracle(FakeBackend):
    """Answers every problem with its reference (or a wrong answer), found from the prompt it is given."""

    def __init__(self, dataset, wrong=False):
        super().__init__([])
        ids = render_prompts(self.tokenizer, dataset["prompt"])
        self.answers = {tuple(i): a for i, a in zip(ids, dataset["answer"], strict=True)}
        self.wrong = wrong

    def problems_per_call(self, protocol):
        return 1000

    def generate(self, prompt_ids, protocol):
        out = []
        for ids in prompt_ids:
            answer = self.answers[tuple(ids)]
            answer = "\\text{no}" if self.wrong else answer[0] if isinstance(answer, list) else answer
            out.append([Completion(f"<think>...</think> So \\boxed{{{answer}}}.", 9, False)] * protocol.n)
        return out


@pytest.mark.parametrize("grader", ["math_verify", "paper"])
def test_shipped_benchmarks_score_their_own_references(tmp_path, grader):
    # The loader, the prompt rendering and both graders agree on the paper's rows: a model answering
    # every reference scores 1, one answering nonsense scores 0 (first 15 problems of each benchmark).
    for name in EVAL_BENCHMARKS:
        dataset = load_named_dataset(name)
        right = evaluate_benchmark(
            Oracle(dataset), name, dataset, Protocol(n=1), tmp_path / "right", limit=15, grader=grader
        )
        wrong = evaluate_benchmark(
            Oracle(dataset, wrong=True), name, dataset, Protocol(n=1), tmp_path / "wrong", limit=15, grader=grader
        )
        assert (right["metrics"]["pass@1"], wrong["metrics"]["pass@1"]) == (1.0, 0.0), name
