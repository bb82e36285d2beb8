"""Shipped configs (``<method>/<DATASET>.yaml``, ``bench/`` grids and sweeps): package data of
``unseen.configs`` in an installed unseen (see setup.py); no code."""
