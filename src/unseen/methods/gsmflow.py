r"""GSMFlow: Generation Shifts Mitigating Flow.

Reference:
    Chen, Luo, Wang, Li, Huang, "GSMFlow: Generation Shifts Mitigating Flow for Generalized
    Zero-Shot Learning", IEEE Transactions on Multimedia 2022; the conference version
    (ACM MM 2021) is the ablation ``no-em``. Written from the paper; where the paper is
    silent, the official code's values (``../shared/guides/methods.md``), each marked.

    ===============================  ===================================================
    paper                            code
    ===============================  ===================================================
    Eq. 1-2 (contrastive net, L_con) :class:`unseen.models.gsmflow.ContrastiveNet`,
                                     :func:`~unseen.models.gsmflow.contrastive_loss`,
                                     :meth:`GSMFlow._train_contrastive`
    Eq. 3-4 (boundary mining)        :func:`~unseen.models.gsmflow.prediction_entropy`,
                                     :func:`~unseen.models.gsmflow.mine_boundary_samples`
    Eq. 5 (visual perturbation)      :meth:`GSMFlow.losses` (``x + lambda_2 e``)
    Eq. 6-7, 17 (L_proto)            :meth:`GSMFlow.losses` -> ``proto``
    Eq. 8-10 (relative positioning)  :class:`unseen.models.gsmflow.RelativePositioning`
    Eq. 11-16 (conditional flow)     :class:`unseen.models.flows.ConditionalCouplingFlow`,
                                     :class:`unseen.models.flows.GlowCoupling`
    Eq. 13-14, 17 (L_flow)           :meth:`GSMFlow.losses` -> ``flow`` (+ Adam weight
                                     decay as the prior :math:`-\log p(\theta)`)
    Eq. 18 (objective)               :meth:`GSMFlow.losses` -> ``total``
    Eq. 19 (generation)              :meth:`GSMFlow.sample`
    softmax classifier               the runner's ``classifier.kind: softmax``
    ===============================  ===================================================

Ablations (Tab. III) are ``method.variant`` values (see :data:`VARIANTS`); see
``docs/gsmflow.md`` for the departures and the measurements behind them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from unseen.data.task import SeenTrainData
from unseen.errors import ConfigError
from unseen.methods.base import GenerativeMethod, MethodConfig, make_adam, minibatch_epoch, register
from unseen.methods.izf import seen_class_means
from unseen.methods.seedbatch import seed_stream
from unseen.models.flows import ConditionalCouplingFlow
from unseen.models.gsmflow import (
    ContrastiveNet,
    RelativePositioning,
    contrastive_loss,
    mine_boundary_samples,
)

__all__ = ["VARIANTS", "GSMFlow", "GSMFlowConfig"]

#: Tab. III rows: which components are on. ``conditioning``: ``coupling`` = the semantic
#: vector enters every s/t net (Eq. 15); ``prior`` = IZF's way, f(x) = [a_hat, z] with prior
#: N([a, 0], I), generation f^-1([a, z]). ``rp`` relative positioning (Eq. 10), ``vp`` visual
#: perturbation (Eq. 5), ``em`` boundary mining (Eq. 4), ``proto`` L_proto (Eq. 7).
#: "w/o constraints" is read as: none of RP, VP, EM and L_proto (the paper names RP and VP;
#: IZF's "w/o constraints" drops IZF's losses beside the likelihood, so L_proto goes too).
VARIANTS: dict[str, dict[str, object]] = {
    "full": dict(conditioning="coupling", rp=True, vp=True, em=True, proto=True),
    "no-vp": dict(conditioning="coupling", rp=True, vp=False, em=True, proto=True),
    "no-em": dict(conditioning="coupling", rp=True, vp=True, em=False, proto=True),
    "no-em-rp": dict(conditioning="coupling", rp=False, vp=True, em=False, proto=True),
    "no-em-vp": dict(conditioning="coupling", rp=True, vp=False, em=False, proto=True),
    "no-constraints": dict(conditioning="coupling", rp=False, vp=False, em=False, proto=False),
    "izf-prior": dict(conditioning="prior", rp=False, vp=False, em=False, proto=False),
}


@dataclass
class GSMFlowConfig(MethodConfig):
    """GSMFlow hyper-parameters (defaults: the paper's Sec. IV-B, else the official code's).

    Attributes:
        variant: a row of Tab. III (:data:`VARIANTS`); ``full`` is GSMFlow, ``no-em`` the
            conference version.
        epochs: flow epochs (official: 300-1500; chosen on validation here).
        batch_size: 256 (paper).
        n_blocks: conditional coupling blocks (paper: 3, APY 5; Fig. 7e).
        hidden: s/t sub-network hidden width (paper: 2048).
        slope: LeakyReLU slope (official code: 0.2).
        clamp: soft clamp c of the log-scales, ``c * clamp_scale * atan(s / c)`` (official:
            1.0 with ``clamp_scale`` 0.636); 0 = plain exp(s) (Eq. 15 as printed).
        permute: fixed random permutations between blocks (official code: none).
        init_std: N(0, std^2) initialisation of the flow (official: 0.01); 0 = nn.Linear's.
        lr, weight_decay: Adam (paper: 3e-4, betas 0.9/0.999); weight decay is the parameter
            prior of Eq. 14 (official per dataset: 1e-6 .. 1e-4).
        lr_step, lr_gamma: step decay of the learning rate every ``lr_step`` epochs by
            ``lr_gamma`` (StepLR in the official code); ``lr_step`` 0 = constant.
        semantic_out: dimension of the global semantic vector a^g (paper: 1024; Fig. 7d).
        perturbation: lambda_2 of Eq. 5 (paper: 0.02-0.15 per dataset; Fig. 7b).
        lambda_proto: lambda_3 of Eq. 18 (paper: 1-20; Fig. 7c).
        contrastive_hidden: hidden width of g (official: 2048).
        contrastive_epochs, contrastive_lr, contrastive_batch: training of g with Eq. 2
            (Adam; not given in the paper or the guide's notes: ours, see docs/gsmflow.md).
        mining_steps, mining_lr, entropy_weight: K, eta and lambda_1 of Eq. 4 (official per
            dataset; Fig. 7a, 7f).
        contrastive_classes: ``all`` (Eq. 1-3: each sample against every seen class) or
            ``batch`` (the official code's: g is trained, and the samples are mined, in
            random batches of ``contrastive_batch``, each against the classes present in
            it -- cheaper with many classes, and a different entropy).
        prior_scale: variant ``izf-prior`` only: the class vectors are multiplied by it in
            the prior mean N([s a, 0], I), as IZF's ``semantic_scale`` (unit-norm class
            vectors are otherwise invisible against the unit prior variance: measured on
            FLO, s = 1 gives CZSL T1 6.8 against 5.0 for chance; docs/gsmflow.md). The
            per-dataset configs take IZF's values.
    """

    variant: str = "full"
    epochs: int = 30
    batch_size: int = 256
    n_blocks: int = 3
    hidden: int = 2048
    slope: float = 0.2
    clamp: float = 1.0
    clamp_scale: float = 0.636
    permute: bool = False
    init_std: float = 0.01
    lr: float = 3e-4
    weight_decay: float = 1e-4
    lr_step: int = 0
    lr_gamma: float = 0.5
    semantic_out: int = 1024
    perturbation: float = 0.1
    lambda_proto: float = 3.0
    contrastive_hidden: int = 2048
    contrastive_epochs: int = 5
    contrastive_lr: float = 1e-3
    contrastive_batch: int = 64
    mining_steps: int = 20
    mining_lr: float = 20.0
    entropy_weight: float = 1.0
    contrastive_classes: str = "all"
    prior_scale: float = 1.0


@register
class GSMFlow(GenerativeMethod):
    """GSMFlow (Chen et al., TMM 2022): a conditional coupling flow ``x <-> z`` given a^g."""

    name = "gsmflow"
    config_class = GSMFlowConfig
    paper = (
        "Chen et al., GSMFlow: Generation Shifts Mitigating Flow for Generalized Zero-Shot "
        "Learning, IEEE TMM 2022"
    )
    config: GSMFlowConfig
    # seeds as one batched model: the flow and RP stack; the contrastive net g is trained and
    # mined with once per seed in the set-up, by each seed's own plain method
    supports_seed_batch = True
    per_seed_nets = ("g",)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._mined: tuple[tuple, torch.Tensor, torch.Tensor] | None = None
        #: mean entropy of g's predictions per mining step (filled when mining runs)
        self.mining_trace_: list[float] = []

    @property
    def switches(self) -> dict[str, object]:
        if self.config.variant not in VARIANTS:
            raise ConfigError(
                f"gsmflow: unknown variant {self.config.variant!r}; valid: {list(VARIANTS)}"
            )
        return VARIANTS[self.config.variant]

    # ------------------------------------------------------------------ networks
    def _build(self, dims: dict[str, int]) -> None:
        c, sw = self.config, self.switches
        d, d_a = dims["feature_dim"], dims["semantic_dim"]
        nets: dict[str, nn.Module] = {}
        if sw["conditioning"] == "prior":
            if d <= d_a:
                raise ConfigError(
                    f"gsmflow variant izf-prior factorizes x (d={d}) into [a_hat (d_a={d_a}), "
                    "z] and needs d > d_a"
                )
            cond_dim = 0
        elif sw["rp"]:
            nets["rp"] = RelativePositioning(d_a, c.semantic_out)
            cond_dim = c.semantic_out
        else:
            cond_dim = d_a
        nets["flow"] = ConditionalCouplingFlow(
            d,
            cond_dim,
            n_blocks=c.n_blocks,
            hidden=c.hidden,
            slope=c.slope,
            clamp=c.clamp or None,
            clamp_scale=c.clamp_scale,
            permute=c.permute,
            init_std=c.init_std or None,
        )
        if sw["em"]:
            if c.contrastive_classes not in ("all", "batch"):
                raise ConfigError(
                    f"gsmflow: contrastive_classes must be 'all' or 'batch', "
                    f"not {c.contrastive_classes!r}"
                )
            nets["g"] = ContrastiveNet(d, d_a, c.contrastive_hidden, dims["n_seen"])
        self.nets_ = nn.ModuleDict(nets)
        self.optimizers_ = self._make_optimizers()

    def _make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        params = [p for k, m in self.nets_.items() if k != "g" for p in m.parameters()]
        return {"flow": make_adam(params, c.lr, c.weight_decay)}

    def condition(self, class_semantics: torch.Tensor) -> torch.Tensor:
        """The flow's condition for class vectors: a^g (Eq. 10) with RP, else the vectors."""
        if "rp" in self.nets_:
            return self.nets_["rp"](class_semantics)
        return class_semantics

    # ------------------------------------------------------------------ set-up
    def _prepare(self, data: SeenTrainData) -> None:
        seen_sem = data.semantics[data.seen_classes].to(data.features.dtype)
        if "rp" in self.nets_:
            self.nets_["rp"].set_anchors(seen_sem)
        if "g" in self.nets_:
            self._train_contrastive(data)

    def _train_contrastive(self, data: SeenTrainData) -> None:
        """Stage 1 (Sec. III-E): g trained with Eq. 2 on seen pairs (Adam).

        Stacked seeds: each seed's own g (``per_seed_nets``), trained by its own plain method
        with the seed's random stream, as its sequential fit would."""
        if self.seed_batch_:
            for k, one in enumerate(self._members):
                with seed_stream(self, k):
                    one._train_contrastive(data)
            self._mined = None
            return
        c = self.config
        g = self.nets_["g"]
        seen = data.seen_classes
        sem = data.semantics[seen].to(data.features.dtype)
        col = _columns(data.labels, seen, data.n_classes)
        for p in g.parameters():  # frozen by an earlier fit()
            p.requires_grad_(True)
        self._mined = None
        opt = torch.optim.Adam(g.parameters(), lr=c.contrastive_lr)
        g.train()
        for _ in range(c.contrastive_epochs):
            perm = torch.randperm(len(col), device=col.device)
            for idx in perm.split(c.contrastive_batch):
                if c.contrastive_classes == "batch":  # official: the batch's classes only
                    classes, target = torch.unique(col[idx], return_inverse=True)
                    scores = g.scores(data.features[idx], sem[classes])
                else:  # Eq. 2: every seen class
                    scores, target = g.scores(data.features[idx], sem), col[idx]
                loss = contrastive_loss(scores, target).mean()
                self.optimize(loss, opt)
        g.eval()
        for p in g.parameters():
            p.requires_grad_(False)

    def boundary_samples(self, data: SeenTrainData) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x+, y)``: the mined copies of the seen features (Eq. 4), cached per data.
        Stacked seeds: ``x+`` is ``(K, n, d)``, each seed's copies mined with its own g and
        random stream."""
        key = (data.features.data_ptr(), tuple(data.features.shape))
        if self._mined is not None and self._mined[0] == key:
            return self._mined[1], self._mined[2]
        if self.seed_batch_:
            mined = []
            for k, one in enumerate(self._members):
                with seed_stream(self, k):
                    mined.append(one.boundary_samples(data)[0])
                one._mined = None  # the stacked copy below is the one used
            self._mined = (key, torch.stack(mined), data.labels)
            return self._mined[1], self._mined[2]
        c = self.config
        g = self.nets_["g"]
        for p in g.parameters():
            p.requires_grad_(False)
        seen = data.seen_classes
        sem = data.semantics[seen].to(data.features.dtype)
        col = _columns(data.labels, seen, data.n_classes)
        self.mining_trace_ = []
        x_plus = mine_boundary_samples(
            g,
            data.features,
            col,
            sem,
            c.mining_steps,
            c.mining_lr,
            c.entropy_weight,
            c.batch_size,
            trace=self.mining_trace_,
            class_groups=c.contrastive_batch if c.contrastive_classes == "batch" else 0,
        )
        self._mined = (key, x_plus, data.labels)
        return x_plus, data.labels

    # ------------------------------------------------------------------ objective
    def losses(
        self, x: torch.Tensor, y: torch.Tensor, semantics: torch.Tensor, means: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Eq. 18 on a batch: ``flow`` (Eq. 14/17, nats per dimension), ``proto`` (Eq. 17)
        and ``total``.

        Args:
            x: ``(n, d)`` training features (real and mined); y: their global labels.
                Stacked seeds: ``(K, n, d)`` and ``(K, n)``, and every loss is per seed.
            semantics: ``(C, d_a)`` class vectors; means: ``(C, d)`` seen class means.
        """
        c, sw = self.config, self.switches
        flow = self.nets_["flow"]
        d = x.shape[-1]
        if sw["vp"] and c.perturbation > 0:
            x = x + c.perturbation * self.randn(*x.shape[-2:])  # Eq. 5
        # Stacked seeds: the classes of all seeds' batches, each sample's row in ``index``
        # (a seed's samples only ever read their own classes' rows).
        classes, index = torch.unique(y, return_inverse=True)
        a = semantics[classes]
        stacked = y.dim() == 2
        if stacked:
            a = a.expand(y.shape[0], -1, -1)
        out: dict[str, torch.Tensor] = {}
        if sw["conditioning"] == "prior":
            z, ladj = flow(x)
            a = a * c.prior_scale
            d_a = a.shape[-1]
            per_sample = _rows(a, index) if stacked else a[index]
            z = torch.cat([z[..., :d_a] - per_sample, z[..., d_a:]], -1)
        else:
            cond = self.condition(a)  # k distinct rows, gathered per sample inside the flow
            z, ladj = flow(x, cond, index)
        # -log p(x | a) per dimension, as the official code: mean(z^2)/2 - mean(log-det)/d
        # (the constant log(2 pi)/2 dropped).
        l_flow = 0.5 * self.seed_mean(z.pow(2)) - self.seed_mean(ladj) / d
        out["flow"] = l_flow
        total = l_flow
        if sw["proto"] and c.lambda_proto > 0:
            # Eq. 7 over the batch's classes (an estimate of the mean over all seen classes).
            protos = flow.inverse(x.new_zeros(*a.shape[:-1], d), cond)  # f^-1(0, a^g)
            err = (protos - means[classes]).pow(2)  # official: MSE
            if stacked:  # each seed's mean over the classes of its own batch
                present = torch.zeros_like(err[..., 0]).scatter_(1, index, 1.0)
                l_proto = (err.mean(-1) * present).sum(1) / present.sum(1)
            else:
                l_proto = err.mean()
            out["proto"] = l_proto
            total = total + c.lambda_proto * l_proto
        out["total"] = total
        return out

    # ------------------------------------------------------------------ training
    def _train_epoch(self, data: SeenTrainData, epoch: int) -> dict[str, float]:
        c = self.config
        opt = self.optimizers_["flow"]
        if c.lr_step > 0:  # stateless step decay: resumes exactly
            for group in opt.param_groups:
                group["lr"] = c.lr * c.lr_gamma ** (epoch // c.lr_step)
        means = seen_class_means(data)  # of the real, unperturbed features (Eq. 6)
        x_all, y_all = data.features, data.labels
        if "g" in self.nets_:
            x_plus, y_plus = self.boundary_samples(data)
            if x_plus.dim() == 3:  # stacked seeds: each seed's own mined copies
                x_all = torch.cat([x_all.expand(len(x_plus), -1, -1), x_plus], 1)
            else:
                x_all = torch.cat([x_all, x_plus])
            y_all = torch.cat([y_all, y_plus])
        sem = data.semantics.to(x_all.dtype)

        def batch(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            x = _rows(x_all, idx) if x_all.dim() == 3 else x_all[idx]
            return self.losses(x, y_all[idx], sem, means)

        return minibatch_epoch(
            opt,
            y_all.shape[-1],
            c.batch_size,
            x_all.device,
            batch,
            optimize=self.optimize,
            randperm=self.randperm,
        )

    def flow_map(
        self, x: torch.Tensor, labels: torch.Tensor, semantics: torch.Tensor
    ) -> torch.Tensor:
        """:math:`f(x; a^g(y))` (Eq. 11), or :math:`f(x)` for the ``izf-prior`` variant."""
        flow = self.nets_["flow"]
        if self.switches["conditioning"] == "prior":
            return flow(x)[0]
        classes, index = torch.unique(labels, return_inverse=True)
        return flow(x, self.condition(semantics[classes].to(x.dtype)), index)[0]

    # ------------------------------------------------------------------ generation
    def sample(self, class_semantics: torch.Tensor, n_per_class: int) -> torch.Tensor:
        """Eq. 19: :math:`x = f^{-1}(z; a^g)`, :math:`z \\sim N(0, I)`, class-major."""
        self._check_fitted()
        d = self.dims_["feature_dim"]
        a = class_semantics.to(self.device, torch.float32)
        flow = self.nets_["flow"]
        index = torch.arange(len(a), device=self.device).repeat_interleave(n_per_class)
        if not len(index):
            return a.new_zeros(0, d)
        out = []
        with torch.no_grad():
            prior = self.switches["conditioning"] == "prior"
            cond = None if prior else self.condition(a)
            for idx in index.split(8192):
                z = torch.randn(len(idx), d, device=self.device)
                if prior:
                    z[:, : a.shape[1]] += self.config.prior_scale * a[idx]  # f^-1([s a, z])
                    out.append(flow.inverse(z))
                else:
                    out.append(flow.inverse(z, cond, idx))
        return torch.cat(out)


def _rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[k, index[k]]`` for every seed k: ``(K, m, ...)`` rows picked by ``(K, n)``."""
    return values[torch.arange(len(values), device=index.device)[:, None], index]


def _columns(labels: torch.Tensor, seen: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Column of each label among ``seen`` (global id -> position)."""
    lut = torch.full((n_classes,), -1, dtype=torch.long, device=labels.device)
    lut[seen] = torch.arange(len(seen), device=labels.device)
    return lut[labels]
