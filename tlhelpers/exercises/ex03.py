"""Exercises of notebooks 03a/03b (loss transfer): the L2-SP penalty, BSS, one training step.

``from tlhelpers.exercises import ex03``; ``ex03.l2sp.check(l2sp_penalty)``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..losses import bss as _bss_loss
from ..losses import l2sp as _l2sp_loss
from ..models import SmallCNN, transfer_model
from ._core import Exercise, Wrong, call_student, close, diagnose, number, off_by, tensor

__all__ = ["l2sp", "bss", "train_step"]


def _case(seed: int, width: int = 4, freeze_first: bool = False):
    """A transferred SmallCNN, its source state, and the weights moved away from the source."""
    torch.manual_seed(seed)
    source = SmallCNN(num_classes=3, width=width).eval()
    model = transfer_model(source, 2, seed=seed)
    state = {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith("body.")}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    if freeze_first:
        body = model.body
        assert isinstance(
            body, nn.Sequential
        )  # transfer_model's SmallCNN: Sequential(features, pool)
        body[0].block1.requires_grad_(False)
    return model, state


def _l2sp_variants(model, state, alpha, beta):
    """Typical wrong answers: (value, message)."""
    ps = dict(model.named_parameters())
    w = {n: p.detach() for n, p in ps.items() if p.requires_grad and p.ndim >= 2}
    body = [n for n in w if n in state]
    head = [n for n in w if n not in state]
    d2 = sum(float((w[n] - state[n]).pow(2).sum()) for n in body)
    b2 = sum(float(w[n].pow(2).sum()) for n in body)
    h2 = sum(float(w[n].pow(2).sum()) for n in head)
    d2_all = sum(
        float((p.detach() - state[n]).pow(2).sum())
        for n, p in ps.items()
        if n in state and p.requires_grad
    )
    d2_frozen = sum(
        float((p.detach() - state[n]).pow(2).sum())
        for n, p in ps.items()
        if n in state and p.ndim >= 2
    )
    right = 0.5 * alpha * d2 + 0.5 * beta * h2
    return [
        (
            0.5 * alpha * b2 + 0.5 * beta * h2,
            "your penalty ignores the source weights: it equals "
            "alpha/2 ||w||^2, plain L2 toward zero. L2-SP pulls w toward w0 = source_state[name].",
        ),
        (
            0.5 * alpha * (b2 + h2),
            "your penalty ignores the source weights (plain L2 on every weight).",
        ),
        (2 * right, "your value is twice the expected one: the formula has alpha/2 and beta/2."),
        (
            alpha * d2 + 0.5 * beta * h2,
            "the source term is twice too large: it is alpha/2 ||w_S - w0||^2.",
        ),
        (0.5 * alpha * d2, "the new head's term beta/2 ||w_new||^2 is missing."),
        (
            0.5 * beta * d2 + 0.5 * alpha * h2,
            "alpha and beta are swapped: alpha weighs the pull to the source.",
        ),
        (
            0.5 * alpha * d2_all + 0.5 * beta * h2,
            "you also penalised biases and BatchNorm parameters (1-D); "
            "this exercise penalises only weights with p.ndim >= 2.",
        ),
        (
            0.5 * alpha * d2_frozen + 0.5 * beta * h2,
            "you penalised frozen parameters (requires_grad=False): they cannot move, skip them.",
        ),
        (0.5 * alpha * d2**0.5 + 0.5 * beta * h2**0.5, "you used the norm, not the squared norm."),
    ], right


def _check_l2sp(fn, hidden: bool) -> str:
    cases = (
        [(0, 0.1, 0.01, False), (1, 1.0, 0.5, True)]
        if not hidden
        else [(7, 0.3, 0.2, False), (8, 2.0, 0.0, True)]
    )
    for seed, alpha, beta, freeze in cases:
        model, state = _case(seed, freeze_first=freeze)
        saved = {n: t.clone() for n, t in state.items()}
        out = call_student(fn, model, state, alpha, beta, name="l2sp_penalty")
        if out is None:
            raise Wrong("`l2sp_penalty` returned None: did you forget `return`?")
        out = tensor(out, "the penalty", device="cpu")
        if out.ndim != 0:
            raise Wrong(
                f"the penalty should be one number (a 0-D tensor), got shape {tuple(out.shape)}: "
                "sum over every parameter and every entry."
            )
        if any(not torch.equal(saved[n], state[n]) for n in state):
            raise Wrong("your function changed source_state: w0 must stay as the source left it.")
        want = _l2sp_loss(model, state, alpha, beta, weights_only=True).item()
        got = out.item()
        if not close(got, want):
            variants, _ = _l2sp_variants(model, state, alpha, beta)
            where = f"(alpha={alpha}, beta={beta}{', block1 frozen' if freeze else ''})"
            raise Wrong(
                diagnose(got, variants, f"the penalty is off {where}: {off_by(got, want)}.")
                + f" {where}"
            )
        if not out.requires_grad:
            raise Wrong(
                "the penalty has no gradient: did you use .detach(), .data, .item() or "
                "torch.tensor(...) on the parameters? Gradients must flow to the weights."
            )
        model.zero_grad()
        out.backward()
        for n, p in model.named_parameters():
            if not p.requires_grad or p.ndim < 2:
                continue
            expected = alpha * (p.detach() - state[n]) if n in state else beta * p.detach()
            if (alpha if n in state else beta) == 0:
                continue
            if p.grad is None:
                raise Wrong(f"no gradient flowed to `{n}`: it must be part of the penalty.")
            if not close(p.grad, expected, rtol=1e-3, atol=1e-6):
                raise Wrong(
                    f"the gradient on `{n}` is wrong: expected "
                    f"{'alpha * (w - w0)' if n in state else 'beta * w'}."
                )
    return (
        "The value and its gradient, alpha (w - w0) on the body and beta w on the head, are right."
    )


l2sp = Exercise(
    id="ex03_l2sp",
    title="Write the L2-SP penalty",
    minutes=15,
    checker=_check_l2sp,
    answer_name="l2sp_penalty",
    hints=[
        "Loop over model.named_parameters(). Skip frozen parameters and those with p.ndim < 2. "
        "A name found in source_state is transferred (w_S); the others are new (the head).",
        "Transferred: add (p - source_state[name]).pow(2).sum(); new: add p.pow(2).sum(). "
        "Keep everything a tensor (no .item()), so that gradients flow.",
        "return 0.5 * alpha * transferred_sum + 0.5 * beta * new_sum",
    ],
    solution_code="""
    def l2sp_penalty(model, source_state, alpha, beta):
        transferred = new = torch.zeros(())
        for name, p in model.named_parameters():
            if not p.requires_grad or p.ndim < 2:
                continue
            if name in source_state:
                transferred = transferred + (p - source_state[name]).pow(2).sum()
            else:
                new = new + p.pow(2).sum()
        return 0.5 * alpha * transferred + 0.5 * beta * new
    """,
)


def _check_bss(fn, hidden: bool) -> str:
    cases = [((8, 5), 1), ((4, 6), 2)] if not hidden else [((10, 3), 2), ((3, 7), 3)]
    for i, (shape, k) in enumerate(cases):
        g = torch.Generator().manual_seed(10 + i + (100 if hidden else 0))
        feats = (torch.randn(*shape, generator=g) + 0.5).requires_grad_(True)
        before = feats.detach().clone()
        out = call_student(fn, feats, k, name="bss_penalty")
        if out is None:
            raise Wrong("`bss_penalty` returned None: did you forget `return`?")
        out = tensor(out, "the penalty", device="cpu")
        if out.ndim != 0:
            raise Wrong(
                f"the penalty should be a 0-D tensor, got shape {tuple(out.shape)}: sum the k terms."
            )
        if not torch.equal(before, feats.detach()):
            raise Wrong("your function changed the features in place.")
        want = _bss_ref(feats.detach(), k)
        got = out.item()
        if not close(got, want, rtol=1e-3):
            s = torch.linalg.svdvals(feats.detach().double())
            fc = feats.detach().double() - feats.detach().double().mean(0)
            eig = torch.linalg.eigvalsh(feats.detach().double().T @ feats.detach().double())
            variants = [
                (
                    s[:k].pow(2).sum(),
                    "you took the k largest singular values; BSS shrinks the k smallest "
                    "(torch.linalg.svdvals returns them in descending order).",
                ),
                (s[-k:].sum(), "the singular values must be squared."),
                (torch.linalg.svdvals(fc)[-k:].pow(2).sum(), "BSS does not centre the features."),
                (
                    eig[:k].sum(),
                    f"with N < D (here {tuple(shape)}), F^T F has D - N zero eigenvalues: "
                    "use the singular values of F itself (there are min(N, D)).",
                ),
            ]
            raise Wrong(
                diagnose(
                    got,
                    variants,
                    f"for features of shape {tuple(shape)} and k={k}: {off_by(got, want)}.",
                )
            )
        if not out.requires_grad:
            raise Wrong(
                "the penalty has no gradient with respect to the features (.detach()? numpy?)."
            )
        out.backward()
        if feats.grad is None or not torch.isfinite(feats.grad).all():
            raise Wrong("no finite gradient reached the features.")
    return "The k smallest squared singular values, with gradients to the features."


def _bss_ref(features: torch.Tensor, k: int) -> float:
    return _bss_loss(features, k).item()


bss = Exercise(
    id="ex03_bss",
    title="Batch Spectral Shrinkage",
    minutes=10,
    checker=_check_bss,
    answer_name="bss_penalty",
    hints=[
        "BSS penalises the smallest singular values of the (N, D) feature matrix of a batch.",
        "torch.linalg.svdvals(features) returns the min(N, D) singular values, largest first.",
        "return torch.linalg.svdvals(features)[-k:].pow(2).sum()",
    ],
    solution_code="""
    def bss_penalty(features, k):
        return torch.linalg.svdvals(features)[-k:].pow(2).sum()
    """,
)


def _reference_step(model, x, y, state, alpha, beta, lr, *, zero_grad=True, penalty=True):
    m = copy.deepcopy(model)
    opt = torch.optim.SGD(m.parameters(), lr=lr)
    if not zero_grad:
        for p in m.parameters():
            p.grad = torch.ones_like(p)
    else:
        opt.zero_grad()
    loss = F.cross_entropy(m(x), y)
    if penalty:
        loss = loss + _l2sp_loss(m, state, alpha, beta)
    loss.backward()
    opt.step()
    return m, loss.item()


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _check_train_step(fn, hidden: bool) -> str:
    seed = 3 if not hidden else 13
    model, state = _case(seed)
    model.train()
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(6, 1, 28, 28, generator=g), torch.arange(6) % 2
    alpha, beta, lr = 0.5, 0.1, 0.05
    start = copy.deepcopy(model)
    want_model, want_loss = _reference_step(start, x, y, state, alpha, beta, lr)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    for p in model.parameters():  # stale gradients of an earlier step
        p.grad = torch.ones_like(p)
    out = call_student(fn, model, optimizer, x, y, state, alpha, beta, name="train_step")
    if isinstance(out, torch.Tensor):
        raise Wrong(
            "return the loss as a Python float (loss.item()), not a tensor: a tensor "
            "keeps the whole graph of the step alive."
        )
    got_loss = number(out, "the returned loss") if out is not None else None
    if got_loss is None:
        raise Wrong("`train_step` returned None: return loss.item().")
    after = _flat(model)
    if torch.equal(after, _flat(start)):
        raise Wrong("the weights did not change: call loss.backward() and optimizer.step().")
    if not close(after, _flat(want_model), rtol=1e-4, atol=1e-6):
        variants = [
            (
                _flat(_reference_step(start, x, y, state, alpha, beta, lr, zero_grad=False)[0]),
                "the step used stale gradients: call optimizer.zero_grad() before loss.backward().",
            ),
            (
                _flat(_reference_step(start, x, y, state, alpha, beta, lr, penalty=False)[0]),
                "the step ignored the L2-SP penalty: add l2sp(model, source_state, alpha, beta) to the loss.",
            ),
        ]
        raise Wrong(
            diagnose(
                after,
                variants,
                "the weights after your step differ from one SGD step on cross-entropy + L2-SP.",
            )
        )
    if not close(got_loss, want_loss, rtol=1e-4):
        raise Wrong(
            f"the returned loss should be the total (cross-entropy + penalty) before the step: "
            f"{off_by(got_loss, want_loss)}."
        )
    return "One step of cross-entropy + L2-SP, with fresh gradients."


train_step = Exercise(
    id="ex03_train_step",
    title="One fine-tuning step with L2-SP",
    minutes=15,
    checker=_check_train_step,
    answer_name="train_step",
    hints=[
        "A step has four lines: clear the gradients, compute the loss, backpropagate, update.",
        "loss = F.cross_entropy(model(x), y) + l2sp(model, source_state, alpha, beta) "
        "(tlhelpers.losses.l2sp, or your own l2sp_penalty).",
        "optimizer.zero_grad(); loss = ...; loss.backward(); optimizer.step(); return loss.item()",
    ],
    solution_code="""
    from tlhelpers.losses import l2sp


    def train_step(model, optimizer, x, y, source_state, alpha, beta):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y) + l2sp(model, source_state, alpha, beta)
        loss.backward()
        optimizer.step()
        return loss.item()
    """,
)
