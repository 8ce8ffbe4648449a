"""From a classifier to a detector: boxes, IoU, non-maximum suppression, an image pyramid with
sliding windows, and one interface for three face detectors.

Every detector here has ``detect(image) -> Detections``: boxes ``(N, 4)`` as
``(x1, y1, x2, y2)`` in pixels of the image it was given, and one score per box.

- :class:`SlidingWindowDetector`: any crop classifier turned into a detector (Rowley, Baluja
  and Kanade, 1998; Sermanet et al., 2014, "OverFeat"): score every window of an image
  pyramid, keep those above a threshold, suppress overlapping ones.
- :class:`HaarDetector`: Viola and Jones (2001)'s boosted cascade of Haar features, the
  cascade files that ship with OpenCV.
- :class:`CentreDetector`: how detectors transfer a backbone: one pass over the whole image,
  a small dense head on its feature map predicting a face-centre heatmap and the box size at
  each cell (Zhou et al., 2019, "Objects as Points"; :func:`encode_centres`,
  :func:`decode_centres`, :func:`centre_loss`), trained on :func:`composite_faces`.
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
    "centre_loss",
    "CentreDetector",
    "CentreHead",
    "check_image",
    "composite_faces",
    "decode_centres",
    "Detections",
    "Detector",
    "GREY_WEIGHTS",
    "HaarDetector",
    "IMAGE_CHANNELS",
    "MIN_IMAGE_SIDE",
    "MTCNN_INSTALL",
    "MTCNNDetector",
    "encode_centres",
    "FOCAL_ALPHA",
    "FOCAL_BETA",
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


# ---------------------------------------------------------------- a dense head (CenterNet-style)
#: CenterNet's focal-loss exponents (Law and Deng, 2018; Zhou et al., 2019).
FOCAL_ALPHA, FOCAL_BETA = 2.0, 4.0


def encode_centres(
    boxes: Any, height: int, width: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The targets of a centre-heatmap detector for one image (Zhou et al., 2019, CenterNet).

    The image is a grid of ``stride``-pixel cells. A box with centre :math:`(c_x, c_y)` and
    size :math:`(w, h)` puts a Gaussian peak on the heatmap, exactly 1 at the cell
    :math:`(\lfloor c_y / s \rfloor, \lfloor c_x / s \rfloor)` holding its centre, with
    :math:`\sigma = \max(w, h) / (6 s)` cells (at least 0.5); where peaks overlap the larger
    value stays. At that cell the regression target is
    :math:`(\log(w / s), \log(h / s), c_x / s - j - \tfrac12, c_y / s - i - \tfrac12)`: the size
    in cells (log) and the centre's offset from the cell centre. Returns ``heat (1, H', W')``,
    ``reg (4, H', W')`` and ``mask (1, H', W')`` (1 at the peak cells), with
    :math:`H' = \lceil H / s \rceil`. :func:`decode_centres` inverts it.
    """
    boxes = _boxes("boxes", boxes)
    check_int("height", height, minimum=1), check_int("width", width, minimum=1)
    s = check_int("stride", stride, minimum=1)
    gh, gw = -(-height // s), -(-width // s)
    heat, reg, mask = torch.zeros(1, gh, gw), torch.zeros(4, gh, gw), torch.zeros(1, gh, gw)
    ys, xs = torch.meshgrid(torch.arange(gh) + 0.5, torch.arange(gw) + 0.5, indexing="ij")
    for x1, y1, x2, y2 in boxes.tolist():
        w, h = x2 - x1, y2 - y1
        if w <= 0 or h <= 0:
            raise ValueError(f"boxes must have positive width and height, got {[x1, y1, x2, y2]}.")
        cx, cy = (x1 + x2) / 2 / s, (y1 + y2) / 2 / s  # in cells
        i, j = min(int(cy), gh - 1), min(int(cx), gw - 1)
        sigma = max(max(w, h) / (6 * s), 0.5)
        g = torch.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma**2))
        heat[0] = torch.maximum(heat[0], g)
        heat[0, i, j] = 1.0
        reg[:, i, j] = torch.tensor([np.log(w / s), np.log(h / s), cx - j - 0.5, cy - i - 0.5])
        mask[0, i, j] = 1.0
    return heat, reg, mask


