"""The package's shape holds: imports point one way (no cycles), the deploy path stays torch-free, and no module
outside recipes/ special-cases a recipe by its name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import translate
from translate.recipes import RECIPES

PACKAGE = Path(translate.__file__).parent
# Modules that must import without torch: the ONNX Runtime path and what it stands on (docs/ARCHITECTURE.md).
TORCH_FREE = [
    "translate.cli",
    "translate.config",
    "translate.description",
    "translate.errors",
    "translate.files",
    "translate.imageio",
    "translate.data.known",
    "translate.deploy.evaluate",
    "translate.deploy.features",
    "translate.deploy.inference",
    "translate.deploy.metrics",
    "translate.deploy.models",
    "translate.backends.onnx_tiling",
    "translate.backends.openvino",
    "translate.backends.openvino_tiling",
    "translate.deploy.quantize",
    "translate.backends.onnxruntime",
    "translate.deploy.sampling",
    "translate.backends.tiles",
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """translate modules that `name` imports anywhere in its file (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from translate.core import checkpoint` imports the module translate.core.checkpoint
            targets = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(f"{target}."):  # a package's own __init__
                out.add(target)
    return out


def test_imports_have_no_cycles() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) - {"translate"} for name, path in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target] if target in path else [name, target]
                raise AssertionError("import cycle: " + " → ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


def test_deploy_path_imports_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = None\n" + "\n".join(f"import {name}" for name in TORCH_FREE)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_no_module_outside_recipes_compares_a_recipe_name() -> None:
    names = set(RECIPES)
    offenders = []
    for name, path in _modules().items():
        if name.startswith("translate.recipes"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert not offenders, offenders
