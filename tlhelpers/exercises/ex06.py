"""Exercises of notebook 06 (optimisers): a warm-up + cosine schedule, per-layer rates, the
learning-rate range test by hand, and an open challenge (SGD only, 30 steps).

``from tlhelpers.exercises import ex06``; ``ex06.schedule.check(warmup_cosine_rates)``.
Every answer is compared with an independent computation: PyTorch's own schedulers
(``SequentialLR`` of ``LinearLR`` and ``CosineAnnealingLR``), one step of the kit's
:func:`tlhelpers.optim.make_optimizer`, and :func:`tlhelpers.optim.lr_find`.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data import load_task, train_val_test
from ..models import SmallCNN, load_backbone, split_model, transfer_model
from ..optim import lr_find, make_optimizer
from ..training import evaluate
from ._core import Exercise, Wrong, call_student, close, diagnose, number, off_by, tensor

__all__ = [
    "schedule",
    "groups",
    "range_test",
    "challenge",
    "torch_warmup_cosine",
    "range_reference",
    "challenge_data",
]


def _vector(value, what: str, n: int | None = None) -> torch.Tensor:
    """A 1-D float64 tensor from a list/tuple/array/tensor of numbers, else :class:`Wrong`."""
    if isinstance(value, (list, tuple)):
        value = torch.tensor(
            [number(v, f"each entry of {what}") for v in value], dtype=torch.float64
        )
    elif not isinstance(value, (np.ndarray, torch.Tensor)):
        raise Wrong(f"{what} should be a list of numbers, got a {type(value).__name__}.")
    out = tensor(value, what, device="cpu", allow_numpy=True)
    if out.ndim != 1:
        raise Wrong(
            f"{what} should be a flat list (one number per step), got shape {tuple(out.shape)}."
        )
    if n is not None and out.numel() != n:
        raise Wrong(f"{what} should have {n} entries (one per optimiser step), got {out.numel()}.")
    return out.detach().double()


# ----------------------------------------------------------------------- 1. the schedule


def torch_warmup_cosine(peak: float, total: int, warmup: int) -> list[float]:
    """The rate PyTorch uses at each of ``total`` steps: ``SequentialLR`` of ``LinearLR``
    (``peak / W`` up to ``peak`` over ``W`` steps) and ``CosineAnnealingLR`` (down to 0)."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=peak)
    with warnings.catch_warnings():  # SequentialLR's internal step(epoch) warns on some versions
        warnings.simplefilter("ignore")
        sched = torch.optim.lr_scheduler.SequentialLR(
            opt,
            [
                torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, total_iters=warmup - 1),
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup),
            ],
            milestones=[warmup - 1],
        )
        rates = []
        for _ in range(total):
            rates.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
    return rates


def _schedule_variants(peak: float, total: int, w: int):
    s = torch.arange(total, dtype=torch.float64)
    cos = lambda num, den: 0.5 * (1 + torch.cos(math.pi * num / den))  # noqa: E731
    right_cos = cos(s - w + 1, total - w)
    return [
        (
            torch.where(s < w, peak * s / w, peak * right_cos),
            "your warm-up starts at 0: a step at rate 0 is wasted. Step s of the warm-up "
            "uses peak * (s + 1) / W, so the first step uses peak / W and step W - 1 the peak.",
        ),
        (
            torch.where(s < w, peak * (s + 1) / w, peak * cos(s - w, total - w)),
            "the peak appears twice (steps W - 1 and W) and the last step is not 0: "
            "the cosine starts at step W - 1, so step s uses cos(pi * (s - W + 1) / (T - W)).",
        ),
        (
            torch.where(s < w, peak * (s + 1) / w, peak * cos(s, total)),
            "your cosine runs over all T steps from step 0: it starts where the warm-up ends, "
            "cos(pi * (s - W + 1) / (T - W)).",
        ),
        (
            peak * cos(s, total - 1),
            "there is no warm-up: the first W steps rise linearly to the peak.",
        ),
        (
            torch.where(s < w, (s + 1) / w, right_cos),
            "these are the factors of the schedule: multiply them by the peak rate.",
        ),
    ]


