"""A fitted regressor without Python: an ONNX graph, or one dependency-free C99 source file.

Both carry the whole prediction of :meth:`SigmoidMLPRegressor.predict
<torch_sigmoid_mlp.SigmoidMLPRegressor.predict>`: the min–max scaling of the inputs, the network,
and the inverse scaling of the outputs, so that they take and give values in the data's own units::

    x'  = (x − min_x) ⊙ s_x + o_x                 s_x = (b − a)/(max_x − min_x), o_x = a
                                                   (a constant column: s_x = 0, o_x = (a + b)/2)
    y^(0) = x',   y^(l+1) = σ(W^(l) y^(l))
    ŷ   = min_y + (y^(L) − a_y) ⊙ (max_y − min_y)/(b_y − a_y)

the same operations, in the same order, as :class:`~torch_sigmoid_mlp.MinMaxScaler`'s
``transform`` and ``inverse_transform``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from .fixed_point import integer_c_source
from .floating import c_layers, float32_c_source
from .network_box import fitted_weights
from .outputs import MissingDependencyError, atomic_path
from .regressor import SigmoidMLPRegressor
from .verification import check_export

__all__ = ["c_source", "check_c_name", "check_export", "export_c", "export_onnx", "low_precision_source"]

#: The ONNX operator set the graph is written for: every operator in it (Sub, Mul, Add, MatMul,
#: Sigmoid, Squeeze) has had its present form since opset 13, and onnxruntime releases from 1.12
#: (2022) run opset 17.
ONNX_OPSET = 17
#: The ONNX file format version matching opset 17, so that runtimes of that age read the file.
ONNX_IR_VERSION = 8

# C99's keywords, which cannot name a function.
# fmt: off
_C_KEYWORDS = frozenset((
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else", "enum",
    "extern", "float", "for", "goto", "if", "inline", "int", "long", "register", "restrict", "return",
    "short", "signed", "sizeof", "static", "struct", "switch", "typedef", "union", "unsigned", "void",
    "volatile", "while", "_Bool", "_Complex", "_Imaginary",
))
# fmt: on
_C_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Affine(NamedTuple):
    """Per-column constants of ``x ↦ (x − c) ⊙ s + o``, float64, read from a fitted scaler."""

    center: Tensor
    scale: Tensor
    offset: Tensor


def _input_scaling(regressor: SigmoidMLPRegressor) -> _Affine:
    """``x' = (x − min) ⊙ s + o`` as ``MinMaxScaler.transform`` computes it."""
    scaler = regressor.x_scaler_
    lo, hi = scaler.feature_range
    data_min = scaler.data_min_.double().cpu()
    span = scaler.data_max_.double().cpu() - data_min
    constant = span == 0
    scale = ((hi - lo) / span).masked_fill_(constant, 0.0)
    offset = torch.full_like(span, lo).masked_fill_(constant, (lo + hi) / 2)
    return _Affine(data_min, scale, offset)


def _output_scaling(regressor: SigmoidMLPRegressor) -> _Affine:
    """``ŷ = (y − a) ⊙ s + min`` as ``MinMaxScaler.inverse_transform`` computes it (``min + (y − a) ⊙ s``)."""
    scaler = regressor.y_scaler_
    lo, hi = scaler.feature_range
    data_min = scaler.data_min_.double().cpu().reshape(-1)  # (m,)
    span = scaler.data_max_.double().cpu().reshape(-1) - data_min
    return _Affine(torch.full_like(span, lo), span / (hi - lo), data_min)


def _column_names(regressor: SigmoidMLPRegressor) -> list[str] | None:
    names = getattr(regressor, "feature_names_in_", None)
    return None if names is None else [str(name) for name in names]


# -- ONNX ------------------------------------------------------------------------------------------


