"""Fine-tuning recipes behind notebooks 03 (loss transfer) and 04 (same-type transfer).

- :func:`transfer_model`, :func:`make_objective`, :func:`finetune`: source model ->
  new head -> target loss plus one transfer term (``METHODS``), trained full-batch with
  every loss term and the distance from the source weights logged per step.
- :func:`parameter_state`, :func:`weight_distance`: :math:`\\lVert w - w^0 \\rVert`.
- :func:`interpolate_state`, :func:`loss_along_path`: the target loss on the straight
  line between the source and the fine-tuned weights.
- :func:`split_at_block`, :func:`cache_activations`: top-k fine-tuning on activations
  cached at the frozen boundary (the frozen blocks run once, not every step).
- :func:`old_task_accuracy`: how much of the source task is forgotten.
- :func:`make_l2sp_demo`, :func:`make_curves_demo`: the ipywidgets callbacks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .losses import (
    L2,
    L2SP,
    BatchSpectralShrinkage,
    FeatureMapDistance,
    LwF,
    TransferObjective,
)
from .models import SmallCNN, SplitModel, replace_head, set_batchnorm_eval, split_model
from .training import Data, History, evaluate, fit
from .validation import check_choice, check_int, check_positive

__all__ = [
    "METHODS",
    "CURVE_METHODS",
    "DEFAULT_STRENGTHS",
    "transfer_model",
    "parameter_state",
    "weight_distance",
    "make_objective",
    "TrackDistance",
    "finetune",
    "interpolate_state",
    "loss_along_path",
    "split_at_block",
    "cache_activations",
    "old_task_accuracy",
    "make_l2sp_demo",
    "make_curves_demo",
]

#: Fine-tuning objectives of notebook 03: the target loss plus (at most) one transfer term.
METHODS: tuple[str, ...] = ("finetune", "l2", "l2sp", "lwf", "bss", "delta")

#: Methods on the learning curves of notebook 04 (see its table).
CURVE_METHODS: tuple[str, ...] = (
    "scratch",
    "linear_probe",
    "top1",
    "top2",
    "finetune_all",
    "distill",
)

#: Default weight of each method's term (the kit's term conventions, see tlhelpers.losses).
DEFAULT_STRENGTHS: dict[str, float] = {
    "finetune": 0.0,
    "l2": 0.01,  # alpha of alpha/2 ||w||^2
    "l2sp": 0.1,  # alpha of alpha/2 ||w_S - w_S^0||^2 (beta = 0.01 on the head)
    "lwf": 1.0,  # weight of T^2 KL(old outputs), T = 2
    "bss": 0.001,  # weight of the smallest squared singular value, k = 1
    "delta": 0.01,  # weight of the feature-map distance (blocks 1-3, no attention)
}

#: Layers the DELTA term compares in a SplitModel built from the kit's SmallCNN.
DELTA_LAYERS: tuple[str, ...] = ("body.0.block1", "body.0.block2", "body.0.block3")


def transfer_model(source: nn.Module, num_classes: int, seed: int = 0) -> SplitModel:
    """A deep copy of ``source`` with a fresh ``nn.Linear`` head (seeded); ``source`` is untouched."""
    check_int("num_classes", num_classes, minimum=1)
    torch.manual_seed(seed)
    return replace_head(copy.deepcopy(source), num_classes)


def parameter_state(model: nn.Module, prefix: str = "") -> dict[str, Tensor]:
    """Detached copies of the parameters whose name starts with ``prefix`` (no buffers)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(prefix)}


@torch.no_grad()
def weight_distance(model: nn.Module, reference: Mapping[str, Tensor]) -> float:
    r""":math:`\lVert w - w^0 \rVert_2` over the parameters named in ``reference``.

    Raises ``KeyError`` naming a reference entry the model does not have.
    """
    params = dict(model.named_parameters())
    missing = [k for k in reference if k not in params]
    if missing:
        raise KeyError(f"reference names {missing[:3]} are not parameters of the model.")
    total = None
    for name, w0 in reference.items():
        p = params[name]
        d = (p - w0.to(device=p.device, dtype=p.dtype)).pow(2).sum()
        total = d if total is None else total + d
    return 0.0 if total is None else float(total.sqrt())


