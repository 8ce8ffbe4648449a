"""Datasets, task splits, few-shot subsets, batching, preprocessing and augmentation (notebooks 00-01).

Offline by default: ``fashion_mnist`` (files in ``data/``), ``lfw_faces`` and
``lfw_faces_hard`` (scikit-image) and ``digits`` (scikit-learn) need no network. ``cifar10``,
``lfw_people`` and ``olivetti_faces`` load from a local copy and download only
when allowed (``allow_download=True`` or ``TLHELPERS_ALLOW_DOWNLOAD=1``).

Every dataset is a :class:`TensorImageDataset`: all images in one float tensor
``(N, C, H, W)`` in ``[0, 1]``, so that batching, few-shot subsets and feature
caching are vectorised. :func:`iterate_batches` is the kit's one way to walk
``Data`` (a dataset or an ``(inputs, targets)`` pair) in batches.
"""

from __future__ import annotations

import functools
import gzip
import pickle
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence, Sized
from pathlib import Path
from typing import NamedTuple, cast

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from .paths import (
    CacheRebuiltWarning,
    DownloadNotAllowedError,
    HashMismatchError,
    atomic_write,
    cache_dir,
    data_dir,
    download_allowed,
    require_download,
    sha256sum,
    verify_file,
)
from .runtime import seeded
from .validation import check_choice, check_int

#: What the kit's batched helpers accept: a dataset of ``(x, y)`` or an ``(inputs, targets)`` pair.
Data = Dataset | tuple[torch.Tensor, torch.Tensor]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

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

#: Named source/target tasks: (dataset, classes kept, in this order).
TASKS: dict[str, tuple[str, tuple[int, ...]]] = {
    "fmnist_a": ("fashion_mnist", (0, 1, 2, 3, 4)),  # tops & trousers: source task A
    "fmnist_b": ("fashion_mnist", (5, 6, 7, 8, 9)),  # shoes, shirt, bag: target task B
    "fmnist_even": ("fashion_mnist", (0, 2, 4, 6, 8)),  # a random-like split (Yosinski)
    "fmnist_odd": ("fashion_mnist", (1, 3, 5, 7, 9)),
    # A random split (as Yosinski et al., 2014): every target class has a relative in the
    # source (shirt/T-shirt, sneaker/sandal and boot, dress/trouser), so transfer is strong.
    "fmnist_rand_a": ("fashion_mnist", (2, 3, 4, 6, 7)),  # pullover, dress, coat, shirt, sneaker
    "fmnist_rand_b": ("fashion_mnist", (0, 1, 5, 8, 9)),  # T-shirt, trouser, sandal, bag, boot
    # a mixed split: tops and shoes on both sides, so every target class has a source sibling
    "fmnist_mixed_a": ("fashion_mnist", (1, 2, 4, 7, 8)),  # trouser, pullover, coat, sneaker, bag
    "fmnist_mixed_b": ("fashion_mnist", (0, 3, 5, 6, 9)),  # T-shirt, dress, sandal, shirt, boot
    "digits": ("digits", tuple(range(10))),  # scikit-learn's 8x8 digits: another grey domain
}


class TensorImageDataset(Dataset):
    """Images ``(N, C, H, W)`` float in [0, 1] with integer ``targets`` and ``classes`` names.

    ``transform`` (optional) is applied to a single image in ``__getitem__``;
    vectorised code reads ``images`` and ``targets`` directly.
    """

    def __init__(
        self,
        images: torch.Tensor,
        targets: torch.Tensor,
        classes: Sequence[str],
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
        if len(images) != len(targets):
            raise ValueError(
                f"images and targets differ in length: {len(images)} vs {len(targets)}."
            )
        targets = torch.as_tensor(targets)
        if targets.is_floating_point() and bool((targets != targets.round()).any()):
            raise ValueError("targets must hold integer class labels, got non-integer floats.")
        self.images = images.float()
        self.targets = targets.long()
        self.classes = list(classes)
        if len(self.targets):
            # a label without a class name would be dropped silently by few_shot and counts
            lo, hi = int(self.targets.min()), int(self.targets.max())
            if lo < 0 or hi >= len(self.classes):
                bad = lo if lo < 0 else hi
                raise ValueError(
                    f"targets hold label {bad} but there are {len(self.classes)} class names "
                    f"{self.classes[:5]}; labels must lie in 0..{len(self.classes) - 1}."
                )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[i])

    def subset(self, indices: Sequence[int] | torch.Tensor | np.ndarray) -> TensorImageDataset:
        """A new dataset with the selected items (copies the index, shares nothing mutable)."""
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return TensorImageDataset(self.images[idx], self.targets[idx], self.classes, self.transform)

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.targets, minlength=len(self.classes)).tolist()
        return dict(zip(self.classes, counts, strict=True))

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return (
            f"TensorImageDataset(n={len(self)}, image_shape={shape}, classes={len(self.classes)})"
        )


