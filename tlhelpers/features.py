"""Frozen features: what a frozen source model computes on target data.

Feature extraction is the expensive part of a linear probe; training a head on
cached features costs milliseconds. Every function here runs the model through
:func:`tlhelpers.training.predict`, the kit's one batched inference loop.

- :func:`extract_features` (notebooks 00-01): the body's features, with an on-disk cache.
- :func:`face_descriptors` (notebook 08b): dlib's face-trained ResNet embedding (128-d), a
  source trained on faces to set beside the ImageNet features.
- :func:`timed_features` (notebook 01): the same plus the seconds it took.
- :func:`source_outputs` (notebook 02): features *and* the source head's probabilities,
  what :mod:`tlhelpers.transferability` scores need.
- :func:`cache_activations` (notebook 04): activations at a frozen boundary, computed once.
- :func:`linear_probe`, :func:`probe_over_seeds` (notebooks 00-02): logistic-regression
  probes on frozen features.
- :func:`activation_maps`, :func:`unit_activations`, :func:`top_activating` (notebook 05a):
  what the units of one layer respond to, on a few images or over a whole data set.
- :func:`ridge_probe` (notebook 05b): a ridge regression head for a continuous target, its
  strength chosen on validation.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Sequence
from typing import cast

import numpy as np
import torch
from torch import nn

from .data import Data, as_tensors, few_shot_indices, iterate_batches
from .interactive import progress as _bar
from .models import find_weights, split_model
from .paths import CacheRebuiltWarning, atomic_write, cache_dir
from .training import predict
from .validation import check_choice, check_int, to_numpy

__all__ = [
    "activation_maps",
    "cache_activations",
    "face_descriptors",
    "extract_features",
    "linear_probe",
    "probe_over_seeds",
    "REDUCTIONS",
    "RIDGE_ALPHAS",
    "ridge_probe",
    "source_outputs",
    "timed_features",
    "top_activating",
    "unit_activations",
]

#: Bumped when the cache layout or the fingerprint changes (old files are then unused).
_CACHE_VERSION = "2"


def _hash_tensor(h: hashlib._Hash, t: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and every byte of its values into ``h``."""
    t = t.detach().cpu().contiguous()
    h.update(f"{t.dtype}{tuple(t.shape)}".encode())
    if t.numel():
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())


