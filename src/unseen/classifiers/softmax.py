"""Linear softmax classifier: the final GZSL classifier of f-CLSWGAN, IZF and most of the field.

References:
    Xian et al., "Feature Generating Networks for Zero-Shot Learning", CVPR 2018 (the
    classifier of its code: one linear layer, Adam with beta1 = 0.5, ~25 epochs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unseen.classifiers.base import (
    BaseClassifier,
    EpochCallback,
    check_class_semantics,
    check_classes,
    check_features,
    check_positive,
    check_positive_int,
    check_samples,
    encode_labels,
    epoch_batches,
    seeded_generator,
)
from unseen.errors import ConfigError

__all__ = ["SoftmaxClassifier"]


class SoftmaxClassifier(BaseClassifier):
    r"""Multinomial logistic regression :math:`p(k \mid x) = \mathrm{softmax}(Wx + b)_k`.

    Trained with cross-entropy over the ``K`` classes, Adam(``lr``, betas=(``beta1``, 0.999)),
    shuffled minibatches and a fixed number of epochs; the weights of the LAST epoch are kept
    (no early stopping: pick ``epochs`` on validation with ``epoch_callback``). Weights start
    from N(0, 0.02²) and the bias from 0, as in the f-CLSWGAN code.

    Scores are softmax probabilities, so a calibrated-stacking ``gamma`` lives on [0, 1].

    Args:
        lr: Adam learning rate.
        epochs: number of passes over the training set.
        batch_size: minibatch size.
        beta1: Adam's first-moment decay.
        weight_decay: L2 penalty (Adam's ``weight_decay``).
        device: where training and scoring run; inputs may live anywhere.
        seed: seeds the initialisation and the shuffling (a private generator: the global
            torch RNG is left untouched).

    Example:
        >>> X = torch.cat([torch.randn(20, 5) - 3, torch.randn(20, 5) + 3])
        >>> y = torch.tensor([7] * 20 + [2] * 20)
        >>> clf = SoftmaxClassifier(lr=1e-2, epochs=10).fit(X, y, classes=torch.tensor([7, 2]))
        >>> clf.predict_scores(X).shape
        torch.Size([40, 2])
        >>> bool((clf.predict(X) == y).all())
        True
    """

    def __init__(
        self,
        lr: float = 1e-3,
        epochs: int = 25,
        batch_size: int = 64,
        beta1: float = 0.5,
        weight_decay: float = 0.0,
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.beta1 = beta1
        self.weight_decay = weight_decay
        self.device = device
        self.seed = seed

    def _validate_params(self) -> None:
        super()._validate_params()
        who = type(self).__name__
        check_positive(who, lr=self.lr)
        check_positive_int(who, epochs=self.epochs, batch_size=self.batch_size)
        if not 0.0 <= self.beta1 < 1.0:
            raise ConfigError(f"{who}: beta1 must be in [0, 1), got {self.beta1!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"{who}: weight_decay must be >= 0, got {self.weight_decay!r}")

    def fit(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        classes: torch.Tensor,
        class_semantics: torch.Tensor | None = None,
        epoch_callback: EpochCallback | None = None,
    ) -> SoftmaxClassifier:
        """Train on ``(X, y)``.

        Args:
            X: ``(N, d)`` features.
            y: ``(N,)`` global class ids, each one in ``classes``.
            classes: ``(K,)`` global class ids; the column order of the scores.
            class_semantics: ignored (accepted so every classifier shares one signature).
            epoch_callback: called as ``epoch_callback(epoch, self)`` after each epoch
                (``epoch`` counts from 1), with ``self`` holding that epoch's weights, e.g. to
                score a validation set. Training with ``epochs=e`` reproduces exactly the state
                seen by the callback at epoch ``e``.

        Returns:
            ``self``.
        """
        self._validate_params()
        X = check_features(X, "X")
        check_samples(X, y)
        classes = check_classes(classes)
        target = encode_labels(y, classes)
        check_class_semantics(class_semantics, len(classes), required=False, who="softmax")

        device = torch.device(self.device)
        gen = seeded_generator(self.seed)
        n, d = X.shape
        X = X.to(device=device, dtype=torch.float32)
        target = target.to(device)
        weight = (0.02 * torch.randn(len(classes), d, generator=gen)).to(device)
        weight.requires_grad_(True)
        bias = torch.zeros(len(classes), device=device, requires_grad=True)
        optimizer = torch.optim.Adam(
            [weight, bias], lr=self.lr, betas=(self.beta1, 0.999), weight_decay=self.weight_decay
        )

        self.classes_ = classes
        self.n_features_in_ = d
        # fit may be called from a no_grad region (e.g. inside a method's evaluation).
        with torch.enable_grad():
            for epoch in range(1, self.epochs + 1):
                for idx in epoch_batches(n, self.batch_size, gen, device):
                    loss = F.cross_entropy(torch.addmm(bias, X[idx], weight.T), target[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                if epoch_callback is not None:
                    self._set_state(weight, bias)
                    epoch_callback(epoch, self)
        self._set_state(weight, bias)
        return self

    def _set_state(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        # Copies, so a snapshot taken in epoch_callback is not changed by later steps.
        self.weight_ = weight.detach().clone()
        self.bias_ = bias.detach().clone()

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(torch.addmm(self.bias_, X, self.weight_.T), dim=1)
