"""tlhelpers.training.Trainer: the one training loop, its presets and its callbacks.

Every preset that replaced a hand-written loop must train bit for bit as the function it
replaced: the old functions are kept below, frozen, as the oracles (``_old_*``), and each
test runs old and new on the same machine, from the same seed, and compares every weight
and buffer with ``torch.equal``. Then the trainer's own promises (resuming, early
stopping, callbacks, state) and a battery of bad inputs, each refused by name before any
work.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from contextlib import nullcontext

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tlhelpers import threads
from tlhelpers.adaptation import adapt
from tlhelpers.data import check_data, data_length, iterate_batches
from tlhelpers.embedding import train_embedding
from tlhelpers.losses import (
    DomainAdaptationObjective,
    TransferObjective,
    arcface_loss,
    batch_hard_triplet_loss,
    make_objective,
)
from tlhelpers.models import (
    SmallCNN,
    SplitModel,
    param_groups,
    parameter_state,
    replace_head,
    transfer_model,
)
from tlhelpers.optim import GradualUnfreezing, build_optimizer, make_optimizer, make_scheduler
from tlhelpers.recipes import get_recipe
from tlhelpers.runtime import resolve_device, seeded
from tlhelpers.training import (
    Callback,
    EarlyStopping,
    OnStep,
    TrackDistance,
    Trainer,
    evaluate,
    fine_tune,
    fine_tuned_accuracy,
    fit,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# ====================================================================== the oracles
# Frozen copies of the loops the trainer replaced, as they were (only renamed, and
# ``set_batchnorm_eval(model, frozen_only=False)`` and the old ``param_groups`` inlined).
# Do not "fix" them: they define the numbers the presets must keep.


def _old_default_objective(model, x, y):
    logits = model(x)
    if logits.ndim == 2 and y.numel() and not y.is_floating_point():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= logits.shape[1]:
            raise ValueError("label out of range")
    return F.cross_entropy(logits, y)


def _old_terms(out):
    if isinstance(out, torch.Tensor):
        return {"total": out}
    return dict(out)


def _old_fit(model, train_data, *, epochs=10, lr=1e-3, optimizer=None, objective=None,
             batch_size=64, val_data=None, batch_transform=None, device=None, seed=None,
             train_mode=None, check_finite=True, on_step=None):  # fmt: skip
    check_data("train_data", train_data, check_finite=check_finite)
    threads.adapt_threads()
    dev = resolve_device(device, model)
    model.to(dev)
    objective = objective or _old_default_objective
    if isinstance(objective, nn.Module):
        objective.to(dev)
    if optimizer is None:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    n_train = data_length(train_data)
    records = []
    step = 0
    with threads.fixed_threads(), seeded(seed) if seed is not None else nullcontext():
        for _epoch in range(epochs):
            model.train()
            if train_mode is not None:
                train_mode(model)
            sums = defaultdict(float)
            count = 0
            shuffle = batch_size < n_train
            batches = iterate_batches(train_data, batch_size, shuffle=shuffle, generator=generator)
            for x, y in batches:
                step += 1
                x, y = x.to(dev), y.to(dev)
                if batch_transform is not None:
                    x = batch_transform(x)
                terms = _old_terms(objective(model, x, y))
                values = {k: float(v.detach()) for k, v in terms.items()}
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                if on_step is not None:
                    on_step(step)
                for k, v in values.items():
                    sums[k] += v * len(y)
                count += len(y)
            record = {f"train/{k}": v / count for k, v in sums.items()}
            if val_data is not None:
                ev = evaluate(model, val_data, batch_transform=batch_transform, device=dev)
                record.update({f"val/{k}": v for k, v in ev.items()})
            records.append(record)
    return records


def _old_bn_eval(model):
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()


def _old_fine_tune(model, data, *, objective=None, steps=100, lr=1e-3, batch_size=None, seed=0,
                   bn_eval=True, reference=None, optimizer=None, batch_transform=None,
                   device=None, on_step=None):  # fmt: skip
    n = check_data("data", data)
    bs = n if batch_size is None else min(batch_size, n)
    epochs = math.ceil(steps * bs / n) if bs < n else steps
    obj = objective if objective is not None else TransferObjective()
    if reference is not None:
        obj = TrackDistance(obj, reference)
    return _old_fit(model, data, epochs=epochs, lr=lr, optimizer=optimizer, objective=obj,
                    batch_size=bs, batch_transform=batch_transform, seed=seed, device=device,
                    train_mode=_old_bn_eval if bn_eval else None, on_step=on_step)  # fmt: skip


def _old_param_groups(model, lrs, default_lr):
    groups = {}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        match = max((k for k in lrs if pname == k or pname.startswith(k + ".")), key=len,
                    default=None)  # fmt: skip
        groups.setdefault(match or "", []).append(p)
    return [{"params": ps, "lr": lrs.get(k, default_lr), "name": k or "default"}
            for k, ps in groups.items()]  # fmt: skip


def _old_fine_tuned_accuracy(model, train_data, test_data, num_classes, *, steps=30, lr=1e-3,
                             head_lr=None, freeze_bn_stats=True, seed=0):  # fmt: skip
    head_lr = 10 * lr if head_lr is None else head_lr
    with seeded(seed):
        net = replace_head(copy.deepcopy(model), num_classes)
    opt = torch.optim.Adam(_old_param_groups(net, {"body": lr, "head": head_lr}, lr))
    _old_fine_tune(net, train_data, steps=steps, lr=lr, optimizer=opt, seed=seed,
                   bn_eval=freeze_bn_stats)  # fmt: skip
    return net, evaluate(net, test_data)["accuracy"]


def _old_recipe_make_optimizer(recipe, model):
    groups = {"body": [], "head": []}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups["head" if name.startswith("head.") else "body"].append(p)
    lrs = {"body": recipe.lr_body, "head": recipe.lr_head}
    pg = [{"params": ps, "lr": lrs[k], "name": k} for k, ps in groups.items() if ps]
    return build_optimizer(recipe.optimizer, pg, weight_decay=recipe.weight_decay,
                           momentum=recipe.momentum)  # fmt: skip


def _old_recipe_fit(recipe, model, data, *, objective=None, seed=0, steps=None, reference=None,
                    on_step=None):  # fmt: skip
    n = len(data[1]) if isinstance(data, tuple) else len(data)
    steps = recipe.steps_for(n) if steps is None else steps
    if recipe.trains == "head":
        model.body.requires_grad_(False)
    optimizer = _old_recipe_make_optimizer(recipe, model)
    scheduler = make_scheduler(optimizer, recipe.schedule, steps, warmup=recipe.warmup)
    unfreezer = None
    if recipe.unfreeze:
        every = max(1, round(recipe.unfreeze_every * steps))
        unfreezer = GradualUnfreezing(model, recipe.unfreeze, every=every)

    def after_step(step):
        if scheduler is not None:
            scheduler.step()
        if unfreezer is not None:
            unfreezer(step)
        if on_step is not None:
            on_step(step)

    return _old_fine_tune(model, data, objective=objective, steps=steps, lr=recipe.lr_body,
                          batch_size=recipe.batch_size, seed=seed,
                          bn_eval=recipe.batchnorm == "eval", reference=reference,
                          optimizer=optimizer, on_step=after_step)  # fmt: skip


def _old_adapt(model, source, target, *, method, strength=1.0, steps=300, lr=3e-3,
               batch_size=64, seed=0, gamma=10.0):  # fmt: skip
    objective = DomainAdaptationObjective(method, target, strength, steps=steps,
                                          batch_size=batch_size,
                                          num_features=getattr(model.head, "in_features", None),
                                          seed=seed, gamma=gamma)  # fmt: skip
    params = [p for p in model.parameters() if p.requires_grad] + list(objective.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    return _old_fine_tune(model, source, objective=objective, steps=steps, lr=lr,
                          batch_size=batch_size, seed=seed, bn_eval=False, optimizer=optimizer,
                          on_step=objective.on_step)  # fmt: skip


def _old_train_embedding(features, labels, loss, *, embed_dim=32, margin=0.0, scale=16.0,
                         recipe="fine_tune", seed=0):  # fmt: skip
    rec = get_recipe(recipe) if isinstance(recipe, str) else recipe
    _, y = torch.unique(torch.as_tensor(labels), return_inverse=True)
    n_classes = int(y.max()) + 1
    with seeded(seed):
        proj = nn.Linear(features.shape[1], embed_dim)
        if loss == "cross-entropy":
            head = nn.Linear(embed_dim, n_classes)
        elif loss == "ArcFace":
            head = nn.Linear(embed_dim, n_classes, bias=False)
        else:
            head = nn.Identity()
    objective = None
    if loss == "ArcFace":

        def objective(m, x, t):
            return arcface_loss(m.body(x), t, m.head.weight, margin=margin, scale=scale)

    elif loss == "triplet":

        def objective(m, x, t):
            return batch_hard_triplet_loss(m.body(x), t, margin=margin, normalize=True)

    _old_recipe_fit(rec, SplitModel(proj, head), (features, y), objective=objective, seed=seed)
    return proj.eval()


class _OldRun:
    """Notebook 10's resumable run as it was: a new ``fine_tune`` call per segment, the
    optimiser kept by hand."""

    def __init__(self, model, objective, recipe, data, seed):
        self.model, self.objective, self.recipe, self.data, self.seed = (
            model, objective, recipe, data, seed)  # fmt: skip
        self.steps = 0
        if recipe.trains == "head":
            model.body.requires_grad_(False)
        self.optimizer = _old_recipe_make_optimizer(recipe, model)

    def advance(self, total_steps):
        _old_fine_tune(self.model, self.data, objective=self.objective,
                       steps=total_steps - self.steps, batch_size=self.recipe.batch_size,
                       seed=self.seed, bn_eval=self.recipe.batchnorm == "eval",
                       optimizer=self.optimizer)  # fmt: skip
        self.steps = total_steps


# ====================================================================== fixtures


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k, v in sa.items():
        assert torch.equal(v, sb[k]), k


def _images(n=40, classes=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.arange(n) % classes


@pytest.fixture(scope="module")
def source():
    torch.manual_seed(0)
    net = SmallCNN(num_classes=5, width=4)
    with torch.no_grad():  # non-trivial BatchNorm statistics, as a pretrained source has
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def _moved(model: nn.Module, before: dict) -> bool:
    return any(not torch.equal(v, before[k]) for k, v in model.state_dict().items())


# ====================================================================== presets == old loops


@pytest.mark.parametrize("batchnorm", ["train", "eval"])
@pytest.mark.parametrize("seed", [0, None])
def test_fit_preset_equals_the_old_fit(source, batchnorm, seed):
    data, val = _images(50), _images(20, seed=2)
    steps_seen: list[list[int]] = [[], []]
    models = []
    for i, run in enumerate(("old", "new")):
        model = transfer_model(source, 5, seed=3)
        opt = make_optimizer("sgd_momentum", model, {"body": 0.01, "head": 0.1})
        sched = make_scheduler(opt, "one_cycle", 3 * 4)

        def on_step(step, i=i, sched=sched):
            sched.step()
            steps_seen[i].append(step)

        torch.manual_seed(11)  # seed=None draws the batch order from the global generator
        if run == "old":
            rec = _old_fit(model, data, epochs=3, optimizer=opt, batch_size=16, val_data=val,
                           seed=seed, on_step=on_step,
                           train_mode=_old_bn_eval if batchnorm == "eval" else None)  # fmt: skip
        else:
            hist = fit(model, data, epochs=3, optimizer=opt, batch_size=16, val_data=val,
                       seed=seed, on_step=on_step, batchnorm=batchnorm, progress=False)  # fmt: skip
            for r_old, r_new in zip(rec, hist.records, strict=True):
                assert {k: v for k, v in r_new.items() if k != "time"} == r_old
        models.append(model)
    _assert_same_state(*models)
    assert steps_seen[0] == steps_seen[1] == list(range(1, 13))
    assert _moved(models[0], transfer_model(source, 5, seed=3).state_dict())


@pytest.mark.parametrize(("batch_size", "batchnorm"), [(None, "eval"), (16, "train"), (16, "eval")])
def test_fine_tune_preset_equals_the_old_fine_tune(source, batch_size, batchnorm):
    data = _images(40)
    models, histories = [], []
    for run in ("old", "new"):
        model = transfer_model(source, 5, seed=4)
        ref = parameter_state(model, "body.")
        obj = make_objective("l2sp", model, strength=0.5)
        if run == "old":
            histories.append(_old_fine_tune(model, data, objective=obj, steps=7, lr=1e-2,
                                             batch_size=batch_size, seed=5, reference=ref,
                                             bn_eval=batchnorm == "eval"))  # fmt: skip
        else:
            h = fine_tune(model, data, objective=obj, steps=7, lr=1e-2, batch_size=batch_size,
                          seed=5, reference=ref, batchnorm=batchnorm)  # fmt: skip
            histories.append([{k: v for k, v in r.items() if k != "time"} for r in h.records])
        models.append(model)
    _assert_same_state(*models)
    assert histories[0] == histories[1]


def test_fine_tuned_accuracy_preset_equals_the_old_protocol(source, monkeypatch):
    import tlhelpers.training as training

    train, test = _images(20), _images(30, seed=3)
    nets = []
    real = training.evaluate

    def capture(net, data, **kw):  # the fine-tuned copy, as it is evaluated
        nets.append(copy.deepcopy(net))
        return real(net, data, **kw)

    monkeypatch.setattr(training, "evaluate", capture)
    for batchnorm in ("eval", "train"):
        acc = fine_tuned_accuracy(source, train, test, 5, steps=6, seed=2, batchnorm=batchnorm)
        old_net, old_acc = _old_fine_tuned_accuracy(source, train, test, 5, steps=6, seed=2,
                                                    freeze_bn_stats=batchnorm == "eval")  # fmt: skip
        _assert_same_state(nets[-1], old_net)
        assert acc == old_acc


@pytest.mark.parametrize(
    "recipe",
    [
        get_recipe("scratch").replace(min_steps=5, max_steps=5),  # BatchNorm trains
        get_recipe("linear_probe").replace(min_steps=4, max_steps=4),
        get_recipe("fine_tune_bn_eval").replace(min_steps=6, max_steps=6),
        get_recipe("fine_tune").replace(min_steps=8, max_steps=8, batch_size=16,
                                        schedule="warmup_cosine",
                                        unfreeze=("head", "body.0.block3"), unfreeze_every=0.5),
        get_recipe("fine_tune").replace(min_steps=5, max_steps=5, batch_size=32,
                                        optimizer="sgd_momentum", schedule="one_cycle"),
        get_recipe("fine_tune").replace(min_steps=5, max_steps=5, optimizer="adamw",
                                        weight_decay=0.01),
    ],
    ids=lambda r: f"{r.name}-{r.optimizer}-{r.schedule}-bs{r.batch_size}",
)  # fmt: skip
def test_recipe_fit_equals_the_old_recipe_fit(source, recipe):
    data = _images(50)
    models = []
    for run in ("old", "new"):
        model = transfer_model(source, 5, seed=6)
        ref = parameter_state(model, "body.")
        obj = make_objective("l2sp", model, strength=0.3)
        if run == "old":
            _old_recipe_fit(recipe, model, data, objective=obj, seed=7, reference=ref)
        else:
            recipe.fit(model, data, objective=obj, seed=7, reference=ref)
        models.append(model)
    _assert_same_state(*models)
    assert _moved(models[0], transfer_model(source, 5, seed=6).state_dict())


def test_recipe_fit_on_a_model_without_a_body_head_split_equals_the_old_one():
    data = _images(30)
    models = []
    for run in ("old", "new"):
        torch.manual_seed(0)
        model = SmallCNN(num_classes=5, width=4)
        recipe = get_recipe("scratch").replace(min_steps=3, max_steps=3)
        if run == "old":
            _old_recipe_fit(recipe, model, data, seed=1)
        else:
            recipe.fit(model, data, seed=1)
        models.append(model)
    _assert_same_state(*models)


@pytest.mark.parametrize("method", ["none", "mmd", "coral", "dann"])
def test_adapt_preset_equals_the_old_adapt(method):
    g = torch.Generator().manual_seed(0)
    y = torch.randint(3, (48,), generator=g)
    x = torch.rand(48, 1, 8, 8, generator=g)
    target = torch.rand(40, 1, 8, 8, generator=g)
    models = []
    for run in ("old", "new"):
        torch.manual_seed(1)
        body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU())
        model = SplitModel(body, nn.Linear(16, 3))
        kw = {"method": method, "strength": 0.5, "steps": 6, "batch_size": 16, "seed": 2}
        (_old_adapt if run == "old" else adapt)(model, (x, y), target, **kw)
        models.append(model)
    _assert_same_state(*models)


@pytest.mark.parametrize("loss", ["cross-entropy", "ArcFace", "triplet"])
def test_train_embedding_equals_the_old_one(loss):
    g = torch.Generator().manual_seed(0)
    feats, labels = torch.randn(60, 12, generator=g), torch.arange(60) % 6 + 10
    recipe = get_recipe("fine_tune").replace(min_steps=6, max_steps=6, batch_size=16)
    new = train_embedding(feats, labels, loss, embed_dim=8, margin=0.2, recipe=recipe, seed=3)
    old = _old_train_embedding(feats, labels, loss, embed_dim=8, margin=0.2, recipe=recipe, seed=3)
    _assert_same_state(new, old)


@pytest.mark.parametrize("method", ["linear_probe", "l2sp", "lwf"])
def test_resumable_runs_equal_notebook_10s_old_run(source, method):
    """Notebook 10's ``Run`` now keeps a ``recipe.trainer``; the segments give the weights
    the old hand-kept optimiser and per-segment ``fine_tune`` gave."""
    data = _images(25)
    models = []
    for run in ("old", "new"):
        model = transfer_model(source, 5, seed=8)
        if method == "linear_probe":
            recipe, obj = get_recipe("linear_probe"), None
        else:
            recipe = get_recipe("fine_tune")
            obj = make_objective(method, model, source=source, strength=0.1)
        if run == "old":
            r = _OldRun(model, obj, recipe, data, seed=9)
            for total in (2, 5, 9):
                r.advance(total)
        else:
            trainer, done = recipe.trainer(model, objective=obj, seed=9), 0
            for total in (2, 5, 9):
                trainer.fit(data, steps=total - done)
                done = total
            assert trainer.step == 9
        models.append(model)
    _assert_same_state(*models)


# ====================================================================== the trainer's own promises


class _Dropout(nn.Module):
    """A network whose every step draws random numbers (dropout): resuming must continue
    the random stream, not restart it."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.Dropout(0.5), nn.Linear(12, 3))

    def forward(self, x):
        return self.net(x)


