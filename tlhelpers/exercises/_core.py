"""The machinery behind every exercise: ``check()``, ``hint()``, ``solution()`` (learntools style).

A checker calls the student's function only through :func:`call_student`, which turns
``NotImplementedError`` (nbgrader's stub) into "not attempted yet", any other exception
into a one-line message naming the line of the student's code, and a call that runs
past its time limit into a message (``SIGALRM``: a loop is stopped, not waited for).
Findings are raised as :class:`Wrong` with the text the student sees; an unexpected error
inside a checker is reported as such, never as a traceback.

A check that does not pass raises ``AssertionError`` with its message (how nbgrader's
autograder withholds a test cell's points) whenever nbgrader runs it: ``nbgrader autograde``
and ``nbgrader validate`` set ``NBGRADER_EXECUTION`` (``"autograde"``/``"validate"``, nbgrader's
``converters/autograde.py`` and ``validator.py``) in the kernel's environment; it is read when
this module is imported too, so a student's code that deletes it later changes nothing. A
student working alone gets the feedback printed and no exception.

Two more environment variables connect a check to the kit's own grading (``python -m
tlhelpers exercises grade``) and tests:

- ``TLHELPERS_GRADE_FILE``: every result is appended to this file as one JSON line.
- ``TLHELPERS_EXERCISES_STRICT=1``: raise as under nbgrader (the tests of the solution copies).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

GRADE_FILE_ENV = "TLHELPERS_GRADE_FILE"
STRICT_ENV = "TLHELPERS_EXERCISES_STRICT"
#: Set by nbgrader (``autograde``, ``validate``) in the environment of the kernels it runs.
NBGRADER_ENV = "NBGRADER_EXECUTION"
_NBGRADER_AT_IMPORT = os.environ.get(NBGRADER_ENV, "")

PASSED, FAILED, NOT_ATTEMPTED = "passed", "failed", "not attempted"
STATUSES = (PASSED, FAILED, NOT_ATTEMPTED)

#: Seconds a student's function may run inside a check (a loop is stopped after this).
LIMIT_S = 10.0

_PACKAGE_DIR = str(Path(__file__).resolve().parent.parent)


class Wrong(Exception):
    """A checker's finding; its message is what the student reads."""


class NotAttempted(Exception):
    """The student's function still holds the stub (``raise NotImplementedError()``)."""


class _OverTime(BaseException):
    """Raised by the alarm; a BaseException so that a student's ``except Exception`` lets it by.

    A student's bare ``except:`` that swallows it drops the last reference to it: then it
    traces the student's frames again (see :func:`time_limit`) so that it is raised anew.
    """

    def __del__(self) -> None:
        if _STOPPING[0]:
            _trace_student_frames(sys._getframe(1))


@dataclass
class Result:
    """One check's outcome: ``status`` is one of :data:`STATUSES`."""

    exercise: str
    title: str
    status: str
    message: str
    hidden: bool = False

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        mark = {PASSED: "Correct", FAILED: "Not yet", NOT_ATTEMPTED: "Not attempted yet"}[
            self.status
        ]
        tail = " (hidden tests)" if self.hidden else ""
        return f"[{self.exercise}] {self.title}{tail}: {mark}. {self.message}".rstrip()

    def _ipython_display_(self) -> None:  # check() has printed it already
        return None


#: Seconds between repeated alarms once a student's code has swallowed the first one.
_REPEAT_S = 0.05


def _in_kit_or_library(filename: str) -> bool:
    return (
        filename.startswith(_PACKAGE_DIR)
        or "site-packages" in filename
        or "/lib/python" in filename
    )


def _catching_ranges(code) -> list[tuple[int, int]]:
    """Byte ranges of ``code`` whose exceptions a ``try`` of the same code may catch.

    Python 3.11+ exception table: entries without ``lasti`` are ``try`` bodies (an ``except``
    or ``finally`` handler); entries with it are clean-ups that re-raise (handler bodies, ``with``).
    """
    try:
        import dis

        entries = dis._parse_exception_table(code)  # type: ignore[attr-defined]
    except Exception:  # Python 3.10 (no exception table): treat every place as catching-free
        return []
    return [(e.start, e.end) for e in entries if not e.lasti]


