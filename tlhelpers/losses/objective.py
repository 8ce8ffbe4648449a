"""Composition of a transfer-learning objective: task loss + weighted regularisers.

``TransferObjective`` is a callable ``(model, x, y) -> dict[str, Tensor]`` that the kit's
``fit`` loop accepts directly; it logs every key of the dict. :func:`make_objective`
builds the objectives notebook 03 compares, by name (:data:`TRANSFER_METHODS`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tlhelpers.data import Data, as_tensors, check_data
from tlhelpers.losses._utils import RENAMED_METHODS
from tlhelpers.losses.distillation import LwF
from tlhelpers.losses.regularization import L2, L2SP, BatchSpectralShrinkage, FeatureMapDistance
from tlhelpers.models import MultiTaskModel, SplitModel, split_model
from tlhelpers.runtime import seeded
from tlhelpers.validation import check_choice, check_int, check_positive

__all__ = [
    "TermContext",
    "ContextTerm",
    "TransferObjective",
    "TERM_FIELDS",
    "TRANSFER_METHODS",
    "RENAMED_METHODS",
    "DEFAULT_STRENGTHS",
    "DELTA_LAYERS",
    "make_objective",
    "make_distillation_objective",
    "MultiTaskObjective",
]

#: Fields of :class:`TermContext` that a term may read.
TERM_FIELDS: tuple[str, ...] = ("model", "inputs", "targets", "features", "logits")


@dataclass
class TermContext:
    """Everything one training step has computed, handed to each term.

    Attributes:
        model: the model being trained.
        inputs: the input batch ``x``.
        targets: the target batch ``y``.
        features: ``model.body(x)``, shape (N, D), or ``None`` for a model without
            ``.body``/``.head``.
        logits: ``model.head(features)`` (or ``model(x)``), shape (N, C).
    """

    model: nn.Module
    inputs: Any
    targets: Any
    features: Tensor | None
    logits: Tensor


class ContextTerm(nn.Module):
    """Adapter: turn ``fn(*fields)`` into a term ``ctx -> fn(ctx.<field>, ...)``.

    >>> term = ContextTerm(bss, "features")          # doctest: +SKIP
    >>> term = ContextTerm(L2SP(model), "model")     # doctest: +SKIP

    If ``fn`` is an ``nn.Module`` it is registered as a submodule, so ``.to(device)`` and
    ``.parameters()`` of the objective reach it.

    Args:
        fn: callable returning a 0-D tensor.
        *fields: names of :class:`TermContext` fields passed positionally, in order
            (one or more of "model", "inputs", "targets", "features", "logits").
    """

    def __init__(self, fn: Callable[..., Tensor], *fields: str) -> None:
        super().__init__()
        if not fields:
            raise ValueError(f"ContextTerm needs at least one field. Valid values: {TERM_FIELDS}.")
        for f in fields:
            check_choice("field", f, TERM_FIELDS)
        self.fields = tuple(fields)
        self.fn = fn  # registered as submodule when it is a Module (nn.Module.__setattr__)

    def forward(self, ctx: TermContext) -> Tensor:
        args = []
        for f in self.fields:
            value = getattr(ctx, f)
            if value is None:
                raise ValueError(
                    f"{type(self.fn).__name__} needs ctx.{f}, which is None: the model has no "
                    ".body/.head split (a SplitModel-like model is required)."
                )
            args.append(value)
        return self.fn(*args)

    def extra_repr(self) -> str:
        name = getattr(self.fn, "__name__", type(self.fn).__name__)
        return f"fn={name}, fields={self.fields}"


def _check_weight(name: str, weight: Any) -> float:
    """A term weight is a finite number >= 0 (a string such as "0.1" is refused, not parsed)."""
    return float(check_positive(f"weight of term {name!r}", weight, strict=False))


def _as_term(name: str, term: Any) -> nn.Module | Callable[[TermContext], Tensor]:
    """Wrap a regulariser that declares ``term_inputs`` into a :class:`ContextTerm`."""
    fields = getattr(term, "term_inputs", None)
    if fields is not None:
        return ContextTerm(term, *fields)
    if not callable(term):
        raise ValueError(f"term {name!r} must be callable as term(ctx), got {type(term).__name__}.")
    return term


class TransferObjective(nn.Module):
    r"""Task loss plus weighted transfer terms, returning every part for logging.

    .. math:: \mathcal{L} = \ell_{task}(\text{logits}, y) + \sum_k \lambda_k\, \Omega_k(\text{ctx})

    Calling ``objective(model, x, y)`` computes ``features = model.body(x)`` and
    ``logits = model.head(features)`` once (``logits = model(x)`` and ``features = None``
    if the model has no ``.body``/``.head``), builds a :class:`TermContext`, evaluates
    every term on it and returns::

        {"total": task + sum_k weight_k * term_k, "task": task, "<name_k>": weight_k * term_k, ...}

    Each entry is the weighted value *as it enters the total*; backpropagate ``"total"``
    only. A term is any callable ``term(ctx) -> 0-D tensor``; the kit's regularisers
    (:class:`L2SP`, :class:`L2`, :class:`BatchSpectralShrinkage`,
    :class:`FeatureMapDistance`, :class:`LwF`) declare the context fields they read
    (``term_inputs``) and can be passed directly; wrap any other function with
    :class:`ContextTerm`. Terms that are modules become submodules of the objective (so
    ``objective.to(device)`` moves their buffers and frozen copies).

    Args:
        task_loss: ``task_loss(logits, targets) -> 0-D tensor``; default cross-entropy on
            logits (``nn.CrossEntropyLoss()``).
        terms: ``{name: (weight, term)}``; names must differ from "total" and "task".

    Example::

        objective = TransferObjective(terms={
            "l2sp": (1.0, L2SP(model, alpha=0.1, beta=0.01)),
            "bss": (1e-3, BatchSpectralShrinkage(k=1)),
        })
        out = objective(model, x, y)   # out["total"].backward(); log every key
    """

    def __init__(
        self,
        task_loss: Callable[[Tensor, Any], Tensor] | None = None,
        terms: Mapping[str, tuple[float, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.task_loss = nn.CrossEntropyLoss() if task_loss is None else task_loss
        self.terms = nn.ModuleDict()
        self._plain_terms: dict[str, Callable[[TermContext], Tensor]] = {}
        self.weights: dict[str, float] = {}
        for name, spec in (terms or {}).items():
            if name in ("total", "task"):
                raise ValueError(f"term name {name!r} is reserved (used for the total/task loss).")
            if not (isinstance(spec, tuple) and len(spec) == 2):
                raise ValueError(f"terms[{name!r}] must be a (weight, term) tuple, got {spec!r}.")
            weight, term = spec
            self.weights[name] = _check_weight(name, weight)
            term = _as_term(name, term)
            if isinstance(term, nn.Module):
                self.terms[name] = term
            else:
                self._plain_terms[name] = term
        self._order = list(self.weights)

    def set_weight(self, name: str, weight: float) -> None:
        """Change a term's weight, e.g. for a warm-up schedule."""
        check_choice("name", name, self._order, what="term")
        self.weights[name] = _check_weight(name, weight)

    def context(self, model: nn.Module, inputs: Any, targets: Any) -> TermContext:
        """Run the model once and return the :class:`TermContext` of the step."""
        body, head = getattr(model, "body", None), getattr(model, "head", None)
        if isinstance(body, nn.Module) and isinstance(head, nn.Module):
            features = body(inputs)
            logits = head(features)
        else:
            features, logits = None, model(inputs)
        return TermContext(model, inputs, targets, features, logits)

    def forward(self, model: nn.Module, inputs: Any, targets: Any) -> dict[str, Tensor]:
        ctx = self.context(model, inputs, targets)
        task = self.task_loss(ctx.logits, targets)
        out: dict[str, Tensor] = {"total": task, "task": task}
        total = task
        for name in self._order:
            term = self.terms[name] if name in self.terms else self._plain_terms[name]
            value = term(ctx)
            if not isinstance(value, Tensor) or value.numel() != 1:
                shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
                raise ValueError(f"term {name!r} must return a scalar tensor, got {shape}.")
            weighted = self.weights[name] * value.reshape(())
            out[name] = weighted
            total = total + weighted
        out["total"] = total
        return out

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