def _blobs(n=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    return torch.randn(n, 1, 4, 4, generator=g) + y.view(-1, 1, 1, 1).float(), y


def test_resumed_run_equals_one_run_with_minibatches_and_dropout():
    data = _blobs()
    torch.manual_seed(0)
    a, b = _Dropout(), _Dropout()
    b.load_state_dict(a.state_dict())
    ta = Trainer(a, batch_size=16, seed=4, progress=False)
    tb = Trainer(b, batch_size=16, seed=4, progress=False)
    ta.fit(data, epochs=2)
    outside = torch.rand(3)  # the caller's stream between the segments: not the trainer's
    ta.fit(data, epochs=3)
    tb.fit(data, epochs=5)
    _assert_same_state(a, b)
    assert ta.step == tb.step == 5 * 4 and len(ta.history) == len(tb.history) == 5
    assert ta.history["train/total"] == tb.history["train/total"]
    # and the caller's global stream is left as it was
    fresh = _Dropout()
    torch.manual_seed(1)
    x1 = torch.rand(3)
    torch.manual_seed(1)
    Trainer(fresh, batch_size=16, seed=4, progress=False).fit(data, epochs=1)
    assert torch.equal(torch.rand(3), x1)
    assert outside.shape == (3,)


def test_a_restart_without_the_trainer_differs_so_the_resume_test_can_fail():
    """Two fresh runs of 2 + 3 passes (a new trainer per segment, as before) do not equal 5
    passes with minibatches and dropout: the equality above is not vacuous."""
    data = _blobs()
    torch.manual_seed(0)
    a, b = _Dropout(), _Dropout()
    b.load_state_dict(a.state_dict())
    opt = torch.optim.Adam(a.parameters(), lr=1e-3)
    Trainer(a, optimizer=opt, batch_size=16, seed=4, progress=False).fit(data, epochs=2)
    Trainer(a, optimizer=opt, batch_size=16, seed=4, progress=False).fit(data, epochs=3)
    Trainer(b, batch_size=16, seed=4, progress=False).fit(data, epochs=5)
    assert any(not torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_state_dict_resumes_in_a_new_trainer():
    data = _blobs()
    torch.manual_seed(0)
    a = _Dropout()
    b = copy.deepcopy(a)
    ta = Trainer(a, batch_size=16, seed=2, progress=False)
    ta.fit(data, epochs=2)
    saved = copy.deepcopy(ta.state_dict())
    ta.fit(data, epochs=2)
    tb = Trainer(b, batch_size=16, seed=2, progress=False)
    tb.load_state_dict(saved)
    tb.fit(data, epochs=2)
    _assert_same_state(a, b)
    assert ta.history["train/total"] == tb.history["train/total"]
    with pytest.raises(ValueError, match="missing"):
        tb.load_state_dict({"model": a.state_dict()})


def test_early_stopping_stops_and_restores_the_best_epoch():
    data, val = _blobs(60), _blobs(30, seed=1)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))

    class Worse(Callback):  # from epoch 3 on, wreck the weights: validation gets worse
        def on_epoch_start(self, trainer):
            if trainer.epoch >= 3:
                with torch.no_grad():
                    for p in trainer.model.parameters():
                        p.add_(torch.randn_like(p) * 5)

    stop = EarlyStopping("val/loss", mode="min", patience=2)
    trainer = Trainer(model, lr=0.05, batch_size=60, seed=0, callbacks=[Worse(), stop],
                      progress=False)  # fmt: skip
    hist = trainer.fit(data, epochs=20, val_data=val)
    assert len(hist) < 20  # stopped early
    assert len(hist) == stop.best_epoch + stop.patience
    assert stop.best == min(hist["val/loss"])
    assert evaluate(model, val)["loss"] == pytest.approx(stop.best, rel=1e-6)  # best restored


