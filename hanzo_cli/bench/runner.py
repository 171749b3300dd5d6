"""Plan and run a benchmark: one child process per model x runtime, then the quantisation cosines.

The parent resolves every reference and runtime first, so bad input fails before anything is
measured; each row then runs in :mod:`hanzo_cli.bench.worker`. A worker that dies (signal, abort,
non-zero exit without a result) makes its row ``crashed``; one that raises a hanzo error makes it
``failed``; the other rows go on either way.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hanzo_cli import __version__
from hanzo_cli.bench.measure import DEFAULT_ROUNDS, load_average
from hanzo_cli.bench.quality import mean_cosine
from hanzo_cli.bench.texts import Pair
from hanzo_cli.errors import NotFoundError, UsageError
from hanzo_cli.providers import ModelInfo

SCHEMA = 1


@dataclass
class Target:
    """One row to measure: a local model and the runtime to run it with (None: the default one)."""

    ref: str
    info: ModelInfo
    runtime: str | None
    task: str
    facts: dict[str, Any]


def plan(refs: Sequence[str], runtimes: Sequence[str]) -> list[Target]:
    """Resolve every reference to a local model and check each runtime can run it (clear errors)."""
    from hanzo_cli import models
    from hanzo_cli.embedding import select_runtime
    from hanzo_cli.gguf_info import has_gguf_magic, read_gguf_info

    targets: list[Target] = []
    seen: set[tuple[str, str | None]] = set()
    for ref in refs:
        info = models.find(ref)
        if info is None or info.path is None:
            raise NotFoundError(
                f"unknown model {ref!r}: no local model of that name (hanzo model:list shows them; "
                f"pull it with: hanzo model:pull {ref})"
            )
        facts: dict[str, Any] = {"size": info.size, "digest": info.digest}
        task = "embed"
        if has_gguf_magic(info.path):
            gguf = read_gguf_info(info.path)
            # embedding GGUFs declare their pooling (llama.cpp's converter writes it); LLMs do not
            task = {"rank": "rerank", None: "generate"}.get(gguf.pooling_type, "embed")
            if task == "generate" and not any(r.supports(gguf.architecture, "generate") for r in _runtimes()):
                task = (
                    "embed"  # no runtime generates it: embed with the default pooling, as embedding:test does
                )
            params = gguf.parameter_count or 0
            facts.update(
                architecture=gguf.architecture,
                file_type=gguf.file_type,
                bits_per_weight=info.path.stat().st_size * 8 / params if params else None,
                family=[
                    gguf.architecture,
                    gguf.metadata.get("general.basename") or gguf.name,
                    gguf.embedding_length,
                    gguf.block_count,
                    params,
                ],
            )
            forced_names: list[str | None] = [*runtimes] or [None]
            names: list[str | None] = [
                select_runtime(gguf.architecture, task, forced).name for forced in forced_names
            ]
        else:  # a model folder: the worker's loader picks (or refuses) the runtime
            names = [*runtimes] or [None]
        for name in names:
            if (info.ref, name) not in seen:
                seen.add((info.ref, name))
                targets.append(Target(ref, info, name, task, facts))
    return targets


def _runtimes() -> list[Any]:
    from hanzo_cli.plugins import registry

    return list(registry().runtimes)


def run_target(target: Target, spec: dict[str, Any], workdir: Path, timeout: float) -> dict[str, Any]:
    """Measure one row in a child process; its numbers, or its crash or failure."""
    key = uuid.uuid4().hex[:8]
    spec_path, out_path = workdir / f"{key}.spec.json", workdir / f"{key}.out.json"
    vectors = workdir / f"{key}.npy"
    full = {**spec, "ref": target.info.ref, "runtime": target.runtime, "task": target.task}
    spec_path.write_text(json.dumps({**full, "vectors_out": str(vectors)}), encoding="utf-8")
    row: dict[str, Any] = {
        "model": target.info.ref,
        "ref": target.ref,
        "runtime": target.runtime,
        "task": target.task,
        **target.facts,
    }
    argv = [sys.executable, "-m", "hanzo_cli.bench.worker", str(spec_path), str(out_path)]
    with subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as child:
        try:
            _, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()  # a hung runtime is a crashed row, not a hung benchmark
            _, stderr = child.communicate()
            stderr += f"\nno result after {timeout:g} s".encode()
    done = subprocess.CompletedProcess(argv, child.returncode, b"", stderr)
    if out_path.is_file():
        result = json.loads(out_path.read_text(encoding="utf-8"))
        row.update(result)
        if result["status"] == "ok" and vectors.is_file():
            row["_vectors"] = str(vectors)
        return row
    return {**row, "status": "crashed", "error": _crash_detail(done)}


def _crash_detail(done: subprocess.CompletedProcess[bytes]) -> str:
    import signal

    if done.returncode < 0:
        try:
            how = f"killed by {signal.Signals(-done.returncode).name}"
        except ValueError:
            how = f"killed by signal {-done.returncode}"
    else:
        how = f"exit status {done.returncode}"
    lines = [line for line in done.stderr.decode(errors="replace").splitlines() if line.strip()]
    return f"{how}: {lines[-1].strip()}" if lines else how


def compare_quants(rows: list[dict[str, Any]]) -> None:
    """Mean cosine of each version's passage vectors against the highest-precision local version of
    the same model (same architecture, name, sizes and parameter count; precision = bits per weight)."""
    import numpy as np

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row.get("_vectors") and row.get("family") and row.get("bits_per_weight"):
            groups.setdefault(json.dumps(row["family"]), []).append(row)
    for members in groups.values():
        if len({m["model"] for m in members}) < 2:
            continue
        best = max(m["bits_per_weight"] for m in members)
        references = [m for m in members if m["bits_per_weight"] == best]
        for member in members:
            # the reference on the same runtime when there is one, so only the weights differ
            same = [r for r in references if r["runtime"] == member["runtime"]]
            reference = (same or references)[0]
            a, b = np.load(member["_vectors"]), np.load(reference["_vectors"])
            member["quant_cosine"] = mean_cosine(a, b) if a.shape == b.shape else None
            member["quant_reference"] = reference["model"]


def best_rate(row: dict[str, Any]) -> float:
    """The row's best median throughput over its batch sizes (0 for rows that did not finish)."""
    return max((b["items_per_s"] for b in row.get("batches") or []), default=0.0)


