"""Train with any recipe: `accelerate launch --config_file CONFIG scripts/train.py --config RECIPE [--field value ...]`.

All logic lives in real_trl.launch; `python scripts/train.py --help` lists every field.
"""

from real_trl.launch import main

if __name__ == "__main__":
    main()
