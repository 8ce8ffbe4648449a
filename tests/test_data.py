"""Datasets (offline, and online ones from fixtures in their real on-disk format), tasks,
few-shot subsets, batching, preprocessing, augmentation and natural photos."""

from __future__ import annotations

import gzip
import pickle
import time

import joblib
import numpy as np
import pytest
import torch

from tlhelpers import data as D
from tlhelpers.data import (
    FASHION_MNIST_CLASSES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    Preprocess,
    TensorImageDataset,
    augment,
    channel_stats,
    few_shot,
    iterate_batches,
    load_dataset,
    load_task,
    natural_photos,
    normalization_for,
    prepare_images,
    select_classes,
    target_normalization,
)
from tlhelpers.data import datasets as DS
from tlhelpers.paths import DownloadNotAllowedError, HashMismatchError, repo_root


@pytest.fixture(scope="module")
def fmnist_train():
    return load_dataset("fashion_mnist", "train")


@pytest.fixture(scope="module")
def fmnist_test():
    return load_dataset("fashion_mnist", "test")


# ------------------------------------------------------------------ Fashion-MNIST


def test_fashion_mnist_sizes_shapes_values(fmnist_train, fmnist_test):
    assert len(fmnist_train) == 60000 and len(fmnist_test) == 10000
    for ds in (fmnist_train, fmnist_test):
        assert ds.images.shape[1:] == (1, 28, 28)
        assert ds.images.dtype == torch.float32
        assert float(ds.images.min()) == 0.0 and float(ds.images.max()) == 1.0
        assert ds.classes == FASHION_MNIST_CLASSES and len(ds.classes) == 10
    assert set(fmnist_train.class_counts().values()) == {6000}
    assert set(fmnist_test.class_counts().values()) == {1000}
    x, y = fmnist_train[0]
    assert x.shape == (1, 28, 28) and isinstance(y, int)
    # pixel values are k/255 of the uint8 originals
    k = fmnist_test.images[:50] * 255
    assert torch.equal(k, k.round())


def test_fashion_mnist_matches_committed_idx_files(fmnist_test):
    gz = repo_root() / "data" / "fashion-mnist"
    with gzip.open(gz / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), dtype=np.uint8, offset=8)
    with gzip.open(gz / "t10k-images-idx3-ubyte.gz") as f:
        raw = bytearray(f.read(16 + 3 * 784))
    first = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(3, 28, 28)
    assert torch.equal(fmnist_test.targets, torch.from_numpy(labels.astype(np.int64)))
    assert torch.equal(fmnist_test.images[:3, 0], torch.from_numpy(first).float() / 255)


def test_fashion_mnist_unpacked_cache_is_reused(fmnist_train, monkeypatch):
    raw = D.fashion_mnist_raw_dir() / "FashionMNIST" / "raw"
    files = sorted(raw.iterdir())
    assert [f.name for f in files] == sorted(n[:-3] for n in D.FASHION_MNIST_FILES)
    before = {f.name: f.stat().st_mtime_ns for f in files}

    def no_unpack(*args, **kwargs):
        raise AssertionError("re-unpacked")

    monkeypatch.setattr(DS.gzip, "open", no_unpack)
    monkeypatch.setattr(DS, "verify_file", no_unpack)
    D.fashion_mnist_raw_dir()
    assert len(load_dataset("fashion_mnist", "test")) == 10000
    assert {f.name: f.stat().st_mtime_ns for f in raw.iterdir()} == before


