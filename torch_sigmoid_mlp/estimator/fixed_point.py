r"""The fixed-point arithmetic of an integer C export: formats, the σ table, and a bit-exact numpy model.

Words are ``int16`` (with an ``int32`` accumulator) or ``int32`` (with ``int64``). A value ``q``
with ``F`` fractional bits stands for ``q / 2^F``; ``rsr(a, s)`` is ``a / 2^s`` rounded to nearest,
ties away from zero, written with shifts of non-negative numbers only (C99 leaves ``>>`` of a
negative number to the implementation)::

    x_q     = clamp(x, x_lo, x_hi)                         the input word, x ≈ x_q / 2^X_SHIFT
    y^(0)_q = rsr((x_q − x_lo)·x_mul + x_add, x_k)          ≈ x' · 2^F_0      (x' ∈ [−1, 1])
    acc     = Σ_j W_q[i][j] · y_q[j]                       exact, in the accumulator
    u       = rsr(clamp(acc, ±U·2^s), s)   (s > 0)         ≈ v · 2^F_v,  |u| ≤ U = V·2^F_v
    y_q     = σ̃(u)                                         ≈ σ(v) · 2^F_y   (the table, below)
    ŷ_q     = sat(rsr(y_q·y_mul + y_add, y_k))              ≈ ŷ · 2^Y_SHIFT

``W_q = round(W · 2^G_l)`` with the largest ``G_l`` for which every weight fits the word and
``Σ_j |W_q[i][j]| · max|y_q[j]|`` fits the accumulator: no product or sum can overflow for any
input word, in the box or not. σ̃ is :mod:`.sigmoid_approx`'s cubic per interval of ``|v|``, with
coefficients of ``F_y + g`` fractional bits evaluated by Horner's rule with ``rsr`` after each
product (``g`` guard bits, the most that keep Horner's products in the accumulator).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .sigmoid_approx import cubic_table, interpolation_error, sigma, sigma_tail

__all__ = ["WORDS", "SigmaTable", "rsr", "sigma_table"]

#: word → (bits of the word, bits of the accumulator, C type of the word, C type of the accumulator)
WORDS = {"int16": (16, 32, "int16_t", "int32_t"), "int32": (32, 64, "int32_t", "int64_t")}

#: The σ table of each word: (F_y, F_v, V, h_bits) with h = 2^−h_bits the width of an interval.
#: int16: |v| < 16 (σ(−16) = 1.1e-7, below the word's 2^−15), h = 1/2; int32: |v| < 24
#: (σ(−24) = 3.8e-11, below 2^−31), h = 1/8.
_SIGMA_FORMATS = {"int16": (15, 13, 16, 1), "int32": (31, 28, 24, 3)}


def rsr(a, s):
    """``a / 2^s`` rounded to nearest, ties away from zero, for ``s ≥ 1`` (elementwise, int64)."""
    a = np.asarray(a, dtype=np.int64)
    s = np.asarray(s, dtype=np.int64)
    half = np.left_shift(np.int64(1), s - 1)
    return np.where(a >= 0, (a + half) >> s, -((-a + half) >> s))


@dataclass(frozen=True)
class SigmaTable:
    r"""σ̃(u) ≈ σ(u / 2^F_v)·2^F_y for ``|u| ≤ U``: a cubic per interval of ``|u|``, and its error.

    ``error`` bounds ``|σ̃(u)/2^F_y − σ(u/2^F_v)|`` over every ``|u| ≤ U``: computed at every
    ``u`` for int16 (all ``2U + 1`` of them), and for int32 as the sum of the cubic's
    interpolation error, the coefficients' and Horner's roundings and the last rounding.
    """

    word: str
    F_y: int
    F_v: int
    V: int
    F_t: int  # fractional bits of t inside an interval: h = 2^(F_t − F_v)
    g: int
    coefficients: np.ndarray  # (N, 4) int64, c_k · 2^(F_y + g)
    error: float

    @property
    def U(self) -> int:
        return self.V << self.F_v

    @property
    def y_max(self) -> int:
        return (1 << self.F_y) - 1

    def __call__(self, u):
        """σ̃(u), int64, elementwise, as the C function computes it."""
        u = np.asarray(u, dtype=np.int64)
        a = np.abs(u)
        k = np.minimum(a >> self.F_t, len(self.coefficients) - 1)
        t = a & ((1 << self.F_t) - 1)
        c = self.coefficients[k]  # (..., 4)
        p = c[..., 3]
        for i in (2, 1, 0):
            p = c[..., i] + rsr(p * t, self.F_t)
        p = np.minimum(rsr(p, self.g), self.y_max)
        p = np.where(a >= self.U, self.y_max, p)
        return np.where(u < 0, (1 << self.F_y) - p, p)


def _guard_bits(c: np.ndarray, F_y: int, F_t: int, acc_bits: int) -> int:
    """The most guard bits ``g ≤ 16`` for which Horner's products ``p·t`` fit the accumulator."""
    limit = 1 << (acc_bits - 1)
    for g in range(16, 0, -1):
        C = np.rint(c * 2.0 ** (F_y + g)).astype(object)
        partial = abs(C[:, 3])
        fits = True
        for i in (2, 1, 0):
            fits &= all(partial * (1 << F_t) + (1 << (F_t - 1)) < limit)
            partial = abs(C[:, i]) + partial + 1
        if fits and all(partial + (1 << (g - 1)) < limit):
            return g
    raise AssertionError("no guard bits fit the accumulator")  # the formats above all fit


