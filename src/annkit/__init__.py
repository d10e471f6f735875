"""annkit: train and understand neural networks from config files.

From Python: ``annkit.train(*overrides)`` → :class:`annkit.api.Run`, ``annkit.compose(*overrides)`` → the config,
``annkit.AnnkitError`` for every refusal. They are imported on first use, so ``import annkit`` (and the CLI's
``--help``) stays free of torch."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["AnnkitError", "Run", "__version__", "compose", "train"]

_API = {"compose": "annkit.api", "train": "annkit.api", "Run": "annkit.api", "AnnkitError": "annkit.errors"}


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'annkit' has no attribute {name!r}")
