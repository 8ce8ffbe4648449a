"""Exercises of notebook 07 (evaluation): ECE by hand, TAR at a fixed FAR, the winner's curse,
and an open challenge (calibrate on validation, scored on a hidden test split).

``from tlhelpers.exercises import ex07``; ``ex07.ece.check(ece)``.
Every answer is compared with an independent computation: the kit's
:func:`tlhelpers.metrics.expected_calibration_error` and :func:`tlhelpers.metrics.tar_at_far`
(both cross-checked against scikit-learn in the tests), and a direct count for the winner's curse.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import load_task, train_val_indices
from ..metrics import expected_calibration_error, roc_curve, tar_at_far
from ..models import load_backbone, transfer_model
from ..recipes import get_recipe
from ..training import predict
from ._core import Exercise, Wrong, call_student, number, off_by, tensor

__all__ = [
    "ece",
    "tar_far",
    "winners_curse",
    "challenge",
    "ece_variant",
    "tar_variant",
    "challenge_data",
]


def _close(got: float, want: float, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    return math.isclose(got, want, rel_tol=rtol, abs_tol=atol)


def _explain(records: list[dict], variants_of) -> None:
    """Raise :class:`Wrong` for the first case the student got wrong, naming the typical mistake
    whose values match the student's on *every* case (a mistake that happens to give the right
    number on one case does not hide behind another that matches elsewhere).

    ``records``: per case ``got``, ``ok``, ``default`` (the message without a diagnosis) and
    ``where``; ``variants_of(i)``: the case's ``[(value, message), ...]``, in one order for all."""
    bad = [i for i, r in enumerate(records) if not r["ok"]]
    if not bad:
        return
    first = records[bad[0]]
    variants = [variants_of(i) for i in range(len(records))]
    for group in (range(len(records)), bad):
        for j, (_, message) in enumerate(variants[bad[0]]):
            if all(_close(records[i]["got"], float(variants[i][j][0])) for i in group):
                raise Wrong(f"{message} {first['where']}")
    raise Wrong(f"{first['default']} {first['where']}")


# ----------------------------------------------------------------------- 1. ECE by hand

#: Confidences on the edges of 8 equal-width bins (k/8 is exact in binary), each sharing its bin
#: with another image: moving an edge to the bin above changes the ECE.
EDGE_PROBS = np.array([
    [0.5, 0.3, 0.2, 0.0], [0.45, 0.35, 0.2, 0.0], [0.75, 0.125, 0.125, 0.0], [0.7, 0.2, 0.1, 0.0],
    [0.65, 0.25, 0.1, 0.0], [1.0, 0.0, 0.0, 0.0], [0.9, 0.05, 0.05, 0.0],
    [0.375, 0.25, 0.25, 0.125], [0.3, 0.25, 0.25, 0.2], [0.625, 0.25, 0.125, 0.0],
    [0.55, 0.25, 0.2, 0.0],
])  # fmt: skip
EDGE_TARGETS = np.array([0, 1, 0, 0, 2, 0, 1, 0, 1, 3, 0])


def _random_probs(seed: int, n: int, k: int, scale: float = 2.5):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * scale
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    # a model that is right a bit less often than it claims: draw the label from a flattened p
    q = p**0.6 / (p**0.6).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=row) for row in q])
    return p, y


def ece_variant(p: np.ndarray, y: np.ndarray, n_bins: int, mode: str) -> float:
    """ECE with one typical mistake (``mode``), for the checker's diagnosis."""
    conf = p[np.arange(len(y)), y] if mode == "true_class" else p.max(1)
    correct = (p.argmax(1) == y).astype(float)
    if mode == "left_closed":
        ids = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    elif mode == "equal_mass":
        order = np.argsort(conf, kind="stable")
        ids = np.empty(len(conf), dtype=int)
        ids[order] = np.arange(len(conf)) * n_bins // len(conf)
    else:
        ids = np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], conf, side="left")
    total, gaps = 0.0, []
    for b in range(n_bins):
        m = ids == b
        if not m.any():
            continue
        gap = correct[m].mean() - conf[m].mean()
        gaps.append(gap)
        if mode == "signed":
            total += m.mean() * gap
        else:
            total += m.mean() * abs(gap)
    if mode == "unweighted":
        return float(np.mean(np.abs(gaps)))
    if mode == "all_bins":
        return float(np.sum(np.abs(gaps)) / n_bins)
    return float(total)


