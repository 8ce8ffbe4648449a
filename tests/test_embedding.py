"""tlhelpers.embedding: training a projection for verification, its metrics, its worst
false matches (notebooks 05b, 08b)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from tlhelpers.embedding import (
    EMBEDDING_LOSSES,
    hardest_false_matches,
    train_embedding,
    verification_metrics,
)
from tlhelpers.losses import arcface_loss, batch_hard_triplet_loss
from tlhelpers.models import SplitModel
from tlhelpers.recipes import get_recipe
from tlhelpers.runtime import seeded

FAST = get_recipe("fine_tune").replace(min_steps=200, max_steps=200, lr_body=1e-2)


def _clusters(n_ids=12, per_id=6, dim=20, noise=1.0, seed=0):
    """Identities as Gaussian clusters whose identity lives in 3 of ``dim`` directions, the
    rest is large nuisance noise shared by every identity."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.zeros(n_ids, dim)
    centres[:, :3] = 3 * torch.randn(n_ids, 3, generator=g)
    y = torch.arange(n_ids).repeat_interleave(per_id)
    x = centres[y] + noise * torch.randn(len(y), dim, generator=g)
    x[:, 3:] += 4 * torch.randn(len(y), dim - 3, generator=g)  # nuisance directions
    return x, y


@pytest.mark.parametrize("loss", EMBEDDING_LOSSES)
def test_train_embedding_learns_to_ignore_nuisance_directions(loss):
    x, y = _clusters(seed=0)
    xt, yt = _clusters(seed=1)  # other identities (new centres), never seen in training
    margin = {"cross-entropy": 0.0, "ArcFace": 0.2, "triplet": 0.2}[loss]
    proj = train_embedding(x, y, loss, embed_dim=8, margin=margin, recipe=FAST, seed=0)
    assert isinstance(proj, torch.nn.Linear) and not proj.training
    assert proj.weight.shape == (8, 20)
    with torch.no_grad():
        trained = verification_metrics(proj(xt), yt)["auc"]
    raw = verification_metrics(xt, yt)["auc"]
    assert trained > raw + 0.05, (trained, raw)


def test_train_embedding_is_seeded_and_accepts_any_labels():
    x, y = _clusters()
    a = train_embedding(x, y + 100, "ArcFace", margin=0.2, recipe=FAST, seed=3)  # labels 100..111
    b = train_embedding(x, y + 100, "ArcFace", margin=0.2, recipe=FAST, seed=3)
    c = train_embedding(x, y + 100, "ArcFace", margin=0.2, recipe=FAST, seed=4)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
    sgd = FAST.replace(optimizer="sgd_momentum", lr_body=0.03, lr_head=0.3)
    d = train_embedding(x, y, "ArcFace", margin=0.2, recipe=sgd, seed=3)
    assert not torch.equal(a.weight, d.weight)


def test_train_embedding_bad_arguments():
    x, y = _clusters()
    with pytest.raises(ValueError, match="loss"):
        train_embedding(x, y, "contrastive")
    with pytest.raises(ValueError, match="margin"):
        train_embedding(x, y, "ArcFace", margin=-0.1)
    with pytest.raises(ValueError, match="labels must hold one label per feature row"):
        train_embedding(x, y[:-1], "triplet")
    with pytest.raises(ValueError, match=r"features must be a tensor \(N, D\)"):
        train_embedding(x[0], y, "triplet")
    with pytest.raises(ValueError, match="recipe"):
        train_embedding(x, y, "triplet", recipe="no_such_recipe")


def test_verification_metrics_match_sklearn_and_brute_force():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(30, 5))
    y = np.repeat(np.arange(6), 5)
    m = verification_metrics(e, y, far=0.05)
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    s, same = [], []
    for i in range(30):
        for j in range(i + 1, 30):
            s.append(u[i] @ u[j])
            same.append(y[i] == y[j])
    s, same = np.array(s), np.array(same)
    assert m["genuine"] == same.sum() == 6 * 10 and m["impostor"] == (~same).sum()
    assert np.isclose(m["auc"], roc_auc_score(same, s))
    # TAR at FAR <= 5%: the best TAR over thresholds taken at every score
    best = max((s[same] >= t).mean() for t in s if (s[~same] >= t).mean() <= 0.05)
    assert np.isclose(m["tar@far"], best)
    assert 0 <= m["eer"] <= 1 and 0 <= m["recall@1"] <= 1
    assert np.isclose(
        verification_metrics(torch.from_numpy(e), torch.from_numpy(y))["auc"], m["auc"]
    )


def test_hardest_false_matches_are_the_top_impostor_pairs():
    rng = np.random.default_rng(1)
    e = rng.normal(size=(15, 4))
    y = np.repeat(np.arange(5), 3)
    top = hardest_false_matches(e, y, k=4)
    u = e / np.linalg.norm(e, axis=1, keepdims=True)
    brute = sorted(
        ((float(u[i] @ u[j]), i, j) for i in range(15) for j in range(i + 1, 15) if y[i] != y[j]),
        reverse=True,
    )[:4]
    assert [(i, j) for i, j, _ in top] == [(i, j) for _, i, j in brute]
    assert np.allclose([sc for *_, sc in top], [sc for sc, *_ in brute])
    assert all(y[i] != y[j] and i < j for i, j, _ in top)
    assert len(hardest_false_matches(e, y, k=1000)) == 15 * 14 // 2 - 5 * 3  # all impostor pairs
    with pytest.raises(ValueError, match="k"):
        hardest_false_matches(e, y, k=0)
    # one pair per two identities: the first pair of each identity pair in the brute-force order
    distinct = hardest_false_matches(e, y, k=1000, one_per_identity_pair=True)
    assert len(distinct) == 5 * 4 // 2
    firsts, seen = [], set()
    every = sorted(
        ((float(u[a] @ u[b]), a, b) for a in range(15) for b in range(a + 1, 15) if y[a] != y[b]),
        reverse=True,
    )
    for _, a, b in every:
        if (min(y[a], y[b]), max(y[a], y[b])) not in seen:
            seen.add((min(y[a], y[b]), max(y[a], y[b])))
            firsts.append((a, b))
    assert [(i, j) for i, j, _ in distinct] == firsts


@pytest.mark.parametrize(
    ("loss", "margin"), [("cross-entropy", 0.0), ("ArcFace", 0.2), ("triplet", 0.1)]
)
def test_train_embedding_is_notebook_05bs_make_embedding(loss, margin):
    """Notebook 05b's ``make_embedding`` as it was written in the notebook (its globals as
    arguments): moving it into the package must not change one weight."""
    x, y = _clusters(n_ids=5)
    s, embed_dim, scale = 3, 8, 16.0
    with seeded(s):
        proj = torch.nn.Linear(x.shape[1], embed_dim)
        if loss == "cross-entropy":
            model, objective = SplitModel(proj, torch.nn.Linear(embed_dim, 5)), None
        elif loss == "ArcFace":
            model = SplitModel(proj, torch.nn.Linear(embed_dim, 5, bias=False))

            def objective(m, a, t):
                return arcface_loss(m.body(a), t, m.head.weight, margin=margin, scale=scale)
        else:
            model = SplitModel(proj, torch.nn.Identity())

            def objective(m, a, t):
                return batch_hard_triplet_loss(m.body(a), t, margin=margin, normalize=True)

    FAST.fit(model, (x, y), objective=objective, seed=s)
    new = train_embedding(
        x, y, loss, embed_dim=embed_dim, margin=margin, scale=scale, recipe=FAST, seed=s
    )
    assert torch.equal(new.weight, proj.weight) and torch.equal(new.bias, proj.bias)
