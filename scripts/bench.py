"""How fast is annkit's training loop? Three loops, same model, same data, same run.

On the real Fashion-MNIST training split (55,000 images), the same MLP 784-512-512-10 (ReLU)
and the same optimizer (SGD, lr 0.01, momentum 0.9), each loop trains for the same epochs at
each batch size:

  annkit      annkit's own path: uint8 images on the device, randperm batches, per-batch
              normalisation, ``annkit.loop.fit`` (with its on-device loss/accuracy bookkeeping)
  dataloader  what the PyTorch quickstart teaches: torchvision's FashionMNIST + ToTensor()
              + Normalize through a shuffling DataLoader (num_workers=0)
  preloaded   the compute bound: normalised float tensors preloaded, randperm + index, step

Every loop first runs one untimed epoch (allocator and kernel warm-up), then ``--epochs``
timed epochs; s/epoch is their mean. Prints a rich table and the ratios; ``--json`` also
writes them to a file. One run, one machine: compare ratios, not absolute numbers.

    python scripts/bench.py                      # batch sizes 64 and 256, 2 timed epochs, CPU
    python scripts/bench.py --device cuda --epochs 2
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from annkit.data import Batcher, Preprocess, load_image_data, split_train_val
from annkit.data.idx import read_bytes
from annkit.data.sources import FILES, locate
from annkit.loop import fit
from annkit.losses import cross_entropy
from annkit.models import MLP
from annkit.runtime import resolve_device

HIDDEN = [512, 512]
LR, MOMENTUM = 0.01, 0.9
SEED = 0


def make_model(device: torch.device) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(SEED)
    model = MLP(784, HIDDEN, 10, "relu").to(device)
    return model, torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_annkit(data, bs: int, epochs: int, device: torch.device) -> float:
    model, opt = make_model(device)
    batches = Batcher(data.train_x, data.train_y, bs, shuffle=True, generator=torch.Generator(device=device).manual_seed(SEED))
    val = Batcher(data.val_x[:bs], data.val_y[:bs], bs)  # fit validates each epoch; keep it tiny (not timed anyway)
    prep = Preprocess(data.mean, data.std)
    result = fit(
        model, opt, batches, val, epochs=epochs + 1, loss_fn=cross_entropy, eval_loss_fn=cross_entropy,
        prepare=prep, log_every=50,
    )
    # fit times each epoch's training pass itself (ending with its host read of the sums)
    return sum(row["train_s"] for row in result.history[1:]) / epochs


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
    x = ((data.train_x.float() / 255 - data.mean) / data.std).reshape(len(data.train_y), -1)
    y = data.train_y
    g = torch.Generator(device=device).manual_seed(SEED)

    def epoch() -> None:
        perm = torch.randperm(len(y), device=device, generator=g)
        for i in range(0, len(y), bs):
            idx = perm[i : i + bs]
            plain_step(model, opt, x[idx], y[idx])

    return timed_epochs(epoch, epochs, device)


def bench_dataloader(raw_root: Path, train_idx: list[int], mean: float, std: float, bs: int, epochs: int, device: torch.device) -> float:
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((mean,), (std,))])
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
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per loop (after one warm-up epoch)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    parser.add_argument("--root", default=None, help="folder with the Fashion-MNIST IDX files (default: annkit's search)")
    parser.add_argument("--skip-dataloader", action="store_true", help="leave out the (slow) DataLoader loop")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    console = Console()
    device = resolve_device(args.device)
    search = ["data/fashion_mnist", "data/FashionMNIST/raw", "/usr/share/datasets/fashion-mnist"]
    files = locate("fashion_mnist", args.root, search, allow_download=False)
    data = load_image_data(
        "fashion_mnist", root=args.root, search=search, download=False, verify=True, val_size=5000,
        limit_train=None, seed=SEED, device=device,
    )
    train_idx = split_train_val(60000, 5000, SEED)[0].tolist()
    hw = f"{cpu_name()}, {torch.get_num_threads()} threads" if device.type == "cpu" else torch.cuda.get_device_name(device)
    console.print(
        f"[bold]annkit bench[/] · Fashion-MNIST train split {len(data.train_y):,} images · MLP 784-512-512-10 ReLU · "
        f"SGD lr {LR} momentum {MOMENTUM} · {args.epochs} timed epoch(s) after 1 warm-up\n"
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
                row["dataloader_s"] = bench_dataloader(raw_root, train_idx, data.mean, data.std, bs, args.epochs, device)
            results.append(row)
            console.print(f"  batch {bs}: " + ", ".join(f"{k[:-2]} {v:.2f} s/epoch" for k, v in row.items() if k.endswith("_s")))

    table = Table(title="s/epoch (lower is better) and ratios", header_style="bold")
    for col in ("batch", "annkit", "preloaded", "dataloader", "annkit ÷ preloaded", "dataloader ÷ annkit"):
        table.add_column(col, justify="right")
    for r in results:
        dl = r.get("dataloader_s")
        r["annkit_over_preloaded"] = r["annkit_s"] / r["preloaded_s"]
        if dl is not None:
            r["dataloader_over_annkit"] = dl / r["annkit_s"]
        table.add_row(
            str(r["batch_size"]), f"{r['annkit_s']:.2f}", f"{r['preloaded_s']:.2f}", f"{dl:.2f}" if dl else "–",
            f"{r['annkit_over_preloaded']:.2f}×", f"{r['dataloader_over_annkit']:.1f}×" if dl else "–",
        )
    console.print(table)
    if args.json:
        meta = {"device": str(device), "hardware": hw, "torch": torch.__version__, "epochs": args.epochs}
        args.json.write_text(json.dumps({"meta": meta, "results": results}, indent=2))


if __name__ == "__main__":
    main()
