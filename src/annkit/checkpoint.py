"""Checkpoints: one safetensors file of weights and training state, with JSON metadata, written atomically.

A checkpoint is one ``.safetensors`` file. Its tensors are

- the model's ``state_dict`` under its own keys (``layers.1.weight`` …), so any safetensors
  reader gets the weights as they are;
- with the training state (every checkpoint ``annkit train`` writes), tensors under ``state/``:
  the optimizer's buffers, the RNG states, the current epoch's permutation, the running sums
  and the best epoch's weights — see :func:`encode`.

The header metadata key ``annkit`` holds JSON (through :func:`encode`): format, annkit version, epoch, step, metrics, the
resolved config, the overrides the run was started with, the data's task, class names, input
shape and preprocessing, and the JSON half of the training state. Loading never executes code:
safetensors holds raw tensors and the rest is JSON.

Writes go to a temporary file in the same folder, are fsync'ed and renamed over the target
(then the folder is fsync'ed), so a crash mid-write leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save

from annkit import __version__
from annkit.commands import command, override, shown
from annkit.errors import AnnkitError
from annkit.fit_state import FitState
from annkit.head import output_width
from annkit.loop import Hook
from annkit.memory import check_fits, widths_of
from annkit.models import MLP, describe_model
from annkit.records import MAX_DEPTH, atomic_write_bytes, too_deep
from annkit.trust import check_meta

FORMAT = "annkit.checkpoint/2"
READABLE = ("annkit.checkpoint/1", FORMAT)  # /1: weights and meta only (no training state)
META_KEY = "annkit"
STATE = "state/"  # prefix of the training-state tensors


# ── training state: a tree of dicts / lists / numbers / strings / tensors, split into JSON + tensors ──


PLAIN = frozenset({bool, int, float, str, type(None)})


def _plain(v: bool | int | float | str | None) -> Any:
    return {"__float__": repr(v)} if type(v) is float and not math.isfinite(v) else v


def encode(tree: Any, tensors: dict[str, torch.Tensor], path: str = STATE) -> Any:
    """``tree`` as JSON-able data; each tensor is moved into ``tensors`` under a key from its path and
    replaced by ``{"__tensor__": key}``. Dicts with non-string keys (the optimizer's parameter
    indices) become ``{"__items__": [[key, value], …]}`` so their keys come back as they were."""
    if isinstance(tree, torch.Tensor):
        tensors[path] = tree.detach().to("cpu").contiguous()
        return {"__tensor__": path}
    if isinstance(tree, dict):
        if all(type(k) is str and type(v) in PLAIN for k, v in tree.items()):  # a history row: no recursion
            return {k: _plain(v) for k, v in tree.items()}
        if all(isinstance(k, str) for k in tree):
            return {k: encode(v, tensors, f"{path}{k}/") for k, v in tree.items()}
        return {"__items__": [[k, encode(v, tensors, f"{path}{k}/")] for k, v in tree.items()]}
    if isinstance(tree, (list, tuple)):
        if all(type(v) in PLAIN for v in tree):  # a random state's 625 integers: no recursion
            return [_plain(v) for v in tree]
        return [encode(v, tensors, f"{path}{i}/") for i, v in enumerate(tree)]
    if tree is None or isinstance(tree, (bool, int, str)):
        return tree
    if isinstance(tree, float):
        return tree if math.isfinite(tree) else {"__float__": repr(tree)}
    if type(tree).__module__ == "numpy":
        return encode(tree.tolist(), tensors, path)
    raise TypeError(f"cannot store a {type(tree).__name__} in a checkpoint ({path})")


def decode(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The inverse of :func:`encode`."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__items__" in tree:
            return {k: decode(v, tensors) for k, v in tree["__items__"]}
        if "__float__" in tree:
            return float(tree["__float__"])
        return {k: decode(v, tensors) for k, v in tree.items()}
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    return tree


def serialize_checkpoint(model_state: dict[str, torch.Tensor], meta: dict[str, Any], state: Any = None) -> bytes:
    """The bytes of a checkpoint file: the model's tensors (moved to CPU), ``meta`` and, optionally,
    the training ``state`` (see :func:`encode`)."""
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model_state.items()}
    clash = [k for k in tensors if k.startswith(STATE)]
    if clash:
        raise ValueError(f"model keys may not start with {STATE!r}: {clash[:3]}")
    header = {"format": FORMAT, "annkit_version": __version__, **meta}
    if state is not None:
        header["state"] = state
    return save(tensors, metadata={META_KEY: json.dumps(encode(header, tensors), allow_nan=False)})


def save_checkpoint(path: Path, model_state: dict[str, torch.Tensor], meta: dict[str, Any], state: Any = None) -> Path:
    """Write a checkpoint to ``path`` atomically."""
    atomic_write_bytes(Path(path), serialize_checkpoint(model_state, meta, state))
    return Path(path)


@dataclass
class Checkpoint:
    path: Path
    model: dict[str, torch.Tensor]  # the weights, under the model's state_dict keys
    meta: dict[str, Any]
    state: Any = None  # the decoded training state, when asked for and present
    has_state: bool = False  # the file holds a training state (last.safetensors; not best.safetensors)

    @property
    def run_dir(self) -> Path | None:
        """The run dir the checkpoint belongs to (``<run>/checkpoints/<name>.safetensors``)."""
        return self.path.parent.parent if self.path.parent.name == "checkpoints" else None


def _not_a_checkpoint(path: Path, why: str) -> AnnkitError:
    return AnnkitError(
        f"{path} is not an annkit checkpoint: {why}. annkit loads only the .safetensors files its runs write "
        f"(<run dir>/checkpoints/last.safetensors or best.safetensors); it never unpickles files (a pickle, e.g. a "
        f"torch.save .pt/.pth file, can run code when loaded). Point at a run's checkpoint, or convert your weights "
        f"with safetensors.torch.save_file."
    )


def peek(path: Path | str) -> Checkpoint:
    """A checkpoint's metadata alone (no tensors read), with the errors of :func:`load_checkpoint`."""
    return load_checkpoint(path, weights=False)