def test_callbacks_run_in_order_at_each_event():
    calls = []

    class Log(Callback):
        def __init__(self, tag):
            self.tag = tag

        def on_fit_start(self, t):
            calls.append((self.tag, "fit_start"))

        def on_epoch_start(self, t):
            assert t.model.training
            calls.append((self.tag, "epoch_start", t.epoch))

        def on_step_end(self, t):
            calls.append((self.tag, "step", t.step))

        def on_epoch_end(self, t, record):
            assert "train/total" in record
            calls.append((self.tag, "epoch_end", t.epoch))

        def on_fit_end(self, t):
            calls.append((self.tag, "fit_end"))

    data = _blobs(20)
    Trainer(nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), batch_size=10, seed=0,
            callbacks=[Log("a"), Log("b")], progress=False).fit(data, epochs=1)  # fmt: skip
    assert calls == [
        ("a", "fit_start"), ("b", "fit_start"),
        ("a", "epoch_start", 1), ("b", "epoch_start", 1),
        ("a", "step", 1), ("b", "step", 1), ("a", "step", 2), ("b", "step", 2),
        ("a", "epoch_end", 1), ("b", "epoch_end", 1),
        ("a", "fit_end"), ("b", "fit_end"),
    ]  # fmt: skip


def test_batchnorm_eval_keeps_the_stored_statistics(source):
    model = transfer_model(source, 5, seed=0)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    Trainer(model, batch_size=64, batchnorm="eval", seed=0, progress=False).fit(
        _images(20), epochs=3
    )
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    Trainer(model, batch_size=64, batchnorm="train", seed=0, progress=False).fit(
        _images(20), epochs=1
    )
    assert any(not torch.equal(model.state_dict()[k], v) for k, v in stats.items())


