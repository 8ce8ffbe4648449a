r"""Paired comparisons over seeds, their verdicts, and claims that can fail.

Two methods run on the same seeds (same few-shot draw, same head initialisation) give
paired values :math:`a_i, b_i`. The paired differences :math:`d_i = a_i - b_i` remove
what the seed does to both, and the Student-t interval on their mean is

.. math::

    \bar d \pm t_{(1+c)/2,\,n-1}\; \frac{s_d}{\sqrt n},

with :math:`s_d` the sample standard deviation of the :math:`d_i` (the same interval as
``scipy.stats.ttest_rel(a, b).confidence_interval()``; Student, 1908). The verdict is
``"better"`` when the interval lies above 0, ``"worse"`` when below, and ``"not
distinguishable"`` otherwise: a positive *mean* alone is not a claim. For a quantity that is
neither a merit nor a cost (a bias, a gap), ``neutral=True`` words the verdict ``"larger"`` /
``"smaller"`` instead.

When seed :math:`i` of ``a`` and seed :math:`i` of ``b`` share nothing (two class splits,
two data sets), pairing them would be arbitrary: :func:`compare_unpaired` gives Welch's
interval instead (Welch, 1947),

.. math::

    \bar a - \bar b \pm t_{(1+c)/2,\,\nu} \sqrt{s_a^2/n_a + s_b^2/n_b},\qquad
    \nu = \frac{(s_a^2/n_a + s_b^2/n_b)^2}{\frac{(s_a^2/n_a)^2}{n_a-1} + \frac{(s_b^2/n_b)^2}{n_b-1}}

(Welch-Satterthwaite :math:`\nu`; ``scipy.stats.ttest_ind(a, b, equal_var=False)``'s
interval), with the same verdict words and options as :func:`compare`.

Notebooks print every sentence about their own numbers from a :class:`Comparison`, and
assert claims with ``save_results(..., claims=[c.expect("better")])``, which writes
``results.json`` first and then raises :class:`ClaimFailed` for any claim that does not hold::

    c = compare(acc["fine-tuning"], acc["scratch"], name_a="fine-tuning", name_b="scratch",
                metric="test accuracy")
    print(c)   # fine-tuning vs scratch (test accuracy, 10 paired seeds): +0.052 (95% CI ...): better.

A verdict that holds at these seeds may not hold at the next ones. Every claim therefore
carries its estimated chance to hold at a fresh seed offset with the same number of seeds
(:func:`replication_probability`); a claim is *asserted* only when that chance is at least
:data:`MIN_CHANCE`, and is otherwise a *finding*: printed with its numbers and its chance,
recorded in ``results.json``, never raised on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

__all__ = [
    "VERDICTS",
    "NEUTRAL_VERDICTS",
    "Comparison",
    "Claim",
    "ClaimFailed",
    "compare",
    "compare_all",
    "find_comparison",
    "compare_unpaired",
    "UnpairedComparison",
    "print_verdicts",
    "verdict_groups",
    "who_beat",
    "summarise_verdicts",
    "check_claims",
    "Equivalence",
    "equivalence",
    "MIN_CHANCE",
    "replication_probability",
    "findings",
    "in_words",
    "ResultsTable",
    "table",
]

#: The chance to hold at a fresh seed offset (:func:`replication_probability`) a claim needs to
#: be asserted; a claim below it is a finding.
MIN_CHANCE: float = 0.95

#: The possible verdicts of ``a`` relative to ``b``.
VERDICTS: tuple[str, ...] = ("better", "worse", "not distinguishable")
#: The verdicts of a ``neutral`` comparison (``a`` larger / smaller than ``b``, no merit implied).
NEUTRAL_VERDICTS: tuple[str, ...] = ("larger", "smaller", "not distinguishable")


@dataclass(frozen=True)
class _Interval:
    """What a paired and an unpaired comparison share: the data, an interval on ``a - b`` and
    its verdict (:class:`Comparison`, :class:`UnpairedComparison`)."""

    name_a: str
    name_b: str
    metric: str
    confidence: float
    a: tuple[float, ...]
    b: tuple[float, ...]
    ci_low: float
    ci_high: float
    lower_is_better: bool = False
    neutral: bool = False

    @property
    def verdicts(self) -> tuple[str, ...]:
        """The verdicts this comparison can give: :data:`VERDICTS` or :data:`NEUTRAL_VERDICTS`."""
        return NEUTRAL_VERDICTS if self.neutral else VERDICTS

    @property
    def mean_a(self) -> float:
        return float(np.mean(self.a))

    @property
    def mean_b(self) -> float:
        return float(np.mean(self.b))

    @property
    def verdict(self) -> str:
        """``"better"`` / ``"worse"`` when the interval excludes 0, else ``"not distinguishable"``.

        ``"better"`` means a larger metric, or a smaller one with ``lower_is_better``;
        with ``neutral`` the words are ``"larger"`` / ``"smaller"``.
        """
        return _verdict(self.ci_low, self.ci_high, self.lower_is_better, self.neutral)

    @property
    def diff_mean(self) -> float:
        """The estimate of ``a - b`` the interval is around."""
        raise NotImplementedError

    def sizes(self) -> dict[str, int]:
        """How many values each side holds (``{"n": ...}`` when paired)."""
        raise NotImplementedError

    def sentence(self, width: int = 0) -> str:
        """The verdict as one sentence; ``width`` pads ``name_a`` (for aligned tables)."""
        raise NotImplementedError

    def __str__(self) -> str:
        return self.sentence()

    def to_dict(self) -> dict[str, Any]:
        """Everything as plain JSON types, for ``results.json``."""
        return {
            "name_a": self.name_a,
            "name_b": self.name_b,
            "metric": self.metric,
            "confidence": self.confidence,
            "a": list(self.a),
            "b": list(self.b),
            **self.sizes(),
            "mean_a": self.mean_a,
            "mean_b": self.mean_b,
            "diff_mean": self.diff_mean,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "lower_is_better": self.lower_is_better,
            "neutral": self.neutral,
            "verdict": self.verdict,
            "sentence": str(self),
        }

    @property
    def t_statistic(self) -> float:
        """:math:`\\bar d / \\mathrm{SE}` (``inf`` with the sign of the mean when the SE is 0;
        ``nan`` when mean and SE are both 0)."""
        raise NotImplementedError

    @property
    def df(self) -> float:
        """The degrees of freedom of the interval's t quantile."""
        raise NotImplementedError

    def replication(self, verdict: str, *, predictive: bool = True) -> float:
        """The chance that a fresh run with as many seeds gives ``verdict`` (see
        :func:`replication_probability`); ``predictive=False`` gives the power at the observed
        effect (optimistic)."""
        if verdict not in self.verdicts:
            shown = ", ".join(repr(v) for v in self.verdicts)
            raise ValueError(f"Unknown verdict {verdict!r}. Valid values: {shown}.")
        i = self.verdicts.index(verdict)  # larger-sense first, smaller-sense second, tie third
        sign = (1, -1, 0)[i]
        if self.lower_is_better and sign:
            sign = -sign
        return _replication_from_t(self.t_statistic, self.df, sign, self.confidence, predictive)

    def expect(self, verdict: str, *, check: bool = True) -> Claim:
        """A :class:`Claim` that this comparison's verdict is ``verdict`` (checked later).

        ``check=False`` makes it a finding whatever its chance: printed and recorded, never
        raised on (for a claim known to hold at too few seed offsets).
        """
        if not isinstance(check, bool):
            raise ValueError(f"check must be True or False, got {check!r}.")
        return _claim(self, verdict, check)


