"""GSMFlow training step: our conditional coupling flow vs FrEIA's GLOWCouplingBlock.

Both are the official architecture (3 GLOW-style blocks, 2048-d features, 1024-d condition,
sub-networks Linear(1024 + 1024 -> 2048) -> LeakyReLU(0.2) -> Linear(2048 -> 2048), soft
clamp 1 with 0.636 atan, no permutation), batch 256, fp32, the official NLL per dimension
``mean(z^2)/2 - mean(log-det)/d``, backward and an Adam step (the same optimizer for both).
The condition of each sample is its class's row of a trainable ``(n_classes, 1024)`` table,
standing in for the relative-positioning output a^g (trained jointly, so it needs
gradients in both models). FrEIA concatenates the condition to every sub-network input per
sample; ours computes the condition's share of the first layers once per distinct class in
the batch, for all blocks in one product (``ConditionalCouplingFlow``), and keeps the halves
apart instead of splitting/concatenating in every block.

Same numerics: FrEIA's weights are copied into ours and the script prints the largest
difference of z and of the log-det on one batch before timing (float32 rounding only).
Timing: ``--rounds`` interleaved rounds of ``--steps`` steps of each model; min and median
ms per step. GFLOP per step from ``torch.utils.flop_counter``'s formulas (forward +
backward, no optimizer; ``benchmarks/timing.py``); achieved GFLOP/s = that / median time.
Peak memory: peak RSS of a fresh subprocess running a few steps of one model (CPU), or
``torch.cuda.max_memory_allocated``.

Run single-threaded for comparable figures: ``OMP_NUM_THREADS=1 python
benchmarks/gsmflow_speed.py`` (FrEIA is in the ``bench`` extra: ``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import torch
from torch import nn

from timing import (
    flops_of,
    in_fresh_process,
    interleaved_ms,
    peak_rss_mib,
    random_seen_data,
    speed_args,
    speed_parser,
    sync,
)
from unseen.models.flows import ConditionalCouplingFlow


def build_freia(
    d: int,
    d_c: int,
    hidden: int,
    n_blocks: int,
    clamp: float | None,
    slope: float = 0.2,
    permute: bool = False,
) -> nn.Module:
    """FrEIA's conditional GLOW coupling flow (also benchmarks/speed_all.py's twin of GSMFlow's
    flow); ``clamp`` None: unclamped, ``permute``: a random permutation before each block."""
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm

    def subnet(c_in: int, c_out: int) -> nn.Module:
        return nn.Sequential(nn.Linear(c_in, hidden), nn.LeakyReLU(slope), nn.Linear(hidden, c_out))

    inn = Ff.SequenceINN(d)
    for _ in range(n_blocks):
        if permute:
            inn.append(Fm.PermuteRandom, seed=0)
        inn.append(
            Fm.GLOWCouplingBlock,
            cond=0,
            cond_shape=(d_c,),
            subnet_constructor=subnet,
            clamp=clamp or 1e9,
            clamp_activation="ATAN",
        )
    return inn


@torch.no_grad()
def copy_freia_into_ours(ref: nn.Module, ours: ConditionalCouplingFlow) -> None:
    """FrEIA 0.2 updates x1 from [x2, c] first (its ``subnet2``), then x2 from [y1, c]
    (``subnet1``): our sub-networks 1 and 2, in Eq. 15's order."""
    h, d_c = ours.hidden, ours.cond_features
    cw = ours.cond_weight.view(ours.n_blocks, 2, h, d_c)
    for i, (blk, mine) in enumerate(zip(ref.module_list, ours.blocks)):
        for j, sub in enumerate((blk.subnet2, blk.subnet1)):
            first, last = sub[0], sub[2]
            d_in = first.weight.shape[1] - d_c
            getattr(mine, f"weight_in{j + 1}").copy_(first.weight[:, :d_in])
            cw[i, j].copy_(first.weight[:, d_in:])
            mine.bias_in[j].copy_(first.bias)
            getattr(mine, f"weight_out{j + 1}").copy_(last.weight)
            getattr(mine, f"bias_out{j + 1}").copy_(last.bias)