# ---------------------------------------------------------------- batching


def _as_tensors(data: Data) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(inputs, targets)`` tensors when the data already live in memory, else None."""
    if isinstance(data, tuple) and len(data) == 2:
        return torch.as_tensor(data[0]), torch.as_tensor(data[1])
    images, targets = getattr(data, "images", None), getattr(data, "targets", None)
    if (
        isinstance(images, torch.Tensor)
        and isinstance(targets, torch.Tensor)
        and getattr(data, "transform", None) is None
    ):
        return images, targets
    if isinstance(data, TensorDataset) and len(data.tensors) == 2:
        return data.tensors[0], data.tensors[1]
    return None


def data_length(data: Data) -> int:
    """Number of examples in ``data`` (a dataset or an ``(inputs, targets)`` pair)."""
    if isinstance(data, tuple):
        return len(data[1])
    if not isinstance(data, Sized):
        raise TypeError(
            "data must have a length (a map-style Dataset or an (inputs, targets) pair), "
            f"got {type(data).__name__}."
        )
    return len(data)


def check_data(name: str, data: Data, *, check_finite: bool = True) -> int:
    """Validate training/evaluation data; return its number of examples.

    Refuses, naming ``name``: empty data, inputs and targets of different lengths (a
    pair of 8 images and 7 labels would silently lose an image), NaN/inf inputs when
    ``check_finite`` (in-memory data are checked at once, naming the first bad item; other
    datasets batch by batch in :func:`tlhelpers.training.fit`), negative integer labels
    and labels beyond the dataset's ``classes``.
    """
    if isinstance(data, tuple):
        if len(data) != 2:
            raise ValueError(
                f"{name} must be a Dataset or an (inputs, targets) pair, got a tuple of "
                f"{len(data)}."
            )
        n_x, n_y = len(data[0]), len(data[1])
        if n_x != n_y:
            raise ValueError(f"{name} has {n_x} inputs but {n_y} targets; they must match.")
    n = data_length(data)
    if n == 0:
        raise ValueError(f"{name} is empty (0 items); nothing to train or evaluate on.")
    tensors = _as_tensors(data)
    if tensors is None:
        return n
    x, y = tensors
    if len(x) != len(y):
        raise ValueError(f"{name} has {len(x)} inputs but {len(y)} targets.")
    if check_finite and x.is_floating_point():
        bad = ~torch.isfinite(x.reshape(len(x), -1)).all(1)
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise ValueError(
                f"{name} has NaN or inf inputs in {int(bad.sum())} item(s), first at item "
                f"{first}; fix the data or pass check_finite=False to skip this check."
            )
    if not y.is_floating_point() and y.numel() and y.dtype != torch.bool:
        lo, hi = int(y.min()), int(y.max())
        classes = getattr(data, "classes", None)
        if lo < 0:
            raise ValueError(f"{name} has label {lo}; labels must be >= 0.")
        if classes is not None and hi >= len(classes):
            raise ValueError(
                f"{name} has label {hi} but only {len(classes)} class names "
                f"(valid labels 0..{len(classes) - 1})."
            )
    return n


def iterate_batches(
    data: Data,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(x, y)`` batches; in-memory data are sliced directly (no per-item overhead).

    ``shuffle`` draws the order from ``generator`` (torch's global one if ``None``).
    """
    check_int("batch_size", batch_size, minimum=1)
    tensors = _as_tensors(data)
    if tensors is None:
        dataset = cast(Dataset, data)  # a pair (not a Dataset) has tensors above
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)
        yield from loader
        return
    x, y = tensors
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        yield x[idx], y[idx]


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
        check_choice("photo", n, photos)
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


