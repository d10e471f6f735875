"""``annkit <subcommand> [overrides]``: pick the subcommand, hand the rest to its Hydra app.

Each subcommand is its own ``@hydra.main`` with its own primary config (``configs/<name>.yaml``),
so everything Hydra offers (``-m`` sweeps, ``--cfg job``, ``--help``, ``--config-dir``,
``-sc install=bash`` completion) works per subcommand. A new subcommand is one entry in
:data:`SUBCOMMANDS` plus its module in ``annkit.tasks``; a module may define
``prepare_argv(args) -> args`` to rewrite its command line before Hydra sees it (train's
``resume=`` does). Before Hydra runs, :func:`preflight` reads the overrides with Hydra's grammar
(explaining the quoting a word needs), checks group options and ``--config-dir`` files, and,
unless the module sets ``WRITES_RUN_DIR = False`` (board, which only serves TensorBoard), checks
that the run's folder can be written and holds no other run (``OVERWRITE_KEY``, default
``trainer.overwrite``, moves one aside).

Shell completion: ``eval "$(annkit -sc install=bash)"`` installs Hydra's completion for the
``annkit`` executable. The shell then calls ``annkit -sc query=bash`` with the line typed so
far in ``COMP_LINE``; this module completes the subcommand itself, or strips it from
``COMP_LINE`` and lets that subcommand's Hydra app complete config groups and keys.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from annkit import __version__
from annkit.commands import override
from annkit.errors import EXIT_USAGE, AnnkitError, did_you_mean, print_error, user_errors
from annkit.help import print_task_help
from annkit.overrides import CommandLine, check_config_dir, check_groups, check_keys, fixed_dir, read
from annkit.rundir import discard_if_unused, protect

# name → (its module, with run(cfg) and optionally prepare_argv / WRITES_RUN_DIR / OVERWRITE_KEY; its primary
# config in configs/, or "" for a subcommand that is no Hydra app and reads its own words with main(args); a
# one-line description). The module (torch and all) is imported only when the task runs.
SUBCOMMANDS: dict[str, tuple[str, str, str]] = {
    "train": (
        "annkit.tasks.train",
        "train",
        "Train a network described by config (model, dataset, loss, optimizer, scheduler, trainer).",
    ),
    "lr-find": (
        "annkit.tasks.lr_find",
        "lr_find",
        "The LR range test: sweep the learning rate, plot loss vs lr, suggest one (and a band).",
    ),
    "eval": (
        "annkit.tasks.evaluate",
        "eval",
        "Score a checkpoint on a split: metrics, per-class table, confusion matrix, metrics.json.",
    ),
    "predict": (
        "annkit.tasks.predict",
        "predict",
        "Predict with a checkpoint on a CSV, an image or a folder of images: predictions.csv.",
    ),
    "show": (
        "annkit.tasks.show",
        "show",
        "The pictures of a trained network as PNGs: unit maps, boundary, diagram, first-layer weights.",
    ),
    "autodiff": (
        "annkit.tasks.autodiff",
        "",
        "Differentiate an expression by hand: forward mode (dual numbers), reverse mode, checked by torch.",
    ),
    "export": (
        "annkit.tasks.export",
        "export",
        "A checkpoint as ONNX or a torch.export program, preprocessing inside, verified against annkit.",
    ),
    "compare": (
        "annkit.tasks.compare",
        "compare",
        "Runs side by side: the config keys that differ, final metrics, epochs, wall time; csv/markdown/json.",
    ),
    "board": (
        "annkit.tasks.board",
        "board",
        "TensorBoard on the runs (curves, hparams table), on this machine only: http://127.0.0.1:6006/.",
    ),
}
# subcommands that take their main argument as a bare word: `annkit show outputs/x` is `annkit show path=outputs/x`
POSITIONAL: dict[str, tuple[str, bool]] = {"show": ("path", False), "compare": ("runs", True)}  # (key, takes many)
HELP_FLAGS = ("--help", "-h")
HYDRA_ONLY_FLAGS = ("--hydra-help", "--cfg", "-c", "--info", "-i")  # Hydra answers these; no task runs
COMPLETION_FLAGS = ("-sc", "--shell-completion")


EXAMPLES = [
    ("annkit train", "the default recipe: Fashion-MNIST, an MLP 784-1024-1024-10, 30 epochs"),
    ("annkit train dataset=xor", "XOR's truth table (also dataset=logic, dataset=playground, dataset=iris)"),
    ("annkit train model=logistic trainer.epochs=5", "softmax regression"),
    ("annkit train -m model.activation=relu,tanh", "a sweep: one run per value, ranked at the end"),
    ("annkit train -m hparams_search=optuna", "an Optuna search: lr, width, depth, dropout, activation"),
    ("annkit lr-find optimizer=sgd", "find a learning rate (plot, suggestion, band)"),
    ("annkit train optimizer.lr=auto", "run the LR finder first, then train at its suggestion"),
    (
        "annkit train resume=outputs/train/runs/<time>",
        "go on with a stopped run (Ctrl-C saves it), exactly where it stopped",
    ),
    (
        "annkit train model.init_from=<checkpoint> model.freeze=[0]",
        "fine-tune: start from a run's weights, first layer fixed",
    ),
    ("annkit train experiment=xor_tanh", "an experiment from the slides (configs/experiment/)"),
    (
        "annkit train dataset=csv dataset.path=example:iris.csv dataset.target=species",
        "a table (here Fisher's iris, shipped with annkit)",
    ),
    ("annkit eval checkpoint=<run dir>/checkpoints/best.safetensors", "score a checkpoint on its test split"),
    ("annkit predict checkpoint=<file> input=photos/", "predict images (or a CSV) → predictions.csv"),
    ("annkit show outputs/train/runs/<time>", "a trained network's pictures as PNGs: unit maps, diagram, weights"),
    ("annkit export checkpoint=outputs/train/runs/<time>", "the model as ONNX, preprocessing inside, verified"),
    ("annkit compare outputs/train/multiruns/<time>", "a sweep's runs side by side: the keys that differ, metrics"),
    ("annkit board", "TensorBoard on every run under outputs/, at http://127.0.0.1:6006/ (port=0: any free port)"),
    ("annkit train --help", "that subcommand's config groups and every key, with its default and meaning"),
    ("annkit train --cfg job", "print the composed config and exit"),
    ('eval "$(annkit -sc install=bash)"', "tab completion of subcommands, groups and keys in bash"),
]


def print_help() -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    width = console.width

    def rows(items: list[tuple[str, str]], gap: int) -> None:
        """Each (left, right) on one line when both fit, else the left on its line and the right indented below."""
        left_width = max(len(left) for left, _ in items)
        for left, right in items:
            if left_width + gap + len(right) <= width:
                console.print(Text(left.ljust(left_width + gap), style="bold cyan") + Text(right), soft_wrap=True)
            else:
                console.print(Text(left, style="bold cyan"), soft_wrap=True)  # a command: whole, on its own line
                console.print(Text(textwrap.fill(right, width, initial_indent="    ", subsequent_indent="    ")))

    console.print(
        Text.from_markup(f"[bold]annkit[/] {__version__} — train and understand neural networks from config files.\n")
    )
    console.print(
        Text(
            textwrap.fill(
                "Usage: annkit <subcommand> [key=value ...] [group=option ...] [-m] [--cfg job] [--help]", width
            )
        )
    )
    console.print("\nSubcommands:")
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(overflow="fold")
    for name, (_, _, text) in SUBCOMMANDS.items():
        grid.add_row(name, text)
    console.print(grid)
    console.print("\nExamples:")
    rows(EXAMPLES, 2)
    console.print(
        Text(
            "\n"
            + textwrap.fill(
                "Runs are written to outputs/<subcommand>/runs/<time>/; view them with "
                "`annkit board` (TensorBoard on outputs/).",
                width,
            )
        )
    )


def check_output_dir(line: CommandLine) -> None:
    """Refuse, before Hydra makes the run dir, an output folder that cannot be created or written."""
    target = (fixed_dir(line, "hydra.sweep.dir" if line.multirun else "hydra.run.dir") or Path("outputs")).absolute()
    probe = target
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.is_dir() and os.access(probe, os.W_OK | os.X_OK):
        return
    why = f"{probe} is a file, not a folder" if probe.exists() and not probe.is_dir() else f"{probe} is not writable"
    raise AnnkitError(
        f"annkit cannot write its run to {target}: {why}. Nothing was run. Run annkit from a folder you can write to "
        f"(runs go to ./outputs/), or pick one with hydra.run.dir=<folder> (hydra.sweep.dir=<folder> for -m)."
    )


def protect_run_dir(name: str, module: Any, line: CommandLine) -> None:
    """A run never lands in a folder that holds another (a resumed run goes on in its own)."""
    if line.value("resume") is not None:
        return
    key = getattr(module, "OVERWRITE_KEY", "trainer.overwrite")
    folder = fixed_dir(line, "hydra.sweep.dir" if line.multirun else "hydra.run.dir")
    if folder is None:
        return
    moved = protect(folder, task=name, sweep=line.multirun, overwrite=line.value(key) is True, overwrite_key=key)
    if moved is not None:
        print_error(
            f"{key}=true: the {'sweep' if line.multirun else 'run'} that was in {folder} is now in {moved} "
            f"(moved, not deleted).",
            label="note",
        )


def preflight(name: str, module: Any, args: list[str]) -> list[str]:
    """What the command line can be checked for before Hydra makes a folder or reads a file: its words
    in Hydra's grammar, its group options and keys, its config folders, and where its run goes."""
    line = read(name, args)
    for folder in line.config_dirs:
        check_config_dir(folder)
    check_groups(name, line)
    args = getattr(module, "prepare_argv", lambda a: a)(args)  # e.g. train's resume=
    line = read(name, args)
    check_keys(name, line)
    if getattr(module, "WRITES_RUN_DIR", True):
        check_output_dir(line)
        protect_run_dir(name, module, line)
    return args


