"""The package's shape holds: every module has a layer and imports only from its own layer or lower ones, with no
cycles between modules or between packages; the deploy path stays torch-free; and no module outside recipes/
special-cases a recipe by its name."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import translate
from translate.recipes import RECIPES

PACKAGE = Path(translate.__file__).parent
# The layers, lowest first (docs/ARCHITECTURE.md). A module imports modules of its own layer or of a lower rank;
# two layers of the same rank never import each other. "pkg.*" is the package and every module in it, present or
# future. A module that no entry names fails the test: a new module is placed here deliberately.
LAYERS: list[tuple[int, str, tuple[str, ...]]] = [
    (
        0,
        "base",
        ("translate.errors", "translate.files", "translate.config", "translate.description", "translate.imageio"),
    ),
    (1, "computation", ("translate.networks.*", "translate.losses", "translate.augment")),
    (1, "data", ("translate.data.*",)),
    (2, "core", ("translate.core.*",)),
    (3, "recipes", ("translate.recipes.*",)),
    (4, "backends", ("translate.backends.*",)),
    (5, "deploy", ("translate.deploy.*",)),
    (6, "training", ("translate.training.*",)),
    (7, "api", ("translate.api.*",)),
    (8, "entry", ("translate.cli", "translate.__main__", "translate")),
]
# What any module may import from the root package: constants translate/__init__.py defines itself. The root is
# loaded before any of its modules anyway, and loading it imports nothing above the base (its API is re-exported
# lazily; test_the_root_package_loads_nothing_above_the_base).
ROOT_CONSTANTS = {"__version__"}
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
    "translate.backends",
    "translate.backends.base",
    "translate.backends.checkpoints",
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


def _layer(name: str) -> tuple[int, str] | None:
    """(rank, layer) of module `name`, or None when no entry of LAYERS names it."""
    for rank, layer, patterns in LAYERS:
        for pattern in patterns:
            package = pattern.removesuffix(".*")
            if name == package or (pattern.endswith(".*") and name.startswith(f"{package}.")):
                return rank, layer
    return None


def _eager(tree: ast.Module) -> list[ast.AST]:
    """The nodes of `tree` that run when the module is loaded: not inside functions, not under TYPE_CHECKING."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def _imports(name: str, path: Path, modules: dict[str, Path], eager: bool = False) -> dict[str, int]:
    """translate modules that `name` imports anywhere in its file (top level, inside functions, under
    TYPE_CHECKING, or by `import_module("translate....")`; `eager`: only as it is loaded) → the first line."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: dict[str, int] = {}
    for node in _eager(tree) if eager else ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package, one level up per extra dot
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                for alias in node.names
                if not (base == "translate" and alias.name in ROOT_CONSTANTS)
            ]
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            targets = [node.args[0].value]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # translate.core.checkpoint.read → translate.core.checkpoint
                target = target.rpartition(".")[0]
            if target and target != name:
                out[target] = min(out.get(target, node.lineno), node.lineno)
    return out


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (its nodes in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := visit(target, [*path, target])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [node])):
            return found
    return None


def test_every_module_has_a_layer() -> None:
    modules = _modules()
    unplaced = sorted(name for name in modules if _layer(name) is None)
    assert not unplaced, (
        f"modules with no layer: {', '.join(unplaced)}. Add each to the layer it belongs to in LAYERS "
        "(tests/test_layout.py) and in docs/ARCHITECTURE.md's layer table."
    )
    named = {pattern for _, _, patterns in LAYERS for pattern in patterns if not pattern.endswith(".*")}
    stale = sorted(named - set(modules))
    assert not stale, f"LAYERS names modules that do not exist: {', '.join(stale)}"


def test_imports_point_to_the_same_layer_or_lower() -> None:
    modules = _modules()
    upward = []
    for name, targets in sorted(_graph().items()):
        here = _layer(name)
        for target, line in sorted(targets.items()):
            there = _layer(target)
            if here is None or there is None or there[1] == here[1] or there[0] < here[0]:
                continue  # unplaced modules are test_every_module_has_a_layer's to report
            upward.append(
                f"{modules[name].relative_to(PACKAGE.parent)}:{line}: {name} ({here[1]}) imports {target} ({there[1]})"
            )
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(upward)


def test_imports_have_no_cycles() -> None:
    cycle = _cycle({name: set(targets) for name, targets in _graph().items()})
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


def test_packages_have_no_import_cycles() -> None:
    def package(name: str) -> str:  # translate.deploy.models → translate.deploy; translate.cli stays itself
        return ".".join(name.split(".")[:2])

    graph: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        graph.setdefault(package(name), set()).update(package(t) for t in targets if package(t) != package(name))
    cycle = _cycle(graph)
    assert cycle is None, "package import cycle: " + " → ".join(cycle or [])


def test_the_root_package_loads_nothing_above_the_base() -> None:
    """`import translate.x` runs translate/__init__.py first: loading it may import the base and nothing more (the
    API is re-exported lazily), which is also why any layer may read ROOT_CONSTANTS from it."""
    eager = _imports("translate", PACKAGE / "__init__.py", _modules(), eager=True)
    above = sorted(target for target in eager if (_layer(target) or (1, ""))[0] > 0)
    assert not above, f"translate/__init__.py imports {', '.join(above)} when loaded: import them lazily"


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
