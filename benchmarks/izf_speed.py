"""IZF's hand-written coupling flow vs zuko's NICE/RealNVP coupling flow, at d = 2048.

One NLL training step (forward, log-det, backward, Adam) of unseen's ``CouplingFlow`` (5
blocks, separate s and t nets of hidden 1024, the paper's) and of zuko's NICE with one joint
s/t net of hidden 1024 and 2048 (the smallest zuko net containing the paper's), timed in
``--repeats`` interleaved rounds (min / median), with the FLOPs of ``torch.utils.flop_counter``'s
formulas (``benchmarks/timing.py``) and the achieved GFLOP/s.

    .venv/bin/python benchmarks/izf_speed.py                 # hand-written vs zuko flow
    .venv/bin/python benchmarks/izf_speed.py --device cuda

IZF's whole training step at AWA2 shape (batch 256, L_Flow + L_C + L_iMMD, Adam) beside this
machine's fp32 sgemm rate (target: >= 80% of it), its epoch time and peak memory are
speed_all.py's: ``python benchmarks/speed_all.py --methods izf --shapes AWA2``.
"""

from __future__ import annotations

import statistics

import torch

from timing import flops_of, interleaved_ms, nll_step, speed_args, speed_parser


def main() -> None:
    p = speed_parser(__doc__)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    args = speed_args(p)
    device = torch.device(args.device)
    try:
        import zuko
    except ImportError:
        print("zuko is not installed (pip install zuko); nothing to compare")
        return
    from torch import nn

    from unseen.models.flows import CouplingFlow

    d = 2048
    x = torch.rand(args.batch, d, device=device)
    ours = CouplingFlow(d, 5).to(device)
    flows = {"unseen CouplingFlow (s, t separate, hidden 1024)": (ours, ours)}
    for h in (1024, 2048):
        zk = zuko.flows.NICE(
            d, transforms=5, randmask=True, hidden_features=[h], activation=nn.LeakyReLU
        ).to(device)
        flows[f"zuko NICE (joint s/t net, hidden {h})"] = (
            zk,
            lambda v, zk=zk: zk().transform.call_and_ladj(v),
        )
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {device}")
    print(f"flow NLL step, d={d}, batch {args.batch}, 5 blocks (forward + backward + Adam),")
    print(f"{args.repeats} interleaved rounds (min / median):")
    steps = {
        name: nll_step(fwd, net.parameters(), x, lr=5e-4) for name, (net, fwd) in flows.items()
    }
    fl = {name: flops_of(step) for name, step in steps.items()}  # also the warm-up
    for name, ts in interleaved_ms(steps, device, args.repeats).items():
        lo, med = min(ts), statistics.median(ts)
        print(
            f"  {name:48s} {lo:6.0f} / {med:6.0f} ms  {fl[name] / 1e9:5.1f} GFLOP  "
            f"{fl[name] / lo / 1e6:6.1f} / {fl[name] / med / 1e6:6.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
