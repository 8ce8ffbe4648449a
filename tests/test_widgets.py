"""The notebooks' demo callbacks (tlhelpers.widgets): what each one draws and prints."""

from __future__ import annotations

import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from tlhelpers.widgets import (  # noqa: E402
    make_curves_demo,
    make_l2sp_demo,
    normalization_demo,
    ranking_demo,
)


@pytest.fixture(autouse=True)
def _close_figures():
    plt.close("all")
    yield
    plt.close("all")


def test_normalization_demo_draws_the_normalised_inputs(capsys):
    x = torch.rand(4, 1, 10, 10, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    normalization_demo(x, "target", size=16, index=1)
    ax_img, ax_hist = plt.gcf().axes[:2]
    assert ax_img.images[0].get_array().shape == (16, 16, 3)
    assert ax_hist.get_title() == "normalization = 'target'"
    means = capsys.readouterr().out
    # own statistics -> mean about 0 (the resize to 16 px shifts it by a little, e.g. 0.01)
    printed = re.search(r"per-channel mean \[([^\]]*)\]", means).group(1).split()
    assert len(printed) == 3 and all(abs(float(v)) <= 0.03 for v in printed), means
    plt.close("all")
    normalization_demo(torch.full((2, 1, 10, 10), 0.5), "none", size=16)
    assert "per-channel mean [0.5 0.5 0.5]" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Valid values"):
        normalization_demo(x, "z-score")
    with pytest.raises(ValueError, match="only 4"):
        normalization_demo(x, "none", index=4)


TABLE = [
    {"target": "t1", "model": "a", "logme": 1.0, "leep": -0.5, "fine_tuned": 0.9},
    {"target": "t1", "model": "b", "logme": 0.5, "leep": -0.2, "fine_tuned": 0.8},
    {"target": "t1", "model": "c", "logme": 0.1, "leep": -0.9, "fine_tuned": 0.6},
    {"target": "t2", "model": "a", "logme": 0.3, "leep": -0.1, "fine_tuned": 0.7},
]


def test_ranking_demo_orders_models_and_reports_agreement(capsys):
    ranking_demo(TABLE, "t1", "logme")
    assert "LogME picks 'a'; best fine-tuned: 'a' (agree)" in capsys.readouterr().out
    bars, scatter = plt.gcf().axes[:2]
    y_of = {t.get_text(): y for t, y in zip(bars.get_yticklabels(), bars.get_yticks(), strict=True)}
    assert sorted(y_of, key=y_of.get, reverse=True) == ["a", "b", "c"]  # best score on top
    assert "Kendall tau = 1.00 over 3 models" in scatter.get_title()
    plt.close("all")
    ranking_demo(TABLE, "t1", "leep")
    assert "LEEP picks 'b'; best fine-tuned: 'a' (disagree)" in capsys.readouterr().out


def test_ranking_demo_validates():
    with pytest.raises(ValueError, match="Valid values: t1, t2"):
        ranking_demo(TABLE, "t3", "logme")
    with pytest.raises(ValueError, match="Valid values"):
        ranking_demo(TABLE, "t1", "h_score")


def test_l2sp_demo_caches_and_plots_every_alpha(source, data):
    demo = make_l2sp_demo(source, data, data, steps=2)
    demo(0.1)
    assert len(demo.cache) == 1
    left, right = plt.gcf().axes[0], plt.gcf().axes[1]
    assert left.get_title() == "alpha = 0.1"
    assert len(left.lines[0].get_ydata()) == 2  # one task-loss point per step
    demo(0.1)
    assert len(demo.cache) == 1  # cached, not retrained
    demo(0.0)
    assert len(demo.cache) == 2
    acc, dist, hist = demo.cache[0.1]
    assert 0 <= acc <= 1 and dist > 0 and "train/l2sp" in hist.keys()
    xs = plt.gcf().axes[1].lines[0].get_xdata()
    assert np.allclose(sorted(xs), sorted([demo.cache[0.0][1], dist]))  # every alpha tried
    assert right is not None
    with pytest.raises(ValueError):
        demo(-1.0)


def test_l2sp_demo_titles_and_labels_are_rounded(source, data):
    demo = make_l2sp_demo(source, data, data, steps=2)
    demo(10**-0.5)  # a log slider's value: 0.316227766...
    left, right = plt.gcf().axes[:2]
    assert left.get_title() == "alpha = 0.316"
    assert [t.get_text() for t in right.texts] == ["0.316"]
    # one legend for the three curves of both y axes (two legends covered the curves)
    legends = [ax.get_legend() for ax in plt.gcf().axes if ax.get_legend() is not None]
    assert len(legends) == 1 and len(legends[0].get_texts()) == 3


def test_l2sp_demo_with_a_recipe_on_validation(source, data):
    from tlhelpers.recipes import get_recipe

    demo = make_l2sp_demo(source, data, data, steps=3, recipe=get_recipe("fine_tune"),
                          eval_name="validation")  # fmt: skip
    demo(0.1)
    _, _, hist = demo.cache[0.1]
    assert len(hist) == 3
    assert "validation accuracy" in [ax.get_ylabel() for ax in plt.gcf().axes]


def test_curves_demo_draws_raw_and_relative_curves():
    curves = {"a": {1: [0.5, 0.6], 5: [0.7, 0.8]}, "b": {1: [0.4, 0.5], 5: [0.8, 0.9]}}
    demo = make_curves_demo(curves)
    demo(["a", "b"], "")
    ax = plt.gcf().axes[0]
    assert ax.get_ylabel() == "test accuracy"
    means = {
        line.get_label(): list(line.get_ydata()) for line in ax.lines if line.get_label() in curves
    }
    assert means["a"] == pytest.approx([0.55, 0.75]) and means["b"] == pytest.approx([0.45, 0.85])
    plt.close("all")
    demo(["a"], "b")
    ax = plt.gcf().axes[0]
    assert ax.get_ylabel() == "accuracy - b"
    rel = next(line for line in ax.lines if line.get_label() == "a")
    assert list(rel.get_ydata()) == pytest.approx([0.1, -0.1])  # paired differences
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "5"]  # not only 10^0
    with pytest.raises(ValueError, match="'a'"):
        demo(["c"], "")
