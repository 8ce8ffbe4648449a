"""Small argument checks shared by the whole package (scikit-learn style errors).

Every public function validates its inputs with these so that bad input gives
one consistent, immediate ``ValueError`` that names the argument and the valid
values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np
import torch

__all__ = [
    "check_choice",
    "check_int",
    "check_positive",
    "to_numpy",
]

_T = TypeVar("_T")


def check_choice(
    name: str,
    value: Any,
    valid: Iterable[Any],
    *,
    what: str | None = None,
    renamed: dict[Any, Any] | None = None,
) -> Any:
    """Return ``value`` if it is one of ``valid``, else raise a ``ValueError`` listing them.

    ``name`` is the argument's name; ``what`` the kind of thing when the name does not say
    it (``load_dataset(name=...)``: "Unknown dataset name='x'"). ``renamed`` maps a value
    the kit no longer accepts to the one that replaced it: the error then names the new
    value (old names are refused, never silently accepted).

    >>> check_choice("split", "train", ["train", "test"])
    'train'
    """
    valid = list(valid)
    if value not in valid:
        shown = ", ".join(repr(v) for v in valid)
        label = f"{what} {name}={value!r}" if what else f"{name} {value!r}"
        if renamed is not None and _hashable(value) and value in renamed:
            raise ValueError(
                f"Unknown {label}: it is now called {renamed[value]!r}. Valid values: {shown}."
            )
        raise ValueError(f"Unknown {label}. Valid values: {shown}.")
    return value


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def check_positive(name: str, value: _T, *, strict: bool = True) -> _T:
    """Raise ``ValueError`` unless ``value`` is a finite number ``> 0`` (``>= 0`` when
    ``strict=False``).

    Infinity is refused too: no argument of the kit has a meaning at ``inf`` (``lr=inf``
    or ``temperature=inf`` would only give NaN later, far from the cause).
    """
    if not isinstance(value, (int, float, np.integer)) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}.")
    bound = "> 0" if strict else ">= 0"
    if not math.isfinite(value) or (strict and not value > 0) or (not strict and not value >= 0):
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return value


def check_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Raise ``ValueError`` unless ``value`` is an int (not bool) and ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}.")
    return int(value)


def to_numpy(name: str, x: Any, *, ndim: int | None = None, finite: bool = True) -> np.ndarray:
    """Convert a tensor / array-like to a float64 or int numpy array and validate it.

    Raises ``ValueError`` naming ``name`` and the shape when ``ndim`` does not match
    or when the array holds NaN/inf (``finite=True``).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}.")
    if finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values (shape {arr.shape}).")
    return arr
