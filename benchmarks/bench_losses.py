"""Time budgets of the loss catalogue: ``mmd2`` on two 512 x 1,280 batches < 0.2 s.

python benchmarks/bench_losses.py
"""

from __future__ import annotations

import time

import torch

from tlhelpers.losses import coral, mmd2


def best_of(fn, repeats: int = 7) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 1280, generator=g)
    y = torch.randn(512, 1280, generator=g) + 0.1
    print(f"torch threads: {torch.get_num_threads()}")
    for est in ("biased", "unbiased", "linear"):
        t = best_of(lambda est=est: mmd2(x, y, estimator=est))
        print(f"mmd2 {est:8s} 512x1280, median bandwidth: {t * 1e3:7.1f} ms (budget 200 ms)")
    xr = x.clone().requires_grad_(True)

    def fwd_bwd():
        mmd2(xr, y).backward()

    print(f"mmd2 biased forward+backward:             {best_of(fwd_bwd) * 1e3:7.1f} ms")
    print(f"coral 512x1280:                           {best_of(lambda: coral(x, y)) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
