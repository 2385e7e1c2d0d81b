"""The command-line convention of every script, TRL's and transformers' own.

Options are dataclass fields written as snake_case flags (`--model_name_or_path`, `--output_dir`), a
list is its values after one flag (`--benchmarks aime24 math500`), `--help` shows every default, and
a user's mistake is one line, `error: ...`, with exit code 2. Nothing heavy is imported here, so
`--help` answers before torch loads.
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from transformers import HfArgumentParser


class UsageError(ValueError):
    """Mistakes in what the user asked for, one line each (`problems`); scripts print them and exit with code 2."""

    def __init__(self, *problems: str):
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def fail(message: str) -> NoReturn:
    """Print `message` as `error: ...` on stderr and exit with code 2 (a user's mistake)."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the description's paragraphs and shows every default."""


def make_parser(dataclass_types, description: str, usage: str | None = None) -> HfArgumentParser:
    """An HfArgumentParser for `dataclass_types` whose mistakes are one line and exit code 2.

    `usage` replaces argparse's generated usage line, which lists every flag (hundreds for a TRL config)."""
    parser = HfArgumentParser(dataclass_types, description=description, usage=usage, formatter_class=_HelpFormatter)
    parser.error = fail  # argparse would print the whole usage before the message
    return parser


def parse(dataclass_types, description: str, argv: list[str] | None = None) -> tuple:
    """Parse `argv` (default: sys.argv) into one instance of each dataclass; exit 2 with one line on a mistake."""
    parser = make_parser(dataclass_types, description)
    try:
        return parser.parse_args_into_dataclasses(args=argv)
    except ValueError as error:  # a __post_init__ check: keep its message, drop the traceback
        fail(" ".join(str(error).split()))
