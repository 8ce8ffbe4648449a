"""The course as a static website, built from the notebooks as executed by ``make run``.

::

    python -m tlhelpers.book --build build --out build/book   # site in build/book/html

Nothing is executed: the pages are the executed copies ``make run`` left in
``build/<notebook>/`` (:mod:`tlhelpers.runner`), rendered by Sphinx with MyST-NB
(``nb_execution_mode = "off"``) and the sphinx-book-theme; the configuration is
``book/conf.py``. The front page is the README's course map; each chapter starts with
its run (status, date, wall time, parameters, key numbers, checked claims) and links to
download the notebook; a page lists the whole run. The reference pages
(``book/reference/*.md``: set-up, data, sweeps, the teacher's walkthrough, ...) follow,
listed on the front page. MathJax is copied into the site from
the ``jupyter-server-mathjax`` package, so pages (formulas included) render offline.

A notebook with no executed copy stops the build with the commands that make one (no
empty pages); a notebook whose run failed gets a page that says so, with the error.
Exercises: only the students' copies (``exercises/student/*.ipynb``) are published,
never ``exercises/solutions`` or ``exercises/source``.

The glossary (``notebooks/glossary.md``) is a page of its own; the chapters' links to
``glossary.md#slug`` point at its entries. The maintainer notes (``notebooks/notes/*.md``)
are pages too, listed at the end of the contents. Outputs lose machine paths (``/work/...``,
``/tmp/...``, papermill's ``.attempt-...`` folders); papermill's injected cell is dropped (the
run box at the end of each chapter lists the parameters). The teacher's answers
(``notebooks/answers/*.md``) are never staged here: ``--teacher`` builds them into a separate
site (``BUILD/book/teacher/html``), with ``{{key}}`` / ``{{key:fmt}}`` filled from each
chapter's ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runner import LOG_NAME, RUN_INFO, course_notebooks

__all__ = [
    "build_book",
    "build_teacher_guide",
    "fill_placeholders",
    "Chapter",
    "check_runs",
    "CONF_NAME",
    "find_chapters",
    "front_page",
    "LOG_TAIL_CHARS",
    "main",
    "MATHJAX_DIR",
    "MissingRunsError",
    "PAPERMILL_TAGS",
    "run_page",
    "stage",
    "student_exercises",
    "reference_pages",
]

#: The Sphinx configuration the staged sources are built with.
CONF_NAME = "conf.py"
#: Folders of the staged sources: chapters, students' exercises, files to download.
CHAPTERS, EXERCISES, FILES = "notebooks", "exercises", "files"
#: The reference pages: ``book/<REFERENCE>/*.md`` in the repository, staged as they are.
REFERENCE = "reference"
_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)")
#: Where MathJax goes inside ``_static`` (``mathjax_path`` in ``book/conf.py`` agrees).
MATHJAX_DIR = "mathjax"
#: A failed run's page shows at most this many characters of the end of its log.
LOG_TAIL_CHARS = 3000
#: The glossary, the maintainer notes and the teacher's answers, next to the notebooks.
GLOSSARY, NOTES, ANSWERS = "glossary.md", "notes", "answers"
_GLOSSARY_LINK = re.compile(r"\[([^\]]+)\]\(" + re.escape(GLOSSARY) + r"#([\w-]+)\)")
_NOTES_LINK = re.compile(r"\[([^\]]+)\]\(" + NOTES + r"/([\w.-]+\.md)\)")
_PLACEHOLDER = re.compile(r"\{\{\s*([\w.-]+)\s*(?::([^{}]*))?\}\}")
#: Machine paths in outputs: a papermill staging folder, or an absolute path under these roots.
_MACHINE_PATH = re.compile(
    r"(?:/[\w.@+-]+)*/\.attempt-[\w-]+/?|/(?:work|tmp|home|root|Users)/[^\s'\"),]*/"
)


class MissingRunsError(ValueError):
    """Some course notebooks have no executed copy in the build folder."""


@dataclass
class Chapter:
    """One course notebook and what ``make run`` left of it."""

    source: Path
    status: str  # "ok" | "failed" | "interrupted" | "missing"
    executed: Path | None = None
    error: str = ""
    wall_time_s: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    key_numbers: dict[str, Any] = field(default_factory=dict)
    claims: list[dict[str, Any]] = field(default_factory=list)
    finished: str = ""
    log_tail: str = ""  # end of run.log, shown when a failed run left no executed copy
    copy_has_no_error: bool = False  # a failed run, yet its copy records none (an older copy?)
    source_changed: bool = False  # the notebook's cells differ from those that were run

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def stem(self) -> str:
        return self.source.stem


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _load_notebook(path: Path, advice: str) -> dict:
    """A notebook's JSON; a truncated, non-UTF-8 or non-notebook file is refused naming it."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        reason = f"not UTF-8 text at byte {err.start}"
    except json.JSONDecodeError as err:
        reason = f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
    else:
        if isinstance(nb, dict) and isinstance(nb.get("cells", []), list):
            return nb
        reason = "JSON but not a notebook (no list of cells)"
    raise ValueError(f"{path} is not a readable notebook ({reason}); {advice}")


