"""Regenerate ``BENCHMARKS.md``, the kit's time and accuracy budgets: ``make benchmark [PARTS=threads,fit] [REPEATS=5]``.

    python benchmarks/make_benchmarks.py                       # every part, then BENCHMARKS.md
    python benchmarks/make_benchmarks.py --parts threads,fit   # some parts; the others are kept
    python benchmarks/make_benchmarks.py --render              # only rewrite BENCHMARKS.md
    python benchmarks/make_benchmarks.py --smoke --results-dir /tmp/b --out /tmp/b/B.md  # CI

Parts (each runnable alone; its numbers go to ``benchmarks/results/<part>.json`` with the
machine, versions, date and load, and BENCHMARKS.md is rendered from every stored part):

- ``notebooks``: every notebook's wall time and peak memory at defaults, with the kit's thread
  policy quiet and beside one busy process it starts itself, and with PyTorch's default
  threads quiet (today's baseline); ratios per notebook, the course total, the budgets.
- ``threads``: the thread policies (``tlhelpers.threads``) on the kit's typical small
  workloads (100 full-batch steps of SmallCNN; MobileNetV2 features at 64 px), quiet and
  beside one and two busy processes, each policy in a fresh process.
- ``fit``: ``training.fit`` against a minimal hand-written loop: throughput ratio, same weights.
- ``cache``: cached frozen features / activations at the frozen boundary against running
  the frozen part at every epoch (linear probe; fine-tuning the top block).
- ``samples``: accuracy against labels per class (accuracy does not depend on load: computed
  once and stored with its recipe and seeds; rerun with ``--parts samples``).
- ``anchor``: the kit's cached route on a task like PyTorch's transfer-learning tutorial's.

Timing parts mean something only on a quiet machine. Each figure is the median of
``--repeats`` runs; a comparison is a ratio of runs made in the same pass.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "BENCHMARKS.md"
PARTS = ("notebooks", "threads", "fit", "cache", "samples", "anchor")
POLICIES = ("pytorch", "single", "passive", "cores-1", "adaptive")
#: Environment variables a child must not inherit from a developer's shell (they would
#: change what "PyTorch's default" means).
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
               "NUMEXPR_NUM_THREADS", "OMP_WAIT_POLICY", "TLHELPERS_THREADS")  # fmt: skip
COURSE_BUDGET_S = 600  # the whole course at defaults, quiet 2-core CPU


# ---------------------------------------------------------------- helpers


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, OS, versions: the header of every part."""
    import numpy
    import torch
    import torchvision

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        first = Path("/proc/meminfo").read_text().splitlines()[0]
        mem = round(int(first.split()[1]) / 2**20, 1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()  # fmt: skip
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem,
        "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
        "torch": torch.__version__, "torchvision": torchvision.__version__,
        "numpy": numpy.__version__, "commit": commit or "n/a",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }  # fmt: skip


def child_env(policy: str | None) -> dict[str, str]:
    """A child's environment: the developer's thread settings removed, ``policy`` set."""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["TLHELPERS_WIDGETS"] = "0"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if policy is not None:
        env["TLHELPERS_THREADS"] = policy
    return env


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """``n`` competing busy processes (a pure-Python loop each) for the block's duration."""
    # The loop stops when its parent dies (a killed benchmark leaves no busy process behind).
    loop = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"
    procs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]
    try:
        time.sleep(0.5 if n else 0)  # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


# ---------------------------------------------------------------- part: notebooks

NB_CONDITIONS = (("adaptive", 0), ("pytorch", 0), ("adaptive", 1))


def run_notebook_once(path: Path, policy: str) -> dict[str, Any]:
    """Wall time and the kernel's peak RSS of one papermill run at default parameters."""
    from bench_notebooks import CHILD

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), f"{tmp}/out.ipynb", tmp, str(path.parent)],
            capture_output=True, text=True, env=child_env(policy),
        )  # fmt: skip
        wall = time.perf_counter() - start
    rss_kb, rc = proc.stdout.split()[-2:]
    return {"ok": rc == "0", "wall_s": wall, "peak_gb": int(rss_kb) / 2**20,
            "error": proc.stderr[-400:] if rc != "0" else ""}  # fmt: skip


