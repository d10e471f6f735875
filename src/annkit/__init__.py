"""annkit: train and understand neural networks from config files.

From Python (:mod:`annkit.api`): ``annkit.train(*overrides)`` → :class:`~annkit.api.Run`,
``annkit.lr_find(*overrides)`` → :class:`~annkit.api.LRFind`, ``annkit.load(checkpoint)`` → :class:`~annkit.api.Model`
(``.predict``, ``.evaluate``), ``annkit.evaluate(checkpoint, *overrides)``, ``annkit.show(run)`` (the pictures of a network as PNGs; ``Run.pictures()``
and ``Model.pictures()`` as Figures), ``annkit.load_data(*overrides)``, ``annkit.compose(*overrides)`` → the
config; ``annkit.AnnkitError`` for every refusal. They are imported on first use, so ``import annkit`` (and the CLI's
``--help``) stays free of torch."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["AnnkitError", "LRFind", "Model", "Prediction", "Run", "__version__", "autodiff", "compose", "evaluate", "load",
           "load_data", "lr_find", "show", "train"]  # fmt: skip

_API = {name: "annkit.api" for name in __all__ if name not in ("AnnkitError", "__version__")}
_API["AnnkitError"] = "annkit.errors"


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'annkit' has no attribute {name!r}")
