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


# The concern packages, lowest first. A package imports only packages of a lower layer; config and
# models share a layer and import neither each other nor anything above them.
LAYERS = {"core": 0, "metrics": 1, "config": 2, "models": 2, "data": 3, "runs": 4, "inference": 5, "training": 6,
          "jobs": 7, "cli": 8}
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 60


def _package(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def package_graph() -> dict:
    """package -> the packages its modules import (top level or inside functions)."""
    graph = {name: set() for name in LAYERS}
    for module, targets in import_graph().items():
        if _package(module):
            graph[_package(module)] |= {_package(t) for t in targets if _package(t) and _package(t) != _package(module)}
    return graph


def test_the_tree_is_the_ten_concern_packages():
    entries = {p.name for p in (ROOT / "fer").iterdir() if p.name != "__pycache__"}
    # configs/ is data, not code: the shipped YAML presets (fer.training.presets), also `configs/` in a checkout.
    assert entries == set(LAYERS) | {"__init__.py", "__main__.py", "configs"} and len(entries) <= 14
    assert not list((ROOT / "fer" / "configs").rglob("*.py"))
    for name in LAYERS:  # each says what lives there
        init = ROOT / "fer" / name / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text())), f"fer/{name} has no docstring"


def test_no_package_imports_one_above_it():
    upward = [(module, target) for module, targets in import_graph().items() if _package(module)
              for target in targets if _package(target) and _package(target) != _package(module)
              and LAYERS[_package(target)] >= LAYERS[_package(module)]]
    assert not upward, f"imports from a lower package to a higher (or same-layer) one: {upward}"


def test_the_package_graph_is_small_and_shallow():
    graph = package_graph()
    order = list(TopologicalSorter(graph).static_order())  # raises on a cycle
    depth = {}
    for name in order:  # dependencies come first
        depth[name] = 1 + max((depth[d] for d in graph[name]), default=0)
    assert len(graph) <= 13 and max(depth.values()) <= 9
    assert graph["cli"] >= {"jobs", "training"} and graph["core"] == set()  # the ends are what they claim


def _sources():
    return sorted(list((ROOT / "fer").rglob("*.py")) + list((ROOT / "dashboard").rglob("*.py")))


def test_modules_and_functions_stay_small():
    too_long = []
    for path in _sources():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.name}: {length} lines")
    assert not too_long, too_long


def test_the_training_step_reads_top_to_bottom():
    tree = ast.parse((ROOT / "fer" / "training" / "fit.py").read_text())
    fit = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_fit")
    assert fit.end_lineno - fit.lineno + 1 < 50


def test_the_job_system_reads_configs_only_through_the_run_store():
    for name in ("queue", "worker", "ray", "submit"):
        source = (ROOT / "fer" / "jobs" / f"{name}.py").read_text()
        assert '"config.json"' not in source, f"fer.jobs.{name} parses config.json itself"
        assert "def _int(" not in source
    for name in ("worker", "ray"):  # one command line trains a queued run, locally or on a Ray node
        source = (ROOT / "fer" / "jobs" / f"{name}.py").read_text()
        assert "train_command(" in source and '"--run"' not in source


def test_every_dashboard_table_shows_a_missing_value_as_an_empty_cell():
    """Not as the words None or NaN: each st.dataframe call passes placeholder=""."""
    missing = []
    for path in sorted((ROOT / "dashboard").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "dataframe":
                if not any(k.arg == "placeholder" for k in node.keywords):
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not missing, missing
