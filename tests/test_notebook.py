"""annkit in Jupyter (issue 17): examples/quickstart.ipynb executed headless by nbclient in a real ipykernel (its own
asserts check the numbers it computes), and a real kernel interrupted mid-training.

Offline: the notebook reads Fashion-MNIST from /usr/share/datasets/fashion-mnist (the `fashion_dir` fixture
checks it is there), and the proxies of OFFLINE_ENV make any download fail."""

from __future__ import annotations

import json
import os
import queue
import re
from pathlib import Path

import nbformat
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from tests.conftest import OFFLINE_ENV

NOTEBOOK = Path(__file__).parents[1] / "examples" / "quickstart.ipynb"


def texts(cell) -> list[str]:
    """The plain-text form of every output of a cell (rich's HTML outputs carry one too)."""
    return [o.get("text") or o.get("data", {}).get("text/plain", "") for o in cell.outputs]


def test_the_quickstart_is_committed_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert [c.outputs for c in nb.cells if c.cell_type == "code"] == [[] for c in nb.cells if c.cell_type == "code"]
    assert {c.get("execution_count") for c in nb.cells if c.cell_type == "code"} == {None}


def test_the_quickstart_runs_headless_and_its_asserts_hold(tmp_path, fashion_dir, monkeypatch):
    for key, value in OFFLINE_ENV.items():
        monkeypatch.setenv(key, value)  # the kernel inherits the environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    trains = [c for c in code if "annkit.train(" in c.source]
    assert len(trains) == 2
    for cell in trains:  # the header, the table and the result render once each, as HTML
        out = texts(cell)
        assert sum("annkit train" in t and "╭" in t for t in out) == 1, out[:3]
        assert sum("result" in t and "╭" in t for t in out) == 1
        shown = [o.data for o in cell.outputs if o.output_type == "display_data"]
        widgets = [d for d in shown if "application/vnd.jupyter.widget-view+json" in d]  # the live progress bar
        assert len(widgets) == 1 and all("text/html" in d for d in shown if d not in widgets)
    streams = [o for c in code for o in c.outputs if o.output_type == "stream"]
    assert streams == []  # nothing printed to stdout/stderr besides rich's outputs: no warnings, no tracebacks
    pictures = [c for c in code if c.source.strip() in ("run.plot()", "finder.plot()")]
    assert len(pictures) == 2 and all("image/png" in c.outputs[0].data for c in pictures)
    runs = sorted((tmp_path / "outputs" / "train" / "runs").iterdir())
    assert len(runs) == 2 and all((r / "metrics.json").is_file() for r in runs)
    (finder,) = (tmp_path / "outputs" / "lr_find" / "runs").iterdir()
    suggestion = json.loads((finder / "lr_find.json").read_text())["suggestion"]
    assert json.loads((runs[1] / "metrics.json").read_text())["lr"]["used"] == float(f"{suggestion:.3g}")


def run_cell(kc, code: str, timeout: float = 120, until: str | None = None):
    """Execute ``code``; return (reply content, plain texts of its outputs). With ``until``, return as soon as an
    output contains it (the cell still running), reply None."""
    msg_id = kc.execute(code)
    outputs: list[str] = []
    while True:
        try:
            msg = kc.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output within {timeout} s; so far: {outputs[-3:]}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] in ("stream", "display_data", "execute_result", "error"):
            outputs.append(content.get("text") or content.get("data", {}).get("text/plain", "") or
                           "\n".join(content.get("traceback", [])))  # fmt: skip
            if until is not None and until in outputs[-1]:
                return None, outputs
        if msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    reply = kc.get_shell_msg(timeout=timeout)
    return reply["content"], outputs


def test_a_kernel_interrupt_saves_the_run_and_the_kernel_goes_on(tmp_path):
    env = {**os.environ, **OFFLINE_ENV}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(tmp_path), env=env)
    try:
        reply, _ = run_cell(kc, "import annkit, signal\nbefore = signal.getsignal(signal.SIGINT)")
        assert reply["status"] == "ok"
        reply, out = run_cell(kc, 'annkit.compose("optimizer=sgdd")')
        assert reply["status"] == "error" and reply["ename"] == "AnnkitError"
        shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["traceback"]))
        assert (
            shown.startswith('AnnkitError: optimizer=sgdd: there is no optimizer option "sgdd"')
            and "Traceback" not in shown
        )
        xor = '"dataset=xor", "model=mlp", "trainer.device=cpu", "trainer.print_every=1", "logger.images_every=0"'
        _, out = run_cell(kc, f'annkit.train({xor}, "trainer.epochs=60", run_dir="run")', until="1/60")
        km.interrupt_kernel()  # what the notebook's stop button does: SIGINT to the kernel
        reply = kc.get_shell_msg(timeout=120)["content"]
        assert reply["status"] == "error" and reply["ename"] == "Interrupted", reply
        shown = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(reply["traceback"]))
        assert "Traceback" not in shown and "annkit.train('resume=run')" in shown, shown
        check = (
            "from pathlib import Path\n"
            "assert signal.getsignal(signal.SIGINT) is before\n"
            "assert Path('run/checkpoints/last.safetensors').is_file()\n"
            "done = annkit.train('resume=run', progress=False)\n"
            "print(len(done.history), done.metrics['epochs'])"
        )
        reply, out = run_cell(kc, check)
        assert reply["status"] == "ok", out
        assert out[-1].split() == ["60", "60"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