@dataclass(frozen=True)
class Comparison(_Interval):
    """Paired comparison of ``a`` against ``b`` over ``n`` seeds (see :func:`compare`)."""

    @property
    def n(self) -> int:
        """The number of paired seeds."""
        return len(self.a)

    def sizes(self) -> dict[str, int]:
        return {"n": self.n}

    @property
    def differences(self) -> tuple[float, ...]:
        """The paired differences :math:`a_i - b_i`, seed by seed."""
        return tuple(x - y for x, y in zip(self.a, self.b, strict=True))

    @property
    def diff_mean(self) -> float:
        return float(np.mean(self.differences))

    @property
    def t_statistic(self) -> float:
        """:math:`\\bar d / (s_d/\\sqrt n)`; ``inf`` with the mean's sign when every difference is
        the same and not 0, ``nan`` when they are all 0."""
        return _t_ratio(self.diff_mean, _sem(self.differences))

    @property
    def df(self) -> float:
        return float(self.n - 1)

    def sentence(self, width: int = 0) -> str:
        """The verdict as one sentence; ``width`` pads ``name_a`` (for aligned tables)."""
        pct = f"{100 * self.confidence:g}%"
        metric = f"{self.metric}, lower is better" if self.lower_is_better else self.metric
        why = ""
        d = np.asarray(self.differences)
        if np.ptp(d) <= 1e-12 * max(1.0, float(np.abs(d).max())):  # s_d = 0 up to rounding
            why = (
                f"; zero width because every paired difference was the same "
                f"({_fmt(self.differences[0])}), common with small test sets"
            )
        return (
            f"{self.name_a:<{width}} vs {self.name_b} ({metric}, {self.n} paired seeds): "
            f"{_fmt(self.diff_mean)} ({pct} CI {_fmt(self.ci_low)} to {_fmt(self.ci_high)}"
            f"{why}): {self.verdict}."
        )


def _verdict(ci_low: float, ci_high: float, lower_is_better: bool, neutral: bool) -> str:
    """The verdict word of an interval on ``a - b`` (see :attr:`Comparison.verdict`)."""
    if neutral:
        if ci_low > 0:
            return "larger"
        if ci_high < 0:
            return "smaller"
        return "not distinguishable"
    if ci_low > 0:
        return "worse" if lower_is_better else "better"
    if ci_high < 0:
        return "better" if lower_is_better else "worse"
    return "not distinguishable"


def _claim(comparison: _Interval, verdict: str, check: bool = True) -> Claim:
    if verdict not in comparison.verdicts:
        shown = ", ".join(repr(v) for v in comparison.verdicts)
        raise ValueError(f"Unknown expected verdict {verdict!r}. Valid values: {shown}.")
    return Claim(
        cast("Comparison | UnpairedComparison", comparison), verdict, check
    )  # its only kinds


