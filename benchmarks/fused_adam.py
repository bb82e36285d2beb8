"""Fused vs default Adam in real training steps, in one process, alternating.

Builds each named method at the FLO shape (this project's EfficientNet-Lite0 features, the
shipped FLO config), then times epochs of 3 training steps with the method's own optimizers
(``unseen.methods.base.make_adam``: torch's fused kernel for networks of 1M parameters or
more) and with default-kernel Adam copies over the same parameters, in turns, 3 rounds, in
fp32 and bf16. Prints the per-step times and the median ratio.

    OMP_NUM_THREADS=1 python benchmarks/fused_adam.py clswgan tlcoupling
"""

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed_all import build_method, fake_data

shape = "FLO-effnet"
for method in sys.argv[1:]:
    for prec in ("fp32", "bf16"):
        m, b, _ = build_method(method, shape, torch.device("cpu"), prec)
        m.fit(fake_data(b, shape, "cpu"), epochs=0)
        fused = m.optimizers_
        plain = {
            k: torch.optim.Adam(
                o.param_groups[0]["params"],
                lr=o.param_groups[0]["lr"],
                betas=o.param_groups[0]["betas"],
            )
            for k, o in fused.items()
        }
        many = m._to_device(fake_data(b * 3, shape, "cpu", seed=2))
        with m.amp.autocast():
            m._train_epoch(many, 0)
        t = {"fused": [], "plain": []}
        for _ in range(3):
            for name, opts in (("plain", plain), ("fused", fused)):
                m.optimizers_ = opts
                s = time.perf_counter()
                with m.amp.autocast():
                    m._train_epoch(many, 1)
                t[name].append((time.perf_counter() - s) / 3 * 1000)
        print(
            method,
            prec,
            {k: [round(x) for x in v] for k, v in t.items()},
            "median plain/fused %.2f" % (sorted(t["plain"])[1] / sorted(t["fused"])[1]),
            flush=True,
        )
