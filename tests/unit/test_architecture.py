"""The package rule of README's architecture section: which part of sbops may import which.

    cli  ->  install, uninstall, backup, rotate, upgrade, bundle, exporter, fixflow, engine, report  ->  checks, fixes, registry  ->  probes  ->  core

A module may import its own level and the levels below it, never a level above (type-only imports under
TYPE_CHECKING count too: they are the same coupling). The walk is over the source (ast), so it sees lazy
imports inside functions as well.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SBOPS = Path(__file__).resolve().parents[2] / "sbops"
CORE = {"model", "errors", "secret", "settings", "settings_rules", "credentials", "runner", "kube", "kuberest", "context",
        "versions", "shipped", "diff", "correlate", "messages", "__init__"}
LEVELS = {
    **{name: 0 for name in CORE},
    "probes": 1,
    "checks": 2, "fixes": 2, "registry": 2,
    "engine": 3, "fixflow": 3, "report": 3, "install": 3, "uninstall": 3, "exporter": 3, "cluster": 3, "bundle": 3,
    "backup": 3, "rotate": 3, "upgrade": 3, "cli": 4, "__main__": 4,
}
NAMES = {0: "core", 1: "probes", 2: "checks/fixes/registry",
         3: "engine/fixflow/report/install/uninstall/exporter/cluster/bundle/backup/rotate/upgrade",
         4: "cli"}


def part(module: str) -> str:
    """The part of sbops a dotted module belongs to: its first name below `sbops` (sbops itself: __init__)."""
    names = module.split(".")
    return names[1] if len(names) > 1 else "__init__"


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(SBOPS.rglob("*.py")):
        dotted = ".".join(("sbops", *path.relative_to(SBOPS).with_suffix("").parts))
        found.append((dotted.removesuffix(".__init__"), path))
    return found


def imported(path: Path, module: str) -> set[str]:
    """The sbops modules a file imports (absolute or relative), as dotted names."""
    found: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "sbops"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sbops":
                continue
            found.add(target)
            found |= {f"{target}.{a.name}" for a in node.names}  # from sbops import versions: a module
    return found


MODULES = modules()


def test_every_part_of_sbops_has_a_level() -> None:
    unknown = sorted({part(m) for m, _ in MODULES} - set(LEVELS))
    assert not unknown, f"add these to the package rule (and README's drawing): {unknown}"


@pytest.mark.parametrize("module,path", MODULES, ids=[m for m, _ in MODULES])
def test_nothing_imports_upward(module: str, path: Path) -> None:
    mine = LEVELS[part(module)]
    upward = sorted(t for t in imported(path, module) if LEVELS.get(part(t), 0) > mine)
    assert not upward, f"{module} ({NAMES[mine]}) imports a higher level: {upward}"


def test_the_rule_sees_lazy_and_relative_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from sbops.engine import run_checks\n    from . import registry\n")
    assert {"sbops.engine", "sbops.probes.registry"} <= imported(sample, "sbops.probes.sample")
