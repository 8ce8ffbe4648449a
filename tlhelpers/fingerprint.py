"""What a stored number was computed on: the platform fingerprint and the code version.

PyTorch does not promise the same floating-point results across CPUs, kernel sets or
library builds (its reproducibility notes): the same seed on another machine can pick
other vectorised kernels (``torch.backends.cpu.get_cpu_capability()``: ``DEFAULT``,
``AVX2``, ``AVX512``, ...; overridden by the environment variable
``ATEN_CPU_CAPABILITY``), other oneDNN convolutions, other summation orders. In a short
training run a last-bit difference early on grows into a different final accuracy, a
sizeable fraction of the seed-to-seed spread (Summers & Dinneen, 2021, "Nondeterminism and
instability in neural network optimization"). So a stored number is kept with:

- :func:`platform_fingerprint`: CPU model, kernel set, torch and numpy versions, threads;
  the same fingerprint may be required to reproduce a number exactly, another one only
  to agree in meaning (:func:`tlhelpers.stats.equivalence`);
- :func:`code_version`: a hash of the source of the ``tlhelpers`` modules a computation
  imports (comments and docstrings left out), so a message can say whether the code changed.

Nothing here imports torch at import time.
"""

from __future__ import annotations

import ast
import hashlib
import platform
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "FINGERPRINT_FIELDS", "code_version", "cpu_model", "fingerprint_differences", "package_imports",
    "platform_fingerprint", "same_platform",
]  # fmt: skip

#: The fields of a fingerprint, in the order messages name them.
FINGERPRINT_FIELDS = ("cpu", "cpu_capability", "torch", "numpy", "threads", "machine")
_PACKAGE = Path(__file__).resolve().parent


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, where ``platform.processor()`` is often empty)."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        try:
            models = re.findall(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        except OSError:
            models = []
        cpu = models[0].strip() if models else cpu
    return cpu


def platform_fingerprint(threads: int | None = None) -> dict[str, Any]:
    """``{cpu, cpu_capability, torch, numpy, threads, machine}`` of this process.

    ``threads`` is the intra-op thread count the computation ran with (default: torch's
    current count). ``cpu_capability`` is the kernel set torch dispatches to, after
    ``ATEN_CPU_CAPABILITY``.
    """
    import numpy
    import torch

    return {
        "cpu": cpu_model(),
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "threads": int(torch.get_num_threads() if threads is None else threads),
        "machine": platform.machine(),
    }


def fingerprint_differences(stored: Mapping[str, Any] | None, here: Mapping[str, Any]) -> list[str]:
    """``["cpu_capability: AVX512 (stored) vs AVX2 (here)", ...]``; a missing stored fingerprint is one entry."""
    if not stored:
        return ["no platform fingerprint was stored"]
    return [
        f"{k}: {stored.get(k)!r} (stored) vs {here.get(k)!r} (here)"
        for k in FINGERPRINT_FIELDS
        if stored.get(k) != here.get(k)
    ]


def same_platform(stored: Mapping[str, Any] | None, here: Mapping[str, Any]) -> bool:
    """True when every field of :data:`FINGERPRINT_FIELDS` matches."""
    return not fingerprint_differences(stored, here)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):  # fmt: skip
                node.body = body[1:] or [ast.Pass()]
    return tree


def _module_file(name: str, package_dir: Path | None = None) -> Path | None:
    """``tlhelpers.data`` -> its file (a module or a package's ``__init__``), None if absent."""
    root = package_dir or _PACKAGE
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    for cand in (root / rel.with_suffix(".py") if rel.parts else None, root / rel / "__init__.py"):
        if cand is not None and cand.is_file():
            return cand
    return None


def package_imports(
    tree: ast.AST, name: str, is_package: bool, package_dir: Path | None = None
) -> set[str]:
    """Every ``tlhelpers`` module the module ``name`` (syntax ``tree``) imports, as absolute names.

    Every import counts, function-level ones included; ``from tlhelpers import losses`` and
    ``from . import x`` count the submodule when it exists (under ``package_dir``, default
    this package). ``is_package``: ``name`` is a package's ``__init__``. The module itself is left out.
    """
    package = name if is_package else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "tlhelpers")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tlhelpers":
                continue
            found.add(target)
            for alias in node.names:  # submodules
                if _module_file(f"{target}.{alias.name}", package_dir) is not None:
                    found.add(f"{target}.{alias.name}")
    found.discard(name)
    return found


def code_version(modules: Sequence[str], exclude: Sequence[str] = ()) -> dict[str, Any]:
    """``{"sha256": ..., "modules": [...]}``: a hash of ``modules`` and every ``tlhelpers`` module they import.

    Imports are followed through the source (function-level ones included), so a module
    split into a package is followed too; modules in ``exclude`` (and what only they
    import) are left out. Each module counts by its syntax tree without docstrings:
    reformatting, comments and docstrings do not change the version, code does.
    """
    todo, seen, parts = list(modules), set(exclude), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        todo.extend(package_imports(tree, name, path.name == "__init__.py"))
        parts.append((name, ast.dump(_strip_docstrings(tree), include_attributes=False)))
    digest = hashlib.sha256()
    for name, dump in sorted(parts):
        digest.update(f"{name}\n{dump}\n".encode())
    return {"sha256": digest.hexdigest(), "modules": sorted(n for n, _ in parts)}