@functools.cache
def sigma_table(word: str) -> SigmaTable:
    """The σ table of ``word`` (``"int16"`` or ``"int32"``), built once."""
    acc_bits = WORDS[word][1]
    F_y, F_v, V, h_bits = _SIGMA_FORMATS[word]
    h, n = 2.0**-h_bits, V << h_bits
    c = cubic_table(h, n)
    F_t = F_v - h_bits
    g = _guard_bits(c, F_y, F_t, acc_bits)
    C = np.rint(c * 2.0 ** (F_y + g)).astype(np.int64)
    table = SigmaTable(word, F_y, F_v, V, F_t, g, C, 0.0)
    if word == "int16":  # every input the table can get
        u = np.arange(-table.U, table.U + 1, dtype=np.int64)
        err = np.abs(table(u) / 2.0**F_y - sigma(u / 2.0**F_v)).max() + 1e-15
    else:
        lsb = 2.0 ** -(F_y + g)
        rounding = np.abs(C * lsb - c).sum(axis=1) + 1e-14  # coefficients, t^k ≤ 1
        inside = interpolation_error(h, n) + rounding + 1.5 * lsb + 0.5 * 2.0**-F_y
        err = max(inside.max(), 2.0**-F_y)  # saturating at 2^F_y − 1 costs at most one unit
    err += sigma_tail(V)  # |v| ≥ V answers σ(±V)'s word
    return SigmaTable(word, F_y, F_v, V, F_t, g, C, float(err))


# -- exact constants --------------------------------------------------------------------------------


def fit_shift(value: float, bits: int) -> int:
    """The largest shift ``S`` with ``round(|value|·2^S) ≤ 2^(bits−1) − 1`` (``bits − 2`` for 0)."""
    top = (1 << (bits - 1)) - 1
    value = abs(value)
    if value == 0:
        return bits - 2
    S = math.floor(math.log2(top / value))
    while round(Fraction(value) * Fraction(2) ** S) > top:
        S -= 1
    while round(Fraction(value) * Fraction(2) ** (S + 1)) <= top:
        S += 1
    return S


def affine_constants(slope: Fraction, offset: Fraction, D: int, F: int, acc_bits: int):
    r"""``(mul, add, k)`` with ``rsr(d·mul + add, k) ≈ (offset + d·slope)·2^F`` for ``d ∈ [0, D]``,
    the largest ``k ≥ 1`` for which nothing leaves the accumulator, and the largest error of
    ``(d·mul + add)/2^(F+k)`` against ``offset + d·slope`` (before the last rounding)."""
    limit = 1 << (acc_bits - 1)
    for k in range(acc_bits - 2, 0, -1):
        scale = Fraction(2) ** (F + k)
        mul, add = round(slope * scale), round(offset * scale)
        ends = (add, D * mul + add)
        if abs(D * mul) < limit and all(abs(e) + (1 << (k - 1)) < limit for e in ends):
            err = max(abs(Fraction(d * mul + add) / scale - (offset + d * slope)) for d in (0, D))
            return mul, add, k, float(err) * (1 + 1e-12)
    raise ValueError("no shift fits the accumulator")


# -- the plan of one network in one word --------------------------------------------------------------


