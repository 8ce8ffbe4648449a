"""Exercise notebooks for a class: generate student/solution copies, grade a folder of submissions.

::

    python -m tlhelpers exercises generate            # exercises/source -> student/, solutions/, the teacher's table
    python -m tlhelpers exercises generate --check    # exit 1 if a generated copy is stale (CI)
    python -m tlhelpers exercises grade CLASS_DIR --exercise ex03 --workers 2 --timeout 120

**Generate** matches ``nbgrader generate_assignment`` on the cells (nbgrader docs,
"Student version" and its preprocessors ``ClearSolutions``, ``ClearHiddenTests``,
``LockCells``, ``ClearOutput``):

- a ``### BEGIN SOLUTION`` / ``### END SOLUTION`` region becomes ``# YOUR CODE HERE`` /
  ``raise NotImplementedError()``, indented like the ``BEGIN`` line (``YOUR ANSWER HERE``
  in Markdown); a solution cell without a region is replaced whole by the stub; a region
  outside a solution cell, a nested ``BEGIN`` or a missing ``END`` is an error;
- ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` is removed (grade cells only);
- locking: solution cells ``deletable: false``; grade (test) and read-only cells
  ``deletable: false, editable: false``;
- outputs and execution counts are cleared.

What nbgrader adds and this does not: ``checksum`` and ``cell_type`` in every cell's
``metadata.nbgrader``, and its database records (``tests/test_nbgrader.py`` runs
``nbgrader generate_assignment`` on every source and compares).
Copies are written with sorted keys and no outputs, so they are byte-for-byte
reproducible. The solution copy is the source with outputs cleared.

**Grade** runs each submission in its own working folder and process (papermill via
:func:`tlhelpers.runner.execute_isolated`), several at once, with a time limit per
notebook. The graded copy gets the source's test cells back (hidden tests included, as
nbgrader's autograder restores them) and runs every cell even after an error; each
check appends its result to a file outside the working folder. A test cell's points go
to a part whose checks all passed. A file that is not a notebook, a notebook of
another exercise, a crash or a loop becomes a row of the table, never an exception.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .exercises import GRADE_FILE_ENV, PASSED, STRICT_ENV
from .paths import repo_root
from .runner import execute_isolated
from .validation import check_int, check_positive

__all__ = [
    "clear_hidden_tests",
    "clear_output",
    "clear_solutions",
    "CODE_STUB",
    "EXERCISE_NAME",
    "exercise_rows",
    "exercise_table",
    "ExerciseRow",
    "exercises_root",
    "generate",
    "Grade",
    "grade_class",
    "heading_problems",
    "is_grade",
    "is_locked",
    "is_solution",
    "lock_cells",
    "main",
    "readme_with_table",
    "solution_version",
    "source_notebooks",
    "stale_copies",
    "student_version",
    "TEXT_STUB",
    "write_table",
]

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"
TEXT_STUB = "YOUR ANSWER HERE"
_BEGIN = re.compile(r"^\s*#+\s*BEGIN SOLUTION\s*$")
_END = re.compile(r"^\s*#+\s*END SOLUTION\s*$")
BEGIN_HIDDEN, END_HIDDEN = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
EXERCISE_NAME = re.compile(r"^(ex\d\d)_[\w-]+\.ipynb$")
#: Cell metadata keys that runs add and copies never keep.
_RUN_KEYS = ("execution", "papermill", "collapsed", "scrolled")


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    """Whether nbgrader marks ``cell`` as a solution cell (replaced by a stub for students)."""
    return bool(_nbg(cell).get("solution", False))


def is_grade(cell) -> bool:
    """Whether nbgrader marks ``cell`` as a grade (autograded test) cell."""
    return bool(_nbg(cell).get("grade", False))


def is_locked(cell) -> bool:
    """nbgrader's rule: a solution cell is never locked; a grade cell always is."""
    if is_solution(cell):
        return False
    return is_grade(cell) or bool(_nbg(cell).get("locked", False))


