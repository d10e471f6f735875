"""``annkit autodiff '<expression>' x=3 y=4 [mode=forward|reverse|both]``: an expression's computation graph,
differentiated by hand in forward mode (dual numbers) and reverse mode (adjoints), checked against torch.autograd.

Not a Hydra app: its words are an expression and values for the expression's own variables, which no config file
can list. They are read with Hydra's override grammar all the same (``x=-1.5``, ``mode=reverse``), and every
mistake is one paragraph with exit status 2. Nothing of the expression is run as Python (:mod:`annkit.autodiff`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from rich.console import Console
from rich.table import Table
from rich.text import Text

from annkit.autodiff import Node, by_torch, forward, is_close, parse, reverse
from annkit.errors import AnnkitError, user_errors

MODES = ("forward", "reverse", "both")
TITLES = {
    "forward": "forward mode: dual numbers value + derivative·ε, one pass per variable",
    "reverse": "reverse mode: the values forward, then the adjoints ∂f/∂node backward from f̄ = 1",
}
USAGE = """annkit autodiff — differentiate an expression by hand: forward mode (dual
numbers) and reverse mode (adjoints), checked by torch.autograd.

Usage: annkit autodiff '<expression>' <name>=<number> ... [mode=both]
  annkit autodiff 'x**2*y + y + 2' x=3 y=4
      deck 001: f = 42, ∂f/∂x = 24, ∂f/∂y = 10
  annkit autodiff 'sigmoid(w*x + b)' w=0.5 x=2 b=-1 mode=reverse
  annkit autodiff 'log(exp(x) + exp(y))' x=1 y=2 mode=forward

The expression may use numbers, its variables, + - * / **, a leading minus,
and exp, log, sin, cos, tanh, sigmoid, relu of one argument. It is read with
Python's ast and a whitelist, never run. Forward mode carries a dual number
value + derivative·ε through every node, once per variable; reverse mode
computes the values, then each node's adjoint ∂f/∂node from the output back.
The last lines give f and each partial derivative beside torch.autograd's
(float64)."""


@dataclass
class Request:
    expression: str
    at: dict[str, float]
    mode: str


def read_words(args: Sequence[str]) -> Request:
    """The expression (the one word that is not name=value), the variables' values and the mode."""
    bare = [a for a in args if not _is_setting(a)]
    if len(bare) != 1:
        what = "no expression" if not bare else f"{len(bare)} expressions ({', '.join(repr(b) for b in bare)})"
        raise AnnkitError(
            f"annkit autodiff takes one expression and a value for each of its variables, but got {what}. Quote the "
            f"expression as one word: annkit autodiff 'x**2*y + y + 2' x=3 y=4."
        )
    at: dict[str, float] = {}
    mode = "both"
    parser = OverridesParser.create()
    for word in args:
        if word == bare[0]:
            continue
        try:
            override = parser.parse_overrides([word])[0]
            key, value = override.key_or_group, override.value()
        except HydraException:
            raise AnnkitError(f"{word!r} is not name=value. Give each variable a number, e.g. x=3 y=-1.5.") from None
        if key == "mode":
            if value not in MODES:
                raise AnnkitError(f"mode={value!r} is not one of {', '.join(MODES)}. Set e.g. mode=reverse.")
            mode = str(value)
        elif key.isidentifier() and isinstance(value, (int, float)) and not isinstance(value, bool):
            at[key] = float(value)
        else:
            raise AnnkitError(
                f"{word!r}: a variable needs a plain name and a number (x=3, rate=0.5), not {value!r}. The expression's "
                f"variables each need one; mode=forward|reverse|both chooses what to show."
            )
    if not at:
        raise AnnkitError(f"No variable has a value: give one to each variable of {bare[0]!r}, e.g. x=3 y=4.")
    return Request(bare[0], at, mode)


