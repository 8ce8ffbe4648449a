"""Run the course's notebooks with papermill and summarise them (``make run``).

::

    python -m tlhelpers.runner run                       # every notebook, defaults
    python -m tlhelpers.runner run --params smoke.json   # per-notebook overrides

Parameter sweeps (a grid, resumable, in parallel or on a Dask cluster) are
``python -m tlhelpers sweep`` (:mod:`tlhelpers.sweep`).

Unknown notebooks and parameter names are refused before anything runs
(papermill itself only warns). Each notebook runs in a child process of its own:
Ctrl-C stops the runner at once and ends the notebook's kernel, and a failing
notebook is recorded while the others still run. A run that fails (or is stopped)
after writing its numbers keeps them: its ``results.json`` gets ``"status": "failed"``
and the error, and ``summary.md`` shows them marked as a failed run's; a run that
fails before writing any leaves no numbers (those of an earlier run are not its own).
``summary.json`` is rewritten after every notebook, so nothing finished is lost.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .fingerprint import cpu_model
from .interactive import WIDGETS_ENV
from .lessons import MAX_PRINTED_WORDS, printed_words
from .paths import atomic_write, read_text_file, repo_root
from .threads import child_environment

__all__ = [
    "check_parameter_names",
    "check_params_file",
    "course_notebooks",
    "default_notebooks",
    "execute_isolated",
    "KERNEL_START_TRIES",
    "kernel_died_at_start",
    "retry_kernel_start",
    "load_params_file",
    "LOG_NAME",
    "machine_info",
    "main",
    "NOTEBOOK_NAME",
    "notebook_parameters",
    "obey_sigint",
    "Outcome",
    "run_all",
    "run_environment",
    "RUN_INFO",
    "run_notebook",
    "RunRecord",
    "STOP_GRACE_S",
    "THREAD_ENV",
    "mark_results",
]

#: Thread-count variables of the numeric libraries; a run sets them all to ``threads``.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
#: The log of a run's child process and kernel (papermill's messages, kernel warnings).
LOG_NAME = "run.log"
#: Seconds a stopped run gets to end its kernel before it is killed.
STOP_GRACE_S = 5.0
#: Attempts to start a kernel that dies before it answers (see :func:`retry_kernel_start`).
KERNEL_START_TRIES = 3


@dataclass
class RunRecord:
    """What happened to one notebook run."""

    notebook: str
    status: str  # "ok" | "failed" | "interrupted"
    wall_time_s: float
    parameters: dict[str, Any] = field(default_factory=dict)
    key_numbers: dict[str, Any] = field(default_factory=dict)
    output: str = ""
    error: str = ""
    #: Words the executed notebook printed (:func:`tlhelpers.lessons.printed_words`); None without a copy.
    printed_words: int | None = None


@dataclass
class Outcome:
    """How one isolated execution ended (:func:`execute_isolated`)."""

    status: str  # "ok" | "failed" | "interrupted"
    wall_time_s: float
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


def _key_numbers(results: Path) -> dict[str, Any]:
    if not results.is_file():
        return {}
    try:
        doc = json.loads(results.read_text())
        return {k: doc["results"].get(k) for k in doc.get("key_numbers", [])}
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
        return {}


def mark_results(results: Path, status: str, error: str, dest: Path | None = None) -> bool:
    """Write ``results`` (a run's ``results.json``) to ``dest`` with its run's ``status`` and ``error``.

    The numbers of a failed or stopped run are kept, marked as such, instead of being
    thrown away: a failed check is a finding. Returns False (and writes nothing) when
    ``results`` is missing or not a JSON object.
    """
    try:
        doc = json.loads(results.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(doc, dict):
        return False
    doc["status"], doc["error"] = status, error
    dest = dest or results
    tmp = dest.with_name(f".{dest.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=2, allow_nan=True))
    tmp.replace(dest)
    return True


def _package_root() -> str:
    """The folder that holds this ``tlhelpers`` (children and kernels must import the same)."""
    return str(Path(__file__).resolve().parent.parent)


def run_environment(threads: int | None = None) -> dict[str, str]:
    """The environment of a child run: headless widgets, this ``tlhelpers``, the thread policy.

    The kernel gets this process's thread policy (``TLHELPERS_THREADS``, see
    :mod:`tlhelpers.threads`). With ``threads`` set, every numeric library in the kernel
    uses exactly that many intra-op threads, so parallel runs do not fight over the cores.
    """
    env = dict(os.environ)
    env.setdefault(WIDGETS_ENV, "0")
    path = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join([_package_root()] + ([path] if path else []))
    env.update(child_environment(threads))
    if threads is not None:
        env.update({k: str(threads) for k in THREAD_ENV})
    return env


def execute_isolated(
    notebook: str | Path,
    out_dir: str | Path,
    parameters: Mapping[str, Any],
    *,
    timeout: int = 900,
    cwd: str | Path | None = None,
    threads: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    poll_s: float = 0.2,
    env: Mapping[str, str] | None = None,
    allow_errors: bool = False,
) -> Outcome:
    """Execute ``notebook`` with papermill in a child process; write its copy to ``out_dir``.

    The child runs in a session of its own, so a terminal's Ctrl-C reaches only this
    process: a ``KeyboardInterrupt`` here (or ``should_stop()`` turning true) stops the
    child, which shuts its kernel down (killed after :data:`STOP_GRACE_S` if it does
    not; the kernel then exits by itself when its parent is gone). A
    ``KeyboardInterrupt`` is re-raised after the child has ended; ``should_stop``
    gives an ``"interrupted"`` outcome. Parameters are passed as given (no name check).
    ``env`` adds variables to the child's environment; ``allow_errors`` runs every cell
    even after one fails (the outcome is still ``"failed"``; graders use it).
    """
    notebook = Path(notebook).resolve()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tlhelpers-run-") as tmp:
        spec = {
            "notebook": str(notebook), "output": str(out / notebook.name),
            "parameters": dict(parameters), "timeout": timeout,
            "cwd": str(cwd or notebook.parent), "outcome": str(Path(tmp) / "outcome.json"),
            "allow_errors": allow_errors,
        }  # fmt: skip
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(spec))
        start = time.perf_counter()
        with open(out / LOG_NAME, "ab") as log:  # the child's and its kernel's output
            proc = subprocess.Popen(
                [sys.executable, "-m", "tlhelpers.runner", "_child", str(spec_path)],
                env={**run_environment(threads), **dict(env or {})}, start_new_session=True, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        stopped = False
        try:
            while proc.poll() is None:
                if should_stop is not None and should_stop():
                    stopped = True
                    _stop(proc)
                    break
                try:
                    proc.wait(timeout=poll_s)
                except subprocess.TimeoutExpired:
                    pass
        except BaseException:  # KeyboardInterrupt above all: end the kernel, then go on raising
            _stop(proc)
            raise
        wall = round(time.perf_counter() - start, 2)
        if stopped:
            return Outcome("interrupted", wall, "stopped before the notebook finished")
        outcome = Path(str(spec["outcome"]))
        if not outcome.is_file():
            return Outcome("failed", wall, f"the run's process ended with code {proc.returncode}")
        doc = json.loads(outcome.read_text())
        return Outcome(doc["status"], wall, doc.get("error", ""))


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (the child shuts its kernel down), then SIGKILL after the grace period."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _child(spec_path: str) -> int:
    """Body of the child process of :func:`execute_isolated`."""
    # jsonschema builds an IRI grammar at import (3 s of CPU here) that nbformat never
    # uses; without it the import of papermill takes 0.4 s.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    spec = json.loads(Path(spec_path).read_text())

    def _terminate(signum, frame):  # unwinds through papermill, which ends the kernel
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _terminate)
    parent = os.getppid()

    def _watch_parent() -> None:  # a killed parent must not leave this run going
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=_watch_parent, daemon=True).start()
    status, error = "ok", ""
    try:
        import papermill as pm

        retry_kernel_start(lambda: pm.execute_notebook(
            spec["notebook"], spec["output"], parameters=spec["parameters"], cwd=spec["cwd"],
            execution_timeout=spec["timeout"], progress_bar=False, kernel_name="python3",
            shutdown_kernel="immediate", allow_errors=spec.get("allow_errors", False),
        ))  # fmt: skip
    except KeyboardInterrupt:
        status, error = "interrupted", "stopped before the notebook finished"
    except Exception as err:
        status, error = "failed", _error_text(err)
    with atomic_write(spec["outcome"]) as tmp:
        tmp.write_text(json.dumps({"status": status, "error": error}))
    return 0 if status == "ok" else 1


def kernel_died_at_start(err: BaseException) -> bool:
    """True for jupyter_client's "Kernel died before replying to kernel_info": the kernel
    ended before it ran any cell (when several kernels start at the same moment, two can
    pick the same free port and one of them dies)."""
    return isinstance(err, RuntimeError) and "died before replying to kernel_info" in str(err)


def retry_kernel_start(
    execute: Callable[[], Any],
    *,
    tries: int = KERNEL_START_TRIES,
    wait_s: float = 1.0,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Any:
    """``execute()``, started again (at most ``tries`` times in all) while its kernel dies
    before replying to ``kernel_info``.

    Such a kernel ran no cell, so a new attempt repeats no work; any other error, and the
    last attempt's, propagates. Between attempts it waits ``wait_s`` times the attempt
    number plus up to ``wait_s`` at random (kernels that collided start apart) and logs
    one line (to the run's log, :data:`LOG_NAME`).
    """
    import random

    if not isinstance(tries, int) or isinstance(tries, bool) or tries < 1:
        raise ValueError(f"tries must be an integer >= 1, got {tries!r}.")
    for attempt in range(1, tries + 1):
        try:
            return execute()
        except RuntimeError as err:
            if attempt == tries or not kernel_died_at_start(err):
                raise
            log(f"the kernel died before it answered (try {attempt} of {tries}); starting again")
            time.sleep(wait_s * attempt + random.uniform(0.0, wait_s))
    raise AssertionError("unreachable")  # pragma: no cover


def _error_text(err: Exception) -> str:
    """``ename: evalue`` of a failing cell (papermill's own text holds the whole traceback)."""
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    if ename:
        cell = getattr(err, "exec_count", None)
        return f"{ename}: {evalue}" + (f" (cell {cell})" if cell is not None else "")
    return f"{type(err).__name__}: {err}"[-2000:]


def run_notebook(
    path: str | Path,
    out_dir: str | Path,
    parameters: Mapping[str, Any] | None = None,
    *,
    timeout: int = 900,
    threads: int | None = None,
) -> RunRecord:
    """Execute one notebook into ``out_dir`` (executed copy + its ``results.json``).

    The notebook's ``out_dir`` parameter is set to a staging folder inside ``out_dir``;
    its files replace those in ``out_dir`` only once the run has finished. A run that
    fails or is stopped after writing ``results.json`` keeps it, with ``"status"``
    (``"failed"``/``"interrupted"``) and ``"error"`` added, and its record shows its key
    numbers; one that wrote none leaves no numbers of its own: a failed one removes the
    previous ``results.json`` (another run's numbers), an interrupted one leaves it as it
    was. Unknown parameter names raise
    ``ValueError`` before execution; an execution failure is returned as a
    ``"failed"`` record with the error; ``KeyboardInterrupt`` ends the kernel and
    propagates.
    """
    path = Path(path).resolve()
    parameters = dict(parameters or {})
    check_parameter_names(path, parameters)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".attempt-", dir=out))
    own = False  # did a run that did not finish leave numbers of its own?
    run_params = dict(parameters)
    if "out_dir" in notebook_parameters(path):
        run_params.setdefault("out_dir", str(stage))
    try:
        outcome = execute_isolated(path, stage, run_params, timeout=timeout, threads=threads)
        results = out / "results.json"
        if outcome.status == "ok":
            for item in sorted(stage.iterdir(), key=lambda p: p.name == "results.json"):
                if item.is_file():  # results.json last: the commit point
                    item.replace(out / item.name)
        else:
            executed = stage / path.name
            if executed.is_file():  # keep the failing notebook for its traceback
                executed.replace(out / path.name)
            own = mark_results(stage / "results.json", outcome.status, outcome.error, results)
            if not own and outcome.status == "failed":
                results.unlink(missing_ok=True)  # never report numbers of an earlier run
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return RunRecord(
        notebook=path.name, status=outcome.status, wall_time_s=round(outcome.wall_time_s, 1),
        parameters=parameters,
        key_numbers=_key_numbers(results) if outcome.status == "ok" or own else {},
        output=str(out / path.name), error=outcome.error,
        printed_words=_printed_words(out / path.name),
    )  # fmt: skip