# --------------------------------------------------------------------------- notebook 03's objectives

#: Fine-tuning objectives of notebook 03: the target loss plus (at most) one transfer term.
TRANSFER_METHODS: tuple[str, ...] = ("none", "l2", "l2sp", "lwf", "bss", "delta")

#: Default weight of each method's term (the kit's term conventions).
DEFAULT_STRENGTHS: dict[str, float] = {
    "none": 0.0,
    "l2": 0.01,  # alpha of alpha/2 ||w||^2
    "l2sp": 0.1,  # alpha of alpha/2 ||w_S - w_S^0||^2 (beta = 0.01 on the head)
    "lwf": 1.0,  # weight of T^2 KL(old outputs), T = 2
    "bss": 0.001,  # weight of the smallest squared singular value, k = 1
    "delta": 0.01,  # weight of the feature-map distance (blocks 1-3, no attention)
}

#: Layers the DELTA term compares in a SplitModel built from the kit's SmallCNN.
DELTA_LAYERS: tuple[str, ...] = ("body.0.block1", "body.0.block2", "body.0.block3")


def make_objective(
    method: str,
    model: SplitModel,
    source: nn.Module | None = None,
    strength: float | None = None,
    temperature: float = 2.0,
) -> TransferObjective:
    r"""The target loss plus ``method``'s transfer term, for a model from
    :func:`tlhelpers.models.transfer_model`.

    Build it *before* any training step (L2-SP and DELTA snapshot the current weights).

    - ``"none"``: no added term, :math:`\mathrm{CE}` only (plain fine-tuning).
    - ``"l2"``: :math:`+\frac{\alpha}{2}\lVert w\rVert^2` (toward zero).
    - ``"l2sp"``: :math:`+\frac{\alpha}{2}\lVert w_S - w_S^0\rVert^2 + \frac{\beta}{2}\lVert
      w_{head}\rVert^2`, :math:`\beta = 0.01` (the authors' default; a larger
      :math:`\beta` crushes the new head).
    - ``"lwf"``: :math:`+\lambda T^2 \mathrm{KL}(p_{old}(x; w^0)\,\Vert\, p_{old}(x; w))` with
      the source's old head, attached to ``model.old_head`` so ``fit`` trains it. ``source``
      is the original source classifier (e.g. the :class:`~tlhelpers.models.SmallCNN`).
    - ``"bss"``: :math:`+\eta \sigma_{min}^2(F)` of the batch features.
    - ``"delta"``: :math:`+\lambda` feature-map distance to the source at blocks 1-3
      (hooks: call ``objective.terms["delta"].fn.remove()`` when done).

    ``strength`` defaults to :data:`DEFAULT_STRENGTHS`.
    """
    check_choice("method", method, TRANSFER_METHODS, renamed=RENAMED_METHODS)
    w = DEFAULT_STRENGTHS[method] if strength is None else strength
    check_positive("strength", w, strict=False)
    if method == "none":
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