def export_onnx(
    regressor: SigmoidMLPRegressor, path: str | os.PathLike, *, dtype: torch.dtype | None = None
) -> Path:
    r"""Write ``regressor``'s prediction ``ŷ = scale_y⁻¹(F(scale_x(x); w))`` as an ONNX graph.

    The graph has one input ``x`` of shape ``(N, n)`` and one output ``y`` of shape ``(N, m)``, or
    ``(N,)`` when the regressor was fitted on a 1-D ``y`` (the shapes :meth:`predict
    <torch_sigmoid_mlp.SigmoidMLPRegressor.predict>` gives); ``N`` is free. It is built from
    ``Sub``, ``Mul``, ``Add``, ``MatMul`` and ``Sigmoid`` (opset :data:`ONNX_OPSET`), with the
    weights and the scalers' constants stored in the file. It needs the ``onnx`` package to write
    (``pip install onnx``) and any ONNX runtime to run; the file is written atomically.

    Args:
        regressor: a fitted :class:`~torch_sigmoid_mlp.SigmoidMLPRegressor`.
        path: the ``.onnx`` file to write.
        dtype: of the graph's input, output and arithmetic, ``torch.float32`` or ``torch.float64``;
            ``None`` (default) is float64 for a float64 model and float32 otherwise. In float32
            the scaling runs in float32 too, where :meth:`predict` scales in float64.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        MissingDependencyError: ``onnx`` is not installed.

    Example::

        >>> import numpy as np, pathlib, tempfile, onnxruntime
        >>> X = np.linspace(0.0, 2.0, 20).reshape(-1, 1)
        >>> reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=50, device="cpu").fit(X, 3.0 + X[:, 0])
        >>> path = export_onnx(reg, pathlib.Path(tempfile.mkdtemp()) / "model.onnx")
        >>> session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        >>> y = session.run(None, {"x": X})[0]  # a float64 model's graph takes float64
        >>> y.shape, bool(np.allclose(y, reg.predict(X), rtol=0, atol=1e-12))
        ((20,), True)
    """
    weights = fitted_weights(regressor)
    if dtype is None:
        dtype = torch.float64 if regressor.model_.weights[0].dtype == torch.float64 else torch.float32
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise MissingDependencyError(
            "ONNX export needs the onnx package, which is not installed: pip install onnx"
        ) from None

    elem = TensorProto.DOUBLE if dtype == torch.float64 else TensorProto.FLOAT
    initializers = []

    def constant(name: str, value: Tensor) -> str:
        initializers.append(numpy_helper.from_array(value.to(dtype).numpy(), name))
        return name

    nodes = []

    def op(kind: str, *inputs: str, out: str) -> str:
        nodes.append(helper.make_node(kind, list(inputs), [out]))
        return out

    n, m = weights[0].shape[1], weights[-1].shape[0]
    scale_x, scale_y = _input_scaling(regressor), _output_scaling(regressor)
    y = op("Sub", "x", constant("x_min", scale_x.center), out="x_centred")
    y = op("Mul", y, constant("x_scale", scale_x.scale), out="x_stretched")
    y = op("Add", y, constant("x_offset", scale_x.offset), out="y0")  # y^(0) = x', (N, n)
    for l, W in enumerate(weights):
        # test points are rows: v^(l+1) = y^(l) W^(l)ᵀ, so the graph stores W^(l)ᵀ
        v = op("MatMul", y, constant(f"W{l}_T", W.T.contiguous()), out=f"v{l + 1}")
        y = op("Sigmoid", v, out=f"y{l + 1}")  # (N, size_{l+1})
    y = op("Sub", y, constant("y_lo", scale_y.center), out="y_centred")
    y = op("Mul", y, constant("y_scale", scale_y.scale), out="y_stretched")
    if regressor._y_1d:  # (N, 1) → (N,), as predict gives it
        y = op("Add", y, constant("y_min", scale_y.offset), out="y_column")
        initializers.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "column_axis"))
        op("Squeeze", y, "column_axis", out="y")
        out_shape = ["N"]
    else:
        op("Add", y, constant("y_min", scale_y.offset), out="y")
        out_shape = ["N", m]

    sizes = "-".join(str(s) for s in regressor.model_.sizes)
    graph = helper.make_graph(
        nodes,
        "torch_sigmoid_mlp",
        [helper.make_tensor_value_info("x", elem, ["N", n])],
        [helper.make_tensor_value_info("y", elem, out_shape)],
        initializers,
        doc_string=f"A bias-free sigmoid network {sizes} with min–max scaling of its inputs and outputs.",
    )
    model = helper.make_model(
        graph,
        producer_name="torch-sigmoid-mlp",
        opset_imports=[helper.make_opsetid("", ONNX_OPSET)],
        ir_version=ONNX_IR_VERSION,
    )
    names = _column_names(regressor)
    if names is not None:
        helper.set_model_props(model, {"input_columns": ",".join(names)})
    onnx.checker.check_model(model, full_check=True)
    path = Path(path)
    with atomic_path(path) as tmp:
        onnx.save(model, tmp)
    return path


# -- C ---------------------------------------------------------------------------------------------


