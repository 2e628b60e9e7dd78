"""Data-parallel training with real processes, and the chunked full-batch gradient.

The two-rank tests spawn two CPU processes that form a ``gloo`` group the way ``torchrun`` would
(``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` and :func:`init_from_env`),
each working on its shard of the test points; the parent compares what they saved with a
single-process full-batch run in float64. One spawn serves every two-rank test.
"""

import datetime
import os
import socket
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from problems import random_problem
from torch.nn.parallel import DistributedDataParallel

from torch_sigmoid_mlp import SigmoidMLPRegressor, cli, sigmoid_mlp_autograd, sse_loss
from torch_sigmoid_mlp.training import TrainResult, train
from torch_sigmoid_mlp.training.chunking import accumulate_gradients, chunked_error
from torch_sigmoid_mlp.training.distributed import (
    FlatGradients,
    all_reduce_max,
    any_rank,
    broadcast_,
    end_process_group,
    get_rank,
    get_world_size,
    global_error,
    global_gradients,
    init_from_env,
    is_distributed,
    is_main_process,
    shard,
)

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats

WORLD_SIZE = 2
STEPS = 20  # full-batch steps each run takes
LR = 0.05
T = 37  # odd, so the shards differ in size (19 and 18 points)
TOL = 0.48  # met at epoch 11 of the STEPS
LM_STEPS = 8  # epochs of method="lm_cg"
#: CG solved to a residual of 1e-12 (no inexact stop, whose iteration count rounding could change)
CG_EXACT = {"cg_eta": None, "cg_rtol": 1e-12, "cg_max_iter": 5000}


def make_problem(T=T, sizes=(3, 4, 4, 1), seed=0, dtype=torch.float64):
    """A model and ``T`` test points, targets in (0.1, 0.9), the same in every process that calls it."""
    return random_problem(sizes, T, seed=seed, dtype=dtype, targets=(0.1, 0.9))


def make_estimator() -> SigmoidMLPRegressor:
    return SigmoidMLPRegressor(
        hidden=(4,),
        solver="sgd",
        max_epochs=STEPS,
        validation_fraction=0.25,
        device="cpu",
        dtype=torch.float64,
    )


def estimator_data():
    g = torch.Generator().manual_seed(3)
    X = torch.rand(41, 2, generator=g, dtype=torch.float64)
    return X, torch.sin(3 * X[:, 0]) + X[:, 1] ** 2


def reference_gradients(model, x, d):
    """``E`` and ``∂E/∂W^(l)`` over all points, through plain autograd."""
    weights = [W.detach().clone().requires_grad_(True) for W in model.weights]
    E = sse_loss(sigmoid_mlp_autograd(x, weights), d)
    return E.detach(), torch.autograd.grad(E, weights)