def fixture_notebook(folder: Path) -> Path:
    """A tiny notebook with the course's ``seed``/``out_dir`` parameters (``--smoke``)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('seed: int = 0  # seed\nout_dir: str = ""  # results')
    params.metadata["tags"] = ["parameters"]
    work = "import torch\nfrom tlhelpers.training import predict\n" + (
        "print(predict(torch.nn.Linear(4, 2), (torch.rand(8, 4), torch.zeros(8).long()))[0].shape)"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(work)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    path = folder / "99_fixture.ipynb"
    nbformat.write(nb, path)
    return path


def part_notebooks(cfg: argparse.Namespace) -> dict[str, Any]:
    from bench_notebooks import BUDGETS

    from tlhelpers.runner import course_notebooks

    if cfg.smoke and not cfg.notebooks:
        cfg.notebooks = [fixture_notebook(cfg.results_dir)]
    paths = cfg.notebooks or course_notebooks(ROOT / "notebooks")
    runs: dict[str, dict[str, list[dict]]] = {p.name: {} for p in paths}
    for _ in range(cfg.notebook_repeats):
        for p in paths:  # the conditions of one notebook back to back: ratios from one pass
            for policy, n_busy in NB_CONDITIONS:
                if cfg.skip_today and policy == "pytorch":
                    continue  # PyTorch's default threads: the baseline, optional when time is short
                if cfg.skip_loaded and n_busy:
                    continue  # beside a busy process: optional when time is short
                key = f"{policy}/{n_busy}"
                with busy(n_busy):
                    r = run_notebook_once(p.resolve(), policy)
                runs[p.name].setdefault(key, []).append(r)
                print(f"  {p.name} {policy} busy={n_busy}: {r['wall_s']:.1f} s "
                      f"{r['peak_gb']:.2f} GB {'ok' if r['ok'] else 'FAILED'}", flush=True)  # fmt: skip
    rows = []
    for name, by in runs.items():
        q, base, loaded = (by.get(f"{p}/{b}", []) for p, b in NB_CONDITIONS)
        limit_s, limit_gb = BUDGETS.get(name[:2], (90, 3.0))
        rows.append({
            "notebook": name, "budget_s": limit_s, "budget_gb": limit_gb,
            "ok": all(r["ok"] for r in q + base + loaded),
            "quiet_s": median([r["wall_s"] for r in q]),
            "peak_gb": max(r["peak_gb"] for r in q + loaded),
            "pytorch_quiet_s": median([r["wall_s"] for r in base]) if base else None,
            "loaded_s": median([r["wall_s"] for r in loaded]) if loaded else None,
            "quiet_vs_today": (median([a["wall_s"] / b["wall_s"] for a, b in zip(q, base, strict=True)])
                               if base else None),
            "loaded_vs_quiet": (median([a["wall_s"] / b["wall_s"] for a, b in zip(loaded, q, strict=True)])
                                if loaded else None),
            "errors": [r["error"] for r in q + base + loaded if r["error"]],
        })  # fmt: skip
    return {"rows": rows, "repeats": cfg.notebook_repeats}


def render_notebooks(d: dict[str, Any]) -> list[str]:
    out = [
        f"Papermill wall time (kernel start included) and the kernel's peak memory at default "
        f"parameters, median of {d['repeats']} pass(es). *Kit* = the kit's default thread "
        "policy (`adaptive`), *today* = PyTorch's default threads (`TLHELPERS_THREADS=pytorch`), "
        "*loaded* = the kit's policy beside one competing busy process. Goals: "
        "kit/today <= 1.10 quiet; loaded/quiet <= 2.",
        "",
        "| notebook | budget | kit, quiet (s) | peak (GB) | today, quiet (s) | kit / today | "
        "kit, loaded (s) | loaded / quiet | ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def f(x, fmt):
        return "not run" if x is None else format(x, fmt)

    for r in d["rows"]:
        out.append(
            f"| {r['notebook']} | {r['budget_s']} s, {r['budget_gb']} GB | {r['quiet_s']:.1f} | "
            f"{r['peak_gb']:.2f} | {f(r['pytorch_quiet_s'], '.1f')} | {f(r['quiet_vs_today'], '.2f')} | "
            f"{f(r.get('loaded_s'), '.1f')} | {f(r.get('loaded_vs_quiet'), '.2f')} | "
            f"{'yes' if r['ok'] else 'NO'} |"
        )
    tot_quiet = sum(r["quiet_s"] for r in d["rows"])
    loaded = [r.get("loaded_s") for r in d["rows"]]
    tot_loaded = None if None in loaded else sum(loaded)
    today = [r["pytorch_quiet_s"] for r in d["rows"]]
    tot_today = None if None in today else sum(today)
    out.append(f"| **course total** | {COURSE_BUDGET_S} s | {tot_quiet:.0f} | | "
               f"{f(tot_today, '.0f')} | {f(tot_today and tot_quiet / tot_today, '.2f')} | "
               f"{f(tot_loaded, '.0f')} | {f(tot_loaded and tot_loaded / tot_quiet, '.2f')} | |")  # fmt: skip
    if tot_today is None:
        out += [
            "",
            "*Today* (PyTorch's default threads) was not run in this pass (`--skip-today`); "
            "benchmarks/README.md has notebooks 00-04 under PyTorch's default from an earlier "
            "measurement.",
        ]
    if tot_loaded is None:
        out += [
            "",
            "*Loaded* was not run in this pass (`--skip-loaded`); rerun "
            "`make benchmark PARTS=notebooks` to measure it.",
        ]
    return out


# ---------------------------------------------------------------- part: threads

WORKER = r"""
import json, sys, time
import tlhelpers  # before torch: TLHELPERS_THREADS=passive sets OMP_WAIT_POLICY first
import torch, torchvision
from tlhelpers.models import SmallCNN
from tlhelpers.training import fit, predict
steps, n_images, repeats = (int(a) for a in sys.argv[1:4])
g = torch.Generator().manual_seed(0)
x, y = torch.rand(10, 1, 28, 28, generator=g), torch.arange(10) % 5
imgs = torch.rand(n_images, 3, 64, 64, generator=g)
body = torchvision.models.mobilenet_v2().features.eval()
train, feats = [], []
for r in range(repeats + 1):  # the first round warms up
    torch.manual_seed(0)
    model = SmallCNN(num_classes=5)
    t = time.perf_counter()
    fit(model, (x, y), epochs=steps, batch_size=10, progress=False)
    t1 = time.perf_counter()
    predict(body, (imgs, torch.zeros(n_images, dtype=torch.long)), batch_size=64)
    t2 = time.perf_counter()
    if r:
        train.append(t1 - t)
        feats.append((t2 - t1) / n_images * 1e3)
