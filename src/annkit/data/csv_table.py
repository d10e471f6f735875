"""A user's CSV file as numeric arrays for training: type inference and one-paragraph errors.

The file
    The first non-blank line is the header (column names); every later non-blank line is one
    sample with one field per column. Encoding UTF-8, with or without a byte-order mark. Fields
    are split and unquoted by Python's :mod:`csv` module (``"1,5"`` is one field; spaces after
    a delimiter are skipped, so ``a, "b,c"`` quotes too), then stripped of surrounding
    whitespace. Blank lines are skipped wherever they are (at the end of the file most often);
    a line of delimiters only (``,,,``) is *not* blank, it is a row of empty cells. Line numbers
    in messages are the line a row starts on, as an editor shows it.

Numbers
    A cell is a number when Python's ``float`` parses it and the result is finite. ``nan``,
    ``inf``, an empty cell, and the markers ``NA``, ``N/A``, ``null``, ``None``, ``?`` (any case)
    are *missing* values in a numeric column — an error that names the line and column, never a
    silent NaN in the arrays. In a column of text labels the markers are labels like any other
    text; an empty cell, ``nan`` or ``inf`` is still a missing label.

Columns
    ``features=None`` takes every column except the target(s) and the weight column, in file
    order; an explicit list takes those columns in its order. A column is at most one of
    target, feature and weight.

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
import csv
import functools
import gc
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annkit.data.shaping import check_weights
from annkit.errors import AnnkitError, did_you_mean
from annkit.schema import CSV_TASKS

__all__ = ["MAX_INTEGER_CLASSES", "TASKS", "Table", "csv_columns", "read_csv_table"]

TASKS = CSV_TASKS
MAX_INTEGER_CLASSES = 20  # a numeric target with more distinct integer values is regression
MISSING_MARKERS = frozenset({"na", "n/a", "null", "none", "?"})  # lower-cased; missing in a numeric column
FLOAT32_MAX = float(np.finfo(np.float32).max)
_LIST_LIMIT = 30  # column names listed in a message before "…"


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


# ---------------------------------------------------------------------------------------- text helpers


def _q(value: object) -> str:
    """A value in double quotes, as messages quote cells and names."""
    return f'"{value}"'


def _names(names: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """Comma-separated names, cut after ``limit`` with the total."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"


def _override_list(key: str, names: Sequence[str]) -> str:
    """A Hydra override that sets ``key`` to a list of column names, shell-quoted when needed."""
    plain = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
    items = [n if plain.match(n) else json.dumps(n) for n in names]
    override = f"{key}=[{','.join(items)}]"
    return override if all(plain.match(n) for n in names) else f"'{override}'"