def _executed_advice(ch_source: Path, build: Path) -> str:
    return (
        "the run that wrote it was probably cut off: run it again with `.venv/bin/python -m "
        f"tlhelpers.runner run notebooks/{ch_source.name} --build {build}` (or delete the file)."
    )


def _notebook_error(nb: dict) -> str:
    """``ename: evalue`` of the first error output of an executed notebook, or ``""``."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "error":
                return f"{out.get('ename', 'Error')}: {out.get('evalue', '')}"
    return ""


#: Cells papermill adds to an executed copy (its parameters, its error markers).
PAPERMILL_TAGS = {"injected-parameters", "papermill-error-cell-tag"}


def _is_papermill_cell(cell: dict) -> bool:
    return bool(PAPERMILL_TAGS & set(cell.get("metadata", {}).get("tags", [])))


def _cells(nb: dict) -> list[tuple[str, str]]:
    """(type, source) of each cell a notebook's author wrote (papermill's own cells left out)."""
    return [
        (c.get("cell_type", ""), "".join(c.get("source", "")).strip())
        for c in nb.get("cells", [])
        if not _is_papermill_cell(c)
    ]


def find_chapters(build: str | Path, notebooks: list[Path]) -> list[Chapter]:
    """What the run in ``build`` left of each notebook (status from ``summary.json``,
    else from the executed copy's papermill metadata; numbers from ``results.json``)."""
    build = Path(build)
    records = {r.get("notebook"): r for r in (_read_json(build / "summary.json") or [])}
    chapters = []
    for source in notebooks:
        record = records.get(source.name, {})
        folder = build / source.stem
        executed = folder / source.name
        ch = Chapter(source=source, status=record.get("status", "missing"))
        ch.error = record.get("error", "")
        ch.wall_time_s = record.get("wall_time_s")
        ch.parameters = dict(record.get("parameters", {}))
        if executed.is_file():
            nb = _load_notebook(executed, _executed_advice(source, build))
            pm = nb.get("metadata", {}).get("papermill", {})
            ch.executed = executed
            ch.finished = (pm.get("end_time") or "")[:16].replace("T", " ")
            failed = bool(pm.get("exception")) or ch.status in ("failed", "interrupted")
            ch.copy_has_no_error = ch.status == "failed" and not pm.get("exception")
            ch.source_changed = _cells(_load_notebook(source, "fix or restore it.")) != _cells(nb)
            ch.status = (ch.status if ch.status in ("failed", "interrupted") else "failed") \
                if failed else "ok"  # fmt: skip
            ch.error = ch.error or _notebook_error(nb)
            if not ch.parameters:
                ch.parameters = {k: v for k, v in pm.get("parameters", {}).items()}
            if ch.wall_time_s is None and pm.get("duration") is not None:
                ch.wall_time_s = round(float(pm["duration"]), 1)
        elif ch.status not in ("failed", "interrupted"):  # recorded ok, copy since deleted
            ch.status = "missing"
        results = _read_json(folder / "results.json") if ch.status == "ok" else None
        if results:
            ch.key_numbers = {k: results["results"].get(k) for k in results.get("key_numbers", [])}
            ch.claims = list(results.get("claims", []))
        chapters.append(ch)
    return chapters


def check_runs(chapters: list[Chapter], build: Path) -> None:
    """Raise :class:`MissingRunsError` naming every notebook without an executed copy
    (a failed run without one is not missing: its page shows the failure)."""
    missing = [c for c in chapters if c.status == "missing"]
    if not missing:
        return
    names = " ".join(f"notebooks/{c.name}" for c in missing)
    where = f"{build}/" if build.is_dir() else f"{build}/ (it does not exist)"
    only = (
        ""
        if len(missing) == len(chapters)
        else f", or only these: `.venv/bin/python -m tlhelpers.runner run {names} --build {build}`"
    )
    raise MissingRunsError(
        f"No executed copy in {where} for {len(missing)} of {len(chapters)} notebooks: "
        f"{', '.join(c.name for c in missing)}. The book shows the notebooks as `make run` "
        f"executed them and never executes them itself. Run `make run` (every notebook){only}; "
        f"then `make book` again."
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value).replace("|", "\\|")


def _title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            match = re.search(r"^#\s+(.+)$", "".join(cell.get("source", "")), re.M)
            if match:
                return match.group(1).strip()
    return fallback


def _parameters_table(ch: Chapter) -> str:
    """Every declared parameter: the value of this run, its default and its help."""
    import papermill as pm

    declared = pm.inspect_notebook(str(ch.source))
    rows = ["| parameter | value | meaning |", "|---|---|---|"]
    for name, spec in declared.items():
        if name == "out_dir":  # a staging folder of the runner: not the reader's concern
            continue
        default = str(spec.get("default")).strip("'\"")
        value = (
            f"{_fmt(ch.parameters[name])} (default {default})" if name in ch.parameters else default
        )
        rows.append(f"| `{name}` | {value} | {_fmt(spec.get('help') or '')} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def _run_line(ch: Chapter, info: dict) -> str:
    parts = []
    if ch.finished:
        parts.append(f"finished {ch.finished} UTC")
    machine = info.get("machine")
    if machine:
        parts.append(f"on {machine.get('cpu')} ({machine.get('cores')} cores, {machine.get('os')})")
    if ch.wall_time_s is not None:
        parts.append(f"in {ch.wall_time_s} s")
    return ", ".join(parts)


def _header(ch: Chapter, info: dict, title: str) -> str:
    """The MyST blocks placed under a chapter's title: a failed run, a notebook changed since."""
    lines = []
    if ch.status != "ok":
        what = "was interrupted" if ch.status == "interrupted" else "failed"
        if ch.executed is None:
            shown = "The run left no executed notebook; the end of its log is below."
        elif ch.copy_has_no_error:
            shown = (
                "The executed copy below records no error: it may be an earlier run's "
                "copy, which a failed run leaves in place."
            )
        else:
            shown = (
                "The page shows the notebook as far as it ran; the traceback is in "
                '<a href="#papermill-error-cell">the failing cell</a>\'s output.'
            )
        error = (ch.error or "not recorded").replace("```", "'''")
        lines += [
            f"::::{{admonition}} This notebook's run {what}", ":class: error",
            "```text", error, "```", "", shown, "",
            f"Fix it, then rerun it: `.venv/bin/python -m tlhelpers.runner run "
            f"notebooks/{ch.name} --build build` and `make book`.", "::::", "",
        ]  # fmt: skip
    if ch.source_changed:
        lines += [
            ":::{admonition} The notebook changed after this run", ":class: warning",
            f"`notebooks/{ch.name}` differs from the copy that was run: `make run` again "
            "to bring this page up to date.", ":::", "",
        ]  # fmt: skip
    return "\n".join(lines)


def _run_box(ch: Chapter, info: dict) -> str:
    """The MyST block at the end of a chapter: its run, downloads, key numbers, parameters."""
    lines = []
    run = _run_line(ch, info)
    lines += [
        ":::{admonition} This run", ":class: note book-run",
        f"This page is `{ch.name}` as executed by `make run`" + (f", {run}." if run else "."),
        "",
        (
            f"Download {{download}}`the executed notebook <../{FILES}/executed/{ch.name}>` "
            "(outputs included) or "
            if ch.executed is not None
            else "Download "
        )
        + f"{{download}}`the notebook without outputs <../{FILES}/source/{ch.name}>`. "
        f"To run it yourself: `make lab` in the repository, then open `notebooks/{ch.name}`.",
    ]  # fmt: skip
    if ch.key_numbers:
        nums = ", ".join(f"{k} = {_fmt(v)}" for k, v in ch.key_numbers.items())
        lines += ["", f"Key numbers: {nums}."]
    if ch.claims:
        lines += ["", "Claims checked by this run:", ""]
        lines += [f"- {c.get('sentence', '')} ({_claim_status(c)})" for c in ch.claims]
    table = _parameters_table(ch)
    if table:
        lines += ["", "Parameters:", "", table]
    lines.append(":::")
    return "\n".join(lines)


def _markdown_cell(text: str, cell_id: str) -> dict:
    return {"cell_type": "markdown", "id": cell_id, "metadata": {}, "source": text}


def _insert_under_title(cells: list[dict], cell: dict) -> None:
    """Put ``cell`` right under the notebook's ``# title`` line (splitting its cell),
    or at the top when the first markdown cell has no title."""
    first = next(
        (
            i
            for i, c in enumerate(cells)
            if c.get("cell_type") == "markdown" and not _is_papermill_cell(c)
        ),
        None,
    )
    if first is None:
        cells.insert(0, cell)
        return
    text = "".join(cells[first].get("source", ""))
    match = re.match(r"\s*#\s+[^\n]*\n?", text)
    if match is None:
        cells.insert(first, cell)
        return
    rest = text[match.end() :]
    cells[first] = {**cells[first], "source": text[: match.end()]}
    tail = [{**cells[first], "id": f"{cell['id']}-rest", "source": rest}] if rest.strip() else []
    cells[first + 1 : first + 1] = [cell, *tail]


def _chapter_notebook(ch: Chapter, info: dict) -> dict:
    """The staged page: the executed notebook with the run header under its title
    (a failed run without an executed copy: a notebook holding only the failure)."""
    source = _load_notebook(ch.source, "fix or restore it.")
    if ch.executed is not None:
        nb = _load_notebook(ch.executed, _executed_advice(ch.source, ch.executed.parent.parent))
    else:
        nb = {**source, "cells": [_markdown_cell(f"# {_title(source, ch.stem)}", "book-title")]}
        if ch.log_tail:
            nb["cells"].append(
                _markdown_cell(
                    f"The end of the run's log:\n\n```text\n{ch.log_tail}\n```", "book-log"
                )
            )
    if nb["cells"] and _is_papermill_cell(
        nb["cells"][0]
    ):  # its banner above the title: the header says it
        del nb["cells"][0]
    title = _title(nb, ch.stem)
    cells = [
        c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])
    ]
    for cell in cells:
        _clean_outputs(cell)
    nb["cells"] = cells
    header = _header(ch, info, title)
    if header:
        _insert_under_title(cells, _markdown_cell(header, "book-status"))
    cells.append(_markdown_cell(_run_box(ch, info), "book-run"))
    return nb


