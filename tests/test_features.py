"""Frozen features: extraction, on-disk cache, source outputs, cached activations, probes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tlhelpers.data import TensorImageDataset
from tlhelpers.features import (
    activation_maps,
    cache_activations,
    extract_features,
    face_descriptors,
    linear_probe,
    probe_over_seeds,
    source_outputs,
    top_activating,
    unit_activations,
)
from tlhelpers.models import SmallCNN, eval_mode, split_at_block, split_model, transfer_model

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TLHELPERS_CACHE", str(tmp_path))
    return tmp_path / "features"


def _data(n=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 12, 12, generator=g)
    return TensorImageDataset(images, torch.arange(n) % 3, ["a", "b", "c"])


def _model(seed=0):
    torch.manual_seed(seed)
    model = SmallCNN(num_classes=3, width=4)
    with torch.no_grad():  # non-trivial BN statistics, so eval vs train mode matters
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


def test_extract_features_equals_manual_body_forward():
    model, data = _model(), _data()
    model.train()
    feats, targets = extract_features(model, data, batch_size=10)
    assert feats.shape == (37, 16)
    assert torch.equal(targets, data.targets)
    assert model.training  # mode restored
    body = split_model(model).body.eval()
    with torch.no_grad():
        manual = body(data.images)
    torch.testing.assert_close(feats, manual, rtol=1e-5, atol=1e-6)
    # with a batch transform (the first call left the model in train mode: body in eval again)
    body.eval()
    feats2, _ = extract_features(model, data, batch_transform=lambda x: x.flip(-1))
    with torch.no_grad():
        torch.testing.assert_close(feats2, body(data.images.flip(-1)), rtol=1e-5, atol=1e-6)
    # an already-headless feature extractor is used as is
    feats3, _ = extract_features(nn.Sequential(nn.Flatten()), data)
    assert torch.equal(feats3, data.images.flatten(1))


def test_extract_features_keeps_every_module_mode():
    model, data = _model(), _data()
    model.eval()
    extract_features(model, data)
    assert not any(m.training for m in model.modules())
    model.train()
    model.features.block1[1].eval()  # e.g. a frozen BatchNorm kept in eval mode
    extract_features(model, data)
    modes = {n: m.training for n, m in model.named_modules()}
    assert modes.pop("features.block1.1") is False
    assert all(modes.values())


def test_feature_cache_skips_the_model(cache):
    model, data = _model(), _data()
    calls = []
    model.features.register_forward_hook(lambda *a: calls.append(1))
    f1, t1 = extract_features(model, data, batch_size=16, cache=True)
    assert len(calls) == 3
    files = list(cache.glob("features-*.pt"))
    assert len(files) == 1
    f2, t2 = extract_features(model, data, batch_size=16, cache=True)
    assert len(calls) == 3  # served from disk
    assert torch.equal(f1, f2) and torch.equal(t1, t2)
    # other weights or other data -> another key, computed afresh
    other = _model(seed=1)
    other.features.register_forward_hook(lambda *a: calls.append(1))
    f3, _ = extract_features(other, data, batch_size=16, cache=True)
    assert len(calls) == 6 and not torch.equal(f3, f1)
    extract_features(model, _data(seed=1), batch_size=16, cache=True)
    assert len(calls) == 9
    extract_features(model, data, batch_size=16, cache="mine")
    assert len(list(cache.glob("mine-*.pt"))) == 1
    assert len(list(cache.glob("features-*.pt"))) == 3


def test_no_cache_writes_nothing(cache):
    extract_features(_model(), _data(), cache=False)
    assert not cache.exists() or not any(cache.iterdir())


def test_linear_probe_on_separable_features():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    centers = torch.eye(3) * 5
    x = centers[y] + 0.3 * torch.randn(60, 3, generator=g)
    acc = linear_probe(x[:30], y[:30], x[30:], y[30:])
    assert acc == 1.0
    assert linear_probe(x[:30].numpy(), y[:30].numpy(), x[30:], y[30:], standardize=True) == 1.0
    # shuffled labels cannot be predicted: the probe really scores the test set
    perm = torch.randperm(30, generator=g)
    assert linear_probe(x[:30], y[:30], x[30:], y[30:][perm]) < 0.8


def test_probe_over_seeds_separable():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(100) % 2
    f = torch.randn(100, 5, generator=g) + 5 * y[:, None].float()
    accs = probe_over_seeds(f, y, f, y, per_class=3, seeds=[0, 1])
    assert len(accs) == 2 and min(accs) > 0.95


def test_source_outputs_matches_model():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=3, width=4).eval()
    g = torch.Generator().manual_seed(0)
    data = (torch.rand(10, 1, 8, 8, generator=g), torch.arange(10) % 2)
    out = source_outputs(model, data, batch_size=4, batch_transform=lambda b: b * 2)
    assert out["features"].shape == (10, 16) and out["source_probs"].shape == (10, 3)
    with torch.no_grad():
        logits = model(data[0] * 2)
        feats = split_model(model).body(data[0] * 2)
    assert torch.allclose(out["source_probs"], torch.softmax(logits, 1).double(), atol=1e-6)
    assert torch.allclose(out["features"], feats, atol=1e-6)
    assert torch.allclose(out["source_probs"].sum(1), torch.ones(10, dtype=torch.float64))
    assert torch.equal(out["targets"], data[1])


def test_cache_activations_equal_lower_forward_in_eval_mode():
    torch.manual_seed(0)
    model = transfer_model(SmallCNN(num_classes=5, width=4), 5)
    lower, _ = split_at_block(model, 1)
    model.train()
    x, y = torch.rand(12, 1, 28, 28), torch.arange(12) % 5
    acts, ys = cache_activations(lower, (x, y), batch_size=5)
    with torch.no_grad(), eval_mode(lower):
        expected = lower(x)
    assert torch.allclose(acts, expected, atol=1e-6) and torch.equal(ys, y)
    assert lower.training  # mode restored


# ---------------------------------------------------------------- feature hierarchy (notebook 05a)


def _scaled_data():
    """Images whose brightness grows with the index: a unit that sums its input ranks them."""
    g = torch.Generator().manual_seed(1)
    base = torch.rand(1, 1, 12, 12, generator=g)
    scale = torch.tensor([3.0, 1.0, 7.0, 2.0, 9.0, 5.0, 4.0, 8.0, 6.0, 0.5])
    images = base * scale.view(-1, 1, 1, 1)
    return TensorImageDataset(images, torch.zeros(10, dtype=torch.long), ["x"]), scale


def _summing_model():
    """Conv with two channels: channel 0 = +sum of the 3x3 window, channel 1 = -sum."""
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    with torch.no_grad():
        conv.weight[0].fill_(1.0)
        conv.weight[1].fill_(-1.0)
    return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 1))


def test_unit_activations_equal_the_layer_output_reduced_over_space():
    model = _model()
    data = _data(n=23)
    for reduce, fn in [("max", lambda t: t.amax(dim=(2, 3))), ("mean", lambda t: t.mean((2, 3)))]:
        acts, y = unit_activations(model, "features.block2", data, reduce=reduce, batch_size=5)
        with eval_mode(model), torch.no_grad():
            direct = model.features.block2(model.features.block1(data.images))
        assert acts.shape == (23, 8)
        torch.testing.assert_close(acts, fn(direct))
        assert torch.equal(y, data.targets)


def test_top_activating_ranks_images_by_a_units_response():
    data, scale = _scaled_data()
    model = _summing_model()
    acts, _ = unit_activations(model, "1", data)  # after the ReLU
    values, idx = top_activating(acts, k=3)
    assert idx.shape == (2, 3)
    # unit 0 grows with brightness: the three brightest images, brightest first
    assert idx[0].tolist() == torch.argsort(scale, descending=True)[:3].tolist()
    assert torch.all(values[0][:-1] >= values[0][1:])
    # unit 1 is -sum through a ReLU: 0 for every image (ties), values all 0
    assert torch.equal(values[1], torch.zeros(3))
    v_sel, i_sel = top_activating(acts, k=2, units=[0])
    assert i_sel.tolist() == [idx[0, :2].tolist()]
    torch.testing.assert_close(v_sel[0], values[0, :2])


def test_activation_maps_are_the_layer_output():
    model = _model()
    images = _data(n=4).images
    maps = activation_maps(model, "features.block1", images)
    with eval_mode(model), torch.no_grad():
        direct = model.features.block1(images)
    torch.testing.assert_close(maps, direct)
    assert model.training  # mode restored


def test_feature_hierarchy_helpers_refuse_bad_arguments():
    model = _model()
    with pytest.raises(ValueError, match="layer"):
        unit_activations(model, "features.block9", _data())
    with pytest.raises(ValueError, match="reduce"):
        unit_activations(model, "features.block1", _data(), reduce="median")
    acts = torch.rand(5, 3)
    with pytest.raises(ValueError, match="k"):
        top_activating(acts, k=6)
    with pytest.raises(ValueError, match="units"):
        top_activating(acts, k=2, units=[3])
    with pytest.raises(ValueError, match="2-D"):
        top_activating(torch.rand(5, 3, 2), k=2)


def test_unit_activations_of_several_layers_come_from_one_pass_that_stops_early():
    model, data = _model(), _data(n=9)
    calls = []
    model.classifier.register_forward_hook(lambda *a: calls.append("classifier"))
    acts, _ = unit_activations(model, ["features.block1", "features.block3"], data, reduce="mean")
    assert set(acts) == {"features.block1", "features.block3"}
    for name in acts:
        single, _ = unit_activations(model, name, data, reduce="mean")
        torch.testing.assert_close(acts[name], single)
    assert calls == []  # the head was never run
    with pytest.raises(ValueError, match="at least one"):
        unit_activations(model, [], data)


# dlib's face embedding (notebook 08b): against dlib's own chip extraction, on real LFW crops.
def _lfw_faces(n: int = 3) -> torch.Tensor:
    from skimage.data import lfw_subset

    return torch.from_numpy(lfw_subset()[:n]).float().unsqueeze(1)


def test_face_descriptors_match_dlib_on_the_whole_crop(cache):
    dlib = pytest.importorskip("dlib")
    import numpy as np
    from PIL import Image

    from tlhelpers.models import find_weights

    faces = _lfw_faces()
    got = face_descriptors(faces)
    assert got.shape == (3, 128) and got.dtype == torch.float32
    # independent path: PIL's resize, dlib's compute_face_descriptor(image, shape), which
    # cuts its own aligned chip (150 px, padding 0.25)
    net = dlib.face_recognition_model_v1(str(find_weights("dlib_face_resnet")))
    aligner = dlib.shape_predictor(str(find_weights("dlib_shape_5")))
    for i, face in enumerate(faces[:, 0].numpy()):
        grey = Image.fromarray((face * 255).round().astype(np.uint8)).resize((150, 150))
        rgb = np.ascontiguousarray(np.stack([np.asarray(grey)] * 3, -1))
        shape = aligner(rgb, dlib.rectangle(0, 0, 149, 149))
        ref = np.asarray(net.compute_face_descriptor(rgb, shape))
        cos = float(np.dot(ref, got[i].numpy()) / np.linalg.norm(ref) / got[i].norm())
        assert cos > 0.97  # resizers differ by a grey level here and there
    # three different people: farther apart than dlib's same-person distance (0.6)
    assert torch.cdist(got, got)[~torch.eye(3, dtype=torch.bool)].min() > 0.6


def test_face_descriptors_cache_and_bad_input(cache):
    pytest.importorskip("dlib")
    faces = _lfw_faces(2)
    first = face_descriptors(faces, cache=True)
    files = list(cache.glob("dlib-faces-*.pt"))
    assert len(files) == 1
    assert torch.equal(face_descriptors(faces, cache=True), first)
    assert torch.equal(face_descriptors(faces.expand(-1, 3, -1, -1).contiguous()), first)
    with pytest.raises(ValueError, match=r"images must be a tensor \(N, 1 or 3, H, W\)"):
        face_descriptors(faces[0])
    with pytest.raises(ValueError, match="must lie in"):
        face_descriptors(faces * 255)


def test_face_model_files_missing_say_how_to_install(monkeypatch, tmp_path):
    from tlhelpers import models

    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(models.WeightsNotFoundError, match="face-recognition-models==0.3.0"):
        models.find_weights("dlib_face_resnet")
