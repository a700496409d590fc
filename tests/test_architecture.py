"""The import rules of docs/architecture.md, checked on the package's source: no private name crosses a
module boundary, a private module is used only inside its own package, no import cycle, and the layers
import only downwards."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "lstmvision"

# what each top-level part may import from lstmvision at module level (besides itself)
ALLOWED = {
    "cells": {"_checks", "_io", "_registry"},
    "layers": {"cells", "_checks", "_io", "_registry"},
    "encoders": {"cells", "layers", "_checks", "_io", "_registry"},
    "models": {"cells", "layers", "encoders", "_checks", "_io", "_registry", "text"},
    "metrics": {"_checks", "text"},
    "viz": {"_checks", "metrics"},
    "text": {"_checks"},
    "data": {"_checks", "_io", "text", "encoders", "models"},
    "tasks": {
        "_checks",
        "_io",
        "models",
        "metrics",
        "viz",
        "text",
        "data",
        "cells",
        "layers",
        "encoders",
        "checkpoints",
    },
}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _imports(path: Path, module: str) -> Iterator[tuple[int, str, list[str], bool]]:
    """(line, imported module, imported names, at module level) of every lstmvision import."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").startswith("lstmvision")
        ):
            yield node.lineno, node.module or "", [a.name for a in node.names], id(node) in top
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("lstmvision"):
                    yield node.lineno, alias.name, [], id(node) in top


MODULES = dict(_modules())


def _private_violations() -> list[str]:
    found = []
    for module, path in MODULES.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for line, target, names, _ in _imports(path, module):
            where = f"{path.relative_to(SRC)}:{line}"
            for name in names:
                full = f"{target}.{name}"
                if name.startswith("_") and name != "__version__" and full not in MODULES:
                    found.append(f"{where}: imports the private name {name} from {target}")
                elif name.startswith("_") and full in MODULES:
                    target_package = target
                    if not (package + ".").startswith(target_package + ".") and package != target_package:
                        found.append(
                            f"{where}: imports the private module {full} from outside {target_package}"
                        )
            parts = target.split(".")
            for i, part in enumerate(parts[1:], start=1):
                if part.startswith("_"):
                    owner = ".".join(parts[:i])
                    if not (package == owner or package.startswith(owner + ".")):
                        found.append(f"{where}: imports the private module {target} from outside {owner}")
    return found


def test_no_private_name_or_module_is_used_outside_its_home() -> None:
    assert _private_violations() == []


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for module, path in MODULES.items():
        for _, target, names, at_top in _imports(path, module):
            if not at_top:
                continue  # a deferred import inside a function does not make a cycle at import time
            for name in names or [""]:
                full = f"{target}.{name}" if name else target
                dependency = full if full in MODULES else target
                if dependency in MODULES and dependency != module:
                    graph[module].add(dependency)
    return graph


def test_no_import_cycle_between_modules() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            # a package's __init__ importing its own submodules is how packages expose them
            if node.startswith(nxt + ".") or nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycles.append([*trail[trail.index(nxt) :], nxt] if nxt in trail else [node, nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


@pytest.mark.parametrize("part", sorted(ALLOWED))
def test_each_part_imports_only_downwards(part: str) -> None:
    wrong = []
    for module, path in MODULES.items():
        if _part(module) != part:
            continue
        for line, target, _, at_top in _imports(path, module):
            other = _part(target)
            if at_top and other and other != part and other not in ALLOWED[part]:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports {target}")
    assert wrong == []


def test_no_source_file_is_over_400_lines_unless_the_architecture_note_says_why() -> None:
    notes = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text()
    long = [
        str(path.relative_to(SRC))
        for path in PACKAGE.rglob("*.py")
        if len(path.read_text().splitlines()) > 400 and str(path.relative_to(PACKAGE)) not in notes
    ]
    assert long == []
