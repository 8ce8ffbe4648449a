"""The kit's thread policy: parsing, the environment override, the adaptive decision."""

from __future__ import annotations

import os

import pytest
import torch

from tlhelpers import threads
from tlhelpers.threads import (
    THREADS_ENV,
    LoadProbe,
    adapt_threads,
    child_environment,
    configure_threads,
    decide_threads,
    fixed_threads,
    hold_threads,
    parse_policy,
    thread_report,
)


@pytest.fixture(autouse=True)
def _restore(monkeypatch):
    """Each test starts unconfigured and leaves torch's thread count and the env as they were."""
    count = torch.get_num_threads()
    saved = (threads._state, threads._probe)
    for key in (THREADS_ENV, "OMP_WAIT_POLICY"):
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])  # restored by monkeypatch
        else:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv(THREADS_ENV, raising=False)
    threads._state = None
    yield
    threads._state, threads._probe = saved
    torch.set_num_threads(count)


class FakeLoad:
    """Readings ``(wall, all CPU s, own CPU s)``: others use ``others`` cores, we use ``own``."""

    def __init__(self, others: float, own: float = 0.0, step: float = 0.5):
        self.others, self.own, self.step = others, own, step
        self.t = self.all = self.mine = 0.0
        self.sleeps: list[float] = []

    def __call__(self):
        self.t += self.step
        self.all += (self.others + self.own) * self.step
        self.mine += self.own * self.step
        return self.t, self.all, self.mine

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("adaptive", "adaptive"), (" Single ", "single"), ("PYTORCH", "pytorch"),
     ("cores-1", "cores-1"), ("passive", "passive"), ("3", 3), (1, 1)],
)  # fmt: skip
def test_parse_policy_accepts_names_and_counts(value, expected):
    assert parse_policy(value) == expected


@pytest.mark.parametrize("value", ["fast", "0", "-1", "", 0, -2, 1.5, True, None])
def test_parse_policy_refuses_with_name_value_and_allowed(value):
    with pytest.raises(ValueError) as err:
        parse_policy(value, "threads")
    msg = str(err.value)
    assert f"threads={value!r}" in msg
    assert "'adaptive', 'pytorch', 'single', 'cores-1', 'passive'" in msg
    assert "whole number of threads >= 1" in msg


@pytest.mark.parametrize(
    ("others", "cores", "cap", "expected"),
    [
        (0.0, 2, 2, 2),  # quiet: PyTorch's count
        (0.25, 2, 2, 2),  # a browser idling: still both
        (0.7, 2, 2, 1),  # one competing busy process (it gets ~2/3 core against our 2 threads)
        (1.0, 2, 2, 1),
        (1.5, 2, 2, 1),  # other jobs on ~1.5 cores: never below 1
        (3.0, 2, 2, 1),
        (0.0, 8, 4, 4),  # never above PyTorch's own default
        (5.0, 8, 4, 3),
    ],
)
def test_decide_threads(others, cores, cap, expected):
    assert decide_threads(others, cores, cap) == expected


def test_load_probe_subtracts_own_use_and_samples_when_stale():
    fake = FakeLoad(others=0.8, own=2.0)
    probe = LoadProbe(fake, fake.sleep)
    assert probe.others_busy() == pytest.approx(0.8)  # our own 2 cores are not "others"
    assert fake.sleeps == []
    fake.step = 60.0  # last reading too old: a fresh short sample instead
    assert probe.others_busy() == pytest.approx(0.8)
    assert fake.sleeps == [threads.SAMPLE_S]
    assert LoadProbe(lambda: None).others_busy() is None


