"""Transforms of image batches: fitting them to a source model, normalisation, augmentation.

:func:`prepare_images` / :class:`Preprocess` (resize, grey to RGB, normalise; a stable
``repr`` keys feature caches), the target's own statistics (:func:`channel_stats`,
:func:`normalization_for`) and :func:`augment`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..runtime import seeded
from ..validation import check_choice

__all__ = [
    "AUGMENTATIONS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageNetInput",
    "NORMALIZATIONS",
    "Preprocess",
    "augment",
    "channel_stats",
    "normalization_for",
    "prepare_images",
    "target_normalization",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------- preprocessing


def prepare_images(
    images: torch.Tensor,
    size: int | None = None,
    channels: int | None = None,
    normalization: str | tuple[Sequence[float], Sequence[float]] | None = "imagenet",
) -> torch.Tensor:
    """Fit a batch ``(N, C, H, W)`` in [0, 1] to what a source model expects (notebook 01).

    - ``size``: bilinear resize (antialiased when shrinking) to ``size x size``.
    - ``channels``: 3 repeats a grey channel (ImageNet models expect RGB).
    - ``normalization``: ``"imagenet"`` (the source's statistics), ``None``, or a
      ``(mean, std)`` pair, e.g. the target's own from :func:`channel_stats`.
    """
    x = images
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}.")
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"Can only expand 1 channel to {channels}, got {x.shape[1]}.")
        x = x.expand(-1, channels, -1, -1)
    if normalization is None:
        return x
    mean: Sequence[float]
    std: Sequence[float]
    if isinstance(normalization, str):
        check_choice("normalization", normalization, ["imagenet"])
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = normalization
    mean_t = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    if mean_t.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"normalization has {mean_t.shape[1]} channels, images {x.shape[1]}.")
    return (x - mean_t) / std_t


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a batch ``(N, C, H, W)`` (the target's own statistics)."""
    return images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist()


class Preprocess:
    """Batch transform ``(N, C, H, W)`` -> resized, ``channels``, normalised (notebook 01).

    ``normalization`` is ``"imagenet"``, ``None`` or a ``(mean, std)`` pair (e.g. the
    target's own from :func:`channel_stats`). Its ``repr`` is stable, so it can key
    :func:`tlhelpers.features.extract_features` caches.
    """

    def __init__(
        self,
        size: int | None = None,
        channels: int | None = None,
        normalization: str | tuple | None = "imagenet",
    ):
        self.size = size
        self.channels = channels
        if isinstance(normalization, tuple):
            mean, std = normalization
            normalization = (
                tuple(round(float(m), 6) for m in mean),
                tuple(round(float(s), 6) for s in std),
            )
        self.normalization = normalization

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return prepare_images(images, self.size, self.channels, self.normalization)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, channels={self.channels}, "
            f"normalization={self.normalization!r})"
        )


class ImageNetInput(Preprocess):
    """What ImageNet backbones expect: resize to ``size``, grey -> RGB, ImageNet mean/std."""

    def __init__(self, size: int = 64, normalization: str | tuple | None = "imagenet"):
        super().__init__(size, 3, normalization)


# ---------------------------------------------------------------- target statistics

#: Input normalisations compared in notebook 01.
NORMALIZATIONS = ("imagenet", "target", "none")


def target_normalization(images: torch.Tensor, channels: int = 3) -> tuple[list, list]:
    """The target's own per-channel ``(mean, std)``, repeated for ``channels`` if grey."""
    mean, std = channel_stats(images)
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    return mean, std


def normalization_for(name: str, images: torch.Tensor, channels: int = 3):
    """``"imagenet"`` -> ``"imagenet"``, ``"target"`` -> own stats, ``"none"`` -> ``None``."""
    check_choice("name", name, NORMALIZATIONS, what="normalization")
    if name == "target":
        return target_normalization(images, channels)
    return None if name == "none" else "imagenet"


# ---------------------------------------------------------------- augmentation

#: Augmentations of :func:`augment` (notebook 01).
AUGMENTATIONS = ("flip", "crop", "rotate", "jitter", "all")


def augment(images: torch.Tensor, kind: str = "all", seed: int = 0) -> torch.Tensor:
    """Randomly augmented copies of a batch ``(N, C, H, W)`` in [0, 1] (one draw per image).

    ``kind``: ``"flip"`` (horizontal), ``"crop"`` (random resized crop, 70-100% area),
    ``"rotate"`` (+-15 degrees), ``"jitter"`` (brightness/contrast +-30%) or ``"all"``.
    torchvision draws from torch's global generator, so the draw runs inside
    :func:`tlhelpers.runtime.seeded`: the caller's random stream is left as it was.
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
    with seeded(seed):
        out = torch.stack([t(img) for img in images])
    return out.clamp(0, 1)
