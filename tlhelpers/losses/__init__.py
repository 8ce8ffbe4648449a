"""Loss catalogue of the kit: transfer learning seen through the loss function.

Split by what a method does (as in TLlib):

- :mod:`~tlhelpers.losses.objective`: :class:`TransferObjective` composes a task loss
  with weighted transfer terms and returns every part for logging.
- :mod:`~tlhelpers.losses.regularization`: fine-tuning regularisers (L2, L2-SP, BSS,
  DELTA feature-map distance).
- :mod:`~tlhelpers.losses.distillation`: knowledge distillation and LwF.
- :mod:`~tlhelpers.losses.alignment`: domain alignment (MMD, CORAL, DANN).
- :mod:`~tlhelpers.losses.metric_learning`: ArcFace, CosFace, triplet losses.
- :mod:`~tlhelpers.losses.classification`: focal loss, label smoothing.

Every docstring states the formula, the paper and the convention chosen where the
literature disagrees (see the conventions notes of the course).
"""

from tlhelpers.losses.alignment import (
    MMD_ESTIMATORS,
    CORALLoss,
    DomainAdversarialLoss,
    GradientReversal,
    MMDLoss,
    coral,
    dann_lambda,
    grad_reverse,
    median_bandwidth,
    mmd2,
)
from tlhelpers.losses.classification import (
    FocalLoss,
    LabelSmoothingCrossEntropy,
    focal_loss,
    label_smoothing_cross_entropy,
)
from tlhelpers.losses.distillation import (
    DISTILLATION_REDUCTIONS,
    DistillationLoss,
    LwF,
    distillation_loss,
)
from tlhelpers.losses.metric_learning import (
    TRIPLET_REDUCTIONS,
    ArcFaceLoss,
    BatchHardTripletLoss,
    CosFaceLoss,
    TripletLoss,
    arcface_loss,
    batch_hard_triplet_loss,
    cosface_loss,
    triplet_loss,
)
from tlhelpers.losses.objective import TERM_FIELDS, ContextTerm, TermContext, TransferObjective
from tlhelpers.losses.regularization import (
    L2,
    L2SP,
    BatchSpectralShrinkage,
    FeatureMapDistance,
    bss,
    delta_channel_attention,
    l2,
    l2sp,
)

__all__ = [
    # objective
    "TransferObjective",
    "TermContext",
    "ContextTerm",
    "TERM_FIELDS",
    # regularization
    "l2",
    "L2",
    "l2sp",
    "L2SP",
    "bss",
    "BatchSpectralShrinkage",
    "FeatureMapDistance",
    "delta_channel_attention",
    # distillation
    "distillation_loss",
    "DistillationLoss",
    "LwF",
    "DISTILLATION_REDUCTIONS",
    # alignment
    "mmd2",
    "median_bandwidth",
    "MMDLoss",
    "MMD_ESTIMATORS",
    "coral",
    "CORALLoss",
    "GradientReversal",
    "grad_reverse",
    "dann_lambda",
    "DomainAdversarialLoss",
    # metric learning
    "arcface_loss",
    "ArcFaceLoss",
    "cosface_loss",
    "CosFaceLoss",
    "triplet_loss",
    "TripletLoss",
    "batch_hard_triplet_loss",
    "BatchHardTripletLoss",
    "TRIPLET_REDUCTIONS",
    # classification
    "focal_loss",
    "FocalLoss",
    "label_smoothing_cross_entropy",
    "LabelSmoothingCrossEntropy",
]
