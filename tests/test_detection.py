"""Boxes, NMS, pyramid windows and the three detectors (notebook 08a), against torchvision.ops,
hand-worked examples and known patterns."""

from __future__ import annotations

import builtins

import numpy as np
import pytest
import torch
import torchvision

from tlhelpers.detection import (
    CentreDetector,
    CentreHead,
    Detections,
    HaarDetector,
    MTCNNDetector,
    SlidingWindowDetector,
    box_iou,
    centre_loss,
    check_image,
    composite_faces,
    decode_centres,
    encode_centres,
    nms,
    pyramid_windows,
    sliding_windows,
    to_grey,
)
from tlhelpers.metrics import detection_counts, match_detections, precision_recall


def _random_boxes(n: int, seed: int, size: float = 100.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * size
    wh = torch.rand(n, 2, generator=g) * size / 2 + 1
    return torch.cat([xy, xy + wh], dim=1)


# ---------------------------------------------------------------- IoU and NMS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_box_iou_matches_torchvision(seed):
    a, b = _random_boxes(30, seed), _random_boxes(20, seed + 100)
    expected = torchvision.ops.box_iou(a.double(), b.double())
    assert torch.allclose(box_iou(a, b), expected, atol=1e-12)


def test_box_iou_hand_worked():
    # a 10x10 box and the same shifted by 5 in x: intersection 50, union 150
    iou = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    assert iou.tolist() == [[pytest.approx(1 / 3), 0.0, 1.0]]
    assert box_iou([[0, 0, 0, 0]], [[0, 0, 0, 0]]).item() == 0.0  # zero area: 0, not NaN
    assert box_iou(torch.zeros(0, 4), [[0, 0, 1, 1]]).shape == (0, 1)


def test_box_iou_refuses_bad_boxes():
    with pytest.raises(ValueError, match="boxes1 must have shape"):
        box_iou([[0, 0, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="x2 >= x1"):
        box_iou([[5, 0, 1, 1]], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="boxes2 contains NaN"):
        box_iou([[0, 0, 1, 1]], [[0, 0, float("nan"), 1]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("thr", [0.1, 0.3, 0.5, 0.7])
def test_nms_matches_torchvision(seed, thr):
    boxes = _random_boxes(60, seed)
    scores = torch.rand(60, generator=torch.Generator().manual_seed(seed + 7))  # distinct
    expected = torchvision.ops.nms(boxes, scores, thr)
    assert nms(boxes, scores, thr).tolist() == expected.tolist()


def test_nms_edge_cases():
    assert nms(torch.zeros(0, 4), torch.zeros(0)).tolist() == []
    with pytest.raises(ValueError, match="one value per box"):
        nms([[0, 0, 1, 1]], [0.5, 0.6])
    with pytest.raises(ValueError, match="iou_threshold must lie in"):
        nms([[0, 0, 1, 1]], [0.5], iou_threshold=1.5)


# ---------------------------------------------------------------- windows


def test_sliding_windows_cover_the_image():
    b = sliding_windows(10, 12, window=4, stride=3)
    assert b[:, 0].unique().tolist() == [0, 3, 6, 8]  # 8: shifted in to reach the right edge
    assert b[:, 1].unique().tolist() == [0, 3, 6]
    assert ((b[:, 2] - b[:, 0]) == 4).all() and b[:, 2].max() == 12 and b[:, 3].max() == 10
    assert len(sliding_windows(3, 10, window=4, stride=1)) == 0  # window larger than the image


@pytest.mark.parametrize("size", [20, 40])
def test_pyramid_windows_map_back_to_original_coordinates(size):
    # a bright square of side `size` at a known place: the window that sees it whole, at the
    # pyramid level where `size` pixels become the 10-pixel window, must map back onto it
    img = np.zeros((120, 160), dtype=np.float32)
    x0, y0 = 60, 40
    img[y0 : y0 + size, x0 : x0 + size] = 1.0
    crops, boxes = pyramid_windows(img, window=10, sizes=[size, 80], stride=0.5)
    assert crops.shape[1:] == (1, 10, 10) and len(crops) == len(boxes)
    best = crops.mean(dim=(1, 2, 3)).argmax()
    assert boxes[best].tolist() == pytest.approx([x0, y0, x0 + size, y0 + size], abs=1e-4)
    assert (
        crops[best][..., 1:-1, 1:-1].min() > 0.99
    )  # the square itself (edges blurred by antialiasing)
    # every box lies inside the image, and each level's boxes have side `size` or 80
    assert (
        (boxes[:, :2] >= 0).all()
        and (boxes[:, 2] <= 160 + 1e-4).all()
        and (boxes[:, 3] <= 120 + 1e-4).all()
    )
    sides = (boxes[:, 2] - boxes[:, 0]).unique()
    assert sides.tolist() == pytest.approx(sorted({float(size), 80.0}), abs=0.5)


def test_pyramid_windows_non_square_scale():
    # 30x45 image at size 15: level 20x30 (exact), boxes scaled by 1.5 in both axes
    crops, boxes = pyramid_windows(
        np.ones((30, 45, 3), dtype=np.float32), window=10, sizes=[15], stride=1.0
    )
    assert crops.shape == (6, 3, 10, 10)
    assert boxes[-1].tolist() == pytest.approx([30, 15, 45, 30])


# ---------------------------------------------------------------- images


def test_check_image_accepts_and_converts():
    u8 = np.full((20, 30, 3), 255, dtype=np.uint8)
    out = check_image(u8)
    assert out.dtype == np.float32 and out.shape == (20, 30, 3) and out.max() == 1.0
    grey = check_image(torch.rand(20, 20))
    assert grey.shape == (20, 20, 3) and np.allclose(grey[..., 0], grey[..., 2])
    assert check_image(np.zeros((20, 20, 4))).shape == (20, 20, 3)  # alpha dropped
    assert to_grey(np.ones((2, 2, 3), dtype=np.float32)) == pytest.approx(np.ones((2, 2)), abs=1e-6)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((1, 1, 3), dtype=np.uint8), r"image must be at least 16x16 pixels, got 1x1"),
        (
            np.zeros((20, 20), dtype=np.int64),
            r"image must have dtype uint8 or a floating dtype, got int64",
        ),
        (np.zeros((20, 20), dtype=bool), r"got bool"),
        (np.full((20, 20), np.nan), r"image contains NaN or inf"),
        (np.full((20, 20), np.inf), r"image contains NaN or inf"),
        (np.full((20, 20), 2.0), r"must lie in \[0, 1\], got values in \[2, 2\]"),
        (np.zeros((20, 20, 2)), r"C in \(1, 3, 4\) channels .* got shape \(20, 20, 2\)"),
        (np.zeros((3, 20, 20, 1)), r"shape \(H, W\) or \(H, W, C\), got shape \(3, 20, 20, 1\)"),
        ([[0.0] * 20] * 20, r"numpy array or torch tensor .* got list"),
    ],
)
def test_check_image_refuses_malformed(image, message):
    with pytest.raises(ValueError, match=message):
        check_image(image)


# ---------------------------------------------------------------- detections and matching


def test_detections_container():
    d = Detections.from_arrays([[0, 0, 1, 1], [2, 2, 3, 3]], [0.2, 0.9])
    assert d.scores.tolist() == pytest.approx([0.9, 0.2]) and d.boxes[0].tolist() == [2, 2, 3, 3]
    assert len(Detections.empty()) == 0 and Detections.empty().boxes.shape == (0, 4)
    assert len(Detections.from_arrays(None, None)) == 0
    with pytest.raises(ValueError, match="scores must have shape"):
        Detections(torch.zeros(2, 4), torch.zeros(3))


def test_match_detections_hand_worked():
    truth = [[0, 0, 10, 10], [20, 0, 30, 10]]
    boxes = [
        [0, 0, 10, 10],  # 0.5: on face 1, IoU 1
        [1, 0, 11, 10],  # 0.9: on face 1 too, IoU 9/11, higher score: it takes face 1
        [20, 0, 26, 10],  # 0.7: face 2, IoU 0.6
        [50, 50, 60, 60],  # 0.8: nothing there
    ]
    scores = [0.5, 0.9, 0.7, 0.8]
    assert match_detections(boxes, scores, truth).tolist() == [False, True, True, False]
    # at IoU >= 0.7 the box on face 2 (IoU 0.6) no longer counts
    assert match_detections(boxes, scores, truth, iou_threshold=0.7).tolist() == [
        False,
        True,
        False,
        False,
    ]
    c = detection_counts(boxes, scores, truth)
    assert (c["tp"], c["fp"], c["fn"]) == (2, 2, 0)
    assert c["precision"] == 0.5 and c["recall"] == 1.0


def test_match_takes_the_best_free_truth():
    # one detection overlapping two faces: it takes the one with the higher IoU
    truth = [[0, 0, 10, 10], [4, 0, 14, 10]]
    assert match_detections([[3, 0, 13, 10]], [1.0], truth).tolist() == [True]
    c = detection_counts([[3, 0, 13, 10]], [1.0], truth)
    assert (c["tp"], c["fp"], c["fn"]) == (1, 0, 1)


def test_counts_without_faces_or_detections():
    none = detection_counts(torch.zeros(0, 4), torch.zeros(0), [[0, 0, 10, 10]])
    assert (none["tp"], none["fp"], none["fn"], none["recall"]) == (0, 0, 1, 0.0)
    assert np.isnan(none["precision"])  # no detection: undefined, not 0 or 1
    no_face = detection_counts([[0, 0, 5, 5]], [0.9], torch.zeros(0, 4))
    assert (no_face["fp"], no_face["precision"]) == (1, 0.0) and np.isnan(no_face["recall"])
    assert precision_recall(3, 1, 2) == {"precision": 0.75, "recall": 0.6}
    with pytest.raises(ValueError, match="fp must be >= 0"):
        precision_recall(1, -1, 0)


# ---------------------------------------------------------------- detectors


def _blob_score(crops: torch.Tensor) -> torch.Tensor:
    """A toy "classifier": cosine similarity with a centred Gaussian of sigma window / 4."""
    w = crops.shape[-1]
    r = torch.arange(w, dtype=torch.float32) - (w - 1) / 2
    template = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (w / 4) ** 2)).flatten()
    flat = crops.flatten(1)
    return (flat @ template) / (flat.norm(dim=1) * template.norm()).clamp(min=1e-12)


