"""Save the tiny random Qwen2 model and its tokenizer to a folder, for runs that want a model on disk.

Writes what `real_trl.tiny` builds in memory (a randomly initialised Qwen2 of about 100k parameters and
its byte-level tokenizer with the R1 chat template), loadable with `from_pretrained`:

    python scripts/make_tiny_model.py --output_dir outputs/tiny-model
    python scripts/train.py --config recipes/smoke/real_toy.yaml --model_name_or_path outputs/tiny-model
"""

from dataclasses import dataclass, field

from real_trl.cli import parse


@dataclass
class Arguments:
    output_dir: str = field(default="outputs/tiny-model", metadata={"help": "Folder to write the model into."})
    seed: int = field(default=0, metadata={"help": "Initialisation seed of the model's weights."})


if __name__ == "__main__":
    (args,) = parse([Arguments], __doc__)
    from real_trl.tiny import save_tiny_model  # after parsing: --help answers before torch loads

    print(f"saved the tiny model and tokenizer to {save_tiny_model(args.output_dir, seed=args.seed)}")
