"""The papermill runner: names and files checked up front, failures recorded, Ctrl-C obeyed.

The notebooks here are tiny, built by the tests and free of torch (kernels start in about a
second); each execution starts a real kernel.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from tlhelpers import runner
from tlhelpers.runner import run_all, run_notebook

ROOT = Path(__file__).resolve().parent.parent
PARAMS = 'x: int = 1  # the input\nout_dir: str = ""  # where results.json goes\n'
WORK = (
    "import json, os, time\n"
    "PID_FILE = {pid_file!r}\n"
    "if PID_FILE:\n"
    "    open(PID_FILE, 'w').write(str(os.getpid()))\n"
    "time.sleep({sleep})\n"
    "if x == 3:\n"
    "    raise RuntimeError('x must not be 3')\n"
    "doc = {{'results': {{'y': x * 2}}, 'key_numbers': ['y']}}\n"
    "open(os.path.join(out_dir, 'results.json'), 'w').write(json.dumps(doc))\n"
)


def _notebook(path: Path, params: str = PARAMS, *, sleep: float = 0, pid_file: str = "") -> Path:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(WORK.format(sleep=sleep, pid_file=pid_file))]
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
    assert not out.exists()
    with pytest.raises(ValueError, match="'bogus'"):
        run_all([nb], tmp_path / "build", {"double": {"bogus": 1}})
    assert not (tmp_path / "build").exists()


def test_run_writes_results_and_keeps_them_out_of_staging(nb, tmp_path):
    out = tmp_path / "out"
    rec = run_notebook(nb, out, {"x": 4}, timeout=120)
    assert (rec.status, rec.key_numbers, rec.parameters) == ("ok", {"y": 8}, {"x": 4})
    assert json.loads((out / "results.json").read_text())["results"] == {"y": 8}
    assert sorted(p.name for p in out.iterdir()) == ["double.ipynb", "results.json", "run.log"]


def test_failed_run_is_recorded_and_stale_results_removed(nb, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.json").write_text('{"results": {"y": 99}, "key_numbers": ["y"]}')
    rec = run_notebook(nb, out, {"x": 3}, timeout=120)
    assert rec.status == "failed"
    assert rec.error == "RuntimeError: x must not be 3 (cell 3)"
    assert rec.key_numbers == {}
    assert rec.parameters == {"x": 3}
    assert not (out / "results.json").exists()  # numbers of an earlier run are never reported
    assert (out / "double.ipynb").is_file()  # the failing copy, with its traceback


CLAIM = (
    "from tlhelpers.notebook import save_results\n"
    "from tlhelpers.stats import compare\n"
    "c = compare([0.80, 0.81, 0.82], [0.90, 0.92, 0.93], name_a='new', name_b='old', metric='acc')\n"
    "save_results(out_dir, {'gain': c.diff_mean, 'x': x}, key_numbers=['gain', 'x'],\n"
    "             claims=[c.expect('better')])\n"
)


def test_a_failed_claim_keeps_its_numbers_in_build_and_in_the_summary(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(PARAMS)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(CLAIM)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "claim.ipynb"
    nbformat.write(nb, path)
    build = tmp_path / "build"
    (build / "claim").mkdir(parents=True)
    (build / "claim" / "results.json").write_text(
        '{"results": {"gain": 0.5}, "key_numbers": ["gain"]}'
    )
    (rec,) = run_all([path], build, timeout=300)
    assert rec.status == "failed" and rec.error.startswith("ClaimFailed: 1 claim(s) failed")
    assert "new vs old (acc, 3 paired seeds): -0.107" in rec.error  # the claim with its numbers
    assert rec.key_numbers == {"gain": pytest.approx(-0.1067, abs=1e-4), "x": 1}
    doc = json.loads(
        (build / "claim" / "results.json").read_text()
    )  # this run's, not the earlier one
    assert doc["status"] == "failed" and doc["error"] == rec.error
    assert doc["results"]["gain"] == pytest.approx(-0.1067, abs=1e-4)
    assert doc["claims"][0]["holds"] is False and doc["claims"][0]["verdict"] == "worse"
    md = (build / "summary.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| claim.ipynb |"))
    assert "| failed |" in row and "**from a failed run:** gain=-0.107, x=1" in row
    assert "ClaimFailed: 1 claim(s) failed: - new vs old" in row and row.count("|") == 6
    assert json.loads((build / "summary.json").read_text())[0]["key_numbers"]["x"] == 1


def test_summary_lists_printed_words_and_flags_those_over_the_limit(tmp_path):
    records = [
        runner.RunRecord("a.ipynb", "ok", 1.0, printed_words=120),
        runner.RunRecord("b.ipynb", "ok", 1.0, printed_words=runner.MAX_PRINTED_WORDS + 1),
        runner.RunRecord("c.ipynb", "failed", 1.0, error="boom"),
    ]
    runner._write_summary(records, tmp_path)
    rows = {ln.split(" | ")[0]: ln for ln in (tmp_path / "summary.md").read_text().splitlines()}
    assert "| 120 |" in rows["| a.ipynb"] and "over" not in rows["| a.ipynb"]
    limit = runner.MAX_PRINTED_WORDS
    assert f"| {limit + 1} **over {limit}** |" in rows["| b.ipynb"]
    assert "| - |" in rows["| c.ipynb"]


def test_run_all_continues_past_failing_notebook(tmp_path):
    bad = _notebook(tmp_path / "a_bad.ipynb", PARAMS.replace("x: int = 1", "x: int = 3"))
    good = _notebook(tmp_path / "b_good.ipynb")
    build = tmp_path / "build"
    records = run_all([bad, good], build, {"b_good": {"x": 5}, "_comment": "ok"}, timeout=120)
    assert [(r.notebook, r.status) for r in records] == [
        ("a_bad.ipynb", "failed"),
        ("b_good.ipynb", "ok"),
    ]
    assert records[1].key_numbers == {"y": 10}
    assert records[1].printed_words == 1  # the value of its last line, write()'s character count
    summary = json.loads((build / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["failed", "ok"]
    assert summary[1]["key_numbers"] == {"y": 10}
    md = (build / "summary.md").read_text()
    assert "| a_bad.ipynb | failed |" in md
    assert "| b_good.ipynb | ok |" in md and "y=10" in md


def test_cli_refuses_misspelt_notebook_key(nb, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text(json.dumps({"doubel": {"x": 2}}))
    build = tmp_path / "build"
    assert runner.main(["run", str(nb), "--params", str(params), "--build", str(build)]) == 2
    err = capsys.readouterr().err
    assert f"--params file {params}: 'doubel' is not one of the notebooks" in err
    assert "Notebooks: double." in err
    assert not build.exists()
    params.write_text(json.dumps({"double": {"xx": 2}}))
    assert runner.main(["run", str(nb), "--params", str(params), "--build", str(build)]) == 2
    assert "'xx'" in capsys.readouterr().err and not build.exists()


def test_cli_bad_json_names_the_file(nb, tmp_path, capsys):
    params = tmp_path / "p.json"
    params.write_text('{"double": {"x": 2,}}')
    assert runner.main(["run", str(nb), "--params", str(params)]) == 2
    err = capsys.readouterr().err
    assert f"--params file {params} is not valid JSON (line 1, column 20" in err
    assert runner.main(["run", str(nb), "--params", str(tmp_path / "none.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_sweep_points_to_the_new_command(capsys):
    assert runner.main(["sweep", "nb.ipynb", "-p", "x=1"]) == 2
    assert "python -m tlhelpers sweep" in capsys.readouterr().err


def _ignore_sigint() -> None:
    """Start as a shell starts a background job (``cmd &``): SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_ctrl_c_stops_run_ends_kernel_and_keeps_previous_results(tmp_path):
    pid_file = tmp_path / "kernel.pid"
    nb = _notebook(tmp_path / "slow.ipynb", sleep=60, pid_file=str(pid_file))
    build = tmp_path / "build"
    (build / "slow").mkdir(parents=True)
    previous = '{"results": {"y": 2}, "key_numbers": ["y"]}'
    (build / "slow" / "results.json").write_text(previous)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TLHELPERS_WIDGETS="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tlhelpers", "run", str(nb), "--build", str(build)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not pid_file.is_file() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()[0]
        time.sleep(0.1)
    kernel = int(pid_file.read_text())
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)  # once
    output = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130, output
    assert time.monotonic() - start < 10
    assert "interrupted" in output
    deadline = time.monotonic() + 5
    while psutil.pid_exists(kernel) and psutil.Process(kernel).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, "the kernel outlived the runner"
        time.sleep(0.1)
    assert (build / "slow" / "results.json").read_text() == previous
    assert not list((build / "slow").glob(".attempt-*"))