def _sklearn_home(root: Path | None) -> str:
    return str(Path(root) if root else cache_dir("sklearn"))


def _stratified_halves(y: np.ndarray, split: str, test_size: float) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=test_size, stratify=y, random_state=0)
    return np.sort(tr if split == "train" else te)


def _olivetti_faces(split: str, allow_download: bool, root: Path | None) -> TensorImageDataset:
    from sklearn.datasets import fetch_olivetti_faces

    allowed = download_allowed(allow_download)
    try:
        d = fetch_olivetti_faces(data_home=_sklearn_home(root), download_if_missing=allowed)
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
            data_home=_sklearn_home(root), min_faces_per_person=20, resize=0.4,
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
    check_choice("dataset", name, DATASETS)
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


# ---------------------------------------------------------------- tasks and subsets


def select_classes(
    dataset: TensorImageDataset, classes: Sequence[int], relabel: bool = True
) -> TensorImageDataset:
    """Keep only ``classes`` (original label ids); with ``relabel`` map them to ``0..k-1``."""
    classes = [check_int("class id", c, minimum=0) for c in classes]
    bad = [c for c in classes if c >= len(dataset.classes)]
    if bad:
        raise ValueError(f"Class ids {bad} out of range 0..{len(dataset.classes) - 1}.")
    keep = torch.isin(dataset.targets, torch.tensor(classes))
    images, targets = dataset.images[keep], dataset.targets[keep]
    names = [dataset.classes[c] for c in classes]
    if relabel:
        lut = torch.full((len(dataset.classes),), -1, dtype=torch.long)
        lut[torch.tensor(classes)] = torch.arange(len(classes))
        targets = lut[targets]
        return TensorImageDataset(images, targets, names, dataset.transform)
    return TensorImageDataset(images, targets, dataset.classes, dataset.transform)


def load_task(name: str, split: str = "train") -> TensorImageDataset:
    """A named source/target task (see :data:`TASKS`), labels relabelled to ``0..k-1``.

    ``"fmnist_a"`` = Fashion-MNIST classes 0-4 (source task A), ``"fmnist_b"`` =
    classes 5-9 (target task B); ``"fmnist_even"``/``"fmnist_odd"`` are a random-like split;
    ``"fmnist_rand_a"``/``"fmnist_rand_b"`` a random split with a pretrained source (notebook 03);
    ``"fmnist_mixed_a"``/``"fmnist_mixed_b"`` a mixed split, tops and shoes on both sides
    (notebook 04).
    """
    check_choice("task", name, TASKS)
    dataset, classes = TASKS[name]
    return select_classes(load_dataset(dataset, split), classes)


def _number_of_classes(t: np.ndarray, classes: Sequence[str] | None) -> int:
    """Classes to draw from; refuses labels < 0 or beyond the class names (no silent drop)."""
    if t.size and t.min() < 0:
        raise ValueError(f"targets hold label {t.min()}; labels must be >= 0.")
    n_classes = len(classes) if classes is not None else int(t.max()) + 1
    if classes is not None and t.size and t.max() >= n_classes:
        raise ValueError(
            f"targets hold label {t.max()} but there are {n_classes} class names; "
            f"labels must lie in 0..{n_classes - 1}."
        )
    return n_classes


