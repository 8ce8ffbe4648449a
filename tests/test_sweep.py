"""Sweeps: bad input refused before any run; local and Dask runs; resume; Ctrl-C; reports.

The notebooks are tiny fixtures written into ``tmp_path`` (no torch: kernels start in
about a second); each execution is a real papermill run in a real kernel.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from tlhelpers import sweep as sw
from tlhelpers.sweep import SweepError, check_values, plan_sweep, run_sweep

ROOT = Path(__file__).resolve().parent.parent
PARAMS = (
    "x: int = 1  # the input\n"
    "seed: int = 0  # a seed\n"
    "rate: float = 0.5  # a positive rate\n"
    'name: str = "a"  # a label\n'
    'out_dir: str = ""  # where results.json goes\n'
)


def make_notebook(path: Path, *, pid_dir: Path | None = None, go: Path | None = None) -> Path:
    """``y = 2 x + seed / 10``; x=3 fails in the notebook, x=7 and rate<=0 fail its check.

    With ``pid_dir`` each kernel writes its pid there; with ``go``, runs with x != 1
    wait (up to 60 s) until that file exists.
    """
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell(PARAMS)
    params.metadata["tags"] = ["parameters"]
    work = (
        "import json, os, time\n"
        f"PID_DIR, GO = {str(pid_dir or '')!r}, {str(go or '')!r}\n"
        "if PID_DIR:\n"
        "    open(os.path.join(PID_DIR, f'{x}-{seed}.pid'), 'w').write(str(os.getpid()))\n"
        "deadline = time.time() + 60\n"
        "while GO and x != 1 and not os.path.exists(GO) and time.time() < deadline:\n"
        "    time.sleep(0.05)\n"
        "if x == 3:\n"
        "    raise RuntimeError('x must not be 3')\n"
        "doc = {'results': {'y': 2 * x + seed / 10, 'label': name, 'pid': os.getpid()},\n"
        "       'key_numbers': ['y'], 'params': params}\n"
        "open(os.path.join(out_dir, 'results.json'), 'w').write(json.dumps(doc))\n"
    )
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from tlhelpers.notebook import ParameterGuard\n\nguard = ParameterGuard(globals())"
        ),
        params,
        nbformat.v4.new_code_cell(
            'params = guard.check(positive=["rate"], ranges={"x": (0, 10)})\n'
            'assert x != 7, "x must not be 7"'
        ),
        nbformat.v4.new_code_cell(work),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


@pytest.fixture
def nb(tmp_path) -> Path:
    return make_notebook(tmp_path / "fx.ipynb")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), TLHELPERS_WIDGETS="0", OMP_NUM_THREADS="1")
    return env


def _ignore_sigint() -> None:
    """Start as a shell starts a background job (``cmd &``): SIGINT ignored, which the CLI undoes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tlhelpers", "sweep", *args], env=_env(), cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=_ignore_sigint, **kw,
    )  # fmt: skip


def _runs(out: Path) -> dict[str, dict]:
    """``{"x=1 seed=0": run.json}`` for every run folder."""
    found = {}
    for run in sorted((out / "runs").iterdir()):
        rec = json.loads((run / "run.json").read_text()) if (run / "run.json").is_file() else {}
        p = rec.get("parameters", {})
        found[" ".join(f"{k}={p[k]}" for k in sorted(p) if k in ("x", "seed"))] = rec | {"dir": run}
    return found


def _dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---------------------------------------------------------------------- refused before any run


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("grid: [seed: 1\n", r"not valid YAML at line \d+, column \d+"),
        ("- 1\n- 2\n", "must be a mapping with a 'grid:' section"),
        ("grid: {x: [1]}\nmetrics: y\n", r"unknown key\(s\) 'metrics'. Valid keys: grid, fixed"),
        ("fixed: {x: 1}\n", "has no 'grid:' section"),
    ],
)
def test_malformed_grid_file_names_the_file(tmp_path, text, message):
    grid = tmp_path / "g.yaml"
    grid.write_text(text)
    with pytest.raises(SweepError, match=message) as err:
        sw.load_grid(grid)
    assert str(grid) in str(err.value)


