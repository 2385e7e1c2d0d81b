"""Helpers shared by several test modules: deterministic rollouts and rewards, free ports."""

from __future__ import annotations

import socket
import zlib


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def parity_reward(completions, **kwargs) -> list[float]:
    """1.0 for completions of odd length: a reward a random tiny model gets about half the time."""
    return [float(len(c[0]["content"]) % 2) for c in completions]


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
