"""The kit's own source models: recipes that pretrain :class:`SmallCNN` on a source task.

The checkpoints ship in ``data/checkpoints/`` (sha256 in ``tlhelpers.models.WEIGHTS``
and ``data/README.md``). Rebuild them with::

    python -m tlhelpers.pretrain            # all recipes, writes data/checkpoints/
    python -m tlhelpers.pretrain fmnist_a   # one

A test re-runs the recipe and checks it still reaches the recorded accuracy.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .data import load_task
from .models import WEIGHTS, SmallCNN, sha256sum
from .paths import data_dir
from .training import evaluate, fit
from .utils import seed_everything
from .validation import check_choice


@dataclass(frozen=True)
class Recipe:
    """How a source checkpoint is made: task, architecture and optimisation settings."""

    task: str
    classes: tuple[str, ...]
    checkpoint: str
    width: int = 16
    epochs: int = 2
    lr: float = 3e-3
    batch_size: int = 128
    seed: int = 0
    #: re-estimate BatchNorm statistics on the training data after training
    recalibrate_bn: bool = True


RECIPES: dict[str, Recipe] = {
    "fmnist_a": Recipe(
        task="fmnist_a",
        classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"),
        checkpoint="small_cnn_fmnist_a",
    ),
    "fmnist_rand_a": Recipe(
        task="fmnist_rand_a",
        classes=("Pullover", "Dress", "Coat", "Shirt", "Sneaker"),
        checkpoint="small_cnn_fmnist_rand_a",
    ),
}


def get_recipe(source: str) -> Recipe:
    """The recipe for a source task name; ``ValueError`` lists the valid ones."""
    check_choice("source", source, RECIPES)
    return RECIPES[source]


def train_recipe(recipe: Recipe, progress: bool = True) -> tuple[SmallCNN, dict[str, float]]:
    """Train a fresh :class:`SmallCNN` by ``recipe``; return it and its test metrics."""
    seed_everything(recipe.seed)
    train, test = load_task(recipe.task, "train"), load_task(recipe.task, "test")
    model = SmallCNN(num_classes=len(recipe.classes), width=recipe.width)
    start = time.perf_counter()
    fit(model, train, epochs=recipe.epochs, lr=recipe.lr, batch_size=recipe.batch_size,
        seed=recipe.seed, device="cpu", progress=progress)
    if recipe.recalibrate_bn:
        # BN running statistics (momentum 0.1) trail the weights after a short run;
        # re-estimate them on the source training data with the final weights.
        from .preprocessing import adabn

        adabn(model, train, batch_size=1024, device="cpu")
    metrics = evaluate(model, test, device="cpu")
    metrics["train_seconds"] = time.perf_counter() - start
    return model, metrics


def build(source: str, out_dir: Path | None = None, progress: bool = True) -> dict:
    """Train one recipe and save its checkpoint; return path, sha256 and metrics."""
    recipe = get_recipe(source)
    model, metrics = train_recipe(recipe, progress=progress)
    out_dir = Path(out_dir) if out_dir else data_dir() / "checkpoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / WEIGHTS[recipe.checkpoint].filename
    torch.save(model.state_dict(), path)
    return {"path": str(path), "sha256": sha256sum(path), "size": path.stat().st_size, **metrics}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", default=list(RECIPES), help="recipes to build")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    for source in args.sources:
        info = build(source, args.out_dir)
        recorded = WEIGHTS[RECIPES[source].checkpoint]
        print(f"{source}: {info}")
        if info["sha256"] != recorded.sha256:
            print(
                "  note: sha256 differs from the recorded one (different machine or library "
                "versions?). Update WEIGHTS in tlhelpers/models.py and data/README.md if you "
                "mean to replace the shipped checkpoint."
            )


if __name__ == "__main__":
    main()