@pytest.mark.parametrize(
    ("grid", "fixed", "message"),
    [
        ({}, {}, "the grid is empty"),
        ({"x": []}, {}, r"grid.x is an empty list"),
        ({"x": 2}, {}, r"grid.x must be a list of values, got 2; write \[2\]"),
        ({"x": [1, 1]}, {}, "lists a value twice"),
        ({"x": [1]}, {"x": 2}, "x both swept and fixed"),
        ({"xx": [1]}, {}, r"unknown parameter\(s\) 'xx' for fx.ipynb. Valid parameters: name, "),
        ({"x": [1]}, {"sed": 1}, r"unknown parameter\(s\) 'sed'"),
        ({"x": [1, 2.5]}, {}, r"grid.x has 2.5 \(float\), but fx.ipynb declares x: int"),
        ({"x": [True]}, {}, r"grid.x has True \(bool\)"),
        ({"rate": ["1e-3"]}, {}, "YAML reads 1e-3 as text"),
        ({"x": [1]}, {"name": 3}, r"fixed.name has 3 \(int\), but fx.ipynb declares name: str"),
        ({"out_dir": ["a"]}, {}, "out_dir is set by the sweep"),
    ],
)
def test_bad_grid_refused(nb, grid, fixed, message):
    with pytest.raises(SweepError, match=message):
        plan_sweep(nb, grid, fixed=fixed)


def test_ints_are_accepted_for_floats(nb):
    plan = plan_sweep(nb, {"rate": [1, 0.5]}, fixed={"x": 2})
    assert plan.points() == [{"rate": 1}, {"rate": 0.5}]
    assert plan.names == ["rate", "x"]


def test_values_are_checked_by_the_notebooks_guard(nb):
    plan = plan_sweep(nb, {"x": [1, 7, 11], "rate": [0.5, -1.0]})
    with pytest.raises(SweepError) as err:
        check_values(plan)
    text = str(err.value)
    assert text.startswith("5 of 6 runs have values fx.ipynb refuses")
    assert "x=7 rate=0.5: AssertionError: x must not be 7" in text
    assert "x=11 rate=0.5: ParameterError: Invalid x=11: must be <= 10." in text
    assert "x=1 rate=-1.0: ParameterError: Invalid rate=-1.0: must be > 0." in text
    assert "x=1 rate=0.5" not in text
    assert check_values(plan_sweep(nb, {"x": [1, 2]})) == []


def test_a_notebook_without_a_check_gets_a_note(tmp_path):
    path = make_notebook(tmp_path / "plain.ipynb")
    nb = nbformat.read(path, as_version=4)
    nb.cells[2].source = "pass"
    nbformat.write(nb, path)
    notes = check_values(plan_sweep(path, {"x": [7]}))
    assert len(notes) == 1 and "no parameter check" in notes[0]


def test_output_folder_of_another_sweep_refused(nb, tmp_path):
    other = make_notebook(tmp_path / "other.ipynb")
    out = tmp_path / "out"
    out.mkdir()
    (out / "sweep.json").write_text(json.dumps({"notebook": "other.ipynb", "parameters": ["x"]}))
    with pytest.raises(SweepError, match="holds a sweep of other.ipynb, not fx.ipynb"):
        run_sweep(plan_sweep(nb, {"x": [1]}), out)
    with pytest.raises(
        SweepError, match="over parameters x, this one sets seed, x; choose another"
    ):
        run_sweep(plan_sweep(other, {"x": [1], "seed": [0]}), out)
    busy = tmp_path / "busy"
    (busy / "00_welcome").mkdir(parents=True)
    (busy / "00_welcome" / "results.json").write_text("{}")
    with pytest.raises(SweepError, match="not empty and holds no sweep.json"):
        run_sweep(plan_sweep(nb, {"x": [1]}), busy)
    assert sorted(p.name for p in out.iterdir()) == ["sweep.json"]  # nothing ran


