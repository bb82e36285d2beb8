"""Speed of one GMN training iteration at the paper's sizes, against f-CLSWGAN's.

One iteration = ``critic_steps`` critic updates + one generator update (with the GM loss for
GMN), on CUB-shaped random data (2048-d features, 312-d semantics, 150 seen classes, batch
256). Each variant runs in its own process, so peak memory (resident set growth over the
process's state after set-up; CUDA: ``max_memory_allocated``) is per variant.

    python benchmarks/gmn_speed.py                       # CPU, paper sizes
    python benchmarks/gmn_speed.py --device cuda --repeats 50

Variants: ``clswgan`` (f-CLSWGAN: concat generator, conditional critic, softmax L_CLS, same
hidden sizes), ``cwgan`` (GMN's networks, no auxiliary loss), ``cwgan+cls``, ``cwgan+gm``
(GMN). The GM share is measured twice: the time of the GM loss forward + backward alone on
a generator batch, and the difference ``cwgan+gm - cwgan``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys

import torch

from timing import (
    in_fresh_process,
    interleaved_ms,
    peak_memory_mib,
    random_seen_data,
    rss_mib,
    speed_args,
    speed_parser,
    timed,
)

VARIANTS = ("clswgan", "cwgan", "cwgan+cls", "cwgan+gm")


def _method(variant, args, device):
    from unseen.methods import CLSWGAN, GMN

    common = dict(epochs=1, batch_size=args.batch, critic_steps=args.critic_steps)
    if variant == "clswgan":
        return CLSWGAN(
            device=device,
            **common,
            noise_dim=args.semantic_dim,
            hidden_g=args.hidden_g,
            hidden_d=args.hidden_d,
            pretrain_epochs=1,
        )
    aux = {"cwgan": "none", "cwgan+cls": "cls", "cwgan+gm": "gm"}[variant]
    return GMN(
        device=device,
        **common,
        critic="conditional",
        aux=aux,
        noise_dim=args.noise_dim,
        hidden_g=(args.hidden_g,),
        hidden_d=(args.hidden_d,),
        pretrain_epochs=1,
    )


def _setup(variant: str, args):
    torch.manual_seed(0)
    m = _method(variant, args, args.device)
    # CUB-shaped random data of `batch` features (N = batch: one epoch = one iteration)
    data = random_seen_data(
        args.batch, args.feature_dim, args.semantic_dim, args.n_seen, args.n_unseen, unit=True
    )
    m.fit(data, epochs=0)  # build + the one-off set-up (_prepare)
    data = m._to_device(data)
    for _ in range(args.warmup):
        m._train_epoch(data, 0)
    return m, data


def _iterations(m, data):
    """One training iteration a call, the k-th as epoch k (GMN re-initialises its probe by the
    step count)."""
    count = itertools.count(1)
    return lambda: m._train_epoch(data, next(count))


def memory(variant: str, args) -> dict:
    """Peak memory of one iteration (run in a fresh process per variant): resident-set growth
    over the state after set-up (no warm-up, so optimizer state allocation is included)."""
    args.warmup = 0
    m, data = _setup(variant, args)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    rss0 = rss_mib()
    m._train_epoch(data, 1)
    peak = peak_memory_mib(args.device) - (0 if args.device.startswith("cuda") else rss0)
    return {"variant": variant, "peak_mib": peak}


def timings(args) -> dict:
    """Iterations of all variants interleaved in one process (fair under a shared CPU);
    minimum and median over ``repeats``."""
    setups = {v: _setup(v, args) for v in args.variants}
    steps = {v: _iterations(m, data) for v, (m, data) in setups.items()}
    times = interleaved_ms(steps, args.device, args.repeats)
    out = {v: _min_median([t / 1e3 for t in ms]) for v, ms in times.items()}
    if "cwgan+gm" in setups:
        m, data = setups["cwgan+gm"]
        out["gm_alone"] = _gm_alone(m, data, args)
    return out


def _gm_alone(m, data, args) -> float:
    """Median time of the GM loss forward + backward (into a generator batch)."""
    from unseen.losses.gradient_matching import gradient_matching_loss

    G, probe = m.nets_["generator"], m.nets_["probe"]
    idx = torch.arange(args.batch, device=args.device)
    x, y = data.features[idx], data.labels[idx]
    sem = data.semantics[data.seen_classes]
    fake = G(data.semantics[y], torch.randn(args.batch, G.noise_dim, device=args.device))
    fake = fake.detach().requires_grad_(True)

    def gm_step() -> None:
        gradient_matching_loss(
            x, y, fake, y, probe.weight.detach(), probe.bias.detach(), sem
        ).backward()

    return _min_median(timed(gm_step, args.device, args.repeats))


def _min_median(seconds: list[float]) -> dict[str, float]:
    return {"min_s": min(seconds), "median_s": sorted(seconds)[len(seconds) // 2]}


def main() -> None:
    p = speed_parser(__doc__)
    p.add_argument("--feature-dim", type=int, default=2048)
    p.add_argument("--semantic-dim", type=int, default=312)
    p.add_argument("--n-seen", type=int, default=150)
    p.add_argument("--n-unseen", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--noise-dim", type=int, default=512)
    p.add_argument("--hidden-g", type=int, default=2048)
    p.add_argument("--hidden-d", type=int, default=4096)
    p.add_argument("--critic-steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--no-memory", action="store_true", help="skip the per-variant processes")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = speed_args(p)
    if args.one:
        print(json.dumps(memory(args.one, args)))
        return
    mem = {}
    if not args.no_memory:
        mine = [a for a in sys.argv[1:] if a not in {"--variants", *args.variants}]
        for v in args.variants:
            mem[v] = in_fresh_process(["--one", v, *mine])["peak_mib"]
    t = timings(args)
    print(
        f"One iteration ({args.critic_steps} critic steps + 1 generator step), batch "
        f"{args.batch}, d={args.feature_dim}, d_a={args.semantic_dim}, {args.n_seen} seen "
        f"classes, G hidden {args.hidden_g}, D hidden {args.hidden_d}, noise {args.noise_dim}, "
        f"device {args.device}, {torch.get_num_threads()} threads, {args.repeats} repeats "
        "interleaved:"
    )
    print(f"{'variant':12} {'min s':>8} {'median s':>9} {'peak MiB':>9}")
    for v in args.variants:
        print(
            f"{v:12} {t[v]['min_s']:8.3f} {t[v]['median_s']:9.3f} {mem.get(v, float('nan')):9.0f}"
        )
    if "cwgan+gm" in t:
        gm, it = t["gm_alone"]["min_s"], t["cwgan+gm"]["min_s"]
        print(
            f"\nGM loss alone (forward + backward, one generator batch): {gm:.4f} s "
            f"= {100 * gm / it:.1f}% of a GMN iteration (min times)"
        )
        if "cwgan" in t:
            extra = it - t["cwgan"]["min_s"]
            print(f"GMN - cWGAN (same networks): {extra:+.3f} s ({100 * extra / it:+.1f}% of GMN)")
        if "clswgan" in t:
            ratio = it / t["clswgan"]["min_s"] - 1
            print(
                f"GMN vs f-CLSWGAN iteration of the same sizes: {100 * ratio:+.1f}% "
                "(target: at most +50%)"
            )
    print(json.dumps({"timings": t, "peak_mib": mem}))


if __name__ == "__main__":
    main()
