"""Training and running models: the one training loop (:class:`Trainer`) and its presets,
``predict``, ``evaluate``, AdaBN.

The course looks at transfer learning through the loss, so the loop logs every named term
of the objective separately (task loss, L2-SP, distillation, ...), epoch by epoch, in a
:class:`History`.

- :class:`Trainer` (fastai's ``Learner``, in small): the one loop. It owns the optimiser,
  the BatchNorm mode (``batchnorm="train"`` or ``"eval"``), the minibatch order and the
  random state, so a run can stop and resume exactly; variants are :class:`Callback` s
  (:class:`OnStep` for a schedule or gradual unfreezing, :class:`EarlyStopping` on
  validation).
- Presets, each one :class:`Trainer` run: :func:`fit` (notebook 00: epochs of minibatch
  training with any objective); :func:`fine_tune` (notebooks 03-04: ``steps`` steps,
  BatchNorm kept in eval mode, the distance from the source logged by
  :class:`TrackDistance`); :func:`fine_tuned_accuracy` (notebook 02: the fixed protocol that
  ranks candidate sources). :meth:`tlhelpers.recipes.Recipe.trainer` builds one from a
  named recipe; :func:`tlhelpers.adaptation.adapt` (notebook 09) and
  :func:`tlhelpers.embedding.train_embedding` (05b, 08b) run through it too.
- :func:`predict` is the one batched inference loop of the kit; :func:`evaluate`,
  :mod:`tlhelpers.features` and :mod:`tlhelpers.analysis` go through it.
- :func:`adabn` (notebook 01): re-estimate BatchNorm statistics on target data.
- :func:`train_linear_head` (notebook 04): a linear head on cached features.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from . import threads
from .data import Data, check_data, data_length, iterate_batches
from .interactive import widgets_enabled
from .losses import TransferObjective
from .models import (
    eval_mode,
    param_groups,
    replace_head,
    set_batchnorm_eval,
    weight_distance,
)
from .runtime import resolve_device, seeded
from .validation import check_choice, check_int, check_positive

__all__ = [
    "BATCHNORM_MODES",
    "Callback",
    "EarlyStopping",
    "History",
    "Objective",
    "OnStep",
    "TrackDistance",
    "Trainer",
    "adabn",
    "check_class_labels",
    "evaluate",
    "fine_tune",
    "fine_tuned_accuracy",
    "fit",
    "passes_for",
    "predict",
    "train_linear_head",
]

#: BatchNorm modes while training: batch statistics, or the stored ones kept.
BATCHNORM_MODES = ("train", "eval")

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


# ---------------------------------------------------------------- the one training loop


class Callback:
    """A hook into :class:`Trainer`'s loop; override the events you need (each gets the trainer).

    - ``on_fit_start(trainer)``: once per :meth:`Trainer.fit` call, before the first epoch;
    - ``on_epoch_start(trainer)``: after ``model.train()`` and the BatchNorm mode are set;
    - ``on_step_end(trainer)``: after every optimiser step (``trainer.step``: 1-based count
      over the trainer's life, resumed runs included);
    - ``on_epoch_end(trainer, record)``: after the epoch's record (losses, validation) is
      logged; set ``trainer.stop = True`` to end the run after this epoch;
    - ``on_fit_end(trainer)``: once per call, after the last epoch.

    Callbacks run in the order given. Variants of training (a schedule, gradual
    unfreezing, DANN's schedule, early stopping) are callbacks, not new loops.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, trainer: Trainer) -> None:
        pass

    def on_step_end(self, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        pass

    def on_fit_end(self, trainer: Trainer) -> None:
        pass


class OnStep(Callback):
    """Call ``fn(step)`` after every optimiser step (1-based): a scheduler's ``step``, a
    :class:`tlhelpers.optim.GradualUnfreezing`, DANN's schedule (notebooks 06, 09)."""

    def __init__(self, fn: Callable[[int], Any]):
        if not callable(fn):
            raise TypeError(f"OnStep needs a callable fn(step), got {type(fn).__name__}.")
        self.fn = fn

    def on_step_end(self, trainer: Trainer) -> None:
        self.fn(trainer.step)


class EarlyStopping(Callback):
    """Stop when the validation ``monitor`` has not improved for ``patience`` epochs.

    ``mode="max"`` for an accuracy, ``"min"`` for a loss; an improvement must beat the best
    by more than ``min_delta``. With ``restore_best`` the model gets the weights (and
    buffers) of its best epoch back when the run ends; ``best_epoch`` (1-based, over the
    trainer's history) and ``best`` record it. Needs ``val_data`` in :meth:`Trainer.fit`
    (checked before any work).
    """

    def __init__(
        self,
        monitor: str = "val/accuracy",
        *,
        patience: int = 3,
        mode: str = "max",
        min_delta: float = 0.0,
        restore_best: bool = True,
    ):
        if not isinstance(monitor, str) or "/" not in monitor:
            raise ValueError(
                f"monitor must name a history key such as 'val/accuracy' or 'val/loss', "
                f"got {monitor!r}."
            )
        self.monitor = monitor
        self.patience = check_int("patience", patience, minimum=1)
        self.mode = check_choice("mode", mode, ("max", "min"))
        self.min_delta = check_positive("min_delta", min_delta, strict=False)
        self.restore_best = bool(restore_best)
        self.best: float | None = None
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.waited = 0

    def on_epoch_end(self, trainer: Trainer, record: dict[str, float]) -> None:
        if self.monitor not in record:
            raise KeyError(
                f"EarlyStopping monitors {self.monitor!r}, not in the epoch's record "
                f"({', '.join(record)})."
            )
        value = record[self.monitor]
        sign = 1.0 if self.mode == "max" else -1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.waited = value, len(trainer.history), 0
            if self.restore_best:
                self.best_state = copy.deepcopy(trainer.model.state_dict())
        else:
            self.waited += 1
            if self.waited >= self.patience:
                trainer.stop = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.restore_best and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)


def passes_for(steps: int, n: int, batch_size: int) -> int:
    """Whole passes over ``n`` examples that give at least ``steps`` optimiser steps.

    ``steps`` itself when one batch holds everything (one step per pass), else
    ``ceil(steps * batch_size / n)``: step-based training runs whole passes, so with
    mini-batches it may take a few more steps than asked (:func:`fine_tune`).
    """
    check_int("steps", steps, minimum=1)
    return math.ceil(steps * batch_size / n) if batch_size < n else steps


def _first_example(data: Data) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets of ``data`` (a pair: all of them; a Dataset: its first item)."""
    if isinstance(data, tuple):
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    x, y = data[0][:2]
    return torch.as_tensor(x), torch.as_tensor(y)


def _param_dtype(model: nn.Module) -> torch.dtype | None:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return None


def _check_inputs(name: str, data: Data, model: nn.Module) -> None:
    """Floating inputs must have the dtype of the model's floating parameters."""
    x, _ = _first_example(data)
    want = _param_dtype(model)
    if want is not None and x.is_floating_point() and x.dtype != want:
        raise ValueError(
            f"{name} has {x.dtype} inputs but the model's parameters are {want}: convert "
            f"the inputs (e.g. images.to({want})) or the model (model.to({want}))."
        )


def check_class_labels(name: str, data: Data) -> None:
    """Cross-entropy needs integer class labels: refuse float targets by ``name``, saying why."""
    _, y = _first_example(data)
    if y.is_floating_point():
        raise ValueError(
            f"{name} has {y.dtype} targets, but the default objective (cross-entropy) needs "
            "integer class labels 0..C-1: convert them with targets.long(), or pass an "
            "objective for real-valued targets (e.g. a regression loss)."
        )


class Trainer:
    r"""The kit's one training loop: it owns the model's optimiser, BatchNorm mode, the
    minibatch order, the random state and the log of every loss term, across calls.

    Each step of :meth:`fit` takes a batch ``(x, y)``, computes
    ``objective(model, batch_transform(x), y)`` (a scalar or a mapping of named terms with a
    ``"total"``; default cross-entropy on ``model(x)``), stops with ``FloatingPointError``
    if a term is not finite (before the step changes the weights), then runs
    ``zero_grad``, ``total.backward()``, ``optimizer.step()`` and the callbacks'
    ``on_step_end``. After each pass the mean of every term is logged as
    ``history["train/<term>"]``, with ``val/loss`` and ``val/accuracy`` when ``val_data``
    is given (:func:`evaluate`). A variant of training is a :class:`Callback`
    (:class:`OnStep` for a schedule or gradual unfreezing, :class:`EarlyStopping`).

    - ``optimizer``: an optimiser over the model's parameters (e.g.
      :func:`tlhelpers.optim.make_optimizer`'s groups, or a recipe's); default Adam at
      ``lr`` over the trainable parameters. The trainer keeps it: a second :meth:`fit`
      call continues with Adam's moments, the step count, the batch order and the random
      stream where the first ended, so ``fit(steps=6); fit(steps=6)`` equals ``fit(steps=12)``
      bit for bit (the resumable runs of :class:`tlhelpers.recipes.CandidateRun`).
    - ``batchnorm``: ``"train"`` (batch statistics, running estimates updated) or
      ``"eval"`` (every BatchNorm layer keeps its stored statistics while the rest trains:
      :func:`tlhelpers.models.set_batchnorm_eval`).
    - ``seed``: the minibatch order comes from a generator seeded once, and the steps run
      with torch's global generator seeded by ``seed`` (forked: the caller's stream is
      restored after each call; see :func:`tlhelpers.runtime.seeded`), so dropout and
      random augmentation repeat. ``None`` uses (and advances) the global generator.
    - ``device``: :func:`tlhelpers.runtime.resolve_device` (``None`` = where the model is).

    Arguments are checked by name, type and range before any work; the data are checked
    by :meth:`fit` (:func:`tlhelpers.data.check_data`, and inputs whose dtype differs from
    the model's parameters, e.g. float64 images for a float32 network).
    """

    def __init__(
        self,
        model: nn.Module,
        objective: Objective | None = None,
        *,
        optimizer: torch.optim.Optimizer | None = None,
        lr: float = 1e-3,
        batch_size: int = 64,
        batchnorm: str = "train",
        seed: int | None = None,
        batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        device: str | torch.device | None = None,
        callbacks: Sequence[Callback] = (),
        check_finite: bool = True,
        progress: bool = True,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}.")
        if objective is not None and not callable(objective):
            raise TypeError(
                f"objective must be callable as objective(model, x, y), got "
                f"{type(objective).__name__}."
            )
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}."
            )
        check_positive("lr", lr)
        check_int("batch_size", batch_size, minimum=1)
        check_choice("batchnorm", batchnorm, BATCHNORM_MODES)
        if seed is not None:
            check_int("seed", seed, minimum=0)
        if batch_transform is not None and not callable(batch_transform):
            raise TypeError(
                f"batch_transform must be callable, got {type(batch_transform).__name__}."
            )
        callbacks = list(callbacks)
        for i, cb in enumerate(callbacks):
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks[{i}] must be a tlhelpers.training.Callback (wrap a function "
                    f"of the step in OnStep), got {type(cb).__name__}."
                )
        self.device = resolve_device(device, model)
        model.to(self.device)
        if isinstance(objective, nn.Module):
            objective.to(self.device)
        if optimizer is None:
            params = [p for p in model.parameters() if p.requires_grad]
            if not params:
                raise ValueError("The model has no trainable parameters (all frozen?).")
            optimizer = torch.optim.Adam(params, lr=lr)
        self.model, self.optimizer = model, optimizer
        self.objective = objective or _default_objective
        self.batch_size, self.batchnorm, self.seed = batch_size, batchnorm, seed
        self.batch_transform, self.callbacks = batch_transform, callbacks
        self.check_finite, self.progress = check_finite, progress
        self.default_objective = objective is None
        self.generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.history = History()
        self.step = 0
        self.epoch = 0
        self.stop = False
        self._rng_state: list[torch.Tensor] | None = None
        self._elapsed = 0.0

    # -- random state kept across calls -------------------------------------------------

    @contextmanager
    def _random_state(self) -> Iterator[None]:
        """The global generators seeded once, then continued across calls; the caller's
        stream restored after each (``torch.random.fork_rng``)."""
        if self.seed is None:
            yield
            return
        cuda = torch.cuda.is_available()
        devices = list(range(torch.cuda.device_count())) if cuda else []
        with torch.random.fork_rng(devices=devices):
            if self._rng_state is None:
                torch.manual_seed(self.seed)
            else:
                torch.set_rng_state(self._rng_state[0])
                if cuda:
                    torch.cuda.set_rng_state_all(self._rng_state[1:])
            try:
                yield
            finally:
                self._rng_state = [torch.get_rng_state()]
                if cuda:
                    self._rng_state += torch.cuda.get_rng_state_all()

    def state_dict(self) -> dict[str, Any]:
        """Everything a later :meth:`load_state_dict` needs to resume this run exactly:
        model, optimiser, step and epoch counts, batch order and random state, history."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "generator": None if self.generator is None else self.generator.get_state(),
            "rng": None if self._rng_state is None else [s.clone() for s in self._rng_state],
            "history": [dict(r) for r in self.history.records],
            "elapsed": self._elapsed,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from :meth:`state_dict` (a trainer built with the same arguments)."""
        keys = {"model", "optimizer", "step", "epoch", "generator", "rng", "history"}
        missing = keys - set(state)
        if missing:
            raise ValueError(f"state is missing {sorted(missing)}: not a Trainer.state_dict().")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        if state["generator"] is not None:
            if self.generator is None:
                raise ValueError("state was saved by a seeded trainer; build this one with seed=.")
            self.generator.set_state(state["generator"])
        self._rng_state = None if state["rng"] is None else list(state["rng"])
        self.history = History()
        for r in state["history"]:
            self.history.append(r)
        self._elapsed = float(state.get("elapsed", 0.0))

    # -- the loop --------------------------------------------------------------------------

    def fit(
        self,
        data: Data,
        *,
        epochs: int | None = None,
        steps: int | None = None,
        val_data: Data | None = None,
    ) -> History:
        """Train for ``epochs`` passes over ``data``, or for ``steps`` optimiser steps rounded
        up to whole passes (:func:`passes_for`); returns the trainer's whole :class:`History`.

        One batch holding all of ``data`` is not shuffled (the order would change only float
        rounding; a plain full-batch loop then gives bit-identical weights, notebook 03a).
        """
        if (epochs is None) == (steps is None):
            raise ValueError(
                f"give exactly one of epochs and steps, got epochs={epochs!r}, steps={steps!r}."
            )
        if epochs is not None:
            check_int("epochs", epochs, minimum=1)
        else:
            check_int("steps", steps, minimum=1)
        n_train = check_data("train_data", data, check_finite=self.check_finite)
        if val_data is not None:
            check_data("val_data", val_data, check_finite=self.check_finite)
        for cb in self.callbacks:
            monitor = getattr(cb, "monitor", "")
            if isinstance(cb, EarlyStopping) and monitor.startswith("val/") and val_data is None:
                raise ValueError(
                    f"EarlyStopping monitors {monitor!r}, which needs val_data; pass val_data=."
                )
        if self.batch_transform is None:  # a transform may convert the inputs itself
            _check_inputs("train_data", data, self.model)
            if val_data is not None:
                _check_inputs("val_data", val_data, self.model)
        if self.default_objective:
            check_class_labels("train_data", data)
        if epochs is None:
            assert steps is not None  # exactly one of the two, checked above
            epochs = passes_for(steps, n_train, min(self.batch_size, n_train))
        threads.adapt_threads()  # the kit's thread policy, re-decided from the load now
        from tqdm.auto import tqdm

        model, dev, optimizer, callbacks = self.model, self.device, self.optimizer, self.callbacks
        # One batch holding everything is not shuffled: the order would change only float
        # rounding, and a plain full-batch loop then gives bit-identical weights (03a).
        shuffle = self.batch_size < n_train
        start = time.perf_counter()
        self.stop = False
        bar = tqdm(
            range(epochs),
            desc="fit",
            disable=not (self.progress and widgets_enabled()),
            leave=False,
        )
        # one thread count for the whole run (validation's predict calls do not re-decide it)
        with threads.fixed_threads(), self._random_state():
            for cb in callbacks:
                cb.on_fit_start(self)
            for _ in bar:
                self.epoch += 1
                model.train()
                if self.batchnorm == "eval":
                    set_batchnorm_eval(model)
                for cb in callbacks:
                    cb.on_epoch_start(self)
                sums: dict[str, float] = defaultdict(float)
                count = 0
                batches = iterate_batches(
                    data, self.batch_size, shuffle=shuffle, generator=self.generator
                )
                for batch, (x, y) in enumerate(batches, start=1):
                    self.step += 1
                    if (
                        self.check_finite
                        and x.is_floating_point()
                        and not bool(torch.isfinite(x).all())
                    ):
                        raise ValueError(
                            f"train_data has NaN or inf inputs in batch {batch} of epoch "
                            f"{self.epoch}; fix the data or pass check_finite=False."
                        )
                    x, y = x.to(dev), y.to(dev)
                    if self.batch_transform is not None:
                        x = self.batch_transform(x)
                    terms = _terms(self.objective(model, x, y))
                    values = {k: float(v.detach()) for k, v in terms.items()}
                    bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                    if bad:  # stop before this step changes the weights
                        raise FloatingPointError(
                            f"fit: the loss became non-finite at epoch {self.epoch}, step "
                            f"{self.step} (batch {batch} of the epoch): {bad}. The model keeps "
                            "the weights of the previous step. Try a lower lr, check the "
                            "inputs and targets."
                        )
                    optimizer.zero_grad(set_to_none=True)
                    terms["total"].backward()
                    optimizer.step()
                    for cb in callbacks:
                        cb.on_step_end(self)
                    for k, v in values.items():
                        sums[k] += v * len(y)
                    count += len(y)
                record = {f"train/{k}": v / count for k, v in sums.items()}
                if val_data is not None:
                    ev = evaluate(model, val_data, batch_transform=self.batch_transform, device=dev)
                    record.update({f"val/{k}": v for k, v in ev.items()})
                record["time"] = self._elapsed + time.perf_counter() - start
                self.history.append(record)
                for cb in callbacks:
                    cb.on_epoch_end(self, record)
                postfix = {k.split("/")[-1]: f"{v:.3g}" for k, v in record.items() if k != "time"}
                bar.set_postfix(postfix)
                if self.stop:
                    break
            for cb in callbacks:
                cb.on_fit_end(self)
        self._elapsed += time.perf_counter() - start
        return self.history