def gradient_descent(model, x, d, steps=STEPS, lr=LR):
    """``W ← W − η ∂E/∂W`` over all points in one process: what every distributed run must equal."""
    for _ in range(steps):
        _, grads = reference_gradients(model, x, d)
        with torch.no_grad():
            for W, g in zip(model.weights, grads):
                W -= lr * g
    return [W.detach().clone() for W in model.weights]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, outdir: str) -> None:
    """One rank: join the group as torchrun would, run every scenario, save what the parent checks."""
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD_SIZE),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(WORLD_SIZE),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    # A rank that waits on the other for a minute is a bug: fail instead of hanging the test run.
    initialised = init_from_env(timeout=datetime.timedelta(seconds=60))
    out = {"initialised": initialised, "rank": get_rank(), "world_size": get_world_size()}
    out["outdir"] = outdir
    out["backend"] = dist.get_backend()
    out["main"] = is_main_process()

    # One step's gradient, E and max error, from this rank's shard, reduced over ranks.
    model, x, d = make_problem()
    x_r, d_r = shard(x), shard(d)
    out["shard_size"] = x_r.shape[0]
    grads = FlatGradients(model.parameters())
    E, max_abs_error = global_gradients(model, x_r, d_r, grads, chunk_size=5)
    out["E"], out["max_abs_error"] = E, max_abs_error
    out["grads"] = [W.grad.clone() for W in model.weights]
    out["all_reduce_max"] = all_reduce_max(torch.tensor(float(rank)))
    out["global_error"] = global_error(model, x_r, d_r, chunk_size=4)
    out["any_rank"] = [any_rank(rank == 1), any_rank(False)]
    mine = [torch.full((2, 3), float(rank)), torch.full((4,), 10.0 + rank)]
    broadcast_(mine)
    out["broadcast"] = mine

    # STEPS steps of gradient descent, each with one all_reduce of the flat buffer.
    model, x, d = make_problem()
    grads = FlatGradients(model.parameters())
    for _ in range(STEPS):
        global_gradients(model, shard(x), shard(d), grads)
        with torch.no_grad():
            for W in model.weights:
                W -= LR * W.grad
    out["weights_flat"] = [W.detach().clone() for W in model.weights]

    # The same through DDP around the manual-backend module. DDP averages gradients over ranks, so
    # each rank's loss is P·E_r: the average of P·∂E_r/∂W is Σ_r ∂E_r/∂W = ∂E/∂W.
    model, x, d = make_problem()
    if rank != 0:
        model.reset_parameters(torch.Generator().manual_seed(100))  # DDP must broadcast rank 0's weights
    ddp = DistributedDataParallel(model)
    out["ddp_initial"] = [W.detach().clone() for W in model.weights]
    opt = torch.optim.SGD(ddp.parameters(), lr=LR)
    for step in range(STEPS):
        opt.zero_grad()
        (WORLD_SIZE * sse_loss(ddp(shard(x)), shard(d))).backward()
        if step == 0:
            out["ddp_grads"] = [W.grad.clone() for W in model.weights]
        opt.step()
    out["ddp_weights"] = [W.detach().clone() for W in model.weights]

    del ddp, opt  # DDP refers to the group: it must go before the group does (end_process_group)

    _train_scenarios(rank, outdir, out)
    torch.save(out, os.path.join(outdir, f"rank{rank}.pt"))
    end_process_group()


def _train_scenarios(rank: int, outdir: str, out: dict) -> None:
    """``train`` in the group, each rank passing its own shard of the points; results saved as plain
    values (``asdict``), which ``torch.load(weights_only=True)`` reads back."""
    out["pid"] = os.getpid()
    model, x, d = make_problem()
    logdir = os.path.join(outdir, "tb")
    result = train(model, shard(x), shard(d), lr=LR, max_epochs=STEPS, logdir=logdir, log_every=5)
    out["train"] = ([W.detach().clone() for W in model.weights], asdict(result))

    model, x, d = make_problem()
    result = train(model, shard(x), shard(d), lr=LR, max_epochs=STEPS, chunk_size=5)
    out["train_chunked"] = ([W.detach().clone() for W in model.weights], asdict(result))

    model, x, d = make_problem()
    x_val, d_val = make_problem(T=11, seed=1)[1:]
    validation = (shard(x_val), shard(d_val))
    result = train(model, shard(x), shard(d), lr=LR, max_epochs=STEPS, tol=TOL, validation=validation)
    out["train_tol"] = ([W.detach().clone() for W in model.weights], asdict(result))

    # Rank 1 alone asks to stop at epoch 3: rank 0 must stop there too, or the group would hang.
    model, x, d = make_problem()
    result = train(
        model, shard(x), shard(d), lr=LR, max_epochs=STEPS, callback=lambda k, _: not (rank == 1 and k == 3)
    )
    out["train_callback"] = asdict(result)

    # Matrix-free LM: every product JᵀSJ·v, JᵀSe and diag(JᵀSJ) summed over the ranks, chunks within.
    model, x, d = make_problem()
    result = train(
        model, shard(x), shard(d), method="lm_cg", max_epochs=LM_STEPS, chunk_size=5, options=CG_EXACT
    )
    out["train_lm_cg"] = ([W.detach().clone() for W in model.weights], asdict(result))

    # The estimator: every rank passes all the data, fit shards it.
    est = make_estimator().fit(*estimator_data())
    out["estimator"] = ([W.detach().clone() for W in est.model_.weights], asdict(est.result_))


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    """What each of the two spawned ranks saved, in rank order."""
    outdir = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(free_port(), str(outdir)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(outdir / f"rank{r}.pt") for r in range(WORLD_SIZE)]


