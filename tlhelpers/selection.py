"""Choosing a configuration under a compute budget: successive halving and exhaustive search.

Taught in notebook 10 ("adaptive transfer"), where a candidate is a transfer method and its
strength (linear probe, fine-tuning, L2-SP, LwF) and the resource is optimiser steps.

Successive halving (Karnin, Koren & Somekh, "Almost Optimal Exploration in Multi-Armed
Bandits", ICML 2013, for best-arm identification; Jamieson & Talwalkar, "Non-stochastic Best
Arm Identification and Hyperparameter Optimization", AISTATS 2016, for hyper-parameter
search; the inner loop of Hyperband, Li et al., JMLR 2018) gives every one of :math:`n` candidates a small resource :math:`r_0`, keeps the best
:math:`\\lceil n_i / \\eta \\rceil` by validation score and multiplies their resource by
:math:`\\eta` (``factor``), until one candidate is left or the next resource would exceed
``max_resource``:

.. math::

    r_i = r_0\\,\\eta^{i}, \\qquad n_i = \\lceil n / \\eta^{i} \\rceil, \\qquad
    i = 0, \\dots, \\min\\big(\\lfloor \\log_\\eta n \\rfloor,\\;
    \\lfloor \\log_\\eta (R \\,/\\!/\\, r_0) \\rfloor\\big),

the schedule of scikit-learn's ``HalvingGridSearchCV`` (``aggressive_elimination=False``;
the logarithms are computed exactly here, in integers). Its assumption: the ranking after
a few steps predicts the ranking after many. A candidate that starts slowly and ends best
is dropped early (``tests/test_selection.py`` shows one).

**Ties.** Validation accuracy on a few hundred images moves in steps of one image, so
candidates often tie. Both searches rank with a stable sort: among equal scores the
candidate given *earlier* in ``candidates`` ranks first, survives a cut and wins a final
tie. That is a stated rule, not chance: list the candidates in the order you would prefer
on a tie, or in a random order to break ties at random (notebook 10 draws one order per
target and seed, so that no candidate is favoured). :func:`cut_ties` reports every cut (and final pick) that fell inside a
tie, i.e. where the list order, not the score, decided.

The caller supplies ``advance(candidate, resource) -> score``: bring that candidate to
``resource`` steps in total and return its validation score (higher is better). With
``resume=True`` it continues the candidate's run (charged ``resource`` minus the steps it
already had); with ``resume=False`` it retrains from zero (charged ``resource``, as
scikit-learn refits). Every call is timed (CPU seconds of this process, and wall seconds),
so a :class:`SearchResult` records the steps and seconds each candidate used.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .validation import check_int

__all__ = [
    "choice_note",
    "Compute",
    "Round",
    "SearchResult",
    "halving_schedule",
    "min_resource_reaching",
    "schedule_steps",
    "successive_halving",
    "exhaustive_search",
    "cut_ties",
]

Advance = Callable[[Any, int], float]


@dataclass
class Compute:
    """What one candidate cost: optimiser ``steps``, CPU ``seconds`` (``time.process_time``,
    the measure that contention on other cores does not inflate) and ``wall_seconds``."""

    steps: int = 0
    seconds: float = 0.0
    wall_seconds: float = 0.0


@dataclass(frozen=True)
class Round:
    """One round: the ``candidates`` trained to ``resource`` and their ``scores`` (best first)."""

    index: int
    resource: int
    candidates: tuple
    scores: tuple[float, ...]


@dataclass
class SearchResult:
    """The outcome of a search: the ``best`` candidate, every round and every candidate's cost.

    ``scores`` holds each candidate's last score, ``reached`` the steps its run stands at.
    """

    method: str
    best: Any
    best_score: float
    rounds: list[Round]
    compute: dict[Any, Compute]
    scores: dict[Any, float]
    reached: dict[Any, int]
    resume: bool = True
    candidates: tuple = field(default_factory=tuple)

    @property
    def total_steps(self) -> int:
        return sum(c.steps for c in self.compute.values())

    @property
    def total_seconds(self) -> float:
        return sum(c.seconds for c in self.compute.values())

    @property
    def total_wall_seconds(self) -> float:
        return sum(c.wall_seconds for c in self.compute.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (candidates as ``str``), for ``results.json``."""
        return {
            "method": self.method,
            "best": str(self.best),
            "best_score": float(self.best_score),
            "total_steps": self.total_steps,
            "total_seconds": self.total_seconds,
            "total_wall_seconds": self.total_wall_seconds,
            "resume": self.resume,
            "rounds": [
                {
                    "index": r.index,
                    "resource": r.resource,
                    "candidates": [str(c) for c in r.candidates],
                    "scores": list(r.scores),
                }
                for r in self.rounds
            ],  # fmt: skip
            "compute": {
                str(k): {"steps": v.steps, "seconds": v.seconds, "wall_seconds": v.wall_seconds}
                for k, v in self.compute.items()
            },
        }


