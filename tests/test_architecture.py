"""The package's structure, read from its source: no import cycle, even counting function-local imports.

Every `import fer...` / `from fer... import` statement anywhere in a module (top level or inside a
function) is an edge; importing `fer.a.b` from outside `fer.a` also imports `fer.a`. The graph must
have no cycle, so no local import exists only to dodge one. Pages stay thin: no torch in dashboard/.
"""
import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted((ROOT / "fer").rglob("*.py"))}


def _targets(statement: ast.AST, importer: str) -> set:
    """The fer modules an import statement loads (a name imported from a package may be a submodule)."""
    if isinstance(statement, ast.Import):
        names = [a.name for a in statement.names]
    elif isinstance(statement, ast.ImportFrom) and statement.module and statement.level == 0:
        names = [statement.module] + [f"{statement.module}.{a.name}" for a in statement.names]
    else:
        return set()
    found = set()
    for name in names:
        while name and name not in MODULES:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
            parent = name.rpartition(".")[0]
            while parent:  # the parent packages load first, unless the importer lives inside them
                if not importer.startswith(parent + "."):
                    found.add(parent)
                parent = parent.rpartition(".")[0]
    return found - {importer}


def import_graph() -> dict:
    """module -> the fer modules it imports anywhere in its source."""
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), str(path))
        graph[name] = set().union(*(_targets(node, name) for node in ast.walk(tree)))
    return graph


def test_no_import_cycle_even_through_function_local_imports():
    graph = import_graph()
    assert len(graph) > 30 and "fer.training.fit" in graph["fer.jobs.submit"]
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as e:
        pytest.fail(f"import cycle: {' -> '.join(e.args[1])}")
    assert set(order) >= set(MODULES)


def test_model_files_import_the_registry_not_the_package():
    graph = import_graph()
    for name in (m for m in MODULES if m.startswith("fer.models.") and m != "fer.models._registry"):
        assert "fer.models" not in graph[name], f"{name} imports the fer.models package"


def test_dashboard_pages_do_no_tensor_maths():
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        imported = {a.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom) and node.module}
        assert "torch" not in imported, f"{path.name} imports torch"
