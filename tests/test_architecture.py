"""The package's map is generated, its public names are declared and documented, and the
notes that say where a module is taught agree with the notebooks' imports."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from tlhelpers import architecture as A

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tlhelpers"


def _public_modules() -> list[tuple[str, Path]]:
    """Every module but private ones (``_utils``) and ``__main__``: ``(dotted name, path)``."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if any(p.startswith("_") and p != "__init__" for p in parts):
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((name, path))
    return out


@pytest.fixture(scope="module")
def uses():
    return A.notebook_uses(ROOT)


def test_generated_tables_in_architecture_md_are_up_to_date():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    for block in ("layers", "notebooks", "names"):
        assert f"<!-- generated: {block} -->" in text
    assert A.render(text) == text, "stale: run python -m tlhelpers.architecture"


def test_check_mode_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "ARCHITECTURE.md"
    stale.write_text("# map\n\n<!-- generated: layers -->\nold row\n<!-- end generated -->\n")
    assert A.main(["--check", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err
    assert A.main([str(stale)]) == 0
    assert "old row" not in stale.read_text() and "| 0 | `validation` |" in stale.read_text()
    assert A.main(["--check", str(stale)]) == 0


def test_an_unknown_generated_block_is_refused():
    with pytest.raises(ValueError, match="Unknown generated block 'nope'"):
        A.render("<!-- generated: nope -->\n<!-- end generated -->\n", ROOT)


def test_layers_name_every_module_once_and_nothing_else():
    listed = [name for names in A.LAYERS for name in names]
    assert len(listed) == len(set(listed)), "a module is in two tiers"
    assert sorted(listed) == A.concepts()


def test_usage_walker_reads_imports_aliases_and_attributes(tmp_path):
    cells = [
        "%matplotlib inline\nfrom tlhelpers.data import load_task, few_shot\n",
        "import tlhelpers.models as M\nnet = M.SmallCNN(1)\n",
        "from tlhelpers import layer_transfer as lt\nlt.run_point\n",
        "!pip list\nfrom tlhelpers.runtime import fixed_threads\n",
        "this is not python (\n",
    ]
    nb = {"cells": [{"cell_type": "code", "source": c} for c in cells], "metadata": {}}
    folder = tmp_path / "notebooks"
    folder.mkdir()
    (folder / "99_demo.ipynb").write_text(json.dumps(nb))
    found = A.notebook_uses(tmp_path, ["notebooks"])["99_demo"]
    assert found == {
        "data.load_task", "data.few_shot", "models", "models.SmallCNN", "layer_transfer",
        "layer_transfer.run_point", "runtime.fixed_threads",
    }  # fmt: skip
    uses = {"99_demo": found}
    assert A.taught_in("threads", uses) == ["99"]  # re-exported by runtime, defined in threads
    assert A.taught_in("selection", uses) == []


def _is_submodule(concept: str, name: str) -> bool:
    return (PACKAGE / concept / f"{name}.py").is_file()


def test_every_name_a_notebook_imports_exists(uses):
    """A rename must reach the notebooks: each name they take from the kit is there."""
    missing = []
    for nb, found in uses.items():
        for used in found:
            concept, _, name = used.partition(".")
            module = importlib.import_module(f"tlhelpers.{concept}")
            if name and not hasattr(module, name) and not _is_submodule(concept, name):
                missing.append(f"{nb}: tlhelpers.{concept}.{name}")
    assert not missing, missing


@pytest.mark.parametrize(("name", "path"), _public_modules(), ids=lambda v: str(v))
def test_public_module_declares_and_documents_its_names(name, path):
    module = importlib.import_module(name)
    assert module.__doc__ and module.__doc__.strip(), f"{name} has no docstring"
    assert hasattr(module, "__all__"), f"{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"{name}.__all__ lists names it does not have: {missing}"
    tree = ast.parse(path.read_text())
    defined = [
        n.name
        for n in tree.body
        if isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")
    ]
    undeclared = [n for n in defined if n not in module.__all__]
    assert not undeclared, f"{name}: public but not in __all__: {undeclared}"
    undocumented = [
        n
        for n in module.__all__
        if (inspect.isfunction(obj := getattr(module, n)) or inspect.isclass(obj))
        and not (obj.__doc__ or "").strip()
    ]
    assert not undocumented, f"{name}: public names without a docstring: {undocumented}"


def _summary_paragraph(path: Path) -> str:
    return (ast.get_docstring(ast.parse(path.read_text())) or "").split("\n\n")[0]


NOTE = re.compile(r"notebooks? (\d\d[ab]?(?:(?:, | and |-|/| or )\d\d[ab]?)*)")


def _claimed(note: str, known: list[str]) -> list[str]:
    """``"03-04"`` -> every known label from 03 to 04; ``"05b and 08b"`` -> both."""
    out = []
    for part in re.split(r", | and |/| or ", note):
        if "-" in part:
            lo, hi = part.split("-")
            out += [k for k in known if lo <= k[:2] <= hi[:2]] or [part]
        else:
            out.append(part)
    return out


@pytest.mark.parametrize("concept", A.concepts())
def test_module_summary_says_what_not_where(concept):
    """Where a module is taught is generated; a hand-written "(notebooks 00-04)" drifts."""
    summary = A.module_summary(concept)
    assert summary, f"{concept}: the docstring's first paragraph is empty"
    if concept != "exercises":  # an exercise module belongs to its chapter by definition
        assert not NOTE.search(summary), f"{concept}: {summary!r} names notebooks"
    for path in [PACKAGE / f"{concept}.py", *sorted((PACKAGE / concept).glob("*.py"))]:
        if path.is_file() and not path.name.startswith("_") and path.name != "exercises":
            text = _summary_paragraph(path)
            if "exercises" not in path.parts:
                assert not NOTE.search(text), f"{path.name}: {text!r} names notebooks"


def test_docstring_notes_name_notebooks_that_import_the_module(uses):
    """ "(notebook 09)" next to a function must name a notebook that imports its module
    (chapter labels match by prefix: "03" stands for 03a and 03b; "ex01" for chapter 01)."""
    known = sorted({A._label(nb).removeprefix("ex") for nb in uses})
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        concept = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        taught = [t.removeprefix("ex") for t in A.taught_in(concept, uses)]
        tree = ast.parse(path.read_text())
        nodes = [tree] + [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)
        ]
        for node in nodes:
            for match in NOTE.finditer(ast.get_docstring(node) or ""):
                for nb in _claimed(match.group(1), known):
                    if not any(t.startswith(nb) or nb.startswith(t) for t in taught):
                        name = getattr(node, "name", "<module>")
                        wrong.append(f"{path.relative_to(ROOT)} {name}: {match.group(0)!r}")
    assert not wrong, "\n".join(wrong)


def test_the_book_package_page_is_generated_and_up_to_date():
    text = (ROOT / "book" / "reference" / "package.md").read_text()
    assert "<!-- generated: modules -->" in text
    assert A.render(text) == text, "stale: run python -m tlhelpers.architecture"


def test_module_table_lists_each_module_with_its_declared_names():
    table = A.module_table(PACKAGE)
    rows = {r.split(" | ")[0].strip("| `"): r for r in table.splitlines()[2:]}
    for dotted in ("stats", "losses.objective", "data.batches", "selection"):
        module = importlib.import_module(f"tlhelpers.{dotted}")
        cells = rows[dotted].split(" | ")
        assert cells[2].rstrip(" |") == ", ".join(f"`{n}`" for n in module.__all__), dotted
    assert rows["losses/"].split(" | ")[2].rstrip(" |") == "-"  # all its names are its submodules'
    assert "_utils" not in table and "__main__" not in table


def test_module_names_reads_a_literal_all_and_refuses_to_guess(tmp_path):
    lit = tmp_path / "lit.py"
    lit.write_text('"""Doc."""\n__all__ = ["b", "a"]\n')
    computed = tmp_path / "computed.py"
    computed.write_text('__all__ = [n for n in ("a",)]\n')
    assert A.module_names(lit) == ["b", "a"]
    assert A.module_names(computed) is None
    assert A.module_names(tmp_path / "lit.py") is not None


def test_check_mode_checks_every_file_it_is_given(tmp_path, capsys):
    fresh = tmp_path / "fresh.md"
    fresh.write_text("no generated block\n")
    stale = tmp_path / "stale.md"
    stale.write_text("<!-- generated: modules -->\nold\n<!-- end generated -->\n")
    assert A.main(["--check", str(fresh), str(stale)]) == 1
    assert "stale.md is stale" in capsys.readouterr().err
    assert A.main([str(fresh), str(stale)]) == 0
    assert "| `validation` |" in stale.read_text()
