"""A recipe YAML plus command-line flags, read into the launcher's namespace with every mistake collected.

The recipe sets defaults and the command line overrides them (TRL's `TrlParser` semantics, `env:` included),
but every value is checked against its field before anything is built, so a mistake names where it came from
(`recipe key 'max_steps'` or `flag --tau`) and all of them are reported together.
"""

from __future__ import annotations

import argparse
import difflib
import math
import os
from dataclasses import dataclass, field, fields

import yaml
from transformers.hf_argparser import string_to_bool
from trl import GRPOConfig, ModelConfig

from real_trl.cli import UsageError, make_parser
from real_trl.config import REALConfig

DESCRIPTION = (
    "Train with REAL (or a TRL baseline) from a recipe: `--config RECIPE.yaml` sets the fields and any "
    "`--field value` overrides them. Launch with `accelerate launch --config_file accelerate_configs/CONFIG.yaml "
    "scripts/train.py --config RECIPE.yaml`, or with `python` for one process. Before loading anything the launcher "
    "checks the fields and their values, the data and reward names, the batch arithmetic on the launched processes, "
    "output_dir and the model, and reports every problem at once; `--dry_run` prints the run's plan and exits. The "
    "project's fields come first, then TRL's GRPOConfig (with transformers' TrainingArguments), then trl.ModelConfig."
)
# REALConfig's own fields (and the loss_type it redefines) are listed with the project's.
REAL_FIELDS = {f.name for f in fields(REALConfig)} - {f.name for f in fields(GRPOConfig)} | {"loss_type"}


@dataclass
class ScriptArguments:
    """What the launcher needs beyond `REALConfig` and `ModelConfig`: data, rewards, the run folder."""

    dataset_name: str = field(
        default="deepscaler",
        metadata={
            "help": "Training set by name (real_trl.data: 'deepscaler', 'dapo17k', or 'toy', a tiny arithmetic "
            "set for smoke runs)."
        },
    )
    dataset_path: str | None = field(
        default=None,
        metadata={
            "help": "Load the training set from this local file or folder (parquet, jsonl, json) or Hub id "
            "instead of the registry's default."
        },
    )
    dataset_split: str | None = field(
        default=None, metadata={"help": "Split of the training set; default: the registry's choice."}
    )
    eval_dataset_name: str | None = field(
        default="aime24",
        metadata={"help": "Validation set by name (e.g. 'aime24', 'toy'). Needed when eval_strategy is not 'no'."},
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "Load the validation set from this local file or folder or Hub id."}
    )
    eval_dataset_split: str | None = field(
        default=None, metadata={"help": "Split of the validation set; default: the registry's choice."}
    )
    max_prompt_length: int | None = field(
        default=1024,
        metadata={
            "help": "Drop prompts longer than this many tokens under the model's chat template (the paper: "
            "1024). TRL 1.16 has no prompt-length setting of its own, so the data loader filters."
        },
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N training problems (after filtering); for quick runs."}
    )
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "Keep only the first N validation problems (after filtering)."}
    )
    reward_funcs: list[str] = field(
        default_factory=lambda: ["math_reward"],
        metadata={
            "help": "Reward functions by name (real_trl.rewards.REWARD_NAMES). REAL labels a completion "
            "positive when the weighted sum of rewards exceeds label_threshold."
        },
    )
    require_think: bool = field(
        default=True,
        metadata={
            "help": "math_reward scores only the text after the closing </think> (0 when it is missing), as "
            "the paper's verifier does for R1-distilled models. Set false for models that do not think."
        },
    )
    resume: bool = field(
        default=False,
        metadata={
            "help": "Resume from the last checkpoint in output_dir (start fresh, with a note, when there is "
            "none, so a requeued job can always pass it). resume_from_checkpoint=PATH picks one explicitly."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start a new run in an output_dir that holds one: its checkpoints are deleted first. "
            "Without this (or resume) the launcher refuses such a folder."
        },
    )
    allow_changed_settings: bool = field(
        default=False,
        metadata={
            "help": "Resume even though the run's key settings (model, data, loss, tau, learning rate, batch "
            "arithmetic) differ from those output_dir's run started with."
        },
    )
    dry_run: bool = field(
        default=False,
        metadata={
            "help": "Check the recipe, print the run's plan (processes, batch arithmetic, steps, generation "
            "batches, epochs, precision) and exit without loading a model or a dataset. The config classes' "
            "own checks run when training starts."
        },
    )
    accelerate_config: str | None = field(
        default=None,
        metadata={
            "help": "With --dry_run: plan for this accelerate config (e.g. accelerate_configs/zero2.yaml) "
            "instead of the current launch."
        },
    )


