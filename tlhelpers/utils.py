"""Seeding, determinism and device choice (notebook 00, "environment check")."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; return a ``torch.Generator`` seeded the same.

    With ``deterministic=True`` torch is asked for deterministic kernels where it
    has them (``warn_only`` so that a kernel without one does not crash a lesson).
    The same seed gives the same numbers on the same machine and software.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def get_device(prefer: str | None = None) -> torch.device:
    """Pick a device: ``prefer`` if given (``"cpu"``, ``"cuda"``, ``"mps"``), else cuda > mps > cpu.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` if the requested
    accelerator is not available.
    """
    valid = ("auto", "cpu", "cuda", "mps")
    if prefer is None or prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if prefer not in valid:
        raise ValueError(f"Unknown device {prefer!r}. Valid values: {', '.join(valid)}.")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' requested but no CUDA GPU is visible; use 'auto' or 'cpu'.")
    if prefer == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise RuntimeError("device='mps' requested but MPS is not available; use 'auto' or 'cpu'.")
    return torch.device(prefer)
