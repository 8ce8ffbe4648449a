"""Every notebook keeps the shape of a lesson (CONTRIBUTING.md): short code cells, no scaffolding
in view, the shape's headings and reading time, its notes and its teacher's answers, every
glossary term linked at its first use.

The printed-words limit needs executed outputs: ``tlhelpers.runner`` counts them for every
notebook it runs and flags any over the limit in ``summary.md``; its counter is tested here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tlhelpers import glossary, lessons
from tlhelpers.runner import course_notebooks

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "notebooks"
NOTEBOOKS = course_notebooks(FOLDER)
TERMS = glossary.read(FOLDER / glossary.GLOSSARY_NAME)


def _nb(path: Path) -> dict:
    return json.loads(path.read_text())


def lesson_problems(path: Path) -> list[str]:
    """Everything that keeps the notebook at ``path`` from the shape of a lesson."""
    nb = _nb(path)
    problems = lessons.shape_problems(nb, path.stem)
    problems += lessons.support_problems(nb, path.stem, FOLDER)
    longest = lessons.longest_code_cell(nb)
    if longest > lessons.MAX_CODE_LINES:
        problems.append(f"a code cell of {longest} lines (at most {lessons.MAX_CODE_LINES})")
    problems += [
        f"scaffolding in a teaching cell (tag it remove-cell): {line}"
        for line in lessons.scaffolding_lines(nb)
    ]
    unlinked = glossary.unlinked(nb, TERMS)
    if unlinked:
        problems.append(
            f"glossary terms not linked at first use ({', '.join(unlinked)}): "
            f"python -m tlhelpers.glossary link notebooks/{path.name}"
        )
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_lesson_limits(path: Path):
    """One test per notebook: its shape, its limits and its links to the glossary, notes and answers."""
    problems = lesson_problems(path)
    assert not problems, "\n".join(problems)


# --- the checks themselves, on small synthetic notebooks ---------------------------------------


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def _code(text: str, tags: tuple[str, ...] = (), outputs: list | None = None) -> dict:
    return {
        "cell_type": "code",
        "metadata": {"tags": list(tags)},
        "source": text,
        "outputs": outputs or [],
    }


TITLE = (
    "# 07 · Evaluation\n\n**What you will learn**: how to score a verifier.\n\n"
    "**You need**: 05b; about 30 minutes to read, about 1 minute to run.\n"
)


def _good() -> dict:
    return {
        "cells": [
            _md(TITLE),
            _code("guard = ParameterGuard(globals())", ("remove-cell",)),
            _code("seed: int = 0  # seed", ("parameters", "remove-cell")),
            _md("## The idea\nA loss."),
            _code("x = 1\n\n" + "y = 2\n" * 29),
            _md("## Results"),
            _code("save_results(out_dir, check=True)", ("remove-cell",)),
            _md("## What we found\nSomething."),
            _md(
                "## Questions\n1. Why?\n2. How?\n\n*Notes: [notes/07_evaluation.md](notes/07_evaluation.md).*"
            ),
        ]
    }


def _folder(tmp_path: Path, answers: str = "1. Because.\n2. So.\n") -> Path:
    (tmp_path / "notes").mkdir()
    (tmp_path / "answers").mkdir()
    (tmp_path / "notes" / "07_evaluation.md").write_text("seeds tried")
    (tmp_path / "answers" / "07_evaluation.md").write_text(answers)
    return tmp_path


def test_a_complying_notebook_passes_every_check(tmp_path: Path):
    nb = _good()
    assert lessons.longest_code_cell(nb) == 30
    assert lessons.scaffolding_lines(nb) == []
    assert lessons.shape_problems(nb, "07_evaluation") == []
    assert lessons.question_count(nb) == 2
    assert lessons.support_problems(nb, "07_evaluation", _folder(tmp_path)) == []


def test_long_code_cell_is_measured_without_blank_lines_and_injected_parameters():
    nb = _good()
    nb["cells"].append(_code("a = 1\n" * 31))
    assert lessons.longest_code_cell(nb) == 31
    nb["cells"][-1]["metadata"]["tags"] = ["injected-parameters"]
    assert lessons.longest_code_cell(nb) == 30


def test_scaffolding_in_a_visible_cell_is_found():
    nb = _good()
    nb["cells"].append(_code("params = guard.check(seed=seed)\nassert acc > 0.5\nprint(acc)"))
    assert lessons.scaffolding_lines(nb) == ["params = guard.check(seed=seed)", "assert acc > 0.5"]
    nb["cells"][-1]["metadata"]["tags"] = ["hide-input"]
    assert lessons.scaffolding_lines(nb) == []


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("# 07 · Evaluation", "# Evaluation", "must start '# 07 · Topic'"),
        ("# 07 · Evaluation", "# 08 · Evaluation", "must start '# 07 · Topic'"),
        ("What you will learn", "Aims", "What you will learn"),
        ("about 30 minutes to read", "some reading", "reading time"),
        ("about 1 minute to run", "quick", "run time"),
    ],
)
def test_title_cell_problems(old: str, new: str, problem: str):
    nb = _good()
    nb["cells"][0]["source"] = TITLE.replace(old, new)
    assert any(problem in p for p in lessons.shape_problems(nb, "07_evaluation"))


def test_times_may_be_decimal_ranges_and_wrap_lines():
    nb = _good()
    nb["cells"][0]["source"] = TITLE.replace(
        "about 30 minutes to read", "30-40 minutes to\nread"
    ).replace("about 1 minute to run", "about 1.5 minutes to run")
    assert lessons.shape_problems(nb, "07_evaluation") == []


def test_missing_and_misordered_headings():
    nb = _good()
    nb["cells"][7]["source"] = "## Findings"
    assert lessons.shape_problems(nb, "07_evaluation") == ["no '## What we found' heading"]
    nb = _good()
    nb["cells"][3], nb["cells"][5] = nb["cells"][5], nb["cells"][3]
    assert any("out of order" in p for p in lessons.shape_problems(nb, "07_evaluation"))


def test_missing_notes_link_notes_file_and_answers(tmp_path: Path):
    nb = _good()
    nb["cells"][-1]["source"] = "## Questions\n1. Why?\n2. How?\n3. When?"
    folder = _folder(tmp_path)
    problems = lessons.support_problems(nb, "07_evaluation", folder)
    assert any("no link to the maintainer notes" in p for p in problems)
    assert any("no answer to question(s) [3]" in p for p in problems)
    (folder / "notes" / "07_evaluation.md").unlink()
    (folder / "answers" / "07_evaluation.md").unlink()
    problems = lessons.support_problems(_good(), "07_evaluation", folder)
    assert "notes/07_evaluation.md does not exist" in problems
    assert "answers/07_evaluation.md does not exist" in problems


def test_answers_may_be_numbered_items_or_headings():
    assert lessons.numbered_answers("## Q1\nx\n## Question 2\ny\n3. z\n   4. w\n") == {1, 2, 3, 4}
    assert lessons.numbered_answers("The 1. thing\n") == set()


def test_printed_words_counts_streams_and_text_but_not_figures_or_errors():
    nb = {
        "cells": [
            _code(
                "print('a b c')",
                outputs=[
                    {"output_type": "stream", "name": "stdout", "text": ["a b c\n", "d\n"]},
                    {"output_type": "execute_result", "data": {"text/plain": "x y"}},
                    {
                        "output_type": "display_data",
                        "data": {
                            "image/png": "...",
                            "text/plain": "<Figure size 640x480 with 1 Axes>",
                        },
                    },
                    {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t u v"]},
                ],
            ),
            _md("prose words are not printed words"),
        ]
    }
    assert lessons.printed_words(nb) == 6


@pytest.mark.notebooks
@pytest.mark.parametrize(("repeat", "fails"), [(10, False), (700, True)])
def test_nbval_fails_a_notebook_that_prints_too_many_words(
    tmp_path: Path, repeat: int, fails: bool
):
    """notebooks/conftest.py, under nbval as `make test` runs it: a notebook printing more than
    the limit fails at the cell that crosses it, one printing less passes."""
    import shutil
    import subprocess
    import sys

    import nbformat

    shutil.copy(FOLDER / "conftest.py", tmp_path / "conftest.py")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print('word ' * 5)"),
                nbformat.v4.new_code_cell(f"print('word ' * {repeat})")]  # fmt: skip
    nbformat.write(nb, tmp_path / "words.ipynb")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--rootdir", str(tmp_path), str(tmp_path / "words.ipynb")],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    out = run.stdout + run.stderr
    if fails:
        assert run.returncode == 1 and f"has printed {repeat + 5} words" in out, out
        assert "1 failed, 1 passed" in out, out
    else:
        assert run.returncode == 0 and "2 passed" in out, out
