"""Exercises of notebook 10 (adaptive transfer): successive halving's schedule and loop, a LogME
ranking of sources, and an open challenge: choose the source yourself.

``from tlhelpers.exercises import ex10``; ``ex10.schedule.check(halving_rounds)``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models import load_backbone, split_model
from ..selection import halving_schedule, successive_halving
from ..transferability import logme
from ._challenge import FewShotChallenge
from ._core import Exercise, Wrong, call_student

__all__ = ["schedule", "halving", "ranking", "challenge", "challenge_data"]


# ------------------------------------------------------------------ 1. the halving schedule


def _as_pairs(out, what: str) -> list[tuple[int, int]]:
    if not isinstance(out, (list, tuple)):
        raise Wrong(
            f"{what} should be a list of (candidates, steps) pairs, got a {type(out).__name__}."
        )
    pairs = []
    for item in out:
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise Wrong(f"each round should be a pair (n_i, r_i), got {item!r}.")
        try:
            n, r = (int(v) for v in item)
        except (TypeError, ValueError):
            raise Wrong(f"each round should hold two integers, got {item!r}.") from None
        if (n, r) != tuple(item):
            raise Wrong(f"each round should hold two integers, got {item!r}.")
        pairs.append((n, r))
    return pairs


def _check_schedule(fn, hidden: bool) -> str:
    cases = ([(9, 3, 2, 18), (8, 2, 1, 8), (10, 3, 3, 9), (5, 2, 4, 100)] if not hidden
             else [(27, 3, 1, 27), (6, 2, 5, 15)])  # fmt: skip
    for n, eta, r0, big_r in cases:
        out = call_student(fn, n, eta, r0, big_r, name="halving_rounds")
        got = _as_pairs(out, "`halving_rounds`")
        want = halving_schedule(n, factor=eta, min_resource=r0, max_resource=big_r)
        if got == want:
            continue
        call = f"halving_rounds({n}, {eta}, {r0}, {big_r})"
        floor = [(n // eta**i, r) for i, (_, r) in enumerate(want)]
        if got == floor and floor != want:
            raise Wrong(f"{call}: round i keeps ceil(n / eta^i) candidates, not the floor: "
                        "a candidate is never dropped for rounding.")  # fmt: skip
        by_n = 1 + int(math.log(n, eta) + 1e-9)
        if len(got) == by_n and len(want) < by_n:
            raise Wrong(f"{call}: {len(got)} rounds, but the steps run out first: the number of "
                        "rounds is 1 + min(floor(log_eta n), floor(log_eta(R // r_0))).")  # fmt: skip
        if len(got) == len(want) + 1 or len(got) == len(want) - 1:
            raise Wrong(f"{call}: {len(got)} rounds instead of {len(want)}: there are "
                        "1 + min(floor(log_eta n), floor(log_eta(R // r_0))) rounds.")  # fmt: skip
        if [k for k, _ in got] == [k for k, _ in want] and [r for _, r in got] == [
            r0 * (i + 1) for i in range(len(want))
        ]:
            raise Wrong(f"{call}: the steps grow by a factor eta per round (r_i = r_0 eta^i), "
                        "not by r_0.")  # fmt: skip
        raise Wrong(f"{call}: expected {want}, got {got}.")
    return (
        "n_i = ceil(n / eta^i) candidates trained to r_i = r_0 eta^i steps, as many rounds as fit."
    )


schedule = Exercise(
    id="ex10_schedule",
    title="Successive halving's schedule",
    minutes=10,
    checker=_check_schedule,
    answer_name="halving_rounds",
    hints=[
        "Round i keeps ceil(n / eta^i) candidates and trains them to r_0 eta^i steps.",
        "It stops when one candidate is left (floor(log_eta n) + 1 rounds) or when the next round "
        "would pass R (floor(log_eta(R // r_0)) + 1 rounds): whichever comes first. Use integer "
        "loops rather than math.log (0.999... rounds down).",
        "rounds = 1 + min(ilog(n), ilog(R // r0)) with ilog(x) = the largest k with eta**k <= x; "
        "return [(math.ceil(n / eta**i), r0 * eta**i) for i in range(rounds)]",
    ],
    solution_code="""
    def halving_rounds(n, eta, r0, R):
        def ilog(x):
            k = 0
            while eta ** (k + 1) <= x:
                k += 1
            return k

        rounds = 1 + min(ilog(n), ilog(R // r0))
        return [(math.ceil(n / eta**i), r0 * eta**i) for i in range(rounds)]
    """,
)


# ------------------------------------------------------------------ 2. the halving loop


def _scores(seed: int, candidates: list[str]) -> dict[str, tuple[float, float]]:
    """Per candidate (start, slope): the leader after a few steps is not the final one."""
    rng = np.random.default_rng(seed)
    start = rng.permutation(len(candidates)) / len(candidates)
    slope = rng.permutation(len(candidates)) / len(candidates) * 0.2
    return {c: (float(a), float(b)) for c, a, b in zip(candidates, start, slope, strict=True)}


class _Recorder:
    """``advance(candidate, steps)`` with fixed score curves; records every call."""

    def __init__(self, curves: dict[str, tuple[float, float]]) -> None:
        self.curves = curves
        self.calls: list[tuple[str, int]] = []

    def __call__(self, candidate, steps):
        if candidate not in self.curves:
            raise ValueError(f"unknown candidate {candidate!r}")
        self.calls.append((candidate, int(steps)))
        a, b = self.curves[candidate]
        return a + b * math.log(steps) if steps > 0 else a


def _check_halving(fn, hidden: bool) -> str:
    # the last case runs out of steps first: its last round holds 3 candidates to choose from
    cases = (
        [(0, 9, 3, 2, 18), (1, 8, 2, 1, 8), (2, 9, 3, 2, 6)] if not hidden else [(5, 10, 3, 1, 9)]
    )
    for seed, n, eta, r0, big_r in cases:
        cands = [f"c{i}" for i in range(n)]
        curves = _scores(seed, cands)
        mine = _Recorder(curves)
        out = call_student(fn, list(cands), mine, eta, r0, big_r, name="halving")
        ref = _Recorder(curves)
        want = successive_halving(cands, ref, min_resource=r0, max_resource=big_r, factor=eta)
        if out is None:
            raise Wrong("`halving` returned None: return the chosen candidate.")
        if isinstance(out, (float, np.floating)) and not isinstance(out, str):
            raise Wrong("`halving` returned a score; return the chosen candidate itself.")
        if out not in cands:
            raise Wrong(f"`halving` should return one of the candidates, got {out!r}.")
        rounds = halving_schedule(n, factor=eta, min_resource=r0, max_resource=big_r)
        if mine.calls == ref.calls and out != want.best:
            worst = min(want.rounds[-1].candidates, key=lambda c: want.scores[c])
            if out == worst:
                raise Wrong("you returned the worst of the last round: keep the highest scores.")
            raise Wrong(f"the calls were right but you chose {out!r}; the best of the last round "
                        f"is {want.best!r}.")  # fmt: skip
        if mine.calls != ref.calls:
            steps = {s for _, s in mine.calls}
            if len(mine.calls) == n * len(rounds):
                raise Wrong("every candidate was trained in every round: after each round keep "
                            f"only the best ceil(n_i / {eta}).")  # fmt: skip
            first = [c for c, s in ref.calls if s == rounds[-1][1]]
            last = [c for c, s in mine.calls if s == max(steps, default=0)]
            if set(last) != set(first) and {s for _, s in ref.calls} == steps:
                raise Wrong(f"the last round trained {sorted(last)}, but the best candidates "
                            f"were {sorted(first)}: keep the highest scores at each cut.")  # fmt: skip
            raise Wrong(f"for {n} candidates (eta={eta}, r_0={r0}, R={big_r}) the calls should be "
                        f"{ref.calls}, yours were {mine.calls}.")  # fmt: skip
        if out != want.best:
            raise Wrong(f"you chose {out!r}; the best of the last round is {want.best!r}.")
    return "Each round trains the survivors to r_i steps, keeps the best ceil(n_i / eta), returns the top."


halving = Exercise(
    id="ex10_halving",
    title="Successive halving: the loop",
    minutes=15,
    checker=_check_halving,
    answer_name="halving",
    hints=[
        "Walk through your schedule: in round i, call advance(c, r_i) for every surviving "
        "candidate, then keep the n_{i+1} with the highest scores.",
        "sorted(alive, key=lambda c: -score[c]) ranks best first (ties keep their order); the "
        "survivors of the next round are its first n_{i+1}.",
        "alive = list(candidates); for n_i, r_i in halving_rounds(len(alive), eta, r0, R): "
        "alive = alive[:n_i]; score = {c: advance(c, r_i) for c in alive}; "
        "alive = sorted(alive, key=lambda c: -score[c]). Finally return alive[0].",
    ],
    solution_code="""
    def halving(candidates, advance, eta, r0, R):
        alive = list(candidates)
        for n_i, r_i in halving_rounds(len(alive), eta, r0, R):
            alive = alive[:n_i]
            score = {c: advance(c, r_i) for c in alive}
            alive = sorted(alive, key=lambda c: -score[c])
        return alive[0]
    """,
)


# ------------------------------------------------------------------ 3. a LogME ranking


def _feature_sets(seed: int, n: int, d: int, k: int):
    """Features of four 'sources': more or less class signal; labels 0..k-1."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(k).repeat(n // k)
    means = torch.randn(k, d, generator=g)
    sets = {}
    # (signal, noise): the loudest features carry no signal, so variance is not the ranking
    for name, signal, noise in (("weak", 0.2, 1.0), ("strong", 2.0, 1.0), ("none", 0.0, 3.0),
                                ("medium", 0.8, 1.0)):  # fmt: skip
        sets[name] = noise * torch.randn(len(labels), d, generator=g) + signal * means[labels]
    return sets, labels


def _check_ranking(fn, hidden: bool) -> str:
    cases = [(0, 40, 6, 4), (1, 30, 8, 3)] if not hidden else [(4, 36, 5, 4)]
    for seed, n, d, k in cases:
        sets, labels = _feature_sets(seed, n, d, k)
        out = call_student(fn, dict(sets), labels.clone(), name="rank_sources")
        if out is None:
            raise Wrong("`rank_sources` returned None: return the source names, best first.")
        if isinstance(out, dict):
            raise Wrong("you returned a dict of scores; return the names as a list, best first "
                        "(sorted by score).")  # fmt: skip
        if not isinstance(out, (list, tuple)) or not all(isinstance(x, str) for x in out):
            raise Wrong(f"return a list of the source names, got a {type(out).__name__}.")
        scores = {name: logme(f.numpy(), labels.numpy()) for name, f in sets.items()}
        want = sorted(scores, key=lambda s: -scores[s])
        if list(out) == want:
            continue
        if sorted(out) != sorted(want):
            raise Wrong(f"return every source exactly once: {sorted(want)}, got {list(out)}.")
        if list(out) == want[::-1]:
            raise Wrong("that is the order from worst to best: a higher LogME means features "
                        "that explain the labels better, so it comes first.")  # fmt: skip
        raise Wrong(
            f"by LogME the order is {want} (scores "
            + ", ".join(f"{s} {scores[s]:.3f}" for s in want)
            + f"), you gave {list(out)}."
        )
    return "Sources ranked by LogME, highest (best-explained labels) first."


ranking = Exercise(
    id="ex10_ranking",
    title="Rank candidate sources by LogME",
    minutes=10,
    checker=_check_ranking,
    answer_name="rank_sources",
    hints=[
        "logme(features, labels) from tlhelpers.transferability scores one source; higher is better.",
        "Compute a dict name -> score, then sort the names by their score, highest first.",
        "s = {name: logme(f.numpy(), labels.numpy()) for name, f in features.items()}; "
        "return sorted(s, key=lambda name: -s[name])",
    ],
    solution_code="""
    def rank_sources(features, labels):
        s = {name: logme(f.numpy(), labels.numpy()) for name, f in features.items()}
        return sorted(s, key=lambda name: -s[name])
    """,
)


# ------------------------------------------------------------------ 4. the open challenge

#: Candidate sources of the challenge (notebook 10's, less the two fmnist_a variants).
SOURCES = ("digits", "fmnist_random_labels", "fmnist_a", "fmnist_mixed_a")


def _sources(order: tuple[int, ...]):
    """The candidates as ``{"source_1": model, ...}``, in ``order`` of :data:`SOURCES`."""
    return ({f"source_{i}": split_model(load_backbone("small_cnn", source=SOURCES[j])).eval()
             for i, j in enumerate(order, start=1)},)  # fmt: skip


#: The student sees the candidates in one order, the check passes them in another: a source
#: chosen by name rather than by the data gets a different network.
SHOWN, CHECKED = (0, 1, 2, 3), (3, 2, 0, 1)

#: Target fmnist_mixed_b at 5 labels per class; four candidate sources, one to choose.
CHALLENGE = FewShotChallenge("fmnist_mixed_b", per_class=5, answer_name="choose_and_train",
                             extras=lambda: _sources(SHOWN),
                             check_extras=lambda: _sources(CHECKED),
                             budget_s=30.0, test_seed=2028, val_seed=9)  # fmt: skip


def challenge_data() -> tuple:
    """``(train, sources)``: the 25 labelled images and a dict ``source_1..source_4`` -> network."""
    return CHALLENGE.data()


challenge = Exercise(
    id="ex10_challenge",
    title="Open challenge: choose the source yourself, 5 labels per class, 30 s",
    minutes=30,
    checker=CHALLENGE.check,
    answer_name="choose_and_train",
    hints=[
        "Score the sources before training any: their frozen features on your 25 images and "
        "LogME (exercise 3) cost one forward pass each.",
        "extract_features(model, train) (tlhelpers.features) gives (features, labels); "
        "transfer_model(best_source, 5, seed=0) and get_recipe('fine_tune') then train the winner.",
        "feats = {n: extract_features(m, train)[0] for n, m in sources.items()}; "
        "best = rank_sources(feats, train.targets)[0]; model = transfer_model(sources[best], 5, seed=0); "
        "get_recipe('fine_tune').fit(model, train, seed=0); return model.eval()",
    ],
    solution_code="""
    def choose_and_train(train, sources):
        feats = {name: extract_features(m, train)[0] for name, m in sources.items()}
        best = rank_sources(feats, train.targets)[0]
        model = transfer_model(sources[best], 5, seed=0)
        get_recipe("fine_tune").fit(model, train, seed=0)
        return model.eval()
    """,
)
