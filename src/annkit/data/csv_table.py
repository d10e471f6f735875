"""A user's CSV file as numeric arrays for training: the columns chosen, the cells checked, the
:class:`Table` assembled (features, target, weights, task).

The rows come from :mod:`annkit.data.csv_rows` (the file's rules: header, encoding, quoting,
blank lines, one field per column) and each column's cells are typed by
:mod:`annkit.data.csv_cells` (numbers, missing values, task inference, class labels).

Columns
    ``features=None`` takes every column except the target(s) and the weight column, in file
    order; an explicit list takes those columns in its order. A column is at most one of
    target, feature and weight.

Arrays (:class:`Table`), N rows, F features, T / K target columns
    ``x`` N×F float32; ``y`` N int64 class indices (classification), N×T float32 (regression),
    N×K float32 of 0/1 (multilabel); ``w`` N float32 weights (finite, ≥ 0, not all 0) or None.

Every bad input raises :class:`~annkit.errors.AnnkitError` with one paragraph: what was wrong
(file, line number as an editor shows it — the header is line 1 —, column, value), what is
valid, and what to do, in terms of the config keys ``dataset.path``, ``dataset.target``,
``dataset.features``, ``dataset.sample_weight`` and ``dataset.task``.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.data.csv_cells import (
    Column,
    check_float32,
    check_missing,
    check_text_features,
    class_indices,
    decide_task,
    parse_column,
    weights,
)
from annkit.data.csv_rows import (
    check_delimiter,
    check_file,
    checked_rows,
    csv_rows,
    listed,
    override_list,
    quoted,
    read_header,
)
from annkit.errors import AnnkitError, did_you_mean
from annkit.schema import CSV_TASKS

__all__ = ["TASKS", "Table", "read_csv_table"]

TASKS = CSV_TASKS


@dataclass
class Table:
    """A CSV file read into arrays (see the module docstring for the rules)."""

    x: np.ndarray  # N×F float32 features
    y: np.ndarray  # classification: N int64; regression: N×T float32; multilabel: N×K float32 0/1
    w: np.ndarray | None  # N float32 per-sample weights, or None
    feature_names: list[str]
    target_names: list[str]
    classes: tuple[str, ...] | None  # classification: class names; multilabel: target names; regression: None
    task: str  # "classification" | "regression" | "multilabel"
    task_reason: str  # e.g. "string labels", "3 distinct integer values", "set by dataset.task"
    path: Path  # the file, resolved


# ---------------------------------------------------------------------------------------- columns


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A sentence when a one-column header looks split by another delimiter, else ''."""
    if len(header) != 1:
        return ""
    for other, override in (
        (";", """'dataset.delimiter=";"'"""),
        ("\t", """'dataset.delimiter="\\t"'"""),
        ("|", """'dataset.delimiter="|"'"""),
        (",", """'dataset.delimiter=","'"""),
    ):
        if other != delimiter and other in header[0]:
            shown = "tabs" if other == "\t" else quoted(other)
            return (
                f" The header has a single column, {quoted(header[0])}: the file looks separated by "
                f"{shown} rather than {quoted(delimiter)}; set {override}."
            )
    return ""


def _missing_columns(key: str, wanted: Sequence[str], header: list[str], path: Path, delimiter: str) -> AnnkitError:
    missing = [n for n in wanted if n not in header]
    what = " ".join(f"{quoted(n)} is not a column of {path}.{did_you_mean(n, header)}" for n in missing)
    some = "a column" if len(missing) == 1 else f"{len(missing)} columns"
    return AnnkitError(
        f"{key} names {some} the file does not have: {what} Its columns: {listed(header)}. "
        f"Spell the names in {key} exactly as the header does."
        f"{_delimiter_hint(header, delimiter)}"
    )


