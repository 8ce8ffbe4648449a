"""Self-checking exercises for the course's notebooks (``exercises/``), learntools style.

Each chapter's module holds its exercises; each exercise has ``check(answer)`` (specific
feedback; "not attempted yet" for nbgrader's stub), ``hint(level)`` and ``solution()``::

    from tlhelpers.exercises import ex03
    ex03.l2sp.hint()              # a nudge; hint(2), hint(3) say more
    ex03.l2sp.check(l2sp_penalty) # prints the feedback, returns a Result

Chapters: one module ``exNN`` per chapter (``ex03`` holds 03a/03b's), found by name: a new
``exNN.py`` here is picked up by :data:`CHAPTERS` and :func:`all_exercises` without a list to edit.
Generating student/solution copies and grading a class: :mod:`tlhelpers.classroom`.
"""

from __future__ import annotations

import importlib
import pkgutil
import re

from ._core import (
    FAILED,
    GRADE_FILE_ENV,
    NBGRADER_ENV,
    NOT_ATTEMPTED,
    PASSED,
    STRICT_ENV,
    Exercise,
    Result,
)

__all__ = [
    "CHAPTERS", "Exercise", "Result", "all_exercises", "PASSED", "FAILED", "NOT_ATTEMPTED",
    "GRADE_FILE_ENV", "STRICT_ENV", "NBGRADER_ENV",
]  # fmt: skip

#: Chapter modules (``exNN``), in course order: every ``exNN.py`` of this package.
CHAPTERS = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"ex\d\d", m.name))
)


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
