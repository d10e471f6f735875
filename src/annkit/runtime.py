"""Where and how a run executes: device, seeds, determinism, precision, random states, stop signals."""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from annkit.cpu import CpuLoad, auto_threads, cores
from annkit.errors import AnnkitError
from annkit.loop import Hook


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def resolve_device(name: str, key: str = "trainer.device") -> torch.device:
    """``auto`` → cuda if available, else mps, else cpu; an explicit device must exist (errors name ``key``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise AnnkitError(
                f"{key}={name} asks for a CUDA GPU, but torch {torch.__version__} sees none "
                f"(no NVIDIA driver, or a CPU-only torch build). Use {key}=auto or {key}=cpu."
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise AnnkitError(
                f"{key}={name}: only {torch.cuda.device_count()} CUDA device(s) are visible "
                f"(cuda:0 … cuda:{torch.cuda.device_count() - 1})."
            )
    if device.type == "mps" and not _mps_available():
        raise AnnkitError(
            f"{key}={name} asks for Apple's MPS backend, which this machine/torch build lacks. "
            f"Use {key}=auto or {key}=cpu."
        )
    return device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``trainer.precision``: auto → bf16 on CUDA, full fp32 elsewhere."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


class Threads(Hook):
    """torch's CPU threads for one run (``trainer.threads``), and, for ``auto``, their governor.

    A number is used as given. ``auto`` takes ``OMP_NUM_THREADS`` when it is set (the standard way to
    pin every process of a session; capped at the cores ÷ a joblib sweep's jobs), else the rule of
    :func:`annkit.cpu.auto_threads`: first the cores ÷ jobs; then, once the data is loaded
    (:meth:`settle`), the cores other processes left free while it loaded; then at log points, at most
    every :attr:`EVERY` seconds, again, so that a run started alone gives a core back when another
    starts, and takes it again when that one ends. Every change is announced (``notify``) and kept in
    :attr:`changes`. The thread count changes the rounding of CPU sums: for bit-identical reruns give
    a number (or OMP_NUM_THREADS).
    """

    EVERY = 2.0  # seconds between two looks at the load

    def __init__(self, spec: int | str, jobs: int = 1) -> None:
        self.available, self.jobs = cores(), max(1, jobs)
        share = max(1, self.available // self.jobs)
        pinned = os.environ.get("OMP_NUM_THREADS", "")
        self.governed = spec == "auto" and not pinned.isdigit()
        if spec != "auto":
            n, self.reason = int(spec), "trainer.threads"
        elif pinned.isdigit():
            n, self.reason = (
                max(1, min(int(pinned), share)),
                f"OMP_NUM_THREADS={pinned}" + (f", ÷ {self.jobs} jobs" if self.jobs > 1 else ""),
            )
        else:
            n, self.reason = auto_threads(self.available, self.jobs, None)
        torch.set_num_threads(n)
        self.load = CpuLoad() if self.governed else None
        self.changes: list[dict[str, Any]] = []
        self.notify: Callable[[str], None] | None = None

    @property
    def count(self) -> int:
        return torch.get_num_threads()

    def describe(self) -> str:
        """e.g. '1 thread (auto: others use 1.0 of 2 cores)', for the header."""
        n = self.count
        return f"{n} thread{'s' if n > 1 else ''} ({'auto: ' if self.governed else ''}{self.reason})"

    def settle(self, step: int = 0) -> None:
        """Look at the load since the last look, and set the threads it leaves (``auto`` only)."""
        if not self.governed or self.load is None:
            return
        others, _ = self.load.others()
        n, self.reason = auto_threads(self.available, self.jobs, others)
        if n != self.count:
            before = self.count
            torch.set_num_threads(n)
            if step:  # during training (not the first choice, which the header shows)
                self.changes.append({"step": step, "threads": n, "why": self.reason})
                if self.notify is not None:
                    self.notify(f"threads {before} → {n} at step {step}: {self.reason} (trainer.threads=auto)")

    def on_log(self, *, step: int, epoch: int, lr: float, metrics: dict[str, float]) -> None:
        if self.load is not None and self.load.last is not None and time.monotonic() - self.load.last[2] >= self.EVERY:
            self.settle(step)


def set_threads(spec: int | str, jobs: int = 1) -> int:
    """torch's CPU threads, as :class:`Threads` picks them at the start of a run."""
    return Threads(spec, jobs).count


def parallel_jobs(launcher: Any) -> int:
    """How many jobs a Hydra launcher config runs at once: joblib's ``n_jobs`` (-1 = every core,
    -2 = all but one, as joblib counts), else 1 (the basic launcher runs jobs one after another;
    submitit gives each job its own machine or cores)."""
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")):
        return 1
    n = int(launcher.get("n_jobs") or 1)
    return max(1, n if n > 0 else cores() + 1 + n)


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch (all devices); optionally demand deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS
    # set both ways: the jobs of a sweep share one process
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.benchmark = False


def generator(device: torch.device, seed: int) -> torch.Generator:
    """A dedicated random stream on ``device`` (shuffling, augmentation), independent of dropout's."""
    return torch.Generator(device=device).manual_seed(seed)


def rng_state(generators: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """Every random stream a run draws from: Python, NumPy, torch's CPU and CUDA default generators
    and the given ``torch.Generator`` s (shuffling, augmentation). JSON and tensors (a checkpoint)."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "generators": [g.get_state() for g in generators],
    }


def set_rng_state(state: dict[str, Any], generators: Sequence[torch.Generator] = ()) -> None:
    """Put back what :func:`rng_state` captured, so the next draws are the ones that would have come."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    if len(state["generators"]) != len(generators):
        raise ValueError(f"{len(state['generators'])} saved generator states for {len(generators)} generators")
    for g, saved in zip(generators, state["generators"]):
        g.set_state(saved.cpu())


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM ask the training loop to stop after the current step.

    Inside ``with StopSignals() as stop:``, the first signal only sets a flag (``stop()`` is then
    true) and writes one line to stderr; the loop finishes its step, the task saves and exits with
    128 + the signal's number (130, 143). A second signal stops at once: KeyboardInterrupt for
    SIGINT, SystemExit(143) for SIGTERM, raised wherever Python is — checkpoint writes are atomic,
    so the previous file stays whole. Outside the main thread (where Python allows no handlers)
    it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def __call__(self) -> bool:
        return self.signum is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else ""

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum or 0)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            say(f"\n{signal.Signals(signum).name}: stopping after this step and saving checkpoints/last.safetensors"
                f" (send it again to stop at once)\n")  # fmt: skip
            return
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)


