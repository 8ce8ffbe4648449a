"""Reliability, training side: ``fit`` and the training helpers validate their
data, stop on a non-finite loss naming the step, and ``seed`` makes a run repeatable
(dropout included) without touching the caller's global random state."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tlhelpers.analysis import interpolate_state
from tlhelpers.training import fine_tune, fit, train_linear_head

pytestmark = pytest.mark.usefixtures("one_thread")


def _model(seed=0, dropout=0.0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(4, 3))


def _data(n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 2, 2, generator=g), torch.arange(n) % 3


def _fit(model, data, **kw):
    kw.setdefault("epochs", 1)
    return fit(model, data, progress=False, device="cpu", **kw)


def test_fit_refuses_an_empty_dataset():
    x, y = _data()
    with pytest.raises(ValueError, match="train_data.*empty"):
        _fit(_model(), (x[:0], y[:0]))


def test_fit_refuses_images_and_labels_of_different_lengths():
    x, y = _data()
    with pytest.raises(ValueError, match=r"train_data.*8.*7"):
        _fit(_model(), (x, y[:7]))  # before: one image silently dropped


def test_fit_refuses_nan_input_before_any_step():
    x, y = _data()
    x[3, 0, 1, 1] = float("nan")
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"train_data.*(NaN|non-finite).*item 3"):
        _fit(model, (x, y))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # the check can be switched off (the loss then becomes NaN and fit stops on that)
    with pytest.raises(FloatingPointError):
        _fit(model, (x, y), check_finite=False)


def test_fit_refuses_nan_validation_input():
    x, y = _data()
    vx = x.clone()
    vx[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"val_data.*(NaN|non-finite)"):
        _fit(_model(), (x, y), val_data=(vx, y))


@pytest.mark.parametrize("lr", [math.inf, math.nan, -1.0])
def test_fit_refuses_a_non_finite_learning_rate(lr):
    with pytest.raises(ValueError, match=r"lr.*(inf|nan|-1)"):
        _fit(_model(), _data(), lr=lr)


@pytest.mark.parametrize("bad, match", [(-1, r"-1"), (3, r"3.*3 output")])
def test_fit_refuses_labels_out_of_range(bad, match):
    x, y = _data()
    y = y.clone()
    y[5] = bad
    with pytest.raises(ValueError, match=r"label.*" + match):
        _fit(_model(), (x, y))


def test_fit_stops_when_the_loss_becomes_non_finite_naming_the_step():
    calls = []

    def objective(model, x, y):
        calls.append(1)
        loss = nn.functional.cross_entropy(model(x), y)
        return loss * (math.inf if len(calls) == 3 else 1.0)

    model = _model()
    with pytest.raises(FloatingPointError, match=r"epoch 2.*step 3|step 3.*epoch 2") as info:
        _fit(model, _data(), epochs=5, batch_size=4, objective=objective)
    assert "inf" in str(info.value)
    # the bad step was not applied: every weight is still finite
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_fit_seed_repeats_dropout_and_keeps_the_global_rng():
    data = _data(n=32)
    runs = []
    for _ in range(2):
        model = _model(dropout=0.5)
        torch.manual_seed(123)  # the caller's own stream
        state = torch.get_rng_state()
        _fit(model, data, epochs=3, batch_size=8, seed=7)
        assert torch.equal(torch.get_rng_state(), state), "fit changed the global RNG"
        runs.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    # a different seed gives a different run (the dropout masks and order depend on it)
    model = _model(dropout=0.5)
    _fit(model, data, epochs=3, batch_size=8, seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], model.parameters(), strict=True))


@pytest.mark.parametrize("seed", [-1, 1.5])
def test_fit_bad_seed_names_the_argument(seed):
    with pytest.raises(ValueError, match="seed"):
        _fit(_model(), _data(), seed=seed)


def test_fine_tune_refuses_an_empty_dataset():
    x, y = _data()
    with pytest.raises(ValueError, match="empty"):
        fine_tune(_model(), (x[:0], y[:0]), steps=2)


def test_train_linear_head_checks_inputs_and_keeps_the_global_rng():
    feats, y = torch.rand(10, 4), torch.arange(10) % 2
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = train_linear_head(feats, y, 2, epochs=3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)
    b = train_linear_head(feats, y, 2, epochs=3, seed=1)
    assert torch.equal(a.weight, b.weight)
    bad = feats.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"features.*(NaN|non-finite)"):
        train_linear_head(bad, y, 2)
    with pytest.raises(ValueError, match=r"targets.*2"):
        train_linear_head(feats, torch.arange(10) % 3, 2)
    with pytest.raises(ValueError, match=r"features.*10.*targets.*9|10.*9"):
        train_linear_head(feats, y[:9], 2)


def test_interpolate_state_refuses_a_mapping_that_interpolates_nothing():
    source = {"features.0.weight": torch.zeros(2, 2)}
    target = {"body.0.features.0.weight": torch.ones(2, 2)}
    with pytest.raises(ValueError, match="no parameter"):
        interpolate_state(source, target, 0.5)


def test_evaluate_refuses_a_model_that_returns_a_tuple():
    from tlhelpers.training import evaluate

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    data = (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="model must return one tensor of logits, got a tuple of 2"):
        evaluate(Pair(), data)
