"""The rows of a CSV file, for training (:mod:`annkit.data.csv_table`) and for ``annkit predict``
(:mod:`annkit.data.inputs`) alike: one reader, one set of rules, one-paragraph errors.

The file
    The first non-blank line is the header (column names); every later non-blank line is one
    sample with one field per column. Encoding UTF-8, with or without a byte-order mark. Fields
    are split and unquoted by Python's :mod:`csv` module (``"1,5"`` is one field; spaces after
    a delimiter are skipped, so ``a, "b,c"`` quotes too), then stripped of surrounding
    whitespace. Blank lines are skipped wherever they are (at the end of the file most often);
    a line of delimiters only (``,,,``) is *not* blank, it is a row of empty cells. Line numbers
    in messages are the line a row starts on, as an editor shows it.

``key`` is the config key that names the file (``dataset.path`` for training, ``input`` for
predict): messages say what to set. Training chooses its delimiter (``dataset.delimiter``);
predict reads with the delimiter of the checkpoint's run.

The small text helpers the CSV messages share (:func:`quoted`, :func:`listed`, :func:`plural`,
:func:`override_list`) live here too.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

from annkit.errors import AnnkitError, did_you_mean

__all__ = [
    "TRAIN_KEY",
    "check_delimiter",
    "check_file",
    "checked_rows",
    "csv_columns",
    "csv_rows",
    "field_count_error",
    "listed",
    "override_list",
    "plural",
    "quoted",
    "read_header",
]

TRAIN_KEY = "dataset.path"  # the config key that names a training file
_LIST_LIMIT = 30  # column names listed in a message before "…"


# ---------------------------------------------------------------------------------------- text helpers


def quoted(value: object) -> str:
    """A value in double quotes, as messages quote cells and names."""
    return f'"{value}"'


def listed(names: Sequence[str], limit: int = _LIST_LIMIT) -> str:
    """Comma-separated names, cut after ``limit`` with the total."""
    shown = ", ".join(str(n) for n in names[:limit])
    return shown if len(names) <= limit else f"{shown}, … ({len(names)} in all)"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def override_list(key: str, names: Sequence[str]) -> str:
    """A Hydra override that sets ``key`` to a list of column names, shell-quoted when needed."""
    plain = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
    items = [n if plain.match(n) else json.dumps(n) for n in names]
    override = f"{key}=[{','.join(items)}]"
    return override if all(plain.match(n) for n in names) else f"'{override}'"


# ---------------------------------------------------------------------------------------- the file


def check_delimiter(delimiter: str) -> str:
    """``dataset.delimiter`` as the character to split at (``"\\t"`` and ``"tab"`` are a tab)."""
    if delimiter in ("\\t", "tab"):
        return "\t"
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in '"\r\n':
        raise AnnkitError(
            f'dataset.delimiter must be one character such as "," or ";" (a tab is "\\t"), '
            f"got {delimiter!r}. Set it to the character that separates the fields of the file."
        )
    return delimiter


def check_file(path: Path) -> None:
    """Refuse a training file (``dataset.path`` or a split's file) that is not there or is a folder."""
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


def _not_text(path: Path, key: str) -> AnnkitError:
    """The error for a file that is not UTF-8 text, naming the line of the first bad byte."""
    raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":
        return AnnkitError(
            f"{path} is a zip archive (an Excel .xlsx workbook is one), not a CSV text file. "
            f'Export the sheet as CSV (in Excel: File → Save As → "CSV UTF-8"), or unzip it, '
            f"and set {key} to the .csv file."
        )
    if raw[:2] == b"\x1f\x8b":
        return AnnkitError(
            f"{path} is gzip-compressed, not a CSV text file. Decompress it (gunzip {path.name}) "
            f"and set {key} to the .csv file."
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
            f"and point {key} at the converted file."
        )
    return AnnkitError(f"{path} could not be read as UTF-8 text. Save it as UTF-8 and try again.")


def csv_rows(path: Path, delimiter: str, key: str = TRAIN_KEY) -> Iterator[tuple[int, list[str]]]:
    """(line where the row starts, raw fields) for every non-blank row of the file, header included."""
    try:
        handle = open(path, encoding="utf-8-sig", newline="")  # noqa: SIM115 (closed by the generator)
    except PermissionError:
        raise AnnkitError(
            f"{path} cannot be read: permission denied. Make the file readable (chmod +r) "
            f"or copy it somewhere you can read and set {key} to the copy."
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
            raise _not_text(path, key) from None
        except csv.Error as err:
            raise AnnkitError(
                f"{path} line {reader.line_num} cannot be read as CSV: {err}. Check the quotes on "
                f"that line: a field that holds the delimiter, a quote or a line break must be quoted, "
                f'with quotes inside it doubled ("say ""hi""").'
            ) from None


def read_header(path: Path, rows: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The header's line and stripped names, checked: present, non-empty, unique (training's rule)."""
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
                f"The header (line {line}) of {path} names {quoted(name)} twice (columns {seen[name]} and {i}). "
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
    check_file(path)
    rows = csv_rows(path, check_delimiter(delimiter))
    try:
        return read_header(path, rows)[1]
    finally:
        rows.close()


# ---------------------------------------------------------------------------------------- the rows


def checked_rows(
    path: Path,
    rows: Iterator[tuple[int, list[str]]],
    header: list[str],
    header_line: int,
    delimiter: str,
    key: str = TRAIN_KEY,
) -> tuple[list[list[str]], list[int]]:
    """(the raw fields of every remaining row of ``rows``, the line each starts on), each row checked
    to have one field per column of ``header``."""
    out: list[list[str]] = []
    starts: list[int] = []
    width = len(header)
    for line, row in rows:
        if len(row) != width:
            raise field_count_error(path, line, row, header, header_line, delimiter, key)
        out.append(row)
        starts.append(line)
    return out, starts


def field_count_error(
    path: Path, line: int, row: list[str], header: list[str], header_line: int, delimiter: str, key: str = TRAIN_KEY
) -> AnnkitError:
    """The error for a row with more or fewer fields than the header has columns, with the likely cause."""
    got, want = len(row), len(header)
    shown = "\\t" if delimiter == "\t" else delimiter
    if any("\n" in f or "\r" in f for f in row):
        hint = (
            f' A field of that row runs over several lines: a quote (") opened on line {line} is probably never closed.'
        )
    elif got == want + 1 and not row[-1].strip():
        hint = f" The line ends with an extra {quoted(shown)}: remove it."
    elif got > want:
        other = (
            "if the file separates its fields with another character, set dataset.delimiter to it."
            if key == TRAIN_KEY
            else f"the checkpoint's run read fields separated by {quoted(shown)}, so the file given as {key} "
            f"must use that delimiter too."
        )
        hint = f' A value that contains {quoted(shown)} must be quoted ("1{shown}5"); {other}'
    else:
        hint = f" A missing value is an empty field between delimiters (a{shown}{shown}c), not a left-out one."
    return AnnkitError(
        f"Line {line} of {path} has {plural(got, 'field')} but the header (line {header_line}) has {want} columns "
        f"({listed(header)}). Every row needs one field per column.{hint}"
    )
