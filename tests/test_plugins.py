"""Methods from outside the package: the README's "Adding a method" example, loaded with
``--plugin``, goes through run, export, predict, plot and bench; installed packages add
methods through the ``unseen.methods`` entry-point group."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

import unseen.methods.base as base
from unseen.cli import main
from unseen.errors import ConfigError

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = ["--set", "method.epochs=2", "--set", "selection.eval_every=2", "--set",
         "selection.n_synthetic=[20]", "--set", "classifier.epochs=2", "--set",
         "selection.health=false", "--quiet"]  # fmt: skip


def readme_example() -> str:
    """The Python block of the README's "Adding a method" section, as printed there."""
    text = README.read_text()
    section = text.split("## Adding a method", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "README: no Python example under 'Adding a method'"
    return blocks[0]


@pytest.fixture
def registry():
    """Plugins register into process-wide state: put it back after each test."""
    saved = (
        dict(base._REGISTRY),
        list(base._PLUGINS),
        dict(base._PLUGIN_ERRORS),
        base._ENTRY_POINTS_LOADED,
        set(sys.modules),
    )
    yield
    base._REGISTRY.clear()
    base._REGISTRY.update(saved[0])
    base._PLUGINS[:] = saved[1]
    base._PLUGIN_ERRORS.clear()
    base._PLUGIN_ERRORS.update(saved[2])
    base._ENTRY_POINTS_LOADED = saved[3]
    for name in set(sys.modules) - saved[4]:
        if "plugin" in name or name.startswith(("my_", "unseen_test_")):
            del sys.modules[name]


@pytest.fixture
def plugin(tmp_path, registry) -> Path:
    path = tmp_path / "my_meanreg.py"
    path.write_text(readme_example())
    return path


def test_readme_example_end_to_end(plugin, tmp_path, monkeypatch, capsys):
    import numpy as np

    run_dir, art = tmp_path / "r", tmp_path / "m.unseen"
    monkeypatch.chdir(tmp_path)  # --plugin MODULE finds my_meanreg.py in the current folder
    assert main(["run", "my-meanreg", "--dataset", "demo", "--out", str(run_dir), "--seeds",
                 "0", "1", *SMALL, "--plugin", "my_meanreg"]) == 0  # fmt: skip
    assert (run_dir / "results.json").exists()
    base._REGISTRY.pop("my-meanreg")  # a new process: the plugin is not loaded
    assert main(["export", str(run_dir), "--out", str(art)]) == 2
    assert "--plugin" in capsys.readouterr().err
    assert main(["export", str(run_dir), "--out", str(art), "--plugin", str(plugin)]) == 0
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((4, 64)).astype(np.float32))
    assert main(["predict", str(art), "--features", str(tmp_path / "x.npy"), "--plugin",
                 str(plugin)]) == 0  # fmt: skip
    for fig in (["bars", str(run_dir)], ["curves", str(run_dir)],
                ["tsne", str(run_dir), "--per-class", "10", "--max-classes", "3"]):  # fmt: skip
        assert main(["plot", *fig, "--plugin", str(plugin)]) == 0
    assert (run_dir / "figures" / "tsne-unseen-seed0.png").exists()
    capsys.readouterr()
    assert main(["methods", "--plugin", str(plugin)]) == 0
    assert "my-meanreg" in capsys.readouterr().out


def test_readme_example_in_a_bench_grid_with_worker_processes(plugin, tmp_path, capsys):
    raw = {
        "name": "plug",
        "datasets": ["demo"],
        "seeds": [0],
        "set": {k.split("=")[0]: yaml.safe_load(k.split("=")[1]) for k in SMALL[1:-1:2]},
        "entries": [
            {
                "label": "mine",
                "method": "my-meanreg",
                "variants": {"a": {}, "b": {"method.noise": 0.2}},
            }
        ],
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "b"
    argv = ["bench", str(tmp_path / "g.yaml"), "--out", str(out), "--jobs", "2"]
    assert main(argv) == 2  # unknown without the plugin: an error, not a silent skip
    assert "--plugin" in capsys.readouterr().err
    assert main([*argv, "--plugin", str(plugin)]) == 0  # two spawned workers load it again
    text = capsys.readouterr().out
    assert "2 ran, 0 failed" in text and (out / "report.md").exists()


def test_plugin_errors_are_one_sentence(registry, tmp_path, capsys):
    (tmp_path / "broken.py").write_text("raise RuntimeError('no GPU driver')\n")
    (tmp_path / "clash.py").write_text(
        "from unseen.methods.meanreg import MeanReg\n"
        "from unseen.methods.base import register\n"
        "class Other(MeanReg):\n    name = 'clswgan'\n"
        "register(Other)\n"
    )
    for spec, needle in [
        (str(tmp_path / "nope.py"), "not found"),
        ("no_such_module_xyz", "no module named"),
        (str(tmp_path / "broken.py"), "no GPU driver"),
        (str(tmp_path / "clash.py"), "already registered"),
    ]:
        assert main(["methods", "--plugin", spec]) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err, err


def test_entry_point_group_adds_installed_methods(registry, tmp_path, monkeypatch):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "unseen_test_plugin.py").write_text(readme_example())
    dist = pkg / "unseen_test_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: unseen-test-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text("[unseen.methods]\nmy-meanreg = unseen_test_plugin\n")
    broken = pkg / "broken_plugin-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[unseen.methods]\nbroken = no_such_module_abc\n")
    monkeypatch.syspath_prepend(str(pkg))
    base._ENTRY_POINTS_LOADED = False
    methods = base.available_methods()
    assert "my-meanreg" in methods and "clswgan" in methods  # a broken one blocks nothing
    assert "broken" in base.plugin_errors()
    with pytest.raises(ConfigError, match=r"broken failed to load"):
        base.get_method("nosuch")
