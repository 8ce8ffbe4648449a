"""Wall time and peak memory of each notebook at its default parameters, against its budget.

Runs every ``notebooks/NN_*.ipynb`` (or those named) with papermill in a fresh process
and reports wall time and the kernel's peak RSS. Budgets on a 2-core CPU: notebook
00 <= 45 s and < 2 GB; every other notebook <= 90 s and < 3 GB; 00-04 together <= 6 minutes.
Run on a quiet machine: shared cores slow small models down sharply.

    python benchmarks/bench_notebooks.py [notebooks/01_preprocessing.ipynb ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tlhelpers.runner import course_notebooks  # noqa: E402

BUDGETS = {"00": (45, 2.0)}  # seconds, GB; every other notebook: (90, 3.0)

CHILD = """
import resource, subprocess, sys
r = subprocess.run([sys.executable, "-m", "papermill", "--no-progress-bar", sys.argv[1], sys.argv[2],
                    "-p", "out_dir", sys.argv[3], "--cwd", sys.argv[4]], capture_output=True, text=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)
sys.stderr.write(r.stderr[-3000:] if r.returncode else "")
"""


def bench(path: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), f"{tmp}/out.ipynb", tmp, str(path.parent)],
            capture_output=True, text=True,
        )  # fmt: skip
        wall = time.perf_counter() - start
        rss_kb, rc = proc.stdout.split()[-2:]
        nb_time = None
        results = Path(tmp) / "results.json"
        if results.is_file():
            nb_time = json.loads(results.read_text()).get("wall_time_s")
    limit_s, limit_gb = BUDGETS.get(path.name[:2], (90, 3.0))
    return {
        "notebook": path.name, "ok": rc == "0", "wall_s": round(wall, 1),
        "in_notebook_s": None if nb_time is None else round(nb_time, 1),
        "peak_rss_gb": round(int(rss_kb) / 2**20, 2),
        "within_budget": rc == "0" and wall <= limit_s and int(rss_kb) / 2**20 < limit_gb,
        "budget": f"{limit_s} s, {limit_gb} GB", "stderr": proc.stderr[-500:],
    }  # fmt: skip


def main() -> None:
    paths = [Path(p) for p in sys.argv[1:]] or course_notebooks(ROOT / "notebooks")
    print(f"{'notebook':32s} {'ok':>3s} {'wall s':>7s} {'in-nb s':>7s} {'peak GB':>7s}  budget")
    total = 0.0
    for p in paths:
        r = bench(p.resolve())
        total += r["wall_s"]
        flag = "" if r["within_budget"] else "  <-- over budget or failed"
        print(
            f"{r['notebook']:32s} {str(r['ok'])[0]:>3s} {r['wall_s']:7.1f} "
            f"{r['in_notebook_s'] or float('nan'):7.1f} {r['peak_rss_gb']:7.2f}  {r['budget']}{flag}"
        )
        if not r["ok"]:
            print(r["stderr"])
    print(f"{'total':32s} {'':>3s} {total:7.1f}  (budget for the course 00-04: 360 s)")


if __name__ == "__main__":
    main()
