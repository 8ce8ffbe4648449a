"""Notebook conventions: checked papermill parameters, ``results.json``, environment report.

Every notebook of the course follows the same pattern::

    from tlhelpers.notebook import ParameterGuard
    guard = ParameterGuard(globals())          # before the parameters cell

    # cell tagged "parameters"
    seed: int = 0  # random seed
    out_dir: str = ""  # where results.json goes ("" = build/results/<notebook>)

    params = guard.check(positive=["lr"], choices={"method": METHODS})

Papermill only warns about an unknown parameter name; ``guard.check`` refuses it
by name, checks every value's type against its annotation, and applies the
value rules, before any work is done.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .paths import atomic_write, repo_root

__all__ = [
    "environment",
    "check_environment",
    "MissingAssetError",
    "ParameterError",
    "ParameterGuard",
    "resolve_out_dir",
    "save_results",
]

if TYPE_CHECKING:
    from .stats import Claim

_IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit", "open"}


class ParameterError(ValueError):
    """A notebook parameter is unknown or has an invalid value."""


class ParameterGuard:
    """Snapshot the namespace before the parameters cell; :meth:`check` validates after it.

    Parameters are the names annotated in the parameters cell (``name: type = value``).
    Any other new public lowercase name (e.g. a typo injected by papermill) is refused;
    modules, functions and UPPER_CASE constants defined before ``check`` are allowed.
    """

    def __init__(self, namespace: dict[str, Any]):
        self._ns = namespace
        self._before = set(namespace)
        self._start = time.perf_counter()

    def check(
        self,
        *,
        positive: Iterable[str] = (),
        non_negative: Iterable[str] = (),
        ranges: Mapping[str, tuple[float | None, float | None]] | None = None,
        choices: Mapping[str, Iterable[Any]] | None = None,
        subset_of: Mapping[str, Iterable[Any]] | None = None,
    ) -> dict[str, Any]:
        """Validate the parameters and return them as a dict (also for ``results.json``).

        - unknown names -> ``ParameterError`` listing the valid names;
        - a value whose type does not match its annotation (ints are accepted and
          converted for ``float``; lists for ``list``) -> ``ParameterError``;
        - ``seed``/``seeds`` must be >= 0 (numpy refuses negative seeds, but only cells
          later, far from the parameter);
        - ``positive``/``non_negative`` names, ``ranges`` (inclusive ``lo, hi``, None
          for open), ``choices`` (one of) and ``subset_of`` (every element of a list in).
        """
        ann = dict(self._ns.get("__annotations__", {}))
        new = {k for k in self._ns if k not in self._before and not k.startswith("_")}
        new -= _IPYTHON_NAMES
        new = {k for k in new if not k.isupper()}  # UPPER_CASE constants are not parameters
        unknown = sorted(
            k
            for k in new
            if k not in ann and self._ns[k] is not self and not _is_module_or_callable(self._ns[k])
        )
        if unknown:
            raise ParameterError(
                f"Unknown parameter(s) {', '.join(map(repr, unknown))}. "
                f"Valid parameters: {', '.join(sorted(ann))}."
            )
        params: dict[str, Any] = {}
        for name, typ in ann.items():
            if name not in self._ns:
                continue
            value = self._ns[name]
            value = _coerce(name, value, typ)
            self._ns[name] = value
            params[name] = value
        for name in ("seed", "seeds"):
            if name in params and isinstance(params[name], (int, list)):
                for v in params[name] if isinstance(params[name], list) else [params[name]]:
                    _bound(name, v, 0, None, strict=False)
        for name in positive:
            _bound(name, params[name], 0, None, strict=True)
        for name in non_negative:
            _bound(name, params[name], 0, None, strict=False)
        for name, (lo, hi) in (ranges or {}).items():
            vals = params[name] if isinstance(params[name], list) else [params[name]]
            for v in vals:
                _bound(name, v, lo, hi, strict=False)
        for name, valid in (choices or {}).items():
            valid = list(valid)
            if params[name] not in valid:
                raise ParameterError(
                    f"Invalid {name}={params[name]!r}. Valid values: {', '.join(map(repr, valid))}."
                )
        for name, valid in (subset_of or {}).items():
            valid = list(valid)
            bad = [v for v in params[name] if v not in valid]
            if bad:
                raise ParameterError(
                    f"Invalid value(s) {bad} in {name}. Valid values: {', '.join(map(repr, valid))}."
                )
        return params

    def elapsed(self) -> float:
        """Seconds since the guard was created (the notebook's own wall time)."""
        return time.perf_counter() - self._start


def _is_module_or_callable(obj: Any) -> bool:
    import types

    return isinstance(obj, types.ModuleType) or callable(obj)


def _coerce(name: str, value: Any, typ: Any) -> Any:
    base = getattr(typ, "__origin__", None) or typ
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base is list and isinstance(value, tuple):
        value = list(value)
    if isinstance(base, type):
        wrong = not isinstance(value, base) or (base is not bool and isinstance(value, bool))
        if wrong:
            raise ParameterError(
                f"Parameter {name} must be {getattr(typ, '__name__', typ)}, "
                f"got {type(value).__name__} {value!r}."
            )
    if base is list and getattr(typ, "__args__", None):
        (inner,) = typ.__args__
        value = [_coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    return value


def _bound(name: str, v: Any, lo, hi, strict: bool) -> None:
    if lo is not None and (v <= lo if strict else v < lo):
        op = ">" if strict else ">="
        raise ParameterError(f"Invalid {name}={v!r}: must be {op} {lo}.")
    if hi is not None and v > hi:
        raise ParameterError(f"Invalid {name}={v!r}: must be <= {hi}.")


def resolve_out_dir(out_dir: str, notebook: str) -> Path:
    """``out_dir`` as a created folder; ``""`` means ``<repo>/build/results/<notebook>``."""
    if out_dir:
        path = Path(out_dir).expanduser()
    else:
        root = repo_root()
        path = (root / "build" / "results" / notebook) if root else Path("build") / notebook
    path.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _jsonable(obj: Any) -> Any:
    import numpy as np
    import torch

    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_results(
    out_dir: str | Path,
    results: Mapping[str, Any],
    *,
    params: Mapping[str, Any] | None = None,
    key_numbers: Iterable[str] = (),
    wall_time: float | None = None,
    claims: Sequence[Claim] = (),
    check: bool = True,
) -> Path:
    """Write ``results.json`` (results, parameters, key number names, versions) atomically.

    ``key_numbers`` names the entries of ``results`` the run summary shows.
    ``claims`` (from :meth:`tlhelpers.stats.Comparison.expect`) are written with their
    sentence, expected verdict, verdict, whether they hold, their estimated chance to hold
    at a fresh seed offset (``"chance"``, :func:`tlhelpers.stats.replication_probability`)
    and whether they were ``"asserted"`` (chance at least :data:`tlhelpers.stats.MIN_CHANCE`).
    Every claim not asserted is printed as a finding, with its numbers and its chance. *After*
    the file is written, :class:`tlhelpers.stats.ClaimFailed` is raised listing every checked
    claim that does not hold, so a failed run still leaves its numbers to inspect: the
    file's ``"status"`` is then ``"failed"`` and its ``"error"`` the claims that failed, each
    with its numbers (otherwise ``"ok"``). A claim that holds below the bar, or one made with
    ``expect(..., check=False)``, is never raised on. ``check=False`` (a notebook's ``check_claims`` parameter, for
    sweeps over settings where a claim is not expected to hold) records the verdicts
    without raising.
    """
    from .stats import MIN_CHANCE, Claim, ClaimFailed, check_claims, findings

    claims = list(claims)
    not_claims = [type(c).__name__ for c in claims if not isinstance(c, Claim)]
    if not_claims:
        raise TypeError(
            f"claims must be Claim objects (comparison.expect(verdict)), got {not_claims}."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    missing = [k for k in key_numbers if k not in results]
    if missing:
        raise KeyError(f"key_numbers {missing} are not in results ({list(results)}).")
    failed = [c for c in claims if c.check and not c.holds] if check else []
    doc = {
        "status": "failed" if failed else "ok",
        "error": str(ClaimFailed(failed)) if failed else "",
        "results": _jsonable(results),
        "key_numbers": list(key_numbers),
        "params": _jsonable(params or {}),
        "wall_time_s": wall_time,
        "environment": environment(short=True),
        "claims": [c.to_dict() for c in claims],
    }
    path = out / "results.json"
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=2, allow_nan=True))
    found = [c for c in findings(claims) if c not in failed]
    if found:
        print(f"Findings, not asserted (chance to hold at a fresh seed offset below {MIN_CHANCE:g}, "
              f"or marked a finding):")  # fmt: skip
        for c in found:
            print(f"  - {c}")
    if check:
        check_claims(claims)
    return path


def environment(short: bool = False) -> dict[str, Any]:
    """Versions, device and offline assets found (notebook 00's environment check)."""
    import numpy
    import torch
    import torchvision

    from .runtime import get_device, thread_report

    policy = thread_report()  # first: it applies the policy if nothing has yet
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "device": str(get_device("auto")),
        "threads": torch.get_num_threads(),
        "thread_policy": policy,
    }
    if short:
        return env
    from .data import FASHION_MNIST_FILES
    from .models import WEIGHTS, WeightsNotFoundError, find_weights
    from .paths import HashMismatchError, data_dir

    assets: dict[str, str] = {}
    for name in WEIGHTS:
        try:
            assets[f"weights:{name}"] = str(find_weights(name))
        except HashMismatchError as err:  # present but altered: say so, not "missing"
            assets[f"weights:{name}"] = f"altered (sha256 mismatch): {err}"
        except (WeightsNotFoundError, ValueError) as err:
            assets[f"weights:{name}"] = f"missing ({type(err).__name__})"
    fm = data_dir() / "fashion-mnist"
    ok = all((fm / f).is_file() for f in FASHION_MNIST_FILES)
    assets["data:fashion_mnist"] = str(fm) if ok else "missing"
    env["assets"] = assets
    return env


