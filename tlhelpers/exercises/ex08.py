"""Exercises of notebooks 08a/08b (faces): IoU, non-maximum suppression, matching detections
to hand-marked boxes, and a verification challenge on unseen identities.

``from tlhelpers.exercises import ex08``; ``ex08.iou.check(box_iou)``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.ops import box_iou as _tv_box_iou
from torchvision.ops import nms as _tv_nms

from ..metrics import match_detections as _match_detections
from ._core import (
    Exercise,
    Wrong,
    call_student,
    close,
    diagnose,
    number,
    off_by,
    tensor,
    worst_entry,
)

__all__ = ["iou", "nms", "match", "verification", "challenge", "challenge_data"]


def _random_boxes(seed: int, n: int, spread: float = 100.0) -> torch.Tensor:
    """``n`` xyxy boxes, 10 to 40 pixels wide, in a ``spread``-pixel square (float32)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * spread
    return torch.cat([xy, xy + 10 + 30 * torch.rand(n, 2, generator=g)], dim=1)


def _with_context(err: Wrong, case: str) -> Wrong:
    return Wrong(f"{err} (case: {case})")


# ---------------------------------------------------------------------------- 1. IoU


def _iou_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    worked = (
        "the worked example",
        torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 40.0]]),
        torch.tensor([[5.0, 5.0, 15.0, 15.0], [0.0, 0.0, 10.0, 10.0], [40.0, 0.0, 50.0, 5.0]]),
    )
    if hidden:
        return [
            ("8 x 5 random boxes", _random_boxes(31, 8), _random_boxes(32, 5)),
            ("1 x 6 random boxes", _random_boxes(33, 1, 30.0), _random_boxes(34, 6, 30.0)),
        ]
    return [worked, ("6 x 4 random boxes", _random_boxes(1, 6, 60.0), _random_boxes(2, 4, 60.0))]