def check_c_name(name: str) -> str:
    """``name`` if it can name the exported C function, else a ``ValueError`` saying why not.

    A C identifier (letters, digits and ``_``, not starting with a digit) that is not a C99
    keyword, not reserved to the implementation (``__…``, ``_`` and a capital), and not ``main``
    or ``exp`` (which the file calls).

    Example::

        >>> check_c_name("sensor_model")
        'sensor_model'
        >>> check_c_name("2x")
        Traceback (most recent call last):
        ...
        ValueError: the C function name must be an identifier (letters, digits, _, no digit first), got '2x'
    """
    if not isinstance(name, str) or not _C_IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"the C function name must be an identifier (letters, digits, _, no digit first), got {name!r}"
        )
    if name in _C_KEYWORDS:
        raise ValueError(f"the C function name {name!r} is a C keyword")
    if name.startswith("__") or re.match(r"_[A-Z]", name):
        raise ValueError(
            f"the C function name {name!r} is reserved to the C implementation (__…, or _ and a capital)"
        )
    if name in ("main", "exp"):
        taken = "the program's entry point" if name == "main" else "math.h's, which the file calls"
        raise ValueError(f"the C function name {name!r} is taken: it is {taken}")
    return name


def _c_array(values: Tensor) -> str:
    """``{v, v, …}`` (nested for a matrix) with ``%.17g``, which reads back as the same double."""
    if values.dim() == 1:
        return "{" + ", ".join(format(v, ".17g") for v in values.tolist()) + "}"
    return "{\n" + ",\n".join("    " + _c_array(row) for row in values) + "\n}"


def _c_comment(text: str) -> str:
    """``text`` safe inside a C comment: printable ASCII, no ``*/`` to end it, no ``??`` trigraph."""
    text = "".join(c if " " <= c <= "~" else "?" for c in text)
    return text.replace("*/", "* /").replace("??", "? ?")


def c_source(regressor: SigmoidMLPRegressor, name: str = "tsm_predict") -> str:
    """The C99 source that :func:`export_c` writes, as a string (see there).

    Example::

        >>> import numpy as np
        >>> X = np.linspace(0.0, 2.0, 20).reshape(-1, 1)
        >>> reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=5, device="cpu").fit(X, 3.0 + X[:, 0])
        >>> [line for line in c_source(reg).splitlines() if line.startswith("void")]
        ['void tsm_predict(const double *x, double *y);', 'void tsm_predict(const double *x, double *y)']
    """
    name = check_c_name(name)
    weights = fitted_weights(regressor)
    sizes = regressor.model_.sizes
    n, m, width = sizes[0], sizes[-1], max(sizes)
    scale_x, scale_y = _input_scaling(regressor), _output_scaling(regressor)
    names = _column_names(regressor)
    inputs = f"x[0..{n - 1}]" + ("" if names is None else ": " + _c_comment(", ".join(names)))
    lines = [
        f"/* {name}: a fitted bias-free sigmoid network {'-'.join(map(str, sizes))}, with the min-max",
        "   scaling of its inputs and outputs, written by torch-sigmoid-mlp export.",
        "",
        f"   void {name}(const double *x, double *y);",
        "",
        f"   reads the {n} input{'s' if n > 1 else ''} {inputs}",
        f"   and writes the {m} output{'s' if m > 1 else ''} y[0..{m - 1}], both in the data's own units.",
        "   x must be finite. C99; needs only libm (link with -lm). */",
        "",
        "#include <math.h>",
        "",
        f"void {name}(const double *x, double *y);",
        "",
        "/* x' = (x - x_min) * x_scale + x_offset */",
        f"static const double {name}_x_min[{n}] = {_c_array(scale_x.center)};",
        f"static const double {name}_x_scale[{n}] = {_c_array(scale_x.scale)};",
        f"static const double {name}_x_offset[{n}] = {_c_array(scale_x.offset)};",
        "",
    ]
    for l, W in enumerate(weights):
        lines.append(f"/* W^({l}), {W.shape[0]} x {W.shape[1]} */")
        lines.append(f"static const double {name}_W{l}[{W.shape[0]}][{W.shape[1]}] = {_c_array(W)};")
        lines.append("")
    lines += [
        "/* y = (y^(L) - y_lo) * y_scale + y_min */",
        f"static const double {name}_y_lo[{m}] = {_c_array(scale_y.center)};",
        f"static const double {name}_y_scale[{m}] = {_c_array(scale_y.scale)};",
        f"static const double {name}_y_min[{m}] = {_c_array(scale_y.offset)};",
        "",
        f"void {name}(const double *x, double *y)",
        "{",
        f"    double a[{width}], b[{width}];",
        "    int i, j;",
        "",
        f"    for (j = 0; j < {n}; ++j) {{",
        f"        a[j] = (x[j] - {name}_x_min[j]) * {name}_x_scale[j] + {name}_x_offset[j];",
        "    }",
    ]
    lines += c_layers([W.shape for W in weights], name, m, c_type="double", sigma="1.0 / (1.0 + exp(-v))")
    return "\n".join(lines)


