"""The TensorFlow Playground's toy data sets, ported to vectorized numpy.

Source: ``src/dataset.ts`` of https://github.com/tensorflow/playground (the generators
``classifyCircleData``, ``classifyXORData``, ``classifyTwoGaussData``, ``classifySpiralData``,
``regressPlane``, ``regressGaussian`` and the helpers ``randUniform``, ``normalRandom``, ``dist``),
plus the input features of ``INPUTS`` in ``src/playground.ts``. Each generator below cites the TF
function it follows. What the port keeps exactly:

* geometry, radii, padding and scales (the constants are named next to each generator);
* TF's label rules, including its quirk that circle, XOR and both regression sets compute the
  label from a *noisy copy* of the point but store the *noise-free* point (noise moves labels,
  not positions), whereas spiral and Gauss move the positions and keep the labels;
* ``normalRandom(mean, variance)`` takes a variance, so the standard deviation is its square root;
* the order of the points: TF's generation order, first class block first (the caller shuffles).

What differs: TF draws from seedrandom's ``Math.random`` one point at a time; this port draws whole
arrays from a :class:`numpy.random.Generator`, so the distributions match but not the numbers.
Where TF makes ``numSamples / 2`` points per class it makes ``ceil(numSamples / 2)`` of each (one
extra point for odd counts); here the first block gets ``ceil(n / 2)`` and the second
``floor(n / 2)``, so exactly ``n`` points come back.

TF's UI: the noise slider runs 0…50 % in steps of 5 and ``generateData`` passes
``state.noise / 100`` to the generator, so ``noise`` here is 0 … 0.5. The UI generates
``NUM_SAMPLES_CLASSIFY = 500`` points for classification and ``NUM_SAMPLES_REGRESS = 1200`` for
regression (:data:`DEFAULT_N`). Class colours: TF label −1 is orange, +1 is blue; here they are class
0 ``"negative"`` and class 1 ``"positive"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np

from annkit.errors import AnnkitError, unknown_name
from annkit.schema import CLASSIFICATION_KINDS, PLAYGROUND_FEATURES, PLAYGROUND_TASKS, REGRESSION_KINDS

__all__ = [
    "CLASSES",
    "CLASSIFICATION_KINDS",
    "DEFAULT_N",
    "FEATURES",
    "NOISE_MAX",
    "REGRESSION_KINDS",
    "TASKS",
    "generate",
    "make_features",
]

TASKS = PLAYGROUND_TASKS
CLASSES = ("negative", "positive")  # class 0 = TF label -1 (orange), class 1 = TF label +1 (blue)
DEFAULT_N = {"classification": 500, "regression": 1200}  # TF playground.ts NUM_SAMPLES_CLASSIFY / _REGRESS
NOISE_MAX = 0.5  # TF index.html: noise slider max="50" (percent); generateData passes state.noise / 100

# TF playground.ts INPUTS: x, y, xSquared, ySquared, xTimesY, sinX, sinY (same order).
FEATURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "x1": lambda x1, x2: x1,
    "x2": lambda x1, x2: x2,
    "x1_sq": lambda x1, x2: x1 * x1,
    "x2_sq": lambda x1, x2: x2 * x2,
    "x1_x2": lambda x1, x2: x1 * x2,
    "sin_x1": lambda x1, x2: np.sin(x1),
    "sin_x2": lambda x1, x2: np.sin(x2),
}
assert tuple(FEATURES) == PLAYGROUND_FEATURES  # the schema's names are these

# TF regressGaussian `gaussians`: (centre x, centre y, sign) of the six label cones.
_REG_GAUSSIANS = np.array(
    [
        [-4.0, 2.5, 1.0],
        [0.0, 2.5, -1.0],
        [4.0, 2.5, 1.0],
        [-4.0, -2.5, -1.0],
        [0.0, -2.5, 1.0],
        [4.0, -2.5, -1.0],
    ]
)

Points = np.ndarray  # n×2 float64
TfLabels = np.ndarray  # n float64, TF's labels (-1/+1 for classification)


# ── helpers (TF: randUniform, normalRandom, dist) ───────────────────────────────────────────────


def _uniform(rng: np.random.Generator, a: float, b: float, size: int) -> np.ndarray:
    """TF ``randUniform(a, b)``: ``Math.random() * (b - a) + a``, i.e. uniform on [a, b)."""
    return rng.random(size) * (b - a) + a


def _normal(rng: np.random.Generator, mean: float, variance: float, size: int) -> np.ndarray:
    """TF ``normalRandom(mean, variance)``: a normal sample with that *variance*.

    TF uses the Marsaglia polar method and returns ``mean + sqrt(variance) * z``; numpy's
    standard normal has the same distribution, scaled the same way (std = sqrt(variance))."""
    return mean + math.sqrt(variance) * rng.standard_normal(size)


def _dist(x: np.ndarray, y: np.ndarray, cx: float | np.ndarray, cy: float | np.ndarray) -> np.ndarray:
    """TF ``dist(a, b)``: ``sqrt(dx * dx + dy * dy)``."""
    dx = x - cx
    dy = y - cy
    return np.sqrt(dx * dx + dy * dy)


def _halves(n: int) -> tuple[int, int]:
    """Sizes of TF's two per-class blocks for n points: ceil(n/2) first, floor(n/2) second."""
    return (n + 1) // 2, n // 2