def say(text: str) -> None:
    """One line to stderr from a signal handler: straight to file descriptor 2 (no buffer a handler could re-enter),
    unless sys.stderr is not the process's (a Jupyter kernel's stream, which shows it in the cell)."""
    if sys.stderr is not None and sys.stderr is not sys.__stderr__:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
            return
        except (RuntimeError, OSError, ValueError):  # a re-entered or closed stream: the descriptor still works
            pass
    os.write(2, text.encode())


@contextlib.contextmanager
def restored_process_state() -> Iterator[None]:
    """Around a run inside a longer-lived process (a notebook, a script): put back, also when the run raises, what
    a run changes in the process — the random streams (Python, NumPy, torch's CPU and CUDA ones: a run seeds them),
    torch's deterministic-algorithms flag (and CUBLAS_WORKSPACE_CONFIG) and cuDNN's benchmark flag, its thread count, the SIGINT and SIGTERM
    handlers and the root logger's handlers and level. During the run annkit's log records go nowhere unless the
    process configured logging (the console shows the warnings already; without this Python's last-resort handler
    would print each one a second time)."""
    quiet = logging.NullHandler()
    logging.getLogger("annkit").addHandler(quiet)
    streams = rng_state()
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.backends.cudnn.benchmark)  # fmt: skip
    threads, cublas = torch.get_num_threads(), os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    root = logging.getLogger()
    log_handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        set_rng_state(streams)
        torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
        torch.backends.cudnn.benchmark = flags[2]
        torch.set_num_threads(threads)
        for sig, handler in handlers.items():
            # None: a handler not installed from Python, which Python cannot put back; handlers: main thread only
            if handler is not None and threading.current_thread() is threading.main_thread():
                signal.signal(sig, handler)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)  # trainer.deterministic sets it for cuBLAS
        for handler in [h for h in root.handlers if h not in log_handlers]:
            root.removeHandler(handler)
        root.setLevel(level)
        logging.getLogger("annkit").removeHandler(quiet)
