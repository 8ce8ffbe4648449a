"""Fine-tuning regularisers (same-type / parameter transfer): L2, L2-SP, BSS and DELTA.

Each regulariser has a ``term_inputs`` attribute naming the
:class:`~tlhelpers.losses.TermContext` fields its ``forward`` takes, so it can be passed
directly as a :class:`~tlhelpers.losses.TransferObjective` term.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from tlhelpers.losses._utils import check_2d, frozen_copy
from tlhelpers.losses._utils import check_finite as _check_finite
from tlhelpers.models import eval_mode
from tlhelpers.validation import check_int, check_positive

__all__ = [
    "l2",
    "L2",
    "l2sp",
    "L2SP",
    "bss",
    "BatchSpectralShrinkage",
    "feature_map_distance",
    "FeatureMapDistance",
    "delta_channel_attention",
]

NamedParams = nn.Module | Iterable[tuple[str, Tensor]]


def _named_params(model_or_named_params: NamedParams) -> list[tuple[str, Tensor]]:
    if isinstance(model_or_named_params, nn.Module):
        return list(model_or_named_params.named_parameters())
    return list(model_or_named_params)


def _selected(p: Tensor, weights_only: bool) -> bool:
    # "weights" = conv / linear kernels (ndim >= 2); biases and norm affine params are 1-D.
    return p.requires_grad and (p.ndim >= 2 or not weights_only)


def _check_params_finite(params: Iterable[tuple[str, Tensor]]) -> None:
    for name, p in params:
        _check_finite(f"parameter {name!r}", p.detach())


def _zero_like_params(params: list[tuple[str, Tensor]]) -> Tensor:
    for _, p in params:
        return p.new_zeros(())
    return torch.zeros(())


# --------------------------------------------------------------------------- L2


def l2(
    model_or_named_params: NamedParams,
    alpha: float = 1e-4,
    weights_only: bool = True,
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""Plain L2 penalty toward zero, the baseline of L2-SP.

    .. math:: \Omega(w) = \frac{\alpha}{2}\,\|w\|_2^2

    Weight decay (e.g. Krogh & Hertz, "A Simple Weight Decay Can Improve Generalization",
    NIPS 1991), the baseline L2-SP is compared with in Li et al., ICML 2018.
    With plain SGD this equals ``weight_decay=alpha`` (the gradient is ``alpha * w``); with
    Adam it is *not* the same as AdamW's decoupled decay. Do not use both.

    Args:
        model_or_named_params: a module or an iterable of ``(name, parameter)`` pairs.
        alpha: strength (>= 0).
        weights_only: if True (default) only conv/linear weights (``ndim >= 2``) are
            penalised, not biases nor BatchNorm/LayerNorm affine parameters. Parameters
            with ``requires_grad=False`` (frozen) are always skipped.
        check_finite: refuse a penalised parameter holding NaN/inf, naming it. Default
            True: a diverged weight would otherwise give a silent NaN penalty. It costs a
            reduction and a device sync per parameter; pass False inside a training loop
            that already stops on a non-finite loss (``tlhelpers.training.fit`` does).

    Returns:
        0-D tensor.
    """
    check_positive("alpha", alpha, strict=False)
    params = _named_params(model_or_named_params)
    selected = [(n, p) for n, p in params if _selected(p, weights_only)]
    if check_finite:
        _check_params_finite(selected)
    total = _zero_like_params(params)
    for _, p in selected:
        total = total + p.pow(2).sum()
    return 0.5 * alpha * total


