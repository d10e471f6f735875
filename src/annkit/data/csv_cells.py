"""The cells of a CSV file's columns as numbers, labels and a task, checked: what a column holds,
which task its target columns serve, and the errors for cells training cannot use.

Numbers
    A cell is a number when Python's ``float`` parses it and the result is finite. ``nan``,
    ``inf``, an empty cell, and the markers ``NA``, ``N/A``, ``null``, ``None``, ``?`` (any case)
    are *missing* values in a numeric column — an error that names the line and column, never a
    silent NaN in the arrays. In a column of text labels the markers are labels like any other
    text; an empty cell, ``nan`` or ``inf`` is still a missing label.

Task inference (``task="auto"``), on the non-missing cells of the target column(s)
    * one target column:
        - any cell that is not a number (and not a missing marker) → ``classification``,
          reason ``"string labels"``; classes = the sorted distinct strings;
        - all numbers, all integer-valued, at most 20 distinct values → ``classification``,
          reason ``"<k> distinct integer values"``; classes = the sorted values formatted
          without a trailing ``.0`` (``"0"``, ``"1"``, ``"2"``; ``2.5`` stays ``"2.5"``);
        - otherwise → ``regression``, reason ``"non-integer values"`` or
          ``"<k> distinct integer values (over 20)"``;
    * several target columns: all must be numbers; all 0/1 → ``multilabel`` (reason
      ``"all targets 0/1"``), else ``regression`` (reason ``"<T> numeric targets, not all 0/1"``).

    An explicit ``task`` (reason ``"set by dataset.task"``) is checked instead: regression needs
    numbers, multilabel needs 0/1, classification takes exactly one target column. With
    ``classes`` given and ``task="auto"`` the task is classification for one target column and
    multilabel for several (reason ``"classes of the training file"``).

Columns come from :mod:`annkit.data.csv_table`, which chooses them and assembles the arrays.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.data.csv_rows import listed, override_list, plural, quoted
from annkit.data.shaping import check_weights
from annkit.errors import AnnkitError

MAX_INTEGER_CLASSES = 20  # a numeric target with more distinct integer values is regression
MISSING_MARKERS = frozenset({"na", "n/a", "null", "none", "?"})  # lower-cased; missing in a numeric column
FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------------------------------- parsing


@dataclass
class Column:
    """One column's cells, parsed. Masks are N bool; in a numeric reading each cell is exactly one of
    number, missing (empty, non-finite or a marker such as "NA") and text."""

    name: str
    raw: Sequence[str]  # N cells as the csv module gave them
    values: np.ndarray  # N float64; NaN where the cell is not a finite number
    number: np.ndarray  # a finite number
    empty: np.ndarray  # "" after stripping
    nonfinite: np.ndarray  # parses as a float but is NaN or ±inf ("nan", "inf")
    marker: np.ndarray  # a missing-value marker ("NA", "?", …)

    @functools.cached_property
    def cells(self) -> np.ndarray:
        """N str, stripped (built when labels or a message need them)."""
        return np.char.strip(np.asarray(self.raw, dtype=str))

    @property
    def text(self) -> np.ndarray:
        """Cells that are neither numbers nor missing in a numeric reading."""
        return ~(self.number | self.empty | self.nonfinite | self.marker)

    @property
    def missing(self) -> np.ndarray:
        """Missing cells in a numeric reading."""
        return self.empty | self.nonfinite | self.marker


def parse_column(name: str, raw: Sequence[str]) -> Column:
    """Parse one column into floats. The common all-numeric column is one C-level pass (``float``
    ignores surrounding whitespace); otherwise each distinct stripped cell is looked at once."""
    n = len(raw)
    no = np.zeros(n, bool)
    try:
        values = np.fromiter(map(float, raw), np.float64, count=n)
    except ValueError:
        column = Column(name, raw, np.empty(0), no, no, no, no)
        cells = column.cells
        distinct, inverse = np.unique(cells, return_inverse=True)
        dvalues = np.full(len(distinct), np.nan)
        dparsed = np.zeros(len(distinct), bool)
        for i, cell in enumerate(distinct.tolist()):
            try:
                dvalues[i] = float(cell)
                dparsed[i] = True
            except ValueError:
                pass
        inverse = inverse.reshape(-1)
        values, parsed = dvalues[inverse], dparsed[inverse]
        empty = cells == ""
        unparsed = ~parsed & ~empty
        marker = np.zeros(n, bool)
        if unparsed.any():
            marker[unparsed] = np.isin(np.char.lower(cells[unparsed]), list(MISSING_MARKERS))
        finite = np.isfinite(values)
        column.values = np.where(parsed & finite, values, np.nan)
        column.number, column.empty, column.nonfinite, column.marker = parsed & finite, empty, parsed & ~finite, marker
        return column
    finite = np.isfinite(values)
    return Column(name, raw, np.where(finite, values, np.nan), finite, no, ~finite, no)


def format_number(value: float) -> str:
    """A numeric class name: integers without ".0" ("2"), others as Python writes them ("2.5")."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def quote_cells(cells: np.ndarray, limit: int = 3) -> str:
    """Up to ``limit`` distinct cells in file order, quoted."""
    seen: list[str] = []
    for cell in cells.tolist():
        if cell not in seen:
            seen.append(cell)
            if len(seen) == limit:
                break
    return ", ".join(quoted(c) for c in seen)