_ECE_MISTAKES = {
    "left_closed": "a confidence exactly on an edge went to the bin above: the bins are right-closed, "
    "((m-1)/M, m/M] (a confidence of 0.5 with M = 8 is in bin (3/8, 4/8]; 1.0 is in the last bin).",
    "unweighted": "you averaged the bins' gaps without weighting them: each bin counts |B_m| / n.",
    "all_bins": "you divided the gaps by the number of bins: weight each bin by |B_m| / n instead.",
    "signed": "the gaps must be absolute values, |acc(B_m) - conf(B_m)|: over- and under-confident "
    "bins must not cancel.",
    "true_class": "the confidence is the largest probability max_k p_k (the predicted class's), "
    "not the probability of the true class.",
    "equal_mass": "your bins hold equal numbers of images (equal-mass); this ECE uses equal-width "
    "bins of the confidence, ((m-1)/M, m/M].",
}


def _check_ece(fn, hidden: bool) -> str:
    cases = [(EDGE_PROBS, EDGE_TARGETS, 8), (*_random_probs(0, 200, 5), 15)]
    if hidden:
        cases = [
            (EDGE_PROBS, EDGE_TARGETS, 4),
            (*_random_probs(1, 300, 3), 15),
            (*_random_probs(2, 100, 10), 5),
        ]
    records = []
    for p, y, n_bins in cases:
        probs, targets = torch.from_numpy(p.copy()), torch.from_numpy(y.copy())
        out = call_student(fn, probs, targets, n_bins, name="ece")
        if out is None:
            raise Wrong("`ece` returned None: return the ECE as a number.")
        got = number(out, "the ECE")
        if not torch.equal(probs, torch.from_numpy(p)):
            raise Wrong("your function changed `probs` in place: work on a copy.")
        want = expected_calibration_error(p, y, n_bins)
        records.append({"got": got, "ok": _close(got, want), "default": off_by(got, want),
                        "where": f"({len(y)} images, {p.shape[1]} classes, {n_bins} bins)"})  # fmt: skip

    def variants_of(i):
        p, y, n_bins = cases[i]
        return [(ece_variant(p, y, n_bins, k), msg) for k, msg in _ECE_MISTAKES.items()]

    _explain(records, variants_of)
    return "The ECE of equal-width, right-closed bins, each weighted by its share of the images."


ece = Exercise(
    id="ex07_ece",
    title="Expected calibration error by hand",
    minutes=15,
    checker=_check_ece,
    answer_name="ece",
    hints=[
        "For each image: its confidence max_k p_k, and whether the argmax is its label. Then bin the "
        "confidences into M equal-width bins and compare, in each bin, the accuracy with the mean confidence.",
        "Bin m (1..M) holds the confidences in ((m-1)/M, m/M]. With edges = torch.linspace(0, 1, M + 1, "
        "dtype=probs.dtype), "
        "torch.searchsorted(edges[1:-1], conf) gives each confidence's bin index (0-based; a "
        "confidence on an edge stays in the bin below). Skip empty bins.",
        "conf, pred = probs.max(1); correct = (pred == targets).double(); for each non-empty bin b: "
        "total += mask.double().mean() * abs(correct[mask].mean() - conf[mask].mean())",
    ],
    solution_code="""
    def ece(probs, targets, n_bins=15):
        conf, pred = probs.max(dim=1)
        correct = (pred == targets).double()
        edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        bins = torch.searchsorted(edges[1:-1].contiguous(), conf.double().contiguous())
        total = 0.0
        for b in range(n_bins):
            mask = bins == b
            if mask.any():
                gap = correct[mask].mean() - conf[mask].double().mean()
                total += mask.double().mean().item() * abs(gap.item())
        return total
    """,
)

# ----------------------------------------------------------------------- 2. TAR at a FAR

#: Ten pairs with ties (two scores of 0.7, three of 0.4): 4 genuine, 6 impostors.
TIE_SCORES = np.array([0.9, 0.8, 0.7, 0.7, 0.6, 0.4, 0.4, 0.4, 0.3, 0.1])
TIE_SAME = np.array([True, False, True, False, True, True, False, False, False, False])