def few_shot_indices(
    targets: torch.Tensor | np.ndarray,
    per_class: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> np.ndarray:
    """Sorted indices of exactly ``per_class`` items of every class ``0..K-1``.

    The draw behind :func:`few_shot`; use it directly to pick rows of cached features.
    Raises ``ValueError`` naming the class (with its name from ``classes``) when it has
    fewer than ``per_class`` items, and for empty, non-1-D or non-integer ``targets``
    (NaN, 0.5, strings; whole-valued floats are accepted as labels).
    """
    check_int("per_class", per_class, minimum=1)
    check_int("seed", seed, minimum=0)
    t = np.asarray(targets)
    if t.size == 0:
        raise ValueError(
            f"targets is empty (shape {t.shape}): few_shot_indices needs at least "
            f"per_class={per_class} labelled items of every class."
        )
    if t.ndim != 1:
        raise ValueError(f"targets must be 1-D class labels, got shape {t.shape}.")
    if t.dtype.kind not in "iu":
        whole = t.dtype.kind == "f" and bool(np.all(np.isfinite(t) & (t == np.round(t))))
        if not whole:  # NaN, 0.5 or strings would give a misleading count or numpy's error
            shown = t[~(np.isfinite(t) & (t == np.round(t)))][:3] if t.dtype.kind == "f" else t[:3]
            raise ValueError(
                f"targets must be integer class labels 0..K-1, got dtype {t.dtype} "
                f"with values such as {shown.tolist()}."
            )
        t = t.astype(np.int64)
    n_classes = _number_of_classes(t, classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(n_classes):
        members = np.flatnonzero(t == c)
        if len(members) < per_class:
            name = f" ({classes[c]!r})" if classes is not None else ""
            raise ValueError(
                f"per_class={per_class} but class {c}{name} has only {len(members)} items."
            )
        chosen.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen))


def few_shot(dataset: TensorImageDataset, per_class: int, seed: int = 0) -> TensorImageDataset:
    """A stratified subset with exactly ``per_class`` items of every class.

    The same ``seed`` gives the same subset. Raises ``ValueError`` naming the
    class when it has fewer than ``per_class`` items.
    """
    return dataset.subset(few_shot_indices(dataset.targets, per_class, seed, dataset.classes))


class Split(NamedTuple):
    """Training, validation and test sets (unpack as ``train, val, test = split``)."""

    train: TensorImageDataset
    val: TensorImageDataset
    test: TensorImageDataset


