r"""MeanReg: class means regressed from semantics, plus isotropic noise (a reference row).

Not a paper: the README's "Adding a method" example promoted to a registered baseline, so
every report shows what a generator must beat. A two-layer MLP :math:`g` maps a class's
semantic vector to a feature vector, trained by least squares on the seen training
features (:math:`\min_g \sum_i \lVert g(a_{y_i}) - x_i \rVert^2`, whose minimiser is the
class mean of each seen class); samples are :math:`x = g(a) + \sigma \epsilon`,
:math:`\epsilon \sim N(0, I)`.

Measured as a new user would run it (``unseen run meanreg --dataset FLO ...``, method
defaults, 3 seeds): calibrated H 63.2 ± 0.7 on FLO in about 22 s per seed (issue 13's note),
within a point of f-CLSWGAN there. A generative method that cannot beat this row is not
earning its cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, MethodConfig, minibatch_epoch, register

__all__ = ["MeanReg", "MeanRegConfig"]


@dataclass
class MeanRegConfig(MethodConfig):
    """MeanReg hyper-parameters (the README example's values).

    Attributes:
        hidden: hidden width of the regression MLP (one ReLU layer).
        lr: Adam learning rate.
        noise: standard deviation :math:`\\sigma` of the noise added to the regressed mean.
    """

    epochs: int = 30
    batch_size: int = 64
    hidden: int = 256
    lr: float = 1e-3
    noise: float = 0.1


@register
class MeanReg(GenerativeMethod):
    """x ~ g(a) + noise * N(0, I), g fitted by least squares on seen features."""

    name = "meanreg"
    config_class = MeanRegConfig
    paper = "(reference row, no paper) class means regressed from semantics + noise"
    config: MeanRegConfig
    supports_seed_batch = True  # draws and reductions through the seed-axis helpers

    def _build(self, dims: dict[str, int]) -> None:
        c = self.config
        if c.noise < 0:
            raise ConfigError(f"meanreg: noise must be >= 0, got {c.noise}")
        g = nn.Sequential(
            nn.Linear(dims["semantic_dim"], c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, dims["feature_dim"]),
        )
        self.nets_ = nn.ModuleDict({"g": g})
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": torch.optim.Adam(self.nets_["g"].parameters(), self.config.lr)}

    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        g = self.nets_["g"]
        sem = data.semantics.to(data.features.dtype)

        def losses(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            mse = self.seed_mean((g(sem[data.labels[idx]]) - data.features[idx]).pow(2))
            return {"mse": mse, "total": mse}

        parts = minibatch_epoch(
            self.optimizers_["g"],
            len(data.labels),
            self.config.batch_size,
            data.features.device,
            losses,
            optimize=self.optimize,
            randperm=self.randperm,
        )
        return {"mse": parts["mse"]}

    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """``(K * n_per_class, d)`` features, class-major: regressed mean + noise."""
        self._check_fitted()
        with torch.no_grad():
            mean = self.nets_["g"](class_semantics.to(self.device, torch.float32))
        x = mean.repeat_interleave(n_per_class, dim=0)
        return x + self.config.noise * torch.randn_like(x)
