"""TensorBoard: read the event files of a run back with TensorBoard's own EventAccumulator."""

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.tensorboard import SummaryWriter

from torch_sigmoid_mlp import SigmoidMLP, train

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats


def problem():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, 2, generator=g)
    d = torch.rand(16, 1, generator=g) * 0.6 + 0.2
    return SigmoidMLP(2, generator=g), x, d


def read(logdir) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    return events.Reload()


def test_logdir_run_writes_scalars_equal_to_the_history(tmp_path):
    model, x, d = problem()
    result = train(model, x, d, lr=0.5, max_epochs=12, logdir=tmp_path, check_every=4)
    events = read(tmp_path)
    tags = set(events.Tags()["scalars"])
    expected = {"train/sse", "train/max_abs_error", "train/lr", "check/max_rel_diff"}
    expected |= {f"train/grad_norm/W{l}" for l in range(model.num_layers)}
    assert expected <= tags, f"missing {expected - tags}"
    sse = events.Scalars("train/sse")
    assert [e.step for e in sse] == list(range(result.epochs + 1))
    torch.testing.assert_close([e.value for e in sse], result.loss_history, msg="train/sse != loss_history")
    assert [e.step for e in events.Scalars("check/max_rel_diff")] == [0, 4, 8, 12]
    assert max(e.value for e in events.Scalars("check/max_rel_diff")) < 1e-4
    assert {f"weights/W{l}" for l in range(model.num_layers)} <= set(events.Tags()["histograms"])
    assert {"hparam/final_loss", "hparam/max_abs_error", "hparam/epochs"} <= tags
    assert events.Scalars("hparam/final_loss")[0].value == pytest.approx(result.final_loss)


def test_callers_writer_is_left_open_and_log_every_is_honoured(tmp_path):
    model, x, d = problem()
    writer = SummaryWriter(log_dir=str(tmp_path))
    result = train(model, x, d, lr=0.5, max_epochs=10, writer=writer, log_every=3)
    writer.add_scalar("after/train", 1.0, 0)  # would raise on a closed writer's file
    writer.close()
    events = read(tmp_path)
    assert [e.step for e in events.Scalars("train/sse")] == [0, 3, 6, 9, 10]
    assert [e.value for e in events.Scalars("train/sse")] == pytest.approx(
        [result.loss_history[k] for k in (0, 3, 6, 9, 10)]
    )
    assert "after/train" in events.Tags()["scalars"]


def test_writer_and_logdir_together_is_an_error(tmp_path):
    model, x, d = problem()
    expected = pytest.raises(ValueError, match="either writer= or logdir=")
    with SummaryWriter(log_dir=str(tmp_path)) as writer, expected:
        train(model, x, d, lr=0.5, writer=writer, logdir=tmp_path)


def test_training_log_needs_a_writer_or_a_logdir():
    from torch_sigmoid_mlp.training.handlers import TrainingLog

    with pytest.raises(ValueError, match=r"writer= .* or logdir="):
        TrainingLog()
