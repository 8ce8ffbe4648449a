"""Tests for tlhelpers.preprocessing (notebook 01)."""

from __future__ import annotations

import copy

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

matplotlib.use("Agg")

from tlhelpers.data import (  # noqa: E402
    Preprocess,
    TensorImageDataset,
    few_shot,
    few_shot_indices,
    prepare_images,
)
from tlhelpers.models import SmallCNN  # noqa: E402
from tlhelpers.preprocessing import (  # noqa: E402
    adabn,
    augment,
    domain_gap,
    natural_photos,
    normalization_demo,
    normalization_for,
    probe_over_seeds,
    target_normalization,
)


def _toy(n=40, classes=3, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size, size, generator=g)
    y = torch.arange(n) % classes
    return TensorImageDataset(x, y, [str(c) for c in range(classes)])


def test_few_shot_indices_match_few_shot():
    ds = _toy(60)
    for seed in (0, 3):
        idx = few_shot_indices(ds.targets, 4, seed)
        sub = few_shot(ds, 4, seed)
        assert torch.equal(ds.images[idx], sub.images)
        assert np.bincount(ds.targets[idx].numpy()).tolist() == [4, 4, 4]


def test_few_shot_indices_too_many():
    with pytest.raises(ValueError, match="class 0"):
        few_shot_indices(torch.tensor([0, 1, 1]), 2)


def test_probe_over_seeds_separable():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(100) % 2
    f = torch.randn(100, 5, generator=g) + 5 * y[:, None].float()
    accs = probe_over_seeds(f, y, f, y, per_class=3, seeds=[0, 1])
    assert len(accs) == 2 and min(accs) > 0.95


def test_preprocess_matches_prepare_images_and_repr():
    x = torch.rand(2, 1, 10, 10)
    t = Preprocess(16, 3, ([0.5, 0.5, 0.5], [0.25, 0.25, 0.25]))
    assert torch.allclose(t(x), prepare_images(x, 16, 3, ([0.5] * 3, [0.25] * 3)))
    assert repr(t) == repr(Preprocess(16, 3, ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))))
    assert t(x).shape == (2, 3, 16, 16)


def test_target_normalization_standardises():
    x = torch.rand(20, 1, 6, 6) * 0.3 + 0.2
    mean, std = target_normalization(x, 3)
    assert len(mean) == 3 and len(std) == 3
    z = Preprocess(None, 3, (mean, std))(x)
    assert torch.allclose(z.mean(), torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(z.std(), torch.tensor(1.0), atol=1e-3)
    assert normalization_for("none", x) is None
    assert normalization_for("imagenet", x) == "imagenet"
    with pytest.raises(ValueError, match="Valid values"):
        normalization_for("own", x)


def test_natural_photos_shape_range_deterministic():
    a = natural_photos(5, size=16, seed=1)
    assert a.shape == (5, 3, 16, 16)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, natural_photos(5, size=16, seed=1))
    assert not torch.equal(a, natural_photos(5, size=16, seed=2))


def test_domain_gap_zero_for_same_positive_for_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 4, generator=g)
    same = domain_gap(a, a)
    assert abs(same["mmd2"]) < 1e-10 and abs(same["coral"]) < 1e-12
    shifted = domain_gap(a, a * 3 + 2)
    assert shifted["mmd2"] > 0.1 and shifted["coral"] > 0.01
    assert set(domain_gap(a, a, n=10)) == {"mmd2", "coral"}


def test_augment_shape_deterministic_and_kinds():
    x = torch.rand(3, 1, 12, 12)
    for kind in ("flip", "crop", "rotate", "jitter", "all"):
        out = augment(x, kind, seed=0)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, augment(x, kind, seed=0))
    with pytest.raises(ValueError, match="Valid values"):
        augment(x, "mixup")


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


def test_normalization_demo_returns_none_and_validates():
    import matplotlib.pyplot as plt

    x = torch.rand(4, 1, 10, 10)
    for norm in ("imagenet", "target", "none"):
        assert normalization_demo(x, norm, size=16, index=1) is None
    plt.close("all")
    with pytest.raises(ValueError, match="Valid values"):
        normalization_demo(x, "z-score")
    with pytest.raises(ValueError, match="only 4"):
        normalization_demo(x, "none", index=4)


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
