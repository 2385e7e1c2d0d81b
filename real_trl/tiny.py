"""A tiny Qwen2-style causal LM and a character-level tokenizer, built locally.

Nothing here touches the Hub: tests, the smoke recipe and the CPU demo all build their model with
`build_tiny_model` and save it with `save_tiny_model`, so the whole pipeline runs offline.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]

# Qwen-style chat template; the assistant turn opens with "<think>\n" like the R1-distilled models.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with no merges: one token per byte, plus the chat and think markers.

    It is laid out exactly like Qwen2's tokenizer (byte-level pre-tokenizer and decoder), so that
    `AutoTokenizer`, which rebuilds a Qwen2 tokenizer from the saved vocabulary, loads it unchanged.
    """
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + alphabet)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    # As in the R1-distilled tokenizers, the think markers are added but not special tokens, so they
    # survive `skip_special_tokens=True` decoding and the reward can find the closing `</think>`.
    tokenizer.add_tokens(["<think>", "</think>"])
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(
    tokenizer: PreTrainedTokenizerFast | None = None,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 model sized for CPU tests (~100k parameters by default), with
    its vocabulary and special tokens taken from `tokenizer` (default: `build_tiny_tokenizer()`).

    Two heads of 32 by default: vLLM's CPU attention takes head sizes from 32 up (not 16), so the same
    model also runs with `use_vllm` on CPU. Key/value heads are half the heads, so the projections' shapes
    (and the parameter count) do not depend on `num_heads`."""
    tokenizer = tokenizer or build_tiny_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=2048,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def save_tiny_model(path: str | Path, **kwargs) -> Path:
    """Build the tiny model and tokenizer and save both to `path` (loadable with `from_pretrained`)."""
    path = Path(path)
    tokenizer = kwargs.pop("tokenizer", None) or build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, **kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
