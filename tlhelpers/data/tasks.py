"""Tasks made from datasets: named class subsets, few-shot draws and train/validation/test splits.

:data:`TASKS` names the source/target tasks (:func:`load_task`); :func:`few_shot` draws
exactly ``per_class`` items per class; :func:`train_val_test` is the course's protocol
(choose on validation, report the test set once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from ..validation import check_choice, check_int
from .batches import TensorImageDataset
from .datasets import load_dataset

__all__ = [
    "Split",
    "TASKS",
    "few_shot",
    "few_shot_indices",
    "load_task",
    "select_classes",
    "train_val_indices",
    "train_val_test",
]

#: Named source/target tasks: (dataset, classes kept, in this order).
TASKS: dict[str, tuple[str, tuple[int, ...]]] = {
    "fmnist_a": ("fashion_mnist", (0, 1, 2, 3, 4)),  # tops & trousers: source task A
    "fmnist_b": ("fashion_mnist", (5, 6, 7, 8, 9)),  # shoes, shirt, bag: target task B
    "fmnist_even": ("fashion_mnist", (0, 2, 4, 6, 8)),  # a random-like split (Yosinski)
    "fmnist_odd": ("fashion_mnist", (1, 3, 5, 7, 9)),
    # A random split (as Yosinski et al., 2014): every target class has a relative in the
    # source (shirt/T-shirt, sneaker/sandal and boot, dress/trouser), so transfer is strong.
    "fmnist_rand_a": ("fashion_mnist", (2, 3, 4, 6, 7)),  # pullover, dress, coat, shirt, sneaker
    "fmnist_rand_b": ("fashion_mnist", (0, 1, 5, 8, 9)),  # T-shirt, trouser, sandal, bag, boot
    # a mixed split: tops and shoes on both sides, so every target class has a source sibling
    "fmnist_mixed_a": ("fashion_mnist", (1, 2, 4, 7, 8)),  # trouser, pullover, coat, sneaker, bag
    "fmnist_mixed_b": ("fashion_mnist", (0, 3, 5, 6, 9)),  # T-shirt, dress, sandal, shirt, boot
    "digits": ("digits", tuple(range(10))),  # scikit-learn's 8x8 digits: another grey domain
}


# ---------------------------------------------------------------- tasks and subsets


def select_classes(
    dataset: TensorImageDataset, classes: Sequence[int], relabel: bool = True
) -> TensorImageDataset:
    """Keep only ``classes`` (original label ids); with ``relabel`` map them to ``0..k-1``."""
    classes = [check_int("classes", c, minimum=0) for c in classes]
    bad = [c for c in classes if c >= len(dataset.classes)]
    if bad:
        raise ValueError(f"classes {bad} out of range 0..{len(dataset.classes) - 1}.")
    keep = torch.isin(dataset.targets, torch.tensor(classes))
    images, targets = dataset.images[keep], dataset.targets[keep]
    names = [dataset.classes[c] for c in classes]
    if relabel:
        lut = torch.full((len(dataset.classes),), -1, dtype=torch.long)
        lut[torch.tensor(classes)] = torch.arange(len(classes))
        targets = lut[targets]
        return TensorImageDataset(images, targets, names, dataset.transform)
    return TensorImageDataset(images, targets, dataset.classes, dataset.transform)


def load_task(name: str, split: str = "train") -> TensorImageDataset:
    """A named source/target task (see :data:`TASKS`), labels relabelled to ``0..k-1``.

    ``"fmnist_a"`` = Fashion-MNIST classes 0-4 (source task A), ``"fmnist_b"`` =
    classes 5-9 (target task B); ``"fmnist_even"``/``"fmnist_odd"`` are a random-like split;
    ``"fmnist_rand_a"``/``"fmnist_rand_b"`` a random split with a pretrained source (notebook 03);
    ``"fmnist_mixed_a"``/``"fmnist_mixed_b"`` a mixed split, tops and shoes on both sides
    (notebook 04).
    """
    check_choice("name", name, TASKS, what="task")
    dataset, classes = TASKS[name]
    return select_classes(load_dataset(dataset, split), classes)


def _number_of_classes(t: np.ndarray, classes: Sequence[str] | None) -> int:
    """Classes to draw from; refuses labels < 0 or beyond the class names (no silent drop)."""
    if t.size and t.min() < 0:
        raise ValueError(f"targets hold label {t.min()}; labels must be >= 0.")
    n_classes = len(classes) if classes is not None else int(t.max()) + 1
    if classes is not None and t.size and t.max() >= n_classes:
        raise ValueError(
            f"targets hold label {t.max()} but there are {n_classes} class names; "
            f"labels must lie in 0..{n_classes - 1}."
        )
    return n_classes


def few_shot_indices(
    targets: torch.Tensor | np.ndarray,
    per_class: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """Sorted indices of exactly ``per_class`` items of every class ``0..K-1``.

    The draw behind :func:`few_shot`; use it directly to pick rows of cached features.
    Raises ``ValueError`` naming the class (with its name from ``classes``) when it has
    fewer than ``per_class`` items, and for empty, non-1-D or non-integer ``targets``
    (NaN, 0.5, strings; whole-valued floats are accepted as labels).
    """
    check_int("per_class", per_class, minimum=1)
    check_int("seed", seed, minimum=0)
    t = np.asarray(targets)
    if t.size == 0:
        raise ValueError(
            f"targets is empty (shape {t.shape}): few_shot_indices needs at least "
            f"per_class={per_class} labelled items of every class."
        )
    if t.ndim != 1:
        raise ValueError(f"targets must be 1-D class labels, got shape {t.shape}.")
    if t.dtype.kind not in "iu":
        whole = t.dtype.kind == "f" and bool(np.all(np.isfinite(t) & (t == np.round(t))))
        if not whole:  # NaN, 0.5 or strings would give a misleading count or numpy's error
            shown = t[~(np.isfinite(t) & (t == np.round(t)))][:3] if t.dtype.kind == "f" else t[:3]
            raise ValueError(
                f"targets must be integer class labels 0..K-1, got dtype {t.dtype} "
                f"with values such as {shown.tolist()}."
            )
        t = t.astype(np.int64)
    n_classes = _number_of_classes(t, classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(t == c)
        if len(members) < per_class:
            name = f" ({classes[c]!r})" if classes is not None else ""
            raise ValueError(
                f"per_class={per_class} but class {c}{name} has only {len(members)} items."
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def few_shot(dataset: TensorImageDataset, per_class: int, seed: int = 0) -> TensorImageDataset:
    """A stratified subset with exactly ``per_class`` items of every class.

    The same ``seed`` gives the same subset. Raises ``ValueError`` naming the
    class when it has fewer than ``per_class`` items.
    """
    return dataset.subset(few_shot_indices(dataset.targets, per_class, seed, dataset.classes))


class Split(NamedTuple):
    """Training, validation and test sets (unpack as ``train, val, test = split``)."""

    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset


def train_val_indices(
    targets: torch.Tensor | np.ndarray,
    per_class: int,
    val_per_class: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint ``(train, val)`` indices: ``per_class`` and ``val_per_class`` per class.

    Per class, one seeded permutation of its items: the first ``per_class`` train, the
    next ``val_per_class`` validate. Raises ``ValueError`` naming the class that has fewer
    than ``per_class + val_per_class`` items.
    """
    check_int("per_class", per_class, minimum=1)
    check_int("val_per_class", val_per_class, minimum=1)
    t = np.asarray(targets)
    n_classes = _number_of_classes(t, classes)
    rng = np.random.default_rng(seed)
    train, val = [], []
    need = per_class + val_per_class
    for c in range(n_classes):
        members = np.flatnonzero(t == c)
        if len(members) < need:
            name = f" ({classes[c]!r})" if classes is not None else ""
            raise ValueError(
                f"per_class + val_per_class = {need} but class {c}{name} has only "
                f"{len(members)} items."
            )
        perm = rng.permutation(members)
        train.append(perm[:per_class])
        val.append(perm[per_class:need])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def train_val_test(
    train_pool: TensorImageDataset,
    test_pool: TensorImageDataset,
    per_class: int,
    *,
    val_per_class: int,
    n_test: int | None = None,
    seed: int = 0,
    test_seed: int = 0,
) -> Split:
    """The course's protocol: choose on validation, report the test set once.

    - ``train``: ``per_class`` labelled images per class from ``train_pool`` (seeded by ``seed``);
    - ``val``: ``val_per_class`` *other* images per class from ``train_pool`` (same seed),
      used for every choice (strength, steps, learning rate);
    - ``test``: ``n_test`` images of ``test_pool`` (all when None), drawn with
      ``test_seed`` only, so every seed is evaluated on the same test images and
      per-seed results can be compared pairwise.

    A validation set larger than a few-shot training set is a teaching simplification:
    it makes choices reliable enough to study; with truly few labels one would
    cross-validate on the training images instead.
    """
    check_int("val_per_class", val_per_class, minimum=1)
    tr, va = train_val_indices(
        train_pool.targets, per_class, val_per_class, seed, train_pool.classes
    )
    if n_test is None:
        test = test_pool
    else:
        check_int("n_test", n_test, minimum=1)
        if n_test > len(test_pool):
            raise ValueError(f"n_test must be <= {len(test_pool)} (the test pool), got {n_test}.")
        g = torch.Generator().manual_seed(test_seed)
        test = test_pool.subset(torch.randperm(len(test_pool), generator=g)[:n_test])
    return Split(train_pool.subset(tr), train_pool.subset(va), test)