_RANGES: dict[Any, list[tuple[int, int]]] = {}


def _would_escape(frame) -> bool:
    """True when an exception raised now leaves ``frame`` (no ``try`` of its own covers it)."""
    ranges = _RANGES.get(frame.f_code)
    if ranges is None:
        ranges = _RANGES[frame.f_code] = _catching_ranges(frame.f_code)
    return not any(start <= frame.f_lasti < end for start, end in ranges)


def _stopper(frame, event, arg):
    """Trace function: raise :class:`_OverTime` where no ``try`` of the student's code can catch it."""
    if event == "call":
        if _in_kit_or_library(frame.f_code.co_filename):
            return None  # the kit's and libraries' own frames run untraced
        frame.f_trace_opcodes = True
    elif (
        event in ("opcode", "line")
        and not _in_kit_or_library(frame.f_code.co_filename)
        and _would_escape(frame)
    ):
        raise _OverTime()  # CPython turns tracing off after a trace function raises
    return _stopper


#: True while a student's code that swallowed the alarm is being stopped.
_STOPPING = [False]


def _trace_student_frames(frame) -> None:
    """Trace (opcode by opcode) the student's frames from ``frame`` up to :func:`call_student`."""
    f = frame
    while f is not None and f.f_code.co_filename != __file__:
        if not _in_kit_or_library(f.f_code.co_filename):
            f.f_trace = _stopper
            f.f_trace_opcodes = True
        f = f.f_back
    sys.settrace(_stopper)


@contextlib.contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`_OverTime` in the main thread after ``seconds`` (no limit elsewhere).

    A student's code may catch the first alarm (a bare ``except:`` or ``except BaseException``
    inside a loop). The alarm then repeats every :data:`_REPEAT_S` seconds and also traces
    the student's frames opcode by opcode, raising again at the first instruction that no
    ``try`` of theirs covers: the exception leaves their code whatever it catches.
    """
    usable = (
        seconds is not None
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    if not usable or seconds is None:
        yield
        return
    fired = [0]
    old_trace = sys.gettrace()

    def _alarm(signum, frame):
        fired[0] += 1
        if fired[0] > 1:  # the first one was swallowed: trace until it escapes
            _STOPPING[0] = True
            _trace_student_frames(frame)
        raise _OverTime()

    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds), _REPEAT_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if fired[0] > 1:
            _STOPPING[0] = False
            sys.settrace(old_trace)


def _student_line(err: BaseException) -> str:
    """' (line N of your code)' for the deepest frame outside the kit and the libraries."""
    frames = traceback.extract_tb(err.__traceback__)
    for f in reversed(frames):
        if _in_kit_or_library(f.filename or ""):
            continue
        text = (f.line or "").strip()
        return f" (line {f.lineno} of your code" + (f": `{text}`)" if text else ")")
    return ""


def call_student(
    fn: Any, *args: Any, name: str, limit_s: float | None = None, **kwargs: Any
) -> Any:
    """Call the student's ``fn``; translate what can go wrong into :class:`Wrong`/:class:`NotAttempted`.

    ``limit_s`` defaults to :data:`LIMIT_S`.
    """
    limit_s = LIMIT_S if limit_s is None else limit_s
    if not callable(fn):
        raise Wrong(
            f"`{name}` should be a function (define it with `def {name}(...):`), "
            f"got a {type(fn).__name__}."
        )
    try:
        with time_limit(limit_s):
            return fn(*args, **kwargs)
    except NotImplementedError:
        raise NotAttempted(
            f"`{name}` still raises NotImplementedError: replace `# YOUR CODE HERE` and "
            "`raise NotImplementedError()` with your code."
        ) from None
    except _OverTime:
        raise Wrong(
            f"`{name}` did not finish within {limit_s:g} s. Look for a loop that never ends "
            "(a `while` whose condition never changes) or work repeated far more than needed."
        ) from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as err:  # the student's bug: one friendly line, no traceback
        text = str(err).strip().splitlines()[0][:300] if str(err).strip() else ""
        raise Wrong(
            f"`{name}` raised {type(err).__name__}{': ' + text if text else ''}"
            f"{_student_line(err)}."
        ) from None


# --------------------------------------------------------------- value checks used by checkers


def number(value: Any, what: str) -> float:
    """A Python float from a float/int/NumPy scalar/one-element tensor, else :class:`Wrong`."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Wrong(f"{what} should be one number, got a tensor of shape {tuple(value.shape)}.")
        value = value.detach().cpu().item()
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        and not hasattr(value, "__float__")
    ):
        raise Wrong(f"{what} should be a number, got a {type(value).__name__}.")
    out = float(value)
    if not math.isfinite(out):
        raise Wrong(f"{what} is {out}: look for a division by zero or a log of 0.")
    return out


