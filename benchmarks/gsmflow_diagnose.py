"""How close are GSMFlow's generated features to the real ones? Training data only.

For a finished run (``seed_<s>/model.pt`` + ``run.yaml``), generates features of the SEEN
classes (whose real training features the model was fitted on; no test data is read) and
compares them with the real seen training features:

* within-class spread: mean squared distance to the class mean, generated / real;
* class-mean error: |generated mean - real mean|, relative to the mean distance between
  real class means (1.0 = as far off as another class);
* nearest-real-mean accuracy: generated samples assigned to the nearest REAL class mean
  (does the generator keep the classes apart?);
* the prototype f^-1(0; a^g) against the real class mean (what L_proto trains).

    .venv/bin/python benchmarks/gsmflow_diagnose.py runs/gsmflow-flo-fast-full \\
        runs/gsmflow-flo-fast-no-em
"""

from __future__ import annotations

import argparse

import torch

from unseen.methods.izf import seen_class_means
from unseen.plot.runs import RunFolder, rebuild


def diagnose(path: str, seed: int | None, n: int) -> dict[str, float]:
    rb = rebuild(RunFolder.open(path), seed)
    m, data = rb.method, rb.task.train
    seen = data.seen_classes
    means = seen_class_means(data)[seen]
    x, y = data.features, data.labels
    col = torch.full((data.n_classes,), -1, dtype=torch.long)
    col[seen] = torch.arange(len(seen))
    real_spread = float((x - means[col[y]]).pow(2).sum(1).mean())
    torch.manual_seed(0)
    with torch.no_grad():
        fake = m.sample(data.semantics[seen], n)
        fy = torch.arange(len(seen)).repeat_interleave(n)
        fmeans = torch.stack([fake[fy == k].mean(0) for k in range(len(seen))])
        fake_spread = float((fake - fmeans[fy]).pow(2).sum(1).mean())
        between = torch.cdist(means, means)
        between = float(between.sum() / (len(seen) * (len(seen) - 1)))
        mean_err = float((fmeans - means).norm(dim=1).mean()) / between
        nearest = torch.cdist(fake, means).argmin(1)
        acc = float((nearest == fy).float().mean())
        out = {
            "spread_ratio": fake_spread / real_spread,
            "class_mean_error": mean_err,
            "nearest_real_mean_acc": acc,
            "real_spread": real_spread,
            "between": between,
        }
        if m.name == "gsmflow" and m.switches["conditioning"] == "coupling":
            cond = m.condition(data.semantics[seen])
            protos = m.nets_["flow"].inverse(torch.zeros(len(seen), x.shape[1]), cond)
            out["prototype_error"] = float((protos - means).norm(dim=1).mean()) / between
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--per-class", type=int, default=100)
    args = p.parse_args()
    for path in args.runs:
        d = diagnose(path, args.seed, args.per_class)
        print(f"{path}: " + ", ".join(f"{k} {v:.3f}" for k, v in d.items()), flush=True)


if __name__ == "__main__":
    main()
