"""Target-task losses for recognition by embedding (cross-type transfer, e.g. faces).

Used directly and through :mod:`tlhelpers.embedding`; tested against
pytorch-metric-learning and ``torch.nn.TripletMarginLoss``.

Margin softmax losses (ArcFace, CosFace) learn class centres on the unit sphere;
triplet losses compare distances between embeddings directly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlhelpers.losses._utils import (
    REDUCTIONS,
    check_2d,
    check_labels,
    check_same_dtype,
    check_same_shape,
    reduce,
)
from tlhelpers.losses._utils import check_finite as _check_finite
from tlhelpers.validation import check_choice, check_int, check_positive

__all__ = [
    "TRIPLET_REDUCTIONS",
    "arcface_loss",
    "ArcFaceLoss",
    "cosface_loss",
    "CosFaceLoss",
    "triplet_loss",
    "TripletLoss",
    "batch_hard_triplet_loss",
    "BatchHardTripletLoss",
]

#: Reductions accepted by the triplet losses.
TRIPLET_REDUCTIONS: tuple[str, ...] = ("mean", "mean_nonzero", "sum", "none")


# --------------------------------------------------------------------------- margin softmax


def _cosine(embeddings: Tensor, weight: Tensor) -> Tensor:
    """(N, C) cosines between embeddings (N, E) and class weights (C, E)."""
    return F.normalize(embeddings, dim=1) @ F.normalize(weight, dim=1).T


def _check_margin_inputs(
    embeddings: Tensor,
    labels: Tensor,
    weight: Tensor,
    margin: float,
    scale: float,
    reduction: str,
    check_finite: bool,
) -> None:
    check_positive("margin", margin, strict=False)
    check_positive("scale", scale)
    check_choice("reduction", reduction, REDUCTIONS)
    check_2d("embeddings", embeddings)
    check_2d("weight", weight)
    check_same_dtype("embeddings", embeddings, "weight", weight)
    if check_finite:
        _check_finite("embeddings", embeddings)
        _check_finite("weight", weight)
    if embeddings.shape[1] != weight.shape[1]:
        raise ValueError(
            f"embeddings (N, E) and weight (num_classes, E) must share E, got shapes "
            f"{tuple(embeddings.shape)} and {tuple(weight.shape)}."
        )
    check_labels("labels", labels, embeddings.shape[0], weight.shape[0])


def _margin_ce(
    cos: Tensor, target_logit: Tensor, labels: Tensor, scale: float, reduction: str
) -> Tensor:
    """Replace the target cosine by ``target_logit``, scale, cross-entropy."""
    one_hot = F.one_hot(labels, cos.shape[1]).to(cos.dtype)
    logits = scale * (cos + one_hot * (target_logit - cos.gather(1, labels[:, None])))
    return reduce(F.cross_entropy(logits, labels, reduction="none"), reduction)


def arcface_loss(
    embeddings: Tensor,
    labels: Tensor,
    weight: Tensor,
    margin: float = 0.5,
    scale: float = 64.0,
    reduction: str = "mean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""ArcFace (additive angular margin) loss; see :class:`ArcFaceLoss` for the formula.

    Args:
        embeddings: (N, E). labels: (N,) in [0, C). weight: class weights (C, E).
        margin: additive angle in **radians**. scale: ``s``.
        reduction: "mean", "sum" or "none".
        check_finite: refuse NaN/inf embeddings or weights with a ``ValueError`` naming
            the argument. Default True: one NaN embedding would otherwise give a silent NaN
            loss. It costs a reduction and a device sync; pass False inside a training loop
            that already stops on a non-finite loss (``tlhelpers.training.fit`` does).
    """
    _check_margin_inputs(embeddings, labels, weight, margin, scale, reduction, check_finite)
    cos = _cosine(embeddings, weight)
    cos_t = cos.gather(1, labels[:, None]).clamp(-1.0, 1.0)
    # cos(theta + m) by the addition formula; the floor under 1 - cos^2 keeps the sqrt's
    # gradient finite when an embedding sits exactly on its class centre.
    sin_t = (1.0 - cos_t * cos_t).clamp_min(1e-12).sqrt()
    target = torch.where(
        cos_t >= -math.cos(margin),  # theta <= pi - m
        cos_t * math.cos(margin) - sin_t * math.sin(margin),
        cos_t - margin * math.sin(margin),  # keeps the target logit decreasing in theta
    )
    return _margin_ce(cos, target, labels, scale, reduction)


