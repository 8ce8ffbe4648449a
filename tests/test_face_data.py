"""Face identities of notebook 08b: the stand-in's nuisance views, the real sets' loaders
and the identity splits (tlhelpers.data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tlhelpers.data import (
    NUISANCES,
    face_identities,
    face_nuisance,
    face_standin,
    identity_split,
)
from tlhelpers.paths import DownloadNotAllowedError


def _faces(n=6, size=25, seed=0):
    """Smooth random images in [0.1, 0.9] (no exact zeros, so an occluder is visible)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, size // 5, size // 5, generator=g)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return 0.1 + 0.8 * x


def _tv(x):
    """Total variation of each image."""
    return x.diff(dim=-1).abs().sum((1, 2, 3)) + x.diff(dim=-2).abs().sum((1, 2, 3))


def test_nuisance_shape_range_and_determinism():
    x = _faces()
    a, b = face_nuisance(x, seed=3), face_nuisance(x, seed=3)
    assert a.shape == x.shape and torch.equal(a, b)
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, face_nuisance(x, seed=4))
    assert torch.equal(face_nuisance(x, seed=3, kinds=()), x)


def test_nuisance_leaves_global_streams_alone():
    torch.manual_seed(0)
    np.random.seed(0)
    expected = (torch.rand(3), np.random.rand(3))
    torch.manual_seed(0)
    np.random.seed(0)
    face_nuisance(_faces(), seed=1)
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(
        np.random.rand(3), expected[1]
    )


def test_occlusion_zeroes_exactly_one_rectangle_of_20_to_40_percent():
    x = _faces(n=20, size=50)
    y = face_nuisance(x, seed=0, kinds=("occlusion",), occlusion_p=1.0)
    for img, out in zip(x, y, strict=True):
        zero = out[0] == 0
        rows, cols = torch.nonzero(zero, as_tuple=True)
        r0, r1, c0, c1 = int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())
        assert bool(zero[r0 : r1 + 1, c0 : c1 + 1].all())  # one filled rectangle
        assert int(zero.sum()) == (r1 - r0 + 1) * (c1 - c0 + 1)
        assert 10 <= r1 - r0 + 1 <= 20 and 10 <= c1 - c0 + 1 <= 20
        assert torch.equal(out[0][~zero], img[0][~zero])  # the rest untouched
    none = face_nuisance(x, seed=0, kinds=("occlusion",), occlusion_p=0.0)
    assert torch.equal(none, x)


def test_blur_smooths_and_keeps_the_mean():
    x = _faces(n=8, size=40)
    y = face_nuisance(x, seed=0, kinds=("blur",))
    assert bool((_tv(y) < _tv(x)).all())
    assert torch.allclose(y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=0.02)


def test_lighting_changes_levels_and_keeps_the_picture():
    x = _faces(n=8, size=40)
    y = face_nuisance(x, seed=0, kinds=("lighting",))
    assert bool(((y - x).abs().mean((1, 2, 3)) > 0.01).all())
    for a, b in zip(x, y, strict=True):  # a smooth, mostly monotone change: still correlated
        assert np.corrcoef(a.flatten(), b.flatten())[0, 1] > 0.7
    # a left-right ramp: on a flat image, the two halves differ
    flat = torch.full((8, 1, 20, 20), 0.5)
    z = face_nuisance(flat, seed=0, kinds=("lighting",))
    assert bool(((z[..., :10].mean((1, 2, 3)) - z[..., 10:].mean((1, 2, 3))).abs() > 1e-3).all())


def test_pose_moves_a_dot_and_perspective_warps_differently():
    x = torch.zeros(10, 1, 41, 41)
    x[:, :, 10, 10] = 1.0  # a dot off centre: a rotation or zoom moves it
    y = face_nuisance(x, seed=0, kinds=("pose",))
    z = face_nuisance(x, seed=0, kinds=("perspective",))
    for img in (y, z):
        peaks = img.flatten(1).argmax(1)
        assert (peaks != 10 * 41 + 10).any()
    assert not torch.equal(y, z)
    # the warp alone only resamples: no value outside the input's range, none of the other nuisances
    assert float(y.max()) <= 1 and float(y.min()) >= 0
    # pose with all values at zero is the identity: a constant image stays constant
    const = torch.full((4, 1, 16, 16), 0.3)
    w = face_nuisance(const, seed=0, kinds=("pose", "perspective"))
    assert torch.allclose(w, const, atol=1e-6)