def tensor(
    value: Any,
    what: str,
    *,
    shape: Sequence[int] | None = None,
    device: torch.device | str | None = "cpu",
    allow_numpy: bool = False,
) -> torch.Tensor:
    """Check type, device and shape of a returned tensor; :class:`Wrong` names the mismatch."""
    if allow_numpy and not isinstance(value, torch.Tensor):
        import numpy as np

        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value)
    if not isinstance(value, torch.Tensor):
        extra = (
            " (did you call .item(), float() or .tolist()?)"
            if isinstance(value, (int, float, list))
            else ""
        )
        raise Wrong(f"{what} should be a torch.Tensor, got a {type(value).__name__}{extra}.")
    if device is not None and value.device != torch.device(device):
        raise Wrong(
            f"{what} is on device {value.device}, but the inputs are on {torch.device(device)}: "
            "create new tensors with `device=` of the inputs (or `.to(x.device)`)."
        )
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Wrong(
            f"{what} has shape {tuple(value.shape)}, but it should have shape {tuple(shape)}."
        )
    if value.is_floating_point() and not torch.isfinite(value).all():
        raise Wrong(f"{what} holds NaN or inf values: look for a division by zero or a log of 0.")
    return value


def off_by(got: float, want: float) -> str:
    """'got 1.23, expected 2.46 (off by -1.23, 0.5 times the expected value)'."""
    text = f"got {got:.6g}, expected {want:.6g} (off by {got - want:+.3g}"
    if want != 0 and got != 0:
        text += f"; {got / want:.3g} times the expected value"
    return text + ")"


def close(
    got: float | torch.Tensor, want: float | torch.Tensor, rtol: float = 1e-4, atol: float = 1e-6
) -> bool:
    """``True`` when ``got`` matches ``want`` (tensors of one shape, or numbers) within tolerance."""
    g = torch.as_tensor(got, dtype=torch.float64)
    w = torch.as_tensor(want, dtype=torch.float64)
    return g.shape == w.shape and bool(torch.allclose(g, w, rtol=rtol, atol=atol))


def worst_entry(got: torch.Tensor, want: torch.Tensor) -> str:
    """'entry (1, 0) is 0.5 but should be 0.25' for the largest difference."""
    diff = (got.detach().double().cpu() - want.detach().double().cpu()).abs()
    idx = tuple(int(i) for i in torch.unravel_index(diff.argmax(), diff.shape))
    g, w = got.detach().double().cpu()[idx].item(), want.detach().double().cpu()[idx].item()
    return f"entry {idx} is {g:.6g} but should be {w:.6g} (off by {g - w:+.3g})"


def diagnose(got: Any, candidates: Sequence[tuple[Any, str]], default: str) -> str:
    """The message of the first typical mistake whose value matches ``got``, else ``default``."""
    for value, message in candidates:
        if close(got, value, rtol=1e-4, atol=1e-7):
            return message
    return default


