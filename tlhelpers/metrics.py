"""Accuracy and the mean over seeds with a confidence interval (every notebook); verification
and retrieval metrics: ROC, AUC, TAR at FAR, EER, recall@k (notebooks 05b, 07)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tlhelpers.validation import check_int, check_positive, to_numpy


def accuracy(outputs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray) -> float:
    """Fraction correct; ``outputs`` are logits ``(N, K)`` or predicted labels ``(N,)``."""
    out = torch.as_tensor(outputs)
    y = torch.as_tensor(targets)
    pred = out.argmax(1) if out.ndim == 2 else out
    if pred.shape != y.shape:
        raise ValueError(f"outputs {tuple(out.shape)} and targets {tuple(y.shape)} do not match.")
    return float((pred == y).float().mean())


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval over seeds.

    With one value the half-width is 0 (nothing to estimate a spread from).
    """
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if v.size == 0:
        raise ValueError("mean_ci needs at least one value.")
    if v.size == 1:
        return float(v[0]), 0.0
    sem = v.std(ddof=1) / np.sqrt(v.size)
    return float(v.mean()), float(sem * stats.t.ppf((1 + confidence) / 2, v.size - 1))


def summarize(results: dict[str, Sequence[float]], confidence: float = 0.95) -> dict[str, dict]:
    """``{name: {"mean", "ci", "min", "max", "n"}}`` for a dict of per-seed values."""
    out = {}
    for name, vals in results.items():
        m, h = mean_ci(vals, confidence)
        out[name] = {"mean": m, "ci": h, "min": float(np.min(vals)), "max": float(np.max(vals)),
                     "n": len(vals)}
    return out


# --- verification and retrieval (notebooks 05b and 07) ---------------------------------
#
# A verification system accepts a pair as "same identity/class" when its similarity score is
# at least a threshold t.  Over the impostor pairs (different labels) the acceptance rate is
# the false accept rate FAR(t) (= false positive rate); over the genuine pairs (same label)
# it is the true accept rate TAR(t) (= true positive rate, recall).  The ROC curve is
# (FAR(t), TAR(t)) for every t.  Conventions as in face verification (LFW, Huang et al.,
# 2007; IJB-B/C report TAR at fixed FAR, Whitelam et al., 2017).