def test_init_from_env_joins_the_group(ranks):
    for r, out in enumerate(ranks):
        assert out["initialised"] and out["rank"] == r and out["world_size"] == WORLD_SIZE, out
        assert out["backend"] == "gloo"
        assert out["main"] == (r == 0)
    assert [out["shard_size"] for out in ranks] == [19, 18]


def test_votes_and_broadcast_reach_every_rank(ranks):
    for r, out in enumerate(ranks):
        assert out["any_rank"] == [True, False], f"rank {r}"
        assert out["broadcast"][0].eq(0).all() and out["broadcast"][1].eq(10).all(), f"rank {r}"
        assert out["broadcast"][0].shape == (2, 3) and out["broadcast"][1].shape == (4,)


def test_init_from_env_without_torchrun_does_nothing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert not init_from_env()
    assert not is_distributed() and get_rank() == 0 and get_world_size() == 1 and is_main_process()


def test_reduced_gradient_equals_single_process(ranks):
    model, x, d = make_problem()
    E, grads = reference_gradients(model, x, d)
    max_abs_error = (d - model(x)).abs().max().detach()
    for r, out in enumerate(ranks):
        torch.testing.assert_close(out["E"], E, rtol=1e-12, atol=0, msg=f"E on rank {r}")
        # a shard's forward pass is a matrix product of another shape than the whole batch's, which
        # a BLAS may sum in another order: equal up to float64 rounding, not bit for bit
        torch.testing.assert_close(out["max_abs_error"], max_abs_error, rtol=1e-12, atol=0, msg=f"max on {r}")
        for l, (g, ref) in enumerate(zip(out["grads"], grads)):
            torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14, msg=f"∂E/∂W^({l}) on rank {r}")
        assert out["all_reduce_max"].item() == WORLD_SIZE - 1
        torch.testing.assert_close(out["global_error"][0], E, rtol=1e-12, atol=0, msg=f"global E on {r}")
        torch.testing.assert_close(
            out["global_error"][1], max_abs_error, rtol=1e-12, atol=0, msg=f"max on {r}"
        )


def test_two_ranks_train_like_one_process(ranks):
    model, x, d = make_problem()
    expected = gradient_descent(model, x, d)
    for r, out in enumerate(ranks):
        for l, (W, ref) in enumerate(zip(out["weights_flat"], expected)):
            torch.testing.assert_close(W, ref, rtol=0, atol=1e-10, msg=f"W^({l}) on rank {r}")


def test_ddp_with_manual_backend_equals_single_process(ranks):
    model, x, d = make_problem()
    initial = [W.detach().clone() for W in model.weights]
    _, grads = reference_gradients(model, x, d)
    expected = gradient_descent(model, x, d)
    for r, out in enumerate(ranks):
        for l, (W, ref) in enumerate(zip(out["ddp_initial"], initial)):
            torch.testing.assert_close(W, ref, rtol=0, atol=0, msg=f"W^({l}) after DDP() on rank {r}")
        for l, (g, ref) in enumerate(zip(out["ddp_grads"], grads)):
            torch.testing.assert_close(g, ref, rtol=1e-12, atol=1e-14, msg=f"DDP ∂E/∂W^({l}) on rank {r}")
        for l, (W, ref) in enumerate(zip(out["ddp_weights"], expected)):
            torch.testing.assert_close(W, ref, rtol=0, atol=1e-10, msg=f"DDP W^({l}) on rank {r}")


