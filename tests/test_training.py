"""tlhelpers.training: fit, predict/evaluate, AdaBN, step-based fine-tuning, the notebook-02 protocol."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.data import TensorImageDataset
from tlhelpers.features import cache_activations
from tlhelpers.losses import TRANSFER_METHODS, make_objective
from tlhelpers.models import (
    SmallCNN,
    freeze_until,
    parameter_state,
    set_batchnorm_eval,
    split_at_block,
    transfer_model,
    weight_distance,
)
from tlhelpers.training import (
    History,
    adabn,
    evaluate,
    fine_tune,
    fine_tuned_accuracy,
    fit,
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


def test_predict_concatenates_tuple_outputs_and_moves_nothing_global():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 2)

        def forward(self, x):
            return self.lin(x), x.sum(1)

    x, y = _blobs(n=10)
    (a, b), targets = predict(Two(), (x, y), batch_size=3)
    assert a.shape == (10, 2) and torch.equal(b, x.sum(1)) and torch.equal(targets, y)
    with pytest.raises(ValueError, match="batch_size"):
        predict(Two(), (x, y), batch_size=0)


def test_train_linear_head_leaves_the_global_stream_alone():
    x, y = _blobs(n=20)
    torch.manual_seed(1)
    expected = torch.rand(2)
    torch.manual_seed(1)
    train_linear_head(x, y, 2, epochs=1)
    assert torch.equal(torch.rand(2), expected)


# ------------------------------------------------------------------ AdaBN


def _input_means(model, x, batch_size):
    """Per BN layer: mean over all data of the BN input, computed with hooks (eval copy)."""
    ref = copy.deepcopy(model).train()
    bns = [m for m in ref.modules() if isinstance(m, nn.BatchNorm2d)]
    got = {i: [] for i in range(len(bns))}
    hooks = [
        bn.register_forward_hook(lambda m, inp, out, i=i: got[i].append(inp[0].detach()))
        for i, bn in enumerate(bns)
    ]
    with torch.no_grad():
        ref(x)  # one batch: BN in train mode normalises with exactly these statistics
    for h in hooks:
        h.remove()
    return [torch.cat(got[i]) for i in range(len(bns))]


def test_adabn_running_stats_equal_batch_stats_of_inputs():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4)
    x = torch.rand(32, 1, 12, 12) * 2 + 1  # shifted: far from the init stats (0, 1)
    weights = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "running" not in k and "num_batches" not in k
    }
    inputs = _input_means(model, x, 32)
    out = adabn(model, x, batch_size=32)
    assert out is model and not model.training
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn, inp in zip(bns, inputs, strict=True):
        assert torch.allclose(bn.running_mean, inp.mean(dim=(0, 2, 3)), atol=1e-5)
        assert torch.allclose(bn.running_var, inp.var(dim=(0, 2, 3), unbiased=True), rtol=1e-4)
        assert bn.momentum == 0.1  # restored
    for k, v in model.state_dict().items():
        if k in weights:
            assert torch.equal(v, weights[k]), k


def test_adabn_cumulative_mean_over_batches_and_transform():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, width=4)
    x = torch.rand(40, 1, 8, 8)
    first = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    adabn(
        model,
        (x, torch.zeros(40, dtype=torch.long)),
        batch_size=10,
        batch_transform=lambda b: b * 4,
    )
    conv = model.features.block1[0]
    with torch.no_grad():
        expected = conv(x * 4).mean(dim=(0, 2, 3))
    assert torch.allclose(first.running_mean, expected, atol=1e-5)


def test_adabn_helps_on_shifted_inputs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.BatchNorm1d(4))
    model.train()
    with torch.no_grad():
        model(torch.randn(500, 4))
    model.eval()
    shifted = torch.randn(500, 4) + 10
    before = model(shifted).mean().abs()
    adabn(model, shifted, batch_size=500)
    after = model(shifted).mean().abs()
    assert after < before


def test_adabn_without_batchnorm_raises():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adabn(nn.Linear(2, 2), torch.rand(3, 2))


# ------------------------------------------------------------------ step-based fine-tuning


@pytest.mark.parametrize("method", TRANSFER_METHODS)
def test_every_method_trains_and_logs_its_term(method, source, data):
    model = transfer_model(source, 5)
    ref = parameter_state(model, "body.")
    obj = make_objective(method, model, source=source)
    hist = fine_tune(model, data, objective=obj, steps=4, lr=1e-2, reference=ref)
    assert len(hist) == 4
    assert "train/task" in hist.keys() and "train/weight_distance" in hist.keys()
    if method != "none":
        assert f"train/{method}" in hist.keys()
    assert hist["train/weight_distance"][0] == 0.0  # logged before the first step
    assert hist["train/weight_distance"][-1] > 0
    if method == "delta":
        assert hist["train/delta"][0] == pytest.approx(0.0, abs=1e-7)  # BN in eval mode
        obj.terms["delta"].fn.remove()
    if method == "lwf":
        assert hist["train/lwf"][0] == pytest.approx(0.0, abs=1e-6)  # old head = source head


def test_l2sp_keeps_weights_closer_than_plain_finetuning(source, data):
    dists = {}
    for method, strength in [("none", None), ("l2sp", 100.0)]:
        model = transfer_model(source, 5)
        ref = parameter_state(model, "body.")
        fine_tune(
            model,
            data,
            objective=make_objective(method, model, strength=strength),
            steps=15,
            lr=1e-2,
            reference=ref,
        )
        dists[method] = weight_distance(model, ref)
    assert dists["l2sp"] < dists["none"]


def test_fine_tune_minibatch_steps(source, data):
    model = transfer_model(source, 5)
    hist = fine_tune(model, data, steps=4, lr=1e-3, batch_size=10)  # 2 steps per pass
    assert len(hist) == 2


def test_cached_activation_training_equals_frozen_lower_training(source, data):
    """Training the top block on cached activations == training the model with block1-2
    frozen (BN in eval mode): same weights after the same steps."""
    a, b = transfer_model(source, 5, seed=1), transfer_model(source, 5, seed=1)
    lower, upper = split_at_block(a, 1)
    acts = cache_activations(lower, data)
    assert acts[0].shape[:2] == (20, 8)
    fine_tune(upper, acts, steps=3, lr=1e-2, seed=0)
    freeze_until(b, "body.0.block2")
    fine_tune(b, data, steps=3, lr=1e-2, seed=0)
    set_batchnorm_eval(b)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), na


def _toy(n=24, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, size, size, generator=g) * 0.3
    x[y == 1, :, : size // 2] += 0.7  # class 1: bright top half
    return TensorImageDataset(x.clamp(0, 1), y, ["a", "b"])


def test_fine_tuned_accuracy_learns_and_leaves_model_unchanged():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc = fine_tuned_accuracy(
        model, _toy(24), _toy(40, seed=1), 2, steps=40, lr=1e-2, seed=0, batchnorm="train"
    )
    assert acc >= 0.9
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = fine_tuned_accuracy(
        model, _toy(24), _toy(40, seed=1), 2, steps=40, lr=1e-2, seed=0, batchnorm="train"
    )
    assert again == acc  # same seed, same result
    with pytest.raises(ValueError, match="lr"):
        fine_tuned_accuracy(model, _toy(4), _toy(4), 2, lr=-1.0)


def test_fine_tuned_accuracy_does_not_touch_global_state():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5, width=4)
    torch.manual_seed(3)
    expected = torch.rand(2)
    torch.manual_seed(3)
    deterministic = torch.are_deterministic_algorithms_enabled()
    fine_tuned_accuracy(model, _toy(8), _toy(8, seed=1), 2, steps=2, seed=5)
    assert torch.equal(torch.rand(2), expected)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
