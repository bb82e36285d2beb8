"""Package layout that pyproject.toml alone cannot state: the top-level ``configs/`` folder
(per-dataset configs, grids and sweeps) ships inside the wheel as the ``unseen.configs``
package, so an installed unseen resolves ``configs/<method>/<DATASET>.yaml`` like a checkout
does (read through :mod:`importlib.resources`, see :func:`unseen.config.shipped_config_dir`).
Everything else (metadata, dependencies, scripts) is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages("src"), "unseen.configs"],
    package_dir={"": "src", "unseen.configs": "configs"},
    package_data={"unseen.configs": ["**/*.yaml"]},
)
