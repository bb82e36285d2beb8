"""TL-Coupling training speed: time per generator iteration and per epoch at benchmark shapes.

One generator iteration = ``critic_steps`` updates of D1, D2 and D3 + one joint G/I update
(Eq. 14). Compared with f-CLSWGAN at the same sizes (the S1 ablation costs about that much).

    python benchmarks/coupling_speed.py                         # FLO shape, several sizes
    python benchmarks/coupling_speed.py --hidden 4096 1024 --batch 64 --iters 5

Features are random (speed does not depend on their values).
"""

from __future__ import annotations

import argparse

import torch

from timing import random_seen_data, timed
from unseen.methods.clswgan import CLSWGAN
from unseen.methods.coupling import TLCoupling

SHAPES = {
    "FLO": (5631, 1280, 1024, 82),
    "CUB": (7057, 2048, 312, 150),
    "AWA2": (23527, 2048, 85, 40),
}


def time_iteration(method, shape: str, iters: int) -> float:
    """Seconds per generator iteration (critic steps included), after one warm-up."""
    _, d, da, ns = SHAPES[shape]
    data = random_seen_data(method.config.batch_size * iters, d, da, ns)
    method.dims_ = method.dims_from(data)
    method._build(method.dims_)
    method._train_epoch(random_seen_data(1, d, da, ns), 0)  # warm-up
    return timed(lambda: method._train_epoch(data, 0))[0] / iters  # `iters` iterations


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", default="FLO", choices=sorted(SHAPES))
    p.add_argument("--hidden", type=int, nargs="+", default=[4096, 1024, 512])
    p.add_argument("--batch", type=int, nargs="+", default=[64])
    p.add_argument("--iters", type=int, default=4)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n, d, da, _ = SHAPES[args.shape]
    print(f"{args.shape}: n={n} d={d} d_a={da}; torch threads {torch.get_num_threads()}")
    for hidden in args.hidden:
        for batch in args.batch:
            steps = -(-n // batch)
            sizes = dict(hidden_g=hidden, hidden_d=hidden, batch_size=batch)
            row = [f"hidden {hidden:5d} batch {batch:4d}:"]
            for label, m in (
                ("clswgan", CLSWGAN(**sizes)),
                (
                    "tlcoupling",
                    TLCoupling(**sizes, hidden_i=(hidden,), hidden_d2=hidden, hidden_d3=hidden),
                ),
            ):
                s = time_iteration(m, args.shape, args.iters)
                row.append(f"{label} {1000 * s:7.1f} ms/iter {s * steps:6.1f} s/epoch")
            print("  ".join(row), flush=True)


if __name__ == "__main__":
    main()