def test_unreachable_scheduler_refused_within_seconds(nb, tmp_path):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(SweepError, match=r"cannot reach the Dask scheduler .* `dask scheduler`"):
        run_sweep(plan_sweep(nb, {"x": [1]}), tmp_path / "out", scheduler=f"tcp://127.0.0.1:{port}")
    assert time.monotonic() - start < sw.CONNECT_TIMEOUT_S + 10
    assert not (tmp_path / "out").exists()


def test_cli_refusals_exit_2_before_any_run(nb, tmp_path, capsys):
    out = tmp_path / "out"
    grid = tmp_path / "g.yaml"
    grid.write_text("grid:\n  x: [1, 2]\n")
    assert sw.main([str(nb), "--grid", str(grid), "-p", "x=3", "--out", str(out)]) == 2
    assert "x given both in" in capsys.readouterr().err
    assert sw.main([str(nb), "-p", "x=1", "--workers", "2", "--scheduler", "tcp://h:1"]) == 2
    assert "--workers sets the local cluster's size" in capsys.readouterr().err
    assert sw.main([str(nb), "--out", str(out)]) == 2
    assert "the grid is empty" in capsys.readouterr().err
    assert sw.main([str(nb), "-p", "bogus=1", "--out", str(out)]) == 2
    assert "'bogus'" in capsys.readouterr().err
    assert not out.exists()


def test_cli_grid_parsing():
    assert sw.parse_cli_grid(["seed=0,1", "name=a,b", "lr=1e-3"]) == {
        "seed": [0, 1],
        "name": ["a", "b"],
        "lr": [1e-3],
    }
    with pytest.raises(SweepError, match="name=value"):
        sw.parse_cli_grid(["seed"])


def test_cli_values_are_read_as_the_grid_file_reads_them(tmp_path):
    """``-p check_claims=false`` is the bool False, as ``check_claims: [false]`` in a grid file."""
    grid = tmp_path / "g.yaml"
    grid.write_text(
        "grid:\n  check_claims: [false, true]\n  lr: [1e-3, 0.5]\n  n: [3, null]\n  s: [abc, '1']\n"
    )
    from_file = sw.load_grid(grid)["grid"]
    from_cli = sw.parse_cli_grid(
        ["check_claims=false,true", "lr=1e-3,0.5", "n=3,null", "s=abc,'1'"]
    )
    assert from_cli == from_file == {"check_claims": [False, True], "lr": [0.001, 0.5], "n": [3, None],
                                     "s": ["abc", "1"]}  # fmt: skip
    assert type(from_cli["check_claims"][0]) is bool and type(from_cli["n"][0]) is int


def test_cli_bool_passes_the_notebooks_type_check(tmp_path):
    path = tmp_path / "c.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(
        "check_claims: bool = True  # assert the claims\nseed: int = 0  # a seed\n"
    )
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    plan = plan_sweep(
        path, sw.parse_cli_grid(["seed=0,1"]), fixed={"check_claims": sw.parse_value("false")}
    )
    assert plan.fixed == {"check_claims": False}
    plan = plan_sweep(path, sw.parse_cli_grid(["check_claims=false", "seed=0"]))
    assert plan.grid["check_claims"] == [False]


