"""Fitting target data to a source model: transforms, timing, domain gap, AdaBN (notebook 01).

- :func:`probe_over_seeds`: few-shot linear probes on features computed once
  (rows picked with :func:`tlhelpers.data.few_shot_indices`).
- The batch transform itself is :class:`tlhelpers.data.Preprocess`.
- :func:`timed_features`: features and the seconds they took.
- :func:`natural_photos`: random crops of the offline scikit-image / scikit-learn photos,
  a small "source-like" (ImageNet-like) sample.
- :func:`domain_gap`: MMD and CORAL between two feature samples.
- :func:`augment`: a few standard augmentations on a batch.
- :func:`adabn`: re-estimate BatchNorm statistics on target data (Li et al., 2016).
- :func:`normalization_demo`: the notebook's ipywidgets demo.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import Preprocess, channel_stats, few_shot_indices, prepare_images
from .features import extract_features, linear_probe
from .training import Data, iterate_batches
from .validation import check_choice, check_int, check_positive

NORMALIZATIONS = ("imagenet", "target", "none")
AUGMENTATIONS = ("flip", "crop", "rotate", "jitter", "all")


def target_normalization(images: torch.Tensor, channels: int = 3) -> tuple[list, list]:
    """The target's own per-channel ``(mean, std)``, repeated for ``channels`` if grey."""
    mean, std = channel_stats(images)
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    return mean, std


def normalization_for(name: str, images: torch.Tensor, channels: int = 3):
    """``"imagenet"`` -> ``"imagenet"``, ``"target"`` -> own stats, ``"none"`` -> ``None``."""
    check_choice("normalization", name, NORMALIZATIONS)
    if name == "target":
        return target_normalization(images, channels)
    return None if name == "none" else "imagenet"


def probe_over_seeds(
    train_features: torch.Tensor,
    train_targets: torch.Tensor,
    test_features: torch.Tensor,
    test_targets: torch.Tensor,
    per_class: int,
    seeds: Sequence[int],
    **probe_kwargs,
) -> list[float]:
    """Linear-probe test accuracy for each seed's few-shot draw of the training features."""
    accs = []
    for s in seeds:
        idx = few_shot_indices(train_targets, per_class, s)
        accs.append(
            linear_probe(
                train_features[idx], train_targets[idx], test_features, test_targets, **probe_kwargs
            )
        )
    return accs