@dataclass(frozen=True)
class _Stage:
    """Per column ``rsr((d)·mul + add, k)`` with ``d ∈ [0, D]``; ``error`` before the last rounding."""

    shift: list  # X_SHIFT or Y_SHIFT
    mul: list
    add: list
    k: list
    error: np.ndarray


def _input_stage(net, word: str, F_0: int):
    """Clamp bounds and ``(mul, add, k)`` per input column; raises where a column does not fit."""
    bits, acc_bits, _, _ = WORDS[word]
    a, b = net.x_range
    shifts, lows, highs, consts, errors = [], [], [], [], []
    for i, (mn, mx) in enumerate(zip(net.x_min.tolist(), net.x_max.tolist())):
        S = fit_shift(max(abs(mn), abs(mx)), bits)
        lo, hi = round(Fraction(mn) * Fraction(2) ** S), round(Fraction(mx) * Fraction(2) ** S)
        if mx > mn and hi - lo < 2:
            raise ValueError(
                f"input column {i}: its range [{mn:.10g}, {mx:.10g}] is {hi - lo} step(s) of {word} at "
                f"X_SHIFT {S} (|x| up to {max(abs(mn), abs(mx)):.6g} must fit the word): {word} cannot "
                "resolve it"
            )
        if mx > mn:
            s = Fraction(b - a) / Fraction(mx - mn)
            slope, offset = s * Fraction(2) ** -S, a + (Fraction(lo) * Fraction(2) ** -S - Fraction(mn)) * s
            quantum = float(s) * 2.0 ** (-S - 1)  # the caller's rounding of x, in x' units
        else:
            slope, offset, quantum = Fraction(0), Fraction(a + b) / 2, 0.0
        mul, add, k, err = affine_constants(slope, offset, hi - lo, F_0, acc_bits)
        shifts.append(S), lows.append(lo), highs.append(hi), consts.append((mul, add, k))
        errors.append(err + 2.0 ** (-F_0 - 1) + quantum)
    mul, add, k = (list(c) for c in zip(*consts))
    return lows, highs, _Stage(shifts, mul, add, k, np.array(errors) * (1 + 1e-12))


def _output_stage(net, word: str, F_y: int) -> _Stage:
    """``(mul, add, k)`` per output and ``Y_SHIFT``; raises where an output does not fit."""
    bits, acc_bits, _, _ = WORDS[word]
    lo_t, hi_t = net.y_range
    shifts, consts, errors = [], [], []
    for j, (mn, mx) in enumerate(zip(net.y_min.tolist(), net.y_max.tolist())):
        scale = Fraction(mx - mn) / Fraction(hi_t - lo_t)
        offset = Fraction(mn) - Fraction(lo_t) * scale
        S = fit_shift(max(abs(offset), abs(offset + scale)), bits)
        if mx > mn and (mx - mn) * 2.0**S < 2:
            raise ValueError(
                f"output {j}: its range [{mn:.10g}, {mx:.10g}] is under 2 steps of {word} at Y_SHIFT {S} "
                f"(|ŷ| up to {float(max(abs(offset), abs(offset + scale))):.6g} must fit the word): "
                f"{word} cannot resolve it"
            )
        mul, add, k, err = affine_constants(scale / 2**F_y, offset, 1 << F_y, S, acc_bits)
        shifts.append(S), consts.append((mul, add, k))
        errors.append(err + 2.0 ** (-S - 1))  # in y's units
    mul, add, k = (list(c) for c in zip(*consts))
    return _Stage(shifts, mul, add, k, np.array(errors) * (1 + 1e-12))


@dataclass(frozen=True)
class _Layer:
    """``W_q = round(W·2^G)``, and ``u = rsr(clamp(acc, ±clamp), shift)`` (``acc·2^−shift`` if ≤ 0)."""

    W_q: np.ndarray  # int64 (rows, cols)
    G: int
    shift: int
    clamp: int
    acc_max: int  # the largest |acc| any input word can give


