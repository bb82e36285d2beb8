"""f-CLSWGAN's gradient penalty: autograd's double backward vs the critic's closed-form input
gradient (the penalty + its backward, per critic width).

    python benchmarks/clswgan_speed.py                      # hidden 4096 and 1024, batch 64
    python benchmarks/clswgan_speed.py --hidden 1024 --device cuda

f-CLSWGAN's training step (generator iteration), epoch time, GFLOP/s beside the sgemm rate
and peak memory at the benchmark shapes are speed_all.py's, e.g. at these sizes:

    python benchmarks/speed_all.py --methods clswgan --shapes FLO-effnet AWA2 \\
        --set method.hidden_g=1024 method.hidden_d=1024 method.batch_size=64
"""

from __future__ import annotations

import torch

from timing import speed_args, speed_parser, timed


def gp_comparison(hidden: int, batch: int, device: torch.device, reps: int = 10) -> tuple:
    from unseen.losses.adversarial import gradient_penalty
    from unseen.models.mlp import ConditionalCritic

    d, da = 2048, 312
    critic = ConditionalCritic(d, da, (hidden,)).to(device)
    real, fake = torch.rand(batch, d, device=device), torch.rand(batch, d, device=device)
    a = torch.rand(batch, da, device=device)
    out = []
    for closed in (False, True):
        grad = (lambda v: critic.input_gradient(v, a)) if closed else None

        def step(grad=grad):
            gp = gradient_penalty(lambda v: critic(v, a), real, fake, input_gradient=grad)
            critic.zero_grad()
            gp.backward()

        out.append(1000 * sum(timed(step, device, reps, warmup=1)) / reps)
    return tuple(out)


def main() -> None:
    p = speed_parser(__doc__)
    p.add_argument("--hidden", type=int, nargs="+", default=[4096, 1024])
    p.add_argument("--batch", type=int, default=64)
    args = speed_args(p)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}")
    for hidden in args.hidden:
        auto, closed = gp_comparison(hidden, args.batch, device)
        print(
            f"gradient penalty + backward (hidden {hidden}, batch {args.batch}, 2048-d): "
            f"autograd double backward {auto:.1f} ms, closed form {closed:.1f} ms"
        )


if __name__ == "__main__":
    main()