def _iou_variants(a: torch.Tensor, b: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    a, b = a.double(), b.double()
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    raw = (rb - lt).prod(2)  # no clamp: two negative sides give a positive "overlap"
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    area1 = lambda x: (x[:, 2] - x[:, 0] + 1) * (x[:, 3] - x[:, 1] + 1)  # noqa: E731
    inter1 = (rb - lt + 1).clamp(min=0).prod(2)
    sa, sb = area(a)[:, None], area(b)[None, :]
    return [
        (raw / (sa + sb - raw),
         "boxes that do not overlap must get IoU 0: clamp the intersection's width and height "
         "at 0 before multiplying (two negative sides multiply to a positive area)."),
        (inter / (sa + sb),
         "the union counts the intersection twice: |A u B| = |A| + |B| - |A n B|."),
        (inter / torch.minimum(sa, sb),
         "you divided by the smaller area (intersection over minimum); IoU divides by the union."),
        (inter, "you returned the intersection's area; divide it by the union's."),
        (inter1 / (area1(a)[:, None] + area1(b)[None, :] - inter1),
         "you added 1 pixel to every width and height (an old VOC convention); here boxes are "
         "continuous: width = x2 - x1."),
    ]  # fmt: skip


def _check_iou(fn, hidden: bool) -> str:
    for case, a, b in _iou_cases(hidden):
        saved = (a.clone(), b.clone())
        try:
            out = call_student(fn, a, b, name="box_iou")
        except Wrong as err:
            raise _with_context(err, case) from None
        if out is None:
            raise Wrong("`box_iou` returned None: did you forget `return`?")
        n, m = len(a), len(b)
        if isinstance(out, torch.Tensor) and tuple(out.shape) == (m, n) and n != m:
            raise Wrong(
                f"the result has shape {(m, n)}, transposed: row i is boxes1[i], column j is "
                f"boxes2[j], so it must have shape {(n, m)} ({case})."
            )
        out = tensor(out, "the IoU matrix", shape=(n, m), allow_numpy=True)
        if not (torch.equal(saved[0], a) and torch.equal(saved[1], b)):
            raise Wrong("your function changed the boxes it was given (in place).")
        want = _tv_box_iou(a.double(), b.double())
        if not close(out, want, rtol=1e-4, atol=1e-6):
            raise Wrong(
                diagnose(out, _iou_variants(a, b), f"{worst_entry(out, want)} ({case}).")
                + f" ({case})"
            )
    return "Your IoU matrix matches torchvision.ops.box_iou, disjoint boxes included."


iou = Exercise(
    id="ex08_iou",
    title="Intersection over union of two sets of boxes",
    minutes=10,
    checker=_check_iou,
    answer_name="box_iou",
    hints=[
        "Broadcast: boxes1[:, None, :] against boxes2[None, :, :] gives every pair (N, M, 4) "
        "without a loop.",
        "The intersection runs from the larger top-left corner (torch.maximum of x1, y1) to the "
        "smaller bottom-right corner (torch.minimum of x2, y2); its width and height are "
        "clamped at 0 when the boxes do not overlap.",
        "lt = torch.maximum(a[:, None, :2], b[None, :, :2]); rb = torch.minimum(a[:, None, 2:], "
        "b[None, :, 2:]); inter = (rb - lt).clamp(min=0).prod(dim=2); return inter / "
        "(area(a)[:, None] + area(b)[None, :] - inter)",
    ],
    solution_code="""
    def box_iou(boxes1, boxes2):
        def area(b):
            return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

        lt = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
        rb = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=2)
        return inter / (area(boxes1)[:, None] + area(boxes2)[None, :] - inter)
    """,
)

# ---------------------------------------------------------------------------- 2. NMS


def _as_indices(out: Any, what: str, n: int) -> list[int]:
    """A list of ints from a 1-D integer tensor/array or a list of ints, else :class:`Wrong`."""
    if out is None:
        raise Wrong("`nms` returned None: did you forget `return`?")
    if isinstance(out, np.ndarray):
        out = torch.from_numpy(out)
    if isinstance(out, torch.Tensor):
        if out.dtype == torch.bool:
            raise Wrong(
                f"{what} is a boolean mask; return the *indices* of the kept boxes, best first "
                "(torch.nonzero(mask) loses the score order)."
            )
        if out.is_floating_point():
            raise Wrong(f"{what} holds floats ({out.dtype}); return integer indices (torch.long).")
        if out.ndim != 1:
            raise Wrong(
                f"{what} should be 1-D (one index per kept box), got shape {tuple(out.shape)}."
            )
        idx = [int(i) for i in out.tolist()]
    elif isinstance(out, (list, tuple)):
        if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in out):
            kinds = sorted({type(i).__name__ for i in out})
            raise Wrong(f"{what} should hold integer indices, got {', '.join(kinds)}.")
        idx = [int(i) for i in out]
    else:
        raise Wrong(
            f"{what} should be a 1-D tensor of indices (or a list of ints), got a {type(out).__name__}."
        )
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise Wrong(f"{what} holds index {bad[0]}, but there are only {n} boxes (0 to {n - 1}).")
    if len(set(idx)) != len(idx):
        raise Wrong(f"{what} holds an index twice: each box is kept at most once.")
    return idx


def _greedy(
    boxes, scores, thr, *, order=None, strict=True, suppressed_suppress=False, keep_above=False
):
    """Variants of greedy NMS (the first call with defaults is torchvision's rule)."""
    iou_m = _tv_box_iou(boxes.double(), boxes.double())
    order = torch.argsort(scores, descending=True, stable=True).tolist() if order is None else order
    alive = torch.ones(len(boxes), dtype=torch.bool)
    keep = []
    for i in order:
        if not alive[i]:
            if suppressed_suppress:
                alive &= iou_m[i] <= thr if strict else iou_m[i] < thr
            continue
        keep.append(i)
        if keep_above:
            alive &= iou_m[i] > thr
        else:
            alive &= iou_m[i] <= thr if strict else iou_m[i] < thr
        alive[i] = False
    return keep


