r"""Invertible flows of permutation + affine-coupling blocks (IZF's network).

The math is kept in pure functions (:func:`affine_coupling_forward`,
:func:`affine_coupling_inverse`, :func:`soft_clamp`); the learnable modules
(:class:`Permutation`, :class:`AffineCoupling`, :class:`CouplingFlow`) hold parameters and
call them. Every module maps ``x -> (y, ladj)`` forward, where ``ladj`` is the exact
:math:`\log|\det \partial y / \partial x|` per sample, and ``y -> x`` with :meth:`inverse`.

Why hand-written and not zuko (``zuko.flows.NICE`` / ``GeneralCouplingTransform``):

* zuko's coupling cannot express the paper's network: it has ONE hyper-network with a shared
  hidden layer that outputs ``(shift, scale)`` jointly, while IZF has two separate nets
  ``s`` and ``t``, each ``fc(d/2) -> LReLU -> fc(d/2)`` (Eq. 2, Sec. 4.3); and zuko's affine
  transform soft-bounds the log-scale (``a / (1 + |a / log(slope)|)``), not the plain
  ``exp(s)`` of Eq. 2.
* Measured at IZF's size (d = 2048, batch 256, 5 blocks, fp32, NLL forward + backward + Adam,
  2 CPU cores shared with one other process, 5 interleaved rounds, min / median,
  ``benchmarks/izf_speed.py --compare-zuko``, 2026-11-22): this module (the paper's net)
  1257 / 1434 ms per step (31.1 GFLOP); zuko ``NICE`` with a joint s/t hidden layer of 1024
  (a smaller net than the paper's) 866 / 1201 ms (23.6 GFLOP); zuko with a joint hidden
  layer of 2048, the smallest zuko net that contains the paper's two hidden layers,
  1819 / 2163 ms (47.2 GFLOP). Per FLOP the two are about equal (21.7 vs 19.7-21.8 GFLOP/s at
  the median); for the paper's architecture the hand-written blocks are 1.45-1.5x faster
  because zuko must compute the larger joint net.

References:
    | Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017.
    | Ardizzone et al., "Analyzing Inverse Problems with Invertible Neural Networks",
      ICLR 2019 (permutation + coupling blocks, FrEIA).
    | Shen et al., "Invertible Zero-Shot Recognition Flows", ECCV 2020, Eq. 2, Sec. 4.3,
      supplementary Eq. 10-14.

Example:
    >>> flow = CouplingFlow(6, n_blocks=3, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(4, 6)
    >>> y, ladj = flow(x)
    >>> torch.allclose(flow.inverse(y), x, atol=1e-5)
    True
"""

from __future__ import annotations

import math

import torch
from torch import nn

from unseen.models.stacked import register_stacker

__all__ = [
    "COUPLINGS",
    "AffineCoupling",
    "ConditionalCouplingFlow",
    "CouplingFlow",
    "GlowCoupling",
    "Permutation",
    "StackedAffineCoupling",
    "StackedConditionalCouplingFlow",
    "StackedGlowCoupling",
    "StackedPermutation",
    "affine_coupling_forward",
    "affine_coupling_inverse",
    "half_swapping_order",
    "soft_clamp",
]


def soft_clamp(s: torch.Tensor, clamp: float | None, scale: float = 2.0 / math.pi) -> torch.Tensor:
    r"""Bound log-scales smoothly to :math:`(-c, c)`: :math:`\frac{2c}{\pi}\arctan(s / c)`.

    ``clamp=None`` returns ``s`` unchanged (the paper's Eq. 2). The bounded form is FrEIA's
    (used by the IZF author's unpublished prototype with ``c = 2``); it is an option for
    degenerate data (e.g. the zero-padded toy problem), whose likelihood is unbounded.
    ``scale`` replaces :math:`2/\pi`: FrEIA and GSMFlow's official code write it ``0.636``.
    """
    if clamp is None:
        return s
    return (scale * clamp) * torch.atan(s / clamp)


