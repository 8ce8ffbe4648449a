"""Verification / retrieval metrics against scikit-learn and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import brentq
from sklearn import metrics as skm

from tlhelpers.metrics import eer, pair_scores, recall_at_k, roc_auc, roc_curve, tar_at_far


def _scores(seed: int, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.3
    scores = rng.normal(size=n) + 1.2 * same
    if ties:
        scores = np.round(scores, 1)  # many tied scores across the two classes
    return scores, same


def _brute_rates(scores: np.ndarray, same: np.ndarray) -> list[tuple[float, float]]:
    """(FAR, TAR) when accepting ``score >= t`` for every candidate threshold t."""
    out = [(0.0, 0.0)]
    for t in np.unique(scores):
        acc = scores >= t
        out.append((float(acc[~same].mean()), float(acc[same].mean())))
    return out


def test_pair_scores_is_the_cosine_of_every_unordered_pair():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(7, 4))
    labels = np.array([0, 1, 0, 2, 1, 0, 2])
    scores, same = pair_scores(emb, labels)
    expected, expected_same = [], []
    for i in range(7):
        for j in range(i + 1, 7):
            cos = emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j])
            expected.append(cos)
            expected_same.append(labels[i] == labels[j])
    np.testing.assert_allclose(scores, expected, atol=1e-12)
    np.testing.assert_array_equal(same, expected_same)
    assert same.dtype == bool
    # torch input gives the same answer
    t_scores, t_same = pair_scores(torch.as_tensor(emb), torch.as_tensor(labels))
    np.testing.assert_allclose(t_scores, scores, atol=1e-6)
    np.testing.assert_array_equal(t_same, same)


@pytest.mark.parametrize("ties", [False, True])
def test_roc_curve_and_auc_match_sklearn(ties):
    scores, same = _scores(1, ties=ties)
    far, tar, thr = roc_curve(scores, same)
    s_far, s_tar, s_thr = skm.roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, s_far)
    np.testing.assert_allclose(tar, s_tar)
    np.testing.assert_allclose(thr[1:], s_thr[1:])
    assert thr[0] == np.inf and far[0] == 0 and tar[0] == 0 and far[-1] == 1 and tar[-1] == 1
    assert roc_auc(scores, same) == pytest.approx(skm.roc_auc_score(same, scores), abs=1e-12)
    # independent: the Mann-Whitney probability P(s_same > s_diff) + 0.5 P(tie)
    pos, neg = scores[same], scores[~same]
    mw = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert roc_auc(torch.as_tensor(scores), torch.as_tensor(same)) == pytest.approx(mw)


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("far", [1e-2, 0.05, 0.3, 1.0])
def test_tar_at_far_is_the_best_tar_within_the_far_budget(ties, far):
    scores, same = _scores(2, n=1000, ties=ties)
    brute = max(t for f, t in _brute_rates(scores, same) if f <= far)
    assert tar_at_far(scores, same, far=far) == pytest.approx(brute)


@pytest.mark.parametrize("seed", range(5))
def test_eer_matches_the_usual_interpolated_root(seed):
    scores, same = _scores(seed)
    s_far, s_tar, _ = skm.roc_curve(same, scores)
    # the formula most face-verification code uses: 1 - x - TAR(x) = 0
    ref = brentq(lambda x: 1.0 - x - np.interp(x, s_far, s_tar), 0.0, 1.0)
    assert eer(scores, same) == pytest.approx(ref, abs=1e-6)


def test_eer_on_hand_made_cases():
    same = np.array([True, True, False, False])
    assert eer(np.array([0.9, 0.8, 0.2, 0.1]), same) == 0.0  # separable
    assert eer(np.array([0.1, 0.2, 0.8, 0.9]), same) == 1.0  # reversed
    # one impostor above one genuine: FAR=0.5 at TAR=0.5 -> EER 0.5
    assert eer(np.array([0.9, 0.3, 0.5, 0.1]), same) == pytest.approx(0.5)
    assert roc_auc(np.array([0.9, 0.3, 0.5, 0.1]), same) == pytest.approx(0.75)


@pytest.mark.parametrize("k", [1, 3])
def test_recall_at_k_matches_a_loop(k):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 4, size=40)
    emb = rng.normal(size=(40, 5)) + labels[:, None] * 0.7
    hits = 0
    for i in range(40):
        sims = [
            (emb[i] @ emb[j] / np.linalg.norm(emb[i]) / np.linalg.norm(emb[j]), j)
            for j in range(40)
            if j != i
        ]
        nearest = [j for _, j in sorted(sims, key=lambda s: -s[0])[:k]]
        hits += any(labels[j] == labels[i] for j in nearest)
    assert recall_at_k(emb, labels, k=k) == pytest.approx(hits / 40)
    assert recall_at_k(torch.as_tensor(emb).float(), torch.as_tensor(labels), k=k) == (
        pytest.approx(hits / 40)
    )


def test_perfect_and_hopeless_embeddings():
    labels = np.array([0, 0, 1, 1, 2, 2])
    emb = np.eye(3)[labels] + 0.01 * np.arange(6)[:, None]
    scores, same = pair_scores(emb, labels)
    assert roc_auc(scores, same) == 1.0
    assert eer(scores, same) == 0.0
    assert tar_at_far(scores, same, far=1e-2) == 1.0
    assert recall_at_k(emb, labels, k=1) == 1.0


def test_bad_input_names_the_argument():
    scores, same = _scores(0, n=20)
    with pytest.raises(ValueError, match="scores"):
        roc_auc(np.where(np.arange(20) == 3, np.nan, scores), same)
    with pytest.raises(ValueError, match="embeddings"):
        pair_scores(np.full((3, 2), np.nan), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="embeddings"):
        recall_at_k(np.ones(5), np.zeros(5))
    with pytest.raises(ValueError, match="labels"):
        pair_scores(np.ones((3, 2)), np.array([0, 1]))
    with pytest.raises(ValueError, match="same"):
        roc_curve(scores, same[:-1])
    with pytest.raises(ValueError, match="same"):
        roc_auc(scores, np.ones(20, dtype=bool))  # one class only: AUC undefined
    with pytest.raises(ValueError, match="same"):
        roc_auc(scores, np.full(20, 2))
    with pytest.raises(ValueError, match="far"):
        tar_at_far(scores, same, far=0.0)
    with pytest.raises(ValueError, match="far"):
        tar_at_far(scores, same, far=1.5)
    with pytest.raises(ValueError, match="k"):
        recall_at_k(np.ones((4, 2)), np.zeros(4), k=4)
    with pytest.raises(ValueError, match="embeddings"):
        pair_scores(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([0, 1]))  # zero vector
