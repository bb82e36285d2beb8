"""GSMFlow's t-SNE views (Fig. 8 and Fig. 9) from finished ``unseen run`` folders.

``fig8 RUN``: the seen training features of up to ``--max-classes`` classes (dots) and their
boundary samples x+ (crosses), mined by the run's trained contrastive network g (Eq. 4) --
one joint t-SNE embedding. RUN must be a GSMFlow run with boundary mining (``full`` or
``no-vp``).

``fig9 RUN [RUN ...]``: panel (a) the real unseen TEST features of up to ``--max-classes``
unseen classes; then one panel per run with its synthesized features of the same classes
(crosses) embedded jointly with the real ones (light dots), e.g. f-CLSWGAN (a conditional
GAN), GSMFlow w/o EM and GSMFlow. The figure only looks at test features; nothing is chosen
from it.

    .venv/bin/python benchmarks/gsmflow_tsne.py fig8 runs/gsmflow-flo-fast-full \\
        --out runs/gsmflow-fig8-flo.png
    .venv/bin/python benchmarks/gsmflow_tsne.py fig9 runs/clswgan-flo-fast \\
        runs/gsmflow-flo-fast-no-em runs/gsmflow-flo-fast-full --out runs/gsmflow-fig9-flo.png

t-SNE: scikit-learn's, after PCA to 50 dimensions (``unseen.plot.figures.tsne_embedding``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from unseen.models.gsmflow import mine_boundary_samples
from unseen.plot.figures import tsne_embedding, tsne_figure
from unseen.plot.runs import RunFolder, rebuild, sample_points
from unseen.plot.style import TOL_MUTED, features_word


def fig8(args) -> None:
    rb = rebuild(RunFolder.open(args.runs[0]), args.seed, data_root=args.data_root)
    method = rb.method
    if "g" not in method.nets_:
        raise SystemExit(
            f"{args.runs[0]}: variant {method.config.variant} mines no boundary samples"
        )
    c = method.config
    x, y = rb.task.train.features, rb.task.train.labels
    rng = np.random.default_rng(rb.seed)
    seen = rb.task.seen_classes.numpy()
    classes = np.sort(rng.choice(seen, size=min(args.max_classes, len(seen)), replace=False))
    yn = y.numpy()
    pick = np.concatenate(
        [
            rng.choice(
                np.nonzero(yn == k)[0],
                size=min(args.per_class, int((yn == k).sum())),
                replace=False,
            )
            for k in classes
        ]
    )
    # Mining moves every sample on its own (Eq. 4), so mining the shown samples only gives
    # the same x+ as mining the whole training set.
    col = torch.full((rb.task.train.n_classes,), -1, dtype=torch.long)
    col[rb.task.seen_classes] = torch.arange(len(seen))
    trace: list[float] = []
    x_plus = mine_boundary_samples(
        method.nets_["g"],
        x[pick],
        col[y[pick]],
        rb.task.train.semantics[rb.task.seen_classes],
        c.mining_steps,
        c.mining_lr,
        c.entropy_weight,
        c.batch_size,
        trace=trace,
    )
    real, fake = x[pick].numpy(), x_plus.numpy()
    y = yn
    emb = tsne_embedding(np.concatenate([real, fake]), seed=rb.seed)
    names = [f"class {int(c) + 1}" for c in classes]
    title = (
        f"Fig. 8: {rb.run.dataset} seen training features ({features_word(rb.run.synthetic)})"
        " and boundary samples, "
        f"{len(classes)} classes; entropy of g {trace[0]:.2f} -> {trace[-1]:.2f} over "
        f"{len(trace) - 1} steps"
    )
    fig = tsne_figure(
        emb[: len(pick)],
        y[pick],
        emb[len(pick) :],
        y[pick],
        list(classes),
        names,
        title,
        real_what="real seen",
        fake_what="boundary x+",
    )
    fig.savefig(args.out, dpi=110, bbox_inches="tight")
    shift = np.linalg.norm(fake - real, axis=1)
    print(
        f"figure: {args.out}; entropy trace {[round(t, 3) for t in trace]}; "
        f"|x+ - x| mean {shift.mean():.3f} (|x| mean {np.linalg.norm(real, axis=1).mean():.3f})"
    )


def fig9(args) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    base = None
    for path in args.runs:
        rb = rebuild(RunFolder.open(path), args.seed, data_root=args.data_root)
        pts = sample_points(rb, "unseen", args.max_classes, args.per_class)
        if base is None:
            base = pts
        elif not np.array_equal(base["classes"], pts["classes"]):
            raise SystemExit("the runs' seeds pick different classes; use runs of one dataset")
        panels.append((rb.run.label(), pts))
    classes = base["classes"]
    n = len(panels) + 1
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4.4), squeeze=False)
    ax = axes[0][0]
    emb = tsne_embedding(base["real"], seed=args.seed)
    for k, c in enumerate(classes):
        m = base["real_labels"] == c
        ax.scatter(emb[m, 0], emb[m, 1], s=8, color=TOL_MUTED[k % len(TOL_MUTED)])
    ax.set_title("(a) real unseen test features", fontsize=10)
    for i, (label, pts) in enumerate(panels, start=1):
        ax = axes[0][i]
        emb = tsne_embedding(np.concatenate([pts["real"], pts["fake"]]), seed=args.seed)
        er, ef = emb[: len(pts["real"])], emb[len(pts["real"]) :]
        for k, c in enumerate(classes):
            colour = TOL_MUTED[k % len(TOL_MUTED)]
            m = pts["real_labels"] == c
            ax.scatter(er[m, 0], er[m, 1], s=6, color=colour, alpha=0.2)
            m = pts["fake_labels"] == c
            ax.scatter(ef[m, 0], ef[m, 1], s=10, color=colour, marker="x", linewidths=0.8)
        ax.set_title(f"({chr(97 + i)}) synthesized: {label}", fontsize=9)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        f"Fig. 9: unseen classes of {RunFolder.open(args.runs[0]).dataset} "
        f"({features_word(RunFolder.open(args.runs[0]).synthetic)}; crosses = synthesized, "
        "light dots = real)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"figure: {args.out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("figure", choices=["fig8", "fig9"])
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--max-classes", type=int, default=8)
    p.add_argument("--per-class", type=int, default=60)
    args = p.parse_args()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.set_grad_enabled(True)
    {"fig8": fig8, "fig9": fig9}[args.figure](args)


if __name__ == "__main__":
    main()