def _format_number(value: float) -> str:
    """A numeric class name: integers without ".0" ("2"), others as Python writes them ("2.5")."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# ---------------------------------------------------------------------------------------- reading


def _check_delimiter(delimiter: str) -> str:
    if delimiter in ("\\t", "tab"):
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise AnnkitError(
            f'dataset.delimiter must be one character such as "," or ";" (a tab is "\\t"), '
            f"got {delimiter!r}. Set it to the character that separates the fields of the file."
        )
    return delimiter


def _check_file(path: Path) -> None:
    if path.is_file():
        return
    resolved = path.resolve()
    given = "" if str(path) == str(resolved) else f' (from "{path}", relative to the working directory {Path.cwd()})'
    if path.is_dir():
        raise AnnkitError(
            f"dataset.path names a folder, not a file: {resolved}{given}. "
            f"Set dataset.path to the CSV file itself, e.g. dataset.path={resolved / 'data.csv'}."
        )
    parent = resolved.parent
    if parent.is_dir():
        try:
            nearby = sorted(p.name for p in parent.iterdir() if p.is_file())
        except OSError:
            nearby = []
        hint = did_you_mean(resolved.name, nearby)
        where = f" The folder {parent} exists.{hint}"
    else:
        where = f" Its folder {parent} does not exist either."
    raise AnnkitError(
        f"There is no file at {resolved}{given}, the file named by dataset.path (or dataset.train / "
        f"dataset.val / dataset.test).{where} Check the spelling, or give the absolute path: "
        f"dataset.path=/full/path/to/file.csv."
    )


def _not_text(path: Path) -> AnnkitError:
    """The error for a file that is not UTF-8 text, naming the line of the first bad byte."""
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":
        return AnnkitError(
            f"{path} is a zip archive (an Excel .xlsx workbook is one), not a CSV text file. "
            f'Export the sheet as CSV (in Excel: File → Save As → "CSV UTF-8"), or unzip it, '
            f"and set dataset.path to the .csv file."
        )
    if raw[:2] == b"\x1f\x8b":
        return AnnkitError(
            f"{path} is gzip-compressed, not a CSV text file. Decompress it (gunzip {path.name}) "
            f"and set dataset.path to the .csv file."
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        byte = raw[err.start : err.start + 1].hex()
        return AnnkitError(
            f"{path} is not UTF-8 text: line {line} holds the byte 0x{byte}, which UTF-8 does not allow "
            f"there (the file was probably saved as Latin-1 or Windows-1252). Save it as UTF-8 "
            f'(in Excel: "CSV UTF-8"; or convert it: iconv -f cp1252 -t utf-8 {path.name} > utf8.csv) '
            f"and point dataset.path at the converted file."
        )
    return AnnkitError(f"{path} could not be read as UTF-8 text. Save it as UTF-8 and try again.")


def _rows(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, raw fields) for every non-blank row of the file."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the generator)
    except PermissionError:
        raise AnnkitError(
            f"{path} cannot be read: permission denied. Make the file readable (chmod +r) "
            f"or copy it somewhere you can read and set dataset.path to the copy."
        ) from None
    with handle:
        reader = csv.reader(handle, delimiter=delimiter, skipinitialspace=True)  # a, "b" quotes b
        last = 0
        try:
            for row in reader:
                start, last = last + 1, reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                yield start, row
        except UnicodeDecodeError:
            raise _not_text(path) from None
        except csv.Error as err:
            raise AnnkitError(
                f"{path} line {reader.line_num} cannot be read as CSV: {err}. Check the quotes on "
                f"that line: a field that holds the delimiter, a quote or a line break must be quoted, "
                f'with quotes inside it doubled ("say ""hi""").'
            ) from None


