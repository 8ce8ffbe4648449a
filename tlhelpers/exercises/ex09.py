"""Exercises of notebook 09 (domain adaptation): the gradient-reversal layer, the CORAL loss,
AdaBN by hand, and a challenge on a shifted target without its labels.

``from tlhelpers.exercises import ex09``; ``ex09.grl.check(grad_reverse)``.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import torch
from torch import nn

from ..losses import coral as _coral
from ..models import SmallCNN, split_model
from ._core import Exercise, Wrong, call_student, close, diagnose, off_by, tensor

__all__ = ["grl", "coral", "adabn", "challenge", "challenge_data"]


# ---------------------------------------------------------------------------- 1. GRL


def _check_grl(fn, hidden: bool) -> str:
    cases = (
        [((4, 3), 0.5), ((2, 5), 1.0), ((3,), 0.0)]
        if not hidden
        else [((6, 2), 2.0), ((5, 4), 0.1)]
    )
    for i, (shape, lam) in enumerate(cases):
        g = torch.Generator().manual_seed(40 + i + (50 if hidden else 0))
        base = torch.randn(*shape, generator=g).requires_grad_(True)
        x = 2 * base  # not a leaf: the layer sits inside a network
        before = x.detach().clone()
        where = f"(x of shape {shape}, lambda={lam:g})"
        out = call_student(fn, x, lam, name="grad_reverse")
        if out is None:
            raise Wrong("`grad_reverse` returned None: did you forget `return`?")
        out = tensor(out, "the output", shape=shape, device="cpu")
        if not torch.equal(before, x.detach()):
            raise Wrong(
                "your function changed x in place; the forward pass must leave it as it is."
            )
        if not close(out, before, rtol=1e-5, atol=1e-6):
            if lam not in (0.0, 1.0) and close(out, -lam * before):
                raise Wrong(
                    "the forward pass multiplied x by -lambda; it must be the identity (return x "
                    f"unchanged): only the backward pass reverses. {where}"
                )
            raise Wrong(
                f"the forward pass must return x unchanged, but it changed the values {where}."
            )
        if not out.requires_grad:
            raise Wrong(
                "the output has no gradient: did you .detach() it or use torch.no_grad()? The "
                "layer must pass a (reversed) gradient back to x."
            )
        w = torch.randn(*shape, generator=g)
        call_student((out * w).sum().backward, name="grad_reverse (its backward pass)")
        if base.grad is None:
            raise Wrong(f"no gradient reached x {where}.")
        want = -lam * 2 * w
        got = base.grad
        if not close(got, want, rtol=1e-5, atol=1e-6):
            variants = [
                (2 * w, "the gradient passed through unchanged; it must be reversed and scaled: "
                        "-lambda * grad."),
                (-2 * w, "the gradient is reversed but not scaled: multiply it by -lambda, not -1."),
                (lam * 2 * w, "the gradient is scaled but not reversed: the sign must flip (-lambda)."),
            ]  # fmt: skip
            if lam == 1.0:
                variants = variants[:1] + variants[2:]
            raise Wrong(
                diagnose(
                    got, variants, "the gradient reaching x is not -lambda times the incoming one."
                )
                + f" {where}"
            )
    return "Identity forward, -lambda * grad backward."


grl = Exercise(
    id="ex09_grl",
    title="The gradient-reversal layer",
    minutes=10,
    checker=_check_grl,
    answer_name="grad_reverse",
    hints=[
        "Autograd lets you write both passes yourself: subclass torch.autograd.Function with a "
        "static forward(ctx, x, lam) and a static backward(ctx, grad).",
        "forward saves lam on ctx (ctx.lam = lam) and returns x.view_as(x) (x itself, as a new "
        "tensor); backward returns one gradient per input of forward: the reversed one for x, "
        "None for lam.",
        "backward: return -ctx.lam * grad, None; and grad_reverse(x, lam) = GradReverse.apply(x, lam)",
    ],
    solution_code="""
    class GradReverse(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, lam):
            ctx.lam = lam
            return x.view_as(x)

        @staticmethod
        def backward(ctx, grad):
            return -ctx.lam * grad, None


    def grad_reverse(x, lam):
        return GradReverse.apply(x, lam)
    """,
)

# ---------------------------------------------------------------------------- 2. CORAL


def _coral_variants(s: torch.Tensor, t: torch.Tensor) -> list[tuple[float, str]]:
    s, t = s.double(), t.double()
    d = s.shape[1]

    def cov(x, ddof=1, centre=True):
        xc = x - x.mean(0) if centre else x
        return xc.T @ xc / (len(x) - ddof)

    diff = cov(s) - cov(t)
    return [
        (float((cov(s, 0) - cov(t, 0)).pow(2).sum() / (4 * d * d)),
         "you divided the covariances by n; the paper's (and torch.cov's) divide by n - 1."),
        (float((cov(s, centre=False) - cov(t, centre=False)).pow(2).sum() / (4 * d * d)),
         "centre each domain's features (subtract their mean) before X^T X: a covariance is "
         "about the spread around the mean."),
        (float(diff.pow(2).sum()), "the factor 1 / (4 d^2) is missing."),
        (float(diff.pow(2).sum() / (4 * d)), "divide by 4 d^2 (d squared), not 4 d."),
        (float(diff.pow(2).sum().sqrt() / (4 * d * d)),
         "use the squared Frobenius norm (the sum of squared entries), not the norm."),
        (float(diff.pow(2).sum() / (4 * d * d) + (s.mean(0) - t.mean(0)).pow(2).sum()),
         "CORAL compares covariances only; the mean-difference term belongs to TLlib's variant."),
    ]  # fmt: skip


def _check_coral(fn, hidden: bool) -> str:
    cases = [(8, 6, 3), (5, 7, 4)] if not hidden else [(10, 4, 2), (6, 9, 5)]
    for i, (ns, nt, d) in enumerate(cases):
        g = torch.Generator().manual_seed(60 + i + (50 if hidden else 0))
        s = (torch.randn(ns, d, generator=g) @ torch.randn(d, d, generator=g) + 1.0).requires_grad_(
            True
        )
        t = (2 * torch.randn(nt, d, generator=g) - 0.5).requires_grad_(True)
        saved = (s.detach().clone(), t.detach().clone())
        where = f"(source {ns} x {d}, target {nt} x {d})"
        out = call_student(fn, s, t, name="coral_loss")
        if out is None:
            raise Wrong("`coral_loss` returned None: did you forget `return`?")
        out = tensor(out, "the loss", device="cpu")
        if out.ndim != 0:
            raise Wrong(
                f"the loss should be one number (a 0-D tensor), got shape {tuple(out.shape)} {where}."
            )
        if not (torch.equal(saved[0], s.detach()) and torch.equal(saved[1], t.detach())):
            raise Wrong("your function changed the features in place.")
        want = _coral(saved[0], saved[1]).item()
        got = out.item()
        if not close(got, want, rtol=1e-4, atol=1e-7):
            raise Wrong(
                diagnose(got, _coral_variants(*saved), f"{off_by(got, want)}.") + f" {where}"
            )
        if not out.requires_grad:
            raise Wrong(
                "the loss has no gradient: keep it a tensor computation (no .item(), numpy or "
                "torch.tensor(...)) so that it can train the features."
            )
        call_student(out.backward, name="coral_loss (its backward pass)")
        for name, x in (("source", s), ("target", t)):
            if x.grad is None or not torch.isfinite(x.grad).all() or x.grad.abs().sum() == 0:
                raise Wrong(
                    f"no gradient reached the {name} features: CORAL moves both domains' features "
                    "(did you detach one of them?)."
                )
    return "The paper's CORAL: 1/(4 d^2) ||C_S - C_T||_F^2 with 1/(n-1) covariances, gradients to both domains."


coral = Exercise(
    id="ex09_coral",
    title="The CORAL loss",
    minutes=10,
    checker=_check_coral,
    answer_name="coral_loss",
    hints=[
        "Each domain's covariance is (d, d): C = (X - mean)^T (X - mean) / (n - 1), with n that "
        "domain's own number of rows.",
        "torch.cov(X.T) computes exactly that (it wants variables in rows, so transpose the "
        "(n, d) features). Then the squared Frobenius norm of C_S - C_T is .pow(2).sum().",
        "d = source.shape[1]; return (torch.cov(source.T) - torch.cov(target.T)).pow(2).sum() / (4 * d * d)",
    ],
    solution_code="""
    def coral_loss(source, target):
        d = source.shape[1]
        c_s, c_t = torch.cov(source.T), torch.cov(target.T)
        return (c_s - c_t).pow(2).sum() / (4 * d * d)
    """,
)

# ---------------------------------------------------------------------------- 3. AdaBN


def _bn(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    return [
        (n, m) for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]


def _adabn_case(seed: int, n: int):
    """A SmallCNN whose running statistics come from 'source' images, and shifted target images."""
    from ..data import shift_images

    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = split_model(SmallCNN(10, width=4))
    source = torch.rand(3, 32, 1, 28, 28, generator=g) * 0.6
    model.train()
    with torch.no_grad():
        for batch in source:
            model(batch)
    target = shift_images(torch.rand(n, 1, 28, 28, generator=g) * 0.6, "noisy", seed=seed)
    return model.eval(), target


def _stats(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in _bn(model):
        if m.running_mean is None or m.running_var is None:
            raise Wrong(
                f"`{name}` has no running statistics (track_running_stats=False): AdaBN "
                "re-estimates them, it does not remove them."
            )
        out[f"{name}.running_mean"] = m.running_mean.detach().clone()
        out[f"{name}.running_var"] = m.running_var.detach().clone()
    return out


def _blended(
    model: nn.Module, target: torch.Tensor, *, reset: bool, momentum: float | None = 0.1
) -> dict[str, torch.Tensor]:
    m = copy.deepcopy(model)
    for _, layer in _bn(m):
        if reset:
            layer.reset_running_stats()
        layer.momentum = momentum
    m.train()
    with torch.no_grad():
        m(target)
    return _stats(m)


def _same(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], keys: list[str] | None = None
) -> bool:
    return all(close(a[k], b[k], rtol=1e-3, atol=1e-5) for k in (keys or a))


def _check_adabn(fn, hidden: bool) -> str:
    from ..training import adabn as _kit_adabn

    for seed, n in ((1, 64), (2, 40)) if not hidden else ((11, 100), (12, 24)):
        model, target = _adabn_case(seed, n)
        before_stats = _stats(model)
        before_params = {k: v.detach().clone() for k, v in model.named_parameters()}
        original = copy.deepcopy(model)
        want = _stats(_kit_adabn(copy.deepcopy(model), target.clone(), batch_size=len(target)))
        out = call_student(fn, model, target.clone(), name="adabn_by_hand")
        if out is None:
            raise Wrong("`adabn_by_hand` returned None: return the model (adapted in place).")
        if not isinstance(out, nn.Module):
            raise Wrong(
                f"`adabn_by_hand` should return the model (an nn.Module), got a {type(out).__name__}."
            )
        if out.training:
            raise Wrong(
                "the model is still in train mode: return it in eval mode (model.eval()), or every "
                "later batch would be normalised with its own statistics and update them again."
            )
        if any(not torch.equal(before_params[k], v.detach()) for k, v in out.named_parameters()):
            raise Wrong(
                "the learned weights changed: AdaBN trains nothing, it only re-estimates the "
                "running statistics (no optimiser; run the forward pass under torch.no_grad())."
            )
        moms = {name: layer.momentum for name, layer in _bn(out)}
        if any(m != 0.1 for m in moms.values()):
            name, m = next((k, v) for k, v in moms.items() if v != 0.1)
            raise Wrong(
                f"`{name}` has momentum {m} after your function; put each layer's momentum back as "
                "it was (0.1), so that later training updates the statistics as before."
            )
        got = _stats(out)
        if _same(got, want):
            continue
        means = [k for k in want if k.endswith("mean")]
        if _same(got, before_stats):
            raise Wrong(
                "the running statistics did not change: BatchNorm updates them only in train mode "
                "(model.train()) during a forward pass of the target images."
            )
        if all(torch.all(v == (0.0 if k.endswith("mean") else 1.0)) for k, v in got.items()):
            raise Wrong(
                "the statistics are still the reset values (mean 0, variance 1): the forward "
                "pass of the target images must run in train mode (model.train())."
            )
        if _same(got, _blended(original, target, reset=False, momentum=None)):
            raise Wrong(
                "the source's statistics are still in the average: call reset_running_stats() on "
                "each layer before the pass (momentum=None averages over every batch seen since "
                "the last reset)."
            )
        source_blend = _blended(original, target, reset=False)
        fresh_blend = _blended(original, target, reset=True)
        if _same(got, source_blend) or _same(got, fresh_blend):
            raise Wrong(
                "your statistics are a blend (momentum 0.1) of the target's and the old ones: reset "
                "each layer (reset_running_stats()) and set momentum=None for the plain average of "
                "the target's batches."
            )
        if _same(got, want, means[:1]):
            raise Wrong(
                "the first layer's means match but the rest does not: pass all the target images "
                "in one batch (in train mode each batch is normalised with its own statistics, "
                "so smaller batches change the deeper layers' statistics, and averaging per-batch "
                "variances misses the spread between batch means)."
            )
        key = next(k for k in want if not close(got[k], want[k], rtol=1e-3, atol=1e-5))
        raise Wrong(f"`{key}` differs from the target's statistics (case with {n} target images).")
    return "BatchNorm's statistics re-estimated on the target; weights untouched; eval mode; momentum restored."


adabn = Exercise(
    id="ex09_adabn",
    title="AdaBN in ten lines",
    minutes=15,
    checker=_check_adabn,
    answer_name="adabn_by_hand",
    hints=[
        "In train mode a BatchNorm layer updates running_mean and running_var at every forward "
        "pass; in eval mode it uses them. AdaBN replaces the source's statistics by the target's.",
        "For every BatchNorm layer (isinstance(m, nn.modules.batchnorm._BatchNorm)): "
        "m.reset_running_stats() and m.momentum = None (a plain average instead of a blend). Then "
        "model.train() and one forward pass of all the target images under torch.no_grad().",
        "Remember each layer's momentum before, put it back after the pass, and return model.eval().",
    ],
    solution_code="""
    from torch import nn


    def adabn_by_hand(model, target_images):
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        saved = [m.momentum for m in layers]
        for m in layers:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            model(target_images)
        for m, momentum in zip(layers, saved, strict=True):
            m.momentum = momentum
        return model.eval()
    """,
)

# ---------------------------------------------------------------------------- 4. challenge

#: Notebook 09's setting: Fashion-MNIST source, its "noisy" shift as the unlabelled target.
CHALLENGE: dict[str, Any] = {"shift": "noisy", "n_source": 1600, "n_target": 1600, "n_eval": 1000, "width": 8,
             "pretrain_steps": 200, "seed": 0, "budget_s": 20.0, "margin": 0.10}  # fmt: skip
_cache: dict = {}


def _domains() -> dict:
    if "domains" not in _cache:
        from ..data import load_dataset, shift_images

        seed, shift = CHALLENGE["seed"], CHALLENGE["shift"]
        pool, test = load_dataset("fashion_mnist", "train"), load_dataset("fashion_mnist", "test")
        perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
        ns, nt, ne = CHALLENGE["n_source"], CHALLENGE["n_target"], CHALLENGE["n_eval"]
        src, tgt = perm[:ns], perm[ns : ns + nt]
        order = torch.randperm(len(test), generator=torch.Generator().manual_seed(2026))
        val, hid = order[:ne], order[ne : 2 * ne]
        _cache["domains"] = {
            "source": (pool.images[src].clone(), pool.targets[src].clone()),
            "target": shift_images(pool.images[tgt], shift, seed=seed + 1),
            "val": (
                shift_images(test.images[val], shift, seed=seed + 2),
                test.targets[val].clone(),
            ),
            "test": (
                shift_images(test.images[hid], shift, seed=seed + 3),
                test.targets[hid].clone(),
            ),
        }
    return _cache["domains"]


def _source_model() -> nn.Module:
    if "model" not in _cache:
        from ..adaptation import adapt
        from ..recipes import get_recipe
        from ..runtime import seeded

        d = _domains()
        with seeded(CHALLENGE["seed"]):
            model = split_model(SmallCNN(10, width=CHALLENGE["width"]))
        adapt(model, d["source"], d["target"], method="none",
              steps=CHALLENGE["pretrain_steps"], lr=get_recipe("scratch").lr_body, batch_size=32,
              seed=CHALLENGE["seed"])  # fmt: skip
        _cache["model"] = model.eval()
    return _cache["model"]


def challenge_data() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``(model, source, target_images)``: a copy of the source-only network (trained on the
    source as in notebook 09), the labelled source ``(images, labels)`` and the unlabelled
    shifted target images."""
    d = _domains()
    return (
        copy.deepcopy(_source_model()),
        (d["source"][0].clone(), d["source"][1].clone()),
        d["target"].clone(),
    )


