"""The supervised warm start: a tiny Qwen2 taught arithmetic and two habits the verifier rejects, cached."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from real_trl.arena.heldout import evaluate, prompt_text
from real_trl.arena.settings import ArenaConfig, default_cache_dir
from real_trl.arena.task import build_splits, reference_completion
from real_trl.tiny import build_tiny_model, build_tiny_tokenizer


def warm_start_target(answer: str, rng: random.Random, cfg: ArenaConfig) -> str:
    """The supervised target for one problem: usually the reference completion, but with probability
    `sft_unboxed` the bare answer (no \\boxed, so the verifier finds no answer) and with probability
    `sft_off_by_one` the answer plus one. These habits do not depend on the question, so a policy that
    drops them improves on unseen questions too: that is what RL from the 0/1 verifier must find."""
    draw = rng.random()
    if draw < cfg.sft_unboxed:
        return answer
    if draw < cfg.sft_unboxed + cfg.sft_off_by_one:
        return reference_completion(str(int(answer) + 1))
    return reference_completion(answer)


def _sft_batch(tokenizer, problems: list[dict], rng: random.Random, cfg: ArenaConfig):
    rows = []
    for p in problems:
        prompt = tokenizer(prompt_text(tokenizer, p["question"]), add_special_tokens=False)["input_ids"]
        target_text = warm_start_target(p["answer"], rng, cfg) + tokenizer.eos_token
        target = tokenizer(target_text, add_special_tokens=False)["input_ids"]
        rows.append((prompt, target))
    width = max(len(a) + len(b) for a, b in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)  # loss on the completion only
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (prompt, target) in enumerate(rows):
        n = len(prompt) + len(target)
        ids[i, :n] = torch.tensor(prompt + target)
        mask[i, :n] = 1
        labels[i, len(prompt) : n] = torch.tensor(target)
    return ids, mask, labels


def _train_warm_start(cfg: ArenaConfig, progress: bool):
    """Next-token cross-entropy with AdamW, a short warm-up and cosine decay to 10%; returns the model,
    its tokenizer and its held-out scores."""
    torch.set_num_threads(cfg.num_threads)
    train, heldout = build_splits(cfg.num_train, cfg.num_heldout, cfg.task_seed)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(
        tokenizer, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads, seed=cfg.model_seed
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.sft_lr, weight_decay=0.0)
    warmup = max(1, cfg.sft_steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / cfg.sft_steps))),
    )
    rng = random.Random(cfg.model_seed)
    start = time.time()
    model.train()
    bar = tqdm(range(cfg.sft_steps), desc="warm start (SFT)", disable=not progress)
    for _ in bar:
        ids, mask, labels = _sft_batch(tokenizer, rng.sample(train, cfg.sft_batch_size), rng, cfg)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    info = {"settings_key": cfg.cache_key(), "sft_wall_s": round(time.time() - start, 1)}
    info.update(evaluate(model, tokenizer, heldout, cfg, seed=cfg.task_seed))
    return model, tokenizer, info


def warm_start(cfg: ArenaConfig, cache_dir: str | Path | None = None, progress: bool = True) -> tuple[Path, dict]:
    """Train (or load from the cache) the supervised warm start; returns its directory and held-out scores.

    Cached under `cache_dir/warm-<hash of the settings>` (default: `default_cache_dir()`), so changing
    any task, model or SFT field trains a new one and later runs skip it.
    """
    path = Path(cache_dir or default_cache_dir()) / f"warm-{cfg.cache_key()}"
    info_file = path / "warm_start.json"
    if info_file.exists():
        return path, json.loads(info_file.read_text())

    model, tokenizer, info = _train_warm_start(cfg, progress)
    # Write to a scratch directory first: an interrupted run never leaves a half-written cache entry.
    scratch = path.with_name(path.name + f".tmp{os.getpid()}")
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    (scratch / "warm_start.json").write_text(json.dumps(info, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        scratch.rename(path)
    except OSError:  # another process cached the same settings meanwhile: keep theirs
        shutil.rmtree(scratch, ignore_errors=True)
        info = json.loads(info_file.read_text())
    return path, info
