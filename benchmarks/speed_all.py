"""Training speed and memory of every registered method at the real benchmark shapes.

For each method x shape it prints the time of one training step (one minibatch of the
method's ``batch_size``: for the GANs ``critic_steps`` critic updates + one generator update),
the time per epoch EXTRAPOLATED from it (step time x ceil(n_train / batch): every method's
epoch is that many such steps), samples/s, the matmul FLOPs of one step counted by
``torch.utils.flop_counter``'s formulas (matrix products only: element-wise work is not
counted, so GFLOP/s is a lower bound of the work done), the achieved GFLOP/s, this machine's
fp32 sgemm rate measured right after the step in the same process (so both see the same
load on a shared machine), and peak memory. For the flows (IZF, GSMFlow) it also times the
flow's own likelihood step beside the FrEIA reference of the same architecture.

    python benchmarks/speed_all.py                           # every method, every shape
    python benchmarks/speed_all.py --methods izf --shapes FLO --steps 2 --device cuda
    python benchmarks/speed_all.py --shapes FLO-effnet --precisions fp32 bf16  # fp32 vs bf16
    python benchmarks/speed_all.py --shapes FLO-effnet --seed-batch 3   # 1 seed vs 3 batched
    python benchmarks/speed_all.py --shapes FLO-effnet --compile        # eager vs torch.compile
    python benchmarks/speed_all.py --methods clswgan tlcoupling --shapes FLO-effnet \
        --set method.hidden_g=1024 method.hidden_d=1024 method.batch_size=64   # other sizes

Each measurement runs in a fresh process (``--one``), so that peak memory is that
measurement's: on CPU the process's peak RSS (``ru_maxrss``) and its growth over the RSS
before the model was built, on CUDA ``torch.cuda.max_memory_allocated``.
``--precisions fp32 bf16`` measures each method in each precision (the method's
``precision``: bf16/fp16 autocast, see unseen.methods.precision), one fresh process each, back
to back, and adds a table of the ratios; the flow reference then times unseen's flow in that
precision against FrEIA in fp32. ``--seed-batch K`` also measures each method that can train
seeds as one batched model (``--batch-seeds``, unseen.methods.seedbatch) with K seeds stacked,
and adds a table of one seed's step, K seeds' batched step and K sequential steps (K x one).
``--compile`` also measures each method with every network wrapped in ``torch.compile``
(default mode, inductor): the first step's time (which includes compiling) and the steady
step time, and adds a table of the one-off compile cost, the speed-up per step and the number
of epochs after which compiling pays for itself (end to end, compile time included).

Networks have the sizes of the method's shipped per-dataset config (``configs/<method>/
<DATASET>.yaml``, the paper sizes where the paper gives them), or other sizes and settings
with ``--set method.KEY=VALUE`` (as ``unseen run``'s; a key applies to each measured method
whose config has it: widths, batch size, critic steps...), the features are random
(speed does not depend on their values), the shapes are the real ones (n_train = trainval
images, 2048-d ResNet-101 features, semantic dim, seen classes):
AWA2 23527 x 2048 (85-d), CUB 7057 x 2048 (312-d attributes or 1024-d sentences),
SUN 10320 x 2048 (102-d), FLO 5631 x 2048 (1024-d); FLO-effnet is FLO with the 1280-d
EfficientNet-Lite0 features this project's FLO runs use.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import time
from pathlib import Path

from timing import (
    flops_of,
    in_fresh_process,
    interleaved_ms,
    machine,
    matmul_flops,
    nll_step,
    peak_memory_mib,
    random_seen_data,
    rss_mib,
    sgemm_gflops,
    speed_args,
    speed_parser,
    sync,
)
from unseen.methods.precision import PRECISIONS

SHAPES = {  # n_train, feature dim, semantic dim, seen classes, unseen classes, config dataset
    "AWA2": (23527, 2048, 85, 40, 10, "AWA2"),
    "CUB-312": (7057, 2048, 312, 150, 50, "CUB"),
    "CUB-1024": (7057, 2048, 1024, 150, 50, "CUB"),
    "SUN": (10320, 2048, 102, 645, 72, "SUN"),
    "FLO": (5631, 2048, 1024, 82, 20, "FLO"),
    "FLO-effnet": (5631, 1280, 1024, 82, 20, "FLO"),
}


def fake_data(n: int, shape: str, device, seed: int = 0):
    _, d, da, n_seen, n_unseen, _ = SHAPES[shape]
    return random_seen_data(n, d, da, n_seen, n_unseen, seed=seed)


def _peak(device, base_rss: float) -> dict:
    peak = peak_memory_mib(device)
    if device.type == "cuda":
        return {"peak_mib": peak, "memory": "cuda"}
    return {"peak_mib": peak, "peak_growth_mib": peak - base_rss, "memory": "rss"}


def build_method(method: str, shape: str, device, precision: str = "fp32", sets=()):
    """``(method instance, batch size, config source)`` for ``method`` at ``shape``: the
    shipped config of the shape's dataset, with the ``method.KEY=VALUE`` of ``sets`` that the
    method has."""
    from unseen.config import parse_set, resolve_run_config
    from unseen.methods.base import config_from_dict, get_method

    cls = get_method(method)
    defaults = cls.config_class().__dict__
    mine = {k: v for k, v in parse_set(sets).get("method", {}).items() if k in defaults}
    run = resolve_run_config(method, SHAPES[shape][5], overrides={"method": mine} if mine else None)
    source = "; ".join(run.sources[1:]) or "method defaults"  # the shipped file, --set
    cfg = config_from_dict(cls.config_class, {**defaults, **run.method_params}, "method")
    return cls(cfg, device=device, seed=0, precision=precision), int(cfg.batch_size), source


def measure_method(
    method: str,
    shape: str,
    steps: int,
    device_name: str,
    precision: str = "fp32",
    sets=(),
    seeds: int = 1,
    compiled: bool = False,
) -> dict:
    """One method at one shape and precision: step time, epoch estimate, FLOPs, memory.
    ``sets``: ``method.KEY=VALUE`` over the shipped config, those of keys the method has.
    ``seeds`` > 1: that many seeds trained as one stacked model (one step = one step of each).
    ``compiled``: every network wrapped in ``torch.compile`` after the set-up."""
    import torch

    device = torch.device(device_name)
    n_train = SHAPES[shape][0]
    base_rss = rss_mib()
    m, batch, source = build_method(method, shape, device, precision, sets)
    if seeds > 1:
        m.seed_batch_ = list(range(seeds))
    # Build + the method's one-off set-up (_prepare: e.g. f-CLSWGAN's seen-class classifier)
    # on one minibatch; the set-up is not part of the per-epoch cost measured below.
    m.fit(fake_data(batch, shape, device), epochs=0)
    if compiled:  # the optimizers keep the same parameters (the wrapper shares them)
        for key in list(m.nets_):
            m.nets_[key] = torch.compile(m.nets_[key])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    ctx = m.amp.autocast  # as fit() runs an epoch
    one = m._to_device(fake_data(batch, shape, device, seed=1))
    many = m._to_device(fake_data(batch * steps, shape, device, seed=2))
    # GSMFlow with boundary mining: training g (Eq. 2) and mining (Eq. 4) run once per fit,
    # before the first epoch, and the mined copies double each epoch. Time that set-up on
    # `many` apart from the epoch steps (extrapolated to n_train), so the step is the step.
    setup_s, rows_factor, warm = None, 1, one
    if "g" in (m.nets_ or {}) and hasattr(m, "boundary_samples"):
        sync(device)
        t = time.perf_counter()
        with ctx():
            m._train_contrastive(many)
            m.boundary_samples(many)  # cached for `many` (one entry): warm up on `many` too
        sync(device)
        setup_s = (time.perf_counter() - t) * n_train / len(many.labels)
        rows_factor, warm = 2, many
    sync(device)
    t = time.perf_counter()
    if compiled:  # the warm-up compiles; a second one catches recompiles (other batch shapes)
        with ctx():
            m._train_epoch(warm, 0)
        sync(device)
        warmup_s = time.perf_counter() - t
        with ctx():
            m._train_epoch(warm, 0)
        flops = float("nan")  # not counted: a dispatch mode around compiled code breaks graphs
    else:
        # warm-up outside any dispatch mode: a kernel compiled lazily (CE-GZSL's comparator,
        # unseen.models.pairwise) is never compiled under one, so it compiles here, not in
        # the timed steps; then one more step counts the FLOPs
        with ctx():
            m._train_epoch(warm, 0)
        sync(device)
        warmup_s = time.perf_counter() - t
        with ctx(), matmul_flops() as counter:
            m._train_epoch(warm, 0)
        flops = counter.get_total_flops() / math.ceil(rows_factor * len(warm.labels) / batch)
    sync(device)
    t = time.perf_counter()
    with ctx():
        m._train_epoch(many, 1)  # `steps` (x rows_factor) minibatch steps
    sync(device)
    step_s = (time.perf_counter() - t) / (steps * rows_factor)
    out = {
        "method": method,
        "shape": shape,
        "precision": precision,
        "seeds": seeds,
        "compiled": compiled,
        "warmup_s": warmup_s,
        "config": source,
        "batch": batch,
        "steps_timed": steps * rows_factor,
        "step_ms": 1000 * step_s,
        "epoch_s_extrapolated": step_s * math.ceil(rows_factor * n_train / batch),
        "setup_s_extrapolated": setup_s,
        "samples_per_s": batch / step_s,
        "gflop_per_step": flops / 1e9,
        "gflops": flops / step_s / 1e9,
        **_peak(device, base_rss),
    }
    out["sgemm_gflops"] = sgemm_gflops(device)
    out["flow"] = None
    if "flow" in (m.nets_ or {}):
        try:
            out["flow"] = _flow_reference(m, shape, device)
        except Exception as exc:  # the method's own numbers stand without the reference
            out["flow_error"] = f"{type(exc).__name__}: {exc}"
    return out


def _freia_twin(flow, d_cond: int):
    """The FrEIA network of the same architecture as unseen's flow ``flow``."""
    import FrEIA.framework as Ff
    import FrEIA.modules as Fm
    from torch import nn

    from unseen.models.flows import ConditionalCouplingFlow, CouplingFlow

    if isinstance(flow, CouplingFlow):  # IZF: permutation + one-sided affine coupling
        layer = next(m for m in flow.layers if hasattr(m, "hidden"))
        h, slope, clamp = layer.hidden, layer.slope, layer.clamp

        class TwoNets(nn.Module):  # separate s and t nets, as IZF (Eq. 2)
            def __init__(self, d_in: int, d_out: int) -> None:  # d_out = 2 x half
                super().__init__()
                half = d_out // 2
                self.s = nn.Sequential(nn.Linear(d_in, h), nn.LeakyReLU(slope), nn.Linear(h, half))
                self.t = nn.Sequential(nn.Linear(d_in, h), nn.LeakyReLU(slope), nn.Linear(h, half))

            def forward(self, x):
                import torch

                return torch.cat([self.s(x), self.t(x)], 1)

        inn = Ff.SequenceINN(flow.features)
        n_blocks = sum(1 for m in flow.layers if hasattr(m, "hidden"))
        for _ in range(n_blocks):
            inn.append(Fm.PermuteRandom, seed=0)
            inn.append(
                Fm.AffineCouplingOneSided,
                subnet_constructor=TwoNets,
                clamp=clamp or 1e9,
                clamp_activation="ATAN",
            )
        return inn, "PermuteRandom + AffineCouplingOneSided (separate s, t nets)"
    if isinstance(flow, ConditionalCouplingFlow):  # GSMFlow: GLOW coupling, conditioned
        from gsmflow_speed import build_freia

        block, permute = flow.blocks[0], bool(getattr(flow, "perms", None))
        inn = build_freia(
            flow.features, d_cond, block.hidden, flow.n_blocks, block.clamp, block.slope, permute
        )
        return inn, "GLOWCouplingBlock (conditional)"
    raise TypeError(f"no FrEIA twin for {type(flow).__name__}")


