"""tlhelpers.exercises ex08 (faces) and ex09 (domain adaptation): every checker passes its
solution and fails typical wrong answers with the intended message, never a traceback."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from tlhelpers.exercises import FAILED, NOT_ATTEMPTED, PASSED, ex08, ex09
from tlhelpers.exercises import _core as core

MINE = [ex08.iou, ex08.nms, ex08.match, ex09.grl, ex09.coral, ex09.adabn]


def _solution(ex):
    ns: dict = {"torch": torch, "nn": nn, "np": np}
    for other in (*MINE, ex08.challenge, ex09.challenge):  # nms and match call box_iou
        exec(other.solution_code, ns)
    return ns[ex.answer_name]


def test_each_chapter_has_small_to_open_exercises_with_hints_and_estimates():
    for module in (ex08, ex09):
        exercises = [getattr(module, n) for n in module.__all__]
        assert len(exercises) >= 3 and exercises[-1].id.endswith("_challenge")
        for e in exercises:
            assert len(e.hints) >= 2 and 1 <= e.minutes <= 60


@pytest.mark.parametrize("ex", MINE, ids=[e.id for e in MINE])
@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes(ex, hidden, one_thread):
    r = ex.run_check(_solution(ex), hidden=hidden)
    assert r.status == PASSED, r.message


@pytest.mark.parametrize("ex", MINE, ids=[e.id for e in MINE])
def test_stub_is_not_attempted(ex):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    r = ex.run_check(stub)
    assert r.status == NOT_ATTEMPTED and "NotImplementedError" in r.message


# ---------------------------------------------------------------- ex08: IoU


def _area(b):
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def _corners(a, b):
    return torch.maximum(a[:, None, :2], b[None, :, :2]), torch.minimum(
        a[:, None, 2:], b[None, :, 2:]
    )


def iou_no_clamp(a, b):
    lt, rb = _corners(a, b)
    inter = (rb - lt).prod(2)
    return inter / (_area(a)[:, None] + _area(b)[None, :] - inter)


def iou_union_twice(a, b):
    lt, rb = _corners(a, b)
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / (_area(a)[:, None] + _area(b)[None, :])


def iou_min(a, b):
    lt, rb = _corners(a, b)
    inter = (rb - lt).clamp(min=0).prod(2)
    return inter / torch.minimum(_area(a)[:, None], _area(b)[None, :])


def iou_plus_one(a, b):
    lt, rb = _corners(a, b)
    inter = (rb - lt + 1).clamp(min=0).prod(2)
    area = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def iou_transposed(a, b):
    return _solution(ex08.iou)(b, a)


def iou_loops_list(a, b):
    return _solution(ex08.iou)(a, b).tolist()


def iou_numpy(a, b):
    return _solution(ex08.iou)(a, b).numpy()


# ---------------------------------------------------------------- ex08: NMS


def _iou(a, b):
    return _solution(ex08.iou)(a, b)


def nms_index_order(boxes, scores, t):
    order, keep = torch.arange(len(boxes)), []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        order = order[_iou(boxes[best][None], boxes[order])[0] <= t]
    return keep


def nms_suppressed_suppress(boxes, scores, t):
    iou_m, alive, keep = _iou(boxes, boxes), torch.ones(len(boxes), dtype=torch.bool), []
    for i in scores.argsort(descending=True).tolist():
        if alive[i]:
            keep.append(i)
        alive &= iou_m[i] <= t  # every visited box suppresses, kept or not
        alive[i] = False
    return keep


def nms_greater_equal(boxes, scores, t):
    order, keep = scores.argsort(descending=True), []
    while len(order):
        best, order = order[0], order[1:]
        keep.append(int(best))
        order = order[_iou(boxes[best][None], boxes[order])[0] < t]
    return keep


def nms_sorted_output(boxes, scores, t):
    return sorted(_solution(ex08.nms)(boxes, scores, t).tolist())


def nms_mask(boxes, scores, t):
    mask = torch.zeros(len(boxes), dtype=torch.bool)
    mask[_solution(ex08.nms)(boxes, scores, t)] = True
    return mask


# ---------------------------------------------------------------- ex08: matching


def _matcher(*, by_score=True, twice=False, strict=False, any_truth=False):
    def match(boxes, scores, truth, t=0.5):
        tp = torch.zeros(len(boxes), dtype=torch.bool)
        if len(boxes) == 0 or len(truth) == 0:
            return tp
        ious, free = _iou(boxes, truth), torch.ones(len(truth), dtype=torch.bool)
        order = scores.argsort(descending=True).tolist() if by_score else range(len(boxes))
        for i in order:
            cand = (
                ious[i] if (twice or any_truth) else torch.where(free, ious[i], torch.tensor(-1.0))
            )
            j = int(cand.argmax())
            ok = cand[j] > t if strict else cand[j] >= t
            if ok and (twice or free[j]):
                tp[i], free[j] = True, False
        return tp

    return match


def match_crashes_without_faces(boxes, scores, truth, t=0.5):  # right, but no empty case
    tp, free = torch.zeros(len(boxes), dtype=torch.bool), torch.ones(len(truth), dtype=torch.bool)
    ious = _iou(boxes, truth)
    for i in scores.argsort(descending=True).tolist():
        cand = torch.where(free, ious[i], torch.tensor(-1.0))
        j = int(cand.argmax())
        if cand[j] >= t:
            tp[i], free[j] = True, False
    return tp


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


WRONG = [
    (ex08.iou, iou_no_clamp, "clamp the intersection"),
    (ex08.iou, iou_union_twice, "counts the intersection twice"),
    (ex08.iou, iou_min, "smaller area"),
    (ex08.iou, iou_plus_one, "added 1 pixel"),
    (ex08.iou, iou_transposed, "transposed"),
    (ex08.iou, iou_loops_list, "should be a torch.Tensor, got a list"),
    (ex08.nms, nms_index_order, "index order"),
    (ex08.nms, nms_suppressed_suppress, "only kept boxes suppress"),
    (ex08.nms, nms_greater_equal, "IoU equals the threshold"),
    (ex08.nms, nms_sorted_output, "in the wrong order"),
    (ex08.nms, nms_mask, "boolean mask"),
    (ex08.match, _matcher(twice=True), "matched twice"),
    (ex08.match, _matcher(by_score=False), "by decreasing score"),
    (ex08.match, _matcher(strict=True), "exactly 0.5 is a match"),
    (ex08.match, _matcher(any_truth=True), "not yet matched"),
    (ex08.match, match_crashes_without_faces, "case: a photo without a face"),
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


def test_numpy_iou_and_list_nms_are_accepted(one_thread):
    assert ex08.iou.run_check(iou_numpy).status == PASSED
    assert ex08.nms.run_check(lambda b, s, t: _solution(ex08.nms)(b, s, t).tolist()).passed


def test_a_loop_in_nms_is_stopped(monkeypatch):
    monkeypatch.setattr(core, "LIMIT_S", 0.3)

    def loops(boxes, scores, t):
        keep = []
        while len(keep) < len(boxes) + 1:
            pass
        return keep

    r = ex08.nms.run_check(loops)
    assert r.status == FAILED and "did not finish within 0.3 s" in r.message


def test_wrong_device_is_named():
    r = ex09.coral.run_check(lambda s, t: torch.zeros((), device="meta"))
    assert r.status == FAILED and "is on device meta" in r.message


# ---------------------------------------------------------------- the challenges (slow)


@pytest.mark.slow
@pytest.mark.parametrize("ex", [ex08.challenge, ex09.challenge], ids=["ex08", "ex09"])
def test_challenge_solution_passes_and_hidden_reuses_the_trained_model(ex, one_thread):
    fn = _solution(ex)
    r = ex.run_check(fn)
    assert r.status == PASSED, r.message
    r = ex.run_check(fn, hidden=True)
    assert r.status == PASSED and "hidden" in r.message, r.message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda f, y: None, "returned None"),
        (lambda f, y: "projection", "should return an nn.Module"),
        (lambda f, y: nn.Identity(), "the raw ImageNet features get"),
        (lambda f, y: lambda x: x[:5], "should have shape (160, d)"),
        (lambda f, y: lambda x: x.sum(), "the embeddings should have shape"),
    ],
    ids=["none", "str", "identity", "rows", "scalar"],
)
def test_ex08_challenge_wrong_answers(fn, message, one_thread):
    r = ex08.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message


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
    ],
    ids=["none", "int", "source_only", "five_classes"],
)
def test_ex09_challenge_wrong_answers(fn, message, one_thread):
    r = ex09.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
