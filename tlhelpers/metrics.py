"""Accuracy and the mean over seeds with a confidence interval; verification
and retrieval metrics: ROC, AUC, TAR at FAR, EER, recall@k."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from tlhelpers.validation import check_int, check_positive, to_numpy

__all__ = [
    "accuracy",
    "bootstrap_ci",
    "confusion_matrix",
    "detection_counts",
    "eer",
    "expected_calibration_error",
    "match_detections",
    "mean_ci",
    "pair_scores",
    "per_class_accuracy",
    "precision_recall",
    "recall_at_k",
    "reliability_bins",
    "roc_auc",
    "roc_curve",
    "summarize",
    "tar_at_far",
]


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
        out[name] = {
            "mean": m,
            "ci": h,
            "min": float(np.min(vals)),
            "max": float(np.max(vals)),
            "n": len(vals),
        }
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


# --- classification diagnostics and calibration (notebook 07) -------------------------------


def _labels_from(name: str, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """1-D integer labels; a 2-D ``(N, K)`` array of logits or probabilities is argmax-ed."""
    arr = to_numpy(name, x)
    if arr.ndim == 2:
        arr = arr.argmax(1)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D labels or 2-D (N, K) scores, got shape {arr.shape}.")
    if arr.dtype.kind == "f" and not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must hold integer labels, got non-integer values.")
    return arr.astype(np.int64)


def confusion_matrix(
    targets: torch.Tensor | np.ndarray,
    predictions: torch.Tensor | np.ndarray,
    num_classes: int | None = None,
) -> np.ndarray:
    """``C[i, j]`` = number of items of true class ``i`` predicted as ``j`` (rows: truth).

    ``predictions`` are labels ``(N,)`` or scores ``(N, K)`` (argmax-ed). ``num_classes``
    defaults to ``1 + `` the largest label seen. Same as
    ``sklearn.metrics.confusion_matrix(targets, predictions, labels=range(num_classes))``.
    """
    y = _labels_from("targets", targets)
    p = _labels_from("predictions", predictions)
    if p.shape != y.shape:
        raise ValueError(f"predictions has shape {p.shape} but targets has {y.shape}.")
    if y.size == 0:
        raise ValueError("targets is empty.")
    k = int(max(y.max(), p.max())) + 1 if num_classes is None else num_classes
    check_int("num_classes", k, minimum=1)
    if min(y.min(), p.min()) < 0 or max(y.max(), p.max()) >= k:
        raise ValueError(
            f"labels must lie in 0..{k - 1} for num_classes={k}, got targets in "
            f"{y.min()}..{y.max()} and predictions in {p.min()}..{p.max()}."
        )
    return np.bincount(y * k + p, minlength=k * k).reshape(k, k)


def per_class_accuracy(
    targets: torch.Tensor | np.ndarray,
    predictions: torch.Tensor | np.ndarray,
    num_classes: int | None = None,
) -> np.ndarray:
    """Accuracy on each true class, ``C[i, i] / sum_j C[i, j]`` (the per-class recall).

    A class with no item in ``targets`` gets NaN (undefined), never 0.
    """
    cm = confusion_matrix(targets, predictions, num_classes)
    n = cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.diag(cm) / n, np.nan)


def _check_probs(probs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray):
    p = to_numpy("probs", probs, ndim=2).astype(np.float64)
    y = _labels_from("targets", targets)
    if y.shape[0] != p.shape[0]:
        raise ValueError(f"targets has {y.shape[0]} entries but probs has {p.shape[0]} rows.")
    if p.size == 0:
        raise ValueError(f"probs is empty (shape {p.shape}): no prediction to calibrate.")
    k = p.shape[1]
    if y.min() < 0 or y.max() >= k:  # an out-of-range label would only count as a mistake
        bad = y[(y < 0) | (y >= k)]
        raise ValueError(
            f"targets must be labels in 0..{k - 1}, one per column of probs ({k} columns), "
            f"got {bad[0]} ({bad.size} of {y.size} labels outside)."
        )
    if p.min() < 0 or p.max() > 1 or not np.allclose(p.sum(1), 1.0, atol=1e-3):
        raise ValueError(
            "probs must be probabilities (rows in [0, 1] summing to 1; apply softmax to "
            f"logits first), got values in {p.min():.3g}..{p.max():.3g}."
        )
    return p, y


def reliability_bins(
    probs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, n_bins: int = 15
) -> dict[str, np.ndarray]:
    """Confidence ``max_k p_k`` binned into ``n_bins`` equal-width bins ``((m-1)/M, m/M]``.

    Returns ``edges (M+1,)``, and per bin ``count``, ``accuracy`` (fraction of correct
    argmax predictions) and ``confidence`` (mean confidence); NaN for an empty bin. The
    bins of Guo et al., "On Calibration of Modern Neural Networks", ICML 2017, and of
    ``sklearn.calibration.calibration_curve(correct, confidence, strategy="uniform")``.
    """
    check_int("n_bins", n_bins, minimum=1)
    p, y = _check_probs(probs, targets)
    conf = p.max(1)
    correct = (p.argmax(1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], conf, side="left")  # right-closed bins, as sklearn
    count = np.bincount(ids, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(ids, weights=correct, minlength=n_bins) / count
        mean_conf = np.bincount(ids, weights=conf, minlength=n_bins) / count
    return {"edges": edges, "count": count, "accuracy": acc, "confidence": mean_conf}


def expected_calibration_error(
    probs: torch.Tensor | np.ndarray, targets: torch.Tensor | np.ndarray, n_bins: int = 15
) -> float:
    r"""ECE with ``n_bins`` equal-width confidence bins (15 by default, as Guo et al., 2017).

    .. math:: \mathrm{ECE} = \sum_{m=1}^{M} \frac{|B_m|}{n}\,
              \big|\mathrm{acc}(B_m) - \mathrm{conf}(B_m)\big|

    where :math:`B_m` holds the items whose confidence :math:`\max_k p_k` lies in
    :math:`((m-1)/M, m/M]` (:func:`reliability_bins`). 0 is perfectly calibrated; the value
    depends on the binning, so always report ``n_bins`` with it. ``probs`` are
    probabilities ``(N, K)`` (softmax of the logits); ``targets`` must be labels in
    ``0..K-1`` (a label outside the columns is refused, not counted as a mistake).
    """
    b = reliability_bins(probs, targets, n_bins)
    nonempty = b["count"] > 0
    w = b["count"][nonempty] / b["count"].sum()
    return float(np.sum(w * np.abs(b["accuracy"][nonempty] - b["confidence"][nonempty])))


def bootstrap_ci(
    values: Sequence[float] | np.ndarray | torch.Tensor,
    *,
    statistic: Callable[..., np.ndarray] = np.mean,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: percentile bootstrap interval of ``statistic(values)``.

    Resamples the ``n`` items with replacement ``n_boot`` times and takes the
    ``(1 -/+ confidence) / 2`` quantiles of the statistic (Efron & Tibshirani, 1993, ch. 13).
    Over *test items* it measures how much the number would move with another test set of
    the same size, not with another training seed. For a paired comparison of two models
    on the same items, pass the per-item differences (e.g. ``correct_a - correct_b``).
    ``statistic`` must accept ``axis=`` (numpy style: ``np.mean``, ``np.median``).
    """
    v = to_numpy("values", values).astype(np.float64).ravel()
    if v.size == 0:
        raise ValueError("values is empty: nothing to bootstrap.")
    check_int("n_boot", n_boot, minimum=1)
    check_int("seed", seed, minimum=0)
    if isinstance(confidence, bool) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    rng = np.random.default_rng(seed)
    boots = statistic(v[rng.integers(0, v.size, size=(n_boot, v.size))], axis=1)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(boots, [alpha, 1 - alpha])
    return float(statistic(v)), float(lo), float(hi)