def _f3(v: float) -> str:
    return f"{v:+.3f}"


@dataclass(frozen=True)
class UnpairedComparison(_Interval):
    """Welch comparison of ``a`` against ``b`` when their seeds share nothing (see :func:`compare_unpaired`)."""

    @property
    def n_a(self) -> int:
        return len(self.a)

    @property
    def n_b(self) -> int:
        return len(self.b)

    def sizes(self) -> dict[str, int]:
        return {"n_a": self.n_a, "n_b": self.n_b}

    @property
    def diff_mean(self) -> float:
        return float(np.mean(self.a) - np.mean(self.b))

    def _welch(self) -> tuple[float, float]:
        sa = float(np.var(self.a, ddof=1)) / self.n_a
        sb = float(np.var(self.b, ddof=1)) / self.n_b
        if sa + sb == 0:
            return 0.0, float(self.n_a + self.n_b - 2)
        df = (sa + sb) ** 2 / (sa**2 / (self.n_a - 1) + sb**2 / (self.n_b - 1))
        return math.sqrt(sa + sb), df

    @property
    def t_statistic(self) -> float:
        """Welch's :math:`(\\bar a - \\bar b)/\\sqrt{s_a^2/n_a + s_b^2/n_b}` (``inf``/``nan`` as
        :attr:`Comparison.t_statistic` when both spreads are 0)."""
        return _t_ratio(self.diff_mean, self._welch()[0])

    @property
    def df(self) -> float:
        """The Welch-Satterthwaite degrees of freedom."""
        return self._welch()[1]

    def sentence(self, width: int = 0) -> str:
        """The verdict as one sentence, every number at three decimals; ``width`` pads ``name_a``."""
        pct = f"{100 * self.confidence:g}%"
        metric = f"{self.metric}, lower is better" if self.lower_is_better else self.metric
        return (
            f"{self.name_a:<{width}} vs {self.name_b} ({metric}, {self.n_a} vs {self.n_b} seeds, "
            f"unpaired): {_f3(self.diff_mean)} ({pct} Welch CI {_f3(self.ci_low)} to "
            f"{_f3(self.ci_high)}): {self.verdict}."
        )


@dataclass(frozen=True)
class Claim:
    """A comparison together with the verdict the notebook claims for it.

    Its :attr:`chance` is the estimated chance that the verdict holds at a fresh seed offset
    with the same number of seeds (:func:`replication_probability`, predictive). The claim is
    :attr:`asserted` when ``check`` is true, it holds here and its chance is at least
    :data:`MIN_CHANCE`; otherwise it is a finding. A claim with ``check`` true that does not
    hold makes :func:`check_claims` raise; a finding that holds is never raised on.
    """

    comparison: Comparison | UnpairedComparison
    expected: str
    check: bool = True

    @property
    def holds(self) -> bool:
        return self.comparison.verdict == self.expected

    @property
    def chance(self) -> float:
        """Predictive chance that the claimed verdict holds at a fresh seed offset (conservative)."""
        return self.comparison.replication(self.expected)

    @property
    def power(self) -> float:
        """Power at the observed effect: the chance if the observed mean and spread were the truth
        (optimistic, see :func:`replication_probability`)."""
        return self.comparison.replication(self.expected, predictive=False)

    @property
    def asserted(self) -> bool:
        return self.check and self.holds and self.chance >= MIN_CHANCE

    def __str__(self) -> str:
        chance = (f"chance to hold at a fresh seed offset {self.chance:.2f}, power at the observed "
                  f"effect {self.power:.2f}")  # fmt: skip
        if self.asserted:
            return f"{self.comparison} [claim: {self.expected}; holds; {chance}: asserted]"
        if self.check and not self.holds:
            return f"{self.comparison} [claim: {self.expected}; FAILS; {chance}]"
        here = "holds here" if self.holds else "does not hold here"
        why = f"below {MIN_CHANCE:g}" if self.check else "marked a finding"
        return (
            f"{self.comparison} [finding: {self.expected}; {here}; {chance}; {why}: not asserted]"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**self.comparison.to_dict(), "expected": self.expected, "holds": self.holds,
                "check": self.check, "chance": self.chance, "power_at_observed": self.power,
                "min_chance": MIN_CHANCE, "asserted": self.asserted}  # fmt: skip


class ClaimFailed(AssertionError):
    """One or more claims do not hold; ``failed`` lists them."""

    def __init__(self, failed: Sequence[Claim]):
        self.failed = list(failed)
        lines = "\n".join(f"  - {c}" for c in self.failed)
        super().__init__(f"{len(self.failed)} claim(s) failed:\n{lines}")


def _fmt(v: float) -> str:
    """``+0.052``; a nonzero value that would print as ``+0.000`` keeps two significant digits."""
    out = f"{v:+.3f}"
    if v != 0 and float(out) == 0:
        out = f"{v:+.2g}"
    return out


