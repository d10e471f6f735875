"""Shared fixtures: the real Fashion-MNIST files, synthetic IDX datasets, and `annkit` as a subprocess."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest

from annkit.data.idx import write_idx
from annkit.data.sources import FILES

# Every annkit process of the suite (in-process runs and subprocesses, which inherit it) uses a fixed thread count:
# the cores ÷ pytest-xdist's workers, so that the workers' runs do not fight over the cores (issue 15's collapse),
# and tests that compare two runs bit for bit get the same count in both. trainer.threads=auto takes
# OMP_NUM_THREADS when it is set (tests/test_first_minute.py tests the governor itself, with it unset).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

REAL_FASHION = Path(os.environ.get("ANNKIT_FASHION_DIR", "/usr/share/datasets/fashion-mnist"))
# A dead proxy: any download attempt fails at once instead of reaching (or waiting for) the network.
OFFLINE_ENV = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
}


@pytest.fixture(scope="session")
def fashion_dir() -> Path:
    """The real Fashion-MNIST IDX files (Debian's dataset-fashion-mnist; .ci/run installs it)."""
    missing = [b for b in FILES.values() if not (REAL_FASHION / f"{b}.gz").exists() and not (REAL_FASHION / b).exists()]
    assert not missing, (
        f"The real Fashion-MNIST files are missing from {REAL_FASHION} ({', '.join(missing)}). "
        "Install them with `apt-get install dataset-fashion-mnist` (as .ci/run does), or point "
        "ANNKIT_FASHION_DIR at a folder that holds the four IDX files."
    )
    return REAL_FASHION


def make_idx_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True, seed: int = 0) -> Path:
    """Four IDX files of a learnable 10-class 28×28 task: class c lights up row band c, plus noise."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c : 4 + 2 * c, 4:24] = 200 + rng.integers(0, 55)
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", labels)
    return folder


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> Path:
    return make_idx_dataset(tmp_path / "synthetic")


def annkit_command() -> list[str]:
    """The installed console script next to this interpreter (as a user runs it)."""
    script = Path(sys.executable).with_name("annkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "annkit"]


# every output of run_annkit in this session, for tests/test_zz_printed_commands.py (each command annkit prints must
# paste): kept in this process and, for the check at the session's end over all xdist workers, in one folder per run
OUTPUTS: list[str] = []
# (named by the first process that imports this file, the xdist controller; its workers inherit the name)
os.environ.setdefault("ANNKIT_TEST_OUTPUTS", str(Path(tempfile.gettempdir()) / f"annkit-test-outputs-{os.getpid()}"))
OUTPUTS_DIR = Path(os.environ["ANNKIT_TEST_OUTPUTS"])


# what a forked child cannot change: how the interpreter, the locale and the preloaded libraries started
_STARTUP_VARIABLES = ("PYTHON", "LC_", "LANG", "OMP_", "MKL_", "KMP_", "CUDA", "TORCH", "PYTORCH", "MPL", "MATPLOTLIB")


class CliServer:
    """tests/cli_server.py in this pytest process: `annkit` runs forked from a process that imported torch & co once."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def start(self) -> subprocess.Popen:
        if self.proc is None or self.proc.poll() is not None:
            env = {**os.environ, **OFFLINE_ENV}
            env.pop("HYDRA_FULL_ERROR", None)
            self.proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("cli_server.py"))],
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
            assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        return self.proc

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
        server = self.start()
        with tempfile.TemporaryDirectory() as scratch:
            out, err = Path(scratch, "stdout"), Path(scratch, "stderr")
            request = {"argv": argv, "cwd": str(cwd), "env": env, "stdout": str(out), "stderr": str(err)}
            server.stdin.write(json.dumps(request) + "\n")
            server.stdin.flush()
            pid = json.loads(server.stdout.readline())["pid"]
            killer = threading.Timer(timeout, os.kill, (pid, signal.SIGKILL))
            killer.start()
            rc = json.loads(server.stdout.readline())["rc"]
            killer.cancel()
            if killer.finished.is_set() and rc == -signal.SIGKILL:
                raise subprocess.TimeoutExpired(argv, timeout, out.read_text(), err.read_text())
            return subprocess.CompletedProcess(argv, rc, out.read_text(), err.read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


CLI_SERVER = CliServer()
atexit.register(CLI_SERVER.stop)


def run_annkit(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 300, fresh: bool = False
) -> subprocess.CompletedProcess:
    """`annkit <args>` in its own process, as a user runs it. Forked from tests/cli_server.py (imports done once)
    unless ``fresh`` or ``env`` sets a variable that only a fresh interpreter reads (_STARTUP_VARIABLES)."""
    inherited = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    full_env = {**inherited, **OFFLINE_ENV, "COLUMNS": "200", **(env or {})}
    fresh = fresh or any(k.startswith(_STARTUP_VARIABLES) for k in (env or {}))
    if fresh:
        proc = subprocess.run(
            [*annkit_command(), *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
        )
    else:
        proc = CLI_SERVER.run([str(Path(sys.executable).with_name("annkit")), *args], cwd, full_env, timeout)
    OUTPUTS.append(proc.stdout + proc.stderr)
    OUTPUTS_DIR.mkdir(exist_ok=True)
    (OUTPUTS_DIR / f"{os.getpid()}-{len(OUTPUTS)}.txt").write_text(OUTPUTS[-1])
    return proc


def pytest_sessionfinish(session, exitstatus):
    """After the whole suite (on the xdist controller, or the only process): every command printed by
    any `annkit` subprocess of the session must paste (tests/test_zz_printed_commands.py's rules)."""
    if hasattr(session.config, "workerinput") or not OUTPUTS_DIR.is_dir():
        return
    from tests.test_zz_printed_commands import printed_commands, problems

    outputs = [f.read_text() for f in sorted(OUTPUTS_DIR.iterdir())]
    shutil.rmtree(OUTPUTS_DIR, ignore_errors=True)
    bad = {c: why for out in outputs for c in printed_commands(out) if (why := problems(c)) is not None}
    if bad:
        print("\nprinted commands that do not paste:\n" + "\n".join(f"  {c}\n      {why}" for c, why in bad.items()))
        session.exitstatus = 1


def copy_fashion(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for base in FILES.values():
        for name in (base, f"{base}.gz"):
            if (src / name).exists():
                shutil.copy(src / name, dst / name)
    return dst


def assert_user_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Non-zero exit, one readable message, no traceback."""
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Traceback" not in out, out
    flat = " ".join(out.split())  # rich wraps long lines
    for needle in needles:
        assert needle in flat, f"{needle!r} not in:\n{out}"
    return flat


@pytest.fixture
def precious(tmp_path):
    """An earlier run's results in the working directory: bad input must leave them untouched."""
    old = tmp_path / "outputs" / "train" / "runs" / "earlier"
    old.mkdir(parents=True)
    (old / "metrics.json").write_text('{"test": {"accuracy": 0.9}}')
    yield old
    assert (old / "metrics.json").read_text() == '{"test": {"accuracy": 0.9}}'
