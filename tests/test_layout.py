"""The shape of src/annkit (issue 16): no import cycle (lazy imports included), no task importing another task,
no module over 500 lines, no function over 80, and the two recipes that everything flows through short.

Read with ``ast`` from the source files: nothing is imported, so a cycle hidden behind a function-level import is
found as well as one at the top of a module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src"
PACKAGE = SRC / "annkit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path) -> set[str]:
    """The annkit modules that ``name`` imports anywhere in its file (top level or inside functions)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:  # `from annkit.data import Batcher` → annkit.data
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: imported(name, path) for name, path in MODULES.items()}


def cycles() -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    return found


def test_the_walker_sees_lazy_and_relative_imports():
    source = "import os\ndef f():\n    from annkit.loop import fit\n    from . import metrics\n"
    tree_file = PACKAGE / "_probe_for_the_layout_test.py"
    try:
        tree_file.write_text(source)
        MODULES["annkit._probe_for_the_layout_test"] = tree_file
        assert imported("annkit._probe_for_the_layout_test", tree_file) == {"annkit.loop", "annkit.metrics", "annkit"}
    finally:
        tree_file.unlink()
        MODULES.pop("annkit._probe_for_the_layout_test")


def test_no_import_cycle_between_modules_lazy_imports_included():
    assert cycles() == []


def test_a_task_imports_no_other_task():
    tasks = {n for n in MODULES if n.startswith("annkit.tasks.")}
    recipes = {n for n in tasks if "def run(" in MODULES[n].read_text()}
    crossing = {n: sorted(GRAPH[n] & (recipes - {n})) for n in recipes if GRAPH[n] & (recipes - {n})}
    assert crossing == {}


def test_config_is_read_in_the_task_layer_only_nothing_below_imports_it():
    """Below annkit.tasks, functions take plain arguments: no module outside the task layer imports from it."""
    upward = {
        n: sorted(d for d in GRAPH[n] if d.startswith("annkit.tasks"))
        for n in GRAPH
        if not n.startswith("annkit.tasks") and n != "annkit.api"  # annkit.api: Python's door to the tasks, above them
    }
    assert {n: d for n, d in upward.items() if d} == {}


# each module's layer (docs/architecture.md explains them); a module imports from the layers listed for it only
LAYERS = {
    "api": ["api"],
    "base": [
        "commands",
        "cpu",
        "distributed",
        "errors",
        "meanings",
        "overrides",
        "records",
        "rundir",
        "schema",
        "sweeps",
    ],
    "entry": ["__main__", "cli", "help"],
    "data": [
        "data",
        "data.batcher",
        "data.csv_cells",
        "data.csv_rows",
        "data.csv_table",
        "data.dataset",
        "data.idx",
        "data.images",
        "data.inputs",
        "data.playground",
        "data.preprocess",
        "data.shaping",
        "data.sources",
        "data.tabular",
    ],
    "math": ["autodiff", "config", "hand_weights", "head", "losses", "memory", "metrics", "models", "probes", "trust"],
    "loop": [
        "advice",
        "checkpoint",
        "finetune",
        "fit_state",
        "export",
        "inference",
        "loop",
        "lr_finder",
        "lr_search",
        "resume",
        "runtime",
    ],
    "report": ["dashboard", "diagram", "figures", "inside", "lr_report", "tracking", "truth", "unit_maps"],
    "task layer": [
        "tasks.build",
        "tasks.header",
        "tasks.learning_rate",
        "tasks.metrics_record",
        "tasks.pictures",
        "tasks.stored_data",
    ],
    "task": [
        "tasks.autodiff",
        "tasks.board",
        "tasks.compare",
        "tasks.evaluate",
        "tasks.export",
        "tasks.lr_find",
        "tasks.predict",
        "tasks.show",
        "tasks.train",
    ],
}
MAY_IMPORT = {
    "base": {"base"},
    "entry": {"base", "entry"},
    "data": {"base", "data"},
    "math": {"base", "data", "math"},
    "loop": {"base", "data", "math", "loop"},
    "report": {"base", "data", "math", "loop", "report"},
    "task layer": {"base", "data", "math", "loop", "report", "task layer"},
    "task": {"base", "data", "math", "loop", "report", "task layer"},
    "api": {"base", "data", "math", "loop", "report", "task layer", "task"},  # Python's door to the tasks
}


def layer_of(name: str) -> str | None:
    short = name.removeprefix("annkit.")
    return next((layer for layer, names in LAYERS.items() if short in names), None)


def test_every_module_has_a_layer_and_imports_only_from_the_layers_below_or_its_own():
    skip = {"annkit", "annkit.examples", "annkit.tasks"}
    assert [n for n in MODULES if n not in skip and layer_of(n) is None] == []
    wrong = {
        n: sorted(d for d in GRAPH[n] if d not in skip and layer_of(d) not in MAY_IMPORT[layer_of(n)])
        for n in MODULES
        if n not in skip
    }
    assert {n: d for n, d in wrong.items() if d} == {}


def functions(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines from ``def`` to the end of its body) of every function in the file."""
    out: list[tuple[str, int]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{prefix}{child.name}", child.end_lineno - child.lineno + 1))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(ast.parse(path.read_text()), "")
    return out


def body_lines(path: Path, name: str) -> int:
    """Lines of a top-level function's body, its docstring left out."""
    node = next(n for n in ast.parse(path.read_text()).body if isinstance(n, ast.FunctionDef) and n.name == name)
    body = (
        node.body[1:]
        if isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)
        else node.body
    )
    return body[-1].end_lineno - body[0].lineno + 1


def test_no_function_over_80_lines_and_no_module_over_500():
    long = {f"{n}.{f}": lines for n, p in MODULES.items() for f, lines in functions(p) if lines > 80}
    big = {n: len(p.read_text().splitlines()) for n, p in MODULES.items() if len(p.read_text().splitlines()) > 500}
    assert long == {} and big == {}


@pytest.mark.parametrize(("module", "function"), [("annkit.tasks.train", "train"), ("annkit.loop", "fit")])
def test_the_recipes_everything_flows_through_fit_on_a_screen(module, function):
    assert body_lines(MODULES[module], function) <= 60
