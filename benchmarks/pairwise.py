"""CE-GZSL's comparator kernel: the plain broadcast against the fused kernels.

    OMP_NUM_THREADS=1 python benchmarks/pairwise.py                 # the FLO-fast shape
    OMP_NUM_THREADS=1 python benchmarks/pairwise.py --classes 150   # CUB's seen classes
    python benchmarks/pairwise.py --device cuda

Times one forward + backward of ``s[i, c] = sum_j w_j leaky_relu(u_ij + v_cj)`` (the comparator
F scoring every embedding of a batch against every seen class) three ways: autograd through the
materialised broadcast (``pair_mlp_scores_reference``), the compiled kernel and the row-chunked
eager kernel of :mod:`unseen.models.pairwise`. Prints the median of ``--reps`` timed calls after
one warm-up call (which compiles) and the largest difference from the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from unseen.models import pairwise


def _time(fn, u, v, w, g, reps: int, device) -> tuple[float, torch.Tensor]:
    out = None
    times = []
    for i in range(reps + 1):
        for t in (u, v, w):
            t.grad = None
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = fn(u, v, w, 0.2)
        (out * g).sum().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:  # the first call compiles (or warms up)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out.detach()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=2048, help="rows n (official CE-GZSL batch)")
    p.add_argument("--classes", type=int, default=82, help="seen classes K (FLO: 82)")
    p.add_argument("--hidden", type=int, default=2048, help="comparator width (official nhF)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    gen = torch.Generator(device=device).manual_seed(0)

    def make(*shape):
        return torch.randn(*shape, generator=gen, device=device).requires_grad_()

    u, v, w = make(args.batch, args.hidden), make(args.classes, args.hidden), make(args.hidden)
    g = torch.randn(args.batch, args.classes, generator=gen, device=device)
    print(
        f"n={args.batch} K={args.classes} hidden={args.hidden} on {device} "
        f"({torch.get_num_threads()} torch thread(s), torch {torch.__version__})"
    )
    ref_s, ref = _time(pairwise.pair_mlp_scores_reference, u, v, w, g, args.reps, device)
    print("| kernel | forward + backward s | speed-up | max abs diff |\n|---|---|---|---|")
    print(f"| broadcast (autograd) | {ref_s:.3f} | 1.0 | 0 |")
    for backend in ("compile", "eager"):
        pairwise.BACKEND, pairwise._compiled = backend, {}
        sec, out = _time(pairwise.pair_mlp_scores, u, v, w, g, args.reps, device)
        diff = (out - ref).abs().max().item()
        name = "compiled" if backend == "compile" else "row-chunked eager"
        print(f"| {name} | {sec:.3f} | {ref_s / sec:.1f} | {diff:.2g} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
