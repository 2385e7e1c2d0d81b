import itertools
import json
import sys
import types
from fractions import Fraction
from math import comb

import pytest

from real_trl import evaluation
from real_trl.evaluation import (
    Completion,
    Protocol,
    average_over_benchmarks,
    benchmark_metrics,
    evaluate_benchmark,
    evaluate_model,
    gpu_groups,
    pass_at_k,
    pass_at_k_values,
)


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


def test_protocol_validation():
    with pytest.raises(ValueError, match="n"):
        Protocol(n=0)
    assert Protocol().to_dict() == {"n": 16, "temperature": 0.6, "top_p": 0.95, "max_new_tokens": 8192}


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
    return [{"prompt": [{"role": "user", "content": f"What is {a}?"}], "answer": a} for a in answers]


def test_scoring_with_the_training_reward_and_resume(tmp_path):
    protocol = Protocol(n=2, max_new_tokens=8)
    backend = FakeBackend(["<think>so</think> The answer is \\boxed{4}.", "no answer"])
    dataset = toy_dataset(["4", "5", "4"])
    metrics = evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path)
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

    # Finished: read back, nothing generated.
    assert evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path) == metrics
    assert backend.calls == [2, 1]

    # Interrupted mid-way (metrics not written, last problem's rows half there): only that problem is redone.
    (tmp_path / "amc23.json").unlink()
    lines = (tmp_path / "amc23.jsonl").read_text().splitlines()
    (tmp_path / "amc23.jsonl").write_text("\n".join(lines[:5]) + "\n" + lines[5][:20])
    assert evaluate_benchmark(backend, "amc23", dataset, protocol, tmp_path) == metrics
    assert backend.calls == [2, 1, 1]
    assert len((tmp_path / "amc23.jsonl").read_text().splitlines()) == 6

    # Another protocol in the same folder is refused, with the fix named.
    with pytest.raises(ValueError, match="--overwrite"):
        evaluate_benchmark(backend, "amc23", dataset, Protocol(n=1, max_new_tokens=8), tmp_path)


class FakeLLM:
    instances = []

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


def test_vllm_backend_plumbing(tiny_model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSamplingParams))
    backend = evaluation.build_backend(
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


def test_data_parallel_gpu_assignment(tiny_model_dir, monkeypatch):
    assert gpu_groups(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_groups(4, 1, ["4", "5", "6", "7"]) == ["4", "5", "6", "7"]
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSamplingParams))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    with pytest.raises(ValueError, match="needs 4 GPUs but 3 are visible"):
        evaluation.build_backend("vllm", str(tiny_model_dir), tensor_parallel_size=2, data_parallel_size=2)


def test_transformers_backend_padding_and_lengths(tiny_model_dir, monkeypatch):
    import torch

    backend = evaluation.build_backend("transformers", str(tiny_model_dir), batch_size=4)
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


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate_model(str(tmp_path / "no-such-checkpoint"), ["aime24"], tmp_path / "out")
    with pytest.raises(ValueError, match="Unknown benchmark 'aime2024'"):
        evaluation.resolve_benchmarks(["aime2024"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluation.resolve_benchmarks([f"aime24={tmp_path / 'missing.parquet'}"])
    with pytest.raises(ValueError, match="Unknown backend"):
        evaluation.build_backend("sglang", "x")


def write_local_benchmark(path):
    problems = [("What is 2+2?", "4"), ("What is 3*3?", "9"), ("What is 10-7?", "3")]
    with open(path, "w") as f:
        for problem, answer in problems:
            f.write(json.dumps({"problem": problem, "answer": answer}) + "\n")
    return path


def test_benchmark_specs(tmp_path):
    local = write_local_benchmark(tmp_path / "my-bench.jsonl")
    assert evaluation.resolve_benchmarks(["all"])[-1] == ("olympiad_bench", None)
    assert evaluation.resolve_benchmarks(["math500", f"amc23={local}", str(local)]) == [
        ("math500", None),
        ("amc23", str(local)),
        ("my-bench", str(local)),
    ]


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
    assert summary["protocol"] == protocol.to_dict()
    assert summary["benchmarks"]["aime24"]["num_samples"] == 6
    assert summary["average"]["pass@1"] == summary["benchmarks"]["aime24"]["pass@1"]
    assert json.loads((out / "summary.json").read_text()) == summary
    assert (out / "results.csv").read_text().splitlines()[0].startswith("benchmark,num_problems,num_samples")
    assert "| AIME24 |" in (out / "results.md").read_text()

    # Resuming a finished run neither loads the model nor generates.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished benchmark was regenerated")

    monkeypatch.setattr(evaluation.TransformersBackend, "__init__", refuse)
    again = evaluate_model(
        str(tiny_model_dir), [f"aime24={bench}"], out, protocol, backend="transformers", backend_options=options
    )
    assert again["benchmarks"] == summary["benchmarks"]


class Oracle(FakeBackend):
    """Answers every problem with its reference (or a wrong answer), found from the prompt it is given."""

    def __init__(self, dataset, wrong=False):
        super().__init__([])
        ids = evaluation.render_prompts(self.tokenizer, dataset["prompt"])
        self.answers = {tuple(i): a for i, a in zip(ids, dataset["answer"])}
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


def test_real_benchmarks_score_their_own_references(shared_data, tmp_path):
    # The loader, the prompt rendering and the training reward agree on real rows: a model answering
    # every reference scores 1, one answering nonsense scores 0 (first 15 problems of each benchmark).
    from real_trl.data import EVAL_BENCHMARKS, load_named_dataset

    for name in EVAL_BENCHMARKS:
        dataset = load_named_dataset(name, shared_data / "benchmarks")
        dataset = dataset.select(range(15))
        right = evaluate_benchmark(Oracle(dataset), name, dataset, Protocol(n=1), tmp_path / "right")
        wrong = evaluate_benchmark(Oracle(dataset, wrong=True), name, dataset, Protocol(n=1), tmp_path / "wrong")
        assert (right["pass@1"], wrong["pass@1"]) == (1.0, 0.0), name
