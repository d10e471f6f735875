"""Automatic differentiation as deck 001 teaches it: an expression's computation graph, forward mode with dual
numbers, reverse mode with adjoints — and torch.autograd as the referee.

:func:`parse` reads an expression with Python's ``ast`` and a whitelist, never ``eval``: numbers, the named
variables, ``+ - * / **``, unary minus (and plus), and calls of ``exp log sin cos tanh sigmoid relu`` with one
argument. Anything else — attribute access, subscripts, calls of other names, lambdas, comparisons, keywords,
strings — is refused with one paragraph, and nothing runs. The graph's nodes come out in evaluation order: the
variables first (each once, however often it appears), then every operation, the output last.

:func:`forward` evaluates the graph once per variable on dual numbers a + a′ε (ε² = 0): each node's value and its
derivative with respect to that variable. :func:`reverse` evaluates the values once, then walks the graph backwards
from f̄ = 1, adding each node's adjoint v̄ = ∂f/∂v into its arguments'. :func:`by_torch` computes f and its
gradient with ``torch.autograd`` in float64. All three use float64.

Deck 001's example: f(x, y) = x²y + y + 2 at (3, 4) is 42, ∂f/∂x = 2xy = 24, ∂f/∂y = x² + 1 = 10.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from annkit.errors import AnnkitError, did_you_mean

FUNCTIONS = ("exp", "log", "sin", "cos", "tanh", "sigmoid", "relu")
BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
MAX_NODES = 500  # a longer expression is not one to read as a table


@dataclass(frozen=True)
class Node:
    """One node of the graph: ``op`` is "var", "const", one of + - * / ** "neg", or a function name; ``args`` the
    indices of its arguments; ``text`` the subexpression it computes, as written back."""

    op: str
    args: tuple[int, ...] = ()
    text: str = ""
    value: float = 0.0  # a constant's value


def refuse(expression: str, why: str) -> AnnkitError:
    return AnnkitError(
        f"The expression {expression!r} cannot be differentiated here: {why}. annkit autodiff reads numbers, the "
        f"variables you give values to (x=3 y=4), + - * / **, a leading minus, and {', '.join(FUNCTIONS)} of one "
        f"argument; nothing in it is run as Python. Write e.g. 'x**2*y + y + 2' or 'sigmoid(w*x + b)'."
    )


def parse(expression: str, variables: Sequence[str]) -> list[Node]:
    """The computation graph of ``expression`` over ``variables`` (see the module's docstring)."""
    if len(expression) > 20 * MAX_NODES:
        raise refuse(expression[:60] + "…", f"it is longer than {20 * MAX_NODES:,} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as err:
        raise refuse(
            expression, f"it is not a well-formed expression ({getattr(err, 'msg', 'nested too deeply')})"
        ) from None
    nodes: list[Node] = [Node("var", text=name) for name in variables]
    index = {name: i for i, name in enumerate(variables)}

    def add(node: Node) -> int:
        nodes.append(node)
        if len(nodes) > MAX_NODES:
            raise refuse(expression, f"it has more than {MAX_NODES} operations")
        return len(nodes) - 1

    def visit(n: ast.AST) -> int:
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool):
            return add(Node("const", text=repr(n.value), value=float(n.value)))
        if isinstance(n, ast.Name):
            if n.id in index:
                return index[n.id]
            if n.id in FUNCTIONS:
                raise refuse(expression, f"it names the function {n.id} without calling it (write {n.id}(x))")
            raise refuse(expression, f"it uses {n.id!r}, which has no value{did_you_mean(n.id, list(index))} "
                                     f"(give it one on the command line: {n.id}=1)")  # fmt: skip
        if isinstance(n, ast.BinOp) and type(n.op) in BINARY:
            left, right = visit(n.left), visit(n.right)
            return add(Node(BINARY[type(n.op)], (left, right), ast.unparse(n)))
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.USub, ast.UAdd)):
            inner = visit(n.operand)
            return inner if isinstance(n.op, ast.UAdd) else add(Node("neg", (inner,), ast.unparse(n)))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in FUNCTIONS:
            if len(n.args) != 1 or n.keywords or isinstance(n.args[0], ast.Starred):
                raise refuse(expression, f"{n.func.id}() takes exactly one argument")
            return add(Node(n.func.id, (visit(n.args[0]),), ast.unparse(n)))
        raise refuse(expression, f"it holds {describe(n)}, which is not allowed")

    try:
        out = visit(tree.body)
    except RecursionError:
        raise refuse(expression, "it is nested too deeply") from None
    if out != len(nodes) - 1:  # f is a variable itself (f = x): the output node is its copy
        add(Node("id", (out,), ast.unparse(tree.body)))
    return nodes


def describe(n: ast.AST) -> str:
    """What a refused piece of syntax is, in words."""
    if isinstance(n, ast.Call):
        name = f"a call of {n.func.id}()" if isinstance(n.func, ast.Name) else f"the call {ast.unparse(n)}"
        return f"{name} (only {', '.join(FUNCTIONS)} may be called)"
    kinds = {ast.Attribute: "an attribute access", ast.Subscript: "a subscript", ast.Lambda: "a lambda",
             ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.Constant: "a constant that is not a number",
             ast.IfExp: "an if-expression", ast.JoinedStr: "an f-string", ast.NamedExpr: "an assignment (:=)"}  # fmt: skip
    for kind, words in kinds.items():
        if isinstance(n, kind):
            return f"{words} ({ast.unparse(n)})"
    return f"{type(n).__name__.lower()} syntax ({ast.unparse(n)})"


