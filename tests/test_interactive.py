"""Widgets: real ipywidgets in JupyterLab, one plain call with the initial values headless."""

from __future__ import annotations

import ipywidgets
import pytest

from tlhelpers.interactive import (
    WIDGETS_ENV,
    Choice,
    Fixed,
    LogSlider,
    MultiChoice,
    initial_value,
    interact,
    widgets_enabled,
)


def _record(**kwargs):
    return kwargs


def test_headless_calls_once_with_initial_values(monkeypatch):
    monkeypatch.setenv(WIDGETS_ENV, "0")
    assert not widgets_enabled()
    out = interact(
        _record,
        a=LogSlider(value=0.1), b=Choice(["x", "y"]), c=Choice(["x", "y"], value="y"),
        d=MultiChoice(["p", "q"]), e=MultiChoice(["p", "q"], value=("q",)), f=Fixed([1, 2]),
        g=ipywidgets.fixed("z"), h=["u", "v"], i=(0, 15), j=(0.0, 1.0), k=7,
    )  # fmt: skip
    assert out == {
        "a": 0.1, "b": "x", "c": "y", "d": ("p", "q"), "e": ("q",), "f": [1, 2],
        "g": "z", "h": "u", "i": 7, "j": 0.5, "k": 7,
    }  # fmt: skip


def test_int_tuple_initial_value_matches_ipywidgets():
    for spec in [(0, 15), (0, 10), (2, 9), (0, 20, 5)]:
        w = ipywidgets.interactive(lambda v: v, v=spec)
        assert initial_value(spec) == w.children[0].value, spec


def test_enabled_builds_the_real_widgets(monkeypatch):
    monkeypatch.delenv(WIDGETS_ENV, raising=False)
    assert widgets_enabled()
    seen = {}

    def fake_interact(fn, **kwargs):
        seen.update(kwargs)
        return fn

    monkeypatch.setattr(ipywidgets, "interact", fake_interact)
    interact(_record, a=LogSlider(value=0.1, min=-2, max=1), b=Choice(["x", "y"]),
             c=MultiChoice(["p", "q"]), d=Fixed(3), e=["u"])  # fmt: skip
    assert isinstance(seen["a"], ipywidgets.FloatLogSlider) and seen["a"].value == pytest.approx(0.1)
    assert (seen["a"].min, seen["a"].max) == (-2, 1)
    assert isinstance(seen["b"], ipywidgets.Dropdown) and seen["b"].value == "x"
    assert isinstance(seen["c"], ipywidgets.SelectMultiple) and seen["c"].value == ("p", "q")
    assert isinstance(seen["d"], ipywidgets.fixed) and seen["d"].value == 3
    assert seen["e"] == ["u"]