def test_a_failed_runs_numbers_are_kept_marked_and_reported(nb, tmp_path):
    out = tmp_path / "out"
    plan = plan_sweep(nb, {"x": [1, 2], "seed": [0]}, metric="y")
    (ok_point, ok_params), (bad_point, bad_params) = [
        (p, {**plan.fixed, **p}) for p in plan.points()
    ]
    doc = {"results": {"y": 4.25}, "key_numbers": ["y"]}
    bad_dir = out / "runs" / sw.run_name(bad_point, bad_params)
    error = "ClaimFailed: 1 claim(s) failed:\n  - a vs b (y, 3 paired seeds): -0.100 (95% CI ...): worse."
    sw.commit_run(bad_dir, {"notebook": "fx.ipynb", "parameters": bad_params, "status": "failed", "error": error},
                  {"results.json": json.dumps(doc).encode(), "fx.ipynb": b"{}"})  # fmt: skip
    kept = json.loads((bad_dir / "results.json").read_text())
    assert kept["status"] == "failed" and kept["error"] == error and kept["results"] == {"y": 4.25}
    assert not sw.is_complete(bad_dir, bad_params, "fx.ipynb")  # the next sweep runs it again
    ok_dir = out / "runs" / sw.run_name(ok_point, ok_params)
    sw.commit_run(ok_dir, {"notebook": "fx.ipynb", "parameters": ok_params, "status": "ok", "error": ""},
                  {"results.json": json.dumps({"results": {"y": 2.0}, "key_numbers": ["y"]}).encode()})  # fmt: skip
    sw.collect(out, plan, log=lambda s: None)
    rows = {r["x"]: r for r in csv.DictReader((out / "results.csv").open())}
    assert rows["2"]["status"] == "failed" and rows["2"]["y"] == "4.25"
    md = (out / "results.md").read_text()
    assert (
        "| 2 | 0 | failed |" in md
        and "4.2500 (from a failed run; ClaimFailed: 1 claim(s) failed: - a vs b" in md
    )
    assert "| 1 | 1 | 2.0000 |" in md  # the mean uses the ok run only
    # a new successful run replaces them
    sw.commit_run(bad_dir, {"notebook": "fx.ipynb", "parameters": bad_params, "status": "ok", "error": ""},
                  {"results.json": json.dumps({"results": {"y": 4.0}, "key_numbers": ["y"]}).encode()})  # fmt: skip
    assert json.loads((bad_dir / "results.json").read_text())["results"] == {"y": 4.0}
    # a failed run that wrote no numbers leaves none (the earlier ones are not its own)
    sw.commit_run(
        bad_dir,
        {"notebook": "fx.ipynb", "parameters": bad_params, "status": "failed", "error": "x"},
        {},
    )
    assert not (bad_dir / "results.json").exists()


def test_run_names_are_readable_and_unique():
    a = sw.run_name({"x": 1, "name": "a/b"}, {"x": 1, "name": "a/b"})
    b = sw.run_name({"x": 1, "name": "a_b"}, {"x": 1, "name": "a_b"})
    assert a.startswith("x-1_name-a_b_") and b.startswith("x-1_name-a_b_") and a != b
    assert sw.run_name({"x": 1}, {"x": 1, "rate": 1.0}) != sw.run_name({"x": 1}, {"x": 1})


# ------------------------------------------------------------------------------ running


