"""A logic gate's truth table as the network computes it: for each of the four input pairs, the output neuron's
weighted sum z, the network's output (1 when z > 0: the step of the output neuron, which is also the bce head's
σ(z) > 0.5) and the gate's target — in the result panel and metrics.json (``truth_table``) of ``dataset=logic`` and
``dataset=xor`` runs.
"""

from __future__ import annotations

from typing import Any

import torch

from annkit.head import Head
from annkit.models import MLP, eval_mode


@torch.no_grad()
def truth_rows(model: MLP, head: Head, x: torch.Tensor, y: torch.Tensor) -> list[dict[str, Any]]:
    """One row per input pair of ``x`` (the validation split of a logic dataset: the four exact pairs)."""
    with eval_mode(model):
        z = model(x.float())
    predicted = head.predict(z)
    rows = []
    for inputs, out, pred, target in zip(x.tolist(), z.tolist(), predicted.tolist(), y.tolist()):
        row: dict[str, Any] = {"inputs": [round(v) if float(v).is_integer() else v for v in inputs]}
        if head.single_output:
            row["z"] = out[0]
        row.update(output=int(pred), target=int(target))
        rows.append(row)
    return rows


def truth_parts(rows: list[dict[str, Any]] | None) -> list[Any]:
    """The result panel's truth table (nothing when the run has none)."""
    if not rows:
        return []
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, header_style="bold", pad_edge=False)
    has_z = "z" in rows[0]
    for header in ("A", "B", *(["z"] if has_z else []), "output", "target", ""):
        table.add_column(header, justify="right")
    for row in rows:
        mark = "✓" if row["output"] == row["target"] else "✗"
        cells = [str(v) for v in row["inputs"]] + ([f"{row['z']:+.3g}"] if has_z else [])
        table.add_row(*cells, str(row["output"]), str(row["target"]), mark)
    right = sum(r["output"] == r["target"] for r in rows)
    title = f"truth table: {right} of {len(rows)} right" + (" (output 1 when z > 0)" if has_z else "")
    return [Text(title, style="bold"), table]
