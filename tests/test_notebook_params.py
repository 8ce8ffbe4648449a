"""Checked notebook parameters (ParameterGuard), results.json and output folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tlhelpers import notebook
from tlhelpers.notebook import ParameterError, ParameterGuard, resolve_out_dir, save_results


def _namespace(**values):
    """A notebook namespace after the parameters cell: ``values`` maps name -> (type, value)."""
    ns = {"__name__": "__main__", "math": math, "In": [], "_": None}
    guard = ParameterGuard(ns)
    ns["guard"] = guard  # assigned after the snapshot, as in ``guard = ParameterGuard(globals())``
    ns["__annotations__"] = {k: t for k, (t, _) in values.items()}
    ns.update({k: v for k, (_, v) in values.items()})
    return ns, guard


DEFAULTS = {
    "seed": (int, 0),
    "lr": (float, 1e-3),
    "method": (str, "probe"),
    "layers": (list[int], [1, 2]),
    "use_bn": (bool, True),
}


def _with(**changes):
    values = dict(DEFAULTS)
    for k, v in changes.items():
        values[k] = (values[k][0], v)
    return _namespace(**values)


def test_valid_parameters_are_returned():
    ns, guard = _with()
    params = guard.check(positive=["lr"], choices={"method": ["probe", "finetune"]})
    assert params == {"seed": 0, "lr": 1e-3, "method": "probe", "layers": [1, 2], "use_bn": True}


def test_elapsed_counts_from_the_guards_creation(monkeypatch):
    clock = iter([100.0, 102.5])
    monkeypatch.setattr(notebook.time, "perf_counter", lambda: next(clock))
    guard = ParameterGuard({"__name__": "__main__"})
    assert guard.elapsed() == 2.5


def test_injected_unknown_name_is_refused():
    ns, guard = _with()
    ns["sede"] = 1  # a typo injected by papermill
    with pytest.raises(ParameterError) as err:
        guard.check()
    msg = str(err.value)
    assert "'sede'" in msg
    assert "Valid parameters: layers, lr, method, seed, use_bn." in msg


def test_helpers_defined_in_the_notebook_are_not_parameters():
    ns, guard = _with()
    ns["helper"] = lambda: None
    ns["np"] = np
    ns["_private"] = 3
    assert guard.check()["seed"] == 0


def test_int_is_converted_for_float():
    ns, guard = _with(lr=1)
    params = guard.check()
    assert params["lr"] == 1.0 and isinstance(params["lr"], float)
    assert isinstance(ns["lr"], float)  # the notebook sees the converted value


@pytest.mark.parametrize(
    "name, value",
    [("seed", "0"), ("seed", True), ("seed", 1.0), ("lr", "0.1"), ("use_bn", 1), ("method", 3)],
)
def test_wrong_types_are_refused(name, value):
    _, guard = _with(**{name: value})
    with pytest.raises(ParameterError) as err:
        guard.check()
    assert name in str(err.value) and repr(value) in str(err.value)


def test_list_elements_are_checked():
    _, guard = _with(layers=[1, "2"])
    with pytest.raises(ParameterError, match=r"layers\[1\]"):
        guard.check()
    ns, guard = _with(layers=(3, 4))
    assert guard.check()["layers"] == [3, 4]


def test_value_rules():
    _, guard = _with(lr=0.0)
    with pytest.raises(ParameterError, match="lr=0.0: must be > 0"):
        guard.check(positive=["lr"])
    _, guard = _with(seed=-1)
    with pytest.raises(ParameterError, match="must be >= 0"):
        guard.check(non_negative=["seed"])
    _, guard = _with(seed=0)
    assert guard.check(non_negative=["seed"])["seed"] == 0
    _, guard = _with(lr=1.5)
    with pytest.raises(ParameterError, match="must be <= 1"):
        guard.check(ranges={"lr": (0, 1)})
    _, guard = _with(layers=[1, 9])
    with pytest.raises(ParameterError, match="layers=9"):
        guard.check(ranges={"layers": (0, 4)})
    _, guard = _with(method="finetun")
    with pytest.raises(ParameterError) as err:
        guard.check(choices={"method": ["probe", "finetune"]})
    assert "'finetun'" in str(err.value) and "'probe', 'finetune'" in str(err.value)
    _, guard = _with(layers=[1, 5, 7])
    with pytest.raises(ParameterError) as err:
        guard.check(subset_of={"layers": [1, 2, 3]})
    assert "[5, 7]" in str(err.value) and "1, 2, 3" in str(err.value)


def test_save_results_writes_json(tmp_path):
    results = {
        "acc": np.float32(0.5),
        "curve": torch.tensor([1.0, 2.0]),
        "arr": np.arange(3),
        "nan": float("nan"),
        "path": tmp_path,
    }
    path = save_results(
        tmp_path / "out", results, params={"seed": 0}, key_numbers=["acc"], wall_time=1.5
    )
    assert path == tmp_path / "out" / "results.json"
    doc = json.loads(path.read_text())
    assert doc["results"]["acc"] == 0.5
    assert doc["results"]["curve"] == [1.0, 2.0]
    assert doc["results"]["arr"] == [0, 1, 2]
    assert math.isnan(doc["results"]["nan"])
    assert doc["results"]["path"] == str(tmp_path)
    assert doc["params"] == {"seed": 0}
    assert doc["key_numbers"] == ["acc"]
    assert doc["wall_time_s"] == 1.5
    assert doc["environment"]["torch"] == torch.__version__
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_save_results_refuses_unknown_key_numbers(tmp_path):
    with pytest.raises(KeyError, match="accuracy"):
        save_results(tmp_path, {"acc": 1.0}, key_numbers=["accuracy"])
    assert not (tmp_path / "results.json").exists()


def test_resolve_out_dir(tmp_path, monkeypatch):
    given = resolve_out_dir(str(tmp_path / "a" / "b"), "00_welcome")
    assert given == (tmp_path / "a" / "b").resolve() and given.is_dir()
    monkeypatch.setattr(notebook, "repo_root", lambda: tmp_path / "repo")
    default = resolve_out_dir("", "00_welcome")
    assert default == (tmp_path / "repo" / "build" / "results" / "00_welcome").resolve()
    assert default.is_dir()


def test_upper_case_constants_are_not_parameters_but_typos_still_are():
    ns, guard = _namespace(**DEFAULTS)
    ns["METHODS"] = ["probe", "finetune"]  # a constant defined before guard.check(...)
    assert guard.check(choices={"method": ns["METHODS"]})["method"] == "probe"
    ns["mehtod"] = "finetune"
    with pytest.raises(ParameterError, match="'mehtod'"):
        guard.check()


def test_save_results_writes_claims_then_raises_for_failing_ones(tmp_path):
    from tlhelpers.stats import ClaimFailed, compare

    good = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7], name_a="transfer", name_b="scratch")
    noisy = compare([0.6, 0.4, 0.8], [0.5, 0.6, 0.7], name_a="L2", name_b="scratch")
    claims = [good.expect("better"), noisy.expect("better")]
    with pytest.raises(ClaimFailed, match="L2 vs scratch") as err:
        save_results(tmp_path, {"acc": 0.75}, key_numbers=["acc"], claims=claims)
    assert [c.comparison.name_a for c in err.value.failed] == ["L2"]
    assert "transfer vs scratch" not in str(err.value)
    doc = json.loads((tmp_path / "results.json").read_text())  # written before the check
    assert doc["results"]["acc"] == 0.75
    assert [c["holds"] for c in doc["claims"]] == [True, False]
    assert doc["claims"][1]["verdict"] == "not distinguishable"
    assert doc["claims"][1]["expected"] == "better"
    assert doc["claims"][0]["sentence"] == str(good)


def test_save_results_with_holding_claims_returns_the_path(tmp_path):
    from tlhelpers.stats import compare

    c = compare([0.6, 0.7, 0.8], [0.5, 0.6, 0.7])
    path = save_results(tmp_path, {"acc": 1.0}, claims=[c.expect("better")])
    assert json.loads(path.read_text())["claims"][0]["holds"] is True
    with pytest.raises(TypeError, match="claims"):
        save_results(tmp_path / "x", {"acc": 1.0}, claims=[c])
    assert not (tmp_path / "x" / "results.json").exists()


def test_save_results_check_false_records_a_failing_claim_without_raising(tmp_path):
    from tlhelpers.stats import compare

    noisy = compare([0.6, 0.4, 0.8], [0.5, 0.6, 0.7], name_a="L2", name_b="scratch")
    path = save_results(tmp_path, {"acc": 0.6}, claims=[noisy.expect("better")], check=False)
    claim = json.loads(path.read_text())["claims"][0]
    assert claim["holds"] is False and claim["verdict"] == "not distinguishable"


def test_every_notebook_lets_sweeps_record_claims_without_failing():
    import nbformat

    for nb_path in sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb")):
        src = "\n".join(c.source for c in nbformat.read(nb_path, as_version=4).cells)
        assert "check_claims: bool = True" in src, nb_path.name
        assert "check=check_claims" in src, nb_path.name


def test_save_results_prints_and_records_claims_below_the_bar_as_findings(tmp_path, capsys):
    from tlhelpers.stats import MIN_CHANCE, compare

    base = [0.5] * 5
    strong = compare([0.60, 0.61, 0.59, 0.60, 0.605], base, name_a="strong", name_b="base")
    weak = compare([0.62, 0.52, 0.65, 0.58, 0.55], base, name_a="weak", name_b="base")
    absent = compare([0.62, 0.45, 0.65, 0.42, 0.55], base, name_a="absent", name_b="base")
    claims = [strong.expect("better"), weak.expect("better"), absent.expect("better", check=False)]
    path = save_results(tmp_path, {"acc": 0.6}, claims=claims)  # nothing raised
    out = capsys.readouterr().out
    assert "Findings, not asserted" in out and "strong vs base" not in out
    assert "weak vs base" in out and f"{claims[1].chance:.2f}" in out and "absent vs base" in out
    doc = json.loads(path.read_text())
    assert doc["status"] == "ok"
    assert [c["asserted"] for c in doc["claims"]] == [True, False, False]
    assert doc["claims"][1]["holds"] is True and doc["claims"][1]["chance"] < MIN_CHANCE
    assert doc["claims"][0]["chance"] >= MIN_CHANCE and doc["claims"][2]["check"] is False


def test_check_environment_names_each_missing_or_altered_asset():
    from tlhelpers.notebook import MissingAssetError, check_environment

    ok = {"assets": {"weights:mobilenet_v2": "/w/m.pth", "data:fashion_mnist": "/d/fm"}}
    assert check_environment(ok) == ok
    bad = {"assets": {"weights:mobilenet_v2": "altered (sha256 mismatch): /w/m.pth"}}
    with pytest.raises(MissingAssetError) as err:
        check_environment(bad)
    text = str(err.value)
    assert "weights:mobilenet_v2 is altered" in text and "delete that file" in text
    assert "data:fashion_mnist is missing" in text and "clone" in text
    with pytest.raises(TypeError, match="assets"):
        check_environment({"python": "3.11"})
