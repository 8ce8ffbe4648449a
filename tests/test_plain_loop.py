"""Notebook 03a's claim: the loop written in plain PyTorch and the kit's ``fit`` are the same.

The plain loop below is the one the learner writes in notebook 03a (new head, parameter
groups, ``loss = ce + lam * omega``, ``backward``, ``step``). After the same steps from the
same seed on the same data, the weights must be identical, bit for bit.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.losses import L2SP, TransferObjective
from tlhelpers.models import SmallCNN, split_model, transfer_model
from tlhelpers.recipes import get_recipe
from tlhelpers.runtime import fixed_threads


@pytest.fixture(autouse=True)
def _same_threads():
    """The thread count can change float rounding: the two loops run at one count."""
    with fixed_threads():
        yield


def _plain_loop(source, x, y, *, seed, lam, steps, lr_body, lr_head):
    torch.manual_seed(seed)
    model = split_model(copy.deepcopy(source))
    model.head = nn.Linear(model.head.in_features, 5)  # the new head
    w0 = {n: p.detach().clone() for n, p in model.body.named_parameters()}

    def omega(model):  # 1/2 ||w - w0||^2 over the body's weights (not biases, not BN)
        return 0.5 * sum(
            (p - w0[n]).pow(2).sum() for n, p in model.body.named_parameters() if p.ndim >= 2
        )

    optimizer = torch.optim.Adam(
        [
            {"params": model.body.parameters(), "lr": lr_body},
            {"params": model.head.parameters(), "lr": lr_head},
        ]
    )
    log = {"ce": [], "lam*omega": []}
    model.train()
    for _ in range(steps):
        ce = F.cross_entropy(model(x), y)
        penalty = lam * omega(model)
        loss = ce + penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log["ce"].append(ce.item())
        log["lam*omega"].append(penalty.item())
    return model, log


def _source():
    torch.manual_seed(0)
    source = SmallCNN(num_classes=5, width=4)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a pretrained source has
        for m in source.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return source.eval()


def test_plain_loop_and_fit_give_identical_weights():
    source = _source()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(10, 1, 28, 28, generator=g), torch.arange(10) % 5
    recipe = get_recipe("fine_tune")
    lam, steps, seed = 0.5, 12, 3
    plain, log = _plain_loop(
        source, x, y, seed=seed, lam=lam, steps=steps, lr_body=recipe.lr_body,
        lr_head=recipe.lr_head,
    )  # fmt: skip

    kit = transfer_model(source, 5, seed=seed)
    objective = TransferObjective(terms={"l2sp": (1.0, L2SP(kit, alpha=lam, beta=0.0))})
    hist = recipe.fit(kit, (x, y), objective=objective, seed=seed, steps=steps)

    assert len(hist) == steps
    kit_state, plain_state = kit.state_dict(), plain.state_dict()
    assert list(kit_state) == list(plain_state)
    for k, v in kit_state.items():
        assert torch.equal(v, plain_state[k]), k  # weights and BatchNorm statistics
    moved = [
        k
        for k in kit_state
        if k.endswith("weight")
        and not torch.equal(
            kit_state[k], split_model(copy.deepcopy(source)).state_dict().get(k, kit_state[k])
        )
    ]
    assert moved, "the weights did change: the comparison is not between two untouched models"
    # and the logged terms are the same curves
    assert torch.allclose(torch.tensor(hist["train/task"]), torch.tensor(log["ce"]), rtol=1e-6)
    assert torch.allclose(
        torch.tensor(hist["train/l2sp"]), torch.tensor(log["lam*omega"]), rtol=1e-6, atol=1e-9
    )
    assert log["lam*omega"][0] == 0.0 and log["lam*omega"][-1] > 0.0


def test_a_different_step_is_detected():
    """The equality above is not vacuous: one different learning rate breaks it."""
    source = _source()
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(10, 1, 28, 28, generator=g), torch.arange(10) % 5
    recipe = get_recipe("fine_tune")
    plain, _ = _plain_loop(source, x, y, seed=3, lam=0.5, steps=3, lr_body=recipe.lr_body,
                           lr_head=recipe.lr_body)  # fmt: skip
    kit = transfer_model(source, 5, seed=3)
    objective = TransferObjective(terms={"l2sp": (1.0, L2SP(kit, alpha=0.5, beta=0.0))})
    recipe.fit(kit, (x, y), objective=objective, seed=3, steps=3)
    assert not torch.equal(kit.head.weight, plain.head.weight)
