"""Figures the notebooks share: loss terms over training, learning curves with bands, images."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metrics import mean_ci

__all__ = [
    "COURSE_STYLE",
    "DETECTION_COLORS",
    "PALETTE",
    "plot_bars",
    "plot_confusion_matrix",
    "plot_history",
    "plot_learning_curves",
    "plot_reliability",
    "colour_of",
    "colours_for",
    "readable_log_axis",
    "show_detections",
    "show_filters",
    "show_images",
    "use_course_style",
]

#: Ten colours told apart also by colour-blind readers (Okabe-Ito, then two greys).
PALETTE = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7",
    "#56B4E9", "#F0E442", "#000000", "#777777", "#BBBBBB",
)  # fmt: skip

#: Matplotlib settings of every course figure: a 6.4-inch-wide figure shown in a 360-pixel
#: phone column is scaled to about 0.56, so 13-point labels still read at about 10 pixels.
COURSE_STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 100,
    "font.size": 13,
    "axes.titlesize": 14,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "figure.titlesize": 15,
    "lines.linewidth": 2.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def use_course_style() -> None:
    """Apply :data:`COURSE_STYLE` and :data:`PALETTE` to matplotlib (for every later figure)."""
    import matplotlib.style
    from cycler import cycler

    matplotlib.style.use({**COURSE_STYLE, "axes.prop_cycle": cycler(color=list(PALETTE))})


def colour_of(name: str) -> str:
    """The colour of ``name`` (a model or method) in every panel and notebook: a colour of
    :data:`PALETTE` picked by a stable hash of the name (SHA-256, not Python's salted ``hash``)."""
    import hashlib

    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}.")
    digest = hashlib.sha256(name.encode()).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def colours_for(names: Sequence[str]) -> dict[str, str]:
    """Distinct colours for up to ``len(PALETTE)`` names: each keeps :func:`colour_of` unless a
    name before it (in sorted order, so the same set gives the same colours) took it; then it
    takes the next free colour of the palette."""
    unique = sorted(set(names))
    if len(unique) > len(PALETTE):
        raise ValueError(
            f"names: at most {len(PALETTE)} distinct names get distinct colours, got {len(unique)}."
        )
    taken: dict[str, str] = {}
    for name in unique:
        start = PALETTE.index(colour_of(name))
        free = next(PALETTE[(start + k) % len(PALETTE)] for k in range(len(PALETTE))
                    if PALETTE[(start + k) % len(PALETTE)] not in taken.values())  # fmt: skip
        taken[name] = free
    return {name: taken[name] for name in names}


def _axes(ax, figsize=(5, 3.5)):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def plot_history(history, keys: Sequence[str] | None = None, ax=None, logy: bool = False):
    """One line per logged term (``train/total``, ``train/task``, ``train/l2sp``, ...)."""
    ax = _axes(ax)
    keys = list(keys) if keys is not None else [k for k in history.keys() if k != "time"]
    epochs = np.arange(1, len(history) + 1)
    for k in keys:
        ax.plot(epochs, history[k], marker="o", ms=3, label=k)
    ax.set_xlabel("epoch")
    ax.set_ylabel("value")
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def plot_learning_curves(
    curves: Mapping[str, Mapping[float, Sequence[float]]],
    ax=None,
    xlabel: str = "labels per class",
    ylabel: str = "test accuracy",
    logx: bool = True,
    confidence: float = 0.95,
):
    """Mean over seeds with a confidence band, one curve per method.

    ``curves[method][x]`` is the list of per-seed values at ``x``.
    """
    ax = _axes(ax, (6, 4))
    all_x: set[float] = set()
    for name, pts in curves.items():
        all_x.update(pts)
        xs = sorted(pts)
        stats = [mean_ci(pts[x], confidence) for x in xs]
        m = np.array([s[0] for s in stats])
        h = np.array([s[1] for s in stats])
        (line,) = ax.plot(xs, m, marker="o", label=name)
        ax.fill_between(xs, m - h, m + h, color=line.get_color(), alpha=0.2)
    if logx:
        ax.set_xscale("log")
        if all_x:  # a tick at each measured x (a log axis alone marks only 1, 10, ...)
            from matplotlib.ticker import NullLocator

            ticks = sorted(all_x)
            ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
            ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax


