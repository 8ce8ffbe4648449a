"""Tests of tlhelpers.losses.metric_learning against pytorch-metric-learning, torch and loops."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning import losses as pml

from tlhelpers.losses import (
    ArcFaceLoss,
    BatchHardTripletLoss,
    CosFaceLoss,
    TripletLoss,
    arcface_loss,
    batch_hard_triplet_loss,
    triplet_loss,
)


def _batch(n: int = 16, e: int = 8, c: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, e, generator=g), torch.randint(0, c, (n,), generator=g)


@pytest.mark.parametrize("margin", [0.5, 0.2, 1.2])
def test_arcface_matches_pml(margin):
    emb, labels = _batch()
    ours = ArcFaceLoss(5, 8, margin=margin, scale=64.0)
    ref = pml.ArcFaceLoss(5, 8, margin=math.degrees(margin), scale=64.0)
    with torch.no_grad():
        ref.W.copy_(ours.weight.T)  # PML keeps W as (embedding_size, num_classes)
    assert ours(emb, labels).item() == pytest.approx(ref(emb, labels).item(), abs=1e-5, rel=1e-5)


def test_arcface_fallback_branch_matches_pml():
    # Embeddings pointing away from their class centre: theta > pi - m, fallback branch.
    emb, labels = _batch(n=6)
    ours = ArcFaceLoss(5, 8, margin=0.5, scale=8.0)
    with torch.no_grad():
        emb = -ours.weight[labels] + 0.01 * emb
    ref = pml.ArcFaceLoss(5, 8, margin=math.degrees(0.5), scale=8.0)
    with torch.no_grad():
        ref.W.copy_(ours.weight.T)
    cos = torch.nn.functional.cosine_similarity(emb, ours.weight[labels])
    assert (torch.acos(cos) > math.pi - 0.5).all()
    assert ours(emb, labels).item() == pytest.approx(ref(emb, labels).item(), rel=1e-5)


def test_cosface_matches_pml():
    emb, labels = _batch(seed=3)
    ours = CosFaceLoss(5, 8, margin=0.35, scale=64.0)
    ref = pml.CosFaceLoss(5, 8, margin=0.35, scale=64.0)
    with torch.no_grad():
        ref.W.copy_(ours.weight.T)
    assert ours(emb, labels).item() == pytest.approx(ref(emb, labels).item(), abs=1e-5, rel=1e-5)


def test_arcface_hand_formula_and_gradients():
    emb, labels = _batch(n=4, seed=5)
    emb = emb.double().requires_grad_(True)
    w = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    loss = arcface_loss(emb, labels, w, margin=0.3, scale=10.0, reduction="none")
    e, ww = emb.detach().numpy(), w.detach().numpy()
    for i in range(4):
        cos = [e[i] @ ww[c] / np.linalg.norm(e[i]) / np.linalg.norm(ww[c]) for c in range(5)]
        y = int(labels[i])
        theta = math.acos(cos[y])
        z = [10.0 * (math.cos(theta + 0.3) if c == y else cos[c]) for c in range(5)]
        expected = -z[y] + math.log(sum(math.exp(v) for v in z))
        assert loss[i].item() == pytest.approx(expected, rel=1e-10)
    loss.sum().backward()
    assert torch.isfinite(emb.grad).all() and torch.isfinite(w.grad).all()
    # Gradient stays finite for an embedding exactly on its class centre.
    w2 = torch.eye(5, 8, requires_grad=True)
    e2 = torch.eye(5, 8).clone().requires_grad_(True)
    arcface_loss(e2, torch.arange(5), w2).backward()
    assert torch.isfinite(e2.grad).all()


def test_margin_losses_bad_input():
    loss = ArcFaceLoss(5, 8)
    with pytest.raises(ValueError, match=r"\(4, 7\).*\(5, 8\)"):
        loss(torch.randn(4, 7), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 4\]"):
        loss(torch.randn(4, 8), torch.tensor([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="Valid values: 'mean', 'sum', 'none'"):
        ArcFaceLoss(5, 8, reduction="avg")


def test_triplet_matches_torch():
    g = torch.Generator().manual_seed(0)
    a, p, n = (torch.randn(32, 6, generator=g) for _ in range(3))
    ref = torch.nn.TripletMarginLoss(margin=1.0, p=2.0)(a, p, n)
    assert triplet_loss(a, p, n).item() == pytest.approx(ref.item(), abs=1e-6)
    assert TripletLoss()(a, p, n).item() == pytest.approx(ref.item(), abs=1e-6)
    ref_sum = torch.nn.TripletMarginLoss(margin=0.5, reduction="sum")(a, p, n)
    assert triplet_loss(a, p, n, 0.5, reduction="sum").item() == pytest.approx(
        ref_sum.item(), rel=1e-6
    )


def test_triplet_normalize_and_mean_nonzero_by_hand():
    g = torch.Generator().manual_seed(1)
    a, p, n = (torch.randn(20, 4, generator=g, dtype=torch.float64) for _ in range(3))
    an, pn, nn_ = (x.numpy() / np.linalg.norm(x.numpy(), axis=1, keepdims=True) for x in (a, p, n))
    per = np.maximum(
        0, np.linalg.norm(an - pn + 1e-6, axis=1) - np.linalg.norm(an - nn_ + 1e-6, axis=1) + 0.2
    )
    got = triplet_loss(a, p, n, 0.2, normalize=True, reduction="mean_nonzero")
    assert got.item() == pytest.approx(per[per > 0].mean(), rel=1e-9)
    none = triplet_loss(a, p, n, 0.2, normalize=True, reduction="none")
    np.testing.assert_allclose(none.numpy(), per, rtol=1e-9)
    # All satisfied -> mean_nonzero is 0, not NaN.
    assert triplet_loss(a, a, a + 10, 0.1, reduction="mean_nonzero").item() == 0.0


def test_triplet_bad_input():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(5, 3\)"):
        triplet_loss(x, torch.randn(5, 3), x)
    with pytest.raises(ValueError, match="'mean', 'mean_nonzero', 'sum', 'none'"):
        triplet_loss(x, x, x, reduction="max")


def _batch_hard_loop(e: np.ndarray, y: np.ndarray, margin: float | None) -> list[float]:
    out = []
    for a in range(len(e)):
        pos = [np.linalg.norm(e[a] - e[q]) for q in range(len(e)) if q != a and y[q] == y[a]]
        neg = [np.linalg.norm(e[a] - e[q]) for q in range(len(e)) if y[q] != y[a]]
        if not pos or not neg:
            continue
        diff = max(pos) - min(neg)
        out.append(math.log1p(math.exp(diff)) if margin is None else max(0.0, diff + margin))
    return out


@pytest.mark.parametrize("margin", [0.2, 1.0, None])
def test_batch_hard_matches_loop(margin):
    g = torch.Generator().manual_seed(2)
    e = torch.randn(18, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 5, 6])  # 6 has no positive
    expected = _batch_hard_loop(e.numpy(), y.numpy(), margin)
    assert len(expected) == 17
    got = batch_hard_triplet_loss(e, y, margin=margin, reduction="none")
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    assert BatchHardTripletLoss(margin)(e, y).item() == pytest.approx(np.mean(expected))


def test_batch_hard_normalized_and_gradient():
    g = torch.Generator().manual_seed(4)
    e = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = torch.arange(12) % 3
    en = e.numpy() / np.linalg.norm(e.numpy(), axis=1, keepdims=True)
    expected = np.mean(_batch_hard_loop(en, y.numpy(), 0.3))
    e.requires_grad_(True)
    loss = batch_hard_triplet_loss(e, y, 0.3, normalize=True)
    assert loss.item() == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert torch.isfinite(e.grad).all()
    # No valid anchor: 0, still differentiable.
    z = batch_hard_triplet_loss(torch.randn(3, 2, requires_grad=True), torch.tensor([0, 1, 2]))
    assert z.item() == 0.0 and z.requires_grad
