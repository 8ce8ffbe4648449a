"""Images and targets made on purpose: natural-photo crops, geometric targets, shifts, random labels.

:func:`natural_photos` (crops of offline photos, a stand-in for "ImageNet-like" source
images), :func:`geometric_target` (a regression target the image is transformed by:
rotation or scale), :func:`random_labels` and :func:`shift_images` (a synthetic shifted
target domain: labels unchanged, inputs moved).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..validation import check_choice, check_int
from .transforms import prepare_images

__all__ = [
    "GEOMETRIC_TARGETS",
    "SHIFTS",
    "geometric_target",
    "natural_photos",
    "random_labels",
    "rotate_images",
    "scale_images",
    "shift_images",
]

# ---------------------------------------------------------------- natural photos

_SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
)


def natural_photos(n: int = 200, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (``size`` px, RGB in [0, 1]) of offline natural photos (notebook 01).

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
    for name in _SKIMAGE_PHOTOS:
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


# ---------------------------------------------------------------- geometric regression targets (notebook 05b)

#: Continuous properties :func:`geometric_target` applies to an image and returns as the target.
GEOMETRIC_TARGETS = ("rotation", "scale")


def _affine(images: torch.Tensor, values: torch.Tensor, name: str, matrix) -> torch.Tensor:
    """Resample ``images`` through one 2x3 affine ``matrix(value)`` per image (zero padding)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
    values = torch.as_tensor(values, dtype=images.dtype)
    if values.shape != (len(images),):
        raise ValueError(
            f"{name} must hold one value per image, shape ({len(images)},), "
            f"got {tuple(values.shape)}."
        )
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or inf values.")
    theta = matrix(values)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""Each image ``(N, C, H, W)`` turned by its angle in degrees, counter-clockwise as displayed.

    Output pixel :math:`p` (centred coordinates) reads the input at :math:`R(-\varphi)\,p`
    (bilinear, zeros outside, the black Fashion-MNIST background), so 90 degrees equals
    ``torch.rot90(image, 1, dims=(1, 2))`` (a test checks it). Notebook 05b's regression target.
    """

    def matrix(deg: torch.Tensor) -> torch.Tensor:
        # affine_grid's y axis points down: an on-screen counter-clockwise turn by phi
        # samples the input at [[cos, -sin], [sin, cos]] in these coordinates.
        r = torch.deg2rad(deg)
        c, s = torch.cos(r), torch.sin(r)
        z = torch.zeros_like(r)
        return torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1)

    return _affine(images, angles, "angles", matrix)


def scale_images(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    r"""Each image ``(N, C, H, W)`` zoomed about its centre by its factor (< 1 shrinks it).

    Output pixel :math:`p` reads the input at :math:`p / s` (bilinear, zeros outside), so an
    object's side is multiplied by :math:`s`. Factors must be > 0. Notebook 05b.
    """
    factors = torch.as_tensor(factors)
    if factors.numel() and bool((factors <= 0).any()):
        raise ValueError(f"factors must be > 0, got min {float(factors.min())}.")

    def matrix(s: torch.Tensor) -> torch.Tensor:
        inv, z = 1.0 / s, torch.zeros_like(s)
        return torch.stack([torch.stack([inv, z, z], 1), torch.stack([z, inv, z], 1)], 1)

    return _affine(images, factors, "factors", matrix)


def geometric_target(
    images: torch.Tensor, kind: str, low: float, high: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression task made from images: ``(transformed images, values)`` (notebook 05b).

    Each image gets a value drawn uniformly from ``[low, high]`` (a local generator seeded
    by ``seed``) and is transformed by it: ``"rotation"`` (degrees, :func:`rotate_images`)
    or ``"scale"`` (zoom factor, :func:`scale_images`; ``low`` must be > 0). The value is
    known exactly, so the target is honest: no label noise, and the features must read a
    continuous property of the image, not a class.
    """
    check_choice("kind", kind, GEOMETRIC_TARGETS)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}.")
    if not low < high:
        raise ValueError(f"low must be < high, got low={low!r}, high={high!r}.")
    if kind == "scale" and low <= 0:
        raise ValueError(
            f"a scale factor must be > 0: low must be > 0 for kind 'scale', got {low!r}."
        )
    g = torch.Generator().manual_seed(seed)
    values = low + (high - low) * torch.rand(len(images), generator=g, dtype=images.dtype)
    fn = rotate_images if kind == "rotation" else scale_images
    return fn(images, values), values


def random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    """``n`` labels drawn uniformly from ``0..num_classes-1`` with a local generator (``seed``)."""
    return torch.randint(num_classes, (n,), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- domain shifts (notebook 09)

#: Synthetic domain shifts of :func:`shift_images`: name -> what it does.
SHIFTS: dict[str, str] = {
    "inverted": "1 - x: dark object on a light background",
    "coloured": "x * fg + (1 - x) * bg, a random RGB colour for object and background per image "
    "(3 channels out)",
    "noisy": "x + N(0, 0.4^2) per pixel, clipped to [0, 1]",
    "rotated": "turned by an angle drawn uniformly from 30 to 90 degrees per image",
}


def shift_images(images: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A shifted target domain made from images ``(N, C, H, W)`` in [0, 1] (notebook 09).

    ``kind`` (:data:`SHIFTS`): ``"inverted"`` (``1 - x``), ``"coloured"`` (every image gets a
    random foreground colour ``fg`` and background colour ``bg``, uniform in ``[0, 1]^3``, and
    becomes ``x fg + (1 - x) bg``, three channels, grey input averaged first: a crude
    MNIST-M, Ganin et al. 2016), ``"noisy"`` (additive Gaussian noise, sigma 0.4, clipped)
    or ``"rotated"`` (an angle uniform in [30, 90] degrees per image, :func:`rotate_images`).
    The labels are unchanged: only the input distribution moves (a covariate shift). Random
    draws use a local generator seeded by ``seed`` (the same images for the same seed; the
    global random stream is untouched). The output is a new tensor in [0, 1]. Images with
    NaN/inf pixels or values outside [0, 1] (0..255 scale, normalised images) are refused.
    """
    check_choice("kind", kind, SHIFTS)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}.")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}.")
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)}): nothing to shift.")
    lo_t, hi_t = torch.aminmax(images.detach())  # one pass; NaN propagates into both
    lo, hi = float(lo_t), float(hi_t)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # 'noisy', 'inverted' passed NaN on
        bad = ~torch.isfinite(images)
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"images contains NaN or inf values ({int(bad.sum())} pixels, the first at "
            f"{where}); shifts need finite pixels in [0, 1]."
        )
    if lo < 0 or hi > 1:
        hint = ("divide by 255 first" if hi > 1 and lo >= 0
                else "shift the raw images, before normalising them")  # fmt: skip
        raise ValueError(
            f"images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]: {hint} "
            "(the shifts and their output are defined on [0, 1])."
        )
    check_int("seed", seed, minimum=0)
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    if kind == "inverted":
        return 1.0 - images
    if kind == "coloured":
        grey = images.mean(1, keepdim=True)
        fg = torch.rand(n, 3, 1, 1, generator=g, dtype=images.dtype)
        bg = torch.rand(n, 3, 1, 1, generator=g, dtype=images.dtype)
        return (grey * fg + (1.0 - grey) * bg).clamp(0, 1)
    if kind == "noisy":
        noise = torch.randn(images.shape, generator=g, dtype=images.dtype)
        return (images + 0.4 * noise).clamp(0, 1)
    angles = 30.0 + 60.0 * torch.rand(n, generator=g, dtype=images.dtype)
    return rotate_images(images, angles).clamp(0, 1)
