"""TensorBoard on a real two-run sweep, over HTTP: started by `annkit board` and by `tensorboard`
itself. The curves and the hparams table it serves must hold exactly the numbers of each run's
metrics.json; `annkit board` must bind 127.0.0.1 only, stop cleanly on Ctrl-C, write nothing, and
refuse another host, a missing logdir and a busy port with one paragraph."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from tests.conftest import OFFLINE_ENV, annkit_command, assert_user_error, run_annkit

# What annkit writes to TensorBoard (src/annkit/dashboard.py's tag scheme), in one place: the tag's
# values must equal metrics.json's history[epoch - 1][HISTORY_LOSS].
LOSS_TAG = "loss/train"
HISTORY_LOSS = "train/loss"
HPARAM = "model.activation"  # swept by configs/experiment/spiral_activations.yaml
FINAL_METRIC = "final/test_accuracy"  # an hparams metric; = metrics.json test.accuracy
FINAL_KEY = ("test", "accuracy")
EPOCHS = 3
JOBS = ("0", "1")
RUNS = {f"{job}/tb": job for job in JOBS}  # TensorBoard's run name (relative to the logdir) → job dir
STARTUP_S = 60  # the most a server may take to serve both runs (a bound, not a wait: polled every 0.1 s)

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 is never proxied


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict:
    """`annkit train -m experiment=spiral_activations`, shrunk: two 3-epoch jobs, relu (0) and tanh (1)."""
    root = tmp_path_factory.mktemp("board")
    folder = root / "sweep"
    proc = run_annkit(
        "train",
        "-m",
        "experiment=spiral_activations",
        f"trainer.epochs={EPOCHS}",
        "dataset.n=200",
        f"hydra.sweep.dir={folder}",
        cwd=root,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    jobs = {}
    for job in JOBS:
        metrics = json.loads((folder / job / "metrics.json").read_text())
        activation = OmegaConf.load(folder / job / ".hydra" / "config.yaml").model.activation
        jobs[job] = {"metrics": metrics, "activation": activation}
    assert sorted(j["activation"] for j in jobs.values()) == ["relu", "tanh"]
    return {"dir": folder, "jobs": jobs}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    # Offline as every test here; loopback is exempt from the dead proxy, so that TensorBoard's
    # own gRPC channel to its data server (127.0.0.1) is not sent to it.
    return {
        **os.environ,
        **OFFLINE_ENV,
        "COLUMNS": "200",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@contextlib.contextmanager
def serving(command: list[str], logs: Path, cwd: Path) -> Iterator[subprocess.Popen]:
    """The server as a subprocess, its output in files (a full pipe could block it); always stopped."""
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "stdout", "w") as out, open(logs / "stderr", "w") as err:
        proc = subprocess.Popen(command, cwd=cwd, env=server_env(), stdout=out, stderr=err, text=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def output(logs: Path) -> str:
    return (logs / "stdout").read_text() + (logs / "stderr").read_text()


def get(url: str, timeout: float = 10) -> object:
    with NO_PROXY.open(url, timeout=timeout) as response:
        return json.load(response)


def post(url: str, body: dict) -> object:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    with NO_PROXY.open(request, timeout=10) as response:
        return json.load(response)


def still_serving(proc: subprocess.Popen, logs: Path, what: str) -> None:
    """Wait up to 0.1 s for the server to exit (the poll interval of a bounded wait); fail if it did."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=0.1)
    assert proc.poll() is None, f"{what} exited ({proc.returncode}):\n{output(logs)}"


def wait_for_runs(base: str, proc: subprocess.Popen, logs: Path) -> dict:
    """Poll /data/plugin/scalars/tags until both runs are loaded up to their last scalar (final/*,
    written last): TensorBoard reads event files in a background thread after it starts serving."""
    deadline = time.monotonic() + STARTUP_S
    tags: object = None
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # not listening yet, reset, timed out (URLError is one too)
            tags = get(base + "data/plugin/scalars/tags", timeout=2)
            if isinstance(tags, dict) and all(FINAL_METRIC in tags.get(run, {}) for run in RUNS):
                return tags
        still_serving(proc, logs, "the server")
    raise AssertionError(f"after {STARTUP_S} s {base} served tags {tags!r}, not both runs:\n{output(logs)}")