class L2(nn.Module):
    """Module form of :func:`l2`: ``forward(model) -> alpha/2 * ||w||^2``.

    Args:
        alpha: strength. weights_only: skip biases and norm affine parameters (default).
    """

    term_inputs: tuple[str, ...] = ("model",)

    def __init__(
        self, alpha: float = 1e-4, weights_only: bool = True, check_finite: bool = True
    ) -> None:
        super().__init__()
        self.alpha = check_positive("alpha", alpha, strict=False)
        self.weights_only = weights_only
        self.check_finite = check_finite

    def forward(self, model: NamedParams) -> Tensor:
        return l2(model, self.alpha, self.weights_only, check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, weights_only={self.weights_only}"


# --------------------------------------------------------------------------- L2-SP


def _split_l2sp(
    params: list[tuple[str, Tensor]],
    source_names: Mapping[str, tuple[int, ...]],
    head_prefixes: Sequence[str],
    weights_only: bool,
) -> tuple[list[tuple[str, Tensor]], list[tuple[str, Tensor]]]:
    """Split parameters into transferred (w_S, have a source value) and new (w_new)."""
    transferred, new = [], []
    prefixes = tuple(head_prefixes)
    for name, p in params:
        if not _selected(p, weights_only):
            continue
        if name.startswith(prefixes) or name not in source_names:
            new.append((name, p))
        elif tuple(p.shape) != tuple(source_names[name]):
            raise ValueError(
                f"parameter {name!r} has shape {tuple(p.shape)} but its source value has "
                f"shape {tuple(source_names[name])}; if it is a new layer, add its prefix "
                f"to head_prefixes (now {list(prefixes)})."
            )
        else:
            transferred.append((name, p))
    if not any(n in source_names and not n.startswith(prefixes) for n, _ in params):
        # Without a tie L2-SP is plain L2 on every weight: a silent change of method.
        # (Ties to frozen parameters are fine: they cannot move, their pull is 0.)
        model_names = [n for n, _ in params if not n.startswith(prefixes)]
        source = list(source_names)
        raise ValueError(
            f"source_state ties no parameter of the model: none of its {len(source)} names "
            f"is a parameter of the model outside head_prefixes {list(prefixes)}, so "
            f"L2-SP would silently be plain L2. Model "
            f"names: {model_names[:3]}...; source_state names: {source[:3]}.... After "
            "replace_head the body's names start with 'body.0.': build L2SP(model) right "
            "after replace_head, or rename the source keys to the model's names."
        )
    return transferred, new


def l2sp(
    model_or_named_params: NamedParams,
    source_state: Mapping[str, Tensor],
    alpha: float = 0.1,
    beta: float = 0.01,
    head_prefixes: Sequence[str] = ("head.",),
    weights_only: bool = True,
    *,
    check_finite: bool = True,
) -> Tensor:
    r"""L2-SP: pull the transferred weights toward their pre-trained values.

    .. math::
        \Omega(w) = \frac{\alpha}{2}\,\|w_S - w_S^0\|_2^2 + \frac{\beta}{2}\,\|w_{new}\|_2^2

    Li, Grandvalet, Davoine, "Explicit Inductive Bias for Transfer Learning with
    Convolutional Networks", ICML 2018. Defaults ``alpha=0.1, beta=0.01`` follow the
    authors' code. Gradient: ``alpha * (w - w0)`` on ``w_S``, ``beta * w`` on ``w_new``.

    Conventions:

    - ``w_S`` = parameters whose name is in ``source_state`` and does not start with one of
      ``head_prefixes``; ``w_new`` = the others (the new head, layers absent from the source).
      A transferred name whose shape differs from its source value raises ``ValueError``.
    - ``weights_only=True`` (default, as the authors' code): only conv/linear weights
      (``ndim >= 2``) are penalised; biases and BatchNorm affine parameters are free.
      ``weights_only=False`` penalises every parameter (TLlib's choice).
    - Frozen parameters (``requires_grad=False``) are skipped.
    - A ``source_state`` that ties no parameter (e.g. the source model's own
      ``state_dict()``, whose names lack the ``body.0.`` prefix that :func:`replace_head`
      adds) raises ``ValueError``: L2-SP would otherwise silently be plain L2.
    - Turn the optimiser's ``weight_decay`` **off**: it would add a pull toward 0 that
      fights the pull toward ``w0`` (and decays the head twice).

    Args:
        model_or_named_params: the model being fine-tuned, or its ``named_parameters()``.
        source_state: ``{name: tensor}`` of the pre-trained values, e.g. a detached copy of
            ``model.state_dict()`` taken before fine-tuning (see :class:`L2SP`).
        alpha: strength of the pull toward the source weights.
        beta: strength of the plain L2 on new parameters.
        head_prefixes: name prefixes of the new parameters (the kit's models use "head.").
        weights_only: see above.
        check_finite: refuse NaN/inf in a penalised parameter or its source value, naming
            it (default True; see :func:`l2` for why and when to switch it off).

    Returns:
        0-D tensor.
    """
    check_positive("alpha", alpha, strict=False)
    check_positive("beta", beta, strict=False)
    if isinstance(head_prefixes, str):
        head_prefixes = (head_prefixes,)
    params = _named_params(model_or_named_params)
    shapes = {k: tuple(v.shape) for k, v in source_state.items()}
    transferred, new = _split_l2sp(params, shapes, head_prefixes, weights_only)
    if check_finite:
        _check_params_finite(transferred + new)
        _check_params_finite((f"source_state[{n!r}]", source_state[n]) for n, _ in transferred)
    sp = _zero_like_params(params)
    for name, p in transferred:
        w0 = source_state[name].to(device=p.device, dtype=p.dtype)
        sp = sp + (p - w0).pow(2).sum()
    l2_new = _zero_like_params(params)
    for _, p in new:
        l2_new = l2_new + p.pow(2).sum()
    return 0.5 * alpha * sp + 0.5 * beta * l2_new


class L2SP(nn.Module):
    """Module form of :func:`l2sp` (Li, Grandvalet, Davoine, ICML 2018) holding ``w0``.

    ``L2SP(model)`` snapshots the model's current parameters as the source weights, so
    build it right after loading the pre-trained weights (before any training step).
    The snapshot is kept in buffers, so ``.to(device)`` moves it. ``forward(model)``
    returns the penalty; as a :class:`~tlhelpers.losses.TransferObjective` term it reads
    ``ctx.model``. Remember to set the optimiser's ``weight_decay=0``.

    ``n_transferred`` / ``transferred_names`` report the parameters tied to a source
    value (also in the ``repr``); a ``source_state`` that ties none raises ``ValueError``.

    Args:
        model: the model to fine-tune (its current values become ``w0``).
        alpha, beta, head_prefixes, weights_only, check_finite: as in :func:`l2sp`.
        source_state: explicit source values instead of the snapshot.
    """

    term_inputs: tuple[str, ...] = ("model",)

    def __init__(
        self,
        model: nn.Module,
        alpha: float = 0.1,
        beta: float = 0.01,
        head_prefixes: Sequence[str] = ("head.",),
        weights_only: bool = True,
        source_state: Mapping[str, Tensor] | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__()
        self.check_finite = check_finite
        self.alpha = check_positive("alpha", alpha, strict=False)
        self.beta = check_positive("beta", beta, strict=False)
        self.head_prefixes = (
            (head_prefixes,) if isinstance(head_prefixes, str) else tuple(head_prefixes)
        )
        self.weights_only = weights_only
        state = dict(model.named_parameters()) if source_state is None else dict(source_state)
        shapes = {k: tuple(v.shape) for k, v in state.items()}
        transferred, _ = _split_l2sp(
            list(model.named_parameters()), shapes, self.head_prefixes, weights_only
        )
        self._names: dict[str, str] = {}  # parameter name -> buffer name ("." not allowed)
        for name, _ in transferred:
            buf = "w0__" + name.replace(".", "__")
            self._names[name] = buf
            w0 = state[name].detach().clone()
            _check_finite(f"source_state[{name!r}]", w0)  # once: w0 never changes
            self.register_buffer(buf, w0)

    @property
    def n_transferred(self) -> int:
        """How many parameters are tied to their source value."""
        return len(self._names)

    @property
    def transferred_names(self) -> list[str]:
        """Names of the parameters tied to their source value."""
        return list(self._names)

    @property
    def source_state(self) -> dict[str, Tensor]:
        """``{parameter name: w0}`` of the transferred parameters."""
        return {name: getattr(self, buf) for name, buf in self._names.items()}

    def forward(self, model: NamedParams) -> Tensor:
        return l2sp(
            model, self.source_state, self.alpha, self.beta, self.head_prefixes,
            self.weights_only, check_finite=self.check_finite,
        )  # fmt: skip

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha}, beta={self.beta}, head_prefixes={self.head_prefixes}, "
            f"weights_only={self.weights_only}, n_transferred={len(self._names)}"
        )


