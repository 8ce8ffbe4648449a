"""Face data: photos with hand-marked face boxes, and faces labelled by identity.

:func:`face_photos` (photos that ship in packages, with the boxes of ``data/faces/boxes.json``)
feeds the detection chapter; :func:`face_nuisance`, :func:`face_standin`,
:func:`face_identities` and :func:`identity_split` (no identity in two splits) the
recognition chapter. The face vs non-face crops are datasets (``"lfw_faces"``,
``"lfw_faces_hard"``) of :func:`tlhelpers.data.load_dataset`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..paths import (
    DownloadNotAllowedError,
    data_dir,
    verify_file,
)
from ..validation import check_choice, check_int
from .batches import TensorImageDataset
from .datasets import SPLITS, load_dataset, sklearn_data_home

__all__ = [
    "FACE_BOXES_SHA256",
    "FACE_IDENTITY_SETS",
    "FACE_SET_HELP",
    "FacePhoto",
    "IdentitySplit",
    "NUISANCES",
    "face_identities",
    "face_nuisance",
    "face_photos",
    "face_standin",
    "identity_split",
]

#: sha256 of ``data/faces/boxes.json``, the hand-marked face boxes (notebook 08a).
FACE_BOXES_SHA256 = "6caeaa4e97eec83b94ccb4682215f3170ce589743404882cee0cb0f3b093d4e7"


class FacePhoto(NamedTuple):
    """A photo with its hand-marked face boxes (``(F, 4)`` xyxy pixels, ``F`` may be 0)."""

    image: np.ndarray
    faces: torch.Tensor
    info: dict


def _load_photo(loader: str) -> np.ndarray:
    if loader.startswith("skimage.data."):
        import skimage.data

        return np.asarray(getattr(skimage.data, loader.split(".")[2].split("(")[0])())
    if loader.startswith("sklearn.datasets.load_sample_image("):
        from sklearn.datasets import load_sample_image

        return load_sample_image(loader.split("'")[1])
    if loader.startswith("matplotlib.image.imread("):
        import matplotlib.cbook
        import matplotlib.image

        sample = matplotlib.cbook.get_sample_data(loader.split("'")[1], asfileobj=False)
        return matplotlib.image.imread(sample)
    raise ValueError(f"Unknown photo loader {loader!r} in data/faces/boxes.json.")


def face_photos(names: Sequence[str] | None = None) -> dict[str, FacePhoto]:
    """Photos that ship in packages (scikit-image, scikit-learn, matplotlib), with and without
    faces, and their hand-marked face boxes from ``data/faces/boxes.json`` (sha256-checked;
    the box convention and provenance are in that file and in ``data/README.md``).

    ``names``: a subset, in that order (default: all, in the file's order). Notebook 08a.
    """
    import json

    path = verify_file(data_dir() / "faces" / "boxes.json", FACE_BOXES_SHA256)
    photos = json.loads(path.read_text())["photos"]
    for n in names or []:
        check_choice("names", n, photos, what="photo")
    out = {}
    for name in names or photos:
        info = photos[name]
        image = _load_photo(info["loader"])
        if list(image.shape) != info["shape"]:
            expected = info["shape"]
            raise ValueError(
                f"photo {name!r} has shape {image.shape}, boxes.json expects {expected}."
            )
        faces = torch.tensor(info["faces"], dtype=torch.float32).reshape(-1, 4)
        out[name] = FacePhoto(image, faces, {k: v for k, v in info.items() if k != "faces"})
    return out


# ---------------------------------------------------------------- face identities (notebook 08b)

#: Nuisances :func:`face_nuisance` can apply, in the order it applies them.
NUISANCES = ("pose", "perspective", "lighting", "blur", "occlusion")

#: Sources of :func:`face_identities`: ``"standin"`` is offline, the others are real sets.
FACE_IDENTITY_SETS = ("standin", "lfw_people", "olivetti")

#: How to get each real set when it is missing (printed by :func:`face_identities`).
FACE_SET_HELP = {
    "lfw_people": (
        "LFW people (about 230 MB) is not in the scikit-learn data home {home}. Get it with "
        "allow_download=True (or TLHELPERS_ALLOW_DOWNLOAD=1) on a machine with network, or "
        "copy an existing scikit-learn 'lfw_home' folder (lfw_funneled/ and the pairs*.txt "
        "files) into that folder and pass it as root."
    ),
    "olivetti": (
        "Olivetti faces (4 MB) is not in the scikit-learn data home {home}. Get it with "
        "allow_download=True (or TLHELPERS_ALLOW_DOWNLOAD=1) on a machine with network, or "
        "copy an existing 'olivetti_py3.pkz' into that folder and pass it as root."
    ),
}


def _homography_grid(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Sampling grid ``(N, H, W, 2)``: output pixel ``p`` (normalised coordinates) reads the
    input at ``(H p)_{xy} / (H p)_z`` for one 3x3 matrix ``H`` per image (``theta (N, 3, 3)``)."""
    h, w = size
    ys = (torch.arange(h, dtype=theta.dtype) * 2 + 1) / h - 1  # pixel centres, align_corners=False
    xs = (torch.arange(w, dtype=theta.dtype) * 2 + 1) / w - 1
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    p = torch.stack([gx, gy, torch.ones_like(gx)], -1).reshape(1, -1, 3)  # (1, HW, 3)
    q = p @ theta.transpose(1, 2)  # (N, HW, 3)
    return (q[..., :2] / q[..., 2:]).reshape(len(theta), h, w, 2)


def _gaussian_blur(images: torch.Tensor, sigmas: np.ndarray) -> torch.Tensor:
    """Each image blurred by its own Gaussian (separable, reflect-padded, radius 3 sigma)."""
    out = torch.empty_like(images)
    for i, s in enumerate(sigmas):
        r = max(1, int(np.ceil(3 * s)))
        t = torch.arange(-r, r + 1, dtype=images.dtype)
        k = torch.exp(-(t**2) / (2 * s * s))
        k = k / k.sum()
        x = images[i : i + 1]
        c = x.shape[1]
        x = F.pad(x, (r, r, 0, 0), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
        x = F.pad(x, (0, 0, r, r), mode="reflect")
        out[i] = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)[0]
    return out


def face_nuisance(
    images: torch.Tensor,
    seed: int = 0,
    *,
    kinds: Sequence[str] = NUISANCES,
    occlusion_p: float = 0.5,
) -> torch.Tensor:
    r"""One randomly distorted view of each face ``(N, C, H, W)`` in [0, 1] (notebook 08b).

    The nuisances a face matcher must ignore, each drawn per image from a local generator
    (``seed``; the global streams are left alone), applied in the order of :data:`NUISANCES`:

    - ``"pose"``: rotation :math:`\pm 10°`, zoom 0.9-1.1, shift :math:`\pm 6\%` (a head
      turned in the image plane, a detector's loose crop);
    - ``"perspective"``: a homography with :math:`|h_{31}|, |h_{32}| \le 0.12` (a head
      turned slightly out of the plane, seen as a keystone; only a stand-in for a 3-D turn);
      both warps are one resampling (bilinear, border pixels repeated);
    - ``"lighting"``: gain 0.7-1.3 times a left-right ramp :math:`1 + g x`, :math:`|g| \le 0.3`
      (light from one side), then a gamma :math:`x^\gamma`, :math:`\gamma` log-uniform in 0.6-1.6;
    - ``"blur"``: a Gaussian of :math:`\sigma` 0.2-0.9 px (focus, motion, low resolution);
    - ``"occlusion"``: with probability ``occlusion_p``, a rectangle of 20-40% of each side
      set to 0 (a hand, sunglasses, a scarf).

    ``kinds`` picks a subset (an empty one returns a copy). Augmentation families of this
    kind are standard in face recognition training (e.g. Schroff et al., 2015, FaceNet).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(
            f"images must be a tensor (N, C, H, W), got "
            f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}."
        )
    kinds = list(kinds) if not isinstance(kinds, str) else [kinds]
    for k in kinds:
        check_choice("kinds", k, NUISANCES)
    if (
        isinstance(occlusion_p, bool)
        or not isinstance(occlusion_p, (int, float))
        or not 0 <= occlusion_p <= 1
    ):
        raise ValueError(f"occlusion_p must be a probability in [0, 1], got {occlusion_p!r}.")
    check_int("seed", seed, minimum=0)
    n, _, h, w = images.shape
    rng = np.random.default_rng(seed)
    # every draw is made whatever ``kinds`` holds, so a nuisance's values for a given seed do
    # not depend on which others are on
    angle = np.deg2rad(rng.uniform(-10, 10, n))
    zoom = rng.uniform(0.9, 1.1, n)
    shift = rng.uniform(-0.06, 0.06, (n, 2)) * 2  # normalised coordinates span 2
    persp = rng.uniform(-0.12, 0.12, (n, 2))
    gain, ramp = rng.uniform(0.7, 1.3, n), rng.uniform(-0.3, 0.3, n)
    gamma = np.exp(rng.uniform(np.log(0.6), np.log(1.6), n))
    sigma = rng.uniform(0.2, 0.9, n)
    occluded = rng.random(n) < occlusion_p
    occ_h = np.round(rng.uniform(0.2, 0.4, n) * h).astype(int).clip(1, h)
    occ_w = np.round(rng.uniform(0.2, 0.4, n) * w).astype(int).clip(1, w)
    occ_top = (rng.random(n) * (h - occ_h + 1)).astype(int)
    occ_left = (rng.random(n) * (w - occ_w + 1)).astype(int)

    x = images.clone()
    if "pose" in kinds or "perspective" in kinds:
        theta = np.tile(np.eye(3), (n, 1, 1))
        if "pose" in kinds:
            c, s = np.cos(angle) / zoom, np.sin(angle) / zoom
            theta[:, 0, :2] = np.stack([c, -s], 1)
            theta[:, 1, :2] = np.stack([s, c], 1)
            theta[:, :2, 2] = shift
        if "perspective" in kinds:
            theta[:, 2, :2] = persp
        grid = _homography_grid(torch.from_numpy(theta).to(x.dtype), (h, w))
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if "lighting" in kinds:
        xs = ((torch.arange(w, dtype=x.dtype) * 2 + 1) / w - 1).view(1, 1, 1, w)
        light = torch.from_numpy(gain).to(x.dtype).view(n, 1, 1, 1) * (
            1 + torch.from_numpy(ramp).to(x.dtype).view(n, 1, 1, 1) * xs
        )
        x = (x * light).clamp(0, 1) ** torch.from_numpy(gamma).to(x.dtype).view(n, 1, 1, 1)
    if "blur" in kinds:
        x = _gaussian_blur(x, sigma)
    if "occlusion" in kinds:
        for i in np.flatnonzero(occluded):
            x[i, :, occ_top[i] : occ_top[i] + occ_h[i], occ_left[i] : occ_left[i] + occ_w[i]] = 0
    return x.clamp_(0, 1)


def face_standin(views: int = 8, seed: int = 0, *, size: int | None = None) -> TensorImageDataset:
    """An offline stand-in for identity-labelled faces: each of scikit-image's 100 LFW face
    crops (25x25 grey) is one "identity", seen in ``views`` views made by :func:`face_nuisance`
    (notebook 08b).

    Targets are the crop's index (0-99), identity by identity, views in order; ``size``
    resizes the crops first (bilinear), so the warps act at that resolution. Seeded.

    What it is not: every view of an identity comes from *one* photo, so expression,
    ageing, hair, make-up and real 3-D pose never change within an identity; and the crops
    carry no names: a few of them look like the same person (crops 0, 36, 73 and 90 look
    alike), so some "impostor" pairs may show one person.
    """
    check_int("views", views, minimum=1)
    check_int("seed", seed, minimum=0)
    from skimage.data import lfw_subset

    faces = torch.from_numpy(lfw_subset()[:100]).float().unsqueeze(1)
    if size is not None:
        check_int("size", size, minimum=8)
        faces = F.interpolate(faces, size=(size, size), mode="bilinear", align_corners=False)
    reps = faces.repeat_interleave(views, dim=0)
    images = face_nuisance(reps, seed=seed)
    targets = torch.arange(100).repeat_interleave(views)
    return TensorImageDataset(images, targets, [f"crop {i}" for i in range(100)])


def face_identities(
    name: str = "standin",
    allow_download: bool = False,
    *,
    root: str | Path | None = None,
    views: int = 8,
    per_identity: int | None = None,
    seed: int = 0,
) -> TensorImageDataset:
    """Face photos labelled by identity, all of them in one set, for identity splits
    (:func:`identity_split`; notebook 08b).

    ``"standin"``: :func:`face_standin` (offline; ``views`` per crop, ``seed``).
    ``"lfw_people"``: scikit-learn's LFW people with at least 20 photos (62 people, 50x37)
    and ``"olivetti"``: the 40 Olivetti subjects, 10 photos each (64x64); both splits of
    :func:`load_dataset` together, from ``root`` (a scikit-learn data home) or the kit's
    cache, downloaded only when allowed. ``per_identity`` keeps at most that many photos of
    each person (the first ones, in a fixed order).

    Raises :class:`~tlhelpers.paths.DownloadNotAllowedError` at once, saying how to get
    the data, when a real set is missing and downloading is not allowed.
    """
    check_choice("name", name, FACE_IDENTITY_SETS, what="dataset")
    if per_identity is not None:
        check_int("per_identity", per_identity, minimum=2)
    if name == "standin":
        data = face_standin(views, seed)
    else:
        real = "lfw_people" if name == "lfw_people" else "olivetti_faces"
        try:
            parts = [load_dataset(real, s, allow_download, root=root) for s in SPLITS]
        except DownloadNotAllowedError as err:
            home = sklearn_data_home(Path(root) if root else None)
            raise DownloadNotAllowedError(
                FACE_SET_HELP[name].format(home=home) + f" ({err})"
            ) from None
        images = torch.cat([p.images for p in parts])
        targets = torch.cat([p.targets for p in parts])
        order = torch.argsort(targets, stable=True)
        data = TensorImageDataset(images[order], targets[order], parts[0].classes)
    if per_identity is not None:
        keep = np.concatenate(
            [
                np.flatnonzero(data.targets.numpy() == c)[:per_identity]
                for c in range(len(data.classes))
            ]
        )
        data = data.subset(np.sort(keep))
    return data


class IdentitySplit(NamedTuple):
    """Indices of the training, validation and test images; no identity is in two of them."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def identity_split(
    labels: torch.Tensor | np.ndarray, n_val: int, n_test: int, seed: int = 0
) -> IdentitySplit:
    """Split images by **identity** (``labels``: one identity id per image): ``n_val`` and
    ``n_test`` identities drawn at random (local generator, ``seed``) give the validation and
    test images, the rest train.

    Verification is measured on people never seen in training, and whatever is chosen
    (margins, rates) is chosen on other unseen people (the validation identities), as face
    benchmarks do. Identities with a single image are left out of validation and test
    (they form no genuine pair) and go to training. Indices are sorted.
    """
    t = np.asarray(labels.numpy() if isinstance(labels, torch.Tensor) else labels)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {t.shape}.")
    check_int("n_val", n_val, minimum=1)
    check_int("n_test", n_test, minimum=1)
    ids, counts = np.unique(t, return_counts=True)
    pairable = ids[counts >= 2]
    if n_val + n_test > len(pairable) - 1:
        raise ValueError(
            f"n_val + n_test must leave at least one identity to train on: the data hold "
            f"{len(pairable)} identities with two or more images, got n_val={n_val}, "
            f"n_test={n_test}."
        )
    drawn = np.random.default_rng(seed).permutation(pairable)
    val_ids, test_ids = drawn[:n_val], drawn[n_val : n_val + n_test]
    is_val, is_test = np.isin(t, val_ids), np.isin(t, test_ids)
    return IdentitySplit(
        np.flatnonzero(~is_val & ~is_test), np.flatnonzero(is_val), np.flatnonzero(is_test)
    )