def readable_log_axis(ax, axis: str = "x"):
    """Plain numbers on a log axis (0.7, 1, 2; not 7x10^-1): majors, and minors where there is room.

    Matplotlib labels a narrow log axis at 10^0 only, or in scientific notation. Minor ticks
    are labelled at every mantissa below 1.2 decades, at 2 and 5 below 2.5, else not at all.
    """
    from matplotlib.ticker import FuncFormatter

    def minor(v: float, _pos) -> str:
        lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
        decades = np.log10(hi / lo) if lo > 0 else np.inf
        mantissa = round(v / 10 ** np.floor(np.log10(v)), 6)
        keep = set(range(2, 10)) if decades < 1.2 else ({2, 5} if decades < 2.5 else set())
        return f"{v:g}" if mantissa in keep else ""

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    target.set_minor_formatter(FuncFormatter(minor))
    return ax


def plot_bars(
    values: Mapping[str, Sequence[float]],
    ax=None,
    ylabel: str = "test accuracy",
    confidence: float = 0.95,
):
    """Bar per method: mean over seeds with a CI error bar, each seed as a dot."""
    ax = _axes(ax)
    names = list(values)
    for i, n in enumerate(names):
        m, h = mean_ci(values[n], confidence)
        ax.bar(i, m, yerr=h, capsize=4, alpha=0.7)
        ax.scatter(np.full(len(values[n]), i), values[n], color="k", s=10, zorder=3)
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y")
    return ax


def show_images(
    images, labels=None, classes: Sequence[str] | None = None, n: int = 8, ncols: int = 8
):
    """A grid of the first ``n`` images ``(N, C, H, W)`` in [0, 1] with their class names."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, min(n, ncols), figsize=(1.4 * min(n, ncols), 1.6 * nrows), squeeze=False
    )
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = np.asarray(images[i]).transpose(1, 2, 0)
        ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img.clip(0, 1), cmap="gray")
        if labels is not None:
            lab = int(labels[i])
            ax.set_title(classes[lab] if classes else str(lab), fontsize=8)
    fig.tight_layout()
    return fig


def plot_reliability(probs, targets, n_bins: int = 15, ax=None, label: str = ""):
    """Reliability diagram (Guo et al., 2017): accuracy per equal-width confidence bin.

    Bars: accuracy of the items in each bin ``((m-1)/M, m/M]`` (0 for an empty bin); the
    diagonal is perfect calibration; red outlines: each bin's mean confidence. The title
    gives the ECE with its binning.
    """
    from .metrics import expected_calibration_error, reliability_bins

    ax = _axes(ax, (4, 4))
    b = reliability_bins(probs, targets, n_bins)
    width = 1.0 / n_bins
    centers = b["edges"][:-1] + width / 2
    ax.bar(centers, np.nan_to_num(b["accuracy"]), width=width, edgecolor="k", label="accuracy")
    ax.bar(
        centers,
        np.nan_to_num(b["confidence"]),
        width=width,
        fill=False,
        edgecolor="r",
        label="mean confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ece = expected_calibration_error(probs, targets, n_bins)
    prefix = f"{label}: " if label else ""
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence",
        ylabel="accuracy",
        title=f"{prefix}ECE = {ece:.3f} ({n_bins} equal-width bins)",
    )
    ax.legend(fontsize=8, loc="upper left")
    return ax


def plot_confusion_matrix(cm, class_names: Sequence[str], ax=None, normalize: bool = True):
    """The confusion matrix as an image, rows = true class; ``normalize`` divides each row by
    its count (the diagonal is then the per-class accuracy). Counts are written in the cells."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(
            f"cm must be square with one row per class name ({len(class_names)}), "
            f"got shape {cm.shape}."
        )
    ax = _axes(ax, (4.5, 4))
    shown = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    k = len(class_names)
    for i in range(k):
        for j in range(k):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if shown[i, j] > 0.6 * shown.max() else "black",
            )
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true")
    return ax