def _flow_reference(m, shape: str, device, reps: int = 5) -> dict | None:
    """Likelihood step (forward + log-det + backward + Adam) of the method's flow vs FrEIA."""
    import torch

    flow = m.nets_["flow"]
    d_cond = getattr(flow, "cond_features", 0) or 0
    batch = int(m.config.batch_size)
    x = torch.rand(batch, flow.features, device=device)
    cond = torch.rand(batch, d_cond, device=device) if d_cond else None
    out: dict = {}
    try:
        twin, what = _freia_twin(flow, d_cond)
    except ImportError:
        twin, what = None, "FrEIA not installed (pip install FrEIA)"
    except TypeError as exc:
        twin, what = None, str(exc)
    out["freia_architecture"] = what
    nets = {"unseen": flow}
    if twin is not None:
        nets["freia"] = twin.to(device)
    steps, flops = {}, {}
    for name, net in nets.items():
        if name == "freia":  # the reference: always fp32

            def fwd(x, c=None, net=net):
                return net(x, c=[c]) if c is not None else net(x)

        else:

            def fwd(x, c=None, net=net):  # in the method's precision
                with m.amp.autocast():
                    return net(x, c) if c is not None else net(x)

        steps[name] = nll_step(fwd, net.parameters(), x, cond)
        flops[name] = flops_of(steps[name])  # also the warm-up step
    # Interleaved repeats, best of each: on a shared machine both see the same load.
    times = interleaved_ms(steps, device, reps)
    for name, net in nets.items():
        best = min(times[name])
        out[name] = {
            "step_ms": best,
            "gflop_per_step": flops[name] / 1e9,
            "gflops": flops[name] / best / 1e6,
            "params_m": sum(p.numel() for p in net.parameters()) / 1e6,
        }
    return out


