"""tlhelpers.optim: optimisers by name, warm-up + cosine and one-cycle schedules, gradual
unfreezing, and the learning-rate range test (notebook 06)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.models import SmallCNN, split_model
from tlhelpers.optim import (
    OPTIMIZERS,
    SCHEDULES,
    GradualUnfreezing,
    lr_find,
    make_optimizer,
    make_scheduler,
    schedule_factor,
)
from tlhelpers.training import fine_tune, fit

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ a problem with a known bound


def _regression(n=200, d=5, seed=0):
    """Linear regression with a known curvature: loss = mean (x.w - y)^2 has Hessian 2 X^T X / n."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * torch.linspace(0.5, 2.0, d)  # condition number ~16
    w_true = torch.randn(d, 1, generator=g)
    y = x @ w_true + 0.3 * torch.randn(n, 1, generator=g)  # noise: the loss floor is > 0
    hessian = 2 * x.T @ x / n
    top = float(torch.linalg.eigvalsh(hessian).max())
    return x, y, 2.0 / top  # full-batch gradient descent is stable iff lr < 2 / L


def _mse(model, x, y):
    return F.mse_loss(model(x), y)


def _linear(seed=0, d=5):
    torch.manual_seed(seed)
    m = nn.Linear(d, 1, bias=False)
    nn.init.zeros_(m.weight)
    return m


def _sgd(model):
    return torch.optim.SGD(model.parameters(), lr=1.0)  # the finder sets the rate


def test_lr_find_on_a_quadratic_suggests_a_rate_below_the_stability_bound():
    x, y, bound = _regression()
    model = _linear()
    res = lr_find(model, (x, y), objective=_mse, start_lr=1e-4, end_lr=100.0, steps=200,
                  batch_size=len(y), optimizer=_sgd)  # fmt: skip
    # it stopped because the loss diverged, past the bound, well before end_lr
    assert res.diverged
    assert bound < res.lrs[-1] < 100.0
    # the loss fell while lr < bound / 2 (gradient descent converges there)
    below = [loss for lr, loss in zip(res.lrs, res.losses, strict=True) if lr < bound / 2]
    assert below[-1] < 0.5 * below[0]
    # the rule: one tenth of the rate at the lowest smoothed loss, inside the stable range
    lowest = res.lrs[int(torch.tensor(res.losses).argmin())]
    assert res.suggestion == pytest.approx(lowest / 10)
    assert bound / 100 < res.suggestion < bound
    assert "minimum" in res.rule


def test_lr_find_does_not_report_divergence_inside_the_stable_range():
    x, y, bound = _regression()
    res = lr_find(_linear(), (x, y), objective=_mse, start_lr=1e-4, end_lr=bound / 4, steps=80,
                  batch_size=len(y), optimizer=_sgd)  # fmt: skip
    assert not res.diverged
    assert len(res.lrs) == 80
    assert res.lrs[0] == pytest.approx(1e-4) and res.lrs[-1] == pytest.approx(bound / 4)
    ratios = [b / a for a, b in zip(res.lrs, res.lrs[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # an exponential ramp


def test_lr_find_restores_weights_buffers_modes_flags_and_the_global_rng():
    torch.manual_seed(0)
    model = split_model(SmallCNN(num_classes=3, width=4))
    model.body.requires_grad_(False)
    model.train()
    model.body.eval()
    before = copy.deepcopy(model.state_dict())
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    x = torch.randn(24, 1, 28, 28)
    y = torch.arange(24) % 3
    rng = torch.get_rng_state()
    res = lr_find(model, (x, y), steps=20, batch_size=8, seed=3)
    assert len(res.lrs) > 1
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(torch.get_rng_state(), rng)


def test_lr_find_scales_every_group_and_keeps_their_ratio():
    x, y, _ = _regression()
    model = nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 1))
    seen = []

    def opt(m):
        o = torch.optim.SGD([{"params": m[0].parameters(), "lr": 0.1},
                             {"params": m[1].parameters(), "lr": 1.0}])  # fmt: skip
        seen.append(o)
        return o

    res = lr_find(model, (x, y), objective=_mse, start_lr=1e-5, end_lr=1e-3, steps=10,
                  batch_size=50, optimizer=opt)  # fmt: skip
    groups = seen[0].param_groups
    assert groups[1]["lr"] == pytest.approx(res.lrs[-1])
    assert groups[0]["lr"] == pytest.approx(0.1 * res.lrs[-1])


def test_lr_find_reads_the_loss_on_eval_data_when_given():
    x, y, _ = _regression()
    xv, yv, _ = _regression(seed=1)
    res = lr_find(_linear(), (x, y), objective=_mse, eval_data=(xv, yv), start_lr=1e-3,
                  end_lr=1e-2, steps=5, batch_size=len(y), optimizer=_sgd, smooth=0.0)  # fmt: skip
    # with smooth=0 the first recorded loss is the validation loss after one step at lr 1e-3
    m = _linear()
    torch.optim.SGD(m.parameters(), lr=1e-3)
    m.zero_grad()
    _mse(m, x, y).backward()
    with torch.no_grad():
        m.weight -= 1e-3 * m.weight.grad
        expected = float(_mse(m, xv, yv))
    assert res.raw_losses[0] == pytest.approx(expected, rel=1e-5)
    assert res.losses[0] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"start_lr": 0.0}, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.1}, "end_lr"),
        ({"steps": 1}, "steps"),
        ({"smooth": 1.0}, "smooth"),
        ({"diverge": 1.0}, "diverge"),
    ],
)
def test_lr_find_refuses_bad_arguments(kwargs, match):
    x, y, _ = _regression()
    with pytest.raises(ValueError, match=match):
        lr_find(_linear(), (x, y), objective=_mse, **kwargs)


