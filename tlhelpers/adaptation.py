"""Unsupervised domain adaptation: train on labelled source data and unlabelled target
images.

:func:`adapt` minimises source cross-entropy plus ``strength`` times an alignment term
(:class:`tlhelpers.losses.DomainAdaptationObjective`: MMD, CORAL or DANN) with the kit's
one training loop. The diagnostics (proxy A-distance, reverse validation) are in
:mod:`tlhelpers.analysis`.
"""

from __future__ import annotations

import torch
from torch import nn

from .data import Data
from .losses import DomainAdaptationObjective
from .training import History, fine_tune
from .validation import check_int, check_positive

__all__ = ["adapt"]


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
    ``"none"`` for no added term, ``"mmd"``, ``"coral"`` or ``"dann"`` with Ganin's schedule) with Adam
    at ``lr`` over the model's parameters and, for DANN, the domain classifier's. BatchNorm
    trains (batch statistics). The loop is the kit's :class:`~tlhelpers.training.Trainer`
    through :func:`~tlhelpers.training.fine_tune` (non-finite losses stop it; ``seed`` makes
    the run repeatable), with the objective's schedule as an
    :class:`~tlhelpers.training.OnStep` callback; it runs whole passes over ``source``, so
    ``steps`` is rounded up to a multiple of the batches per pass (the DANN schedule still
    reaches its end at ``steps``). ``model`` must be a
    :class:`tlhelpers.models.SplitModel`; it is trained in place. Target labels are never
    used: choose ``strength`` and ``steps`` without them (notebook 09).
    Returns the :class:`History` (``train/task``, the alignment term, DANN's
    ``train/domain_accuracy`` and ``train/reversal``).
    """
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
        batchnorm="train",
        optimizer=optimizer,
        device=device,
        on_step=objective.on_step,
    )
