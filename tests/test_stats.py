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
    summarise_verdicts,
    verdict_groups,
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


def test_find_comparison_picks_by_name_and_metric_and_names_the_choices():
    from tlhelpers.stats import compare, find_comparison

    a = compare([0.6, 0.7], [0.5, 0.5], name_a="x", name_b="s", metric="AUC, unseen")
    b = compare([0.6, 0.7], [0.5, 0.5], name_a="x", name_b="s", metric="recall@1, unseen")
    c = compare([0.6, 0.7], [0.5, 0.5], name_a="y", name_b="s", metric="recall@1, unseen")
    assert find_comparison([a, b, c], "x", "recall") is b
    assert find_comparison([a, b, c], "y") is c
    assert find_comparison([a, b, c], "x") is a  # the first that fits
    with pytest.raises(ValueError, match="'z'.*Valid values: 'x' \\(AUC, unseen\\)"):
        find_comparison([a, b, c], "z")


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
    assert claim.holds and "[claim: larger; holds; chance to hold at a fresh seed offset" in str(
        claim
    )
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
    assert (
        equivalence([0.8], [0.79], 0.02).equivalent
        and not equivalence([0.8], [0.7], 0.02).equivalent
    )
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


def test_verdict_groups_and_summary_follow_each_verdict():
    base = [0.50, 0.52, 0.49]
    runs = {
        "up": [0.60, 0.63, 0.59],  # about +0.10 on every seed: better
        "down": [0.40, 0.41, 0.40],  # worse
        "noisy": [0.60, 0.40, 0.50],  # not distinguishable
        "up2": [0.55, 0.57, 0.54],  # better
    }
    cs = compare_all({"base": base, **runs}, "base", metric="acc")
    assert [c.verdict for c in cs] == ["better", "worse", "not distinguishable", "better"]
    assert verdict_groups(cs) == {"better": ["up", "up2"], "worse": ["down"],
                                  "not distinguishable": ["noisy"]}  # fmt: skip
    assert summarise_verdicts(cs) == (
        "Against base (acc): better: up, up2; worse: down; not distinguishable: noisy."
    )
    # an empty group is named, so what was not found shows too; lower-is-better is said
    low = compare_all({"base": base, "up": runs["up"]}, "base", metric="loss", lower_is_better=True)
    assert summarise_verdicts(low) == (
        "Against base (loss, lower is better): better: none; worse: up; not distinguishable: none."
    )
    neutral = compare_all({"base": base, "up": runs["up"]}, "base", neutral=True)
    assert verdict_groups(neutral) == {"larger": ["up"], "smaller": [], "not distinguishable": []}


def test_verdict_groups_refuse_mixed_baselines_and_non_comparisons():
    a = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], name_a="x", name_b="y")
    b = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], name_a="x", name_b="z")
    with pytest.raises(ValueError, match="one baseline.*'y'.*'z'"):
        summarise_verdicts([a, b])
    with pytest.raises(ValueError, match="comparisons=\\[\\]"):
        verdict_groups([])
    with pytest.raises(TypeError, match="comparisons"):
        verdict_groups([a.expect("better")])


# ------------------------------------------------------------------ chance to hold at a fresh offset


def _simulate(diff_mean, sd, n, direction, *, predictive, runs=40_000, conf=0.95, seed=0):
    """Monte Carlo: draw fresh normal seeds (and, for the predictive chance, first a true mean and
    spread from the reference posterior) and count how often the fresh interval gives the verdict."""
    rng = np.random.default_rng(seed)
    if predictive:
        sigma = sd * np.sqrt((n - 1) / rng.chisquare(n - 1, runs))
        mu = rng.normal(diff_mean, sigma / np.sqrt(n))
    else:
        sigma, mu = np.full(runs, float(sd)), np.full(runs, float(diff_mean))
    d = rng.normal(mu[:, None], sigma[:, None], size=(runs, n))
    half = sps.t.ppf((1 + conf) / 2, n - 1) * d.std(axis=1, ddof=1) / np.sqrt(n)
    lo, hi = d.mean(axis=1) - half, d.mean(axis=1) + half
    hit = {"above": lo > 0, "below": hi < 0, "includes": (lo <= 0) & (hi >= 0)}[direction]
    return hit.mean()