def hydra_app(name: str) -> Callable[[], Any]:
    """Subcommand ``name`` as a Hydra application (``-m``, ``--cfg``, ``--config-dir``, completion …) whose
    task function imports the task's module only when Hydra calls it."""
    import hydra

    module, config, _ = SUBCOMMANDS[name]

    def task(cfg: Any) -> Any:
        try:
            return importlib.import_module(module).run(cfg)
        except SystemExit as stop:
            writes = getattr(sys.modules.get(module), "WRITES_RUN_DIR", True)
            if stop.code == EXIT_USAGE and writes:  # refused before any work: the run dir Hydra made holds nothing
                from hydra.core.hydra_config import HydraConfig

                hc = HydraConfig.get()
                discard_if_unused(Path(hc.runtime.output_dir), f"{hc.job.name}.log")
            raise

    return hydra.main(version_base=None, config_path="pkg://annkit.configs", config_name=config)(task)


def positional(name: str, args: list[str]) -> list[str]:
    """A subcommand's bare word (no ``=``, not a flag) as its key's override, quoted for Hydra's grammar."""
    key, many = POSITIONAL.get(name, (None, False))
    bare = [a for a in args if "=" not in a and not a.startswith("-")]
    if key is None or not bare:
        return args
    if many:
        return [*(a for a in args if a not in bare), override(key, bare)]
    if len(bare) > 1:
        raise AnnkitError(
            f"annkit {name} takes one {key} as a bare word, but got {len(bare)}: {', '.join(bare)}. Give one, e.g. "
            f"annkit {name} {bare[0]}, and other settings as key=value."
        )
    return [override(key, a) if a == bare[0] else a for a in args]


