"""The training loop: loss history per term, seeding, validation, argument checks, evaluation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.data import TensorImageDataset
from tlhelpers.training import (
    History,
    evaluate,
    fit,
    iterate_batches,
    predict,
    train_linear_head,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _blobs(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    centers = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return x, y


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Linear(2, 2)


def _run(**kwargs):
    model = _model()
    kwargs = {"epochs": 5, "lr": 0.05, "batch_size": 32, "seed": 0, "progress": False,
              "device": "cpu", **kwargs}  # fmt: skip
    return model, fit(model, _blobs(), **kwargs)


def _without_time(h: History):
    return {k: v for k, v in h.to_dict().items() if k != "time"}


def test_fit_lowers_loss_and_learns_separable_problem():
    x, y = _blobs()
    model = _model()
    before = evaluate(model, (x, y))
    history = fit(model, (x, y), epochs=10, lr=0.05, batch_size=32, seed=0, progress=False,
                  device="cpu")  # fmt: skip
    assert len(history) == 10
    assert "train/total" in history.keys() and history.terms() == ["total"]
    losses = history["train/total"]
    assert losses[-1] < 0.5 * losses[0]
    after = evaluate(model, (x, y))
    assert after["loss"] < before["loss"]
    assert after["accuracy"] >= 0.97
    times = history["time"]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    assert history.last("train/total") == losses[-1]
    with pytest.raises(KeyError, match="train/total"):
        history["val/accuracy"]


def test_objective_terms_are_logged_per_epoch():
    def objective(model, x, y):
        task = F.cross_entropy(model(x), y)
        reg = 0.1 * model.weight.pow(2).sum()
        return {"total": task + reg, "task": task, "reg": reg}

    _, history = _run(objective=objective)
    assert history.terms() == ["total", "task", "reg"]
    for total, task, reg in zip(history["train/total"], history["train/task"],
                                history["train/reg"], strict=True):  # fmt: skip
        assert total == pytest.approx(task + reg, rel=1e-5)
        assert reg > 0
    # the regulariser is part of the optimised loss: it keeps the weights smaller
    plain, _ = _run()
    reg_model, _ = _run(objective=objective)
    assert reg_model.weight.norm() < plain.weight.norm()


def test_objective_mapping_needs_total():
    with pytest.raises(ValueError, match="total"):
        _run(objective=lambda m, x, y: {"task": F.cross_entropy(m(x), y)})


def test_same_seed_same_history_other_seed_differs():
    m1, h1 = _run()
    m2, h2 = _run()
    assert _without_time(h1) == _without_time(h2)
    assert torch.equal(m1.weight, m2.weight)
    _, h3 = _run(seed=1)
    assert _without_time(h3) != _without_time(h1)


def test_val_data_adds_validation_metrics():
    x, y = _blobs(seed=1)
    model, history = _run(val_data=(x, y))
    assert len(history["val/accuracy"]) == 5
    assert len(history["val/loss"]) == 5
    final = evaluate(model, (x, y))
    assert history.last("val/accuracy") == pytest.approx(final["accuracy"])
    assert history.last("val/loss") == pytest.approx(final["loss"], rel=1e-5)


@pytest.mark.parametrize(
    "kwargs", [{"epochs": 0}, {"epochs": 1.5}, {"lr": 0.0}, {"lr": -1e-3}, {"batch_size": 0}]
)
def test_invalid_arguments(kwargs):
    with pytest.raises(ValueError):
        _run(**kwargs)


def test_all_frozen_model_is_refused():
    model = _model()
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen"):
        fit(model, _blobs(), epochs=1, progress=False, device="cpu")


def test_iterate_batches_covers_every_index_once():
    n = 53
    data = (torch.arange(n), torch.arange(n) * 10)
    batches = list(
        iterate_batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    )
    assert [len(b[0]) for b in batches] == [8] * 6 + [5]
    xs = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), xs * 10)  # pairs stay together
    assert sorted(xs.tolist()) == list(range(n))
    assert xs.tolist() != list(range(n))
    plain = torch.cat([b[0] for b in iterate_batches(data, 8)])
    assert plain.tolist() == list(range(n))


def test_iterate_batches_with_item_transform_uses_dataset_items():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1)
    ds = TensorImageDataset(images, torch.arange(10), [str(i) for i in range(10)],
                            transform=lambda x: x + 100)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(ds, 4, shuffle=True, generator=g))
    xs = torch.cat([b[0] for b in batches]).flatten()
    ys = torch.cat([b[1] for b in batches])
    assert sorted(xs.tolist()) == [100.0 + i for i in range(10)]
    assert torch.equal(xs - 100, ys.float())


def test_predict_and_evaluate_against_manual_computation():
    model = nn.Linear(2, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]))
        model.bias.zero_()
    x = torch.tensor([[2.0, 0.0], [0.0, 3.0], [-1.0, -1.0], [1.0, 0.5]])
    y = torch.tensor([0, 1, 2, 1])  # the last one is wrong (class 0 wins)
    model.train()
    out, targets = predict(model, (x, y), batch_size=3)
    assert model.training  # mode restored
    assert torch.equal(targets, y)
    torch.testing.assert_close(out, x @ model.weight.detach().T)
    ev = evaluate(model, (x, y), batch_size=2)
    assert ev["accuracy"] == pytest.approx(0.75)
    logits = out.tolist()
    manual = sum(math.log(sum(math.exp(v) for v in row)) - row[t]
                 for row, t in zip(logits, y.tolist(), strict=True)) / 4  # fmt: skip
    assert ev["loss"] == pytest.approx(manual, rel=1e-5)
    doubled, _ = predict(model, (x, y), batch_transform=lambda b: 2 * b)
    torch.testing.assert_close(doubled, 2 * out)


def test_predict_uses_eval_mode():
    model = nn.Sequential(nn.Dropout(0.9), nn.Linear(2, 2))
    x, y = _blobs(n=20)
    a, _ = predict(model, (x, y))
    b, _ = predict(model, (x, y))
    assert torch.equal(a, b)


def test_train_linear_head_separates_features():
    x, y = _blobs(n=100)
    feats = torch.cat([x, torch.zeros(100, 3)], dim=1)
    head = train_linear_head(feats, y, 2, epochs=100, lr=0.05)
    assert isinstance(head, nn.Linear) and (head.in_features, head.out_features) == (5, 2)
    assert float((head(feats).argmax(1) == y).float().mean()) == 1.0
    again = train_linear_head(feats, y, 2, epochs=100, lr=0.05)
    assert torch.equal(again.weight, head.weight)


def test_eval_mode_restores_every_submodules_own_mode():
    from torch import nn

    from tlhelpers.training import eval_mode

    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net.train()
    net[1].eval()  # a BN layer deliberately kept in eval mode inside a training model
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net[0].training and not net[1].training
