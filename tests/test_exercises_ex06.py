"""tlhelpers.exercises.ex06 (optimisers): every checker passes its solution, fails typical wrong
answers with the intended message, and checks against an independent computation."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from exercise_support import solution as _solution

from tlhelpers.exercises import FAILED, PASSED, ex06, exercises_of
from tlhelpers.optim import lr_find, make_optimizer, schedule_factor

EXERCISES = [ex06.schedule, ex06.groups, ex06.range_test, ex06.challenge]
FAST = [e for e in EXERCISES if e is not ex06.challenge]


def test_four_exercises_with_hints_estimates_and_ids():
    exercises = exercises_of(ex06)
    assert [e.id for e in exercises] == [
        "ex06_schedule",
        "ex06_groups",
        "ex06_range_test",
        "ex06_challenge",
    ]
    for name, e in zip(["schedule", "groups", "range_test", "challenge"], exercises, strict=True):
        assert e.id == f"ex06_{name}" and len(e.hints) >= 2 and 1 <= e.minutes <= 60


# ---------------------------------------------------------------- the references are independent and agree


@pytest.mark.parametrize(
    ("peak", "total", "warmup"), [(0.1, 20, 4), (1.0, 12, 3), (0.01, 100, 10), (0.5, 7, 2)]
)
def test_torch_schedulers_agree_with_the_kit_schedule(peak, total, warmup):
    rates = ex06.torch_warmup_cosine(peak, total, warmup)
    kit = [
        peak * schedule_factor("warmup_cosine", s, total, warmup=warmup / total)
        for s in range(total)
    ]
    assert np.allclose(rates, kit, rtol=1e-12, atol=1e-15)
    assert rates[warmup - 1] == pytest.approx(peak) and rates[-1] == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_range_reference_without_mistakes_is_lr_find(seed, one_thread):
    model, x, y = ex06._range_case(seed)
    lrs, losses, suggestion = ex06.range_reference(model, x, y, 1e-3, 50.0, 40)
    r = lr_find(
        copy.deepcopy(model), (x, y), start_lr=1e-3, end_lr=50.0, steps=40, batch_size=len(x)
    )
    assert lrs == pytest.approx(r.lrs, rel=1e-12) and losses == pytest.approx(r.losses, rel=1e-6)
    assert suggestion == pytest.approx(r.suggestion) and r.diverged and len(lrs) < 40


# ---------------------------------------------------------------- typical wrong answers: the schedule


def _sched(fn):
    def rates(peak, total, warmup):
        return [fn(peak, total, warmup, s) for s in range(total)]

    return rates


def _cos(num, den):
    return 0.5 * (1 + math.cos(math.pi * num / den))


sched_from_zero = _sched(lambda p, t, w, s: p * s / w if s < w else p * _cos(s - w + 1, t - w))
sched_peak_twice = _sched(lambda p, t, w, s: p * (s + 1) / w if s < w else p * _cos(s - w, t - w))
sched_cos_over_all = _sched(lambda p, t, w, s: p * (s + 1) / w if s < w else p * _cos(s, t))
sched_no_warmup = _sched(lambda p, t, w, s: p * _cos(s, t - 1))
sched_factors = _sched(lambda p, t, w, s: (s + 1) / w if s < w else _cos(s - w + 1, t - w))


def sched_short(peak, total, warmup):
    return _solution(ex06.schedule)(peak, total, warmup)[:-1]


def sched_generator(peak, total, warmup):
    return (r for r in _solution(ex06.schedule)(peak, total, warmup))


def sched_matrix(peak, total, warmup):
    return np.array(_solution(ex06.schedule)(peak, total, warmup))[None, :]


# ---------------------------------------------------------------- per-layer rates


def _layers(model):
    return [model.head, model.body[0].block3, model.body[0].block2, model.body[0].block1]


def groups_same_rate(model, lr, decay):
    return torch.optim.Adam(model.parameters(), lr=lr)


def groups_multiplied(model, lr, decay):
    return torch.optim.Adam(
        [{"params": m.parameters(), "lr": lr * decay**k} for k, m in enumerate(_layers(model))]
    )


def groups_reversed(model, lr, decay):
    return torch.optim.Adam(
        [
            {"params": m.parameters(), "lr": lr / decay**k}
            for k, m in enumerate(reversed(_layers(model)))
        ]
    )


def groups_no_head(model, lr, decay):
    return torch.optim.Adam(
        [{"params": m.parameters(), "lr": lr / decay**k} for k, m in enumerate(_layers(model)) if k]
    )


def groups_list(model, lr, decay):
    return [{"params": m.parameters(), "lr": lr / decay**k} for k, m in enumerate(_layers(model))]


def groups_sgd(model, lr, decay):
    return torch.optim.SGD(
        [{"params": m.parameters(), "lr": lr / decay**k} for k, m in enumerate(_layers(model))]
    )


def groups_weight_decay(model, lr, decay):
    return torch.optim.Adam(
        [{"params": m.parameters(), "lr": lr / decay**k} for k, m in enumerate(_layers(model))],
        weight_decay=0.1,
    )


def groups_twice(model, lr, decay):
    return torch.optim.Adam(
        [{"params": model.parameters(), "lr": lr}, {"params": model.head.parameters(), "lr": lr}]
    )


def groups_on_copy(model, lr, decay):
    return _solution(ex06.groups)(copy.deepcopy(model), lr, decay)


# ---------------------------------------------------------------- the range test


def _range_with(**mistake):
    def range_test(model, x, y, start_lr, end_lr, steps):
        return ex06.range_reference(model, x, y, start_lr, end_lr, steps, **mistake)

    return range_test


range_linear = _range_with(linear=True)
range_no_bias_correction = _range_with(bias_correct=False)
range_raw = _range_with(smooth=False)
range_no_stop = _range_with(stop=False)
range_after_step = _range_with(after=True)
range_no_zero_grad = _range_with(zero_grad=False)


def range_no_tenth(model, x, y, start_lr, end_lr, steps):
    lrs, losses, s = _solution(ex06.range_test)(model, x, y, start_lr, end_lr, steps)
    return lrs, losses, s * 10


def range_in_place(model, x, y, start_lr, end_lr, steps):
    out = _solution(ex06.range_test)(model, x, y, start_lr, end_lr, steps)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    return out


def range_two_things(model, x, y, start_lr, end_lr, steps):
    return _solution(ex06.range_test)(model, x, y, start_lr, end_lr, steps)[:2]


WRONG = [
    (ex06.schedule, sched_from_zero, "your warm-up starts at 0"),
    (ex06.schedule, sched_peak_twice, "the peak appears twice"),
    (ex06.schedule, sched_cos_over_all, "your cosine runs over all T steps"),
    (ex06.schedule, sched_no_warmup, "there is no warm-up"),
    (ex06.schedule, sched_factors, "multiply them by the peak rate"),
    (ex06.schedule, sched_short, "should have 20 entries (one per optimiser step), got 19"),
    (ex06.schedule, sched_generator, "should be a list of numbers, got a generator"),
    (ex06.schedule, sched_matrix, "should be a flat list"),
    (ex06.groups, groups_same_rate, "every layer got the same rate"),
    (ex06.groups, groups_multiplied, "you multiplied by decay"),
    (ex06.groups, groups_reversed, "the order is reversed"),
    (ex06.groups, groups_no_head, "`head.weight` is in no parameter group"),
    (ex06.groups, groups_list, "should return the optimiser, got a list"),
    (ex06.groups, groups_sgd, "asks for torch.optim.Adam, got a SGD"),
    (ex06.groups, groups_weight_decay, "keep Adam's other settings at their defaults"),
    (
        ex06.groups,
        groups_twice,
        "raised ValueError: some parameters appear in more than one parameter group",
    ),
    (ex06.groups, groups_on_copy, "not the model's"),
    (ex06.range_test, range_linear, "your rates grow linearly"),
    (ex06.range_test, range_no_bias_correction, "lack the bias correction"),
    (ex06.range_test, range_raw, "these are the raw losses"),
    (ex06.range_test, range_no_stop, "you kept going after the smoothed loss passed 4x its best"),
    (ex06.range_test, range_after_step, "you recorded the loss after the step"),
    (ex06.range_test, range_no_zero_grad, "the gradients pile up"),
    (ex06.range_test, range_no_tenth, "one tenth of the rate at the lowest smoothed loss"),
    (ex06.range_test, range_in_place, "changed the model's weights"),
    (
        ex06.range_test,
        range_two_things,
        "should return three things (lrs, losses, suggestion), got a tuple of length 2",
    ),
]


@pytest.mark.parametrize(("ex", "fn", "message"), WRONG, ids=[w[1].__name__ for w in WRONG])
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message, one_thread):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_a_crash_names_the_line_not_a_traceback(ex, one_thread):
    def crashes(*args):
        return args[99]

    r = ex.run_check(crashes)
    assert r.status == FAILED and "raised IndexError" in r.message and "args[99]" in r.message


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_none_and_a_string_get_a_message(ex, one_thread):
    for fn in (lambda *a: None, lambda *a: "0.1"):
        r = ex.run_check(fn)
        assert (
            r.status == FAILED
            and "Traceback" not in r.message
            and "checker could not" not in r.message
        ), r


# ---------------------------------------------------------------- the challenge (trains a network: slow)


@pytest.mark.slow
def test_challenge_solution_passes_and_hidden_reuses_the_trained_model(one_thread):
    fn = _solution(ex06.challenge)
    r = ex06.challenge.run_check(fn)
    assert r.status == PASSED, r.message
    trained = ex06._cache["last"][1]
    r = ex06.challenge.run_check(fn, hidden=True)
    assert r.status == PASSED and "hidden test split" in r.message, r.message
    assert ex06._cache["last"][1] is trained


def challenge_baseline(model, total_steps):  # exactly the baseline: must not pass
    return torch.optim.SGD(model.parameters(), lr=0.01), None


def challenge_adam(model, total_steps):
    return torch.optim.Adam(model.parameters(), lr=1e-3), None


def challenge_trains(model, total_steps):
    with torch.no_grad():
        model.head.weight.mul_(2)
    return challenge_baseline(model, total_steps)


def challenge_short_cycle(model, total_steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=10)


def challenge_diverges(model, total_steps):
    return torch.optim.SGD(model.parameters(), lr=1e4, momentum=0.9), None


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (challenge_baseline, "plain SGD at lr 0.01 gets"),
        (challenge_adam, "this challenge is SGD only"),
        (
            lambda model, total_steps: torch.optim.SGD(model.parameters(), lr=0.1),
            "should return (optimizer, scheduler)",
        ),
        (
            lambda model, total_steps: (torch.optim.SGD(model.parameters(), lr=0.1), "cosine"),
            "should be None or a",
        ),
        (
            lambda model, total_steps: challenge_baseline(copy.deepcopy(model), 30),
            "holds none of the model's",
        ),
        (challenge_trains, "changed the model's weights"),
        (challenge_short_cycle, "raised ValueError: Tried to step"),
        (challenge_diverges, "training diverged"),
    ],
    ids=[
        "baseline",
        "adam",
        "no_scheduler",
        "str_scheduler",
        "copy",
        "trains",
        "short_cycle",
        "diverges",
    ],
)
def test_challenge_wrong_answers(fn, message, one_thread):
    r = ex06.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
    assert "Traceback" not in r.message


def test_make_optimizer_reference_matches_the_solution_step(one_thread):
    """The groups check's reference (make_optimizer with prefixes) is the optimiser the task describes."""
    model = ex06._groups_model(0)
    ref = make_optimizer(
        "adam", copy.deepcopy(model), {p: 0.01 / 2.6**k for k, p in enumerate(ex06.LAYERS)}
    )
    assert sorted(g["lr"] for g in ref.param_groups) == pytest.approx(
        sorted(0.01 / 2.6**k for k in range(4))
    )


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_a_loop_is_stopped_by_the_time_limit(ex, monkeypatch):
    from tlhelpers.exercises import _core

    monkeypatch.setattr(_core, "LIMIT_S", 0.3)

    def loops(*args):
        while True:
            try:
                pass
            except Exception:  # a broad except must not swallow the alarm
                pass

    r = ex.run_check(loops)
    assert r.status == FAILED and "did not finish within 0.3 s" in r.message, r.message


def test_rates_on_another_device_are_named():
    r = ex06.schedule.run_check(lambda peak, total, warmup: torch.zeros(total, device="meta"))
    assert r.status == FAILED and "is on device meta" in r.message, r.message