def make_objective(
    method: str,
    model: SplitModel,
    source: nn.Module | None = None,
    strength: float | None = None,
    temperature: float = 2.0,
) -> TransferObjective:
    r"""The target loss plus ``method``'s transfer term, for a model from :func:`transfer_model`.

    Build it *before* any training step (L2-SP and DELTA snapshot the current weights).

    - ``"finetune"``: :math:`\mathrm{CE}` only.
    - ``"l2"``: :math:`+\frac{\alpha}{2}\lVert w\rVert^2` (toward zero).
    - ``"l2sp"``: :math:`+\frac{\alpha}{2}\lVert w_S - w_S^0\rVert^2 + \frac{\beta}{2}\lVert
      w_{head}\rVert^2`, :math:`\beta = 0.01` (the authors' default; a larger
      :math:`\beta` crushes the new head).
    - ``"lwf"``: :math:`+\lambda T^2 \mathrm{KL}(p_{old}(x; w^0)\,\Vert\, p_{old}(x; w))` with
      the source's old head, attached to ``model.old_head`` so ``fit`` trains it. ``source``
      is the original source classifier (e.g. the :class:`SmallCNN`).
    - ``"bss"``: :math:`+\eta \sigma_{min}^2(F)` of the batch features.
    - ``"delta"``: :math:`+\lambda` feature-map distance to the source at blocks 1-3
      (hooks: call ``objective.terms["delta"].fn.remove()`` when done).

    ``strength`` defaults to :data:`DEFAULT_STRENGTHS`.
    """
    check_choice("method", method, METHODS)
    w = DEFAULT_STRENGTHS[method] if strength is None else strength
    check_positive("strength", w, strict=False)
    if method == "finetune":
        return TransferObjective()
    if method == "l2":
        return TransferObjective(terms={"l2": (1.0, L2(alpha=w))})
    if method == "l2sp":
        return TransferObjective(terms={"l2sp": (1.0, L2SP(model, alpha=w, beta=0.01))})
    if method == "bss":
        return TransferObjective(terms={"bss": (w, BatchSpectralShrinkage(k=1))})
    if method == "delta":
        layers = [n for n in DELTA_LAYERS if n in dict(model.named_modules())]
        if not layers:
            raise ValueError(f"DELTA needs the layers {DELTA_LAYERS} (a SmallCNN SplitModel).")
        return TransferObjective(terms={"delta": (w, FeatureMapDistance(model, layers))})
    # lwf
    if source is None:
        raise ValueError("method 'lwf' needs the source model (with its old head).")
    old_head = copy.deepcopy(split_model(copy.deepcopy(source)).head).requires_grad_(True)
    lwf = LwF(source, old_head, temperature=temperature)
    model.old_head = lwf.old_head  # shared, so fit's optimiser trains it
    return TransferObjective(terms={"lwf": (w, lwf)})


class TrackDistance:
    """Wrap an objective so that ``fit`` also logs :math:`\\lVert w - w^0\\rVert` (not trained on).

    The returned dict gains ``"weight_distance"`` (detached), so
    ``history["train/weight_distance"]`` shows how far the weights walk from the source.
    """

    def __init__(self, objective: Callable, reference: Mapping[str, Tensor]):
        self.objective = objective
        self.reference = dict(reference)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        out = self.objective(model, x, y)
        out = {"total": out} if isinstance(out, Tensor) else dict(out)
        out["weight_distance"] = torch.tensor(weight_distance(model, self.reference))
        return out


def _bn_eval(model: nn.Module) -> None:
    set_batchnorm_eval(model, frozen_only=False)


