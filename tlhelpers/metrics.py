"""Accuracy and the mean over seeds with a confidence interval (every notebook)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def accuracy(outputs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray) -> float:
    """Fraction correct; ``outputs`` are logits ``(N, K)`` or predicted labels ``(N,)``."""
    out = torch.as_tensor(outputs)
    y = torch.as_tensor(targets)
    pred = out.argmax(1) if out.ndim == 2 else out
    if pred.shape != y.shape:
        raise ValueError(f"outputs {tuple(out.shape)} and targets {tuple(y.shape)} do not match.")
    return float((pred == y).float().mean())


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval over seeds.

    With one value the half-width is 0 (nothing to estimate a spread from).
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value.")
    if v.size == 1:
        return float(v[0]), 0.0
    sem = v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(sem * stats.t.ppf((1 + confidence) / 2, v.size - 1))


def summarize(results: dict[str, Sequence[float]], confidence: float = 0.95) -> dict[str, dict]:
    """``{name: {"mean", "ci", "min", "max", "n"}}`` for a dict of per-seed values."""
    out = {}
    for name, vals in results.items():
        m, h = mean_ci(vals, confidence)
        out[name] = {"mean": m, "ci": h, "min": float(np.min(vals)), "max": float(np.max(vals)),
                     "n": len(vals)}
    return out
