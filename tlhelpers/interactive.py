"""Widgets that also run headless: ``interact`` and lazy widget specs (every notebook's demo).

In JupyterLab, :func:`interact` is ``ipywidgets.interact``. In headless runs
(papermill, nbval, ``make run``/``make test``, which set ``TLHELPERS_WIDGETS=0``)
it calls the function once with the initial values and creates no widget at
all: widget comm traffic in headless kernels intermittently hung cell
execution (measured with ipykernel 7.4 / nbclient 0.11: the kernel idle, the
client waiting on an ``interact`` cell). The same pattern as Neuromatch's CI.

Widgets are described lazily (:class:`LogSlider`, :class:`Choice`,
:class:`MultiChoice`) so that nothing is built unless it will be shown.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Set to 0/false/no/off to run ``interact`` without widgets.
WIDGETS_ENV = "TLHELPERS_WIDGETS"


def widgets_enabled() -> bool:
    """False when ``$TLHELPERS_WIDGETS`` is 0/false/no/off (headless runs)."""
    return os.environ.get(WIDGETS_ENV, "1").strip().lower() not in {"0", "false", "no", "off"}


@dataclass(frozen=True)
class LogSlider:
    """A ``FloatLogSlider`` with ``value`` and exponents ``min``..``max`` (base ``base``)."""

    value: float
    min: float = -3.0
    max: float = 3.0
    step: float = 0.5
    base: float = 10.0
    description: str | None = None

    def initial(self) -> float:
        return self.value

    def widget(self, name: str):
        from ipywidgets import FloatLogSlider

        return FloatLogSlider(value=self.value, min=self.min, max=self.max, step=self.step,
                              base=self.base, description=self.description or name)


@dataclass(frozen=True)
class Choice:
    """A ``Dropdown`` over ``options`` starting at ``value`` (default: the first option)."""

    options: Sequence[Any]
    value: Any = None
    description: str | None = None

    def initial(self) -> Any:
        return self.options[0] if self.value is None else self.value

    def widget(self, name: str):
        from ipywidgets import Dropdown

        return Dropdown(options=list(self.options), value=self.initial(),
                        description=self.description or name)


@dataclass(frozen=True)
class MultiChoice:
    """A ``SelectMultiple`` over ``options`` starting at ``value`` (default: all)."""

    options: Sequence[Any]
    value: Sequence[Any] = field(default=())
    description: str | None = None

    def initial(self) -> tuple:
        return tuple(self.value) if self.value else tuple(self.options)

    def widget(self, name: str):
        from ipywidgets import SelectMultiple

        return SelectMultiple(options=list(self.options), value=self.initial(),
                              description=self.description or name)


@dataclass(frozen=True)
class Fixed:
    """A value passed through unchanged (like ``ipywidgets.fixed``)."""

    value: Any

    def initial(self) -> Any:
        return self.value


_SPECS = (LogSlider, Choice, MultiChoice)


def initial_value(spec: Any) -> Any:
    """The value ``interact`` would start with for ``spec`` (a spec, a fixed or a plain value)."""
    if isinstance(spec, (*_SPECS, Fixed)):
        return spec.initial()
    try:
        from ipywidgets import fixed

        if isinstance(spec, fixed):
            return spec.value
    except ImportError:  # pragma: no cover - ipywidgets is a dependency
        pass
    if isinstance(spec, list) and spec:
        return spec[0]  # a list abbreviates a dropdown starting at its first item
    if isinstance(spec, tuple) and len(spec) in (2, 3) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec
    ):
        lo, hi = spec[0], spec[1]  # (min, max[, step]) abbreviates a slider
        if all(isinstance(v, int) for v in spec):
            step = spec[2] if len(spec) == 3 else 1
            return lo + ((hi - lo) // 2 // step) * step
        return (lo + hi) / 2
    return spec


def interact(fn: Callable[..., Any], /, **specs: Any) -> Any:
    """``ipywidgets.interact(fn, ...)`` with lazy specs; headless: ``fn(**initial values)``.

    ``specs`` values may be :class:`LogSlider`, :class:`Choice`, :class:`MultiChoice`,
    :class:`Fixed` (or ``ipywidgets.fixed``), a list (dropdown) or a plain value.
    Returns what ``ipywidgets.interact`` returns, or ``fn``'s result when headless.
    """
    if not widgets_enabled():
        return fn(**{k: initial_value(v) for k, v in specs.items()})
    import ipywidgets

    kwargs = {}
    for k, v in specs.items():
        if isinstance(v, _SPECS):
            kwargs[k] = v.widget(k)
        elif isinstance(v, Fixed):
            kwargs[k] = ipywidgets.fixed(v.value)
        else:
            kwargs[k] = v
    return ipywidgets.interact(fn, **kwargs)