def finetune(
    model: nn.Module,
    data: Data,
    *,
    objective: Callable | None = None,
    steps: int = 100,
    lr: float = 1e-3,
    batch_size: int | None = None,
    seed: int = 0,
    bn_eval: bool = True,
    reference: Mapping[str, Tensor] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    batch_transform: Callable[[Tensor], Tensor] | None = None,
    device: str | torch.device | None = "cpu",
) -> History:
    """``steps`` Adam steps on ``data`` (full batch unless ``batch_size``), via :func:`fit`.

    With a ``batch_size`` smaller than the data, one history record covers one pass
    (``ceil(steps * batch_size / n)`` passes). ``bn_eval`` keeps every BatchNorm layer in
    eval mode (the source statistics; a few-shot batch is a poor estimate of them), which
    also makes the DELTA distance start at exactly 0. ``reference`` (parameter name ->
    source value) adds ``train/weight_distance`` to the history. ``optimizer`` (e.g. Adam
    over :func:`tlhelpers.models.param_groups`) replaces the default Adam at ``lr``;
    ``batch_transform`` is applied to every input batch.
    """
    check_int("steps", steps, minimum=1)
    n = len(data[1]) if isinstance(data, tuple) else len(data)
    bs = n if batch_size is None else min(check_int("batch_size", batch_size, minimum=1), n)
    epochs = math.ceil(steps * bs / n) if bs < n else steps
    obj = objective if objective is not None else TransferObjective()
    if reference is not None:
        obj = TrackDistance(obj, reference)
    return fit(
        model,
        data,
        epochs=epochs,
        lr=lr,
        optimizer=optimizer,
        objective=obj,
        batch_size=bs,
        batch_transform=batch_transform,
        seed=seed,
        device=device,
        progress=False,
        train_mode=_bn_eval if bn_eval else None,
    )


# ------------------------------------------------------------------ interpolation


def _selected(key: str, prefixes: Sequence[str] | None) -> bool:
    return prefixes is None or any(key.startswith(p) for p in prefixes)


