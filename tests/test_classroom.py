"""tlhelpers.classroom: nbgrader-equivalent student copies, up-to-date copies, grading a class."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tlhelpers import classroom
from tlhelpers.classroom import (
    CODE_STUB,
    clear_hidden_tests,
    clear_output,
    clear_solutions,
    grade_class,
    lock_cells,
    stale_copies,
    student_version,
)

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"


def _cell(source, kind="code", **nbgrader):
    c = new_code_cell(source) if kind == "code" else new_markdown_cell(source)
    if nbgrader:
        c.metadata["nbgrader"] = {"schema_version": 3, "grade": False, "solution": False,
                                  "locked": False, "grade_id": "x", **nbgrader}  # fmt: skip
    return c


def test_solution_region_becomes_the_indented_stub():
    nb = new_notebook(
        cells=[
            _cell(
                "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\nprint(1)",
                solution=True,
            )
        ]
    )
    clear_solutions(nb)
    assert nb.cells[0].source == (
        "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nprint(1)"
    )


def test_solution_cell_without_region_is_replaced_whole_and_markdown_gets_the_text_stub():
    nb = new_notebook(
        cells=[_cell("x = 1", solution=True), _cell("my answer", "markdown", solution=True)]
    )
    clear_solutions(nb)
    assert nb.cells[0].source == CODE_STUB and nb.cells[1].source == "YOUR ANSWER HERE"


@pytest.mark.parametrize(
    ("source", "meta", "message"),
    [
        ("### BEGIN SOLUTION\nx\n", {"solution": True}, "no END SOLUTION"),
        ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", {"solution": True}, "nested"),
        ("### BEGIN SOLUTION\nx\n### END SOLUTION", {}, "not marked as a solution cell"),
    ],
)
def test_bad_solution_regions_are_refused(source, meta, message):
    nb = new_notebook(cells=[_cell(source, **meta) if meta else _cell(source)])
    with pytest.raises(ValueError, match=message):
        clear_solutions(nb)


def test_hidden_tests_are_removed_only_from_grade_cells():
    nb = new_notebook(
        cells=[_cell("a\n### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS\nc", grade=True, points=1)]
    )
    clear_hidden_tests(nb)
    assert nb.cells[0].source == "a\nc"
    bad = new_notebook(cells=[_cell("### BEGIN HIDDEN TESTS\nb\n### END HIDDEN TESTS")])
    with pytest.raises(ValueError, match="not a grade cell"):
        clear_hidden_tests(bad)


def test_lock_cells_follows_nbgrader_defaults():
    nb = new_notebook(cells=[_cell("s", solution=True), _cell("t", grade=True, points=1),
                             _cell("r", locked=True), _cell("free")])  # fmt: skip
    lock_cells(nb)
    md = [c.metadata for c in nb.cells]
    assert md[0]["deletable"] is False and "editable" not in md[0]
    assert md[1]["deletable"] is False and md[1]["editable"] is False
    assert md[2]["deletable"] is False and md[2]["editable"] is False
    assert "deletable" not in md[3]


def test_clear_output_removes_outputs_counts_and_run_metadata():
    c = _cell("print(1)")
    c.outputs = [nbformat.v4.new_output("stream", text="1")]
    c.execution_count = 3
    c.metadata["papermill"] = {"duration": 1}
    nb = new_notebook(cells=[c], metadata={"papermill": {}})
    clear_output(nb)
    assert nb.cells[0].outputs == [] and nb.cells[0].execution_count is None
    assert "papermill" not in nb.cells[0].metadata and "papermill" not in nb.metadata


def test_generated_copies_are_up_to_date_and_reproducible():
    assert stale_copies() == [], "run `python -m tlhelpers exercises generate`"
    src = nbformat.read(str(next((EXERCISES / "source").glob("ex03_*.ipynb"))), as_version=4)
    assert classroom._dumps(student_version(src)) == classroom._dumps(
        student_version(copy.deepcopy(src))
    )


def test_every_source_has_points_hidden_tests_and_estimates():
    for path in classroom.source_notebooks():
        nb = nbformat.read(str(path), as_version=4)
        tests = classroom._test_cells(nb)
        assert len(tests) >= 3, path.name
        assert all(c.metadata["nbgrader"]["points"] > 0 for c in tests.values())
        assert any("BEGIN HIDDEN TESTS" in c.source for c in tests.values())
        assert "min" in nb.cells[0].source
        student = nbformat.read(str(EXERCISES / "student" / path.name), as_version=4)
        text = "\n".join(c.source for c in student.cells)
        assert (
            "BEGIN SOLUTION" not in text
            and "HIDDEN" not in text
            and "raise NotImplementedError()" in text
        )


def test_stale_copy_is_reported(tmp_path):
    (tmp_path / "source").mkdir()
    src = next((EXERCISES / "source").glob("ex01_*.ipynb"))
    (tmp_path / "source" / src.name).write_text(src.read_text())
    classroom.generate(tmp_path)
    assert stale_copies(tmp_path) == []
    p = tmp_path / "student" / src.name
    p.write_text(p.read_text().replace("YOUR CODE HERE", "my edit"))
    assert stale_copies(tmp_path) == [f"student/{src.name}"]


def test_unknown_exercise_and_missing_folder_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Unknown exercise 'ex99'. Valid exercises: ex01, ex02"):
        grade_class(tmp_path, "ex99")
    with pytest.raises(ValueError, match="is not a folder"):
        grade_class(tmp_path / "nope", "ex03")


# ------------------------------------------------------------------------ grading a class


def _submission(answers: dict[str, str]) -> str:
    """The ex03 student copy with some answer cells filled in (grade_id -> source)."""
    nb = nbformat.read(str(EXERCISES / "student" / "ex03_loss_transfer.ipynb"), as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = answers[gid]
    return nbformat.writes(nb)


def _solution_sources() -> dict[str, str]:
    nb = nbformat.read(str(EXERCISES / "solutions" / "ex03_loss_transfer.ipynb"), as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}  # fmt: skip


@pytest.mark.slow
@pytest.mark.notebooks
def test_grading_a_fixture_class(tmp_path):
    sol = _solution_sources()
    cls = tmp_path / "submitted"
    cls.mkdir()
    plain_l2 = (
        "def l2sp_penalty(model, source_state, alpha, beta):\n    return sum(0.5 * alpha * p.pow(2).sum() "
        "for n, p in model.named_parameters() if p.ndim >= 2 and n in source_state) + sum(0.5 * beta * "
        "p.pow(2).sum() for n, p in model.named_parameters() if p.ndim >= 2 and n not in source_state)"
    )
    (cls / "alice.ipynb").write_text(_submission(sol))
    (cls / "bob.ipynb").write_text(
        _submission({"ex03_l2sp_answer": plain_l2, "ex03_bss_answer": sol["ex03_bss_answer"]})
    )
    (cls / "carol.ipynb").write_text(
        _submission(
            {
                "ex03_l2sp_answer": sol["ex03_l2sp_answer"],
                "ex03_bss_answer": "raise RuntimeError('boom')",
            }
        )
    )
    (cls / "dave.ipynb").write_text(
        _submission(
            {
                "ex03_l2sp_answer": sol["ex03_l2sp_answer"],
                "ex03_bss_answer": "while True:\n    pass",
            }
        )
    )
    (cls / "erin.ipynb").write_text(
        _submission(
            {
                "ex03_l2sp_answer": "def l2sp_penalty(model, source_state, alpha, beta):\n    return 'small'",
                "ex03_bss_answer": "def bss_penalty(features, k):\n    return [1.0]",
                "ex03_train_step_answer": "train_step = 42",
            }
        )
    )
    (cls / "frank.ipynb").write_text("this is my essay, not a notebook")
    other = nbformat.read(str(EXERCISES / "solutions" / "ex02_model_choice.ipynb"), as_version=4)
    (cls / "gina").mkdir()
    (cls / "gina" / "ex03_loss_transfer.ipynb").write_text(nbformat.writes(other))
    deleter = dict(sol)  # deletes every file of its working folder (its own notebook included)
    deleter["ex03_bss_answer"] = (
        "import os\nfor f in os.listdir('.'):\n    os.remove(f)\n" + sol["ex03_bss_answer"]
    )
    (cls / "henry.ipynb").write_text(_submission(deleter))
    remover = dict(sol)  # removes its working folder: its own kernel breaks, nobody else's
    remover["ex03_bss_answer"] = (
        "import os, shutil\nshutil.rmtree(os.getcwd())\n" + sol["ex03_bss_answer"]
    )
    (cls / "jack.ipynb").write_text(_submission(remover))
    # the test cells are restored: editing them to always pass does not help
    cheat = nbformat.reads(_submission({}), as_version=4)
    for cell in cheat.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            cell.source = "print('all good')"
    (cls / "ivan.ipynb").write_text(nbformat.writes(cheat))

    out = tmp_path / "grades"
    grades = grade_class(cls, "ex03", workers=2, timeout=90, out=out)
    by = {g.student: g for g in grades}
    assert {k: (by[k].points, by[k].max_points) for k in by} == {
        "alice": (6, 6), "bob": (1, 6), "carol": (3, 6), "dave": (3, 6), "erin": (0, 6),
        "frank": (0, 6), "gina": (0, 6), "henry": (6, 6), "ivan": (0, 6), "jack": (3, 6)}  # fmt: skip
    assert by["alice"].status == "graded" and "a cell raised" not in by["alice"].feedback
    assert "ignores the source weights" in by["bob"].feedback
    assert "not attempted" in by["bob"].feedback
    assert (
        "a cell raised: cell" in by["carol"].feedback
        and "RuntimeError: boom" in by["carol"].feedback
    )
    assert by["dave"].status == "timeout"
    assert "should be a torch.Tensor, got a str" in by["erin"].feedback
    assert "should be a function" in by["erin"].feedback
    assert by["frank"].status == "not a notebook"
    assert by["gina"].status == "wrong exercise" and "ex02" in by["gina"].feedback
    assert "not attempted" in by["ivan"].feedback
    assert "FileNotFoundError" in by["jack"].feedback
    rows = list(csv.DictReader(open(out / "grades.csv")))
    assert [r["student"] for r in rows] == sorted(by) and set(rows[0]) >= {
        "student",
        "exercise",
        "points",
        "feedback",
    }
    md = (out / "grades.md").read_text()
    assert (
        md.startswith("| student | exercise | points |")
        and "| frank | ex03 | 0 | 6 | not a notebook |" in md
    )


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize(
    "path", sorted((EXERCISES / "student").glob("ex*.ipynb")), ids=lambda p: p.stem
)
def test_student_copy_runs_to_the_end_with_every_check_not_attempted(path, tmp_path):
    cls = tmp_path / "class"
    cls.mkdir()
    (cls / "student.ipynb").write_text(path.read_text())
    exercise = path.name[:4]
    (g,) = grade_class(cls, exercise, workers=1, timeout=300, out=tmp_path / "out")
    assert g.status == "graded" and g.points == 0, g
    assert "a cell raised" not in g.feedback and "failed" not in g.feedback, g.feedback
    parts = g.feedback.split("; ")
    assert len(parts) >= 3 and all("not attempted" in p for p in parts), g.feedback
    assert json.dumps(g.feedback)  # plain text


def test_command_line(tmp_path, capsys):
    from tlhelpers.__main__ import main

    assert main(["exercises", "generate", "--check"]) == 0
    assert main(["exercises", "grade", str(tmp_path), "--exercise", "ex99"]) == 2
    assert "Unknown exercise 'ex99'" in capsys.readouterr().err


# ---------------------------------------------------------------- the teacher's exercise table


def test_the_teachers_table_lists_every_exercise_with_its_time_and_points():
    page = (ROOT / "book" / "reference" / "teacher.md").read_text()
    table = classroom.exercise_table()
    assert classroom.TABLE_BEGIN in page
    assert classroom.readme_with_table(page, table) == page, "run `make exercises`"
    assert "reference/teacher.md" in (ROOT / "README.md").read_text()  # the README links to it
    rows = classroom.exercise_rows()
    from tlhelpers.exercises import all_exercises

    ids = [r.id for r in rows]
    assert len(ids) == len(set(ids)) and set(ids) <= set(all_exercises())
    for path in classroom.source_notebooks():  # every check cell is a row
        nb = nbformat.read(str(path), as_version=4)
        assert [r.id for r in rows if r.notebook == path.stem] == list(classroom._test_cells(nb))
    for r in rows:
        assert f"| {r.number} | {r.title} | {r.minutes} min | {r.points:g} |" in table
    assert f"| {sum(r.minutes for r in rows)} min" in table


def test_every_task_heading_states_the_checkers_minutes_and_the_cells_points():
    assert classroom.heading_problems() == []


def test_a_new_notebook_joins_the_table_and_a_wrong_heading_is_named(tmp_path):
    root = tmp_path / "exercises"
    (root / "source").mkdir(parents=True)
    src = next((EXERCISES / "source").glob("ex01_*.ipynb"))
    (root / "source" / src.name).write_text(src.read_text())
    readme = tmp_path / "README.md"
    readme.write_text(f"# Kit\n\n{classroom.TABLE_BEGIN}\nold\n{classroom.TABLE_END}\n\nmore\n")
    assert "README.md (exercise table)" in stale_copies(root)
    classroom.generate(root)
    text = readme.read_text()
    assert "old" not in text and "| `ex01_preprocessing` | 01 | 1 |" in text and "more" in text
    assert stale_copies(root) == []
    nb = json.loads((root / "source" / src.name).read_text())
    for cell in nb["cells"]:
        if "".join(cell["source"]).startswith("## Exercise 2 "):
            cell["source"] = "".join(cell["source"]).replace("about 5 min", "about 7 min")
    (root / "source" / src.name).write_text(json.dumps(nb))
    (problem,) = classroom.heading_problems(root)
    assert (
        "ex01_normalize" in problem
        and "7 min" in problem
        and "expected exercise 2, 5 min" in problem
    )