def _select(
    header: list[str],
    targets: list[str],
    features: Sequence[str] | None,
    weight: str | None,
    path: Path,
    delimiter: str,
) -> list[str]:
    """Check the target, feature and weight names against the header; the feature names."""
    if not targets:
        raise AnnkitError(f"dataset.target is empty. Set it to the column to predict, one of: {listed(header)}.")
    if len(set(targets)) != len(targets):
        twice = next(t for t in targets if targets.count(t) > 1)
        raise AnnkitError(
            f"dataset.target lists {quoted(twice)} more than once ({', '.join(targets)}). List each target column once."
        )
    if any(t not in header for t in targets):
        raise _missing_columns("dataset.target", targets, header, path, delimiter)
    if weight is not None:
        if weight not in header:
            raise _missing_columns("dataset.sample_weight", [weight], header, path, delimiter)
        if weight in targets:
            raise AnnkitError(
                f"Column {quoted(weight)} is both dataset.target and dataset.sample_weight. The weight column "
                f"says how much each row counts in the loss; it cannot be what the model predicts. "
                f"Set dataset.sample_weight to another column, or to null for equal weights."
            )
    if features is None:
        chosen = [c for c in header if c not in targets and c != weight]
        if not chosen:
            used = ", ".join(targets + ([weight] if weight else []))
            raise AnnkitError(
                f"{path} has no feature columns: its only columns ({listed(header)}) are the target or "
                f"weight ({used}). Add the input columns to the file, or check dataset.target."
            )
        return chosen
    chosen = [str(f) for f in features]
    if not chosen:
        raise AnnkitError(
            f"dataset.features is an empty list, so the model would have no inputs. List the input "
            f"columns, e.g. {override_list('dataset.features', [c for c in header if c not in targets][:3])}, "
            f"or set dataset.features=null for every column except the target."
        )
    if len(set(chosen)) != len(chosen):
        twice = next(f for f in chosen if chosen.count(f) > 1)
        raise AnnkitError(f"dataset.features lists {quoted(twice)} more than once. List each feature column once.")
    if any(f not in header for f in chosen):
        raise _missing_columns("dataset.features", chosen, header, path, delimiter)
    both = [f for f in chosen if f in targets]
    if both:
        raise AnnkitError(
            f"Column {quoted(both[0])} is both dataset.target and in dataset.features: a model given its "
            f"target as an input learns nothing useful. Remove it from dataset.features "
            f"({override_list('dataset.features', [f for f in chosen if f not in targets])})."
        )
    if weight is not None and weight in chosen:
        raise AnnkitError(
            f"Column {quoted(weight)} is both dataset.sample_weight and in dataset.features. Sample weights "
            f"scale the loss; as an input they would leak how each row is weighted. Remove it from "
            f"dataset.features ({override_list('dataset.features', [f for f in chosen if f != weight])})."
        )
    return chosen


# ---------------------------------------------------------------------------------------- the reader


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _read_columns(
    path: Path, delimiter: str, targets: list[str], features: Sequence[str] | None, weight: str | None
) -> tuple[list[str], list[list[str]], np.ndarray, dict[str, Column]]:
    """(feature names, data rows, the line each row starts on, the parsed columns used by name), every
    row checked to have one field per column; the column names are checked before any row is read."""
    with _no_gc():  # millions of small lists: the cyclic collector would rescan them again and again
        rows_iter = csv_rows(path, delimiter)
        try:
            header_line, header = read_header(path, rows_iter)
            feature_names = _select(header, targets, features, weight, path, delimiter)
            rows, starts = checked_rows(path, rows_iter, header, header_line, delimiter)
        finally:
            rows_iter.close()
        if rows:
            transposed = list(zip(*rows))  # columns as tuples of cells
    if not rows:
        raise AnnkitError(
            f"{path} has a header (line {header_line}: {listed(header)}) but no data rows. Add one line per "
            f"sample below the header, or set dataset.path to the file that holds the data."
        )
    position = {name: j for j, name in enumerate(header)}
    needed = {n: position[n] for n in targets + feature_names + ([weight] if weight else [])}
    parsed = {n: parse_column(n, transposed[j]) for n, j in needed.items()}
    return feature_names, rows, np.asarray(starts, dtype=np.int64), parsed


