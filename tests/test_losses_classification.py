"""Tests of tlhelpers.losses.classification against torch's cross-entropy and by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tlhelpers.losses import (
    FocalLoss,
    LabelSmoothingCrossEntropy,
    focal_loss,
    label_smoothing_cross_entropy,
)


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(10, 4, generator=g, dtype=torch.float64), torch.randint(
        0, 4, (10,), generator=g
    )


def test_focal_gamma0_equals_cross_entropy():
    z, y = _data()
    for red in ("mean", "sum", "none"):
        assert torch.allclose(
            focal_loss(z, y, gamma=0.0, reduction=red), F.cross_entropy(z, y, reduction=red)
        )
    assert FocalLoss(gamma=0.0)(z, y).item() == pytest.approx(F.cross_entropy(z, y).item())


def test_focal_hand_formula_with_alpha():
    z, y = _data(1)
    alpha = [0.1, 0.2, 0.3, 0.4]
    p = np.exp(z.numpy()) / np.exp(z.numpy()).sum(1, keepdims=True)
    pt = p[np.arange(10), y.numpy()]
    expected = np.array(alpha)[y.numpy()] * (1 - pt) ** 2.0 * -np.log(pt)
    np.testing.assert_allclose(focal_loss(z, y, 2.0, alpha, "none").numpy(), expected, rtol=1e-10)
    assert FocalLoss(2.0, alpha)(z.float(), y).item() == pytest.approx(expected.mean(), rel=1e-5)


def test_focal_bad_input():
    z, y = _data()
    with pytest.raises(ValueError, match=r"alpha must have shape \(4,\)"):
        focal_loss(z, y, alpha=[1.0, 2.0])
    with pytest.raises(ValueError, match="Valid values: 'mean', 'sum', 'none'"):
        focal_loss(z, y, reduction="batchmean")
    with pytest.raises(ValueError, match=r"shape \(10,\)"):
        focal_loss(z, y[:5])


def test_label_smoothing_by_hand():
    z, y = _data(2)
    eps = 0.2
    q = np.full((10, 4), eps / 4)
    q[np.arange(10), y.numpy()] += 1 - eps
    logp = z.numpy() - np.log(np.exp(z.numpy()).sum(1, keepdims=True))
    expected = -(q * logp).sum(1)
    np.testing.assert_allclose(
        label_smoothing_cross_entropy(z, y, eps, "none").numpy(), expected, rtol=1e-10
    )
    assert LabelSmoothingCrossEntropy(eps)(z, y).item() == pytest.approx(expected.mean())


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_finite_for_confident_logits(gamma):
    z = torch.tensor([[40.0, 0.0, 0.0], [0.0, 1.0, 0.0]], requires_grad=True)
    focal_loss(z, torch.tensor([0, 1]), gamma=gamma).backward()
    assert torch.isfinite(z.grad).all()


@pytest.mark.parametrize("cls", [FocalLoss, LabelSmoothingCrossEntropy])
def test_reduction_is_checked_at_construction(cls):
    with pytest.raises(ValueError, match="Valid values: 'mean', 'sum', 'none'"):
        cls(reduction="avg")


def test_label_smoothing_is_checked_at_construction():
    with pytest.raises(ValueError, match="smoothing"):
        LabelSmoothingCrossEntropy(smoothing=1.0)