print(json.dumps({"train_s": train, "ms_per_image": feats, "threads": torch.get_num_threads()}))
"""


def part_threads(cfg: argparse.Namespace) -> dict[str, Any]:
    steps, n_images = (10, 16) if cfg.smoke else (100, 256)
    # smoke: no "pytorch" (its spinning threads take minutes on a loaded CI machine)
    policies = ("single", "adaptive") if cfg.smoke else POLICIES
    conditions = (0, 1) if cfg.smoke else (0, 1, 2)
    cells: dict[str, dict[str, Any]] = {}
    for n_busy in conditions:
        with busy(n_busy):
            for policy in policies:
                proc = subprocess.run(
                    [sys.executable, "-c", WORKER, str(steps), str(n_images), str(cfg.repeats)],
                    capture_output=True, text=True, env=child_env(policy),
                )  # fmt: skip
                if proc.returncode:
                    raise RuntimeError(f"threads worker ({policy}) failed:\n{proc.stderr[-2000:]}")
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                cells[f"{policy}/{n_busy}"] = {
                    "train_s": median(r["train_s"]), "ms_per_image": median(r["ms_per_image"]),
                    "threads_at_end": r["threads"],
                }  # fmt: skip
                print(f"  {policy:9s} busy={n_busy}: {cells[f'{policy}/{n_busy}']}", flush=True)
    return {"cells": cells, "policies": policies, "conditions": conditions,
            "steps": steps, "images": n_images, "repeats": cfg.repeats}  # fmt: skip


def render_threads(d: dict[str, Any]) -> list[str]:
    label = {0: "quiet", 1: "one busy process", 2: "two busy processes"}
    out = [
        f"Seconds for {d['steps']} full-batch steps of SmallCNN on 10 images (`fit`), and ms per "
        f"image for MobileNetV2 features at 64 px, batch 64 ({d['images']} images, `predict`); "
        f"median of {d['repeats']}, each policy in a fresh process, the busy processes started "
        "by the benchmark. In brackets: the ratio to the first row (PyTorch's default) on the quiet "
        "machine; *thr.*: the threads the policy used at the end.",
        "",
        "| policy | " + " | ".join(label[c] for c in d["conditions"]) + " |",
        "|---|" + "---|" * len(d["conditions"]),
    ]
    base = d["cells"].get("pytorch/0") or d["cells"][f"{d['policies'][0]}/0"]
    for p in d["policies"]:
        cols = []
        for c in d["conditions"]:
            cell = d["cells"][f"{p}/{c}"]
            cols.append(f"{cell['train_s']:.2f} s ({cell['train_s'] / base['train_s']:.2f}x), "
                        f"{cell['ms_per_image']:.1f} ms ({cell['ms_per_image'] / base['ms_per_image']:.2f}x)"
                        f", {cell['threads_at_end']} thr.")  # fmt: skip
        out.append(f"| `{p}` | " + " | ".join(cols) + " |")
    return out


# ---------------------------------------------------------------- part: fit vs a plain loop


def _plain_fit(model, x, y, *, epochs: int, batch_size: int, lr: float, seed: int) -> None:
    """The minimal loop: Adam, shuffled minibatches from a seeded generator, cross-entropy."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # what fit's seed does to dropout and augmentation
        for _ in range(epochs):
            model.train()
            order = torch.randperm(len(y), generator=g)
            for i in range(0, len(y), batch_size):
                idx = order[i : i + batch_size]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()