def _clean_outputs(cell: dict) -> None:
    """Machine paths in a cell's text outputs shortened to the file name (in place)."""
    for out in cell.get("outputs", []):
        if "text" in out:
            out["text"] = _MACHINE_PATH.sub("", "".join(out["text"]))
        data = out.get("data", {})
        for kind in ("text/plain", "text/html", "text/markdown"):
            if kind in data:
                data[kind] = _MACHINE_PATH.sub("", "".join(data[kind]))


def _chapter_links(text: str, notes: set[str]) -> str:
    """A chapter's markdown with glossary links made Sphinx references and links to notes that
    are not staged made plain text."""
    text = _GLOSSARY_LINK.sub(lambda m: f"{{ref}}`{m.group(1)} <glossary-{m.group(2)}>`", text)
    return _NOTES_LINK.sub(lambda m: m.group(0) if m.group(2) in notes else m.group(1), text)


def _glossary_page(text: str, staged: set[str]) -> str:
    """The glossary with its HTML anchors as Sphinx targets and links to missing chapters dropped."""
    text = re.sub(r'^<a id="([\w-]+)"></a>\s*$', r"(glossary-\1)=", text, flags=re.M)
    return _LINK.sub(
        lambda m: (
            m.group(0) if not m.group(2).endswith(".ipynb") or m.group(2) in staged else m.group(1)
        ),
        text,
    )


