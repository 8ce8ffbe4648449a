"""Time the transferability scores on a realistic model-choice workload.

Workload of notebook 02 ("model choice"): 10,000 target images, 1,280-D pooled
features (MobileNetV2/EfficientNet-B0 size), 10 target classes, a 1,000-class
source head. Budget: ``logme`` under 2 s on a 2-core CPU.

Run: ``python benchmarks/bench_transferability.py [--repeats 3]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from tlhelpers.transferability import h_score, leep, logme, nce


def make_workload(n=10_000, d=1_280, n_classes=10, n_source=1_000, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n)
    centres = rng.normal(size=(n_classes, d))
    # ReLU-like non-negative features with some class signal
    features = np.maximum(rng.normal(size=(n, d)) + 0.3 * centres[labels], 0).astype(np.float32)
    logits = rng.normal(size=(n, n_source)).astype(np.float32)
    logits[np.arange(n), labels * 7] += 3.0
    probs = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    return features, labels, probs


def best_time(fn, repeats):
    times, value = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    features, labels, probs = make_workload()
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, features {features.shape} {features.dtype}, "
        f"{len(np.unique(labels))} classes, source_probs {probs.shape}"
    )
    # worst case for the fixed-point iteration: features unrelated to the labels
    noise = np.random.default_rng(1).normal(size=features.shape).astype(np.float32)
    cases = {
        "logme (numpy in)": lambda: logme(features, labels),
        "logme (random f)": lambda: logme(noise, labels),
        "logme (torch in)": lambda: logme(torch.from_numpy(features), torch.from_numpy(labels)),
        "h_score": lambda: h_score(features, labels),
        "leep": lambda: leep(probs, labels),
        "nce": lambda: nce(probs, labels),
    }
    for name, fn in cases.items():
        seconds, value = best_time(fn, args.repeats)
        print(f"{name:18s} {seconds:7.3f} s (best of {args.repeats})  value {value:.4f}")


if __name__ == "__main__":
    main()
