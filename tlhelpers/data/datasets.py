"""Datasets by name: :func:`load_dataset` and the files and seeds behind each one.

Offline by default: ``fashion_mnist`` (files in ``data/``), ``lfw_faces`` and
``lfw_faces_hard`` (scikit-image; the hard negatives are crops of scikit-image photos
without a face, :func:`face_hard_negatives`) and ``digits`` (scikit-learn) need no network.
``cifar10``, ``lfw_people`` and ``olivetti_faces`` load from a local copy and download only
when allowed (``allow_download=True`` or ``TLHELPERS_ALLOW_DOWNLOAD=1``).
"""

from __future__ import annotations

import functools
import gzip
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..paths import (
    CacheRebuiltWarning,
    HashMismatchError,
    atomic_write,
    cache_dir,
    data_dir,
    download_allowed,
    require_download,
    sha256sum,
    verify_file,
)
from ..validation import check_choice
from .batches import TensorImageDataset

__all__ = [
    "CIFAR10_CLASSES",
    "DATASETS",
    "FACE_KINDS",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_FILES",
    "FASHION_MNIST_UNPACKED",
    "HARD_NEGATIVES_SEED",
    "HARD_NEGATIVE_SCALE",
    "HARD_NEGATIVE_SOURCES",
    "LFW_FACES_SPLIT_SEED",
    "N_HARD_NEGATIVES",
    "N_LFW_BACKGROUNDS",
    "OFFLINE_DATASETS",
    "ONLINE_DATASETS",
    "SPLITS",
    "face_hard_negatives",
    "face_kinds",
    "fashion_mnist_raw_dir",
    "load_dataset",
    "read_cifar10",
    "sklearn_data_home",
]

FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip

#: sha256 of the four Fashion-MNIST files committed in ``data/fashion-mnist``.
FASHION_MNIST_FILES = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

#: sha256 of the unpacked files (the cache under ``cache_dir("fashion_mnist")``), checked
#: on every load: an altered or truncated unpacked file is unpacked again.
FASHION_MNIST_UNPACKED = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}

OFFLINE_DATASETS = ("fashion_mnist", "lfw_faces", "lfw_faces_hard", "digits")
ONLINE_DATASETS = ("cifar10", "lfw_people", "olivetti_faces")
DATASETS = OFFLINE_DATASETS + ONLINE_DATASETS
SPLITS = ("train", "test")


# ---------------------------------------------------------------- offline datasets


def fashion_mnist_raw_dir() -> Path:
    """Unpack the committed ``.gz`` files (verified) into torchvision's layout; return the root.

    torchvision's ``FashionMNIST`` reads uncompressed files from ``root/FashionMNIST/raw``.
    Every call checks each unpacked file against its recorded sha256
    (:data:`FASHION_MNIST_UNPACKED`; about 0.1 s for the 55 MB): an altered or truncated
    one is unpacked again once, with a :class:`~tlhelpers.paths.CacheRebuiltWarning`
    naming it. Unpacking writes a temporary file in the same folder, checks its hash and
    renames it (nothing is left behind on failure; an error names the file).
    """
    root = cache_dir("fashion_mnist")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    src = data_dir() / "fashion-mnist"
    for gz, sha in FASHION_MNIST_FILES.items():
        out = raw / gz[:-3]
        expected = FASHION_MNIST_UNPACKED[out.name]
        if out.is_file():
            if sha256sum(out) == expected:
                continue
            warnings.warn(
                f"{out} does not match its recorded sha256 (altered or truncated); "
                f"unpacking it again from {src / gz}.",
                CacheRebuiltWarning,
                stacklevel=2,
            )
        path = src / gz
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing. It ships with the repository (data/fashion-mnist/); "
                "on Debian `apt-get install dataset-fashion-mnist` also provides it."
            )
        verify_file(path, sha)
        with atomic_write(out) as tmp:
            with gzip.open(path, "rb") as f_in, open(tmp, "wb") as f_out:
                shutil.copyfileobj(f_in, f_out)
            got = sha256sum(tmp)
            if got != expected:  # raised inside: the temporary file is removed
                raise HashMismatchError(
                    f"Unpacking {path} gave {out} with sha256 {got}, not the recorded "
                    f"{expected}; the installation is inconsistent (reinstall the kit)."
                )
    return root


