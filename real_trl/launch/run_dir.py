"""The run folder (`output_dir`): never mix two runs in one, and keep the log history there.

A new run refuses a folder that holds one (checkpoints from another run would later be resumed as if
they were this run's), unless the user resumes or asks to overwrite, which deletes the old checkpoints
first. The run's key settings are stored in the folder when it starts, so a resume with settings that
change the run stops and names them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from real_trl.launch.plan import BatchPlan

SETTINGS_FILE = "run_settings.json"
# Settings that make a resumed run a different run: model, data, objective and step size; with the batch
# arithmetic as the plan derives it (processes, micro-step, optimizer step, generation batch).
KEY_FIELDS = ("model_name_or_path", "dataset_name", "dataset_path", "loss_type", "tau", "learning_rate")
_RUN_FILES = (SETTINGS_FILE, "trainer_state.json")


def key_settings(fields: Mapping, batch: BatchPlan) -> dict:
    """The run-defining subset of the fields, plus the batch plan's numbers."""
    return {**{name: fields.get(name) for name in KEY_FIELDS}, **asdict(batch)}


def run_markers(output_dir: str) -> list[str]:
    """What in `output_dir` shows that a run was started there (checkpoints, our settings, a trainer state)."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    checkpoints = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir())
    return checkpoints + [name for name in _RUN_FILES if (folder / name).is_file()]


def output_dir_problems(
    output_dir: str,
    settings: dict | None,
    *,
    resume: bool,
    overwrite: bool,
    allow_changed: bool,
    resume_from_checkpoint: str | None = None,
) -> list[str]:
    """Every reason not to start in `output_dir`, one line each: unwritable, a run already there, changed settings
    (compared with `settings`, the `key_settings` of this run; None skips the comparison)."""
    problems = []
    if resume and overwrite:
        problems.append("resume and overwrite_output_dir both set: pass one (continue the run, or replace it)")
    if resume_from_checkpoint is not None and not Path(resume_from_checkpoint).is_dir():
        problems.append(f"resume_from_checkpoint {resume_from_checkpoint} does not exist")
    writable = _writability_problem(Path(output_dir))
    if writable:
        return [*problems, writable]
    markers = run_markers(output_dir)
    resuming = resume or resume_from_checkpoint is not None
    if markers and not (resuming or overwrite):
        shown = ", ".join(markers[:4]) + (", ..." if len(markers) > 4 else "")
        problems.append(
            f"output_dir {output_dir} already holds a run ({shown}): pass --resume true to continue it, "
            "--overwrite_output_dir true to delete its checkpoints and start over, or choose another --output_dir"
        )
    if resuming and not allow_changed and settings is not None:
        changed = changed_settings(output_dir, settings)
        if changed:
            problems.append(
                f"resuming {output_dir} with changed settings ({changed}): pass --allow_changed_settings true to "
                "resume anyway, or choose another --output_dir for a new run"
            )
    return problems


def _writability_problem(folder: Path) -> str | None:
    if folder.exists() and not folder.is_dir():
        return f"output_dir {folder} is a file, not a folder"
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"output_dir {folder} cannot be created: {existing} is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"output_dir {folder} is not writable ({existing} does not allow it): choose another --output_dir"
    return None


def changed_settings(output_dir: str, settings: dict) -> str:
    """`name old -> new` for each key setting that differs from the stored ones ('' if none, or none stored)."""
    stored_file = Path(output_dir) / SETTINGS_FILE
    if not stored_file.is_file():
        return ""
    stored = json.loads(stored_file.read_text())
    return ", ".join(
        f"{name} {stored[name]!r} -> {value!r}"
        for name, value in settings.items()
        if name in stored and stored[name] != value
    )


def prepare_output_dir(output_dir: str, settings: dict, overwrite: bool) -> None:
    """Main process, after the checks: delete an overwritten run's checkpoints, then record this run's settings."""
    folder = Path(output_dir)
    if overwrite:
        for marker in run_markers(output_dir):
            path = folder / marker
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