def wait_for_url(proc: subprocess.Popen, logs: Path) -> str:
    """The URL `annkit board` prints once it serves (with port=0 the only way to know the port)."""
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        found = re.search(r"http://127\.0\.0\.1:\d+/", (logs / "stdout").read_text())
        if found:
            return found.group(0)
        still_serving(proc, logs, "annkit board")
    raise AssertionError(f"annkit board printed no URL within {STARTUP_S} s:\n{output(logs)}")


def listeners(port: int) -> list[str]:
    """The local addresses listening on ``port`` (Linux: /proc/net/tcp and tcp6, state 0A = LISTEN)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.append(address)
    return found


def assert_loopback_only(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    # bound to 127.0.0.1 (0100007F, little-endian hex), not 0.0.0.0 (00000000) or :: — nothing else listens
    assert listeners(port) == ["0100007F"], listeners(port)


def check_dashboard(base: str, tags: dict, sweep: dict) -> None:
    """What TensorBoard serves equals what each job wrote to its metrics.json."""
    assert set(tags) == set(RUNS)
    loss_tag = LOSS_TAG

    # Scalars: GET /data/plugin/scalars/scalars?run=<run>&tag=<tag> → [[wall_time, step, value], ...]
    for run, job in RUNS.items():
        assert loss_tag in tags[run]
        query = urllib.parse.urlencode({"run": run, "tag": loss_tag})
        points = get(f"{base}data/plugin/scalars/scalars?{query}")
        history = sweep["jobs"][job]["metrics"]["history"]
        assert [step for _, step, _ in points] == list(range(1, EPOCHS + 1))  # x = epoch
        # event files hold float32: equal to metrics.json's float64 to float32's precision
        assert [value for _, _, value in points] == pytest.approx([row[HISTORY_LOSS] for row in history], rel=1e-6)

    # HParams: POST bodies are the JSON form of tensorboard/plugins/hparams api.proto requests
    experiment = post(base + "data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert HPARAM in infos, sorted(infos)
    assert infos[HPARAM]["type"] == "DATA_TYPE_STRING"  # no domain (each run writes its own summary): values below
    assert infos[HPARAM].get("differs") is True  # the swept key: the HParams page lists it first
    assert {"group": "", "tag": FINAL_METRIC} in [m["name"] for m in experiment["metricInfos"]]

    groups = post(
        base + "data/plugin/hparams/session_groups",
        {
            "experimentName": "",
            "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
            "colParams": [
                {"hparam": HPARAM, "includeInResult": True},
                {"metric": {"group": "", "tag": FINAL_METRIC}, "includeInResult": True},
            ],
            "startIndex": 0,
            "sliceSize": 100,
            "includeMetrics": True,
        },
    )
    assert groups["totalSize"] == 2 and len(groups["sessionGroups"]) == 2
    assert sorted(g["hparams"][HPARAM] for g in groups["sessionGroups"]) == ["relu", "tanh"]
    for group in groups["sessionGroups"]:
        (session,) = group["sessions"]
        job = RUNS[session["name"]]
        assert session["status"] == "STATUS_SUCCESS"
        assert group["hparams"][HPARAM] == sweep["jobs"][job]["activation"]
        metrics = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        expected = sweep["jobs"][job]["metrics"][FINAL_KEY[0]][FINAL_KEY[1]]
        assert metrics[FINAL_METRIC] == pytest.approx(expected, rel=1e-6, abs=1e-7)


def tensorboard_command() -> list[str]:
    script = Path(sys.executable).with_name("tensorboard")  # the venv's console script
    return [str(script)] if script.exists() else [sys.executable, "-m", "tensorboard.main"]


def test_tensorboard_itself_serves_the_sweep(sweep, tmp_path):
    # tensorboard's default loader: its Rust data server where installed (annkit board uses the Python one)
    port = free_port()
    logs = tmp_path / "logs"
    command = [*tensorboard_command(), "--logdir", str(sweep["dir"]), "--host", "127.0.0.1", "--port", str(port)]
    with serving(command, logs, cwd=tmp_path) as proc:
        base = f"http://127.0.0.1:{port}/"
        check_dashboard(base, wait_for_runs(base, proc, logs), sweep)
        assert_loopback_only(port)


def test_annkit_board_serves_the_sweep_on_loopback_and_stops_on_ctrl_c(sweep, tmp_path):
    port = free_port()
    cwd, logs = tmp_path / "cwd", tmp_path / "logs"
    cwd.mkdir()
    with serving([*annkit_command(), "board", f"logdir={sweep['dir']}", f"port={port}"], logs, cwd=cwd) as proc:
        base = f"http://127.0.0.1:{port}/"
        assert wait_for_url(proc, logs) == base  # the printed URL: loopback, the port asked for
        check_dashboard(base, wait_for_runs(base, proc, logs), sweep)
        assert_loopback_only(port)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=20) == 0, output(logs)
    out = output(logs)
    assert "Traceback" not in out and "annkit board stopped." in out
    assert f"logdir {sweep['dir']}" in " ".join(out.split())
    assert list(cwd.iterdir()) == []  # no run dir, no .hydra, no log file


def test_annkit_board_port_0_serves_on_a_free_port_and_says_which(sweep, tmp_path):
    cwd, logs = tmp_path / "cwd", tmp_path / "logs"
    cwd.mkdir()
    with serving([*annkit_command(), "board", f"logdir={sweep['dir']}", "port=0"], logs, cwd=cwd) as proc:
        base = wait_for_url(proc, logs)
        port = int(base.rsplit(":", 1)[1].rstrip("/"))
        assert port != 0
        assert set(wait_for_runs(base, proc, logs)) == set(RUNS)
        proc.terminate()  # SIGTERM stops it as Ctrl-C does
        assert proc.wait(timeout=20) == 0, output(logs)
    assert "Traceback" not in output(logs)


def test_annkit_board_refuses_a_busy_port(sweep, tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_annkit("board", f"logdir={sweep['dir']}", f"port={port}", cwd=tmp_path, timeout=60)
    assert_user_error(proc, f"port={port} is already in use", "port=0 for any free one")
    assert proc.returncode == 2


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_annkit_board_refuses_a_host_other_than_loopback(host, tmp_path):
    (tmp_path / "outputs").mkdir()
    proc = run_annkit("board", f"host={host}", cwd=tmp_path, timeout=60)
    assert_user_error(
        proc,
        f"host={host} would open TensorBoard",
        "Valid hosts: 127.0.0.1 (the default), ::1, localhost",
        "ssh -L 6006:127.0.0.1:6006",
    )
    assert proc.returncode == 2
    assert [p.name for p in tmp_path.iterdir()] == ["outputs"]  # nothing written


def test_annkit_board_needs_an_existing_logdir(tmp_path):
    proc = run_annkit("board", "logdir=nowhere", cwd=tmp_path, timeout=60)
    assert_user_error(
        proc, "logdir=nowhere does not exist", f"({tmp_path / 'nowhere'})", "Runs land in outputs/ after `annkit train`"
    )
    assert proc.returncode == 2
    assert list(tmp_path.iterdir()) == []
    proc = run_annkit("board", cwd=tmp_path, timeout=60)  # the default, outputs/, before any training
    assert_user_error(proc, "logdir=outputs does not exist")


def test_annkit_board_help_and_listing(tmp_path):
    proc = run_annkit("board", "--help", cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    usage = "Usage: annkit board [logdir=outputs] [port=6006] [host=127.0.0.1] [reload_interval=5]"
    assert usage in " ".join(proc.stdout.split())  # wrapped at the terminal's width
    assert "ssh -L 6006:127.0.0.1:6006" in proc.stdout and re.search(r"^\s*port\b.*\b6006\b", proc.stdout, re.M)
    listing = run_annkit("--help", cwd=tmp_path)
    assert "board" in listing.stdout and "annkit board" in listing.stdout
    assert list(tmp_path.iterdir()) == []


def test_board_settings_are_checked_by_the_validator_every_task_uses(tmp_path):
    """annkit board has no validator of its own: a bad port or an unknown key reads as in annkit train."""
    assert_user_error(
        run_annkit("board", "port=70000", cwd=tmp_path),
        "port=70000 is not valid: expected a whole number from 0 to 65535",
    )
    assert_user_error(
        run_annkit("board", "+prot=1", cwd=tmp_path),
        "Unknown config key prot.",
        "Did you mean",
        "port",
        "`annkit board --cfg job`",
    )
    train = run_annkit("train", "trainer.epochs=-1", cwd=tmp_path)
    assert_user_error(
        train, "trainer.epochs=-1 is not valid: expected a whole number ≥ 0", "Set it with trainer.epochs=<value>"
    )
