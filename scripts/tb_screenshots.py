"""Screenshots of real TensorBoard pages for a real relu-vs-tanh sweep, taken by headless Chromium.

Runs the playground sweep through the CLI, ``annkit train -m experiment=spiral_activations``
(relu vs tanh on TF Playground's spiral, one job each), starts a real ``tensorboard --logdir``
on the sweep folder, waits until TensorBoard serves both runs, and has headless Chromium save
three pages as PNGs:

  docs/tensorboard_scalars.png           Scalars, filtered to the loss and accuracy curves
                                         (``#scalars&tagFilter=...&_smoothingWeight=0``)
  docs/tensorboard_hparams.png           HParams, table view: one row per run, the swept
                                         hyperparameter (model.activation) and the final metrics
  docs/tensorboard_images.png            Images (``#images``, ``--images-filter`` adds a
                                         ``&tagFilter=``; says "no image data" when none is logged)

and, unless ``--no-parallel``, ``docs/tensorboard_hparams_parallel.png`` (HParams, parallel
coordinates view). Scalars and Images are plain ``chromium --headless=new --screenshot`` calls:
the URL reaches the view and ``--virtual-time-budget`` lets the page fetch its data first. The
HParams columns and tabs have no URL state, so that page is driven over the DevTools protocol on
``--remote-debugging-pipe`` (no extra package): pick the columns, wait for the rows, capture. If
that fails the script falls back to a plain screenshot of ``#hparams`` (TensorBoard's first five
columns) and says so. TensorBoard is always stopped at the end.

Prerequisite: Chromium, the Debian package ``chromium`` (the binary ``chromium`` or
``chromium-browser`` on PATH, or ``--chromium PATH``)::

    apt-get update && apt-get install -y chromium      # sudo when not root

Usage::

    python scripts/tb_screenshots.py                   # sweep (~20 s on 2 CPU cores) + screenshots into docs/
    python scripts/tb_screenshots.py --keep            # and keep the sweep in outputs/tb_screenshots/<time>/
    python scripts/tb_screenshots.py --sweep outputs/train/multiruns/<time>   # reuse a finished sweep
    python scripts/tb_screenshots.py --epochs 50 --out /tmp/shots             # shorter runs, elsewhere

The sweep names its jobs ``<job number>_<activation>`` (``hydra.sweep.subdir``), so the runs read
``0_relu/tb`` and ``1_tanh/tb`` in TensorBoard. Exit status 1 with a short reason on an
expected failure (no chromium, the sweep failed, TensorBoard did not come up or load the runs,
a screenshot was not written), no traceback.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "spiral_activations"
SUBDIR = "${hydra.job.num}_${model.activation}"  # run names 0_relu/tb, 1_tanh/tb
TAG_FILTER = r"^(loss|acc)/(train|val)$"
METRICS = "final/val_loss,final/val_accuracy,final/test_loss,final/test_accuracy"
PAGES = ("scalars", "hparams", "images")
CHROMIUM_FLAGS = [  # every Chromium call; plus --window-size, --user-data-dir and the mode's own
    "--headless=new",
    "--no-sandbox",  # root in a container: the sandbox needs user namespaces
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
]

console = Console(highlight=False)


class Failure(Exception):
    """An expected failure: main prints its message (no traceback) and exits 1."""


# --------------------------------------------------------------------------- tools


def find_chromium(explicit: str | None) -> str:
    if explicit:
        if shutil.which(explicit) is None:
            raise Failure(f"--chromium {explicit}: not found or not executable")
        return explicit
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return name
    raise Failure(
        "chromium not found (looked for `chromium` and `chromium-browser` on PATH); "
        "install the Debian package: apt-get update && apt-get install -y chromium"
    )


def tool(name: str, module: str) -> list[str]:
    """The console script next to this Python (a venv's bin/), on PATH, or ``python -m module``."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return [str(here)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def size_arg(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WIDTHxHEIGHT, e.g. 1280x800") from None
    if w < 200 or h < 150:
        raise argparse.ArgumentTypeError(f"{text!r}: at least 200x150")
    return w, h


# --------------------------------------------------------------------------- sweep


def run_sweep(sweep: Path, epochs: int | None) -> float:
    """``annkit train -m experiment=spiral_activations`` into ``sweep``; returns its wall time."""
    cmd = [
        *tool("annkit", "annkit"),
        "train",
        "-m",
        f"experiment={EXPERIMENT}",
        f"hydra.sweep.dir={sweep}",
        f"hydra.sweep.subdir={SUBDIR}",
    ]
    if epochs is not None:
        cmd.append(f"trainer.epochs={epochs}")
    sweep.mkdir(parents=True, exist_ok=True)
    log = sweep / "sweep.log"
    shown = cmd[cmd.index("train") :]
    console.print(f"[bold]sweep[/]    annkit {' '.join(shown)}")
    start = time.perf_counter()
    with console.status("training relu and tanh …"), log.open("w") as out:
        rc = subprocess.run(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    wall = time.perf_counter() - start
    if rc != 0:
        raise Failure(f"the sweep failed (exit {rc}); last lines of {log}:\n{tail(log)}")
    console.print(f"           done in {wall:.1f} s · log {log}")
    return wall


def event_runs(logdir: Path) -> list[str]:
    """TensorBoard's run names: each folder holding an events file, relative to the logdir."""
    runs = {p.parent.relative_to(logdir).as_posix() for p in logdir.rglob("events.out.tfevents.*")}
    return sorted("." if r == "." else r for r in runs)


def swept_hparams(logdir: Path) -> list[str]:
    """The override keys whose values differ between the jobs (``.hydra/overrides.yaml``)."""
    values: dict[str, set[str]] = {}
    for path in sorted(logdir.glob("*/.hydra/overrides.yaml")):
        for line in path.read_text().splitlines():
            item = line.strip().removeprefix("- ").strip().strip("'\"")
            key, sep, value = item.partition("=")
            if sep and not key.startswith("hydra."):
                values.setdefault(key.lstrip("+~"), set()).add(value)
    return sorted(k for k, v in values.items() if len(v) > 1)


# --------------------------------------------------------------------------- tensorboard


def get_json(url: str, body: dict | None = None, timeout: float = 5.0):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode())


def start_tensorboard(logdir: Path, port: int, log: Path) -> subprocess.Popen:
    # run from the logdir's parent with --logdir <its name>: the page then shows that name, not a temp path
    cmd = [
        *tool("tensorboard", "tensorboard.main"),
        "--logdir",
        logdir.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--reload_interval",
        "2",
    ]
    console.print(f"[bold]tensorboard[/] --logdir {logdir} --host 127.0.0.1 --port {port}")
    out = log.open("w")
    try:
        return subprocess.Popen(
            cmd,
            cwd=logdir.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    finally:
        out.close()


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:  # its own session (start_new_session): the group is tensorboard and its data server
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def snapshot(base: str) -> dict:
    """What TensorBoard serves now: scalar tags per run, the hparams experiment, image tags."""
    scalars = get_json(f"{base}/data/plugin/scalars/tags")
    plugins = get_json(f"{base}/data/plugins_listing")
    hparams = images = None
    if plugins.get("hparams", {}).get("enabled"):
        exp = get_json(f"{base}/data/plugin/hparams/experiment", {"experimentName": "", "hparamsLimit": 1000})
        hparams = (
            [h["name"] for h in exp.get("hparamInfos", [])],
            [m["name"]["tag"] for m in exp.get("metricInfos", [])],
        )
    if plugins.get("images", {}).get("enabled"):
        images = get_json(f"{base}/data/plugin/images/tags")
    return {"scalars": {run: sorted(tags) for run, tags in scalars.items()}, "hparams": hparams, "images": images}


def wait_for_runs(base: str, runs: list[str], proc: subprocess.Popen, log: Path, timeout: float) -> dict:
    """Poll until TensorBoard lists every run's scalars and two polls a second apart agree."""
    deadline = time.monotonic() + timeout
    last, why = None, "no answer yet"
    with console.status(f"waiting for TensorBoard to load {len(runs)} runs …"):
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise Failure(f"tensorboard exited ({proc.returncode}); last lines of {log}:\n{tail(log)}")
            try:
                now = snapshot(base)
            except (OSError, ValueError) as exc:  # not listening yet, or mid-start
                why, last = f"{type(exc).__name__}: {exc}", None
                time.sleep(0.5)
                continue
            missing = [r for r in runs if r not in now["scalars"]]
            if missing:
                why, last = f"runs not loaded yet: {', '.join(missing)}", None
            elif now == last:
                return now
            else:
                why, last = "still loading", now
            time.sleep(1.0)
    raise Failure(f"TensorBoard did not load the runs within {timeout:.0f} s ({why}); log {log}")


# --------------------------------------------------------------------------- chromium


def chromium_flags(size: tuple[int, int], profile: Path) -> list[str]:
    return [*CHROMIUM_FLAGS, f"--window-size={size[0]},{size[1]}", f"--user-data-dir={profile}"]


def noise_free(stderr: str) -> str:
    keep = [
        line
        for line in stderr.splitlines()
        if line.strip() and "dbus" not in line and "unexpected operator" not in line
    ]
    return "\n".join(keep[-10:])


def reap(proc: subprocess.Popen) -> None:
    """Chromium (started in its own session) and whatever of its process group is left."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)


def screenshot(binary: str, url: str, png: Path, size: tuple[int, int], budget_ms: int, profile: Path) -> None:
    """One plain ``chromium --headless=new --screenshot`` call."""
    png.unlink(missing_ok=True)
    cmd = [binary, *chromium_flags(size, profile), f"--virtual-time-budget={budget_ms}", f"--screenshot={png}", url]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        _, stderr = proc.communicate(timeout=budget_ms / 1000 + 90)
    except subprocess.TimeoutExpired:
        raise Failure(f"chromium took too long on {url}") from None
    finally:
        reap(proc)
    if not png.exists() or png.stat().st_size == 0:
        raise Failure(f"chromium wrote no screenshot for {url} (exit {proc.returncode}):\n{noise_free(stderr)}")


class DevTools:
    """Chromium driven over ``--remote-debugging-pipe``: JSON messages ending in NUL, Chromium
    reads fd 3 and writes fd 4. No websocket, no extra package."""

    def __init__(self, binary: str, size: tuple[int, int], profile: Path, stderr_path: Path) -> None:
        to_child, self._w = os.pipe()
        self._r, from_child = os.pipe()

        def fds() -> None:  # in the child: our pipe ends become 3 and 4 (copied above 9 first)
            a = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [binary, *chromium_flags(size, profile), "--remote-debugging-pipe", "about:blank"],
            preexec_fn=fds,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,
        )
        os.close(to_child)
        os.close(from_child)
        self._buf, self._id, self.session = b"", 0, None
        self.size = size

    def call(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self._id:  # anything else is an event
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error'].get('message')}")
                    return reply.get("result", {})
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{method}: no answer in {timeout:.0f} s")
            ready, _, _ = select.select([self._r], [], [], left)
            if ready:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk

    def open(self, url: str) -> None:
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        w, h = self.size
        self.call(
            "Emulation.setDeviceMetricsOverride", {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False}
        )
        self.call("Page.navigate", {"url": url})

    def js(self, expression: str):
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(
                f"page script: {res['exceptionDetails'].get('exception', {}).get('description', res['exceptionDetails'].get('text'))}"
            )
        return res.get("result", {}).get("value")

    def until(self, expression: str, timeout: float, what: str):
        """Evaluate ``expression`` every 0.25 s until it returns an object with ``ready: true``."""
        deadline, value = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            value = self.js(expression)
            if isinstance(value, dict) and value.get("ready"):
                return value
            time.sleep(0.25)
        raise RuntimeError(f"{what} not ready after {timeout:.0f} s: {value}")

    def settle(self) -> None:
        """Two animation frames and a short pause: the last layout and paint are on screen."""
        self.js("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => setTimeout(r, 300))))")

    def capture(self, png: Path) -> None:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        png.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError):
            pass
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        reap(self.proc)
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stderr.close()


# The HParams dashboard is Polymer in shadow DOM; these snippets reach its elements through the
# shadow roots and set the same properties its checkboxes and tabs set.
DEEP = """const deep = (root, sel, out = []) => {
  root.querySelectorAll(sel).forEach(e => out.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deep(e.shadowRoot, sel, out); });
  return out; };"""

HPARAMS_COLUMNS = """(() => {
  %(deep)s
  const want = %(hparams)s, metrics = %(metrics)s, runs = %(runs)d;
  const qp = deep(document, 'tf-hparams-query-pane')[0];
  const sp = deep(document, 'tf-hparams-sessions-pane')[0];
  if (!qp || !qp._hparams || !qp._hparams.length || !qp._metrics) return {ready: false, why: 'no hparams yet'};
  if (!sp || !sp.sessionGroups || sp.sessionGroups.length < runs)
    return {ready: false, why: `${sp && sp.sessionGroups ? sp.sessionGroups.length : 0} of ${runs} rows`};
  const names = qp._hparams.map(h => h.info.name);
  const shown = want.filter(n => names.includes(n));
  if (shown.length) {  // the swept hparams first (left pane and columns), the rest unticked
    const hp = [...qp._hparams];
    const sorted = [...shown.map(n => hp.find(h => h.info.name === n)), ...hp.filter(h => !shown.includes(h.info.name))];
    sorted.forEach(h => { h.displayed = shown.includes(h.info.name); });
    qp.set('_hparams', sorted);
  }
  const tags = qp._metrics.map(m => m.info.name.tag);
  if (metrics.some(t => tags.includes(t)))
    qp._metrics.forEach((m, i) => qp.set(`_metrics.${i}.displayed`, metrics.includes(m.info.name.tag)));
  return {ready: true, hparams: shown, missing: want.filter(n => !names.includes(n)), metrics: tags.filter(t => metrics.includes(t))};
})()"""

HPARAMS_TABLE = """(() => {
  %(deep)s
  const sp = deep(document, 'tf-hparams-sessions-pane')[0];
  const qp = deep(document, 'tf-hparams-query-pane')[0];
  const names = qp && qp._hparams ? qp._hparams.map(h => h.info.name) : [];
  const cols = sp && sp.configuration && sp.configuration.visibleSchema;
  const cells = deep(document, 'vaadin-grid-cell-content').map(c => c.textContent.trim()).filter(Boolean);
  const groups = (sp && sp.sessionGroups || []).map(g => g.name);
  const ok = cols && %(hparams)s.every(n => !names.includes(n) || cols.hparamInfos.some(h => h.name === n))
             && groups.length >= %(runs)d && groups.every(g => cells.includes(g));
  return {ready: !!ok, cells: cells.length};
})()"""

HPARAMS_PARALLEL = """(() => {
  %(deep)s
  const sp = deep(document, 'tf-hparams-sessions-pane')[0];
  if (sp._selectedTab !== 1) sp._selectedTab = 1;
  const lines = deep(document, 'tf-hparams-parallel-coords-plot').flatMap(p => [...p.shadowRoot.querySelectorAll('.foreground path')]);
  return {ready: lines.length >= %(runs)d, lines: lines.length};
})()"""


def hparams_shot(
    binary: str,
    base: str,
    runs: list[str],
    hparams: list[str],
    metrics: list[str],
    view: str,
    png: Path,
    size: tuple[int, int],
    profile: Path,
    timeout: float,
) -> dict:
    """``#hparams`` with the chosen columns, in the table or the parallel coordinates view."""
    png.unlink(missing_ok=True)
    browser = DevTools(binary, size, profile, profile.parent / f"chromium-{view}.log")
    try:
        browser.open(f"{base}/#hparams")
        args = {"hparams": json.dumps(hparams), "metrics": json.dumps(metrics), "runs": len(runs), "deep": DEEP}
        info = browser.until(HPARAMS_COLUMNS % args, timeout, "the HParams dashboard")
        if view == "table":
            browser.until(HPARAMS_TABLE % args, timeout, "the HParams table")
        else:
            browser.until(HPARAMS_PARALLEL % args, timeout, "the parallel coordinates plot")
        browser.settle()
        browser.capture(png)
    finally:
        browser.close()
    return info


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Needs Chromium: apt-get install -y chromium",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--sweep", type=Path, help="reuse this finished sweep folder (or any logdir) instead of training")
    p.add_argument(
        "--sweep-dir",
        type=Path,
        help="where the new sweep goes, kept (default: a temporary folder, removed at the end)",
    )
    p.add_argument(
        "--keep", action="store_true", help="keep the new sweep: in outputs/tb_screenshots/<time>/ unless --sweep-dir"
    )
    p.add_argument(
        "--epochs",
        type=int,
        help="override trainer.epochs (default: the experiment's own, 200: ~20 s for both jobs on 2 CPU cores)",
    )
    p.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs (default: docs/)")
    p.add_argument("--pages", default=",".join(PAGES), help=f"comma list of {', '.join(PAGES)} (default: all)")
    p.add_argument("--no-parallel", action="store_true", help="skip tensorboard_hparams_parallel.png")
    p.add_argument("--chromium", help="the Chromium binary (default: chromium or chromium-browser on PATH)")
    p.add_argument("--port", type=int, help="TensorBoard's port (default: a free one)")
    p.add_argument("--tag-filter", default=TAG_FILTER, help=f"Scalars tag regex (default: {TAG_FILTER})")
    p.add_argument(
        "--smoothing", type=float, default=0.0, help="Scalars smoothing weight, 0 to 0.999 (default: 0, the raw curves)"
    )
    p.add_argument(
        "--images-filter",
        default=r"^(boundary|confusion/test)$",
        help='Images tag regex (default: the decision boundaries and test confusion matrices; "" = every image tag)',
    )
    p.add_argument(
        "--hparams", help="comma list of HParams columns (default: the overrides that differ between the jobs)"
    )
    p.add_argument("--metrics", default=METRICS, help=f"comma list of HParams metric columns (default: {METRICS})")
    p.add_argument(
        "--scalars-size",
        type=size_arg,
        default=(1280, 768),
        metavar="WxH",
        help="window of the Scalars shot (default: 1280x768)",
    )
    p.add_argument(
        "--hparams-size",
        type=size_arg,
        default=(1400, 300),
        metavar="WxH",
        help="window of the HParams table shot (default: 1400x300)",
    )
    p.add_argument(
        "--parallel-size",
        type=size_arg,
        default=(1280, 800),
        metavar="WxH",
        help="window of the parallel coordinates shot (default: 1280x800)",
    )
    p.add_argument(
        "--images-size",
        type=size_arg,
        default=(1280, 900),
        metavar="WxH",
        help="window of the Images shot (default: 1280x900)",
    )
    p.add_argument(
        "--budget",
        type=int,
        default=15000,
        metavar="MS",
        help="--virtual-time-budget of the plain shots in ms (default: 15000)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="how long to wait for TensorBoard and for each page (default: 120)",
    )
    args = p.parse_args(argv)
    args.pages = [x.strip() for x in args.pages.split(",") if x.strip()]
    if bad := [x for x in args.pages if x not in PAGES]:
        p.error(f"--pages: unknown {', '.join(bad)} (choose from {', '.join(PAGES)})")
    if args.sweep and (args.sweep_dir or args.epochs is not None):
        p.error("--sweep reuses a finished sweep: no --sweep-dir or --epochs with it")
    if not 0 <= args.smoothing < 1:
        p.error("--smoothing: from 0 to 0.999")
    if args.epochs is not None and args.epochs < 1:
        p.error("--epochs: at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="tb_screenshots_"))
    tb = None
    sweep_wall = None
    made_sweep = args.sweep is None
    ran = False  # the sweep was started (its folder is ours)
    if made_sweep:  # a temporary sweep lives in work/ and goes with it; a kept one elsewhere
        default = (
            ROOT / "outputs" / "tb_screenshots" / time.strftime("%Y-%m-%d_%H-%M-%S") if args.keep else work / EXPERIMENT
        )
        sweep = (args.sweep_dir or default).resolve()
    else:
        sweep = args.sweep.resolve()
    try:
        binary = find_chromium(args.chromium)
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30).stdout.strip()
        console.print(f"[bold]chromium[/] {version or binary}")
        if made_sweep:
            if sweep.exists() and any(sweep.iterdir()):
                raise Failure(f"--sweep-dir {sweep} is not empty (reuse a finished sweep with --sweep)")
            ran = True
            sweep_wall = run_sweep(sweep, args.epochs)
        elif not sweep.is_dir():
            raise Failure(f"--sweep {sweep}: no such folder")
        runs = event_runs(sweep)
        if not runs:
            raise Failure(f"no TensorBoard events under {sweep}")
        hparams = [h.strip() for h in args.hparams.split(",")] if args.hparams else swept_hparams(sweep)
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
        console.print(f"[bold]runs[/]     {', '.join(runs)}" + (f" · swept {', '.join(hparams)}" if hparams else ""))

        port = args.port or free_port()
        base = f"http://127.0.0.1:{port}"
        tb = start_tensorboard(sweep, port, work / "tensorboard.log")
        served = wait_for_runs(base, runs, tb, work / "tensorboard.log", args.timeout)
        ready_s = time.perf_counter() - start - (sweep_wall or 0)
        n_images = sum(len(t) for t in (served["images"] or {}).values())
        console.print(
            f"           serving {len(runs)} runs after {ready_s:.1f} s · hparams "
            f"{'yes' if served['hparams'] else 'none'} · {n_images} image series"
        )

        args.out.mkdir(parents=True, exist_ok=True)
        profile = work / "profile"
        made: list[tuple[str, Path, str]] = []
        for page in args.pages:
            t0 = time.perf_counter()
            if page == "scalars":
                query = urllib.parse.urlencode(
                    {"tagFilter": args.tag_filter, "_smoothingWeight": f"{args.smoothing:g}"},
                    quote_via=urllib.parse.quote,
                )
                url = f"{base}/#scalars&{query}"
                png = args.out / "tensorboard_scalars.png"
                screenshot(binary, url, png, args.scalars_size, args.budget, profile)
                made.append(("Scalars", png, url))
            elif page == "images":
                url = f"{base}/#images"
                if args.images_filter:
                    url += "&" + urllib.parse.urlencode({"tagFilter": args.images_filter}, quote_via=urllib.parse.quote)
                png = args.out / "tensorboard_images.png"
                screenshot(binary, url, png, args.images_size, args.budget, profile)
                note = url if n_images else f"{url} (no images logged: the page says so)"
                made.append(("Images", png, note))
            else:
                url = f"{base}/#hparams"
                if not served["hparams"]:
                    console.print("[yellow]warning[/]  no hparams logged: the HParams page says so")
                views = [("table", args.out / "tensorboard_hparams.png", args.hparams_size)]
                if not args.no_parallel:
                    views.append(("parallel", args.out / "tensorboard_hparams_parallel.png", args.parallel_size))
                for view, png, size in views:
                    try:
                        info = hparams_shot(
                            binary, base, runs, hparams, metrics, view, png, size, profile, min(args.timeout, 60.0)
                        )
                    except (OSError, RuntimeError, TimeoutError, StopIteration) as exc:
                        if view != "table":
                            console.print(f"[yellow]warning[/]  no parallel coordinates shot (DevTools pipe: {exc})")
                            continue
                        console.print(
                            f"[yellow]warning[/]  DevTools pipe: {exc}; plain screenshot of {url} "
                            "instead (TensorBoard's first five columns)"
                        )
                        screenshot(binary, url, png, size, args.budget, profile)
                        made.append(("HParams", png, f"{url} (plain, default columns)"))
                        continue
                    cols = ", ".join(info.get("hparams", []) + info.get("metrics", [])) or "TensorBoard's defaults"
                    made.append(
                        ("HParams", png, f"{url} {view} · {cols}" if view == "table" else f"{url} parallel coordinates")
                    )
            console.print(f"[bold]shot[/]     {page} in {time.perf_counter() - t0:.1f} s")

        summary = Table(title="screenshots", title_justify="left")
        for col in ("page", "file", "size", "url"):
            summary.add_column(col, overflow="fold")
        for page, png, url in made:
            summary.add_row(page, str(png), f"{png.stat().st_size / 1024:,.0f} KiB", url.replace(base, ""))
        console.print(summary)
        total = time.perf_counter() - start
        console.print(f"total {total:.1f} s" + (f" (sweep {sweep_wall:.1f} s)" if sweep_wall else ""))
        return 0
    except Failure as exc:
        console.print(f"[bold red]error[/] {exc}")
        return 1
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130
    finally:
        stop(tb)
        if ran and (args.keep or args.sweep_dir) and sweep.exists():
            console.print(f"sweep kept in {sweep} (reuse it: --sweep {sweep})")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
