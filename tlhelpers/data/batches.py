"""The kit's in-memory dataset and the one way to walk data in batches.

Every dataset is a :class:`TensorImageDataset`: all images in one float tensor
``(N, C, H, W)`` in ``[0, 1]``, so that batching, few-shot subsets and feature caching are
vectorised. :func:`iterate_batches` is the kit's one way to walk :data:`Data` (a dataset or
an ``(inputs, targets)`` pair) in batches; :func:`check_data` refuses bad data by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence, Sized
from typing import cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from ..validation import check_int

__all__ = [
    "as_tensors",
    "Data",
    "TensorImageDataset",
    "check_data",
    "data_length",
    "iterate_batches",
]

#: What the kit's batched helpers accept: a dataset of ``(x, y)`` or an ``(inputs, targets)`` pair.
Data = Dataset | tuple[torch.Tensor, torch.Tensor]


class TensorImageDataset(Dataset):
    """Images ``(N, C, H, W)`` float in [0, 1] with integer ``targets`` and ``classes`` names.

    ``transform`` (optional) is applied to a single image in ``__getitem__``;
    vectorised code reads ``images`` and ``targets`` directly.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
        if len(images) != len(targets):
            raise ValueError(
                f"images and targets differ in length: {len(images)} vs {len(targets)}."
            )
        targets = torch.as_tensor(targets)
        if targets.is_floating_point() and bool((targets != targets.round()).any()):
            raise ValueError("targets must hold integer class labels, got non-integer floats.")
        self.images = images.float()
        self.targets = targets.long()
        self.classes = list(classes)
        if len(self.targets):
            # a label without a class name would be dropped silently by few_shot and counts
            lo, hi = int(self.targets.min()), int(self.targets.max())
            if lo < 0 or hi >= len(self.classes):
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"targets hold label {bad} but there are {len(self.classes)} class names "
                    f"{self.classes[:5]}; labels must lie in 0..{len(self.classes) - 1}."
                )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[i])

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> TensorImageDataset:
        """A new dataset with the selected items (copies the index, shares nothing mutable)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return TensorImageDataset(self.images[idx], self.targets[idx], self.classes, self.transform)

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.targets, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return (
            f"TensorImageDataset(n={len(self)}, image_shape={shape}, classes={len(self.classes)})"
        )


# ---------------------------------------------------------------- batching


def as_tensors(data: Data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(inputs, targets)`` tensors when the data already live in memory, else None."""
    if isinstance(data, tuple) and len(data) == 2:
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    images, targets = getattr(data, "images", None), getattr(data, "targets", None)
    if (
        isinstance(images, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and getattr(data, "transform", None) is None
    ):
        return images, targets
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    return None


def data_length(data: Data) -> int:
    """Number of examples in ``data`` (a dataset or an ``(inputs, targets)`` pair)."""
    if isinstance(data, tuple):
        return len(data[1])
    if not isinstance(data, Sized):
        raise TypeError(
            "data must have a length (a map-style Dataset or an (inputs, targets) pair), "
            f"got {type(data).__name__}."
        )
    return len(data)


def check_data(name: str, data: Data, *, check_finite: bool = True) -> int:
    """Validate training/evaluation data; return its number of examples.

    Refuses, naming ``name``: empty data, inputs and targets of different lengths (a
    pair of 8 images and 7 labels would silently lose an image), NaN/inf inputs when
    ``check_finite`` (in-memory data are checked at once, naming the first bad item; other
    datasets batch by batch in :func:`tlhelpers.training.fit`), negative integer labels
    and labels beyond the dataset's ``classes``.
    """
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(
                f"{name} must be a Dataset or an (inputs, targets) pair, got a tuple of "
                f"{len(data)}."
            )
        n_x, n_y = len(data[0]), len(data[1])
        if n_x != n_y:
            raise ValueError(f"{name} has {n_x} inputs but {n_y} targets; they must match.")
    n = data_length(data)
    if n == 0:
        raise ValueError(f"{name} is empty (0 items); nothing to train or evaluate on.")
    tensors = as_tensors(data)
    if tensors is None:
        return n
    x, y = tensors
    if len(x) != len(y):
        raise ValueError(f"{name} has {len(x)} inputs but {len(y)} targets.")
    if check_finite and x.is_floating_point():
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} has NaN or inf inputs in {int(bad.sum())} item(s), first at item "
                f"{first}; fix the data or pass check_finite=False to skip this check."
            )
    if not y.is_floating_point() and y.numel() and y.dtype != torch.bool:
        lo, hi = int(y.min()), int(y.max())
        classes = getattr(data, "classes", None)
        if lo < 0:
            raise ValueError(f"{name} has label {lo}; labels must be >= 0.")
        if classes is not None and hi >= len(classes):
            raise ValueError(
                f"{name} has label {hi} but only {len(classes)} class names "
                f"(valid labels 0..{len(classes) - 1})."
            )
    return n


def iterate_batches(
    data: Data,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches; in-memory data are sliced directly (no per-item overhead).

    ``shuffle`` draws the order from ``generator`` (torch's global one if ``None``).
    """
    check_int("batch_size", batch_size, minimum=1)
    tensors = as_tensors(data)
    if tensors is None:
        dataset = cast(Dataset, data)  # a pair (not a Dataset) has tensors above
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
        yield from loader
        return
    x, y = tensors
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]
