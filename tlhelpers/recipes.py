"""The training recipes of the course, defined once and called by name.

A :class:`Recipe` fixes what is trained (all layers or the head), the optimiser (Adam),
the learning rates of body and head, weight decay, the batch size, the BatchNorm mode
while training, and the step budget as a function of the training-set size::

    steps_for(n) = clip(ceil(epochs * n / batch_size), min_steps, max_steps)

so a few-shot set (5 images) still gets enough updates, and 50 images per class do not
get 16 passes more than 1 per class does. Notebooks write ``recipe = get_recipe("scratch")``
and ``recipe.fit(model, train, seed=s)`` (or ``recipe.trainer(model)``, the kit's training
loop set up by the recipe, for a run to resume); where a notebook deviates it uses
``recipe.replace(...)`` and says why.

The values were chosen on a validation split of Fashion-MNIST task B (classes 5-9) with
the kit's SmallCNN source (task A, classes 0-4) at 1, 5 and 50 labels per class, 4 seeds:
see each recipe's ``why``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .data import Data, check_data
from .losses import TransferObjective
from .optim import OPTIMIZERS, SCHEDULES, GradualUnfreezing, make_optimizer, make_scheduler
from .training import (
    BATCHNORM_MODES,
    Callback,
    History,
    OnStep,
    TrackDistance,
    Trainer,
    check_class_labels,
)
from .validation import check_choice, check_int, check_positive

__all__ = ["CandidateRun", "Recipe", "RECIPES", "get_recipe"]

TRAINS = ("all", "head")


@dataclass(frozen=True)
class Recipe:
    """How one kind of model is trained (see the module docstring for ``steps_for``).

    Attributes:
        name: the recipe's name in :data:`RECIPES`.
        trains: ``"all"`` layers, or only the ``"head"`` (the body is frozen with
            ``requires_grad_(False)``).
        lr_body, lr_head: Adam learning rates of parameters under ``body.`` / ``head.``
            (every other trainable parameter, e.g. LwF's old head, gets ``lr_body``).
        weight_decay: Adam's (coupled) L2 weight decay; 0 where a loss term regularises.
        batch_size: images per step; a smaller training set is one full batch.
        batchnorm: ``"train"`` (batch statistics, running estimates updated) or
            ``"eval"`` (the stored statistics, e.g. the source's) while training.
        epochs, min_steps, max_steps: the step budget, see :meth:`steps_for`.
        why: the reasons for these values.
        optimizer: one of :data:`tlhelpers.optim.OPTIMIZERS` (``"adam"``, ``"adamw"``,
            ``"sgd"``, ``"sgd_momentum"``; notebook 06 compares them), ``momentum`` its
            momentum for ``"sgd_momentum"``.
        schedule: ``"constant"``, ``"warmup_cosine"`` or ``"one_cycle"``
            (:func:`tlhelpers.optim.schedule_factor`), ``warmup`` the warm-up fraction.
        unfreeze: gradual unfreezing (:class:`tlhelpers.optim.GradualUnfreezing`): module
            prefixes from the top down; every ``unfreeze_every`` (a fraction of the steps)
            one more group trains. Empty: every layer trains from the first step.
    """

    name: str
    trains: str
    lr_body: float
    lr_head: float
    weight_decay: float
    batch_size: int
    batchnorm: str
    epochs: float
    min_steps: int
    max_steps: int
    why: str
    optimizer: str = "adam"
    momentum: float = 0.9
    schedule: str = "constant"
    warmup: float = 0.1
    unfreeze: tuple[str, ...] = ()
    unfreeze_every: float = 0.25

    def __post_init__(self) -> None:
        check_choice("trains", self.trains, TRAINS)
        check_choice("batchnorm", self.batchnorm, BATCHNORM_MODES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_positive("momentum", self.momentum, strict=False)
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}.")
        if not 0.0 < self.unfreeze_every <= 1.0:
            raise ValueError(
                f"unfreeze_every must be a fraction in (0, 1], got {self.unfreeze_every!r}."
            )
        check_positive("lr_body", self.lr_body)
        check_positive("lr_head", self.lr_head)
        check_positive("weight_decay", self.weight_decay, strict=False)
        check_int("batch_size", self.batch_size, minimum=1)
        check_positive("epochs", self.epochs)
        check_int("min_steps", self.min_steps, minimum=1)
        check_int("max_steps", self.max_steps, minimum=1)
        if self.max_steps < self.min_steps:
            raise ValueError(
                f"min_steps must be <= max_steps, got min_steps={self.min_steps}, "
                f"max_steps={self.max_steps}."
            )

    def steps_for(self, n_train: int) -> int:
        """Optimiser steps for ``n_train`` training images: ``epochs`` passes, clipped."""
        check_int("n_train", n_train, minimum=1)
        steps = math.ceil(self.epochs * n_train / self.batch_size)
        return int(min(self.max_steps, max(self.min_steps, steps)))

    def replace(self, **changes) -> Recipe:
        """A copy with ``changes`` (checked like the original); the named recipe is unchanged."""
        return dataclasses.replace(self, **changes)

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        """The recipe's optimiser over the trainable parameters, by the kit's one grouping
        rule (:func:`tlhelpers.models.param_groups`): ``lr_head`` under ``head``,
        ``lr_body`` under ``body`` and for every other parameter (a model without the
        ``body``/``head`` split trains at ``lr_body`` throughout)."""
        parts = {name for name, _ in model.named_children()}
        rates = {"body": self.lr_body, "head": self.lr_head}
        return make_optimizer(
            self.optimizer,
            model,
            {k: v for k, v in rates.items() if k in parts},
            default=self.lr_body,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
        )

    def trainer(
        self,
        model: nn.Module,
        *,
        objective: Callable | None = None,
        steps: int | None = None,
        seed: int = 0,
        reference: Mapping[str, Tensor] | None = None,
        batch_transform: Callable[[Tensor], Tensor] | None = None,
        device: str | torch.device | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> Trainer:
        """A :class:`~tlhelpers.training.Trainer` set up by this recipe, to run and resume.

        With ``trains="head"`` the body is frozen first (``model.body.requires_grad_(False)``);
        the optimiser is :meth:`make_optimizer`'s (built before gradual unfreezing freezes
        the lower groups), BatchNorm follows ``batchnorm``, batches are ``batch_size``.
        The ``schedule`` and ``unfreeze`` are callbacks over ``steps`` optimiser steps (so
        they need ``steps``), run before ``callbacks``. ``objective`` defaults to
        :class:`tlhelpers.losses.TransferObjective` (cross-entropy logged as ``train/task``);
        ``reference`` adds ``train/weight_distance``
        (:class:`~tlhelpers.training.TrackDistance`). The trainer keeps the optimiser
        between :meth:`~tlhelpers.training.Trainer.fit` calls: notebook 10's resumable runs.
        """
        if steps is None and (self.schedule != "constant" or self.unfreeze):
            raise ValueError(
                f"recipe {self.name!r} has schedule={self.schedule!r} and "
                f"unfreeze={self.unfreeze!r}, which are laid out over the run's steps: "
                "pass steps=."
            )
        if steps is not None:
            check_int("steps", steps, minimum=1)
        if self.trains == "head":
            body = getattr(model, "body", None)
            if not isinstance(body, nn.Module):
                raise ValueError(
                    f"recipe {self.name!r} trains the head only: the model needs a .body "
                    f"(a SplitModel), got {type(model).__name__}."
                )
            body.requires_grad_(False)
        optimizer = self.make_optimizer(model)  # before unfreezing freezes the lower groups
        steps_callbacks: list[Callback] = []
        if steps is not None:
            scheduler = make_scheduler(optimizer, self.schedule, steps, warmup=self.warmup)
            if scheduler is not None:
                steps_callbacks.append(OnStep(lambda _step: scheduler.step()))
            if self.unfreeze:
                every = max(1, round(self.unfreeze_every * steps))
                steps_callbacks.append(OnStep(GradualUnfreezing(model, self.unfreeze, every=every)))
        obj = objective if objective is not None else TransferObjective()
        if reference is not None:
            obj = TrackDistance(obj, reference)
        return Trainer(
            model,
            obj,
            optimizer=optimizer,
            lr=self.lr_body,
            batch_size=self.batch_size,
            batchnorm=self.batchnorm,
            seed=seed,
            batch_transform=batch_transform,
            device=device,
            callbacks=[*steps_callbacks, *callbacks],
            progress=False,
        )

    def fit(
        self,
        model: nn.Module,
        data: Data,
        *,
        objective: Callable | None = None,
        seed: int = 0,
        steps: int | None = None,
        reference: Mapping[str, Tensor] | None = None,
        batch_transform: Callable[[Tensor], Tensor] | None = None,
        device: str | torch.device | None = None,
        on_step: Callable[[int], object] | None = None,
        callbacks: Sequence[Callback] = (),
    ) -> History:
        """Train ``model`` on ``data`` with this recipe; returns the per-term :class:`History`.

        ``steps`` defaults to :meth:`steps_for` of the training-set size; one run of
        :meth:`trainer` (see there for the other arguments). The recipe's ``schedule``
        steps after every optimiser step, then gradual unfreezing, ``callbacks`` and
        ``on_step(step)``. ``device``: ``None`` = where the model is
        (:func:`tlhelpers.runtime.resolve_device`).
        """
        n = check_data("data", data)
        steps = self.steps_for(n) if steps is None else check_int("steps", steps, minimum=1)
        if objective is None:
            check_class_labels("data", data)
        callbacks = [*callbacks, *([OnStep(on_step)] if on_step is not None else [])]
        trainer = self.trainer(
            model,
            objective=objective,
            steps=steps,
            seed=seed,
            reference=reference,
            batch_transform=batch_transform,
            device=device,
            callbacks=callbacks,
        )
        return trainer.fit(data, steps=steps)


class CandidateRun:
    """One candidate transfer method on one source, trained in segments: a resumable run.

    ``method`` is ``"linear_probe"`` or one of :data:`tlhelpers.losses.TRANSFER_METHODS`,
    with its ``strength`` (:func:`tlhelpers.losses.make_objective`). The model is
    :func:`tlhelpers.models.transfer_model` of ``source`` with a new ``num_classes``-way head seeded by
    ``seed`` (the same head for every method at one seed). The linear probe trains that head
    on the frozen body's features, extracted once (``extract_features`` with its
    ``cache``), with the ``linear_probe`` recipe; every other method trains the whole network
    with the ``fine_tune`` recipe and its objective. Both run on the recipe's
    :meth:`Recipe.trainer`, which keeps the optimiser, the batch order and the random state
    between calls, so :meth:`advance` to 6 steps then to 12 gives the weights of 12 steps at
    once. That is what lets successive halving *continue* a survivor
    (:func:`tlhelpers.selection.successive_halving`, notebook 10).
    """

    def __init__(
        self,
        method: str,
        strength: float,
        source: nn.Module,
        train: Data,
        val: Data,
        *,
        num_classes: int,
        seed: int = 0,
        cache: bool | str = False,
    ) -> None:
        from .features import extract_features
        from .losses import RENAMED_METHODS, TRANSFER_METHODS, make_objective
        from .models import SplitModel, transfer_model

        check_choice("method", method, ("linear_probe", *TRANSFER_METHODS), renamed=RENAMED_METHODS)
        check_int("num_classes", num_classes, minimum=2)
        check_int("seed", seed, minimum=0)
        self.method, self.strength, self.steps = method, float(strength), 0
        self.source, self.cache = source, cache
        model = transfer_model(source, num_classes, seed=seed)
        objective: TransferObjective | None
        if method == "linear_probe":  # a head on features: the body runs once, not per step
            self.recipe, objective = get_recipe("linear_probe"), None
            self.model: nn.Module = SplitModel(nn.Identity(), model.head)
            self._features = lambda d: extract_features(source, d, cache=cache)
        else:
            self.recipe, self.model = get_recipe("fine_tune"), model
            objective = make_objective(method, model, source=source, strength=strength)
            self._features = lambda d: d
        self.train, self.val = self._features(train), self._features(val)
        self.trainer = self.recipe.trainer(self.model, objective=objective, seed=seed)

    def advance(self, total_steps: int) -> float:
        """Train up to ``total_steps`` steps in all; return the validation accuracy."""
        from .training import evaluate

        check_int("total_steps", total_steps, minimum=self.steps)
        if total_steps > self.steps:
            self.trainer.fit(self.train, steps=total_steps - self.steps)
        self.steps = total_steps
        return evaluate(self.model, self.val)["accuracy"]

    def test_accuracy(self, test: Data) -> float:
        """Accuracy on ``test`` (the probe reads the frozen body's features of it)."""
        from .training import evaluate

        return evaluate(self.model, self._features(test))["accuracy"]


#: The course's named training recipes.
RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="scratch",
            trains="all",
            lr_body=3e-3,
            lr_head=3e-3,
            weight_decay=0.0,
            batch_size=64,
            batchnorm="train",
            epochs=80,
            min_steps=150,
            max_steps=1000,
            why=(
                "The no-transfer baseline: a randomly initialised network. BatchNorm must "
                "train (batch statistics, running estimates updated): in eval mode a new "
                "network would normalise with running statistics that were never estimated "
                "(mean 0, variance 1), which is what broke notebook 02's old 'untrained' "
                "baseline. Adam at 3e-3 for every layer (nothing is pretrained, so no layer "
                "needs a smaller rate); at least 150 steps, because random weights need many "
                "more updates than pretrained ones (lr 1e-3..1e-2 and 150 vs 300 steps were "
                "within noise of each other at 1 and 5 labels per class). 80 epochs beyond "
                "that: at 50 labels per class (about 310 steps) validation accuracy was "
                "0.905, against 0.862 and one unstable seed with 150 steps."
            ),
        ),
        Recipe(
            name="linear_probe",
            trains="head",
            lr_body=1e-3,  # unused: the body is frozen
            lr_head=1e-2,
            weight_decay=1e-4,
            batch_size=256,
            batchnorm="eval",
            epochs=100,
            min_steps=100,
            max_steps=500,
            why=(
                "A linear classifier on frozen source features: the body is frozen and its "
                "BatchNorm layers keep the source statistics (eval). The head is a convex "
                "problem, so a large rate (1e-2) and a light weight decay (1e-4) converge in "
                "about 100 full-batch steps."
            ),
        ),
        Recipe(
            name="fine_tune",
            trains="all",
            lr_body=1e-3,
            lr_head=1e-2,
            weight_decay=0.0,
            batch_size=64,
            batchnorm="train",
            epochs=30,
            min_steps=150,
            max_steps=600,
            why=(
                "All layers from the source weights with a new head. The new head starts "
                "from random values, so it learns 10x faster than the pretrained body (1e-3, "
                "small enough not to erase the source features in a few steps). BatchNorm "
                "trains as in the scratch recipe, so the two differ only in the starting "
                "weights and the body's rate. No weight decay: notebooks 03a/03b add their "
                "regularisers as loss terms. On a validation split of Fashion-MNIST classes 5-9 "
                "(source: classes 0-4), a 10x head rate, "
                "BatchNorm in train mode and 150 (rather than 80) steps were each as good or "
                "better at 1 and 5 labels per class; beyond 150 steps the budget is 30 epochs."
            ),
        ),
        Recipe(
            name="fine_tune_bn_eval",
            trains="all",
            lr_body=1e-3,
            lr_head=1e-2,
            weight_decay=0.0,
            batch_size=64,
            batchnorm="eval",
            epochs=30,
            min_steps=150,
            max_steps=600,
            why=(
                "fine_tune with every BatchNorm layer in eval mode: the source's statistics "
                "are kept, never re-estimated from a batch of a few target images. Needed "
                "where the training loss compares features with the source network's (DELTA, "
                "L2-SP's loss along the path): with frozen statistics, the fine-tuned model "
                "at step 0 computes exactly the source's features, so the DELTA distance "
                "starts at 0."
            ),
        ),
    ]
}


def get_recipe(name: str) -> Recipe:
    """The named recipe of :data:`RECIPES`; ``ValueError`` listing the names otherwise."""
    check_choice("name", name, RECIPES, what="recipe")
    return RECIPES[name]
