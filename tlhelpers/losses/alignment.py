"""Domain alignment losses (cross-domain transfer): MMD, CORAL and DANN.

These compare a *source* batch with a *target* batch of features, so they are used
in a domain-adaptation loop that draws one batch from each domain, not through
:class:`~tlhelpers.losses.TransferObjective` (which sees a single batch).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlhelpers.losses._utils import RENAMED_METHODS, check_2d, check_same_dim
from tlhelpers.losses._utils import check_finite as _check_finite
from tlhelpers.runtime import seeded
from tlhelpers.validation import check_choice, check_int, check_positive

__all__ = [
    "MMD_ESTIMATORS",
    "mmd2",
    "median_bandwidth",
    "MMDLoss",
    "coral",
    "CORALLoss",
    "GradientReversal",
    "grad_reverse",
    "dann_lambda",
    "domain_adversarial_loss",
    "DomainAdversarialLoss",
    "ADAPTATION_METHODS",
    "DomainAdaptationObjective",
]

#: Estimators accepted by :func:`mmd2`.
MMD_ESTIMATORS: tuple[str, ...] = ("biased", "unbiased", "linear")


# --------------------------------------------------------------------------- MMD


def _sq_dists(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise squared Euclidean distances via one matrix product, clamped at 0."""
    d = torch.addmm(a.pow(2).sum(1)[:, None] + b.pow(2).sum(1)[None, :], a, b.T, alpha=-2.0)
    return d.clamp_min_(0.0)  # rounding can make |a-b|^2 slightly negative


def _median_from_blocks(dxx: Tensor, dyy: Tensor, dxy: Tensor) -> Tensor:
    """Lower median of the pooled sample's squared distances over distinct pairs (i < j).

    The distinct pairs of ``[x; y]`` are the upper triangles of the x-x and y-y blocks
    plus the whole x-y block, so the three blocks of :func:`mmd2` are reused.
    """
    with torch.no_grad():
        n, m = dxx.shape[0], dyy.shape[0]
        iu_x = torch.triu_indices(n, n, offset=1, device=dxx.device)
        iu_y = torch.triu_indices(m, m, offset=1, device=dyy.device)
        pairs = torch.cat([dxx[iu_x[0], iu_x[1]], dyy[iu_y[0], iu_y[1]], dxy.reshape(-1)]).detach()
        med = pairs.median()
        return med.clamp_min(torch.finfo(med.dtype).tiny)


def median_bandwidth(x: Tensor, y: Tensor) -> Tensor:
    r"""Median heuristic bandwidth ``sigma`` for the Gaussian kernel of :func:`mmd2`.

    ``sigma^2`` = median of the squared Euclidean distances ``||z_i - z_j||^2`` over the
    distinct pairs ``i < j`` of the pooled sample ``z = [x; y]`` (Gretton et al. 2012 use
    the median distance, i.e. ``sigma`` = median distance). For an even number of pairs the
    *lower* of the two middle values is used (``torch.median``). Computed without gradient:
    the bandwidth is a constant of the loss. Returns a 0-D tensor (``sigma``, not
    ``sigma^2``); it is clamped to a tiny positive value when all points coincide.

    Cost is O((n+m)^2 d); pass explicit bandwidths to :func:`mmd2` to avoid it.
    """
    x = check_2d("x", x)
    y = check_2d("y", y)
    check_same_dim("x", x, "y", y)
    if x.shape[0] + y.shape[0] < 2:
        raise ValueError("median_bandwidth needs at least 2 pooled samples.")
    with torch.no_grad():
        x, y = x.detach(), y.detach()
        med = _median_from_blocks(_sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y))
        return med.sqrt()


def _check_bandwidths(x: Tensor, bandwidths: float | Sequence[float] | Tensor) -> Tensor:
    sig = torch.as_tensor(bandwidths, dtype=x.dtype, device=x.device).reshape(-1)
    if sig.numel() == 0 or not bool((sig > 0).all()):
        raise ValueError(f"bandwidths must be positive numbers, got {bandwidths!r}.")
    return sig