# ------------------------------------------------------------------ optimisers by name


@pytest.mark.parametrize(
    ("name", "cls", "momentum", "decoupled"),
    [
        ("sgd", torch.optim.SGD, 0.0, False),
        ("sgd_momentum", torch.optim.SGD, 0.9, False),
        ("adam", torch.optim.Adam, None, False),
        ("adamw", torch.optim.AdamW, None, True),
    ],
)
def test_make_optimizer_builds_the_named_optimizer_with_groups(name, cls, momentum, decoupled):
    model = split_model(SmallCNN(num_classes=3, width=4))
    opt = make_optimizer(name, model, {"body": 1e-3, "head": 1e-2}, weight_decay=0.01)
    assert type(opt) is cls
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"body": 1e-3, "head": 1e-2}
    assert all(g["weight_decay"] == 0.01 for g in opt.param_groups)
    if momentum is not None:
        assert opt.param_groups[0]["momentum"] == momentum
    assert set(OPTIMIZERS) == {"sgd", "sgd_momentum", "adam", "adamw"}


def test_make_optimizer_sgd_step_is_w_minus_lr_grad():
    model = _linear()
    model.weight.data.fill_(1.0)
    opt = make_optimizer("sgd", model, 0.5)
    model.weight.grad = torch.full_like(model.weight, 2.0)
    opt.step()
    assert torch.allclose(model.weight, torch.zeros_like(model.weight))


def test_make_optimizer_refuses_unknown_names_and_frozen_models():
    model = _linear()
    with pytest.raises(ValueError, match="optimizer.*'lion'"):
        make_optimizer("lion", model, 0.1)
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        make_optimizer("adam", model, 0.1)


# ------------------------------------------------------------------ schedules


def test_warmup_cosine_rises_linearly_then_follows_half_a_cosine_to_zero():
    total, warm = 100, 10
    f = [schedule_factor("warmup_cosine", s, total, warmup=0.1) for s in range(total)]
    assert f[0] == pytest.approx(1 / warm)
    assert f[warm - 1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(f[:warm], f[1:warm], strict=False))
    for s in (warm, 40, 75, total - 1):
        t = (s - warm + 1) / (total - warm)
        assert f[s] == pytest.approx(0.5 * (1 + math.cos(math.pi * t)))
    assert f[-1] == pytest.approx(0.0, abs=1e-12)


def test_one_cycle_matches_torchs_one_cycle_lr():
    total, max_lr = 50, 0.1
    p = nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([p], lr=max_lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=max_lr, total_steps=total,
                                              pct_start=0.3, cycle_momentum=False)  # fmt: skip
    expected = []
    for _ in range(total):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    ours = [max_lr * schedule_factor("one_cycle", s, total) for s in range(total)]
    assert ours == pytest.approx(expected, rel=1e-9)


