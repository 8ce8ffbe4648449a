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
from types import ModuleType

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
    "CHAPTERS", "Exercise", "exercises_of", "Result", "all_exercises", "PASSED", "FAILED", "NOT_ATTEMPTED",
    "GRADE_FILE_ENV", "STRICT_ENV", "NBGRADER_ENV",
]  # fmt: skip

#: Chapter modules (``exNN``), in course order: every ``exNN.py`` of this package.
CHAPTERS = tuple(
    sorted(m.name for m in pkgutil.iter_modules(__path__) if re.fullmatch(r"ex\d\d", m.name))
)


def exercises_of(module: ModuleType) -> list[Exercise]:
    """A chapter module's exercises, in the order of its ``__all__`` (which also names the
    helpers the chapter's notebook uses, such as ``challenge_data``)."""
    return [
        ex for ex in (getattr(module, name) for name in module.__all__) if isinstance(ex, Exercise)
    ]


def all_exercises() -> dict[str, Exercise]:
    """Every exercise by id (``"ex03_l2sp"`` -> its :class:`Exercise`), in course order."""
    found: dict[str, Exercise] = {}
    for chapter in CHAPTERS:
        for ex in exercises_of(importlib.import_module(f"{__name__}.{chapter}")):
            found[ex.id] = ex
    return found