def part_fit(cfg: argparse.Namespace) -> dict[str, Any]:
    import torch

    from tlhelpers.models import SmallCNN
    from tlhelpers.runtime import fixed_threads
    from tlhelpers.training import fit

    n, epochs = (256, 1) if cfg.smoke else (2048, 3)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    ratios, same, t_fit, t_plain = [], [], [], []
    with fixed_threads():  # both loops at one thread count
        for r in range(cfg.repeats + 1):
            models = []
            for which in ("fit", "plain") if r % 2 else ("plain", "fit"):  # alternate the order
                torch.manual_seed(0)
                m = SmallCNN(num_classes=10)
                t = time.perf_counter()
                if which == "fit":
                    fit(m, (x, y), epochs=epochs, batch_size=64, lr=1e-3, seed=0, progress=False)
                else:
                    _plain_fit(m, x, y, epochs=epochs, batch_size=64, lr=1e-3, seed=0)
                dt = time.perf_counter() - t
                models.append((which, m, dt))
            d = {w: (m, dt) for w, m, dt in models}
            if r == 0:
                continue  # warm-up
            t_fit.append(d["fit"][1])
            t_plain.append(d["plain"][1])
            ratios.append(d["plain"][1] / d["fit"][1])
            same.append(all(torch.equal(a, b) for a, b in zip(
                d["fit"][0].state_dict().values(), d["plain"][0].state_dict().values(), strict=True)))  # fmt: skip
    return {"images": n, "epochs": epochs, "batch_size": 64, "repeats": cfg.repeats,
            "fit_s": median(t_fit), "plain_s": median(t_plain),
            "throughput_ratio": median(ratios), "identical_weights": all(same)}  # fmt: skip


def render_fit(d: dict[str, Any]) -> list[str]:
    return [
        f"SmallCNN, {d['images']} images 28x28, {d['epochs']} epochs of batch {d['batch_size']}, "
        f"Adam, seed 0; median of {d['repeats']} alternating pairs. Goal: ratio >= 0.95.",
        "",
        "| `fit` (s) | plain loop (s) | throughput of `fit` / plain loop | identical final weights |",
        "|---|---|---|---|",
        f"| {d['fit_s']:.2f} | {d['plain_s']:.2f} | {d['throughput_ratio']:.3f} | "
        f"{'yes' if d['identical_weights'] else 'NO'} |",
    ]


# ---------------------------------------------------------------- part: caching


