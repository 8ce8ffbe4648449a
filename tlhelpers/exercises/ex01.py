"""Exercises of notebook 01 (preprocessing): channel statistics, normalisation, the MMD domain gap.

``from tlhelpers.exercises import ex01``; ``ex01.normalize.check(normalize)``.
"""

from __future__ import annotations

import torch

from ..losses import mmd2 as _mmd2
from ._core import Exercise, Wrong, call_student, close, diagnose, off_by, tensor, worst_entry

__all__ = ["stats", "normalize", "mmd"]


def _images(seed: int, n: int = 6, c: int = 3, h: int = 5, w: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shift = torch.tensor([0.2, 0.5, 0.7][:c]).view(1, c, 1, 1)
    return torch.rand(n, c, h, w, generator=g) * 0.5 + shift


def _check_stats(fn, hidden: bool) -> str:
    for seed, shape in (
        [(0, (6, 3, 5, 4)), (1, (4, 1, 3, 3))] if not hidden else [(5, (3, 3, 2, 7))]
    ):
        x = _images(seed, *shape)
        out = call_student(fn, x.clone(), name="channel_stats")
        if not isinstance(out, tuple) or len(out) != 2:
            raise Wrong(f"`channel_stats` should return (mean, std), got a {type(out).__name__}.")
        c = shape[1]
        mean = tensor(out[0], "the mean", device="cpu")
        std = tensor(out[1], "the std", device="cpu")
        want_m, want_s = x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3))
        for got, what in ((mean, "mean"), (std, "std")):
            if tuple(got.shape) != (c,):
                raise Wrong(
                    f"the {what} has shape {tuple(got.shape)}, but there should be one value per "
                    f"channel, shape ({c},): reduce over dims (0, 2, 3) of (N, C, H, W)."
                )
        if not close(mean, want_m, rtol=1e-4):
            raise Wrong(f"the mean: {worst_entry(mean, want_m)}.")
        if not close(std, want_s, rtol=1e-3):
            if close(std, want_s.pow(2), rtol=1e-3):
                raise Wrong("you returned the variance; the std is its square root.")
            raise Wrong(f"the std: {worst_entry(std, want_s)}.")
    return "One mean and one std per channel, over images and pixels."


stats = Exercise(
    id="ex01_stats",
    title="The target's own channel statistics",
    minutes=5,
    checker=_check_stats,
    answer_name="channel_stats",
    hints=[
        "A batch of images has shape (N, C, H, W); a channel's statistics pool every image and every pixel.",
        "Tensor.mean and Tensor.std take a tuple of dims to reduce.",
        "return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))",
    ],
    solution_code="""
    def channel_stats(images):
        return images.mean(dim=(0, 2, 3)), images.std(dim=(0, 2, 3))
    """,
)


def _check_normalize(fn, hidden: bool) -> str:
    # W = C = 3 first: a (C,) mean then broadcasts over W silently, the classic slip
    cases = [(2, (4, 3, 5, 3)), (3, (2, 3, 4, 6))] if not hidden else [(7, (5, 3, 3, 2))]
    for seed, shape in cases:
        x = _images(seed, *shape)
        mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
        before = x.clone()
        out = call_student(fn, x, mean, std, name="normalize")
        if out is None:
            raise Wrong(
                "`normalize` returned None: return the normalised batch (and leave the input as it was)."
            )
        if not torch.equal(before, x):
            raise Wrong("your function changed its input in place; return a new tensor.")
        out = tensor(out, "the normalised batch", shape=shape, device="cpu")
        m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        want = (x - m) / s
        if out.dtype != x.dtype and not close(out, want, rtol=1e-4, atol=1e-5):
            # a right formula in a dtype that cannot hold the answer: say so, not broadcasting
            why = (
                "an integer tensor cannot hold normalised values (they are fractions, some "
                "negative)"
                if not out.is_floating_point()
                else f"{out.dtype} keeps too few digits"
            )
            raise Wrong(
                f"the normalised batch has dtype {out.dtype}, but the images are {x.dtype}: "
                f"{why}; {worst_entry(out, want)}. Return the images' dtype: no .long(), "
                ".int() or .half(), and build mean and std with dtype=images.dtype."
            )
        if not close(out, want, rtol=1e-4, atol=1e-5):
            per_image = (x - x.mean(dim=(1, 2, 3), keepdim=True)) / x.std(
                dim=(1, 2, 3), keepdim=True
            )
            variants = [
                (x - m, "you subtracted the mean but did not divide by the std."),
                ((x - m) * s, "multiply by the std was a slip: divide by it."),
                (x / s - m, "the order matters: subtract the mean first, then divide by the std."),
                (
                    per_image,
                    "you standardised each image with its own statistics; use the given mean and std.",
                ),
            ]
            raise Wrong(
                diagnose(
                    out,
                    variants,
                    f"for a batch of shape {shape}: {worst_entry(out, want)}. "
                    "The mean and std are per channel: view them as (1, C, 1, 1).",
                )
            )
    return "(x - mean) / std per channel, broadcast over images and pixels."


