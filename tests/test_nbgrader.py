"""The exercise notebooks under nbgrader itself (nbgrader 0.9.6 from requirements.txt).

For every source in ``exercises/source`` (found, not listed): ``nbgrader generate_assignment``
reproduces ``exercises/student`` cell by cell except the two fields nbgrader adds to each cell's
``metadata.nbgrader`` (:data:`NBGRADER_ADDS`), and ``nbgrader autograde`` gives the solution copy
full points and the untouched student copy zero, without a crash. The course folder holds only
the shipped ``exercises/nbgrader_config.py``; no environment variable is set for the kit (the
ones the tests themselves set are removed). ``nbgrader validate`` does not tell a student that
an untouched notebook passes.

Cost: two course folders, each one ``generate_assignment`` and one ``autograde`` over half of
the notebooks, run side by side; the validation runs after the first of them.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tlhelpers.classroom import is_grade, is_solution, source_notebooks

pytest.importorskip("nbgrader")

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
NAMES = [p.stem for p in source_notebooks(EXERCISES)]
#: What ``nbgrader generate_assignment`` adds to every cell's ``metadata.nbgrader``.
NBGRADER_ADDS = ("checksum", "cell_type")
#: Environment variables of the kit and of nbgrader that no teacher sets.
UNSET = ("TLHELPERS_EXERCISES_STRICT", "TLHELPERS_GRADE_FILE", "NBGRADER_EXECUTION",
         "NBGRADER_VALIDATING")  # fmt: skip
STUDENTS = ("solution", "student")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` from the venv
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    return env


def _nbgrader(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=1800)  # fmt: skip


def _course(folder: Path, names: list[str]) -> dict:
    """generate_assignment + autograde for ``names`` in a fresh course ``folder``."""
    folder.mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text((EXERCISES / "nbgrader_config.py").read_text())
    for name in names:
        (folder / "source" / name).mkdir(parents=True)
        (folder / "source" / name / f"{name}.ipynb").write_bytes(
            (EXERCISES / "source" / f"{name}.ipynb").read_bytes()
        )
        for student, copy_dir in zip(STUDENTS, ("solutions", "student"), strict=True):
            d = folder / "submitted" / student / name
            d.mkdir(parents=True)
            (d / f"{name}.ipynb").write_bytes((EXERCISES / copy_dir / f"{name}.ipynb").read_bytes())
    gen = _nbgrader(["generate_assignment", "*"], folder)
    grade = _nbgrader(["autograde", "*"], folder)
    scores = {}
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{folder / 'gradebook.db'}") as gb:
        for name in names:
            for student in STUDENTS:
                try:
                    sub = gb.find_submission(name, student)
                    scores[(name, student)] = (sub.score, sub.max_score)
                except Exception as err:  # missing: the assertion below names it
                    scores[(name, student)] = (None, repr(err))
    return {"folder": folder, "generate": gen, "autograde": grade, "scores": scores}


def _validate(folder: Path, name: str) -> subprocess.CompletedProcess:
    folder.mkdir(parents=True)
    (folder / "nbgrader_config.py").write_text((EXERCISES / "nbgrader_config.py").read_text())
    nb = folder / f"{name}.ipynb"
    nb.write_bytes((EXERCISES / "student" / f"{name}.ipynb").read_bytes())
    return _nbgrader(["validate", nb.name], folder)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("nbgrader")
    halves = [NAMES[0::2], NAMES[1::2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        courses = [pool.submit(_course, base / f"course{i}", h) for i, h in enumerate(halves) if h]
        validation = pool.submit(_validate, base / "validate", NAMES[0])
        done = [c.result() for c in courses]
        checked = validation.result()
    by_name = {name: c for c in done for name, _ in c["scores"]}
    return {"courses": by_name, "validate": checked}


def test_there_are_exercise_notebooks_and_the_config_sets_a_cell_timeout():
    assert len(NAMES) >= 4, NAMES
    text = (EXERCISES / "nbgrader_config.py").read_text()
    assert "c.Execute.timeout" in text


def _strip_added(nb: dict) -> dict:
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta is not None:
            for key in NBGRADER_ADDS:
                meta.pop(key, None)
    return nb


@pytest.mark.parametrize("name", NAMES)
def test_generate_assignment_reproduces_the_student_copy(name, runs):
    course = runs["courses"][name]
    assert course["generate"].returncode == 0, course["generate"].stderr[-3000:]
    release = json.loads((course["folder"] / "release" / name / f"{name}.ipynb").read_text())
    ours = json.loads((EXERCISES / "student" / f"{name}.ipynb").read_text())
    # nbgrader adds exactly these two fields to every cell, and nothing else
    for cell in release["cells"]:
        assert set(NBGRADER_ADDS) <= set(cell["metadata"]["nbgrader"]), cell["metadata"]
    release, ours = _strip_added(release), _strip_added(ours)
    assert {k: v for k, v in release.items() if k != "cells"} == {
        k: v for k, v in ours.items() if k != "cells"
    }
    assert len(release["cells"]) == len(ours["cells"])
    for i, (theirs, mine) in enumerate(zip(release["cells"], ours["cells"], strict=True)):
        assert theirs == mine, f"{name}: cell {i} differs"


@pytest.mark.parametrize("name", NAMES)
def test_autograde_gives_the_solution_full_points_and_the_student_copy_zero(name, runs):
    course = runs["courses"][name]
    assert course["autograde"].returncode == 0, course["autograde"].stderr[-3000:]
    source = json.loads((EXERCISES / "source" / f"{name}.ipynb").read_text())
    total = sum(float(c["metadata"]["nbgrader"]["points"]) for c in source["cells"]
                if is_grade(c) and not is_solution(c))  # fmt: skip
    assert total > 0
    assert course["scores"][(name, "solution")] == (total, total)
    assert course["scores"][(name, "student")] == (0.0, total)
    for student in STUDENTS:  # no crash: every graded notebook was written
        assert (course["folder"] / "autograded" / student / name / f"{name}.ipynb").is_file()
    # The solution copy is executed here only (make test does not run it under nbval too):
    # full points say every graded check passed; no cell of it may raise either.
    graded = course["folder"] / "autograded" / "solution" / name / f"{name}.ipynb"
    raised = _raising_cells(json.loads(graded.read_text()))
    assert not raised, f"{name}: solution cells raised: {raised}"


def _raising_cells(nb: dict) -> list[str]:
    """``"cell N: ErrorName"`` for every code cell of an executed notebook with an error output."""
    return [
        f"cell {i}: {o.get('ename', '?')}"
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code"
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]


def test_raising_cells_names_each_error_output():
    nb = {"cells": [
        {"cell_type": "markdown", "source": "x"},
        {"cell_type": "code", "outputs": [{"output_type": "stream", "text": "ok"}]},
        {"cell_type": "code", "outputs": [{"output_type": "error", "ename": "AssertionError"}]},
    ]}  # fmt: skip
    assert _raising_cells(nb) == ["cell 2: AssertionError"]
    assert _raising_cells({"cells": nb["cells"][:2]}) == []


def test_validate_does_not_pass_an_untouched_notebook(runs):
    out = runs["validate"]
    text = out.stdout + out.stderr
    assert "Success" not in text, text[-3000:]
    assert "VALIDATION FAILED" in text or "failed" in text.lower(), text[-3000:]
    assert "Not attempted yet" in text
