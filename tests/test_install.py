"""A wheel built from this tree, installed into a fresh virtual environment, run from a folder
outside the checkout: the shipped per-dataset configs, grids and sweeps come with it.

The fresh environment reuses the development environment's third-party packages (torch and
the rest) through a ``.pth`` file, so nothing is downloaded and pip never sees a torch to
resolve: the wheel is installed with ``--no-deps --no-index``. About 5 s.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _sh(*cmd: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, f"{cmd}: {out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """Build the wheel from a copy of the tree, install it into a new venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("src", "configs"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    py = sys.executable
    pytest.importorskip("setuptools", reason="building the wheel offline needs setuptools (dev)")
    _sh(py, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
        "-w", tmp / "dist", src, cwd=tmp)  # fmt: skip
    wheel = next((tmp / "dist").glob("unseen-*.whl"))
    venv = tmp / "venv"
    vpy = venv / "bin" / "python"
    install = ["install", "-q", "--no-deps", "--no-index", str(wheel)]
    _sh(py, "-m", "venv", "--without-pip", venv, cwd=tmp)
    try:  # this pip installs into the new venv (pip >= 22.3): no pip needed inside it
        _sh(py, "-m", "pip", "--python", vpy, *install, cwd=tmp)
    except AssertionError:  # an older pip: give the venv its own (bundled, offline)
        shutil.rmtree(venv)
        _sh(py, "-m", "venv", venv, cwd=tmp)
        _sh(vpy, "-m", "pip", *install, cwd=tmp)
    purelib = Path(
        _sh(vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp).strip()
    )
    deps = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    (purelib / "_unseen_test_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "python": vpy, "cwd": elsewhere, "wheel": wheel, "purelib": purelib}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "UNSEEN_CONFIG_PATH")}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


def _resolve(installed: dict[str, Path], **env: str) -> dict:
    code = (
        "import json, unseen; from unseen.config import resolve_run_config; "
        "c = resolve_run_config('clswgan', 'FLO'); "
        "print(json.dumps({'file': unseen.__file__, 'params': c.method_params, "
        "'sources': c.sources}))"
    )
    return json.loads(_sh(installed["python"], "-c", code, cwd=installed["cwd"], env=_env(**env)))


def test_wheel_ships_the_configs(installed):
    import zipfile

    names = zipfile.ZipFile(installed["wheel"]).namelist()
    shipped = {n.split("unseen/configs/", 1)[1] for n in names if "unseen/configs/" in n}
    in_tree = {str(p.relative_to(REPO / "configs")) for p in (REPO / "configs").rglob("*.yaml")}
    assert in_tree and in_tree <= shipped


def test_installed_unseen_resolves_the_paper_config(installed):
    got = _resolve(installed)
    assert got["file"].startswith(str(installed["venv"]))  # not the checkout's src/
    paper = yaml.safe_load((REPO / "configs" / "clswgan" / "FLO.yaml").read_text())["method"]
    assert got["params"] == paper and got["params"]  # not the method defaults ({})
    assert any("unseen/configs/clswgan/FLO.yaml" in s for s in got["sources"])


def test_user_config_folder_overrides_the_shipped_one(installed, tmp_path):
    (tmp_path / "clswgan").mkdir()
    (tmp_path / "clswgan" / "FLO.yaml").write_text("method: {cls_weight: 0.5}\n")
    got = _resolve(installed, UNSEEN_CONFIG_PATH=str(tmp_path))
    assert got["params"] == {"cls_weight": 0.5}
    assert str(tmp_path / "clswgan" / "FLO.yaml") in got["sources"]


def test_installed_cli_lists_the_shipped_grid_from_anywhere(installed):
    unseen = installed["venv"] / "bin" / "unseen"
    out = _sh(unseen, "bench", "configs/bench/tiny.yaml", "--list", "--out", "b",
              cwd=installed["cwd"], env=_env())  # fmt: skip
    assert "f-CLSWGAN cls0.1" in out and "to run" in out
