"""Tests of tlhelpers.stats: paired comparisons over seeds, verdicts and claims."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from tlhelpers.stats import (
    NEUTRAL_VERDICTS,
    VERDICTS,
    Claim,
    ClaimFailed,
    Comparison,
    check_claims,
    compare,
    compare_all,
    compare_unpaired,
    print_verdicts,
)


def test_interval_matches_scipy_ttest_rel():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.05, size=7)
    b = a - rng.normal(0.02, 0.03, size=7)
    for conf in (0.9, 0.95, 0.99):
        c = compare(a, b, confidence=conf)
        ref = sps.ttest_rel(a, b).confidence_interval(confidence_level=conf)
        assert c.ci_low == pytest.approx(ref.low, rel=1e-12)
        assert c.ci_high == pytest.approx(ref.high, rel=1e-12)
    assert c.n == 7
    assert c.mean_a == pytest.approx(a.mean())
    assert c.mean_b == pytest.approx(b.mean())
    assert c.diff_mean == pytest.approx((a - b).mean())


def test_interval_by_hand_for_two_seeds():
    # d = (0.1, 0.3): mean 0.2, sd 0.1414, sem 0.1, t(0.975, 1) = 12.706
    c = compare([0.6, 0.8], [0.5, 0.5])
    t = 12.706204736174698
    assert c.ci_low == pytest.approx(0.2 - t * 0.1)
    assert c.ci_high == pytest.approx(0.2 + t * 0.1)
    assert c.verdict == "not distinguishable"


@pytest.mark.parametrize(
    ("diffs", "verdict"),
    [
        ([0.10, 0.12, 0.08, 0.11, 0.09], "better"),
        ([-0.10, -0.12, -0.08, -0.11, -0.09], "worse"),
        ([0.10, -0.12, 0.08, -0.11, 0.02], "not distinguishable"),
        # positive mean, interval includes zero: a mean alone is not a claim
        ([0.20, -0.05, 0.15, -0.04, 0.01], "not distinguishable"),
    ],
)
def test_verdicts_on_constructed_cases(diffs, verdict):
    b = np.full(len(diffs), 0.5)
    c = compare(b + np.array(diffs), b)
    assert c.verdict == verdict
    assert c.verdict in VERDICTS
    if verdict == "better":
        assert c.ci_low > 0
    elif verdict == "worse":
        assert c.ci_high < 0
    else:
        assert c.ci_low <= 0 <= c.ci_high


def test_pairing_matters():
    # Large spread between seeds, tiny consistent gain: paired test sees it, means alone do not.
    base = np.array([0.3, 0.5, 0.7, 0.9, 0.4, 0.6])
    c = compare(base + 0.01, base)
    assert c.verdict == "better"
    assert c.diff_mean == pytest.approx(0.01)


def test_identical_differences_give_a_point_interval():
    c = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    assert c.ci_low == pytest.approx(0.1) and c.ci_high == pytest.approx(0.1)
    assert c.verdict == "better"
    same = compare([0.6, 0.7], [0.6, 0.7])
    assert same.diff_mean == 0.0 and same.verdict == "not distinguishable"


def test_sentence_and_dict():
    a = [0.60, 0.62, 0.58, 0.61]
    b = [0.50, 0.54, 0.52, 0.53]
    c = compare(a, b, name_a="fine-tuning", name_b="scratch", metric="test accuracy")
    s = str(c)
    assert s.startswith("fine-tuning vs scratch (test accuracy, 4 paired seeds): +0.080 (95% CI ")
    assert s.endswith(": better.")
    assert f"{c.ci_low:+.3f} to {c.ci_high:+.3f}" in s
    d = c.to_dict()
    json.dumps(d)  # JSON-able
    assert d["verdict"] == "better" and d["n"] == 4 and d["sentence"] == s
    assert d["a"] == pytest.approx(a) and d["b"] == pytest.approx(b)
    assert d["ci_low"] == c.ci_low and d["confidence"] == 0.95


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": [0.1, 0.2, 0.3], "b": [0.1, 0.2]}, "same length"),
        ({"a": [0.1], "b": [0.2]}, "n >= 2"),
        ({"a": [0.1, float("nan")], "b": [0.2, 0.3]}, "a contains"),
        ({"a": [0.1, 0.2], "b": [0.2, math.inf]}, "b contains"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "confidence": 1.0}, "confidence"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "confidence": 0.0}, "confidence"),
        ({"a": [[0.1, 0.2]], "b": [[0.2, 0.3]]}, "1-D"),
    ],
)
def test_bad_input_is_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare(**kwargs)


def test_claims():
    c = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], name_a="x", name_b="y")
    good = c.expect("better")
    bad = c.expect("not distinguishable")
    assert isinstance(good, Claim) and good.holds and not bad.holds
    assert good.comparison is c and good.expected == "better"
    assert "holds" in str(good) and "FAILS" in str(bad)
    json.dumps(bad.to_dict())
    assert bad.to_dict()["holds"] is False
    with pytest.raises(ValueError, match="expected"):
        c.expect("greater")
    check_claims([good])  # nothing raised
    with pytest.raises(ClaimFailed, match="x vs y") as err:
        check_claims([good, bad])
    assert isinstance(err.value, AssertionError)
    assert err.value.failed == [bad]
    with pytest.raises(TypeError, match="claims"):
        check_claims([c])  # a Comparison is not a claim


def test_compare_all_and_print(capsys):
    results = {
        "scratch": [0.50, 0.52, 0.48, 0.51],
        "fine-tune": [0.60, 0.63, 0.58, 0.62],
        "L2-SP": [0.55, 0.50, 0.52, 0.49],
    }
    comps = compare_all(results, "scratch", metric="test accuracy")
    assert [c.name_a for c in comps] == ["fine-tune", "L2-SP"]
    assert all(c.name_b == "scratch" and c.metric == "test accuracy" for c in comps)
    assert comps[0].verdict == "better"
    assert comps[1].verdict == "not distinguishable"
    print_verdicts(comps)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    # aligned: the " vs " of every line at the same column
    assert len({ln.index(" vs ") for ln in lines}) == 1
    assert lines[0].endswith("better.") and lines[1].endswith("not distinguishable.")
    with pytest.raises(ValueError, match="baseline"):
        compare_all(results, "l2sp")
    with pytest.raises(ValueError, match="comparisons"):
        print_verdicts([])
    assert isinstance(comps[0], Comparison)


def test_lower_is_better_flips_the_verdict_word_only():
    closer = [1.0, 1.2, 0.9, 1.1]
    farther = [2.0, 2.3, 1.9, 2.2]
    c = compare(
        closer,
        farther,
        name_a="L2-SP",
        name_b="fine-tuning",
        metric="||w - w0||",
        lower_is_better=True,
    )
    assert c.diff_mean < 0 and c.ci_high < 0
    assert c.verdict == "better"
    assert "(||w - w0||, lower is better, 4 paired seeds)" in str(c)
    assert compare(farther, closer, lower_is_better=True).verdict == "worse"
    assert c.to_dict()["lower_is_better"] is True
    assert compare(farther, closer).verdict == "better"


def test_a_bound_near_zero_shows_its_sign():
    # the lower bound is positive but below 0.0005: "+0.000" would hide why the verdict is "better"
    c = compare([0.5004, 0.5006, 0.5005], [0.5, 0.5, 0.5])
    assert c.verdict == "better" and 0 < c.ci_low < 0.0005
    assert "+0.000 to" not in str(c) and f"CI {c.ci_low:+.2g} to" in str(c)


def test_neutral_wording_says_larger_or_smaller_not_better():
    # a bias (e.g. peeking optimism) is no merit: "larger" must not read as "better"
    big, small = [0.032, 0.039, 0.034, 0.038], [0.004, 0.0, -0.001, 0.005]
    c = compare(
        big, small, name_a="on test", name_b="on validation", metric="optimism", neutral=True
    )
    assert c.verdict == "larger" and c.verdicts == NEUTRAL_VERDICTS
    assert str(c).endswith(": larger.") and "better" not in str(c)
    assert compare(small, big, neutral=True).verdict == "smaller"
    assert compare(big, big[::-1], neutral=True).verdict == "not distinguishable"
    assert c.to_dict()["neutral"] is True and c.to_dict()["verdict"] == "larger"
    claim = c.expect("larger")
    assert claim.holds and str(claim).endswith("[claim: larger; holds]")
    assert not c.expect("smaller").holds
    with pytest.raises(ValueError, match="'better'.*'larger', 'smaller'"):
        c.expect("better")  # a neutral comparison has no "better"


def test_default_wording_is_unchanged_and_rejects_neutral_words():
    c = compare([2.0, 2.1, 2.2], [1.0, 1.0, 1.1])
    assert c.verdict == "better" and c.verdicts == VERDICTS and c.to_dict()["neutral"] is False
    with pytest.raises(ValueError, match="'larger'"):
        c.expect("larger")


def test_neutral_and_lower_is_better_conflict():
    with pytest.raises(ValueError, match="neutral=True.*lower_is_better=True"):
        compare([1.0, 2.0], [0.0, 1.0], neutral=True, lower_is_better=True)


# --- unpaired (Welch) comparisons: samples whose seeds share nothing -------------------------


def _welch_by_hand(a, b, conf):
    """Welch (1947) interval with the Welch-Satterthwaite degrees of freedom, written out."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    nu = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = sps.t.ppf((1 + conf) / 2, nu) * math.sqrt(va + vb)
    d = a.mean() - b.mean()
    return d - half, d + half


