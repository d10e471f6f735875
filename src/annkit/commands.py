"""Commands annkit prints for the user to paste: quoted for Hydra's override grammar, then for the shell.

Hydra reads ``key=value``; a value with spaces, letters outside ASCII, ``=``, ``,``, quotes or
brackets must be a quoted string in its grammar (``resume="my run/ü"``), and the whole word must
then survive the shell (``'resume="my run/ü"'``). :func:`override` does the first, :func:`command`
the second, so every command annkit prints is one that works when pasted. Imports nothing heavy.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import Path

# characters Hydra's lexer takes in an unquoted value that a path may hold (and nothing it would read as a
# number, a bool, null, a list, a sweep or an interpolation: those are checked below)
_BARE = re.compile(r"[A-Za-z0-9_./:@%+\-]+")
_NOT_TEXT = re.compile(r"(?i)[-+]?(\d[\d_]*(\.\d*)?(e[-+]?\d+)?|\.\d+(e[-+]?\d+)?|inf|nan)|true|false|null")


def hydra_value(value: object) -> str:
    """``value`` (a string, number, bool, None or list of them) as the text of a Hydra override value
    that parses back to exactly ``value``; a string is quoted only when it has to be."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    text = str(value)
    if _BARE.fullmatch(text) and not _NOT_TEXT.fullmatch(text):
        return text
    quote = '"' if '"' not in text or "'" in text else "'"
    body = text.replace("${", "\\${")  # a literal ${ is not an interpolation
    # Hydra's quoted strings: a quote inside is escaped, and so are the backslashes right before a quote or the end
    body = re.sub(r"(\\*)(" + quote + "|$)", lambda m: m.group(1) * 2 + ("\\" + m.group(2) if m.group(2) else ""), body)
    return f"{quote}{body}{quote}"


def override(key: str, value: object) -> str:
    """``key=value`` as Hydra reads it, e.g. ``override("resume", "a b/ü")`` → ``resume="a b/ü"``."""
    return f"{key}={hydra_value(value)}"


def command(task: str, *words: str) -> str:
    """``annkit <task> <words…>`` for the shell: each word quoted as the shell needs (``shlex.join``).
    ``words`` are overrides as Hydra reads them (see :func:`override`)."""
    return shlex.join(["annkit", task, *words])


def shown(path: Path | str) -> str:
    """``path`` relative to the working directory when it lies below it (shorter to read and copy)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def join(words: Sequence[str]) -> str:
    """Any argument list as one shell line."""
    return shlex.join(list(words))
