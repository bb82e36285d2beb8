"""f-CLSWGAN training speed: step time, achieved GFLOP/s and peak memory at benchmark shapes.

Prints, for each shape, the time of one generator iteration (``critic_steps`` critic updates +
one generator update), the epoch time it implies, the FLOPs (benchmarks/timing.py's counter),
the achieved GFLOP/s beside this machine's fp32 sgemm rate, and peak memory; and the gradient
penalty computed with autograd's double backward vs the closed-form critic input gradient.

    python benchmarks/clswgan_speed.py                      # FLO and AWA2 shapes, paper sizes
    python benchmarks/clswgan_speed.py --hidden 1024 --device cuda

Shapes are the real benchmarks' (images x feature dim, semantic dim); the features are random
(speed does not depend on their values).
"""

from __future__ import annotations

import argparse

import torch

from timing import flops_of, peak_memory_mib, random_seen_data, sgemm_gflops, timed
from unseen.methods.clswgan import CLSWGAN

SHAPES = {  # n_train, feature dim (ours / xlsa17), semantic dim, seen classes
    "FLO": (5631, 1280, 1024, 82),
    "FLO-res101": (5631, 2048, 1024, 82),
    "CUB": (7057, 2048, 312, 150),
    "AWA2": (23527, 2048, 85, 40),
}


def time_iteration(shape: str, hidden: int, batch: int, device: torch.device, iters: int) -> dict:
    n, d, da, n_seen = SHAPES[shape]
    m = CLSWGAN(
        hidden_g=hidden, hidden_d=hidden, batch_size=batch, pretrain_epochs=0, device=device
    )
    m.fit(random_seen_data(batch * iters, d, da, n_seen), epochs=0)
    on_dev = m._to_device(random_seen_data(batch * iters, d, da, n_seen))
    one = m._to_device(random_seen_data(batch, d, da, n_seen))
    m._train_epoch(one, 0)  # warm-up
    flops = flops_of(lambda: m._train_epoch(one, 0))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    dt = timed(lambda: m._train_epoch(on_dev, 0), device)[0] / iters  # `iters` iterations
    return {
        "shape": shape,
        "iter_ms": 1000 * dt,
        "epoch_s": dt * -(-n // batch),
        "gflop_per_iter": flops / 1e9,
        "gflops": flops / dt / 1e9,
        "peak_mib": peak_memory_mib(device),
    }


def gp_comparison(hidden: int, batch: int, device: torch.device, reps: int = 10) -> tuple:
    from unseen.losses.adversarial import gradient_penalty
    from unseen.models.mlp import ConditionalCritic

    d, da = 2048, 312
    critic = ConditionalCritic(d, da, (hidden,)).to(device)
    real, fake = torch.rand(batch, d, device=device), torch.rand(batch, d, device=device)
    a = torch.rand(batch, da, device=device)
    out = []
    for closed in (False, True):

        def step(closed=closed):
            gp = gradient_penalty(
                lambda v: critic(v, a),
                real,
                fake,
                input_gradient=(lambda v: critic.input_gradient(v, a)) if closed else None,
            )
            critic.zero_grad()
            gp.backward()

        out.append(1000 * sum(timed(step, device, reps, warmup=1)) / reps)
    return tuple(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=["FLO", "AWA2"], choices=sorted(SHAPES))
    p.add_argument("--hidden", type=int, nargs="+", default=[4096, 1024])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    print(f"fp32 sgemm 2048x2048 @ 2048x256: {sgemm_gflops(device, reps=30):.0f} GFLOP/s")
    for hidden in args.hidden:
        auto, closed = gp_comparison(hidden, args.batch, device)
        print(
            f"gradient penalty + backward (hidden {hidden}, batch {args.batch}, 2048-d): "
            f"autograd double backward {auto:.1f} ms, closed form {closed:.1f} ms"
        )
    print(
        f"{'shape':11} {'hidden':>6} {'iter ms':>8} {'epoch s':>8} {'GFLOP/it':>9} "
        f"{'GFLOP/s':>8} {'peak MiB':>9}"
    )
    for hidden in args.hidden:
        for shape in args.shapes:
            r = time_iteration(shape, hidden, args.batch, device, args.iters)
            print(
                f"{shape:11} {hidden:6d} {r['iter_ms']:8.0f} {r['epoch_s']:8.1f} "
                f"{r['gflop_per_iter']:9.1f} {r['gflops']:8.0f} {r['peak_mib']:9.0f}"
            )


if __name__ == "__main__":
    main()
