"""What the exercise tests share: a chapter's solutions, run the way a student's notebook runs
them (its setup cell first, then every solution of the chapter in order, since a solution may
call an earlier one)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from tlhelpers.exercises import all_exercises
from tlhelpers.losses import l2sp
from tlhelpers.models import scratch_model, transfer_model
from tlhelpers.recipes import get_recipe

EXERCISES = all_exercises()


def setup_namespace(chapter: str) -> dict[str, Any]:
    """The names a chapter's solutions run with: its source notebook's setup cell, executed."""
    import nbformat

    from tlhelpers.classroom import _nbg, _source, source_notebooks

    ns = {"torch": torch, "F": F, "np": np, "l2sp": l2sp, "transfer_model": transfer_model,
          "get_recipe": get_recipe, "scratch_model": scratch_model}  # fmt: skip
    for path in source_notebooks():
        if path.name.startswith(chapter + "_"):
            nb = nbformat.read(str(path), as_version=4)
            for cell in nb.cells:
                if _nbg(cell).get("grade_id") == f"{chapter}_setup":
                    exec(_source(cell), ns)
    return ns


def solution(ex) -> Any:
    """The reference answer of exercise ``ex`` as the function (or value) a student defines."""
    chapter = ex.id.split("_")[0]
    ns = setup_namespace(chapter)
    for other in EXERCISES.values():  # a solution may call an earlier one (nms uses iou)
        if other.id.startswith(chapter + "_"):
            exec(other.solution_code, ns)
    return ns[ex.answer_name]