def _layer(W: np.ndarray, l: int, y_max: list, F: int, word: str, table: SigmaTable) -> _Layer:
    """The largest ``G`` for which ``W_q`` fits the word and ``W_q y_q`` the accumulator."""
    bits, acc_bits, _, _ = WORDS[word]
    limit = 1 << (acc_bits - 1)
    top = np.abs(W).max()
    for G in range(fit_shift(top, bits) if top > 0 else 0, -64, -1):
        W_q = np.rint(np.ldexp(W, G)).astype(np.int64)
        acc_max = max(sum(abs(int(w)) * m for w, m in zip(row, y_max)) for row in W_q.tolist())
        shift = G + F - table.F_v
        if shift < -table.F_v:
            break
        clamp = table.U << shift if shift > 0 else table.U >> -shift
        half = 1 << (shift - 1) if shift > 0 else 0
        if acc_max < limit and min(acc_max, clamp) + half < limit:
            return _Layer(W_q, G, shift, clamp, acc_max)
    raise ValueError(f"W^({l}): its weights (max |w| = {top:.6g}) do not fit {word} with its accumulator")


class IntegerPlan:
    r"""One fitted network in one fixed-point word: every constant of the C file, its bit-exact
    numpy model (:meth:`predict_words`, :meth:`predict`), and the error terms of
    :func:`~.network_box.propagate_bound`.

    Raises ``ValueError`` naming the input column, weight matrix or output that does not fit.
    """

    def __init__(self, net, word: str) -> None:
        if word not in WORDS:
            raise ValueError(f"word must be one of {sorted(WORDS)}, got {word!r}")
        self.net, self.word, self.table = net, word, sigma_table(word)
        bits, _, self.c_word, self.c_acc = WORDS[word]
        self.F_0 = bits - 2  # x' ∈ [−1, 1] with room for the rounding
        self.x_lo, self.x_hi, self.inputs = _input_stage(net, word, self.F_0)
        ends = [(0, h - l) for l, h in zip(self.x_lo, self.x_hi)]
        y_max = [max(abs(int(rsr(d * m + a, k))) for d in ds) for ds, m, a, k in zip(ends, *self._in)]
        if max(y_max) >= 1 << (bits - 1):  # x' ∈ [−1, 1] and F_0 = bits − 2 leave a bit to spare
            raise ValueError(f"the scaled inputs do not fit {word}")
        self.y0_max = y_max  # per input column, the largest |x' · 2^F_0| any input word gives
        self.layers = []
        for l, W in enumerate(net.weights):
            F = self.F_0 if l == 0 else self.table.F_y
            self.layers.append(_layer(W, l, y_max, F, word, self.table))
            y_max = [self.table.y_max] * W.shape[0]
        self.outputs = _output_stage(net, word, self.table.F_y)
        # what propagate_bound reads
        self.input_error = self.inputs.error
        self.device_weights = tuple(np.ldexp(L.W_q.astype(np.float64), -L.G) for L in self.layers)
        self.gamma = (0.0,) * len(self.layers)
        self.sigma_rounding = tuple(2.0 ** -(self.table.F_v + 1) if L.shift > 0 else 0.0 for L in self.layers)
        self.sigma_error = self.table.error

    @property
    def _in(self):
        return self.inputs.mul, self.inputs.add, self.inputs.k

    def output_error(self, e: np.ndarray) -> np.ndarray:
        """``(K, m)``: the output stage's error in y's units, from ``e^(L)``."""
        return self.net.y_scale * e + self.outputs.error

    def predict_words(self, x_q: np.ndarray) -> np.ndarray:
        """The C function on words: ``(N, n)`` integers in, ``(N, m)`` int64 words out, bit for bit."""
        x = np.clip(np.asarray(x_q, dtype=np.int64), self.x_lo, self.x_hi)
        mul, add, k = (np.array(c, dtype=np.int64) for c in self._in)
        y = rsr((x - np.array(self.x_lo, dtype=np.int64)) * mul + add, k)  # (N, n)
        for L in self.layers:
            acc = np.clip(y @ L.W_q.T, -L.clamp, L.clamp) if L.clamp < 2**63 else y @ L.W_q.T
            u = rsr(acc, L.shift) if L.shift > 0 else acc * (1 << -L.shift)
            y = self.table(u)  # (N, size_{l+1})
        mul, add, k = (
            np.array(c, dtype=np.int64) for c in (self.outputs.mul, self.outputs.add, self.outputs.k)
        )
        top = (1 << (WORDS[self.word][0] - 1)) - 1
        return np.clip(rsr(y * mul + add, k), -top - 1, top)

    def quantize(self, X) -> np.ndarray:
        """``x_q = round(x·2^X_SHIFT)``, clamped to the word, ``(N, n)`` int64."""
        X = np.asarray(X, dtype=np.float64)
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinite values")
        top = 2.0 ** (WORDS[self.word][0] - 1)
        return np.clip(np.rint(np.ldexp(X, self.inputs.shift)), -top, top - 1).astype(np.int64)

    def predict(self, X) -> np.ndarray:
        """The C file's prediction in y's units, from ``X`` in the data's units (``(N, n)``)."""
        X = np.asarray(X, dtype=np.float64).reshape(-1, self.net.sizes[0])
        y = np.ldexp(
            self.predict_words(self.quantize(X)).astype(np.float64), [-s for s in self.outputs.shift]
        )
        return y[:, 0] if self.net.y_1d else y


