"""Optimisation helpers: optimisers by name, schedules, gradual unfreezing, LR range test.

- :func:`make_optimizer`: SGD, SGD with momentum, Adam or AdamW over parameter groups with
  per-layer (discriminative) learning rates.
- :func:`schedule_factor` / :func:`make_scheduler`: linear warm-up then cosine decay
  (Loshchilov & Hutter, "SGDR", ICLR 2017; Goyal et al., 2017, for the warm-up) and the
  one-cycle policy (Smith & Topin, 2018), as multipliers of each group's own rate.
- :class:`GradualUnfreezing`: unfreeze one layer group at a time, top first (Howard &
  Ruder, "Universal Language Model Fine-tuning", ACL 2018: fastai's recipe).
- :func:`lr_find`: the learning-rate range test (Smith, "Cyclical Learning Rates for
  Training Neural Networks", WACV 2017; fastai's ``lr_find``).

The training loop (:class:`tlhelpers.training.Trainer`) calls an ``OnStep(fn)`` callback's
``fn(step)`` after every optimiser step; a scheduler's ``step`` and a
:class:`GradualUnfreezing` both fit there.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .data import Data, check_data, data_length, iterate_batches
from .models import eval_mode, named_blocks, param_groups
from .runtime import seeded
from .validation import check_choice, check_int, check_positive

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "make_optimizer",
    "build_optimizer",
    "schedule_factor",
    "make_scheduler",
    "GradualUnfreezing",
    "LRFinderResult",
    "lr_find",
]

#: Optimiser names of :func:`make_optimizer`.
OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adamw")
#: Schedule names of :func:`schedule_factor`.
SCHEDULES = ("constant", "warmup_cosine", "one_cycle")


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def make_optimizer(
    name: str,
    model: nn.Module,
    lrs: float | Mapping[str, float],
    *,
    default: float | None = None,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    include_frozen: bool = False,
) -> torch.optim.Optimizer:
    r"""The optimiser ``name`` with one parameter group per prefix of ``lrs``.

    ``lrs`` is one rate for every parameter, or module prefix -> rate (``{"body": 1e-3,
    "head": 1e-2}``: discriminative rates); the groups follow the kit's one rule,
    :func:`tlhelpers.models.param_groups` (the longest matching prefix wins; a parameter no
    prefix matches gets ``default``, and raises without it). The update of parameter
    :math:`w` with gradient :math:`g`:

    - ``"sgd"``: :math:`w \leftarrow w - \eta\,(g + \lambda w)`;
    - ``"sgd_momentum"``: :math:`v \leftarrow \mu v + g + \lambda w,\ w \leftarrow w - \eta v`
      (PyTorch's form; Polyak's heavy ball, Sutskever et al., ICML 2013), ``momentum`` = :math:`\mu`;
    - ``"adam"``: Kingma & Ba, ICLR 2015, with ``weight_decay`` added to the gradient
      (coupled L2, rescaled by Adam's per-weight step);
    - ``"adamw"``: Adam with *decoupled* decay :math:`w \leftarrow w - \eta\lambda w`
      (Loshchilov & Hutter, ICLR 2019), a pull toward zero that Adam does not rescale.

    Frozen parameters (``requires_grad=False``) are left out unless ``include_frozen``
    (for :class:`GradualUnfreezing`: a parameter without a gradient is skipped by every
    optimiser step, decay included, until it is unfrozen).
    """
    check_choice("name", name, OPTIMIZERS, what="optimizer")
    check_positive("weight_decay", weight_decay, strict=False)
    check_positive("momentum", momentum, strict=False)
    groups = param_groups(model, lrs, default, include_frozen=include_frozen)
    return build_optimizer(name, groups, weight_decay=weight_decay, momentum=momentum)


def build_optimizer(
    name: str, param_groups: list[dict], *, weight_decay: float = 0.0, momentum: float = 0.9
) -> torch.optim.Optimizer:
    """The optimiser ``name`` (see :func:`make_optimizer`) over ready parameter groups, each
    with its own ``"lr"`` (the recipes of :mod:`tlhelpers.recipes` build theirs this way)."""
    check_choice("name", name, OPTIMIZERS, what="optimizer")
    check_positive("weight_decay", weight_decay, strict=False)
    check_positive("momentum", momentum, strict=False)
    if not param_groups:
        raise ValueError("The model has no trainable parameters (all frozen?).")
    if name in ("sgd", "sgd_momentum"):
        mu = momentum if name == "sgd_momentum" else 0.0
        lr = param_groups[0]["lr"]  # every group has its own; SGD still wants a default
        return torch.optim.SGD(param_groups, lr=lr, momentum=mu, weight_decay=weight_decay)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(param_groups, weight_decay=weight_decay)


def _cos(start: float, end: float, pct: float) -> float:
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def schedule_factor(
    kind: str,
    step: int,
    total: int,
    *,
    warmup: float = 0.1,
    pct_start: float = 0.3,
    div: float = 25.0,
    final_div: float = 1e4,
) -> float:
    r"""Multiplier of the base rate at optimiser step ``step`` (0-based) of ``total``.

    - ``"constant"``: 1.
    - ``"warmup_cosine"``: with :math:`W = \max(1, \lfloor \mathrm{warmup}\cdot T\rceil)`
      warm-up steps, :math:`(s + 1)/W` for :math:`s < W`, then
      :math:`\tfrac12\,(1 + \cos(\pi\,(s - W + 1)/(T - W)))`, which reaches 0 at the last step.
    - ``"one_cycle"``: from :math:`1/\mathrm{div}` up to 1 over the first ``pct_start`` of
      the steps, then down to :math:`1/(\mathrm{div}\cdot\mathrm{final\_div})`, both halves
      cosine-shaped; the same numbers as ``torch.optim.lr_scheduler.OneCycleLR`` (two
      phases, ``anneal_strategy="cos"``). Momentum is not cycled here.
    """
    check_choice("kind", kind, SCHEDULES, what="schedule")
    total = check_int("total", total, minimum=1)
    step = check_int("step", step, minimum=0)
    if step >= total:
        raise ValueError(f"step must be < total ({total}), got {step}.")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}.")
    if kind == "constant":
        return 1.0
    if kind == "warmup_cosine":
        w = max(1, round(warmup * total)) if warmup > 0 else 0
        if step < w:
            return (step + 1) / w
        rest = total - w
        return 0.5 * (1.0 + math.cos(math.pi * (step - w + 1) / rest)) if rest else 1.0
    end_up = float(pct_start * total) - 1
    end_down = total - 1
    lo, hi = 1.0 / div, 1.0
    if step <= end_up:
        return _cos(lo, hi, step / end_up)
    return _cos(hi, lo / final_div, (step - end_up) / (end_down - end_up))


def make_scheduler(
    optimizer: torch.optim.Optimizer, kind: str, total_steps: int, *, warmup: float = 0.1
) -> torch.optim.lr_scheduler.LambdaLR | None:
    """A ``LambdaLR`` applying :func:`schedule_factor` to every group's own rate (``None`` for
    ``"constant"``). Call its ``step()`` after each optimiser step (``fit(on_step=...)``);
    discriminative rates keep their ratio.
    """
    check_choice("kind", kind, SCHEDULES, what="schedule")
    check_int("total_steps", total_steps, minimum=1)
    if kind == "constant":
        return None
    last = total_steps - 1  # LambdaLR steps once more after the last update: hold the end value
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: schedule_factor(kind, min(s, last), total_steps, warmup=warmup)
    )


class GradualUnfreezing:
    """Unfreeze layer groups one at a time, top first (Howard & Ruder, ACL 2018).

    ``groups`` are module prefixes from the output down (e.g. ``["head", "body.0.block3",
    "body.0.block2", "body.0.block1"]``). At construction every group but the first is
    frozen (``requires_grad_(False)``); called as ``unfreeze(step)`` after optimiser step
    ``step`` (1-based, :func:`tlhelpers.training.fit`'s ``on_step``), it keeps the first
    ``min(len(groups), 1 + step // every)`` groups trainable. Build the optimiser with
    ``make_optimizer(..., include_frozen=True)`` so the later groups are in it from the start.
    Parameters under no group are left as they are. Freezing stops gradients only: the
    BatchNorm layers of a frozen group still follow the model's train/eval mode (see
    ``batchnorm="eval"`` of :class:`tlhelpers.training.Trainer` and notebook 06's BatchNorm
    experiment).
    """

    def __init__(self, model: nn.Module, groups: Sequence[str], *, every: int):
        check_int("every", every, minimum=1)
        if not groups:
            raise ValueError("groups must name at least one module prefix, got [].")
        names = [n for n, _ in model.named_parameters()]
        for g in groups:
            if not any(_matches(n, g) for n in names):
                raise ValueError(
                    f"Unknown group {g!r}: no parameter under it. Valid prefixes: "
                    f"{named_blocks(model)[:16]}."
                )
        self.model, self.groups, self.every = model, list(groups), every
        self.n_unfrozen = 0
        self._set(1)

    def _set(self, k: int) -> None:
        k = min(len(self.groups), k)
        if k == self.n_unfrozen:
            return
        for i, g in enumerate(self.groups):
            for n, p in self.model.named_parameters():
                if _matches(n, g):
                    p.requires_grad_(i < k)
        self.n_unfrozen = k

    def __call__(self, step: int) -> None:
        self._set(1 + step // self.every)


@dataclass
class LRFinderResult:
    """The range test's record: ``lrs`` tried, ``losses`` (smoothed), ``raw_losses``."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    suggestion: float
    diverged: bool
    rule: str = field(default="")

    def plot(self, ax=None, label: str | None = None):
        """Smoothed loss against the rate (log x), the suggestion marked."""
        import matplotlib.pyplot as plt

        ax = ax or plt.subplots(figsize=(5, 3.5))[1]
        (line,) = ax.plot(self.lrs, self.losses, label=label)
        ax.axvline(self.suggestion, color=line.get_color(), ls=":", lw=1)
        ax.set(xscale="log", xlabel="learning rate", ylabel="smoothed loss")
        return ax


def _default_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _total(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out["total"]


def _cycle(data: Data, batch_size: int, generator: torch.Generator) -> Iterator:
    shuffle = batch_size < data_length(data)
    while True:
        yield from iterate_batches(data, batch_size, shuffle=shuffle, generator=generator)


@torch.no_grad()
def _mean_loss(model, objective, data: Data, batch_size: int, device) -> float:
    total, n = 0.0, 0
    with eval_mode(model):
        for x, y in iterate_batches(data, batch_size):
            x, y = x.to(device), y.to(device)
            total += float(_total(objective(model, x, y))) * len(y)
            n += len(y)
    return total / n


def lr_find(
    model: nn.Module,
    data: Data,
    *,
    objective: Callable | None = None,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None,
    eval_data: Data | None = None,
    start_lr: float = 1e-6,
    end_lr: float = 1.0,
    steps: int = 100,
    batch_size: int = 64,
    smooth: float = 0.9,
    diverge: float = 4.0,
    seed: int = 0,
) -> LRFinderResult:
    r"""The learning-rate range test (Smith, WACV 2017; fastai's ``lr_find``).

    One short run whose rate grows exponentially, :math:`\eta_i = \eta_0\,(\eta_1/\eta_0)^{i/(N-1)}`
    for ``steps`` = :math:`N` optimiser steps, recording the loss at every step: the
    training batch's loss before the step, or with ``eval_data`` (a validation split) the
    mean loss on it after the step (eval mode). The record is smoothed by a bias-corrected
    exponential average, :math:`a_i = \beta a_{i-1} + (1 - \beta)\ell_i`,
    :math:`\bar\ell_i = a_i / (1 - \beta^{i+1})` (``smooth`` = :math:`\beta`), and the run
    stops once :math:`\bar\ell_i > \mathrm{diverge}\cdot\min_{j\le i}\bar\ell_j` or a loss is
    not finite.

    **Suggestion rule**: one tenth of the rate at the lowest smoothed loss (fastai's
    "minimum / 10"): the minimum sits where the rate is already too large to keep
    improving, so a rate 10x smaller is still on the steep, stable part of the curve.

    ``optimizer(model)`` builds the optimiser (default: SGD over the trainable
    parameters); every group's rate is scaled together, keeping the ratio of
    discriminative rates, and ``lrs`` report the rate of the group with the largest
    initial rate. ``objective(model, x, y)`` defaults to cross-entropy. The model's
    parameters, buffers, train/eval modes and the global RNG state are restored afterwards
    (``seed`` orders the batches).
    """
    check_positive("start_lr", start_lr)
    check_positive("end_lr", end_lr)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be > start_lr ({start_lr!r}), got {end_lr!r}.")
    check_int("steps", steps, minimum=2)
    check_int("batch_size", batch_size, minimum=1)
    if not 0.0 <= smooth < 1.0:
        raise ValueError(f"smooth must be in [0, 1), got {smooth!r}.")
    check_positive("diverge", diverge)
    if diverge <= 1.0:
        raise ValueError(f"diverge must be > 1 (a factor above the best loss), got {diverge!r}.")
    check_data("data", data)
    if eval_data is not None:
        check_data("eval_data", eval_data)
    objective = objective or _default_objective
    state = copy.deepcopy(model.state_dict())
    modes = [(m, m.training) for m in model.modules()]
    device = next(model.parameters()).device
    opt: torch.optim.Optimizer
    if optimizer is None:
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    else:
        opt = optimizer(model)
    base = [g["lr"] for g in opt.param_groups]
    top = max(base)
    ratios = [b / top for b in base]
    lrs, raw, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, False
    try:
        with seeded(seed):
            batches = _cycle(data, batch_size, torch.Generator().manual_seed(seed))
            for i in range(steps):
                lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
                for g, r in zip(opt.param_groups, ratios, strict=True):
                    g["lr"] = lr * r
                x, y = next(batches)
                x, y = x.to(device), y.to(device)
                loss = _total(objective(model, x, y))
                value = float(loss.detach())
                if math.isfinite(value):
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if eval_data is not None:
                        value = _mean_loss(model, objective, eval_data, 256, device)
                if not math.isfinite(value):
                    diverged = True
                    break
                avg = smooth * avg + (1 - smooth) * value
                s = avg / (1 - smooth ** (i + 1))
                lrs.append(lr)
                raw.append(value)
                smoothed.append(s)
                best = min(best, s)
                if s > diverge * best:
                    diverged = True
                    break
    finally:
        model.load_state_dict(state)
        for m, mode in modes:
            m.training = mode
        opt.zero_grad(set_to_none=True)
    if not lrs:
        raise FloatingPointError(
            f"lr_find: the loss was not finite at the first step (lr {start_lr:g}); "
            "check the data and the objective, or lower start_lr."
        )
    lowest = lrs[min(range(len(smoothed)), key=smoothed.__getitem__)]
    rule = "one tenth of the rate at the minimum of the smoothed loss"
    return LRFinderResult(lrs, smoothed, raw, lowest / 10, diverged, rule)