def make_models(args, device, only: str | None = None):
    """Both models (FrEIA's weights copied into ours), or ``only`` one of them."""
    torch.manual_seed(0)
    ref = ours = None
    if only in (None, "freia"):
        ref = build_freia(args.features, args.cond, args.hidden, args.blocks, args.clamp)
        ref = ref.to(device)
    if only == "freia":
        return ref, None
    ours = ConditionalCouplingFlow(
        args.features,
        args.cond,
        n_blocks=args.blocks,
        hidden=args.hidden,
        slope=0.2,
        clamp=args.clamp,
        clamp_scale=0.636,
    ).to(device)
    if ref is not None:
        copy_freia_into_ours(ref, ours)
    return ref, ours


def make_step(kind: str, model: nn.Module, table: nn.Parameter, args, device):
    params = [*model.parameters(), table]
    opt = torch.optim.Adam(params, lr=1e-4, fused=args.fused_adam)
    gen = torch.Generator(device="cpu").manual_seed(1)
    d = args.features

    def batch():
        x = torch.rand(args.batch, d, generator=gen).to(device)
        y = torch.randint(args.classes, (args.batch,), generator=gen).to(device)
        return x, y

    def loss_of(x, y):
        if kind == "freia":
            z, ladj = model(x, c=[table[y]])
        else:
            classes, index = torch.unique(y, return_inverse=True)
            z, ladj = model(x, table[classes], index)
        return 0.5 * z.pow(2).mean() - ladj.mean() / d

    def step() -> tuple[float, float]:
        """One training step; returns (forward + backward, optimizer) seconds."""
        x, y = batch()
        sync(device)
        t0 = time.perf_counter()
        loss = loss_of(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sync(device)
        t1 = time.perf_counter()
        opt.step()
        sync(device)
        return t1 - t0, time.perf_counter() - t1

    return step, batch, loss_of


def peak_memory_child(kind: str, args) -> None:
    """Subprocess body: a few steps of one model; prints its peak memory as JSON."""
    device = torch.device(args.device)
    ref, ours = make_models(args, device, only=kind)
    model = ref if kind == "freia" else ours
    table = nn.Parameter(torch.randn(args.classes, args.cond, device=device))
    step, _, _ = make_step(kind, model, table, args, device)
    before = peak_rss_mib()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    sync(device)
    out = {
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_steps_mib": before,
    }
    if device.type == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    print(json.dumps(out))


def mining_benchmark(args) -> None:
    """``--mining``: one boundary-mining step (Eq. 4: g's scores of ``--batch`` samples
    against every seen class, the loss and its gradient w.r.t. the samples) three ways.

    * ``pairs``: the official RelationNet's way, every (sample, class) pair concatenated to
      ``[x, a]`` and run through the first layer (``n K (d + d_a) hidden`` multiply-adds);
    * ``split+autograd``: the first layer split as ``W_x x + W_a a`` (two small products),
      the ``(n, K, hidden)`` sum, ReLU and last layer left to autograd;
    * ``unseen``: :class:`~unseen.models.gsmflow.ContrastiveNet` as shipped (the split, and
      the hand-written backward of ``_PairLogits``).

    The same weights in all three; the largest difference of the gradients is printed.
    """
    from unseen.models.gsmflow import ContrastiveNet, contrastive_loss, prediction_entropy

    device = torch.device(args.device)
    torch.manual_seed(0)
    d, d_a, h, k, n = args.features, args.cond, args.hidden, args.classes, args.batch
    g = ContrastiveNet(d, d_a, h, k).to(device).eval()
    for p in g.parameters():
        p.requires_grad_(False)
    x = torch.rand(n, d, device=device)
    y = torch.randint(k, (n,), device=device)
    sem = torch.rand(k, d_a, device=device)
    w1 = torch.cat([g.fc_x.weight, g.fc_a.weight], 1)  # the joint first layer of `pairs`

    def pairs(xk):
        joint = torch.cat([xk[:, None, :].expand(n, k, d), sem[None].expand(n, k, d_a)], 2)
        hid = nn.functional.relu(joint.reshape(n * k, d + d_a) @ w1.t() + g.fc_x.bias)
        return torch.sigmoid(g.out(hid).view(n, k))

    def split(xk):
        hid = g.fc_x(xk)[:, None, :] + g.fc_a(sem)[None]
        return torch.sigmoid(g.out(nn.functional.relu(hid)).squeeze(-1))

    def ours(xk):
        return g.scores(xk, sem)

    def grad_of(fn):
        xk = x.clone().requires_grad_(True)
        s = fn(xk)
        loss = (contrastive_loss(s, y) - prediction_entropy(s)).sum() / n
        return torch.autograd.grad(loss, xk)[0]

    fns = {"pairs": pairs, "split+autograd": split, "unseen": ours}
    ref = grad_of(pairs)
    diffs = {name: float((grad_of(fn) - ref).abs().max()) for name, fn in fns.items()}
    steps = {name: lambda fn=fn: grad_of(fn) for name, fn in fns.items()}
    times = interleaved_ms(steps, device, args.rounds, args.steps)
    print(
        f"mining step: {n} samples x {k} classes, d {d}, d_a {d_a}, hidden {h}; "
        f"threads {torch.get_num_threads()}, device {device}"
    )
    print("| implementation | ms/step min | ms/step median | speed-up vs pairs | max |grad diff| |")
    print("|---|---|---|---|---|")
    base = statistics.median(times["pairs"])
    for name, t in times.items():
        med = statistics.median(t)
        print(f"| {name} | {min(t):.0f} | {med:.0f} | {base / med:.1f}x | {diffs[name]:.1e} |")
    print(json.dumps({"config": vars(args), "times_ms": times, "max_grad_diff": diffs}))


def full_step_benchmark(args) -> None:
    """``--full-step``: one whole GSMFlow training step (the no-EM objective, Eq. 18) as the
    official code runs it, rebuilt on FrEIA, against :class:`unseen.methods.GSMFlow`'s.

    * ``official (FrEIA)``: a^g computed per sample (``sm(C)`` over the batch), visual
      perturbation, FrEIA flow forward and NLL backward, then L_proto: a^g of ALL seen
      classes under ``no_grad`` (the code's quirk), the reverse pass of zeros, MSE to the
      class means, backward; ``torch.optim.Adam`` as the code builds it (default
      implementation) over flow + relative positioning, weight decay.
    * ``unseen``: ``GSMFlow.losses`` (a^g once per distinct class of the batch; L_proto over
      the batch's classes, which with ``--classes`` <= batch are all seen classes, with its
      gradient reaching a^g as Eq. 18 says) and the method's own optimiser (fused Adam for
      models this size).

    The flows are the same architecture; the two steps are not bit-identical computations
    (the L_proto gradient into a^g, Adam's implementation), so this measures what a user of
    each gets per step; the flow-only comparison above is the same-numerics one.
    """
    from unseen.methods import GSMFlow
    from unseen.methods.izf import seen_class_means
    from unseen.models.gsmflow import RelativePositioning

    device = torch.device(args.device)
    d, d_c, h, k, n = args.features, args.cond, args.hidden, args.classes, args.batch
    d_a, pi, lam, wd = args.semantic, 0.15, 10.0, 3e-6  # AWA2's official values
    torch.manual_seed(0)
    n_train = n * args.steps
    data = random_seen_data(n_train, d, d_a, k)
    m = GSMFlow(
        variant="no-em", n_blocks=args.blocks, hidden=h, semantic_out=d_c, perturbation=pi,
        lambda_proto=lam, weight_decay=wd, clamp=args.clamp, device=device, seed=0,
    ).fit(data, epochs=0)  # fmt: skip
    data = m._to_device(data)
    means = seen_class_means(data)
    sem = data.semantics.float()

    ref = build_freia(d, d_c, h, args.blocks, args.clamp).to(device)
    for p in ref.parameters():  # the official init
        p.data = 0.01 * torch.randn_like(p)
    rp = RelativePositioning(d_a, d_c).to(device)
    rp.set_anchors(sem[:k])
    opt_ref = torch.optim.Adam([*ref.parameters(), *rp.parameters()], lr=1e-4, weight_decay=wd)
    seen_means = means[:k]

    def step_official(idx):
        x, y = data.features[idx], data.labels[idx]
        opt_ref.zero_grad()
        sr = rp(sem[y])  # per sample
        z, ladj = ref(x + pi * torch.randn_like(x), c=[sr])
        (torch.mean(z**2) / 2 - torch.mean(ladj) / d).backward()
        with torch.no_grad():
            sr_all = rp(sem[:k])
        protos, _ = ref(torch.zeros(k, d, device=device), c=[sr_all], rev=True)
        (lam * nn.functional.mse_loss(protos, seen_means)).backward()
        opt_ref.step()

    opt = m.optimizers_["flow"]

    def step_ours(idx):
        loss = m.losses(data.features[idx], data.labels[idx], sem, means)["total"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    batches = torch.randperm(n_train, device=device).split(n)
    for fn in (step_official, step_ours, step_official, step_ours):  # warm-up
        fn(batches[0])
    official, ours = itertools.cycle(batches), itertools.cycle(batches)  # a round: every batch
    steps = {
        "official (FrEIA)": lambda: step_official(next(official)),
        "unseen": lambda: step_ours(next(ours)),
    }
    times = interleaved_ms(steps, device, args.rounds, len(batches))
    print(
        f"full GSMFlow step (no EM): d {d}, semantic {d_a} -> a^g {d_c}, hidden {h}, "
        f"blocks {args.blocks}, batch {n}, {k} seen classes; threads {torch.get_num_threads()}, "
        f"device {device}"
    )
    print("| step | ms/step min | ms/step median |")
    print("|---|---|---|")
    for name, t in times.items():
        print(f"| {name} | {min(t):.0f} | {statistics.median(t):.0f} |")
    a, b = times["official (FrEIA)"], times["unseen"]
    print(
        f"speed-up: {min(a) / min(b):.2f}x (min), "
        f"{statistics.median(a) / statistics.median(b):.2f}x (median)"
    )
    print(json.dumps({"config": vars(args), "times_ms": times}))


def main() -> None:
    p = speed_parser(__doc__)
    p.add_argument("--features", type=int, default=2048, help="feature dim d")
    p.add_argument("--cond", type=int, default=1024, help="condition dim (a^g's)")
    p.add_argument("--hidden", type=int, default=2048, help="coupling sub-networks' width")
    p.add_argument("--blocks", type=int, default=3)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--classes", type=int, default=40, help="seen classes (AWA2: 40)")
    p.add_argument("--clamp", type=float, default=1.0, help="soft clamp of the log-scales")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds timed")
    p.add_argument("--steps", type=int, default=3, help="steps per round")
    p.add_argument("--fused-adam", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--child", choices=["freia", "ours"], help=argparse.SUPPRESS)
    p.add_argument(
        "--mining",
        action="store_true",
        help="time one boundary-mining step of g instead (see mining_benchmark); "
        "e.g. --mining --batch 64 --classes 82 --cond 1024",
    )
    p.add_argument(
        "--full-step",
        action="store_true",
        help="time the whole no-EM GSMFlow step, official-code style vs unseen's "
        "(see full_step_benchmark)",
    )
    p.add_argument("--semantic", type=int, default=85, help="--full-step: d_a (AWA2: 85)")
    args = speed_args(p)
    if args.full_step:
        full_step_benchmark(args)
        return
    if args.mining:
        mining_benchmark(args)
        return
    if args.child:
        peak_memory_child(args.child, args)
        return
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}; "
        f"d {args.features}, cond {args.cond}, hidden {args.hidden}, blocks {args.blocks}, "
        f"batch {args.batch}, classes {args.classes}, Adam fused={args.fused_adam}",
        flush=True,
    )
    ref, ours = make_models(args, device)
    table_f = nn.Parameter(torch.randn(args.classes, args.cond, device=device))
    table_o = nn.Parameter(table_f.detach().clone())
    step_f, batch_f, loss_f = make_step("freia", ref, table_f, args, device)
    step_o, _, loss_o = make_step("ours", ours, table_o, args, device)

    # Same numerics: one batch through both (before any step changes the weights).
    x, y = batch_f()
    with torch.no_grad():
        zf, lf = ref(x, c=[table_f[y]])
        classes, index = torch.unique(y, return_inverse=True)
        zo, lo = ours(x, table_o[classes], index)
    numerics = {
        "max_abs_diff_z": float((zf - zo).abs().max()),
        "max_abs_z": float(zf.abs().max()),
        "max_abs_diff_logdet": float((lf - lo).abs().max()),
        "max_abs_logdet": float(lf.abs().max()),
        "distinct_classes_in_batch": len(classes),
    }
    print("numerics (FrEIA weights copied into ours):", json.dumps(numerics), flush=True)

    flops = {}
    for name, fn in (("freia", loss_f), ("ours", loss_o)):
        flops[name] = flops_of(lambda fn=fn: fn(x, y).backward()) / 1e9
    ref.zero_grad(set_to_none=True)
    ours.zero_grad(set_to_none=True)

    for step in (step_f, step_o, step_f, step_o):  # warm-up (lazy init, allocator)
        step()
    parts: dict[str, list[tuple[float, float]]] = {"freia": [], "ours": []}
    times = interleaved_ms(
        {"freia": step_f, "ours": step_o}, device, args.rounds, args.steps, parts
    )

    memory = {}
    if args.memory:
        mine = [a for a in sys.argv[1:] if a not in ("--memory", "--no-memory")]
        for name in ("freia", "ours"):
            memory[name] = in_fresh_process(["--child", name, *mine])

    rows = {}
    print(
        "\n| model | ms/step min | ms/step median | fwd+bwd / Adam (median ms) "
        "| GFLOP/step (fwd+bwd) | GFLOP/s (median step) | peak MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, label in (
        ("freia", "FrEIA GLOWCouplingBlock"),
        ("ours", "unseen ConditionalCouplingFlow"),
    ):
        t = times[name]
        med = statistics.median(t)
        fb = statistics.median(a for a, _ in parts[name]) * 1e3
        ad = statistics.median(b for _, b in parts[name]) * 1e3
        mem = memory.get(name, {})
        peak = mem.get("cuda_peak_mib", mem.get("peak_rss_mib"))
        rows[name] = {
            "ms_min": min(t),
            "ms_median": med,
            "fwd_bwd_ms_median": fb,
            "adam_ms_median": ad,
            "gflop": flops[name],
            "gflops": flops[name] / med * 1e3,
            "peak_mib": peak,
            "times_ms": t,
        }
        print(
            f"| {label} | {min(t):.0f} | {med:.0f} | {fb:.0f} / {ad:.0f} | {flops[name]:.1f} | "
            f"{flops[name] / med * 1e3:.1f} | {'-' if peak is None else f'{peak:.0f}'} |"
        )
    speedup_min = rows["freia"]["ms_min"] / rows["ours"]["ms_min"]
    speedup_med = rows["freia"]["ms_median"] / rows["ours"]["ms_median"]
    speedup_fb = rows["freia"]["fwd_bwd_ms_median"] / rows["ours"]["fwd_bwd_ms_median"]
    print(
        f"\nspeed-up of ours over FrEIA per step: {speedup_min:.2f}x (min), "
        f"{speedup_med:.2f}x (median); forward + backward alone {speedup_fb:.2f}x (median); "
        f"FLOP ratio {flops['freia'] / flops['ours']:.2f}x; target >= 1.5x"
    )
    print(
        json.dumps(
            {
                "config": vars(args),
                "numerics": numerics,
                "rows": rows,
                "speedup_min": speedup_min,
                "speedup_median": speedup_med,
                "speedup_fwd_bwd_median": speedup_fb,
            }
        )
    )


if __name__ == "__main__":
    main()