def _source(cell) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _replace_solution_region(cell) -> bool:
    stub = (CODE_STUB if cell["cell_type"] == "code" else TEXT_STUB).split("\n")
    out: list[str] = []
    inside = replaced = False
    for line in _source(cell).split("\n"):
        if _BEGIN.match(line):
            if inside:
                raise ValueError("encountered nested BEGIN SOLUTION statements")
            inside = replaced = True
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + s for s in stub)
        elif _END.match(line):
            if not inside:
                raise ValueError("END SOLUTION without a BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError("no END SOLUTION statement found")
    cell["source"] = "\n".join(out)
    return replaced


def clear_solutions(nb) -> None:
    """nbgrader's ``ClearSolutions`` (python stubs), in place."""
    for i, cell in enumerate(nb["cells"]):
        replaced = _replace_solution_region(cell)
        if replaced and not is_solution(cell):
            raise ValueError(f"cell {i}: solution region in a cell not marked as a solution cell.")
        if is_solution(cell) and not replaced:
            cell["source"] = CODE_STUB if cell["cell_type"] == "code" else TEXT_STUB
    nb["metadata"].pop("celltoolbar", None)


def clear_hidden_tests(nb) -> None:
    """nbgrader's ``ClearHiddenTests``: drop hidden-test regions (grade cells only), in place."""
    for i, cell in enumerate(nb["cells"]):
        out, inside, removed = [], False, False
        for line in _source(cell).split("\n"):
            if BEGIN_HIDDEN in line:
                if inside:
                    raise ValueError(f"cell {i}: nested BEGIN HIDDEN TESTS")
                inside = removed = True
            elif END_HIDDEN in line:
                inside = False
            elif not inside:
                out.append(line)
        if inside:
            raise ValueError(f"cell {i}: no END HIDDEN TESTS statement found")
        if removed and not is_grade(cell):
            raise ValueError(f"cell {i}: hidden test region in a cell that is not a grade cell.")
        cell["source"] = "\n".join(out)
    nb["metadata"].pop("celltoolbar", None)


def lock_cells(nb) -> None:
    """nbgrader's ``LockCells`` with its defaults, in place."""
    for cell in nb["cells"]:
        md = cell.setdefault("metadata", {})
        if is_solution(cell):
            md["deletable"] = False
        elif is_grade(cell) or is_locked(cell):
            md["deletable"] = False
            md["editable"] = False


def clear_output(nb) -> None:
    """nbconvert's ``ClearOutputPreprocessor`` plus the run metadata papermill adds, in place."""
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in _RUN_KEYS:
            cell.get("metadata", {}).pop(key, None)
    nb["metadata"].pop("papermill", None)


def _read(path: Path):
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _dumps(nb) -> str:
    import nbformat

    return nbformat.writes(nb) + "\n"  # sorted keys, indent 1 (nbformat's own format)


def student_version(nb):
    """The student copy of a source notebook (a new object)."""
    import copy

    nb = copy.deepcopy(nb)
    clear_solutions(nb)
    clear_hidden_tests(nb)
    lock_cells(nb)
    clear_output(nb)
    return nb


def solution_version(nb):
    """The solution copy: the source with outputs cleared (a new object)."""
    import copy

    nb = copy.deepcopy(nb)
    clear_output(nb)
    return nb


def exercises_root() -> Path:
    """The repository's ``exercises/`` folder; ``FileNotFoundError`` outside a clone."""
    root = repo_root()
    if root is None:
        raise FileNotFoundError("Run from a clone of the repository (exercises/ not found).")
    return root / "exercises"


def source_notebooks(root: Path | None = None) -> list[Path]:
    """The exercise sources (``exercises/source/exNN_*.ipynb``) under ``root``, sorted."""
    root = Path(root or exercises_root())
    return sorted(p for p in (root / "source").glob("*.ipynb") if EXERCISE_NAME.match(p.name))


def _expected(root: Path) -> dict[Path, str]:
    out = {}
    for src in source_notebooks(root):
        nb = _read(src)
        out[root / "student" / src.name] = _dumps(student_version(nb))
        out[root / "solutions" / src.name] = _dumps(solution_version(nb))
    return out


def _expected_with_readme(root: Path) -> dict[Path, str]:
    """The copies, plus each of :data:`TABLE_PAGES` that holds the table's block, with the table."""
    out = _expected(root)
    for page in TABLE_PAGES:
        path = root.parent / page
        if path.is_file() and TABLE_BEGIN in (text := path.read_text(encoding="utf-8")):
            out[path] = readme_with_table(text, exercise_table(root))
    return out


def generate(root: Path | None = None) -> list[Path]:
    """Write ``student/`` and ``solutions/`` from ``source/`` and the teacher's exercise table;
    returns the files written."""
    root = Path(root or exercises_root())
    written = []
    for path, text in _expected_with_readme(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def stale_copies(root: Path | None = None) -> list[str]:
    """Generated copies that are missing, differ from their source, or have no source."""
    root = Path(root or exercises_root())
    expected = _expected_with_readme(root)
    stale = [str(p.relative_to(root)) if p.is_relative_to(root) else f"{p.name} (exercise table)"
             for p, t in expected.items()
             if not p.is_file() or p.read_text(encoding="utf-8") != t]  # fmt: skip
    for sub in ("student", "solutions"):
        for p in sorted((root / sub).glob("*.ipynb")):
            if p not in expected:
                stale.append(f"{sub}/{p.name} (no source)")
    return stale


# ------------------------------------------------------------------- the teacher's table

#: ``## Exercise K · Title (about M min, P point[s])``: the first line of every task cell.
HEADING = re.compile(
    r"^## Exercise (?P<k>\d+) · (?P<title>.+) \(about (?P<minutes>\d+) min, "
    r"(?P<points>\d+(?:\.\d+)?) points?\)\s*$"
)
#: The generated block of the teacher's page (``python -m tlhelpers exercises generate`` rewrites it).
TABLE_BEGIN = "<!-- exercise table: written by `python -m tlhelpers exercises generate` from exercises/source -->"
TABLE_END = "<!-- end of the exercise table -->"


@dataclass(frozen=True)
class ExerciseRow:
    """One exercise of one notebook, as the teacher's table lists it."""

    notebook: str
    chapters: tuple[str, ...]
    number: int
    id: str
    title: str
    minutes: int
    points: float


def exercise_rows(root: Path | None = None) -> list[ExerciseRow]:
    """Every exercise of every source notebook, in order: title and minutes from its checker
    (:class:`tlhelpers.exercises.Exercise`), points from its check cell."""
    from .exercises import all_exercises

    known = all_exercises()
    rows = []
    for src in source_notebooks(root):
        nb = _read(src)
        intro = _source(nb["cells"][0]) if nb["cells"] else ""
        chapters = tuple(dict.fromkeys(re.findall(r"notebooks/(\w+)\.ipynb", intro)))
        for k, (gid, cell) in enumerate(_test_cells(nb).items(), start=1):
            if gid not in known:
                raise ValueError(f"{src.name}: check cell {gid!r} has no checker in "
                                 f"tlhelpers.exercises (known: {', '.join(known)}).")  # fmt: skip
            ex = known[gid]
            rows.append(ExerciseRow(src.stem, chapters, k, gid, ex.title, ex.minutes,
                                    float(_nbg(cell).get("points", 0))))  # fmt: skip
    return rows


def heading_problems(root: Path | None = None) -> list[str]:
    """Task headings whose minutes or points differ from the checker's and the check cell's."""
    rows = {r.id: r for r in exercise_rows(root)}
    problems = []
    for src in source_notebooks(root):
        nb = _read(src)
        heading = None
        for cell in nb["cells"]:
            first = _source(cell).split("\n", 1)[0]
            if cell["cell_type"] == "markdown" and first.startswith("## Exercise"):
                heading = first
            gid = _nbg(cell).get("grade_id")
            if gid in rows and is_grade(cell) and not is_solution(cell):
                r, m = rows[gid], HEADING.match(heading or "")
                if m is None:
                    problems.append(f"{src.name}: {gid}: no heading `## Exercise {r.number} · "
                                    f"Title (about M min, P points)` above it, got {heading!r}")  # fmt: skip
                elif (int(m["k"]), int(m["minutes"]), float(m["points"])) != (
                    r.number,
                    r.minutes,
                    r.points,
                ):
                    problems.append(
                        f"{src.name}: {gid}: heading says exercise {m['k']}, {m['minutes']} min, "
                        f"{m['points']} points; expected exercise {r.number}, {r.minutes} min "
                        f"(its checker), {r.points:g} points (its check cell)"
                    )
                heading = None
    return problems


def exercise_table(root: Path | None = None) -> str:
    """The teacher's table: every exercise with its time and points, one row each (Markdown)."""
    rows = exercise_rows(root)
    lines = ["| notebook | chapter | # | exercise | time | points |", "|---|---|---|---|---|---|"]
    last = None
    for r in rows:
        first = r.notebook != last
        last = r.notebook
        nb = f"`{r.notebook}`" if first else ""
        ch = ", ".join(c.split("_")[0] for c in r.chapters) if first else ""
        title = r.title.replace("|", "\\|")
        lines.append(f"| {nb} | {ch} | {r.number} | {title} | {r.minutes} min | {r.points:g} |")
    notebooks = len({r.notebook for r in rows})
    minutes = sum(r.minutes for r in rows)
    points = sum(r.points for r in rows)
    lines.append(f"| **{notebooks} notebooks** | | {len(rows)} | | {minutes} min "
                 f"(~{minutes / 60:.1f} h) | {points:g} |")  # fmt: skip
    return "\n".join(lines) + "\n"


#: Pages that may hold the generated table (relative to the repository): the teacher's
#: walkthrough, a reference page of the book that the README links to.
TABLE_PAGES = ("book/reference/teacher.md", "README.md")


def readme_with_table(readme: str, table: str) -> str:
    """``readme`` (a Markdown page) with the text between :data:`TABLE_BEGIN` and
    :data:`TABLE_END` replaced by ``table``."""
    start, end = readme.find(TABLE_BEGIN), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"the page has no exercise table block ({TABLE_BEGIN} ... {TABLE_END}).")
    return readme[: start + len(TABLE_BEGIN)] + "\n" + table + readme[end:]


# ------------------------------------------------------------------------------ grading


@dataclass
class Grade:
    """One row of the grade table."""

    student: str
    exercise: str
    points: float
    max_points: float
    status: str  # "graded" | "failed" | "timeout" | "not a notebook" | "wrong exercise" | "missing"
    feedback: str
    wall_s: float = 0.0


def _test_cells(nb) -> dict[str, Any]:
    """grade_id -> autograded test cell (grade and not solution)."""
    return {_nbg(c)["grade_id"]: c for c in nb["cells"] if is_grade(c) and not is_solution(c)}


def _grade_ids(nb) -> set[str]:
    return {_nbg(c).get("grade_id", "") for c in nb.get("cells", []) if _nbg(c)} - {""}


def _exercise_source(exercise: str, root: Path) -> Path:
    matches = [p for p in source_notebooks(root) if p.name.startswith(exercise + "_")]
    if not matches:
        names = [m.group(1) for p in source_notebooks(root) if (m := EXERCISE_NAME.match(p.name))]
        raise ValueError(f"Unknown exercise {exercise!r}. Valid exercises: {', '.join(names)}.")
    return matches[0]


def _submissions(class_dir: Path) -> list[tuple[str, Path | None, str]]:
    """(student, file or None, problem) for each entry of ``class_dir``.

    A file is one student's submission (student = file stem); a folder is one student
    (nbgrader's ``submitted/<student>/``): its notebook, searched recursively.
    """
    out: list[tuple[str, Path | None, str]] = []
    for entry in sorted(class_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            out.append((entry.stem, entry, ""))
        elif entry.is_dir():
            notebooks = sorted(entry.rglob("*.ipynb"))
            notebooks = [p for p in notebooks if ".ipynb_checkpoints" not in p.parts]
            files = [p for p in sorted(entry.rglob("*")) if p.is_file()]
            if notebooks:
                out.append((entry.name, notebooks[0], ""))
            elif files:
                out.append((entry.name, files[0], ""))
            else:
                out.append((entry.name, None, "empty folder: nothing was submitted"))
    return out


def _prepare(sub: Path, source_nb, exercise: str):
    """The notebook to run (test cells restored from the source), or ``(None, status, why)``."""
    import nbformat

    try:
        nb = nbformat.read(str(sub), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("no cells")
    except Exception as err:  # any unreadable file is reported, whatever the reason
        return (
            None,
            "not a notebook",
            f"{sub.name} is not a readable notebook ({type(err).__name__}).",
        )
    tests = _test_cells(source_nb)
    ids = _grade_ids(nb)
    if not ids & set(tests):
        others = sorted({i.split("_")[0] for i in ids if re.match(r"ex\d\d_", i)})
        if others:
            return None, "wrong exercise", (f"{sub.name} is exercise {', '.join(others)}'s notebook, "
                                            f"not {exercise}'s.")  # fmt: skip
        return None, "wrong exercise", f"{sub.name} has none of {exercise}'s exercise cells."
    for cell in nb["cells"]:
        gid = _nbg(cell).get("grade_id")
        if gid in tests:  # nbgrader's autograder restores locked/test cells the same way
            cell["source"] = _source(tests[gid])
            cell["cell_type"] = "code"
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    clear_output(nb)
    return nb, "", ""


def _grade_one(student: str, sub: Path | None, problem: str, exercise: str, source_nb,
               work: Path, timeout: int) -> Grade:  # fmt: skip
    tests = _test_cells(source_nb)
    max_points = float(sum(float(_nbg(c).get("points", 0)) for c in tests.values()))
    if sub is None:
        return Grade(student, exercise, 0.0, max_points, "missing", problem)
    nb, status, why = _prepare(sub, source_nb, exercise)
    if nb is None:
        return Grade(student, exercise, 0.0, max_points, status, why)
    safe = re.sub(r"[^\w.-]", "_", student) or "student"
    own = Path(tempfile.mkdtemp(prefix=f"{safe}-", dir=work))  # unique even if two names clash
    run_dir, out_dir, records = own / "run", own / "out", own / "records.jsonl"
    for d in (run_dir, out_dir):
        d.mkdir(parents=True, exist_ok=True)
    nb_path = run_dir / f"{exercise}_submission.ipynb"
    nb_path.write_text(_dumps(nb), encoding="utf-8")
    deadline = time.monotonic() + timeout
    outcome = execute_isolated(
        nb_path, out_dir, {}, timeout=timeout, cwd=run_dir, threads=1,
        should_stop=lambda: time.monotonic() > deadline,
        env={GRADE_FILE_ENV: str(records), STRICT_ENV: "0"}, allow_errors=True,
    )  # fmt: skip
    results: dict[str, list[dict]] = {}
    if records.is_file():
        for line in records.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                r = json.loads(line)
                results.setdefault(str(r["exercise"]), []).append(r)
            except (ValueError, KeyError, TypeError):
                continue
    points, notes = 0.0, []
    for gid, cell in tests.items():
        pts = float(_nbg(cell).get("points", 0))
        rs = results.get(gid, [])
        if rs and all(r.get("status") == PASSED for r in rs):
            points += pts
            notes.append(f"{gid} {pts:g}/{pts:g}")
        else:
            bad = next((r for r in rs if r.get("status") != PASSED), None)
            why = (f"{bad['status']}: {bad.get('message', '')}" if bad
                   else "not checked: its check cell failed or never ran")  # fmt: skip
            notes.append(f"{gid} 0/{pts:g} ({why})")
    status = "graded"
    errors = _cell_errors(out_dir / nb_path.name)
    if outcome.status == "interrupted":
        status = "timeout"
        notes.append(f"stopped after the time limit of {timeout} s")
    elif outcome.status == "failed" and not results:
        status = "failed"
    if errors:
        more = f" (and {len(errors) - 1} more cell(s) raised)" if len(errors) > 1 else ""
        notes.append(f"a cell raised: {errors[0]}{more}")
    elif outcome.status == "failed":
        notes.append(f"the notebook failed: {outcome.error[:300]}")
    return Grade(
        student, exercise, points, max_points, status, "; ".join(notes), outcome.wall_time_s
    )


def _cell_errors(executed: Path) -> list[str]:
    """'cell N: Name: value' for each cell of the executed copy that raised, in order."""
    try:
        nb = _read(executed)
    except Exception:  # no executed copy (killed early): the outcome says why
        return []
    found = []
    for i, cell in enumerate(nb.get("cells", [])):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                found.append(f"cell {i}: {o.get('ename', '')}: {str(o.get('evalue', ''))[:200]}")
    return found


def grade_class(
    class_dir: str | Path,
    exercise: str,
    *,
    workers: int = 2,
    timeout: int = 300,
    out: str | Path | None = None,
    root: Path | None = None,
    keep_work: bool = False,
) -> list[Grade]:
    """Grade every submission in ``class_dir`` for ``exercise`` (``"ex03"``); write the tables.

    Writes ``grades.csv`` and ``grades.md`` into ``out`` (default ``class_dir/../grades_<exercise>``).
    Working folders live in a temporary folder (kept under ``out/work`` with ``keep_work``).
    """
    class_dir = Path(class_dir)
    if not class_dir.is_dir():
        raise ValueError(f"class_dir {str(class_dir)!r} is not a folder of submissions.")
    check_int("workers", workers, minimum=1)
    check_positive("timeout", timeout)
    root = Path(root or exercises_root())
    source_nb = _read(_exercise_source(exercise, root))
    out = Path(out) if out is not None else class_dir.parent / f"grades_{exercise}"
    out.mkdir(parents=True, exist_ok=True)
    subs = _submissions(class_dir)
    work = Path(tempfile.mkdtemp(prefix="tlhelpers-grade-"))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_grade_safely, s, f, p, exercise, source_nb, work, timeout)
                       for s, f, p in subs]  # fmt: skip
            grades = [f.result() for f in futures]
    finally:
        if keep_work:
            shutil.copytree(work, out / "work", dirs_exist_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    write_table(grades, out)
    return grades


def _grade_safely(student, sub, problem, exercise, source_nb, work, timeout) -> Grade:
    try:
        return _grade_one(student, sub, problem, exercise, source_nb, work, timeout)
    except Exception as err:  # one submission must never stop the class's grading
        return Grade(
            student, exercise, 0.0, 0.0, "failed", f"grader error: {type(err).__name__}: {err}"
        )


def write_table(grades: Iterable[Grade], out: Path) -> None:
    """``grades.csv`` and ``grades.md`` (student, exercise, points, max_points, status, feedback)."""
    grades = list(grades)
    cols = ["student", "exercise", "points", "max_points", "status", "feedback"]
    with open(out / "grades.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for g in grades:
            w.writerow(
                [g.student, g.exercise, f"{g.points:g}", f"{g.max_points:g}", g.status, g.feedback]
            )
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for g in grades:
        fb = g.feedback.replace("|", "\\|").replace("\n", " ")
        lines.append(
            f"| {g.student} | {g.exercise} | {g.points:g} | {g.max_points:g} | {g.status} | {fb} |"
        )
    (out / "grades.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """``python -m tlhelpers exercises ...``: generate copies or grade a class."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tlhelpers exercises", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="cmd", required=True)
    gen = sub.add_parser("generate", help="write exercises/student and exercises/solutions")
    gen.add_argument("--check", action="store_true", help="only report stale copies (exit 1)")
    gr = sub.add_parser("grade", help="grade a folder of submissions")
    gr.add_argument("class_dir")
    gr.add_argument("--exercise", required=True, help="e.g. ex03")
    gr.add_argument("--workers", type=int, default=2)
    gr.add_argument("--timeout", type=int, default=300, help="seconds per notebook")
    gr.add_argument("--out", default=None, help="folder for grades.csv/.md")
    gr.add_argument("--keep-work", action="store_true", help="keep each run's folder in OUT/work")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "generate":
            if args.check:
                stale = stale_copies()
                for s in stale:
                    print(f"stale: {s}", file=sys.stderr)
                if stale:
                    print("run `python -m tlhelpers exercises generate`", file=sys.stderr)
                return 1 if stale else 0
            for p in generate():
                print(f"wrote {p}")
            return 0
        grades = grade_class(args.class_dir, args.exercise, workers=args.workers,
                             timeout=args.timeout, out=args.out, keep_work=args.keep_work)  # fmt: skip
        out = (
            Path(args.out) if args.out else Path(args.class_dir).parent / f"grades_{args.exercise}"
        )
        print((out / "grades.md").read_text())
        return 0 if grades else 1  # an empty class folder graded nobody
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