@pytest.mark.slow
def test_local_sweep_records_failures_reports_and_resumes(nb, tmp_path):
    out = tmp_path / "out"
    plan = plan_sweep(nb, {"x": [1, 2, 3], "seed": [0, 1]}, fixed={"name": "b"}, x="x")
    lines: list[str] = []
    res = run_sweep(plan, out, workers=2, threads=1, timeout=120, log=lines.append)
    assert (res.total, res.skipped, res.ok, res.failed, res.incomplete) == (6, 0, 4, 2, 0)
    assert res.exit_code == 1 and not res.interrupted
    runs = _runs(out)
    assert {k: r["status"] for k, r in runs.items()} == {
        "seed=0 x=1": "ok", "seed=1 x=1": "ok", "seed=0 x=2": "ok", "seed=1 x=2": "ok",
        "seed=0 x=3": "failed", "seed=1 x=3": "failed",
    }  # fmt: skip
    assert runs["seed=0 x=3"]["error"] == "RuntimeError: x must not be 3 (cell 5)"
    assert not (runs["seed=0 x=3"]["dir"] / "results.json").exists()
    assert (runs["seed=0 x=3"]["dir"] / "fx.ipynb").is_file()  # the traceback is kept
    ok = runs["seed=1 x=2"]
    assert ok["key_numbers"] == {"y": 4.1} and ok["parameters"] == {"name": "b", "x": 2, "seed": 1}
    doc = json.loads((ok["dir"] / "results.json").read_text())
    assert doc["params"] == {
        "x": 2,
        "seed": 1,
        "rate": 0.5,
        "name": "b",
        "out_dir": doc["params"]["out_dir"],
    }
    executed = nbformat.read(ok["dir"] / "fx.ipynb", as_version=4)
    assert any('name = "b"' in c.source and "seed = 1" in c.source for c in executed.cells)
    # progress: done, failed, remaining, time
    assert any("done 4 ok, 2 failed, 0 remaining; elapsed 0:00:" in ln for ln in lines)

    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [(r["x"], r["seed"], r["status"], r["y"]) for r in rows] == [
        ("1", "0", "ok", "2.0"), ("1", "1", "ok", "2.1"), ("2", "0", "ok", "4.0"),
        ("2", "1", "ok", "4.1"), ("3", "0", "failed", ""), ("3", "1", "failed", ""),
    ]  # fmt: skip
    md = (out / "results.md").read_text()
    # mean over two seeds; half-width = sd / sqrt(2) * t(0.975, 1 dof)
    half = 0.0707107 / 2**0.5 * 12.7062047
    assert f"| 1 | 2 | 2.0500 | {half:.4f} |" in md and f"| 2 | 2 | 4.0500 | {half:.4f} |" in md
    assert "| 3 | 0 | failed |" in md and "![y](y.png)" in md
    assert (out / "y.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    before = {k: (r["dir"] / "run.json").stat().st_mtime_ns for k, r in runs.items()}
    lines.clear()
    again = run_sweep(plan, out, workers=2, threads=1, timeout=120, log=lines.append)
    assert (again.skipped, again.ok, again.failed) == (4, 0, 2)  # failed runs are retried
    after = {k: (r["dir"] / "run.json").stat().st_mtime_ns for k, r in _runs(out).items()}
    assert [k for k in before if before[k] == after[k]] == [
        "seed=0 x=1",
        "seed=1 x=1",
        "seed=0 x=2",
        "seed=1 x=2",
    ]
    assert "6 runs, 4 already complete, 2 to run" in lines[0]


@pytest.mark.slow
def test_dask_cluster_path(nb, tmp_path):
    """The --scheduler path, on a LocalCluster of two worker processes on loopback."""
    from distributed import LocalCluster

    out = tmp_path / "out"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        start = time.monotonic()
        res = run_sweep(plan_sweep(nb, {"x": [1, 2], "seed": [0, 5]}), out,
                        scheduler=cluster.scheduler_address, timeout=120, log=lambda s: None)  # fmt: skip
        assert time.monotonic() - start < 120
        workers = set(cluster.scheduler_info["workers"])
    assert (res.ok, res.failed) == (4, 0)
    runs = _runs(out)
    assert {k: r["key_numbers"]["y"] for k, r in runs.items()} == {
        "seed=0 x=1": 2.0,
        "seed=5 x=1": 2.5,
        "seed=0 x=2": 4.0,
        "seed=5 x=2": 4.5,
    }
    assert {r["worker"] for r in runs.values()} <= workers  # ran on that cluster's workers
    kernels = {
        json.loads((r["dir"] / "results.json").read_text())["results"]["pid"] for r in runs.values()
    }
    assert len(kernels) == 4  # one kernel per run
    assert len(list(csv.DictReader((out / "results.csv").open()))) == 4


def _wait_for(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _start_blocked_sweep(tmp_path: Path):
    """A CLI sweep over x=1 (finishes), x=2 and x=4 (wait for the go file) on 2 workers."""
    pids, go = tmp_path / "pids", tmp_path / "go"
    pids.mkdir()
    path = make_notebook(tmp_path / "block.ipynb", pid_dir=pids, go=go)
    out = tmp_path / "out"
    args = (str(path), "-p", "x=1,2,4", "--out", str(out), "--workers", "2", "--threads", "1")
    proc = _cli(*args)

    def ready() -> bool:  # x=1 committed, the two others running in their kernels
        return (
            any(r.get("status") == "ok" for r in _runs(out).values())
            if (out / "runs").is_dir()
            else False
        ) and {p.name for p in pids.iterdir()} >= {"2-0.pid", "4-0.pid"}

    try:
        _wait_for(ready, 120, "x=1 to finish and x=2, x=4 to start")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[0]) from None
    kernels = [int((pids / f"{x}-0.pid").read_text()) for x in (2, 4)]
    return proc, args, out, go, kernels


@pytest.mark.slow
def test_ctrl_c_stops_promptly_keeps_finished_runs_and_rerun_completes(tmp_path):
    proc, args, out, go, kernels = _start_blocked_sweep(tmp_path)
    finished = next(r for r in _runs(out).values() if r.get("status") == "ok")
    kept = (finished["dir"] / "results.json").read_bytes()
    stamp = (finished["dir"] / "results.json").stat().st_mtime_ns
    start = time.monotonic()
    proc.send_signal(signal.SIGINT)  # once
    output = proc.communicate(timeout=30)[0]
    stopped_in = time.monotonic() - start
    assert proc.returncode == 130, output
    assert stopped_in < 15, f"{stopped_in:.1f} s\n{output}"
    _wait_for(lambda: all(_dead(k) for k in kernels), 5, "the kernels to end")
    runs = _runs(out)
    assert {k: r["status"] for k, r in runs.items()} == {
        "x=1": "ok",
        "x=2": "incomplete",
        "x=4": "incomplete",
    }, output
    assert not (runs["x=2"]["dir"] / "results.json").exists()
    assert "run the same command again" in output

    go.write_text("go")
    rerun = _cli(*args)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert "3 runs, 1 already complete, 2 to run" in output
    runs = _runs(out)
    assert {r["status"] for r in runs.values()} == {"ok"}
    assert (finished["dir"] / "results.json").read_bytes() == kept
    assert (finished["dir"] / "results.json").stat().st_mtime_ns == stamp
    assert [r["y"] for r in csv.DictReader((out / "results.csv").open())] == ["2.0", "4.0", "8.0"]


@pytest.mark.slow
def test_killed_sweep_loses_nothing_finished_and_resumes(tmp_path):
    proc, args, out, go, kernels = _start_blocked_sweep(tmp_path)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.communicate(timeout=30)
    # each run's process notices its parent is gone and ends its kernel
    _wait_for(lambda: all(_dead(k) for k in kernels), 20, "the orphaned kernels to end")
    statuses = {k: r.get("status") for k, r in _runs(out).items()}
    assert statuses["x=1"] == "ok" and "x=2" not in statuses
    go.write_text("go")
    rerun = _cli(*args)
    output = rerun.communicate(timeout=120)[0]
    assert rerun.returncode == 0, output
    assert "3 runs, 1 already complete, 2 to run" in output  # the stale lock is taken over
    assert {r["status"] for r in _runs(out).values()} == {"ok"}


def test_collect_with_a_categorical_axis_and_a_missing_metric(nb, tmp_path):
    out = tmp_path / "out"
    plan = plan_sweep(nb, {"name": ["p", "q"]}, metric="label")
    lines: list[str] = []
    res = run_sweep(plan, out, workers=1, threads=1, timeout=120, log=lines.append)
    assert res.ok == 2
    assert any("no numeric result 'label' to plot; numeric results: pid, y" in ln for ln in lines)
    assert not list(out.glob("*.png"))
    plan.metric = "y"
    sw.collect(out, plan, log=lines.append)
    md = (out / "results.md").read_text()
    assert "| p | 1 | 2.0000 | 0.0000 |" in md and (out / "y.png").is_file()


def test_shipped_example_grid_fits_notebook_00():
    doc = sw.load_grid(ROOT / "sweeps" / "welcome_grid.yaml")
    plan = plan_sweep(
        ROOT / "notebooks" / "00_welcome.ipynb", doc["grid"], fixed=doc["fixed"],
        metric=doc["metric"], x=doc["x"], seed_param=doc["seed_param"],
    )  # fmt: skip
    assert len(plan.points()) == 12 and plan.x == "per_class"
    assert check_values(plan) == []  # the notebook's own guard accepts every run