def train_val_indices(
    targets: torch.Tensor | np.ndarray,
    per_class: int,
    val_per_class: int,
    seed: int = 0,
    classes: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted, disjoint ``(train, val)`` indices: ``per_class`` and ``val_per_class`` per class.

    Per class, one seeded permutation of its items: the first ``per_class`` train, the
    next ``val_per_class`` validate. Raises ``ValueError`` naming the class that has fewer
    than ``per_class + val_per_class`` items.
    """
    check_int("per_class", per_class, minimum=1)
    check_int("val_per_class", val_per_class, minimum=1)
    t = np.asarray(targets)
    n_classes = _number_of_classes(t, classes)
    rng = np.random.default_rng(seed)
    train, val = [], []
    need = per_class + val_per_class
    for c in range(n_classes):
        members = np.flatnonzero(t == c)
        if len(members) < need:
            name = f" ({classes[c]!r})" if classes is not None else ""
            raise ValueError(
                f"per_class + val_per_class = {need} but class {c}{name} has only "
                f"{len(members)} items."
            )
        perm = rng.permutation(members)
        train.append(perm[:per_class])
        val.append(perm[per_class:need])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def train_val_test(
    train_pool: TensorImageDataset,
    test_pool: TensorImageDataset,
    per_class: int,
    *,
    val_per_class: int,
    n_test: int | None = None,
    seed: int = 0,
    test_seed: int = 0,
) -> Split:
    """The course's protocol: choose on validation, report the test set once.

    - ``train``: ``per_class`` labelled images per class from ``train_pool`` (seeded by ``seed``);
    - ``val``: ``val_per_class`` *other* images per class from ``train_pool`` (same seed),
      used for every choice (strength, steps, learning rate);
    - ``test``: ``n_test`` images of ``test_pool`` (all when None), drawn with
      ``test_seed`` only, so every seed is evaluated on the same test images and
      per-seed results can be compared pairwise.

    A validation set larger than a few-shot training set is a teaching simplification:
    it makes choices reliable enough to study; with truly few labels one would
    cross-validate on the training images instead.
    """
    check_int("val_per_class", val_per_class, minimum=1)
    tr, va = train_val_indices(
        train_pool.targets, per_class, val_per_class, seed, train_pool.classes
    )
    if n_test is None:
        test = test_pool
    else:
        check_int("n_test", n_test, minimum=1)
        if n_test > len(test_pool):
            raise ValueError(f"n_test must be <= {len(test_pool)} (the test pool), got {n_test}.")
        g = torch.Generator().manual_seed(test_seed)
        test = test_pool.subset(torch.randperm(len(test_pool), generator=g)[:n_test])
    return Split(train_pool.subset(tr), train_pool.subset(va), test)


# ---------------------------------------------------------------- preprocessing


def prepare_images(
    images: torch.Tensor,
    size: int | None = None,
    channels: int | None = None,
    normalization: str | tuple[Sequence[float], Sequence[float]] | None = "imagenet",
) -> torch.Tensor:
    """Fit a batch ``(N, C, H, W)`` in [0, 1] to what a source model expects (notebook 01).

    - ``size``: bilinear resize (antialiased when shrinking) to ``size x size``.
    - ``channels``: 3 repeats a grey channel (ImageNet models expect RGB).
    - ``normalization``: ``"imagenet"`` (the source's statistics), ``None``, or a
      ``(mean, std)`` pair, e.g. the target's own from :func:`channel_stats`.
    """
    x = images
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}.")
    if size is not None and x.shape[-1] != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    if channels is not None and x.shape[1] != channels:
        if x.shape[1] != 1:
            raise ValueError(f"Can only expand 1 channel to {channels}, got {x.shape[1]}.")
        x = x.expand(-1, channels, -1, -1)
    if normalization is None:
        return x
    mean: Sequence[float]
    std: Sequence[float]
    if isinstance(normalization, str):
        check_choice("normalization", normalization, ["imagenet"])
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        mean, std = normalization
    mean_t = torch.as_tensor(mean, dtype=x.dtype).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=x.dtype).view(1, -1, 1, 1)
    if mean_t.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"normalization has {mean_t.shape[1]} channels, images {x.shape[1]}.")
    return (x - mean_t) / std_t


def channel_stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of a batch ``(N, C, H, W)`` (the target's own statistics)."""
    return images.mean(dim=(0, 2, 3)).tolist(), images.std(dim=(0, 2, 3)).tolist()


class Preprocess:
    """Batch transform ``(N, C, H, W)`` -> resized, ``channels``, normalised (notebook 01).

    ``normalization`` is ``"imagenet"``, ``None`` or a ``(mean, std)`` pair (e.g. the
    target's own from :func:`channel_stats`). Its ``repr`` is stable, so it can key
    :func:`tlhelpers.features.extract_features` caches.
    """

    def __init__(
        self,
        size: int | None = None,
        channels: int | None = None,
        normalization: str | tuple | None = "imagenet",
    ):
        self.size = size
        self.channels = channels
        if isinstance(normalization, tuple):
            mean, std = normalization
            normalization = (
                tuple(round(float(m), 6) for m in mean),
                tuple(round(float(s), 6) for s in std),
            )
        self.normalization = normalization

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return prepare_images(images, self.size, self.channels, self.normalization)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, channels={self.channels}, "
            f"normalization={self.normalization!r})"
        )


class ImageNetInput(Preprocess):
    """What ImageNet backbones expect: resize to ``size``, grey -> RGB, ImageNet mean/std."""

    def __init__(self, size: int = 64, normalization: str | tuple | None = "imagenet"):
        super().__init__(size, 3, normalization)


# ---------------------------------------------------------------- target statistics

#: Input normalisations compared in notebook 01.
NORMALIZATIONS = ("imagenet", "target", "none")


def target_normalization(images: torch.Tensor, channels: int = 3) -> tuple[list, list]:
    """The target's own per-channel ``(mean, std)``, repeated for ``channels`` if grey."""
    mean, std = channel_stats(images)
    if len(mean) == 1 and channels > 1:
        mean, std = mean * channels, std * channels
    return mean, std


def normalization_for(name: str, images: torch.Tensor, channels: int = 3):
    """``"imagenet"`` -> ``"imagenet"``, ``"target"`` -> own stats, ``"none"`` -> ``None``."""
    check_choice("normalization", name, NORMALIZATIONS)
    if name == "target":
        return target_normalization(images, channels)
    return None if name == "none" else "imagenet"


# ---------------------------------------------------------------- augmentation

#: Augmentations of :func:`augment` (notebook 01).
AUGMENTATIONS = ("flip", "crop", "rotate", "jitter", "all")


def augment(images: torch.Tensor, kind: str = "all", seed: int = 0) -> torch.Tensor:
    """Randomly augmented copies of a batch ``(N, C, H, W)`` in [0, 1] (one draw per image).

    ``kind``: ``"flip"`` (horizontal), ``"crop"`` (random resized crop, 70-100% area),
    ``"rotate"`` (+-15 degrees), ``"jitter"`` (brightness/contrast +-30%) or ``"all"``.
    torchvision draws from torch's global generator, so the draw runs inside
    :func:`tlhelpers.runtime.seeded`: the caller's random stream is left as it was.
    """
    check_choice("kind", kind, AUGMENTATIONS)
    from torchvision.transforms import v2

    size = images.shape[-2:]
    ops = {
        "flip": v2.RandomHorizontalFlip(p=0.5),
        "crop": v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True),
        "rotate": v2.RandomRotation(15),
        "jitter": v2.ColorJitter(brightness=0.3, contrast=0.3),
    }
    t = v2.Compose(list(ops.values())) if kind == "all" else ops[kind]
    with seeded(seed):
        out = torch.stack([t(img) for img in images])
    return out.clamp(0, 1)


