"""The package's shape: no import cycle among its modules (read statically, imports inside
functions included), the metrics importable without torch, and no module in src/ over 400 lines."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "ddpmseg"
MAX_LINES = 400


def module_name(path: Path) -> str:
    """ddpmseg.a.b of src/ddpmseg/a/b.py; a package's __init__.py is the package itself."""
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str, modules: set) -> set:
    """The package's modules that the file at `path` (module `name`) imports anywhere in it:
    `import ddpmseg.x`, `from ddpmseg.x import f` (ddpmseg.x), `from ddpmseg import x` (ddpmseg.x
    where x is a module, else ddpmseg), relative imports resolved the same way."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
    return (found & modules) - {name}


def import_graph() -> dict:
    """{module: set of the package's modules it imports} over every .py file under src/ddpmseg."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: imported_modules(path, name, set(paths)) for name, path in paths.items()}


def find_cycle(graph: dict) -> list | None:
    """One cycle of `graph` as [a, b, ..., a], or None (depth-first search, iterative)."""
    state = {}  # module -> "open" while on the current path, "done" once all it reaches is searched
    for root in sorted(graph):
        if root in state:
            continue
        path, stack = [root], [iter(sorted(graph[root]))]
        state[root] = "open"
        while stack:
            target = next(stack[-1], None)
            if target is None:
                state[path.pop()] = "done"
                stack.pop()
            elif state.get(target) == "open":
                return path[path.index(target):] + [target]
            elif target not in state:
                state[target] = "open"
                path.append(target)
                stack.append(iter(sorted(graph.get(target, ()))))
    return None


def test_the_cycle_search_finds_a_cycle_and_only_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_package_imports_have_no_cycle():
    graph = import_graph()
    assert "ddpmseg.mlp" in graph["ddpmseg.aggregation"] and "ddpmseg.aggregation" in graph["ddpmseg.ensemble"]
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_model_imports_neither_its_training_nor_the_cell_mixing():
    assert not import_graph()["ddpmseg.mlp"] & {"ddpmseg.ensemble", "ddpmseg.aggregation"}


def test_the_metrics_import_and_score_without_torch():
    """In a Python where importing torch fails as if it were not installed."""
    code = """
import importlib.abc, sys

class NoTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NoTorch())
import numpy as np
from ddpmseg import metrics
labels = np.array([[[0, 1], [1, 1]]], np.uint8)
print(metrics.mean_iou(labels, labels, 2, 255), metrics.error_detection_auroc(np.array([0.9, 0.1]), np.array([True, False])))
assert "torch" not in sys.modules
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    miou, auroc = map(float, result.stdout.split())
    assert miou == pytest.approx(1.0) and auroc == 1.0


def test_no_module_in_src_is_over_400_lines():
    lengths = {str(path.relative_to(SRC.parent)): len(path.read_text().splitlines()) for path in SRC.rglob("*.py")}
    over = {path: n for path, n in sorted(lengths.items()) if n > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"