def affine_coupling_forward(
    x_b: torch.Tensor, s: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""The transformed half of Eq. 2, :math:`y_b = x_b \odot \exp(s) + t`, and its log-det.

    The Jacobian of a coupling layer is triangular with diagonal :math:`[1, \exp(s)]`
    (supplementary Eq. 12), so :math:`\log|\det| = \sum_j s_j`. (Supplementary Eq. 14 writes
    :math:`\sum |s|`; since :math:`\exp(s) > 0` the exact value is :math:`\sum s`, which the
    tests check against the autograd Jacobian.)

    Returns:
        ``(y_b, ladj)`` with ``ladj`` of shape ``(batch,)``.
    """
    return x_b * torch.exp(s) + t, s.sum(dim=-1)


def affine_coupling_inverse(y_b: torch.Tensor, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    r"""The inverse of Eq. 2 on the transformed half: :math:`x_b = (y_b - t) \oslash \exp(s)`."""
    return (y_b - t) * torch.exp(-s)


class Permutation(nn.Module):
    r"""A fixed random permutation of the features (supplementary Sec. 2.1, Eq. 10-11).

    The order is drawn once at construction (or given) and stored as a buffer, so it is
    saved and loaded with ``state_dict`` (a model reloaded elsewhere computes the same
    function). Its log-determinant is 0.

    Args:
        features: number of features.
        generator: random generator for the order (default: the global one).
        order: a given order instead of a random one (:func:`half_swapping_order`).
    """

    def __init__(
        self,
        features: int,
        generator: torch.Generator | None = None,
        order: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if order is None:
            order = torch.randperm(features, generator=generator)
        self.register_buffer("order", torch.as_tensor(order, dtype=torch.long))
        self.register_buffer("inverse_order", torch.argsort(order))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[..., self.order], x.new_zeros(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y[..., self.inverse_order]


class AffineCoupling(nn.Module):
    r"""An affine coupling layer (Eq. 2) with separate nets ``s`` and ``t`` (Sec. 4.3).

    The input splits into :math:`x = [x_a, x_b]` with :math:`|x_a| = \lfloor d/2 \rfloor`.
    With ``transformed="second"`` the layer moves :math:`x_b` given :math:`x_a` (Eq. 2);
    with ``"first"`` it moves :math:`x_a` given :math:`x_b`. ``s`` and ``t`` are each
    ``Linear(|in|, hidden) -> LeakyReLU -> Linear(hidden, |out|)``. Both nets read the same
    half, so their first layers run as ONE matrix product and their second layers as one
    batched product (``baddbmm``): fewer, larger GEMMs, same math.

    A single layer leaves its conditioning half unchanged: only a stack that moves every
    half at least once (:class:`CouplingFlow`) transforms every dimension.

    Args:
        features: ``d``.
        hidden: hidden width of ``s`` and ``t`` (the paper: ``d / 2``).
        slope: LeakyReLU negative slope.
        clamp: optional soft bound of ``s`` (see :func:`soft_clamp`); ``None`` = paper.
        transformed: which half the layer moves, ``"second"`` or ``"first"``.
    """

    def __init__(
        self,
        features: int,
        hidden: int | None = None,
        slope: float = 0.01,
        clamp: float | None = None,
        transformed: str = "second",
    ) -> None:
        super().__init__()
        if features < 2:
            raise ValueError(f"a coupling layer needs >= 2 features, got {features}")
        if transformed not in ("first", "second"):
            raise ValueError(f"transformed must be 'first' or 'second', got {transformed!r}")
        self.features = features
        self.split = features // 2  # |x_a|
        self.transformed = transformed
        # d_a: size of the conditioning half, d_b: size of the moved half.
        first, second = self.split, features - self.split
        self.d_a, self.d_b = (first, second) if transformed == "second" else (second, first)
        self.hidden = hidden or max(1, features // 2)
        self.slope = slope
        self.clamp = clamp
        h, d_a, d_b = self.hidden, self.d_a, self.d_b
        # Row block 0 belongs to s, row block 1 to t.
        self.weight1 = nn.Parameter(torch.empty(2 * h, d_a))
        self.bias1 = nn.Parameter(torch.empty(2 * h))
        self.weight2 = nn.Parameter(torch.empty(2, h, d_b))
        self.bias2 = nn.Parameter(torch.empty(2, 1, d_b))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``nn.Linear``'s default initialisation, applied to each of the four layers."""
        b1 = 1.0 / math.sqrt(self.d_a)
        b2 = 1.0 / math.sqrt(self.hidden)
        nn.init.uniform_(self.weight1, -b1, b1)
        nn.init.uniform_(self.bias1, -b1, b1)
        nn.init.uniform_(self.weight2, -b2, b2)
        nn.init.uniform_(self.bias2, -b2, b2)

    def scale_shift(self, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s(x_a), t(x_a))``, each ``(batch, d_b)``, in the parameters' dtype.

        Under autocast (bf16/fp16) the two products run in low precision and their output
        is cast back before the clamp: the log-determinant sums ``s`` over hundreds of
        dimensions and ``exp(s)`` scales the moved half, so both are computed in fp32.
        """
        h = torch.addmm(self.bias1, x_a, self.weight1.t())
        h = nn.functional.leaky_relu(h, self.slope)
        h = h.view(x_a.shape[0], 2, self.hidden).transpose(0, 1)  # (2, batch, hidden)
        st = torch.baddbmm(self.bias2, h, self.weight2).to(self.weight2.dtype)  # (2, batch, d_b)
        return soft_clamp(st[0], self.clamp), st[1]

    def _halves(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(conditioning half, moved half)``."""
        first, second = x[..., : self.split], x[..., self.split :]
        return (first, second) if self.transformed == "second" else (second, first)

    def _join(self, cond: torch.Tensor, moved: torch.Tensor) -> torch.Tensor:
        return torch.cat([cond, moved] if self.transformed == "second" else [moved, cond], dim=-1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_a, x_b = self._halves(x)
        s, t = self.scale_shift(x_a)
        y_b, ladj = affine_coupling_forward(x_b, s, t)
        return self._join(x_a, y_b), ladj

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y_a, y_b = self._halves(y)
        s, t = self.scale_shift(y_a)
        return self._join(y_a, affine_coupling_inverse(y_b, s, t))

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden={self.hidden}, slope={self.slope}, "
            f"clamp={self.clamp}, transformed={self.transformed}"
        )


COUPLINGS = ("two-sided", "alternating")


def half_swapping_order(features: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random permutation that sends the moved half of a coupling layer (positions
    ``d // 2 ..``) to the front and its conditioning half (``.. d // 2``) to the back, each
    shuffled: the next layer then moves every dimension this one only conditioned on."""
    split = features // 2
    moved = split + torch.randperm(features - split, generator=generator)
    kept = torch.randperm(split, generator=generator)
    return torch.cat([moved, kept])


class CouplingFlow(nn.Module):
    r"""``n_blocks`` x (permutation -> affine coupling): IZF's :math:`f` (Sec. 4.3).

    The forward pass returns :math:`f(x)` and :math:`\log|\det \partial f/\partial x|`, the
    sum of the blocks' log-determinants (supplementary Eq. 13-14); :meth:`inverse` is
    :math:`f^{-1}` (the reverse pass, Eq. 6).

    Every input dimension is transformed, by either block design (``coupling``):

    * ``"two-sided"`` (default): random permutation, then two affine couplings (Eq. 2) that
      move the second half given the first and then the first given the new second half, as
      FrEIA's GLOW/RNVP blocks do (the framework the paper builds on, Sec. 6.1). Twice the
      networks of a one-sided block.
    * ``"alternating"``: one affine coupling per block (the paper's count of networks), the
      first block after a random permutation, every later one after a permutation that
      swaps the moved and the conditioning halves (:func:`half_swapping_order`), as
      RealNVP's alternating masks. Needs ``n_blocks >= 2``.

    Why not one coupling after an independent random permutation per block: a dimension
    then stays in the conditioning half of all ``K`` blocks with probability :math:`2^{-K}`
    and passes through unchanged (about 40 of FLO's 1280 dimensions at ``K = 5``); IZF puts
    it into :math:`\hat c`, so every generated feature carries the prior mean there exactly
    (docs/izf.md, ``tests/test_flows.py::test_every_dimension_is_transformed``).

    Args:
        features: ``d``.
        n_blocks: number of permutation-coupling blocks (paper: 5; Fig. 5d varies it).
        hidden: hidden width of ``s``/``t`` (default ``d // 2``, the paper's).
        slope: LeakyReLU negative slope.
        clamp: optional soft bound of the log-scales (``None`` = the paper's ``exp(s)``).
        generator: random generator for the permutations (default: the global one).
        coupling: ``"two-sided"`` or ``"alternating"`` (see above).
    """

    def __init__(
        self,
        features: int,
        n_blocks: int = 5,
        hidden: int | None = None,
        slope: float = 0.01,
        clamp: float | None = None,
        generator: torch.Generator | None = None,
        coupling: str = "two-sided",
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        if coupling not in COUPLINGS:
            raise ValueError(f"coupling must be one of {COUPLINGS}, got {coupling!r}")
        if coupling == "alternating" and n_blocks < 2:
            raise ValueError(
                "an alternating coupling flow needs n_blocks >= 2: one one-sided block leaves "
                "half of the dimensions unchanged"
            )
        self.features = features
        self.coupling = coupling
        layers: list[nn.Module] = []
        for i in range(n_blocks):
            if coupling == "alternating" and i > 0:
                layers.append(Permutation(features, order=half_swapping_order(features, generator)))
            else:
                layers.append(Permutation(features, generator))
            layers.append(AffineCoupling(features, hidden, slope, clamp, transformed="second"))
            if coupling == "two-sided":
                layers.append(AffineCoupling(features, hidden, slope, clamp, transformed="first"))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f(x), log|det df/dx|)``; the log-det is per sample (supplementary Eq. 13)."""
        ladj = x.new_zeros(x.shape[:-1])  # (batch,), or (seeds, batch) when stacked
        for layer in self.layers:
            if isinstance(layer, Permutation | StackedPermutation):
                x = layer(x)[0]  # log-det 0 (supplementary Eq. 11)
            else:
                x, block_ladj = layer(x)
                ladj = ladj + block_ladj
        return x, ladj

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        """:math:`f^{-1}(z)`: the layers undone in reverse order."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z


class StackedPermutation(nn.Module):
    """K seeds' :class:`Permutation` layers (each its own random order) on a ``(K, batch, d)``
    input (seeds trained as one batched model, :mod:`unseen.models.stacked`)."""

    def __init__(self, order: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("order", order)  # (K, d)
        self.register_buffer("inverse_order", torch.argsort(order, dim=1))

    @classmethod
    def stack(cls, layers: list[Permutation]) -> StackedPermutation:
        return cls(torch.stack([layer.order for layer in layers]))

    @staticmethod
    def unstack(stacked: StackedPermutation, layer: Permutation, k: int) -> None:
        layer.order.copy_(stacked.order[k])
        layer.inverse_order.copy_(stacked.inverse_order[k])

    @staticmethod
    def _gather(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return torch.gather(x, -1, index[:, None, :].expand_as(x))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._gather(x, self.order), x.new_zeros(x.shape[:-1])

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return self._gather(y, self.inverse_order)


class StackedAffineCoupling(AffineCoupling):
    """K seeds' :class:`AffineCoupling` layers on a ``(K, batch, d)`` input: the same halves,
    clamp and log-determinant, with every parameter given a leading seed axis and the products
    batched over it. The first layers' weights are stored transposed, ``(K, d_a, 2h)``, so the
    batched products read contiguous matrices (see :class:`unseen.models.stacked.StackedLinear`).
    """

    def __init__(self, layers: list[AffineCoupling]) -> None:
        first = layers[0]
        nn.Module.__init__(self)
        for key in ("features", "split", "transformed", "d_a", "d_b", "hidden", "slope", "clamp"):
            setattr(self, key, getattr(first, key))
        with torch.no_grad():
            self.weight1_t = nn.Parameter(torch.stack([m.weight1.t() for m in layers]).contiguous())
            self.bias1 = nn.Parameter(torch.stack([m.bias1 for m in layers]).clone())
            self.weight2 = nn.Parameter(torch.stack([m.weight2 for m in layers]).clone())
            self.bias2 = nn.Parameter(torch.stack([m.bias2 for m in layers]).clone())

    @staticmethod
    def unstack(stacked: StackedAffineCoupling, layer: AffineCoupling, k: int) -> None:
        layer.weight1.copy_(stacked.weight1_t[k].t())
        layer.bias1.copy_(stacked.bias1[k])
        layer.weight2.copy_(stacked.weight2[k])
        layer.bias2.copy_(stacked.bias2[k])

    def reset_parameters(self) -> None:  # the values come from the seeds' own layers
        raise NotImplementedError("a stacked coupling layer takes its seeds' initialisations")

    def scale_shift(self, x_a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s, t)``, each ``(K, batch, d_b)``: :meth:`AffineCoupling.scale_shift` per seed."""
        k, n = x_a.shape[:2]
        h = torch.baddbmm(self.bias1[:, None, :], x_a, self.weight1_t)
        h = nn.functional.leaky_relu(h, self.slope)
        h = h.view(k, n, 2, self.hidden).permute(0, 2, 1, 3).reshape(2 * k, n, self.hidden)
        w2 = self.weight2.reshape(2 * k, self.hidden, self.d_b)
        st = torch.baddbmm(self.bias2.reshape(2 * k, 1, self.d_b), h, w2)
        st = st.to(self.weight2.dtype).view(k, 2, n, self.d_b)
        return soft_clamp(st[:, 0], self.clamp), st[:, 1]

    def extra_repr(self) -> str:
        return f"seeds={self.bias1.shape[0]}, " + super().extra_repr()


class GlowCoupling(nn.Module):
    r"""A GLOW-style affine coupling block that updates both halves (GSMFlow Eq. 15-16).

    With :math:`x = [u_1, u_2]`, :math:`|u_1| = \lfloor d/2 \rfloor` and an optional condition
    :math:`a` concatenated to every sub-network input:

    .. math:: v_1 = u_1 \odot \exp(s_1([u_2, a])) + t_1([u_2, a]), \quad
              v_2 = u_2 \odot \exp(s_2([v_1, a])) + t_2([v_1, a]),

    and :math:`\log|\det| = \sum s_1 + \sum s_2`. Sub-network ``k`` is
    ``Linear(|in| + d_a, hidden) -> LeakyReLU -> Linear(hidden, 2 |out|)`` whose output is
    ``[s_k, t_k]`` (one net for both, as FrEIA's ``GLOWCouplingBlock`` and GSMFlow's code).

    The block works on the two halves separately (no ``cat``/``split`` per block) and takes
    the condition's share of each first layer, :math:`W_a a + b`, as the ready-made
    ``(batch, hidden)`` tensors ``c1``/``c2``: :class:`ConditionalCouplingFlow` computes them
    once per distinct condition vector (a batch holds few classes) for all blocks in one
    matrix product, instead of once per sample. ``c1 = c2 = None`` is the unconditional
    block (the first layers then add their own bias).

    Args:
        features: ``d``.
        hidden: hidden width of both sub-networks (GSMFlow: 2048).
        slope: LeakyReLU negative slope (GSMFlow's code: 0.2).
        clamp: soft bound of the log-scales (:func:`soft_clamp`); ``None`` = plain ``exp(s)``.
        clamp_scale: the :math:`2/\pi` of :func:`soft_clamp` (FrEIA writes 0.636).
    """

    def __init__(
        self,
        features: int,
        hidden: int,
        slope: float = 0.2,
        clamp: float | None = 1.0,
        clamp_scale: float = 2.0 / math.pi,
    ) -> None:
        super().__init__()
        if features < 2:
            raise ValueError(f"a coupling block needs >= 2 features, got {features}")
        self.features, self.hidden = features, hidden
        self.d1 = features // 2
        self.d2 = features - self.d1
        self.slope, self.clamp, self.clamp_scale = slope, clamp, clamp_scale
        d1, d2 = self.d1, self.d2
        # Sub-network 1 reads u2 (and a) and transforms u1; sub-network 2 reads v1, moves u2.
        self.weight_in1 = nn.Parameter(torch.empty(hidden, d2))
        self.weight_in2 = nn.Parameter(torch.empty(hidden, d1))
        self.bias_in = nn.Parameter(torch.empty(2, hidden))
        self.weight_out1 = nn.Parameter(torch.empty(2 * d1, hidden))
        self.bias_out1 = nn.Parameter(torch.empty(2 * d1))
        self.weight_out2 = nn.Parameter(torch.empty(2 * d2, hidden))
        self.bias_out2 = nn.Parameter(torch.empty(2 * d2))
        self.reset_parameters()

    def reset_parameters(self, std: float | None = None, fan_in_extra: int = 0) -> None:
        """``nn.Linear``'s default initialisation (first layers see ``fan_in_extra`` more
        inputs: the condition), or N(0, std^2) for every parameter (GSMFlow's code: 0.01)."""
        if std is not None:
            for p in self.parameters():
                nn.init.normal_(p, 0.0, std)
            return
        for w, b, fan in (
            (self.weight_in1, self.bias_in[0], self.d2 + fan_in_extra),
            (self.weight_in2, self.bias_in[1], self.d1 + fan_in_extra),
            (self.weight_out1, self.bias_out1, self.hidden),
            (self.weight_out2, self.bias_out2, self.hidden),
        ):
            bound = 1.0 / math.sqrt(fan)
            with torch.no_grad():
                w.uniform_(-bound, bound)
                b.uniform_(-bound, bound)

    def subnet(
        self, k: int, u: torch.Tensor, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(s_k, t_k)`` of sub-network ``k`` (1 or 2) on input ``u`` and condition share
        ``c``, in the parameters' dtype (under autocast the products run in low precision and
        their output is cast back: the log-determinant and ``exp(s)`` are computed in fp32)."""
        w_in, w_out, b_out = (
            (self.weight_in1, self.weight_out1, self.bias_out1)
            if k == 1
            else (self.weight_in2, self.weight_out2, self.bias_out2)
        )
        first = self.bias_in[k - 1] if c is None else c  # c already holds W_a a + b
        h = nn.functional.leaky_relu(torch.addmm(first, u, w_in.t()), self.slope)
        st = torch.addmm(b_out, h, w_out.t()).to(w_out.dtype)
        d = st.shape[1] // 2
        return soft_clamp(st[:, :d], self.clamp, self.clamp_scale), st[:, d:]

    def forward(
        self,
        u1: torch.Tensor,
        u2: torch.Tensor,
        c1: torch.Tensor | None = None,
        c2: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eq. 15: ``(v1, v2, log|det|)``."""
        s1, t1 = self.subnet(1, u2, c1)
        v1, ladj1 = affine_coupling_forward(u1, s1, t1)
        s2, t2 = self.subnet(2, v1, c2)
        v2, ladj2 = affine_coupling_forward(u2, s2, t2)
        return v1, v2, ladj1 + ladj2

    def inverse(
        self,
        v1: torch.Tensor,
        v2: torch.Tensor,
        c1: torch.Tensor | None = None,
        c2: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Eq. 16: ``(u1, u2)``, the half-steps undone in reverse order."""
        s2, t2 = self.subnet(2, v1, c2)
        u2 = affine_coupling_inverse(v2, s2, t2)
        s1, t1 = self.subnet(1, u2, c1)
        return affine_coupling_inverse(v1, s1, t1), u2

    def extra_repr(self) -> str:
        return (
            f"features={self.features}, hidden={self.hidden}, slope={self.slope}, "
            f"clamp={self.clamp}"
        )


class ConditionalCouplingFlow(nn.Module):
    r"""``n_blocks`` :class:`GlowCoupling` blocks conditioned on a vector :math:`a` (GSMFlow's
    :math:`f(x; a)`, Eq. 11-16), with optional fixed permutations before each block.

    ``forward(x, cond, index)`` returns :math:`(f(x; a), \log|\det \partial f / \partial x|)`;
    ``inverse(z, cond, index)`` is :math:`f^{-1}(z; a)` (Eq. 12/19). The condition is either
    one row per sample (``index=None``) or ``(k, d_a)`` distinct rows with ``index`` mapping
    each sample to its row (e.g. ``torch.unique(labels, return_inverse=True)``): the
    condition's share of every first layer is then computed for the ``k`` rows only, in one
    matrix product for all blocks, and gathered per sample -- the same function with far
    fewer FLOPs when a batch holds few classes (``benchmarks/gsmflow_speed.py``).

    Args:
        features: ``d``.
        cond_features: ``d_a`` (0 = unconditional).
        n_blocks: number of coupling blocks (GSMFlow: 3 or 5; Fig. 7e).
        hidden: sub-network hidden width (GSMFlow: 2048).
        slope, clamp, clamp_scale: see :class:`GlowCoupling`.
        permute: a fixed random permutation before each block (GSMFlow's code has none).
        init_std: N(0, init_std^2) initialisation of every parameter (GSMFlow's code: 0.01);
            ``None`` = ``nn.Linear``'s default.
        generator: random generator for the permutations.

    Example:
        >>> flow = ConditionalCouplingFlow(6, 3, n_blocks=2, hidden=8)
        >>> x, a = torch.randn(4, 6), torch.randn(4, 3)
        >>> z, ladj = flow(x, a)
        >>> torch.allclose(flow.inverse(z, a), x, atol=1e-5)
        True
    """

    def __init__(
        self,
        features: int,
        cond_features: int = 0,
        n_blocks: int = 3,
        hidden: int = 2048,
        slope: float = 0.2,
        clamp: float | None = 1.0,
        clamp_scale: float = 2.0 / math.pi,
        permute: bool = False,
        init_std: float | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.features, self.cond_features = features, cond_features
        self.n_blocks, self.hidden = n_blocks, hidden
        self.blocks = nn.ModuleList(
            GlowCoupling(features, hidden, slope, clamp, clamp_scale) for _ in range(n_blocks)
        )
        self.perms = (
            nn.ModuleList(Permutation(features, generator) for _ in range(n_blocks))
            if permute
            else None
        )
        # The condition's columns of every first layer, all blocks stacked: one GEMM.
        self.cond_weight = (
            nn.Parameter(torch.empty(n_blocks * 2 * hidden, cond_features))
            if cond_features
            else None
        )
        self.reset_parameters(init_std)

    def reset_parameters(self, std: float | None = None) -> None:
        for block in self.blocks:
            block.reset_parameters(std, fan_in_extra=self.cond_features)
        if self.cond_weight is not None:
            if std is not None:
                nn.init.normal_(self.cond_weight, 0.0, std)
            else:  # the same U(+-1/sqrt(fan_in)) as the rest of each first layer
                bound = 1.0 / math.sqrt(self.cond_features + self.features // 2)
                nn.init.uniform_(self.cond_weight, -bound, bound)

    def condition_shares(
        self, cond: torch.Tensor | None, index: torch.Tensor | None
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """Per block, ``(c1, c2)``: :math:`W_a a + b` of both first layers, one row per sample."""
        if self.cond_weight is None:
            if cond is not None and cond.shape[-1] != 0:
                raise ValueError("this flow is unconditional; pass cond=None")
            return [(None, None)] * self.n_blocks
        if cond is None:
            raise ValueError(f"this flow needs a ({self.cond_features},)-d condition")
        proj = (cond @ self.cond_weight.t()).view(len(cond), self.n_blocks, 2, self.hidden)
        out = []
        for i, block in enumerate(self.blocks):
            pair = []
            for j in range(2):
                c = proj[:, i, j] + block.bias_in[j]  # k rows: cheap
                pair.append(c if index is None else c[index])
            out.append((pair[0], pair[1]))
        return out

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(z, log|det dz/dx|)`` (Eq. 11, 13); the log-det is per sample."""
        shares = self.condition_shares(cond, index)
        d1 = self.features // 2
        # last-axis indexing: the stacked flow of several seeds runs this same code
        ladj = x.new_zeros(x.shape[:-1])
        u1, u2 = x[..., :d1], x[..., d1:]
        for i, block in enumerate(self.blocks):
            if self.perms is not None:
                xp = self.perms[i](torch.cat([u1, u2], -1))[0]
                u1, u2 = xp[..., :d1], xp[..., d1:]
            u1, u2, block_ladj = block(u1, u2, *shares[i])
            ladj = ladj + block_ladj
        return torch.cat([u1, u2], -1), ladj

    def inverse(
        self,
        z: torch.Tensor,
        cond: torch.Tensor | None = None,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """:math:`f^{-1}(z; a)` (Eq. 12, 16, 19)."""
        shares = self.condition_shares(cond, index)
        d1 = self.features // 2
        v1, v2 = z[..., :d1], z[..., d1:]
        for i in reversed(range(self.n_blocks)):
            v1, v2 = self.blocks[i].inverse(v1, v2, *shares[i])
            if self.perms is not None:
                xp = self.perms[i].inverse(torch.cat([v1, v2], -1))
                v1, v2 = xp[..., :d1], xp[..., d1:]
        return torch.cat([v1, v2], -1)


class StackedGlowCoupling(nn.Module):
    """K seeds' :class:`GlowCoupling` blocks on ``(K, batch, d)`` halves: the same sub-networks,
    clamp and log-determinant, every parameter with a leading seed axis and the products
    batched over it. Weights are stored transposed, ``(K, in, out)``, so the batched products
    read contiguous matrices (see :class:`unseen.models.stacked.StackedLinear`)."""

    def __init__(self, blocks: list[GlowCoupling]) -> None:
        super().__init__()
        first = blocks[0]
        for key in ("features", "hidden", "d1", "d2", "slope", "clamp", "clamp_scale"):
            setattr(self, key, getattr(first, key))

        def stacked(name: str, transpose: bool) -> nn.Parameter:
            values = [getattr(b, name).detach() for b in blocks]
            return nn.Parameter(torch.stack([v.t() if transpose else v for v in values]).clone())

        with torch.no_grad():
            self.weight_in1_t = stacked("weight_in1", True)  # (K, d2, hidden)
            self.weight_in2_t = stacked("weight_in2", True)  # (K, d1, hidden)
            self.bias_in = stacked("bias_in", False)  # (K, 2, hidden)
            self.weight_out1_t = stacked("weight_out1", True)  # (K, hidden, 2 d1)
            self.bias_out1 = stacked("bias_out1", False)
            self.weight_out2_t = stacked("weight_out2", True)  # (K, hidden, 2 d2)
            self.bias_out2 = stacked("bias_out2", False)

    def unstack_into(self, block: GlowCoupling, k: int) -> None:
        """Copy seed ``k``'s parameters into a plain block."""
        with torch.no_grad():
            for name in ("weight_in1", "weight_in2", "weight_out1", "weight_out2"):
                getattr(block, name).copy_(getattr(self, name + "_t")[k].t())
            for name in ("bias_in", "bias_out1", "bias_out2"):
                getattr(block, name).copy_(getattr(self, name)[k])

    def subnet(
        self, k: int, u: torch.Tensor, c: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`GlowCoupling.subnet` per seed: ``u`` and ``c`` are ``(K, batch, ...)``."""
        w_in, w_out, b_out = (
            (self.weight_in1_t, self.weight_out1_t, self.bias_out1)
            if k == 1
            else (self.weight_in2_t, self.weight_out2_t, self.bias_out2)
        )
        first = self.bias_in[:, k - 1, None, :] if c is None else c
        h = nn.functional.leaky_relu(torch.baddbmm(first, u, w_in), self.slope)
        st = torch.baddbmm(b_out[:, None, :], h, w_out).to(w_out.dtype)
        d = st.shape[-1] // 2
        return soft_clamp(st[..., :d], self.clamp, self.clamp_scale), st[..., d:]

    forward = GlowCoupling.forward
    inverse = GlowCoupling.inverse

    def extra_repr(self) -> str:
        return f"seeds={self.bias_in.shape[0]}, features={self.features}, hidden={self.hidden}"


class StackedConditionalCouplingFlow(nn.Module):
    """K seeds' :class:`ConditionalCouplingFlow` s as one module (seeds trained as one batched
    model): ``forward(x, cond, index)`` and ``inverse`` take ``(K, batch, d)`` inputs, the
    condition rows ``(K, k, d_a)`` and ``index`` ``(K, batch)`` (each sample's row), and
    compute exactly each seed's own flow on its slice."""

    def __init__(self, flows: list[ConditionalCouplingFlow]) -> None:
        super().__init__()
        first = flows[0]
        for key in ("features", "cond_features", "n_blocks", "hidden"):
            setattr(self, key, getattr(first, key))
        self.blocks = nn.ModuleList(
            StackedGlowCoupling([f.blocks[i] for f in flows]) for i in range(first.n_blocks)
        )
        self.perms = (
            nn.ModuleList(
                StackedPermutation.stack([f.perms[i] for f in flows]) for i in range(first.n_blocks)
            )
            if first.perms is not None
            else None
        )
        self.cond_weight_t = (  # (K, d_a, n_blocks * 2 * hidden)
            nn.Parameter(torch.stack([f.cond_weight.detach().t() for f in flows]).contiguous())
            if first.cond_weight is not None
            else None
        )

    @staticmethod
    def unstack(stacked: StackedConditionalCouplingFlow, flow: ConditionalCouplingFlow, k: int):
        for block, plain in zip(stacked.blocks, flow.blocks, strict=True):
            block.unstack_into(plain, k)
        if stacked.perms is not None:
            for perm, plain in zip(stacked.perms, flow.perms, strict=True):
                StackedPermutation.unstack(perm, plain, k)
        if stacked.cond_weight_t is not None:
            with torch.no_grad():
                flow.cond_weight.copy_(stacked.cond_weight_t[k].t())

    def condition_shares(
        self, cond: torch.Tensor | None, index: torch.Tensor | None
    ) -> list[tuple[torch.Tensor | None, torch.Tensor | None]]:
        """:meth:`ConditionalCouplingFlow.condition_shares` per seed: ``(K, batch, hidden)``."""
        if self.cond_weight_t is None:
            return [(None, None)] * self.n_blocks
        if cond is None:
            raise ValueError(f"this flow needs a ({self.cond_features},)-d condition")
        k, n = cond.shape[:2]
        proj = torch.bmm(cond, self.cond_weight_t).view(k, n, self.n_blocks, 2, self.hidden)
        out = []
        for i, block in enumerate(self.blocks):
            pair = []
            for j in range(2):
                c = proj[:, :, i, j] + block.bias_in[:, j, None, :]
                if index is not None:
                    c = torch.gather(c, 1, index[..., None].expand(-1, -1, self.hidden))
                pair.append(c)
            out.append((pair[0], pair[1]))
        return out

    forward = ConditionalCouplingFlow.forward  # with this class's condition_shares
    inverse = ConditionalCouplingFlow.inverse


register_stacker(
    Permutation, StackedPermutation, StackedPermutation.stack, StackedPermutation.unstack
)
register_stacker(
    AffineCoupling, StackedAffineCoupling, StackedAffineCoupling, StackedAffineCoupling.unstack
)
register_stacker(
    ConditionalCouplingFlow,
    StackedConditionalCouplingFlow,
    StackedConditionalCouplingFlow,
    StackedConditionalCouplingFlow.unstack,
)