def test_sliding_window_detector_finds_a_known_blob():
    # a Gaussian blob of sigma 8 centred at (64, 48): the window of side 4 * sigma = 32
    # centred on it, box (48, 32, 80, 64), matches the template best; NMS keeps one box
    yy, xx = np.mgrid[0:100, 0:120].astype(np.float32)
    img = np.exp(-((xx + 0.5 - 64) ** 2 + (yy + 0.5 - 48) ** 2) / (2 * 8.0**2)).astype(np.float32)
    det = SlidingWindowDetector(
        _blob_score, window=8, sizes=[16, 32, 64], stride=0.25, threshold=0.95
    )
    found = det.detect(img)
    assert len(found) == 1
    assert found.boxes[0].tolist() == pytest.approx([48, 32, 80, 64], abs=1e-4)
    boxes, scores = det.score_windows(img)
    assert det.count_windows(img) == len(boxes) == len(scores) > 1
    assert (
        scores >= 0.95
    ).sum() == 1  # the threshold alone already leaves one: NMS had nothing to do
    loose = SlidingWindowDetector(
        _blob_score, window=8, sizes=[32], stride=0.25, threshold=0.5, nms_iou=0.3
    )
    kept = loose.detect(img)
    assert (
        len(kept) == 1 < (loose.score_windows(img)[1] >= 0.5).sum()
    )  # NMS removed the overlapping ones
    assert kept.boxes[0].tolist() == pytest.approx([48, 32, 80, 64], abs=1e-4)