def _check_schedule(fn, hidden: bool) -> str:
    cases = (
        [(0.1, 20, 4), (0.003, 50, 5)]
        if not hidden
        else [(1.0, 12, 3), (0.01, 100, 10), (0.5, 7, 2)]
    )
    for peak, total, w in cases:
        out = call_student(fn, peak, total, w, name="warmup_cosine_rates")
        if out is None:
            raise Wrong("`warmup_cosine_rates` returned None: return the list of rates.")
        got = _vector(out, "the rates", total)
        want = torch.tensor(torch_warmup_cosine(peak, total, w), dtype=torch.float64)
        if not close(got, want, rtol=1e-6, atol=1e-12):
            where = f"(peak={peak:g}, total={total}, warmup={w})"
            i = int((got - want).abs().argmax())
            default = f"step {i} uses {got[i].item():.6g}, PyTorch's schedulers use {want[i].item():.6g} {where}."
            raise Wrong(diagnose(got, _schedule_variants(peak, total, w), default) + f" {where}")
    return "The same rates as PyTorch's SequentialLR(LinearLR, CosineAnnealingLR), step by step."


schedule = Exercise(
    id="ex06_schedule",
    title="Warm-up + cosine, rate by rate",
    minutes=10,
    checker=_check_schedule,
    answer_name="warmup_cosine_rates",
    hints=[
        "Two pieces: steps 0 .. W-1 rise linearly, steps W .. T-1 follow half a cosine. "
        "Write the rate of one step s, then loop over s in range(total).",
        "Warm-up: peak * (s + 1) / W (step W - 1 is at the peak). Cosine: "
        "peak * 0.5 * (1 + cos(pi * (s - W + 1) / (T - W))), which is 0 at s = T - 1.",
        "return [peak * (s + 1) / warmup if s < warmup else "
        "peak * 0.5 * (1 + math.cos(math.pi * (s - warmup + 1) / (total - warmup))) for s in range(total)]",
    ],
    solution_code="""
    import math


    def warmup_cosine_rates(peak, total, warmup):
        rates = []
        for s in range(total):
            if s < warmup:
                rates.append(peak * (s + 1) / warmup)
            else:
                rates.append(peak * 0.5 * (1 + math.cos(math.pi * (s - warmup + 1) / (total - warmup))))
        return rates
    """,
)

# ----------------------------------------------------------------------- 2. per-layer rates

#: The blocks of the kit's SmallCNN, top first: the head, then block3, block2, block1.
LAYERS = ("head", "body.0.block3", "body.0.block2", "body.0.block1")


def _layer_of(name: str) -> int:
    for k, prefix in enumerate(LAYERS):
        if name == prefix or name.startswith(prefix + "."):
            return k
    raise KeyError(name)


def _groups_model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return split_model(SmallCNN(num_classes=3, width=4))