def _pairs(seed: int, n_gen: int, n_imp: int, gap: float = 1.5, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    s = np.r_[rng.normal(gap, 1.0, n_gen), rng.normal(0.0, 1.0, n_imp)]
    same = np.r_[np.ones(n_gen, bool), np.zeros(n_imp, bool)]
    perm = rng.permutation(len(s))
    s = s[perm] if decimals is None else np.round(s[perm], decimals)
    return s, same[perm]


def tar_variant(scores: np.ndarray, same: np.ndarray, far: float, mode: str) -> float:
    """TAR at a FAR with one typical mistake (``mode``), for the checker's diagnosis."""
    gen, imp = scores[same], scores[~same]
    if mode == "split_ties":  # one pair at a time in sorted order, a tie's genuine pairs first
        order = np.lexsort((~same, -scores))
        fa = np.cumsum(~same[order]) / len(imp)
        ta = np.cumsum(same[order]) / len(gen)
        return float(max([0.0, *ta[fa <= far]]))
    if mode == "interpolated":  # read off the ROC curve between its points
        fars, tars, _ = roc_curve(scores, same)
        return float(np.interp(far, fars, tars))
    best, best_t = 0.0, np.inf
    for t in np.r_[np.inf, np.unique(scores)[::-1]]:
        fa = (imp >= t).sum() / (len(scores) if mode == "far_all" else len(imp))
        ta = (gen >= t).sum() / (len(scores) if mode == "tar_all" else len(gen))
        ok = fa < far if mode == "far_strict" else fa <= far
        if ok and ta > best:
            best, best_t = ta, t
    return float(best_t) if mode == "threshold" else float(best)


_TAR_MISTAKES = {
    "split_ties": "pairs with equal scores must be accepted or rejected together (one threshold accepts "
    "every pair with score >= t): walking the sorted pairs one at a time splits a tie.",
    "far_all": "the FAR is a fraction of the impostor pairs only (same == False), not of all pairs.",
    "tar_all": "the TAR is a fraction of the genuine pairs only (same == True), not of all pairs.",
    "far_strict": "a threshold whose FAR equals the target is allowed: FAR <= far.",
    "interpolated": "you interpolated the ROC curve between its points; TAR at FAR is the TAR of an "
    "actual threshold: the highest TAR among thresholds whose FAR is at most far.",
    "threshold": "you returned the threshold; return the TAR reached at it.",
}


def _check_tar(fn, hidden: bool) -> str:
    cases = [
        (TIE_SCORES, TIE_SAME, 1 / 6),
        (TIE_SCORES, TIE_SAME, 0.5),
        (*_pairs(0, 300, 2000), 1e-2),
    ]
    if hidden:
        cases = [(TIE_SCORES, TIE_SAME, 1 / 3), (*_pairs(1, 200, 1000, decimals=1), 0.05),
                 (*_pairs(2, 100, 500), 1e-3)]  # fmt: skip
    records = []
    for scores, same, far in cases:
        out = call_student(fn, scores.copy(), same.copy(), far, name="tar_at_far")
        if out is None:
            raise Wrong("`tar_at_far` returned None: return the TAR as a number.")
        got = number(out, "the TAR")
        want = tar_at_far(scores, same, far)
        where = (
            f"({int(same.sum())} genuine and {int((~same).sum())} impostor pairs, far={far:.4g})"
        )
        records.append(
            {"got": got, "ok": _close(got, want), "default": off_by(got, want), "where": where}
        )

    def variants_of(i):
        scores, same, far = cases[i]
        return [(tar_variant(scores, same, far, k), msg) for k, msg in _TAR_MISTAKES.items()]

    _explain(records, variants_of)
    return (
        "The highest TAR over thresholds whose FAR is at most the target, ties accepted together."
    )


tar_far = Exercise(
    id="ex07_tar_far",
    title="TAR at a fixed FAR from raw scores",
    minutes=15,
    checker=_check_tar,
    answer_name="tar_at_far",
    hints=[
        "Try every threshold t: each distinct score (and +inf, where nothing is accepted). A pair is "
        "accepted when score >= t.",
        "FAR(t) = (impostor scores >= t).mean() over the impostors only; TAR(t) = (genuine scores >= t).mean() "
        "over the genuine pairs only. Keep the largest TAR among thresholds with FAR(t) <= far.",
        "gen, imp = scores[same], scores[~same]; return max([0.0] + [(gen >= t).mean() for t in "
        "np.unique(scores) if (imp >= t).mean() <= far])",
    ],
    solution_code="""
    def tar_at_far(scores, same, far):
        gen, imp = scores[same], scores[~same]
        best = 0.0  # threshold +inf: nothing accepted, FAR = TAR = 0
        for t in np.unique(scores):
            if (imp >= t).mean() <= far:
                best = max(best, float((gen >= t).mean()))
        return best
    """,
)

# ----------------------------------------------------------------------- 3. the winner's curse


def _correct_matrix(seed: int, configs: int, images: int, p: float = 0.7) -> np.ndarray:
    """Every configuration equally good (accuracy p): any winner is luck."""
    rng = np.random.default_rng(seed)
    return (rng.random((configs, images)) < p).astype(np.int64)


def _check_curse(fn, hidden: bool) -> str:
    cases = [(_correct_matrix(0, 40, 300), 50), (_correct_matrix(1, 5, 60, 0.5), 20)]
    if hidden:
        cases = [(_correct_matrix(2, 100, 400, 0.8), 100), (_correct_matrix(3, 2, 30), 10)]
    records = []
    for correct, n_peek in cases:
        out = call_student(fn, correct.copy(), n_peek, name="optimism")
        if out is None:
            raise Wrong("`optimism` returned None: return reported minus fresh accuracy.")
        got = number(out, "the optimism")
        peek, fresh = correct[:, :n_peek].mean(1), correct[:, n_peek:].mean(1)
        winners = np.flatnonzero(peek == peek.max())  # any of tied winners is fine
        wants = [float(peek[i] - fresh[i]) for i in winners]
        where = f"({correct.shape[0]} configurations, {correct.shape[1]} images, n_peek={n_peek})"
        ok = any(_close(got, w) for w in wants)
        records.append({"got": got, "ok": ok, "default": off_by(got, wants[0]), "where": where})

    def variants_of(i):
        correct, n_peek = cases[i]
        peek, fresh = correct[:, :n_peek].mean(1), correct[:, n_peek:].mean(1)
        win, by_fresh, by_all = (
            int(np.argmax(peek)),
            int(np.argmax(fresh)),
            int(np.argmax(correct.mean(1))),
        )
        return [
            (fresh[win] - peek[win], "the sign is reversed: optimism is reported (on the images you chose on) minus fresh."),
            (peek.max(), "that is the reported accuracy alone; subtract the winner's accuracy on the fresh images."),
            (np.mean(peek - fresh), "you averaged over all configurations: the curse is the "
             "winner's, so take the configuration with the best accuracy on the first n_peek images."),
            (peek[by_fresh] - fresh[by_fresh], "you chose the configuration on the fresh images: choose "
             "it on the first n_peek (the ones you peek at), then measure it on the rest."),
            (peek[by_all] - fresh[by_all], "you chose on all the images: choose on the first n_peek only."),
            (win, "you returned the winner's index; return its optimism."),
        ]  # fmt: skip

    _explain(records, variants_of)
    return (
        "The winner on the peeked images looks better there than on fresh ones: the winner's curse."
    )


winners_curse = Exercise(
    id="ex07_winners_curse",
    title="The winner's curse in a few lines",
    minutes=10,
    checker=_check_curse,
    answer_name="optimism",
    hints=[
        "Split the columns: the first n_peek images are the ones you choose on, the rest are fresh.",
        "peek = correct[:, :n_peek].mean(1); fresh = correct[:, n_peek:].mean(1); the winner is "
        "np.argmax(peek).",
        "i = np.argmax(peek); return peek[i] - fresh[i]",
    ],
    solution_code="""
    def optimism(correct, n_peek):
        peek, fresh = correct[:, :n_peek].mean(axis=1), correct[:, n_peek:].mean(axis=1)
        i = int(np.argmax(peek))
        return float(peek[i] - fresh[i])
    """,
)

# ----------------------------------------------------------------------- 4. the open challenge

#: Notebook 07's setting: fine-tuning at 1 label per class; calibrate on 20 validation images per class.
CHALLENGE: dict[str, Any] = {"task": "fmnist_rand_b", "source": "fmnist_rand_a", "per_class": 1, "val_per_class": 20,
             "n_check": 500, "n_test": 1000, "seed": 0, "n_bins": 15, "margin": 0.03,
             "accuracy_slack": 0.01, "budget_s": 10.0}  # fmt: skip
_cache: dict = {}


def _logits() -> dict:
    """Logits of the fine-tuned model on validation, a check split and the hidden test split."""
    if "logits" not in _cache:
        c = CHALLENGE
        pool, test_pool = load_task(c["task"], "train"), load_task(c["task"], "test")
        tr, va = train_val_indices(
            pool.targets, c["per_class"], c["val_per_class"], c["seed"], pool.classes
        )
        rest = np.setdiff1d(np.arange(len(pool)), np.r_[tr, va])
        check = np.sort(np.random.default_rng(7).choice(rest, c["n_check"], replace=False))
        test = np.sort(
            np.random.default_rng(2026).choice(len(test_pool), c["n_test"], replace=False)
        )
        source = load_backbone("small_cnn", source=c["source"]).eval()
        model = transfer_model(source, 5, seed=c["seed"])
        get_recipe("fine_tune").fit(model, pool.subset(tr), seed=c["seed"])
        _cache["logits"] = {
            "val": predict(model, pool.subset(va)),
            "check": predict(model, pool.subset(check)),
            "test": predict(model, test_pool.subset(test)),
        }
    return _cache["logits"]


def challenge_data() -> tuple[torch.Tensor, torch.Tensor]:
    """``(val_logits, val_targets)``: the fine-tuned model's logits on 100 validation images."""
    v_logits, v_targets = _logits()["val"]
    return v_logits.clone(), v_targets.clone()


def _scores(probs: torch.Tensor, targets: torch.Tensor) -> tuple[float, float, float]:
    """(ECE, accuracy, NLL) of probabilities."""
    p = probs.double()
    ece_ = expected_calibration_error(p, targets, CHALLENGE["n_bins"])
    acc = float((p.argmax(1) == targets).double().mean())
    nll = float(-p[torch.arange(len(targets)), targets].clamp_min(1e-12).log().mean())
    return ece_, acc, nll


def _check_challenge(fn, hidden: bool) -> str:
    logits = _logits()
    v_logits, v_targets = challenge_data()
    calibrated = call_student(
        fn, v_logits, v_targets, name="calibrate", limit_s=CHALLENGE["budget_s"]
    )
    if calibrated is None:
        raise Wrong(
            "`calibrate` returned None: return a function that maps logits to probabilities."
        )
    if not callable(calibrated):
        raise Wrong(
            f"`calibrate` should return a function (logits -> probabilities), got a "
            f"{type(calibrated).__name__}."
        )
    split = "test" if hidden else "check"
    z, y = logits[split]
    probs = call_student(calibrated, z.clone(), name="the function `calibrate` returned")
    if probs is None:
        raise Wrong("the function `calibrate` returned gave None: it should return probabilities.")
    probs = tensor(
        probs, "the probabilities", shape=tuple(z.shape), device="cpu", allow_numpy=True
    ).detach()
    p = probs.double()
    if (
        p.min() < 0
        or p.max() > 1
        or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3)
    ):
        raise Wrong(
            "the function `calibrate` returned should give probabilities (rows in [0, 1] summing to 1): "
            f"got values in {p.min().item():.3g}..{p.max().item():.3g}. Apply a softmax."
        )
    e, acc, nll = _scores(p, y)
    e0, acc0, nll0 = _scores(F.softmax(z.double(), 1), y)
    where = (
        "the hidden test split"
        if hidden
        else f"a check split ({len(y)} images outside train and validation)"
    )
    found = (
        f"ECE ({CHALLENGE['n_bins']} bins) {e:.3f}, accuracy {acc:.3f}, NLL {nll:.3f} on {where}"
    )
    raw = f"the raw softmax has ECE {e0:.3f}, accuracy {acc0:.3f}, NLL {nll0:.3f}"
    if acc < acc0 - CHALLENGE["accuracy_slack"]:
        raise Wrong(
            f"{found}; {raw}. Calibration must not cost accuracy (at most "
            f"{CHALLENGE['accuracy_slack']:.2f}): keep the model's ranking of the classes."
        )
    if e > e0 - CHALLENGE["margin"]:
        raise Wrong(f"{found}; {raw}. Lower the ECE by at least {CHALLENGE['margin']:.2f}.")
    return f"{found}; {raw}."