def test_sliding_window_detector_empty_image_gives_empty_detections():
    det = SlidingWindowDetector(_blob_score, window=8, sizes=[16], threshold=0.5)
    found = det.detect(np.zeros((40, 40), dtype=np.float32))
    assert isinstance(found, Detections) and found.boxes.shape == (0, 4) and len(found.scores) == 0


def test_sliding_window_detector_checks_its_arguments():
    with pytest.raises(ValueError, match="threshold must lie in"):
        SlidingWindowDetector(_blob_score, threshold=2)
    with pytest.raises(ValueError, match="score_fn must be callable"):
        SlidingWindowDetector("not a function")
    with pytest.raises(ValueError, match="sizes must be a finite number > 0"):
        SlidingWindowDetector(_blob_score, sizes=[16, -1])
    bad = SlidingWindowDetector(lambda c: torch.zeros(3), window=8, sizes=[16])
    with pytest.raises(ValueError, match="score_fn must return one score per crop"):
        bad.detect(np.zeros((40, 40), dtype=np.float32))
    with pytest.raises(ValueError, match="image must be at least"):
        bad.detect(np.zeros((1, 1), dtype=np.float32))


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut

    return astronaut()


def test_haar_finds_the_astronaut(astronaut):
    found = HaarDetector().detect(astronaut)
    # verified by hand: detectMultiScale(grey, 1.1, 5) finds her face at x=177, y=66, 95x95
    assert len(found) == 1
    assert box_iou(found.boxes, [[177, 66, 272, 161]]).item() > 0.8
    assert len(HaarDetector().detect(np.zeros((64, 64), dtype=np.uint8))) == 0
    with pytest.raises(ValueError, match="cascade 'nope.xml' not found"):
        HaarDetector("nope.xml")