# ---------------------------------------------------------------- detection (notebook 08a)


def match_detections(
    boxes: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    truth: torch.Tensor | np.ndarray,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Which detections are true positives: a bool array, one per detection (input order).

    Greedy matching as in PASCAL VOC (Everingham et al., 2010) and COCO: detections in order
    of decreasing score; each takes the not-yet-matched truth box with the highest IoU (COCO's
    variant; VOC takes the best of all truth boxes and counts a detection whose box is taken
    as false), and is a true positive when that IoU is ``>= iou_threshold``; every truth box
    is matched at most once, so a second box on the same face is a false positive. Equal
    scores keep the input order.
    """
    from tlhelpers.detection import box_iou

    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in (0, 1], got {iou_threshold!r}.")
    s = to_numpy("scores", scores).astype(np.float64).reshape(-1)
    iou = box_iou(boxes, truth).numpy()  # validates both box arrays
    if s.shape[0] != iou.shape[0]:
        raise ValueError(f"scores must have one value per box ({iou.shape[0]}), got {s.shape[0]}.")
    tp = np.zeros(iou.shape[0], dtype=bool)
    free = np.ones(iou.shape[1], dtype=bool)
    for i in np.argsort(-s, kind="stable"):
        if not free.any():
            break
        cand = np.where(free, iou[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou_threshold:
            tp[i], free[j] = True, False
    return tp


def detection_counts(
    boxes: torch.Tensor | np.ndarray,
    scores: torch.Tensor | np.ndarray,
    truth: torch.Tensor | np.ndarray,
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """``tp``, ``fp``, ``fn``, ``precision = tp / (tp + fp)``, ``recall = tp / (tp + fn)`` of
    one image's detections against its truth boxes (:func:`match_detections`).

    Undefined ratios are NaN, never a made-up 0 or 1: precision with no detection, recall
    with no truth box (a photo without a face). Sum the counts over photos first
    (:func:`precision_recall`) to get the numbers of a set of photos.
    """
    from tlhelpers.detection import box_area

    tp_flags = match_detections(boxes, scores, truth, iou_threshold)
    n_truth = int(box_area(truth).shape[0])
    tp, fp = int(tp_flags.sum()), int((~tp_flags).sum())
    return {"tp": tp, "fp": fp, "fn": n_truth - tp, **precision_recall(tp, fp, n_truth - tp)}


def precision_recall(tp: int, fp: int, fn: int) -> dict[str, float]:
    """``precision = tp / (tp + fp)`` and ``recall = tp / (tp + fn)``, NaN where the
    denominator is 0."""
    for name, v in (("tp", tp), ("fp", fp), ("fn", fn)):
        check_int(name, v, minimum=0)
    return {"precision": tp / (tp + fp) if tp + fp else float("nan"),
            "recall": tp / (tp + fn) if tp + fn else float("nan")}  # fmt: skip