def test_unpaired_interval_matches_scipy_ttest_ind_welch_and_the_formula():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.6, 0.05, size=5), rng.normal(0.55, 0.02, size=8)
    for conf in (0.9, 0.95, 0.99):
        c = compare_unpaired(a, b, confidence=conf)
        ref = sps.ttest_ind(a, b, equal_var=False).confidence_interval(confidence_level=conf)
        assert (c.ci_low, c.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-12)
        assert (c.ci_low, c.ci_high) == pytest.approx(_welch_by_hand(a, b, conf), rel=1e-12)
    assert (c.n_a, c.n_b) == (5, 8)
    assert c.mean_a == pytest.approx(a.mean()) and c.mean_b == pytest.approx(b.mean())
    assert c.diff_mean == pytest.approx(a.mean() - b.mean())


def test_unpaired_verdicts_sentence_and_dict():
    a, b = [0.70, 0.74, 0.69, 0.72, 0.71], [0.83, 0.85, 0.80]
    c = compare_unpaired(a, b, name_a="semantic", name_b="random", metric="drop")
    assert c.verdict == "worse" and compare_unpaired(b, a).verdict == "better"
    assert compare_unpaired([0.5, 0.6], [0.55, 0.56]).verdict == "not distinguishable"
    assert str(c) == (
        f"semantic vs random (drop, 5 vs 3 seeds, unpaired): {c.diff_mean:+.3f} "
        f"(95% Welch CI {c.ci_low:+.3f} to {c.ci_high:+.3f}): worse."
    )
    assert c.sentence(width=10).startswith("semantic   vs random")
    d = c.to_dict()
    json.dumps(d)
    assert d["verdict"] == "worse" and d["sentence"] == str(c) and d["a"] == a and d["n_b"] == 3


