"""User-facing errors: one paragraph saying what was wrong, what is valid and what to do.

Code anywhere below the tasks raises :class:`AnnkitError` for bad input. The task entry points
wrap their body in :func:`user_errors`, which prints the paragraph with rich and exits with
status 2 and no traceback — unless ``HYDRA_FULL_ERROR=1`` is set, in which case the exception
propagates with its full traceback, as Hydra's own errors do.
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import sys
from collections.abc import Iterable, Iterator

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class AnnkitError(Exception):
    """Bad input from the user (config, files, environment), explained in one paragraph."""


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """' Did you mean "x"?' for the closest valid name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""


def unknown_name(what: str, value: object, valid: Iterable[str], how: str) -> AnnkitError:
    """The error for a short name that is not in its lookup table (activation, loss, …)."""
    names = sorted(str(v) for v in valid)
    return AnnkitError(
        f'Unknown {what} "{value}".{did_you_mean(str(value), names)} '
        f"Valid names: {', '.join(names)}. {how}"
    )


def print_error(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, soft_wrap=False).print(f"[bold red]error:[/] {escape(message)}")


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn an AnnkitError into a printed paragraph and exit status 2, and Ctrl-C into a one-line
    note and exit status 130 — no traceback either way (unless HYDRA_FULL_ERROR=1)."""
    try:
        yield
    except AnnkitError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        logging.getLogger("annkit").error("%s", err)
        print_error(str(err))
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        note = "interrupted: the run stopped; checkpoints/last.safetensors in its run dir holds the last finished epoch, if one finished."
        logging.getLogger("annkit").warning(note)
        print_error(note)
        sys.exit(EXIT_INTERRUPTED)
