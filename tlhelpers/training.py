"""Running models on data: ``fit``, step-based ``fine_tune``, ``predict``, ``evaluate``, AdaBN.

The course looks at transfer learning through the loss, so ``fit`` logs every
named term of the objective separately (task loss, L2-SP, distillation, ...),
epoch by epoch, in a :class:`History`.

- :func:`fit` (notebook 00): epochs of minibatch training with any objective.
- :func:`fine_tune` (notebooks 03-04): ``steps`` Adam steps through :func:`fit`, BatchNorm
  kept in eval mode, the distance from the source weights logged (:class:`TrackDistance`).
- :func:`fine_tuned_accuracy` (notebook 02): the fixed fine-tuning protocol that ranks
  candidate source models.
- :func:`predict` is the one batched inference loop of the kit; :func:`evaluate`,
  :mod:`tlhelpers.features` and :mod:`tlhelpers.analysis` go through it.
- :func:`adabn` (notebook 01): re-estimate BatchNorm statistics on target data.
- :func:`train_linear_head` (notebook 04): a linear head on cached features.
- :func:`adapt` (notebook 09): unsupervised domain adaptation (source CE + an alignment term).
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import threads
from .data import Data, check_data, data_length, iterate_batches
from .losses import TransferObjective
from .models import (
    eval_mode,
    param_groups,
    replace_head,
    set_batchnorm_eval,
    weight_distance,
)
from .runtime import resolve_device, seeded
from .validation import check_int, check_positive

__all__ = [
    "adabn",
    "adapt",
    "evaluate",
    "fine_tune",
    "fine_tuned_accuracy",
    "fit",
    "fit_temperature",
    "History",
    "Objective",
    "predict",
    "TrackDistance",
    "train_linear_head",
]

Objective = Callable[
    [nn.Module, torch.Tensor, torch.Tensor], "torch.Tensor | Mapping[str, torch.Tensor]"
]


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


def _default_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    logits = model(x)
    if logits.ndim == 2 and y.numel() and not y.is_floating_point():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= logits.shape[1]:
            bad = lo if lo < 0 else hi
            raise ValueError(
                f"label {bad} is out of range for a model with {logits.shape[1]} outputs "
                f"(valid labels 0..{logits.shape[1] - 1})."
            )
    return F.cross_entropy(logits, y)


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
    check_finite: bool = True,
    on_step: Callable[[int], Any] | None = None,
) -> History:
    """Train ``model`` and return a :class:`History` of every loss term per epoch.

    ``objective(model, x, y)`` returns a scalar loss or a mapping of named terms
    with a ``"total"`` key (e.g. a ``tlhelpers.losses.TransferObjective``); the
    default is cross-entropy on ``model(x)``. ``optimizer`` defaults to Adam over
    the trainable parameters with learning rate ``lr``. ``batch_transform`` is
    applied to each input batch (e.g. :class:`tlhelpers.data.ImageNetInput`).
    ``train_mode(model)`` is called after ``model.train()`` each epoch, e.g.
    :func:`tlhelpers.models.set_batchnorm_eval` to keep frozen BN statistics fixed.
    ``on_step(step)`` is called after every optimiser step (1-based count over the run),
    e.g. a scheduler's ``step`` or a :class:`tlhelpers.optim.GradualUnfreezing` (notebook 06).
    ``device``: see :func:`tlhelpers.runtime.resolve_device` (``None`` = where the model
    is). A ``tqdm`` bar shows the epochs and the current loss terms.

    Reliability (no silent wrong answer): the data are validated first (see
    :func:`tlhelpers.data.check_data`: not empty, as many targets as inputs, labels in
    range, finite inputs unless ``check_finite=False``); training stops with
    ``FloatingPointError`` naming the epoch and step as soon as a loss term is NaN or
    inf, *before* that step changes the weights. ``seed`` makes the run repeatable: it
    orders the minibatches with a local generator (one batch holding the whole training set
    is not shuffled) and runs the loop inside
    :func:`tlhelpers.runtime.seeded`, so dropout and random augmentation in
    ``batch_transform`` repeat too, and the caller's global RNG state is restored
    afterwards. ``seed=None`` uses (and advances) torch's global generator.
    """
    check_int("epochs", epochs, minimum=1)
    check_int("batch_size", batch_size, minimum=1)
    check_positive("lr", lr)
    if seed is not None:
        check_int("seed", seed, minimum=0)
    check_data("train_data", train_data, check_finite=check_finite)
    if val_data is not None:
        check_data("val_data", val_data, check_finite=check_finite)
    threads.adapt_threads()  # the kit's thread policy, re-decided from the load now
    dev = resolve_device(device, model)
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
    n_train = data_length(train_data)
    history = History()
    start = time.perf_counter()
    from tqdm.auto import tqdm

    step = 0
    bar = tqdm(range(epochs), desc="fit", disable=not progress, leave=False)
    # one thread count for the whole run (validation's predict calls do not re-decide it)
    with threads.fixed_threads(), seeded(seed) if seed is not None else nullcontext():
        for epoch in bar:
            model.train()
            if train_mode is not None:
                train_mode(model)
            sums: dict[str, float] = defaultdict(float)
            count = 0
            # One batch holding everything is not shuffled: the order would change only float
            # rounding, and a plain full-batch loop then gives bit-identical weights (03a).
            shuffle = batch_size < n_train
            batches = iterate_batches(train_data, batch_size, shuffle=shuffle, generator=generator)
            for batch, (x, y) in enumerate(batches, start=1):
                step += 1
                if check_finite and x.is_floating_point() and not bool(torch.isfinite(x).all()):
                    raise ValueError(
                        f"train_data has NaN or inf inputs in batch {batch} of epoch "
                        f"{epoch + 1}; fix the data or pass check_finite=False."
                    )
                x, y = x.to(dev), y.to(dev)
                if batch_transform is not None:
                    x = batch_transform(x)
                terms = _terms(objective(model, x, y))
                values = {k: float(v.detach()) for k, v in terms.items()}
                bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                if bad:  # stop before this step changes the weights
                    raise FloatingPointError(
                        f"fit: the loss became non-finite at epoch {epoch + 1}, step {step} "
                        f"(batch {batch} of the epoch): {bad}. The model keeps the weights "
                        "of the previous step. Try a lower lr, check the inputs and targets."
                    )
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                if on_step is not None:
                    on_step(step)
                for k, v in values.items():
                    sums[k] += v * len(y)
                count += len(y)
            record = {f"train/{k}": v / count for k, v in sums.items()}
            if val_data is not None:
                ev = evaluate(model, val_data, batch_transform=batch_transform, device=dev)
                record.update({f"val/{k}": v for k, v in ev.items()})
            record["time"] = time.perf_counter() - start
            history.append(record)
            postfix = {k.split("/")[-1]: f"{v:.3g}" for k, v in record.items() if k != "time"}
            bar.set_postfix(postfix)
    return history


def _forward_batches(
    model: nn.Module,
    data: Data,
    batch_size: int,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None,
    device: torch.device,
    progress: bool = False,
    desc: str = "predict",
) -> Iterator[tuple[Any, torch.Tensor]]:
    """The kit's one batched loop: ``(model(batch_transform(x)), y)`` per batch, on ``device``."""
    from tqdm.auto import tqdm

    n_batches = -(-data_length(data) // batch_size)
    batches = tqdm(
        iterate_batches(data, batch_size),
        total=n_batches,
        disable=not progress,
        desc=desc,
        leave=False,
    )
    for x, y in batches:
        x = x.to(device)
        if batch_transform is not None:
            x = batch_transform(x)
        yield model(x), y


@torch.no_grad()
def predict(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], torch.Tensor]:
    """``(outputs, targets)`` of ``model`` over ``data``, in eval mode, without gradients, on the CPU.

    The one loop every helper that runs a model over a dataset goes through (evaluation,
    frozen features, source outputs, cached activations). ``model`` is moved to
    ``device`` (see :func:`tlhelpers.runtime.resolve_device`: ``None`` = where it is) and
    run under :func:`tlhelpers.models.eval_mode`, which restores every submodule's mode.
    A model that returns a tuple of tensors gives a tuple of concatenated outputs.
    ``data`` is validated with :func:`tlhelpers.data.check_data` (not empty, finite, ...).
    """
    check_int("batch_size", batch_size, minimum=1)
    check_data("data", data)
    threads.adapt_threads()  # the kit's thread policy, re-decided from the load now
    dev = resolve_device(device, model)
    model.to(dev)
    outs: list[Any] = []
    ys: list[torch.Tensor] = []
    with eval_mode(model):
        for out, y in _forward_batches(model, data, batch_size, batch_transform, dev, progress):
            outs.append(tuple(o.cpu() for o in out) if isinstance(out, tuple) else out.cpu())
            ys.append(torch.as_tensor(y).cpu())
    if not outs:
        raise ValueError("data is empty: nothing to predict.")
    targets = torch.cat(ys)
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outs, strict=True)), targets
    return torch.cat(outs), targets


