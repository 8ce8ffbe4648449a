"""ex05 (notebooks 05a/05b): each checker against its solution and typical wrong answers."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from exercise_support import solution as _solution

from tlhelpers.exercises import FAILED, PASSED, ex05
from tlhelpers.models import scratch_model
from tlhelpers.recipes import get_recipe

# ------------------------------------------------------------------ wrong answers


def top_by_mean(a, unit, k):
    return a[:, unit].mean(dim=(1, 2)).topk(k).indices


def top_smallest(a, unit, k):
    return a[:, unit].amax(dim=(1, 2)).topk(k, largest=False).indices


def top_all_channels(a, unit, k):
    return a.amax(dim=(1, 2, 3)).topk(k).indices


def top_values(a, unit, k):
    return a[:, unit].amax(dim=(1, 2)).topk(k).values


def top_reversed(a, unit, k):
    return a[:, unit].amax(dim=(1, 2)).topk(k).indices.flip(0)


def top_as_list(a, unit, k):  # a list of ints is accepted
    return a[:, unit].amax(dim=(1, 2)).topk(k).indices.tolist()


def anb_params_only(source, fresh, n, freeze):
    for name in ["block1", "block2", "block3"][:n]:
        dst, src = getattr(fresh.body[0], name), getattr(source.body[0], name)
        with torch.no_grad():
            for p, q in zip(dst.parameters(), src.parameters(), strict=True):
                p.copy_(q)
        dst.requires_grad_(not freeze)


def anb_off_by_one(source, fresh, n, freeze):
    _solution(ex05.anb)(source, fresh, min(n + 1, 3), freeze)


def anb_shares(source, fresh, n, freeze):
    for name in ["block1", "block2", "block3"][:n]:
        setattr(fresh.body[0], name, getattr(source.body[0], name))
        getattr(fresh.body[0], name).requires_grad_(not freeze)


def anb_never_frozen(source, fresh, n, freeze):
    _solution(ex05.anb)(source, fresh, n, False)


def anb_freezes_head(source, fresh, n, freeze):
    _solution(ex05.anb)(source, fresh, n, freeze)
    fresh.head.requires_grad_(not freeze)


def anb_returns_copy(source, fresh, n, freeze):
    out = copy.deepcopy(fresh)
    _solution(ex05.anb)(source, out, n, freeze)
    return out


def anb_changes_source(source, fresh, n, freeze):
    _solution(ex05.anb)(source, fresh, n, freeze)
    source.requires_grad_(False)
    with torch.no_grad():
        source.head.weight.add_(1.0)


def _hard(e, labels, margin, *, square=False, easy_neg=False, easy_pos=False, hinge=True,
          reduce="mean", self_pos=False):  # fmt: skip
    d = torch.cdist(e, e)
    d = d.pow(2) if square else d
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos = same if self_pos else same & ~eye
    hp = (
        d.masked_fill(~pos, float("inf")).amin(1)
        if easy_pos
        else d.masked_fill(~pos, float("-inf")).amax(1)
    )
    hn = (
        d.masked_fill(same, float("-inf")).amax(1)
        if easy_neg
        else d.masked_fill(same, float("inf")).amin(1)
    )
    z = hp - hn + margin
    z = F.relu(z) if hinge else z
    return z.mean() if reduce == "mean" else z.sum()


WRONG = [
    (ex05.top_images, top_by_mean, "rank by its strongest position"),
    (ex05.top_images, top_smallest, "activate the unit least"),
    (ex05.top_images, top_all_channels, "take channel"),
    (ex05.top_images, top_values, "not their activation values"),
    (ex05.top_images, top_reversed, "wrong order"),
    (ex05.top_images, lambda a, u, k: None, "returned None"),
    (ex05.top_images, lambda a, u, k: a[:, u].amax(dim=(1, 2)).topk(k + 1).indices, "return k="),
    (ex05.anb, anb_params_only, "BatchNorm statistics"),
    (ex05.anb, anb_off_by_one, "above the cut"),
    (ex05.anb, anb_shares, "shares tensors with the source"),
    (ex05.anb, anb_never_frozen, "should be frozen"),
    (ex05.anb, anb_freezes_head, "the head must always train"),
    (ex05.anb, anb_returns_copy, "change `fresh` in place"),
    (ex05.anb, anb_changes_source, "changed the source network"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m, square=True), "squared distances"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m, easy_neg=True), "farthest negative"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m, easy_pos=True), "closest positive"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m, hinge=False), "the hinge is missing"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m, reduce="sum"), "summed over the anchors"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m).detach(), "no gradient"),
    (ex05.triplet, lambda e, y, m: _hard(e, y, m).item(), "should be a torch.Tensor"),
    (ex05.triplet, lambda e, y, m: F.relu(torch.cdist(e, e) - m).mean(1), "0-D tensor"),
]


@pytest.mark.parametrize(("ex", "fn", "message"), WRONG,
                         ids=[f"{w[0].id}-{i}" for i, w in enumerate(WRONG)])  # fmt: skip
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message, one_thread):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message


def test_a_list_of_indices_is_accepted():
    assert ex05.top_images.run_check(top_as_list).status == PASSED


def test_the_self_as_positive_slip_is_named_when_it_changes_the_loss():
    # with two embeddings per identity, the diagonal (distance 0) never wins the max: equal loss
    r = ex05.triplet.run_check(lambda e, y, m: _hard(e, y, m, self_pos=True))
    assert r.status == PASSED


def challenge_scratch(train, source):  # exactly the baseline: must not pass
    model = scratch_model(5, seed=0)
    get_recipe("scratch").fit(model, train, seed=0)
    return model


@pytest.mark.slow
def test_challenge_solution_passes_and_the_hidden_check_reuses_its_model(one_thread):
    fn = _solution(ex05.challenge)
    r = ex05.challenge.run_check(fn)
    assert r.status == PASSED, r.message
    r = ex05.challenge.run_check(fn, hidden=True)
    assert r.status == PASSED and "hidden test split" in r.message, r.message


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda train, source: None, "returned None"),
        (lambda train, source: "model", "should return an nn.Module, got a str"),
        (lambda train, source: scratch_model(10, seed=0), "has shape (4, 10)"),
        (lambda train, source: torch.nn.Flatten(), "has no parameters"),
        (challenge_scratch, "the scratch baseline gets"),
    ],
    ids=["none", "str", "ten_classes", "no_parameters", "scratch"],
)
def test_challenge_wrong_answers(fn, message, one_thread):
    r = ex05.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