def _check_cells(
    target_cols: list[Column],
    feature_cols: list[Column],
    weight_col: Column | None,
    task: str,
    rows: list[list[str]],
    path: Path,
    lines: np.ndarray,
) -> np.ndarray | None:
    """Refuse text features, missing or out-of-range cells and bad weights; the weights, or None."""
    check_text_features(feature_cols, path, lines)
    if weight_col is not None and weight_col.text.any():
        weights(weight_col, path, lines)  # raises the text error
    string_labels = task == "classification" and target_cols[0].text.any()
    used: list[tuple[Column, np.ndarray, str]] = []
    for col in target_cols:
        used.append((col, (col.empty | col.nonfinite) if string_labels else col.missing, "target"))
    used += [(col, col.missing, "feature") for col in feature_cols]
    if weight_col is not None:
        used.append((weight_col, weight_col.missing, "weight"))
    check_missing(used, rows, path, lines)
    check_float32(feature_cols, "feature", path, lines)
    if task == "regression":
        check_float32(target_cols, "target", path, lines)
    return None if weight_col is None else weights(weight_col, path, lines)


def read_csv_table(
    path: str | Path,
    *,
    target: str | Sequence[str],
    features: Sequence[str] | None = None,
    weight_column: str | None = None,
    task: str = "auto",
    classes: Sequence[str] | None = None,
    delimiter: str = ",",
) -> Table:
    """Read a CSV file into a :class:`Table` (rules in the module docstring).

    ``target`` is one column name or a list of them. ``classes`` — the training Table's classes —
    is for a validation or test file: labels are mapped to those indices and a label outside them
    is refused. Pass the training Table's ``task`` with it. Raises AnnkitError for any bad input.
    """
    if task not in TASKS:
        raise AnnkitError(
            f"Unknown dataset.task {quoted(task)}.{did_you_mean(str(task), TASKS)} Valid values: {', '.join(TASKS)} "
            f"(auto infers it from the target column)."
        )
    if classes is not None and task == "regression":
        raise ValueError("classes applies to classification and multilabel tables, not regression")
    delimiter = check_delimiter(delimiter)
    path = Path(path).expanduser()
    check_file(path)
    targets = [str(target)] if isinstance(target, (str, int, float)) else [str(t) for t in target]
    weight = None if weight_column is None else str(weight_column)

    feature_names, rows, lines, parsed = _read_columns(path, delimiter, targets, features, weight)
    target_cols = [parsed[n] for n in targets]
    feature_cols = [parsed[n] for n in feature_names]
    weight_col = parsed[weight] if weight else None

    task, reason = decide_task(target_cols, task, classes, path, lines)
    if task == "multilabel" and classes is not None and tuple(str(c) for c in classes) != tuple(targets):
        raise AnnkitError(
            f"dataset.target lists {', '.join(targets)} for {path}, but the training file's multilabel targets "
            f"were {', '.join(str(c) for c in classes)}. Use the same target columns, in the same order, for every file."
        )
    w = _check_cells(target_cols, feature_cols, weight_col, task, rows, path, lines)

    x = np.stack([c.values for c in feature_cols], axis=1).astype(np.float32)
    if task == "classification":
        y, class_names = class_indices(target_cols[0], classes, path, lines)
        out_classes: tuple[str, ...] | None = class_names
    else:
        y = np.stack([c.values for c in target_cols], axis=1).astype(np.float32)
        out_classes = tuple(targets) if task == "multilabel" else None
    return Table(
        x=x,
        y=y,
        w=w,
        feature_names=feature_names,
        target_names=targets,
        classes=out_classes,
        task=task,
        task_reason=reason,
        path=path.resolve(),
    )