def _log_tail(build: Path, ch: Chapter) -> str:
    log = build / ch.stem / LOG_NAME
    if not log.is_file():
        return ""
    return log.read_text(errors="replace")[-LOG_TAIL_CHARS:].replace("```", "'''")


def _book_links(text: str, where: str, chapters: set[str], pages: set[str]) -> str:
    """``text`` (Markdown at ``where`` in the repository) with its links made to work in the
    book: links to the web, to staged chapters and to reference pages are kept (pointed at
    their staged copies); links to other repository files become plain text."""
    up = "../" * where.removeprefix("book/").count("/")  # README -> index.md; reference/x.md

    def link(match: re.Match) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"https?://", target):
            return match.group(0)
        path = posixpath.normpath(posixpath.join(posixpath.dirname(where), target))
        if path.startswith(f"{CHAPTERS}/") and posixpath.basename(path) in chapters:
            return f"[{label}]({up}{path})"
        if path.startswith(f"book/{REFERENCE}/") and posixpath.basename(path) in pages:
            return f"[{label}]({up}{path.removeprefix('book/')})"
        return label

    return _LINK.sub(link, text)


def reference_pages(book_dir: Path) -> list[Path]:
    """The book's reference pages (``book/reference/*.md``), by name."""
    folder = Path(book_dir) / REFERENCE
    return sorted(folder.glob("*.md")) if folder.is_dir() else []