def evaluate(
    model: nn.Module,
    data: Data,
    *,
    batch_size: int = 256,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """Cross-entropy ``loss`` and ``accuracy`` of a classifier on ``data`` (via :func:`predict`)."""
    logits, y = predict(
        model, data, batch_size=batch_size, batch_transform=batch_transform, device=device
    )
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
    :func:`tlhelpers.features.linear_probe`. ``seed`` fixes the head's initialisation
    without changing the caller's global RNG state. Refuses, by name, features that are
    not 2-D or not finite, targets of another length or outside ``0..num_classes-1``.
    """
    check_int("num_classes", num_classes, minimum=1)
    check_int("epochs", epochs, minimum=1)
    check_positive("lr", lr)
    check_positive("weight_decay", weight_decay, strict=False)
    if features.ndim != 2:
        raise ValueError(f"features must be 2-D (N, D), got shape {tuple(features.shape)}.")
    if len(targets) != len(features):
        raise ValueError(
            f"features has {len(features)} rows but targets has {len(targets)} entries."
        )
    if len(features) == 0:
        raise ValueError("features is empty (0 rows).")
    if not bool(torch.isfinite(features).all()):
        raise ValueError("features contains NaN or inf values.")
    lo, hi = int(targets.min()), int(targets.max())
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"targets must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
            f"got values in [{lo}, {hi}]."
        )
    with seeded(seed):
        head = nn.Linear(features.shape[1], num_classes)
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(head(features), targets).backward()
        opt.step()
    return head


# ---------------------------------------------------------------- AdaBN (notebook 01)


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def adabn(
    model: nn.Module,
    data: Data | torch.Tensor,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> nn.Module:
    """Adaptive BatchNorm (Li, Wang, Shi, Liu & Hou, 2016): re-estimate BN statistics on target data.

    Every BatchNorm layer's running mean and variance are reset and recomputed as the
    *cumulative* average (``momentum=None``) over forward passes of ``data`` (labels
    unused) in train mode without gradients; the learned weights (including BN's
    affine ``gamma, beta``) are untouched. The model is modified in place (deep-copy
    it first to keep the original) and returned in eval mode.

    ``data``: a dataset, an ``(images, targets)`` pair or an images tensor.
    Caveat: with ``batch_size`` smaller than ``len(data)`` the running variance is the
    average of per-batch (unbiased) variances, which misses the spread between batch
    means; the running mean is exact up to a last smaller batch's weight (PyTorch weights
    every batch equally). Use one batch for exact statistics.
    """
    check_int("batch_size", batch_size, minimum=1)
    layers = _bn_layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BatchNorm layer: nothing to adapt.")
    if isinstance(data, torch.Tensor):
        data = (data, torch.zeros(len(data), dtype=torch.long))
    dev = resolve_device(device, model)
    model.to(dev)
    saved = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for _ in _forward_batches(model, data, batch_size, batch_transform, dev, desc="adabn"):
        pass
    for m, mom in zip(layers, saved, strict=True):
        m.momentum = mom
    return model.eval()


# ---------------------------------------------------------------- step-based fine-tuning (notebooks 03-04)


class TrackDistance:
    """Wrap an objective so that ``fit`` also logs :math:`\\lVert w - w^0\\rVert` (not trained on).

    The returned dict gains ``"weight_distance"`` (detached), so
    ``history["train/weight_distance"]`` shows how far the weights walk from the source.
    """

    def __init__(self, objective: Callable, reference: Mapping[str, torch.Tensor]):
        self.objective = objective
        self.reference = dict(reference)

    def __call__(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        out = self.objective(model, x, y)
        out = {"total": out} if isinstance(out, torch.Tensor) else dict(out)
        out["weight_distance"] = torch.tensor(weight_distance(model, self.reference))
        return out


def _bn_eval(model: nn.Module) -> None:
    set_batchnorm_eval(model, frozen_only=False)


def fine_tune(
    model: nn.Module,
    data: Data,
    *,
    objective: Callable | None = None,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int | None = None,
    seed: int = 0,
    bn_eval: bool = True,
    reference: Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    on_step: Callable[[int], Any] | None = None,
) -> History:
    """``steps`` optimiser steps on ``data`` (full batch unless ``batch_size``), via :func:`fit`.

    With a ``batch_size`` smaller than the data, one history record covers one pass
    (``ceil(steps * batch_size / n)`` passes). ``bn_eval`` keeps every BatchNorm layer in
    eval mode (the source statistics; a few-shot batch is a poor estimate of them), which
    also makes the DELTA distance start at exactly 0. ``reference`` (parameter name ->
    source value, :func:`tlhelpers.models.parameter_state`) adds ``train/weight_distance``
    to the history. ``optimizer`` (e.g. Adam over :func:`tlhelpers.models.param_groups`)
    replaces the default Adam at ``lr``. ``objective`` defaults to
    :class:`tlhelpers.losses.TransferObjective` (cross-entropy, logged as ``train/task``).
    ``seed`` makes the run repeatable (see :func:`fit`); ``on_step`` is :func:`fit`'s hook.
    """
    check_int("steps", steps, minimum=1)
    n = check_data("data", data)
    bs = n if batch_size is None else min(check_int("batch_size", batch_size, minimum=1), n)
    epochs = math.ceil(steps * bs / n) if bs < n else steps
    obj = objective if objective is not None else TransferObjective()
    if reference is not None:
        obj = TrackDistance(obj, reference)
    return fit(
        model,
        data,
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        objective=obj,
        batch_size=bs,
        batch_transform=batch_transform,
        seed=seed,
        device=device,
        progress=False,
        train_mode=_bn_eval if bn_eval else None,
        on_step=on_step,
    )


def fine_tuned_accuracy(
    model: nn.Module,
    train_data: Data,
    test_data: Data,
    num_classes: int,
    *,
    steps: int = 30,
    lr: float = 1e-3,
    head_lr: float | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    freeze_bn_stats: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Test accuracy after fine-tuning a *copy* of ``model`` on ``train_data`` (notebook 02).

    The protocol (the same for every candidate): the source head is replaced by a fresh
    ``nn.Linear(D, num_classes)`` (:func:`tlhelpers.models.replace_head`, initialised under
    :func:`tlhelpers.runtime.seeded`), then *all* layers are trained with Adam (``lr`` for
    the body, ``head_lr`` for the new head, default ``10 * lr``: the new head starts from
    scratch) for ``steps`` full-batch steps of :func:`fine_tune` on the few-shot
    ``train_data``. With ``freeze_bn_stats`` BatchNorm layers keep their running
    statistics (eval mode) during training: a few labelled images give poor batch
    statistics. ``model`` itself is left unchanged.
    """
    check_int("steps", steps, minimum=1)
    check_int("num_classes", num_classes, minimum=1)
    check_positive("lr", lr)
    head_lr = 10 * lr if head_lr is None else check_positive("head_lr", head_lr)
    with seeded(seed):
        net = replace_head(copy.deepcopy(model), num_classes)
    opt = torch.optim.Adam(param_groups(net, {"body": lr, "head": head_lr}, lr))
    fine_tune(
        net,
        train_data,
        steps=steps,
        lr=lr,
        optimizer=opt,
        batch_transform=batch_transform,
        seed=seed,
        bn_eval=freeze_bn_stats,
        device=device,
    )
    return evaluate(net, test_data, batch_transform=batch_transform, device=device)["accuracy"]


