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
Nothing in the package imports this module (top of the layers, like ``pretrain``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
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
from .models import SplitModel, scratch_model, split_at_block
from .paths import data_dir, repo_root, sha256sum
from .recipes import get_recipe
from .stats import Comparison, compare_unpaired
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
    src = dict(source.body[0].named_children())
    for i in range(1, n + 1):
        name = f"block{i}"
        getattr(net.body[0], name).load_state_dict(src[name].state_dict())
    return net


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


#: Threads of every run: the stored grid was made with one per point (``sweep threads=1``),
#: and the same count gives the live slice the same float sums, hence the same numbers.
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
    with fixed_threads(THREADS):  # the stored grid ran one thread per point: same sums
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
    c = compare_unpaired(a, b, confidence=confidence)
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


@dataclass(frozen=True)
class SeedMatch:
    """Live values at seeds the stored grid also ran, against the stored values of those seeds."""

    name: str
    seeds: tuple[int, ...]
    live: tuple[float, ...]
    stored: tuple[float, ...]
    tol: float

    @property
    def max_abs_diff(self) -> float:
        return float(max(abs(x - y) for x, y in zip(self.live, self.stored, strict=True)))

    @property
    def agrees(self) -> bool:
        return self.max_abs_diff <= self.tol

    def __str__(self) -> str:
        word = "match" if self.agrees else "DIFFERS from"
        seeds = ", ".join(map(str, self.seeds))
        return (f"{self.name}: live at seeds {seeds} {word} the stored values of the same seeds "
                f"(largest difference {self.max_abs_diff:.3f}, {'within' if self.agrees else 'over'} "
                f"{self.tol:g}).")  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "max_abs_diff": self.max_abs_diff, "agrees": self.agrees,
                "sentence": str(self)}  # fmt: skip


def seed_match(live: Mapping[int, float], stored: Mapping[int, float], name: str = "",
               tol: float = 0.002) -> SeedMatch:  # fmt: skip
    """Do live runs at seeds the grid also ran reproduce the stored values, seed by seed?

    :func:`run_point` is deterministic given the seed, so a live value at a stored seed is a
    re-computation, not a new draw: a Welch test against the stored seeds would not be
    independent. Instead every shared seed must match within ``tol`` (default 0.002, i.e. 10 of
    B's 5,000 test images, room for other hardware's floating point). ``live`` maps seed ->
    value and every one of its seeds must be in ``stored``.
    """
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}.")
    missing = sorted(set(live) - set(stored))
    if not live or missing:
        raise ValueError(f"live must map seeds the stored grid ran ({sorted(stored)}) to values, "
                         f"got seeds {sorted(live)}.")  # fmt: skip
    seeds = tuple(sorted(live))
    return SeedMatch(str(name), seeds, tuple(float(live[s]) for s in seeds),
                     tuple(float(stored[s]) for s in seeds), float(tol))  # fmt: skip


class DisagreementError(AssertionError):
    """Live runs disagree with the stored grid (the grid is stale, or the recipe changed)."""


def check_agreement(agreements: Sequence[Agreement | SeedMatch]) -> None:
    """Raise :class:`DisagreementError` listing every check that fails (an :class:`Agreement`
    whose interval excludes 0, a :class:`SeedMatch` over its tolerance)."""
    bad = [a for a in agreements if not a.agrees]
    if bad:
        lines = "\n".join(f"  - {a}" for a in bad)
        raise DisagreementError(
            f"{len(bad)} live result(s) disagree with the stored grid:\n{lines}\n"
            f"If the recipe or the code changed, rebuild the grid: {BUILD_COMMAND}"
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
               folder: str | Path | None = None) -> Path:  # fmt: skip
    """Write ``grid.csv`` and ``grid.json`` (recipe, provenance, the csv's sha256) into ``folder``."""
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
        "provenance": dict(provenance),
    }
    (folder / "grid.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def load_stored_grid(folder: str | Path | None = None) -> StoredGrid:
    """Read the stored grid after checking it; :class:`StoredGridError` names the rebuild command.

    Refused: a missing file, a ``grid.csv`` whose sha256 is not the one ``grid.json``
    records (altered), a grid made with a recipe other than :data:`RECIPE` (stale).
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
    if meta.get("recipe") != RECIPE.to_dict():
        raise StoredGridError(
            f"{folder} is stale: it was made with recipe {meta.get('recipe')}, but "
            f"tlhelpers.layer_transfer.RECIPE is now {RECIPE.to_dict()}. Rebuild it with "
            f"`{BUILD_COMMAND}`."
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
    args = parser.parse_args(argv)
    folder = build(args.seeds, args.workers, args.sweep_out, args.folder)
    meta = json.loads((folder / "grid.json").read_text())
    print(f"stored {folder}: csv sha256 {meta['csv_sha256']}, "
          f"sweep {meta['provenance']['sweep_wall_time_s']} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "Agreement",
    "agreement",
    "build",
    "BUILD_COMMAND",
    "check_agreement",
    "CONDITIONS",
    "CSV_COLUMNS",
    "CUTS",
    "DisagreementError",
    "fixed_sentence",
    "GRID_SEEDS",
    "key",
    "LayerTransferRecipe",
    "load_stored_grid",
    "main",
    "PAPER_2014",
    "POINT_NOTEBOOK",
    "RECIPE",
    "rows_from_points",
    "run_point",
    "seed_match",
    "SeedMatch",
    "SPLITS",
    "STORE",
    "store_grid",
    "StoredGrid",
    "StoredGridError",
    "task_data",
    "THREADS",
    "train_base",
    "train_condition",
    "transferred_model",
]
