"""Tests of tlhelpers.recipes: the one place for the training recipes."""

from __future__ import annotations

import math

import pytest
import torch

from tlhelpers.models import scratch_model, transfer_model
from tlhelpers.recipes import RECIPES, Recipe, get_recipe


def test_named_recipes_exist_and_are_documented():
    assert {"scratch", "linear_probe", "fine_tune", "fine_tune_bn_eval"} <= set(RECIPES)
    for name, r in RECIPES.items():
        assert isinstance(r, Recipe) and r.name == name
        assert r.why.strip(), f"recipe {name} says why"
        assert get_recipe(name) is r
    assert get_recipe("scratch").batchnorm == "train"  # never-estimated statistics otherwise
    assert get_recipe("fine_tune_bn_eval").batchnorm == "eval"
    assert get_recipe("linear_probe").trains == "head"


def test_unknown_recipe_is_refused_with_the_names():
    with pytest.raises(ValueError, match="'scratch'"):
        get_recipe("from_scratch")


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_steps_scale_with_the_training_set(name):
    r = get_recipe(name)
    small, large = r.steps_for(5), r.steps_for(100_000)
    assert small == r.min_steps
    assert large == r.max_steps
    n = 40 * r.batch_size  # inside the clipping range for every recipe
    expected = min(r.max_steps, max(r.min_steps, math.ceil(r.epochs * n / r.batch_size)))
    assert r.steps_for(n) == expected
    steps = [r.steps_for(n) for n in (5, 50, 250, 1000, 5000)]
    assert steps == sorted(steps)
    with pytest.raises(ValueError, match="n_train"):
        r.steps_for(0)


def test_replace_is_checked():
    r = get_recipe("scratch")
    r2 = r.replace(lr_body=0.01, lr_head=0.01)
    assert r2.lr_body == 0.01 and r.lr_body != 0.01  # a new recipe; the named one is unchanged
    with pytest.raises(ValueError, match="batchnorm"):
        r.replace(batchnorm="frozen")
    with pytest.raises(ValueError, match="lr_body"):
        r.replace(lr_body=-1.0)
    with pytest.raises(ValueError, match="min_steps"):
        r.replace(min_steps=10, max_steps=5)


def test_optimizer_has_body_and_head_groups(source):
    r = get_recipe("fine_tune").replace(lr_body=1e-3, lr_head=1e-2, weight_decay=1e-4)
    model = transfer_model(source, 5)
    opt = r.make_optimizer(model)
    assert isinstance(opt, torch.optim.Adam)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["head"]["lr"] == 1e-2 and by_name["body"]["lr"] == 1e-3
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    n_params = sum(len(g["params"]) for g in opt.param_groups)
    assert n_params == len(list(model.parameters()))
    model.body.requires_grad_(False)  # frozen parameters are left out
    assert [g["name"] for g in r.make_optimizer(model).param_groups] == ["head"]