challenge = Exercise(
    id="ex07_challenge",
    title="Open challenge: calibrate on validation",
    minutes=25,
    checker=_check_challenge,
    answer_name="calibrate",
    hints=[
        "A network fine-tuned on five images is over-confident: its probabilities are too close to 0 and 1. "
        "One scalar can soften them all (notebook 07, section 5).",
        "Temperature scaling: find T > 0 minimising F.cross_entropy(val_logits / T, val_targets) (optimise "
        "log T with torch.optim.LBFGS or Adam, or try a grid of T); return lambda z: F.softmax(z / T, dim=1).",
        "log_t = torch.zeros((), requires_grad=True); opt = torch.optim.LBFGS([log_t], max_iter=100, "
        "line_search_fn='strong_wolfe'); def closure(): opt.zero_grad(); loss = F.cross_entropy(val_logits / "
        "log_t.exp(), val_targets); loss.backward(); return loss; opt.step(closure); T = log_t.exp().item()",
    ],
    solution_code="""
    def calibrate(val_logits, val_targets):
        log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
        z = val_logits.double()
        opt = torch.optim.LBFGS([log_t], max_iter=100, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(z / log_t.exp(), val_targets)
            loss.backward()
            return loss

        opt.step(closure)
        temperature = log_t.exp().item()
        return lambda logits: F.softmax(logits / temperature, dim=1)
    """,
)