def test_every_loss_term_is_logged(source):
    model = transfer_model(source, 5, seed=0)
    obj = make_objective("l2sp", model, strength=1.0)
    hist = Trainer(model, obj, batch_size=64, seed=0, progress=False).fit(_images(20), steps=3)
    assert {"train/total", "train/task", "train/l2sp"} <= set(hist.keys())
    for a, b, c in zip(hist["train/total"], hist["train/task"], hist["train/l2sp"], strict=True):
        assert a == pytest.approx(b + c, rel=1e-5)


# ====================================================================== one grouping rule


def test_param_groups_one_rule(source):
    model = transfer_model(source, 5, seed=0)
    groups = param_groups(model, {"body": 1e-3, "body.0.block3": 5e-3, "head": 1e-2})
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"body": 1e-3, "body.0.block3": 5e-3, "head": 1e-2}
    named = {id(p): n for n, p in model.named_parameters()}
    for g in groups:  # the longest prefix wins
        for p in g["params"]:
            n = named[id(p)]
            assert n.startswith(g["name"] + ".")
            if g["name"] == "body":
                assert not n.startswith("body.0.block3.")
    # a parameter under no prefix: the default rate, else an error naming it
    with_default = param_groups(model, {"head": 1e-2}, default=1e-4)
    assert [(g["name"], g["lr"]) for g in with_default] == [("default", 1e-4), ("head", 1e-2)]
    with pytest.raises(ValueError, match="body.*matches no prefix"):
        param_groups(model, {"head": 1e-2})
    with pytest.raises(ValueError, match="Unknown module prefix"):
        param_groups(model, {"bod": 1e-3, "head": 1e-2}, default=1e-3)
    # the optimiser builder and the recipes use the same rule
    opt = make_optimizer("adam", model, {"head": 1e-2}, default=1e-4)
    assert [(g["name"], g["lr"]) for g in opt.param_groups] == [("default", 1e-4), ("head", 1e-2)]
    with pytest.raises(ValueError, match="matches no prefix"):
        make_optimizer("adam", model, {"head": 1e-2})
    r = get_recipe("fine_tune")
    assert [(g["name"], g["lr"]) for g in r.make_optimizer(model).param_groups] == [
        ("body", r.lr_body), ("head", r.lr_head)]  # fmt: skip


