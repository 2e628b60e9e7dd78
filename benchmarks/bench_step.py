"""Time one full-batch steepest-descent step (forward, backward, update) of an n → n → n → 1 sigmoid
network on T test points, for this library and the ways one would otherwise write it.

Contenders (each skipped with a note where it can't run):

    a    nn.Sequential(Linear(bias=False), Sigmoid, …) + 1/2·Σ(y−d)² + loss.backward() + optim.SGD
    b0   SigmoidMLP(backend="autograd"): the same maths as plain torch ops, differentiated by autograd
    b    SigmoidMLP(backend="manual"): this library's Function via loss.backward(), + optim.SGD
    c    train(model, x, d, lr=η, max_epochs=k, tol=unreachable): the tape-free step as a user runs
         it, stopping test, divergence check and argument checks included; the time of a call / k
    cf   TapeFreeStep alone: forward, the stopping test's max_t|e(t)|.item(), deltas, addmm_ update
    d    GEMM floor: only the L forward and 2L−1 backward matrix products, into preallocated outputs
    e    torch.compile of (a)'s forward and loss; backward and optim.SGD as in (a)
    f    a hand-written numpy step (explicit deltas, W += η δᵀy)
    g    scikit-learn MLPRegressor(logistic, sgd, momentum 0, batch_size=T): one partial_fit
    h    FANN (libfann2 through ctypes): [n, n, n, 1], FANN_SIGMOID, FANN_TRAIN_BATCH, one fann_train_epoch

Contenders are interleaved: every round times each of them once (a sample is enough calls to fill
``--sample-ms``), in an order that rotates from round to round, after a warm-up. Reported: the median
time per step over the rounds and the interquartile range, and ratios against (a) and against (d).

    python benchmarks/bench_step.py                  # the full run: every size, float32 and float64
    python benchmarks/bench_step.py --quick          # a few seconds per size, to check that it works
    python benchmarks/bench_step.py --sizes 2x100 32x2000 --dtypes float32 --contenders a b c d
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import datetime
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import machine
import numpy as np
import torch
from fann import FANN_SIGMOID, FANN_TRAIN_BATCH, FannTrainData
from torch import nn

from torch_sigmoid_mlp import SigmoidMLP, sse_loss, train
from torch_sigmoid_mlp.core.tape_free import TapeFreeStep

RESULTS = Path(__file__).resolve().parent / "results"

SIZES = [(2, 100), (8, 1000), (32, 2000), (128, 10_000), (512, 20_000), (8, 1_000_000)]
SCALING_SIZES = [(8, 1000), (8, 10_000), (8, 100_000), (8, 1_000_000)]
CONTENDERS = ["a", "b0", "b", "c", "cf", "d", "e", "f", "g", "h"]
LABELS = {
    "a": "(a) nn.Sequential + autograd + SGD",
    "b0": "(b0) same maths, autograd backend",
    "b": "(b) SigmoidMLP manual Function",
    "c": "(c) fused step through train()",
    "cf": "(cf) FusedSGDStep alone",
    "d": "(d) GEMM floor",
    "e": "(e) torch.compile of (a)",
    "f": "(f) numpy by hand",
    "g": "(g) sklearn MLPRegressor",
    "h": "(h) FANN",
}


class Skip(Exception):
    """A contender that can't run here; the message says why."""


# ---------------------------------------------------------------------------------------------
# The problem: x in (0.1, 0.9)^n, d in (0.1, 0.9), the same initial weights for everyone.


