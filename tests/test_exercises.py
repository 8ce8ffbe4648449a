"""tlhelpers.exercises: every checker passes its solution and fails typical wrong answers with the intended message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_support import solution as _solution  # noqa: E402

from tlhelpers.exercises import (
    CHAPTERS,
    FAILED,
    GRADE_FILE_ENV,
    NBGRADER_ENV,
    NOT_ATTEMPTED,
    PASSED,
    STRICT_ENV,
    _core,
    all_exercises,
    ex01,
    ex02,
    ex03,
    ex04,
)
from tlhelpers.losses import l2sp
from tlhelpers.models import scratch_model, transfer_model
from tlhelpers.recipes import get_recipe

EXERCISES = all_exercises()
#: Challenges train a model (slow tests of their own); everything else is fast.
FAST = [k for k in EXERCISES if not k.endswith("_challenge")]


def test_every_chapter_has_at_least_three_exercises_with_hints_and_estimates():
    assert len(CHAPTERS) >= 5, CHAPTERS
    for chapter in CHAPTERS:
        mine = [e for k, e in EXERCISES.items() if k.startswith(chapter + "_")]
        assert len(mine) >= 3, chapter
        for e in mine:
            assert len(e.hints) >= 2 and 1 <= e.minutes <= 60


@pytest.mark.parametrize("key", FAST)
@pytest.mark.parametrize("hidden", [False, True])
def test_solution_passes(key, hidden, one_thread):
    ex = EXERCISES[key]
    r = ex.run_check(_solution(ex), hidden=hidden)
    assert r.status == PASSED, r.message


@pytest.mark.slow
def test_challenge_solution_passes_and_hidden_reuses_the_trained_model(one_thread):
    ex = ex04.challenge
    fn = _solution(ex)
    assert ex.run_check(fn).status == PASSED
    r = ex.run_check(fn, hidden=True)
    assert r.status == PASSED and "hidden test split" in r.message


@pytest.mark.parametrize("key", sorted(EXERCISES))
def test_stub_is_not_attempted(key):
    def stub(*args, **kwargs):
        raise NotImplementedError()

    r = EXERCISES[key].run_check(stub)
    assert r.status == NOT_ATTEMPTED and "NotImplementedError" in r.message


# ---------------------------------------------------------------- typical wrong answers


def _w(model):
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2]


def l2sp_plain_l2(model, s, a, b):
    return sum(0.5 * (a if n in s else b) * p.pow(2).sum() for n, p in _w(model))


def l2sp_no_half(model, s, a, b):
    return 2 * l2sp(model, s, a, b)


def l2sp_detached(model, s, a, b):
    return l2sp(model, s, a, b).detach()


def l2sp_item(model, s, a, b):
    return l2sp(model, s, a, b).item()


def l2sp_with_frozen(model, s, a, b):
    total = torch.zeros(())
    for n, p in model.named_parameters():
        if p.ndim >= 2:
            total = total + 0.5 * (a * (p - s[n]).pow(2).sum() if n in s else b * p.pow(2).sum())
    return total


def l2sp_no_head(model, s, a, b):
    return sum(0.5 * a * (p - s[n]).pow(2).sum() for n, p in _w(model) if n in s)


def l2sp_vector(model, s, a, b):
    return torch.stack([0.5 * a * (p - s[n]).pow(2).sum() for n, p in _w(model) if n in s])


def l2sp_meta(model, s, a, b):
    return torch.zeros((), device="meta")


def l2sp_changes_source(model, s, a, b):
    out = l2sp(model, s, a, b)
    next(iter(s.values())).add_(1.0)
    return out


def bss_largest(f, k):
    return torch.linalg.svdvals(f)[:k].pow(2).sum()


def bss_not_squared(f, k):
    return torch.linalg.svdvals(f)[-k:].sum()


def bss_numpy(f, k):
    return np.linalg.svd(f.detach().numpy(), compute_uv=False)[-k:] ** 2


def step_no_zero_grad(model, opt, x, y, s, a, b):
    loss = F.cross_entropy(model(x), y) + l2sp(model, s, a, b)
    loss.backward()
    opt.step()
    return loss.item()


def step_no_penalty(model, opt, x, y, s, a, b):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def step_no_step(model, opt, x, y, s, a, b):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y) + l2sp(model, s, a, b)
    loss.backward()
    return loss.item()


def step_returns_tensor(model, opt, x, y, s, a, b):
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y) + l2sp(model, s, a, b)
    loss.backward()
    opt.step()
    return loss


def tables_not_normalised(theta, labels):
    joint = np.stack([theta[labels == y].sum(0) for y in range(labels.max() + 1)])
    return joint, joint / joint.sum(0, keepdims=True)


def tables_wrong_axis(theta, labels):
    joint = np.stack([theta[labels == y].sum(0) for y in range(labels.max() + 1)]) / len(labels)
    return joint, joint / joint.sum(1, keepdims=True)


def tables_transposed(theta, labels):
    j, c = _solution(ex02.leep_table)(theta, labels)
    return j.T, c.T


def tables_list(theta, labels):
    return [1, 2]


def tables_string(theta, labels):
    joint, _ = _solution(ex02.leep_table)(theta, labels)
    return joint.tolist(), "P(y|z)"


def _lik(theta, labels):
    _, cond = _solution(ex02.leep_table)(theta, labels)
    return (theta * cond[labels]).sum(1)


def leep_sum(theta, labels):
    return float(np.log(_lik(theta, labels)).sum())


def leep_log2(theta, labels):
    return float(np.log2(_lik(theta, labels)).mean())


def leep_no_log(theta, labels):
    return float(_lik(theta, labels).mean())


def leep_joint(theta, labels):
    joint, _ = _solution(ex02.leep_table)(theta, labels)
    return float(np.mean(np.log((theta * joint[labels]).sum(1))))


def h_matrix(features, labels):
    means = np.stack([features[labels == y].mean(0) for y in labels])
    return np.linalg.pinv(np.cov(features, rowvar=False)) @ np.cov(means, rowvar=False)


def h_unweighted(features, labels):
    mus = np.stack([features[labels == y].mean(0) for y in range(labels.max() + 1)])
    return float(
        np.trace(np.linalg.pinv(np.cov(features, rowvar=False)) @ np.cov(mus, rowvar=False))
    )


def stats_per_image(images):
    return images.mean(dim=(1, 2, 3)), images.std(dim=(1, 2, 3))


def stats_variance(images):
    return images.mean(dim=(0, 2, 3)), images.var(dim=(0, 2, 3))


def norm_bad_broadcast(images, mean, std):
    return (images - torch.tensor(mean)) / torch.tensor(std)


def norm_no_std(images, mean, std):
    return images - torch.tensor(mean).view(1, -1, 1, 1)


def norm_in_place(images, mean, std):
    images.sub_(torch.tensor(mean).view(1, -1, 1, 1)).div_(torch.tensor(std).view(1, -1, 1, 1))
    return images


def mmd_once(x, y, sigma):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))

    return k(x, x).mean() + k(y, y).mean() - k(x, y).mean()


def mmd_no_two(x, y, sigma):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / sigma**2)

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def mmd_unsquared(x, y, sigma):
    def k(a, b):
        return torch.exp(-torch.cdist(a, b) / (2 * sigma**2))

    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def freeze_nothing(model, k):
    return None


def freeze_head_too(model, k):
    _solution(ex04.freeze)(model, k)
    model.head.requires_grad_(False)


def freeze_grad_none(model, k):  # looks frozen by hook, but still requires grad
    for p in model.body.parameters():
        p.register_hook(lambda g: g)


def freeze_off_by_one(model, k):
    _solution(ex04.freeze)(model, max(k - 1, 0))


def distill_no_t2(s, t, T):
    return (
        (
            F.log_softmax(t.detach() / T, 1).exp()
            * (F.log_softmax(t.detach() / T, 1) - F.log_softmax(s / T, 1))
        )
        .sum(1)
        .mean()
    )


def distill_teacher_grad(s, t, T):
    log_s, log_t = F.log_softmax(s / T, 1), F.log_softmax(t / T, 1)
    return T**2 * (log_t.exp() * (log_t - log_s)).sum(1).mean()


def distill_reversed(s, t, T):
    return _solution(ex04.distill)(t.detach(), s, T)


def distill_sum(s, t, T):
    return _solution(ex04.distill)(s, t, T) * s.shape[0]


WRONG = [
    (ex03.l2sp, l2sp_plain_l2, "ignores the source weights"),
    (ex03.l2sp, l2sp_no_half, "twice the expected"),
    (ex03.l2sp, l2sp_detached, "no gradient"),
    (ex03.l2sp, l2sp_item, "did you call .item()"),
    (ex03.l2sp, l2sp_with_frozen, "frozen parameters"),
    (ex03.l2sp, l2sp_no_head, "beta/2 ||w_new||^2 is missing"),
    (ex03.l2sp, l2sp_vector, "should be one number"),
    (ex03.l2sp, l2sp_meta, "is on device meta"),
    (ex03.l2sp, l2sp_changes_source, "changed source_state"),
    (ex03.bss, bss_largest, "k largest"),
    (ex03.bss, bss_not_squared, "must be squared"),
    (ex03.bss, bss_numpy, "should be a torch.Tensor"),
    (ex03.train_step, step_no_zero_grad, "stale gradients"),
    (ex03.train_step, step_no_penalty, "ignored the L2-SP penalty"),
    (ex03.train_step, step_no_step, "weights did not change"),
    (ex03.train_step, step_returns_tensor, "as a Python float"),
    (ex02.leep_table, tables_not_normalised, "sums to 6, not 1"),
    (ex02.leep_table, tables_wrong_axis, "wrong axis"),
    (ex02.leep_table, tables_transposed, "has shape (2, 3)"),
    (ex02.leep_table, tables_list, "should return two tables"),
    (ex02.leep_table, tables_string, "should be a NumPy array, got a str"),
    (ex02.leep, leep_sum, "summed the log-likelihoods"),
    (ex02.leep, leep_log2, "not log2"),
    (ex02.leep, leep_no_log, "<= 0"),
    (ex02.leep, leep_joint, "not the joint"),
    (ex02.h_score, h_matrix, "is its trace"),
    (ex02.h_score, h_unweighted, "weighs each class mean by its count"),
    (ex01.stats, stats_per_image, "one value per channel"),
    (ex01.stats, stats_variance, "returned the variance"),
    (ex01.normalize, norm_bad_broadcast, "view them as (1, C, 1, 1)"),
    (ex01.normalize, norm_no_std, "did not divide by the std"),
    (ex01.normalize, norm_in_place, "changed its input in place"),
    (ex01.mmd, mmd_once, "cross term counts twice"),
    (ex01.mmd, mmd_no_two, "the 2 is missing"),
    (ex01.mmd, mmd_unsquared, "squared distances"),
    (ex04.freeze, freeze_nothing, "should be frozen"),
    (ex04.freeze, freeze_head_too, "the new head must always train"),
    (ex04.freeze, freeze_grad_none, "should be frozen"),
    (ex04.freeze, freeze_off_by_one, "is frozen but it is in the top"),
    (ex04.distill, distill_no_t2, "times too small"),
    (ex04.distill, distill_teacher_grad, "gradient reached the teacher"),
    (ex04.distill, distill_reversed, "wrong way round"),
    (ex04.distill, distill_sum, "summed over the batch"),
]


@pytest.mark.parametrize(("ex", "fn", "message"), WRONG, ids=[w[1].__name__ for w in WRONG])
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message, one_thread):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message


# ---------------------------------------------------------------- bad behaviour of the student's code


def test_an_exception_names_the_line_not_a_traceback():
    def crashes(features, k):
        x = features.shape[5]
        return x

    r = ex03.bss.run_check(crashes)
    assert r.status == FAILED
    assert (
        "raised IndexError" in r.message
        and "line" in r.message
        and "features.shape[5]" in r.message
    )


def test_a_loop_is_stopped_by_the_time_limit(monkeypatch):
    monkeypatch.setattr(_core, "LIMIT_S", 0.3)

    def loops(features, k):
        while True:
            try:
                pass
            except Exception:  # a student's broad except must not swallow the alarm
                pass

    r = ex03.bss.run_check(loops)
    assert r.status == FAILED and "did not finish within 0.3 s" in r.message


LOOPS = r"""
import json, sys, time
from tlhelpers.exercises import _core, ex03
_core.LIMIT_S = 0.3

