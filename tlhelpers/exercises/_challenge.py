"""An open few-shot challenge: train within a time budget, beat the scratch recipe on held-out images.

The visible check scores the student's model on a validation split of the target's training
pool (outside the labelled images); the hidden check (the teacher's grader) scores the same
trained model on a hidden sample of the test split. The baseline is the kit's ``scratch``
recipe trained on the same labelled images (trained once per process, cached).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import few_shot, few_shot_indices, load_task
from ..models import scratch_model
from ..recipes import get_recipe
from ..training import evaluate
from ._core import Wrong, call_student, tensor

__all__ = ["FewShotChallenge"]


@dataclass
class FewShotChallenge:
    """``task`` at ``per_class`` labels per class; ``inputs(train)`` gives what the student gets.

    Args:
        task: the target task (:data:`tlhelpers.data.TASKS`), 5 classes.
        per_class, seed: the labelled images (``few_shot``).
        budget_s: the student's function's time limit.
        answer_name: the student's function, named in messages.
        extras: ``extras()`` -> the arguments after ``train`` (a source model, a dict of them).
        check_extras: what the check passes instead of ``extras()`` (default: the same), e.g.
            the candidates under other names, so that a name written into the answer fails.
        n_eval, margin: held-out images scored; how much the baseline must be beaten by.
        val_seed, test_seed: the validation and hidden samples.
    """

    task: str
    per_class: int
    answer_name: str
    extras: Callable[[], tuple] = tuple
    check_extras: Callable[[], tuple] | None = None
    seed: int = 0
    budget_s: float = 30.0
    n_eval: int = 1000
    margin: float = 0.02
    val_seed: int = 7
    test_seed: int = 2026
    _cache: dict = field(default_factory=dict, repr=False)

    def data(self) -> tuple:
        """``(train, *extras)``: what the student's function is called with."""
        train = few_shot(load_task(self.task, "train"), self.per_class, seed=self.seed)
        return (train, *self.extras())

    def eval_split(self, hidden: bool):
        """Validation: ``n_eval`` training-pool images outside the labelled ones; hidden: test images."""
        if hidden:
            pool = load_task(self.task, "test")
            idx = np.random.default_rng(self.test_seed).choice(
                len(pool), self.n_eval, replace=False
            )
        else:
            pool = load_task(self.task, "train")
            used = few_shot_indices(pool.targets, self.per_class, self.seed, pool.classes)
            rest = np.setdiff1d(np.arange(len(pool)), used)
            idx = np.random.default_rng(self.val_seed).choice(rest, self.n_eval, replace=False)
        return pool.subset(np.sort(idx))

    def baseline(self, split: str, data) -> float:
        """The scratch recipe's accuracy on ``data`` (trained once, cached per split)."""
        if split not in self._cache:
            if "scratch_model" not in self._cache:
                train = self.data()[0]
                model = scratch_model(len(train.classes), seed=self.seed)
                get_recipe("scratch").fit(model, train, seed=self.seed)
                self._cache["scratch_model"] = model.eval()
            self._cache[split] = evaluate(self._cache["scratch_model"], data)["accuracy"]
        return self._cache[split]

    def check(self, fn: Any, hidden: bool) -> str:
        """Train (or reuse the visible check's model for the hidden one), score, compare."""
        name, budget = self.answer_name, self.budget_s
        last = self._cache.get("last")
        if hidden and last is not None and last[0] is fn:  # the model the visible check trained
            _, model, seconds = last
        else:
            train, *extras = self.data()
            if self.check_extras is not None:
                extras = list(self.check_extras())
            inputs = copy.deepcopy((train, *extras))  # the student may change what they get
            start = time.perf_counter()
            model = call_student(fn, *inputs, name=name, limit_s=budget)
            seconds = time.perf_counter() - start
            if model is None:
                raise Wrong(f"`{name}` returned None: return the trained model.")
            if not isinstance(model, nn.Module):
                raise Wrong(f"`{name}` should return an nn.Module, got a {type(model).__name__}.")
            self._cache["last"] = (fn, model, seconds)
        try:
            device = next(model.parameters()).device
        except StopIteration:
            raise Wrong("the returned model has no parameters.") from None
        if device != torch.device("cpu"):
            raise Wrong(f"the returned model is on {device}; the check runs on the CPU: "
                        "return model.cpu().")  # fmt: skip
        data = self.eval_split(hidden)
        model.eval()
        with torch.no_grad():
            logits = call_student(model, data.images[:4], name="your model")
        tensor(logits, "the model's output", shape=(4, len(data.classes)), device="cpu")
        acc = evaluate(model, data)["accuracy"]
        base = self.baseline("test" if hidden else "val", data)
        where = (
            "the hidden test split" if hidden
            else f"a validation split ({self.n_eval} training-pool images)"
        )  # fmt: skip
        if acc < base + self.margin:
            raise Wrong(
                f"accuracy {acc:.3f} on {where}; the scratch baseline gets {base:.3f}. Beat it by "
                f"{self.margin:.2f} (your training took {seconds:.1f} s of {budget:g})."
            )
        return f"accuracy {acc:.3f} on {where}, scratch baseline {base:.3f}, {seconds:.1f} s of {budget:g}."
