"""Exactness of REALTrainer on multi-process layouts (gloo, CPU), and of skipping rows without signal.

Each case trains on the same deterministic generation batch (tests/exactness_worker.py). The
reference is one process holding twice the per-device batch with `skip_no_signal=False`: every row
goes through forward and backward. Every other run skips the rows without signal and must match it:
one process, two processes (DDP), DeepSpeed ZeRO-2/3 and FSDP2. SGD without clipping makes the
parameter change the gradient itself; one case uses AdamW with clipping. One case runs TRL's GRPO loss
with `whole_groups_per_step`: the group-level plan makes two processes take the updates of one (TRL's
per-row shuffle, drawn on each process, would not).

The reference computes log-probs as GRPOTrainer does (TRL's tile of 4096 tokens, TRL's pi_old forward over
every row); the other runs take REAL's path: tiles of `SMALL_TILE` tokens, fewer than a micro-step holds, and
the pi_old forward over the trained rows only, one per micro-step on every process (counted).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from real_trl.tiny import build_tiny_model

from helpers import free_port

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("exactness_worker.py")

# name: (per_device_train_batch_size on each of 2 processes, grad_accum, steps_per_generation,
#        num_generations, num_iterations, max_steps, loss_type, reward, optimizer)
CASES = {
    "groups_span_processes": (2, 1, 2, 4, 1, 2, "real", "parity", "sgd"),
    "groups_local_to_a_process": (4, 1, 2, 2, 1, 2, "real", "parity", "sgd"),
    "uneven_split_of_groups": (3, 1, 2, 2, 1, 2, "real", "parity", "sgd"),
    "grad_accum_4": (2, 4, 4, 4, 1, 1, "real", "parity", "sgd"),
    "four_optimizer_steps_per_generation": (2, 2, 8, 4, 1, 4, "real", "parity", "sgd"),
    "num_iterations_2": (2, 1, 2, 4, 2, 4, "real", "parity", "sgd"),
    "real_product_span": (2, 1, 2, 4, 1, 2, "real_product", "parity", "sgd"),
    "bce_span": (2, 1, 2, 4, 1, 2, "bce", "parity", "sgd"),
    # most groups without signal, some optimizer steps with none: processes run placeholder passes
    "sparse_signal": (2, 2, 8, 4, 1, 4, "real", "sparse", "sgd"),
    "sparse_signal_bce": (2, 2, 8, 4, 1, 4, "bce", "sparse", "sgd"),
    "adamw_with_clipping": (2, 2, 8, 4, 1, 4, "real", "parity", "adamw"),
    # a TRL loss type with whole_groups_per_step (the worker sets it for every TRL loss type)
    "grpo_whole_groups": (2, 2, 8, 4, 1, 4, "grpo", "parity", "sgd"),
}
# Adam divides by the root of its second moment, which magnifies the float noise of summing the same
# gradient in another order (about 1e-5 of the update here): these cases are compared within a layout, and
# within REAL's log-prob path (another tile, or TRL's pi_old padding, moves them by 1e-3 of the update).
WITHIN_LAYOUT = ("adamw_with_clipping",)
SHARDED_CASES = ("groups_span_processes", "four_optimizer_steps_per_generation", "sparse_signal")
# Tokens per tile of the fused LM head in the runs compared with the reference (which uses TRL's: 0).
SMALL_TILE = 8
# Also run on one process with small tiles and without skipping (the other runs skip rows).
SMALL_TILE_WITHOUT_SKIPPING = ("groups_span_processes", "num_iterations_2", "bce_span")


def _spec(case, skip: bool, per_device_factor=1, tile: int | str = SMALL_TILE):
    per_device, *rest = case
    return ",".join(
        str(x)
        for x in (per_device * per_device_factor, *rest[:5], rest[5], "skip" if skip else "noskip", *rest[6:], tile)
    )


def _env():
    env = dict(os.environ, TRL_EXPERIMENTAL_SILENCE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    tests, root = Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(tests), env.get("PYTHONPATH", "")])
    return env


def _run(launcher: list[str], out: Path, cases: dict, factor: int, skip: bool, tile: int | str = SMALL_TILE) -> None:
    _launch(launcher, out, [f"{name}={_spec(case, skip, factor, tile)}" for name, case in cases.items()])


def _launch(launcher: list[str], out: Path, args: list[str]) -> None:
    result = subprocess.run(
        [*launcher, str(WORKER), str(out), *args], env=_env(), capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]


def _torchrun(nproc):
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(free_port()),
    ]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """Every case on one process holding twice the per-device batch, with skipping off and GRPOTrainer's
    log-probs (`CASE-noskip`, the reference; REAL's path for WITHIN_LAYOUT) and skipping on with REAL's path
    (`CASE-skip`), and a few cases without skipping on REAL's path (`CASE-noskip_tile`): one launch."""
    out = tmp_path_factory.mktemp("single_process")
    reference_path = {name: SMALL_TILE if name in WITHIN_LAYOUT else "trl" for name in CASES}
    args = [
        f"{name}-{mode}={_spec(case, mode == 'skip', 2, reference_path[name] if mode == 'noskip' else SMALL_TILE)}"
        for name, case in CASES.items()
        for mode in ("noskip", "skip")
    ]
    args += [
        f"{name}-noskip_tile={_spec(CASES[name], False, per_device_factor=2)}" for name in SMALL_TILE_WITHOUT_SKIPPING
    ]
    _launch(_torchrun(1), out, args)
    return out


@pytest.fixture(scope="module")
def reference(one_process):
    return {name: one_process / f"{name}-noskip" for name in CASES}


@pytest.fixture(scope="module")
def one_process_skipping(one_process):
    return {name: one_process / f"{name}-skip" for name in CASES}


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    _run(_torchrun(2), out, CASES, factor=1, skip=True)
    return {name: out / name for name in CASES}


def _forwards(run: Path) -> list[dict]:
    """The log-prob forwards each process of a run made in training (exactness_worker.record_forwards)."""
    files = sorted(run.parent.glob(f"{run.name}.forwards.*"))
    return [json.loads(path.read_text()) for path in files]


def _assert_pi_old_in_step(run: Path, case: str, reference_run: Path):
    """Every process made the same pi_old forwards (ZeRO-3 and FSDP gather inside each), with the tile asked for;
    where most rows are skipped, over far fewer rows than TRL's forward over every row (the reference's)."""
    processes, reference = _forwards(run), _forwards(reference_run)
    assert len({p["pi_old_calls"] for p in processes}) == 1, processes
    tile = 4096 if CASES[case][6] in ("grpo", "dapo") else SMALL_TILE
    assert all(p["tiles"] == [tile] for p in processes), processes
    if CASES[case][7] == "sparse":
        assert reference[0]["tiles"] == [4096] and reference[0]["pi_old_calls"] > 0
        assert sum(p["pi_old_rows"] for p in processes) < reference[0]["pi_old_rows"] / 2


def _assert_same_update(reference_run: Path, candidate_run: Path):
    """The parameters saved by two runs (paths without the .pt suffix) took the same update."""
    initial = build_tiny_model(seed=0).state_dict()
    ref, got = torch.load(f"{reference_run}.pt"), torch.load(f"{candidate_run}.pt")
    assert ref.keys() == got.keys()
    largest_update = max((ref[k] - initial[k]).abs().max().item() for k in ref)
    assert largest_update > 1e-2, "the run did not train: the comparison would be vacuous"
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-5 * largest_update, msg=key)