def bare_except(features, k):  # swallows the alarm wherever it lands
    while True:
        try:
            [i * i for i in range(1000)]
        except:  # noqa: E722
            pass

def base_exception_continue(features, k):
    n = 0
    while True:
        try:
            n += sum([i for i in range(10000)])
        except BaseException:
            continue

def keeps_the_exception(features, k):  # holds a reference: no __del__ when swallowed
    kept = []
    while True:
        try:
            [i for i in range(100)]
        except BaseException as err:  # noqa: BLE001
            kept.append(err)

def swallowed_at_two_levels(features, k):
    def inner():
        while True:
            try:
                [i for i in range(100)]
            except:  # noqa: E722
                pass
    while True:
        try:
            inner()
        except:  # noqa: E722
            try:
                pass
            except:  # noqa: E722
                pass

def loops_in_its_handler(features, k):
    try:
        while True:
            pass
    except:  # noqa: E722
        while True:
            try:
                pass
            except:  # noqa: E722
                pass

def torch_in_a_loop(features, k):
    while True:
        try:
            features @ features.T
        except:  # noqa: E722
            pass

out = {}
for fn in (bare_except, base_exception_continue, keeps_the_exception, swallowed_at_two_levels,
           loops_in_its_handler, torch_in_a_loop):
    start = time.perf_counter()
    r = ex03.bss.run_check(fn)
    out[fn.__name__] = [r.status, r.message, time.perf_counter() - start]
