"""t-SNE time of `unseen plot tsne`: scikit-learn vs openTSNE (when installed).

Points are Gaussian blobs of FLO's feature size (1280-d, 20 classes), reduced by PCA to 50
dimensions first, as :func:`unseen.plot.figures.tsne_embedding` does; perplexity 30.
The result recorded in that module's docstring (2 shared CPU cores, one thread):
1000 / 2000 / 4000 points: scikit-learn 4.0 / 11.6 / 25.7 s, openTSNE 4.9 / 8.1 / 19.4 s.

    OMP_NUM_THREADS=1 python benchmarks/tsne_speed.py [--points 1000 2000 4000]
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from timing import timed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, nargs="+", default=[1000, 2000, 4000])
    args = ap.parse_args()
    try:
        import openTSNE
    except ImportError:
        openTSNE = None
        print("openTSNE not installed: scikit-learn only (pip install openTSNE to compare)")
    rng = np.random.default_rng(0)
    for n in args.points:
        centres = rng.normal(size=(20, 1280))
        x = (centres[rng.integers(0, 20, n)] + rng.normal(size=(n, 1280))).astype(np.float32)
        z = PCA(50, random_state=0).fit_transform(x)
        sk = timed(lambda z=z: TSNE(2, perplexity=30, init="pca", random_state=0).fit_transform(z))
        line = f"{n} points: scikit-learn {sk[0]:.1f} s"
        if openTSNE is not None:
            ot = timed(lambda z=z: openTSNE.TSNE(perplexity=30, random_state=0, n_jobs=1).fit(z))
            line += f", openTSNE {ot[0]:.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