def test_corrupted_committed_file_is_refused(tmp_path, monkeypatch):
    src = repo_root() / "data" / "fashion-mnist"
    fake = tmp_path / "data" / "fashion-mnist"
    fake.mkdir(parents=True)
    for name in D.FASHION_MNIST_FILES:
        (fake / name).symlink_to(src / name)
    first = next(iter(D.FASHION_MNIST_FILES))  # verified first
    blob = bytearray((src / first).read_bytes())
    blob[1000] ^= 0x01
    (fake / first).unlink()
    (fake / first).write_bytes(bytes(blob))
    monkeypatch.setenv("TLHELPERS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(HashMismatchError, match="sha256"):
        load_dataset("fashion_mnist", "test")
    raw = tmp_path / "cache" / "fashion_mnist" / "FashionMNIST" / "raw"
    assert not (raw / first[:-3]).exists()


def test_missing_committed_file_is_explained(tmp_path, monkeypatch):
    (tmp_path / "data" / "fashion-mnist").mkdir(parents=True)
    monkeypatch.setenv("TLHELPERS_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.gz"):
        D.fashion_mnist_raw_dir()


# ------------------------------------------------------------------ other offline datasets


def test_lfw_faces_fixed_disjoint_split():
    from skimage.data import lfw_subset

    train, test = load_dataset("lfw_faces", "train"), load_dataset("lfw_faces", "test")
    assert len(train) == len(test) == 100
    assert train.classes == ["non-face", "face"]
    assert train.class_counts() == test.class_counts() == {"non-face": 50, "face": 50}
    assert train.images.shape[1:] == (1, 25, 25)
    keys_train = {img.numpy().tobytes() for img in train.images}
    keys_test = {img.numpy().tobytes() for img in test.images}
    assert len(keys_train) == len(keys_test) == 100
    assert not keys_train & keys_test
    # the two splits are exactly scikit-image's 200 crops; the first 100 are faces
    x = torch.from_numpy(lfw_subset()).float()
    label_of = {img.numpy().tobytes(): int(i < 100) for i, img in enumerate(x)}
    for ds in (train, test):
        for img, y in zip(ds.images, ds.targets, strict=True):
            assert label_of[img[0].numpy().tobytes()] == int(y)
    again = load_dataset("lfw_faces", "train")
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)


def test_lfw_faces_hard_split_is_balanced_disjoint_and_fixed():
    from skimage.data import lfw_subset

    train, test = load_dataset("lfw_faces_hard", "train"), load_dataset("lfw_faces_hard", "test")
    assert train.classes == test.classes == ["non-face", "face"]
    assert train.class_counts() == test.class_counts() == {"non-face": 50, "face": 50}
    for ds in (train, test):
        assert ds.images.shape == (100, 1, 25, 25) and ds.images.dtype == torch.float32
        assert 0.0 <= float(ds.images.min()) and float(ds.images.max()) <= 1.0
    keys = [{img.numpy().tobytes() for img in ds.images} for ds in (train, test)]
    assert len(keys[0]) == len(keys[1]) == 100 and not keys[0] & keys[1]
    # faces and 25 non-faces per split are scikit-image's LFW crops, with their labels
    x = torch.from_numpy(lfw_subset()).float()
    label_of = {img.numpy().tobytes(): int(i < 100) for i, img in enumerate(x)}
    for ds in (train, test):
        lfw = [
            (img, y)
            for img, y in zip(ds.images, ds.targets, strict=True)
            if img[0].numpy().tobytes() in label_of
        ]
        assert len(lfw) == 75
        assert all(label_of[img[0].numpy().tobytes()] == int(y) for img, y in lfw)
        hard = [
            int(y)
            for img, y in zip(ds.images, ds.targets, strict=True)
            if img[0].numpy().tobytes() not in label_of
        ]
        assert hard == [0] * D.N_HARD_NEGATIVES  # every crop not from LFW is a non-face
    again = load_dataset("lfw_faces_hard", "test")
    assert torch.equal(again.images, test.images) and torch.equal(again.targets, test.targets)


def test_face_kinds_label_every_item_in_order():
    for split in ("train", "test"):
        ds, kinds = load_dataset("lfw_faces_hard", split), D.face_kinds(split)
        assert len(kinds) == len(ds) and set(kinds) == set(D.FACE_KINDS)
        for kind, label in (("LFW background", 0), ("hard negative", 0), ("face", 1)):
            idx = [i for i, k in enumerate(kinds) if k == kind]
            assert set(ds.targets[idx].tolist()) == {label}
        hard = [i for i, k in enumerate(kinds) if k == "hard negative"]
        assert torch.equal(ds.images[hard], D.face_hard_negatives(split)[0])
    with pytest.raises(ValueError, match="split"):
        D.face_kinds("val")


