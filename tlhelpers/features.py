"""Frozen features: what a frozen source model computes on target data (notebooks 00-04).

Feature extraction is the expensive part of a linear probe; training a head on
cached features costs milliseconds. Every function here runs the model through
:func:`tlhelpers.training.predict`, the kit's one batched inference loop.

- :func:`extract_features` (notebooks 00-01): the body's features, with an on-disk cache.
- :func:`timed_features` (notebook 01): the same plus the seconds it took.
- :func:`source_outputs` (notebook 02): features *and* the source head's probabilities,
  what :mod:`tlhelpers.transferability` scores need.
- :func:`cache_activations` (notebook 04): activations at a frozen boundary, computed once.
- :func:`linear_probe`, :func:`probe_over_seeds` (notebooks 00-02): logistic-regression
  probes on frozen features.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .data import Data, few_shot_indices
from .models import split_model
from .paths import cache_dir
from .training import predict


def _fingerprint(model: nn.Module, data: Data, transform) -> str:
    h = hashlib.sha256()
    for t in model.state_dict().values():
        if t.numel():
            h.update(t.detach().cpu().float().flatten()[:64].numpy().tobytes())
            h.update(str(tuple(t.shape)).encode())
    images = getattr(data, "images", None)
    if isinstance(images, torch.Tensor):
        h.update(str(tuple(images.shape)).encode())
        h.update(images.flatten()[:: max(1, images.numel() // 4096)].numpy().tobytes())
        h.update(data.targets.numpy().tobytes())
    else:
        h.update(str(len(data)).encode())
    h.update(repr(transform).encode())
    return h.hexdigest()[:16]


def extract_features(
    model: nn.Module,
    data: Data,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cache: bool | str = False,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, D)`` of the frozen body of ``model`` and the targets ``(N,)``, on the CPU.

    ``model`` is split with :func:`tlhelpers.models.split_model` (head dropped)
    and run through :func:`tlhelpers.training.predict` (eval mode; ``device=None`` = where
    the model is). ``cache=True`` stores the result on disk under a key made from the
    weights, the data and the transform (a string picks the key prefix), so a second
    call is a file read.
    """
    try:
        body = split_model(model).body
    except TypeError:  # already a feature extractor (e.g. nn.Sequential)
        body = model
    path = None
    if cache:
        prefix = cache if isinstance(cache, str) else "features"
        key = _fingerprint(body, data, batch_transform)
        path = cache_dir("features") / f"{prefix}-{key}.pt"
        if path.is_file():
            saved = torch.load(path, weights_only=True)
            return saved["features"], saved["targets"]
    out = predict(
        nn.Sequential(body, nn.Flatten()),
        data,
        batch_transform=batch_transform,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    if path is not None:
        tmp = path.with_suffix(".tmp")
        torch.save({"features": out[0], "targets": out[1]}, tmp)
        tmp.replace(path)
    return out


def timed_features(
    model: nn.Module, data: Data, **kwargs
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`extract_features` (same keyword arguments) plus its wall time in seconds (notebook 01)."""
    start = time.perf_counter()
    feats, y = extract_features(model, data, **kwargs)
    return feats, y, time.perf_counter() - start


class _FeaturesAndProbs(nn.Module):
    """``x -> (body(x).flatten(1), softmax(head(.)))``: both from one forward pass."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x).flatten(1)
        return f, torch.softmax(self.head(f), dim=1)


def source_outputs(
    model: nn.Module,
    data: Data,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Frozen source model on target data: ``{"features", "source_probs", "targets"}`` (notebook 02).

    One forward pass per batch in eval mode: ``features = body(x)`` (N, D) and
    ``source_probs = softmax(head(features))`` (N, Z), the source head's distribution
    over its own Z source classes (1000 for ImageNet, 5 for the kit's Fashion-MNIST-A
    CNN). Everything is returned on the CPU.
    """
    split = split_model(model)
    (feats, probs), targets = predict(
        _FeaturesAndProbs(split.body, split.head),
        data,
        batch_transform=batch_transform,
        batch_size=batch_size,
        device=device,
    )
    return {"features": feats, "source_probs": probs.double(), "targets": targets}


def cache_activations(
    lower: nn.Module,
    data: Data,
    *,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower(x), y)`` for all of ``data`` on the CPU, ``lower`` in eval mode (notebook 04).

    Top-k fine-tuning (:func:`tlhelpers.models.split_at_block`) runs the frozen ``lower``
    blocks once here instead of at every training step.
    """
    return predict(lower, data, batch_size=batch_size, device=device)


def linear_probe(
    train_features: torch.Tensor | np.ndarray,
    train_targets: torch.Tensor | np.ndarray,
    test_features: torch.Tensor | np.ndarray,
    test_targets: torch.Tensor | np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
    standardize: bool = False,
) -> float:
    """Test accuracy of a logistic-regression probe on frozen features (notebooks 00-02).

    Uses scikit-learn's ``LogisticRegression`` (L2, lbfgs): a well-tested solver
    that converges reliably on tiny few-shot sets, where a hand-written SGD loop
    needs tuning. ``standardize`` is off by default: with 2 labels per class the
    training statistics are too noisy (measured on LFW faces, 2 per class: 0.97
    raw vs 0.80 standardised).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def _np(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    steps = [StandardScaler()] if standardize else []
    clf = make_pipeline(*steps, LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(_np(train_features), _np(train_targets))
    return float(clf.score(_np(test_features), _np(test_targets)))


def probe_over_seeds(
    train_features: torch.Tensor,
    train_targets: torch.Tensor,
    test_features: torch.Tensor,
    test_targets: torch.Tensor,
    per_class: int,
    seeds: Sequence[int],
    **probe_kwargs,
) -> list[float]:
    """Linear-probe test accuracy for each seed's few-shot draw of the training features (notebook 01).

    Rows are picked with :func:`tlhelpers.data.few_shot_indices`; the features are computed
    once, so each seed costs one probe fit.
    """
    accs = []
    for s in seeds:
        idx = few_shot_indices(train_targets, per_class, s)
        accs.append(
            linear_probe(
                train_features[idx], train_targets[idx], test_features, test_targets, **probe_kwargs
            )
        )
    return accs
