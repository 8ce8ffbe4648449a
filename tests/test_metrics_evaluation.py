"""Evaluation metrics (notebook 07) against scikit-learn, scipy and direct computations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import optimize, stats
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from tlhelpers.calibration import fit_temperature
from tlhelpers.metrics import (
    bootstrap_ci,
    confusion_matrix,
    expected_calibration_error,
    per_class_accuracy,
    reliability_bins,
)
from tlhelpers.plots import plot_confusion_matrix, plot_reliability


def _probs(seed: int, n: int = 2000, k: int = 4, scale: float = 3.0):
    """Labels drawn from softmax(z); the model reports softmax(scale * z): overconfident."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, k, generator=g)
    y = torch.multinomial(F.softmax(z, 1), 1, generator=g).squeeze(1)
    return scale * z, y


def test_confusion_matrix_and_per_class_accuracy_match_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 300)
    pred = np.where(rng.random(300) < 0.6, y, rng.integers(0, 5, 300))
    cm = confusion_matrix(y, pred, num_classes=5)
    np.testing.assert_array_equal(cm, skm.confusion_matrix(y, pred, labels=range(5)))
    acc = per_class_accuracy(y, pred, num_classes=5)
    np.testing.assert_allclose(acc, skm.recall_score(y, pred, average=None, labels=range(5)))
    # logits are accepted and argmax-ed; torch works too
    logits = torch.nn.functional.one_hot(torch.as_tensor(pred), 5).float()
    np.testing.assert_array_equal(confusion_matrix(torch.as_tensor(y), logits, 5), cm)
    # a class with no example: its accuracy is NaN, not 0
    acc6 = per_class_accuracy(y, pred, num_classes=6)
    assert np.isnan(acc6[5]) and np.allclose(acc6[:5], acc)


@pytest.mark.parametrize("n_bins", [5, 15])
def test_reliability_bins_and_ece_match_sklearn_calibration_curve(n_bins):
    logits, y = _probs(1)
    p = F.softmax(logits, 1)
    conf, pred = p.max(1)
    correct = (pred == y).numpy()
    bins = reliability_bins(p, y, n_bins=n_bins)
    prob_true, prob_pred = calibration_curve(correct, conf.numpy(), n_bins=n_bins)
    nonempty = bins["count"] > 0
    np.testing.assert_allclose(bins["accuracy"][nonempty], prob_true)
    np.testing.assert_allclose(bins["confidence"][nonempty], prob_pred)
    assert np.all(np.isnan(bins["accuracy"][~nonempty]))
    np.testing.assert_allclose(bins["edges"], np.linspace(0, 1, n_bins + 1))
    # ECE = sum_m |B_m|/n |acc(B_m) - conf(B_m)|, bins ((m-1)/M, m/M] as in Guo et al. (2017)
    c = conf.numpy().astype(np.float64)
    ece = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        inside = (c > lo) & (c <= hi) if m else (c <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - c[inside].mean())
    assert expected_calibration_error(p, y, n_bins=n_bins) == pytest.approx(ece)
    assert bins["count"].sum() == len(y)


def test_ece_is_zero_for_a_calibrated_one_bin_case_and_large_when_overconfident():
    # every prediction at confidence 0.75, three in four right: perfectly calibrated
    p = torch.tensor([[0.75, 0.25]] * 4)
    y = torch.tensor([0, 0, 0, 1])
    assert expected_calibration_error(p, y) == pytest.approx(0.0)
    logits, y = _probs(2, scale=3.0)
    assert expected_calibration_error(F.softmax(logits, 1), y) > 0.1
    assert expected_calibration_error(F.softmax(logits / 3, 1), y) < 0.05


def test_fit_temperature_finds_the_nll_minimum():
    logits, y = _probs(3, scale=3.0)
    t = fit_temperature(logits, y)

    def nll(temp: float) -> float:
        return float(F.cross_entropy(logits.double() / temp, y))

    ref = optimize.minimize_scalar(nll, bounds=(0.05, 20), method="bounded").x
    assert t == pytest.approx(ref, rel=1e-3)
    assert t == pytest.approx(3.0, rel=0.1)  # the scale the labels were drawn without
    # an underconfident model gets T < 1
    assert fit_temperature(logits / 9, y) == pytest.approx(ref / 9, rel=1e-3)


def test_bootstrap_ci_of_a_mean_agrees_with_scipy_and_the_normal_interval():
    rng = np.random.default_rng(4)
    correct = (rng.random(1000) < 0.8).astype(float)
    est, lo, hi = bootstrap_ci(correct, n_boot=4000, seed=0)
    assert est == pytest.approx(correct.mean())
    ref = stats.bootstrap(
        (correct,), np.mean, n_resamples=4000, method="percentile", random_state=0
    ).confidence_interval
    assert (lo, hi) == pytest.approx((ref.low, ref.high), abs=0.006)
    half = 1.96 * np.sqrt(correct.mean() * (1 - correct.mean()) / correct.size)
    assert (lo, hi) == pytest.approx((est - half, est + half), abs=0.006)
    # same seed, same interval; a statistic other than the mean
    assert bootstrap_ci(correct, n_boot=500, seed=1) == bootstrap_ci(correct, n_boot=500, seed=1)
    est_med, lo_med, hi_med = bootstrap_ci(rng.normal(size=200), statistic=np.median, seed=0)
    assert lo_med < est_med < hi_med


def test_plots_draw_the_bins_and_the_matrix():
    logits, y = _probs(5)
    p = F.softmax(logits, 1)
    ax = plot_reliability(p, y, n_bins=10)
    bins = reliability_bins(p, y, n_bins=10)
    heights = [r.get_height() for r in ax.patches[:10]]
    np.testing.assert_allclose(heights, np.nan_to_num(bins["accuracy"]))
    assert "ECE" in ax.get_title()
    cm = confusion_matrix(y, logits.argmax(1), 4)
    ax = plot_confusion_matrix(cm, ["a", "b", "c", "d"])
    np.testing.assert_allclose(ax.images[0].get_array(), cm / cm.sum(1, keepdims=True))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    plt.close("all")


def test_bad_input_names_the_argument():
    p = torch.tensor([[0.7, 0.3], [0.2, 0.8]])
    y = torch.tensor([0, 1])
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(p, y, n_bins=0)
    with pytest.raises(ValueError, match="probs"):
        expected_calibration_error(torch.tensor([[2.0, 0.3], [0.2, 0.8]]), y)  # logits, not probs
    with pytest.raises(ValueError, match="probs"):
        expected_calibration_error(torch.tensor([[np.nan, 0.3], [0.2, 0.8]]), y)
    with pytest.raises(ValueError, match="targets"):
        reliability_bins(p, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="num_classes"):
        confusion_matrix([0, 1, 4], [0, 1, 1], num_classes=3)
    with pytest.raises(ValueError, match="predictions"):
        confusion_matrix([0, 1, 1], [0, 1], num_classes=3)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([0.0, 1.0], confidence=1.5)
    with pytest.raises(ValueError, match="values"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="logits"):
        fit_temperature(torch.tensor([[np.nan, 0.0]]), torch.tensor([0]))
    with pytest.raises(ValueError, match="targets"):
        fit_temperature(torch.zeros(3, 2), torch.tensor([0, 1]))
