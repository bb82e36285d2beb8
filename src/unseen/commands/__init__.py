"""Sub-commands of ``unseen`` that live outside :mod:`unseen.cli`.

Each module listed in :data:`MODULES` defines ``register(sub)`` which adds its parser(s) to
the ``argparse`` sub-parsers object and sets ``func=<handler>`` as a default; the handler takes
the parsed ``argparse.Namespace`` and returns an exit code. Errors the user can fix are raised
as :class:`unseen.errors.UnseenError` and printed by :func:`unseen.cli.main` (exit 2).

Adding a command is one new module here plus one line in :data:`MODULES`.
"""

from __future__ import annotations

import argparse
import importlib

__all__ = ["MODULES", "register_all"]

# Module names under unseen.commands, one per command group.
MODULES: list[str] = [
    "bench",
    "sweep",
    "predict",
    "plot",
    "compare",
    "data",
    "extract",
    "diagnose",
    "classifier_check",
]


def register_all(sub: argparse._SubParsersAction) -> None:
    """Let every command module add its parsers to ``sub``."""
    for name in MODULES:
        importlib.import_module(f"unseen.commands.{name}").register(sub)