def _stack(*blocks: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[Points, TfLabels]:
    xs, ys, labels = zip(*blocks)
    points = np.column_stack([np.concatenate(xs), np.concatenate(ys)]).astype(np.float64)
    return points, np.concatenate(labels).astype(np.float64)


# ── classification (TF: classifyCircleData, classifyXORData, classifyTwoGaussData, classifySpiralData)


def _circle(n: int, noise: float, rng: np.random.Generator) -> tuple[Points, TfLabels]:
    """TF ``classifyCircleData``, radius = 5.

    Positive block first: radius uniform in [0, radius·0.5) = [0, 2.5); then the negative block:
    radius uniform in [radius·0.7, radius) = [3.5, 5). Angle uniform in [0, 2π); the point is
    (r·sin(angle), r·cos(angle)). Each point gets a noise offset uniform in [-radius, radius)·noise
    per axis; the label is +1 when the *offset* point lies strictly inside distance radius·0.5 = 2.5
    of the origin, else -1, and the stored point is the one *without* the offset.
    Draw order per block: r, angle, noise x, noise y (each an array of the block's size)."""
    radius = 5.0

    def block(size: int, r_lo: float, r_hi: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r = _uniform(rng, r_lo, r_hi, size)
        angle = _uniform(rng, 0.0, 2 * math.pi, size)
        x = r * np.sin(angle)
        y = r * np.cos(angle)
        noise_x = _uniform(rng, -radius, radius, size) * noise
        noise_y = _uniform(rng, -radius, radius, size) * noise
        inside = _dist(x + noise_x, y + noise_y, 0.0, 0.0) < radius * 0.5  # TF getCircleLabel
        return x, y, np.where(inside, 1.0, -1.0)

    n_pos, n_neg = _halves(n)
    return _stack(block(n_pos, 0.0, radius * 0.5), block(n_neg, radius * 0.7, radius))


def _xor(n: int, noise: float, rng: np.random.Generator) -> tuple[Points, TfLabels]:
    """TF ``classifyXORData``: all n points in one block (no per-class halves).

    x and y uniform in [-5, 5), each pushed away from its axis by padding = 0.3 (``+0.3`` when the
    value is > 0, else ``-0.3``), so |x|, |y| ∈ [0.3, 5.3]. The noise offset is uniform in [-5, 5)·noise
    per axis; the label is +1 when the *offset* point has x·y ≥ 0 (TF getXORLabel), else -1, and the
    stored point is the one without the offset. Draw order: x, y, noise x, noise y."""
    padding = 0.3
    x = _uniform(rng, -5.0, 5.0, n)
    x = np.where(x > 0, x + padding, x - padding)
    y = _uniform(rng, -5.0, 5.0, n)
    y = np.where(y > 0, y + padding, y - padding)
    noise_x = _uniform(rng, -5.0, 5.0, n) * noise
    noise_y = _uniform(rng, -5.0, 5.0, n) * noise
    label = np.where((x + noise_x) * (y + noise_y) >= 0, 1.0, -1.0)
    return _stack((x, y, label))


def _two_gauss(n: int, noise: float, rng: np.random.Generator) -> tuple[Points, TfLabels]:
    """TF ``classifyTwoGaussData``: two isotropic Gaussians, positives at (2, 2) first, then
    negatives at (-2, -2).

    The per-axis variance is d3's linear scale domain [0, 0.5] → range [0.5, 4] applied to noise,
    i.e. variance = 0.5 + 7·noise (0.5 at noise 0, 4 at noise 0.5); the std is sqrt(variance).
    Labels never change; noise only widens the clouds. Draw order per block: x, then y."""
    variance = 0.5 + (4.0 - 0.5) * (noise - 0.0) / (0.5 - 0.0)  # d3.scale.linear, unclamped

    def block(size: int, cx: float, cy: float, label: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = _normal(rng, cx, variance, size)
        y = _normal(rng, cy, variance, size)
        return x, y, np.full(size, label)

    n_pos, n_neg = _halves(n)
    return _stack(block(n_pos, 2.0, 2.0, 1.0), block(n_neg, -2.0, -2.0, -1.0))


def _spiral(n: int, noise: float, rng: np.random.Generator) -> tuple[Points, TfLabels]:
    """TF ``classifySpiralData``: two interleaved spirals, the positive arm (deltaT = 0) first, then
    the negative arm (deltaT = π).

    With half = n / 2 (a float, as in TF), point i of an arm has r = i / half · 5 and
    t = 1.75 · i / half · 2π + deltaT; it sits at (r·sin(t), r·cos(t)) plus a noise offset uniform in
    [-1, 1)·noise per axis, which *is* stored (labels never change). At noise 0 the negative arm is
    the positive arm mirrored through the origin. Draw order per arm: noise x, then noise y."""
    half = n / 2

    def arm(size: int, delta_t: float, label: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.arange(size, dtype=np.float64)
        r = i / half * 5
        t = 1.75 * i / half * 2 * math.pi + delta_t
        x = r * np.sin(t) + _uniform(rng, -1.0, 1.0, size) * noise
        y = r * np.cos(t) + _uniform(rng, -1.0, 1.0, size) * noise
        return x, y, np.full(size, label)

    n_pos, n_neg = _halves(n)
    return _stack(arm(n_pos, 0.0, 1.0), arm(n_neg, math.pi, -1.0))


# ── regression (TF: regressPlane, regressGaussian) ─────────────────────────────────────────────


def _plane_label(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """TF ``regressPlane`` getLabel: d3 linear scale domain [-10, 10] → range [-1, 1] of x + y,
    *not* clamped, i.e. (x + y) / 10. Points in [-6, 6)² reach ±1.2 (and ±1.8 with noise 0.5)."""
    return -1.0 + (x + y + 10.0) * (2.0 / 20.0)


def _gauss_label(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """TF ``regressGaussian`` getLabel: six cones of radius 2 with signs (the ``gaussians`` table).

    Each cone gives sign · clamp(1 - d / 2, 0, 1) (d3 scale domain [0, 2] → range [1, 0], clamped)
    with d the distance to its centre; TF keeps the value of largest magnitude (the first one on
    ties, as its strict ``>`` does; np.argmax also returns the first), and 0 when all are 0."""
    cx, cy, sign = _REG_GAUSSIANS[:, 0], _REG_GAUSSIANS[:, 1], _REG_GAUSSIANS[:, 2]
    d = _dist(np.asarray(x, dtype=np.float64)[..., None], np.asarray(y, dtype=np.float64)[..., None], cx, cy)
    values = sign * np.clip(1.0 - d / 2.0, 0.0, 1.0)
    pick = np.argmax(np.abs(values), axis=-1)
    label = np.take_along_axis(values, pick[..., None], axis=-1)[..., 0]
    return label + 0.0  # turn -0.0 into 0.0


def _regress(label_fn: Callable[[np.ndarray, np.ndarray], np.ndarray]):
    def generator(n: int, noise: float, rng: np.random.Generator) -> tuple[Points, TfLabels]:
        """TF ``regressPlane`` / ``regressGaussian`` sampling: radius = 6; x and y uniform in
        [-radius, radius); a noise offset uniform in [-radius, radius)·noise per axis; the label is
        computed at the *offset* point, the stored point is the one without the offset.
        Draw order: x, y, noise x, noise y."""
        radius = 6.0
        x = _uniform(rng, -radius, radius, n)
        y = _uniform(rng, -radius, radius, n)
        noise_x = _uniform(rng, -radius, radius, n) * noise
        noise_y = _uniform(rng, -radius, radius, n) * noise
        return _stack((x, y, label_fn(x + noise_x, y + noise_y)))

    return generator


_CLASSIFY = {"circle": _circle, "xor": _xor, "gauss": _two_gauss, "spiral": _spiral}
_REGRESS = {"plane": _regress(_plane_label), "gauss": _regress(_gauss_label)}
_GENERATORS = {"classification": _CLASSIFY, "regression": _REGRESS}
_KINDS = {"classification": CLASSIFICATION_KINDS, "regression": REGRESSION_KINDS}


# ── public API ─────────────────────────────────────────────────────────────────────────────────


def _check_task_kind(kind: str, task: str) -> None:
    if task not in TASKS:
        raise unknown_name(
            "playground task",
            task,
            TASKS,
            "Set dataset.task=classification (kinds: "
            + ", ".join(CLASSIFICATION_KINDS)
            + ") or dataset.task=regression (kinds: "
            + ", ".join(REGRESSION_KINDS)
            + ").",
        )
    valid = _KINDS[task]
    if kind in valid:
        return
    other = "regression" if task == "classification" else "classification"
    if kind in _KINDS[other]:
        raise AnnkitError(
            f'The playground data set "{kind}" exists only for {other}, but dataset.task={task}. '
            f"Valid {task} data sets: {', '.join(sorted(valid))}. Set dataset.task={other} to use "
            f'"{kind}", or pick one of the {task} data sets with dataset.kind=<name>.'
        )
    raise unknown_name(
        "playground data set",
        kind,
        valid,
        f"Set dataset.kind=<name> to one of these {task} data sets (dataset.task={other} has: "
        f"{', '.join(_KINDS[other])}).",
    )


def _check_n_noise(n: object, noise: object) -> tuple[int, float]:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 2:
        raise AnnkitError(
            f"dataset.n={n!r} is not a valid number of playground points: it must be a whole number "
            f"of at least 2 (TF Playground uses {DEFAULT_N['classification']} for classification and "
            f"{DEFAULT_N['regression']} for regression). Set dataset.n=<count>, e.g. dataset.n=500."
        )
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real) or not (0.0 <= float(noise) <= NOISE_MAX):
        raise AnnkitError(
            f"dataset.noise={noise!r} is outside the valid range 0 … {NOISE_MAX}: it is TF Playground's "
            f"noise argument, the UI's noise percentage divided by 100 (the slider runs 0 … 50 %). "
            f"Set dataset.noise=<value> between 0 and {NOISE_MAX}, e.g. dataset.noise=0.1 for 10 %."
        )
    return int(n), float(noise)


def generate(kind: str, task: str, n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points of TF Playground's data set ``kind`` for ``task`` ("classification" or "regression").

    Returns ``(points, targets)``. ``points`` is n×2 float64 with columns x1, x2 (TF's x, y), in TF's
    generation order: for circle, gauss and spiral the positive block (class 1) comes first with
    ceil(n/2) points, then the negative block (class 0) with floor(n/2) — TF makes numSamples/2 per
    class, rounded up, so an odd n would give n + 1 there; here exactly n come back. xor and the
    regression sets draw all n points in one block. Classification ``targets`` are int64 class indices
    (TF's -1 → 0, +1 → 1, see :data:`CLASSES`); regression ``targets`` are float64 TF labels, shape (n,):
    "gauss" lies in [-1, 1], "plane" is TF's *unclamped* (x1 + x2) / 10, so it reaches ±1.2 at noise 0
    (±1.8 at noise 0.5).

    ``noise`` is TF's noise argument (the UI percentage / 100, valid 0 … 0.5); what it does depends on
    the set (see each generator): circle, xor and regression move the labels, spiral and gauss move
    the points. Raises :class:`AnnkitError` for an unknown task/kind, n < 2 or noise out of range.
    """
    _check_task_kind(kind, task)
    n, noise = _check_n_noise(n, noise)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), not {type(rng).__name__}")
    points, labels = _GENERATORS[task][kind](n, noise, rng)
    assert points.shape == (n, 2) and labels.shape == (n,)
    if task == "classification":
        return points, (labels > 0).astype(np.int64)
    return points, labels.astype(np.float64)


def make_features(points: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """n×len(names) float32 matrix of the named features of ``points`` (n×2, columns x1, x2).

    Column j is ``FEATURES[names[j]](x1, x2)`` (TF's INPUTS: x1, x2, x1_sq, x2_sq, x1_x2, sin_x1,
    sin_x2), computed in float64 and then cast. Raises :class:`AnnkitError` for an empty list, an
    unknown name or a name given twice."""
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        raise AnnkitError(
            f"dataset.features must be a list of feature names, not {names!r}. Valid names: "
            f"{', '.join(FEATURES)}. Set e.g. dataset.features=[x1,x2]."
        )
    names = list(names)
    if not names:
        raise AnnkitError(
            "dataset.features is empty: the network needs at least one input feature. Valid names: "
            f"{', '.join(FEATURES)}. Set e.g. dataset.features=[x1,x2] (TF Playground's default)."
        )
    for name in names:
        if name not in FEATURES:
            raise unknown_name(
                "playground feature",
                name,
                FEATURES,
                "Set dataset.features=[...] to names from this list, e.g. dataset.features=[x1,x2].",
            )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise AnnkitError(
            f"dataset.features lists {', '.join(repeated)} more than once; each feature may appear once. "
            f"Valid names: {', '.join(FEATURES)}. Remove the repeats from dataset.features."
        )
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be an n×2 array (columns x1, x2), got shape {pts.shape}")
    x1, x2 = pts[:, 0], pts[:, 1]
    columns = [np.broadcast_to(FEATURES[name](x1, x2), x1.shape) for name in names]
    return np.stack(columns, axis=1).astype(np.float32)
