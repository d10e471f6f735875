"""``annkit board``: TensorBoard on annkit's runs — validate → start the server on loopback → serve until Ctrl-C.

``board(cfg)`` is the only function that reads the config. It starts TensorBoard through its own
Python API, :class:`tensorboard.program.TensorBoard`: ``configure(logdir=…, host=…, port=…)``, then
``launch()``, which binds the port, serves from a background thread and returns the URL (with the
real port when ``port=0`` asked the OS for a free one). The main thread then waits for Ctrl-C (or
SIGTERM) and exits with status 0, no traceback.

The server binds a loopback address only (127.0.0.1 by default, ::1, localhost): TensorBoard shows
configs, file paths and text summaries to anyone who can reach it, and has no login. Another host
is refused with a pointer to an SSH tunnel. TensorBoard's ``--bind_all`` is never set.

Writes nothing: no run dir (``WRITES_RUN_DIR = False`` tells cli.py to skip its output-folder
check), no ``.hydra`` folder and no log file (configs/board.yaml), and unlike ``tensorboard.main``
no TensorBoardInfo file (``launch`` does not register one).
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.markup import escape

from annkit.errors import AnnkitError, user_errors
from annkit.schema import BOARD_SCHEMA, resolved, walk

WRITES_RUN_DIR = False  # cli.py: no output folder to check
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or the name localhost (an IPv6 address may come in brackets)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def tunnel(port: int) -> str:
    port = port or 6006
    return f"ssh -L {port}:127.0.0.1:{port} <this host>"


def checked(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain values, every key checked by the validator every task uses (:func:`annkit.schema.walk`,
    torch-free). Raises AnnkitError."""
    values = resolved(cfg)
    walk(values, BOARD_SCHEMA, "", task="board")
    return values


def check_host(host: str, port: int) -> None:
    if is_loopback(host):
        return
    raise AnnkitError(
        f"annkit board serves on this machine only, and host={host} would open TensorBoard (every run's "
        f"config, paths and curves, with no login) to other machines. Valid hosts: 127.0.0.1 (the default), "
        f"::1, localhost. To look at it from another machine, keep the default and tunnel the port: run "
        f"`{tunnel(port)}` on that machine, then open http://127.0.0.1:{port or 6006}/ there."
    )


def check_logdir(logdir: str) -> Path:
    path = Path(logdir).expanduser()
    if path.is_dir():
        return path
    what = "is a file, not a folder" if path.exists() else "does not exist"
    raise AnnkitError(
        f"logdir={logdir} {what} ({path.absolute()}), so TensorBoard has no runs to show. Runs land in "
        f"outputs/ after `annkit train` (outputs/train/runs/<time>/, sweeps in outputs/train/multiruns/<time>/): "
        f"run annkit board from the folder you trained in, or point it at a run or sweep folder, e.g. "
        f"annkit board logdir=outputs/train/multiruns/<time>."
    )


def start(logdir: Path, host: str, port: int, reload_interval: float) -> str:
    """Bind the port and serve from a background thread; the URL. Raises AnnkitError."""
    from tensorboard import program

    tb = program.TensorBoard()
    # load_fast="false": the Python loader, in this process. TensorBoard's "auto" would start its Rust data
    # server (a second process, worth it for thousands of runs) and print a note about a flag annkit does not take.
    tb.configure(
        logdir=str(logdir), host=host, port=port, reload_interval=reload_interval, bind_all=False, load_fast="false"
    )
    try:
        return tb.launch()
    except program.TensorBoardPortInUseError:
        raise AnnkitError(
            f"port={port} is already in use on this machine (another TensorBoard, or an earlier annkit board, "
            f"may be serving there: its URL still works). Pick another port, e.g. port={min(port + 1, 65535)}, "
            f"or port=0 for any free one (the URL printed says which)."
        ) from None
    except program.TensorBoardServerException as err:  # no permission for the port, no such address, …
        raise AnnkitError(
            f"TensorBoard could not serve on host={host} port={port}: {err.msg}. Pick another port (port=6006, "
            f"or port=0 for any free one), or the default host=127.0.0.1."
        ) from None


def board(cfg: DictConfig) -> None:
    resolved = checked(cfg)
    host, port = resolved["host"], int(resolved["port"])
    check_host(host, port)
    logdir = check_logdir(resolved["logdir"])
    console = Console(soft_wrap=True)  # the URL stays on one line, whole, in any width
    # Ctrl-C (unless the shell started us ignoring it) and `kill` stop the server. On POSIX they are
    # blocked before TensorBoard starts its threads, which inherit the mask, so the kernel hands them
    # to sigwait here rather than to a server thread (where Python would not act on them until
    # this thread ran again).
    stop = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    posix = hasattr(signal, "pthread_sigmask")
    if posix:
        signal.pthread_sigmask(signal.SIG_BLOCK, stop)
    try:
        url = start(logdir, host, port, float(resolved["reload_interval"]))
        console.print(
            f"[bold]annkit board[/] TensorBoard at [bold cyan]{escape(url)}[/] · logdir {escape(str(logdir))} · "
            f"Ctrl-C stops it"
        )
        sys.stdout.flush()
        if posix:
            signal.sigwait(stop)
        else:  # Windows: Ctrl-C interrupts a sleep of the main thread
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    console.print("[dim]annkit board stopped.[/]")


def prepare_argv(args: list[str]) -> list[str]:
    if any(a in ("-m", "--multirun") for a in args):
        raise AnnkitError(
            "annkit board serves one TensorBoard and sweeps nothing, so -m/--multirun does not apply. "
            "Drop it; to compare a sweep's runs, point board at the sweep: annkit board logdir=outputs/train/multiruns/<time>."
        )
    return args


def run(cfg: DictConfig) -> None:
    with user_errors():
        board(cfg)
