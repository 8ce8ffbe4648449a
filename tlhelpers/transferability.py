"""Transferability scores: guess which pre-trained model will fine-tune best, without fine-tuning.

Taught in notebook 02 ("model choice"). Each score looks at what a frozen source
model produces on the *target* training images -- its penultimate features, its
source-head softmax, or its argmax source labels -- together with the target
labels, and returns one number per model; a higher number is meant to predict a
higher fine-tuned accuracy. Scores are only comparable between models on the
*same* target data set.

=========  ======================================  =====================================
score      needs                                    paper
=========  ======================================  =====================================
LEEP       source-head softmax ``(n, Z)``           Nguyen et al., ICML 2020
NCE        source argmax labels ``(n,)``            Tran et al., ICCV 2019
LogME      features ``(n, D)``                      You et al., ICML 2021
H-score    features ``(n, D)``                      Bao et al., ICIP 2019
H-alpha    features ``(n, D)``                      Ibrahim, Ponomareva & Mazumder, ECML PKDD 2022
=========  ======================================  =====================================

All functions accept numpy arrays or torch tensors (detached and moved to the
CPU), compute in float64 and return a Python ``float``. Target labels are
integers; any integer values work (they are mapped to ``0..C-1`` with
``np.unique``). Every score needs at least two target classes. No score needs two
samples per class: a class seen once still has a one-hot column (LogME), a class
mean (H-score) and a row of the joint distribution (LEEP, NCE).

How well the scores predict fine-tuned accuracy varies a lot by data set (TLlib's
10-model study: LogME Pearson 0.58 on Aircraft but 0.73 on CIFAR-10, LEEP 0.13 on
Aircraft), so notebook 02 measures it on its own tasks with
:func:`rank_correlation` rather than assuming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

from tlhelpers.validation import check_choice, check_int, check_positive, to_numpy

__all__ = [
    "SCORES",
    "format_table",
    "h_score",
    "h_score_shrinkage",
    "leep",
    "ledoit_wolf_shrinkage",
    "logme",
    "nce",
    "rank_correlation",
    "rank_agreement",
    "rank_correlation_interval",
    "rank_models",
    "scores_over_draws",
]

#: Names accepted by :func:`rank_models`, with the candidate key each one reads.
SCORES: dict[str, str] = {
    "logme": "features",
    "h_score": "features",
    "h_score_shrinkage": "features",
    "leep": "source_probs",
    "nce": "source_labels",
}

_EPS = np.finfo(np.float64).eps
# LogME's alpha and beta are kept inside this range so that a hyper-parameter that
# runs off to 0 or infinity (a degenerate class) cannot produce inf/NaN.
_HYPER_MIN, _HYPER_MAX = 1e-100, 1e100


# --------------------------------------------------------------------------- validation


def _labels(name: str, labels: Any, *, other: str, other_shape: tuple[int, ...]):
    """Validate 1-D integer labels matching ``other_shape[0]``; return (codes, n_classes)."""
    y = to_numpy(name, labels, ndim=1)
    if y.dtype.kind == "f":
        if np.any(y != np.round(y)):
            raise ValueError(f"{name} must hold integer class labels, got non-integer floats.")
    elif y.dtype.kind not in "iub":
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}.")
    if y.shape[0] != other_shape[0]:
        raise ValueError(
            f"{other} and {name} must have the same number of samples, got {other} shape "
            f"{other_shape} and {name} shape {y.shape}."
        )
    classes, codes = np.unique(y, return_inverse=True)
    if classes.size < 2:
        raise ValueError(
            f"{name} must contain at least two classes, got {classes.size} "
            f"(values {classes.tolist()}, shape {y.shape})."
        )
    return codes.reshape(-1), int(classes.size)


def _features(features: Any) -> np.ndarray:
    f = to_numpy("features", features, ndim=None)
    if f.ndim != 2:
        raise ValueError(
            f"features must be 2-D (n_samples, n_features), got shape {f.shape}; "
            "flatten or pool the feature maps first."
        )
    if f.dtype.kind not in "biuf":
        raise ValueError(f"features must be numeric, got dtype {f.dtype}.")
    if f.shape[1] < 1:
        raise ValueError(f"features must have at least one column, got shape {f.shape}.")
    return np.asarray(f, dtype=np.float64)


def _unit_scale(f: np.ndarray) -> np.ndarray:
    """``f / max|f|``: the largest entry becomes 1.

    For scores that are invariant to a uniform scaling of the features (H-score, its
    shrinkage form, the Ledoit-Wolf intensity): features of size 1e200 or 1e-200 would
    otherwise overflow or underflow in ``f^T f`` and give an error or a wrong score.
    """
    top = float(np.max(np.abs(f))) if f.size else 0.0
    return f / top if top > 0 else f


def _features_and_labels(features: Any, target_labels: Any):
    f = _features(features)
    codes, n_classes = _labels(
        "target_labels", target_labels, other="features", other_shape=f.shape
    )
    return f, codes, n_classes


def _one_hot(codes: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((codes.shape[0], n_classes))
    out[np.arange(codes.shape[0]), codes] = 1.0
    return out


def _source_probs(source_probs: Any, atol: float) -> np.ndarray:
    p = to_numpy("source_probs", source_probs, ndim=None)
    if p.ndim != 2:
        raise ValueError(
            f"source_probs must be 2-D (n_samples, n_source_classes), got shape {p.shape}."
        )
    if p.dtype.kind not in "biuf":
        raise ValueError(f"source_probs must be numeric, got dtype {p.dtype}.")
    p = np.asarray(p, dtype=np.float64)
    if p.size and p.min() < 0:
        raise ValueError(
            f"source_probs must be probabilities (softmax outputs), got a negative entry "
            f"{p.min():.3g} (shape {p.shape}). Apply softmax to the logits first."
        )
    row_sums = p.sum(axis=1)
    worst = np.max(np.abs(row_sums - 1.0)) if row_sums.size else 0.0
    if worst > atol:
        raise ValueError(
            f"source_probs rows must sum to 1 (within atol={atol:g}), but a row sums to "
            f"{row_sums[np.argmax(np.abs(row_sums - 1.0))]:.6g} (shape {p.shape}). "
            "Apply softmax to the logits first."
        )
    return p


# --------------------------------------------------------------------------- scores


def leep(source_probs: Any, target_labels: Any, *, atol: float = 1e-4) -> float:
    r"""Log Expected Empirical Prediction (LEEP) of a source classifier for a target task.

    Nguyen, Hassner, Seeger & Archambeau, "LEEP: A New Measure to Evaluate
    Transferability of Learned Representations", ICML 2020. Used in notebook 02
    ("model choice") for models that still have their source (e.g. ImageNet) head.

    With :math:`\theta_i(z)` the source head's softmax for target image :math:`i`,

    .. math::

        P(y, z) = \frac1n \sum_{i:\,y_i = y} \theta_i(z), \qquad
        P(y \mid z) = \frac{P(y, z)}{P(z)}, \qquad
        \mathrm{LEEP} = \frac1n \sum_i \log \sum_z P(y_i \mid z)\, \theta_i(z).

    It is the average log-likelihood of the "expected empirical predictor" that
    relabels source classes into target classes through :math:`P(y \mid z)`.
    Convention: natural log; the score is :math:`\le 0`, higher is better. A source
    class with :math:`P(z) = 0` gets :math:`P(y \mid z) = 0` (it carries no mass).

    Args:
        source_probs: ``(n, Z)`` softmax outputs (not logits) of the source head on
            the ``n`` target images; entries ``>= 0`` and rows summing to 1 within
            ``atol``.
        target_labels: ``(n,)`` integer target labels, at least two classes.
        atol: tolerance on the row sums (float32 softmax is accurate to ~1e-6).

    Returns:
        The LEEP score as a Python float.
    """
    check_positive("atol", atol)
    theta = _source_probs(source_probs, atol)
    codes, n_classes = _labels(
        "target_labels", target_labels, other="source_probs", other_shape=theta.shape
    )
    n = theta.shape[0]
    joint = _one_hot(codes, n_classes).T @ theta / n  # (C, Z): P(y, z)
    marginal = joint.sum(axis=0)  # (Z,): P(z)
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y|z)
    # EEP likelihood of each sample's own label: sum_z P(y_i | z) theta_i(z)
    lik = np.einsum("iz,iz->i", theta, cond[codes])
    return float(np.mean(np.log(lik)))


def nce(source_labels: Any, target_labels: Any) -> float:
    r"""Negative Conditional Entropy (NCE) of target labels given source labels.

    Tran, Nguyen & Hassner, "Transferability and Hardness of Supervised
    Classification Tasks", ICCV 2019. Used in notebook 02 ("model choice").

    With the empirical joint :math:`\hat P(y, z) = \#\{i: y_i = y, z_i = z\} / n` of
    target labels :math:`Y` and source (argmax) labels :math:`Z`,

    .. math::

        \mathrm{NCE} = -H(Y \mid Z)
                     = \sum_{y, z} \hat P(y, z) \log \frac{\hat P(y, z)}{\hat P(z)}.

    Convention: natural log (nats); :math:`0 \cdot \log 0 = 0`. The score is
    :math:`\le 0`; it is 0 when the source label determines the target label,
    :math:`-H(Y)` when they are independent.

    Args:
        source_labels: ``(n,)`` integer source labels (the source head's argmax on
            the target images), or ``(n, Z)`` source scores/probabilities whose
            row-wise argmax is taken.
        target_labels: ``(n,)`` integer target labels, at least two classes.

    Returns:
        The NCE score as a Python float.
    """
    z = to_numpy("source_labels", source_labels, ndim=None)
    if z.ndim == 2:
        if z.dtype.kind not in "biuf":
            raise ValueError(f"source_labels must be numeric, got dtype {z.dtype}.")
        z = np.argmax(z, axis=1)
    elif z.ndim != 1:
        raise ValueError(
            f"source_labels must be 1-D labels (n,) or 2-D scores (n, Z), got shape {z.shape}."
        )
    if z.dtype.kind == "f":
        if np.any(z != np.round(z)):
            raise ValueError(
                "source_labels must hold integer class labels, got non-integer floats."
            )
    elif z.dtype.kind not in "iub":
        raise ValueError(f"source_labels must hold integer class labels, got dtype {z.dtype}.")
    codes, n_classes = _labels(
        "target_labels", target_labels, other="source_labels", other_shape=z.shape
    )
    _, z_codes = np.unique(z, return_inverse=True)
    z_codes = z_codes.reshape(-1)
    n = codes.shape[0]
    counts = np.zeros((n_classes, int(z_codes.max()) + 1))
    np.add.at(counts, (codes, z_codes), 1.0)
    joint = counts / n
    marginal_z = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / marginal_z)[nz])))


def logme(features: Any, target_labels: Any, *, max_iter: int = 10_000, tol: float = 1e-8) -> float:
    r"""Log Maximum Evidence (LogME) of features for a classification target.

    You, Liu, Wang & Long, "LogME: Practical Assessment of Pre-trained Models for
    Transfer Learning", ICML 2021. Used in notebook 02 ("model choice"): it ranks
    frozen backbones from one forward pass over the target data.

    For each target class :math:`c` the one-hot column :math:`y \in \{0,1\}^n` is
    modelled as a Bayesian linear regression on the features
    :math:`F \in \mathbb R^{n \times D}`: :math:`w \sim N(0, \alpha^{-1} I)`,
    :math:`y \mid F, w \sim N(F w, \beta^{-1} I)`. With :math:`s_i` the eigenvalues of
    :math:`F^\top F` and :math:`m = \beta (\alpha I + \beta F^\top F)^{-1} F^\top y`
    the posterior mean, the log evidence is

    .. math::

        \mathcal L(\alpha, \beta) = \frac D2 \log\alpha + \frac n2 \log\beta
          - \frac12 \sum_{i=1}^{D} \log(\alpha + \beta s_i)
          - \frac\beta2 \lVert y - F m\rVert^2 - \frac\alpha2 \lVert m\rVert^2
          - \frac n2 \log 2\pi .

    It is maximised by the paper's fixed-point (MacKay) iteration from
    :math:`\alpha = \beta = 1`: :math:`\gamma = \sum_i \beta s_i / (\alpha + \beta s_i)`,
    :math:`\alpha \leftarrow \gamma / \lVert m\rVert^2`,
    :math:`\beta \leftarrow (n - \gamma) / \lVert y - F m\rVert^2`, until
    :math:`\mathcal L / n` changes by less than ``tol`` in one step. The score is
    :math:`\mathcal L / n` at the optimum, averaged over the classes.

    Conventions: natural log; features are used as given (no centring, no bias
    column, as in the reference implementation); classes are the distinct values of
    ``target_labels`` (a class absent from the labels gets no column). One
    eigendecomposition is shared by all classes: of :math:`F^\top F` when
    :math:`n \ge D`, of :math:`F F^\top` when :math:`n < D`, in which case the
    :math:`D - n` zero eigenvalues of :math:`F^\top F` are added back as
    :math:`\log\alpha` terms; afterwards each iteration costs :math:`O(\min(n, D))`
    per class, and all classes iterate together as arrays (a class leaves once
    converged). The maximised evidence does not depend on the feature scale
    (:math:`F \to cF` with :math:`\alpha \to c^2\alpha` leaves :math:`\mathcal L`
    unchanged), and neither does the score: the features are first divided by their
    root-mean-square entry and the paper's start :math:`\alpha = \beta = 1` is applied to
    those (the reference code starts at 1 on the raw features, so on features far from
    unit scale it can stop at a different fixed point, e.g. :math:`\alpha \to \infty`);
    internally the iteration runs on :math:`F / \sqrt{s_{\max}}`. Unlike the reference code (at most
    11 iterations, 1% tolerance on :math:`\alpha/\beta`) this iterates until the
    evidence stops improving, so the value is the maximum (typically within 1e-6 per
    sample even where the iteration converges slowly, e.g. for features unrelated
    to the labels); where the optimum lies at :math:`\alpha \to \infty` or
    :math:`\beta \to \infty` the evidence there is a supremum and the iteration stops
    once it has levelled off.

    Args:
        features: ``(n, D)`` features of the ``n`` target images (e.g. the pooled
            penultimate layer of a frozen backbone). Finite values only.
        target_labels: ``(n,)`` integer labels, at least two classes. A class with a
            single sample is fine.
        max_iter: maximum number of fixed-point iterations.
        tol: a class stops iterating once its evidence per sample changes by less
            than ``tol`` in one step.

    Returns:
        The LogME score (average log evidence per sample) as a Python float; higher
        is better. Typical values lie between about -1 and 2.
    """
    max_iter = check_int("max_iter", max_iter, minimum=1)
    check_positive("tol", tol)
    f, codes, n_classes = _features_and_labels(features, target_labels)
    n, d = f.shape
    # Scale-free, as documented: the maximised evidence is invariant to F -> cF (alpha
    # absorbs c^2), but the iteration's start is not (from alpha = beta = 1 on features
    # scaled by 1e-10 it ran off to alpha -> inf, the "features ignored" value), and F^T F
    # overflows at 1e200. So F is brought to unit root-mean-square entry first, in two
    # steps that never square a huge or tiny number, and the paper's start is used there.
    peak = float(np.max(np.abs(f)))
    if peak > 0:
        f = f / peak
        f = f / math.sqrt(float(np.mean(f * f)))
    onehot = _one_hot(codes, n_classes)
    y_sq = onehot.sum(axis=0)  # ||y||^2 of each one-hot column

    if n >= d:
        s, v = np.linalg.eigh(f.T @ f)
        s = np.clip(s, 0.0, None)[:, None]
        # w_i = (v_i^T F^T y)^2 = s_i (u_i^T y)^2 with u_i the left singular vectors
        w = (v.T @ (f.T @ onehot)) ** 2
        z_sq = None
    else:
        s, u = np.linalg.eigh(f @ f.T)
        s = np.clip(s, 0.0, None)[:, None]
        z_sq = (u.T @ onehot) ** 2  # (n, C); U is a full basis of R^n
        w = s * z_sq
    n_zero = d - s.shape[0]  # eigenvalues of F^T F not computed: exactly zero
    # Work with F / sqrt(s_max): the maximised evidence does not depend on the feature
    # scale (alpha absorbs it), and unit-scale eigenvalues keep alpha, beta moderate.
    scale = float(s.max()) if s.max() > 0 else 1.0
    s, w = s / scale, w / scale

    def evidence_and_moments(alpha, beta, cols):
        denom = alpha + beta * s  # (k, len(cols))
        gamma = np.sum(beta * s / denom, axis=0)
        m_sq = np.sum(beta**2 * w[:, cols] / denom**2, axis=0)  # ||m||^2
        if z_sq is None:
            # ||y - F m||^2 = ||y||^2 - sum_i z_i^2 [1 - alpha^2 / (alpha + beta s_i)^2]
            res = y_sq[cols] - np.sum(beta * w[:, cols] * (2 * alpha + beta * s) / denom**2, axis=0)
            res = np.maximum(res, 0.0)
        else:
            res = np.sum(alpha**2 * z_sq[:, cols] / denom**2, axis=0)
        evidence = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * (np.sum(np.log(denom), axis=0) + n_zero * np.log(alpha))
            - beta / 2 * res
            - alpha / 2 * m_sq
            - n / 2 * math.log(2 * math.pi)
        ) / n
        return evidence, gamma, m_sq, res

    tiny = np.finfo(np.float64).tiny
    # The paper's start alpha = beta = 1 for the given features is alpha = 1 / scale
    # for the rescaled ones; the fixed-point steps are the same up to that factor.
    alpha = np.full(n_classes, 1.0 / scale)
    beta = np.ones(n_classes)
    evidence, gamma, m_sq, res = evidence_and_moments(alpha, beta, slice(None))
    active = np.arange(n_classes)  # classes still iterating
    for _ in range(max_iter):
        new_a = np.clip(gamma / np.maximum(m_sq, tiny), _HYPER_MIN, _HYPER_MAX)
        new_b = np.clip((n - gamma) / np.maximum(res, tiny), _HYPER_MIN, _HYPER_MAX)
        alpha[active], beta[active] = new_a, new_b
        new_ev, gamma, m_sq, res = evidence_and_moments(new_a, new_b, active)
        going = np.abs(new_ev - evidence[active]) >= tol
        evidence[active] = new_ev
        active = active[going]
        if active.size == 0:
            break
        gamma, m_sq, res = gamma[going], m_sq[going], res[going]
    return float(np.mean(evidence))


def h_score(features: Any, target_labels: Any, *, rcond: float | None = None) -> float:
    r"""H-score of features for a classification target.

    Bao, Li, Huang, Zheng, Chen & Zhang, "An Information-Theoretic Approach to
    Transferability in Task Transfer Learning", ICIP 2019. Used in notebook 02
    ("model choice").

    .. math::

        H(f) = \operatorname{tr}\!\left(\operatorname{cov}(f)^{+}\,
               \operatorname{cov}\!\left(E[f \mid y]\right)\right)

    where :math:`\operatorname{cov}(E[f\mid y])` is the covariance of the features
    after replacing every sample by the mean feature of its class, i.e.
    :math:`\sum_c n_c (\mu_c - \mu)(\mu_c - \mu)^\top / (n - 1)`. It is a Fisher
    discriminant ratio: between-class spread measured in units of total spread;
    it lies in :math:`[0, \min(C - 1, D)]`, higher is better.

    Conventions: both covariances use the unbiased ``1/(n-1)`` normalisation of
    ``np.cov`` (the factor cancels, so ``1/n`` gives the same score). The
    pseudo-inverse keeps eigenvalues of :math:`\operatorname{cov}(f)` above
    ``rcond`` times the largest (default ``max(n, D) * eps``, numpy's
    ``matrix_rank`` tolerance); it is computed from ``eigh`` of the covariance when
    :math:`n \ge D` (same as ``np.linalg.pinv(cov, hermitian=True)``) and from the
    SVD of the centred features when :math:`n < D`. A class with a single sample is
    fine (its mean is that sample). The score is invariant to scaling the features, so
    they are divided by their largest absolute entry first: features of any size (1e-200
    or 1e200) give the same score without overflow.

    Args:
        features: ``(n, D)`` features of the ``n`` target images. Finite values only.
        target_labels: ``(n,)`` integer labels, at least two classes.
        rcond: relative cut-off of the pseudo-inverse (see above).

    Returns:
        The H-score as a Python float.
    """
    f, codes, n_classes = _features_and_labels(features, target_labels)
    n, d = f.shape
    if rcond is None:
        rcond = max(n, d) * _EPS
    check_positive("rcond", rcond)
    f = _unit_scale(f)  # H is scale-invariant; keeps f^T f finite at any feature size
    fc = f - f.mean(axis=0)
    onehot = _one_hot(codes, n_classes)
    counts = onehot.sum(axis=0)
    # sqrt(n_c) (mu_c - mu): the rows whose Gram matrix is (n - 1) cov(E[f|y])
    between = (onehot.T @ fc) / np.sqrt(counts)[:, None]  # (C, D)

    if n >= d:
        lam, vecs = np.linalg.eigh(fc.T @ fc)  # (n - 1) cov(f)
    else:
        _, sing, vt = np.linalg.svd(fc, full_matrices=False)
        lam, vecs = sing**2, vt.T
    if lam.size == 0 or lam.max() <= 0:
        raise ValueError(f"features are constant (shape {f.shape}); H-score is undefined.")
    keep = lam > rcond * lam.max()
    proj = between @ vecs[:, keep]  # (C, k)
    return float(np.sum(proj**2 / lam[keep]))


def ledoit_wolf_shrinkage(features: Any) -> float:
    r"""Ledoit-Wolf shrinkage intensity of the sample covariance towards a scaled identity.

    Ledoit & Wolf, "A well-conditioned estimator for large-dimensional covariance
    matrices", Journal of Multivariate Analysis 88(2), 2004 (Lemma 3.2 / Theorem 3.3).
    With the centred features :math:`x_k` (:math:`k = 1..n`, dimension :math:`p`), the
    sample covariance :math:`S = \frac1n \sum_k x_k x_k^\top` and
    :math:`\mu = \operatorname{tr}(S)/p`:

    .. math::

        d^2 = \tfrac1p \lVert S - \mu I \rVert_F^2, \qquad
        b^2 = \tfrac{1}{p\,n^2} \sum_k \lVert x_k x_k^\top - S \rVert_F^2
            = \tfrac{1}{p\,n^2} \Big(\sum_k \lVert x_k \rVert^4 - n \lVert S \rVert_F^2\Big),

    and :math:`\alpha = \min(b^2, d^2) / d^2 \in [0, 1]`; the shrunk covariance is
    :math:`(1 - \alpha) S + \alpha \mu I` (what ``sklearn.covariance.LedoitWolf`` returns).
    Few samples in many dimensions give :math:`\alpha` near 1, many samples near 0.

    Args:
        features: ``(n, p)`` finite features.

    Returns:
        :math:`\alpha` as a Python float (0 when :math:`S = \mu I` exactly).
    """
    f = _unit_scale(_features(features))  # alpha is scale-invariant; no overflow in x^4
    x = f - f.mean(axis=0)
    n, p = x.shape
    s = x.T @ x / n
    mu = np.trace(s) / p
    d2 = float(np.sum((s - mu * np.eye(p)) ** 2) / p)
    if d2 <= 0.0:
        return 0.0
    b2 = float((np.sum(np.sum(x**2, axis=1) ** 2) - n * np.sum(s**2)) / (p * n**2))
    return min(max(b2, 0.0), d2) / d2


def h_score_shrinkage(features: Any, target_labels: Any) -> float:
    r"""Shrinkage-regularised H-score :math:`\mathcal{H}_\alpha` of features for a classification target.

    Ibrahim, Ponomareva & Mazumder, "Newer is not always better: Rethinking
    transferability metrics, their peculiarities, stability and performance",
    ECML PKDD 2022 (arXiv:2110.06893). Used in notebook 02 ("model choice").

    .. math::

        \mathcal{H}_\alpha(f) = \operatorname{tr}\!\Big(\big((1-\alpha)\,S + \alpha\,\mu I\big)^{-1}
                                (1-\alpha)\,S_B\Big),

    with :math:`S` the sample covariance of the features, :math:`\mu = \operatorname{tr}(S)/D`,
    :math:`S_B = \frac1n \sum_c n_c (\mu_c - \bar f)(\mu_c - \bar f)^\top` the covariance of
    :math:`E[f \mid y]`, and :math:`\alpha` the Ledoit-Wolf intensity
    (:func:`ledoit_wolf_shrinkage`). Both covariances use ``1/n``.

    Why: the plain :func:`h_score` inverts :math:`S`. With :math:`n \le D` (e.g. 250
    images, 1280 MobileNetV2 features) the classes are always separable in the span of
    the samples and :math:`H` sits at its ceiling :math:`C - 1` for *every* model, so it
    cannot rank them. Shrinking :math:`S` towards :math:`\mu I` keeps the inverse
    well-conditioned; :math:`\mathcal{H}_\alpha` falls below :math:`C - 1` unless the
    class means really dominate the spread. At :math:`\alpha = 0` it equals
    :func:`h_score`. Unlike :func:`h_score` it is not invariant to an invertible linear
    map of the features (the target :math:`\mu I` is isotropic), only to rotation,
    uniform scaling and translation.

    Args:
        features: ``(n, D)`` features of the ``n`` target images. Finite values only.
        target_labels: ``(n,)`` integer labels, at least two classes.

    Returns:
        :math:`\mathcal{H}_\alpha` as a Python float, in :math:`[0, C - 1]`.
    """
    f, codes, n_classes = _features_and_labels(features, target_labels)
    f = _unit_scale(f)  # invariant to uniform scaling; keeps f^T f finite
    n, d = f.shape
    fc = f - f.mean(axis=0)
    s = fc.T @ fc / n
    mu = np.trace(s) / d
    if mu <= 0:
        raise ValueError(f"features are constant (shape {f.shape}); H-score is undefined.")
    alpha = ledoit_wolf_shrinkage(f)
    onehot = _one_hot(codes, n_classes)
    counts = onehot.sum(axis=0)
    between = (onehot.T @ fc) / np.sqrt(counts)[:, None]  # rows sqrt(n_c)(mu_c - mu)
    s_b = between.T @ between / n
    shrunk = (1.0 - alpha) * s + alpha * mu * np.eye(d)
    if alpha > 0:
        solved = np.linalg.solve(shrunk, s_b)
    else:  # no shrinkage: the plain H-score's pseudo-inverse (S may be singular)
        solved = np.linalg.pinv(shrunk, rcond=max(n, d) * _EPS, hermitian=True) @ s_b
    return float((1.0 - alpha) * np.trace(solved))


# --------------------------------------------------------------------------- ranking


_SCORE_FUNCS: dict[str, Callable[..., float]] = {
    "logme": logme,
    "h_score": h_score,
    "h_score_shrinkage": h_score_shrinkage,
    "leep": leep,
    "nce": nce,
}


def _score_input(name: str, candidate: Mapping[str, Any], score: str):
    key = SCORES[score]
    value = candidate.get(key)
    if value is None and score == "nce":
        value = candidate.get("source_probs")  # NCE takes the argmax of the probabilities
    return value


def rank_models(
    candidates: Mapping[str, Mapping[str, Any]],
    target_labels: Any,
    scores: Sequence[str] = ("logme", "h_score", "leep", "nce"),
) -> list[dict[str, Any]]:
    """Score several pre-trained models on one target task and rank them.

    Used in notebook 02 ("model choice") to pick a backbone before fine-tuning.

    Args:
        candidates: mapping ``model name -> inputs``, where inputs is a mapping with
            any of ``"features"`` (``(n, D)``, for ``"logme"`` and ``"h_score"``),
            ``"source_probs"`` (``(n, Z)`` softmax of the source head, for ``"leep"``;
            its argmax also serves ``"nce"``) and ``"source_labels"`` (``(n,)``,
            for ``"nce"``).
        target_labels: ``(n,)`` integer target labels shared by all candidates.
        scores: names from :data:`SCORES`; the first one orders the table.

    Returns:
        One dict per model, ``{"rank": int, "model": name, <score>: float or None,
        ...}``, sorted by the first score (highest first; models that lack its input
        come last, in the given order). A score whose input a candidate lacks is
        ``None``. Print it with :func:`format_table`.
    """
    if isinstance(scores, str):
        scores = (scores,)
    scores = tuple(scores)
    if not scores:
        raise ValueError("scores must name at least one score.")
    for score in scores:
        check_choice("score", score, SCORES)
    if not isinstance(candidates, Mapping) or not candidates:
        raise ValueError(
            "candidates must be a non-empty mapping {model name: {'features': ..., "
            f"'source_probs': ...}}, got {type(candidates).__name__}."
        )
    rows = []
    for name, inputs in candidates.items():
        if not isinstance(inputs, Mapping):
            raise ValueError(
                f"candidates[{name!r}] must be a mapping with keys such as 'features' or "
                f"'source_probs', got {type(inputs).__name__}."
            )
        row: dict[str, Any] = {"model": name}
        for score in scores:
            value = _score_input(name, inputs, score)
            row[score] = None if value is None else _SCORE_FUNCS[score](value, target_labels)
        rows.append(row)
    first = scores[0]
    rows.sort(key=lambda r: (r[first] is None, -(r[first] if r[first] is not None else 0.0)))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return [{"rank": r["rank"], "model": r["model"], **{s: r[s] for s in scores}} for r in rows]


def scores_over_draws(
    candidates: Mapping[str, Mapping[str, Any]],
    target_labels: Any,
    draws: Sequence[Any],
    scores: Sequence[str] = ("logme", "h_score", "leep", "nce"),
) -> dict[str, dict[str, float | None]]:
    """Each score of each candidate, averaged over few-shot draws of the labelled images.

    A score should see the labels the learner it predicts will have: with 5 labelled images
    per class for training, a score computed on 50 per class answers a different question
    (notebook 02). ``candidates`` and ``scores`` are as in :func:`rank_models`, each input
    holding ``N`` rows; ``target_labels`` is ``(N,)``; ``draws`` lists, per draw, the row
    indices of its labelled images. Returns ``{model: {score: mean over draws, or None
    when the model lacks the score's input}}``, models in the given order.
    """
    draws = list(draws)
    if not draws:
        raise ValueError("draws must list at least one draw of row indices, got [].")
    labels = np.asarray(to_numpy("target_labels", target_labels, ndim=1))
    per_draw: dict[str, dict[str, list[float]]] = {name: {} for name in candidates}
    for rows in draws:
        idx = np.asarray(rows, dtype=np.int64)
        if idx.ndim != 1 or idx.size == 0 or idx.min() < 0 or idx.max() >= len(labels):
            raise ValueError(
                f"each draw must be a non-empty 1-D array of row indices below {len(labels)}, "
                f"got {rows!r}."
            )
        sliced = {
            name: {k: np.asarray(to_numpy(k, v, ndim=None))[idx] for k, v in inputs.items()}
            for name, inputs in candidates.items()
        }
        for row in rank_models(sliced, labels[idx], scores):
            for score in scores:
                if row[score] is not None:
                    per_draw[row["model"]].setdefault(score, []).append(row[score])
    return {
        name: {s: float(np.mean(got[s])) if s in got else None for s in scores}
        for name, got in per_draw.items()
    }


def format_table(rows: Sequence[Mapping[str, Any]], *, precision: int = 4) -> str:
    """Format the output of :func:`rank_models` (any list of flat dicts) as aligned text.

    Floats get ``precision`` decimals, ``None`` shows as ``-``.
    """
    precision = check_int("precision", precision, minimum=0)
    if not rows:
        return "(no rows)"
    columns = list(rows[0].keys())
    for row in rows[1:]:
        columns += [k for k in row if k not in columns]

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, (float, np.floating)):
            return f"{value:.{precision}f}"
        return str(value)

    body = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(str(c)), *(len(r[j]) for r in body)) for j, c in enumerate(columns)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for r in body:
        lines.append(
            "  ".join(
                v.ljust(w) if j == 1 else v.rjust(w)
                for j, (v, w) in enumerate(zip(r, widths, strict=True))
            )
        )
    return "\n".join(lines)


def rank_correlation(scores: Any, accuracies: Any) -> dict[str, float]:
    """How well a transferability score predicts fine-tuned accuracy across models.

    Used in notebook 02 ("model choice") to *measure* a score's usefulness on the
    course's own tasks. Computed with ``scipy.stats``: Pearson r, Kendall tau-b,
    weighted Kendall tau (``scipy.stats.weightedtau``, hyperbolic weights that
    stress agreement among the top models; the statistic TLlib and the LogME paper
    report) and Spearman rho. All lie in ``[-1, 1]``; 1 means the score orders the
    models exactly as their accuracies do.

    Args:
        scores: one score per model, a sequence, or a mapping ``model -> score``.
        accuracies: fine-tuned accuracies, same length (or a mapping with the same
            keys as ``scores``).

    Returns:
        ``{"pearson": r, "kendall": tau, "weighted_kendall": tau_w, "spearman": rho}``.
    """
    if isinstance(scores, Mapping):
        if not isinstance(accuracies, Mapping) or set(scores) != set(accuracies):
            raise ValueError(
                "When scores is a mapping, accuracies must be a mapping with the same keys; "
                f"got scores keys {sorted(map(str, scores))} and accuracies "
                f"{sorted(map(str, accuracies)) if isinstance(accuracies, Mapping) else type(accuracies).__name__}."
            )
        keys = list(scores)
        scores = [scores[k] for k in keys]
        accuracies = [accuracies[k] for k in keys]
    x = np.asarray(to_numpy("scores", scores, ndim=1), dtype=np.float64)
    y = np.asarray(to_numpy("accuracies", accuracies, ndim=1), dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(
            f"scores and accuracies must have the same length, got shapes {x.shape} and {y.shape}."
        )
    if x.shape[0] < 3:
        raise ValueError(f"rank_correlation needs at least 3 models, got {x.shape[0]}.")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise ValueError("scores and accuracies must not be constant (correlation undefined).")
    return {
        "pearson": float(stats.pearsonr(x, y).statistic),
        "kendall": float(stats.kendalltau(x, y).statistic),
        "weighted_kendall": float(stats.weightedtau(x, y).statistic),
        "spearman": float(stats.spearmanr(x, y).statistic),
    }


def rank_correlation_interval(
    scores: Any,
    accuracies: Any,
    *,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """Kendall's tau between scores and mean accuracies, with a bootstrap interval.

    Used in notebook 02 ("model choice"): is a score's ranking of the candidate models
    distinguishable from no ranking at all? Each bootstrap replicate resamples the
    *models* with replacement (would the agreement hold for other candidates like
    these?) and, inside every drawn model, its *seeds* with replacement (the measured
    accuracies are noisy); tau-b (ties allowed) is computed between the drawn models'
    scores and their resampled mean accuracies. The interval is the percentile interval
    (Efron & Tibshirani, "An Introduction to the Bootstrap", 1993, ch. 13); replicates
    where every drawn score or accuracy is equal (tau undefined) are left out.

    Args:
        scores: one score per model, ``(M,)``, ``M >= 3``.
        accuracies: ``(M, S)`` accuracies of every model at each of ``S >= 1`` seeds.
        n_boot: bootstrap replicates (at least 100).
        confidence: level of the interval, in (0, 1).
        seed: seed of the local random generator (global state is not touched).

    Returns:
        ``{"tau": tau of the full data, "low", "high", "confidence", "n_models",
        "n_seeds", "n_boot" (replicates used), "verdict"}`` with verdict ``"positive"``
        or ``"negative"`` when the interval excludes 0, else ``"not distinguishable"``.
    """
    x = np.asarray(to_numpy("scores", scores, ndim=1), dtype=np.float64)
    acc = np.asarray(to_numpy("accuracies", accuracies, ndim=None), dtype=np.float64)
    if acc.ndim != 2:
        raise ValueError(f"accuracies must be 2-D (models, seeds), got shape {acc.shape}.")
    if acc.shape[0] != x.shape[0]:
        raise ValueError(
            f"scores and accuracies must have one row per model, got {x.shape[0]} scores "
            f"and accuracies of shape {acc.shape}."
        )
    if x.shape[0] < 3:
        raise ValueError(f"rank_correlation_interval needs at least 3 models, got {x.shape[0]}.")
    check_int("n_boot", n_boot, minimum=100)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    means = acc.mean(axis=1)
    if np.ptp(x) == 0 or np.ptp(means) == 0:
        raise ValueError("scores and mean accuracies must not be constant (tau undefined).")
    tau = float(stats.kendalltau(x, means).statistic)
    rng = np.random.default_rng(seed)
    m, s = int(acc.shape[0]), int(acc.shape[1])
    boot: list[float] = []
    for _ in range(n_boot):
        models = rng.integers(0, m, size=m)
        cols = rng.integers(0, s, size=(m, s))
        resampled = acc[models[:, None], cols].mean(axis=1)
        xs = x[models]
        if np.ptp(xs) == 0 or np.ptp(resampled) == 0:
            continue
        boot.append(stats.kendalltau(xs, resampled).statistic)
    taus = np.asarray(boot, dtype=np.float64)
    taus = taus[np.isfinite(taus)]
    low, high = np.quantile(taus, [(1 - confidence) / 2, (1 + confidence) / 2])
    verdict = "positive" if low > 0 else "negative" if high < 0 else "not distinguishable"
    return {
        "tau": tau,
        "low": float(low),
        "high": float(high),
        "confidence": confidence,
        "n_models": int(m),
        "n_seeds": int(s),
        "n_boot": int(taus.size),
        "verdict": verdict,
    }


def rank_agreement(
    score_table: Mapping[str, Mapping[str, float | None]],
    accuracies: Mapping[str, Sequence[float]],
    scores: Sequence[str],
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, Any] | None]:
    """:func:`rank_correlation_interval` of every score against one measured answer (notebook 02).

    ``score_table`` maps model -> {score: value or None} (:func:`scores_over_draws`),
    ``accuracies`` model -> per-seed accuracies (the same number of seeds for every model).
    A score is compared over the models that have it; it gets ``None`` where fewer than 3
    models have it or its values (or their mean accuracies) are all equal, so Kendall's tau is
    undefined (e.g. the plain H-score at its ceiling for every model).
    """
    missing = [m for m in score_table if m not in accuracies]
    if missing:
        raise ValueError(f"accuracies has no entry for models {missing}.")
    out: dict[str, dict[str, Any] | None] = {}
    for score in scores:
        have = [m for m in score_table if score_table[m].get(score) is not None]
        x = np.array([score_table[m][score] for m in have], dtype=np.float64)
        acc = np.array([list(accuracies[m]) for m in have], dtype=np.float64)
        if len(have) < 3 or np.ptp(x) <= 1e-9 * max(1.0, float(np.abs(x).max())):
            out[score] = None
            continue
        if np.ptp(acc.mean(axis=1)) == 0:
            out[score] = None
            continue
        out[score] = rank_correlation_interval(x, acc, n_boot=n_boot, seed=seed)
    return out
