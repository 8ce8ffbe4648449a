"""Looking at what transfer did: weight-space paths, domain gap, forgetting, latency.

- :func:`interpolate_state`, :func:`loss_along_path` (notebook 03): the target loss on the
  straight line between the source and the fine-tuned weights.
- :func:`old_task_accuracy` (notebook 04): how much of the source task is forgotten.
- :func:`domain_gap` (notebook 01): MMD and CORAL between two feature samples.
- :func:`proxy_a_distance` (notebook 09): how well a linear classifier tells two domains apart.
- :func:`reverse_validation` (notebook 09): a score for choosing adaptation settings without
  target labels.
- :func:`measure_latency` (notebook 02): the inference cost of a candidate model.

The distance :math:`\\lVert w - w^0 \\rVert` itself is :func:`tlhelpers.models.weight_distance`
(training logs it, so it lives below training).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .data import Data
from .features import linear_probe
from .losses import coral, mmd2
from .models import SplitModel, eval_mode
from .runtime import resolve_device
from .training import evaluate
from .validation import check_int, check_positive, to_numpy

__all__ = [
    "choosing_with_target_labels",
    "label_free_scores",
    "domain_gap",
    "interpolate_state",
    "loss_along_path",
    "measure_latency",
    "old_task_accuracy",
    "proxy_a_distance",
    "reverse_validation",
]

# ------------------------------------------------------------------ interpolation


def _selected(key: str, prefixes: Sequence[str] | None) -> bool:
    return prefixes is None or any(key.startswith(p) for p in prefixes)


def interpolate_state(
    source_state: Mapping[str, Tensor],
    target_state: Mapping[str, Tensor],
    t: float,
    prefixes: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    r"""The state :math:`(1-t)\,w^0 + t\,w^1` between two state dicts.

    Interpolated: floating-point entries present in both with the same shape and (if
    ``prefixes`` is given) a name starting with one of them. Everything else (integer
    buffers such as ``num_batches_tracked``, the new head when ``prefixes=("body.",)``)
    is taken from ``target_state``. ``t`` outside [0, 1] extrapolates. A pair of states
    with no entry in common raises ``ValueError`` (the "path" would be a single point,
    e.g. a source ``state_dict()`` without the ``body.0.`` prefix of ``replace_head``).
    """
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    out: dict[str, Tensor] = {}
    n_mixed = 0
    for key, w1 in target_state.items():
        w0 = source_state.get(key)
        if (
            w0 is not None
            and w1.is_floating_point()
            and w0.shape == w1.shape
            and _selected(key, prefixes)
        ):
            out[key] = torch.lerp(w0.to(w1.dtype), w1, float(t))
            n_mixed += 1
        else:
            out[key] = w1.detach().clone()
    if n_mixed == 0:
        raise ValueError(
            f"interpolate_state: no parameter is shared by source_state and target_state "
            f"(same name and shape, prefixes={prefixes}); source names: "
            f"{list(source_state)[:3]}..., target names: {list(target_state)[:3]}...."
        )
    return out


def loss_along_path(
    model: nn.Module,
    source_state: Mapping[str, Tensor],
    target_state: Mapping[str, Tensor],
    data: Data,
    ts: Sequence[float],
    prefixes: Sequence[str] | None = ("body.",),
) -> dict[str, list[float]]:
    """Cross-entropy and accuracy of ``model`` at each ``t`` of :func:`interpolate_state`.

    By default only the body is interpolated and the fine-tuned head is kept fixed: the
    source head belongs to another task (its class 0 is not the target's class 0), so
    interpolating it would mix two unrelated classifiers. ``model``'s own weights are
    restored afterwards. Returns ``{"t": [...], "loss": [...], "accuracy": [...]}``.
    """
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result: dict[str, list[float]] = {"t": [], "loss": [], "accuracy": []}
    try:
        for t in ts:
            model.load_state_dict(interpolate_state(source_state, target_state, t, prefixes))
            ev = evaluate(model, data)
            result["t"].append(float(t))
            result["loss"].append(ev["loss"])
            result["accuracy"].append(ev["accuracy"])
    finally:
        model.load_state_dict(saved)
    return result


# ------------------------------------------------------------------ forgetting


def old_task_accuracy(body: nn.Module, old_head: nn.Module, data: Data) -> float:
    """Accuracy on the *source* task of ``old_head(body(x))``: what fine-tuning the body kept."""
    return evaluate(SplitModel(body, old_head), data)["accuracy"]


# ------------------------------------------------------------------ domain gap


def domain_gap(
    a: torch.Tensor,
    b: torch.Tensor,
    n: int | None = None,
    seed: int = 0,
    *,
    bandwidth: float | None = None,
) -> dict[str, float]:
    """``{"mmd2", "coral"}`` between feature samples ``a (n_a, D)`` and ``b (n_b, D)``.

    MMD^2 (biased estimator, one Gaussian kernel) and CORAL (Sun & Saenko, paper
    convention) from :mod:`tlhelpers.losses`. With ``n`` each sample is first
    subsampled (a local generator seeded by ``seed``) to at most ``n`` rows, so gaps
    from samples of different sizes are comparable. ``bandwidth`` is the kernel's
    ``sigma``; ``None`` uses the median heuristic *of this pair*, which puts every pair
    on its own scale: to compare MMD^2 values in one table, pass one fixed
    ``bandwidth`` (e.g. the median heuristic on pooled reference data,
    :func:`tlhelpers.losses.median_bandwidth`; notebook 01).
    """
    if n is not None:
        check_int("n", n, minimum=2)
    if bandwidth is not None:
        check_positive("bandwidth", bandwidth)
    rng = np.random.default_rng(seed)

    def sub(x):
        x = torch.as_tensor(x, dtype=torch.float64)
        if n is not None and len(x) > n:
            x = x[torch.as_tensor(np.sort(rng.choice(len(x), n, replace=False)))]
        return x

    a, b = sub(a), sub(b)
    return {"mmd2": float(mmd2(a, b, bandwidths=bandwidth)), "coral": float(coral(a, b))}


def proxy_a_distance(
    source: torch.Tensor | np.ndarray,
    target: torch.Tensor | np.ndarray,
    *,
    test_fraction: float = 0.5,
    C: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    r"""Proxy A-distance between two feature samples: ``{"pad", "error", "n_test"}``.

    .. math:: \hat d_A = 2\,(1 - 2\,\varepsilon)

    Ben-David, Blitzer, Crammer, Pereira, "Analysis of Representations for Domain
    Adaptation", NIPS 2007 (and Ben-David et al., Machine Learning 2010); used as in
    Ganin et al., JMLR 2016, section 6.1.4: :math:`\varepsilon` is the held-out error of a
    linear classifier trained to tell source (0) from target (1) features. 2 = perfectly
    separable domains, 0 = indistinguishable (chance error 0.5); a value below 0 is
    chance-level noise and is returned as measured, not clipped.

    Protocol: the larger sample is subsampled to the size of the smaller (so chance is
    0.5); each domain is split at random (``seed``) into a training part and a held-out
    ``test_fraction``; features are standardised with the training part's mean and
    standard deviation; the classifier is scikit-learn's L2-regularised logistic
    regression with inverse strength ``C`` (Ganin et al. use a linear SVM; any linear
    classifier gives a lower bound on the domains' separability by linear functions).
    """
    xs = to_numpy("source", source, ndim=2).astype(np.float64)
    xt = to_numpy("target", target, ndim=2).astype(np.float64)
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(
            f"source and target must have the same feature dimension, got {xs.shape[1]} and "
            f"{xt.shape[1]}."
        )
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    check_positive("C", C)
    check_int("seed", seed, minimum=0)
    n = min(len(xs), len(xt))
    n_test = int(round(test_fraction * n))
    if n_test < 1 or n - n_test < 1:
        raise ValueError(
            f"each domain needs at least one training and one held-out row, got {len(xs)} "
            f"source and {len(xt)} target rows with test_fraction={test_fraction}."
        )
    rng = np.random.default_rng(seed)
    ps, pt = rng.permutation(len(xs))[:n], rng.permutation(len(xt))[:n]
    train_x = np.concatenate([xs[ps[n_test:]], xt[pt[n_test:]]])
    test_x = np.concatenate([xs[ps[:n_test]], xt[pt[:n_test]]])
    train_y = np.r_[np.zeros(n - n_test), np.ones(n - n_test)]
    test_y = np.r_[np.zeros(n_test), np.ones(n_test)]
    # the kit's probe, standardised (StandardScaler leaves a constant feature at scale 1)
    error = 1.0 - linear_probe(
        train_x, train_y, test_x, test_y, C=C, max_iter=1000, standardize=True
    )
    return {"pad": 2.0 * (1.0 - 2.0 * error), "error": error, "n_test": 2 * n_test}


def reverse_validation(
    source_features: torch.Tensor | np.ndarray,
    source_labels: torch.Tensor | np.ndarray,
    target_features: torch.Tensor | np.ndarray,
    target_pseudo_labels: torch.Tensor | np.ndarray,
    *,
    C: float = 1.0,
) -> float:
    """Reverse validation: accuracy on labelled *source* data of a classifier fitted to the
    adapted model's *pseudo-labels* on the target (no target label is read).

    Zhong, Fan, Yang, Verscheure, Ren, "Cross Validation Framework to Choose amongst Models
    and Datasets for Transfer Learning", ECML PKDD 2010; used by Ganin et al., JMLR 2016
    (section 5.1.2) to choose DANN's hyper-parameters. The idea: if the model labels the
    target well, a classifier learned from those labels transfers *back* to the source.
    This is the cheap variant on frozen features: scikit-learn's logistic regression
    (inverse strength ``C``) on standardised ``target_features`` with
    ``target_pseudo_labels`` (the adapted model's argmax), scored on a held-out source
    validation set (``source_features``, ``source_labels``) in the same feature space.
    Source first, then target, as in :func:`proxy_a_distance` and the alignment losses.
    When the pseudo-labels hold a single class, the reverse classifier is that constant
    (its score is that class's share of the source labels). Higher is better.
    """
    ft = to_numpy("target_features", target_features, ndim=2).astype(np.float64)
    fs = to_numpy("source_features", source_features, ndim=2).astype(np.float64)
    pt = to_numpy("target_pseudo_labels", target_pseudo_labels, ndim=1)
    ys = to_numpy("source_labels", source_labels, ndim=1)
    if len(pt) != len(ft) or len(ys) != len(fs):
        raise ValueError(
            f"need one label per row: target {len(ft)} rows, {len(pt)} pseudo-labels; "
            f"source {len(fs)} rows, {len(ys)} labels."
        )
    if ft.shape[1] != fs.shape[1]:
        raise ValueError(
            f"target_features and source_features must have the same dimension, got "
            f"{ft.shape[1]} and {fs.shape[1]}."
        )
    check_positive("C", C)
    classes = np.unique(pt)
    if len(classes) == 1:
        return float(np.mean(ys == classes[0]))
    return linear_probe(ft, pt, fs, ys, C=C, max_iter=1000, standardize=True)


def label_free_scores(
    model: SplitModel, source_val: Data, target_images: Tensor
) -> dict[str, float]:
    """The two label-free scores of an adapted model: no target label is read.

    ``{"source_val_acc": ..., "reverse_val": ...}``: accuracy on labelled source validation
    data ``source_val`` (``(images, labels)``), and :func:`reverse_validation` (a classifier
    fitted to the model's pseudo-labels on ``target_images``, in its feature space, scored
    on ``source_val``). Both higher is better. Used to choose an adaptation strength
    (Ganin et al., JMLR 2016, section 5.1.2).
    """
    from .features import extract_features
    from .training import predict

    if not isinstance(target_images, Tensor) or target_images.ndim != 4:
        raise ValueError(
            "target_images must be a 4-d tensor (images, channels, height, width), got "
            f"{type(target_images).__name__} of shape {tuple(getattr(target_images, 'shape', ()))}."
        )
    unlabelled = (target_images, torch.zeros(len(target_images), dtype=torch.long))
    f_val, y_val = extract_features(model, source_val)
    logits_t, _ = predict(model, unlabelled)
    if not isinstance(logits_t, Tensor):
        raise TypeError(f"model must return one logits tensor, got {type(logits_t).__name__}.")
    f_t, _ = extract_features(model, unlabelled)
    return {
        "source_val_acc": evaluate(model, source_val)["accuracy"],
        "reverse_val": reverse_validation(f_val, y_val, f_t, logits_t.argmax(1)),
    }


def choosing_with_target_labels(
    candidates: Mapping[str, Mapping[float, nn.Module]],
    chosen: Mapping[str, float],
    peek: Data,
    fresh: Data,
) -> dict[str, dict[str, float]]:
    """What choosing a hyper-parameter on target *test* labels reports, and what it gains.

    The test images are split in two halves: ``peek`` (used to choose) and ``fresh`` (what a
    new user would see). Per method (``candidates[method][value]`` a trained model,
    ``chosen[method]`` the label-free choice), the result holds ``oracle_value`` (best on
    peek), ``oracle_reported`` (its peek accuracy, what a paper tuned on its test set would
    report), ``oracle_fresh`` (its honest accuracy), ``label_free_fresh`` (the label-free
    choice on the same fresh half) and ``fresh_gain`` = ``oracle_fresh - label_free_fresh``
    (what target labels bought, like for like). The winner's curse is
    ``oracle_reported - oracle_fresh`` (Cawley & Talbot, JMLR 2010).
    """
    missing = [m for m in candidates if m not in chosen]
    if missing:
        raise ValueError(f"chosen has no value for {missing}; it has {sorted(chosen)}.")
    out: dict[str, dict[str, float]] = {}
    for method, models in candidates.items():
        if chosen[method] not in models:
            raise ValueError(
                f"chosen[{method!r}] = {chosen[method]!r} is not a candidate; valid values: {list(models)}."
            )
        peek_acc = {v: evaluate(m, peek)["accuracy"] for v, m in models.items()}
        fresh_acc = {v: evaluate(m, fresh)["accuracy"] for v, m in models.items()}
        oracle = max(peek_acc, key=lambda v: peek_acc[v])
        out[method] = {
            "oracle_value": oracle,
            "label_free_value": chosen[method],
            "oracle_reported": peek_acc[oracle],
            "oracle_fresh": fresh_acc[oracle],
            "label_free_fresh": fresh_acc[chosen[method]],
            "fresh_gain": fresh_acc[oracle] - fresh_acc[chosen[method]],
        }
    return out


# ------------------------------------------------------------------ latency


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    repeats: int = 10,
    *,
    warmup: int = 2,
    device: str | torch.device | None = None,
) -> float:
    """Inference latency in milliseconds per image: median over ``repeats`` timed forward passes.

    ``input_shape`` is the batch shape ``(N, C, H, W)``; each pass's time is divided by
    ``N``. The model runs in eval mode without gradients after ``warmup`` untimed
    passes; its train/eval mode is restored. ``device=None``: where the model is. The
    median resists the outliers of a shared machine; the absolute numbers still depend
    on the CPU, threads and load.
    """
    check_int("repeats", repeats, minimum=1)
    check_int("warmup", warmup, minimum=0)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be a batch shape like (N, C, H, W), got {shape}.")
    dev = resolve_device(device, model)
    model.to(dev)
    # the input's values do not matter; a local generator leaves the caller's stream alone
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)).to(dev)
    times = []
    with eval_mode(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000.0 / shape[0])
    return float(statistics.median(times))
