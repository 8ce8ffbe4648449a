"""Seeding (global and local) and the one meaning of ``device``."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

from tlhelpers.runtime import get_device, resolve_device, seed_everything, seeded


@pytest.fixture(autouse=True)
def _restore_env(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)


def _draw():
    return torch.randn(5), np.random.rand(5), [random.random() for _ in range(5)]


def test_seed_everything_reproducible():
    g1 = seed_everything(3)
    a = _draw()
    ga = torch.rand(3, generator=g1)
    g2 = seed_everything(3)
    b = _draw()
    gb = torch.rand(3, generator=g2)
    assert torch.equal(a[0], b[0])
    assert np.array_equal(a[1], b[1])
    assert a[2] == b[2]
    assert torch.equal(ga, gb)
    seed_everything(4)
    c = _draw()
    assert not torch.equal(a[0], c[0]) and not np.array_equal(a[1], c[1]) and a[2] != c[2]


def test_seed_everything_deterministic_flag():
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(False)
    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled()
    seed_everything(2**40)  # large seeds are fine for numpy too


def test_get_device_cpu_and_auto(monkeypatch):
    assert get_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")
    assert get_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device() == torch.device("cuda")


def test_get_device_unknown_name():
    with pytest.raises(ValueError) as err:
        get_device("gpu")
    assert "'gpu'" in str(err.value)
    assert "Valid values: 'auto', 'cpu', 'cuda', 'mps'" in str(err.value)


def test_get_device_refuses_none_which_means_the_models_device_elsewhere():
    """``device=None`` has one meaning in the kit (where the model is); get_device has no model."""
    with pytest.raises(ValueError, match="device"):
        get_device(None)


def test_get_device_unavailable_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="cuda"):
        get_device("cuda")
    with pytest.raises(RuntimeError, match="MPS"):
        get_device("mps")


def test_seeded_draws_like_manual_seed_and_restores_the_stream():
    torch.manual_seed(123)
    expected_after = torch.rand(4)
    torch.manual_seed(7)
    reference = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = torch.rand(3)
    assert torch.equal(inside, reference)
    assert torch.equal(torch.rand(4), expected_after)
    with pytest.raises(ValueError, match="seed"):
        with seeded(-1):
            pass


def test_resolve_device_one_meaning():
    model = nn.Linear(2, 2)
    assert resolve_device(None, model) == torch.device("cpu")  # where the model is
    assert resolve_device(None, nn.ReLU()) == torch.device("cpu")  # no parameters
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu"), model) == torch.device("cpu")
    assert resolve_device("auto") == get_device()
    with pytest.raises(ValueError, match="Valid values"):
        resolve_device("gpu0")
