"""Resume: which checkpoint ``resume=`` means, the command line that goes on with its run, and the
config a resumed run may train with. Plain functions of paths, checkpoints and config dicts;
:mod:`annkit.tasks.train` wires them in (its ``prepare_argv`` is this module's)."""

from __future__ import annotations

import copy
import inspect
from pathlib import Path
from typing import Any

from hydra.errors import HydraException
from hydra.utils import get_class

from annkit.checkpoint import Checkpoint, load_checkpoint, peek
from annkit.commands import command, override, shown
from annkit.config import flatten, portable, validate
from annkit.data import check_same_file
from annkit.errors import AnnkitError
from annkit.overrides import key_of, read
from annkit.trust import replayable

FILE_KEYS = (
    "dataset.path",
    "dataset.train",
    "dataset.val",
    "dataset.test",
    "dataset.sample_weight",
)  # may move, as the same bytes

# Config keys a resumed run may change: where the data lives, the device, and how the run is watched
# and saved. Everything else (model, data, loss, optimizer, schedule, seed, batch size …) is the
# checkpoint's: changing it would not continue the run but start another.
# keys added after runs were made: a run whose config lacks one ran as the key's default does
ADDED_SINCE: dict[str, Any] = {"model.weights": None, "optimizer.rule": "backprop"}
RESUME_MAY_CHANGE = (
    "resume",
    "trainer.epochs",
    "trainer.device",
    "trainer.eval_batch_size",
    "trainer.log_every",
    "trainer.print_every",
    "trainer.nan_policy",
    "trainer.compile",
    "trainer.overwrite",
    "trainer.checkpoint.",
    "trainer.early_stopping.patience",
    "trainer.early_stopping.min_delta",
    "scheduler.if_too_short",
    "dataset.root",
    "dataset.search",
    "dataset.download",
    "dataset.verify",
    "lr_find.",
    "logger.",
)


def resume_checkpoint(value: str) -> Path:
    """The checkpoint that ``resume=<value>`` means: ``<run dir>/checkpoints/last.safetensors`` for a
    run dir, else the file itself, which must be the newest resumable checkpoint of its run."""
    path = Path(value)
    if not path.exists():
        raise AnnkitError(
            f"resume={value}: there is no such run dir or checkpoint file. Give the run dir of the run to go on with, "
            f"e.g. resume=outputs/train/runs/<time> (`ls outputs/train/runs` lists them; a stopped run printed its own "
            f"resume command), or its checkpoints/last.safetensors."
        )
    if path.is_dir():
        folder = path if path.name == "checkpoints" else path / "checkpoints"
        path = folder / "last.safetensors"
        if not path.is_file():
            raise AnnkitError(
                f"resume={value}: there is no {path}. "
                + (
                    "The run stopped before it saved anything (its first checkpoint comes at the end of epoch 1, or "
                    "after trainer.checkpoint.every_n_steps steps); start it again. "
                    if folder.is_dir() or (Path(value) / ".hydra").is_dir()
                    else "That folder is not an annkit run dir (no checkpoints/ in it). "
                )
                + "Give a run dir such as outputs/train/runs/<time> (`ls outputs/train/runs`), or its checkpoints/last.safetensors."
            )
    found = peek(path)  # refuses missing, truncated, pickled and foreign files
    meta = found.meta
    if not found.has_state:
        raise AnnkitError(
            f"resume={value}: {path.name} holds weights only, not a training state (best.safetensors is written for "
            f"eval, predict and fine-tuning). Resume from the run dir or its checkpoints/last.safetensors; to train "
            f"further from these weights in a new run: `{command('train', override('model.init_from', value))}`."
        )
    if path.parent.name != "checkpoints":
        raise AnnkitError(
            f"resume={value}: a run goes on in its own run dir, and this checkpoint is not in one (<run dir>/checkpoints/). "
            f"Resume from the run dir, or start a new run from its weights: `{command('train', override('model.init_from', value))}`."
        )
    last = path.parent / "last.safetensors"
    newest = peek(last).meta["step"] if path.name != "last.safetensors" and last.is_file() else meta["step"]
    if newest > meta["step"]:
        raise AnnkitError(
            f"resume={value}: the run went on past this checkpoint (step {meta['step']}) to step {newest} "
            f"(last.safetensors); resuming here would rewrite what it did since. Resume the run dir (its last state), or "
            f"start a new run from these weights: `{command('train', override('model.init_from', value))}`."
        )
    return path


