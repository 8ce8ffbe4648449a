"""Tests for tlhelpers.model_choice (notebook 02)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from tlhelpers.data import TensorImageDataset  # noqa: E402
from tlhelpers.model_choice import (  # noqa: E402
    fine_tune,
    measure_latency,
    ranking_demo,
    source_outputs,
)
from tlhelpers.models import SmallCNN, split_model  # noqa: E402


class Sleepy(nn.Module):
    """Takes a known time per call, whatever the batch size."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds
        self.lin = nn.Linear(1, 1)

    def forward(self, x):
        import time

        time.sleep(self.seconds)
        return x


def test_measure_latency_is_per_image_median():
    model = Sleepy(0.02)
    ms = measure_latency(model, (4, 1, 2, 2), repeats=3, warmup=0)
    assert 4.5 <= ms <= 9.0  # 20 ms per pass / 4 images = 5 ms per image


def test_measure_latency_restores_mode_and_validates():
    model = SmallCNN(num_classes=2, width=4).train()
    assert measure_latency(model, (2, 1, 8, 8), repeats=2) > 0
    assert model.training
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, (2, 1, 8, 8), repeats=0)
    with pytest.raises(ValueError, match="input_shape"):
        measure_latency(model, (0, 1, 8, 8))


def _toy(n=24, seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, size, size, generator=g) * 0.3
    x[y == 1, :, : size // 2] += 0.7  # class 1: bright top half
    return TensorImageDataset(x.clamp(0, 1), y, ["a", "b"])


def test_source_outputs_matches_model():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4).eval()
    data = _toy(10)
    out = source_outputs(model, data, batch_size=4, batch_transform=lambda b: b * 2)
    assert out["features"].shape == (10, 16) and out["source_probs"].shape == (10, 3)
    with torch.no_grad():
        logits = model(data.images * 2)
        feats = split_model(model).body(data.images * 2)
    assert torch.allclose(out["source_probs"], torch.softmax(logits, 1).double(), atol=1e-6)
    assert torch.allclose(out["features"], feats, atol=1e-6)
    assert torch.allclose(out["source_probs"].sum(1), torch.ones(10, dtype=torch.float64))
    assert torch.equal(out["targets"], data.targets)


def test_fine_tune_learns_and_leaves_model_unchanged():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5, width=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    acc = fine_tune(
        model, _toy(24), _toy(40, seed=1), 2, steps=40, lr=1e-2, seed=0, freeze_bn_stats=False
    )
    assert acc >= 0.9
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    again = fine_tune(
        model, _toy(24), _toy(40, seed=1), 2, steps=40, lr=1e-2, seed=0, freeze_bn_stats=False
    )
    assert again == acc  # same seed, same result
    with pytest.raises(ValueError, match="lr"):
        fine_tune(model, _toy(4), _toy(4), 2, lr=-1.0)


TABLE = [
    {"target": "t1", "model": "a", "logme": 1.0, "leep": -0.5, "fine_tuned": 0.9},
    {"target": "t1", "model": "b", "logme": 0.5, "leep": -0.2, "fine_tuned": 0.8},
    {"target": "t1", "model": "c", "logme": 0.1, "leep": -0.9, "fine_tuned": 0.6},
    {"target": "t2", "model": "a", "logme": 0.3, "leep": -0.1, "fine_tuned": 0.7},
]


def test_ranking_demo_returns_none_and_reports(capsys):
    import matplotlib.pyplot as plt

    assert ranking_demo(TABLE, "t1", "logme") is None
    assert "picks 'a'" in capsys.readouterr().out and True
    ranking_demo(TABLE, "t1", "leep")
    assert "picks 'b'; best fine-tuned: 'a' (disagree)" in capsys.readouterr().out
    plt.close("all")


def test_ranking_demo_validates():
    with pytest.raises(ValueError, match="Valid values: t1, t2"):
        ranking_demo(TABLE, "t3", "logme")
    with pytest.raises(ValueError, match="Valid values"):
        ranking_demo(TABLE, "t1", "h_score")
    assert np.isfinite(TABLE[0]["logme"])