# -- the C file -------------------------------------------------------------------------------------


def _c_ints(values, c_type: str) -> str:
    """``{v, v, …}`` (nested for a matrix); int64 constants through ``INT64_C``."""
    values = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if values.ndim == 1:
        wrap = (lambda v: f"INT64_C({v})") if c_type == "int64_t" else str
        return "{" + ", ".join(wrap(int(v)) for v in values.tolist()) + "}"
    return "{\n" + ",\n".join("    " + _c_ints(row, c_type) for row in values) + "\n}"


def _c_sigma(plan: IntegerPlan, name: str) -> list[str]:
    T, acc, word = plan.table, plan.c_acc, f"{name}_WORD"
    one = f"INT64_C({1 << T.F_y})" if acc == "int64_t" else str(1 << T.F_y)
    top = f"INT64_C({T.y_max})" if acc == "int64_t" else str(T.y_max)
    U = f"INT64_C({T.U})" if acc == "int64_t" else str(T.U)
    return [
        f"/* sigma(v) * 2^{T.F_y} for u = v * 2^{T.F_v}, |u| <= {T.U}: a cubic in t per interval of |v| of",
        f"   width 2^-{T.F_v - T.F_t}, coefficients * 2^{T.F_y + T.g}; |error| <= {T.error:.3e} */",
        f"static const {acc} {name}_sigma_c[{len(T.coefficients)}][4] = {_c_ints(T.coefficients, acc)};",
        "",
        f"static {word} {name}_sigma({acc} u)",
        "{",
        f"    const {acc} a = u < 0 ? -u : u;",
        f"    {acc} p;",
        f"    if (a >= {U}) {{",
        f"        p = {top};",
        "    } else {",
        f"        const int k = (int)(a >> {T.F_t});",
        f"        const {acc} t = a & ((({acc})1 << {T.F_t}) - 1);",
        f"        p = {name}_sigma_c[k][3];",
        f"        p = {name}_sigma_c[k][2] + {name}_rsr(p * t, {T.F_t});",
        f"        p = {name}_sigma_c[k][1] + {name}_rsr(p * t, {T.F_t});",
        f"        p = {name}_sigma_c[k][0] + {name}_rsr(p * t, {T.F_t});",
        f"        p = {name}_rsr(p, {T.g});",
        f"        if (p > {top}) {{",
        f"            p = {top};",
        "        }",
        "    }",
        f"    return ({word})(u < 0 ? {one} - p : p);",
        "}",
        "",
    ]


def _c_constants(plan: IntegerPlan, name: str) -> list[str]:
    acc, n, m = plan.c_acc, plan.net.sizes[0], plan.net.sizes[-1]
    I, O = plan.inputs, plan.outputs
    lines = [
        f"/* x' * 2^{plan.F_0} = rsr((clamp(x, x_lo, x_hi) - x_lo) * x_mul + x_add, x_k) */",
        f"static const {acc} {name}_x_lo[{n}] = {_c_ints(plan.x_lo, acc)};",
        f"static const {acc} {name}_x_hi[{n}] = {_c_ints(plan.x_hi, acc)};",
        f"static const {acc} {name}_x_mul[{n}] = {_c_ints(I.mul, acc)};",
        f"static const {acc} {name}_x_add[{n}] = {_c_ints(I.add, acc)};",
        f"static const int {name}_x_k[{n}] = {_c_ints(I.k, 'int')};",
        "",
    ]
    for l, L in enumerate(plan.layers):
        rows, cols = L.W_q.shape
        lines += [
            f"/* W^({l}) * 2^{L.G}, {rows} x {cols} */",
            f"static const {plan.c_word} {name}_W{l}[{rows}][{cols}] = {_c_ints(L.W_q, plan.c_word)};",
            "",
        ]
    return [
        *lines,
        f"/* y * 2^Y_SHIFT = rsr(y^(L) * y_mul + y_add, y_k), y^(L) * 2^{plan.table.F_y} */",
        f"static const {acc} {name}_y_mul[{m}] = {_c_ints(O.mul, acc)};",
        f"static const {acc} {name}_y_add[{m}] = {_c_ints(O.add, acc)};",
        f"static const int {name}_y_k[{m}] = {_c_ints(O.k, 'int')};",
        "",
        f"static {acc} {name}_rsr({acc} a, int s) /* a / 2^s rounded to nearest, ties away from 0 */",
        "{",
        f"    const {acc} half = ({acc})1 << (s - 1);",
        "    return a >= 0 ? (a + half) >> s : -((-a + half) >> s);",
        "}",
        "",
    ]


