"""Reliability of the kit's newer parts: detection, calibration, domain shifts, the runner's
and the book's input files, few-shot draws, H-score, successive halving, an exercise check
and a paired comparison's sentence.

Each test reproduces a case that gave a silent wrong answer or an unclear error (a library's
message that names neither the argument nor what is allowed) and now gets the kit's
standard: refused at once naming the argument, the value and what is allowed, or the
correct answer. The battery at the end records further bad inputs and their verdicts.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tlhelpers import book, runner
from tlhelpers import sweep as sw
from tlhelpers.data import few_shot_indices, shift_images
from tlhelpers.detection import SlidingWindowDetector, box_iou, box_voting, nms
from tlhelpers.exercises import ex01
from tlhelpers.exercises._core import FAILED, PASSED
from tlhelpers.metrics import expected_calibration_error, reliability_bins
from tlhelpers.selection import exhaustive_search, successive_halving
from tlhelpers.stats import compare
from tlhelpers.transferability import h_score

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parent.parent

NOT_UTF8 = b'{"double": {"x": "\xff\xfe caf\xe9"}}'


# ------------------------------------------------------------------ detection


def _overlapping_boxes():
    """Box 0 overlaps box 1 (IoU 81/109 = 0.74); box 2 is apart."""
    return torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 10], [30, 30, 40, 40]])


def test_overlapping_boxes_overlap_as_the_case_needs():
    assert box_iou(_overlapping_boxes()[:1], _overlapping_boxes()[1:2]).item() == pytest.approx(
        81 / 109
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nms_refuses_non_finite_scores(bad):
    with pytest.raises(ValueError, match=r"scores.*(NaN|inf).*index 0"):
        nms(_overlapping_boxes(), [bad, 0.9, 0.8])


def test_nms_still_keeps_the_best_of_overlapping_boxes():
    assert nms(_overlapping_boxes(), [0.7, 0.9, 0.8]).tolist() == [1, 2]


def test_box_voting_refuses_nan_scores():
    with pytest.raises(ValueError, match=r"scores.*NaN"):
        box_voting(_overlapping_boxes(), [math.nan, 0.9, 0.8], [1, 2])


def _nan_score(crops: torch.Tensor) -> torch.Tensor:
    return torch.full((len(crops),), math.nan)


def test_sliding_window_detector_refuses_a_score_fn_returning_nan():
    det = SlidingWindowDetector(_nan_score, window=8, sizes=[16])
    image = np.zeros((32, 32), dtype=np.float32)
    with pytest.raises(ValueError, match=r"score_fn returned NaN or inf.*window"):
        det.detect(image)


def test_sliding_window_detector_names_the_first_nan_window():
    def one_nan(crops):
        s = torch.zeros(len(crops))
        s[3] = math.nan
        return s

    det = SlidingWindowDetector(one_nan, window=8, sizes=[16])
    with pytest.raises(ValueError, match=r"1 of \d+ windows.*window 3"):
        det.score_windows(np.zeros((32, 32), dtype=np.float32))


@pytest.mark.parametrize("which", ["boxes1", "boxes2"])
def test_box_iou_ragged_list_names_the_argument(which):
    ragged = [[0, 0, 10, 10], [1, 1, 5]]
    good = [[0, 0, 10, 10]]
    args = (ragged, good) if which == "boxes1" else (good, ragged)
    with pytest.raises(ValueError, match=rf"^{which} must be .*\(N, 4\).*ragged"):
        box_iou(*args)


# ------------------------------------------------------------------ calibration


def _probs3():
    return torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])


@pytest.mark.parametrize("labels", [[0, 1, 5], [0, 1, 3], [0, -1, 2]])
def test_ece_refuses_labels_outside_the_probability_columns(labels):
    with pytest.raises(ValueError, match=r"targets.*0\.\.2.*3 columns"):
        expected_calibration_error(_probs3(), torch.tensor(labels))
    with pytest.raises(ValueError, match=r"targets.*0\.\.2"):
        reliability_bins(_probs3(), torch.tensor(labels))


def test_ece_still_counts_in_range_labels():
    # all three predictions right, confidences 0.7, 0.8, 0.6 -> ECE = mean(0.3, 0.2, 0.4)
    assert expected_calibration_error(_probs3(), [0, 1, 2]) == pytest.approx(0.3)


def test_ece_refuses_empty_input_clearly():
    with pytest.raises(ValueError, match=r"probs is empty"):
        expected_calibration_error(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long))


# ------------------------------------------------------------------ domain shifts

KINDS = ["inverted", "coloured", "noisy", "rotated"]


def _images(scale=1.0):
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 8, 8, generator=g) * scale


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_shift_images_refuses_non_finite_pixels(kind, bad):
    x = _images()
    x[2, 0, 3, 4] = bad
    with pytest.raises(ValueError, match=r"images contains NaN or inf.*\(2, 0, 3, 4\)"):
        shift_images(x, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_shift_images_refuses_images_in_0_255(kind):
    with pytest.raises(
        ValueError,
        match=r"images must lie in \[0, 1\], got values in \[0\.\d+, 25\d.*divide by 255",
    ):
        shift_images(_images(255.0), kind)


@pytest.mark.parametrize("kind", KINDS)
def test_shift_images_refuses_negative_pixels_such_as_normalised_images(kind):
    with pytest.raises(
        ValueError,
        match=r"images must lie in \[0, 1\], got values in \[-0\.4\d+.*before normalising",
    ):
        shift_images(_images() - 0.5, kind)


@pytest.mark.parametrize("kind", KINDS)
def test_shift_images_output_in_unit_interval(kind):
    out = shift_images(_images(), kind, seed=3)
    assert torch.isfinite(out).all()
    assert out.min() >= 0 and out.max() <= 1


def test_shift_images_inverted_is_one_minus_x():
    x = _images()
    assert torch.equal(shift_images(x, "inverted"), 1 - x)


# ------------------------------------------------------------------ runner and sweep inputs


@pytest.fixture
def notebook(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    path = tmp_path / "double.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.mark.parametrize("content", ["null", "[1, 2]", "3", '"double"'])
def test_run_params_file_that_is_not_an_object_is_refused(notebook, tmp_path, capsys, content):
    params = tmp_path / "p.json"
    params.write_text(content)
    build = tmp_path / "build"
    assert runner.main(["run", str(notebook), "--params", str(params), "--build", str(build)]) == 2
    err = capsys.readouterr().err
    assert f"--params file {params}" in err and content in err
    assert "notebook stem" in err  # what is allowed
    assert not build.exists()


def test_load_params_file_refuses_null(tmp_path):
    params = tmp_path / "p.json"
    params.write_text("null")
    with pytest.raises(ValueError, match=r"must hold a JSON object.*got null"):
        runner.load_params_file(params)


def test_run_params_file_not_utf8_names_the_file(notebook, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_bytes(NOT_UTF8)
    assert runner.main(["run", str(notebook), "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert (
        f"--params file {params} is not UTF-8 text" in err and "byte 18" in err
    )  # 0-based offset of the \xff


def test_grid_file_not_utf8_names_the_file(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_bytes(b"grid:\n  x: [1, 2]\n# caf\xe9\n")
    with pytest.raises(sw.SweepError, match=rf"grid file {grid} is not UTF-8 text"):
        sw.load_grid(grid)


# ------------------------------------------------------------------ the book


def test_book_names_a_truncated_executed_notebook(tmp_path, capsys):
    first = book.course_notebooks(ROOT / "notebooks")[0]
    executed = tmp_path / "build" / first.stem / first.name
    executed.parent.mkdir(parents=True)
    executed.write_text(first.read_text()[:2000])  # the run was cut off mid-write
    assert book.main(["--build", str(tmp_path / "build"), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert str(executed) in err and "not a readable notebook" in err
    assert "run it again" in err
    assert not (tmp_path / "out").exists()


def test_book_names_a_non_utf8_executed_notebook(tmp_path):
    source = tmp_path / "nb" / "00_alpha.ipynb"
    source.parent.mkdir()
    source.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    executed = tmp_path / "build" / "00_alpha" / "00_alpha.ipynb"
    executed.parent.mkdir(parents=True)
    executed.write_bytes(b'{"cells": [], "x": "\xff"}')
    with pytest.raises(ValueError, match=rf"{executed} is not a readable notebook.*UTF-8"):
        book.find_chapters(tmp_path / "build", [source])


# ------------------------------------------------------------------ few-shot and H-score


@pytest.mark.parametrize(
    "empty", [np.zeros(0, dtype=np.int64), torch.zeros(0, dtype=torch.long), []]
)
def test_few_shot_indices_refuses_empty_targets(empty):
    with pytest.raises(ValueError, match=r"targets is empty"):
        few_shot_indices(empty, 1)


def _h_independent(f: np.ndarray, y: np.ndarray) -> float:
    """H-score straight from the formula, tr(pinv(cov f) cov(E[f|y])), on unscaled features."""
    cov = np.cov(f, rowvar=False)
    means = np.stack([f[y == c].mean(0) for c in np.unique(y)])
    g = means[np.searchsorted(np.unique(y), y)]
    cov_g = np.cov(g, rowvar=False)
    return float(np.trace(np.linalg.pinv(cov, hermitian=True) @ cov_g))


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e150, 1.0])
def test_h_score_is_scale_invariant_at_extreme_scales(scale):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 10)
    f = rng.normal(size=(40, 5)) + y[:, None] * 0.5
    want = _h_independent(f, y)
    assert h_score(f, y) == pytest.approx(want, rel=1e-9)
    with np.errstate(all="raise"):  # no overflow or underflow on the way
        assert h_score(f * scale, y) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("scale", [1.0, 1e200, 1e-200])
def test_h_score_with_fewer_samples_than_dimensions_sits_at_c_minus_1(scale):
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(4), 3)  # n = 12 < D = 30: the classes are separable, H = C - 1
    f = rng.normal(size=(12, 30))
    with np.errstate(all="raise"):
        assert h_score(f * scale, y) == pytest.approx(3.0, rel=1e-9)


def test_h_score_still_refuses_constant_features():
    with pytest.raises(ValueError, match="constant"):
        h_score(np.ones((6, 3)), [0, 1, 0, 1, 0, 1])


# ------------------------------------------------------------------ successive halving


def test_successive_halving_refuses_list_candidates_clearly():
    with pytest.raises(ValueError, match=r"candidates must be hashable.*\['l2sp', 0\.1\].*tuple"):
        successive_halving([["l2sp", 0.1], ["ft", 0.01]], lambda c, r: 0.5,
                           min_resource=1, max_resource=3)  # fmt: skip


def test_exhaustive_search_refuses_list_candidates_clearly():
    with pytest.raises(ValueError, match=r"candidates must be hashable"):
        exhaustive_search([["a"], ["b"]], lambda c, r: 0.5, resource=1)


@pytest.mark.parametrize(
    "make",
    [torch.tensor, np.float32, np.float64, lambda v: np.array(v), lambda v: torch.tensor([v])],
    ids=["tensor0d", "np.float32", "np.float64", "ndarray0d", "tensor1"],
)
def test_successive_halving_accepts_a_finite_scalar_tensor_or_numpy_number(make):
    values = {"a": 0.601, "b": 0.7, "c": 0.5}
    res = successive_halving(["a", "b", "c"], lambda c, r: make(values[c]),
                             min_resource=1, max_resource=3)  # fmt: skip
    assert res.best == "b"
    assert type(res.best_score) is float
    assert res.best_score == pytest.approx(0.7, rel=1e-6)


@pytest.mark.parametrize(
    "value, message",
    [
        (torch.tensor([0.1, 0.2]), r"a Tensor of shape \(2,\); it must return one number"),
        (torch.tensor(math.nan), r"nan; it must return a finite"),
        (np.array([0.3, 0.4]), r"a ndarray of shape \(2,\); it must return one number"),
        ("0.6", r"must return a number.*str"),
        (None, r"must return a number.*NoneType"),
        (True, r"must return a number.*bool"),
    ],
    ids=["tensor2", "nan-tensor", "array2", "str", "None", "bool"],
)
def test_successive_halving_refuses_advance_returning_no_single_number(value, message):
    with pytest.raises(ValueError, match=r"advance\('a', 1\) returned .*" + message):
        successive_halving(["a", "b"], lambda c, r: value, min_resource=1, max_resource=2)


# ------------------------------------------------------------------ an exercise check


def _normalize_as(dtype):
    def normalize(images, mean, std):
        m = torch.tensor(mean).view(1, -1, 1, 1)
        s = torch.tensor(std).view(1, -1, 1, 1)
        return ((images - m) / s).to(dtype)

    return normalize


@pytest.mark.parametrize("dtype", [torch.int64, torch.float16, torch.int32, torch.bfloat16])
def test_normalize_check_names_the_dtype_of_a_right_answer_in_the_wrong_dtype(dtype):
    r = ex01.normalize.run_check(_normalize_as(dtype))
    assert r.status == FAILED
    assert str(dtype).replace("torch.", "") in r.message
    assert "float32" in r.message
    assert "(1, C, 1, 1)" not in r.message  # the broadcasting hint would send them astray


def test_normalize_check_still_accepts_float32_and_float64():
    assert ex01.normalize.run_check(_normalize_as(torch.float32)).status == PASSED
    assert ex01.normalize.run_check(_normalize_as(torch.float64)).status == PASSED


# ------------------------------------------------------------------ a paired comparison


def test_compare_says_why_an_interval_has_zero_width():
    c = compare([0.81, 0.91], [0.80, 0.90], name_a="A", name_b="B")
    assert c.ci_low == c.ci_high
    text = str(c)
    assert "zero width" in text and "every paired difference was the same (+0.010)" in text
    assert text.endswith("better.")
    assert c.verdict == "better"


def test_compare_zero_width_up_to_rounding_says_so_too():
    # the same number of test items apart on each seed: equal differences, but not to the bit
    a, b = [(k + 1) / 199 for k in (3, 150)], [k / 199 for k in (3, 150)]
    c = compare(a, b)
    assert len(set(c.differences)) == 2 and c.ci_high - c.ci_low < 1e-12
    assert "every paired difference was the same (+0.005)" in str(c)


def test_compare_with_varying_differences_keeps_its_sentence():
    c = compare([0.81, 0.93, 0.85], [0.80, 0.90, 0.86], name_a="A", name_b="B")
    assert "zero width" not in str(c)


def test_compare_all_differences_zero_is_not_distinguishable_and_says_so():
    c = compare([0.8, 0.9], [0.8, 0.9])
    assert c.verdict == "not distinguishable" and "zero width" in str(c)


# ------------------------------------------------------------------ battery of further bad inputs
# Each case: what was fed in, and the verdict on today's code. "refused" cases must raise a
# ValueError whose message matches (argument, value, what is allowed); "answer" cases must
# give the stated correct result. The verdict before the fix is in the comment.

_Z = np.zeros((32, 32), dtype=np.float32)


def _swd(score_fn):
    return SlidingWindowDetector(score_fn, window=8, sizes=[16])


BATTERY_REFUSED = {
    # was IndexError "index 5 is out of bounds" (unclear)
    "box_voting keep out of range": (
        lambda: box_voting(_overlapping_boxes(), [0.1, 0.2, 0.3], [5]),
        r"keep must be box indices in 0\.\.2, got \[5\]",
    ),
    # was silent: 0.5 cast to box 0 (silent wrong)
    "box_voting keep float": (
        lambda: box_voting(_overlapping_boxes(), [0.1, 0.2, 0.3], [0.5]),
        r"keep must be integer box indices.*float",
    ),
    # was TypeError "must be real number, not NoneType" (unclear)
    "nms scores None": (
        lambda: nms(_overlapping_boxes(), [None, 0.9, 0.8]),
        r"scores must be finite.*index 0",
    ),
    # was torch's TypeError "new(): invalid data type 'str'" (unclear)
    "nms scores str": (lambda: nms(_overlapping_boxes(), "abc"), r"scores must be 3 numbers.*str"),
    # clear before and after
    "nms iou_threshold nan": (
        lambda: nms(_overlapping_boxes(), [0.1, 0.2, 0.3], math.nan),
        r"iou_threshold must lie in \[0, 1\], got nan",
    ),
    # was numpy's "could not convert string to float" (unclear)
    "box_iou strings": (
        lambda: box_iou([["a", "b", "c", "d"]], _overlapping_boxes()),
        r"boxes1 must be an \(N, 4\) array of numbers",
    ),
    # was torch's "can't convert np.ndarray of type numpy.object_" (unclear)
    "score_fn returns None": (
        lambda: _swd(lambda c: None).detect(_Z),
        r"score_fn must return 25 numbers.*NoneType",
    ),
    # clear before and after
    "score_fn returns (K, 2)": (
        lambda: _swd(lambda c: torch.zeros(len(c), 2)).detect(_Z),
        r"one score per crop \(25\), got 50",
    ),
    # was 0 detections, no error (silent wrong)
    "score_fn returns inf": (
        lambda: _swd(lambda c: torch.full((len(c),), math.inf)).detect(_Z),
        r"score_fn returned NaN or inf for 25 of 25",
    ),
    # clear before and after
    "ece probs NaN": (
        lambda: expected_calibration_error(torch.tensor([[math.nan, 1.0]]), [0]),
        r"probs contains NaN",
    ),
    "ece labels 0.5": (
        lambda: expected_calibration_error(torch.tensor([[0.5, 0.5]]), [0.5]),
        r"targets must hold integer labels",
    ),
    "ece 1-D probs": (
        lambda: expected_calibration_error(torch.tensor([0.5, 0.5]), [0, 1]),
        r"probs must be 2-D",
    ),
    # was torch's "Expected non-zero, positive output size" for 'rotated' (unclear)
    "shift_images empty batch": (
        lambda: shift_images(torch.zeros(0, 1, 8, 8), "rotated"),
        r"images is empty \(shape \(0, 1, 8, 8\)\)",
    ),
    # clear before and after
    "shift_images uint8": (
        lambda: shift_images(torch.zeros(1, 1, 8, 8, dtype=torch.uint8), "noisy"),
        r"floating point in \[0, 1\], got dtype torch\.uint8",
    ),
    "shift_images numpy": (
        lambda: shift_images(np.zeros((1, 1, 8, 8), np.float32), "noisy"),
        r"images must be a \(N, C, H, W\) tensor, got ndarray",
    ),
    # was "cannot convert float NaN to integer" (unclear)
    "few_shot_indices NaN label": (
        lambda: few_shot_indices(np.array([0.0, 1.0, math.nan]), 1),
        r"targets must be integer class labels.*\[nan\]",
    ),
    # was "class 0 has only 0 items" (misleading)
    "few_shot_indices labels 0.5": (
        lambda: few_shot_indices(np.array([0.5, 1.5, 0.5]), 1),
        r"targets must be integer class labels.*0\.5",
    ),
    # was flat indices into a 2-D array (silent wrong)
    "few_shot_indices 2-D targets": (
        lambda: few_shot_indices(np.array([[0, 1], [1, 0]]), 1),
        r"targets must be 1-D class labels, got shape \(2, 2\)",
    ),
    # was numpy's UFuncTypeError (unclear)
    "few_shot_indices string labels": (
        lambda: few_shot_indices(np.array(["a", "b"]), 1),
        r"targets must be integer class labels.*<U1",
    ),
    # clear before and after
    "h_score inf": (
        lambda: h_score(np.array([[1.0, math.inf], [0, 1], [1, 1]]), [0, 1, 0]),
        r"features contains NaN or inf",
    ),
    # was three candidates 'a', 'b', 'c' (silent wrong)
    "halving candidates a str": (
        lambda: successive_halving("abc", lambda c, r: 0.5, min_resource=1, max_resource=3),
        r"candidates must be a list of candidates, got the str 'abc'",
    ),
    # was "unhashable type: 'dict'" (unclear)
    "halving dict candidate": (
        lambda: successive_halving([{"lr": 1}], lambda c, r: 0.5, min_resource=1, max_resource=3),
        r"candidates must be hashable.*\(\('lr', 1\),\)",
    ),
    # was "unhashable type: 'list'" (unclear); the suggested spelling is hashable
    "halving tuple holding a list": (
        lambda: successive_halving(
            [("l2sp", [0.1, 1.0])], lambda c, r: 0.5, min_resource=1, max_resource=3
        ),
        r"candidates must be hashable.*\('l2sp', \(0\.1, 1\.0\)\)",
    ),
    # refused, the message names the type (clear)
    "halving advance returns Decimal": (
        lambda: successive_halving(
            ["a"], lambda c, r: __import__("decimal").Decimal("0.5"), min_resource=1, max_resource=3
        ),
        r"must return a number.*Decimal",
    ),
}


@pytest.mark.parametrize("case", sorted(BATTERY_REFUSED))
def test_battery_refused(case):
    call, message = BATTERY_REFUSED[case]
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize("kind", ["params", "grid"])
def test_battery_input_file_is_a_folder(tmp_path, kind):
    # was IsADirectoryError with a traceback (unclear)
    folder = tmp_path / "p.json"
    folder.mkdir()
    load = runner.load_params_file if kind == "params" else sw.load_grid
    with pytest.raises(ValueError, match=rf"{kind} file {folder} cannot be read: Is a directory"):
        load(folder)


def test_battery_params_file_with_a_bom_is_read(tmp_path):
    # was "Unexpected UTF-8 BOM" (refused a valid file Windows Notepad writes); now read
    params = tmp_path / "p.json"
    params.write_bytes(b'\xef\xbb\xbf{"double": {"x": 2}}')
    assert runner.load_params_file(params) == {"double": {"x": 2}}


def test_battery_params_entry_null_is_refused_naming_the_key(notebook, tmp_path, capsys):
    # clear before and after
    params = tmp_path / "p.json"
    params.write_text('{"double": null}')
    assert (
        runner.main(["run", str(notebook), "--params", str(params), "--build", str(tmp_path / "b")])
        == 2
    )
    assert "'double' must map parameter names to values" in capsys.readouterr().err


def test_battery_answers():
    # correct answers where there is one (verdict "ok" before and after unless noted)
    assert nms(torch.zeros(0, 4), []).tolist() == []
    rng = np.random.default_rng(0)
    f, y = rng.normal(size=(20, 3)), np.arange(20) % 2
    assert h_score(f * 1e307, y) == pytest.approx(h_score(f, y), rel=1e-9)
    from tlhelpers.transferability import h_score_shrinkage, ledoit_wolf_shrinkage

    # h_score_shrinkage at 1e200 was numpy's LinAlgError (unclear); ledoit_wolf_shrinkage at
    # 1e-200 returned 0.0 instead of 0.81 (silent wrong); both scale-invariant now
    with np.errstate(all="raise"):
        assert h_score_shrinkage(f * 1e200, y) == pytest.approx(h_score_shrinkage(f, y), rel=1e-9)
        assert ledoit_wolf_shrinkage(f * 1e-200) == pytest.approx(
            ledoit_wolf_shrinkage(f), rel=1e-9
        )
    # a 0-d tensor that requires grad is a number too
    res = successive_halving(["a", "b"], lambda c, r: torch.tensor(0.5, requires_grad=True) * 1,
                             min_resource=1, max_resource=2)  # fmt: skip
    assert res.best_score == 0.5
    assert few_shot_indices(np.array([0.0, 1.0, 0.0, 1.0]), 1).shape == (
        2,
    )  # whole floats are labels
