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
    initial_values,
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


def _live(monkeypatch, fn, **specs):
    """Run ``interact`` with widgets on; return the displayed ``ipywidgets.interactive`` box."""
    import IPython.display

    monkeypatch.delenv(WIDGETS_ENV, raising=False)
    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda *objs: shown.extend(objs))
    assert interact(fn, **specs) is None
    (box,) = shown
    return box


def test_enabled_builds_the_real_widgets(monkeypatch):
    box = _live(monkeypatch, _record, a=LogSlider(value=0.1, min=-2, max=1),
                b=Choice(["x", "y"]), c=MultiChoice(["p", "q"]), d=Fixed(3), e=["u"])  # fmt: skip
    a, b, c, e = (w for w in box.kwargs_widgets if isinstance(w, ipywidgets.DOMWidget))
    assert isinstance(a, ipywidgets.FloatLogSlider) and a.value == pytest.approx(0.1)
    assert (a.min, a.max) == (-2, 1)
    assert isinstance(b, ipywidgets.Dropdown) and b.value == "x"
    assert isinstance(c, ipywidgets.SelectMultiple) and c.value == ("p", "q")
    assert isinstance(e, ipywidgets.Dropdown) and e.value == "u"
    assert box.result == {"a": pytest.approx(0.1), "b": "x", "c": ("p", "q"), "d": 3, "e": "u"}
    # labels in full, and a hint under the multi-select
    assert all(w.style.description_width == "initial" for w in (a, b, c, e))
    assert [w.description for w in (a, b, c, e)] == ["a", "b", "c", "e"]
    hints = [w.value for w in box.children if isinstance(w, ipywidgets.HTML)]
    assert hints and "Ctrl-click" in hints[0] and "Shift-click" in hints[0]
    assert box.children[-1] is box.out  # the output stays last, under the controls
    b.value = "y"  # a change calls the function again
    assert box.result["b"] == "y"


def _demo(images, normalization="imagenet", size=64, index=0):
    return {"normalization": normalization, "size": size, "index": index}


DEMO_SPECS = {"images": Fixed([0] * 16), "normalization": ["imagenet", "target", "none"],
              "size": [32, 64, 96], "index": (0, 15)}  # fmt: skip


def test_headless_and_live_start_from_the_same_values(monkeypatch):
    """Notebook 01's cell: headless gave size 32, index 7; Lab showed size 64, index 0."""
    monkeypatch.setenv(WIDGETS_ENV, "0")
    headless = interact(_demo, **DEMO_SPECS)
    live = _live(monkeypatch, _demo, **DEMO_SPECS)
    shown = {w.description: w.value for w in live.kwargs_widgets
             if isinstance(w, ipywidgets.DOMWidget)}  # fmt: skip
    assert headless == live.result == shown
    # the oracle: what plain ipywidgets starts from for the same abbreviations
    plain = ipywidgets.interactive(_demo, **{**DEMO_SPECS, "images": ipywidgets.fixed([0])})
    assert headless == {w._kwarg: w.value for w in plain.kwargs_widgets if w._kwarg != "images"}
    assert headless == {"normalization": "imagenet", "size": 64, "index": 0}
    assert initial_values(_demo, DEMO_SPECS)["size"] == 64


def test_function_defaults_only_when_the_spec_allows_them():
    assert initial_value([32, 64], default=96) == 32  # not an option
    assert initial_value((0, 15), default=20) == 7  # outside the range
    assert initial_value((0, 15), default=0.5) == 7  # not an int
    assert initial_value((0.0, 1.0), default=0.25) == 0.25
    assert initial_value(Choice(["x", "y"]), default="y") == "y"
    assert initial_value(Choice(["x", "y"], value="x"), default="y") == "x"  # explicit wins
    assert initial_value(MultiChoice(["p", "q"]), default=("q",)) == ("q",)
    assert initial_value(MultiChoice(["p", "q"]), default=("r",)) == ("p", "q")
    assert initial_value(LogSlider(value=0.1), default=1.0) == 0.1


def _fails(index=0):
    import matplotlib.pyplot as plt

    plt.figure()  # half-drawn when the error comes
    if index > 3:
        raise ValueError(f"index={index} but there are only 4 images.")
    print(f"drew image {index}")


def test_a_raising_callback_shows_its_message(monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.close("all")
    box = _live(monkeypatch, _fails, index=(0, 15))
    slider = box.kwargs_widgets[0]
    assert slider.value == 0 and "drew image 0" in capsys.readouterr().out
    plt.close("all")
    slider.value = 9
    err = capsys.readouterr().err
    assert "Error: ValueError: index=9 but there are only 4 images." in err
    assert plt.get_fignums() == []  # no blank figure left to show
    monkeypatch.setenv(WIDGETS_ENV, "0")
    with pytest.raises(ValueError, match="only 4"):  # headless runs still fail loudly
        interact(_fails, index=(9, 15))


def test_no_widget_for_a_value_is_refused_by_name(monkeypatch):
    with pytest.raises(ValueError, match=r"images=.*no widget"):
        _live(monkeypatch, _demo, images=object())


def _rank(score="logme"):
    return score


def test_choice_labels_show_words_and_pass_keys(monkeypatch):
    """Notebook 02's score dropdown: the student reads "LogME", the callback gets "logme"."""
    labels = {"logme": "LogME", "h_score_shrinkage": "H-score (shrinkage)"}
    spec = Choice(["h_score_shrinkage", "logme", "probe"], labels=labels)
    monkeypatch.setenv(WIDGETS_ENV, "0")
    headless = interact(_rank, score=spec)
    live = _live(monkeypatch, _rank, score=spec)
    (w,) = (w for w in live.kwargs_widgets if isinstance(w, ipywidgets.Dropdown))
    assert headless == live.result == w.value == "logme"  # the function's default, a key
    assert w.label == "LogME"
    # keys without a label show as themselves
    assert list(w.options) == [
        ("H-score (shrinkage)", "h_score_shrinkage"),
        ("LogME", "logme"),
        ("probe", "probe"),
    ]
    w.value = "h_score_shrinkage"
    assert live.result == "h_score_shrinkage" and w.label == "H-score (shrinkage)"
    assert initial_value(Choice(["a", "b"], labels={"b": "B"})) == "a"


def test_choice_labels_must_name_options():
    with pytest.raises(ValueError, match=r"labels.*'lgome'.*Valid values: 'logme'"):
        Choice(["logme"], labels={"lgome": "LogME"})


def test_progress_is_the_plain_iterable_headless_and_a_bar_in_lab(monkeypatch):
    from tlhelpers.interactive import WIDGETS_ENV, progress

    items = [1, 2, 3]
    monkeypatch.setenv(WIDGETS_ENV, "0")
    assert (
        progress(items, desc="seeds") is items
    )  # no bar at all: nothing frozen in executed copies
    monkeypatch.setenv(WIDGETS_ENV, "1")
    bar = progress(items, desc="seeds")
    assert bar is not items and list(bar) == items
    with pytest.raises(ValueError, match="total"):
        progress(items, total=-1)
    with pytest.raises(TypeError, match="desc"):
        progress(items, desc=3)