def _nms_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    chain = (
        "a chain A-B-C: B overlaps A and C, C does not overlap A",
        torch.tensor([[0.0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]]),
        torch.tensor([0.9, 0.8, 0.7]),
        0.3,
    )
    exact = (
        "two boxes with an IoU of exactly the threshold, 0.5",
        torch.tensor([[0.0, 0, 2, 1], [0, 0, 4, 1], [10, 10, 12, 12]]),
        torch.tensor([0.6, 0.9, 0.5]),
        0.5,
    )
    g = torch.Generator().manual_seed(7 if not hidden else 77)
    rand = [
        (f"40 random boxes at IoU threshold {t}", _random_boxes(s, 40),
         torch.rand(40, generator=g), t)
        for s, t in ((3, 0.3), (4, 0.5))
    ] if not hidden else [
        (f"60 random boxes at IoU threshold {t}", _random_boxes(s, 60, 80.0),
         torch.rand(60, generator=g), t)
        for s, t in ((13, 0.2), (14, 0.6))
    ]  # fmt: skip
    return [*rand, chain, exact]


def _check_nms(fn, hidden: bool) -> str:
    for case, boxes, scores, thr in _nms_cases(hidden):
        saved = (boxes.clone(), scores.clone())
        try:
            out = call_student(fn, boxes, scores, thr, name="nms")
        except Wrong as err:
            raise _with_context(err, case) from None
        got = _as_indices(out, "the result of `nms`", len(boxes))
        if not (torch.equal(saved[0], boxes) and torch.equal(saved[1], scores)):
            raise Wrong("your function changed the boxes or scores it was given (in place).")
        want = _tv_nms(boxes, scores, thr).tolist()
        if got == want:
            continue
        variants = [
            (_greedy(boxes, scores, thr, order=list(range(len(boxes)))),
             "you visited the boxes in index order; greedy NMS visits them by decreasing score "
             "(scores.argsort(descending=True))."),
            (_greedy(boxes, scores, thr, suppressed_suppress=True),
             "a box that was already suppressed still suppressed others: only kept boxes "
             "suppress (in the chain A-B-C, A drops B, and C survives)."),
            (_greedy(boxes, scores, thr, strict=False),
             "you dropped boxes whose IoU equals the threshold; drop only IoU > iou_threshold "
             "(torchvision's rule)."),
            (_greedy(boxes, scores, thr, keep_above=True),
             "the comparison is reversed: drop the boxes that overlap the kept one by *more* than "
             "the threshold, keep the others."),
        ]  # fmt: skip
        for value, message in variants:
            if got == value:
                raise Wrong(f"{message} ({case})")
        if sorted(got) == sorted(want):
            raise Wrong(
                f"you kept the right boxes, in the wrong order: return them best score first "
                f"(expected {want}, got {got}; {case})."
            )
        raise Wrong(
            f"kept boxes {got[:10]}{'...' if len(got) > 10 else ''}, expected "
            f"{want[:10]}{'...' if len(want) > 10 else ''} ({case})."
        )
    return "Your NMS keeps the same boxes in the same order as torchvision.ops.nms."


nms = Exercise(
    id="ex08_nms",
    title="Greedy non-maximum suppression",
    minutes=15,
    checker=_check_nms,
    answer_name="nms",
    hints=[
        "Greedy: sort by score; take the best remaining box, keep it, drop every remaining box "
        "whose IoU with it is above the threshold; repeat until no box remains.",
        "order = scores.argsort(descending=True); while order is not empty: best = order[0]; "
        "keep it; order = the rest of order whose IoU with best is <= iou_threshold. Your "
        "box_iou (or tlhelpers.detection.box_iou) gives the IoUs.",
        "ious = box_iou(boxes[best][None], boxes[order[1:]])[0]; order = order[1:][ious <= "
        "iou_threshold]; return torch.tensor(keep, dtype=torch.long)",
    ],
    solution_code="""
    def nms(boxes, scores, iou_threshold):
        order, keep = scores.argsort(descending=True), []
        while len(order):
            best, order = order[0], order[1:]
            keep.append(int(best))
            ious = box_iou(boxes[best][None], boxes[order])[0]
            order = order[ious <= iou_threshold]
        return torch.tensor(keep, dtype=torch.long)
    """,
)