@pytest.mark.parametrize("case", list(CASES))
def test_skipping_rows_without_signal_changes_no_update(case, reference, one_process_skipping):
    _assert_same_update(reference[case], one_process_skipping[case])
    _assert_pi_old_in_step(one_process_skipping[case], case, reference[case])


@pytest.mark.parametrize("case", SMALL_TILE_WITHOUT_SKIPPING)
def test_small_tiles_without_skipping_change_no_update(case, reference, one_process):
    _assert_same_update(reference[case], one_process / f"{case}-noskip_tile")


@pytest.mark.parametrize("case", ["sparse_signal", "sparse_signal_bce"])
def test_sparse_cases_leave_micro_steps_without_rows(case, reference, one_process_skipping, two_processes):
    # the cases above must really cover optimizer steps with no signal (placeholder passes on every process)
    def placeholders(run: Path) -> int:
        return int(Path(f"{run}.placeholders").read_text())

    assert placeholders(reference[case]) == 0
    assert placeholders(one_process_skipping[case]) >= 2
    assert placeholders(two_processes[case]) >= 2


@pytest.mark.parametrize("case", [name for name in CASES if name not in WITHIN_LAYOUT])
def test_two_processes_match_one(case, reference, two_processes):
    _assert_same_update(reference[case], two_processes[case])
    _assert_pi_old_in_step(two_processes[case], case, reference[case])


@pytest.mark.parametrize("case", WITHIN_LAYOUT)
def test_skipping_changes_no_update_on_two_processes(case, two_processes, tmp_path):
    _run(_torchrun(2), tmp_path, {case: CASES[case]}, factor=1, skip=False)
    _assert_same_update(tmp_path / case, two_processes[case])


ACCELERATE_CONFIGS = {
    "zero2": "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 2\n  zero3_init_flag: false\n",
    "zero3": "distributed_type: DEEPSPEED\ndeepspeed_config:\n  zero_stage: 3\n  zero3_init_flag: false\n"
    "  zero3_save_16bit_model: true\n",
    "fsdp2": "distributed_type: FSDP\nfsdp_config:\n  fsdp_version: 2\n"
    "  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP\n  fsdp_reshard_after_forward: true\n"
    "  fsdp_state_dict_type: FULL_STATE_DICT\n  fsdp_cpu_ram_efficient_loading: false\n",
}


@pytest.mark.parametrize("backend", list(ACCELERATE_CONFIGS))
def test_sharded_backends_match_one_process(backend, reference, tmp_path):
    if backend.startswith("zero"):
        pytest.importorskip("deepspeed")
    config = tmp_path / f"{backend}.yaml"
    config.write_text(
        "compute_environment: LOCAL_MACHINE\n" + ACCELERATE_CONFIGS[backend] + "mixed_precision: 'no'\n"
        f"num_machines: 1\nnum_processes: 2\nuse_cpu: true\nmain_process_port: {free_port()}\n"
    )
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    _run(launcher, tmp_path, {name: CASES[name] for name in SHARDED_CASES}, factor=1, skip=True)
    for name in SHARDED_CASES:
        _assert_same_update(reference[name], tmp_path / name)
        _assert_pi_old_in_step(tmp_path / name, name, reference[name])