def _c_body(plan: IntegerPlan, name: str) -> list[str]:
    acc, word, n, m = plan.c_acc, f"{name}_WORD", plan.net.sizes[0], plan.net.sizes[-1]
    bits = WORDS[plan.word][0]
    lines = [
        f"void {name}(const {word} *x, {word} *y)",
        "{",
        f"    {word} a[{max(plan.net.sizes)}], b[{max(plan.net.sizes)}];",
        f"    {acc} s;",
        "    int i, j;",
        "",
        f"    (void){name}_X_SHIFT; /* the formats of x and y, for the caller */",
        f"    (void){name}_Y_SHIFT;",
        f"    for (j = 0; j < {n}; ++j) {{",
        f"        s = x[j] < {name}_x_lo[j] ? {name}_x_lo[j] : x[j];",
        f"        s = s > {name}_x_hi[j] ? {name}_x_hi[j] : s;",
        f"        s = (s - {name}_x_lo[j]) * {name}_x_mul[j] + {name}_x_add[j];",
        f"        a[j] = ({word}){name}_rsr(s, {name}_x_k[j]);",
        "    }",
    ]
    src, dst = "a", "b"
    for l, L in enumerate(plan.layers):
        rows, cols = L.W_q.shape
        lines += [
            f"    /* y^({l + 1}) = sigma(W^({l}) y^({l})): |sum| <= {L.acc_max} */",
            f"    for (i = 0; i < {rows}; ++i) {{",
            "        s = 0;",
            f"        for (j = 0; j < {cols}; ++j) {{",
            f"            s += ({acc}){name}_W{l}[i][j] * {src}[j];",
            "        }",
        ]
        if L.clamp < L.acc_max:
            c = f"INT64_C({L.clamp})" if acc == "int64_t" else str(L.clamp)
            lines.append(f"        s = s > {c} ? {c} : s < -{c} ? -{c} : s;")
        u = f"{name}_rsr(s, {L.shift})" if L.shift > 0 else f"s * {1 << -L.shift}"
        lines += [f"        {dst}[i] = {name}_sigma({u});", "    }"]
        src, dst = dst, src
    top = (1 << (bits - 1)) - 1
    return [
        *lines,
        f"    for (i = 0; i < {m}; ++i) {{",
        f"        s = {name}_rsr(({acc}){src}[i] * {name}_y_mul[i] + {name}_y_add[i], {name}_y_k[i]);",
        f"        y[i] = ({word})(s > {top} ? {top} : s < -{top} - 1 ? -{top} - 1 : s);",
        "    }",
        "}",
        "",
    ]


def integer_c_source(plan: IntegerPlan, name: str, header: list[str]) -> str:
    """The C99 file of ``plan``: ``header`` (comment lines), ``<stdint.h>`` only, no float."""
    n, m = plan.net.sizes[0], plan.net.sizes[-1]
    lines = [
        *header,
        "#include <stdint.h>",
        "",
        f"typedef {plan.c_word} {name}_WORD;",
        "",
        f"/* x[i] = round(x_i * 2^{name}_X_SHIFT[i]), y[j] / 2^{name}_Y_SHIFT[j]: the data's units */",
        f"static const int {name}_X_SHIFT[{n}] = {_c_ints(plan.inputs.shift, 'int')};",
        f"static const int {name}_Y_SHIFT[{m}] = {_c_ints(plan.outputs.shift, 'int')};",
        "",
        f"void {name}(const {name}_WORD *x, {name}_WORD *y);",
        "",
    ]
    lines += _c_constants(plan, name) + _c_sigma(plan, name) + _c_body(plan, name)
    return "\n".join(lines)