def _printed_words(executed: Path) -> int | None:
    """Words the executed copy at ``executed`` printed; None when there is no readable copy."""
    try:
        return printed_words(json.loads(executed.read_text()))
    except (OSError, ValueError):
        return None


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


#: Where and when the latest ``run_all`` ran (shown by the course book, :mod:`tlhelpers.book`).
RUN_INFO = "run_info.json"


def machine_info() -> dict[str, Any]:
    """The machine a run is on: OS, CPU model, core count, Python (no host name)."""
    import platform

    return {
        "os": platform.platform(terse=True), "cpu": cpu_model(), "cores": os.cpu_count(),
        "python": platform.python_version(),
    }  # fmt: skip


def _cell(text: str) -> str:
    """One line of a markdown table cell (no newlines, no column breaks)."""
    return " ".join(text.split()).replace("|", "\\|")


def _write_summary(records: list[RunRecord], build: Path) -> None:
    """``summary.json`` and ``summary.md``; a failed run's numbers are marked as such, with its error."""
    (build / "summary.json").write_text(json.dumps([asdict(r) for r in records], indent=2))
    lines = [
        "| notebook | status | wall time (s) | printed words | key numbers |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        words = "-" if r.printed_words is None else str(r.printed_words)
        if r.printed_words is not None and r.printed_words > MAX_PRINTED_WORDS:
            words += f" **over {MAX_PRINTED_WORDS}**"
        nums = ", ".join(
            f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in r.key_numbers.items()
        )
        if r.status == "ok":
            shown = nums
        elif nums:
            shown = f"**from a {r.status} run:** {nums}; error: {_cell(r.error)[:200]}"
        else:
            shown = _cell(r.error)[:200]
        lines.append(f"| {r.notebook} | {r.status} | {r.wall_time_s} | {words} | {shown} |")
    (build / "summary.md").write_text("\n".join(lines) + "\n")


def check_params_file(
    parameters: Mapping[str, Any], notebooks: Iterable[Path], source: str = "parameters"
) -> None:
    """Refuse a per-notebook parameters mapping whose keys are not notebooks being run.

    Keys starting with ``_`` are comments. Raises ``ValueError`` naming the key, the
    file and the notebooks.
    """
    stems = [p.stem for p in notebooks]
    if not isinstance(parameters, Mapping):
        raise ValueError(f"{source} must map notebook names to parameters, got {parameters!r}.")
    for key, value in parameters.items():
        if key.startswith("_"):
            continue
        if key not in stems:
            raise ValueError(
                f"{source}: {key!r} is not one of the notebooks being run. "
                f"Notebooks: {', '.join(stems)}."
            )
        if not isinstance(value, Mapping):
            raise ValueError(
                f"{source}: {key!r} must map parameter names to values, got {value!r}."
            )


def run_all(
    notebooks: Iterable[str | Path] | None = None,
    build: str | Path = "build",
    parameters: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    timeout: int = 900,
) -> list[RunRecord]:
    """Run notebooks in order; write ``build/summary.{json,md}`` after each one.

    Everything is checked before the first run: every key of ``parameters`` must be a
    notebook being run (``_comment`` keys aside) and every parameter name one it declares.
    """
    build = Path(build).resolve()
    paths = [Path(p) for p in (notebooks or default_notebooks())]
    parameters = parameters or {}
    check_params_file(parameters, paths)
    for p in paths:  # refuse bad names up front, before hours of work
        check_parameter_names(p, parameters.get(p.stem, {}))
    build.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    (build / RUN_INFO).write_text(json.dumps({"started": started, "machine": machine_info()}))
    records: list[RunRecord] = []
    for p in paths:
        print(f"running {p.name} ...", flush=True)
        rec = run_notebook(p, build / p.stem, parameters.get(p.stem, {}), timeout=timeout)
        shown = (
            rec.key_numbers
            if rec.status == "ok"
            else (f"{rec.key_numbers} (from a {rec.status} run) " if rec.key_numbers else "")
            + rec.error[:400]
        )
        print(f"  {rec.status} in {rec.wall_time_s} s {shown}", flush=True)
        records.append(rec)
        _write_summary(records, build)
    return records


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read a ``--params`` JSON file: an object ``{notebook stem: {name: value}}``.

    A syntax error names the file, line and column; a file that is not UTF-8 or holds
    something other than an object (``null``, a list, a number) is refused naming the file.
    """
    path = Path(path)
    expected = 'Expected {"notebook stem": {"name": value}}.'
    text = read_text_file(path, "--params file")  # a BOM (Notepad) is fine
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"--params file {path} is not valid JSON (line {err.lineno}, column {err.colno}: "
            f"{err.msg}). {expected}"
        ) from None
    if not isinstance(doc, dict):  # null, a list, a number: nothing to run with
        raise ValueError(
            f"--params file {path} must hold a JSON object, got {json.dumps(doc)[:80]}. {expected}"
        )
    return doc


def obey_sigint() -> None:
    """Make SIGINT (Ctrl-C) raise ``KeyboardInterrupt`` even if it was ignored at start.

    A shell starts background jobs with SIGINT ignored, and Python then keeps ignoring
    it: ``kill -INT`` did nothing to a runner started with ``&`` while SIGTERM worked.
    A command-line run must stop on one SIGINT however it was started.
    """
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main(argv: list[str] | None = None) -> int:
    """``python -m tlhelpers.runner run ...``: run the course's notebooks; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:
        return _child(argv[1])
    obey_sigint()
    if argv[:1] == ["sweep"]:
        print("error: sweeps moved to `python -m tlhelpers sweep NOTEBOOK --grid GRID.yaml "
              "--out DIR` (or `-p name=a,b`): resumable and parallel.", file=sys.stderr)  # fmt: skip
        return 2
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run notebooks in order and write build/summary.md")
    run.add_argument("notebooks", nargs="*", help="default: every notebooks/NN_*.ipynb")
    run.add_argument("--build", default="build")
    run.add_argument("--params", help="JSON file: {notebook stem: {name: value}}")
    run.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    args = parser.parse_args(argv)
    try:
        params = load_params_file(args.params) if args.params else None
        if params is not None:
            check_params_file(params, [Path(p) for p in (args.notebooks or default_notebooks())],
                              f"--params file {args.params}")  # fmt: skip
        records = run_all(args.notebooks or None, args.build, params, timeout=args.timeout)
        print((Path(args.build) / "summary.md").read_text())
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the running notebook's kernel was ended; finished notebooks "
              "are kept in the build folder.", file=sys.stderr)  # fmt: skip
        return 130
    return 0 if all(r.status == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