def _check_factor(factor: Any) -> int:
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(
            "factor must be an integer >= 2 (each round keeps 1/factor of the candidates and "
            f"gives them factor times the resource), got {factor!r}."
        )
    return factor


def _check_candidates(candidates: Sequence[Hashable]) -> tuple:
    if isinstance(candidates, (str, bytes)):  # tuple("abc") would be three candidates
        raise ValueError(
            f"candidates must be a list of candidates, got the {type(candidates).__name__} "
            f"{candidates!r}; write [{candidates!r}] for a single one."
        )
    cands = tuple(candidates)
    if not cands:
        raise ValueError(
            f"candidates must hold at least one candidate (e.g. ('l2sp', 0.1)), got {list(cands)!r}."
        )
    seen: set = set()
    for c in cands:
        try:
            hash(c)
        except TypeError:
            raise ValueError(
                f"candidates must be hashable (they key the scores), got {c!r} "
                f"({type(c).__name__}); write it as a tuple, e.g. {_as_tuple(c)!r}."
            ) from None
        if c in seen:
            raise ValueError(f"candidates must be distinct, got {c!r} more than once.")
        seen.add(c)
    return cands


def _as_tuple(c: Any) -> Any:
    """A hashable spelling of an unhashable candidate (lists and dicts become tuples)."""
    if isinstance(c, dict):
        return tuple((k, _as_tuple(v)) for k, v in c.items())
    if isinstance(c, (list, set, tuple)):
        return tuple(_as_tuple(v) for v in c)
    return c


def _ilog(x: int, base: int) -> int:
    """floor(log_base x) for integers x >= 1, exactly (no float rounding)."""
    k = 0
    while base ** (k + 1) <= x:
        k += 1
    return k