def test_face_hard_negatives_come_from_each_splits_own_photos():
    crops, sources = {}, {}
    for split in ("train", "test"):
        crops[split], sources[split] = D.face_hard_negatives(split)
        assert crops[split].shape == (D.N_HARD_NEGATIVES, 1, 25, 25)
        assert set(sources[split]) == set(D.HARD_NEGATIVE_SOURCES[split])
        counts = [sources[split].count(n) for n in D.HARD_NEGATIVE_SOURCES[split]]
        assert max(counts) - min(counts) <= 1  # spread evenly over the photos
        # contrast-stretched to the faces' grey range: every crop spans 0.05..0.9
        lo = crops[split].amin(dim=(1, 2, 3))
        hi = crops[split].amax(dim=(1, 2, 3))
        assert torch.allclose(lo, torch.full_like(lo, 0.05), atol=1e-5)
        assert torch.allclose(hi, torch.full_like(hi, 0.9), atol=1e-5)
    assert not set(sources["train"]) & set(sources["test"])  # whole photos per split
    used = set(D.HARD_NEGATIVE_SOURCES["train"]) | set(D.HARD_NEGATIVE_SOURCES["test"])
    assert not used & {"astronaut", "camera", "coins", "phantom"}  # photos with faces
    # callers get copies: changing one does not change the next call's crops
    crops["test"].zero_()
    assert float(D.face_hard_negatives("test")[0].max()) > 0.8
    with pytest.raises(ValueError, match="split"):
        D.face_hard_negatives("validation")


def test_digits_split():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train) + len(test) == 1797
    assert len(test) == pytest.approx(0.3 * 1797, abs=1)
    assert train.images.shape[1:] == (1, 8, 8)
    assert float(train.images.min()) == 0.0 and float(train.images.max()) == 1.0
    assert train.classes == [str(i) for i in range(10)]
    counts = test.class_counts()
    assert all(50 <= c <= 56 for c in counts.values())  # stratified: ~54 per class


def test_unknown_dataset_and_split_list_valid_values():
    with pytest.raises(ValueError) as err:
        load_dataset("mnist")
    for name in D.DATASETS:
        assert repr(name) in str(err.value)
    with pytest.raises(ValueError) as err:
        load_dataset("digits", "validation")
    assert "'train'" in str(err.value) and "'test'" in str(err.value)
    with pytest.raises(ValueError, match="fmnist_a"):
        load_task("fmnist_c")


# ------------------------------------------------------------------ tasks and subsets


def _toy(n_per_class=(5, 3, 4)) -> TensorImageDataset:
    ys = np.concatenate([np.full(n, c) for c, n in enumerate(n_per_class)])
    images = torch.arange(len(ys), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2)
    return TensorImageDataset(images.clone(), torch.from_numpy(ys), ["a", "b", "c"])


def test_few_shot_exact_and_seeded():
    ds = _toy()
    sub = few_shot(ds, 3, seed=0)
    assert sub.class_counts() == {"a": 3, "b": 3, "c": 3}
    # each image carries its index: the subset holds real items with their own labels
    idx = sub.images[:, 0, 0, 0].long()
    assert torch.equal(ds.targets[idx], sub.targets)
    assert len(set(idx.tolist())) == 9
    assert torch.equal(few_shot(ds, 3, seed=0).images, sub.images)
    big = load_dataset("digits", "train")
    a, b = few_shot(big, 5, seed=1), few_shot(big, 5, seed=2)
    assert set(a.class_counts().values()) == {5}
    assert not torch.equal(a.images, b.images)


def test_few_shot_rejects_impossible_sizes():
    ds = _toy()
    with pytest.raises(ValueError) as err:
        few_shot(ds, 4)
    assert "'b'" in str(err.value) and "3" in str(err.value)
    with pytest.raises(ValueError):
        few_shot(ds, 0)


def test_select_classes_and_tasks_relabel(fmnist_test):
    b = load_task("fmnist_b", "test")
    assert b.classes == FASHION_MNIST_CLASSES[5:]
    assert len(b) == 5000
    assert set(b.targets.tolist()) == {0, 1, 2, 3, 4}
    sandals = fmnist_test.images[fmnist_test.targets == 5]
    assert b.classes[0] == "Sandal"
    assert torch.equal(b.images[b.targets == 0], sandals)
    even = select_classes(fmnist_test, [8, 2])
    assert even.classes == ["Bag", "Pullover"]
    assert torch.equal(even.images[even.targets == 0], fmnist_test.images[fmnist_test.targets == 8])
    kept = select_classes(fmnist_test, [8, 2], relabel=False)
    assert set(kept.targets.tolist()) == {2, 8} and kept.classes == FASHION_MNIST_CLASSES
    with pytest.raises(ValueError):
        select_classes(fmnist_test, [10])


# ------------------------------------------------------------------ preprocessing