def rank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fastest first, finished rows before the others; ``pareto`` marks rows that no other row of
    the same task beats on both speed and recall@1 (the trade-off curve)."""
    done = [r for r in rows if r.get("status") == "ok" and r.get("quality")]
    for row in done:
        rivals = [o for o in done if o is not row and o["task"] == row["task"]]
        speed, quality = best_rate(row), row["quality"]["recall_at_1"]
        row["pareto"] = not any(
            best_rate(o) >= speed
            and o["quality"]["recall_at_1"] >= quality
            and (best_rate(o) > speed or o["quality"]["recall_at_1"] > quality)
            for o in rivals
        )
    return sorted(rows, key=lambda r: (r.get("status") != "ok", -best_rate(r)))


def run(
    targets: Sequence[Target],
    *,
    texts: Sequence[str],
    pairs: Sequence[Pair],
    batches: Sequence[int],
    seconds: float,
    settings: dict[str, Any],
    rounds: int = DEFAULT_ROUNDS,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Measure every target; the run's record (what is saved and printed). ``on_row(row)`` is called
    as each row finishes (progress); a worker still running after ``timeout`` seconds (default:
    10 minutes more than the timing budget) is killed and its row reported as crashed."""
    started = datetime.now(timezone.utc)
    spec = {
        "texts": list(texts),
        "pairs": [[p.query, p.passage, p.topic] for p in pairs],
        "batches": list(batches),
        "seconds": seconds,
        "rounds": rounds,
    }
    timeout = timeout if timeout is not None else 600 + 4 * seconds
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hanzo-bench-") as tmp:
        for target in targets:
            row = run_target(target, spec, Path(tmp), timeout)
            rows.append(row)
            if on_row is not None:
                on_row(row)
        compare_quants(rows)
        for row in rows:
            row.pop("_vectors", None)
    return {
        "schema": SCHEMA,
        "id": started.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6],
        "created": started.isoformat(),
        "seconds_taken": (datetime.now(timezone.utc) - started).total_seconds(),
        "hanzo_version": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpus": os.cpu_count(),
        "load_average": load_average(),
        "settings": {**settings, "batches": list(batches), "seconds": seconds, "rounds": rounds},
        "rows": rank_rows(rows),
    }


def check_batches(value: str) -> list[int]:
    """``"1,8,32"`` as sorted distinct batch sizes, each at least 1."""
    sizes = []
    for part in value.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise UsageError(f"--batch takes positive whole numbers such as 1,8,32, not {part or value!r}")
        sizes.append(int(part))
    return sorted(set(sizes))
