#!/bin/bash
# GPU check for the launch path: a few REAL and GRPO steps on a randomly initialised model with
# DeepSeek-R1-Distill-Qwen-1.5B's shapes (151,936-token vocabulary included), bf16 compute (one process keeps no float32
# copy of bf16 weights, so the launcher loads them in float32), gradient checkpointing, transformers generation
# (no vLLM), COMPLETION-token completions. Prints tokens/s and peak memory for both.
#
#   scripts/gpu_check.sh                          # one GPU, about 5 minutes
#   SHAPE=tiny scripts/gpu_check.sh               # CPU dry run of the same path with the tiny model
#   COMPLETION=4096 STEPS=2 scripts/gpu_check.sh  # longer sequences, one generation batch
#
# A random model almost never samples its end-of-sequence token, so every completion runs to COMPLETION tokens.
# Each step: 4 completions of one prompt x 2 prompts per generation batch, 4 sequences per micro-step,
# one optimizer step per micro-step (2 per generation batch).
set -euo pipefail
cd "$(dirname "$0")/.."

SHAPE=${SHAPE:-1.5b}
STEPS=${STEPS:-4}
OUT=${OUT:-outputs/gpu_check}
if [[ $SHAPE == tiny ]]; then
    COMPLETION=${COMPLETION:-32}
    DEVICE=(--use_cpu true)
else
    COMPLETION=${COMPLETION:-2048}
    DEVICE=(--use_cpu false)
fi
export OUT SHAPE HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

# A model folder with the 1.5B architecture (or the tiny one) and a tokenizer padded to its vocabulary.
python - <<'PY'
import os
from pathlib import Path

from transformers import Qwen2Config, Qwen2ForCausalLM

from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

path = Path(os.environ["OUT"]) / f"model-{os.environ['SHAPE']}"
if not (path / "config.json").exists():
    tokenizer = build_tiny_tokenizer()
    if os.environ["SHAPE"] == "tiny":
        model = build_tiny_model(tokenizer)
    else:
        # DeepSeek-R1-Distill-Qwen-1.5B's config.json, minus the weights. The byte-level tokenizer is padded
        # with never-produced tokens to the model's vocabulary, so sampled ids always decode.
        tokenizer.add_tokens([f"<unused_{i}>" for i in range(151936 - len(tokenizer))])
        config = Qwen2Config(
            vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
            num_attention_heads=12, num_key_value_heads=2, max_position_embeddings=131072, rope_theta=10000.0,
            rms_norm_eps=1e-6, tie_word_embeddings=False, bos_token_id=None,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        )
        model = Qwen2ForCausalLM(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
print(f"model: {path}")
PY

for LOSS in real grpo; do
    python - "$LOSS" \
        --config recipes/smoke/real_toy.yaml --model_name_or_path "$OUT/model-$SHAPE" "${DEVICE[@]}" \
        --dtype bfloat16 --bf16 true --attn_implementation sdpa --activation_checkpointing true \
        --loss_type "$LOSS" --beta 0 --num_generations 4 --per_device_train_batch_size 4 \
        --gradient_accumulation_steps 1 --steps_per_generation 2 --max_steps "$STEPS" \
        --max_completion_length "$COMPLETION" --max_prompt_length 1024 --learning_rate 2e-6 \
        --eval_strategy no --save_strategy no --logging_steps 1 --report_to none \
        --output_dir "$OUT/$LOSS" --overwrite_output_dir true <<'PY'
import json
import resource
import sys

import torch

from real_trl.launch import build_arguments, check_launch, train

loss, argv = sys.argv[1], sys.argv[2:]
settings, plan = check_launch(argv)
trainer = train(*build_arguments(settings, plan), plan)
history = trainer.state.log_history
runtime = next(entry["train_runtime"] for entry in reversed(history) if "train_runtime" in entry)
tokens = max(entry.get("num_tokens", 0) for entry in history)  # prompt + completion tokens generated and trained on
steps = [entry for entry in history if "step_time" in entry]
if torch.cuda.is_available():
    peak = torch.cuda.max_memory_allocated() / 2**30
    device = torch.cuda.get_device_name()
else:  # ru_maxrss is in KiB on Linux
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    device = "cpu (peak RSS)"
result = {
    "loss_type": loss,
    "device": device,
    "steps": trainer.state.global_step,
    "mean_completion_tokens": max(entry.get("completions/mean_length", 0) for entry in history),
    "tokens": tokens,
    "seconds": round(runtime, 1),
    "tokens_per_s": round(tokens / runtime, 1),
    "mean_step_time_s": round(sum(e["step_time"] for e in steps) / max(len(steps), 1), 2),
    "peak_memory_gib": round(peak, 2),
}
print("GPU_CHECK " + json.dumps(result), flush=True)
PY
done
