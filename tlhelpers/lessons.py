"""The shape of a lesson, measured: code cell length, scaffolding in view, printed words, headings.

CONTRIBUTING.md ("The shape of a lesson") sets the limits a notebook keeps so that a student
finds its point in a minute: no code cell over :data:`MAX_CODE_LINES` non-blank lines, at most
:data:`MAX_PRINTED_WORDS` words of printed output, no scaffolding (parameter guard, claim
checks, saving, assertions) in a cell the reader sees, the headings of the shape, the reading
time stated, a link to the notebook's maintainer notes and a teacher's answer to every question.

Every function takes a notebook as a plain dict (``json.load`` of the ``.ipynb``), so the same
checks run on the committed (stripped) notebook and on an executed copy.
``tests/test_lessons.py`` applies them to every notebook; :mod:`tlhelpers.runner` reports the
printed words of each executed notebook in ``summary.md``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "HIDDEN_TAGS",
    "MAX_CODE_LINES",
    "MAX_PRINTED_WORDS",
    "SCAFFOLDING",
    "SHAPE_HEADINGS",
    "code_cell_lines",
    "longest_code_cell",
    "numbered_answers",
    "printed_words",
    "question_count",
    "scaffolding_lines",
    "shape_problems",
    "support_problems",
]

#: The most non-blank lines a code cell may have (the injected-parameters cell aside).
MAX_CODE_LINES = 30
#: The most words an executed notebook may print (streams and displayed text).
MAX_PRINTED_WORDS = 600
#: A line that exists for the tests, not for the lesson.
SCAFFOLDING = re.compile(
    r"ParameterGuard|guard\.check|save_results|check_claims|\.expect\(|NBVAL|assert "
)
#: Tags with which the book drops or folds a cell: scaffolding may live only there.
HIDDEN_TAGS = frozenset({"remove-cell", "remove-input", "hide-input", "hide-cell"})
#: Second-level headings every lesson has, in this order.
SHAPE_HEADINGS = ("## The idea", "## Results", "## What we found", "## Questions")

_TITLE = re.compile(r"^# (\d\d[a-z]?) · \S")
_NUMBER = r"\d+(?:\.\d+)?\s*(?:[-–]\s*\d+(?:\.\d+)?\s*)?"
_READ = re.compile(_NUMBER + r"minutes?\s+to\s+read")
_RUN = re.compile(_NUMBER + r"minutes?\s+to\s+run")
_NUMBERED = re.compile(r"^\s{0,3}(\d+)[.)]\s+\S", re.MULTILINE)
_ANSWER = re.compile(r"^(?:\s{0,3}(\d+)[.)]\s+\S|#+\s*(?:Q(?:uestion)?\s*)?(\d+)\b)", re.MULTILINE)


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _tags(cell: Mapping[str, Any]) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def _cells(nb: Mapping[str, Any], kind: str) -> list[Mapping[str, Any]]:
    return [c for c in nb.get("cells", []) if c.get("cell_type") == kind]


def code_cell_lines(cell: Mapping[str, Any]) -> list[str]:
    """The non-blank lines of a code cell."""
    return [line for line in _source(cell).splitlines() if line.strip()]


def longest_code_cell(nb: Mapping[str, Any]) -> int:
    """Non-blank lines of the longest code cell; papermill's injected-parameters cell is not counted."""
    return max(
        (
            len(code_cell_lines(c))
            for c in _cells(nb, "code")
            if "injected-parameters" not in _tags(c)
        ),
        default=0,
    )


def scaffolding_lines(nb: Mapping[str, Any]) -> list[str]:
    """Lines matching :data:`SCAFFOLDING` in code cells a reader sees (not tagged :data:`HIDDEN_TAGS`)."""
    return [
        line.strip()
        for c in _cells(nb, "code")
        if not _tags(c) & HIDDEN_TAGS and "injected-parameters" not in _tags(c)
        for line in code_cell_lines(c)
        if SCAFFOLDING.search(line)
    ]


