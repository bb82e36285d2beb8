"""Why is IZF-Softmax seen-biased? Spread of generated vs real features, per seen class.

Loads a trained IZF model (e.g. ``runs/izf-flo-softmax/seed_0/model.pt``), generates features
for the SEEN classes of the task it was trained on (training data only: no test data is
read) and compares them with the real seen training features of the same classes:

* within-class spread: mean squared distance of a sample to its class mean, real vs
  generated (Eq. 6 fixes c and draws only z^f, so the d_c semantic dimensions of the latent
  carry no within-class variation in generated samples);
* class-mean error: distance between the generated and the real class mean, relative to the
  real between-class distance;
* the same with c drawn from the prior N(c(y), I) of Eq. 5 instead of fixed (a diagnostic,
  not the paper's generation).

    .venv/bin/python benchmarks/izf_diagnose.py runs/izf-flo-softmax/seed_0/model.pt \\
        --dataset FLO --data-root ../shared/data/xlsa17 --set data.features=effnet_lite0.mat
"""

from __future__ import annotations

import argparse

import torch

from unseen.config import parse_set, resolve_run_config
from unseen.data.task import ZSLTask
from unseen.methods import GenerativeMethod
from unseen.methods.izf import seen_class_means
from unseen.runner import load_dataset


def spread(x: torch.Tensor, y: torch.Tensor, means: torch.Tensor) -> float:
    return float((x - means[y]).pow(2).sum(1).mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("model")
    p.add_argument("--dataset", required=True)
    p.add_argument("--data-root", default="")
    p.add_argument("--set", action="append", default=[])
    p.add_argument("--n", type=int, default=200, help="generated samples per class")
    args = p.parse_args()
    cfg = resolve_run_config(
        "izf", args.dataset, data_root=args.data_root, overrides=parse_set(args.set)
    )
    task = ZSLTask(load_dataset(cfg.data), feature_transform=cfg.data.feature_transform)
    data = task.train
    m = GenerativeMethod.load(args.model)
    means = seen_class_means(data)
    seen = data.seen_classes
    real = spread(data.features, data.labels, means)
    sm = means[seen]
    between = float(torch.cdist(sm, sm).pow(2).sum() / (len(sm) * (len(sm) - 1)))
    torch.manual_seed(0)
    x, y = m.synthesize(seen, data.semantics, args.n)
    gen_means = torch.zeros_like(means).index_add_(0, y, x) / args.n
    err = float((gen_means[seen] - means[seen]).pow(2).sum(1).mean())
    # c drawn from the prior N(s * c(y), I) instead of fixed (diagnostic only)
    s = m.config.semantic_scale
    c = data.semantics[seen].repeat_interleave(args.n, 0) * s
    c = c + torch.randn_like(c)
    z = torch.randn(len(c), data.feature_dim - data.semantic_dim)
    with torch.no_grad():
        x2 = m.generate(c, z)
    print(f"model {args.model} (epochs {m.epoch_}); {len(seen)} seen classes, {args.n} per class")
    print(f"squared distances (sum over {data.feature_dim} dims), mean over samples/classes:")
    print(f"  real within-class spread            {real:8.3f}")
    print(f"  generated within-class spread (Eq.6){spread(x, y, gen_means):8.3f}")
    print(f"  generated, c ~ N(c(y), I)           {spread(x2, y, means):8.3f} (to real means)")
    print(f"  real between-class-mean             {between:8.3f}")
    print(f"  generated-vs-real class-mean error  {err:8.3f}")
    proto = m.prototypes(data.semantics[seen]).detach()
    print(f"  prototype-vs-real class-mean error  {float((proto - sm).pow(2).sum(1).mean()):8.3f}")


if __name__ == "__main__":
    main()