# --------------------------------------------------------------------------- BSS


def bss(features: Tensor, k: int = 1, *, check_finite: bool = True) -> Tensor:
    r"""Batch Spectral Shrinkage: penalise the k smallest singular values of the batch.

    .. math:: \Omega(F) = \sum_{i=1}^{k} \sigma_{-i}^2(F)

    where :math:`\sigma_{-1} \le \sigma_{-2} \le \dots` are the smallest singular values of
    the (N, D) feature matrix ``F`` (there are ``min(N, D)``). Chen, Wang, Fu, Long, Wang,
    "Catastrophic Forgetting Meets Negative Transfer: Batch Spectral Shrinkage for Safe
    Transfer Learning", NeurIPS 2019 (k = 1, trade-off ~1e-3). Features are not centred,
    as in the paper.

    Args:
        features: (N, D) batch of features (e.g. ``model.body(x)``).
        k: number of smallest singular values, 1 <= k <= min(N, D).
        check_finite: refuse NaN/inf features with a ``ValueError`` (default True; the SVD
            would otherwise fail with an obscure error or return NaN; see :func:`l2`).

    Returns:
        0-D tensor.
    """
    features = check_2d("features", features)
    if check_finite:
        _check_finite("features", features)
    r = min(features.shape)
    check_int("k", k, minimum=1)
    if k > r:
        raise ValueError(
            f"k must be <= min(N, D) = {r} for features of shape {tuple(features.shape)}, got {k}."
        )
    s = torch.linalg.svdvals(features)  # descending
    return s[-k:].pow(2).sum()