def part_cache(cfg: argparse.Namespace) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F
    import torchvision

    from tlhelpers.features import cache_activations
    from tlhelpers.models import SmallCNN, split_at_block, split_model
    from tlhelpers.runtime import fixed_threads
    from tlhelpers.training import predict

    n_probe, n_ft, epochs = (32, 64, 3) if cfg.smoke else (256, 1024, 20)
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(n_probe, 3, 64, 64, generator=g)
    y_probe = torch.arange(n_probe) % 2
    body = torchvision.models.mobilenet_v2().features.eval()
    pool = torch.nn.Sequential(body, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())

    def probe_recompute():  # the backbone runs at every epoch
        head = torch.nn.Linear(1280, 2)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(epochs):
            f, _ = predict(pool, (imgs, y_probe), batch_size=64)
            loss = F.cross_entropy(head(f), y_probe)
            opt.zero_grad()
            loss.backward()
            opt.step()

    def probe_cached():  # the backbone runs once
        f, _ = predict(pool, (imgs, y_probe), batch_size=64)
        head = torch.nn.Linear(1280, 2)
        opt = torch.optim.Adam(head.parameters(), lr=1e-2)
        for _ in range(epochs):
            loss = F.cross_entropy(head(f), y_probe)
            opt.zero_grad()
            loss.backward()
            opt.step()

    x = torch.rand(n_ft, 1, 28, 28, generator=g)
    y = torch.arange(n_ft) % 5

    def top_block(cached: bool):  # fine-tune the top block of SmallCNN, the rest frozen
        torch.manual_seed(0)
        model = split_model(SmallCNN(num_classes=5))
        lower, upper = split_at_block(model, 1)
        lower.eval().requires_grad_(False)
        opt = torch.optim.Adam(upper.parameters(), lr=1e-3)
        acts = cache_activations(lower, (x, y))[0] if cached else None
        for _ in range(epochs):
            upper.train()
            for i in range(0, n_ft, 64):
                if cached:
                    a = acts[i : i + 64]
                else:
                    with torch.no_grad():
                        a = lower(x[i : i + 64])
                loss = F.cross_entropy(upper(a), y[i : i + 64])
                opt.zero_grad()
                loss.backward()
                opt.step()

    cases: dict[str, tuple[Callable, Callable]] = {
        "linear probe (MobileNetV2 features, 64 px)": (probe_recompute, probe_cached),
        "top block of SmallCNN (activations at the frozen boundary)": (
            lambda: top_block(False), lambda: top_block(True)),
    }  # fmt: skip
    rows = []
    with fixed_threads():
        for name, (slow, fast) in cases.items():
            ts, tf, ratio = [], [], []
            for r in range(cfg.repeats + 1):
                t = time.perf_counter()
                slow()
                a = time.perf_counter() - t
                t = time.perf_counter()
                fast()
                b = time.perf_counter() - t
                if r:
                    ts.append(a)
                    tf.append(b)
                    ratio.append(a / b)
            rows.append({"case": name, "recompute_s": median(ts), "cached_s": median(tf),
                         "speedup": median(ratio)})  # fmt: skip
    return {"rows": rows, "epochs": epochs, "probe_images": n_probe, "ft_images": n_ft,
            "repeats": cfg.repeats}  # fmt: skip


def render_cache(d: dict[str, Any]) -> list[str]:
    out = [
        f"{d['epochs']} epochs; the cached route includes computing the cache once. Linear probe: "
        f"{d['probe_images']} images; top block: {d['ft_images']} images, batch 64. Median of "
        f"{d['repeats']}. Goal: speed-up >= 10.",
        "",
        "| what | recompute every epoch (s) | cached (s) | speed-up |",
        "|---|---|---|---|",
    ]
    for r in d["rows"]:
        out.append(f"| {r['case']} | {r['recompute_s']:.2f} | {r['cached_s']:.2f} | "
                   f"{r['speedup']:.1f}x |")  # fmt: skip
    return out


# ---------------------------------------------------------------- part: sample efficiency

METHODS = ("scratch", "linear probe", "fine-tune", "L2-SP")
SOURCE = "fmnist_rand_a"  # notebook 03's source: the kit's SmallCNN on five Fashion-MNIST classes


def _target(name: str, n_test: int):
    """``(train pool, test set)`` as 1x28x28 datasets: ``fmnist_rand_b`` or ``lfw_faces``."""
    from tlhelpers.data import TensorImageDataset, load_dataset, load_task, prepare_images

    if name == "fmnist_rand_b":
        test = load_task(name, "test")
        return load_task(name, "train"), test.subset(range(min(n_test, len(test))))

    def resized(d):  # 25x25 crops to the source's 28x28, grey, no normalisation
        x = prepare_images(d.images, size=28, channels=1, normalization=None)
        return TensorImageDataset(x, d.targets, d.classes)

    return resized(load_dataset(name, "train")), resized(load_dataset(name, "test"))