# How many values a flag takes, by argparse nargs (the only ones HfArgumentParser uses).
_VALUE_COUNTS = {None: (1, 1), "?": (0, 1), "+": (1, math.inf), "*": (0, math.inf), 0: (0, 0)}
_VALUE_COUNT_WORDS = {
    None: "one value",
    "?": "at most one value",
    "+": "one or more values",
    "*": "any values",
    0: "no value",
}


def build_parser() -> argparse.ArgumentParser:
    """The launcher's parser: `--config` first, then the project's fields, then TRL's and the model's."""
    parser = make_parser(
        (ScriptArguments, REALConfig, ModelConfig),
        DESCRIPTION,
        usage="%(prog)s --config RECIPE.yaml [--field value ...] [--dry_run]",
    )
    parser.add_argument("--config", metavar="RECIPE.yaml", help="Recipe: a YAML mapping of field: value.")
    _group_help(parser)
    return parser


def _group_help(parser: argparse.ArgumentParser) -> None:
    # HfArgumentParser puts every field in one group, in dataclass order (REAL's fields among GRPOConfig's);
    # regrouping only changes what --help shows.
    general = parser._action_groups[1]
    own_names = {f.name for f in fields(ScriptArguments)}
    model_names = {f.name for f in fields(ModelConfig)}
    titles = {
        "own": "real_trl: data, rewards, run folder, REAL loss",
        "trl": "TRL GRPOConfig and transformers TrainingArguments",
        "model": "model (trl.ModelConfig)",
    }
    groups = {key: parser.add_argument_group(title) for key, title in titles.items()}
    for action in list(general._group_actions):
        if action.dest in ("help", "config"):
            continue
        own = action.dest in own_names or action.dest in REAL_FIELDS
        key = "own" if own else "model" if action.dest in model_names else "trl"
        general._group_actions.remove(action)
        groups[key]._group_actions.append(action)
    config = general._group_actions.pop()  # --config was added last; show it right after --help
    general._group_actions.insert(1, config)


def read_recipe(path: str) -> dict:
    """The recipe at `path` as a dict; a missing file or malformed YAML raises UsageError with line and column."""
    try:
        with open(path) as f:
            recipe = yaml.safe_load(f)
    except OSError as error:
        raise UsageError(f"cannot read recipe {path}: {error.strerror}") from error
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UsageError(f"recipe {path} is not valid YAML{where}: {error.problem or error.context}") from error
    except yaml.YAMLError as error:
        raise UsageError(f"recipe {path} is not valid YAML: {str(error).splitlines()[0]}") from error
    if not isinstance(recipe, dict):
        raise UsageError(f"recipe {path} must be a YAML mapping of field: value")
    return recipe


def parse_recipe_and_flags(argv: list[str]) -> argparse.Namespace:
    """Read `--config RECIPE` and the flags in `argv` into one namespace; raise UsageError listing every mistake."""
    parser = build_parser()
    args = list(argv)
    if "-h" in args or "--help" in args:
        parser.parse_args(["--help"])  # prints the help and exits 0
    recipe_path, args = _take_config(args)
    problems = []
    if recipe_path is not None:
        recipe = read_recipe(recipe_path)
        for key, value in (recipe.pop("env", None) or {}).items():
            os.environ[str(key)] = str(value)
        problems += _check_recipe_values(recipe, recipe_path, parser)
        parser.set_defaults(**_recipe_defaults(recipe, parser))
    problems += _check_flags(args, parser)
    if problems:
        raise UsageError(*problems)

    def refuse(message: str):  # whatever argparse still finds, as one line
        raise UsageError(message)

    parser.error = refuse
    return parser.parse_args(args)