def _values(name: str, x: Iterable[float]) -> np.ndarray:
    arr = np.asarray(list(x) if not isinstance(x, np.ndarray) else x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D per-seed values, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf values: {arr.tolist()}.")
    return arr


def _check_options(confidence: float, lower_is_better: bool, neutral: bool) -> None:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not (0 < confidence < 1)
    ):
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    if neutral and lower_is_better:
        raise ValueError(
            "neutral=True words the verdict 'larger'/'smaller', so lower_is_better=True has no "
            "meaning with it; pass one of them."
        )


def compare(
    a: Sequence[float],
    b: Sequence[float],
    *,
    name_a: str = "a",
    name_b: str = "b",
    metric: str = "accuracy",
    confidence: float = 0.95,
    lower_is_better: bool = False,
    neutral: bool = False,
) -> Comparison:
    r"""Paired t-interval on :math:`a - b` over seeds and its verdict.

    ``a`` and ``b`` hold one value per seed, the same seeds in the same order (n >= 2).
    The interval is :math:`\bar d \pm t_{(1+c)/2,n-1}\, s_d/\sqrt n`
    (``scipy.stats.ttest_rel``'s). When every difference is the same, :math:`s_d = 0` and
    the interval is that single point; the sentence then says so (on a small test set
    two methods often differ by the same number of items on every seed). ``lower_is_better`` (e.g. a loss, a distance)
    makes an interval below 0 read ``"better"``. ``neutral`` (a bias, a gap: larger is
    neither better nor worse) words the verdict ``"larger"`` / ``"smaller"``; it cannot be
    combined with ``lower_is_better``.

    Raises ``ValueError`` (naming the argument) for lengths that differ, fewer than two
    seeds, non-finite values, ``confidence`` outside (0, 1), or ``neutral`` together with
    ``lower_is_better``.
    """
    from scipy import stats

    va, vb = _values("a", a), _values("b", b)
    if len(va) != len(vb):
        raise ValueError(
            f"a and b must have the same length (paired seeds), got {len(va)} and {len(vb)}."
        )
    if len(va) < 2:
        raise ValueError(f"compare needs n >= 2 paired seeds, got n={len(va)}.")
    _check_options(confidence, lower_is_better, neutral)
    d = va - vb
    n = len(d)
    sem = float(np.std(d, ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * sem
    mean = float(np.mean(d))
    return Comparison(
        name_a=str(name_a),
        name_b=str(name_b),
        metric=str(metric),
        confidence=float(confidence),
        a=tuple(float(v) for v in va),
        b=tuple(float(v) for v in vb),
        ci_low=mean - half,
        ci_high=mean + half,
        lower_is_better=bool(lower_is_better),
        neutral=bool(neutral),
    )


def compare_unpaired(
    a: Sequence[float],
    b: Sequence[float],
    *,
    name_a: str = "a",
    name_b: str = "b",
    metric: str = "accuracy",
    confidence: float = 0.95,
    lower_is_better: bool = False,
    neutral: bool = False,
) -> UnpairedComparison:
    r"""Welch's interval on :math:`\bar a - \bar b` and its verdict, for samples with no pairing.

    :math:`\bar a - \bar b \pm t_{(1+c)/2,\nu}\sqrt{s_a^2/n_a + s_b^2/n_b}` with the
    Welch-Satterthwaite :math:`\nu` (``scipy.stats.ttest_ind(a, b, equal_var=False)``'s
    interval; Welch, 1947). Use it where seed :math:`i` of ``a`` and seed :math:`i` of ``b``
    share no data (e.g. two class splits), so that pairing them by seed would be arbitrary;
    ``a`` and ``b`` may differ in length. Same options and verdict words as :func:`compare`.
    When both spreads are 0 the interval is the single difference.

    Raises ``ValueError`` (naming the argument) for fewer than two values in ``a`` or ``b``,
    non-finite values, ``confidence`` outside (0, 1), or ``neutral`` together with
    ``lower_is_better``.
    """
    from scipy import stats

    va, vb = _values("a", a), _values("b", b)
    for name, v in (("a", va), ("b", vb)):
        if len(v) < 2:
            raise ValueError(f"compare_unpaired: {name} needs >= 2 values, got {len(v)}.")
    _check_options(confidence, lower_is_better, neutral)
    sa, sb = float(np.var(va, ddof=1)) / len(va), float(np.var(vb, ddof=1)) / len(vb)
    diff = float(np.mean(va) - np.mean(vb))
    se = math.sqrt(sa + sb)
    if se == 0:
        lo = hi = diff
    else:
        df = (sa + sb) ** 2 / (sa**2 / (len(va) - 1) + sb**2 / (len(vb) - 1))
        half = float(stats.t.ppf((1 + confidence) / 2, df)) * se
        lo, hi = diff - half, diff + half
    return UnpairedComparison(
        name_a=str(name_a),
        name_b=str(name_b),
        metric=str(metric),
        confidence=float(confidence),
        a=tuple(float(v) for v in va),
        b=tuple(float(v) for v in vb),
        ci_low=lo,
        ci_high=hi,
        lower_is_better=bool(lower_is_better),
        neutral=bool(neutral),
    )


@dataclass(frozen=True)
class Equivalence:
    """Two one-sided tests that paired differences lie within ``(-margin, margin)`` (see :func:`equivalence`)."""

    name: str
    differences: tuple[float, ...]
    margin: float
    ci_low: float
    ci_high: float
    alpha: float

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def diff_mean(self) -> float:
        return float(np.mean(self.differences))

    @property
    def equivalent(self) -> bool:
        """Both one-sided tests reject: the whole interval lies inside the margin."""
        return (
            -self.margin < self.ci_low
            and self.ci_high < self.margin
            or (self.margin == 0 and self.ci_low == self.ci_high == 0)
        )

    def __str__(self) -> str:
        pct = f"{100 * (1 - 2 * self.alpha):g}%"
        word = "within" if self.equivalent else "NOT within"
        ci = (f"{pct} CI {_f3(self.ci_low)} to {_f3(self.ci_high)}" if self.n > 1
              else "one value: no interval")  # fmt: skip
        return (f"{self.name}: mean difference {_f3(self.diff_mean)} over {self.n} paired "
                f"value(s) ({ci}), {word} the equivalence margin +/-{self.margin:.3f}.")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "differences": list(self.differences), "margin": self.margin,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "alpha": self.alpha, "n": self.n,
                "diff_mean": self.diff_mean, "equivalent": self.equivalent, "sentence": str(self)}  # fmt: skip


def equivalence(
    a: Sequence[float], b: Sequence[float], margin: float, *, alpha: float = 0.05, name: str = ""
) -> Equivalence:
    r"""Are paired values equivalent within ``margin``? Two one-sided tests (Schuirmann, 1987).

    With :math:`d_i = a_i - b_i`, equivalence at level :math:`\alpha` holds when both
    :math:`H_0^-: \mu_d \le -\delta` and :math:`H_0^+: \mu_d \ge \delta` are rejected, i.e.
    when the :math:`1 - 2\alpha` t-interval :math:`\bar d \pm t_{1-\alpha,n-1} s_d/\sqrt n`
    lies inside :math:`(-\delta, \delta)`. The opposite of :func:`compare`'s question: not
    "is there a difference?" but "is any difference smaller than :math:`\delta`?", so an
    interval that includes 0 is not enough. One pair has no interval: its difference
    itself must lie inside the margin (the interval is that point, as when every
    difference is the same). A margin of 0 accepts only differences that are all 0.

    Raises ``ValueError`` for lengths that differ, no values, non-finite values, a
    negative ``margin`` or ``alpha`` outside (0, 0.5).
    """
    from scipy import stats

    va, vb = _values("a", a), _values("b", b)
    if len(va) != len(vb) or len(va) == 0:
        raise ValueError(f"a and b must be paired values of the same length >= 1, got {len(va)} "
                         f"and {len(vb)}.")  # fmt: skip
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise ValueError(f"margin must be a number >= 0, got {margin!r}.")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha!r}.")
    d = va - vb
    mean, n = float(np.mean(d)), len(d)
    half = 0.0
    if n > 1:
        half = float(stats.t.ppf(1 - alpha, n - 1)) * float(np.std(d, ddof=1)) / math.sqrt(n)
    return Equivalence(str(name), tuple(float(x) for x in d), float(margin), mean - half,
                       mean + half, float(alpha))  # fmt: skip