def cosface_loss(
    embeddings: Tensor,
    labels: Tensor,
    weight: Tensor,
    margin: float = 0.35,
    scale: float = 64.0,
    reduction: str = "mean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""CosFace (additive cosine margin) loss; see :class:`CosFaceLoss` for the formula.

    ``check_finite`` as in :func:`arcface_loss` (default True).
    """
    _check_margin_inputs(embeddings, labels, weight, margin, scale, reduction, check_finite)
    cos = _cosine(embeddings, weight)
    return _margin_ce(cos, cos.gather(1, labels[:, None]) - margin, labels, scale, reduction)


class _MetricLoss(nn.Module):
    """Shared base of the metric-learning losses: a Module over its functional twin.

    Subclasses set ``_loss`` (the functional form), ``default_margin`` and
    ``reductions``; ``margin`` and ``reduction`` are checked here, at construction, and
    ``forward(*inputs)`` calls ``_loss(*inputs, **self.hparams())``.
    """

    _loss: Callable[..., Tensor]
    default_margin: float | None = None
    reductions: tuple[str, ...] = REDUCTIONS
    #: whether ``margin=None`` is meaningful (batch-hard's soft margin)
    soft_margin: bool = False

    def __init__(self, margin: float | None, reduction: str, check_finite: bool = True) -> None:
        super().__init__()
        self.check_finite = check_finite
        if margin is not None or not self.soft_margin:
            check_positive("margin", margin, strict=False)
        self.margin = margin
        self.reduction = check_choice("reduction", reduction, self.reductions)

    def hparams(self) -> dict[str, Any]:
        """Keyword arguments passed to the functional form."""
        return {"margin": self.margin, "reduction": self.reduction}

    def forward(self, *inputs: Any, **kwargs: Any) -> Tensor:
        return type(self)._loss(*inputs, **kwargs, **self.hparams(), check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())


class _MarginLoss(_MetricLoss):
    """Margin softmax (ArcFace, CosFace): learnable class centres ``weight`` (C, E).

    ``margin=None`` takes the subclass's paper default.
    """

    def __init__(
        self,
        num_classes: int,
        embedding_size: int,
        margin: float | None = None,
        scale: float = 64.0,
        reduction: str = "mean",
        check_finite: bool = True,
    ) -> None:
        margin = self.default_margin if margin is None else margin
        super().__init__(margin, reduction, check_finite)
        self.num_classes = check_int("num_classes", num_classes, minimum=1)
        self.embedding_size = check_int("embedding_size", embedding_size, minimum=1)
        self.scale = check_positive("scale", scale)
        self.weight = nn.Parameter(torch.empty(num_classes, embedding_size))
        nn.init.xavier_normal_(self.weight)

    def hparams(self) -> dict[str, Any]:
        return {"margin": self.margin, "scale": self.scale, "reduction": self.reduction}

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        return type(self)._loss(
            embeddings, labels, self.weight, **self.hparams(), check_finite=self.check_finite
        )

    def cosine(self, embeddings: Tensor) -> Tensor:
        """(N, C) cosine similarities to the class weights, no margin (use to predict)."""
        check_2d("embeddings", embeddings)
        return _cosine(embeddings, self.weight)

    def logits(self, embeddings: Tensor) -> Tensor:
        """``scale * cosine``: the logits without margin, e.g. for accuracy at test time."""
        return self.scale * self.cosine(embeddings)

    def extra_repr(self) -> str:
        return (
            f"num_classes={self.num_classes}, embedding_size={self.embedding_size}, "
            + super().extra_repr()
        )


class ArcFaceLoss(_MarginLoss):
    r"""ArcFace: additive angular margin on the target class, then scaled cross-entropy.

    .. math::
        \ell_i = -\log \frac{e^{s\,\psi(\theta_{y_i})}}{e^{s\,\psi(\theta_{y_i})}
        + \sum_{c \ne y_i} e^{s \cos\theta_c}},\qquad
        \cos\theta_c = \frac{W_c^\top x_i}{\|W_c\|\,\|x_i\|}

    with :math:`\psi(\theta) = \cos(\theta + m)` if :math:`\theta \le \pi - m`, else
    :math:`\cos\theta - m \sin m` (so the target logit keeps decreasing past
    :math:`\pi - m`; same fallback as pytorch-metric-learning). Deng, Guo, Xue, Zafeiriou,
    "ArcFace: Additive Angular Margin Loss for Deep Face Recognition", CVPR 2019
    (m = 0.5 rad, s = 64).

    Conventions: ``margin`` is in **radians** (pytorch-metric-learning's ``ArcFaceLoss``
    takes degrees: 28.6 deg = 0.5 rad); ``weight`` has shape (num_classes, embedding_size)
    like ``nn.Linear`` (PML's ``W`` is the transpose). Large ``s`` and ``m`` on small data
    tend to plateau; a separate, higher learning rate for ``weight`` is common.

    Args:
        num_classes: C. embedding_size: E.
        margin: m in radians (default 0.5; ``None`` = default). scale: s (default 64).
        reduction: "mean" (default, as PML), "sum" or "none".

    Shape:
        - Input: embeddings (N, E), labels (N,) in [0, C).
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    _loss = staticmethod(arcface_loss)
    default_margin = 0.5


class CosFaceLoss(_MarginLoss):
    r"""CosFace (large margin cosine loss): subtract m from the target cosine, scale, CE.

    .. math::
        \ell_i = -\log \frac{e^{s(\cos\theta_{y_i} - m)}}{e^{s(\cos\theta_{y_i} - m)}
        + \sum_{c \ne y_i} e^{s \cos\theta_c}}

    Wang, Wang, Zhou, Ji, Gong, Zhou, Li, Liu, "CosFace: Large Margin Cosine Loss for Deep
    Face Recognition", CVPR 2018 (m = 0.35, s = 64). Same margin/weight convention as
    pytorch-metric-learning's ``CosFaceLoss`` apart from ``weight`` being (C, E).

    Args:
        num_classes: C. embedding_size: E.
        margin: m (default 0.35; ``None`` = default). scale: s (default 64).
        reduction: "mean" (default), "sum" or "none".

    Shape:
        - Input: embeddings (N, E), labels (N,) in [0, C).
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    _loss = staticmethod(cosface_loss)
    default_margin = 0.35


# --------------------------------------------------------------------------- triplets


def _reduce_triplets(losses: Tensor, reduction: str) -> Tensor:
    check_choice("reduction", reduction, TRIPLET_REDUCTIONS)
    if reduction == "mean_nonzero":
        nonzero = losses > 0
        # Zero (with gradient link) when every triplet already satisfies the margin.
        return losses[nonzero].mean() if bool(nonzero.any()) else losses.sum() * 0.0
    return reduce(losses, reduction)


def triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    margin: float = 1.0,
    normalize: bool = False,
    reduction: str = "mean",
    p: float = 2.0,
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Triplet margin loss on given (anchor, positive, negative) triplets.

    .. math:: \ell_i = \max\big(0,\; d(a_i, p_i) - d(a_i, n_i) + \text{margin}\big)

    Schroff, Kalenichenko, Philbin, "FaceNet", CVPR 2015 (they use squared distances; here
    ``d`` is the plain p-norm distance ``||x - y + 1e-6||_p`` exactly like
    ``torch.nn.functional.pairwise_distance``). Defaults (margin 1.0, no normalisation,
    mean over *all* triplets) are torch's ``TripletMarginLoss`` convention;
    pytorch-metric-learning's ``TripletMarginLoss`` corresponds to ``margin=0.05,
    normalize=True, reduction="mean_nonzero"``.

    Args:
        anchor, positive, negative: (N, E) embeddings.
        margin: >= 0.
        normalize: L2-normalise embeddings first (distances then lie in [0, 2]).
        reduction: "mean", "mean_nonzero" (mean over triplets with a positive loss, 0 if
            none), "sum" or "none" (shape (N,)).
        p: norm degree.
        check_finite: refuse NaN/inf embeddings (default True; see :func:`arcface_loss`).
    """
    check_2d("anchor", anchor)
    check_same_shape("anchor", anchor, "positive", positive)
    check_same_shape("anchor", anchor, "negative", negative)
    if check_finite:
        for name, t in (("anchor", anchor), ("positive", positive), ("negative", negative)):
            _check_finite(name, t)
    check_positive("margin", margin, strict=False)
    check_choice("reduction", reduction, TRIPLET_REDUCTIONS)
    if normalize:
        anchor, positive, negative = (F.normalize(t, dim=1) for t in (anchor, positive, negative))
    d_ap = F.pairwise_distance(anchor, positive, p=p)
    d_an = F.pairwise_distance(anchor, negative, p=p)
    return _reduce_triplets(F.relu(d_ap - d_an + margin), reduction)


class TripletLoss(_MetricLoss):
    """Module form of :func:`triplet_loss` (torch's convention by default).

    Args:
        margin: >= 0 (default 1.0). normalize: L2-normalise first. reduction: "mean",
            "mean_nonzero", "sum" or "none". p: norm degree.

    Shape:
        - Input: anchor, positive, negative, each (N, E).
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    _loss = staticmethod(triplet_loss)
    reductions = TRIPLET_REDUCTIONS

    def __init__(
        self,
        margin: float = 1.0,
        normalize: bool = False,
        reduction: str = "mean",
        p: float = 2.0,
        check_finite: bool = True,
    ) -> None:
        super().__init__(margin, reduction, check_finite)
        self.normalize = normalize
        self.p = p

    def hparams(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "normalize": self.normalize,
            "reduction": self.reduction,
            "p": self.p,
        }


def batch_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float | None = 0.2,
    normalize: bool = False,
    reduction: str = "mean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Batch-hard triplet loss: hardest positive and hardest negative per anchor.

    .. math::
        \ell_a = \max\big(0,\; \max_{p: y_p = y_a, p \ne a} d(a, p)
        - \min_{n: y_n \ne y_a} d(a, n) + \text{margin}\big)

    Hermans, Beyer, Leibe, "In Defense of the Triplet Loss for Person Re-Identification",
    arXiv 2017. ``d`` is the (non-squared) Euclidean distance, as the paper recommends.
    ``margin=None`` gives the paper's soft margin :math:`\log(1 + e^{d_{ap} - d_{an}})`.
    Anchors without any positive or any negative in the batch are skipped: they count
    neither in the sum nor in the mean (the loss is 0 if no anchor is valid).

    Args:
        embeddings: (N, E). labels: (N,) integer identities.
        margin: hinge margin (>= 0), or ``None`` for the soft margin.
        normalize: L2-normalise embeddings first.
        reduction: "mean", "mean_nonzero", "sum" or "none" (shape (N_valid,)).
        check_finite: refuse NaN/inf embeddings (default True; see :func:`arcface_loss`).
    """
    check_2d("embeddings", embeddings)
    check_labels("labels", labels, embeddings.shape[0])
    if check_finite:
        _check_finite("embeddings", embeddings)
    if margin is not None:
        check_positive("margin", margin, strict=False)
    check_choice("reduction", reduction, TRIPLET_REDUCTIONS)
    if normalize:
        embeddings = F.normalize(embeddings, dim=1)
    # Exact differences (no Gram-matrix cancellation); cdist's backward is 0 where d = 0.
    dist = torch.cdist(embeddings, embeddings, compute_mode="donot_use_mm_for_euclid_dist")
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    pos_mask, neg_mask = same & ~eye, ~same
    valid = pos_mask.any(1) & neg_mask.any(1)
    hardest_pos = dist.masked_fill(~pos_mask, float("-inf")).amax(1)
    hardest_neg = dist.masked_fill(~neg_mask, float("inf")).amin(1)
    diff = (hardest_pos - hardest_neg)[valid]
    losses = F.softplus(diff) if margin is None else F.relu(diff + margin)
    if losses.numel() == 0:
        return embeddings.sum() * 0.0 if reduction != "none" else losses
    return _reduce_triplets(losses, reduction)


class BatchHardTripletLoss(_MetricLoss):
    """Module form of :func:`batch_hard_triplet_loss` (Hermans et al. 2017).

    Args:
        margin: hinge margin (>= 0, default 0.2) or ``None`` for the soft margin.
        normalize: L2-normalise first. reduction: "mean", "mean_nonzero", "sum" or "none".

    Shape:
        - Input: embeddings (N, E), labels (N,).
        - Output: scalar, or (N_valid,) with ``reduction="none"``.
    """

    _loss = staticmethod(batch_hard_triplet_loss)
    reductions = TRIPLET_REDUCTIONS
    soft_margin = True

    def __init__(
        self,
        margin: float | None = 0.2,
        normalize: bool = False,
        reduction: str = "mean",
        check_finite: bool = True,
    ) -> None:
        super().__init__(margin, reduction, check_finite)
        self.normalize = normalize

    def hparams(self) -> dict[str, Any]:
        return {"margin": self.margin, "normalize": self.normalize, "reduction": self.reduction}