def test_adaptive_follows_faked_load(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    monkeypatch.setattr(threads, "_torch_default", 2)
    fake = FakeLoad(others=0.05)
    state = configure_threads("adaptive", probe=LoadProbe(fake, fake.sleep))
    assert state.source == "argument" and state.cap == 2
    adapt_threads()
    assert torch.get_num_threads() == 2
    fake.others = 1.0  # a competing busy process starts
    adapt_threads()
    assert torch.get_num_threads() == 1
    assert "other processes used 1.0 of 2 cores" in thread_report()
    fake.others = 0.1  # and stops
    adapt_threads()
    assert torch.get_num_threads() == 2
    with fixed_threads() as held:  # held: no change inside
        fake.others = 1.0
        adapt_threads()
        assert torch.get_num_threads() == held == 2
    assert hold_threads() == 2  # the same across cells
    adapt_threads()
    assert torch.get_num_threads() == 2
    hold_threads(False)
    adapt_threads()
    assert torch.get_num_threads() == 1
    torch.set_num_threads(2)  # by hand: the kit stops adapting
    adapt_threads()
    assert torch.get_num_threads() == 2
    assert "set by hand" in thread_report()


def test_adaptive_rechecks_at_most_every_recheck_s(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "_torch_default", 2)
    monkeypatch.setattr(threads, "RECHECK_S", 3600.0)
    fake = FakeLoad(others=0.0)
    configure_threads("adaptive", probe=LoadProbe(fake, fake.sleep))
    adapt_threads()
    fake.others = 1.5
    adapt_threads()  # within RECHECK_S: the earlier decision stands
    assert torch.get_num_threads() == 2


def test_static_policies_and_env_override(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads, "_torch_default", 3)
    assert configure_threads("single").applied == 1 and torch.get_num_threads() == 1
    assert configure_threads("cores-1").applied == 3 and torch.get_num_threads() == 3
    assert configure_threads(2).applied == 2 and torch.get_num_threads() == 2
    assert configure_threads("pytorch").applied == 3
    assert os.environ[THREADS_ENV] == "pytorch"  # children follow the argument
    monkeypatch.setenv(THREADS_ENV, "single")
    state = configure_threads()
    assert (state.policy, state.source, torch.get_num_threads()) == ("single", "environment", 1)
    assert configure_threads("2").source == "argument"  # the argument beats the environment
    monkeypatch.delenv(THREADS_ENV)
    assert configure_threads().source == "kit default"
    assert threads._state.policy == threads.DEFAULT_POLICY == "adaptive"


def test_bad_environment_value_is_refused_by_name(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "lots")
    with pytest.raises(ValueError, match=r"TLHELPERS_THREADS='lots'\. Valid values: 'adaptive'"):
        configure_threads()
    with pytest.raises(ValueError, match="TLHELPERS_THREADS='lots'"):
        child_environment()


def test_passive_sets_the_wait_policy_for_children_and_warns_here(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.warns(RuntimeWarning, match="processes started after"):
        configure_threads("passive")
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    assert child_environment() == {THREADS_ENV: "passive", "OMP_WAIT_POLICY": "PASSIVE"}
    assert child_environment("single") == {THREADS_ENV: "single"}
    assert child_environment(3) == {THREADS_ENV: "3"}


def test_unconfigured_heavy_call_applies_the_policy(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "single")
    torch.set_num_threads(2)
    adapt_threads()
    assert torch.get_num_threads() == 1 and threads._state.source == "environment"


def test_fit_and_predict_apply_the_policy(monkeypatch):
    from tlhelpers.training import fit, predict

    calls = []
    monkeypatch.setattr(threads, "adapt_threads", lambda: calls.append(1))
    model = torch.nn.Linear(3, 2)
    data = (torch.rand(8, 3), torch.arange(8) % 2)
    fit(model, data, epochs=1, progress=False)
    predict(model, data)
    assert len(calls) == 2


def test_environment_check_prints_the_policy(monkeypatch):
    from tlhelpers.notebook import environment

    monkeypatch.setenv(THREADS_ENV, "single")
    env = environment(short=True)
    assert env["threads"] == 1
    assert env["thread_policy"].startswith("single (environment): 1 thread now")


def test_runner_children_get_the_policy(monkeypatch):
    from tlhelpers.runner import run_environment

    monkeypatch.setenv(THREADS_ENV, "passive")
    env = run_environment()
    assert env[THREADS_ENV] == "passive" and env["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.delenv(THREADS_ENV)
    assert run_environment()[THREADS_ENV] == "adaptive"  # the kit's default, stated
    env = run_environment(threads=1)  # parallel sweeps: one thread each
    assert env[THREADS_ENV] == "1" and env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv(THREADS_ENV, "bogus")
    with pytest.raises(ValueError, match="TLHELPERS_THREADS='bogus'"):
        run_environment()


def test_a_new_process_follows_the_environment(tmp_path):
    import subprocess
    import sys

    code = "import torch, tlhelpers.runtime as r; print(torch.get_num_threads(), r.thread_report())"
    env = dict(os.environ, **{THREADS_ENV: "single"})
    env.pop("OMP_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("1 single (environment)")
    env[THREADS_ENV] = "nope"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "Invalid TLHELPERS_THREADS='nope'" in out.stderr


def test_one_fit_runs_at_one_thread_count(monkeypatch):
    from tlhelpers.training import fit

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    monkeypatch.setattr(threads, "RECHECK_S", 0.0)
    monkeypatch.setattr(threads, "_torch_default", 2)
    fake = FakeLoad(others=0.0)
    configure_threads("adaptive", probe=LoadProbe(fake, fake.sleep))
    seen = []

    def objective(model, x, y):
        fake.others = 1.0  # load arrives mid-run: validation's predict must not switch
        seen.append(torch.get_num_threads())
        return torch.nn.functional.cross_entropy(model(x), y)

    model = torch.nn.Linear(3, 2)
    data = (torch.rand(8, 3), torch.arange(8) % 2)
    fit(model, data, epochs=3, objective=objective, val_data=data, progress=False)
    assert seen == [2, 2, 2]
    adapt_threads()  # the next heavy call sees the load
    assert torch.get_num_threads() == 1


def test_fixed_threads_with_a_count_sets_it_for_the_block_and_restores_it():
    before = torch.get_num_threads()
    configure_threads(2)  # configured first: an unconfigured kit would apply its policy on entry
    try:
        with fixed_threads(1) as n:
            assert n == 1 and torch.get_num_threads() == 1
            adapt_threads()  # held: the policy does not change it
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        for bad in (0, -1, 1.5, True, "1"):
            with pytest.raises(ValueError, match="count must be None or a whole number"):
                with fixed_threads(bad):
                    pass
    finally:
        torch.set_num_threads(before)
