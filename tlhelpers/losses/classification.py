"""Classification losses for the target task: focal loss and label smoothing.

Reserved for a chapter on imbalanced or small targets (the generated tables of ARCHITECTURE.md
say which notebooks import it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlhelpers.losses._utils import REDUCTIONS, check_labels, check_tensor, reduce
from tlhelpers.losses._utils import check_finite as _check_finite
from tlhelpers.validation import check_choice, check_positive

__all__ = [
    "FocalLoss",
    "focal_loss",
    "LabelSmoothingCrossEntropy",
    "label_smoothing_cross_entropy",
]


def _check_logits_targets(
    logits: Tensor, targets: Tensor, check_finite: bool
) -> tuple[Tensor, Tensor]:
    logits = check_tensor("logits", logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, C), got shape {tuple(logits.shape)}.")
    targets = check_labels("targets", targets, logits.shape[0], logits.shape[1])
    if check_finite:
        _check_finite("logits", logits)
    return logits, targets


def focal_loss(
    logits: Tensor,
    targets: Tensor,
    gamma: float = 2.0,
    alpha: Tensor | Sequence[float] | None = None,
    reduction: str = "mean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Multi-class (softmax) focal loss.

    .. math::
        \mathrm{FL}_i = -\alpha_{y_i}\,(1 - p_{i,y_i})^{\gamma}\,\log p_{i,y_i},
        \qquad p_i = \mathrm{softmax}(z_i)

    Lin, Goyal, Girshick, He, Dollar, "Focal Loss for Dense Object Detection", ICCV 2017.
    The paper states the binary (sigmoid) form with a scalar ``alpha`` for the positive
    class; this is the usual softmax generalisation, where ``alpha`` is an optional
    per-class weight vector (``None`` means all ones). With ``gamma=0`` and ``alpha=None``
    it equals :func:`torch.nn.functional.cross_entropy`.

    Args:
        logits: raw scores, shape (N, C).
        targets: class indices, shape (N,), integers in [0, C).
        gamma: focusing parameter (>= 0); larger down-weights well-classified samples more.
        alpha: optional per-class weights, shape (C,).
        reduction: "mean" (plain mean over the N samples, *not* divided by the sum of the
            ``alpha`` weights as ``cross_entropy(weight=...)`` does), "sum" or "none"
            (returns shape (N,)).
        check_finite: refuse NaN/inf logits with a ``ValueError`` (default True: a NaN
            logit would otherwise give a silent NaN loss). It costs a reduction and a
            device sync; pass False inside a training loop that already stops on a
            non-finite loss (``tlhelpers.training.fit`` does).

    Returns:
        Scalar tensor, or shape (N,) with ``reduction="none"``.
    """
    logits, targets = _check_logits_targets(logits, targets, check_finite)
    check_positive("gamma", gamma, strict=False)
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    p = log_p.exp()
    # p rounds to exactly 1 for confident logits; the floor keeps d/dp (1-p)^gamma finite
    # for gamma < 1 (no NaN gradient), and gamma = 0 must give exactly 1.
    one_minus_p = (1.0 - p).clamp_min(torch.finfo(p.dtype).tiny)
    modulating = one_minus_p.pow(gamma) if gamma != 0 else torch.ones_like(p)
    loss = -modulating * log_p
    if alpha is not None:
        alpha_t = torch.as_tensor(alpha, dtype=logits.dtype, device=logits.device)
        if alpha_t.shape != (logits.shape[1],):
            raise ValueError(
                f"alpha must have shape ({logits.shape[1]},) to match logits of shape "
                f"{tuple(logits.shape)}, got shape {tuple(alpha_t.shape)}."
            )
        loss = alpha_t[targets] * loss
    return reduce(loss, reduction)


class FocalLoss(nn.Module):
    """Module form of :func:`focal_loss` (Lin et al., ICCV 2017); see it for the formula.

    Args:
        gamma: focusing parameter (>= 0), default 2.0 as in the paper.
        alpha: optional per-class weights of shape (C,), stored as a buffer.
        reduction: "mean", "sum" or "none".

    Shape:
        - Input: logits (N, C), targets (N,) integer class indices.
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: Tensor | Sequence[float] | None = None,
        reduction: str = "mean",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.check_finite = check_finite
        self.gamma = check_positive("gamma", gamma, strict=False)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.alpha: Tensor | None
        self.register_buffer(
            "alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float32)
        )

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return focal_loss(
            logits, targets, self.gamma, self.alpha, self.reduction,
            check_finite=self.check_finite,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


def _check_smoothing(smoothing: float) -> float:
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)):
        raise ValueError(f"smoothing must be a number in [0, 1), got {smoothing!r}.")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}.")
    return float(smoothing)


def label_smoothing_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    smoothing: float = 0.1,
    reduction: str = "mean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Cross-entropy against label-smoothed targets (thin wrapper of torch's built-in).

    .. math::
        q_{ic} = (1 - \varepsilon)\,[c = y_i] + \varepsilon / C,\qquad
        \ell_i = -\sum_c q_{ic} \log \mathrm{softmax}(z_i)_c

    Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016. The mass
    ``eps`` is spread over *all* C classes, the true one included; this is the
    convention of ``torch.nn.CrossEntropyLoss(label_smoothing=eps)``, which does the
    work here. The wrapper only exists to give the formula a name.

    Args:
        logits: (N, C) raw scores. targets: (N,) class indices.
        smoothing: ``eps`` in [0, 1).
        reduction: "mean", "sum" or "none" (shape (N,)).
        check_finite: refuse NaN/inf logits (default True; see :func:`focal_loss`).
    """
    logits, targets = _check_logits_targets(logits, targets, check_finite)
    _check_smoothing(smoothing)
    losses = F.cross_entropy(logits, targets, label_smoothing=smoothing, reduction="none")
    return reduce(losses, reduction)


class LabelSmoothingCrossEntropy(nn.Module):
    """Module form of :func:`label_smoothing_cross_entropy` (torch convention, eps over all C).

    Args:
        smoothing: ``eps`` in [0, 1).
        reduction: "mean", "sum" or "none".

    Shape:
        - Input: logits (N, C), targets (N,) integer class indices.
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    def __init__(
        self, smoothing: float = 0.1, reduction: str = "mean", check_finite: bool = True
    ) -> None:
        super().__init__()
        self.smoothing = _check_smoothing(smoothing)
        self.reduction = check_choice("reduction", reduction, REDUCTIONS)
        self.check_finite = check_finite

    def forward(self, logits: Tensor, targets: Tensor) -> Tensor:
        return label_smoothing_cross_entropy(
            logits, targets, self.smoothing, self.reduction, check_finite=self.check_finite
        )

    def extra_repr(self) -> str:
        return f"smoothing={self.smoothing}, reduction={self.reduction!r}"
