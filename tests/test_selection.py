"""Tests for tlhelpers.selection (notebook 10, "adaptive transfer").

Known answers: synthetic candidates whose validation score at each resource is a fixed,
deterministic learning curve, so the best candidate and the compute successive halving must
spend are known by hand. The halving schedule (candidates and resources per round) is
checked against scikit-learn's ``HalvingGridSearchCV`` (``n_candidates_``, ``n_resources_``)
for the same factor, minimum and maximum resources.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tlhelpers.selection import (
    SearchResult,
    cut_ties,
    exhaustive_search,
    halving_schedule,
    min_resource_reaching,
    schedule_steps,
    successive_halving,
)


def curve(final: float, speed: float):
    """A learning curve that rises to ``final``: ``final * r / (r + speed)`` (never crosses
    another curve with the same ``speed``)."""
    return lambda r: final * r / (r + speed)


class Runs:
    """``advance(candidate, resource)`` over fixed curves; records every call."""

    def __init__(self, curves):
        self.curves = curves
        self.calls: list[tuple[str, int]] = []
        self.reached: dict[str, int] = {}

    def __call__(self, candidate, resource):
        self.calls.append((candidate, resource))
        self.reached[candidate] = resource
        return self.curves[candidate](resource)


EIGHT = {f"c{i}": curve(0.5 + 0.05 * i, 10.0) for i in range(8)}  # c7 is best at every resource


# ---------------------------------------------------------------- schedule


@pytest.mark.parametrize(
    "n, factor, r0, rmax, expected",
    [
        (8, 2, 6, 48, [(8, 6), (4, 12), (2, 24), (1, 48)]),  # the notebook's default
        (9, 3, 1, 9, [(9, 1), (3, 3), (1, 9)]),
        (8, 3, 10, 90, [(8, 10), (3, 30)]),  # 1 + floor(log3 8) = 2 rounds: 3 left at the end
        (27, 3, 1, 9, [(27, 1), (9, 3), (3, 9)]),  # resources run out before one is left
        (5, 2, 4, 4, [(5, 4)]),  # min = max: one round, the exhaustive search at 4
        (1, 2, 3, 100, [(1, 3)]),
    ],
)
def test_schedule_by_hand(n, factor, r0, rmax, expected):
    assert halving_schedule(n, factor=factor, min_resource=r0, max_resource=rmax) == expected


@pytest.mark.parametrize(
    "n, factor, rmax, r0",
    [(8, 2, 48, 6), (9, 3, 90, 10), (8, 3, 90, 30), (6, 2, 48, 12), (1, 2, 7, 7), (4, 2, 48, 12)],
)
def test_min_resource_reaching_ends_at_max_resource(n, factor, rmax, r0):
    # by hand: r0 = R / factor**floor(log_factor n), so the last round trains to exactly R
    assert min_resource_reaching(n, factor=factor, max_resource=rmax) == r0
    sched = halving_schedule(n, factor=factor, min_resource=r0, max_resource=rmax)
    assert sched[-1][1] == rmax
    assert sched[-1][0] == math.ceil(n / factor ** (len(sched) - 1))


def test_min_resource_reaching_refuses_an_indivisible_max_resource():
    with pytest.raises(ValueError, match=r"max_resource must be a multiple of 8 .*got 50"):
        min_resource_reaching(8, factor=2, max_resource=50)


def test_schedule_steps_by_hand():
    sched = [(8, 6), (4, 12), (2, 24), (1, 48)]
    # restart: every round trains its survivors from zero to r_i
    assert schedule_steps(sched, resume=False) == 8 * 6 + 4 * 12 + 2 * 24 + 1 * 48 == 192
    # resume: a survivor only trains the extra r_i - r_{i-1} steps
    assert schedule_steps(sched, resume=True) == 8 * 6 + 4 * 6 + 2 * 12 + 1 * 24 == 120


@pytest.mark.parametrize(
    "n, factor, r0, rmax",
    [
        (8, 2, 6, 48),
        (9, 3, 2, 18),
        (8, 3, 10, 90),
        (27, 3, 2, 18),
        (30, 3, 2, 50),
        (7, 2, 5, 200),
        (5, 4, 3, 48),
        (12, 3, 4, 4),
    ],
)
def test_schedule_matches_scikit_learn(n, factor, r0, rmax):
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.experimental import enable_halving_search_cv  # noqa: F401
    from sklearn.model_selection import HalvingGridSearchCV

    class Constant(ClassifierMixin, BaseEstimator):
        def __init__(self, p=0):
            self.p = p

        def fit(self, X, y):
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.full(len(X), self.classes_[0])

    X = np.zeros((rmax, 1))
    y = np.arange(rmax) % 2
    search = HalvingGridSearchCV(
        Constant(),
        {"p": list(range(n))},
        factor=factor,
        resource="n_samples",
        min_resources=r0,
        max_resources=rmax,
        cv=2,
        refit=False,
    ).fit(X, y)
    ours = halving_schedule(n, factor=factor, min_resource=r0, max_resource=rmax)
    assert [k for k, _ in ours] == list(search.n_candidates_)
    assert [r for _, r in ours] == list(search.n_resources_)


# ---------------------------------------------------------------- known answers


@pytest.mark.parametrize("resume", [True, False])
def test_successive_halving_finds_the_best_and_spends_the_computed_budget(resume):
    runs = Runs(EIGHT)
    res = successive_halving(
        list(EIGHT), runs, min_resource=6, max_resource=48, factor=2, resume=resume
    )
    assert isinstance(res, SearchResult)
    assert res.best == "c7"
    assert res.best_score == pytest.approx(EIGHT["c7"](48))
    assert res.total_steps == (120 if resume else 192)
    # round by round: the top half (by score) survive, in score order
    assert [r.candidates for r in res.rounds] == [
        tuple(f"c{i}" for i in range(7, -1, -1)),
        ("c7", "c6", "c5", "c4"),
        ("c7", "c6"),
        ("c7",),
    ]
    assert [r.resource for r in res.rounds] == [6, 12, 24, 48]
    # each candidate's steps: how far it got (resume), or the sum of its runs (restart)
    got = {c: res.compute[c].steps for c in EIGHT}
    if resume:
        assert got == {"c0": 6, "c1": 6, "c2": 6, "c3": 6, "c4": 12, "c5": 12, "c6": 24, "c7": 48}
    else:
        assert got == {"c0": 6, "c1": 6, "c2": 6, "c3": 6, "c4": 18, "c5": 18, "c6": 42, "c7": 90}
    assert sum(got.values()) == res.total_steps
    assert len(runs.calls) == 8 + 4 + 2 + 1
    assert all(res.compute[c].seconds >= 0 for c in EIGHT)
    assert res.total_seconds == pytest.approx(sum(res.compute[c].seconds for c in EIGHT))


def test_exhaustive_search_by_hand():
    runs = Runs(EIGHT)
    res = exhaustive_search(list(EIGHT), runs, resource=48)
    assert res.best == "c7" and res.total_steps == 8 * 48
    assert sorted(runs.calls) == sorted((c, 48) for c in EIGHT)
    assert res.scores["c3"] == pytest.approx(EIGHT["c3"](48))


def test_exhaustive_continues_halving_runs_and_counts_as_if_alone():
    """With ``continue_from``, exhaustive search only trains the remaining steps, but each
    candidate is charged its full resource, as if the exhaustive search had run alone."""
    runs = Runs(EIGHT)
    sh = successive_halving(list(EIGHT), runs, min_resource=6, max_resource=48, factor=2)
    n_sh_calls = len(runs.calls)
    ex = exhaustive_search(list(EIGHT), runs, resource=48, continue_from=sh)
    assert ex.total_steps == 8 * 48
    assert all(ex.compute[c].steps == 48 for c in EIGHT)
    # c7 already stood at 48: not advanced again; everything else was continued to 48
    assert sorted(runs.calls[n_sh_calls:]) == sorted((c, 48) for c in EIGHT if c != "c7")
    assert ex.scores["c7"] == sh.best_score
    assert all(ex.compute[c].seconds >= sh.compute[c].seconds for c in EIGHT)
    assert ex.best == "c7"


def test_exhaustive_refuses_to_continue_restarted_runs():
    runs = Runs(EIGHT)
    sh = successive_halving(
        list(EIGHT), runs, min_resource=6, max_resource=48, factor=2, resume=False
    )
    with pytest.raises(ValueError, match="continue_from.*resume=True"):
        exhaustive_search(list(EIGHT), runs, resource=48, continue_from=sh)


def test_early_rounds_can_mislead():
    """The documented failure: a slow starter that ends best is dropped in round 0.

    ``late`` scores 0.1 until 24 steps and 0.99 at 48; every other candidate ends below
    0.9. Exhaustive search finds ``late``; successive halving cannot, because it ranks on
    6 steps first (its assumption: rankings at small budgets predict the final ranking).
    """
    curves = dict(EIGHT)
    curves["late"] = lambda r: 0.99 if r >= 48 else 0.1
    runs = Runs(curves)
    sh = successive_halving(list(curves), runs, min_resource=6, max_resource=48, factor=2)
    ex = exhaustive_search(list(curves), Runs(curves), resource=48)
    assert ex.best == "late"
    assert sh.best == "c7"
    assert runs.reached["late"] == 6


def test_ties_keep_the_earlier_candidate():
    curves = {"a": lambda r: 0.5, "b": lambda r: 0.5, "c": lambda r: 0.4}
    res = successive_halving(
        ["a", "b", "c"], Runs(curves), min_resource=1, max_resource=9, factor=3
    )
    assert res.best == "a"
    res = successive_halving(
        ["b", "a", "c"], Runs(curves), min_resource=1, max_resource=9, factor=3
    )
    assert res.best == "b"


def test_ties_at_a_cut_go_to_the_earlier_candidate_and_are_reported():
    """A five-way tie across round 0's cut (keep 4 of 8): list order decides, and
    ``cut_ties`` names the tied candidates kept and dropped (by hand)."""
    curves = {f"t{i}": (lambda r: 0.5) for i in range(5)}
    curves |= {"lo0": lambda r: 0.1, "lo1": lambda r: 0.2, "hi": lambda r: 0.9}
    order = ["lo0", "t0", "t1", "t2", "hi", "t3", "t4", "lo1"]
    res = successive_halving(order, Runs(curves), min_resource=6, max_resource=48, factor=2)
    assert res.rounds[1].candidates == ("hi", "t0", "t1", "t2")  # t3, t4 dropped: later in the list
    ties = cut_ties(res)
    assert ties[0] == {
        "round": 0, "resource": 6, "score": 0.5, "keep": 4,
        "kept": ("t0", "t1", "t2"), "dropped": ("t3", "t4"),
    }  # fmt: skip
    # round 1 keeps 2 of hi, t0, t1, t2: the cut falls between t0 and t1 (a tie); round 2
    # keeps hi alone (0.9 > 0.5: no tie); the final pick is hi alone (one candidate left)
    assert [t["round"] for t in ties] == [0, 1]
    assert ties[1]["kept"] == ("t0",) and ties[1]["dropped"] == ("t1", "t2")


def test_cut_ties_without_ties_and_at_the_final_pick():
    res = successive_halving(list(EIGHT), Runs(EIGHT), min_resource=6, max_resource=48, factor=2)
    assert cut_ties(res) == []
    flat = {"a": lambda r: 0.7, "b": lambda r: 0.7, "c": lambda r: 0.1}
    ex = exhaustive_search(["a", "b", "c"], Runs(flat), resource=10)
    assert ex.best == "a"
    assert cut_ties(ex) == [
        {"round": 0, "resource": 10, "score": 0.7, "keep": 1, "kept": ("a",), "dropped": ("b",)}
    ]


def test_budget_is_checked_before_any_training():
    runs = Runs(EIGHT)
    res = successive_halving(
        list(EIGHT), runs, min_resource=6, max_resource=48, factor=2, budget=120
    )
    assert res.total_steps == 120
    runs = Runs(EIGHT)
    with pytest.raises(ValueError, match=r"budget.*119.*needs 120 steps.*budget >= 120"):
        successive_halving(list(EIGHT), runs, min_resource=6, max_resource=48, factor=2, budget=119)
    assert runs.calls == []
    with pytest.raises(ValueError, match=r"budget.*383.*384"):
        exhaustive_search(list(EIGHT), Runs(EIGHT), resource=48, budget=383)


def test_to_dict_is_plain_json():
    import json

    res = successive_halving(
        [("lwf", 1.0), ("l2sp", 0.1), ("none", 0.0)],
        Runs(
            {
                ("lwf", 1.0): lambda r: 0.6,
                ("l2sp", 0.1): lambda r: 0.7,
                ("none", 0.0): lambda r: 0.5,
            }
        ),
        min_resource=2,
        max_resource=8,
        factor=2,
    )
    d = json.loads(json.dumps(res.to_dict()))
    assert d["best"] == "('l2sp', 0.1)" and d["total_steps"] == res.total_steps
    assert d["rounds"][0]["resource"] == 2


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("factor", [1, 0, -2, 1.5, True, "2"])
def test_bad_factor(factor):
    with pytest.raises(ValueError, match=rf"factor must be an integer >= 2.*got {factor!r}"):
        successive_halving(list(EIGHT), Runs(EIGHT), min_resource=6, max_resource=48, factor=factor)


def test_bad_candidates():
    with pytest.raises(ValueError, match=r"candidates must hold at least one.*got \[\]"):
        successive_halving([], Runs(EIGHT), min_resource=6, max_resource=48)
    with pytest.raises(ValueError, match=r"candidates must be distinct.*'c1'"):
        successive_halving(["c1", "c2", "c1"], Runs(EIGHT), min_resource=6, max_resource=48)
    with pytest.raises(ValueError, match=r"candidates must hold at least one"):
        exhaustive_search([], Runs(EIGHT), resource=4)


def test_bad_resources():
    with pytest.raises(ValueError, match=r"min_resource must be >= 1, got 0"):
        successive_halving(list(EIGHT), Runs(EIGHT), min_resource=0, max_resource=48)
    with pytest.raises(ValueError, match=r"max_resource must be >= min_resource \(6\), got 5"):
        successive_halving(list(EIGHT), Runs(EIGHT), min_resource=6, max_resource=5)
    with pytest.raises(ValueError, match=r"resource must be >= 1"):
        exhaustive_search(list(EIGHT), Runs(EIGHT), resource=0)
    with pytest.raises(ValueError, match=r"budget must be >= 1, got 0"):
        successive_halving(list(EIGHT), Runs(EIGHT), min_resource=6, max_resource=48, budget=0)


def test_bad_scores_name_the_candidate():
    curves = dict(EIGHT)
    curves["c3"] = lambda r: math.nan
    with pytest.raises(ValueError, match=r"advance\('c3', 6\) returned nan"):
        successive_halving(list(curves), Runs(curves), min_resource=6, max_resource=48)
    curves["c3"] = lambda r: "high"
    with pytest.raises(ValueError, match=r"advance\('c3', 48\) returned 'high'"):
        exhaustive_search(list(curves), Runs(curves), resource=48)


def test_choice_note_weighs_the_margin_against_the_noise_and_names_a_grid_edge():
    from tlhelpers.selection import choice_note

    assert choice_note({0.3: 0.80, 3.0: 0.70}, se=0.01).startswith(
        "0.3: margin 0.100 over 3: more than two"
    )
    assert "at an edge of its grid" in choice_note({0.3: 0.80, 3.0: 0.70}, se=0.01)
    middle = choice_note({0.1: 0.70, 1.0: 0.75, 10.0: 0.74}, se=0.02)
    assert (
        middle.startswith("1: margin 0.010 over 10: within two standard errors")
        and "edge" not in middle
    )
    assert "ties with 3 (the first listed is kept)" in choice_note({0.3: 0.5, 3.0: 0.5}, se=0.01)
    assert "one candidate only" in choice_note({1.0: 0.5}, se=0.01)
    with pytest.raises(ValueError, match="scores"):
        choice_note({}, se=0.01)
    with pytest.raises(ValueError, match="se"):
        choice_note({1.0: 0.5}, se=-1)
