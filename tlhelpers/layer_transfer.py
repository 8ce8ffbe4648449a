r"""Yosinski et al.'s layer-transfer experiment at laptop scale, and its stored grid.

Yosinski, Clune, Bengio & Lipson (2014), "How transferable are features in deep neural
networks?": split the classes into halves A and B, train a network on each (``baseA``,
``baseB``), then build networks for B whose first :math:`n` layers are copied from a
network and whose upper layers start from random values and are trained on B:

- ``BnB``: first :math:`n` layers from ``baseB``, frozen (a control: same task);
- ``AnB``: first :math:`n` layers from ``baseA``, frozen (transfer);
- ``BnB+``, ``AnB+``: the same, but the copied layers are fine-tuned too.

Here the network is the kit's :class:`~tlhelpers.models.SmallCNN` (3 conv blocks, so
:math:`n \in \{1, 2, 3\}`), the data Fashion-MNIST's 10 classes split into two random
halves (``"random"``, tasks ``fmnist_rand_a/b``, as in the paper) or by meaning
(``"semantic"``, classes 0-4 T-shirt/top, trouser, pullover, dress, coat vs 5-9 sandal,
shirt, sneaker, bag, ankle boot: the dissimilar case, shirt excepted). One recipe (:data:`RECIPE`) trains every network; :func:`run_point` runs one
(split, seed) and is what both the stored grid and notebook 05a's live slice call.

The full grid is made by the kit's sweep runner (one run of
``sweeps/layer_transfer_point.ipynb`` per split and seed) and stored with its recipe
and provenance in ``data/layer_transfer/``::

    python -m tlhelpers.layer_transfer build --workers 2

:func:`load_stored_grid` checks the csv against the sha256 recorded in ``grid.json`` and
the recorded recipe against :data:`RECIPE`, and names that command when either fails.
``grid.json`` also records the platform fingerprint and the code version the numbers were
computed with (:mod:`tlhelpers.fingerprint`): on the same platform and code a live
re-computation must reproduce them exactly; on another CPU or kernel set it need not (a
last-bit difference grows over 150 Adam steps), so :func:`seed_match` checks it in meaning
there, within :data:`MARGIN_SD` seed SDs, a margin derived from the cross-platform variation
measured beside the grid (``platform_variation.json``, written by
``python -m tlhelpers.layer_transfer variation``).
Nothing in the package imports this module (top of the layers, like ``pretrain``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import hashlib
import io
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .data import TensorImageDataset, data_length, few_shot_indices, load_task
from .features import cache_activations
from .fingerprint import (
    code_version,
    fingerprint_differences,
    platform_fingerprint,
    same_platform,
)
from .models import SplitModel, scratch_model, split_at_block
from .paths import data_dir, repo_root, sha256sum
from .recipes import get_recipe
from .stats import Comparison, Equivalence, compare_unpaired, equivalence
from .threads import fixed_threads
from .training import adabn, evaluate
from .validation import check_choice, check_int

#: split name -> (source task A, target task B) of :data:`tlhelpers.data.TASKS`.
SPLITS: dict[str, tuple[str, str]] = {
    "random": ("fmnist_rand_a", "fmnist_rand_b"),
    "semantic": ("fmnist_a", "fmnist_b"),
}
#: The five networks of the paper (``baseB`` has no cut).
CONDITIONS: tuple[str, ...] = ("baseB", "BnB", "BnB+", "AnB", "AnB+")
#: Cuts :math:`n`: the number of SmallCNN conv blocks copied.
CUTS: tuple[int, ...] = (1, 2, 3)
#: The command that rebuilds the stored grid (named in every error about it).
BUILD_COMMAND = "python -m tlhelpers.layer_transfer build --workers 2"
#: The sweep's one-point notebook and the stored grid's folder (relative to the repo / data/).
POINT_NOTEBOOK = Path("sweeps") / "layer_transfer_point.ipynb"
STORE = "layer_transfer"
#: Seeds of the stored grid.
GRID_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)

#: Yosinski et al. (2014), top-1 on B from the released logs (shared/reference/paper-results.md).
PAPER_2014: dict[str, Any] = {
    "n": [1, 2, 3, 4, 5, 6, 7],
    "BnB": [0.627, 0.624, 0.621, 0.605, 0.594, 0.619, 0.623],
    "AnB": [0.628, 0.624, 0.619, 0.600, 0.578, 0.581, 0.543],
    "AnB+": [0.637, 0.636, 0.643, 0.640, 0.645, 0.646, 0.647],
    "baseB": 0.625,
}


class StoredGridError(RuntimeError):
    """The stored grid is missing, altered or made with another recipe."""


@dataclass(frozen=True)
class LayerTransferRecipe:
    """How every network of the experiment is trained (the same for A, B and every condition).

    ``per_class`` training images per class are drawn (by the seed) from each task's
    training split; each network gets ``steps`` steps of the kit's ``train_recipe``
    (``"scratch"``: Adam 3e-3 for every layer, batch 64, BatchNorm in train mode): the
    upper layers of every transferred network start from random values, so they are
    trained like a network from scratch, and the paper, too, used one learning rate for
    all layers, copied or not. After training, the BatchNorm statistics of the trained
    layers are re-estimated on the training images (as for the kit's source checkpoints);
    frozen copied layers keep theirs (their activations are computed once, in eval mode). Accuracy is on B's whole test
    split (5,000 images). ``width`` is SmallCNN's.
    """

    per_class: int = 300
    steps: int = 150
    width: int = 16
    train_recipe: str = "scratch"
    #: re-estimate the trained layers' BatchNorm statistics on the training images
    recalibrate_bn: bool = True

    def __post_init__(self) -> None:
        check_int("per_class", self.per_class, minimum=1)
        check_int("steps", self.steps, minimum=1)
        check_int("width", self.width, minimum=1)
        get_recipe(self.train_recipe)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: The recipe of the stored grid and of notebook 05a's live slice.
RECIPE = LayerTransferRecipe()


def key(condition: str, n: int = 0) -> str:
    """Result name: ``"baseB"``, ``"baseA"`` or ``"AnB+_2"`` (condition and cut)."""
    check_choice("condition", condition, ("baseA", *CONDITIONS))
    if condition in ("baseA", "baseB"):
        return condition
    check_choice("n", n, CUTS)
    return f"{condition}_{n}"


def _init_seed(seed: int, role: str) -> int:
    """Distinct initialisations for A, B and the transferred networks of one seed."""
    return 10 * seed + {"A": 1, "B": 2, "transfer": 3}[role]


def task_data(
    task: str, seed: int, per_class: int
) -> tuple[TensorImageDataset, TensorImageDataset]:
    """``(train, test)``: ``per_class`` training images per class drawn by ``seed``, the whole test split."""
    train = load_task(task, "train")
    train = train.subset(few_shot_indices(train.targets, per_class, seed))
    return train, load_task(task, "test")


def train_base(
    train: TensorImageDataset, seed: int, recipe: LayerTransferRecipe = RECIPE, role: str = "B"
) -> SplitModel:
    """A network trained from scratch on ``train`` (``baseA`` or ``baseB``)."""
    model = scratch_model(len(train.classes), recipe.width, seed=_init_seed(seed, role))
    get_recipe(recipe.train_recipe).fit(model, train, seed=seed, steps=recipe.steps)
    return _recalibrate(model, train, recipe)


def _recalibrate(model, data, recipe: LayerTransferRecipe) -> SplitModel:
    """Re-estimate the BatchNorm statistics of ``model`` on its training ``data`` (one batch).

    After a short run at a high rate the running statistics (momentum 0.1) trail the
    weights; evaluating with them cost up to 0.2 accuracy on single seeds. The kit's
    source checkpoints are recalibrated the same way (``tlhelpers.pretrain``).
    """
    bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if recipe.recalibrate_bn and bn:
        n = data_length(data)
        adabn(model, data, batch_size=n)
    return model


def transferred_model(source: SplitModel, n: int, num_classes: int, init_seed: int,
                      width: int = 16) -> SplitModel:  # fmt: skip
    """A fresh SmallCNN (initialised by ``init_seed``) whose first ``n`` blocks are copies of ``source``'s.

    The upper blocks and the head keep their random initial values; ``source`` is untouched.
    """
    check_choice("n", n, CUTS)
    net = scratch_model(num_classes, width, seed=init_seed)
    src = dict(_features(source).named_children())
    for i in range(1, n + 1):
        name = f"block{i}"
        getattr(_features(net), name).load_state_dict(src[name].state_dict())
    return net


def _features(model: SplitModel) -> torch.nn.Module:
    """A SmallCNN SplitModel's ``features`` (``body[0]``), whose children are its blocks."""
    if not isinstance(model.body, torch.nn.Sequential):
        raise TypeError(
            "expected a SplitModel of the kit's SmallCNN (body = Sequential(features, pool)), "
            f"got a body of type {type(model.body).__name__}."
        )
    return model.body[0]


def train_condition(
    condition: str,
    n: int,
    source: SplitModel,
    train: TensorImageDataset,
    seed: int,
    recipe: LayerTransferRecipe = RECIPE,
) -> SplitModel:
    """Train one transferred network for B: ``condition`` in BnB, BnB+, AnB, AnB+ at cut ``n``.

    ``source`` is ``baseA`` (AnB, AnB+) or ``baseB`` (BnB, BnB+); the caller passes the
    right one. Frozen conditions train only the upper blocks and the head, on the
    copied blocks' activations computed once in eval mode (the same as freezing them
    with their BatchNorm statistics, and cheaper); "+" conditions train everything.
    """
    check_choice("condition", condition, CONDITIONS[1:])
    net = transferred_model(source, n, len(train.classes), _init_seed(seed, "transfer"),
                            recipe.width)  # fmt: skip
    fit = get_recipe(recipe.train_recipe).fit
    if condition.endswith("+"):
        fit(net, train, seed=seed, steps=recipe.steps)
        return _recalibrate(net, train, recipe)
    lower, upper = split_at_block(net, len(CUTS) - n)
    lower.requires_grad_(False)
    acts = cache_activations(lower, train)
    fit(upper, acts, seed=seed, steps=recipe.steps)
    _recalibrate(upper, acts, recipe)  # the upper blocks only: the frozen ones keep the source's
    return net


#: Threads of every run: the stored grid was made with one per point (``sweep threads=1``).
#: On the same platform the same count gives the live slice the same float sums, hence the
#: same numbers; another CPU or kernel set need not (:mod:`tlhelpers.fingerprint`).
THREADS = 1


def run_point(
    split: str,
    seed: int,
    *,
    recipe: LayerTransferRecipe = RECIPE,
    conditions: Sequence[str] = CONDITIONS,
    cuts: Sequence[int] = CUTS,
) -> dict[str, float]:
    """Test accuracies on B of ``conditions`` at ``cuts`` for one ``split`` and ``seed``.

    Keys from :func:`key` (``"baseB"``, ``"AnB+_2"``, ...) plus ``"baseA"`` (on A's test
    split) when an A condition is run. Only the base networks a condition needs are
    trained. The stored grid (the sweep) and notebook 05a's live slice both call this.
    """
    check_choice("split", split, SPLITS)
    check_int("seed", seed, minimum=0)
    for c in conditions:
        check_choice("conditions", c, CONDITIONS)
    for n in cuts:
        check_choice("cuts", n, CUTS)
    with fixed_threads(THREADS):  # the stored grid ran one thread per point
        task_a, task_b = SPLITS[split]
        train_b, test_b = task_data(task_b, seed, recipe.per_class)
        out: dict[str, float] = {}
        bases: dict[str, SplitModel] = {}
        if any(c.startswith("A") for c in conditions):
            train_a, test_a = task_data(task_a, seed, recipe.per_class)
            bases["A"] = train_base(train_a, seed, recipe, role="A")
            out["baseA"] = evaluate(bases["A"], test_a)["accuracy"]
        if any(c.startswith("B") or c == "baseB" for c in conditions):
            bases["B"] = train_base(train_b, seed, recipe, role="B")
            if "baseB" in conditions:
                out["baseB"] = evaluate(bases["B"], test_b)["accuracy"]
        for c in conditions:
            if c == "baseB":
                continue
            for n in cuts:
                net = train_condition(c, n, bases[c[0]], train_b, seed, recipe)
                out[key(c, n)] = evaluate(net, test_b)["accuracy"]
    return out


# ---------------------------------------------------------------- live vs stored


@dataclass(frozen=True)
class Agreement:
    """Welch interval of ``mean(live) - mean(stored)``; the two agree when it contains 0."""

    name: str
    live: tuple[float, ...]
    stored: tuple[float, ...]
    ci_low: float
    ci_high: float
    confidence: float

    @property
    def agrees(self) -> bool:
        return self.ci_low <= 0 <= self.ci_high

    def __str__(self) -> str:
        pct = f"{100 * self.confidence:g}%"
        word = "agrees with" if self.agrees else "DISAGREES with"
        return (
            f"{self.name}: live {np.mean(self.live):.3f} ({len(self.live)} seeds) {word} stored "
            f"{np.mean(self.stored):.3f} ({len(self.stored)} seeds): difference "
            f"{np.mean(self.live) - np.mean(self.stored):+.3f} ({pct} Welch CI "
            f"{self.ci_low:+.3f} to {self.ci_high:+.3f})."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "agrees": self.agrees, "sentence": str(self)}


def agreement(
    live: Sequence[float], stored: Sequence[float], name: str = "", confidence: float = 0.95
) -> Agreement:
    r"""Do live runs agree with stored ones? Welch's interval on the difference of their means.

    :math:`\bar l - \bar s \pm t_{(1+c)/2,\nu}\sqrt{s_l^2/n_l + s_s^2/n_s}` with the
    Welch-Satterthwaite :math:`\nu` (``scipy.stats.ttest_ind(..., equal_var=False)``'s
    interval, from :func:`tlhelpers.stats.compare_unpaired`; Welch, 1947). Unpaired: the live
    seeds need not be the stored ones. Both
    need >= 2 values; if both spreads are 0 the interval is the single difference.
    """
    a, b = np.asarray(live, float), np.asarray(stored, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(
            f"agreement needs >= 2 live and >= 2 stored values, got {len(a)}, {len(b)}."
        )
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        raise ValueError("agreement: live and stored values must be finite.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    c = compare_unpaired(a.tolist(), b.tolist(), confidence=confidence)
    return Agreement(
        name, tuple(map(float, a)), tuple(map(float, b)), c.ci_low, c.ci_high, float(confidence)
    )


def _f3(v: float) -> str:
    return f"{v:+.3f}"


def fixed_sentence(c: Comparison, width: int = 0) -> str:
    """``c``'s verdict sentence with every number at three decimals (``stats`` switches tiny ones to ``e``)."""
    pct = f"{100 * c.confidence:g}%"
    metric = f"{c.metric}, lower is better" if c.lower_is_better else c.metric
    return (f"{c.name_a:<{width}} vs {c.name_b} ({metric}, {c.n} paired seeds): {_f3(c.diff_mean)} "
            f"({pct} CI {_f3(c.ci_low)} to {_f3(c.ci_high)}): {c.verdict}.")  # fmt: skip


#: Exact agreement on the same platform and code: within half the csv's last digit (6 decimals),
#: i.e. the same number of correctly classified test images.
EXACT_TOL = 5e-7
#: The equivalence margin, in units of each cell's seed-to-seed SD (over the stored seeds), for
#: live values computed on another platform. Derived from the cross-platform variation measured
#: in ``data/layer_transfer/platform_variation.json`` (:func:`summarise_variation`): per seed,
#: other kernel sets moved a cell by up to 1.55 SD (0.51 SD root mean square); the 90% interval
#: of three shared seeds reached 2.09 SD at most; x :data:`SAFETY` 1.5 = 3.2 SD.
MARGIN_SD = 3.2
#: Level of each one-sided test of the equivalence check (a 90% interval).
EQUIVALENCE_ALPHA = 0.05


@dataclass(frozen=True)
class SeedMatch:
    """Live values at seeds the stored grid also ran, against the stored values of those seeds.

    ``exact``: same platform and code, so every value must be reproduced (within
    :data:`EXACT_TOL`). Otherwise the mean live-minus-stored difference must be
    equivalent to 0 within ``margin_sd`` x ``stored_sd`` (two one-sided tests,
    :func:`tlhelpers.stats.equivalence`).
    """

    name: str
    seeds: tuple[int, ...]
    live: tuple[float, ...]
    stored: tuple[float, ...]
    exact: bool
    stored_sd: float
    margin_sd: float
    tol: float = EXACT_TOL
    alpha: float = EQUIVALENCE_ALPHA
    reason: str = "another platform"

    @property
    def max_abs_diff(self) -> float:
        return float(max(abs(x - y) for x, y in zip(self.live, self.stored, strict=True)))

    @property
    def margin(self) -> float:
        """The equivalence margin in accuracy: ``margin_sd`` x the cell's seed-to-seed SD."""
        return self.margin_sd * self.stored_sd

    @property
    def test(self) -> Equivalence:
        return equivalence(self.live, self.stored, self.margin, alpha=self.alpha, name=self.name)

    @property
    def agrees(self) -> bool:
        return self.max_abs_diff <= self.tol if self.exact else self.test.equivalent

    def __str__(self) -> str:
        seeds = ", ".join(map(str, self.seeds))
        diff = ", ".join(_f3(x - y) for x, y in zip(self.live, self.stored, strict=True))
        if self.exact:
            word = "reproduce" if self.agrees else "DIFFER from"
            return (f"{self.name}: same platform and code, so live values at seeds {seeds} must "
                    f"reproduce the stored ones exactly; they {word} them (largest |live - stored| "
                    f"{self.max_abs_diff:.1e}, tolerance {self.tol:g}: the csv's rounding).")  # fmt: skip
        t = self.test
        ci = (f"{100 * (1 - 2 * self.alpha):g}% CI {_f3(t.ci_low)} to {_f3(t.ci_high)}"
              if t.n > 1 else "one seed: no interval")  # fmt: skip
        word = "equivalent" if self.agrees else "NOT equivalent"
        return (f"{self.name}: {self.reason}, so live values at seeds {seeds} are checked in "
                f"meaning: live - stored {diff}, mean {_f3(t.diff_mean)} ({ci}); margin "
                f"+/-{self.margin:.4f} = {self.margin_sd:g} x the cell's seed SD {self.stored_sd:.4f}: "
                f"{word}.")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_abs_diff": self.max_abs_diff, "margin": self.margin,
                "agrees": self.agrees, "sentence": str(self)}  # fmt: skip


def seed_match(live: Mapping[int, float], stored: Mapping[int, float], name: str = "", *,
               exact: bool, margin_sd: float = MARGIN_SD,
               reason: str = "another platform") -> SeedMatch:  # fmt: skip
    """Do live runs at seeds the grid also ran agree with the stored values of those seeds?

    :func:`run_point` is deterministic given the seed *on one platform*, so a live value at
    a stored seed is a re-computation, not a new draw (a Welch test against the stored
    seeds would not be independent). ``exact=True`` (same platform fingerprint and code
    version as the grid) requires every value reproduced; otherwise the check is one of
    meaning, two one-sided tests that the mean difference is within ``margin_sd`` seed SDs
    of the cell (the SD of ``stored`` over all its seeds). ``live`` maps seed -> value and
    every one of its seeds must be in ``stored``; ``stored`` maps every stored seed.
    ``reason`` says why the check is not exact (:func:`inexact_reason` words it from the
    grid's metadata: another platform, changed code, or both).
    """
    if isinstance(margin_sd, bool) or not isinstance(margin_sd, (int, float)) or not margin_sd >= 0:
        raise ValueError(f"margin_sd must be a number >= 0, got {margin_sd!r}.")
    missing = sorted(set(live) - set(stored))
    if not live or missing:
        raise ValueError(f"live must map seeds the stored grid ran ({sorted(stored)}) to values, "
                         f"got seeds {sorted(live)}.")  # fmt: skip
    if len(stored) < 2:
        raise ValueError(
            f"stored must hold >= 2 seeds (for the seed-to-seed SD), got {len(stored)}."
        )
    seeds = tuple(sorted(live))
    sd = float(np.std([float(v) for v in stored.values()], ddof=1))
    return SeedMatch(str(name), seeds, tuple(float(live[s]) for s in seeds),
                     tuple(float(stored[s]) for s in seeds), bool(exact), sd, float(margin_sd),
                     reason=str(reason))  # fmt: skip


class DisagreementError(AssertionError):
    """Live runs disagree with the stored grid; the message says what differed and what to do."""


def recipe_sha256(recipe: LayerTransferRecipe = RECIPE) -> str:
    """sha256 of the recipe's fields (sorted JSON)."""
    return hashlib.sha256(json.dumps(recipe.to_dict(), sort_keys=True).encode()).hexdigest()


#: Modules that orchestrate but compute none of the numbers (not followed by :func:`code_version_now`).
_NOT_COMPUTING = (
    "tlhelpers.notebook",
    "tlhelpers.sweep",
    "tlhelpers.runner",
    "tlhelpers.fingerprint",
)


@functools.cache
def code_version_now() -> dict[str, Any]:
    """:func:`tlhelpers.fingerprint.code_version` of this module and what it imports to compute."""
    return code_version(["tlhelpers.layer_transfer"], exclude=_NOT_COMPUTING)


def live_platform() -> dict[str, Any]:
    """The platform fingerprint of a run here (:data:`THREADS` threads, as :func:`run_point` uses)."""
    return platform_fingerprint(threads=THREADS)


def is_exact_setting(meta: Mapping[str, Any]) -> bool:
    """Same platform fingerprint and same code version as the grid ``meta``: exact match required."""
    code = (meta.get("code_version") or {}).get("sha256")
    return (
        same_platform(meta.get("platform"), live_platform())
        and code == code_version_now()["sha256"]
    )


def inexact_reason(meta: Mapping[str, Any] | None) -> str:
    """Why live values at stored seeds cannot be required to match the grid exactly.

    ``""`` when :func:`is_exact_setting` holds; otherwise the differences that matter, in words:
    ``"another platform"``, ``"the code changed since the grid was built"`` (the modules
    :func:`run_point` uses), ``"the recipe changed"``, or several of them joined by "and".
    """
    meta = meta or {}
    reasons = []
    if not same_platform(meta.get("platform"), live_platform()):
        reasons.append("another platform")
    if (meta.get("code_version") or {}).get("sha256") != code_version_now()["sha256"]:
        reasons.append("the code changed since the grid was built")
    stored_recipe = meta.get("recipe_sha256")
    if stored_recipe is not None and stored_recipe != recipe_sha256():
        reasons.append("the recipe changed")
    return " and ".join(reasons)


def live_checks(live: Mapping[str, Sequence[float]], stored: StoredGrid, split: str,
                seeds: Sequence[int], family_alpha: float = 0.05) -> list[Agreement | SeedMatch]:  # fmt: skip
    """Check live runs of grid cells against the stored grid, seed by seed where it can.

    ``live`` maps a cell's key (:func:`key`, e.g. ``"AnB_3"``) to its live values at ``seeds``.
    At seeds the grid also ran, a live value is a re-computation: :func:`seed_match`, exact
    when :func:`is_exact_setting` holds, else in meaning (the reason from
    :func:`inexact_reason`). At two or more seeds the grid did not run, the new values are new
    draws: Welch's interval against the stored values (:func:`agreement`), each at confidence
    :math:`1 - \\alpha/m` for :math:`m` such intervals (Bonferroni), so a correct grid fails a
    run by chance at most ``family_alpha`` of the time. A single new seed is not checked.
    """
    check_choice("split", split, SPLITS)
    if not 0 < family_alpha < 1:
        raise ValueError(f"family_alpha must be in (0, 1), got {family_alpha!r}.")
    seeds = list(seeds)
    shared = [s for s in seeds if s in stored.seeds]
    new = [s for s in seeds if s not in stored.seeds]
    exact = is_exact_setting(stored.meta)
    reason = inexact_reason(stored.meta) or "another platform"
    per_seed = stored.per_seed(split)
    unknown = sorted(set(live) - set(per_seed))
    if unknown:
        raise ValueError(
            f"live has cells the grid does not store: {unknown}; valid: {sorted(per_seed)}."
        )
    out: list[Agreement | SeedMatch] = []
    welch = len(live) if len(new) >= 2 else 0
    for k, values in live.items():
        if len(values) != len(seeds):
            raise ValueError(f"live[{k!r}] has {len(values)} values for {len(seeds)} seeds.")
        by_seed = dict(zip(seeds, values, strict=True))
        stored_by_seed = dict(zip(stored.seeds, per_seed[k], strict=True))
        name = f"{k} ({split})"
        if shared:
            out.append(seed_match({s: by_seed[s] for s in shared}, stored_by_seed, name=name,
                                  exact=exact, reason=reason))  # fmt: skip
        if welch:
            out.append(agreement([by_seed[s] for s in new], per_seed[k], name=f"{name}, new seeds {new}",
                                 confidence=1 - family_alpha / welch))  # fmt: skip
    return out


def diagnosis(meta: Mapping[str, Any] | None) -> tuple[list[str], bool]:
    """What differs between the stored grid (its ``grid.json``) and this run, and whether to rebuild.

    Returns ``(lines, rebuild)``: one line each for the platform fingerprint, the recipe hash
    and the code version; ``rebuild`` is True only when the recipe or the code changed
    (another platform alone is no reason: its numbers differ but mean the same).
    """
    meta = meta or {}
    lines, rebuild = [], False
    diffs = fingerprint_differences(meta.get("platform"), live_platform())
    lines.append(
        "platform: "
        + ("the same as the grid's" if not diffs else "differs (" + "; ".join(diffs) + ")")
    )
    stored_recipe, now = (
        meta.get("recipe_sha256")
        or (
            recipe_sha256(LayerTransferRecipe(**meta["recipe"]))
            if isinstance(meta.get("recipe"), dict)
            else None
        ),
        recipe_sha256(),
    )
    if stored_recipe == now:
        lines.append(f"recipe: the same (sha256 {now[:12]})")
    else:
        rebuild = True
        lines.append(f"recipe: CHANGED (stored sha256 {str(stored_recipe)[:12]}, now {now[:12]})")
    stored_code = (meta.get("code_version") or {}).get("sha256")
    code = code_version_now()["sha256"]
    if stored_code == code:
        lines.append(f"code version: the same (sha256 {code[:12]} over the modules run_point uses)")
    else:
        rebuild = True
        lines.append(
            f"code version: CHANGED since the grid was built (stored {str(stored_code)[:12]}, now "
            f"{code[:12]}; the grid's commit {meta.get('provenance', {}).get('git_commit', '?')[:12]})"
        )
    return lines, rebuild


def check_agreement(agreements: Sequence[Agreement | SeedMatch],
                    meta: Mapping[str, Any] | None = None) -> None:  # fmt: skip
    """Raise :class:`DisagreementError` listing every check that fails, what differed, and the remedy.

    ``meta`` is the stored grid's ``grid.json`` (:attr:`StoredGrid.meta`): the message names
    the platform, recipe and code differences (:func:`diagnosis`) and proposes a rebuild
    only when the recipe or the code changed.
    """
    bad = [a for a in agreements if not a.agrees]
    if not bad:
        return
    lines = "\n".join(f"  - {a}" for a in bad)
    why, rebuild = diagnosis(meta)
    if rebuild:
        remedy = (f"The recipe or the code changed since the grid was built: rebuild the grid "
                  f"with `{BUILD_COMMAND}`.")  # fmt: skip
    elif any(line.startswith("platform: differs") for line in why):
        remedy = ("Recipe and code are the grid's: do NOT rebuild (another platform's numbers differ, "
                  "but not by this much: the measured cross-platform variation is in "
                  "data/layer_transfer/platform_variation.json). Run again; if it persists, report it "
                  "with this run's results.json.")  # fmt: skip
    else:
        remedy = ("Same platform, recipe and code, yet other numbers: the computation is not "
                  "reproducible here (threads? a library build?). Do NOT rebuild; report it with "
                  "this run's results.json.")  # fmt: skip
    causes = "\n".join(f"  * {w}" for w in why)
    raise DisagreementError(
        f"{len(bad)} live result(s) disagree with the stored grid:\n{lines}\n"
        f"What differs from the grid:\n{causes}\n{remedy}"
    )


# ---------------------------------------------------------------- the stored grid

CSV_COLUMNS = ("split", "seed", "condition", "n", "accuracy")


@dataclass(frozen=True)
class StoredGrid:
    """The stored grid's rows (split, seed, condition, n, accuracy) and its ``grid.json``."""

    rows: tuple[dict[str, Any], ...]
    meta: dict[str, Any]

    @property
    def seeds(self) -> list[int]:
        return sorted({r["seed"] for r in self.rows})

    def values(self, split: str, condition: str, n: int = 0) -> list[float]:
        """Per-seed accuracies, in seed order (``KeyError`` naming what is not stored)."""
        name = key(condition, n)
        cond, cut = (name, 0) if "_" not in name else (condition, n)
        found = {r["seed"]: r["accuracy"] for r in self.rows
                 if r["split"] == split and r["condition"] == cond and r["n"] == cut}  # fmt: skip
        if not found:
            raise KeyError(f"no stored rows for split={split!r}, {name}.")
        return [found[s] for s in sorted(found)]

    def per_seed(self, split: str) -> dict[str, list[float]]:
        """``{key: per-seed accuracies}`` for every stored result of ``split``."""
        out = {"baseB": self.values(split, "baseB")}
        for c in CONDITIONS[1:]:
            for n in CUTS:
                out[key(c, n)] = self.values(split, c, n)
        return out


def rows_from_points(points: Mapping[tuple[str, int], Mapping[str, float]]) -> list[dict]:
    """``{(split, seed): run_point(...)}`` -> csv rows (split, seed, condition, n, accuracy)."""
    rows = []
    for (split, seed), res in sorted(points.items()):
        for name, acc in res.items():
            cond, _, cut = name.partition("_")
            rows.append({"split": split, "seed": int(seed), "condition": cond,
                         "n": int(cut or 0), "accuracy": float(acc)})  # fmt: skip
    return rows


def _csv_text(rows: Sequence[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({**r, "accuracy": f"{r['accuracy']:.6f}"})
    return buf.getvalue()


def store_grid(rows: Sequence[Mapping[str, Any]], provenance: Mapping[str, Any],
               folder: str | Path | None = None, platform: Mapping[str, Any] | None = None) -> Path:  # fmt: skip
    """Write ``grid.csv`` and ``grid.json`` into ``folder``.

    ``grid.json`` holds the recipe (and its sha256), the csv's sha256, the platform
    fingerprint the numbers were computed on (default: this process's, with
    :data:`THREADS` threads; the sweep's points ran here), the code version
    (:func:`code_version_now`) and the provenance. The fingerprint and the code version are
    metadata, not recipe: :func:`load_stored_grid` does not refuse a grid made elsewhere.
    """
    folder = Path(folder) if folder is not None else data_dir() / STORE
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "grid.csv"
    csv_path.write_text(_csv_text(rows))
    meta = {
        "what": "Yosinski et al. (2014) layer transfer on Fashion-MNIST with SmallCNN "
        "(tlhelpers.layer_transfer); test accuracy on task B",
        "recipe": RECIPE.to_dict(),
        "splits": {k: list(v) for k, v in SPLITS.items()},
        "conditions": list(CONDITIONS),
        "cuts": list(CUTS),
        "seeds": sorted({int(r["seed"]) for r in rows}),
        "csv_sha256": sha256sum(csv_path),
        "rebuild": BUILD_COMMAND,
        "recipe_sha256": recipe_sha256(),
        "platform": dict(platform) if platform is not None else live_platform(),
        "code_version": code_version_now(),
        "provenance": dict(provenance),
    }
    (folder / "grid.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_stored_grid(folder: str | Path | None = None) -> StoredGrid:
    """Read the stored grid after checking it; :class:`StoredGridError` names the rebuild command.

    Refused: a missing file, a ``grid.csv`` whose sha256 is not the one ``grid.json``
    records (altered), a grid made with a recipe other than :data:`RECIPE` (stale). A grid
    made on another platform or with other code is *not* refused: the live checks
    (:func:`seed_match`) compare it by meaning there, and :func:`diagnosis` names the
    differences.
    """
    folder = Path(folder) if folder is not None else data_dir() / STORE
    csv_path, json_path = folder / "grid.csv", folder / "grid.json"
    for p in (csv_path, json_path):
        if not p.is_file():
            raise StoredGridError(f"The stored layer-transfer grid {p} is missing; build it "
                                  f"with `{BUILD_COMMAND}`.")  # fmt: skip
    try:
        meta = json.loads(json_path.read_text())
    except json.JSONDecodeError as err:
        raise StoredGridError(f"{json_path} is not valid JSON ({err}); rebuild the grid with "
                              f"`{BUILD_COMMAND}`.") from None  # fmt: skip
    actual = sha256sum(csv_path)
    if actual != meta.get("csv_sha256"):
        raise StoredGridError(
            f"{csv_path} was altered: its sha256 {actual[:16]}... is not the "
            f"{str(meta.get('csv_sha256'))[:16]}... recorded in {json_path.name}. Restore it "
            f"(git checkout) or rebuild the grid with `{BUILD_COMMAND}`."
        )
    stored_hash = meta.get("recipe_sha256")
    if meta.get("recipe") != RECIPE.to_dict() or (
        stored_hash is not None and stored_hash != recipe_sha256()
    ):
        changed = sorted(k for k in {*RECIPE.to_dict(), *(meta.get("recipe") or {})}
                         if (meta.get("recipe") or {}).get(k) != RECIPE.to_dict().get(k))  # fmt: skip
        raise StoredGridError(
            f"{folder} is stale: it was made with recipe {meta.get('recipe')} (sha256 "
            f"{str(stored_hash)[:12]}), but tlhelpers.layer_transfer.RECIPE is now "
            f"{RECIPE.to_dict()} (sha256 {recipe_sha256()[:12]}; changed: "
            f"{', '.join(changed) or 'the recorded hash'}). Rebuild it with `{BUILD_COMMAND}`."
        )
    rows = []
    with csv_path.open() as f:
        for r in csv.DictReader(f):
            rows.append({"split": r["split"], "seed": int(r["seed"]), "condition": r["condition"],
                         "n": int(r["n"]), "accuracy": float(r["accuracy"])})  # fmt: skip
    return StoredGrid(tuple(rows), meta)


# ---------------------------------------------------------------- building it with the sweep runner


def _git_commit(root: Path) -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "tlhelpers", "sweeps"],
                               cwd=root, capture_output=True, text=True).stdout.strip()  # fmt: skip
        return commit + ("+uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def build(seeds: Sequence[int] = GRID_SEEDS, workers: int = 2, sweep_out: str | Path | None = None,
          folder: str | Path | None = None) -> Path:  # fmt: skip
    """Run the grid with the kit's sweep runner (resumable) and store it with its provenance."""
    from .notebook import environment
    from .sweep import plan_sweep, run_sweep

    root = repo_root() or Path.cwd()
    sweep_out = Path(sweep_out) if sweep_out else root / "build" / "sweeps" / "layer_transfer"
    plan = plan_sweep(root / POINT_NOTEBOOK, {"split": list(SPLITS), "seed": list(seeds)},
                      metric="AnB_3", x="split", source="layer_transfer.build")  # fmt: skip
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    commit, started = _git_commit(root), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    start = time.perf_counter()
    result = run_sweep(plan, sweep_out, workers=workers, threads=1)
    wall = time.perf_counter() - start
    if result.failed or result.incomplete or result.interrupted:
        raise RuntimeError(f"The sweep in {sweep_out} did not finish ({result}); run again.")
    points, run_times = {}, []
    for split in SPLITS:
        for seed in seeds:
            match = [
                p for p in (sweep_out / "runs").iterdir()
                if (p / "run.json").is_file()
                and json.loads((p / "run.json").read_text())["parameters"] == {"split": split, "seed": seed}
            ]  # fmt: skip
            doc = json.loads((match[0] / "results.json").read_text())
            points[(split, seed)] = doc["results"]
            run_times.append(doc.get("wall_time_s"))
    provenance = {
        "command": " ".join(
            [Path(sys.executable).name, "-m", "tlhelpers.layer_transfer", *sys.argv[1:]]
        ),  # fmt: skip
        "sweep": f"tlhelpers.sweep over {POINT_NOTEBOOK} (grid split x seed), output {sweep_out}",
        "git_commit": commit,
        "date_utc": started,
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": environment(short=True),
        "workers": workers,
        "threads_per_run": 1,
        "sweep_wall_time_s": round(wall, 1),
        "runs_skipped_as_complete": result.skipped,
        "point_wall_times_s": run_times,
        "load_average_at_start": load,
        "cpu_count": os.cpu_count(),
    }
    return store_grid(rows_from_points(points), provenance, folder)


# ---------------------------------------------------------------- cross-platform variation

#: The file beside the grid that records the measured cross-platform variation.
VARIATION_FILE = "platform_variation.json"
#: The live slice the variation is measured on (notebook 05a's: AnB and AnB+ at the top cut).
SLICE_CONDITIONS: tuple[str, ...] = ("AnB", "AnB+")
#: Safety factor between the largest measured cross-platform difference and the margin.
SAFETY = 1.5


def run_slice(split: str, seeds: Sequence[int], cut: int = 3,
              conditions: Sequence[str] = SLICE_CONDITIONS) -> dict[str, Any]:  # fmt: skip
    """``{"platform": fingerprint, "values": {key: {seed: accuracy}}}``: the live slice run here."""
    values: dict[str, dict[int, float]] = {}
    for seed in seeds:
        for k, v in run_point(split, seed, conditions=conditions, cuts=[cut]).items():
            if k != "baseA":
                values.setdefault(k, {})[int(seed)] = float(v)
    return {"platform": live_platform(), "split": split, "values": values}


def run_slice_elsewhere(capability: str, split: str, seeds: Sequence[int], cut: int = 3, *,
                        conditions: Sequence[str] = SLICE_CONDITIONS, env: Mapping[str, str] | None = None,
                        timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
    """:func:`run_slice` in a child process whose torch uses the kernel set ``capability``.

    ``ATEN_CPU_CAPABILITY`` (``default``, ``avx2``, ``avx512``, ... as this CPU allows)
    changes the vectorised kernels torch dispatches to: a second platform on one machine.
    ``env`` adds variables (e.g. ``ONEDNN_MAX_CPU_ISA`` for oneDNN's convolutions).
    """
    child_env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, **dict(env or {})}
    root = str(Path(__file__).resolve().parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(
        [root] + ([child_env["PYTHONPATH"]] if child_env.get("PYTHONPATH") else [])
    )
    cmd = [sys.executable, "-m", "tlhelpers.layer_transfer", "slice", "--split", split,
           "--cut", str(cut), "--seeds", *map(str, seeds), "--conditions", *conditions]  # fmt: skip
    done = subprocess.run(cmd, env=child_env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"the slice with ATEN_CPU_CAPABILITY={capability} failed:\n{done.stderr[-2000:]}"
        )
    doc = json.loads(done.stdout.strip().splitlines()[-1])
    doc["values"] = {k: {int(s): v for s, v in d.items()} for k, d in doc["values"].items()}
    doc["environment"] = {"ATEN_CPU_CAPABILITY": capability, **dict(env or {})}
    return doc


def summarise_variation(runs: Sequence[Mapping[str, Any]], grid: StoredGrid, safety: float = SAFETY,
                        window: int = 3) -> dict[str, Any]:  # fmt: skip
    """Each run's values minus the stored ones, per cell and seed, in units of the cell's seed SD.

    ``runs`` are :func:`run_slice` results (one per platform and split); the reference is
    the stored grid. For every run not on the grid's own platform, every cell and every
    ``window`` consecutive seeds (notebook 05a's live slice runs 3), the equivalence
    check's interval (:func:`tlhelpers.stats.equivalence`) is computed in SD units; the
    margin is ``safety`` x the largest bound any of them reached, rounded up to a tenth:
    a margin that every measured other platform passes with room to spare
    (:data:`MARGIN_SD`).
    """
    rows, windows = [], []
    for run in runs:
        same = same_platform(grid.meta.get("platform"), run["platform"])
        for name, by_seed in run["values"].items():
            cond, _, cut = name.partition("_")
            stored = dict(zip(grid.seeds, grid.values(run["split"], cond, int(cut)), strict=True))
            sd = float(np.std(list(stored.values()), ddof=1))
            seeds = sorted(by_seed)
            for seed in seeds:
                d = by_seed[seed] - stored[seed]
                rows.append({"split": run["split"], "cell": name, "seed": seed,
                             "kernels": run["platform"]["cpu_capability"],
                             "environment": run.get("environment", {}), "same_platform_as_grid": same,
                             "live": by_seed[seed], "stored": stored[seed], "diff": d, "seed_sd": sd,
                             "diff_in_sd": d / sd if sd > 0 else 0.0})  # fmt: skip
            for k in range(len(seeds) - window + 1):
                w = seeds[k : k + window]
                t = equivalence([by_seed[x] / sd for x in w], [stored[x] / sd for x in w], 0.0,
                                alpha=EQUIVALENCE_ALPHA)  # fmt: skip
                windows.append({"split": run["split"], "cell": name, "seeds": w,
                                "kernels": run["platform"]["cpu_capability"], "same_platform_as_grid": same,
                                "mean_in_sd": t.diff_mean, "ci_in_sd": [t.ci_low, t.ci_high],
                                "bound_in_sd": max(abs(t.ci_low), abs(t.ci_high))})  # fmt: skip
    other = [r for r in rows if not r["same_platform_as_grid"]]
    bounds = [w["bound_in_sd"] for w in windows if not w["same_platform_as_grid"]]
    largest = max(bounds, default=0.0)
    return {
        "rows": rows, "windows": windows,
        "largest_abs_diff_in_sd": max((abs(r["diff_in_sd"]) for r in other), default=0.0),
        "rms_diff_in_sd": float(np.sqrt(np.mean([r["diff_in_sd"] ** 2 for r in other]))) if other else 0.0,
        "largest_interval_bound_in_sd": largest, "window": window, "alpha": EQUIVALENCE_ALPHA,
        "safety": safety, "margin_sd": math.ceil(10 * safety * largest) / 10,
    }  # fmt: skip


def stamp(folder: str | Path | None = None, seeds: Sequence[int] | None = None) -> list[str]:
    """Record this platform and code version in ``grid.json`` if they reproduce the grid exactly.

    Re-runs the live slice (:data:`SLICE_CONDITIONS` at n = 3, both splits) at ``seeds``
    (default: every stored seed). If every value equals the stored one (within
    :data:`EXACT_TOL`), ``grid.json`` gets this platform's fingerprint and the current code
    version (the csv, its sha256 and the recipe stay as they are) and ``[]`` is returned;
    otherwise nothing is written and the differing values are returned. For after a change
    of code that should not change the numbers (a refactor of the training loop), so that
    notebook 05a checks exactly again here. ``grid.json``'s sha256 in ``data/README.md``
    must then be updated.
    """
    folder = Path(folder) if folder is not None else data_dir() / STORE
    grid = load_stored_grid(folder)
    bad = []
    for split in SPLITS:
        run = run_slice(split, list(seeds if seeds is not None else grid.seeds))
        for name, by_seed in run["values"].items():
            cond, _, cut = name.partition("_")
            stored = dict(zip(grid.seeds, grid.values(split, cond, int(cut)), strict=True))
            bad += [f"{name} ({split}) seed {s}: live {v:.6f}, stored {stored[s]:.6f}"
                    for s, v in sorted(by_seed.items()) if abs(v - stored[s]) > EXACT_TOL]  # fmt: skip
    if bad:
        return bad
    meta = {**grid.meta, "platform": live_platform(), "code_version": code_version_now(),
            "platform_note": f"platform and code_version recorded on {time.strftime('%Y-%m-%d', time.gmtime())} "
                             "by `python -m tlhelpers.layer_transfer stamp`: the live slice re-computed the stored "
                             "values exactly here"}  # fmt: skip
    (folder / "grid.json").write_text(json.dumps(meta, indent=2) + "\n")
    return []


def main(argv: list[str] | None = None) -> int:
    """``python -m tlhelpers.layer_transfer build``: run the grid and store it in ``data/``."""
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.layer_transfer",
                                     description=__doc__.splitlines()[0])  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="run the grid with the sweep runner and store it in data/")
    b.add_argument("--workers", type=int, default=2)
    b.add_argument("--seeds", type=int, nargs="+", default=list(GRID_SEEDS))
    b.add_argument("--sweep-out", default=None)
    b.add_argument("--folder", default=None, help="where to store (default data/layer_transfer)")
    sl = sub.add_parser("slice", help="run notebook 05a's live slice here and print it as JSON")
    sl.add_argument("--split", default="semantic", choices=list(SPLITS))
    sl.add_argument("--cut", type=int, default=3, choices=list(CUTS))
    sl.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    sl.add_argument(
        "--conditions", nargs="+", default=list(SLICE_CONDITIONS), choices=list(CONDITIONS)
    )
    v = sub.add_parser("variation", help="measure the slice under other kernel sets "
                       f"(ATEN_CPU_CAPABILITY) and write {VARIATION_FILE} beside the grid")  # fmt: skip
    v.add_argument("--capabilities", nargs="+", default=["default", "avx2"])
    v.add_argument("--seeds", type=int, nargs="+", default=list(GRID_SEEDS))
    v.add_argument("--folder", default=None)
    st = sub.add_parser("stamp", help="record this platform and code version in grid.json if the live slice "
                        "reproduces the grid exactly here")  # fmt: skip
    st.add_argument("--folder", default=None)
    args = parser.parse_args(argv)
    if args.cmd == "stamp":
        bad = stamp(args.folder)
        print(
            "\n".join(["not stamped: these values differ from the grid:", *bad])
            if bad
            else "stamped grid.json with this platform and code version; update its sha256 in data/README.md"
        )
        return 1 if bad else 0
    if args.cmd == "slice":
        print(json.dumps(run_slice(args.split, args.seeds, args.cut, args.conditions)))
        return 0
    if args.cmd == "variation":
        folder = Path(args.folder) if args.folder else data_dir() / STORE
        grid = load_stored_grid(folder)
        runs = [
            run_slice_elsewhere(c, split, args.seeds) for c in args.capabilities for split in SPLITS
        ]
        doc = {"what": "notebook 05a's live slice (AnB, AnB+ at cut 3) under other kernel sets, minus "
                       "the stored grid, per cell and seed, in units of the cell's seed-to-seed SD",
               "command": " ".join(["python -m tlhelpers.layer_transfer", *sys.argv[1:]]),
               **summarise_variation(runs, grid)}  # fmt: skip
        (folder / VARIATION_FILE).write_text(json.dumps(doc, indent=1) + "\n")
        print(
            f"largest cross-platform difference {doc['largest_abs_diff_in_sd']:.2f} seed SD; "
            f"margin {doc['margin_sd']} SD (safety {doc['safety']})"
        )
        return 0
    folder = build(args.seeds, args.workers, args.sweep_out, args.folder)
    meta = json.loads((folder / "grid.json").read_text())
    print(f"stored {folder}: csv sha256 {meta['csv_sha256']}, "
          f"sweep {meta['provenance']['sweep_wall_time_s']} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "agreement",
    "Agreement",
    "build",
    "BUILD_COMMAND",
    "check_agreement",
    "code_version_now",
    "CONDITIONS",
    "CSV_COLUMNS",
    "CUTS",
    "diagnosis",
    "DisagreementError",
    "EXACT_TOL",
    "fixed_sentence",
    "GRID_SEEDS",
    "inexact_reason",
    "is_exact_setting",
    "key",
    "LayerTransferRecipe",
    "live_checks",
    "live_platform",
    "load_stored_grid",
    "main",
    "MARGIN_SD",
    "PAPER_2014",
    "POINT_NOTEBOOK",
    "RECIPE",
    "recipe_sha256",
    "rows_from_points",
    "run_point",
    "run_slice",
    "run_slice_elsewhere",
    "SAFETY",
    "seed_match",
    "SeedMatch",
    "SLICE_CONDITIONS",
    "SPLITS",
    "stamp",
    "STORE",
    "store_grid",
    "StoredGrid",
    "StoredGridError",
    "summarise_variation",
    "task_data",
    "THREADS",
    "train_base",
    "train_condition",
    "transferred_model",
    "VARIATION_FILE",
]
