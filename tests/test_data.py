"""Dataset registry and loaders: plain and verl layouts, stored string forms, filtering, bad input,
the shipped benchmark files and their fingerprints, the toy set."""

import hashlib
import json
import logging
import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from real_trl import data
from real_trl.data import (
    BENCHMARK_DIR,
    DATASET_NAMES,
    EVAL_BENCHMARKS,
    INSTRUCTION,
    PROMPT_SUFFIX,
    REGISTRY,
    TRAIN_DATASETS,
    benchmark_name,
    content_fingerprint,
    decode,
    load_named_dataset,
    make_prompt,
    shipped_benchmarks,
)

PROBLEM = "What is $1+1$?"
VERL_PROMPT = [{"content": PROBLEM + PROMPT_SUFFIX, "role": "user"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_registry_and_prompt():
    assert TRAIN_DATASETS == ("deepscaler", "dapo17k")
    assert EVAL_BENCHMARKS == ("aime24", "aime25", "math500", "amc23", "minerva", "olympiad_bench")
    assert set(REGISTRY) == set(TRAIN_DATASETS + EVAL_BENCHMARKS)
    assert set(DATASET_NAMES) == set(TRAIN_DATASETS + EVAL_BENCHMARKS) | {n + "_hub" for n in EVAL_BENCHMARKS} | {"toy"}
    assert (benchmark_name("aime24_hub"), benchmark_name("aime24"), benchmark_name("mine_hub")) == (
        "aime24",
        "aime24",
        "mine_hub",
    )
    assert REGISTRY["deepscaler"].hub_id == "agentica-org/DeepScaleR-Preview-Dataset"
    assert [REGISTRY[n].rows for n in EVAL_BENCHMARKS] == [30, 30, 500, 83, 272, 675]
    assert make_prompt(PROBLEM) == [{"role": "user", "content": PROBLEM + PROMPT_SUFFIX}]
    assert make_prompt(PROBLEM + PROMPT_SUFFIX) == make_prompt(PROBLEM)  # never doubled


def test_plain_jsonl(tmp_path):
    path = write_jsonl(
        tmp_path / "set.jsonl",
        [
            {"problem": PROBLEM, "answer": "2", "solution": "long worked solution"},
            {"problem": "Half of one?", "answer": "\\frac{1}{2}", "solution": "..."},
        ],
    )
    ds = load_named_dataset("mine", path)
    assert ds.column_names == ["prompt", "answer"]
    assert ds[0] == {"prompt": make_prompt(PROBLEM), "answer": "2"}  # "answer" wins over "solution"
    assert ds[1]["answer"] == "\\frac{1}{2}"


@pytest.mark.parametrize("form", ["objects", "json_strings", "python_repr", "numpy_repr"])
def test_verl_layout_in_every_stored_form(tmp_path, form):
    reward_models = [
        {"ground_truth": np.array(["9.6\n", "9.60"], dtype=object), "style": "rule"},
        {"ground_truth": np.array(["2"], dtype=object), "style": "rule"},
    ]
    prompts = [np.array(VERL_PROMPT, dtype=object), np.array(VERL_PROMPT, dtype=object)]
    if form == "objects":
        rm = [{"ground_truth": r["ground_truth"].tolist(), "style": r["style"]} for r in reward_models]
        table = pa.table({"prompt": [p.tolist() for p in prompts], "reward_model": rm})
    else:
        if form == "json_strings":

            def enc(v):
                return json.dumps(decode(v))

        elif form == "python_repr":

            def enc(v):
                return repr(decode(v))

        else:
            enc = repr  # str(pandas cell): "array([...], dtype=object)" and "{'ground_truth': array(...)}"
        table = pa.table({"prompt": [enc(p) for p in prompts], "reward_model": [enc(r) for r in reward_models]})
    pq.write_table(table, tmp_path / "minerva.parquet")
    ds = load_named_dataset("minerva", tmp_path)
    assert ds[0]["prompt"] == [{"role": "user", "content": PROBLEM + PROMPT_SUFFIX}]
    assert ds[0]["answer"] == ["9.6", "9.60"] and ds[1]["answer"] == ["2"]


def test_numeric_answers_and_folder_lookup(tmp_path):
    (tmp_path / "benchmarks").mkdir()
    rows = [{"prompt": VERL_PROMPT, "reward_model": {"ground_truth": g, "style": "rule"}} for g in (142.0, -4.0, 0.5)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "benchmarks" / "amc23.parquet")
    ds = load_named_dataset("amc23", tmp_path)  # found one level down, as in the verl release
    assert ds["answer"] == ["142", "-4", "0.5"]


def test_interval_answer_is_not_mistaken_for_a_list(tmp_path):
    path = write_jsonl(
        tmp_path / "x.jsonl", [{"question": "q", "answer": "[1, 2]"}, {"question": "q", "answer": "[0, 1)"}]
    )
    assert load_named_dataset("x", path)["answer"] == ["[1, 2]", "[0, 1)"]


def test_dapo_instructions_are_replaced_by_the_paper_prompt(tmp_path):
    wrapped = (
        "Solve the following math problem step by step. The last line of your response should be of the form "
        "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n"
        f'{PROBLEM}\n\nRemember to put your answer on its own line after "Answer:".'
    )
    (tmp_path / "train").mkdir()
    rows = [
        {"prompt": [{"role": "user", "content": wrapped}], "reward_model": {"ground_truth": "2"}},
        {"prompt": wrapped, "solution": "2"},  # open-r1 processed form: plain-text prompt column
    ]
    write_jsonl(tmp_path / "train" / "dapo-math-17k.jsonl", rows[:1])
    write_jsonl(tmp_path / "plain.jsonl", rows[1:])
    # The official preprocessing of DAPO-17k joins the problem and the instruction with a blank line.
    dapo_prompt = [{"role": "user", "content": PROBLEM + "\n\n" + INSTRUCTION}]
    assert load_named_dataset("dapo17k", tmp_path)[0]["prompt"] == dapo_prompt
    assert load_named_dataset("dapo17k", tmp_path / "plain.jsonl")[0] == {"prompt": dapo_prompt, "answer": "2"}
    assert load_named_dataset("other", tmp_path / "plain.jsonl")[0]["prompt"] == make_prompt(PROBLEM)  # a space


def test_json_records_and_columns(tmp_path):
    (tmp_path / "records.json").write_text(json.dumps([{"question": "q1", "final_answer": ["$3$"]}]))
    (tmp_path / "columns.json").write_text(json.dumps({"problem": ["q1", "q2"], "answer": [1, 2]}))
    assert load_named_dataset("r", tmp_path / "records.json")[0]["answer"] == ["$3$"]
    assert load_named_dataset("c", tmp_path / "columns.json")["answer"] == ["1", "2"]


def test_prompt_length_filter(tmp_path, caplog):
    from real_trl.tiny import build_tiny_tokenizer

    path = write_jsonl(tmp_path / "x.jsonl", [{"problem": "x" * n, "answer": "1"} for n in (10, 500, 20, 900)])
    tokenizer = build_tiny_tokenizer()  # one token per byte
    with caplog.at_level(logging.WARNING, logger="real_trl.data"):
        ds = load_named_dataset("x", path, tokenizer=tokenizer, max_prompt_length=300)
    assert [len(p[0]["content"]) for p in ds["prompt"]] == [10 + len(PROMPT_SUFFIX), 20 + len(PROMPT_SUFFIX)]
    assert "dropped 2 of 4 prompts longer than 300 tokens" in caplog.text
    with pytest.raises(ValueError, match="raise max_prompt_length"):
        load_named_dataset("x", path, tokenizer=tokenizer, max_prompt_length=5)


def test_bad_input_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'gsm9k'.*deepscaler"):
        load_named_dataset("gsm9k")
    missing = write_jsonl(tmp_path / "missing.jsonl", [{"problem": "q", "label": "1"}])
    with pytest.raises(ValueError, match=r"answer column.*found columns \['label', 'problem'\]"):
        load_named_dataset("m", missing)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"empty\.jsonl is empty"):
        load_named_dataset("e", tmp_path / "empty.jsonl")
    (tmp_path / "broken.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(ValueError, match=r"cannot read .*broken\.parquet"):
        load_named_dataset("b", tmp_path / "broken.parquet")
    with pytest.raises(ValueError, match="does not exist"):
        load_named_dataset("aime24", tmp_path / "nowhere")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match=r"use a \.parquet, \.jsonl or \.json file"):
        load_named_dataset("n", tmp_path / "notes.txt")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ValueError, match="holds no file named aime24"):
        load_named_dataset("aime24", tmp_path / "sub")