# ---------------------------------------------------------------------------- 3. matching


def _match_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor]]:
    face = torch.tensor([[10.0, 10, 30, 30]])
    cases = [
        ("one face, two boxes on it (the better-scoring one listed second)",
         torch.tensor([[11.0, 10, 31, 30], [10, 10, 30, 30], [60, 60, 80, 80]]),
         torch.tensor([0.6, 0.9, 0.7]), face),
        ("a box with an IoU of exactly 0.5 with the face",
         torch.tensor([[10.0, 10, 50, 30], [60, 60, 70, 70]]), torch.tensor([0.8, 0.3]), face),
        ("two faces; the best box overlaps both, the second box overlaps the first face best",
         torch.tensor([[0.0, 0, 20, 20], [1, 0, 21, 20]]), torch.tensor([0.9, 0.8]),
         torch.tensor([[0.0, 0, 20, 20], [4, 0, 24, 20]])),
        ("a photo without a face", torch.tensor([[0.0, 0, 10, 10]]), torch.tensor([0.5]),
         torch.zeros(0, 4)),
        ("no detection", torch.zeros(0, 4), torch.zeros(0), face),
    ]  # fmt: skip
    seeds = (5, 6) if not hidden else (15, 16)
    for s in seeds:
        truth = _random_boxes(s, 4, 120.0)
        g = torch.Generator().manual_seed(s)
        jitter = truth.repeat(3, 1) + 6 * torch.randn(12, 4, generator=g)
        jitter[:, 2:] = torch.maximum(jitter[:, 2:], jitter[:, :2] + 1)
        cases.append(
            (f"4 faces, 12 jittered boxes (seed {s})", jitter, torch.rand(12, generator=g), truth)
        )
    return cases


def _match_variants(boxes, scores, truth) -> list[tuple[list[bool], str]]:
    iou_m = (
        _tv_box_iou(boxes.double(), truth.double()).numpy() if len(truth) and len(boxes) else None
    )
    n = len(boxes)

    def greedy(order, *, twice=False, voc=False, strict=False):
        tp, free = [False] * n, np.ones(len(truth), dtype=bool)
        if iou_m is None:
            return tp
        for i in order:
            cand = iou_m[i] if (twice or voc) else np.where(free, iou_m[i], -1.0)
            j = int(np.argmax(cand))
            ok = cand[j] > 0.5 if strict else cand[j] >= 0.5
            if ok and (twice or free[j]):
                tp[i], free[j] = True, False
        return tp

    by_score = [int(i) for i in np.argsort(-scores.numpy(), kind="stable")]
    return [
        (greedy(by_score, twice=True),
         "a face was matched twice: every truth box is matched at most once, so a second box on "
         "the same face is a false positive."),
        (greedy(range(n)),
         "you matched the detections in the order given; match them by decreasing score (the "
         "best-scoring box gets the face, a duplicate with a lower score is the false positive)."),
        (greedy(by_score, strict=True),
         "an IoU of exactly 0.5 is a match: the rule is IoU >= iou_threshold."),
        (greedy(by_score, voc=True),
         "a detection takes the best *not yet matched* face: a face already taken is no "
         "longer a candidate."),
    ]  # fmt: skip


def _as_flags(out: Any, n: int) -> list[bool]:
    if out is None:
        raise Wrong("`match_detections` returned None: did you forget `return`?")
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    if isinstance(out, (list, tuple)):
        out = np.asarray(out)
    if not isinstance(out, np.ndarray):
        raise Wrong(
            f"`match_detections` should return a boolean tensor or array, got a {type(out).__name__}."
        )
    if out.shape != (n,):
        raise Wrong(
            f"the result should hold one flag per detection, shape ({n},), got shape {out.shape}."
        )
    if out.dtype != bool:
        if n and not np.isin(out, (0, 1)).all():
            raise Wrong(
                "the result should be True/False per detection (is it a true positive?), "
                f"got values such as {out[~np.isin(out, (0, 1))][0]!r}."
            )
        out = out.astype(bool)
    return [bool(v) for v in out]


