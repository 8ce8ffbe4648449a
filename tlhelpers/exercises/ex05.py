"""Exercises of notebooks 05a (feature hierarchy) and 05b (task hierarchy).

A unit's top-activating images, Yosinski's AnB/BnB network built by hand, the batch-hard
triplet loss, and an open challenge: choose what to transfer from a source trained on
other classes. ``from tlhelpers.exercises import ex05``; ``ex05.top_images.check(top_activating)``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import batch_hard_triplet_loss as _batch_hard
from ..models import load_backbone, scratch_model, split_model
from ._challenge import FewShotChallenge
from ._core import Exercise, Wrong, call_student, close, diagnose, off_by, tensor

__all__ = ["top_images", "anb", "triplet", "challenge", "challenge_data"]

BLOCKS = ("block1", "block2", "block3")


# ------------------------------------------------------------------ 1. top-activating images


def _activations(seed: int, n: int, c: int) -> torch.Tensor:
    """ReLU-like maps where a unit's strongest position and its mean rank images differently."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.rand(n, c, 4, 4, generator=g) * 0.5
    # one bright spot on some images: high max, low mean
    spots = torch.randperm(n, generator=g)[: n // 2]
    acts[spots, :, 0, 0] += 1.0 + torch.rand(len(spots), c, generator=g)
    return acts


def _check_top(fn, hidden: bool) -> str:
    cases = [(0, 12, 3, 1, 4), (1, 9, 5, 4, 3)] if not hidden else [(7, 15, 4, 2, 5)]
    for seed, n, c, unit, k in cases:
        acts = _activations(seed, n, c)
        before = acts.clone()
        out = call_student(fn, acts, unit, k, name="top_activating")
        if out is None:
            raise Wrong("`top_activating` returned None: return the k image indices.")
        if not torch.equal(acts, before):
            raise Wrong("your function changed the activations in place; leave them as they are.")
        if isinstance(out, (list, tuple, np.ndarray)):
            try:
                out = torch.as_tensor(np.asarray(out))
            except (TypeError, ValueError):
                raise Wrong("`top_activating` should return k integer indices.") from None
        out = tensor(out, "the indices", device="cpu")
        if out.is_floating_point():
            raise Wrong(
                "the result holds floats: return the images' indices (topk(...).indices), "
                "not their activation values."
            )
        if tuple(out.shape) != (k,):
            raise Wrong(f"return k={k} indices as a 1-D tensor, got shape {tuple(out.shape)}.")
        peak = acts[:, unit].amax(dim=(1, 2))
        want = peak.topk(k).indices
        got = out.long()
        if torch.equal(got, want):
            continue
        variants = [
            (acts[:, unit].mean(dim=(1, 2)).topk(k).indices,
             "you ranked images by the unit's mean activation; a unit responds to a pattern "
             "anywhere in the image: rank by its strongest position (the max over H and W)."),
            (peak.topk(k, largest=False).indices,
             "those are the k images that activate the unit least: topk(k) (largest) ranks "
             "from the strongest."),
            (acts.amax(dim=(1, 2, 3)).topk(k).indices,
             f"you ranked by the strongest activation over all channels; take channel {unit} "
             "only: activations[:, unit]."),
        ]  # fmt: skip
        for value, message in variants:
            if torch.equal(got, value):
                raise Wrong(message)
        if set(got.tolist()) == set(want.tolist()):
            raise Wrong("the right images, in the wrong order: strongest first.")
        raise Wrong(
            f"for unit {unit}, k={k}: expected images {want.tolist()} (strongest first), "
            f"got {got.tolist()}."
        )
    return "The k images whose strongest position activates the unit most, strongest first."


top_images = Exercise(
    id="ex05_top_images",
    title="A unit's top-activating images",
    minutes=10,
    checker=_check_top,
    answer_name="top_activating",
    hints=[
        "A unit (channel) of a conv layer answers with a map of shape (H, W) per image; "
        "its response to an image is the strongest value of that map.",
        "activations[:, unit] has shape (N, H, W); .amax(dim=(1, 2)) gives one number per image.",
        "return activations[:, unit].amax(dim=(1, 2)).topk(k).indices",
    ],
    solution_code="""
    def top_activating(activations, unit, k):
        return activations[:, unit].amax(dim=(1, 2)).topk(k).indices
    """,
)


# ------------------------------------------------------------------ 2. AnB / AnB+ by hand


def _source(seed: int):
    """A SmallCNN SplitModel with non-default BatchNorm statistics (copying them matters)."""
    model = scratch_model(5, width=4, seed=seed)
    g = torch.Generator().manual_seed(100 + seed)
    for m in model.modules():
        if (
            isinstance(m, nn.BatchNorm2d)
            and m.running_mean is not None
            and m.running_var is not None
        ):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model


def _state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_anb(fn, hidden: bool) -> str:
    cases = (
        [(2, True), (1, False), (3, True), (0, False)] if not hidden else [(1, True), (2, False)]
    )
    for i, (n, freeze) in enumerate(cases):
        source = _source(i + (10 if hidden else 0))
        fresh = scratch_model(5, width=4, seed=50 + i)
        src_before, fresh_before = _state(source), _state(fresh)
        src_blocks = dict(source.body[0].named_children())
        out = call_student(fn, source, fresh, n, freeze, name="anb_network")
        if out is not None and out is not fresh:
            raise Wrong("change `fresh` in place and return nothing (or `fresh` itself), "
                        f"got a {type(out).__name__}.")  # fmt: skip
        if not _same(_state(source), src_before):
            raise Wrong("your function changed the source network; it must stay as it was.")
        blocks = dict(fresh.body[0].named_children())  # type: ignore[index]
        if set(blocks) != set(BLOCKS):
            raise Wrong(f"`fresh.body[0]` should still hold {BLOCKS}, got {tuple(blocks)}.")
        what = "AnB (frozen)" if freeze else "AnB+ (fine-tuned)"
        for j, name in enumerate(BLOCKS, start=1):
            got = _state(blocks[name])
            want = _state(src_blocks[name]) if j <= n else {
                k[len(f"body.0.{name}."):]: v for k, v in fresh_before.items()
                if k.startswith(f"body.0.{name}.")
            }  # fmt: skip
            if _same(got, want):
                continue
            if j <= n:
                params = {k for k, _ in src_blocks[name].named_parameters()}
                if all(torch.equal(got[k], want[k]) for k in params):
                    raise Wrong(
                        f"with n={n}, {name}'s weights are the source's but its BatchNorm "
                        "statistics (running_mean, running_var) are not: copy the whole state "
                        "(load_state_dict), not the parameters alone."
                    )
                raise Wrong(f"with n={n}, {name} is below the cut: it should be a copy of the "
                            "source's, but its weights differ.")  # fmt: skip
            raise Wrong(f"with n={n}, {name} is above the cut and must keep fresh's random "
                        "values, but it changed (only blocks 1..n are copied).")  # fmt: skip
        if not _same(_state(fresh.head), {k[5:]: v for k, v in fresh_before.items()
                                          if k.startswith("head.")}):  # fmt: skip
            raise Wrong("the head changed: the new head keeps fresh's random values.")
        src_ptrs = {p.data_ptr() for p in source.parameters()}
        if any(p.data_ptr() in src_ptrs for p in fresh.parameters()):
            raise Wrong(
                "`fresh` shares tensors with the source (you assigned the source's modules): "
                "training it would change the source. Copy the values (load_state_dict or "
                "copy.deepcopy)."
            )
        for j, name in enumerate(BLOCKS, start=1):
            flags = {p.requires_grad for p in blocks[name].parameters()}
            should = not (freeze and j <= n)
            if flags != {should}:
                state = "frozen" if not should else "trainable"
                raise Wrong(f"{what} with n={n}: {name} should be {state} "
                            f"(requires_grad={should}).")  # fmt: skip
        if not all(p.requires_grad for p in fresh.head.parameters()):
            raise Wrong("the head must always train (requires_grad=True).")
    return "Blocks 1..n copied from the source (BatchNorm statistics included), frozen for AnB."


anb = Exercise(
    id="ex05_anb",
    title="Build Yosinski's AnB and AnB+ networks by hand",
    minutes=15,
    checker=_check_anb,
    answer_name="anb_network",
    hints=[
        "fresh.body[0] holds block1, block2, block3 (bottom to top); block i of the source is "
        "source.body[0].block{i}.",
        "load_state_dict copies the values (weights and BatchNorm statistics) without sharing "
        "tensors; requires_grad_(False) freezes a block.",
        "for name in ['block1', 'block2', 'block3'][:n]: dst = getattr(fresh.body[0], name); "
        "dst.load_state_dict(getattr(source.body[0], name).state_dict()); "
        "dst.requires_grad_(not freeze)",
    ],
    solution_code="""
    def anb_network(source, fresh, n, freeze):
        for name in ["block1", "block2", "block3"][:n]:
            block = getattr(fresh.body[0], name)
            block.load_state_dict(getattr(source.body[0], name).state_dict())
            block.requires_grad_(not freeze)
    """,
)


# ------------------------------------------------------------------ 3. batch-hard triplet loss


def _triplet_batch(seed: int, ids: int, per_id: int, dim: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(ids).repeat_interleave(per_id)
    labels = labels[torch.randperm(len(labels), generator=g)]
    emb = (
        torch.randn(len(labels), dim, generator=g)
        + 2.5 * torch.randn(ids, dim, generator=g)[labels]
    )
    return emb.requires_grad_(True), labels


def _triplet_variant(d: torch.Tensor, labels: torch.Tensor, margin: float, *, easy_neg=False,
                     easy_pos=False, hinge=True, reduce="mean") -> torch.Tensor:  # fmt: skip
    """The batch-hard loss from distances ``d``, or one of its typical slips.

    The check's batches mix anchors inside and outside the margin, so a missing hinge shows.
    """
    same = labels[:, None] == labels[None, :]
    pos = same & ~torch.eye(len(labels), dtype=torch.bool)
    hp = (d.masked_fill(~pos, float("inf")).amin(1) if easy_pos
          else d.masked_fill(~pos, float("-inf")).amax(1))  # fmt: skip
    hn = (d.masked_fill(same, float("-inf")).amax(1) if easy_neg
          else d.masked_fill(same, float("inf")).amin(1))  # fmt: skip
    z = hp - hn + margin
    z = F.relu(z) if hinge else z
    return z.mean() if reduce == "mean" else z.sum()


def _check_triplet(fn, hidden: bool) -> str:
    cases = [(0, 3, 3, 4, 0.2), (1, 4, 2, 3, 0.5)] if not hidden else [(5, 3, 4, 5, 0.3)]
    for seed, ids, per_id, dim, margin in cases:
        emb, labels = _triplet_batch(seed, ids, per_id, dim)
        out = call_student(fn, emb, labels, margin, name="batch_hard_triplet")
        if out is None:
            raise Wrong("`batch_hard_triplet` returned None: did you forget `return`?")
        out = tensor(out, "the loss", device="cpu")
        if out.ndim != 0:
            raise Wrong(f"the loss should be a 0-D tensor (mean over anchors), got shape "
                        f"{tuple(out.shape)}.")  # fmt: skip
        e = emb.detach()
        want = _batch_hard(e, labels, margin).item()
        got = out.item()
        if not close(got, want, rtol=1e-4, atol=1e-6):
            d = torch.cdist(e, e, compute_mode="donot_use_mm_for_euclid_dist")
            v = _triplet_variant
            variants = [
                (v(d.pow(2), labels, margin), "you used squared distances; the batch-hard loss "
                 "uses the Euclidean distance itself (Hermans et al. 2017)."),
                (v(d, labels, margin, easy_neg=True), "you took the farthest negative (the "
                 "easiest); batch-hard mining takes the closest one: min over negatives."),
                (v(d, labels, margin, easy_pos=True), "you took the closest positive (the "
                 "easiest); batch-hard mining takes the farthest one: max over positives."),
                (v(d, labels, margin, hinge=False), "the hinge is missing: "
                 "max(0, d_ap - d_an + margin), so anchors already far enough add 0."),
                (v(d, labels, margin, reduce="sum"), "you summed over the anchors; take the mean."),
            ]  # fmt: skip
            raise Wrong(diagnose(got, variants, f"for {len(labels)} embeddings, margin "
                                                f"{margin}: {off_by(got, want)}."))  # fmt: skip
        if not out.requires_grad:
            raise Wrong("the loss has no gradient with respect to the embeddings (.detach()?).")
    return "max(0, hardest positive - hardest negative + margin), Euclidean, mean over anchors."


triplet = Exercise(
    id="ex05_triplet",
    title="The batch-hard triplet loss",
    minutes=15,
    checker=_check_triplet,
    answer_name="batch_hard_triplet",
    hints=[
        "For each anchor: its farthest positive (same label, not itself) and its closest "
        "negative (other label); the loss is max(0, d_ap - d_an + margin), averaged.",
        "torch.cdist(e, e) gives all distances; a boolean mask (labels[:, None] == labels[None, :]) "
        "with the diagonal removed marks the positives. masked_fill with -inf / +inf before "
        "amax / amin ignores the others.",
        "d = torch.cdist(e, e); same = labels[:, None] == labels[None, :]; "
        "eye = torch.eye(len(labels), dtype=torch.bool); "
        "hp = d.masked_fill(~(same & ~eye), float('-inf')).amax(1); "
        "hn = d.masked_fill(same, float('inf')).amin(1); return F.relu(hp - hn + margin).mean()",
    ],
    solution_code="""
    def batch_hard_triplet(embeddings, labels, margin):
        d = torch.cdist(embeddings, embeddings)
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        hardest_pos = d.masked_fill(~(same & ~eye), float("-inf")).amax(dim=1)
        hardest_neg = d.masked_fill(same, float("inf")).amin(dim=1)
        return F.relu(hardest_pos - hardest_neg + margin).mean()
    """,
)


# ------------------------------------------------------------------ 4. the open challenge


def _source_a():
    return (split_model(load_backbone("small_cnn", source="fmnist_a")).eval(),)


#: Target fmnist_b (classes 5-9) at 5 labels per class; source: the kit's SmallCNN trained on
#: fmnist_a (classes 0-4), notebook 05a's dissimilar split. Copying all three blocks frozen
#: loses to scratch here (the top block is specific to A); the lower blocks, fine-tuned, win.
CHALLENGE = FewShotChallenge("fmnist_b", per_class=5, answer_name="train_on_b", extras=_source_a,
                             budget_s=30.0, margin=0.01, test_seed=2027, val_seed=8)  # fmt: skip


def challenge_data() -> tuple:
    """``(train, source)``: the 25 labelled images of B and the source network trained on A."""
    return CHALLENGE.data()


challenge = Exercise(
    id="ex05_challenge",
    title="Open challenge: choose what to transfer at 5 labels per class in 30 s",
    minutes=30,
    checker=CHALLENGE.check,
    answer_name="train_on_b",
    hints=[
        "Task A's source learned general edge and texture detectors in its lower blocks and "
        "A-specific features in its top block (notebook 05a): which of them help B?",
        "anb_network from exercise 2 builds a network for B from the source's first n blocks; "
        "a named recipe (get_recipe('fine_tune')) trains it in a few seconds.",
        "model = scratch_model(5, seed=0); anb_network(source, model, 2, freeze=False); "
        "get_recipe('fine_tune').fit(model, train, seed=0); return model.eval()",
    ],
    solution_code="""
    def train_on_b(train, source):
        model = scratch_model(5, seed=0)
        anb_network(source, model, 2, freeze=False)  # AnB+ at n = 2
        get_recipe("fine_tune").fit(model, train, seed=0)
        return model.eval()
    """,
)