def test_hub_path_is_a_thin_load_dataset_call(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config=None, split=None):
        calls.append((hub_id, config, split))
        return datasets.Dataset.from_list([{"question": "q", "final_answer": ["$\\frac{1}{2}$"], "id": 1}])

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = data.load_named_dataset("olympiad_bench_hub")
    assert calls == [("Hothan/OlympiadBench", "OE_TO_maths_en_COMP", "train")]
    assert ds[0] == {"prompt": make_prompt("q"), "answer": ["$\\frac{1}{2}$"]}
    data.load_named_dataset("math500_hub", split="test[:10]")
    assert calls[-1] == ("HuggingFaceH4/MATH-500", None, "test[:10]")
    data.load_named_dataset("dapo17k")
    assert calls[-1] == ("open-r1/DAPO-Math-17k-Processed", "all", "train")
    assert len(data.load_named_dataset("math500")) == 500 and len(calls) == 3  # the shipped file: no Hub call


def test_shared_data_loads(shared_data):
    for name in EVAL_BENCHMARKS:
        ds = load_named_dataset(name, shared_data)
        assert len(ds) == REGISTRY[name].rows
        assert ds[0]["prompt"][0]["content"].endswith(PROMPT_SUFFIX)
    assert load_named_dataset("amc23", shared_data)[0]["answer"] == "142"
    assert load_named_dataset("minerva", shared_data)[0]["answer"] == ["9.6"]
    assert len(load_named_dataset("dapo17k", shared_data)) == REGISTRY["dapo17k"].rows