def _check_groups(fn, hidden: bool) -> str:
    cases = [(0, 1e-2, 2.6), (1, 3e-3, 10.0)] if not hidden else [(2, 0.1, 2.0), (3, 1e-3, 3.0)]
    for seed, lr, decay in cases:
        model = _groups_model(seed)
        start = copy.deepcopy(model)
        opt = call_student(fn, model, lr, decay, name="layerwise_optimizer")
        if opt is None:
            raise Wrong("`layerwise_optimizer` returned None: return the optimiser.")
        if isinstance(opt, (list, tuple, dict)):
            raise Wrong(
                f"`layerwise_optimizer` should return the optimiser, got a {type(opt).__name__}: "
                "pass your parameter groups to torch.optim.Adam(groups)."
            )
        if not isinstance(opt, torch.optim.Adam) or isinstance(opt, torch.optim.AdamW):
            raise Wrong(f"the task asks for torch.optim.Adam, got a {type(opt).__name__}.")
        rate_of: dict[int, float] = {}
        for g in opt.param_groups:
            for p in g["params"]:
                rate_of[id(p)] = float(g["lr"])
        names = dict(model.named_parameters())
        mine = {id(p) for p in names.values()}
        if any(k not in mine for k in rate_of):
            raise Wrong(
                "your optimiser holds parameters that are not the model's: build it on `model` "
                "itself, not on a copy."
            )
        where = f"(lr={lr:g}, decay={decay:g})"
        for name, p in names.items():
            if id(p) not in rate_of:
                raise Wrong(f"`{name}` is in no parameter group: it would never train {where}.")
        depth = {name: _layer_of(name) for name in names}
        got = torch.tensor([rate_of[id(p)] for p in names.values()], dtype=torch.float64)
        want = torch.tensor([lr / decay ** depth[n] for n in names], dtype=torch.float64)
        if not close(got, want, rtol=1e-6, atol=0):
            top = len(LAYERS) - 1
            variants = [
                (torch.full_like(want, lr), "every layer got the same rate: give each layer its own group."),
                (torch.tensor([lr * decay ** depth[n] for n in names]),
                 "you multiplied by decay: the lower a layer, the *smaller* its rate (lr / decay**k)."),
                (torch.tensor([lr / decay ** (top - depth[n]) for n in names]),
                 "the order is reversed: the head gets lr, block3 lr / decay, ..., block1 lr / decay**3."),
                (torch.tensor([lr / decay ** (depth[n] + 1) for n in names]),
                 "every rate is one factor of decay too small: the head itself gets lr."),
            ]  # fmt: skip
            i = int((got - want).abs().argmax())
            name = list(names)[i]
            rule = "lr" if depth[name] == 0 else f"lr / decay**{depth[name]}"
            default = (
                f"`{name}` has rate {got[i].item():.6g}, expected {rule} = {want[i].item():.6g}."
            )
            raise Wrong(diagnose(got, variants, default) + f" {where}")
        # one step of the student's optimiser against the kit's, from the same weights and gradients
        ref_model = copy.deepcopy(start)
        ref = make_optimizer("adam", ref_model, {p: lr / decay**k for k, p in enumerate(LAYERS)})
        gen = torch.Generator().manual_seed(seed)
        x, y = torch.rand(6, 1, 28, 28, generator=gen), torch.arange(6) % 3
        for m, o in ((model, opt), (ref_model, ref)):
            m.train()
            o.zero_grad()
            F.cross_entropy(m(x), y).backward()
            call_student(o.step, name="your optimiser's step")
        for (name, p), q in zip(model.named_parameters(), ref_model.parameters(), strict=True):
            if not close(p.detach(), q.detach(), rtol=1e-5, atol=1e-7):
                raise Wrong(
                    f"after one step `{name}` differs from Adam with these rates {where}: keep Adam's "
                    "other settings at their defaults (betas, eps, no weight_decay)."
                )
    return "Each block has its own rate, lr / decay**depth, and one step matches the kit's make_optimizer."


groups = Exercise(
    id="ex06_groups",
    title="Per-layer rates as parameter groups",
    minutes=10,
    checker=_check_groups,
    answer_name="layerwise_optimizer",
    hints=[
        "A parameter group is a dict {'params': [...], 'lr': rate}; torch.optim.Adam(list_of_groups) "
        "gives each group its own rate.",
        "The four layers, top first: model.head, model.body[0].block3, .block2, .block1. "
        "The k-th of them (k = 0 for the head) gets lr / decay**k.",
        "layers = [model.head, model.body[0].block3, model.body[0].block2, model.body[0].block1]; "
        "return torch.optim.Adam([{'params': m.parameters(), 'lr': lr / decay**k} for k, m in enumerate(layers)])",
    ],
    solution_code="""
    def layerwise_optimizer(model, lr, decay):
        layers = [model.head, model.body[0].block3, model.body[0].block2, model.body[0].block1]
        return torch.optim.Adam(
            [{"params": layer.parameters(), "lr": lr / decay**k} for k, layer in enumerate(layers)]
        )
    """,
)

# ----------------------------------------------------------------------- 3. the range test


def _range_case(seed: int):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    return model, x, y


def range_reference(model, x, y, start_lr, end_lr, steps, *, linear=False, bias_correct=True,
                    smooth=True, stop=True, zero_grad=True, after=False):  # fmt: skip
    """The range test written out, with switches for the typical mistakes (the checker's
    diagnosis; with no switch it equals :func:`tlhelpers.optim.lr_find`, a test says so)."""
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=start_lr)
    lrs, losses, avg, best = [], [], 0.0, math.inf
    for i in range(steps):
        if linear:
            lr = start_lr + (end_lr - start_lr) * i / (steps - 1)
        else:
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
        opt.param_groups[0]["lr"] = lr
        loss = F.cross_entropy(m(x), y)
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
        value = F.cross_entropy(m(x), y).item() if after else loss.item()
        if not math.isfinite(value):
            break
        avg = 0.9 * avg + 0.1 * value
        s = (avg / (1 - 0.9 ** (i + 1)) if bias_correct else avg) if smooth else value
        lrs.append(lr)
        losses.append(s)
        best = min(best, s)
        if stop and s > 4 * best:
            break
    low = lrs[min(range(len(losses)), key=losses.__getitem__)]
    return lrs, losses, low / 10