def _page_title(path: Path) -> str:
    first = next((ln for ln in path.read_text().splitlines() if ln.startswith("# ")), "")
    return first[2:].strip() or path.stem


def front_page(
    readme: str,
    chapters: list[Chapter],
    exercises: list[Path],
    info: dict,
    references: list[Path] | None = None,
) -> str:
    """The README's title, introduction and course map, with links to the chapters, and the
    list of reference pages."""
    sections = re.split(r"^(?=## )", readme, flags=re.M)
    intro = sections[0]
    course_map = next((s for s in sections if s.startswith("## Course map")), "")
    staged = {c.name for c in chapters}
    references = references or []
    pages = {p.name for p in references}

    def link(text: str) -> str:
        return _book_links(text, "README.md", staged, pages)

    course_map = link(course_map)
    started = info.get("started")
    run = f" on {started}" if started else ""
    lines = [
        link(intro).rstrip(), "",
        "In symbols, each method minimises over the target model's weights $\\theta$",
        "", "$$",
        "\\mathcal{L}(\\theta) = \\mathcal{L}_{\\mathrm{target}}(\\theta)"
        " + \\lambda\\,\\Omega(\\theta;\\,\\theta_{\\mathrm{source}})",
        "$$", "",
        "where $\\Omega$ is the term that ties the model to the source and $\\lambda$ its "
        "strength.", "",
        f"These pages are the course's notebooks as `make run` executed them{run}: "
        "figures, printed verdicts and parameters included. "
        "[The run](run.md) lists every notebook's status, wall time and key numbers.", "",
        course_map.rstrip(), "",
        "```{toctree}", ":hidden:", ":caption: Chapters", "",
        *[f"{CHAPTERS}/{c.stem}" for c in chapters], "```", "",
    ]  # fmt: skip
    if exercises:
        lines += ["```{toctree}", ":hidden:", ":caption: Exercises", "",
                  *[f"{EXERCISES}/{p.stem}" for p in exercises], "```", ""]  # fmt: skip
    lines += ["```{toctree}", ":hidden:", ":caption: The run", "", "run", "```", ""]
    if references:
        lines += ["## Reference", "",
                  *[f"- [{_page_title(p)}]({REFERENCE}/{p.name})" for p in references], "",
                  "```{toctree}", ":hidden:", ":caption: Reference", "",
                  *[f"{REFERENCE}/{p.stem}" for p in references], "```", ""]  # fmt: skip
    return "\n".join(lines)


