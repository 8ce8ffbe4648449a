"""Yosinski et al.'s layer-transfer experiment: networks, conditions, live-vs-stored, the stored grid."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from tlhelpers import layer_transfer as lt
from tlhelpers.data import TensorImageDataset
from tlhelpers.models import scratch_model

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = lt.LayerTransferRecipe(per_class=4, steps=3, width=4)


def _data(n=30, seed=0, classes=5):
    g = torch.Generator().manual_seed(seed)
    return TensorImageDataset(
        torch.rand(n, 1, 12, 12, generator=g), torch.arange(n) % classes, list("abcde")[:classes]
    )


def _state(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_transferred_model_copies_the_first_n_blocks_and_keeps_the_rest_fresh(n):
    source = scratch_model(5, width=4, seed=99)
    before = _state(source)
    net = lt.transferred_model(source, n, 3, init_seed=7, width=4)
    fresh = scratch_model(3, width=4, seed=7)
    for i in range(1, 4):
        got = _state(getattr(net.body[0], f"block{i}"))
        want = getattr((source if i <= n else fresh).body[0], f"block{i}")
        assert _same(got, _state(want)), f"block{i}"
    assert _same(_state(net.head), _state(fresh.head))
    assert _same(_state(source), before)  # source untouched
    assert net.body[0].block1[0].weight.data_ptr() != source.body[0].block1[0].weight.data_ptr()


@pytest.mark.parametrize("condition", ["AnB", "BnB+"])
def test_frozen_conditions_keep_the_copied_blocks_and_plus_conditions_train_them(condition):
    source = scratch_model(5, width=4, seed=1)
    train = _data()
    net = lt.train_condition(condition, 2, source, train, seed=0, recipe=TINY)
    copied = [_same(_state(getattr(net.body[0], f"block{i}")),
                    _state(getattr(source.body[0], f"block{i}"))) for i in (1, 2)]  # fmt: skip
    fresh3 = _state(scratch_model(5, width=4, seed=lt._init_seed(0, "transfer")).body[0].block3)
    assert not _same(_state(net.body[0].block3), fresh3)  # the upper block was trained
    if condition == "AnB":
        assert copied == [True, True]  # frozen, BatchNorm statistics included
    else:
        assert copied == [False, False]


def test_run_point_trains_only_what_the_conditions_need_and_repeats(monkeypatch):
    calls = []
    real = lt.train_base

    def spy(train, seed, recipe=lt.RECIPE, role="B"):
        calls.append(role)
        return real(train, seed, recipe, role)

    monkeypatch.setattr(lt, "train_base", spy)
    out = lt.run_point("semantic", 0, recipe=TINY, conditions=["AnB", "AnB+"], cuts=[3])
    assert calls == ["A"]
    assert set(out) == {"baseA", "AnB_3", "AnB+_3"}
    assert all(0 <= v <= 1 for v in out.values())
    again = lt.run_point("semantic", 0, recipe=TINY, conditions=["AnB", "AnB+"], cuts=[3])
    assert again == out  # same seed, same numbers


def test_run_point_runs_on_one_thread_whatever_the_policy_and_restores_the_count(monkeypatch):
    # The stored grid ran one thread per point; two threads change float sums, and the live
    # slice of notebook 05a then misses the stored values at shared seeds (seen: quiet
    # machine, adaptive policy -> 2 threads -> the check failed).
    seen = []
    real = lt.train_base

    def spy(train, seed, recipe=lt.RECIPE, role="B"):
        seen.append(torch.get_num_threads())
        return real(train, seed, recipe, role)

    monkeypatch.setattr(lt, "train_base", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        lt.run_point("semantic", 0, recipe=TINY, conditions=["AnB"], cuts=[3])
        assert seen == [lt.THREADS] == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_run_point_and_recipe_refuse_bad_arguments():
    with pytest.raises(ValueError, match="split"):
        lt.run_point("diagonal", 0, recipe=TINY)
    with pytest.raises(ValueError, match="conditions"):
        lt.run_point("random", 0, recipe=TINY, conditions=["AnC"])
    with pytest.raises(ValueError, match="cuts"):
        lt.run_point("random", 0, recipe=TINY, cuts=[4])
    with pytest.raises(ValueError, match="steps"):
        lt.LayerTransferRecipe(steps=0)
    with pytest.raises(ValueError, match="recipe"):
        lt.LayerTransferRecipe(train_recipe="nope")
    assert lt.key("AnB+", 2) == "AnB+_2" and lt.key("baseB") == "baseB"


def test_agreement_is_welchs_interval():
    live, stored = [0.81, 0.84, 0.79], [0.83, 0.85, 0.80, 0.86, 0.82]
    a = lt.agreement(live, stored, "x")
    ci = stats.ttest_ind(live, stored, equal_var=False).confidence_interval(0.95)
    assert (a.ci_low, a.ci_high) == pytest.approx((ci.low, ci.high))
    assert a.agrees and "agrees" in str(a)
    far = lt.agreement([0.5, 0.51, 0.52], stored, "y")
    assert not far.agrees
    with pytest.raises(lt.DisagreementError, match="layer_transfer build"):
        lt.check_agreement([a, far])
    lt.check_agreement([a])
    point = lt.agreement([0.5, 0.5], [0.5, 0.5])
    assert (point.ci_low, point.ci_high) == (0.0, 0.0) and point.agrees
    with pytest.raises(ValueError, match=">= 2"):
        lt.agreement([0.5], stored)


def test_fixed_sentence_prints_three_decimals_whatever_the_size():
    from tlhelpers.stats import compare

    c = compare([0.90004, 0.90001, 0.9], [0.9, 0.9, 0.9], name_a="x", name_b="y", metric="acc")
    text = lt.fixed_sentence(c, width=3)
    assert text.startswith("x   vs y (acc, 3 paired seeds): +0.000 (95% CI ")
    assert "e-0" not in text and text.endswith(c.verdict + ".")
    assert "+0.050" in lt.fixed_sentence(compare([0.95, 0.96], [0.9, 0.91]))


def test_seed_match_is_exact_on_the_same_platform_and_by_meaning_elsewhere():
    stored = {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.79, 4: 0.83}  # seed SD 0.0158
    sd = float(np.std(list(stored.values()), ddof=1))
    same = lt.seed_match({0: 0.80, 2: 0.81}, stored, name="AnB_3", exact=True)
    assert same.agrees and same.seeds == (0, 2) and "reproduce" in str(same)
    off = lt.seed_match({0: 0.8002, 2: 0.81}, stored, name="AnB_3", exact=True)
    assert not off.agrees and "DIFFER" in str(off)  # one test image off: not exact
    # another platform: a shift of a fraction of the seed SD is the same result ...
    near = {0: 0.80 + 0.3 * sd, 1: 0.82 - 0.2 * sd, 2: 0.81 + 0.1 * sd}
    other = lt.seed_match(near, stored, name="AnB_3", exact=False, margin_sd=1.5)
    assert other.agrees and "equivalent" in str(other) and other.margin == pytest.approx(1.5 * sd)
    t = stats.ttest_rel(list(near.values()), [stored[s] for s in near]).confidence_interval(0.90)
    assert (other.test.ci_low, other.test.ci_high) == pytest.approx((t.low, t.high))
    # ... a shift of several SDs is not
    far = lt.seed_match({s: v + 3 * sd for s, v in stored.items() if s < 3}, stored, name="x", exact=False,
                        margin_sd=1.5)  # fmt: skip
    assert not far.agrees and "NOT equivalent" in str(far)
    assert far.to_dict()["agrees"] is False and far.to_dict()["margin"] == pytest.approx(1.5 * sd)
    with pytest.raises(ValueError, match="live"):
        lt.seed_match({7: 0.8}, stored, name="x", exact=True)
    with pytest.raises(ValueError, match="margin_sd"):
        lt.seed_match({0: 0.8}, stored, name="x", exact=False, margin_sd=-1.0)


def _meta(**changes):
    """The shipped grid's grid.json with ``changes`` applied."""
    meta = json.loads(json.dumps(lt.load_stored_grid().meta))
    meta.update(changes)
    return meta