def choice_note(scores: Mapping[Any, float], se: float) -> str:
    """How much a choice on validation is worth, in words: the winner's margin over the
    runner-up against the validation noise, and whether it sits at an edge of its grid.

    ``scores`` maps each candidate value (in grid order, numbers) to its validation score,
    higher is better; ``se`` is one standard error of a score (e.g. ``sqrt(0.25 / n)`` for an
    accuracy on ``n`` images). A margin within two standard errors makes the choice weak
    evidence; a choice at the grid's smallest or largest value means the best value may lie
    outside the grid. Ties go to the first candidate listed (as ``max`` does).
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError(
            f"scores must be a non-empty mapping of candidate -> score, got {scores!r}."
        )
    if not isinstance(se, (int, float)) or isinstance(se, bool) or not se >= 0:
        raise ValueError(f"se must be a non-negative number, got {se!r}.")
    values = list(scores)
    best = max(values, key=lambda v: scores[v])
    if len(values) == 1:
        return f"{best:g}: one candidate only, nothing was chosen"
    runner = max((v for v in values if v != best), key=lambda v: scores[v])
    margin = float(scores[best]) - float(scores[runner])
    if margin == 0:
        note = f"ties with {runner:g} (the first listed is kept)"
    elif margin <= 2 * se:
        note = f"margin {margin:.3f} over {runner:g}: within two standard errors (noise)"
    else:
        note = f"margin {margin:.3f} over {runner:g}: more than two standard errors"
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if numeric and best in (min(values), max(values)):
        note += "; at an edge of its grid"
    return f"{best:g}: {note}"


def halving_schedule(
    n_candidates: int, *, factor: int = 3, min_resource: int, max_resource: int
) -> list[tuple[int, int]]:
    """The rounds of successive halving as ``[(n_i, r_i), ...]`` (candidates, resource).

    See the module docstring for the formula; equal to scikit-learn's
    ``HalvingGridSearchCV`` ``n_candidates_`` / ``n_resources_``. The last round holds
    more than one candidate when the resources run out first (``R // r_0 < n``).
    """
    n = check_int("n_candidates", n_candidates, minimum=1)
    eta = _check_factor(factor)
    r0 = check_int("min_resource", min_resource, minimum=1)
    rmax = check_int("max_resource", max_resource, minimum=1)
    if rmax < r0:
        raise ValueError(f"max_resource must be >= min_resource ({r0}), got {rmax}.")
    rounds = 1 + min(_ilog(n, eta), _ilog(rmax // r0, eta))
    out, k = [], n
    for i in range(rounds):
        out.append((k, r0 * eta**i))
        k = math.ceil(k / eta)
    return out


def min_resource_reaching(n_candidates: int, *, factor: int = 3, max_resource: int) -> int:
    """The :math:`r_0` whose schedule's last round trains to exactly ``max_resource``.

    :math:`r_0 = R / \\eta^{\\lfloor \\log_\\eta n \\rfloor}`, so the survivors get as many steps
    as every candidate of the exhaustive search. ``ValueError`` unless ``max_resource`` is
    a multiple of :math:`\\eta^{\\lfloor \\log_\\eta n \\rfloor}`.
    """
    n = check_int("n_candidates", n_candidates, minimum=1)
    eta = _check_factor(factor)
    rmax = check_int("max_resource", max_resource, minimum=1)
    step = eta ** _ilog(n, eta)
    if rmax % step:
        raise ValueError(
            f"max_resource must be a multiple of {step} (factor {eta} to the power "
            f"floor(log_{eta} {n}) for {n} candidates), got {rmax}."
        )
    return rmax // step


def schedule_steps(schedule: Sequence[tuple[int, int]], *, resume: bool = True) -> int:
    """Total steps of a schedule: :math:`\\sum_i n_i r_i` when every round retrains from zero,
    :math:`\\sum_i n_i (r_i - r_{i-1})` (:math:`r_{-1} = 0`) when survivors resume."""
    total, prev = 0, 0
    for k, r in schedule:
        total += k * (r - prev if resume else r)
        prev = r
    return total


def _score(advance: Advance, candidate: Any, resource: int, cost: Compute, charged: int) -> float:
    t_cpu, t_wall = time.process_time(), time.perf_counter()
    value = advance(candidate, resource)
    cost.seconds += time.process_time() - t_cpu
    cost.wall_seconds += time.perf_counter() - t_wall
    cost.steps += charged
    return _score_value(value, f"advance({candidate!r}, {resource})")


def _score_value(value: Any, call: str) -> float:
    """A finite Python float from a number, a NumPy scalar or a one-element tensor/array."""
    kind = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "ndim") and not isinstance(value, np.generic):
        if math.prod(value.shape) != 1:  # a tensor or array of several values
            raise ValueError(
                f"{call} returned a {kind} of shape {tuple(value.shape)}; it must return one "
                "number, the validation score (higher is better)."
            )
        value = value.reshape(-1)[0].item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise ValueError(
            f"{call} returned {value!r}; it must return a number, the validation score "
            f"(higher is better), got {kind}."
        )
    if not math.isfinite(value):
        raise ValueError(
            f"{call} returned {value!r}; it must return a finite validation score (higher "
            "is better), got a non-finite one (a diverged run?)."
        )
    return float(value)


def _ranked(candidates: Sequence, scores: dict) -> list:
    """Best first; ties keep the given order (sorted is stable)."""
    return sorted(candidates, key=lambda c: -scores[c])


def _check_budget(budget: int | None, needed: int, what: str) -> None:
    if budget is None:
        return
    budget = check_int("budget", budget, minimum=1)
    if needed > budget:
        raise ValueError(
            f"budget={budget} steps is too small: {what} needs {needed} steps. Allowed: "
            f"budget >= {needed} (or fewer candidates, a smaller min_resource or resource)."
        )


def successive_halving(
    candidates: Sequence[Hashable],
    advance: Advance,
    *,
    min_resource: int,
    max_resource: int,
    factor: int = 3,
    budget: int | None = None,
    resume: bool = True,
) -> SearchResult:
    """Successive halving over ``candidates`` (see the module docstring).

    Args:
        candidates: distinct, hashable configurations, e.g. ``("l2sp", 0.1)``.
        advance: ``advance(candidate, resource) -> validation score``, a finite number (a
            NumPy scalar or a one-element tensor counts as one); with ``resume`` it
            continues that candidate's run to ``resource`` steps in total.
        min_resource, max_resource: :math:`r_0` and :math:`R` (steps).
        factor: :math:`\\eta`, an integer >= 2.
        budget: if given, the schedule's total steps (:func:`schedule_steps`) must not
            exceed it; checked before anything is trained.
        resume: whether ``advance`` continues runs (cost of a survivor: the extra steps)
            or retrains from zero (cost: the full resource).

    Returns:
        A :class:`SearchResult`; ``best`` is the top candidate of the last round (ties:
        the earlier one in ``candidates``).
    """
    cands = _check_candidates(candidates)
    sched = halving_schedule(len(cands), factor=factor, min_resource=min_resource,
                             max_resource=max_resource)  # fmt: skip
    needed = schedule_steps(sched, resume=bool(resume))
    _check_budget(budget, needed, f"successive halving over {len(cands)} candidates (factor "
                  f"{factor}, min_resource {min_resource}, max_resource {max_resource})")  # fmt: skip
    compute = {c: Compute() for c in cands}
    scores: dict = {}
    reached = dict.fromkeys(cands, 0)
    rounds: list[Round] = []
    alive = list(cands)
    for i, (k, r) in enumerate(sched):
        alive = alive[:k]
        for c in alive:
            charged = r - reached[c] if resume else r
            scores[c] = _score(advance, c, r, compute[c], charged)
            reached[c] = r
        alive = _ranked(alive, scores)
        rounds.append(Round(i, r, tuple(alive), tuple(scores[c] for c in alive)))
    best = alive[0]
    return SearchResult("successive_halving", best, scores[best], rounds, compute, scores,
                        reached, bool(resume), cands)  # fmt: skip


def exhaustive_search(
    candidates: Sequence[Hashable],
    advance: Advance,
    *,
    resource: int,
    budget: int | None = None,
    continue_from: SearchResult | None = None,
) -> SearchResult:
    """Every candidate trained to ``resource`` steps; the best validation score wins.

    ``continue_from`` (a :func:`successive_halving` result with ``resume=True`` over the
    same ``advance``) saves the caller's time: each run continues from where halving left
    it. Every candidate is still charged ``resource`` steps and the seconds of all its calls
    (halving's and this search's): the cost the exhaustive search has when it runs alone,
    slightly overcounted in seconds, since halving's intermediate evaluations (one per round
    a candidate took part in) are included where a lone run would evaluate once.
    """
    cands = _check_candidates(candidates)
    r = check_int("resource", resource, minimum=1)
    _check_budget(budget, len(cands) * r, f"exhaustive search over {len(cands)} candidates "
                  f"at resource {r}")  # fmt: skip
    reached = dict.fromkeys(cands, 0)
    compute = {c: Compute() for c in cands}
    scores: dict = {}
    if continue_from is not None:
        if not continue_from.resume:
            raise ValueError(
                "continue_from must be a search run with resume=True (its runs can be "
                "continued); got one with resume=False."
            )
        for c in cands:
            if continue_from.reached.get(c, 0) > r:
                raise ValueError(
                    f"continue_from trained {c!r} to {continue_from.reached[c]} steps, beyond "
                    f"resource={r}."
                )
            if c in continue_from.reached:
                reached[c] = continue_from.reached[c]
                old = continue_from.compute[c]
                compute[c] = Compute(old.steps, old.seconds, old.wall_seconds)
                if reached[c] == r:
                    scores[c] = continue_from.scores[c]
    for c in cands:
        if c not in scores:
            scores[c] = _score(advance, c, r, compute[c], r - reached[c])
            reached[c] = r
    ranked = _ranked(cands, scores)
    best = ranked[0]
    rounds = [Round(0, r, tuple(ranked), tuple(scores[c] for c in ranked))]
    return SearchResult("exhaustive", best, scores[best], rounds, compute, scores, reached,
                        True, cands)  # fmt: skip


def cut_ties(result: SearchResult) -> list[dict[str, Any]]:
    """Every cut of ``result`` that fell inside a tie, where list order decided (see Ties).

    Round :math:`i` keeps the candidates of round :math:`i+1` (the last round keeps one,
    the choice). A cut is tied when the last candidate kept and the first dropped have
    the same score. Each entry: ``round``, ``resource``, the tied ``score``, ``keep`` (how
    many the cut kept), and the tied candidates ``kept`` and ``dropped`` (in rank order).
    An empty list means every cut was decided by the scores alone.
    """
    out = []
    for i, rnd in enumerate(result.rounds):
        keep = len(result.rounds[i + 1].candidates) if i + 1 < len(result.rounds) else 1
        if keep >= len(rnd.candidates) or rnd.scores[keep - 1] != rnd.scores[keep]:
            continue
        score = rnd.scores[keep]
        tied = [c for c, s in zip(rnd.candidates, rnd.scores, strict=True) if s == score]
        kept = tuple(c for c in tied if c in rnd.candidates[:keep])
        dropped = tuple(c for c in tied if c not in kept)
        out.append({"round": rnd.index, "resource": rnd.resource, "score": score, "keep": keep,
                    "kept": kept, "dropped": dropped})  # fmt: skip
    return out