# ====================================================================== bad input, refused before any work

_NO_GPU = not torch.cuda.is_available()


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


def _good():
    return _blobs(20)


# (case, what is called, exception, message pattern). Each verdict: refused with the kit's
# own message naming the argument, and the model's weights untouched.
BAD_INPUTS = [
    ("float labels, default objective",
     lambda m: fit(m, (_good()[0], _good()[1].float()), epochs=1, progress=False),
     ValueError, r"train_data has torch.float32 targets.*integer class labels"),
    ("float labels, fine_tune's default objective",
     lambda m: fine_tune(m, (_good()[0], _good()[1].float()), steps=1),
     ValueError, r"data has torch.float32 targets.*integer class labels"),
    ("float64 images for a float32 network",
     lambda m: fit(m, (_good()[0].double(), _good()[1]), epochs=1, progress=False),
     ValueError, r"train_data has torch.float64 inputs but the model's parameters are torch.float32"),
    ("float64 validation images",
     lambda m: fit(m, _good(), val_data=(_good()[0].double(), _good()[1]), epochs=1, progress=False),
     ValueError, r"val_data has torch.float64 inputs"),
    ("device='cuda' without a GPU",
     lambda m: fit(m, _good(), epochs=1, device="cuda", progress=False),
     RuntimeError, r"device='cuda' requested but no CUDA GPU is visible"),
    ("unknown device name",
     lambda m: Trainer(m, device="gpu"),
     ValueError, r"Unknown device 'gpu'"),
    ("model is not a Module",
     lambda m: Trainer("resnet"),
     TypeError, r"model must be a torch.nn.Module, got str"),
    ("objective not callable",
     lambda m: Trainer(m, "cross-entropy"),
     TypeError, r"objective must be callable"),
    ("optimizer not an Optimizer",
     lambda m: Trainer(m, optimizer="adam"),
     TypeError, r"optimizer must be a torch.optim.Optimizer, got str"),
    ("a callback that is a plain function",
     lambda m: Trainer(m, callbacks=[print]),
     TypeError, r"callbacks\[0\] must be a tlhelpers.training.Callback"),
    ("unknown BatchNorm mode",
     lambda m: Trainer(m, batchnorm="frozen"),
     ValueError, r"batchnorm.*'frozen'.*'train', 'eval'"),
    ("lr not positive",
     lambda m: Trainer(m, lr=0.0),
     ValueError, r"lr"),
    ("batch_size zero",
     lambda m: Trainer(m, batch_size=0),
     ValueError, r"batch_size"),
    ("batch_size a float",
     lambda m: Trainer(m, batch_size=32.0),
     (TypeError, ValueError), r"batch_size"),
    ("negative seed",
     lambda m: Trainer(m, seed=-1),
     ValueError, r"seed"),
    ("epochs and steps both",
     lambda m: Trainer(m, progress=False).fit(_good(), epochs=1, steps=1),
     ValueError, r"exactly one of epochs and steps"),
    ("neither epochs nor steps",
     lambda m: Trainer(m, progress=False).fit(_good()),
     ValueError, r"exactly one of epochs and steps"),
    ("epochs zero",
     lambda m: fit(m, _good(), epochs=0, progress=False),
     ValueError, r"epochs"),
    ("steps zero",
     lambda m: Trainer(m, progress=False).fit(_good(), steps=0),
     ValueError, r"steps"),
    ("early stopping on validation without val_data",
     lambda m: Trainer(m, callbacks=[EarlyStopping()], progress=False).fit(_good(), epochs=2),
     ValueError, r"EarlyStopping monitors 'val/accuracy', which needs val_data"),
    ("early stopping: bad mode",
     lambda m: EarlyStopping(mode="up"),
     ValueError, r"mode"),
    ("empty data",
     lambda m: fit(m, (torch.zeros(0, 1, 4, 4), torch.zeros(0, dtype=torch.long)), epochs=1,
                   progress=False),
     ValueError, r"train_data is empty"),
    ("inputs and targets of different lengths",
     lambda m: fit(m, (_good()[0], _good()[1][:-1]), epochs=1, progress=False),
     ValueError, r"train_data has 20 inputs but 19 targets"),
    ("NaN inputs",
     lambda m: fit(m, (_good()[0].index_fill(0, torch.tensor([3]), float("nan")), _good()[1]),
                   epochs=1, progress=False),
     ValueError, r"train_data has NaN or inf inputs.*first at item 3"),
    ("negative labels",
     lambda m: fit(m, (_good()[0], _good()[1] - 1), epochs=1, progress=False),
     ValueError, r"train_data has label -1"),
    ("every parameter frozen",
     lambda m: Trainer(m.requires_grad_(False)),
     ValueError, r"no trainable parameters"),
    ("a schedule without steps",
     lambda m: get_recipe("fine_tune").replace(schedule="one_cycle").trainer(
         SplitModel(m[0], m[1])),
     ValueError, r"schedule='one_cycle'.*pass steps="),
    ("OnStep of a non-callable",
     lambda m: OnStep(3),
     TypeError, r"OnStep needs a callable"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "call", "exc", "match"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS]
)
def test_bad_input_is_refused_by_name_before_any_work(case, call, exc, match):
    if "cuda" in case and not _NO_GPU:
        pytest.skip("a GPU is visible: device='cuda' is valid here")
    model = _net()
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(exc, match=match):
        call(model)
    assert not _moved(model, before), f"{case}: the weights changed before the error"


def test_float_labels_are_fine_with_an_objective_that_wants_them():
    """Not a blanket ban: a regression objective takes float targets."""
    x, y = _good()
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 1))
    hist = fit(model, (x, y.float()), epochs=2, progress=False, seed=0,
               objective=lambda m, xb, yb: F.mse_loss(m(xb).squeeze(1), yb))  # fmt: skip
    assert len(hist) == 2


def test_time_is_logged_cumulatively_across_calls():
    trainer = Trainer(_net(), batch_size=20, seed=0, progress=False)
    trainer.fit(_good(), epochs=1)
    trainer.fit(_good(), epochs=1)
    t = trainer.history["time"]
    assert len(t) == 2 and 0 < t[0] < t[1]