def timed_features(
    model: nn.Module, data: Data, batch_transform=None, **kwargs
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`tlhelpers.features.extract_features` plus its wall time in seconds (no cache)."""
    start = time.perf_counter()
    feats, y = extract_features(model, data, batch_transform=batch_transform, **kwargs)
    return feats, y, time.perf_counter() - start


def natural_photos(n: int = 200, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (``size`` px, RGB in [0, 1]) of offline natural photos.

    The photos are scikit-image's ``astronaut, chelsea, coffee, rocket, hubble_deep_field,
    immunohistochemistry, motorcycle_left`` (those present) and scikit-learn's two sample
    images: a tiny, honest stand-in for "ImageNet-like" source images. Crop sides are
    drawn between 30% and 70% of the shorter side, then resized to ``size``.
    """
    check_int("n", n, minimum=1)
    check_int("size", size, minimum=2)
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in (
        "astronaut",
        "chelsea",
        "coffee",
        "rocket",
        "hubble_deep_field",
        "immunohistochemistry",
        "motorcycle_left",
    ):
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a photo missing from this skimage is just skipped
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append(img[..., :3])
    photos += list(load_sample_images().images)
    tensors = [torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255.0 for p in photos]
    rng = np.random.default_rng(seed)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = tensors[rng.integers(len(tensors))]
        h, w = img.shape[1:]
        side = int(rng.uniform(0.3, 0.7) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[:, top : top + side, left : left + side].unsqueeze(0)
        out[i] = prepare_images(crop, size, None, None)[0]
    return out.clamp_(0, 1)


def domain_gap(
    a: torch.Tensor,
    b: torch.Tensor,
    n: int | None = None,
    seed: int = 0,
    *,
    bandwidth: float | None = None,
) -> dict[str, float]:
    """``{"mmd2", "coral"}`` between feature samples ``a (n_a, D)`` and ``b (n_b, D)``.

    MMD^2 (biased estimator, one Gaussian kernel) and CORAL (Sun & Saenko, paper
    convention) from :mod:`tlhelpers.losses`. With ``n`` each sample is first
    subsampled (``seed``) to at most ``n`` rows, so gaps from samples of different sizes
    are comparable. ``bandwidth`` is the kernel's ``sigma``; ``None`` uses the median
    heuristic *of this pair*, which puts every pair on its own scale: to compare MMD^2
    values in one table, pass one fixed ``bandwidth`` (e.g. the median heuristic on
    pooled reference data, :func:`tlhelpers.losses.median_bandwidth`).
    """
    from .losses import coral, mmd2

    if bandwidth is not None:
        check_positive("bandwidth", bandwidth)

    rng = np.random.default_rng(seed)

    def sub(x):
        x = torch.as_tensor(x, dtype=torch.float64)
        if n is not None and len(x) > n:
            x = x[torch.as_tensor(np.sort(rng.choice(len(x), n, replace=False)))]
        return x

    a, b = sub(a), sub(b)
    return {"mmd2": float(mmd2(a, b, bandwidths=bandwidth)), "coral": float(coral(a, b))}


def augment(images: torch.Tensor, kind: str = "all", seed: int = 0) -> torch.Tensor:
    """Randomly augmented copies of a batch ``(N, C, H, W)`` in [0, 1] (one draw per image).

    ``kind``: ``"flip"`` (horizontal), ``"crop"`` (random resized crop, 70-100% area),
    ``"rotate"`` (+-15 degrees), ``"jitter"`` (brightness/contrast +-30%) or ``"all"``.
    """
    check_choice("kind", kind, AUGMENTATIONS)
    from torchvision.transforms import v2

    size = images.shape[-2:]
    ops = {
        "flip": v2.RandomHorizontalFlip(p=0.5),
        "crop": v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
        "rotate": v2.RandomRotation(15),
        "jitter": v2.ColorJitter(brightness=0.3, contrast=0.3),
    }
    t = v2.Compose(list(ops.values())) if kind == "all" else ops[kind]
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        out = torch.stack([t(img) for img in images])
    finally:
        torch.set_rng_state(state)
    return out.clamp(0, 1)


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def adabn(
    model: nn.Module,
    data: Data | torch.Tensor,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    *,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Adaptive BatchNorm (Li, Wang, Shi, Liu & Hou, 2016): re-estimate BN statistics on target data.

    Every BatchNorm layer's running mean and variance are reset and recomputed as the
    *cumulative* average (``momentum=None``) over forward passes of ``data`` (labels
    unused) in train mode without gradients; the learned weights (including BN's
    affine ``gamma, beta``) are untouched. The model is modified in place (deep-copy
    it first to keep the original) and returned in eval mode.

    ``data``: a dataset, an ``(images, targets)`` pair or an images tensor.
    Caveat: with ``batch_size`` smaller than ``len(data)`` the running variance is the
    average of per-batch (unbiased) variances, which misses the spread between batch
    means; the running mean is exact up to a last smaller batch's weight (PyTorch weights
    every batch equally). Use one batch for exact statistics.
    """
    check_int("batch_size", batch_size, minimum=1)
    layers = _bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer: nothing to adapt.")
    if isinstance(data, torch.Tensor):
        data = (data, torch.zeros(len(data), dtype=torch.long))
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for x, _ in iterate_batches(data, batch_size):
        x = x.to(dev)
        if batch_transform is not None:
            x = batch_transform(x)
        model(x)
    for m, mom in zip(layers, saved, strict=True):
        m.momentum = mom
    return model.eval()


def normalization_demo(
    images: torch.Tensor, normalization: str = "imagenet", size: int = 64, index: int = 0
) -> None:
    """ipywidgets demo (notebook 01): what the source model sees after preprocessing.

    Shows image ``index`` of ``images`` (N, C, H, W) in [0, 1] resized to ``size`` and
    grey->RGB, then normalised with ``normalization`` (``"imagenet"``, ``"target"``,
    ``"none"``), and the histogram of all input values against the standard normal that
    an ImageNet model's first layer expects. Prints the per-channel mean and std.
    """
    import matplotlib.pyplot as plt

    check_choice("normalization", normalization, NORMALIZATIONS)
    check_int("size", size, minimum=2)
    check_int("index", index, minimum=0)
    if index >= len(images):
        raise ValueError(f"index={index} but there are only {len(images)} images.")
    norm = normalization_for(normalization, images)
    x = Preprocess(size, 3, norm)(images)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    img = x[index].permute(1, 2, 0).numpy()
    axes[0].imshow((img - img.min()) / max(img.max() - img.min(), 1e-8))
    axes[0].set_title(f"input {size}x{size} (display rescaled)", fontsize=9)
    axes[0].axis("off")
    grid = np.linspace(-4, 4, 200)
    axes[1].hist(x.flatten().numpy(), bins=60, density=True, alpha=0.6, label="input values")
    axes[1].plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    axes[1].set(xlim=(-4, 4), title=f"normalization = {normalization!r}", xlabel="value")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    print(f"per-channel mean {np.round(mean.numpy(), 2)}, std {np.round(std.numpy(), 2)}")
