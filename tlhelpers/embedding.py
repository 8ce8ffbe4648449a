"""Embeddings for verification: train one on frozen features, measure it, find its worst
mistakes.

A verification system answers "same identity or not?" for two images of people (or
classes) it never saw in training: it embeds both and accepts the pair when their cosine
similarity clears a threshold. :func:`train_embedding` trains a projection ``e = P f(x)``
of frozen features with one of :data:`EMBEDDING_LOSSES`; :func:`verification_metrics`
measures it on every pair of a set of unseen identities (ROC AUC, TAR at a FAR, EER,
recall@1); :func:`hardest_false_matches` lists the impostor pairs it scores highest.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .losses import arcface_loss, batch_hard_triplet_loss
from .metrics import eer, pair_scores, recall_at_k, roc_auc, tar_at_far
from .models import SplitModel
from .recipes import Recipe, get_recipe
from .runtime import seeded
from .validation import check_choice, check_int, check_positive

__all__ = [
    "EMBEDDING_LOSSES",
    "train_embedding",
    "verification_metrics",
    "hardest_false_matches",
]

#: Losses :func:`train_embedding` trains with.
EMBEDDING_LOSSES = ("cross-entropy", "ArcFace", "triplet")


def train_embedding(
    features: torch.Tensor,
    labels: torch.Tensor,
    loss: str,
    *,
    embed_dim: int = 32,
    margin: float = 0.0,
    scale: float = 16.0,
    recipe: Recipe | str = "fine_tune",
    seed: int = 0,
    device: str | torch.device | None = None,
) -> nn.Linear:
    r"""A linear projection ``e = P f`` of frozen ``features (N, D)``, trained on ``labels``
    with ``loss``; returned in eval mode (apply it to other identities' features).

    - ``"cross-entropy"``: a linear classifier :math:`W e + b` over the training classes;
      the embedding is what comes before it.
    - ``"ArcFace"``: logits :math:`s\cos(\theta_y + m)` for the own class and
      :math:`s\cos\theta_c` for the others, :math:`\theta` the angle between :math:`e` and
      a learned class centre (Deng et al., 2019, "ArcFace", CVPR); ``margin`` = :math:`m`
      (radians), ``scale`` = :math:`s`.
    - ``"triplet"``: batch-hard triplet loss on L2-normalised embeddings,
      :math:`\max(0, \max_p d(a,p) - \min_n d(a,n) + m)` (Hermans et al., 2017; Schroff et
      al., 2015, "FaceNet"); ``margin`` = :math:`m`.

    Trained by ``recipe`` (a :class:`~tlhelpers.recipes.Recipe` or its name; the
    projection gets the body's rate, the loss's classifier or centres the head's);
    ``seed`` fixes the initialisation (PyTorch's default, drawn inside
    :func:`tlhelpers.runtime.seeded`) and the batches. Notebook 05b's embedding, moved here
    unchanged (a test checks it gives the same weights).
    """
    check_choice("loss", loss, EMBEDDING_LOSSES)
    check_int("embed_dim", embed_dim, minimum=1)
    check_positive("margin", margin, strict=False)
    check_positive("scale", scale)
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(
            "features must be a tensor (N, D), got "
            f"{tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__}."
        )
    labels = torch.as_tensor(labels)
    if labels.shape != (len(features),):
        raise ValueError(
            f"labels must hold one label per feature row, shape ({len(features)},), "
            f"got {tuple(labels.shape)}."
        )
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    # classes as 0..C-1 (training identities may be any subset of a dataset's labels)
    _, y = torch.unique(labels, return_inverse=True)
    n_classes = int(y.max()) + 1
    with seeded(seed):  # the layers' default initialisation, drawn from a fork of the global stream
        proj = nn.Linear(features.shape[1], embed_dim)
        if loss == "cross-entropy":
            head: nn.Module = nn.Linear(embed_dim, n_classes)
        elif loss == "ArcFace":
            head = nn.Linear(embed_dim, n_classes, bias=False)  # its weight: the class centres
        else:
            head = nn.Identity()
    objective = None
    if loss == "ArcFace":

        def objective(m, x, t):
            return arcface_loss(m.body(x), t, m.head.weight, margin=margin, scale=scale)

    elif loss == "triplet":

        def objective(m, x, t):
            return batch_hard_triplet_loss(m.body(x), t, margin=margin, normalize=True)

    rec.fit(SplitModel(proj, head), (features, y), objective=objective, seed=seed, device=device)
    return proj.eval()


def verification_metrics(
    embeddings: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, far: float = 1e-2
) -> dict[str, float]:
    """Verification over every pair of ``embeddings (N, D)`` by cosine similarity.

    ``{"auc", "tar@far", "eer", "recall@1", "genuine", "impostor"}``: ROC AUC, the TAR at
    FAR <= ``far``, the equal error rate, leave-one-out recall@1, and the numbers of
    genuine and impostor pairs (a FAR below 1 / impostors cannot be measured).
    See :mod:`tlhelpers.metrics` for each.
    """
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach()
    scores, same = pair_scores(embeddings, labels)
    return {
        "auc": roc_auc(scores, same),
        "tar@far": tar_at_far(scores, same, far=far),
        "eer": eer(scores, same),
        "recall@1": recall_at_k(embeddings, labels, k=1),
        "genuine": int(same.sum()),
        "impostor": int((~same).sum()),
    }


def hardest_false_matches(
    embeddings: torch.Tensor | np.ndarray,
    labels: torch.Tensor | np.ndarray,
    k: int = 8,
    *,
    one_per_identity_pair: bool = False,
) -> list[tuple[int, int, float]]:
    """The ``k`` impostor pairs (different labels) with the highest cosine similarity:
    ``[(i, j, score), ...]`` with ``i < j``, highest first (ties: row-major pair order).

    These are the false accepts a threshold meets first as it is lowered: look at them to
    see what the embedding confuses (notebook 08b shows them as a gallery).
    ``one_per_identity_pair`` keeps only the highest-scoring pair of each two identities,
    so that one confusable pair of people does not fill the gallery.
    """
    check_int("k", k, minimum=1)
    if isinstance(embeddings, torch.Tensor):
        embeddings = embeddings.detach()
    scores, same = pair_scores(embeddings, labels)
    lab = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    i, j = np.triu_indices(len(lab), 1)
    imp = np.flatnonzero(~same)
    order = imp[np.argsort(-scores[imp], kind="stable")]
    out: list[tuple[int, int, float]] = []
    seen: set[tuple] = set()
    for p in order:
        if one_per_identity_pair:
            key = tuple(sorted((lab[i[p]].item(), lab[j[p]].item())))
            if key in seen:
                continue
            seen.add(key)
        out.append((int(i[p]), int(j[p]), float(scores[p])))
        if len(out) == k:
            break
    return out
