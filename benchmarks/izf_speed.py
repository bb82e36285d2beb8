"""IZF training-step speed at AWA2 shape, beside this machine's fp32 sgemm rate.

Prints, for one IZF training step (forward NLL on 256 seen features, prototypes of the
batch's classes for L_C, 256 generated unseen features for L_iMMD, backward, Adam):
the median step time, the step's floating-point operations (counted by
``torch.utils.flop_counter``'s formulas in ``benchmarks/timing.py``: matrix products of
forward and backward), the achieved GFLOP/s, the peak memory, and the GFLOP/s of one fp32
2048x2048 @ 2048x256 product on the same device. Target: the IZF step at >= 80% of the sgemm rate.

Data: AWA2's shape (23527 x 2048 features in [0, 1], 85-d unit-norm semantics, 40 seen and
10 unseen classes), random values: speed does not depend on them.

    .venv/bin/python benchmarks/izf_speed.py                 # IZF step vs sgemm
    .venv/bin/python benchmarks/izf_speed.py --compare-zuko  # + hand-written vs zuko flow
    .venv/bin/python benchmarks/izf_speed.py --device cuda
"""

from __future__ import annotations

import argparse
import platform
import statistics

import torch

from timing import flops_of, interleaved_ms, peak_memory_mib, random_seen_data, sgemm_gflops, timed
from unseen.data.task import SeenTrainData
from unseen.methods.izf import IZF, seen_class_means


def izf_step_fn(method: IZF, data: SeenTrainData, batch: int):
    means = seen_class_means(data)
    opt = method.optimizers_["flow"]
    n = len(data.features)

    def step() -> None:
        idx = torch.randint(n, (batch,), device=data.features.device)
        parts = method.losses(
            data.features[idx], data.labels[idx], data.semantics, means, data.unseen_classes
        )
        opt.zero_grad(set_to_none=True)
        parts["total"].backward()
        opt.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    p.add_argument("--compare-zuko", action="store_true")
    args = p.parse_args()
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"{platform.processor() or platform.machine()}"
    )
    torch.manual_seed(0)
    method = IZF(batch_size=args.batch, clamp=2.0, device=device)
    data = method._to_device(random_seen_data(23527, 2048, 85, 40, 10, unit=True))
    base_rss = peak_memory_mib(device)  # the data alone
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    method.dims_ = method.dims_from(data)
    method._build(method.dims_)
    method.nets_.to(device)
    step = izf_step_fn(method, data, args.batch)
    flops = flops_of(step)
    # Interleaved: an sgemm measurement right after every step, so that both see the same
    # load on a shared machine; the ratio uses the medians.
    times, rates = [], []
    for _ in range(args.repeats):
        times += timed(step, device, 1, warmup=0 if times else 2)
        rates.append(sgemm_gflops(device, reps=5))
    rate_sgemm = statistics.median(rates)
    t = statistics.median(times)
    rate = flops / t / 1e9
    print(
        f"IZF step (5 blocks, d=2048, d_c=85, batch {args.batch}, L_Flow + L_C + L_iMMD, "
        f"Adam): median {t * 1e3:.0f} ms (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})"
    )
    print(f"  {flops / 1e9:.1f} GFLOP per step -> {rate:.1f} GFLOP/s achieved")
    mem = peak_memory_mib(device)
    what = "peak CUDA memory" if device.type == "cuda" else "peak process RSS"
    print(f"  {what}: {mem:.0f} MiB (data alone: {base_rss:.0f} MiB before the model)")
    print(f"fp32 sgemm 2048x2048 @ 2048x256: {rate_sgemm:.1f} GFLOP/s")
    print(f"IZF step / sgemm: {100 * rate / rate_sgemm:.0f}% (target >= 80%)")
    steps = -(-len(data.features) // args.batch)
    print(f"-> one AWA2 epoch ({steps} steps): about {steps * t:.0f} s")
    if args.compare_zuko:
        compare_zuko(device, args.batch, args.repeats)


def compare_zuko(device: torch.device, batch: int, repeats: int) -> None:
    """NLL step of our CouplingFlow vs zuko's NICE/RealNVP coupling flow at d = 2048."""
    try:
        import zuko
    except ImportError:
        print("zuko is not installed (pip install zuko); skipping the comparison")
        return
    from torch import nn

    from unseen.models.flows import CouplingFlow

    d = 2048
    x = torch.rand(batch, d, device=device)

    def nll_step(forward, params):
        opt = torch.optim.Adam(params, 5e-4)

        def step():
            z, ladj = forward(x)
            loss = (0.5 * z.pow(2).sum(1) - ladj).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

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
    print(f"\nflow NLL step, d={d}, batch {batch}, 5 blocks (forward + backward + Adam),")
    print(f"{repeats} interleaved rounds (min / median):")
    steps = {name: nll_step(fwd, module.parameters()) for name, (module, fwd) in flows.items()}
    fl = {name: flops_of(step) for name, step in steps.items()}  # also the warm-up
    for name, ts in interleaved_ms(steps, device, repeats).items():
        lo, med = min(ts), statistics.median(ts)
        print(
            f"  {name:48s} {lo:6.0f} / {med:6.0f} ms  {fl[name] / 1e9:5.1f} GFLOP  "
            f"{fl[name] / lo / 1e6:6.1f} / {fl[name] / med / 1e6:6.1f} GFLOP/s"
        )


if __name__ == "__main__":
    main()