def _header(path: Path, rows: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The header's line and stripped names, checked: present, non-empty, unique."""
    first = next(rows, None)
    if first is None:
        raise AnnkitError(
            f"{path} is empty: it holds no header line and no data. dataset.path must name a CSV file "
            f"whose first line holds the column names, followed by one line per sample."
        )
    line, fields = first
    names = [f.strip() for f in fields]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        which = ", ".join(str(i) for i in empty)
        hint = ""
        if empty[0] == 1:
            hint = (
                " A file written by pandas' DataFrame.to_csv() starts with an unnamed index column: "
                "write it with index=False, or give that column a name."
            )
        elif empty[-1] == len(names):
            hint = " The header line ends with a delimiter: remove it, or name the last column."
        raise AnnkitError(
            f"The header (line {line}) of {path} has no name for {'column' if len(empty) == 1 else 'columns'} {which} of {len(names)}. "
            f"Every column needs a unique name so that dataset.target and dataset.features can pick it "
            f"— name it in the header line.{hint}"
        )
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise AnnkitError(
                f"The header (line {line}) of {path} names {_q(name)} twice (columns {seen[name]} and {i}). "
                f"Column names must be unique so that dataset.target and dataset.features can pick "
                f"columns by name; rename one of them in the header line."
            )
        seen[name] = i
    return line, names


def csv_columns(path: str | Path, delimiter: str = ",") -> list[str]:
    """The header's column names, stripped, in file order.

    Raises AnnkitError when the file is missing, empty, not UTF-8, or its header has an empty or
    duplicate name. Only the header line is read.
    """
    path = Path(path).expanduser()
    _check_file(path)
    rows = _rows(path, _check_delimiter(delimiter))
    try:
        return _header(path, rows)[1]
    finally:
        rows.close()


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
            shown = "tabs" if other == "\t" else _q(other)
            return (
                f" The header has a single column, {_q(header[0])}: the file looks separated by "
                f"{shown} rather than {_q(delimiter)}; set {override}."
            )
    return ""


def _missing_columns(key: str, wanted: Sequence[str], header: list[str], path: Path, delimiter: str) -> AnnkitError:
    missing = [n for n in wanted if n not in header]
    what = " ".join(f"{_q(n)} is not a column of {path}.{did_you_mean(n, header)}" for n in missing)
    some = "a column" if len(missing) == 1 else f"{len(missing)} columns"
    return AnnkitError(
        f"{key} names {some} the file does not have: {what} Its columns: {_names(header)}. "
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
        raise AnnkitError(f"dataset.target is empty. Set it to the column to predict, one of: {_names(header)}.")
    if len(set(targets)) != len(targets):
        twice = next(t for t in targets if targets.count(t) > 1)
        raise AnnkitError(
            f"dataset.target lists {_q(twice)} more than once ({', '.join(targets)}). List each target column once."
        )
    if any(t not in header for t in targets):
        raise _missing_columns("dataset.target", targets, header, path, delimiter)
    if weight is not None:
        if weight not in header:
            raise _missing_columns("dataset.sample_weight", [weight], header, path, delimiter)
        if weight in targets:
            raise AnnkitError(
                f"Column {_q(weight)} is both dataset.target and dataset.sample_weight. The weight column "
                f"says how much each row counts in the loss; it cannot be what the model predicts. "
                f"Set dataset.sample_weight to another column, or to null for equal weights."
            )
    if features is None:
        chosen = [c for c in header if c not in targets and c != weight]
        if not chosen:
            used = ", ".join(targets + ([weight] if weight else []))
            raise AnnkitError(
                f"{path} has no feature columns: its only columns ({_names(header)}) are the target or "
                f"weight ({used}). Add the input columns to the file, or check dataset.target."
            )
        return chosen
    chosen = [str(f) for f in features]
    if not chosen:
        raise AnnkitError(
            f"dataset.features is an empty list, so the model would have no inputs. List the input "
            f"columns, e.g. {_override_list('dataset.features', [c for c in header if c not in targets][:3])}, "
            f"or set dataset.features=null for every column except the target."
        )
    if len(set(chosen)) != len(chosen):
        twice = next(f for f in chosen if chosen.count(f) > 1)
        raise AnnkitError(f"dataset.features lists {_q(twice)} more than once. List each feature column once.")
    if any(f not in header for f in chosen):
        raise _missing_columns("dataset.features", chosen, header, path, delimiter)
    both = [f for f in chosen if f in targets]
    if both:
        raise AnnkitError(
            f"Column {_q(both[0])} is both dataset.target and in dataset.features: a model given its "
            f"target as an input learns nothing useful. Remove it from dataset.features "
            f"({_override_list('dataset.features', [f for f in chosen if f not in targets])})."
        )
    if weight is not None and weight in chosen:
        raise AnnkitError(
            f"Column {_q(weight)} is both dataset.sample_weight and in dataset.features. Sample weights "
            f"scale the loss; as an input they would leak how each row is weighted. Remove it from "
            f"dataset.features ({_override_list('dataset.features', [f for f in chosen if f != weight])})."
        )
    return chosen


@dataclass
class _Column:
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


def _parse(name: str, raw: Sequence[str]) -> _Column:
    """Parse one column into floats. The common all-numeric column is one C-level pass (``float``
    ignores surrounding whitespace); otherwise each distinct stripped cell is looked at once."""
    n = len(raw)
    no = np.zeros(n, bool)
    try:
        values = np.fromiter(map(float, raw), np.float64, count=n)
    except ValueError:
        column = _Column(name, raw, np.empty(0), no, no, no, no)
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
    return _Column(name, raw, np.where(finite, values, np.nan), finite, no, ~finite, no)


def _quote_cells(cells: np.ndarray, limit: int = 3) -> str:
    """Up to ``limit`` distinct cells in file order, quoted."""
    seen: list[str] = []
    for cell in cells.tolist():
        if cell not in seen:
            seen.append(cell)
            if len(seen) == limit:
                break
    return ", ".join(_q(c) for c in seen)


def _number_hint(cell: str) -> str:
    """A sentence when a text cell is a number in another notation, else ''."""
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", cell):
        return f" {_q(cell)} looks like a number with thousands separators: remove the commas."
    if re.fullmatch(r"[+-]?\d+,\d+", cell):
        return f" {_q(cell)} looks like a number with a decimal comma: write it with a point."
    return ""


# ---------------------------------------------------------------------------------------- targets


def _decide_task(
    cols: list[_Column], task: str, classes: Sequence[str] | None, path: Path, lines: np.ndarray
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
                    f"dataset.target lists {len(cols)} columns ({', '.join(names)}), and column {_q(col.name)} "
                    f"of {path} holds text: line {lines[i]} has {_q(col.cells[i])}. Several target columns "
                    f"must all hold numbers — 0/1 for multilabel, any numbers for multi-output regression. "
                    f"For a column of text labels, set dataset.target={col.name} alone (classification)."
                    f"{_number_hint(col.cells[i])}"
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
                    f"dataset.task=regression needs numbers, but target column {_q(col.name)} of {path} holds "
                    f"text labels ({_quote_cells(col.cells[text])}; {count} of {len(text)} rows). To predict "
                    f"a label, set dataset.task=classification (with loss=ce, or loss=mse, which then compares "
                    f"softmax probabilities with one-hot targets), or leave dataset.task=auto."
                )
            raise AnnkitError(
                f"dataset.task=regression needs numbers, but target column {_q(col.name)} of {path} has "
                f"{_plural(count, 'cell')} that {'is' if count == 1 else 'are'} not a number: line {lines[i]} "
                f"holds {_q(col.cells[i])}. Fix or drop those rows.{_number_hint(col.cells[i])}"
            )
    if task == "multilabel":
        for col in cols:
            bad = col.text | (col.number & ~np.isin(col.values, (0.0, 1.0)))
            if bad.any():
                i = int(np.argmax(bad))
                found = _quote_cells(col.cells[~col.missing], limit=5)
                raise AnnkitError(
                    f"dataset.task=multilabel needs every target to be 0 or 1, but target column {_q(col.name)} "
                    f"of {path} holds {_q(col.cells[i])} at line {lines[i]} (values seen: {found}). For one column "
                    f"of class labels use dataset.task=classification, for real-valued targets "
                    f"dataset.task=regression; otherwise recode the column to 0/1."
                )
    return task, reason


def _class_indices(
    col: _Column, classes: Sequence[str] | None, path: Path, lines: np.ndarray
) -> tuple[np.ndarray, tuple[str, ...]]:
    """(N int64 indices, class names) for a classification target with no missing cells."""
    numeric = not col.text.any()
    if classes is None:
        if numeric:
            distinct, inverse = np.unique(col.values, return_inverse=True)
            names = tuple(_format_number(v) for v in distinct.tolist())
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
        if np.isfinite(value) and _format_number(value) in index:  # "1.0" in a file whose training classes say "1"
            mapped[i] = index[_format_number(value)]
    y = mapped[inverse.reshape(-1)]
    unknown = y < 0
    if unknown.any():
        i = int(np.argmax(unknown))
        others = _quote_cells(col.cells[unknown], limit=5)
        raise AnnkitError(
            f"Line {lines[i]} of {path}: label {_q(col.cells[i])} in column {_q(col.name)} is not one of the "
            f"classes of the training file ({_names(list(names))}); {_plural(int(unknown.sum()), 'row')} of this file "
            f"hold labels outside them ({others}). A model trained on those classes cannot predict it: drop "
            f"those rows, or add examples of the label to the training file and train again."
        )
    return y, names


# ---------------------------------------------------------------------------------------- checks


def _check_text_features(cols: list[_Column], path: Path, lines: np.ndarray) -> None:
    textual = [c for c in cols if c.text.any()]
    if not textual:
        return
    col = textual[0]
    i = int(np.argmax(col.text))
    numeric = [c.name for c in cols if not c.text.any()]
    more = ""
    if len(textual) > 1:
        more = f" Columns {', '.join(_q(c.name) for c in textual[1:])} hold text as well."
    leave_out = (
        f"Leave the text out with {_override_list('dataset.features', numeric)} (the numeric columns), "
        f"or encode it as numbers (one 0/1 column per category)."
        if numeric
        else "No feature column holds numbers only: encode the text as numbers (one 0/1 column per category)."
    )
    raise AnnkitError(
        f"Feature column {_q(col.name)} of {path} holds text, not numbers: line {lines[i]} has {_q(col.cells[i])} "
        f"(values like {_quote_cells(col.cells[col.text])}).{more} Features must be numbers.{_number_hint(col.cells[i])} "
        f"{leave_out}"
    )


def _check_missing(
    used: list[tuple[_Column, np.ndarray, str]], rows: list[list[str]], path: Path, lines: np.ndarray
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
        what = f"holds {_q(cell)} ({'not a number' if np.isnan(float(cell)) else 'infinite'})"
    else:
        what = f"holds {_q(cell)} (a missing-value marker)"
    if all(not f.strip() for f in rows[i]):
        what += " — every field of that line is empty"
    counts = ", ".join(f"{c.name}: {int(m.sum())}" for c, m, _ in used if m.any())
    n_rows = int(any_missing.sum())
    target_rows = [c.name for c, m, r in used if r == "target" and m.any()]
    drop = f" Rows without a target ({', '.join(target_rows)}) cannot be used: drop them." if target_rows else ""
    raise AnnkitError(
        f"{path} has missing values: line {lines[i]}, {role} column {_q(col.name)} {what}. In all, "
        f"{_plural(n_rows, 'row')} of {len(lines)} {'has' if n_rows == 1 else 'have'} an empty, NaN or infinite cell ({counts}); training "
        f"needs a finite number in every cell it uses. Fill the values in (e.g. with the column's median) or "
        f"drop those rows before training.{drop}"
    )


def _check_float32(cols: list[_Column], role: str, path: Path, lines: np.ndarray) -> None:
    for col in cols:
        big = np.abs(col.values) > FLOAT32_MAX
        if big.any():
            i = int(np.argmax(big))
            raise AnnkitError(
                f"Line {lines[i]} of {path}: {role} column {_q(col.name)} holds {col.cells[i]}, beyond the float32 "
                f"range (±3.4e38) the network computes in. Rescale the column (e.g. take its logarithm) or fix the value."
            )


def _weights(col: _Column, path: Path, lines: np.ndarray) -> np.ndarray:
    if col.text.any():
        i = int(np.argmax(col.text))
        raise AnnkitError(
            f"dataset.sample_weight names column {_q(col.name)} of {path}, which holds text: line {lines[i]} has "
            f"{_q(col.cells[i])}. Weights must be numbers ≥ 0 (how much each row counts in the loss). Set "
            f"dataset.sample_weight to a numeric column, or to null for equal weights.{_number_hint(col.cells[i])}"
        )
    check_weights(
        col.values,
        at=lambda i: f"Line {lines[i]} of {path}: the weight in column {_q(col.name)} (dataset.sample_weight)",
        source=f"column {_q(col.name)} of {path}",
    )
    return col.values.astype(np.float32)


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


def _read_rows(
    path: Path, delimiter: str, targets: list[str], features: Sequence[str] | None, weight: str | None
) -> tuple[int, list[str], list[str], list[list[str]], list[int]]:
    """(header line, header, feature names, data rows, the line each row starts on), every row
    checked to have one field per column; the column names are checked before any row is read."""
    rows_iter = _rows(path, delimiter)
    try:
        header_line, header = _header(path, rows_iter)
        feature_names = _select(header, targets, features, weight, path, delimiter)
        rows: list[list[str]] = []
        starts: list[int] = []
        width = len(header)
        for line, row in rows_iter:
            if len(row) != width:
                raise _field_count(path, line, row, header, header_line, delimiter)
            rows.append(row)
            starts.append(line)
    finally:
        rows_iter.close()
    return header_line, header, feature_names, rows, starts


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
            f"Unknown dataset.task {_q(task)}.{did_you_mean(str(task), TASKS)} Valid values: {', '.join(TASKS)} "
            f"(auto infers it from the target column)."
        )
    if classes is not None and task == "regression":
        raise ValueError("classes applies to classification and multilabel tables, not regression")
    delimiter = _check_delimiter(delimiter)
    path = Path(path).expanduser()
    _check_file(path)
    targets = [str(target)] if isinstance(target, (str, int, float)) else [str(t) for t in target]
    weight = None if weight_column is None else str(weight_column)

    with _no_gc():  # millions of small lists: the cyclic collector would rescan them again and again
        header_line, header, feature_names, rows, starts = _read_rows(path, delimiter, targets, features, weight)
        if rows:
            transposed = list(zip(*rows))  # columns as tuples of cells
    if not rows:
        raise AnnkitError(
            f"{path} has a header (line {header_line}: {_names(header)}) but no data rows. Add one line per "
            f"sample below the header, or set dataset.path to the file that holds the data."
        )
    lines = np.asarray(starts, dtype=np.int64)
    position = {name: j for j, name in enumerate(header)}
    needed = {n: position[n] for n in targets + feature_names + ([weight] if weight else [])}
    parsed = {n: _parse(n, transposed[j]) for n, j in needed.items()}
    del transposed
    target_cols = [parsed[n] for n in targets]
    feature_cols = [parsed[n] for n in feature_names]
    weight_col = parsed[weight] if weight else None

    task, reason = _decide_task(target_cols, task, classes, path, lines)
    if task == "multilabel" and classes is not None and tuple(str(c) for c in classes) != tuple(targets):
        raise AnnkitError(
            f"dataset.target lists {', '.join(targets)} for {path}, but the training file's multilabel targets "
            f"were {', '.join(str(c) for c in classes)}. Use the same target columns, in the same order, for every file."
        )
    _check_text_features(feature_cols, path, lines)
    if weight_col is not None and weight_col.text.any():
        _weights(weight_col, path, lines)  # raises the text error

    string_labels = task == "classification" and target_cols[0].text.any()
    used: list[tuple[_Column, np.ndarray, str]] = []
    for col in target_cols:
        used.append((col, (col.empty | col.nonfinite) if string_labels else col.missing, "target"))
    used += [(col, col.missing, "feature") for col in feature_cols]
    if weight_col is not None:
        used.append((weight_col, weight_col.missing, "weight"))
    _check_missing(used, rows, path, lines)
    _check_float32(feature_cols, "feature", path, lines)
    if task == "regression":
        _check_float32(target_cols, "target", path, lines)
    w = None if weight_col is None else _weights(weight_col, path, lines)

    x = np.stack([c.values for c in feature_cols], axis=1).astype(np.float32)
    if task == "classification":
        y, class_names = _class_indices(target_cols[0], classes, path, lines)
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


def _field_count(
    path: Path, line: int, row: list[str], header: list[str], header_line: int, delimiter: str
) -> AnnkitError:
    got, want = len(row), len(header)
    shown = "\\t" if delimiter == "\t" else delimiter
    if any("\n" in f or "\r" in f for f in row):
        hint = (
            f' A field of that row runs over several lines: a quote (") opened on line {line} is probably never closed.'
        )
    elif got == want + 1 and not row[-1].strip():
        hint = f" The line ends with an extra {_q(shown)}: remove it."
    elif got > want:
        hint = (
            f' A value that contains {_q(shown)} must be quoted ("1{shown}5"); if the file separates its fields '
            f"with another character, set dataset.delimiter to it."
        )
    else:
        hint = f" A missing value is an empty field between delimiters (a{shown}{shown}c), not a left-out one."
    return AnnkitError(
        f"Line {line} of {path} has {_plural(got, 'field')} but the header (line {header_line}) has {want} columns "
        f"({_names(header)}). Every row needs one field per column.{hint}"
    )
