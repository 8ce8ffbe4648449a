"""Composition of a transfer-learning objective: task loss + weighted regularisers.

``TransferObjective`` is a callable ``(model, x, y) -> dict[str, Tensor]`` that the kit's
``fit`` loop accepts directly; it logs every key of the dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from tlhelpers.validation import check_choice

__all__ = ["TermContext", "ContextTerm", "TransferObjective", "TERM_FIELDS"]

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
            self.weights[name] = float(weight)
            term = _as_term(name, term)
            if isinstance(term, nn.Module):
                self.terms[name] = term
            else:
                self._plain_terms[name] = term
        self._order = list(self.weights)

    def set_weight(self, name: str, weight: float) -> None:
        """Change a term's weight, e.g. for a warm-up schedule."""
        check_choice("term name", name, self._order)
        self.weights[name] = float(weight)

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