def _bn_running_means(model):
    return [m.running_mean.clone() for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def test_scratch_trains_batchnorm_in_train_mode(data):
    model = scratch_model(5, width=4, seed=0)
    before = _bn_running_means(model)
    hist = get_recipe("scratch").fit(model, data, seed=0, steps=3)
    assert len(hist) == 3
    after = _bn_running_means(model)
    assert all(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_bn_eval_fine_tune_keeps_source_statistics(source, data):
    model = transfer_model(source, 5)
    before = _bn_running_means(model)
    body0 = [p.clone() for p in model.body.parameters()]
    get_recipe("fine_tune_bn_eval").fit(model, data, seed=0, steps=3)
    assert all(torch.equal(a, b) for a, b in zip(before, _bn_running_means(model), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(body0, model.body.parameters(), strict=True))


def test_linear_probe_trains_only_the_head(source, data):
    model = transfer_model(source, 5)
    state0 = {k: v.clone() for k, v in model.state_dict().items()}
    hist = get_recipe("linear_probe").fit(model, data, seed=0)
    assert len(hist) == get_recipe("linear_probe").steps_for(20)
    for k, v in model.state_dict().items():
        changed = not torch.equal(v, state0[k])
        assert changed == k.startswith("head."), k  # BN statistics untouched too


def test_fit_is_reproducible(source, data):
    r = get_recipe("fine_tune")
    a, b = transfer_model(source, 5, seed=3), transfer_model(source, 5, seed=3)
    r.fit(a, data, seed=1, steps=4)
    r.fit(b, data, seed=1, steps=4)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)


# ------------------------------------------------------------------ notebook 06: optimiser, schedule, unfreezing

from tlhelpers.optim import GradualUnfreezing, make_optimizer, make_scheduler  # noqa: E402
from tlhelpers.training import fine_tune  # noqa: E402

GROUPS = ("head", "body.0.block3", "body.0.block2", "body.0.block1")


@pytest.mark.parametrize(
    ("name", "cls"),
    [("sgd", torch.optim.SGD), ("sgd_momentum", torch.optim.SGD), ("adamw", torch.optim.AdamW)],
)
def test_recipe_optimizer_is_chosen_by_name(source, name, cls):
    r = get_recipe("fine_tune").replace(optimizer=name, momentum=0.8)
    opt = r.make_optimizer(transfer_model(source, 5))
    assert type(opt) is cls
    if name.startswith("sgd"):
        assert opt.param_groups[0]["momentum"] == (0.8 if name == "sgd_momentum" else 0.0)
    with pytest.raises(ValueError, match="optimizer"):
        r.replace(optimizer="lion")
    with pytest.raises(ValueError, match="schedule"):
        r.replace(schedule="cosine")
    with pytest.raises(ValueError, match="unfreeze_every"):
        r.replace(unfreeze_every=0.0)


def _manual(source, data, steps, schedule="constant", unfreeze=None):
    """The loop a recipe should run, written with the optim helpers directly."""
    r = get_recipe("fine_tune")
    model = transfer_model(source, 5, seed=0)
    opt = make_optimizer("adam", model, {"body": r.lr_body, "head": r.lr_head})
    sched = make_scheduler(opt, schedule, steps, warmup=r.warmup)
    unfreezer = (
        GradualUnfreezing(model, unfreeze, every=unfreeze_every(steps)) if unfreeze else None
    )

    def on_step(step):
        if sched is not None:
            sched.step()
        if unfreezer is not None:
            unfreezer(step)

    fine_tune(model, data, steps=steps, batch_size=r.batch_size, seed=0, batchnorm="train",
              optimizer=opt, on_step=on_step)  # fmt: skip
    return model


def unfreeze_every(steps):
    return max(1, round(0.25 * steps))


@pytest.mark.parametrize("schedule", ["warmup_cosine", "one_cycle"])
def test_recipe_schedule_runs_the_same_loop_as_the_optim_helpers(source, data, schedule):
    steps = 8
    manual = _manual(source, data, steps, schedule=schedule)
    model = transfer_model(source, 5, seed=0)
    get_recipe("fine_tune").replace(schedule=schedule).fit(model, data, seed=0, steps=steps)
    constant = transfer_model(source, 5, seed=0)
    get_recipe("fine_tune").fit(constant, data, seed=0, steps=steps)
    for (k, a), b in zip(manual.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert any(
        not torch.equal(b, c)
        for b, c in zip(model.state_dict().values(), constant.state_dict().values(), strict=True)
    )


def test_recipe_gradual_unfreezing_runs_the_same_loop_and_ends_all_trainable(source, data):
    steps = 8
    manual = _manual(source, data, steps, unfreeze=GROUPS)
    model = transfer_model(source, 5, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    r = get_recipe("fine_tune").replace(unfreeze=GROUPS, unfreeze_every=0.25)
    r.fit(model, data, seed=0, steps=steps)
    for (k, a), b in zip(manual.state_dict().items(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert all(p.requires_grad for p in model.parameters())  # 1 + 7 // 2 = 4 groups
    assert not torch.equal(
        before["body.0.block1.0.weight"], model.state_dict()["body.0.block1.0.weight"]
    )


def _candidate_data(seed: int, n: int):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % 5


@pytest.mark.parametrize(
    ("method", "strength"), [("linear_probe", 0.0), ("l2sp", 0.1), ("none", 0.0)]
)
def test_a_candidate_run_resumes_exactly(method, strength):
    """advance(6) then advance(12) gives the weights of advance(12) at once (the trainer keeps
    optimiser, batch order and random state): successive halving can continue a survivor."""
    from tlhelpers.models import SmallCNN, parameter_state
    from tlhelpers.recipes import CandidateRun

    torch.manual_seed(0)
    source = SmallCNN(num_classes=5, width=4).eval()
    train, val = _candidate_data(1, 10), _candidate_data(2, 10)
    a = CandidateRun(method, strength, source, train, val, num_classes=5, seed=3)
    b = CandidateRun(method, strength, source, train, val, num_classes=5, seed=3)
    a.advance(6)
    score = a.advance(12)
    assert score == b.advance(12) and 0.0 <= score <= 1.0
    assert a.steps == b.steps == 12
    sa, sb = parameter_state(a.model), parameter_state(b.model)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.test_accuracy(_candidate_data(4, 15)) == b.test_accuracy(_candidate_data(4, 15))
    if method == "linear_probe":  # the probe trains the head on the frozen body's features
        assert a.train[0].shape == (10, a.model.head.in_features)


def test_a_candidate_run_refuses_bad_input_by_name():
    from tlhelpers.models import SmallCNN
    from tlhelpers.recipes import CandidateRun

    source = SmallCNN(num_classes=5, width=4).eval()
    train = _candidate_data(1, 10)
    with pytest.raises(ValueError, match="Unknown method 'finetune': it is now called 'none'"):
        CandidateRun("finetune", 0.0, source, train, train, num_classes=5)
    run = CandidateRun("none", 0.0, source, train, train, num_classes=5)
    run.advance(2)
    with pytest.raises(ValueError, match="total_steps"):
        run.advance(1)  # a run cannot go back


def test_scratch_recipe_is_far_above_a_network_with_never_estimated_batchnorm_statistics():
    """The bug the scratch recipe prevents: a new network trained with BatchNorm in eval mode
    normalises with statistics that were never estimated (mean 0, variance 1); with a small
    budget (30 steps at lr 3e-4) it stays near chance, so any source "beats" it by a wide margin.
    The scratch recipe (BatchNorm in train mode, at least 150 steps) is the baseline to beat."""
    from tlhelpers.data import load_task, train_val_test
    from tlhelpers.training import evaluate

    pool, test_pool = load_task("fmnist_b", "train"), load_task("fmnist_b", "test")
    broken = get_recipe("scratch").replace(
        name="never-estimated statistics", batchnorm="eval", lr_body=3e-4, lr_head=3e-3,
        min_steps=30, max_steps=30,
    )  # fmt: skip
    good, bad = [], []
    for s in (0, 1):
        split = train_val_test(pool, test_pool, 5, val_per_class=1, n_test=300, seed=s)
        for recipe, out in ((get_recipe("scratch"), good), (broken, bad)):
            model = scratch_model(5, seed=s)
            recipe.fit(model, split.train, seed=s)
            out.append(evaluate(model, split.test)["accuracy"])
    assert max(bad) < 0.45 < 0.6 < min(good), (good, bad)