def test_prepare_images_resize_channels_normalization():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 28, 28)
    out = prepare_images(x, size=32, channels=3)
    assert out.shape == (2, 3, 32, 32)
    same = prepare_images(x, size=None, channels=3)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(same, (x.repeat(1, 3, 1, 1) - mean) / std)
    assert torch.equal(prepare_images(x, normalization=None), x)
    # a constant image stays constant under resizing
    const = torch.full((1, 1, 10, 10), 0.25)
    torch.testing.assert_close(
        prepare_images(const, size=40, normalization=None), torch.full((1, 1, 40, 40), 0.25)
    )
    with pytest.raises(ValueError):
        prepare_images(torch.rand(1, 2, 8, 8), channels=3)
    with pytest.raises(ValueError, match="imagenet"):
        prepare_images(x, normalization="cifar")
    with pytest.raises(ValueError):
        prepare_images(x[0])


def test_target_statistics_normalize_to_zero_mean_unit_std():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 6, 6) * torch.tensor([0.2, 0.5, 1.0]).view(1, 3, 1, 1)
    mean, std = channel_stats(x)
    assert mean == pytest.approx(x.mean(dim=(0, 2, 3)).tolist())
    out = prepare_images(x, normalization=(mean, std))
    m2, s2 = channel_stats(out)
    assert m2 == pytest.approx([0, 0, 0], abs=1e-5)
    assert s2 == pytest.approx([1, 1, 1], abs=1e-5)


def test_imagenet_input_transform():
    t = D.ImageNetInput(size=16)
    assert repr(t) == "ImageNetInput(size=16, channels=3, normalization='imagenet')"
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(t(x), prepare_images(x, 16, 3, "imagenet"))


# ------------------------------------------------------------------ online datasets from fixtures


def _write_cifar(root, rng):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for name, n in [*[(f"data_batch_{i}", 4) for i in range(1, 6)], ("test_batch", 6)]:
        d = {
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, size=n).tolist(),
            b"batch_label": name.encode(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)
        batches[name] = d
    names = [f"class{i}".encode() for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return batches


def test_cifar10_from_python_pickle_layout(tmp_path):
    batches = _write_cifar(tmp_path, np.random.default_rng(0))
    train = load_dataset("cifar10", "train", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert len(train) == 20 and len(test) == 6
    assert train.images.shape[1:] == (3, 32, 32)
    assert train.classes == [f"class{i}" for i in range(10)]
    d = batches["data_batch_3"]
    i = 8 + 1  # second image of the third batch
    row = d[b"data"][1]
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30), (0, 17, 2)]:
        assert float(train.images[i, c, h, w]) == pytest.approx(row[c * 1024 + h * 32 + w] / 255)
    expected = torch.from_numpy(d[b"data"][1].reshape(3, 32, 32)).float() / 255
    assert torch.equal(train.images[i], expected)
    assert int(train.targets[i]) == d[b"labels"][1]
    t = batches["test_batch"]
    assert test.targets.tolist() == t[b"labels"]
    assert torch.equal(
        test.images, torch.from_numpy(t[b"data"].reshape(6, 3, 32, 32)).float() / 255
    )


