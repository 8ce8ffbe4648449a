"""Choosing a source model: cost (parameters, latency), source outputs, fine-tuning, ranking demo (notebook 02).

- :func:`measure_latency`: CPU milliseconds per image, median over repeats.
- :func:`source_outputs`: one pass of a frozen source model over target images ->
  penultimate ``features`` and the source head's softmax ``source_probs`` (what
  :mod:`tlhelpers.transferability` needs: LogME / H-score and LEEP / NCE).
- :func:`fine_tune`: replace the head and train all layers for a small fixed budget;
  the measured accuracy the scores try to predict.
- :func:`ranking_demo`: the notebook's ipywidgets demo (target and score -> ranking plot).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from .finetuning import finetune
from .models import param_groups, replace_head, split_model
from .training import Data, eval_mode, evaluate, iterate_batches
from .utils import seed_everything
from .validation import check_choice, check_int, check_positive


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    repeats: int = 10,
    *,
    warmup: int = 2,
    device: str | torch.device = "cpu",
) -> float:
    """Inference latency in milliseconds per image: median over ``repeats`` timed forward passes.

    ``input_shape`` is the batch shape ``(N, C, H, W)``; each pass's time is divided by
    ``N``. The model runs in eval mode without gradients after ``warmup`` untimed
    passes; its train/eval mode is restored. The median resists the outliers of a shared
    machine; the absolute numbers still depend on the CPU, threads and load.
    """
    check_int("repeats", repeats, minimum=1)
    check_int("warmup", warmup, minimum=0)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) < 2 or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be a batch shape like (N, C, H, W), got {shape}.")
    dev = torch.device(device)
    model.to(dev)
    x = torch.rand(shape, device=dev)
    times = []
    with eval_mode(model):
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times.append((time.perf_counter() - start) * 1000.0 / shape[0])
    return float(statistics.median(times))


@torch.no_grad()
def source_outputs(
    model: nn.Module,
    data: Data,
    *,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> dict[str, torch.Tensor]:
    """Frozen source model on target data: ``{"features", "source_probs", "targets"}``.

    One forward pass per batch in eval mode: ``features = body(x)`` (N, D) and
    ``source_probs = softmax(head(features))`` (N, Z), the source head's distribution
    over its own Z source classes (1000 for ImageNet, 5 for the kit's Fashion-MNIST-A
    CNN). Everything is returned on the CPU.
    """
    split = split_model(model)
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(dev)
    feats, probs, ys = [], [], []
    with eval_mode(model):
        for x, y in iterate_batches(data, batch_size):
            x = x.to(dev)
            if batch_transform is not None:
                x = batch_transform(x)
            f = split.body(x).flatten(1)
            feats.append(f.cpu())
            probs.append(torch.softmax(split.head(f), dim=1).cpu())
            ys.append(torch.as_tensor(y))
    return {
        "features": torch.cat(feats),
        "source_probs": torch.cat(probs).double(),
        "targets": torch.cat(ys),
    }


def fine_tune(
    model: nn.Module,
    train_data: Data,
    test_data: Data,
    num_classes: int,
    *,
    steps: int = 30,
    lr: float = 1e-3,
    head_lr: float | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    freeze_bn_stats: bool = True,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> float:
    """Test accuracy after fine-tuning a *copy* of ``model`` on ``train_data``.

    The protocol (the same for every candidate): the source head is replaced by a fresh
    ``nn.Linear(D, num_classes)`` (:func:`tlhelpers.models.replace_head`), then *all*
    layers are trained with Adam (``lr`` for the body, ``head_lr`` for the new head,
    default ``10 * lr``: the new head starts from scratch) for ``steps`` full-batch steps on the few-shot
    ``train_data`` (one epoch = one step). With ``freeze_bn_stats`` BatchNorm layers keep
    their running statistics (eval mode) during training: a few labelled images give
    poor batch statistics. ``model`` itself is left unchanged.
    """
    check_int("steps", steps, minimum=1)
    check_positive("lr", lr)
    head_lr = 10 * lr if head_lr is None else check_positive("head_lr", head_lr)
    seed_everything(seed)
    net = replace_head(copy.deepcopy(model), num_classes)
    opt = torch.optim.Adam(param_groups(net, {"body": lr, "head": head_lr}, lr))
    finetune(net, train_data, steps=steps, lr=lr, optimizer=opt, batch_transform=batch_transform,
             seed=seed, bn_eval=freeze_bn_stats, device=device)
    return evaluate(net, test_data, batch_transform=batch_transform, device=device)["accuracy"]


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
    fig.tight_layout()
    plt.show()
    best = names[int(np.argmax(acc))]
    print(
        f"{SCORE_LABELS[score]} picks {names[0]!r}; best fine-tuned: {best!r}"
        f" ({'agree' if names[0] == best else 'disagree'})"
    )