def test_module_entry_point_usage():
    out = subprocess.run(
        [sys.executable, "-m", "tlhelpers", "--help"],
        env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0 and "sweep" in out.stdout and "run" in out.stdout


def _dies_then_runs(deaths: int):
    calls = []

    def execute():
        calls.append(1)
        if len(calls) <= deaths:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return "executed"

    return execute, calls


def test_a_kernel_that_dies_before_kernel_info_is_started_again():
    from tlhelpers.runner import retry_kernel_start

    execute, calls = _dies_then_runs(2)
    lines: list[str] = []
    assert retry_kernel_start(execute, tries=3, wait_s=0.0, log=lines.append) == "executed"
    assert len(calls) == 3 and len(lines) == 2
    assert "died before it answered (try 2 of 3)" in lines[1]


def test_kernel_start_retries_are_bounded_and_other_errors_are_not_retried():
    from tlhelpers.runner import kernel_died_at_start, retry_kernel_start

    execute, calls = _dies_then_runs(5)
    with pytest.raises(RuntimeError, match="died before replying to kernel_info"):
        retry_kernel_start(execute, tries=3, wait_s=0.0, log=lambda line: None)
    assert len(calls) == 3
    other = []

    def fails():
        other.append(1)
        raise RuntimeError("Kernel didn't respond in 60 seconds")

    with pytest.raises(RuntimeError, match="didn't respond"):
        retry_kernel_start(fails, tries=3, wait_s=0.0)
    assert len(other) == 1  # a kernel that may have run cells is not started again
    assert not kernel_died_at_start(ValueError("Kernel died before replying to kernel_info"))
    with pytest.raises(ValueError, match="tries must be an integer >= 1, got 0"):
        retry_kernel_start(fails, tries=0)


def test_the_run_child_retries_a_kernel_that_dies_at_start(tmp_path, monkeypatch):
    """``_child`` (the process of every run, sweep and grading) starts papermill through the
    retry: a kernel that dies once before kernel_info still gives an "ok" outcome."""
    import papermill

    from tlhelpers import runner

    execute, calls = _dies_then_runs(1)
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: execute())
    monkeypatch.setattr(runner.signal, "signal", lambda *a: None)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    spec = {"notebook": "nb.ipynb", "output": str(tmp_path / "o.ipynb"), "parameters": {},
            "cwd": str(tmp_path), "timeout": 10, "outcome": str(tmp_path / "outcome.json")}  # fmt: skip
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    assert runner._child(str(tmp_path / "spec.json")) == 0
    assert json.loads((tmp_path / "outcome.json").read_text())["status"] == "ok"
    assert len(calls) == 2
