"""Tests of tlhelpers.finetuning (notebooks 03 and 04). Small random data; fast."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tlhelpers.finetuning import (  # noqa: E402
    METHODS,
    cache_activations,
    finetune,
    interpolate_state,
    loss_along_path,
    make_curves_demo,
    make_l2sp_demo,
    make_objective,
    old_task_accuracy,
    parameter_state,
    scratch_model,
    split_at_block,
    transfer_model,
    weight_distance,
)
from tlhelpers.models import SmallCNN, freeze_until, set_batchnorm_eval  # noqa: E402


@pytest.fixture
def source():
    torch.manual_seed(0)
    return SmallCNN(num_classes=5, width=4).eval()


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(1)
    return torch.rand(20, 1, 28, 28, generator=g), torch.arange(20) % 5


def test_transfer_model_copies_source_and_seeds_head(source):
    before = {k: v.clone() for k, v in source.state_dict().items()}
    a, b = transfer_model(source, 3, seed=4), transfer_model(source, 3, seed=4)
    assert a.head.out_features == 3
    assert torch.equal(a.head.weight, b.head.weight)
    torch.nn.init.zeros_(a.body[0].block1[0].weight)
    assert all(torch.equal(before[k], v) for k, v in source.state_dict().items())


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


def test_interpolate_state_endpoints_and_linearity():
    s = {"body.w": torch.zeros(3), "head.w": torch.ones(2), "n": torch.tensor(1)}
    t = {"body.w": torch.full((3,), 4.0), "head.w": torch.full((2,), 3.0), "n": torch.tensor(7)}
    assert torch.equal(interpolate_state(s, t, 0.0)["body.w"], s["body.w"])
    assert torch.equal(interpolate_state(s, t, 1.0)["body.w"], t["body.w"])
    mid = interpolate_state(s, t, 0.25)
    assert torch.allclose(mid["body.w"], torch.full((3,), 1.0))
    assert torch.allclose(mid["head.w"], torch.full((2,), 1.5))
    assert int(mid["n"]) == 7  # integer buffers come from the target
    body_only = interpolate_state(s, t, 0.0, prefixes=("body.",))
    assert torch.equal(body_only["head.w"], t["head.w"])  # fine-tuned head kept
    assert torch.equal(body_only["body.w"], s["body.w"])
    # linear: f(a t1 + (1-a) t2) = a f(t1) + (1-a) f(t2)
    f = lambda x: interpolate_state(s, t, x)["body.w"]  # noqa: E731
    assert torch.allclose(f(0.6), 0.5 * f(0.2) + 0.5 * f(1.0))


def test_loss_along_path_endpoints_match_models_and_restores(source, data):
    model = transfer_model(source, 5)
    s0 = {k: v.clone() for k, v in model.state_dict().items()}
    finetune(model, data, steps=3, lr=1e-2)
    s1 = {k: v.clone() for k, v in model.state_dict().items()}
    path = loss_along_path(model, s0, s1, data, [0.0, 0.5, 1.0])
    assert path["t"] == [0.0, 0.5, 1.0]
    from tlhelpers.training import evaluate

    assert path["loss"][2] == pytest.approx(evaluate(model, data)["loss"], rel=1e-5)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in s1.items())  # restored
    # t = 0: source body with the fine-tuned head
    probe = transfer_model(source, 5)
    probe.load_state_dict(interpolate_state(s0, s1, 0.0, ("body.",)))
    assert path["loss"][0] == pytest.approx(evaluate(probe, data)["loss"], rel=1e-5)
    assert torch.equal(probe.head.weight, s1["head.weight"])


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_logs_its_term(method, source, data):
    model = transfer_model(source, 5)
    ref = parameter_state(model, "body.")
    obj = make_objective(method, model, source=source)
    hist = finetune(model, data, objective=obj, steps=4, lr=1e-2, reference=ref)
    assert len(hist) == 4
    assert "train/task" in hist.keys() and "train/weight_distance" in hist.keys()
    if method != "finetune":
        assert f"train/{method}" in hist.keys()
    assert hist["train/weight_distance"][0] == 0.0  # logged before the first step
    assert hist["train/weight_distance"][-1] > 0
    if method == "delta":
        assert hist["train/delta"][0] == pytest.approx(0.0, abs=1e-7)  # BN in eval mode
        obj.terms["delta"].fn.remove()
    if method == "lwf":
        assert hist["train/lwf"][0] == pytest.approx(0.0, abs=1e-6)  # old head = source head


def test_make_objective_refuses_unknown_method_and_lwf_without_source(source):
    model = transfer_model(source, 5)
    with pytest.raises(ValueError, match="l2sp"):
        make_objective("l3sp", model)
    with pytest.raises(ValueError, match="source"):
        make_objective("lwf", model)


def test_l2sp_keeps_weights_closer_than_plain_finetuning(source, data):
    dists = {}
    for method, strength in [("finetune", None), ("l2sp", 100.0)]:
        model = transfer_model(source, 5)
        ref = parameter_state(model, "body.")
        finetune(
            model,
            data,
            objective=make_objective(method, model, strength=strength),
            steps=15,
            lr=1e-2,
            reference=ref,
        )
        dists[method] = weight_distance(model, ref)
    assert dists["l2sp"] < dists["finetune"]


def test_finetune_minibatch_steps(source, data):
    model = transfer_model(source, 5)
    hist = finetune(model, data, steps=4, lr=1e-3, batch_size=10)  # 2 steps per pass
    assert len(hist) == 2


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


def test_cached_activation_training_equals_frozen_lower_training(source, data):
    """Training the top block on cached activations == training the model with block1-2
    frozen (BN in eval mode): same weights after the same steps."""
    a, b = transfer_model(source, 5, seed=1), transfer_model(source, 5, seed=1)
    lower, upper = split_at_block(a, 1)
    acts = cache_activations(lower, data)
    assert acts[0].shape[:2] == (20, 8)
    finetune(upper, acts, steps=3, lr=1e-2, seed=0)
    freeze_until(b, "body.0.block2")
    finetune(b, data, steps=3, lr=1e-2, seed=0)
    set_batchnorm_eval(b, frozen_only=False)
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.allclose(pa, pb, atol=1e-5), na


def test_old_task_accuracy_is_source_accuracy_before_finetuning(source, data):
    model = transfer_model(source, 5)
    from tlhelpers.training import evaluate

    assert old_task_accuracy(model.body, source.classifier, data) == pytest.approx(
        evaluate(source, data)["accuracy"]
    )


def test_scratch_model_is_seeded():
    a, b = scratch_model(5, width=4, seed=2), scratch_model(5, width=4, seed=2)
    assert torch.equal(a.head.weight, b.head.weight)


def test_l2sp_demo_returns_none_caches_and_plots(source, data):
    demo = make_l2sp_demo(source, data, data, steps=2)
    assert demo(0.1) is None
    assert demo(0.1) is None and len(demo.cache) == 1
    assert demo(0.0) is None and len(demo.cache) == 2
    acc, dist, hist = demo.cache[0.1]
    assert 0 <= acc <= 1 and dist > 0 and "train/l2sp" in hist.keys()
    with pytest.raises(ValueError):
        demo(-1.0)
    plt.close("all")


def test_l2sp_demo_with_a_recipe_on_validation(source, data):
    from tlhelpers.recipes import get_recipe

    demo = make_l2sp_demo(source, data, data, steps=3, recipe=get_recipe("fine_tune"),
                          eval_name="validation")  # fmt: skip
    demo(0.1)
    _, _, hist = demo.cache[0.1]
    assert len(hist) == 3
    assert "validation accuracy" in [ax.get_ylabel() for ax in plt.gcf().axes]
    plt.close("all")


def test_curves_demo(data):
    curves = {"a": {1: [0.5, 0.6], 5: [0.7, 0.8]}, "b": {1: [0.4, 0.5], 5: [0.8, 0.9]}}
    demo = make_curves_demo(curves)
    assert demo(["a", "b"], "") is None
    assert demo(["a"], "b") is None
    with pytest.raises(ValueError, match="'a'"):
        demo(["c"], "")
    plt.close("all")
