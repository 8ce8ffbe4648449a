"""Every notebook: conventions checked statically, then executed by papermill with non-default
parameters (``tests/smoke_params.json``); nbval runs the same notebooks on their defaults."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import papermill as pm
import pytest

from tlhelpers.runner import course_notebooks, notebook_parameters, run_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = course_notebooks(ROOT / "notebooks")
SMOKE = {
    k: v
    for k, v in json.loads((ROOT / "tests" / "smoke_params.json").read_text()).items()
    if not k.startswith("_")
}
PARAM_LINE = re.compile(r"^(\w+): ([\w\[\], |]+) = (.+?)  # (\S.*)$")


def _ids(p: Path) -> str:
    return p.stem


def _code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert names[:1] == ["00_welcome.ipynb"]
    # a part letter keeps the numbering: 03a and 03b sit between 02 and 04
    assert names.index("03a_loss_transfer.ipynb") + 1 == names.index(
        "03b_regularisers_compared.ipynb"
    )
    every = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert every == sorted(names), "a notebook whose name the runner and the tests would skip"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_conventions(path: Path):
    cells = _code_cells(path)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in cells), (
        "notebooks are committed stripped of outputs (make strip)"
    )
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    i = tagged[0]
    assert "ParameterGuard(globals())" in cells[i - 1].source, "guard created before parameters"
    assert "guard.check(" in cells[i + 1].source, "parameters validated right after"
    lines = [ln for ln in cells[i].source.splitlines() if ln.strip()]
    bad = [ln for ln in lines if not PARAM_LINE.match(ln)]
    assert not bad, f"parameter lines must read 'name: type = value  # help': {bad}"
    names = {PARAM_LINE.match(ln).group(1) for ln in lines}
    assert {"seed", "out_dir"} <= names
    declared = notebook_parameters(path)
    assert set(declared) == names, "papermill parses every parameter line"
    assert all(d["help"] for d in declared.values())


def test_every_notebook_has_smoke_parameters():
    missing = sorted({p.stem for p in NOTEBOOKS} - set(SMOKE))
    assert not missing, f"add papermill smoke parameters for {missing} to tests/smoke_params.json"


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids)
def test_papermill_non_default_parameters(path: Path, tmp_path: Path):
    params = SMOKE[path.stem]
    defaults = notebook_parameters(path)
    changed = [k for k, v in params.items() if repr(v) != defaults[k]["default"].replace('"', "'")]
    assert changed, "smoke parameters must differ from the defaults"
    rec = run_notebook(path, tmp_path, params, timeout=600)
    assert rec.status == "ok", rec.error
    doc = json.loads((tmp_path / "results.json").read_text())
    for k, v in params.items():
        assert doc["params"][k] == v, f"parameter {k} did not reach the notebook"
    assert doc["key_numbers"] and rec.key_numbers
    for k, v in rec.key_numbers.items():
        assert isinstance(v, (int, float)) and math.isfinite(v), f"{k}={v!r}"


def _execute_welcome(tmp_path: Path, **params) -> None:
    pm.execute_notebook(
        str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"),
        parameters={**params, "out_dir": str(tmp_path)},
        kernel_name="python3", progress_bar=False,
    )  # fmt: skip


@pytest.mark.notebooks
def test_unknown_parameter_is_refused_inside_the_notebook(tmp_path: Path):
    """Raw papermill only warns about a typo; the notebook's guard refuses it by name."""
    with pytest.raises(pm.PapermillExecutionError, match="Unknown parameter.*'n_sede'"):
        _execute_welcome(tmp_path, n_sede=2)
    assert not (tmp_path / "results.json").exists()


@pytest.mark.notebooks
def test_invalid_parameter_value_is_refused_before_work(tmp_path: Path):
    with pytest.raises(pm.PapermillExecutionError, match="per_class"):
        _execute_welcome(tmp_path, per_class=0)
    assert not (tmp_path / "results.json").exists()


