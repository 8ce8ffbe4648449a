"""Reliability, losses and scores: non-finite inputs are refused by default,
mixed dtypes and string weights get a clear error, L2-SP refuses a mapping that ties no
parameter, and LogME does not depend on the scale of the features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tlhelpers.losses import (
    L2,
    L2SP,
    ArcFaceLoss,
    CORALLoss,
    DistillationLoss,
    FocalLoss,
    MMDLoss,
    TransferObjective,
    arcface_loss,
    batch_hard_triplet_loss,
    bss,
    coral,
    cosface_loss,
    distillation_loss,
    focal_loss,
    l2,
    l2sp,
    label_smoothing_cross_entropy,
    mmd2,
    triplet_loss,
)
from tlhelpers.models import SmallCNN, replace_head
from tlhelpers.transferability import logme

pytestmark = pytest.mark.usefixtures("one_thread")

N, D, C = 6, 4, 3


def _x(seed=0, bad=None):
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(seed))
    if bad is not None:
        x[1, 2] = bad
    return x


LABELS = torch.arange(N) % C
WEIGHT = torch.randn(C, D, generator=torch.Generator().manual_seed(9))

# name -> (call with a possibly bad first input, the argument name the error must give)
CALLS = {
    "mmd2": (lambda x, **k: mmd2(x, _x(1), **k), "x"),
    "coral": (lambda x, **k: coral(x, _x(1), **k), "source"),
    "arcface": (lambda x, **k: arcface_loss(x, LABELS, WEIGHT, **k), "embeddings"),
    "cosface": (lambda x, **k: cosface_loss(x, LABELS, WEIGHT, **k), "embeddings"),
    "distillation": (lambda x, **k: distillation_loss(x[:, :C], _x(1)[:, :C], **k),
                     "student_logits"),
    "focal": (lambda x, **k: focal_loss(x[:, :C], LABELS, **k), "logits"),
    "label_smoothing": (lambda x, **k: label_smoothing_cross_entropy(x[:, :C], LABELS, **k),
                        "logits"),
    "triplet": (lambda x, **k: triplet_loss(x, _x(1), _x(2), **k), "anchor"),
    "batch_hard_triplet": (lambda x, **k: batch_hard_triplet_loss(x, LABELS, **k), "embeddings"),
    "bss": (lambda x, **k: bss(x, **k), "features"),
}  # fmt: skip


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
@pytest.mark.parametrize("name", list(CALLS))
def test_losses_refuse_non_finite_input_by_default(name, bad):
    call, arg = CALLS[name]
    assert torch.isfinite(call(_x())).all()  # finite input: fine
    with pytest.raises(ValueError, match=rf"{arg}.*(NaN or inf|non-finite)"):
        call(_x(bad=bad))


@pytest.mark.parametrize("name", [n for n in CALLS if n != "bss"])  # svd raises on NaN itself
def test_the_finite_check_can_be_switched_off(name):
    call, _ = CALLS[name]
    out = call(_x(bad=math.nan), check_finite=False)  # the caller opted out: NaN through
    assert not torch.isfinite(out).all()


def test_regularisers_refuse_non_finite_parameters():
    model = replace_head(SmallCNN(num_classes=5, width=4), 3)
    state = {k: v.detach().clone() for k, v in model.named_parameters()}
    with torch.no_grad():
        model.body[0].block1[0].weight[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match=r"block1\.0\.weight.*(NaN or inf|non-finite)"):
        l2sp(model, state)
    with pytest.raises(ValueError, match=r"block1\.0\.weight.*(NaN or inf|non-finite)"):
        l2(model)
    assert not torch.isfinite(l2(model, check_finite=False))


def test_module_losses_forward_the_finite_check():
    x = _x(bad=math.nan)
    for loss, args in [
        (MMDLoss(), (x, _x(1))),
        (CORALLoss(), (x, _x(1))),
        (DistillationLoss(), (x[:, :C], _x(1)[:, :C])),
        (FocalLoss(), (x[:, :C], LABELS)),
        (ArcFaceLoss(C, D), (x, LABELS)),
    ]:
        with pytest.raises(ValueError, match="NaN or inf|non-finite"):
            loss(*args)


@pytest.mark.parametrize("temperature", [math.inf, math.nan])
def test_distillation_refuses_an_infinite_temperature(temperature):
    s, t = _x()[:, :C], _x(1)[:, :C]
    with pytest.raises(ValueError, match=r"temperature.*(inf|nan)"):
        distillation_loss(s, t, temperature=temperature)
    with pytest.raises(ValueError, match=r"temperature.*(inf|nan)"):
        DistillationLoss(temperature=temperature)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, b: mmd2(a, b),
        lambda a, b: coral(a, b),
        lambda a, b: distillation_loss(a, b),
        lambda a, b: triplet_loss(a, b, b),
        lambda a, b: arcface_loss(a, LABELS, b[:C]),
    ],
    ids=["mmd2", "coral", "distillation", "triplet", "arcface"],
)
def test_mixed_float_dtypes_get_a_clear_error(call):
    a, b = _x().double(), _x(1)
    with pytest.raises(ValueError, match=r"float64.*float32|float32.*float64"):
        call(a, b)


@pytest.mark.parametrize("weight", ["0.1", None, math.inf, True])
def test_term_weight_must_be_a_finite_number(weight):
    with pytest.raises(ValueError, match=r"weight.*'l2'|'l2'.*weight"):
        TransferObjective(terms={"l2": (weight, L2())})
    objective = TransferObjective(terms={"l2": (0.1, L2())})
    with pytest.raises(ValueError, match=r"weight.*'l2'|'l2'.*weight"):
        objective.set_weight("l2", weight)


def test_l2sp_refuses_a_source_state_that_ties_no_parameter():
    source = SmallCNN(num_classes=5, width=4)
    model = replace_head(source, 3)
    # the source model's own state_dict: names lack the SplitModel's "body.0." prefix
    with pytest.raises(ValueError, match=r"ties no parameter.*features\.block1\.0\.weight"):
        L2SP(model, source_state=source.state_dict())
    with pytest.raises(ValueError, match="ties no parameter"):
        l2sp(model, source.state_dict())


def test_l2sp_reports_how_many_parameters_it_ties():
    model = replace_head(SmallCNN(num_classes=5, width=4), 3)
    reg = L2SP(model)
    weights = [n for n, p in model.named_parameters() if p.ndim >= 2 and not n.startswith("head.")]
    assert reg.n_transferred == len(weights) == 3
    assert sorted(reg.transferred_names) == sorted(weights)
    assert "n_transferred=3" in repr(reg)


# ------------------------------------------------------------------ LogME scale


def _features(n=60, d=8, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    f = rng.normal(size=(n, d))
    f[:, 0] += y
    return f, y


@pytest.mark.parametrize("scale", [1e-10, 1e-100, 1e200])
@pytest.mark.parametrize("n, d", [(60, 8), (20, 50)], ids=["n>D", "n<D"])
def test_logme_does_not_depend_on_the_feature_scale(n, d, scale):
    f, y = _features(n, d)
    ref = logme(f, y)
    with np.errstate(
        over="raise", invalid="raise", divide="raise"
    ):  # no overflow/underflow on the way either
        got = logme(f * scale, y)
    assert got == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_logme_scaled_matches_the_unit_scale_reference():
    # A naive start moves -0.624 at scale 1 to -0.870 at 1e-10 (the iteration starts so
    # far off that it runs to alpha -> infinity); the scaled values must match scale 1.
    f, y = _features()
    values = [logme(f * s, y) for s in (1.0, 1e-10, 1e-100, 1e200)]
    assert max(values) - min(values) < 1e-9
    assert values[0] > -0.86  # not the "features ignored" value -0.8696 (alpha -> inf)