def _fashion_mnist(split: str) -> TensorImageDataset:
    from torchvision.datasets import FashionMNIST

    ds = FashionMNIST(str(fashion_mnist_raw_dir()), train=split == "train", download=False)
    images = ds.data.unsqueeze(1).float().div_(255.0)
    return TensorImageDataset(images, ds.targets, FASHION_MNIST_CLASSES)


#: Fixed split of scikit-image's LFW subset: per class, a permutation with this seed,
#: first 50 to train and last 50 to test.
LFW_FACES_SPLIT_SEED = 0


def _lfw_faces(split: str) -> TensorImageDataset:
    from skimage.data import lfw_subset

    x = lfw_subset()  # (200, 25, 25) float64 in [0, 1]; first 100 are faces
    y = np.r_[np.ones(100, dtype=int), np.zeros(100, dtype=int)]
    rng = np.random.default_rng(LFW_FACES_SPLIT_SEED)
    halves = []
    for c in (0, 1):
        members = rng.permutation(np.flatnonzero(y == c))
        halves.append(members[:50] if split == "train" else members[50:])
    idx = np.sort(np.concatenate(halves))
    images = torch.from_numpy(x[idx]).float().unsqueeze(1)
    return TensorImageDataset(images, torch.from_numpy(y[idx]), ["non-face", "face"])


#: scikit-image sample photos without a human face (each checked by eye), the sources
#: of the hard negatives of ``"lfw_faces_hard"``. Whole photos are assigned to one split,
#: so no test crop overlaps a training crop. Left out on purpose: ``astronaut`` and
#: ``camera`` (a person's face), ``coins`` (heads on coins), ``phantom`` (a head model),
#: and the synthetic images (``checkerboard``, ``colorwheel``, ``logo``, ``horse``).
HARD_NEGATIVE_SOURCES: dict[str, tuple[str, ...]] = {
    "train": ("chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
              "gravel", "cell"),
    "test": ("coffee", "clock", "moon", "retina", "text", "page", "grass"),
}  # fmt: skip
#: Seed of everything random in ``"lfw_faces_hard"``: crop positions and sizes, and which
#: faces and LFW background crops go to which split.
HARD_NEGATIVES_SEED = 0
#: Hard-negative crops per split, and LFW background crops per split (50 non-faces each).
N_HARD_NEGATIVES = 25
N_LFW_BACKGROUNDS = 25
#: Crop side as a fraction of the photo's shorter side (uniform in this range).
HARD_NEGATIVE_SCALE = (0.12, 0.5)


def _grey_photo(name: str) -> torch.Tensor:
    """A scikit-image sample photo as a grey ``(H, W)`` float tensor in [0, 1]."""
    import skimage.data
    from skimage.color import rgb2gray
    from skimage.util import img_as_float

    img = np.asarray(getattr(skimage.data, name)())
    if img.ndim == 3:
        img = rgb2gray(img[..., :3])  # drop an alpha channel, luminance weights of Rec. 709
    return torch.from_numpy(img_as_float(img)).float()


def _stretch(x: torch.Tensor, lo: float = 0.05, hi: float = 0.9) -> torch.Tensor:
    """Map ``x``'s min..max to ``lo..hi`` (about the grey range of the LFW face crops)."""
    span = (x.max() - x.min()).clamp_min(1e-6)
    return (x - x.min()) / span * (hi - lo) + lo


def face_hard_negatives(split: str) -> tuple[torch.Tensor, list[str]]:
    """The hard non-faces of ``"lfw_faces_hard"``: ``(crops (N, 1, 25, 25), source photo names)``.

    ``N_HARD_NEGATIVES`` square crops, spread evenly over the split's photos
    (:data:`HARD_NEGATIVE_SOURCES`): side uniform in :data:`HARD_NEGATIVE_SCALE` of the
    shorter side, position uniform, grey, resized to 25x25 (bilinear, antialiased) and
    contrast-stretched to the faces' grey range, so that brightness and contrast alone do
    not tell them from faces. Seeded (:data:`HARD_NEGATIVES_SEED` and the split), so the
    same crops every time.
    """
    check_choice("split", split, SPLITS)
    crops, sources = _hard_negatives(split)
    return crops.clone(), list(sources)