def _check_match(fn, hidden: bool) -> str:
    for case, boxes, scores, truth in _match_cases(hidden):
        try:
            out = call_student(fn, boxes.clone(), scores.clone(), truth.clone(), 0.5,
                               name="match_detections")  # fmt: skip
        except Wrong as err:
            raise _with_context(err, case) from None
        got = _as_flags(out, len(boxes))
        want = [bool(v) for v in _match_detections(boxes, scores, truth, 0.5)]
        if got != want:
            for value, message in _match_variants(boxes, scores, truth):
                if got == value:
                    raise Wrong(f"{message} ({case})")
            raise Wrong(f"true positives {got}, expected {want} ({case}).")
    return "Greedy matching by score, each face at most once, IoU >= 0.5: as detection benchmarks count."


match = Exercise(
    id="ex08_match",
    title="Match detections to hand-marked faces",
    minutes=15,
    checker=_check_match,
    answer_name="match_detections",
    hints=[
        "Visit the detections from the highest score down. Each takes the face it overlaps most "
        "among the faces not matched yet; it is a true positive when that IoU is >= the threshold.",
        "Keep a boolean `free` per face. With ious = box_iou(boxes, truth) (N, M): for i in "
        "scores.argsort(descending=True): cand = torch.where(free, ious[i], -1); j = cand.argmax(). "
        "Watch the empty cases: no face (M = 0) or no detection (N = 0).",
        "if len(truth) and cand[j] >= iou_threshold: tp[i] = True; free[j] = False",
    ],
    solution_code="""
    def match_detections(boxes, scores, truth, iou_threshold=0.5):
        tp = torch.zeros(len(boxes), dtype=torch.bool)
        if len(boxes) == 0 or len(truth) == 0:
            return tp
        ious = box_iou(boxes, truth)
        free = torch.ones(len(truth), dtype=torch.bool)
        for i in scores.argsort(descending=True, stable=True).tolist():
            cand = torch.where(free, ious[i], torch.tensor(-1.0))
            j = int(cand.argmax())
            if cand[j] >= iou_threshold:
                tp[i], free[j] = True, False
        return tp
    """,
)

# ---------------------------------------------------------------------------- 4. verification


def _verification_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """Embeddings of a few identities. The first case is sparse and non-negative: images with
    disjoint supports score exactly 0 however the cosine is computed, so genuine and impostor
    pairs tie there; every other score is a generic float, far from the others."""
    out = []
    for i, (n_ids, per, d, sparse) in enumerate(
        [(5, 4, 6, True), (6, 3, 8, False)] if not hidden else [(4, 5, 6, True), (7, 3, 6, False)]
    ):
        g = torch.Generator().manual_seed(80 + i + (50 if hidden else 0))
        labels = torch.arange(n_ids).repeat_interleave(per)
        if sparse:  # each identity owns 4 of the d coordinates; each image uses 2 of them
            emb = torch.zeros(len(labels), d)
            for k, y in enumerate(labels.tolist()):
                own = torch.randperm(d, generator=torch.Generator().manual_seed(1000 + y))[:4]
                use = own[torch.randperm(4, generator=g)[:2]]
                emb[k, use] = 0.5 + torch.rand(2, generator=g)
        else:
            centres = 2 * torch.randn(n_ids, d, generator=g)
            emb = centres[labels] + 1.5 * torch.randn(len(labels), d, generator=g)
        kind = (
            ", sparse: some scores are exactly 0, so genuine and impostor pairs tie"
            if sparse
            else ""
        )
        out.append((f"{n_ids} identities x {per} images, {d}-D{kind}", emb, labels))
    return out


