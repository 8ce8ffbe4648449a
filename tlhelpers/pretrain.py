"""The kit's own source models: train :class:`SmallCNN` on a source task by its recipe.

The recipes (:data:`tlhelpers.models.SOURCE_RECIPES`) live in :mod:`tlhelpers.models`,
which reads the architecture from them; this module only trains and saves, and nothing
in the package imports it (top of the layers). The checkpoints ship in
``data/checkpoints/`` (sha256 in ``tlhelpers.models.WEIGHTS`` and ``data/README.md``).
Rebuild them with::

    python -m tlhelpers.pretrain            # all recipes, writes data/checkpoints/
    python -m tlhelpers.pretrain fmnist_a   # one

A test re-runs the recipe and checks it still reaches the recorded accuracy.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from .data import TensorImageDataset, prepare_images
from .models import SOURCE_RECIPES, WEIGHTS, SmallCNN, SourceRecipe, get_source_recipe, source_data
from .paths import data_dir, sha256sum
from .runtime import seeded
from .training import adabn, evaluate, fit

__all__ = [
    "build",
    "main",
    "train_recipe",
]


def train_recipe(recipe: SourceRecipe, progress: bool = True) -> tuple[SmallCNN, dict[str, float]]:
    """Train a fresh :class:`SmallCNN` by ``recipe``; return it and its test metrics.

    For a random-label recipe the metrics also hold ``train_accuracy`` (how much it memorised).
    """
    train, test = source_data(recipe)
    if recipe.image_size is not None:
        train, test = (
            TensorImageDataset(
                prepare_images(d.images, recipe.image_size, None, None).clamp(0, 1),
                d.targets,
                d.classes,
            )
            for d in (train, test)
        )
    with seeded(recipe.seed):
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
        adabn(model, train, batch_size=1024, device="cpu")
    metrics = evaluate(model, test, device="cpu")
    if recipe.random_labels:
        metrics["train_accuracy"] = evaluate(model, train, device="cpu")["accuracy"]
    metrics["train_seconds"] = time.perf_counter() - start
    return model, metrics


def build(source: str, out_dir: Path | None = None, progress: bool = True) -> dict:
    """Train one recipe and save its checkpoint; return path, sha256 and metrics."""
    recipe = get_source_recipe(source)
    model, metrics = train_recipe(recipe, progress=progress)
    out_dir = Path(out_dir) if out_dir else data_dir() / "checkpoints"
    out_dir.mkdir(parents=True, exist_ok=True)
    known = WEIGHTS.get(recipe.checkpoint)
    path = out_dir / (known.filename if known else f"{recipe.checkpoint}.pt")
    torch.save(model.state_dict(), path)
    return {"path": str(path), "sha256": sha256sum(path), "size": path.stat().st_size, **metrics}


def main(argv: list[str] | None = None) -> None:
    """``python -m tlhelpers.pretrain [SOURCES]``: train and save the kit's source checkpoints."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", default=list(SOURCE_RECIPES), help="recipes to build")
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    for source in args.sources:
        info = build(source, args.out_dir)
        recorded = WEIGHTS.get(SOURCE_RECIPES[source].checkpoint)
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
