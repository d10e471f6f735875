"""How fast is annkit's training loop? Four loops, same model, same data, same run.

On the real Fashion-MNIST training split (55,000 images), the same MLP 784-512-512-10 (ReLU)
and the PyTorch quickstart's optimizer (SGD, lr 1e-3), each loop trains for the same epochs at
each batch size:

  annkit      annkit's own path: uint8 images on the device, randperm batches, per-batch
              normalisation, ``annkit.loop.fit`` (with its on-device loss/accuracy bookkeeping)
  quickstart  the PyTorch quickstart's loop: torchvision's FashionMNIST + ToTensor() through a
              shuffling DataLoader (num_workers=0); its inputs are not normalised
  normalised  the same with ToTensor() + Normalize(mean, std): the inputs annkit trains on
  preloaded   the compute bound: normalised float tensors preloaded, randperm + index, step

``--logging N`` also runs the real default recipe (``annkit train``, in this process, N epochs on
the full data) and reports what its TensorBoard logging cost: the seconds spent writing scalars,
texts, pictures, layer health and hparams (metrics.json's ``logging_s``) per epoch and as a share
of the epoch time (the budget: at most 3 %); and on TF Playground's spiral (200 epochs) the wall time
with the default pictures against every picture off (the budget: at most 1.5×) and the milliseconds
of each picture.

``--ddp N`` runs the default recipe for N epochs twice, as real ``annkit train`` commands: in one
process, and as ``torchrun --standalone --nproc-per-node=2`` (DistributedDataParallel, gloo on
CPU), and compares s/epoch and test accuracy (same seed, same global batch).

Every loop first runs one untimed epoch (allocator and kernel warm-up), then ``--epochs``
timed epochs; s/epoch is their mean. Prints a rich table and the ratios; ``--json`` also
writes them to a file. One run, one machine: compare ratios, not absolute numbers.

    python scripts/bench.py                      # batch sizes 64 and 256, 2 timed epochs, CPU
    python scripts/bench.py --device cuda --epochs 2
    python scripts/bench.py --batch-sizes --logging 6   # only the logging cost of the default recipe
    python scripts/bench.py --batch-sizes --ddp 30      # 1 process against 2 DDP processes, 30 epochs
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from annkit.data import Batcher, split_train_val
from annkit.data.idx import read_bytes
from annkit.data.images import load_image_data
from annkit.data.sources import FILES, locate
from annkit.head import Head
from annkit.loop import Policy, Step, fit
from annkit.models import MLP
from annkit.runtime import resolve_device

HIDDEN = [512, 512]
LR = 1e-3  # the quickstart's torch.optim.SGD(model.parameters(), lr=1e-3)
SEED = 0


def make_model(device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    model = MLP(784, HIDDEN, 10, "relu").to(device)
    return model, torch.optim.SGD(model.parameters(), lr=LR)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_annkit(data, bs: int, epochs: int, device: torch.device) -> float:
    model, opt = make_model(device)
    batches = Batcher(
        data.train.x, data.train.y, bs, shuffle=True, generator=torch.Generator(device=device).manual_seed(SEED)
    )
    val = Batcher(data.val.x[:bs], data.val.y[:bs], bs)  # fit validates each epoch; keep it tiny (not timed anyway)
    head = Head("classification", data.names, "ce", "softmax", device=device)
    result = fit(model, opt, batches, val, Step(head, data.prepare), Policy(epochs=epochs + 1, log_every=50))
    # fit times each epoch's training pass itself (ending with its host read of the sums)
    return sum(row["train_s"] for row in result.history[1:]) / epochs


def bench_logging(root: str, epochs: int, device: str) -> dict[str, float]:
    """The default recipe for ``epochs`` epochs through annkit's own train task (checkpoints,
    TensorBoard, console into a buffer): its logging seconds against its epoch seconds."""
    import io

    from hydra import compose, initialize_config_module

    from annkit.tasks.train import train

    with initialize_config_module(config_module="annkit.configs", version_base=None):
        cfg = compose("train", [f"trainer.epochs={epochs}", f"dataset.root={root}", f"trainer.device={device}"])
    with tempfile.TemporaryDirectory() as run_dir:
        m = train(cfg, Path(run_dir), console=Console(file=io.StringIO()))
    epoch_s = sum(row["epoch_s"] for row in m["history"])
    return {
        "epochs": epochs,
        "epoch_s": epoch_s / epochs,
        "logging_s": m["logging_s"] / epochs,
        "share": m["logging_s"] / epoch_s,
        "test_accuracy": m["test"]["accuracy"],
    }


def bench_playground(device: str, epochs: int = 200) -> dict[str, Any]:
    """TF Playground's spiral (``experiment=spiral_activations``, ``epochs`` epochs) with its images off (no
    pictures, no confusion matrices; the scalars and the layer health stay) and with the defaults: wall time of each
    and their ratio; then the milliseconds of each picture as TensorBoard gets it (drawn on the run's model)."""
    import io

    from hydra import compose, initialize_config_module

    from annkit.checkpoint import load_model
    from annkit.dashboard import pixels
    from annkit.inside import render
    from annkit.tasks.show import checkpoint_views
    from annkit.tasks.train import train

    base = ["experiment=spiral_activations", f"trainer.epochs={epochs}", f"trainer.device={device}"]
    off = ["logger.images_every=0", "logger.confusion=false"]
    walls = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, words in (("off", [*base, *off]), ("default", base)):
            with initialize_config_module(config_module="annkit.configs", version_base=None):
                cfg = compose("train", words)
            m = train(cfg, Path(tmp) / name, console=Console(file=io.StringIO()))
            walls[name] = m["wall_s"]
        model, ckpt = load_model(Path(tmp) / "default" / "checkpoints" / "best.safetensors", device)
        views = checkpoint_views(ckpt.meta, torch.device(device), resolution=40)
        ms: dict[str, list[float]] = {}
        for _ in range(5):
            started = time.perf_counter()
            figures = render(model, views, "bench", boundary=True, board=True)
            build = (time.perf_counter() - started) / len(figures)  # the forward passes, shared out
            for tag, fig in figures.items():
                t0 = time.perf_counter()
                if not isinstance(fig, np.ndarray):
                    pixels(fig)
                ms.setdefault(tag, []).append(1000 * (build + time.perf_counter() - t0))
    every = max(1, -(-epochs // 5))
    return {
        "epochs": epochs, "images_every": every, "off_s": walls["off"], "default_s": walls["default"],
        "ratio": walls["default"] / walls["off"], "ms_per_picture": {k: sorted(v)[2] for k, v in ms.items()},
    }  # fmt: skip


def bench_ddp(root: str, epochs: int, device: str) -> list[dict[str, float]]:
    """The default recipe as ``annkit train`` in 1 process and under torchrun in 2: s/epoch, test accuracy."""
    import subprocess
    import sys

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for procs in (1, 2):
            launcher = (
                ["torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", "-m", "annkit"]
                if procs > 1
                else ["annkit"]
            )
            run = Path(tmp) / f"p{procs}"
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    *launcher,
                    "train",
                    f"trainer.epochs={epochs}",
                    f"dataset.root={root}",
                    f"trainer.device={device}",
                    f"hydra.run.dir={run}",
                ],
                check=True,
                capture_output=True,
            )
            m = json.loads((run / "metrics.json").read_text())
            rows.append(
                {
                    "processes": procs,
                    "epoch_s": sum(r["epoch_s"] for r in m["history"]) / epochs,
                    "wall_s": time.perf_counter() - started,
                    "test_accuracy": m["test"]["accuracy"],
                }
            )
    return rows


def bench_concurrent(root: str, epochs: int, device: str) -> list[dict[str, object]]:
    """``annkit train`` (the default recipe on 20,000 training images, no pictures) alone, then two started
    together, with the threads fixed at every core (what trainer.threads=auto did before it looked at the
    load) and with trainer.threads=auto: samples/s of each, and the share of the solo speed each keeps."""
    import os
    import subprocess
    import sys

    from annkit.cpu import cores

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:

        def command(run: str, threads: str) -> list[str]:
            return [
                sys.executable,
                "-m",
                "annkit",
                "train",
                f"trainer.epochs={epochs}",
                "dataset.limit_train=20000",
                f"dataset.root={root}",
                f"trainer.device={device}",
                f"trainer.threads={threads}",
                "logger.confusion=false",
                "logger.images_every=0",
                f"hydra.run.dir={Path(tmp) / run}",
            ]

        def speed(run: str) -> tuple[float, int]:
            m = json.loads((Path(tmp) / run / "metrics.json").read_text())
            return m["samples_per_s"], m["threads"]

        for label, threads in ((f"{cores()} (every core: the old auto)", str(cores())), ("auto", "auto")):
            key = threads.replace(" ", "")
            subprocess.run(command(f"solo{key}", threads), check=True, capture_output=True, env=env)
            pair = [
                subprocess.Popen(
                    command(f"{name}{key}", threads), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
                )
                for name in ("a", "b")
            ]
            if any(proc.wait() for proc in pair):
                raise RuntimeError("a concurrent run failed")
            solo, _ = speed(f"solo{key}")
            both = [speed(f"{name}{key}") for name in ("a", "b")]
            rows.append(
                {
                    "threads": label,
                    "solo": solo,
                    "pair": [v for v, _ in both],
                    "pair_threads": [n for _, n in both],
                    "kept": [v / solo for v, _ in both],
                }
            )
    return rows


def plain_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """The textbook step both baselines take."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def timed_epochs(run_epoch, epochs: int, device: torch.device) -> float:
    """Mean seconds of ``epochs`` calls of ``run_epoch`` after one untimed warm-up call."""
    times = []
    for _ in range(epochs + 1):
        sync(device)
        t0 = time.perf_counter()
        run_epoch()
        sync(device)
        times.append(time.perf_counter() - t0)
    return sum(times[1:]) / epochs


def bench_preloaded(data, bs: int, epochs: int, device: torch.device) -> float:
    model, opt = make_model(device)
    mean, std = data.preprocessing["mean"], data.preprocessing["std"]
    x = ((data.train.x.float() / 255 - mean) / std).reshape(len(data.train), -1)
    y = data.train.y
    g = torch.Generator(device=device).manual_seed(SEED)

    def epoch() -> None:
        perm = torch.randperm(len(y), device=device, generator=g)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            plain_step(model, opt, x[idx], y[idx])

    return timed_epochs(epoch, epochs, device)


def bench_dataloader(
    raw_root: Path, train_idx: list[int], norm: tuple[float, float] | None, bs: int, epochs: int, device: torch.device
) -> float:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    steps = [transforms.ToTensor()] + ([transforms.Normalize((norm[0],), (norm[1],))] if norm else [])
    tf = transforms.Compose(steps)
    ds = Subset(datasets.FashionMNIST(root=str(raw_root), train=True, download=False, transform=tf), train_idx)
    loader = DataLoader(ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(SEED))
    model, opt = make_model(device)

    def epoch() -> None:
        for xb, yb in loader:
            plain_step(model, opt, xb.to(device), yb.to(device))

    return timed_epochs(epoch, epochs, device)


def torchvision_layout(files: dict[str, Path], dest: Path) -> Path:
    """Uncompressed copies in <dest>/FashionMNIST/raw, the layout torchvision reads offline."""
    raw = dest / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for role, base in FILES.items():
        (raw / base).write_bytes(read_bytes(files[role]))
    return dest


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[64, 256], help="none: skip the loop comparison")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop (after one warm-up epoch)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument(
        "--root", default=None, help="folder with the Fashion-MNIST IDX files (default: annkit's search)"
    )
    parser.add_argument("--skip-dataloader", action="store_true", help="leave out the two (slow) DataLoader loops")
    parser.add_argument(
        "--logging",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also run the default recipe for EPOCHS epochs and report its TensorBoard logging cost",
    )
    parser.add_argument(
        "--ddp",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also run the default recipe for EPOCHS epochs in 1 process and in 2 (torchrun, DDP)",
    )
    parser.add_argument(
        "--concurrent",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also run annkit train alone and two at once (threads fixed, then auto): samples/s kept",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    console = Console()
    device = resolve_device(args.device)
    search = ["data/fashion_mnist", "data/FashionMNIST/raw", "/usr/share/datasets/fashion-mnist"]
    files = locate("fashion_mnist", args.root, search, allow_download=False)
    root = str(files["train_images"].parent)
    data = load_image_data(
        "fashion_mnist",
        root=root,
        search=[],
        download=False,
        verify=True,
        val_size=5000,
        limit_train=None,
        augment={"hflip": False, "shift": 0},
        seed=SEED,
        device=device,
    )
    n_train_file = len(data.train) + len(data.val)
    train_idx = split_train_val(n_train_file, len(data.val), SEED)[0].tolist()  # annkit's training split
    hw = (
        f"{cpu_name()}, {torch.get_num_threads()} threads"
        if device.type == "cpu"
        else torch.cuda.get_device_name(device)
    )
    console.print(
        f"[bold]annkit bench[/] · Fashion-MNIST train split {len(data.train):,} images · MLP 784-512-512-10 ReLU · "
        f"SGD lr {LR} · {args.epochs} timed epoch(s) after 1 warm-up\n"
        f"device {device} ({hw}) · torch {torch.__version__} · python {platform.python_version()}"
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        raw_root = torchvision_layout(files, Path(tmp))
        for bs in args.batch_sizes:
            row = {"batch_size": bs}
            row["preloaded_s"] = bench_preloaded(data, bs, args.epochs, device)
            row["annkit_s"] = bench_annkit(data, bs, args.epochs, device)
            if not args.skip_dataloader:
                row["quickstart_s"] = bench_dataloader(raw_root, train_idx, None, bs, args.epochs, device)
                row["normalised_s"] = bench_dataloader(
                    raw_root,
                    train_idx,
                    (data.preprocessing["mean"], data.preprocessing["std"]),
                    bs,
                    args.epochs,
                    device,
                )
            results.append(row)
            console.print(
                f"  batch {bs}: " + ", ".join(f"{k[:-2]} {v:.2f} s/epoch" for k, v in row.items() if k.endswith("_s"))
            )

    table = Table(title="s/epoch (lower is better) and ratios", header_style="bold")
    for col in (
        "batch",
        "annkit",
        "preloaded",
        "quickstart",
        "normalised",
        "annkit ÷ preloaded",
        "quickstart ÷ annkit",
        "normalised ÷ annkit",
        "quickstart ÷ preloaded",
    ):
        table.add_column(col, justify="right")
    for r in results:
        r["annkit_over_preloaded"] = r["annkit_s"] / r["preloaded_s"]
        cells = [str(r["batch_size"]), f"{r['annkit_s']:.2f}", f"{r['preloaded_s']:.2f}"]
        if "quickstart_s" in r:
            r["quickstart_over_annkit"] = r["quickstart_s"] / r["annkit_s"]
            r["normalised_over_annkit"] = r["normalised_s"] / r["annkit_s"]
            r["quickstart_over_preloaded"] = r["quickstart_s"] / r["preloaded_s"]  # the most any loop can gain
            cells += [f"{r['quickstart_s']:.2f}", f"{r['normalised_s']:.2f}"]
        else:
            cells += ["–", "–"]
        cells.append(f"{r['annkit_over_preloaded']:.2f}×")
        cells += [
            f"{r[k]:.1f}×" if k in r else "–"
            for k in ("quickstart_over_annkit", "normalised_over_annkit", "quickstart_over_preloaded")
        ]
        table.add_row(*cells)
    if results:
        console.print(table)
    logging = None
    if args.logging:
        logging = bench_logging(root, args.logging, str(device))
        console.print(
            f"[bold]logging[/] (default recipe, {logging['epochs']} epochs, TensorBoard defaults): "
            f"{logging['logging_s'] * 1000:.0f} ms per epoch of {logging['epoch_s']:.2f} s = "
            f"[bold]{logging['share']:.1%}[/] of the epoch time · test accuracy {logging['test_accuracy']:.2%}"
        )
        logging["playground"] = play = bench_playground(str(device))
        console.print(
            f"[bold]playground[/] (spiral, {play['epochs']} epochs, pictures every {play['images_every']}): "
            f"{play['default_s']:.1f} s with the defaults, {play['off_s']:.1f} s with its images off = "
            f"[bold]{play['ratio']:.2f}×[/] · ms per picture (median of 5): "
            + ", ".join(f"{k} {v:.0f}" for k, v in play["ms_per_picture"].items())
        )
    ddp = None
    if args.ddp:
        ddp = bench_ddp(root, args.ddp, str(device))
        table = Table(
            title=f"default recipe, {args.ddp} epochs: 1 process against 2 (torchrun, DDP)", header_style="bold"
        )
        for col in ("processes", "s/epoch", "wall", "test accuracy"):
            table.add_column(col, justify="right")
        for r in ddp:
            table.add_row(
                str(r["processes"]), f"{r['epoch_s']:.2f}", f"{r['wall_s']:.1f} s", f"{r['test_accuracy']:.2%}"
            )
        console.print(table)
        console.print(
            f"test accuracy, 2 processes − 1: {(ddp[1]['test_accuracy'] - ddp[0]['test_accuracy']) * 100:+.2f} pp"
        )
    concurrent = None
    if args.concurrent:
        concurrent = bench_concurrent(root, args.concurrent, str(device))
        table = Table(
            title=f"annkit train alone and two at once ({args.concurrent} epochs of 20,000 images)", header_style="bold"
        )
        for col in ("trainer.threads", "alone", "two at once (each)", "threads chosen", "share of solo kept"):
            table.add_column(col, justify="right")
        for r in concurrent:
            table.add_row(
                r["threads"],
                f"{r['solo']:,.0f} samples/s",
                " · ".join(f"{v:,.0f}" for v in r["pair"]),
                " · ".join(map(str, r["pair_threads"])),
                " · ".join(f"{k:.0%}" for k in r["kept"]),
            )
        console.print(table)
    if args.json:
        meta = {"device": str(device), "hardware": hw, "torch": torch.__version__, "epochs": args.epochs}
        args.json.write_text(
            json.dumps(
                {"meta": meta, "results": results, "logging": logging, "ddp": ddp, "concurrent": concurrent}, indent=2
            )
        )


if __name__ == "__main__":
    main()