@pytest.mark.parametrize("backend", ["manual", "autograd"])
@pytest.mark.parametrize("chunk_size", [1, 4, 36, 37, 1000, None])
def test_chunked_gradient_equals_unchunked(backend, chunk_size):
    model, x, d = make_problem()
    model.backend = backend
    E_ref, grads = reference_gradients(model, x, d)
    E, max_abs_error = accumulate_gradients(model, x, d, chunk_size=chunk_size)
    torch.testing.assert_close(E, E_ref, rtol=1e-12, atol=0, msg="E")
    # chunks are matrix products of other shapes (see test_reduced_gradient_equals_single_process)
    torch.testing.assert_close(max_abs_error, (d - model(x)).abs().max().detach(), rtol=1e-12, atol=0)
    for l, (W, ref) in enumerate(zip(model.weights, grads)):
        torch.testing.assert_close(W.grad, ref, rtol=1e-12, atol=1e-14, msg=f"∂E/∂W^({l}), K={chunk_size}")


@pytest.mark.parametrize("chunk_size", [1, 5, None])
def test_chunked_error_equals_one_pass(chunk_size):
    model, x, d = make_problem()
    E, max_abs_error = chunked_error(model, x, d, chunk_size=chunk_size)
    y = model(x).detach()
    torch.testing.assert_close(E, sse_loss(y, d), rtol=1e-12, atol=0, msg="E")
    # chunks are matrix products of other shapes: equal up to float64 rounding
    torch.testing.assert_close(max_abs_error, (d - y).abs().max(), rtol=1e-12, atol=0, msg="max |e|")
    assert not E.requires_grad and all(W.grad is None for W in model.weights)


def test_chunks_move_to_the_model_device(device):
    model, x, d = make_problem()
    _, grads = reference_gradients(model, x, d)
    model.to(device)
    E, max_abs_error = accumulate_gradients(model, x, d, chunk_size=8)  # x, d stay on the CPU
    assert E.device.type == device.type and max_abs_error.device.type == device.type
    for l, (W, ref) in enumerate(zip(model.weights, grads)):
        torch.testing.assert_close(W.grad.cpu(), ref, rtol=1e-12, atol=1e-14, msg=f"∂E/∂W^({l})")


def test_chunked_gradient_of_no_points_is_zero():
    model, x, d = make_problem(T=0)
    E, max_abs_error = accumulate_gradients(model, x, d, chunk_size=4)
    assert E.item() == 0 and max_abs_error.item() == 0
    assert all(W.grad is None for W in model.weights)


@pytest.mark.parametrize(
    ("chunk_size", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)]
)
def test_chunk_size_must_be_a_positive_int(chunk_size, error):
    model, x, d = make_problem()
    with pytest.raises(error, match="chunk_size"):
        accumulate_gradients(model, x, d, chunk_size=chunk_size)


def test_chunked_gradient_checks_shapes():
    model, x, d = make_problem()
    with pytest.raises(ValueError, match="same T"):
        accumulate_gradients(model, x, d[:-1])


@pytest.mark.parametrize("T", [0, 1, 5, 36, 37])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_are_contiguous_and_cover_the_points(T, world_size):
    x = torch.arange(T)
    shards = [shard(x, r, world_size) for r in range(world_size)]
    torch.testing.assert_close(torch.cat(shards), x, msg="concatenated shards")
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True), sizes


@pytest.mark.parametrize(("rank", "world_size"), [(2, 2), (-1, 2), (0, 0)])
def test_shard_rejects_a_rank_outside_the_group(rank, world_size):
    with pytest.raises(ValueError, match="rank"):
        shard(torch.arange(4), rank, world_size)


def test_flat_gradients_are_views_backward_fills():
    model, x, d = make_problem()
    grads = FlatGradients(model.parameters())
    _, ref = reference_gradients(model, x, d)
    sse_loss(model(x), d).backward()
    flat = torch.cat([g.flatten() for g in ref])
    torch.testing.assert_close(grads.buffer[:-1], flat, rtol=1e-12, atol=1e-14, msg="buffer after backward")
    model.zero_grad()  # sets .grad to None: zero_() must bring the views back
    grads.zero_()
    sse_loss(model(x), d).backward()
    torch.testing.assert_close(grads.buffer[:-1], flat, rtol=1e-12, atol=1e-14, msg="buffer after zero_()")
    assert grads.buffer.shape == (sum(W.numel() for W in model.weights) + 1,)