def _accuracy(method: str, source, train, test, seed: int, steps: int | None = None) -> float:
    from tlhelpers.losses import make_objective
    from tlhelpers.models import scratch_model, transfer_model
    from tlhelpers.recipes import get_recipe
    from tlhelpers.training import evaluate

    k = len(train.classes)
    if method == "scratch":
        model = scratch_model(k, seed=seed)
        get_recipe("scratch").fit(model, train, seed=seed, steps=steps)
    else:
        model = transfer_model(source, k, seed=seed)
        if method == "linear probe":
            get_recipe("linear_probe").fit(model, train, seed=seed, steps=steps)
        else:
            objective = make_objective("l2sp" if method == "L2-SP" else "none", model)
            get_recipe("fine_tune").fit(model, train, objective=objective, seed=seed, steps=steps)
    return evaluate(model, test)["accuracy"]


def part_samples(cfg: argparse.Namespace) -> dict[str, Any]:
    import numpy as np

    from tlhelpers.data import few_shot
    from tlhelpers.losses.objective import DEFAULT_STRENGTHS
    from tlhelpers.metrics import mean_ci
    from tlhelpers.models import load_backbone
    from tlhelpers.runtime import configure_threads

    configure_threads("single")  # the same numbers bit for bit whatever the load
    shots = (1, 2) if cfg.smoke else (1, 2, 5, 10, 50)
    seeds = list(range(2 if cfg.smoke else cfg.seeds))
    targets = ("lfw_faces",) if cfg.smoke else ("lfw_faces", "fmnist_rand_b")
    if cfg.sample_targets:
        targets = tuple(t for t in targets if t in cfg.sample_targets.split(","))
    source = load_backbone("small_cnn", source=SOURCE).eval()
    # one accuracy per run, kept as it is computed: an interrupted or split run resumes
    cells_path = cfg.results_dir / "samples_runs.json"
    done = json.loads(cells_path.read_text()) if cells_path.is_file() else {}
    table: dict[str, Any] = {}
    for target in targets:
        pool, test = _target(target, 100 if cfg.smoke else 1000)
        for per_class in shots:
            for method in METHODS:
                accs = []
                for s in seeds:
                    key = f"{target}/{per_class}/{method}/{s}"
                    if key not in done:
                        train = few_shot(pool, per_class, seed=s)
                        steps = 5 if cfg.smoke else None
                        done[key] = _accuracy(method, source, train, test, s, steps)
                        stored = json.loads(cells_path.read_text()) if cells_path.is_file() else {}
                        cells_path.write_text(json.dumps({**stored, **done}, indent=0))
                    accs.append(done[key])
                m, half = mean_ci(accs)
                lo, hi = m - half, m + half
                table[f"{target}/{per_class}/{method}"] = {
                    "accuracies": accs, "mean": float(m), "ci": [float(lo), float(hi)]}  # fmt: skip
                print(f"  {target} {per_class:>2d}/class {method:12s} {m:.3f} [{lo:.3f}, {hi:.3f}]",
                      flush=True)  # fmt: skip
    match = {}
    for target in targets:  # fewest labels at which scratch reaches fine-tuning with 10
        ref = table.get(f"{target}/10/fine-tune", {}).get("mean")
        hit = [
            p for p in shots if ref is not None and table[f"{target}/{p}/scratch"]["mean"] >= ref
        ]
        match[target] = {"finetune_10": ref, "scratch_matches_at": hit[0] if hit else None}
    return {
        "table": table, "shots": shots, "seeds": seeds, "targets": targets, "methods": METHODS,
        "match": match, "recipe": (
            f"source: the kit's SmallCNN pretrained on {SOURCE} (notebook 03); scratch: "
            "recipe 'scratch'; linear probe: recipe 'linear_probe' (head only); fine-tune: "
            "recipe 'fine_tune'; L2-SP: recipe 'fine_tune' + make_objective('l2sp') at its "
            f"default strength alpha={DEFAULT_STRENGTHS.get('l2sp')} (not chosen on validation "
            "per setting: a fixed recipe); per_class labels drawn with few_shot(seed); faces "
            "resized to 28x28 grey; test: lfw_faces test split (100) / first 1000 of "
            "fmnist_rand_b's test split; one thread (TLHELPERS_THREADS=single). Accuracy: mean over seeds, 95% t-interval (mean_ci)."),
        "numpy": np.__version__,
    }  # fmt: skip


