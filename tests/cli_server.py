"""A fork server for the suite's `annkit` runs: the real CLI in its own process, without paying the imports each time.

Each `annkit` process spends most of a short run importing torch (and torch._dynamo, which the first optimizer
pulls in), matplotlib, Hydra and TensorBoard: seconds that dominate a suite of a few hundred CLI runs. This server
imports those third-party libraries once and then forks one child per request. The child is a real process with
its own working directory, environment, argv, stdin/stdout/stderr and exit status; it imports annkit itself
(annkit's modules are never loaded in the server, so nothing annkit computes at import time, like a console's
width, is shared), runs ``annkit.cli.main()`` and exits as the interpreter would (atexit handlers, non-daemon
threads, flushed streams). No torch operation runs in the server, so no thread pool exists when it forks.

What a forked child cannot do is change how the interpreter or those libraries started (PYTHON*, locale, OpenMP
or CUDA variables); tests/conftest.py's ``run_annkit`` starts a fresh interpreter whenever a call sets one of
those, and the tests that check what a command imports, or that send signals, start their own processes.

Protocol (one line of JSON each way): request ``{"argv", "cwd", "env", "stdout", "stderr"}`` (the last two are
file paths); replies ``{"pid": n}`` at once, then ``{"rc": n}`` when the child has exited (-N for signal N).
"""

from __future__ import annotations

import json
import os
import sys

PRELOAD = (
    "torch",
    "torch._dynamo",
    "torch.utils.tensorboard",
    "torchvision",
    "numpy",
    "matplotlib.backends.backend_agg",
    "hydra",
    "hydra.main",
    "omegaconf",
    "rich.console",
    "rich.progress",
    "rich.table",
    "safetensors.torch",
    "PIL.Image",
)


def child(request: dict) -> None:
    """In the forked process: become `annkit <argv…>` run from request["cwd"], then exit with its status."""
    import atexit
    import tempfile
    import threading
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # gettempdir() caches: read TMPDIR again
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(out, fd)
        os.close(out)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the process's stdin until it exits)
    sys.argv = list(request["argv"])
    code = 0
    try:
        from annkit.cli import main

        main()
    except SystemExit as stop:
        if stop.code is None:
            code = 0
        elif isinstance(stop.code, int):
            code = stop.code
        else:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:  # as the interpreter does with an uncaught exception
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # wait for non-daemon threads, as interpreter exit does
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve() -> None:
    for name in PRELOAD:
        __import__(name)
    sys.stdout.write(json.dumps({"ready": True}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()
        _, status = os.waitpid(pid, 0)
        sys.stdout.write(json.dumps({"rc": os.waitstatus_to_exitcode(status)}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