def test_flat_gradients_need_one_dtype():
    with pytest.raises(ValueError, match="dtype"):
        FlatGradients([torch.zeros(2, dtype=torch.float32), torch.zeros(2, dtype=torch.float64)])


def test_train_in_a_group_equals_single_process_train(ranks):
    model, x, d = make_problem()
    expected = train(model, x, d, lr=LR, max_epochs=STEPS)
    reference = gradient_descent(*make_problem())
    for r, out in enumerate(ranks):
        for key in ("train", "train_chunked"):
            weights, result = out[key][0], TrainResult(**out[key][1])
            for l, (W, mine, ref) in enumerate(zip(weights, model.weights, reference)):
                torch.testing.assert_close(
                    W, mine.detach(), rtol=0, atol=1e-10, msg=f"{key} W^({l}) rank {r}"
                )
                torch.testing.assert_close(W, ref, rtol=0, atol=1e-10, msg=f"{key} W^({l}) rank {r} vs GD")
            assert result.epochs == STEPS and result.stop_reason == "max_epochs"
            torch.testing.assert_close(
                result.loss_history, expected.loss_history, rtol=1e-12, atol=0, msg=f"{key} E, rank {r}"
            )
            assert abs(result.max_abs_error - expected.max_abs_error) < 1e-12


def test_train_in_a_group_stops_on_the_global_error(ranks):
    model, x, d = make_problem()
    validation = make_problem(T=11, seed=1)[1:]
    expected = train(model, x, d, lr=LR, max_epochs=STEPS, tol=TOL, validation=validation)
    assert expected.stop_reason == "tol" and 0 < expected.epochs < STEPS, expected
    for r, out in enumerate(ranks):
        weights, result = out["train_tol"][0], TrainResult(**out["train_tol"][1])
        assert (result.stop_reason, result.epochs) == ("tol", expected.epochs), f"rank {r}"
        torch.testing.assert_close(result.val_history, expected.val_history, rtol=1e-12, atol=0)
        for l, (W, ref) in enumerate(zip(weights, model.weights)):
            torch.testing.assert_close(W, ref.detach(), rtol=0, atol=1e-10, msg=f"W^({l}) rank {r}")


def test_matrix_free_lm_in_a_group_equals_single_process(ranks):
    """``method="lm_cg"``, CG solved to 1e-12: steps from sums over ranks that differ only in rounding."""
    model, x, d = make_problem()
    expected = train(model, x, d, method="lm_cg", max_epochs=LM_STEPS, options=CG_EXACT)
    assert expected.final_loss < 0.7 * expected.loss_history[0]
    for r, out in enumerate(ranks):
        weights, result = out["train_lm_cg"][0], TrainResult(**out["train_lm_cg"][1])
        assert result.epochs == LM_STEPS and result.solver_state["mu"] == expected.solver_state["mu"]
        torch.testing.assert_close(result.loss_history, expected.loss_history, rtol=1e-8, atol=0)
        for l, (W, ref) in enumerate(zip(weights, model.weights)):
            torch.testing.assert_close(W, ref.detach(), rtol=1e-6, atol=1e-8, msg=f"W^({l}), rank {r}")


def test_estimator_fit_in_a_group_equals_single_process_fit(ranks):
    est = make_estimator().fit(*estimator_data())
    for r, out in enumerate(ranks):
        weights, result = out["estimator"][0], TrainResult(**out["estimator"][1])
        assert result.epochs == est.result_.epochs == STEPS
        torch.testing.assert_close(result.loss_history, est.result_.loss_history, rtol=1e-12, atol=0)
        torch.testing.assert_close(result.val_history, est.result_.val_history, rtol=1e-12, atol=0)
        for l, (W, ref) in enumerate(zip(weights, est.model_.weights)):
            torch.testing.assert_close(W, ref.detach(), rtol=0, atol=1e-10, msg=f"W^({l}), rank {r}")