def make_distillation_objective(
    student: SplitModel,
    source: nn.Module,
    strength: float = 1.0,
    temperature: float = 2.0,
    seed: int = 0,
) -> TransferObjective:
    r"""Target loss plus knowledge distillation from ``source``, for a student that copies nothing.

    .. math::
        \mathcal{L} = \frac1n \sum_i \mathrm{CE}(h_T(f_w(x_i)), y_i)
        + \lambda\, T^2\, \frac1n \sum_i \mathrm{KL}\big(\mathrm{softmax}(z^S_i / T)
        \,\Vert\, \mathrm{softmax}(h_o(f_w(x_i)) / T)\big)

    with :math:`z^S_i` the frozen source's logits on the *target* images and :math:`h_o` an
    auxiliary linear head from the student's features to the source's classes (Hinton et
    al., 2015, on the student's own inputs). Unlike LwF (:func:`make_objective` ``"lwf"``),
    :math:`h_o` is **freshly initialised** (seeded by ``seed``), not copied from the source
    head: the source speaks only through its outputs. ``h_o`` is attached as
    ``student.aux_head`` so that the optimiser trains it; the term is logged as
    ``"distill"``.
    """
    check_positive("strength", strength, strict=False)
    head = split_model(student).head
    source_head = split_model(source).head
    if not isinstance(head, nn.Linear) or not isinstance(source_head, nn.Linear):
        raise TypeError(
            "student and source must end in an nn.Linear head, got "
            f"{type(head).__name__} and {type(source_head).__name__}."
        )
    with seeded(seed):
        aux_head = nn.Linear(head.in_features, source_head.out_features)
    term = LwF(source, aux_head, temperature=temperature)
    student.aux_head = term.old_head  # shared, so the optimiser trains it
    return TransferObjective(terms={"distill": (strength, term)})