def load_checkpoint(
    path: Path | str, device: str | torch.device = "cpu", *, state: bool = False, weights: bool = True
) -> Checkpoint:
    """The checkpoint at ``path`` (weights on ``device``; the training state too when ``state``), or a
    clear :class:`AnnkitError` for a missing, truncated or foreign file. Never executes code."""
    path = Path(path)
    if path.is_dir():
        best = path / "best.safetensors" if path.name == "checkpoints" else path / "checkpoints" / "best.safetensors"
        raise AnnkitError(
            f"{shown(path)} is a folder; give a checkpoint file, e.g. {shown(best)}"
            + (" (this folder has one)." if best.is_file() else ".")
        )
    if not path.is_file():
        raise AnnkitError(
            f"No checkpoint at {shown(path)}. Give the path of a .safetensors file written by annkit, e.g. "
            f"outputs/train/runs/<time>/checkpoints/best.safetensors (`ls outputs/train/runs` lists the runs)."
        )
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            header = f.metadata() or {}
            keys = list(f.keys())
            model = {k: f.get_tensor(k) for k in keys if not k.startswith(STATE)} if weights else {}
            extra = {k: f.get_tensor(k) for k in keys if k.startswith(STATE)} if state else {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        size = path.stat().st_size
        raise _not_a_checkpoint(
            Path(shown(path)),
            f"it is not a readable safetensors file ({size:,} bytes; {err}); it may be "
            f"truncated (a copy cut short) or of another format",
        ) from None
    if META_KEY not in header:
        raise _not_a_checkpoint(
            Path(shown(path)), f"it is a safetensors file but has no '{META_KEY}' metadata (another tool wrote it)"
        )
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as err:
        raise _not_a_checkpoint(Path(shown(path)), f"its '{META_KEY}' metadata is not valid JSON ({err})") from None
    except RecursionError:
        meta = None  # nested past Python's limit: refused just below
    if not isinstance(meta, dict) or too_deep(meta):
        raise _not_a_checkpoint(
            Path(shown(path)),
            f"its '{META_KEY}' metadata is not a JSON object of at most {MAX_DEPTH} levels, as annkit writes it",
        )
    if meta.get("format") not in READABLE:
        raise AnnkitError(
            f"{shown(path)} has checkpoint format {meta.get('format')!r} (annkit {meta.get('annkit_version')}); this annkit "
            f"({__version__}) reads {', '.join(READABLE)}. Use the annkit version that wrote it."
        )
    saved_state = meta.pop("state", None)
    meta = decode(meta, {})
    check_meta(meta, shown(path))  # the trust boundary: nothing of it is used before this
    return Checkpoint(
        path=path,
        model=model,
        meta=meta,
        has_state=saved_state is not None,
        state=decode(saved_state, extra) if state and saved_state is not None else None,
    )


# ── matching weights to a model ─────────────────────────────────────────────────────────────────


@dataclass
class Match:
    """How a checkpoint's tensors line up with a model's, name by name."""

    loaded: list[str]  # same name, same shape
    missing: list[str]  # in the model, not in the checkpoint
    unexpected: list[str]  # in the checkpoint, not in the model
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (name, checkpoint shape, model shape)

    @property
    def exact(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)


def match_state(model_state: dict[str, torch.Tensor], saved: dict[str, torch.Tensor]) -> Match:
    loaded, mismatched = [], []
    for name, tensor in model_state.items():
        if name in saved:
            if tuple(saved[name].shape) == tuple(tensor.shape):
                loaded.append(name)
            else:
                mismatched.append((name, tuple(saved[name].shape), tuple(tensor.shape)))
    return Match(
        loaded=loaded,
        missing=[k for k in model_state if k not in saved],
        unexpected=[k for k in saved if k not in model_state],
        mismatched=mismatched,
    )


def shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(map(str, shape)) or "scalar"


def describe_mismatch(match: Match, limit: int = 4) -> str:
    """'shapes differ: layers.1.weight 64×784 in the checkpoint vs 1024×784 here; missing: …; unexpected: …'."""
    parts = []
    if match.mismatched:
        shown_ = [
            f"{n} {shape_text(a)} in the checkpoint vs {shape_text(b)} here" for n, a, b in match.mismatched[:limit]
        ]
        more = len(match.mismatched) - limit
        parts.append("shapes differ: " + ", ".join(shown_) + (f" (and {more} more)" if more > 0 else ""))
    for label, names in (("missing from the checkpoint", match.missing), ("not in this model", match.unexpected)):
        if names:
            more = len(names) - limit
            parts.append(f"{label}: " + ", ".join(names[:limit]) + (f" (and {more} more)" if more > 0 else ""))
    return "; ".join(parts)


def model_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a checkpoint's network (``MLP(**spec)``). Checkpoints store them since issue 16;
    for one written before, the same arguments are read, once and here only, from the config keys it kept."""
    if "model" in meta:
        return meta["model"]
    model, data = meta["config"]["model"], meta["data"]
    return {
        "in_features": math.prod(data["input_shape"]), "hidden": list(model["hidden"]),
        "out_features": output_width(data["task"], len(data["classes"]), meta["config"]["loss"]["name"]),
        "activation": model.get("activation", "relu"), "dropout": model.get("dropout", 0.0), "norm": model.get("norm", "none"),
        "input_dropout": model.get("input_dropout", 0.0),  # MLP's defaults, for keys older runs did not have
    }  # fmt: skip


def head_spec(meta: dict[str, Any]) -> dict[str, Any]:
    """The constructor arguments of a checkpoint's head (``Head(**spec, device=…)``); for a checkpoint written
    before issue 16, read from its config's loss and its data section."""
    if "head" in meta:
        return meta["head"]
    loss, data = meta["config"]["loss"], meta["data"]
    return {"task": data["task"], "names": list(data["classes"]), "loss": loss["name"], "output": data["output_activation"],
            "label_smoothing": loss.get("label_smoothing", 0.0), "pos_weight": loss.get("pos_weight")}  # fmt: skip


def architecture(meta: dict[str, Any]) -> str:
    """'MLP 784 → 64 → 10 (relu, batch norm)': a checkpoint's network, described as every header describes one."""
    return describe_model(model_spec(meta))


def model_from_meta(meta: dict[str, Any]) -> MLP:
    """The untrained network a checkpoint's metadata describes."""
    return MLP(**model_spec(meta))


def load_strict(model: torch.nn.Module, ckpt: Checkpoint, what: str) -> None:
    """Load every weight of ``ckpt`` into ``model``, or explain in one paragraph which tensors do not fit."""
    match = match_state(model.state_dict(), ckpt.model)
    if not match.exact:
        raise AnnkitError(
            f"{ckpt.path} does not fit {what}: {describe_mismatch(match)}. The checkpoint holds a "
            f"{architecture(ckpt.meta)}. Use a checkpoint of the same architecture, or, to start a new run from "
            f"the weights that do fit, model.init_from=<checkpoint> (it loads the matching tensors and lists the rest)."
        )
    model.load_state_dict(ckpt.model)


def resolve_checkpoint(path: Path) -> Path:
    """A run dir's best checkpoint (its last when it has no best), or the checkpoint given."""
    if path.is_dir():
        for name in ("best", "last"):
            candidate = path / "checkpoints" / f"{name}.safetensors"
            if candidate.is_file():
                return candidate
        raise AnnkitError(
            f"{path} is a folder without checkpoints/best.safetensors or checkpoints/last.safetensors, so it is not "
            f"an annkit training run (or the run wrote no checkpoint yet). Give a run dir of `annkit train` "
            f"(outputs/train/runs/<time>) or a .safetensors file."
        )
    if not path.exists():
        raise AnnkitError(f"{path} does not exist. Give a run dir of `annkit train` or a .safetensors checkpoint.")
    return path


def load_model(path: Path | str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Checkpoint]:
    """The trained network of a checkpoint, on ``device``, in eval mode, plus the checkpoint."""
    ckpt = load_checkpoint(path, device)
    if "config" not in ckpt.meta or not {"preprocessing", "output_activation"} <= set(ckpt.meta.get("data", {})):
        raise _not_a_checkpoint(ckpt.path, "its metadata lacks the config and data sections a run writes")
    spec = model_spec(ckpt.meta)
    widths = widths_of(spec["in_features"], spec["hidden"], spec["out_features"])
    check_fits(widths, torch.device(device), norm=False, batch=1, eval_batch=1, slots=None, what=f"The model of {path}")
    model = model_from_meta(ckpt.meta).to(device)
    load_strict(model, ckpt, f"the {architecture(ckpt.meta)} its own metadata describes (the file was edited)")
    return model.eval(), ckpt


def write_or_explain(path: Path, data: bytes) -> None:
    """:func:`atomic_write_bytes`, with a disk or permission failure turned into one paragraph."""
    try:
        atomic_write_bytes(path, data)
    except OSError as err:
        raise AnnkitError(
            f"Could not write {path}: {err.strerror or err} (errno {err.errno}). The file it would replace, if any, is "
            f"whole (writes go to a temporary file that is renamed only once complete). Free disk space or fix the "
            f"folder's permissions, then go on with `{command('train', override('resume', str(path.parent.parent)))}`."
        ) from None


class Checkpointer(Hook):
    """The run's checkpoints in ``folder``:

    - ``last.safetensors``: weights + the whole training state, after every epoch, every
      ``trainer.checkpoint.every_n_steps`` steps (``on_save_point``) and when a signal stops the
      run (:meth:`save`); ``annkit train resume=`` goes on from it;
    - ``best.safetensors``: the weights of the best epoch so far (no training state: it is for
      eval, predict, fine-tuning and sharing), written before ``last`` when the metric improves;
    - ``step-<step>.safetensors``: copies of the ``keep_last`` most recent ``last`` files.

    ``capture()`` returns the training state (optimizer, scheduler, RNGs, the loop's
    :class:`~annkit.fit_state.FitState`); ``state`` is that same FitState, read for the epoch and step.
    """

    def __init__(
        self,
        folder: Path,
        model: torch.nn.Module,
        meta: dict[str, Any],
        capture: Callable[[], dict[str, Any]],
        state: FitState,
        *,
        keep_last: int = 0,
    ) -> None:
        self.folder, self.model, self.meta, self.capture, self.state = Path(folder), model, meta, capture, state
        self.keep_last = keep_last

    def _meta(self, **where: Any) -> dict[str, Any]:
        return {**self.meta, **where}

    def save(self) -> Path:
        """Write ``last`` (and its kept copy) for the state as it is now, between two steps."""
        st = self.state
        meta = self._meta(epoch=st.epoch, step=st.step, batch=st.batch, metrics=st.history[-1] if st.history else {})
        data = serialize_checkpoint(self.model.state_dict(), meta, self.capture())
        last = self.folder / "last.safetensors"
        write_or_explain(last, data)
        if self.keep_last:
            write_or_explain(self.folder / f"step-{st.step:08d}.safetensors", data)
            for old in sorted(self.folder.glob("step-*.safetensors"))[: -self.keep_last]:
                old.unlink()
        return last

    def on_epoch_end(self, row: dict[str, float], *, is_best: bool) -> None:
        if is_best:
            meta = self._meta(epoch=int(row["epoch"]), step=int(row["step"]), batch=0, metrics=row)
            write_or_explain(self.folder / "best.safetensors", serialize_checkpoint(self.model.state_dict(), meta))
        self.save()

    def on_save_point(self, step: int) -> None:
        self.save()

    def on_fit_start(self, *, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = epochs

    def on_fit_end(self) -> None:
        """A run of trainer.epochs=0 trained nothing: its given (or initial) weights are its best and its last."""
        if getattr(self, "epochs", None) == 0 and self.state.step == 0:
            meta = self._meta(epoch=0, step=0, batch=0, metrics={})
            write_or_explain(self.folder / "best.safetensors", serialize_checkpoint(self.model.state_dict(), meta))
            self.save()
