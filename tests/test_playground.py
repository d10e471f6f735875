"""The TF Playground port (annkit.data.playground): geometry, labels, noise, shapes, features, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from annkit.data.playground import (
    CLASSES,
    CLASSIFICATION_KINDS,
    DEFAULT_N,
    FEATURES,
    REGRESSION_KINDS,
    _gauss_label,
    generate,
    make_features,
)
from annkit.errors import AnnkitError

ALL = [(k, "classification") for k in CLASSIFICATION_KINDS] + [(k, "regression") for k in REGRESSION_KINDS]
CENTRES = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]


def gen(kind, task, n, noise, seed=0):
    return generate(kind, task, n, noise, np.random.default_rng(seed))


def radius(points):
    return np.hypot(points[:, 0], points[:, 1])


# ── constants ──────────────────────────────────────────────────────────────────


def test_constants_match_tf():
    assert CLASSIFICATION_KINDS == ("circle", "xor", "gauss", "spiral")
    assert REGRESSION_KINDS == ("plane", "gauss")
    assert CLASSES == ("negative", "positive")
    assert list(FEATURES) == ["x1", "x2", "x1_sq", "x2_sq", "x1_x2", "sin_x1", "sin_x2"]
    assert DEFAULT_N == {"classification": 500, "regression": 1200}


# ── circle ─────────────────────────────────────────────────────────────────────


def test_circle_geometry_at_noise_0():
    pts, y = gen("circle", "classification", 1000, 0.0)
    r = radius(pts)
    assert (y[:500] == 1).all() and (y[500:] == 0).all()  # positive block first
    assert (r[:500] < 2.5).all() and r[:500].min() < 0.1 and r[:500].max() > 2.4
    assert (r[500:] >= 3.5).all() and (r[500:] <= 5.0).all() and r[500:].min() < 3.6 and r[500:].max() > 4.9


def test_circle_noise_moves_labels_not_points():
    clean, y0 = gen("circle", "classification", 2000, 0.0, seed=3)
    for noise in (0.1, 0.5):
        noisy, y = gen("circle", "classification", 2000, noise, seed=3)
        np.testing.assert_array_equal(noisy, clean)  # TF stores the noise-free point
        r = radius(clean)
        flipped = y != y0
        assert flipped.any()
        # the label offset is uniform in [-5, 5)·noise per axis, so at most 5·noise·√2 away
        reach = 5 * noise * math.sqrt(2)
        assert (np.abs(r[flipped] - 2.5) <= reach).all()
    # at noise 0.1 (reach 0.71) no negative (r ≥ 3.5) can flip; at 0.5 (reach 3.54) some do
    _, y01 = gen("circle", "classification", 2000, 0.1, seed=3)
    _, y05 = gen("circle", "classification", 2000, 0.5, seed=3)
    assert (y01[1000:] == 0).all() and (y05[1000:] == 1).any()
    assert (y05[:1000] == 0).any()


def test_circle_flip_rates_match_tf_noise_model():
    # Monte Carlo of TF's rule, independent of the port: offsets uniform in [-5, 5)·noise per axis.
    mc = np.random.default_rng(123)
    m, noise = 200_000, 0.5
    expected = []
    for lo, hi in ((0.0, 2.5), (3.5, 5.0)):
        r, a = mc.uniform(lo, hi, m), mc.uniform(0, 2 * np.pi, m)
        off = mc.uniform(-5, 5, (m, 2)) * noise
        inside = np.hypot(r * np.sin(a) + off[:, 0], r * np.cos(a) + off[:, 1]) < 2.5
        expected.append(inside.mean())
    _, y = gen("circle", "classification", 40_000, noise, seed=8)
    assert abs(y[:20_000].mean() - expected[0]) < 0.015  # positives still labelled positive
    assert abs(y[20_000:].mean() - expected[1]) < 0.015  # negatives flipped to positive


# ── xor ────────────────────────────────────────────────────────────────────────


def test_xor_geometry_and_labels_at_noise_0():
    pts, y = gen("xor", "classification", 2000, 0.0)
    a = np.abs(pts)
    assert (a >= 0.3).all() and (a <= 5.3).all() and a.min() < 0.35 and a.max() > 5.25
    np.testing.assert_array_equal(y, (pts[:, 0] * pts[:, 1] >= 0).astype(np.int64))
    assert 0.4 < y.mean() < 0.6


def test_xor_noise_flips_only_near_the_axes():
    clean, y0 = gen("xor", "classification", 3000, 0.0, seed=5)
    noisy, y = gen("xor", "classification", 3000, 0.5, seed=5)
    np.testing.assert_array_equal(noisy, clean)
    flipped = y != y0
    assert flipped.mean() > 0.05
    near = np.abs(clean).min(axis=1) < 5 * 0.5  # offset per axis is < 2.5
    assert not flipped[~near].any()
    # flip rate of TF's rule by Monte Carlo: |x|,|y| uniform in [0.3, 5.3), offsets uniform in [-2.5, 2.5)
    mc = np.random.default_rng(7)
    a, b = mc.uniform(0.3, 5.3, (2, 400_000))
    na, nb = mc.uniform(-2.5, 2.5, (2, 400_000))
    expected = (((a + na) > 0) != ((b + nb) > 0)).mean()
    assert abs(flipped.mean() - expected) < 0.02


# ── gauss (classification) ─────────────────────────────────────────────────────


@pytest.mark.parametrize("noise, variance", [(0.0, 0.5), (0.2, 1.9), (0.5, 4.0)])
def test_two_gauss_means_and_variance(noise, variance):
    pts, y = gen("gauss", "classification", 8000, noise, seed=1)
    assert (y[:4000] == 1).all() and (y[4000:] == 0).all()
    for block, centre in ((pts[:4000], 2.0), (pts[4000:], -2.0)):
        np.testing.assert_allclose(block.mean(axis=0), [centre, centre], atol=0.12)
        np.testing.assert_allclose(block.var(axis=0), [variance, variance], rtol=0.1)


# ── spiral ─────────────────────────────────────────────────────────────────────


def test_spiral_geometry_at_noise_0():
    pts, y = gen("spiral", "classification", 200, 0.0)
    assert (y[:100] == 1).all() and (y[100:] == 0).all()
    i = np.arange(100)
    np.testing.assert_allclose(radius(pts[:100]), i / 100 * 5, atol=1e-12)
    t = 1.75 * i / 100 * 2 * np.pi
    np.testing.assert_allclose(pts[:100], np.column_stack([i / 20 * np.sin(t), i / 20 * np.cos(t)]), atol=1e-12)
    np.testing.assert_allclose(pts[100:], -pts[:100], atol=1e-12)  # second arm is deltaT = π


def test_spiral_odd_n_uses_tf_half():
    pts, y = gen("spiral", "classification", 201, 0.0)
    assert pts.shape == (201, 2) and (y == 1).sum() == 101 and (y == 0).sum() == 100
    np.testing.assert_allclose(radius(pts[:101]), np.arange(101) / 100.5 * 5, atol=1e-12)
    np.testing.assert_allclose(pts[101:], -pts[:100], atol=1e-12)


def test_spiral_noise_moves_points_not_labels():
    clean, y0 = gen("spiral", "classification", 400, 0.0)
    noisy, y = gen("spiral", "classification", 400, 0.3, seed=9)
    np.testing.assert_array_equal(y, y0)
    shift = np.abs(noisy - clean)
    assert (shift <= 0.3).all() and shift.max() > 0.25 and shift.mean() > 0.1


# ── regression ─────────────────────────────────────────────────────────────────


def test_plane_label_is_unclamped_linear_scale():
    pts, y = gen("plane", "regression", 3000, 0.0)
    assert y.dtype == np.float64
    assert (pts >= -6).all() and (pts < 6).all()
    np.testing.assert_allclose(y, (pts[:, 0] + pts[:, 1]) / 10, atol=1e-12)
    assert np.abs(y).max() > 1.05  # TF's d3 scale is not clamped: |x1 + x2| reaches 12


def test_plane_noise_moves_labels_not_points():
    clean, y0 = gen("plane", "regression", 2000, 0.0, seed=4)
    noisy, y = gen("plane", "regression", 2000, 0.5, seed=4)
    np.testing.assert_array_equal(noisy, clean)
    err = np.abs(y - y0)
    # offsets uniform in [-6, 6)·0.5 = [-3, 3) per axis: |Δlabel| = |nx + ny| / 10 ≤ 0.6, mean 2·3/3 / 10 = 0.2
    assert (err <= 0.6 + 1e-12).all() and err.max() > 0.55
    assert abs(err.mean() - 0.2) < 0.012


def test_gauss_label_at_centres_and_far_away():
    cx, cy, sign = (np.array(c, dtype=float) for c in zip(*CENTRES))
    np.testing.assert_array_equal(_gauss_label(cx, cy), sign)
    np.testing.assert_allclose(_gauss_label(cx + 1.0, cy), sign * 0.5)  # d = 1 → 1 - 1/2
    far = np.array([[0.0, 0.0], [6.0, 0.0], [-6.0, 6.0], [2.0, 0.0], [0.0, 5.0]])
    np.testing.assert_array_equal(_gauss_label(far[:, 0], far[:, 1]), 0.0)


def test_regress_gauss_generated_labels():
    pts, y = gen("gauss", "regression", 3000, 0.0)
    assert (y >= -1).all() and (y <= 1).all() and y.min() < -0.9 and y.max() > 0.9
    c = np.array(CENTRES, dtype=float)
    d = np.hypot(pts[:, None, 0] - c[:, 0], pts[:, None, 1] - c[:, 1])
    nearest = d.argmin(axis=1)
    expected = c[nearest, 2] * np.clip(1 - d.min(axis=1) / 2, 0, 1)
    np.testing.assert_allclose(y, expected, atol=1e-12)
    assert (y[d.min(axis=1) >= 2] == 0).all() and (d.min(axis=1) >= 2).sum() > 100
    _, y_noisy = gen("gauss", "regression", 3000, 0.3)
    assert (y_noisy != y).mean() > 0.3  # noise moves the labels …
    np.testing.assert_array_equal(gen("gauss", "regression", 3000, 0.3)[0], pts)  # … not the points


# ── shapes, dtypes, determinism ─────────────────────────────────────────────────


@pytest.mark.parametrize("kind, task", ALL)
@pytest.mark.parametrize("n", [2, 7, 101])
def test_exact_n_and_dtypes(kind, task, n):
    pts, y = gen(kind, task, n, 0.2)
    assert pts.shape == (n, 2) and pts.dtype == np.float64
    assert y.shape == (n,)
    if task == "classification":
        assert y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
        if kind != "xor":  # blocks: ceil(n/2) positives, then floor(n/2) negatives (labels exact at noise 0)
            _, y0 = gen(kind, task, n, 0.0)
            assert (y0[: (n + 1) // 2] == 1).all() and (y0[(n + 1) // 2 :] == 0).all()
    else:
        assert y.dtype == np.float64


@pytest.mark.parametrize("kind, task", ALL)
def test_same_seed_same_data_other_seed_other_data(kind, task):
    a = gen(kind, task, 50, 0.1, seed=11)
    b = gen(kind, task, 50, 0.1, seed=11)
    c = gen(kind, task, 50, 0.1, seed=12)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_numpy_integer_n_is_accepted():
    pts, _ = generate("circle", "classification", np.int64(9), 0.0, np.random.default_rng(0))
    assert pts.shape == (9, 2)


# ── features ───────────────────────────────────────────────────────────────────


def test_feature_values_and_column_order():
    pts = np.array([[2.0, -3.0], [0.5, math.pi / 2]])
    f = make_features(pts, ["x1_x2", "x1", "sin_x2", "x2_sq", "x1_sq", "sin_x1", "x2"])
    assert f.shape == (2, 7) and f.dtype == np.float32
    expected = [
        [-6.0, 2.0, math.sin(-3.0), 9.0, 4.0, math.sin(2.0), -3.0],
        [0.5 * math.pi / 2, 0.5, 1.0, (math.pi / 2) ** 2, 0.25, math.sin(0.5), math.pi / 2],
    ]
    np.testing.assert_allclose(f, np.array(expected, dtype=np.float32), rtol=1e-6)
    np.testing.assert_array_equal(make_features(pts, ("x2",))[:, 0], np.float32([-3.0, math.pi / 2]))


# ── errors ─────────────────────────────────────────────────────────────────────


def err(fn, *args) -> str:
    with pytest.raises(AnnkitError) as info:
        fn(*args)
    return str(info.value)


def rng():
    return np.random.default_rng(0)


def test_unknown_kind_lists_the_kinds_of_that_task():
    msg = err(generate, "moons", "classification", 10, 0.0, rng())
    assert "moons" in msg and "dataset.kind" in msg
    assert all(k in msg for k in CLASSIFICATION_KINDS)
    msg = err(generate, "planee", "regression", 10, 0.0, rng())
    assert "dataset.kind" in msg and "plane, gauss" in msg.replace("gauss, plane", "plane, gauss")
    assert 'Did you mean "plane"' in msg


@pytest.mark.parametrize(
    "kind, task, other",
    [
        ("spiral", "regression", "classification"),
        ("circle", "regression", "classification"),
        ("plane", "classification", "regression"),
    ],
)
def test_kind_of_the_other_task(kind, task, other):
    msg = err(generate, kind, task, 10, 0.0, rng())
    assert f"dataset.task={other}" in msg and kind in msg and other in msg
    valid = CLASSIFICATION_KINDS if task == "classification" else REGRESSION_KINDS
    assert all(k in msg for k in valid)


def test_unknown_task():
    msg = err(generate, "circle", "clustering", 10, 0.0, rng())
    assert "dataset.task" in msg and "classification" in msg and "regression" in msg and "clustering" in msg


@pytest.mark.parametrize("n", [1, 0, -5, 2.5, True, "10"])
def test_bad_n(n):
    msg = err(generate, "circle", "classification", n, 0.0, rng())
    assert "dataset.n" in msg and "at least 2" in msg


@pytest.mark.parametrize("noise", [-0.01, 0.51, 5.0, float("nan"), "0.1"])
def test_bad_noise(noise):
    msg = err(generate, "xor", "classification", 10, noise, rng())
    assert "dataset.noise" in msg and "0 … 0.5" in msg


def test_feature_errors():
    pts = np.zeros((3, 2))
    msg = err(make_features, pts, ["x1", "x3"])
    assert "x3" in msg and "dataset.features" in msg and all(name in msg for name in FEATURES)
    msg = err(make_features, pts, [])
    assert "dataset.features" in msg and "empty" in msg and all(name in msg for name in FEATURES)
    msg = err(make_features, pts, "x1")
    assert "dataset.features" in msg and "list" in msg
    msg = err(make_features, pts, ["x1", "x2", "x1"])
    assert "dataset.features" in msg and "x1" in msg
