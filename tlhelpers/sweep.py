"""Parameter sweeps over one notebook: checked up front, resumable, parallel or on a Dask cluster.

::

    python -m tlhelpers sweep notebooks/00_welcome.ipynb --grid sweeps/welcome_grid.yaml \\
        --out build/sweeps/welcome --workers 2
    python -m tlhelpers sweep notebooks/00_welcome.ipynb -p per_class=1,2 -p seed=0,1 --out DIR
    python -m tlhelpers sweep ... --scheduler tcp://10.0.0.5:8786   # an existing Dask cluster

A grid file (YAML)::

    grid:              # every combination is one run
      per_class: [1, 2, 5]
      seed: [0, 10, 20]
    fixed:             # the same in every run
      n_seeds: 1
    metric: probe_accuracy_mean   # plotted against the swept parameters (default: first key number)
    x: per_class                  # the plot's x axis (default: first swept non-seed parameter)
    seed_param: seed              # intervals are taken over this one (default: seed)

Before any run, every parameter name, type and value is checked against the notebook
(names and types from its ``parameters`` cell, values by executing its
``ParameterGuard.check`` on each grid point, without the rest of the notebook), and
the output folder must be new, empty or a sweep of the same notebook and names.

Runs are Dask futures, on a ``LocalCluster`` (``--workers N``) or on the cluster at
``--scheduler``; each run executes in a child process of its own
(:func:`tlhelpers.runner.execute_isolated`) with ``--threads`` intra-op threads, in a
temporary folder, and its files come back to this process, which writes them into
``OUT/runs/<run>/`` atomically, ``run.json`` last. A rerun skips every run whose
``run.json`` says ``ok`` for the same parameters, so an interrupted sweep loses
nothing that had finished. Ctrl-C stops the running notebooks (their kernels
end), marks them ``incomplete`` and keeps everything finished. Finally
``results.csv``, ``results.md`` and ``<metric>.png`` (mean and 95% interval over
seeds) are written from every run's ``results.json``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import itertools
import json
import math
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import atomic_write, read_text_file
from .runner import (
    STOP_GRACE_S,
    execute_isolated,
    notebook_parameters,
    obey_sigint,
    run_environment,
)

__all__ = [
    "check_out_dir",
    "check_values",
    "collect",
    "commit_run",
    "connect",
    "CONNECT_TIMEOUT_S",
    "execute_run",
    "GRID_KEYS",
    "is_complete",
    "load_grid",
    "main",
    "MANIFEST",
    "parse_cli_grid",
    "plan_sweep",
    "read_run",
    "run_name",
    "run_sweep",
    "SweepError",
    "SweepPlan",
    "SweepResult",
    "parse_value",
]

#: Keys a grid file may hold.
GRID_KEYS = ("grid", "fixed", "metric", "x", "seed_param")
#: The manifest that marks a folder as a sweep's output.
MANIFEST = "sweep.json"
#: Seconds to wait for a Dask scheduler before giving up.
CONNECT_TIMEOUT_S = 5.0


class SweepError(ValueError):
    """A sweep refused before any run: bad grid, parameter, folder or scheduler."""


@dataclass
class SweepPlan:
    """A checked sweep: the notebook, its runs and how to report them."""

    notebook: Path
    grid: dict[str, list[Any]]
    fixed: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    x: str | None = None
    seed_param: str = "seed"

    @property
    def names(self) -> list[str]:
        """Every parameter the sweep sets, swept or fixed (sorted)."""
        return sorted({*self.grid, *self.fixed})

    def points(self) -> list[dict[str, Any]]:
        """Every combination of the grid, in the grid's order."""
        names = list(self.grid)
        return [
            dict(zip(names, values, strict=True))
            for values in itertools.product(*(self.grid[n] for n in names))
        ]


@dataclass
class SweepResult:
    """What a call of :func:`run_sweep` did."""

    out: Path
    total: int
    skipped: int
    ok: int
    failed: int
    incomplete: int
    interrupted: bool
    wall_time_s: float
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """130 if interrupted, 1 if a run failed, else 0."""
        return 130 if self.interrupted else (1 if self.failed else 0)


# --------------------------------------------------------------------------- grid input


def load_grid(path: str | Path) -> dict[str, Any]:
    """Read and shape-check a grid file; errors name the file and say what to write."""
    import yaml

    path = Path(path)
    example = "see sweeps/welcome_grid.yaml for the format"
    text = read_text_file(path, "grid file", SweepError)
    try:
        doc = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SweepError(
            f"grid file {path} is not valid YAML{where}: {problem}; {example}."
        ) from None
    if not isinstance(doc, dict):
        raise SweepError(
            f"grid file {path} must be a mapping with a 'grid:' section, got "
            f"{type(doc).__name__}; {example}."
        )
    unknown = sorted(set(doc) - set(GRID_KEYS))
    if unknown:
        raise SweepError(
            f"grid file {path}: unknown key(s) {', '.join(map(repr, unknown))}. "
            f"Valid keys: {', '.join(GRID_KEYS)}; {example}."
        )
    if "grid" not in doc:
        raise SweepError(f"grid file {path} has no 'grid:' section; {example}.")
    return doc


