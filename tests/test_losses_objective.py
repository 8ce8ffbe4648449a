"""Tests of tlhelpers.losses.TransferObjective with a tiny SplitModel-like module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.losses import (
    L2SP,
    TRANSFER_METHODS,
    BatchSpectralShrinkage,
    ContextTerm,
    FeatureMapDistance,
    TermContext,
    TransferObjective,
    bss,
    make_objective,
)
from tlhelpers.models import SmallCNN, transfer_model


class TinySplit(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@pytest.fixture
def setup():
    torch.manual_seed(0)
    model = TinySplit()
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    return model, x, y


def test_total_is_sum_of_logged_terms(setup):
    model, x, y = setup
    reg = L2SP(model, alpha=0.1, beta=0.01)
    fmd = FeatureMapDistance(model, ["body.0"])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05)
    obj = TransferObjective(
        terms={
            "l2sp": (2.0, reg),
            "bss": (1e-3, BatchSpectralShrinkage(k=1)),
            "delta": (0.5, fmd),
            "feat_norm": (0.1, ContextTerm(lambda f: f.pow(2).mean(), "features")),
            "custom": (3.0, lambda ctx: ctx.logits.abs().mean()),
        }
    )
    out = obj(model, x, y)
    assert list(out) == ["total", "task", "l2sp", "bss", "delta", "feat_norm", "custom"]
    # Independent recomputation of each entry.
    feats = model.body(x)
    logits = model.head(feats)
    assert out["task"].item() == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert out["l2sp"].item() == pytest.approx(2.0 * reg(model).item(), rel=1e-6)
    assert out["bss"].item() == pytest.approx(
        1e-3 * torch.linalg.svdvals(feats)[-1].item() ** 2, rel=1e-4
    )
    assert out["feat_norm"].item() == pytest.approx(0.1 * feats.pow(2).mean().item(), rel=1e-6)
    assert out["custom"].item() == pytest.approx(3.0 * logits.abs().mean().item(), rel=1e-6)
    assert out["delta"].item() > 0
    parts = sum(v for k, v in out.items() if k != "total")
    assert out["total"].item() == pytest.approx(parts.item(), rel=1e-6)
    out["total"].backward()
    assert model.body[0].weight.grad is not None


def test_set_weight_and_plain_model(setup):
    model, x, y = setup
    plain = nn.Sequential(nn.Linear(5, 3))
    obj = TransferObjective(
        terms={"l2": (1.0, ContextTerm(lambda m: sum(p.sum() for p in m.parameters()), "model"))}
    )
    out = obj(plain, x, y)
    assert out["task"].item() == pytest.approx(F.cross_entropy(plain(x), y).item())
    obj.set_weight("l2", 0.0)
    assert obj(plain, x, y)["l2"].item() == 0.0
    with pytest.raises(ValueError, match="Valid values: 'l2'"):
        obj.set_weight("l3", 1.0)
    # A features term on a model without body/head is a clear error.
    obj2 = TransferObjective(terms={"bss": (1.0, ContextTerm(bss, "features"))})
    with pytest.raises(ValueError, match=r"ctx.features.*\.body/\.head"):
        obj2(plain, x, y)


def test_custom_task_loss_and_context(setup):
    model, x, y = setup
    seen: list[TermContext] = []

    def spy(ctx: TermContext) -> torch.Tensor:
        seen.append(ctx)
        return ctx.logits.sum() * 0

    obj = TransferObjective(task_loss=lambda z, t: z.mean(), terms={"spy": (1.0, spy)})
    out = obj(model, x, y)
    assert out["task"].item() == pytest.approx(model(x).mean().item(), rel=1e-6)
    ctx = seen[0]
    assert ctx.model is model and ctx.inputs is x and ctx.targets is y
    assert ctx.features.shape == (16, 8) and ctx.logits.shape == (16, 3)


def test_objective_bad_terms(setup):
    model, x, y = setup
    with pytest.raises(ValueError, match="reserved"):
        TransferObjective(terms={"total": (1.0, lambda c: c.logits.sum())})
    with pytest.raises(ValueError, match=r"\(weight, term\)"):
        TransferObjective(terms={"a": BatchSpectralShrinkage()})
    with pytest.raises(ValueError, match="Valid values"):
        ContextTerm(bss, "feature")
    obj = TransferObjective(terms={"vec": (1.0, lambda c: c.logits.sum(0))})
    with pytest.raises(ValueError, match=r"scalar tensor, got \(3,\)"):
        obj(model, x, y)


def test_frozen_copies_do_not_inherit_hooks(setup):
    from tlhelpers.losses import LwF

    model, x, y = setup
    fmd = FeatureMapDistance(model, ["body.0"])
    lwf = LwF.from_source(model)  # copies taken after fmd hooked the student
    assert not lwf.teacher.body[0]._forward_hooks
    assert not lwf.old_head._forward_hooks
    obj = TransferObjective(terms={"lwf": (1.0, lwf), "delta": (1.0, fmd)})
    model.old_head = lwf.old_head
    with torch.no_grad():
        model.body[0].weight.add_(0.1)
    out = obj(model, x, y)
    # The teacher's forward (run first) must not overwrite the student's activations.
    with torch.no_grad():
        expected = 0.5 * ((model.body[0](x) - fmd.source.body[0](x)) ** 2).sum(1).mean()
    assert out["delta"].item() == pytest.approx(expected.item(), rel=1e-5)
    obj.double()
    assert fmd.source.body[0].weight.dtype == torch.float64


def test_make_objective_refuses_unknown_method_and_lwf_without_source():
    torch.manual_seed(0)
    source = SmallCNN(num_classes=5, width=4).eval()
    model = transfer_model(source, 5)
    with pytest.raises(ValueError, match="l2sp"):
        make_objective("l3sp", model)
    with pytest.raises(ValueError, match="source"):
        make_objective("lwf", model)


def test_make_objective_builds_one_named_term_per_method():
    torch.manual_seed(0)
    source = SmallCNN(num_classes=5, width=4).eval()
    for method in TRANSFER_METHODS:
        model = transfer_model(source, 5)
        obj = make_objective(method, model, source=source)
        expected = [] if method == "none" else [method]
        assert list(obj.weights) == expected, method
        if method == "delta":
            obj.terms["delta"].fn.remove()


def test_distillation_student_copies_no_source_parameter_and_learns_the_source_outputs():
    from tlhelpers.losses import make_distillation_objective
    from tlhelpers.models import scratch_model
    from tlhelpers.training import fine_tune

    torch.manual_seed(0)
    source = SmallCNN(num_classes=4, width=4).eval()
    student = scratch_model(3, width=4, seed=1)
    obj = make_distillation_objective(student, source, strength=1.0, seed=2)
    aux = student.aux_head
    assert (aux.in_features, aux.out_features) == (16, 4)  # student features -> source classes
    # nothing of the source is copied into the student (LwF would copy the old head); random
    # tensors only (BatchNorm starts at ones and zeros in every network)
    source_values = [p.detach() for p in source.parameters() if p.unique().numel() > 1]
    student_values = [p.detach() for p in student.parameters() if p.unique().numel() > 1]
    assert len(student_values) == 7  # three convolutions, the head and the auxiliary head
    for p in student_values:
        assert not any(p.shape == q.shape and torch.equal(p, q) for q in source_values)
    # the auxiliary head is seeded: the same seed, the same head; another seed, another head
    again = make_distillation_objective(scratch_model(3, width=4, seed=1), source, seed=2)
    other = make_distillation_objective(scratch_model(3, width=4, seed=1), source, seed=3)
    w = [o.terms["distill"].fn.old_head.weight for o in (obj, again, other)]
    assert torch.equal(w[0], w[1]) and not torch.equal(w[0], w[2])
    x, y = torch.rand(12, 1, 12, 12), torch.randint(0, 3, (12,))
    before = aux.weight.detach().clone()
    hist = fine_tune(student, (x, y), objective=obj, steps=40, lr=1e-2, batchnorm="train")
    assert not torch.equal(aux.weight, before)  # the optimiser trains the auxiliary head
    assert hist["train/distill"][-1] < 0.5 * hist["train/distill"][0]
    assert set(hist.keys()) >= {"train/task", "train/distill", "train/total"}


def test_distillation_objective_refuses_a_negative_strength_and_a_non_linear_head():
    from tlhelpers.losses import make_distillation_objective
    from tlhelpers.models import SplitModel, scratch_model

    source = SmallCNN(num_classes=4, width=4)
    with pytest.raises(ValueError, match="strength"):
        make_distillation_objective(scratch_model(3, width=4), source, strength=-1.0)
    odd = SplitModel(nn.Flatten(), nn.Sequential(nn.Linear(144, 3)))
    with pytest.raises(TypeError, match="nn.Linear"):
        make_distillation_objective(odd, source)


@pytest.mark.parametrize("old", ["finetune", "source_only"])
def test_an_old_method_name_is_refused_with_the_new_name(old):
    """No added term has one name, ``"none"``, in fine-tuning and in domain adaptation."""
    from tlhelpers.losses import ADAPTATION_METHODS, DomainAdaptationObjective

    assert TRANSFER_METHODS[0] == ADAPTATION_METHODS[0] == "none"
    model = transfer_model(SmallCNN(num_classes=5, width=4).eval(), 5)
    with pytest.raises(ValueError, match=f"method '{old}': it is now called 'none'. Valid values"):
        make_objective(old, model)
    with pytest.raises(ValueError, match=f"method '{old}': it is now called 'none'. Valid values"):
        DomainAdaptationObjective(old, torch.rand(4, 1, 8, 8), steps=5)
    with pytest.raises(ValueError, match="Unknown method 'l3'. Valid values: 'none', 'l2'"):
        make_objective("l3", model)
