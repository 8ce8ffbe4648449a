"""tlhelpers.exercises.ex09 (domain adaptation): every checker passes its solution and fails typical
wrong answers with the intended message, never a traceback."""

from __future__ import annotations

import copy

import pytest
import torch
from exercise_support import solution as _solution
from torch import nn

from tlhelpers.exercises import FAILED, PASSED, ex09, exercises_of
from tlhelpers.exercises import _core as core

MINE = [ex09.grl, ex09.coral, ex09.adabn]


def test_small_to_open_exercises_with_hints_and_estimates():
    exercises = exercises_of(ex09)
    assert len(exercises) >= 3 and exercises[-1].id.endswith("_challenge")
    for e in exercises:
        assert len(e.hints) >= 2 and 1 <= e.minutes <= 60


# ---------------------------------------------------------------- ex09


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam, sign, scale):
        ctx.c = sign * (lam if scale else 1.0)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.c * grad, None, None, None


class _OneGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad  # one value for two inputs: PyTorch raises


def coral_biased(s, t):
    d = s.shape[1]
    return (torch.cov(s.T, correction=0) - torch.cov(t.T, correction=0)).pow(2).sum() / (4 * d * d)


def coral_uncentred(s, t):
    d = s.shape[1]
    return (s.T @ s / (len(s) - 1) - t.T @ t / (len(t) - 1)).pow(2).sum() / (4 * d * d)


def coral_no_factor(s, t):
    return (torch.cov(s.T) - torch.cov(t.T)).pow(2).sum()


def coral_norm(s, t):
    d = s.shape[1]
    return torch.linalg.norm(torch.cov(s.T) - torch.cov(t.T)) / (4 * d * d)


def coral_tllib(s, t):
    return _solution(ex09.coral)(s, t) + (s.mean(0) - t.mean(0)).pow(2).sum()


def coral_target_detached(s, t):
    return _solution(ex09.coral)(s, t.detach())


def _bn_layers(model):
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def adabn_eval_mode(model, x):
    for m in _bn_layers(model):
        m.reset_running_stats()
    with torch.no_grad():
        model.eval()(x)
    return model.eval()


def adabn_no_reset(model, x):
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def adabn_no_reset_cumulative(model, x):
    layers = _bn_layers(model)
    for m in layers:
        m.momentum = None
    with torch.no_grad():
        model.train()(x)
    for m in layers:
        m.momentum = 0.1
    return model.eval()


def adabn_train_mode(model, x):
    return _solution(ex09.adabn)(model, x).train()


def adabn_trains(model, x):
    out = _solution(ex09.adabn)(model, x)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(x).pow(2).mean().backward()
    opt.step()
    return out


def adabn_momentum_lost(model, x):
    for m in _bn_layers(model):
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        model.train()(x)
    return model.eval()


def adabn_small_batches(model, x):
    layers = _bn_layers(model)
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    with torch.no_grad():
        model.train()
        for batch in x.split(8):
            model(batch)
    for m in layers:
        m.momentum = 0.1
    return model.eval()


def adabn_drops_stats(model, x):
    for m in _bn_layers(model):
        m.track_running_stats, m.running_mean, m.running_var = False, None, None
    return model.eval()


WRONG = [
    (ex09.grl, lambda x, lam: x, "passed through unchanged"),
    (ex09.grl, lambda x, lam: x.detach(), "has no gradient"),
    (ex09.grl, lambda x, lam: -lam * x, "multiplied x by -lambda"),
    (ex09.grl, lambda x, lam: _Reverse.apply(x, lam, -1.0, False), "not scaled"),
    (ex09.grl, lambda x, lam: _Reverse.apply(x, lam, 1.0, True), "not reversed"),
    (ex09.grl, lambda x, lam: _OneGradient.apply(x, lam), "raised RuntimeError"),
    (ex09.coral, coral_biased, "divide by n - 1"),
    (ex09.coral, coral_uncentred, "centre each domain"),
    (ex09.coral, coral_no_factor, "1 / (4 d^2) is missing"),
    (ex09.coral, coral_norm, "squared Frobenius norm"),
    (ex09.coral, coral_tllib, "covariances only"),
    (ex09.coral, coral_target_detached, "no gradient reached the target"),
    (ex09.coral, lambda s, t: _solution(ex09.coral)(s, t).item(), "did you call .item()"),
    (ex09.adabn, adabn_eval_mode, "must run in train mode"),
    (ex09.adabn, lambda model, x: model, "did not change"),
    (ex09.adabn, adabn_no_reset, "a blend (momentum 0.1)"),
    (ex09.adabn, adabn_no_reset_cumulative, "call reset_running_stats()"),
    (ex09.adabn, adabn_train_mode, "still in train mode"),
    (ex09.adabn, adabn_trains, "weights changed"),
    (ex09.adabn, adabn_momentum_lost, "has momentum None"),
    (ex09.adabn, adabn_small_batches, "pass all the target images in one batch"),
    (ex09.adabn, lambda model, x: None, "returned None"),
    (ex09.adabn, adabn_drops_stats, "has no running statistics"),
]


@pytest.mark.parametrize(
    ("ex", "fn", "message"),
    WRONG,
    ids=[f"{w[0].id}-{getattr(w[1], '__name__', 'fn')}-{i}" for i, w in enumerate(WRONG)],
)
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message, one_thread):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message and "the checker could not use" not in r.message


def test_wrong_device_is_named():
    r = ex09.coral.run_check(lambda s, t: torch.zeros((), device="meta"))
    assert r.status == FAILED and "is on device meta" in r.message


# ---------------------------------------------------------------- the challenge (slow)


@pytest.mark.slow
def test_challenge_solution_passes_and_hidden_scores_the_same_model(one_thread):
    solution, calls = _solution(ex09.challenge), []

    def counted(*args):
        calls.append(1)
        return solution(*args)

    r = ex09.challenge.run_check(counted)
    assert r.status == PASSED, r.message
    r = ex09.challenge.run_check(counted, hidden=True)
    assert r.status == PASSED and "hidden" in r.message, r.message
    assert len(calls) == 1  # the hidden check scores the model the visible check trained


@pytest.mark.slow
def test_challenge_budget_stops_a_long_run(monkeypatch, one_thread):
    monkeypatch.setitem(ex09.CHALLENGE, "budget_s", 0.5)

    def slow(m, s, t):
        while True:
            pass

    r = ex09.challenge.run_check(slow)
    assert r.status == FAILED and "did not finish within 0.5 s" in r.message, r.message


def _five_classes(model, source, target):
    model = copy.deepcopy(model)
    model.head = nn.Linear(model.head.in_features, 5)
    return model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda m, s, t: None, "returned None"),
        (lambda m, s, t: 3, "should return an nn.Module, got a int"),
        (lambda m, s, t: m, "the source-only network gets"),
        (_five_classes, "has shape (4, 5)"),
        (lambda m, s, t: m.to("meta"), "on meta"),
    ],
    ids=["none", "int", "source_only", "five_classes", "meta"],
)
def test_ex09_challenge_wrong_answers(fn, message, one_thread):
    r = ex09.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message


class _LoopingBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, lam):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        while True:
            pass


def test_a_loop_in_the_students_backward_is_stopped(monkeypatch):
    monkeypatch.setattr(core, "LIMIT_S", 0.3)
    r = ex09.grl.run_check(lambda x, lam: _LoopingBackward.apply(x, lam))
    assert r.status == FAILED and "(its backward pass)` did not finish within 0.3 s" in r.message