def _yaml_loader():
    """PyYAML's safe loader, with YAML 1.2 floats: ``1e-3`` is a number (YAML 1.1 reads a string)."""
    import re as _re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        _re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
        list("-+0123456789"),
    )
    return Loader


def parse_value(text: str) -> Any:
    """One value as the grid file reads it: a YAML scalar (``false`` -> False, ``3`` -> 3, ``1e-3`` -> 0.001)."""
    import yaml

    try:
        value = yaml.load(text, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError:
        return text
    return text if value is None and text.strip() not in ("null", "~", "Null", "NULL") else value


def parse_cli_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["seed=0,1", "lr=1e-3", "check_claims=false"]`` -> ``{"seed": [0, 1], "lr": [0.001], "check_claims": [False]}``.

    Each comma-separated value is read as a YAML scalar, exactly as a value in a grid file
    (:func:`load_grid`): ``true``/``false`` are bools, numbers are numbers, ``null`` is None,
    anything else a string.
    """
    grid: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise SweepError(f"-p expects name=value[,value...], got {item!r}.")
        name, values = item.split("=", 1)
        grid[name.strip()] = [parse_value(v) for v in values.split(",")]
    return grid


def _check_shape(grid: Any, fixed: Any, source: str) -> None:
    if not isinstance(grid, dict) or not grid:
        raise SweepError(
            f"{source}: the grid is empty, so there is nothing to run. Give at least one "
            "parameter with a list of values, e.g. 'grid: {seed: [0, 1, 2]}'."
        )
    for name, values in grid.items():
        if not isinstance(values, list):
            raise SweepError(
                f"{source}: grid.{name} must be a list of values, got {values!r}; "
                f"write [{values!r}] or move it under 'fixed:'."
            )
        if not values:
            raise SweepError(f"{source}: grid.{name} is an empty list, so the grid has no runs.")
        keys = [json.dumps(v, sort_keys=True, default=str) for v in values]
        if len(set(keys)) != len(keys):
            raise SweepError(f"{source}: grid.{name} lists a value twice: {values!r}.")
    if not isinstance(fixed, dict):
        raise SweepError(f"{source}: 'fixed:' must map names to values, got {fixed!r}.")
    both = sorted(set(grid) & set(fixed))
    if both:
        raise SweepError(f"{source}: {', '.join(both)} both swept and fixed; keep one.")


def _type_ok(value: Any, declared: str) -> bool:
    """Does ``value`` fit papermill's ``inferred_type_name`` (``int``, ``list[int]``, ``int | None``)?"""
    parts = [p.strip().strip("'\"") for p in declared.split("|")]
    if "None" in parts and value is None:
        return True
    for part in parts:
        base = part.split("[")[0].strip().lower()
        if base in ("none", "any", ""):  # no annotation: papermill infers nothing
            if len(parts) == 1:
                return True
            continue
        if base == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif base == "float":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif base == "bool":
            ok = isinstance(value, bool)
        elif base == "str":
            ok = isinstance(value, str)
        elif base in ("list", "tuple", "sequence"):
            ok = isinstance(value, (list, tuple))
        elif base in ("dict", "mapping"):
            ok = isinstance(value, dict)
        else:  # a type we cannot check here; the notebook's own guard will
            ok = True
        if ok:
            return True
    return False


def plan_sweep(
    notebook: str | Path,
    grid: Mapping[str, list[Any]],
    *,
    fixed: Mapping[str, Any] | None = None,
    metric: str | None = None,
    x: str | None = None,
    seed_param: str | None = None,
    source: str = "the grid",
) -> SweepPlan:
    """Check names and types against the notebook's ``parameters`` cell; raise :class:`SweepError`."""
    notebook = Path(notebook)
    if not notebook.is_file():
        raise SweepError(f"notebook {notebook} does not exist.")
    fixed = dict(fixed or {})
    _check_shape(dict(grid) if isinstance(grid, Mapping) else grid, fixed, source)
    declared = notebook_parameters(notebook)
    valid = ", ".join(sorted(declared))
    unknown = sorted((set(grid) | set(fixed)) - set(declared))
    if unknown:
        raise SweepError(
            f"{source}: unknown parameter(s) {', '.join(map(repr, unknown))} for "
            f"{notebook.name}. Valid parameters: {valid}."
        )
    if "out_dir" in grid or "out_dir" in fixed:
        raise SweepError(f"{source}: out_dir is set by the sweep (one folder per run); remove it.")
    for section, values in [("grid", grid), ("fixed", fixed)]:
        for name, vals in values.items():
            typ = declared[name]["inferred_type_name"]
            for v in vals if section == "grid" else [vals]:
                if not _type_ok(v, typ):
                    hint = ""
                    if isinstance(v, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", v):
                        hint = " (YAML reads 1e-3 as text: write 1.0e-3 or 0.001)"
                    raise SweepError(
                        f"{source}: {section}.{name} has {v!r} ({type(v).__name__}), but "
                        f"{notebook.name} declares {name}: {typ}{hint}."
                    )
    seed = seed_param or "seed"
    if seed_param is not None and seed_param not in declared:
        raise SweepError(f"{source}: seed_param {seed_param!r} is not a parameter. Valid: {valid}.")
    if x is not None and x not in grid:
        raise SweepError(f"{source}: x={x!r} is not swept. Swept: {', '.join(grid)}.")
    if metric is not None and not isinstance(metric, str):
        raise SweepError(f"{source}: metric must be the name of a result, got {metric!r}.")
    return SweepPlan(
        notebook.resolve(), {k: list(v) for k, v in grid.items()}, fixed, metric, x, seed
    )


# ------------------------------------------------------------------ values: the guard, run early

_PREFLIGHT = r"""
import json, sys
sys.modules.setdefault("rfc3987_syntax", None)
spec = json.load(open(sys.argv[1]))
out = {"setup": None, "errors": []}
for injected in spec["points"]:
    ns = {"__name__": "__main__"}
    try:
        for i, src in enumerate(spec["before"]):
            exec(compile(src, f"<cell {i}>", "exec"), ns)
        exec(compile(spec["parameters"], "<parameters>", "exec"), ns)
        exec(compile(injected, "<injected-parameters>", "exec"), ns)
    except Exception as err:
        out["setup"] = f"{type(err).__name__}: {err}"
        break
    try:
        exec(compile(spec["check"], "<parameter check>", "exec"), ns)
        out["errors"].append(None)
    except (ValueError, AssertionError) as err:  # ParameterError is a ValueError
        out["errors"].append(f"{type(err).__name__}: {err}")
    except Exception as err:
        out["setup"] = f"{type(err).__name__}: {err}"
        break
json.dump(out, open(sys.argv[2], "w"))
"""


def _check_code(source: str) -> str | None:
    """The statements of the cell after ``parameters`` up to its ``*.check(...)`` and its asserts."""
    import ast

    try:
        body = ast.parse(source).body
    except SyntaxError:
        return None
    keep: list[ast.stmt] = []
    found = False
    for stmt in body:
        if found and not isinstance(stmt, ast.Assert):
            break
        keep.append(stmt)
        calls = [n for n in ast.walk(stmt) if isinstance(n, ast.Call)]
        if any(isinstance(c.func, ast.Attribute) and c.func.attr == "check" for c in calls):
            found = True
    return ast.unparse(ast.Module(body=keep, type_ignores=[])) if found else None


def check_values(plan: SweepPlan, timeout: float = 300) -> list[str]:
    """Run the notebook's parameter check on every run's values, in a child process.

    Executes the code cells before the ``parameters`` cell, the parameters, papermill's
    injected values, then the next cell up to its ``guard.check(...)`` and the asserts
    right after it: nothing else of the notebook. Returns notes (e.g. no check found);
    raises :class:`SweepError` listing the runs whose values are refused.
    """
    import nbformat
    from papermill.translators import PythonTranslator

    nb = nbformat.read(plan.notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        return [f"{plan.notebook.name} has no 'parameters' cell: values are not checked up front."]
    i = tagged[0]
    check = _check_code(code[i + 1].source) if i + 1 < len(code) else None
    if check is None:
        return [f"{plan.notebook.name} has no parameter check after its parameters cell: "
                "values are checked only when each run starts."]  # fmt: skip
    points = plan.points()
    spec = {
        "before": [c.source for c in code[:i]], "parameters": code[i].source, "check": check,
        "points": [PythonTranslator.codify({**plan.fixed, **p}) for p in points],
    }  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tlhelpers-check-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps(spec))
        try:
            proc = subprocess.run(
                [sys.executable, "-c", _PREFLIGHT, str(spec_path), str(out_path)],
                env=run_environment(threads=1), cwd=plan.notebook.parent, timeout=timeout,
                capture_output=True, text=True,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return [f"the parameter check took over {timeout:.0f} s; values were not checked."]
        if not out_path.is_file():
            return [f"the parameter check did not run ({proc.stderr.strip()[-300:]}); "
                    "values are checked only when each run starts."]  # fmt: skip
        result = json.loads(out_path.read_text())
    if result["setup"]:
        return [f"could not run the notebook's parameter check ({result['setup']}); values "
                "are checked only when each run starts."]  # fmt: skip
    bad = [(p, e) for p, e in zip(points, result["errors"], strict=False) if e]
    if bad:
        lines = [f"  {_label(p)}: {e}" for p, e in bad[:10]]
        more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
        raise SweepError(
            f"{len(bad)} of {len(points)} runs have values {plan.notebook.name} refuses; "
            "fix the grid:\n" + "\n".join(lines) + more
        )
    return []


# --------------------------------------------------------------------------- output folder


def _canonical(params: Mapping[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)


def _label(point: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in point.items()) or "defaults"


def run_name(point: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """Folder name of a run: the swept values, readable, and a hash of all its parameters."""
    text = "_".join(f"{k}-{v}" for k, v in point.items())
    text = re.sub(r"[^A-Za-z0-9.+-]+", "_", text)[:80].strip("_") or "run"
    digest = hashlib.sha1(_canonical(params).encode()).hexdigest()[:8]
    return f"{text}_{digest}"


def check_out_dir(out: Path, plan: SweepPlan) -> None:
    """Refuse a folder that holds anything but a sweep of the same notebook and names."""
    manifest = out / MANIFEST
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
        except json.JSONDecodeError as err:
            raise SweepError(
                f"{manifest} is not valid JSON ({err.msg}); choose another --out."
            ) from None
        if doc.get("notebook") != plan.notebook.name:
            raise SweepError(
                f"{out} holds a sweep of {doc.get('notebook')}, not {plan.notebook.name}; "
                "choose another --out (or delete that folder)."
            )
        if sorted(doc.get("parameters", [])) != plan.names:
            raise SweepError(
                f"{out} holds a sweep over parameters {', '.join(doc.get('parameters', []))}, "
                f"this one sets {', '.join(plan.names)}; choose another --out (or delete "
                "that folder) so that the two sweeps' results are not mixed."
            )
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SweepError(
            f"{out} is not empty and holds no {MANIFEST}, so it is not a sweep's folder "
            "(its results would be mixed with this sweep's); choose a new or empty --out."
        )


class _Lock:
    """One sweep at a time per folder (``.sweep.lock``: host and pid)."""

    def __init__(self, out: Path):
        self.path = out / ".sweep.lock"
        self.held = False

    def __enter__(self) -> _Lock:
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text())
                except (OSError, json.JSONDecodeError):
                    other = {}
                if other.get("host") == me["host"] and _alive(int(other.get("pid", 0))):
                    raise SweepError(
                        f"another sweep (pid {other['pid']}) is writing into {self.path.parent}; "
                        "wait for it to end or stop it first."
                    ) from None
                self.path.unlink(missing_ok=True)  # left by a sweep that was killed
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise SweepError(f"could not take {self.path}; delete it if no sweep is running.")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write_atomic(path: Path, data: bytes | str) -> None:
    with atomic_write(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)


def read_run(run_dir: Path) -> dict[str, Any] | None:
    """A run's ``run.json`` (None if absent or unreadable)."""
    try:
        return json.loads((run_dir / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_complete(run_dir: Path, params: Mapping[str, Any], notebook: str) -> bool:
    """True when the run finished ``ok`` with exactly these parameters (and its results exist)."""
    rec = read_run(run_dir)
    if not rec or rec.get("status") != "ok" or rec.get("notebook") != notebook:
        return False
    if _canonical(rec.get("parameters", {})) != _canonical(params):
        return False
    return not rec.get("has_results") or (run_dir / "results.json").is_file()


def _marked(data: bytes, status: str, error: str) -> bytes:
    """A failed or stopped run's ``results.json`` with its ``status`` and ``error`` added."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return data
    if not isinstance(doc, dict):
        return data
    doc["status"], doc["error"] = status, error
    return json.dumps(doc, indent=2, allow_nan=True).encode()


def commit_run(run_dir: Path, record: dict[str, Any], files: Mapping[str, bytes]) -> None:
    """Write a run's files, then its ``run.json``, each atomically.

    A failed or stopped run's ``results.json`` is kept, marked with its ``status`` and
    ``error`` (a failed check is a finding); an earlier one the run did not replace is
    removed (its numbers are not this run's). Only an ``ok`` run counts as complete
    (:func:`is_complete`), so the next sweep runs the point again and a success replaces them.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    ok = record["status"] == "ok"
    if "results.json" not in files:
        (run_dir / "results.json").unlink(missing_ok=True)
    for name in sorted(files, key=lambda n: n == "results.json"):
        if "/" in name or name.startswith(".") or name == "run.json":
            continue
        data = files[name]
        if name == "results.json" and not ok:
            data = _marked(data, record["status"], record.get("error", ""))
        _write_atomic(run_dir / name, data)
    _write_atomic(run_dir / "run.json", json.dumps(record, indent=2, default=str))


# ----------------------------------------------------------------------- the task on a worker


def execute_run(task: dict[str, Any], stop_event: str | None = None) -> dict[str, Any]:
    """The Dask task: run one notebook in a temporary folder and return its files.

    The notebook travels as text, so workers need only the kit (``tlhelpers``, its
    data), not the client's files. ``stop_event`` names a ``distributed.Event``: once
    set, a queued run returns ``"skipped"`` and a running one is stopped (its kernel
    ends) and returns ``"interrupted"``.
    """
    stop = None
    if stop_event:
        from distributed import Event

        stop = Event(stop_event)
        if stop.is_set():
            return {"name": task["name"], "status": "skipped", "files": {}}
    last = [0.0, False]

    def should_stop() -> bool:  # ask the scheduler at most twice a second
        if stop is None:
            return False
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0], last[1] = now, stop.is_set()
        return bool(last[1])

    with tempfile.TemporaryDirectory(prefix="tlhelpers-sweep-") as tmp:
        src = Path(tmp) / "in" / task["notebook"]
        src.parent.mkdir()
        src.write_text(task["source"])
        out = Path(tmp) / "out"
        out.mkdir()
        params = dict(task["parameters"])
        if task["has_out_dir"]:
            params["out_dir"] = str(out)
        cwd = task["cwd"] if Path(task["cwd"]).is_dir() else str(src.parent)
        outcome = execute_isolated(
            src, out, params, timeout=task["timeout"], cwd=cwd, threads=task["threads"],
            should_stop=should_stop,
        )  # fmt: skip
        files = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    return {
        "name": task["name"], "status": outcome.status, "error": outcome.error,
        "wall_time_s": outcome.wall_time_s, "host": socket.gethostname(),
        "worker": _worker_address(), "files": files,
    }  # fmt: skip


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):  # not inside a Dask task
        return None


# ------------------------------------------------------------------------------ the client


def connect(scheduler: str, timeout: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` on ``scheduler``, or :class:`SweepError` within ``timeout`` s."""
    from distributed import Client

    try:
        return Client(scheduler, timeout=f"{timeout}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        raise SweepError(
            f"cannot reach the Dask scheduler at {scheduler!r} within {timeout:.0f} s "
            f"({type(err).__name__}: {err}). Start one with `dask scheduler` (it prints its "
            "address, tcp://HOST:8786) and workers with `dask worker tcp://HOST:8786 "
            "--nthreads 1`, or leave out --scheduler to run here."
        ) from None


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def run_sweep(
    plan: SweepPlan,
    out: str | Path,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    threads: int | None = None,
    timeout: int = 900,
    log: Callable[[str], None] = print,
) -> SweepResult:
    """Run every point of ``plan`` not yet complete in ``out``, then write the reports.

    Refuses (:class:`SweepError`) before any run: a folder of another sweep, values the
    notebook's check refuses, an unreachable scheduler. ``threads`` is each run's
    intra-op thread count (default: the cores divided among local workers, 1 on a
    cluster). Ctrl-C stops the runs in progress and is reported in the result
    (``interrupted``), not raised.
    """
    out = Path(out).resolve()
    check_out_dir(out, plan)
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}.")
    client = connect(scheduler) if scheduler else None
    try:
        for note in check_values(plan):
            log(f"note: {note}")
        if threads is None:
            threads = 1 if scheduler else max(1, (os.cpu_count() or 1) // workers)
        return _run(plan, out, client, workers, threads, timeout, log)
    finally:
        if client is not None:
            client.close()


def _run(plan, out, client, workers, threads, timeout, log) -> SweepResult:
    start = time.perf_counter()
    has_out_dir = "out_dir" in notebook_parameters(plan.notebook)
    if not has_out_dir:
        log(
            f"note: {plan.notebook.name} has no out_dir parameter: runs keep only the executed copy."
        )
    out.mkdir(parents=True, exist_ok=True)
    source = plan.notebook.read_text()
    runs: list[tuple[str, dict, dict]] = []  # (folder name, swept values, all parameters)
    for point in plan.points():
        params = {**plan.fixed, **point}
        runs.append((run_name(point, params), point, params))
    with _Lock(out):
        _write_atomic(out / MANIFEST, json.dumps({
            "notebook": plan.notebook.name, "notebook_path": str(plan.notebook),
            "parameters": plan.names, "grid": plan.grid, "fixed": plan.fixed,
            "metric": plan.metric, "x": plan.x, "seed_param": plan.seed_param,
        }, indent=2, default=str))  # fmt: skip
        todo = [r for r in runs if not is_complete(out / "runs" / r[0], r[2], plan.notebook.name)]
        skipped = len(runs) - len(todo)
        where = (
            f"the cluster at {client.scheduler.address}" if client else f"{workers} local worker(s)"
        )
        log(f"{plan.notebook.name}: {len(runs)} runs, {skipped} already complete, "
            f"{len(todo)} to run on {where}, {threads} thread(s) each; output in {out}")  # fmt: skip
        counts = {"ok": 0, "failed": 0, "incomplete": 0}
        records: list[dict] = []
        interrupted = False
        if todo:
            tasks = [{
                "name": name, "notebook": plan.notebook.name, "source": source,
                "parameters": params, "has_out_dir": has_out_dir,
                "cwd": str(plan.notebook.parent), "timeout": timeout, "threads": threads,
            } for name, _, params in todo]  # fmt: skip
            by_name = {name: (point, params) for name, point, params in todo}

            def handle(res: dict[str, Any]) -> None:
                point, params = by_name[res["name"]]
                status = {"ok": "ok", "failed": "failed"}.get(res["status"], "incomplete")
                if res["status"] == "skipped":
                    return
                files = res.get("files", {})
                key_numbers = {}
                if "results.json" in files:  # a failed run's numbers too, marked by its status
                    try:
                        doc = json.loads(files["results.json"])
                        key_numbers = {k: doc["results"].get(k) for k in doc.get("key_numbers", [])}
                    except (json.JSONDecodeError, KeyError, TypeError):
                        pass
                record = {
                    "notebook": plan.notebook.name, "parameters": params, "status": status,
                    "error": res.get("error", ""), "wall_time_s": res.get("wall_time_s"),
                    "host": res.get("host"), "worker": res.get("worker"), "has_results": "results.json" in files,
                    "key_numbers": key_numbers,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                }  # fmt: skip
                commit_run(out / "runs" / res["name"], record, files)
                counts[status] += 1
                records.append(record)
                done = sum(counts.values())
                elapsed = time.perf_counter() - start
                left = len(todo) - done
                eta = f", ~{_fmt_time(elapsed / done * left)} left" if done and left else ""
                what = (
                    key_numbers
                    if status == "ok"
                    else (f"{key_numbers} (from a {status} run) " if key_numbers else "")
                    + record["error"][-160:]
                )
                log(f"[{done}/{len(todo)}] {status:<10} {_label(point)}  "
                    f"{record['wall_time_s']} s  {what}\n"
                    f"    done {counts['ok']} ok, {counts['failed']} failed, {left} remaining; "
                    f"elapsed {_fmt_time(elapsed)}{eta}")  # fmt: skip

            interrupted = _submit_all(client, tasks, workers, handle, log)
        result = SweepResult(
            out, len(runs), skipped, counts["ok"], counts["failed"], counts["incomplete"],
            interrupted, round(time.perf_counter() - start, 2), records,
        )  # fmt: skip
        try:
            collect(out, plan, log=log)
        except KeyboardInterrupt:
            interrupted = result.interrupted = True
        if interrupted:
            log(f"interrupted: finished runs are kept, {counts['incomplete']} stopped run(s) "
                "are marked incomplete; run the same command again to complete the rest.")  # fmt: skip
        return result


def _submit_all(client, tasks, workers, handle, log) -> bool:
    """Submit every task as a future and hand each result to ``handle``; True if interrupted."""
    import logging

    from distributed import Client, Event, LocalCluster, as_completed

    cluster = None
    own_client = client is None
    interrupted = False
    try:
        if own_client:
            # Thread workers are enough: each run is a child process of its own.
            cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=False,
                dashboard_address=None, silence_logs=logging.ERROR,
            )  # fmt: skip
            client = Client(cluster, set_as_default=False)
        token = uuid.uuid4().hex[:12]
        stop = Event(f"tlhelpers-sweep-stop-{token}", client=client)
        futures = [
            client.submit(execute_run, t, stop.name, key=f"tlhelpers-run-{t['name']}-{token}",
                          pure=False, retries=0)
            for t in tasks
        ]  # fmt: skip
        pending = set(futures)
        try:
            for fut in as_completed(futures, loop=client.loop):
                pending.discard(fut)
                handle(_result(fut))
        except KeyboardInterrupt:
            interrupted = True
            log("Ctrl-C: stopping the runs in progress (their kernels end) ...")
            stop.set()
            deadline = time.monotonic() + STOP_GRACE_S + 10
            while pending and time.monotonic() < deadline:
                for fut in [f for f in pending if f.done()]:
                    pending.discard(fut)
                    handle(_result(fut))
                time.sleep(0.05)
    finally:
        if own_client and client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return interrupted


def _result(fut) -> dict[str, Any]:
    name = fut.key.split("-", 2)[2].rsplit("-", 1)[0]
    try:
        return fut.result()
    except Exception as err:  # a worker that died, a task that could not be unpickled
        error = f"{type(err).__name__}: {err}"
        if "tlhelpers" in error and isinstance(err, ModuleNotFoundError):
            error += (
                " (install the kit on every worker: see book/reference/sweeps.md, Dask cluster)"
            )
        return {"name": name, "status": "failed", "error": error[-2000:], "files": {}}


# ------------------------------------------------------------------------------ the reports


def _scalars(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in doc.get("results", {}).items()
        if isinstance(v, (int, float, str, bool)) or v is None
    }  # fmt: skip


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


#: The columns of ``results.csv`` that are not parameters or results.
_ROW_KEYS = ("status", "wall_time_s", "run", "error")


def collect(
    out: str | Path, plan: SweepPlan, *, log: Callable[[str], None] = print
) -> dict[str, Path]:
    """Write ``results.csv``, ``results.md`` and ``<metric>.png`` for the runs of ``plan``.

    Rows are the grid's runs in order (``missing`` if never run). The plot shows the
    metric's mean over ``plan.seed_param`` with a 95% Student-t interval
    (:func:`tlhelpers.metrics.mean_ci`) against ``plan.x``, one line per combination of
    the other swept parameters.
    """
    out = Path(out)
    swept = list(plan.grid)
    rows: list[dict[str, Any]] = []
    result_cols: list[str] = []
    first_key: str | None = None
    for point in plan.points():
        params = {**plan.fixed, **point}
        run_dir = out / "runs" / run_name(point, params)
        rec = read_run(run_dir) or {}
        status = (
            rec.get("status", "missing")
            if _canonical(rec.get("parameters", params)) == _canonical(params)
            else "missing"
        )
        row: dict[str, Any] = {**point, "status": status, "wall_time_s": rec.get("wall_time_s"),
                               "run": run_dir.name, "error": rec.get("error", "")[-200:]}  # fmt: skip
        if status in ("ok", "failed", "incomplete") and (run_dir / "results.json").is_file():
            doc = json.loads(
                (run_dir / "results.json").read_text()
            )  # a failed run's: marked by status
            for k, v in _scalars(doc).items():
                k = k if k not in point and k not in _ROW_KEYS else f"results.{k}"  # no clash
                row[k] = v
                if k not in result_cols:
                    result_cols.append(k)
            if first_key is None and doc.get("key_numbers"):
                first_key = doc["key_numbers"][0]
        rows.append(row)
    header = swept + ["status", "wall_time_s"] + result_cols + ["run", "error"]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": out / "results.csv", "md": out / "results.md"}
    _write_atomic(paths["csv"], buf.getvalue())

    metric = plan.metric or first_key
    numeric = sorted(c for c in result_cols if any(_num(r.get(c)) is not None for r in rows))
    groups = _group(rows, plan, metric) if metric in numeric else []
    counts = {
        s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "incomplete", "missing")
    }
    md = [f"# Sweep of {plan.notebook.name}", "",
          f"{len(rows)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + ".", ""]  # fmt: skip
    if plan.fixed:
        md += ["Fixed: " + ", ".join(f"`{k}={v!r}`" for k, v in plan.fixed.items()) + ".", ""]
    if metric and metric not in numeric:
        log(
            f"note: no numeric result {metric!r} to plot; numeric results: {', '.join(numeric) or 'none'}."
        )
    if groups and metric is not None:  # groups exist only for a numeric metric
        others = [n for n in swept if n != plan.seed_param]
        md += [f"## {metric}: mean and 95% interval over {plan.seed_param}", "",
               "| " + " | ".join(others + ["runs", "mean", "± 95% CI"]) + " |",
               "|" + "---|" * (len(others) + 3)]  # fmt: skip
        for key, n, mean, ci in groups:
            md.append(
                "| " + " | ".join([*map(str, key), str(n), f"{mean:.4f}", f"{ci:.4f}"]) + " |"
            )
        md.append("")
        paths["png"] = out / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', metric)}.png"
        _plot(paths["png"], groups, plan, metric)
        md += [f"![{metric}]({paths['png'].name})", ""]
    md += ["## Runs", "", "| " + " | ".join(swept + ["status", "wall time (s)", metric or "error"]) + " |",
           "|" + "---|" * (len(swept) + 3)]  # fmt: skip
    for r in rows:
        value = r.get(metric) if metric else None
        if isinstance(value, float):
            value = f"{value:.4f}"
        if r["status"] != "ok":  # a failed run's number, if it left one, is shown as such
            error = " ".join(str(r["error"]).split())[:80].replace("|", "\\|")
            value = f"{value} (from a {r['status']} run; {error})" if value is not None else error
        md.append("| " + " | ".join([*(str(r[n]) for n in swept), r["status"],
                                     str(r["wall_time_s"] or ""), str(value or "")]) + " |")  # fmt: skip
    _write_atomic(paths["md"], "\n".join(md) + "\n")
    log(f"wrote {', '.join(str(p) for p in paths.values())}")
    return paths


def _group(rows, plan, metric) -> list[tuple[tuple, int, float, float]]:
    """``(values of the non-seed swept parameters, n, mean, CI half-width)`` per group."""
    from .metrics import mean_ci

    others = [n for n in plan.grid if n != plan.seed_param]
    values: dict[tuple, list[float]] = {}
    for r in rows:
        v = _num(r.get(metric)) if r["status"] == "ok" else None
        key = tuple(r[n] for n in others)
        values.setdefault(key, [])
        if v is not None:
            values[key].append(v)
    return [(k, len(v), *mean_ci(v)) for k, v in values.items() if v]


def _plot(path: Path, groups, plan: SweepPlan, metric: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    others = [n for n in plan.grid if n != plan.seed_param]
    x = plan.x or (others[0] if others else None)
    fig = Figure(figsize=(6, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if x is None:
        ((_, n, mean, ci),) = groups
        ax.errorbar([0], [mean], yerr=[ci], fmt="o", capsize=4)
        ax.set_xticks([0], [f"{n} {plan.seed_param}s"])
    else:
        xi = others.index(x)
        xs = plan.grid[x]
        numeric = all(_num(v) is not None for v in xs)
        lines: dict[tuple, list] = {}
        for key, _, mean, ci in groups:
            rest = key[:xi] + key[xi + 1 :]
            pos = key[xi] if numeric else xs.index(key[xi])
            lines.setdefault(rest, []).append((pos, mean, ci))
        names = [n for n in others if n != x]
        for rest, pts in lines.items():
            pts.sort()
            label = ", ".join(f"{n}={v}" for n, v in zip(names, rest, strict=True)) or None
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        marker="o", capsize=3, label=label)  # fmt: skip
        if not numeric:
            ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        elif len(xs) > 2 and min(xs) > 0 and max(xs) / min(xs) >= 20:
            ax.set_xscale("log")
        ax.set_xlabel(x)
        if names:
            ax.legend(fontsize="small")
    ax.set_ylabel(metric)
    ax.set_title(f"{plan.notebook.stem}: mean and 95% interval over {plan.seed_param}")
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    _write_atomic(path, buf.getvalue())


# ---------------------------------------------------------------------------------- the CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m tlhelpers sweep NOTEBOOK --grid GRID.yaml --out DIR [--workers N] [--scheduler A]``."""
    parser = argparse.ArgumentParser(
        prog="python -m tlhelpers sweep", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("notebook")
    parser.add_argument("--grid", help="YAML grid file (grid/fixed/metric/x/seed_param)")
    parser.add_argument("-p", "--param", action="append", default=[],
                        help="name=v1,v2,... (adds a swept parameter; each value read as in a grid file: YAML, so false is a bool)")  # fmt: skip
    parser.add_argument("--out", help="output folder (default: build/sweeps/<notebook>)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs at a time on this machine (default 1)")  # fmt: skip
    parser.add_argument("--scheduler", help="address of a Dask scheduler, e.g. tcp://host:8786")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads per run (default: cores / workers; 1 on a cluster)")  # fmt: skip
    parser.add_argument(
        "--metric", help="result to plot (default: the grid's, else the first key number)"
    )
    parser.add_argument("--x", help="swept parameter on the plot's x axis")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    obey_sigint()
    try:
        if args.scheduler and args.workers is not None:
            raise SweepError("--workers sets the local cluster's size; with --scheduler the "
                             "cluster's workers decide. Give one of them.")  # fmt: skip
        if args.threads is not None and args.threads < 1:
            raise SweepError(f"--threads must be >= 1, got {args.threads}.")
        doc: dict[str, Any] = load_grid(args.grid) if args.grid else {"grid": {}}
        source = f"grid file {args.grid}" if args.grid else "-p"
        grid = doc.get("grid") or {}
        if not isinstance(grid, dict):
            raise SweepError(f"{source}: 'grid:' must map names to lists of values, got {grid!r}.")
        extra = parse_cli_grid(args.param)
        both = sorted(set(extra) & set(grid))
        if both:
            raise SweepError(f"{', '.join(both)} given both in {args.grid} and with -p; keep one.")
        plan = plan_sweep(
            args.notebook, {**grid, **extra}, fixed=doc.get("fixed") or {},
            metric=args.metric or doc.get("metric"), x=args.x or doc.get("x"),
            seed_param=doc.get("seed_param"), source=source,
        )  # fmt: skip
        out = Path(args.out or Path("build") / "sweeps" / plan.notebook.stem)
        result = run_sweep(plan, out, workers=args.workers or 1, scheduler=args.scheduler,
                           threads=args.threads, timeout=args.timeout)  # fmt: skip
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{result.ok} ok, {result.failed} failed, {result.incomplete} incomplete, "
          f"{result.skipped} already complete; {result.wall_time_s} s")  # fmt: skip
    return result.exit_code