def number_hint(cell: str) -> str:
    """A sentence when a text cell is a number in another notation, else ''."""
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", cell):
        return f" {quoted(cell)} looks like a number with thousands separators: remove the commas."
    if re.fullmatch(r"[+-]?\d+,\d+", cell):
        return f" {quoted(cell)} looks like a number with a decimal comma: write it with a point."
    return ""


# ---------------------------------------------------------------------------------------- targets


def decide_task(
    cols: list[Column], task: str, classes: Sequence[str] | None, path: Path, lines: np.ndarray
) -> tuple[str, str]:
    """(task, reason), raising when the target column(s) cannot serve the task."""
    names = [c.name for c in cols]
    if task == "auto" and classes is not None:
        return ("classification" if len(cols) == 1 else "multilabel"), "classes of the training file"
    if task == "auto":
        if len(cols) == 1:
            col = cols[0]
            if col.text.any():
                return "classification", "string labels"
            values = col.values[col.number]
            distinct = np.unique(values)
            if values.size and np.all(values == np.round(values)):
                if len(distinct) <= MAX_INTEGER_CLASSES:
                    return "classification", f"{len(distinct)} distinct integer values"
                return "regression", f"{len(distinct)} distinct integer values (over {MAX_INTEGER_CLASSES})"
            return "regression", "non-integer values"
        for col in cols:
            if col.text.any():
                i = int(np.argmax(col.text))
                raise AnnkitError(
                    f"dataset.target lists {len(cols)} columns ({', '.join(names)}), and column {quoted(col.name)} "
                    f"of {path} holds text: line {lines[i]} has {quoted(col.cells[i])}. Several target columns "
                    f"must all hold numbers — 0/1 for multilabel, any numbers for multi-output regression. "
                    f"For a column of text labels, set dataset.target={col.name} alone (classification)."
                    f"{number_hint(col.cells[i])}"
                )
        if all(np.isin(c.values[c.number], (0.0, 1.0)).all() for c in cols):
            return "multilabel", "all targets 0/1"
        return "regression", f"{len(cols)} numeric targets, not all 0/1"

    reason = "set by dataset.task"
    if task == "classification" and len(cols) > 1:
        raise AnnkitError(
            f"dataset.task=classification takes one target column (the class labels), but dataset.target "
            f"lists {len(cols)}: {', '.join(names)}. For several 0/1 columns use dataset.task=multilabel, "
            f"for several numeric outputs dataset.task=regression; or set dataset.target to the one label column."
        )
    if task == "regression":
        for col in cols:
            text = col.text
            if not text.any():
                continue
            i = int(np.argmax(text))
            count = int(text.sum())
            if count * 2 > len(text):  # mostly text: a label column
                raise AnnkitError(
                    f"dataset.task=regression needs numbers, but target column {quoted(col.name)} of {path} holds "
                    f"text labels ({quote_cells(col.cells[text])}; {count} of {len(text)} rows). To predict "
                    f"a label, set dataset.task=classification (with loss=ce, or loss=mse, which then compares "
                    f"softmax probabilities with one-hot targets), or leave dataset.task=auto."
                )
            raise AnnkitError(
                f"dataset.task=regression needs numbers, but target column {quoted(col.name)} of {path} has "
                f"{plural(count, 'cell')} that {'is' if count == 1 else 'are'} not a number: line {lines[i]} "
                f"holds {quoted(col.cells[i])}. Fix or drop those rows.{number_hint(col.cells[i])}"
            )
    if task == "multilabel":
        for col in cols:
            bad = col.text | (col.number & ~np.isin(col.values, (0.0, 1.0)))
            if bad.any():
                i = int(np.argmax(bad))
                found = quote_cells(col.cells[~col.missing], limit=5)
                raise AnnkitError(
                    f"dataset.task=multilabel needs every target to be 0 or 1, but target column {quoted(col.name)} "
                    f"of {path} holds {quoted(col.cells[i])} at line {lines[i]} (values seen: {found}). For one column "
                    f"of class labels use dataset.task=classification, for real-valued targets "
                    f"dataset.task=regression; otherwise recode the column to 0/1."
                )
    return task, reason