def test_mtcnn_loads_and_runs(astronaut):
    pytest.importorskip("facenet_pytorch")
    det = MTCNNDetector()
    found = det.detect(astronaut)
    assert len(found) >= 1 and found.scores[0] > 0.9
    # its best box is on her face (hand-marked box in data/faces/boxes.json)
    assert box_iou(found.boxes[:1], [[177, 72, 272, 176]]).item() > 0.5
    empty = det.detect(np.full((80, 80, 3), 0.5, dtype=np.float32))
    assert empty.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="NaN"):
        det.detect(np.full((80, 80, 3), np.nan, dtype=np.float32))


def test_mtcnn_missing_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("facenet_pytorch"):
            raise ImportError("No module named 'facenet_pytorch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install --no-deps facenet-pytorch"):
        MTCNNDetector()


def test_face_photos_load_offline_with_their_boxes():
    from tlhelpers.data import face_photos

    photos = face_photos()
    assert set(photos) == {"astronaut", "camera", "grace_hopper", "chelsea", "coffee", "china"}
    with_faces = {n for n, p in photos.items() if len(p.faces)}
    assert with_faces == {"astronaut", "camera", "grace_hopper"}
    for name, p in photos.items():
        assert p.image.dtype == np.uint8 and check_image(p.image).shape[:2] == p.image.shape[:2]
        assert {"loader", "source", "licence"} <= set(p.info), name
        h, w = p.image.shape[:2]
        assert (
            (p.faces[:, 2] <= w) & (p.faces[:, 3] <= h) & (p.faces[:, :2] >= 0).all(dim=1)
        ).all(), name
    assert list(face_photos(["coffee", "astronaut"])) == ["coffee", "astronaut"]
    with pytest.raises(ValueError, match="Unknown photo names='lena'"):
        face_photos(["lena"])