# ---------------------------------------------------------------- natural photos

_SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
)


def natural_photos(n: int = 200, size: int = 64, seed: int = 0) -> torch.Tensor:
    """``n`` random square crops (``size`` px, RGB in [0, 1]) of offline natural photos (notebook 01).

    The photos are scikit-image's ``astronaut, chelsea, coffee, rocket, hubble_deep_field,
    immunohistochemistry, motorcycle_left`` (those present) and scikit-learn's two sample
    images: a tiny, honest stand-in for "ImageNet-like" source images. Crop sides are
    drawn between 30% and 70% of the shorter side, then resized to ``size``.
    """
    check_int("n", n, minimum=1)
    check_int("size", size, minimum=2)
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = []
    for name in _SKIMAGE_PHOTOS:
        try:
            img = getattr(skimage.data, name)()
        except Exception:  # noqa: BLE001 - a photo missing from this skimage is just skipped
            continue
        if img.ndim == 3 and img.shape[2] >= 3:
            photos.append(img[..., :3])
    photos += list(load_sample_images().images)
    tensors = [torch.from_numpy(np.array(p)).permute(2, 0, 1).float() / 255.0 for p in photos]
    rng = np.random.default_rng(seed)
    out = torch.empty(n, 3, size, size)
    for i in range(n):
        img = tensors[rng.integers(len(tensors))]
        h, w = img.shape[1:]
        side = int(rng.uniform(0.3, 0.7) * min(h, w))
        top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
        crop = img[:, top : top + side, left : left + side].unsqueeze(0)
        out[i] = prepare_images(crop, size, None, None)[0]
    return out.clamp_(0, 1)


# ---------------------------------------------------------------- geometric regression targets (notebook 05b)

#: Continuous properties :func:`geometric_target` applies to an image and returns as the target.
GEOMETRIC_TARGETS = ("rotation", "scale")


