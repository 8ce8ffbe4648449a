"""Tests for tlhelpers.transferability (notebook 02, "model choice").

Reference values are computed independently: by hand for LEEP and NCE, by direct
numerical maximisation of the Gaussian marginal likelihood for LogME, and with
``np.cov`` + ``np.linalg.pinv`` for the H-score, and with scikit-learn's
``LedoitWolf`` covariance for the shrinkage H-score.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import optimize, stats

from tlhelpers.transferability import (
    SCORES,
    format_table,
    h_score,
    h_score_shrinkage,
    ledoit_wolf_shrinkage,
    leep,
    logme,
    nce,
    rank_correlation,
    rank_correlation_interval,
    rank_models,
)

# ----------------------------------------------------------------------------- LEEP


def test_leep_hand_computed():
    # 4 target images, 2 source classes, 2 target classes.
    theta = np.array([[0.8, 0.2], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    y = np.array([0, 0, 1, 1])
    # Joint P(y, z) = 1/4 * column sums of theta over each target class:
    #   P(0, z) = [(0.8 + 0.6) / 4, (0.2 + 0.4) / 4] = [0.35, 0.15]
    #   P(1, z) = [(0.3 + 0.1) / 4, (0.7 + 0.9) / 4] = [0.10, 0.40]
    # P(z) = [0.45, 0.55]; P(y|z): P(0|z) = [7/9, 3/11], P(1|z) = [2/9, 8/11]
    # EEP likelihood of each image's own label, sum_z P(y_i|z) theta_i(z):
    #   i=1: 0.8 * 7/9 + 0.2 * 3/11 = 28/45 + 3/55  = 335/495 = 67/99
    #   i=2: 0.6 * 7/9 + 0.4 * 3/11 = 21/45 + 6/55  = 285/495 = 19/33
    #   i=3: 0.3 * 2/9 + 0.7 * 8/11 = 1/15 + 28/55  =  95/165 = 19/33
    #   i=4: 0.1 * 2/9 + 0.9 * 8/11 = 1/45 + 36/55  = 335/495 = 67/99
    expected = (2 * math.log(67 / 99) + 2 * math.log(19 / 33)) / 4
    assert leep(theta, y) == pytest.approx(expected, rel=1e-12)
    # torch input, float32 softmax, labels that are not 0..C-1
    assert leep(torch.tensor(theta, dtype=torch.float32), torch.tensor([3, 3, 7, 7])) == (
        pytest.approx(expected, rel=1e-6)
    )


def test_leep_equals_nce_for_hard_predictions():
    # With one-hot theta, LEEP reduces to NCE (Nguyen et al. 2020, Sec. 4).
    rng = np.random.default_rng(0)
    z = rng.integers(0, 5, 200)
    y = (z + rng.integers(0, 2, 200)) % 3
    assert leep(np.eye(5)[z], y) == pytest.approx(nce(z, y), rel=1e-12)


def test_leep_invariant_to_source_class_order_and_bounded():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(50, 6))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = rng.integers(0, 3, 50)
    perm = rng.permutation(6)
    assert leep(probs[:, perm], y) == pytest.approx(leep(probs, y), rel=1e-12)
    assert leep(probs, y) <= 0.0
    # unused source class (all-zero column) contributes nothing
    padded = np.hstack([probs, np.zeros((50, 1))])
    assert leep(padded, y) == pytest.approx(leep(probs, y), rel=1e-12)


# ----------------------------------------------------------------------------- NCE


def test_nce_hand_computed():
    z = np.array([0, 0, 1, 1, 1, 0])
    y = np.array([0, 0, 1, 1, 0, 1])
    # Counts: (y=0,z=0)=2, (y=1,z=0)=1, (y=0,z=1)=1, (y=1,z=1)=2; P(z) = [1/2, 1/2]
    # H(Y|Z) = sum_z P(z) H(Y|Z=z) = H(2/3, 1/3); NCE = -H(Y|Z) in nats
    expected = 2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)
    assert nce(z, y) == pytest.approx(expected, rel=1e-12)
    # 2-D source probabilities: their argmax is used
    probs = np.eye(2)[z] * 0.6 + 0.2
    assert nce(probs, y) == pytest.approx(expected, rel=1e-12)


def test_nce_extremes():
    y = np.array([0, 1, 2, 0, 1, 2])
    # source label determines the target label (even with more source classes)
    assert nce(np.array([5, 1, 2, 4, 1, 2]), y) == pytest.approx(0.0, abs=1e-15)
    # a single source label: NCE = -H(Y) = log(1/3) for balanced 3 classes
    assert nce(np.zeros(6, dtype=int), y) == pytest.approx(math.log(1 / 3), rel=1e-12)


# ----------------------------------------------------------------------------- LogME


def _direct_logme(features, labels):
    """Maximise log N(y; 0, F F^T / alpha + I / beta) over (log alpha, log beta) per class."""
    n = features.shape[0]
    gram = features @ features.T
    values = []
    for c in np.unique(labels):
        y = (labels == c).astype(float)

        def neg_log_evidence(p, y=y):
            alpha, beta = np.exp(p)
            cov = gram / alpha + np.eye(n) / beta
            return -stats.multivariate_normal(np.zeros(n), cov).logpdf(y)

        starts = [np.zeros(2), np.array([3.0, 2.0]), np.array([-2.0, 1.0])]
        best = min(
            (
                optimize.minimize(
                    neg_log_evidence,
                    x0,
                    method="Nelder-Mead",
                    options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
                )
                for x0 in starts
            ),
            key=lambda r: r.fun,
        )
        values.append(-best.fun / n)
    return float(np.mean(values))


@pytest.mark.parametrize("n, d", [(40, 5), (12, 20)], ids=["n>D", "n<D"])
def test_logme_matches_direct_maximisation(n, d):
    rng = np.random.default_rng(n + d)
    labels = np.arange(n) % 3
    rng.shuffle(labels)
    features = rng.normal(size=(n, d))
    features[:, 0] += 1.5 * labels  # make the features informative
    expected = _direct_logme(features, labels)
    got = logme(features, labels)
    assert got == pytest.approx(expected, rel=1e-4)
    # fixed-point result is a maximum: the optimiser cannot beat it
    assert got >= expected - 1e-6 * abs(expected)


def test_logme_torch_input_and_label_relabelling():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(60, 8))
    labels = rng.integers(0, 4, 60)
    ref = logme(features, labels)
    assert logme(torch.from_numpy(features), torch.from_numpy(labels)) == pytest.approx(ref)
    relabelled = np.array([10, 20, 30, 40])[labels]
    assert logme(features, relabelled) == pytest.approx(ref, rel=1e-12)
    assert isinstance(ref, float)


# ----------------------------------------------------------------------------- H-score


def _direct_h_score(features, labels, rcond=1e-15):
    cov_f = np.cov(features, rowvar=False)
    class_means = {c: features[labels == c].mean(axis=0) for c in np.unique(labels)}
    g = np.stack([class_means[c] for c in labels])  # each row replaced by E[f | y]
    cov_g = np.cov(g, rowvar=False)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=rcond, hermitian=True) @ cov_g))


def test_h_score_matches_numpy_formula():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, 80)
    features = rng.normal(size=(80, 6)) + 0.8 * np.eye(6)[labels % 6]
    got = h_score(features, labels)
    assert got == pytest.approx(_direct_h_score(features, labels), rel=1e-10)
    assert 0.0 <= got <= 3.0  # at most C - 1
    # invariant to an invertible affine map of the features
    a = rng.normal(size=(6, 6)) + 3 * np.eye(6)
    assert h_score(features @ a + 5.0, labels) == pytest.approx(got, rel=1e-8)


def test_h_score_rank_deficient_features():
    rng = np.random.default_rng(5)
    labels = np.arange(15) % 3
    # n < D (centred features have rank n - 1 = 14)
    wide = rng.normal(size=(15, 40))
    assert h_score(wide, labels) == pytest.approx(
        _direct_h_score(wide, labels, rcond=1e-10), rel=1e-8
    )
    # n > D with duplicated and all-zero (dead ReLU) columns
    base = rng.normal(size=(60, 5)) + np.eye(5)[np.arange(60) % 3]
    tall = np.hstack([base, base[:, :2], np.zeros((60, 2))])
    labels = np.arange(60) % 3
    assert h_score(tall, labels) == pytest.approx(h_score(base, labels), rel=1e-8)
    assert h_score(tall, labels) == pytest.approx(
        _direct_h_score(tall, labels, rcond=1e-10), rel=1e-8
    )


# ------------------------------------------------------------------ shrinkage H-score


@pytest.mark.parametrize("shape", [(30, 8), (20, 50), (500, 4)])
def test_ledoit_wolf_shrinkage_matches_sklearn(shape):
    from sklearn.covariance import LedoitWolf

    rng = np.random.default_rng(11)
    f = rng.normal(size=shape) @ rng.normal(size=(shape[1], shape[1])) + 3.0
    expected = LedoitWolf(assume_centered=False).fit(f).shrinkage_
    assert ledoit_wolf_shrinkage(f) == pytest.approx(expected, rel=1e-10, abs=1e-12)


def _sklearn_h_alpha(features, labels):
    # Independent route: sklearn's shrunk covariance and shrinkage, class means by
    # replacing every row with its class mean (np.cov with bias=True, i.e. 1/n).
    from sklearn.covariance import LedoitWolf

    lw = LedoitWolf(assume_centered=False).fit(features)
    g = np.stack([features[labels == c].mean(axis=0) for c in labels])
    cov_g = np.cov(g, rowvar=False, bias=True)
    return float(np.trace(np.linalg.inv(lw.covariance_) @ ((1 - lw.shrinkage_) * cov_g)))


@pytest.mark.parametrize("n,d", [(40, 6), (25, 64), (300, 20)])
def test_h_score_shrinkage_matches_sklearn_ledoit_wolf(n, d):
    rng = np.random.default_rng(n + d)
    labels = np.arange(n) % 5
    features = rng.normal(size=(n, d)) + 1.5 * rng.normal(size=(5, d))[labels]
    got = h_score_shrinkage(features, labels)
    assert got == pytest.approx(_sklearn_h_alpha(features, labels), rel=1e-8)
    assert 0.0 < got < 4.0  # below the ceiling C - 1


def test_h_score_shrinkage_does_not_saturate_when_n_below_d():
    rng = np.random.default_rng(12)
    labels = np.arange(20) % 2
    noise = rng.normal(size=(20, 100))  # labels carry no information
    informative = noise + 4.0 * np.eye(100)[labels]  # class means differ in 2 columns
    # the plain H-score sits at its ceiling C - 1 = 1 for both: it cannot rank them
    assert h_score(noise, labels) == pytest.approx(1.0, abs=1e-6)
    assert h_score(informative, labels) == pytest.approx(1.0, abs=1e-6)
    low, high = h_score_shrinkage(noise, labels), h_score_shrinkage(informative, labels)
    assert low < 0.5 and high > 2 * low


def test_h_score_shrinkage_tends_to_h_score_with_many_samples():
    rng = np.random.default_rng(13)
    labels = rng.integers(0, 3, 20000)
    features = (rng.normal(size=(20000, 3)) + np.eye(3)[labels]) * np.array([1.0, 3.0, 9.0])
    assert ledoit_wolf_shrinkage(features) < 1e-3
    assert h_score_shrinkage(features, labels) == pytest.approx(h_score(features, labels), rel=5e-3)


def test_h_score_shrinkage_invariances():
    rng = np.random.default_rng(14)
    labels = np.arange(30) % 3
    f = rng.normal(size=(30, 12)) + np.eye(12)[labels]
    q, _ = np.linalg.qr(rng.normal(size=(12, 12)))
    base = h_score_shrinkage(f, labels)
    assert h_score_shrinkage(7.0 * f @ q - 2.0, labels) == pytest.approx(base, rel=1e-8)
    # not invariant to an anisotropic scaling (the shrinkage target mu*I is isotropic)
    stretched = f * np.r_[np.full(6, 10.0), np.ones(6)]
    assert h_score_shrinkage(stretched, labels) != pytest.approx(base, rel=1e-3)


def test_ledoit_wolf_shrinkage_isotropic_sample_is_zero():
    f = np.vstack([np.eye(3), -np.eye(3)])  # S = I/3 exactly: nothing to shrink
    assert ledoit_wolf_shrinkage(f) == 0.0


# ----------------------------------------------------------------------------- behaviour


def _synthetic_candidates(seed=6, n=400):
    rng = np.random.default_rng(seed)
    informative = rng.normal(size=(n, 4))
    labels = np.argmax(informative @ rng.normal(size=(4, 3)), axis=1)
    good = np.hstack([informative, rng.normal(size=(n, 12))])  # label-relevant + noise
    bad = rng.normal(size=(n, 16))  # unrelated to the labels
    good_probs = np.eye(3)[labels] * 0.7 + 0.1
    bad_probs = np.full((n, 3), 1 / 3)
    return labels, good, bad, good_probs, bad_probs


def test_scores_rank_informative_features_first():
    labels, good, bad, _, _ = _synthetic_candidates()
    assert logme(good, labels) > logme(bad, labels)
    assert h_score(good, labels) > h_score(bad, labels)
    assert h_score_shrinkage(good, labels) > h_score_shrinkage(bad, labels)


def test_rank_models_table():
    labels, good, bad, good_probs, bad_probs = _synthetic_candidates()
    candidates = {
        "random": {"features": bad, "source_probs": bad_probs},
        "informative": {"features": good, "source_probs": good_probs},
        "head_only": {"source_probs": good_probs},  # no features: LogME/H-score are None
    }
    rows = rank_models(candidates, labels, scores=("logme", "h_score", "leep", "nce"))
    assert [r["model"] for r in rows] == ["informative", "random", "head_only"]
    assert [r["rank"] for r in rows] == [1, 2, 3]
    assert rows[2]["logme"] is None and rows[2]["h_score"] is None
    assert rows[2]["leep"] == pytest.approx(leep(good_probs, labels))
    assert rows[0]["nce"] == pytest.approx(nce(good_probs, labels))
    assert rows[0]["logme"] == pytest.approx(logme(good, labels))
    text = format_table(rows)
    assert "informative" in text and "head_only" in text and "-" in text
    assert len(text.splitlines()) == 5  # header, rule, three models
    # ranking by LEEP puts the models without features in their place too
    by_leep = rank_models(candidates, labels, scores=["leep"])
    assert by_leep[-1]["model"] == "random"
    assert set(by_leep[0]) == {"rank", "model", "leep"}


def test_rank_correlation():
    acc = [0.70, 0.75, 0.80, 0.90]
    result = rank_correlation([1.0, 2.0, 3.0, 10.0], acc)
    assert result["kendall"] == pytest.approx(1.0)
    assert result["spearman"] == pytest.approx(1.0)
    assert result["weighted_kendall"] == pytest.approx(1.0)
    assert 0.8 < result["pearson"] < 1.0
    reversed_ = rank_correlation(
        {"a": 4, "b": 3, "c": 2, "d": 1}, dict(zip("abcd", acc, strict=True))
    )
    assert reversed_["kendall"] == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same length"):
        rank_correlation([1, 2, 3], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="at least 3"):
        rank_correlation([1, 2], [1, 2])
    with pytest.raises(ValueError, match="constant"):
        rank_correlation([1, 1, 1], [1, 2, 3])


# ----------------------------------------------------------------------------- bad input


FEATURE_SCORES = [logme, h_score, h_score_shrinkage]


@pytest.mark.parametrize("score", FEATURE_SCORES, ids=lambda f: f.__name__)
def test_feature_scores_reject_bad_input(score):
    rng = np.random.default_rng(7)
    f = rng.normal(size=(10, 3))
    y = np.arange(10) % 2
    with pytest.raises(ValueError, match=r"same number of samples.*\(10, 3\).*\(9,\)"):
        score(f, y[:9])
    bad = f.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        score(bad, y)
    bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        score(bad, y)
    with pytest.raises(ValueError, match=r"at least two classes.*\(10,\)"):
        score(f, np.zeros(10, dtype=int))
    with pytest.raises(ValueError, match=r"2-D.*\(10,\)"):
        score(f[:, 0], y)
    with pytest.raises(ValueError, match="integer class labels"):
        score(f, y + 0.5)
    with pytest.raises(ValueError, match="target_labels must be 1-D"):
        score(f, y[:, None])


@pytest.mark.parametrize(
    "score", [logme, h_score, h_score_shrinkage, leep, nce], ids=lambda f: f.__name__
)
def test_single_sample_class_is_allowed(score):
    rng = np.random.default_rng(8)
    y = np.array([0] * 6 + [1] * 5 + [2])  # class 2 seen once
    if score in FEATURE_SCORES:
        value = score(rng.normal(size=(12, 4)), y)
    else:
        value = score(np.full((12, 3), 1 / 3), y)
    assert np.isfinite(value)


def test_leep_rejects_bad_probabilities():
    y = np.array([0, 1, 0, 1])
    logits = np.array([[2.0, -1.0], [0.5, 0.1], [1.0, 1.0], [-3.0, 2.0]])
    with pytest.raises(ValueError, match=r"sum to 1.*\(4, 2\)"):
        leep(np.abs(logits), y)
    with pytest.raises(ValueError, match="negative"):
        leep(logits, y)
    with pytest.raises(ValueError, match=r"2-D.*\(4,\)"):
        leep(np.full(4, 1.0), y)
    with pytest.raises(ValueError, match=r"same number of samples.*\(4, 2\).*\(3,\)"):
        leep(np.full((4, 2), 0.5), y[:3])
    with pytest.raises(ValueError, match="at least two classes"):
        leep(np.full((4, 2), 0.5), np.ones(4, dtype=int))
    nan_probs = np.full((4, 2), 0.5)
    nan_probs[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        leep(nan_probs, y)
    # small float32 rounding is accepted
    assert np.isfinite(leep(np.full((4, 2), 0.5) + 1e-7, y))


def test_nce_rejects_bad_input():
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"same number of samples.*\(3,\).*\(4,\)"):
        nce(np.array([0, 1, 2]), y)
    with pytest.raises(ValueError, match="at least two classes"):
        nce(np.array([0, 1, 2, 3]), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="integer class labels"):
        nce(np.array([0.5, 1, 2, 3]), y)


def test_rank_models_rejects_bad_input():
    y = np.arange(6) % 2
    f = np.random.default_rng(9).normal(size=(6, 2))
    with pytest.raises(ValueError, match="Unknown score 'fisher'"):
        rank_models({"m": {"features": f}}, y, scores=("fisher",))
    with pytest.raises(ValueError, match="non-empty mapping"):
        rank_models({}, y)
    with pytest.raises(ValueError, match="must be a mapping"):
        rank_models({"m": f}, y)
    assert set(SCORES) == {"logme", "h_score", "h_score_shrinkage", "leep", "nce"}


def test_hyperparameters_validated():
    f = np.random.default_rng(10).normal(size=(8, 2))
    y = np.arange(8) % 2
    with pytest.raises(ValueError, match="max_iter"):
        logme(f, y, max_iter=0)
    with pytest.raises(ValueError, match="tol"):
        logme(f, y, tol=-1.0)
    with pytest.raises(ValueError, match="atol"):
        leep(np.full((8, 2), 0.5), y, atol=0.0)


# ------------------------------------------------------------- rank correlation interval


def test_rank_correlation_interval_clear_agreement_is_positive():
    rng = np.random.default_rng(20)
    true = np.linspace(0.5, 0.9, 8)
    acc = true[:, None] + rng.normal(scale=0.005, size=(8, 4))  # well separated models
    out = rank_correlation_interval(true * 10 - 3, acc, n_boot=500, seed=1)
    assert out["tau"] == pytest.approx(1.0)
    assert out["verdict"] == "positive" and out["low"] > 0.5
    assert out["n_models"] == 8 and out["n_seeds"] == 4 and 400 <= out["n_boot"] <= 500


def test_rank_correlation_interval_noise_is_not_distinguishable():
    rng = np.random.default_rng(21)
    scores = rng.normal(size=7)
    acc = 0.7 + rng.normal(scale=0.03, size=(7, 3))  # accuracies unrelated to the scores
    out = rank_correlation_interval(scores, acc, n_boot=500, seed=2)
    assert out["low"] < 0 < out["high"] and out["verdict"] == "not distinguishable"
    # reversed scores: the estimate flips sign
    assert rank_correlation_interval(-scores, acc, n_boot=200)["tau"] == pytest.approx(-out["tau"])


def test_rank_correlation_interval_is_seeded_and_leaves_global_state():
    acc = np.array([[0.6, 0.62], [0.7, 0.66], [0.65, 0.7], [0.8, 0.79]])
    scores = [1.0, 2.0, 3.0, 4.0]
    state = np.random.get_state()[1].copy()
    a = rank_correlation_interval(scores, acc, n_boot=300, seed=5)
    assert a == rank_correlation_interval(scores, acc, n_boot=300, seed=5)
    assert np.array_equal(state, np.random.get_state()[1])


def test_rank_correlation_interval_rejects_bad_input():
    acc = np.full((4, 2), 0.5) + np.arange(4)[:, None] * 0.1
    with pytest.raises(ValueError, match="one row per model"):
        rank_correlation_interval([1, 2, 3], acc)
    with pytest.raises(ValueError, match="at least 3 models"):
        rank_correlation_interval([1, 2], acc[:2])
    with pytest.raises(ValueError, match="2-D"):
        rank_correlation_interval([1, 2, 3, 4], acc[:, 0])
    with pytest.raises(ValueError, match="confidence"):
        rank_correlation_interval([1, 2, 3, 4], acc, confidence=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        rank_correlation_interval([1, 2, 3, 4], acc, n_boot=10)
    with pytest.raises(ValueError, match="constant"):
        rank_correlation_interval([1, 1, 1, 1], acc)


# --------------------------------------------------------------------------- over few-shot draws (notebook 02)


def _candidates(rng):
    feats = rng.normal(size=(40, 6))
    probs = rng.dirichlet(np.ones(3), size=40)
    labels = np.repeat(np.arange(4), 10)
    return {
        "a": {"features": feats, "source_probs": probs},
        "cut": {"features": feats[:, :3]},
    }, labels


def test_scores_over_draws_is_the_mean_of_each_draws_score():
    from tlhelpers.transferability import scores_over_draws

    cands, labels = _candidates(np.random.default_rng(0))
    draws = [np.arange(0, 40, 2), np.arange(1, 40, 2), np.arange(20)]
    out = scores_over_draws(cands, labels, draws, ("logme", "leep"))
    expected = np.mean([logme(cands["a"]["features"][d], labels[d]) for d in draws])
    assert out["a"]["logme"] == pytest.approx(expected)
    expected = np.mean([leep(cands["a"]["source_probs"][d], labels[d]) for d in draws])
    assert out["a"]["leep"] == pytest.approx(expected)
    assert out["cut"]["leep"] is None and list(out) == ["a", "cut"]


def test_scores_over_draws_refuses_bad_draws():
    from tlhelpers.transferability import scores_over_draws

    cands, labels = _candidates(np.random.default_rng(1))
    with pytest.raises(ValueError, match="at least one draw"):
        scores_over_draws(cands, labels, [], ("logme",))
    with pytest.raises(ValueError, match="row indices below 40"):
        scores_over_draws(cands, labels, [np.array([0, 40])], ("logme",))
    with pytest.raises(ValueError, match="score"):
        scores_over_draws(cands, labels, [np.arange(10)], ("nope",))


def test_rank_agreement_skips_undefined_tau_and_matches_the_interval():
    from tlhelpers.transferability import rank_agreement

    acc = {"m1": [0.5, 0.6], "m2": [0.7, 0.7], "m3": [0.8, 0.9], "m4": [0.6, 0.6]}
    table = {
        "m1": {"good": 1.0, "flat": 4.0, "few": 1.0},
        "m2": {"good": 2.0, "flat": 4.0, "few": None},
        "m3": {"good": 3.0, "flat": 4.0, "few": 2.0},
        "m4": {"good": 1.5, "flat": 4.0, "few": None},
    }
    out = rank_agreement(table, acc, ["good", "flat", "few"], n_boot=200, seed=3)
    assert out["flat"] is None and out["few"] is None  # tau undefined: constant, or under 3 models
    expected = rank_correlation_interval(
        [1.0, 2.0, 3.0, 1.5], [acc[m] for m in table], n_boot=200, seed=3
    )
    assert out["good"] == expected and out["good"]["tau"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="m5"):
        rank_agreement({**table, "m5": {"good": 0.0}}, acc, ["good"])
