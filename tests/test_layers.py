"""The package's imports point one way: down the layers of ARCHITECTURE.md, and never in a cycle.

Every import of every module counts, function-level ones included (a lazy import is
still a dependency). The tiers are ``LAYERS`` in ``tlhelpers/architecture.py`` (the one
list; ARCHITECTURE.md's table is generated from it); a new module must be given a tier there.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tlhelpers.architecture import TIER
from tlhelpers.fingerprint import package_imports

PACKAGE = Path(__file__).resolve().parent.parent / "tlhelpers"


def _concept(module: str) -> str:
    """``tlhelpers.losses.alignment`` -> ``losses``; ``tlhelpers`` itself -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, text: str | None = None) -> set[str]:
    """Every ``tlhelpers`` module imported anywhere in ``path`` (absolute names).

    ``text`` replaces the file's content (to test the walker itself).
    """
    tree = ast.parse(path.read_text() if text is None else text)
    return package_imports(tree, _module_name(path), path.name == "__init__.py", PACKAGE)


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    missing = sorted({_concept(m) for m in _graph() if _concept(m) and _concept(m) not in TIER})
    assert not missing, (
        f"give these modules a tier in LAYERS (tlhelpers/architecture.py): {missing}"
    )


def test_no_import_points_up_the_layers():
    upward = [
        f"{mod} imports {dep} ({_concept(mod)} is tier {TIER[_concept(mod)]}, "
        f"{_concept(dep)} is tier {TIER[_concept(dep)]})"
        for mod, deps in _graph().items()
        for dep in deps
        if _concept(mod) and _concept(dep) and TIER[_concept(dep)] > TIER[_concept(mod)]
    ]
    assert not upward, "\n".join(upward)


def test_nothing_imports_pretrain():
    users = [
        m
        for m, deps in _graph().items()
        if any(_concept(d) == "pretrain" for d in deps) and _concept(m) != "pretrain"
    ]
    assert not users, users


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_between_modules():
    cycle = _find_cycle(_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_no_import_cycle_between_concepts():
    """Sideways imports inside a tier are allowed, but not both ways."""
    concepts: dict[str, set[str]] = {}
    for mod, deps in _graph().items():
        if _concept(mod):
            concepts.setdefault(_concept(mod), set()).update(
                _concept(d) for d in deps if _concept(d) and _concept(d) != _concept(mod)
            )
    cycle = _find_cycle(concepts)
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
        ({"a": {"b"}, "b": {"c"}, "c": set()}, None),
    ],
)
def test_cycle_finder_finds_cycles(graph, expected):
    assert _find_cycle(graph) == expected


def test_import_walker_sees_function_level_and_relative_imports():
    deps = _imports(PACKAGE / "analysis.py")
    assert "tlhelpers.training" in deps and "tlhelpers.models" in deps
    text = "def f():\n    from .pretrain import build\n    from . import runner\n    return build\n"
    lazy = _imports(PACKAGE / "models.py", text)
    assert {"tlhelpers.pretrain", "tlhelpers.runner"} <= lazy
    assert "tlhelpers.losses.objective" in _imports(PACKAGE / "losses" / "__init__.py")