def test_disagreement_message_names_what_differs_and_proposes_a_rebuild_only_for_recipe_or_code():
    stored = {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.79, 4: 0.83}
    bad = lt.seed_match({0: 0.70, 1: 0.70, 2: 0.70}, stored, name="AnB_3 (semantic)", exact=False)
    here = lt.live_platform()
    code = lt.code_version_now()
    elsewhere = {**here, "cpu": "Intel(R) Xeon(R) Platinum", "cpu_capability": "AVX2"}
    # another platform, same recipe and code: no rebuild
    with pytest.raises(lt.DisagreementError) as err:
        lt.check_agreement([bad], _meta(platform=elsewhere, code_version=code))
    msg = str(err.value)
    assert "platform: differs" in msg and "cpu_capability: 'AVX2' (stored)" in msg
    assert "recipe: the same" in msg and "code version: the same" in msg
    assert "do NOT rebuild" in msg and lt.BUILD_COMMAND not in msg
    # same platform, recipe and code: not reproducible here, no rebuild either
    with pytest.raises(lt.DisagreementError) as err:
        lt.check_agreement([bad], _meta(platform=here, code_version=code))
    assert "platform: the same" in str(err.value) and "not reproducible" in str(err.value)
    assert lt.BUILD_COMMAND not in str(err.value)
    # the code changed (e.g. a training recipe's rate in tlhelpers.recipes): rebuild
    with pytest.raises(lt.DisagreementError) as err:
        lt.check_agreement([bad], _meta(platform=here, code_version={"sha256": "0" * 64}))
    assert "code version: CHANGED" in str(err.value) and lt.BUILD_COMMAND in str(err.value)
    # the recipe hash changed: rebuild
    with pytest.raises(lt.DisagreementError) as err:
        lt.check_agreement([bad], _meta(platform=here, code_version=code, recipe_sha256="f" * 64))
    assert "recipe: CHANGED" in str(err.value) and lt.BUILD_COMMAND in str(err.value)
    lt.check_agreement([lt.seed_match({0: 0.80}, stored, exact=True)], _meta())  # nothing to report