def class_indices(
    col: Column, classes: Sequence[str] | None, path: Path, lines: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N int64 indices, class names) for a classification target with no missing cells."""
    numeric = not col.text.any()
    if classes is None:
        if numeric:
            distinct, inverse = np.unique(col.values, return_inverse=True)
            names = tuple(format_number(v) for v in distinct.tolist())
        else:
            distinct, inverse = np.unique(col.cells, return_inverse=True)
            names = tuple(str(c) for c in distinct.tolist())
        return inverse.reshape(-1).astype(np.int64), names

    names = tuple(str(c) for c in classes)
    index = {name: i for i, name in enumerate(names)}
    distinct, inverse = np.unique(col.cells, return_inverse=True)
    mapped = np.full(len(distinct), -1, np.int64)
    for i, cell in enumerate(distinct.tolist()):
        if cell in index:
            mapped[i] = index[cell]
            continue
        try:
            value = float(cell)
        except ValueError:
            continue
        if np.isfinite(value) and format_number(value) in index:  # "1.0" in a file whose training classes say "1"
            mapped[i] = index[format_number(value)]
    y = mapped[inverse.reshape(-1)]
    unknown = y < 0
    if unknown.any():
        i = int(np.argmax(unknown))
        others = quote_cells(col.cells[unknown], limit=5)
        raise AnnkitError(
            f"Line {lines[i]} of {path}: label {quoted(col.cells[i])} in column {quoted(col.name)} is not one of the "
            f"classes of the training file ({listed(list(names))}); {plural(int(unknown.sum()), 'row')} of this file "
            f"hold labels outside them ({others}). A model trained on those classes cannot predict it: drop "
            f"those rows, or add examples of the label to the training file and train again."
        )
    return y, names


# ---------------------------------------------------------------------------------------- checks


def check_text_features(cols: list[Column], path: Path, lines: np.ndarray) -> None:
    textual = [c for c in cols if c.text.any()]
    if not textual:
        return
    col = textual[0]
    i = int(np.argmax(col.text))
    numeric = [c.name for c in cols if not c.text.any()]
    more = ""
    if len(textual) > 1:
        more = f" Columns {', '.join(quoted(c.name) for c in textual[1:])} hold text as well."
    leave_out = (
        f"Leave the text out with {override_list('dataset.features', numeric)} (the numeric columns), "
        f"or encode it as numbers (one 0/1 column per category)."
        if numeric
        else "No feature column holds numbers only: encode the text as numbers (one 0/1 column per category)."
    )
    raise AnnkitError(
        f"Feature column {quoted(col.name)} of {path} holds text, not numbers: line {lines[i]} has {quoted(col.cells[i])} "
        f"(values like {quote_cells(col.cells[col.text])}).{more} Features must be numbers.{number_hint(col.cells[i])} "
        f"{leave_out}"
    )


def check_missing(
    used: list[tuple[Column, np.ndarray, str]], rows: list[list[str]], path: Path, lines: np.ndarray
) -> None:
    """Refuse missing cells: ``used`` holds (column, missing mask, role) for every column read."""
    any_missing = np.zeros(len(lines), bool)
    for _, mask, _ in used:
        any_missing |= mask
    if not any_missing.any():
        return
    i = int(np.argmax(any_missing))
    col, _, role = next(u for u in used if u[1][i])
    cell = str(col.cells[i])
    if not cell:
        what = "is empty"
    elif col.nonfinite[i]:
        what = f"holds {quoted(cell)} ({'not a number' if np.isnan(float(cell)) else 'infinite'})"
    else:
        what = f"holds {quoted(cell)} (a missing-value marker)"
    if all(not f.strip() for f in rows[i]):
        what += " — every field of that line is empty"
    counts = ", ".join(f"{c.name}: {int(m.sum())}" for c, m, _ in used if m.any())
    n_rows = int(any_missing.sum())
    target_rows = [c.name for c, m, r in used if r == "target" and m.any()]
    drop = f" Rows without a target ({', '.join(target_rows)}) cannot be used: drop them." if target_rows else ""
    raise AnnkitError(
        f"{path} has missing values: line {lines[i]}, {role} column {quoted(col.name)} {what}. In all, "
        f"{plural(n_rows, 'row')} of {len(lines)} {'has' if n_rows == 1 else 'have'} an empty, NaN or infinite cell ({counts}); training "
        f"needs a finite number in every cell it uses. Fill the values in (e.g. with the column's median) or "
        f"drop those rows before training.{drop}"
    )


def check_float32(cols: list[Column], role: str, path: Path, lines: np.ndarray) -> None:
    for col in cols:
        big = np.abs(col.values) > FLOAT32_MAX
        if big.any():
            i = int(np.argmax(big))
            raise AnnkitError(
                f"Line {lines[i]} of {path}: {role} column {quoted(col.name)} holds {col.cells[i]}, beyond the float32 "
                f"range (±3.4e38) the network computes in. Rescale the column (e.g. take its logarithm) or fix the value."
            )


def weights(col: Column, path: Path, lines: np.ndarray) -> np.ndarray:
    if col.text.any():
        i = int(np.argmax(col.text))
        raise AnnkitError(
            f"dataset.sample_weight names column {quoted(col.name)} of {path}, which holds text: line {lines[i]} has "
            f"{quoted(col.cells[i])}. Weights must be numbers ≥ 0 (how much each row counts in the loss). Set "
            f"dataset.sample_weight to a numeric column, or to null for equal weights.{number_hint(col.cells[i])}"
        )
    check_weights(
        col.values,
        at=lambda i: f"Line {lines[i]} of {path}: the weight in column {quoted(col.name)} (dataset.sample_weight)",
        source=f"column {quoted(col.name)} of {path}",
    )
    return col.values.astype(np.float32)