def _recipe_defaults(recipe: dict, parser: argparse.ArgumentParser) -> dict:
    defaults = {}
    for key, value in recipe.items():
        action = _action(parser, str(key))
        if action is not None:  # a list field written as one value is a list of one
            defaults[action.dest] = [value] if action.nargs in ("+", "*") and not isinstance(value, list) else value
    return defaults


def _take_config(args: list[str]) -> tuple[str | None, list[str]]:
    for at, arg in enumerate(args):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1], args[:at] + args[at + 1 :]
        if arg == "--config":
            if at + 1 >= len(args) or args[at + 1].startswith("--"):
                raise UsageError("--config needs a path to a recipe YAML file")
            return args[at + 1], args[:at] + args[at + 2 :]
    return None, args


def _action(parser: argparse.ArgumentParser, name: str) -> argparse.Action | None:
    return parser._option_string_actions.get(f"--{name}")


def _suggest(name: str, parser: argparse.ArgumentParser, prefix: str = "") -> str:
    close = difflib.get_close_matches(name, [a.dest for a in parser._actions], n=1)
    return f" (did you mean {prefix}{close[0]}?)" if close else ""


def _check_recipe_values(recipe: dict, path: str, parser: argparse.ArgumentParser) -> list[str]:
    problems = []
    for key, value in recipe.items():
        action = _action(parser, str(key))
        if action is None or action.dest == "config":
            problems.append(
                f"recipe key '{key}' in {path} is not a field{_suggest(str(key), parser)}; "
                "scripts/train.py --help lists them"
            )
            continue
        values = value if isinstance(value, list) else [value]
        if isinstance(value, list) and action.nargs not in ("+", "*"):
            problems.append(f"recipe key '{key}' in {path} takes one value, got a list {value}")
            continue
        problems += [f"recipe key '{key}' in {path}: {p}" for v in values if (p := _value_problem(action, v))]
    return problems


def _check_flags(args: list[str], parser: argparse.ArgumentParser) -> list[str]:
    flags, stray = [], []
    for token in args:
        if token.startswith("--"):
            name, has_value, value = token.partition("=")
            flags.append((name, [value] if has_value else []))
        elif flags:
            flags[-1][1].append(token)
        else:
            stray.append(token)
    problems = [f"unexpected argument {token!r}: write fields as --name value" for token in stray]
    for flag, values in flags:
        problems += _flag_problems(flag, values, parser)
    return problems


def _flag_problems(flag: str, values: list[str], parser: argparse.ArgumentParser) -> list[str]:
    action = parser._option_string_actions.get(flag)
    if action is None or action.dest == "config":
        return [
            f"unknown flag {flag}{_suggest(flag.lstrip('-'), parser, '--')}; scripts/train.py --help lists the fields"
        ]
    low, high = _VALUE_COUNTS[action.nargs]
    if not low <= len(values) <= high:
        return [
            f"flag {flag} takes {_VALUE_COUNT_WORDS[action.nargs]}, got {len(values)}: {' '.join(values) or 'none'}"
        ]
    return [f"flag {flag}: {p}" for v in values if (p := _value_problem(action, v))]


def _value_problem(action: argparse.Action, value) -> str | None:
    """Why `value` does not fit `action`'s field, or None when it does (or the field takes any text)."""
    if value is None:
        return None
    if action.type in (int, float):
        try:
            action.type(value if isinstance(value, str) else str(value))
        except ValueError:
            return f"{value!r} is not {'an integer' if action.type is int else 'a number'}"
    elif action.type is string_to_bool:
        try:
            string_to_bool(value if isinstance(value, bool) else str(value))
        except argparse.ArgumentTypeError:
            return f"{value!r} is not true or false"
    elif action.choices is not None and str(value) not in [str(choice) for choice in action.choices]:
        return f"{value!r} is not one of {', '.join(str(choice) for choice in action.choices)}"
    return None
