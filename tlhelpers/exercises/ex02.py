"""Exercises of notebook 02 (model choice): LEEP by hand on a 3x2 table, LEEP, the H-score.

``from tlhelpers.exercises import ex02``; ``ex02.leep_table.check(leep_tables)``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..transferability import h_score as _h_score
from ..transferability import leep as _leep
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

__all__ = ["leep_table", "leep", "h_score"]

#: The worked example: 6 target images, 2 source classes (columns), 3 target classes.
THETA = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
LABELS = np.array([0, 0, 1, 1, 2, 2])


def _random_case(seed: int, n: int = 12, z: int = 4, c: int = 3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, z)) * 2
    theta = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.concatenate([np.arange(c), rng.integers(0, c, n - c)])
    return theta, labels


def _tables(theta: np.ndarray, labels: np.ndarray):
    c = labels.max() + 1
    joint = np.zeros((c, theta.shape[1]))
    for i, y in enumerate(labels):
        joint[y] += theta[i]
    joint /= len(labels)
    return joint, joint / joint.sum(0, keepdims=True)


def _as_table(value, what: str, shape) -> torch.Tensor:
    if isinstance(value, (list, tuple)):  # nested lists are fine for a table typed by hand
        try:
            value = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise Wrong(f"{what} should be a NumPy array of numbers.") from None
    if not isinstance(value, (np.ndarray, torch.Tensor)):
        raise Wrong(f"{what} should be a NumPy array, got a {type(value).__name__}.")
    return tensor(value, what, shape=shape, device="cpu", allow_numpy=True).double()


def _check_tables(fn, hidden: bool) -> str:
    cases = [(THETA, LABELS)] + (
        [_random_case(1)] if not hidden else [_random_case(5), _random_case(6, 9, 2, 3)]
    )
    for theta, labels in cases:
        out = call_student(fn, theta.copy(), labels.copy(), name="leep_tables")
        if out is None:
            raise Wrong("`leep_tables` returned None: return (joint, conditional).")
        if not isinstance(out, tuple) or len(out) != 2:
            raise Wrong(
                f"`leep_tables` should return two tables (joint, conditional), got a {type(out).__name__}."
            )
        want_j, want_c = (torch.from_numpy(t) for t in _tables(theta, labels))
        shape = tuple(want_j.shape)
        joint = _as_table(out[0], "the joint table P(y, z)", shape)
        cond = _as_table(out[1], "the conditional table P(y | z)", shape)
        if not close(joint, want_j):
            total = joint.sum().item()
            if abs(total - 1) > 1e-6 and close(joint / total, want_j):
                raise Wrong(
                    f"your P(y, z) sums to {total:.4g}, not 1: divide the sums by n = {len(labels)}."
                )
            if close(joint, want_j.T):
                raise Wrong(
                    "your joint table is transposed: rows are target classes y, columns source classes z."
                )
            raise Wrong(f"P(y, z): {worst_entry(joint, want_j)} (shape {shape}).")
        if not close(cond, want_c):
            if close(cond, want_j / want_j.sum(1, keepdim=True)):
                raise Wrong(
                    "P(y | z) is normalised along the wrong axis: each column z must sum to 1 "
                    "(divide by P(z) = the column sums), not each row."
                )
            sums = cond.sum(0)
            if not close(sums, torch.ones_like(sums)):
                raise Wrong(
                    f"P(y | z) is not normalised: its columns sum to {[round(v, 4) for v in sums.tolist()]}, "
                    "each should sum to 1."
                )
            raise Wrong(f"P(y | z): {worst_entry(cond, want_c)}.")
    return "Both tables are right (columns of P(y | z) sum to 1)."


leep_table = Exercise(
    id="ex02_leep_table",
    title="LEEP by hand: the 3x2 tables",
    minutes=15,
    checker=_check_tables,
    answer_name="leep_tables",
    hints=[
        "P(y, z) is the average, over the n images, of theta_i(z) put in row y_i: a (classes x source classes) table.",
        "joint[y] accumulates the rows theta_i of the images labelled y; divide by n at the end. "
        "P(y | z) divides each column by its sum P(z).",
        "joint = np.stack([theta[labels == y].sum(0) for y in range(labels.max() + 1)]) / len(labels); "
        "return joint, joint / joint.sum(0, keepdims=True)",
    ],
    solution_code="""
    def leep_tables(theta, labels):
        joint = np.stack([theta[labels == y].sum(0) for y in range(labels.max() + 1)]) / len(labels)
        return joint, joint / joint.sum(0, keepdims=True)
    """,
)


def _check_leep(fn, hidden: bool) -> str:
    cases = (
        [(THETA, LABELS), _random_case(2)]
        if not hidden
        else [_random_case(8), _random_case(9, 20, 5, 4)]
    )
    for theta, labels in cases:
        out = call_student(fn, theta.copy(), labels.copy(), name="leep_score")
        if out is None:
            raise Wrong("`leep_score` returned None: did you forget `return`?")
        got = number(out, "the LEEP score")
        want = _leep(theta, labels)
        if not close(got, want, rtol=1e-5):
            j, cnd = _tables(theta, labels)
            lik = (theta * cnd[labels]).sum(1)
            rowcond = j / j.sum(1, keepdims=True)
            variants = [
                (
                    np.log(lik).sum(),
                    f"you summed the log-likelihoods; LEEP is their mean over the n = {len(labels)} images.",
                ),
                (np.log2(lik).mean(), "LEEP uses the natural log (np.log), not log2."),
                (np.log10(lik).mean(), "LEEP uses the natural log (np.log), not log10."),
                (
                    np.log((theta * j[labels]).sum(1)).mean(),
                    "use P(y | z), not the joint P(y, z), inside the sum.",
                ),
                (
                    np.log((theta * rowcond[labels]).sum(1)).mean(),
                    "P(y | z) must be normalised over y for each z (columns sum to 1), not over z.",
                ),
                (lik.mean(), "take the log of each image's likelihood before averaging."),
                (np.log(lik.mean()), "average the logs, not the log of the average."),
            ]
            if got > 0:
                raise Wrong(
                    f"LEEP is an average log-probability, so it is <= 0; you returned {got:.4g}."
                )
            raise Wrong(diagnose(got, variants, f"LEEP is off: {off_by(got, want)}."))
    return f"LEEP of the worked example is {_leep(THETA, LABELS):.4f}."


leep = Exercise(
    id="ex02_leep",
    title="The LEEP score",
    minutes=10,
    checker=_check_leep,
    answer_name="leep_score",
    hints=[
        "LEEP is the mean log-likelihood of the 'expected empirical predictor' "
        "p(y | x_i) = sum_z P(y | z) theta_i(z).",
        "With cond = P(y | z) from the tables, the likelihood of image i's own label is (theta[i] * cond[labels[i]]).sum().",
        "_, cond = leep_tables(theta, labels); return float(np.mean(np.log((theta * cond[labels]).sum(1))))",
    ],
    solution_code="""
    def leep_score(theta, labels):
        _, cond = leep_tables(theta, labels)
        return float(np.mean(np.log((theta * cond[labels]).sum(1))))
    """,
)


def _feature_case(seed: int, n: int = 40, d: int = 4, c: int = 3):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % c
    feats = rng.normal(size=(n, d)) + rng.normal(size=(c, d))[labels] * 1.5
    return feats, labels


def _check_h(fn, hidden: bool) -> str:
    cases = (
        [_feature_case(3), _feature_case(4, 30, 6, 4)]
        if not hidden
        else [_feature_case(11, 50, 3, 5)]
    )
    for feats, labels in cases:
        out = call_student(fn, feats.copy(), labels.copy(), name="h_score")
        if out is None:
            raise Wrong("`h_score` returned None: did you forget `return`?")
        if isinstance(out, np.ndarray) and out.ndim == 2:
            raise Wrong(f"you returned a {out.shape} matrix: the H-score is its trace.")
        got = number(out, "the H-score")
        want = _h_score(feats, labels)
        if not close(got, want, rtol=1e-4):
            cov = np.cov(feats, rowvar=False)
            mus = np.stack([feats[labels == y].mean(0) for y in range(labels.max() + 1)])
            cov_means = np.cov(mus, rowvar=False)
            variants = [
                (
                    np.trace(np.linalg.pinv(cov) @ cov_means),
                    "cov(E[f | y]) weighs each class mean by its "
                    "count: replace every sample by its class mean, then take the covariance of those n rows.",
                ),
                (
                    np.trace(np.linalg.pinv(cov_means) @ cov)
                    if np.linalg.matrix_rank(cov_means)
                    else np.nan,
                    "the inverse goes on cov(f), the total covariance, not on the between-class one.",
                ),
            ]
            raise Wrong(
                diagnose(
                    got, variants, f"for features of shape {feats.shape}: {off_by(got, want)}."
                )
            )
    return "tr(cov(f)^+ cov(E[f | y])) matches."


h_score = Exercise(
    id="ex02_h_score",
    title="The H-score",
    minutes=15,
    checker=_check_h,
    answer_name="h_score",
    hints=[
        "H(f) = tr(cov(f)^+ cov(E[f | y])): between-class spread in units of total spread.",
        "E[f | y] for a sample is the mean feature of its class: build an (n, D) array of class "
        "means, row by row. np.cov(x, rowvar=False) gives a (D, D) covariance.",
        "means = np.stack([features[labels == y].mean(0) for y in labels]); "
        "return float(np.trace(np.linalg.pinv(np.cov(features, rowvar=False)) @ np.cov(means, rowvar=False)))",
    ],
    solution_code="""
    def h_score(features, labels):
        means = np.stack([features[labels == y].mean(0) for y in labels])
        cov_f = np.cov(features, rowvar=False)
        cov_m = np.cov(means, rowvar=False)
        return float(np.trace(np.linalg.pinv(cov_f) @ cov_m))
    """,
)
