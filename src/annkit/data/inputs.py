"""New inputs for ``annkit predict``: image files (Pillow) and CSV rows, checked against a checkpoint.

Images
    An image file (the suffixes in :data:`IMAGE_SUFFIXES`) or a folder: every image file in it,
    sorted by name (other files and subfolders are skipped, and counted in a note). Each image is
    decoded in full (a truncated or corrupt file is an error naming it) and becomes 8-bit grey:
    mode L as it is; 1, P, PA, RGB, RGBA and LA through Pillow's ``convert("L")`` (RGB: the
    ITU-R 601-2 luma L = 0.299 R + 0.587 G + 0.114 B; alpha is dropped), said in a note. Other
    modes (16-bit or float grey, CMYK, …) are refused. The size must be the checkpoint's input
    size exactly: nothing is resized, cropped or padded behind the user's back.

CSV
    Read by the rows reader training uses (:mod:`annkit.data.csv_rows`: encoding, quoting, blank
    lines, and one field per header column in every row, so a short or long row is refused, never
    shifted), with the delimiter of the checkpoint's run. The first non-blank line is the header;
    every later non-blank line is one row. The named columns must be there (others, e.g. the
    target, are ignored) and hold finite numbers.

Every problem is an :class:`~annkit.errors.AnnkitError` paragraph naming the file (and line,
column, value), what is valid and what to do.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from annkit.data.csv_rows import checked_rows, csv_rows
from annkit.errors import AnnkitError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".pnm")
TABLE_SUFFIXES = (".csv", ".tsv", ".txt")
CONVERTED = {  # Pillow mode → what convert("L") does to it, for the note
    "1": "1-bit black/white → 0/255",
    "P": "palette → grey",
    "PA": "palette + alpha → grey, alpha dropped",
    "RGB": "RGB → grey (0.299 R + 0.587 G + 0.114 B)",
    "RGBA": "RGBA → grey (0.299 R + 0.587 G + 0.114 B), alpha dropped",
    "LA": "grey + alpha → grey, alpha dropped",
}
_LISTED = 5  # file names shown in a message before "…"


def _listing(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_LISTED])
    return shown + (f", … ({len(names)} in all)" if len(names) > _LISTED else "")


def image_files(path: Path) -> tuple[list[Path], list[str]]:
    """(the image files ``path`` names, notes): the file itself, or every image in a folder by name."""
    suffixes = ", ".join(IMAGE_SUFFIXES)
    if path.is_dir():
        entries = sorted(path.iterdir(), key=lambda p: p.name)
        images = [p for p in entries if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        skipped = [
            p.name + ("/" if p.is_dir() else "") for p in entries if p not in images and not p.name.startswith(".")
        ]
        if not images:
            has = f"It holds: {_listing(skipped)}." if skipped else "It is empty."
            raise AnnkitError(
                f"The folder {path} has no image files, so there is nothing to predict. {has} annkit predict reads "
                f"every file with one of the suffixes {suffixes} in the folder itself (not in subfolders). Put the "
                f"images there, or give input=<image file> or input=<file.csv>."
            )
        notes = (
            [
                f"skipped {len(skipped)} other entr{'ies' if len(skipped) > 1 else 'y'} of the folder: {_listing(skipped)}"
            ]
            if skipped
            else []
        )
        return images, notes
    if not path.is_file():
        raise AnnkitError(
            f"input={path}: there is no such file or folder ({path.resolve()}). Give an image file ({suffixes}), a "
            f"folder of images, or a .csv file; relative paths start in the folder you run annkit from ({Path.cwd()})."
        )
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise AnnkitError(
            f"input={path}: files of type '{path.suffix or '(no suffix)'}' are not supported for this checkpoint, which "
            f"takes images. Give an image file ({suffixes}) or a folder of them; convert other formats first "
            f"(e.g. with Pillow: Image.open(f).save('x.png'))."
        )
    return [path], []


def read_images(files: Sequence[Path], shape: Sequence[int]) -> tuple[np.ndarray, list[str]]:
    """N×H×W uint8 pixels of ``files`` (each H×W = ``shape`` after conversion to grey), and notes."""
    from PIL import Image, UnidentifiedImageError

    height, width = shape
    pixels = np.empty((len(files), height, width), dtype=np.uint8)
    converted: Counter[str] = Counter()
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img.load()  # decode now: a truncated file fails here, with its name
                mode, size = img.mode, img.size
                if mode not in ("L", *CONVERTED):
                    raise AnnkitError(
                        f"{path} is a {size[0]}×{size[1]} image of mode {mode} (e.g. 16-bit or float grey, CMYK), "
                        f"which annkit does not convert. Save it as 8-bit grey (mode L; scale 16-bit values to 0…255 "
                        f"first) or RGB, e.g. Image.fromarray((a / a.max() * 255).astype('uint8')).save(f)."
                    )
                if size != (width, height):
                    raise AnnkitError(
                        f"{path} is {size[0]}×{size[1]} pixels (width×height, mode {mode}), but the checkpoint's model "
                        f"takes {width}×{height} images. annkit does not resize, crop or pad (that would change what "
                        f"the model sees without telling you): resize or crop it to {width}×{height} yourself, e.g. "
                        f"Image.open(f).convert('L').resize(({width}, {height})).save(f)."
                    )
                grey = img if mode == "L" else img.convert("L")
                pixels[i] = np.asarray(grey, dtype=np.uint8)
                if mode != "L":
                    converted[mode] += 1
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
            raise AnnkitError(
                f"{path} cannot be read as an image: {type(err).__name__}: {err}. It may be truncated (a copy cut short), "
                f"corrupt, or not an image despite its suffix. Replace it with a valid image file, or move it out of the "
                f"folder."
            ) from None
    notes = [
        f"{n} image{'s' if n > 1 else ''} converted to 8-bit grey: {CONVERTED[mode]}"
        for mode, n in sorted(converted.items())
    ]
    return pixels, notes


def read_table(path: Path, columns: Sequence[str], delimiter: str = ",") -> np.ndarray:
    """The named columns of a CSV file as an N×C float64 array, in the order of ``columns``."""
    if path.is_dir():
        raise AnnkitError(
            f"input={path} is a folder, but this checkpoint was trained on a table: give a .csv file with the "
            f"columns {', '.join(columns)}."
        )
    if not path.is_file():
        raise AnnkitError(
            f"input={path}: there is no such file ({path.resolve()}). Give a .csv file with the columns "
            f"{', '.join(columns)}; relative paths start in the folder you run annkit from ({Path.cwd()})."
        )
    if path.suffix.lower() not in TABLE_SUFFIXES:
        kind = "an image" if path.suffix.lower() in IMAGE_SUFFIXES else f"a '{path.suffix or '(no suffix)'}' file"
        raise AnnkitError(
            f"input={path} is {kind}, but this checkpoint was trained on a table: it takes a CSV file "
            f"({', '.join(TABLE_SUFFIXES)}) with the columns {', '.join(columns)}, one row per prediction."
        )
    rows_iter = csv_rows(path, delimiter, key="input")
    try:
        first = next(rows_iter, None)
        if first is None:
            raise AnnkitError(
                f"{path} is empty. Give a CSV file with a header row ({delimiter.join(columns)}) and one row per prediction."
            )
        header_line, header = first[0], [c.strip() for c in first[1]]
        _check_columns(path, header, columns, delimiter)
        rows, starts = checked_rows(path, rows_iter, header, header_line, delimiter, key="input")
    finally:
        rows_iter.close()
    if not rows:
        raise AnnkitError(f"{path} has a header but no rows: add one row per prediction under the header.")
    return _numbers(path, header, columns, rows, starts)


def _check_columns(path: Path, header: list[str], columns: Sequence[str], delimiter: str) -> None:
    """Refuse a header that lacks one of the model's columns (other columns are ignored)."""
    missing = [c for c in columns if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and any(d in header[0] for d in ";\t|"):
            hint = f" Its header is one field ({header[0]!r}): is the file separated by something other than {delimiter!r}?"
        raise AnnkitError(
            f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)} that the checkpoint's model "
            f"needs. Its header has: {', '.join(header) or '(nothing)'}.{hint} The model takes the columns "
            f"{', '.join(columns)} (other columns, e.g. the target, are ignored): add or rename them in the file."
        )


def _numbers(
    path: Path, header: list[str], columns: Sequence[str], rows: list[list[str]], starts: list[int]
) -> np.ndarray:
    """The model's columns of ``rows`` as an N×C float64 array, every cell a finite number."""
    where = [header.index(c) for c in columns]
    values = np.empty((len(rows), len(columns)), dtype=np.float64)
    bad: list[str] = []  # the first few bad cells, for the message
    n_bad = 0
    for r, (line, cells) in enumerate(zip(starts, rows)):
        for j, (col, k) in enumerate(zip(columns, where)):
            cell = cells[k].strip()
            try:
                v = float(cell)
            except ValueError:
                v = math.nan
            if math.isfinite(v):
                values[r, j] = v
                continue
            n_bad += 1
            if len(bad) < 3:
                bad.append(f'line {line}, column {col}: "{cell}"' if cell else f"line {line}, column {col}: empty")
    if n_bad:
        raise AnnkitError(
            f"{path} has cells that are not finite numbers in the columns the model takes: {'; '.join(bad)}"
            f"{f' ({n_bad} in all)' if n_bad > len(bad) else ''}. The columns {', '.join(columns)} must hold numbers "
            f"(no text, empty cells, nan or inf): fix or drop those rows and run again."
        )
    return values