def test_show_detections_draws_every_box():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from tlhelpers.plots import show_detections

    dets = {
        "a": Detections.from_arrays([[1, 1, 5, 5], [6, 6, 9, 9]], [0.9, 0.8]),
        "b": Detections.empty(),
    }
    ax = show_detections(np.zeros((20, 20)), dets, truth=[[2, 2, 6, 6]])
    rects = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(rects) == 3 and rects[0].get_linestyle() == "--"  # the truth first, dashed
    assert [t.get_text() for t in ax.legend().get_texts()] == ["truth (1)", "a (2)", "b (0)"]
    plt.close("all")


def test_show_detections_highlights_each_detectors_top_box_and_keeps_the_truth_on_top():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    from tlhelpers.plots import show_detections

    # the top-scoring box is the second one: drawn thick and opaque, the others thin
    dets = {
        "a": Detections.from_arrays([[1, 1, 5, 5], [6, 6, 9, 9], [0, 0, 3, 3]], [0.5, 0.9, 0.7])
    }
    ax = show_detections(np.zeros((20, 20)), dets, truth=[[2, 2, 6, 6]])
    truth, *boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    top = next(b for b in boxes if tuple(b.get_xy()) == (6, 6))
    others = [b for b in boxes if b is not top]
    assert len(others) == 2 and all(top.get_linewidth() > b.get_linewidth() for b in others)
    assert top.get_alpha() in (None, 1) and all(b.get_alpha() < 1 for b in others)
    assert truth.get_zorder() > max(b.get_zorder() for b in boxes)  # never hidden by detections
    plt.close("all")


def test_box_voting_hand_worked():
    from tlhelpers.detection import box_voting

    boxes = [[0, 0, 10, 10], [2, 0, 12, 10], [50, 50, 60, 60]]
    # box 1 overlaps box 0 (IoU 8/12 > 0.3) and votes with weight 3; box 2 is far away
    out = box_voting(boxes, [1.0, 3.0, 0.9], keep=[0, 2], iou_threshold=0.3)
    assert out.tolist() == [pytest.approx([1.5, 0, 11.5, 10]), pytest.approx([50, 50, 60, 60])]
    assert box_voting(boxes, [1.0, 3.0, 0.9], keep=[]).shape == (0, 4)
    with pytest.raises(ValueError, match="scores must be >= 0"):
        box_voting(boxes, [1.0, -3.0, 0.9], keep=[0])


def test_sliding_window_detector_with_voting_keeps_one_box_per_object():
    yy, xx = np.mgrid[0:100, 0:120].astype(np.float32)
    img = np.exp(-((xx + 0.5 - 64) ** 2 + (yy + 0.5 - 48) ** 2) / (2 * 8.0**2)).astype(np.float32)
    det = SlidingWindowDetector(
        _blob_score, window=8, sizes=[32], stride=0.25, threshold=0.5, voting=True
    )
    found = det.detect(img)
    # the votes around the blob are symmetric about its centre: the box stays on it
    assert len(found) == 1 and found.boxes[0].tolist() == pytest.approx([48, 32, 80, 64], abs=0.5)


# ---------------------------------------------------------------- the dense (CenterNet-style) head


def test_encode_then_decode_gives_back_the_boxes():
    boxes = torch.tensor(
        [[10.0, 20.0, 50.0, 70.0], [80.0, 8.0, 150.0, 90.0], [3.0, 100.0, 21.0, 120.0]]
    )
    heat, reg, mask = encode_centres(boxes, 128, 160, stride=16)
    assert heat.shape == (1, 8, 10) and reg.shape == (4, 8, 10) and mask.sum() == 3
    assert heat.max() == 1 and heat.min() >= 0 and int((heat == 1).sum()) == 3
    # centre cell of box 0: centre (30, 45) px -> cell (row 2, col 1), offset (30/16 - 1.5, 45/16 - 2.5)
    assert heat[0, 2, 1] == 1 and reg[:, 2, 1].tolist() == pytest.approx(
        [np.log(40 / 16), np.log(50 / 16), 30 / 16 - 1.5, 45 / 16 - 2.5], abs=1e-6
    )
    found = decode_centres(heat, reg, 16, threshold=0.99, nms_iou=None)
    assert len(found) == 3 and torch.all(found.scores == 1)
    order = torch.argsort(found.boxes[:, 0])
    assert torch.allclose(found.boxes[order], boxes[torch.argsort(boxes[:, 0])], atol=1e-4)
    assert (
        len(decode_centres(torch.zeros(1, 8, 10), reg, 16)) == 0
    )  # nothing above threshold: empty


