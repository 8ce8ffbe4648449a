"""ex10 (notebook 10): each checker against its solution and typical wrong answers."""

from __future__ import annotations

import math

import pytest
from exercise_support import solution as _solution

from tlhelpers.exercises import FAILED, PASSED, ex10
from tlhelpers.models import scratch_model, transfer_model
from tlhelpers.recipes import get_recipe
from tlhelpers.transferability import logme


def rounds_floor(n, eta, r0, big_r):
    return [
        (n // eta**i, r) for i, (_, r) in enumerate(_solution(ex10.schedule)(n, eta, r0, big_r))
    ]


def rounds_ignore_resources(n, eta, r0, big_r):
    k = 1 + int(math.log(n, eta) + 1e-9)
    return [(math.ceil(n / eta**i), r0 * eta**i) for i in range(k)]


def rounds_linear_steps(n, eta, r0, big_r):
    return [
        (k, r0 * (i + 1)) for i, (k, _) in enumerate(_solution(ex10.schedule)(n, eta, r0, big_r))
    ]


def rounds_one_short(n, eta, r0, big_r):
    return _solution(ex10.schedule)(n, eta, r0, big_r)[:-1]


def halving_keeps_worst(candidates, advance, eta, r0, big_r):
    alive = list(candidates)
    for n_i, r_i in _solution(ex10.schedule)(len(alive), eta, r0, big_r):
        alive = alive[:n_i]
        score = {c: advance(c, r_i) for c in alive}
        alive = sorted(alive, key=lambda c: score[c])
    return alive[0]


def halving_no_cut(candidates, advance, eta, r0, big_r):
    score = {}
    for _, r_i in _solution(ex10.schedule)(len(candidates), eta, r0, big_r):
        score = {c: advance(c, r_i) for c in candidates}
    return max(score, key=score.get)


def halving_returns_score(candidates, advance, eta, r0, big_r):
    best = _solution(ex10.halving)(candidates, advance, eta, r0, big_r)
    return float(advance(best, r0))


def halving_last_wrong_pick(candidates, advance, eta, r0, big_r):
    alive = list(candidates)
    rounds = _solution(ex10.schedule)(len(alive), eta, r0, big_r)
    for n_i, r_i in rounds:
        alive = alive[:n_i]
        score = {c: advance(c, r_i) for c in alive}
        alive = sorted(alive, key=lambda c: -score[c])
    return alive[-1]


def rank_ascending(features, labels):
    return _solution(ex10.ranking)(features, labels)[::-1]


def rank_dict(features, labels):
    return {n: logme(f.numpy(), labels.numpy()) for n, f in features.items()}


def rank_by_variance(features, labels):
    return sorted(features, key=lambda n: -float(features[n].var()))


def rank_drops_one(features, labels):
    return _solution(ex10.ranking)(features, labels)[:-1]


WRONG = [
    (ex10.schedule, rounds_floor, "not the floor"),
    (ex10.schedule, rounds_ignore_resources, "the steps run out first"),
    (ex10.schedule, rounds_linear_steps, "grow by a factor eta"),
    (ex10.schedule, rounds_one_short, "rounds instead of"),
    (ex10.schedule, lambda n, e, r, big_r: "rounds", "should be a list"),
    (ex10.schedule, lambda n, e, r, big_r: [(1.5, 2)], "two integers"),
    (ex10.halving, halving_keeps_worst, "keep the highest scores"),
    (ex10.halving, halving_no_cut, "every candidate was trained in every round"),
    (ex10.halving, halving_returns_score, "returned a score"),
    (ex10.halving, halving_last_wrong_pick, "worst of the last round"),
    (ex10.halving, lambda c, a, e, r, big_r: None, "returned None"),
    (ex10.ranking, rank_ascending, "from worst to best"),
    (ex10.ranking, rank_dict, "returned a dict of scores"),
    (ex10.ranking, rank_by_variance, "by LogME the order is"),
    (ex10.ranking, rank_drops_one, "every source exactly once"),
]


@pytest.mark.parametrize(("ex", "fn", "message"), WRONG,
                         ids=[f"{w[0].id}-{i}" for i, w in enumerate(WRONG)])  # fmt: skip
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message, one_thread):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message


def test_advance_raising_inside_the_students_loop_is_a_friendly_message():
    def bad(candidates, advance, eta, r0, big_r):
        return advance("not a candidate", r0)

    r = ex10.halving.run_check(bad)
    assert r.status == FAILED and "raised ValueError" in r.message and "line" in r.message


@pytest.mark.slow
def test_challenge_solution_passes_and_the_hidden_check_reuses_its_model(one_thread):
    fn = _solution(ex10.challenge)
    r = ex10.challenge.run_check(fn)
    assert r.status == PASSED, r.message
    r = ex10.challenge.run_check(fn, hidden=True)
    assert r.status == PASSED and "hidden test split" in r.message, r.message


def challenge_scratch(train, sources):  # exactly the baseline: must not pass
    model = scratch_model(5, seed=0)
    get_recipe("scratch").fit(model, train, seed=0)
    return model


def challenge_by_name(train, sources):  # the best name in challenge_data(), not in the check
    model = transfer_model(sources["source_4"], 5, seed=0)
    get_recipe("fine_tune").fit(model, train, seed=0)
    return model.eval()


def test_the_check_shows_the_candidates_under_other_names():
    shown = [ex10.SOURCES[j] for j in ex10.SHOWN]
    checked = [ex10.SOURCES[j] for j in ex10.CHECKED]
    assert sorted(shown) == sorted(checked) and all(
        a != b for a, b in zip(shown, checked, strict=True)
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda train, sources: sources, "should return an nn.Module, got a dict"),
        (lambda train, sources: transfer_model(sources["source_1"], 3), "has shape (4, 3)"),
        (challenge_scratch, "the scratch baseline gets"),
        (challenge_by_name, "the scratch baseline gets"),
    ],
    ids=["dict", "three_classes", "scratch", "chosen_by_name"],
)
def test_challenge_wrong_answers(fn, message, one_thread):
    r = ex10.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