def table(rows: list[dict]) -> str:
    batched = [r for r in rows if r.get("seeds", 1) > 1 and not r.get("compiled")]
    compiled = [r for r in rows if r.get("compiled") and r.get("seeds", 1) == 1]
    rows = [r for r in rows if r.get("seeds", 1) == 1 and not r.get("compiled")]
    head = (
        "| method | shape | precision | batch | step ms | epoch s (extrap.) | samples/s | "
        "GFLOP/step | GFLOP/s | sgemm GFLOP/s | % of sgemm | peak MiB |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        if "error" in r:
            where = f"{r['method']} | {r['shape']} | {r.get('precision', 'fp32')}"
            lines.append(f"| {where} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['method']} | {r['shape']} | {r.get('precision', 'fp32')} | {r['batch']} | "
            f"{r['step_ms']:.0f} | "
            f"{r['epoch_s_extrapolated']:.1f} | {r['samples_per_s']:.0f} | "
            f"{r['gflop_per_step']:.2f} | {r['gflops']:.1f} | {r['sgemm_gflops']:.1f} | "
            f"{100 * r['gflops'] / r['sgemm_gflops']:.0f}% | {r['peak_mib']:.0f} |"
        )
    lines += _precision_table(rows)
    lines += _seed_table(rows, batched)
    lines += _compile_table(rows, compiled)
    setups = [r for r in rows if r.get("setup_s_extrapolated")]
    if setups:
        lines += [
            "",
            "One-off set-up per fit, before the first epoch (EXTRAPOLATED to n_train from the "
            "timed rows; GSMFlow: training g for `contrastive_epochs` + boundary mining; the "
            "epochs above include the mined copies):",
            "",
        ]
        lines += [
            f"- {r['method']} {r['shape']} {r.get('precision', 'fp32')}: "
            f"{r['setup_s_extrapolated']:.0f} s"
            for r in setups
        ]
    for r in rows:
        if r.get("flow_error"):
            lines.append(f"\n{r['method']} {r['shape']}: flow reference failed: {r['flow_error']}")
    flows = [r for r in rows if r.get("flow")]
    if flows:
        lines += [
            "",
            "Flow likelihood step (forward + log-det + backward + Adam, batch = the method's):",
            "",
            "| method | shape | unseen precision | unseen ms | unseen GFLOP/s | FrEIA (fp32) ms | "
            "FrEIA GFLOP/s | FrEIA / unseen time | FrEIA network |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in flows:
            f = r["flow"]
            u, fr = f["unseen"], f.get("freia")
            ratio = f"{fr['step_ms'] / u['step_ms']:.2f}" if fr else "-"
            fcells = f"{fr['step_ms']:.0f} | {fr['gflops']:.1f}" if fr else "- | -"
            lines.append(
                f"| {r['method']} | {r['shape']} | {r.get('precision', 'fp32')} | "
                f"{u['step_ms']:.0f} | {u['gflops']:.1f} | "
                f"{fcells} | {ratio} | {f['freia_architecture']} |"
            )
    return "\n".join(lines)


def _precision_table(rows: list[dict]) -> list[str]:
    """Step time per precision side by side and fp32's time over each other's (> 1: faster),
    when more than one precision was measured; on a shared machine also that ratio corrected
    for load: times the ratio of the sgemm rates measured right after each step in the same
    processes (a process that got less of the CPU shows a lower rate)."""
    runs: dict[tuple[str, str], dict[str, dict]] = {}
    for r in rows:
        if "error" not in r:
            runs.setdefault((r["method"], r["shape"]), {})[r.get("precision", "fp32")] = r
    precisions = [p for p in ("fp32", "bf16", "fp16") if any(p in v for v in runs.values())]
    if len(precisions) < 2:
        return []
    others = [p for p in precisions if p != "fp32"]
    head = "| method | shape | " + " | ".join(f"{p} step ms" for p in precisions)
    head += "".join(f" | fp32 / {p} | load-corrected" for p in others) + " |"
    lines = ["", "Step time per precision:", "", head, "|" + "---|" * (head.count("|") - 1)]
    for (method, shape), t in runs.items():
        cells = [f"{t[p]['step_ms']:.0f}" if p in t else "-" for p in precisions]
        for p in others:
            if "fp32" in t and p in t:
                ratio = t["fp32"]["step_ms"] / t[p]["step_ms"]
                load = t["fp32"]["sgemm_gflops"] / t[p]["sgemm_gflops"]
                cells += [f"{ratio:.2f}", f"{ratio * load:.2f}"]
            else:
                cells += ["-", "-"]
        lines.append(f"| {method} | {shape} | " + " | ".join(cells) + " |")
    return lines


def _paired(base: list[dict], rows: list[dict]):
    """``(key, row, base row)`` for each of ``rows``, matched by method, shape and precision;
    the base row is None when it is missing or either measurement failed."""
    index = {(r["method"], r["shape"], r.get("precision", "fp32")): r for r in base}
    for r in rows:
        key = (r["method"], r["shape"], r.get("precision", "fp32"))
        b = index.get(key)
        yield key, r, (b if b is not None and "error" not in b and "error" not in r else None)


def _seed_table(single: list[dict], batched: list[dict]) -> list[str]:
    """One seed's step beside K seeds trained as one batched model and K sequential steps."""
    if not batched:
        return []
    lines = [
        "",
        "Seeds as one batched model (`--batch-seeds`): one step of every seed:",
        "",
        "| method | shape | precision | seeds | 1 seed ms | batched ms | sequential ms (seeds x 1) "
        "| batched / sequential | batched / 1 seed |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r, one in _paired(single, batched):
        if one is None:
            lines.append(f"| {' | '.join(key)} | {r['seeds']} | - | {r.get('error', '-')} |")
            continue
        k, t1, tk = r["seeds"], one["step_ms"], r["step_ms"]
        lines.append(
            f"| {' | '.join(key)} | {k} | {t1:.0f} | {tk:.0f} | {k * t1:.0f} | "
            f"{tk / (k * t1):.2f} | {tk / t1:.2f} |"
        )
    return lines


def _compile_table(eager: list[dict], compiled: list[dict]) -> list[str]:
    """Eager vs ``torch.compile``: the one-off cost, the step speed-up, and the epochs after
    which compiling pays for itself (compile cost / time saved per epoch)."""
    if not compiled:
        return []
    lines = [
        "",
        "torch.compile (every network, default mode): compile cost = the compiled warm-up "
        "step's time minus the eager warm-up step's:",
        "",
        "| method | shape | precision | eager step ms | compiled step ms | eager / compiled | "
        "load-corrected | compile cost s | epochs to pay back |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, r, e in _paired(eager, compiled):
        if e is None:
            lines.append(f"| {' | '.join(key)} | - | - | - | - | {r.get('error', '-')} | - |")
            continue
        cost = r["warmup_s"] - e["warmup_s"]
        ratio = e["step_ms"] / r["step_ms"]
        # times the ratio of the sgemm rates measured right after each step (a process that got
        # less of a shared CPU shows a lower rate), as the precision table
        load = e["sgemm_gflops"] / r["sgemm_gflops"]
        # epochs to pay back, on the load-corrected speed-up
        saved = e["epoch_s_extrapolated"] * (1.0 - 1.0 / (ratio * load))
        payback = f"{cost / saved:.1f}" if saved > 0 and cost > 0 else "never"
        lines.append(
            f"| {' | '.join(key)} | {e['step_ms']:.0f} | {r['step_ms']:.0f} | "
            f"{ratio:.2f} | {ratio * load:.2f} | {cost:.0f} | {payback} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = speed_parser(__doc__)
    p.add_argument("--methods", nargs="+", help="default: every registered method")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    p.add_argument("--steps", type=int, default=2, help="minibatch steps timed per measurement")
    p.add_argument("--set", nargs="+", default=[], metavar="method.KEY=VALUE", help="see above")
    p.add_argument(
        "--precisions", nargs="+", default=["fp32"], choices=PRECISIONS, help="fp16: CUDA only"
    )
    p.add_argument("--amp", action="store_true", help="the same as --precisions bf16")
    p.add_argument(
        "--seed-batch",
        type=int,
        default=1,
        metavar="K",
        help="also measure K seeds as one batched model (methods that support it)",
    )
    p.add_argument(
        "--compile", action="store_true", help="also measure every method under torch.compile"
    )
    p.add_argument("--out", help="also write the rows as JSON and the table as Markdown here")
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the rows of an existing --out JSON, replacing only those measured now",
    )
    p.add_argument("--one", nargs=2, metavar=("METHOD", "SHAPE"), help=argparse.SUPPRESS)
    args = speed_args(p, argv)
    if args.amp:
        args.precisions = ["bf16"]
    if args.one:
        r = measure_method(
            *args.one,
            args.steps,
            args.device,
            args.precisions[0],
            args.set,
            args.seed_batch,
            args.compile,
        )
        print(json.dumps(r), flush=True)  # the last line: what in_fresh_process returns
        return 0
    from unseen.methods import available_methods, get_method

    methods = args.methods or list(available_methods())
    keys = {f"method.{k}" for m in methods for k in get_method(m).config_class().__dict__}
    bad = [s for s in args.set if "=" not in s or s.split("=", 1)[0] not in keys]
    if bad:
        p.error(f"--set {' '.join(bad)}: not method.KEY=VALUE of a measured method's config")
    print(f"machine: {machine()}")
    print(
        f"{args.steps} timed step(s) per measurement after one warm-up step; epoch times are "
        "EXTRAPOLATED (step time x steps per epoch); each measurement in a fresh process"
        + (f"; --set {' '.join(args.set)}." if args.set else "."),
        flush=True,
    )
    rows = []
    for method in methods:
        variants = [(1, False)]  # (seeds, compiled)
        if args.seed_batch > 1 and get_method(method).supports_seed_batch:
            variants.append((args.seed_batch, False))
        if args.compile:
            variants.append((1, True))
        for shape, precision, (seeds, compiled) in itertools.product(
            args.shapes, args.precisions, variants
        ):
            cmd = ["--one", method, shape, "--steps", str(args.steps), "--device", args.device]
            cmd += ["--seed-batch", str(seeds), *(["--compile"] if compiled else [])]
            cmd += ["--threads", str(args.threads), *(["--set", *args.set] if args.set else [])]
            t = time.time()
            try:
                r = in_fresh_process([*cmd, "--precisions", precision])
            except RuntimeError as exc:
                error = str(exc)[:200]
                rows.append(
                    dict(
                        method=method,
                        shape=shape,
                        precision=precision,
                        seeds=seeds,
                        compiled=compiled,
                        error=error,
                    )
                )
                print(f"{method} {shape} {precision}: FAILED: {exc}", flush=True)
                continue
            rows.append(r)
            print(
                f"{method:11} {shape:10} {precision} x{seeds}{' compiled' * compiled} "
                f"step {r['step_ms']:8.0f} ms  "
                f"epoch ~{r['epoch_s_extrapolated']:7.1f} s"
                f"  {r['gflops']:6.1f} GFLOP/s (sgemm {r['sgemm_gflops']:.1f})"
                f"  peak {r['peak_mib']:.0f} MiB  [{time.time() - t:.0f} s]",
                flush=True,
            )
    if args.append and args.out and Path(args.out).with_suffix(".json").exists():
        old = json.loads(Path(args.out).with_suffix(".json").read_text())["rows"]

        def key(r: dict) -> tuple:
            return (
                r["method"],
                r["shape"],
                r.get("precision", "fp32"),
                r.get("seeds", 1),
                r.get("compiled", False),
            )

        fresh = {key(r) for r in rows}
        rows = [r for r in old if key(r) not in fresh] + rows
        order = {m: i for i, m in enumerate(dict.fromkeys(r["method"] for r in old))}
        rows.sort(
            key=lambda r: (order.get(r["method"], len(order)), list(SHAPES).index(r["shape"]))
        )
    text = table(rows)
    print()
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        meta = {"machine": machine(), "steps": args.steps, "device": args.device, "set": args.set}
        out.with_suffix(".json").write_text(json.dumps({**meta, "rows": rows}, indent=2))
        out.with_suffix(".md").write_text(f"Machine: {meta['machine']}\n\n{text}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