def _apply(op: str, a: float, b: float = 0.0) -> float:
    """One node's value (float64; a domain error gives NaN, as torch does)."""
    with np.errstate(all="ignore"):
        x, y = np.float64(a), np.float64(b)
        out = {
            "id": lambda: x, "+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
            "**": lambda: np.power(x, y), "neg": lambda: -x, "exp": lambda: np.exp(x), "log": lambda: np.log(x),
            "sin": lambda: np.sin(x), "cos": lambda: np.cos(x), "tanh": lambda: np.tanh(x),
            "sigmoid": lambda: 1.0 / (1.0 + np.exp(-x)), "relu": lambda: np.maximum(x, 0.0),
        }[op]()  # fmt: skip
    return float(out)


def _partials(op: str, a: float, b: float, out: float) -> tuple[float, float]:
    """(∂out/∂a, ∂out/∂b) of one node at its arguments' values: the chain rule's local factors."""
    with np.errstate(all="ignore"):
        x, y = np.float64(a), np.float64(b)
        if op == "**":
            # ∂/∂x of x^y is y·x^(y−1); ∂/∂y is x^y·ln x (0 where x = 0 and y ≥ 0, as torch has it)
            dy = 0.0 if x == 0 and y >= 0 else float(out * np.log(x))
            return float(y * np.power(x, y - 1)), dy
        local = {
            "id": (1.0, 0.0), "+": (1.0, 1.0), "-": (1.0, -1.0), "*": (float(y), float(x)), "/": (float(1 / y), float(-x / (y * y))),
            "neg": (-1.0, 0.0), "exp": (out, 0.0), "log": (float(1 / x), 0.0), "sin": (float(np.cos(x)), 0.0),
            "cos": (float(-np.sin(x)), 0.0), "tanh": (1.0 - out * out, 0.0), "sigmoid": (out * (1.0 - out), 0.0),
            "relu": (1.0 if x > 0 else 0.0, 0.0),
        }  # fmt: skip
    return local[op]


def values(nodes: Sequence[Node], at: Mapping[str, float]) -> list[float]:
    """Every node's value at the point ``at`` (variable → number)."""
    out: list[float] = []
    for node in nodes:
        if node.op == "var":
            out.append(float(at[node.text]))
        elif node.op == "const":
            out.append(node.value)
        else:
            out.append(_apply(node.op, *(out[i] for i in node.args)))
    return out


def forward(nodes: Sequence[Node], at: Mapping[str, float]) -> tuple[list[float], dict[str, list[float]]]:
    """Forward mode: (the values, per variable every node's dual part: ∂node/∂variable). Each pass carries the
    dual number value + derivative·ε through the graph, from the variable seeded with derivative 1."""
    vals = values(nodes, at)
    duals: dict[str, list[float]] = {}
    for seed in (n.text for n in nodes if n.op == "var"):
        dot: list[float] = []
        for node, v in zip(nodes, vals):
            if node.op == "var":
                dot.append(1.0 if node.text == seed else 0.0)
            elif node.op == "const":
                dot.append(0.0)
            else:
                a, b = (vals[node.args[0]], vals[node.args[1]] if len(node.args) > 1 else 0.0)
                da, db = dot[node.args[0]], dot[node.args[1]] if len(node.args) > 1 else 0.0
                pa, pb = _partials(node.op, a, b, v)
                dot.append((pa * da if da else 0.0) + (pb * db if db else 0.0))  # a zero tangent adds nothing
        duals[seed] = dot
    return vals, duals


def reverse(nodes: Sequence[Node], at: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Reverse mode: (the values, every node's adjoint ∂f/∂node). One forward pass for the values, then one
    backward pass from the output (adjoint 1), each node passing adjoint × local partial to its arguments."""
    vals = values(nodes, at)
    bar = [0.0] * len(nodes)
    bar[-1] = 1.0
    for k in range(len(nodes) - 1, -1, -1):
        node = nodes[k]
        if node.op in ("var", "const") or bar[k] == 0.0:
            continue
        a, b = vals[node.args[0]], vals[node.args[1]] if len(node.args) > 1 else 0.0
        pa, pb = _partials(node.op, a, b, vals[k])
        bar[node.args[0]] += bar[k] * pa
        if len(node.args) > 1 and (nodes[node.args[1]].op != "const"):
            bar[node.args[1]] += bar[k] * pb
    return vals, bar


def by_torch(nodes: Sequence[Node], at: Mapping[str, float]) -> tuple[float, dict[str, float]]:
    """f and ∂f/∂variable from torch.autograd (float64), on the same graph."""
    import torch

    leaves = {n.text: torch.tensor(float(at[n.text]), dtype=torch.float64, requires_grad=True)
              for n in nodes if n.op == "var"}  # fmt: skip
    ops = {"id": lambda t: t * 1, "+": torch.add, "-": torch.sub, "*": torch.mul, "/": torch.div, "**": torch.pow, "neg": torch.neg,
           "exp": torch.exp, "log": torch.log, "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh,
           "sigmoid": torch.sigmoid, "relu": torch.relu}  # fmt: skip
    out: list[torch.Tensor] = []
    for node in nodes:
        if node.op == "var":
            out.append(leaves[node.text])
        elif node.op == "const":
            out.append(torch.tensor(node.value, dtype=torch.float64))
        else:
            out.append(ops[node.op](*(out[i] for i in node.args)))
    if not out[-1].requires_grad:  # f uses no variable: every partial is 0
        return float(out[-1]), dict.fromkeys(leaves, 0.0)
    grads = torch.autograd.grad(out[-1], list(leaves.values()), allow_unused=True)
    return float(out[-1].detach()), {name: float(g) if g is not None else 0.0 for name, g in zip(leaves, grads)}


def is_close(a: float, b: float, tol: float = 1e-9) -> bool:
    """Equal to a relative (and, near 0, absolute) tolerance; NaN equals NaN, ±inf itself."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