def test_unpaired_with_no_spread_is_a_point_interval():
    c = compare_unpaired([0.5, 0.5], [0.4, 0.4, 0.4])
    assert (c.ci_low, c.ci_high) == pytest.approx((0.1, 0.1)) and c.verdict == "better"


def test_unpaired_wording_options_match_compare():
    low, high = [1.0, 1.2, 0.9, 1.1], [2.0, 2.3, 1.9]
    c = compare_unpaired(low, high, metric="loss", lower_is_better=True)
    assert c.verdict == "better" and "(loss, lower is better, 4 vs 3 seeds, unpaired)" in str(c)
    assert compare_unpaired(high, low, lower_is_better=True).verdict == "worse"
    n = compare_unpaired(high, low, neutral=True)
    assert n.verdict == "larger" and n.verdicts == NEUTRAL_VERDICTS and "better" not in str(n)
    assert compare_unpaired(low, high, neutral=True).verdict == "smaller"
    assert c.verdicts == VERDICTS


def test_unpaired_claims_are_checked_like_paired_ones():
    c = compare_unpaired([0.6, 0.7, 0.8], [0.1, 0.2], name_a="x", name_b="y")
    good, bad = c.expect("better"), c.expect("worse")
    assert good.holds and not bad.holds and bad.to_dict()["holds"] is False
    check_claims([good])
    with pytest.raises(ClaimFailed, match="x vs y"):
        check_claims([good, bad])
    with pytest.raises(ValueError, match="'larger'"):
        c.expect("larger")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": [0.1], "b": [0.2, 0.3]}, r"a needs >= 2 values, got 1"),
        ({"a": [0.1, 0.2], "b": [0.3]}, r"b needs >= 2 values, got 1"),
        ({"a": [0.1, float("nan")], "b": [0.2, 0.3]}, "a contains"),
        ({"a": [0.1, 0.2], "b": [0.2, math.inf]}, "b contains"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "confidence": 1.0}, "confidence"),
        ({"a": [0.1, 0.2], "b": [0.2, 0.3], "confidence": 0.0}, "confidence"),
        ({"a": [[0.1, 0.2]], "b": [0.2, 0.3]}, "1-D"),
        ({"a": [0.1, 0.2], "b": [0.0, 0.1], "neutral": True, "lower_is_better": True}, "neutral"),
    ],
)
def test_unpaired_bad_input_is_refused_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        compare_unpaired(**kwargs)


