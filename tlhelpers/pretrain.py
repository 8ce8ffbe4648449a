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

from .data import TensorImageDataset, few_shot_indices, load_task, prepare_images
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
    #: train on a stratified subset of this many images per class (seed ``seed``); None = all
    per_class: int | None = None
    #: resize the source images to this size (e.g. 8x8 digits to the 28x28 of Fashion-MNIST)
    image_size: int | None = None


_FMNIST_A = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")

#: Source recipes. The smaller sources of notebook 02 get about the same number of Adam
#: steps as "fmnist_a" (2 epochs x 235 batches = 470): epochs = 470 / batches per epoch,
#: so they differ in how much (and which) data they saw, not in how long they trained.
RECIPES: dict[str, Recipe] = {
    "fmnist_a": Recipe(task="fmnist_a", classes=_FMNIST_A, checkpoint="small_cnn_fmnist_a"),
    # the same task with 1,250 images (250 per class), as many as the digits source
    "fmnist_a_1250": Recipe(
        task="fmnist_a",
        classes=_FMNIST_A,
        checkpoint="small_cnn_fmnist_a_1250",
        per_class=250,
        epochs=47,
    ),
    # the same task with 100 images (20 per class): one batch per epoch
    "fmnist_a_100": Recipe(
        task="fmnist_a",
        classes=_FMNIST_A,
        checkpoint="small_cnn_fmnist_a_100",
        per_class=20,
        epochs=470,
    ),
    # another grey domain: scikit-learn's 1,257 training digits, upsampled 8x8 -> 28x28
    "digits": Recipe(
        task="digits",
        classes=tuple(str(i) for i in range(10)),
        checkpoint="small_cnn_digits",
        epochs=47,
        image_size=28,
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
    if recipe.per_class is not None:
        train = train.subset(few_shot_indices(train.targets, recipe.per_class, recipe.seed))
    if recipe.image_size is not None:
        train, test = (
            TensorImageDataset(
                prepare_images(d.images, recipe.image_size, None, None).clamp(0, 1),
                d.targets,
                d.classes,
            )
            for d in (train, test)
        )
    model = SmallCNN(num_classes=len(recipe.classes), width=recipe.width)
    start = time.perf_counter()
    fit(
        model,
        train,
        epochs=recipe.epochs,
        lr=recipe.lr,
        batch_size=recipe.batch_size,
        seed=recipe.seed,
        device="cpu",
        progress=progress,
    )
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
    known = WEIGHTS.get(recipe.checkpoint)
    path = out_dir / (known.filename if known else f"{recipe.checkpoint}.pt")
    torch.save(model.state_dict(), path)
    return {"path": str(path), "sha256": sha256sum(path), "size": path.stat().st_size, **metrics}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", default=list(RECIPES), help="recipes to build")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    for source in args.sources:
        info = build(source, args.out_dir)
        recorded = WEIGHTS.get(RECIPES[source].checkpoint)
        print(f"{source}: {info}")
        if recorded is None:
            print("  note: not registered yet; add it to WEIGHTS and data/README.md to ship it.")
        elif info["sha256"] != recorded.sha256:
            print(
                "  note: sha256 differs from the recorded one (different machine or library "
                "versions?). Update WEIGHTS in tlhelpers/models.py and data/README.md if you "
                "mean to replace the shipped checkpoint."
            )


if __name__ == "__main__":
    main()
