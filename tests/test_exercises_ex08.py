"""tlhelpers.exercises.ex08 (faces): every checker passes its solution and fails typical
wrong answers with the intended message, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from exercise_support import solution as _solution
from torch import nn

from tlhelpers.exercises import FAILED, PASSED, ex08, exercises_of
from tlhelpers.exercises import _core as core

MINE = [ex08.iou, ex08.nms, ex08.match, ex08.verification]


def test_small_to_open_exercises_with_hints_and_estimates():
    exercises = exercises_of(ex08)
    assert len(exercises) >= 3 and exercises[-1].id.endswith("_challenge")
    for e in exercises:
        assert len(e.hints) >= 2 and 1 <= e.minutes <= 60


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


# ---------------------------------------------------------------- ex08: verification


def _pairs(emb, labels, *, normalise=True, diagonal=False):
    e = emb / emb.norm(dim=1, keepdim=True) if normalise else emb
    i, j = torch.triu_indices(len(e), len(e), offset=0 if diagonal else 1)
    return (e @ e.T)[i, j], labels[i] == labels[j]


def _auc(scores, same, tie=0.5):
    g, m = scores[same][:, None], scores[~same][None, :]
    return ((g > m).double().mean() + tie * (g == m).double().mean()).item()


def auc_distance(emb, labels):
    e = emb / emb.norm(dim=1, keepdim=True)
    i, j = torch.triu_indices(len(e), len(e), offset=1)
    return _auc(torch.cdist(e, e)[i, j], labels[i] == labels[j])


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
    (ex08.verification, auc_distance, "1 minus the expected one"),
    (ex08.verification, lambda e, y: _auc(*_pairs(e, y), tie=0.0), "counts one half, not 0"),
    (ex08.verification, lambda e, y: _auc(*_pairs(e, y, diagonal=True)), "image with itself"),
    (ex08.verification, lambda e, y: _auc(*_pairs(e, y, normalise=False)), "divide each embedding"),
    (ex08.verification, lambda e, y: _pairs(e, y), "should be a number, got a tuple"),
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


def test_verification_cases_tie_exactly_or_not_at_all():
    """Tied scores are exact zeros; every other genuine-impostor gap is far above float32 rounding."""
    from tlhelpers.metrics import pair_scores

    for hidden in (False, True):
        for _, emb, labels in ex08._verification_cases(hidden):
            scores, same = pair_scores(emb, labels)
            gaps = np.abs(scores[same][:, None] - scores[~same][None, :])
            assert gaps[gaps > 0].min() > 1e-5
            assert (scores[same][:, None] == scores[~same][None, :])[gaps == 0].all()


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


# ---------------------------------------------------------------- the challenges (slow)


@pytest.mark.slow
def test_challenge_solution_passes_and_hidden_scores_the_same_model(one_thread):
    solution, calls = _solution(ex08.challenge), []

    def counted(*args):
        calls.append(1)
        return solution(*args)

    r = ex08.challenge.run_check(counted)
    assert r.status == PASSED, r.message
    r = ex08.challenge.run_check(counted, hidden=True)
    assert r.status == PASSED and "hidden" in r.message, r.message
    assert len(calls) == 1  # the hidden check scores the model the visible check trained


@pytest.mark.slow
def test_challenge_budget_stops_a_long_run(monkeypatch, one_thread):
    monkeypatch.setitem(ex08.CHALLENGE, "budget_s", 0.5)

    def slow(f, y):
        while True:
            pass

    r = ex08.challenge.run_check(slow)
    assert r.status == FAILED and "did not finish within 0.5 s" in r.message, r.message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda f, y: None, "returned None"),
        (lambda f, y: "projection", "should return an nn.Module"),
        (lambda f, y: nn.Identity(), "the raw ImageNet features get"),
        (lambda f, y: lambda x: x[:5], "should have shape (160, d)"),
        (lambda f, y: lambda x: x.sum(), "the embeddings should have shape"),
        (lambda f, y: lambda x: 1 / 0, "raised ZeroDivisionError"),
    ],
    ids=["none", "str", "identity", "rows", "scalar", "raises"],
)
def test_ex08_challenge_wrong_answers(fn, message, one_thread):
    r = ex08.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