def test_olivetti_from_sklearn_cache(tmp_path):
    rng = np.random.default_rng(0)
    # 400 images of 64x64 with integer grey levels 0..255 (min 0 and max 255 present)
    k = rng.integers(0, 256, size=(400, 64, 64)).astype(np.float32)
    k[0, 0, 0], k[0, 0, 1] = 0, 255
    # the .mat file stores each image column-major; sklearn transposes back when loading
    faces = np.ascontiguousarray(k.transpose(0, 2, 1).reshape(400, 4096))
    joblib.dump(faces, tmp_path / "olivetti_py3.pkz", compress=6)
    expected = {img.tobytes(): i // 10 for i, img in enumerate(k / np.float32(255))}
    train = load_dataset("olivetti_faces", "train", root=tmp_path)
    test = load_dataset("olivetti_faces", "test", root=tmp_path)
    assert len(train) == 280 and len(test) == 120
    assert train.images.shape[1:] == (1, 64, 64)
    assert len(train.classes) == 40
    assert set(train.class_counts().values()) == {7}
    assert set(test.class_counts().values()) == {3}
    seen = []
    for ds in (train, test):
        for img, y in zip(ds.images, ds.targets, strict=True):
            key = img[0].numpy().tobytes()
            assert expected[key] == int(y)
            seen.append(key)
    assert len(set(seen)) == 400


def _write_lfw(root, people):
    from PIL import Image

    home = root / "lfw_home"
    home.mkdir(parents=True)
    for meta in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        (home / meta).write_text("1\n")
    levels = {}
    for p, (name, n) in enumerate(people):
        folder = home / "lfw_funneled" / name
        folder.mkdir(parents=True)
        for j in range(n):
            level = 20 + 100 * p + 4 * j
            img = np.full((250, 250, 3), level, dtype=np.uint8)
            Image.fromarray(img).save(folder / f"{name}_{j + 1:04d}.jpg", quality=95)
            levels[level] = name.replace("_", " ")
    return levels


def test_lfw_people_from_sklearn_layout(tmp_path):
    levels = _write_lfw(tmp_path, [("Ann_Bee", 20), ("Cid_Dee", 21), ("Eve_Fox", 3)])
    train = load_dataset("lfw_people", "train", root=tmp_path)
    test = load_dataset("lfw_people", "test", root=tmp_path)
    assert train.classes == ["Ann Bee", "Cid Dee"]  # Eve has fewer than 20 pictures
    assert len(train) + len(test) == 41
    assert len(test) == 13
    # sklearn crops (125, 94) and resizes by 0.4 -> (50, 37)
    assert train.images.shape[1:] == (1, 50, 37)
    seen = []
    for ds in (train, test):
        assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
        for img, y in zip(ds.images, ds.targets, strict=True):
            value = float(img.mean()) * 255
            level = min(levels, key=lambda v, value=value: abs(v - value))
            assert abs(level - value) < 2, (level, value)  # grey levels scaled to [0, 1]
            assert float(img.max() - img.min()) < 3 / 255
            assert ds.classes[int(y)] == levels[level]
            seen.append(level)
    assert len(set(seen)) == 41


@pytest.mark.parametrize("name", D.ONLINE_DATASETS)
def test_online_dataset_without_permission_fails_at_once(name, tmp_path, monkeypatch):
    import sklearn.datasets  # noqa: F401  (import time is not what is measured)
    import torchvision.datasets  # noqa: F401

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("sklearn.datasets._base._fetch_remote", no_network)
    monkeypatch.setattr("sklearn.datasets._lfw._fetch_remote", no_network)
    monkeypatch.setattr("sklearn.datasets._olivetti_faces._fetch_remote", no_network)
    monkeypatch.setattr("torchvision.datasets.utils.download_url", no_network)
    start = time.perf_counter()
    with pytest.raises(DownloadNotAllowedError) as err:
        load_dataset(name, "train", root=tmp_path / "empty")
    assert time.perf_counter() - start < 2
    assert "TLHELPERS_ALLOW_DOWNLOAD" in str(err.value)


def test_few_shot_indices_are_the_few_shot_draw():
    ds = D.load_dataset("digits")
    for seed in (0, 3):
        idx = D.few_shot_indices(ds.targets, 4, seed, ds.classes)
        assert torch.equal(ds.subset(idx).images, D.few_shot(ds, 4, seed).images)
    with pytest.raises(ValueError, match=r"class 1 \('b'\) has only 1"):
        D.few_shot_indices(torch.tensor([0, 0, 1]), 2, classes=["a", "b"])


# ------------------------------------------------------------------ batching


def test_iterate_batches_covers_every_index_once():
    n = 53
    data = (torch.arange(n), torch.arange(n) * 10)
    batches = list(
        iterate_batches(data, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    )
    assert [len(b[0]) for b in batches] == [8] * 6 + [5]
    xs = torch.cat([b[0] for b in batches])
    assert torch.equal(torch.cat([b[1] for b in batches]), xs * 10)  # pairs stay together
    assert sorted(xs.tolist()) == list(range(n))
    assert xs.tolist() != list(range(n))
    plain = torch.cat([b[0] for b in iterate_batches(data, 8)])
    assert plain.tolist() == list(range(n))


def test_iterate_batches_with_item_transform_uses_dataset_items():
    images = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1)
    ds = TensorImageDataset(images, torch.arange(10), [str(i) for i in range(10)],
                            transform=lambda x: x + 100)  # fmt: skip
    g = torch.Generator().manual_seed(0)
    batches = list(iterate_batches(ds, 4, shuffle=True, generator=g))
    xs = torch.cat([b[0] for b in batches]).flatten()
    ys = torch.cat([b[1] for b in batches])
    assert sorted(xs.tolist()) == [100.0 + i for i in range(10)]
    assert torch.equal(xs - 100, ys.float())


# ------------------------------------------------------------------ target statistics, augmentation, photos


def test_target_normalization_repeats_grey_stats_and_names():
    x = torch.rand(20, 1, 6, 6) * 0.3 + 0.2
    mean, std = target_normalization(x, 3)
    assert len(mean) == 3 and len(std) == 3
    z = Preprocess(None, 3, (mean, std))(x)
    assert torch.allclose(z.mean(), torch.tensor(0.0), atol=1e-5)
    assert torch.allclose(z.std(), torch.tensor(1.0), atol=1e-3)
    assert normalization_for("none", x) is None
    assert normalization_for("imagenet", x) == "imagenet"
    with pytest.raises(ValueError, match="Valid values"):
        normalization_for("own", x)


def test_natural_photos_shape_range_deterministic():
    a = natural_photos(5, size=16, seed=1)
    assert a.shape == (5, 3, 16, 16)
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, natural_photos(5, size=16, seed=1))
    assert not torch.equal(a, natural_photos(5, size=16, seed=2))


