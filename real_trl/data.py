"""Named math datasets as TRL conversational prompts plus an `answer` column.

    ds = load_named_dataset("aime24")                             # the paper's file, shipped in the package
    ds = load_named_dataset("aime24_hub")                         # the Hub copy of the same benchmark
    ds = load_named_dataset("deepscaler")                         # a training set, from the Hub
    ds = load_named_dataset("dapo17k", "../data")                 # a local verl-style folder
    ds = load_named_dataset("math500", "math500.jsonl", tokenizer=tok, max_prompt_length=1024)
    ds = load_named_dataset("toy", seed=0)                        # small arithmetic for smoke runs

Every loader returns columns "prompt" ([{"role": "user", "content": problem + PROMPT_SUFFIX}], the
paper's prompt, unless the row already carries a chat prompt) and "answer" (a string, or a list of
acceptable strings for Minerva and OlympiadBench), which the reward functions read.

Rows may come in plain form (problem/question + answer/final_answer/solution columns) or in the verl
layout (`prompt` = list of chat messages, `reward_model` = {"ground_truth": ...}); nested columns may
also be stored as their string form (JSON or Python repr, numpy arrays included). See docs/data.md.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import operator
import random
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import datasets
import pyarrow.parquet as pq
from datasets import Dataset
from tqdm.auto import tqdm

from real_trl.rewards.extraction import reference_answers

logger = logging.getLogger(__name__)

INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
PROMPT_SUFFIX = " " + INSTRUCTION


@dataclass(frozen=True)
class DatasetSpec:
    hub_id: str
    split: str
    rows: int  # size of the paper's version, for the docs and sanity checks
    config: str | None = None
    file_stem: str | None = None  # file name in the verl release folder, if not the dataset's name
    separator: str = " "  # between the problem and INSTRUCTION, as the official preprocessing of this set


REGISTRY: dict[str, DatasetSpec] = {
    # training sets
    "deepscaler": DatasetSpec("agentica-org/DeepScaleR-Preview-Dataset", "train", 40_315),
    # DAPO-Math-17k with its 1.79M duplicated rows reduced to unique prompts (17,398), the same rows
    # as the paper's verl release; its `prompt` column is the problem text, `solution` the answer.
    "dapo17k": DatasetSpec("open-r1/DAPO-Math-17k-Processed", "train", 17_398, "all", "dapo-math-17k", "\n\n"),
    # evaluation benchmarks, in the paper's table order; these Hub copies load as "<name>_hub", the
    # plain names read the paper's own files shipped in real_trl/benchmarks/
    "aime24": DatasetSpec("HuggingFaceH4/aime_2024", "train", 30),
    "aime25": DatasetSpec("math-ai/aime25", "test", 30),
    "math500": DatasetSpec("HuggingFaceH4/MATH-500", "test", 500),
    "amc23": DatasetSpec("AI-MO/aimo-validation-amc", "train", 83),
    "minerva": DatasetSpec("math-ai/minervamath", "test", 272),
    "olympiad_bench": DatasetSpec("Hothan/OlympiadBench", "train", 675, "OE_TO_maths_en_COMP"),
}
TRAIN_DATASETS = ("deepscaler", "dapo17k")
EVAL_BENCHMARKS = ("aime24", "aime25", "math500", "amc23", "minerva", "olympiad_bench")
HUB_SUFFIX = "_hub"
TOY_DATASET = "toy"
# Every name load_named_dataset reads without a path.
DATASET_NAMES = TRAIN_DATASETS + EVAL_BENCHMARKS + tuple(n + HUB_SUFFIX for n in EVAL_BENCHMARKS) + (TOY_DATASET,)
BENCHMARK_DIR = Path(__file__).with_name("benchmarks")

PROBLEM_COLUMNS = ("problem", "question", "Problem", "Question")
ANSWER_COLUMNS = ("answer", "final_answer", "Answer", "ground_truth", "reward_model", "solution")
DATA_SUFFIXES = (".parquet", ".jsonl", ".json")

# The original DAPO-Math-17k wraps each problem in an "Answer: ..." instruction that contradicts the
# boxed-answer prompt (and reward) of the paper, so it is removed wherever it shows up.
_DAPO_WRAPPER = re.compile(
    r"^Solve the following math problem step by step\..*?\n\n(?P<problem>.*?)"
    r"(?:\n\nRemember to put your answer on its own line after \"Answer:\"\.)?\s*$",
    re.DOTALL,
)


def make_prompt(problem: str, separator: str = " ") -> list[dict]:
    """The paper's prompt: the problem, `separator`, then the step-by-step/boxed instruction, as one user message."""
    problem = problem.strip()
    if not problem.endswith(INSTRUCTION):
        problem += separator + INSTRUCTION
    return [{"role": "user", "content": problem}]