def test_each_nuisance_draw_does_not_depend_on_the_others():
    x = _faces(n=5, size=30)
    alone = face_nuisance(x, seed=2, kinds=("occlusion",), occlusion_p=1.0)
    both = face_nuisance(x, seed=2, kinds=("blur", "occlusion"), occlusion_p=1.0)
    assert torch.equal(alone == 0, both == 0)  # the same rectangle


def test_nuisance_bad_arguments():
    x = _faces()
    with pytest.raises(ValueError, match="kinds"):
        face_nuisance(x, kinds=("sunglasses",))
    with pytest.raises(ValueError, match="occlusion_p"):
        face_nuisance(x, occlusion_p=1.5)
    with pytest.raises(ValueError, match=r"images must be a tensor \(N, C, H, W\)"):
        face_nuisance(x[0])
    with pytest.raises(ValueError, match="seed"):
        face_nuisance(x, seed=-1)
    assert set(NUISANCES) == {"pose", "perspective", "lighting", "blur", "occlusion"}


def test_standin_identities_views_and_seed():
    from skimage.data import lfw_subset

    d = face_standin(views=3, seed=0)
    assert d.images.shape == (300, 1, 25, 25) and len(d.classes) == 100
    assert d.targets.tolist() == [i // 3 for i in range(300)]
    assert torch.equal(d.images, face_standin(views=3, seed=0).images)
    assert not torch.equal(d.images, face_standin(views=3, seed=1).images)
    # view k of identity i is face_nuisance's view of crop i (the same draws, in order)
    crops = torch.from_numpy(lfw_subset()[:100]).float().unsqueeze(1)
    assert torch.equal(d.images, face_nuisance(crops.repeat_interleave(3, dim=0), seed=0))
    assert face_standin(views=2, size=32).images.shape == (200, 1, 32, 32)
    with pytest.raises(ValueError, match="views"):
        face_standin(views=0)


def test_identity_split_is_disjoint_complete_and_seeded():
    t = np.repeat(np.arange(30), 4)
    t = np.r_[t, 99]  # one identity with a single image: never in validation or test
    s = identity_split(t, 5, 7, seed=1)
    ids = [set(t[idx]) for idx in s]
    assert len(ids[1]) == 5 and len(ids[2]) == 7 and 99 in ids[0]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sorted(np.concatenate(list(s)).tolist()) == list(range(len(t)))
    assert all(np.array_equal(a, np.sort(a)) for a in s)
    again = identity_split(torch.from_numpy(t), 5, 7, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(s, again, strict=True))
    other = identity_split(t, 5, 7, seed=2)
    assert set(t[other.test]) != ids[2]


def test_identity_split_bad_arguments():
    t = np.repeat(np.arange(5), 2)
    with pytest.raises(ValueError, match="leave at least one identity"):
        identity_split(t, 2, 3)
    with pytest.raises(ValueError, match="n_val"):
        identity_split(t, 0, 1)
    with pytest.raises(ValueError, match="1-D"):
        identity_split(np.zeros((2, 2)), 1, 1)


def test_face_identities_standin_and_cap():
    d = face_identities("standin", views=4, per_identity=2)
    assert len(d) == 200 and d.class_counts()["crop 7"] == 2
    with pytest.raises(ValueError, match="dataset"):
        face_identities("celeba")


def _write_lfw(root, people, seed=0):
    """scikit-learn's on-disk LFW layout (lfw_home/lfw_funneled/<Name>/<Name>_0001.jpg)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    home = root / "lfw_home"
    home.mkdir(parents=True)
    for meta in ("pairsDevTrain.txt", "pairsDevTest.txt", "pairs.txt"):
        (home / meta).write_text("1\n")
    for name, n in people:
        folder = home / "lfw_funneled" / name
        folder.mkdir(parents=True)
        base = rng.integers(0, 256, (25, 25, 1))  # each person a pattern, each photo a noisy copy
        for j in range(n):
            img = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
            img = np.kron(img, np.ones((10, 10, 1), dtype=np.uint8)).repeat(3, axis=2)
            Image.fromarray(img).save(folder / f"{name}_{j + 1:04d}.jpg", quality=95)
    return root


def write_lfw_fixture(root, n_people=10, n_photos=20):
    """A small LFW people fixture: ``n_people`` people with ``n_photos`` photos each (>= 20
    so that the loader's ``min_faces_per_person=20`` keeps them), plus one with too few."""
    people = [(f"Person_{chr(65 + p)}", n_photos) for p in range(n_people)] + [("Few_Photos", 3)]
    return _write_lfw(root, people)


def test_face_identities_lfw_people_from_sklearn_layout(tmp_path):
    write_lfw_fixture(tmp_path, n_people=4)
    d = face_identities("lfw_people", root=tmp_path)
    assert len(d.classes) == 4 and len(d) == 80  # both splits together, sorted by identity
    assert d.images.shape[1:] == (1, 50, 37)
    assert torch.equal(d.targets, torch.arange(4).repeat_interleave(20))
    capped = face_identities("lfw_people", root=tmp_path, per_identity=5)
    assert len(capped) == 20 and set(capped.class_counts().values()) == {5}


def test_face_identities_olivetti_from_sklearn_cache(tmp_path):
    import joblib

    faces = np.random.default_rng(0).random((400, 4096)).astype(np.float32)
    joblib.dump(faces, tmp_path / "olivetti_py3.pkz", compress=3)
    d = face_identities("olivetti", root=tmp_path)
    assert len(d) == 400 and len(d.classes) == 40 and d.images.shape[1:] == (1, 64, 64)
    assert set(d.class_counts().values()) == {10}


@pytest.mark.parametrize("name", ["lfw_people", "olivetti"])
def test_missing_real_set_says_how_to_get_it(name, tmp_path, monkeypatch):
    monkeypatch.delenv("TLHELPERS_ALLOW_DOWNLOAD", raising=False)

    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr("sklearn.datasets._base._fetch_remote", no_network)
    monkeypatch.setattr("sklearn.datasets._lfw._fetch_remote", no_network)
    monkeypatch.setattr("sklearn.datasets._olivetti_faces._fetch_remote", no_network)
    with pytest.raises(DownloadNotAllowedError) as err:
        face_identities(name, root=tmp_path / "empty")
    msg = str(err.value)
    assert "allow_download=True" in msg and "TLHELPERS_ALLOW_DOWNLOAD" in msg
    assert str(tmp_path / "empty") in msg and "root" in msg


# ---------------------------------------------------------------- notebook 08b on real data

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "08b_face_recognition.ipynb"
CHEAP = {"n_seeds": 2, "steps": 20, "per_identity": 6, "image_size": 32, "arcface_margins": [0.2],
         "triplet_margins": [0.1], "n_gallery": 3}  # fmt: skip


@pytest.mark.notebooks
def test_notebook_runs_on_lfw_people_in_the_real_on_disk_format(tmp_path, monkeypatch):
    from tlhelpers.runner import run_notebook

    monkeypatch.delenv("TLHELPERS_ALLOW_DOWNLOAD", raising=False)
    home = write_lfw_fixture(tmp_path / "sklearn", n_people=10)
    params = {**CHEAP, "dataset": "lfw_people", "data_root": str(home)}
    rec = run_notebook(NOTEBOOK, tmp_path / "out", params, timeout=600)
    assert rec.status == "ok", rec.error
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    r = doc["results"] if "results" in doc else doc
    assert r["dataset"] == "lfw_people" and r["identities"] == 10 and r["images"] == 60
    # 10 identities: 2 validate, 2 test (6 photos each: 30 genuine, 36 impostor pairs)
    assert r["test_pairs"] == {"genuine": 30, "impostor": 36}
    assert all(len(v) == 2 for d in r["verification"].values() for v in d.values())


@pytest.mark.notebooks
def test_notebook_without_the_real_data_says_how_to_get_it(tmp_path, monkeypatch):
    from tlhelpers.runner import run_notebook

    monkeypatch.delenv("TLHELPERS_ALLOW_DOWNLOAD", raising=False)
    params = {**CHEAP, "dataset": "olivetti", "data_root": str(tmp_path / "empty")}
    rec = run_notebook(NOTEBOOK, tmp_path / "out", params, timeout=600)
    assert rec.status == "failed"
    assert "DownloadNotAllowedError" in rec.error and "allow_download=True" in rec.error