def _verification_variants(emb: torch.Tensor, labels: torch.Tensor) -> list[tuple[float, str]]:
    from ..metrics import roc_auc

    e = emb.double()
    unit = e / e.norm(dim=1, keepdim=True)
    lab = labels.numpy()
    i, j = np.triu_indices(len(e), 1)
    cos, same = (unit @ unit.T).numpy()[i, j], lab[i] == lab[j]
    gen, imp = cos[same], cos[~same]
    strict = float((gen[:, None] > imp[None, :]).mean())
    ii, jj = np.triu_indices(len(e), 0)  # i == j included
    with_self = roc_auc((unit @ unit.T).numpy()[ii, jj], lab[ii] == lab[jj])
    dots = (e @ e.T).numpy()[i, j]
    return [
        (1 - roc_auc(cos, same),
         "your AUC is 1 minus the expected one: a higher score must mean 'same identity' (a "
         "distance is lower for the same identity: use the cosine similarity, or minus the distance)."),
        (strict, "a tie between a genuine and an impostor score counts one half, not 0."),
        (with_self,
         "the pair of an image with itself is not a trial: use every pair i < j once "
         "(np.triu_indices(N, 1))."),
        (roc_auc(dots, same),
         "the score is the cosine similarity: divide each embedding by its norm before the dot "
         "product."),
    ]  # fmt: skip


def _check_verification(fn, hidden: bool) -> str:
    from ..metrics import pair_scores, roc_auc

    for what, emb, labels in _verification_cases(hidden):
        saved = emb.clone()
        try:
            out = call_student(fn, emb, labels.clone(), name="verification_auc")
        except Wrong as err:
            raise _with_context(err, what) from None
        if out is None:
            raise Wrong("`verification_auc` returned None: did you forget `return`?")
        got = number(out, "the AUC")
        if not torch.equal(saved, emb):
            raise Wrong("your function changed the embeddings in place.")
        want = roc_auc(*pair_scores(saved, labels))
        if not close(got, want, rtol=1e-6, atol=1e-9):
            variants = _verification_variants(saved, labels)
            if got < 0.5 < want and abs(got - (1 - want)) < 0.02:  # a distance: ties break anyhow
                variants[0] = (got, variants[0][1])
            raise Wrong(diagnose(got, variants, f"{off_by(got, want)}.") + f" ({what})")
    return "The ROC AUC over every pair of images: cosine scores, ties counted one half."


verification = Exercise(
    id="ex08_verification",
    title="Verification: the ROC AUC of all pairs",
    minutes=15,
    checker=_check_verification,
    answer_name="verification_auc",
    hints=[
        "Normalise the embeddings to unit length; then the cosine of every pair is one matrix "
        "product, and np.triu_indices(N, 1) (or torch.triu_indices) picks each pair i < j once.",
        "A pair is genuine when its two labels are equal. The AUC is the probability that a "
        "genuine pair outscores an impostor pair: compare every genuine score with every impostor "
        "score (broadcast (G, 1) against (1, I)) and count a tie as one half.",
        "g, m = scores[same], scores[~same]; return ((g[:, None] > m[None, :]).float().mean() + "
        "0.5 * (g[:, None] == m[None, :]).float().mean()).item()",
    ],
    solution_code="""
    def verification_auc(embeddings, labels):
        e = embeddings / embeddings.norm(dim=1, keepdim=True)
        i, j = torch.triu_indices(len(e), len(e), offset=1)
        scores, same = (e @ e.T)[i, j], labels[i] == labels[j]
        g, m = scores[same][:, None], scores[~same][None, :]
        return ((g > m).double().mean() + 0.5 * (g == m).double().mean()).item()
    """,
)

# ---------------------------------------------------------------------------- 5. challenge

#: Notebook 08b's stand-in faces and backbone; identities split as there (20 validate, 20 test).
CHALLENGE: dict[str, Any] = {"views": 8, "image_size": 64, "n_val": 20, "n_test": 20, "seed": 0,
             "budget_s": 15.0, "margin": 0.05}  # fmt: skip
_cache: dict = {}


def _features() -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Frozen MobileNetV2 features of every stand-in image (cached on disk as in 08b)."""
    if "features" not in _cache:
        from ..data import ImageNetInput, face_identities, identity_split
        from ..features import extract_features
        from ..models import load_backbone

        faces = face_identities("standin", views=CHALLENGE["views"])
        net = load_backbone("mobilenet_v2").eval()
        f, y = extract_features(
            net, faces, batch_transform=ImageNetInput(CHALLENGE["image_size"]), cache="faces"
        )
        split = identity_split(y, CHALLENGE["n_val"], CHALLENGE["n_test"], seed=CHALLENGE["seed"])
        _cache["features"] = (f, y, split)
    return _cache["features"]


def challenge_data() -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, labels)`` of the training identities: ``(N, 1280)`` frozen features, ``(N,)``."""
    f, y, split = _features()
    return f[split.train].clone(), y[split.train].clone()