# ---------------------------------------------------------------- calibration (notebook 07)


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor, *, max_iter: int = 100) -> float:
    r"""Temperature scaling: the :math:`T > 0` minimising the NLL of ``softmax(logits / T)``.

    .. math:: T^* = \arg\min_{T>0} -\frac1n \sum_i \log \mathrm{softmax}(z_i / T)_{y_i}

    Guo et al., "On Calibration of Modern Neural Networks", ICML 2017: one scalar fitted on
    a held-out **validation** set (never the test set), by LBFGS on the NLL. Dividing by
    :math:`T` never changes the argmax, so accuracy is unchanged; :math:`T > 1` softens an
    overconfident model. Optimised over :math:`\log T` (keeps :math:`T` positive), in
    float64. Shape: ``logits (N, K)``, ``targets (N,)``.
    """
    from .validation import to_numpy

    z = torch.as_tensor(to_numpy("logits", logits, ndim=2), dtype=torch.float64)
    y = torch.as_tensor(to_numpy("targets", targets, ndim=1)).long()
    if y.shape[0] != z.shape[0]:
        raise ValueError(f"targets has {y.shape[0]} entries but logits has {z.shape[0]} rows.")
    check_int("max_iter", max_iter, minimum=1)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


# ---------------------------------------------------------------- domain adaptation (notebook 09)