def test_exact_setting_needs_the_same_fingerprint_and_code():
    here, code = lt.live_platform(), lt.code_version_now()
    assert lt.is_exact_setting({"platform": here, "code_version": code})
    assert not lt.is_exact_setting(
        {"platform": {**here, "cpu_capability": "DEFAULT"}, "code_version": code}
    )
    assert not lt.is_exact_setting({"platform": here, "code_version": {"sha256": "x"}})
    assert not lt.is_exact_setting({})  # an old grid without a fingerprint: checked by meaning


def test_the_inexact_reason_names_what_really_differs():
    here, code = lt.live_platform(), lt.code_version_now()
    elsewhere = {**here, "cpu_capability": "DEFAULT"}
    assert lt.inexact_reason({"platform": here, "code_version": code}) == ""
    assert lt.inexact_reason({"platform": elsewhere, "code_version": code}) == "another platform"
    changed = lt.inexact_reason({"platform": here, "code_version": {"sha256": "x"}})
    assert changed == "the code changed since the grid was built"
    both = lt.inexact_reason({"platform": elsewhere, "code_version": {"sha256": "x"}})
    assert both == "another platform and the code changed since the grid was built"
    stored = {0: 0.80, 1: 0.82, 2: 0.81}
    match = lt.seed_match({0: 0.80, 1: 0.82}, stored, name="AnB_3", exact=False, reason=changed)
    assert str(match).startswith("AnB_3: the code changed since the grid was built, so live values")
    assert "another platform" not in str(match)


def test_live_checks_match_stored_seeds_and_test_new_seeds_with_bonferroni():
    grid = lt.load_stored_grid()
    split, cells = "semantic", ("AnB_3", "AnB+_3")
    per_seed = grid.per_seed(split)
    shared = grid.seeds[:3]
    live = {k: per_seed[k][:3] for k in cells}  # the stored values themselves: they must agree
    checks = lt.live_checks(live, grid, split, shared)
    assert [type(c) for c in checks] == [lt.SeedMatch, lt.SeedMatch]
    assert all(c.agrees for c in checks) and checks[0].seeds == tuple(shared)
    reason = lt.inexact_reason(grid.meta)
    assert all(c.exact == (reason == "") for c in checks)
    if reason:
        assert reason in str(checks[0])
    # two new seeds per cell: one Welch interval each, Bonferroni over the two
    new = [max(grid.seeds) + 1, max(grid.seeds) + 2]
    mean = {k: float(np.mean(per_seed[k])) for k in cells}
    checks = lt.live_checks(
        {k: [mean[k] - 0.001, mean[k] + 0.001] for k in cells}, grid, split, new
    )
    assert [type(c) for c in checks] == [lt.Agreement, lt.Agreement]
    assert all(c.confidence == pytest.approx(1 - 0.05 / 2) and c.agrees for c in checks)
    assert lt.live_checks({"AnB_3": [0.5]}, grid, split, [new[0]]) == []  # one new seed: unchecked
    with pytest.raises(ValueError, match="split"):
        lt.live_checks(live, grid, "other", shared)
    with pytest.raises(ValueError, match="does not store"):
        lt.live_checks({"XnY_9": [0.5, 0.5, 0.5]}, grid, split, shared)
    with pytest.raises(ValueError, match="values for 3 seeds"):
        lt.live_checks({"AnB_3": [0.5]}, grid, split, shared)