@pytest.mark.parametrize(
    ("diff_mean", "sd", "n", "direction"),
    [(0.085, 0.057, 5, "above"), (0.05, 0.04, 4, "above"), (-0.3, 0.2, 3, "below"),
     (0.02, 0.05, 10, "includes"), (0.1, 0.03, 8, "above")],
)  # fmt: skip
@pytest.mark.parametrize("predictive", [False, True])
def test_replication_probability_matches_a_simulation_of_fresh_seeds(
    diff_mean, sd, n, direction, predictive
):
    from tlhelpers.stats import replication_probability

    p = replication_probability(diff_mean, sd, n, direction=direction, predictive=predictive)
    sim = _simulate(diff_mean, sd, n, direction, predictive=predictive)
    assert p == pytest.approx(sim, abs=4 * math.sqrt(sim * (1 - sim) / 40_000) + 2e-3)


def test_power_at_the_observed_effect_is_the_noncentral_t_and_the_predictive_chance_is_lower():
    from tlhelpers.stats import replication_probability

    # the t-test power formula written out: 1 - F_nct(t_c; n-1, t_obs)
    t_obs = 0.085 * math.sqrt(5) / 0.057
    power = sps.nct.sf(sps.t.ppf(0.975, 4), 4, t_obs)
    assert replication_probability(0.085, 0.057, 5, predictive=False) == pytest.approx(power)
    # an effect at the edge of significance repeats about half the time
    sd = 0.1
    edge = sps.t.ppf(0.975, 4) * sd / math.sqrt(5)
    assert replication_probability(edge, sd, 5, predictive=False) == pytest.approx(0.5, abs=0.07)
    for t in (4.0, 6.0, 10.0):
        p_obs = replication_probability(t * sd / math.sqrt(5), sd, 5, predictive=False)
        p_pred = replication_probability(t * sd / math.sqrt(5), sd, 5)
        assert p_pred < p_obs  # conservative: the effect's uncertainty is counted
    # more seeds at the same t: a fresh run clears zero more often
    assert replication_probability(0.3, 0.1, 10) > replication_probability(
        0.3 * math.sqrt(5 / 10), 0.1, 5
    )
    # the three verdicts share the probability
    parts = [
        replication_probability(0.03, 0.05, 6, direction=d) for d in ("above", "below", "includes")
    ]
    assert sum(parts) == pytest.approx(1.0)


def test_replication_with_no_spread_repeats_the_difference():
    from tlhelpers.stats import replication_probability

    assert replication_probability(-264.0, 0.0, 9, direction="below") == 1.0
    assert replication_probability(-264.0, 0.0, 9, direction="above") == 0.0
    assert replication_probability(0.0, 0.0, 9, direction="includes") == 1.0
    c = compare([1.0, 2.0, 3.0], [2.0, 3.0, 4.0], lower_is_better=True)  # every difference -1
    assert c.replication("better") == 1.0 and c.replication("worse") == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"diff_mean": float("nan")}, "diff_mean"),
        ({"diff_mean": "0.1"}, "diff_mean"),
        ({"sd": -0.1}, "sd"),
        ({"sd": math.inf}, "sd"),
        ({"n": 1}, "n must be >= 2"),
        ({"n": 2.5}, "n must be an integer"),
        ({"direction": "up"}, "direction"),
        ({"confidence": 1.5}, "confidence"),
    ],
)
def test_replication_probability_refuses_bad_input_by_name(kwargs, match):
    from tlhelpers.stats import replication_probability

    args = {"diff_mean": 0.1, "sd": 0.05, "n": 5, **kwargs}
    with pytest.raises(ValueError, match=match):
        replication_probability(args.pop("diff_mean"), args.pop("sd"), args.pop("n"), **args)