def decode_centres(
    heat: torch.Tensor,
    reg: torch.Tensor,
    stride: int,
    *,
    threshold: float = 0.3,
    nms_iou: float | None = 0.3,
    max_boxes: int = 100,
) -> Detections:
    """Boxes from a centre heatmap ``(1, H', W')`` (probabilities) and its regression map
    ``(4, H', W')`` (:func:`encode_centres`'s layout): every cell that is the maximum of its
    3x3 neighbourhood and at least ``threshold`` is a centre (CenterNet's peak picking, which
    replaces most of NMS); its box comes from the size and offset regressed there. The
    ``max_boxes`` best, then box NMS at ``nms_iou`` (``None``: none). Pixels of the input."""
    if heat.ndim != 3 or heat.shape[0] != 1 or reg.shape != (4, *heat.shape[1:]):
        raise ValueError(
            f"heat must be (1, H, W) and reg (4, H, W), got {tuple(heat.shape)} and {tuple(reg.shape)}."
        )
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold!r}.")
    s = check_int("stride", stride, minimum=1)
    peak = heat == F.max_pool2d(heat[None], 3, stride=1, padding=1)[0]
    _, i, j = torch.nonzero(peak & (heat >= threshold), as_tuple=True)
    scores = heat[0, i, j]
    order = scores.argsort(descending=True)[:max_boxes]
    i, j, scores = i[order], j[order], scores[order]
    w, h = reg[0, i, j].exp() * s, reg[1, i, j].exp() * s
    cx, cy = (j + 0.5 + reg[2, i, j]) * s, (i + 0.5 + reg[3, i, j]) * s
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    if nms_iou is not None and len(boxes):
        keep = nms(boxes, scores, nms_iou)
        boxes, scores = boxes[keep], scores[keep]
    return Detections.from_arrays(boxes.detach(), scores.detach())