def _affine(images: torch.Tensor, values: torch.Tensor, name: str, matrix) -> torch.Tensor:
    """Resample ``images`` through one 2x3 affine ``matrix(value)`` per image (zero padding)."""
    if images.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}.")
    values = torch.as_tensor(values, dtype=images.dtype)
    if values.shape != (len(images),):
        raise ValueError(
            f"{name} must hold one value per image, shape ({len(images)},), "
            f"got {tuple(values.shape)}."
        )
    if not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or inf values.")
    theta = matrix(values)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def rotate_images(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    r"""Each image ``(N, C, H, W)`` turned by its angle in degrees, counter-clockwise as displayed.

    Output pixel :math:`p` (centred coordinates) reads the input at :math:`R(-\varphi)\,p`
    (bilinear, zeros outside, the black Fashion-MNIST background), so 90 degrees equals
    ``torch.rot90(image, 1, dims=(1, 2))`` (a test checks it). Notebook 05b's regression target.
    """

    def matrix(deg: torch.Tensor) -> torch.Tensor:
        # affine_grid's y axis points down: an on-screen counter-clockwise turn by phi
        # samples the input at [[cos, -sin], [sin, cos]] in these coordinates.
        r = torch.deg2rad(deg)
        c, s = torch.cos(r), torch.sin(r)
        z = torch.zeros_like(r)
        return torch.stack([torch.stack([c, -s, z], 1), torch.stack([s, c, z], 1)], 1)

    return _affine(images, angles, "angles", matrix)


def scale_images(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    r"""Each image ``(N, C, H, W)`` zoomed about its centre by its factor (< 1 shrinks it).

    Output pixel :math:`p` reads the input at :math:`p / s` (bilinear, zeros outside), so an
    object's side is multiplied by :math:`s`. Factors must be > 0. Notebook 05b.
    """
    factors = torch.as_tensor(factors)
    if factors.numel() and bool((factors <= 0).any()):
        raise ValueError(f"factors must be > 0, got min {float(factors.min())}.")

    def matrix(s: torch.Tensor) -> torch.Tensor:
        inv, z = 1.0 / s, torch.zeros_like(s)
        return torch.stack([torch.stack([inv, z, z], 1), torch.stack([z, inv, z], 1)], 1)

    return _affine(images, factors, "factors", matrix)


def geometric_target(
    images: torch.Tensor, kind: str, low: float, high: float, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A regression task made from images: ``(transformed images, values)`` (notebook 05b).

    Each image gets a value drawn uniformly from ``[low, high]`` (a local generator seeded
    by ``seed``) and is transformed by it: ``"rotation"`` (degrees, :func:`rotate_images`)
    or ``"scale"`` (zoom factor, :func:`scale_images`; ``low`` must be > 0). The value is
    known exactly, so the target is honest: no label noise, and the features must read a
    continuous property of the image, not a class.
    """
    check_choice("kind", kind, GEOMETRIC_TARGETS)
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
            raise ValueError(f"{name} must be a finite number, got {v!r}.")
    if not low < high:
        raise ValueError(f"low must be < high, got low={low!r}, high={high!r}.")
    if kind == "scale" and low <= 0:
        raise ValueError(
            f"a scale factor must be > 0: low must be > 0 for kind 'scale', got {low!r}."
        )
    g = torch.Generator().manual_seed(seed)
    values = low + (high - low) * torch.rand(len(images), generator=g, dtype=images.dtype)
    fn = rotate_images if kind == "rotation" else scale_images
    return fn(images, values), values


def random_labels(n: int, num_classes: int, seed: int) -> torch.Tensor:
    """``n`` labels drawn uniformly from ``0..num_classes-1`` with a local generator (``seed``)."""
    return torch.randint(num_classes, (n,), generator=torch.Generator().manual_seed(seed))


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
    check_choice("dataset", name, FACE_IDENTITY_SETS)
    if per_identity is not None:
        check_int("per_identity", per_identity, minimum=2)
    if name == "standin":
        data = face_standin(views, seed)
    else:
        real = "lfw_people" if name == "lfw_people" else "olivetti_faces"
        try:
            parts = [load_dataset(real, s, allow_download, root=root) for s in SPLITS]
        except DownloadNotAllowedError as err:
            home = _sklearn_home(Path(root) if root else None)
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
    targets: torch.Tensor | np.ndarray, n_val: int, n_test: int, seed: int = 0
) -> IdentitySplit:
    """Split images by **identity**: ``n_val`` and ``n_test`` identities drawn at random
    (local generator, ``seed``) give the validation and test images, the rest train.

    Verification is measured on people never seen in training, and whatever is chosen
    (margins, rates) is chosen on other unseen people (the validation identities), as face
    benchmarks do. Identities with a single image are left out of validation and test
    (they form no genuine pair) and go to training. Indices are sorted.
    """
    t = np.asarray(targets.numpy() if isinstance(targets, torch.Tensor) else targets)
    if t.ndim != 1 or t.size == 0:
        raise ValueError(f"targets must be a non-empty 1-D array, got shape {t.shape}.")
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
# ---------------------------------------------------------------- domain shifts (notebook 09)

#: Synthetic domain shifts of :func:`shift_images`: name -> what it does.
SHIFTS: dict[str, str] = {
    "inverted": "1 - x: dark object on a light background",
    "coloured": "x * fg + (1 - x) * bg, a random RGB colour for object and background per image "
    "(3 channels out)",
    "noisy": "x + N(0, 0.4^2) per pixel, clipped to [0, 1]",
    "rotated": "turned by an angle drawn uniformly from 30 to 90 degrees per image",
}


def shift_images(images: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """A shifted target domain made from images ``(N, C, H, W)`` in [0, 1] (notebook 09).

    ``kind`` (:data:`SHIFTS`): ``"inverted"`` (``1 - x``), ``"coloured"`` (every image gets a
    random foreground colour ``fg`` and background colour ``bg``, uniform in ``[0, 1]^3``, and
    becomes ``x fg + (1 - x) bg``, three channels, grey input averaged first: a crude
    MNIST-M, Ganin et al. 2016), ``"noisy"`` (additive Gaussian noise, sigma 0.4, clipped)
    or ``"rotated"`` (an angle uniform in [30, 90] degrees per image, :func:`rotate_images`).
    The labels are unchanged: only the input distribution moves (a covariate shift). Random
    draws use a local generator seeded by ``seed`` (the same images for the same seed; the
    global random stream is untouched). The output is a new tensor in [0, 1]. Images with
    NaN/inf pixels or values outside [0, 1] (0..255 scale, normalised images) are refused.
    """
    check_choice("kind", kind, SHIFTS)
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor, got {shape}.")
    if not images.is_floating_point():
        raise ValueError(f"images must be floating point in [0, 1], got dtype {images.dtype}.")
    if images.shape[0] == 0:
        raise ValueError(f"images is empty (shape {tuple(images.shape)}): nothing to shift.")
    lo_t, hi_t = torch.aminmax(images.detach())  # one pass; NaN propagates into both
    lo, hi = float(lo_t), float(hi_t)
    if not (np.isfinite(lo) and np.isfinite(hi)):  # 'noisy', 'inverted' passed NaN on
        bad = ~torch.isfinite(images)
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(
            f"images contains NaN or inf values ({int(bad.sum())} pixels, the first at "
            f"{where}); shifts need finite pixels in [0, 1]."
        )
    if lo < 0 or hi > 1:
        hint = ("divide by 255 first" if hi > 1 and lo >= 0
                else "shift the raw images, before normalising them")  # fmt: skip
        raise ValueError(
            f"images must lie in [0, 1], got values in [{lo:.4g}, {hi:.4g}]: {hint} "
            "(the shifts and their output are defined on [0, 1])."
        )
    check_int("seed", seed, minimum=0)
    g = torch.Generator().manual_seed(seed)
    n = len(images)
    if kind == "inverted":
        return 1.0 - images
    if kind == "coloured":
        grey = images.mean(1, keepdim=True)
        fg = torch.rand(n, 3, 1, 1, generator=g, dtype=images.dtype)
        bg = torch.rand(n, 3, 1, 1, generator=g, dtype=images.dtype)
        return (grey * fg + (1.0 - grey) * bg).clamp(0, 1)
    if kind == "noisy":
        noise = torch.randn(images.shape, generator=g, dtype=images.dtype)
        return (images + 0.4 * noise).clamp(0, 1)
    angles = 30.0 + 60.0 * torch.rand(n, generator=g, dtype=images.dtype)
    return rotate_images(images, angles).clamp(0, 1)