def test_a_comparison_maps_its_verdicts_to_directions():
    from tlhelpers.stats import replication_probability

    d = np.array([0.12, 0.02, 0.15, 0.08, 0.05])
    b = np.full(5, 0.3)
    c = compare(b + d, b)
    above = replication_probability(d.mean(), d.std(ddof=1), 5)
    assert c.replication("better") == pytest.approx(above)
    low = compare(b - d, b, lower_is_better=True)  # a drop in a cost is "better"
    assert low.replication("better") == pytest.approx(above)
    assert low.replication("worse") == pytest.approx(
        replication_probability(d.mean(), d.std(ddof=1), 5, direction="below")
    )
    n = compare(b + d, b, neutral=True)
    assert n.replication("larger") == pytest.approx(above)
    assert n.replication("not distinguishable") == pytest.approx(
        replication_probability(d.mean(), d.std(ddof=1), 5, direction="includes")
    )
    with pytest.raises(ValueError, match="'larger'"):
        c.replication("larger")
    u = compare_unpaired([0.6, 0.7, 0.65, 0.68], [0.4, 0.45, 0.5])
    assert 0.5 < u.replication("better") < u.replication("better", predictive=False) <= 1.0
    ref = sps.ttest_ind(u.a, u.b, equal_var=False)
    assert u.t_statistic == pytest.approx(ref.statistic) and u.df == pytest.approx(ref.df)


def test_claims_below_the_bar_are_findings_not_failures():
    from tlhelpers.stats import MIN_CHANCE, findings

    b = np.full(5, 0.5)
    strong = compare(
        b + np.array([0.10, 0.11, 0.09, 0.10, 0.105]), b, name_a="strong", name_b="base"
    )
    weak = compare(b + np.array([0.12, 0.02, 0.15, 0.08, 0.05]), b, name_a="weak", name_b="base")
    absent = compare(
        b + np.array([0.12, -0.05, 0.15, -0.08, 0.05]), b, name_a="absent", name_b="base"
    )
    s, w, a = strong.expect("better"), weak.expect("better"), absent.expect("better")
    assert s.holds and s.chance >= MIN_CHANCE and s.asserted and "asserted]" in str(s)
    assert w.holds and w.chance < MIN_CHANCE <= w.power or w.power < MIN_CHANCE
    assert w.holds and not w.asserted and str(w).endswith(f"below {MIN_CHANCE:g}: not asserted]")
    assert "[finding: better; holds here; chance to hold at a fresh seed offset" in str(w)
    assert f"{w.chance:.2f}" in str(w)
    d = w.to_dict()
    json.dumps(d)
    assert d["asserted"] is False and d["chance"] == w.chance and d["power_at_observed"] == w.power
    assert s.to_dict()["asserted"] is True
    check_claims([s, w])  # a finding that holds is not a failure
    with pytest.raises(ClaimFailed, match="absent vs base"):
        check_claims([s, w, a])  # a checked claim that does not hold still fails
    marked = absent.expect("better", check=False)
    check_claims([s, marked])  # marked a finding: never raised on
    assert "does not hold here" in str(marked) and str(marked).endswith(
        "marked a finding: not asserted]"
    )
    assert findings([s, w, marked]) == [w, marked]
    with pytest.raises(ValueError, match="check"):
        weak.expect("better", check=1)