# ------------------------------------------------------------------ equivalence (TOST)


def test_equivalence_is_two_one_sided_tests():
    from tlhelpers.stats import equivalence

    a, b = [0.81, 0.80, 0.83, 0.79], [0.80, 0.80, 0.82, 0.80]
    e = equivalence(a, b, margin=0.05, name="live - stored")
    ci = sps.ttest_rel(a, b).confidence_interval(0.90)  # TOST at 0.05 = the 90% interval inside
    assert (e.ci_low, e.ci_high) == pytest.approx((ci.low, ci.high))
    assert e.equivalent and "within the equivalence margin +/-0.050" in str(e)
    # the same data, a tighter margin: the interval is no longer inside it
    tight = equivalence(a, b, margin=abs(ci.high) * 0.9)
    assert not tight.equivalent and "NOT within" in str(tight)
    # both one-sided p-values below alpha exactly when equivalent
    d = np.subtract(a, b)
    for margin in (0.005, 0.05):
        lo = sps.ttest_1samp(d, -margin, alternative="greater").pvalue
        hi = sps.ttest_1samp(d, margin, alternative="less").pvalue
        assert equivalence(a, b, margin).equivalent == (max(lo, hi) < 0.05)
    # one pair: the difference itself against the margin; margin 0 accepts only no difference
    assert equivalence([0.8], [0.79], 0.02).equivalent and not equivalence([0.8], [0.7], 0.02).equivalent
    assert equivalence([0.8, 0.7], [0.8, 0.7], 0.0).equivalent
    assert not equivalence([0.8, 0.7], [0.8, 0.71], 0.0).equivalent
    assert e.to_dict()["equivalent"] is True and e.to_dict()["n"] == 4


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"a": [1, 2], "b": [1]}, "same length"),
        ({"a": [], "b": []}, "same length"),
        ({"a": [1], "b": [1], "margin": -0.1}, "margin"),
        ({"a": [1], "b": [1], "margin": True}, "margin"),
        ({"a": [1], "b": [1], "alpha": 0.5}, "alpha"),
        ({"a": [float("nan")], "b": [1]}, "NaN"),
    ],
)
def test_equivalence_refuses_bad_input(kwargs, match):
    from tlhelpers.stats import equivalence

    kwargs = {"margin": 0.1, **kwargs}
    with pytest.raises(ValueError, match=match):
        equivalence(kwargs.pop("a"), kwargs.pop("b"), **kwargs)
