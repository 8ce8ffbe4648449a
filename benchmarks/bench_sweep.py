"""Sweep budgets: the runner's overhead per run, and 2 workers against 1 on 8 short runs.

    python benchmarks/bench_sweep.py [--runs 8] [--work 2.0]

The notebook is a fixture without torch whose one cell does ``--work`` seconds of
pure-Python arithmetic (CPU-bound, one thread), so 2 workers can only help if there
are 2 free cores. Reported:

- baseline: papermill's own time per run (kernel start + cells), in-process;
- overhead per run: the serial sweep's time per run minus the baseline (the runner's
  child process, Dask, writing the files); budget < 2 s;
- parallel / serial: total time of the same grid with 2 workers over 1 worker
  (ideal 0.5 on 2 free cores); one-time costs (check, cluster, reports) are shown apart.

Measure on a quiet machine: with other jobs on the cores these numbers mean little.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TLHELPERS_WIDGETS", "0")

import nbformat  # noqa: E402

from tlhelpers.sweep import plan_sweep, run_sweep  # noqa: E402

WORK = """import json, os, time
start = time.process_time()
n = 0
while time.process_time() - start < {work}:  # CPU-bound, one thread
    n += sum(i * i for i in range(10_000))
doc = {{"results": {{"seconds": time.process_time() - start}}, "key_numbers": ["seconds"]}}
open(os.path.join(out_dir, "results.json"), "w").write(json.dumps(doc))
"""


def fixture(path: Path, work: float) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('seed: int = 0  # a seed\nout_dir: str = ""  # results')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(WORK.format(work=work))]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)
    return path


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--work", type=float, default=2.0, help="CPU seconds per notebook")
    args = parser.parse_args()
    import papermill as pm

    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        tmp = Path(tmp)
        nb = fixture(tmp / "work.ipynb", args.work)
        print(f"cores {os.cpu_count()}, load average before: {load()}")
        base = []
        for i in range(3):
            out = tmp / f"base{i}"
            out.mkdir()
            start = time.perf_counter()
            pm.execute_notebook(str(nb), str(out / "x.ipynb"), parameters={"out_dir": str(out)},
                                progress_bar=False, kernel_name="python3")  # fmt: skip
            base.append(time.perf_counter() - start)
        baseline = sorted(base)[1]
        print(f"baseline (papermill in-process, median of 3): {baseline:.2f} s per run")
        plan = plan_sweep(nb, {"seed": list(range(args.runs))})
        totals = {}
        for workers in (1, 2):
            start = time.perf_counter()
            res = run_sweep(
                plan, tmp / f"w{workers}", workers=workers, threads=1, log=lambda s: None
            )
            total = time.perf_counter() - start
            totals[workers] = res.wall_time_s
            assert res.ok == args.runs, res
            print(f"{workers} worker(s): {res.wall_time_s:.2f} s for {args.runs} runs "
                  f"({res.wall_time_s / args.runs:.2f} s per run); with the one-time check, "
                  f"cluster and reports {total:.2f} s; load average {load()}")  # fmt: skip
        overhead = totals[1] / args.runs - baseline
        print(
            f"overhead per run (serial sweep per run - baseline): {overhead:.2f} s (budget < 2 s)"
        )
        print(f"parallel / serial (2 workers / 1): {totals[2] / totals[1]:.2f} (ideal 0.5)")
        print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