#: Seed offsets of notebook 00 that were not used while its claim was written (its default is seed=0).
WELCOME_FRESH_SEEDS = [300, 7000]


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("seed", WELCOME_FRESH_SEEDS)
def test_welcome_pretraining_control_at_fresh_seeds(tmp_path: Path, seed: int):
    """Notebook 00's controls: ImageNet MobileNetV2 features vs the same network untrained (AdaBN
    statistics), same input and probe; the same with both networks' statistics re-estimated on the
    same crops; raw pixels through the same probe; the verdict under other penalties of the probe.
    Their numbers are saved, their verdicts printed, and the asserted claims hold at fresh seeds."""
    _execute_welcome(tmp_path, seed=seed)  # check_claims=True: a claim that fails raises here
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["status"] == "ok", doc["error"]
    pretraining, pixels, equal_bn = doc["claims"]
    assert (pretraining["name_a"], pretraining["name_b"]) == ("ImageNet", "untrained + AdaBN")
    assert (pixels["name_a"], pixels["name_b"]) == ("ImageNet", "raw pixels")
    for claim in (pretraining, pixels):  # asserted: they hold and were checked
        assert claim["check"] and claim["expected"] == claim["verdict"] == "better"
        assert claim["ci_low"] > 0
    # the equalised control is recorded as a finding, with its chance, never raised on
    assert (equal_bn["name_a"], equal_bn["check"]) == ("ImageNet + AdaBN", False)
    assert not equal_bn["asserted"] and 0 <= equal_bn["chance"] <= 1
    res = doc["results"]
    assert res["comparisons"]["pretraining"]["sentence"] == pretraining["sentence"]
    assert len(res["untrained_probe_accuracy"]) == len(res["probe_accuracy"]) == 10
    assert set(res["accuracy"]) == {
        "ImageNet", "ImageNet + AdaBN", "untrained + AdaBN", "raw pixels", "scratch CNN"
    }  # fmt: skip
    assert res["pretraining_gain"] == pytest.approx(
        res["probe_accuracy_mean"] - res["untrained_probe_accuracy_mean"]
    )
    # the comparisons add up: ImageNet vs scratch = pretraining - (scratch vs untrained)
    parts = res["comparisons"]
    assert parts["imagenet_vs_scratch_cnn"]["diff_mean"] == pytest.approx(
        parts["pretraining"]["diff_mean"] - parts["vs_untrained/scratch CNN"]["diff_mean"]
    )
    # the probe's penalty: the pretraining comparison at every setting, C=1 being the headline
    by_probe = res["pretraining_by_probe"]
    assert list(by_probe) == ["C=0.1", "C=1", "C=10", "standardised, C=1"]
    assert by_probe["C=1"]["diff_mean"] == pytest.approx(pretraining["diff_mean"])
    # AdaBN is what keeps the control from being a broken network (the notebook's prose says so)
    norms = res["feature_norm"]
    assert norms["untrained, placeholder statistics"] < 1e-3 * norms["untrained + AdaBN"]
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    printed = "".join(
        o.get("text", "") or o.get("data", {}).get("text/plain", "")
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    printed = " ".join(printed.split())
    assert "1. Pretraining: ImageNet beat untrained + AdaBN" in printed
    assert (
        "2. With the BatchNorm statistics equalised, only the weights differ: ImageNet + AdaBN"
        in printed
    )
    assert "raw pixels" in printed and "standardised, C=1" in printed


@pytest.mark.slow
@pytest.mark.notebooks
def test_preprocessing_distance_controls(tmp_path: Path):
    """Notebook 01's distance controls at a seed never used while writing: each between-pool MMD^2
    is compared, seed by seed, with the larger of its two pools' within-pool values; the colour
    control is printed as two values and their ratio (no percentage); the LFW pool is named."""
    nb = NOTEBOOKS[[p.stem for p in NOTEBOOKS].index("01_preprocessing")]
    params = {"seed": 2500, "n_draws": 4, "check_claims": False, "out_dir": str(tmp_path)}
    pm.execute_notebook(
        str(nb), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3",
        progress_bar=False,
    )  # fmt: skip
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    per_seed = res["gap_mmd2"]
    pools = {"photos", "LFW crops", "Fashion-MNIST"}
    between = [v for v in res["verdicts"] if v["name_b"] == "larger within-pool value"]
    assert len(between) == 3
    for v in between:
        a, b = v["name_a"].split(" vs ")
        assert a in pools and b in pools
        null = np.maximum(per_seed[f"within {a}"], per_seed[f"within {b}"])
        assert v["b"] == pytest.approx(list(null)) and v["a"] == pytest.approx(
            per_seed[v["name_a"]]
        )
        assert len(v["a"]) == 5
    executed = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    printed = " ".join(
        o.get("text", "")
        for c in executed.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )
    colour = res["gap_mmd2_colour_photos_vs_lfw_mean"], res["gap_mmd2_grey_photos_vs_lfw_mean"]
    assert f"from {colour[0]:.3f} to {colour[1]:.3f}" in printed and "accounts for" not in printed
    assert "on 100 test crops" in printed
