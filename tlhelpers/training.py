"""The training loop: ``fit`` with per-term loss history, ``evaluate`` and ``predict`` (notebook 00).

The course looks at transfer learning through the loss, so ``fit`` logs every
named term of the objective separately (task loss, L2-SP, distillation, ...),
epoch by epoch, in a :class:`History`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .utils import get_device
from .validation import check_int, check_positive

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], "torch.Tensor | Mapping[str, torch.Tensor]"]
Data = Dataset | tuple[torch.Tensor, torch.Tensor]


class History:
    """Per-epoch records of a training run: ``history["train/task"]`` -> list of floats.

    Keys are ``"train/<term>"`` for every loss term the objective returned
    (``"train/total"`` always) and ``"val/loss"``, ``"val/accuracy"`` when
    validation data were given; ``"time"`` is the cumulative wall time in seconds.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, float]] = []

    def append(self, record: dict[str, float]) -> None:
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list[float]:
        if not self.records or key not in self.keys():
            raise KeyError(f"No {key!r} in history. Available: {', '.join(self.keys())}.")
        return [r.get(key, float("nan")) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def last(self, key: str) -> float:
        return self[key][-1]

    def terms(self) -> list[str]:
        """Names of the training loss terms (without the ``train/`` prefix)."""
        return [k.split("/", 1)[1] for k in self.keys() if k.startswith("train/")]

    def to_dict(self) -> dict[str, list[float]]:
        return {k: self[k] for k in self.keys()}

    def plot(self, keys: list[str] | None = None, ax=None):
        """Plot the loss terms (see :func:`tlhelpers.plots.plot_history`)."""
        from .plots import plot_history

        return plot_history(self, keys=keys, ax=ax)

    def __repr__(self) -> str:
        return f"History(epochs={len(self)}, keys={self.keys()})"


def _as_tensors(data: Data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(inputs, targets)`` tensors when the data already live in memory, else None."""
    if isinstance(data, tuple) and len(data) == 2:
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    images = getattr(data, "images", None)
    if isinstance(images, torch.Tensor) and getattr(data, "transform", None) is None:
        return images, data.targets
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    return None


def iterate_batches(
    data: Data,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches; in-memory data are sliced directly (no per-item overhead)."""
    tensors = _as_tensors(data)
    if tensors is None:
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, generator=generator)
        yield from loader
        return
    x, y = tensors
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


def _default_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _terms(out: torch.Tensor | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return {"total": out}
    if "total" not in out:
        raise ValueError(f"An objective returning a mapping needs a 'total' key, got {list(out)}.")
    return dict(out)


def fit(
    model: nn.Module,
    train_data: Data,
    *,
    epochs: int = 10,
    lr: float = 1e-3,
    optimizer: torch.optim.Optimizer | None = None,
    objective: Objective | None = None,
    batch_size: int = 64,
    val_data: Data | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    seed: int | None = None,
    progress: bool = True,
    train_mode: Callable[[nn.Module], Any] | None = None,
) -> History:
    """Train ``model`` and return a :class:`History` of every loss term per epoch.

    ``objective(model, x, y)`` returns a scalar loss or a mapping of named terms
    with a ``"total"`` key (e.g. a ``tlhelpers.losses.TransferObjective``); the
    default is cross-entropy on ``model(x)``. ``optimizer`` defaults to Adam over
    the trainable parameters with learning rate ``lr``. ``batch_transform`` is
    applied to each input batch (e.g. :class:`tlhelpers.data.ImageNetInput`).
    ``train_mode(model)`` is called after ``model.train()`` each epoch, e.g.
    :func:`tlhelpers.models.set_batchnorm_eval` to keep frozen BN statistics fixed.
    Batches are reshuffled every epoch (seeded by ``seed``), except when one batch holds
    the whole training set. A ``tqdm`` bar shows the epochs and the current loss terms.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    dev = torch.device(device) if device is not None else get_device()
    model.to(dev)
    objective = objective or _default_objective
    if isinstance(objective, nn.Module):
        objective.to(dev)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("The model has no trainable parameters (all frozen?).")
        optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    tensors = _as_tensors(train_data)
    n_train = len(tensors[1]) if tensors is not None else None
    history = History()
    start = time.perf_counter()
    from tqdm.auto import tqdm

    bar = tqdm(range(epochs), desc="fit", disable=not progress, leave=False)
    for _epoch in bar:
        model.train()
        if train_mode is not None:
            train_mode(model)
        sums: dict[str, float] = defaultdict(float)
        count = 0
        # One batch holding everything is not shuffled: the order would change only float
        # rounding, and a plain full-batch loop then gives bit-identical weights (notebook 03a).
        shuffle = n_train is None or batch_size < n_train
        for x, y in iterate_batches(train_data, batch_size, shuffle=shuffle, generator=generator):
            x, y = x.to(dev), y.to(dev)
            if batch_transform is not None:
                x = batch_transform(x)
            terms = _terms(objective(model, x, y))
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            for k, v in terms.items():
                sums[k] += float(v.detach()) * len(y)
            count += len(y)
        record = {f"train/{k}": v / count for k, v in sums.items()}
        if val_data is not None:
            ev = evaluate(model, val_data, batch_transform=batch_transform, device=dev)
            record.update({f"val/{k}": v for k, v in ev.items()})
        record["time"] = time.perf_counter() - start
        history.append(record)
        bar.set_postfix({k.split("/")[-1]: f"{v:.3g}" for k, v in record.items() if k != "time"})
    return history


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for a block, then restore *every* submodule's own mode.

    ``model.train(was_training)`` would not do: it flips all submodules, undoing e.g.
    BatchNorm layers deliberately kept in eval mode inside a training model.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


@torch.no_grad()
def predict(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(outputs, targets)`` of ``model`` in eval mode over ``data`` (on the CPU)."""
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    outs, ys = [], []
    with eval_mode(model):
        for x, y in iterate_batches(data, batch_size):
            x = x.to(dev)
            if batch_transform is not None:
                x = batch_transform(x)
            outs.append(model(x).cpu())
            ys.append(torch.as_tensor(y))
    return torch.cat(outs), torch.cat(ys)


def evaluate(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Cross-entropy ``loss`` and ``accuracy`` of a classifier on ``data``."""
    logits, y = predict(model, data, batch_size=batch_size, batch_transform=batch_transform,
                        device=device)
    return {
        "loss": float(F.cross_entropy(logits, y)),
        "accuracy": float((logits.argmax(1) == y).float().mean()),
    }


def train_linear_head(
    features: torch.Tensor,
    targets: torch.Tensor,
    num_classes: int,
    *,
    epochs: int = 100,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> nn.Linear:
    """Fit ``nn.Linear`` on cached features with full-batch Adam (fast; notebook 04).

    For a scikit-learn probe with cross-validated regularisation see
    :func:`tlhelpers.features.linear_probe`.
    """
    torch.manual_seed(seed)
    head = nn.Linear(features.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(features), targets).backward()
        opt.step()
    return head


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