def test_a_grid_from_another_platform_passes_and_an_other_recipe_is_refused(tmp_path):
    """The stored numbers perturbed by the measured cross-platform differences, fingerprint altered."""
    shipped = lt.load_stored_grid()
    variation = json.loads((lt.data_dir() / lt.STORE / lt.VARIATION_FILE).read_text())
    other = [r for r in variation["rows"] if not r["same_platform_as_grid"]]
    kernels = sorted({r["kernels"] for r in other})[0]
    shift = {
        (r["split"], r["cell"], r["seed"]): r["diff"] for r in other if r["kernels"] == kernels
    }
    rows = []
    for r in shipped.rows:
        name = lt.key(r["condition"], r["n"]) if r["condition"] != "baseA" else "baseA"
        rows.append(
            {**r, "accuracy": r["accuracy"] - shift.get((r["split"], name, r["seed"]), 0.0)}
        )
    elsewhere = {
        **lt.live_platform(),
        "cpu": "Intel(R) Xeon(R) Platinum 8375C",
        "cpu_capability": kernels,
    }
    folder = lt.store_grid(rows, shipped.meta["provenance"], tmp_path / "g", platform=elsewhere)
    grid = lt.load_stored_grid(folder)  # another platform is not an error
    assert not lt.is_exact_setting(grid.meta)
    checks = []
    for split in lt.SPLITS:
        for cond in lt.SLICE_CONDITIONS:
            live = dict(
                zip(shipped.seeds, shipped.values(split, cond, 3), strict=True)
            )  # "computed here"
            stored = dict(zip(grid.seeds, grid.values(split, cond, 3), strict=True))
            for first in range(len(grid.seeds) - 2):
                window = {s: live[s] for s in grid.seeds[first : first + 3]}
                checks.append(
                    lt.seed_match(window, stored, name=f"{cond}_3 ({split})", exact=False)
                )
    assert any(c.max_abs_diff > 0 for c in checks)  # the values really differ
    lt.check_agreement(checks, grid.meta)
    for split in lt.SPLITS:  # the verdict the notebook teaches is the same
        from tlhelpers.stats import compare

        v = [
            compare(g.values(split, "AnB+", 3), g.values(split, "AnB", 3)).verdict
            for g in (shipped, grid)
        ]
        assert v[0] == v[1]
    # a grid whose recipe changed (another training recipe: another rate) is refused, naming the field
    meta = json.loads((folder / "grid.json").read_text())
    meta["recipe"]["train_recipe"] = "fine_tune"
    (folder / "grid.json").write_text(json.dumps(meta))
    with pytest.raises(
        lt.StoredGridError, match="stale.*changed: train_recipe.*tlhelpers.layer_transfer build"
    ):
        lt.load_stored_grid(folder)


def test_the_margin_is_derived_from_the_recorded_cross_platform_variation():
    doc = json.loads((lt.data_dir() / lt.STORE / lt.VARIATION_FILE).read_text())
    other = [r for r in doc["rows"] if not r["same_platform_as_grid"]]
    same = [r for r in doc["rows"] if r["same_platform_as_grid"]]
    assert (
        len({r["kernels"] for r in other}) >= 2 and len(other) >= 20
    )  # two other kernel sets, both splits
    assert same and all(
        abs(r["diff"]) <= lt.EXACT_TOL for r in same
    )  # the grid's own platform: exact
    bounds = [w["bound_in_sd"] for w in doc["windows"] if not w["same_platform_as_grid"]]
    assert doc["largest_interval_bound_in_sd"] == pytest.approx(max(bounds))
    assert lt.MARGIN_SD == doc["margin_sd"] >= doc["safety"] * max(bounds)
    assert doc["safety"] == lt.SAFETY > 1