def render_samples(d: dict[str, Any]) -> list[str]:
    out = [f"Test accuracy, mean over seeds {d['seeds'][0]}..{d['seeds'][-1]} with a 95% t-interval (clipped to [0, 1]). "
           f"Recipe: {d['recipe']}", ""]  # fmt: skip
    for target in d["targets"]:
        out += [f"**{target}**", "", "| labels per class | " + " | ".join(d["methods"]) + " |",
                "|---|" + "---|" * len(d["methods"])]  # fmt: skip
        for p in d["shots"]:
            cells = []
            for m in d["methods"]:
                c = d["table"][f"{target}/{p}/{m}"]
                lo, hi = max(0.0, c["ci"][0]), min(1.0, c["ci"][1])  # an accuracy lies in [0, 1]
                cells.append(f"{c['mean']:.3f} [{lo:.3f}, {hi:.3f}]")
            out.append(f"| {p} | " + " | ".join(cells) + " |")
        mt = d["match"][target]
        if mt["finetune_10"] is not None:
            at = mt["scratch_matches_at"]
            out += ["", f"Fine-tuning with 10 labels per class: {mt['finetune_10']:.3f}; scratch "
                    + (f"first reaches it at {at} labels per class of those measured "
                       f"({', '.join(map(str, d['shots']))})." if at else
                       f"does not reach it within {d['shots'][-1]} labels per class.")]  # fmt: skip
        out.append("")
    return out


# ---------------------------------------------------------------- part: the tutorial anchor


