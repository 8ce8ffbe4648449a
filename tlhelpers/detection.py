"""From a classifier to a detector: boxes, IoU, non-maximum suppression, an image pyramid with
sliding windows, and one interface for three face detectors.

Every detector here has ``detect(image) -> Detections``: boxes ``(N, 4)`` as
``(x1, y1, x2, y2)`` in pixels of the image it was given, and one score per box.

- :class:`SlidingWindowDetector`: any crop classifier turned into a detector (Rowley, Baluja
  and Kanade, 1998; Sermanet et al., 2014, "OverFeat"): score every window of an image
  pyramid, keep those above a threshold, suppress overlapping ones.
- :class:`HaarDetector`: Viola and Jones (2001)'s boosted cascade of Haar features, the
  cascade files that ship with OpenCV.
- :class:`MTCNNDetector`: Zhang et al. (2016)'s multi-task cascaded CNNs, the pretrained
  weights that ship inside the ``facenet-pytorch`` wheel (imported lazily).

An image with no face gives an empty :class:`Detections` (``0 x 4``), never an error; a
malformed image (wrong dtype, too small, NaN, a wrong number of channels) gives a
``ValueError`` naming the argument, the value and what is allowed (:func:`check_image`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tlhelpers.validation import check_int, check_positive

__all__ = [
    "box_area",
    "box_iou",
    "box_voting",
    "check_image",
    "Detections",
    "Detector",
    "GREY_WEIGHTS",
    "HaarDetector",
    "IMAGE_CHANNELS",
    "MIN_IMAGE_SIDE",
    "MTCNN_INSTALL",
    "MTCNNDetector",
    "nms",
    "pyramid_windows",
    "sliding_windows",
    "SlidingWindowDetector",
    "to_grey",
]

#: The smallest image side any detector accepts (a face needs more than a few pixels).
MIN_IMAGE_SIDE = 16
#: Accepted channel counts of an ``(H, W, C)`` image (4: RGBA, the alpha channel is dropped).
IMAGE_CHANNELS = (1, 3, 4)
#: Luminance weights of Rec. 709 (what ``skimage.color.rgb2gray`` uses, as the LFW crops).
GREY_WEIGHTS = (0.2125, 0.7154, 0.0721)
#: The pip command that installs MTCNN's weights (its other requirements are already here).
MTCNN_INSTALL = "pip install --no-deps facenet-pytorch==2.6.0"


# ---------------------------------------------------------------- images


def check_image(image: Any, name: str = "image", *, min_side: int = MIN_IMAGE_SIDE) -> np.ndarray:
    """Validate a photo and return it as ``float32 (H, W, 3)`` RGB in ``[0, 1]``.

    Accepted: a numpy array or torch tensor of shape ``(H, W)`` (grey) or ``(H, W, C)`` with
    ``C`` in :data:`IMAGE_CHANNELS` (alpha dropped), dtype ``uint8`` (0..255) or floating
    (finite, in ``[0, 1]``), both sides at least ``min_side`` pixels. Anything else raises a
    ``ValueError`` that names ``name``, the value received and what is allowed.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(
            f"{name} must be a numpy array or torch tensor of shape (H, W) or (H, W, C), "
            f"got {type(image).__name__}."
        )
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got shape {image.shape}.")
    if image.ndim == 3 and image.shape[2] not in IMAGE_CHANNELS:
        raise ValueError(
            f"{name} must have C in {IMAGE_CHANNELS} channels (last axis, (H, W, C)), "
            f"got shape {image.shape}."
        )
    h, w = image.shape[:2]
    if min(h, w) < min_side:
        raise ValueError(f"{name} must be at least {min_side}x{min_side} pixels, got {h}x{w}.")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / 255.0
    elif image.dtype.kind == "f":
        x = image.astype(np.float32)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} contains NaN or inf values (shape {image.shape}).")
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            raise ValueError(
                f"{name} as floats must lie in [0, 1], got values in [{lo:.3g}, {hi:.3g}] "
                "(uint8 images may use 0..255)."
            )
    else:
        raise ValueError(f"{name} must have dtype uint8 or a floating dtype, got {image.dtype}.")
    if x.ndim == 2:
        x = x[..., None]
    x = x[..., :3]  # drop alpha
    return np.ascontiguousarray(np.repeat(x, 3, axis=2) if x.shape[2] == 1 else x)


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` RGB -> ``(H, W)`` luminance, :data:`GREY_WEIGHTS` (as ``rgb2gray``)."""
    return rgb @ np.asarray(GREY_WEIGHTS, dtype=rgb.dtype)


# ---------------------------------------------------------------- boxes


@dataclass(frozen=True)
class Detections:
    """What a detector found: ``boxes`` ``(N, 4)`` float ``(x1, y1, x2, y2)`` in pixels of the
    input image, ``scores`` ``(N,)``, sorted by score, highest first. ``N`` may be 0."""

    boxes: torch.Tensor
    scores: torch.Tensor

    def __post_init__(self) -> None:
        if self.boxes.ndim != 2 or self.boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape (N, 4), got {tuple(self.boxes.shape)}.")
        if self.scores.shape != (self.boxes.shape[0],):
            raise ValueError(
                f"scores must have shape ({self.boxes.shape[0]},) to match boxes, "
                f"got {tuple(self.scores.shape)}."
            )

    @classmethod
    def empty(cls) -> Detections:
        """No detection: a ``0 x 4`` box tensor and no scores."""
        return cls(torch.zeros(0, 4), torch.zeros(0))

    @classmethod
    def from_arrays(cls, boxes: Any, scores: Any) -> Detections:
        """Float tensors from array-likes (``None`` or empty -> :meth:`empty`), sorted by score."""
        if boxes is None or len(boxes) == 0:
            return cls.empty()
        b = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
        s = torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(-1)
        order = torch.argsort(s, descending=True, stable=True)
        return cls(b[order], s[order])

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def to_dict(self) -> dict[str, list]:
        """Plain lists (for ``results.json``), boxes rounded to 0.1 pixel."""
        return {"boxes": [[round(v, 1) for v in b] for b in self.boxes.tolist()],
                "scores": [round(v, 4) for v in self.scores.tolist()]}  # fmt: skip


def _boxes(name: str, boxes: Any) -> torch.Tensor:
    if isinstance(boxes, torch.Tensor):
        b = boxes
    else:
        try:
            b = torch.as_tensor(np.asarray(boxes, dtype=np.float64))
        except (ValueError, TypeError):
            raise ValueError(
                f"{name} must be an (N, 4) array of numbers as (x1, y1, x2, y2), got a "
                f"ragged or non-numeric {type(boxes).__name__} (every box needs 4 numbers)."
            ) from None
    b = b.to(torch.float64).reshape(-1, 4) if b.numel() == 0 else b.to(torch.float64)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(
            f"{name} must have shape (N, 4) as (x1, y1, x2, y2), got {tuple(b.shape)}."
        )
    if not torch.isfinite(b).all():
        raise ValueError(f"{name} contains NaN or inf values.")
    if (b[:, 2] < b[:, 0]).any() or (b[:, 3] < b[:, 1]).any():
        raise ValueError(f"{name} must satisfy x2 >= x1 and y2 >= y1 (xyxy format).")
    return b


def _scores(name: str, scores: Any, n: int) -> torch.Tensor:
    """``(n,)`` float64 scores, one per box, all finite (a NaN would rank first in NMS)."""
    try:
        s = (
            torch.as_tensor(
                scores if isinstance(scores, torch.Tensor) else np.asarray(scores, dtype=np.float64)
            )
            .to(torch.float64)
            .reshape(-1)
        )
    except (ValueError, TypeError):
        raise ValueError(
            f"{name} must be {n} numbers, one per box, got a ragged or non-numeric "
            f"{type(scores).__name__}."
        ) from None
    if s.shape[0] != n:
        raise ValueError(f"{name} must have one value per box ({n}), got {s.shape[0]}.")
    bad = ~torch.isfinite(s)
    if bad.any():
        i = int(bad.nonzero()[0])
        raise ValueError(
            f"{name} must be finite numbers, got {s[i].item()} (NaN or inf) at index {i} "
            f"({int(bad.sum())} of {n} non-finite); a NaN score cannot be ranked."
        )
    return s


def _indices(name: str, idx: Any, n: int) -> torch.Tensor:
    """Integer indices into ``n`` boxes (as :func:`nms` returns), each in ``0..n-1``."""
    k = torch.as_tensor(idx if isinstance(idx, torch.Tensor) else np.asarray(idx)).reshape(-1)
    if k.numel() and (k.is_floating_point() or k.dtype == torch.bool or k.is_complex()):
        raise ValueError(
            f"{name} must be integer box indices (as nms returns), got dtype {k.dtype}."
        )
    k = k.long()
    if k.numel() and (k.min() < 0 or k.max() >= n):
        raise ValueError(
            f"{name} must be box indices in 0..{n - 1}, got {k.tolist()[:10]} ({n} boxes)."
        )
    return k


def box_area(boxes: Any) -> torch.Tensor:
    """Areas of ``(N, 4)`` xyxy boxes: ``(x2 - x1) * (y2 - y1)``."""
    b = _boxes("boxes", boxes)
    return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def box_iou(boxes1: Any, boxes2: Any) -> torch.Tensor:
    """Intersection over union of every pair: ``(N, M)`` float64.

    .. math:: \\mathrm{IoU}(A, B) = \\frac{|A \\cap B|}{|A| + |B| - |A \\cap B|}

    (Jaccard index; the overlap measure of PASCAL VOC, Everingham et al., 2010.) Two boxes
    of zero area give 0, not NaN.
    """
    a, b = _boxes("boxes1", boxes1), _boxes("boxes2", boxes2)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])  # top-left of the intersection
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=2)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Any, scores: Any, iou_threshold: float = 0.3) -> torch.Tensor:
    """Greedy non-maximum suppression: indices of the kept boxes, highest score first.

    Take the best-scoring box, drop every remaining box whose IoU with it is above
    ``iou_threshold``, repeat (as ``torchvision.ops.nms``; Felzenszwalb et al., 2010).
    NaN or infinite scores are refused (a NaN cannot be ranked: it would come first).
    """
    b = _boxes("boxes", boxes)
    s = _scores("scores", scores, b.shape[0])
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must lie in [0, 1], got {iou_threshold!r}.")
    order = torch.argsort(s, descending=True, stable=True)
    iou = box_iou(b, b)
    alive = torch.ones(len(b), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def box_voting(boxes: Any, scores: Any, keep: Any, iou_threshold: float = 0.3) -> torch.Tensor:
    r"""Refine each kept box into the score-weighted mean of every box that overlaps it by
    more than ``iou_threshold`` (itself included): ``(len(keep), 4)``.

    .. math:: \hat b_k = \frac{\sum_{j:\ \mathrm{IoU}(b_j, b_k) > t} s_j\, b_j}{\sum_{j:\ \mathrm{IoU}(b_j, b_k) > t} s_j}

    NMS keeps the single best-scoring window, which on a flat score surface may sit off
    the object; the windows it suppressed vote for where the object is (Gidaris and
    Komodakis, 2015, "box voting"; OpenCV's ``groupRectangles`` averages the same way).
    """
    b = _boxes("boxes", boxes)
    s = _scores("scores", scores, b.shape[0])
    if (s < 0).any():
        raise ValueError("scores must be >= 0 to weight a mean (probabilities, not logits).")
    k = _indices("keep", keep, len(b))
    if len(k) == 0:
        return torch.zeros(0, 4, dtype=torch.float64)
    w = (box_iou(b[k], b) > iou_threshold).double() * s[None, :]  # (K, N)
    w[torch.arange(len(k)), k] = s[k].clamp(min=1e-12)  # a box always votes for itself
    return (w @ b) / w.sum(dim=1, keepdim=True)


# ---------------------------------------------------------------- pyramid and windows


def sliding_windows(height: int, width: int, window: int, stride: int) -> torch.Tensor:
    """All ``window x window`` boxes of an ``height x width`` image, ``stride`` apart,
    row by row: ``(K, 4)`` xyxy. The last row/column is shifted in so that the image's
    right and bottom edges are covered too."""
    window, stride = check_int("window", window, minimum=1), check_int("stride", stride, minimum=1)
    if window > min(height, width):
        return torch.zeros(0, 4)

    def starts(n: int) -> list[int]:
        s = list(range(0, n - window + 1, stride))
        return s if s[-1] == n - window else [*s, n - window]

    ys, xs = starts(height), starts(width)
    grid = torch.tensor([(x, y) for y in ys for x in xs], dtype=torch.float32)
    return torch.cat([grid, grid + window], dim=1)


def pyramid_windows(
    image: np.ndarray, window: int, sizes: Sequence[float], stride: float = 0.25
) -> tuple[torch.Tensor, torch.Tensor]:
    """Crops of every window of an image pyramid and their boxes in original pixels.

    For each ``size`` (a window side in *original* pixels) the image is resized by
    ``window / size`` (bilinear, antialiased), so that a ``size``-pixel face becomes
    ``window`` pixels, and cut into ``window x window`` crops ``stride * window`` apart.
    A crop at ``(x, y)`` of a level resized by ``(s_x, s_y)`` maps back to the box
    ``(x / s_x, y / s_y, (x + window) / s_x, (y + window) / s_y)``.

    ``image``: ``(H, W)`` or ``(H, W, C)`` float array. Returns ``crops (K, C, window, window)``
    and ``boxes (K, 4)``; sizes larger than the image give no windows.
    """
    window = check_int("window", window, minimum=1)
    check_positive("stride", stride)
    if not sizes:
        raise ValueError("sizes must list at least one window size in pixels, got an empty list.")
    x = torch.as_tensor(np.asarray(image, dtype=np.float32))
    x = (x[None] if x.ndim == 2 else x.permute(2, 0, 1))[None]  # (1, C, H, W)
    h, w = x.shape[-2:]
    step = max(1, round(stride * window))
    crops, boxes = [], []
    for size in sizes:
        check_positive("sizes", size)
        lh, lw = round(h * window / size), round(w * window / size)
        if min(lh, lw) < window:
            continue
        level = F.interpolate(
            x, size=(lh, lw), mode="bilinear", antialias=True, align_corners=False
        )
        b = sliding_windows(lh, lw, window, step)
        patches = level.unfold(2, window, 1).unfold(3, window, 1)  # (1, C, lh-w+1, lw-w+1, w, w)
        crops.append(patches[0, :, b[:, 1].long(), b[:, 0].long()].permute(1, 0, 2, 3))
        scale = torch.tensor([lw / w, lh / h, lw / w, lh / h])
        boxes.append(b / scale)
    if not crops:
        return torch.zeros(0, x.shape[1], window, window), torch.zeros(0, 4)
    return torch.cat(crops), torch.cat(boxes)


# ---------------------------------------------------------------- detectors


class Detector:
    """The interface: ``detect(image) -> Detections`` (``image`` checked by :func:`check_image`)."""

    name = "detector"

    def detect(self, image: Any) -> Detections:
        return self._detect(check_image(image))

    def _detect(self, rgb: np.ndarray) -> Detections:  # pragma: no cover - abstract
        raise NotImplementedError


class SlidingWindowDetector(Detector):
    """A crop classifier as a detector: sliding windows over an image pyramid, a score
    threshold, then non-maximum suppression.

    ``score_fn`` maps crops ``(K, 1, window, window)`` (grey, in [0, 1], as the LFW crops;
    ``(K, 3, ...)`` RGB with ``grey=False``) to face probabilities ``(K,)``. ``sizes``: the
    face sizes searched, in pixels of the input photo. Cost: one classifier call per
    window, :meth:`count_windows`; real detectors avoid most of them with a cascade
    (Viola-Jones, MTCNN) or with region proposals. ``voting=True`` replaces each box NMS
    keeps by the score-weighted mean of itself and the boxes overlapping it (:func:`box_voting`).
    A ``score_fn`` that returns NaN or inf for any window is refused naming the window (a
    broken classifier must not read as "no face").
    """

    name = "sliding window"

    def __init__(
        self,
        score_fn: Callable[[torch.Tensor], Any],
        *,
        window: int = 25,
        sizes: Sequence[float] = (64, 96, 144, 216),
        stride: float = 0.25,
        threshold: float = 0.5,
        nms_iou: float = 0.3,
        grey: bool = True,
        batch_size: int = 512,
        voting: bool = False,
    ):
        if not callable(score_fn):
            raise ValueError(
                f"score_fn must be callable (crops -> scores), got {type(score_fn).__name__}."
            )
        self.score_fn = score_fn
        self.window = check_int("window", window, minimum=2)
        self.sizes = tuple(check_positive("sizes", s) for s in sizes)
        if not self.sizes:
            raise ValueError("sizes must list at least one face size in pixels, got an empty list.")
        self.stride = check_positive("stride", stride)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold!r}.")
        self.threshold = float(threshold)
        if not 0 <= nms_iou <= 1:
            raise ValueError(f"nms_iou must lie in [0, 1], got {nms_iou!r}.")
        self.nms_iou = float(nms_iou)
        self.grey = bool(grey)
        self.voting = bool(voting)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)

    def windows(self, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """``(crops, boxes)`` of every window this detector scores on ``image``."""
        rgb = check_image(image)
        return pyramid_windows(
            to_grey(rgb) if self.grey else rgb, self.window, self.sizes, self.stride
        )

    def count_windows(self, image: Any) -> int:
        """How many classifier calls one ``detect(image)`` costs."""
        return len(self.windows(image)[1])

    def score_windows(self, image: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window's box and score, before the threshold and NMS."""
        crops, boxes = self.windows(image)
        batches = [self._score_batch(crops[i : i + self.batch_size])
                   for i in range(0, len(crops), self.batch_size)]  # fmt: skip
        scores = torch.cat(batches).reshape(-1) if batches else torch.zeros(0)
        if scores.shape[0] != len(boxes):
            raise ValueError(
                f"score_fn must return one score per crop ({len(boxes)}), got {scores.shape[0]}."
            )
        bad = ~torch.isfinite(scores)
        if bad.any():  # a broken classifier must not read as "no face"
            raise ValueError(
                f"score_fn returned NaN or inf for {int(bad.sum())} of {len(scores)} windows "
                f"(first: window {int(bad.nonzero()[0])}, box "
                f"{[round(v, 1) for v in boxes[int(bad.nonzero()[0])].tolist()]}); it must "
                "return finite face probabilities. Check the classifier on those crops."
            )
        return boxes, scores

    def _score_batch(self, crops: torch.Tensor) -> torch.Tensor:
        out = self.score_fn(crops)
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu()
        try:
            arr = None if out is None else np.asarray(out, dtype=np.float32)
        except (TypeError, ValueError):
            arr = None
        if arr is None or arr.ndim == 0:
            raise ValueError(
                f"score_fn must return {len(crops)} numbers (one face probability per crop), "
                f"got {type(out).__name__} {str(out)[:80]}."
            )
        return torch.as_tensor(arr)

    def _detect(self, rgb: np.ndarray) -> Detections:
        boxes, scores = self.score_windows(rgb)
        above = scores >= self.threshold
        boxes, scores = boxes[above], scores[above]
        keep = nms(boxes, scores, self.nms_iou)
        kept = box_voting(boxes, scores, keep, self.nms_iou) if self.voting else boxes[keep]
        return Detections.from_arrays(kept.float().numpy(), scores[keep].numpy())


class HaarDetector(Detector):
    """Viola and Jones (2001)'s Haar cascade, from the files OpenCV ships
    (``cv2.data.haarcascades``), run by ``cv2.CascadeClassifier.detectMultiScale3``.

    ``scale_factor``: the pyramid step; ``min_neighbors``: how many overlapping raw hits a
    face needs (OpenCV's grouping, its NMS). Scores are the cascade's last-stage weights.
    """

    name = "Haar cascade"

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size: int = 24,
    ):
        import cv2
        from cv2.data import haarcascades

        path = haarcascades + cascade
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise ValueError(f"cascade {cascade!r} not found or unreadable at {path}.")
        if not scale_factor > 1:
            raise ValueError(f"scale_factor must be > 1, got {scale_factor!r}.")
        self.scale_factor = float(scale_factor)
        self.min_neighbors = check_int("min_neighbors", min_neighbors, minimum=0)
        self.min_size = check_int("min_size", min_size, minimum=1)

    def _detect(self, rgb: np.ndarray) -> Detections:
        grey = np.clip(np.round(to_grey(rgb) * 255), 0, 255).astype(np.uint8)
        rects, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size), outputRejectLevels=True,
        )  # fmt: skip
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        boxes = np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1)  # (x, y, w, h) -> xyxy
        return Detections.from_arrays(boxes, np.asarray(weights, dtype=np.float32).reshape(-1))


class MTCNNDetector(Detector):
    """Zhang et al. (2016)'s MTCNN (proposal, refinement and output networks in a cascade),
    with the pretrained weights inside the ``facenet-pytorch`` wheel (:data:`MTCNN_INSTALL`).

    Scores are the output network's face probabilities.
    """

    name = "MTCNN"

    def __init__(self, *, min_face_size: int = 20, thresholds: Sequence[float] = (0.6, 0.7, 0.7),
                 device: str = "cpu"):  # fmt: skip
        try:
            from facenet_pytorch import MTCNN
        except ImportError as e:
            raise ImportError(
                f"MTCNNDetector needs the facenet-pytorch package and its weights: {MTCNN_INSTALL} "
                "(--no-deps: torch, torchvision and pillow are already installed)."
            ) from e
        self.min_face_size = check_int("min_face_size", min_face_size, minimum=1)
        self._mtcnn = MTCNN(keep_all=True, min_face_size=self.min_face_size, thresholds=list(thresholds),
                            device=device)  # fmt: skip

    def _detect(self, rgb: np.ndarray) -> Detections:
        u8 = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
        with torch.no_grad():
            boxes, probs = self._mtcnn.detect(u8)
        if boxes is None:
            return Detections.empty()
        h, w = rgb.shape[:2]
        boxes = np.asarray(boxes, dtype=np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)  # MTCNN may reach past the border
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
        return Detections.from_arrays(boxes, probs)