def _accuracy(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], name: str) -> float:
    from ..training import evaluate

    return float(call_student(evaluate, model, data, name=name)["accuracy"])


def _baseline(split: str) -> float:
    key = f"baseline_{split}"
    if key not in _cache:
        _cache[key] = _accuracy(_source_model(), _domains()[split], "evaluate")
    return _cache[key]


def _check_challenge(fn, hidden: bool) -> str:
    last = _cache.get("last")
    if hidden and last is not None and last[0] is fn:  # score what the visible check adapted
        _, model, seconds = last
    else:
        model, source, target = challenge_data()
        start = time.perf_counter()
        model = call_student(
            fn, model, source, target, name="adapt_to_target", limit_s=CHALLENGE["budget_s"]
        )
        seconds = time.perf_counter() - start
        if model is None:
            raise Wrong("`adapt_to_target` returned None: return the adapted model.")
        if not isinstance(model, nn.Module):
            raise Wrong(
                f"`adapt_to_target` should return an nn.Module, got a {type(model).__name__}."
            )
        _cache["last"] = (fn, model, seconds)
    try:
        device = next(model.parameters()).device
    except StopIteration:
        raise Wrong("the returned model has no parameters.") from None
    if device != torch.device("cpu"):
        raise Wrong(
            f"the returned model is on {device}; the check runs on the CPU: return model.cpu()."
        )
    model.eval()
    split = "test" if hidden else "val"
    data = _domains()[split]
    with torch.no_grad():
        logits = call_student(model, data[0][:4], name="your model (applied to target images)")
    tensor(logits, "the model's output", shape=(4, 10), device="cpu")
    acc = _accuracy(model, data, "your model (applied to target images)")
    base = _baseline(split)
    where = (
        "the hidden target test images"
        if hidden
        else f"{CHALLENGE['n_eval']} labelled target images the check holds (you do not get their labels)"
    )
    if acc < base + CHALLENGE["margin"]:
        raise Wrong(
            f"accuracy {acc:.3f} on {where}; the source-only network gets {base:.3f}. Beat it by "
            f"{CHALLENGE['margin']:.2f} (your adaptation took {seconds:.1f} s of {CHALLENGE['budget_s']:g})."
        )
    return (
        f"accuracy {acc:.3f} on {where}, source-only {base:.3f}, "
        f"{seconds:.1f} s of {CHALLENGE['budget_s']:g}."
    )


challenge = Exercise(
    id="ex09_challenge",
    title="Open challenge: beat source-only on the shifted target without its labels, in 20 s",
    minutes=40,
    checker=_check_challenge,
    answer_name="adapt_to_target",
    hints=[
        "The network was trained on clean images; the target's pixels are noisy. Which of its "
        "numbers describe the input distribution, and can they be re-estimated without labels?",
        "Exercise 3's AdaBN needs no training at all; tlhelpers.training.adapt(model, source, "
        "target_images, method='mmd', strength=1.0, steps=100, batch_size=32) aligns the features. "
        "Try them alone and together on the check.",
        "return tlhelpers.training.adabn(model, target_images, batch_size=len(target_images))",
    ],
    solution_code="""
    from tlhelpers.training import adabn as kit_adabn


    def adapt_to_target(model, source, target_images):
        return kit_adabn(model, target_images, batch_size=len(target_images))
    """,
)
