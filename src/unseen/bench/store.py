"""The results store: one SQLite row per (config, seed), written as each run finishes.

SQLite because it is in the standard library, survives a killed process (every insert is its
own transaction; WAL journal) and can be queried by anyone (``sqlite3 results.sqlite``)::

    SELECT label, seed, h, h_cal FROM runs WHERE dataset = 'FLO' ORDER BY label, seed;

Table ``runs``: ``key`` (hash of the resolved config without seeds, see
:func:`unseen.bench.grid.config_key`), ``seed``, ``label``, ``method``, ``dataset``,
``variant``, ``config`` (JSON), ``code_version``, ``source`` (``bench`` = run by the harness,
``import`` = a finished ``unseen run`` folder recognised by its config), ``run_dir``,
``device``, ``finished`` (ISO time the result was written), ``fit_seconds``,
``total_seconds``, the metrics ``t1 s u h s_cal u_cal h_cal ausuc gamma`` and JSON columns
``validation`` (the validation choice), ``history`` (per-epoch training losses) and
``per_task`` (GMN's per-task counts: T1, U, S, H of the per-task models, or NULL).
Table ``validations``: one row per config key of the validation-only jobs of a study grid
(``validate_only: true``), with the whole selection (choice, every validation record, the
generator health) as JSON. Table ``trials``: the sweeps' validation trials (see
:mod:`unseen.bench.sweep`).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

__all__ = ["METRICS", "Store"]

METRICS = ("t1", "s", "u", "h", "s_cal", "u_cal", "h_cal", "ausuc", "gamma")

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS runs (
    key TEXT NOT NULL,
    seed INTEGER NOT NULL,
    label TEXT, method TEXT, dataset TEXT, variant TEXT,
    config TEXT, code_version TEXT, source TEXT, run_dir TEXT, device TEXT,
    finished TEXT, fit_seconds REAL, total_seconds REAL,
    {", ".join(f"{m} REAL" for m in METRICS)},
    validation TEXT, history TEXT, per_task TEXT,
    PRIMARY KEY (key, seed)
);
CREATE TABLE IF NOT EXISTS validations (
    key TEXT PRIMARY KEY,
    label TEXT, method TEXT, dataset TEXT, variant TEXT,
    config TEXT, code_version TEXT, source TEXT, run_dir TEXT, finished TEXT,
    selection TEXT
);
CREATE TABLE IF NOT EXISTS trials (
    sweep TEXT NOT NULL,
    number INTEGER NOT NULL,
    sampler TEXT, params TEXT, value REAL, validation TEXT, state TEXT, finished TEXT,
    PRIMARY KEY (sweep, number)
);
"""


class Store:
    """A SQLite results store (created on first use)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        columns = {r["name"] for r in self._db.execute("PRAGMA table_info(runs)")}
        if "per_task" not in columns:  # a store written before the column existed
            self._db.execute("ALTER TABLE runs ADD COLUMN per_task TEXT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ runs
    def seeds_done(self, key: str) -> set[int]:
        rows = self._db.execute("SELECT seed FROM runs WHERE key = ?", (key,)).fetchall()
        return {r["seed"] for r in rows}

    def add_results(self, key: str, results: dict[str, Any], **provenance: str) -> int:
        """Insert one row per seed of a runner ``results.json``; returns the number added.
        Rows already present (same key and seed) are replaced, so a re-import is harmless.
        ``provenance``: ``label``, ``variant``, ``source``, ``run_dir``, ``code_version`` and
        ``finished`` of the rows."""
        choice = (results.get("validation") or {}).get("choice", {})
        common = {
            **_provenance(key, results, provenance),
            "device": results.get("device"),
            "validation": json.dumps(choice, sort_keys=True),
        }
        with self._db:
            for seed, entry in results["seeds"].items():
                r = entry["result"]
                self._insert(
                    "runs",
                    {
                        **common,
                        "seed": int(seed),
                        "fit_seconds": entry.get("fit_seconds"),
                        "total_seconds": entry.get("total_seconds"),
                        **{m: r.get(m) for m in METRICS},
                        "history": json.dumps(entry.get("history")),
                        "per_task": _json_or_none((r.get("extra") or {}).get("per_task")),
                    },
                )
        return len(results["seeds"])

    def _insert(self, table: str, values: dict[str, Any]) -> None:
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} ({cols}) VALUES ({marks})", tuple(values.values())
        )

    def rows(self, keys: list[str] | None = None) -> list[dict[str, Any]]:
        """All run rows (or those of ``keys``), as dicts, in a stable order."""
        sql = "SELECT * FROM runs"
        args: tuple[Any, ...] = ()
        if keys is not None:
            if not keys:
                return []
            sql += f" WHERE key IN ({', '.join('?' for _ in keys)})"
            args = tuple(keys)
        sql += " ORDER BY dataset, label, seed"
        return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # ----------------------------------------------------------- validations
    def validation_done(self, key: str) -> bool:
        found = self._db.execute("SELECT 1 FROM validations WHERE key = ?", (key,)).fetchone()
        return found is not None

    def add_validation(self, key: str, results: dict[str, Any], **provenance: str) -> None:
        """Store the validation selection of a ``validate_only`` run (``results``: the
        runner's return value, or a folder's ``{"validation", "config", "dataset"}``), with
        the same ``provenance`` as :meth:`add_results`."""
        values = {
            **_provenance(key, results, provenance),
            "selection": json.dumps(results["validation"], sort_keys=True),
        }
        with self._db:
            self._insert("validations", values)

    def validations(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        """The stored validation-only rows of ``keys``, by key, the selection parsed."""
        if not keys:
            return {}
        sql = f"SELECT * FROM validations WHERE key IN ({', '.join('?' for _ in keys)})"
        out = {}
        for r in self._db.execute(sql, tuple(keys)).fetchall():
            d = dict(r)
            d["selection"] = json.loads(d["selection"])
            out[d["key"]] = d
        return out

    # ---------------------------------------------------------------- trials
    def add_trial(
        self,
        sweep: str,
        number: int,
        *,
        sampler: str,
        params: dict[str, Any],
        value: float | None,
        validation: dict[str, Any] | None,
        state: str,
        finished: str,
    ) -> None:
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO trials VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sweep,
                    number,
                    sampler,
                    json.dumps(params, sort_keys=True),
                    value,
                    json.dumps(validation, sort_keys=True),
                    state,
                    finished,
                ),
            )

    def trials(self, sweep: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT * FROM trials WHERE sweep = ? ORDER BY number", (sweep,)
        ).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["params"] = json.loads(d["params"])
            d["validation"] = json.loads(d["validation"]) if d["validation"] else None
            out.append(d)
        return out


def _provenance(key: str, results: dict[str, Any], provenance: dict[str, str]) -> dict[str, Any]:
    """The columns every stored row has: its key, method, dataset and config, and where it
    came from (label, variant, source, run_dir, code_version, finished)."""
    config = results.get("config") or {}
    return {
        "key": key,
        "method": results.get("method") or config.get("method"),
        "dataset": results.get("dataset"),
        "config": json.dumps(results.get("config"), sort_keys=True),
        "variant": "",
        **provenance,
    }


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)
