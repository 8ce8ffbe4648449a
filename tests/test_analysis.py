"""Weight-space paths, forgetting, domain gap and latency (tlhelpers.analysis)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlhelpers.analysis import (
    domain_gap,
    interpolate_state,
    loss_along_path,
    measure_latency,
    old_task_accuracy,
)
from tlhelpers.models import SmallCNN, transfer_model
from tlhelpers.training import evaluate, fine_tune


def test_interpolate_state_endpoints_and_linearity():
    s = {"body.w": torch.zeros(3), "head.w": torch.ones(2), "n": torch.tensor(1)}
    t = {"body.w": torch.full((3,), 4.0), "head.w": torch.full((2,), 3.0), "n": torch.tensor(7)}
    assert torch.equal(interpolate_state(s, t, 0.0)["body.w"], s["body.w"])
    assert torch.equal(interpolate_state(s, t, 1.0)["body.w"], t["body.w"])
    mid = interpolate_state(s, t, 0.25)
    assert torch.allclose(mid["body.w"], torch.full((3,), 1.0))
    assert torch.allclose(mid["head.w"], torch.full((2,), 1.5))
    assert int(mid["n"]) == 7  # integer buffers come from the target
    body_only = interpolate_state(s, t, 0.0, prefixes=("body.",))
    assert torch.equal(body_only["head.w"], t["head.w"])  # fine-tuned head kept
    assert torch.equal(body_only["body.w"], s["body.w"])
    # linear: f(a t1 + (1-a) t2) = a f(t1) + (1-a) f(t2)
    f = lambda x: interpolate_state(s, t, x)["body.w"]  # noqa: E731
    assert torch.allclose(f(0.6), 0.5 * f(0.2) + 0.5 * f(1.0))


def test_loss_along_path_endpoints_match_models_and_restores(source, data):
    model = transfer_model(source, 5)
    s0 = {k: v.clone() for k, v in model.state_dict().items()}
    fine_tune(model, data, steps=3, lr=1e-2)
    s1 = {k: v.clone() for k, v in model.state_dict().items()}
    path = loss_along_path(model, s0, s1, data, [0.0, 0.5, 1.0])
    assert path["t"] == [0.0, 0.5, 1.0]
    assert path["loss"][2] == pytest.approx(evaluate(model, data)["loss"], rel=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in s1.items())  # restored
    # t = 0: source body with the fine-tuned head
    probe = transfer_model(source, 5)
    probe.load_state_dict(interpolate_state(s0, s1, 0.0, ("body.",)))
    assert path["loss"][0] == pytest.approx(evaluate(probe, data)["loss"], rel=1e-5)
    assert torch.equal(probe.head.weight, s1["head.weight"])


def test_old_task_accuracy_is_source_accuracy_before_finetuning(source, data):
    model = transfer_model(source, 5)
    assert old_task_accuracy(model.body, source.classifier, data) == pytest.approx(
        evaluate(source, data)["accuracy"]
    )


def test_domain_gap_zero_for_same_positive_for_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 4, generator=g)
    same = domain_gap(a, a)
    assert abs(same["mmd2"]) < 1e-10 and abs(same["coral"]) < 1e-12
    shifted = domain_gap(a, a * 3 + 2)
    assert shifted["mmd2"] > 0.1 and shifted["coral"] > 0.01
    assert set(domain_gap(a, a, n=10)) == {"mmd2", "coral"}
    with pytest.raises(ValueError, match="n must be"):
        domain_gap(a, a, n=1)


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


def test_measure_latency_leaves_the_global_random_stream_alone():
    model = nn.Linear(4, 2)
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    measure_latency(model, (2, 4), repeats=1, warmup=0)
    assert torch.equal(torch.rand(3), expected)


def test_domain_gap_fixed_bandwidth_puts_pairs_on_one_scale():
    from tlhelpers.losses import median_bandwidth, mmd2

    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(40, 5, generator=g), torch.randn(40, 5, generator=g) * 4 + 1
    sigma = 2.5
    fixed = domain_gap(a, b, bandwidth=sigma)["mmd2"]
    assert fixed == pytest.approx(float(mmd2(a.double(), b.double(), bandwidths=sigma)), rel=1e-10)
    # the per-pair median heuristic is a different kernel for this pair
    assert float(median_bandwidth(a, b)) != pytest.approx(sigma, rel=0.05)
    assert domain_gap(a, b)["mmd2"] != pytest.approx(fixed, rel=1e-3)
    with pytest.raises(ValueError, match="bandwidth"):
        domain_gap(a, b, bandwidth=0.0)