normalize = Exercise(
    id="ex01_normalize",
    title="Normalise a batch per channel",
    minutes=5,
    checker=_check_normalize,
    answer_name="normalize",
    hints=[
        "Each channel c becomes (x[:, c] - mean[c]) / std[c].",
        "torch.tensor(mean) has shape (3,); broadcasting lines it up with the LAST dim (W) unless "
        "you reshape it to (1, 3, 1, 1).",
        "m = torch.tensor(mean).view(1, -1, 1, 1); s = torch.tensor(std).view(1, -1, 1, 1); return (images - m) / s",
    ],
    solution_code="""
    def normalize(images, mean, std):
        m = torch.tensor(mean, dtype=images.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=images.dtype).view(1, -1, 1, 1)
        return (images - m) / s
    """,
)


def _check_mmd(fn, hidden: bool) -> str:
    cases = [(0, 6, 5, 3, 1.0), (1, 4, 7, 2, 0.5)] if not hidden else [(9, 5, 5, 4, 2.0)]
    for seed, n, m, d, sigma in cases:
        g = torch.Generator().manual_seed(30 + seed)
        x = torch.randn(n, d, generator=g).requires_grad_(True)
        y = (torch.randn(m, d, generator=g) + 0.7).requires_grad_(False)
        out = call_student(fn, x, y, sigma, name="mmd2")
        if out is None:
            raise Wrong("`mmd2` returned None: did you forget `return`?")
        out = tensor(out, "MMD^2", device="cpu")
        if out.ndim != 0:
            raise Wrong(
                f"MMD^2 should be a 0-D tensor, got shape {tuple(out.shape)}: average the kernel matrices."
            )
        xd, yd = x.detach(), y.detach()
        want = _mmd2(xd, yd, sigma).item()
        got = out.item()
        if not close(got, want, rtol=1e-4):

            def k(a, b, c=2 * sigma**2):
                return torch.exp(-torch.cdist(a, b).pow(2) / c)

            kxx, kyy, kxy = k(xd, xd), k(yd, yd), k(xd, yd)
            variants = [
                (
                    kxx.mean() + kyy.mean() - kxy.mean(),
                    "the cross term counts twice: - 2 E k(x, y).",
                ),
                (
                    k(xd, xd, sigma**2).mean()
                    + k(yd, yd, sigma**2).mean()
                    - 2 * k(xd, yd, sigma**2).mean(),
                    "the Gaussian kernel is exp(-||a - b||^2 / (2 sigma^2)): the 2 is missing.",
                ),
                (
                    k(xd, xd, sigma).mean() + k(yd, yd, sigma).mean() - 2 * k(xd, yd, sigma).mean(),
                    "the kernel divides by 2 sigma^2, not by sigma.",
                ),
                (
                    (kxx.sum() - n) / (n * (n - 1))
                    + (kyy.sum() - m) / (m * (m - 1))
                    - 2 * kxy.mean(),
                    "that is the unbiased estimator; this exercise asks for the biased one (keep i == j).",
                ),
                (
                    torch.exp(-torch.cdist(xd, xd) / (2 * sigma**2)).mean()
                    + torch.exp(-torch.cdist(yd, yd) / (2 * sigma**2)).mean()
                    - 2 * torch.exp(-torch.cdist(xd, yd) / (2 * sigma**2)).mean(),
                    "torch.cdist gives distances; the kernel needs squared distances.",
                ),
            ]
            raise Wrong(
                diagnose(got, variants, f"for n={n}, m={m}, sigma={sigma}: {off_by(got, want)}.")
            )
        if not out.requires_grad:
            raise Wrong(
                "MMD^2 has no gradient with respect to x: keep it a tensor computation (no numpy, no .item())."
            )
    return "The biased MMD^2 with a Gaussian kernel, differentiable in x."


mmd = Exercise(
    id="ex01_mmd",
    title="The domain gap: MMD^2 with a Gaussian kernel",
    minutes=15,
    checker=_check_mmd,
    answer_name="mmd2",
    hints=[
        "MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y), every pair included (the biased estimator).",
        "torch.cdist(a, b) gives the (len(a), len(b)) matrix of distances; square it for the kernel "
        "k = exp(-d^2 / (2 sigma^2)).",
        "k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2)); "
        "return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()",
    ],
    solution_code="""
    def mmd2(x, y, sigma):
        def k(a, b):
            return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))

        return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()
    """,
)