def test_augment_shape_deterministic_and_kinds():
    x = torch.rand(3, 1, 12, 12)
    for kind in ("flip", "crop", "rotate", "jitter", "all"):
        out = augment(x, kind, seed=0)
        assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
        assert torch.equal(out, augment(x, kind, seed=0))
    with pytest.raises(ValueError, match="Valid values"):
        augment(x, "mixup")


def test_augment_leaves_the_global_stream_alone():
    x = torch.rand(2, 1, 8, 8)
    torch.manual_seed(2)
    expected = torch.rand(3)
    torch.manual_seed(2)
    augment(x, "all", seed=7)
    assert torch.equal(torch.rand(3), expected)


def _pool(n_per_class=10, k=3):
    y = torch.arange(k).repeat_interleave(n_per_class)
    x = torch.arange(len(y), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    return D.TensorImageDataset(x, y, [f"c{i}" for i in range(k)])


def _image_ids(ds):
    return set(ds.images[:, 0, 0, 0].long().tolist())


def test_train_val_test_is_stratified_disjoint_and_seeded():
    from tlhelpers.data import Split, train_val_indices, train_val_test

    pool, test_pool = _pool(10), _pool(7)
    s = train_val_test(pool, test_pool, per_class=2, val_per_class=3, n_test=12, seed=4)
    assert isinstance(s, Split)
    train, val, test = s  # unpacks
    assert train.class_counts() == {"c0": 2, "c1": 2, "c2": 2}
    assert val.class_counts() == {"c0": 3, "c1": 3, "c2": 3}
    assert not _image_ids(train) & _image_ids(val)  # validation never contains a training image
    assert len(test) == 12
    again = train_val_test(pool, test_pool, per_class=2, val_per_class=3, n_test=12, seed=4)
    assert _image_ids(again.train) == _image_ids(train) and _image_ids(again.val) == _image_ids(val)
    other = train_val_test(pool, test_pool, per_class=2, val_per_class=3, n_test=12, seed=5)
    assert _image_ids(other.train) != _image_ids(train)
    assert _image_ids(other.test) == _image_ids(
        test
    )  # one test set for every seed: paired comparisons
    full = train_val_test(pool, test_pool, per_class=1, val_per_class=1, seed=0)
    assert len(full.test) == len(test_pool)
    tr, va = train_val_indices(pool.targets, 2, 3, seed=4)
    assert _image_ids(pool.subset(tr)) == _image_ids(train) and _image_ids(
        pool.subset(va)
    ) == _image_ids(val)


def test_train_val_test_refuses_impossible_sizes():
    from tlhelpers.data import train_val_test

    pool = _pool(5)
    with pytest.raises(ValueError, match="class 0 \\('c0'\\) has only 5"):
        train_val_test(pool, pool, per_class=3, val_per_class=3)
    with pytest.raises(ValueError, match="val_per_class"):
        train_val_test(pool, pool, per_class=1, val_per_class=0)
    with pytest.raises(ValueError, match="n_test"):
        train_val_test(pool, pool, per_class=1, val_per_class=1, n_test=100)
