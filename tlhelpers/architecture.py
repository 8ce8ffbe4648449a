"""The package's map, generated from the code: layers, what each module is, where it is taught.

:data:`LAYERS` is the one list of tiers (``tests/test_layers.py`` enforces it). Everything
else is read from the source and the notebooks, never kept by hand: a module's summary is
the first line of its docstring, and "taught in" lists the notebooks (and exercises) that
import it, found by parsing their code cells, in the spirit of d2l's "Defined in" notes.

``python -m tlhelpers.architecture`` rewrites the generated blocks of ``ARCHITECTURE.md`` and
of the book's package page (between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``); ``--check`` only reports whether they are stale (exit status 1),
as ``tests/test_architecture.py`` does.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "LAYERS",
    "TIER",
    "concepts",
    "main",
    "module_names",
    "module_summary",
    "module_table",
    "name_table",
    "notebook_table",
    "notebook_uses",
    "render",
    "layer_table",
    "taught_in",
]

PACKAGE = Path(__file__).resolve().parent
ROOT = PACKAGE.parent

#: Bottom to top. A module may import its own tier or lower tiers, never a higher one.
LAYERS: list[tuple[str, ...]] = [
    ("validation",),
    (
        "paths",
        "threads",
        "runtime",
        "metrics",
        "calibration",
        "interactive",
        "detection",
        "selection",
        "fingerprint",
        "lessons",
        "glossary",
    ),
    ("data", "models", "plots", "stats"),
    ("losses", "optim"),
    ("training",),
    ("features", "transferability", "adaptation"),
    ("analysis", "recipes", "embedding"),
    ("widgets", "notebook", "exercises"),
    ("runner", "sweep", "classroom"),
    ("pretrain", "layer_transfer", "book", "architecture", "__main__"),
]
#: Concept -> its tier in :data:`LAYERS`.
TIER: dict[str, int] = {name: i for i, names in enumerate(LAYERS) for name in names}

#: Where the lessons and the exercises live, relative to the repository root.
NOTEBOOK_DIRS = ("notebooks", "exercises/source")

#: The files whose generated blocks ``main`` rewrites by default, relative to the root.
GENERATED_FILES = ("ARCHITECTURE.md", "book/reference/package.md")


def concepts(package: Path = PACKAGE) -> list[str]:
    """The package's top-level modules and subpackages (``"data"``, ``"losses"``, ...), sorted."""
    names = {p.stem for p in package.glob("*.py") if p.stem != "__init__"}
    names |= {p.parent.name for p in package.glob("*/__init__.py")}
    return sorted(names)


def _source_of(concept: str, package: Path = PACKAGE) -> Path:
    path = package / f"{concept}.py"
    return path if path.is_file() else package / concept / "__init__.py"


def _summary(path: Path) -> str:
    """The first paragraph of a file's docstring on one line, reST roles and double
    backticks turned into markdown code (``""`` when it has none)."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.strip().split("\n\n")[0].split())
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text)
    return text.replace("``", "`")


def module_summary(concept: str, package: Path = PACKAGE) -> str:
    """The first paragraph of the module's docstring, on one line (``""`` when it has none)."""
    return _summary(_source_of(concept, package))


def module_names(path: Path) -> list[str] | None:
    """The names a module file declares public: its ``__all__`` when that is a literal list
    or tuple of strings, in the order written; ``None`` when it has none or computes it."""
    for node in ast.parse(path.read_text()).body:
        if not isinstance(node, ast.Assign):
            continue
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            try:
                names = ast.literal_eval(node.value)
            except ValueError:
                return None
            return [str(n) for n in names]
    return None


@functools.cache
def _origins(concept: str, package: Path = PACKAGE) -> dict[str, str]:
    """Names ``concept`` re-exports from another concept -> that concept
    (``runtime`` re-exports ``fixed_threads`` from ``threads``)."""
    tree = ast.parse(_source_of(concept, package).read_text())
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            origin = node.module.split(".")[0]
            if origin != concept and origin in TIER:
                out.update({a.asname or a.name: origin for a in node.names})
    return out