def part_anchor(cfg: argparse.Namespace) -> dict[str, Any]:
    import torch

    from tlhelpers.data import Preprocess, load_dataset
    from tlhelpers.features import linear_probe
    from tlhelpers.models import load_backbone
    from tlhelpers.training import predict

    size = 64 if cfg.smoke else 224
    times, accs = [], []
    for _ in range(cfg.repeats):
        t = time.perf_counter()
        net = load_backbone("mobilenet_v2")
        body = torch.nn.Sequential(net.features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
        pre = Preprocess(size=size, channels=3)
        train, test = load_dataset("lfw_faces", "train"), load_dataset("lfw_faces", "test")
        ftr, ytr = predict(body, train, batch_size=50, batch_transform=pre)
        fte, yte = predict(body, test, batch_size=50, batch_transform=pre)
        accs.append(linear_probe(ftr, ytr, fte, yte))
        times.append(time.perf_counter() - t)
    return {"size": size, "train": len(ytr), "test": len(yte), "seconds": median(times),
            "accuracy": median(accs), "repeats": cfg.repeats}  # fmt: skip


def render_anchor(d: dict[str, Any]) -> list[str]:
    return [
        "PyTorch's transfer-learning tutorial fine-tunes an ImageNet ResNet-18 on 244 ants/bees "
        "photos (153 to validate) at 224 px for 25 epochs and states 15-25 minutes on a CPU for "
        "full fine-tuning. The kit's cached route on a task of that form (two classes, a few "
        "hundred images, an ImageNet backbone): MobileNetV2 features at "
        f"{d['size']} px computed once, then a logistic-regression probe (`linear_probe`), on "
        f"`lfw_faces` ({d['train']} train, {d['test']} test). Time includes loading the weights "
        f"and data; median of {d['repeats']}.",
        "",
        "| route | time | test accuracy |",
        "|---|---|---|",
        "| tutorial, full fine-tuning, ResNet-18 (stated) | 15-25 min | (ants/bees, not comparable) |",
        f"| kit, cached MobileNetV2 features + probe | {d['seconds']:.1f} s | {d['accuracy']:.3f} |",
    ]


# ---------------------------------------------------------------- driver

TITLES = {
    "notebooks": "Notebooks at default parameters",
    "threads": "Thread policies on small workloads",
    "fit": "`training.fit` against a plain loop",
    "cache": "Cached features and activations against recomputing",
    "samples": "Sample efficiency: accuracy against labels per class",
    "anchor": "Anchor: PyTorch's transfer-learning tutorial",
}
RUN = {"notebooks": part_notebooks, "threads": part_threads, "fit": part_fit,
       "cache": part_cache, "samples": part_samples, "anchor": part_anchor}  # fmt: skip
RENDER = {"notebooks": render_notebooks, "threads": render_threads, "fit": render_fit,
          "cache": render_cache, "samples": render_samples, "anchor": render_anchor}  # fmt: skip


def parse_parts(text: str) -> list[str]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        print(f"error: invalid --parts {text!r}. Valid parts: {', '.join(PARTS)} "
              "(comma-separated).", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    return parts


def render(results_dir: Path, out: Path) -> Path:
    lines = ["# Benchmarks", "",
             "Generated by `make benchmark` (`benchmarks/make_benchmarks.py`); each part "
             "states the machine, versions, date and load it was measured with. Timing parts "
             "mean something only on a quiet machine. Regenerate one part with "
             "`make benchmark PARTS=<part>`.", ""]  # fmt: skip
    for part in PARTS:
        path = results_dir / f"{part}.json"
        lines += [f"## {TITLES[part]}", ""]
        if not path.is_file():
            lines += [f"Not measured yet: `make benchmark PARTS={part}`.", ""]
            continue
        doc = json.loads(path.read_text())
        m = doc["machine"]
        lines += [f"*{m['date']}; {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, {m['os']}; "
                  f"Python {m['python']}, torch {m['torch']}, torchvision {m['torchvision']}, "
                  f"numpy {m['numpy']}; commit {m['commit']}; load average before "
                  f"{doc['load_before']}, after {doc['load_after']}; {doc['seconds']:.0f} s"
                  f"{'; SMOKE MODE (not a measurement)' if doc.get('smoke') else ''}.*", ""]  # fmt: skip
        lines += RENDER[part](doc["data"]) + [""]
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def clean_start(argv: list[str]) -> None:
    """Re-run this script without the shell's thread settings (``OMP_NUM_THREADS=1`` and the
    like would make every in-process part measure one fixed thread count, not the kit)."""
    found = [k for k in THREAD_VARS if k in os.environ]
    if found and "_BENCH_CLEAN" not in os.environ:
        print(f"note: restarting without {', '.join(found)} (the kit's defaults are measured)",
              flush=True)  # fmt: skip
        env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
        env["_BENCH_CLEAN"] = "1"
        os.execve(sys.executable, [sys.executable, str(Path(__file__).resolve()), *argv], env)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    clean_start(argv)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--notebook-repeats", type=int, default=1,
                        help="passes over the notebooks (each pass: 3 runs of every notebook)")  # fmt: skip
    parser.add_argument(
        "--skip-today",
        action="store_true",
        help="notebooks part: skip the PyTorch-default baseline pass (saves a third)",
    )
    parser.add_argument(
        "--skip-loaded",
        action="store_true",
        help="notebooks part: skip the pass beside a busy process (quiet only)",
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds for the samples part")
    parser.add_argument("--sample-targets", default="",
                        help="samples part: only these targets (comma-separated; default both)")  # fmt: skip
    parser.add_argument("--notebooks", nargs="*", type=Path, help="default: the course")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks that it works")
    parser.add_argument("--render", action="store_true", help="only rewrite BENCHMARKS.md")
    parser.add_argument("--results-dir", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=OUT)
    cfg = parser.parse_args(argv)
    for name in ("repeats", "notebook_repeats", "seeds"):
        if getattr(cfg, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(cfg, name)}.")
    if cfg.smoke and cfg.results_dir == RESULTS:
        parser.error("--smoke writes no real results: give --results-dir (and --out) elsewhere.")
    cfg.results_dir.mkdir(parents=True, exist_ok=True)
    if not cfg.render:
        parts = parse_parts(cfg.parts)
        if cfg.smoke:
            cfg.repeats = cfg.notebook_repeats = 1
        start_all = time.perf_counter()
        info = machine()
        for part in parts:
            print(f"== {part} (load average {loadavg()})", flush=True)
            before, start = loadavg(), time.perf_counter()
            data = RUN[part](cfg)
            doc = {"part": part, "machine": info, "load_before": before, "load_after": loadavg(),
                   "seconds": time.perf_counter() - start, "smoke": cfg.smoke, "data": data}  # fmt: skip
            (cfg.results_dir / f"{part}.json").write_text(json.dumps(doc, indent=1))
            print(f"== {part} took {doc['seconds']:.0f} s", flush=True)
        print(f"all parts took {time.perf_counter() - start_all:.0f} s", flush=True)
    print(f"wrote {render(cfg.results_dir, cfg.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