def _check_range(fn, hidden: bool) -> str:
    cases = (
        [(0, 1e-3, 30.0, 40), (1, 1e-2, 100.0, 50)]
        if not hidden
        else [(2, 1e-4, 50.0, 60), (3, 1e-3, 200.0, 30)]
    )
    for seed, start_lr, end_lr, steps in cases:
        model, x, y = _range_case(seed)
        before = copy.deepcopy(model.state_dict())
        out = call_student(fn, model, x, y, start_lr, end_lr, steps, name="range_test")
        if out is None:
            raise Wrong("`range_test` returned None: return (lrs, losses, suggestion).")
        if not isinstance(out, tuple) or len(out) != 3:
            raise Wrong(
                f"`range_test` should return three things (lrs, losses, suggestion), got a {type(out).__name__}"
                + (f" of length {len(out)}" if isinstance(out, (tuple, list)) else "")
                + "."
            )
        if any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items()):
            raise Wrong(
                "your range test changed the model's weights: run it on copy.deepcopy(model) "
                "(the range test must leave the model as it found it)."
            )
        ref = lr_find(copy.deepcopy(model), (x, y), start_lr=start_lr, end_lr=end_lr, steps=steps,
                      batch_size=len(x))  # fmt: skip
        where = f"(start_lr={start_lr:g}, end_lr={end_lr:g}, steps={steps})"
        lrs = _vector(out[0], "lrs")
        losses = _vector(out[1], "losses", lrs.numel())
        want_lrs = torch.tensor(ref.lrs, dtype=torch.float64)
        n = min(lrs.numel(), want_lrs.numel())
        if not close(lrs[:n], want_lrs[:n], rtol=1e-6, atol=0):
            lin = torch.tensor(
                range_reference(model, x, y, start_lr, end_lr, steps, linear=True, stop=False)[0]
            )
            if close(lrs[:n], lin[:n], rtol=1e-6, atol=0):
                raise Wrong(
                    "your rates grow linearly: the range test grows them exponentially, "
                    f"start_lr * (end_lr / start_lr) ** (i / (steps - 1)) {where}."
                )
            i = int((lrs[:n] - want_lrs[:n]).abs().argmax())
            raise Wrong(
                f"rate {i} is {lrs[i].item():.6g}, expected {want_lrs[i].item():.6g} {where}."
            )
        want = torch.tensor(ref.losses, dtype=torch.float64)
        if not close(losses, want, rtol=1e-4, atol=1e-6):
            variants = [
                (
                    torch.tensor(
                        range_reference(model, x, y, start_lr, end_lr, steps, stop=False)[1]
                    ),
                    "you kept going after the smoothed loss passed 4x its best: stop there (the rest is divergence).",
                ),
                (
                    torch.tensor(
                        range_reference(model, x, y, start_lr, end_lr, steps, bias_correct=False)[1]
                    ),
                    "the smoothed losses lack the bias correction: divide the running average by "
                    "1 - 0.9 ** (i + 1) (otherwise the first values are far too small).",
                ),
                (
                    torch.tensor(
                        range_reference(model, x, y, start_lr, end_lr, steps, smooth=False)[1]
                    ),
                    "these are the raw losses: smooth them with the bias-corrected running average "
                    "(beta = 0.9) before reading the minimum.",
                ),
                (
                    torch.tensor(
                        range_reference(model, x, y, start_lr, end_lr, steps, after=True)[1]
                    ),
                    "you recorded the loss after the step: record the loss of the batch before it "
                    "(the one you backpropagate).",
                ),
                (
                    torch.tensor(
                        range_reference(model, x, y, start_lr, end_lr, steps, zero_grad=False)[1]
                    ),
                    "the gradients pile up from step to step: call zero_grad() before each backward().",
                ),
            ]
            if lrs.numel() != want.numel():
                default = (
                    f"you recorded {lrs.numel()} steps, the range test stops after {want.numel()} "
                    f"(the first smoothed loss above 4x the best so far) {where}."
                )
            else:
                i = int((losses - want).abs().argmax())
                default = (
                    f"smoothed loss {i} is {losses[i].item():.6g}, expected {want[i].item():.6g} "
                    f"{where}."
                )
            raise Wrong(diagnose(losses, variants, default))
        got = number(out[2], "the suggestion")
        if not close(got, ref.suggestion, rtol=1e-6, atol=0):
            raise Wrong(
                diagnose(
                    got,
                    [
                        (
                            ref.suggestion * 10,
                            "the suggestion is one tenth of the rate at "
                            "the lowest smoothed loss, not that rate itself.",
                        )
                    ],
                    f"the suggestion: {off_by(got, ref.suggestion)} {where}.",
                )
            )
    return "Exponential rates, bias-corrected smoothing, the stop at 4x and the 1/10 rule: the same as lr_find."


