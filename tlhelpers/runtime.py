"""Seeds and devices: the one place that decides what ``seed`` and ``device`` mean.

- :func:`seed_everything` is the only function in the kit that changes global random
  state, and that is its whole job (called at the top of a notebook).
- :func:`seeded` is what every other ``seed`` argument uses: the global torch generator is
  forked, seeded and restored on exit, so a helper never reseeds the caller's stream.
- :func:`resolve_device` gives ``device`` one meaning everywhere: ``None`` = the model's
  current device, ``"auto"`` = :func:`get_device`, anything else = ``torch.device(device)``.
- Threads: importing this module applies the kit's thread policy
  (:func:`configure_threads`, ``TLHELPERS_THREADS``; see :mod:`tlhelpers.threads`),
  before any heavy call; ``fit`` and ``predict`` re-decide ``"adaptive"`` from the load.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .threads import configure_threads, fixed_threads, hold_threads, thread_report
from .validation import check_choice, check_int

__all__ = [
    "DEVICES", "configure_threads", "fixed_threads", "get_device", "hold_threads", "resolve_device",
    "seed_everything", "seeded", "thread_report",
]  # fmt: skip

# The one place the thread policy is applied: before the first heavy call of any notebook
# (every training, feature or data helper imports this module).
configure_threads()

#: Device names :func:`get_device` accepts.
DEVICES = ("auto", "cpu", "cuda", "mps")


def seed_everything(seed: int, *, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch; return a ``torch.Generator`` seeded the same.

    With ``deterministic=True`` torch is asked for deterministic kernels where it
    has them (``warn_only`` so that a kernel without one does not crash a lesson).
    The same seed gives the same numbers on the same machine and software.
    """
    check_int("seed", seed, minimum=0)
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


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global generator seeded by ``seed``, then restore it.

    The draws inside equal those after ``torch.manual_seed(seed)``; after the block the
    caller's random stream continues as if nothing had been drawn (``torch.random.fork_rng``
    over the CPU generator and, when CUDA is available, every CUDA generator: dropout on a
    GPU draws from those, and ``torch.manual_seed`` reseeds them too).
    """
    check_int("seed", seed, minimum=0)
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())


def get_device(device: str = "auto") -> torch.device:
    """The device named by ``device``: ``"auto"`` = cuda > mps > cpu, else ``"cpu"``, ``"cuda"``
    or ``"mps"``.

    Raises ``ValueError`` for an unknown name (``None`` included: in the kit ``device=None``
    means "where the model is", see :func:`resolve_device`) and ``RuntimeError`` if the
    requested accelerator is not available.
    """
    check_choice("device", device, DEVICES)
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            "device='cuda' requested but no CUDA GPU is visible; use 'auto' or 'cpu'."
        )
    if device == "mps" and not _mps_available():
        raise RuntimeError("device='mps' requested but MPS is not available; use 'auto' or 'cpu'.")
    return torch.device(device)


def resolve_device(
    device: str | torch.device | None, model: nn.Module | None = None
) -> torch.device:
    """The device a helper runs on: the one meaning of every ``device`` argument in the kit.

    ``None``: where ``model``'s parameters (else buffers) are, CPU if it has none (or no
    model). ``"auto"``: :func:`get_device` (cuda > mps > cpu). Otherwise
    ``torch.device(device)``; a malformed name raises ``ValueError`` listing the usual ones,
    and ``"cuda"``/``"mps"`` without that accelerator raise :func:`get_device`'s
    ``RuntimeError`` before any work.
    """
    if device is None:
        if model is not None:
            for t in (*model.parameters(), *model.buffers()):
                return t.device
        return torch.device("cpu")
    if device == "auto":
        return get_device("auto")
    if isinstance(device, torch.device):
        dev = device
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            shown = ", ".join(repr(d) for d in DEVICES)
            raise ValueError(
                f"Unknown device {device!r}. Valid values: {shown} (or 'cuda:N')."
            ) from None
    if dev.type in ("cuda", "mps"):
        get_device(dev.type)  # an accelerator that is not there: get_device's clear message
    return dev
