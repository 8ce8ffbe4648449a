"""``make benchmark``'s script works: CI runs it in its smoke mode only.

Timings on a CI machine are noise; this checks that every part runs, stores its JSON
(machine, versions, date, load) and that BENCHMARKS.md is rendered from the stored parts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "make_benchmarks.py"
sys.path.insert(0, str(SCRIPT.parent))

import make_benchmarks as mb  # noqa: E402


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=1800)  # fmt: skip


@pytest.mark.slow
def test_smoke_run_writes_every_part_and_renders(tmp_path):
    out = tmp_path / "B.md"
    proc = _run("--smoke", "--results-dir", str(tmp_path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "all parts took" in proc.stdout
    text = out.read_text()
    for part in mb.PARTS:
        doc = json.loads((tmp_path / f"{part}.json").read_text())
        assert doc["smoke"] and doc["machine"]["torch"] and doc["load_before"]
        assert f"## {mb.TITLES[part]}" in text
    assert "Not measured yet" not in text
    assert text.count("SMOKE MODE") == len(mb.PARTS)
    fit = json.loads((tmp_path / "fit.json").read_text())["data"]
    assert fit["identical_weights"] is True  # fit and the plain loop agree bit for bit
    nb = json.loads((tmp_path / "notebooks.json").read_text())["data"]["rows"]
    assert [r["ok"] for r in nb] == [True]
    # one part alone re-renders with the others kept
    proc = _run("--smoke", "--parts", "fit", "--results-dir", str(tmp_path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"## {mb.TITLES['samples']}" in out.read_text()


def test_bad_arguments_are_refused_by_name(tmp_path):
    proc = _run(
        "--parts", "fit,speed", "--results-dir", str(tmp_path), "--out", str(tmp_path / "B.md")
    )
    assert proc.returncode != 0 and "invalid --parts 'fit,speed'" in proc.stderr
    assert "Valid parts: notebooks, threads, fit, cache, samples, anchor" in proc.stderr
    proc = _run("--repeats", "0", "--results-dir", str(tmp_path))
    assert proc.returncode != 0 and "--repeats must be >= 1, got 0" in proc.stderr
    proc = _run("--smoke")  # never overwrite the stored real results with smoke numbers
    assert proc.returncode != 0 and "--results-dir" in proc.stderr


def test_render_marks_missing_parts(tmp_path):
    text = mb.render(tmp_path, tmp_path / "B.md").read_text()
    assert text.count("Not measured yet") == len(mb.PARTS)
    assert "make benchmark PARTS=threads" in text


def test_render_notebooks_without_loaded_or_today_says_not_run():
    row = {"notebook": "00_welcome.ipynb", "budget_s": 45, "budget_gb": 2.0, "ok": True,
           "quiet_s": 18.0, "peak_gb": 1.0, "pytorch_quiet_s": None, "loaded_s": None,
           "quiet_vs_today": None, "loaded_vs_quiet": None, "errors": []}  # fmt: skip
    lines = mb.render_notebooks(
        {"rows": [row, dict(row, notebook="01_x.ipynb", quiet_s=2.0)], "repeats": 1}
    )
    text = "\n".join(lines)
    assert (
        "| 00_welcome.ipynb | 45 s, 2.0 GB | 18.0 | 1.00 | not run | not run | not run | not run | yes |"
        in text
    )
    assert f"| **course total** | {mb.COURSE_BUDGET_S} s | 20 |" in text
    assert "--skip-loaded" in text and "--skip-today" in text


def test_busy_processes_stop_when_the_benchmark_dies(tmp_path):
    # A benchmark killed mid-run must not leave a busy loop that spoils every later timing.
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r})\n"
        "import make_benchmarks as mb\n"
        "with mb.busy(1):\n"
        "    import os\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True
    ).stdout.split()
    assert len(children) == 1
    parent.kill()
    parent.wait()
    child = int(children[0])
    for _ in range(100):  # the loop checks its parent on every pass
        if (
            not os.path.exists(f"/proc/{child}")
            or "Z" in open(f"/proc/{child}/stat").read().split()[2]
        ):
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        raise AssertionError("the busy loop outlived its parent")