class BatchSpectralShrinkage(nn.Module):
    """Module form of :func:`bss` (Chen et al., NeurIPS 2019).

    Shape:
        - Input: features (N, D). As a TransferObjective term it reads ``ctx.features``.
        - Output: scalar.
    """

    term_inputs: tuple[str, ...] = ("features",)

    def __init__(self, k: int = 1, check_finite: bool = True) -> None:
        super().__init__()
        self.k = check_int("k", k, minimum=1)
        self.check_finite = check_finite

    def forward(self, features: Tensor) -> Tensor:
        return bss(features, self.k, check_finite=self.check_finite)

    def extra_repr(self) -> str:
        return f"k={self.k}"


# --------------------------------------------------------------------------- DELTA


def _as_nc_rest(t: Tensor) -> Tensor:
    """(N, C, ...) -> (N, C, L) with L the number of spatial positions (1 for (N, C))."""
    if t.ndim < 2:
        raise ValueError(f"feature maps must be at least 2-D (N, C, ...), got {tuple(t.shape)}.")
    return t.reshape(t.shape[0], t.shape[1], -1)


def _first_tensor(output: object) -> Tensor:
    if isinstance(output, Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], Tensor):
        return output[0]
    raise ValueError(f"hooked layer returned {type(output).__name__}, expected a Tensor.")


def feature_map_distance(
    student_maps: Mapping[str, Tensor],
    source_maps: Mapping[str, Tensor],
    channel_attention: Mapping[str, Tensor] | None = None,
) -> Tensor:
    r"""DELTA's feature-map distance between recorded activations; see :class:`FeatureMapDistance`.

    .. math::
        \Omega = \frac12 \sum_j \frac1N \sum_i \sum_c w_{jc} \frac{1}{L_j}
        \big\| FM_{jc}(x_i; w) - FM_{jc}(x_i; w^0) \big\|_2^2

    Shape:
        - Input: per layer name, student and source activations of the same shape
          (N, C, ...) (L_j = product of the trailing dims, 1 for (N, C)); attention (C,).
        - Output: scalar.
    """
    if not student_maps or set(student_maps) != set(source_maps):
        raise ValueError(
            f"student_maps and source_maps must name the same non-empty layers, got "
            f"{sorted(student_maps)} and {sorted(source_maps)}."
        )
    if channel_attention is not None:
        unknown = set(channel_attention) - set(student_maps)
        if unknown:
            raise ValueError(f"channel_attention has unknown layers {sorted(unknown)}.")
    total: Tensor | None = None
    for name in student_maps:
        ft = _as_nc_rest(student_maps[name])
        fs = _as_nc_rest(source_maps[name])
        if ft.shape != fs.shape:
            raise ValueError(
                f"layer {name!r}: student activations {tuple(ft.shape)} and source "
                f"activations {tuple(fs.shape)} differ (were they run on the same inputs?)."
            )
        per_channel = (ft - fs).pow(2).mean(2).mean(0)  # (C,)
        if channel_attention is not None and name in channel_attention:
            w = channel_attention[name].to(per_channel)
            if w.shape != per_channel.shape:
                raise ValueError(
                    f"channel_attention[{name!r}] has shape {tuple(w.shape)}, expected "
                    f"{tuple(per_channel.shape)}."
                )
            per_channel = per_channel * w
        total = per_channel.sum() if total is None else total + per_channel.sum()
    assert total is not None
    return 0.5 * total