def test_make_scheduler_keeps_the_ratio_of_discriminative_rates():
    model = split_model(SmallCNN(num_classes=3, width=4))
    opt = make_optimizer("adam", model, {"body": 1e-3, "head": 1e-2})
    sched = make_scheduler(opt, "warmup_cosine", total_steps=20, warmup=0.25)
    for _ in range(7):
        opt.step()
        sched.step()
    body, head = (g["lr"] for g in opt.param_groups)
    assert head / body == pytest.approx(10.0)
    assert head == pytest.approx(1e-2 * schedule_factor("warmup_cosine", 7, 20, warmup=0.25))
    constant = make_scheduler(opt, "constant", total_steps=20)
    assert constant is None
    assert set(SCHEDULES) == {"constant", "warmup_cosine", "one_cycle"}


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("cosine", 0, 10), "schedule"),
        (("warmup_cosine", 10, 10), "step"),
        (("warmup_cosine", -1, 10), "step"),
        (("warmup_cosine", 0, 0), "total"),
    ],
)
def test_schedule_factor_refuses_bad_arguments(args, match):
    with pytest.raises(ValueError, match=match):
        schedule_factor(*args)


def test_schedule_factor_refuses_a_warmup_outside_0_1():
    with pytest.raises(ValueError, match="warmup"):
        schedule_factor("warmup_cosine", 0, 10, warmup=1.0)


# ------------------------------------------------------------------ gradual unfreezing


def _blocks_model():
    torch.manual_seed(0)
    return split_model(SmallCNN(num_classes=3, width=4))


GROUPS = ["head", "body.0.block3", "body.0.block2", "body.0.block1"]


def test_gradual_unfreezing_starts_with_the_top_group_and_adds_one_every_n_steps():
    model = _blocks_model()
    unfreeze = GradualUnfreezing(model, GROUPS, every=3)

    def trainable():
        return {n.rsplit(".", 2)[0] for n, p in model.named_parameters() if p.requires_grad}

    assert unfreeze.n_unfrozen == 1
    assert all(not p.requires_grad for n, p in model.named_parameters() if n.startswith("body."))
    for step in (1, 2):
        unfreeze(step)
    assert unfreeze.n_unfrozen == 1
    unfreeze(3)
    assert unfreeze.n_unfrozen == 2
    assert any(n.startswith("body.0.block3") for n in trainable())
    assert not any(n.startswith("body.0.block2") for n in trainable())
    unfreeze(9)
    assert unfreeze.n_unfrozen == 4
    assert all(p.requires_grad for p in model.parameters())


def test_gradual_unfreezing_in_fit_leaves_lower_blocks_unchanged_until_their_turn():
    model = _blocks_model()
    before = copy.deepcopy(model.state_dict())
    x, y = torch.randn(12, 1, 28, 28), torch.arange(12) % 3
    unfreeze = GradualUnfreezing(model, GROUPS, every=2)
    opt = make_optimizer("adam", model, {"body": 1e-2, "head": 1e-2}, include_frozen=True)
    fine_tune(model, (x, y), steps=3, optimizer=opt, on_step=unfreeze, seed=0)
    after = model.state_dict()
    changed = lambda prefix: any(  # noqa: E731
        not torch.equal(before[k], after[k])
        for k in before
        if k.startswith(prefix) and "weight" in k
    )
    assert changed("head") and changed("body.0.block3")  # block3 unfrozen after step 2
    assert not changed("body.0.block2") and not changed("body.0.block1")


def test_gradual_unfreezing_refuses_unknown_groups_and_bad_every():
    model = _blocks_model()
    with pytest.raises(ValueError, match="body.0.block9"):
        GradualUnfreezing(model, ["head", "body.0.block9"], every=2)
    with pytest.raises(ValueError, match="every"):
        GradualUnfreezing(model, GROUPS, every=0)
    with pytest.raises(ValueError, match="groups"):
        GradualUnfreezing(model, [], every=2)


def test_fit_calls_on_step_after_every_optimizer_step():
    x, y = torch.randn(20, 2), torch.arange(20) % 2
    calls = []
    fit(nn.Linear(2, 2), (x, y), epochs=2, batch_size=8, progress=False, seed=0,
        on_step=calls.append)  # fmt: skip
    assert calls == [1, 2, 3, 4, 5, 6]  # 3 batches per epoch
