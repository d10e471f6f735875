"""The shape of src/annkit/data (issue 16, "one of each"): the package imports its loaders and the loaders
import nothing from the package (no cycle, no lazy import), one CSV row reader, image preprocessing apart from
batching, short modules and functions, and ``import annkit.data`` no heavier than torch and numpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import annkit.data
from annkit.data import batcher, csv_cells, csv_rows, csv_table, dataset, inputs, preprocess

DATA = Path(annkit.data.__file__).parent
MODULES = sorted(DATA.glob("*.py"))


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, at the top level?) of every import in the file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, id(node) in top))
        elif isinstance(node, ast.Import):
            found += [(a.name, id(node) in top) for a in node.names]
    return found


def test_no_data_module_imports_the_package_and_the_package_imports_at_the_top():
    for path in MODULES:
        if path.name != "__init__.py":
            assert ("annkit.data", True) not in imports(path) and ("annkit.data", False) not in imports(path), path
    lazy = [name for name, top in imports(DATA / "__init__.py") if not top]
    assert lazy == []


def test_one_row_reader_for_training_and_predict():
    for module in (csv_table, inputs):
        source = Path(module.__file__).read_text()
        assert "csv.reader" not in source and "import csv\n" not in source, module.__name__
        assert "csv_rows(" in source and "checked_rows(" in source, module.__name__
    assert "csv.reader" in Path(csv_rows.__file__).read_text()


def test_image_preprocessing_lives_apart_from_batching():
    assert {"augment", "normalize", "pixel_stats", "Preprocess"} <= set(vars(preprocess))
    assert not {"augment", "normalize", "pixel_stats", "Preprocess"} & set(vars(batcher))
    # the package still offers what its importers take from it
    assert annkit.data.Preprocess is preprocess.Preprocess and annkit.data.normalize is preprocess.normalize
    assert annkit.data.Batcher is batcher.Batcher
    assert annkit.data.Data is dataset.Data and annkit.data.split_train_val is dataset.split_train_val


def test_csv_modules_own_their_names():
    assert csv_rows.csv_columns.__module__ == "annkit.data.csv_rows"
    assert csv_cells.parse_column.__module__ == "annkit.data.csv_cells"
    assert csv_table.read_csv_table.__module__ == "annkit.data.csv_table"
    assert set(csv_table.__all__) == {"TASKS", "Table", "read_csv_table"}


def test_no_function_over_80_lines_and_no_module_over_500():
    long, big = {}, {}
    for path in MODULES:
        lines = len(path.read_text().splitlines())
        if lines > 500:
            big[path.name] = lines
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80:
                long[f"{path.name}:{node.name}"] = node.end_lineno - node.lineno + 1
    assert long == {} and big == {}
    assert all(len(Path(m.__file__).read_text().splitlines()) <= 400 for m in (csv_rows, csv_cells, csv_table))


def test_importing_the_package_imports_nothing_heavier_than_torch_and_numpy():
    code = "import sys, annkit.data\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = set(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    )
    assert {"torch", "numpy", "annkit"} <= loaded
    assert not loaded & {"PIL", "hydra", "omegaconf", "matplotlib", "tensorboard", "torchvision", "rich", "pandas"}
