"""Private helpers shared by the loss modules: reductions and shape checks."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor

from tlhelpers.validation import check_choice

#: Reductions understood by most losses of the catalogue (same meaning as in ``torch.nn``).
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")

#: Method names the kit no longer accepts -> the name that replaced them (named in the error).
#: ``"none"`` is the one name of "no added term", in fine-tuning and in domain adaptation.
RENAMED_METHODS: dict[str, str] = {"finetune": "none", "source_only": "none"}


def reduce(values: Tensor, reduction: str, valid: Sequence[str] = REDUCTIONS) -> Tensor:
    """Apply ``reduction`` ("mean", "sum" or "none") to a tensor of per-element losses."""
    check_choice("reduction", reduction, valid)
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def check_tensor(name: str, x: object) -> Tensor:
    """Raise ``ValueError`` unless ``x`` is a ``torch.Tensor``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}.")
    return x


def check_2d(name: str, x: object, *, min_rows: int = 1) -> Tensor:
    """Raise ``ValueError`` unless ``x`` is a floating (N, D) tensor with ``N >= min_rows``."""
    x = check_tensor(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}.")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} sample(s), got shape {tuple(x.shape)}.")
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}.")
    return x


def check_finite(name: str, x: Tensor) -> Tensor:
    """Raise ``ValueError`` naming ``name`` when the tensor ``x`` holds NaN or inf values."""
    if x.is_floating_point() or x.is_complex():
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            n_bad = int((~finite).sum())
            raise ValueError(
                f"{name} contains NaN or inf values ({n_bad} of {x.numel()}, shape "
                f"{tuple(x.shape)}); pass check_finite=False to skip this check."
            )
    return x


def check_same_dtype(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless two floating tensors share their dtype (no silent cast)."""
    if a.dtype != b.dtype:
        raise ValueError(
            f"{name_a} and {name_b} must have the same dtype, got {a.dtype} and {b.dtype}; "
            f"convert one, e.g. {name_b}.to({name_a}.dtype)."
        )


def check_same_dim(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless two (N, D) tensors share their feature dimension D."""
    if a.shape[1] != b.shape[1]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same feature dimension, got shapes "
            f"{tuple(a.shape)} and {tuple(b.shape)}."
        )
    check_same_dtype(name_a, a, name_b, b)


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Raise ``ValueError`` unless two tensors have exactly the same shape."""
    if a.shape != b.shape:
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}."
        )
    check_same_dtype(name_a, a, name_b, b)


def check_labels(name: str, labels: object, n: int, num_classes: int | None = None) -> Tensor:
    """Raise ``ValueError`` unless ``labels`` is an integer (N,) tensor with values in range."""
    labels = check_tensor(name, labels)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n},), got shape {tuple(labels.shape)}.")
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
        raise ValueError(f"{name} must be an integer tensor, got dtype {labels.dtype}.")
    if num_classes is not None and labels.numel() > 0:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} must lie in [0, {num_classes - 1}] (num_classes={num_classes}), "
                f"got values in [{lo}, {hi}]."
            )
    return labels


def hookless_copy(module: torch.nn.Module) -> torch.nn.Module:
    """Deep copy of ``module`` without the hooks registered on the original.

    ``deepcopy`` would otherwise duplicate hooks that other terms registered on the
    original (e.g. a student's feature-map hooks), and the copy would then write into
    their stores.
    """
    clone = copy.deepcopy(module)
    for m in clone.modules():
        for attr in (
            "_forward_hooks",
            "_forward_pre_hooks",
            "_backward_hooks",
            "_backward_pre_hooks",
            "_forward_hooks_with_kwargs",
            "_forward_hooks_always_called",
            "_forward_pre_hooks_with_kwargs",
        ):
            hooks = getattr(m, attr, None)
            if hooks is not None:
                hooks.clear()
    return clone


def frozen_copy(module: torch.nn.Module) -> torch.nn.Module:
    """Hook-free deep copy of ``module`` with ``requires_grad=False``, in eval mode."""
    clone = hookless_copy(module)
    clone.requires_grad_(False)
    clone.eval()
    return clone