def adapt(
    model: nn.Module,
    source: Data,
    target: torch.Tensor,
    *,
    method: str,
    strength: float = 1.0,
    steps: int = 300,
    lr: float = 3e-3,
    batch_size: int = 64,
    seed: int = 0,
    gamma: float = 10.0,
    device: str | torch.device | None = None,
) -> History:
    r"""Unsupervised domain adaptation: ``steps`` Adam steps of source CE + ``strength`` x alignment.

    Each step takes a labelled source batch ``(x, y)`` and an unlabelled batch of ``target``
    images and minimises :class:`tlhelpers.losses.DomainAdaptationObjective` (``method``:
    ``"source_only"``, ``"mmd"``, ``"coral"`` or ``"dann"`` with Ganin's schedule) with Adam
    at ``lr`` over the model's parameters and, for DANN, the domain classifier's. BatchNorm
    trains (batch statistics). The loop is :func:`fine_tune` / :func:`fit` (non-finite
    losses stop it; ``seed`` makes the run repeatable); like :func:`fine_tune` it runs whole
    passes over ``source``, so ``steps`` is rounded up to a multiple of the batches per pass
    (the DANN schedule still reaches its end at ``steps``). ``model`` must be a
    :class:`tlhelpers.models.SplitModel`; it is trained in place. Target labels are never
    used: choose ``strength`` and ``steps`` without them (notebook 09).
    Returns the :class:`History` (``train/task``, the alignment term, DANN's
    ``train/domain_accuracy`` and ``train/reversal``).
    """
    from .losses import DomainAdaptationObjective

    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Module) or not isinstance(getattr(model, "head", None), nn.Module):
        raise ValueError(
            f"model must have .body and .head (a tlhelpers.models.SplitModel), got "
            f"{type(model).__name__}."
        )
    head = model.head
    num_features = getattr(head, "in_features", None)
    objective = DomainAdaptationObjective(
        method,
        target,
        strength,
        steps=steps,
        batch_size=batch_size,
        num_features=num_features,
        seed=seed,
        gamma=gamma,
    )
    params = [p for p in model.parameters() if p.requires_grad]
    params += list(objective.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    return fine_tune(
        model,
        source,
        objective=objective,
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        bn_eval=False,
        optimizer=optimizer,
        device=device,
        on_step=objective.on_step,
    )
