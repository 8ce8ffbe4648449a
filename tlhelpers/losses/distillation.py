"""Knowledge transfer losses: Hinton distillation and Learning without Forgetting (LwF)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlhelpers.losses._utils import check_finite as _check_finite
from tlhelpers.losses._utils import check_same_dtype, check_tensor, frozen_copy, hookless_copy
from tlhelpers.models import split_model
from tlhelpers.validation import check_choice, check_positive

__all__ = ["DISTILLATION_REDUCTIONS", "distillation_loss", "DistillationLoss", "LwF"]

#: Reductions accepted by :func:`distillation_loss`.
DISTILLATION_REDUCTIONS: tuple[str, ...] = ("batchmean", "mean", "sum", "none")


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float = 2.0,
    reduction: str = "batchmean",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Knowledge-distillation loss with Hinton's :math:`T^2` scaling.

    .. math::
        \ell_i = T^2\,\mathrm{KL}\big(\mathrm{softmax}(t_i/T)\,\|\,\mathrm{softmax}(s_i/T)\big)
        = T^2 \sum_c p^T_{ic}\,(\log p^T_{ic} - \log p^S_{ic})

    Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", NIPS Deep
    Learning Workshop 2015. The :math:`T^2` factor keeps the gradient scale independent of
    ``T`` (the paper's recommendation); TLlib's ``KnowledgeDistillationLoss`` omits it, so
    its values are :math:`T^2` times smaller. KL differs from the soft cross-entropy
    :math:`-\sum_c p^T \log p^S` only by the teacher entropy (constant for the student),
    so the gradients are the same, but KL is 0 when student == teacher.

    The teacher logits are *not* detached: compute them under ``torch.no_grad()`` (or
    ``.detach()``) for a fixed teacher.

    Args:
        student_logits: (N, C) raw scores of the student.
        teacher_logits: (N, C) raw scores of the teacher.
        temperature: ``T > 0``.
        reduction: "batchmean" (sum over classes, mean over samples: the true mean KL),
            "mean" (same as "batchmean" here; unlike ``torch.nn.KLDivLoss`` it does *not*
            also divide by C), "sum", or "none" (per-sample, shape (N,)).
        check_finite: refuse NaN/inf logits with a ``ValueError`` naming the argument.
            Default True: a NaN logit would otherwise give a silent NaN loss. It costs a
            reduction and a device sync; pass False inside a training loop that already
            stops on a non-finite loss (``fit`` does).

    Returns:
        Scalar tensor, or (N,) with ``reduction="none"``.
    """
    check_choice("reduction", reduction, DISTILLATION_REDUCTIONS)
    check_positive("temperature", temperature)
    student_logits = check_tensor("student_logits", student_logits)
    teacher_logits = check_tensor("teacher_logits", teacher_logits)
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            "student_logits and teacher_logits must both be 2-D (N, C) with the same shape, "
            f"got {tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}."
        )
    check_same_dtype("student_logits", student_logits, "teacher_logits", teacher_logits)
    if check_finite:
        _check_finite("student_logits", student_logits)
        _check_finite("teacher_logits", teacher_logits)
    log_ps = F.log_softmax(student_logits / temperature, dim=1)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=1)
    per_sample = (log_pt.exp() * (log_pt - log_ps)).sum(1) * temperature**2
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean()


