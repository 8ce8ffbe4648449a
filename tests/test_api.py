"""The package's public surface: one meaning per name, errors that name the argument.

Read from the source (``ast``), so a new module or function is covered without a list to
keep.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tlhelpers"
CHECKS = ("check_choice", "check_int", "check_positive", "to_numpy")


def _functions():
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield path, node


def test_argument_checks_name_the_argument_they_check():
    """``check_choice("dataset", name, ...)`` would blame an argument the caller never
    passed; the kind of thing goes in ``what=``."""
    wrong = []
    for path, fn in _functions():
        if any(getattr(d, "attr", "") == "setter" for d in fn.decorator_list):
            continue  # ``obj.lambd = value``: the error names the attribute the caller set
        a = fn.args
        params = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs}
        for call in ast.walk(fn):
            if not isinstance(call, ast.Call) or len(call.args) < 2:
                continue
            func = call.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            said, checked = call.args[0], call.args[1]
            if (
                called in CHECKS
                and isinstance(said, ast.Constant)
                and isinstance(checked, ast.Name)
                and checked.id in params
                and said.value != checked.id
            ):
                wrong.append(
                    f"{path.relative_to(PACKAGE.parent)}:{call.lineno} {fn.name}() checks "
                    f"{checked.id!r} but its error says {said.value!r}"
                )
    assert not wrong, "\n".join(wrong)