def _code_cells(path: Path) -> Iterable[str]:
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            text = "".join(cell["source"])
            yield "\n".join(
                "" if line.lstrip().startswith(("%", "!")) else line for line in text.split("\n")
            )


def _uses_in(tree: ast.AST) -> set[str]:
    """``"data.load_task"``, ``"layer_transfer"``, ...: what a piece of code takes from ``tlhelpers``."""
    found: set[str] = set()
    aliases: dict[str, str] = {}  # local name -> concept (``lt`` -> ``layer_transfer``)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "tlhelpers":
            parts = (node.module or "").split(".")
            for alias in node.names:
                if len(parts) == 1:  # from tlhelpers import data
                    found.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
                else:
                    found.add(f"{parts[1]}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tlhelpers" and len(parts) > 1:
                    found.add(parts[1])
                    if alias.asname:
                        aliases[alias.asname] = parts[1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in aliases:
                found.add(f"{aliases[node.value.id]}.{node.attr}")
    return found


def notebook_uses(root: Path = ROOT, dirs: Sequence[str] = NOTEBOOK_DIRS) -> dict[str, set[str]]:
    """Notebook stem (``"03a_loss_transfer"``) -> what its code cells take from ``tlhelpers``.

    Each entry is a concept (``"runtime"``) or ``"concept.name"`` (``"data.load_task"``),
    from ``from tlhelpers.x import ...``, ``import tlhelpers.x`` and attribute access on a
    module imported under a local name. Cells that do not parse (shell lines aside) are skipped.
    """
    uses: dict[str, set[str]] = {}
    for folder in dirs:
        for path in sorted((root / folder).glob("*.ipynb")):
            found: set[str] = set()
            for code in _code_cells(path):
                try:
                    found |= _uses_in(ast.parse(code))
                except SyntaxError:
                    continue
            uses[path.stem] = found
    return uses


def _label(stem: str) -> str:
    """``"03a_loss_transfer"`` -> ``"03a"``; ``"ex01_preprocessing"`` -> ``"ex01"``."""
    return stem.split("_")[0]


def _resolve(found: set[str], package: Path = PACKAGE) -> set[str]:
    """``found`` plus, for a re-exported name, the concept that defines it
    (``runtime.fixed_threads`` also counts as ``threads.fixed_threads``)."""
    out = set(found)
    for u in found:
        concept, _, name = u.partition(".")
        if name and concept in TIER and concept != "__main__":
            origin = _origins(concept, package).get(name)
            if origin:
                out.add(f"{origin}.{name}")
    return out


def taught_in(concept: str, uses: dict[str, set[str]], package: Path = PACKAGE) -> list[str]:
    """Labels of the notebooks that use ``concept`` or one of its names, in order."""
    return [
        _label(nb)
        for nb, found in sorted(uses.items())
        if any(u == concept or u.startswith(concept + ".") for u in _resolve(found, package))
    ]


def _cell(labels: list[str]) -> str:
    return ", ".join(labels) if labels else "-"


def layer_table(uses: dict[str, set[str]], package: Path = PACKAGE) -> str:
    """The markdown table of tiers, modules, summaries and the notebooks that use each."""
    rows = ["| tier | module | what it is | taught in |", "|---|---|---|---|"]
    for tier, names in enumerate(LAYERS):
        for name in names:
            is_pkg = (package / name / "__init__.py").is_file()
            shown = f"`{name}/`" if is_pkg else f"`{name}`"
            summary = module_summary(name, package).replace("|", "\\|")
            taught = _cell(taught_in(name, uses, package))
            rows.append(f"| {tier} | {shown} | {summary} | {taught} |")
            if is_pkg:  # its public modules, one row each, under the package's row
                for sub in sorted((package / name).glob("[!_]*.py")):
                    line = _summary(sub).replace("|", "\\|")
                    rows.append(f"| | `{name}.{sub.stem}` | {line} | |")
    return "\n".join(rows)


def _names_cell(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in names) or "-"


def module_table(package: Path = PACKAGE) -> str:
    """The markdown table of every public module in tier order: what it is (its docstring's
    first paragraph) and the names it declares public (its ``__all__``). A package's row
    lists only what its own ``__init__`` adds; its public submodules get a row each."""
    rows = ["| module | what it is | public names |", "|---|---|---|"]
    for names in LAYERS:
        for name in names:
            if name == "__main__":
                continue
            summary = module_summary(name, package).replace("|", "\\|")
            if not (package / name / "__init__.py").is_file():
                declared = module_names(package / f"{name}.py") or []
                rows.append(f"| `{name}` | {summary} | {_names_cell(declared)} |")
                continue
            subs = sorted((package / name).glob("[!_]*.py"))
            sub_names = {s.stem: module_names(s) or [] for s in subs}
            inherited = {n for ns in sub_names.values() for n in ns} | set(sub_names)
            own = [
                n for n in module_names(package / name / "__init__.py") or [] if n not in inherited
            ]
            rows.append(f"| `{name}/` | {summary} | {_names_cell(own)} |")
            for sub in subs:
                line = _summary(sub).replace("|", "\\|")
                rows.append(
                    f"| `{name}.{sub.stem}` | {line} | {_names_cell(sub_names[sub.stem])} |"
                )
    return "\n".join(rows)


def name_table(uses: dict[str, set[str]]) -> str:
    """Every ``tlhelpers`` name a notebook imports, with the notebooks that import it."""
    by_name: dict[str, list[str]] = {}
    for nb, found in sorted(uses.items()):
        for u in found:
            if "." in u:
                by_name.setdefault(u, []).append(_label(nb))
    rows = ["| name | used in |", "|---|---|"]
    rows += [f"| `{name}` | {_cell(labels)} |" for name, labels in sorted(by_name.items())]
    return "\n".join(rows)


def notebook_table(uses: dict[str, set[str]]) -> str:
    """Per notebook, the ``tlhelpers`` modules it imports."""
    rows = ["| notebook | modules it imports |", "|---|---|"]
    for nb, found in sorted(uses.items()):
        modules = sorted({u.split(".")[0] for u in found})
        rows.append(f"| {nb} | {', '.join(f'`{m}`' for m in modules) or '-'} |")
    return "\n".join(rows)


_BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(?:.*?\n)??(<!-- end generated -->)", re.S)


def render(text: str, root: Path = ROOT) -> str:
    """``text`` (ARCHITECTURE.md, the book's package page) with every generated block
    rebuilt from the code."""
    uses = notebook_uses(root)
    tables = {
        "layers": layer_table(uses, root / "tlhelpers"),
        "notebooks": notebook_table(uses),
        "names": name_table(uses),
        "modules": module_table(root / "tlhelpers"),
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in tables:
            raise ValueError(f"Unknown generated block {name!r}. Valid values: {sorted(tables)}.")
        return match.group(1) + tables[name] + "\n" + match.group(3)

    return _BLOCK.sub(fill, text)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tlhelpers.architecture [--check] [FILE ...]``: rewrite (or check) the
    generated blocks (default: ARCHITECTURE.md and book/reference/package.md)."""
    parser = argparse.ArgumentParser(
        prog="python -m tlhelpers.architecture", description=main.__doc__
    )
    parser.add_argument("files", nargs="*", default=[str(ROOT / f) for f in GENERATED_FILES])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when the file is stale; write nothing"
    )
    args = parser.parse_args(argv)
    status = 0
    for file in args.files:
        path = Path(file)
        old = path.read_text()
        new = render(old)
        if args.check:
            if new != old:
                print(f"{path} is stale: run python -m tlhelpers.architecture", file=sys.stderr)
                status = 1
            continue
        if new != old:
            path.write_text(new)
        print(f"{path}: {'rewritten' if new != old else 'up to date'}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