class FeatureMapDistance(nn.Module):
    r"""DELTA-style feature-map regulariser: stay close to the source network's activations.

    .. math::
        \Omega = \frac12 \sum_{j \in \text{layers}} \frac1N \sum_{i=1}^{N} \sum_{c=1}^{C_j}
        w_{jc}\, \frac{1}{L_j}\,\big\| FM_{jc}(x_i; w) - FM_{jc}(x_i; w^0) \big\|_2^2

    Li, Xiong, Wang, Huan, Chen, Dou, Tan, "DELTA: Deep Learning Transfer using Feature Map
    with Attention for Convolutional Networks", ICLR 2019. ``FM_{jc}`` is channel c of
    layer j's output (L_j spatial positions; L = 1 for (N, C) outputs), ``w^0`` a frozen
    copy of the source network. Normalisation (a choice; the paper leaves it open): mean
    over the batch and over spatial positions, sum over channels and layers (TLlib sums
    over the batch instead). ``w_{jc}`` = 1 without attention, or channel attention
    weights from :func:`delta_channel_attention` (softmax over channels, so they sum to 1
    per layer and the penalty is ~C times smaller than unweighted: rescale the trade-off).

    Mechanism: forward hooks on the named layers of ``student`` record its activations
    during the objective's normal forward pass; ``forward(inputs)`` then runs the frozen
    source on the same inputs (``no_grad``) and compares. So call it right after the
    student's forward on ``inputs`` -- :class:`~tlhelpers.losses.TransferObjective` does.
    Call :meth:`remove` to detach the hooks when done. The source stays in eval mode, so
    with BatchNorm layers the distance is not exactly 0 at the start of training while the
    student (train mode) normalises with batch statistics; keep the student's BN layers in
    eval mode (``batchnorm="eval"`` of ``tlhelpers.training.fit`` or a recipe) for a
    distance that starts at 0.

    Args:
        student: the model being fine-tuned.
        layers: names of submodules (as in ``named_modules()``), same in both networks.
        source: source network; ``None`` snapshots ``student`` now (deep copy), so build
            it before training. Frozen and kept in eval mode.
        channel_attention: optional ``{layer name: (C,) weights}``.

    Shape:
        - Input: inputs, the batch the student has just processed.
        - Output: scalar.
    """

    term_inputs: tuple[str, ...] = ("inputs",)

    def __init__(
        self,
        student: nn.Module,
        layers: Sequence[str],
        source: nn.Module | None = None,
        channel_attention: Mapping[str, Tensor] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(layers, str) or len(layers) == 0:
            raise ValueError(f"layers must be a non-empty sequence of layer names, got {layers!r}.")
        self.layers = list(layers)
        self.source = frozen_copy(student if source is None else source)
        self._student_fm: dict[str, Tensor] = {}
        self._source_fm: dict[str, Tensor] = {}
        self._handles: list[RemovableHandle] = []
        for net, store in ((student, self._student_fm), (self.source, self._source_fm)):
            modules = dict(net.named_modules())
            for name in self.layers:
                if name not in modules:
                    valid = ", ".join(repr(n) for n in modules if n)
                    raise ValueError(f"Unknown layer {name!r}. Valid values: {valid}.")
                self._handles.append(
                    modules[name].register_forward_hook(self._make_hook(store, name))
                )
        # Attention is stored as plain tensors in a dict; keys may contain dots.
        self.channel_attention: dict[str, Tensor] | None = None
        if channel_attention is not None:
            unknown = set(channel_attention) - set(self.layers)
            if unknown:
                raise ValueError(f"channel_attention has unknown layers {sorted(unknown)}.")
            self.channel_attention = {k: v.detach() for k, v in channel_attention.items()}

    @staticmethod
    def _make_hook(store: dict[str, Tensor], name: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object, output: object) -> None:
            store[name] = _first_tensor(output)

        return hook

    def train(self, mode: bool = True) -> FeatureMapDistance:
        # The source stays in eval mode: its BN statistics are part of w^0.
        super().train(mode)
        self.source.eval()
        return self

    def remove(self) -> None:
        """Remove all forward hooks (student and source)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def forward(self, inputs: Tensor) -> Tensor:
        missing = [n for n in self.layers if n not in self._student_fm]
        if missing:
            raise RuntimeError(
                f"no student activations recorded for layers {missing}: run the student "
                "on `inputs` before calling FeatureMapDistance."
            )
        with torch.no_grad():
            self.source(inputs)
        try:
            return feature_map_distance(
                {n: self._student_fm[n] for n in self.layers},
                {n: self._source_fm[n] for n in self.layers},
                self.channel_attention,
            )
        finally:
            self._student_fm.clear()
            self._source_fm.clear()


@torch.no_grad()
def delta_channel_attention(
    source_model: nn.Module,
    layers: Sequence[str],
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: Callable[[Tensor, Tensor], Tensor] = F.cross_entropy,
    temperature: float = 1.0,
) -> dict[str, Tensor]:
    r"""DELTA supervised channel attention: how much the loss rises when a channel is zeroed.

    .. math::
        w_{j} = \mathrm{softmax}_c\Big(\frac{L(w^0_{\setminus jc}) - L(w^0)}{\tau}\Big)

    Li et al., ICLR 2019, eq. (5). ``L`` is ``loss_fn`` of the *source* model (with a head
    that fits the labels of ``batches``) averaged over the batches; ``w^0_{\setminus jc}``
    zeroes channel c of layer j's output. Simplification (documented): one weight vector
    per layer over the whole data (as TLlib), not per sample as in the paper.

    Cost: one forward per channel per batch, so use a few batches. The model runs in
    :func:`tlhelpers.models.eval_mode`: every submodule's own mode is restored afterwards.

    Args:
        source_model: maps inputs to logits compatible with the labels.
        layers: submodule names whose output channels (dim 1) are scored.
        batches: iterable of ``(inputs, labels)`` (materialised once).
        loss_fn: ``loss_fn(logits, labels) -> scalar`` (default cross-entropy).
        temperature: softmax temperature ``tau`` (> 0).

    Returns:
        ``{layer name: (C,) weights summing to 1}``.
    """
    check_positive("temperature", temperature)
    data = list(batches)
    if not data:
        raise ValueError("batches is empty.")
    modules = dict(source_model.named_modules())

    def mean_loss() -> Tensor:
        return torch.stack([loss_fn(source_model(x), y) for x, y in data]).mean()

    channel = [0]  # index of the channel the hook zeroes, updated in the loop

    def zero_channel(module: nn.Module, args: object, output: Tensor) -> Tensor:
        out = output.clone()
        out[:, channel[0]] = 0
        return out

    # eval_mode restores every submodule's own mode (train(was_training) would flip a
    # BatchNorm layer deliberately kept in eval mode back to training).
    with eval_mode(source_model):
        base = mean_loss()
        result: dict[str, Tensor] = {}
        for name in layers:
            if name not in modules:
                valid = ", ".join(repr(n) for n in modules if n)
                raise ValueError(f"Unknown layer {name!r}. Valid values: {valid}.")
            n_channels = _as_nc_rest(_record(source_model, modules[name], data[0][0])).shape[1]
            rises = []
            handle = modules[name].register_forward_hook(zero_channel)
            try:
                for c in range(n_channels):  # loop over channels, not samples
                    channel[0] = c
                    rises.append(mean_loss() - base)
            finally:
                handle.remove()
            result[name] = torch.softmax(torch.stack(rises) / temperature, dim=0)
    return result


def _record(model: nn.Module, module: nn.Module, x: Tensor) -> Tensor:
    """Run ``model(x)`` and return ``module``'s output."""
    out: list[Tensor] = []
    handle = module.register_forward_hook(lambda m, a, o: out.append(_first_tensor(o)))
    try:
        model(x)
    finally:
        handle.remove()
    return out[0]