class DistillationLoss(nn.Module):
    """Module form of :func:`distillation_loss` (Hinton et al. 2015, with the T^2 factor).

    Args:
        temperature: softmax temperature ``T``, default 2.0.
        reduction: "batchmean" (default), "mean", "sum" or "none".

    Shape:
        - Input: student_logits (N, C), teacher_logits (N, C).
        - Output: scalar, or (N,) with ``reduction="none"``.
    """

    def __init__(
        self, temperature: float = 2.0, reduction: str = "batchmean", check_finite: bool = True
    ) -> None:
        super().__init__()
        self.temperature = check_positive("temperature", temperature)
        self.reduction = check_choice("reduction", reduction, DISTILLATION_REDUCTIONS)
        self.check_finite = check_finite

    def forward(self, student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
        return distillation_loss(
            student_logits, teacher_logits, self.temperature, self.reduction,
            check_finite=self.check_finite,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, reduction={self.reduction!r}"


class LwF(nn.Module):
    r"""Learning without Forgetting term: keep the old task's outputs while learning a new one.

    .. math::
        \Omega = T^2\,\frac1N \sum_i \mathrm{KL}\big(\mathrm{softmax}(y^{o}_i/T)\,\|\,
        \mathrm{softmax}(\hat y^{o}_i/T)\big)

    where :math:`y^o_i` = frozen ``teacher(x_i)`` (the source model with its *old* head,
    computed under ``no_grad``) and :math:`\hat y^o_i` = ``old_head(features_i)`` on the
    student's current features. Li & Hoiem, "Learning without Forgetting", ECCV 2016
    (T = 2 as in the paper). Convention: the paper uses the soft cross-entropy without
    :math:`T^2`; this term uses :func:`distillation_loss` (KL, with :math:`T^2`), which has
    the same gradient times :math:`T^2` -- use weight ``1/T**2`` to reproduce the paper's
    ``lambda_o = 1``.

    Used as a :class:`~tlhelpers.losses.TransferObjective` term (it reads ``ctx.inputs``
    and ``ctx.features``), so the student must be a body/head model. The ``old_head`` is
    trainable and must reach the optimiser. With ``fit``'s default optimiser (the model's
    parameters) the simplest is to attach it to the model: ``model.old_head =
    lwf.old_head`` (shared, not copied); otherwise add ``lwf.old_head.parameters()``.

    Args:
        teacher: source model mapping inputs to old-task logits (deep-copied, frozen, eval
            mode; pass ``copy_teacher=False`` to keep a reference, still frozen).
        old_head: module mapping student features (N, D) to old-task logits (N, C_old),
            usually a copy of the source head.
        temperature: distillation temperature ``T``.

    Shape:
        - Input: inputs (any batch the teacher accepts), features (N, D).
        - Output: scalar.
    """

    #: Fields of :class:`~tlhelpers.losses.TermContext` passed to ``forward``.
    term_inputs: tuple[str, ...] = ("inputs", "features")

    def __init__(
        self,
        teacher: nn.Module,
        old_head: nn.Module,
        temperature: float = 2.0,
        copy_teacher: bool = True,
    ) -> None:
        super().__init__()
        if copy_teacher:
            self.teacher = frozen_copy(teacher)
        else:
            self.teacher = teacher.requires_grad_(False).eval()
        self.old_head = old_head
        self.temperature = check_positive("temperature", temperature)

    @classmethod
    def from_source(cls, source_model: nn.Module, temperature: float = 2.0) -> LwF:
        """Build from a source classifier: teacher = frozen copy, old_head = copy of its
        final linear layer (trainable). Any kit backbone works (``split_model`` finds the
        head of MobileNetV2, ResNet and SmallCNN). Call it *before* replacing the head."""
        head = getattr(source_model, "head", None)
        try:
            head = head if isinstance(head, nn.Module) else split_model(source_model).head
        except TypeError as err:
            raise ValueError(
                "source_model must be a kit backbone or have .body/.head (a SplitModel)."
            ) from err
        return cls(source_model, hookless_copy(head), temperature)

    def train(self, mode: bool = True) -> LwF:
        # The teacher stays in eval mode: its BN/dropout must not change.
        super().train(mode)
        self.teacher.eval()
        return self

    def forward(self, inputs: Tensor, features: Tensor) -> Tensor:
        with torch.no_grad():
            teacher_logits = self.teacher(inputs)
        return distillation_loss(self.old_head(features), teacher_logits, self.temperature)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