def compare_all(
    results: Mapping[str, Sequence[float]], baseline: str, **kwargs: Any
) -> list[Comparison]:
    """Every entry of ``results`` (in order) against ``results[baseline]``, paired by seed.

    ``kwargs`` (``metric``, ``confidence``, ``lower_is_better``, ``neutral``) go to :func:`compare`; names are the keys.
    """
    if baseline not in results:
        shown = ", ".join(repr(k) for k in results)
        raise ValueError(f"Unknown baseline {baseline!r}. Valid values: {shown}.")
    return [
        compare(v, results[baseline], name_a=k, name_b=baseline, **kwargs)
        for k, v in results.items()
        if k != baseline
    ]


def find_comparison(
    comparisons: Sequence[_Interval], name_a: str, metric_start: str = ""
) -> _Interval:
    """The first comparison of ``name_a`` whose metric starts with ``metric_start``.

    For picking one verdict out of :func:`compare_all`'s list by name (e.g. the claim a
    notebook asserts). Raises ``ValueError`` naming the comparisons there are when none fits.
    """
    for c in comparisons:
        if c.name_a == name_a and c.metric.startswith(metric_start):
            return c
    shown = ", ".join(f"{c.name_a!r} ({c.metric})" for c in comparisons) or "none"
    raise ValueError(
        f"No comparison with name_a={name_a!r} and a metric starting {metric_start!r}. "
        f"Valid values: {shown}."
    )


def print_verdicts(comparisons: Sequence[Comparison]) -> None:
    """Print one sentence per comparison, the method names padded so the columns align."""
    comparisons = list(comparisons)
    if not comparisons:
        raise ValueError("print_verdicts needs at least one comparison, got comparisons=[].")
    width = max(len(c.name_a) for c in comparisons)
    for c in comparisons:
        print(c.sentence(width))