def offline(monkeypatch):
    """Make any Hub access fail loudly."""

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked for data")

    monkeypatch.setattr(data.datasets, "load_dataset", no_network)


def test_shipped_benchmarks_load_offline_and_match_their_manifest(monkeypatch):
    offline(monkeypatch)
    manifest = shipped_benchmarks()["benchmarks"]
    readme = (BENCHMARK_DIR / "README.md").read_text()
    assert list(manifest) == list(EVAL_BENCHMARKS)
    for name, entry in manifest.items():
        path = BENCHMARK_DIR / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        assert re.search(rf"\| {entry['file']} \| {entry['rows']} \| {entry['sha256']} \|", readme), name
        ds = load_named_dataset(name)
        assert len(ds) == entry["rows"] == REGISTRY[name].rows
        assert content_fingerprint(ds) == entry["content_fingerprint"], name
        assert ds[0]["prompt"][0]["content"].endswith(PROMPT_SUFFIX)
    assert shipped_benchmarks()["license"] == "MIT"


def test_shipped_benchmarks_are_the_shared_files(shared_data):
    for name, entry in shipped_benchmarks()["benchmarks"].items():
        shared = shared_data / "benchmarks" / entry["file"]
        assert shared.read_bytes() == (BENCHMARK_DIR / entry["file"]).read_bytes(), name


def test_content_fingerprint_ignores_the_file_format_but_not_the_content(tmp_path):
    plain = [{"problem": PROBLEM, "answer": "2"}, {"problem": "Half of one?", "answer": 0.5}]
    write_jsonl(tmp_path / "plain.jsonl", plain)
    verl = [  # the verl layout with its nested columns stored as strings
        {"prompt": json.dumps(make_prompt(PROBLEM)), "reward_model": repr({"ground_truth": "2"})},
        {"prompt": json.dumps(make_prompt("Half of one?")), "reward_model": repr({"ground_truth": 0.5})},
    ]
    pq.write_table(pa.Table.from_pylist(verl), tmp_path / "verl.parquet")
    fingerprint = content_fingerprint(load_named_dataset("x", tmp_path / "plain.jsonl"))
    assert content_fingerprint(load_named_dataset("x", tmp_path / "verl.parquet")) == fingerprint
    plain[1]["answer"] = 0.25
    assert content_fingerprint(load_named_dataset("x", write_jsonl(tmp_path / "b.jsonl", plain))) != fingerprint
    assert content_fingerprint(load_named_dataset("x", write_jsonl(tmp_path / "c.jsonl", plain[::-1]))) != (
        content_fingerprint(load_named_dataset("x", tmp_path / "b.jsonl"))
    )


def test_toy_dataset_by_name(monkeypatch):
    offline(monkeypatch)
    toy = load_named_dataset("toy")
    assert len(toy) == 256 and toy[:] == load_named_dataset("toy", seed=0)[:]
    # The rows the launcher's toy set had for seed 0 (the smoke recipe's data must not change).
    assert toy[0] == {"prompt": make_prompt("What is 26 - 50?"), "answer": "-24"}
    assert toy[255] == {"prompt": make_prompt("What is 18 + 10?"), "answer": "28"}
    assert load_named_dataset("toy", seed=1)["prompt"] != toy["prompt"]
    for row in toy:
        a, symbol, b = re.match(r"What is (\d+) ([-+*]) (\d+)\?", row["prompt"][0]["content"]).groups()
        expected = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[symbol]
        assert row["answer"] == str(expected)