def _auc(embeddings: torch.Tensor, labels: torch.Tensor) -> float:
    from ..metrics import pair_scores, roc_auc

    return roc_auc(*pair_scores(embeddings, labels))


def _check_challenge(fn, hidden: bool) -> str:
    f, y, split = _features()
    last = _cache.get("last")
    if hidden and last is not None and last[0] is fn:  # score what the visible check trained
        _, model, seconds = last
    else:
        train_f, train_y = challenge_data()
        start = time.perf_counter()
        model = call_student(
            fn, train_f, train_y, name="train_projection", limit_s=CHALLENGE["budget_s"]
        )
        seconds = time.perf_counter() - start
        if model is None:
            raise Wrong("`train_projection` returned None: return the trained projection.")
        if not callable(model):
            raise Wrong(
                f"`train_projection` should return an nn.Module (or a function) that maps "
                f"features to embeddings, got a {type(model).__name__}."
            )
        if isinstance(model, nn.Module):
            try:
                device = next(model.parameters()).device
            except StopIteration:
                device = torch.device("cpu")
            if device != torch.device("cpu"):
                raise Wrong(
                    f"the returned model is on {device}; the check runs on the CPU: return model.cpu()."
                )
            model.eval()
        _cache["last"] = (fn, model, seconds)
    idx = split.test if hidden else split.val
    with torch.no_grad():
        emb = call_student(model, f[idx].clone(), name="your projection (applied to features)")
    emb = tensor(emb, "the embeddings", device="cpu")
    if emb.ndim != 2 or emb.shape[0] != len(idx):
        raise Wrong(
            f"the embeddings should have shape ({len(idx)}, d) for {len(idx)} feature rows, "
            f"got {tuple(emb.shape)}."
        )
    if (emb.norm(dim=1) == 0).any():
        raise Wrong(
            "some embeddings are all zeros: the cosine similarity of such a pair is undefined."
        )
    got, base = _auc(emb, y[idx]), _auc(f[idx], y[idx])
    where = (
        f"the hidden test identities ({CHALLENGE['n_test']})"
        if hidden
        else f"the validation identities ({CHALLENGE['n_val']}, unseen in training)"
    )
    if got < base + CHALLENGE["margin"]:
        raise Wrong(
            f"ROC AUC {got:.3f} on {where}; the raw ImageNet features get {base:.3f}. Beat them "
            f"by {CHALLENGE['margin']:.2f} (your training took {seconds:.1f} s of "
            f"{CHALLENGE['budget_s']:g})."
        )
    return (
        f"ROC AUC {got:.3f} on {where}, raw features {base:.3f}, "
        f"{seconds:.1f} s of {CHALLENGE['budget_s']:g}."
    )


challenge = Exercise(
    id="ex08_challenge",
    title="Open challenge: verify unseen identities better than the raw features, in 15 s",
    minutes=40,
    checker=_check_challenge,
    answer_name="train_projection",
    hints=[
        "The raw features were trained to name ImageNet objects, not to tell faces apart: learn a "
        "projection on the training identities, as notebook 08b does.",
        "tlhelpers.embedding.train_embedding(features, labels, 'ArcFace', embed_dim=64, "
        "margin=0.3) trains a linear projection in a few seconds; try the other losses and "
        "margins on the validation check.",
        "return train_embedding(features, labels, 'ArcFace', embed_dim=64, margin=0.3, seed=0)",
    ],
    solution_code="""
    from tlhelpers.embedding import train_embedding


    def train_projection(features, labels):
        return train_embedding(features, labels, "ArcFace", embed_dim=64, margin=0.3, seed=0)
    """,
)