def test_summarise_variation_measures_in_seed_sds(tmp_path):
    folder = lt.store_grid(_rows(), {"command": "test"}, tmp_path / "g")
    grid = lt.load_stored_grid(folder)
    sd = float(np.std(grid.values("random", "AnB", 3), ddof=1))
    run = {"platform": {**lt.live_platform(), "cpu_capability": "DEFAULT"}, "split": "random",
           "values": {"AnB_3": {0: grid.values("random", "AnB", 3)[0] + 0.5 * sd,
                                1: grid.values("random", "AnB", 3)[1] - 0.5 * sd}}}  # fmt: skip
    doc = lt.summarise_variation([run], grid, safety=2.0, window=2)
    assert [r["diff_in_sd"] for r in doc["rows"]] == pytest.approx([0.5, -0.5])
    t = stats.ttest_rel([0.5, -0.5], [0, 0]).confidence_interval(0.90)
    assert doc["largest_interval_bound_in_sd"] == pytest.approx(max(abs(t.low), abs(t.high)))
    assert doc["margin_sd"] == pytest.approx(np.ceil(20 * doc["largest_interval_bound_in_sd"]) / 10)


@pytest.mark.slow
def test_the_live_slice_on_a_second_kernel_set_agrees_with_the_stored_grid():
    """CI's second platform: notebook 05a's live check with torch on another kernel set.

    ``ATEN_CPU_CAPABILITY`` makes torch dispatch to other vectorised kernels (the grid was
    made with the machine's native set); the frozen cell AnB at n = 3 (one base network and
    a head per seed) over 3 stored seeds keeps it to about 20 s.
    """
    import torch

    native = str(torch.backends.cpu.get_cpu_capability()).lower()
    other = next((c for c in ("default", "avx2") if c != native), None)
    if native == "default" or other is None:
        pytest.skip(f"torch offers no other kernel set on this CPU ({native})")
    grid = lt.load_stored_grid()
    done = lt.run_slice_elsewhere(other, "semantic", [0, 1, 2], conditions=["AnB"], timeout=600)
    assert done["platform"]["cpu_capability"].lower() == other
    live = done["values"]["AnB_3"]
    stored = dict(zip(grid.seeds, grid.values("semantic", "AnB", 3), strict=True))
    check = lt.seed_match(live, stored, name="AnB_3 (semantic)",
                          exact=lt.same_platform(grid.meta.get("platform"), done["platform"]))  # fmt: skip
    lt.check_agreement([check], grid.meta)


def _rows():
    points = {}
    for split in lt.SPLITS:
        for seed in (0, 1):
            res = {"baseA": 0.9, "baseB": 0.8 + seed / 100}
            for c in lt.CONDITIONS[1:]:
                for n in lt.CUTS:
                    res[lt.key(c, n)] = 0.7 + n / 100 + seed / 1000
            points[(split, seed)] = res
    return lt.rows_from_points(points)


def test_stored_grid_round_trips_and_refuses_altered_or_stale_files(tmp_path):
    folder = lt.store_grid(_rows(), {"command": "test"}, tmp_path / "g")
    grid = lt.load_stored_grid(folder)
    assert grid.seeds == [0, 1]
    assert grid.values("random", "baseB") == pytest.approx([0.8, 0.81])
    assert grid.values("semantic", "AnB+", 3) == pytest.approx([0.73, 0.731])
    assert set(grid.per_seed("random")) == {"baseB"} | {
        lt.key(c, n) for c in lt.CONDITIONS[1:] for n in lt.CUTS
    }
    with pytest.raises(KeyError, match="no stored rows"):
        grid.values("nope", "baseB")
    # altered csv
    csv_path = folder / "grid.csv"
    text = csv_path.read_text()
    csv_path.write_text(text.replace("0.800000", "0.900000", 1))
    with pytest.raises(lt.StoredGridError, match="altered.*" + "tlhelpers.layer_transfer build"):
        lt.load_stored_grid(folder)
    csv_path.write_text(text)
    lt.load_stored_grid(folder)
    # stale: made with another recipe
    meta = json.loads((folder / "grid.json").read_text())
    meta["recipe"]["steps"] = 999
    (folder / "grid.json").write_text(json.dumps(meta))
    with pytest.raises(lt.StoredGridError, match="stale.*tlhelpers.layer_transfer build"):
        lt.load_stored_grid(folder)
    # missing
    with pytest.raises(lt.StoredGridError, match="missing.*tlhelpers.layer_transfer build"):
        lt.load_stored_grid(tmp_path / "nothing")