class MissingAssetError(RuntimeError):
    """An offline asset the course needs is missing or altered (:func:`check_environment`)."""


#: Assets the default course cannot run without, and what to do when one is missing.
REQUIRED_ASSETS: dict[str, str] = {
    "weights:mobilenet_v2": "run `make setup` to install the MobileNetV2 weights",
    "data:fashion_mnist": "data/fashion-mnist is missing: clone the repository again",
}


def check_environment(env: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The environment report of :func:`environment`, after checking that every asset in
    :data:`REQUIRED_ASSETS` is on disk and unaltered.

    Raises :class:`MissingAssetError` naming each missing or altered asset and what to do
    about it (an altered file: delete it, then ``make setup``). ``env`` is an
    :func:`environment` report to check (default: a fresh one).
    """
    env = dict(environment() if env is None else env)
    assets = env.get("assets")
    if not isinstance(assets, Mapping):
        raise TypeError(
            f"env must be a report of environment() with an 'assets' mapping, got {env!r}."
        )
    problems = []
    for name, fix in REQUIRED_ASSETS.items():
        status = str(assets.get(name, "missing"))
        if status.startswith("missing"):
            problems.append(f"{name} is missing: {fix}")
        elif status.startswith("altered"):
            problems.append(f"{name} is {status}: delete that file, then run `make setup`")
    if problems:
        raise MissingAssetError("The course cannot run offline:\n  - " + "\n  - ".join(problems))
    return env
