"""The shape of the package: the core stands alone, and the rooms around it import it, never the reverse."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "real_trl"
CORE = {
    "real_trl.losses",
    "real_trl.layout",
    "real_trl.config",
    "real_trl.trainer",
    "real_trl.sampler",
    "real_trl.vllm_cpu",
}


def imported_modules(path: Path) -> set[str]:
    """Every real_trl module a file imports, at module level or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("real_trl"):
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("real_trl"))
    return names


def module_file(name: str) -> Path:
    relative = Path(*name.split(".")[1:])
    return PACKAGE / relative.with_suffix(".py")


def top_level_units(names: set[str]) -> set[str]:
    """The modules and subpackages directly under real_trl that `names` reach (real_trl.launch for
    real_trl.launch.plan)."""
    units = {".".join(name.split(".")[:2]) for name in names if name.count(".") >= 1}
    return {unit for unit in units if module_file(unit).is_file() or module_file(unit).with_suffix("").is_dir()}


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_imports_only_the_core(module):
    outside = top_level_units(imported_modules(module_file(module))) - CORE
    assert not outside, f"{module} imports {sorted(outside)}: the core must not depend on the rooms around it"


@pytest.mark.parametrize("room", ["launch", "evaluation", "arena", "rewards"])
def test_no_room_reaches_into_the_launcher_but_the_launcher(room):
    for path in (PACKAGE / room).glob("*.py"):
        reached = {name for name in imported_modules(path) if name.startswith("real_trl.launch")}
        assert room == "launch" or not reached, f"{path.name} imports {sorted(reached)}"