class CentreHead(torch.nn.Module):
    """A small dense head on a backbone's feature map: a 3x3 convolution and ReLU, then a
    1x1 convolution to 5 maps per cell, the face-centre logit and :func:`encode_centres`'s
    four regression targets. The logit's bias starts at :math:`\\log(0.1/0.9)`, a prior of
    0.1 (Lin et al., 2017), so early training is not swamped by the many empty cells."""

    def __init__(self, in_channels: int, hidden: int = 64):
        super().__init__()
        out = torch.nn.Conv2d(check_int("hidden", hidden, minimum=1), 5, 1)
        with torch.no_grad():
            bias = out.bias
            assert bias is not None  # Conv2d(bias=True)
            bias[0] = float(np.log(0.1 / 0.9))
        self.body = torch.nn.Sequential(
            torch.nn.Conv2d(check_int("in_channels", in_channels, minimum=1), hidden, 3, padding=1),
            torch.nn.ReLU(),
            out,
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(N, C, H', W')`` -> centre logits ``(N, 1, H', W')``, regression ``(N, 4, H', W')``."""
        out = self.body(features)
        return out[:, :1], out[:, 1:]


def centre_loss(
    logits: torch.Tensor,
    reg: torch.Tensor,
    heat: torch.Tensor,
    reg_target: torch.Tensor,
    mask: torch.Tensor,
) -> torch.Tensor:
    r"""CenterNet's loss: the penalty-reduced focal loss on the heatmap plus L1 on the
    regression at the centre cells, each averaged over the number of centres :math:`N`:

    .. math:: L = -\frac1N \sum_{xy} \begin{cases} (1-p)^\alpha \log p & y = 1 \\
              (1-y)^\beta p^\alpha \log(1-p) & \text{otherwise} \end{cases}
              + \frac1N \sum_{\text{centres}} \lVert r - \hat r \rVert_1

    with :math:`\alpha = 2, \beta = 4` (cells near a centre are penalised less for firing).
    """
    p = torch.sigmoid(logits).clamp(1e-6, 1 - 1e-6)
    pos = heat.eq(1).float()
    n = pos.sum().clamp(min=1)
    focal = -(pos * (1 - p) ** FOCAL_ALPHA * torch.log(p)
              + (1 - pos) * (1 - heat) ** FOCAL_BETA * p**FOCAL_ALPHA * torch.log(1 - p)).sum()  # fmt: skip
    return (focal + (mask * (reg - reg_target).abs()).sum()) / n


class CentreDetector(Detector):
    """A dense detector: a frozen (or fine-tuned) backbone's feature map and a
    :class:`CentreHead`, decoded by :func:`decode_centres`.

    ``features`` maps images ``(1, 3, H, W)`` in [0, 1] to a feature map of stride
    ``stride``; the image is turned grey (as the LFW crops) when ``grey``, resized so that its
    longer side is ``side`` pixels, and the boxes are mapped back to the input's pixels.
    One pass of the backbone per image, whatever the number of faces.
    """

    name = "dense head"

    def __init__(
        self,
        features: Callable[[torch.Tensor], torch.Tensor],
        head: CentreHead,
        stride: int,
        *,
        side: int = 256,
        threshold: float = 0.3,
        nms_iou: float = 0.3,
        grey: bool = True,
    ):
        if not callable(features):
            raise ValueError(
                f"features must be callable (images -> feature map), got {type(features).__name__}."
            )
        self.features, self.head = features, head
        self.stride = check_int("stride", stride, minimum=1)
        self.side = check_int("side", side, minimum=stride)
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must lie in [0, 1] (a probability), got {threshold!r}.")
        if not 0 <= nms_iou <= 1:
            raise ValueError(f"nms_iou must lie in [0, 1], got {nms_iou!r}.")
        self.threshold, self.nms_iou, self.grey = float(threshold), float(nms_iou), bool(grey)

    def _detect(self, rgb: np.ndarray) -> Detections:
        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float()
        if self.grey:
            x = (
                (x * torch.tensor(GREY_WEIGHTS).view(1, 3, 1, 1))
                .sum(1, keepdim=True)
                .expand(-1, 3, -1, -1)
            )
        scale = self.side / max(h, w)
        size = (max(self.stride, round(h * scale)), max(self.stride, round(w * scale)))
        x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        with torch.no_grad():
            logits, reg = self.head(self.features(x))
        found = decode_centres(torch.sigmoid(logits[0]), reg[0], self.stride,
                               threshold=self.threshold, nms_iou=self.nms_iou)  # fmt: skip
        boxes = found.boxes / torch.tensor([size[1] / w, size[0] / h, size[1] / w, size[0] / h])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clamp(0, w)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clamp(0, h)
        return Detections.from_arrays(boxes, found.scores)


def composite_faces(
    faces: torch.Tensor,
    backgrounds: Sequence[torch.Tensor],
    n: int,
    *,
    size: int = 128,
    face_sizes: tuple[int, int] = (24, 64),
    max_faces: int = 3,
    seed: int = 0,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Training images for a detector made from face crops and face-free photos: ``n`` grey
    images ``(n, 1, size, size)`` and each image's face boxes ``(k, 4)``.

    Each image is a random ``size`` x ``size`` window of a random background (grey ``(H, W)``
    in [0, 1], resized up when smaller) with 0 to ``max_faces`` faces pasted at random
    places, each a random crop of ``faces`` ``(F, 1, h, w)`` resized to a side drawn from
    ``face_sizes``; a face overlapping an earlier one by IoU > 0.1 is not pasted. The box of a
    pasted face is the whole pasted crop. Seeded.
    """
    check_int("n", n, minimum=1), check_int("size", size, minimum=8)
    lo, hi = face_sizes
    if not 1 <= lo <= hi <= size:
        raise ValueError(
            f"face_sizes must satisfy 1 <= low <= high <= size={size}, got {face_sizes}."
        )
    if not backgrounds:
        raise ValueError("backgrounds must hold at least one grey image, got none.")
    rng = np.random.default_rng(seed)
    images, all_boxes = torch.zeros(n, 1, size, size), []
    for k in range(n):
        bg = backgrounds[int(rng.integers(len(backgrounds)))]
        if min(bg.shape) < size:
            bg = F.interpolate(bg[None, None], scale_factor=size / min(bg.shape), mode="bilinear")[
                0, 0
            ]
        top, left = (
            int(rng.integers(bg.shape[0] - size + 1)),
            int(rng.integers(bg.shape[1] - size + 1)),
        )
        images[k, 0] = bg[top : top + size, left : left + size]
        boxes: list[list[float]] = []
        for _ in range(int(rng.integers(max_faces + 1))):
            side = int(rng.integers(lo, hi + 1))
            x, y = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
            box = [float(x), float(y), float(x + side), float(y + side)]
            if boxes and float(box_iou([box], boxes).max()) > 0.1:
                continue
            face = faces[int(rng.integers(len(faces)))][None]
            images[k, :, y : y + side, x : x + side] = F.interpolate(
                face, size=(side, side), mode="bilinear", align_corners=False
            )[0]
            boxes.append(box)
        all_boxes.append(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    return images.clamp_(0, 1), all_boxes