solution = {}
exec(ex03.bss.solution_code, {"torch": __import__("torch")}, solution)
out["after"] = [ex03.bss.run_check(solution["bss_penalty"]).status, sys.gettrace() is None, 0]
print(json.dumps(out))
"""


def test_a_loop_that_swallows_the_alarm_is_stopped_whatever_it_catches(tmp_path):
    import subprocess
    import sys

    script = tmp_path / "loops.py"
    script.write_text(LOOPS)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out.pop("after") == [PASSED, True, 0]  # the next check runs untraced and passes
    for name, (status, message, seconds) in out.items():
        assert status == FAILED and "did not finish within 0.3 s" in message, (name, message)
        assert seconds < 10, (name, seconds)


def test_under_nbgrader_a_check_that_does_not_pass_raises(monkeypatch, capsys):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    monkeypatch.setattr(_core, "_NBGRADER_AT_IMPORT", "")

    def stub(*args):
        raise NotImplementedError()

    for mode in ("autograde", "validate"):  # what nbgrader's autograde and validate set
        monkeypatch.setenv(NBGRADER_ENV, mode)
        with pytest.raises(AssertionError, match="did not divide"):
            ex01.normalize.check(norm_no_std)
        with pytest.raises(AssertionError, match="Not attempted yet"):
            ex01.normalize.check(stub)
        assert ex01.normalize.check(_solution(ex01.normalize)).passed
    assert "Not yet" in capsys.readouterr().out  # the feedback is printed before the raise


def test_nbgrader_seen_at_import_survives_a_student_deleting_the_variable(monkeypatch):
    monkeypatch.delenv(STRICT_ENV, raising=False)
    monkeypatch.delenv(NBGRADER_ENV, raising=False)
    monkeypatch.setattr(_core, "_NBGRADER_AT_IMPORT", "autograde")
    with pytest.raises(AssertionError, match="did not divide"):
        ex01.normalize.check(norm_no_std)


def test_a_student_alone_gets_printed_feedback_and_no_exception(monkeypatch, capsys):
    for name in (STRICT_ENV, NBGRADER_ENV, GRADE_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_core, "_NBGRADER_AT_IMPORT", "")
    r = ex01.normalize.check(norm_no_std)
    assert r.status == FAILED and "did not divide" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [None, 3, "def f(): pass"])
def test_not_a_function(answer):
    r = ex01.mmd.run_check(answer)
    assert r.status == FAILED and "should be a function" in r.message


def test_wrong_return_type_is_named():
    r = ex01.mmd.run_check(lambda x, y, s: "0.5")
    assert r.status == FAILED and "should be a torch.Tensor, got a str" in r.message


def test_check_prints_records_and_strict_mode_raises(tmp_path, monkeypatch, capsys):
    record = tmp_path / "grades.jsonl"
    monkeypatch.setenv(GRADE_FILE_ENV, str(record))
    monkeypatch.delenv(STRICT_ENV, raising=False)
    r = ex01.normalize.check(norm_no_std)
    assert "Not yet" in capsys.readouterr().out and not r.passed
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(AssertionError, match="did not divide"):
        ex01.normalize.check(norm_no_std)
    assert ex01.normalize.check(_solution(ex01.normalize)).passed
    lines = [json.loads(x) for x in record.read_text().splitlines()]
    assert [x["status"] for x in lines] == [FAILED, FAILED, PASSED]
    assert all(x["exercise"] == "ex01_normalize" for x in lines)


def test_hints_and_solution_print(capsys):
    ex03.l2sp.hint()
    ex03.l2sp.hint(99)
    ex03.l2sp.solution()
    out = capsys.readouterr().out
    assert "Hint 1/3" in out and "only 3 hints" in out and "def l2sp_penalty" in out
    with pytest.raises(ValueError, match="level must be an integer >= 1, got 0"):
        ex03.l2sp.hint(0)


def challenge_scratch(train, source):  # exactly the baseline: must not pass

    model = scratch_model(5, seed=0)
    get_recipe("scratch").fit(model, train, seed=0)
    return model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda train, source: None, "returned None"),
        (lambda train, source: "model", "should return an nn.Module, got a str"),
        (lambda train, source: transfer_model(source, 10), "has shape (4, 10)"),
        (challenge_scratch, "the scratch baseline gets"),
    ],
    ids=["none", "str", "ten_classes", "scratch"],
)
def test_challenge_wrong_answers(fn, message, one_thread):
    r = ex04.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