def test_table_rows_follow_the_comparisons_against_one_baseline():
    from tlhelpers.stats import table

    base = [0.5, 0.6, 0.55, 0.52]
    a = compare(
        [0.7, 0.8, 0.75, 0.71], base, name_a="fine-tune", name_b="scratch", metric="accuracy"
    )
    b = compare([0.51, 0.58, 0.57, 0.52], base, name_a="probe", name_b="scratch", metric="accuracy")
    t = table([a, b])
    assert t.header[0] == "method" and t.header[-1] == "verdict"
    assert [r[0] for r in t.rows] == ["scratch", "fine-tune", "probe"]
    assert t.rows[0][1] == f"{np.mean(base):.3f}" and t.rows[0][-1] == "baseline"
    assert t.rows[1][2] == f"{a.diff_mean:+.3f}" and t.rows[1][-1] == a.verdict == "better"
    assert t.rows[2][3] == f"{b.ci_low:+.3f} to {b.ci_high:+.3f}" and t.rows[2][-1] == b.verdict
    assert t.title == "accuracy, 4 seeds"
    text = str(t)
    assert text.splitlines()[0] == "accuracy, 4 seeds" and "fine-tune" in text
    assert "<table" in t._repr_html_() and "&" not in t.rows[0][0]


def test_table_of_different_baselines_names_both_sides_and_rejects_bad_input():
    from tlhelpers.stats import table

    a = compare([1.0, 2.0, 3.0], [0.0, 1.0, 1.5], name_a="a", name_b="b", metric="m")
    c = compare([1.0, 2.0, 3.0], [2.0, 2.0, 2.0], name_a="a", name_b="c", metric="m")
    t = table([a, c], title="two baselines")
    assert [r[0] for r in t.rows] == ["a vs b", "a vs c"] and t.title == "two baselines"
    with pytest.raises(ValueError, match=r"comparisons=\[\]"):
        table([])
    with pytest.raises(TypeError, match="comparisons"):
        table([0.5])
    with pytest.raises(ValueError, match="digits"):
        table([a], digits=-1)


def test_in_words_says_the_verdict_with_its_interval():
    from tlhelpers.stats import in_words

    up = compare(
        [0.9, 0.95, 0.92], [0.5, 0.55, 0.6], name_a="ImageNet", name_b="untrained", metric="acc"
    )
    tie = compare([0.5, 0.7, 0.6], [0.6, 0.5, 0.65], name_a="x", name_b="y", metric="acc")
    assert in_words(up).startswith("ImageNet beat untrained (+0.37, 95% CI +")
    assert in_words(up, more="outscored").startswith("ImageNet outscored untrained")
    assert "cannot be told apart from" in in_words(tie)
    down = compare([0.5, 0.55, 0.6], [0.9, 0.95, 0.92], name_a="p", name_b="q", metric="acc")
    assert in_words(down).startswith("p lost to q")
    with pytest.raises(TypeError):
        in_words("x")


def test_who_beat_names_the_winners_against_one_baseline():
    from tlhelpers.stats import compare, who_beat

    base = [0.5, 0.52, 0.49, 0.51]
    up = [0.7, 0.71, 0.69, 0.72]
    same = [0.51, 0.50, 0.50, 0.52]

    def c(name, a):
        return compare(a, base, name_a=name, name_b="the probe")

    assert who_beat([c("A", same), c("B", same)]) == "neither A nor B beat the probe"
    assert who_beat([c("A", up), c("B", same)]) == "only A beat the probe"
    assert who_beat([c("A", up), c("B", up)]) == "both A and B beat the probe"
    assert who_beat([c("A", up), c("B", up), c("C", up)]) == "A, B and C all beat the probe"
    assert (
        who_beat([c("A", same), c("B", same), c("C", same)]) == "none of A, B and C beat the probe"
    )
    assert who_beat([c("A", same)]) == "A did not beat the probe"
    assert who_beat([c("A", up)], more="outscored") == "A outscored the probe"
    with pytest.raises(ValueError, match="one baseline"):
        who_beat([c("A", up), compare(up, same, name_a="A", name_b="other")])
    with pytest.raises(ValueError, match="more must be a non-empty string"):
        who_beat([c("A", up)], more="")