@functools.lru_cache(maxsize=2)
def _hard_negatives(split: str) -> tuple[torch.Tensor, tuple[str, ...]]:
    names = HARD_NEGATIVE_SOURCES[split]
    rng = np.random.default_rng([HARD_NEGATIVES_SEED, SPLITS.index(split)])
    counts = [len(c) for c in np.array_split(np.arange(N_HARD_NEGATIVES), len(names))]
    crops, sources = [], []
    for name, count in zip(names, counts, strict=True):
        photo = _grey_photo(name)
        h, w = photo.shape
        for _ in range(count):
            side = int(rng.uniform(*HARD_NEGATIVE_SCALE) * min(h, w))
            top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            crop = photo[top : top + side, left : left + side][None, None]
            crop = F.interpolate(crop, size=(25, 25), mode="bilinear", antialias=True,
                                 align_corners=False)  # fmt: skip
            crops.append(_stretch(crop[0]))
            sources.append(name)
    return torch.stack(crops), tuple(sources)


#: What each item of ``"lfw_faces_hard"`` is, in the dataset's order (:func:`face_kinds`).
FACE_KINDS = ("LFW background", "hard negative", "face")


def face_kinds(split: str) -> list[str]:
    """The kind of every item of ``load_dataset("lfw_faces_hard", split)``, in its order.

    One of :data:`FACE_KINDS`: scikit-image's LFW background crops and the hard negatives
    (both labelled non-face), then the faces.
    """
    check_choice("split", split, SPLITS)
    n_hard = len(_hard_negatives(split)[0])
    return [FACE_KINDS[0]] * N_LFW_BACKGROUNDS + [FACE_KINDS[1]] * n_hard + [FACE_KINDS[2]] * 50


def _lfw_faces_hard(split: str) -> TensorImageDataset:
    from skimage.data import lfw_subset

    x = torch.from_numpy(lfw_subset()).float().unsqueeze(1)  # first 100 faces, then 100 not
    rng = np.random.default_rng(HARD_NEGATIVES_SEED)
    faces, backgrounds = rng.permutation(100), 100 + rng.permutation(100)
    half = 0 if split == "train" else 1
    face_idx = faces[half * 50 : (half + 1) * 50]
    bg_idx = backgrounds[half * N_LFW_BACKGROUNDS : (half + 1) * N_LFW_BACKGROUNDS]
    hard, _ = face_hard_negatives(split)
    images = torch.cat([x[np.sort(bg_idx)], hard, x[np.sort(face_idx)]])
    n_non = len(bg_idx) + len(hard)
    targets = torch.cat([torch.zeros(n_non, dtype=torch.long), torch.ones(50, dtype=torch.long)])
    return TensorImageDataset(images, targets, ["non-face", "face"])


def _digits(split: str) -> TensorImageDataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    tr, te = train_test_split(
        np.arange(len(d.target)), test_size=0.3, stratify=d.target, random_state=0
    )
    idx = tr if split == "train" else te
    images = torch.from_numpy(d.images[idx] / 16.0).float().unsqueeze(1)
    return TensorImageDataset(images, torch.from_numpy(d.target[idx]), [str(i) for i in range(10)])


# ---------------------------------------------------------------- online datasets

CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def read_cifar10(folder: str | Path, split: str) -> TensorImageDataset:
    """Read CIFAR-10 from its python-pickle layout (``cifar-10-batches-py``).

    Files ``data_batch_1..5`` / ``test_batch``: dicts with ``b"data"`` (N, 3072) uint8
    in channel-major order and ``b"labels"``; ``batches.meta`` holds ``b"label_names"``.
    """
    folder = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    xs, ys = [], []
    for name in names:
        with open(folder / name, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
    classes = CIFAR10_CLASSES
    meta = folder / "batches.meta"
    if meta.is_file():
        with open(meta, "rb") as f:
            classes = [c.decode() for c in pickle.load(f, encoding="bytes")[b"label_names"]]
    images = torch.from_numpy(np.concatenate(xs)).float().div_(255.0)
    return TensorImageDataset(images, torch.from_numpy(np.concatenate(ys)), classes)


def _cifar10(split: str, allow_download: bool, root: Path | None) -> TensorImageDataset:
    root = Path(root) if root else cache_dir("cifar10")
    folder = root / "cifar-10-batches-py"
    if not (folder / "test_batch").is_file():
        require_download("CIFAR-10 (170 MB)", allow_download)
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)  # fetches and md5-checks the archive
    return read_cifar10(folder, split)


