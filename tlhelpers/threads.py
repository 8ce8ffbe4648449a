"""How many CPU threads torch uses: the kit's thread policy.

A student runs the course beside a browser. On a 2-core laptop, PyTorch's default (one
intra-op thread per core, OpenMP threads that spin while they wait) is fastest on a quiet
machine but collapses as soon as another program is busy: a thread that is descheduled
holds up every other one at each barrier. Measured on a 2-core machine (s for
100 full-batch steps of SmallCNN, ms per image for MobileNetV2 at 64 px):

============================  =================  ===========  ====================
condition                     PyTorch (2 thr.)   1 thread     2 thr., passive wait
============================  =================  ===========  ====================
quiet                         1.00 s, 2.4 ms     1.13, 5.0    1.17, 2.8
one competing busy process    7.65 s, 9.2 ms     2.42, 8.1    2.43, 8.4
other jobs on ~1.5 cores      32.1 s, 72 ms      2.4, 7.8     3.4, 10.7
============================  =================  ===========  ====================

No fixed count wins both rows: one thread costs 13% (training) to 2x (feature extraction)
on a quiet machine; PyTorch's default is 3-13x slower under load. The kit's default,
``"adaptive"``, keeps PyTorch's count on a quiet machine and drops to the cores that
other processes leave free when they are busy, re-deciding at the start of every heavy
call (:func:`tlhelpers.training.fit`, :func:`tlhelpers.training.predict`).

Policies (argument ``policy`` of :func:`configure_threads`, or the environment variable
``TLHELPERS_THREADS``; the argument wins):

- ``"adaptive"`` (default): ``max(1, min(cap, cores - busy))``, ``busy`` the cores other
  processes used since the last decision (from ``/proc/stat``), rounded up from
  :data:`BUSY_THRESHOLD`; ``cap`` = PyTorch's own default count.
- ``"pytorch"``: leave PyTorch's default alone (what torch does without the kit).
- ``"single"``: one thread (bit-for-bit the same numbers whatever the load).
- ``"cores-1"``: all cores but one (at least one), leaving a core to the browser.
- ``"passive"``: PyTorch's count with ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead
  of spinning); works only in a process started with it set (the OpenMP runtime reads it
  when torch loads), so it takes effect in kernels started after the choice.
- a whole number ``N`` >= 1: exactly ``N`` threads.

This module does not import torch at import time (the runner and ``tlhelpers/__init__``
read the policy before torch loads); :mod:`tlhelpers.runtime` applies it when imported.
Caveat: the number of threads can change float summation order, so ``"adaptive"`` runs
at different loads may differ in the last bits; use ``"single"`` or ``N`` to compare
runs bit for bit, or hold the count with :func:`fixed_threads`.
"""

from __future__ import annotations

import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "adapt_threads",
    "available_cores",
    "BUSY_THRESHOLD",
    "child_environment",
    "configure_threads",
    "decide_threads",
    "DEFAULT_POLICY",
    "fixed_threads",
    "hold_threads",
    "LoadProbe",
    "MAX_WINDOW_S",
    "parse_policy",
    "POLICIES",
    "prepare_environment",
    "read_cpu_times",
    "RECHECK_S",
    "SAMPLE_S",
    "thread_report",
    "THREADS_ENV",
    "ThreadState",
]

#: The environment variable that sets the policy (the runner's kernels inherit it).
THREADS_ENV = "TLHELPERS_THREADS"
#: Named policies, the kit's default first.
POLICIES = ("adaptive", "pytorch", "single", "cores-1", "passive")
DEFAULT_POLICY = "adaptive"
#: Another process's CPU use (in cores) that counts as one busy core: a browser idling at
#: 0.1 core leaves all threads; one busy process (about 0.7-1 core) takes one. 0.5, not lower:
#: a 0.1 s sample can catch a burst of another process (at 0.3, quiet runs sometimes got 1 thread).
BUSY_THRESHOLD = 0.5
#: ``"adaptive"`` re-decides at most this often (seconds); calls in between reuse the count.
RECHECK_S = 1.0
#: A load reading older than this (seconds) is replaced by a fresh sample of :data:`SAMPLE_S`.
MAX_WINDOW_S = 10.0
SAMPLE_S = 0.1