def run_page(chapters: list[Chapter], info: dict) -> str:
    """The run's summary table: status, wall time and key numbers, with date and machine."""
    machine = info.get("machine") or {}
    lines = ["# The run behind these pages", ""]
    if info:
        lines += [
            f"`make run` started {info.get('started', '(date not recorded)')} on "
            f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores), "
            f"{machine.get('os', '?')}, Python {machine.get('python', '?')}.", "",
        ]  # fmt: skip
    else:
        lines += ["The runner recorded no date or machine for this run (an older "
                  "`build/`); each chapter shows when its notebook finished.", ""]  # fmt: skip
    lines += ["| notebook | status | finished (UTC) | wall time (s) | key numbers or error |",
              "|---|---|---|---|---|"]  # fmt: skip
    for c in chapters:
        nums = ", ".join(f"{k}={_fmt(v)}" for k, v in c.key_numbers.items())
        detail = nums if c.status == "ok" else _fmt(c.error[:200])
        lines.append(f"| [{c.name}]({CHAPTERS}/{c.name}) | {c.status} | {c.finished} | "
                     f"{c.wall_time_s if c.wall_time_s is not None else ''} | {detail} |")  # fmt: skip
    lines += ["", "Wall times: the seconds each notebook's run took, kernel start included."]
    return "\n".join(lines) + "\n"


def _mathjax_static() -> Path:
    import jupyter_server_mathjax

    return Path(jupyter_server_mathjax.__file__).parent / "static"


def stage(
    build: Path,
    src: Path,
    chapters: list[Chapter],
    exercises: list[Path],
    readme: str,
    conf: Path,
) -> None:
    """Write the Sphinx sources of the book into ``src`` (emptied first)."""
    if src.exists():
        shutil.rmtree(src)
    (src / CHAPTERS).mkdir(parents=True)
    for sub in ("executed", "source", "exercises"):
        (src / FILES / sub).mkdir(parents=True)
    info = _read_json(build / RUN_INFO) or {}
    shutil.copy(conf, src / CONF_NAME)
    (src / "_static").mkdir()
    for extra in sorted(conf.parent.iterdir()):  # the book's own static files (favicon)
        if extra.is_file() and extra.name != CONF_NAME:
            shutil.copy(extra, src / "_static" / extra.name)
    shutil.copytree(_mathjax_static(), src / "_static" / MATHJAX_DIR)
    folder = chapters[0].source.parent if chapters else src
    staged = {c.name for c in chapters}
    notes = sorted((folder / NOTES).glob("*.md")) if (folder / NOTES).is_dir() else []
    if notes:
        (src / CHAPTERS / NOTES).mkdir()
    for path in notes:
        text = _book_links(path.read_text(), f"{CHAPTERS}/{NOTES}/{path.name}", staged, set())
        (src / CHAPTERS / NOTES / path.name).write_text(text)
    glossary = folder / GLOSSARY
    if glossary.is_file():
        (src / CHAPTERS / GLOSSARY).write_text(_glossary_page(glossary.read_text(), staged))
    for ch in chapters:
        if ch.executed is None:
            ch.log_tail = _log_tail(build, ch)
        nb = _chapter_notebook(ch, info)
        for cell in nb["cells"]:
            if cell.get("cell_type") == "markdown":
                cell["source"] = _chapter_links("".join(cell["source"]), {p.name for p in notes})
        (src / CHAPTERS / ch.name).write_text(json.dumps(nb))
        shutil.copy(ch.source, src / FILES / "source" / ch.name)
        if ch.executed is not None:
            shutil.copy(ch.executed, src / FILES / "executed" / ch.name)
    if exercises:
        (src / EXERCISES).mkdir()
    for path in exercises:
        nb = _load_notebook(
            path, "regenerate the students' copies (`python -m tlhelpers exercises generate`)."
        )
        note = _markdown_cell(
            ":::{admonition} Exercise\n:class: tip\n"
            f"{{download}}`Download {path.name} <../{FILES}/exercises/{path.name}>` and "
            "work on it in JupyterLab (`make lab`). The solutions are not published here.\n:::",
            "book-exercise",
        )
        cells = nb.get("cells", [])
        _insert_under_title(cells, note)
        (src / EXERCISES / path.name).write_text(json.dumps(nb))
        shutil.copy(path, src / FILES / "exercises" / path.name)
    references = reference_pages(conf.parent)
    if references:
        (src / REFERENCE).mkdir()
    staged, pages = {c.name for c in chapters}, {p.name for p in references}
    for path in references:
        where = f"book/{REFERENCE}/{path.name}"
        (src / REFERENCE / path.name).write_text(
            _book_links(path.read_text(), where, staged, pages)
        )
    index = front_page(readme, chapters, exercises, info, references)
    if glossary.is_file():
        index += "\n```{toctree}\n:hidden:\n:caption: Glossary\n\n" + f"{CHAPTERS}/glossary\n```\n"
    if notes:
        index += "\n```{toctree}\n:hidden:\n:caption: Maintainer notes\n\n"
        index += "".join(f"{CHAPTERS}/{NOTES}/{p.stem}\n" for p in notes) + "```\n"
    (src / "index.md").write_text(index)
    (src / "run.md").write_text(run_page(chapters, info))


def student_exercises(folder: Path | None) -> list[Path]:
    """The students' exercise notebooks (``exercises/student``); none if absent."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))


def _sphinx(src: Path, html: Path, doctrees: Path, quiet: bool) -> Path:
    """Render the staged sources ``src`` into ``html`` with Sphinx (warnings are errors)."""
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-E", "-W", "--keep-going",
           "-d", str(doctrees), str(src), str(html)]  # fmt: skip
    if quiet:
        cmd.insert(3, "-q")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"Sphinx failed (exit {proc.returncode}):\n{proc.stderr[-5000:]}")
    return html


def build_book(
    build: str | Path = "build",
    out: str | Path | None = None,
    *,
    root: str | Path | None = None,
    notebooks: list[Path] | None = None,
    exercises: str | Path | None = None,
    quiet: bool = True,
) -> Path:
    """Build the site from ``build`` (``make run``'s folder) into ``out``; return ``out/html``.

    ``root`` is the repository (README.md, notebooks/, book/conf.py, exercises/student);
    ``notebooks`` and ``exercises`` override its course notebooks and students' folder.
    Raises :class:`MissingRunsError` before writing anything when a notebook has no
    executed copy, and ``RuntimeError`` with Sphinx's messages when Sphinx fails or warns.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    build_arg, build = build, Path(build).resolve()
    out = Path(out).resolve() if out is not None else build / "book"
    notebooks = notebooks if notebooks is not None else course_notebooks(root / "notebooks")
    if not notebooks:
        raise ValueError(f"no course notebooks (NN_name.ipynb) in {root / 'notebooks'}")
    chapters = find_chapters(build, notebooks)
    check_runs(chapters, Path(build_arg))
    exercise_dir = Path(exercises) if exercises is not None else root / "exercises" / "student"
    readme = (root / "README.md").read_text()
    src, html = out / "src", out / "html"
    stage(build, src, chapters, student_exercises(exercise_dir), readme,
          root / "book" / CONF_NAME)  # fmt: skip
    if html.exists():  # no page of an earlier build (a removed exercise) may survive
        shutil.rmtree(html)
    return _sphinx(src, html, out / "doctrees", quiet)


def _lookup(results: Any, key: str, source: str) -> Any:
    value = results
    for i, part in enumerate(key.split(".")):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            where = ".".join(key.split(".")[:i]) or "results"
            have = sorted(value) if isinstance(value, dict) else f"{type(value).__name__}"
            raise ValueError(
                f"{source}: the placeholder {{{{{key}}}}} names no value: {part!r} is not in "
                f"{where}; available there: {have}."
            )
    return value


def fill_placeholders(text: str, results: dict[str, Any] | None, source: str) -> str:
    """``text`` with each ``{{key}}`` or ``{{key:fmt}}`` replaced by the value at the dotted
    path ``key`` of ``results`` (a chapter's ``results.json`` "results"), formatted with ``fmt``
    (``{{means.adam:.3f}}``). A key that is not there raises ``ValueError`` naming ``source``,
    the key and the keys available where it failed; so does a placeholder with no results."""

    def fill(match: re.Match) -> str:
        key, fmt = match.group(1), (match.group(2) or "").strip()
        if results is None:
            raise ValueError(
                f"{source}: the placeholder {{{{{key}}}}} needs results.json, and there is none."
            )
        value = _lookup(results, key, source)
        try:
            return format(value, fmt) if fmt else _fmt(value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{source}: {{{{{key}:{fmt}}}}} cannot format {value!r}: {err}"
            ) from None

    return _PLACEHOLDER.sub(fill, text)


def build_teacher_guide(
    build: str | Path = "build",
    out: str | Path | None = None,
    *,
    root: str | Path | None = None,
    notebooks: list[Path] | None = None,
    quiet: bool = True,
) -> Path:
    """Build the teacher's guide (a site apart from the students'): each chapter's answers
    (``notebooks/answers/<stem>.md``) with their placeholders filled from
    ``build/<stem>/results.json``. Returns ``out/html`` (``out`` defaults to ``BUILD/book/teacher``)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    build = Path(build).resolve()
    out = Path(out).resolve() if out is not None else build / "book" / "teacher"
    notebooks = notebooks if notebooks is not None else course_notebooks(root / "notebooks")
    conf = root / "book" / CONF_NAME
    src, html = out / "src", out / "html"
    if src.exists():
        shutil.rmtree(src)
    (src / ANSWERS).mkdir(parents=True)
    (src / "_static").mkdir()
    shutil.copy(conf, src / CONF_NAME)
    for extra in sorted(conf.parent.iterdir()):
        if extra.is_file() and extra.name != CONF_NAME:
            shutil.copy(extra, src / "_static" / extra.name)
    shutil.copytree(_mathjax_static(), src / "_static" / MATHJAX_DIR)
    pages = []
    for nb in notebooks:
        answers = nb.parent / ANSWERS / f"{nb.stem}.md"
        if not answers.is_file():
            continue
        doc = _read_json(build / nb.stem / "results.json")
        results = doc.get("results") if isinstance(doc, dict) else None
        text = fill_placeholders(answers.read_text(), results, str(answers))
        text = _book_links(text, f"{CHAPTERS}/{ANSWERS}/{answers.name}", set(), set())
        (src / ANSWERS / answers.name).write_text(text)
        pages.append(answers)
    if not pages:
        raise ValueError(
            f"no answers (notebooks/{ANSWERS}/<notebook>.md) for {len(notebooks)} notebooks"
        )
    index = [
        "# Teacher's guide", "",
        "Worked answers to each chapter's questions, with the numbers of the run in "
        f"`{build.name}/`. This site is built apart from the students' pages; do not publish it "
        "with them.", "",
        *[f"- [{_page_title(p)}]({ANSWERS}/{p.name})" for p in pages], "",
        "```{toctree}", ":hidden:", ":caption: Answers", "",
        *[f"{ANSWERS}/{p.stem}" for p in pages], "```", "",
    ]  # fmt: skip
    (src / "index.md").write_text("\n".join(index))
    if html.exists():
        shutil.rmtree(html)
    return _sphinx(src, html, out / "doctrees", quiet)


def main(argv: list[str] | None = None) -> int:
    """``python -m tlhelpers.book``: stage the executed notebooks and build the site."""
    parser = argparse.ArgumentParser(prog="python -m tlhelpers.book", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--build", default="build", help="make run's folder (default: build)")
    parser.add_argument("--out", help="where the book goes (default: BUILD/book)")
    parser.add_argument("--exercises", help="students' notebooks (default: exercises/student)")
    parser.add_argument(
        "--teacher", action="store_true",
        help="build the teacher's guide (answers with this run's numbers) into BUILD/book/teacher",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        if args.teacher:
            html = build_teacher_guide(args.build, args.out, quiet=True)
        else:
            html = build_book(args.build, args.out, exercises=args.exercises, quiet=True)
    except MissingRunsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    size = sum(p.stat().st_size for p in html.rglob("*") if p.is_file()) / 1e6
    print(f"book: {html}/index.html ({size:.1f} MB). View it offline with\n"
          f"  python -m http.server -d {html} --bind 127.0.0.1\n"
          f"and open http://127.0.0.1:8000/")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _claim_status(claim: dict[str, Any]) -> str:
    """``holds`` / ``DOES NOT HOLD`` for an asserted claim; a finding (``"asserted": false`` in
    ``results.json``) says so, with its chance to hold at a fresh seed offset."""
    here = "holds" if claim.get("holds") else "DOES NOT HOLD"
    if claim.get("asserted") is False and "chance" in claim:
        here = "holds here" if claim.get("holds") else "does not hold here"
        return f"finding, not asserted: {here}; chance to hold at a fresh seed offset {claim['chance']:.2f}"
    return here
