"""Does `annkit lr-find` pick a learning rate as good as a grid search? (issue 4's acceptance)

For each optimizer (SGD with Nesterov momentum 0.9, AdamW) on Fashion-MNIST with the default MLP:

1. a quarter-decade grid of learning rates, 3 epochs each, test accuracy: with annkit's default
   one-cycle schedule peaking at the lr (--schedule onecycle, what `annkit train optimizer.lr=…`
   does), or at a constant lr (--schedule none);
2. the LR finder with 5 seeds (trainer.seed = 0…4: a different init, shuffle and dropout each):
   the suggestion of each, their spread in decades, and the finder's wall time;
3. 3 epochs at the median suggestion (same schedule), compared with the best grid point;
4. the finder's cost against the default recipe's measured training time (docs/performance.md: 30 epochs).

Everything runs in this process through annkit's own task functions (`train`, `lr_find`) on
configs composed by Hydra exactly as the CLI composes them. Results (with every finder curve, so
rules can be re-read offline) go to outputs/lr_find_eval/<time>/results.json, and a table is printed.

    python scripts/lr_find_eval.py --schedule onecycle   # the full evaluation (~15 min on 2 CPU cores)
    python scripts/lr_find_eval.py --schedule none       # the same at a constant lr
    python scripts/lr_find_eval.py --quick         # 1 epoch, limit_train=10000, coarse grid: a smoke test
"""

from __future__ import annotations

import argparse
import io
import json
import math
import statistics
import time
from pathlib import Path

from hydra import compose, initialize_config_module
from rich.console import Console
from rich.table import Table

from annkit.tasks.lr_find import lr_find
from annkit.tasks.train import train

OPTIMIZERS = {
    # name: (overrides, grid exponents of 10)
    "sgd": (["optimizer=sgd"], [x / 4 for x in range(-10, 3)]),  # 10^-2.5 … 10^0.5
    "adamw": (["optimizer=adamw"], [x / 4 for x in range(-18, -5)]),  # 10^-4.5 … 10^-1.5
}


def compose_cfg(config: str, overrides: list[str]):
    with initialize_config_module("annkit.configs", version_base=None):
        return compose(config, overrides=overrides)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 epoch on 10,000 images and a half-decade grid")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS))
    parser.add_argument(
        "--schedule",
        choices=["none", "onecycle"],
        default="onecycle",
        help="none: constant lr; onecycle: annkit's default schedule peaking at the lr",
    )
    parser.add_argument("--grid-only", action="store_true", help="only the grid (the finder ignores the schedule)")
    parser.add_argument(
        "--grid-from",
        type=Path,
        default=None,
        help="reuse the grid of an earlier results.json (same schedule and epochs) instead of training it again",
    )
    parser.add_argument(
        "--default-run-s",
        type=float,
        default=None,
        help="the default recipe's wall time on this machine (docs/performance.md); the finder's share is printed",
    )
    args = parser.parse_args()
    epochs = 1 if args.quick else 3
    common = [f"scheduler={args.schedule}", f"trainer.epochs={epochs}", "trainer.device=cpu"]
    if args.quick:
        common.append("dataset.limit_train=10000")
    out = Path("outputs/lr_find_eval") / time.strftime("%Y-%m-%d_%H-%M-%S")
    quiet = Console(file=io.StringIO(), width=100)
    console = Console()
    results: dict[str, dict] = {}
    for name in args.optimizers:
        opt_overrides, grid = OPTIMIZERS[name]
        if args.quick:
            grid = grid[::2]
        res: dict = {"grid": [], "finder": []}
        for seed in range(0 if args.grid_only else args.seeds):
            cfg = compose_cfg("lr_find", [*opt_overrides, *common, f"trainer.seed={seed}"])  # init, shuffle, dropout
            found = lr_find(cfg, out / name / f"finder_seed{seed}", console=quiet)
            res["finder"].append(
                {
                    "seed": seed,
                    "suggestion": found.suggestion,
                    "band": found.band,
                    "rules": found.rules,
                    "diagnostics": list(found.diagnostics),
                    "seconds": found.seconds,
                    "lrs": found.sweeps[0].lrs,
                    "losses": found.sweeps[0].losses,
                }
            )
            console.print(f"{name} finder seed {seed}: {found.describe()} ({found.seconds:.1f} s)")
        if args.grid_from is not None:
            res["grid"] = json.loads(args.grid_from.read_text())[name]["grid"]
            res["grid_from"] = str(args.grid_from)
            grid = []
        for exponent in grid:
            lr = 10**exponent
            cfg = compose_cfg("train", [*opt_overrides, *common, f"optimizer.lr={lr:.6g}"])
            metrics = train(cfg, out / name / f"grid_{exponent:+.2f}", console=quiet)
            res["grid"].append(
                {"lr": lr, "test_accuracy": metrics["test"]["accuracy"], "val_accuracy": metrics["val"]["accuracy"]}
            )
            console.print(f"{name} lr {lr:.3g}: test {metrics['test']['accuracy']:.2%}")
            out.mkdir(parents=True, exist_ok=True)
            (out / "results.json").write_text(json.dumps({**results, name: res}, indent=1))
        if args.grid_only:
            results[name] = res
            continue
        suggestions = [f["suggestion"] for f in res["finder"] if f["suggestion"]]
        logs = [math.log10(s) for s in suggestions]
        res["median"] = 10 ** statistics.median(logs)
        res["spread_decades"] = max(logs) - min(logs)
        cfg = compose_cfg("train", [*opt_overrides, *common, f"optimizer.lr={res['median']:.6g}"])
        metrics = train(cfg, out / name / "at_suggestion", console=quiet)
        res["at_suggestion"] = {
            "lr": res["median"],
            "test_accuracy": metrics["test"]["accuracy"],
            "val_accuracy": metrics["val"]["accuracy"],
            "train_s": metrics["train_s"],
        }
        best = max(res["grid"], key=lambda g: g["test_accuracy"])
        res["best_grid"] = best
        res["gap_pp"] = 100 * (best["test_accuracy"] - res["at_suggestion"]["test_accuracy"])
        results[name] = res
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))

    if args.grid_only:
        console.print(f"results: {out / 'results.json'}")
        return
    sched = "one-cycle to the lr" if args.schedule == "onecycle" else "constant lr"
    table = Table(title=f"LR finder vs a quarter-decade grid · {epochs} epoch(s), {sched} · Fashion-MNIST, default MLP")
    for col in (
        "optimizer",
        "best grid lr",
        "its test acc",
        "suggestion (median of seeds)",
        "spread",
        "test acc at it",
        "gap",
        "finder s/sweep",
    ):
        table.add_column(col, justify="right")
    for name, res in results.items():
        seconds = statistics.median(f["seconds"] for f in res["finder"])
        table.add_row(
            name,
            f"{res['best_grid']['lr']:.3g}",
            f"{res['best_grid']['test_accuracy']:.2%}",
            f"{res['median']:.3g}",
            f"{res['spread_decades']:.2f} dec",
            f"{res['at_suggestion']['test_accuracy']:.2%}",
            f"{res['gap_pp']:.2f} pp",
            f"{seconds:.1f}",
        )
    console.print(table)
    if args.default_run_s:
        for name, res in results.items():
            seconds = statistics.median(f["seconds"] for f in res["finder"])
            console.print(
                f"{name}: one sweep = {seconds / args.default_run_s:.1%} of the default run ({args.default_run_s:.0f} s)"
            )
    console.print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