def _same_baseline(comparisons: Sequence[_Interval], caller: str) -> list[_Interval]:
    comparisons = list(comparisons)
    bad = [type(c).__name__ for c in comparisons if not isinstance(c, _Interval)]
    if bad:
        raise TypeError(f"{caller} needs comparisons (compare, compare_unpaired), got {bad}.")
    if not comparisons:
        raise ValueError(f"{caller} needs at least one comparison, got comparisons=[].")
    first = comparisons[0]
    key = (first.name_b, first.metric, first.verdicts)
    other = [c for c in comparisons if (c.name_b, c.metric, c.verdicts) != key]
    if other:
        raise ValueError(
            f"{caller} needs comparisons against one baseline on one metric, got "
            f"{first.name_b!r} ({first.metric}) and {other[0].name_b!r} ({other[0].metric})."
        )
    return comparisons


def verdict_groups(comparisons: Sequence[_Interval]) -> dict[str, list[str]]:
    """The ``name_a`` of each comparison grouped by verdict, every verdict word a key.

    ``{"better": [...], "worse": [...], "not distinguishable": [...]}`` (or the neutral
    words), names in the order given. The comparisons must share ``name_b`` and ``metric``
    (one baseline); ``ValueError`` otherwise, ``TypeError`` for anything not a comparison.
    """
    comparisons = _same_baseline(comparisons, "verdict_groups")
    groups: dict[str, list[str]] = {v: [] for v in comparisons[0].verdicts}
    for c in comparisons:
        groups[c.verdict].append(c.name_a)
    return groups


def summarise_verdicts(comparisons: Sequence[_Interval]) -> str:
    """One sentence of this run's verdicts against one baseline, for a notebook's conclusions.

    ``"Against source-only (target test accuracy): better: AdaBN, MMD; not distinguishable:
    CORAL; worse: none."`` Every verdict word appears (``none`` when empty), so a reader sees
    what was not found as well as what was. Same checks as :func:`verdict_groups`.
    """
    groups = verdict_groups(comparisons)
    first = list(comparisons)[0]
    metric = f"{first.metric}, lower is better" if first.lower_is_better else first.metric
    parts = "; ".join(f"{v}: {', '.join(names) or 'none'}" for v, names in groups.items())
    return f"Against {first.name_b} ({metric}): {parts}."


def who_beat(comparisons: Sequence[_Interval], more: str = "beat") -> str:
    """Which methods beat one baseline, as a clause for a notebook's "what we found".

    ``"neither successive halving nor exhaustive search beat always the linear probe"``,
    ``"only exhaustive search beat the average candidate"``, ``"both A and B beat C"``,
    ``"A, B and C all beat D"``, ``"none of A, B and C beat D"`` (``more`` replaces "beat",
    e.g. ``"outscored"``). "Beat" is the verdict ``"better"`` (``"larger"`` when neutral)
    of each paired interval. Same checks as :func:`verdict_groups` (one baseline, one metric).
    """
    comparisons = _same_baseline(comparisons, "who_beat")
    if not isinstance(more, str) or not more.strip():
        raise ValueError(f"more must be a non-empty string, got {more!r}.")
    names = [c.name_a for c in comparisons]
    winners = verdict_groups(comparisons)[comparisons[0].verdicts[0]]
    baseline = comparisons[0].name_b

    def listed(xs: list[str]) -> str:
        return xs[0] if len(xs) == 1 else ", ".join(xs[:-1]) + " and " + xs[-1]

    if not winners:
        if len(names) == 1:
            return f"{names[0]} did not {more} {baseline}"
        if len(names) == 2:
            return f"neither {names[0]} nor {names[1]} {more} {baseline}"
        return f"none of {listed(names)} {more} {baseline}"
    if len(winners) == len(names):
        if len(names) == 1:
            return f"{names[0]} {more} {baseline}"
        if len(names) == 2:
            return f"both {listed(names)} {more} {baseline}"
        return f"{listed(names)} all {more} {baseline}"
    return f"only {listed(winners)} {more} {baseline}"


def check_claims(claims: Sequence[Claim]) -> None:
    """Raise :class:`ClaimFailed` listing every claim with ``check`` true that does not hold
    (``TypeError`` for non-claims). A claim that holds but is below :data:`MIN_CHANCE` is a
    finding, not a failure (see :func:`findings`)."""
    claims = list(claims)
    bad = [c for c in claims if not isinstance(c, Claim)]
    if bad:
        raise TypeError(
            f"claims must be Claim objects (comparison.expect(verdict)), got "
            f"{[type(c).__name__ for c in bad]}."
        )
    failed = [c for c in claims if c.check and not c.holds]
    if failed:
        raise ClaimFailed(failed)


def findings(claims: Sequence[Claim]) -> list[Claim]:
    """The claims that are not asserted (marked ``check=False``, not holding, or below
    :data:`MIN_CHANCE`), in order: what :func:`tlhelpers.notebook.save_results` prints as findings."""
    return [c for c in claims if not c.asserted]


def _sem(x: Sequence[float]) -> float:
    return float(np.std(np.asarray(x, dtype=float), ddof=1)) / math.sqrt(len(x))