def benchmark_name(name: str) -> str:
    """The paper benchmark a dataset name stands for ("aime24_hub" -> "aime24"); other names unchanged."""
    base = name.removesuffix(HUB_SUFFIX)
    return base if base in EVAL_BENCHMARKS else name


def content_fingerprint(dataset) -> str:
    """sha256 of the canonical prompt/answer rows, in order: the same problems give the same value from any
    file format or source, so a result can be tied to the exact benchmark content it was measured on."""
    digest = hashlib.sha256()
    for prompt, answer in zip(dataset["prompt"], dataset["answer"], strict=True):
        messages = [[message["role"], message["content"]] for message in prompt]
        digest.update(json.dumps([messages, answer], ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
    return digest.hexdigest()


@cache
def shipped_benchmarks() -> dict:
    """The provenance manifest of the shipped benchmark files: per name, file, rows, sha256, content_fingerprint."""
    return json.loads((BENCHMARK_DIR / "manifest.json").read_text())


def toy_dataset(num_problems: int = 256, seed: int = 0):
    """Small integer arithmetic in the paper's prompt format, for smoke runs; answers are plain integers."""
    operations = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    rng = random.Random(seed)
    rows = {"prompt": [], "answer": []}
    for _ in range(num_problems):
        a, b, symbol = rng.randint(2, 50), rng.randint(2, 50), rng.choice("+-*")
        rows["prompt"].append(make_prompt(f"What is {a} {symbol} {b}?"))
        rows["answer"].append(str(operations[symbol](a, b)))
    return Dataset.from_dict(rows)


# ---------------------------------------------------------------------------------------------
# Row conversion
# ---------------------------------------------------------------------------------------------


def _literal(node: ast.AST):
    """A Python literal from its AST, also accepting numpy's `array([...], dtype=...)`; never evaluates code."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_literal(node.operand)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "array" and node.args:
        return _literal(node.args[0])
    raise ValueError(f"not a literal: {ast.dump(node)[:80]}")


def decode(value):
    """A nested column value from its stored form: objects pass through, strings holding JSON or a
    Python repr (numpy arrays included) are decoded, numpy arrays become lists."""
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()
    text = value.strip() if isinstance(value, str) else ""
    if text[:1] in ("[", "{") or text.startswith("array("):
        try:
            return json.loads(text)
        except ValueError:
            pass
        try:
            return _literal(ast.parse(text, mode="eval").body)
        except (SyntaxError, ValueError, RecursionError):
            return value
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def _strip_dapo(problem: str) -> str:
    m = _DAPO_WRAPPER.match(problem)
    return m.group("problem").strip() if m else problem


def _chat_prompt(value, separator: str) -> list[dict] | None:
    value = decode(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not value:
        return None
    if not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        return None
    messages = [{"role": str(m["role"]), "content": str(m["content"])} for m in value]
    users = [m for m in messages if m["role"] == "user"]
    if len(users) == 1 and _strip_dapo(users[0]["content"]) != users[0]["content"]:
        return make_prompt(_strip_dapo(users[0]["content"]), separator)
    return messages


def _column_roles(columns: list[str], source: str) -> tuple[str | None, str | None, str]:
    """Which columns hold the chat prompt, the problem text and the answer (ValueError if missing)."""
    answer_key = next((c for c in ANSWER_COLUMNS if c in columns), None)
    problem_key = next((c for c in PROBLEM_COLUMNS if c in columns), None)
    prompt_key = "prompt" if "prompt" in columns else None
    if answer_key is None or (prompt_key is None and problem_key is None):
        raise ValueError(
            f"{source}: expected a problem column (one of {', '.join(PROBLEM_COLUMNS)} or a chat 'prompt') "
            f"and an answer column (one of {', '.join(ANSWER_COLUMNS)}); found columns {sorted(columns)}. "
            "Rename the columns or convert the file to the verl layout (prompt + reward_model)."
        )
    return prompt_key, problem_key, answer_key


def convert_row(row: dict, roles: tuple[str | None, str | None, str], separator: str = " ") -> dict:
    """One source row as {"prompt": chat messages, "answer": str | list[str] | None}; `separator` joins a plain
    problem and the instruction."""
    prompt_key, problem_key, answer_key = roles
    prompt = None
    if prompt_key is not None:
        raw = row[prompt_key]
        prompt = _chat_prompt(raw, separator)
        if prompt is None and isinstance(raw, str) and problem_key is None:
            prompt = make_prompt(_strip_dapo(raw), separator)  # a plain-text prompt column is the problem
    if prompt is None:
        if problem_key is None:
            raise ValueError(f"row has no usable prompt: {str(row.get(prompt_key))[:200]!r}")
        prompt = make_prompt(_strip_dapo(str(row[problem_key])), separator)
    answer = row[answer_key]
    # An answer string is decoded only when it is clearly a stored list ("['9.6', '9.60']"): "[0, 1)"
    # and "[1, 2]" are intervals.
    if answer_key == "reward_model" or not isinstance(answer, str) or answer.lstrip()[:2] in ("['", '["'):
        answer = decode(answer)
    if answer_key == "reward_model":
        answer = answer.get("ground_truth") if isinstance(answer, dict) else None
    refs = reference_answers(answer)
    if refs is None:
        return {"prompt": prompt, "answer": None}
    return {"prompt": prompt, "answer": list(refs) if isinstance(answer, (list, tuple)) else refs[0]}


def rows_to_dataset(rows: list[dict], source: str, separator: str = " ") -> Dataset:
    """A `datasets.Dataset` of prompt/answer rows from raw rows of any supported layout."""
    if not rows:
        raise ValueError(f"{source} is empty: it has no rows")
    roles = _column_roles(list(rows[0]), source)
    converted = [convert_row(row, roles, separator) for row in rows]
    missing = sum(r["answer"] is None for r in converted)
    if missing:
        logger.warning("%s: %d of %d rows have no answer and are dropped", source, missing, len(converted))
        converted = [r for r in converted if r["answer"] is not None]
    if not converted:
        raise ValueError(f"{source}: no row has a usable answer in column {roles[2]!r}")
    # Arrow needs one type per column: once any row has a list of answers, all rows get lists.
    if any(isinstance(r["answer"], list) for r in converted):
        for r in converted:
            if not isinstance(r["answer"], list):
                r["answer"] = [r["answer"]]
    return Dataset.from_list(converted)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[dict]:
    """Rows of a parquet, jsonl or json file (ValueError naming the file when it can't be read)."""
    try:
        if path.suffix == ".parquet":
            return pq.read_table(path).to_pylist()
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        data = json.loads(text)
    except Exception as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("data", data)
    if isinstance(data, dict):  # column-oriented {"problem": [...], "answer": [...]}
        keys = list(data)
        data = [dict(zip(keys, values, strict=True)) for values in zip(*data.values(), strict=True)]
    if isinstance(data, list):
        return data
    raise ValueError(f"cannot read {path}: expected a list of rows, got {type(data).__name__}")


def _local_files(name: str, path: Path) -> list[Path]:
    if path.is_file():
        if path.suffix not in DATA_SUFFIXES:
            raise ValueError(f"cannot read {path}: use a .parquet, .jsonl or .json file")
        return [path]
    if not path.is_dir():
        raise ValueError(f"{path} does not exist: give a data file or a folder holding one")
    spec = REGISTRY.get(name)
    stems = [name] + ([spec.file_stem] if spec and spec.file_stem else [])
    for stem in stems:
        for pattern in (f"{stem}{{}}", f"*/{stem}{{}}"):
            for suffix in DATA_SUFFIXES:
                found = sorted(path.glob(pattern.format(suffix)))
                if found:
                    return found[:1]
    files = sorted(p for p in path.rglob("*") if p.suffix in DATA_SUFFIXES)
    suffixes = {p.suffix for p in files}
    if not files or len(suffixes) > 1:
        raise ValueError(
            f"{path} holds no file named {' or '.join(stems)}.parquet/.jsonl/.json"
            + (f" and mixes formats {sorted(suffixes)}" if files else " and no other data file")
            + ": point `path` at the file itself"
        )
    return files  # e.g. a Hub snapshot folder: data/train-00000-of-00001.parquet, ...


def _load_local(name: str, path: Path) -> Dataset:
    files = _local_files(name, path)
    rows = [row for f in files for row in read_rows(f)]
    separator = REGISTRY[name].separator if name in REGISTRY else " "
    return rows_to_dataset(rows, str(files[0]) if len(files) == 1 else str(path), separator)


def _load_hub(name: str, split: str | None) -> Dataset:
    spec = REGISTRY[name]
    rows = list(datasets.load_dataset(spec.hub_id, spec.config, split=split or spec.split))
    return rows_to_dataset(rows, f"{name} ({spec.hub_id})", spec.separator)


def load_named_dataset(
    name: str,
    path: str | Path | None = None,
    *,
    split: str | None = None,
    tokenizer=None,
    max_prompt_length: int | None = None,
    seed: int = 0,
) -> Dataset:
    """Load a named dataset (or any file with `path`) as prompt/answer rows.

    Args:
        name: one of `DATASET_NAMES`: a training set (`TRAIN_DATASETS`, from the Hub), a benchmark
            (`EVAL_BENCHMARKS`, the paper's file shipped in real_trl/benchmarks/, read with no network),
            a benchmark's Hub copy (`aime24_hub`, ...), or "toy"; any name when `path` is given.
        path: a local parquet/jsonl/json file, or a folder holding `<name>.<ext>` (also one level
            down, as in the verl release: `data/benchmarks/aime24.parquet`).
        split: the Hub split (default: the registry's, e.g. "test" for MATH-500); unused otherwise.
        tokenizer, max_prompt_length: when both are given, prompts longer than `max_prompt_length`
            tokens under the tokenizer's chat template are dropped and the count is logged.
        seed: the toy set's random seed (the same seed gives the same rows).
    """
    if path is not None:
        dataset = _load_local(name, Path(path).expanduser())
    elif name == TOY_DATASET:
        dataset = toy_dataset(seed=seed)
    elif name in EVAL_BENCHMARKS:
        dataset = rows_to_dataset(read_rows(BENCHMARK_DIR / f"{name}.parquet"), f"{name} (shipped)")
    elif name in TRAIN_DATASETS or benchmark_name(name) != name:
        dataset = _load_hub(name.removesuffix(HUB_SUFFIX), split)
    else:
        raise ValueError(
            f"unknown dataset {name!r}: use one of {', '.join(DATASET_NAMES)}, or pass `path` to a local file"
        )
    if max_prompt_length is not None and tokenizer is not None:
        dataset = filter_long_prompts(dataset, tokenizer, max_prompt_length, source=name)
    return dataset


def prompt_lengths(prompts: list[list[dict]], tokenizer, chunk: int = 512) -> list[int]:
    """Token counts of chat prompts as the trainer will see them (chat template + generation prompt)."""
    lengths = []
    for start in tqdm(range(0, len(prompts), chunk), desc="prompt lengths", disable=len(prompts) <= chunk):
        encoded = tokenizer.apply_chat_template(
            prompts[start : start + chunk], add_generation_prompt=True, tokenize=True
        )
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        lengths.extend(len(x) for x in ids)
    return lengths


def filter_long_prompts(dataset, tokenizer, max_prompt_length: int, source: str = "dataset"):
    """Drop prompts longer than `max_prompt_length` tokens, as the paper's pipeline does, and log how many."""
    lengths = prompt_lengths(dataset["prompt"], tokenizer)
    keep = [i for i, n in enumerate(lengths) if n <= max_prompt_length]
    dropped = len(lengths) - len(keep)
    if not keep:
        raise ValueError(
            f"{source}: all {len(lengths)} prompts are longer than max_prompt_length={max_prompt_length} "
            f"tokens (shortest: {min(lengths)}); raise max_prompt_length"
        )
    if dropped:
        logger.warning(
            "%s: dropped %d of %d prompts longer than %d tokens", source, dropped, len(lengths), max_prompt_length
        )
        dataset = dataset.select(keep)
    return dataset
