"""The notebooks' interactive demos: callbacks for :func:`tlhelpers.interactive.interact`.

Each ``*_demo`` draws one figure for one choice of its arguments; the notebook hands
it to ``interact`` with the widget specs. They run headless too (``TLHELPERS_WIDGETS=0``
calls them once with the initial values), so a test can call them directly.

- :func:`normalization_demo` (notebook 01): what the source model sees after preprocessing.
- :func:`ranking_demo` (notebook 02): candidate models ranked by a transferability score.
- :func:`make_l2sp_demo` (notebook 03): fine-tuning with an L2-SP strength from a slider.
- :func:`make_curves_demo` (notebook 04): chosen learning curves, raw or relative.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .data import NORMALIZATIONS, Data, Preprocess, normalization_for
from .losses import make_objective
from .models import parameter_state, transfer_model, weight_distance
from .plots import plot_learning_curves
from .training import History, evaluate, fine_tune
from .validation import check_choice, check_int, check_positive

__all__ = [
    "make_curves_demo",
    "make_l2sp_demo",
    "normalization_demo",
    "ranking_demo",
    "SCORE_LABELS",
    "short",
]


def short(x: float) -> str:
    """``x`` to 3 significant digits for titles and labels: 0.316228 -> ``"0.316"``."""
    return f"{float(x):.3g}"


def normalization_demo(
    images: torch.Tensor, normalization: str = "imagenet", size: int = 64, index: int = 0
) -> None:
    """ipywidgets demo (notebook 01): what the source model sees after preprocessing.

    Shows image ``index`` of ``images`` (N, C, H, W) in [0, 1] resized to ``size`` and
    grey->RGB, then normalised with ``normalization`` (``"imagenet"``, ``"target"``,
    ``"none"``), and the histogram of all input values against the standard normal that
    an ImageNet model's first layer expects. Prints the per-channel mean and std.
    """
    import matplotlib.pyplot as plt

    check_choice("normalization", normalization, NORMALIZATIONS)
    check_int("size", size, minimum=2)
    check_int("index", index, minimum=0)
    if index >= len(images):
        raise ValueError(f"index={index} but there are only {len(images)} images.")
    norm = normalization_for(normalization, images)
    x = Preprocess(size, 3, norm)(images)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    img = x[index].permute(1, 2, 0).numpy()
    axes[0].imshow((img - img.min()) / max(img.max() - img.min(), 1e-8))
    axes[0].set_title(f"input {size}x{size} (display rescaled)", fontsize=9)
    axes[0].axis("off")
    grid = np.linspace(-4, 4, 200)
    axes[1].hist(x.flatten().numpy(), bins=60, density=True, alpha=0.6, label="input values")
    axes[1].plot(grid, np.exp(-(grid**2) / 2) / np.sqrt(2 * np.pi), "k--", label="N(0, 1)")
    axes[1].set(xlim=(-4, 4), title=f"normalization = {normalization!r}", xlabel="value")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    plt.show()
    mean, std = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
    print(f"per-channel mean {np.round(mean.numpy(), 2)}, std {np.round(std.numpy(), 2)}")


#: Display names of the scores :func:`ranking_demo` can rank by.
SCORE_LABELS = {
    "logme": "LogME",
    "h_score": "H-score",
    "h_score_shrinkage": "H-score (shrinkage)",
    "leep": "LEEP",
    "nce": "NCE",
    "probe": "linear probe accuracy",
}


def ranking_demo(
    table: Sequence[Mapping[str, Any]],
    target: str,
    score: str = "logme",
    accuracy_key: str = "fine_tuned",
) -> None:
    """ipywidgets demo (notebook 02): rank the candidate models of one target by a score.

    ``table`` has one row per (target, model): ``{"target", "model", <score>...,
    accuracy_key}``. Left: models sorted by ``score`` (best on top). Right: score
    against measured fine-tuned accuracy, with Kendall's tau in the title. Prints the
    model the score would pick and the one that fine-tuned best.
    """
    import matplotlib.pyplot as plt
    from scipy import stats

    rows = [r for r in table if r.get("target") == target]
    if not rows:
        targets = sorted({str(r.get("target")) for r in table})
        raise ValueError(f"Unknown target {target!r}. Valid values: {', '.join(targets)}.")
    scores = [k for k in SCORE_LABELS if all(k in r for r in rows)]
    check_choice("score", score, scores)
    rows = [r for r in rows if r[score] is not None and np.isfinite(r[score])]
    rows = sorted(rows, key=lambda r: r[score], reverse=True)
    names = [r["model"] for r in rows]
    s = np.array([r[score] for r in rows], dtype=float)
    acc = np.array([r[accuracy_key] for r in rows], dtype=float)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].barh(range(len(rows))[::-1], s, color="C0", alpha=0.7)
    axes[0].set_yticks(range(len(rows))[::-1], names)
    axes[0].set(xlabel=SCORE_LABELS[score], title=f"{target}: ranking by {SCORE_LABELS[score]}")
    axes[1].scatter(s, acc, color="C1")
    for name, x, y in zip(names, s, acc, strict=True):
        axes[1].annotate(name, (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    tau = stats.kendalltau(s, acc).statistic if len(rows) > 2 else float("nan")
    axes[1].set(
        xlabel=SCORE_LABELS[score],
        ylabel="fine-tuned accuracy",
        title=f"Kendall tau = {tau:.2f} over {len(rows)} models",
    )
    axes[1].grid(alpha=0.3)
    axes[1].margins(x=0.25, y=0.15)  # room for the model names beside the rightmost points
    fig.tight_layout()
    plt.show()
    best = names[int(np.argmax(acc))]
    print(
        f"{SCORE_LABELS[score]} picks {names[0]!r}; best fine-tuned: {best!r}"
        f" ({'agree' if names[0] == best else 'disagree'})"
    )


def make_l2sp_demo(
    source: nn.Module,
    train: Data,
    test: Data,
    *,
    num_classes: int = 5,
    steps: int = 60,
    lr: float = 1e-3,
    seed: int = 0,
    recipe: Any = None,
    eval_name: str = "test",
) -> Callable[[float], None]:
    """A callback ``demo(alpha)`` for an ipywidgets slider over the L2-SP strength.

    Each call fine-tunes (``steps`` full-batch Adam steps at ``lr``, or ``recipe.fit`` with
    ``steps`` when a :class:`tlhelpers.recipes.Recipe` is given; cached per ``alpha``) and
    plots the task loss, the L2-SP term and :math:`\\lVert w - w^0\\rVert` over training
    (left) and the accuracy on ``test`` against distance from the source for every
    ``alpha`` tried so far (right). Pass a validation split as ``test`` with
    ``eval_name="validation"`` when the widget is used to *choose* ``alpha``. Returns
    None; ``demo.cache`` holds ``{alpha: (accuracy, distance, history)}``.
    """
    cache: dict[float, tuple[float, float, History]] = {}

    def run(alpha: float) -> tuple[float, float, History]:
        key = round(float(alpha), 8)
        if key not in cache:
            model = transfer_model(source, num_classes, seed)
            ref = parameter_state(model, "body.")
            obj = make_objective("l2sp", model, strength=max(key, 0.0))
            if recipe is not None:  # duck-typed: recipes sit above this module's imports
                hist = recipe.fit(
                    model, train, objective=obj, steps=steps, seed=seed, reference=ref
                )
            else:
                hist = fine_tune(
                    model, train, objective=obj, steps=steps, lr=lr, seed=seed, reference=ref
                )
            acc = evaluate(model, test)["accuracy"]
            cache[key] = (acc, weight_distance(model, ref), hist)
        return cache[key]

    def demo(alpha: float) -> None:
        import matplotlib.pyplot as plt

        check_positive("alpha", alpha, strict=False)
        acc, dist, hist = run(alpha)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        ax = axes[0]
        ax.plot(hist["train/task"], label="task (cross-entropy)")
        ax.plot(hist["train/l2sp"], label="L2-SP term")
        ax.set(xlabel="step", ylabel="loss", title=f"alpha = {short(alpha)}")
        ax2 = ax.twinx()
        ax2.plot(hist["train/weight_distance"], "k--", label="||w - w0||")
        ax2.set_ylabel("||w - w0|| (body)")
        # one legend for both y axes, under the plot: inside, it covered the curves
        lines = ax.get_lines() + ax2.get_lines()
        ax.legend(lines, [ln.get_label() for ln in lines], loc="upper center",
                  bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize=8, frameon=False)  # fmt: skip
        keys = sorted(cache)
        axes[1].plot([cache[k][1] for k in keys], [cache[k][0] for k in keys], "o-", color="C2")
        for k in keys:
            axes[1].annotate(short(k), (cache[k][1], cache[k][0]), fontsize=8,
                             xytext=(4, 4), textcoords="offset points")  # fmt: skip
        axes[1].scatter([dist], [acc], s=80, color="C3", zorder=3)
        axes[1].margins(x=0.2, y=0.2)  # room for the labels beside the outermost points
        axes[1].set(
            xlabel="||w - w0|| after fine-tuning",
            ylabel=f"{eval_name} accuracy",
            title="every alpha tried so far (red: this one)",
        )
        fig.tight_layout()
        plt.show()

    demo.cache = cache  # type: ignore[attr-defined]
    demo.run = run  # type: ignore[attr-defined]
    return demo


def make_curves_demo(
    curves: Mapping[str, Mapping[float, Sequence[float]]],
) -> Callable[..., None]:
    """A callback ``demo(methods, relative_to)`` that redraws chosen learning curves.

    ``methods``: a sequence of keys of ``curves``; ``relative_to``: "" for raw accuracy,
    or a method name whose per-seed values are subtracted (seeds paired), so crossings
    show as curves passing through 0. Returns None.
    """

    def demo(methods: Sequence[str] = tuple(curves), relative_to: str = "") -> None:
        import matplotlib.pyplot as plt

        for m in list(methods) + ([relative_to] if relative_to else []):
            check_choice("method", m, list(curves))
        chosen: dict[str, Any] = {}
        for m in methods:
            if relative_to:
                base = curves[relative_to]
                chosen[m] = {
                    x: [a - b for a, b in zip(v, base[x], strict=True)]
                    for x, v in curves[m].items()
                }
            else:
                chosen[m] = curves[m]
        fig, ax = plt.subplots(figsize=(6, 4))
        if chosen:
            plot_learning_curves(
                chosen,
                ax=ax,
                ylabel=f"accuracy - {relative_to}" if relative_to else "test accuracy",
            )
        if relative_to:
            ax.axhline(0, color="k", lw=0.8)
        plt.show()

    return demo