def _t_ratio(mean: float, se: float) -> float:
    if se > 1e-12 * max(1.0, abs(mean)):
        return mean / se
    if abs(mean) <= 1e-15:
        return math.nan
    return math.copysign(math.inf, mean)


def _p_above(t: float, df: float, t_crit: float, predictive: bool) -> float:
    """Chance that a fresh run's t statistic exceeds ``t_crit`` (see :func:`replication_probability`)."""
    from scipy import integrate, stats

    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    if not predictive:
        return float(stats.nct.sf(t_crit, df, t))

    def given(u: float) -> float:  # u: the quantile of V ~ chi2(df)
        nc = t * math.sqrt(float(stats.chi2.ppf(u, df)) / df) / math.sqrt(2)
        if not math.isfinite(nc):  # u at 1: an infinite spread ratio
            return 1.0 if nc > 0 else 0.0
        return float(stats.nct.sf(t_crit / math.sqrt(2), df, nc))

    with warnings.catch_warnings():  # a value near 0 (t far below t_c) meets epsabs, not epsrel
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        value, _ = integrate.quad(given, 0.0, 1.0, limit=200, epsabs=1e-9)
    return min(1.0, max(0.0, float(value)))


def _replication_from_t(
    t: float, df: float, sign: int, confidence: float, predictive: bool
) -> float:
    from scipy import stats

    if math.isnan(t):  # no spread and no difference: a fresh run ties again
        return 1.0 if sign == 0 else 0.0
    t_crit = float(stats.t.ppf((1 + confidence) / 2, df))
    above = _p_above(t, df, t_crit, predictive)
    below = _p_above(-t, df, t_crit, predictive)
    if sign > 0:
        return above
    if sign < 0:
        return below
    return max(0.0, 1.0 - above - below)


def replication_probability(
    diff_mean: float,
    sd: float,
    n: int,
    *,
    direction: str = "above",
    confidence: float = 0.95,
    predictive: bool = True,
) -> float:
    r"""Chance that a fresh run of ``n`` paired seeds gives the same verdict.

    The paired interval of :func:`compare` excludes 0 from above exactly when the fresh t
    statistic :math:`T' = \bar d' / (s'_d/\sqrt n)` exceeds :math:`t_c = t_{(1+c)/2,\,n-1}`.
    With :math:`t = \bar d\,\sqrt n / s_d` the observed statistic and :math:`\nu = n-1`:

    - ``predictive=False``, the **power at the observed effect**: taking the observed mean and
      spread as the truth, :math:`T'` is noncentral t with :math:`\nu` degrees of freedom and
      noncentrality :math:`t`, so :math:`P = 1 - F_{\mathrm{nct}}(t_c;\,\nu,\,t)`
      (``scipy.stats.nct.sf``). This is optimistic: the observed effect of a claim that was
      kept *because* its interval excluded 0 overstates the true effect (the winner's curse),
      and its uncertainty is ignored (an effect observed just at the edge, :math:`t = t_c`,
      gives only about 0.5).
    - ``predictive=True`` (the default), the **predictive probability** (Bayesian assurance,
      O'Hagan, Stevens & Campbell 2005): the power averaged over what the seeds allow the true
      mean :math:`\mu` and spread :math:`\sigma` to be, under the reference prior
      :math:`p(\mu, \sigma^2) \propto 1/\sigma^2`, where :math:`\sigma^2 = \nu s_d^2/V` with
      :math:`V \sim \chi^2_\nu` and :math:`\mu \mid \sigma \sim N(\bar d, \sigma^2/n)`.
      Then :math:`\bar d' - \bar d \sim N(0, 2\sigma^2/n)` and

      .. math::

          P = \int_0^\infty f_{\chi^2_\nu}(v)\; \Big[1 - F_{\mathrm{nct}}\big(t_c/\sqrt2;\,
              \nu,\; t\sqrt{v/\nu}/\sqrt2\big)\Big]\,dv .

      It is lower than the power whenever that is above about one half (a claim needs roughly
      :math:`t \ge 8.5` at 5 seeds for 0.95, against :math:`t \ge 5` for the power) and is what
      :class:`Claim` uses. It still ignores the winner's curse, so it is an upper estimate
      for a claim chosen among many.

    ``direction`` is the verdict to repeat: ``"above"`` (interval above 0), ``"below"``, or
    ``"includes"`` (interval covering 0: one minus the other two). ``sd = 0`` means every
    difference was the same: the fresh run repeats it (probability 1 or 0). For Welch's
    comparison the same formulas are used with its t and Welch-Satterthwaite :math:`\nu`
    (an approximation).

    Raises ``ValueError`` for a non-finite ``diff_mean``, a negative or non-finite ``sd``,
    ``n < 2``, an unknown ``direction`` or ``confidence`` outside (0, 1).
    """
    from .validation import check_choice, check_int, check_positive

    if (
        isinstance(diff_mean, bool)
        or not isinstance(diff_mean, (int, float, np.floating))
        or not (math.isfinite(diff_mean))
    ):
        raise ValueError(f"diff_mean must be a finite number, got {diff_mean!r}.")
    check_positive("sd", sd, strict=False)
    check_int("n", n, minimum=2)
    check_choice("direction", direction, ("above", "below", "includes"))
    _check_options(confidence, False, False)
    sign = {"above": 1, "below": -1, "includes": 0}[direction]
    t = _t_ratio(float(diff_mean), float(sd) / math.sqrt(n))
    return _replication_from_t(t, float(n - 1), sign, float(confidence), bool(predictive))


