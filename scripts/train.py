"""Train with any recipe: `accelerate launch --config_file CONFIG scripts/train.py --config RECIPE [--field value ...]`.

The logic lives in real_trl.launch; `python scripts/train.py --help` lists every field, and
`python scripts/train.py --config RECIPE --dry_run` prints the run's plan without loading anything.
"""

from real_trl.launch import main

if __name__ == "__main__":
    main()
