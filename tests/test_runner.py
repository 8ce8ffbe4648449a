"""The papermill runner: parameter names checked up front, failures recorded, summaries written.

The notebooks here are tiny and built by the tests; each execution starts a real kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from tlhelpers import runner
from tlhelpers.runner import run_all, run_notebook, sweep

PARAMS = 'x: int = 1  # the input\nout_dir: str = ""  # where results.json goes\n'
WORK = (
    "if x == 3:\n"
    "    raise RuntimeError('x must not be 3')\n"
    "from tlhelpers.notebook import save_results\n"
    'save_results(out_dir, {"y": x * 2}, key_numbers=["y"])\n'
)


def _notebook(path: Path, params: str = PARAMS) -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(WORK)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb(tmp_path) -> Path:
    return _notebook(tmp_path / "double.ipynb")


def test_declared_parameters(nb):
    declared = runner.notebook_parameters(nb)
    assert set(declared) == {"x", "out_dir"}
    assert declared["x"]["default"] == "1"


def test_unknown_parameter_refused_before_execution(nb, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        run_notebook(nb, out, {"xx": 2})
    assert "'xx'" in str(err.value) and "Valid parameters: out_dir, x." in str(err.value)
    assert not out.exists() or not any(out.iterdir())
    with pytest.raises(ValueError, match="'bogus'"):
        sweep(nb, {"bogus": [1, 2]}, tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
    with pytest.raises(ValueError, match="'bogus'"):
        run_all([nb], tmp_path / "build", {"double": {"bogus": 1}})
    assert not (tmp_path / "build" / "double").exists()


def test_failed_run_is_recorded_and_stale_results_removed(nb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"results": {"y": 99}, "key_numbers": ["y"]}')
    rec = run_notebook(nb, out, {"x": 3}, timeout=120)
    assert rec.status == "failed"
    assert "x must not be 3" in rec.error
    assert rec.key_numbers == {}
    assert rec.parameters == {"x": 3}
    assert not (out / "results.json").exists()  # numbers of an earlier run are never reported


def test_sweep_records_failure_and_keeps_going(nb, tmp_path):
    build = tmp_path / "sweep"
    records = sweep(nb, {"x": [1, 3, 4]}, build, timeout=120)
    assert [r.status for r in records] == ["ok", "failed", "ok"]
    assert [r.key_numbers for r in records] == [{"y": 2}, {}, {"y": 8}]
    assert [r.parameters for r in records] == [{"x": 1}, {"x": 3}, {"x": 4}]
    for x, y in [(1, 2), (4, 8)]:
        doc = json.loads((build / f"x-{x}" / "results.json").read_text())
        assert doc["results"] == {"y": y}
        executed = nbformat.read(build / f"x-{x}" / "double.ipynb", as_version=4)
        assert any(f"x = {x}" in c.source for c in executed.cells)  # papermill's injected cell
    saved = json.loads((build / "sweep.json").read_text())
    assert [(r["parameters"], r["status"]) for r in saved] == [
        ({"x": 1}, "ok"),
        ({"x": 3}, "failed"),
        ({"x": 4}, "ok"),
    ]


def test_run_all_continues_past_failing_notebook(tmp_path):
    bad = _notebook(tmp_path / "a_bad.ipynb", PARAMS.replace("x: int = 1", "x: int = 3"))
    good = _notebook(tmp_path / "b_good.ipynb")
    build = tmp_path / "build"
    records = run_all([bad, good], build, {"b_good": {"x": 5}}, timeout=120)
    assert [(r.notebook, r.status) for r in records] == [
        ("a_bad.ipynb", "failed"),
        ("b_good.ipynb", "ok"),
    ]
    assert records[1].key_numbers == {"y": 10}
    summary = json.loads((build / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["failed", "ok"]
    assert summary[1]["key_numbers"] == {"y": 10}
    md = (build / "summary.md").read_text()
    assert "| a_bad.ipynb | failed |" in md
    assert "| b_good.ipynb | ok |" in md and "y=10" in md


def test_cli_refuses_unknown_parameter(nb, tmp_path, capsys):
    build = tmp_path / "cli"
    assert runner.main(["sweep", str(nb), "-p", "bogus=1", "--build", str(build)]) == 2
    assert "'bogus'" in capsys.readouterr().err
    assert not build.exists()


def test_cli_grid_parsing():
    assert runner._parse_grid(["seed=0,1", "name=a,b", "lr=1e-3"]) == {
        "seed": [0, 1],
        "name": ["a", "b"],
        "lr": [1e-3],
    }
    with pytest.raises(SystemExit):
        runner._parse_grid(["seed"])