def in_words(
    comparison: _Interval, more: str = "beat", less: str = "lost to", digits: int = 2
) -> str:
    """A comparison as a clause for a notebook's "what we found": ``"ImageNet features beat
    untrained features (+0.45, 95% CI +0.38 to +0.53)"``.

    ``more`` is said when the verdict is ``"better"`` (or ``"larger"``), ``less`` when it is
    ``"worse"`` (``"smaller"``), and "cannot be told apart from" otherwise.
    """
    if not isinstance(comparison, _Interval):
        raise TypeError(
            f"comparison must be a comparison (compare, compare_unpaired), got {type(comparison).__name__}."
        )
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 6:
        raise ValueError(f"digits must be an integer from 0 to 6, got {digits!r}.")
    c = comparison
    first, second = c.verdicts[0], c.verdicts[1]
    word = {first: more, second: less}.get(c.verdict, "cannot be told apart from")
    pct = f"{c.confidence:.0%}"
    gap = f"{c.diff_mean:+.{digits}f}, {pct} CI {c.ci_low:+.{digits}f} to {c.ci_high:+.{digits}f}"
    return f"{c.name_a} {word} {c.name_b} ({gap})"


@dataclass(frozen=True)
class ResultsTable:
    """One results table: a row per method with its mean, its difference from the baseline
    with the interval, and the verdict word. Prints as aligned text; shows as an HTML table
    in JupyterLab and the book (:func:`table`)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]

    def __str__(self) -> str:
        cells = [self.header, *self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.header))]
        lines = [self.title] if self.title else []
        for j, r in enumerate(cells):
            first = f"{r[0]:<{widths[0]}}"
            rest = "  ".join(f"{v:>{w}}" for v, w in zip(r[1:], widths[1:], strict=True))
            lines.append(f"{first}  {rest}".rstrip())
            if j == 0:
                lines.append("-" * len(lines[-1]))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<th>{html.escape(h)}</th>" for h in self.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in self.rows
        )
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f'<table class="tl-results">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'

    def to_dict(self) -> dict[str, Any]:
        """Title, header and rows as plain JSON types."""
        return {
            "title": self.title,
            "header": list(self.header),
            "rows": [list(r) for r in self.rows],
        }


def table(comparisons: Sequence[_Interval], title: str = "", digits: int = 3) -> ResultsTable:
    """One results table for a notebook's experiment: method, mean, difference, interval, verdict.

    Comparisons against one baseline (same ``name_b`` and metric) give the baseline's row first
    (its mean, no difference), then one row per method: its mean, its mean difference from the
    baseline (paired by seed for :func:`compare`), the interval on that difference at the
    comparisons' confidence, and the verdict word. Comparisons against different baselines give
    one row each, named ``"a vs b"``. ``title`` defaults to the metric (and the seed count).
    """
    comparisons = list(comparisons)
    bad = [type(c).__name__ for c in comparisons if not isinstance(c, _Interval)]
    if bad:
        raise TypeError(f"table needs comparisons (compare, compare_unpaired), got {bad}.")
    if not comparisons:
        raise ValueError("table needs at least one comparison, got comparisons=[].")
    if not isinstance(title, str):
        raise TypeError(f"title must be a string, got {type(title).__name__}.")
    if not isinstance(digits, int) or isinstance(digits, bool) or not 0 <= digits <= 6:
        raise ValueError(f"digits must be an integer from 0 to 6, got {digits!r}.")
    first = comparisons[0]
    one_baseline = all(
        (c.name_b, c.metric, c.b) == (first.name_b, first.metric, first.b) for c in comparisons
    )
    metrics = {c.metric for c in comparisons}
    confidences = {c.confidence for c in comparisons}
    pct = "/".join(f"{x:.0%}" for x in sorted(confidences))
    header = ("method", "mean", "difference", f"{pct} interval", "verdict")

    def num(x: float) -> str:
        return f"{x:.{digits}f}"

    def signed(x: float) -> str:
        return f"{x:+.{digits}f}"

    rows: list[tuple[str, ...]] = []
    if one_baseline:
        rows.append((first.name_b, num(first.mean_b), "", "", "baseline"))
    for c in comparisons:
        name = c.name_a if one_baseline else f"{c.name_a} vs {c.name_b}"
        interval = f"{signed(c.ci_low)} to {signed(c.ci_high)}"
        rows.append((name, num(c.mean_a), signed(c.diff_mean), interval, c.verdict))
    if not title:
        seeds = {len(c.a) for c in comparisons}
        seed_note = f", {seeds.pop()} seeds" if len(seeds) == 1 else ""
        metric = metrics.pop() if len(metrics) == 1 else "results"
        lower = all(c.lower_is_better for c in comparisons)
        title = metric + (" (lower is better)" if lower else "") + seed_note
    return ResultsTable(title=title, header=header, rows=tuple(rows))
