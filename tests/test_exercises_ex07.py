"""tlhelpers.exercises.ex07 (evaluation): every checker passes its solution, fails typical wrong
answers with the intended message, and checks against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_support import solution as _solution
from sklearn.calibration import calibration_curve
from sklearn.metrics import roc_curve as sk_roc_curve

from tlhelpers.exercises import FAILED, PASSED, ex07, exercises_of
from tlhelpers.metrics import expected_calibration_error, tar_at_far

EXERCISES = [ex07.ece, ex07.tar_far, ex07.winners_curse, ex07.challenge]
FAST = [e for e in EXERCISES if e is not ex07.challenge]


def test_four_exercises_with_hints_estimates_and_ids():
    exercises = exercises_of(ex07)
    assert [e.id for e in exercises] == [
        "ex07_ece",
        "ex07_tar_far",
        "ex07_winners_curse",
        "ex07_challenge",
    ]
    for name, e in zip(["ece", "tar_far", "winners_curse", "challenge"], exercises, strict=True):
        assert e.id == f"ex07_{name}" and len(e.hints) >= 2 and 1 <= e.minutes <= 60


# ---------------------------------------------------------------- the references agree with scikit-learn


def _sk_ece(p, y, n_bins):
    conf, correct = p.max(1), (p.argmax(1) == y)
    edges = np.linspace(0, 1, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], conf)
    acc, mean_conf = calibration_curve(correct, conf, n_bins=n_bins, strategy="uniform")
    weights = np.bincount(ids, minlength=n_bins)[np.bincount(ids, minlength=n_bins) > 0] / len(y)
    return float(np.sum(weights * np.abs(acc - mean_conf)))


@pytest.mark.parametrize(
    ("p", "y", "n_bins"),
    [
        (ex07.EDGE_PROBS, ex07.EDGE_TARGETS, 8),
        (ex07.EDGE_PROBS, ex07.EDGE_TARGETS, 4),
        (*ex07._random_probs(0, 200, 5), 15),
        (*ex07._random_probs(2, 100, 10), 5),
    ],
)
def test_ece_reference_is_scikit_learns_binning_and_the_variant_without_mistake(p, y, n_bins):
    want = expected_calibration_error(p, y, n_bins)
    assert want == pytest.approx(_sk_ece(p, y, n_bins), abs=1e-12)
    assert want == pytest.approx(ex07.ece_variant(p, y, n_bins, "right"), abs=1e-12)


def test_edge_case_tells_left_from_right_closed_bins():
    p, y = ex07.EDGE_PROBS, ex07.EDGE_TARGETS
    assert (
        abs(ex07.ece_variant(p, y, 8, "left_closed") - expected_calibration_error(p, y, 8)) > 0.01
    )


def _sk_tar(scores, same, far):
    fpr, tpr, _ = sk_roc_curve(same, scores, drop_intermediate=False)
    return float(tpr[fpr <= far].max())


@pytest.mark.parametrize(
    ("scores", "same", "far"),
    [
        (ex07.TIE_SCORES, ex07.TIE_SAME, 1 / 6),
        (ex07.TIE_SCORES, ex07.TIE_SAME, 1 / 3),
        (ex07.TIE_SCORES, ex07.TIE_SAME, 0.5),
        (*ex07._pairs(0, 300, 2000), 1e-2),
        (*ex07._pairs(1, 200, 1000, decimals=1), 0.05),
        (*ex07._pairs(2, 100, 500), 1e-3),
    ],
)
def test_tar_reference_is_scikit_learns_roc_and_the_variant_without_mistake(scores, same, far):
    want = tar_at_far(scores, same, far)
    assert want == pytest.approx(_sk_tar(scores, same, far), abs=1e-12)
    assert want == pytest.approx(ex07.tar_variant(scores, same, far, "right"), abs=1e-12)


def test_tie_cases_tell_a_split_tie_apart():
    for far in (1 / 6, 1 / 3, 0.5):
        split = ex07.tar_variant(ex07.TIE_SCORES, ex07.TIE_SAME, far, "split_ties")
        assert split > tar_at_far(ex07.TIE_SCORES, ex07.TIE_SAME, far)


def test_the_curse_is_positive_when_every_configuration_is_equally_good():
    fn = _solution(ex07.winners_curse)
    assert fn(ex07._correct_matrix(0, 40, 300), 50) > 0.05


# ---------------------------------------------------------------- typical wrong answers: ECE


def _ece_with(mode):
    def ece(probs, targets, n_bins=15):
        return ex07.ece_variant(probs.numpy(), targets.numpy(), n_bins, mode)

    ece.__name__ = f"ece_{mode}"
    return ece


def ece_per_bin(probs, targets, n_bins=15):
    return torch.zeros(n_bins)


def ece_nan_for_empty_bins(probs, targets, n_bins=15):
    conf, pred = probs.max(1)
    bins = torch.clamp((conf * n_bins).ceil().long() - 1, 0, n_bins - 1)
    gaps = [
        ((pred == targets)[bins == b].double().mean() - conf[bins == b].mean()).abs()
        for b in range(n_bins)
    ]
    return torch.stack(gaps).mean()


def ece_in_place(probs, targets, n_bins=15):
    out = _solution(ex07.ece)(probs, targets, n_bins)
    probs.mul_(0.5)
    return out


# ---------------------------------------------------------------- TAR at a FAR


def _tar_with(mode):
    def tar(scores, same, far):
        return ex07.tar_variant(scores, same, far, mode)

    tar.__name__ = f"tar_{mode}"
    return tar


def tar_string(scores, same, far):
    return "0.75"


# ---------------------------------------------------------------- the winner's curse


def _parts(correct, n_peek):
    return correct[:, :n_peek].mean(1), correct[:, n_peek:].mean(1)


def curse_sign(correct, n_peek):
    return -_solution(ex07.winners_curse)(correct, n_peek)


def curse_reported_only(correct, n_peek):
    return float(_parts(correct, n_peek)[0].max())


def curse_all_configs(correct, n_peek):
    peek, fresh = _parts(correct, n_peek)
    return float(np.mean(peek - fresh))


def curse_chosen_on_fresh(correct, n_peek):
    peek, fresh = _parts(correct, n_peek)
    i = int(np.argmax(fresh))
    return float(peek[i] - fresh[i])


def curse_chosen_on_all(correct, n_peek):
    peek, fresh = _parts(correct, n_peek)
    i = int(np.argmax(correct.mean(1)))
    return float(peek[i] - fresh[i])


def curse_index(correct, n_peek):
    return int(np.argmax(_parts(correct, n_peek)[0]))


def curse_list(correct, n_peek):
    peek, fresh = _parts(correct, n_peek)
    return list(peek - fresh)


WRONG = [
    (ex07.ece, _ece_with("left_closed"), "the bins are right-closed"),
    (ex07.ece, _ece_with("unweighted"), "without weighting them"),
    (ex07.ece, _ece_with("all_bins"), "divided the gaps by the number of bins"),
    (ex07.ece, _ece_with("signed"), "must be absolute values"),
    (ex07.ece, _ece_with("true_class"), "not the probability of the true class"),
    (ex07.ece, _ece_with("equal_mass"), "equal-mass"),
    (ex07.ece, ece_per_bin, "should be one number, got a tensor of shape (8,)"),
    (ex07.ece, ece_nan_for_empty_bins, "is nan"),
    (ex07.ece, ece_in_place, "changed `probs` in place"),
    (ex07.tar_far, _tar_with("split_ties"), "must be accepted or rejected together"),
    (ex07.tar_far, _tar_with("far_all"), "the FAR is a fraction of the impostor pairs only"),
    (ex07.tar_far, _tar_with("tar_all"), "the TAR is a fraction of the genuine pairs only"),
    (ex07.tar_far, _tar_with("far_strict"), "FAR <= far"),
    (ex07.tar_far, _tar_with("threshold"), "you returned the threshold"),
    (ex07.tar_far, _tar_with("interpolated"), "you interpolated the ROC curve"),
    (ex07.tar_far, tar_string, "should be a number, got a str"),
    (ex07.winners_curse, curse_sign, "the sign is reversed"),
    (ex07.winners_curse, curse_reported_only, "that is the reported accuracy alone"),
    (ex07.winners_curse, curse_all_configs, "you averaged over all configurations"),
    (ex07.winners_curse, curse_chosen_on_fresh, "you chose the configuration on the fresh images"),
    (ex07.winners_curse, curse_chosen_on_all, "you chose on all the images"),
    (ex07.winners_curse, curse_index, "you returned the winner's index"),
    (ex07.winners_curse, curse_list, "should be a number, got a list"),
]


@pytest.mark.parametrize(("ex", "fn", "message"), WRONG, ids=[w[1].__name__ for w in WRONG])
def test_typical_wrong_answer_fails_with_its_message(ex, fn, message):
    r = ex.run_check(fn)
    assert r.status == FAILED, r
    assert message in r.message, r.message
    assert "Traceback" not in r.message


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_a_crash_names_the_line_not_a_traceback(ex):
    def crashes(*args):
        return args[99]

    r = ex.run_check(crashes)
    assert r.status == FAILED and "raised IndexError" in r.message and "args[99]" in r.message


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_none_gets_a_message(ex):
    r = ex.run_check(lambda *a: None)
    assert r.status == FAILED and "returned None" in r.message


# ---------------------------------------------------------------- the challenge (fine-tunes a network once: slow)


def calibrate_raw(val_logits, val_targets):  # the baseline itself: must not pass
    return lambda z: F.softmax(z, dim=1)


def calibrate_uniform(val_logits, val_targets):
    return lambda z: torch.full_like(z, 1 / z.shape[1])


def calibrate_logits(val_logits, val_targets):
    return lambda z: z


def calibrate_transposed(val_logits, val_targets):
    return lambda z: F.softmax(z, dim=1).T


def calibrate_crashes(val_logits, val_targets):
    return lambda z: z.reshape(7, -1)


def calibrate_sharpens(val_logits, val_targets):
    return lambda z: F.softmax(3 * z, dim=1)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (calibrate_raw, "Lower the ECE by at least 0.03"),
        (calibrate_sharpens, "Lower the ECE by at least 0.03"),
        (calibrate_uniform, "must not cost accuracy"),
        (calibrate_logits, "should give probabilities"),
        (calibrate_transposed, "has shape (5, 500)"),
        (calibrate_crashes, "raised RuntimeError"),
        (lambda v, t: 1.5, "should return a function (logits -> probabilities), got a float"),
        (lambda v, t: None, "returned None"),
    ],
    ids=["raw", "sharpens", "uniform", "logits", "transposed", "crashes", "float", "none"],
)
def test_challenge_wrong_answers(fn, message, one_thread):
    r = ex07.challenge.run_check(fn)
    assert r.status == FAILED and message in r.message, r.message
    assert "Traceback" not in r.message


@pytest.mark.slow
@pytest.mark.parametrize("hidden", [False, True])
def test_challenge_solution_passes(hidden, one_thread):
    r = ex07.challenge.run_check(_solution(ex07.challenge), hidden=hidden)
    assert r.status == PASSED, r.message
    assert ("hidden test split" in r.message) == hidden


@pytest.mark.slow
def test_challenge_data_are_copies_and_temperature_matches_the_kit(one_thread):
    from tlhelpers.calibration import fit_temperature

    v, t = ex07.challenge_data()
    v.mul_(0)
    v2, t2 = ex07.challenge_data()
    assert v2.abs().sum() > 0
    assert fit_temperature(v2, t2) > 1  # over-confident: the challenge has something to fix


@pytest.mark.parametrize("ex", FAST, ids=[e.id for e in FAST])
def test_a_loop_is_stopped_by_the_time_limit(ex, monkeypatch):
    from tlhelpers.exercises import _core

    monkeypatch.setattr(_core, "LIMIT_S", 0.3)

    def loops(*args):
        while True:
            try:
                pass
            except Exception:  # a broad except must not swallow the alarm
                pass

    r = ex.run_check(loops)
    assert r.status == FAILED and "did not finish within 0.3 s" in r.message, r.message


@pytest.mark.slow
def test_challenge_probabilities_on_another_device_are_named(one_thread):
    r = ex07.challenge.run_check(lambda v, t: lambda z: torch.zeros(z.shape, device="meta"))
    assert r.status == FAILED and "is on device meta" in r.message, r.message
