"""Save the tiny random Qwen2 model and its tokenizer to a folder, for runs that want a model on disk.

    python scripts/make_tiny_model.py outputs/tiny-model
    ... scripts/train.py --config recipes/smoke/real_toy.yaml --model_name_or_path outputs/tiny-model
"""

import argparse

from real_trl.tiny import save_tiny_model

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", nargs="?", default="outputs/tiny-model", help="folder to write (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed (default: %(default)s)")
    args = parser.parse_args()
    print(f"saved the tiny model and tokenizer to {save_tiny_model(args.path, seed=args.seed)}")