class MultiTaskObjective(nn.Module):
    r"""Target loss plus the source task's own loss on *source* images, for a
    :class:`~tlhelpers.models.MultiTaskModel` (notebook 05b).

    .. math::
        \mathcal{L} = \frac1n \sum_i \mathrm{CE}\big(h_T(f_w(x_i)), y_i\big)
        + \lambda\, \frac1m \sum_j \mathrm{CE}\big(h_S(f_w(x^S_j)), y^S_j\big)

    Multi-task learning (Caruana, 1997), also called rehearsal: unlike LwF, which needs no
    source data, each step draws a fresh batch of ``batch_size`` labelled source images
    :math:`(x^S_j, y^S_j)` from ``source_data`` (without replacement within the batch:
    ``torch.randperm(len(source_data), generator=g)[:batch_size]`` with ``g`` a local
    generator seeded by ``seed``, so a run repeats). Source and target images go through
    the body in one forward pass (one BatchNorm batch), so ``weight=0`` gives the target
    loss alone, though BatchNorm in train mode still sees the source images.
    Returns ``{"total", "task", "source"}`` for :func:`tlhelpers.training.fit`'s log.

    Args:
        source_data: the source task's labelled data, in memory (a dataset or a pair).
        weight: :math:`\lambda \ge 0`. batch_size: source images per step.
        source_task, target_task: the heads' names in the model. seed: the draw's seed.
    """

    def __init__(
        self,
        source_data: Data,
        *,
        weight: float = 1.0,
        batch_size: int = 64,
        source_task: str = "source",
        target_task: str = "target",
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.weight = check_positive("weight", weight, strict=False)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        check_data("source_data", source_data)
        tensors = as_tensors(source_data)
        if tensors is None:
            raise ValueError(
                "source_data must live in memory (a TensorImageDataset or an (inputs, "
                f"targets) pair), got {type(source_data).__name__}."
            )
        self.source_inputs, self.source_targets = tensors
        self.source_task, self.target_task = source_task, target_task
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, model: nn.Module, inputs: Tensor, targets: Tensor) -> dict[str, Tensor]:
        if not isinstance(model, MultiTaskModel):
            raise TypeError(
                f"MultiTaskObjective needs a MultiTaskModel, got {type(model).__name__}."
            )
        for name in (self.source_task, self.target_task):
            check_choice("task", name, model.tasks)
        n = len(self.source_targets)
        idx = torch.randperm(n, generator=self.generator)[: min(self.batch_size, n)]
        xs = self.source_inputs[idx].to(inputs.device, inputs.dtype)
        ys = self.source_targets[idx].to(targets.device)
        features = model.body(torch.cat([inputs, xs]))
        task = F.cross_entropy(model.head[self.target_task](features[: len(inputs)]), targets)
        source = F.cross_entropy(model.head[self.source_task](features[len(inputs) :]), ys)
        return {"total": task + self.weight * source, "task": task, "source": source}

    def extra_repr(self) -> str:
        return (
            f"weight={self.weight}, batch_size={self.batch_size}, source={len(self.source_targets)}"
        )