# ---------------------------------------------------------------- presets of the loop


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
    batchnorm: str = "train",
    check_finite: bool = True,
    on_step: Callable[[int], Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train ``model`` for ``epochs`` passes and return a :class:`History` of every loss term.

    One :class:`Trainer` run: ``Trainer(model, objective, optimizer=..., lr=...,
    batch_size=..., batchnorm=..., seed=..., ...).fit(train_data, epochs=epochs,
    val_data=val_data)``; see :class:`Trainer` for each argument. ``objective(model, x, y)``
    returns a scalar loss or a mapping of named terms with a ``"total"`` key (e.g. a
    ``tlhelpers.losses.TransferObjective``); the default is cross-entropy on ``model(x)``
    (integer labels required). ``optimizer`` defaults to Adam at ``lr``. ``batchnorm="eval"``
    keeps every BatchNorm layer's stored statistics while training. ``on_step(step)`` is
    called after every optimiser step (an :class:`OnStep` callback run after
    ``callbacks``), e.g. a scheduler's ``step`` or a
    :class:`tlhelpers.optim.GradualUnfreezing` (notebook 06).

    Reliability (no silent wrong answer): the arguments and the data are validated first
    (:func:`tlhelpers.data.check_data`: not empty, as many targets as inputs, labels in
    range, finite inputs unless ``check_finite=False``; inputs of the model's dtype; a
    ``device`` that is not there is refused by :func:`tlhelpers.runtime.resolve_device`);
    training stops with ``FloatingPointError`` naming the epoch and step as soon as a loss
    term is NaN or inf, *before* that step changes the weights. ``seed`` makes the run
    repeatable and leaves the caller's global random state as it was.
    """
    check_int("epochs", epochs, minimum=1)
    callbacks = [*callbacks, *([OnStep(on_step)] if on_step is not None else [])]
    trainer = Trainer(
        model,
        objective,
        optimizer=optimizer,
        lr=lr,
        batch_size=batch_size,
        batchnorm=batchnorm,
        seed=seed,
        batch_transform=batch_transform,
        device=device,
        callbacks=callbacks,
        check_finite=check_finite,
        progress=progress,
    )
    return trainer.fit(train_data, epochs=epochs, val_data=val_data)


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
        disable=not (progress and widgets_enabled()),  # no frozen bars in executed copies
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
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"model must return one tensor of logits, got a tuple of {len(logits)}.")
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


def fine_tune(
    model: nn.Module,
    data: Data,
    *,
    objective: Callable | None = None,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int | None = None,
    seed: int = 0,
    batchnorm: str = "eval",
    reference: Mapping[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    device: str | torch.device | None = None,
    on_step: Callable[[int], Any] | None = None,
    callbacks: Sequence[Callback] = (),
) -> History:
    """``steps`` optimiser steps on ``data`` (full batch unless ``batch_size``): one
    :class:`Trainer` run of :func:`passes_for` passes.

    With a ``batch_size`` smaller than the data, one history record covers one pass
    (``ceil(steps * batch_size / n)`` passes). ``batchnorm="eval"`` (the default) keeps
    every BatchNorm layer in eval mode (the source statistics; a few-shot batch is a poor
    estimate of them), which also makes the DELTA distance start at exactly 0.
    ``reference`` (parameter name -> source value,
    :func:`tlhelpers.models.parameter_state`) adds ``train/weight_distance`` to the history.
    ``optimizer`` (e.g. :func:`tlhelpers.optim.make_optimizer`'s groups) replaces the
    default Adam at ``lr``. ``objective`` defaults to
    :class:`tlhelpers.losses.TransferObjective` (cross-entropy, logged as ``train/task``;
    integer labels required). ``seed`` makes the run repeatable (see :class:`Trainer`);
    ``on_step(step)`` runs after every optimiser step, after ``callbacks``.
    """
    check_int("steps", steps, minimum=1)
    n = check_data("data", data)
    bs = n if batch_size is None else min(check_int("batch_size", batch_size, minimum=1), n)
    if objective is None:
        check_class_labels("data", data)
    obj = objective if objective is not None else TransferObjective()
    if reference is not None:
        obj = TrackDistance(obj, reference)
    callbacks = [*callbacks, *([OnStep(on_step)] if on_step is not None else [])]
    trainer = Trainer(
        model,
        obj,
        optimizer=optimizer,
        lr=lr,
        batch_size=bs,
        batchnorm=batchnorm,
        seed=seed,
        batch_transform=batch_transform,
        device=device,
        callbacks=callbacks,
        progress=False,
    )
    return trainer.fit(data, steps=steps)


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
    batchnorm: str = "eval",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Test accuracy after fine-tuning a *copy* of ``model`` on ``train_data`` (notebook 02).

    The protocol (the same for every candidate): the source head is replaced by a fresh
    ``nn.Linear(D, num_classes)`` (:func:`tlhelpers.models.replace_head`, initialised under
    :func:`tlhelpers.runtime.seeded`), then *all* layers are trained with Adam (``lr`` for
    the body, ``head_lr`` for the new head, default ``10 * lr``: the new head starts from
    scratch) for ``steps`` full-batch steps of :func:`fine_tune` on the few-shot
    ``train_data``. With ``batchnorm="eval"`` BatchNorm layers keep their running
    statistics during training: a few labelled images give poor batch statistics.
    ``model`` itself is left unchanged.
    """
    check_int("steps", steps, minimum=1)
    check_int("num_classes", num_classes, minimum=1)
    check_positive("lr", lr)
    check_choice("batchnorm", batchnorm, BATCHNORM_MODES)
    head_lr = 10 * lr if head_lr is None else check_positive("head_lr", head_lr)
    with seeded(seed):
        net = replace_head(copy.deepcopy(model), num_classes)
    opt = torch.optim.Adam(param_groups(net, {"body": lr, "head": head_lr}))
    fine_tune(
        net,
        train_data,
        steps=steps,
        lr=lr,
        optimizer=opt,
        batch_transform=batch_transform,
        seed=seed,
        batchnorm=batchnorm,
        device=device,
    )
    return evaluate(net, test_data, batch_transform=batch_transform, device=device)["accuracy"]
