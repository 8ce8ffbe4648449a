"""Run the course's notebooks with papermill and summarise them (``make run``), or sweep one.

::

    python -m tlhelpers.runner run                       # every notebook, defaults
    python -m tlhelpers.runner run --params smoke.json   # per-notebook overrides
    python -m tlhelpers.runner sweep notebooks/00_welcome.ipynb -p seed=0,1,2 -p per_class=2,10

Unknown parameter names are refused before anything runs (papermill itself only
warns). One failing notebook or sweep point is recorded and the others still run;
``summary.json`` / ``sweep.json`` are rewritten after every run, so nothing
finished is lost.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .interactive import WIDGETS_ENV
from .paths import repo_root


@dataclass
class RunRecord:
    """What happened to one notebook run."""

    notebook: str
    status: str  # "ok" | "failed"
    wall_time_s: float
    parameters: dict[str, Any] = field(default_factory=dict)
    key_numbers: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    error: str = ""


def notebook_parameters(path: str | Path) -> dict[str, dict]:
    """The parameters a notebook declares (name -> papermill's type/default/help)."""
    import papermill as pm

    return pm.inspect_notebook(str(path))


def check_parameter_names(path: str | Path, parameters: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming unknown parameters and listing the valid ones."""
    declared = notebook_parameters(path)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise ValueError(
            f"Unknown parameter(s) {', '.join(map(repr, unknown))} for {Path(path).name}. "
            f"Valid parameters: {', '.join(sorted(declared))}."
        )


def _key_numbers(out_dir: Path) -> dict[str, Any]:
    path = out_dir / "results.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {k: doc["results"].get(k) for k in doc.get("key_numbers", [])}


def run_notebook(
    path: str | Path,
    out_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: int = 900,
    progress: bool = False,
) -> RunRecord:
    """Execute one notebook into ``out_dir`` (executed copy + its ``results.json``).

    The notebook's ``out_dir`` parameter is set to ``out_dir``. Unknown parameter
    names raise ``ValueError`` before execution; an execution failure is caught
    and returned as a ``"failed"`` record with the error.
    """
    import papermill as pm

    path = Path(path).resolve()
    parameters = dict(parameters or {})
    check_parameter_names(path, parameters)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if "out_dir" in notebook_parameters(path):
        parameters.setdefault("out_dir", str(out))
    # Headless: widgets become one plain call (tlhelpers.interactive); kernels inherit this.
    os.environ.setdefault(WIDGETS_ENV, "0")
    stale = out / "results.json"
    if stale.exists():
        stale.unlink()  # never report numbers of an earlier run
    executed = out / path.name
    start = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path), str(executed), parameters=parameters, cwd=str(path.parent),
            execution_timeout=timeout, progress_bar=progress, kernel_name="python3",
        )  # fmt: skip
        status, error = "ok", ""
    except Exception as err:  # a failing notebook must not stop the others
        status = "failed"
        error = f"{type(err).__name__}: {err}"[-2000:]
    wall = time.perf_counter() - start
    return RunRecord(
        notebook=path.name, status=status, wall_time_s=round(wall, 1),
        parameters={k: v for k, v in parameters.items() if k != "out_dir"},
        key_numbers=_key_numbers(out) if status == "ok" else {},
        output=str(executed), error=error,
    )  # fmt: skip


#: A course notebook's file name: two digits, an optional part letter, "_", a name
#: (``00_welcome.ipynb``, ``03a_loss_transfer.ipynb``).
NOTEBOOK_NAME = re.compile(r"^\d\d[a-z]?_[\w-]+\.ipynb$")


def course_notebooks(folder: Path) -> list[Path]:
    """The notebooks of ``folder`` whose names match :data:`NOTEBOOK_NAME`, in course order."""
    return sorted(p for p in Path(folder).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))


def default_notebooks() -> list[Path]:
    """The course notebooks in order (``notebooks/NN_*.ipynb``, ``notebooks/NNa_*.ipynb``)."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError("Run from a clone of the repository (notebooks/ not found).")
    return course_notebooks(root / "notebooks")


def _write_summary(records: list[RunRecord], build: Path) -> None:
    (build / "summary.json").write_text(json.dumps([asdict(r) for r in records], indent=2))
    lines = ["| notebook | status | wall time (s) | key numbers |", "|---|---|---|---|"]
    for r in records:
        nums = ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.key_numbers.items()
        )
        lines.append(f"| {r.notebook} | {r.status} | {r.wall_time_s} | {nums or r.error[:80]} |")
    (build / "summary.md").write_text("\n".join(lines) + "\n")


def run_all(
    notebooks: Iterable[str | Path] | None = None,
    build: str | Path = "build",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    timeout: int = 900,
) -> list[RunRecord]:
    """Run notebooks in order; write ``build/summary.{json,md}`` after each one."""
    build = Path(build).resolve()
    build.mkdir(parents=True, exist_ok=True)
    parameters = parameters or {}
    paths = [Path(p) for p in (notebooks or default_notebooks())]
    for p in paths:  # refuse bad names up front, before hours of work
        check_parameter_names(p, parameters.get(p.stem, {}))
    records: list[RunRecord] = []
    for p in paths:
        print(f"running {p.name} ...", flush=True)
        rec = run_notebook(p, build / p.stem, parameters.get(p.stem, {}), timeout=timeout)
        print(f"  {rec.status} in {rec.wall_time_s} s {rec.key_numbers or rec.error[:200]}",
              flush=True)
        records.append(rec)
        _write_summary(records, build)
    return records


def sweep(
    notebook: str | Path,
    grid: Mapping[str, list[Any]],
    build: str | Path = "build/sweep",
    *,
    timeout: int = 900,
) -> list[RunRecord]:
    """Run ``notebook`` on every combination of ``grid``; failures are recorded, not fatal.

    Each point runs in its own folder; ``sweep.json`` is rewritten after every point.
    """
    notebook = Path(notebook)
    check_parameter_names(notebook, grid)
    build = Path(build).resolve()
    build.mkdir(parents=True, exist_ok=True)
    names = list(grid)
    records: list[RunRecord] = []
    for values in itertools.product(*(grid[n] for n in names)):
        point = dict(zip(names, values, strict=True))
        tag = "_".join(f"{k}-{v}" for k, v in point.items()) or "default"
        try:
            rec = run_notebook(notebook, build / tag, point, timeout=timeout)
        except Exception:  # even an unexpected runner error keeps the sweep going
            rec = RunRecord(notebook.name, "failed", 0.0, point, error=traceback.format_exc())
        print(f"{tag}: {rec.status} {rec.key_numbers or rec.error[:200]}", flush=True)
        records.append(rec)
        (build / "sweep.json").write_text(json.dumps([asdict(r) for r in records], indent=2))
    return records


def _parse_value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parse_grid(items: list[str]) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"-p expects name=value[,value...], got {item!r}")
        name, values = item.split("=", 1)
        grid[name] = [_parse_value(v) for v in values.split(",")]
    return grid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.runner", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run notebooks in order and write build/summary.md")
    run.add_argument("notebooks", nargs="*", help="default: every notebooks/NN_*.ipynb")
    run.add_argument("--build", default="build")
    run.add_argument("--params", help="JSON file: {notebook stem: {name: value}}")
    run.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    sw = sub.add_parser("sweep", help="run one notebook over a parameter grid")
    sw.add_argument("notebook")
    sw.add_argument("-p", "--param", action="append", default=[], help="name=v1,v2,...")
    sw.add_argument("--build", default="build/sweep")
    sw.add_argument("--timeout", type=int, default=900)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "run":
            params = json.loads(Path(args.params).read_text()) if args.params else None
            records = run_all(args.notebooks or None, args.build, params, timeout=args.timeout)
            print((Path(args.build) / "summary.md").read_text())
        else:
            records = sweep(args.notebook, _parse_grid(args.param), args.build,
                            timeout=args.timeout)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0 if all(r.status == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
