"""Autodiff by hand (deck 001): the graph, forward mode on dual numbers, reverse mode with adjoints — against the
deck's numbers, torch.autograd on random expressions, and a whitelist that runs nothing."""

from __future__ import annotations

import io
import math
import random

import pytest
from rich.console import Console

from annkit.autodiff import FUNCTIONS, by_torch, forward, is_close, parse, reverse
from annkit.errors import AnnkitError
from annkit.tasks.autodiff import differentiate, read_words
from tests.conftest import assert_user_error, run_annkit


def test_the_decks_example_in_both_modes():
    """f(x, y) = x²y + y + 2 at (3, 4): f = 42, ∂f/∂x = 2xy = 24, ∂f/∂y = x² + 1 = 10."""
    nodes = parse("x**2*y + y + 2", ["x", "y"])
    at = {"x": 3.0, "y": 4.0}
    vals, duals = forward(nodes, at)
    assert vals[-1] == 42.0 and duals["x"][-1] == 24.0 and duals["y"][-1] == 10.0
    assert duals["x"][3] == 6.0  # the dual part of x² is 2x·1 at x = 3
    _, adjoints = reverse(nodes, at)
    assert adjoints[:2] == [24.0, 10.0] and adjoints[3] == 4.0  # ∂f/∂(x²) = y
    assert by_torch(nodes, at) == (42.0, {"x": 24.0, "y": 10.0})


def test_the_command_prints_f_and_every_partial_in_both_modes_beside_torch():
    out = io.StringIO()
    result = differentiate(read_words(["x**2*y + y + 2", "x=3", "y=4"]), Console(file=out, width=120))
    text = out.getvalue()
    assert "forward mode" in text and "reverse mode" in text and "f = 42  ·  ∂f/∂x = 24  ·  ∂f/∂y = 10" in text
    assert "torch.autograd (float64): f = 42  ·  ∂f/∂x = 24  ·  ∂f/∂y = 10" in text and result["agree"]


def random_expression(rng: random.Random, names: list[str], depth: int) -> str:
    """A whitelisted expression whose value stays finite on [-2, 2]: log and ** only on positive arguments."""
    if depth == 0 or rng.random() < 0.25:
        return rng.choice(names) if rng.random() < 0.7 else repr(round(rng.uniform(-3, 3), 3))
    a = random_expression(rng, names, depth - 1)
    b = random_expression(rng, names, depth - 1)
    choice = rng.randrange(10)
    if choice < 4:
        return f"({a} {'+-*'[choice % 3]} {b})"
    if choice == 4:
        return f"({a} / (1 + ({b})**2))"
    if choice == 5:
        return f"(1 + ({a})**2)**{rng.choice([2, 0.5, -1, 3])}"
    if choice == 6:
        return f"log(1 + exp({a}))"
    if choice == 7:
        return f"{rng.choice(['sin', 'cos', 'tanh', 'sigmoid'])}({a})"
    if choice == 8:
        return f"relu({a})" if rng.random() < 0.5 else f"exp(tanh({a}))"
    return f"-({a})"


def test_forward_reverse_and_torch_agree_on_random_expressions():
    """300 seeded expressions over x, y, z in float64: f and each partial agree to 1e-9 (relative)."""
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        text = random_expression(rng, ["x", "y", "z"], 4)
        at = {v: rng.uniform(-2, 2) for v in ("x", "y", "z")}
        nodes = parse(text, list(at))
        vals, duals = forward(nodes, at)
        _, adjoints = reverse(nodes, at)
        f, grads = by_torch(nodes, at)
        assert is_close(vals[-1], f), text
        for i, v in enumerate(at):
            assert is_close(duals[v][-1], grads[v]) and is_close(adjoints[i], grads[v]), (text, v)
        checked += math.isfinite(f)
    assert checked == 300


@pytest.mark.parametrize(
    ("expression", "needle"),
    [
        ("__import__('os').system('touch pwned')", "the call __import__('os').system('touch pwned')"),
        ("__import__('os')", "a call of __import__()"),
        ("x.real", "an attribute access"),
        ("(lambda: 1)()", "the call (lambda: 1)()"),
        ("lambda x: x", "a lambda"),
        ("open('f')", "a call of open()"),
        ("x[0]", "a subscript"),
        ("exp(x, y)", "exp() takes exactly one argument"),
        ("x +", "not a well-formed expression"),
        ("q * x", "uses 'q', which has no value"),
        ("exp * x", "names the function exp without calling it"),
        ("'rm -rf'", "a constant that is not a number"),
        ("x if y else 2", "an if-expression"),
        ("x < y", "a comparison"),
    ],
)
def test_everything_outside_the_whitelist_is_refused_and_nothing_runs(tmp_path, expression, needle):
    with pytest.raises(AnnkitError, match="cannot be differentiated") as err:
        parse(expression, ["x", "y"])
    assert needle in str(err.value)
    assert not (tmp_path / "pwned").exists()


def test_the_cli_runs_the_deck_and_refuses_in_one_paragraph(tmp_path):
    proc = run_annkit("autodiff", "x**2*y + y + 2", "x=3", "y=4", "mode=reverse", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "adjoint" in proc.stdout and "∂/∂x (ε)" not in proc.stdout and "∂f/∂x = 24" in proc.stdout
    assert_user_error(run_annkit("autodiff", "__import__('os').system('touch pwned')", "x=1", cwd=tmp_path),
                      "cannot be differentiated", "nothing in it is run as Python")  # fmt: skip
    assert not (tmp_path / "pwned").exists()
    assert_user_error(run_annkit("autodiff", "x*y", "x=1", cwd=tmp_path), "uses 'y', which has no value")
    assert_user_error(run_annkit("autodiff", "x", "x=abc", cwd=tmp_path), "a variable needs a plain name and a number")
    assert_user_error(run_annkit("autodiff", "x", "x=1", "mode=sideways", cwd=tmp_path), "is not one of forward")
    proc = run_annkit("autodiff", "x", "y", "x=1", cwd=tmp_path)
    assert proc.returncode == 2 and "2 expressions" in proc.stderr
    assert not (tmp_path / "outputs").exists()  # it writes nothing


def test_every_function_has_the_derivative_torch_has():
    for name in FUNCTIONS:
        for x in (-1.3, 0.4, 2.0):
            nodes = parse(f"{name}(x)", ["x"])
            _, duals = forward(nodes, {"x": x})
            _, grads = by_torch(nodes, {"x": x})
            assert is_close(duals["x"][-1], grads["x"]), (name, x)