def prepare_argv(args: list[str]) -> list[str]:
    """``annkit train resume=<run dir | checkpoint> [overrides]``: the command line that goes on with
    that run. The run's own overrides (kept in its checkpoint, each checked by
    :func:`annkit.trust.replayable` as if typed here) come first, so Hydra composes the same config;
    the new ones follow and replace those of the same key. Data is never downloaded because of what
    the checkpoint says (``dataset.download=false`` unless this command line sets it). The whole is
    composed and validated before Hydra runs. The run dir is the checkpoint's, and Hydra's record
    of this invocation goes to ``.hydra/resume-<n>/`` so that the run's original ``.hydra/`` stays
    as it was."""
    given = [a for a in args if key_of(a) == "resume" and "=" in a and not a.startswith("-")]
    if not given or read("train", given[-1:]).value("resume") in (None, ""):
        return args
    if any(a in ("-m", "--multirun") for a in args):
        raise AnnkitError(
            "resume= goes on with one run in its own run dir and cannot be part of a sweep (-m). Resume the sweep's "
            "runs one at a time: `annkit train resume=<sweep dir>/<job number>`."
        )
    value = str(read("train", given[-1:]).value("resume"))
    path = resume_checkpoint(value).resolve()
    meta = peek(path).meta
    rest = [a for a in args if a not in given]
    line = read("train", rest)
    replaced = {o.key_or_group for o in line.parsed}
    original = [o for o in replayable(meta.get("overrides"), path) if key_of(o) not in replaced]
    if "download" in meta.get("config", {}).get("dataset", {}) and "dataset.download" not in replaced:
        # the data was there when the run started: fetch it only if this command line asks
        original = [o for o in original if key_of(o) != "dataset.download"]
        original.append("dataset.download=false")
    if not line.config_dirs:  # (with --config-dir, Hydra composes and train() validates, as for any run)
        check_composes(path, [*original, *line.words])
    n = len(meta.get("resumed", [])) + 1
    return [
        *original,
        *rest,
        override("resume", str(path)),
        override("hydra.run.dir", str(path.parent.parent)),
        f"hydra.output_subdir=.hydra/resume-{n}",
    ]


def check_composes(path: Path, words: list[str]) -> None:
    """The run's overrides and the new ones compose into a valid train config (before Hydra runs)."""
    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module(config_module="annkit.configs", version_base=None):
            cfg = compose(config_name="train", overrides=words)
    except HydraException as err:
        raise AnnkitError(
            f"resume={shown(path)}: the run's settings (from its checkpoint) and this command line's do not compose: "
            f"{str(err).strip().splitlines()[0]} Check the overrides you added; `annkit train --help` lists the keys."
        ) from None
    try:
        validate(cfg)
    except AnnkitError as err:
        raise AnnkitError(
            f"resume={shown(path)}: the run's settings (from its checkpoint) with this command line's are "
            f"not a valid config: {err}"
        ) from None