def test_dense_head_on_a_synthetic_image_with_known_boxes():
    faces = torch.rand(4, 1, 25, 25, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.5
    images, boxes = composite_faces(
        faces, [torch.zeros(100, 140)], 6, size=96, face_sizes=(20, 40), seed=1
    )
    assert images.shape == (6, 1, 96, 96) and len(boxes) == 6 and sum(len(b) for b in boxes) > 0
    for img, b in zip(images, boxes, strict=True):
        for x1, y1, x2, y2 in b.int().tolist():  # pasted faces are bright, the background is black
            assert img[0, y1:y2, x1:x2].min() > 0.4 and 20 <= x2 - x1 <= 40
        outside = torch.ones(96, 96, dtype=torch.bool)
        for x1, y1, x2, y2 in b.int().tolist():
            outside[y1:y2, x1:x2] = False
        assert img[0][outside].max() == 0
    # a head that predicts the encoded targets of the resized image detects the known boxes
    k = int(np.argmax([len(b) for b in boxes]))
    heat, reg, _ = encode_centres(
        boxes[k] * 2, 192, 192, stride=16
    )  # the detector resizes 96 -> 192

    def head(feats):
        return torch.logit(heat.clamp(1e-4, 1 - 1e-4))[None], reg[None]

    rgb = images[k, 0, :, :, None].expand(-1, -1, 3).numpy()
    det = CentreDetector(lambda x: x, head, 16, side=192, threshold=0.5)
    found = det.detect(rgb)
    assert len(found) == len(boxes[k])
    assert box_iou(found.boxes, boxes[k]).max(dim=1).values.min() > 0.99


def test_centre_loss_is_small_at_the_targets_and_larger_elsewhere():
    heat, reg, mask = encode_centres([[10, 10, 42, 42]], 64, 64, stride=8)
    perfect = torch.where(heat == 1, torch.tensor(12.0), torch.tensor(-12.0))[None]
    good = centre_loss(perfect, reg[None], heat[None], reg[None], mask[None])
    assert 0 <= float(good) < 1e-3
    bad = centre_loss(-perfect, reg[None] + 1, heat[None], reg[None], mask[None])
    assert float(bad) > 10
    head = CentreHead(7)
    logits, out = head(torch.zeros(2, 7, 8, 8))
    assert logits.shape == (2, 1, 8, 8) and out.shape == (2, 4, 8, 8)
    assert torch.sigmoid(logits).mean().item() == pytest.approx(0.1, abs=0.02)  # about the prior


def test_dense_helpers_refuse_bad_arguments():
    with pytest.raises(ValueError, match="positive width and height"):
        encode_centres([[10, 10, 10, 20]], 64, 64, stride=8)
    with pytest.raises(ValueError, match=r"heat must be \(1, H, W\)"):
        decode_centres(torch.zeros(8, 8), torch.zeros(4, 8, 8), 8)
    with pytest.raises(ValueError, match="face_sizes must satisfy"):
        composite_faces(
            torch.zeros(1, 1, 5, 5), [torch.zeros(64, 64)], 1, size=32, face_sizes=(8, 40)
        )
    with pytest.raises(ValueError, match="threshold must lie in"):
        CentreDetector(lambda x: x, CentreHead(3), 8, threshold=2)