def test_a_callback_stop_on_one_rank_stops_all(ranks):
    for r, out in enumerate(ranks):
        result = TrainResult(**out["train_callback"])
        assert (result.stop_reason, result.epochs) == ("callback", 3), f"rank {r}: {result}"


def test_only_rank_0_writes_tensorboard_events(ranks, tmp_path_factory):
    events = list((Path(ranks[0]["outdir"]) / "tb").rglob("events.out.tfevents.*"))
    assert events, "rank 0 wrote no TensorBoard events"
    pids = {int(path.name.split(".")[-2]) for path in events}  # events.out.tfevents.<t>.<host>.<pid>.<n>
    assert pids == {ranks[0]["pid"]}, (pids, [out["pid"] for out in ranks])


@pytest.mark.parametrize("chunk_size", [1, 6, 1000])
def test_chunked_train_equals_unchunked(chunk_size):
    model, x, d = make_problem()
    expected = train(model, x, d, lr=LR, max_epochs=STEPS, tol=TOL)
    chunked, x, d = make_problem()
    result = train(chunked, x, d, lr=LR, max_epochs=STEPS, tol=TOL, chunk_size=chunk_size)
    assert (result.stop_reason, result.epochs) == (expected.stop_reason, expected.epochs)
    torch.testing.assert_close(result.loss_history, expected.loss_history, rtol=1e-12, atol=0)
    for l, (W, ref) in enumerate(zip(chunked.weights, model.weights)):
        torch.testing.assert_close(W, ref, rtol=0, atol=1e-10, msg=f"W^({l}), K={chunk_size}")
        assert W.grad is None, "train left the flat gradient buffer attached"


def test_chunked_train_takes_points_from_host_memory(device):
    model, x, d = make_problem()
    expected = train(model, x, d, lr=LR, max_epochs=5)
    chunked = make_problem()[0].to(device)
    result = train(chunked, x, d, lr=LR, max_epochs=5, chunk_size=8)  # x, d stay on the CPU
    torch.testing.assert_close(result.loss_history, expected.loss_history, rtol=1e-12, atol=0)


def test_train_distributed_needs_a_group():
    model, x, d = make_problem()
    with pytest.raises(ValueError, match="process group"):
        train(model, x, d, lr=LR, max_epochs=1, distributed=True)


@pytest.mark.parametrize("distributed", [False, None])
def test_chunks_and_groups_are_full_batch(distributed):
    model, x, d = make_problem()
    with pytest.raises(ValueError, match="batch_size"):
        train(model, x, d, lr=LR, max_epochs=1, batch_size=4, chunk_size=8, distributed=distributed)
    with pytest.raises(ValueError, match="chunk_size"):
        train(model, x, d, lr=LR, max_epochs=1, chunk_size=0)


def test_cli_fit_runs_under_torchrun(tmp_path, capsys):
    """``torchrun --nproc-per-node 2 -m torch_sigmoid_mlp fit``: one report, the single-process numbers."""
    args = ["fit", "--epochs", "30", "--quiet"]
    status = cli.main(args)
    single = capsys.readouterr().out.splitlines()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command += ["-m", "torch_sigmoid_mlp", *args, "--save", str(tmp_path / "model.pt")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    lines = run.stdout.splitlines()
    assert run.returncode == status, run.stderr[-2000:]
    assert sum(line.startswith("points") for line in lines) == 1, run.stdout  # rank 0 alone prints
    for key in ("points", "epochs", "result"):
        mine = [line for line in lines if line.startswith(key)]
        assert mine == [line for line in single if line.startswith(key)], (key, run.stdout)
    # E and the largest error are sums and maxima over points that two ranks add up in another
    # order than one process does: equal to rounding, not to the last printed digit
    for key in ("E ", "max |error|"):
        (mine,) = [float(line[len(key) :].split()[0]) for line in lines if line.startswith(key)]
        (theirs,) = [float(line[len(key) :].split()[0]) for line in single if line.startswith(key)]
        assert mine == pytest.approx(theirs, rel=1e-3), (key, run.stdout)
    assert (tmp_path / "model.pt").is_file()
