"""Metrics against scipy, and the shared plots draw what they claim."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # tests only; notebooks keep the inline backend

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from scipy import stats

from tlhelpers.metrics import accuracy, mean_ci
from tlhelpers.plots import (
    plot_bars,
    plot_history,
    plot_learning_curves,
    readable_log_axis,
    show_filters,
    show_images,
)
from tlhelpers.training import History


def test_accuracy_from_logits_and_labels():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    y = torch.tensor([0, 1, 1])
    assert accuracy(logits, y) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([0, 1, 1]), y) == 1.0
    with pytest.raises(ValueError, match="do not match"):
        accuracy(torch.tensor([0, 1]), y)


def test_mean_ci_matches_scipy_t_interval():
    v = [0.81, 0.84, 0.79, 0.9, 0.86]
    m, h = mean_ci(v, 0.95)
    lo, hi = stats.t.interval(0.95, len(v) - 1, loc=np.mean(v), scale=stats.sem(v))
    assert m == pytest.approx(np.mean(v))
    assert (m - h, m + h) == pytest.approx((lo, hi))
    assert mean_ci([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        mean_ci([])


def test_plots_draw_one_line_per_term_and_method():
    h = History()
    for e in range(3):
        h.append({"train/total": 1.0 / (e + 1), "train/task": 0.5, "time": e})
    ax = plot_history(h)
    assert [ln.get_label() for ln in ax.get_lines()] == ["train/total", "train/task"]
    ax = plot_learning_curves({"a": {1: [0.5, 0.6], 5: [0.7, 0.8]}, "b": {1: [0.4], 5: [0.9]}})
    assert len(ax.get_lines()) == 2
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [0.55, 0.75])
    # a log axis marks each measured x, not only the powers of ten
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "5"]
    assert ax.xaxis.get_minor_ticks() == []
    ax = plot_bars({"x": [0.1, 0.2], "y": [0.3, 0.5]})
    assert len(ax.patches) == 2
    fig = show_images(torch.rand(3, 1, 8, 8), torch.tensor([0, 1, 0]), ["a", "b"], n=3)
    assert [a.get_title() for a in fig.axes[:3]] == ["a", "b", "a"]
    plt.close("all")


def test_show_filters_draws_each_filter_rescaled_to_0_1():
    g = torch.Generator().manual_seed(0)
    rgb = torch.randn(5, 3, 3, 3, generator=g)  # 5 RGB filters
    fig = show_filters(rgb, n=4, ncols=2)
    shown = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert len(shown) == 4
    for i, img in enumerate(shown):
        w = rgb[i].numpy()
        expected = ((w - w.min()) / (w.max() - w.min())).transpose(1, 2, 0)
        np.testing.assert_allclose(np.asarray(img), expected, rtol=1e-6)
    plt.close(fig)
    grey = torch.randn(3, 1, 4, 4, generator=g)
    fig = show_filters(grey, titles=["a", "b", "c"])
    imgs = [ax.get_images()[0].get_array() for ax in fig.axes if ax.get_images()]
    assert np.asarray(imgs[1]).shape == (4, 4)
    assert [ax.get_title() for ax in fig.axes if ax.get_images()] == ["a", "b", "c"]
    constant = torch.ones(1, 1, 3, 3)  # no range: shown as mid-grey, not NaN
    fig = show_filters(constant)
    np.testing.assert_allclose(np.asarray(fig.axes[0].get_images()[0].get_array()), 0.5)
    plt.close("all")


def test_show_filters_refuses_bad_shapes():
    with pytest.raises(ValueError, match="4-D"):
        show_filters(torch.rand(3, 4, 4))
    with pytest.raises(ValueError, match="titles"):
        show_filters(torch.rand(3, 1, 4, 4), titles=["a"])


def test_readable_log_axis_labels_plain_numbers():
    for (lo, hi), major, minor in [
        ((0.65, 1.7), {"1"}, {"0.7", "0.8", "0.9"}),  # narrow: matplotlib printed 6x10^-1, 10^0
        ((0.5, 50), {"1", "10"}, {"2", "5", "20"}),
        ((0.01, 1000), {"0.01", "0.1", "1", "10", "100", "1000"}, set()),
    ]:
        fig, ax = plt.subplots()
        ax.plot([lo, hi], [0, 1])
        ax.set_xscale("log")
        readable_log_axis(ax)
        fig.canvas.draw()
        labels = {t.get_text() for t in ax.get_xticklabels() if t.get_text()}
        minors = {t.get_text() for t in ax.get_xticklabels(minor=True) if t.get_text()}
        assert major <= labels and minor <= minors, (lo, hi, labels, minors)
        assert not any("10^" in t or "times" in t or "e-" in t for t in labels | minors)
        if not minor:
            assert minors == set()
        plt.close(fig)


# --- the course style: legible on a phone, one colour per model ---------------------------------

PHONE_COLUMN_PX = 360  # a 390-pixel phone screen less the page margins


def test_course_style_fonts_survive_a_phone_column():
    from tlhelpers.plots import COURSE_STYLE, use_course_style

    before = matplotlib.rcParams["font.size"]
    with matplotlib.rc_context():
        use_course_style()
        rc = matplotlib.rcParams
        width_px = rc["figure.figsize"][0] * rc["figure.dpi"]
        scale = PHONE_COLUMN_PX / width_px  # the figure shown at the column's width
        for key in ("font.size", "axes.labelsize", "xtick.labelsize", "legend.fontsize"):
            size_pt = matplotlib.font_manager.FontProperties(size=rc[key]).get_size_in_points()
            assert size_pt * rc["figure.dpi"] / 72 * scale >= 9, key  # pixels on the phone
        assert rc["font.size"] == COURSE_STYLE["font.size"]
        colours = [c["color"] for c in rc["axes.prop_cycle"]]
        assert colours[:3] == ["#0072B2", "#E69F00", "#009E73"]
    assert matplotlib.rcParams["font.size"] == before  # rc_context undid it: other tests unaffected


def test_colour_of_is_stable_and_colours_for_are_distinct():
    from matplotlib.colors import is_color_like

    from tlhelpers.plots import PALETTE, colour_of, colours_for

    names = ["resnet18", "mobilenet_v2", "efficientnet_b0", "vit_tiny", "scratch CNN"]
    assert all(is_color_like(colour_of(n)) and colour_of(n) in PALETTE for n in names)
    assert [colour_of(n) for n in names] == [colour_of(n) for n in names]
    got = colours_for(names)
    assert list(got) == names and len(set(got.values())) == len(names)
    assert colours_for(list(reversed(names))) == got  # order of the panel does not matter
    assert colours_for(names[:2])[names[0]] in PALETTE
    with pytest.raises(ValueError, match="name"):
        colour_of("")
    with pytest.raises(ValueError, match="at most 10"):
        colours_for([f"m{i}" for i in range(11)])