def make_problem(n, T, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    model = SigmoidMLP(n, dtype=torch.float64, generator=g)
    x = 0.1 + 0.8 * torch.rand(T, n, generator=g, dtype=torch.float64)
    d = 0.1 + 0.8 * torch.rand(T, 1, generator=g, dtype=torch.float64)
    weights = [W.detach().to(device=device, dtype=dtype) for W in model.weights]
    # A small step keeps the sigmoids away from saturation over the thousands of timed steps.
    lr = 0.1 / T
    return x.to(device=device, dtype=dtype), d.to(device=device, dtype=dtype), weights, lr


def sequential(weights):
    layers = []
    for W in weights:
        linear = nn.Linear(W.shape[1], W.shape[0], bias=False, device=W.device, dtype=W.dtype)
        with torch.no_grad():
            linear.weight.copy_(W)
        layers += [linear, nn.Sigmoid()]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Contenders: each builder returns a zero-argument callable that performs one training step.


def build_a(x, d, weights, lr):
    seq = sequential(weights)
    opt = torch.optim.SGD(seq.parameters(), lr=lr)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * (seq(x) - d).pow(2).sum()
        loss.backward()
        opt.step()

    return step


def _library_step(backend):
    def build(x, d, weights, lr):
        model = SigmoidMLP(x.shape[1], backend=backend, device=x.device, dtype=x.dtype)
        with torch.no_grad():
            for mine, W in zip(model.weights, weights):
                mine.copy_(W)
        opt = torch.optim.SGD(model.parameters(), lr=lr)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = sse_loss(model(x), d)
            loss.backward()
            opt.step()

        return step

    return build


# How long one timed call of train should take: k epochs amortise its per-call work (argument
# checks over x and d, the step's buffers) the way a real run of many epochs does.
TRAIN_CALL_S = 0.5


def build_c(x, d, weights, lr):
    """``train`` itself for ``k`` epochs per call; a sample's time is divided by ``k``."""
    model = SigmoidMLP(x.shape[1], device=x.device, dtype=x.dtype)  # backend="manual"
    with torch.no_grad():
        for mine, W in zip(model.weights, weights):
            mine.copy_(W)
    tol = 1e-30  # never met: every epoch runs its stopping test, then its update

    def run(k):
        result = train(model, x, d, lr=lr, max_epochs=k, tol=tol)
        if result.stop_reason != "max_epochs":  # a diverged or converged run would time less work
            raise RuntimeError(f"train stopped early: {result.stop_reason} after {result.epochs} epochs")

    # k from the time of an epoch: where it is quick, the difference of warm calls of 21 and 1
    # epochs (a call's own work cancels), else a call of one (an upper bound). At least 10 epochs a
    # call: a call's own work (argument checks, buffers, and the last forward pass, for its stopping
    # test, which in one long run would be the next epoch's) is amortised over k.
    run(1)  # the first call pays for lazy initialisation
    one = _time_calls(lambda: run(1), 1, x.device)
    if one < 0.05:
        one = (_time_calls(lambda: run(21), 1, x.device) - one) / 20
    k = max(10, min(5000, int(TRAIN_CALL_S / max(one, 1e-9))))

    def step():
        run(k)

    step.epochs = k
    return step


def build_cf(x, d, weights, lr):
    weights = [W.clone() for W in weights]
    step = TapeFreeStep(weights, rows=x.shape[0])
    forward, update = step.forward, step.update
    tol = 0.0  # never met: every step runs to its update, after the stopping test

    def step():
        _, max_error = forward(x, d)
        if max_error.item() < tol:
            return
        update(lr)

    return step


def build_d(x, d, weights, lr):
    """Only the matrix products of a step, with the shapes of (c), into preallocated outputs."""
    T = x.shape[0]
    ys = [torch.empty(T, W.shape[0], dtype=x.dtype, device=x.device) for W in weights]
    backs = [torch.empty(T, W.shape[1], dtype=x.dtype, device=x.device) for W in weights[1:]]
    grads = [torch.empty_like(W) for W in weights]
    inputs = [x, *ys[:-1]]

    def step():
        for W, y_in, y_out in zip(weights, inputs, ys):
            torch.mm(y_in, W.t(), out=y_out)
        for l in range(len(weights) - 1, -1, -1):
            delta = ys[l]
            if l > 0:
                torch.mm(delta, weights[l], out=backs[l - 1])
            torch.mm(delta.t(), inputs[l], out=grads[l])

    return step


def build_e(x, d, weights, lr):
    seq = sequential(weights)
    opt = torch.optim.SGD(seq.parameters(), lr=lr)

    def loss_of(x, d):
        return 0.5 * (seq(x) - d).pow(2).sum()

    # Every size compiles the same code object anew; without a reset dynamo would stop at its
    # recompile limit and quietly run the rest eagerly.
    torch._dynamo.reset()
    compiled = torch.compile(loss_of, dynamic=False)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = compiled(x, d)
        loss.backward()
        opt.step()

    try:
        start = time.perf_counter()
        step()
        _sync(x.device)
        step.compile_seconds = time.perf_counter() - start
    except Exception as exc:  # inductor needs a working C++ toolchain; say what failed
        raise Skip(f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}") from exc
    return step


def build_f(x, d, weights, lr):
    if x.device.type != "cpu":
        raise Skip("numpy runs on the CPU only")
    X, D = x.numpy().copy(), d.numpy().copy()
    Ws = [W.numpy().copy() for W in weights]

    def sigmoid(v):
        return 1.0 / (1.0 + np.exp(-v))

    def step():
        ys = [X]
        for W in Ws:
            ys.append(sigmoid(ys[-1] @ W.T))  # y^(l+1), (T, size_{l+1})
        e = D - ys[-1]  # e = d − y^(L)
        delta = e * ys[-1] * (1 - ys[-1])  # δ^(L)
        for l in range(len(Ws) - 1, -1, -1):
            back = delta @ Ws[l] if l > 0 else None  # W^(l)ᵀ δ^(l+1) with the old W^(l)
            Ws[l] += lr * (delta.T @ ys[l])  # W^(l) += η δ^(l+1)ᵀ y^(l)
            if l > 0:
                delta = back * ys[l] * (1 - ys[l])  # δ^(l)

    return step


def build_g(x, d, weights, lr):
    if x.device.type != "cpu":
        raise Skip("scikit-learn runs on the CPU only")
    try:
        from sklearn.neural_network import MLPRegressor
    except ImportError as exc:
        raise Skip("scikit-learn is not installed") from exc
    import warnings

    n, T = x.shape[1], x.shape[0]
    X, D = x.numpy(), d.numpy().ravel()
    reg = MLPRegressor(
        hidden_layer_sizes=(n, n),
        activation="logistic",
        solver="sgd",
        batch_size=T,
        learning_rate_init=lr,
        momentum=0.0,
        shuffle=False,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg.partial_fit(X, D)

    def step():
        reg.partial_fit(X, D)

    return step


def _load_fann(dtype):
    names = {torch.float32: ["floatfann", "fann"], torch.float64: ["doublefann"]}.get(dtype)
    if names is None:
        raise Skip(f"FANN has no {dtype} build")
    for name in names:
        path = ctypes.util.find_library(name)
        if path:
            lib = ctypes.CDLL(path)
            break
    else:
        raise Skip(f"libfann ({' or '.join('lib' + n for n in names)}) is not installed")
    lib.fann_create_standard_array.restype = ctypes.c_void_p
    lib.fann_create_standard_array.argtypes = [ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
    lib.fann_create_train.restype = ctypes.POINTER(FannTrainData)
    lib.fann_create_train.argtypes = [ctypes.c_uint, ctypes.c_uint, ctypes.c_uint]
    lib.fann_train_epoch.restype = ctypes.c_float
    lib.fann_train_epoch.argtypes = [ctypes.c_void_p, ctypes.POINTER(FannTrainData)]
    for name in ["fann_set_activation_function_hidden", "fann_set_activation_function_output"]:
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.fann_set_training_algorithm.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.fann_set_learning_rate.argtypes = [ctypes.c_void_p, ctypes.c_float]
    lib.fann_destroy.argtypes = [ctypes.c_void_p]
    lib.fann_destroy_train.argtypes = [ctypes.POINTER(FannTrainData)]
    return lib


def build_h(x, d, weights, lr):
    if x.device.type != "cpu":
        raise Skip("FANN runs on the CPU only")
    lib = _load_fann(x.dtype)
    T, n = x.shape
    sizes = [W.shape[1] for W in weights] + [weights[-1].shape[0]]
    layers = (ctypes.c_uint * len(sizes))(*sizes)
    ann = lib.fann_create_standard_array(len(sizes), layers)
    lib.fann_set_activation_function_hidden(ann, FANN_SIGMOID)
    lib.fann_set_activation_function_output(ann, FANN_SIGMOID)
    lib.fann_set_training_algorithm(ann, FANN_TRAIN_BATCH)
    lib.fann_set_learning_rate(ann, lr)
    data = lib.fann_create_train(T, n, d.shape[1])
    # fann_create_train allocates each of input and output as one contiguous block of rows.
    ctypes.memmove(data.contents.input[0], x.numpy().ctypes.data, x.numel() * x.element_size())
    ctypes.memmove(data.contents.output[0], d.numpy().ctypes.data, d.numel() * d.element_size())

    def step():
        lib.fann_train_epoch(ann, data)

    # Freed when the step is dropped.
    step.release = lambda: (lib.fann_destroy_train(data), lib.fann_destroy(ann))
    return step


BUILDERS = {
    "a": build_a,
    "b0": _library_step("autograd"),
    "b": _library_step("manual"),
    "c": build_c,
    "cf": build_cf,
    "d": build_d,
    "e": build_e,
    "f": build_f,
    "g": build_g,
    "h": build_h,
}


# ---------------------------------------------------------------------------------------------
# Timing


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_calls(step, calls, device):
    """Seconds per call of ``step`` over ``calls`` calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        step()
    _sync(device)
    return (time.perf_counter() - start) / calls


def measure(steps, device, *, rounds, sample_s, budget_s, warmup_s):
    """Interleaved samples of each step's time; returns ``{name: [seconds per step, …]}``."""
    calls, rounds_of = {}, {}
    for name, step in steps.items():
        # Warm up (caches, allocator, lazy init), then size a sample to fill ``sample_s``.
        one = spent = _time_calls(step, 1, device)
        while spent < warmup_s and one < sample_s:
            one = _time_calls(step, 1, device)
            spent += one
        calls[name] = max(1, int(sample_s / max(one, 1e-9)))
        # Steps that take long get fewer rounds, so that one contender can't eat the run.
        rounds_of[name] = max(2, min(rounds, int(budget_s / max(one * calls[name], 1e-9))))
    samples = {name: [] for name in steps}
    names = list(steps)
    for r in range(max(rounds_of.values())):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            if len(samples[name]) < rounds_of[name]:
                # a step that runs several epochs per call (c: train for k epochs) counts per epoch
                epochs = getattr(steps[name], "epochs", 1)
                samples[name].append(_time_calls(steps[name], calls[name], device) / epochs)
    return samples, calls


def summarise(times):
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_us": statistics.median(times) * 1e6, "q1_us": q[0] * 1e6, "q3_us": q[2] * 1e6}


def run_config(n, T, dtype, device, contenders, args):
    x, d, weights, lr = make_problem(n, T, dtype, device)
    steps, notes, compile_s = {}, {}, {}
    for name in contenders:
        try:
            step = BUILDERS[name](x, d, weights, lr)
        except Skip as why:
            notes[name] = str(why)
            continue
        steps[name] = step
        if hasattr(step, "compile_seconds"):
            compile_s[name] = step.compile_seconds
    samples, calls = measure(
        steps,
        device,
        rounds=args.rounds,
        sample_s=args.sample_ms / 1e3,
        budget_s=args.budget_s,
        warmup_s=args.warmup_ms / 1e3,
    )
    for step in steps.values():
        if hasattr(step, "release"):
            step.release()
    result = {}
    for name, times in samples.items():
        result[name] = {**summarise(times), "rounds": len(times), "calls_per_sample": calls[name]}
        if hasattr(steps[name], "epochs"):
            result[name]["epochs_per_call"] = steps[name].epochs
        if name in compile_s:
            result[name]["compile_s"] = compile_s[name]
    return {
        "n": n,
        "T": T,
        "dtype": str(dtype).removeprefix("torch."),
        "device": str(device),
        "results": result,
        "skipped": notes,
    }


# ---------------------------------------------------------------------------------------------
# Reporting


def fmt_us(us):
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.1f} µs"


def markdown(report):
    info = report["machine"]
    lines = [
        "# One full-batch training step: median time (interquartile range)",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores"
        + (f", {info['gpu']}" if "gpu" in info else "")
        + f"; torch {info['torch']} ({info['torch_threads']} threads), numpy {info['numpy']}, "
        f"Python {info['python']}. {report['date']}; load average at the start "
        f"{' / '.join(map(str, info['load_average']))} (1 / 5 / 15 min).",
        "",
        f"Command: `{report['command']}`",
        "",
        "Network n → n → n → 1, no biases, sigmoid everywhere; T test points, full batch. "
        "(g) and (h) differ a little in the maths: scikit-learn's output is linear and FANN has biases. "
        "(c) is `train(model, x, d, lr=η, max_epochs=k, tol=1e-30)` timed per call and divided by its k "
        "epochs (stopping test, divergence check and argument checks included; k in the JSON as "
        "`epochs_per_call`); (cf) is the same step without `train` around it.",
        "",
    ]
    groups = {}
    for cfg in report["configs"]:
        groups.setdefault((cfg["device"], cfg["dtype"]), []).append(cfg)
    for (device, dtype), cfgs in groups.items():
        names = [c for c in CONTENDERS if any(c in cfg["results"] for cfg in cfgs)]
        lines += [f"## {device}, {dtype}", ""]
        lines.append("| (n, T) | " + " | ".join(LABELS[c] for c in names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for cfg in cfgs:
            cells = []
            for c in names:
                r = cfg["results"].get(c)
                if r is None:
                    cells.append("—")
                else:
                    cells.append(f"{fmt_us(r['median_us'])} ({fmt_us(r['q1_us'])}–{fmt_us(r['q3_us'])})")
            lines.append(f"| ({cfg['n']}, {cfg['T']}) | " + " | ".join(cells) + " |")
        lines += ["", "Ratios of medians: speed-up over (a) = t(a)/t(x); × floor = t(x)/t(d).", ""]
        lines.append("| (n, T) | " + " | ".join(f"{c}: ×a / ×d" for c in names) + " |")
        lines.append("|---" * (len(names) + 1) + "|")
        for cfg in cfgs:
            res = cfg["results"]
            cells = []
            for c in names:
                if c not in res:
                    cells.append("—")
                    continue
                t = res[c]["median_us"]
                sa = f"{res['a']['median_us'] / t:.2f}" if "a" in res else "–"
                fd = f"{t / res['d']['median_us']:.2f}" if "d" in res else "–"
                cells.append(f"{sa} / {fd}")
            lines.append(f"| ({cfg['n']}, {cfg['T']}) | " + " | ".join(cells) + " |")
        compiles = [(cfg, cfg["results"]["e"]["compile_s"]) for cfg in cfgs if "e" in cfg["results"]]
        if compiles:
            lines += [
                "",
                "torch.compile time of (e), first call: "
                + ", ".join(f"({cfg['n']}, {cfg['T']}) {s:.1f} s" for cfg, s in compiles)
                + ".",
            ]
        skipped = {f"{LABELS[c]}: {why}" for cfg in cfgs for c, why in cfg["skipped"].items()}
        if skipped:
            lines += ["", "Skipped: " + "; ".join(sorted(skipped)) + "."]
        lines.append("")
    if report.get("scaling"):
        lines += ["## Time per test point as T grows (n = 8)", ""]
        names = [c for c in CONTENDERS if any(c in cfg["results"] for cfg in report["scaling"])]
        lines.append("| device, dtype | T | " + " | ".join(f"{LABELS[c]} ns/point" for c in names) + " |")
        lines.append("|---" * (len(names) + 2) + "|")
        for cfg in report["scaling"]:
            cells = [
                f"{cfg['results'][c]['median_us'] * 1e3 / cfg['T']:.1f}" if c in cfg["results"] else "—"
                for c in names
            ]
            lines.append(f"| {cfg['device']}, {cfg['dtype']} | {cfg['T']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def parse_size(text):
    n, T = text.lower().split("x")
    return int(n), int(float(T))


def main(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument(
        "--sizes", nargs="+", type=parse_size, default=SIZES, metavar="NxT", help="e.g. 2x100 8x1e6"
    )
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    p.add_argument("--devices", nargs="+", default=None, help="default: cpu, and cuda when present")
    p.add_argument("--contenders", nargs="+", default=CONTENDERS, choices=CONTENDERS)
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds (fewer for slow steps)")
    p.add_argument("--sample-ms", type=float, default=20.0, help="time one sample should fill")
    p.add_argument("--budget-s", type=float, default=6.0, help="rough cap on one contender's timed seconds")
    p.add_argument("--warmup-ms", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=None, help="torch's and BLAS's threads (default: theirs)")
    p.add_argument("--no-scaling", action="store_true", help="skip the time-per-point table")
    p.add_argument("--quick", action="store_true", help="few rounds, short samples, small sizes")
    p.add_argument(
        "--output", default=None, help="file stem under benchmarks/results/ (default: step_<device>)"
    )
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.sample_ms, args.budget_s, args.warmup_ms = 5, 5.0, 1.0, 20.0
        if args.sizes == SIZES:
            args.sizes = SIZES[:3]
    if args.threads:
        torch.set_num_threads(args.threads)
        try:  # numpy's and scikit-learn's BLAS too, so that (f) and (g) run like the rest
            from threadpoolctl import threadpool_limits

            threadpool_limits(args.threads)
        except ImportError:
            pass
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])

    report = {
        "command": shlex.join(
            ["python", "benchmarks/bench_step.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {**machine.describe(), "numpy": np.__version__},
        "configs": [],
        "scaling": [],
    }
    for device in map(torch.device, devices):
        for dtype in (getattr(torch, name) for name in args.dtypes):
            for n, T in args.sizes:
                cfg = run_config(n, T, dtype, device, args.contenders, args)
                report["configs"].append(cfg)
                summary = ", ".join(f"{c} {fmt_us(r['median_us'])}" for c, r in cfg["results"].items())
                print(f"{device} {cfg['dtype']} ({n}, {T}): {summary}", flush=True)
        if not args.no_scaling and not args.quick:
            scaling = [c for c in ["a", "c", "d"] if c in args.contenders]
            for n, T in SCALING_SIZES:
                cfg = run_config(n, T, torch.float32, device, scaling, args)
                report["scaling"].append(cfg)
                print(
                    f"scaling {device} float32 ({n}, {T}): "
                    + ", ".join(
                        f"{c} {r['median_us'] * 1e3 / T:.1f} ns/point" for c, r in cfg["results"].items()
                    ),
                    flush=True,
                )

    RESULTS.mkdir(exist_ok=True)
    stem = args.output or ("step_quick" if args.quick else "step_" + "_".join(devices))
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    (RESULTS / f"{stem}.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
