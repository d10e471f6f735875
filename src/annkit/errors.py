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
from collections.abc import Callable, Iterable, Iterator

EXIT_USAGE = 2
EXIT_DIVERGED = 3  # the training loss became NaN/inf (trainer.nan_policy=stop)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


class AnnkitError(Exception):
    """Bad input from the user (config, files, environment), explained in one paragraph.

    In IPython and Jupyter the paragraph is shown without a traceback, as the CLI shows it (``_render_traceback_``,
    IPython's hook); with HYDRA_FULL_ERROR=1 set, the full traceback."""

    exit_code = EXIT_USAGE
    label = "error"
    command: str | None = None  # a command to run next, shown on a line of its own

    @property
    def _render_traceback_(self) -> Callable[[], list[str]]:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise AttributeError("_render_traceback_")  # IPython then shows the traceback
        color = "31" if self.label == "error" else "33"
        lines = [f"\x1b[1;{color}m{type(self).__name__}:\x1b[0m {self}"]
        return lambda: lines + ([f"  \x1b[36m{self.command}\x1b[0m"] if self.command else [])


class TrainingDiverged(AnnkitError):
    """The loss stopped being finite: what happened, what was kept, what to try."""

    exit_code = EXIT_DIVERGED


class Interrupted(AnnkitError, KeyboardInterrupt):
    """A run stopped by a signal after saving its state: where it stopped and how to go on. From Python it is also a
    KeyboardInterrupt, as Ctrl-C is."""

    label = "interrupted"

    def __init__(self, message: str, exit_code: int, command: str | None = None) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.command = command  # printed on a line of its own, unwrapped, so that it copies whole


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """' Did you mean "x"?' for the closest valid name, or '' when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(v) for v in valid], n=1, cutoff=0.6)
    return f' Did you mean "{close[0]}"?' if close else ""


def unknown_name(what: str, value: object, valid: Iterable[str], how: str) -> AnnkitError:
    """The error for a short name that is not in its lookup table (activation, loss, …)."""
    names = sorted(str(v) for v in valid)
    return AnnkitError(
        f'Unknown {what} "{value}".{did_you_mean(str(value), names)} Valid names: {", ".join(names)}. {how}'
    )


def print_error(message: str, label: str = "error") -> None:
    from rich.console import Console
    from rich.markup import escape

    style = "bold red" if label == "error" else "bold yellow"
    # soft wrap: the terminal folds the paragraph, and no newline lands inside a path or a command that is copied
    Console(stderr=True, soft_wrap=True).print(f"[{style}]{label}:[/] {escape(message)}")


@contextlib.contextmanager
def user_errors(interrupted: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn an AnnkitError into a printed paragraph and its exit status (2 for bad input, 3 for a
    diverged run, 130/143 for a run stopped by a signal), and a bare Ctrl-C into a one-line note
    (``interrupted()``: what was kept and how to go on) and exit status 130 — no traceback either
    way (unless HYDRA_FULL_ERROR=1)."""
    try:
        yield
    except AnnkitError as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1" and not isinstance(err, Interrupted):
            raise
        log = logging.getLogger("annkit")
        if log.hasHandlers():  # the run's log file (not before Hydra has set logging up)
            log.error("%s", err)
        print_error(str(err), err.label)
        command = getattr(err, "command", None)
        if command:
            from rich.console import Console
            from rich.text import Text

            Console(stderr=True).print(Text(f"  {command}", style="cyan"), soft_wrap=True)
            log.info("go on with: %s", command)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        note = interrupted() if interrupted is not None else "stopped at once."
        logging.getLogger("annkit").warning(note)
        print_error(note, "interrupted")
        sys.exit(EXIT_INTERRUPTED)