def interpolate_state(
    source_state: Mapping[str, Tensor],
    target_state: Mapping[str, Tensor],
    t: float,
    prefixes: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    r"""The state :math:`(1-t)\,w^0 + t\,w^1` between two state dicts.

    Interpolated: floating-point entries present in both with the same shape and (if
    ``prefixes`` is given) a name starting with one of them. Everything else (integer
    buffers such as ``num_batches_tracked``, the new head when ``prefixes=("body.",)``)
    is taken from ``target_state``. ``t`` outside [0, 1] extrapolates.
    """
    if isinstance(prefixes, str):
        prefixes = (prefixes,)
    out: dict[str, Tensor] = {}
    for key, w1 in target_state.items():
        w0 = source_state.get(key)
        if (
            w0 is not None
            and w1.is_floating_point()
            and w0.shape == w1.shape
            and _selected(key, prefixes)
        ):
            out[key] = torch.lerp(w0.to(w1.dtype), w1, float(t))
        else:
            out[key] = w1.detach().clone()
    return out


def loss_along_path(
    model: nn.Module,
    source_state: Mapping[str, Tensor],
    target_state: Mapping[str, Tensor],
    data: Data,
    ts: Sequence[float],
    prefixes: Sequence[str] | None = ("body.",),
) -> dict[str, list[float]]:
    """Cross-entropy and accuracy of ``model`` at each ``t`` of :func:`interpolate_state`.

    By default only the body is interpolated and the fine-tuned head is kept fixed: the
    source head belongs to another task (its class 0 is not the target's class 0), so
    interpolating it would mix two unrelated classifiers. ``model``'s own weights are
    restored afterwards. Returns ``{"t": [...], "loss": [...], "accuracy": [...]}``.
    """
    saved = {k: v.detach().clone() for k, v in model.state_dict().items()}
    result: dict[str, list[float]] = {"t": [], "loss": [], "accuracy": []}
    try:
        for t in ts:
            model.load_state_dict(interpolate_state(source_state, target_state, t, prefixes))
            ev = evaluate(model, data)
            result["t"].append(float(t))
            result["loss"].append(ev["loss"])
            result["accuracy"].append(ev["accuracy"])
    finally:
        model.load_state_dict(saved)
    return result


# ------------------------------------------------------------------ top-k fine-tuning


def split_at_block(model: SplitModel, k: int) -> tuple[nn.Module, SplitModel]:
    """``(lower, upper)`` with ``upper(lower(x)) == model(x)``; ``upper`` holds the top ``k`` blocks.

    For a :class:`SplitModel` of the kit's :class:`SmallCNN` (body = ``features`` + ``pool``).
    ``k = 0`` leaves only the head in ``upper`` (linear probe); ``k = 3`` everything. The
    modules are shared with ``model``, not copied: training ``upper`` trains ``model``.
    """
    model = split_model(model)
    features, pool = model.body[0], model.body[1]
    blocks = list(features.named_children())
    check_int("k", k, minimum=0)
    if k > len(blocks):
        raise ValueError(f"k must be <= {len(blocks)} (the number of blocks), got {k}.")
    cut = len(blocks) - k
    lower = nn.Sequential(*[m for _, m in blocks[:cut]]) if cut else nn.Identity()
    if k == 0:
        lower = nn.Sequential(lower, pool)
        upper_body: nn.Module = nn.Identity()
    else:
        upper_body = nn.Sequential(*[m for _, m in blocks[cut:]], pool)
    return lower, SplitModel(upper_body, model.head)


@torch.no_grad()
def cache_activations(lower: nn.Module, data: Data, batch_size: int = 512) -> tuple[Tensor, Tensor]:
    """``(lower(x), y)`` for all of ``data``, ``lower`` in eval mode: computed once, reused each step."""
    from .training import eval_mode, iterate_batches

    acts, ys = [], []
    with eval_mode(lower):
        for x, y in iterate_batches(data, batch_size):
            acts.append(lower(x))
            ys.append(torch.as_tensor(y))
    return torch.cat(acts), torch.cat(ys)


def old_task_accuracy(body: nn.Module, old_head: nn.Module, data: Data) -> float:
    """Accuracy on the *source* task of ``old_head(body(x))``: what fine-tuning the body kept."""
    return evaluate(SplitModel(body, old_head), data)["accuracy"]


# ------------------------------------------------------------------ widgets


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
            if recipe is not None:
                hist = recipe.fit(model, train, objective=obj, steps=steps, seed=seed, reference=ref)
            else:
                hist = finetune(
                    model, train, objective=obj, steps=steps, lr=lr, seed=seed, reference=ref
                )
            acc = evaluate(model, test)["accuracy"]
            cache[key] = (acc, weight_distance(model, ref), hist)
        return cache[key]

    def demo(alpha: float) -> None:
        import matplotlib.pyplot as plt

        check_positive("alpha", alpha, strict=False)
        acc, dist, hist = run(alpha)
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        ax = axes[0]
        ax.plot(hist["train/task"], label="task (cross-entropy)")
        ax.plot(hist["train/l2sp"], label="L2-SP term")
        ax.set(xlabel="step", ylabel="loss", title=f"alpha = {alpha:g}")
        ax2 = ax.twinx()
        ax2.plot(hist["train/weight_distance"], "k--", label="||w - w0||")
        ax2.set_ylabel("||w - w0|| (body)")
        ax.legend(loc="upper center", fontsize=8)
        ax2.legend(loc="upper right", fontsize=8)
        keys = sorted(cache)
        axes[1].plot([cache[k][1] for k in keys], [cache[k][0] for k in keys], "o-", color="C2")
        for k in keys:
            axes[1].annotate(f"{k:g}", (cache[k][1], cache[k][0]), fontsize=8)
        axes[1].scatter([dist], [acc], s=80, color="C3", zorder=3)
        axes[1].set(
            xlabel="||w - w0|| after fine-tuning",
            ylabel=f"{eval_name} accuracy",
            title="every alpha tried so far",
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
    from .plots import plot_learning_curves

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


def scratch_model(num_classes: int, width: int = 16, seed: int = 0) -> SplitModel:
    """A randomly initialised :class:`SmallCNN` as a SplitModel (the no-transfer baseline)."""
    torch.manual_seed(seed)
    return split_model(SmallCNN(num_classes=num_classes, width=width))


__all__.append("scratch_model")