# --------------------------------------------------------------- the exercise object


class Exercise:
    """One exercise: ``check(answer)``, ``hint(level)`` and ``solution()``.

    Args:
        id: ``"exNN_name"``, also the ``grade_id`` of its autograded test cell.
        title: shown in every message.
        minutes: time estimate for a student.
        checker: ``checker(answer, hidden) -> str``; returns a success note, raises
            :class:`Wrong`/:class:`NotAttempted` otherwise.
        hints: from a nudge to nearly the answer.
        solution_code: the reference answer as code; ``tests/test_exercises.py`` runs it
            through ``check``.
    """

    def __init__(
        self,
        id: str,
        title: str,
        minutes: int,
        checker: Callable[[Any, bool], str],
        hints: Sequence[str],
        solution_code: str,
        answer_name: str,
    ) -> None:
        if not hints:
            raise ValueError(f"exercise {id!r} needs at least one hint, got none.")
        self.id, self.title, self.minutes = id, title, minutes
        self._checker = checker
        self.hints = tuple(textwrap.dedent(h).strip() for h in hints)
        self.solution_code = textwrap.dedent(solution_code).strip() + "\n"
        self.answer_name = answer_name

    def __repr__(self) -> str:
        return f"<Exercise {self.id}: {self.title} (about {self.minutes} min)>"

    def run_check(self, answer: Any, hidden: bool = False) -> Result:
        """The check without printing, recording or raising (tests call this)."""
        try:
            note = self._checker(answer, hidden)
            return Result(self.id, self.title, PASSED, note or "", hidden)
        except NotAttempted as err:
            return Result(self.id, self.title, NOT_ATTEMPTED, str(err), hidden)
        except Wrong as err:
            return Result(self.id, self.title, FAILED, str(err), hidden)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as err:  # the checker met something it did not foresee
            return Result(
                self.id, self.title, FAILED,
                f"the checker could not use your answer ({type(err).__name__}: {err}). "
                "Check the type and shape your function returns against the task.",
                hidden,
            )  # fmt: skip

    def check(self, answer: Any, *, hidden: bool = False) -> Result:
        """Check ``answer``, print the feedback, record it for grading; return the :class:`Result`.

        Under nbgrader (see :func:`strict`) a result other than "passed" raises
        ``AssertionError``: nbgrader's autograder withholds the cell's points.
        """
        __tracebackhide__ = True  # IPython (and nbgrader's report) shows the cell, not this frame
        result = self.run_check(answer, hidden)
        print(result)
        _record(result)
        if not result.passed and strict():
            raise AssertionError(str(result))
        return result

    def hint(self, level: int = 1) -> None:
        """Print hint ``level`` (1 = a nudge; the last is nearly the answer)."""
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ValueError(f"level must be an integer >= 1, got {level!r}.")
        n = len(self.hints)
        shown = min(level, n)
        more = f" (there are only {n} hints)" if level > n else ""
        nxt = f" For more: hint({shown + 1})." if shown < n else ""
        print(f"[{self.id}] Hint {shown}/{n}{more}: {self.hints[shown - 1]}{nxt}")

    def solution(self) -> None:
        """Print the reference answer."""
        print(f"[{self.id}] Solution:\n{self.solution_code}")


def strict() -> bool:
    """Whether a check that does not pass raises: under nbgrader, or ``TLHELPERS_EXERCISES_STRICT=1``.

    nbgrader is recognised by ``NBGRADER_EXECUTION``, now or when this module was imported.
    """
    if os.environ.get(NBGRADER_ENV) or _NBGRADER_AT_IMPORT:
        return True
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def _record(result: Result) -> None:
    path = os.environ.get(GRADE_FILE_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(asdict(result), sort_keys=True) + "\n")
    except OSError as err:  # a deleted folder must not turn a check into a traceback
        print(f"(could not record the result for grading: {err})", file=sys.stderr)