def printed_words(nb: Mapping[str, Any]) -> int:
    """Words an executed notebook prints: stream text, and the plain text of displayed values.

    A displayed figure's ``<Figure size ...>`` text is not counted (the output carries an image);
    errors are not counted (a failed run is reported as such elsewhere).
    """
    words = 0
    for c in _cells(nb, "code"):
        for out in c.get("outputs", []):
            kind = out.get("output_type")
            if kind == "stream":
                text = out.get("text", "")
            elif kind in ("execute_result", "display_data"):
                data = out.get("data", {})
                if any(k.startswith("image/") for k in data):
                    continue
                text = data.get("text/plain", "")
            else:
                continue
            words += len(("".join(text) if isinstance(text, list) else str(text)).split())
    return words


def _questions_section(nb: Mapping[str, Any]) -> str:
    """The markdown from the ``## Questions`` heading to the next second-level heading."""
    text = "\n\n".join(_source(c) for c in _cells(nb, "markdown"))
    start = text.find("## Questions")
    if start < 0:
        return ""
    rest = text[start + len("## Questions") :]
    end = re.search(r"^#{1,2} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def question_count(nb: Mapping[str, Any]) -> int:
    """Numbered items (``1. ...``) under the notebook's ``## Questions`` heading."""
    return len(set(_NUMBERED.findall(_questions_section(nb))))


def numbered_answers(text: str) -> set[int]:
    """Answer numbers in a teacher's answers file: ``1. ...`` items or ``## 1`` / ``## Q1`` headings."""
    return {int(a or b) for a, b in _ANSWER.findall(text)}


def shape_problems(nb: Mapping[str, Any], stem: str) -> list[str]:
    """What the notebook lacks of the shape: title, learn/need lines, reading time, headings in order."""
    problems: list[str] = []
    md = _cells(nb, "markdown")
    first = _source(md[0]) if md else ""
    title = _TITLE.match(first)
    label = stem.split("_")[0]
    if not title or title.group(1) != label:
        problems.append(f"the first markdown cell must start '# {label} · Topic'")
    for words in ("What you will learn", "You need"):
        if words.lower() not in first.lower():
            problems.append(f"the title cell must say '{words}'")
    if not _READ.search(first):
        problems.append("the title cell must state the reading time ('about N minutes to read')")
    if not _RUN.search(first):
        problems.append("the title cell must state the run time ('about N minutes to run')")
    lines = [ln.strip() for c in md for ln in _source(c).splitlines()]
    at = -1
    for heading in SHAPE_HEADINGS:
        found = [i for i, ln in enumerate(lines) if ln == heading or ln.startswith(heading + " ")]
        if not found:
            problems.append(f"no '{heading}' heading")
        elif found[0] < at:
            problems.append(f"'{heading}' is out of order ({', '.join(SHAPE_HEADINGS)})")
        else:
            at = found[0]
    return problems


def support_problems(nb: Mapping[str, Any], stem: str, folder: Path) -> list[str]:
    """The notes link and the teacher's answers: ``notes/<stem>.md`` linked and present,
    ``answers/<stem>.md`` present with an answer for every numbered question."""
    problems: list[str] = []
    text = "\n".join(_source(c) for c in _cells(nb, "markdown"))
    target = f"notes/{stem}.md"
    if f"]({target})" not in text:
        problems.append(f"no link to the maintainer notes: [{target}]({target})")
    if not (folder / target).is_file():
        problems.append(f"{target} does not exist")
    answers = folder / "answers" / f"{stem}.md"
    if not answers.is_file():
        problems.append(f"answers/{stem}.md does not exist")
    else:
        wanted = question_count(nb)
        have = numbered_answers(answers.read_text())
        missing = sorted(set(range(1, wanted + 1)) - have)
        if missing:
            problems.append(f"answers/{stem}.md has no answer to question(s) {missing}")
    return problems
