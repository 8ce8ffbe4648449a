"""Widgets that also run headless: ``interact`` and lazy widget specs.

In JupyterLab, :func:`interact` shows ``ipywidgets`` controls above the function's
output. In headless runs (papermill, nbval, ``make run``/``make test``, which set
``TLHELPERS_WIDGETS=0``) it calls the function once with the initial values and
creates no widget at all: widget comm traffic in headless kernels intermittently hung
cell execution (measured with ipykernel 7.4 / nbclient 0.11: the kernel idle, the
client waiting on an ``interact`` cell). The same pattern as Neuromatch's CI.

One source of initial values (:func:`initial_values`) serves both: the executed copy
of a notebook shows what a student first sees in Lab. Widgets are described lazily
(:class:`LogSlider`, :class:`Choice`, :class:`MultiChoice`) so that nothing is built
unless it will be shown. In Lab, a callback that raises prints its error in the
widget's output area (ipywidgets would send it to Lab's log console and leave the
output blank).
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .validation import check_choice

__all__ = [
    "Choice",
    "Fixed",
    "initial_value",
    "initial_values",
    "interact",
    "LABEL_STYLE",
    "LogSlider",
    "MULTI_SELECT_HINT",
    "MultiChoice",
    "NO_DEFAULT",
    "progress",
    "widgets_enabled",
    "WIDGETS_ENV",
]

T = TypeVar("T")

#: Set to 0/false/no/off to run ``interact`` without widgets.
WIDGETS_ENV = "TLHELPERS_WIDGETS"

#: Shown under a multi-select: browsers select one item per plain click.
MULTI_SELECT_HINT = "Ctrl-click (Cmd-click on a Mac) to select several; Shift-click for a range."

#: Labels in full ("normalization", not "normaliza..."): ipywidgets' default label box is narrow.
LABEL_STYLE = {"description_width": "initial"}


def widgets_enabled() -> bool:
    """False when ``$TLHELPERS_WIDGETS`` is 0/false/no/off (headless runs)."""
    return os.environ.get(WIDGETS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


#: No default: the function's parameter has none (``inspect.Parameter.empty``).
NO_DEFAULT = inspect.Parameter.empty


@dataclass(frozen=True)
class LogSlider:
    """A ``FloatLogSlider`` with ``value`` and exponents ``min``..``max`` (base ``base``)."""

    value: float
    min: float = -3.0
    max: float = 3.0
    step: float = 0.5
    base: float = 10.0
    description: str | None = None

    def initial(self, default: Any = NO_DEFAULT) -> float:
        """``value`` (given explicitly, so it wins over the function's default)."""
        return self.value

    def widget(self, name: str, value: Any):
        from ipywidgets import FloatLogSlider

        return FloatLogSlider(value=value, min=self.min, max=self.max, step=self.step,
                              base=self.base, description=self.description or name,
                              style=LABEL_STYLE)  # fmt: skip


@dataclass(frozen=True)
class Choice:
    """A ``Dropdown`` over ``options`` starting at ``value``.

    Without ``value``: the function's default if it is an option, else the first option.
    ``labels`` (option -> text) is what the dropdown shows instead of the option itself
    (``{"logme": "LogME"}``); the function still receives the option. Options without a
    label show as themselves.
    """

    options: Sequence[Any]
    value: Any = None
    description: str | None = None
    labels: Mapping[Any, str] | None = None

    def __post_init__(self) -> None:
        for key in self.labels or {}:
            if not _in(key, self.options):
                check_choice("labels key", key, self.options)

    def initial(self, default: Any = NO_DEFAULT) -> Any:
        if self.value is not None:
            return self.value
        return default if _in(default, self.options) else self.options[0]

    def widget(self, name: str, value: Any):
        from ipywidgets import Dropdown

        labels = self.labels or {}
        # (label, value) pairs: ipywidgets shows the label and hands the value to the function
        options = (
            [(str(labels.get(o, o)), o) for o in self.options] if labels else list(self.options)
        )
        return Dropdown(options=options, value=value,
                        description=self.description or name, style=LABEL_STYLE)  # fmt: skip


@dataclass(frozen=True)
class MultiChoice:
    """A ``SelectMultiple`` over ``options`` starting at ``value``, with a Ctrl/Shift-click hint.

    Without ``value``: the function's default if it is a subset of the options, else all.
    """

    options: Sequence[Any]
    value: Sequence[Any] = field(default=())
    description: str | None = None

    def initial(self, default: Any = NO_DEFAULT) -> tuple:
        if self.value:
            return tuple(self.value)
        if isinstance(default, (list, tuple)) and all(_in(v, self.options) for v in default):
            return tuple(default)
        return tuple(self.options)

    def widget(self, name: str, value: Any):
        from ipywidgets import SelectMultiple

        return SelectMultiple(options=list(self.options), value=tuple(value),
                              rows=min(len(self.options), 8),
                              description=self.description or name, style=LABEL_STYLE,
                              tooltip=MULTI_SELECT_HINT)  # fmt: skip


@dataclass(frozen=True)
class Fixed:
    """A value passed through unchanged (like ``ipywidgets.fixed``)."""

    value: Any

    def initial(self, default: Any = NO_DEFAULT) -> Any:
        return self.value


_SPECS = (LogSlider, Choice, MultiChoice)


def _in(value: Any, options: Sequence[Any]) -> bool:
    """``value in options`` that never raises (tensors, arrays) and is False for no default."""
    if value is NO_DEFAULT:
        return False
    try:
        return any(value is o or bool(value == o) for o in options)
    except Exception:  # ambiguous comparisons (arrays) are not a match
        return False


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def initial_value(spec: Any, default: Any = NO_DEFAULT) -> Any:
    """The value ``interact`` starts with for ``spec``, given the function's ``default``.

    The spec's own value when it has one (:class:`LogSlider`, :class:`Fixed`,
    ``ipywidgets.fixed``, a plain value, a ``Choice``/``MultiChoice`` with ``value``);
    otherwise the function's default when the spec allows it (as ipywidgets does: a
    list's item, a number inside a ``(min, max[, step])`` tuple); otherwise the first
    item of a list or the middle of a tuple's range (ipywidgets' rule).
    """
    if isinstance(spec, (*_SPECS, Fixed)):
        return spec.initial(default)
    try:
        from ipywidgets import fixed

        if isinstance(spec, fixed):
            return spec.value
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        pass
    if isinstance(spec, list) and spec:
        # a list abbreviates a dropdown
        return default if _in(default, spec) else spec[0]
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(_number(v) for v in spec):
        lo, hi = spec[0], spec[1]  # (min, max[, step]) abbreviates a slider
        ints = all(isinstance(v, int) for v in spec)
        if _number(default) and lo <= default <= hi and (isinstance(default, int) or not ints):
            return default
        if ints:
            step = spec[2] if len(spec) == 3 else 1
            return lo + ((hi - lo) // 2 // step) * step
        return (lo + hi) / 2
    return spec


def initial_values(fn: Callable[..., Any], specs: dict[str, Any]) -> dict[str, Any]:
    """``{name: initial value}`` for each spec of ``interact(fn, **specs)`` (see :func:`initial_value`)."""
    params: Mapping[str, inspect.Parameter]
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):  # builtins without a signature: no defaults to use
        params = {}
    out = {}
    for name, spec in specs.items():
        p = params.get(name)
        out[name] = initial_value(spec, p.default if p is not None else NO_DEFAULT)
    return out


def _widget(name: str, spec: Any, value: Any):
    """The ipywidgets control (or ``fixed``) for ``spec``, starting at ``value``."""
    import ipywidgets

    if isinstance(spec, _SPECS):
        return spec.widget(name, value)
    if isinstance(spec, (Fixed, ipywidgets.fixed)):
        return ipywidgets.fixed(value)
    if isinstance(spec, ipywidgets.ValueWidget):
        return spec
    widget = ipywidgets.interactive.widget_from_abbrev(spec, value)
    if widget is None:
        raise ValueError(
            f"{name}={spec!r}: no widget for this value. Allowed: LogSlider, Choice, MultiChoice, "
            "Fixed, a list (dropdown), a (min, max[, step]) tuple, a number, a string or a bool."
        )
    widget.description = name
    widget.style = LABEL_STYLE
    return widget


def _shows_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` that prints its error instead of raising, and closes the figure it left half-drawn.

    Runs inside the widget's output area, so the student sees the message where the
    figure would be; ipywidgets' own handler prints outside it (only to Lab's log).
    """

    def call(**kwargs: Any) -> Any:
        plt = sys.modules.get("matplotlib.pyplot")
        before = set(plt.get_fignums()) if plt is not None else set()
        try:
            return fn(**kwargs)
        except Exception as e:  # shown to the student, who can change the controls
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                for num in set(plt.get_fignums()) - before:
                    plt.close(num)
            print(f"Error: {type(e).__name__}: {e}", file=sys.stderr)
            return None

    return call


def interact(fn: Callable[..., Any], /, **specs: Any) -> Any:
    """Controls for ``fn``'s arguments in JupyterLab; headless: ``fn(**initial values)``.

    ``specs`` values may be :class:`LogSlider`, :class:`Choice`, :class:`MultiChoice`,
    :class:`Fixed` (or ``ipywidgets.fixed``), a list (dropdown), a ``(min, max[, step])``
    tuple (slider) or a plain value. Both modes start from :func:`initial_values`; only
    the named arguments get controls (the others keep ``fn``'s defaults). Displays an
    ``ipywidgets.interactive`` box and returns None; headless, returns ``fn``'s result.
    """
    values = initial_values(fn, specs)
    if not widgets_enabled():
        return fn(**values)
    import ipywidgets
    from IPython.display import display

    controls = {k: _widget(k, spec, values[k]) for k, spec in specs.items()}
    box = ipywidgets.interactive(_shows_errors(fn), **controls)
    if any(isinstance(spec, MultiChoice) for spec in specs.values()):
        *inputs, output = box.children
        hint = ipywidgets.HTML(f"<small>{MULTI_SELECT_HINT}</small>")
        box.children = (*inputs, hint, output)
    display(box)  # ipywidgets.interactive has already called fn once, with the initial values
    return None  # not the box: a cell ending in ``interact(...)`` would show it twice


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    """A progress bar over ``iterable`` in JupyterLab; the iterable itself in headless runs.

    Interactive sessions get ``tqdm.auto`` (a live bar that ends at 100%, kept when done).
    Headless runs (papermill, nbval, ``make run``/``make test``: ``$TLHELPERS_WIDGETS`` is
    0) get no bar at all, so executed copies and the book never show a bar frozen at 0%
    (a widget bar is saved as its first state). ``total`` is the length when ``iterable``
    has none.
    """
    if not isinstance(desc, str):
        raise TypeError(f"desc must be a string, got {type(desc).__name__}.")
    if total is not None and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
        raise ValueError(f"total must be None or a non-negative integer, got {total!r}.")
    if not widgets_enabled():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc or None, total=total)