range_test = Exercise(
    id="ex06_range_test",
    title="The learning-rate range test by hand",
    minutes=20,
    checker=_check_range,
    answer_name="range_test",
    hints=[
        "Work on m = copy.deepcopy(model) with opt = torch.optim.SGD(m.parameters(), lr=start_lr). "
        "Each step i: set opt.param_groups[0]['lr'], compute the loss on (x, y), record it, then "
        "zero_grad, backward, step.",
        "Smoothing: avg = 0.9 * avg + 0.1 * loss (avg starts at 0); the smoothed value is "
        "avg / (1 - 0.9 ** (i + 1)). Keep the best smoothed value; stop after recording one above 4x it.",
        "lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1)); after the loop, "
        "suggestion = lrs[losses.index(min(losses))] / 10",
    ],
    solution_code="""
    import copy


    def range_test(model, x, y, start_lr, end_lr, steps):
        m = copy.deepcopy(model)
        opt = torch.optim.SGD(m.parameters(), lr=start_lr)
        lrs, losses, avg, best = [], [], 0.0, float("inf")
        for i in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (i / (steps - 1))
            opt.param_groups[0]["lr"] = lr
            loss = F.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            avg = 0.9 * avg + 0.1 * loss.item()
            smoothed = avg / (1 - 0.9 ** (i + 1))
            lrs.append(lr)
            losses.append(smoothed)
            best = min(best, smoothed)
            if smoothed > 4 * best:
                break
        return lrs, losses, lrs[losses.index(min(losses))] / 10
    """,
)

# ----------------------------------------------------------------------- 4. the open challenge

#: The challenge: notebook 06's setting, 5 labels per class, plain SGD, 30 full-batch steps.
CHALLENGE: dict[str, Any] = {"task": "fmnist_rand_b", "source": "fmnist_rand_a", "per_class": 5, "val_per_class": 40,
             "n_test": 1000, "seed": 0, "steps": 30, "baseline_lr": 0.01, "margin": 0.05}  # fmt: skip
_cache: dict = {}


def challenge_data():
    """``(train, val, source)``: the 25 labelled images, 200 validation images, the source model."""
    if "split" not in _cache:
        pool, test_pool = (
            load_task(CHALLENGE["task"], "train"),
            load_task(CHALLENGE["task"], "test"),
        )
        _cache["split"] = train_val_test(
            pool, test_pool, CHALLENGE["per_class"], val_per_class=CHALLENGE["val_per_class"],
            n_test=CHALLENGE["n_test"], seed=CHALLENGE["seed"],
        )  # fmt: skip
    split = _cache["split"]
    return split.train, split.val, load_backbone("small_cnn", source=CHALLENGE["source"]).eval()


def _train(model, optimizer, scheduler, train) -> tuple[float, float]:
    """The checker's loop: ``steps`` full-batch steps of cross-entropy, BatchNorm in train mode.

    Returns the first and the last loss."""
    x, y = train.images, train.targets
    losses = []
    for _ in range(CHALLENGE["steps"]):
        model.train()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        losses.append(loss.item())
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return losses[0], losses[-1]


def _baseline(hidden: bool) -> float:
    key = "test" if hidden else "val"
    if key not in _cache:
        if "baseline_model" not in _cache:
            train, _, source = challenge_data()
            model = transfer_model(source, 5, seed=CHALLENGE["seed"])
            _train(
                model, torch.optim.SGD(model.parameters(), lr=CHALLENGE["baseline_lr"]), None, train
            )
            _cache["baseline_model"] = model.eval()
        _cache[key] = evaluate(
            _cache["baseline_model"], _cache["split"].test if hidden else _cache["split"].val
        )["accuracy"]
    return _cache[key]