def show_filters(weights, n: int = 32, ncols: int = 8, titles: Sequence[str] | None = None,
                 size: float = 0.9):  # fmt: skip
    """A grid of filters or maps ``(N, C, h, w)``: C = 3 in colour, else channel 0 in grey (notebook 05a).

    Each panel is rescaled on its own to [0, 1], :math:`(w - \\min w) / (\\max w - \\min w)`
    (a constant panel shows as 0.5), so the *pattern* is visible whatever the scale: the
    first-layer filters of an ImageNet network look like oriented edges and colour blobs
    (Krizhevsky et al., 2012; Zeiler & Fergus, 2014). ``titles`` labels the panels.
    """
    import matplotlib.pyplot as plt

    w = np.asarray(weights.detach().cpu() if hasattr(weights, "detach") else weights, dtype=float)
    if w.ndim != 4:
        raise ValueError(f"weights must be 4-D (N, C, h, w), got shape {w.shape}.")
    n = min(n, len(w))
    if titles is not None and len(titles) < n:
        raise ValueError(f"titles needs one entry per panel ({n}), got {len(titles)}.")
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.2 * nrows),
                             squeeze=False)  # fmt: skip
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        f = w[i] if w.shape[1] == 3 else w[i, :1]
        lo, hi = f.min(), f.max()
        f = (f - lo) / (hi - lo) if hi > lo else np.full_like(f, 0.5)
        img = f.transpose(1, 2, 0)
        if img.shape[-1] == 1:
            ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=1)
        else:
            ax.imshow(img)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    fig.tight_layout()
    return fig


#: Colours of :func:`show_detections`: the truth, then one per detector in order.
DETECTION_COLORS = ("lime", "red", "deepskyblue", "orange", "magenta")


def show_detections(image, detections: Mapping[str, Any], truth=None, ax=None, title: str = ""):
    """``image`` with each detector's boxes (``Detections``-like: ``.boxes`` ``(N, 4)`` xyxy,
    ``.scores`` ``(N,)``) in its own colour and the truth boxes ``(F, 4)`` dashed (notebook 08a).

    Each detector's top-scoring box is drawn thick, its other boxes thin and translucent, so
    that a detector with dozens of boxes does not hide the others; the truth is drawn on top.
    Returns ``ax``.
    """
    from matplotlib.patches import Rectangle

    ax = _axes(ax, figsize=(5, 5))
    img = np.asarray(image)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    sets: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    if truth is not None:
        sets.append(("truth", np.asarray(truth, dtype=float).reshape(-1, 4), None))
    sets += [
        (name, np.asarray(d.boxes, dtype=float).reshape(-1, 4), np.asarray(getattr(d, "scores", []), dtype=float))
        for name, d in detections.items()
    ]  # fmt: skip
    colors = DETECTION_COLORS[(0 if truth is not None else 1) :]
    for (name, boxes, scores), color in zip(sets, colors, strict=False):
        is_truth = name == "truth"
        top = int(np.argmax(scores)) if scores is not None and len(scores) == len(boxes) > 0 else -1
        for i, (x1, y1, x2, y2) in enumerate(boxes):
            thick = is_truth or i == top or top < 0
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, ls="--" if is_truth else "-",
                                   lw=2.0 if is_truth else 2.4 if thick else 0.8, alpha=None if thick else 0.5,
                                   zorder=4 if is_truth else 3 if thick else 2,
                                   label=f"{name} ({len(boxes)})" if i == 0 else None))  # fmt: skip
        if len(boxes) == 0:
            ax.plot([], [], color=color, ls="--" if is_truth else "-", label=f"{name} (0)")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax
