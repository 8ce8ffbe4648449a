"""The course glossary (``notebooks/glossary.md``) and the links from each term's first use.

Every entry of the glossary is an anchor line, then one paragraph::

    <a id="fine-tuning"></a>
    **Fine-tuning** · 微调 — Training a pretrained network further on the target task ...
    <!-- aliases: fine-tune, fine-tuned, fine-tunes -->

(the aliases comment is optional and invisible in the rendered page). A name matches a
whole word (an ``s``/``es`` plural included); a name with a capital after its first letter
(``BatchNorm``, ``LwF``, ``ROC AUC``) matches with its case, any other name in any case.

``python -m tlhelpers.glossary link notebooks/*.ipynb`` turns the first use of each term in
each notebook's markdown into ``[term](glossary.md#slug)`` (once: a term whose first use is
already such a link is left alone), never inside headings, code, math, links or HTML;
``--check`` changes nothing and exits 1 when some first use is unlinked (the lesson test).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "GLOSSARY_NAME",
    "Term",
    "link_markdown",
    "link_notebook",
    "main",
    "parse",
    "read",
    "unlinked",
]

#: The glossary's file name, next to the notebooks that link to it.
GLOSSARY_NAME = "glossary.md"

_ANCHOR = re.compile(r'^<a id="([a-z0-9][a-z0-9-]*)"></a>\s*$')
_ENTRY = re.compile(r"^\*\*(.+?)\*\* · (.+?) — (.+)$")
_ALIASES = re.compile(r"^<!-- aliases: (.+) -->\s*$")
_GLOSSARY_LINK = re.compile(r"\[[^\]]*\]\((?:\./)?" + re.escape(GLOSSARY_NAME) + r"#([\w-]+)\)")
#: Regions no link goes into: fenced code, headings, display and inline math, inline code,
#: links and images, HTML links, tags and comments, bare URLs.
_PROTECTED = re.compile(
    r"```.*?```|~~~.*?~~~|^#{1,6} [^\n]*|\$\$.*?\$\$|\$[^$\n]+\$|`[^`\n]*`"
    r"|!?\[[^\]]*\]\([^)]*\)|<!--.*?-->|<a\b[^>]*>.*?</a>|<[^>\n]+>|https?://\S+",
    re.DOTALL | re.MULTILINE,
)


@dataclass(frozen=True)
class Term:
    """One glossary entry: its anchor, English and Chinese names, definition and other names."""

    slug: str
    term: str
    chinese: str
    definition: str
    aliases: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The English term, then its aliases."""
        return (self.term, *self.aliases)

    @property
    def pattern(self) -> re.Pattern[str]:
        """Any of the names as a whole word (longest first), a plural ending allowed."""
        parts = []
        for name in sorted(self.names, key=len, reverse=True):
            body = re.escape(name)
            if any(ch.isupper() for ch in name[1:]):
                parts.append(body)
            else:
                plural = "" if name.endswith("s") or not name[-1].isalpha() else "(?:e?s)?"
                parts.append(f"(?i:{body}{plural})")
        return re.compile(r"(?<![\w-])(?:" + "|".join(parts) + r")(?![\w-])")


def parse(text: str, source: str = GLOSSARY_NAME) -> list[Term]:
    """The entries of a glossary's markdown, in order.

    Raises ``ValueError`` naming ``source`` and the line for an anchor not followed by an
    entry line (``**Term** · 中文 — definition``), a repeated slug, or a name two entries share.
    """
    lines = text.splitlines()
    terms: list[Term] = []
    seen: dict[str, str] = {}
    for i, line in enumerate(lines):
        anchor = _ANCHOR.match(line)
        if not anchor:
            continue
        slug = anchor.group(1)
        entry = _ENTRY.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not entry:
            raise ValueError(
                f"{source}:{i + 2}: after the anchor {slug!r} an entry line must follow: "
                f"'**Term** · 中文 — definition'."
            )
        if slug in {t.slug for t in terms}:
            raise ValueError(f"{source}:{i + 1}: the slug {slug!r} is used twice.")
        aliases: tuple[str, ...] = ()
        if i + 2 < len(lines) and (found := _ALIASES.match(lines[i + 2])):
            aliases = tuple(a.strip() for a in found.group(1).split(",") if a.strip())
        term = Term(slug, entry.group(1), entry.group(2), entry.group(3), aliases)
        for name in term.names:
            if name.lower() in seen:
                raise ValueError(
                    f"{source}:{i + 1}: the name {name!r} of {slug!r} is also "
                    f"a name of {seen[name.lower()]!r}."
                )
            seen[name.lower()] = slug
        terms.append(term)
    return terms


def read(path: str | Path) -> list[Term]:
    """The entries of the glossary file at ``path`` (:func:`parse`)."""
    path = Path(path)
    return parse(path.read_text(encoding="utf-8"), str(path))


def _free(text: str, start: int, end: int) -> bool:
    return not any(m.start() < end and start < m.end() for m in _PROTECTED.finditer(text))


def _inside_longer(text: str, m: re.Match[str], term: Term, terms: Sequence[Term]) -> bool:
    """Whether the use ``m`` of ``term`` is part of a use of a longer name of another term
    (``loss`` inside ``triplet loss``, ``domain`` inside ``domain adaptation``)."""
    word = m.group(0).lower()
    for other in terms:
        if other is term or not any(word in n.lower() and len(n) > len(word) for n in other.names):
            continue
        if any(o.start() <= m.start() and m.end() <= o.end() for o in other.pattern.finditer(text)):
            return True
    return False


def _first_plain(text: str, term: Term, terms: Sequence[Term] = ()) -> re.Match[str] | None:
    """The first use of ``term`` in ``text`` outside protected regions and longer terms."""
    for m in term.pattern.finditer(text):
        if _free(text, m.start(), m.end()) and not _inside_longer(text, m, term, terms):
            return m
    return None


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def link_markdown(texts: Sequence[str], terms: Iterable[Term]) -> tuple[list[str], list[str]]:
    """Link the first use of each term across ``texts`` (a notebook's markdown cells, in order).

    Headings (the title among them) are never linked. A term whose first use is
    already a link to its anchor is left alone. A use inside a longer term's name is not a use
    (``transfer`` in ``negative transfer``), and terms with longer names go first. Returns the
    new texts and the slugs linked.
    """
    out = list(texts)
    linked: list[str] = []
    terms = list(terms)
    for term in sorted(terms, key=lambda t: max(map(len, t.names)), reverse=True):
        for i, text in enumerate(out):
            link = next((m for m in _GLOSSARY_LINK.finditer(text) if m.group(1) == term.slug), None)
            plain = _first_plain(text, term, terms)
            if plain and (link is None or plain.start() < link.start()):
                href = f"[{plain.group(0)}]({GLOSSARY_NAME}#{term.slug})"
                out[i] = text[: plain.start()] + href + text[plain.end() :]
                linked.append(term.slug)
                break
            if link:
                break
    return out, linked


def link_notebook(nb: dict[str, Any], terms: Iterable[Term]) -> list[str]:
    """Link the first use of each term in the markdown cells of ``nb`` (in place); the slugs linked."""
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    new, linked = link_markdown([_source(c) for c in cells], terms)
    for cell, text in zip(cells, new, strict=True):
        if text != _source(cell):
            cell["source"] = text
    return linked


def unlinked(nb: Mapping[str, Any], terms: Iterable[Term]) -> list[str]:
    """Slugs of the terms whose first use in ``nb``'s markdown is not a glossary link."""
    cells = [c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"]
    return link_markdown([_source(c) for c in cells], terms)[1]


def main(argv: list[str] | None = None) -> int:
    """``link [--check] [--glossary PATH] NOTEBOOK...``: link first uses (exit 1 with ``--check``
    when some are unlinked)."""
    import nbformat

    parser = argparse.ArgumentParser(prog="python -m tlhelpers.glossary", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("link", help="link each term's first use in each notebook")
    cmd.add_argument("notebooks", nargs="+", type=Path)
    cmd.add_argument(
        "--glossary", type=Path, default=None, help="default: glossary.md next to each notebook"
    )
    cmd.add_argument("--check", action="store_true", help="change nothing; exit 1 if unlinked")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        terms = read(args.glossary or path.parent / GLOSSARY_NAME)
        nb = nbformat.read(path, as_version=4)
        linked = link_notebook(nb, terms)
        if not linked:
            continue
        if args.check:
            print(f"{path}: first use not linked: {', '.join(linked)}")
            status = 1
        else:
            nbformat.write(nb, path)
            print(f"{path}: linked {', '.join(linked)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