def resumed_config(now: dict[str, Any], ckpt: Checkpoint) -> dict[str, Any]:
    """The config a resumed run trains with: the checkpoint's, where only :data:`RESUME_MAY_CHANGE`
    keys may differ. ``auto`` values (optimizer.lr=auto and what interpolates it) take the number
    the run chose. Any other difference is explained and refused."""
    saved = ckpt.meta["config"]
    recorded = copy.deepcopy(saved)
    portable(recorded)  # a checkpoint of an older annkit may hold relative paths: relative to here, as it ran then
    old, new = flatten(recorded), flatten(now)
    for key, value in ADDED_SINCE.items():  # a run from before a key existed ran with what its default now says
        group, name = key.split(".")
        old.setdefault(key, flatten({group: {name: value}})[key])
    files = ckpt.meta.get("data", {}).get("files", {})
    for key in FILE_KEYS:  # a data file may move: the same bytes elsewhere
        if key in files and new.get(key) is not None and old.get(key) != new.get(key):
            check_same_file(key, new[key], files[key], "A resumed run")
            old[key] = new[key]
    differ = [
        (k, old.get(k, "(absent)"), new.get(k, "(absent)"))
        for k in sorted(set(old) | set(new))
        if old.get(k) != new.get(k) and new.get(k) != "auto" and not k.startswith(RESUME_MAY_CHANGE)
    ]
    if differ:
        listed = "; ".join(f"{k}: {a} in the run → {b} now" for k, a, b in differ[:6]) + (
            f" (and {len(differ) - 6} more)" if len(differ) > 6 else ""
        )
        raise AnnkitError(
            f"resume={shown(ckpt.path)} cannot go on with a different config: {listed}. A resumed run continues exactly "
            f"with the checkpoint's model, data, loss, optimizer and schedule; it may change only "
            f"{', '.join(k.rstrip('.') for k in RESUME_MAY_CHANGE[1:])}. To train with the new settings from these "
            f"weights, start a new run: `{command('train', override('model.init_from', shown(ckpt.path)))} <overrides>`."
        )

    def fill(node: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
        return {
            k: ref[k]
            if v == "auto" and k in ref
            else fill(v, ref[k])
            if isinstance(v, dict) and isinstance(ref.get(k), dict)
            else v
            for k, v in node.items()
        }

    resolved = fill(now, saved)
    epochs_now, epochs_then = resolved["trainer"]["epochs"], saved["trainer"]["epochs"]
    done = ckpt.meta["epoch"]
    complete = ckpt.meta["batch"] == 0 and ckpt.run_dir is not None and (ckpt.run_dir / "metrics.json").is_file()
    if epochs_now < done or (complete and epochs_now <= epochs_then):
        raise AnnkitError(
            f"resume={shown(ckpt.path)}: the run has finished {done} of {epochs_then} epochs"
            + (" (it stopped early)" if complete and done < epochs_then else "")
            + (
                " and written metrics.json: there is nothing left to do. "
                if epochs_now >= done
                else f", more than trainer.epochs={epochs_now}. "
            )
            + "To train longer, resume with a larger trainer.epochs (with scheduler=none or step), or fine-tune from its "
            f"weights in a new run: `{command('train', override('model.init_from', shown(ckpt.path)))}`."
        )
    sched = resolved["scheduler"]
    if epochs_now != epochs_then and sched.get("_target_") is not None:
        takes_length = {"total_steps", "T_max"} & set(inspect.signature(get_class(sched["_target_"])).parameters)
        if takes_length:
            raise AnnkitError(
                f"resume with trainer.epochs={epochs_now} (the run planned {epochs_then}): its {sched['_target_'].rsplit('.', 1)[-1]} "
                f"schedule was laid out over {epochs_then} epochs, so the rest of it cannot stretch to {epochs_now}. "
                f"Resume with trainer.epochs={epochs_then}, or fine-tune from the weights in a new run with its own "
                f"schedule: `{command('train', override('model.init_from', shown(ckpt.path)))} trainer.epochs=<n>`."
            )
    return resolved


def open_resume(value: str, run_dir: Path) -> Checkpoint:
    """The checkpoint of ``resume=<value>`` with its training state, checked to belong to ``run_dir``."""
    path = resume_checkpoint(value)
    ckpt = load_checkpoint(path, state=True)
    assert ckpt.run_dir is not None
    if ckpt.run_dir.resolve() != run_dir.resolve():
        raise AnnkitError(
            f"resume={value} belongs to run dir {ckpt.run_dir}, but this run writes to {run_dir}. A run goes on in its "
            f"own run dir: start it with `{command('train', override('resume', str(ckpt.run_dir)))}` (which picks that dir)."
        )
    return ckpt
