r"""The float32 arithmetic of a C export without libm, its bit-exact numpy model, and its error terms.

The float32 file computes, in IEEE single precision and in this order::

    y^(0)_j = ((x_j − x_min_j) − x_min_lo_j) · x_scale_j + x_offset_j
    v_i     = ((W_i0 · y_0 + W_i1 · y_1) + …) + W_i,n−1 · y_n−1      (from 0, left to right)
    y_i     = σ̃(v_i)
    ŷ_i     = y_min_i + (y^(L)_i − y_lo_i) · y_scale_i

with ``x_min + x_min_lo`` the column's minimum to twice the precision (``x − x_min`` is exact
near the minimum, so inputs far from 0, such as 1000 ± 1, keep their bits), and σ̃ from
:mod:`.sigmoid_approx`'s cubics: ``|v| < 24`` in intervals of ``h = 1/8``, ``s = 8|v|`` and
``t = s − ⌊s⌋`` exact, ``p = c_0 + t·(c_1 + t·(c_2 + t·c_3))``, ``σ̃(v) = p`` or ``1 − p``
for ``v < 0``, and 1 (or 0) beyond 24. Its error is bounded by the interpolation error, the
coefficients' rounding to float32, Horner's six roundings (``γ_6 · Σ|c_k|``, Higham's bound)
and the rounding of ``1 − p``: :data:`SIGMA_FLOAT32_ERROR`. numpy's float32 operations are IEEE
single operations, so :meth:`FloatPlan.predict` is the C file's output bit for bit where the
compiler keeps each operation as written (``-ffp-contract=off``: no fused multiply-add).

``"float64"`` is the existing double file with libm's ``exp``; its model here runs the same
operations in numpy (not bit for bit: libm's ``exp`` and numpy's may differ by an ulp), and its
bound assumes ``exp`` within one ulp.
"""

from __future__ import annotations

import functools

import numpy as np

from .sigmoid_approx import cubic_table, interpolation_error, sigma_tail

__all__ = ["FloatPlan", "float32_c_source", "sigma_float32_table"]

_V, _H_BITS = 24, 3  # |v| < 24 (σ(−24) = 3.8e-11), h = 1/8
_UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}


def _gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u) * (1 + 1e-9)


@functools.cache
def sigma_float32_table() -> tuple[np.ndarray, float]:
    """``(coefficients (192, 4) float32, error)``: σ̃'s cubics and the bound on ``|σ̃ − σ|``."""
    h, n = 2.0**-_H_BITS, _V << _H_BITS
    c = cubic_table(h, n)
    c32 = c.astype(np.float32)
    size = np.abs(c32.astype(np.float64)).sum(axis=1)
    inside = interpolation_error(h, n) + np.abs(c32 - c).sum(axis=1) + _gamma(6, 2.0**-24) * size + 1e-15
    error = inside.max() + 2.0**-25 + sigma_tail(_V)  # + rounding of 1 − p, + beyond |v| ≥ 24
    return c32, float(error)


#: ``max |σ̃(v) − σ(v)|`` over every float32 ``v``, for the float32 file's σ̃.
SIGMA_FLOAT32_ERROR = sigma_float32_table()[1]


def _sigma_float32(v: np.ndarray) -> np.ndarray:
    c, _ = sigma_float32_table()
    a = np.abs(v)
    s = a * np.float32(1 << _H_BITS)
    inside = a < np.float32(_V)
    k = np.where(inside, s, 0).astype(np.int32)
    t = s - k.astype(np.float32)
    c = c[k]  # (..., 4)
    p = c[..., 0] + t * (c[..., 1] + t * (c[..., 2] + t * c[..., 3]))
    p = np.where(inside, p, np.float32(1.0))
    return np.where(v < 0, np.float32(1.0) - p, p)


