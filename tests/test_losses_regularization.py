"""Tests of tlhelpers.losses.regularization against explicit formulas and numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from tlhelpers.losses import (
    L2,
    L2SP,
    BatchSpectralShrinkage,
    FeatureMapDistance,
    bss,
    delta_channel_attention,
    feature_map_distance,
    l2,
    l2sp,
)


class Split(nn.Module):
    """Tiny SplitModel-like network: body (with BatchNorm) and head."""

    def __init__(self, d_in: int = 4, d: int = 6, c: int = 3) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(d_in, d), nn.BatchNorm1d(d), nn.ReLU())
        self.head = nn.Linear(d, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _perturb(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))


def test_l2sp_zero_at_source_and_matches_explicit_formula():
    torch.manual_seed(0)
    model = Split()
    with torch.no_grad():
        model.head.weight.zero_()
    source = {k: v.detach().clone() for k, v in model.state_dict().items()}
    reg = L2SP(model, alpha=0.3, beta=0.05)
    assert reg(model).item() == 0.0
    assert l2sp(model, source, 0.3, 0.05).item() == 0.0

    _perturb(model)
    value = reg(model)
    # Explicit formula: only conv/linear weights (ndim >= 2); head is "new".
    w, w0 = model.body[0].weight, source["body.0.weight"]
    expected = 0.3 / 2 * ((w - w0) ** 2).sum() + 0.05 / 2 * (model.head.weight**2).sum()
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    assert l2sp(model, source, 0.3, 0.05).item() == pytest.approx(expected.item(), rel=1e-6)

    g_impl = torch.autograd.grad(
        value, [w, model.head.weight, model.body[0].bias], allow_unused=True
    )
    g_ref = torch.autograd.grad(expected, [w, model.head.weight])
    assert torch.allclose(g_impl[0], g_ref[0]) and torch.allclose(g_impl[1], g_ref[1])
    # Hand formula: alpha * (w - w0), beta * w_new; biases are not penalised.
    assert torch.allclose(g_impl[0], 0.3 * (w - w0).detach(), atol=1e-7)
    assert torch.allclose(g_impl[1], 0.05 * model.head.weight.detach(), atol=1e-7)
    assert g_impl[2] is None


def test_l2sp_all_params_includes_bn_and_biases():
    torch.manual_seed(1)
    model = Split()
    source = {k: v.detach().clone() for k, v in model.named_parameters()}
    _perturb(model, 1)
    got = l2sp(model, source, alpha=0.2, beta=0.1, weights_only=False)
    sp = sum(
        ((p - source[n]) ** 2).sum() for n, p in model.named_parameters() if n.startswith("body")
    )
    new = sum((p**2).sum() for n, p in model.named_parameters() if n.startswith("head"))
    assert got.item() == pytest.approx((0.1 * sp + 0.05 * new).item(), rel=1e-6)


def test_l2sp_frozen_params_skipped_and_shape_mismatch_raises():
    model = Split()
    source = {k: v.detach().clone() for k, v in model.named_parameters()}
    _perturb(model)
    model.body.requires_grad_(False)
    only_head = 0.5 * 0.01 * (model.head.weight**2).sum()
    assert l2sp(model, source).item() == pytest.approx(only_head.item(), rel=1e-6)
    bad = dict(source, **{"body.0.weight": torch.zeros(2, 2)})
    model.body.requires_grad_(True)
    with pytest.raises(ValueError, match=r"body.0.weight.*\(6, 4\).*\(2, 2\)"):
        l2sp(model, bad)


def test_l2_baseline_equals_sgd_weight_decay_gradient():
    model = Split()
    value = L2(alpha=0.01)(model)
    expected = 0.005 * sum((p**2).sum() for p in model.parameters() if p.ndim >= 2)
    assert value.item() == pytest.approx(expected.item(), rel=1e-6)
    (g,) = torch.autograd.grad(l2(model, 0.01), [model.head.weight])
    assert torch.allclose(g, 0.01 * model.head.weight.detach())


def test_bss_matches_numpy_svd():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(8, 5, generator=g, dtype=torch.float64)
    s = np.linalg.svd(f.numpy(), compute_uv=False)
    for k in (1, 2, 5):
        expected = np.sum(np.sort(s)[:k] ** 2)
        assert bss(f, k).item() == pytest.approx(expected, rel=1e-10)
    assert BatchSpectralShrinkage(2)(f.T.contiguous()).item() == pytest.approx(
        np.sum(np.sort(s)[:2] ** 2)
    )
    assert torch.allclose(bss(f, 1), torch.linalg.svdvals(f)[-1] ** 2)
    f.requires_grad_(True)
    bss(f).backward()
    assert torch.isfinite(f.grad).all()


def test_bss_bad_k():
    with pytest.raises(ValueError, match=r"min\(N, D\) = 3.*\(3, 5\)"):
        bss(torch.randn(3, 5), k=4)
    with pytest.raises(ValueError, match=">= 1"):
        BatchSpectralShrinkage(k=0)


class ConvNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(2, 3, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(3, 4, 3, padding=1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_feature_map_distance_matches_explicit_computation():
    torch.manual_seed(0)
    student = ConvNet()
    source = ConvNet()
    source.load_state_dict(student.state_dict())
    fmd = FeatureMapDistance(student, ["body.0", "body.4"])
    x = torch.randn(5, 2, 6, 6)
    student(x)
    assert fmd(x).item() == 0.0

    _perturb(student)
    student(x)
    value = fmd(x)
    # Explicit: 0.5 * sum_layers mean_batch sum_channels mean_spatial (diff^2).
    with torch.no_grad():
        s0, t0 = source.body[0](x), student.body[0](x)
        s4, t4 = source.body(x), student.body(x)
    expected = 0.5 * (((t0 - s0) ** 2).mean((2, 3)).sum(1).mean() + ((t4 - s4) ** 2).sum(1).mean())
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)
    value.backward()
    assert student.body[0].weight.grad is not None
    assert all(p.grad is None for p in fmd.source.parameters())

    # Channel attention weights enter per channel.
    att = {"body.0": torch.tensor([0.2, 0.3, 0.5])}
    fmd.remove()
    fmd2 = FeatureMapDistance(student, ["body.0"], source=source, channel_attention=att)
    student(x)
    exp2 = 0.5 * (((t0 - s0) ** 2).mean((2, 3)).mean(0) * att["body.0"]).sum()
    assert fmd2(x).item() == pytest.approx(exp2.item(), rel=1e-5)


def test_feature_map_distance_errors():
    student = ConvNet()
    with pytest.raises(ValueError, match="Unknown layer 'body.9'.*Valid values"):
        FeatureMapDistance(student, ["body.9"])
    fmd = FeatureMapDistance(student, ["body.0"])
    with pytest.raises(RuntimeError, match="run the student"):
        fmd(torch.randn(2, 2, 4, 4))


def test_delta_channel_attention_by_zeroing_channels():
    torch.manual_seed(0)
    model = ConvNet()
    x, y = torch.randn(6, 2, 5, 5), torch.randint(0, 3, (6,))
    att = delta_channel_attention(model, ["body.2"], [(x, y)])
    w = att["body.2"]
    assert w.shape == (4,) and w.sum().item() == pytest.approx(1.0)
    # Independent: zero channel c of body.2 by editing its weights and bias.
    base = nn.functional.cross_entropy(model(x), y)
    rises = []
    for c in range(4):
        m = ConvNet()
        m.load_state_dict(model.state_dict())
        with torch.no_grad():
            m.body[2].weight[c].zero_()
            m.body[2].bias[c].zero_()
            rises.append(nn.functional.cross_entropy(m(x), y) - base)
    assert torch.allclose(w, torch.softmax(torch.stack(rises), 0), atol=1e-6)
    assert model.training  # mode restored


def test_delta_channel_attention_restores_every_submodules_mode():
    """A BatchNorm layer deliberately kept in eval mode inside a training model stays in eval
    mode (``model.train(was_training)`` used to flip it back to training)."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    model.train()
    model[1].eval()
    data = [(torch.randn(4, 2, 5, 5), torch.randint(0, 3, (4,)))]
    delta_channel_attention(model, ["0"], data)
    assert model.training and model[0].training
    assert not model[1].training


def test_feature_map_distance_functional_matches_explicit_formula():
    g = torch.Generator().manual_seed(0)
    a = {"x": torch.randn(4, 3, 5, 5, generator=g), "y": torch.randn(4, 2, generator=g)}
    b = {k: v + 0.5 * torch.randn(v.shape, generator=g) for k, v in a.items()}
    att = {"x": torch.tensor([0.2, 0.3, 0.5])}
    value = feature_map_distance(a, b, att)
    expected = 0.5 * (
        (((a["x"] - b["x"]) ** 2).mean((2, 3)).mean(0) * att["x"]).sum()
        + ((a["y"] - b["y"]) ** 2).mean(0).sum()
    )
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    with pytest.raises(ValueError, match="same non-empty layers"):
        feature_map_distance(a, {"x": b["x"]})
    with pytest.raises(ValueError, match="unknown layers"):
        feature_map_distance(a, b, {"z": torch.ones(3)})