def run_subcommand(name: str, args: list[str]) -> None:
    module, config, _ = SUBCOMMANDS[name]
    if not config:  # not a Hydra app: it reads its own words (annkit autodiff)
        if not any(a in COMPLETION_FLAGS for a in args):
            importlib.import_module(module).main(args)
        return
    with user_errors():
        args = positional(name, args)
    if any(a in HELP_FLAGS for a in args):
        with user_errors():
            print_task_help(name, SUBCOMMANDS[name][1], [a for a in args if a not in HELP_FLAGS])
        return
    if any(a in ("-V", "--version") for a in args):
        print_versions()
        return
    if not any(a in HYDRA_ONLY_FLAGS or a in COMPLETION_FLAGS for a in args):
        module = importlib.import_module(SUBCOMMANDS[name][0])
        with user_errors():
            args = preflight(name, module, args)
    sys.argv = [sys.argv[0], *args]
    hydra_app(name)()


def print_versions() -> None:
    """annkit's version, and those of the libraries it runs on (read from their metadata: nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    def of(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "not installed"

    print(f"annkit {__version__} (torch {of('torch')}, hydra-core {of('hydra-core')}, Python {sys.version.split()[0]})")


def complete(args: list[str]) -> None:
    """``annkit -sc …`` without a subcommand: install scripts, or complete a typed line."""
    line = os.environ.get("COMP_LINE")
    if line is None or not any(a.startswith("query=") for a in args):
        run_subcommand("train", args)  # `install=bash` etc.: the script is the same for every subcommand
        return
    words = line.split()
    typing_subcommand = len(words) == 1 or (len(words) == 2 and not line.endswith(" "))
    if typing_subcommand:
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(n for n in SUBCOMMANDS if n.startswith(prefix)))
        return
    if words[1] not in SUBCOMMANDS:
        return
    os.environ["COMP_LINE"] = " ".join([words[0], *words[2:]]) + (" " if line.endswith(" ") else "")
    run_subcommand(words[1], args)


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print_help()
        sys.exit(EXIT_USAGE)
    first = args[0]
    if first in ("-h", "--help", "help"):
        print_help()
        return
    if first in ("-V", "--version"):
        print_versions()
        return
    if first in COMPLETION_FLAGS:
        complete(args)
        return
    if first not in SUBCOMMANDS:
        print_error(
            f'"{first}" is not an annkit subcommand.{did_you_mean(first, SUBCOMMANDS)} '
            f"Valid subcommands: {', '.join(SUBCOMMANDS)}. Put the subcommand first, then the "
            f"overrides: annkit train optimizer.lr=3e-3. `annkit --help` lists what each one does."
        )
        sys.exit(EXIT_USAGE)
    run_subcommand(first, args[1:])