def _is_setting(word: str) -> bool:
    """A ``name=value`` word (a name, then =, not ==)."""
    name, eq, _ = word.partition("=")
    return bool(eq) and name.strip().isidentifier() and not word.startswith(name + "==")


def number(v: float) -> str:
    return "nan" if math.isnan(v) else f"{v:.10g}"


def definition(node: Node, nodes: Sequence[Node]) -> str:
    """A node's operation on the named nodes before it: ``v4 = v3 * y``, ``v5 = exp(v4)``."""
    name = lambda i: nodes[i].text if nodes[i].op in ("var", "const") else f"v{i}"  # noqa: E731
    if node.op in ("var", "const"):
        return node.text
    if node.op == "neg":
        return f"-{name(node.args[0])}"
    if node.op == "id":
        return name(node.args[0])
    if len(node.args) == 2:
        return f"{name(node.args[0])} {node.op} {name(node.args[1])}"
    return f"{node.op}({name(node.args[0])})"


def graph_table(nodes: Sequence[Node], vals: list[float], mode: str, duals: dict[str, list[float]],
                adjoints: list[float]) -> Table:  # fmt: skip
    """One row per node: its name, operation, value and, by mode, its dual parts (∂node/∂var) or adjoint."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header in ("node", "=", "value"):
        table.add_column(header, justify="right" if header == "value" else "left")
    columns = [f"∂/∂{v} (ε)" for v in duals] if mode == "forward" else ["adjoint ∂f/∂node"]
    for header in columns:
        table.add_column(header, justify="right")
    for i, node in enumerate(nodes):
        if node.op == "const":
            continue
        cells = [number(duals[v][i]) for v in duals] if mode == "forward" else [number(adjoints[i])]
        label = node.text if node.op == "var" else f"v{i}"
        table.add_row(label, "input" if node.op == "var" else definition(node, nodes), number(vals[i]), *cells)
    return table


def differentiate(request: Request, console: Console) -> dict[str, object]:
    """Print the graph in the asked modes and the result line; return f and the partials of each method."""
    nodes = parse(request.expression, list(request.at))
    vals, duals = forward(nodes, request.at)
    _, adjoints = reverse(nodes, request.at)
    f, grads = by_torch(nodes, request.at)
    console.print(Text(f"f({', '.join(request.at)}) = {request.expression}", style="bold"))
    console.print(Text(f"at {', '.join(f'{k} = {number(v)}' for k, v in request.at.items())}"))
    for mode in ("forward", "reverse") if request.mode == "both" else (request.mode,):
        console.print()
        console.print(Text(TITLES[mode], style="bold"))
        console.print(graph_table(nodes, vals, mode, duals, adjoints))
    names = [n.text for n in nodes if n.op == "var"]
    fwd = {v: duals[v][-1] for v in names}
    rev = {v: adjoints[i] for i, v in enumerate(names)}
    agree = is_close(vals[-1], f) and all(is_close(fwd[v], grads[v]) and is_close(rev[v], grads[v]) for v in names)
    console.print()
    parts = [f"f = {number(vals[-1])}", *(f"∂f/∂{v} = {number(rev[v])}" for v in names)]
    console.print(Text("  ·  ".join(parts), style="bold"))
    check = "  ·  ".join([f"f = {number(f)}", *(f"∂f/∂{v} = {number(grads[v])}" for v in names)])
    verdict = "agree to 1e-9" if agree else "DIFFER"
    console.print(Text(f"torch.autograd (float64): {check}  — forward, reverse and torch {verdict}",
                       style="green" if agree else "bold red"))  # fmt: skip
    return {"f": vals[-1], "forward": fwd, "reverse": rev, "torch": {"f": f, **grads}, "agree": agree}


def main(args: list[str], console: Console | None = None) -> None:
    """The subcommand's entry point (the cli calls it with the words after ``autodiff``)."""
    console = console or Console()
    if any(a in ("--help", "-h") for a in args):
        console.print(Text(USAGE))
        return
    with user_errors():
        differentiate(read_words(args), console)
