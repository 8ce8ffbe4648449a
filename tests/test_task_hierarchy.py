"""Code of notebook 05b (task hierarchy): geometric regression targets, the multi-task model
and objective, and the ridge probe; each checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers.data import GEOMETRIC_TARGETS, geometric_target, rotate_images, scale_images
from tlhelpers.features import ridge_probe
from tlhelpers.losses import MultiTaskObjective
from tlhelpers.models import MultiTaskModel, SmallCNN, SplitModel

# ---------------------------------------------------------------- geometric targets (data)


def _square(n: int = 2, size: int = 28, half: int = 6) -> torch.Tensor:
    x = torch.zeros(n, 1, size, size)
    c = size // 2
    x[:, :, c - half : c + half, c - half : c + half] = 1.0
    return x


def test_rotation_by_zero_and_scale_by_one_are_the_identity():
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(rotate_images(x, torch.zeros(3)), x, atol=1e-5)
    assert torch.allclose(scale_images(x, torch.ones(3)), x, atol=1e-5)


def test_rotation_by_90_degrees_is_rot90_counter_clockwise():
    x = torch.rand(2, 1, 28, 28)
    out = rotate_images(x, torch.tensor([90.0, -90.0]))
    # torch.rot90 with k=1 over (H, W) turns an image counter-clockwise as displayed.
    assert torch.allclose(out[0], torch.rot90(x[0], 1, dims=(1, 2)), atol=1e-4)
    assert torch.allclose(out[1], torch.rot90(x[1], -1, dims=(1, 2)), atol=1e-4)


def test_scale_by_half_halves_the_side_of_a_centred_square():
    x = _square(half=8)  # a 16 x 16 white square
    out = scale_images(x, torch.tensor([0.5, 1.0]))
    area = (out > 0.5).float().sum(dim=(1, 2, 3))
    assert area[1] == 256
    assert abs(float(area[0]) - 64) <= 8  # an 8 x 8 square, up to interpolation at its border


def test_geometric_target_draws_values_in_range_and_is_seeded():
    x = torch.rand(50, 1, 28, 28)
    for kind in GEOMETRIC_TARGETS:
        lo, hi = (-45.0, 45.0) if kind == "rotation" else (0.5, 1.0)
        a, va = geometric_target(x, kind, lo, hi, seed=3)
        b, vb = geometric_target(x, kind, lo, hi, seed=3)
        assert torch.equal(a, b) and torch.equal(va, vb)
        assert va.shape == (50,) and float(va.min()) >= lo and float(va.max()) <= hi
        expected = rotate_images(x, va) if kind == "rotation" else scale_images(x, va)
        assert torch.allclose(a, expected)
    _, other = geometric_target(x, "scale", 0.5, 1.0, seed=4)
    assert not torch.equal(other, vb)


def test_geometric_target_refuses_bad_arguments():
    x = torch.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match="kind"):
        geometric_target(x, "shear", 0.0, 1.0)
    with pytest.raises(ValueError, match="low"):
        geometric_target(x, "scale", 1.0, 0.5)
    with pytest.raises(ValueError, match="scale"):
        geometric_target(x, "scale", 0.0, 1.0)
    with pytest.raises(ValueError, match="images"):
        rotate_images(torch.rand(28, 28), torch.zeros(1))
    with pytest.raises(ValueError, match="angles"):
        rotate_images(x, torch.zeros(3))


# ---------------------------------------------------------------- multi-task model (models)


def test_multitask_model_outputs_every_head_on_shared_features():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Flatten(), nn.Linear(12, 6))
    model = MultiTaskModel(body, {"source": nn.Linear(6, 5), "target": nn.Linear(6, 3)})
    x = torch.randn(4, 3, 2, 2)
    out = model(x)
    assert set(out) == {"source", "target"}
    f = body(x)
    assert torch.allclose(out["source"], model.head["source"](f))
    assert torch.allclose(out["target"], model.head["target"](f))
    task = model.task("target")
    assert isinstance(task, SplitModel) and task.body is body
    assert torch.allclose(task(x), out["target"])


def test_multitask_from_source_keeps_the_source_head_and_leaves_the_source_alone():
    torch.manual_seed(0)
    src = SmallCNN(num_classes=5, width=4).eval()
    before = {k: v.clone() for k, v in src.state_dict().items()}
    model = MultiTaskModel.from_source(src, num_classes=3, seed=1).eval()
    x = torch.rand(6, 1, 28, 28)
    assert torch.allclose(model(x)["source"], src(x), atol=1e-6)
    assert model(x)["target"].shape == (6, 3)
    again = MultiTaskModel.from_source(src, num_classes=3, seed=1)
    assert torch.equal(again.head["target"].weight, model.head["target"].weight)
    for p in model.parameters():
        p.data.add_(1.0)
    assert all(torch.equal(before[k], v) for k, v in src.state_dict().items())


def test_multitask_model_refuses_unknown_task_and_empty_heads():
    model = MultiTaskModel(nn.Identity(), {"a": nn.Linear(2, 2)})
    with pytest.raises(ValueError, match="'b'.*'a'"):
        model.task("b")
    with pytest.raises(ValueError, match="heads"):
        MultiTaskModel(nn.Identity(), {})


# ---------------------------------------------------------------- multi-task objective (losses)


def _toy(n: int, classes: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(classes, (n,), generator=g)


def test_multitask_objective_is_target_ce_plus_weighted_source_ce():
    torch.manual_seed(0)
    model = MultiTaskModel(nn.Linear(6, 4), {"source": nn.Linear(4, 5), "target": nn.Linear(4, 3)})
    xs, ys = _toy(40, 5, 1)
    x, y = _toy(8, 3, 2)
    obj = MultiTaskObjective((xs, ys), weight=0.7, batch_size=16, seed=5)
    terms = obj(model, x, y)
    # the same source batch, drawn independently with the documented generator
    idx = torch.randperm(40, generator=torch.Generator().manual_seed(5))[:16]
    task = F.cross_entropy(model.head["target"](model.body(x)), y)
    src = F.cross_entropy(model.head["source"](model.body(xs[idx])), ys[idx])
    assert torch.allclose(terms["task"], task)
    assert torch.allclose(terms["source"], src)
    assert torch.allclose(terms["total"], task + 0.7 * src)


def test_multitask_objective_draws_a_new_source_batch_each_step_repeatably():
    model = MultiTaskModel(nn.Linear(6, 4), {"source": nn.Linear(4, 5), "target": nn.Linear(4, 3)})
    xs, ys = _toy(40, 5, 1)
    x, y = _toy(8, 3, 2)
    a = MultiTaskObjective((xs, ys), batch_size=8, seed=0)
    b = MultiTaskObjective((xs, ys), batch_size=8, seed=0)
    first, second = a(model, x, y)["source"], a(model, x, y)["source"]
    assert not torch.equal(first, second)
    assert torch.equal(b(model, x, y)["source"], first)
    assert torch.equal(b(model, x, y)["source"], second)


def test_multitask_objective_with_zero_weight_is_plain_fine_tuning():
    model = MultiTaskModel(nn.Linear(6, 4), {"source": nn.Linear(4, 5), "target": nn.Linear(4, 3)})
    xs, ys = _toy(10, 5, 1)
    x, y = _toy(8, 3, 2)
    terms = MultiTaskObjective((xs, ys), weight=0.0)(model, x, y)
    assert torch.allclose(terms["total"], F.cross_entropy(model.head["target"](model.body(x)), y))


def test_multitask_objective_refuses_bad_arguments():
    xs, ys = _toy(10, 5, 1)
    with pytest.raises(ValueError, match="weight"):
        MultiTaskObjective((xs, ys), weight=-1.0)
    with pytest.raises(ValueError, match="batch_size"):
        MultiTaskObjective((xs, ys), batch_size=0)
    with pytest.raises(ValueError, match="source_data"):
        MultiTaskObjective((xs, ys[:3]))
    obj = MultiTaskObjective((xs, ys))
    with pytest.raises(ValueError, match="'source'"):
        obj(MultiTaskModel(nn.Linear(6, 4), {"target": nn.Linear(4, 3)}), *_toy(4, 3, 0))
    with pytest.raises(TypeError, match="MultiTaskModel"):
        obj(nn.Linear(6, 3), *_toy(4, 3, 0))


# ---------------------------------------------------------------- ridge probe (features)


def test_ridge_probe_chooses_alpha_on_validation_like_sklearn():
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_absolute_error, r2_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    w = rng.normal(size=20)

    def draw(n):
        f = rng.normal(size=(n, 20))
        return f, f @ w + rng.normal(scale=1.0, size=n)

    (ft, yt), (fv, yv), (fs, ys) = draw(60), draw(100), draw(200)
    alphas = (0.01, 1.0, 100.0, 1e4)
    out = ridge_probe(ft, yt, fv, yv, fs, ys, alphas=alphas)
    fitted = {a: make_pipeline(StandardScaler(), Ridge(alpha=a)).fit(ft, yt) for a in alphas}
    val = {a: r2_score(yv, m.predict(fv)) for a, m in fitted.items()}
    best = max(val, key=val.get)
    assert out["alpha"] == best
    assert out["val_r2"] == pytest.approx(val[best])
    pred = fitted[best].predict(fs)
    assert out["r2"] == pytest.approx(r2_score(ys, pred))
    assert out["mae"] == pytest.approx(mean_absolute_error(ys, pred))
    assert out["r2"] > 0.5  # the target is linear in the features: a working probe finds it


def test_ridge_probe_refuses_bad_inputs():
    f, y = np.zeros((5, 3)), np.zeros(5)
    with pytest.raises(ValueError, match="alphas"):
        ridge_probe(f, y, f, y, f, y, alphas=())
    with pytest.raises(ValueError, match="alphas"):
        ridge_probe(f, y, f, y, f, y, alphas=(-1.0,))
    with pytest.raises(ValueError, match="train_targets"):
        ridge_probe(f, y[:4], f, y, f, y)
    with pytest.raises(ValueError, match="val_features"):
        ridge_probe(f, y, np.full((5, 3), np.nan), y, f, y)


# ---------------------------------------------------------------- the random-label source (pretrain)


def test_random_labels_are_seeded_and_uniform():
    from tlhelpers.data import random_labels

    a, b = random_labels(5000, 10, seed=0), random_labels(5000, 10, seed=0)
    assert torch.equal(a, b) and not torch.equal(a, random_labels(5000, 10, seed=1))
    counts = torch.bincount(a, minlength=10)
    assert counts.min() > 400 and counts.max() < 600  # about 500 each


def test_random_label_source_memorised_its_labels_and_knows_nothing_else(one_thread):
    from tlhelpers.models import get_source_recipe, load_backbone, source_data
    from tlhelpers.training import evaluate

    recipe = get_source_recipe("fmnist_random_labels")
    train, test = source_data(recipe)
    assert len(train) == 500 and len(train.classes) == 10
    true = load_task_targets(recipe)
    assert float((train.targets == true).float().mean()) < 0.3  # the labels are not the classes
    model = load_backbone("small_cnn", source="fmnist_random_labels").eval()
    assert evaluate(model, train)["accuracy"] >= 0.99  # memorised
    assert abs(evaluate(model, test)["accuracy"] - 0.1) < 0.03  # chance elsewhere


def load_task_targets(recipe) -> torch.Tensor:
    """The true task-A labels of the recipe's training images (same few-shot draw)."""
    from tlhelpers.data import few_shot_indices, load_task

    train = load_task(recipe.task, "train")
    return train.targets[few_shot_indices(train.targets, recipe.per_class, recipe.seed)]


@pytest.mark.slow
def test_random_label_recipe_reproduces_the_memorising_source():
    from tlhelpers.models import WEIGHTS, get_source_recipe
    from tlhelpers.pretrain import train_recipe

    recipe = get_source_recipe("fmnist_random_labels")
    model, metrics = train_recipe(recipe, progress=False)
    recorded = WEIGHTS[recipe.checkpoint].info
    assert metrics["train_accuracy"] >= recorded["train_accuracy"] - 0.02  # memorised again
    assert metrics["accuracy"] == pytest.approx(recorded["test_accuracy"], abs=0.03)  # chance
    assert isinstance(model, SmallCNN)