def _kernel(sq: Tensor, inv_two_sigma2: Tensor) -> Tensor:
    """Average of Gaussian kernels exp(-d^2 / (2 sigma^2)) over the bandwidths."""
    # Loop over the handful of bandwidths only (not over samples).
    out = torch.exp(sq * -inv_two_sigma2[0])
    for c in inv_two_sigma2[1:]:
        out = out + torch.exp(sq * -c)
    return out / inv_two_sigma2.numel() if inv_two_sigma2.numel() > 1 else out


def mmd2(
    x: Tensor,
    y: Tensor,
    bandwidths: float | Sequence[float] | Tensor | None = None,
    estimator: str = "biased",
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Squared maximum mean discrepancy between two samples, Gaussian kernel.

    .. math::
        k(a, b) = \frac{1}{S}\sum_{s=1}^{S} \exp\!\Big(-\frac{\|a-b\|^2}{2\sigma_s^2}\Big)

    Gretton, Borgwardt, Rasch, Schoelkopf, Smola, "A Kernel Two-Sample Test", JMLR 2012.
    Estimators of :math:`\mathrm{MMD}^2 = E k(x,x') + E k(y,y') - 2 E k(x,y)`:

    - ``"biased"`` (V-statistic, eq. 5): :math:`\frac{1}{n^2}\sum_{ij} k(x_i,x_j) +
      \frac{1}{m^2}\sum_{ij} k(y_i,y_j) - \frac{2}{nm}\sum_{ij} k(x_i,y_j)`; always >= 0
      (up to rounding) and 0 for identical samples.
    - ``"unbiased"`` (U-statistic, eq. 3): same but the within-sample sums skip
      ``i == j`` and divide by ``n(n-1)`` / ``m(m-1)`` (the cross term keeps all pairs).
      Can be negative: expected, not a bug.
    - ``"linear"`` (linear-time, Lemma 14): requires ``n == m``; with pairs
      ``(x_{2i-1}, x_{2i})``, ``(y_{2i-1}, y_{2i})``, averages
      :math:`h_i = k(x_{2i-1},x_{2i}) + k(y_{2i-1},y_{2i}) - k(x_{2i-1},y_{2i}) - k(x_{2i},y_{2i-1})`
      over the ``n // 2`` pairs (a last odd sample is dropped). Can be negative.

    Kernel convention: several bandwidths are *averaged* (as in pytorch-adapt), not summed
    (TLlib / DAN), so a single kernel and a family have the same scale. ``bandwidths=None``
    uses one kernel with :func:`median_bandwidth` (sigma^2 = median pairwise squared distance
    of the pooled sample, computed without gradient).

    Cost: O((n + m)^2 d) time and O((n + m)^2) memory for "biased"/"unbiased" (vectorised
    Gram blocks); O(n d) for "linear" with explicit ``bandwidths`` (the median heuristic
    is itself quadratic).

    Args:
        x: source sample, shape (n, d).
        y: target sample, shape (m, d).
        bandwidths: ``sigma`` value(s) (not ``sigma^2``), or ``None`` for the median heuristic.
        estimator: "biased", "unbiased" or "linear".
        check_finite: refuse NaN/inf in ``x`` or ``y`` with a ``ValueError`` naming the
            argument. Default True: NaN features would otherwise give a silent NaN
            discrepancy. The check costs a reduction and a device sync per call; pass False
            inside a training loop that already stops on a non-finite loss (``fit`` does).

    Returns:
        0-D tensor, differentiable with respect to ``x`` and ``y``.
    """
    check_choice("estimator", estimator, MMD_ESTIMATORS)
    x = check_2d("x", x)
    y = check_2d("y", y)
    check_same_dim("x", x, "y", y)
    if check_finite:
        _check_finite("x", x)
        _check_finite("y", y)
    n, m = x.shape[0], y.shape[0]
    if estimator == "unbiased" and (n < 2 or m < 2):
        raise ValueError(
            f"the unbiased estimator needs >= 2 samples in each of x and y, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}."
        )
    if estimator == "linear" and (n != m or n < 2):
        raise ValueError(
            f"the linear estimator needs x and y with the same number (>= 2) of samples, "
            f"got shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if estimator == "linear":
        half = n // 2
        x1, x2 = x[0 : 2 * half : 2], x[1 : 2 * half : 2]
        y1, y2 = y[0 : 2 * half : 2], y[1 : 2 * half : 2]
        if bandwidths is None:
            sig2 = median_bandwidth(x, y).pow(2).reshape(1)
        else:
            sig2 = _check_bandwidths(x, bandwidths).pow(2)
        c = 1.0 / (2.0 * sig2)

        def k(a: Tensor, b: Tensor) -> Tensor:
            return _kernel((a - b).pow(2).sum(1), c)

        return (k(x1, x2) + k(y1, y2) - k(x1, y2) - k(x2, y1)).mean()

    # Three Gram blocks (x-x, y-y, x-y): a quarter fewer flops than the pooled matrix.
    dxx, dyy, dxy = _sq_dists(x, x), _sq_dists(y, y), _sq_dists(x, y)
    if bandwidths is None:
        sig2 = _median_from_blocks(dxx, dyy, dxy).reshape(1)
    else:
        sig2 = _check_bandwidths(x, bandwidths).pow(2)
    c = 1.0 / (2.0 * sig2)
    kxx, kyy, kxy = _kernel(dxx, c), _kernel(dyy, c), _kernel(dxy, c)
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return xx + yy - 2.0 * kxy.mean()


class MMDLoss(nn.Module):
    """Module form of :func:`mmd2` (Gretton et al., JMLR 2012); see it for the conventions.

    Args:
        bandwidths: Gaussian ``sigma`` value(s), averaged; ``None`` = median heuristic.
        estimator: "biased" (default), "unbiased" or "linear".

    Shape:
        - Input: source (n, d), target (m, d) (``n == m`` for "linear").
        - Output: scalar squared MMD.
    """

    def __init__(
        self,
        bandwidths: float | Sequence[float] | None = None,
        estimator: str = "biased",
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.bandwidths = bandwidths
        self.estimator = check_choice("estimator", estimator, MMD_ESTIMATORS)
        self.check_finite = check_finite

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return mmd2(source, target, self.bandwidths, self.estimator, check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return f"bandwidths={self.bandwidths}, estimator={self.estimator!r}"


# --------------------------------------------------------------------------- CORAL


def coral(source: Tensor, target: Tensor, *, check_finite: bool = True) -> Tensor:
    r"""CORAL loss: distance between the feature covariances of two domains.

    .. math::
        \ell_{CORAL} = \frac{1}{4d^2}\,\| C_S - C_T \|_F^2,\qquad
        C = \frac{1}{n-1}\,(X - \bar X)^\top (X - \bar X)

    Sun & Saenko, "Deep CORAL: Correlation Alignment for Deep Domain Adaptation",
    ECCV Workshops (TASK-CV) 2016, eq. (1)-(3). Follows the paper: ``1/(n-1)``
    covariances and the ``1/(4 d^2)`` factor. TLlib's ``CorrelationAlignmentLoss`` differs
    (no 1/4 factor, an extra mean-difference term), so values are not comparable.
    Invariant to a constant shift of either domain.

    Args:
        source: (n_s, d) features, n_s >= 2.
        target: (n_t, d) features, n_t >= 2 (n_t may differ from n_s).
        check_finite: refuse NaN/inf inputs (default True, see :func:`mmd2` for why).

    Returns:
        0-D tensor.
    """
    source = check_2d("source", source, min_rows=2)
    target = check_2d("target", target, min_rows=2)
    check_same_dim("source", source, "target", target)
    if check_finite:
        _check_finite("source", source)
        _check_finite("target", target)
    d = source.shape[1]
    cs = torch.cov(source.T, correction=1).reshape(d, d)
    ct = torch.cov(target.T, correction=1).reshape(d, d)
    return (cs - ct).pow(2).sum() / (4.0 * d * d)


class CORALLoss(nn.Module):
    """Module form of :func:`coral` (Sun & Saenko, ECCV-W 2016, paper convention).

    Shape:
        - Input: source (n_s, d), target (n_t, d), each with at least 2 samples.
        - Output: scalar.
    """

    def __init__(self, check_finite: bool = True) -> None:
        super().__init__()
        self.check_finite = check_finite

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        return coral(source, target, check_finite=self.check_finite)


# --------------------------------------------------------------------------- DANN


class _GradientReversalFunction(torch.autograd.Function):
    """Identity forward, ``-lambd * grad`` backward."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, lambd: float) -> Tensor:
        ctx.lambd = lambd
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple[Tensor, None]:
        return -ctx.lambd * grad_output, None


def grad_reverse(x: Tensor, lambd: float = 1.0) -> Tensor:
    r"""Gradient reversal: returns ``x`` unchanged, multiplies its gradient by ``-lambd``.

    Ganin, Ustinova, Ajakan, Germain, Larochelle, Laviolette, Marchand, Lempitsky,
    "Domain-Adversarial Training of Neural Networks", JMLR 2016 (the GRL, section 5).
    Forward :math:`R(x) = x`; backward :math:`\partial R / \partial x = -\lambda I`.
    """
    check_positive("lambd", lambd, strict=False)
    return _GradientReversalFunction.apply(x, float(lambd))


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; ``lambd`` is a plain attribute you may update
    every step, e.g. ``grl.lambd = dann_lambda(step / total_steps)``.

    Shape: any input; output has the same shape (identity forward).
    """

    def __init__(self, lambd: float = 1.0) -> None:
        super().__init__()
        self.lambd = check_positive("lambd", lambd, strict=False)

    def forward(self, x: Tensor) -> Tensor:
        return grad_reverse(x, self.lambd)

    def extra_repr(self) -> str:
        return f"lambd={self.lambd}"


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    r"""DANN schedule for the reversal weight (Ganin et al., JMLR 2016, section 5.2.2).

    .. math:: \lambda_p = \frac{2}{1 + \exp(-\gamma p)} - 1

    ``progress`` p (training progress) is clipped to [0, 1], so the value goes from 0 at
    the start to ``2/(1+e^-gamma) - 1`` (~0.99991 for gamma=10) at the end. TLlib's
    ``WarmStartGradientReverseLayer`` does not clip and uses a gentler default.
    """
    check_positive("gamma", gamma)
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def domain_adversarial_loss(source_logits: Tensor, target_logits: Tensor) -> Tensor:
    r"""DANN's domain loss on domain-classifier logits; see :class:`DomainAdversarialLoss`.

    .. math:: \ell = \tfrac12\big(\overline{\mathrm{BCE}}(z_S, 0) + \overline{\mathrm{BCE}}(z_T, 1)\big)

    Shape:
        - Input: source_logits (n_S,), target_logits (n_T,): logits, no sigmoid.
        - Output: scalar.
    """
    for name, z in (("source_logits", source_logits), ("target_logits", target_logits)):
        if not isinstance(z, Tensor) or z.ndim != 1 or z.numel() == 0:
            shape = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(f"{name} must be a non-empty 1-D tensor of logits, got {shape}.")
    bce_s = F.binary_cross_entropy_with_logits(source_logits, torch.zeros_like(source_logits))
    bce_t = F.binary_cross_entropy_with_logits(target_logits, torch.ones_like(target_logits))
    return 0.5 * (bce_s + bce_t)


class DomainAdversarialLoss(nn.Module):
    r"""DANN domain loss: domain classifier on gradient-reversed features.

    .. math::
        \ell = \tfrac12\Big(\tfrac{1}{n_S}\sum_{i\in S} \mathrm{BCE}(D(R(f_i)), 0)
        + \tfrac{1}{n_T}\sum_{j\in T} \mathrm{BCE}(D(R(f_j)), 1)\Big)

    Ganin et al., "Domain-Adversarial Training of Neural Networks", JMLR 2016. Domain
    labels follow the paper (source 0, target 1). Minimising this one loss trains the
    domain classifier ``D`` to separate the domains while the reversal ``R`` makes the
    feature extractor confuse them. Conventions: each domain's mean BCE counts half
    (as in TLlib), which is the paper's sum of the two means divided by 2, so chance level
    is ``ln 2``; ``domain_classifier`` must output *logits* (no final sigmoid), shape (N, 1)
    or (N,), as ``binary_cross_entropy_with_logits`` is used for stability.

    Args:
        domain_classifier: module mapping (N, D) features to (N, 1) or (N,) logits.
        lambd: reversal weight; update ``loss.lambd = dann_lambda(p)`` during training.

    Shape:
        - Input: source features (n_S, D), target features (n_T, D).
        - Output: scalar. After each call ``domain_accuracy`` holds the classifier's
          accuracy on the batch (a float, for logging).
    """

    def __init__(self, domain_classifier: nn.Module, lambd: float = 1.0) -> None:
        super().__init__()
        self.domain_classifier = domain_classifier
        self.grl = GradientReversal(lambd)
        self.domain_accuracy: float = float("nan")

    @property
    def lambd(self) -> float:
        return self.grl.lambd

    @lambd.setter
    def lambd(self, value: float) -> None:
        self.grl.lambd = check_positive("lambd", value, strict=False)

    def forward(self, source_features: Tensor, target_features: Tensor) -> Tensor:
        source_features = check_2d("source_features", source_features)
        target_features = check_2d("target_features", target_features)
        check_same_dim("source_features", source_features, "target_features", target_features)
        _check_finite("source_features", source_features)
        _check_finite("target_features", target_features)
        n_s = source_features.shape[0]
        feats = self.grl(torch.cat([source_features, target_features]))
        logits = self.domain_classifier(feats)
        if logits.ndim == 2 and logits.shape[1] == 1:
            logits = logits.squeeze(1)
        if logits.shape != (feats.shape[0],):
            raise ValueError(
                f"domain_classifier must return shape (N, 1) or (N,), got "
                f"{tuple(logits.shape)} for N={feats.shape[0]}."
            )
        with torch.no_grad():
            correct = torch.cat([logits[:n_s] <= 0, logits[n_s:] > 0])
            self.domain_accuracy = float(correct.float().mean())
        return domain_adversarial_loss(logits[:n_s], logits[n_s:])


# --------------------------------------------------------------------------- the adaptation step

#: Methods of :class:`DomainAdaptationObjective` (AdaBN needs no training: ``training.adabn``).
ADAPTATION_METHODS: tuple[str, ...] = ("none", "mmd", "coral", "dann")


class DomainAdaptationObjective(nn.Module):
    r"""One unsupervised domain-adaptation step: source cross-entropy + an alignment term.

    .. math::
        \mathcal{L} = \frac{1}{n_S}\sum_{i\in S} \mathrm{CE}(h(f(x_i)), y_i)
        + \lambda\, \Omega\big(f(X_S), f(X_T)\big)

    with ``f = model.body`` (features), ``h = model.head`` and ``Omega``:

    - ``"mmd"``: :func:`mmd2` (biased, one Gaussian kernel, median bandwidth) as in DAN
      (Long et al., ICML 2015, on one layer and one kernel here);
    - ``"coral"``: :func:`coral` (Sun & Saenko 2016, paper convention);
    - ``"dann"``: :class:`DomainAdversarialLoss` with a small domain classifier
      (``D -> hidden -> 1``, ReLU) on gradient-reversed features (Ganin et al., JMLR 2016):
      the term enters with weight 1 (the classifier gets its full gradient) and the
      reversal coefficient is :math:`\lambda \cdot \lambda_p`, Ganin's schedule
      :func:`dann_lambda` of the progress :math:`p` = step / ``steps``;
    - ``"none"``: no added term, and the target batch is not forwarded at all (the
      *source-only* model of the domain-adaptation literature).

    A callable ``(model, x, y) -> dict`` for :func:`tlhelpers.training.fit`: ``(x, y)`` is the
    labelled source batch; every call draws an unlabelled batch of ``batch_size`` target
    images itself (a local generator seeded by ``seed``, a fresh permutation per pass).
    Source and target go through the body in **one** forward pass (as TLlib does), so
    BatchNorm in train mode normalises with the statistics of the mixed batch, and its running
    estimates see both domains: part of what the aligned models gain at test time on the
    target comes from that, which method ``"none"`` does not get (compare with AdaBN).
    Call :meth:`on_step` after every optimiser step (``fit(on_step=objective.on_step)``) to
    advance the DANN schedule. The DANN domain classifier is a submodule: give its
    parameters to the optimiser (``tlhelpers.adaptation.adapt`` does).

    Args:
        method: one of :data:`ADAPTATION_METHODS`.
        target: unlabelled target images ``(N_T, C, H, W)`` (labels are never read).
        strength: :math:`\lambda` >= 0 (0 turns the term off but keeps the joint pass).
        steps: the planned number of optimiser steps (the schedule's :math:`p = 1` end).
        batch_size: target images per step.
        num_features: the body's feature dimension ``D`` (needed for ``"dann"``).
        seed: seeds the target batches and the domain classifier's initialisation.
        gamma: the schedule's :math:`\gamma` (10 in the paper).
        hidden: the domain classifier's hidden width.

    Returns (per call) ``{"total", "task", <term>}`` with ``<term>`` = ``"mmd"``,
    ``"coral"`` or ``"domain"`` (DANN's BCE, ``ln 2`` at chance) and, for DANN,
    ``"domain_accuracy"`` and ``"reversal"`` (the current coefficient), all logged by ``fit``.
    """

    def __init__(
        self,
        method: str,
        target: Tensor,
        strength: float = 1.0,
        *,
        steps: int,
        batch_size: int = 64,
        num_features: int | None = None,
        seed: int = 0,
        gamma: float = 10.0,
        hidden: int = 64,
    ) -> None:
        super().__init__()
        self.method = check_choice("method", method, ADAPTATION_METHODS, renamed=RENAMED_METHODS)
        if not isinstance(target, Tensor) or target.ndim < 2 or len(target) < 2:
            shape = tuple(target.shape) if isinstance(target, Tensor) else type(target).__name__
            raise ValueError(f"target must be a tensor of at least 2 images, got {shape}.")
        self.target = target
        self.strength = check_positive("strength", strength, strict=False)
        self.steps = check_int("steps", steps, minimum=1)
        self.batch_size = min(check_int("batch_size", batch_size, minimum=2), len(target))
        self.gamma = check_positive("gamma", gamma)
        check_int("seed", seed, minimum=0)
        self.generator = torch.Generator().manual_seed(seed)
        self._order = torch.empty(0, dtype=torch.long)
        self.step = 0
        self.domain: DomainAdversarialLoss | None = None
        if method == "dann":
            if num_features is None:
                raise ValueError("method 'dann' needs num_features (the body's feature size).")
            check_int("num_features", num_features, minimum=1)
            check_int("hidden", hidden, minimum=1)
            with seeded(seed):
                clf = nn.Sequential(
                    nn.Linear(num_features, hidden), nn.ReLU(), nn.Linear(hidden, 1)
                )
            self.domain = DomainAdversarialLoss(clf, lambd=0.0)

    def on_step(self, step: int) -> None:
        """Advance the schedule: ``fit``'s ``on_step`` hook (``step`` is 1-based)."""
        self.step = int(step)

    @property
    def reversal(self) -> float:
        r"""DANN's current reversal coefficient :math:`\lambda \cdot \lambda_p`."""
        return self.strength * dann_lambda(self.step / self.steps, self.gamma)

    def target_batch(self) -> Tensor:
        """The next ``batch_size`` target images (without replacement within a pass)."""
        if len(self._order) < self.batch_size:
            perm = torch.randperm(len(self.target), generator=self.generator)
            self._order = torch.cat([self._order, perm])
        idx, self._order = self._order[: self.batch_size], self._order[self.batch_size :]
        return self.target[idx]

    def forward(self, model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        body, head = getattr(model, "body", None), getattr(model, "head", None)
        if not isinstance(body, nn.Module) or not isinstance(head, nn.Module):
            raise ValueError(
                f"model must have .body and .head (a tlhelpers.models.SplitModel), got "
                f"{type(model).__name__}."
            )
        if self.method == "none":
            task = F.cross_entropy(head(body(x)), y)
            return {"total": task, "task": task}
        xt = self.target_batch().to(device=x.device, dtype=x.dtype)
        feats = body(torch.cat([x, xt]))
        fs, ft = feats[: len(x)], feats[len(x) :]
        task = F.cross_entropy(head(fs), y)
        if self.method == "mmd":
            term = mmd2(fs, ft, check_finite=False)
            return {"total": task + self.strength * term, "task": task, "mmd": term}
        if self.method == "coral":
            term = coral(fs, ft, check_finite=False)
            return {"total": task + self.strength * term, "task": task, "coral": term}
        assert self.domain is not None
        self.domain.lambd = self.reversal
        term = self.domain(fs, ft)
        return {
            "total": task + term,
            "task": task,
            "domain": term,
            "domain_accuracy": torch.tensor(self.domain.domain_accuracy),
            "reversal": torch.tensor(self.domain.lambd),
        }
