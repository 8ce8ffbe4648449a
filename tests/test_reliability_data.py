"""Reliability, data side: cached derived files are verified, rebuilt once with a
message naming the file, written atomically; bad datasets, seeds and parameters are refused.

Each test reproduces a case that would otherwise give a silent wrong answer, an unclear
error or a leftover file.
"""

from __future__ import annotations

import dataclasses
import errno
import shutil

import pytest
import torch
from torch import nn

from tlhelpers import data as D
from tlhelpers import features as FE
from tlhelpers import models as M
from tlhelpers.data import TensorImageDataset, few_shot, few_shot_indices, load_dataset
from tlhelpers.data import datasets as DS
from tlhelpers.features import extract_features
from tlhelpers.models import SmallCNN, split_model
from tlhelpers.notebook import ParameterError, ParameterGuard, environment
from tlhelpers.paths import CacheRebuiltWarning, atomic_write

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ atomic writes


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not visible before the rename
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_write_full_disk_leaves_nothing_and_names_the_path(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="out.bin") as info:
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"x" * 1000)  # half written, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


# ------------------------------------------------------------------ unpacked Fashion-MNIST


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty cache folder: Fashion-MNIST is unpacked again into it."""
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "fashion_mnist" / "FashionMNIST" / "raw"


@pytest.fixture(scope="module")
def reference_test_split():
    return load_dataset("fashion_mnist", "test")


def _patch_bytes(path, offset, value):
    blob = bytearray(path.read_bytes())
    blob[offset] = value
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize(
    "name, offset",
    [("t10k-images-idx3-ubyte", 16 + 5), ("t10k-labels-idx1-ubyte", 8 + 3)],
    ids=["pixel", "label"],
)
def test_altered_unpacked_file_is_detected_and_rebuilt(
    fresh_cache, reference_test_split, name, offset
):
    D.fashion_mnist_raw_dir()
    path = fresh_cache / name
    old = path.read_bytes()[offset]
    _patch_bytes(path, offset, (old + 1) % 10)  # a valid label / pixel value, but wrong
    with pytest.warns(CacheRebuiltWarning, match=name):
        ds = load_dataset("fashion_mnist", "test")
    assert torch.equal(ds.images, reference_test_split.images)
    assert torch.equal(ds.targets, reference_test_split.targets)
    assert path.read_bytes()[offset] == old


def test_truncated_unpacked_file_is_rebuilt_with_its_name(fresh_cache, reference_test_split):
    D.fashion_mnist_raw_dir()
    path = fresh_cache / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.warns(CacheRebuiltWarning, match="t10k-images-idx3-ubyte"):
        ds = load_dataset("fashion_mnist", "test")
    assert torch.equal(ds.images, reference_test_split.images)


def test_unpacked_file_that_stays_wrong_is_rebuilt_once_then_refused(fresh_cache, monkeypatch):
    name = "t10k-labels-idx1-ubyte"
    monkeypatch.setitem(D.FASHION_MNIST_UNPACKED, name, "0" * 64)  # never matches
    with pytest.raises(ValueError, match=name) as info:
        D.fashion_mnist_raw_dir()
    assert "sha256" in str(info.value)


def test_full_disk_while_unpacking_leaves_nothing_and_names_the_file(fresh_cache, monkeypatch):
    real_copy = shutil.copyfileobj

    def copy_then_disk_full(src, dst, *args, **kwargs):
        dst.write(src.read(1000))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(DS.shutil, "copyfileobj", copy_then_disk_full)
    with pytest.raises(OSError, match="idx") as info:
        D.fashion_mnist_raw_dir()
    assert info.value.errno == errno.ENOSPC
    assert str(fresh_cache) in str(info.value)
    assert list(fresh_cache.iterdir()) == []  # no .tmp left behind
    monkeypatch.setattr(DS.shutil, "copyfileobj", real_copy)
    D.fashion_mnist_raw_dir()  # works once there is room again
    assert len(list(fresh_cache.iterdir())) == 4


# ------------------------------------------------------------------ features cache


@pytest.fixture
def feature_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path))
    return tmp_path / "features"


def _model(seed=0):
    torch.manual_seed(seed)
    return SmallCNN(num_classes=3, width=4)


def _data(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 3, "abc")


def _manual(model, data):
    body = split_model(model).body.eval()
    with torch.no_grad():
        return body(data.images)


def test_edited_features_cache_is_detected_and_recomputed(feature_cache):
    model, data = _model(), _data()
    feats, _ = extract_features(model, data, cache=True)
    (path,) = feature_cache.glob("features-*.pt")
    saved = torch.load(path, weights_only=True)
    saved["features"] = saved["features"] + 1.0  # edited, still a valid torch file
    torch.save(saved, path)
    with pytest.warns(CacheRebuiltWarning, match=path.name):
        again, _ = extract_features(model, data, cache=True)
    torch.testing.assert_close(again, feats)


def test_truncated_features_cache_is_recomputed_with_its_name(feature_cache):
    model, data = _model(), _data()
    feats, _ = extract_features(model, data, cache=True)
    (path,) = feature_cache.glob("features-*.pt")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.warns(CacheRebuiltWarning, match=path.name):
        again, _ = extract_features(model, data, cache=True)
    torch.testing.assert_close(again, feats)


def test_features_cache_key_covers_every_pixel_and_weight(feature_cache):
    model, data = _model(), _data()
    extract_features(model, data, cache=True)
    # one pixel the old strided fingerprint skipped (it read every 19th value)
    changed = TensorImageDataset(data.images.clone(), data.targets, data.classes)
    changed.images[0, 0, 0, 1] += 0.5
    feats, _ = extract_features(model, changed, cache=True)
    torch.testing.assert_close(feats, _manual(model, changed))
    assert not torch.equal(feats[0], _manual(model, data)[0])
    # one weight past the first 64 values of its tensor (the old fingerprint read only those)
    with torch.no_grad():
        model.features.block3[0].weight.view(-1)[500] += 1.0
    feats, _ = extract_features(model, data, cache=True)
    torch.testing.assert_close(feats, _manual(model, data))


def test_full_disk_while_caching_features_leaves_nothing(feature_cache, monkeypatch):
    def save_then_disk_full(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"x" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(FE.torch, "save", save_then_disk_full)
    with pytest.raises(OSError, match="features-") as info:
        extract_features(_model(), _data(), cache=True)
    assert info.value.errno == errno.ENOSPC
    assert list(feature_cache.iterdir()) == []


# ------------------------------------------------------------------ datasets and seeds


@pytest.mark.parametrize("seed", [-1, 1.5, "0"])
def test_few_shot_bad_seed_names_the_argument(seed):
    ds = _data(n=30)
    with pytest.raises(ValueError, match=r"seed.*" + repr(seed).replace(".", r"\.")):
        few_shot(ds, 2, seed=seed)


def test_negative_label_is_refused_by_name():
    with pytest.raises(ValueError, match=r"targets.*-1"):
        TensorImageDataset(torch.zeros(3, 1, 2, 2), torch.tensor([0, -1, 1]), ["a", "b"])
    with pytest.raises(ValueError, match=r"targets.*-1"):
        few_shot_indices(torch.tensor([0, -1, 1, 1, 0]), 1)


def test_labels_beyond_class_names_are_refused():
    # before: class 2 had no name and few_shot silently dropped its items
    with pytest.raises(ValueError, match=r"targets.*2.*2 class"):
        TensorImageDataset(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 2]), ["a", "b"])


@pytest.mark.parametrize("value", [-5, [0, -1]])
def test_notebook_seed_parameter_must_be_non_negative(value):
    ns: dict = {}
    guard = ParameterGuard(ns)
    name = "seed" if isinstance(value, int) else "seeds"
    ns["__annotations__"] = {name: int if isinstance(value, int) else list[int]}
    ns[name] = value
    with pytest.raises(ParameterError, match=rf"{name}.*-\d"):
        guard.check()


def test_environment_names_the_hash_problem_of_altered_weights(monkeypatch):
    wf = M.WEIGHTS["small_cnn_fmnist_a"]
    monkeypatch.setitem(M.WEIGHTS, "small_cnn_fmnist_a", dataclasses.replace(wf, sha256="0" * 64))
    status = environment()["assets"]["weights:small_cnn_fmnist_a"]
    assert "sha256" in status and "altered" in status
    assert not status.startswith("missing")


def test_device_typo_lists_valid_devices():
    from tlhelpers.training import fit

    x, y = torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 0, 1])
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match=r"device.*'tpu'.*cpu"):
        fit(model, (x, y), epochs=1, device="tpu", progress=False)
    with pytest.raises(ValueError, match=r"device.*'tpu'.*cpu"):
        extract_features(model, (x, y), device="tpu")


@pytest.mark.parametrize("bad", [-1, 3])
def test_train_val_indices_refuses_labels_outside_the_classes(bad):
    from tlhelpers.data import train_val_indices

    targets = torch.tensor([0, 0, 1, 1, 2, 2, bad, 0, 1, 2])
    with pytest.raises(ValueError, match=f"label {bad}"):
        train_val_indices(targets, 1, 1, classes=["a", "b", "c"])


def test_data_without_a_length_is_refused_by_name():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            yield torch.zeros(1), torch.tensor(0)

    with pytest.raises(TypeError, match="data must have a length.*Stream"):
        D.data_length(Stream())
    assert D.data_length((torch.zeros(3, 1), torch.zeros(3))) == 3


def test_models_of_the_wrong_kind_are_refused_by_name():
    body_not_sequential = M.SplitModel(nn.Flatten(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match="SmallCNN.*Flatten"):
        M.split_at_block(body_not_sequential, 1)

    class Pair(nn.Module):
        def forward(self, x):
            return x, x

    data = (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="lower must return one tensor, got a tuple of 2"):
        FE.cache_activations(Pair(), data)