def _box_lines(net, names: list[str] | None) -> list[str]:
    """One comment line per input column: its name (if any) and its fitted ``[min, max]``."""
    lines = []
    for i, (lo, hi) in enumerate(zip(net.x_min.tolist(), net.x_max.tolist())):
        label = f"x[{i}]" + ("" if names is None else f" ({_c_comment(names[i])})")
        lines.append(f"       {label} in [{lo:.17g}, {hi:.17g}]")
    return lines


def _low_precision_header(check, name: str, regressor: SigmoidMLPRegressor) -> list[str]:
    """The opening comment of a float32 or integer file: what it computes, its box and its bound."""
    net, plan = check.plan.net, check.plan
    n, m = net.sizes[0], net.sizes[-1]
    sizes = "-".join(map(str, net.sizes))
    bound = ", ".join(f"{b:.3e}" for b in check.bound.tolist())
    if check.arithmetic == "float32":
        kind, signature = "float32 (IEEE single precision)", f"void {name}(const float *x, float *y);"
        io = [
            f"   reads the {n} input(s) x[0..{n - 1}] and writes the {m} output(s) y[0..{m - 1}],",
            "   both in the data's own units. sigma without libm: a cubic per interval of a table,",
            f"   |error| <= {plan.sigma_error:.3e}. Compile with -ffp-contract=off (no fused multiply-add),",
            "   as the bound and the bit-exact Python model (check_export(...).predict) assume.",
            "   C99, no #include.",
        ]
    else:
        kind = f"{check.arithmetic} fixed point ({plan.c_acc[:-2]} sums)"
        signature = f"void {name}(const {name}_WORD *x, {name}_WORD *y);"
        io = [
            f"   reads the {n} input word(s) x[i] = round(x_i * 2^{name}_X_SHIFT[i]) and writes the {m}",
            f"   output word(s) y[j], the prediction y[j] / 2^{name}_Y_SHIFT[j]; both in the data's units.",
            "   Inputs outside the fitted box are clamped to it. No sum can overflow, for any input.",
            f"   sigma: a cubic per interval of a table, |error| <= {plan.sigma_error:.3e}.",
            "   C99, integers only: includes <stdint.h> and nothing else.",
        ]
    lines = [
        f"/* {name}: a fitted bias-free sigmoid network {sizes} in {kind},",
        "   with the min-max scaling of its inputs and outputs, written by torch-sigmoid-mlp export.",
        "",
        f"   {signature}",
        "",
        *io,
        "",
        "   The fitted box, inside which the bound holds:",
        *_box_lines(net, _column_names(regressor)),
        f"   There |y - y_float64| <= B = {bound} (per output, y's units), proven by error",
        "   propagation through the layers (torch_sigmoid_mlp.check_export).",
    ]
    if check.reason:
        lines += [
            "",
            *(f"   {_c_comment(part.strip())}" for part in ("chosen by auto: " + check.reason).split(";")),
        ]
    return [*lines[:-1], lines[-1] + " */", ""]


def low_precision_source(check, name: str, regressor: SigmoidMLPRegressor) -> str:
    """The C99 file of a float32 or integer :class:`~.verification.ExportCheck`, as a string."""
    header = _low_precision_header(check, name, regressor)
    if check.arithmetic == "float32":
        return float32_c_source(check.plan, name, header)
    return integer_c_source(check.plan, name, header)


