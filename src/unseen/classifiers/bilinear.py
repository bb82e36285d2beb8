"""Bilinear compatibility classifier: GMN's final classifier and its gradient-matching probe.

References:
    Sariyildiz & Cinbis, "Gradient Matching Generative Networks for Zero-Shot Learning",
    CVPR 2019 (compatibility f(x, a) = x^T W a + bias, cross-entropy over all classes, SGD
    with momentum 0.9 and a per-epoch learning-rate decay; its CUB script: lr 1e-2, decay
    0.97, weight decay 1e-3, 200 epochs, batch 256).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from unseen.classifiers.base import (
    PREDICT_BATCH_ROWS,
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

__all__ = ["BIAS_MODES", "BilinearClassifier"]

BIAS_MODES = ("semantic", "class", "none")


class BilinearClassifier(BaseClassifier):
    r"""Softmax over bilinear compatibilities :math:`f(x, a_k) = x^\top W a_k + \beta_k`.

    :math:`W` is ``(d, d_a)``; the bias :math:`\beta_k` depends on ``bias``:

    - ``"semantic"`` (default, as GMN's code: a linear layer ``x -> W^T x + b`` dotted with
      :math:`a_k`): :math:`\beta_k = b^\top a_k` with :math:`b \in \mathbb{R}^{d_a}`, so it
      transfers to classes never seen in training;
    - ``"class"``: a free per-class bias :math:`\beta_k = b_k`, :math:`b \in \mathbb{R}^K`
      (0 for classes outside the training set, see :meth:`logits`);
    - ``"none"``: :math:`\beta_k = 0`.

    Trained with cross-entropy over the ``K`` classes of ``classes`` using their
    ``class_semantics`` (L2-normalised attributes in GMN), SGD(``lr``, ``momentum``,
    ``weight_decay``), shuffled minibatches, ``lr * lr_decay**e`` in epoch ``e`` (0-based), a
    fixed number of epochs, LAST epoch kept. :math:`W` starts from N(0, 0.02²) and the bias
    from 0, as in GMN's code.

    Scores are softmax probabilities over ``classes_``; :meth:`logits` scores any class set.

    Args:
        lr: initial SGD learning rate.
        epochs: number of passes over the training set.
        batch_size: minibatch size.
        momentum: SGD momentum.
        lr_decay: multiplicative learning-rate decay applied after every epoch.
        weight_decay: L2 penalty (SGD's ``weight_decay``; GMN uses 1e-3 on CUB and SUN).
        bias: ``"semantic"``, ``"class"`` or ``"none"`` (see above).
        device: where training and scoring run; inputs may live anywhere.
        seed: seeds the initialisation and the shuffling (private generator).

    Example:
        >>> A = torch.eye(3)
        >>> X = torch.cat([A[k] * 4 + 0.3 * torch.randn(30, 3) for k in range(3)])
        >>> y = torch.arange(3).repeat_interleave(30)
        >>> clf = BilinearClassifier(lr=0.1, epochs=20).fit(X, y, torch.arange(3), A)
        >>> bool((clf.predict(X) == y).float().mean() > 0.9)
        True
    """

    def __init__(
        self,
        lr: float = 1e-2,
        epochs: int = 200,
        batch_size: int = 256,
        momentum: float = 0.9,
        lr_decay: float = 0.97,
        weight_decay: float = 0.0,
        bias: str = "semantic",
        device: str | torch.device = "cpu",
        seed: int = 0,
    ) -> None:
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.momentum = momentum
        self.lr_decay = lr_decay
        self.weight_decay = weight_decay
        self.bias = bias
        self.device = device
        self.seed = seed

    def _validate_params(self) -> None:
        super()._validate_params()
        who = type(self).__name__
        check_positive(who, lr=self.lr, lr_decay=self.lr_decay)
        check_positive_int(who, epochs=self.epochs, batch_size=self.batch_size)
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"{who}: momentum must be in [0, 1), got {self.momentum!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"{who}: weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.bias not in BIAS_MODES:
            raise ConfigError(f"{who}: unknown bias {self.bias!r}; valid: {list(BIAS_MODES)}")

    def fit(
        self,
        X: torch.Tensor,
        y: torch.Tensor,
        classes: torch.Tensor,
        class_semantics: torch.Tensor | None = None,
        epoch_callback: EpochCallback | None = None,
    ) -> BilinearClassifier:
        """Train on ``(X, y)`` against the semantics of ``classes``.

        Args:
            X: ``(N, d)`` features.
            y: ``(N,)`` global class ids, each one in ``classes``.
            classes: ``(K,)`` global class ids; the column order of the scores.
            class_semantics: ``(K, d_a)`` semantic vectors, rows aligned with ``classes``
                (required).
            epoch_callback: called as ``epoch_callback(epoch, self)`` after each epoch
                (``epoch`` counts from 1) with that epoch's weights; training with
                ``epochs=e`` reproduces exactly the state seen at epoch ``e``.

        Returns:
            ``self``.
        """
        self._validate_params()
        X = check_features(X, "X")
        check_samples(X, y)
        classes = check_classes(classes)
        target = encode_labels(y, classes)
        sem = check_class_semantics(
            class_semantics, len(classes), required=True, who="BilinearClassifier"
        )

        device = torch.device(self.device)
        gen = seeded_generator(self.seed)
        n, d = X.shape
        K, d_a = sem.shape
        X = X.to(device=device, dtype=torch.float32)
        sem = sem.detach().to(device=device, dtype=torch.float32).clone()
        target = target.to(device)
        weight = (0.02 * torch.randn(d, d_a, generator=gen)).to(device).requires_grad_(True)
        bias_size = {"semantic": d_a, "class": K, "none": 0}[self.bias]
        bias = torch.zeros(bias_size, device=device, requires_grad=True)
        params = [weight, bias] if bias_size else [weight]
        optimizer = torch.optim.SGD(
            params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )

        self.classes_ = classes
        self.class_semantics_ = sem
        self.n_features_in_ = d
        with torch.enable_grad():
            for epoch in range(1, self.epochs + 1):
                for idx in epoch_batches(n, self.batch_size, gen, device):
                    logits = self._compat(X[idx], weight, bias, sem)
                    loss = F.cross_entropy(logits, target[idx])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                for group in optimizer.param_groups:
                    group["lr"] = self.lr * self.lr_decay**epoch
                if epoch_callback is not None:
                    self._set_state(weight, bias)
                    epoch_callback(epoch, self)
        self._set_state(weight, bias)
        return self

    def _set_state(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        self.weight_ = weight.detach().clone()
        self.bias_ = bias.detach().clone()

    def _compat(
        self, X: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, sem: torch.Tensor
    ) -> torch.Tensor:
        """Logits ``x^T W a_k + beta_k``; ``bias`` is ``(d_a,)``, ``(K,)`` or empty."""
        if sem.shape[0] < sem.shape[1]:
            # Fewer classes than semantic dimensions (FLO: 102 vs 1024, CUB sentences 200
            # vs 1024): X (W A^T) costs ~2x less per training step than (X W) A^T.
            logits = X @ (weight @ sem.T)
            if self.bias == "semantic":
                logits = logits + sem @ bias
        else:
            proj = X @ weight
            if self.bias == "semantic":
                proj = proj + bias
            logits = proj @ sem.T
        if self.bias == "class":
            logits = logits + bias
        return logits

    def _scores(self, X: torch.Tensor) -> torch.Tensor:
        return torch.softmax(
            self._compat(X, self.weight_, self.bias_, self.class_semantics_), dim=1
        )

    @torch.no_grad()
    def logits(
        self,
        X: torch.Tensor,
        class_semantics: torch.Tensor | None = None,
        classes: torch.Tensor | None = None,
        batch_size: int = PREDICT_BATCH_ROWS,
    ) -> torch.Tensor:
        """Raw compatibilities of ``X`` with any set of classes (zero-shot scoring).

        Args:
            X: ``(N, d)`` features.
            class_semantics: ``(K', d_a)`` semantics of the classes to score; ``None`` uses
                the training classes (``classes`` then picks a subset of ``classes_``).
            classes: ``(K',)`` global ids of those classes. With ``bias="class"`` a class in
                ``classes_`` keeps its learned bias and any other class gets 0; without
                ``classes``, new semantics get bias 0 everywhere. Unused otherwise.
            batch_size: rows scored at a time.

        Returns:
            ``(N, K')`` float32 logits on the CPU, columns in the order of the given classes.
        """
        self._check_fitted()
        X = check_features(X, "X")
        device = self.weight_.device
        if classes is not None:
            classes = check_classes(classes)
        if class_semantics is None:
            sem, bias = self.class_semantics_, self.bias_
            if classes is not None:
                cols = encode_labels(classes, self.classes_).to(device)
                sem = sem[cols]
                bias = bias[cols] if self.bias == "class" else bias
        else:
            k_new = class_semantics.shape[0] if classes is None else len(classes)
            sem = check_class_semantics(class_semantics, k_new, True, "BilinearClassifier")
            if sem.shape[1] != self.class_semantics_.shape[1]:
                raise ConfigError(
                    f"class_semantics has {sem.shape[1]} dims but the classifier was fitted "
                    f"on {self.class_semantics_.shape[1]}"
                )
            sem = sem.detach().to(device=device, dtype=torch.float32)
            bias = self.bias_
            if self.bias == "class":
                bias = self._class_bias_for(classes, len(sem))
        return torch.cat(
            [
                self._compat(
                    X[i : i + batch_size].to(device=device, dtype=torch.float32),
                    self.weight_,
                    bias,
                    sem,
                ).cpu()
                for i in range(0, X.shape[0], batch_size)
            ]
            or [torch.empty(0, len(sem))]
        )

    def _class_bias_for(self, classes: torch.Tensor | None, k: int) -> torch.Tensor:
        """Learned per-class bias for the ids in ``classes_``, 0 for the others."""
        bias = torch.zeros(k, device=self.bias_.device)
        if classes is None:
            return bias
        sorted_known, order = torch.sort(self.classes_)
        pos = torch.searchsorted(sorted_known, classes).clamp_(max=len(sorted_known) - 1)
        known = sorted_known[pos] == classes
        bias[known.to(bias.device)] = self.bias_[order[pos][known].to(bias.device)]
        return bias
