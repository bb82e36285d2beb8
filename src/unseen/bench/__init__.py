"""The benchmark and reproduction harness behind ``unseen bench`` and ``unseen sweep``.

* :mod:`unseen.bench.grid`: grid files -> runner jobs; config keys (same config + seed =
  same run).
* :mod:`unseen.bench.store`: the SQLite results store.
* :mod:`unseen.bench.executors`: local process pool or Ray.
* :mod:`unseen.bench.harness`: skip / import / run, storing each result as it finishes.
* :mod:`unseen.bench.report`: Markdown + CSV + figures beside the papers' numbers.
* :mod:`unseen.bench.study`: a paper's study table or figure in its own layout
  (``configs/studies/``).
* :mod:`unseen.bench.runners`: the named row runners (``protocol``, GMN's ``real-only``).
* :mod:`unseen.bench.sweep`: validation-only hyper-parameter search (grid, Optuna TPE).
"""