def export_c(
    regressor: SigmoidMLPRegressor,
    path: str | os.PathLike,
    *,
    name: str = "tsm_predict",
    arithmetic: str = "float64",
    X=None,
    y=None,
    tol: float | None = None,
) -> Path:
    r"""Write ``regressor``'s prediction as one dependency-free C99 source file.

    With ``arithmetic="float64"`` (the default) the file defines
    ``void NAME(const double *x, double *y)``, which reads the ``n`` inputs
    ``x[0..n−1]`` (in the order of the columns the model was fitted on) and writes the ``m``
    outputs ``y[0..m−1]`` in the data's own units::

        y = scale_y⁻¹(F(scale_x(x); w)),   y^(l+1) = σ(W^(l) y^(l)),   σ(v) = 1 / (1 + exp(−v))

    The weights and the scalers' constants are ``static const double`` arrays printed with
    ``%.17g``, so each reads back as the same double; it includes only ``<math.h>`` (link with
    ``-lm``) and compiles with ``-std=c99 -Wall -Wextra -pedantic`` without a warning. It
    computes in double: a float64 model gives :meth:`predict
    <torch_sigmoid_mlp.SigmoidMLPRegressor.predict>`'s outputs to rounding (``~1e-15``
    relative), a float32 model its float32 weights evaluated in double.

    For targets without double (or without an FPU):

    - ``"float32"``: ``void NAME(const float *x, float *y)``, all in float, σ without libm
      (:mod:`~torch_sigmoid_mlp.estimator.floating`);
    - ``"int32"``, ``"int16"``: integers only, ``<stdint.h>`` and nothing else
      (:mod:`~torch_sigmoid_mlp.estimator.fixed_point`): ``NAME_WORD`` the word type,
      ``static const int NAME_X_SHIFT[n]`` and ``NAME_Y_SHIFT[m]``, and
      ``void NAME(const NAME_WORD *x, NAME_WORD *y)`` with ``x[i] = round(x_i·2^X_SHIFT[i])``
      and ``y[j]/2^Y_SHIFT[j]`` the prediction, in the data's units; inputs outside the fitted
      box are clamped to it;
    - ``"auto"``: the smallest of int16, int32, float32, float64 for which
      :func:`~torch_sigmoid_mlp.check_export` says ``tol`` holds (on ``X, y`` if given, else
      proven at the training points); the file's opening comment says which and why.

    Each of these files states its bound ``B`` on ``|ŷ − ŷ_float64|`` over the fitted box, and
    ``check_export(regressor, arithmetic).predict`` is its bit-exact Python model. The file is
    written atomically, and not at all where the network does not fit the word.

    Args:
        regressor: a fitted :class:`~torch_sigmoid_mlp.SigmoidMLPRegressor`.
        path: the ``.c`` file to write.
        name: the function's name, a C identifier (its constants are prefixed with it too).
        arithmetic: ``"float64"``, ``"float32"``, ``"int32"``, ``"int16"`` or ``"auto"``.
        X, y: points for ``"auto"`` to check ``tol`` on (optional).
        tol: the ``ε`` ``"auto"`` keeps, in y's units (default: the regressor's ``tol``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ValueError: a bad name or arithmetic, a network that does not fit the word (naming what
            does not), or ``"auto"`` where no arithmetic keeps ``tol``.

    Example::

        >>> import numpy as np, pathlib, tempfile
        >>> X = np.linspace(0.0, 2.0, 20).reshape(-1, 1)
        >>> reg = SigmoidMLPRegressor(hidden=(4,), max_epochs=50, device="cpu").fit(X, 3.0 + X[:, 0])
        >>> path = export_c(reg, pathlib.Path(tempfile.mkdtemp()) / "model.c", name="model_predict")
        >>> print(path.read_text().splitlines()[3])
           void model_predict(const double *x, double *y);
        >>> path = export_c(reg, path.with_name("model16.c"), name="model_predict", arithmetic="int16")
        >>> print(path.read_text().splitlines()[3])
           void model_predict(const model_predict_WORD *x, model_predict_WORD *y);
    """
    path = Path(path)
    write_c(regressor, path, name=name, arithmetic=arithmetic, X=X, y=y, tol=tol)
    return path


def write_c(regressor, path: Path, *, name: str, arithmetic: str, X=None, y=None, tol=None):
    """:func:`export_c`'s work: writes the file, returns its :class:`~.verification.ExportCheck`
    (``None`` for float64 without points, whose file is today's and needs no check)."""
    name = check_c_name(name)
    check = None
    if arithmetic != "float64" or X is not None or tol is not None:
        check = check_export(regressor, arithmetic, X, y, tol=tol)
    if check is None or check.arithmetic == "float64":
        source = c_source(regressor, name)
    else:
        source = low_precision_source(check, name, regressor)
    with atomic_path(path) as tmp:
        tmp.write_text(source, encoding="utf-8")
    return check
