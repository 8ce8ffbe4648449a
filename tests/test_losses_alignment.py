"""Tests of tlhelpers.losses.alignment against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from tlhelpers.losses import (
    CORALLoss,
    DomainAdversarialLoss,
    GradientReversal,
    MMDLoss,
    coral,
    dann_lambda,
    domain_adversarial_loss,
    grad_reverse,
    median_bandwidth,
    mmd2,
)


def _k(a: np.ndarray, b: np.ndarray, sigmas: list[float]) -> float:
    d2 = float(np.sum((a - b) ** 2))
    return float(np.mean([math.exp(-d2 / (2 * s * s)) for s in sigmas]))


def _mmd_loop(x: np.ndarray, y: np.ndarray, sigmas: list[float], estimator: str) -> float:
    """Plain double loops over pairs, straight from Gretton et al. 2012."""
    n, m = len(x), len(y)
    if estimator == "linear":
        h = []
        for i in range(n // 2):
            x1, x2, y1, y2 = x[2 * i], x[2 * i + 1], y[2 * i], y[2 * i + 1]
            h.append(
                _k(x1, x2, sigmas) + _k(y1, y2, sigmas) - _k(x1, y2, sigmas) - _k(x2, y1, sigmas)
            )
        return float(np.mean(h))
    kxx = sum(
        _k(x[i], x[j], sigmas)
        for i in range(n)
        for j in range(n)
        if estimator == "biased" or i != j
    )
    kyy = sum(
        _k(y[i], y[j], sigmas)
        for i in range(m)
        for j in range(m)
        if estimator == "biased" or i != j
    )
    kxy = sum(_k(x[i], y[j], sigmas) for i in range(n) for j in range(m))
    if estimator == "biased":
        return kxx / n**2 + kyy / m**2 - 2 * kxy / (n * m)
    return kxx / (n * (n - 1)) + kyy / (m * (m - 1)) - 2 * kxy / (n * m)


@pytest.fixture
def xy() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.randn(12, 5, generator=g, dtype=torch.float64) * 1.5 + 0.3
    return x, y


@pytest.mark.parametrize("estimator", ["biased", "unbiased", "linear"])
@pytest.mark.parametrize("sigmas", [[1.0], [0.5, 2.0, 4.0]])
def test_mmd2_matches_double_loop(xy, estimator, sigmas):
    x, y = xy
    expected = _mmd_loop(x.numpy(), y.numpy(), sigmas, estimator)
    got = mmd2(x, y, bandwidths=sigmas, estimator=estimator)
    assert got.shape == ()
    assert float(got) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_mmd2_unequal_sizes_matches_loop(xy):
    x, y = xy
    y = y[:7]
    for est in ("biased", "unbiased"):
        assert float(mmd2(x, y, 1.3, est)) == pytest.approx(
            _mmd_loop(x.numpy(), y.numpy(), [1.3], est)
        )


def test_median_heuristic_is_lower_median_of_pooled_sq_distances(xy):
    x, y = xy
    z = np.concatenate([x.numpy(), y.numpy()])
    d2 = [float(np.sum((z[i] - z[j]) ** 2)) for i in range(len(z)) for j in range(i + 1, len(z))]
    med = sorted(d2)[(len(d2) - 1) // 2]
    assert float(median_bandwidth(x, y)) == pytest.approx(math.sqrt(med))
    expected = _mmd_loop(x.numpy(), y.numpy(), [math.sqrt(med)], "biased")
    assert float(mmd2(x, y)) == pytest.approx(expected)


def test_mmd2_properties(xy):
    x, y = xy
    assert float(mmd2(x, x.clone())) == pytest.approx(0.0, abs=1e-12)
    assert float(mmd2(x, y)) > 0
    # Two samples of one distribution: the unbiased estimate is negative for some seeds.
    g = torch.Generator().manual_seed(1)
    values = [
        float(
            mmd2(torch.randn(10, 3, generator=g), torch.randn(10, 3, generator=g), 1.0, "unbiased")
        )
        for _ in range(20)
    ]
    assert min(values) < 0


def test_mmd2_gradient_and_module(xy):
    x, y = xy
    x = x.clone().requires_grad_(True)
    loss = MMDLoss(bandwidths=[1.0, 2.0], estimator="unbiased")(x, y)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_mmd2_bad_input(xy):
    x, y = xy
    with pytest.raises(ValueError, match=r"\(12, 5\).*\(12, 4\)"):
        mmd2(x, y[:, :4])
    with pytest.raises(ValueError, match="Valid values: 'biased', 'unbiased', 'linear'"):
        mmd2(x, y, estimator="quadratic")
    with pytest.raises(ValueError, match="same number"):
        mmd2(x, y[:5], estimator="linear")
    with pytest.raises(ValueError, match="2-D"):
        mmd2(x[0], y)
    with pytest.raises(ValueError, match="positive"):
        mmd2(x, y, bandwidths=[1.0, -1.0])


def _coral_numpy(s: np.ndarray, t: np.ndarray) -> float:
    d = s.shape[1]
    cs, ct = np.cov(s, rowvar=False), np.cov(t, rowvar=False)
    return float(np.sum((cs - ct) ** 2) / (4 * d * d))


def test_coral_matches_numpy_cov():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20, 6))
    t = rng.normal(size=(15, 6)) @ rng.normal(size=(6, 6))
    got = coral(torch.from_numpy(s), torch.from_numpy(t))
    assert float(got) == pytest.approx(_coral_numpy(s, t), rel=1e-10)
    assert float(CORALLoss()(torch.from_numpy(s), torch.from_numpy(t))) == pytest.approx(float(got))


def test_coral_zero_for_shifted_copy():
    s = torch.randn(30, 4, dtype=torch.float64)
    assert float(coral(s, s + 3.0)) == pytest.approx(0.0, abs=1e-12)


def test_coral_bad_input():
    with pytest.raises(ValueError, match=r"at least 2.*\(1, 4\)"):
        coral(torch.randn(1, 4), torch.randn(5, 4))
    with pytest.raises(ValueError, match=r"\(5, 4\).*\(5, 3\)"):
        coral(torch.randn(5, 4), torch.randn(5, 3))


def test_gradient_reversal_flips_and_scales():
    x = torch.randn(4, 3, requires_grad=True)
    w = torch.randn(4, 3)
    y = grad_reverse(x, 0.7)
    assert torch.equal(y, x)
    (y * w).sum().backward()
    assert torch.allclose(x.grad, -0.7 * w, rtol=0, atol=0)

    x.grad = None
    layer = GradientReversal(lambd=2.0)
    (layer(x) * w).sum().backward()
    assert torch.equal(x.grad, -2.0 * w)


def test_dann_lambda_schedule():
    assert dann_lambda(0.0) == 0.0
    assert dann_lambda(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert dann_lambda(1.0) == pytest.approx(1.0, abs=1e-4)
    assert dann_lambda(2.0) == dann_lambda(1.0)  # clipped
    assert dann_lambda(-1.0) == 0.0
    values = [dann_lambda(p / 10) for p in range(11)]
    assert values == sorted(values)


def test_domain_adversarial_loss_is_bce_and_reverses_gradient():
    torch.manual_seed(0)
    clf = nn.Linear(3, 1)
    fs = torch.randn(5, 3, requires_grad=True)
    ft = torch.randn(7, 3, requires_grad=True)
    loss_fn = DomainAdversarialLoss(clf, lambd=0.5)
    loss = loss_fn(fs, ft)
    # Independent: BCE written out with a sigmoid; source label 0, target label 1.
    ps = torch.sigmoid(clf(fs.detach())).squeeze(1)
    pt = torch.sigmoid(clf(ft.detach())).squeeze(1)
    expected = 0.5 * (-torch.log(1 - ps).mean() - torch.log(pt).mean())
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert 0.0 <= loss_fn.domain_accuracy <= 1.0

    # Features receive -lambda times the gradient they would get without reversal.
    loss.backward()
    fs2 = fs.detach().clone().requires_grad_(True)
    ps2 = torch.sigmoid(clf(fs2)).squeeze(1)
    (0.5 * -torch.log(1 - ps2).mean()).backward()
    assert torch.allclose(fs.grad, -0.5 * fs2.grad, atol=1e-6)
    # The classifier itself gets the ordinary (non-reversed) gradient: it minimises.
    assert clf.weight.grad is not None


def test_domain_adversarial_bad_shapes():
    loss_fn = DomainAdversarialLoss(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"\(N, 1\) or \(N,\)"):
        loss_fn(torch.randn(2, 3), torch.randn(2, 3))
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        loss_fn(torch.randn(2, 3), torch.randn(2, 4))


def test_domain_adversarial_loss_functional_is_the_modules_loss():
    torch.manual_seed(0)
    clf = torch.nn.Linear(3, 1)
    src, tgt = torch.randn(5, 3), torch.randn(7, 3) + 1
    module_value = DomainAdversarialLoss(clf)(src, tgt)
    with torch.no_grad():
        zs, zt = clf(src).squeeze(1), clf(tgt).squeeze(1)
    # explicit: half the mean BCE of each domain, source labelled 0, target 1
    explicit = 0.5 * (torch.log1p(torch.exp(zs)).mean() + torch.log1p(torch.exp(-zt)).mean())
    assert float(domain_adversarial_loss(zs, zt)) == pytest.approx(float(explicit), rel=1e-5)
    assert module_value.item() == pytest.approx(float(explicit), rel=1e-5)
    with pytest.raises(ValueError, match="source_logits"):
        domain_adversarial_loss(zs[:, None], zt)