def parse_policy(value: str | int | None, name: str = "policy") -> str | int:
    """A valid policy from ``value``: a name of :data:`POLICIES` (any case) or an int >= 1.

    Raises ``ValueError`` naming ``name``, the value received and the valid values.
    """
    allowed = ", ".join(repr(p) for p in POLICIES)
    bad = ValueError(
        f"Invalid {name}={value!r}. Valid values: {allowed}, or a whole number of threads >= 1."
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, int):
        if value < 1:
            raise bad
        return value
    if not isinstance(value, str):
        raise bad
    text = value.strip().lower()
    if text in POLICIES:
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise bad


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def decide_threads(others_busy: float, cores: int, cap: int) -> int:
    """``"adaptive"``'s count: the cores other processes leave free, at most ``cap``, at least 1.

    ``others_busy`` (cores used by other processes) is rounded to whole busy cores with
    :data:`BUSY_THRESHOLD`: ``busy = ceil(others_busy - BUSY_THRESHOLD)`` (0.2 -> 0, 0.7 -> 1).
    """
    busy = max(0, math.ceil(others_busy - BUSY_THRESHOLD))
    return max(1, min(cap, cores - busy))


def read_cpu_times() -> tuple[float, float, float] | None:
    """``(wall s, CPU s all processes used, CPU s this process used)``, or None without ``/proc``.

    The machine's busy time is the ``cpu`` line of ``/proc/stat`` (user, nice, system,
    irq, softirq, steal: a hypervisor's steal is also CPU we cannot have).
    """
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu" or len(fields) < 9:
        return None
    ticks = [int(v) for v in fields[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return time.monotonic(), busy / hz, time.process_time()


class LoadProbe:
    """Cores other processes used between two readings (this process's own use subtracted).

    ``reader`` returns :func:`read_cpu_times`'s triple (tests pass fake readings);
    ``sleep`` waits when there is no recent reading to compare with.
    """

    def __init__(
        self,
        reader: Callable[[], tuple[float, float, float] | None] = read_cpu_times,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader
        self.sleep = sleep
        self.last = reader()

    def others_busy(self) -> float | None:
        """Other processes' CPU use in cores since the last reading (sampled anew if stale)."""
        now = self.reader()
        if now is None:
            return None
        if self.last is None or not (SAMPLE_S <= now[0] - self.last[0] <= MAX_WINDOW_S):
            self.last = now
            self.sleep(SAMPLE_S)
            now = self.reader()
            if now is None:
                return None
        (w0, all0, own0), (w1, all1, own1) = self.last, now
        self.last = now
        if w1 <= w0:
            return None
        return max(0.0, ((all1 - all0) - (own1 - own0)) / (w1 - w0))


@dataclass
class ThreadState:
    """What the policy decided last (shown by :func:`thread_report`)."""

    policy: str | int
    source: str  # "argument" | "environment" | "kit default"
    cap: int  # PyTorch's own default count before the kit changed anything
    applied: int  # the count the kit set last
    others_busy: float | None = None
    checked_at: float = -math.inf
    held: int = 0  # > 0 inside fixed_threads()


_state: ThreadState | None = None
_probe: LoadProbe | None = None
_torch_default: int | None = None


def _torch():
    import torch

    return torch


def configure_threads(
    policy: str | int | None = None, *, probe: LoadProbe | None = None
) -> ThreadState:
    """Apply a thread policy now and return what was decided.

    ``policy=None`` reads ``TLHELPERS_THREADS``, else uses :data:`DEFAULT_POLICY`. A
    policy given as an argument is written to ``TLHELPERS_THREADS`` so that processes
    started from here (the runner's notebook kernels) follow it too. ``"adaptive"`` decides at
    at each heavy call (:func:`adapt_threads`), from the load since the previous look.
    """
    global _state, _probe, _torch_default
    torch = _torch()
    if policy is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        source = "environment" if env else "kit default"
        policy = parse_policy(env, THREADS_ENV) if env else DEFAULT_POLICY
    else:
        source = "argument"
        policy = parse_policy(policy)
    if _torch_default is None:
        _torch_default = int(torch.get_num_threads())
    cap: int = _torch_default
    if source == "argument":  # processes started from here follow it too
        os.environ[THREADS_ENV] = str(policy)
    if policy == "passive":
        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
            warnings.warn(
                "threads policy 'passive': OMP_WAIT_POLICY=PASSIVE takes effect only in "
                "processes started after it is set (the OpenMP runtime reads it when torch "
                "loads); this process keeps spinning threads. Set TLHELPERS_THREADS=passive "
                "before starting Jupyter or Python.",
                RuntimeWarning,
                stacklevel=2,
            )
    if isinstance(policy, int):
        count = policy
    else:
        count = {
            "pytorch": cap,
            "passive": cap,
            "single": 1,
            "cores-1": max(1, available_cores() - 1),
        }.get(policy, cap)
    _state = ThreadState(policy=policy, source=source, cap=cap, applied=count)
    torch.set_num_threads(count)
    if policy == "adaptive":  # decided at the first heavy call, from the load since now
        _probe = probe or LoadProbe()
    return _state


def _adapt() -> None:
    assert _state is not None and _probe is not None
    now = time.monotonic()
    if now - _state.checked_at < RECHECK_S:
        return
    _state.checked_at = now
    others = _probe.others_busy()
    _state.others_busy = others
    if others is None:  # no /proc/stat (macOS, Windows): leave one core to the rest
        count = max(1, min(_state.cap, available_cores() - 1))
    else:
        count = decide_threads(others, available_cores(), _state.cap)
    if count != _state.applied:
        _torch().set_num_threads(count)
        _state.applied = count


def adapt_threads() -> None:
    """Call at the start of a heavy computation: applies the policy once, re-decides ``"adaptive"``.

    Cheap: ``"adaptive"`` looks at the load at most every :data:`RECHECK_S` seconds, from
    the CPU time used since its last look (no waiting). Nothing changes inside
    :func:`fixed_threads`, or once someone else has called ``torch.set_num_threads``
    (their choice wins).
    """
    if _state is None:
        configure_threads()
        return
    if _state.policy != "adaptive" or _state.held:
        return
    if _torch().get_num_threads() != _state.applied:
        return  # set by hand since: respect it
    _adapt()


def hold_threads(hold: bool = True) -> int:
    """Hold (``hold=True``) or release the current thread count across cells; returns it.

    :func:`fixed_threads` for code that spans notebook cells, e.g. from a plain loop to
    ``fit`` when their weights must agree bit for bit.
    """
    if _state is None:
        configure_threads()
    assert _state is not None
    _state.held = max(0, _state.held + (1 if hold else -1))
    return _torch().get_num_threads()


@contextmanager
def fixed_threads(count: int | None = None) -> Iterator[int]:
    """Hold the thread count inside the block (no adaptive change); yields the count.

    ``count=None`` holds the current count; an integer sets that many threads for the block
    and restores the previous count after it. For runs that must agree bit for bit (a plain
    loop against ``fit``; a live re-run against stored numbers):
    the thread count can change float summation order.
    """
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise ValueError(f"count must be None or a whole number >= 1, got {count!r}.")
    torch = _torch()
    held = hold_threads()
    before = torch.get_num_threads()
    if count is not None and count != before:
        torch.set_num_threads(count)
    try:
        yield count if count is not None else held
    finally:
        if count is not None and count != before:
            torch.set_num_threads(before)
        hold_threads(False)


def thread_report() -> str:
    """One line for the environment check: policy, where it came from, threads now, load."""
    if _state is None:
        configure_threads()
    assert _state is not None
    s = _state
    threads = _torch().get_num_threads()
    text = f"{s.policy} ({s.source}): {threads} thread{'s' if threads != 1 else ''} now"
    if s.policy == "adaptive":
        text += f", at most {s.cap}"
        if s.others_busy is not None:
            text += f"; other processes used {s.others_busy:.1f} of {available_cores()} cores"
    if threads != s.applied:
        text += f" (set by hand; the policy chose {s.applied})"
    wait = os.environ.get("OMP_WAIT_POLICY")
    if wait:
        text += f"; OMP_WAIT_POLICY={wait}"
    return text


def prepare_environment() -> None:
    """Before torch loads (``tlhelpers/__init__``): ``passive`` needs ``OMP_WAIT_POLICY`` then.

    A bad ``TLHELPERS_THREADS`` is left for :func:`configure_threads` to refuse with the
    full message.
    """
    value = os.environ.get(THREADS_ENV, "").strip().lower()
    if value == "passive" and "torch" not in sys.modules:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def child_environment(policy: str | int | None = None) -> dict[str, str]:
    """Environment entries that give a child process ``policy`` (None: this process's policy)."""
    if policy is None:
        env = os.environ.get(THREADS_ENV, "").strip()
        policy = parse_policy(env, THREADS_ENV) if env else DEFAULT_POLICY
    else:
        policy = parse_policy(policy)
    out = {THREADS_ENV: str(policy)}
    if policy == "passive":
        out["OMP_WAIT_POLICY"] = "PASSIVE"
    return out
