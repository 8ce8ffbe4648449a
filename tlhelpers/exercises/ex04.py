"""Exercises of notebook 04 (same-type transfer): layers to freeze, distillation, a few-shot challenge.

``from tlhelpers.exercises import ex04``; ``ex04.freeze.check(freeze_all_but_top)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import distillation_loss
from ..models import SmallCNN, load_backbone, split_model
from ._challenge import FewShotChallenge
from ._core import Exercise, Wrong, call_student, close, diagnose, off_by, tensor

__all__ = [
    "BLOCKS",
    "CHALLENGE",
    "challenge",
    "challenge_data",
    "distill",
    "freeze",
]

BLOCKS = ("block1", "block2", "block3")


def _trainable_prefixes(k: int) -> tuple[str, ...]:
    return tuple(f"body.0.{b}." for b in BLOCKS[len(BLOCKS) - k :]) + ("head.",)


def _check_freeze(fn, hidden: bool) -> str:
    ks = (1, 0, 3) if not hidden else (2, 1)
    for k in ks:
        torch.manual_seed(k)
        model = split_model(SmallCNN(num_classes=3, width=4))
        out = call_student(fn, model, k, name="freeze_all_but_top")
        if out is not None and out is not model:
            raise Wrong(
                "freeze the model in place and return nothing (or the same model), "
                f"got a {type(out).__name__}."
            )
        train = _trainable_prefixes(k)
        for name, p in model.named_parameters():
            should = name.startswith(train)
            if p.requires_grad and not should:
                raise Wrong(
                    f"with k={k}, `{name}` should be frozen (only the top {k} block(s) and "
                    "the head train) but it has requires_grad=True, so it still gets gradients."
                )
            if not p.requires_grad and should:
                what = (
                    "the new head must always train"
                    if name.startswith("head.")
                    else (f"it is in the top {k} block(s)")
                )
                raise Wrong(f"with k={k}, `{name}` is frozen but {what}.")
        x, y = torch.rand(4, 1, 28, 28), torch.arange(4) % 3
        F.cross_entropy(model(x), y).backward()
        for name, p in model.named_parameters():
            got = p.grad is not None and bool(p.grad.abs().sum() > 0)
            if name.startswith(train) and not got:
                raise Wrong(
                    f"with k={k}, no gradient reached `{name}`: did you detach or replace it?"
                )
            if not name.startswith(train) and p.grad is not None:
                raise Wrong(f"with k={k}, the frozen layer `{name}` still gets gradients.")
    return "The top k blocks and the head train; everything below is frozen and gets no gradient."


freeze = Exercise(
    id="ex04_freeze",
    title="Choose the layers to freeze (top-k fine-tuning)",
    minutes=10,
    checker=_check_freeze,
    answer_name="freeze_all_but_top",
    hints=[
        "A frozen parameter has requires_grad=False: the optimiser never sees a gradient for it.",
        "model.body[0] holds block1, block2, block3 (bottom to top); model.head is the new head. "
        "Freeze everything first, then unfreeze the top k blocks and the head.",
        "model.requires_grad_(False); then for each name in ['block1', 'block2', 'block3'][3 - k:]: "
        "getattr(model.body[0], name).requires_grad_(True); finally model.head.requires_grad_(True).",
    ],
    solution_code="""
    def freeze_all_but_top(model, k):
        model.requires_grad_(False)
        blocks = ["block1", "block2", "block3"]
        for name in blocks[len(blocks) - k:]:
            getattr(model.body[0], name).requires_grad_(True)
        model.head.requires_grad_(True)
    """,
)


def _check_distill(fn, hidden: bool) -> str:
    cases = [(6, 5, 2.0), (3, 4, 1.0)] if not hidden else [(5, 3, 4.0), (2, 6, 0.5)]
    for i, (n, c, temp) in enumerate(cases):
        g = torch.Generator().manual_seed(20 + i + (50 if hidden else 0))
        s = (2 * torch.randn(n, c, generator=g)).requires_grad_(True)
        t = (2 * torch.randn(n, c, generator=g)).requires_grad_(True)
        out = call_student(fn, s, t, temp, name="distillation_loss")
        if out is None:
            raise Wrong("`distillation_loss` returned None: did you forget `return`?")
        out = tensor(out, "the loss", device="cpu")
        if out.ndim != 0:
            raise Wrong(
                f"the loss should be a 0-D tensor (mean over the batch), got shape {tuple(out.shape)}."
            )
        sd, td = s.detach(), t.detach()
        want = distillation_loss(sd, td, temp).item()
        got = out.item()
        if not close(got, want, rtol=1e-4):
            kl = lambda a, b: (a.softmax(1) * (a.log_softmax(1) - b.log_softmax(1))).sum(1)  # noqa: E731
            variants = [
                (
                    want / temp**2,
                    f"your loss is T^2 = {temp**2:g} times too small: Hinton's loss "
                    "multiplies the KL by T^2 so the gradients keep their scale.",
                ),
                (
                    temp**2 * kl(sd / temp, td / temp).mean(),
                    "the KL is the wrong way round: it is "
                    "KL(teacher || student) = sum p_teacher (log p_teacher - log p_student).",
                ),
                (want * n, "you summed over the batch; take the mean over the N samples."),
                (
                    want / c,
                    "you averaged over the classes too; sum over classes, mean over samples.",
                ),
                (
                    temp**2 * kl(td, sd).mean(),
                    "the temperature is missing inside the softmaxes: divide both logits by T.",
                ),
                (
                    temp**2 * (-(td / temp).softmax(1) * (sd / temp).log_softmax(1)).sum(1).mean(),
                    "that is the soft cross-entropy; subtract the teacher's entropy (use the KL) so the "
                    "loss is 0 when student and teacher agree.",
                ),
            ]
            raise Wrong(
                diagnose(got, variants, f"for N={n}, C={c}, T={temp:g}: {off_by(got, want)}.")
            )
        if not out.requires_grad:
            raise Wrong(
                "the loss has no gradient with respect to the student's logits (.detach()?)."
            )
        out.backward()
        if s.grad is None:
            raise Wrong("no gradient reached the student's logits.")
        if t.grad is not None and t.grad.abs().sum() > 0:
            raise Wrong(
                "gradient reached the teacher's logits: the teacher is fixed, use "
                "teacher_logits.detach() inside the loss."
            )
    return "Hinton's T^2 KL(teacher || student), batch mean, teacher fixed."


distill = Exercise(
    id="ex04_distill",
    title="The distillation loss",
    minutes=15,
    checker=_check_distill,
    answer_name="distillation_loss",
    hints=[
        "Soften both distributions with the temperature: softmax(logits / T).",
        "KL(p_teacher || p_student) = sum_c p_teacher (log p_teacher - log p_student); use "
        "log_softmax for the logs. The teacher is fixed: detach its logits.",
        "log_s = F.log_softmax(s / T, 1); log_t = F.log_softmax(t.detach() / T, 1); "
        "return T**2 * (log_t.exp() * (log_t - log_s)).sum(1).mean()",
    ],
    solution_code="""
    def distillation_loss(student_logits, teacher_logits, T):
        log_s = F.log_softmax(student_logits / T, dim=1)
        log_t = F.log_softmax(teacher_logits.detach() / T, dim=1)
        return T**2 * (log_t.exp() * (log_t - log_s)).sum(dim=1).mean()
    """,
)

# ----------------------------------------------------------------------- the open challenge


def _source() -> tuple:
    return (load_backbone("small_cnn", source="fmnist_mixed_a").eval(),)


#: The challenge: fmnist_mixed_b at 5 labels per class, notebook 04's source.
CHALLENGE = FewShotChallenge("fmnist_mixed_b", per_class=5, answer_name="train_few_shot",
                             extras=_source, budget_s=30.0, val_seed=7, test_seed=2026)  # fmt: skip


def challenge_data() -> tuple:
    """``(train, source)``: the 25 labelled images and the source model the student gets."""
    return CHALLENGE.data()


challenge = Exercise(
    id="ex04_challenge",
    title="Open challenge: beat scratch at 5 labels per class in 30 s",
    minutes=40,
    checker=CHALLENGE.check,
    answer_name="train_few_shot",
    hints=[
        "You have a source trained on related classes: start from its weights, not from random ones.",
        "transfer_model(source, 5, seed=0) gives a copy with a new 5-way head; a named recipe "
        "(get_recipe('fine_tune')) trains it in a few seconds.",
        "model = transfer_model(source, 5, seed=0); get_recipe('fine_tune').fit(model, train, seed=0); "
        "return model.eval()",
    ],
    solution_code="""
    def train_few_shot(train, source):
        model = transfer_model(source, 5, seed=0)
        get_recipe("fine_tune").fit(model, train, seed=0)
        return model.eval()
    """,
)