def _check_challenge(fn, hidden: bool) -> str:
    train, val, source = challenge_data()
    last = _cache.get("last")
    if hidden and last is not None and last[0] is fn:  # score the model the visible check trained
        model, (first_loss, final_loss) = last[1], last[2]
    else:
        model = transfer_model(source, 5, seed=CHALLENGE["seed"])
        start = copy.deepcopy(model.state_dict())
        out = call_student(fn, model, CHALLENGE["steps"], name="make_sgd")
        if not isinstance(out, tuple) or len(out) != 2:
            raise Wrong(
                "`make_sgd` should return (optimizer, scheduler), with scheduler None for a constant "
                f"rate; got a {type(out).__name__}."
            )
        optimizer, scheduler = out
        if not isinstance(optimizer, torch.optim.SGD):
            raise Wrong(
                f"this challenge is SGD only: the optimiser must be a torch.optim.SGD, got a "
                f"{type(optimizer).__name__}."
            )
        if scheduler is not None and not callable(getattr(scheduler, "step", None)):
            raise Wrong(
                f"the scheduler should be None or a torch.optim.lr_scheduler object, got a "
                f"{type(scheduler).__name__}."
            )
        mine = {id(p) for p in model.parameters()}
        if not any(id(p) in mine for g in optimizer.param_groups for p in g["params"]):
            raise Wrong(
                "your optimiser holds none of the model's parameters: build it on `model` itself."
            )
        if any(not torch.equal(v, model.state_dict()[k]) for k, v in start.items()):
            raise Wrong(
                "`make_sgd` changed the model's weights: it only builds the optimiser and the "
                "schedule; the check trains."
            )
        first_loss, final_loss = call_student(_train, model, optimizer, scheduler, train,
                                              name="training with your optimiser and scheduler", limit_s=30)  # fmt: skip
        model.eval()
        _cache["last"] = (fn, model, (first_loss, final_loss))
    if not math.isfinite(final_loss) or final_loss > first_loss:
        raise Wrong(
            f"training diverged (the loss went from {first_loss:.3g} to {final_loss:.3g}): a rate is too "
            "large for SGD here. The range test of exercise 3 finds a safe one."
        )
    data = _cache["split"].test if hidden else val
    acc = evaluate(model, data)["accuracy"]
    base = _baseline(hidden)
    where = "the hidden test split" if hidden else f"the validation split ({len(val)} images)"
    if acc < base + CHALLENGE["margin"]:
        raise Wrong(
            f"accuracy {acc:.3f} on {where}; plain SGD at lr {CHALLENGE['baseline_lr']:g} gets {base:.3f}. "
            f"Beat it by {CHALLENGE['margin']:.2f} (final training loss {final_loss:.3f})."
        )
    return (
        f"accuracy {acc:.3f} on {where}, plain SGD at lr {CHALLENGE['baseline_lr']:g} {base:.3f}, "
        f"after {CHALLENGE['steps']} steps (final training loss {final_loss:.3f})."
    )


challenge = Exercise(
    id="ex06_challenge",
    title="Open challenge: the best SGD in 30 steps",
    minutes=30,
    checker=_check_challenge,
    answer_name="make_sgd",
    hints=[
        "Three levers of notebook 06, all allowed with SGD: the rate (range test), momentum, "
        "a larger rate for the new head than for the body, and a schedule.",
        "torch.optim.SGD([{'params': model.body.parameters(), 'lr': ...}, {'params': model.head.parameters(), "
        "'lr': ...}], momentum=0.9); a OneCycleLR(optimizer, max_lr=[...], total_steps=total_steps) steps once per step.",
        "opt = torch.optim.SGD([{'params': model.body.parameters(), 'lr': 0.01}, "
        "{'params': model.head.parameters(), 'lr': 0.1}], momentum=0.9); "
        "return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.01, 0.1], total_steps=total_steps)",
    ],
    solution_code="""
    def make_sgd(model, total_steps):
        opt = torch.optim.SGD(
            [{"params": model.body.parameters(), "lr": 0.01}, {"params": model.head.parameters(), "lr": 0.1}],
            momentum=0.9,
        )
        return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[0.01, 0.1], total_steps=total_steps)
    """,
)