def _fingerprint(model: nn.Module, data: Data, transform) -> str:
    """sha256 over every input of the features: the model's structure and *all* of its
    state (every weight and buffer, not a sample), every input value and target, and
    the transform's ``repr``. (The old key read 64 values per tensor and every n-th pixel,
    so an edit elsewhere returned stale features.)"""
    h = hashlib.sha256(f"tlhelpers-features-v{_CACHE_VERSION}".encode())
    h.update(repr(model).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        _hash_tensor(h, t)
    tensors = as_tensors(data)
    batches = [tensors] if tensors is not None else iterate_batches(data, 256)
    for x, y in batches:
        _hash_tensor(h, torch.as_tensor(x))
        _hash_tensor(h, torch.as_tensor(y))
    h.update(repr(transform).encode())
    return h.hexdigest()


def _content_sha256(features: torch.Tensor, targets: torch.Tensor) -> str:
    h = hashlib.sha256()
    _hash_tensor(h, features)
    _hash_tensor(h, targets)
    return h.hexdigest()


def _load_cached(path, key: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The cached ``(features, targets)`` if ``path`` holds them intact for ``key``, else
    None after a :class:`CacheRebuiltWarning` naming the file and the problem."""
    try:
        saved = torch.load(path, weights_only=True)
        feats, targets = saved["features"], saved["targets"]
        if saved.get("key") != key:
            problem = "was made from other inputs"
        elif saved.get("sha256") != _content_sha256(feats, targets):
            problem = "does not match its recorded sha256 (edited or corrupt)"
        else:
            return feats, targets
    except Exception as err:  # truncated/corrupt: torch/zip/pickle raise many types
        problem = f"cannot be read ({type(err).__name__}: {err})"
    warnings.warn(
        f"Features cache {path} {problem}; computing the features again.",
        CacheRebuiltWarning,
        stacklevel=3,
    )
    return None


def extract_features(
    model: nn.Module,
    data: Data,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
    cache: bool | str = False,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``(N, D)`` of the frozen body of ``model`` and the targets ``(N,)``, on the CPU.

    ``model`` is split with :func:`tlhelpers.models.split_model` (head dropped)
    and run through :func:`tlhelpers.training.predict` (eval mode; ``device=None`` = where
    the model is). ``cache=True`` stores the result on disk under a key made from the
    weights, the data and the transform (a string picks the key prefix), so a second
    call is a file read. The key is a sha256 over *every* weight, buffer, input value and
    target (hashing costs far less than the forward passes it saves); the file also
    records the sha256 of its content, so an edited or truncated cache file is computed
    again (with a :class:`~tlhelpers.paths.CacheRebuiltWarning` naming it). The file is
    written atomically; a failed write (e.g. a full disk) leaves nothing behind and
    raises an ``OSError`` naming the file.
    """
    try:
        body = split_model(model).body
    except TypeError:  # already a feature extractor (e.g. nn.Sequential)
        body = model
    path = None
    if cache:
        prefix = cache if isinstance(cache, str) else "features"
        key = _fingerprint(body, data, batch_transform)
        path = cache_dir("features") / f"{prefix}-{key[:16]}.pt"
        if path.is_file():
            cached = _load_cached(path, key)
            if cached is not None:
                return cached
    feats, targets = predict(
        nn.Sequential(body, nn.Flatten()),
        data,
        batch_transform=batch_transform,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    out = (cast(torch.Tensor, feats), targets)  # nn.Flatten returns one tensor
    if path is not None:
        payload = {"features": out[0], "targets": out[1], "key": key,
                   "sha256": _content_sha256(*out)}  # fmt: skip
        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
    return out


#: Side of the aligned face chip dlib's face ResNet reads.
FACE_CHIP = 150


def _dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError(
            "face_descriptors needs dlib: `pip install dlib-bin==20.0.1.post1 "
            "face-recognition-models==0.3.0` (both in requirements.txt)."
        ) from None
    return dlib


def face_descriptors(
    images: torch.Tensor, *, cache: bool = False, progress: bool = False
) -> torch.Tensor:
    r"""dlib's face embedding (King, 2017) of face crops: ``(N, 128)`` float32, on the CPU.

    ``images`` ``(N, C, H, W)`` in [0, 1], grey (C = 1) or RGB (C = 3), each already a crop
    around one face (a detector's box). Each crop is resized to 150x150 RGB; dlib's
    5-landmark shape predictor finds the eyes' corners and the nose on the whole crop;
    ``dlib.get_face_chip`` rotates and scales the face so that they land where the
    network expects them (alignment, padding 0.25); the ResNet maps the chip to a
    128-d vector. It was trained with a metric loss (pairs of one person closer than 0.6
    in Euclidean distance, other people farther) on about 3 million faces of about 7,500
    people, so two crops are compared by cosine or distance, with no training here.

    The model files come from the ``face-recognition-models`` package, located without
    importing it and checked against their sha256 (:func:`tlhelpers.models.find_weights`).
    ``cache=True`` stores the result on disk under the sha256 of the images (80 ms of CPU
    per crop: a second run reads the file).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor (N, 1 or 3, H, W) in [0, 1], got {got}.")
    if len(images) and (float(images.min()) < 0 or float(images.max()) > 1):
        raise ValueError(
            f"images must lie in [0, 1], got values from {float(images.min()):.3g} "
            f"to {float(images.max()):.3g}."
        )
    dlib = _dlib()
    paths = find_weights("dlib_face_resnet"), find_weights("dlib_shape_5")
    path = None
    if cache:
        h = hashlib.sha256(b"dlib_face_resnet_v1")
        _hash_tensor(h, images)
        key = h.hexdigest()
        path = cache_dir("features") / f"dlib-faces-{key[:16]}.pt"
        if path.is_file():
            cached = _load_cached(path, key)
            if cached is not None:
                return cached[0]
    net = dlib.face_recognition_model_v1(str(paths[0]))
    aligner = dlib.shape_predictor(str(paths[1]))
    rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
    rgb = torch.nn.functional.interpolate(
        rgb.float(), size=(FACE_CHIP, FACE_CHIP), mode="bilinear", align_corners=False
    )
    pixels = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    whole = dlib.rectangle(0, 0, FACE_CHIP - 1, FACE_CHIP - 1)
    out = np.zeros((len(images), 128), dtype=np.float32)
    rows = range(len(images))
    for i in _bar(rows, desc="dlib face descriptors") if progress else rows:
        img = np.ascontiguousarray(pixels[i])
        chip = dlib.get_face_chip(img, aligner(img, whole), size=FACE_CHIP, padding=0.25)
        out[i] = np.asarray(net.compute_face_descriptor(chip), dtype=np.float32)
    feats = torch.from_numpy(out)
    if path is not None:
        targets = torch.zeros(0)
        payload = {"features": feats, "targets": targets, "key": key,
                   "sha256": _content_sha256(feats, targets)}  # fmt: skip
        with atomic_write(path) as tmp:
            torch.save(payload, tmp)
    return feats


def timed_features(
    model: nn.Module, data: Data, **kwargs
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """:func:`extract_features` (same keyword arguments) plus its wall time in seconds (notebook 01)."""
    start = time.perf_counter()
    feats, y = extract_features(model, data, **kwargs)
    return feats, y, time.perf_counter() - start


class _FeaturesAndProbs(nn.Module):
    """``x -> (body(x).flatten(1), softmax(head(.)))``: both from one forward pass."""

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.body(x).flatten(1)
        return f, torch.softmax(self.head(f), dim=1)


def source_outputs(
    model: nn.Module,
    data: Data,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Frozen source model on target data: ``{"features", "source_probs", "targets"}`` (notebook 02).

    One forward pass per batch in eval mode: ``features = body(x)`` (N, D) and
    ``source_probs = softmax(head(features))`` (N, Z), the source head's distribution
    over its own Z source classes (1000 for ImageNet, 5 for the kit's Fashion-MNIST-A
    CNN). Everything is returned on the CPU.
    """
    split = split_model(model)
    (feats, probs), targets = predict(
        _FeaturesAndProbs(split.body, split.head),
        data,
        batch_transform=batch_transform,
        batch_size=batch_size,
        device=device,
    )
    return {"features": feats, "source_probs": probs.double(), "targets": targets}


def cache_activations(
    lower: nn.Module,
    data: Data,
    *,
    batch_size: int = 512,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(lower(x), y)`` for all of ``data`` on the CPU, ``lower`` in eval mode (notebook 04).

    Top-k fine-tuning (:func:`tlhelpers.models.split_at_block`) runs the frozen ``lower``
    blocks once here instead of at every training step.
    """
    outputs, targets = predict(lower, data, batch_size=batch_size, device=device)
    if not isinstance(outputs, torch.Tensor):
        raise TypeError(f"lower must return one tensor, got a tuple of {len(outputs)}.")
    return outputs, targets


def linear_probe(
    train_features: torch.Tensor | np.ndarray,
    train_targets: torch.Tensor | np.ndarray,
    test_features: torch.Tensor | np.ndarray,
    test_targets: torch.Tensor | np.ndarray,
    *,
    C: float = 1.0,
    max_iter: int = 2000,
    standardize: bool = False,
) -> float:
    """Test accuracy of a logistic-regression probe on frozen features (notebooks 00-02).

    Uses scikit-learn's ``LogisticRegression`` (L2, lbfgs): a well-tested solver
    that converges reliably on tiny few-shot sets, where a hand-written SGD loop
    needs tuning. ``standardize`` is off by default: with 2 labels per class the
    training statistics are too noisy (measured on LFW faces, 2 per class: 0.97
    raw vs 0.80 standardised).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def _np(a):
        return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)

    steps = [StandardScaler()] if standardize else []
    clf = make_pipeline(*steps, LogisticRegression(C=C, max_iter=max_iter))
    clf.fit(_np(train_features), _np(train_targets))
    return float(clf.score(_np(test_features), _np(test_targets)))


def probe_over_seeds(
    train_features: torch.Tensor,
    train_targets: torch.Tensor,
    test_features: torch.Tensor,
    test_targets: torch.Tensor,
    per_class: int,
    seeds: Sequence[int],
    **probe_kwargs,
) -> list[float]:
    """Linear-probe test accuracy for each seed's few-shot draw of the training features (notebook 01).

    Rows are picked with :func:`tlhelpers.data.few_shot_indices`; the features are computed
    once, so each seed costs one probe fit.
    """
    accs = []
    for s in seeds:
        idx = few_shot_indices(train_targets, per_class, s)
        accs.append(
            linear_probe(
                train_features[idx], train_targets[idx], test_features, test_targets, **probe_kwargs
            )
        )
    return accs


# ---------------------------------------------------------------- feature hierarchy (notebook 05a)

#: How :func:`unit_activations` summarises a channel's map ``(H, W)`` into one number.
REDUCTIONS = ("max", "mean")


class _StopForward(Exception):
    """Raised by a hook once every wanted layer has been seen: the rest of the model is skipped."""


class _LayerOutputs(nn.Module):
    """``x -> tuple(reduce(output of module l) for l in layers)``, running ``model`` only as far as needed."""

    def __init__(self, model: nn.Module, layers: Sequence[str], reduce: str | None):
        super().__init__()
        modules = dict(model.named_modules())
        for layer in layers:
            check_choice("layer", layer, [n for n in modules if n])
        self.model = model
        self.layers = list(layers)
        self.targets = [modules[layer] for layer in self.layers]
        self.reduce = reduce

    def _reduce(self, out: torch.Tensor) -> torch.Tensor:
        if self.reduce is None or out.ndim == 2:
            return out.clone()
        dims = tuple(range(2, out.ndim))
        return out.amax(dim=dims) if self.reduce == "max" else out.mean(dim=dims)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        captured: dict[int, torch.Tensor] = {}

        def hook(i: int):
            def _hook(_m, _i, out):
                captured.setdefault(i, self._reduce(out))
                if len(captured) == len(self.targets):
                    raise _StopForward

            return _hook

        handles = [t.register_forward_hook(hook(i)) for i, t in enumerate(self.targets)]
        try:
            self.model(x)
        except _StopForward:
            pass
        finally:
            for h in handles:
                h.remove()
        return tuple(captured[i] for i in range(len(self.targets)))


def activation_maps(
    model: nn.Module, layer: str, images: torch.Tensor, *, device: str | torch.device | None = None
) -> torch.Tensor:
    """The output ``(N, C, H, W)`` of module ``layer`` (a name of ``model.named_modules()``) on ``images``.

    Run in eval mode without gradients (through :func:`tlhelpers.training.predict`; every
    submodule's mode is restored afterwards). Notebook 05a shows these maps: early layers
    copy edges and blobs of the input, later ones fire on larger parts.
    """
    images = torch.as_tensor(images)
    data = (images, torch.zeros(len(images), dtype=torch.long))
    (maps,), _ = predict(
        _LayerOutputs(model, [layer], None), data, batch_size=len(images) or 1, device=device
    )
    return maps


def unit_activations(
    model: nn.Module,
    layer: str | Sequence[str],
    data: Data,
    *,
    reduce: str = "max",
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> tuple[torch.Tensor | dict[str, torch.Tensor], torch.Tensor]:
    r"""One pass over ``data``: ``(A, y)`` with :math:`A_{ic}` = channel ``c`` of layer ``layer`` on image ``i``.

    :math:`A_{ic} = \max_{h,w} a_{c}(x_i)_{hw}` (``reduce="max"``: the unit's strongest
    response anywhere in the image, as in Zeiler & Fergus, 2014, who show the top images
    per unit) or the spatial mean (``"mean"``). A 2-D layer output (e.g. after pooling)
    is returned as it is. ``layer`` is a name of ``model.named_modules()``; a list of
    names gives ``{name: A}`` from the same pass. The model runs only up to the last of
    them. Computed once; :func:`top_activating` then ranks images for any unit without
    running the model again (notebook 05a).
    """
    check_choice("reduce", reduce, REDUCTIONS)
    check_int("batch_size", batch_size, minimum=1)
    layers = [layer] if isinstance(layer, str) else list(layer)
    if not layers:
        raise ValueError("layer must name at least one module, got an empty list.")
    acts, y = predict(_LayerOutputs(model, layers, reduce), data, batch_size=batch_size,
                      device=device)  # fmt: skip
    if isinstance(layer, str):
        return acts[0], y
    return dict(zip(layers, acts, strict=True)), y


def top_activating(
    activations: torch.Tensor, k: int, units: Sequence[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(values, indices)``, each ``(len(units), k)``: the ``k`` images that most excite each unit.

    ``activations`` is ``(N, C)`` from :func:`unit_activations`; ``units`` are channel
    numbers (default: all ``C``). Row ``j`` lists unit ``units[j]``'s strongest images,
    strongest first (``torch.topk``; ties in an arbitrary but fixed order). Notebook 05a.
    """
    if activations.ndim != 2:
        raise ValueError(
            f"activations must be 2-D (N images, C units), got shape {tuple(activations.shape)}."
        )
    n, c = activations.shape
    check_int("k", k, minimum=1)
    if k > n:
        raise ValueError(f"k must be <= the number of images ({n}), got k={k}.")
    units = list(range(c)) if units is None else [int(u) for u in units]
    bad = [u for u in units if not 0 <= u < c]
    if bad:
        raise ValueError(f"units {bad} are out of range: valid units are 0..{c - 1}.")
    values, indices = torch.topk(activations[:, units].T, k, dim=1)
    return values, indices


#: Ridge strengths :func:`ridge_probe` tries by default (a log grid; features are standardised).
RIDGE_ALPHAS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def ridge_probe(
    train_features: torch.Tensor | np.ndarray,
    train_targets: torch.Tensor | np.ndarray,
    val_features: torch.Tensor | np.ndarray,
    val_targets: torch.Tensor | np.ndarray,
    test_features: torch.Tensor | np.ndarray,
    test_targets: torch.Tensor | np.ndarray,
    *,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> dict[str, float]:
    r"""A linear regression head on frozen features, its strength chosen on validation (notebook 05b).

    For each :math:`\alpha` in ``alphas``: standardise the features (training statistics),
    fit ridge regression :math:`\min_w \lVert y - Fw - b\rVert^2 + \alpha\lVert w\rVert^2`
    (scikit-learn's ``Ridge``; Hoerl & Kennard, 1970) on the training rows; keep the
    :math:`\alpha` with the highest validation :math:`R^2` (the first on ties); read the test
    set once. Returns ``{"alpha", "val_r2", "r2", "mae"}`` with the test
    :math:`R^2 = 1 - \sum (y - \hat y)^2 / \sum (y - \bar y)^2` and mean absolute error.
    Refuses, by name, non-finite or mismatched inputs and an empty or non-positive ``alphas``.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    alphas = list(alphas)
    if not alphas:
        raise ValueError("alphas must hold at least one ridge strength, got an empty sequence.")
    for a in alphas:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not np.isfinite(a) or a <= 0:
            raise ValueError(f"alphas must be finite numbers > 0, got {alphas!r}.")
    sets = {}
    for part, f, y in (
        ("train", train_features, train_targets),
        ("val", val_features, val_targets),
        ("test", test_features, test_targets),
    ):
        f_np = to_numpy(f"{part}_features", f, ndim=2).astype(float)
        y_np = to_numpy(f"{part}_targets", y, ndim=1).astype(float)
        if len(f_np) != len(y_np):
            raise ValueError(
                f"{part}_targets has {len(y_np)} values but {part}_features has {len(f_np)} rows."
            )
        sets[part] = (f_np, y_np)
    fits = []
    for a in alphas:
        model = make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(*sets["train"])
        fits.append((a, float(r2_score(sets["val"][1], model.predict(sets["val"][0]))), model))
    alpha, val_r2, model = max(fits, key=lambda fit: fit[1])  # the first of equal maxima
    pred = model.predict(sets["test"][0])
    return {
        "alpha": float(alpha),
        "val_r2": val_r2,
        "r2": float(r2_score(sets["test"][1], pred)),
        "mae": float(mean_absolute_error(sets["test"][1], pred)),
    }
