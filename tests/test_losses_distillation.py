"""Tests of tlhelpers.losses.distillation against scipy/numpy KL and by construction."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax
from torch import nn

from tlhelpers.losses import DistillationLoss, LwF, TransferObjective, distillation_loss


def _kl_numpy(s: np.ndarray, t: np.ndarray, temp: float) -> np.ndarray:
    pt, ps = softmax(t / temp, axis=1), softmax(s / temp, axis=1)
    return rel_entr(pt, ps).sum(1) * temp**2


@pytest.mark.parametrize("temp", [1.0, 2.0, 4.5])
def test_distillation_matches_scipy_kl_times_t2(temp):
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(7, 5)) * 3, rng.normal(size=(7, 5)) * 3
    expected = _kl_numpy(s, t, temp)
    st, tt = torch.from_numpy(s), torch.from_numpy(t)
    np.testing.assert_allclose(
        distillation_loss(st, tt, temp, "none").numpy(), expected, rtol=1e-10
    )
    for red, ref in (
        ("batchmean", expected.mean()),
        ("mean", expected.mean()),
        ("sum", expected.sum()),
    ):
        assert distillation_loss(st, tt, temp, red).item() == pytest.approx(ref, rel=1e-10)
    assert DistillationLoss(temp)(st, tt).item() == pytest.approx(expected.mean(), rel=1e-10)


def test_distillation_zero_when_equal_and_gradient_scale():
    z = torch.randn(4, 6)
    assert distillation_loss(z, z.clone()).item() == pytest.approx(0.0, abs=1e-7)
    # T^2 scaling: gradient w.r.t. student logits = T * (p_s - p_t) / N.
    s = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    t = torch.randn(4, 6, dtype=torch.float64)
    distillation_loss(s, t, 3.0).backward()
    expected = 3.0 * (torch.softmax(s.detach() / 3, 1) - torch.softmax(t / 3, 1)) / 4
    assert torch.allclose(s.grad, expected)


def test_distillation_bad_input():
    with pytest.raises(ValueError, match=r"\(4, 5\) and \(4, 6\)"):
        distillation_loss(torch.randn(4, 5), torch.randn(4, 6))
    with pytest.raises(ValueError, match="Valid values: 'batchmean', 'mean', 'sum', 'none'"):
        distillation_loss(torch.randn(4, 5), torch.randn(4, 5), reduction="avg")
    with pytest.raises(ValueError, match="temperature"):
        distillation_loss(torch.randn(4, 5), torch.randn(4, 5), temperature=0.0)


class Split(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.ReLU())
        self.head = nn.Linear(6, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def test_lwf_term_in_objective():
    torch.manual_seed(0)
    source = Split(c=5)  # old task: 5 classes
    lwf = LwF.from_source(source, temperature=2.0)
    model = copy.deepcopy(source)
    model.head = nn.Linear(6, 3)  # new task: 3 classes
    model.old_head = lwf.old_head
    obj = TransferObjective(terms={"lwf": (0.5, lwf)})
    x, y = torch.randn(8, 4), torch.randint(0, 3, (8,))
    out = obj(model, x, y)
    # Body and old head unchanged -> old outputs equal the teacher's -> 0.
    assert out["lwf"].item() == pytest.approx(0.0, abs=1e-7)

    with torch.no_grad():
        model.body[0].weight.add_(0.3)
    out = obj(model, x, y)
    with torch.no_grad():
        expected = (
            0.5
            * _kl_numpy(
                lwf.old_head(model.body(x)).numpy().astype(np.float64),
                source(x).numpy().astype(np.float64),
                2.0,
            ).mean()
        )
    assert out["lwf"].item() == pytest.approx(expected, rel=1e-5)
    out["total"].backward()
    assert model.body[0].weight.grad is not None and lwf.old_head.weight.grad is not None
    assert all(p.grad is None for p in lwf.teacher.parameters())
    obj.train()
    assert not lwf.teacher.training


def test_lwf_from_a_kit_backbone_uses_its_classifier():
    from tlhelpers.models import SmallCNN

    cnn = SmallCNN(num_classes=5, width=4)
    lwf = LwF.from_source(cnn)
    assert torch.equal(lwf.old_head.weight, cnn.classifier.weight)
    assert lwf.old_head is not cnn.classifier
    with pytest.raises(ValueError, match="kit backbone"):
        LwF.from_source(nn.Linear(3, 2))
