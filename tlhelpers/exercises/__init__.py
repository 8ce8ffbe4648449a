"""Self-checking exercises for the course's notebooks (``exercises/``), learntools style.

Each chapter's module holds its exercises; each exercise has ``check(answer)`` (specific
feedback; "not attempted yet" for nbgrader's stub), ``hint(level)`` and ``solution()``::

    from tlhelpers.exercises import ex03
    ex03.l2sp.hint()              # a nudge; hint(2), hint(3) say more
    ex03.l2sp.check(l2sp_penalty) # prints the feedback, returns a Result

Chapters: ``ex01`` (notebook 01), ``ex02`` (02), ``ex03`` (03a/03b), ``ex04`` (04).
Generating student/solution copies and grading a class: :mod:`tlhelpers.classroom`.
"""

from __future__ import annotations

import importlib

from ._core import (
    FAILED,
    GRADE_FILE_ENV,
    NOT_ATTEMPTED,
    PASSED,
    STRICT_ENV,
    Exercise,
    Result,
)

__all__ = [
    "CHAPTERS", "Exercise", "Result", "all_exercises", "PASSED", "FAILED", "NOT_ATTEMPTED",
    "GRADE_FILE_ENV", "STRICT_ENV",
]  # fmt: skip

#: Chapter modules, in course order.
CHAPTERS = ("ex01", "ex02", "ex03", "ex04")


def all_exercises() -> dict[str, Exercise]:
    """Every exercise by id (``"ex03_l2sp"`` -> its :class:`Exercise`), in course order."""
    found: dict[str, Exercise] = {}
    for chapter in CHAPTERS:
        module = importlib.import_module(f"{__name__}.{chapter}")
        for name in module.__all__:  # the exercises, and the helpers a chapter's notebook uses
            ex = getattr(module, name)
            if isinstance(ex, Exercise):
                found[ex.id] = ex
    return found
