"""MinMaxScaler: round trips, the range, constant columns, state, bad input."""

import pytest
import torch

from torch_sigmoid_mlp import MinMaxScaler

#: every test here compares floating-point results: CI runs them again under MKL_CBWR=COMPATIBLE
pytestmark = pytest.mark.floats


def test_round_trip_and_range(device):
    X = torch.randn(50, 3, dtype=torch.float64, device=device) * torch.tensor(
        [1.0, 100.0, 1e-3], device=device
    )
    scaler = MinMaxScaler((0.1, 0.9))
    Xs = scaler.fit_transform(X)
    assert Xs.device == X.device and Xs.dtype == X.dtype
    torch.testing.assert_close(Xs.amin(0), torch.full((3,), 0.1, dtype=torch.float64, device=device))
    torch.testing.assert_close(Xs.amax(0), torch.full((3,), 0.9, dtype=torch.float64, device=device))
    torch.testing.assert_close(scaler.inverse_transform(Xs), X, msg="inverse_transform(transform(X)) != X")


def test_one_dimensional_data_is_one_column():
    y = torch.tensor([2.0, 4.0, 3.0])
    scaler = MinMaxScaler((0.2, 0.8)).fit(y)
    torch.testing.assert_close(scaler.transform(y), torch.tensor([0.2, 0.8, 0.5]))
    assert scaler.data_min_.shape == ()


def test_constant_column_maps_to_the_middle_and_back():
    X = torch.tensor([[1.0, 7.0], [3.0, 7.0]])
    scaler = MinMaxScaler((0.1, 0.9)).fit(X)
    Xs = scaler.transform(X)
    assert torch.isfinite(Xs).all()
    torch.testing.assert_close(Xs[:, 1], torch.tensor([0.5, 0.5]), msg="constant column not at the middle")
    torch.testing.assert_close(
        scaler.inverse_transform(torch.tensor([[0.2, 0.3]])), torch.tensor([[1.25, 7.0]])
    )


def test_fitted_on_one_device_and_dtype_used_on_another():
    scaler = MinMaxScaler().fit(torch.tensor([[0.0], [10.0]], dtype=torch.float64))
    out = scaler.transform(torch.tensor([[5.0]], dtype=torch.float32))
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, torch.tensor([[0.5]]))


def test_state_dict_round_trip(tmp_path):
    X = torch.rand(10, 2)
    scaler = MinMaxScaler((0.05, 0.95)).fit(X)
    torch.save(scaler.state_dict(), tmp_path / "s.pt")
    again = MinMaxScaler().load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True))
    assert again.feature_range == (0.05, 0.95)
    torch.testing.assert_close(again.transform(X), scaler.transform(X))


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda s: s.fit(torch.empty(0, 2)), ValueError, "T = 0"),
        (lambda s: s.fit(torch.tensor([[1.0], [float("nan")]])), ValueError, "NaN"),
        (lambda s: s.transform(torch.rand(3, 2)), ValueError, "not fitted"),
        (lambda s: s.fit(torch.rand(3, 2)).transform(torch.rand(3, 4)), ValueError, r"shape \(T, 2\)"),
        (lambda s: s.fit([[1.0]]), TypeError, "torch.Tensor"),
        (lambda s: s.fit(torch.tensor([[1, 2]])), TypeError, "floating"),
    ],
)
def test_bad_input_is_named(make, error, match):
    with pytest.raises(error, match=match):
        make(MinMaxScaler())


def test_bad_feature_range():
    with pytest.raises(ValueError, match="feature_range"):
        MinMaxScaler((0.9, 0.1))