def _check_embeddings_labels(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``(N, D)`` finite embeddings with no zero row and ``(N,)`` labels."""
    emb = to_numpy("embeddings", embeddings, ndim=2).astype(np.float64)
    lab = to_numpy("labels", labels, ndim=1)
    if lab.shape[0] != emb.shape[0]:
        raise ValueError(
            f"labels has {lab.shape[0]} entries but embeddings has {emb.shape[0]} rows; "
            "they must match."
        )
    if emb.shape[0] < 2:
        raise ValueError(f"embeddings needs at least 2 rows, got shape {emb.shape}.")
    norms = np.linalg.norm(emb, axis=1)
    if np.any(norms == 0):
        raise ValueError(
            f"embeddings has {int((norms == 0).sum())} all-zero rows; cosine similarity is "
            "undefined for them."
        )
    return emb / norms[:, None], lab


def _check_scores_same(
    scores: torch.Tensor | np.ndarray, same: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Validate finite 1-D ``scores`` and a boolean ``same`` of equal length holding both
    classes (a ROC curve needs genuine and impostor pairs)."""
    s = to_numpy("scores", scores, ndim=1).astype(np.float64)
    y = to_numpy("same", same, ndim=1)
    if y.shape != s.shape:
        raise ValueError(f"same has shape {y.shape} but scores has {s.shape}; they must match.")
    if y.dtype != bool:
        if not np.all((y == 0) | (y == 1)):
            raise ValueError(f"same must be boolean (or 0/1), got values {np.unique(y)[:5]}.")
        y = y.astype(bool)
    if y.all() or not y.any():
        raise ValueError(
            f"same must hold both genuine (True) and impostor (False) pairs; got {int(y.sum())} "
            f"True of {y.size}."
        )
    return s, y


def pair_scores(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of every unordered pair ``i < j`` and whether their labels match.

    ``s_ij = <e_i, e_j> / (||e_i|| ||e_j||)``; pairs in row-major order of the upper triangle
    (``np.triu_indices(N, 1)``).  ``N (N - 1) / 2`` pairs: keep ``N`` to a few thousand.

    Shape: ``embeddings (N, D)``, ``labels (N,)`` -> ``scores (P,)`` float, ``same (P,)`` bool.
    """
    emb, lab = _check_embeddings_labels(embeddings, labels)
    i, j = np.triu_indices(emb.shape[0], 1)
    sims = emb @ emb.T
    return sims[i, j], lab[i] == lab[j]


def roc_curve(
    scores: torch.Tensor | np.ndarray, same: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(far, tar, thresholds)``: the ROC curve, accepting a pair when ``score >= t``.

    One point per distinct score, in decreasing threshold order, after a first point
    ``t = inf`` with ``FAR = TAR = 0`` (as ``sklearn.metrics.roc_curve(same, scores,
    drop_intermediate=False)``).  ``FAR(t) = #{impostor pairs with s >= t} / #impostors``,
    ``TAR(t) = #{genuine pairs with s >= t} / #genuine``.
    """
    s, y = _check_scores_same(scores, same)
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each tied run
    tps = np.cumsum(y)[last]
    fps = last + 1 - tps
    far = np.r_[0.0, fps / fps[-1]]
    tar = np.r_[0.0, tps / tps[-1]]
    return far, tar, np.r_[np.inf, s[last]]


def roc_auc(scores: torch.Tensor | np.ndarray, same: torch.Tensor | np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; ties count one half).

    Equals the Mann-Whitney probability ``P(s_genuine > s_impostor) + 0.5 P(=)`` (Hanley &
    McNeil, 1982) and ``sklearn.metrics.roc_auc_score(same, scores)``.
    """
    far, tar, _ = roc_curve(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def tar_at_far(
    scores: torch.Tensor | np.ndarray, same: torch.Tensor | np.ndarray, far: float = 1e-2
) -> float:
    """The highest TAR over thresholds whose FAR is at most ``far`` (no interpolation).

    With ``M`` impostor pairs a FAR below ``1 / M`` is only reachable at ``FAR = 0``: report
    ``M`` beside the number.  ``far`` must lie in ``(0, 1]``.
    """
    check_positive("far", far)
    if far > 1:
        raise ValueError(f"far must lie in (0, 1], got {far!r}.")
    fars, tars, _ = roc_curve(scores, same)
    return float(tars[fars <= far].max())


def eer(scores: torch.Tensor | np.ndarray, same: torch.Tensor | np.ndarray) -> float:
    """Equal error rate: the FAR where ``FAR = 1 - TAR`` (false accepts = false rejects).

    The ROC curve is taken piecewise linear between its points, and the crossing of
    ``FAR - (1 - TAR)`` through zero is interpolated on the segment where it changes sign
    (the same number as ``brentq(lambda x: 1 - x - interp(x, far, tar), 0, 1)``).
    """
    fars, tars, _ = roc_curve(scores, same)
    d = fars - (1 - tars)  # -1 at the first point, +1 at the last, non-decreasing
    i = int(np.argmax(d >= 0))
    if d[i] == 0:
        return float(fars[i])
    alpha = -d[i - 1] / (d[i] - d[i - 1])
    return float(fars[i - 1] + alpha * (fars[i] - fars[i - 1]))


def recall_at_k(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, k: int = 1
) -> float:
    """Leave-one-out retrieval: the fraction of items with a same-label item among their
    ``k`` nearest others by cosine similarity (Recall@K of Jegou et al., 2011; Song et al.,
    2016).

    Every item is a query against all the others; ties in similarity go to the lower index.
    An item that is alone in its class cannot score a hit and still counts.
    Shape: ``embeddings (N, D)``, ``labels (N,)``; ``1 <= k < N``.
    """
    emb, lab = _check_embeddings_labels(embeddings, labels)
    n = emb.shape[0]
    check_int("k", k, minimum=1)
    if k >= n:
        raise ValueError(f"k must be < the number of items ({n}), got {k!r}.")
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)  # never retrieve the query itself
    nearest = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return float((lab[nearest] == lab[:, None]).any(axis=1).mean())
