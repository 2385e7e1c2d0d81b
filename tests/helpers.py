"""Helpers shared by several test modules: the tiny runs' prompts and settings, deterministic rollouts and rewards,
R1-style completions, free ports, FSDP on CPU."""

from __future__ import annotations

import socket
import subprocess
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prompts(n: int = 16):
    """A dataset of n chat prompts ("What is i + i?")."""
    from datasets import Dataset

    return Dataset.from_dict({"prompt": [[{"role": "user", "content": f"What is {i} + {i}?"}] for i in range(n)]})


def tiny_run_settings(tmp_path, **overrides) -> dict:
    """REALConfig settings of a tiny CPU run: groups of 4, one group per micro-step, 4 micro-steps per generation
    batch and 2 per optimizer step (so TRL's condition for a pi_old forward holds), completions of up to 12 tokens,
    2 optimizer steps, logged at each."""
    settings = {
        "output_dir": str(tmp_path),
        "loss_type": "real",
        "per_device_train_batch_size": 4,
        "num_generations": 4,
        "gradient_accumulation_steps": 2,
        "steps_per_generation": 4,
        "max_completion_length": 12,
        "max_steps": 2,
        "report_to": [],
        "save_strategy": "no",
        "logging_steps": 1,
        "use_cpu": True,
        "bf16": False,
        "disable_tqdm": True,
    }
    return {**settings, **overrides}


def parity_reward(completions, **kwargs) -> list[float]:
    """1.0 for completions of odd length: a reward a random tiny model gets about half the time."""
    return [float(len(c[0]["content"]) % 2) for c in completions]


def r1(answer: str) -> str:
    """A typical R1-distilled completion ending in a boxed `answer`."""
    return f"<think>\nLet me work this out... so it is {answer}?\n</think>\n\nThe answer is $\\boxed{{{answer}}}$."


def rollout(prompts, trainer) -> dict:
    """A deterministic stand-in for generation (TRL's `rollout_func`): each completion depends only on
    its prompt text and its position in the group, whatever the number of processes."""
    tokenizer = trainer.processing_class
    first_row = trainer.accelerator.process_index * len(prompts)
    prompt_ids, completion_ids = [], []
    for i, prompt in enumerate(prompts):
        text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        member = (first_row + i) % trainer.num_generations  # groups are contiguous in the global order
        seed = zlib.crc32(text.encode()) + 7919 * member
        length = 2 + seed % 7
        prompt_ids.append(tokenizer(text)["input_ids"])
        completion_ids.append([10 + (seed // 7 + 31 * t) % 200 for t in range(length)] + [tokenizer.eos_token_id])
    return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}


def run_help(script: str, modules: tuple[str, ...] = ("torch",)) -> tuple[int, str, dict[str, bool]]:
    """Run `scripts/<script> --help` in a fresh interpreter; return its exit code, its output, and which of
    `modules` it imported. `real_trl` is a bare package there, so only what the script imports counts."""
    probe = (
        "import runpy, sys, types\n"
        f"package = types.ModuleType('real_trl'); package.__path__ = [{str(ROOT / 'real_trl')!r}]\n"
        "sys.modules['real_trl'] = package\n"
        f"sys.argv = [{script!r}, '--help']\n"
        "try:\n"
        f"    runpy.run_path({str(ROOT / 'scripts' / script)!r}, run_name='__main__')\n"
        "except SystemExit as stop:\n"
        f"    print('exit', stop.code, *[name in sys.modules for name in {list(modules)!r}])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], check=False, capture_output=True, text=True, timeout=120)
    *_, last = done.stdout.strip().splitlines() or [""]
    words = last.split()
    if len(words) != 2 + len(modules) or words[0] != "exit":
        raise AssertionError(f"{script} --help did not exit cleanly:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    code = 0 if words[1] == "None" else int(words[1])
    return code, done.stdout, dict(zip(modules, (word == "True" for word in words[2:]), strict=True))


def allow_fsdp_on_cpu():
    """accelerate 1.15 enables FSDP only on accelerators (MULTI_CPU is missing from its list), though
    FSDP2's fully_shard runs over gloo. Lift that gate so the CPU test exercises real sharding."""
    from accelerate.state import AcceleratorState, DistributedType, PartialState

    original_init = AcceleratorState.__init__

    def init(self, *args, fsdp_plugin=None, **kwargs):
        original_init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # AcceleratorState re-reads PartialState's shared state on every construction
            PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = fsdp_plugin

    AcceleratorState.__init__ = init
