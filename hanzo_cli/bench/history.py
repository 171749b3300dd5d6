"""Benchmark runs kept as one JSON file each under ``<data dir>/bench/``, and how a model's numbers
moved between them (with the hanzo, runtime and model versions of each run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hanzo_cli.bench.runner import best_rate
from hanzo_cli.constants import data_dir
from hanzo_cli.fsutil import atomic_write


def bench_dir() -> Path:
    return data_dir() / "bench"


def save_run(record: dict[str, Any]) -> Path:
    """Write the run's record atomically; its path."""
    path = bench_dir() / f"{record['id']}.json"
    atomic_write(path, json.dumps(record, indent=1).encode())
    return path


def load_runs() -> list[dict[str, Any]]:
    """Every kept run, oldest first; unreadable files are skipped (a run is never half-written)."""
    runs = []
    for path in sorted(bench_dir().glob("*.json")) if bench_dir().is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and isinstance(record.get("rows"), list):
            runs.append(record)
    return sorted(runs, key=lambda r: str(r.get("created", "")))


def history(runs: list[dict[str, Any]], models: set[str] | None = None) -> list[dict[str, Any]]:
    """One entry per (run, model, runtime) row, oldest first, with what changed since the previous
    entry of the same model and runtime (hanzo, runtime or model version) and the throughput change."""
    entries: list[dict[str, Any]] = []
    previous: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for row in run["rows"]:
            if models is not None and row.get("model") not in models and row.get("ref") not in models:
                continue
            key = (str(row.get("model")), str(row.get("runtime")))
            entry = {
                "run": run.get("id"),
                "created": run.get("created"),
                "model": row.get("model"),
                "runtime": row.get("runtime"),
                "status": row.get("status"),
                "hanzo_version": run.get("hanzo_version"),
                "runtime_version": row.get("runtime_version"),
                "digest": row.get("digest"),
                "best_rate": best_rate(row),
                "load_s": row.get("load_s"),
                "peak_rss_mb": row.get("peak_rss_mb"),
                "recall_at_1": (row.get("quality") or {}).get("recall_at_1"),
                "changes": [],
                "rate_change": None,
            }
            before = previous.get(key)
            if before is not None:
                for field, label in (
                    ("hanzo_version", "hanzo"),
                    ("runtime_version", "runtime"),
                    ("digest", "model"),
                ):
                    if before[field] != entry[field]:
                        entry["changes"].append(f"{label} {_short(before[field])} -> {_short(entry[field])}")
                if before["best_rate"] and entry["best_rate"]:
                    entry["rate_change"] = entry["best_rate"] / before["best_rate"] - 1
            previous[key] = entry
            entries.append(entry)
    return entries


def _short(value: Any) -> str:
    text = str(value) if value is not None else "?"
    return text.removeprefix("sha256:")[:12] if text.startswith("sha256") else text