def _sigma_float64(v: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(745) is inf, and 1/(1 + inf) the 0 it should be
        return 1.0 / (1.0 + np.exp(-v))


class FloatPlan:
    r"""One fitted network in float32 (the file without libm) or float64 (today's file): the
    constants, the numpy model (:meth:`predict`), and the error terms of
    :func:`~.network_box.propagate_bound`.

    Raises ``ValueError`` where a constant does not fit float32.
    """

    def __init__(self, net, arithmetic: str) -> None:
        if arithmetic not in _UNIT:
            raise ValueError(f"arithmetic must be float32 or float64, got {arithmetic!r}")
        self.net, self.arithmetic = net, arithmetic
        self.dtype = np.dtype(arithmetic)
        u = _UNIT[arithmetic]
        a, b = net.x_range
        lo, _ = net.y_range
        top = float(np.finfo(self.dtype).max)
        for what, values in [
            ("the inputs' range", (net.x_min, net.x_max)),
            ("the outputs' range", net.y_ends),
        ]:
            if np.abs(np.asarray(values)).max() > top / 2:
                raise ValueError(f"{what} does not fit {arithmetic} (|value| over {top / 2:.3g})")
        for l, W in enumerate(net.weights):
            if np.abs(W).max() > top / 2:
                raise ValueError(f"W^({l}) does not fit {arithmetic} (|w| over {top / 2:.3g})")
        constant = net.x_max == net.x_min
        cast = self.dtype.type
        self.x_min, self.x_scale = net.x_min.astype(cast), net.x_scale.astype(cast)
        self.x_min_lo = (net.x_min - self.x_min.astype(np.float64)).astype(cast)
        self.x_offset = np.where(constant, (a + b) / 2, a).astype(cast)
        self.y_lo, self.y_scale = np.full_like(net.y_min, lo).astype(cast), net.y_scale.astype(cast)
        self.y_min = net.y_min.astype(cast)
        self.weights = tuple(W.astype(cast) for W in net.weights)
        # what propagate_bound reads
        # the caller's rounding of x (u·|x|), two subtractions, the scale's rounding and two more
        M = np.maximum(np.abs(net.x_min), np.abs(net.x_max))
        tail = 2 * np.abs(self.x_min_lo.astype(np.float64)) + u * M
        within = 2.2 * u * (net.x_max - net.x_min + tail)
        self.input_error = (net.x_scale * (u * M + within) + 5.5 * u) * (1 + 1e-6)
        self.device_weights = tuple(W.astype(np.float64) for W in self.weights)
        self.gamma = tuple(_gamma(W.shape[1], u) for W in net.weights)
        self.sigma_rounding = (0.0,) * len(net.weights)
        # float64: 1/(1 + exp(−v)) with exp within an ulp, and two roundings
        self.sigma_error = SIGMA_FLOAT32_ERROR if arithmetic == "float32" else 4 * u
        self._u = u

    def output_error(self, e: np.ndarray) -> np.ndarray:
        """``(K, m)``: the output stage's error in y's units, from ``e^(L)``."""
        net, u = self.net, self._u
        reach = np.abs(net.y_ends).max(axis=0)
        return net.y_scale * (e * (1 + 4 * u) + 5 * u) + u * np.abs(net.y_min) + 1.01 * u * reach

    def predict(self, X) -> np.ndarray:
        """The file's prediction in y's units (float64 holding its float32 values exactly)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.net.sizes[0])
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values")
        y = ((X.astype(self.dtype) - self.x_min) - self.x_min_lo) * self.x_scale + self.x_offset  # (N, n)
        for W in self.weights:
            v = np.zeros((len(y), W.shape[0]), dtype=self.dtype)
            for j in range(W.shape[1]):  # the C loop's order: v += W[i][j] * y[j]
                v = v + y[:, j : j + 1] * W[:, j]
            y = _sigma_float32(v) if self.arithmetic == "float32" else _sigma_float64(v)
        y = (self.y_min + (y - self.y_lo) * self.y_scale).astype(np.float64)
        return y[:, 0] if self.net.y_1d else y


def _c_floats(values) -> str:
    """``{v, v, …}`` (nested for a matrix), float32 literals that read back as the same float."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 1:
        texts = []
        for v in values.tolist():
            text = format(np.float32(v), ".9g")
            texts.append(text + ("f" if any(c in text for c in ".e") else ".0f"))
        return "{" + ", ".join(texts) + "}"
    return "{\n" + ",\n".join("    " + _c_floats(row) for row in values) + "\n}"


def _c_sigma(name: str) -> list[str]:
    c, error = sigma_float32_table()
    return [
        f"/* sigma(v) for |v| < {_V}: a cubic in t per interval of |v| of width 1/{1 << _H_BITS};",
        f"   |error| <= {error:.3e} for every float v (interpolation, rounding of the coefficients",
        "   and of Horner's steps, 1 - p) */",
        f"static const float {name}_sigma_c[{len(c)}][4] = {_c_floats(c)};",
        "",
        f"static float {name}_sigma(float v)",
        "{",
        "    const float a = v < 0.0f ? -v : v;",
        "    float p;",
        f"    if (a < {_V}.0f) {{",
        f"        const float s = a * {1 << _H_BITS}.0f;",
        "        const int k = (int)s;",
        "        const float t = s - (float)k;",
        f"        const float *c = {name}_sigma_c[k];",
        "        p = c[0] + t * (c[1] + t * (c[2] + t * c[3]));",
        "    } else {",
        "        p = 1.0f;",
        "    }",
        "    return v < 0.0f ? 1.0f - p : p;",
        "}",
        "",
    ]


def float32_c_source(plan: FloatPlan, name: str, header: list[str]) -> str:
    """The C99 float32 file of ``plan``: ``header`` (comment lines), no include, no libm."""
    sizes = plan.net.sizes
    n, m = sizes[0], sizes[-1]
    lines = [
        *header,
        f"void {name}(const float *x, float *y);",
        "",
        "/* x' = ((x - x_min) - x_min_lo) * x_scale + x_offset; x_min + x_min_lo is the minimum */",
        f"static const float {name}_x_min[{n}] = {_c_floats(plan.x_min)};",
        f"static const float {name}_x_min_lo[{n}] = {_c_floats(plan.x_min_lo)};",
        f"static const float {name}_x_scale[{n}] = {_c_floats(plan.x_scale)};",
        f"static const float {name}_x_offset[{n}] = {_c_floats(plan.x_offset)};",
        "",
    ]
    for l, W in enumerate(plan.weights):
        lines += [f"/* W^({l}), {W.shape[0]} x {W.shape[1]} */"]
        lines += [f"static const float {name}_W{l}[{W.shape[0]}][{W.shape[1]}] = {_c_floats(W)};", ""]
    lines += [
        "/* y = y_min + (y^(L) - y_lo) * y_scale */",
        f"static const float {name}_y_lo[{m}] = {_c_floats(plan.y_lo)};",
        f"static const float {name}_y_scale[{m}] = {_c_floats(plan.y_scale)};",
        f"static const float {name}_y_min[{m}] = {_c_floats(plan.y_min)};",
        "",
        *_c_sigma(name),
        f"void {name}(const float *x, float *y)",
        "{",
        f"    float a[{max(sizes)}], b[{max(sizes)}];",
        "    int i, j;",
        "",
        f"    for (j = 0; j < {n}; ++j) {{",
        f"        a[j] = (x[j] - {name}_x_min[j]) - {name}_x_min_lo[j];",
        f"        a[j] = a[j] * {name}_x_scale[j] + {name}_x_offset[j];",
        "    }",
    ]
    lines += c_layers([W.shape for W in plan.weights], name, m, c_type="float", sigma=f"{name}_sigma(v)")
    return "\n".join(lines)


def c_layers(shapes, name: str, m: int, *, c_type: str, sigma: str) -> list[str]:
    """The C lines from ``y^(0)`` in ``a`` to ``y`` in the data's units, one loop per layer.

    ``y^(l+1) = σ(W^(l) y^(l))`` with the weights ``NAME_W<l>`` of ``shapes``, the sums in ``c_type``
    and ``σ`` of the sum ``v`` as the C expression ``sigma``; then ``y = y_min + (y^(L) − y_lo) · y_scale``.
    The float64 and float32 files share these lines.
    """
    zero = "0.0f" if c_type == "float" else "0.0"
    lines, src, dst = [], "a", "b"
    for l, (rows, cols) in enumerate(shapes):
        lines += [
            f"    /* y^({l + 1}) = sigma(W^({l}) y^({l})) */",
            f"    for (i = 0; i < {rows}; ++i) {{",
            f"        {c_type} v = {zero};",
            f"        for (j = 0; j < {cols}; ++j) {{",
            f"            v += {name}_W{l}[i][j] * {src}[j];",
            "        }",
            f"        {dst}[i] = {sigma};",
            "    }",
        ]
        src, dst = dst, src
    return [
        *lines,
        f"    for (i = 0; i < {m}; ++i) {{",
        f"        y[i] = {name}_y_min[i] + ({src}[i] - {name}_y_lo[i]) * {name}_y_scale[i];",
        "    }",
        "}",
        "",
    ]
