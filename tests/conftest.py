"""Shared test isolation: no downloads, one throw-away cache folder per session."""

from __future__ import annotations

import os

# `make test` runs pytest-xdist workers side by side: one thread each (before torch and
# numpy load), so two workers never fight over two cores (PyTorch's spinning
# threads run many times slower on a shared core; tlhelpers/threads.py). Kernels started by nbval and papermill
# inherit it. An explicit setting in the environment wins.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TLHELPERS_THREADS"):
        os.environ.setdefault(_key, "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tlhelpers.interactive import WIDGETS_ENV
from tlhelpers.models import SmallCNN
from tlhelpers.paths import CACHE_ENV, DOWNLOAD_ENV

# Kernels started by nbval and papermill inherit this: widgets run headless (see
# tlhelpers.interactive); set at import so it also covers notebooks/ collected by nbval.
os.environ.setdefault(WIDGETS_ENV, "0")


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    """Point ``TLHELPERS_CACHE`` at a session-wide tmp folder (Fashion-MNIST unpacks once)."""
    saved = {k: os.environ.get(k) for k in (CACHE_ENV, DOWNLOAD_ENV)}
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("tlhelpers-cache"))
    os.environ.pop(DOWNLOAD_ENV, None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(autouse=True)
def _no_downloads(monkeypatch):
    """No test may download, nor leave downloads allowed for the next one."""
    monkeypatch.delenv(DOWNLOAD_ENV, raising=False)
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)


@pytest.fixture
def one_thread():
    """Run tiny-tensor tests on one intra-op thread (threads only add contention there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def source():
    """A tiny SmallCNN source classifier (5 classes, width 4) in eval mode."""
    torch.manual_seed(0)
    return SmallCNN(num_classes=5, width=4).eval()


@pytest.fixture
def data():
    """20 random 28x28 grey images, 4 of each of 5 classes, as an ``(images, targets)`` pair."""
    g = torch.Generator().manual_seed(1)
    return torch.rand(20, 1, 28, 28, generator=g), torch.arange(20) % 5