def test_the_shipped_grid_is_intact_and_complete():
    grid = lt.load_stored_grid()
    assert len(grid.seeds) >= 3
    for split in lt.SPLITS:
        per_seed = grid.per_seed(split)
        assert all(len(v) == len(grid.seeds) for v in per_seed.values())
        assert all(0.2 < x <= 1 for v in per_seed.values() for x in v)
    prov = grid.meta["provenance"]
    for field in ("command", "git_commit", "date_utc", "versions", "sweep_wall_time_s"):
        assert prov[field], field
    assert np.isfinite(prov["sweep_wall_time_s"])


def test_trained_networks_get_batchnorm_statistics_of_their_training_images():
    train = _data()
    model = lt.train_base(train, 0, TINY)
    bn = model.body[0].block1[1]
    with torch.no_grad():
        z = model.body[0].block1[0](train.images)
    torch.testing.assert_close(bn.running_mean, z.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
    plain = lt.train_base(train, 0, lt.LayerTransferRecipe(per_class=4, steps=3, width=4,
                                                           recalibrate_bn=False))  # fmt: skip
    assert not torch.allclose(plain.body[0].block1[1].running_mean, z.mean((0, 2, 3)), atol=1e-3)


def test_the_sweep_runs_the_point_notebook_over_splits_and_seeds():
    from tlhelpers.paths import repo_root
    from tlhelpers.sweep import plan_sweep

    plan = plan_sweep(repo_root() / lt.POINT_NOTEBOOK, {"split": list(lt.SPLITS), "seed": [0, 1]})
    assert len(plan.points()) == 4
    text = (repo_root() / lt.POINT_NOTEBOOK).read_text()
    assert "lt.run_point(split, seed)" in text  # the same function as the notebook's live slice


def test_stamp_records_platform_and_code_only_after_an_exact_recomputation(tmp_path, monkeypatch):
    folder = lt.store_grid(_rows(), {"command": "test"}, tmp_path / "g",
                           platform={**lt.live_platform(), "cpu": "another CPU"})  # fmt: skip
    grid = lt.load_stored_grid(folder)
    csv_before = (folder / "grid.csv").read_bytes()

    def fake_slice(split, seeds, cut=3, conditions=lt.SLICE_CONDITIONS):
        values = {
            lt.key(c, cut): dict(zip(grid.seeds, grid.values(split, c, cut), strict=True))
            for c in conditions
        }
        values["AnB_3"] = {s: v + shift for s, v in values["AnB_3"].items()}
        return {"platform": lt.live_platform(), "split": split, "values": values}

    shift = 0.0002  # one test image: not exact
    monkeypatch.setattr(lt, "run_slice", fake_slice)
    bad = lt.stamp(folder)
    assert bad and "AnB_3 (random) seed 0" in bad[0]
    assert not lt.is_exact_setting(lt.load_stored_grid(folder).meta)
    shift = 0.0
    assert lt.stamp(folder) == []
    stamped = lt.load_stored_grid(folder)  # still loads: csv, its sha256 and the recipe untouched
    assert lt.is_exact_setting(stamped.meta) and (folder / "grid.csv").read_bytes() == csv_before
    assert "stamp" in stamped.meta["platform_note"]


def test_code_version_is_the_same_from_the_command_line_and_from_an_import(monkeypatch):
    """`python -m tlhelpers.layer_transfer stamp` runs the module as ``__main__``: the version it
    records must be the one notebook 05a computes after ``import tlhelpers.layer_transfer``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("__main__", lt.__file__)
    as_main = importlib.util.module_from_spec(spec)
    as_main.__package__ = "tlhelpers"  # as `python -m` sets it
    monkeypatch.setattr("sys.argv", ["layer_transfer", "--help"])
    with pytest.raises(SystemExit):  # the command line runs (and stops at --help)
        spec.loader.exec_module(as_main)
    here = lt.code_version_now()
    assert as_main.code_version_now() == here
    assert "tlhelpers.layer_transfer" in here["modules"] and "tlhelpers.training" in here["modules"]
