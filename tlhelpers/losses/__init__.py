"""Loss catalogue of the kit: transfer learning seen through the loss function.

Split by what a method does (as in TLlib):

- :mod:`~tlhelpers.losses.objective`: :class:`TransferObjective` composes a task loss
  with weighted transfer terms and returns every part for logging; :func:`make_objective`
  builds notebook 03's objectives by name (:data:`TRANSFER_METHODS`).
- :mod:`~tlhelpers.losses.regularization`: fine-tuning regularisers (L2, L2-SP, BSS,
  DELTA feature-map distance).
- :mod:`~tlhelpers.losses.distillation`: knowledge distillation and LwF.
- :mod:`~tlhelpers.losses.alignment`: domain alignment (MMD, CORAL, DANN).
- :mod:`~tlhelpers.losses.metric_learning`: ArcFace, CosFace, triplet losses.
- :mod:`~tlhelpers.losses.classification`: focal loss, label smoothing.

Like ``torch.nn``: every loss is an ``nn.Module`` with a functional twin, checks
``reduction`` when constructed and documents its ``Shape:``. Every docstring states the
formula, the paper and the convention chosen where the literature disagrees.

This package re-exports the public names of its submodules (their ``__all__``).
"""

from tlhelpers.losses import (
    alignment,
    classification,
    distillation,
    metric_learning,
    objective,
    regularization,
)
from tlhelpers.losses.alignment import *  # noqa: F403
from tlhelpers.losses.classification import *  # noqa: F403
from tlhelpers.losses.distillation import *  # noqa: F403
from tlhelpers.losses.metric_learning import *  # noqa: F403
from tlhelpers.losses.objective import *  # noqa: F403
from tlhelpers.losses.regularization import *  # noqa: F403

__all__ = [
    name
    for module in (objective, regularization, distillation, alignment, metric_learning, classification)
    for name in module.__all__
]