def sklearn_data_home(root: Path | None) -> str:
    """The scikit-learn data home: ``root`` when given, else the kit's cache folder."""
    return str(Path(root) if root else cache_dir("sklearn"))


def _stratified_halves(y: np.ndarray, split: str, test_size: float) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=0)
    return np.sort(tr if split == "train" else te)


def _olivetti_faces(split: str, allow_download: bool, root: Path | None) -> TensorImageDataset:
    from sklearn.datasets import fetch_olivetti_faces

    allowed = download_allowed(allow_download)
    try:
        d = fetch_olivetti_faces(data_home=sklearn_data_home(root), download_if_missing=allowed)
    except OSError:
        require_download("Olivetti faces (4 MB)", allowed)
        raise
    idx = _stratified_halves(d.target, split, test_size=0.3)
    images = torch.from_numpy(d.images[idx]).float().unsqueeze(1)
    return TensorImageDataset(
        images, torch.from_numpy(d.target[idx]), [f"person {i}" for i in range(40)]
    )


def _lfw_people(split: str, allow_download: bool, root: Path | None) -> TensorImageDataset:
    from sklearn.datasets import fetch_lfw_people

    allowed = download_allowed(allow_download)
    try:
        d = fetch_lfw_people(
            data_home=sklearn_data_home(root), min_faces_per_person=20, resize=0.4,
            download_if_missing=allowed,
        )  # fmt: skip
    except OSError:
        require_download("LFW people (about 230 MB)", allowed)
        raise
    idx = _stratified_halves(d.target, split, test_size=0.3)
    # scikit-learn already scales LFW grey levels to [0, 1]
    images = torch.from_numpy(d.images[idx]).float().unsqueeze(1)
    return TensorImageDataset(images, torch.from_numpy(d.target[idx]), list(d.target_names))


def load_dataset(
    name: str,
    split: str = "train",
    allow_download: bool = False,
    *,
    root: str | Path | None = None,
) -> TensorImageDataset:
    """Load a dataset by name as ``(image_tensor, label)`` pairs with a ``classes`` attribute.

    Offline: ``"fashion_mnist"`` (60,000/10,000, 28x28 grey, from ``data/``),
    ``"lfw_faces"`` (scikit-image's 100 face + 100 non-face 25x25 crops; fixed
    split, 50 per class each way), ``"lfw_faces_hard"`` (the same faces against
    LFW background crops *and* hard negatives cropped from scikit-image photos without a
    human face, see :func:`face_hard_negatives`; 50 faces and 25 + 25 non-faces per
    split, hard negatives of the two splits from different photos), ``"digits"`` (scikit-learn, 8x8; fixed
    stratified 70/30 split). Online (downloaded only when allowed; ``root``
    overrides the cache folder): ``"cifar10"``, ``"olivetti_faces"``,
    ``"lfw_people"`` (people with at least 20 images; stratified 70/30 split).

    Raises ``ValueError`` listing the valid names/splits, and
    ``DownloadNotAllowedError`` at once when data would have to be downloaded.
    """
    check_choice("name", name, DATASETS, what="dataset")
    check_choice("split", split, SPLITS)
    if name == "fashion_mnist":
        return _fashion_mnist(split)
    if name == "lfw_faces":
        return _lfw_faces(split)
    if name == "lfw_faces_hard":
        return _lfw_faces_hard(split)
    if name == "digits":
        return _digits(split)
    loader = {"cifar10": _cifar10, "olivetti_faces": _olivetti_faces, "lfw_people": _lfw_people}
    return loader[name](split, allow_download, Path(root) if root else None)
